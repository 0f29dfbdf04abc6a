//! The crate's one error type, and [`Problem`]: one located reason a
//! configuration was rejected.

use std::fmt;

/// One reason a configuration was rejected: where (source and line), which
/// object, which field, and what is wrong.
///
/// Printed as `quota.yaml:3: handler 'q.handler.ns' field
/// params.quotas[0].maxAmount: must be greater than 0`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `source:line`, when known.
    pub origin: Option<String>,
    /// The object (`handler 'q.handler.ns'`), when the problem is about one.
    pub subject: Option<String>,
    /// The field (`params.quotas[0].maxAmount`), when known.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    pub(crate) fn from_config(p: &mixer_config::Problem) -> Problem {
        Problem {
            origin: p.origin.as_ref().map(ToString::to_string),
            subject: p.subject.as_ref().map(ToString::to_string),
            field: p
                .field
                .as_ref()
                .filter(|f| !f.is_root())
                .map(ToString::to_string),
            message: p.error.to_string(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        match (&self.subject, &self.field) {
            (Some(s), Some(field)) => write!(f, "{s} field {field}: ")?,
            (Some(s), None) => write!(f, "{s}: ")?,
            (None, Some(field)) => write!(f, "field {field}: ")?,
            (None, None) => {}
        }
        f.write_str(&self.message)
    }
}

/// Everything that can go wrong in this crate.
///
/// Requests never fail with an error: a handler's failure is part of the
/// decision (a status naming the handler). Only a configuration can be
/// refused, and then the running one stays.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration was rejected; the running one is unchanged. Every
    /// problem found is listed.
    #[error("{}", Problems(problems))]
    Invalid {
        /// Every problem: validation problems first (in config order), then
        /// handler params (by handler name, each at its field's line), then
        /// handler builds.
        problems: Vec<Problem>,
    },
    /// Reading the configuration failed (a file or directory).
    #[error("{0}")]
    Config(mixer_config::Error),
}

impl Error {
    /// The problems of a rejected configuration (empty for other errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            Error::Invalid { problems } => problems,
            Error::Config(_) => &[],
        }
    }

    pub(crate) fn from_config(e: mixer_config::Error) -> Error {
        match e {
            mixer_config::Error::Invalid { errors, .. } => Error::Invalid {
                problems: errors.iter().map(Problem::from_config).collect(),
            },
            other => Error::Config(other),
        }
    }
}

struct Problems<'a>(&'a [Problem]);

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "configuration rejected ({n} {}):",
            if n == 1 { "problem" } else { "problems" }
        )?;
        for p in self.0 {
            write!(f, "\n{p}")?;
        }
        Ok(())
    }
}
