//! The Fluentd Forward protocol's messages, in msgpack: entries
//! `[EventTime, record]` and Forward-mode messages
//! `[tag, [entry, ...], {"size": n}]`.

use mixer_attributes::{Timestamp, Value, format_duration};
use rmpv::{Integer, ValueRef as M};

use crate::template::LogEntryInstance;

/// One log entry encoded as `[EventTime, record]`, with its tag.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) tag: String,
    pub(crate) bytes: Vec<u8>,
}

/// Encodes an instance: tag = the instance name, or its `tag` variable
/// (removed from the record, and the instance name added as `name`);
/// record = the variables plus `severity`; time = the instance's
/// timestamp, or `now` when it has none.
pub(crate) fn entry(inst: &LogEntryInstance, now: Timestamp, integer_duration: bool) -> Entry {
    let tag_var = inst.variables.get("tag").and_then(|v| match v {
        Value::String(s) => Some(s.as_str()),
        _ => None,
    });
    let tag = tag_var.unwrap_or(&inst.name).to_string();
    let t = inst.timestamp.unwrap_or(now);
    let mut time = [0u8; 8];
    // EventTime holds unsigned 32-bit seconds: clamp what cannot fit.
    let secs = t.seconds().clamp(0, i64::from(u32::MAX)) as u32;
    time[..4].copy_from_slice(&secs.to_be_bytes());
    time[4..].copy_from_slice(&t.nanos().to_be_bytes());

    let mut rendered: Vec<String> = Vec::new();
    // First pass: the text of values msgpack has no type for, so that the
    // record can borrow them.
    for v in inst.variables.values() {
        if let Some(s) = as_text(v, integer_duration) {
            rendered.push(s);
        }
    }
    let mut texts = rendered.iter();
    let mut record: Vec<(&str, M<'_>)> = Vec::with_capacity(inst.variables.len() + 2);
    for (k, v) in &inst.variables {
        let value = match as_msgpack(v, integer_duration) {
            Some(m) => m,
            None => M::from(texts.next().map(String::as_str).unwrap_or("")),
        };
        if tag_var.is_some() && &**k == "tag" {
            continue;
        }
        record.push((k, value));
    }
    if tag_var.is_some() {
        record.retain(|(k, _)| *k != "name");
        record.push(("name", M::from(&*inst.name)));
    }
    record.retain(|(k, _)| *k != "severity");
    record.push(("severity", M::from(inst.severity.as_str())));
    let record = record.into_iter().map(|(k, v)| (M::from(k), v)).collect();
    let mut bytes = Vec::with_capacity(64);
    array_len(&mut bytes, 2);
    write(&mut bytes, &M::Ext(0, &time));
    write(&mut bytes, &M::Map(record));
    Entry { tag, bytes }
}

/// Values msgpack holds natively.
fn as_msgpack(v: &Value, integer_duration: bool) -> Option<M<'_>> {
    Some(match v {
        Value::String(s) | Value::EmailAddress(s) | Value::Uri(s) | Value::DnsName(s) => {
            M::from(s.as_str())
        }
        Value::Int64(i) => M::Integer(Integer::from(*i)),
        Value::Double(d) => M::F64(*d),
        Value::Bool(b) => M::Boolean(*b),
        Value::Bytes(b) if mixer_attributes::ip_from_bytes(b).is_none() => M::Binary(b),
        Value::Duration(d) if integer_duration => M::Integer(Integer::from(
            i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        )),
        Value::StringMap(m) => M::Map(m.iter().map(|(k, v)| (M::from(k), M::from(v))).collect()),
        _ => return None,
    })
}

/// Values written as text: timestamps (RFC 3339), durations (`1.5s`),
/// IP addresses.
fn as_text(v: &Value, integer_duration: bool) -> Option<String> {
    match v {
        Value::Duration(d) if !integer_duration => Some(format_duration(*d)),
        _ if as_msgpack(v, integer_duration).is_some() => None,
        other => Some(other.to_string()),
    }
}

fn write(out: &mut Vec<u8>, v: &M<'_>) {
    // Writing to a Vec cannot fail.
    let _ = rmpv::encode::write_value_ref(out, v);
}

/// An array header of `n` elements.
pub(crate) fn array_len(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x90 | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xdc);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdd);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

/// Appends a Forward-mode message: `[tag, [entries...], {"size": n}]`.
/// `entries` is the concatenation of `n` encoded entries.
pub(crate) fn forward(out: &mut Vec<u8>, tag: &str, entries: &[u8], n: usize) {
    array_len(out, 3);
    write(out, &M::from(tag));
    array_len(out, n);
    out.extend_from_slice(entries);
    write(
        out,
        &M::Map(vec![(M::from("size"), M::Integer(Integer::from(n as u64)))]),
    );
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use crate::template::Dimensions;

    use super::*;

    fn inst(vars: &[(&str, Value)]) -> LogEntryInstance {
        LogEntryInstance {
            name: "accesslog.instance.ns".into(),
            variables: vars
                .iter()
                .map(|(k, v)| (Arc::from(*k), v.clone()))
                .collect::<Dimensions>(),
            timestamp: Timestamp::new(1_500_000_000, 123_456_789),
            severity: "Warning".into(),
            monitored_resource_type: String::new(),
            monitored_resource_dimensions: Dimensions::new(),
        }
    }

    fn decode(bytes: &[u8]) -> rmpv::Value {
        let mut r = bytes;
        let v = rmpv::decode::read_value(&mut r).unwrap();
        assert!(r.is_empty(), "trailing bytes");
        v
    }

    #[test]
    fn entry_layout_and_event_time() {
        let e = entry(
            &inst(&[("code", Value::Int64(200))]),
            Timestamp::default(),
            false,
        );
        assert_eq!(e.tag, "accesslog.instance.ns");
        // fixarray(2), fixext8 type 0, seconds and nanos big-endian.
        assert_eq!(&e.bytes[..3], &[0x92, 0xd7, 0x00]);
        assert_eq!(&e.bytes[3..7], &1_500_000_000u32.to_be_bytes());
        assert_eq!(&e.bytes[7..11], &123_456_789u32.to_be_bytes());
    }

    #[test]
    fn tag_variable_and_value_types() {
        let e = entry(
            &inst(&[
                ("tag", Value::String("custom".into())),
                ("name", Value::String("replaced".into())),
                ("latency", Value::Duration(Duration::from_millis(1500))),
                ("ip", Value::IpAddress("10.0.0.1".parse().unwrap())),
                ("ok", Value::Bool(true)),
            ]),
            Timestamp::default(),
            false,
        );
        assert_eq!(e.tag, "custom");
        let v = decode(&e.bytes);
        let rec = v[1].as_map().unwrap();
        let get = |k: &str| {
            rec.iter()
                .find(|(x, _)| x.as_str() == Some(k))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("tag"), None);
        assert_eq!(
            get("name"),
            Some(rmpv::Value::from("accesslog.instance.ns"))
        );
        assert_eq!(get("latency"), Some(rmpv::Value::from("1.5s")));
        assert_eq!(get("ip"), Some(rmpv::Value::from("10.0.0.1")));
        assert_eq!(get("ok"), Some(rmpv::Value::from(true)));
        assert_eq!(get("severity"), Some(rmpv::Value::from("Warning")));
        let e = entry(
            &inst(&[("latency", Value::Duration(Duration::from_millis(1500)))]),
            Timestamp::default(),
            true,
        );
        let v = decode(&e.bytes);
        assert_eq!(v[1].as_map().unwrap()[0].1, rmpv::Value::from(1500));
    }

    #[test]
    fn array_headers_at_every_width() {
        for (n, head) in [
            (3usize, vec![0x93]),
            (15, vec![0x9f]),
            (16, vec![0xdc, 0, 16]),
            (70_000, vec![0xdd, 0, 1, 0x11, 0x70]),
        ] {
            let mut out = Vec::new();
            array_len(&mut out, n);
            assert_eq!(out, head, "{n}");
        }
    }
}
