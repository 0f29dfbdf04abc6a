//! Report instances reach handlers with the values their expressions give,
//! whether a handler takes them borrowed on the reporting thread (inline,
//! through `Handler::report_refs`) or copied through its queue; and a batch
//! an inline handler's own queue refuses is counted as dropped.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mixer_adapters::template::{Dimensions, LogEntryInstance, MetricInstance, ReportBatch};
use mixer_attributes::{OwnedBag, StringMap, Timestamp, Value};
use mixer_dispatch::Options;
use support::*;

const SYS: &str = "istio-system";

fn config() -> String {
    [
        handler("direct", SYS, "probe", "{inline: true}"),
        handler("queued", SYS, "probe", "{}"),
        instance(
            "m",
            SYS,
            "metric",
            r#"{value: response.duration, dimensions: {code: response.code, path: request.path, user: 'request.headers["x-user"] | "anon"', method: 'request.method | "GET"'}, monitoredResourceType: 'destination.name | "pod"', monitoredResourceDimensions: {ns: '"default"'}}"#,
        ),
        instance(
            "l",
            SYS,
            "logentry",
            r#"{severity: '"warning"', timestamp: request.time, variables: {path: request.path, code: response.code}}"#,
        ),
        // Its value is absent from every bag: skipped, the others go out.
        instance("bad", SYS, "metric", "{value: source.user}"),
        rule(
            "all",
            SYS,
            "",
            &[
                ("direct", &["m", "l", "bad"]),
                ("queued", &["m", "l", "bad"]),
            ],
        ),
    ]
    .concat()
}

fn request(path: &str, code: i64, user: Option<&str>, at: i64) -> OwnedBag {
    let headers: StringMap = user.map(|u| ("x-user", u)).into_iter().collect();
    OwnedBag::new()
        .with("request.path", Value::String(path.into()))
        .with("request.headers", Value::StringMap(headers))
        .with("response.code", Value::Int64(code))
        .with(
            "response.duration",
            Value::Duration(Duration::from_millis(25)),
        )
        .with(
            "request.time",
            Value::Timestamp(Timestamp::new(at, 0).unwrap()),
        )
}

fn dims(entries: &[(&str, Value)]) -> Dimensions {
    entries
        .iter()
        .map(|(k, v)| (Arc::from(*k), v.clone()))
        .collect::<BTreeMap<_, _>>()
}

fn expected_metric(path: &str, code: i64, user: &str) -> MetricInstance {
    MetricInstance {
        name: "m.instance.istio-system".into(),
        value: Value::Duration(Duration::from_millis(25)),
        dimensions: dims(&[
            ("code", Value::Int64(code)),
            ("method", Value::String("GET".into())),
            ("path", Value::String(path.into())),
            ("user", Value::String(user.into())),
        ]),
        monitored_resource_type: "pod".into(),
        monitored_resource_dimensions: dims(&[("ns", Value::String("default".into()))]),
    }
}

fn expected_log(path: &str, code: i64, at: i64) -> LogEntryInstance {
    LogEntryInstance {
        name: "l.instance.istio-system".into(),
        variables: dims(&[
            ("code", Value::Int64(code)),
            ("path", Value::String(path.into())),
        ]),
        timestamp: Timestamp::new(at, 0),
        severity: "warning".into(),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_instances_carry_their_values_to_inline_and_queued_handlers() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    load(&d, &config()).unwrap();
    let bags = [
        request("/a", 200, Some("alice"), 1_700_000_000),
        request("/b", 503, None, 1_700_000_001),
    ];
    let o = d.report_all(bags.iter());
    // m and l of both bags to both handlers; bad skipped once per pair.
    assert_eq!((o.queued, o.dropped, o.skipped), (8, 0, 4));
    d.flush().await;

    let want_metrics = ReportBatch::Metric(vec![
        expected_metric("/a", 200, "alice"),
        expected_metric("/b", 503, "anon"),
    ]);
    let want_logs = ReportBatch::LogEntry(vec![
        expected_log("/a", 200, 1_700_000_000),
        expected_log("/b", 503, 1_700_000_001),
    ]);
    for h in ["direct", "queued"] {
        let name = format!("{h}.handler.istio-system");
        let got: Vec<ReportBatch> = probe
            .batches
            .lock()
            .iter()
            .filter(|(n, _)| **n == *name)
            .map(|(_, b)| b.clone())
            .collect();
        assert_eq!(got.len(), 2, "{h}: {got:?}");
        assert!(got.contains(&want_metrics), "{h}: {got:?}");
        assert!(got.contains(&want_logs), "{h}: {got:?}");
    }
    // Only the inline handler took the borrowed path: one call per batch.
    assert_eq!(probe.refs_calls.load(Ordering::SeqCst), 2);
}

// A batch an inline handler refuses because its own queue is full is
// dropped, and counted as such by the dispatcher, not as handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inline_handler_refusing_a_batch_counts_it_dropped() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    let yaml = [
        handler("full", SYS, "probe", "{inline: true, report: full}"),
        instance("m", SYS, "metric", "{value: 1}"),
        instance("n", SYS, "metric", "{value: 2}"),
        instance("l", SYS, "logentry", "{variables: {}}"),
        rule("all", SYS, "", &[("full", &["m", "n", "l"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let o = d.report(&OwnedBag::new());
    assert_eq!((o.queued, o.dropped), (0, 3));
    let m = d.metrics();
    let get = |name: &str, label: Option<(&str, &str)>| {
        m.iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                label.is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| *lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum::<f64>()
    };
    let h = Some(("handler", "full.handler.istio-system"));
    assert_eq!(
        get("mixer_dispatch_report_instances_dropped_total", None),
        3.0
    );
    assert_eq!(
        get("mixer_dispatch_report_instances_queued_total", None),
        0.0
    );
    assert_eq!(
        get("mixer_dispatch_handler_dropped_instances_total", h),
        3.0
    );
    assert_eq!(get("mixer_dispatch_handler_dropped_batches_total", h), 2.0);
}
