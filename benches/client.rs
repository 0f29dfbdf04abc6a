//! The client: a check answered from the client's cache against the same
//! check sent over loopback to a mixer-server in this process (20
//! attributes, same run), with allocations per cache hit counted (must be
//! zero); and the embedded proxy with the Mixer linked in against the same
//! proxy with the Mixer off: the Mixer's in-process part per request beside
//! a no-op, and whole HTTP requests interleaved with the Mixer off (same
//! run).

#[allow(unreachable_pub)]
#[path = "support/counting_alloc.rs"]
mod counting_alloc;

#[allow(dead_code)]
#[path = "../examples/embedded_proxy/proxy.rs"]
mod proxy;

#[global_allocator]
static A: counting_alloc::Counting = counting_alloc::Counting;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use hyper::header::{HOST, USER_AGENT};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mixer_adapters::Registry;
use mixer_attributes::{OwnedBag, StringMap, Timestamp, Value};
use mixer_client::{CacheKeys, Client, Options, Source};
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_server::Server;
use tokio::runtime::Runtime;

/// The shipped configuration, with the Prometheus endpoint on a free port,
/// no access log on stdout, and a quota limit the benchmark cannot reach.
fn shipped_config() -> Documents {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let mut docs = Documents::new();
    for name in ["policy.yaml", "quota.yaml", "telemetry.yaml"] {
        let text = std::fs::read_to_string(dir.join(name)).unwrap();
        let text = text
            .replace("port: 42422", "port: 0")
            .replace("maxAmount: 5000", "maxAmount: 1000000000")
            .replace("  - handler: access-log\n    instances: [accesslog]\n", "");
        docs.add_yaml(name, &text);
    }
    docs
}

/// A request as a sidecar describes it: 20 attributes.
fn bag() -> OwnedBag {
    let headers: StringMap = [
        (":method", "GET"),
        (":path", "/reviews/1"),
        (":authority", "reviews:9080"),
        ("user-agent", "curl/8.0"),
        ("x-request-id", "3f2a9c1e-0000-4000-8000-000000000001"),
    ]
    .into_iter()
    .collect();
    let labels: StringMap = [("app", "productpage"), ("version", "v1")]
        .into_iter()
        .collect();
    let s = |v: &str| Value::String(v.into());
    OwnedBag::new()
        .with("request.path", s("/reviews/1"))
        .with("request.method", s("GET"))
        .with("request.host", s("reviews:9080"))
        .with("request.scheme", s("http"))
        .with("request.useragent", s("curl/8.0"))
        .with("request.size", Value::Int64(0))
        .with(
            "request.time",
            Value::Timestamp(Timestamp::new(1_700_000_000, 0).unwrap()),
        )
        .with("request.id", s("3f2a9c1e-0000-4000-8000-000000000001"))
        .with("request.headers", Value::StringMap(headers))
        .with("source.ip", Value::IpAddress([10, 1, 2, 3].into()))
        .with("source.port", Value::Int64(43210))
        .with("source.service", s("productpage.default.svc.cluster.local"))
        .with("source.uid", s("kubernetes://productpage-v1-1.default"))
        .with("source.labels", Value::StringMap(labels))
        .with(
            "destination.service",
            s("reviews.default.svc.cluster.local"),
        )
        .with("destination.uid", s("kubernetes://reviews-v1-1.default"))
        .with("destination.port", Value::Int64(9080))
        .with("context.protocol", s("http"))
        .with("context.reporter.kind", s("inbound"))
        .with("connection.mtls", Value::Bool(true))
}

/// Polls a future once: a cache hit completes without ever waiting.
fn poll_once<F: Future>(f: F) -> F::Output {
    match pin!(f).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("a cache hit must complete on its first poll"),
    }
}

async fn start_server() -> SocketAddr {
    let dispatcher = Dispatcher::new(
        Registry::builtin(),
        tokio::runtime::Handle::current(),
        DispatchOptions::default(),
    );
    dispatcher.load(shipped_config()).unwrap();
    let server = Server::builder(dispatcher)
        .address("127.0.0.1:0".parse().unwrap())
        .bind()
        .await
        .unwrap();
    let addr = server.local_addr();
    tokio::spawn(server.serve_until(std::future::pending()));
    addr
}

fn check(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let addr = rt.block_on(start_server());
    let bag = bag();
    let (cached, keyed, remote) = rt.block_on(async {
        let mut o = Options::new(addr.to_string());
        o.cache_keys = CacheKeys::WholeBag;
        let cached = Client::new(o.clone()).unwrap();
        // The original Generation-1 client's usual cache keys.
        o.cache_keys = CacheKeys::attributes([
            "source.uid",
            "destination.service",
            "request.path",
            "request.headers/:method",
        ])
        .unwrap();
        let keyed = Client::new(o.clone()).unwrap();
        o.cache_keys = CacheKeys::Disabled;
        let remote = Client::new(o).unwrap();
        for c in [&cached, &keyed, &remote] {
            assert_eq!(c.check(&bag).await.source, Source::Remote);
        }
        (cached, keyed, remote)
    });
    for (name, client) in [("whole request", &cached), ("four configured keys", &keyed)] {
        assert_eq!(poll_once(client.check(&bag)).source, Source::Cache);
        let allocs = counting_alloc::per_call(10_000, || {
            let r = poll_once(client.check(&bag));
            assert_eq!(r.source, Source::Cache);
        });
        eprintln!(
            "client check, cache hit on the {name}, 20 attributes: {allocs} allocations per check"
        );
        // The count is process-wide and the in-process server's threads may
        // allocate now and then (timers, keepalives); an allocating hit
        // would show at least 1.0.
        assert!(allocs < 0.01, "a cache hit must not allocate: {allocs}");
    }
    let remote_allocs = counting_alloc::per_call(200, || {
        rt.block_on(remote.check(&bag));
    });
    eprintln!(
        "client check, remote over loopback: {remote_allocs:.1} allocations per check (client and server)"
    );

    let mut g = c.benchmark_group("client_check_20_attributes");
    g.bench_function("cache_hit_whole_request", |b| {
        b.iter(|| poll_once(cached.check(std::hint::black_box(&bag))))
    });
    g.bench_function("cache_hit_configured_keys", |b| {
        b.iter(|| poll_once(keyed.check(std::hint::black_box(&bag))))
    });
    g.bench_function("remote_loopback", |b| {
        b.iter(|| rt.block_on(remote.check(std::hint::black_box(&bag))))
    });
    g.finish();
}

async fn upstream() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let svc = service_fn(|_req| async {
                    Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"ok"))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

const DESTINATION: &str = "details.default.svc.cluster.local";

/// The Mixer's whole part in one HTTP request, without the HTTP: the
/// request's attributes, check, quota, the response's attributes and the
/// report. Returns the report instances dropped on a full handler queue.
async fn mixer_part(mixer: Option<&proxy::Mixer>, req: &Request<()>, peer: SocketAddr) -> usize {
    let start = Instant::now();
    let (mut bag, denial) = proxy::before(mixer, req, peer, DESTINATION).await;
    assert!(denial.is_none(), "{denial:?}");
    proxy::after(mixer, bag.as_mut(), StatusCode::OK, 2, start).dropped
}

/// Median, quartiles and a distribution-free 95% confidence interval of
/// the median (order statistics around n/2, from the binomial's normal
/// approximation), of sorted `v`.
fn spread(v: &[f64]) -> (f64, f64, f64, f64, f64) {
    let n = v.len();
    let at = |q: f64| v[((n - 1) as f64 * q).round() as usize];
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0 - half).floor() as usize).clamp(1, n) - 1;
    let hi = ((n as f64 / 2.0 + 1.0 + half).ceil() as usize).clamp(1, n) - 1;
    (at(0.5), at(0.25), at(0.75), v[lo], v[hi])
}

fn embedded_proxy(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (mixer, uncached, with_mixer, no_cache, without, http) = rt.block_on(async {
        let up = upstream().await;
        let dispatcher = Dispatcher::new(
            Registry::builtin(),
            tokio::runtime::Handle::current(),
            DispatchOptions::default(),
        );
        dispatcher.load(shipped_config()).unwrap();
        let settings = |mixer| proxy::Settings {
            listen: "127.0.0.1:0".parse().unwrap(),
            upstream: up,
            destination_service: DESTINATION.into(),
            mixer,
        };
        let mixer = proxy::Mixer::new(dispatcher.clone());
        let mut uncached = proxy::Mixer::new(dispatcher);
        uncached.cache = None;
        let with_mixer = proxy::start(settings(Some(mixer.clone()))).await.unwrap();
        let no_cache = proxy::start(settings(Some(uncached.clone())))
            .await
            .unwrap();
        let without = proxy::start(settings(None)).await.unwrap();
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let http: HttpClient<HttpConnector, Full<Bytes>> =
            HttpClient::builder(TokioExecutor::new()).build(connector);
        (mixer, uncached, with_mixer, no_cache, without, http)
    });

    // The Mixer's part alone, against the same calls with the Mixer off
    // (a no-op), so that what it adds is resolved far below the noise of
    // an HTTP round trip.
    let req = Request::get("/details/1")
        .header(HOST, "127.0.0.1:8080")
        .header(USER_AGENT, "bench")
        .body(())
        .unwrap();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut g = c.benchmark_group("embedded_proxy_mixer_part");
    for (name, m) in [
        ("mixer_off", None),
        ("mixer_in_process", Some(&mixer)),
        ("mixer_in_process_no_check_cache", Some(&uncached)),
    ] {
        let (mut calls, mut dropped) = (0u64, 0usize);
        g.bench_function(name, |b| {
            b.iter(|| {
                calls += 1;
                dropped += rt.block_on(mixer_part(m, std::hint::black_box(&req), peer));
            })
        });
        if dropped > 0 {
            eprintln!(
                "embedded proxy, {name}: {dropped} report instances dropped on a full queue in {calls} requests"
            );
        }
    }
    // Of which the request's attributes alone (the bag built and dropped).
    g.bench_function("request_attributes_only", |b| {
        b.iter(|| proxy::request_bag(std::hint::black_box(&req), peer, DESTINATION))
    });
    g.finish();

    let get = |addr: SocketAddr| {
        let http = http.clone();
        async move {
            let req = Request::get(format!("http://{addr}/details/1"))
                .header(USER_AGENT, "bench")
                .body(Full::new(Bytes::new()))
                .unwrap();
            let resp = http.request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
        }
    };
    // End to end over HTTP, each proxy with the Mixer interleaved with the
    // same proxy with the Mixer off, request by request (alternating which
    // goes first), so that both see the same machine. Criterion times the
    // requests with the Mixer; the differences, per pair of requests and
    // per sample, are summarised after.
    const SAMPLES: usize = 100;
    let mut g = c.benchmark_group("embedded_proxy_request");
    g.sample_size(SAMPLES).sampling_mode(SamplingMode::Flat);
    for (name, addr) in [
        ("mixer_in_process", with_mixer.addr),
        ("mixer_in_process_no_check_cache", no_cache.addr),
    ] {
        rt.block_on(get(addr));
        rt.block_on(get(without.addr));
        // Per call of the routine: time with and without the Mixer, and
        // the difference of each pair in µs.
        let mut calls: Vec<(Duration, Duration, Vec<f64>)> = Vec::new();
        g.bench_function(format!("{name}_interleaved_with_mixer_off"), |b| {
            b.iter_custom(|iters| {
                let (mut on, mut off) = (Duration::ZERO, Duration::ZERO);
                let mut pairs = Vec::with_capacity(iters as usize);
                for i in 0..iters {
                    let mut pair = [Duration::ZERO; 2];
                    for mixer in [i % 2 == 0, i % 2 != 0] {
                        let t = Instant::now();
                        rt.block_on(get(if mixer { addr } else { without.addr }));
                        pair[usize::from(mixer)] = t.elapsed();
                    }
                    off += pair[0];
                    on += pair[1];
                    pairs.push((pair[1].as_secs_f64() - pair[0].as_secs_f64()) * 1e6);
                }
                calls.push((on, off, pairs));
                on
            })
        });
        // Warm-up calls come first; the last SAMPLES calls are the samples.
        let samples = &calls[calls.len().saturating_sub(SAMPLES)..];
        if samples.is_empty() {
            continue;
        }
        let sorted = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v
        };
        let per = |d: Duration, pairs: &Vec<f64>| d.as_secs_f64() * 1e6 / pairs.len() as f64;
        let pairs = sorted(samples.iter().flat_map(|s| s.2.iter().copied()).collect());
        let (d, _, _, lo, hi) = spread(&pairs);
        let per_sample = sorted(
            samples
                .iter()
                .map(|(a, b, p)| per(*a, p) - per(*b, p))
                .collect(),
        );
        let (sd, q1, q3, slo, shi) = spread(&per_sample);
        let on = sorted(samples.iter().map(|(a, _, p)| per(*a, p)).collect());
        let off = sorted(samples.iter().map(|(_, b, p)| per(*b, p)).collect());
        eprintln!(
            "embedded proxy, {name} vs Mixer off, interleaved: added {d:.1} µs per request, \
             median of {} per-pair differences (95% CI {lo:.1} .. {hi:.1}); \
             per sample ({} samples of {} pairs): median difference {sd:.1} µs, quartiles \
             {q1:.1} .. {q3:.1}, 95% CI {slo:.1} .. {shi:.1}; mean per request with the Mixer \
             {:.1} µs, off {:.1} µs (sample medians)",
            pairs.len(),
            samples.len(),
            samples[0].2.len(),
            spread(&on).0,
            spread(&off).0,
        );
    }
    g.finish();
    drop((with_mixer, no_cache, without));
}

criterion_group!(benches, check, embedded_proxy);
criterion_main!(benches);
