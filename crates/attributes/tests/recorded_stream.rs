//! The recorded Check stream shipped as `examples/data/check_stream.bin`
//! (length-delimited `CheckRequest`s, as a proxy sends them; the
//! `decode_stream` example prints it): it must decode to the traffic it was
//! recorded from.
//!
//! Regenerate it with
//! `MIXER_RECORD_STREAM=1 cargo test -p mixer-attributes --test recorded_stream`.

#[path = "support/traffic.rs"]
mod traffic;

use mixer_attributes::{Encoder, OwnedBag, StreamState};
use mixer_proto::istio::mixer::v1::CheckRequest;
use prost::Message;

const REQUESTS: usize = 12;
/// After this many requests the proxy resets its context (as after a
/// refused request), so the recording shows a reset too.
const RESET_AT: usize = 8;

fn path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/check_stream.bin")
}

fn record() -> Vec<u8> {
    let mut client = Encoder::new();
    let mut out = Vec::new();
    for (i, bag) in traffic::requests(REQUESTS).iter().enumerate() {
        if i == RESET_AT {
            client.reset(0);
        }
        let req = CheckRequest {
            request_index: i as i64 + 1,
            attribute_update: Some(client.encode(0, bag).unwrap()),
        };
        req.encode_length_delimited(&mut out).unwrap();
    }
    out
}

#[test]
fn shipped_recording_decodes_to_its_traffic() {
    if std::env::var_os("MIXER_RECORD_STREAM").is_some() {
        let p = path();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, record()).unwrap();
    }
    let bytes = std::fs::read(path()).expect("examples/data/check_stream.bin is shipped");
    let want = traffic::requests(REQUESTS);
    let mut server = StreamState::new();
    let mut buf = bytes.as_slice();
    let mut n = 0;
    while !buf.is_empty() {
        let req = CheckRequest::decode_length_delimited(&mut buf).unwrap();
        assert_eq!(req.request_index, n as i64 + 1);
        let update = req.attribute_update.unwrap_or_default();
        assert_eq!(update.reset_context, n == RESET_AT);
        let bag = server.apply(&update).unwrap();
        assert_eq!(OwnedBag::copy_of(bag), want[n], "request {}", n + 1);
        n += 1;
    }
    assert_eq!(n, REQUESTS);
}
