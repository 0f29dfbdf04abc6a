//! listchecker against a provider served over HTTP on loopback (and a
//! file): refresh, keep-last-good, ttl expiry, recovery.
#![cfg(feature = "list")]

use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::template::{CheckInstance, ListEntryInstance};
use mixer_adapters::{
    Answer, BuildEnv, CheckResult, Error, Handler, ManualClock, Params, Registry,
};
use mixer_attributes::Value;
use mixer_proto::code;
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the test server answers: status and body.
type Reply = Arc<Mutex<(u16, String)>>;

async fn serve(reply: Reply) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                return;
            };
            let reply = reply.clone();
            tokio::spawn(async move {
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
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/list")
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
