//! Attributes: the typed values that describe one request, as a Mixer sees
//! them.
//!
//! This crate holds the vocabulary every other crate speaks:
//!
//! - [`ValueType`], [`Value`] and the borrowed [`ValueRef`]: the eight wire
//!   types plus the four semantic ones of manifests and expressions;
//!   [`Timestamp`], [`StringMap`], and the one text rendering of values;
//! - [`AttrId`]: attribute names interned once to small ids, so that bags are
//!   read by id without hashing strings;
//! - [`Bag`]: what the expression evaluator and adapters read, with
//!   [`OwnedBag`] for hosts that build attributes themselves;
//! - [`ReferencedAttributes`] and the recording view [`Tracking`]: which
//!   attributes (and which string-map keys) a decision read, present or
//!   absent, for caching;
//! - the server side of a Generation-1 stream, [`StreamState`]: the
//!   stream's dictionary and attribute contexts, each update applied
//!   atomically in the wire spec's five-step order (straight from the wire
//!   bytes with [`StreamState::apply_bytes`]), within configurable
//!   [`Limits`]; each context is a [`Context`], a [`Bag`];
//! - the client side, [`Encoder`]: turns successive bags into those delta
//!   updates (dictionary indices, omitted unchanged values, deletions,
//!   string maps key by key);
//! - [`Error`]: every way an update can fail, naming the field and index.
//!
//! ```
//! use mixer_attributes::{AttrId, Bag, OwnedBag, Value, ValueRef};
//!
//! let bag = OwnedBag::new()
//!     .with("request.path", Value::String("/reviews".into()))
//!     .with("response.code", Value::Int64(200));
//! assert_eq!(bag.get(AttrId::of("response.code")), Some(ValueRef::Int64(200)));
//! assert_eq!(bag.get_by_name("request.path").unwrap().to_string(), "/reviews");
//!
//! // The same bag sent over a stream as a delta update, and decoded.
//! use mixer_attributes::{Encoder, StreamState};
//! use prost::Message;
//!
//! let mut client = Encoder::new();
//! let mut server = StreamState::new();
//! let update = client.encode(0, &bag).unwrap().encode_to_vec();
//! let decoded = server.apply_bytes(&update).unwrap();
//! assert_eq!(OwnedBag::copy_of(decoded), bag);
//! ```

mod bag;
mod context;
mod dictionary;
mod encoder;
mod error;
mod intern;
mod referenced;
mod slots;
mod stream;
mod time;
mod update;
mod value;
mod wire;

pub use bag::{Bag, OwnedBag};
pub use context::Context;
pub use encoder::Encoder;
pub use error::{Error, Field, Location};
pub use intern::{AttrId, DEFAULT_MAX_NAMES, Interner, InternerFull};
pub use referenced::{Condition, KeyLookup, ReferencedAttributes, Tracking};
pub use slots::DENSE_IDS;
pub use stream::{DEFAULT_MAX_MESSAGE_BYTES, Limits, StreamState};
pub use time::{Timestamp, format_duration, parse_duration};
pub use value::{StringMap, Value, ValueRef, ValueType, ip_from_bytes};
