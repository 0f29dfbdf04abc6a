//! The `stdio` adapter.
