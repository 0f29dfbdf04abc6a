//! Quota keys and dimension matching shared by the quota adapters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mixer_attributes::Value;

use crate::template::Dimensions;

/// An injective encoding of (quota, dimensions) as bytes: every part
/// prefixed by its length, so no value can forge another key whatever
/// bytes it holds. Values are rendered as everywhere (`Display`), so a
/// dimension is the same counter whether it arrives as `200` or `"200"`.
#[cfg(any(feature = "redisquota", test))]
pub(crate) fn write_key(out: &mut Vec<u8>, name: &str, dims: &Dimensions) {
    push_part(out, name.as_bytes());
    write_dims(out, dims);
}

/// [`write_key`] without the quota's name, for counters already kept per
/// quota: injective over dimension maps alone.
pub(crate) fn write_dims(out: &mut Vec<u8>, dims: &Dimensions) {
    for (k, v) in dims {
        push_part(out, k.as_bytes());
        push_value(out, v);
    }
}

fn push_part(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn push_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::String(s) | Value::EmailAddress(s) | Value::Uri(s) | Value::DnsName(s) => {
            push_part(out, s.as_bytes())
        }
        Value::Int64(n) => {
            let mut buf = [0u8; 20];
            let digits = crate::decimal::digits(n.unsigned_abs(), &mut buf);
            let neg = usize::from(*n < 0);
            out.extend_from_slice(&((digits.len() + neg) as u32).to_le_bytes());
            if neg == 1 {
                out.push(b'-');
            }
            out.extend_from_slice(digits);
        }
        Value::Bool(b) => push_part(out, if *b { b"true" } else { b"false" }),
        other => {
            struct Bytes<'a>(&'a mut Vec<u8>);
            impl std::fmt::Write for Bytes<'_> {
                fn write_str(&mut self, s: &str) -> std::fmt::Result {
                    self.0.extend_from_slice(s.as_bytes());
                    Ok(())
                }
            }
            let at = out.len();
            out.extend_from_slice(&[0; 4]);
            let _ = write!(Bytes(out), "{other}");
            let len = (out.len() - at - 4) as u32;
            out[at..at + 4].copy_from_slice(&len.to_le_bytes());
        }
    }
}

/// Whether `v` renders exactly as `want`, without allocating.
pub(crate) fn renders_as(v: &Value, want: &str) -> bool {
    struct Eq<'a> {
        rest: &'a str,
        ok: bool,
    }
    impl std::fmt::Write for Eq<'_> {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            match self.rest.strip_prefix(s) {
                Some(r) if self.ok => self.rest = r,
                _ => self.ok = false,
            }
            Ok(())
        }
    }
    let mut w = Eq {
        rest: want,
        ok: true,
    };
    let _ = write!(w, "{v}");
    w.ok && w.rest.is_empty()
}

/// Whether every wanted dimension equals the instance's value rendered as
/// a string (an override's match rule).
pub(crate) fn matches(want: &BTreeMap<String, String>, dims: &Dimensions) -> bool {
    want.iter()
        .all(|(k, w)| dims.get(k.as_str()).is_some_and(|v| renders_as(v, w)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn renders_as_compares_without_allocating() {
        assert!(renders_as(&Value::Int64(200), "200"));
        assert!(!renders_as(&Value::Int64(200), "20"));
        assert!(!renders_as(&Value::Int64(200), "2000"));
        assert!(renders_as(&Value::Bytes(vec![10, 0, 0, 1]), "10.0.0.1"));
    }

    #[test]
    fn keys_are_injective() {
        let key = |pairs: &[(&str, &str)]| {
            let dims: Dimensions = pairs
                .iter()
                .map(|(k, v)| (Arc::from(*k), Value::String(v.to_string())))
                .collect();
            let mut s = Vec::new();
            write_key(&mut s, "q", &dims);
            s
        };
        assert_ne!(key(&[("a", "1\0b")]), key(&[("a", "1"), ("b", "")]));
        assert_ne!(key(&[("a", "1\0\x001\0")]), key(&[("a", "1")]));
        assert_ne!(key(&[("a\0b", "c")]), key(&[("a", "b\0c")]));
        assert_eq!(key(&[("a", "1")]), key(&[("a", "1")]));
        // Every type renders as its text: 200 and "200" are one counter.
        let render = |v: Value| {
            let dims: Dimensions = [(Arc::from("d"), v)].into_iter().collect();
            let mut s = Vec::new();
            write_key(&mut s, "q", &dims);
            s
        };
        for (v, text) in [
            (Value::Int64(200), "200"),
            (Value::Int64(-7), "-7"),
            (Value::Int64(i64::MIN), "-9223372036854775808"),
            (Value::Int64(0), "0"),
            (Value::Bool(false), "false"),
            (Value::Double(1.5), "1.5"),
            (Value::IpAddress("10.0.0.1".parse().unwrap()), "10.0.0.1"),
        ] {
            assert_eq!(render(v), render(Value::String(text.into())), "{text}");
        }
    }
}
