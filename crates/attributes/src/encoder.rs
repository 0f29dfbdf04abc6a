//! The client side of a Generation-1 stream: turns successive bags into the
//! delta updates that [`crate::StreamState`] applies.

use std::collections::HashMap;
use std::sync::Arc;

use mixer_proto::istio::mixer::v1 as proto;
use prost::Message;

use crate::bag::{Bag, OwnedBag};
use crate::error::Error;
use crate::intern::AttrId;
use crate::stream::Limits;
use crate::value::ValueRef;

/// The word of `key`, assigned by `assign_words` before any lookup.
fn key_word(index: &HashMap<Arc<str>, i32>, key: &str) -> Option<i32> {
    index.get(key).copied()
}

/// What the encoder last sent for one context.
#[derive(Debug, Default)]
struct Sent {
    values: OwnedBag,
    reset: bool,
}

/// Delta-encodes attribute bags for one stream, the way the original proxy
/// client did.
///
/// - Dictionary indices are assigned on first use (to attribute names and to
///   string-map keys); whenever the dictionary grows, the next update
///   carries all of it again (a dictionary replaces the server's).
/// - An attribute equal to the value last sent on this context is omitted;
///   one that disappeared goes into `deleted_attributes`.
/// - String maps send only new and changed keys; when a key vanished, the
///   attribute is deleted and the whole map sent again.
/// - Several contexts are tracked independently; [`Encoder::reset`] makes the
///   next update of a context a full one with `reset_context` set.
///
/// Semantic values travel as their wire type (an `IP_ADDRESS` as its 4 or
/// 16 bytes, a `URI` as a string). `request_index` is not the encoder's
/// business: the transport numbers requests. One wire quirk passes
/// through: prost writes a map value equal to its default as nothing, so a
/// DOUBLE of `-0.0` arrives as `0.0`.
///
/// ```
/// use mixer_attributes::{Encoder, OwnedBag, StreamState, Value};
/// use prost::Message;
///
/// let mut encoder = Encoder::new();
/// let mut server = StreamState::new();
///
/// let first = OwnedBag::new()
///     .with("request.path", Value::String("/a".into()))
///     .with("request.size", Value::Int64(10));
/// let update = encoder.encode(0, &first).unwrap();
/// assert_eq!(update.dictionary.len(), 2);
/// server.apply_bytes(&update.encode_to_vec()).unwrap();
///
/// let second = OwnedBag::new()
///     .with("request.path", Value::String("/a".into()))
///     .with("request.size", Value::Int64(20));
/// let update = encoder.encode(0, &second).unwrap();
/// assert!(update.dictionary.is_empty() && update.string_attributes.is_empty());
/// assert_eq!(update.int64_attributes.len(), 1);
/// let bag = server.apply_bytes(&update.encode_to_vec()).unwrap();
/// assert_eq!(OwnedBag::copy_of(bag), second);
/// ```
#[derive(Debug)]
pub struct Encoder {
    words: Vec<Arc<str>>,
    word_index: HashMap<Arc<str>, i32>,
    /// Word index of each attribute id (-1 when none yet), so that names
    /// are not hashed on every update.
    by_attr: Vec<i32>,
    /// How many words the server knows.
    sent_words: usize,
    max_words: usize,
    contexts: HashMap<i32, Sent>,
    gone: Vec<AttrId>,
}

impl Default for Encoder {
    fn default() -> Encoder {
        Encoder::new()
    }
}

impl Encoder {
    /// An encoder for a new stream, whose dictionary may grow to the
    /// decoder's default bound ([`Limits::max_dictionary_entries`]).
    pub fn new() -> Encoder {
        Encoder::with_max_words(Limits::default().max_dictionary_entries)
    }

    /// An encoder whose dictionary holds at most `max_words` words; once
    /// full, an update needing a new word fails and the caller should start
    /// a new stream (with a new encoder).
    pub fn with_max_words(max_words: usize) -> Encoder {
        Encoder {
            words: Vec::new(),
            word_index: HashMap::new(),
            by_attr: Vec::new(),
            sent_words: 0,
            max_words,
            contexts: HashMap::new(),
            gone: Vec::new(),
        }
    }

    /// Makes the next update of `context` a full one with `reset_context`
    /// set, carrying the whole dictionary. Call it when the server refused
    /// an update (its state is then the one before that update, not the one
    /// the encoder assumed).
    pub fn reset(&mut self, context: i32) {
        self.contexts.entry(context).or_default().reset = true;
        self.sent_words = 0;
    }

    /// The dictionary as the encoder assigned it, in index order.
    pub fn words(&self) -> &[Arc<str>] {
        &self.words
    }

    /// The delta that turns what was last sent on `context` into `bag`.
    ///
    /// On error (a duration too long for the wire, a full dictionary) the
    /// encoder's view of the context is unchanged.
    pub fn encode<B: Bag + ?Sized>(
        &mut self,
        context: i32,
        bag: &B,
    ) -> Result<proto::Attributes, Error> {
        self.assign_words(bag)?;
        let Encoder {
            words,
            word_index,
            by_attr,
            sent_words,
            contexts,
            gone,
            ..
        } = self;
        let sent = contexts.entry(context).or_default();
        let mut out = proto::Attributes {
            attribute_context: context,
            reset_context: sent.reset,
            ..proto::Attributes::default()
        };
        if sent.reset {
            sent.values.clear();
            sent.reset = false;
        }
        // Words were assigned by `assign_words`; a bag whose contents
        // changed between its two walks has its new attributes sent next time.
        let word = |id: AttrId| by_attr.get(id.index()).copied().filter(|w| *w >= 0);

        gone.clear();
        for (id, _) in sent.values.iter() {
            if bag.get(id).is_none() {
                gone.push(id);
            }
        }
        for id in gone.iter() {
            if let Some(w) = word(*id) {
                out.deleted_attributes.push(w);
            }
            sent.values.remove(*id);
        }

        bag.for_each(&mut |id, v| {
            let old = sent.values.get(id);
            if old.is_some_and(|old| same(old, v)) {
                return;
            }
            let Some(w) = word(id) else { return };
            if let ValueRef::StringMap(m) = v
                && m.iter().any(|(k, _)| key_word(word_index, k).is_none())
            {
                return;
            }
            match v {
                ValueRef::String(s)
                | ValueRef::EmailAddress(s)
                | ValueRef::Uri(s)
                | ValueRef::DnsName(s) => {
                    out.string_attributes.insert(w, s.to_string());
                }
                ValueRef::Int64(x) => {
                    out.int64_attributes.insert(w, x);
                }
                ValueRef::Double(x) => {
                    out.double_attributes.insert(w, x);
                }
                ValueRef::Bool(x) => {
                    out.bool_attributes.insert(w, x);
                }
                ValueRef::Timestamp(t) => {
                    out.timestamp_attributes.insert(w, t.into());
                }
                ValueRef::Duration(d) => {
                    out.duration_attributes.insert(
                        w,
                        prost_types::Duration {
                            // Checked to fit by `assign_words`.
                            seconds: d.as_secs() as i64,
                            nanos: d.subsec_nanos() as i32,
                        },
                    );
                }
                ValueRef::Bytes(b) => {
                    out.bytes_attributes.insert(w, b.to_vec());
                }
                ValueRef::IpAddress(ip) => {
                    let b = match ip {
                        std::net::IpAddr::V4(a) => a.octets().to_vec(),
                        std::net::IpAddr::V6(a) => a.octets().to_vec(),
                    };
                    out.bytes_attributes.insert(w, b);
                }
                ValueRef::StringMap(new) => {
                    let mut map = HashMap::new();
                    match old {
                        Some(ValueRef::StringMap(old))
                            if old.iter().all(|(k, _)| new.get(k).is_some()) =>
                        {
                            for (k, v) in new.iter() {
                                if old.get(k) != Some(v) {
                                    map.insert(
                                        key_word(word_index, k).unwrap_or_default(),
                                        v.to_string(),
                                    );
                                }
                            }
                        }
                        _ => {
                            if old.is_some() {
                                out.deleted_attributes.push(w);
                            }
                            for (k, v) in new.iter() {
                                map.insert(
                                    key_word(word_index, k).unwrap_or_default(),
                                    v.to_string(),
                                );
                            }
                        }
                    }
                    out.string_map_attributes
                        .insert(w, proto::StringMap { map });
                }
            }
            sent.values.set(id, v.to_owned());
        });

        if words.len() > *sent_words {
            out.dictionary = words
                .iter()
                .enumerate()
                .map(|(i, w)| (i as i32, w.to_string()))
                .collect();
            *sent_words = words.len();
        }
        Ok(out)
    }

    /// [`Encoder::encode`], appending the update's protobuf bytes to `out`.
    pub fn encode_to_vec<B: Bag + ?Sized>(
        &mut self,
        context: i32,
        bag: &B,
        out: &mut Vec<u8>,
    ) -> Result<(), Error> {
        let update = self.encode(context, bag)?;
        update.encode(out).map_err(|_| Error::Malformed {
            field: "Attributes",
            offset: out.len(),
            reason: "output buffer full",
        })
    }

    /// Gives every name and map key in `bag` a word, and checks that every
    /// value can travel; on error no context state has changed.
    fn assign_words<B: Bag + ?Sized>(&mut self, bag: &B) -> Result<(), Error> {
        let mut result = Ok(());
        bag.for_each(&mut |id, v| {
            if result.is_err() {
                return;
            }
            result = self.assign(id, v);
        });
        result
    }

    fn assign(&mut self, id: AttrId, v: ValueRef<'_>) -> Result<(), Error> {
        if let ValueRef::Duration(d) = v
            && i64::try_from(d.as_secs()).is_err()
        {
            return Err(Error::DurationTooLong {
                name: id.name().to_string(),
                seconds: d.as_secs(),
            });
        }
        if self.by_attr.get(id.index()).is_none_or(|w| *w < 0) {
            let name = id.name();
            let w = self.word(&name)?;
            if self.by_attr.len() <= id.index() {
                self.by_attr.resize(id.index() + 1, -1);
            }
            self.by_attr[id.index()] = w;
        }
        if let ValueRef::StringMap(m) = v {
            for (k, _) in m.iter() {
                if !self.word_index.contains_key(k) {
                    self.word(&Arc::from(k))?;
                }
            }
        }
        Ok(())
    }

    fn word(&mut self, name: &Arc<str>) -> Result<i32, Error> {
        if let Some(w) = self.word_index.get(name) {
            return Ok(*w);
        }
        if self.words.len() >= self.max_words || self.words.len() >= i32::MAX as usize {
            return Err(Error::EncoderDictionaryFull {
                name: name.to_string(),
                limit: self.max_words,
            });
        }
        let w = self.words.len() as i32;
        self.words.push(name.clone());
        self.word_index.insert(name.clone(), w);
        Ok(w)
    }
}

/// Equality that treats a double as its bits, so that a NaN sent once is not
/// sent again on every update.
fn same(a: ValueRef<'_>, b: ValueRef<'_>) -> bool {
    match (a, b) {
        (ValueRef::Double(x), ValueRef::Double(y)) => x.to_bits() == y.to_bits(),
        _ => a == b,
    }
}
