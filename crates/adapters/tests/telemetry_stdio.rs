//! The stdio adapter writing files, read back: JSON and console lines,
//! levels, and rotation by size (with the count limit) and by age.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::stdio::{StdioHandler, StdioParams};
use mixer_adapters::template::{Dimensions, LogEntryInstance, MetricInstance, ReportBatch};
use mixer_adapters::{BuildEnv, Clock, Handler, ManualClock, Params};
use mixer_attributes::{Timestamp, Value};
use serde_json::json;

fn handler(params: serde_json::Value, env: &BuildEnv) -> StdioHandler {
    let p = StdioParams::parse(&Params::new(params)).expect("valid params");
    StdioHandler::build(p, env).expect("built")
}

fn dims(v: &[(&str, Value)]) -> Dimensions {
    v.iter().map(|(k, v)| (Arc::from(*k), v.clone())).collect()
}

fn log(
    name: &str,
    severity: &str,
    ts: Option<Timestamp>,
    vars: &[(&str, Value)],
) -> LogEntryInstance {
    LogEntryInstance {
        name: name.into(),
        variables: dims(vars),
        timestamp: ts,
        severity: severity.into(),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

fn metric(name: &str, value: Value, d: &[(&str, Value)]) -> MetricInstance {
    MetricInstance {
        name: name.into(),
        value,
        dimensions: dims(d),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[tokio::test]
async fn json_lines_in_a_file_with_levels_and_sorted_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::current().with_clock(clock.clone());
    let h = handler(
        json!({"logStream": "FILE", "outputPath": path_str(&path),
               "outputLevel": "WARNING", "metricLevel": "ERROR",
               "severityLevels": {"notice": "WARNING"}}),
        &env,
    );
    let ts = Timestamp::new(1_700_000_000, 123_456_789);
    h.report(ReportBatch::LogEntry(vec![
        log(
            "a.instance.ns",
            "Warning",
            ts,
            &[
                ("url", Value::String("/a?b=\"c\"".into())),
                ("code", Value::Int64(404)),
                ("latency", Value::Duration(Duration::from_micros(2500))),
                ("instance", Value::String("shadowed".into())),
            ],
        ),
        log(
            "a.instance.ns",
            "info",
            ts,
            &[("dropped", Value::Bool(true))],
        ),
        log("a.instance.ns", "notice", None, &[]),
        log("a.instance.ns", "ERROR", ts, &[("ok", Value::Bool(false))]),
    ]))
    .unwrap();
    h.report(ReportBatch::Metric(vec![metric(
        "m.instance.ns",
        Value::Double(0.5),
        &[("code", Value::Int64(200))],
    )]))
    .unwrap();
    h.close().resolve().await.unwrap();

    let text = fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert_eq!(
        lines[0],
        r#"{"time":"2023-11-14T22:13:20.123456Z","level":"warn","instance":"a.instance.ns","code":404,"_instance":"shadowed","latency":"2.5ms","url":"/a?b=\"c\""}"#
    );
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(parsed[0]["url"], "/a?b=\"c\"");
    // No timestamp on the instance: the clock's.
    let mut now = clock.timestamp().to_string();
    now.truncate(26);
    assert!(
        parsed[1]["time"].as_str().unwrap().starts_with(&now[..19]),
        "{}",
        parsed[1]
    );
    assert_eq!(parsed[1]["level"], "warn");
    assert_eq!(parsed[2]["level"], "error");
    assert_eq!(parsed[2]["ok"], false);
    assert_eq!(parsed[3]["instance"], "m.instance.ns");
    assert_eq!(parsed[3]["level"], "error");
    assert_eq!(parsed[3]["value"], 0.5);
    assert_eq!(parsed[3]["code"], 200);
    let written = h
        .counters()
        .iter()
        .find(|c| c.name == "written")
        .unwrap()
        .value;
    assert_eq!(written, 4);
}

#[tokio::test]
async fn console_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("console.log");
    let h = handler(
        json!({"logStream": "FILE", "outputPath": path_str(&path), "outputAsJson": false}),
        &BuildEnv::current(),
    );
    let ts = Timestamp::new(1_700_000_000, 5_000);
    h.report(ReportBatch::LogEntry(vec![log(
        "a.i",
        "error",
        ts,
        &[
            ("path", Value::String("/x y".into())),
            ("code", Value::Int64(500)),
        ],
    )]))
    .unwrap();
    h.close().resolve().await.unwrap();
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        "2023-11-14T22:13:20.000005Z\terror\ta.i\tcode=500\tpath=\"/x y\"\n"
    );
}

/// The rotated files beside `path`, oldest first, then `path` itself.
fn files_in_order(dir: &Path, current: &Path) -> Vec<std::path::PathBuf> {
    let mut rotated: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p != current)
        .collect();
    rotated.sort();
    rotated.push(current.to_path_buf());
    rotated
}

#[tokio::test]
async fn rotates_by_size_keeping_max_rotated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("access.log");
    // 0.001 MiB is 1048 bytes.
    let h = handler(
        json!({"logStream": "ROTATED_FILE", "outputPath": path_str(&path),
               "maxMegabytesBeforeRotation": 0.001, "maxRotatedFiles": 3}),
        &BuildEnv::current(),
    );
    let ts = Timestamp::new(1_700_000_000, 0);
    for i in 0..100 {
        h.report(ReportBatch::LogEntry(vec![log(
            "a.i",
            "info",
            ts,
            &[("n", Value::Int64(i))],
        )]))
        .unwrap();
    }
    h.close().resolve().await.unwrap();

    let files = files_in_order(dir.path(), &path);
    assert_eq!(
        files.len(),
        4,
        "3 rotated files and the current one: {files:?}"
    );
    for f in &files {
        let name = f.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with("access") && name.ends_with(".log"),
            "{name}"
        );
        assert!(fs::metadata(f).unwrap().len() <= 1048, "{name} is too big");
    }
    // What is kept is the tail of what was written, in order, no gap.
    let ns: Vec<i64> = files
        .iter()
        .flat_map(|f| {
            fs::read_to_string(f)
                .unwrap()
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["n"]
                        .as_i64()
                        .unwrap()
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(*ns.last().unwrap(), 99);
    let first = ns[0];
    assert!(first > 0, "older files were deleted");
    assert_eq!(ns, (first..100).collect::<Vec<_>>());
    // Each rotated file was filled up to the size limit.
    let line_len = fs::read_to_string(&files[0])
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .len()
        + 1;
    assert!(fs::metadata(&files[0]).unwrap().len() as usize + line_len > 1048);
}

async fn written(h: &StdioHandler, n: u64) {
    while h
        .counters()
        .iter()
        .find(|c| c.name == "written")
        .unwrap()
        .value
        < n
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn rotates_by_age() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.log");
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::current().with_clock(clock.clone());
    let h = handler(
        json!({"logStream": "ROTATED_FILE", "outputPath": path_str(&path),
               "maxDaysBeforeRotation": 1}),
        &env,
    );
    let one = |s: &str| {
        ReportBatch::LogEntry(vec![log(
            "a.i",
            "info",
            None,
            &[("s", Value::String(s.into()))],
        )])
    };
    // Age is judged when a line is written, on the writer thread: let each
    // line be written before the clock moves.
    h.report(one("day-0")).unwrap();
    written(&h, 1).await;
    clock.advance(Duration::from_secs(23 * 3600));
    h.report(one("hour-23")).unwrap();
    written(&h, 2).await;
    clock.advance(Duration::from_secs(3600));
    h.report(one("day-1")).unwrap();
    h.close().resolve().await.unwrap();
    let files = files_in_order(dir.path(), &path);
    assert_eq!(files.len(), 2, "{files:?}");
    let read = |p: &Path| -> Vec<String> {
        fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["s"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(read(&files[0]), vec!["day-0", "hour-23"]);
    assert_eq!(read(&files[1]), vec!["day-1"]);
}

#[tokio::test]
async fn an_unwritable_path_is_a_build_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing-dir").join("x.log");
    let p = StdioParams::parse(&Params::new(
        json!({"logStream": "FILE", "outputPath": path_str(&path)}),
    ))
    .unwrap();
    let e = StdioHandler::build(p, &BuildEnv::current()).err().unwrap();
    assert!(e.to_string().contains("missing-dir"), "{e}");
}

/// Runs in a child process (see `stdout_and_stderr_streams`): writes one
/// entry to the stream named by `MIXER_STDIO_CHILD`.
#[tokio::test]
async fn child_writes_to_a_standard_stream() {
    let Ok(stream) = std::env::var("MIXER_STDIO_CHILD") else {
        return;
    };
    let h = handler(json!({"logStream": stream}), &BuildEnv::current());
    let ts = Timestamp::new(1_700_000_000, 1_000);
    h.report(ReportBatch::LogEntry(vec![log(
        "s.i",
        "info",
        ts,
        &[("stream", Value::String(stream.clone()))],
    )]))
    .unwrap();
    h.close().resolve().await.unwrap();
}

#[test]
fn stdout_and_stderr_streams() {
    for stream in ["STDOUT", "STDERR"] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_writes_to_a_standard_stream",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("MIXER_STDIO_CHILD", stream)
            .output()
            .unwrap();
        assert!(out.status.success());
        let want = format!(
            "{{\"time\":\"2023-11-14T22:13:20.000001Z\",\"level\":\"info\",\"instance\":\"s.i\",\"stream\":\"{stream}\"}}"
        );
        let (on, off) = if stream == "STDOUT" {
            (&out.stdout, &out.stderr)
        } else {
            (&out.stderr, &out.stdout)
        };
        let lines = |b: &[u8]| -> Vec<String> {
            String::from_utf8_lossy(b)
                .lines()
                // libtest may have written `test name ... ` before it.
                .filter_map(|l| l.find("{\"time\"").map(|i| l[i..].to_string()))
                .collect()
        };
        assert_eq!(lines(on), vec![want], "{stream}");
        assert!(lines(off).is_empty(), "{stream}");
    }
}
