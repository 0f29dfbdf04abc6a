//! Loading realistic configurations and asserting the model they give.

mod config_support;

use config_support::{load, warnings};
use mixer_attributes::ValueType;
use mixer_config::model::{FieldValue, HeaderOperationKind};
use serde_json::json;

fn dims(value: &FieldValue) -> Vec<(&str, ValueType)> {
    match value {
        FieldValue::Map(map) => map
            .iter()
            .map(|(k, e)| (k.as_str(), e.result_type()))
            .collect(),
        FieldValue::Expr(e) => panic!("expected a map, got {}", e.source()),
    }
}

fn expr(value: &FieldValue) -> (&str, ValueType) {
    match value {
        FieldValue::Expr(e) => (e.source(), e.result_type()),
        FieldValue::Map(_) => panic!("expected an expression"),
    }
}

#[test]
fn deny_rule_on_a_header() {
    let config = load("valid/deny.yaml").unwrap();
    let handler = &config.handlers["denyblocked.handler.istio-system"];
    assert_eq!(handler.adapter, "denier");
    assert_eq!(
        handler.params["status"],
        json!({"code": 7, "message": "Not allowed"})
    );
    assert_eq!(
        handler.origin.to_string(),
        format!(
            "{}:2",
            config_support::configs_dir()
                .join("valid/deny.yaml")
                .display()
        )
    );
    let instance = &config.instances["denyrequest.instance.istio-system"];
    assert_eq!(instance.template, "checknothing");
    assert!(instance.fields.is_empty());
    let [rule] = config.rules.as_slice() else {
        panic!("one rule")
    };
    assert_eq!(rule.name.to_string(), "denyblockeduser.rule.istio-system");
    assert_eq!(rule.namespace(), "istio-system");
    let condition = rule.condition.as_ref().unwrap();
    assert!(
        condition
            .source()
            .starts_with(r#"(request.headers["x-user"] | "") == "mallory""#)
    );
    assert_eq!(rule.actions.len(), 1);
    assert_eq!(rule.actions[0].handler, "denyblocked.handler.istio-system");
    assert_eq!(
        rule.actions[0].instances,
        ["denyrequest.instance.istio-system"]
    );
    assert!(config.warnings.is_empty());
}

#[test]
fn listchecker_whitelist_in_a_namespace() {
    let config = load("valid/whitelist.yaml").unwrap();
    assert_eq!(
        config.handlers["versions.handler.default"].params["overrides"],
        json!(["v1", "v2"])
    );
    let value = &config.instances["appversion.instance.default"].fields["value"];
    assert_eq!(
        expr(value),
        (r#"source.labels["version"]"#, ValueType::String)
    );
    let value = &config.instances["sourceip.instance.default"].fields["value"];
    assert_eq!(
        expr(value),
        (r#"source.ip | ip("0.0.0.0")"#, ValueType::IpAddress)
    );
    let rule = &config.rules[0];
    assert_eq!(rule.namespace(), "default");
    // `versions.default` (b = namespace), a full name, and a bare name.
    assert_eq!(rule.actions[0].handler, "versions.handler.default");
    assert_eq!(rule.actions[0].name.as_deref(), Some("version-check"));
    assert_eq!(rule.actions[0].instances, ["appversion.instance.default"]);
    assert_eq!(rule.actions[1].handler, "ipallow.handler.default");
    assert_eq!(rule.actions[1].instances, ["sourceip.instance.default"]);
    let request = &rule.request_header_operations[0];
    assert_eq!(
        (request.name.as_str(), request.values.as_slice()),
        ("x-checked-by", &["\"mixer\"".to_owned()][..])
    );
    assert_eq!(request.operation, HeaderOperationKind::Replace);
    let response = &rule.response_header_operations[0];
    assert_eq!(
        (response.name.as_str(), response.operation),
        ("x-internal", HeaderOperationKind::Remove)
    );
}

#[test]
fn memquota_rate_limit_with_proxy_side_documents_warned() {
    let config = load("valid/ratelimit.yaml").unwrap();
    let handler = &config.handlers["quotahandler.handler.istio-system"];
    assert_eq!(handler.adapter, "memquota");
    assert_eq!(
        handler.params["quotas"][0]["overrides"][1]["dimensions"]["source"],
        "10.28.11.20"
    );
    let instance = &config.instances["requestcountquota.instance.istio-system"];
    assert_eq!(
        dims(&instance.fields["dimensions"]),
        [
            ("destination", ValueType::String),
            ("destinationVersion", ValueType::String),
            ("source", ValueType::String)
        ]
    );
    let rule = &config.rules[0];
    assert!(rule.condition.is_none(), "no match means always");
    assert_eq!(
        rule.actions[0].instances,
        ["requestcountquota.instance.istio-system"]
    );
    assert_eq!(
        warnings(&config),
        [
            "valid/ratelimit.yaml:39: document 'request-count.QuotaSpec.istio-system': unknown kind 'QuotaSpec' (not handler, instance, rule, attributemanifest, nor a known adapter or template); document skipped",
            "valid/ratelimit.yaml:50: document 'request-count.QuotaSpecBinding.istio-system': unknown kind 'QuotaSpecBinding' (not handler, instance, rule, attributemanifest, nor a known adapter or template); document skipped",
        ]
    );
}

#[test]
fn default_telemetry_metrics_and_access_log() {
    let config = load("valid/telemetry.yaml").unwrap();
    // The attribute manifest extended the vocabulary the instances use.
    assert_eq!(
        config.manifest.get("source.workload.version"),
        Some(ValueType::String)
    );
    let metrics = [
        "requestcount",
        "requestduration",
        "requestsize",
        "responsesize",
    ];
    let types = [
        ValueType::Int64,
        ValueType::Duration,
        ValueType::Int64,
        ValueType::Int64,
    ];
    for (name, ty) in metrics.iter().zip(types) {
        let instance = &config.instances[&format!("{name}.instance.istio-system")];
        assert_eq!(instance.template, "metric");
        assert_eq!(expr(&instance.fields["value"]).1, ty, "{name}");
        let dims = dims(&instance.fields["dimensions"]);
        assert!(
            dims.contains(&("response_code", ValueType::Int64)),
            "{name}: {dims:?}"
        );
    }
    let count = &config.instances["requestcount.instance.istio-system"];
    assert_eq!(dims(&count.fields["dimensions"]).len(), 10);
    assert_eq!(
        expr(&count.fields["monitoredResourceType"]),
        (r#""UNSPECIFIED""#, ValueType::String)
    );
    let log = &config.instances["accesslog.instance.istio-system"];
    assert_eq!(log.template, "logentry");
    assert_eq!(expr(&log.fields["timestamp"]).1, ValueType::Timestamp);
    let vars = dims(&log.fields["variables"]);
    assert_eq!(vars.len(), 15);
    assert!(vars.contains(&("sourceIp", ValueType::IpAddress)));
    assert!(vars.contains(&("latency", ValueType::Duration)));
    assert!(vars.contains(&("mtls", ValueType::Bool)));

    assert_eq!(
        config.handlers["prometheus.handler.istio-system"].params["metrics"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert_eq!(
        config.handlers["stdio.handler.istio-system"].adapter,
        "stdio"
    );
    let rules: Vec<_> = config.rules.iter().map(|r| r.name.to_string()).collect();
    assert_eq!(
        rules,
        ["promhttp.rule.istio-system", "stdio.rule.istio-system"]
    );
    assert_eq!(
        config.rules[0].actions[0].instances,
        metrics.map(|m| format!("{m}.instance.istio-system"))
    );
    assert_eq!(
        config.rules[1].actions[0].handler,
        "stdio.handler.istio-system"
    );
}

#[test]
fn old_style_per_adapter_and_per_template_kinds() {
    let config = load("valid/oldstyle.yaml").unwrap();
    let denier = &config.handlers["handler.denier.istio-system"];
    assert_eq!(denier.adapter, "denier");
    assert_eq!(
        denier.params,
        json!({"status": {"code": 7, "message": "Not allowed"}})
    );
    assert_eq!(
        config.instances["denyrequest.checknothing.istio-system"].template,
        "checknothing"
    );
    let metric = &config.instances["doublerequestcount.metric.istio-system"];
    assert_eq!(metric.template, "metric");
    // snake_case field names, as early configs wrote them, are accepted.
    assert_eq!(
        expr(&metric.fields["monitoredResourceType"]).0,
        r#""UNSPECIFIED""#
    );
    let [deny, check] = config.rules.as_slice() else {
        panic!("two rules")
    };
    assert_eq!(deny.actions[0].handler, "handler.denier.istio-system");
    assert_eq!(
        deny.actions[0].instances,
        ["denyrequest.checknothing.istio-system"]
    );
    assert_eq!(
        check.actions[0].handler,
        "staticversion.listchecker.istio-system"
    );
    assert_eq!(
        check.actions[0].instances,
        ["appversion.listentry.istio-system"]
    );
    assert_eq!(
        check.actions[1].handler,
        "doublehandler.prometheus.istio-system"
    );
}

#[test]
fn a_directory_in_sorted_order_skipping_hidden_entries() {
    let config = load("tree").unwrap();
    let rules: Vec<_> = config.rules.iter().map(|r| r.name.to_string()).collect();
    // a.yaml, then sub/b.json, then z.yml; `.hidden/` (a Kubernetes
    // ConfigMap's second copy) and README.md are not read.
    assert_eq!(
        rules,
        [
            "first.rule.istio-system",
            "second.rule.ns1",
            "third.rule.istio-system"
        ]
    );
    assert_eq!(config.handlers.len(), 1);
}

#[test]
fn every_valid_config_together() {
    let config = load("valid").unwrap();
    assert_eq!(config.rules.len(), 7);
    assert_eq!(config.default_namespace, "istio-system");
}

#[test]
fn a_config_can_be_shared_by_every_request_thread() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<mixer_config::model::Config>();
    shared::<mixer_config::Error>();
}
