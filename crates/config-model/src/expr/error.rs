//! The two diagnostics of the expression language: [`ExprError`] when an
//! expression does not parse or type-check, [`EvalError`] when evaluating it
//! against a bag fails.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use mixer_attributes::ValueType;

/// What kind of mistake an [`ExprError`] reports.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExprErrorKind {
    /// The expression is empty (or only blanks).
    Empty,
    /// The text is not a well-formed expression.
    Syntax,
    /// An input limit ([`super::MAX_EXPRESSION_LEN`], [`super::MAX_DEPTH`], the
    /// attribute-name table) was exceeded.
    Limit,
    /// An attribute the manifest does not declare.
    UnknownAttribute,
    /// A function or operator the language does not have.
    UnknownFunction,
    /// A call with the wrong number of arguments, or a function called as a
    /// method (or the reverse).
    Arity,
    /// An operand or argument of the wrong type.
    Type,
    /// A constant that does not convert (`ip("x")`, a bad regular
    /// expression, an integer overflow between constants).
    InvalidConstant,
}

/// An expression that does not parse or type-check: what is wrong and where.
///
/// `Display` prints `line:column: message`, then the line of the expression
/// holding the mistake and a caret line under it:
///
/// ```text
/// 1:17: unknown attribute request.hots
///  | request.path == request.hots
///  | ................^^^^^^^^^^^^
/// ```
///
/// (with blanks, not dots, before the carets).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExprError {
    kind: ExprErrorKind,
    message: String,
    span: Range<usize>,
    line: usize,
    column: usize,
    source: String,
}

impl ExprError {
    pub(crate) fn new(
        kind: ExprErrorKind,
        message: impl Into<String>,
        span: Range<usize>,
        source: &str,
    ) -> ExprError {
        let start = span.start.min(source.len());
        let end = span.end.clamp(start, source.len());
        let before = &source[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = source[line_start..start].chars().count() + 1;
        ExprError {
            kind,
            message: message.into(),
            span: start..end,
            line,
            column,
            source: source.to_string(),
        }
    }

    /// What kind of mistake this is.
    pub fn kind(&self) -> ExprErrorKind {
        self.kind
    }

    /// The message alone, without position or excerpt
    /// (`unknown attribute request.hots`).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The byte range of the expression the mistake is in.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The 1-based line of the start of the span.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The 1-based column (in characters) of the start of the span.
    pub fn column(&self) -> usize {
        self.column
    }

    /// The whole expression text.
    pub fn source(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.line, self.column, self.message)?;
        let src = &self.source;
        let line_start = src[..self.span.start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[line_start..]
            .find('\n')
            .map_or(src.len(), |i| line_start + i);
        let text = &src[line_start..line_end];
        write!(f, "\n | {text}\n | ")?;
        // Keep tabs so that the carets line up under tab-indented text.
        for c in src[line_start..self.span.start].chars() {
            f.write_str(if c == '\t' { "\t" } else { " " })?;
        }
        let width = src[self.span.start..self.span.end.min(line_end)]
            .chars()
            .count()
            .max(1);
        for _ in 0..width {
            f.write_str("^")?;
        }
        Ok(())
    }
}

impl std::error::Error for ExprError {}

/// Evaluating an expression against a bag failed.
///
/// A rule whose `match` fails this way does not match (see the runtime
/// semantics); an instance field that fails this way is not produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EvalError {
    /// An attribute the expression needs is absent and no `|` default covers it.
    #[error("lookup failed: '{name}'")]
    LookupFailed {
        /// The attribute's name.
        name: Arc<str>,
    },
    /// The bag holds the attribute with a type other than the manifest's.
    #[error(
        "attribute '{name}' has type {actual} in the bag, but the manifest declares {expected}"
    )]
    AttributeType {
        /// The attribute's name.
        name: Arc<str>,
        /// The manifest's type.
        expected: ValueType,
        /// The type the bag holds.
        actual: ValueType,
    },
    /// An IP_ADDRESS attribute whose bytes are not 4 or 16 long.
    #[error("attribute '{name}' holds {len} bytes, which is not an IP address")]
    BadIpBytes {
        /// The attribute's name.
        name: Arc<str>,
        /// How many bytes it holds.
        len: usize,
    },
    /// A conversion function (`ip`, `timestamp`, `dnsName`, `email`, `uri`)
    /// got text it cannot convert.
    #[error("could not convert {input} to {target}")]
    Convert {
        /// The text (truncated to 256 bytes).
        input: String,
        /// The type asked for.
        target: ValueType,
    },
    /// A pattern given to `matches` at run time is not a valid regular expression.
    #[error("invalid regular expression {pattern:?}: {reason}")]
    Regex {
        /// The pattern (truncated to 256 bytes).
        pattern: String,
        /// Why the regex engine refused it.
        reason: String,
    },
    /// Integer arithmetic overflowed.
    #[error("integer overflow in '{op}'")]
    Overflow {
        /// The operator.
        op: &'static str,
    },
    /// `eval_bool` on an expression whose type is not BOOL.
    #[error("expression has type {actual}, not BOOL")]
    NotBool {
        /// The expression's type.
        actual: ValueType,
    },
}

/// `s` cut to at most `max` bytes on a character boundary, so that
/// messages about hostile input stay bounded.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}
