//! `kind: attributemanifest` documents, merged into the manifest before any
//! expression is checked (so documents may come in any order).

use mixer_attributes::ValueType;
use serde_json::Value;

use super::document::Object;
use super::site::Report;
use crate::error::Error;
use crate::manifest::Manifest;
use crate::model::FieldPath;

const SPEC: &[&str] = &["name", "revision", "attributes"];
const ATTRIBUTE: &[&str] = &["valueType", "description"];

/// Merges one manifest document's attributes into `manifest`.
pub(super) fn merge(object: &Object<'_>, manifest: &mut Manifest, report: &mut Report) {
    let site = object.site();
    let spec = FieldPath::spec();
    site.deny_unknown(report, object.spec, SPEC, &spec);
    let _ = site.string(report, object.spec, "name", &spec);
    if let Some(revision) = object.spec.get("revision")
        && !matches!(revision, Value::String(_) | Value::Number(_) | Value::Null)
    {
        let error = super::site::wrong_type("a string", revision);
        site.error(report, spec.field("revision"), error);
    }
    let path = spec.field("attributes");
    let Some(attributes) = site.mapping(report, object.spec.get("attributes"), &path) else {
        return;
    };
    for (name, info) in attributes {
        let path = path.key(name);
        let Some(info) = site.mapping(report, Some(info), &path) else {
            continue;
        };
        site.deny_unknown(report, info, ATTRIBUTE, &path);
        let _ = site.string(report, info, "description", &path);
        let Some(type_name) = site.required_string(report, info, "valueType", &path) else {
            continue;
        };
        let Some(value_type) = ValueType::from_name(type_name) else {
            let error = Error::UnknownValueType {
                name: type_name.to_owned(),
            };
            site.error(report, path.field("valueType"), error);
            continue;
        };
        if let Err(conflict) = manifest.insert(name, value_type) {
            site.error(report, path.field("valueType"), Error::Manifest(conflict));
        }
    }
}
