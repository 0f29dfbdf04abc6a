//! The `denier` adapter.
