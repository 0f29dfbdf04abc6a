//! `mixs validate`: every problem of a configuration, located.

use std::process::ExitCode;

use mixer_adapters::{Params, Registry};
use mixer_config::load::Documents;
use mixer_config::validate::Validator;

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
    let config = match Validator::new(&schemas).validate(docs) {
        Ok(config) => config,
        Err(e) => {
            println!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    // The validator leaves handler params to the adapters: ask each one,
    // without building anything (no port bound, no file opened).
    let mut problems = Vec::new();
    for handler in config.handlers.values() {
        let params = Params::new(handler.params.clone());
        if let Err(e) = registry.validate(&handler.adapter, &params) {
            if e.field_errors().is_empty() {
                problems.push(handler.params_problem("", e.to_string()));
            }
            for f in e.field_errors() {
                problems.push(handler.params_problem(&f.path, f.message.clone()));
            }
        }
    }
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
