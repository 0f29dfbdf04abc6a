//! Where a config object came from, for error messages.

use std::fmt;
use std::sync::Arc;

/// The source (file path, or the name given to an in-memory string) and
/// the 1-based line of an object or field.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The file path as given to the loader, or the name given with a string.
    pub source: Arc<str>,
    /// 1-based line, when known.
    pub line: Option<u32>,
}

impl Origin {
    /// An origin in `source` at `line`.
    pub fn new(source: Arc<str>, line: Option<u32>) -> Origin {
        Origin { source, line }
    }

    /// The same source at another line (kept when `line` is `None`).
    pub fn at(&self, line: Option<u32>) -> Origin {
        Origin {
            source: self.source.clone(),
            line: line.or(self.line),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.source),
            None => f.write_str(&self.source),
        }
    }
}
