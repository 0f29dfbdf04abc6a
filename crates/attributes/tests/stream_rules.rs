//! The stream decoder, rule by rule: the five steps of the wire spec, the
//! error for each way an update can be wrong, and each limit.

use std::time::Duration;

use mixer_attributes::{
    AttrId, Bag, Context, Error, Limits, OwnedBag, StreamState, Timestamp, Value, ValueRef,
};
use mixer_proto::istio::mixer::v1::{Attributes, StringMap};
use prost::Message;

fn dict(words: &[&str]) -> Attributes {
    let mut a = Attributes::default();
    for (i, w) in words.iter().enumerate() {
        a.dictionary.insert(i as i32, w.to_string());
    }
    a
}

fn id(name: &str) -> AttrId {
    AttrId::of(name)
}

/// Applies through both entry points (prost struct and raw bytes) on two
/// copies of the stream, checks they agree, and returns the result.
fn apply_both(
    s: &mut StreamState,
    twin: &mut StreamState,
    a: &Attributes,
) -> Result<OwnedBag, Error> {
    let via_struct = s.apply(a).map(OwnedBag::copy_of);
    let via_bytes = twin.apply_bytes(&a.encode_to_vec()).map(OwnedBag::copy_of);
    assert_eq!(
        via_struct, via_bytes,
        "apply and apply_bytes disagree on {a:?}"
    );
    via_struct
}

struct Pair(StreamState, StreamState);

impl Pair {
    fn new() -> Pair {
        Pair(StreamState::new(), StreamState::new())
    }
    fn with_limits(l: Limits) -> Pair {
        Pair(
            StreamState::with_limits(l.clone()),
            StreamState::with_limits(l),
        )
    }
    fn apply(&mut self, a: &Attributes) -> Result<OwnedBag, Error> {
        apply_both(&mut self.0, &mut self.1, a)
    }
    fn err(&mut self, a: &Attributes) -> String {
        let before: Vec<(i32, Context)> = self.0.contexts().map(|(c, x)| (c, x.clone())).collect();
        let dict_before: Vec<(i32, String)> = self
            .0
            .dictionary()
            .map(|(i, w)| (i, w.to_string()))
            .collect();
        let e = self.apply(a).expect_err("update should fail");
        for s in [&self.0, &self.1] {
            let after: Vec<(i32, Context)> = s.contexts().map(|(c, x)| (c, x.clone())).collect();
            assert_eq!(before, after, "a failed update changed a context");
            let dict_after: Vec<(i32, String)> =
                s.dictionary().map(|(i, w)| (i, w.to_string())).collect();
            assert_eq!(
                dict_before, dict_after,
                "a failed update changed the dictionary"
            );
        }
        e.to_string()
    }
}

#[test]
fn step1_dictionary_replaces_and_stays_in_effect() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.s1.a", "rules.s1.b"]);
    a.string_attributes.insert(1, "x".into());
    p.apply(&a).unwrap();

    // No dictionary: the previous one stays in effect.
    let mut a = Attributes::default();
    a.string_attributes.insert(0, "y".into());
    let bag = p.apply(&a).unwrap();
    assert_eq!(bag.get(id("rules.s1.a")), Some(ValueRef::String("y")));

    // A new dictionary replaces the old one entirely: index 0 now means
    // another name, and index 1 is gone.
    let mut a = dict(&["rules.s1.c"]);
    a.int64_attributes.insert(0, 5);
    let bag = p.apply(&a).unwrap();
    assert_eq!(bag.get(id("rules.s1.c")), Some(ValueRef::Int64(5)));
    assert_eq!(bag.get(id("rules.s1.a")), Some(ValueRef::String("y")));
    let mut a = Attributes::default();
    a.int64_attributes.insert(1, 5);
    assert_eq!(
        p.err(&a),
        "int64_attributes[1]: index 1 is not in the dictionary"
    );
}

#[test]
fn first_request_must_carry_a_dictionary() {
    let mut p = Pair::new();
    let mut a = Attributes::default();
    a.string_attributes.insert(0, "x".into());
    assert_eq!(
        p.err(&a),
        "string_attributes[0]: index 0 is not in the dictionary (the stream has none yet: the first request must carry one)"
    );
    // An empty update needs no dictionary.
    assert!(p.apply(&Attributes::default()).unwrap().is_empty());
}

#[test]
fn unknown_indices_are_named_with_their_field() {
    let mut p = Pair::new();
    p.apply(&dict(&["rules.idx.a", "rules.idx.b"])).unwrap();
    let cases: Vec<(Attributes, &str)> = vec![
        (
            {
                let mut a = Attributes::default();
                a.string_attributes.insert(7, "x".into());
                a
            },
            "string_attributes[7]: index 7 is not in the dictionary",
        ),
        (
            Attributes {
                deleted_attributes: vec![0, 9],
                ..Attributes::default()
            },
            "deleted_attributes[9]: index 9 is not in the dictionary",
        ),
        (
            {
                let mut a = Attributes::default();
                a.bool_attributes.insert(-1, true);
                a
            },
            "bool_attributes[-1]: index -1 is not in the dictionary",
        ),
        (
            {
                let mut a = Attributes::default();
                let mut m = StringMap::default();
                m.map.insert(12, "v".into());
                a.string_map_attributes.insert(0, m);
                a
            },
            "stringMap_attributes[0][12]: index 12 is not in the dictionary",
        ),
        (
            {
                let mut a = Attributes::default();
                a.timestamp_attributes_hack.insert(3, Default::default());
                a
            },
            "timestamp_attributes_HACK[3]: index 3 is not in the dictionary",
        ),
    ];
    for (a, want) in cases {
        assert_eq!(p.err(&a), want);
    }
}

#[test]
fn step2_contexts_are_independent_and_created_empty() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.ctx.a"]);
    a.int64_attributes.insert(0, 1);
    p.apply(&a).unwrap();
    let mut a = Attributes {
        attribute_context: 7,
        ..Attributes::default()
    };
    assert!(
        p.apply(&a).unwrap().is_empty(),
        "a new context starts empty"
    );
    a.int64_attributes.insert(0, 2);
    p.apply(&a).unwrap();
    assert_eq!(
        p.0.context(0).unwrap().get(id("rules.ctx.a")),
        Some(ValueRef::Int64(1))
    );
    assert_eq!(
        p.0.context(7).unwrap().get(id("rules.ctx.a")),
        Some(ValueRef::Int64(2))
    );
    assert!(p.0.context(3).is_none());
}

#[test]
fn step3_reset_empties_before_the_update() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.reset.a", "rules.reset.b"]);
    a.int64_attributes.insert(0, 1);
    a.int64_attributes.insert(1, 2);
    p.apply(&a).unwrap();
    let mut a = Attributes {
        reset_context: true,
        ..Attributes::default()
    };
    a.int64_attributes.insert(1, 3);
    let bag = p.apply(&a).unwrap();
    assert_eq!(bag, OwnedBag::new().with("rules.reset.b", Value::Int64(3)));
}

#[test]
fn step4_deletes_before_step5_sets() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.del.a", "rules.del.b", "rules.del.c"]);
    a.int64_attributes.insert(0, 1);
    a.int64_attributes.insert(1, 2);
    p.apply(&a).unwrap();
    // Delete a (present), c (absent: fine) and b, and set b again: b survives
    // with its new value because deletions come first.
    let mut a = Attributes {
        deleted_attributes: vec![0, 2, 1],
        ..Attributes::default()
    };
    a.int64_attributes.insert(1, 9);
    let bag = p.apply(&a).unwrap();
    assert_eq!(bag, OwnedBag::new().with("rules.del.b", Value::Int64(9)));
}

#[test]
fn step5_overwrites_and_merges_string_maps_key_by_key() {
    let mut p = Pair::new();
    let words = ["rules.map.h", "rules.map.t", ":path", "host", "accept"];
    let mut a = dict(&words);
    let m = |kv: &[(i32, &str)]| StringMap {
        map: kv.iter().map(|(k, v)| (*k, v.to_string())).collect(),
    };
    a.string_map_attributes
        .insert(0, m(&[(2, "/a"), (3, "h1")]));
    a.string_attributes.insert(1, "first".into());
    p.apply(&a).unwrap();

    // Merge: one key changed, one added, the third kept.
    let mut a = Attributes::default();
    a.string_map_attributes
        .insert(0, m(&[(2, "/b"), (4, "*/*")]));
    a.string_attributes.insert(1, "second".into());
    let bag = p.apply(&a).unwrap();
    let want: mixer_attributes::StringMap = [(":path", "/b"), ("host", "h1"), ("accept", "*/*")]
        .into_iter()
        .collect();
    assert_eq!(bag.get(id("rules.map.h")), Some(ValueRef::StringMap(&want)));
    assert_eq!(bag.get(id("rules.map.t")), Some(ValueRef::String("second")));

    // Dropping a key: delete the attribute and send the whole map again.
    let mut a = Attributes {
        deleted_attributes: vec![0],
        ..Attributes::default()
    };
    a.string_map_attributes.insert(0, m(&[(3, "h2")]));
    let bag = p.apply(&a).unwrap();
    let want: mixer_attributes::StringMap = [("host", "h2")].into_iter().collect();
    assert_eq!(bag.get(id("rules.map.h")), Some(ValueRef::StringMap(&want)));

    // A map sent for an attribute holding another type replaces it.
    let mut a = Attributes::default();
    a.string_map_attributes.insert(1, m(&[(3, "h3")]));
    let bag = p.apply(&a).unwrap();
    let want: mixer_attributes::StringMap = [("host", "h3")].into_iter().collect();
    assert_eq!(bag.get(id("rules.map.t")), Some(ValueRef::StringMap(&want)));
}

#[test]
fn hack_fields_read_as_timestamp_and_duration() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.hack.t", "rules.hack.d"]);
    a.timestamp_attributes_hack.insert(
        0,
        prost_types::Timestamp {
            seconds: 1_500_000_000,
            nanos: 5,
        },
    );
    a.duration_attributes_hack.insert(
        1,
        prost_types::Duration {
            seconds: 2,
            nanos: 500_000_000,
        },
    );
    let bag = p.apply(&a).unwrap();
    assert_eq!(
        bag,
        OwnedBag::new()
            .with(
                "rules.hack.t",
                Value::Timestamp(Timestamp::new(1_500_000_000, 5).unwrap())
            )
            .with("rules.hack.d", Value::Duration(Duration::from_millis(2500)))
    );
}

#[test]
fn every_wire_type_is_stored() {
    let mut p = Pair::new();
    let names = [
        "rules.all.s",
        "rules.all.i",
        "rules.all.f",
        "rules.all.b",
        "rules.all.t",
        "rules.all.d",
        "rules.all.y",
        "rules.all.m",
        "k",
    ];
    let mut a = dict(&names);
    a.string_attributes.insert(0, "s".into());
    a.int64_attributes.insert(1, -7);
    a.double_attributes.insert(2, 0.25);
    a.bool_attributes.insert(3, true);
    a.timestamp_attributes.insert(
        4,
        prost_types::Timestamp {
            seconds: -5,
            nanos: 1,
        },
    );
    a.duration_attributes.insert(
        5,
        prost_types::Duration {
            seconds: 0,
            nanos: 7,
        },
    );
    a.bytes_attributes.insert(6, vec![1, 2, 3, 4]);
    a.string_map_attributes.insert(
        7,
        StringMap {
            map: [(8, "v".to_string())].into_iter().collect(),
        },
    );
    let bag = p.apply(&a).unwrap();
    let want = OwnedBag::new()
        .with("rules.all.s", Value::String("s".into()))
        .with("rules.all.i", Value::Int64(-7))
        .with("rules.all.f", Value::Double(0.25))
        .with("rules.all.b", Value::Bool(true))
        .with(
            "rules.all.t",
            Value::Timestamp(Timestamp::new(-5, 1).unwrap()),
        )
        .with("rules.all.d", Value::Duration(Duration::from_nanos(7)))
        .with("rules.all.y", Value::Bytes(vec![1, 2, 3, 4]))
        .with(
            "rules.all.m",
            Value::StringMap([("k", "v")].into_iter().collect()),
        );
    assert_eq!(bag, want);
}

#[test]
fn same_attribute_in_two_fields_is_an_error() {
    let mut p = Pair::new();
    p.apply(&dict(&["rules.two.a"])).unwrap();
    let mut a = Attributes::default();
    a.string_attributes.insert(0, "x".into());
    a.int64_attributes.insert(0, 1);
    assert_eq!(
        p.err(&a),
        "int64_attributes[0]: attribute 'rules.two.a' is also set as STRING by string_attributes[0] in the same update"
    );
    // A field and its HACK twin are two fields too: which one would win is
    // not defined, so the update is refused.
    let mut a = Attributes::default();
    a.timestamp_attributes.insert(
        0,
        prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        },
    );
    a.timestamp_attributes_hack.insert(
        0,
        prost_types::Timestamp {
            seconds: 2,
            nanos: 0,
        },
    );
    assert_eq!(
        p.err(&a),
        "timestamp_attributes_HACK[0]: attribute 'rules.two.a' is also set as TIMESTAMP by timestamp_attributes[0] in the same update"
    );
}

#[test]
fn a_dictionary_may_not_name_an_attribute_twice() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.dup.a", "rules.dup.b", "rules.dup.a"]);
    a.int64_attributes.insert(0, 1);
    assert_eq!(
        p.err(&a),
        "dictionary[2]: name 'rules.dup.a' is already at index 0"
    );
}

#[test]
fn durations_and_timestamps_out_of_range_are_errors() {
    let mut p = Pair::new();
    p.apply(&dict(&["rules.range.d", "rules.range.t"])).unwrap();
    let mut a = Attributes::default();
    a.duration_attributes.insert(
        0,
        prost_types::Duration {
            seconds: -1,
            nanos: 0,
        },
    );
    assert_eq!(
        p.err(&a),
        "duration_attributes[0]: negative duration (seconds -1, nanos 0) is not allowed"
    );
    let mut a = Attributes::default();
    a.duration_attributes_hack.insert(
        0,
        prost_types::Duration {
            seconds: 1,
            nanos: 1_000_000_000,
        },
    );
    assert_eq!(
        p.err(&a),
        "duration_attributes_HACK[0]: duration nanos 1000000000 outside 0..=999999999"
    );
    let mut a = Attributes::default();
    a.timestamp_attributes.insert(
        1,
        prost_types::Timestamp {
            seconds: i64::MAX,
            nanos: 0,
        },
    );
    assert_eq!(
        p.err(&a),
        format!(
            "timestamp_attributes[1]: timestamp (seconds {}, nanos 0) is outside years 1 to 9999",
            i64::MAX
        )
    );
}

#[test]
fn malformed_bytes_are_a_typed_error() {
    let mut s = StreamState::new();
    // Field 4 (string_attributes) claims 10 bytes but has 1.
    let e = s.apply_bytes(&[0x22, 10, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed Attributes message: length runs past the end of the message (in Attributes at byte 2)"
    );
    // Field 2 (attribute_context) as a length-delimited field.
    let e = s.apply_bytes(&[0x12, 0]).unwrap_err();
    assert_eq!(
        e.to_string(),
        "malformed Attributes message: wrong wire type for this field (in attribute_context at byte 2)"
    );
    // A string value that is not UTF-8: entry {1: 0, 2: [0xff]}.
    let mut d = dict(&["rules.utf8.a"]).encode_to_vec();
    d.extend_from_slice(&[0x22, 5, 0x08, 0, 0x12, 1, 0xff]);
    let e = s.apply_bytes(&d).unwrap_err();
    assert!(
        e.to_string()
            .contains("string is not valid UTF-8 (in string_attributes"),
        "{e}"
    );
    assert!(s.context(0).is_none());
}

#[test]
fn limit_max_contexts() {
    let mut p = Pair::with_limits(Limits {
        max_contexts: 2,
        ..Limits::default()
    });
    for c in [0, 1, 0, 1] {
        p.apply(&Attributes {
            attribute_context: c,
            ..Attributes::default()
        })
        .unwrap();
    }
    let e = p.err(&Attributes {
        attribute_context: 2,
        ..Attributes::default()
    });
    assert_eq!(
        e,
        "attribute_context 2: the stream already holds 2 contexts, the limit (reuse a context or reset one)"
    );
}

#[test]
fn limit_max_dictionary_entries() {
    let mut p = Pair::with_limits(Limits {
        max_dictionary_entries: 3,
        ..Limits::default()
    });
    p.apply(&dict(&["rules.ld.a", "rules.ld.b", "rules.ld.c"]))
        .unwrap();
    assert_eq!(
        p.err(&dict(&[
            "rules.ld.a",
            "rules.ld.b",
            "rules.ld.c",
            "rules.ld.d"
        ])),
        "dictionary: 4 entries exceed the limit of 3"
    );
}

#[test]
fn limit_max_attributes_per_context_counts_the_result() {
    let mut p = Pair::with_limits(Limits {
        max_attributes_per_context: 3,
        ..Limits::default()
    });
    let mut a = dict(&["rules.la.a", "rules.la.b", "rules.la.c", "rules.la.d"]);
    for i in 0..3 {
        a.int64_attributes.insert(i, 0);
    }
    p.apply(&a).unwrap();
    // Overwriting present attributes does not add any.
    let mut a = Attributes::default();
    a.int64_attributes.insert(0, 1);
    a.int64_attributes.insert(2, 1);
    p.apply(&a).unwrap();
    // A fourth one would exceed the limit...
    let mut a = Attributes::default();
    a.int64_attributes.insert(3, 1);
    assert_eq!(
        p.err(&a),
        "attribute_context 0: the update would leave 4 attributes, more than the limit of 3"
    );
    // ...unless another goes in the same update, or the context is reset.
    a.deleted_attributes = vec![0];
    assert_eq!(p.apply(&a).unwrap().len(), 3);
    let mut a = Attributes {
        reset_context: true,
        ..Attributes::default()
    };
    a.int64_attributes.insert(3, 2);
    assert_eq!(p.apply(&a).unwrap().len(), 1);
}

#[test]
fn limit_max_value_bytes() {
    let mut p = Pair::with_limits(Limits {
        max_value_bytes: 4,
        ..Limits::default()
    });
    let mut a = dict(&["lv.s", "lv.y", "lv.m", "k"]);
    a.string_attributes.insert(0, "1234".into());
    p.apply(&a).unwrap();
    let mut a = Attributes::default();
    a.string_attributes.insert(0, "12345".into());
    assert_eq!(
        p.err(&a),
        "string_attributes[0]: value of 5 bytes exceeds the limit of 4 bytes"
    );
    let mut a = Attributes::default();
    a.bytes_attributes.insert(1, vec![0; 6]);
    assert_eq!(
        p.err(&a),
        "bytes_attributes[1]: value of 6 bytes exceeds the limit of 4 bytes"
    );
    let mut a = Attributes::default();
    a.string_map_attributes.insert(
        2,
        StringMap {
            map: [(3, "abcdefg".to_string())].into_iter().collect(),
        },
    );
    assert_eq!(
        p.err(&a),
        "stringMap_attributes[2][3]: value of 7 bytes exceeds the limit of 4 bytes"
    );
    assert_eq!(
        p.err(&dict(&["lv.long"])),
        "dictionary[0]: name of 7 bytes exceeds the limit of 4 bytes"
    );
}

#[test]
fn limits_have_documented_defaults() {
    let l = Limits::default();
    assert_eq!(
        (
            l.max_contexts,
            l.max_dictionary_entries,
            l.max_attributes_per_context,
            l.max_value_bytes
        ),
        (64, 10_000, 1_024, 65_536)
    );
    assert_eq!(mixer_attributes::DEFAULT_MAX_MESSAGE_BYTES, 1 << 20);
}

#[test]
fn a_failed_update_creates_no_context_and_keeps_the_old_dictionary() {
    let mut p = Pair::new();
    let mut a = dict(&["rules.atomic.a"]);
    a.int64_attributes.insert(0, 1);
    p.apply(&a).unwrap();
    // New dictionary, new context, a reset and a deletion, then a bad value:
    // none of it may take effect.
    let mut a = dict(&["rules.atomic.b"]);
    a.attribute_context = 5;
    a.reset_context = true;
    a.deleted_attributes = vec![0];
    a.duration_attributes.insert(
        0,
        prost_types::Duration {
            seconds: -3,
            nanos: 0,
        },
    );
    p.err(&a);
    assert!(p.0.context(5).is_none());
    assert_eq!(p.0.dictionary_word(0), Some("rules.atomic.a"));
}

/// Bytes a different encoder might write: fields out of order (dictionary
/// last), unknown fields, unpacked `deleted_attributes`, a HACK field and
/// map entries missing their key or value.
#[test]
fn raw_bytes_in_any_field_order() {
    fn entry(key: Option<u8>, value: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        if let Some(k) = key {
            e.extend_from_slice(&[0x08, k]);
        }
        e.extend_from_slice(value);
        e
    }
    fn field(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut f = vec![tag, body.len() as u8];
        f.extend_from_slice(body);
        f
    }
    let mut s = StreamState::new();
    let mut b = Vec::new();
    // string_attributes {1: "x"}, and an entry without key (index 0) and
    // without value ("").
    b.extend(field(0x22, &entry(Some(1), &[0x12, 1, b'x'])));
    b.extend(field(0x22, &entry(None, &[])));
    // unknown field 99 (varint) and 100 (length-delimited): skipped.
    b.extend_from_slice(&[0x98, 0x06, 0x05]);
    b.extend_from_slice(&[0xa2, 0x06, 0x01, 0xff]);
    // duration_attributes_HACK {2: 3s}
    b.extend(field(0x72, &entry(Some(2), &field(0x12, &[0x08, 3]))));
    // deleted_attributes 3, unpacked.
    b.extend_from_slice(&[0x60, 3]);
    // dictionary last.
    for (i, w) in ["raw.a", "raw.b", "raw.c", "raw.d"].iter().enumerate() {
        let mut v = vec![0x12, w.len() as u8];
        v.extend_from_slice(w.as_bytes());
        b.extend(field(0x0a, &entry(Some(i as u8), &v)));
    }
    let bag = OwnedBag::copy_of(s.apply_bytes(&b).unwrap());
    assert_eq!(
        bag,
        OwnedBag::new()
            .with("raw.a", Value::String(String::new()))
            .with("raw.b", Value::String("x".into()))
            .with("raw.c", Value::Duration(Duration::from_secs(3)))
    );
    // The same bytes through prost give the same bag.
    let decoded = Attributes::decode(b.as_slice()).unwrap();
    let mut t = StreamState::new();
    assert_eq!(OwnedBag::copy_of(t.apply(&decoded).unwrap()), bag);
}
