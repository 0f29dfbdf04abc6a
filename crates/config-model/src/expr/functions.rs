//! The string-level semantics of the built-in functions and of the semantic
//! types' equality. None of these allocate.

/// `match(s, pattern)`: a glob with one `*`, as the original: a trailing `*`
/// matches a prefix, else a leading `*` a suffix, else the strings must be equal.
pub(crate) fn glob(s: &str, pattern: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix('*') {
        return s.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return s.ends_with(suffix);
    }
    s == pattern
}

fn trim_root(s: &str) -> &str {
    s.strip_suffix('.').unwrap_or(s)
}

/// A DNS name: labels of letters, digits, `-` and `_` (not starting or
/// ending with `-`), 1 to 63 bytes each, at most 253 bytes, with an
/// optional trailing dot.
pub(crate) fn dns_valid(s: &str) -> bool {
    let t = trim_root(s);
    !t.is_empty()
        && t.len() <= 253
        && t.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        })
}

/// DNS names are equal ignoring ASCII case and a trailing dot.
pub(crate) fn dns_eq(a: &str, b: &str) -> bool {
    trim_root(a).eq_ignore_ascii_case(trim_root(b))
}

fn split_email(s: &str) -> Option<(&str, &str)> {
    let (local, domain) = s.rsplit_once('@')?;
    Some((local, domain))
}

/// A bare address `local@domain`: no display name, no angle brackets, no
/// quoting; the domain a DNS name.
pub(crate) fn email_valid(s: &str) -> bool {
    let Some((local, domain)) = split_email(s) else {
        return false;
    };
    !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .bytes()
            .all(|c| (c.is_ascii_graphic() && !b"@<>()[]\\,;:\"".contains(&c)) || !c.is_ascii())
        && dns_valid(domain)
}

/// Local parts compare exactly, domains as DNS names.
pub(crate) fn email_eq(a: &str, b: &str) -> bool {
    match (split_email(a), split_email(b)) {
        (Some((la, da)), Some((lb, db))) => la == lb && dns_eq(da, db),
        _ => a == b,
    }
}

struct Uri<'a> {
    scheme: Option<&'a str>,
    /// `userinfo@`, host, `:port` of `//authority`.
    authority: Option<(&'a str, &'a str, &'a str)>,
    rest: &'a str,
}

fn split_uri(s: &str) -> Option<Uri<'_>> {
    let scheme_end = s.find([':', '/', '?', '#']);
    let (scheme, after) = match scheme_end {
        Some(i) if s.as_bytes()[i] == b':' => {
            let scheme = &s[..i];
            let ok = scheme
                .bytes()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'));
            if !ok {
                return None;
            }
            (Some(scheme), &s[i + 1..])
        }
        _ => (None, s),
    };
    let Some(auth_and_rest) = after.strip_prefix("//") else {
        return Some(Uri {
            scheme,
            authority: None,
            rest: after,
        });
    };
    let end = auth_and_rest
        .find(['/', '?', '#'])
        .unwrap_or(auth_and_rest.len());
    let (authority, rest) = auth_and_rest.split_at(end);
    let (userinfo, hostport) = match authority.rfind('@') {
        Some(i) => (&authority[..=i], &authority[i + 1..]),
        None => ("", authority),
    };
    let port_at = if hostport.starts_with('[') {
        hostport.find(']').map(|i| i + 1)?
    } else {
        hostport.find(':').unwrap_or(hostport.len())
    };
    let (host, port) = hostport.split_at(port_at);
    if !(port.is_empty() || port.starts_with(':') && port[1..].bytes().all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    Some(Uri {
        scheme,
        authority: Some((userinfo, host, port)),
        rest,
    })
}

fn is_http(scheme: Option<&str>) -> bool {
    scheme.is_some_and(|s| s.eq_ignore_ascii_case("http") || s.eq_ignore_ascii_case("https"))
}

/// Non-empty, no blanks or control characters, well-formed `%` escapes,
/// a well-formed scheme and port; an http(s) URI needs a host that is a
/// DNS name or an IP literal.
pub(crate) fn uri_valid(s: &str) -> bool {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let b = s.as_bytes();
    for (i, &c) in b.iter().enumerate() {
        if c == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        {
            return false;
        }
    }
    let Some(u) = split_uri(s) else {
        return false;
    };
    if is_http(u.scheme) {
        let Some((_, host, _)) = u.authority else {
            return false;
        };
        let literal = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok());
        return literal || dns_valid(host);
    }
    true
}

/// Schemes compare ignoring case; http(s) hosts as DNS names; the rest exactly.
pub(crate) fn uri_eq(a: &str, b: &str) -> bool {
    let (Some(x), Some(y)) = (split_uri(a), split_uri(b)) else {
        return a == b;
    };
    let schemes = match (x.scheme, y.scheme) {
        (Some(p), Some(q)) => p.eq_ignore_ascii_case(q),
        (None, None) => true,
        _ => false,
    };
    if !schemes || x.rest != y.rest {
        return false;
    }
    match (x.authority, y.authority) {
        (None, None) => true,
        (Some((u1, h1, p1)), Some((u2, h2, p2))) => {
            let hosts = if is_http(x.scheme) {
                dns_eq(h1, h2)
            } else {
                h1 == h2
            };
            u1 == u2 && p1 == p2 && hosts
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_as_the_original() {
        assert!(glob("/api/v1", "/api/*"));
        assert!(glob("svc.ns", "*.ns"));
        assert!(glob("anything", "*"));
        assert!(glob("a*b", "a*b"));
        assert!(!glob("axb", "a*b"));
        assert!(glob("*abc", "*abc*"));
    }

    #[test]
    fn semantic_equalities() {
        assert!(dns_eq("Example.COM.", "example.com"));
        assert!(!dns_eq("example.com..", "example.com"));
        assert!(email_eq("bob@Example.com", "bob@example.com."));
        assert!(!email_eq("Bob@example.com", "bob@example.com"));
        assert!(uri_eq("HTTP://Example.com/a", "http://example.com./a"));
        assert!(!uri_eq("http://example.com/A", "http://example.com/a"));
        assert!(!uri_eq("mailto:Bob@x", "mailto:bob@x"));
        assert!(uri_eq("MAILTO:bob@x", "mailto:bob@x"));
    }

    #[test]
    fn validation() {
        assert!(dns_valid("a-b.example.com."));
        for bad in ["", ".", "-a.com", "a..b", "a b", &"x".repeat(64)] {
            assert!(!dns_valid(bad), "{bad:?}");
        }
        assert!(email_valid("a.b+c@example.com"));
        for bad in [
            "",
            "a",
            "@x.com",
            "a@",
            "Bob <b@x.com>",
            "a@-x",
            "a..b@x.com",
        ] {
            assert!(!email_valid(bad), "{bad:?}");
        }
        assert!(uri_valid("https://[::1]:8443/x?y#z"));
        assert!(uri_valid("urn:isbn:123"));
        assert!(uri_valid("/relative/path"));
        for bad in [
            "",
            "http://",
            "http://a b",
            "1http://x",
            "http://x:80a/",
            "%zz",
            "http:/x",
        ] {
            assert!(!uri_valid(bad), "{bad:?}");
        }
    }
}
