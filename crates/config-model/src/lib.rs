//! Mixer configuration: attribute manifests, the expression language, and
//! Istio's `config.istio.io/v1alpha2` handler/instance/rule documents,
//! loaded from YAML or JSON and validated with every problem reported at
//! once.
//!
//! This crate knows no concrete adapter or template: the host describes
//! its own as data ([`schema::Schemas`]), and the validator checks config
//! against them.
//!
//! # Configuration
//!
//! Operators drive a Mixer with three kinds of object, each named
//! `name.kind.namespace`:
//!
//! - a **handler** (`kind: handler`: `compiledAdapter` + `params`) is a
//!   configured adapter;
//! - an **instance** (`kind: instance`: `compiledTemplate` + `params`) maps
//!   a template's fields to expressions over attributes;
//! - a **rule** (`kind: rule`: `match`, `actions[]` of `handler` +
//!   `instances`, header operations) says when to send which instances to
//!   which handler.
//!
//! `kind: attributemanifest` documents add attributes to the standard
//! vocabulary ([`manifest::Manifest::standard`]). The older per-adapter
//! kinds (`kind: listchecker`, `kind: memquota`...) are handlers whose whole
//! `spec` is the params, and the per-template kinds (`kind: metric`,
//! `kind: listentry`...) instances likewise; which kinds those are follows
//! from the [`schema::Schemas`] handed in. A Kubernetes `kind: List` is
//! unwrapped. Documents of other kinds or API groups are skipped with a
//! warning ([`model::Config::warnings`]), never an error: a directory of
//! mesh config may hold proxy-side objects too.
//!
//! Loading ([`load::Documents`]) reads YAML streams (`---`-separated) and
//! JSON from strings, files and directories (recursively, `*.yaml`,
//! `*.yml`, `*.json`, in sorted order, hidden entries skipped; at most
//! [`load::MAX_SOURCE_BYTES`] per source). Validation
//! ([`validate::Validator`]) then checks, in one pass, document envelopes,
//! unknown fields, duplicate names, unknown adapters and templates,
//! attribute manifests, every expression (parse, type-check, fit to its
//! template field; a `match` must be BOOL), every reference of every rule,
//! and that each handler's adapter takes the templates of the instances
//! sent to it. Handler params are left to the adapters. The result is a
//! [`model::Config`] with every expression compiled and every reference
//! fully qualified, or [`Error::Invalid`] listing every [`Problem`], each
//! naming the source and line, the object, and the field.
//!
//! References in a rule are scoped by the rule's namespace: `h` means
//! `h.handler.<rule namespace>` (or `.instance.`); `a.b` is tried as
//! `a.b.<rule namespace>` (old style, `b` is the kind), then as
//! `a.handler.b` (`b` is the namespace); two dots or more is fully
//! qualified ([`validate::reference_candidates`]). Documents without a
//! namespace are in the default namespace (`istio-system` unless set), whose
//! rules apply to every request ([`model::Config::rules_for`]).
//!
//! ```
//! use mixer_attributes::ValueType;
//! use mixer_config::load::Documents;
//! use mixer_config::schema::{AdapterSchema, FieldSchema, Schemas, TemplateSchema, Types, Variety};
//! use mixer_config::validate::Validator;
//!
//! // What the host supports.
//! let schemas = Schemas::new()
//!     .template(TemplateSchema {
//!         name: "listentry".into(),
//!         variety: Variety::Check,
//!         fields: vec![FieldSchema::expr(
//!             "value",
//!             Types::OneOf(vec![ValueType::String, ValueType::IpAddress]),
//!         )
//!         .required()],
//!     })
//!     .adapter(AdapterSchema {
//!         name: "listchecker".into(),
//!         templates: Some(vec!["listentry".into()]),
//!     });
//!
//! let yaml = r#"
//! apiVersion: config.istio.io/v1alpha2
//! kind: handler
//! metadata: {name: versions, namespace: default}
//! spec:
//!   compiledAdapter: listchecker
//!   params: {overrides: [v1, v2]}
//! ---
//! apiVersion: config.istio.io/v1alpha2
//! kind: instance
//! metadata: {name: version, namespace: default}
//! spec:
//!   compiledTemplate: listentry
//!   params:
//!     value: source.labels["version"] | "none"
//! ---
//! apiVersion: config.istio.io/v1alpha2
//! kind: rule
//! metadata: {name: whitelist, namespace: default}
//! spec:
//!   match: destination.labels["app"] == "ratings"
//!   actions:
//!   - handler: versions
//!     instances: [version]
//! "#;
//! let mut docs = Documents::new();
//! docs.add_yaml("whitelist.yaml", yaml);
//! let config = Validator::new(&schemas).validate(docs)?;
//!
//! let rule = &config.rules[0];
//! assert_eq!(rule.name.to_string(), "whitelist.rule.default");
//! assert_eq!(rule.actions[0].handler, "versions.handler.default");
//! assert_eq!(rule.actions[0].instances, ["version.instance.default"]);
//! assert_eq!(config.handlers["versions.handler.default"].params["overrides"][0], "v1");
//!
//! // A broken config: every problem, located.
//! let mut docs = Documents::new();
//! docs.add_yaml("whitelist.yaml", &yaml.replace("handler: versions", "handler: version"));
//! let err = Validator::new(&schemas).validate(docs).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "invalid configuration (1 problem):\n\
//!      whitelist.yaml:23: rule 'whitelist.rule.default' field actions[0].handler: \
//!      handler 'version' not found (looked for version.handler.default)"
//! );
//! # Ok::<(), mixer_config::Error>(())
//! ```
//!
//! # Expressions
//!
//! Rule conditions and instance fields are written in the original Mixer's
//! expression language; [`expr`] parses, type-checks (against the
//! [`manifest`]), compiles and evaluates them.

pub mod error;
pub mod expr;
pub mod load;
pub mod manifest;
pub mod model;
pub mod schema;
pub mod validate;

pub use error::{Error, Problem};
