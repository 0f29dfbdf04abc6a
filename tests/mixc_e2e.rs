//! `mixc` against `mixs`, as processes: the built example binaries, the
//! shipped configuration, loopback only.

mod examples_support;

use std::process::Output;

use examples_support::{Mixs, free_port, run, shipped_config_copy, stdout};

fn mixc(args: &[&str]) -> Output {
    run("mixc", args)
}

fn json_lines(o: &Output) -> Vec<serde_json::Value> {
    stdout(o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}")))
        .collect()
}

#[test]
fn mixc_calls_mixs_with_typed_attributes() {
    let mixs = Mixs::start(shipped_config_copy());
    let addr = mixs.addr.to_string();

    // An allowed check, every typed flag on the way.
    let out = mixc(&[
        "check",
        "-s",
        &addr,
        "--string_attributes",
        "destination.service=details.default.svc.cluster.local,request.path=/x",
        "--int64_attributes",
        "request.size=10,response.code=200",
        "--double_attributes",
        "custom.ratio=0.5",
        "--bool_attributes",
        "connection.mtls=true",
        "--timestamp_attributes",
        "request.time=2017-01-02T15:04:05Z",
        "--duration_attributes",
        "response.duration=1.5s",
        "--bytes_attributes",
        "source.ip=0a:00:00:01",
        "--stringmap_attributes",
        "request.headers=:method:GET;user-agent:curl",
    ]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("check 1: OK"), "{text}");
    assert!(text.contains("valid for"), "{text}");

    // The shipped policy denies `x-mixer-deny: true`.
    let out = mixc(&[
        "check",
        "--address",
        &addr,
        "--stringmap_attributes",
        "request.headers=x-mixer-deny:true",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "answered, even if denied");
    let v = &json_lines(&out)[0];
    assert_eq!(v["status"], "PERMISSION_DENIED");
    assert_eq!(v["code"], 7);
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("requests with x-mixer-deny are refused"),
        "{v}"
    );
    let out = mixc(&[
        "check",
        "-s",
        &addr,
        "--stringmap_attributes",
        "request.headers=x-mixer-deny:true",
    ]);
    assert!(
        stdout(&out).starts_with("check 1: PERMISSION_DENIED: "),
        "{}",
        stdout(&out)
    );

    // Quota: the reviews service called by an unknown source gets 50/s.
    let reviews = "destination.service=reviews.default.svc.cluster.local";
    // 60 units of `requestquota` for reviews, with the extra flags given.
    let quota60 = |extra: &[&str]| {
        let mut args = vec![
            "quota",
            "-s",
            &addr,
            "--quota",
            "requestquota",
            "--amount",
            "60",
            "--string_attributes",
            reviews,
        ];
        args.extend_from_slice(extra);
        mixc(&args)
    };
    let out = quota60(&["--json"]);
    let v = &json_lines(&out)[0];
    assert_eq!(v["status"], "RESOURCE_EXHAUSTED", "{v}");
    assert_eq!(v["granted"], 0);
    let out = quota60(&["--best_effort", "--dedup_id", "mixc-test-1"]);
    let text = stdout(&out);
    assert!(
        text.starts_with("quota 1: OK, granted 50, valid for"),
        "{text}"
    );
    let out = quota60(&["--best_effort", "--dedup_id", "mixc-test-1", "--json"]);
    assert_eq!(
        json_lines(&out)[0]["granted"],
        50,
        "the same dedup id: the first answer"
    );

    // Reports, repeated and concurrent: every call printed once.
    let out = mixc(&[
        "report",
        "-s",
        &addr,
        "--string_attributes",
        reviews,
        "--int64_attributes",
        "response.code=200",
        "--repeat",
        "6",
        "--concurrency",
        "3",
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 6);
    let mut seen: Vec<u64> = lines.iter().map(|v| v["index"].as_u64().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (1..=6).collect::<Vec<_>>());
    assert!(lines.iter().all(|v| v["status"] == "OK"), "{lines:?}");
}

const DENIED_MESSAGE: &str = "every typed attribute matched";

/// A config whose one rule denies a check only when each typed attribute
/// holds the value [`TYPED`] gives it, so that a value read wrongly by
/// `mixc` (or carried wrongly to `mixs`) lets the check through.
fn typed_config() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let api = "apiVersion: config.istio.io/v1alpha2";
    let text = format!(
        r#"{api}
kind: attributemanifest
metadata: {{name: test-extra, namespace: istio-system}}
spec:
  attributes:
    custom.ratio: {{valueType: DOUBLE}}
---
{api}
kind: handler
metadata: {{name: typed-denier, namespace: istio-system}}
spec:
  compiledAdapter: denier
  params:
    status: {{code: 7, message: "{DENIED_MESSAGE}"}}
---
{api}
kind: instance
metadata: {{name: nothing, namespace: istio-system}}
spec:
  compiledTemplate: checknothing
---
{api}
kind: rule
metadata: {{name: typed, namespace: istio-system}}
spec:
  match: >-
    request.path == "/typed"
    && request.size == 1234
    && custom.ratio == 0.25
    && connection.mtls == true
    && request.time == timestamp("2017-01-02T15:04:05Z")
    && response.duration == "1.5s"
    && source.ip == ip("10.0.0.1")
    && request.headers[":method"] == "GET"
    && request.headers["x-user"] == "alice"
  actions:
  - handler: typed-denier
    instances: [nothing]
"#
    );
    std::fs::write(dir.path().join("typed.yaml"), text).unwrap();
    dir
}

/// The typed flags with the values the rule of [`typed_config`] denies.
const TYPED: [(&str, &str); 8] = [
    ("--string_attributes", "request.path=/typed"),
    ("--int64_attributes", "request.size=1234"),
    ("--double_attributes", "custom.ratio=0.25"),
    ("--bool_attributes", "connection.mtls=true"),
    (
        "--timestamp_attributes",
        "request.time=2017-01-02T15:04:05Z",
    ),
    ("--duration_attributes", "response.duration=1.5s"),
    ("--bytes_attributes", "source.ip=0a:00:00:01"),
    (
        "--stringmap_attributes",
        "request.headers=:method:GET;x-user:alice",
    ),
];

/// `mixc check --json` with [`TYPED`], the flag `flag` given `value`
/// instead: the status name and the message.
fn typed_check(addr: &str, flag: &str, value: &str) -> (String, String) {
    let mut args = vec!["check", "-s", addr, "--json"];
    for (f, v) in TYPED {
        args.push(f);
        args.push(if f == flag { value } else { v });
    }
    let out = mixc(&args);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    let v = &json_lines(&out)[0];
    (
        v["status"].as_str().unwrap().to_owned(),
        v["message"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn mixc_typed_values_reach_mixs_as_written() {
    let mixs = Mixs::start(typed_config());
    let addr = mixs.addr.to_string();
    let assert_denied = |flag: &str, value: &str| {
        let (status, message) = typed_check(&addr, flag, value);
        assert_eq!(status, "PERMISSION_DENIED", "{flag} {value}: {message}");
        assert!(
            message.ends_with(DENIED_MESSAGE),
            "{flag} {value}: {message}"
        );
    };

    // Exactly the values of the rule: denied.
    assert_denied("", "");
    // Other spellings of the same values: denied too.
    for (flag, value) in [
        ("--double_attributes", "custom.ratio=2.5e-1"),
        (
            "--timestamp_attributes",
            "request.time=2017-01-02T17:04:05+02:00",
        ),
        ("--duration_attributes", "response.duration=1500ms"),
        ("--bytes_attributes", "source.ip=0a000001"),
        (
            "--stringmap_attributes",
            "request.headers=x-user:alice;:method:GET",
        ),
    ] {
        assert_denied(flag, value);
    }

    // One value off, each type in turn: the rule does not match.
    for (flag, value) in [
        ("--string_attributes", "request.path=/typed/"),
        ("--int64_attributes", "request.size=1235"),
        ("--double_attributes", "custom.ratio=0.5"),
        ("--bool_attributes", "connection.mtls=false"),
        (
            "--timestamp_attributes",
            "request.time=2017-01-02T15:04:06Z",
        ),
        ("--duration_attributes", "response.duration=1.5001s"),
        ("--bytes_attributes", "source.ip=0a:00:00:02"),
        (
            "--stringmap_attributes",
            "request.headers=:method:GET;x-user:alicE",
        ),
        (
            "--stringmap_attributes",
            "request.headers=method:GET;x-user:alice",
        ),
    ] {
        let (status, message) = typed_check(&addr, flag, value);
        assert_eq!(status, "OK", "{flag} {value}: {message}");
    }

    // And the exact values still are denied after all those.
    assert_denied("", "");
}

#[test]
fn mixc_reports_bad_flags_and_unreachable_servers() {
    let out = mixc(&["check", "--int64_attributes", "request.size=ten"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("request.size=\"ten\" is not an integer"),
        "{err}"
    );
    let out = mixc(&["quota", "--amount", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = mixc(&["check", "--bytes_attributes", "x=zz"]);
    assert_eq!(out.status.code(), Some(2));

    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let out = mixc(&["check", "-s", &addr, "--timeout", "500ms", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "the server could not be reached"
    );
    assert_eq!(json_lines(&out)[0]["status"], "UNAVAILABLE");
}
