//! Bytes on the wire for realistic proxy traffic: delta encoding against
//! each request encoded in full. The benchmark `attributes_wire` prints the
//! same figures; this test holds the target.

#[path = "support/traffic.rs"]
mod traffic;

use mixer_attributes::{Encoder, OwnedBag, StreamState};
use prost::Message;

/// Bytes of `bags` sent over one stream as deltas, each update checked to
/// decode to its bag.
fn delta_bytes(bags: &[OwnedBag]) -> usize {
    let mut client = Encoder::new();
    let mut server = StreamState::new();
    bags.iter()
        .map(|bag| {
            let bytes = client.encode(0, bag).unwrap().encode_to_vec();
            assert_eq!(&OwnedBag::copy_of(server.apply_bytes(&bytes).unwrap()), bag);
            bytes.len()
        })
        .sum()
}

/// Bytes of `bags` each encoded in full, standing alone (own dictionary).
fn full_bytes(bags: &[OwnedBag]) -> usize {
    bags.iter()
        .map(|bag| Encoder::new().encode(0, bag).unwrap().encoded_len())
        .sum()
}

#[test]
fn traffic_is_realistic() {
    let bags = traffic::requests(1000);
    assert_eq!(bags.len(), 1000);
    assert!(bags.iter().all(|b| b.len() == 21));
    let distinct = |name: &str| {
        let mut v: Vec<String> = bags
            .iter()
            .map(|b| {
                mixer_attributes::Bag::get_by_name(b, name)
                    .unwrap()
                    .to_string()
            })
            .collect();
        v.sort();
        v.dedup();
        v.len()
    };
    assert_eq!(distinct("request.id"), 1000, "ids never repeat");
    assert_eq!(distinct("source.uid"), 3, "a few callers");
    assert!(distinct("request.path") > 100, "paths carry ids");
}

#[test]
fn deltas_are_at_least_three_times_smaller_than_full_requests() {
    let bags = traffic::requests(1000);
    let delta = delta_bytes(&bags);
    let full = full_bytes(&bags);
    let ratio = full as f64 / delta as f64;
    eprintln!("1000 requests: deltas {delta} bytes, full {full} bytes, ratio {ratio:.2}");
    assert!(
        ratio >= 3.0,
        "deltas {delta} bytes vs full {full} bytes: ratio {ratio:.2} below 3"
    );
}
