//! memquota stays exact when many threads hammer one quota.
#![cfg(feature = "memquota")]

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use mixer_adapters::template::QuotaInstance;
use mixer_adapters::{Answer, BuildEnv, ManualClock, Params, QuotaArgs, Registry};
use serde_json::json;

fn hammer(algorithm: &str, window: &str, max: i64) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::new(rt.handle().clone()).with_clock(clock.clone());
    let params = Params::new(json!({"quotas": [{
        "name": "rq.instance.ns", "maxAmount": max, "validDuration": window,
        "rateLimitAlgorithm": algorithm
    }]}));
    let handler = Registry::builtin()
        .validate("memquota", &params)
        .unwrap()
        .build(&env)
        .unwrap();
    let instance = Arc::new(QuotaInstance {
        name: "rq.instance.ns".into(),
        dimensions: [(
            Arc::from("user"),
            mixer_attributes::Value::String("u".into()),
        )]
        .into_iter()
        .collect(),
    });
    let threads = 8;
    for round in 0..5 {
        let granted = Arc::new(AtomicI64::new(0));
        let barrier = Arc::new(Barrier::new(threads));
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (h, i, g, b) = (
                    handler.clone(),
                    instance.clone(),
                    granted.clone(),
                    barrier.clone(),
                );
                std::thread::spawn(move || {
                    b.wait();
                    for n in 0..2000 {
                        let args = QuotaArgs {
                            amount: 1 + (n % 3),
                            best_effort: (t + n as usize).is_multiple_of(2),
                            deduplication_id: String::new(),
                        };
                        let Answer::Ready(r) = h.quota(&i, &args) else {
                            panic!("memquota answered with a future");
                        };
                        g.fetch_add(r.unwrap().granted, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        // Demand (8 x 2000 x ~2 units) far exceeds the limit: exactly the
        // limit is granted in each window, never more.
        assert_eq!(
            granted.load(Ordering::Relaxed),
            max,
            "{algorithm} round {round}"
        );
        // Move into the next window (a rolling window also waits out its
        // last bucket).
        let d = mixer_attributes::parse_duration(window).unwrap();
        clock.advance(d + d / 5);
    }
}

#[test]
fn fixed_window_exact_under_concurrency() {
    hammer("FIXED_WINDOW", "500ms", 1000);
}

#[test]
fn rolling_window_exact_under_concurrency() {
    hammer("ROLLING_WINDOW", "1s", 1000);
}

#[test]
fn rolling_window_spans_never_exceed_max() {
    // Grants spread over time: every span of one window holds at most max.
    let clock = Arc::new(ManualClock::new());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env = BuildEnv::new(rt.handle().clone()).with_clock(clock.clone());
    let params =
        Params::new(json!({"quotas": [{"name": "q", "maxAmount": 10, "validDuration": "1s"}]}));
    let h = Registry::builtin()
        .validate("memquota", &params)
        .unwrap()
        .build(&env)
        .unwrap();
    let i = QuotaInstance {
        name: "q".into(),
        dimensions: Default::default(),
    };
    let step = Duration::from_millis(37);
    let mut log: Vec<(Duration, i64)> = Vec::new();
    for _ in 0..200 {
        let args = QuotaArgs {
            amount: 3,
            best_effort: true,
            deduplication_id: String::new(),
        };
        let Answer::Ready(r) = h.quota(&i, &args) else {
            panic!("pending")
        };
        log.push((clock.elapsed(), r.unwrap().granted));
        clock.advance(step);
    }
    let window = Duration::from_secs(1);
    for (start, _) in &log {
        let in_span: i64 = log
            .iter()
            .filter(|(t, _)| *t >= *start && *t < *start + window)
            .map(|(_, g)| g)
            .sum();
        assert!(in_span <= 10, "span from {start:?} granted {in_span}");
    }
    let total: i64 = log.iter().map(|(_, g)| g).sum();
    // 200 steps of 37 ms is 7.4 s: about 10 per 1.1 s must still flow.
    assert!(total >= 60, "granted only {total}");
}
