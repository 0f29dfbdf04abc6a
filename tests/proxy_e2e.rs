//! The embedded proxy with real HTTP: an upstream, the proxy with the Mixer
//! linked in (the shipped configuration), and the Prometheus endpoint of
//! the shipped telemetry config.

#[allow(dead_code)]
#[path = "../examples/embedded_proxy/proxy.rs"]
mod proxy;

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mixer_adapters::{ManualClock, Registry};
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_proto::code;
use tokio::net::TcpListener;

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The shipped config, with its Prometheus endpoint moved to `prom_port`.
fn shipped_config(prom_port: u16) -> Documents {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/config");
    let mut docs = Documents::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replace("port: 42422", &format!("port: {prom_port}"));
        docs.add_yaml(&path.display().to_string(), &text);
    }
    docs
}

/// A tiny upstream that counts what reaches it.
async fn upstream() -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let h = h.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    h.fetch_add(1, Ordering::SeqCst);
                    async move {
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!(
                            "upstream saw {}",
                            req.uri().path()
                        )))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, hits)
}

struct Http(Client<HttpConnector, Full<Bytes>>);

impl Http {
    fn new() -> Http {
        Http(Client::builder(TokioExecutor::new()).build_http())
    }

    async fn get(&self, url: &str, headers: &[(&str, &str)]) -> (StatusCode, String) {
        let mut req = Request::get(url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .0
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// The value of the `istio_request_count` sample whose labels include all of
/// `labels`, if scraped.
fn sample(metrics: &str, labels: &[&str]) -> Option<f64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("istio_request_count{") && !l.starts_with('#'))
        .find(|l| labels.iter().all(|want| l.contains(want)))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_checks_limits_forwards_and_reports_in_process() {
    let prom_port = free_port();
    // A clock that stands still: the rate limit's one-second window does
    // not roll over however slowly the machine runs, so the split below is
    // exact.
    let dispatcher = Dispatcher::new(
        Registry::builtin(),
        tokio::runtime::Handle::current(),
        DispatchOptions {
            clock: Arc::new(ManualClock::new()),
            ..DispatchOptions::default()
        },
    );
    dispatcher.load(shipped_config(prom_port)).unwrap();
    let (up, hits) = upstream().await;
    let running = proxy::start(proxy::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: up,
        // The shipped quota gives this service 50 requests per second from
        // an unknown source.
        destination_service: "reviews.default.svc.cluster.local".into(),
        mixer: Some(proxy::Mixer::new(dispatcher.clone())),
    })
    .await
    .unwrap();
    let base = format!("http://{}", running.addr);
    let http = Http::new();

    // Allowed: reaches the upstream.
    let (status, body) = http.get(&format!("{base}/hello"), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "upstream saw /hello");
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Denied by the shipped policy: 403, and the upstream never sees it.
    for _ in 0..2 {
        let (status, body) = http
            .get(&format!("{base}/hello"), &[("x-mixer-deny", "true")])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert!(body.starts_with("PERMISSION_DENIED: "), "{body}");
        assert!(
            body.contains("requests with x-mixer-deny are refused"),
            "{body}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1);

    // Rate limited: 50 per second; 70 asked within the window.
    let mut ok = 1; // the first request above
    let mut limited = 0;
    for i in 0..70 {
        let (status, body) = http.get(&format!("{base}/r{i}"), &[]).await;
        match status {
            StatusCode::OK => ok += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(body.starts_with("RESOURCE_EXHAUSTED: "), "{body}");
                limited += 1;
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    // Exactly the limit.
    assert_eq!((ok, limited), (50, 21));
    assert_eq!(hits.load(Ordering::SeqCst), ok);

    // Telemetry reached the Prometheus handler: scrape it.
    let svc = r#"destination_service="reviews.default.svc.cluster.local""#;
    let deadline = Instant::now() + Duration::from_secs(10);
    let metrics_url = format!("http://127.0.0.1:{prom_port}/metrics");
    loop {
        let (_, metrics) = http.get(&metrics_url, &[]).await;
        let got = |code: &str| sample(&metrics, &[svc, &format!(r#"response_code="{code}""#)]);
        if got("200") == Some(ok as f64)
            && got("403") == Some(2.0)
            && got("429") == Some(limited as f64)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "request_count not as expected after 10 s:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The same proxy with the Mixer off lets everything through.
    let plain = proxy::start(proxy::Settings {
        listen: "127.0.0.1:0".parse().unwrap(),
        upstream: up,
        destination_service: "reviews.default.svc.cluster.local".into(),
        mixer: None,
    })
    .await
    .unwrap();
    let (status, _) = http
        .get(
            &format!("http://{}/x", plain.addr),
            &[("x-mixer-deny", "true")],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn denials_map_to_http_statuses() {
    let table = [
        (code::OK, 200),
        (code::PERMISSION_DENIED, 403),
        (code::UNAUTHENTICATED, 401),
        (code::RESOURCE_EXHAUSTED, 429),
        (code::FAILED_PRECONDITION, 412),
        (code::INVALID_ARGUMENT, 400),
        (code::NOT_FOUND, 404),
        (code::DEADLINE_EXCEEDED, 504),
        (code::UNAVAILABLE, 503),
        (code::INTERNAL, 500),
        (99, 500),
    ];
    for (grpc, http) in table {
        assert_eq!(
            proxy::http_status(grpc).as_u16(),
            http,
            "{}",
            code::name(grpc)
        );
    }
}
