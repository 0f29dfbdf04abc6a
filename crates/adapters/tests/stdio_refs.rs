//! The stdio adapter's borrowed reports: the same lines as owned ones, and
//! close writing everything accepted before it.

use std::fs;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::stdio::{StdioHandler, StdioParams};
use mixer_adapters::template::{
    Dimensions, DimensionsRef, LogEntryInstance, LogEntryRef, MetricInstance, MetricRef,
    ReportBatch, ReportRefs,
};
use mixer_adapters::{BuildEnv, Handler, ManualClock, Params};
use mixer_attributes::{StringMap, Timestamp, Value, ValueRef};
use serde_json::json;

fn handler(params: serde_json::Value, env: &BuildEnv) -> StdioHandler {
    let p = StdioParams::parse(&Params::new(params)).expect("valid params");
    StdioHandler::build(p, env).expect("built")
}

fn counter(h: &StdioHandler, name: &str) -> u64 {
    h.counters()
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.value)
        .unwrap_or(u64::MAX)
}

fn dims(v: &[(&str, Value)]) -> Dimensions {
    v.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
}

/// A map's keys and borrowed values, for a [`DimensionsRef`] over them.
fn split(d: &Dimensions) -> (Vec<Arc<str>>, Vec<ValueRef<'_>>) {
    (
        d.keys().cloned().collect(),
        d.values().map(Value::as_ref).collect(),
    )
}

fn log(
    name: &str,
    severity: &str,
    ts: Option<Timestamp>,
    vars: &[(&str, Value)],
) -> LogEntryInstance {
    LogEntryInstance {
        name: name.into(),
        variables: dims(vars),
        timestamp: ts,
        severity: severity.into(),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

fn metric(name: &str, value: Value, d: &[(&str, Value)]) -> MetricInstance {
    MetricInstance {
        name: name.into(),
        value,
        dimensions: dims(d),
        monitored_resource_type: "k8s_pod".into(),
        monitored_resource_dimensions: dims(&[("pod", Value::String("p-1".into()))]),
    }
}

/// Entries of every value type, with and without timestamps, at levels
/// both written and filtered out, and fields named like reserved keys.
fn entries() -> Vec<LogEntryInstance> {
    let ts = Timestamp::new(1_700_000_000, 123_456_789);
    let map: StringMap = [("b", "2 \"x\""), ("a", "1")].into_iter().collect();
    let ip: IpAddr = "10.1.2.3".parse().unwrap();
    vec![
        log(
            "a.instance.ns",
            "Warning",
            ts,
            &[
                ("url", Value::String("/a?b=\"c\"\n\t".into())),
                ("code", Value::Int64(404)),
                ("latency", Value::Duration(Duration::from_micros(2500))),
                ("instance", Value::String("shadowed".into())),
                ("ratio", Value::Double(0.25)),
                ("nan", Value::Double(f64::NAN)),
                ("ok", Value::Bool(true)),
                ("headers", Value::StringMap(map)),
                ("ip", Value::IpAddress(ip)),
                ("raw", Value::Bytes(vec![0xde, 0xad])),
                ("peer", Value::Bytes(vec![10, 0, 0, 1])),
                ("when", Value::Timestamp(Timestamp::new(5, 6_000).unwrap())),
                ("mail", Value::EmailAddress("a@b.c".into())),
                ("uri", Value::Uri("http://x/y z".into())),
                ("dns", Value::DnsName("x.y".into())),
                ("empty", Value::String(String::new())),
                ("value", Value::String("a=b".into())),
            ],
        ),
        log("a.instance.ns", "info", None, &[("n", Value::Int64(1))]),
        log("b.instance.ns", "debug", ts, &[("n", Value::Int64(2))]),
        log("b.instance.ns", "ERROR", None, &[]),
        log("c.instance.ns", "notice", ts, &[("time", Value::Int64(3))]),
    ]
}

fn metrics() -> Vec<MetricInstance> {
    vec![
        metric(
            "m.instance.ns",
            Value::Double(0.5),
            &[
                ("code", Value::Int64(200)),
                ("path", Value::String("/x y".into())),
            ],
        ),
        metric("n.instance.ns", Value::Int64(7), &[]),
        metric(
            "o.instance.ns",
            Value::Duration(Duration::from_millis(1500)),
            &[("level", Value::Bool(false))],
        ),
    ]
}

/// Reports `logs` and `metrics` through `report_refs`, borrowing them.
fn report_borrowed(h: &StdioHandler, logs: &[LogEntryInstance], metrics: &[MetricInstance]) {
    let vars: Vec<_> = logs.iter().map(|e| split(&e.variables)).collect();
    let log_refs: Vec<LogEntryRef<'_>> = logs
        .iter()
        .zip(&vars)
        .map(|(e, (keys, values))| LogEntryRef {
            name: &e.name,
            variables: DimensionsRef::new(keys, values),
            timestamp: e.timestamp,
            severity: &e.severity,
            monitored_resource_type: &e.monitored_resource_type,
            monitored_resource_dimensions: DimensionsRef::EMPTY,
        })
        .collect();
    h.report_refs(ReportRefs::LogEntry(&log_refs)).unwrap();
    let dims: Vec<_> = metrics.iter().map(|m| split(&m.dimensions)).collect();
    let res: Vec<_> = metrics
        .iter()
        .map(|m| split(&m.monitored_resource_dimensions))
        .collect();
    let metric_refs: Vec<MetricRef<'_>> = metrics
        .iter()
        .zip(dims.iter().zip(&res))
        .map(|(m, ((keys, values), (res_keys, res_values)))| MetricRef {
            name: &m.name,
            value: m.value.as_ref(),
            dimensions: DimensionsRef::new(keys, values),
            monitored_resource_type: &m.monitored_resource_type,
            monitored_resource_dimensions: DimensionsRef::new(res_keys, res_values),
        })
        .collect();
    h.report_refs(ReportRefs::Metric(&metric_refs)).unwrap();
}

async fn output(params: serde_json::Value, path: &Path, env: &BuildEnv, borrowed: bool) -> String {
    let h = handler(params, env);
    let (logs, metrics) = (entries(), metrics());
    if borrowed {
        report_borrowed(&h, &logs, &metrics);
    } else {
        h.report(ReportBatch::LogEntry(logs)).unwrap();
        h.report(ReportBatch::Metric(metrics)).unwrap();
    }
    h.close().resolve().await.unwrap();
    assert_eq!(counter(&h, "dropped"), 0);
    fs::read_to_string(path).unwrap()
}

#[tokio::test]
async fn owned_and_borrowed_reports_write_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // A clock standing still: the entries without a timestamp get the same
    // time from both handlers.
    let env = BuildEnv::current().with_clock(Arc::new(ManualClock::new()));
    for json in [true, false] {
        let [owned, borrowed] =
            ["owned", "borrowed"].map(|n| dir.path().join(format!("{n}-{json}.log")));
        let params = |p: &Path| {
            json!({"logStream": "FILE", "outputPath": p.to_str().unwrap(),
                   "outputAsJson": json, "severityLevels": {"notice": "WARNING"}})
        };
        let want = output(params(&owned), &owned, &env, false).await;
        let got = output(params(&borrowed), &borrowed, &env, true).await;
        // The five entries (debug reads as INFO) and the three metrics.
        assert_eq!(want.lines().count(), 8, "{want}");
        assert_eq!(got, want);
        if json {
            for l in got.lines() {
                serde_json::from_str::<serde_json::Value>(l).unwrap();
            }
        }
    }
}

#[tokio::test]
async fn borrowed_lines_below_the_output_level_are_not_written() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("warn.log");
    let h = handler(
        json!({"logStream": "FILE", "outputPath": path.to_str().unwrap(),
               "outputLevel": "WARNING", "metricLevel": "INFO"}),
        &BuildEnv::current(),
    );
    report_borrowed(&h, &entries(), &metrics());
    h.close().resolve().await.unwrap();
    let text = fs::read_to_string(&path).unwrap();
    let levels: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["level"].to_string())
        .collect();
    // Warning and ERROR; notice is INFO here, metrics are below WARNING.
    assert_eq!(levels, vec!["\"warn\"", "\"error\""], "{text}");
}

#[tokio::test]
async fn close_writes_every_line_accepted_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("all.log");
    let h = Arc::new(handler(
        json!({"logStream": "FILE", "outputPath": path.to_str().unwrap()}),
        &BuildEnv::current(),
    ));
    const THREADS: i64 = 4;
    const BATCHES: i64 = 300;
    const PER_BATCH: i64 = 3;
    let name: Arc<str> = "a.instance.ns".into();
    let keys: Vec<Arc<str>> = vec!["i".into(), "t".into()];
    let reporters: Vec<_> = (0..THREADS)
        .map(|t| {
            let (h, name, keys) = (h.clone(), name.clone(), keys.clone());
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let values: Vec<[ValueRef<'_>; 2]> = (0..PER_BATCH)
                        .map(|j| [ValueRef::Int64(b * PER_BATCH + j), ValueRef::Int64(t)])
                        .collect();
                    let refs: Vec<LogEntryRef<'_>> = values
                        .iter()
                        .map(|v| LogEntryRef {
                            name: &name,
                            variables: DimensionsRef::new(&keys, v),
                            timestamp: None,
                            severity: "",
                            monitored_resource_type: "",
                            monitored_resource_dimensions: DimensionsRef::EMPTY,
                        })
                        .collect();
                    h.report_refs(ReportRefs::LogEntry(&refs)).unwrap();
                }
            })
        })
        .collect();
    for r in reporters {
        r.join().unwrap();
    }
    h.close().resolve().await.unwrap();
    let total = (THREADS * BATCHES * PER_BATCH) as u64;
    assert_eq!(counter(&h, "written"), total);
    assert_eq!(counter(&h, "dropped"), 0);
    let mut next = vec![0; THREADS as usize];
    for l in fs::read_to_string(&path).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        let t = v["t"].as_i64().unwrap() as usize;
        // Every reporter's lines, in the order it reported them, no gap.
        assert_eq!(v["i"].as_i64().unwrap(), next[t], "{l}");
        next[t] += 1;
    }
    assert_eq!(next, vec![BATCHES * PER_BATCH; THREADS as usize]);

    // After close nothing is accepted, and what is refused is counted.
    let one = [LogEntryRef {
        name: &name,
        variables: DimensionsRef::EMPTY,
        timestamp: None,
        severity: "",
        monitored_resource_type: "",
        monitored_resource_dimensions: DimensionsRef::EMPTY,
    }];
    let e = h.report_refs(ReportRefs::LogEntry(&one)).unwrap_err();
    assert_eq!(e, mixer_adapters::Error::QueueFull { dropped: 1 });
    assert_eq!(counter(&h, "dropped"), 1);
}
