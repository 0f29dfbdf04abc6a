//! What a built handler does: answer checks and quotas, take reports,
//! expose counters, close.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use mixer_proto::code;

use crate::Error;
use crate::template::{CheckInstance, QuotaInstance, ReportBatch, ReportRefs};

/// A boxed future, for answers that need I/O.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A handler's answer to a check or quota: ready now, or pending on I/O.
///
/// In-memory handlers (denier, list, memquota) return [`Answer::Ready`]: no
/// future is created, boxed or spawned, so the dispatcher can answer a
/// check without allocating. Handlers that talk to a backend return
/// [`Answer::Pending`]; the dispatcher awaits it under its per-handler
/// timeout. The future may borrow the handler and the instance.
#[must_use]
pub enum Answer<'a, T> {
    /// The answer, computed inline.
    Ready(Result<T, Error>),
    /// The answer, once this future completes.
    Pending(BoxFuture<'a, Result<T, Error>>),
}

impl<'a, T> Answer<'a, T> {
    /// A ready success.
    pub fn ok(value: T) -> Self {
        Answer::Ready(Ok(value))
    }

    /// A ready error.
    pub fn err(error: Error) -> Self {
        Answer::Ready(Err(error))
    }

    /// A pending answer from a future.
    pub fn pending(fut: impl Future<Output = Result<T, Error>> + Send + 'a) -> Self {
        Answer::Pending(Box::pin(fut))
    }

    /// True when no await is needed.
    pub fn is_ready(&self) -> bool {
        matches!(self, Answer::Ready(_))
    }

    /// The result, awaiting it if pending.
    pub async fn resolve(self) -> Result<T, Error> {
        match self {
            Answer::Ready(r) => r,
            Answer::Pending(f) => f.await,
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Answer<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Answer::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// A `google.rpc.Status`: a code and a message.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// A `google.rpc.Code` (`mixer_proto::code`).
    pub code: i32,
    /// Why (empty for OK).
    pub message: String,
}

impl Status {
    /// OK, with no message (allocates nothing).
    pub const OK: Status = Status {
        code: code::OK,
        message: String::new(),
    };

    /// A status with a code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// True for OK.
    pub fn is_ok(&self) -> bool {
        self.code == code::OK
    }
}

/// A check handler's decision.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// OK, or the denial (code and message).
    pub status: Status,
    /// How long the caller may reuse this decision.
    pub valid_duration: Duration,
    /// How many times the caller may reuse this decision.
    pub valid_use_count: i32,
}

impl CheckResult {
    /// An OK decision with its validity.
    pub fn ok(valid_duration: Duration, valid_use_count: i32) -> CheckResult {
        CheckResult {
            status: Status::OK,
            valid_duration,
            valid_use_count,
        }
    }
}

/// What a quota call asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuotaArgs {
    /// Units to allocate; memquota frees on a negative amount.
    pub amount: i64,
    /// The caller's id for this allocation: a retry with the same id within
    /// the dedup window gets the first answer and consumes nothing more.
    /// Empty means no deduplication.
    pub deduplication_id: String,
    /// Grant whatever is left (down to 0) instead of all-or-nothing.
    pub best_effort: bool,
}

/// A quota handler's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaResult {
    /// Units granted: 0 or the full amount, anything in between with best
    /// effort.
    pub granted: i64,
    /// How long the grant is valid (the window the units came from).
    pub valid_duration: Duration,
    /// OK, or `RESOURCE_EXHAUSTED` when less than asked was granted.
    pub status: Status,
}

/// A named count a handler keeps (drops, errors...), for the server to
/// expose as a metric labelled with the handler's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counter {
    /// Snake-case name: `dropped`, `errors`, `refresh_failures`.
    pub name: &'static str,
    /// One line saying what it counts.
    pub help: &'static str,
    /// Its value since the handler was built (monotonic).
    pub value: u64,
}

/// A built handler: a configured adapter, ready to serve.
///
/// Handlers are `Send + Sync` and are shared behind `Arc` by every thread
/// of the host. A handler serves only the varieties of its adapter's
/// templates: the dispatcher never calls the others (their default answers
/// [`Error::Unsupported`]).
///
/// Contract per call:
/// - [`check`](Handler::check) and [`quota`](Handler::quota) answer inline
///   when they can ([`Answer::Ready`]); a pending answer must finish or fail
///   in bounded time, and the dispatcher adds its own timeout.
/// - [`report`](Handler::report) never blocks: a handler doing I/O hands the
///   batch to a bounded queue and returns; when the queue is full it drops
///   the batch, counts the drop (a [`Counter`] named `dropped`) and returns
///   [`Error::QueueFull`].
/// - [`close`](Handler::close) stops background work and flushes what can be
///   flushed; the handler is not called again afterwards.
pub trait Handler: Send + Sync + 'static {
    /// Answers a check for one instance.
    fn check<'a>(&'a self, instance: &'a CheckInstance) -> Answer<'a, CheckResult> {
        Answer::err(unsupported(instance.template().name()))
    }

    /// Answers a quota allocation for one instance.
    fn quota<'a>(
        &'a self,
        instance: &'a QuotaInstance,
        args: &'a QuotaArgs,
    ) -> Answer<'a, QuotaResult> {
        let _ = (instance, args);
        Answer::err(unsupported("quota"))
    }

    /// Takes a batch of report instances without blocking.
    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        Err(unsupported(batch.template().name()))
    }

    /// Takes a batch of report instances borrowed from the request, on the
    /// reporting thread: called instead of [`report`](Handler::report) when
    /// [`report_inline`](Handler::report_inline) is true, under the same
    /// contract. The default copies the batch and calls `report`; a handler
    /// that records in place (counters, histograms) or formats at once
    /// overrides it and copies nothing.
    fn report_refs(&self, batch: ReportRefs<'_>) -> Result<(), Error> {
        self.report(batch.to_owned())
    }

    /// True when [`report`](Handler::report) is cheap and cannot block:
    /// in-memory work, a non-blocking send, or a hand-off to the handler's
    /// own bounded queue that drops and counts when full. A dispatcher may
    /// then call it on the reporting thread instead of through a queue and
    /// a worker thread of its own, sparing every report a thread hand-off.
    /// The default, false, keeps a handler that might block (whatever its
    /// contract says) off the request path.
    fn report_inline(&self) -> bool {
        false
    }

    /// The handler's counters now (called when metrics are scraped).
    fn counters(&self) -> Vec<Counter> {
        Vec::new()
    }

    /// Stops background work and flushes; sync handlers answer ready.
    fn close(&self) -> Answer<'_, ()> {
        Answer::ok(())
    }
}

fn unsupported(what: &str) -> Error {
    Error::Unsupported {
        adapter: "this handler".into(),
        what: format!("template {what}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::CheckNothingInstance;

    struct Nothing;
    impl Handler for Nothing {}

    #[tokio::test]
    async fn defaults_refuse_and_close_ready() {
        let h = Nothing;
        let inst = CheckInstance::CheckNothing(CheckNothingInstance { name: "i".into() });
        let a = h.check(&inst);
        assert!(a.is_ready());
        assert_eq!(a.resolve().await.unwrap_err().code(), code::INTERNAL);
        assert!(h.report(ReportBatch::Metric(vec![])).is_err());
        assert!(h.close().resolve().await.is_ok());
        assert!(h.counters().is_empty());
        let p: Answer<'_, i32> = Answer::pending(async { Ok(7) });
        assert!(!p.is_ready());
        assert_eq!(p.resolve().await, Ok(7));
    }
}
