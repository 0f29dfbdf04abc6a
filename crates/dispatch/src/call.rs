//! Calling the handlers of one check or quota: what the two share.
//!
//! Inline answers are taken at once (nothing spawned or boxed); pending
//! ones are awaited together, each under its handler's timeout. A handler
//! error, a panic (inline or while pending) and a timeout each become an
//! error in the merge that names the handler, so one bad handler fails its
//! own part of the request, never the server.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::join_all;
use mixer_adapters::{Answer, BoxFuture, Handler};
use mixer_proto::code;

use crate::dispatcher::Inner;
use crate::request::Merge;
use crate::slot::{CallStats, HandlerSlot, HandlerStats, panic_message};
use crate::snapshot::Snapshot;

/// A handler's answer still to come: rule order, the handler, its future,
/// when it was asked.
pub(crate) type Pending<'a, T> = Vec<(
    u32,
    &'a Arc<HandlerSlot>,
    BoxFuture<'a, Result<T, mixer_adapters::Error>>,
    Instant,
)>;

/// Calls `call` for every `(rule order, handler index, instance)` and
/// hands each inline success to `take`; failures go into `merge`. `stats`
/// picks the variety's counters of a handler. What is not answered inline
/// is handed back for [`await_pending`]: empty (and unallocated) when every
/// handler answered inline, so that a caller's future need not hold the
/// state of awaiting them.
pub(crate) fn call_inline<'a, I, T>(
    snap: &'a Snapshot,
    instances: &'a [(u32, u32, I)],
    stats: fn(&HandlerStats) -> &CallStats,
    call: impl Fn(&'a dyn Handler, &'a I) -> Answer<'a, T>,
    merge: &mut Merge,
    mut take: impl FnMut(&mut Merge, u32, &str, T),
) -> Pending<'a, T> {
    let mut pending = Vec::new();
    for (seq, h, instance) in instances {
        let slot = &snap.handlers[*h as usize];
        match catch_unwind(AssertUnwindSafe(|| call(&*slot.handler, instance))) {
            Ok(Answer::Ready(Ok(r))) => {
                stats(&slot.stats).record(None, false);
                take(merge, *seq, &slot.name, r);
            }
            Ok(Answer::Ready(Err(e))) => {
                stats(&slot.stats).record(None, true);
                merge.error(*seq, &slot.name, e.code(), e);
            }
            Ok(Answer::Pending(f)) => pending.push((*seq, slot, f, Instant::now())),
            Err(p) => {
                stats(&slot.stats).record(None, true);
                slot.stats.panics.fetch_add(1, Ordering::Relaxed);
                merge.error(
                    *seq,
                    &slot.name,
                    code::INTERNAL,
                    format_args!("handler panicked: {}", panic_message(&*p)),
                );
            }
        }
    }
    pending
}

/// Awaits what [`call_inline`] handed back, all together, each under its
/// handler's timeout, and hands each success to `take`.
pub(crate) async fn await_pending<'a, T>(
    inner: &Inner,
    pending: Pending<'a, T>,
    stats: fn(&HandlerStats) -> &CallStats,
    merge: &mut Merge,
    mut take: impl FnMut(&mut Merge, u32, &str, T),
) {
    let results = join_all(pending.into_iter().map(|(seq, slot, f, started)| {
        let limit = inner.options.timeout_of(&slot.name);
        async move {
            let r = tokio::time::timeout(limit, AssertUnwindSafe(f).catch_unwind()).await;
            (seq, slot, started, limit, r)
        }
    }))
    .await;
    for (seq, slot, started, limit, r) in results {
        stats(&slot.stats).record(Some(started), !matches!(r, Ok(Ok(Ok(_)))));
        match r {
            Ok(Ok(Ok(r))) => take(merge, seq, &slot.name, r),
            Ok(Ok(Err(e))) => merge.error(seq, &slot.name, e.code(), e),
            Ok(Err(p)) => {
                slot.stats.panics.fetch_add(1, Ordering::Relaxed);
                merge.error(
                    seq,
                    &slot.name,
                    code::INTERNAL,
                    format_args!("handler panicked: {}", panic_message(&*p)),
                );
            }
            Err(_) => merge.error(
                seq,
                &slot.name,
                code::UNAVAILABLE,
                format_args!(
                    "no answer within {}",
                    mixer_attributes::format_duration(limit)
                ),
            ),
        }
    }
}
