//! Config problems name where they are: source and line, object, field.

use mixer_adapters::Registry;
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options};

fn problems(yaml: &str) -> Vec<String> {
    let d = Dispatcher::new(
        Registry::builtin(),
        tokio::runtime::Handle::current(),
        Options::default(),
    );
    let mut docs = Documents::new();
    docs.add_yaml("quota.yaml", yaml);
    let err = d.load(docs).unwrap_err();
    err.problems().iter().map(ToString::to_string).collect()
}

/// A `kind: handler` document whose `maxAmount` (line 9) is out of range.
const BAD_HANDLER: &str = "\
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: q, namespace: istio-system}
spec:
  compiledAdapter: memquota
  params:
    quotas:
    - name: rq.instance.istio-system
      maxAmount: -1
      validDuration: 1s
";

// The same bad param in a `kind: handler` document (params under
// `spec.params`) and in the older `kind: memquota` (params are `spec`):
// each located at the field's own line.
#[tokio::test]
async fn handler_params_problems_name_line_object_and_field() {
    let yaml = BAD_HANDLER.to_string()
        + "\
---
apiVersion: config.istio.io/v1alpha2
kind: memquota
metadata: {name: old, namespace: istio-system}
spec:
  quotas:
  - name: rq.instance.istio-system
    maxAmount: -1
    validDuration: 1s
";
    // Handlers are checked in name order.
    assert_eq!(
        problems(&yaml),
        [
            "quota.yaml:18: handler 'old.memquota.istio-system' field \
             quotas[0].maxAmount: must be >= 0, got -1",
            "quota.yaml:9: handler 'q.handler.istio-system' field \
             params.quotas[0].maxAmount: must be >= 0, got -1",
        ]
    );
}

// A broken rule and a bad handler param: one load reports both, not the
// params only once the rule is fixed.
#[tokio::test]
async fn one_load_reports_validation_and_params_problems() {
    let yaml = BAD_HANDLER.to_string()
        + "\
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: rq, namespace: istio-system}
spec:
  compiledTemplate: quota
  params: {dimensions: {}}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: limits, namespace: istio-system}
spec:
  actions:
  - handler: q
    instances: [rq]
  - handler: missing
    instances: [rq]
";
    assert_eq!(
        problems(&yaml),
        [
            "quota.yaml:26: rule 'limits.rule.istio-system' field \
             actions[1].handler: handler 'missing' not found \
             (looked for missing.handler.istio-system)",
            "quota.yaml:9: handler 'q.handler.istio-system' field \
             params.quotas[0].maxAmount: must be >= 0, got -1",
        ]
    );
}
