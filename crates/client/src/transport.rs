//! One Generation-1 stream per method: pipelined requests matched to
//! answers by `request_index`, delta-encoded on a pool of attribute
//! contexts, re-opened with backoff (and a fresh dictionary) when it breaks.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use mixer_attributes::{Bag, Encoder};
use mixer_proto::code;
use mixer_proto::istio::mixer::v1 as proto;
use mixer_proto::istio::mixer::v1::mixer_client::MixerClient;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::codec::Streaming;
use tonic::codegen::tokio_stream::Stream;
use tonic::transport::Channel;

use crate::backoff::Backoff;
use crate::error::Error;

/// One of the three streams.
pub(crate) trait Method: Send + Sync + 'static {
    const NAME: &'static str;
    type Req: Send + 'static;
    type Resp: Send + 'static;
    fn open(
        client: MixerClient<Channel>,
        requests: Requests<Self::Req>,
    ) -> impl Future<Output = Result<Streaming<Self::Resp>, tonic::Status>> + Send;
    fn index(resp: &Self::Resp) -> i64;
    fn code(resp: &Self::Resp) -> i32;
}

macro_rules! method {
    ($ty:ident, $name:literal, $req:ty, $resp:ty, $call:ident) => {
        pub(crate) struct $ty;
        impl Method for $ty {
            const NAME: &'static str = $name;
            type Req = $req;
            type Resp = $resp;
            async fn open(
                mut client: MixerClient<Channel>,
                requests: Requests<$req>,
            ) -> Result<Streaming<$resp>, tonic::Status> {
                client
                    .$call(requests)
                    .await
                    .map(tonic::Response::into_inner)
            }
            fn index(r: &$resp) -> i64 {
                r.request_index
            }
            fn code(r: &$resp) -> i32 {
                r.result.as_ref().map_or(code::OK, |s| s.code)
            }
        }
    };
}
method!(
    CheckMethod,
    "Check",
    proto::CheckRequest,
    proto::CheckResponse,
    check
);
method!(
    ReportMethod,
    "Report",
    proto::ReportRequest,
    proto::ReportResponse,
    report
);
method!(
    QuotaMethod,
    "Quota",
    proto::QuotaRequest,
    proto::QuotaResponse,
    quota
);

/// The request half of a stream, fed by the encoder.
pub(crate) struct Requests<T>(mpsc::UnboundedReceiver<T>);

impl<T> Stream for Requests<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// How a transport behaves.
#[derive(Clone, Debug)]
pub(crate) struct TransportOptions {
    pub(crate) contexts: usize,
    pub(crate) max_in_flight: usize,
    pub(crate) reopen: Backoff,
}

type Answer<R> = Result<R, Error>;

/// What the stream's reader task shares with callers.
struct Shared<R> {
    pending: Mutex<Pending<R>>,
    answered: AtomicBool,
}

struct Pending<R> {
    waiting: HashMap<i64, oneshot::Sender<Answer<R>>>,
    /// Set (under this lock) when the stream is gone, so that no call
    /// registers after the reader failed everyone.
    broken: Option<String>,
}

struct Conn<M: Method> {
    generation: u64,
    tx: mpsc::UnboundedSender<M::Req>,
    shared: Arc<Shared<M::Resp>>,
    encoder: Encoder,
    next_index: i64,
    free_contexts: Vec<i32>,
    next_overflow: usize,
}

struct State<M: Method> {
    conn: Option<Conn<M>>,
    failures: u32,
    next_attempt: Option<Instant>,
}

/// A stream of one method, opened on first use.
pub(crate) struct Transport<M: Method> {
    channel: Channel,
    options: TransportOptions,
    state: Mutex<State<M>>,
    generations: AtomicU64,
    /// Streams opened, for statistics and tests.
    pub(crate) opened: AtomicU64,
}

/// A call sent and not yet answered.
pub(crate) struct Call<R> {
    rx: oneshot::Receiver<Answer<R>>,
    index: i64,
    generation: u64,
    context: i32,
    shared: Arc<Shared<R>>,
}

impl<M: Method> Transport<M> {
    pub(crate) fn new(channel: Channel, options: TransportOptions) -> Transport<M> {
        Transport {
            channel,
            options,
            state: Mutex::new(State {
                conn: None,
                failures: 0,
                next_attempt: None,
            }),
            generations: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
    }

    /// Encodes `bag`, numbers the request and puts it on the stream,
    /// opening one if needed. `build` makes the request from its index and
    /// attribute update.
    pub(crate) fn send<B: Bag + ?Sized>(
        &self,
        bag: &B,
        build: impl FnOnce(i64, proto::Attributes) -> M::Req,
    ) -> Result<Call<M::Resp>, Error> {
        let mut state = self.state.lock();
        let now = Instant::now();
        if let Some(conn) = &state.conn
            && conn.shared.pending.lock().broken.is_some()
        {
            let answered = conn.shared.answered.load(Ordering::Relaxed);
            state.conn = None;
            // A stream that worked is re-opened at once; one that never
            // answered means the server is not there: back off.
            state.failures = if answered { 0 } else { state.failures + 1 };
            state.next_attempt = Some(if state.failures == 0 {
                now
            } else {
                now + self.options.reopen.delay(state.failures - 1)
            });
        }
        if state.conn.is_none() {
            if let Some(at) = state.next_attempt
                && now < at
            {
                return Err(Error::Backoff {
                    method: M::NAME,
                    retry_in_ms: (at - now).as_millis() as u64,
                });
            }
            state.conn = Some(self.open());
        }
        let Some(conn) = state.conn.as_mut() else {
            unreachable!("opened above")
        };
        if conn.shared.pending.lock().waiting.len() >= self.options.max_in_flight {
            return Err(Error::TooManyInFlight {
                method: M::NAME,
                limit: self.options.max_in_flight,
            });
        }
        let context = match conn.free_contexts.pop() {
            Some(c) => c,
            None => {
                // Every context is in use: share one. The server applies
                // updates in stream order, so sharing is correct, only
                // the deltas are less tight.
                conn.next_overflow = conn.next_overflow.wrapping_add(1);
                (conn.next_overflow % self.options.contexts) as i32
            }
        };
        let update = match conn.encoder.encode(context, bag) {
            Ok(u) => u,
            Err(e) => {
                // A full dictionary only goes away with a new stream.
                state.conn = None;
                return Err(Error::Encode(e));
            }
        };
        let index = conn.next_index;
        conn.next_index += 1;
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = conn.shared.pending.lock();
            if let Some(reason) = &pending.broken {
                return Err(Error::Transport {
                    method: M::NAME,
                    reason: reason.clone(),
                });
            }
            pending.waiting.insert(index, tx);
        }
        if conn.tx.send(build(index, update)).is_err() {
            conn.shared.pending.lock().waiting.remove(&index);
            return Err(Error::Transport {
                method: M::NAME,
                reason: "stream closed".into(),
            });
        }
        Ok(Call {
            rx,
            index,
            generation: conn.generation,
            context,
            shared: conn.shared.clone(),
        })
    }

    /// Waits for the answer to `call`, at most `timeout`.
    pub(crate) async fn wait(
        &self,
        call: Call<M::Resp>,
        timeout: Duration,
    ) -> Result<M::Resp, Error> {
        let Call {
            rx,
            index,
            generation,
            context,
            shared,
        } = call;
        let answer = match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(Error::Transport {
                method: M::NAME,
                reason: "stream closed".into(),
            }),
            Err(_) => {
                shared.pending.lock().waiting.remove(&index);
                Err(Error::Timeout {
                    method: M::NAME,
                    timeout_ms: timeout.as_millis() as u64,
                })
            }
        };
        let refused = matches!(&answer, Ok(r) if M::code(r) == code::INVALID_ARGUMENT);
        self.release(generation, context, refused);
        answer
    }

    /// Gives a context back to the pool. A refused update left the server's
    /// context as it was before it, so the next update of it is a full one.
    fn release(&self, generation: u64, context: i32, refused: bool) {
        let mut state = self.state.lock();
        if let Some(conn) = state.conn.as_mut()
            && conn.generation == generation
        {
            if refused {
                conn.encoder.reset(context);
            }
            if !conn.free_contexts.contains(&context) {
                conn.free_contexts.push(context);
            }
        }
    }

    /// Streams opened so far.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn open(&self) -> Conn<M> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
        self.opened.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            pending: Mutex::new(Pending {
                waiting: HashMap::new(),
                broken: None,
            }),
            answered: AtomicBool::new(false),
        });
        tokio::spawn(read::<M>(
            MixerClient::new(self.channel.clone()),
            Requests(rx),
            shared.clone(),
        ));
        Conn {
            generation,
            tx,
            shared,
            encoder: Encoder::new(),
            next_index: 1,
            // Popped from the end: context 0 first.
            free_contexts: (0..self.options.contexts as i32).rev().collect(),
            next_overflow: 0,
        }
    }
}

/// Reads answers and hands each to its caller; when the stream ends, fails
/// every call still waiting.
async fn read<M: Method>(
    client: MixerClient<Channel>,
    requests: Requests<M::Req>,
    shared: Arc<Shared<M::Resp>>,
) {
    let reason = match M::open(client, requests).await {
        Err(status) => status.message().to_string(),
        Ok(mut answers) => loop {
            match answers.message().await {
                Ok(Some(resp)) => {
                    shared.answered.store(true, Ordering::Relaxed);
                    let tx = shared.pending.lock().waiting.remove(&M::index(&resp));
                    if let Some(tx) = tx {
                        let _ = tx.send(Ok(resp));
                    }
                }
                Ok(None) => break "the server closed the stream".to_string(),
                Err(status) => break status.message().to_string(),
            }
        },
    };
    tracing::debug!(method = M::NAME, %reason, "Mixer stream ended");
    let waiting = {
        let mut pending = shared.pending.lock();
        pending.broken = Some(reason.clone());
        std::mem::take(&mut pending.waiting)
    };
    for (_, tx) in waiting {
        let _ = tx.send(Err(Error::Transport {
            method: M::NAME,
            reason: reason.clone(),
        }));
    }
}
