//! The Mixer's reusable gRPC host: the three Generation-1 bidirectional
//! streams of `istio.mixer.v1.Mixer` (`Check`, `Quota`, `Report`) served
//! from a [`Dispatcher`](mixer_dispatch::Dispatcher), with the limits,
//! load shedding, config watching, self-metrics and graceful shutdown that a
//! standalone server needs.
//!
//! - [`MixerService`]: the service alone, for a host's own tonic server.
//!   Per stream it keeps the attribute decoder state (dictionary and
//!   contexts); it applies each request's update in order of arrival,
//!   straight from the wire bytes, and answers by `request_index` as
//!   dispatches complete, several in flight per stream.
//! - [`Server`]: the service on a listener, with `/metrics`, `/health` and
//!   `/ready` on a monitoring address, a watched config directory, and
//!   [`Server::serve_until`] for a graceful shutdown.
//! - [`Options`]: every limit, documented.
//! - TLS and mutual TLS on the gRPC listener with the `tls` cargo feature
//!   (rustls with ring; off by default): `Builder::tls(TlsOptions { .. })`.
//!
//! # What a client sees
//!
//! | situation | answer |
//! |---|---|
//! | a decision | the dispatcher's status (a denial keeps its adapter's code), `expiration` the merged validity; quota `amount` the grant |
//! | malformed request, bad attribute update, over a [`Limits`](mixer_attributes::Limits) bound, quota without a name | that request answered `INVALID_ARGUMENT` naming the problem; context unchanged; the stream goes on |
//! | server saturated ([`Options::max_in_flight`]) | that request answered `UNAVAILABLE` "server overloaded"; its update still applied |
//! | too many streams, or shutting down | the new stream refused with `UNAVAILABLE` |
//! | message over [`Options::max_message_bytes`] | that request answered `INVALID_ARGUMENT` naming its size and the limit; update not applied; the stream goes on |
//! | message over [`Options::message_ceiling_bytes`] | that stream ends with `OUT_OF_RANGE` (nothing buffered); other streams unaffected |
//! | graceful shutdown | each stream answers what it has in flight, then ends OK |
//!
//! ```
//! use mixer_adapters::Registry;
//! use mixer_config::load::Documents;
//! use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
//! use mixer_proto::istio::mixer::v1::{Attributes, CheckRequest, mixer_client::MixerClient};
//! use mixer_server::Server;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The host's own dispatcher, with its adapters and its configuration.
//! let dispatcher = Dispatcher::new(
//!     Registry::builtin(),
//!     tokio::runtime::Handle::current(),
//!     DispatchOptions::default(),
//! );
//! let mut docs = Documents::new();
//! docs.add_yaml("deny.yaml", r#"
//! apiVersion: config.istio.io/v1alpha2
//! kind: handler
//! metadata: {name: no, namespace: istio-system}
//! spec: {compiledAdapter: denier, params: {status: {code: 7, message: go away}}}
//! ---
//! apiVersion: config.istio.io/v1alpha2
//! kind: instance
//! metadata: {name: nothing, namespace: istio-system}
//! spec: {compiledTemplate: checknothing}
//! ---
//! apiVersion: config.istio.io/v1alpha2
//! kind: rule
//! metadata: {name: deny-admin, namespace: istio-system}
//! spec:
//!   match: request.path == "/admin"
//!   actions: [{handler: no, instances: [nothing]}]
//! "#);
//! dispatcher.load(docs)?;
//!
//! let server = Server::builder(dispatcher)
//!     .address("127.0.0.1:0".parse()?)
//!     .bind()
//!     .await?;
//! let url = format!("http://{}", server.local_addr());
//! let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
//! let serving = tokio::spawn(server.serve_until(async { let _ = stopped.await; }));
//!
//! // A client stream: the first update carries the dictionary.
//! let mut update = Attributes::default();
//! update.dictionary.insert(0, "request.path".into());
//! update.string_attributes.insert(0, "/admin".into());
//! let requests = tokio_stream::iter([CheckRequest { request_index: 1, attribute_update: Some(update) }]);
//! let mut client = MixerClient::connect(url).await?;
//! let mut answers = client.check(requests).await?.into_inner();
//! let answer = answers.message().await?.expect("one answer");
//! assert_eq!(answer.request_index, 1);
//! assert_eq!(answer.result.unwrap().message, "no.handler.istio-system: go away");
//!
//! stop.send(()).ok();
//! let done = serving.await??;
//! assert!(done.drained && done.flushed);
//! # Ok(())
//! # }
//! ```

mod codec;
mod error;
mod monitor;
mod options;
mod server;
mod service;
mod shared;
mod stats;
mod status;
mod stream;
#[cfg(feature = "tls")]
mod tls;
mod watch;

pub use error::Error;
pub use options::Options;
#[cfg(feature = "tls")]
pub use server::TlsOptions;
pub use server::{Builder, DEFAULT_ADDRESS, DEFAULT_MONITORING_ADDRESS, Server, Shutdown};
pub use service::MixerService;
pub use shared::Method;
pub use stats::{MethodCounts, ServerStats};
pub use watch::load_dir;
