//! The server side of a Generation-1 stream: one dictionary, several
//! attribute contexts, and the five-step order in which an update applies.

use std::time::Duration;

use mixer_proto::istio::mixer::v1 as proto;

use crate::context::{Context, Edit, merge_key};
use crate::dictionary::Dictionary;
use crate::error::{Error, Field, Location};
use crate::time::Timestamp;
use crate::update::{BytesUpdate, ProtoUpdate, Update, WireValue};
use crate::value::Value;

/// The largest gRPC message a server should accept, as the original server
/// did (1 MiB). The stream decoder sees one `Attributes` at a time and does
/// not enforce this: the transport must, before the bytes reach it.
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Bounds on what one stream may make the decoder hold. Exceeding one fails
/// that update with a typed error; the stream and its contexts stay usable.
///
/// Together with the transport's message size bound
/// ([`DEFAULT_MAX_MESSAGE_BYTES`]) these bound a stream's memory: at most
/// `max_contexts * max_attributes_per_context` values of at most
/// `max_value_bytes` each (a string map holds at most one value per
/// dictionary word, each of at most `max_value_bytes`). Values are stored
/// by [`crate::AttrId`]: each context holds one 32-byte slot per low id up
/// to the highest low id it has seen (at most [`crate::DENSE_IDS`], so
/// 32 KiB; with the standard vocabulary, a few KiB), and one entry per
/// attribute present with a higher id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Attribute contexts a stream may create (default 64: a proxy is
    /// expected to reuse a small pool of contexts).
    pub max_contexts: usize,
    /// Distinct indices in one dictionary (default 10,000; the standard
    /// vocabulary is about 60 names and a proxy adds its header keys).
    pub max_dictionary_entries: usize,
    /// Attributes one context may hold after an update (default 1,024).
    pub max_attributes_per_context: usize,
    /// Bytes of one string value, bytes value, string-map value or dictionary
    /// name (default 64 KiB).
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_contexts: 64,
            max_dictionary_entries: 10_000,
            max_attributes_per_context: 1_024,
            max_value_bytes: 64 * 1024,
        }
    }
}

/// Per-update scratch state of one dictionary slot.
#[derive(Copy, Clone, Debug, Default)]
struct Stamp {
    /// The update this stamp belongs to; older stamps are stale.
    generation: u32,
    /// The first typed-map entry that set the attribute in this update.
    set: Option<Location>,
    /// Whether `deleted_attributes` names the attribute.
    deleted: bool,
}

/// The decoder's state for one gRPC stream.
///
/// Feed it each request's `attribute_update` with [`StreamState::apply_bytes`]
/// (the bytes of the `Attributes` message, read in place) or
/// [`StreamState::apply`] (a prost struct); both give the same result. An
/// update applies in the order of the wire spec:
///
/// 1. a non-empty `dictionary` replaces the stream's dictionary;
/// 2. `attribute_context` selects a context, created empty if unknown;
/// 3. `reset_context` empties it;
/// 4. every index in `deleted_attributes` is removed;
/// 5. every typed map adds or overwrites (`timestamp_attributes_HACK` and
///    `duration_attributes_HACK` count as fields 8 and 9); a string map
///    merges key by key into the map already held.
///
/// Everything is checked before anything changes: indices must be in the
/// dictionary, an attribute may not be set by two fields (two types, or a
/// field and its `_HACK` twin), and the
/// [`Limits`] hold. A failed update leaves the dictionary and every context
/// exactly as they were.
///
/// ```
/// use mixer_attributes::{AttrId, Bag, StreamState, ValueRef};
/// use mixer_proto::istio::mixer::v1::Attributes;
///
/// let mut stream = StreamState::new();
/// let mut first = Attributes::default();
/// first.dictionary.insert(0, "request.path".into());
/// first.dictionary.insert(1, "response.code".into());
/// first.string_attributes.insert(0, "/reviews".into());
/// first.int64_attributes.insert(1, 200);
/// stream.apply(&first).unwrap();
///
/// // The next request sends only what changed.
/// let mut next = Attributes::default();
/// next.int64_attributes.insert(1, 404);
/// let bag = stream.apply(&next).unwrap();
/// assert_eq!(bag.get(AttrId::of("request.path")), Some(ValueRef::String("/reviews")));
/// assert_eq!(bag.get(AttrId::of("response.code")), Some(ValueRef::Int64(404)));
///
/// // Index 7 is not in the dictionary: the update fails and changes nothing.
/// let mut bad = Attributes::default();
/// bad.int64_attributes.insert(1, 500);
/// bad.string_attributes.insert(7, "x".into());
/// let err = stream.apply(&bad).unwrap_err();
/// assert_eq!(err.to_string(), "string_attributes[7]: index 7 is not in the dictionary");
/// assert_eq!(stream.context(0).unwrap().get(AttrId::of("response.code")), Some(ValueRef::Int64(404)));
/// ```
#[derive(Debug, Default)]
pub struct StreamState {
    limits: Limits,
    dictionary: Option<Dictionary>,
    contexts: Vec<(i32, Context)>,
    stamps: Vec<Stamp>,
    touched: Vec<u32>,
    generation: u32,
}

impl StreamState {
    /// A new stream with the default [`Limits`].
    pub fn new() -> StreamState {
        StreamState::default()
    }

    /// A new stream with the given limits.
    pub fn with_limits(limits: Limits) -> StreamState {
        StreamState {
            limits,
            ..StreamState::default()
        }
    }

    /// The stream's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Applies an update given as the encoded bytes of an `Attributes`
    /// message, read in place without building the prost struct. Returns the
    /// context the update addressed, as it now stands.
    pub fn apply_bytes(&mut self, attributes: &[u8]) -> Result<&Context, Error> {
        self.apply_update(&BytesUpdate(attributes))
    }

    /// Applies an update already decoded by prost. Same result as
    /// [`StreamState::apply_bytes`] on its encoding.
    pub fn apply(&mut self, update: &proto::Attributes) -> Result<&Context, Error> {
        self.apply_update(&ProtoUpdate(update))
    }

    /// The context with id `context`, if an update created it.
    pub fn context(&self, context: i32) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|(c, _)| *c == context)
            .map(|(_, ctx)| ctx)
    }

    /// Every context, in creation order.
    pub fn contexts(&self) -> impl Iterator<Item = (i32, &Context)> + '_ {
        self.contexts.iter().map(|(c, ctx)| (*c, ctx))
    }

    /// The name under dictionary index `index`.
    pub fn dictionary_word(&self, index: i32) -> Option<&str> {
        self.dictionary.as_ref()?.get(index).map(|e| &*e.name)
    }

    /// The current dictionary as `(index, name)` in index order.
    pub fn dictionary(&self) -> impl Iterator<Item = (i32, &str)> + '_ {
        self.dictionary
            .iter()
            .flat_map(|d| d.entries().iter().map(|e| (e.index, &*e.name)))
    }

    fn apply_update<'a, U: Update<'a>>(&mut self, u: &U) -> Result<&Context, Error> {
        let header = u.header()?;
        let pos = self.contexts.iter().position(|(c, _)| *c == header.context);
        if pos.is_none() && self.contexts.len() >= self.limits.max_contexts {
            return Err(Error::TooManyContexts {
                context: header.context,
                limit: self.limits.max_contexts,
            });
        }
        let staged = if header.has_dictionary {
            Some(u.dictionary(
                self.limits.max_dictionary_entries,
                self.limits.max_value_bytes,
            )?)
        } else {
            None
        };

        let StreamState {
            limits,
            dictionary,
            contexts,
            stamps,
            touched,
            generation,
        } = self;
        let dict = staged.as_ref().or(dictionary.as_ref());

        // Validate: resolve every index, check values, note what is deleted
        // and set, without touching the context.
        *generation = generation.wrapping_add(1);
        if *generation == 0 {
            stamps.iter_mut().for_each(|s| *s = Stamp::default());
            *generation = 1;
        }
        let current = *generation;
        touched.clear();
        if let Some(d) = dict
            && stamps.len() < d.len()
        {
            stamps.resize(d.len(), Stamp::default());
        }
        let resolve = |at: Location, index: i32| -> Result<usize, Error> {
            match dict {
                None => Err(Error::NoDictionary { at, index }),
                Some(d) => d.slot(index).ok_or(Error::UnknownIndex { at, index }),
            }
        };
        if header.has_deleted {
            u.for_each_deleted(|index| {
                let slot = resolve(Location::new(Field::DeletedAttributes, index), index)?;
                stamp(stamps, touched, current, slot).deleted = true;
                Ok(())
            })?;
        }
        u.for_each_value(|field, index, value| {
            let at = Location::new(field, index);
            let slot = resolve(at, index)?;
            check_value(limits, &resolve, at, &value)?;
            let s = stamp(stamps, touched, current, slot);
            // Two fields (two types, or a field and its HACK twin) setting
            // one attribute: refused, since no order between fields is
            // defined. A map entry repeated within one field is protobuf's
            // last-wins.
            if let Some(other) = s.set
                && other.field != field
            {
                return Err(Error::TypeConflict {
                    at,
                    name: dict
                        .map(|d| d.entry(slot).name.to_string())
                        .unwrap_or_default(),
                    other,
                    other_type: other.field.value_type().unwrap_or(crate::ValueType::String),
                });
            }
            if s.set.is_none() {
                s.set = Some(at);
            }
            Ok(())
        })?;

        let ctx = pos.map(|p| &contexts[p].1);
        if let Some(d) = dict {
            let mut count = if header.reset {
                0
            } else {
                ctx.map_or(0, Context::len)
            };
            for &slot in touched.iter() {
                let s = stamps[slot as usize];
                let id = d.entry(slot as usize).id;
                let before = !header.reset && ctx.is_some_and(|c| c.contains(id));
                let after = s.set.is_some() || (before && !s.deleted);
                match (before, after) {
                    (false, true) => count += 1,
                    (true, false) => count -= 1,
                    _ => {}
                }
            }
            if count > limits.max_attributes_per_context {
                return Err(Error::TooManyAttributes {
                    context: header.context,
                    count,
                    limit: limits.max_attributes_per_context,
                });
            }
        }

        // Commit. Nothing below can fail: the same input passed the same
        // parsing and resolution above.
        if let Some(d) = staged {
            *dictionary = Some(d);
        }
        let pos = match pos {
            Some(p) => p,
            None => {
                contexts.push((header.context, Context::default()));
                contexts.len() - 1
            }
        };
        let ctx = &mut contexts[pos].1.edit();
        if header.reset {
            ctx.clear();
        }
        if let Some(d) = dictionary.as_ref() {
            let deleted = if header.has_deleted {
                u.for_each_deleted(|index| {
                    if let Some(e) = d.get(index) {
                        ctx.remove(e.id);
                    }
                    Ok(())
                })
            } else {
                Ok(())
            };
            let stored = u.for_each_value(|_, index, value| {
                if let Some(e) = d.get(index) {
                    store(ctx, d, e.id, value);
                }
                Ok(())
            });
            debug_assert!(deleted.is_ok() && stored.is_ok());
        }
        Ok(&contexts[pos].1)
    }
}

/// The stamp of `slot` for the update `current`, fresh on first touch.
fn stamp<'s>(
    stamps: &'s mut [Stamp],
    touched: &mut Vec<u32>,
    current: u32,
    slot: usize,
) -> &'s mut Stamp {
    let s = &mut stamps[slot];
    if s.generation != current {
        *s = Stamp {
            generation: current,
            ..Stamp::default()
        };
        touched.push(slot as u32);
    }
    s
}

/// Checks one typed-map value against the limits and the wire's rules.
fn check_value(
    limits: &Limits,
    resolve: &impl Fn(Location, i32) -> Result<usize, Error>,
    at: Location,
    value: &WireValue<'_>,
) -> Result<(), Error> {
    let too_large = |at: Location, len: usize| -> Result<(), Error> {
        if len > limits.max_value_bytes {
            Err(Error::ValueTooLarge {
                at,
                len,
                limit: limits.max_value_bytes,
            })
        } else {
            Ok(())
        }
    };
    match *value {
        WireValue::String(s) => too_large(at, s.len()),
        WireValue::Bytes(b) => too_large(at, b.len()),
        WireValue::Timestamp(seconds, nanos) => match Timestamp::new(seconds, nanos) {
            Some(_) => Ok(()),
            None => Err(Error::TimestampOutOfRange { at, seconds, nanos }),
        },
        WireValue::Duration(seconds, nanos) => {
            if seconds < 0 || nanos < 0 {
                Err(Error::NegativeDuration { at, seconds, nanos })
            } else if nanos >= 1_000_000_000 {
                Err(Error::InvalidDurationNanos { at, nanos })
            } else {
                Ok(())
            }
        }
        WireValue::StringMap(entries) => entries.for_each(|key, v| {
            let at = Location::key(at.field, at.index, key);
            resolve(at, key)?;
            too_large(at, v.len())
        }),
        WireValue::Int64(_) | WireValue::Double(_) | WireValue::Bool(_) => Ok(()),
    }
}

/// Stores one checked value.
fn store(ctx: &mut Edit<'_>, d: &Dictionary, id: crate::AttrId, value: WireValue<'_>) {
    match value {
        WireValue::String(s) => ctx.set_str(id, s),
        WireValue::Bytes(b) => ctx.set_bytes(id, b),
        WireValue::Int64(v) => ctx.set(id, Value::Int64(v)),
        WireValue::Double(v) => ctx.set(id, Value::Double(v)),
        WireValue::Bool(v) => ctx.set(id, Value::Bool(v)),
        WireValue::Timestamp(s, n) => {
            ctx.set(
                id,
                Value::Timestamp(Timestamp::new(s, n).unwrap_or_default()),
            );
        }
        WireValue::Duration(s, n) => {
            ctx.set(id, Value::Duration(Duration::new(s as u64, n as u32)));
        }
        WireValue::StringMap(entries) => {
            let m = ctx.map_mut(id);
            let merged = entries.for_each(|key, v| {
                if let Some(e) = d.get(key) {
                    merge_key(m, &e.name, v);
                }
                Ok(())
            });
            debug_assert!(merged.is_ok());
        }
    }
}
