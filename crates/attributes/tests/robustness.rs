//! Properties: arbitrary `Attributes` messages and arbitrary bytes never
//! panic the decoder and never leave a context half-applied; valid and
//! invalid updates alike agree with a naive reference model of the wire
//! spec, and `apply` agrees with `apply_bytes`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use mixer_attributes::{Bag, Context, Limits, StreamState, Timestamp, Value};
use mixer_proto::istio::mixer::v1::{Attributes, StringMap};
use proptest::collection::{hash_map, vec};
use proptest::prelude::*;
use prost::Message;

const WORDS: [&str; 8] = [
    "robust.a",
    "robust.b",
    "robust.c",
    "robust.d",
    "robust.e",
    "k1",
    "k2",
    "robust.long-name",
];

fn limits() -> Limits {
    Limits {
        max_contexts: 3,
        max_dictionary_entries: 7,
        max_attributes_per_context: 5,
        max_value_bytes: 12,
    }
}

fn index() -> impl Strategy<Value = i32> {
    prop_oneof![40 => 0..7i32, 1 => 7..9i32, 1 => Just(-1), 1 => any::<i32>()]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![20 => "[a-z]{0,4}", 1 => "[a-z]{10,14}"]
}

fn seconds_nanos() -> impl Strategy<Value = (i64, i32)> {
    prop_oneof![
        30 => (0..100_000i64, 0..1_000_000_000i32),
        1 => (any::<i64>(), any::<i32>()),
    ]
}

fn timestamp() -> BoxedStrategy<prost_types::Timestamp> {
    seconds_nanos()
        .prop_map(|(seconds, nanos)| prost_types::Timestamp { seconds, nanos })
        .boxed()
}

fn duration() -> BoxedStrategy<prost_types::Duration> {
    seconds_nanos()
        .prop_map(|(seconds, nanos)| prost_types::Duration { seconds, nanos })
        .boxed()
}

fn small<T: std::fmt::Debug + Clone + 'static>(
    s: BoxedStrategy<T>,
) -> impl Strategy<Value = HashMap<i32, T>> {
    prop_oneof![4 => Just(HashMap::new()), 1 => hash_map(index(), s, 1..3)]
}

fn attributes() -> impl Strategy<Value = Attributes> {
    (
        prop_oneof![
            6 => Just(HashMap::new()),
            2 => Just(standard_dictionary()),
            1 => hash_map(index(), (0..WORDS.len()).prop_map(|w| WORDS[w].to_string()), 0..9),
        ],
        prop_oneof![4 => 0..3i32, 1 => any::<i32>()],
        prop::bool::weighted(0.1),
        (
            small(text().boxed()),
            small(any::<i64>().boxed()),
            small(any::<f64>().boxed()),
            small(any::<bool>().boxed()),
        ),
        (
            small(timestamp()),
            small(duration()),
            small(vec(any::<u8>(), 0..14).boxed()),
            small(
                hash_map(index(), text(), 0..3)
                    .prop_map(|map| StringMap { map })
                    .boxed(),
            ),
        ),
        prop_oneof![3 => Just(Vec::new()), 1 => vec(index(), 1..3)],
        (small(timestamp()), small(duration())),
    )
        .prop_map(
            |(
                dictionary,
                attribute_context,
                reset_context,
                (s, i, d, b),
                (t, du, by, m),
                deleted,
                (th, dh),
            )| {
                Attributes {
                    dictionary,
                    attribute_context,
                    reset_context,
                    string_attributes: s,
                    int64_attributes: i,
                    double_attributes: d,
                    bool_attributes: b,
                    timestamp_attributes: t,
                    duration_attributes: du,
                    bytes_attributes: by,
                    string_map_attributes: m,
                    deleted_attributes: deleted,
                    timestamp_attributes_hack: th,
                    duration_attributes_hack: dh,
                }
            },
        )
}

fn standard_dictionary() -> HashMap<i32, String> {
    WORDS[..7]
        .iter()
        .enumerate()
        .map(|(i, w)| (i as i32, w.to_string()))
        .collect()
}

/// The wire spec applied the obvious way, on a copy that replaces the state
/// only when everything succeeded.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    dictionary: Option<BTreeMap<i32, String>>,
    contexts: BTreeMap<i32, BTreeMap<String, Value>>,
}

impl Model {
    fn apply(&mut self, a: &Attributes, l: &Limits) -> Result<(), ()> {
        let mut m = self.clone();
        if !a.dictionary.is_empty() {
            let mut seen = std::collections::HashSet::new();
            if a.dictionary.len() > l.max_dictionary_entries {
                return Err(());
            }
            for name in a.dictionary.values() {
                if !seen.insert(name) || name.len() > l.max_value_bytes {
                    return Err(());
                }
            }
            m.dictionary = Some(a.dictionary.clone().into_iter().collect());
        }
        if !m.contexts.contains_key(&a.attribute_context) && m.contexts.len() >= l.max_contexts {
            return Err(());
        }
        let dict = m.dictionary.clone().unwrap_or_default();
        let name = |i: &i32| dict.get(i).cloned().ok_or(());
        let ctx = m.contexts.entry(a.attribute_context).or_default();
        if a.reset_context {
            ctx.clear();
        }
        for d in &a.deleted_attributes {
            ctx.remove(&name(d)?);
        }
        let mut types: HashMap<String, u8> = HashMap::new();
        let mut typed = |n: &String, t: u8| match types.insert(n.clone(), t) {
            Some(old) if old != t => Err(()),
            _ => Ok(()),
        };
        let check_len = |s: usize| {
            if s > l.max_value_bytes {
                Err(())
            } else {
                Ok(())
            }
        };
        let ts = |t: &prost_types::Timestamp| Timestamp::new(t.seconds, t.nanos).ok_or(());
        let du = |d: &prost_types::Duration| {
            if d.seconds < 0 || d.nanos < 0 || d.nanos >= 1_000_000_000 {
                Err(())
            } else {
                Ok(Duration::new(d.seconds as u64, d.nanos as u32))
            }
        };
        for (k, v) in &a.string_attributes {
            let n = name(k)?;
            typed(&n, 0)?;
            check_len(v.len())?;
            ctx.insert(n, Value::String(v.clone()));
        }
        for (k, v) in &a.int64_attributes {
            let n = name(k)?;
            typed(&n, 1)?;
            ctx.insert(n, Value::Int64(*v));
        }
        for (k, v) in &a.double_attributes {
            let n = name(k)?;
            typed(&n, 2)?;
            ctx.insert(n, Value::Double(*v));
        }
        for (k, v) in &a.bool_attributes {
            let n = name(k)?;
            typed(&n, 3)?;
            ctx.insert(n, Value::Bool(*v));
        }
        for (k, v) in &a.timestamp_attributes {
            let n = name(k)?;
            typed(&n, 4)?;
            ctx.insert(n, Value::Timestamp(ts(v)?));
        }
        for (k, v) in &a.duration_attributes {
            let n = name(k)?;
            typed(&n, 5)?;
            ctx.insert(n, Value::Duration(du(v)?));
        }
        for (k, v) in &a.bytes_attributes {
            let n = name(k)?;
            typed(&n, 6)?;
            check_len(v.len())?;
            ctx.insert(n, Value::Bytes(v.clone()));
        }
        for (k, v) in &a.string_map_attributes {
            let n = name(k)?;
            typed(&n, 7)?;
            let mut map = match ctx.get(&n) {
                Some(Value::StringMap(old)) => old.clone(),
                _ => Default::default(),
            };
            for (key, val) in &v.map {
                check_len(val.len())?;
                map.insert(name(key)?.into(), val.clone());
            }
            ctx.insert(n, Value::StringMap(map));
        }
        for (k, v) in &a.timestamp_attributes_hack {
            let n = name(k)?;
            typed(&n, 8)?;
            ctx.insert(n, Value::Timestamp(ts(v)?));
        }
        for (k, v) in &a.duration_attributes_hack {
            let n = name(k)?;
            typed(&n, 9)?;
            ctx.insert(n, Value::Duration(du(v)?));
        }
        if ctx.len() > l.max_attributes_per_context {
            return Err(());
        }
        *self = m;
        Ok(())
    }
}

fn as_model(s: &StreamState) -> BTreeMap<i32, BTreeMap<String, Value>> {
    s.contexts()
        .map(|(c, ctx)| {
            let mut m = BTreeMap::new();
            ctx.for_each(&mut |id, v| {
                m.insert(id.name().to_string(), v.to_owned());
            });
            (c, m)
        })
        .collect()
}

type Snapshot = (Vec<(i32, Context)>, Vec<(i32, String)>);

fn snapshot(s: &StreamState) -> Snapshot {
    (
        s.contexts().map(|(c, x)| (c, x.clone())).collect(),
        s.dictionary().map(|(i, w)| (i, w.to_string())).collect(),
    )
}

/// NaN is not equal to itself: compare doubles by bits. prost writes a
/// map value equal to the default as nothing, which turns -0.0 into 0.0 on
/// the wire, so the two zeros compare equal.
fn normalise(m: BTreeMap<i32, BTreeMap<String, Value>>) -> BTreeMap<i32, BTreeMap<String, Value>> {
    m.into_iter()
        .map(|(c, ctx)| {
            (
                c,
                ctx.into_iter()
                    .map(|(k, v)| match v {
                        Value::Double(f) => (k, Value::Int64((f + 0.0).to_bits() as i64)),
                        v => (k, v),
                    })
                    .collect(),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_updates_apply_atomically_and_match_the_model(updates in vec(attributes(), 1..12)) {
        let l = limits();
        let mut via_struct = StreamState::with_limits(l.clone());
        let mut via_bytes = StreamState::with_limits(l.clone());
        let mut model = Model::default();
        let first = Attributes { dictionary: standard_dictionary(), ..Attributes::default() };
        for a in std::iter::once(&first).chain(&updates) {
            let before = snapshot(&via_struct);
            let want = model.apply(a, &l);
            let r1 = via_struct.apply(a).map(|_| ());
            let r2 = via_bytes.apply_bytes(&a.encode_to_vec()).map(|_| ());
            prop_assert_eq!(r1.is_ok(), want.is_ok(), "struct path {:?} vs model {:?} on {:?}", r1, want, a);
            prop_assert_eq!(r2.is_ok(), want.is_ok(), "bytes path {:?} vs model {:?} on {:?}", r2, want, a);
            if want.is_err() {
                prop_assert_eq!(&snapshot(&via_struct), &before);
                prop_assert_eq!(&snapshot(&via_bytes), &before);
            }
            prop_assert_eq!(normalise(as_model(&via_struct)), normalise(model.contexts.clone()));
            prop_assert_eq!(normalise(as_model(&via_bytes)), normalise(model.contexts.clone()));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_half_apply(
        prefix in vec(attributes(), 0..3),
        noise in vec(any::<u8>(), 0..64),
        cut in any::<prop::sample::Index>(),
        flips in vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        mutated in attributes(),
    ) {
        let mut s = StreamState::with_limits(limits());
        for a in &prefix {
            let _ = s.apply_bytes(&a.encode_to_vec());
        }
        // Pure noise, and a valid message damaged by truncation and flips.
        let mut damaged = mutated.encode_to_vec();
        if !damaged.is_empty() {
            for (at, b) in &flips {
                let i = at.index(damaged.len());
                damaged[i] ^= *b;
            }
            damaged.truncate(cut.index(damaged.len() + 1));
        }
        for input in [&noise, &damaged] {
            let before = snapshot(&s);
            if s.apply_bytes(input).is_err() {
                prop_assert_eq!(&snapshot(&s), &before);
            }
        }
    }
}
