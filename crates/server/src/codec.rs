//! The gRPC codec of the three streams.
//!
//! Requests are not decoded into prost structs: only the envelope
//! (`request_index`, the quota fields) is read, and the `attribute_update`
//! stays as the bytes the client sent, for
//! [`StreamState::apply_bytes`](mixer_attributes::StreamState::apply_bytes)
//! to read in place. That skips the eleven `HashMap`s prost would build per
//! request. The bytes are a zero-copy slice of tonic's receive buffer.
//!
//! Decoding never fails: a request whose envelope is not valid protobuf is
//! still handed on, marked malformed, so that it is answered with
//! `INVALID_ARGUMENT` and the stream goes on (gRPC framing is independent
//! of the message, so one bad message does not desynchronise the stream).

use std::marker::PhantomData;

use bytes::{Buf, Bytes, BytesMut};
use prost::Message;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

/// One request of any of the three streams, envelope decoded.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct RawRequest {
    /// Field 1.
    pub(crate) request_index: i64,
    /// Field 2, the encoded `Attributes` (empty when absent). Several
    /// occurrences are concatenated, which protobuf defines as merging them.
    pub(crate) attributes: Bytes,
    /// `QuotaRequest` field 3.
    pub(crate) deduplication_id: String,
    /// `QuotaRequest` field 4.
    pub(crate) quota: String,
    /// `QuotaRequest` field 5.
    pub(crate) amount: i64,
    /// `QuotaRequest` field 6.
    pub(crate) best_effort: bool,
    /// Why the envelope could not be read, if it could not.
    pub(crate) malformed: Option<String>,
    /// The message's size when it is over the server's message limit (its
    /// update is then not kept; only `request_index` is read).
    pub(crate) oversized: Option<usize>,
}

/// Which fields beyond 1 and 2 a request type has.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `CheckRequest`, `ReportRequest`.
    Plain,
    /// `QuotaRequest`.
    Quota,
}

/// Reads a request envelope. Unknown fields are skipped, as protobuf asks.
pub(crate) fn decode_request(mut bytes: Bytes, shape: Shape) -> RawRequest {
    let mut req = RawRequest::default();
    let mut extra: Option<BytesMut> = None;
    let total = bytes.len();
    while bytes.has_remaining() {
        let at = total - bytes.len();
        if let Err(reason) = read_field(&mut bytes, shape, &mut req, &mut extra) {
            req.malformed = Some(format!("malformed request: {reason} (at byte {at})"));
            break;
        }
    }
    if let Some(all) = extra {
        req.attributes = all.freeze();
    }
    req
}

fn read_field(
    buf: &mut Bytes,
    shape: Shape,
    req: &mut RawRequest,
    extra: &mut Option<BytesMut>,
) -> Result<(), String> {
    let key = varint(buf)?;
    let (field, wire) = (key >> 3, (key & 7) as u8);
    if field == 0 || field > u64::from(u32::MAX >> 3) {
        return Err(format!("invalid field number {field}"));
    }
    let quota = shape == Shape::Quota;
    match (field, wire) {
        (1, 0) => req.request_index = varint(buf)? as i64,
        (2, 2) => {
            let b = length_delimited(buf, "attribute_update")?;
            if let Some(all) = extra {
                all.extend_from_slice(&b);
            } else if req.attributes.is_empty() {
                req.attributes = b;
            } else {
                let mut all = BytesMut::from(&req.attributes[..]);
                all.extend_from_slice(&b);
                *extra = Some(all);
            }
        }
        (3, 2) if quota => req.deduplication_id = string(buf, "deduplication_id")?,
        (4, 2) if quota => req.quota = string(buf, "quota")?,
        (5, 0) if quota => req.amount = varint(buf)? as i64,
        (6, 0) if quota => req.best_effort = varint(buf)? != 0,
        (1..=6, _) if field <= 2 || quota => {
            return Err(format!("field {field} has wire type {wire}"));
        }
        (_, 0) => {
            varint(buf)?;
        }
        (_, 1) => skip(buf, 8)?,
        (_, 2) => {
            length_delimited(buf, "unknown field")?;
        }
        (_, 5) => skip(buf, 4)?,
        _ => return Err(format!("field {field} has unsupported wire type {wire}")),
    }
    Ok(())
}

fn varint(buf: &mut Bytes) -> Result<u64, String> {
    let mut value = 0u64;
    for i in 0..10 {
        if !buf.has_remaining() {
            return Err("truncated varint".into());
        }
        let b = buf.get_u8();
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok(value);
        }
    }
    Err("varint longer than 10 bytes".into())
}

fn length_delimited(buf: &mut Bytes, what: &str) -> Result<Bytes, String> {
    let len = varint(buf)?;
    if len > buf.remaining() as u64 {
        return Err(format!(
            "{what} declares {len} bytes but only {} remain",
            buf.remaining()
        ));
    }
    Ok(buf.split_to(len as usize))
}

fn string(buf: &mut Bytes, what: &str) -> Result<String, String> {
    let b = length_delimited(buf, what)?;
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not valid UTF-8"))
}

fn skip(buf: &mut Bytes, n: usize) -> Result<(), String> {
    if buf.remaining() < n {
        return Err("truncated fixed-width field".into());
    }
    buf.advance(n);
    Ok(())
}

/// The codec of one method: responses encoded by prost, requests read by
/// [`decode_request`].
pub(crate) struct MixerCodec<Resp> {
    shape: Shape,
    limit: usize,
    _resp: PhantomData<fn(Resp)>,
}

impl<Resp> MixerCodec<Resp> {
    /// A codec answering messages over `limit` bytes as oversized.
    pub(crate) fn new(shape: Shape, limit: usize) -> MixerCodec<Resp> {
        MixerCodec {
            shape,
            limit,
            _resp: PhantomData,
        }
    }
}

impl<Resp: Message + Send + 'static> Codec for MixerCodec<Resp> {
    type Encode = Resp;
    type Decode = RawRequest;
    type Encoder = ResponseEncoder<Resp>;
    type Decoder = RequestDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ResponseEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        RequestDecoder {
            shape: self.shape,
            limit: self.limit,
        }
    }
}

/// Encodes responses with prost.
pub(crate) struct ResponseEncoder<Resp>(PhantomData<fn(Resp)>);

impl<Resp: Message> Encoder for ResponseEncoder<Resp> {
    type Item = Resp;
    type Error = Status;

    fn encode(&mut self, item: Resp, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding a response: {e}")))
    }
}

/// Reads request envelopes.
pub(crate) struct RequestDecoder {
    shape: Shape,
    limit: usize,
}

impl Decoder for RequestDecoder {
    type Item = RawRequest;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<RawRequest>, Status> {
        let bytes = src.copy_to_bytes(src.remaining());
        Ok(Some(decode_limited(bytes, self.shape, self.limit)))
    }
}

/// [`decode_request`], but a message over `limit` bytes keeps only its
/// `request_index` (skipping the other fields costs nothing per byte) and
/// is marked oversized, so that it is answered on its own while the
/// stream goes on.
pub(crate) fn decode_limited(bytes: Bytes, shape: Shape, limit: usize) -> RawRequest {
    let size = bytes.len();
    let mut req = decode_request(bytes, shape);
    if size > limit {
        req = RawRequest {
            request_index: req.request_index,
            oversized: Some(size),
            ..RawRequest::default()
        };
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;
    use mixer_proto::istio::mixer::v1::{Attributes, CheckRequest, QuotaRequest};

    fn attrs() -> Attributes {
        let mut a = Attributes::default();
        a.dictionary.insert(0, "request.path".into());
        a.string_attributes.insert(0, "/x".into());
        a
    }

    #[test]
    fn reads_what_prost_writes() {
        let req = QuotaRequest {
            request_index: -3,
            attribute_update: Some(attrs()),
            deduplication_id: "d-1".into(),
            quota: "requestcount".into(),
            amount: 7,
            best_effort: true,
        };
        let raw = decode_request(req.encode_to_vec().into(), Shape::Quota);
        assert_eq!(raw.malformed, None);
        assert_eq!(raw.request_index, -3);
        assert_eq!(Attributes::decode(raw.attributes.clone()).unwrap(), attrs());
        assert_eq!(
            (
                &*raw.deduplication_id,
                &*raw.quota,
                raw.amount,
                raw.best_effort
            ),
            ("d-1", "requestcount", 7, true)
        );
    }

    #[test]
    fn repeated_update_merges_and_unknown_fields_are_skipped() {
        let mut bytes = CheckRequest {
            request_index: 9,
            attribute_update: Some(attrs()),
        }
        .encode_to_vec();
        let mut second = Attributes::default();
        second.int64_attributes.insert(0, 5);
        let again = CheckRequest {
            request_index: 0,
            attribute_update: Some(second),
        }
        .encode_to_vec();
        bytes.extend_from_slice(&again);
        // Unknown field 15, fixed32 and varint.
        bytes.extend_from_slice(&[(15 << 3) | 5, 1, 2, 3, 4, (16 << 3) as u8, 1, 0x7f]);
        let raw = decode_request(bytes.clone().into(), Shape::Plain);
        assert_eq!(raw.malformed, None);
        assert_eq!(raw.request_index, 9);
        let merged = Attributes::decode(raw.attributes).unwrap();
        let prost_view = CheckRequest::decode(bytes.as_slice()).unwrap();
        assert_eq!(Some(merged), prost_view.attribute_update);
    }

    #[test]
    fn over_the_limit_only_the_index_is_kept() {
        let bytes: Bytes = CheckRequest {
            request_index: 77,
            attribute_update: Some(attrs()),
        }
        .encode_to_vec()
        .into();
        let n = bytes.len();
        let at_limit = decode_limited(bytes.clone(), Shape::Plain, n);
        assert_eq!((at_limit.oversized, at_limit.request_index), (None, 77));
        assert!(!at_limit.attributes.is_empty());
        let over = decode_limited(bytes, Shape::Plain, n - 1);
        assert_eq!(
            over,
            RawRequest {
                request_index: 77,
                oversized: Some(n),
                ..RawRequest::default()
            }
        );
        // Garbage over the limit is oversized, not malformed.
        let junk = decode_limited(Bytes::from_static(&[0xff; 32]), Shape::Plain, 8);
        assert_eq!((junk.oversized, junk.malformed), (Some(32), None));
    }

    #[test]
    fn garbage_and_truncation_are_reported_not_panicked() {
        let full = CheckRequest {
            request_index: 4,
            attribute_update: Some(attrs()),
        }
        .encode_to_vec();
        for cut in 1..full.len() {
            let raw = decode_request(Bytes::copy_from_slice(&full[..cut]), Shape::Plain);
            if cut > 2 {
                let m = raw.malformed.expect("truncated");
                assert!(m.contains("remain") || m.contains("truncated"), "{m}");
            }
        }
        let raw = decode_request(Bytes::from_static(&[0xff; 16]), Shape::Plain);
        assert!(raw.malformed.unwrap().contains("varint"));
        let raw = decode_request(Bytes::from_static(&[(1 << 3) | 2, 0]), Shape::Plain);
        assert_eq!(
            raw.malformed.as_deref(),
            Some("malformed request: field 1 has wire type 2 (at byte 0)")
        );
        // Quota fields on a check stream are unknown fields, skipped.
        let raw = decode_request(Bytes::from_static(&[(4 << 3) | 2, 1, b'q']), Shape::Plain);
        assert_eq!(raw.malformed, None);
    }
}
