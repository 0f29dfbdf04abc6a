//! How the dispatcher calls handlers that answer later (the ones doing
//! I/O): each under its own timeout, all awaited together, and what the
//! self-metrics record about those calls. The handlers are the tests'
//! host-defined `probe` adapter, whose answers they control.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mixer_attributes::OwnedBag;
use mixer_dispatch::{MetricKind, Options, QuotaRequest, Sample};
use mixer_proto::code;
use support::{Probe, bag, dispatcher, handler, instance, load, rule, uncached};

const SYS: &str = "istio-system";

fn quota_request(quota: &str) -> QuotaRequest<'_> {
    QuotaRequest {
        quota,
        amount: 1,
        deduplication_id: "",
        best_effort: false,
    }
}

/// The merged message's `handler: message` parts, sorted: for requests
/// whose parts come from two namespaces' rules.
fn parts(message: &str) -> Vec<&str> {
    let mut p: Vec<&str> = message.split(", ").collect();
    p.sort_unstable();
    p
}

// A handler named in `handler_timeouts` is given up on after its own
// timeout; every other one (a handler of the same short name in another
// namespace included: the map is keyed by fully-qualified name) after the
// global one. The message names the timeout that expired.
#[tokio::test]
async fn per_handler_timeout_overrides_the_global_one() {
    let probe = Probe::new();
    let options = Options {
        handler_timeout: Duration::from_millis(300),
        handler_timeouts: HashMap::from([(
            "fast.handler.istio-system".to_string(),
            Duration::from_millis(20),
        )]),
        ..uncached()
    };
    let d = dispatcher(&probe, options);
    let yaml = [
        handler("fast", SYS, "probe", "{mode: hang}"),
        handler("slow", SYS, "probe", "{mode: hang}"),
        instance("nothing", SYS, "checknothing", "{}"),
        instance("rq", SYS, "quota", "{}"),
        rule(
            "r",
            SYS,
            "",
            &[("fast", &["nothing", "rq"]), ("slow", &["nothing", "rq"])],
        ),
        handler("fast", "ns1", "probe", "{mode: hang}"),
        instance("nothing", "ns1", "checknothing", "{}"),
        rule("r1", "ns1", "", &[("fast", &["nothing"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();

    let o = d.check(&OwnedBag::new()).await;
    assert_eq!(o.status.code, code::UNAVAILABLE);
    assert_eq!(
        o.status.message,
        "fast.handler.istio-system: no answer within 20ms, \
         slow.handler.istio-system: no answer within 300ms"
    );

    let q = d.quota(&OwnedBag::new(), quota_request("rq")).await;
    assert_eq!((q.status.code, q.granted), (code::UNAVAILABLE, 0));
    assert_eq!(
        q.status.message,
        "fast.handler.istio-system: no answer within 20ms, \
         slow.handler.istio-system: no answer within 300ms",
        "quota calls are timed per handler too"
    );

    let o = d.check(&bag(&[("destination.namespace", "ns1")])).await;
    assert_eq!(o.status.code, code::UNAVAILABLE);
    assert_eq!(
        parts(&o.status.message),
        [
            "fast.handler.istio-system: no answer within 20ms",
            "fast.handler.ns1: no answer within 300ms",
            "slow.handler.istio-system: no answer within 300ms",
        ]
    );
}

// The documented default (Options docs, semantics.md: 1 s for check and
// quota) is what `Options::default()` holds, with no overrides, and is the
// timeout a hung handler is given up on after.
#[tokio::test]
async fn default_handler_timeout_is_one_second() {
    let defaults = Options::default();
    assert_eq!(defaults.handler_timeout, Duration::from_secs(1));
    assert!(defaults.handler_timeouts.is_empty());

    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    let yaml = [
        handler("hung", SYS, "probe", "{mode: hang}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule("r", SYS, "", &[("hung", &["nothing"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let o = d.check(&OwnedBag::new()).await;
    assert_eq!(
        (o.status.code, o.status.message.as_str()),
        (
            code::UNAVAILABLE,
            "hung.handler.istio-system: no answer within 1s"
        )
    );
}

// Handlers that answer later are awaited together: two answers that can
// only finish once both are pending (a barrier of two) both answer, on a
// single-threaded runtime. Awaited one after the other, the first would
// wait for ever and the check would end in a timeout error.
#[tokio::test]
async fn pending_answers_are_awaited_together() {
    let probe = Probe::new();
    let options = Options {
        handler_timeout: Duration::from_secs(10),
        ..uncached()
    };
    let d = dispatcher(&probe, options);
    let yaml = [
        handler(
            "a",
            SYS,
            "probe",
            "{mode: barrier, validMs: 7000, validUseCount: 5}",
        ),
        handler(
            "b",
            SYS,
            "probe",
            "{mode: barrier, validMs: 3000, validUseCount: 9}",
        ),
        instance("nothing", SYS, "checknothing", "{}"),
        rule("ra", SYS, "", &[("a", &["nothing"])]),
        rule("rb", SYS, "", &[("b", &["nothing"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    for round in 1..=3 {
        let o = d.check(&OwnedBag::new()).await;
        assert_eq!(
            (o.status.code, o.status.message.as_str()),
            (code::OK, ""),
            "round {round}"
        );
        // The minimum of each: both handlers' answers were merged.
        assert_eq!(
            (o.valid_duration, o.valid_use_count),
            (Duration::from_secs(3), 5)
        );
        assert_eq!(probe.arrived.load(Ordering::SeqCst), 2 * round);
    }
    let m = d.metrics();
    for h in ["a.handler.istio-system", "b.handler.istio-system"] {
        let labels = [("handler", h), ("variety", "check")];
        assert_eq!(
            value(&m, "mixer_dispatch_handler_calls_total", &labels),
            3.0
        );
        assert_eq!(
            value(&m, "mixer_dispatch_handler_waits_total", &labels),
            3.0
        );
        assert_eq!(
            value(&m, "mixer_dispatch_handler_errors_total", &labels),
            0.0
        );
    }
}

/// The one sample of `name` with exactly `labels`; panics naming what is
/// missing or doubled.
fn one<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> &'a Sample {
    let found: Vec<&Sample> = samples
        .iter()
        .filter(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && s.labels
                    .iter()
                    .zip(labels)
                    .all(|((k, v), (wk, wv))| k == wk && v == wv)
        })
        .collect();
    assert_eq!(found.len(), 1, "{name} {labels:?} in {samples:#?}");
    found[0]
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    one(samples, name, labels).value
}

// Self-metrics per handler and variety: every call counted; errors, pending
// errors and timeouts counted as errors; only calls that waited (pending
// answers) counted as waits and their time summed in
// `mixer_dispatch_handler_wait_seconds_sum`.
#[tokio::test]
async fn handler_errors_and_waits_are_counted() {
    let probe = Probe::new();
    let options = Options {
        handler_timeouts: HashMap::from([(
            "hung.handler.istio-system".to_string(),
            Duration::from_millis(20),
        )]),
        ..uncached()
    };
    let d = dispatcher(&probe, options);
    let yaml = [
        handler("inline-err", SYS, "probe", "{mode: error}"),
        handler("pending-err", SYS, "probe", "{mode: pending-error}"),
        handler("hung", SYS, "probe", "{mode: hang}"),
        handler("waits", SYS, "probe", "{mode: pending-allow, delayMs: 20}"),
        handler("fine", SYS, "probe", "{}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule(
            "r",
            SYS,
            "",
            &[
                ("inline-err", &["nothing"]),
                ("pending-err", &["nothing"]),
                ("hung", &["nothing"]),
                ("waits", &["nothing"]),
                ("fine", &["nothing"]),
            ],
        ),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    for _ in 0..2 {
        let o = d.check(&OwnedBag::new()).await;
        assert_eq!(o.status.code, code::UNAVAILABLE);
        assert_eq!(
            o.status.message,
            "inline-err.handler.istio-system: backend down, \
             pending-err.handler.istio-system: backend down, \
             hung.handler.istio-system: no answer within 20ms"
        );
    }
    let m = d.metrics();
    // (handler, calls, errors, waits)
    let want = [
        ("inline-err", 2.0, 2.0, 0.0),
        ("pending-err", 2.0, 2.0, 2.0),
        ("hung", 2.0, 2.0, 2.0),
        ("waits", 2.0, 0.0, 2.0),
        ("fine", 2.0, 0.0, 0.0),
    ];
    for (h, calls, errors, waits) in want {
        let name = format!("{h}.handler.istio-system");
        let labels = [("handler", name.as_str()), ("variety", "check")];
        let got = [
            "mixer_dispatch_handler_calls_total",
            "mixer_dispatch_handler_errors_total",
            "mixer_dispatch_handler_waits_total",
        ]
        .map(|metric| {
            let s = one(&m, metric, &labels);
            assert_eq!(s.kind, MetricKind::Counter, "{metric}");
            s.value
        });
        assert_eq!(got, [calls, errors, waits], "{h}: calls, errors, waits");
        // Varieties never called have no series.
        for variety in ["quota", "report"] {
            assert!(
                !m.iter()
                    .any(|s| s.name == "mixer_dispatch_handler_calls_total"
                        && s.labels.contains(&("handler", name.clone()))
                        && s.labels.contains(&("variety", variety.to_string()))),
                "{h} has a {variety} series"
            );
        }
    }
    let seconds = |h: &str| {
        let name = format!("{h}.handler.istio-system");
        value(
            &m,
            "mixer_dispatch_handler_wait_seconds_sum",
            &[("handler", name.as_str()), ("variety", "check")],
        )
    };
    // Inline answers are counted, not timed.
    assert_eq!(seconds("inline-err"), 0.0);
    assert_eq!(seconds("fine"), 0.0);
    // Each wait of these lasted at least its sleep or its timeout (20 ms,
    // which tokio guarantees as a minimum): a lower bound, never flaky.
    assert!(seconds("waits") >= 0.04, "{}", seconds("waits"));
    assert!(seconds("hung") >= 0.04, "{}", seconds("hung"));
    assert_eq!(
        value(&m, "mixer_dispatch_checks_total", &[("outcome", "error")]),
        2.0
    );
}
