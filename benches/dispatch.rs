//! The dispatcher: an in-process check through 10 rules (a listchecker with
//! 1000 entries, a denier whose rule does not match, a memquota rule, and
//! seven more conditions), without and with the check cache (same run),
//! through `check` and through `check_decision`; and
//! a 100-entry report into the prometheus handler, through the dispatcher
//! and straight into the handler (same run). Allocations per operation are
//! counted and printed.

#[allow(unreachable_pub)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[global_allocator]
static A: counting_alloc::Counting = counting_alloc::Counting;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use mixer_adapters::template::{MetricInstance, ReportBatch};
use mixer_adapters::{BuildEnv, Params, Registry};
use mixer_attributes::{OwnedBag, StringMap, Value};
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options};

const API: &str = "apiVersion: config.istio.io/v1alpha2";

fn doc(kind: &str, name: &str, spec: &str) -> String {
    format!(
        "{API}\nkind: {kind}\nmetadata: {{name: {name}, namespace: istio-system}}\nspec: {spec}\n---\n"
    )
}

fn config(header_first: bool) -> String {
    let users: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let mut y = String::new();
    y += &doc(
        "handler",
        "users",
        &format!(
            "{{compiledAdapter: listchecker, params: {{overrides: {users:?}, cachingUseCount: 2000000000}}}}"
        ),
    );
    y += &doc(
        "handler",
        "deny",
        "{compiledAdapter: denier, params: {status: {code: 7, message: bots}}}",
    );
    y += &doc(
        "handler",
        "quota",
        "{compiledAdapter: memquota, params: {quotas: [{name: rq.instance.istio-system, maxAmount: 1000000, validDuration: 1s}]}}",
    );
    y += &doc(
        "handler",
        "prom",
        "{compiledAdapter: prometheus, params: {host: 127.0.0.1, port: 0, metrics: [{instanceName: requestcount.instance.istio-system, kind: COUNTER, labelNames: [destination_service, response_code, method]}]}}",
    );
    y += &doc(
        "instance",
        "user",
        "{compiledTemplate: listentry, params: {value: source.user}}",
    );
    y += &doc(
        "instance",
        "nothing",
        "{compiledTemplate: checknothing, params: {}}",
    );
    y += &doc(
        "instance",
        "rq",
        "{compiledTemplate: quota, params: {dimensions: {dest: destination.service | \"unknown\"}}}",
    );
    y += &doc(
        "instance",
        "requestcount",
        "{compiledTemplate: metric, params: {value: \"1\", dimensions: {destination_service: destination.service | \"unknown\", response_code: response.code | 200, method: request.method | \"GET\"}}}",
    );
    // 1: the list; 2: the denier (no match); 3: the quota; 4-10: conditions
    // that do not hold, each naming the denier; plus the report rule.
    y += &doc(
        "rule",
        "users",
        "{match: destination.service == \"reviews\", actions: [{handler: users, instances: [user]}]}",
    );
    y += &doc(
        "rule",
        "bots",
        "{match: request.useragent == \"bot\", actions: [{handler: deny, instances: [nothing]}]}",
    );
    y += &doc(
        "rule",
        "limits",
        "{actions: [{handler: quota, instances: [rq]}]}",
    );
    for i in 4..=10 {
        // Istio's own samples test the destination first; the other
        // order reads a request header in every condition, all of which
        // the decision (and so a cache key) then depends on.
        let (dest, header) = (
            "destination.service == \"ratings\"".to_string(),
            format!("request.headers[\"x-canary-{i}\"] == \"true\""),
        );
        let cond = if header_first {
            format!("{header} && {dest}")
        } else {
            format!("{dest} && {header}")
        };
        y += &doc(
            "rule",
            &format!("canary{i}"),
            &format!(
                "{{match: {}, actions: [{{handler: deny, instances: [nothing]}}]}}",
                serde_json::to_string(&cond).unwrap()
            ),
        );
    }
    y += &doc(
        "rule",
        "telemetry",
        "{actions: [{handler: prom, instances: [requestcount]}]}",
    );
    y
}

fn request(i: usize) -> OwnedBag {
    let headers: StringMap = [("x-request-id", "abc"), ("user-agent", "curl")]
        .into_iter()
        .collect();
    OwnedBag::new()
        .with(
            "source.user",
            Value::String(format!("user-{}", 500 + i % 10)),
        )
        .with("destination.service", Value::String("reviews".into()))
        .with("destination.namespace", Value::String("default".into()))
        .with("request.useragent", Value::String("curl".into()))
        .with("request.method", Value::String("GET".into()))
        .with("request.path", Value::String(format!("/reviews/{i}")))
        .with("request.headers", Value::StringMap(headers))
        .with("response.code", Value::Int64(200))
}

fn dispatcher(rt: &tokio::runtime::Runtime, options: Options, header_first: bool) -> Dispatcher {
    let d = Dispatcher::new(Registry::builtin(), rt.handle().clone(), options);
    let mut docs = Documents::new();
    docs.add_yaml("bench.yaml", &config(header_first));
    let _guard = rt.enter();
    d.load(docs).expect("bench config loads");
    d
}

/// Polls a future once: in-memory checks complete on the first poll.
fn now<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("check did not complete on its first poll"),
    }
}

/// Nanoseconds per call of `a` and of `b`, each the fastest of
/// [`ROUNDS`] batches of [`BATCH`] calls, the two run in alternating
/// batches. On a machine shared with other work, a batch the scheduler
/// left alone shows the cost, and both are measured over the same stretch
/// of time: their ratio does not depend on what else ran when.
fn paired(mut a: impl FnMut(), mut b: impl FnMut()) -> (f64, f64) {
    let mut best = [f64::MAX; 2];
    for _ in 0..ROUNDS {
        for (i, f) in [&mut a as &mut dyn FnMut(), &mut b].into_iter().enumerate() {
            let t = Instant::now();
            for _ in 0..BATCH {
                f();
            }
            best[i] = best[i].min(t.elapsed().as_nanos() as f64 / BATCH as f64);
        }
    }
    (best[0], best[1])
}

const ROUNDS: usize = 300;
const BATCH: usize = 1000;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let uncached = dispatcher(&rt, Options::default().without_cache(), false);
    let cached = dispatcher(&rt, Options::default(), false);
    let uncached_h = dispatcher(&rt, Options::default().without_cache(), true);
    let cached_h = dispatcher(&rt, Options::default(), true);
    let bag = request(0);
    for d in [&uncached, &cached, &uncached_h, &cached_h] {
        assert!(now(d.check(&bag)).status.is_ok());
        assert!(now(d.check_decision(&bag)).status.is_ok());
    }
    // `check` hands back the referenced set (for a caller that caches
    // decisions itself); `check_decision` does not (the server's path).
    let rows = [
        ("check_10_rules", &uncached),
        ("check_10_rules_cache_hit", &cached),
        ("check_10_rules_header_conditions", &uncached_h),
        ("check_10_rules_header_conditions_cache_hit", &cached_h),
    ];
    for (name, d) in rows {
        let a = counting_alloc::per_call(10_000, || {
            now(d.check(&bag));
        });
        eprintln!("allocations per check, {name}: {a:.2}");
        let a = counting_alloc::per_call(10_000, || {
            now(d.check_decision(&bag));
        });
        eprintln!("allocations per check_decision, {name}: {a:.2}");
    }

    // The same pairs measured side by side, for a ratio that holds on a
    // machine shared with other work (see `paired`).
    for (name, off, on) in [
        ("10 rules", &uncached, &cached),
        ("header conditions", &uncached_h, &cached_h),
    ] {
        let (a, b) = paired(
            || drop(black_box(now(off.check(black_box(&bag))))),
            || drop(black_box(now(on.check(black_box(&bag))))),
        );
        eprintln!(
            "paired, {name}, check: no cache {a:.0} ns, cache hit {b:.0} ns, {:.1}x",
            a / b
        );
        let (a, b) = paired(
            || drop(black_box(now(off.check_decision(black_box(&bag))))),
            || drop(black_box(now(on.check_decision(black_box(&bag))))),
        );
        eprintln!(
            "paired, {name}, check_decision: no cache {a:.0} ns, cache hit {b:.0} ns, {:.1}x",
            a / b
        );
    }

    let mut g = c.benchmark_group("dispatch");
    for (name, d) in rows {
        g.bench_function(name, |b| b.iter(|| now(d.check(&bag))));
        g.bench_function(format!("{name}/decision"), |b| {
            b.iter(|| now(d.check_decision(&bag)))
        });
    }

    let bags: Vec<OwnedBag> = (0..100).map(request).collect();
    let a_report = counting_alloc::per_call(200, || {
        uncached.report_all(bags.iter());
        rt.block_on(uncached.flush());
    });
    eprintln!(
        "allocations per 100-entry report through the dispatcher into prometheus: {a_report:.1}"
    );
    g.bench_function("report_100_prometheus_caller", |b| {
        b.iter(|| {
            let o = uncached.report_all(bags.iter());
            // Keep the queue from filling: the caller's cost is measured,
            // and every batch is still recorded.
            rt.block_on(uncached.flush());
            o
        })
    });

    // The same 100 instances straight into a prometheus handler.
    let handler = {
        let _guard = rt.enter();
        Registry::builtin()
            .validate(
                "prometheus",
                &Params::new(
                    serde_json::json!({"host": "127.0.0.1", "port": 0, "metrics": [{
                    "instanceName": "requestcount.instance.istio-system", "kind": "COUNTER",
                    "labelNames": ["destination_service", "response_code", "method"]}]}),
                ),
            )
            .unwrap()
            .build(&BuildEnv::new(rt.handle().clone()))
            .unwrap()
    };
    assert!(uncached.handler("prom.handler.istio-system").is_some());
    // The instances the dispatcher builds from those bags.
    let instances: Vec<MetricInstance> = (0..bags.len())
        .map(|_| MetricInstance {
            name: "requestcount.instance.istio-system".into(),
            value: Value::Int64(1),
            dimensions: [
                ("destination_service", Value::String("reviews".into())),
                ("method", Value::String("GET".into())),
                ("response_code", Value::Int64(200)),
            ]
            .into_iter()
            .map(|(k, v)| (k.into(), v))
            .collect(),
            monitored_resource_type: String::new(),
            monitored_resource_dimensions: Default::default(),
        })
        .collect();
    g.bench_function("report_100_prometheus_direct", |b| {
        b.iter_batched(
            || ReportBatch::Metric(instances.clone()),
            |batch| handler.report(batch).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
