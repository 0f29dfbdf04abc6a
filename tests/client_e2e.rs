//! mixer-client against a real mixer-server over loopback: what the
//! server's adapters receive, what the cache saves, how quota prefetch is
//! bounded, how reports are batched, and what happens when the server dies.

mod client_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use client_support::{TestServer, config};
use mixer_attributes::{OwnedBag, StringMap, Timestamp, Value};
use mixer_client::{CacheKeys, Client, FailPolicy, ManualClock, Options, PrefetchOptions, Source};
use mixer_proto::code;
use mixer_server::Method;

fn options(server: &TestServer) -> Options {
    let mut o = Options::new(server.addr.to_string());
    o.timeout = Duration::from_secs(2);
    o
}

/// Bag `i` of a sequence that changes values, drops and re-adds attributes
/// and string-map keys, so that deltas of every kind travel.
fn bag(i: i64) -> OwnedBag {
    let mut b = OwnedBag::new()
        .with("request.path", Value::String(format!("/p{}", i % 7)))
        .with("request.size", Value::Int64(i))
        .with(
            "request.time",
            Value::Timestamp(Timestamp::new(1_500_000_000 + i / 3, 0).unwrap()),
        )
        .with(
            "source.ip",
            Value::IpAddress([10, 0, 0, (i % 4) as u8].into()),
        );
    if i % 3 != 0 {
        let mut h: StringMap = [(":method", if i % 2 == 0 { "GET" } else { "POST" })]
            .into_iter()
            .collect();
        if i % 5 != 0 {
            h.insert("user-agent".into(), format!("agent-{}", i % 4));
        }
        b = b.with("request.headers", Value::StringMap(h));
    }
    if i % 4 != 1 {
        b = b.with(
            "response.duration",
            Value::Duration(Duration::from_millis(10 * (i as u64 % 6))),
        );
    }
    if i % 6 == 2 {
        b = b.with("connection.mtls", Value::Bool(true));
    }
    b
}

fn expected(i: i64) -> Vec<(&'static str, String)> {
    let b = bag(i);
    let get = |n: &str| mixer_attributes::Bag::get_by_name(&b, n);
    let header = |k: &str| match get("request.headers") {
        Some(mixer_attributes::ValueRef::StringMap(m)) => m.get(k).unwrap_or("none").to_string(),
        _ => "none".to_string(),
    };
    vec![
        ("path", format!("/p{}", i % 7)),
        ("size", i.to_string()),
        ("time", get("request.time").unwrap().to_string()),
        (
            "duration",
            get("response.duration").map_or("0s".into(), |v| v.to_string()),
        ),
        ("method", header(":method")),
        ("agent", header("user-agent")),
        ("ip", format!("10.0.0.{}", i % 4)),
        ("mtls", (i % 6 == 2).to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltas_reproduce_the_bags_on_the_server() {
    let server = TestServer::start(&config("10s", None));
    let mut o = options(&server);
    o.cache_keys = CacheKeys::Disabled;
    o.contexts = 3;
    o.report.batch_size = 16;
    let client = Client::new(o).unwrap();

    // Checks, awaited one by one: the recorder sees each path in order.
    for i in 0..40 {
        let r = client.check(&bag(i)).await;
        assert_eq!(r.source, Source::Remote);
    }
    let checks = server.rec.checks.lock().unwrap().clone();
    let want: Vec<Value> = (0..40)
        .map(|i| Value::String(format!("/p{}", i % 7)))
        .collect();
    assert_eq!(checks, want);

    // Reports, pipelined over several contexts.
    let n = 120;
    for i in 0..n {
        client.report(&bag(i));
    }
    client.flush().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.rec.logs.lock().unwrap().len() < n as usize && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = server.rec.logs.lock().unwrap().clone();
    assert_eq!(logs.len(), n as usize, "every report reached the adapter");
    let mut seen = vec![false; n as usize];
    for vars in &logs {
        let size: i64 = vars["size"].to_string().parse().unwrap();
        assert!(!seen[size as usize], "report {size} twice");
        seen[size as usize] = true;
        for (k, want) in expected(size) {
            assert_eq!(vars[k].to_string(), want, "report {size}, variable {k}");
        }
    }
    assert_eq!(server.requests(Method::Report), n as u64);
    assert_eq!(client.statistics().report_drops, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_hit_makes_no_network_call_and_denials_are_cached() {
    let server = TestServer::start(&config("10s", None));
    let mut o = options(&server);
    o.cache_keys = CacheKeys::attributes(["request.path", "request.headers/:method"]).unwrap();
    let client = Client::new(o).unwrap();

    let allow = bag(1);
    let first = client.check(&allow).await;
    assert!(first.status.is_ok());
    assert_eq!(first.source, Source::Remote);
    assert!(first.expiration > Duration::from_secs(9));
    assert_eq!(server.requests(Method::Check), 1);
    // bag(29) has the same path and method; other attributes differ.
    assert_eq!(bag(29).text("request.path"), "/p1");
    assert_eq!(
        bag(29).text("request.headers"),
        bag(1).text("request.headers")
    );
    assert_ne!(bag(29).text("request.size"), bag(1).text("request.size"));
    for b in [bag(1), bag(29)] {
        let hit = client.check(&b).await;
        assert_eq!(hit.source, Source::Cache);
        assert!(hit.status.is_ok());
    }
    assert_eq!(server.requests(Method::Check), 1, "hits stay local");

    let deny = OwnedBag::new().with("request.path", Value::String("/deny".into()));
    let d1 = client.check(&deny).await;
    assert_eq!(d1.status.code, code::PERMISSION_DENIED);
    assert_eq!(d1.source, Source::Remote);
    let d2 = client.check(&deny).await;
    assert_eq!(d2.status.code, code::PERMISSION_DENIED);
    assert_eq!(d2.source, Source::Cache);
    assert_eq!(&*d2.status.message, &*d1.status.message);
    assert_eq!(server.requests(Method::Check), 2);

    let s = client.statistics();
    assert_eq!(s.checks, 5);
    assert_eq!(s.check_cache_hits_allow, 2);
    assert_eq!(s.check_cache_hits_deny, 1);
    assert_eq!(s.check_cache_misses_allow, 1);
    assert_eq!(s.check_cache_misses_deny, 1);
    assert_eq!(s.remote_check_calls, 2);
}

trait Text {
    fn text(&self, name: &str) -> String;
}
impl Text for OwnedBag {
    fn text(&self, name: &str) -> String {
        mixer_attributes::Bag::get_by_name(self, name)
            .map(|v| v.to_string())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_answers_expire_by_duration_and_use_count() {
    let server = TestServer::start(&config("10s", None));
    let clock = ManualClock::new();
    let mut o = options(&server);
    o.clock = Arc::new(clock.clone());
    o.cache_keys = CacheKeys::attributes(["request.path"]).unwrap();
    o.cache_use_count = Some(3);
    let client = Client::new(o).unwrap();
    let b = bag(2);

    assert_eq!(client.check(&b).await.source, Source::Remote);
    clock.advance(Duration::from_secs(9));
    assert_eq!(client.check(&b).await.source, Source::Cache);
    clock.advance(Duration::from_secs(1));
    assert_eq!(client.check(&b).await.source, Source::Remote, "10 s are up");
    assert_eq!(server.requests(Method::Check), 2);

    // Three uses, then the server again.
    for _ in 0..3 {
        assert_eq!(client.check(&b).await.source, Source::Cache);
    }
    assert_eq!(client.check(&b).await.source, Source::Remote);
    assert_eq!(server.requests(Method::Check), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_prefetch_never_grants_more_than_the_server_plus_its_bound() {
    // The server grants at most 4 per call: partial grants, closed mode.
    let server = TestServer::start(&config("1s", Some(4)));
    let min_prefetch = 10;
    let mut o = options(&server);
    o.quota.params = PrefetchOptions {
        min_prefetch,
        ..PrefetchOptions::default()
    };
    let client = Client::new(o).unwrap();
    let local = Arc::new(AtomicI64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        let local = local.clone();
        tasks.push(tokio::spawn(async move {
            let b = OwnedBag::new().with("destination.service", Value::String("svc".into()));
            let end = Instant::now() + Duration::from_millis(1500);
            let mut i = 0u64;
            while Instant::now() < end {
                let r = client.quota(&b, "requestcount", 1).await;
                if r.status.is_ok() {
                    assert_eq!(r.granted, 1);
                    local.fetch_add(1, Ordering::SeqCst);
                } else {
                    assert_eq!(r.status.code, code::RESOURCE_EXHAUSTED);
                }
                i += 1;
                tokio::time::sleep(Duration::from_millis(2 + i % 3)).await;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // Let the last prefetch land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let local = local.load(Ordering::SeqCst);
    let server_total = server.rec.quota_granted.load(Ordering::SeqCst);
    let s = client.statistics();
    assert!(local > 0 && server_total > 0);
    assert!(
        local <= server_total + min_prefetch,
        "granted locally {local}, by the server {server_total}, bound {min_prefetch}"
    );
    // Prefetching is the point: far fewer server calls than quota calls,
    // and closed mode keeps it to about one per 500 ms after partial grants.
    let calls = server.rec.quota_calls.load(Ordering::SeqCst);
    assert!(
        s.quotas > 10 * calls,
        "{} quotas, {calls} server calls",
        s.quotas
    );
    assert_eq!(s.prefetch_calls, calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_arrive_in_batches() {
    let server = TestServer::start(&config("10s", None));
    let mut o = options(&server);
    o.report.batch_size = 10;
    o.report.max_age = Duration::from_secs(60);
    let client = Client::new(o).unwrap();
    let settle = || tokio::time::sleep(Duration::from_millis(300));

    for i in 0..9 {
        client.report(&bag(i));
    }
    settle().await;
    assert_eq!(
        server.requests(Method::Report),
        0,
        "nine wait for the tenth"
    );
    client.report(&bag(9));
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.requests(Method::Report) < 10 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        server.requests(Method::Report),
        10,
        "a full batch goes at once"
    );
    for i in 10..15 {
        client.report(&bag(i));
    }
    settle().await;
    assert_eq!(server.requests(Method::Report), 10);
    client.flush().await;
    assert_eq!(server.requests(Method::Report), 15);

    // By age.
    let mut o = options(&server);
    o.report.batch_size = 100;
    o.report.max_age = Duration::from_millis(200);
    let aged = Client::new(o).unwrap();
    for i in 0..3 {
        aged.report(&bag(i));
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while server.requests(Method::Report) < 18 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(server.requests(Method::Report), 18, "sent when 200 ms old");

    // Bounded buffer: past it, dropped and counted.
    let mut o = options(&server);
    o.report.batch_size = 5;
    o.report.max_buffered = 5;
    o.address = "127.0.0.1:1".into();
    o.timeout = Duration::from_millis(100);
    let nowhere = Client::new(o).unwrap();
    for i in 0..5 {
        nowhere.report(&bag(i));
    }
    nowhere.flush().await;
    assert_eq!(
        nowhere.statistics().report_drops,
        5,
        "undeliverable, counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_fails_open_or_closed_within_the_timeout_and_the_client_reconnects() {
    let mut server = TestServer::start(&config("10s", None));
    let timeout = Duration::from_millis(400);
    let make = |policy| {
        let mut o = Options::new(server.addr.to_string());
        o.timeout = timeout;
        o.fail_policy = policy;
        o.cache_keys = CacheKeys::Disabled;
        Client::new(o).unwrap()
    };
    let open = make(FailPolicy::Open);
    let closed = make(FailPolicy::Close);
    let deny = OwnedBag::new().with("request.path", Value::String("/deny".into()));
    assert_eq!(open.check(&deny).await.status.code, code::PERMISSION_DENIED);
    assert_eq!(
        closed.check(&deny).await.status.code,
        code::PERMISSION_DENIED
    );

    server.kill();
    for _ in 0..3 {
        let t = Instant::now();
        let r = open.check(&deny).await;
        assert!(
            t.elapsed() < timeout + Duration::from_millis(300),
            "{:?}",
            t.elapsed()
        );
        assert!(r.status.is_ok(), "fail open: {}", r.status);
        assert_eq!(r.source, Source::Policy);
        let t = Instant::now();
        let r = closed.check(&deny).await;
        assert!(t.elapsed() < timeout + Duration::from_millis(300));
        assert!(
            r.status.code == code::UNAVAILABLE || r.status.code == code::DEADLINE_EXCEEDED,
            "fail closed: {}",
            r.status
        );
    }
    // Quota fails open on connection errors too.
    let q = open.quota(&deny, "requestcount", 1).await;
    assert!(q.status.is_ok());

    server.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut back = false;
    while Instant::now() < deadline {
        let r = open.check(&deny).await;
        if r.source == Source::Remote {
            assert_eq!(
                r.status.code,
                code::PERMISSION_DENIED,
                "a fresh stream, a fresh dictionary"
            );
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(back, "the client reconnected");
    let s = open.statistics();
    assert!(s.streams_opened >= 2, "{s:?}");
    assert!(s.remote_send_errors + s.remote_timeouts >= 3);
}
