use std::sync::Arc;
use std::time::Duration;

use mixer_attributes::{Value, ValueRef};
use serde_json::json;

use super::*;
use crate::template::{
    Dimensions, DimensionsRef, MetricInstance, MetricRef, ReportBatch, ReportRefs,
};
use crate::{BuildEnv, ManualClock};

fn parse(v: serde_json::Value) -> Result<PrometheusParams, Error> {
    PrometheusParams::parse(&Params::new(v))
}

fn paths(e: &[crate::FieldError]) -> Vec<&str> {
    e.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn defaults_and_sanitising() {
    let p = parse(json!({"metrics": [
        {"instanceName": "requestcount.metric.istio-system", "kind": "COUNTER",
         "labelNames": ["source.service", "response code"]},
        {"name": "request/duration", "namespace": "my.ns", "instanceName": "d", "kind": "DISTRIBUTION"},
    ]}))
    .unwrap();
    assert!(p.rejected.is_empty());
    assert_eq!(p.address.to_string(), "0.0.0.0:42422");
    assert_eq!(p.max_series, DEFAULT_MAX_SERIES_PER_METRIC);
    assert_eq!(
        p.metrics[0].exposed_name,
        "istio_requestcount_metric_istio_system"
    );
    assert_eq!(p.metrics[0].labels, vec!["source_service", "response_code"]);
    assert_eq!(p.metrics[1].exposed_name, "my_ns_request_duration");
    assert_eq!(p.metrics[1].bounds, DEFAULT_BUCKETS.to_vec());
    assert_eq!(p.expiry, None);
}

#[test]
fn bucket_layouts() {
    let b = |buckets: serde_json::Value| {
        let p = parse(json!({"metrics": [
            {"instanceName": "i", "kind": "DISTRIBUTION", "buckets": buckets}]}))
        .unwrap();
        assert!(p.rejected.is_empty(), "{:?}", p.rejected);
        p.metrics[0].bounds.clone()
    };
    assert_eq!(
        b(json!({"explicitBuckets": {"bounds": [1, 2.5, 10]}})),
        vec![1.0, 2.5, 10.0]
    );
    assert_eq!(
        b(json!({"linearBuckets": {"numFiniteBuckets": 3, "width": 5, "offset": 1}})),
        vec![1.0, 6.0, 11.0]
    );
    assert_eq!(
        b(json!({"exponentialBuckets": {"numFiniteBuckets": 4, "growthFactor": 10, "scale": 0.5}})),
        vec![0.5, 5.0, 50.0, 500.0]
    );
}

#[test]
fn each_bad_metric_is_rejected_alone_naming_its_field() {
    let p = parse(json!({"metrics": [
        {"instanceName": "ok", "kind": "COUNTER"},
        {"instanceName": "a", "kind": "SUMMARY"},
        {"instanceName": "b"},
        {"kind": "GAUGE", "name": "x"},
        {"instanceName": "c", "kind": "DISTRIBUTION", "buckets": {"explicitBuckets": {"bounds": [2, 1]}}},
        {"instanceName": "d", "kind": "DISTRIBUTION", "buckets": {"linearBuckets": {"numFiniteBuckets": 0, "width": 1}}},
        {"instanceName": "e", "kind": "DISTRIBUTION", "buckets": {"exponentialBuckets": {"numFiniteBuckets": 2, "growthFactor": 1, "scale": 1}}},
        {"instanceName": "f", "kind": "DISTRIBUTION", "buckets": {"linearBuckets": {"numFiniteBuckets": 2, "width": 0}}},
        {"instanceName": "g", "kind": "DISTRIBUTION", "labelNames": ["le"]},
        {"instanceName": "h", "kind": "COUNTER", "labelNames": ["a-b", "x", "x"]},
        {"instanceName": "i", "kind": "GAUGE", "name": "bad-name"},
        {"instanceName": "j", "kind": "GAUGE", "name": "ok"},
        {"instanceName": "ok", "kind": "GAUGE", "name": "other"},
        {"instanceName": "k", "kind": "GAUGE", "buckets": {"explicitBuckets": {"bounds": [1]}}},
        {"instanceName": "l", "kind": "DISTRIBUTION", "buckets": {}},
        {"instanceName": "m", "kind": "COUNTER", "labels": ["typo"]},
    ]}))
    .unwrap();
    assert_eq!(p.metrics.len(), 1);
    assert_eq!(p.metrics[0].instance_name, "ok");
    assert_eq!(
        paths(&p.rejected),
        vec![
            "metrics[1].kind",
            "metrics[2].kind",
            "metrics[3].instanceName",
            "metrics[4].buckets.explicitBuckets.bounds",
            "metrics[5].buckets.linearBuckets.numFiniteBuckets",
            "metrics[6].buckets.exponentialBuckets.growthFactor",
            "metrics[7].buckets.linearBuckets.width",
            "metrics[8].labelNames[0]",
            "metrics[9].labelNames[0]",
            "metrics[9].labelNames[2]",
            "metrics[10].name",
            "metrics[11].name",
            "metrics[12].instanceName",
            "metrics[13].buckets",
            "metrics[14].buckets",
            "metrics[15].labels",
        ]
    );
}

#[test]
fn handler_wide_problems_and_nothing_left_fail_validation() {
    let e = parse(json!({"metrics": [{"instanceName": "a", "kind": "NOPE"}]})).unwrap_err();
    assert_eq!(paths(e.field_errors()), vec!["metrics[0].kind"]);
    for (bad, path) in [
        (
            json!({"metricsExpirationPolicy": {}}),
            "metricsExpirationPolicy.metricsExpiryDuration",
        ),
        (
            json!({"metricsExpirationPolicy": {"metricsExpiryDuration": "0s"}}),
            "metricsExpirationPolicy.metricsExpiryDuration",
        ),
        (
            json!({"metricsExpirationPolicy": {"metricsExpiryDuration": "soon"}}),
            "metricsExpirationPolicy.metricsExpiryDuration",
        ),
        (
            json!({"metricsExpirationPolicy": {"metricsExpiryDuration": "1s", "expiryCheckIntervalDuration": "0s"}}),
            "metricsExpirationPolicy.expiryCheckIntervalDuration",
        ),
        (json!({"host": "localhost"}), "host"),
        (json!({"port": 70000}), "port"),
        (json!({"maxSeriesPerMetric": 0}), "maxSeriesPerMetric"),
        (json!({"prot": 1}), "prot"),
    ] {
        let e = parse(bad.clone()).unwrap_err();
        assert_eq!(paths(e.field_errors()), vec![path], "{bad}");
    }
    let p = parse(json!({"metricsExpirationPolicy": {"metricsExpiryDuration": "10m"}})).unwrap();
    assert_eq!(
        p.expiry,
        Some((Duration::from_secs(600), Duration::from_secs(300)))
    );
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

#[tokio::test]
async fn records_values_of_every_type_and_counts_what_it_cannot() {
    let p = parse(json!({"host": "127.0.0.1", "port": 0, "maxSeriesPerMetric": 2, "metrics": [
        {"instanceName": "c", "name": "c", "kind": "COUNTER", "labelNames": ["source.name", "code"]},
    ]}))
    .unwrap();
    let h = PrometheusHandler::build(p, &BuildEnv::current()).unwrap();
    let dims = [
        ("source_name", Value::String("a".into())),
        ("code", Value::Int64(200)),
    ];
    let batch = vec![
        instance("c", Value::Int64(2), &dims),
        instance("c", Value::Double(0.5), &dims),
        instance("c", Value::Duration(Duration::from_millis(1500)), &dims),
        instance("c", Value::String(" 4 ".into()), &dims),
        instance("c", Value::String("four".into()), &dims),
        instance("c", Value::Bool(true), &dims),
        instance("c", Value::Int64(-1), &dims),
        instance("c", Value::Double(f64::NAN), &dims),
        instance("nope", Value::Int64(1), &dims),
        instance("c", Value::Int64(1), &[("code", Value::Int64(500))]),
        instance("c", Value::Int64(1), &[("code", Value::Int64(404))]),
    ];
    h.report(ReportBatch::Metric(batch)).unwrap();
    let fam = &h.by_instance_family("c");
    let s = fam.snapshot();
    assert_eq!(s.len(), 2);
    assert_eq!(&*s[0].labels, &["".into(), "500".into()] as &[Box<str>]);
    assert_eq!(&*s[1].labels, &["a".into(), "200".into()] as &[Box<str>]);
    assert_eq!(s[1].scalar(), 8.0);
    let counters: Vec<(&str, u64)> = h.counters().iter().map(|c| (c.name, c.value)).collect();
    assert_eq!(
        counters,
        vec![
            ("dropped", 1),
            ("invalid_values", 4),
            ("unknown_instances", 1),
            ("expired_series", 0),
            ("rejected_metrics", 0)
        ]
    );
    assert!(h.report(ReportBatch::LogEntry(vec![])).is_err());
    h.close().resolve().await.unwrap();
}

#[tokio::test]
async fn idle_series_expire_on_the_handlers_clock() {
    let p = parse(json!({"host": "127.0.0.1", "port": 0,
        "metricsExpirationPolicy": {"metricsExpiryDuration": "10s", "expiryCheckIntervalDuration": "10ms"},
        "metrics": [{"instanceName": "g", "kind": "GAUGE", "labelNames": ["k"]}]}))
    .unwrap();
    let clock = Arc::new(ManualClock::new());
    let h = PrometheusHandler::build(p, &BuildEnv::current().with_clock(clock.clone())).unwrap();
    let rec = |k: &str| {
        h.record(&instance(
            "g",
            Value::Int64(1),
            &[("k", Value::String(k.into()))],
        ))
    };
    rec("old");
    clock.advance(Duration::from_secs(6));
    rec("new");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        h.by_instance_family("g").snapshot().len(),
        2,
        "nothing idle for 10s yet"
    );
    clock.advance(Duration::from_secs(5));
    let fam = h.by_instance_family("g");
    for _ in 0..1000 {
        if fam.snapshot().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let left: Vec<_> = fam
        .snapshot()
        .iter()
        .map(|s| s.labels[0].to_string())
        .collect();
    assert_eq!(left, vec!["new"]);
    assert_eq!(h.counters()[3].value, 1);
    h.close().resolve().await.unwrap();
}

/// Each instance's dimension keys and borrowed values, for building
/// [`MetricRef`]s that borrow them.
fn split_dims(batch: &[MetricInstance]) -> Vec<(Vec<Arc<str>>, Vec<ValueRef<'_>>)> {
    batch
        .iter()
        .map(|i| {
            (
                i.dimensions.keys().cloned().collect(),
                i.dimensions.values().map(Value::as_ref).collect(),
            )
        })
        .collect()
}

fn metric_refs<'a>(
    batch: &'a [MetricInstance],
    dims: &'a [(Vec<Arc<str>>, Vec<ValueRef<'a>>)],
) -> Vec<MetricRef<'a>> {
    batch
        .iter()
        .zip(dims)
        .map(|(i, (k, v))| MetricRef {
            name: &i.name,
            value: i.value.as_ref(),
            dimensions: DimensionsRef::new(k, v),
            monitored_resource_type: "",
            monitored_resource_dimensions: DimensionsRef::EMPTY,
        })
        .collect()
}

/// The exposition text of every family the handler records into.
fn exposition(h: &PrometheusHandler, instances: &[&str]) -> String {
    let mut out = String::new();
    for i in instances {
        super::text::encode_family(&mut out, &h.by_instance_family(i));
    }
    out
}

#[tokio::test]
async fn borrowed_instances_record_exactly_what_owned_ones_do() {
    let params = json!({"host": "127.0.0.1", "port": 0, "maxSeriesPerMetric": 3, "metrics": [
        {"instanceName": "c", "name": "c", "kind": "COUNTER",
         "labelNames": ["source.name", "code", "missing"]},
        {"instanceName": "g", "name": "g", "kind": "GAUGE", "labelNames": ["pod", "took"]},
        {"instanceName": "d", "name": "d", "kind": "DISTRIBUTION", "labelNames": ["path"],
         "buckets": {"explicitBuckets": {"bounds": [0.1, 1, 10]}}},
    ]});
    let owned =
        PrometheusHandler::build(parse(params.clone()).unwrap(), &BuildEnv::current()).unwrap();
    let borrowed = PrometheusHandler::build(parse(params).unwrap(), &BuildEnv::current()).unwrap();
    // "source name" is found only as the dimension that sanitises to the
    // exposed label `source_name`; "missing" is in no instance.
    let dims = [
        ("source name", Value::String("a b".into())),
        ("code", Value::Int64(200)),
    ];
    let batch = vec![
        instance("c", Value::Int64(2), &dims),
        instance("c", Value::String(" 4.5 ".into()), &dims),
        instance("c", Value::Duration(Duration::from_millis(1500)), &dims),
        instance("c", Value::Int64(1), &[("code", Value::Int64(503))]),
        // Invalid: not a number, negative for a counter, NaN, a bool.
        instance("c", Value::String("four".into()), &dims),
        instance("c", Value::Int64(-1), &dims),
        instance("g", Value::Double(f64::NAN), &[]),
        instance("d", Value::Bool(true), &[]),
        // Unknown.
        instance("nope", Value::Int64(1), &dims),
        instance(
            "g",
            Value::Int64(-3),
            &[
                ("pod", Value::String("p-1".into())),
                ("took", Value::Duration(Duration::from_millis(250))),
            ],
        ),
        instance("g", Value::String("7".into()), &[("pod", Value::Int64(9))]),
        instance(
            "d",
            Value::Duration(Duration::from_millis(50)),
            &[("path", Value::String("/x".into()))],
        ),
        instance(
            "d",
            Value::Double(2.0),
            &[("path", Value::String("/x".into()))],
        ),
        instance("d", Value::String("20".into()), &[]),
        // A fourth series of `c`: dropped.
        instance("c", Value::Int64(1), &[("code", Value::Int64(404))]),
        instance("c", Value::Int64(1), &[("code", Value::Int64(500))]),
    ];
    owned.report(ReportBatch::Metric(batch.clone())).unwrap();
    let split = split_dims(&batch);
    let refs = metric_refs(&batch, &split);
    borrowed.report_refs(ReportRefs::Metric(&refs)).unwrap();

    let names = ["c", "g", "d"];
    let text = exposition(&borrowed, &names);
    assert_eq!(text, exposition(&owned, &names));
    for line in [
        "c{source_name=\"a b\",code=\"200\",missing=\"\"} 8\n",
        "c{source_name=\"\",code=\"503\",missing=\"\"} 1\n",
        "g{pod=\"p-1\",took=\"250ms\"} -3\n",
        "g{pod=\"9\",took=\"\"} 7\n",
        "d_bucket{path=\"/x\",le=\"0.1\"} 1\n",
        "d_sum{path=\"/x\"} 2.05\n",
        "d_count{path=\"\"} 1\n",
    ] {
        assert!(text.contains(line), "no {line:?} in\n{text}");
    }
    let counters = |h: &PrometheusHandler| -> Vec<(&str, u64)> {
        h.counters().iter().map(|c| (c.name, c.value)).collect()
    };
    assert_eq!(counters(&borrowed), counters(&owned));
    assert_eq!(
        counters(&borrowed),
        vec![
            ("dropped", 1),
            ("invalid_values", 4),
            ("unknown_instances", 1),
            ("expired_series", 0),
            ("rejected_metrics", 0)
        ]
    );
    assert!(borrowed.report_refs(ReportRefs::LogEntry(&[])).is_err());
    owned.close().resolve().await.unwrap();
    borrowed.close().resolve().await.unwrap();
}
