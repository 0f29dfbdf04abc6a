//! Attributes from typed flags, in the style of the original `mixc`:
//! `--string_attributes k1=v1,k2=v2`, `--stringmap_attributes
//! k=k1:v1;k2:v2`, and so on.

use mixer_attributes::{OwnedBag, StringMap, Timestamp, Value, parse_duration};

/// The type a flag's values are read as.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    String,
    Int64,
    Double,
    Bool,
    Timestamp,
    Duration,
    Bytes,
    StringMap,
}

impl Kind {
    /// The kind of a `--<kind>_attributes` flag.
    pub(crate) fn of_flag(flag: &str) -> Option<Kind> {
        Some(match flag.strip_suffix("_attributes")? {
            "string" => Kind::String,
            "int64" => Kind::Int64,
            "double" => Kind::Double,
            "bool" => Kind::Bool,
            "timestamp" => Kind::Timestamp,
            "duration" => Kind::Duration,
            "bytes" => Kind::Bytes,
            "stringmap" => Kind::StringMap,
            _ => return None,
        })
    }
}

/// Adds every `name=value` of `list` (comma-separated) to `bag`.
pub(crate) fn add(bag: &mut OwnedBag, flag: &str, kind: Kind, list: &str) -> Result<(), String> {
    for item in list.split(',').filter(|s| !s.is_empty()) {
        let (name, raw) = item
            .split_once('=')
            .ok_or_else(|| format!("--{flag}: {item:?} is not name=value"))?;
        if name.is_empty() {
            return Err(format!("--{flag}: {item:?} has an empty name"));
        }
        let bad = |what: &str| format!("--{flag}: {name}={raw:?} is not {what}");
        let value = match kind {
            Kind::String => Value::String(raw.to_string()),
            Kind::Int64 => Value::Int64(raw.parse().map_err(|_| bad("an integer"))?),
            Kind::Double => Value::Double(raw.parse().map_err(|_| bad("a number"))?),
            Kind::Bool => Value::Bool(raw.parse().map_err(|_| bad("true or false"))?),
            Kind::Timestamp => Value::Timestamp(
                Timestamp::parse_rfc3339(raw).ok_or_else(|| bad("an RFC 3339 timestamp"))?,
            ),
            Kind::Duration => Value::Duration(
                parse_duration(raw).ok_or_else(|| bad("a duration such as 1.5s or 300ms"))?,
            ),
            Kind::Bytes => Value::Bytes(bytes(raw).ok_or_else(|| {
                bad("bytes: hex pairs separated by colons (0a:ff:10) or run together (0aff10)")
            })?),
            Kind::StringMap => Value::StringMap(string_map(raw).ok_or_else(|| {
                bad("a string map: key:value pairs separated by semicolons (k1:v1;k2:v2)")
            })?),
        };
        bag.set(mixer_attributes::AttrId::of(name), value);
    }
    Ok(())
}

/// `0a:ff:10` (the original's form) or `0aff10`.
fn bytes(raw: &str) -> Option<Vec<u8>> {
    let hex = |s: &str| {
        (s.len() == 2)
            .then(|| u8::from_str_radix(s, 16).ok())
            .flatten()
    };
    if raw.contains(':') {
        raw.split(':').map(hex).collect()
    } else if raw.len().is_multiple_of(2) {
        (0..raw.len())
            .step_by(2)
            .map(|i| raw.get(i..i + 2).and_then(hex))
            .collect()
    } else {
        None
    }
}

/// `k1:v1;k2:v2`. The first `:` of a pair ends the key, so values may hold
/// colons (`x:1:2` is `x` = `1:2`); a leading `:` belongs to the key, for
/// HTTP/2 pseudo-headers (`:method:GET` is `:method` = `GET`).
fn string_map(raw: &str) -> Option<StringMap> {
    let mut m = StringMap::new();
    for pair in raw.split(';').filter(|s| !s.is_empty()) {
        let (lead, rest) = match pair.strip_prefix(':') {
            Some(rest) => (":", rest),
            None => ("", pair),
        };
        let (k, v) = rest.split_once(':')?;
        if k.is_empty() {
            return None;
        }
        m.insert(format!("{lead}{k}").into(), v.to_string());
    }
    Some(m)
}
