//! Shared by the config tests: the templates and adapters of the adapter
//! spec, described as data the way a host would.

#![allow(dead_code)]

use std::path::PathBuf;

use mixer_attributes::ValueType as T;
use mixer_config::Error;
use mixer_config::load::Documents;
use mixer_config::model::Config;
use mixer_config::schema::{AdapterSchema, FieldSchema, Schemas, TemplateSchema, Types, Variety};
use mixer_config::validate::Validator;

fn template(name: &str, variety: Variety, fields: Vec<FieldSchema>) -> TemplateSchema {
    TemplateSchema {
        name: name.into(),
        variety,
        fields,
    }
}

fn adapter(name: &str, templates: &[&str]) -> AdapterSchema {
    AdapterSchema {
        name: name.into(),
        templates: Some(templates.iter().map(|t| (*t).to_owned()).collect()),
    }
}

/// The six templates and eight adapters of the adapter spec.
pub(crate) fn schemas() -> Schemas {
    let resource = || {
        [
            FieldSchema::expr("monitoredResourceType", Types::OneOf(vec![T::String])),
            FieldSchema::map("monitoredResourceDimensions", Types::Any),
        ]
    };
    let mut metric = vec![
        FieldSchema::expr(
            "value",
            Types::OneOf(vec![T::Int64, T::Double, T::Duration, T::String]),
        )
        .required(),
        FieldSchema::map("dimensions", Types::Any),
    ];
    metric.extend(resource());
    let mut logentry = vec![
        FieldSchema::map("variables", Types::Any),
        FieldSchema::expr("timestamp", Types::OneOf(vec![T::Timestamp])),
        FieldSchema::expr("severity", Types::OneOf(vec![T::String])),
    ];
    logentry.extend(resource());
    Schemas::new()
        .template(template("checknothing", Variety::Check, vec![]))
        .template(template(
            "listentry",
            Variety::Check,
            vec![
                FieldSchema::expr("value", Types::OneOf(vec![T::String, T::IpAddress])).required(),
            ],
        ))
        .template(template(
            "quota",
            Variety::Quota,
            vec![FieldSchema::map("dimensions", Types::Any)],
        ))
        .template(template("metric", Variety::Report, metric))
        .template(template("logentry", Variety::Report, logentry))
        .template(template("reportnothing", Variety::Report, vec![]))
        .adapter(adapter("denier", &["checknothing", "listentry", "quota"]))
        .adapter(adapter("listchecker", &["listentry"]))
        .adapter(adapter("memquota", &["quota"]))
        .adapter(adapter("redisquota", &["quota"]))
        .adapter(adapter("prometheus", &["metric"]))
        .adapter(adapter("stdio", &["logentry", "metric"]))
        .adapter(adapter("fluentd", &["logentry"]))
        .adapter(adapter("statsd", &["metric"]))
}

/// `testdata/configs`.
pub(crate) fn configs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata/configs")
}

/// Loads and validates a path under `testdata/configs`.
pub(crate) fn load(relative: &str) -> Result<Config, Error> {
    let mut docs = Documents::new();
    docs.add_path(configs_dir().join(relative))?;
    Validator::new(&schemas()).validate(docs)
}

/// Validates YAML text named `inline.yaml`.
pub(crate) fn load_str(yaml: &str) -> Result<Config, Error> {
    let mut docs = Documents::new();
    docs.add_yaml("inline.yaml", yaml);
    Validator::new(&schemas()).validate(docs)
}

/// The problems of an invalid config, printed, with the path of
/// `testdata/configs/` removed: (errors, warnings).
pub(crate) fn problems(result: Result<Config, Error>) -> (Vec<String>, Vec<String>) {
    let prefix = format!("{}/", configs_dir().display());
    let print = |p: &mixer_config::Problem| p.to_string().replace(&prefix, "");
    match result {
        Err(Error::Invalid { errors, warnings }) => (
            errors.iter().map(print).collect(),
            warnings.iter().map(print).collect(),
        ),
        Err(other) => panic!("not a validation error: {other}"),
        Ok(config) => panic!("unexpectedly valid: {config:#?}"),
    }
}

/// The warnings of a valid config, printed like [`problems`].
pub(crate) fn warnings(config: &Config) -> Vec<String> {
    let prefix = format!("{}/", configs_dir().display());
    config
        .warnings
        .iter()
        .map(|p| p.to_string().replace(&prefix, ""))
        .collect()
}
