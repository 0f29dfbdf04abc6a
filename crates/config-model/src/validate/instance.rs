//! Instances: `kind: instance` (`compiledTemplate` + `params`) and the older
//! per-template kinds, whose whole `spec` is the params. Every field is
//! compiled against the manifest and its type checked against the
//! template's.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::document::{Kind, Object};
use super::site::{Report, Site, wrong_type};
use crate::error::Error;
use crate::expr::Expression;
use crate::manifest::Manifest;
use crate::model::{FieldPath, FieldValue, Instance};
use crate::schema::{FieldKind, Schemas, TemplateSchema, Types};

const SPEC: &[&str] = &["compiledTemplate", "params"];

/// Checks one instance; `None` when it has any problem (all reported).
pub(super) fn check(
    object: &Object<'_>,
    schemas: &Schemas,
    manifest: &Manifest,
    report: &mut Report,
) -> Option<Instance> {
    let site = object.site();
    let errors_before = report.errors.len();
    let spec = FieldPath::spec();
    let (template, params, path) = match &object.kind {
        Kind::Template(template) => (template.as_str(), object.spec, spec),
        _ => {
            site.deny_unknown(report, object.spec, SPEC, &spec);
            let params_path = spec.field("params");
            let params = site.mapping(report, object.spec.get("params"), &params_path);
            let template = site.required_string(report, object.spec, "compiledTemplate", &spec)?;
            (template, params?, params_path)
        }
    };
    let Some(schema) = schemas.get_template(template) else {
        let error = Error::UnknownTemplate {
            name: template.to_owned(),
        };
        site.error(report, FieldPath::spec().field("compiledTemplate"), error);
        return None;
    };
    let fields = compile_fields(&site, schema, params, &path, manifest, report);
    (report.errors.len() == errors_before).then(|| Instance {
        name: object.name.clone(),
        template: template.to_owned(),
        fields,
        origin: object.doc.origin().clone(),
    })
}

fn compile_fields(
    site: &Site<'_>,
    schema: &TemplateSchema,
    params: &Map<String, Value>,
    path: &FieldPath,
    manifest: &Manifest,
    report: &mut Report,
) -> BTreeMap<String, FieldValue> {
    let mut fields = BTreeMap::new();
    for (name, value) in params {
        let path = path.field(name);
        // Protobuf's JSON mapping, which the original used, also accepts
        // field names in snake_case, and early configs were written so.
        let Some(field) = schema
            .field(name)
            .or_else(|| schema.field(&camel_case(name)))
        else {
            let expected = schema.fields.iter().map(|f| f.name.clone()).collect();
            site.error(report, path, Error::UnknownField { expected });
            continue;
        };
        let compiled = match &field.kind {
            _ if value.is_null() => continue,
            FieldKind::Expr(types) => {
                compile(site, value, types, &path, manifest, report).map(FieldValue::Expr)
            }
            FieldKind::Map(types) => {
                let Some(entries) = site.mapping(report, Some(value), &path) else {
                    continue;
                };
                let mut map = BTreeMap::new();
                for (key, value) in entries {
                    if let Some(expr) =
                        compile(site, value, types, &path.key(key), manifest, report)
                    {
                        map.insert(key.clone(), expr);
                    }
                }
                Some(FieldValue::Map(map))
            }
        };
        if let Some(compiled) = compiled {
            fields.insert(field.name.clone(), compiled);
        }
    }
    for field in schema.fields.iter().filter(|f| f.required) {
        let given = params
            .iter()
            .any(|(k, v)| !v.is_null() && (*k == field.name || camel_case(k) == field.name));
        if !given {
            site.error(report, path.field(&field.name), Error::MissingField);
        }
    }
    fields
}

/// `monitored_resource_type` -> `monitoredResourceType`.
fn camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Compiles one field expression and checks its type.
fn compile(
    site: &Site<'_>,
    value: &Value,
    types: &Types,
    path: &FieldPath,
    manifest: &Manifest,
    report: &mut Report,
) -> Option<Expression> {
    // YAML turns `value: 1` into a number; as an expression it means the
    // same as `value: "1"`.
    let text: Cow<'_, str> = match value {
        Value::String(s) => Cow::Borrowed(s),
        Value::Number(n) => Cow::Owned(n.to_string()),
        Value::Bool(b) => Cow::Owned(b.to_string()),
        other => {
            site.error(
                report,
                path.clone(),
                wrong_type("an expression (a string)", other),
            );
            return None;
        }
    };
    match Expression::compile(&text, manifest) {
        Err(e) => {
            site.error(report, path.clone(), Error::Expr(e));
            None
        }
        Ok(expr) if !types.allows(expr.result_type()) => {
            let error = Error::TypeMismatch {
                actual: expr.result_type(),
                expected: types.to_string(),
            };
            site.error(report, path.clone(), error);
            None
        }
        Ok(expr) => Some(expr),
    }
}
