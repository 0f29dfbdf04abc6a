//! A hung report handler slows neither checks nor reports: counted in
//! completed calls within a bounded wait, not in time.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mixer_dispatch::Options;
use support::*;

const SYS: &str = "istio-system";
const CALLS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_report_handler_does_not_slow_callers() {
    let probe = Probe::new();
    let d = dispatcher(
        &probe,
        Options {
            report_queue_capacity: 8,
            ..Options::default()
        },
    );
    let yaml = [
        handler("hung", SYS, "probe", "{report: block}"),
        handler("fast", SYS, "probe", "{}"),
        handler("allow", SYS, "probe", "{}"),
        instance("count", SYS, "metric", "{value: 1}"),
        instance("nothing", SYS, "checknothing", "{}"),
        rule(
            "telemetry",
            SYS,
            "",
            &[("hung", &["count"]), ("fast", &["count"])],
        ),
        rule("policy", SYS, "", &[("allow", &["nothing"])]),
    ]
    .concat();
    load(&d, &yaml).unwrap();
    let done = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    let worker = tokio::spawn({
        let (d, done, dropped) = (d.clone(), done.clone(), dropped.clone());
        async move {
            for i in 0..CALLS {
                let b = bag(&[("request.path", &format!("/{i}"))]);
                let r = d.report(&b);
                dropped.fetch_add(r.dropped, Ordering::Relaxed);
                assert!(d.check(&b).await.status.is_ok());
                done.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    // A generous bound: the loop needs no handler to make progress, so it
    // either completes or is stuck behind the hung handler.
    let finished = tokio::time::timeout(Duration::from_secs(60), worker).await;
    let completed = done.load(Ordering::Relaxed);
    if finished.is_err() {
        // Let a caller stuck behind the handler go, so the failure below
        // is reported rather than the runtime hanging at shutdown.
        probe.open_gate();
    }
    assert!(
        finished.is_ok(),
        "only {completed} of {CALLS} calls completed while a report handler hung"
    );
    assert_eq!(completed, CALLS);
    // The hung handler's queue filled up and the rest was dropped and counted.
    assert!(dropped.load(Ordering::Relaxed) >= CALLS - 8 - 1);
    assert!(probe.events("report hung").is_empty());
    // The other report handler kept receiving its batches meanwhile.
    for _ in 0..500 {
        if !probe.events("report fast").is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!probe.events("report fast").is_empty());
    probe.open_gate();
    tokio::time::timeout(Duration::from_secs(30), d.flush())
        .await
        .expect("flush after the gate opened");
    assert!(!probe.events("report hung").is_empty());
}
