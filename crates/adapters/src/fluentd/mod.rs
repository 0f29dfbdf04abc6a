//! The `fluentd` adapter: log entries sent to Fluentd in the Forward
//! protocol (msgpack over TCP).
//!
//! | param | default |
//! |---|---|
//! | `address` (`host:port`) | `localhost:24224` |
//! | `integerDuration` (durations as integer milliseconds, not `1.5s`) | false |
//! | `instanceBufferSize` (queue length, in instances) | 1024 |
//! | `maxBatchSizeBytes` | 8 MiB |
//! | `pushIntervalDuration` | 1m |
//! | `pushTimeoutDuration` (limit on a connect and on a write) | 1m |
//!
//! Each entry is `[EventTime, record]`: EventTime is msgpack ext type 0
//! holding big-endian 32-bit seconds and nanoseconds (the instance's
//! timestamp, or now); the record is the variables plus `severity`. The tag
//! is the instance name, or the variable `tag` when there is one, which is
//! then removed from the record and `name` (the instance name) added.
//! Entries of one flush are sent in Forward mode, one message per tag:
//! `[tag, [[time, record], ...], {"size": n}]`.
//!
//! Report never waits: instances go into a bounded queue
//! (`instanceBufferSize`), and a full queue drops them, counts them
//! (`dropped`) and answers [`Error::QueueFull`]. A
//! worker batches entries and flushes when `maxBatchSizeBytes` is reached,
//! every `pushIntervalDuration`, and on close. A failed connect or write
//! keeps the batch and retries after a backoff (100ms doubling to 10s); while
//! Fluentd is away, what cannot fit in `maxBatchSizeBytes` is dropped and
//! counted, so memory stays bounded.
//!
//! ```
//! use mixer_adapters::{BuildEnv, Params, Registry};
//! use serde_json::json;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mixer_adapters::Error> {
//! let params = Params::new(json!({"address": "127.0.0.1:24224", "pushIntervalDuration": "5s"}));
//! let handler = Registry::builtin()
//!     .validate("fluentd", &params)?
//!     .build(&BuildEnv::current())?;
//! handler.close().resolve().await
//! # }
//! ```

mod encode;
mod handler;
mod params;
mod worker;

#[cfg(test)]
mod tests;

use std::sync::Arc;

pub use handler::FluentdHandler;
pub use params::{
    DEFAULT_ADDRESS, DEFAULT_INSTANCE_BUFFER_SIZE, DEFAULT_MAX_BATCH_SIZE_BYTES,
    DEFAULT_PUSH_INTERVAL, DEFAULT_PUSH_TIMEOUT, FluentdParams, MAX_INSTANCE_BUFFER_SIZE,
};
pub use worker::{MAX_BACKOFF, MIN_BACKOFF};

use crate::template::Template;
use crate::{Adapter, BuildEnv, Error, Handler, HandlerBuilder, Params};

/// The adapter's name.
pub const NAME: &str = "fluentd";

/// The `fluentd` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(Fluentd)
}

#[derive(Debug)]
struct Fluentd;

impl Adapter for Fluentd {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "sends log entries to Fluentd in the Forward protocol"
    }
    fn templates(&self) -> &[Template] {
        &[Template::LogEntry]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(FluentdParams::parse(params)?))
    }
}

impl HandlerBuilder for FluentdParams {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(FluentdHandler::build(*self, env)?))
    }
}
