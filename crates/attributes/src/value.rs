//! Attribute values and their types.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::time::{Timestamp, format_duration};

/// The type of an attribute or of an expression.
///
/// The first eight are what the wire carries; the last four are semantic
/// types that exist only in manifests and the expression checker
/// (an `IP_ADDRESS` attribute travels as 4 or 16 bytes).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ValueType {
    /// UTF-8 text.
    String,
    /// Signed 64-bit integer.
    Int64,
    /// 64-bit float.
    Double,
    /// Boolean.
    Bool,
    /// A point in time.
    Timestamp,
    /// A span of time.
    Duration,
    /// Raw bytes.
    Bytes,
    /// A map from string keys to string values (headers, labels).
    StringMap,
    /// An IPv4 or IPv6 address (bytes on the wire).
    IpAddress,
    /// An e-mail address (a string on the wire).
    EmailAddress,
    /// A URI (a string on the wire).
    Uri,
    /// A DNS name (a string on the wire).
    DnsName,
}

impl ValueType {
    /// Every type, in declaration order.
    pub const ALL: [ValueType; 12] = [
        ValueType::String,
        ValueType::Int64,
        ValueType::Double,
        ValueType::Bool,
        ValueType::Timestamp,
        ValueType::Duration,
        ValueType::Bytes,
        ValueType::StringMap,
        ValueType::IpAddress,
        ValueType::EmailAddress,
        ValueType::Uri,
        ValueType::DnsName,
    ];

    /// The name used in manifests and messages (`STRING_MAP`).
    pub fn name(self) -> &'static str {
        match self {
            ValueType::String => "STRING",
            ValueType::Int64 => "INT64",
            ValueType::Double => "DOUBLE",
            ValueType::Bool => "BOOL",
            ValueType::Timestamp => "TIMESTAMP",
            ValueType::Duration => "DURATION",
            ValueType::Bytes => "BYTES",
            ValueType::StringMap => "STRING_MAP",
            ValueType::IpAddress => "IP_ADDRESS",
            ValueType::EmailAddress => "EMAIL_ADDRESS",
            ValueType::Uri => "URI",
            ValueType::DnsName => "DNS_NAME",
        }
    }

    /// The type named `name` as written in a manifest (`STRING_MAP`).
    pub fn from_name(name: &str) -> Option<ValueType> {
        ValueType::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The type the wire carries a value of this type as.
    pub fn wire_type(self) -> ValueType {
        match self {
            ValueType::IpAddress => ValueType::Bytes,
            ValueType::EmailAddress | ValueType::Uri | ValueType::DnsName => ValueType::String,
            t => t,
        }
    }
}

impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A map from string keys to string values, ordered by key.
///
/// Keys are shared `Arc<str>` so that keys taken from a stream's dictionary
/// cost no allocation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct StringMap(BTreeMap<Arc<str>, String>);

impl StringMap {
    /// An empty map.
    pub fn new() -> StringMap {
        StringMap::default()
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The value under `key`, to modify in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut String> {
        self.0.get_mut(key)
    }

    /// Sets `key` to `value`, returning the previous value.
    pub fn insert(&mut self, key: Arc<str>, value: String) -> Option<String> {
        self.0.insert(key, value)
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) -> Option<String> {
        self.0.remove(key)
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.0.iter().map(|(k, v)| (&**k, v.as_str()))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<K: Into<Arc<str>>, V: Into<String>> FromIterator<(K, V)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        StringMap(
            iter.into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        )
    }
}

/// Renders `k=v&k2=v2` in key order, the one rendering of maps everywhere.
impl fmt::Display for StringMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str("&")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

/// An owned value of any [`ValueType`].
///
/// Bags hold only the eight wire types; the semantic ones are produced by
/// expressions (`ip("10.0.0.1")`) and reach adapters in instance fields.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// STRING.
    String(String),
    /// INT64.
    Int64(i64),
    /// DOUBLE.
    Double(f64),
    /// BOOL.
    Bool(bool),
    /// TIMESTAMP.
    Timestamp(Timestamp),
    /// DURATION.
    Duration(Duration),
    /// BYTES.
    Bytes(Vec<u8>),
    /// STRING_MAP.
    StringMap(StringMap),
    /// IP_ADDRESS.
    IpAddress(IpAddr),
    /// EMAIL_ADDRESS.
    EmailAddress(String),
    /// URI.
    Uri(String),
    /// DNS_NAME.
    DnsName(String),
}

/// A borrowed view of a [`Value`], what bags hand out.
#[derive(Copy, Clone, Debug, PartialEq)]
pub enum ValueRef<'a> {
    /// STRING.
    String(&'a str),
    /// INT64.
    Int64(i64),
    /// DOUBLE.
    Double(f64),
    /// BOOL.
    Bool(bool),
    /// TIMESTAMP.
    Timestamp(Timestamp),
    /// DURATION.
    Duration(Duration),
    /// BYTES.
    Bytes(&'a [u8]),
    /// STRING_MAP.
    StringMap(&'a StringMap),
    /// IP_ADDRESS.
    IpAddress(IpAddr),
    /// EMAIL_ADDRESS.
    EmailAddress(&'a str),
    /// URI.
    Uri(&'a str),
    /// DNS_NAME.
    DnsName(&'a str),
}

impl Value {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        self.as_ref().value_type()
    }

    /// A borrowed view.
    pub fn as_ref(&self) -> ValueRef<'_> {
        match self {
            Value::String(s) => ValueRef::String(s),
            Value::Int64(v) => ValueRef::Int64(*v),
            Value::Double(v) => ValueRef::Double(*v),
            Value::Bool(v) => ValueRef::Bool(*v),
            Value::Timestamp(v) => ValueRef::Timestamp(*v),
            Value::Duration(v) => ValueRef::Duration(*v),
            Value::Bytes(v) => ValueRef::Bytes(v),
            Value::StringMap(v) => ValueRef::StringMap(v),
            Value::IpAddress(v) => ValueRef::IpAddress(*v),
            Value::EmailAddress(v) => ValueRef::EmailAddress(v),
            Value::Uri(v) => ValueRef::Uri(v),
            Value::DnsName(v) => ValueRef::DnsName(v),
        }
    }
}

impl<'a> ValueRef<'a> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            ValueRef::String(_) => ValueType::String,
            ValueRef::Int64(_) => ValueType::Int64,
            ValueRef::Double(_) => ValueType::Double,
            ValueRef::Bool(_) => ValueType::Bool,
            ValueRef::Timestamp(_) => ValueType::Timestamp,
            ValueRef::Duration(_) => ValueType::Duration,
            ValueRef::Bytes(_) => ValueType::Bytes,
            ValueRef::StringMap(_) => ValueType::StringMap,
            ValueRef::IpAddress(_) => ValueType::IpAddress,
            ValueRef::EmailAddress(_) => ValueType::EmailAddress,
            ValueRef::Uri(_) => ValueType::Uri,
            ValueRef::DnsName(_) => ValueType::DnsName,
        }
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Value {
        match *self {
            ValueRef::String(s) => Value::String(s.to_string()),
            ValueRef::Int64(v) => Value::Int64(v),
            ValueRef::Double(v) => Value::Double(v),
            ValueRef::Bool(v) => Value::Bool(v),
            ValueRef::Timestamp(v) => Value::Timestamp(v),
            ValueRef::Duration(v) => Value::Duration(v),
            ValueRef::Bytes(v) => Value::Bytes(v.to_vec()),
            ValueRef::StringMap(v) => Value::StringMap(v.clone()),
            ValueRef::IpAddress(v) => Value::IpAddress(v),
            ValueRef::EmailAddress(v) => Value::EmailAddress(v.to_string()),
            ValueRef::Uri(v) => Value::Uri(v.to_string()),
            ValueRef::DnsName(v) => Value::DnsName(v.to_string()),
        }
    }

    /// The string of a STRING value (or of a semantic string type).
    pub fn as_str(&self) -> Option<&'a str> {
        match *self {
            ValueRef::String(s)
            | ValueRef::EmailAddress(s)
            | ValueRef::Uri(s)
            | ValueRef::DnsName(s) => Some(s),
            _ => None,
        }
    }
}

/// Bytes of length 4 or 16 read as an IP address.
pub fn ip_from_bytes(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(b).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(b).ok()?)),
        _ => None,
    }
}

/// The one rendering of values as text, used by every adapter: integers
/// decimal, doubles shortest round-trip, IPs dotted or colon form,
/// timestamps RFC 3339 in UTC, durations like `1.5s`, maps as `k=v&k2=v2`
/// with sorted keys. Bytes of IP length render as an IP (that is how
/// IP_ADDRESS attributes travel); other bytes as lowercase hex.
impl fmt::Display for ValueRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValueRef::String(s)
            | ValueRef::EmailAddress(s)
            | ValueRef::Uri(s)
            | ValueRef::DnsName(s) => f.write_str(s),
            ValueRef::Int64(v) => write!(f, "{v}"),
            ValueRef::Double(v) => write!(f, "{v}"),
            ValueRef::Bool(v) => write!(f, "{v}"),
            ValueRef::Timestamp(t) => write!(f, "{t}"),
            ValueRef::Duration(d) => f.write_str(&format_duration(*d)),
            ValueRef::Bytes(b) => match ip_from_bytes(b) {
                Some(ip) => write!(f, "{ip}"),
                None => b.iter().try_for_each(|x| write!(f, "{x:02x}")),
            },
            ValueRef::StringMap(m) => write!(f, "{m}"),
            ValueRef::IpAddress(ip) => write!(f, "{ip}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_ref().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_round_trip() {
        for t in ValueType::ALL {
            assert_eq!(ValueType::from_name(t.name()), Some(t));
        }
        assert_eq!(ValueType::from_name("string"), None);
        assert_eq!(ValueType::IpAddress.wire_type(), ValueType::Bytes);
        assert_eq!(ValueType::Uri.wire_type(), ValueType::String);
    }

    #[test]
    fn rendering() {
        let m: StringMap = [("b", "2"), ("a", "1")].into_iter().collect();
        let cases: Vec<(Value, &str)> = vec![
            (Value::Int64(-42), "-42"),
            (Value::Double(0.1), "0.1"),
            (Value::Double(1.0), "1"),
            (Value::Bool(true), "true"),
            (Value::Duration(Duration::from_millis(1500)), "1.5s"),
            (
                Value::Timestamp(Timestamp::new(0, 0).unwrap()),
                "1970-01-01T00:00:00Z",
            ),
            (Value::Bytes(vec![10, 0, 0, 1]), "10.0.0.1"),
            (Value::Bytes(vec![0xde, 0xad]), "dead"),
            (Value::IpAddress("::1".parse().unwrap()), "::1"),
            (Value::StringMap(m), "a=1&b=2"),
            (Value::String("x y".into()), "x y"),
        ];
        for (v, want) in cases {
            assert_eq!(v.to_string(), want);
            assert_eq!(v.as_ref().to_owned(), v);
        }
    }
}
