//! Broken configurations and the exact errors they give: each names the
//! file and line, the object, the field, and what is wrong, and every
//! problem of a file is reported at once.

mod config_support;

use config_support::{load, problems};

fn assert_problems(file: &str, errors: &[&str], warnings: &[&str]) {
    let (got_errors, got_warnings) = problems(load(file));
    assert_eq!(got_errors, errors, "errors of {file}");
    assert_eq!(got_warnings, warnings, "warnings of {file}");
}

#[test]
fn dangling_mistaken_and_unsupported_references() {
    assert_problems(
        "broken/references.yaml",
        &[
            "broken/references.yaml:26: rule 'broken.rule.default' field actions[0].handler: handler 'denyall' not found (looked for denyall.handler.default)",
            "broken/references.yaml:27: rule 'broken.rule.default' field actions[0].instances[0]: instance 'user' not found (looked for user.instance.default)",
            "broken/references.yaml:30: rule 'broken.rule.default' field actions[1].instances[0]: handler 'quotas.handler.istio-system' (adapter 'memquota') does not support template 'listentry' of instance 'user.instance.istio-system'",
            "broken/references.yaml:31: rule 'broken.rule.default' field actions[1].instances[1]: instance 'nosuch.metric' not found (looked for nosuch.metric.default, nosuch.instance.metric)",
            "broken/references.yaml:32: rule 'broken.rule.default' field actions[2].handler: 'user.instance.istio-system' resolves to instance 'user.instance.istio-system', which is not a handler",
            "broken/references.yaml:33: rule 'broken.rule.default' field actions[2].instances: missing required field",
        ],
        &[],
    );
}

#[test]
fn unknown_and_missing_fields() {
    assert_problems(
        "broken/fields.yaml",
        &[
            "broken/fields.yaml:5: handler 'deny.handler.istio-system' field compiledAdapter: missing required field",
            "broken/fields.yaml:6: handler 'deny.handler.istio-system' field compiledAdaptor: unknown field (expected one of: compiledAdapter, params)",
            "broken/fields.yaml:16: instance 'requestcount.instance.istio-system' field params.dimension: unknown field (expected one of: value, dimensions, monitoredResourceType, monitoredResourceDimensions)",
            "broken/fields.yaml:21: rule document field metadata.name: missing required field",
            "broken/fields.yaml:31: rule 'typo.rule.istio-system' field matches: unknown field (expected one of: match, actions, requestHeaderOperations, responseHeaderOperations)",
            "broken/fields.yaml:33: rule 'typo.rule.istio-system' field actions[0].instances: missing required field",
            "broken/fields.yaml:34: rule 'typo.rule.istio-system' field actions[0].instance: unknown field (expected one of: handler, instances, name)",
            "broken/fields.yaml:37: rule 'typo.rule.istio-system' field responseHeaderOperations[0].operation: 'DELETE' is not one of: REPLACE, REMOVE, APPEND",
        ],
        &[],
    );
}

#[test]
fn expressions_that_do_not_parse_check_or_fit() {
    assert_problems(
        "broken/expressions.yaml",
        &[
            "broken/expressions.yaml:9: instance 'requestcount.instance.istio-system' field params.value: expression of type BOOL does not fit: expected INT64, DOUBLE, DURATION or STRING",
            "broken/expressions.yaml:12: instance 'requestcount.instance.istio-system' field params.dimensions[response_code]: 1:17: operator '|' argument 2: expected INT64 (the type of argument 1), got STRING\n | response.code | \"200\"\n |                 ^^^^^",
            "broken/expressions.yaml:13: instance 'requestcount.instance.istio-system' field params.dimensions[destination]: 1:1: unknown attribute destination.servce.host\n | destination.servce.host\n | ^^^^^^^^^^^^^^^^^^^^^^^",
            "broken/expressions.yaml:25: instance 'accesslog.instance.istio-system' field params.variables[path]: 1:15: expected an operand, found end of expression\n | request.path +\n |               ^",
            "broken/expressions.yaml:33: rule 'notbool.rule.istio-system' field match: expression of type STRING does not fit: expected BOOL",
            "broken/expressions.yaml:41: rule 'badmatch.rule.istio-system' field match: 1:53: expected ')', found end of expression\n | request.path == \"/a\" && (source.labels[\"app\"] == \"x\"\n |                                                     ^",
        ],
        &[],
    );
}

#[test]
fn unknown_names_duplicates_manifests_and_syntax() {
    assert_problems(
        "broken/kinds.yaml",
        &[
            "broken/kinds.yaml:6: handler 'h.handler.istio-system' field compiledAdapter: unknown adapter 'opa'",
            "broken/kinds.yaml:13: instance 'i.instance.istio-system' field compiledTemplate: unknown template 'tracespan'",
            "broken/kinds.yaml:20: handler 'h.denier.istio-system': duplicate name: already defined at broken/kinds.yaml:15",
            "broken/kinds.yaml:39: attributemanifest 'extra.attributemanifest.istio-system' field attributes[request.size].valueType: attribute 'request.size' is declared as INT64 and as STRING",
            "broken/kinds.yaml:41: attributemanifest 'extra.attributemanifest.istio-system' field attributes[my.attr].valueType: unknown value type 'STRNG'",
            "broken/kinds.yaml:46: YAML syntax error: did not find expected ',' or '}' at line 46 column 1, while parsing a flow mapping at line 45 column 11",
            "broken/kinds.yaml:47: expected a mapping (a config document), found a list",
        ],
        &[
            "broken/kinds.yaml:27: apiVersion 'networking.istio.io/v1alpha3' is not config.istio.io/v1alpha2; document skipped",
        ],
    );
}

#[test]
fn the_error_lists_every_problem_of_every_file() {
    let err = load("broken").unwrap_err().to_string();
    let prefix = format!("{}/", config_support::configs_dir().display());
    let err = err.replace(&prefix, "");
    let mut lines = err.lines();
    assert_eq!(lines.next(), Some("invalid configuration (27 problems):"));
    // Files in sorted order, each file's problems by line.
    let first: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("broken/"))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_eq!(first, sorted);
    assert!(err.ends_with("warning: broken/kinds.yaml:27: apiVersion 'networking.istio.io/v1alpha3' is not config.istio.io/v1alpha2; document skipped"), "{err}");
}

#[test]
fn json_syntax_errors_and_documents_have_lines() {
    let mut docs = mixer_config::load::Documents::new();
    docs.add_json("a.json", "{\"kind\": \"rule\",\n \"metadata\": {\"name\": \"r\"},\n \"spec\": {\"bogus\": 1}}\n{\"kind\": ");
    let result = mixer_config::validate::Validator::new(&config_support::schemas()).validate(docs);
    let (errors, _) = problems(result);
    assert_eq!(
        errors,
        [
            "a.json:3: rule 'r.rule.istio-system' field bogus: unknown field (expected one of: match, actions, requestHeaderOperations, responseHeaderOperations)",
            "a.json:4: JSON syntax error: EOF while parsing a value at line 4 column 9",
        ]
    );
}

#[test]
fn a_json_array_of_documents_keeps_lines() {
    let mut docs = mixer_config::load::Documents::new();
    docs.add_json(
        "b.json",
        "[\n  {\"kind\": \"denier\", \"metadata\": {\"name\": \"d\"}},\n  {\"kind\": \"rule\",\n   \"metadata\": {\"name\": \"r\"},\n   \"spec\": {\"actions\": [{\"handler\": \"d.denier\",\n                \"instances\": [\"x\"]}]}}\n]",
    );
    let result = mixer_config::validate::Validator::new(&config_support::schemas()).validate(docs);
    let (errors, _) = problems(result);
    assert_eq!(
        errors,
        [
            "b.json:6: rule 'r.rule.istio-system' field actions[0].instances[0]: instance 'x' not found (looked for x.instance.istio-system)"
        ]
    );
}

#[test]
fn adapter_param_problems_are_located_like_the_others() {
    let config = config_support::load("valid").unwrap();
    let prefix = format!("{}/", config_support::configs_dir().display());
    let prometheus = &config.handlers["prometheus.handler.istio-system"];
    let problem = prometheus.params_problem(
        "metrics[1].kind",
        "'HISTOGRAM' is not one of: GAUGE, COUNTER, DISTRIBUTION",
    );
    assert_eq!(
        problem.to_string().replace(&prefix, ""),
        "valid/telemetry.yaml:97: handler 'prometheus.handler.istio-system' field params.metrics[1].kind: 'HISTOGRAM' is not one of: GAUGE, COUNTER, DISTRIBUTION"
    );
    // Per-adapter kinds: the params are the whole spec.
    let old = &config.handlers["doublehandler.prometheus.istio-system"];
    let problem = old.params_problem("metrics[0].instance_name", "unknown field");
    assert_eq!(
        problem.to_string().replace(&prefix, ""),
        "valid/oldstyle.yaml:69: handler 'doublehandler.prometheus.istio-system' field metrics[0].instance_name: unknown field"
    );
}

#[test]
fn items_of_a_kubernetes_list_keep_their_lines() {
    let yaml = "\
apiVersion: v1
kind: List
items:
- apiVersion: config.istio.io/v1alpha2
  kind: handler
  metadata:
    name: deny
  spec:
    compiledAdapter: denier
- apiVersion: config.istio.io/v1alpha2
  kind: rule
  metadata:
    name: r
  spec:
    match: request.path == 1
    actions:
    - handler: deny
      instances: [nothing]
";
    let (errors, _) = problems(config_support::load_str(yaml));
    assert_eq!(
        errors,
        [
            "inline.yaml:15: rule 'r.rule.istio-system' field match: 1:17: operator '==' argument 2: expected STRING (the type of argument 1), got INT64\n | request.path == 1\n |                 ^",
            "inline.yaml:18: rule 'r.rule.istio-system' field actions[0].instances[0]: instance 'nothing' not found (looked for nothing.instance.istio-system)",
        ]
    );
}
