//! Validation: from loaded [`Documents`] to a [`Config`], or every problem
//! found, in one pass.

mod document;
mod handler;
mod instance;
mod manifest;
mod names;
mod rule;
mod site;

use std::collections::{BTreeMap, HashMap, hash_map::Entry};
use std::sync::Arc;

use crate::error::{Error, Problem};
use crate::load::Documents;
use crate::manifest::Manifest;
use crate::model::{Config, Origin, Subject};
use crate::schema::Schemas;
use document::{Kind, Object};
pub use names::reference_candidates;
use site::Report;

/// The default config namespace: its rules apply to every request.
pub const DEFAULT_NAMESPACE: &str = "istio-system";

/// Checks documents against what the host supports.
///
/// Handlers' params are not checked here (only the adapter knows them);
/// everything else is: document envelopes, unknown fields, duplicate
/// names, unknown adapters and templates, attribute manifests, every
/// expression (parse, type-check, and fit to its template field), and every
/// reference of every rule.
#[derive(Debug, Clone)]
pub struct Validator<'s> {
    schemas: &'s Schemas,
    default_namespace: String,
    manifest: Manifest,
}

impl<'s> Validator<'s> {
    /// A validator for `schemas`, with the standard manifest and the
    /// default namespace `istio-system`.
    pub fn new(schemas: &'s Schemas) -> Validator<'s> {
        Validator {
            schemas,
            default_namespace: DEFAULT_NAMESPACE.to_owned(),
            manifest: Manifest::standard(),
        }
    }

    /// Sets the default config namespace: the namespace of documents that
    /// name none, and the one whose rules apply to every request.
    pub fn default_namespace(mut self, namespace: &str) -> Validator<'s> {
        namespace.clone_into(&mut self.default_namespace);
        self
    }

    /// Sets the manifest `attributemanifest` documents are merged into
    /// (the standard vocabulary unless set).
    pub fn manifest(mut self, manifest: Manifest) -> Validator<'s> {
        self.manifest = manifest;
        self
    }

    /// Validates `documents`: a [`Config`], or [`Error::Invalid`] with
    /// every problem (syntax errors met while loading included).
    pub fn validate(&self, documents: Documents) -> Result<Config, Error> {
        let (docs, syntax) = documents.into_parts();
        let mut report = Report {
            errors: syntax,
            warnings: Vec::new(),
        };
        let objects: Vec<Object<'_>> = docs
            .iter()
            .filter_map(|doc| {
                document::read(doc, self.schemas, &self.default_namespace, &mut report)
            })
            .collect();
        let (objects, defined) = dedup(objects, &mut report);

        let mut manifest = self.manifest.clone();
        for object in objects.iter().filter(|o| o.kind == Kind::AttributeManifest) {
            manifest::merge(object, &mut manifest, &mut report);
        }
        let mut handlers = BTreeMap::new();
        let mut instances = BTreeMap::new();
        for object in &objects {
            match object.kind {
                Kind::Handler | Kind::Adapter(_) => {
                    if let Some(h) = handler::check(object, self.schemas, &mut report) {
                        handlers.insert(object.name.to_string(), h);
                    }
                }
                Kind::Instance | Kind::Template(_) => {
                    if let Some(i) = instance::check(object, self.schemas, &manifest, &mut report) {
                        instances.insert(object.name.to_string(), i);
                    }
                }
                Kind::Rule | Kind::AttributeManifest => {}
            }
        }
        let scope = rule::Scope {
            defined: &defined,
            handlers: &handlers,
            instances: &instances,
            schemas: self.schemas,
            manifest: &manifest,
        };
        let rules = objects
            .iter()
            .filter(|o| o.kind == Kind::Rule)
            .filter_map(|o| rule::check(o, &scope, &mut report))
            .collect();

        let rank = source_ranks(&docs, &report);
        sort(&mut report.errors, &rank);
        sort(&mut report.warnings, &rank);
        if !report.errors.is_empty() {
            return Err(Error::Invalid {
                errors: report.errors,
                warnings: report.warnings,
            });
        }
        Ok(Config {
            manifest,
            handlers,
            instances,
            rules,
            default_namespace: self.default_namespace.clone(),
            warnings: report.warnings,
        })
    }
}

/// Drops (and reports) objects whose fully-qualified name an earlier one
/// already has; returns the rest and every name defined.
fn dedup<'d>(
    objects: Vec<Object<'d>>,
    report: &mut Report,
) -> (Vec<Object<'d>>, HashMap<String, Subject>) {
    let mut first: HashMap<String, Origin> = HashMap::new();
    let mut defined = HashMap::new();
    let mut kept = Vec::with_capacity(objects.len());
    for object in objects {
        let site = object.site();
        match first.entry(object.name.to_string()) {
            Entry::Occupied(entry) => {
                let error = Error::Duplicate {
                    first: entry.get().clone(),
                };
                report.errors.push(Problem {
                    origin: Some(object.doc.origin().clone()),
                    subject: Some(site.subject),
                    field: None,
                    error,
                });
            }
            Entry::Vacant(entry) => {
                defined.insert(entry.key().clone(), site.subject);
                entry.insert(object.doc.origin().clone());
                kept.push(object);
            }
        }
    }
    (kept, defined)
}

/// Sources in the order they were loaded.
fn source_ranks(docs: &[crate::load::Document], report: &Report) -> HashMap<Arc<str>, usize> {
    let mut rank = HashMap::new();
    let origins = docs
        .iter()
        .map(|d| d.origin())
        .chain(report.errors.iter().filter_map(|p| p.origin.as_ref()));
    for origin in origins {
        let next = rank.len();
        rank.entry(origin.source.clone()).or_insert(next);
    }
    rank
}

/// Orders problems as the sources were loaded, then by line; problems of a
/// line keep the order they were found in.
fn sort(problems: &mut [Problem], rank: &HashMap<Arc<str>, usize>) {
    problems.sort_by_key(|p| {
        p.origin.as_ref().map_or((usize::MAX, 0), |o| {
            (
                rank.get(&o.source).copied().unwrap_or(usize::MAX),
                o.line.unwrap_or(0),
            )
        })
    });
}
