//! The `statsd` adapter.
