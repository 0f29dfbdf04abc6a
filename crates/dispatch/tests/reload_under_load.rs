//! Checks and quotas on several tasks while the configuration is swapped
//! 100 times, a fifth of the new configurations invalid: no request fails
//! or sees a half-built snapshot, and the memquota handler, whose params
//! never change, keeps its counters across every swap.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use mixer_dispatch::{Options, QuotaRequest};
use support::*;

const SYS: &str = "istio-system";
const QUOTA_MAX: i64 = 300;

fn config(version: u32) -> String {
    [
        handler("a", SYS, "denier", &format!("{{status: {{code: 9, message: v{version}-a}}}}")),
        handler("b", SYS, "probe", &format!("{{mode: deny, code: 9, message: v{version}-b}}")),
        handler("list", SYS, "listchecker", &format!("{{overrides: [u{version}], blacklist: true}}")),
        handler(
            "quota",
            SYS,
            "memquota",
            &format!("{{quotas: [{{name: rq.instance.istio-system, maxAmount: {QUOTA_MAX}, validDuration: 3600s}}]}}"),
        ),
        instance("nothing", SYS, "checknothing", "{}"),
        instance("user", SYS, "listentry", r#"{value: source.user | "x"}"#),
        instance("rq", SYS, "quota", "{}"),
        rule("first", SYS, "", &[("a", &["nothing"])]),
        rule("second", SYS, "", &[("b", &["nothing"]), ("list", &["user"])]),
        rule("limits", SYS, "", &[("quota", &["rq"])]),
    ]
    .concat()
}

/// The version both denials name, if they agree and nothing else is there.
fn version_of(message: &str) -> Option<u32> {
    let (a, b) = message.split_once(", ")?;
    let va = a
        .strip_prefix("a.handler.istio-system: v")?
        .strip_suffix("-a")?;
    let vb = b
        .strip_prefix("b.handler.istio-system: v")?
        .strip_suffix("-b")?;
    (va == vb).then(|| va.parse().ok())?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaps_under_load() {
    let probe = Probe::new();
    let d = dispatcher(&probe, Options::default());
    load(&d, &config(0)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let checks = Arc::new(AtomicU64::new(0));
    let quotas = Arc::new(AtomicU64::new(0));
    let granted = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for t in 0..3 {
        let (d, stop, checks, quotas, granted) = (
            d.clone(),
            stop.clone(),
            checks.clone(),
            quotas.clone(),
            granted.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let b = bag(&[("source.user", &format!("t{t}"))]);
            let mut last = 0;
            while !stop.load(Ordering::Relaxed) {
                let o = d.check(&b).await;
                assert_eq!(o.status.code, 9, "{}", o.status.message);
                let v = version_of(&o.status.message)
                    .unwrap_or_else(|| panic!("mixed or broken answer: {}", o.status.message));
                assert!(v >= last, "went back from v{last} to v{v}");
                last = v;
                checks.fetch_add(1, Ordering::Relaxed);
                let q = d
                    .quota(
                        &b,
                        QuotaRequest {
                            quota: "rq",
                            amount: 1,
                            deduplication_id: "",
                            best_effort: false,
                        },
                    )
                    .await;
                assert!(q.status.is_ok() || q.status.code == 8, "{:?}", q.status);
                granted.fetch_add(q.granted, Ordering::Relaxed);
                quotas.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        }));
    }
    let mut applied = 0;
    let mut version = 0;
    for swap in 1..=100u32 {
        let before = d.generation();
        if swap % 5 == 0 {
            // Alternately a bad expression (rejected by validation) and bad
            // params (rejected by the adapter, after validation passed).
            let bad = if swap % 10 == 0 {
                config(swap) + &rule("broken", SYS, "source.user ==", &[("a", &["nothing"])])
            } else {
                config(swap).replace("code: 9, message: v", "code: 99, message: v")
            };
            let err = load(&d, &bad).unwrap_err();
            assert_eq!(err.problems().len(), 1, "{err}");
            assert_eq!(d.generation(), before);
        } else {
            let summary = load(&d, &config(swap)).unwrap();
            assert!(
                summary
                    .reused
                    .contains(&"quota.handler.istio-system".to_string())
            );
            applied += 1;
            version = swap;
        }
        tokio::task::yield_now().await;
    }
    // Keep the load on until the quota is surely used up.
    while quotas.load(Ordering::Relaxed) < 2 * QUOTA_MAX as u64 {
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("a request task failed");
    }
    assert_eq!(applied, 80);
    assert!(checks.load(Ordering::Relaxed) > 0);
    // Counters survived 80 swaps: exactly the limit was granted, once.
    assert_eq!(granted.load(Ordering::Relaxed), QUOTA_MAX);
    assert_eq!(probe.events("build b").len(), 81);
    let o = d.check(&bag(&[("source.user", "late")])).await;
    assert_eq!(version_of(&o.status.message), Some(version));
}
