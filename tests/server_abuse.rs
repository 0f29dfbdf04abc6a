//! Many streams sending garbage, oversized and truncated messages at once,
//! beside healthy streams: the server stays up and the healthy streams are
//! served. The abusive requests are hand-framed HTTP/2 bodies, so they can
//! break the gRPC framing itself, not only the protobuf inside it.

mod server_support;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use mixer_proto::code;
use mixer_proto::istio::mixer::v1::{Attributes, CheckRequest, CheckResponse};
use mixer_server::{Method, Options};
use prost::Message;
use server_support::*;
use tonic::codegen::Service;
use tonic::codegen::http;
use tonic::transport::Channel;

/// One gRPC message frame: flag, big-endian length, bytes.
fn frame(flag: u8, declared: u32, payload: &[u8]) -> Vec<u8> {
    let mut b = vec![flag];
    b.extend_from_slice(&declared.to_be_bytes());
    b.extend_from_slice(payload);
    b
}

fn message_frame(payload: &[u8]) -> Vec<u8> {
    frame(0, payload.len() as u32, payload)
}

fn valid_request(index: i64) -> Vec<u8> {
    let mut a = Attributes::default();
    a.dictionary.insert(0, "request.path".into());
    a.string_attributes.insert(0, "/fine".into());
    CheckRequest {
        request_index: index,
        attribute_update: Some(a),
    }
    .encode_to_vec()
}

/// What the server sent back on one hand-made call.
#[derive(Debug)]
struct Outcome {
    answers: Vec<CheckResponse>,
    grpc_status: i32,
}

/// Sends `body` as the whole request stream of a Check call.
async fn raw_call(channel: &mut Channel, body: Vec<u8>) -> Outcome {
    let req = http::Request::builder()
        .method("POST")
        .uri("http://127.0.0.1/istio.mixer.v1.Mixer/Check")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(tonic::body::Body::new(Full::new(Bytes::from(body))))
        .unwrap();
    std::future::poll_fn(|cx| channel.poll_ready(cx))
        .await
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), channel.call(req))
        .await
        .expect("answered within 10 s")
        .expect("HTTP/2 response");
    let header_status = resp.headers().get("grpc-status").cloned();
    let collected = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("body within 10 s")
        .expect("body");
    let status = collected
        .trailers()
        .and_then(|t| t.get("grpc-status").cloned())
        .or(header_status)
        .expect("a grpc-status");
    let grpc_status = status.to_str().unwrap().parse().unwrap();
    let mut data = collected.to_bytes();
    let mut answers = Vec::new();
    while data.len() >= 5 {
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]) as usize;
        let msg = data.slice(5..5 + len);
        answers.push(CheckResponse::decode(msg).unwrap());
        data = data.slice(5 + len..);
    }
    Outcome {
        answers,
        grpc_status,
    }
}

/// The abusive bodies, and what each must get.
fn abuse(i: usize) -> (Vec<u8>, &'static str) {
    match i % 7 {
        // Garbage protobuf inside valid frames, then a valid request: each
        // garbage message is answered INVALID_ARGUMENT and the stream goes on.
        0 => {
            let mut b = message_frame(&[0xff; 40]);
            b.extend(message_frame(b"\x08\x01\x12\x05hello"));
            b.extend(message_frame(&valid_request(3)));
            (b, "garbage")
        }
        // A protobuf message cut short inside a valid frame.
        1 => {
            let full = valid_request(1);
            let mut b = message_frame(&full[..full.len() - 4]);
            b.extend(message_frame(&valid_request(2)));
            (b, "truncated-message")
        }
        // A frame declaring 64 MiB: refused from its header, nothing
        // buffered.
        2 => (frame(0, 64 << 20, &[0; 100]), "oversized"),
        // A frame declaring more bytes than the stream carries.
        3 => {
            let mut b = message_frame(&valid_request(1));
            b.extend(frame(0, 500, &[0x08; 20]));
            (b, "truncated-frame")
        }
        // Compressed flag with no encoding negotiated.
        4 => (frame(1, 3, &[1, 2, 3]), "bad-compression"),
        // Not gRPC framing at all.
        5 => (b"GET / HTTP/1.1\r\n\r\n".to_vec(), "noise"),
        // Over the message limit but under the ceiling: a request index,
        // then 100 KiB of junk. Answered on its own; the stream goes on.
        _ => {
            let mut big = vec![0x08, 0x05];
            big.extend(std::iter::repeat_n(0xff, 100 << 10));
            let mut b = message_frame(&big);
            b.extend(message_frame(&valid_request(6)));
            (b, "over-limit")
        }
    }
}

fn check_outcome(kind: &str, o: &Outcome) {
    let codes: Vec<(i64, i32)> = o
        .answers
        .iter()
        .map(|a| (a.request_index, a.result.as_ref().unwrap().code))
        .collect();
    match kind {
        "garbage" => {
            assert_eq!(o.grpc_status, 0, "{kind}: {o:?}");
            assert_eq!(codes.len(), 3, "{kind}: {o:?}");
            assert_eq!(codes[0].1, code::INVALID_ARGUMENT);
            // `hello` is not an Attributes message either.
            assert_eq!(codes[1], (1, code::INVALID_ARGUMENT));
            assert_eq!(codes[2], (3, code::OK));
        }
        "truncated-message" => {
            assert_eq!(o.grpc_status, 0, "{kind}: {o:?}");
            assert_eq!(codes, [(1, code::INVALID_ARGUMENT), (2, code::OK)]);
        }
        "oversized" => {
            assert_eq!(o.grpc_status, tonic::Code::OutOfRange as i32, "{o:?}");
            assert!(codes.is_empty());
        }
        "truncated-frame" => {
            assert_eq!(codes, [(1, code::OK)], "{kind}: {o:?}");
            assert_eq!(o.grpc_status, tonic::Code::Internal as i32, "{o:?}");
        }
        "over-limit" => {
            assert_eq!(o.grpc_status, 0, "{kind}: {o:?}");
            assert_eq!(codes, [(5, code::INVALID_ARGUMENT), (6, code::OK)]);
            let m = &o.answers[0].result.as_ref().unwrap().message;
            assert!(m.contains("over the server's limit of 65536 bytes"), "{m}");
        }
        "bad-compression" | "noise" => {
            assert_ne!(o.grpc_status, 0, "{kind}: {o:?}");
            assert!(codes.is_empty());
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_oversized_and_truncated_streams_do_not_hurt_healthy_ones() {
    let options = Options {
        max_message_bytes: 64 * 1024,
        ..Options::default()
    };
    let mut server = TestServer::start(&standard_config("0s"), options).await;

    // Healthy streams: each sends 40 checks as deltas and must get 40 OKs.
    let mut healthy = Vec::new();
    for h in 0..8 {
        let mut client = server.client().await;
        healthy.push(tokio::spawn(async move {
            let mut s = CheckStream::open(&mut client).await;
            for i in 0..40 {
                let path = if i % 10 == 0 {
                    "sleep:20".to_string()
                } else {
                    format!("/h{h}/{i}")
                };
                s.send(0, &bag(&path, &[("k", &i.to_string())])).await;
            }
            let mut ok = 0;
            for _ in 0..40 {
                if code(&s.answer().await) == code::OK {
                    ok += 1;
                }
            }
            ok
        }));
    }

    // Abusive streams, on a few connections of their own.
    let mut abusers = Vec::new();
    for c in 0..4 {
        let channel = Channel::from_shared(server.url())
            .unwrap()
            .connect()
            .await
            .unwrap();
        for i in 0..12 {
            let mut channel = channel.clone();
            abusers.push(tokio::spawn(async move {
                let (body, kind) = abuse(c * 12 + i);
                let outcome = raw_call(&mut channel, body).await;
                check_outcome(kind, &outcome);
                kind
            }));
        }
    }
    let mut kinds = Vec::new();
    for a in abusers {
        kinds.push(a.await.expect("abusive call behaved as expected"));
    }
    let count = |kind: &str| kinds.iter().filter(|k| **k == kind).count() as u64;
    assert_eq!(count("oversized"), 7);
    for h in healthy {
        assert_eq!(h.await.unwrap(), 40, "every healthy check answered OK");
    }

    // Still up: health, and a new stream is served.
    assert_eq!(server.http_get("/health").await.0, 200);
    let mut client = server.client().await;
    let mut s = CheckStream::open(&mut client).await;
    s.send(0, &bag("/after", &[])).await;
    assert_eq!(code(&s.answer().await), code::OK);

    let stats = server.service.stats();
    let check = stats.method(Method::Check);
    assert_eq!(
        check.invalid,
        count("garbage") * 2 + count("truncated-message") + count("over-limit"),
        "garbage (2 each), truncated and over-limit messages"
    );
    assert!(
        check.stream_errors
            >= count("oversized") + count("truncated-frame") + count("bad-compression"),
        "{check:?}"
    );
    drop(s);
    let done = server.shutdown().await;
    assert!(done.drained && done.flushed);
    assert_eq!(server.service.stats().in_flight, 0);
}

#[test]
fn frames_are_built_as_the_wire_says() {
    let mut b = BytesMut::new();
    b.put_u8(0);
    b.put_u32(3);
    b.put_slice(b"abc");
    assert_eq!(message_frame(b"abc"), b.to_vec());
}
