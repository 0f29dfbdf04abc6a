//! Handlers read straight from their documents, so that a configuration
//! failing validation still has its handlers' params checked in the same
//! pass: the validator hands back no partial configuration, and an operator
//! fixing one problem at a time should not meet the params problems only
//! on the next attempt.
//!
//! Reads the two shapes the validator accepts (`kind: handler` with
//! `compiledAdapter` and `params`, and the per-adapter kinds whose whole
//! `spec` is the params); anything it cannot read is left to the
//! validator's own problems.

use mixer_adapters::Registry;
use mixer_config::load::Documents;
use mixer_config::model::{FieldPath, Handler, ObjectName};
use serde_json::{Map, Value};

use crate::snapshot::{config_problems, validate};

/// The handlers of `documents` whose adapter `registry` has, read straight
/// from the documents (`namespace` for those that name none), whether or
/// not the configuration as a whole validates: what a tool needs to check
/// their params in the same pass as validation (as
/// [`Dispatcher::load`](crate::Dispatcher::load) does).
pub fn read(documents: &Documents, registry: &Registry, namespace: &str) -> Vec<Handler> {
    documents
        .documents()
        .iter()
        .filter_map(|doc| {
            let v = doc.value();
            let kind = v.get("kind")?.as_str()?;
            let meta = v.get("metadata")?;
            let name = meta.get("name")?.as_str()?;
            let ns = match meta.get("namespace") {
                None | Some(Value::Null) => namespace,
                Some(ns) => ns.as_str()?,
            };
            let spec = v.get("spec")?.as_object()?;
            let (adapter, params, params_path) = if kind == "handler" {
                let params = match spec.get("params") {
                    None | Some(Value::Null) => Value::Object(Map::new()),
                    Some(p @ Value::Object(_)) => p.clone(),
                    Some(_) => return None,
                };
                let adapter = spec.get("compiledAdapter")?.as_str()?;
                (adapter, params, FieldPath::spec().field("params"))
            } else {
                (kind, Value::Object(spec.clone()), FieldPath::spec())
            };
            registry.get(adapter)?;
            Some(Handler {
                locator: doc.locator().clone(),
                params_path,
                name: ObjectName::new(name, kind, ns),
                adapter: adapter.to_owned(),
                params,
                origin: doc.origin().clone(),
            })
        })
        .collect()
}

/// What `handler`'s adapter finds wrong with its params, each problem
/// located at its field; nothing is built, and an adapter that panics is a
/// problem too.
pub fn params_problems_of(registry: &Registry, handler: &Handler) -> Vec<mixer_config::Problem> {
    let params = mixer_adapters::Params::new(handler.params.clone());
    match validate(registry, &handler.adapter, &params) {
        Ok(_) => Vec::new(),
        Err(e) => config_problems(&e, handler),
    }
}

/// The params problems of `handlers` (as [`read`] finds them in a
/// configuration that failed `validation`), but for those the validator
/// already found a problem with (a duplicate name, an unknown field...):
/// what it said is what needs fixing first.
pub fn params_problems(
    handlers: &[Handler],
    registry: &Registry,
    validation: &[mixer_config::Problem],
) -> Vec<mixer_config::Problem> {
    let flagged = |h: &Handler| {
        validation.iter().any(|p| {
            p.subject
                .as_ref()
                .and_then(|s| s.name.as_ref())
                .is_some_and(|n| *n == h.name)
        })
    };
    handlers
        .iter()
        .filter(|h| !flagged(h))
        .flat_map(|h| params_problems_of(registry, h))
        .collect()
}
