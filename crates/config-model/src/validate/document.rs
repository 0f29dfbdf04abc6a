//! The envelope of a document (`apiVersion`, `kind`, `metadata`, `spec`):
//! what kind of object it is and what it is called.

use serde_json::{Map, Value};

use super::site::{Report, Site, wrong_type};
use crate::error::{Error, Problem};
use crate::load::Document;
use crate::model::{Category, FieldPath, ObjectName, Subject};
use crate::schema::Schemas;

/// The API group and version of Mixer config.
pub(super) const API_VERSION: &str = "config.istio.io/v1alpha2";

const ENVELOPE: &[&str] = &["apiVersion", "kind", "metadata", "spec", "status"];

/// What a document defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    Handler,
    Instance,
    Rule,
    AttributeManifest,
    /// An older per-adapter kind (`kind: listchecker`): a handler whose
    /// `spec` is the params.
    Adapter(String),
    /// An older per-template kind (`kind: metric`): an instance whose
    /// `spec` is the params.
    Template(String),
}

impl Kind {
    fn classify(kind: &str, schemas: &Schemas) -> Option<Kind> {
        Some(match kind {
            "handler" => Kind::Handler,
            "instance" => Kind::Instance,
            "rule" => Kind::Rule,
            "attributemanifest" => Kind::AttributeManifest,
            _ if schemas.get_adapter(kind).is_some() => Kind::Adapter(kind.to_owned()),
            _ if schemas.get_template(kind).is_some() => Kind::Template(kind.to_owned()),
            _ => return None,
        })
    }

    pub(super) fn category(&self) -> Category {
        match self {
            Kind::Handler | Kind::Adapter(_) => Category::Handler,
            Kind::Instance | Kind::Template(_) => Category::Instance,
            Kind::Rule => Category::Rule,
            Kind::AttributeManifest => Category::AttributeManifest,
        }
    }
}

/// A document whose envelope is sound.
pub(super) struct Object<'d> {
    pub(super) doc: &'d Document,
    pub(super) kind: Kind,
    pub(super) name: ObjectName,
    pub(super) spec: &'d Map<String, Value>,
}

impl<'d> Object<'d> {
    pub(super) fn site(&self) -> Site<'d> {
        Site {
            doc: self.doc,
            subject: Subject {
                category: self.kind.category(),
                name: Some(self.name.clone()),
            },
        }
    }
}

/// Reads a document's envelope; `None` (with the problem or warning
/// reported) when the document cannot be used.
pub(super) fn read<'d>(
    doc: &'d Document,
    schemas: &Schemas,
    default_namespace: &str,
    report: &mut Report,
) -> Option<Object<'d>> {
    let root = FieldPath::root();
    let mut site = Site {
        doc,
        subject: Subject {
            category: Category::Document,
            name: None,
        },
    };
    let Value::Object(map) = doc.value() else {
        report.errors.push(Problem {
            origin: Some(doc.origin().clone()),
            subject: None,
            field: None,
            error: wrong_type("a mapping (a config document)", doc.value()),
        });
        return None;
    };
    if let Some(api_version) = site.string(report, map, "apiVersion", &root)
        && api_version != API_VERSION
    {
        report.warnings.push(Problem {
            origin: Some(doc.origin().clone()),
            subject: None,
            field: None,
            error: Error::ForeignApiVersion {
                api_version: api_version.to_owned(),
            },
        });
        return None;
    }
    let kind_name = site.required_string(report, map, "kind", &root)?;
    let kind = Kind::classify(kind_name, schemas);
    site.subject.category = kind.as_ref().map_or(Category::Document, Kind::category);
    let metadata = site.mapping(report, map.get("metadata"), &root.field("metadata"));
    let name =
        metadata.and_then(|m| site.required_string(report, m, "name", &root.field("metadata")));
    let namespace = metadata
        .and_then(|m| site.string(report, m, "namespace", &root.field("metadata")))
        .filter(|ns| !ns.is_empty())
        .unwrap_or(default_namespace);
    let object_name = name.map(|n| ObjectName::new(n, kind_name, namespace));
    let Some(kind) = kind else {
        report.warnings.push(Problem {
            origin: Some(doc.origin().clone()),
            subject: object_name.map(|name| Subject {
                category: Category::Document,
                name: Some(name),
            }),
            field: None,
            error: Error::UnknownKind {
                kind: kind_name.to_owned(),
            },
        });
        return None;
    };
    site.subject.name = object_name.clone();
    site.deny_unknown(report, map, ENVELOPE, &root);
    let spec = site.mapping(report, map.get("spec"), &FieldPath::spec());
    Some(Object {
        doc,
        kind,
        name: object_name?,
        spec: spec?,
    })
}
