//! The `list` adapter.
