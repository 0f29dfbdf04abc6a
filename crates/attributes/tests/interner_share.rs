//! A client that sends ever-new dictionary names fills only the peers' share
//! of the process-wide name table: the stream answers with an error naming
//! the limit, names already known keep working, and trusted interning (what
//! a config reload does) still finds room.
//!
//! Its own test binary: it lowers the global table's limit.

use mixer_attributes::{AttrId, Error, Interner, StreamState};
use mixer_proto::istio::mixer::v1::Attributes;

fn update(names: &[String]) -> Attributes {
    let mut a = Attributes::default();
    for (i, w) in names.iter().enumerate() {
        a.dictionary.insert(i as i32, w.clone());
        a.string_attributes.insert(i as i32, "v".to_string());
    }
    a
}

#[test]
fn peers_cannot_take_the_ids_config_needs() {
    let known = AttrId::of("request.path");
    let table = Interner::global();
    table.set_limit(table.len() * 4 + 400);
    let room = table.peer_limit() - table.len();

    let mut hostile = StreamState::new();
    let mut sent = 0;
    // New names in batches of 50, one update each.
    while sent < room {
        let n = (room - sent).min(50);
        let names: Vec<String> = (sent..sent + n).map(|i| format!("hostile.{i}")).collect();
        hostile.apply(&update(&names)).unwrap();
        sent += n;
    }
    assert_eq!(table.len(), table.peer_limit());

    let err = hostile
        .apply(&update(&["hostile.one.more".to_string()]))
        .unwrap_err();
    assert!(
        matches!(err, Error::InternerFull { index: 0, .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "dictionary[0]: too many distinct attribute names: the limit is {} \
             (name 'hostile.one.more' refused)",
            table.peer_limit()
        )
    );

    // A healthy stream using names already interned is unaffected.
    let mut healthy = StreamState::new();
    let bag = healthy
        .apply(&update(&["request.path".to_string()]))
        .unwrap();
    assert!(mixer_attributes::Bag::get(bag, known).is_some());

    // Config compiles new names into the reserved quarter.
    let fresh = table.try_intern("config.added.after.the.flood").unwrap();
    assert_eq!(fresh.index(), table.peer_limit());
}
