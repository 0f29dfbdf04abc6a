//! How far quota prefetch overshoots a rate limit at steady load: a
//! memquota limit of 100 per second behind a real mixer-server, asked at
//! twice that rate through the client for several seconds. The original
//! client admitted about 30% too much (130/s for 100/s); this measures ours
//! and holds it to the documented bound.

mod client_support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client_support::TestServer;
use mixer_attributes::{OwnedBag, Value};
use mixer_client::{Client, Options};

const LIMIT: usize = 100;

fn config() -> String {
    format!(
        r#"
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {{name: limit, namespace: istio-system}}
spec:
  compiledAdapter: memquota
  params:
    quotas:
    - {{name: requestcount.instance.istio-system, maxAmount: {LIMIT}, validDuration: 1s}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {{name: requestcount, namespace: istio-system}}
spec: {{compiledTemplate: quota, params: {{dimensions: {{destination: destination.service | "unknown"}}}}}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {{name: limit-all, namespace: istio-system}}
spec:
  actions: [{{handler: limit, instances: [requestcount]}}]
"#
    )
}

/// The most admissions in any one-second span.
fn max_per_second(times: &[Duration]) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

struct Measured {
    rate: f64,
    worst: usize,
    worst_with_cold_start: usize,
    prefetch_calls: u64,
    quotas: u64,
}

/// Four callers, each asking every 20 ms (200 asked per second, twice the
/// limit), for `run`; the first second (cold start) is left out of the
/// rate. Open loop: each ask is its own task, so a call held in the
/// closed-mode wait does not lower the rate asked (a closed loop asked less
/// whenever calls waited, and then measured its own slowness).
async fn measure(closed_wait: Duration, run: Duration) -> Measured {
    let server = TestServer::start(&config());
    let mut o = Options::new(server.addr.to_string());
    o.timeout = Duration::from_secs(2);
    o.quota.params.closed_wait = closed_wait;
    let client = Client::new(o).unwrap();
    let t0 = Instant::now();
    let admitted = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for k in 0..4u64 {
        let client = client.clone();
        let admitted = admitted.clone();
        tasks.push(tokio::spawn(async move {
            let bag = OwnedBag::new().with("destination.service", Value::String("svc".into()));
            tokio::time::sleep(Duration::from_millis(5 * k)).await;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut asks = Vec::new();
            while t0.elapsed() < run {
                tick.tick().await;
                let (client, bag, admitted) = (client.clone(), bag.clone(), admitted.clone());
                asks.push(tokio::spawn(async move {
                    if client.quota(&bag, "requestcount", 1).await.status.is_ok() {
                        admitted.lock().unwrap().push(t0.elapsed());
                    }
                }));
            }
            for a in asks {
                a.await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let mut times = admitted.lock().unwrap().clone();
    times.sort();
    let steady: Vec<Duration> = times
        .iter()
        .copied()
        .filter(|t| *t >= Duration::from_secs(1))
        .collect();
    let s = client.statistics();
    let m = Measured {
        rate: steady.len() as f64 / (run.as_secs_f64() - 1.0),
        worst: max_per_second(&steady),
        worst_with_cold_start: max_per_second(&times),
        prefetch_calls: s.prefetch_calls,
        quotas: s.quotas,
    };
    eprintln!(
        "limit {LIMIT}/s, ~200/s asked for {}s, closed wait {} ms: steady {:.1}/s ({:+.1}%), \
         worst one-second span {} ({:+.1}%), with cold start {}; {} prefetch calls for {} quota calls",
        run.as_secs(),
        closed_wait.as_millis(),
        m.rate,
        (m.rate / LIMIT as f64 - 1.0) * 100.0,
        m.worst,
        (m.worst as f64 / LIMIT as f64 - 1.0) * 100.0,
        m.worst_with_cold_start,
        m.prefetch_calls,
        m.quotas,
    );
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_overshoot_at_steady_load_for_100_per_second() {
    let min_prefetch = Options::new("x").quota.params.min_prefetch as usize;
    let run = Duration::from_secs(5);
    for (closed_wait, least_rate) in [(500, 0.6), (100, 0.85)] {
        let m = measure(Duration::from_millis(closed_wait), run).await;
        // Enforced, with the bound the algorithm guarantees whatever the
        // timing: tokens used in one second of client time were granted by
        // the server within that second or during the validity (1 s) before
        // it, so a span holds at most two windows' grants plus the
        // optimistic allowance. The measured worst span (printed above,
        // recorded in BENCHMARKS.md) is usually the limit itself; runs on a
        // loaded machine have shown up to 118 with a 100 ms closed wait.
        let bound = 2 * LIMIT + min_prefetch;
        assert!(
            m.worst <= bound,
            "worst one-second span admitted {} for a limit of {LIMIT} (bound {bound})",
            m.worst
        );
        assert!(m.worst_with_cold_start <= bound);
        // And not starved: the prefetch keeps up with what the server frees.
        assert!(
            m.rate >= least_rate * LIMIT as f64,
            "closed wait {closed_wait} ms admitted only {:.1}/s",
            m.rate
        );
        // Prefetching, not asking per request.
        assert!(m.prefetch_calls * 10 < m.quotas);
    }
}
