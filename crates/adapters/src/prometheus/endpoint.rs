//! The `/metrics` HTTP endpoint, shared by every prometheus handler that
//! asks for the same address.
//!
//! Handlers come and go with config changes while the scrape address stays,
//! so an endpoint lives as long as one handler is registered on it. When two
//! live handlers expose a family of the same name (during a hot swap the new
//! handler is built before the old one closes), the most recently registered
//! one is served, so the output never holds a family twice.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Weak};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::series::Family;
use super::text;

/// Live endpoints by bound address.
static ENDPOINTS: LazyLock<Mutex<HashMap<SocketAddr, Weak<Endpoint>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One handler's families.
pub(crate) type Families = Arc<[Arc<Family>]>;

pub(crate) struct Endpoint {
    addr: SocketAddr,
    /// Registered families by registration id, oldest first.
    sets: RwLock<Vec<(u64, Families)>>,
    shutdown: watch::Sender<bool>,
}

/// A handler's place on an endpoint; dropping it unregisters the families
/// and stops the server when it was the last.
pub(crate) struct Registration {
    endpoint: Arc<Endpoint>,
    id: u64,
}

impl Registration {
    /// The address the endpoint listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.endpoint.addr
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut endpoints = ENDPOINTS.lock();
        let mut sets = self.endpoint.sets.write();
        sets.retain(|(id, _)| *id != self.id);
        if sets.is_empty() {
            let _ = self.endpoint.shutdown.send(true);
            if endpoints
                .get(&self.endpoint.addr)
                .is_some_and(|w| w.as_ptr() == Arc::as_ptr(&self.endpoint))
            {
                endpoints.remove(&self.endpoint.addr);
            }
        }
    }
}

/// Registers `families` on the endpoint at `addr`, starting it on `rt` if
/// no live handler serves that address yet.
pub(crate) fn register(
    rt: &tokio::runtime::Handle,
    addr: SocketAddr,
    families: Families,
) -> std::io::Result<Registration> {
    let mut endpoints = ENDPOINTS.lock();
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let live = endpoints.get(&addr).and_then(Weak::upgrade);
    if let Some(ep) = live.filter(|_| addr.port() != 0) {
        ep.sets.write().push((id, families));
        return Ok(Registration { endpoint: ep, id });
    }
    let std_listener = std::net::TcpListener::bind(addr)?;
    std_listener.set_nonblocking(true)?;
    let bound = std_listener.local_addr()?;
    let listener = {
        let _guard = rt.enter();
        tokio::net::TcpListener::from_std(std_listener)?
    };
    let (shutdown, rx) = watch::channel(false);
    let ep = Arc::new(Endpoint {
        addr: bound,
        sets: RwLock::new(vec![(id, families)]),
        shutdown,
    });
    endpoints.insert(bound, Arc::downgrade(&ep));
    rt.spawn(serve(listener, Arc::downgrade(&ep), rx));
    Ok(Registration { endpoint: ep, id })
}

async fn serve(
    listener: tokio::net::TcpListener,
    ep: Weak<Endpoint>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather
                    // than spin, and keep serving.
                    tracing::warn!(error = %e, "prometheus endpoint: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let ep = ep.clone();
        let mut conn_shutdown = shutdown.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let ep = ep.clone();
                async move { Ok::<_, Infallible>(respond(&ep, &req)) }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = conn_shutdown.changed() => {}
            }
        });
    }
}

fn respond(ep: &Weak<Endpoint>, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let reply = |status, ctype: &str, body: String| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        if let Ok(v) = ctype.parse() {
            r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
        }
        r
    };
    if req.uri().path() != "/metrics" {
        return reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into());
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "use GET\n".into(),
        );
    }
    match ep.upgrade() {
        Some(ep) => reply(StatusCode::OK, text::CONTENT_TYPE, ep.render()),
        None => reply(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "shutting down\n".into(),
        ),
    }
}

impl Endpoint {
    /// Every family of every registered handler, newest registration first
    /// and each family name once.
    pub(crate) fn render(&self) -> String {
        let sets = self.sets.read().clone();
        let mut seen = HashSet::new();
        let mut out = String::new();
        for (_, families) in sets.iter().rev() {
            for f in families.iter() {
                if seen.insert(f.name.as_str()) {
                    text::encode_family(&mut out, f);
                }
            }
        }
        out
    }
}
