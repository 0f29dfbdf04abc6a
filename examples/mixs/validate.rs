//! `mixs validate`: every problem of a configuration, located.

use std::process::ExitCode;

use mixer_adapters::Registry;
use mixer_config::load::Documents;
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
            errors.extend(mixer_dispatch::params_problems(
                &handlers, &registry, &errors,
            ));
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
        .flat_map(|h| mixer_dispatch::params_problems_of(&registry, h))
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
        let invalid = mixer_config::Error::Invalid {
            errors: problems,
            warnings: Vec::new(),
        };
        println!("{invalid}");
        Ok(ExitCode::from(1))
    }
}
