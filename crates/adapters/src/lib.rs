//! Templates, the adapter contract and registry, and the eight built-in
//! adapters of the Mixer. Each adapter lives in its own module folder behind
//! its own cargo feature (all on by default).

#[cfg(feature = "denier")]
pub mod denier;
#[cfg(feature = "fluentd")]
pub mod fluentd;
#[cfg(feature = "list")]
pub mod list;
#[cfg(feature = "memquota")]
pub mod memquota;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "redisquota")]
pub mod redisquota;
#[cfg(feature = "statsd")]
pub mod statsd;
#[cfg(feature = "stdio")]
pub mod stdio;
