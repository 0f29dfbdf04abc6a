//! One line per instance, as JSON or for a console: time, level, instance
//! name, then the fields in sorted order.

use std::cell::RefCell;
use std::fmt::Write as _;

use mixer_attributes::{Timestamp, ValueRef};

use super::params::Level;

/// Keys every line starts with; a field of the same name is written with a
/// leading `_` so that no key appears twice.
const RESERVED: [&str; 4] = ["time", "level", "instance", "value"];

thread_local! {
    // The whole-second part of the last time written: lines come in bursts
    // within the same second, and calendar arithmetic per line costs more
    // than the rest of a short line.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// RFC 3339 in UTC with exactly six fractional digits.
pub(crate) fn time(out: &mut String, t: Timestamp) {
    SECOND.with_borrow_mut(|(secs, text)| {
        if *secs != t.seconds() {
            let whole = Timestamp::new(t.seconds(), 0)
                .unwrap_or_default()
                .to_string();
            text.clear();
            text.push_str(whole.trim_end_matches('Z'));
            *secs = t.seconds();
        }
        out.push_str(text);
    });
    let micros = t.nanos() / 1000;
    let mut digits = [b'0'; 6];
    let mut n = micros;
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.push('.');
    out.push_str(std::str::from_utf8(&digits).unwrap_or("000000"));
    out.push('Z');
}

/// Appends one line (with its `\n`). `fields` come in key order: the
/// owned instances' maps and the borrowed ones both iterate so.
pub(crate) fn line<'a>(
    out: &mut String,
    json: bool,
    t: Timestamp,
    level: Level,
    instance: &str,
    value: Option<ValueRef<'_>>,
    fields: impl IntoIterator<Item = (&'a str, ValueRef<'a>)>,
) {
    if json {
        out.push_str("{\"time\":\"");
        time(out, t);
        let _ = write!(out, "\",\"level\":\"{}\",\"instance\":", level.as_str());
        json_str(out, instance);
        if let Some(v) = value {
            out.push_str(",\"value\":");
            json_value(out, v);
        }
        for (k, v) in fields {
            out.push(',');
            key(out, k, json_str);
            out.push(':');
            json_value(out, v);
        }
        out.push_str("}\n");
    } else {
        time(out, t);
        let _ = write!(out, "\t{}\t{instance}", level.as_str());
        if let Some(v) = value {
            out.push_str("\tvalue=");
            console_value(out, v);
        }
        for (k, v) in fields {
            out.push('\t');
            key(out, k, |out, k| out.push_str(k));
            out.push('=');
            console_value(out, v);
        }
        out.push('\n');
    }
}

fn key(out: &mut String, k: &str, write: impl Fn(&mut String, &str)) {
    if RESERVED.contains(&k) {
        write(out, &format!("_{k}"));
    } else {
        write(out, k);
    }
}

/// A JSON string: quotes, backslashes and control characters escaped.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let esc = match c {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            c if (c as u32) < 0x20 => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if esc.is_empty() {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push_str(esc);
        }
        start = i + c.len_utf8();
    }
    out.push_str(&s[start..]);
    out.push('"');
}

fn json_value(out: &mut String, v: ValueRef<'_>) {
    match v {
        ValueRef::String(s)
        | ValueRef::EmailAddress(s)
        | ValueRef::Uri(s)
        | ValueRef::DnsName(s) => json_str(out, s),
        ValueRef::Int64(i) => {
            let _ = write!(out, "{i}");
        }
        ValueRef::Double(d) if d.is_finite() => {
            let _ = write!(out, "{d}");
        }
        ValueRef::Bool(b) => {
            let _ = write!(out, "{b}");
        }
        ValueRef::StringMap(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_str(out, k);
                out.push(':');
                json_str(out, v);
            }
            out.push('}');
        }
        // Durations, times, addresses, hex and NaN or infinities render
        // with nothing a JSON string escapes, so they are written in
        // place rather than rendered to a string and escaped.
        ValueRef::Double(_)
        | ValueRef::Duration(_)
        | ValueRef::Timestamp(_)
        | ValueRef::Bytes(_)
        | ValueRef::IpAddress(_) => {
            let _ = write!(out, "\"{v}\"");
        }
    }
}

fn console_value(out: &mut String, v: ValueRef<'_>) {
    let start = out.len();
    let _ = write!(out, "{v}");
    let s = &out[start..];
    // Quoted only where the line would otherwise be ambiguous; the rare
    // quoted value is the only one that costs a copy.
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == '"' || c == '=') {
        let s = out.split_off(start);
        json_str(out, &s);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use mixer_attributes::{StringMap, Value};

    use super::*;
    use crate::template::Dimensions;

    fn dims(v: &[(&str, Value)]) -> Dimensions {
        v.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
    }

    fn fields(d: &Dimensions) -> impl Iterator<Item = (&str, ValueRef<'_>)> {
        d.iter().map(|(k, v)| (&**k, v.as_ref()))
    }

    proptest::proptest! {
        #[test]
        fn json_strings_read_back_as_written(s in ".*") {
            let mut out = String::new();
            json_str(&mut out, &s);
            let back: String = serde_json::from_str(&out).unwrap();
            proptest::prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn times_have_six_fraction_digits() {
        let mut s = String::new();
        time(&mut s, Timestamp::new(1_500_000_000, 123_456_789).unwrap());
        assert_eq!(s, "2017-07-14T02:40:00.123456Z");
        s.clear();
        time(&mut s, Timestamp::new(0, 0).unwrap());
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
        // The cached second is replaced when the second changes.
        for (secs, nanos, want) in [
            (0, 999_999_999, "1970-01-01T00:00:00.999999Z"),
            (1, 1_000, "1970-01-01T00:00:01.000001Z"),
            (1_500_000_000, 0, "2017-07-14T02:40:00.000000Z"),
            (1, 0, "1970-01-01T00:00:01.000000Z"),
        ] {
            s.clear();
            time(&mut s, Timestamp::new(secs, nanos).unwrap());
            assert_eq!(s, want);
        }
    }

    #[test]
    fn json_and_console_lines() {
        let t = Timestamp::new(1_500_000_000, 5_000).unwrap();
        let f = dims(&[
            ("zeta", Value::String("a \"q\"\n".into())),
            ("code", Value::Int64(200)),
            ("latency", Value::Duration(Duration::from_millis(1500))),
            ("level", Value::String("x".into())),
            ("ratio", Value::Double(f64::NAN)),
            ("ip", Value::IpAddress("::1".parse().unwrap())),
        ]);
        let mut s = String::new();
        line(
            &mut s,
            true,
            t,
            Level::Warning,
            "a.instance.ns",
            None,
            fields(&f),
        );
        assert_eq!(
            s,
            "{\"time\":\"2017-07-14T02:40:00.000005Z\",\"level\":\"warn\",\"instance\":\"a.instance.ns\",\
             \"code\":200,\"ip\":\"::1\",\"latency\":\"1.5s\",\"_level\":\"x\",\"ratio\":\"NaN\",\
             \"zeta\":\"a \\\"q\\\"\\n\"}\n"
        );
        let parsed: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(parsed["zeta"], "a \"q\"\n");
        let mut odd = String::new();
        json_str(&mut odd, "tab\tcr\r\u{1}é\\");
        assert_eq!(odd, r#""tab\tcr\r\u0001é\\""#);
        let back: String = serde_json::from_str(&odd).unwrap();
        assert_eq!(back, "tab\tcr\r\u{1}é\\");
        s.clear();
        line(
            &mut s,
            false,
            t,
            Level::Info,
            "m.instance.ns",
            Some(ValueRef::Double(2.5)),
            fields(&dims(&[
                ("code", Value::Int64(200)),
                ("path", Value::String("a b".into())),
            ])),
        );
        assert_eq!(
            s,
            "2017-07-14T02:40:00.000005Z\tinfo\tm.instance.ns\tvalue=2.5\tcode=200\tpath=\"a b\"\n"
        );
    }

    /// JSON values written in place read the same as the value rendered to
    /// a string and escaped, which is how they used to be written.
    #[test]
    fn values_written_in_place_match_their_escaped_rendering() {
        let m: StringMap = [("b", "2 \"x\""), ("a", "1")].into_iter().collect();
        let values = [
            Value::Double(f64::NAN),
            Value::Double(f64::INFINITY),
            Value::Double(f64::NEG_INFINITY),
            Value::Duration(Duration::from_micros(2500)),
            Value::Duration(Duration::from_nanos(1_500)),
            Value::Duration(Duration::from_secs(3723)),
            Value::Timestamp(Timestamp::new(1_700_000_000, 5_000).unwrap()),
            Value::Bytes(vec![10, 0, 0, 1]),
            Value::Bytes(vec![0xde, 0xad, 0x00]),
            Value::IpAddress("fe80::1".parse().unwrap()),
            Value::EmailAddress("a\"b@c".into()),
            Value::Uri("http://x/y z".into()),
            Value::DnsName("a.b".into()),
        ];
        for v in &values {
            let mut got = String::new();
            json_value(&mut got, v.as_ref());
            let mut want = String::new();
            json_str(&mut want, &v.to_string());
            assert_eq!(got, want, "{v:?}");
        }
        let mut got = String::new();
        json_value(&mut got, ValueRef::StringMap(&m));
        assert_eq!(got, r#"{"a":"1","b":"2 \"x\""}"#);
        // Console values: quoted only when ambiguous, the rest as rendered.
        for (v, want) in [
            (Value::String(String::new()), r#""""#),
            (Value::String("a=b".into()), r#""a=b""#),
            (Value::String("plain".into()), "plain"),
            (Value::StringMap(m.clone()), r#""a=1&b=2 \"x\"""#),
            (Value::Duration(Duration::from_micros(2500)), "2.5ms"),
        ] {
            let mut got = String::from("k=");
            console_value(&mut got, v.as_ref());
            assert_eq!(got, format!("k={want}"), "{v:?}");
        }
    }
}
