//! A built handler as a snapshot holds it: the handler, its identity (for
//! reuse across swaps), its dispatch statistics, and its report worker.
//!
//! Snapshots share slots by `Arc`; a slot carried over into a new snapshot
//! keeps its handler, state and statistics. When the last holder (a
//! snapshot, or a request still running on an old one) lets go, `Drop`
//! closes the handler on the runtime: after its report worker has drained
//! the queue, so no accepted batch is lost.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use mixer_adapters::template::{ReportBatch, ReportRefs};
use mixer_adapters::{Answer, Error, Handler, Params};
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

/// How long closing a handler may take before it is abandoned.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a report worker rests after draining its queue before it waits
/// on the queue again.
///
/// Why: a worker asleep on an empty queue is woken (a futex wake and a
/// context switch) by every batch; under steady traffic that is one wake per
/// Report request, which cost more CPU than recording the batch. Resting
/// lets batches gather while senders only push (no worker is waiting, so no
/// wake), bounding wakes to about one per millisecond per handler. The cost
/// is up to this much added delay before telemetry is recorded; the queue
/// (default 1,024 batches) holds a millisecond of far more traffic than
/// one server serves.
const REPORT_REST: Duration = Duration::from_millis(1);

/// Handler closes under way in this process. Closing happens in the
/// background when the last holder of a handler lets go; a host that is
/// about to stop its runtime waits for these first (see [`closed`]), or a
/// close still awaiting its backend would find the runtime's timers gone.
static CLOSING: Closing = Closing {
    pending: AtomicUsize::new(0),
    idle: tokio::sync::Notify::const_new(),
};

struct Closing {
    pending: AtomicUsize,
    idle: tokio::sync::Notify,
}

/// Counts one close as under way until dropped (also on panic).
struct CloseGuard;

impl CloseGuard {
    fn start() -> CloseGuard {
        CLOSING.pending.fetch_add(1, Ordering::SeqCst);
        CloseGuard
    }
}

impl Drop for CloseGuard {
    fn drop(&mut self) {
        if CLOSING.pending.fetch_sub(1, Ordering::SeqCst) == 1 {
            CLOSING.idle.notify_waiters();
        }
    }
}

/// Waits until every handler close under way in this process has finished
/// (handlers of dropped dispatchers and of replaced or rejected snapshots),
/// or `timeout` passes. True when none is left.
///
/// Call it before stopping the tokio runtime the dispatcher was built on:
/// closes flush files and release sockets in the background, and would be
/// cut short (or find the runtime's timers gone) otherwise.
pub async fn closed(timeout: Duration) -> bool {
    let wait = async {
        loop {
            let notified = CLOSING.idle.notified();
            if CLOSING.pending.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    };
    tokio::time::timeout(timeout, wait).await.is_ok()
}

/// Per-variety dispatch statistics of one handler.
#[derive(Debug, Default)]
pub(crate) struct CallStats {
    pub(crate) calls: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timed: AtomicU64,
    pub(crate) nanos: AtomicU64,
}

impl CallStats {
    /// Counts a call; `started` is given for calls that waited (pending
    /// answers, report batches): inline answers take less time than the
    /// two clock reads timing them would, so they are counted, not timed.
    pub(crate) fn record(&self, started: Option<Instant>, failed: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(started) = started {
            self.timed.fetch_add(1, Ordering::Relaxed);
            let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            self.nanos.fetch_add(nanos, Ordering::Relaxed);
        }
    }
}

/// Statistics of one handler, kept across swaps while it is reused.
#[derive(Debug, Default)]
pub(crate) struct HandlerStats {
    pub(crate) check: CallStats,
    pub(crate) quota: CallStats,
    pub(crate) report: CallStats,
    pub(crate) dropped_batches: AtomicU64,
    pub(crate) dropped_instances: AtomicU64,
    pub(crate) panics: AtomicU64,
}

impl HandlerStats {
    /// A batch of which `instances` were dropped, by a full queue.
    fn count_dropped(&self, instances: usize) {
        self.dropped_batches.fetch_add(1, Ordering::Relaxed);
        self.dropped_instances
            .fetch_add(instances as u64, Ordering::Relaxed);
    }
}

enum Msg {
    Batch(ReportBatch),
    Flush(oneshot::Sender<()>),
}

/// A built handler in a snapshot.
pub(crate) struct HandlerSlot {
    pub(crate) name: Arc<str>,
    pub(crate) adapter: String,
    pub(crate) params: Params,
    pub(crate) handler: Arc<dyn Handler>,
    pub(crate) stats: Arc<HandlerStats>,
    queue: Option<mpsc::Sender<Msg>>,
    /// Reports go straight to the handler on the reporting thread (see
    /// [`Handler::report_inline`]); no queue, no worker.
    inline_reports: bool,
    runtime: Handle,
}

/// What handing a batch to a handler did, in instances.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Delivered {
    pub(crate) queued: usize,
    pub(crate) dropped: usize,
}

impl HandlerSlot {
    pub(crate) fn new(
        name: Arc<str>,
        adapter: String,
        params: Params,
        handler: Arc<dyn Handler>,
        reports: bool,
        queue_capacity: usize,
        runtime: Handle,
    ) -> HandlerSlot {
        let stats = Arc::new(HandlerStats::default());
        let inline_reports = reports && handler.report_inline();
        let queue = (reports && !inline_reports).then(|| {
            spawn_worker(
                &runtime,
                name.clone(),
                handler.clone(),
                stats.clone(),
                queue_capacity.max(1),
            )
        });
        HandlerSlot {
            name,
            adapter,
            params,
            handler,
            stats,
            queue,
            inline_reports,
            runtime,
        }
    }

    /// Hands a batch to the handler on this thread (an inline handler
    /// reads it in place) or, copied, to its report worker's queue; never
    /// waits. A full queue, ours or the handler's own, drops and counts.
    pub(crate) fn report(&self, batch: ReportRefs<'_>) -> Delivered {
        let n = batch.len();
        if self.inline_reports {
            // Not timed, as inline check answers are not: a clock read
            // would cost more than many of these calls.
            let handler = &*self.handler;
            let dropped = report_to(|| handler.report_refs(batch), &self.name, &self.stats, None);
            return Delivered {
                queued: n - dropped.min(n),
                dropped: dropped.min(n),
            };
        }
        let sent = match &self.queue {
            Some(q) => q.try_send(Msg::Batch(batch.to_owned())).is_ok(),
            None => false,
        };
        if sent {
            Delivered {
                queued: n,
                dropped: 0,
            }
        } else {
            self.stats.count_dropped(n);
            Delivered {
                queued: 0,
                dropped: n,
            }
        }
    }

    /// Resolves once every batch queued before the call has been handed to
    /// the handler.
    pub(crate) async fn flush(&self) {
        if let Some(q) = &self.queue {
            let (tx, rx) = oneshot::channel();
            if q.send(Msg::Flush(tx)).await.is_ok() {
                let _ = rx.await;
            }
        }
    }
}

impl Drop for HandlerSlot {
    fn drop(&mut self) {
        // With a worker, dropping the sender ends its loop once the queue
        // is drained; the worker then closes the handler itself.
        if self.queue.take().is_some() {
            return;
        }
        let handler = self.handler.clone();
        let name = self.name.clone();
        let guard = CloseGuard::start();
        drop(self.runtime.spawn(async move {
            close_async(&*handler, &name).await;
            drop(guard);
        }));
    }
}

async fn close_async(handler: &dyn Handler, name: &str) {
    let answer = match catch_unwind(AssertUnwindSafe(|| handler.close())) {
        Ok(a) => a,
        Err(p) => {
            tracing::error!(
                handler = name,
                "handler panicked while closing: {}",
                panic_message(&*p)
            );
            return;
        }
    };
    let result = match answer {
        Answer::Ready(r) => Ok(Ok(r)),
        Answer::Pending(f) => {
            tokio::time::timeout(CLOSE_TIMEOUT, AssertUnwindSafe(f).catch_unwind()).await
        }
    };
    match result {
        Ok(Ok(Ok(()))) => tracing::debug!(handler = name, "handler closed"),
        Ok(Ok(Err(e))) => tracing::warn!(handler = name, "closing handler failed: {e}"),
        Ok(Err(p)) => {
            tracing::error!(
                handler = name,
                "handler panicked while closing: {}",
                panic_message(&*p)
            )
        }
        Err(_) => tracing::warn!(handler = name, "closing handler timed out"),
    }
}

fn spawn_worker(
    runtime: &Handle,
    name: Arc<str>,
    handler: Arc<dyn Handler>,
    stats: Arc<HandlerStats>,
    capacity: usize,
) -> mpsc::Sender<Msg> {
    let (tx, mut rx) = mpsc::channel(capacity);
    let rt = runtime.clone();
    // A blocking-pool thread, not an async task: a handler that blocks in
    // `report` despite its contract then stalls only its own queue, never
    // the runtime's workers (and so never a check).
    // Counted from before the thread starts: the worker closes its handler
    // once the queue ends, and a host waiting in `closed` must wait for
    // that even if the thread has not run yet.
    let guard = CloseGuard::start();
    drop(runtime.spawn_blocking(move || {
        while let Some(mut msg) = rx.blocking_recv() {
            loop {
                run(msg, &*handler, &name, &stats);
                match rx.try_recv() {
                    Ok(m) => msg = m,
                    Err(_) => break,
                }
            }
            std::thread::sleep(REPORT_REST);
        }
        rt.block_on(close_async(&*handler, &name));
        drop(guard);
    }));
    tx
}

/// Hands one queued message to the handler (or answers a flush).
fn run(msg: Msg, handler: &dyn Handler, name: &str, stats: &HandlerStats) {
    match msg {
        Msg::Batch(batch) => {
            report_to(|| handler.report(batch), name, stats, Some(Instant::now()));
        }
        Msg::Flush(done) => {
            let _ = done.send(());
        }
    }
}

/// Calls the handler with a batch (`call`), a failure or a panic logged and
/// counted, never passed on. Returns the instances the handler's own queue
/// refused ([`Error::QueueFull`]), which are counted as dropped.
fn report_to(
    call: impl FnOnce() -> Result<(), Error>,
    name: &str,
    stats: &HandlerStats,
    started: Option<Instant>,
) -> usize {
    let mut dropped = 0;
    let failed = match catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(())) => false,
        Ok(Err(e)) => {
            if let Error::QueueFull { dropped: n } = e {
                dropped = n;
                stats.count_dropped(n);
            }
            // A handler refusing every batch (a full queue of its own)
            // would log per report: the 1st, 2nd, 4th, 8th... failure is
            // logged, all are counted.
            let n = stats.report.errors.load(Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(handler = name, failures = n, "report failed: {e}");
            }
            true
        }
        Err(p) => {
            stats.panics.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                handler = name,
                "handler panicked in report: {}",
                panic_message(&*p)
            );
            true
        }
    };
    stats.report.record(started, failed);
    dropped
}

/// The text of a panic payload.
pub(crate) fn panic_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-text panic payload)".to_string()
    }
}
