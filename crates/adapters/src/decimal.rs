//! Integers as decimal text without the formatting machinery, for the
//! paths that write one per request (quota keys, series keys). On the
//! Prometheus recording path `write!` cost as much as the series lookup
//! the key is for (BENCHMARKS.md, Adapters: telemetry).

/// The decimal digits of `n`, written into the end of `buf`; as
/// `n.to_string()` would spell them.
pub(crate) fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Appends `n` with its sign, as `write!(out, "{n}")` would.
#[cfg(feature = "prometheus")]
pub(crate) fn push_signed(out: &mut String, n: i64) {
    if n < 0 {
        out.push('-');
    }
    push_unsigned(out, n.unsigned_abs());
}

/// Appends `n`, as `write!(out, "{n}")` would.
#[cfg(feature = "prometheus")]
pub(crate) fn push_unsigned(out: &mut String, n: u64) {
    let mut buf = [0u8; 20];
    for &d in digits(n, &mut buf) {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #[test]
        fn digits_are_those_display_writes(n: u64) {
            let mut buf = [0u8; 20];
            let text = n.to_string();
            proptest::prop_assert_eq!(digits(n, &mut buf), text.as_bytes());
        }
    }

    #[test]
    fn edges_are_written_as_display_writes_them() {
        let mut buf = [0u8; 20];
        for n in [0, 1, 9, 10, 200, u64::MAX] {
            assert_eq!(digits(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[cfg(feature = "prometheus")]
    proptest::proptest! {
        #[test]
        fn signed_values_are_written_as_display_writes_them(n: i64) {
            let mut out = String::from("x");
            push_signed(&mut out, n);
            proptest::prop_assert_eq!(out, format!("x{n}"));
        }
    }

    #[cfg(feature = "prometheus")]
    #[test]
    fn signed_edges_are_written_as_display_writes_them() {
        for n in [0, -1, -10, i64::MIN, i64::MAX] {
            let mut out = String::new();
            push_signed(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }
}
