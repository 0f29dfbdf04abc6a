//! One test per rule of the runtime semantics (spec: semantics.md), on real
//! built-in adapters and the controllable `probe` adapter of `support`.
//!
//! Where each rule is shown (tests in this file unless a file is named):
//!
//! | semantics.md | test |
//! |---|---|
//! | names `name.kind.namespace`, short and one-dot references | `config-model/tests/config_names.rs` (all) |
//! | a request's namespace from `context.reporter.kind`, plus the default namespace's rules | `namespace_from_reporter_kind_plus_default_rules` |
//! | each (handler, instance) once per request | `each_handler_instance_pair_once` |
//! | in-memory handlers not spawned; I/O handlers awaited together | `in_memory_check_completes_on_first_poll`; `handler_calls.rs`: `pending_answers_are_awaited_together` |
//! | merge: minimum validity, first denial in rule then action order, messages joined | `merge_is_deterministic_with_exact_message` |
//! | no handler answered: OK with the defaults | `no_handler_answered_gives_defaults` |
//! | handler errors, timeouts (per handler, default 1 s), panics | `handler_errors_timeouts_and_panics`, `panics_in_quota_and_report_are_contained`; `handler_calls.rs`: `per_handler_timeout_overrides_the_global_one`, `default_handler_timeout_is_one_second` |
//! | a failing `match`: no match, counted, logged once; optionally fail closed | `match_errors_count_and_optionally_fail_closed` |
//! | referenced attributes (EXACT, ABSENCE, map keys) and the check cache | `referenced_attributes_and_the_cache` |
//! | quota: allocate, exhaust, best effort, dedup by (id, quota key) | `quota_allocation_exhaustion_dedup` |
//! | a quota no rule handles: granted (or, by option, denied) | `unhandled_quota_granted_or_denied` |
//! | report: batches per (handler, template); a failing instance skipped and counted | `report_batches_per_handler_and_template`; the values handlers get, borrowed or copied: `report_values.rs`: `report_instances_carry_their_values_to_inline_and_queued_handlers` |
//! | bounded report queues: a full one drops and counts; a slow backend stalls no caller | `full_report_queue_drops_and_counts`; `slow_report.rs`: `hung_report_handler_does_not_slow_callers`; handlers that cannot block, on the reporting thread: `inline_report_handlers_take_batches_on_the_reporting_thread`, their own full queues counted: `report_values.rs`: `an_inline_handler_refusing_a_batch_counts_it_dropped` |
//! | a config that fails never replaces the running one; every problem named | `bad_config_is_rejected_with_every_problem`; `config_errors.rs` (all) |
//! | atomic swap, in-flight requests finish on their snapshot, unchanged handlers reused, replaced ones closed after their last request | `reuse_and_close_after_last_request`; `reload_under_load.rs`: `swaps_under_load`; `close_wait.rs` |
//! | references to undefined objects: a validation error naming both ends | `config-model/tests/config_errors.rs`: `dangling_mistaken_and_unsupported_references` |
//! | self-metrics per handler | `metrics_per_handler`; `handler_calls.rs`: `handler_errors_and_waits_are_counted` |

mod support;

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mixer_adapters::ManualClock;
use mixer_attributes::{AttrId, Condition, OwnedBag, StringMap, Value};
use mixer_dispatch::{Options, QuotaRequest, Sample};
use mixer_proto::code;
use support::*;

const SYS: &str = "istio-system";

fn metric(samples: &[Sample], name: &str, label: Option<(&str, &str)>) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name)
        .filter(|s| label.is_none_or(|(k, v)| s.labels.iter().any(|(lk, lv)| *lk == k && lv == v)))
        .map(|s| s.value)
        .sum()
}

// Config names and scoping: a request's namespace comes from
// context.reporter.kind; its rules plus the default namespace's apply.
#[tokio::test]
async fn namespace_from_reporter_kind_plus_default_rules() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    let yaml = [
        handler(
            "deny-ns1",
            "ns1",
            "probe",
            r#"{mode: deny, message: "ns1 says no"}"#,
        ),
        instance("nothing", "ns1", "checknothing", "{}"),
        rule("r1", "ns1", "", &[("deny-ns1", &["nothing"])]),
        handler("allow", SYS, "probe", "{validMs: 3000, validUseCount: 9}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule("rg", SYS, "", &[("allow", &["nothing"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let denied = "deny-ns1.handler.ns1: ns1 says no";
    // Inbound (absent kind): destination.namespace.
    let o = d.check(&bag(&[("destination.namespace", "ns1")])).await;
    assert_eq!((o.status.code, o.status.message.as_str()), (7, denied));
    // Outbound: source.namespace.
    let o = d
        .check(&bag(&[
            ("context.reporter.kind", "outbound"),
            ("source.namespace", "ns1"),
            ("destination.namespace", "other"),
        ]))
        .await;
    assert_eq!(o.status.message, denied);
    // Inbound with the same namespaces: the destination's, which has no
    // rules of its own, so only the default namespace's apply.
    let o = d
        .check(&bag(&[
            ("context.reporter.kind", "inbound"),
            ("source.namespace", "ns1"),
            ("destination.namespace", "other"),
        ]))
        .await;
    assert!(o.status.is_ok());
    assert_eq!(
        (o.valid_duration, o.valid_use_count),
        (Duration::from_secs(3), 9)
    );
    // Outbound without a source namespace: default rules only.
    let o = d
        .check(&bag(&[
            ("context.reporter.kind", "outbound"),
            ("destination.namespace", "ns1"),
        ]))
        .await;
    assert!(o.status.is_ok());
    // The namespace's own request ran both its rule and the default one.
    assert_eq!(probe.events("check deny-ns1").len(), 2);
    assert_eq!(probe.events("check allow").len(), 4);
}

// Check: each (handler, instance) pair once per request, even when
// several rules name it.
#[tokio::test]
async fn each_handler_instance_pair_once() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    let yaml = [
        handler("h", SYS, "probe", "{}"),
        instance("i", SYS, "checknothing", "{}"),
        instance("j", SYS, "checknothing", "{}"),
        rule("a", SYS, "", &[("h", &["i"])]),
        rule("b", SYS, "", &[("h", &["i", "j"]), ("h", &["i"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    assert!(d.check(&OwnedBag::new()).await.status.is_ok());
    assert_eq!(
        probe.events("check"),
        [
            "check h.handler.istio-system i.instance.istio-system",
            "check h.handler.istio-system j.instance.istio-system"
        ]
    );
}

fn policy_yaml() -> String {
    [
        handler("deny", SYS, "denier", r#"{status: {code: 9, message: "second"}, validDuration: 2s, validUseCount: 50}"#),
        handler("list", SYS, "listchecker", "{overrides: [alice, bob]}"),
        handler("quota", SYS, "memquota", "{quotas: [{name: requestcount.instance.istio-system, maxAmount: 5, validDuration: 10s}]}"),
        instance("nothing", SYS, "checknothing", "{}"),
        instance("user", SYS, "listentry", r#"{value: source.user | "nobody"}"#),
        instance("requestcount", SYS, "quota", r#"{dimensions: {path: request.path | "/"}}"#),
        rule("bots", SYS, r#"request.useragent == "bot""#, &[("deny", &["nothing"])]),
        rule("users", SYS, "", &[("list", &["user"])]),
        rule("limits", SYS, "", &[("quota", &["requestcount"])]),
    ]
    .concat()
}

// Check: in-memory handlers answer inline, so the check completes on its
// first poll: nothing spawned, nothing awaited.
#[tokio::test]
async fn in_memory_check_completes_on_first_poll() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    load(&d, &policy_yaml()).unwrap();
    let b = bag(&[("source.user", "alice"), ("request.useragent", "curl")]);
    let mut fut = pin!(d.check(&b));
    let Poll::Ready(o) = fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) else {
        panic!("check on in-memory handlers did not complete on its first poll");
    };
    assert!(o.status.is_ok());
    // The listchecker's validity (300s, 10000) is the minimum; the denier
    // did not match.
    assert_eq!(
        (o.valid_duration, o.valid_use_count),
        (Duration::from_secs(300), 10_000)
    );
}

// Check merge: minimum validity, first denial in rule order then action
// order whatever the completion order, every denial listed.
#[tokio::test]
async fn merge_is_deterministic_with_exact_message() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    let yaml = [
        handler("slow", SYS, "probe", r#"{mode: pending-deny, delayMs: 30, code: 7, message: first, validMs: 9000, validUseCount: 30}"#),
        handler("deny", SYS, "denier", r#"{status: {code: 9, message: second}, validDuration: 2s, validUseCount: 50}"#),
        handler("third", SYS, "probe", r#"{mode: deny, code: 10, message: third}"#),
        handler("list", SYS, "listchecker", "{overrides: [alice]}"),
        handler("fine", SYS, "probe", "{validMs: 1000, validUseCount: 5}"),
        instance("nothing", SYS, "checknothing", "{}"),
        instance("user", SYS, "listentry", "{value: source.user}"),
        rule("r1", SYS, "", &[("slow", &["nothing"])]),
        rule("r2", SYS, "", &[("deny", &["nothing"]), ("third", &["nothing"])]),
        rule("r3", SYS, "", &[("list", &["user"]), ("fine", &["nothing"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    for _ in 0..5 {
        let o = d.check(&bag(&[("source.user", "zed")])).await;
        assert_eq!(
            o.status.code, 7,
            "the first rule's denial wins though it completes last"
        );
        assert_eq!(
            o.status.message,
            "slow.handler.istio-system: first, deny.handler.istio-system: second, \
             third.handler.istio-system: third, list.handler.istio-system: zed is not whitelisted"
        );
        assert_eq!(
            (o.valid_duration, o.valid_use_count),
            (Duration::from_secs(1), 5)
        );
    }
}

// Check: no handler answered: OK with the configurable defaults.
#[tokio::test]
async fn no_handler_answered_gives_defaults() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    load(
        &d,
        &policy_yaml().replace("request.useragent == \\\"bot\\\"", "false"),
    )
    .unwrap();
    // Only the (unmatched) bots rule would check a checknothing; with the
    // users rule removed nothing answers.
    let yaml = [
        handler("deny", SYS, "denier", "{}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule(
            "bots",
            SYS,
            r#"request.useragent == "bot""#,
            &[("deny", &["nothing"])],
        ),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let o = d.check(&bag(&[("request.useragent", "curl")])).await;
    assert_eq!(
        (o.status.code, o.valid_duration, o.valid_use_count),
        (0, Duration::from_secs(60), 10_000)
    );
    let opts = Options {
        default_valid_duration: Duration::from_secs(7),
        default_valid_use_count: 3,
        ..uncached()
    };
    let d = dispatcher(&probe, opts);
    load(&d, &yaml).unwrap();
    let o = d.check(&bag(&[("request.useragent", "curl")])).await;
    assert_eq!(
        (o.valid_duration, o.valid_use_count),
        (Duration::from_secs(7), 3)
    );
    // The denier answers bots with its default code and, lacking a
    // message, the code's name.
    let o = d.check(&bag(&[("request.useragent", "bot")])).await;
    assert_eq!(o.status.code, code::FAILED_PRECONDITION);
    assert_eq!(
        o.status.message,
        "deny.handler.istio-system: FAILED_PRECONDITION"
    );
}

// Check: handler errors, timeouts and panics (inline or pending) are
// UNAVAILABLE / INTERNAL naming the handler, for that request only.
#[tokio::test]
async fn handler_errors_timeouts_and_panics() {
    let probe = Probe::new();
    let opts = Options {
        handler_timeout: Duration::from_millis(50),
        ..uncached()
    };
    let d = dispatcher(&probe, opts);
    let cases = [
        (
            "{mode: error}",
            code::UNAVAILABLE,
            "h.handler.istio-system: backend down",
        ),
        (
            "{mode: hang}",
            code::UNAVAILABLE,
            "h.handler.istio-system: no answer within 50ms",
        ),
        (
            "{mode: panic}",
            code::INTERNAL,
            "h.handler.istio-system: handler panicked: probe handler h.handler.istio-system panics",
        ),
        (
            "{mode: pending-panic}",
            code::INTERNAL,
            "h.handler.istio-system: handler panicked: probe handler h.handler.istio-system panics",
        ),
    ];
    for (params, want_code, want_message) in cases {
        let yaml = [
            handler("h", SYS, "probe", params),
            instance("i", SYS, "checknothing", "{}"),
            rule("r", SYS, "", &[("h", &["i"])]),
        ]
        .concat();
        load(&d, &yaml).unwrap();
        let o = d.check(&OwnedBag::new()).await;
        assert_eq!(
            (o.status.code, o.status.message.as_str()),
            (want_code, want_message),
            "{params}"
        );
        assert_eq!(
            (o.valid_duration, o.valid_use_count),
            (Duration::ZERO, 0),
            "a failure is not reusable"
        );
        let q = d
            .quota(
                &OwnedBag::new(),
                QuotaRequest {
                    quota: "x",
                    amount: 1,
                    deduplication_id: "",
                    best_effort: false,
                },
            )
            .await;
        assert!(q.status.is_ok(), "the dispatcher still serves");
    }
    let m = d.metrics();
    assert_eq!(
        metric(
            &m,
            "mixer_dispatch_checks_total",
            Some(("outcome", "error"))
        ),
        4.0
    );
}

// Check: a match that fails at run time counts as no match, is counted per
// rule; an option makes it fail closed.
#[tokio::test]
async fn match_errors_count_and_optionally_fail_closed() {
    let probe = Probe::new();
    let yaml = [
        handler("deny", SYS, "denier", "{}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule(
            "needs-user",
            SYS,
            r#"source.user == "mallory""#,
            &[("deny", &["nothing"])],
        ),
    ]
    .concat();
    let d = dispatcher(&probe, uncached());
    load(&d, &yaml).unwrap();
    for _ in 0..2 {
        assert!(d.check(&OwnedBag::new()).await.status.is_ok());
    }
    let m = d.metrics();
    assert_eq!(
        metric(
            &m,
            "mixer_dispatch_match_errors_total",
            Some(("rule", "needs-user.rule.istio-system"))
        ),
        2.0
    );
    let d = dispatcher(
        &probe,
        Options {
            fail_closed_on_match_error: true,
            ..uncached()
        },
    );
    load(&d, &yaml).unwrap();
    let o = d.check(&OwnedBag::new()).await;
    assert_eq!(o.status.code, code::PERMISSION_DENIED);
    assert_eq!(
        o.status.message,
        "needs-user.rule.istio-system: match failed: lookup failed: 'source.user'"
    );
    // A request that has the attribute is decided normally.
    assert!(
        d.check(&bag(&[("source.user", "eve")]))
            .await
            .status
            .is_ok()
    );
}

// Referenced attributes: present ones EXACT, absent ones ABSENCE, map keys
// one by one; the cache shares an answer between requests that agree on
// them, and expires it by use count and duration.
#[tokio::test]
async fn referenced_attributes_and_the_cache() {
    let probe = Probe::new();
    let clock = Arc::new(ManualClock::new());
    let d = dispatcher(
        &probe,
        Options {
            clock: clock.clone(),
            ..Options::default()
        },
    );
    let yaml = [
        handler("h", SYS, "probe", "{validMs: 10000, validUseCount: 3}"),
        instance("i", SYS, "checknothing", "{}"),
        rule(
            "r",
            SYS,
            r#"request.headers["x-user"] == "admin" || (source.user | "") == "root""#,
            &[("h", &["i"])],
        ),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let with = |user: &str, path: &str| {
        let headers: StringMap = [("x-user", user), ("x-other", "1")].into_iter().collect();
        OwnedBag::new()
            .with("request.headers", Value::StringMap(headers))
            .with("request.path", Value::String(path.into()))
    };
    let o = d.check(&with("admin", "/a")).await;
    let refs = &o.referenced;
    assert!(
        refs.attributes()
            .contains(&(AttrId::of("context.reporter.kind"), Condition::Absence))
    );
    assert!(
        refs.attributes()
            .contains(&(AttrId::of("destination.namespace"), Condition::Absence))
    );
    assert_eq!(
        refs.map_keys().len(),
        1,
        "only the key read, not the whole map"
    );
    assert_eq!(&*refs.map_keys()[0].1, "x-user");
    assert_eq!(refs.map_keys()[0].2, Condition::Exact);
    assert!(
        !refs
            .attributes()
            .iter()
            .any(|(id, _)| *id == AttrId::of("request.path"))
    );
    assert_eq!(probe.events("check").len(), 1);
    // Differs only in what the decision did not read: served from cache.
    let hit = d.check(&with("admin", "/b")).await;
    assert_eq!(hit.status, o.status);
    assert_eq!(hit.referenced, o.referenced);
    assert_eq!(probe.events("check").len(), 1);
    // Differs in a referenced key: decided afresh (the rule does not
    // match, so the defaults), not handed the admin's answer.
    let guest = d.check(&with("guest", "/a")).await;
    assert_eq!(guest.valid_duration, Duration::from_secs(60));
    assert!(
        guest
            .referenced
            .attributes()
            .contains(&(AttrId::of("source.user"), Condition::Absence))
    );
    // validUseCount 3: one fresh answer and two hits, then asked again.
    d.check(&with("admin", "/c")).await;
    assert_eq!(probe.events("check").len(), 1);
    d.check(&with("admin", "/d")).await;
    assert_eq!(probe.events("check").len(), 2);
    // Expired by duration.
    d.check(&with("admin", "/e")).await;
    assert_eq!(probe.events("check").len(), 2);
    clock.advance(Duration::from_secs(11));
    // The cache reads the clock every 5ms: let it tick.
    tokio::time::sleep(Duration::from_millis(50)).await;
    d.check(&with("admin", "/f")).await;
    assert_eq!(probe.events("check").len(), 3);
    let m = d.metrics();
    assert_eq!(
        metric(&m, "mixer_dispatch_check_cache_hits_total", None),
        3.0
    );
    assert_eq!(
        metric(&m, "mixer_dispatch_check_cache_misses_total", None),
        4.0
    );
}

// Quota: allocation, exhaustion, best effort, deduplication, and the
// referenced set of the quota's own decision.
#[tokio::test]
async fn quota_allocation_exhaustion_dedup() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    load(&d, &policy_yaml()).unwrap();
    let b = bag(&[("request.path", "/a")]);
    let q = |amount, dedup, best_effort| QuotaRequest {
        quota: "requestcount",
        amount,
        deduplication_id: dedup,
        best_effort,
    };
    let o = d.quota(&b, q(2, "op-1", false)).await;
    assert_eq!((o.granted, o.status.code), (2, 0));
    assert!(
        o.referenced
            .attributes()
            .contains(&(AttrId::of("request.path"), Condition::Exact))
    );
    // A retry of op-1 consumes nothing more.
    assert_eq!(d.quota(&b, q(2, "op-1", false)).await.granted, 2);
    let full = QuotaRequest {
        quota: "requestcount.instance.istio-system",
        ..q(2, "op-2", false)
    };
    assert_eq!(d.quota(&b, full).await.granted, 2);
    let o = d.quota(&b, q(2, "op-3", false)).await;
    assert_eq!((o.granted, o.status.code), (0, code::RESOURCE_EXHAUSTED));
    assert_eq!(d.quota(&b, q(2, "op-4", true)).await.granted, 1);
    // Another dimension value is another counter.
    assert_eq!(
        d.quota(&bag(&[("request.path", "/b")]), q(5, "", false))
            .await
            .granted,
        5
    );
}

// Quota: one no rule handles is granted in full, or by option denied.
#[tokio::test]
async fn unhandled_quota_granted_or_denied() {
    let probe = Probe::new();
    let req = QuotaRequest {
        quota: "unknown",
        amount: 4,
        deduplication_id: "",
        best_effort: false,
    };
    let d = dispatcher(&probe, Options::default());
    load(&d, &policy_yaml()).unwrap();
    let o = d.quota(&OwnedBag::new(), req).await;
    assert_eq!((o.granted, o.status.code), (4, 0));
    let d = dispatcher(
        &probe,
        Options {
            deny_unhandled_quotas: true,
            ..Options::default()
        },
    );
    load(&d, &policy_yaml()).unwrap();
    let o = d.quota(&OwnedBag::new(), req).await;
    assert_eq!((o.granted, o.status.code), (0, code::RESOURCE_EXHAUSTED));
    assert_eq!(
        o.status.message,
        "quota 'unknown' is not handled by any rule"
    );
}

fn report_yaml(report_mode: &str) -> String {
    [
        handler("sink", SYS, "probe", &format!("{{report: {report_mode}}}")),
        instance(
            "count",
            SYS,
            "metric",
            "{value: 1, dimensions: {path: request.path | \"-\"}}",
        ),
        instance("size", SYS, "metric", "{value: 2}"),
        instance("user", SYS, "metric", "{value: source.user}"),
        instance(
            "log",
            SYS,
            "logentry",
            "{severity: '\"info\"', variables: {path: request.path | \"-\"}}",
        ),
        rule("metrics", SYS, "", &[("sink", &["count", "size", "user"])]),
        rule("again", SYS, "", &[("sink", &["count", "log"])]),
    ]
    .concat()
}

// Report: instances of the same (handler, template) go in one batch; each
// pair once per bag; an instance whose field fails is skipped and counted
// while the others go out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_batches_per_handler_and_template() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    load(&d, &report_yaml("ok")).unwrap();
    let bags = [
        bag(&[("request.path", "/a")]),
        bag(&[("source.user", "u")]),
        bag(&[]),
    ];
    let o = d.report_all(bags.iter());
    // count and size for each bag (count once though two rules name it),
    // user for the one bag with source.user, log for each bag.
    assert_eq!((o.queued, o.dropped, o.skipped), (3 * 2 + 1 + 3, 0, 2));
    d.flush().await;
    let mut reports = without_thread(probe.events("report"));
    reports.sort();
    assert_eq!(
        reports,
        [
            "report sink.handler.istio-system logentry 3",
            "report sink.handler.istio-system metric 7"
        ]
    );
    let m = d.metrics();
    assert_eq!(
        metric(&m, "mixer_dispatch_instances_skipped_total", None),
        2.0
    );
}

/// Probe report events without the thread they name.
fn without_thread(events: Vec<String>) -> Vec<String> {
    events
        .into_iter()
        .map(|e| e.split(" on ").next().unwrap().to_string())
        .collect()
}

// Report: a handler whose report is cheap and cannot block
// (`report_inline`, as the built-in telemetry adapters) takes its batches on
// the reporting thread, before `report` returns, with no queue to drop
// from; a failure or a panic there is counted and contained like one on a
// worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_report_handlers_take_batches_on_the_reporting_thread() {
    let probe = Probe::new();
    let d = dispatcher(
        &probe,
        Options {
            report_queue_capacity: 1,
            ..Options::default()
        },
    );
    load(&d, &report_yaml("ok, inline: true")).unwrap();
    let here = format!("{:?}", std::thread::current().id());
    let b = bag(&[("request.path", "/a")]);
    for n in 1..=20 {
        // A queue of one would drop most of these.
        let o = d.report(&b);
        assert_eq!((o.queued, o.dropped), (3, 0));
        // Already handed over: no flush, no worker.
        let events = probe.events("report");
        assert_eq!(events.len(), 2 * n);
        assert!(
            events.iter().all(|e| e.ends_with(&format!(" on {here}"))),
            "{events:?}"
        );
    }

    for mode in ["fail", "panic"] {
        let probe = Probe::new();
        let d = dispatcher(&probe, Options::default());
        load(&d, &report_yaml(&format!("{mode}, inline: true"))).unwrap();
        for _ in 0..3 {
            d.report(&b);
        }
        let m = d.metrics();
        let label = Some(("handler", "sink.handler.istio-system"));
        assert_eq!(
            metric(&m, "mixer_dispatch_handler_errors_total", label),
            6.0,
            "{mode}"
        );
        let panics = metric(&m, "mixer_dispatch_handler_panics_total", label);
        assert_eq!(panics, if mode == "panic" { 6.0 } else { 0.0 });
    }
}

// Report: a full queue drops and counts; report never waits on a handler.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_report_queue_drops_and_counts() {
    let probe = Probe::new();
    let d = dispatcher(
        &probe,
        Options {
            report_queue_capacity: 2,
            ..Options::default()
        },
    );
    load(&d, &report_yaml("block")).unwrap();
    let b = bag(&[("request.path", "/a")]);
    let mut dropped = 0;
    for _ in 0..20 {
        dropped += d.report(&b).dropped;
    }
    // The worker holds at most one batch pair and the queue two batches:
    // most of the 40 batches (2 per report) are dropped.
    assert!(dropped >= 3 * 16, "dropped {dropped}");
    let m = d.metrics();
    assert_eq!(
        metric(&m, "mixer_dispatch_report_instances_dropped_total", None),
        dropped as f64
    );
    assert_eq!(
        metric(
            &m,
            "mixer_dispatch_handler_dropped_instances_total",
            Some(("handler", "sink.handler.istio-system"))
        ),
        dropped as f64
    );
    probe.open_gate();
    d.flush().await;
    let delivered: usize = without_thread(probe.events("report"))
        .iter()
        .map(|e| e.rsplit(' ').next().unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        delivered + dropped,
        20 * 3,
        "every instance delivered or counted as dropped"
    );
}

// Config changes: a config that fails never replaces the running one; every
// problem is listed naming object and field.
#[tokio::test]
async fn bad_config_is_rejected_with_every_problem() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    load(&d, &policy_yaml()).unwrap();
    let generation = d.generation();
    let bad = policy_yaml()
        .replace("maxAmount: 5", "maxAmount: -1")
        .replace("[alice, bob]", "[alice, bob], entryType: NUMBERS")
        + &handler("p", SYS, "probe", "{mode: invalid}")
        + &rule(
            "more",
            SYS,
            "",
            &[("p", &["nothing"]), ("missing", &["nothing"])],
        );
    let err = load(&d, &bad).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(
            "rule 'more.rule.istio-system' field actions[1].handler: handler 'missing' not found"
        ),
        "{text}"
    );
    let err = load(
        &d,
        &bad.replace("  - handler: missing\n    instances: [\"nothing\"]\n", ""),
    )
    .unwrap_err();
    let problems: Vec<String> = err.problems().iter().map(ToString::to_string).collect();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    assert!(problems[0].starts_with("test.yaml:"));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("handler 'list.handler.istio-system' field params.entryType"))
    );
    assert!(problems.iter().any(|p| {
        p.contains("handler 'p.handler.istio-system' field params.mode: 'invalid' is not a mode")
    }));
    assert!(problems.iter().any(|p| {
        p.contains("handler 'quota.handler.istio-system' field params.quotas[0].maxAmount")
    }));
    assert_eq!(d.generation(), generation);
    // Still the old config: bots denied, list allows alice.
    let o = d
        .check(&bag(&[
            ("request.useragent", "bot"),
            ("source.user", "alice"),
        ]))
        .await;
    assert_eq!(o.status.message, "deny.handler.istio-system: second");
    let m = d.metrics();
    assert_eq!(
        metric(&m, "mixer_dispatch_config_reload_failures_total", None),
        2.0
    );
    assert_eq!(metric(&m, "mixer_dispatch_config_reloads_total", None), 1.0);
}

// Config changes: handlers with unchanged params are reused with their
// state (the same Arc); replaced ones close once no request uses them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_and_close_after_last_request() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default().without_cache());
    let config = |delay: u32| {
        [
            handler("keep", SYS, "probe", "{}"),
            handler(
                "slow",
                SYS,
                "probe",
                &format!("{{mode: pending-allow, delayMs: {delay}}}"),
            ),
            instance("i", SYS, "checknothing", "{}"),
            rule("r", SYS, "", &[("keep", &["i"]), ("slow", &["i"])]),
        ]
        .concat()
    };
    load(&d, &config(300)).unwrap();
    let keep = d.handler("keep.handler.istio-system").unwrap();
    let in_flight = tokio::spawn({
        let d = d.clone();
        async move { d.check(&OwnedBag::new()).await }
    });
    while probe.events("check slow").is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let summary = load(&d, &config(10)).unwrap();
    assert_eq!(summary.reused, ["keep.handler.istio-system"]);
    assert_eq!(summary.built, ["slow.handler.istio-system"]);
    assert_eq!(summary.replaced, ["slow.handler.istio-system"]);
    assert!(Arc::ptr_eq(
        &keep,
        &d.handler("keep.handler.istio-system").unwrap()
    ));
    assert_eq!(probe.events("build keep").len(), 1);
    assert!(
        probe.events("close").is_empty(),
        "closed while a request still uses it"
    );
    assert!(in_flight.await.unwrap().status.is_ok());
    for _ in 0..200 {
        if !probe.events("close").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.events("close"), ["close slow.handler.istio-system"]);
}

// Self-metrics: per-handler calls and the handlers' own counters.
#[tokio::test]
async fn metrics_per_handler() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    let yaml = [
        handler("h", SYS, "probe", "{mode: deny, message: no}"),
        instance("i", SYS, "checknothing", "{}"),
        rule("r", SYS, "", &[("h", &["i"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    d.check(&OwnedBag::new()).await;
    d.check(&OwnedBag::new()).await;
    let m = d.metrics();
    let h = Some(("handler", "h.handler.istio-system"));
    assert_eq!(metric(&m, "mixer_dispatch_handler_calls_total", h), 2.0);
    assert_eq!(
        metric(
            &m,
            "mixer_dispatch_checks_total",
            Some(("outcome", "denied"))
        ),
        2.0
    );
    assert_eq!(metric(&m, "mixer_handler_probe_calls", h), 1.0);
}

// Check, quota and report: a handler that panics is an error for that
// request (quota) or a counted failure (report), never a crash; its worker
// keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_in_quota_and_report_are_contained() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    let yaml = [
        handler("boom", SYS, "probe", "{mode: panic, report: panic}"),
        instance("rq", SYS, "quota", "{}"),
        instance("count", SYS, "metric", "{value: 1}"),
        rule("r", SYS, "", &[("boom", &["rq", "count"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let q = d
        .quota(
            &OwnedBag::new(),
            QuotaRequest {
                quota: "rq",
                amount: 3,
                deduplication_id: "",
                best_effort: false,
            },
        )
        .await;
    assert_eq!((q.granted, q.status.code), (0, code::INTERNAL));
    assert_eq!(
        q.status.message,
        "boom.handler.istio-system: handler panicked: probe handler boom.handler.istio-system panics"
    );
    assert_eq!(d.report(&OwnedBag::new()).queued, 1);
    assert_eq!(d.report(&OwnedBag::new()).queued, 1);
    tokio::time::timeout(Duration::from_secs(10), d.flush())
        .await
        .expect("the report worker survives panics");
    let m = d.metrics();
    let h = Some(("handler", "boom.handler.istio-system"));
    assert_eq!(metric(&m, "mixer_dispatch_handler_panics_total", h), 3.0);
    assert_eq!(
        metric(
            &m,
            "mixer_dispatch_quotas_total",
            Some(("outcome", "error"))
        ),
        1.0
    );
}
