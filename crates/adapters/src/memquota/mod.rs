//! The `memquota` adapter.
