//! The prometheus adapter's params and their validation.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::params::{Fields, ParamErrors};
use crate::{Error, FieldError, Params};

use super::series::Kind;

/// The Prometheus client libraries' default buckets.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// The default port of the `/metrics` endpoint.
pub const DEFAULT_PORT: u16 = 42422;
/// The default cap on series per metric.
pub const DEFAULT_MAX_SERIES_PER_METRIC: usize = 100_000;
/// The most finite buckets a linear or exponential layout may ask for.
pub const MAX_FINITE_BUCKETS: i64 = 1_000;

/// A validated metric definition.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricDef {
    /// The metric instance's fully-qualified name.
    pub instance_name: String,
    /// `<namespace>_<name>`, sanitised.
    pub exposed_name: String,
    /// HELP text.
    pub help: String,
    pub(crate) kind: Kind,
    /// Label names as configured (how dimensions are looked up first).
    pub raw_labels: Vec<String>,
    /// Label names as exposed (sanitised).
    pub labels: Vec<String>,
    /// Finite bucket bounds of a distribution.
    pub bounds: Vec<f64>,
}

/// Validated prometheus params.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusParams {
    /// The good metric definitions.
    pub metrics: Vec<MetricDef>,
    /// The metric definitions rejected alone, each problem naming its field.
    pub rejected: Vec<FieldError>,
    /// Series idle for `.0` are removed, looked for every `.1`.
    pub expiry: Option<(Duration, Duration)>,
    /// Where `/metrics` is served.
    pub address: SocketAddr,
    /// Series per metric before new ones are dropped and counted.
    pub max_series: usize,
}

/// Turns `/`, `.` and space into `_`, the mapping for names and labels.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if is_mapped(c) { '_' } else { c })
        .collect()
}

pub(crate) fn is_mapped(c: char) -> bool {
    matches!(c, '/' | '.' | ' ')
}

/// Whether `raw` sanitises to `sanitised`, without allocating.
pub(crate) fn sanitizes_to(raw: &str, sanitised: &str) -> bool {
    raw.len() == sanitised.len()
        && raw
            .chars()
            .zip(sanitised.chars())
            .all(|(a, b)| a == b || (is_mapped(a) && b == '_'))
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

impl PrometheusParams {
    /// Reads and validates params.
    ///
    /// Better than the original: a problem inside one `metrics[i]` entry
    /// rejects that metric alone (listed in [`rejected`](Self::rejected),
    /// logged and counted when the handler is built) and the others work.
    /// Handler-wide problems, or no metric left at all, fail validation.
    pub fn parse(params: &Params) -> Result<PrometheusParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let mut metrics = Vec::new();
        let mut rejected = Vec::new();
        let mut names = HashSet::new();
        let mut instances = HashSet::new();
        let entries = root.objects("metrics", &mut errs);
        let total = entries.len();
        for m in entries {
            let mut merrs = ParamErrors::new();
            let (name_path, instance_path) = (m.path_of("name"), m.path_of("instanceName"));
            let def = parse_metric(m, &mut merrs);
            if let Some(def) = &def {
                if names.contains(&def.exposed_name) {
                    merrs.push(
                        name_path,
                        format!(
                            "metric `{}` is already defined by an earlier entry",
                            def.exposed_name
                        ),
                    );
                } else if instances.contains(&def.instance_name) {
                    merrs.push(
                        instance_path,
                        format!(
                            "instance `{}` already has a metric in an earlier entry",
                            def.instance_name
                        ),
                    );
                }
            }
            match (def, merrs.into_result("prometheus", ())) {
                (Some(def), Ok(())) => {
                    names.insert(def.exposed_name.clone());
                    instances.insert(def.instance_name.clone());
                    metrics.push(def);
                }
                (_, Err(e)) => rejected.extend(e.field_errors().iter().cloned()),
                (None, Ok(())) => {}
            }
        }
        let expiry = root
            .object("metricsExpirationPolicy", &mut errs)
            .and_then(|e| {
                let expiry = e.duration("metricsExpiryDuration", &mut errs);
                let check = e.duration("expiryCheckIntervalDuration", &mut errs);
                let expiry = match expiry {
                    None if e.get("metricsExpiryDuration").is_none() => {
                        errs.push(
                            e.path_of("metricsExpiryDuration"),
                            "required when metricsExpirationPolicy is set",
                        );
                        None
                    }
                    Some(d) if d.is_zero() => {
                        errs.push(e.path_of("metricsExpiryDuration"), "must be greater than 0");
                        None
                    }
                    d => d,
                };
                if check.is_some_and(|c| c.is_zero()) {
                    errs.push(
                        e.path_of("expiryCheckIntervalDuration"),
                        "must be greater than 0",
                    );
                }
                e.finish(&mut errs);
                // The original's default: look twice per expiry period.
                let d = expiry?;
                Some((d, check.unwrap_or(d / 2).max(Duration::from_millis(1))))
            });
        let host = match root.string("host", &mut errs) {
            None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            Some(h) => h.parse().unwrap_or_else(|_| {
                errs.push(
                    root.path_of("host"),
                    format!("expected an IP address such as 0.0.0.0 or 127.0.0.1, got {h:?}"),
                );
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            }),
        };
        let port = match root.int("port", &mut errs) {
            None => DEFAULT_PORT,
            Some(p) => u16::try_from(p).unwrap_or_else(|_| {
                errs.push(root.path_of("port"), format!("must be 0 to 65535, got {p}"));
                DEFAULT_PORT
            }),
        };
        let max_series = match root.int("maxSeriesPerMetric", &mut errs) {
            None => DEFAULT_MAX_SERIES_PER_METRIC,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                errs.push(
                    root.path_of("maxSeriesPerMetric"),
                    format!("must be greater than 0, got {n}"),
                );
                1
            }
        };
        root.finish(&mut errs);
        if metrics.is_empty() && total > 0 {
            // Nothing would work: say why, rather than build an empty handler.
            for r in &rejected {
                errs.push(r.path.clone(), r.message.clone());
            }
        }
        errs.into_result(
            super::NAME,
            PrometheusParams {
                metrics,
                rejected,
                expiry,
                address: SocketAddr::new(host, port),
                max_series,
            },
        )
    }
}

fn parse_metric(m: Fields<'_>, errs: &mut ParamErrors) -> Option<MetricDef> {
    let instance_name = m.string("instanceName", errs).unwrap_or_default();
    if instance_name.is_empty() {
        errs.push(m.path_of("instanceName"), "required");
    }
    let kind = m.enumeration(
        "kind",
        &[
            ("COUNTER", Kind::Counter),
            ("GAUGE", Kind::Gauge),
            ("DISTRIBUTION", Kind::Distribution),
        ],
        errs,
    );
    if m.get("kind").is_none() {
        errs.push(
            m.path_of("kind"),
            "required: one of COUNTER, GAUGE, DISTRIBUTION",
        );
    }
    let name = match m.string("name", errs) {
        Some(n) if !n.is_empty() => sanitize(&n),
        // Instance names carry the `-` of Kubernetes namespaces, which no
        // metric name may hold.
        _ => sanitize(&instance_name).replace('-', "_"),
    };
    let namespace = m
        .string("namespace", errs)
        .unwrap_or_else(|| "istio".into());
    let help = m.string("description", errs).unwrap_or_default();
    let exposed_name = if namespace.is_empty() {
        name
    } else {
        format!("{}_{name}", sanitize(&namespace))
    };
    if !valid_metric_name(&exposed_name) {
        errs.push(
            m.path_of("name"),
            format!("`{exposed_name}` is not a valid Prometheus metric name"),
        );
    }
    let raw_labels = m.strings("labelNames", errs);
    let mut labels = Vec::new();
    let mut seen = HashSet::new();
    for (j, l) in raw_labels.iter().enumerate() {
        let s = sanitize(l);
        let at = format!("{}[{j}]", m.path_of("labelNames"));
        if !valid_label_name(&s) {
            errs.push(at, format!("`{s}` is not a valid Prometheus label name"));
        } else if kind == Some(Kind::Distribution) && s == "le" {
            errs.push(at, "`le` is reserved for histogram buckets");
        } else if !seen.insert(s.clone()) {
            errs.push(at, format!("label `{s}` is listed twice"));
        }
        labels.push(s);
    }
    let buckets = m.object("buckets", errs);
    let bounds = match (kind, buckets) {
        (Some(Kind::Distribution), None) => DEFAULT_BUCKETS.to_vec(),
        (Some(Kind::Distribution), Some(b)) => bucket_bounds(b, errs),
        (Some(_), Some(b)) => {
            errs.push(b.path(), "only a DISTRIBUTION has buckets");
            Vec::new()
        }
        _ => Vec::new(),
    };
    m.finish(errs);
    Some(MetricDef {
        instance_name,
        exposed_name,
        help,
        kind: kind?,
        raw_labels,
        labels,
        bounds,
    })
}

fn bucket_bounds(b: Fields<'_>, errs: &mut ParamErrors) -> Vec<f64> {
    let explicit = b.object("explicitBuckets", errs);
    let linear = b.object("linearBuckets", errs);
    let exponential = b.object("exponentialBuckets", errs);
    let set = [explicit.is_some(), linear.is_some(), exponential.is_some()]
        .iter()
        .filter(|x| **x)
        .count();
    if set != 1 {
        errs.push(
            b.path(),
            "expected exactly one of explicitBuckets, linearBuckets, exponentialBuckets",
        );
    }
    let count = |f: &Fields<'_>, errs: &mut ParamErrors| match f.int("numFiniteBuckets", errs) {
        Some(n) if (1..=MAX_FINITE_BUCKETS).contains(&n) => Some(n as usize),
        got => {
            errs.push(
                f.path_of("numFiniteBuckets"),
                format!(
                    "must be between 1 and {MAX_FINITE_BUCKETS}, got {}",
                    got.unwrap_or(0)
                ),
            );
            None
        }
    };
    let positive = |f: &Fields<'_>, key: &'static str, min: f64, errs: &mut ParamErrors| match f
        .float(key, errs)
    {
        Some(v) if v > min => Some(v),
        got => {
            errs.push(
                f.path_of(key),
                format!("must be greater than {min}, got {}", got.unwrap_or(0.0)),
            );
            None
        }
    };
    let (bounds, path) = if let Some(e) = explicit {
        let mut bounds = Vec::new();
        for (path, v) in e.list("bounds", errs) {
            match v.as_f64() {
                Some(f) => bounds.push(f),
                None => errs.push(path, "expected a number"),
            }
        }
        if bounds.is_empty() {
            errs.push(e.path_of("bounds"), "must not be empty");
        }
        let path = e.path_of("bounds");
        e.finish(errs);
        (bounds, path)
    } else if let Some(l) = linear {
        let n = count(&l, errs);
        let width = positive(&l, "width", 0.0, errs);
        let offset = l.float("offset", errs).unwrap_or(0.0);
        let path = l.path().to_string();
        l.finish(errs);
        match (n, width) {
            (Some(n), Some(w)) => ((0..n).map(|i| offset + w * i as f64).collect(), path),
            _ => (Vec::new(), path),
        }
    } else if let Some(x) = exponential {
        let n = count(&x, errs);
        let growth = positive(&x, "growthFactor", 1.0, errs);
        let scale = positive(&x, "scale", 0.0, errs);
        let path = x.path().to_string();
        x.finish(errs);
        match (n, growth, scale) {
            (Some(n), Some(g), Some(s)) => ((0..n).map(|i| s * g.powi(i as i32)).collect(), path),
            _ => (Vec::new(), path),
        }
    } else {
        (Vec::new(), String::new())
    };
    b.finish(errs);
    if bounds.iter().any(|v| !v.is_finite()) {
        errs.push(path, "bounds must be finite");
    } else if bounds.windows(2).any(|w| w[0] >= w[1]) {
        errs.push(path, "bounds must be strictly increasing");
    }
    bounds
}
