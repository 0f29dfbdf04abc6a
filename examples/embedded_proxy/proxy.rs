//! The proxy itself, apart from its command line so that tests can run it
//! in-process: an HTTP/1 reverse proxy that asks a Mixer linked into the
//! same process (a [`Dispatcher`]) before forwarding, and reports after.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{CONTENT_LENGTH, HOST, HeaderValue, USER_AGENT};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mixer_attributes::{AttrId, OwnedBag, StringMap, Timestamp, Value};
use mixer_client::{CacheKeys, CheckCache, Status as ClientStatus, SystemClock};
use mixer_dispatch::{Dispatcher, QuotaRequest, ReportOutcome};
use mixer_proto::code;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The Mixer the proxy consults, in-process.
#[derive(Clone)]
pub(crate) struct Mixer {
    /// Runs checks, quotas and reports under the loaded configuration.
    pub(crate) dispatcher: Dispatcher,
    /// Decisions cached on the attributes each one referenced; `None` asks
    /// the dispatcher every time.
    pub(crate) cache: Option<Arc<CheckCache>>,
    /// The quota each request spends one unit of (`None`: no quota).
    pub(crate) quota: Option<String>,
}

impl Mixer {
    /// A Mixer with a learned-key check cache of the usual size and the
    /// shipped config's quota, `requestquota`.
    pub(crate) fn new(dispatcher: Dispatcher) -> Mixer {
        Mixer {
            dispatcher,
            cache: Some(Arc::new(CheckCache::new(
                CacheKeys::Learned,
                mixer_client::DEFAULT_CACHE_CAPACITY,
                Arc::new(SystemClock),
            ))),
            quota: Some("requestquota".into()),
        }
    }
}

/// What the proxy does.
#[derive(Clone)]
pub(crate) struct Settings {
    /// Where to listen (port 0 picks one).
    pub(crate) listen: SocketAddr,
    /// Where allowed requests go.
    pub(crate) upstream: SocketAddr,
    /// `destination.service` of every request: the service this proxy fronts.
    pub(crate) destination_service: String,
    /// `None`: a plain proxy, for comparison.
    pub(crate) mixer: Option<Mixer>,
}

/// A running proxy; stops when dropped.
pub(crate) struct Running {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct State {
    settings: Settings,
    client: HttpClient<HttpConnector, Full<Bytes>>,
}

/// Binds and serves in the background.
pub(crate) async fn start(settings: Settings) -> std::io::Result<Running> {
    let listener = TcpListener::bind(settings.listen).await?;
    let addr = listener.local_addr()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let state = Arc::new(State {
        client: HttpClient::builder(TokioExecutor::new()).build(connector),
        settings,
    });
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| handle(state.clone(), peer, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(Running { addr, task })
}

/// The HTTP status for a denial's gRPC code.
///
/// | code | HTTP |
/// |---|---|
/// | `PERMISSION_DENIED` | 403 |
/// | `UNAUTHENTICATED` | 401 |
/// | `RESOURCE_EXHAUSTED` | 429 |
/// | `FAILED_PRECONDITION` | 412 (a policy precondition, e.g. a whitelist, did not hold) |
/// | `INVALID_ARGUMENT`, `OUT_OF_RANGE` | 400 |
/// | `NOT_FOUND` | 404 |
/// | `DEADLINE_EXCEEDED` | 504 |
/// | `UNAVAILABLE` | 503 |
/// | anything else | 500 |
pub(crate) fn http_status(grpc: i32) -> StatusCode {
    match grpc {
        code::OK => StatusCode::OK,
        code::PERMISSION_DENIED => StatusCode::FORBIDDEN,
        code::UNAUTHENTICATED => StatusCode::UNAUTHORIZED,
        code::RESOURCE_EXHAUSTED => StatusCode::TOO_MANY_REQUESTS,
        code::FAILED_PRECONDITION => StatusCode::PRECONDITION_FAILED,
        code::INVALID_ARGUMENT | code::OUT_OF_RANGE => StatusCode::BAD_REQUEST,
        code::NOT_FOUND => StatusCode::NOT_FOUND,
        code::DEADLINE_EXCEEDED => StatusCode::GATEWAY_TIMEOUT,
        code::UNAVAILABLE => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The attributes the proxy sets, interned once rather than looked up by
/// name on every request.
struct Ids {
    request_path: AttrId,
    request_method: AttrId,
    request_host: AttrId,
    request_scheme: AttrId,
    request_useragent: AttrId,
    request_time: AttrId,
    request_size: AttrId,
    request_headers: AttrId,
    source_ip: AttrId,
    source_port: AttrId,
    destination_service: AttrId,
    context_protocol: AttrId,
    context_reporter_kind: AttrId,
    response_code: AttrId,
    response_size: AttrId,
    response_duration: AttrId,
    response_time: AttrId,
}

static IDS: LazyLock<Ids> = LazyLock::new(|| Ids {
    request_path: AttrId::of("request.path"),
    request_method: AttrId::of("request.method"),
    request_host: AttrId::of("request.host"),
    request_scheme: AttrId::of("request.scheme"),
    request_useragent: AttrId::of("request.useragent"),
    request_time: AttrId::of("request.time"),
    request_size: AttrId::of("request.size"),
    request_headers: AttrId::of("request.headers"),
    source_ip: AttrId::of("source.ip"),
    source_port: AttrId::of("source.port"),
    destination_service: AttrId::of("destination.service"),
    context_protocol: AttrId::of("context.protocol"),
    context_reporter_kind: AttrId::of("context.reporter.kind"),
    response_code: AttrId::of("response.code"),
    response_size: AttrId::of("response.size"),
    response_duration: AttrId::of("response.duration"),
    response_time: AttrId::of("response.time"),
});

/// The attributes of one request, as a sidecar on the inbound path sees them.
pub(crate) fn request_bag<T>(req: &Request<T>, peer: SocketAddr, destination: &str) -> OwnedBag {
    let mut headers = StringMap::new();
    for (name, value) in req.headers() {
        if let Ok(v) = value.to_str() {
            headers.insert(name.as_str().into(), v.to_string());
        }
    }
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let host = header(req, HOST);
    headers.insert(":method".into(), req.method().as_str().to_string());
    headers.insert(":path".into(), path.clone());
    headers.insert(":authority".into(), host.clone());
    let ids = &*IDS;
    let mut bag = OwnedBag::new();
    for (id, v) in [
        (ids.request_path, Value::String(path)),
        (
            ids.request_method,
            Value::String(req.method().as_str().into()),
        ),
        (ids.request_host, Value::String(host)),
        (ids.request_scheme, Value::String("http".into())),
        (
            ids.request_useragent,
            Value::String(header(req, USER_AGENT)),
        ),
        (ids.request_time, Value::Timestamp(Timestamp::now())),
        (ids.source_ip, Value::IpAddress(peer.ip())),
        (ids.source_port, Value::Int64(i64::from(peer.port()))),
        (ids.destination_service, Value::String(destination.into())),
        (ids.context_protocol, Value::String("http".into())),
        (ids.context_reporter_kind, Value::String("inbound".into())),
        (ids.request_headers, Value::StringMap(headers)),
    ] {
        bag.set(id, v);
    }
    if let Some(size) = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<i64>().ok())
    {
        bag.set(ids.request_size, Value::Int64(size));
    }
    bag
}

fn header<T>(req: &Request<T>, name: hyper::header::HeaderName) -> String {
    req.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Check (from the learned cache when it can), then quota: the denial to
/// answer with, if any.
async fn admit(mixer: &Mixer, bag: &OwnedBag) -> Option<(i32, String)> {
    let cached = mixer.cache.as_ref().and_then(|c| c.lookup(bag));
    let (code, message) = match cached {
        Some(hit) => (hit.status.code, hit.status.message.to_string()),
        None => {
            let outcome = mixer.dispatcher.check(bag).await;
            if let Some(cache) = &mixer.cache {
                cache.insert_referenced(
                    bag,
                    &outcome.referenced,
                    &ClientStatus::new(outcome.status.code, outcome.status.message.as_str()),
                    outcome.valid_duration,
                    outcome.valid_use_count,
                );
            }
            (outcome.status.code, outcome.status.message)
        }
    };
    if code != code::OK {
        return Some((code, message));
    }
    if let Some(quota) = &mixer.quota {
        let outcome = mixer
            .dispatcher
            .quota(
                bag,
                QuotaRequest {
                    quota,
                    amount: 1,
                    deduplication_id: "",
                    best_effort: false,
                },
            )
            .await;
        if outcome.granted < 1 {
            let message = if outcome.status.message.is_empty() {
                format!("quota {quota} exhausted")
            } else {
                outcome.status.message
            };
            return Some((code::RESOURCE_EXHAUSTED, message));
        }
    }
    None
}

async fn handle(
    state: Arc<State>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let start = Instant::now();
    let settings = &state.settings;
    let mixer = settings.mixer.as_ref();
    let (mut bag, denial) = before(mixer, &req, peer, &settings.destination_service).await;
    let response = match denial {
        Some((grpc, message)) => text(
            http_status(grpc),
            format!("{}: {message}\n", code::name(grpc)),
        ),
        None => forward(&state, req).await,
    };
    let size = response.body().size_hint().exact().unwrap_or(0);
    after(mixer, bag.as_mut(), response.status(), size, start);
    Ok(response)
}

/// The Mixer's part before a request is forwarded: the request's
/// attributes, and the denial to answer with instead, if any. Nothing with
/// the Mixer off.
pub(crate) async fn before<T>(
    mixer: Option<&Mixer>,
    req: &Request<T>,
    peer: SocketAddr,
    destination: &str,
) -> (Option<OwnedBag>, Option<(i32, String)>) {
    let Some(mixer) = mixer else {
        return (None, None);
    };
    let bag = request_bag(req, peer, destination);
    let denial = admit(mixer, &bag).await;
    (Some(bag), denial)
}

/// The Mixer's part after the response: the response's attributes, then a
/// report queued for the report handlers (never waits). Nothing with the
/// Mixer off.
pub(crate) fn after(
    mixer: Option<&Mixer>,
    bag: Option<&mut OwnedBag>,
    status: StatusCode,
    size: u64,
    start: Instant,
) -> ReportOutcome {
    let (Some(mixer), Some(bag)) = (mixer, bag) else {
        return ReportOutcome::default();
    };
    let ids = &*IDS;
    bag.set(ids.response_code, Value::Int64(i64::from(status.as_u16())));
    bag.set(ids.response_size, Value::Int64(size as i64));
    bag.set(ids.response_duration, Value::Duration(start.elapsed()));
    bag.set(ids.response_time, Value::Timestamp(Timestamp::now()));
    mixer.dispatcher.report(&*bag)
}

/// Sends the request upstream and buffers the answer (this example keeps
/// bodies whole so that `response.size` is exact).
async fn forward(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (mut parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("reading the request: {e}\n"),
            );
        }
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = match format!("http://{}{path}", state.settings.upstream).parse() {
        Ok(u) => u,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("bad path: {e}\n")),
    };
    let upstream = Request::from_parts(parts, Full::new(body));
    let answer =
        tokio::time::timeout(Duration::from_secs(30), state.client.request(upstream)).await;
    match answer {
        Ok(Ok(resp)) => {
            let (parts, body) = resp.into_parts();
            match body.collect().await {
                Ok(b) => Response::from_parts(parts, Full::new(b.to_bytes())),
                Err(e) => text(StatusCode::BAD_GATEWAY, format!("upstream body: {e}\n")),
            }
        }
        Ok(Err(e)) => text(StatusCode::BAD_GATEWAY, format!("upstream: {e}\n")),
        Err(_) => text(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n".into()),
    }
}
