//! Reporting problems about one object, and reading its fields.

use serde_json::{Map, Value};

use crate::error::{Error, Problem};
use crate::load::Document;
use crate::model::{FieldPath, Subject};

/// Where problems found in one object go, and how they are labelled.
pub(super) struct Site<'d> {
    pub(super) doc: &'d Document,
    pub(super) subject: Subject,
}

/// The problems found so far.
#[derive(Default)]
pub(super) struct Report {
    pub(super) errors: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
}

impl Site<'_> {
    pub(super) fn problem(&self, path: FieldPath, error: Error) -> Problem {
        Problem {
            origin: Some(self.doc.origin_of(&path)),
            subject: Some(self.subject.clone()),
            field: Some(path),
            error,
        }
    }

    pub(super) fn error(&self, report: &mut Report, path: FieldPath, error: Error) {
        report.errors.push(self.problem(path, error));
    }

    /// Reports every field of `map` not in `allowed`.
    pub(super) fn deny_unknown(
        &self,
        report: &mut Report,
        map: &Map<String, Value>,
        allowed: &[&str],
        path: &FieldPath,
    ) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                let expected = allowed.iter().map(|s| (*s).to_owned()).collect();
                self.error(report, path.field(key), Error::UnknownField { expected });
            }
        }
    }

    /// The string at `map[key]`; `None` when absent or null, reported when
    /// of another type.
    pub(super) fn string<'v>(
        &self,
        report: &mut Report,
        map: &'v Map<String, Value>,
        key: &str,
        path: &FieldPath,
    ) -> Option<&'v str> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                let error = wrong_type("a string", other);
                self.error(report, path.field(key), error);
                None
            }
        }
    }

    /// Like [`string`](Self::string), but absence (or an empty string) is
    /// reported too.
    pub(super) fn required_string<'v>(
        &self,
        report: &mut Report,
        map: &'v Map<String, Value>,
        key: &str,
        path: &FieldPath,
    ) -> Option<&'v str> {
        let present = map.get(key).is_some_and(|v| !v.is_null());
        match self.string(report, map, key, path) {
            Some(s) if !s.is_empty() => Some(s),
            Some(_) => {
                self.error(report, path.field(key), Error::MissingField);
                None
            }
            None if !present => {
                self.error(report, path.field(key), Error::MissingField);
                None
            }
            None => None,
        }
    }

    /// The mapping at `value`; an empty one for null, reported (and
    /// `None`) for anything else.
    pub(super) fn mapping<'v>(
        &self,
        report: &mut Report,
        value: Option<&'v Value>,
        path: &FieldPath,
    ) -> Option<&'v Map<String, Value>> {
        static EMPTY: std::sync::OnceLock<Map<String, Value>> = std::sync::OnceLock::new();
        match value {
            None | Some(Value::Null) => Some(EMPTY.get_or_init(Map::new)),
            Some(Value::Object(map)) => Some(map),
            Some(other) => {
                self.error(report, path.clone(), wrong_type("a mapping", other));
                None
            }
        }
    }

    /// The list at `value`; empty for null, reported for anything else.
    pub(super) fn list<'v>(
        &self,
        report: &mut Report,
        value: Option<&'v Value>,
        path: &FieldPath,
    ) -> Option<&'v [Value]> {
        match value {
            None | Some(Value::Null) => Some(&[]),
            Some(Value::Array(items)) => Some(items),
            Some(other) => {
                self.error(report, path.clone(), wrong_type("a list", other));
                None
            }
        }
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

pub(super) fn wrong_type(expected: &'static str, found: &Value) -> Error {
    Error::WrongType {
        expected,
        found: type_name(found),
    }
}
