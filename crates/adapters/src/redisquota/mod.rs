//! The `redisquota` adapter.
