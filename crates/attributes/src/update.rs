//! The two sources of an attribute update: wire bytes read in place, and a
//! prost `Attributes` a caller already decoded. The decoder walks either
//! through the same trait, so both give the same result.

use std::collections::HashMap;

use mixer_proto::istio::mixer::v1 as proto;

use crate::dictionary::Dictionary;
use crate::error::{Error, Field};
use crate::wire::{Payload, Reader, map_entry, seconds_nanos, utf8, wrong_type};

/// One value of a typed map, borrowed from the update.
#[derive(Copy, Clone, Debug)]
pub(crate) enum WireValue<'a> {
    String(&'a str),
    Int64(i64),
    Double(f64),
    Bool(bool),
    Timestamp(i64, i32),
    Duration(i64, i32),
    Bytes(&'a [u8]),
    StringMap(MapEntries<'a>),
}

/// The entries of one `StringMap` value.
#[derive(Copy, Clone, Debug)]
pub(crate) enum MapEntries<'a> {
    /// The `StringMap` message's bytes and their offset.
    Wire(&'a [u8], usize),
    Proto(&'a HashMap<i32, String>),
}

const MAP_WHAT: &str = "stringMap_attributes";

impl<'a> MapEntries<'a> {
    /// Calls `f(key_index, value)` for every entry.
    pub(crate) fn for_each(
        &self,
        mut f: impl FnMut(i32, &'a str) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match *self {
            MapEntries::Proto(m) => m.iter().try_for_each(|(k, v)| f(*k, v)),
            MapEntries::Wire(b, at) => {
                let mut r = Reader::new(b, at, MAP_WHAT);
                while let Some((n, p)) = r.next_field()? {
                    match (n, p) {
                        (1, Payload::Len(e, eat)) => {
                            let (k, v) = map_entry(e, eat, MAP_WHAT)?;
                            let s = match v {
                                None => "",
                                Some(Payload::Len(b, o)) => utf8(b, MAP_WHAT, o)?,
                                Some(_) => return Err(wrong_type(MAP_WHAT, eat)),
                            };
                            f(k, s)?;
                        }
                        (1, _) => return Err(wrong_type(MAP_WHAT, at)),
                        _ => {}
                    }
                }
                Ok(())
            }
        }
    }
}

/// The scalar fields of an update.
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct Header {
    pub(crate) context: i32,
    pub(crate) reset: bool,
    pub(crate) has_dictionary: bool,
    /// Whether `deleted_attributes` may be non-empty (lets the decoder skip
    /// walking the update for deletions in the common case of none).
    pub(crate) has_deleted: bool,
}

/// What the decoder needs from an update, whatever its form.
pub(crate) trait Update<'a> {
    /// The scalar fields; for bytes, also checks the top-level structure.
    fn header(&self) -> Result<Header, Error>;
    /// Builds the update's dictionary (only called when it has one).
    fn dictionary(&self, max_entries: usize, max_name_bytes: usize) -> Result<Dictionary, Error>;
    /// Every index of `deleted_attributes`.
    fn for_each_deleted(&self, f: impl FnMut(i32) -> Result<(), Error>) -> Result<(), Error>;
    /// Every typed-map entry, in wire order (fields 13 and 14 after 8 and 9
    /// for a prost struct, which is the order prost writes them in).
    fn for_each_value(
        &self,
        f: impl FnMut(Field, i32, WireValue<'a>) -> Result<(), Error>,
    ) -> Result<(), Error>;
}

/// An update read straight from the bytes of an `Attributes` message.
pub(crate) struct BytesUpdate<'a>(pub(crate) &'a [u8]);

const TOP: &str = "Attributes";

impl<'a> BytesUpdate<'a> {
    fn fields(&self) -> Reader<'a> {
        Reader::new(self.0, 0, TOP)
    }
}

fn field_what(n: u32) -> &'static str {
    Field::from_number(n).map_or(TOP, Field::name)
}

impl<'a> Update<'a> for BytesUpdate<'a> {
    fn header(&self) -> Result<Header, Error> {
        let mut h = Header::default();
        let mut r = self.fields();
        while let Some((n, p)) = r.next_field()? {
            let ok = match (n, p) {
                (2, Payload::Varint(v)) => {
                    h.context = v as i32;
                    true
                }
                (3, Payload::Varint(v)) => {
                    h.reset = v != 0;
                    true
                }
                (1, Payload::Len(..)) => {
                    h.has_dictionary = true;
                    true
                }
                (4..=11 | 13 | 14, Payload::Len(..)) => true,
                (12, Payload::Len(..) | Payload::Varint(_)) => {
                    h.has_deleted = true;
                    true
                }
                (1..=14, _) => false,
                _ => true,
            };
            if !ok {
                let at = match p {
                    Payload::Len(_, at) => at,
                    _ => 0,
                };
                return Err(wrong_type(field_what(n), at));
            }
        }
        Ok(h)
    }

    fn dictionary(&self, max_entries: usize, max_name_bytes: usize) -> Result<Dictionary, Error> {
        let what = Field::Dictionary.name();
        let mut pairs = Vec::new();
        let mut r = self.fields();
        while let Some((n, p)) = r.next_field()? {
            if let (1, Payload::Len(e, at)) = (n, p) {
                let (k, v) = map_entry(e, at, what)?;
                let name = match v {
                    None => "",
                    Some(Payload::Len(b, o)) => utf8(b, what, o)?,
                    Some(_) => return Err(wrong_type(what, at)),
                };
                pairs.push((k, name));
            }
        }
        Dictionary::build(pairs.into_iter(), max_entries, max_name_bytes)
    }

    fn for_each_deleted(&self, mut f: impl FnMut(i32) -> Result<(), Error>) -> Result<(), Error> {
        let mut r = self.fields();
        while let Some((n, p)) = r.next_field()? {
            match (n, p) {
                (12, Payload::Varint(v)) => f(v as i32)?,
                (12, Payload::Len(b, at)) => {
                    let mut packed = Reader::new(b, at, "deleted_attributes");
                    while let Some(v) = packed.packed_varint()? {
                        f(v as i32)?;
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn for_each_value(
        &self,
        mut f: impl FnMut(Field, i32, WireValue<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let mut r = self.fields();
        while let Some((n, p)) = r.next_field()? {
            let (field, entry, at) = match (Field::from_number(n), p) {
                (Some(field), Payload::Len(e, at)) if field.value_type().is_some() => {
                    (field, e, at)
                }
                _ => continue,
            };
            let what = field.name();
            let (k, v) = map_entry(entry, at, what)?;
            let value = match (field, v) {
                (Field::StringAttributes, None) => WireValue::String(""),
                (Field::StringAttributes, Some(Payload::Len(b, o))) => {
                    WireValue::String(utf8(b, what, o)?)
                }
                (Field::Int64Attributes, None) => WireValue::Int64(0),
                (Field::Int64Attributes, Some(Payload::Varint(v))) => WireValue::Int64(v as i64),
                (Field::DoubleAttributes, None) => WireValue::Double(0.0),
                (Field::DoubleAttributes, Some(Payload::Fixed64(v))) => {
                    WireValue::Double(f64::from_bits(v))
                }
                (Field::BoolAttributes, None) => WireValue::Bool(false),
                (Field::BoolAttributes, Some(Payload::Varint(v))) => WireValue::Bool(v != 0),
                (Field::TimestampAttributes | Field::TimestampAttributesHack, None) => {
                    WireValue::Timestamp(0, 0)
                }
                (
                    Field::TimestampAttributes | Field::TimestampAttributesHack,
                    Some(Payload::Len(b, o)),
                ) => {
                    let (s, n) = seconds_nanos(b, o, what)?;
                    WireValue::Timestamp(s, n)
                }
                (Field::DurationAttributes | Field::DurationAttributesHack, None) => {
                    WireValue::Duration(0, 0)
                }
                (
                    Field::DurationAttributes | Field::DurationAttributesHack,
                    Some(Payload::Len(b, o)),
                ) => {
                    let (s, n) = seconds_nanos(b, o, what)?;
                    WireValue::Duration(s, n)
                }
                (Field::BytesAttributes, None) => WireValue::Bytes(&[]),
                (Field::BytesAttributes, Some(Payload::Len(b, _))) => WireValue::Bytes(b),
                (Field::StringMapAttributes, None) => {
                    WireValue::StringMap(MapEntries::Wire(&[], at))
                }
                (Field::StringMapAttributes, Some(Payload::Len(b, o))) => {
                    WireValue::StringMap(MapEntries::Wire(b, o))
                }
                _ => return Err(wrong_type(what, at)),
            };
            f(field, k, value)?;
        }
        Ok(())
    }
}

/// An update a caller already holds as a prost struct.
pub(crate) struct ProtoUpdate<'a>(pub(crate) &'a proto::Attributes);

impl<'a> Update<'a> for ProtoUpdate<'a> {
    fn header(&self) -> Result<Header, Error> {
        Ok(Header {
            context: self.0.attribute_context,
            reset: self.0.reset_context,
            has_dictionary: !self.0.dictionary.is_empty(),
            has_deleted: !self.0.deleted_attributes.is_empty(),
        })
    }

    fn dictionary(&self, max_entries: usize, max_name_bytes: usize) -> Result<Dictionary, Error> {
        Dictionary::build(
            self.0.dictionary.iter().map(|(k, v)| (*k, v.as_str())),
            max_entries,
            max_name_bytes,
        )
    }

    fn for_each_deleted(&self, f: impl FnMut(i32) -> Result<(), Error>) -> Result<(), Error> {
        self.0.deleted_attributes.iter().copied().try_for_each(f)
    }

    fn for_each_value(
        &self,
        mut f: impl FnMut(Field, i32, WireValue<'a>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let a: &'a proto::Attributes = self.0;
        for (k, v) in &a.string_attributes {
            f(Field::StringAttributes, *k, WireValue::String(v))?;
        }
        for (k, v) in &a.int64_attributes {
            f(Field::Int64Attributes, *k, WireValue::Int64(*v))?;
        }
        for (k, v) in &a.double_attributes {
            f(Field::DoubleAttributes, *k, WireValue::Double(*v))?;
        }
        for (k, v) in &a.bool_attributes {
            f(Field::BoolAttributes, *k, WireValue::Bool(*v))?;
        }
        for (k, v) in &a.timestamp_attributes {
            f(
                Field::TimestampAttributes,
                *k,
                WireValue::Timestamp(v.seconds, v.nanos),
            )?;
        }
        for (k, v) in &a.duration_attributes {
            f(
                Field::DurationAttributes,
                *k,
                WireValue::Duration(v.seconds, v.nanos),
            )?;
        }
        for (k, v) in &a.bytes_attributes {
            f(Field::BytesAttributes, *k, WireValue::Bytes(v))?;
        }
        for (k, v) in &a.string_map_attributes {
            f(
                Field::StringMapAttributes,
                *k,
                WireValue::StringMap(MapEntries::Proto(&v.map)),
            )?;
        }
        for (k, v) in &a.timestamp_attributes_hack {
            f(
                Field::TimestampAttributesHack,
                *k,
                WireValue::Timestamp(v.seconds, v.nanos),
            )?;
        }
        for (k, v) in &a.duration_attributes_hack {
            f(
                Field::DurationAttributesHack,
                *k,
                WireValue::Duration(v.seconds, v.nanos),
            )?;
        }
        Ok(())
    }
}
