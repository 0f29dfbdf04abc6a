//! An embeddable Mixer: the policy (Check), quota (Quota) and telemetry
//! (Report) engine that service-mesh proxies call on every request.
//!
//! This facade re-exports the workspace's crates, so a host can depend on
//! `mixer` alone:
//!
//! | module | crate | what it is |
//! |---|---|---|
//! | [`proto`] | `mixer-proto` | the `istio.mixer.v1` messages and (feature `grpc`) the tonic service |
//! | [`attributes`] | `mixer-attributes` | values, interned names, bags, the stream decoder and delta encoder |
//! | [`config`] | `mixer-config` | manifests, the expression language, loading and validating config |
//! | [`adapters`] | `mixer-adapters` | templates, the adapter contract and registry, the eight built-in adapters |
//! | [`dispatch`] | `mixer-dispatch` | compiled snapshots, check/quota/report dispatch, report queues, hot reload, the check cache |
//! | `server` (feature `grpc`) | `mixer-server` | the gRPC host of the three Generation-1 streams, config watching, monitoring |
//! | `client` (feature `grpc`) | `mixer-client` | the proxy-side client: delta encoding, check cache, quota prefetch, report batching |
//!
//! ```
//! use mixer::attributes::{Bag, OwnedBag, Value};
//!
//! let bag = OwnedBag::new().with("request.method", Value::String("GET".into()));
//! assert_eq!(bag.get_by_name("request.method").unwrap().to_string(), "GET");
//! ```

pub use mixer_adapters as adapters;
pub use mixer_attributes as attributes;
#[cfg(feature = "grpc")]
pub use mixer_client as client;
pub use mixer_config as config;
pub use mixer_dispatch as dispatch;
pub use mixer_proto as proto;
#[cfg(feature = "grpc")]
pub use mixer_server as server;
