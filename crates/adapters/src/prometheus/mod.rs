//! The `prometheus` adapter.
