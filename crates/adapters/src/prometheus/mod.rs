//! The `prometheus` adapter: metric instances recorded as counters, gauges
//! and histograms, served at `/metrics` over HTTP in the Prometheus text
//! format.
//!
//! | param | default |
//! |---|---|
//! | `metrics[]`: `instanceName` (required), `name` (the instance name), `namespace` (`istio`), `description`, `kind` (COUNTER, GAUGE, DISTRIBUTION), `labelNames[]`, `buckets` (`explicitBuckets{bounds}`, `linearBuckets{numFiniteBuckets, width, offset}` or `exponentialBuckets{numFiniteBuckets, growthFactor, scale}`) | Prometheus' default buckets |
//! | `metricsExpirationPolicy{metricsExpiryDuration, expiryCheckIntervalDuration}` | no expiry; checks every half expiry |
//! | `host`, `port` | `0.0.0.0`, 42422 (0: any free port) |
//! | `maxSeriesPerMetric` | 100,000 |
//!
//! A metric is exposed as `<namespace>_<name>`, with `/`, `.` and space
//! turned into `_` (label names the same way; a label reads the dimension of
//! its configured name, or else the dimension whose name maps to it).
//! Values: integers and doubles as they are, durations in seconds, numeric
//! strings parsed; COUNTER adds, GAUGE sets, DISTRIBUTION observes. A value
//! that is none of these, NaN, or negative for a counter is not recorded
//! and is counted as `invalid_values`.
//!
//! Differences from the original, all deliberate:
//! - one bad metric definition is rejected alone (logged, counted as
//!   `rejected_metrics`) while the others work;
//! - handlers on one address share the endpoint; when two live handlers
//!   expose the same name (a redefinition during a config change), the
//!   newest is served and the other comes back if the newest closes;
//! - series per metric are capped (`maxSeriesPerMetric`), past which new
//!   series are dropped and counted (`dropped`).
//!
//! ```
//! use mixer_adapters::{BuildEnv, Params};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mixer_adapters::Error> {
//! let params = Params::new(json!({
//!     "port": 0, "host": "127.0.0.1",
//!     "metrics": [{"instanceName": "requestcount.instance.istio-system",
//!                  "name": "requests_total", "kind": "COUNTER",
//!                  "labelNames": ["response_code"]}],
//! }));
//! let handler = mixer_adapters::Registry::builtin()
//!     .validate("prometheus", &params)?
//!     .build(&BuildEnv::current())?;
//! handler.close().resolve().await
//! # }
//! ```

mod endpoint;
mod handler;
mod params;
mod series;
mod text;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use handler::PrometheusHandler;
pub use params::{
    DEFAULT_BUCKETS, DEFAULT_MAX_SERIES_PER_METRIC, DEFAULT_PORT, MAX_FINITE_BUCKETS, MetricDef,
    PrometheusParams, sanitize,
};

use crate::template::Template;
use crate::{Adapter, BuildEnv, Error, Handler, HandlerBuilder, Params};

/// The adapter's name.
pub const NAME: &str = "prometheus";

/// The `prometheus` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(Prometheus)
}

#[derive(Debug)]
struct Prometheus;

impl Adapter for Prometheus {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "serves metric instances at /metrics in the Prometheus text format"
    }
    fn templates(&self) -> &[Template] {
        &[Template::Metric]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(PrometheusParams::parse(params)?))
    }
}

impl HandlerBuilder for PrometheusParams {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(PrometheusHandler::build(*self, env)?))
    }
}
