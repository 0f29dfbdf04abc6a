//! Quota keys and dimension matching shared by the quota adapters.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use mixer_attributes::Value;

use crate::template::Dimensions;

/// An injective encoding of (quota, dimensions): each part followed by its
/// length, so no value can forge another key whatever bytes it holds.
pub(crate) fn write_key(out: &mut String, name: &str, dims: &Dimensions) {
    let _ = write!(out, "{name}\0{}\0", name.len());
    for (k, v) in dims {
        let _ = write!(out, "{k}\0{}\0", k.len());
        let start = out.len();
        let _ = write!(out, "{v}");
        let len = out.len() - start;
        let _ = write!(out, "\0{len}\0");
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
            let mut s = String::new();
            write_key(&mut s, "q", &dims);
            s
        };
        assert_ne!(key(&[("a", "1\0b")]), key(&[("a", "1"), ("b", "")]));
        assert_ne!(key(&[("a", "1\0\x001\0")]), key(&[("a", "1")]));
        assert_ne!(key(&[("a\0b", "c")]), key(&[("a", "b\0c")]));
        assert_eq!(key(&[("a", "1")]), key(&[("a", "1")]));
    }
}
