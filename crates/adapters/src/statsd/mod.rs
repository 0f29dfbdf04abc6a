//! The `statsd` adapter: metric instances sent as statsd lines over UDP,
//! several lines per datagram.
//!
//! | param | default |
//! |---|---|
//! | `address` (`host:port`) | `localhost:8125` |
//! | `prefix` (prepended as is: `foo.` makes `bar` into `foo.bar`) | empty |
//! | `flushDuration` | 300ms |
//! | `flushBytes` (largest datagram, 1 to 65507) | 512 |
//! | `samplingRate` (0 < rate <= 1; lines carry `\|@rate` below 1) | 1 |
//! | `metrics` (instance name -> `type`: COUNTER, GAUGE, DISTRIBUTION; `nameTemplate` such as `{{.apiMethod}}-{{.responseCode}}`) | none |
//!
//! Lines: counter `name:v|c`, gauge `name:v|g`, distribution of a duration
//! `name:ms|ms`, of anything else `name:v|h`. A metric's name is the prefix
//! plus its `nameTemplate` rendered over the instance's dimensions (parsed
//! once, at validation), or plus the instance name without a template.
//! Lines are packed into datagrams of at most `flushBytes`, sent when the
//! next line would not fit and every `flushDuration`; sends never wait (a
//! full socket buffer drops the datagram and counts its lines as `dropped`).
//!
//! Differences from the original, all deliberate: doubles are sent as
//! doubles (the original truncated them to integers); an integer
//! DISTRIBUTION is a histogram (`|h`), not a counter; durations keep
//! sub-millisecond precision; a negative gauge is sent as `0` then the
//! value, since a signed gauge means a delta to statsd; `:`, `|`, `@` and
//! line breaks in rendered names become `_`.
//!
//! ```
//! use mixer_adapters::{BuildEnv, Params, Registry};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mixer_adapters::Error> {
//! let params = Params::new(json!({
//!     "address": "127.0.0.1:8125", "prefix": "mesh.",
//!     "metrics": {"requestcount.instance.istio-system":
//!         {"type": "COUNTER", "nameTemplate": "{{.apiMethod}}-{{.responseCode}}"}},
//! }));
//! let handler = Registry::builtin()
//!     .validate("statsd", &params)?
//!     .build(&BuildEnv::current())?;
//! handler.close().resolve().await
//! # }
//! ```

mod handler;
mod packer;
mod params;
mod template;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use handler::StatsdHandler;
pub use params::{
    DEFAULT_ADDRESS, DEFAULT_FLUSH_BYTES, DEFAULT_FLUSH_DURATION, MAX_FLUSH_BYTES, MetricInfo,
    MetricType, StatsdParams,
};
pub use template::NameTemplate;

use crate::template::Template;
use crate::{Adapter, BuildEnv, Error, Handler, HandlerBuilder, Params};

/// The adapter's name.
pub const NAME: &str = "statsd";

/// The `statsd` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(Statsd)
}

#[derive(Debug)]
struct Statsd;

impl Adapter for Statsd {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "sends metric instances to statsd over UDP"
    }
    fn templates(&self) -> &[Template] {
        &[Template::Metric]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(StatsdParams::parse(params)?))
    }
}

impl HandlerBuilder for StatsdParams {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(StatsdHandler::build(*self, env)?))
    }
}
