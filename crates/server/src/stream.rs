//! One Generation-1 stream: its decoder state, its requests in flight, and
//! the order of things.
//!
//! Requests are read in order of arrival and each attribute update is
//! applied at once, in that order, so every request sees exactly the bag
//! its deltas describe. The dispatch that follows runs concurrently with
//! later requests of the same stream (up to
//! [`Options::max_in_flight_per_stream`](crate::Options)), and answers go
//! out as they complete, matched by `request_index`: a check waiting on a
//! slow handler does not hold up the checks behind it.
//!
//! The response stream drives everything from its own `poll_next`, in the
//! task that hyper runs for the HTTP/2 stream: nothing is spawned per
//! stream or per request, and in-memory checks complete within the poll
//! that read them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context as TaskContext, Poll};

use futures_util::stream::{FuturesUnordered, Stream, StreamExt};
use mixer_attributes::{Context, StreamState};
use mixer_dispatch::QuotaRequest as DispatchQuota;
use mixer_proto::google::rpc::Status as RpcStatus;
use mixer_proto::istio::mixer::v1 as proto;
use tonic::Streaming;

use crate::codec::{RawRequest, Shape};
use crate::shared::{Method, Shared};
use crate::status;

type Pending<R> = Pin<Box<dyn Future<Output = R> + Send>>;

/// What dispatching a request gives: an answer now, or one to wait for.
pub(crate) enum Work<R> {
    Ready(R),
    Later(Pending<R>),
}

/// What differs between the three methods.
pub(crate) trait Kind: Send + 'static {
    /// The response message.
    type Response: prost::Message + Send + 'static;
    /// Which method.
    const METHOD: Method;
    /// The request's envelope.
    const SHAPE: Shape;
    /// Dispatches a request whose update applied, `bag` being its context.
    fn dispatch(shared: &Shared, bag: &Context, req: RawRequest) -> Work<Self::Response>;
    /// The answer to a request refused before dispatch.
    fn refuse(request_index: i64, status: RpcStatus) -> Self::Response;
    /// Whether an answer is OK (for the counters).
    fn is_ok(response: &Self::Response) -> bool;
}

/// `Check`.
pub(crate) struct Check;
/// `Quota`.
pub(crate) struct Quota;
/// `Report`.
pub(crate) struct Report;

fn expiration(d: std::time::Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: d.subsec_nanos() as i32,
    }
}

impl Kind for Check {
    type Response = proto::CheckResponse;
    const METHOD: Method = Method::Check;
    const SHAPE: Shape = Shape::Plain;

    fn dispatch(shared: &Shared, bag: &Context, req: RawRequest) -> Work<Self::Response> {
        // The dispatcher borrows the bag for as long as a handler may take,
        // while the next request of this stream updates the context: the
        // request keeps its own copy, copy-on-write (shared unless a
        // handler is still working when the next update comes).
        let bag = bag.clone();
        let dispatcher = shared.dispatcher.clone();
        let index = req.request_index;
        Work::Later(Box::pin(async move {
            let out = dispatcher.check_decision(&bag).await;
            proto::CheckResponse {
                request_index: index,
                attribute_update: None,
                result: Some(status::decision(out.status)),
                expiration: Some(expiration(out.valid_duration)),
            }
        }))
    }

    fn refuse(request_index: i64, status: RpcStatus) -> Self::Response {
        proto::CheckResponse {
            request_index,
            attribute_update: None,
            result: Some(status),
            expiration: None,
        }
    }

    fn is_ok(r: &Self::Response) -> bool {
        r.result.as_ref().is_none_or(|s| s.code == 0)
    }
}

impl Kind for Quota {
    type Response = proto::QuotaResponse;
    const METHOD: Method = Method::Quota;
    const SHAPE: Shape = Shape::Quota;

    fn dispatch(shared: &Shared, bag: &Context, req: RawRequest) -> Work<Self::Response> {
        if req.quota.is_empty() {
            return Work::Ready(Self::refuse(
                req.request_index,
                status::missing_quota_name(),
            ));
        }
        let bag = bag.clone();
        let dispatcher = shared.dispatcher.clone();
        Work::Later(Box::pin(async move {
            let ask = DispatchQuota {
                quota: &req.quota,
                amount: req.amount,
                deduplication_id: &req.deduplication_id,
                best_effort: req.best_effort,
            };
            let out = dispatcher.quota(&bag, ask).await;
            proto::QuotaResponse {
                request_index: req.request_index,
                attribute_update: None,
                result: Some(status::decision(out.status)),
                expiration: Some(expiration(out.valid_duration)),
                amount: out.granted,
            }
        }))
    }

    fn refuse(request_index: i64, status: RpcStatus) -> Self::Response {
        proto::QuotaResponse {
            request_index,
            attribute_update: None,
            result: Some(status),
            expiration: None,
            amount: 0,
        }
    }

    fn is_ok(r: &Self::Response) -> bool {
        r.result.as_ref().is_none_or(|s| s.code == 0)
    }
}

impl Kind for Report {
    type Response = proto::ReportResponse;
    const METHOD: Method = Method::Report;
    const SHAPE: Shape = Shape::Plain;

    fn dispatch(shared: &Shared, bag: &Context, req: RawRequest) -> Work<Self::Response> {
        // Reports only enqueue (never wait on a backend), so they answer
        // inline, borrowing the context, with nothing copied. A batch a
        // full queue dropped is counted by the dispatcher; the answer is
        // still OK, as a retry would duplicate what the other handlers got.
        shared.dispatcher.report(bag);
        Work::Ready(proto::ReportResponse {
            request_index: req.request_index,
            attribute_update: None,
            result: Some(status::ok()),
        })
    }

    fn refuse(request_index: i64, status: RpcStatus) -> Self::Response {
        proto::ReportResponse {
            request_index,
            attribute_update: None,
            result: Some(status),
        }
    }

    fn is_ok(r: &Self::Response) -> bool {
        r.result.as_ref().is_none_or(|s| s.code == 0)
    }
}

/// The response stream of one gRPC call, which also reads its requests.
pub(crate) struct MixerStream<K: Kind> {
    shared: Arc<Shared>,
    incoming: Streaming<RawRequest>,
    state: StreamState,
    pending: FuturesUnordered<Pending<K::Response>>,
    shutdown: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// No more requests will be read (the client half-closed, the
    /// transport failed, or the server is shutting down).
    closing: bool,
    /// A transport error to end the stream with, once drained.
    failure: Option<tonic::Status>,
}

impl<K: Kind> MixerStream<K> {
    /// Takes one of the server's stream slots, released on drop.
    pub(crate) fn new(shared: Arc<Shared>, incoming: Streaming<RawRequest>) -> MixerStream<K> {
        let state = StreamState::with_limits(shared.options.limits.clone());
        let shutdown = Box::pin(shared.shutdown_signal());
        shared
            .stats
            .method(K::METHOD)
            .streams
            .fetch_add(1, Ordering::Relaxed);
        MixerStream {
            shared,
            incoming,
            state,
            pending: FuturesUnordered::new(),
            shutdown,
            closing: false,
            failure: None,
        }
    }

    /// Reads one request and starts it; `Some` when it is answered at once.
    fn start(&mut self, req: RawRequest, cx: &mut TaskContext<'_>) -> Option<K::Response> {
        let stats = self.shared.stats.method(K::METHOD);
        stats.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(size) = req.oversized {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
            let limit = self.shared.options.max_message_bytes;
            return Some(K::refuse(req.request_index, status::too_large(size, limit)));
        }
        if let Some(reason) = &req.malformed {
            stats.invalid.fetch_add(1, Ordering::Relaxed);
            return Some(K::refuse(req.request_index, status::malformed(reason)));
        }
        let bag = match self.state.apply_bytes(&req.attributes) {
            Ok(bag) => bag,
            Err(e) => {
                stats.invalid.fetch_add(1, Ordering::Relaxed);
                return Some(K::refuse(req.request_index, status::invalid_update(&e)));
            }
        };
        if !self.shared.admit() {
            stats.shed.fetch_add(1, Ordering::Relaxed);
            return Some(K::refuse(
                req.request_index,
                status::overloaded(self.shared.options.max_in_flight),
            ));
        }
        match K::dispatch(&self.shared, bag, req) {
            Work::Ready(r) => {
                self.shared.release(1);
                Some(r)
            }
            // In-memory handlers answer on the first poll: such a request
            // is answered at once, never joins the pending set (a node
            // allocated per request), and lets go of its copy of the
            // context before the next update, which then writes in place
            // instead of copying it.
            Work::Later(mut f) => match f.as_mut().poll(cx) {
                Poll::Ready(r) => {
                    self.shared.release(1);
                    Some(r)
                }
                Poll::Pending => {
                    self.pending.push(f);
                    None
                }
            },
        }
    }

    fn answered(&self, r: K::Response) -> Poll<Option<Result<K::Response, tonic::Status>>> {
        if !K::is_ok(&r) {
            self.shared
                .stats
                .method(K::METHOD)
                .not_ok
                .fetch_add(1, Ordering::Relaxed);
        }
        Poll::Ready(Some(Ok(r)))
    }
}

impl<K: Kind> Stream for MixerStream<K> {
    type Item = Result<K::Response, tonic::Status>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty()
                && let Poll::Ready(Some(r)) = this.pending.poll_next_unpin(cx)
            {
                this.shared.release(1);
                return this.answered(r);
            }
            if this.closing {
                if this.pending.is_empty() {
                    return Poll::Ready(this.failure.take().map(Err));
                }
                return Poll::Pending;
            }
            if this.shutdown.as_mut().poll(cx).is_ready() {
                this.closing = true;
                continue;
            }
            if this.pending.len() >= this.shared.options.max_in_flight_per_stream {
                // Woken by the pending answers; the client waits on HTTP/2
                // flow control meanwhile.
                return Poll::Pending;
            }
            match this.incoming.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(req))) => {
                    if let Some(r) = this.start(req, cx) {
                        return this.answered(r);
                    }
                }
                Poll::Ready(Some(Err(e))) => {
                    this.shared
                        .stats
                        .method(K::METHOD)
                        .stream_errors
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(method = K::METHOD.name(), "stream ended by error: {e}");
                    this.failure = Some(e);
                    this.closing = true;
                }
                Poll::Ready(None) => this.closing = true,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<K: Kind> Drop for MixerStream<K> {
    fn drop(&mut self) {
        // A client that went away leaves answers nobody will read; their
        // slots are given back here.
        self.shared.release(self.pending.len());
        self.shared.stream_closed();
    }
}
