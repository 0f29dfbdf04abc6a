//! Rules: the `match` condition, actions with their references resolved,
//! and header operations.

use std::collections::{BTreeMap, HashMap};

use mixer_attributes::ValueType;
use serde_json::Value;

use super::document::Object;
use super::names::reference_candidates;
use super::site::{Report, Site, wrong_type};
use crate::error::Error;
use crate::expr::Expression;
use crate::manifest::Manifest;
use crate::model::{
    Action, Category, FieldPath, Handler, HeaderOperation, HeaderOperationKind, Instance, Rule,
    Subject,
};
use crate::schema::Schemas;

const SPEC: &[&str] = &[
    "match",
    "actions",
    "requestHeaderOperations",
    "responseHeaderOperations",
];
const ACTION: &[&str] = &["handler", "instances", "name"];
const HEADER_OPERATION: &[&str] = &["name", "values", "operation"];
const OPERATIONS: &[&str] = &["REPLACE", "REMOVE", "APPEND"];

/// What rules are checked against: every named object (valid or not, so
/// that a reference to a broken object is not also reported as dangling),
/// and the valid handlers and instances.
pub(super) struct Scope<'a> {
    pub(super) defined: &'a HashMap<String, Subject>,
    pub(super) handlers: &'a BTreeMap<String, Handler>,
    pub(super) instances: &'a BTreeMap<String, Instance>,
    pub(super) schemas: &'a Schemas,
    pub(super) manifest: &'a Manifest,
}

/// Checks one rule; `None` when it has any problem (all reported).
pub(super) fn check(object: &Object<'_>, scope: &Scope<'_>, report: &mut Report) -> Option<Rule> {
    let site = object.site();
    let errors_before = report.errors.len();
    let spec = FieldPath::spec();
    site.deny_unknown(report, object.spec, SPEC, &spec);
    let condition = condition(&site, object, scope.manifest, report);
    let mut actions = Vec::new();
    let path = spec.field("actions");
    for (i, action) in site
        .list(report, object.spec.get("actions"), &path)
        .unwrap_or(&[])
        .iter()
        .enumerate()
    {
        if let Some(action) = self::action(&site, object, action, &path.index(i), scope, report) {
            actions.push(action);
        }
    }
    let request = header_operations(&site, object, "requestHeaderOperations", report);
    let response = header_operations(&site, object, "responseHeaderOperations", report);
    (report.errors.len() == errors_before).then(|| Rule {
        name: object.name.clone(),
        condition: condition.flatten(),
        actions,
        request_header_operations: request,
        response_header_operations: response,
        origin: object.doc.origin().clone(),
    })
}

/// `Some(None)` for an absent or empty `match` (always true).
fn condition(
    site: &Site<'_>,
    object: &Object<'_>,
    manifest: &Manifest,
    report: &mut Report,
) -> Option<Option<Expression>> {
    let path = FieldPath::spec();
    let text = site.string(report, object.spec, "match", &path);
    let text = match text {
        Some(t) if !t.trim().is_empty() => t,
        _ => return Some(None),
    };
    let path = path.field("match");
    match Expression::compile(text, manifest) {
        Err(e) => {
            site.error(report, path, Error::Expr(e));
            None
        }
        Ok(expr) if expr.result_type() != ValueType::Bool => {
            let error = Error::TypeMismatch {
                actual: expr.result_type(),
                expected: "BOOL".to_owned(),
            };
            site.error(report, path, error);
            None
        }
        Ok(expr) => Some(Some(expr)),
    }
}

fn action(
    site: &Site<'_>,
    object: &Object<'_>,
    value: &Value,
    path: &FieldPath,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Option<Action> {
    let map = site.mapping(report, Some(value), path)?;
    site.deny_unknown(report, map, ACTION, path);
    let name = site.string(report, map, "name", path).map(str::to_owned);
    let namespace = &object.name.namespace;
    let handler = site
        .required_string(report, map, "handler", path)
        .and_then(|r| {
            resolve(
                site,
                r,
                Category::Handler,
                namespace,
                &path.field("handler"),
                scope,
                report,
            )
        });
    let instances_path = path.field("instances");
    let items = site.list(report, map.get("instances"), &instances_path)?;
    if items.is_empty() {
        site.error(report, instances_path.clone(), Error::MissingField);
    }
    let mut instances = Vec::with_capacity(items.len());
    for (j, item) in items.iter().enumerate() {
        let path = instances_path.index(j);
        let Value::String(reference) = item else {
            site.error(report, path, wrong_type("a string", item));
            continue;
        };
        let Some(instance) = resolve(
            site,
            reference,
            Category::Instance,
            namespace,
            &path,
            scope,
            report,
        ) else {
            continue;
        };
        if let Some(handler) = handler.as_deref() {
            supports(site, handler, &instance, &path, scope, report);
        }
        instances.push(instance);
    }
    Some(Action {
        name,
        handler: handler?,
        instances,
    })
}

/// Resolves a reference to a fully-qualified name of an object of
/// `category`, reporting a dangling or mistaken reference.
fn resolve(
    site: &Site<'_>,
    reference: &str,
    category: Category,
    namespace: &str,
    path: &FieldPath,
    scope: &Scope<'_>,
    report: &mut Report,
) -> Option<String> {
    let tried = reference_candidates(reference, category.as_str(), namespace);
    let Some((fqn, subject)) = tried
        .iter()
        .find_map(|c| scope.defined.get(c).map(|s| (c, s)))
    else {
        let error = Error::Dangling {
            expected: category.as_str(),
            reference: reference.to_owned(),
            tried,
        };
        site.error(report, path.clone(), error);
        return None;
    };
    if subject.category != category {
        let error = Error::WrongReferent {
            reference: reference.to_owned(),
            found: subject.to_string(),
            expected: category.as_str(),
        };
        site.error(report, path.clone(), error);
        return None;
    }
    Some(fqn.clone())
}

/// Reports an instance whose template the handler's adapter does not take
/// (when the host said which templates it takes).
fn supports(
    site: &Site<'_>,
    handler: &str,
    instance: &str,
    path: &FieldPath,
    scope: &Scope<'_>,
    report: &mut Report,
) {
    let (Some(handler), Some(instance)) =
        (scope.handlers.get(handler), scope.instances.get(instance))
    else {
        return;
    };
    let accepted = scope
        .schemas
        .get_adapter(&handler.adapter)
        .and_then(|a| a.templates.as_ref());
    if accepted.is_some_and(|t| !t.contains(&instance.template)) {
        let error = Error::UnsupportedTemplate {
            handler: handler.name.to_string(),
            adapter: handler.adapter.clone(),
            instance: instance.name.to_string(),
            template: instance.template.clone(),
        };
        site.error(report, path.clone(), error);
    }
}

fn header_operations(
    site: &Site<'_>,
    object: &Object<'_>,
    field: &str,
    report: &mut Report,
) -> Vec<HeaderOperation> {
    let path = FieldPath::spec().field(field);
    let Some(items) = site.list(report, object.spec.get(field), &path) else {
        return Vec::new();
    };
    let mut operations = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = path.index(i);
        let Some(map) = site.mapping(report, Some(item), &path) else {
            continue;
        };
        site.deny_unknown(report, map, HEADER_OPERATION, &path);
        let name = site.required_string(report, map, "name", &path);
        let values_path = path.field("values");
        let mut values = Vec::new();
        for (j, value) in site
            .list(report, map.get("values"), &values_path)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            match value {
                Value::String(s) => values.push(s.clone()),
                other => site.error(report, values_path.index(j), wrong_type("a string", other)),
            }
        }
        let operation = match site.string(report, map, "operation", &path) {
            None | Some("REPLACE") => Some(HeaderOperationKind::Replace),
            Some("REMOVE") => Some(HeaderOperationKind::Remove),
            Some("APPEND") => Some(HeaderOperationKind::Append),
            Some(other) => {
                let error = Error::NotOneOf {
                    value: other.to_owned(),
                    allowed: OPERATIONS,
                };
                site.error(report, path.field("operation"), error);
                None
            }
        };
        if let (Some(name), Some(operation)) = (name, operation) {
            operations.push(HeaderOperation {
                name: name.to_owned(),
                values,
                operation,
            });
        }
    }
    operations
}
