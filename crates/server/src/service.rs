//! [`MixerService`]: the `istio.mixer.v1.Mixer` gRPC service as a tower
//! service, for the server of this crate or a host's own tonic server.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use mixer_dispatch::Dispatcher;
use tonic::Streaming;
use tonic::body::Body;
use tonic::server::{Grpc, NamedService, StreamingService};

use crate::codec::{MixerCodec, RawRequest};
use crate::options::Options;
use crate::shared::Shared;
use crate::stats::ServerStats;
use crate::stream::{Check, Kind, MixerStream, Quota, Report};

/// The Mixer's three Generation-1 streams (`Check`, `Quota`, `Report`
/// under `istio.mixer.v1.Mixer`), served from a [`Dispatcher`].
///
/// Add it to any tonic server (`Server::builder().add_service(svc)`), or
/// let [`Server`](crate::Server) run it with the limits, monitoring and
/// config watching around it. Cheap to clone; clones share their streams'
/// counters and limits.
///
/// ```
/// use mixer_adapters::Registry;
/// use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
/// use mixer_server::{MixerService, Options};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let dispatcher = Dispatcher::new(
///     Registry::builtin(),
///     tokio::runtime::Handle::current(),
///     DispatchOptions::default(),
/// );
/// let service = MixerService::new(dispatcher, Options::default());
/// let router = tonic::transport::Server::builder().add_service(service.clone());
/// # drop(router);
/// // On the way down: every stream stops reading, answers what it has in
/// // flight and ends.
/// service.shutdown();
/// assert_eq!(service.stats().open_streams, 0);
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct MixerService {
    pub(crate) shared: Arc<Shared>,
}

impl MixerService {
    /// A service answering from `dispatcher` within `options`.
    pub fn new(dispatcher: Dispatcher, options: Options) -> MixerService {
        MixerService {
            shared: Arc::new(Shared::new(dispatcher, options)),
        }
    }

    /// The dispatcher it answers from.
    pub fn dispatcher(&self) -> &Dispatcher {
        &self.shared.dispatcher
    }

    /// Its options.
    pub fn options(&self) -> &Options {
        &self.shared.options
    }

    /// Its counters now.
    pub fn stats(&self) -> ServerStats {
        ServerStats::read(&self.shared)
    }

    /// Begins a graceful shutdown of the streams: each stops reading
    /// requests, answers those in flight, then ends with status OK; new
    /// streams are refused with `UNAVAILABLE`. Stopping the listener and
    /// flushing report queues is the host's part (or
    /// [`Server`](crate::Server)'s).
    pub fn shutdown(&self) {
        self.shared.begin_shutdown();
    }

    /// The Prometheus text exposition of the server's and the dispatcher's
    /// metrics (what the monitoring endpoint serves at `/metrics`).
    pub fn render_metrics(&self) -> String {
        crate::monitor::render(&self.shared)
    }
}

impl NamedService for MixerService {
    const NAME: &'static str = "istio.mixer.v1.Mixer";
}

/// The streaming handler of one method.
struct Method<K>(Arc<Shared>, std::marker::PhantomData<fn() -> K>);

impl<K: Kind> StreamingService<RawRequest> for Method<K> {
    type Response = K::Response;
    type ResponseStream = MixerStream<K>;
    type Future = Ready<Result<tonic::Response<MixerStream<K>>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<Streaming<RawRequest>>) -> Self::Future {
        ready(match self.0.open_stream() {
            Ok(()) => Ok(tonic::Response::new(MixerStream::new(
                self.0.clone(),
                request.into_inner(),
            ))),
            Err(refused) => Err(refused),
        })
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

async fn serve<K: Kind, B>(shared: Arc<Shared>, req: http::Request<B>) -> http::Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    // tonic refuses a message from its frame header, ending the stream, and
    // knows nothing of `request_index`: it gets the hard ceiling, and the
    // codec marks messages over the served limit, to be answered one by one.
    let o = &shared.options;
    let limit = o.max_message_bytes;
    let ceiling = o.message_ceiling_bytes.max(limit);
    let mut grpc = Grpc::new(MixerCodec::<K::Response>::new(K::SHAPE, limit))
        .apply_max_message_size_config(Some(ceiling), None);
    grpc.streaming(Method::<K>(shared, std::marker::PhantomData), req)
        .await
}

impl<B> tower_service::Service<http::Request<B>> for MixerService
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let shared = self.shared.clone();
        match req.uri().path() {
            "/istio.mixer.v1.Mixer/Check" => {
                Box::pin(async move { Ok(serve::<Check, B>(shared, req).await) })
            }
            "/istio.mixer.v1.Mixer/Quota" => {
                Box::pin(async move { Ok(serve::<Quota, B>(shared, req).await) })
            }
            "/istio.mixer.v1.Mixer/Report" => {
                Box::pin(async move { Ok(serve::<Report, B>(shared, req).await) })
            }
            _ => Box::pin(async move {
                Ok(
                    tonic::Status::unimplemented("no such method on istio.mixer.v1.Mixer")
                        .into_http(),
                )
            }),
        }
    }
}
