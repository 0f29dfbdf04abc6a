//! Property: for random sequences of bags over several contexts, encoder ->
//! protobuf bytes -> decoder reproduces every bag exactly, through deletions,
//! type changes, string-map key changes, dictionary growth, lost updates
//! and resets.

use std::collections::BTreeMap;
use std::time::Duration;

use mixer_attributes::{AttrId, Encoder, OwnedBag, StreamState, Timestamp, Value};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use prost::Message;

const NAMES: usize = 40;
const KEYS: [&str; 6] = [
    ":path",
    "host",
    "user-agent",
    "x-request-id",
    "accept",
    "cookie",
];

fn name(i: usize) -> AttrId {
    AttrId::of(&format!("roundtrip.attr{i}"))
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        "[a-z/]{0,8}".prop_map(Value::String),
        any::<i64>().prop_map(Value::Int64),
        (-1e9f64..1e9).prop_map(Value::Double),
        any::<bool>().prop_map(Value::Bool),
        (-62_135_596_800i64..253_402_300_799, 0..1_000_000_000i32)
            .prop_map(|(s, n)| Value::Timestamp(Timestamp::new(s, n).unwrap())),
        (0..i64::MAX as u64, 0..1_000_000_000u32)
            .prop_map(|(s, n)| Value::Duration(Duration::new(s, n))),
        vec(any::<u8>(), 0..6).prop_map(Value::Bytes),
        btree_map(0..KEYS.len(), "[a-c]{0,2}", 0..5)
            .prop_map(|m| { Value::StringMap(m.into_iter().map(|(k, v)| (KEYS[k], v)).collect()) }),
    ]
}

#[derive(Clone, Debug)]
enum Step {
    /// Change some attributes of a context's bag (None removes) and send it.
    Send {
        context: i32,
        changes: Vec<(usize, Option<Value>)>,
    },
    /// Like `Send`, but the update is lost (the server refused it); the
    /// client then resets the context.
    Lose {
        context: i32,
        changes: Vec<(usize, Option<Value>)>,
    },
    /// The client resets a context; the next `Send` carries everything.
    Reset { context: i32 },
}

fn changes() -> impl Strategy<Value = Vec<(usize, Option<Value>)>> {
    // Names are drawn mostly from a small set (so values repeat and deltas
    // stay small) and sometimes from the whole pool (so the dictionary grows).
    vec(
        (
            prop_oneof![4 => 0..8usize, 1 => 0..NAMES],
            prop_oneof![3 => value().prop_map(Some), 1 => Just(None)],
        ),
        0..8,
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (0..3i32, changes()).prop_map(|(context, changes)| Step::Send { context, changes }),
        1 => (0..3i32, changes()).prop_map(|(context, changes)| Step::Lose { context, changes }),
        1 => (0..3i32).prop_map(|context| Step::Reset { context }),
    ]
}

fn change(bag: &mut OwnedBag, changes: &[(usize, Option<Value>)]) {
    for (i, v) in changes {
        match v {
            Some(v) => {
                bag.set(name(*i), v.clone());
            }
            None => {
                bag.remove(name(*i));
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encoder_then_decoder_reproduces_every_bag(steps in vec(step(), 1..40)) {
        let mut client = Encoder::new();
        let mut server = StreamState::new();
        let mut server_struct = StreamState::new();
        let mut bags: BTreeMap<i32, OwnedBag> = BTreeMap::new();
        for step in steps {
            match step {
                Step::Send { context, changes } => {
                    let bag = bags.entry(context).or_default();
                    change(bag, &changes);
                    let update = client.encode(context, &*bag).unwrap();
                    prop_assert!(update.timestamp_attributes_hack.is_empty());
                    prop_assert!(update.duration_attributes_hack.is_empty());
                    let bytes = update.encode_to_vec();
                    let want = OwnedBag::copy_of(&*bag);
                    let got = OwnedBag::copy_of(server.apply_bytes(&bytes).unwrap());
                    prop_assert_eq!(&got, &want);
                    let decoded = mixer_proto::istio::mixer::v1::Attributes::decode(&*bytes).unwrap();
                    let got = OwnedBag::copy_of(server_struct.apply(&decoded).unwrap());
                    prop_assert_eq!(&got, &want);
                }
                Step::Lose { context, changes } => {
                    let bag = bags.entry(context).or_default();
                    let mut lost = bag.clone();
                    change(&mut lost, &changes);
                    let _dropped = client.encode(context, &lost).unwrap();
                    client.reset(context);
                }
                Step::Reset { context } => client.reset(context),
            }
        }
    }
}

#[test]
fn unchanged_bag_sends_an_empty_update() {
    let mut client = Encoder::new();
    let bag = OwnedBag::new()
        .with("roundtrip.same.a", Value::String("x".into()))
        .with(
            "roundtrip.same.m",
            Value::StringMap([("k", "v")].into_iter().collect()),
        )
        .with("roundtrip.same.f", Value::Double(f64::NAN));
    let first = client.encode(0, &bag).unwrap();
    assert_eq!(first.dictionary.len(), 4, "three names and one map key");
    let second = client.encode(0, &bag).unwrap();
    assert_eq!(
        second,
        mixer_proto::istio::mixer::v1::Attributes::default(),
        "nothing changed, nothing sent"
    );
}

#[test]
fn string_maps_send_changed_keys_or_delete_and_resend() {
    let mut client = Encoder::new();
    let m =
        |kv: &[(&'static str, &str)]| Value::StringMap(kv.iter().map(|(k, v)| (*k, *v)).collect());
    let bag = |v| OwnedBag::new().with("roundtrip.map.h", v);
    client
        .encode(0, &bag(m(&[("a", "1"), ("b", "2")])))
        .unwrap();
    let w =
        |client: &Encoder, s: &str| client.words().iter().position(|x| &**x == s).unwrap() as i32;
    let (h, b) = (w(&client, "roundtrip.map.h"), w(&client, "b"));
    // One key changed: only that key travels.
    let u = client
        .encode(0, &bag(m(&[("a", "1"), ("b", "3")])))
        .unwrap();
    assert!(u.deleted_attributes.is_empty());
    assert_eq!(
        u.string_map_attributes[&h].map,
        [(b, "3".to_string())].into_iter().collect()
    );
    // A key vanished: delete and send the whole map.
    let u = client.encode(0, &bag(m(&[("b", "3")]))).unwrap();
    assert_eq!(u.deleted_attributes, vec![h]);
    assert_eq!(
        u.string_map_attributes[&h].map,
        [(b, "3".to_string())].into_iter().collect()
    );
}

#[test]
fn dictionary_is_resent_whole_when_it_grows() {
    let mut client = Encoder::new();
    let u = client
        .encode(
            0,
            &OwnedBag::new().with("roundtrip.grow.a", Value::Int64(1)),
        )
        .unwrap();
    assert_eq!(u.dictionary.len(), 1);
    let u = client
        .encode(
            1,
            &OwnedBag::new()
                .with("roundtrip.grow.a", Value::Int64(1))
                .with("roundtrip.grow.b", Value::Int64(1)),
        )
        .unwrap();
    assert_eq!(
        u.dictionary.len(),
        2,
        "whole dictionary, not just the new word"
    );
    assert_eq!(u.attribute_context, 1);
    let u = client
        .encode(
            0,
            &OwnedBag::new().with("roundtrip.grow.b", Value::Int64(2)),
        )
        .unwrap();
    assert!(u.dictionary.is_empty());
    assert_eq!(u.deleted_attributes, vec![0]);
}

#[test]
fn reset_sends_everything_with_reset_context() {
    let mut client = Encoder::new();
    let bag = OwnedBag::new().with("roundtrip.reset.a", Value::Int64(1));
    client.encode(0, &bag).unwrap();
    client.reset(0);
    let u = client.encode(0, &bag).unwrap();
    assert!(u.reset_context);
    assert_eq!(u.dictionary.len(), 1);
    assert_eq!(u.int64_attributes.len(), 1);
    let u = client.encode(0, &bag).unwrap();
    assert!(!u.reset_context);
}

#[test]
fn encoder_errors_name_the_attribute_and_change_nothing() {
    let mut client = Encoder::with_max_words(2);
    let ok = OwnedBag::new().with("roundtrip.err.a", Value::Int64(1));
    client.encode(0, &ok).unwrap();
    let too_long = ok.clone().with(
        "roundtrip.err.d",
        Value::Duration(Duration::from_secs(u64::MAX)),
    );
    assert_eq!(
        client.encode(0, &too_long).unwrap_err().to_string(),
        format!(
            "attribute 'roundtrip.err.d': duration of {}s does not fit google.protobuf.Duration",
            u64::MAX
        )
    );
    let full = ok
        .clone()
        .with("roundtrip.err.b", Value::Int64(1))
        .with("roundtrip.err.c", Value::Int64(1));
    let e = client.encode(0, &full).unwrap_err().to_string();
    assert!(
        e.contains("the encoder's dictionary is full (2 words)"),
        "{e}"
    );
    // The context's state is as before: an unchanged bag sends nothing.
    let u = client.encode(0, &ok).unwrap();
    assert!(u.int64_attributes.is_empty() && u.deleted_attributes.is_empty());
}
