//! HTTP/2 keepalive, seen from the wire: a raw TCP client that speaks just
//! enough HTTP/2 (the preface, SETTINGS, and a hand-written frame reader,
//! independent of the `h2` crate the server uses) to watch the server's
//! PING frames and what happens when they go unanswered.

mod server_support;

use std::time::{Duration, Instant};

use mixer_server::Options;
use server_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;

const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(400);

/// One HTTP/2 frame (RFC 9113 section 4.1).
#[derive(Debug)]
struct Frame {
    kind: u8,
    flags: u8,
    stream: u32,
    payload: Vec<u8>,
}

fn encode(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut b = len.to_be_bytes()[1..].to_vec();
    b.push(kind);
    b.push(flags);
    b.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    b.extend_from_slice(payload);
    b
}

/// The next frame, or `None` at EOF.
async fn read_frame(conn: &mut TcpStream) -> Option<Frame> {
    let mut header = [0u8; 9];
    match conn.read_exact(&mut header).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return None,
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
        Err(e) => panic!("reading a frame header: {e}"),
    }
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let mut payload = vec![0; len];
    if conn.read_exact(&mut payload).await.is_err() {
        return None;
    }
    Some(Frame {
        kind: header[3],
        flags: header[4],
        stream: u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff,
        payload,
    })
}

/// A connection past the preface: our empty SETTINGS sent.
async fn connect(server: &TestServer) -> TcpStream {
    let mut conn = TcpStream::connect(server.addr).await.unwrap();
    conn.write_all(PREFACE).await.unwrap();
    conn.write_all(&encode(SETTINGS, 0, 0, &[])).await.unwrap();
    conn
}

async fn server_with_keepalive() -> TestServer {
    let options = Options {
        keepalive_interval: Some(INTERVAL),
        keepalive_timeout: TIMEOUT,
        ..Options::default()
    };
    TestServer::start(&standard_config("0s"), options).await
}

/// Reads frames until `deadline`, acknowledging the server's SETTINGS and,
/// when `answer_pings`, its PINGs. Returns the PINGs seen (with when) and
/// how the connection ended, if it did: a GOAWAY frame or EOF, and when.
async fn watch(
    conn: &mut TcpStream,
    deadline: Instant,
    answer_pings: bool,
) -> (Vec<Instant>, Option<(&'static str, Instant)>) {
    let mut pings = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(frame) = tokio::time::timeout(left, read_frame(conn)).await else {
            return (pings, None);
        };
        let now = Instant::now();
        let Some(f) = frame else {
            return (pings, Some(("EOF", now)));
        };
        match (f.kind, f.flags & ACK) {
            (SETTINGS, 0) => {
                conn.write_all(&encode(SETTINGS, ACK, 0, &[]))
                    .await
                    .unwrap();
            }
            (PING, 0) => {
                assert_eq!((f.stream, f.payload.len()), (0, 8), "{f:?}");
                pings.push(now);
                if answer_pings {
                    conn.write_all(&encode(PING, ACK, 0, &f.payload))
                        .await
                        .unwrap();
                }
            }
            (GOAWAY, _) => return (pings, Some(("GOAWAY", now))),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_ping_closes_the_connection() {
    let mut server = server_with_keepalive().await;
    let mut conn = connect(&server).await;
    let opened = Instant::now();
    // Generous against a loaded machine, far below the 30 s default
    // interval, so that a keepalive left unconfigured fails here.
    let (pings, end) = watch(&mut conn, opened + Duration::from_secs(10), false).await;
    let first = *pings.first().expect("the server sent a PING");
    assert!(
        first.duration_since(opened) >= INTERVAL / 2,
        "a PING only after a quiet interval, not at once: {:?}",
        first.duration_since(opened)
    );
    let (how, closed) = end.expect("the server closed the connection");
    let waited = closed.duration_since(first);
    assert!(
        waited >= TIMEOUT / 2,
        "closed by the keepalive timeout, not before it: {how} after {waited:?}"
    );
    assert!(
        waited < TIMEOUT + Duration::from_secs(5),
        "{how} after {waited:?}"
    );
    // The server itself is unharmed: gRPC still served.
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    s.send(0, &bag("/after", &[])).await;
    assert_eq!(code(&s.answer().await), mixer_proto::code::OK);
    drop(s);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answered_pings_keep_an_idle_connection_open() {
    let mut server = server_with_keepalive().await;
    let mut conn = connect(&server).await;
    // Several intervals and timeouts over: with every PING acknowledged,
    // the connection stays open and the server keeps probing it.
    let span = (INTERVAL + TIMEOUT) * 4;
    let (pings, end) = watch(&mut conn, Instant::now() + span, true).await;
    assert_eq!(end, None, "the connection stayed open");
    assert!(pings.len() >= 2, "{} PINGs in {span:?}", pings.len());
    server.shutdown().await;
}

#[test]
fn frames_are_encoded_as_rfc_9113_says() {
    // A PING ACK with payload 1..=8 on stream 0.
    let b = encode(PING, ACK, 0, &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        b,
        [0, 0, 8, 6, 1, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8].to_vec()
    );
}
