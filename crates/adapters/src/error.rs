//! The crate's one error type.

use std::fmt;
use std::time::Duration;

use mixer_proto::code;

/// One problem with an adapter's params, naming the field it is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Where the problem is, from the params' root: `quotas[0].maxAmount`
    /// (empty for the params object itself).
    pub path: String,
    /// What is wrong, in words.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Everything that can go wrong in this crate: at validation, at build, or
/// while a handler serves a request.
///
/// Request-time errors are *adapter errors*, not denials: the dispatcher
/// reports them with [`Error::code`] (`UNAVAILABLE` or `INTERNAL`) so that
/// the client's fail-open or fail-close policy decides.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The params failed validation. Every problem found is listed, each
    /// naming its field.
    #[error("invalid params for adapter `{adapter}`: {}", join(errors))]
    InvalidParams {
        /// The adapter whose params these are.
        adapter: String,
        /// Every problem found, in field order.
        errors: Vec<FieldError>,
    },
    /// No adapter is registered under this name.
    #[error("no adapter named `{0}` is registered")]
    UnknownAdapter(String),
    /// Two adapters were registered under one name.
    #[error("an adapter named `{0}` is already registered")]
    DuplicateAdapter(String),
    /// A handler was asked to serve a kind of request its adapter does not
    /// support (a routing bug in the caller).
    #[error("adapter `{adapter}` does not support {what}")]
    Unsupported {
        /// The adapter (or handler) asked.
        adapter: String,
        /// What it was asked for: a template or an operation.
        what: String,
    },
    /// Building a handler failed for a reason outside its params (a port
    /// already in use, a file that cannot be opened).
    #[error("cannot build handler: {0}")]
    Build(String),
    /// The backend or data a handler needs is not there: Redis unreachable,
    /// no list fetched yet or the list expired. Maps to `UNAVAILABLE`.
    #[error("{0}")]
    Unavailable(String),
    /// A backend call did not finish in time. Maps to `UNAVAILABLE`.
    #[error("{what} timed out after {}", mixer_attributes::format_duration(*.after))]
    Timeout {
        /// The call that timed out.
        what: String,
        /// The timeout that expired.
        after: Duration,
    },
    /// The backend answered with an error (a script error, a protocol
    /// violation). Maps to `INTERNAL`.
    #[error("backend error: {0}")]
    Backend(String),
    /// A report handler's queue was full and the batch was dropped (and
    /// counted in the handler's `dropped` counter). Maps to `UNAVAILABLE`.
    #[error("queue full: dropped {dropped} instance(s)")]
    QueueFull {
        /// Instances dropped.
        dropped: usize,
    },
    /// A bug or an impossible state. Maps to `INTERNAL`.
    #[error("internal error: {0}")]
    Internal(String),
}

fn join(errors: &[FieldError]) -> String {
    let mut out = String::new();
    for (i, e) in errors.iter().enumerate() {
        if i > 0 {
            out.push_str("; ");
        }
        out.push_str(&e.to_string());
    }
    out
}

impl Error {
    /// The `google.rpc.Code` a server reports this error with.
    pub fn code(&self) -> i32 {
        match self {
            Error::InvalidParams { .. } | Error::UnknownAdapter(_) | Error::DuplicateAdapter(_) => {
                code::INVALID_ARGUMENT
            }
            Error::Unavailable(_) | Error::Timeout { .. } | Error::QueueFull { .. } => {
                code::UNAVAILABLE
            }
            Error::Unsupported { .. }
            | Error::Build(_)
            | Error::Backend(_)
            | Error::Internal(_) => code::INTERNAL,
        }
    }

    /// The field errors of an [`Error::InvalidParams`]; empty otherwise.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::InvalidParams { errors, .. } => errors,
            _ => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_params_lists_every_field() {
        let e = Error::InvalidParams {
            adapter: "memquota".into(),
            errors: vec![
                FieldError {
                    path: "quotas[0].maxAmount".into(),
                    message: "must be greater than 0".into(),
                },
                FieldError {
                    path: String::new(),
                    message: "must be an object".into(),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "invalid params for adapter `memquota`: quotas[0].maxAmount: must be greater than 0; \
             must be an object"
        );
        assert_eq!(e.code(), code::INVALID_ARGUMENT);
        assert_eq!(e.field_errors().len(), 2);
    }

    #[test]
    fn request_time_codes() {
        let t = Error::Timeout {
            what: "redis call".into(),
            after: Duration::from_millis(250),
        };
        assert_eq!(t.to_string(), "redis call timed out after 250ms");
        assert_eq!(t.code(), code::UNAVAILABLE);
        assert_eq!(Error::Unavailable("x".into()).code(), code::UNAVAILABLE);
        assert_eq!(Error::Internal("x".into()).code(), code::INTERNAL);
        assert_eq!(Error::Backend("x".into()).code(), code::INTERNAL);
    }
}
