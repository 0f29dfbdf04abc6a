//! Arbitrary request bodies on the three streams, through the public
//! service (`MixerService` as a tower service: tonic's framing, the
//! server's codec, the per-stream attribute state, the dispatcher), with
//! the body cut into chunks at arbitrary points.
//!
//! Input: byte 0 picks the method and the mode. In framed mode the rest is
//! a sequence of `[len_hi, len_lo, chunk_cut, bytes...]` records, each sent
//! as one well-framed gRPC message, so that most inputs reach the codec;
//! in raw mode the rest is the body as it is (the framing itself fuzzed).
//!
//! Never a panic; in framed mode with every message under the ceiling, the
//! stream ends OK with exactly one answer per message, each with a status
//! the server documents for that situation.
#![no_main]

use std::convert::Infallible;
use std::sync::OnceLock;

use bytes::{Buf, Bytes};
use http_body_util::{BodyExt, StreamBody};
use libfuzzer_sys::fuzz_target;
use mixer_adapters::Registry;
use mixer_dispatch::{Dispatcher, Options as DispatchOptions};
use mixer_proto::code;
use mixer_proto::istio::mixer::v1::{CheckResponse, QuotaResponse};
use mixer_server::{MixerService, Options};
use prost::Message;
use tower_service::Service;

const LIMIT: usize = 512;
const CEILING: usize = 2048;

struct Harness {
    runtime: tokio::runtime::Runtime,
    service: MixerService,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let dispatcher = Dispatcher::new(
            Registry::builtin(),
            runtime.handle().clone(),
            DispatchOptions::default(),
        );
        let mut options = Options {
            max_message_bytes: LIMIT,
            message_ceiling_bytes: CEILING,
            ..Options::default()
        };
        options.limits.max_contexts = 4;
        options.limits.max_dictionary_entries = 64;
        options.limits.max_attributes_per_context = 32;
        options.limits.max_value_bytes = 128;
        Harness {
            runtime,
            service: MixerService::new(dispatcher, options),
        }
    })
}

/// The body as (chunks, framed messages whose sizes all stay under the
/// ceiling: then known).
fn body(mode_raw: bool, data: &[u8]) -> (Vec<Bytes>, Option<usize>) {
    if mode_raw {
        let cut = data.first().map_or(0, |c| *c as usize).min(data.len());
        let chunks = vec![
            Bytes::copy_from_slice(&data[..cut]),
            Bytes::copy_from_slice(&data[cut..]),
        ];
        return (chunks, None);
    }
    let mut rest = data;
    let mut chunks = Vec::new();
    let mut messages = 0;
    let mut under_ceiling = true;
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let cut = rest[2] as usize;
        rest = &rest[3..];
        let len = len.min(rest.len());
        let (msg, tail) = rest.split_at(len);
        rest = tail;
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        framed.extend_from_slice(msg);
        under_ceiling &= msg.len() <= CEILING;
        let cut = cut.min(framed.len());
        chunks.push(Bytes::copy_from_slice(&framed[..cut]));
        chunks.push(Bytes::copy_from_slice(&framed[cut..]));
        messages += 1;
    }
    (chunks, under_ceiling.then_some(messages))
}

fn grpc_status(headers: Option<&http::HeaderMap>) -> Option<i32> {
    headers?
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let path = match selector % 3 {
        0 => "/istio.mixer.v1.Mixer/Check",
        1 => "/istio.mixer.v1.Mixer/Quota",
        _ => "/istio.mixer.v1.Mixer/Report",
    };
    let (chunks, expected) = body(selector & 0x80 != 0, data);
    let h = harness();
    let mut service = h.service.clone();
    h.runtime.block_on(async move {
        let frames = futures_util::stream::iter(
            chunks
                .into_iter()
                .map(|c| Ok::<_, Infallible>(http_body::Frame::data(c))),
        );
        let request = http::Request::builder()
            .method("POST")
            .uri(path)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(StreamBody::new(frames))
            .expect("a request");
        let response = service.call(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        assert_eq!(parts.status, http::StatusCode::OK);
        let collected = body.collect().await.expect("the body completes");
        let status = grpc_status(collected.trailers()).or(grpc_status(Some(&parts.headers)));
        let mut out = collected.to_bytes();
        let mut codes = Vec::new();
        while out.has_remaining() {
            assert!(out.remaining() >= 5, "a whole gRPC frame header");
            assert_eq!(out.get_u8(), 0, "answers are not compressed");
            let len = out.get_u32() as usize;
            let msg = out.split_to(len);
            // Check, Report and Quota answers share fields 1 and 3.
            let code = if selector % 3 == 1 {
                QuotaResponse::decode(msg).expect("an answer").result
            } else {
                CheckResponse::decode(msg).expect("an answer").result
            };
            codes.push(code.expect("every answer has a result").code);
        }
        if let Some(n) = expected {
            assert_eq!(
                status,
                Some(0),
                "framed messages under the ceiling: the stream ends OK"
            );
            assert_eq!(codes.len(), n, "one answer per message");
            for c in codes {
                assert!(
                    matches!(
                        c,
                        code::OK | code::INVALID_ARGUMENT | code::RESOURCE_EXHAUSTED
                    ),
                    "status {c}"
                );
            }
        } else {
            assert!(status.is_some(), "the stream ends with a status");
        }
    });
});
