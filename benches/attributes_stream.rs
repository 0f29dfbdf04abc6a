//! Stream decoding and delta encoding of a steady-state update: a context of
//! 20 attributes, 3 of them changed, no dictionary.
//!
//! Compared in the same run: decode + apply straight from the bytes
//! (`apply_bytes`) against prost decoding the same bytes alone (target: at
//! most 2x), prost decode + `apply` of the struct, and the encoder against
//! prost encoding the update it produced. Allocations per call are counted
//! and printed (target: at most one per changed string value).

#[allow(unreachable_pub)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;
#[path = "../crates/attributes/tests/support/traffic.rs"]
mod traffic;

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use mixer::attributes::{AttrId, Bag, Encoder, OwnedBag, StreamState, Value};
use mixer::proto::istio::mixer::v1::Attributes;
use prost::Message;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

/// A 20-attribute bag and two variants of it, each differing from the base
/// (and from each other) in three attributes: `request.id` and
/// `request.path` (strings) and `request.time`.
fn bags() -> (OwnedBag, OwnedBag, OwnedBag) {
    let reqs = traffic::requests(3);
    let path = AttrId::of("request.path");
    let mut base = reqs[0].clone();
    base.remove(AttrId::of("context.protocol"));
    base.set(path, Value::String("/reviews/1".into()));
    assert_eq!(base.len(), 20);
    let variant = |k: usize| {
        let mut b = base.clone();
        for name in ["request.id", "request.time"] {
            let id = AttrId::of(name);
            b.set(id, reqs[k].get(id).expect("present").to_owned());
        }
        b.set(path, Value::String(format!("/reviews/{}", 100 + k)));
        b
    };
    let (a, b) = (variant(1), variant(2));
    (base, a, b)
}

/// A stream primed with the base bag, and the bytes of two steady-state
/// updates that alternate between the variants.
fn setup() -> (StreamState, Encoder, [Vec<u8>; 2], [OwnedBag; 2]) {
    let (base, a, b) = bags();
    let mut client = Encoder::new();
    let mut server = StreamState::new();
    server
        .apply_bytes(&client.encode(0, &base).unwrap().encode_to_vec())
        .unwrap();
    let ua = client.encode(0, &a).unwrap();
    let ub = client.encode(0, &b).unwrap();
    for u in [&ua, &ub] {
        assert!(u.dictionary.is_empty());
        let changed = u.string_attributes.len() + u.timestamp_attributes.len();
        assert_eq!(changed, 3, "three attributes change: {u:?}");
    }
    let bytes = [ua.encode_to_vec(), ub.encode_to_vec()];
    for (x, bag) in bytes.iter().zip([&a, &b]) {
        assert_eq!(
            OwnedBag::copy_of(server.apply_bytes(x).unwrap()),
            OwnedBag::copy_of(bag)
        );
    }
    (server, client, bytes, [a, b])
}

fn decode(c: &mut Criterion) {
    let (mut server, _, bytes, _) = setup();
    let (mut twin, _, _, _) = setup();

    let mut g = c.benchmark_group("attributes/steady_update_20_attrs_3_changed");
    g.bench_function("prost_decode_only", |bch| {
        let mut i = 0;
        bch.iter(|| {
            i ^= 1;
            black_box(Attributes::decode(black_box(bytes[i].as_slice())).unwrap())
        })
    });
    g.bench_function("apply_bytes", |bch| {
        let mut i = 0;
        bch.iter(|| {
            i ^= 1;
            black_box(server.apply_bytes(black_box(&bytes[i])).unwrap().len())
        })
    });
    g.bench_function("prost_decode_then_apply", |bch| {
        let mut i = 0;
        bch.iter(|| {
            i ^= 1;
            let u = Attributes::decode(black_box(bytes[i].as_slice())).unwrap();
            black_box(twin.apply(&u).unwrap().len())
        })
    });
    g.finish();

    let ratio = interleaved_ratio(
        || {
            black_box(Attributes::decode(black_box(bytes[0].as_slice())).unwrap());
            black_box(Attributes::decode(black_box(bytes[1].as_slice())).unwrap());
        },
        || {
            black_box(server.apply_bytes(black_box(&bytes[0])).unwrap().len());
            black_box(server.apply_bytes(black_box(&bytes[1])).unwrap().len());
        },
    );
    eprintln!("interleaved medians: apply_bytes / prost decode alone = {ratio:.2} (target <= 2)");

    let mut i = 0;
    let per_apply = counting_alloc::per_call(10_000, || {
        i ^= 1;
        black_box(server.apply_bytes(&bytes[i]).unwrap().len());
    });
    let per_decode = counting_alloc::per_call(10_000, || {
        i ^= 1;
        black_box(Attributes::decode(bytes[i].as_slice()).unwrap());
    });
    eprintln!(
        "allocations per call: apply_bytes {per_apply:.2} (changed string values: 2), prost decode alone {per_decode:.2}"
    );
}

fn encode(c: &mut Criterion) {
    let (_, mut client, _, bags) = setup();
    let mut g = c.benchmark_group("attributes/encode_20_attrs_3_changed");
    let mut out = Vec::with_capacity(256);
    g.bench_function("encoder_delta_to_bytes", |bch| {
        let mut i = 0;
        bch.iter(|| {
            i ^= 1;
            out.clear();
            client
                .encode_to_vec(0, black_box(&bags[i]), &mut out)
                .unwrap();
            black_box(out.len())
        })
    });
    let update: Attributes = {
        let mut probe = Encoder::new();
        probe.encode(0, &bags[0]).unwrap();
        probe.encode(0, &bags[1]).unwrap()
    };
    g.bench_function("prost_encode_of_that_update_only", |bch| {
        bch.iter(|| {
            out.clear();
            black_box(&update).encode(&mut out).unwrap();
            black_box(out.len())
        })
    });
    g.finish();
    let mut i = 0;
    let per_encode = counting_alloc::per_call(10_000, || {
        i ^= 1;
        out.clear();
        client.encode_to_vec(0, &bags[i], &mut out).unwrap();
    });
    eprintln!("allocations per call: encoder delta to bytes {per_encode:.2}");
}

/// Median time of `b` over median time of `a`, timed in alternating short
/// rounds so that both see the same machine load.
fn interleaved_ratio(mut a: impl FnMut(), mut b: impl FnMut()) -> f64 {
    use std::time::Instant;
    const ROUNDS: usize = 101;
    const ITERS: u32 = 2_000;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..ITERS {
            f();
        }
        t.elapsed().as_secs_f64()
    };
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        ta.push(time(&mut a));
        tb.push(time(&mut b));
    }
    ta.sort_by(f64::total_cmp);
    tb.sort_by(f64::total_cmp);
    tb[ROUNDS / 2] / ta[ROUNDS / 2]
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
