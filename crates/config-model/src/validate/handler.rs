//! Handlers: `kind: handler` (`compiledAdapter` + `params`) and the older
//! per-adapter kinds, whose whole `spec` is the params.

use serde_json::Value;

use super::document::{Kind, Object};
use super::site::{Report, wrong_type};
use crate::error::Error;
use crate::model::{FieldPath, Handler};
use crate::schema::Schemas;

const SPEC: &[&str] = &["compiledAdapter", "params"];

/// Checks one handler; `None` when it cannot be used (problems reported).
/// Params are not checked: only the adapter knows them.
pub(super) fn check(
    object: &Object<'_>,
    schemas: &Schemas,
    report: &mut Report,
) -> Option<Handler> {
    let site = object.site();
    let spec = FieldPath::spec();
    let (adapter, params, params_path) = match &object.kind {
        Kind::Adapter(adapter) => (
            adapter.as_str(),
            Value::Object(object.spec.clone()),
            spec.clone(),
        ),
        _ => {
            site.deny_unknown(report, object.spec, SPEC, &spec);
            let params = match object.spec.get("params") {
                None | Some(Value::Null) => Value::Object(Default::default()),
                Some(params @ Value::Object(_)) => params.clone(),
                Some(other) => {
                    site.error(report, spec.field("params"), wrong_type("a mapping", other));
                    return None;
                }
            };
            let adapter = site.required_string(report, object.spec, "compiledAdapter", &spec)?;
            if schemas.get_adapter(adapter).is_none() {
                let error = Error::UnknownAdapter {
                    name: adapter.to_owned(),
                };
                site.error(report, spec.field("compiledAdapter"), error);
                return None;
            }
            (adapter, params, spec.field("params"))
        }
    };
    Some(Handler {
        name: object.name.clone(),
        adapter: adapter.to_owned(),
        params,
        params_path,
        locator: object.doc.locator().clone(),
        origin: object.doc.origin().clone(),
    })
}
