//! Bytes on the wire for 1000 realistic proxy requests (about 20 attributes
//! each): sent as deltas over one stream, against each request encoded in
//! full, in the same run. The figures are printed; the timing measured is
//! the delta encoding of the whole sequence against encoding each in full.
//! The test `wire_size` in mixer-attributes holds the 3x target.

#[path = "../crates/attributes/tests/support/traffic.rs"]
mod traffic;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mixer::attributes::{Encoder, OwnedBag};
use prost::Message;

fn deltas(bags: &[OwnedBag]) -> usize {
    let mut client = Encoder::new();
    bags.iter()
        .map(|b| client.encode(0, b).unwrap().encoded_len())
        .sum()
}

fn full(bags: &[OwnedBag]) -> usize {
    bags.iter()
        .map(|b| Encoder::new().encode(0, b).unwrap().encoded_len())
        .sum()
}

/// Every request in full, but with the dictionary sent only once (a
/// stateful stream that never omits a value): how much the deltas save
/// beyond the dictionary.
fn full_values_shared_dictionary(bags: &[OwnedBag]) -> usize {
    let mut client = Encoder::new();
    let mut words = 0;
    bags.iter()
        .map(|b| {
            client.reset(0);
            let mut u = client.encode(0, b).unwrap();
            // `reset` re-sends the dictionary; count it only when it grew.
            if client.words().len() == words {
                u.dictionary.clear();
            }
            words = client.words().len();
            u.encoded_len()
        })
        .sum()
}

fn wire(c: &mut Criterion) {
    let bags = traffic::requests(1000);
    let (d, f, s) = (
        deltas(&bags),
        full(&bags),
        full_values_shared_dictionary(&bags),
    );
    eprintln!(
        "1000 requests: deltas {d} bytes ({:.0}/request), full {f} bytes ({:.0}/request), ratio {:.2}; full values with the dictionary sent once {s} bytes, ratio {:.2}",
        d as f64 / 1000.0,
        f as f64 / 1000.0,
        f as f64 / d as f64,
        s as f64 / d as f64,
    );
    let mut g = c.benchmark_group("attributes/1000_requests");
    g.sample_size(10);
    g.bench_function("encode_as_deltas", |b| b.iter(|| black_box(deltas(&bags))));
    g.bench_function("encode_each_in_full", |b| b.iter(|| black_box(full(&bags))));
    g.finish();
}

criterion_group!(benches, wire);
criterion_main!(benches);
