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

mod pending_output {
    use std::fs;
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use mixer_attributes::{Timestamp, ValueRef};
    use serde_json::json;

    use crate::template::{DimensionsRef, LogEntryInstance, LogEntryRef, ReportBatch, ReportRefs};
    use crate::{BuildEnv, Error, Handler, Params};

    use super::super::{StdioHandler, StdioParams};

    fn bounded(path: &Path, max_bytes: usize) -> StdioHandler {
        let p = StdioParams::parse(&Params::new(
            json!({"logStream": "FILE", "outputPath": path.to_str().unwrap()}),
        ))
        .unwrap();
        StdioHandler::build_bounded(p, &BuildEnv::current(), max_bytes).unwrap()
    }

    fn counter(h: &StdioHandler, name: &str) -> u64 {
        h.counters()
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.value)
            .unwrap_or(u64::MAX)
    }

    /// `n` entries of equal line length: `i` is one digit.
    fn report_digits(h: &StdioHandler, n: i64) -> Result<(), Error> {
        let name: Arc<str> = "a.i".into();
        let keys: Vec<Arc<str>> = vec!["i".into()];
        let values: Vec<[ValueRef<'_>; 1]> = (0..n).map(|i| [ValueRef::Int64(i)]).collect();
        let refs: Vec<LogEntryRef<'_>> = values
            .iter()
            .map(|v| LogEntryRef {
                name: &name,
                variables: DimensionsRef::new(&keys, v),
                timestamp: Timestamp::new(1_700_000_000, 0),
                severity: "",
                monitored_resource_type: "",
                monitored_resource_dimensions: DimensionsRef::EMPTY,
            })
            .collect();
        h.report_refs(ReportRefs::LogEntry(&refs))
    }

    const LINE: &str = "{\"time\":\"2023-11-14T22:13:20.000000Z\",\"level\":\"info\",\"instance\":\"a.i\",\"i\":0}\n";

    #[tokio::test]
    async fn lines_past_the_byte_bound_are_dropped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bounded.log");
        // Room for three lines and half of a fourth.
        let h = bounded(&path, 3 * LINE.len() + LINE.len() / 2);
        // One batch into the empty buffer: the first three lines fit,
        // whatever the writer does meanwhile.
        assert_eq!(report_digits(&h, 10), Err(Error::QueueFull { dropped: 7 }));
        assert_eq!(counter(&h, "dropped"), 7);
        h.close().resolve().await.unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let ns: Vec<i64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["i"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ns, vec![0, 1, 2], "{text}");
        assert_eq!(text.lines().next(), Some(LINE.trim_end()));
        assert_eq!(counter(&h, "written"), 3);

        // Owned reports take the same path, and after close are refused.
        let e = h.report(ReportBatch::LogEntry(vec![LogEntryInstance {
            name: "a.i".into(),
            variables: Default::default(),
            timestamp: None,
            severity: String::new(),
            monitored_resource_type: String::new(),
            monitored_resource_dimensions: Default::default(),
        }]));
        assert_eq!(e, Err(Error::QueueFull { dropped: 1 }));
        assert_eq!(counter(&h, "dropped"), 8);
    }

    #[tokio::test]
    async fn a_line_bigger_than_the_bound_is_dropped_and_one_of_its_size_fits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small.log");
        let h = bounded(&path, LINE.len() - 1);
        assert_eq!(report_digits(&h, 1), Err(Error::QueueFull { dropped: 1 }));
        h.close().resolve().await.unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "");
        assert_eq!((counter(&h, "written"), counter(&h, "dropped")), (0, 1));

        let path = dir.path().join("exact.log");
        let h = bounded(&path, LINE.len());
        assert_eq!(report_digits(&h, 1), Ok(()));
        h.close().resolve().await.unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), LINE);
    }

    #[tokio::test]
    async fn a_handler_dropped_without_close_writes_what_it_accepted_and_stops_its_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dropped.log");
        let h = bounded(&path, 1 << 20);
        report_digits(&h, 5).unwrap();
        let writer = h.take_writer().unwrap();
        drop(h);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !writer.is_finished() {
            assert!(Instant::now() < deadline, "the writer is still running");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 5);
    }
}
