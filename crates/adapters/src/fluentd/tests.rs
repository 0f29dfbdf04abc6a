use std::time::Duration;

use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<FluentdParams, Error> {
    FluentdParams::parse(&Params::new(v))
}

#[test]
fn defaults() {
    let p = parse(json!({})).unwrap();
    assert_eq!(
        p,
        FluentdParams {
            address: "localhost:24224".into(),
            integer_duration: false,
            instance_buffer_size: 1024,
            max_batch_size_bytes: 8 << 20,
            push_interval: Duration::from_secs(60),
            push_timeout: Duration::from_secs(60),
        }
    );
}

#[test]
fn every_problem_names_its_field() {
    let e = parse(json!({
        "address": "fluentd",
        "integerDuration": "yes",
        "instanceBufferSize": 0,
        "maxBatchSizeBytes": -1,
        "pushIntervalDuration": "0s",
        "pushTimeoutDuration": "soon",
        "tag": "x",
    }))
    .unwrap_err();
    let paths: Vec<&str> = e.field_errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "address",
            "integerDuration",
            "instanceBufferSize",
            "maxBatchSizeBytes",
            "pushIntervalDuration",
            "pushTimeoutDuration",
            "tag",
        ]
    );
}
