//! Raw bytes as `Attributes` updates on one stream. The decoder must never
//! panic; a refused update must leave the stream exactly as it was; and an
//! accepted one must be a message prost decodes too, with the same effect
//! through `StreamState::apply` on a twin stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mixer_attributes::{Context, Limits, StreamState};
use mixer_proto::istio::mixer::v1::Attributes;
use prost::Message;

/// Contexts and dictionary; values compared through `Debug`, where a NaN
/// equals itself.
type Snapshot = (Vec<(i32, Vec<String>)>, Vec<(i32, String)>);

fn snapshot(s: &StreamState) -> Snapshot {
    let ctx = |c: &Context| c.iter().map(|(id, v)| format!("{id:?}={v:?}")).collect();
    (
        s.contexts().map(|(c, x)| (c, ctx(x))).collect(),
        s.dictionary().map(|(i, w)| (i, w.to_string())).collect(),
    )
}

fn limits() -> Limits {
    Limits {
        max_contexts: 4,
        max_dictionary_entries: 64,
        max_attributes_per_context: 32,
        max_value_bytes: 256,
    }
}

fuzz_target!(|data: &[u8]| {
    // Several updates separated by 0xFE, so that later ones meet the
    // dictionary and contexts of earlier ones.
    let mut stream = StreamState::with_limits(limits());
    let mut twin = StreamState::with_limits(limits());
    for part in data.split(|b| *b == 0xfe) {
        let before = snapshot(&stream);
        if stream.apply_bytes(part).is_err() {
            assert_eq!(
                snapshot(&stream),
                before,
                "a refused update changed the stream"
            );
            continue;
        }
        let decoded = Attributes::decode(part).expect("prost decodes an accepted update");
        twin.apply(&decoded)
            .expect("apply accepts what apply_bytes accepted");
        assert_eq!(
            snapshot(&stream),
            snapshot(&twin),
            "apply and apply_bytes disagree"
        );
    }
});
