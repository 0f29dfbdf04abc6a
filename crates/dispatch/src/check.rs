//! Check: match the request's rules, build their CHECK instances, ask each
//! (handler, instance) once, merge in rule order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mixer_adapters::{Status, Variety};
use mixer_attributes::{Bag, ReferencedAttributes};
use mixer_proto::code;

use crate::cache::Cached;
use crate::call::call_handlers;
use crate::dispatcher::{Dispatcher, Inner};
use crate::request::{Merge, SCRATCH, Seen, matches};
use crate::snapshot::{CompiledRule, Snapshot};

/// The decision of a check.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckOutcome {
    /// OK, or the first denial (or failure) in rule order then action
    /// order; its message lists every denial as `handler: message`, joined
    /// with `, ` (a denial without a message shows its code's name).
    pub status: Status,
    /// How long the caller may reuse the decision: the minimum over the
    /// handlers that answered (zero when one failed), or the configured
    /// default when none did.
    pub valid_duration: Duration,
    /// How many times the caller may reuse it, likewise.
    pub valid_use_count: i32,
    /// Every attribute (and map key) the decision read, present or absent:
    /// what a cache of this decision must key on.
    pub referenced: Arc<ReferencedAttributes>,
}

impl Inner {
    pub(crate) fn match_error(&self, rule: &CompiledRule, e: &impl std::fmt::Display) {
        if self.metrics.match_error(&rule.name) {
            tracing::warn!(
                rule = &*rule.name,
                "match failed: {e}; counted as {} (logged once per rule)",
                if self.options.fail_closed_on_match_error {
                    "a denial"
                } else {
                    "no match"
                }
            );
        }
    }
}

impl Dispatcher {
    /// Checks a request.
    ///
    /// When every handler answers inline (the in-memory ones: denier,
    /// listchecker, memquota), the returned future completes on its first
    /// poll, nothing spawned or boxed. Handlers that do I/O are awaited
    /// together, each under its timeout (this needs a tokio runtime).
    pub async fn check<B: Bag + Sync + ?Sized>(&self, bag: &B) -> CheckOutcome {
        let inner = &*self.inner;
        let now = inner.cache.as_ref().map(|c| c.now());
        if let (Some(cache), Some(now)) = (&inner.cache, now) {
            if let Some(hit) = cache.get(bag, now) {
                // Counted by the cache (see `Metrics::samples`).
                return CheckOutcome {
                    status: hit.status,
                    valid_duration: hit.valid_duration,
                    valid_use_count: hit.valid_use_count,
                    referenced: hit.referenced,
                };
            }
            inner.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let snap = inner.snapshot.load_full();
        let mut merge = Merge::default();
        let (instances, referenced) = SCRATCH
            .with(|cell| build_instances(inner, &snap, bag, &mut cell.borrow_mut(), &mut merge));

        call_handlers(
            inner,
            &snap,
            &instances,
            |s| &s.check,
            |h, i| h.check(i),
            &mut merge,
            |merge, seq, name, r| {
                merge.answer(seq, name, &r.status, r.valid_duration, r.valid_use_count)
            },
        )
        .await;
        let errors = merge.errors;
        let (status, valid_duration, valid_use_count, from_error) = merge.finish(
            inner.options.default_valid_duration,
            inner.options.default_valid_use_count,
        );
        inner.metrics.checks.count(status.code, from_error);
        let outcome = CheckOutcome {
            status,
            valid_duration,
            valid_use_count,
            referenced,
        };
        if let (Some(cache), Some(now)) = (&inner.cache, now)
            && !errors
        {
            cache.insert(
                bag,
                now,
                snap.generation,
                &Cached {
                    status: outcome.status.clone(),
                    valid_duration: outcome.valid_duration,
                    valid_use_count: outcome.valid_use_count,
                    referenced: outcome.referenced.clone(),
                },
            );
        }
        outcome
    }
}

type Built = Vec<(u32, u32, mixer_adapters::template::CheckInstance)>;

/// Matches rules and builds instances: everything up to calling handlers,
/// with no await, so that the thread's scratch reference set can be used.
fn build_instances<B: Bag + ?Sized>(
    inner: &Inner,
    snap: &Snapshot,
    bag: &B,
    refs: &mut ReferencedAttributes,
    merge: &mut Merge,
) -> (Built, Arc<ReferencedAttributes>) {
    refs.clear();
    let ns = inner.ids.namespace(bag, refs);
    let routes = snap.routes(ns).of(Variety::Check);
    let mut seen = Seen::new(snap.pair_counts[0]);
    let mut built = Vec::new();
    let mut seq = 0u32;
    for route in routes {
        let rule = &snap.rules[route.rule as usize];
        match matches(rule, bag, refs) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                inner.match_error(rule, &e);
                if inner.options.fail_closed_on_match_error {
                    merge.reject(
                        seq,
                        &rule.name,
                        code::PERMISSION_DENIED,
                        format_args!("match failed: {e}"),
                    );
                    seq += 1;
                }
                continue;
            }
        }
        for p in &route.pairs {
            if !seen.insert(p.id) {
                continue;
            }
            let s = seq;
            seq += 1;
            let instance = &snap.instances[p.instance as usize];
            match instance.check(bag, refs) {
                Ok(i) => {
                    if built.capacity() == 0 {
                        built.reserve(route.pairs.len().max(4));
                    }
                    built.push((s, p.handler, i))
                }
                Err(f) => {
                    inner
                        .metrics
                        .instances_skipped
                        .fetch_add(1, Ordering::Relaxed);
                    let slot = &snap.handlers[p.handler as usize];
                    merge.error(
                        s,
                        &slot.name,
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
