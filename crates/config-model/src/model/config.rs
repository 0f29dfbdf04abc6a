//! The validated configuration: what a dispatcher builds its snapshot from.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Category, FieldPath, ObjectName, Origin, Subject};
use crate::error::{Error, Problem};
use crate::expr::Expression;
use crate::load::Locator;
use crate::manifest::Manifest;

/// A validated configuration: every reference resolved, every expression
/// compiled against the manifest, nothing left to fail but adapter params
/// (which only the adapters can check).
#[derive(Debug)]
pub struct Config {
    /// The standard vocabulary plus every `attributemanifest` merged in.
    pub manifest: Manifest,
    /// Handlers by fully-qualified name.
    pub handlers: BTreeMap<String, Handler>,
    /// Instances by fully-qualified name.
    pub instances: BTreeMap<String, Instance>,
    /// Rules in load order (files in sorted order, documents in file order):
    /// the order check results are merged in.
    pub rules: Vec<Rule>,
    /// The namespace whose rules apply to every request.
    pub default_namespace: String,
    /// Things worth telling the operator that did not stop the config
    /// (documents of unknown kinds...).
    pub warnings: Vec<Problem>,
}

impl Config {
    /// The rules that apply to a request of `namespace`: its own plus the
    /// default namespace's, in load order. A request of no known namespace
    /// (`None`) gets the default namespace's rules only.
    pub fn rules_for<'a>(
        &'a self,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Rule> + 'a {
        self.rules.iter().filter(move |r| {
            r.namespace() == self.default_namespace || Some(r.namespace()) == namespace
        })
    }

    /// The config namespace of a request: `source.namespace` when
    /// `context.reporter.kind` is `outbound`, `destination.namespace`
    /// otherwise (absent included).
    pub fn request_namespace<'a>(
        reporter_kind: Option<&str>,
        source_namespace: Option<&'a str>,
        destination_namespace: Option<&'a str>,
    ) -> Option<&'a str> {
        if reporter_kind == Some("outbound") {
            source_namespace
        } else {
            destination_namespace
        }
    }
}

/// A configured adapter.
#[derive(Debug)]
pub struct Handler {
    /// Finds the lines of the handler's fields, for the adapter's messages
    /// about its params ([`Handler::params_problem`]).
    pub locator: Locator,
    /// Where the params sit in the document: `spec.params`, or `spec` for
    /// the per-adapter kinds.
    pub params_path: FieldPath,
    /// `name.kind.namespace` (kind `handler`, or the adapter's name for the
    /// older per-adapter kinds).
    pub name: ObjectName,
    /// The adapter (`compiledAdapter`, or the kind of a per-adapter document).
    pub adapter: String,
    /// The adapter's params, unchecked: the adapter validates them.
    pub params: Value,
    /// Where the handler was defined.
    pub origin: Origin,
}

impl Handler {
    /// A problem with the field `field` of the params (written as printed:
    /// `metrics[0].kind`), as an adapter reports it: located at the
    /// field's line and named like every other config problem.
    pub fn params_problem(&self, field: &str, message: impl Into<String>) -> Problem {
        let path = self.params_path.join(field);
        Problem {
            origin: Some(self.locator.origin_of(&path)),
            subject: Some(Subject {
                category: Category::Handler,
                name: Some(self.name.clone()),
            }),
            field: Some(path),
            error: Error::Params {
                message: message.into(),
            },
        }
    }
}

/// The value of one template field of an instance.
#[derive(Debug)]
pub enum FieldValue {
    /// A single expression (`value`, `severity`).
    Expr(Expression),
    /// A map of expressions (`dimensions`, `variables`), sorted by key.
    Map(BTreeMap<String, Expression>),
}

/// A template instance: how to build the template's fields from attributes.
#[derive(Debug)]
pub struct Instance {
    /// `name.kind.namespace` (kind `instance`, or the template's name for
    /// the older per-template kinds).
    pub name: ObjectName,
    /// The template (`compiledTemplate`, or the kind of a per-template
    /// document).
    pub template: String,
    /// The fields the config sets, by template field name.
    pub fields: BTreeMap<String, FieldValue>,
    /// Where the instance was defined.
    pub origin: Origin,
}

/// A rule: when (`match`) to send which instances to which handlers.
#[derive(Debug)]
pub struct Rule {
    /// `name.rule.namespace`.
    pub name: ObjectName,
    /// The compiled `match`; `None` when absent or empty, which always
    /// matches. [`Expression::source`] gives the text as written.
    pub condition: Option<Expression>,
    /// The actions, in order.
    pub actions: Vec<Action>,
    /// Header operations on the request, kept as written.
    pub request_header_operations: Vec<HeaderOperation>,
    /// Header operations on the response, kept as written.
    pub response_header_operations: Vec<HeaderOperation>,
    /// Where the rule was defined.
    pub origin: Origin,
}

impl Rule {
    /// The rule's namespace: requests of this namespace (or all requests,
    /// for the default namespace) are subject to it.
    pub fn namespace(&self) -> &str {
        &self.name.namespace
    }
}

/// One action of a rule, references resolved to fully-qualified names.
#[derive(Debug)]
pub struct Action {
    /// The action's optional `name`.
    pub name: Option<String>,
    /// The handler, fully qualified (a key of [`Config::handlers`]).
    pub handler: String,
    /// The instances, fully qualified (keys of [`Config::instances`]).
    pub instances: Vec<String>,
}

/// What a header operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderOperationKind {
    /// Replace the header's values (the default).
    Replace,
    /// Remove the header.
    Remove,
    /// Add values to the header.
    Append,
}

/// A request or response header operation of a rule, kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderOperation {
    /// The header name.
    pub name: String,
    /// The value expressions, as written (not compiled: they may name
    /// adapter outputs, which only the dispatcher knows).
    pub values: Vec<String>,
    /// What to do.
    pub operation: HeaderOperationKind,
}
