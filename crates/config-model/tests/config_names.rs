//! Config names and namespace scoping (semantics.md, "Config names and
//! scoping"): one test per rule.

mod config_support;

use config_support::{load_str, problems, schemas};
use mixer_config::load::Documents;
use mixer_config::model::Config;
use mixer_config::validate::Validator;

/// A denier handler and a checknothing instance named `name` in `ns`
/// (`ns` empty: no namespace given).
fn pair(name: &str, ns: &str) -> String {
    let ns = if ns.is_empty() {
        String::new()
    } else {
        format!("\n  namespace: {ns}")
    };
    format!(
        "---\napiVersion: config.istio.io/v1alpha2\nkind: handler\nmetadata:\n  name: {name}{ns}\nspec:\n  compiledAdapter: denier\n\
         ---\napiVersion: config.istio.io/v1alpha2\nkind: instance\nmetadata:\n  name: {name}{ns}\nspec:\n  compiledTemplate: checknothing\n"
    )
}

fn rule(name: &str, ns: &str, handler: &str, instance: &str) -> String {
    format!(
        "---\napiVersion: config.istio.io/v1alpha2\nkind: rule\nmetadata:\n  name: {name}\n  namespace: {ns}\nspec:\n  actions:\n  - handler: {handler}\n    instances: [{instance}]\n"
    )
}

/// The (handler, instance) the first rule's first action resolved to.
fn resolved(config: &Config) -> (&str, &str) {
    let action = &config.rules[0].actions[0];
    (&action.handler, &action.instances[0])
}

#[test]
fn objects_are_named_name_kind_namespace_with_the_default_namespace() {
    let config = load_str(&pair("h", "")).unwrap();
    assert!(config.handlers.contains_key("h.handler.istio-system"));
    assert!(config.instances.contains_key("h.instance.istio-system"));
    let config = load_str(&pair("h", "ns1")).unwrap();
    assert!(config.handlers.contains_key("h.handler.ns1"));
}

#[test]
fn the_default_namespace_is_configurable() {
    let mut docs = Documents::new();
    docs.add_yaml(
        "inline.yaml",
        &(pair("h", "") + &rule("r", "mesh", "h", "h")),
    );
    let schemas = schemas();
    let config = Validator::new(&schemas)
        .default_namespace("mesh")
        .validate(docs)
        .unwrap();
    assert_eq!(config.default_namespace, "mesh");
    assert_eq!(resolved(&config), ("h.handler.mesh", "h.instance.mesh"));
    assert_eq!(config.rules_for(Some("other")).count(), 1);
}

#[test]
fn a_name_without_a_dot_is_in_the_rules_namespace() {
    let config = load_str(&(pair("h", "ns1") + &rule("r", "ns1", "h", "h"))).unwrap();
    assert_eq!(resolved(&config), ("h.handler.ns1", "h.instance.ns1"));
    // Not looked for in the default namespace.
    let result = load_str(&(pair("h", "") + &rule("r", "ns1", "h", "h")));
    let (errors, _) = problems(result);
    assert_eq!(
        errors,
        [
            "inline.yaml:23: rule 'r.rule.ns1' field actions[0].handler: handler 'h' not found (looked for h.handler.ns1)",
            "inline.yaml:24: rule 'r.rule.ns1' field actions[0].instances[0]: instance 'h' not found (looked for h.instance.ns1)",
        ]
    );
}

#[test]
fn one_dot_is_name_kind_in_the_rules_namespace_first() {
    // `h.denier` is the old-style `h.denier.<rule ns>`.
    let old = "---\napiVersion: config.istio.io/v1alpha2\nkind: denier\nmetadata:\n  name: h\n  namespace: ns1\n\
               ---\napiVersion: config.istio.io/v1alpha2\nkind: checknothing\nmetadata:\n  name: i\n  namespace: ns1\n";
    let config =
        load_str(&(old.to_owned() + &rule("r", "ns1", "h.denier", "i.checknothing"))).unwrap();
    assert_eq!(resolved(&config), ("h.denier.ns1", "i.checknothing.ns1"));
    // When both readings exist, the kind reading wins: `h.denier.ns1`
    // before `h.handler.denier`.
    let both =
        old.to_owned() + &pair("h", "denier") + &rule("r", "ns1", "h.denier", "i.checknothing");
    assert_eq!(resolved(&load_str(&both).unwrap()).0, "h.denier.ns1");
}

#[test]
fn one_dot_is_then_name_namespace() {
    let config = load_str(&(pair("h", "ns2") + &rule("r", "ns1", "h.ns2", "h.ns2"))).unwrap();
    assert_eq!(resolved(&config), ("h.handler.ns2", "h.instance.ns2"));
}

#[test]
fn two_dots_are_fully_qualified() {
    let text = pair("h", "ns2") + &rule("r", "ns1", "h.handler.ns2", "h.instance.ns2");
    assert_eq!(
        resolved(&load_str(&text).unwrap()),
        ("h.handler.ns2", "h.instance.ns2")
    );
    // A fully-qualified name is taken as written, never re-scoped.
    let (errors, _) = problems(load_str(
        &(pair("h", "ns2") + &rule("r", "ns1", "h.handler.ns1", "h.instance.ns2")),
    ));
    assert_eq!(
        errors,
        [
            "inline.yaml:25: rule 'r.rule.ns1' field actions[0].handler: handler 'h.handler.ns1' not found (looked for h.handler.ns1)"
        ]
    );
}

#[test]
fn the_same_name_under_two_kinds_is_two_objects() {
    let old = "---\napiVersion: config.istio.io/v1alpha2\nkind: denier\nmetadata:\n  name: h\n";
    let config = load_str(&(pair("h", "") + old)).unwrap();
    let names: Vec<_> = config.handlers.keys().collect();
    assert_eq!(names, ["h.denier.istio-system", "h.handler.istio-system"]);
}

#[test]
fn references_may_come_before_definitions() {
    let text = rule("r", "ns1", "h", "h") + &pair("h", "ns1");
    assert_eq!(
        resolved(&load_str(&text).unwrap()),
        ("h.handler.ns1", "h.instance.ns1")
    );
}

#[test]
fn a_request_gets_its_namespace_rules_plus_the_default_namespace_rules() {
    let text = pair("h", "")
        + &pair("h", "ns1")
        + &pair("h", "ns2")
        + &rule("d1", "istio-system", "h", "h")
        + &rule("a", "ns1", "h", "h")
        + &rule("b", "ns2", "h", "h")
        + &rule("d2", "istio-system", "h", "h");
    let config = load_str(&text).unwrap();
    let names = |ns: Option<&str>| -> Vec<String> {
        config.rules_for(ns).map(|r| r.name.name.clone()).collect()
    };
    assert_eq!(names(Some("ns1")), ["d1", "a", "d2"]);
    assert_eq!(names(Some("ns2")), ["d1", "b", "d2"]);
    // A namespace with no rules, or no namespace: the default's only.
    assert_eq!(names(Some("ns3")), ["d1", "d2"]);
    assert_eq!(names(None), ["d1", "d2"]);
    assert_eq!(names(Some("istio-system")), ["d1", "d2"]);
}

#[test]
fn the_request_namespace_follows_the_reporter_kind() {
    let ns = Config::request_namespace;
    assert_eq!(ns(Some("outbound"), Some("src"), Some("dst")), Some("src"));
    assert_eq!(ns(Some("inbound"), Some("src"), Some("dst")), Some("dst"));
    assert_eq!(ns(None, Some("src"), Some("dst")), Some("dst"));
    assert_eq!(ns(Some("outbound"), None, Some("dst")), None);
}
