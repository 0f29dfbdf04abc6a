use std::sync::Arc;
use std::time::Duration;

use mixer_attributes::{Value, ValueRef};
use serde_json::json;

use super::*;
use crate::template::{
    Dimensions, DimensionsRef, MetricInstance, MetricRef, ReportBatch, ReportRefs,
};

fn parse(v: serde_json::Value) -> Result<StatsdParams, Error> {
    StatsdParams::parse(&Params::new(v))
}

#[test]
fn defaults() {
    let p = parse(json!({})).unwrap();
    assert_eq!(p.address, "localhost:8125");
    assert_eq!(p.prefix, "");
    assert_eq!(p.flush_duration, Duration::from_millis(300));
    assert_eq!(p.flush_bytes, 512);
    assert_eq!(p.sampling_rate, 1.0);
    assert!(p.metrics.is_empty());
    let p = parse(json!({"metrics": {"a.b.c": {"type": "GAUGE"}}})).unwrap();
    assert_eq!(p.metrics["a.b.c"].kind, MetricType::Gauge);
    assert_eq!(p.metrics["a.b.c"].name_template, None);
}

#[test]
fn every_problem_names_its_field() {
    let e = parse(json!({
        "address": "nohost",
        "flushDuration": "0s",
        "flushBytes": 70000,
        "samplingRate": 0,
        "prefx": "x",
        "metrics": {
            "a.i": {"type": "TIMER"},
            "b.i": {"nameTemplate": "{{.x}}"},
            "c.i": {"type": "COUNTER", "nameTemplate": "{{.x"},
            "d.i": {"type": "COUNTER", "template": "t"},
        },
    }))
    .unwrap_err();
    let paths: Vec<&str> = e.field_errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "address",
            "flushDuration",
            "flushBytes",
            "samplingRate",
            "metrics[\"a.i\"].type",
            "metrics[\"b.i\"].type",
            "metrics[\"c.i\"].nameTemplate",
            "metrics[\"d.i\"].template",
            "prefx",
        ]
    );
    assert!(e.to_string().contains("unclosed `{{`"), "{e}");
    let e = parse(json!({"metrics": ["x"]})).unwrap_err();
    assert_eq!(e.field_errors()[0].path, "metrics");
}

fn instance(name: &str, value: Value, dims: &[(&str, Value)]) -> MetricInstance {
    MetricInstance {
        name: name.into(),
        value,
        dimensions: dims
            .iter()
            .map(|(k, v)| (Arc::from(*k), v.clone()))
            .collect::<Dimensions>(),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

/// Every datagram that arrives within `quiet` of the previous one.
async fn receive(sock: &tokio::net::UdpSocket, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, sock.recv(&mut buf)).await {
        out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    out
}

#[tokio::test]
async fn borrowed_instances_send_exactly_the_lines_owned_ones_do() {
    let owned_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let borrowed_sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let handler = |sock: &tokio::net::UdpSocket| {
        let p = parse(json!({
            "address": sock.local_addr().unwrap().to_string(),
            "prefix": "mesh.",
            "flushBytes": 100,
            // Sent by size, and the tail by close: never by the clock.
            "flushDuration": "1h",
            "metrics": {
                "requestcount.i": {"type": "COUNTER", "nameTemplate": "{{.apiMethod}}-{{.responseCode}}"},
                "inflight.i": {"type": "GAUGE"},
                "latency.i": {"type": "DISTRIBUTION", "nameTemplate": "latency.{{.apiMethod}}.{{.took}}"},
                "size.i": {"type": "DISTRIBUTION"},
            },
        }))
        .unwrap();
        StatsdHandler::build(p, &BuildEnv::current()).unwrap()
    };
    let (owned, borrowed) = (handler(&owned_sock), handler(&borrowed_sock));
    let dims = [
        ("apiMethod", Value::String("Get|Shelf".into())),
        ("responseCode", Value::Int64(200)),
        ("took", Value::Duration(Duration::from_millis(1500))),
    ];
    let batch = vec![
        instance("requestcount.i", Value::Int64(3), &dims),
        // A missing dimension renders as nothing.
        instance(
            "requestcount.i",
            Value::Int64(1),
            &[("responseCode", Value::Int64(503))],
        ),
        instance("inflight.i", Value::Double(2.5), &[]),
        instance("inflight.i", Value::Int64(-3), &[]),
        instance(
            "latency.i",
            Value::Duration(Duration::from_micros(1500)),
            &dims,
        ),
        instance("size.i", Value::String(" 0.25 ".into()), &[]),
        instance("size.i", Value::String("12".into()), &[]),
        // Not sent: an unknown instance and values that are no number.
        instance("other.i", Value::Int64(1), &dims),
        instance("size.i", Value::Bool(true), &[]),
        instance("size.i", Value::String("twelve".into()), &[]),
    ];
    owned.report(ReportBatch::Metric(batch.clone())).unwrap();
    let split: Vec<(Vec<Arc<str>>, Vec<ValueRef<'_>>)> = batch
        .iter()
        .map(|i| {
            (
                i.dimensions.keys().cloned().collect(),
                i.dimensions.values().map(Value::as_ref).collect(),
            )
        })
        .collect();
    let refs: Vec<MetricRef<'_>> = batch
        .iter()
        .zip(&split)
        .map(|(i, (k, v))| MetricRef {
            name: &i.name,
            value: i.value.as_ref(),
            dimensions: DimensionsRef::new(k, v),
            monitored_resource_type: "",
            monitored_resource_dimensions: DimensionsRef::EMPTY,
        })
        .collect();
    borrowed.report_refs(ReportRefs::Metric(&refs)).unwrap();
    owned.close().resolve().await.unwrap();
    borrowed.close().resolve().await.unwrap();

    let quiet = Duration::from_millis(300);
    let (from_owned, from_borrowed) = (
        receive(&owned_sock, quiet).await,
        receive(&borrowed_sock, quiet).await,
    );
    assert_eq!(from_borrowed, from_owned);
    let lines: Vec<&str> = from_borrowed.iter().flat_map(|d| d.split('\n')).collect();
    assert_eq!(
        lines,
        vec![
            "mesh.Get_Shelf-200:3|c",
            "mesh.-503:1|c",
            "mesh.inflight.i:2.5|g",
            "mesh.inflight.i:0|g",
            "mesh.inflight.i:-3|g",
            "mesh.latency.Get_Shelf.1.5s:1.5|ms",
            "mesh.size.i:0.25|h",
            "mesh.size.i:12|h",
        ]
    );
    let counters = |h: &StatsdHandler| -> Vec<(&str, u64)> {
        h.counters().iter().map(|c| (c.name, c.value)).collect()
    };
    assert_eq!(counters(&borrowed), counters(&owned));
    let c = counters(&borrowed);
    assert!(c.contains(&("sent", 8)), "{c:?}");
    assert!(c.contains(&("unknown_instances", 1)), "{c:?}");
    assert!(c.contains(&("invalid_values", 2)), "{c:?}");
    assert!(borrowed.report_refs(ReportRefs::LogEntry(&[])).is_err());
}
