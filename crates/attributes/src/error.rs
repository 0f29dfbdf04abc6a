//! The crate's one error type, for the stream decoder and the delta encoder.

use std::fmt;

use crate::intern::InternerFull;
use crate::value::ValueType;

/// A field of the wire's `Attributes` message, named as in the `.proto`
/// (errors print these names so that a client author can find the field).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Field {
    /// 1 `dictionary`.
    Dictionary,
    /// 2 `attribute_context`.
    AttributeContext,
    /// 3 `reset_context`.
    ResetContext,
    /// 4 `string_attributes`.
    StringAttributes,
    /// 5 `int64_attributes`.
    Int64Attributes,
    /// 6 `double_attributes`.
    DoubleAttributes,
    /// 7 `bool_attributes`.
    BoolAttributes,
    /// 8 `timestamp_attributes`.
    TimestampAttributes,
    /// 9 `duration_attributes`.
    DurationAttributes,
    /// 10 `bytes_attributes`.
    BytesAttributes,
    /// 11 `stringMap_attributes`.
    StringMapAttributes,
    /// 12 `deleted_attributes`.
    DeletedAttributes,
    /// 13 `timestamp_attributes_HACK` (read like field 8).
    TimestampAttributesHack,
    /// 14 `duration_attributes_HACK` (read like field 9).
    DurationAttributesHack,
}

impl Field {
    /// The field with protobuf number `n`.
    pub fn from_number(n: u32) -> Option<Field> {
        Some(match n {
            1 => Field::Dictionary,
            2 => Field::AttributeContext,
            3 => Field::ResetContext,
            4 => Field::StringAttributes,
            5 => Field::Int64Attributes,
            6 => Field::DoubleAttributes,
            7 => Field::BoolAttributes,
            8 => Field::TimestampAttributes,
            9 => Field::DurationAttributes,
            10 => Field::BytesAttributes,
            11 => Field::StringMapAttributes,
            12 => Field::DeletedAttributes,
            13 => Field::TimestampAttributesHack,
            14 => Field::DurationAttributesHack,
            _ => return None,
        })
    }

    /// The protobuf field number.
    pub fn number(self) -> u32 {
        match self {
            Field::Dictionary => 1,
            Field::AttributeContext => 2,
            Field::ResetContext => 3,
            Field::StringAttributes => 4,
            Field::Int64Attributes => 5,
            Field::DoubleAttributes => 6,
            Field::BoolAttributes => 7,
            Field::TimestampAttributes => 8,
            Field::DurationAttributes => 9,
            Field::BytesAttributes => 10,
            Field::StringMapAttributes => 11,
            Field::DeletedAttributes => 12,
            Field::TimestampAttributesHack => 13,
            Field::DurationAttributesHack => 14,
        }
    }

    /// The field's name in the `.proto`.
    pub fn name(self) -> &'static str {
        match self {
            Field::Dictionary => "dictionary",
            Field::AttributeContext => "attribute_context",
            Field::ResetContext => "reset_context",
            Field::StringAttributes => "string_attributes",
            Field::Int64Attributes => "int64_attributes",
            Field::DoubleAttributes => "double_attributes",
            Field::BoolAttributes => "bool_attributes",
            Field::TimestampAttributes => "timestamp_attributes",
            Field::DurationAttributes => "duration_attributes",
            Field::BytesAttributes => "bytes_attributes",
            Field::StringMapAttributes => "stringMap_attributes",
            Field::DeletedAttributes => "deleted_attributes",
            Field::TimestampAttributesHack => "timestamp_attributes_HACK",
            Field::DurationAttributesHack => "duration_attributes_HACK",
        }
    }

    /// The value type a typed-map field carries (`None` for the others).
    pub fn value_type(self) -> Option<ValueType> {
        Some(match self {
            Field::StringAttributes => ValueType::String,
            Field::Int64Attributes => ValueType::Int64,
            Field::DoubleAttributes => ValueType::Double,
            Field::BoolAttributes => ValueType::Bool,
            Field::TimestampAttributes | Field::TimestampAttributesHack => ValueType::Timestamp,
            Field::DurationAttributes | Field::DurationAttributesHack => ValueType::Duration,
            Field::BytesAttributes => ValueType::Bytes,
            Field::StringMapAttributes => ValueType::StringMap,
            _ => return None,
        })
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where in an update a problem is: `string_attributes[7]`, or for a key
/// of a string map `stringMap_attributes[3][12]`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Location {
    /// The field.
    pub field: Field,
    /// The dictionary index used as the map key (or the deleted index).
    pub index: i32,
    /// For a string-map entry, the dictionary index of the entry's key.
    pub key: Option<i32>,
}

impl Location {
    pub(crate) fn new(field: Field, index: i32) -> Location {
        Location {
            field,
            index,
            key: None,
        }
    }

    pub(crate) fn key(field: Field, index: i32, key: i32) -> Location {
        Location {
            field,
            index,
            key: Some(key),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]", self.field, self.index)?;
        if let Some(k) = self.key {
            write!(f, "[{k}]")?;
        }
        Ok(())
    }
}

/// Why an attribute update could not be applied, or an attribute bag could
/// not be encoded. Every variant names the offending field and index, so
/// the text is fit for the `INVALID_ARGUMENT` status returned to a client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The bytes are not a well-formed protobuf `Attributes` message.
    #[error("malformed Attributes message: {reason} (in {field} at byte {offset})")]
    Malformed {
        /// The field being read (`Attributes` for the message itself).
        field: &'static str,
        /// Byte offset of the problem within the `Attributes` bytes.
        offset: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// An index that the stream's dictionary does not hold.
    #[error("{at}: index {index} is not in the dictionary")]
    UnknownIndex {
        /// Where the index was used.
        at: Location,
        /// The index.
        index: i32,
    },
    /// An index was used before any dictionary was sent on the stream.
    #[error(
        "{at}: index {index} is not in the dictionary (the stream has none yet: the first request must carry one)"
    )]
    NoDictionary {
        /// Where the index was used.
        at: Location,
        /// The index.
        index: i32,
    },
    /// One dictionary names the same attribute under two indices.
    #[error("dictionary[{index}]: name '{name}' is already at index {first}")]
    DuplicateName {
        /// The later index.
        index: i32,
        /// The earlier index with the same name.
        first: i32,
        /// The name.
        name: String,
    },
    /// One update sets the same attribute in two fields: under two types,
    /// or in a field and its `_HACK` twin.
    #[error("{at}: attribute '{name}' is also set as {other_type} by {other} in the same update")]
    TypeConflict {
        /// The second setting.
        at: Location,
        /// The attribute.
        name: String,
        /// The first setting.
        other: Location,
        /// The type of the first setting.
        other_type: ValueType,
    },
    /// A value is longer than [`crate::Limits::max_value_bytes`].
    #[error("{at}: value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// The value.
        at: Location,
        /// Its length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// A dictionary name is longer than [`crate::Limits::max_value_bytes`].
    #[error("dictionary[{index}]: name of {len} bytes exceeds the limit of {limit} bytes")]
    NameTooLarge {
        /// The dictionary index.
        index: i32,
        /// The name's length.
        len: usize,
        /// The limit.
        limit: usize,
    },
    /// The dictionary has more entries than [`crate::Limits::max_dictionary_entries`].
    #[error("dictionary: {count} entries exceed the limit of {limit}")]
    TooManyDictionaryEntries {
        /// Distinct indices in the dictionary.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A new context would exceed [`crate::Limits::max_contexts`].
    #[error(
        "attribute_context {context}: the stream already holds {limit} contexts, the limit (reuse a context or reset one)"
    )]
    TooManyContexts {
        /// The context asked for.
        context: i32,
        /// The limit.
        limit: usize,
    },
    /// The update would leave more attributes in the context than
    /// [`crate::Limits::max_attributes_per_context`].
    #[error(
        "attribute_context {context}: the update would leave {count} attributes, more than the limit of {limit}"
    )]
    TooManyAttributes {
        /// The context.
        context: i32,
        /// Attributes the context would hold.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// A duration below zero (nothing in a Mixer means a negative span).
    #[error("{at}: negative duration (seconds {seconds}, nanos {nanos}) is not allowed")]
    NegativeDuration {
        /// The value.
        at: Location,
        /// Its seconds.
        seconds: i64,
        /// Its nanos.
        nanos: i32,
    },
    /// A duration whose nanos lie outside `0..1_000_000_000`.
    #[error("{at}: duration nanos {nanos} outside 0..=999999999")]
    InvalidDurationNanos {
        /// The value.
        at: Location,
        /// The nanos.
        nanos: i32,
    },
    /// A timestamp outside years 1 to 9999.
    #[error("{at}: timestamp (seconds {seconds}, nanos {nanos}) is outside years 1 to 9999")]
    TimestampOutOfRange {
        /// The value.
        at: Location,
        /// Its seconds.
        seconds: i64,
        /// Its nanos.
        nanos: i32,
    },
    /// A dictionary name could not be interned: the process-wide table of
    /// names is full.
    #[error("dictionary[{index}]: {source}")]
    InternerFull {
        /// The dictionary index.
        index: i32,
        /// The interner's error.
        #[source]
        source: InternerFull,
    },
    /// The encoder's dictionary reached its bound.
    #[error("attribute '{name}': the encoder's dictionary is full ({limit} words)")]
    EncoderDictionaryFull {
        /// The name or map key that found no room.
        name: String,
        /// The bound.
        limit: usize,
    },
    /// A duration too long for `google.protobuf.Duration`.
    #[error("attribute '{name}': duration of {seconds}s does not fit google.protobuf.Duration")]
    DurationTooLong {
        /// The attribute.
        name: String,
        /// Its whole seconds.
        seconds: u64,
    },
}
