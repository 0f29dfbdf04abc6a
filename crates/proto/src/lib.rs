//! Protobuf messages of the Istio Mixer API, Generation 1 (`istio.mixer.v1`),
//! and `google.rpc.Status`, compiled from the `.proto` files in this crate
//! without a system `protoc`.
//!
//! Every field name, type and number is the original's, so bytes from an
//! unmodified Istio proxy decode here unchanged. The tonic service (server and
//! client of the three bidirectional streams `Check`, `Report` and `Quota`) is
//! behind the `grpc` feature (on by default); an embedder that only needs the
//! messages turns default features off and pays for no gRPC stack.
//!
//! ```
//! use mixer_proto::istio::mixer::v1::{Attributes, CheckRequest};
//! use prost::Message;
//!
//! let mut update = Attributes::default();
//! update.dictionary.insert(0, "request.path".to_string());
//! update.string_attributes.insert(0, "/health".to_string());
//! let req = CheckRequest { request_index: 1, attribute_update: Some(update) };
//!
//! let bytes = req.encode_to_vec();
//! let back = CheckRequest::decode(bytes.as_slice()).unwrap();
//! assert_eq!(back, req);
//! ```

/// `google.rpc`: the canonical error model.
pub mod google {
    /// `google.rpc`.
    pub mod rpc {
        #![allow(missing_docs, unreachable_pub)]
        include!(concat!(env!("OUT_DIR"), "/google.rpc.rs"));
    }
}

/// `istio.*`: the Mixer API.
pub mod istio {
    /// `istio.mixer`.
    pub mod mixer {
        /// `istio.mixer.v1`: Generation 1, stateful bidirectional streams.
        pub mod v1 {
            #![allow(missing_docs, unreachable_pub, clippy::all)]
            include!(concat!(env!("OUT_DIR"), "/istio.mixer.v1.rs"));
        }
    }
}

pub use prost_types::{Duration, Timestamp};

/// Canonical gRPC status codes as carried in `google.rpc.Status.code`.
///
/// Kept here rather than taken from tonic so that crates that only need the
/// messages do not depend on a gRPC stack.
pub mod code {
    #![allow(missing_docs)]
    pub const OK: i32 = 0;
    pub const CANCELLED: i32 = 1;
    pub const UNKNOWN: i32 = 2;
    pub const INVALID_ARGUMENT: i32 = 3;
    pub const DEADLINE_EXCEEDED: i32 = 4;
    pub const NOT_FOUND: i32 = 5;
    pub const ALREADY_EXISTS: i32 = 6;
    pub const PERMISSION_DENIED: i32 = 7;
    pub const RESOURCE_EXHAUSTED: i32 = 8;
    pub const FAILED_PRECONDITION: i32 = 9;
    pub const ABORTED: i32 = 10;
    pub const OUT_OF_RANGE: i32 = 11;
    pub const UNIMPLEMENTED: i32 = 12;
    pub const INTERNAL: i32 = 13;
    pub const UNAVAILABLE: i32 = 14;
    pub const DATA_LOSS: i32 = 15;
    pub const UNAUTHENTICATED: i32 = 16;

    /// The canonical name of a code (`PERMISSION_DENIED`), or `CODE(<n>)` for
    /// a number outside the canonical set.
    pub fn name(code: i32) -> std::borrow::Cow<'static, str> {
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        match usize::try_from(code).ok().and_then(|c| NAMES.get(c)) {
            Some(n) => (*n).into(),
            None => format!("CODE({code})").into(),
        }
    }

    /// The code for a canonical name, as written in config (`PERMISSION_DENIED`).
    pub fn from_name(name: &str) -> Option<i32> {
        (0..=16).find(|c| name == self::name(*c))
    }
}
