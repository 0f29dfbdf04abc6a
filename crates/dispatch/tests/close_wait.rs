//! `mixer_dispatch::closed`: a host stopping its runtime can wait for the
//! handler closes still under way. Its own test binary, because the wait
//! covers every handler in the process.

mod support;

use std::time::Duration;

use mixer_dispatch::closed;
use support::*;

const SYS: &str = "istio-system";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_waits_for_pending_closes_of_dropped_and_rejected_handlers() {
    let probe = Probe::new();
    let d = dispatcher(&probe, uncached());
    // `slowcheck` closes from a drop (no report worker); `slowreport` from
    // its report worker. Both take 300 ms to close.
    let cfg = [
        handler("slowcheck", SYS, "probe", "{closeDelayMs: 300}"),
        handler("slowreport", SYS, "probe", "{closeDelayMs: 300}"),
        instance("nothing", SYS, "checknothing", "{}"),
        instance("rn", SYS, "reportnothing", "{}"),
        rule(
            "r",
            SYS,
            "",
            &[("slowcheck", &["nothing"]), ("slowreport", &["rn"])],
        ),
    ]
    .concat();
    load(&d, &cfg).unwrap();
    drop(d);

    assert!(
        closed(Duration::from_secs(5)).await,
        "closes did not finish"
    );
    let mut done = probe.events("closed ");
    done.sort();
    assert_eq!(
        done,
        [
            "closed slowcheck.handler.istio-system",
            "closed slowreport.handler.istio-system"
        ]
    );

    // A config rejected after some of its handlers were built (another
    // failed to build, as one whose port is taken does) closes them too, and
    // the wait covers that.
    let d = dispatcher(&probe, uncached());
    let bad = [
        handler("built", SYS, "probe", "{closeDelayMs: 300}"),
        handler("broken", SYS, "probe", "{mode: failbuild}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule(
            "r",
            SYS,
            "",
            &[("built", &["nothing"]), ("broken", &["nothing"])],
        ),
    ]
    .concat();
    assert!(load(&d, &bad).is_err());
    drop(d);
    assert!(closed(Duration::from_secs(5)).await);
    let built_closes = probe.events("close built.").len();
    assert!(built_closes > 0, "the rejected config built no handler");
    assert_eq!(probe.events("closed built.").len(), built_closes);

    // A close that takes longer than the wait: the wait says so, and a
    // longer one sees it through. (One test: the wait is process-wide.)
    let d = dispatcher(&probe, uncached());
    let cfg = [
        handler("stuck", SYS, "probe", "{closeDelayMs: 2000}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule("r", SYS, "", &[("stuck", &["nothing"])]),
    ]
    .concat();
    load(&d, &cfg).unwrap();
    drop(d);
    assert!(!closed(Duration::from_millis(200)).await);
    assert!(closed(Duration::from_secs(10)).await);
    assert_eq!(
        probe.events("closed stuck"),
        ["closed stuck.handler.istio-system"]
    );
}
