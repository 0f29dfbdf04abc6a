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
//!   absent, for caching.
//!
//! ```
//! use mixer_attributes::{AttrId, Bag, OwnedBag, Value, ValueRef};
//!
//! let bag = OwnedBag::new()
//!     .with("request.path", Value::String("/reviews".into()))
//!     .with("response.code", Value::Int64(200));
//! assert_eq!(bag.get(AttrId::of("response.code")), Some(ValueRef::Int64(200)));
//! assert_eq!(bag.get_by_name("request.path").unwrap().to_string(), "/reviews");
//! ```

mod bag;
mod intern;
mod referenced;
mod time;
mod value;

pub use bag::{Bag, OwnedBag};
pub use intern::{AttrId, DEFAULT_MAX_NAMES, Interner, InternerFull};
pub use referenced::{Condition, KeyLookup, ReferencedAttributes, Tracking};
pub use time::{Timestamp, format_duration, parse_duration};
pub use value::{StringMap, Value, ValueRef, ValueType, ip_from_bytes};
