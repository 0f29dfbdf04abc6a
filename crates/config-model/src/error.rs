//! The crate's error type, and [`Problem`]: one located config mistake.

use std::fmt;
use std::path::PathBuf;

use mixer_attributes::ValueType;

use crate::expr::ExprError;
use crate::manifest::ManifestConflict;
use crate::model::{FieldPath, Origin, Subject};

/// Everything that can go wrong in this crate.
///
/// Loading and validation do not stop at the first mistake: they return
/// [`Error::Invalid`] listing every [`Problem`], each of which carries one of
/// the other variants as its cause.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration has problems; nothing of it should be used.
    #[error("{}", Problems { errors, warnings })]
    Invalid {
        /// Every problem found, in document order.
        errors: Vec<Problem>,
        /// Warnings found on the way (documents of unknown kinds...).
        warnings: Vec<Problem>,
    },

    /// A YAML or JSON syntax error.
    #[error("{format} syntax error: {message}")]
    Syntax {
        /// `YAML` or `JSON`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A source larger than [`MAX_SOURCE_BYTES`](crate::load::MAX_SOURCE_BYTES).
    #[error("{size} bytes is over the limit of {limit} bytes")]
    TooLarge {
        /// The size of the source.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A directory nested deeper than [`MAX_DIR_DEPTH`](crate::load::MAX_DIR_DEPTH); not read.
    #[error("directory nested deeper than {limit} levels; not read")]
    TooDeep {
        /// The limit.
        limit: usize,
    },
    /// A value of the wrong shape (a list where a mapping belongs...).
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field must hold.
        expected: &'static str,
        /// What it holds.
        found: &'static str,
    },
    /// A required field is absent or empty.
    #[error("missing required field")]
    MissingField,
    /// A field this kind of object does not have (usually a typo).
    #[error("unknown field (expected one of: {})", expected.join(", "))]
    UnknownField {
        /// The fields the object does have.
        expected: Vec<String>,
    },
    /// A string field outside its set of allowed values.
    #[error("'{value}' is not one of: {}", allowed.join(", "))]
    NotOneOf {
        /// The value found.
        value: String,
        /// The values allowed.
        allowed: &'static [&'static str],
    },
    /// A document of another API group (a Kubernetes object, an Istio
    /// networking resource); skipped.
    #[error("apiVersion '{api_version}' is not config.istio.io/v1alpha2; document skipped")]
    ForeignApiVersion {
        /// The document's `apiVersion`.
        api_version: String,
    },
    /// A document whose kind is neither a Mixer kind nor a known adapter or
    /// template; skipped.
    #[error(
        "unknown kind '{kind}' (not handler, instance, rule, attributemanifest, nor a known adapter or template); document skipped"
    )]
    UnknownKind {
        /// The document's `kind`.
        kind: String,
    },
    /// Two objects with the same fully-qualified name.
    #[error("duplicate name: already defined at {first}")]
    Duplicate {
        /// Where the first definition is.
        first: Origin,
    },
    /// A handler naming an adapter the host does not have.
    #[error("unknown adapter '{name}'")]
    UnknownAdapter {
        /// The adapter name.
        name: String,
    },
    /// An instance naming a template the host does not have.
    #[error("unknown template '{name}'")]
    UnknownTemplate {
        /// The template name.
        name: String,
    },
    /// A manifest naming a type that does not exist.
    #[error("unknown value type '{name}'")]
    UnknownValueType {
        /// The name found.
        name: String,
    },
    /// An expression's type does not fit where it is used.
    #[error("expression of type {actual} does not fit: expected {expected}")]
    TypeMismatch {
        /// The expression's type.
        actual: ValueType,
        /// What the field accepts.
        expected: String,
    },
    /// A rule naming a handler or instance that does not exist.
    #[error("{expected} '{reference}' not found (looked for {})", tried.join(", "))]
    Dangling {
        /// `handler` or `instance`.
        expected: &'static str,
        /// The reference as written.
        reference: String,
        /// The fully-qualified names tried, in order.
        tried: Vec<String>,
    },
    /// A rule reference that names an object of the wrong category.
    #[error("'{reference}' resolves to {found}, which is not a {expected}")]
    WrongReferent {
        /// The reference as written.
        reference: String,
        /// What it resolved to (`rule 'x.rule.ns'`).
        found: String,
        /// `handler` or `instance`.
        expected: &'static str,
    },
    /// An expression that does not parse or type-check.
    #[error("{0}")]
    Expr(#[from] ExprError),
    /// An attribute declared with two types.
    #[error("{0}")]
    Manifest(#[from] ManifestConflict),
    /// Handler params an adapter rejected (see
    /// [`Handler::params_problem`](crate::model::Handler::params_problem)).
    #[error("{message}")]
    Params {
        /// The adapter's message.
        message: String,
    },
    /// A rule action whose handler's adapter cannot take an instance's
    /// template.
    #[error(
        "handler '{handler}' (adapter '{adapter}') does not support template '{template}' of instance '{instance}'"
    )]
    UnsupportedTemplate {
        /// The handler, fully qualified.
        handler: String,
        /// Its adapter.
        adapter: String,
        /// The instance, fully qualified.
        instance: String,
        /// The instance's template.
        template: String,
    },
}

/// One located config mistake: where (source and line), which object, which
/// field, and what is wrong.
///
/// Printed as `rules.yaml:12: rule 'deny.rule.istio-system' field
/// actions[0].handler: handler 'denyall' not found (...)`.
#[derive(Debug)]
pub struct Problem {
    /// The source and line, when known.
    pub origin: Option<Origin>,
    /// The object, when the problem is about one.
    pub subject: Option<Subject>,
    /// The field, when the problem is about one.
    pub field: Option<FieldPath>,
    /// What is wrong.
    pub error: Error,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(origin) = &self.origin {
            write!(f, "{origin}: ")?;
        }
        let field = self.field.as_ref().filter(|p| !p.is_root());
        match (&self.subject, field) {
            (Some(subject), Some(field)) => write!(f, "{subject} field {field}: ")?,
            (Some(subject), None) => write!(f, "{subject}: ")?,
            (None, Some(field)) => write!(f, "field {field}: ")?,
            (None, None) => {}
        }
        write!(f, "{}", self.error)
    }
}

struct Problems<'a> {
    errors: &'a [Problem],
    warnings: &'a [Problem],
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.errors.len();
        write!(
            f,
            "invalid configuration ({n} {}):",
            if n == 1 { "problem" } else { "problems" }
        )?;
        for problem in self.errors {
            write!(f, "\n{problem}")?;
        }
        for warning in self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}
