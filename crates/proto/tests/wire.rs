//! Byte-level compatibility: every message is assembled by hand from the
//! field numbers and types of the wire spec, then decoded and compared with
//! the expected struct; and the struct encodes to exactly those bytes.

use mixer_proto::google::rpc::Status;
use mixer_proto::istio::mixer::v1::{
    Attributes, CheckRequest, CheckResponse, QuotaRequest, QuotaResponse, ReportRequest,
    ReportResponse, StringMap,
};
use prost::Message;

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;

/// A message body under construction, written field by field.
#[derive(Default, Clone)]
struct Buf(Vec<u8>);

impl Buf {
    fn varint(mut self, field: u32, v: u64) -> Buf {
        key(&mut self.0, field, VARINT);
        varint(&mut self.0, v);
        self
    }
    fn fixed64(mut self, field: u32, v: u64) -> Buf {
        key(&mut self.0, field, FIXED64);
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn bytes(mut self, field: u32, b: &[u8]) -> Buf {
        key(&mut self.0, field, LEN);
        varint(&mut self.0, b.len() as u64);
        self.0.extend_from_slice(b);
        self
    }
    fn msg(self, field: u32, m: Buf) -> Buf {
        self.bytes(field, &m.0)
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn key(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// A map entry `{1: key (int32 varint), 2: value}`.
fn entry(k: i32, value: impl FnOnce(Buf) -> Buf) -> Buf {
    value(Buf::default().varint(1, k as i64 as u64))
}

/// A `Timestamp` or `Duration` body; proto3 writes no field holding zero.
fn seconds_nanos(s: i64, n: i32) -> Buf {
    let mut b = Buf::default();
    if s != 0 {
        b = b.varint(1, s as u64);
    }
    if n != 0 {
        b = b.varint(2, n as i64 as u64);
    }
    b
}

/// Decodes `bytes` as `M`, compares with `want`, and checks the reverse.
fn check<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &Buf, want: &M) {
    let got = M::decode(bytes.0.as_slice()).expect("hand-assembled bytes decode");
    assert_eq!(&got, want);
    assert_eq!(
        want.encode_to_vec(),
        bytes.0,
        "encoding differs from the spec's bytes"
    );
}

fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos }
}

fn dur(seconds: i64, nanos: i32) -> prost_types::Duration {
    prost_types::Duration { seconds, nanos }
}

/// Every field of `Attributes`, one entry per map (maps of several entries
/// have no defined order on the wire).
fn attributes() -> (Buf, Attributes) {
    let bytes = Buf::default()
        .msg(1, entry(1, |b| b.bytes(2, b"request.path")))
        .varint(2, 3)
        .varint(3, 1)
        .msg(4, entry(1, |b| b.bytes(2, b"/reviews")))
        .msg(5, entry(2, |b| b.varint(2, (-5i64) as u64)))
        .msg(6, entry(3, |b| b.fixed64(2, 0.5f64.to_bits())))
        .msg(7, entry(4, |b| b.varint(2, 1)))
        .msg(8, entry(5, |b| b.msg(2, seconds_nanos(1_500_000_000, 7))))
        .msg(9, entry(6, |b| b.msg(2, seconds_nanos(2, 500))))
        .msg(10, entry(7, |b| b.bytes(2, &[10, 0, 0, 1])))
        .msg(
            11,
            entry(8, |b| {
                b.msg(2, Buf::default().msg(1, entry(9, |e| e.bytes(2, b"v"))))
            }),
        )
        .bytes(12, &[1, 2]) // packed
        .msg(13, entry(10, |b| b.msg(2, seconds_nanos(3, 0))))
        .msg(14, entry(11, |b| b.msg(2, seconds_nanos(4, 0))));
    let want = Attributes {
        dictionary: [(1, "request.path".to_string())].into_iter().collect(),
        attribute_context: 3,
        reset_context: true,
        string_attributes: [(1, "/reviews".to_string())].into_iter().collect(),
        int64_attributes: [(2, -5)].into_iter().collect(),
        double_attributes: [(3, 0.5)].into_iter().collect(),
        bool_attributes: [(4, true)].into_iter().collect(),
        timestamp_attributes: [(5, ts(1_500_000_000, 7))].into_iter().collect(),
        duration_attributes: [(6, dur(2, 500))].into_iter().collect(),
        bytes_attributes: [(7, vec![10, 0, 0, 1])].into_iter().collect(),
        string_map_attributes: [(
            8,
            StringMap {
                map: [(9, "v".to_string())].into_iter().collect(),
            },
        )]
        .into_iter()
        .collect(),
        deleted_attributes: vec![1, 2],
        timestamp_attributes_hack: [(10, ts(3, 0))].into_iter().collect(),
        duration_attributes_hack: [(11, dur(4, 0))].into_iter().collect(),
    };
    (bytes, want)
}

fn status() -> (Buf, Status) {
    let any = Buf::default()
        .bytes(1, b"type.googleapis.com/x.Y")
        .bytes(2, &[1, 2]);
    let bytes = Buf::default().varint(1, 7).bytes(2, b"denied").msg(3, any);
    let want = Status {
        code: 7,
        message: "denied".into(),
        details: vec![prost_types::Any {
            type_url: "type.googleapis.com/x.Y".into(),
            value: vec![1, 2],
        }],
    };
    (bytes, want)
}

#[test]
fn attributes_every_field() {
    let (bytes, want) = attributes();
    check(&bytes, &want);
}

#[test]
fn string_map_message() {
    let bytes = Buf::default().msg(1, entry(3, |b| b.bytes(2, b"x")));
    check(
        &bytes,
        &StringMap {
            map: [(3, "x".to_string())].into_iter().collect(),
        },
    );
}

#[test]
fn deleted_attributes_unpacked_also_decode() {
    let bytes = Buf::default().varint(12, 4).varint(12, 5);
    let got = Attributes::decode(bytes.0.as_slice()).unwrap();
    assert_eq!(got.deleted_attributes, vec![4, 5]);
}

#[test]
fn google_rpc_status() {
    let (bytes, want) = status();
    check(&bytes, &want);
}

#[test]
fn requests_and_responses() {
    let (attrs, a) = attributes();
    let (st, s) = status();

    check(
        &Buf::default().varint(1, 9).msg(2, attrs.clone()),
        &CheckRequest {
            request_index: 9,
            attribute_update: Some(a.clone()),
        },
    );
    check(
        &Buf::default()
            .varint(1, 9)
            .msg(2, attrs.clone())
            .msg(3, st.clone())
            .msg(4, seconds_nanos(5, 0)),
        &CheckResponse {
            request_index: 9,
            attribute_update: Some(a.clone()),
            result: Some(s.clone()),
            expiration: Some(dur(5, 0)),
        },
    );
    check(
        &Buf::default().varint(1, 10).msg(2, attrs.clone()),
        &ReportRequest {
            request_index: 10,
            attribute_update: Some(a.clone()),
        },
    );
    check(
        &Buf::default()
            .varint(1, 10)
            .msg(2, attrs.clone())
            .msg(3, st.clone()),
        &ReportResponse {
            request_index: 10,
            attribute_update: Some(a.clone()),
            result: Some(s.clone()),
        },
    );
    check(
        &Buf::default()
            .varint(1, 11)
            .msg(2, attrs.clone())
            .bytes(3, b"dedup-1")
            .bytes(4, b"requestcount")
            .varint(5, 3)
            .varint(6, 1),
        &QuotaRequest {
            request_index: 11,
            attribute_update: Some(a.clone()),
            deduplication_id: "dedup-1".into(),
            quota: "requestcount".into(),
            amount: 3,
            best_effort: true,
        },
    );
    check(
        &Buf::default()
            .varint(1, 11)
            .msg(2, attrs)
            .msg(3, st)
            .msg(4, seconds_nanos(1, 0))
            .varint(5, 2),
        &QuotaResponse {
            request_index: 11,
            attribute_update: Some(a),
            result: Some(s),
            expiration: Some(dur(1, 0)),
            amount: 2,
        },
    );
}

#[test]
fn proto_source_spells_every_field_as_the_spec() {
    let src = include_str!("../proto/istio/mixer/v1/attributes.proto");
    let squashed: String = src.split_whitespace().collect::<Vec<_>>().join(" ");
    for line in [
        "map<int32, string> dictionary = 1;",
        "int32 attribute_context = 2;",
        "bool reset_context = 3;",
        "map<int32, string> string_attributes = 4;",
        "map<int32, int64> int64_attributes = 5;",
        "map<int32, double> double_attributes = 6;",
        "map<int32, bool> bool_attributes = 7;",
        "map<int32, google.protobuf.Timestamp> timestamp_attributes = 8;",
        "map<int32, google.protobuf.Duration> duration_attributes = 9;",
        "map<int32, bytes> bytes_attributes = 10;",
        "map<int32, StringMap> stringMap_attributes = 11;",
        "repeated int32 deleted_attributes = 12;",
        "map<int32, google.protobuf.Timestamp> timestamp_attributes_HACK = 13;",
        "map<int32, google.protobuf.Duration> duration_attributes_HACK = 14;",
        "map<int32, string> map = 1;",
    ] {
        assert!(squashed.contains(line), "attributes.proto lacks `{line}`");
    }
}
