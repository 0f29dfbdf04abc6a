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
