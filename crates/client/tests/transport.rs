//! The transport against a scripted peer (a tonic server built from
//! mixer-proto's `MixerServer`): answers out of order reach their callers,
//! `request_index` counts from 1 per stream, and a stream the server closes
//! is re-opened with a fresh dictionary.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use mixer_attributes::{Bag, OwnedBag, StreamState, Value};
use mixer_client::{CacheKeys, Client, Options, Source};
use mixer_proto::google::rpc::Status as RpcStatus;
use mixer_proto::istio::mixer::v1::mixer_server::{Mixer, MixerServer};
use mixer_proto::istio::mixer::v1::{
    CheckRequest, CheckResponse, QuotaRequest, QuotaResponse, ReportRequest, ReportResponse,
};
use prost::Message;
use tokio::sync::mpsc;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};

/// What the peer saw of each request: its stream, index, and whether it
/// carried a dictionary.
type Seen = Arc<Mutex<Vec<(usize, i64, bool)>>>;

struct Rx<T>(mpsc::UnboundedReceiver<T>);
impl<T> Stream for Rx<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Answers checks in batches of `batch`, last first; ends each stream
/// after `close_after` answers. The answer's message is the request's
/// `request.path` as the peer decoded it.
struct Peer {
    batch: usize,
    close_after: Option<usize>,
    seen: Seen,
    streams: Arc<Mutex<usize>>,
}

#[tonic::async_trait]
impl Mixer for Peer {
    type CheckStream = Answers<CheckResponse>;
    type ReportStream = Answers<ReportResponse>;
    type QuotaStream = Answers<QuotaResponse>;

    async fn check(
        &self,
        request: Request<Streaming<CheckRequest>>,
    ) -> Result<Response<Self::CheckStream>, Status> {
        let mut incoming = request.into_inner();
        let (tx, rx) = mpsc::unbounded_channel();
        let (batch, close_after, seen) = (self.batch, self.close_after, self.seen.clone());
        let stream = {
            let mut n = self.streams.lock().unwrap();
            *n += 1;
            *n
        };
        tokio::spawn(async move {
            let mut state = StreamState::new();
            let mut held = Vec::new();
            let mut answered = 0;
            while let Ok(Some(req)) = incoming.message().await {
                let update = req.attribute_update.unwrap_or_default();
                seen.lock().unwrap().push((
                    stream,
                    req.request_index,
                    !update.dictionary.is_empty(),
                ));
                let result = match state.apply_bytes(&update.encode_to_vec()) {
                    Ok(bag) => RpcStatus {
                        code: 0,
                        message: bag
                            .get_by_name("request.path")
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        details: vec![],
                    },
                    Err(e) => RpcStatus {
                        code: 3,
                        message: e.to_string(),
                        details: vec![],
                    },
                };
                held.push(CheckResponse {
                    request_index: req.request_index,
                    attribute_update: None,
                    result: Some(result),
                    expiration: None,
                });
                if held.len() == batch {
                    for answer in held.drain(..).rev() {
                        let _ = tx.send(Ok(answer));
                        answered += 1;
                    }
                }
                if close_after.is_some_and(|n| answered >= n) {
                    break;
                }
            }
        });
        Ok(Response::new(Box::pin(Rx(rx))))
    }

    async fn report(
        &self,
        _: Request<Streaming<ReportRequest>>,
    ) -> Result<Response<Self::ReportStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }

    async fn quota(
        &self,
        _: Request<Streaming<QuotaRequest>>,
    ) -> Result<Response<Self::QuotaStream>, Status> {
        Err(Status::unimplemented("not in this test"))
    }
}

async fn serve(batch: usize, close_after: Option<usize>) -> (String, Seen, Arc<Mutex<usize>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let streams = Arc::new(Mutex::new(0));
    let peer = Peer {
        batch,
        close_after,
        seen: seen.clone(),
        streams: streams.clone(),
    };
    tokio::spawn(async move {
        let incoming = tonic::codegen::tokio_stream::wrappers::TcpListenerStream::new(listener);
        tonic::transport::Server::builder()
            .add_service(MixerServer::new(peer))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    (addr.to_string(), seen, streams)
}

fn client(addr: &str) -> Client {
    let mut o = Options::new(addr);
    o.cache_keys = CacheKeys::Disabled;
    o.timeout = Duration::from_secs(5);
    Client::new(o).unwrap()
}

fn path(p: &str) -> OwnedBag {
    OwnedBag::new()
        .with("request.path", Value::String(p.into()))
        .with("request.size", Value::Int64(p.len() as i64))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_out_of_order_reach_their_callers() {
    let (addr, seen, _) = serve(8, None).await;
    let client = client(&addr);
    let mut calls = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        calls.push(tokio::spawn(async move {
            let want = format!("/p{i}");
            let r = client.check(&path(&want)).await;
            (want, r)
        }));
    }
    for call in calls {
        let (want, r) = call.await.unwrap();
        assert_eq!(r.source, Source::Remote);
        assert_eq!(&*r.status.message, want, "each caller gets its own answer");
    }
    let seen = seen.lock().unwrap().clone();
    let mut indices: Vec<i64> = seen.iter().map(|s| s.1).collect();
    indices.sort();
    assert_eq!(
        indices,
        (1..=8).collect::<Vec<_>>(),
        "a per-stream counter from 1"
    );
    assert!(seen.iter().all(|s| s.0 == 1), "one stream");
    let first = seen.iter().find(|s| s.1 == 1).unwrap();
    assert!(first.2, "the first request carries the dictionary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stream_is_reopened_with_a_fresh_dictionary() {
    let (addr, seen, streams) = serve(1, Some(2)).await;
    let client = client(&addr);
    for p in ["/a", "/b"] {
        assert_eq!(&*client.check(&path(p)).await.status.message, p);
    }
    // Let the client see the end of the stream.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = client.check(&path("/a")).await;
    assert_eq!(r.source, Source::Remote);
    assert_eq!(
        &*r.status.message, "/a",
        "decoded by the new stream's state"
    );
    assert_eq!(*streams.lock().unwrap(), 2);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(1, 1, true), (1, 2, false), (2, 1, true)],
        "the new stream starts at index 1 with the whole dictionary again"
    );
    assert_eq!(client.statistics().streams_opened, 2);
}

#[tokio::test(flavor = "current_thread")]
async fn transport_errors_are_retried_with_backoff_and_counted() {
    // A port nothing listens on.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let mut o = Options::new(addr);
    o.cache_keys = CacheKeys::Disabled;
    o.timeout = Duration::from_millis(500);
    o.retry.max_retries = 2;
    o.retry.backoff.base = Duration::from_millis(40);
    let client = Client::new(o).unwrap();
    let started = std::time::Instant::now();
    let r = client.check(&path("/x")).await;
    assert!(r.status.is_ok(), "fail open after the retries");
    assert_eq!(r.source, Source::Policy);
    // Two jittered waits: at least half of 40 ms and of 80 ms.
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "{:?}",
        started.elapsed()
    );
    let s = client.statistics();
    assert_eq!(s.remote_check_calls, 3);
    assert_eq!(s.remote_retries, 2);
    assert_eq!(s.remote_send_errors, 3);
    assert_eq!(s.remote_successes, 0);
    assert_eq!(s.check_cache_misses_allow, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_times_out_per_call_under_either_policy() {
    // Holds every request, answers none.
    let (addr, _, _) = serve(usize::MAX, None).await;
    for (policy, want) in [
        (mixer_client::FailPolicy::Open, mixer_proto::code::OK),
        (
            mixer_client::FailPolicy::Close,
            mixer_proto::code::DEADLINE_EXCEEDED,
        ),
    ] {
        let mut o = Options::new(addr.clone());
        o.cache_keys = CacheKeys::Disabled;
        o.timeout = Duration::from_millis(300);
        o.fail_policy = policy;
        // A timeout spent the call's budget: retries are for transport
        // errors only.
        o.retry.max_retries = 2;
        let client = Client::new(o).unwrap();
        let started = std::time::Instant::now();
        let r = client.check(&path("/slow")).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(800),
            "{took:?}"
        );
        assert_eq!(r.status.code, want, "{policy:?}: {}", r.status);
        assert_eq!(r.source, Source::Policy);
        let s = client.statistics();
        assert_eq!(
            (s.remote_timeouts, s.remote_retries),
            (1, 0),
            "timeouts are not retried"
        );
    }
}

/// The client is shared across tasks: a compile-time check.
#[test]
fn client_and_its_futures_are_send_and_sync() {
    fn shareable<T: Clone + Send + Sync + 'static>() {}
    fn send<F: std::future::Future + Send>(_: F) {}
    shareable::<Client>();
    let _ = |c: Client, b: OwnedBag| {
        send(async move {
            c.check(&b).await;
            c.quota(&b, "q", 1).await;
            c.report(&b);
            c.flush().await;
        })
    };
}
