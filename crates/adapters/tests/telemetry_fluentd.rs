//! The fluentd adapter writing to a TCP listener on loopback. What arrives
//! is decoded by a msgpack reader written here from the msgpack spec (it
//! shares no code with the encoder), and cross-checked with Python's
//! `msgpack` package where it is installed.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::fluentd::{FluentdHandler, FluentdParams};
use mixer_adapters::template::{Dimensions, LogEntryInstance, ReportBatch};
use mixer_adapters::{BuildEnv, Clock, Error, Handler, ManualClock, Params};
use mixer_attributes::{Timestamp, Value};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

/// A msgpack value, as the spec defines them.
#[derive(Clone, Debug, PartialEq)]
enum Mp {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Mp>),
    Map(Vec<(Mp, Mp)>),
    Ext(i8, Vec<u8>),
}

impl Mp {
    fn get(&self, key: &str) -> Option<&Mp> {
        match self {
            Mp::Map(m) => m
                .iter()
                .find(|(k, _)| *k == Mp::Str(key.into()))
                .map(|(_, v)| v),
            _ => None,
        }
    }
    fn keys(&self) -> Vec<String> {
        match self {
            Mp::Map(m) => m
                .iter()
                .map(|(k, _)| match k {
                    Mp::Str(s) => s.clone(),
                    other => panic!("non-string key {other:?}"),
                })
                .collect(),
            other => panic!("not a map: {other:?}"),
        }
    }
}

/// Reads one value at `*pos`; `None` when the input ends inside it.
fn read(b: &[u8], pos: &mut usize) -> Option<Mp> {
    fn take<'a>(b: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
        let s = b.get(*pos..*pos + n)?;
        *pos += n;
        Some(s)
    }
    fn be(b: &[u8], pos: &mut usize, n: usize) -> Option<u64> {
        Some(
            take(b, pos, n)?
                .iter()
                .fold(0u64, |a, x| (a << 8) | u64::from(*x)),
        )
    }
    fn items(b: &[u8], pos: &mut usize, n: usize) -> Option<Vec<Mp>> {
        (0..n).map(|_| read(b, pos)).collect()
    }
    fn pairs(b: &[u8], pos: &mut usize, n: usize) -> Option<Vec<(Mp, Mp)>> {
        (0..n)
            .map(|_| Some((read(b, pos)?, read(b, pos)?)))
            .collect()
    }
    fn text(b: &[u8], pos: &mut usize, n: usize) -> Option<Mp> {
        Some(Mp::Str(
            String::from_utf8(take(b, pos, n)?.to_vec()).expect("utf-8 str"),
        ))
    }
    fn ext(b: &[u8], pos: &mut usize, n: usize) -> Option<Mp> {
        let t = take(b, pos, 1)?[0] as i8;
        Some(Mp::Ext(t, take(b, pos, n)?.to_vec()))
    }
    let m = *b.get(*pos)?;
    *pos += 1;
    Some(match m {
        0x00..=0x7f => Mp::Int(i128::from(m)),
        0x80..=0x8f => Mp::Map(pairs(b, pos, usize::from(m & 0x0f))?),
        0x90..=0x9f => Mp::Array(items(b, pos, usize::from(m & 0x0f))?),
        0xa0..=0xbf => text(b, pos, usize::from(m & 0x1f))?,
        0xc0 => Mp::Nil,
        0xc2 => Mp::Bool(false),
        0xc3 => Mp::Bool(true),
        0xc4..=0xc6 => {
            let n = be(b, pos, 1 << (m - 0xc4))? as usize;
            Mp::Bin(take(b, pos, n)?.to_vec())
        }
        0xc7..=0xc9 => {
            let n = be(b, pos, 1 << (m - 0xc7))? as usize;
            ext(b, pos, n)?
        }
        0xca => Mp::Float(f64::from(f32::from_bits(be(b, pos, 4)? as u32))),
        0xcb => Mp::Float(f64::from_bits(be(b, pos, 8)?)),
        0xcc..=0xcf => Mp::Int(i128::from(be(b, pos, 1 << (m - 0xcc))?)),
        0xd0 => Mp::Int(i128::from(be(b, pos, 1)? as u8 as i8)),
        0xd1 => Mp::Int(i128::from(be(b, pos, 2)? as u16 as i16)),
        0xd2 => Mp::Int(i128::from(be(b, pos, 4)? as u32 as i32)),
        0xd3 => Mp::Int(i128::from(be(b, pos, 8)? as i64)),
        0xd4..=0xd8 => ext(b, pos, 1 << (m - 0xd4))?,
        0xd9..=0xdb => {
            let n = be(b, pos, 1 << (m - 0xd9))? as usize;
            text(b, pos, n)?
        }
        0xdc | 0xdd => {
            let n = be(b, pos, if m == 0xdc { 2 } else { 4 })? as usize;
            Mp::Array(items(b, pos, n)?)
        }
        0xde | 0xdf => {
            let n = be(b, pos, if m == 0xde { 2 } else { 4 })? as usize;
            Mp::Map(pairs(b, pos, n)?)
        }
        0xe0..=0xff => Mp::Int(i128::from(m as i8)),
        0xc1 => panic!("0xc1 is never used"),
    })
}

/// One decoded event: tag, EventTime seconds and nanos, record.
#[derive(Debug, Clone, PartialEq)]
struct Event {
    tag: String,
    secs: u32,
    nanos: u32,
    record: Mp,
}

/// Decodes a stream of Forward-mode messages; also returns the number of
/// complete messages and leaves an incomplete tail unread.
fn events(bytes: &[u8]) -> (Vec<Event>, usize) {
    let mut pos = 0;
    let mut out = Vec::new();
    let mut messages = 0;
    loop {
        let start = pos;
        let Some(msg) = read(bytes, &mut pos) else {
            pos = start;
            break;
        };
        messages += 1;
        let Mp::Array(parts) = msg else {
            panic!("message is not an array")
        };
        assert_eq!(parts.len(), 3, "[tag, entries, options]");
        let Mp::Str(tag) = &parts[0] else {
            panic!("tag is not a string")
        };
        let Mp::Array(entries) = &parts[1] else {
            panic!("Forward mode: entries must be an array")
        };
        assert_eq!(
            parts[2].get("size"),
            Some(&Mp::Int(entries.len() as i128)),
            "options.size"
        );
        for e in entries {
            let Mp::Array(e) = e else { panic!("entry") };
            assert_eq!(e.len(), 2, "[time, record]");
            let Mp::Ext(0, t) = &e[0] else {
                panic!("EventTime must be ext type 0, got {:?}", e[0])
            };
            assert_eq!(t.len(), 8, "EventTime is 8 bytes");
            out.push(Event {
                tag: tag.clone(),
                secs: u32::from_be_bytes(t[..4].try_into().unwrap()),
                nanos: u32::from_be_bytes(t[4..].try_into().unwrap()),
                record: e[1].clone(),
            });
        }
    }
    assert!(pos <= bytes.len());
    (out, messages)
}

const PY_DECODE: &str = r#"
import json, struct, sys, msgpack
def ext(code, data):
    if code == 0:
        s, n = struct.unpack(">II", data)
        return {"$eventtime": [s, n]}
    return {"$ext": [code, data.hex()]}
out = []
for msg in msgpack.Unpacker(sys.stdin.buffer, raw=False, ext_hook=ext, strict_map_key=False):
    tag, entries, opts = msg
    for t, rec in entries:
        out.append({"tag": tag, "time": t["$eventtime"], "record": rec, "size": opts["size"]})
json.dump(out, sys.stdout)
"#;

/// Python's msgpack decoding of the same bytes, as JSON; `None` (with a
/// visible SKIPPED line) where python3 or its msgpack package is missing,
/// unless `MIXER_REQUIRE_PY_MSGPACK=1`.
// The SKIPPED line is for whoever reads the test output.
#[allow(clippy::print_stdout)]
fn python_decode(bytes: &[u8]) -> Option<serde_json::Value> {
    let have = Command::new("python3")
        .args(["-c", "import msgpack"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        if std::env::var("MIXER_REQUIRE_PY_MSGPACK").as_deref() == Ok("1") {
            panic!("python3 with msgpack is required (MIXER_REQUIRE_PY_MSGPACK=1)");
        }
        println!("SKIPPED: Python msgpack cross-check (python3 -m pip install msgpack)");
        return None;
    }
    let mut child = Command::new("python3")
        .args(["-c", PY_DECODE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python decoder failed");
    Some(serde_json::from_slice(&out.stdout).unwrap())
}

fn inst(
    name: &str,
    vars: &[(&str, Value)],
    ts: Option<Timestamp>,
    severity: &str,
) -> LogEntryInstance {
    LogEntryInstance {
        name: name.into(),
        variables: vars
            .iter()
            .map(|(k, v)| (Arc::from(*k), v.clone()))
            .collect::<Dimensions>(),
        timestamp: ts,
        severity: severity.into(),
        monitored_resource_type: String::new(),
        monitored_resource_dimensions: Dimensions::new(),
    }
}

fn handler(params: serde_json::Value, env: &BuildEnv) -> FluentdHandler {
    let p = FluentdParams::parse(&Params::new(params)).expect("valid params");
    FluentdHandler::build(p, env).expect("built")
}

/// Reads from `s` until `want` events have been decoded (or EOF); panics
/// after 10s.
async fn read_events(s: &mut TcpStream, want: usize) -> (Vec<u8>, Vec<Event>) {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (ev, _) = events(&bytes);
        if ev.len() >= want {
            return (bytes, ev);
        }
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("timed out with {} of {want} events", ev.len()))
            .unwrap();
        if n == 0 {
            return (bytes, ev);
        }
        bytes.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_messages_decode_independently_with_tag_time_and_record() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::current().with_clock(clock.clone());
    let h = handler(
        json!({"address": addr.to_string(), "pushIntervalDuration": "1h"}),
        &env,
    );
    let ts = Timestamp::new(1_700_000_000, 123_456_789);
    h.report(ReportBatch::LogEntry(vec![
        inst(
            "accesslog.instance.istio-system",
            &[
                ("code", Value::Int64(503)),
                ("path", Value::String("/reviews".into())),
                ("latency", Value::Duration(Duration::from_millis(1500))),
                ("ratio", Value::Double(0.25)),
                ("ok", Value::Bool(false)),
                ("source_ip", Value::IpAddress("10.1.2.3".parse().unwrap())),
            ],
            ts,
            "Error",
        ),
        inst(
            "accesslog.instance.istio-system",
            &[
                ("tag", Value::String("custom.tag".into())),
                ("user", Value::String("u1".into())),
            ],
            ts,
            "info",
        ),
        inst("other.instance.istio-system", &[], None, ""),
    ]))
    .unwrap();
    // Nothing is sent before the interval (an hour) or the close.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let sent = |h: &FluentdHandler| {
        h.counters()
            .iter()
            .find(|c| c.name == "sent")
            .unwrap()
            .value
    };
    assert_eq!(sent(&h), 0);
    h.close().resolve().await.unwrap();
    assert_eq!(sent(&h), 3);
    let (mut conn, _) = listener.accept().await.unwrap();
    let (bytes, ev) = read_events(&mut conn, usize::MAX).await;
    let (_, messages) = events(&bytes);
    // One message per tag, tags in order.
    assert_eq!(messages, 3);
    assert_eq!(ev.len(), 3);

    let a = &ev[0];
    assert_eq!(a.tag, "accesslog.instance.istio-system");
    assert_eq!((a.secs, a.nanos), (1_700_000_000, 123_456_789));
    assert_eq!(
        a.record.keys(),
        vec![
            "code",
            "latency",
            "ok",
            "path",
            "ratio",
            "source_ip",
            "severity"
        ]
    );
    assert_eq!(a.record.get("code"), Some(&Mp::Int(503)));
    assert_eq!(a.record.get("path"), Some(&Mp::Str("/reviews".into())));
    assert_eq!(a.record.get("latency"), Some(&Mp::Str("1.5s".into())));
    assert_eq!(a.record.get("ratio"), Some(&Mp::Float(0.25)));
    assert_eq!(a.record.get("ok"), Some(&Mp::Bool(false)));
    assert_eq!(a.record.get("source_ip"), Some(&Mp::Str("10.1.2.3".into())));
    assert_eq!(a.record.get("severity"), Some(&Mp::Str("Error".into())));

    let b = &ev[1];
    assert_eq!(b.tag, "custom.tag");
    assert_eq!(b.record.keys(), vec!["user", "name", "severity"]);
    assert_eq!(
        b.record.get("name"),
        Some(&Mp::Str("accesslog.instance.istio-system".into()))
    );

    // No timestamp on the instance: the handler's clock.
    let c = &ev[2];
    assert_eq!(c.tag, "other.instance.istio-system");
    let now = clock.timestamp();
    assert_eq!((c.secs, c.nanos), (now.seconds() as u32, now.nanos()));

    if let Some(py) = python_decode(&bytes) {
        let py = py.as_array().unwrap();
        assert_eq!(py.len(), 3);
        assert_eq!(py[0]["tag"], "accesslog.instance.istio-system");
        assert_eq!(py[0]["time"], json!([1_700_000_000u32, 123_456_789u32]));
        assert_eq!(
            py[0]["record"],
            json!({"code": 503, "path": "/reviews", "latency": "1.5s", "ratio": 0.25,
                   "ok": false, "source_ip": "10.1.2.3", "severity": "Error"})
        );
        assert_eq!(py[0]["size"], 1);
        assert_eq!(py[1]["tag"], "custom.tag");
        assert_eq!(
            py[1]["record"],
            json!({"user": "u1", "name": "accesslog.instance.istio-system", "severity": "info"})
        );
        assert_eq!(py[2]["time"], json!([now.seconds(), now.nanos()]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn integer_durations_and_flushes_by_size_and_by_interval() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let env = BuildEnv::current();
    // By size: 300 bytes hold a few entries; an hour-long interval never
    // fires in this test.
    let h = handler(
        json!({"address": addr.to_string(), "maxBatchSizeBytes": 300,
               "pushIntervalDuration": "1h", "integerDuration": true}),
        &env,
    );
    let batch = (0..20)
        .map(|i| {
            inst(
                "a.instance.ns",
                &[
                    ("i", Value::Int64(i)),
                    ("d", Value::Duration(Duration::from_millis(1500))),
                ],
                Timestamp::new(1, 0),
                "info",
            )
        })
        .collect();
    h.report(ReportBatch::LogEntry(batch)).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    let (_, ev) = read_events(&mut conn, 10).await;
    assert!(ev.len() >= 10);
    assert_eq!(ev[0].record.get("d"), Some(&Mp::Int(1500)));
    let got: Vec<&Mp> = ev.iter().map(|e| e.record.get("i").unwrap()).collect();
    let want: Vec<Mp> = (0..ev.len() as i128).map(Mp::Int).collect();
    assert_eq!(got, want.iter().collect::<Vec<_>>());
    h.close().resolve().await.unwrap();
    drop(conn);

    // By interval: one small entry, sent without a close.
    let h = handler(
        json!({"address": addr.to_string(), "pushIntervalDuration": "50ms"}),
        &env,
    );
    h.report(ReportBatch::LogEntry(vec![inst(
        "b.instance.ns",
        &[],
        None,
        "",
    )]))
    .unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    let (_, ev) = read_events(&mut conn, 1).await;
    assert_eq!(ev[0].tag, "b.instance.ns");
    h.close().resolve().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_stops_reading_does_not_block_report() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and hold the connection without ever reading.
    let held = tokio::spawn(async move {
        let (s, _) = listener.accept().await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        drop(s);
    });
    let h = Arc::new(handler(
        json!({"address": addr.to_string(), "instanceBufferSize": 8,
               "maxBatchSizeBytes": 65536, "pushIntervalDuration": "10ms",
               "pushTimeoutDuration": "300ms"}),
        &BuildEnv::current(),
    ));
    let big = "x".repeat(16 << 10);
    let reporter = {
        let h = h.clone();
        tokio::task::spawn_blocking(move || {
            let mut queue_full = 0;
            for _ in 0..400 {
                let batch = (0..50)
                    .map(|_| {
                        inst(
                            "a.instance.ns",
                            &[("body", Value::String(big.clone()))],
                            None,
                            "",
                        )
                    })
                    .collect();
                match h.report(ReportBatch::LogEntry(batch)) {
                    Ok(()) => {}
                    Err(Error::QueueFull { dropped }) => {
                        assert!(dropped > 0);
                        queue_full += 1;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            queue_full
        })
    };
    // 20,000 entries of 16 KiB (over 300 MiB) against a receiver that
    // reads nothing: if report waited for the socket this would not end.
    let queue_full = tokio::time::timeout(Duration::from_secs(60), reporter)
        .await
        .expect("report calls returned")
        .unwrap();
    assert!(queue_full > 0, "the queue never filled");
    let counter = |name: &str| h.counters().iter().find(|c| c.name == name).unwrap().value;
    assert!(counter("dropped") > 0);
    // The worker is stuck on the full socket until pushTimeoutDuration.
    let mut waited = 0;
    while counter("write_errors") == 0 {
        assert!(
            waited < 1000,
            "writes to a receiver that reads nothing should time out"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    // Still stalled, report still answers at once.
    let before = counter("dropped");
    let h2 = h.clone();
    let big = "y".repeat(16 << 10);
    tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || {
            for _ in 0..100 {
                let batch = (0..50)
                    .map(|_| {
                        inst(
                            "a.instance.ns",
                            &[("body", Value::String(big.clone()))],
                            None,
                            "",
                        )
                    })
                    .collect();
                let _ = h2.report(ReportBatch::LogEntry(batch));
            }
        }),
    )
    .await
    .expect("report calls returned")
    .unwrap();
    assert!(counter("dropped") > before);
    // Close is bounded too.
    tokio::time::timeout(Duration::from_secs(5), h.close().resolve())
        .await
        .expect("close returned")
        .unwrap();
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_when_the_receiver_comes_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let h = handler(
        json!({"address": addr.to_string(), "pushIntervalDuration": "20ms",
               "pushTimeoutDuration": "1s"}),
        &BuildEnv::current(),
    );
    let one = |v: &str| {
        ReportBatch::LogEntry(vec![inst(
            "a.instance.ns",
            &[("v", Value::String(v.into()))],
            None,
            "",
        )])
    };
    h.report(one("first")).unwrap();
    let (mut conn, _) = listener.accept().await.unwrap();
    let (_, ev) = read_events(&mut conn, 1).await;
    assert_eq!(ev[0].record.get("v"), Some(&Mp::Str("first".into())));

    // The receiver goes away.
    drop(conn);
    drop(listener);
    tokio::time::sleep(Duration::from_millis(50)).await;
    h.report(one("while-down")).unwrap();
    // Let a few connects fail.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let errors = h
        .counters()
        .iter()
        .find(|c| c.name == "write_errors")
        .unwrap()
        .value;
    assert!(errors > 0, "connecting to a closed port must fail");

    // It comes back on the same port: the pending entry arrives, then new ones.
    let listener = TcpListener::bind(addr).await.unwrap();
    let (mut conn, _) = tokio::time::timeout(Duration::from_secs(15), listener.accept())
        .await
        .expect("reconnected")
        .unwrap();
    h.report(one("after")).unwrap();
    let (_, ev) = read_events(&mut conn, 2).await;
    let vs: Vec<&Mp> = ev.iter().map(|e| e.record.get("v").unwrap()).collect();
    assert_eq!(
        vs,
        vec![&Mp::Str("while-down".into()), &Mp::Str("after".into())]
    );
    let connects = h
        .counters()
        .iter()
        .find(|c| c.name == "connects")
        .unwrap()
        .value;
    assert_eq!(connects, 2);
    h.close().resolve().await.unwrap();
}

#[test]
fn the_reader_follows_the_spec() {
    // Hand-assembled bytes, to check the reader itself.
    let bytes = [
        0x93, 0xa3, b'a', b'b', b'c', 0xcd, 0x01, 0x00, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 2,
    ];
    let mut pos = 0;
    assert_eq!(
        read(&bytes, &mut pos),
        Some(Mp::Array(vec![
            Mp::Str("abc".into()),
            Mp::Int(256),
            Mp::Ext(0, vec![0, 0, 0, 1, 0, 0, 0, 2]),
        ]))
    );
    assert_eq!(pos, bytes.len());
    assert_eq!(read(&bytes[..5], &mut 0), None);
    assert_eq!(read(&[0xff], &mut 0), Some(Mp::Int(-1)));
    assert_eq!(read(&[0xd0, 0x80], &mut 0), Some(Mp::Int(-128)));
    assert_eq!(read(&[0xc0], &mut 0), Some(Mp::Nil));
    assert_eq!(read(&[0xc4, 1, 7], &mut 0), Some(Mp::Bin(vec![7])));
}
