//! What calls return.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mixer_proto::code;

/// A canonical status: code and message.
///
/// The message is shared so that answers from the cache are handed out
/// without copying (a cache hit allocates nothing).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// A canonical gRPC code (`mixer_proto::code`).
    pub code: i32,
    /// Why, for anything but OK.
    pub message: Arc<str>,
}

impl Status {
    /// OK with no message.
    pub fn ok() -> Status {
        Status {
            code: code::OK,
            message: Arc::from(""),
        }
    }

    /// A status with `code` and `message`.
    pub fn new(code: i32, message: impl Into<Arc<str>>) -> Status {
        Status {
            code,
            message: message.into(),
        }
    }

    /// True for OK.
    pub fn is_ok(&self) -> bool {
        self.code == code::OK
    }

    pub(crate) fn from_proto(s: Option<mixer_proto::google::rpc::Status>) -> Status {
        match s {
            Some(s) => Status::new(s.code, s.message),
            None => Status::ok(),
        }
    }
}

/// `PERMISSION_DENIED: message`, or `OK`.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&code::name(self.code))?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

/// Where an answer came from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The server answered this call.
    Remote,
    /// A cached answer of the server (check cache or prefetched quota).
    Cache,
    /// The server could not be reached and the failure policy decided.
    Policy,
}

/// The answer to a check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// OK to go ahead; anything else is a denial.
    pub status: Status,
    /// How long the server allows this answer to be reused for the same
    /// inputs (zero: not at all).
    pub expiration: Duration,
    /// Where the answer came from.
    pub source: Source,
}

/// The answer to a quota allocation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaResult {
    /// OK when `granted > 0` or nothing was asked; `RESOURCE_EXHAUSTED` when
    /// refused.
    pub status: Status,
    /// The amount granted.
    pub granted: i64,
    /// How long the grant stays valid.
    pub expiration: Duration,
    /// Where the answer came from.
    pub source: Source,
}
