//! The `fluentd` adapter.
