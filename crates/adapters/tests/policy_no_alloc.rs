//! In-memory check and quota handlers answer inline without allocating:
//! no future, no box, no task (counted by a global allocator).
#![cfg(all(feature = "denier", feature = "list", feature = "memquota"))]

#[allow(unreachable_pub)]
#[path = "../../../benches/support/counting_alloc.rs"]
mod counting_alloc;

use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::template::{CheckInstance, ListEntryInstance, QuotaInstance};
use mixer_adapters::{Answer, BuildEnv, Handler, ManualClock, Params, QuotaArgs, Registry};
use mixer_attributes::Value;
use serde_json::json;

#[global_allocator]
static A: counting_alloc::Counting = counting_alloc::Counting;

fn build(
    rt: &tokio::runtime::Runtime,
    adapter: &str,
    params: serde_json::Value,
) -> Arc<dyn Handler> {
    build_in(&BuildEnv::new(rt.handle().clone()), adapter, params)
}

fn build_in(env: &BuildEnv, adapter: &str, params: serde_json::Value) -> Arc<dyn Handler> {
    Registry::builtin()
        .validate(adapter, &Params::new(params))
        .unwrap()
        .build(env)
        .unwrap()
}

fn check_ok(h: &dyn Handler, i: &CheckInstance) {
    match h.check(i) {
        Answer::Ready(Ok(r)) => assert!(r.status.is_ok()),
        other => panic!("{other:?}"),
    }
}

// One test in this binary, so no other test allocates while it counts.
#[test]
fn in_memory_answers_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let strings = build(&rt, "listchecker", json!({"overrides": ["a", "b", "c"]}));
    let ci = build(
        &rt,
        "listchecker",
        json!({"overrides": ["Alice"], "entryType": "CASE_INSENSITIVE_STRINGS"}),
    );
    let ips = build(
        &rt,
        "listchecker",
        json!({"overrides": ["10.0.0.0/8"], "entryType": "IP_ADDRESSES"}),
    );
    let regex = build(
        &rt,
        "listchecker",
        json!({"overrides": ["^/api/"], "entryType": "REGEX"}),
    );
    let denier = build(&rt, "denier", json!({"status": {"code": 0}}));
    // Time moves 10 ms a call, so the counted calls also start buckets,
    // expire old ones and roll fixed windows: all of it without allocating
    // once a counter's bucket list has grown to its window (1 s: 10
    // buckets of 100 ms), which the warm-up below lets it do.
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::new(rt.handle().clone()).with_clock(clock.clone());
    let quota_params = |algorithm: &str| {
        json!({"quotas": [{
            "name": "q",
            "maxAmount": 1000000000,
            "validDuration": "1s",
            "rateLimitAlgorithm": algorithm,
        }]})
    };
    let rolling = build_in(&env, "memquota", quota_params("ROLLING_WINDOW"));
    let fixed = build_in(&env, "memquota", quota_params("FIXED_WINDOW"));
    let entry = |v: Value| {
        CheckInstance::ListEntry(ListEntryInstance {
            name: "l".into(),
            value: v,
        })
    };
    let (s, c, ip, path) = (
        entry(Value::String("b".into())),
        entry(Value::String("ALICE".into())),
        entry(Value::IpAddress("10.1.2.3".parse().unwrap())),
        entry(Value::String("/api/x".into())),
    );
    let quota = QuotaInstance {
        name: "q".into(),
        dimensions: [(Arc::from("user"), Value::String("u".into()))]
            .into_iter()
            .collect(),
    };
    let args = QuotaArgs {
        amount: 1,
        ..Default::default()
    };
    let take = |h: &dyn Handler| {
        clock.advance(Duration::from_millis(10));
        match h.quota(&quota, &args) {
            Answer::Ready(Ok(r)) => assert_eq!(r.granted, 1),
            other => panic!("{other:?}"),
        }
    };
    type Case<'a> = (&'static str, Box<dyn Fn() + 'a>);
    let cases: Vec<Case<'_>> = vec![
        ("strings", Box::new(|| check_ok(&*strings, &s))),
        ("case-insensitive", Box::new(|| check_ok(&*ci, &c))),
        ("ip", Box::new(|| check_ok(&*ips, &ip))),
        ("regex", Box::new(|| check_ok(&*regex, &path))),
        ("denier", Box::new(|| check_ok(&*denier, &s))),
        ("memquota rolling", Box::new(|| take(&*rolling))),
        ("memquota fixed", Box::new(|| take(&*fixed))),
    ];
    for _ in 0..300 {
        take(&*rolling);
        take(&*fixed);
    }
    for (name, f) in cases {
        let per_call = counting_alloc::per_call_on_this_thread(1000, &*f);
        assert_eq!(per_call, 0.0, "{name} allocated {per_call} times per call");
    }
}
