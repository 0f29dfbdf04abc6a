//! The Prometheus text exposition format (version 0.0.4), what `/metrics`
//! serves.

use std::fmt::Write as _;

use super::series::{Family, Kind, SeriesValue};

/// The `Content-Type` of the format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends one family (HELP, TYPE and every series) to `out`. A family
/// without series is left out, as client_golang does.
pub(crate) fn encode_family(out: &mut String, f: &Family) {
    let series = f.snapshot();
    if series.is_empty() {
        return;
    }
    if !f.help.is_empty() {
        let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(&f.help));
    }
    let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.type_name());
    for s in &series {
        match (&s.value, f.kind) {
            (SeriesValue::Histogram(h), Kind::Distribution) => {
                let h = h.lock().clone();
                let mut cumulative = 0u64;
                for (i, c) in h.counts.iter().enumerate() {
                    cumulative += c;
                    let le = f
                        .bounds
                        .get(i)
                        .map_or_else(|| "+Inf".to_string(), |b| fmt_f64(*b));
                    out.push_str(&f.name);
                    out.push_str("_bucket");
                    labels(out, &f.label_names, &s.labels, Some(&le));
                    let _ = writeln!(out, " {cumulative}");
                }
                out.push_str(&f.name);
                out.push_str("_sum");
                labels(out, &f.label_names, &s.labels, None);
                let _ = writeln!(out, " {}", fmt_f64(h.sum));
                out.push_str(&f.name);
                out.push_str("_count");
                labels(out, &f.label_names, &s.labels, None);
                let _ = writeln!(out, " {}", h.count);
            }
            _ => {
                out.push_str(&f.name);
                labels(out, &f.label_names, &s.labels, None);
                let _ = writeln!(out, " {}", fmt_f64(s.scalar()));
            }
        }
    }
}

fn labels(out: &mut String, names: &[String], values: &[Box<str>], le: Option<&str>) {
    if names.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (n, v) in names.iter().zip(values) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(n);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    if let Some(le) = le {
        if !first {
            out.push(',');
        }
        out.push_str("le=\"");
        out.push_str(le);
        out.push('"');
    }
    out.push('}');
}

fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_help(h: &str) -> String {
    h.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Floats as the format wants them: `+Inf`, `-Inf`, `NaN`, otherwise the
/// shortest round-trip decimal.
pub(crate) fn fmt_f64(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms_with_escaping() {
        let mut key = String::new();
        let c = Family::new(
            "istio_requests".into(),
            "Requests\nserved \\ total".into(),
            Kind::Counter,
            vec!["code".into(), "path".into()],
            vec![],
            10,
        );
        c.record(["200", "/a\"b\\c\nd"], 2.0, 0, &mut key).unwrap();
        let h = Family::new(
            "istio_latency".into(),
            String::new(),
            Kind::Distribution,
            vec![],
            vec![0.5, 1.0],
            10,
        );
        let no_labels: [&str; 0] = [];
        h.record(no_labels, 0.25, 0, &mut key).unwrap();
        h.record(no_labels, 3.0, 0, &mut key).unwrap();
        let mut out = String::new();
        encode_family(&mut out, &c);
        encode_family(&mut out, &h);
        assert_eq!(
            out,
            "# HELP istio_requests Requests\\nserved \\\\ total\n\
             # TYPE istio_requests counter\n\
             istio_requests{code=\"200\",path=\"/a\\\"b\\\\c\\nd\"} 2\n\
             # TYPE istio_latency histogram\n\
             istio_latency_bucket{le=\"0.5\"} 1\n\
             istio_latency_bucket{le=\"1\"} 1\n\
             istio_latency_bucket{le=\"+Inf\"} 2\n\
             istio_latency_sum 3.25\n\
             istio_latency_count 2\n"
        );
    }

    #[test]
    fn special_floats() {
        assert_eq!(fmt_f64(f64::INFINITY), "+Inf");
        assert_eq!(fmt_f64(f64::NEG_INFINITY), "-Inf");
        assert_eq!(fmt_f64(f64::NAN), "NaN");
        assert_eq!(fmt_f64(0.005), "0.005");
        assert_eq!(fmt_f64(1e21), "1000000000000000000000");
    }
}
