//! The prometheus adapter scraped over real HTTP on loopback, the body read
//! by an independent text-format parser (the `prometheus-parse` crate).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::prometheus::{PrometheusHandler, PrometheusParams};
use mixer_adapters::template::{Dimensions, MetricInstance, ReportBatch};
use mixer_adapters::{BuildEnv, Handler, ManualClock, Params};
use mixer_attributes::Value;
use prometheus_parse::{Sample, Scrape, Value as PValue};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn handler(params: serde_json::Value, env: &BuildEnv) -> PrometheusHandler {
    let p = PrometheusParams::parse(&Params::new(params)).expect("valid params");
    PrometheusHandler::build(p, env).expect("built")
}

fn inst(name: &str, value: Value, dims: &[(&str, &str)]) -> MetricInstance {
    MetricInstance {
        name: name.into(),
        value,
        dimensions: dims
            .iter()
            .map(|(k, v)| (Arc::from(*k), Value::String(v.to_string())))
            .collect::<Dimensions>(),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

/// GET /metrics over a plain TCP connection: status line, headers, body.
async fn get(port: u16, path: &str) -> std::io::Result<(u16, HashMap<String, String>, String)> {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("headers end");
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect::<HashMap<_, _>>();
    Ok((status, headers, body.to_string()))
}

async fn scrape(port: u16) -> (String, Scrape) {
    let (status, headers, body) = get(port, "/metrics").await.expect("scrape");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(
        headers["content-length"].parse::<usize>().unwrap(),
        body.len()
    );
    let parsed = Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("parses");
    (body, parsed)
}

fn find<'a>(s: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<&'a Sample> {
    s.samples
        .iter()
        .find(|x| x.metric == metric && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
}

fn names(s: &Scrape) -> Vec<String> {
    let mut v: Vec<String> = s.samples.iter().map(|x| x.metric.clone()).collect();
    v.sort();
    v.dedup();
    v
}

#[tokio::test]
async fn scraped_text_has_the_names_labels_values_and_buckets() {
    let env = BuildEnv::current();
    let h = handler(
        json!({"host": "127.0.0.1", "port": 0, "metrics": [
            {"instanceName": "requestcount.instance.istio-system", "name": "requests.total",
             "kind": "COUNTER", "description": "Requests served.",
             "labelNames": ["source.service", "response_code"]},
            {"instanceName": "inflight.instance.istio-system", "namespace": "mesh",
             "name": "in flight", "kind": "GAUGE", "labelNames": ["pod"]},
            {"instanceName": "latency.instance.istio-system", "name": "latency",
             "kind": "DISTRIBUTION", "labelNames": ["path"],
             "buckets": {"explicitBuckets": {"bounds": [0.1, 0.5, 1]}}},
            {"instanceName": "size.instance.istio-system", "name": "size", "kind": "DISTRIBUTION",
             "buckets": {"exponentialBuckets": {"numFiniteBuckets": 3, "growthFactor": 10, "scale": 1}}},
            {"instanceName": "linear.instance.istio-system", "name": "linear", "kind": "DISTRIBUTION",
             "buckets": {"linearBuckets": {"numFiniteBuckets": 2, "width": 5, "offset": 5}}},
            {"instanceName": "default.instance.istio-system", "name": "default_buckets",
             "kind": "DISTRIBUTION"},
        ]}),
        &env,
    );
    let port = h.local_addr().port();
    let rc = "requestcount.instance.istio-system";
    let ok = [
        ("source.service", "reviews.default v1"),
        ("response_code", "200"),
    ];
    let batch = vec![
        inst(rc, Value::Int64(3), &ok),
        inst(rc, Value::Double(0.5), &ok),
        inst(
            rc,
            Value::Int64(1),
            &[("source_service", "ratings"), ("response_code", "503")],
        ),
        inst(
            "inflight.instance.istio-system",
            Value::Int64(7),
            &[("pod", "a")],
        ),
        inst(
            "inflight.instance.istio-system",
            Value::String("-2.5".into()),
            &[("pod", "a")],
        ),
        inst(
            "latency.instance.istio-system",
            Value::Duration(Duration::from_millis(50)),
            &[("path", "/x")],
        ),
        inst(
            "latency.instance.istio-system",
            Value::Duration(Duration::from_millis(500)),
            &[("path", "/x")],
        ),
        inst(
            "latency.instance.istio-system",
            Value::Double(0.7),
            &[("path", "/x")],
        ),
        inst(
            "latency.instance.istio-system",
            Value::Int64(9),
            &[("path", "/x")],
        ),
        inst("size.instance.istio-system", Value::Int64(5), &[]),
        inst("size.instance.istio-system", Value::Int64(500), &[]),
        inst("linear.instance.istio-system", Value::Int64(6), &[]),
        inst("default.instance.istio-system", Value::Double(0.03), &[]),
    ];
    h.report(ReportBatch::Metric(batch)).unwrap();
    let (body, s) = scrape(port).await;

    assert_eq!(
        names(&s),
        vec![
            "istio_default_buckets",
            "istio_default_buckets_count",
            "istio_default_buckets_sum",
            "istio_latency",
            "istio_latency_count",
            "istio_latency_sum",
            "istio_linear",
            "istio_linear_count",
            "istio_linear_sum",
            "istio_requests_total",
            "istio_size",
            "istio_size_count",
            "istio_size_sum",
            "mesh_in_flight",
        ],
        "{body}"
    );
    assert_eq!(s.docs["istio_requests_total"], "Requests served.");
    let c = find(
        &s,
        "istio_requests_total",
        &[
            ("source_service", "reviews.default v1"),
            ("response_code", "200"),
        ],
    )
    .unwrap_or_else(|| panic!("{body}"));
    assert_eq!(c.value, PValue::Counter(3.5));
    let c = find(&s, "istio_requests_total", &[("source_service", "ratings")]).unwrap();
    assert_eq!(c.value, PValue::Counter(1.0));
    assert_eq!(c.labels.get("response_code"), Some("503"));
    assert_eq!(
        find(&s, "mesh_in_flight", &[("pod", "a")]).unwrap().value,
        PValue::Gauge(-2.5)
    );

    let buckets = |metric: &str| match &find(&s, metric, &[]).unwrap().value {
        PValue::Histogram(b) => b.iter().map(|b| (b.less_than, b.count)).collect::<Vec<_>>(),
        other => panic!("{metric}: {other:?}"),
    };
    let inf = f64::INFINITY;
    assert_eq!(
        buckets("istio_latency"),
        vec![(0.1, 1.0), (0.5, 2.0), (1.0, 3.0), (inf, 4.0)]
    );
    assert_eq!(
        find(&s, "istio_latency", &[]).unwrap().labels.get("path"),
        Some("/x")
    );
    assert_eq!(
        find(&s, "istio_latency_sum", &[]).unwrap().value,
        PValue::Untyped(10.25)
    );
    assert_eq!(
        find(&s, "istio_latency_count", &[]).unwrap().value,
        PValue::Untyped(4.0)
    );
    assert_eq!(
        buckets("istio_size"),
        vec![(1.0, 0.0), (10.0, 1.0), (100.0, 1.0), (inf, 2.0)]
    );
    assert_eq!(
        buckets("istio_linear"),
        vec![(5.0, 0.0), (10.0, 1.0), (inf, 1.0)]
    );
    let d = buckets("istio_default_buckets");
    let bounds: Vec<f64> = d.iter().map(|b| b.0).collect();
    assert_eq!(
        bounds,
        vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, inf
        ]
    );
    assert_eq!(d[2].1, 0.0);
    assert_eq!(d[3].1, 1.0);

    let (status, _, _) = get(port, "/other").await.unwrap();
    assert_eq!(status, 404);
    h.close().resolve().await.unwrap();
}

#[tokio::test]
async fn handlers_share_one_endpoint_and_a_redefinition_breaks_nothing() {
    let env = BuildEnv::current();
    let a = handler(
        json!({"host": "127.0.0.1", "port": 0, "metrics": [
            {"instanceName": "x.i", "name": "x", "kind": "COUNTER", "labelNames": ["k"]},
            {"instanceName": "z.i", "name": "z", "kind": "COUNTER"},
        ]}),
        &env,
    );
    let port = a.local_addr().port();
    // The same address; `x` redefined as a gauge with other labels, and one
    // bad metric that is rejected alone.
    let b = handler(
        json!({"host": "127.0.0.1", "port": port, "metrics": [
            {"instanceName": "x.i", "name": "x", "kind": "GAUGE", "labelNames": ["k", "j"]},
            {"instanceName": "bad.i", "name": "bad", "kind": "DISTRIBUTION",
             "buckets": {"explicitBuckets": {"bounds": [3, 2]}}},
            {"instanceName": "y.i", "name": "y", "kind": "GAUGE"},
        ]}),
        &env,
    );
    assert_eq!(b.local_addr(), a.local_addr());
    assert_eq!(
        b.counters()
            .iter()
            .find(|c| c.name == "rejected_metrics")
            .unwrap()
            .value,
        1
    );
    a.report(ReportBatch::Metric(vec![
        inst("x.i", Value::Int64(1), &[("k", "a")]),
        inst("z.i", Value::Int64(5), &[]),
    ]))
    .unwrap();
    b.report(ReportBatch::Metric(vec![
        inst("x.i", Value::Int64(9), &[("k", "b"), ("j", "c")]),
        inst("y.i", Value::Int64(2), &[]),
        inst("bad.i", Value::Int64(2), &[]),
    ]))
    .unwrap();

    let (body, s) = scrape(port).await;
    assert_eq!(names(&s), vec!["istio_x", "istio_y", "istio_z"], "{body}");
    assert_eq!(body.matches("# TYPE istio_x ").count(), 1, "{body}");
    let x: Vec<&Sample> = s.samples.iter().filter(|x| x.metric == "istio_x").collect();
    assert_eq!(x.len(), 1, "only the newest definition is served: {body}");
    assert_eq!(x[0].value, PValue::Gauge(9.0));
    assert_eq!(x[0].labels.get("j"), Some("c"));
    assert_eq!(
        find(&s, "istio_z", &[]).unwrap().value,
        PValue::Counter(5.0)
    );
    assert_eq!(find(&s, "istio_y", &[]).unwrap().value, PValue::Gauge(2.0));

    // The newest closes: the older definition is served again.
    b.close().resolve().await.unwrap();
    let (body, s) = scrape(port).await;
    assert_eq!(names(&s), vec!["istio_x", "istio_z"], "{body}");
    assert_eq!(
        find(&s, "istio_x", &[("k", "a")]).unwrap().value,
        PValue::Counter(1.0)
    );

    // The last one closes: the port is released.
    a.close().resolve().await.unwrap();
    let mut refused = false;
    for _ in 0..500 {
        if get(port, "/metrics").await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused, "endpoint still up after every handler closed");
    // And can be bound again.
    let c = handler(
        json!({"host": "127.0.0.1", "port": port, "metrics": [
        {"instanceName": "x.i", "name": "x", "kind": "COUNTER"}]}),
        &env,
    );
    c.close().resolve().await.unwrap();
}

#[tokio::test]
async fn idle_series_disappear_from_the_scrape() {
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::current().with_clock(clock.clone());
    let h = handler(
        json!({"host": "127.0.0.1", "port": 0,
               "metricsExpirationPolicy": {"metricsExpiryDuration": "1m", "expiryCheckIntervalDuration": "10ms"},
               "metrics": [{"instanceName": "r.i", "name": "r", "kind": "COUNTER", "labelNames": ["pod"]}]}),
        &env,
    );
    let port = h.local_addr().port();
    h.report(ReportBatch::Metric(vec![inst(
        "r.i",
        Value::Int64(1),
        &[("pod", "old")],
    )]))
    .unwrap();
    clock.advance(Duration::from_secs(40));
    h.report(ReportBatch::Metric(vec![inst(
        "r.i",
        Value::Int64(1),
        &[("pod", "new")],
    )]))
    .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (_, s) = scrape(port).await;
    assert_eq!(s.samples.len(), 2);
    clock.advance(Duration::from_secs(30));
    let mut pods = Vec::new();
    for _ in 0..1000 {
        let (_, s) = scrape(port).await;
        pods = s
            .samples
            .iter()
            .map(|x| x.labels.get("pod").unwrap().to_string())
            .collect();
        if pods.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(pods, vec!["new"]);
    h.close().resolve().await.unwrap();
}

const PY_PARSE: &str = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append({"family": fam.name, "type": fam.type, "doc": fam.documentation,
                    "name": s.name, "labels": s.labels, "value": s.value})
json.dump(out, sys.stdout)
"#;

/// Python prometheus_client's parse of `body`, as JSON; `None` (with a
/// visible SKIPPED line) where it is not installed, unless
/// `MIXER_REQUIRE_PY_PROMETHEUS=1`.
// The SKIPPED line is for whoever reads the test output.
#[allow(clippy::print_stdout)]
fn python_parse(body: &str) -> Option<serde_json::Value> {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let have = Command::new("python3")
        .args(["-c", "import prometheus_client"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        if std::env::var("MIXER_REQUIRE_PY_PROMETHEUS").as_deref() == Ok("1") {
            panic!("python3 with prometheus_client is required (MIXER_REQUIRE_PY_PROMETHEUS=1)");
        }
        println!(
            "SKIPPED: Python prometheus_client cross-check (python3 -m pip install prometheus_client)"
        );
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PY_PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client could not parse:\n{body}"
    );
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

#[tokio::test]
async fn python_prometheus_client_reads_the_same_text_escapes_included() {
    let h = handler(
        json!({"host": "127.0.0.1", "port": 0, "metrics": [
            {"instanceName": "c.i", "name": "requests", "kind": "COUNTER",
             "description": "Requests \\ served\nper path.", "labelNames": ["path"]},
            {"instanceName": "d.i", "name": "latency", "kind": "DISTRIBUTION", "labelNames": ["path"],
             "buckets": {"linearBuckets": {"numFiniteBuckets": 2, "width": 1, "offset": 1}}},
        ]}),
        &BuildEnv::current(),
    );
    let path = "/a\"b\\c\nd";
    h.report(ReportBatch::Metric(vec![
        inst("c.i", Value::Int64(7), &[("path", path)]),
        inst("d.i", Value::Double(1.5), &[("path", path)]),
        inst("d.i", Value::Double(0.5), &[("path", path)]),
    ]))
    .unwrap();
    let (_, _, body) = get(h.local_addr().port(), "/metrics").await.unwrap();
    h.close().resolve().await.unwrap();
    let Some(py) = python_parse(&body) else {
        return;
    };
    let samples: Vec<(String, String, String, f64)> = py
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["labels"]["path"].as_str().unwrap().to_string(),
                s["labels"]["le"].as_str().unwrap_or("").to_string(),
                s["value"].as_f64().unwrap(),
            )
        })
        .collect();
    let p = path.to_string();
    assert_eq!(
        samples,
        vec![
            // The Python client names counter samples `_total` whatever the
            // family is called.
            ("istio_requests_total".into(), p.clone(), "".into(), 7.0),
            ("istio_latency_bucket".into(), p.clone(), "1".into(), 1.0),
            ("istio_latency_bucket".into(), p.clone(), "2".into(), 2.0),
            ("istio_latency_bucket".into(), p.clone(), "+Inf".into(), 2.0),
            ("istio_latency_sum".into(), p.clone(), "".into(), 2.0),
            ("istio_latency_count".into(), p, "".into(), 2.0),
        ],
        "{body}"
    );
    let fams: Vec<(&str, &str, &str)> = py
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["family"].as_str().unwrap(),
                s["type"].as_str().unwrap(),
                s["doc"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        fams[0],
        ("istio_requests", "counter", "Requests \\ served\nper path.")
    );
    assert_eq!(fams[1].1, "histogram");
}
