//! Quota: find the rules whose QUOTA actions name the requested quota,
//! build its instance, ask each handler once, merge in rule order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mixer_adapters::template::QuotaInstance;
use mixer_adapters::{QuotaArgs, QuotaResult, Status, Variety};
use mixer_attributes::{Bag, ReferencedAttributes};
use mixer_proto::code;

use crate::call::{await_pending, call_inline};
use crate::dispatcher::{Dispatcher, Inner};
use crate::request::{Merge, SCRATCH, Seen, matches};
use crate::snapshot::Snapshot;

/// One quota a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QuotaRequest<'a> {
    /// The quota instance's name: fully qualified
    /// (`requestcount.instance.istio-system`) or its short name
    /// (`requestcount`).
    pub quota: &'a str,
    /// Units to allocate (memquota frees on a negative amount).
    pub amount: i64,
    /// A retry with the same id (and quota key) within the dedup window
    /// gets the first answer and consumes nothing more; empty: no dedup.
    pub deduplication_id: &'a str,
    /// Grant whatever is left instead of all or nothing.
    pub best_effort: bool,
}

/// The answer to a quota request.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaOutcome {
    /// Units granted: the minimum over the handlers asked.
    pub granted: i64,
    /// How long the grant is valid: the minimum over the handlers asked.
    pub valid_duration: Duration,
    /// OK, or the first non-OK answer in rule order (`RESOURCE_EXHAUSTED`
    /// when exhausted), message as for checks.
    pub status: Status,
    /// Every attribute (and map key) the decision read.
    pub referenced: Arc<ReferencedAttributes>,
}

fn names(full: &str, asked: &str) -> bool {
    full == asked
        || full
            .strip_prefix(asked)
            .is_some_and(|rest| rest.starts_with('.'))
}

impl Dispatcher {
    /// Allocates quota. A quota no rule handles is granted in full (or
    /// denied, with [`Options::deny_unhandled_quotas`](crate::Options)).
    pub async fn quota<B: Bag + Sync + ?Sized>(
        &self,
        bag: &B,
        request: QuotaRequest<'_>,
    ) -> QuotaOutcome {
        let inner = &*self.inner;
        let snap = inner.snapshot.load_full();
        let mut merge = Merge::default();
        let (instances, referenced) = SCRATCH.with(|cell| {
            build(
                inner,
                &snap,
                bag,
                request.quota,
                &mut cell.borrow_mut(),
                &mut merge,
            )
        });
        if instances.is_empty() && !merge.answered() {
            inner
                .metrics
                .unhandled_quotas
                .fetch_add(1, Ordering::Relaxed);
            let (granted, status) = if inner.options.deny_unhandled_quotas {
                (
                    0,
                    Status::new(
                        code::RESOURCE_EXHAUSTED,
                        format!("quota '{}' is not handled by any rule", request.quota),
                    ),
                )
            } else {
                (request.amount.max(0), Status::OK)
            };
            inner.metrics.quotas.count(status.code, false);
            return QuotaOutcome {
                granted,
                valid_duration: inner.options.default_valid_duration,
                status,
                referenced,
            };
        }
        let args = QuotaArgs {
            amount: request.amount,
            deduplication_id: request.deduplication_id.to_string(),
            best_effort: request.best_effort,
        };
        let mut granted: Option<i64> = None;
        let mut take = |merge: &mut Merge, seq: u32, name: &str, r: QuotaResult| {
            granted = Some(granted.map_or(r.granted, |g| g.min(r.granted)));
            merge.answer(seq, name, &r.status, r.valid_duration, 0);
        };
        let args = &args;
        let pending = call_inline(
            &snap,
            &instances,
            |s| &s.quota,
            move |h, i| h.quota(i, args),
            &mut merge,
            &mut take,
        );
        if !pending.is_empty() {
            await_pending(inner, pending, |s| &s.quota, &mut merge, &mut take).await;
        }
        let errors = merge.errors;
        let (status, valid_duration, _, from_error) =
            merge.finish(inner.options.default_valid_duration, 0);
        inner.metrics.quotas.count(status.code, from_error);
        QuotaOutcome {
            granted: if errors { 0 } else { granted.unwrap_or(0) },
            valid_duration,
            status,
            referenced,
        }
    }
}

type Built = Vec<(u32, u32, QuotaInstance)>;

fn build<B: Bag + ?Sized>(
    inner: &Inner,
    snap: &Snapshot,
    bag: &B,
    quota: &str,
    refs: &mut ReferencedAttributes,
    merge: &mut Merge,
) -> (Built, Arc<ReferencedAttributes>) {
    refs.clear();
    let ns = inner.ids.namespace(bag, refs);
    let routes = snap.routes(ns).of(Variety::Quota);
    let mut seen = Seen::new(snap.pair_counts[1]);
    let mut built = Vec::new();
    let mut seq = 0u32;
    for route in routes {
        if !route
            .pairs
            .iter()
            .any(|p| names(&snap.instances[p.instance as usize].name, quota))
        {
            continue;
        }
        let rule = &snap.rules[route.rule as usize];
        match matches(rule, bag, refs) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                inner.match_error(rule, &e);
                continue;
            }
        }
        for p in &route.pairs {
            let instance = &snap.instances[p.instance as usize];
            if !names(&instance.name, quota) || !seen.insert(p.id) {
                continue;
            }
            let s = seq;
            seq += 1;
            match instance.quota(bag, refs) {
                Ok(i) => built.push((s, p.handler, i)),
                Err(f) => {
                    inner
                        .metrics
                        .instances_skipped
                        .fetch_add(1, Ordering::Relaxed);
                    merge.error(
                        s,
                        &snap.handlers[p.handler as usize].name,
                        code::INTERNAL,
                        format_args!(
                            "instance '{}' field {}: {}",
                            instance.name, f.field, f.error
                        ),
                    );
                }
            }
        }
    }
    (built, Arc::new(refs.clone()))
}
