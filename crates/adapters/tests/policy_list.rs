//! listchecker against a provider served over HTTP and HTTPS on loopback
//! (and a file): refresh, keep-last-good, ttl expiry, recovery, and which
//! certificates an https:// provider is trusted with.
#![cfg(feature = "list")]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use mixer_adapters::template::{CheckInstance, ListEntryInstance};
use mixer_adapters::{
    Answer, BuildEnv, CheckResult, Error, Handler, ManualClock, Params, Registry,
};
use mixer_attributes::Value;
use mixer_proto::code;
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What the test server answers: status and body.
type Reply = Arc<Mutex<(u16, String)>>;

async fn serve(reply: Reply) -> String {
    let (addr, _) = listen(reply, None).await;
    format!("http://{addr}/list")
}

/// Serves `reply` on a loopback port, over TLS when given an acceptor.
/// Counts the requests answered: a connection refused in the handshake
/// never gets that far.
async fn listen(reply: Reply, tls: Option<TlsAcceptor>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = Arc::new(AtomicUsize::new(0));
    let counter = answered.clone();
    tokio::spawn(async move {
        loop {
            let Ok((conn, _)) = listener.accept().await else {
                return;
            };
            let (reply, counter, tls) = (reply.clone(), counter.clone(), tls.clone());
            tokio::spawn(async move {
                match tls {
                    None => answer(conn, &reply, &counter).await,
                    Some(acceptor) => {
                        if let Ok(conn) = acceptor.accept(conn).await {
                            answer(conn, &reply, &counter).await;
                        }
                    }
                }
            });
        }
    });
    (addr, answered)
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut conn: S,
    reply: &Reply,
    answered: &AtomicUsize,
) {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => req.extend_from_slice(&buf[..n]),
        }
    }
    assert!(req.starts_with(b"GET /list HTTP/1.1\r\n"));
    let (status, body) = reply.lock().clone();
    let resp = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    answered.fetch_add(1, Ordering::Relaxed);
    let _ = conn.write_all(resp.as_bytes()).await;
    // Over TLS this sends close_notify.
    let _ = conn.shutdown().await;
}

/// A CA made at test time, and a TLS acceptor whose certificate the CA
/// issued for `name` (an IP address or a DNS name).
fn tls_server(name: &str) -> (String, TlsAcceptor) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec![name.to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
    )
    .unwrap();
    (ca.pem(), TlsAcceptor::from(Arc::new(config)))
}

fn build(params: serde_json::Value) -> Arc<dyn Handler> {
    Registry::builtin()
        .validate("listchecker", &Params::new(params))
        .unwrap()
        .build(&BuildEnv::current())
        .unwrap()
}

fn check(h: &dyn Handler, v: &str) -> Result<CheckResult, Error> {
    let i = CheckInstance::ListEntry(ListEntryInstance {
        name: "l.instance.ns".into(),
        value: Value::String(v.into()),
    });
    match h.check(&i) {
        Answer::Ready(r) => r,
        Answer::Pending(_) => panic!("the list answers inline"),
    }
}

fn allowed(h: &dyn Handler, v: &str) -> Option<bool> {
    check(h, v).ok().map(|r| r.status.is_ok())
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..100 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

fn counter(h: &dyn Handler, name: &str) -> u64 {
    h.counters().iter().find(|c| c.name == name).unwrap().value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_keep_last_good_ttl_and_recovery() {
    let reply: Reply = Arc::new(Mutex::new((200, "alice\nbob\n".into())));
    let url = serve(reply.clone()).await;
    let clock = Arc::new(ManualClock::new());
    let env = BuildEnv::current().with_clock(clock.clone());
    let params = Params::new(json!({
        "providerUrl": url, "refreshInterval": "1s", "ttl": "3s", "overrides": ["root"]
    }));
    let h = Registry::builtin()
        .validate("listchecker", &params)
        .unwrap()
        .build(&env)
        .unwrap();
    let h = &*h;
    eventually("the first fetch", || allowed(h, "alice") == Some(true)).await;
    assert_eq!(allowed(h, "carol"), Some(false));
    assert_eq!(
        allowed(h, "root"),
        Some(true),
        "overrides are always in the list"
    );
    assert_eq!(
        check(h, "carol").unwrap().status.message,
        "carol is not whitelisted"
    );

    // Refresh picks up a change.
    reply.lock().1 = "carol\n".into();
    eventually("the refreshed list", || allowed(h, "carol") == Some(true)).await;
    assert_eq!(allowed(h, "alice"), Some(false));
    assert_eq!(allowed(h, "root"), Some(true));

    // The provider fails: the last good list stays, and failures are counted.
    reply.lock().0 = 500;
    let failures = counter(h, "refresh_failures");
    eventually("a failed refresh", || {
        counter(h, "refresh_failures") > failures
    })
    .await;
    clock.advance(Duration::from_millis(2900));
    assert_eq!(allowed(h, "carol"), Some(true), "kept until the ttl");

    // Past the ttl: an adapter error, UNAVAILABLE.
    clock.advance(Duration::from_millis(200));
    let e = check(h, "carol").unwrap_err();
    assert_eq!(e.code(), code::UNAVAILABLE);
    let text = e.to_string();
    assert!(
        text.contains("expired") && text.contains("HTTP/1.1 500"),
        "{text}"
    );

    // The provider recovers: so does the handler, by itself.
    *reply.lock() = (200, "dave\n".into());
    eventually("recovery", || allowed(h, "dave") == Some(true)).await;
    assert!(counter(h, "refreshes") >= 3);
    h.close().resolve().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_list_yet_is_unavailable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let params = Params::new(json!({"providerUrl": format!("http://127.0.0.1:{port}/list")}));
    let h = Registry::builtin()
        .validate("listchecker", &params)
        .unwrap()
        .build(&BuildEnv::current())
        .unwrap();
    let h = &*h;
    eventually("the failed first fetch", || {
        counter(h, "refresh_failures") == 1
    })
    .await;
    let e = check(h, "x").unwrap_err();
    assert_eq!(e.code(), code::UNAVAILABLE);
    assert!(e.to_string().contains("no list fetched yet"), "{e}");
    assert!(e.to_string().contains("connecting to 127.0.0.1"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_provider_with_ip_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ips.yaml");
    std::fs::write(&path, "whitelist:\n  - 10.0.0.0/8\n").unwrap();
    let params = Params::new(json!({
        "providerUrl": format!("file://{}", path.display()),
        "refreshInterval": "1s", "entryType": "IP_ADDRESSES", "blacklist": true
    }));
    let h = Registry::builtin()
        .validate("listchecker", &params)
        .unwrap()
        .build(&BuildEnv::current())
        .unwrap();
    let h = &*h;
    eventually("the first read", || allowed(h, "10.1.2.3") == Some(false)).await;
    assert_eq!(
        check(h, "10.1.2.3").unwrap().status.message,
        "10.1.2.3 is blacklisted"
    );
    assert_eq!(allowed(h, "192.168.0.1"), Some(true));
    std::fs::write(&path, "192.168.0.0/16\n").unwrap();
    eventually("the re-read", || allowed(h, "192.168.0.1") == Some(false)).await;
    assert_eq!(allowed(h, "10.1.2.3"), Some(true));
    // A bad entry fails the refresh and keeps the last good list.
    std::fs::write(&path, "192.168.0.0/16\nnot-an-ip\n").unwrap();
    let failures = counter(h, "refresh_failures");
    eventually("a failed re-read", || {
        counter(h, "refresh_failures") > failures
    })
    .await;
    assert_eq!(allowed(h, "192.168.0.1"), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_provider_trusted_through_ca_certificates() {
    let (ca_pem, acceptor) = tls_server("127.0.0.1");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let reply: Reply = Arc::new(Mutex::new((200, "alice\nbob\n".into())));
    let (addr, answered) = listen(reply.clone(), Some(acceptor)).await;
    let h = build(json!({
        "providerUrl": format!("https://{addr}/list"),
        "caCertificates": ca_file.display().to_string(),
        "refreshInterval": "1s"
    }));
    let h = &*h;
    eventually("the first fetch over TLS", || {
        allowed(h, "alice") == Some(true)
    })
    .await;
    assert_eq!(allowed(h, "bob"), Some(true));
    assert_eq!(
        check(h, "carol").unwrap().status.message,
        "carol is not whitelisted"
    );
    assert_eq!(counter(h, "refresh_failures"), 0);
    // And refreshes go over TLS too.
    reply.lock().1 = "carol\n".into();
    eventually("the refreshed list", || allowed(h, "carol") == Some(true)).await;
    assert!(answered.load(Ordering::Relaxed) >= 2);
    h.close().resolve().await.unwrap();
}

/// Fetches from a TLS server the handler must not trust: no list, an
/// UNAVAILABLE naming the certificate problem, and no request ever sent.
async fn refused(server_name: &str, trust_test_ca: bool, why: &str) {
    let (ca_pem, acceptor) = tls_server(server_name);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let reply: Reply = Arc::new(Mutex::new((200, "alice\n".into())));
    let (addr, answered) = listen(reply, Some(acceptor)).await;
    let mut params = json!({
        "providerUrl": format!("https://{addr}/list"), "refreshInterval": "1s"
    });
    if trust_test_ca {
        params["caCertificates"] = ca_file.display().to_string().into();
    }
    let h = build(params);
    let h = &*h;
    eventually("the failed first fetch", || {
        counter(h, "refresh_failures") >= 1
    })
    .await;
    let e = check(h, "alice").unwrap_err();
    assert_eq!(e.code(), code::UNAVAILABLE);
    let text = e.to_string();
    assert!(
        text.contains("no list fetched yet")
            && text.contains(&format!("TLS handshake with {addr}"))
            && text.contains("invalid peer certificate")
            && text.contains(why),
        "{text}"
    );
    assert_eq!(answered.load(Ordering::Relaxed), 0);
    assert_eq!(counter(h, "refreshes"), 0);
    h.close().resolve().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_provider_with_a_certificate_the_system_roots_do_not_know_is_refused() {
    refused("127.0.0.1", false, "UnknownIssuer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_provider_with_a_certificate_for_another_name_is_refused() {
    refused("lists.example", true, "not valid for name").await;
}
