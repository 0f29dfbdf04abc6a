//! Check: match the request's rules, build their CHECK instances, ask each
//! (handler, instance) once, merge in rule order.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mixer_adapters::{CheckResult, Status, Variety};
use mixer_attributes::{Bag, ReferencedAttributes};
use mixer_proto::code;

use crate::call::{Pending, await_pending, call_inline};
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

/// The decision of a check without the attributes it read, from
/// [`Dispatcher::check_decision`]: what a caller that does not cache
/// decisions under their attributes needs (a server answering a proxy).
#[derive(Clone, Debug, PartialEq)]
pub struct CheckDecision {
    /// As [`CheckOutcome::status`].
    pub status: Status,
    /// As [`CheckOutcome::valid_duration`].
    pub valid_duration: Duration,
    /// As [`CheckOutcome::valid_use_count`].
    pub valid_use_count: i32,
}

/// What a check hands back besides its decision: the referenced set
/// ([`Dispatcher::check`]) or nothing ([`Dispatcher::check_decision`]),
/// which spares a cache hit the reference count of a shared set and a
/// check without the cache the copy of its scratch set.
trait Referenced: Sized {
    type Outcome;
    fn from_cache(shared: &Arc<ReferencedAttributes>) -> Self;
    fn from_scratch(scratch: &ReferencedAttributes) -> Self;
    fn outcome(decision: CheckDecision, referenced: Self) -> Self::Outcome;
}

impl Referenced for Arc<ReferencedAttributes> {
    type Outcome = CheckOutcome;
    fn from_cache(shared: &Arc<ReferencedAttributes>) -> Self {
        shared.clone()
    }
    fn from_scratch(scratch: &ReferencedAttributes) -> Self {
        Arc::new(scratch.clone())
    }
    fn outcome(d: CheckDecision, referenced: Self) -> CheckOutcome {
        CheckOutcome {
            status: d.status,
            valid_duration: d.valid_duration,
            valid_use_count: d.valid_use_count,
            referenced,
        }
    }
}

impl Referenced for () {
    type Outcome = CheckDecision;
    fn from_cache(_: &Arc<ReferencedAttributes>) -> Self {}
    fn from_scratch(_: &ReferencedAttributes) -> Self {}
    fn outcome(decision: CheckDecision, (): Self) -> CheckDecision {
        decision
    }
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
    pub fn check<'a, B: Bag + Sync + ?Sized>(
        &'a self,
        bag: &'a B,
    ) -> impl Future<Output = CheckOutcome> + 'a {
        // Not an `async fn` awaiting `decide`: one state machine, not two.
        self.decide::<B, Arc<ReferencedAttributes>>(bag)
    }

    /// Checks a request as [`check`](Dispatcher::check) does, without
    /// handing back the attributes the decision read: for callers that
    /// only answer with it. Cheaper on a cache hit (no shared set to
    /// count a reference to) and without the cache (no set copied out).
    pub fn check_decision<'a, B: Bag + Sync + ?Sized>(
        &'a self,
        bag: &'a B,
    ) -> impl Future<Output = CheckDecision> + 'a {
        self.decide::<B, ()>(bag)
    }

    async fn decide<B: Bag + Sync + ?Sized, R: Referenced>(&self, bag: &B) -> R::Outcome {
        let inner = &*self.inner;
        let now = inner.cache.as_ref().map(|c| c.now());
        if let (Some(cache), Some(now)) = (&inner.cache, now) {
            // Counted by the cache (see `Metrics::samples`).
            if let Some((hit, referenced)) = cache.get(bag, now, R::from_cache) {
                return R::outcome(hit, referenced);
            }
            inner.metrics.cache_misses.fetch_add(1, Ordering::Relaxed);
        }
        let snap = inner.snapshot.load_full();
        // Everything up to awaiting handlers happens in plain functions that
        // own the merge and the scratch set and hand them back: this future,
        // which every caller moves (hit or not), then holds neither (a
        // local borrowed here would keep its space in it across the await).
        let (instances, merge, refs, referenced) = start::<B, R>(inner, &snap, bag);
        let (merge, pending) = ask(&snap, &instances, merge);
        let (merge, refs) = if pending.is_empty() {
            (merge, refs)
        } else {
            // Only a handler doing I/O gets here, and it has allocated
            // already.
            Box::pin(wait(inner, pending, merge, refs)).await
        };
        let errors = merge.errors;
        let (status, valid_duration, valid_use_count, from_error) = merge.finish(
            inner.options.default_valid_duration,
            inner.options.default_valid_use_count,
        );
        inner.metrics.checks.count(status.code, from_error);
        let decision = CheckDecision {
            status,
            valid_duration,
            valid_use_count,
        };
        if let (Some(cache), Some(now)) = (&inner.cache, now)
            && !errors
        {
            cache.insert(bag, now, snap.generation, &refs, &decision);
        }
        SCRATCH.with(|cell| *cell.borrow_mut() = refs);
        R::outcome(decision, referenced)
    }
}

type Built = Vec<(u32, u32, mixer_adapters::template::CheckInstance)>;

/// Matches and builds, with the thread's scratch set, taken for the whole
/// check (handlers may be awaited, and the cache keys on the set
/// afterwards) and given back at the end: steady-state checks record
/// without allocating.
fn start<B: Bag + ?Sized, R: Referenced>(
    inner: &Inner,
    snap: &Snapshot,
    bag: &B,
) -> (Built, Merge, ReferencedAttributes, R) {
    let mut merge = Merge::default();
    let mut refs = SCRATCH.with(|cell| std::mem::take(&mut *cell.borrow_mut()));
    let instances = build_instances(inner, snap, bag, &mut refs, &mut merge);
    let referenced = R::from_scratch(&refs);
    (instances, merge, refs, referenced)
}

fn take(merge: &mut Merge, seq: u32, name: &str, r: CheckResult) {
    merge.answer(seq, name, &r.status, r.valid_duration, r.valid_use_count);
}

/// Asks every handler; what does not answer inline comes back pending.
fn ask<'a>(
    snap: &'a Snapshot,
    instances: &'a Built,
    mut merge: Merge,
) -> (Merge, Pending<'a, CheckResult>) {
    let pending = call_inline(
        snap,
        instances,
        |s| &s.check,
        |h, i| h.check(i),
        &mut merge,
        take,
    );
    (merge, pending)
}

async fn wait(
    inner: &Inner,
    pending: Pending<'_, CheckResult>,
    mut merge: Merge,
    refs: ReferencedAttributes,
) -> (Merge, ReferencedAttributes) {
    await_pending(inner, pending, |s| &s.check, &mut merge, take).await;
    (merge, refs)
}

/// Matches rules and builds instances: everything up to calling handlers,
/// with no await, so that the thread's scratch reference set can be used.
fn build_instances<B: Bag + ?Sized>(
    inner: &Inner,
    snap: &Snapshot,
    bag: &B,
    refs: &mut ReferencedAttributes,
    merge: &mut Merge,
) -> Built {
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
    built
}

#[cfg(test)]
mod tests {
    use mixer_adapters::Registry;
    use mixer_attributes::{OwnedBag, Value};
    use mixer_config::load::Documents;

    use super::*;
    use crate::Options;

    const YAML: &str = r#"
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: deny, namespace: istio-system}
spec: {compiledAdapter: denier, params: {status: {code: 7, message: bots}, validUseCount: 3}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: nothing, namespace: istio-system}
spec: {compiledTemplate: checknothing}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: bots, namespace: istio-system}
spec:
  match: request.useragent == "bot"
  actions: [{handler: deny, instances: [nothing]}]
"#;

    fn dispatcher(options: Options) -> Dispatcher {
        let d = Dispatcher::new(
            Registry::builtin(),
            tokio::runtime::Handle::current(),
            options,
        );
        let mut docs = Documents::new();
        docs.add_yaml("t.yaml", YAML);
        d.load(docs).unwrap();
        d
    }

    fn agent(ua: &str, path: &str) -> OwnedBag {
        OwnedBag::new()
            .with("request.useragent", Value::String(ua.into()))
            .with("request.path", Value::String(path.into()))
    }

    fn decision(o: &CheckOutcome) -> CheckDecision {
        CheckDecision {
            status: o.status.clone(),
            valid_duration: o.valid_duration,
            valid_use_count: o.valid_use_count,
        }
    }

    /// Every caller moves the check future, a cache hit included, so its
    /// size is part of a hit's cost: what is kept while handlers are
    /// awaited goes to the heap (it was 384 bytes before that).
    #[tokio::test]
    async fn check_futures_stay_small() {
        let d = dispatcher(Options::default());
        let bag = OwnedBag::new();
        let decision = std::mem::size_of_val(&d.check_decision(&bag));
        let check = std::mem::size_of_val(&d.check(&bag));
        assert!(
            decision <= 160 && check <= 160,
            "{decision} and {check} bytes"
        );
    }

    #[tokio::test]
    async fn check_decision_is_check_without_the_referenced_set() {
        let fresh = dispatcher(Options::default().without_cache());
        let d = dispatcher(Options::default());
        let cache = d.inner.cache.as_ref().unwrap();
        let misses = || d.inner.metrics.cache_misses.load(Ordering::Relaxed);
        let bot = fresh.check(&agent("bot", "/")).await;
        assert_eq!(bot.status.code, 7);
        assert_eq!(bot.valid_use_count, 3);
        assert_eq!(
            fresh.check_decision(&agent("bot", "/")).await,
            decision(&bot)
        );

        // The two share the cache and its use counts: a decision valid for
        // 3 uses is answered fresh once, then twice from the cache.
        assert_eq!(d.check_decision(&agent("bot", "/a")).await, decision(&bot));
        assert_eq!((cache.hits(), misses()), ((0, 0), 1));
        let hit = d.check(&agent("bot", "/b")).await;
        assert_eq!(hit.status, bot.status);
        assert_eq!(hit.valid_use_count, 2);
        // Cached under the set the fresh check read.
        assert_eq!(hit.referenced, bot.referenced);
        let hit = d.check_decision(&agent("bot", "/c")).await;
        assert_eq!((hit.status.code, hit.valid_use_count), (7, 1));
        assert_eq!((cache.hits(), misses()), ((0, 2), 1));
        // Used up: decided afresh.
        assert_eq!(d.check_decision(&agent("bot", "/d")).await, decision(&bot));
        assert_eq!((cache.hits(), misses()), ((0, 2), 2));

        // An allowed request, fresh and then from the cache.
        let human = fresh.check(&agent("curl", "/")).await;
        assert!(human.status.is_ok());
        assert_eq!(
            d.check_decision(&agent("curl", "/a")).await,
            decision(&human)
        );
        let hit = d.check_decision(&agent("curl", "/b")).await;
        assert!(hit.status.is_ok());
        assert_eq!(hit.valid_use_count, human.valid_use_count - 1);
        assert_eq!((cache.hits(), misses()), ((1, 2), 3));
        assert_eq!(
            d.check(&agent("curl", "/c")).await.referenced,
            human.referenced
        );
    }
}
