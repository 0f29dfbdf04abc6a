//! Handlers that record borrowed report instances in place (prometheus into
//! an existing series, statsd into its datagram buffer) allocate nothing
//! (counted by a global allocator).

#[allow(unreachable_pub)]
#[path = "../../../benches/support/counting_alloc.rs"]
mod counting_alloc;

use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::template::{DimensionsRef, MetricRef, ReportRefs};
use mixer_adapters::{BuildEnv, Handler, Params, Registry};
use mixer_attributes::ValueRef;
use serde_json::json;

#[global_allocator]
static A: counting_alloc::Counting = counting_alloc::Counting;

fn build(env: &BuildEnv, adapter: &str, params: serde_json::Value) -> Arc<dyn Handler> {
    Registry::builtin()
        .validate(adapter, &Params::new(params))
        .unwrap()
        .build(env)
        .unwrap()
}

fn counter(h: &dyn Handler, name: &str) -> u64 {
    h.counters()
        .iter()
        .find(|c| c.name == name)
        .map_or(u64::MAX, |c| c.value)
}

// One test in this binary, so no other test allocates while it counts.
#[test]
fn borrowed_reports_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let env = BuildEnv::new(rt.handle().clone());
    let prometheus = build(
        &env,
        "prometheus",
        json!({"host": "127.0.0.1", "port": 0, "metrics": [
            {"instanceName": "requests.instance.ns", "name": "requests", "kind": "COUNTER",
             "labelNames": ["source.name", "code", "missing"]},
            {"instanceName": "latency.instance.ns", "name": "latency", "kind": "DISTRIBUTION",
             "labelNames": ["path"]},
            {"instanceName": "inflight.instance.ns", "name": "inflight", "kind": "GAUGE"},
        ]}),
    );
    // Nobody reads it: once its buffer is full, sends fail and are counted
    // as drops, which must not allocate either.
    let sink = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let statsd = build(
        &env,
        "statsd",
        json!({
            "address": sink.local_addr().unwrap().to_string(),
            "prefix": "mesh.",
            "flushDuration": "1h",
            "metrics": {
                "requests.instance.ns": {"type": "COUNTER", "nameTemplate": "{{.code}}.{{.path}}"},
                "latency.instance.ns": {"type": "DISTRIBUTION"},
                "inflight.instance.ns": {"type": "GAUGE"},
            },
        }),
    );

    let names: [Arc<str>; 4] = [
        "requests.instance.ns".into(),
        "latency.instance.ns".into(),
        "inflight.instance.ns".into(),
        "unknown.instance.ns".into(),
    ];
    // "source name" is found by the name it sanitises to (`source_name`).
    let keys: Vec<Arc<str>> = vec!["code".into(), "path".into(), "source name".into()];
    let values = [
        ValueRef::Int64(200),
        ValueRef::String("/api/shelves"),
        ValueRef::String("productpage"),
    ];
    let dims = DimensionsRef::new(&keys, &values);
    let metric = |name, value| MetricRef {
        name,
        value,
        dimensions: dims,
        monitored_resource_type: "k8s_pod",
        monitored_resource_dimensions: DimensionsRef::EMPTY,
    };
    let batch = [
        metric(&names[0], ValueRef::Int64(1)),
        metric(&names[0], ValueRef::String(" 2.5 ")),
        metric(&names[1], ValueRef::Duration(Duration::from_micros(1500))),
        metric(&names[1], ValueRef::Double(0.25)),
        metric(&names[2], ValueRef::Int64(-3)),
        metric(&names[2], ValueRef::Bool(true)),
        metric(&names[3], ValueRef::Int64(1)),
    ];
    let report = |h: &dyn Handler| h.report_refs(ReportRefs::Metric(&batch)).unwrap();

    type Case<'a> = (&'static str, &'a dyn Handler);
    let cases: [Case<'_>; 2] = [("prometheus", &*prometheus), ("statsd", &*statsd)];
    for (name, h) in cases {
        // The warm-up call inside creates the series and grows the
        // scratch buffers.
        let per_call = counting_alloc::per_call_on_this_thread(1000, || report(h));
        assert_eq!(per_call, 0.0, "{name} allocated {per_call} times per call");
        // Every call was recorded: the invalid value and the unknown
        // instance counted each time (so the calls did reach the handler).
        assert_eq!(counter(h, "invalid_values"), 1001, "{name}");
        assert_eq!(counter(h, "unknown_instances"), 1001, "{name}");
    }
    assert_eq!(counter(&*prometheus, "dropped"), 0);
    assert!(counter(&*statsd, "sent") + counter(&*statsd, "dropped") > 0);
    rt.block_on(async {
        prometheus.close().resolve().await.unwrap();
        statsd.close().resolve().await.unwrap();
    });
}
