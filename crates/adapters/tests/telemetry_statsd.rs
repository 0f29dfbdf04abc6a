//! The statsd adapter sending to a UDP socket on loopback: every line, and
//! no datagram larger than `flushBytes`.

use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::statsd::{StatsdHandler, StatsdParams};
use mixer_adapters::template::{Dimensions, MetricInstance, ReportBatch};
use mixer_adapters::{BuildEnv, Handler, Params};
use mixer_attributes::Value;
use serde_json::json;
use tokio::net::UdpSocket;

fn inst(name: &str, value: Value, dims: &[(&str, Value)]) -> MetricInstance {
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

fn handler(params: serde_json::Value) -> StatsdHandler {
    let p = StatsdParams::parse(&Params::new(params)).expect("valid params");
    StatsdHandler::build(p, &BuildEnv::current()).expect("built")
}

/// Every datagram that arrives within `quiet` of the previous one.
async fn receive(sock: &UdpSocket, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 70_000];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, sock.recv(&mut buf)).await {
        out.push(String::from_utf8(buf[..n].to_vec()).expect("utf-8 datagram"));
    }
    out
}

#[tokio::test]
async fn every_line_arrives_packed_under_flush_bytes() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let h = handler(json!({
        "address": addr.to_string(),
        "prefix": "mesh.",
        "flushBytes": 64,
        "flushDuration": "20ms",
        "metrics": {
            "requestcount.instance.ns": {"type": "COUNTER", "nameTemplate": "{{.apiMethod}}-{{.responseCode}}"},
            "inflight.instance.ns": {"type": "GAUGE"},
            "latency.instance.ns": {"type": "DISTRIBUTION", "nameTemplate": "latency.{{.apiMethod}}"},
            "size.instance.ns": {"type": "DISTRIBUTION"},
        },
    }));
    let dims = [
        ("apiMethod", Value::String("GetShelf".into())),
        ("responseCode", Value::Int64(200)),
    ];
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        batch.push(inst("requestcount.instance.ns", Value::Int64(i), &dims));
        expected.push(format!("mesh.GetShelf-200:{i}|c"));
    }
    batch.push(inst("inflight.instance.ns", Value::Double(2.5), &[]));
    expected.push("mesh.inflight.instance.ns:2.5|g".to_string());
    batch.push(inst("inflight.instance.ns", Value::Int64(-3), &[]));
    expected.push("mesh.inflight.instance.ns:0|g".to_string());
    expected.push("mesh.inflight.instance.ns:-3|g".to_string());
    batch.push(inst(
        "latency.instance.ns",
        Value::Duration(Duration::from_micros(1500)),
        &dims,
    ));
    expected.push("mesh.latency.GetShelf:1.5|ms".to_string());
    batch.push(inst(
        "latency.instance.ns",
        Value::Duration(Duration::from_secs(2)),
        &dims,
    ));
    expected.push("mesh.latency.GetShelf:2000|ms".to_string());
    batch.push(inst("size.instance.ns", Value::Int64(512), &[]));
    expected.push("mesh.size.instance.ns:512|h".to_string());
    batch.push(inst("size.instance.ns", Value::String("0.25".into()), &[]));
    expected.push("mesh.size.instance.ns:0.25|h".to_string());
    // Not sent: no metric config, and a value that is not a number.
    batch.push(inst("other.instance.ns", Value::Int64(1), &[]));
    batch.push(inst("size.instance.ns", Value::Bool(true), &[]));
    h.report(ReportBatch::Metric(batch)).unwrap();

    // The tail is sent by the flush interval.
    let datagrams = receive(&sock, Duration::from_millis(500)).await;
    assert!(datagrams.len() > 3, "{datagrams:?}");
    for d in &datagrams {
        assert!(d.len() <= 64, "datagram of {} bytes: {d:?}", d.len());
        assert!(!d.ends_with('\n'), "{d:?}");
    }
    let lines: Vec<String> = datagrams
        .iter()
        .flat_map(|d| d.split('\n'))
        .map(str::to_string)
        .collect();
    assert_eq!(lines, expected);
    // The two lines of a negative gauge travel together.
    assert!(
        datagrams
            .iter()
            .any(|d| d.contains("mesh.inflight.instance.ns:0|g\nmesh.inflight.instance.ns:-3|g")),
        "{datagrams:?}"
    );
    let counters: Vec<(&str, u64)> = h.counters().iter().map(|c| (c.name, c.value)).collect();
    assert!(
        counters.contains(&("sent", expected.len() as u64)),
        "{counters:?}"
    );
    assert!(counters.contains(&("unknown_instances", 1)), "{counters:?}");
    assert!(counters.contains(&("invalid_values", 1)), "{counters:?}");
    assert!(counters.contains(&("dropped", 0)), "{counters:?}");
    h.close().resolve().await.unwrap();
}

#[tokio::test]
async fn flushes_by_size_at_once_and_the_rest_on_interval_or_close() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let h = handler(json!({
        "address": addr.to_string(),
        "flushBytes": 20,
        "flushDuration": "1h",
        "metrics": {"c": {"type": "COUNTER"}},
    }));
    // "c:1|c" is 5 bytes: three fit in 20 (5+1+5+1+5), the fourth does not.
    let four = (0..4).map(|_| inst("c", Value::Int64(1), &[])).collect();
    h.report(ReportBatch::Metric(four)).unwrap();
    let first = receive(&sock, Duration::from_millis(200)).await;
    assert_eq!(first, vec!["c:1|c\nc:1|c\nc:1|c"]);
    // The fourth waits for the interval (an hour) or the close.
    h.close().resolve().await.unwrap();
    let rest = receive(&sock, Duration::from_millis(200)).await;
    assert_eq!(rest, vec!["c:1|c"]);
}

#[tokio::test]
async fn sampled_lines_carry_the_rate() {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let h = handler(json!({
        "address": addr.to_string(),
        "samplingRate": 0.5,
        "flushDuration": "10ms",
        "metrics": {"c": {"type": "COUNTER"}},
    }));
    let n = 2000;
    for _ in 0..n / 100 {
        let batch = (0..100).map(|_| inst("c", Value::Int64(1), &[])).collect();
        h.report(ReportBatch::Metric(batch)).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    h.close().resolve().await.unwrap();
    let lines: Vec<String> = receive(&sock, Duration::from_millis(300))
        .await
        .iter()
        .flat_map(|d| d.split('\n'))
        .map(str::to_string)
        .collect();
    assert!(lines.iter().all(|l| l == "c:1|c|@0.5"), "{lines:?}");
    // Binomial(2000, 0.5): 1000 +- 22 (1 sigma); these bounds are 9 sigma.
    assert!(
        (800..1200).contains(&lines.len()),
        "{} of {n} sent",
        lines.len()
    );
}

#[tokio::test]
async fn a_host_name_is_resolved_in_the_background() {
    // Listen where `localhost` resolves first, as the handler will.
    let first = tokio::net::lookup_host("localhost:0")
        .await
        .unwrap()
        .next()
        .unwrap();
    let sock = UdpSocket::bind(first).await.unwrap();
    let port = sock.local_addr().unwrap().port();
    let h = handler(json!({
        "address": format!("localhost:{port}"),
        "flushDuration": "10ms",
        "metrics": {"g": {"type": "GAUGE"}},
    }));
    // Reported before the name has resolved: buffered (up to one datagram)
    // and sent once it has.
    h.report(ReportBatch::Metric(vec![inst("g", Value::Int64(7), &[])]))
        .unwrap();
    let got = receive(&sock, Duration::from_millis(1000)).await;
    assert_eq!(got, vec!["g:7|g"]);
    h.close().resolve().await.unwrap();
}
