//! The gRPC server end to end over loopback: the three streams with
//! deltas and contexts, pipelining, bad updates, limits, hot reload,
//! monitoring and graceful shutdown.

mod server_support;

use std::time::{Duration, Instant};

use mixer_attributes::{OwnedBag, Value};
use mixer_proto::code;
use mixer_proto::istio::mixer::v1::{Attributes, CheckRequest, QuotaRequest, ReportRequest};
use mixer_server::{Method, Options};
use prost::Message;
use server_support::*;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

fn quick_options() -> Options {
    Options {
        config_poll_interval: Duration::from_millis(50),
        config_debounce: Duration::from_millis(50),
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_stream_applies_deltas_per_context() {
    let mut server = TestServer::start(&standard_config("0s"), quick_options()).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;

    // Context 0: allowed; context 1: the deny header. Then each context's
    // delta flips it: only what changed goes on the wire.
    let ok0 = bag("/a", &[("user-agent", "curl")]);
    let deny1 = bag("/b", &[("x-deny", "yes")]);
    let i1 = s.send(0, &ok0).await;
    let i2 = s.send(1, &deny1).await;
    let deny0 = bag("/a", &[("user-agent", "curl"), ("x-deny", "yes")]);
    let i3 = s.send(0, &deny0).await;
    let ok1 = bag("/b", &[]);
    let i4 = s.send(1, &ok1).await;

    let mut answers = Vec::new();
    for _ in 0..4 {
        let a = s.answer().await;
        answers.push((a.request_index, code(&a), message(&a).to_string()));
    }
    answers.sort();
    let denied = (
        code::PERMISSION_DENIED,
        "deny.handler.istio-system: x-deny header".to_string(),
    );
    assert_eq!(
        answers,
        [
            (i1, code::OK, String::new()),
            (i2, denied.0, denied.1.clone()),
            (i3, denied.0, denied.1.clone()),
            (i4, code::OK, String::new()),
        ]
    );
    let stats = server.service.stats();
    assert_eq!(stats.method(Method::Check).requests, 4);
    assert_eq!(stats.method(Method::Check).not_ok, 2);
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_complete_out_of_order() {
    let mut server = TestServer::start(&standard_config("0s"), quick_options()).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    let slow = s.send(0, &bag("sleep:700", &[])).await;
    let fast = s.send(0, &bag("sleep:0", &[])).await;
    let first = s.answer().await;
    assert_eq!(first.request_index, fast, "the fast check is not held up");
    let second = s.answer().await;
    assert_eq!(second.request_index, slow);
    assert_eq!(code(&second), code::OK);
    // The slow probe's validity reached the wire as `expiration`.
    assert_eq!(second.expiration.unwrap().seconds, 1);
    assert_eq!(second.expiration.unwrap().nanos, 700_000_000);
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_updates_are_refused_and_the_stream_goes_on() {
    let mut server = TestServer::start(&standard_config("0s"), quick_options()).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;

    // No dictionary yet.
    let mut no_dict = Attributes::default();
    no_dict.string_attributes.insert(5, "x".into());
    s.send_raw(no_dict).await;
    let a = s.answer().await;
    assert_eq!(code(&a), code::INVALID_ARGUMENT);
    assert_eq!(
        message(&a),
        "attribute_update: string_attributes[5]: index 5 is not in the dictionary \
         (the stream has none yet: the first request must carry one)"
    );

    // A good full update.
    let mut full = Attributes::default();
    full.dictionary.insert(0, "request.path".into());
    full.dictionary.insert(1, "request.headers".into());
    full.dictionary.insert(2, "x-deny".into());
    full.string_attributes.insert(0, "/ok".into());
    s.send_raw(full).await;
    assert_eq!(code(&s.answer().await), code::OK);

    // Sets the deny header, but also uses an unknown index: refused as a
    // whole, so the header must not stick.
    let mut bad = Attributes::default();
    let mut headers = mixer_proto::istio::mixer::v1::StringMap::default();
    headers.map.insert(2, "yes".into());
    bad.string_map_attributes.insert(1, headers);
    bad.int64_attributes.insert(99, 1);
    s.send_raw(bad).await;
    let a = s.answer().await;
    assert_eq!(code(&a), code::INVALID_ARGUMENT);
    assert!(
        message(&a).contains("int64_attributes[99]"),
        "{}",
        message(&a)
    );

    // An empty delta: the context is what the good update left.
    s.send_raw(Attributes::default()).await;
    assert_eq!(code(&s.answer().await), code::OK);
    assert_eq!(server.service.stats().method(Method::Check).invalid, 2);
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_stream_grants_until_exhausted_and_deduplicates() {
    let mut server = TestServer::start(&standard_config("0s"), quick_options()).await;
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(16);
    let mut answers = client
        .quota(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut enc = mixer_attributes::Encoder::new();
    let b = bag("/q", &[]);
    let ask = |i: i64, dedup: &str, update: Option<Attributes>| QuotaRequest {
        request_index: i,
        attribute_update: update,
        deduplication_id: dedup.into(),
        quota: "requestquota".into(),
        amount: 1,
        best_effort: false,
    };
    tx.send(ask(1, "a", Some(enc.encode(0, &b).unwrap())))
        .await
        .unwrap();
    let mut got = Vec::new();
    for (i, id) in [(2, "b"), (3, "c"), (4, "d"), (5, "a")] {
        tx.send(ask(i, id, None)).await.unwrap();
    }
    // No quota name: refused, the stream goes on.
    let mut nameless = ask(6, "e", None);
    nameless.quota.clear();
    tx.send(nameless).await.unwrap();
    for _ in 0..6 {
        let a = answers.message().await.unwrap().unwrap();
        got.push((a.request_index, a.result.unwrap().code, a.amount));
    }
    got.sort();
    assert_eq!(
        got,
        [
            (1, code::OK, 1),
            (2, code::OK, 1),
            (3, code::OK, 1),
            (4, code::RESOURCE_EXHAUSTED, 0),
            // A retry of request 1: its answer again, nothing consumed.
            (5, code::OK, 1),
            (6, code::INVALID_ARGUMENT, 0),
        ]
    );
    drop(tx);
    assert!(answers.message().await.unwrap().is_none(), "ends OK");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_stream_and_graceful_shutdown_flush_every_report() {
    // Every report batch takes 40 ms at the handler: at shutdown most are
    // still queued, and the flush must wait for them.
    let mut server = TestServer::start(&standard_config("40ms"), quick_options()).await;
    let mut client = server.client().await;
    let (tx, rx) = mpsc::channel(64);
    let mut answers = client
        .report(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut enc = mixer_attributes::Encoder::new();
    let n = 25;
    for i in 1..=n {
        let b = OwnedBag::new().with("response.code", Value::Int64(200 + i));
        tx.send(ReportRequest {
            request_index: i,
            attribute_update: Some(enc.encode(0, &b).unwrap()),
        })
        .await
        .unwrap();
    }
    for _ in 0..n {
        let a = answers.message().await.unwrap().unwrap();
        assert_eq!(a.result.unwrap().code, code::OK);
    }
    assert!(
        server
            .counts
            .reports
            .load(std::sync::atomic::Ordering::SeqCst)
            < n as u64,
        "reports are answered before the slow handler is done with them"
    );
    let done = server.shutdown().await;
    assert!(done.drained && done.flushed, "{done:?}");
    assert_eq!(
        server
            .counts
            .reports
            .load(std::sync::atomic::Ordering::SeqCst),
        n as u64,
        "every accepted report reached its handler before shutdown returned"
    );
    // The stream was ended by the server, cleanly.
    assert!(answers.message().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_what_is_in_flight_then_ends_streams() {
    let mut server = TestServer::start(&standard_config("0s"), quick_options()).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    let slow = s.send(0, &bag("sleep:400", &[])).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let service = server.service.clone();
    let shutting = tokio::spawn(async move { server.shutdown().await });
    let a = s.answer().await;
    assert_eq!((a.request_index, code(&a)), (slow, code::OK));
    assert!(s.recv().await.unwrap().is_none(), "then the stream ends OK");
    let done = shutting.await.unwrap();
    assert!(done.drained && done.flushed);
    assert_eq!(service.stats().open_streams, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_enforced_per_request_and_per_stream() {
    let mut options = quick_options();
    options.limits.max_contexts = 2;
    options.max_message_bytes = 16 * 1024;
    options.message_ceiling_bytes = 64 * 1024;
    options.max_in_flight = 2;
    let mut server = TestServer::start(&standard_config("0s"), options).await;
    let mut client = server.client().await;

    // Contexts: the third is refused, the first two still work.
    let mut s = CheckStream::open(&mut client).await;
    for ctx in 0..3 {
        s.send(ctx, &bag("/x", &[])).await;
    }
    let mut codes: Vec<(i64, i32)> = Vec::new();
    for _ in 0..3 {
        let a = s.answer().await;
        codes.push((a.request_index, code(&a)));
        if a.request_index == 3 {
            assert!(
                message(&a).contains("already holds 2 contexts"),
                "{}",
                message(&a)
            );
        }
    }
    codes.sort();
    assert_eq!(codes, [(1, 0), (2, 0), (3, code::INVALID_ARGUMENT)]);
    s.encoder.reset(2);
    s.send(1, &bag("/y", &[])).await;
    assert_eq!(code(&s.answer().await), code::OK);

    // Load shedding: two slow checks fill the server; the next ones are
    // refused at once with UNAVAILABLE instead of queueing.
    let mut slow = Vec::new();
    for _ in 0..2 {
        slow.push(s.send(0, &bag("sleep:500", &[])).await);
    }
    let shed = s.send(0, &bag("sleep:1", &[])).await;
    let a = s.answer().await;
    assert_eq!(a.request_index, shed);
    assert_eq!(code(&a), code::UNAVAILABLE);
    assert!(
        message(&a).starts_with("server overloaded"),
        "{}",
        message(&a)
    );
    for _ in 0..2 {
        let a = s.answer().await;
        assert!(slow.contains(&a.request_index));
        assert_eq!(code(&a), code::OK);
    }
    assert_eq!(server.service.stats().method(Method::Check).shed, 1);
    assert_eq!(server.service.stats().in_flight, 0);

    // A message over the limit is answered on its own, naming its size and
    // the limit, and its update is not applied: the stream goes on.
    let mut big = Attributes::default();
    big.dictionary.insert(0, "request.path".into());
    big.string_attributes.insert(0, "x".repeat(20 * 1024));
    let mut s2 = CheckStream::open(&mut client).await;
    let big_index = s2.send_raw(big.clone()).await;
    let a = s2.answer().await;
    assert_eq!(
        (a.request_index, code(&a)),
        (big_index, code::INVALID_ARGUMENT)
    );
    let size = CheckRequest {
        request_index: big_index,
        attribute_update: Some(big.clone()),
    }
    .encoded_len();
    assert_eq!(
        message(&a),
        format!(
            "request message is {size} bytes, over the server's limit of 16384 bytes; \
             its attribute_update was not applied"
        )
    );
    // Not applied: its dictionary is not the stream's...
    let mut no_dictionary = Attributes::default();
    no_dictionary.string_attributes.insert(0, "/x".into());
    s2.send_raw(no_dictionary).await;
    let a = s2.answer().await;
    assert_eq!(code(&a), code::INVALID_ARGUMENT, "{}", message(&a));
    // ...and a request with its own is served.
    s2.send(0, &bag("/after-big", &[])).await;
    assert_eq!(code(&s2.answer().await), code::OK);
    // Over the ceiling, the stream ends with OUT_OF_RANGE from the frame
    // header...
    big.string_attributes.insert(0, "x".repeat(70 * 1024));
    s2.send_raw(big).await;
    let err = s2.recv().await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::OutOfRange, "{err}");
    // ...while the first stream is still served.
    s.send(0, &bag("/still", &[])).await;
    assert_eq!(code(&s.answer().await), code::OK);
    let stats = server.service.stats();
    let check = stats.method(Method::Check);
    assert_eq!((check.stream_errors, check.invalid), (1, 3));
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_over_the_limit_are_refused() {
    let options = Options {
        max_streams: 1,
        ..quick_options()
    };
    let mut server = TestServer::start(&standard_config("0s"), options).await;
    let mut client = server.client().await;
    let mut first = CheckStream::open(&mut client).await;
    first.send(0, &bag("/a", &[])).await;
    assert_eq!(code(&first.answer().await), code::OK);
    let (_tx, rx) = mpsc::channel(1);
    let refused = client.check(ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable);
    assert!(refused.message().contains("1 streams open"), "{refused}");
    assert_eq!(server.service.stats().streams_refused, 1);
    drop(first);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_directory_changes_are_picked_up_and_bad_ones_rejected() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("base.yaml"), standard_config("0s")).unwrap();
    let mut server = TestServer::start_dir(dir.path(), quick_options()).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    let req = bag("/admin", &[]);
    s.send(0, &req).await;
    assert_eq!(code(&s.answer().await), code::OK);

    // A new file denying /admin.
    let deny = [
        handler(
            "admin",
            "denier",
            r#"{status: {code: 9, message: "no admin"}}"#,
        ),
        instance("admin-nothing", "checknothing", "{}"),
        rule(
            "admin-rule",
            r#"request.path == "/admin""#,
            "admin",
            &["admin-nothing"],
        ),
    ]
    .concat();
    std::fs::write(dir.path().join("admin.yaml"), deny).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        s.send(0, &req).await;
        let a = s.answer().await;
        if code(&a) == code::FAILED_PRECONDITION {
            assert_eq!(message(&a), "admin.handler.istio-system: no admin");
            break;
        }
        assert!(Instant::now() < deadline, "reload not picked up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The new snapshot is visible to requests a moment before the watcher
    // counts the reload, so wait for the count rather than read it once.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.service.stats().config_reloads_ok == 0 {
        assert!(Instant::now() < deadline, "reload served but never counted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.service.stats().config_reloads_ok, 1);

    // A broken file: rejected, logged, counted; the old config serves on.
    std::fs::write(
        dir.path().join("broken.yaml"),
        rule("broken", "request.path ==", "admin", &["admin-nothing"]),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.service.stats().config_reloads_failed == 0 {
        assert!(Instant::now() < deadline, "bad reload not attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.send(0, &req).await;
    assert_eq!(code(&s.answer().await), code::FAILED_PRECONDITION);
    let (status, metrics) = server.http_get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("mixer_server_config_reloads_total{result=\"failed\"} 1\n"),
        "{metrics}"
    );
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_serves_health_readiness_and_metrics() {
    let mut server = TestServer::start(&standard_config("0s"), quick_options()).await;
    assert_eq!(server.http_get("/health").await, (200, "ok\n".into()));
    assert_eq!(server.http_get("/ready").await, (200, "ready\n".into()));
    assert_eq!(server.http_get("/nope").await.0, 404);
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    for _ in 0..3 {
        s.send(0, &bag("/m", &[("x-deny", "yes")])).await;
        s.answer().await;
    }
    let (_, text) = server.http_get("/metrics").await;
    for line in [
        "# TYPE mixer_server_requests_total counter",
        "mixer_server_requests_total{method=\"check\"} 3",
        "mixer_server_requests_not_ok_total{method=\"check\"} 3",
        "mixer_server_open_streams 1",
        "mixer_server_config_generation 1",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from\n{text}"
        );
    }
    // The dispatcher's own metrics are there too.
    assert!(text.contains("mixer_dispatch_"), "{text}");
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_config_denies_whitelists_and_rate_limits() {
    // The config of `examples/config`, with the Prometheus adapter moved to
    // a free port so that the test never collides with a running server.
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(&shipped).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("port: 42422", "port: 0");
        std::fs::write(dir.path().join(path.file_name().unwrap()), text).unwrap();
    }
    let mut server = TestServer::start_dir(dir.path(), quick_options()).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    let labels = |v: &str| {
        let mut m = mixer_attributes::StringMap::new();
        m.insert("version".into(), v.into());
        Value::StringMap(m)
    };
    let to_ratings = |version: &str, deny: &str| {
        bag("/ratings/0", &[("x-mixer-deny", deny)])
            .with(
                "destination.service",
                Value::String("ratings.default.svc.cluster.local".into()),
            )
            .with("source.labels", labels(version))
    };
    let cases = [
        (to_ratings("v1", "false"), code::OK),
        (to_ratings("v3", "false"), code::PERMISSION_DENIED),
        (to_ratings("v1", "true"), code::PERMISSION_DENIED),
    ];
    for (b, want) in &cases {
        s.send(0, b).await;
        let a = s.answer().await;
        assert_eq!(code(&a), *want, "{}", message(&a));
    }
    let a = {
        s.send(0, &to_ratings("v1", "true")).await;
        s.answer().await
    };
    assert_eq!(
        message(&a),
        "deny-header.handler.istio-system: requests with x-mixer-deny are refused"
    );

    // The rate limit: 50 per second for an unknown source calling reviews.
    let (tx, rx) = mpsc::channel(128);
    let mut answers = client
        .quota(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut enc = mixer_attributes::Encoder::new();
    let reviews = OwnedBag::new().with(
        "destination.service",
        Value::String("reviews.default.svc.cluster.local".into()),
    );
    for i in 1..=60 {
        tx.send(QuotaRequest {
            request_index: i,
            attribute_update: Some(enc.encode(0, &reviews).unwrap()),
            deduplication_id: format!("q{i}"),
            quota: "requestquota".into(),
            amount: 1,
            best_effort: false,
        })
        .await
        .unwrap();
    }
    let mut granted = 0;
    for _ in 0..60 {
        granted += answers.message().await.unwrap().unwrap().amount;
    }
    assert!((50..60).contains(&granted), "granted {granted} of 60");
    drop(s);
    drop(tx);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_its_pipelining_bound_waits_instead_of_failing() {
    let options = Options {
        max_in_flight_per_stream: 2,
        ..quick_options()
    };
    let mut server = TestServer::start(&standard_config("0s"), options).await;
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    let started = Instant::now();
    for i in 0..6 {
        s.send(0, &bag(&format!("sleep:{}", 150 + i), &[])).await;
    }
    for _ in 0..6 {
        assert_eq!(code(&s.answer().await), code::OK);
    }
    // Two at a time: three waves of 150 ms, where unbounded pipelining
    // would take one.
    assert!(
        started.elapsed() >= Duration::from_millis(440),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.service.stats().method(Method::Check).shed, 0);
    drop(s);
    server.shutdown().await;
}
