//! Allocation counts of the stream decoder in the steady state (one test in
//! this binary, so that no other test allocates while it counts).

#[allow(unreachable_pub)]
#[path = "../../../benches/support/counting_alloc.rs"]
mod counting_alloc;
#[path = "support/traffic.rs"]
mod traffic;

use mixer_attributes::{AttrId, Encoder, OwnedBag, StreamState, Value};
use prost::Message;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

#[test]
fn steady_state_apply_allocates_at_most_once_per_changed_string() {
    let reqs = traffic::requests(3);
    let path = AttrId::of("request.path");
    let base = reqs[0].clone();
    let variant = |k: usize, p: &str| {
        let mut b = base.clone();
        for name in ["request.id", "request.time"] {
            let id = AttrId::of(name);
            b.set(
                id,
                mixer_attributes::Bag::get(&reqs[k], id).unwrap().to_owned(),
            );
        }
        b.set(path, Value::String(p.into()));
        b
    };
    // Two strings and a timestamp change between the two updates; the
    // second path is longer than the first, so its buffer must grow once.
    let (a, b) = (
        variant(1, "/reviews/1"),
        variant(2, "/reviews/1234567890/details"),
    );
    let mut client = Encoder::new();
    let mut server = StreamState::new();
    server
        .apply_bytes(&client.encode(0, &base).unwrap().encode_to_vec())
        .unwrap();
    let ua = client.encode(0, &a).unwrap().encode_to_vec();
    let ub = client.encode(0, &b).unwrap().encode_to_vec();

    // First application of each: a string may outgrow its buffer (at most
    // one allocation per changed string).
    server.apply_bytes(&ua).unwrap();
    server.apply_bytes(&ub).unwrap();

    // From then on, the buffers fit: no allocation at all (on this thread:
    // the test harness's own thread allocates when it pleases).
    let mut i = 0;
    let per_apply = counting_alloc::per_call_on_this_thread(1000, || {
        i ^= 1;
        let u = if i == 0 { &ua } else { &ub };
        server.apply_bytes(u).unwrap();
    });
    assert_eq!(per_apply, 0.0, "allocations per steady-state apply");
    assert_eq!(
        OwnedBag::copy_of(server.context(0).unwrap()).len(),
        base.len()
    );
}
