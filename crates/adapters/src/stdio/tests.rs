use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::*;

fn parse(v: serde_json::Value) -> Result<StdioParams, Error> {
    StdioParams::parse(&Params::new(v))
}

#[test]
fn defaults() {
    let p = parse(json!({})).unwrap();
    assert_eq!(p.log_stream, LogStream::Stdout);
    assert_eq!(p.output_path, None);
    assert!(p.output_as_json);
    assert_eq!((p.output_level, p.metric_level), (Level::Info, Level::Info));
    assert_eq!(
        p.rotation,
        Rotation {
            max_bytes: 100 << 20,
            max_age: Duration::from_secs(30 * 86_400),
            max_files: 1000,
        }
    );
}

#[test]
fn every_problem_names_its_field() {
    let e = parse(json!({
        "logStream": "SYSLOG",
        "outputAsJson": 1,
        "outputLevel": "DEBUG",
        "metricLevel": "info",
        "severityLevels": {"crit": "FATAL"},
        "maxMegabytesBeforeRotation": 0,
        "maxDaysBeforeRotation": -1,
        "maxRotatedFiles": -1,
        "outputFile": "x",
    }))
    .unwrap_err();
    let paths: Vec<&str> = e.field_errors().iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            "logStream",
            "outputAsJson",
            "outputLevel",
            "metricLevel",
            "severityLevels.crit",
            "maxMegabytesBeforeRotation",
            "maxDaysBeforeRotation",
            "maxRotatedFiles",
            "outputFile",
        ]
    );
    let e = parse(json!({"logStream": "FILE"})).unwrap_err();
    assert_eq!(e.field_errors()[0].path, "outputPath");
    let e = parse(json!({"logStream": "STDERR", "outputPath": "/x"})).unwrap_err();
    assert_eq!(e.field_errors()[0].path, "outputPath");
}

#[test]
fn severities_map_to_levels() {
    let mut configured = BTreeMap::new();
    configured.insert("notice".to_string(), Level::Warning);
    configured.insert("WARNING".to_string(), Level::Error);
    for (s, l) in [
        ("info", Level::Info),
        ("Informational", Level::Info),
        ("", Level::Info),
        ("whatever", Level::Info),
        ("warn", Level::Warning),
        ("Warning", Level::Warning),
        ("ERROR", Level::Error),
        ("err", Level::Error),
        ("notice", Level::Warning),
        ("WARNING", Level::Error),
    ] {
        assert_eq!(level_of(s, &configured), l, "{s}");
    }
}
