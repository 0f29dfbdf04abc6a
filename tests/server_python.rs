//! The server driven by an independent gRPC implementation: Python's
//! grpcio, with stubs generated at test time from this project's `.proto`
//! files. If our service or our protos disagreed with the wire (a field
//! number, the `stringMap_attributes` spelling, the method paths), this
//! client would see it.
//!
//! Needs `python3` with `grpcio` and `grpcio-tools`; where they are missing
//! the test prints `SKIPPED` and passes, unless `MIXER_REQUIRE_PYTHON_GRPC=1`
//! (as CI sets after installing them), when it fails.

mod server_support;

use std::path::Path;
use std::process::Command;

use mixer_server::{Method, Options};
use server_support::*;

const CLIENT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import grpc
from istio.mixer.v1 import attributes_pb2 as attrs, service_pb2 as svc, service_pb2_grpc as stubs

channel = grpc.insecure_channel(sys.argv[2])
mixer = stubs.MixerStub(channel)

def check_requests():
    a = attrs.Attributes()
    a.dictionary[0] = "request.path"
    a.dictionary[1] = "request.headers"
    a.dictionary[2] = "x-deny"
    a.string_attributes[0] = "/py"
    yield svc.CheckRequest(request_index=1, attribute_update=a)
    d = attrs.Attributes()
    d.stringMap_attributes[1].map[2] = "yes"
    yield svc.CheckRequest(request_index=2, attribute_update=d)
    bad = attrs.Attributes()
    bad.string_attributes[42] = "x"
    yield svc.CheckRequest(request_index=3, attribute_update=bad)
    gone = attrs.Attributes()
    gone.deleted_attributes.append(1)
    yield svc.CheckRequest(request_index=4, attribute_update=gone)
    other = attrs.Attributes(attribute_context=5)
    other.string_attributes[0] = "sleep:10"
    yield svc.CheckRequest(request_index=5, attribute_update=other)

out = {"check": [], "quota": [], "report": []}
for r in mixer.Check(check_requests(), timeout=10):
    out["check"].append([r.request_index, r.result.code, r.result.message, r.expiration.seconds])

def quota_requests():
    a = attrs.Attributes()
    a.dictionary[0] = "request.path"
    a.string_attributes[0] = "/py-quota"
    for i in range(1, 5):
        yield svc.QuotaRequest(request_index=i, attribute_update=a if i == 1 else None,
                               deduplication_id="py-%d" % i, quota="requestquota", amount=1)

for r in mixer.Quota(quota_requests(), timeout=10):
    out["quota"].append([r.request_index, r.result.code, r.amount])

def report_requests():
    a = attrs.Attributes()
    a.dictionary[0] = "response.code"
    for i in range(1, 4):
        a.int64_attributes[0] = 200 + i
        yield svc.ReportRequest(request_index=i, attribute_update=a)

for r in mixer.Report(report_requests(), timeout=10):
    out["report"].append([r.request_index, r.result.code])

print(json.dumps(out, sort_keys=True))
"#;

/// Whether python3 with grpcio and grpcio-tools is here.
fn python_grpc() -> bool {
    Command::new("python3")
        .args(["-c", "import grpc, grpc_tools.protoc"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn generate_stubs(out: &Path) {
    let protos = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/proto/proto");
    let status = Command::new("python3")
        .args(["-m", "grpc_tools.protoc"])
        .arg(format!("-I{}", protos.display()))
        .arg(format!("--python_out={}", out.display()))
        .arg(format!("--grpc_python_out={}", out.display()))
        .args([
            "google/rpc/status.proto",
            "istio/mixer/v1/attributes.proto",
            "istio/mixer/v1/service.proto",
        ])
        .status()
        .expect("runs grpc_tools.protoc");
    assert!(
        status.success(),
        "protoc failed on the project's .proto files"
    );
}

// The SKIPPED line is for whoever reads the test output.
#[allow(clippy::print_stdout)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_grpcio_client_speaks_to_the_server() {
    if !python_grpc() {
        if std::env::var("MIXER_REQUIRE_PYTHON_GRPC").as_deref() == Ok("1") {
            panic!(
                "python3 with grpcio and grpcio-tools is required (MIXER_REQUIRE_PYTHON_GRPC=1)"
            );
        }
        println!("SKIPPED: python3 with grpcio and grpcio-tools not found");
        return;
    }
    let stubs = tempfile::tempdir().unwrap();
    generate_stubs(stubs.path());
    let script = stubs.path().join("client.py");
    std::fs::write(&script, CLIENT).unwrap();

    let mut server = TestServer::start(&standard_config("0s"), Options::default()).await;
    let (dir, addr) = (stubs.path().to_path_buf(), server.addr.to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .arg(&addr)
            .output()
            .expect("runs python3")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "python client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut got: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    // Answers may complete out of order; compare them by request index.
    for k in ["check", "quota", "report"] {
        got[k]
            .as_array_mut()
            .unwrap()
            .sort_by_key(|v| v[0].as_i64().unwrap());
    }
    let expected = serde_json::json!({
        "check": [
            [1, 0, "", 1],
            [2, 7, "deny.handler.istio-system: x-deny header", 1],
            [3, 3, "attribute_update: string_attributes[42]: index 42 is not in the dictionary", 0],
            [4, 0, "", 1],
            [5, 0, "", 1],
        ],
        "quota": [[1, 0, 1], [2, 0, 1], [3, 0, 1], [4, 8, 0]],
        "report": [[1, 0], [2, 0], [3, 0]],
    });
    assert_eq!(got, expected);
    let stats = server.service.stats();
    assert_eq!(stats.method(Method::Check).requests, 5);
    assert_eq!(stats.method(Method::Check).invalid, 1);
    let done = server.shutdown().await;
    assert!(done.flushed);
    assert_eq!(
        server
            .counts
            .reports
            .load(std::sync::atomic::Ordering::SeqCst),
        3
    );
}
