//! `mixs validate`: every problem of a configuration, located.

use std::process::ExitCode;

use mixer_adapters::{Params, Registry};
use mixer_config::Problem;
use mixer_config::load::Documents;
use mixer_config::model::Handler;
use mixer_config::validate::{DEFAULT_NAMESPACE, Validator};

use crate::args::Args;

pub(crate) fn run(argv: Vec<String>) -> Result<ExitCode, String> {
    let mut a = Args::new(argv);
    if let Some((flag, _)) = a.next_flag() {
        return Err(format!("unknown flag --{flag}"));
    }
    let paths = a.positional();
    if paths.is_empty() {
        return Err("name at least one config file or directory".into());
    }
    let mut docs = Documents::new();
    for p in &paths {
        docs.add_path(p).map_err(|e| e.to_string())?;
    }
    let count = docs.documents().len();
    let registry = Registry::builtin();
    let schemas = mixer_dispatch::schemas(&registry);
    // Read before validation takes the documents: a configuration failing
    // validation still gets its handlers' params checked, so that every
    // problem shows in one run.
    let handlers = mixer_dispatch::document_handlers(&docs, &registry, DEFAULT_NAMESPACE);
    let config = match Validator::new(&schemas).validate(docs) {
        Ok(config) => config,
        Err(mixer_config::Error::Invalid {
            mut errors,
            warnings,
        }) => {
            // A handler the validator found wrong (a duplicate, an unknown
            // field) shows that first; the others' params are checked.
            let flagged = |h: &Handler| {
                errors.iter().any(|p| {
                    p.subject
                        .as_ref()
                        .and_then(|s| s.name.as_ref())
                        .is_some_and(|n| *n == h.name)
                })
            };
            let more: Vec<_> = handlers
                .iter()
                .filter(|h| !flagged(h))
                .flat_map(|h| params_problems(&registry, h))
                .collect();
            errors.extend(more);
            println!("{}", mixer_config::Error::Invalid { errors, warnings });
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    // The validator leaves handler params to the adapters: ask each one,
    // without building anything (no port bound, no file opened).
    let problems: Vec<_> = config
        .handlers
        .values()
        .flat_map(|h| params_problems(&registry, h))
        .collect();
    for w in &config.warnings {
        println!("warning: {w}");
    }
    if problems.is_empty() {
        println!(
            "ok: {count} documents, {} handlers, {} instances, {} rules",
            config.handlers.len(),
            config.instances.len(),
            config.rules.len()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        let n = problems.len();
        println!(
            "invalid configuration ({n} {}):",
            if n == 1 { "problem" } else { "problems" }
        );
        for p in problems {
            println!("{p}");
        }
        Ok(ExitCode::from(1))
    }
}

/// What `handler`'s adapter finds wrong with its params, each problem
/// located at its field.
fn params_problems(registry: &Registry, handler: &Handler) -> Vec<Problem> {
    let params = Params::new(handler.params.clone());
    match registry.validate(&handler.adapter, &params) {
        Ok(_) => Vec::new(),
        Err(e) if e.field_errors().is_empty() => vec![handler.params_problem("", e.to_string())],
        Err(e) => e
            .field_errors()
            .iter()
            .map(|f| handler.params_problem(&f.path, f.message.clone()))
            .collect(),
    }
}
