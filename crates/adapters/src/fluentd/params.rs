//! The fluentd adapter's params and their validation.

use std::time::Duration;

use crate::params::{Fields, ParamErrors};
use crate::{Error, Params};

/// The default Fluentd address.
pub const DEFAULT_ADDRESS: &str = "localhost:24224";
/// The default queue length, in instances.
pub const DEFAULT_INSTANCE_BUFFER_SIZE: usize = 1024;
/// The longest queue allowed, in instances.
pub const MAX_INSTANCE_BUFFER_SIZE: usize = 1 << 20;
/// The default size of one flush.
pub const DEFAULT_MAX_BATCH_SIZE_BYTES: usize = 8 << 20;
/// The default flush interval.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(60);
/// The default connect and write timeout.
pub const DEFAULT_PUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// Validated fluentd params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FluentdParams {
    /// `host:port` of the Fluentd forward input.
    pub address: String,
    /// Durations as integer milliseconds instead of text such as `1.5s`.
    pub integer_duration: bool,
    /// Instances the queue holds before new ones are dropped and counted.
    pub instance_buffer_size: usize,
    /// Encoded bytes that trigger a flush (and bound what is kept while
    /// Fluentd is unreachable).
    pub max_batch_size_bytes: usize,
    /// How often pending entries are flushed.
    pub push_interval: Duration,
    /// The limit on a connect and on a write.
    pub push_timeout: Duration,
}

impl FluentdParams {
    /// Reads and validates params.
    pub fn parse(params: &Params) -> Result<FluentdParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let address = root.host_port("address", DEFAULT_ADDRESS, &mut errs);
        let integer_duration = root.bool("integerDuration", &mut errs).unwrap_or(false);
        let size =
            |key: &'static str, default: usize, max: usize, errs: &mut ParamErrors| match root
                .int(key, errs)
            {
                None => default,
                Some(n) if n > 0 && n as u64 <= max as u64 => n as usize,
                Some(n) => {
                    errs.push(
                        root.path_of(key),
                        format!("must be between 1 and {max}, got {n}"),
                    );
                    default
                }
            };
        let instance_buffer_size = size(
            "instanceBufferSize",
            DEFAULT_INSTANCE_BUFFER_SIZE,
            MAX_INSTANCE_BUFFER_SIZE,
            &mut errs,
        );
        let max_batch_size_bytes = size(
            "maxBatchSizeBytes",
            DEFAULT_MAX_BATCH_SIZE_BYTES,
            1 << 30,
            &mut errs,
        );
        let duration = |key: &'static str, default: Duration, errs: &mut ParamErrors| match root
            .duration(key, errs)
        {
            None => default,
            Some(d) if d.is_zero() => {
                errs.push(root.path_of(key), "must be greater than 0");
                default
            }
            Some(d) => d,
        };
        let push_interval = duration("pushIntervalDuration", DEFAULT_PUSH_INTERVAL, &mut errs);
        let push_timeout = duration("pushTimeoutDuration", DEFAULT_PUSH_TIMEOUT, &mut errs);
        root.finish(&mut errs);
        errs.into_result(
            super::NAME,
            FluentdParams {
                address,
                integer_duration,
                instance_buffer_size,
                max_batch_size_bytes,
                push_interval,
                push_timeout,
            },
        )
    }
}
