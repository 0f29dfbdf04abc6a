//! The list itself: entries of one type, and the lookup of a value.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use ipnet::IpNet;
use mixer_attributes::{Value, ip_from_bytes};
use regex::{RegexSet, RegexSetBuilder};

use super::ipset::IpSet;

/// How list entries are read and matched.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum EntryType {
    /// Exact strings.
    Strings,
    /// Strings compared case-insensitively (Unicode lowercase).
    CaseInsensitiveStrings,
    /// IP addresses and CIDR ranges (a bare IP is a single host).
    IpAddresses,
    /// Regular expressions, unanchored: any match anywhere counts.
    Regex,
}

/// Upper bound on the compiled size of a REGEX list (the regex crate's
/// size limit), so one huge list cannot exhaust memory.
pub const REGEX_SIZE_LIMIT: usize = 256 << 20;

#[derive(Debug)]
pub(super) enum Matcher {
    Strings(HashSet<Box<str>>),
    CaseInsensitive(HashSet<Box<str>>),
    Ips(IpSet),
    Regex(RegexSet),
}

/// Parses an IP entry: a CIDR range, or a bare IP as /32 or /128.
pub(super) fn parse_ip_entry(s: &str) -> Result<IpNet, String> {
    if s.contains('/') {
        s.parse::<IpNet>()
            .map(|n| n.trunc())
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
    } else {
        s.parse::<IpAddr>()
            .map(|ip| IpNet::from(ip.to_canonical()))
            .map_err(|_| format!("{s:?} is not an IP address or CIDR range"))
    }
}

thread_local! {
    static BUF: RefCell<String> = const { RefCell::new(String::new()) };
}

impl Matcher {
    /// Builds the list; on a bad entry, its index and what is wrong.
    pub(super) fn build(ty: EntryType, entries: &[String]) -> Result<Matcher, (usize, String)> {
        Ok(match ty {
            EntryType::Strings => {
                Matcher::Strings(entries.iter().map(|e| e.as_str().into()).collect())
            }
            EntryType::CaseInsensitiveStrings => {
                Matcher::CaseInsensitive(entries.iter().map(|e| e.to_lowercase().into()).collect())
            }
            EntryType::IpAddresses => {
                let mut nets = Vec::with_capacity(entries.len());
                for (i, e) in entries.iter().enumerate() {
                    nets.push(parse_ip_entry(e).map_err(|m| (i, m))?);
                }
                Matcher::Ips(IpSet::new(nets))
            }
            EntryType::Regex => {
                if let Some((i, e)) = entries
                    .iter()
                    .enumerate()
                    .find_map(|(i, e)| regex::Regex::new(e).err().map(|e| (i, e)))
                {
                    return Err((i, format!("not a valid regular expression: {e}")));
                }
                let set = RegexSetBuilder::new(entries)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| (0, format!("the regular expressions together: {e}")))?;
                Matcher::Regex(set)
            }
        })
    }

    /// Whether the list holds `v`; `Err` (INVALID_ARGUMENT's message) when
    /// `v` cannot be looked up in a list of this type.
    pub(super) fn contains(&self, v: &Value) -> Result<bool, String> {
        let ip = match v {
            Value::IpAddress(ip) => Some(*ip),
            Value::Bytes(b) => match ip_from_bytes(b) {
                Some(ip) => Some(ip),
                None => return Err(not_string_or_ip(v)),
            },
            Value::String(_) | Value::EmailAddress(_) | Value::Uri(_) | Value::DnsName(_) => None,
            _ => return Err(not_string_or_ip(v)),
        };
        let text = v.as_ref().as_str();
        match self {
            Matcher::Ips(set) => {
                let ip = match (ip, text) {
                    (Some(ip), _) => ip,
                    (None, Some(s)) => s
                        .parse::<IpAddr>()
                        .map_err(|_| format!("{s} is not a valid IP address"))?,
                    (None, None) => return Err(not_string_or_ip(v)),
                };
                Ok(set.contains(ip))
            }
            Matcher::Strings(set) => Ok(with_text(text, ip, |s| set.contains(s))),
            Matcher::CaseInsensitive(set) => Ok(with_text(text, ip, |s| {
                if s.chars().all(|c| !c.is_uppercase()) {
                    return set.contains(s);
                }
                BUF.with(|b| {
                    let mut b = b.borrow_mut();
                    b.clear();
                    b.extend(s.chars().flat_map(char::to_lowercase));
                    set.contains(b.as_str())
                })
            })),
            Matcher::Regex(set) => Ok(with_text(text, ip, |s| set.is_match(s))),
        }
    }
}

fn not_string_or_ip(v: &Value) -> String {
    format!("{v} ({}) is not a string or IP address", v.value_type())
}

/// Runs `f` on the value as text: the string itself, or the IP rendered.
fn with_text(text: Option<&str>, ip: Option<IpAddr>, f: impl FnOnce(&str) -> bool) -> bool {
    match (text, ip) {
        (Some(s), _) => f(s),
        (None, Some(ip)) => {
            let mut s = String::with_capacity(40);
            let _ = write!(s, "{ip}");
            f(&s)
        }
        (None, None) => false,
    }
}

/// Splits a provider's body into entries: one per line, blank lines
/// skipped; for IP lists also the original's YAML `whitelist: [...]`.
pub(super) fn parse_body(ty: EntryType, body: &str) -> Result<Vec<String>, String> {
    if ty == EntryType::IpAddresses
        && body
            .lines()
            .any(|l| l.trim_start().starts_with("whitelist:"))
    {
        #[derive(serde::Deserialize)]
        struct Doc {
            #[serde(default)]
            whitelist: Vec<String>,
        }
        let doc: Doc = yaml_serde::from_str(body)
            .map_err(|e| format!("not a `whitelist:` YAML document: {e}"))?;
        return Ok(doc
            .whitelist
            .into_iter()
            .map(|s| s.trim().to_string())
            .collect());
    }
    Ok(body
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}
