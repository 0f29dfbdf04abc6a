//! The crate's error type.

/// Why a call to the Mixer did not produce an answer from the server.
///
/// These never reach a caller of [`crate::Client::check`] or
/// [`crate::Client::quota`] as errors: the failure policy turns them into a
/// status (OK under fail open, `UNAVAILABLE` or `DEADLINE_EXCEEDED` under
/// fail close). They are what [`crate::Client::new`] returns for a bad
/// address, and what the statistics count.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The configured address is not a usable gRPC endpoint.
    #[error("invalid Mixer address {address:?}: {reason}")]
    InvalidAddress {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An option is out of range.
    #[error("invalid client option `{field}`: {reason}")]
    InvalidOption {
        /// The option's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// [`crate::Client::new`] was called outside a tokio runtime (the client
    /// spawns its stream readers and report flusher on it).
    #[error("the Mixer client must be created inside a tokio runtime")]
    NoRuntime,
    /// A cache key is not `name` or `name/key`.
    #[error("invalid cache key {key:?}: {reason}")]
    InvalidCacheKey {
        /// The key as configured.
        key: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The stream could not be opened or broke while the call was pending.
    #[error("{method} stream to the Mixer failed: {reason}")]
    Transport {
        /// `Check`, `Report` or `Quota`.
        method: &'static str,
        /// The transport's description.
        reason: String,
    },
    /// The stream is down and the next re-open attempt is not due yet.
    #[error("{method} stream to the Mixer is down; next re-open in {retry_in_ms} ms")]
    Backoff {
        /// `Check`, `Report` or `Quota`.
        method: &'static str,
        /// Milliseconds until the next attempt.
        retry_in_ms: u64,
    },
    /// No answer within the per-call timeout.
    #[error("{method} call timed out after {timeout_ms} ms")]
    Timeout {
        /// `Check`, `Report` or `Quota`.
        method: &'static str,
        /// The configured timeout.
        timeout_ms: u64,
    },
    /// Too many calls are waiting for an answer on one stream.
    #[error("{method} stream has {limit} calls in flight already")]
    TooManyInFlight {
        /// `Check`, `Report` or `Quota`.
        method: &'static str,
        /// The configured bound.
        limit: usize,
    },
    /// The attributes could not be delta-encoded (a duration too long for
    /// the wire, a full dictionary).
    #[error("cannot encode attributes: {0}")]
    Encode(#[from] mixer_attributes::Error),
}

impl Error {
    /// True for failures of the connection (worth a retry), false for
    /// problems with the request itself.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Transport { .. } | Error::Backoff { .. } | Error::TooManyInFlight { .. }
        )
    }
}
