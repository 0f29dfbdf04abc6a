use std::time::Duration;

use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<StatsdParams, Error> {
    StatsdParams::parse(&Params::new(v))
}

#[test]
fn defaults() {
    let p = parse(json!({})).unwrap();
    assert_eq!(p.address, "localhost:8125");
    assert_eq!(p.prefix, "");
    assert_eq!(p.flush_duration, Duration::from_millis(300));
    assert_eq!(p.flush_bytes, 512);
    assert_eq!(p.sampling_rate, 1.0);
    assert!(p.metrics.is_empty());
    let p = parse(json!({"metrics": {"a.b.c": {"type": "GAUGE"}}})).unwrap();
    assert_eq!(p.metrics["a.b.c"].kind, MetricType::Gauge);
    assert_eq!(p.metrics["a.b.c"].name_template, None);
}

#[test]
fn every_problem_names_its_field() {
    let e = parse(json!({
        "address": "nohost",
        "flushDuration": "0s",
        "flushBytes": 70000,
        "samplingRate": 0,
        "prefx": "x",
        "metrics": {
            "a.i": {"type": "TIMER"},
            "b.i": {"nameTemplate": "{{.x}}"},
            "c.i": {"type": "COUNTER", "nameTemplate": "{{.x"},
            "d.i": {"type": "COUNTER", "template": "t"},
        },
    }))
    .unwrap_err();
    let paths: Vec<&str> = e.field_errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "address",
            "flushDuration",
            "flushBytes",
            "samplingRate",
            "metrics[\"a.i\"].type",
            "metrics[\"b.i\"].type",
            "metrics[\"c.i\"].nameTemplate",
            "metrics[\"d.i\"].template",
            "prefx",
        ]
    );
    assert!(e.to_string().contains("unclosed `{{`"), "{e}");
    let e = parse(json!({"metrics": ["x"]})).unwrap_err();
    assert_eq!(e.field_errors()[0].path, "metrics");
}
