//! Reading params out of JSON with every problem collected and named by its
//! field path (`quotas[1].overrides[0].maxAmount`).
//!
//! Adapters validate with these helpers instead of a serde derive so that
//! one pass reports *every* problem, not only the first, each with its
//! exact path, and so that unknown fields are found at any depth.
//!
//! ```
//! use mixer_adapters::params::{Fields, ParamErrors};
//! use serde_json::json;
//!
//! let v = json!({"validDuration": "5x", "extra": 1});
//! let mut errs = ParamErrors::new();
//! let root = Fields::root(&v, &mut errs);
//! let d = root.duration("validDuration", &mut errs);
//! root.finish(&mut errs);
//! assert_eq!(d, None);
//! let e = errs.into_result("denier", ()).unwrap_err();
//! assert_eq!(
//!     e.to_string(),
//!     "invalid params for adapter `denier`: validDuration: expected a duration such as \
//!      \"5s\" or \"100ms\", got \"5x\"; extra: unknown field (expected one of: validDuration)"
//! );
//! ```

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value as J};

use crate::{Error, FieldError};

/// The problems found so far.
#[derive(Debug, Default)]
pub struct ParamErrors {
    errors: Vec<FieldError>,
}

impl ParamErrors {
    /// None yet.
    pub fn new() -> ParamErrors {
        ParamErrors::default()
    }

    /// Records a problem at `path`.
    pub fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// True when nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `value` when nothing was wrong, else [`Error::InvalidParams`] for
    /// `adapter` with every problem.
    pub fn into_result<T>(self, adapter: &str, value: T) -> Result<T, Error> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(Error::InvalidParams {
                adapter: adapter.to_string(),
                errors: self.errors,
            })
        }
    }
}

/// The fields of one JSON object in the params, at a known path.
///
/// Every getter marks its key as known; [`Fields::finish`] then reports
/// each key no getter asked for as an unknown field. A `null` value reads
/// as absent (YAML's `key:` with nothing after it).
#[derive(Debug)]
pub struct Fields<'a> {
    path: String,
    map: Option<&'a Map<String, J>>,
    known: RefCell<Vec<&'static str>>,
}

/// The JSON kind of a value, for messages.
pub fn kind(v: &J) -> &'static str {
    match v {
        J::Null => "null",
        J::Bool(_) => "a boolean",
        J::Number(_) => "a number",
        J::String(_) => "a string",
        J::Array(_) => "a list",
        J::Object(_) => "an object",
    }
}

/// Joins a parent path and a key: `a.b`, or `b` at the root.
pub fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl<'a> Fields<'a> {
    /// The params' root object (`null` reads as an empty object).
    pub fn root(v: &'a J, errs: &mut ParamErrors) -> Fields<'a> {
        Fields::at(String::new(), v, errs)
    }

    /// The object `v` found at `path`; a non-object is recorded as an error
    /// and reads as empty.
    pub fn at(path: String, v: &'a J, errs: &mut ParamErrors) -> Fields<'a> {
        let map = match v {
            J::Object(m) => Some(m),
            J::Null => None,
            other => {
                errs.push(
                    path.clone(),
                    format!("expected an object, got {}", kind(other)),
                );
                None
            }
        };
        Fields {
            path,
            map,
            known: RefCell::new(Vec::new()),
        }
    }

    /// This object's path (empty at the root).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The path of field `key` of this object.
    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// The raw value of `key`, if present and not null.
    pub fn get(&self, key: &'static str) -> Option<&'a J> {
        self.known.borrow_mut().push(key);
        self.map?.get(key).filter(|v| !v.is_null())
    }

    fn typed<T>(
        &self,
        key: &'static str,
        errs: &mut ParamErrors,
        what: &str,
        f: impl FnOnce(&'a J) -> Option<T>,
    ) -> Option<T> {
        let v = self.get(key)?;
        let out = f(v);
        if out.is_none() {
            errs.push(
                self.path_of(key),
                format!("expected {what}, got {}", describe(v)),
            );
        }
        out
    }

    /// A string field.
    pub fn string(&self, key: &'static str, errs: &mut ParamErrors) -> Option<String> {
        self.typed(key, errs, "a string", |v| v.as_str().map(str::to_string))
    }

    /// A `host:port` address field (not resolved here: resolving is the
    /// build's side effect), `default` when absent. An address without a
    /// host or with port 0 is an error naming the field; `default` doubles
    /// as the example in that message.
    pub fn host_port(&self, key: &'static str, default: &str, errs: &mut ParamErrors) -> String {
        let address = self
            .string(key, errs)
            .unwrap_or_else(|| default.to_string());
        let port_ok = address
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !port_ok {
            errs.push(
                self.path_of(key),
                format!("expected host:port such as {default}, got {address:?}"),
            );
        }
        address
    }

    /// A boolean field.
    pub fn bool(&self, key: &'static str, errs: &mut ParamErrors) -> Option<bool> {
        self.typed(key, errs, "true or false", J::as_bool)
    }

    /// An integer field (a JSON integer, or a string holding one, as the
    /// protobuf JSON mapping writes 64-bit integers).
    pub fn int(&self, key: &'static str, errs: &mut ParamErrors) -> Option<i64> {
        self.typed(key, errs, "an integer", as_int)
    }

    /// A number field (integer or decimal, or a string holding one).
    pub fn float(&self, key: &'static str, errs: &mut ParamErrors) -> Option<f64> {
        self.typed(key, errs, "a number", |v| match v {
            J::Number(n) => n.as_f64(),
            J::String(s) => s.trim().parse().ok().filter(|f: &f64| f.is_finite()),
            _ => None,
        })
    }

    /// A duration field written as a string (`"5s"`, `"100ms"`, `"1m30s"`).
    pub fn duration(&self, key: &'static str, errs: &mut ParamErrors) -> Option<Duration> {
        self.typed(key, errs, "a duration such as \"5s\" or \"100ms\"", |v| {
            v.as_str().and_then(mixer_attributes::parse_duration)
        })
    }

    /// An enumeration field written as one of `names` (exact spelling).
    pub fn enumeration<T: Copy>(
        &self,
        key: &'static str,
        names: &[(&'static str, T)],
        errs: &mut ParamErrors,
    ) -> Option<T> {
        let v = self.get(key)?;
        let found = v
            .as_str()
            .and_then(|s| names.iter().find(|(n, _)| *n == s).map(|(_, t)| *t));
        if found.is_none() {
            let list: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
            errs.push(
                self.path_of(key),
                format!("expected one of {}, got {}", list.join(", "), describe(v)),
            );
        }
        found
    }

    /// A nested object field.
    pub fn object(&self, key: &'static str, errs: &mut ParamErrors) -> Option<Fields<'a>> {
        let v = self.get(key)?;
        Some(Fields::at(self.path_of(key), v, errs))
    }

    /// A list field: each element with its path (`key[i]`). Absent reads as
    /// empty; a non-list is an error.
    pub fn list(&self, key: &'static str, errs: &mut ParamErrors) -> Vec<(String, &'a J)> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        match v {
            J::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, x)| (format!("{}[{i}]", self.path_of(key)), x))
                .collect(),
            other => {
                errs.push(
                    self.path_of(key),
                    format!("expected a list, got {}", kind(other)),
                );
                Vec::new()
            }
        }
    }

    /// A list of objects.
    pub fn objects(&self, key: &'static str, errs: &mut ParamErrors) -> Vec<Fields<'a>> {
        self.list(key, errs)
            .into_iter()
            .map(|(path, v)| Fields::at(path, v, errs))
            .collect()
    }

    /// A list of strings; elements that are not strings are errors.
    pub fn strings(&self, key: &'static str, errs: &mut ParamErrors) -> Vec<String> {
        let mut out = Vec::new();
        for (path, v) in self.list(key, errs) {
            match v.as_str() {
                Some(s) => out.push(s.to_string()),
                None => errs.push(path, format!("expected a string, got {}", describe(v))),
            }
        }
        out
    }

    /// A map from strings to scalars, the scalars rendered as strings
    /// (`{"code": 200}` reads as `code` -> `"200"`).
    pub fn string_map(
        &self,
        key: &'static str,
        errs: &mut ParamErrors,
    ) -> Option<BTreeMap<String, String>> {
        let v = self.get(key)?;
        let J::Object(m) = v else {
            errs.push(
                self.path_of(key),
                format!("expected a map, got {}", kind(v)),
            );
            return None;
        };
        let mut out = BTreeMap::new();
        for (k, x) in m {
            let s = match x {
                J::String(s) => s.clone(),
                J::Number(n) => n.to_string(),
                J::Bool(b) => b.to_string(),
                other => {
                    errs.push(
                        format!("{}.{k}", self.path_of(key)),
                        format!("expected a string, got {}", kind(other)),
                    );
                    continue;
                }
            };
            out.insert(k.clone(), s);
        }
        Some(out)
    }

    /// Reports every key of this object no getter asked for.
    pub fn finish(self, errs: &mut ParamErrors) {
        let Some(map) = self.map else { return };
        let known = self.known.into_inner();
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                errs.push(
                    join(&self.path, key),
                    format!("unknown field (expected one of: {})", known.join(", ")),
                );
            }
        }
    }
}

/// An integer from a JSON integer or a string holding one.
pub fn as_int(v: &J) -> Option<i64> {
    match v {
        J::Number(n) => n.as_i64(),
        J::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The texts of a failed parse's field errors: what the adapters' tests
/// compare.
#[cfg(all(
    test,
    any(
        feature = "denier",
        feature = "list",
        feature = "memquota",
        feature = "redisquota"
    )
))]
pub(crate) fn error_texts<T: std::fmt::Debug>(r: Result<T, Error>) -> Vec<String> {
    r.unwrap_err()
        .field_errors()
        .iter()
        .map(ToString::to_string)
        .collect()
}

/// A value for messages: strings quoted, short scalars shown, the rest by
/// kind.
pub fn describe(v: &J) -> String {
    match v {
        J::String(s) if s.len() <= 64 => format!("{s:?}"),
        J::Number(n) => n.to_string(),
        J::Bool(b) => b.to_string(),
        other => kind(other).to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(v: J, f: impl FnOnce(&Fields<'_>, &mut ParamErrors)) -> Vec<String> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(&v, &mut errs);
        f(&root, &mut errs);
        root.finish(&mut errs);
        errs.errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn typed_getters_name_the_path() {
        let got = run(
            json!({"a": "x", "b": 1.5, "c": "no", "d": 3, "e": [1, "s"], "f": {"g": []},
                   "h": "AB", "n": null}),
            |r, e| {
                assert_eq!(r.int("a", e), None);
                assert_eq!(r.int("b", e), None);
                assert_eq!(r.bool("c", e), None);
                assert_eq!(r.string("d", e), None);
                assert_eq!(r.strings("e", e), vec!["s".to_string()]);
                let f = r.object("f", e).unwrap();
                assert_eq!(f.string_map("g", e), None);
                f.finish(e);
                assert_eq!(r.enumeration("h", &[("A", 1), ("B", 2)], e), None);
                assert_eq!(r.string("n", e), None);
                assert_eq!(r.duration("missing", e), None);
            },
        );
        assert_eq!(
            got,
            [
                "a: expected an integer, got \"x\"",
                "b: expected an integer, got 1.5",
                "c: expected true or false, got \"no\"",
                "d: expected a string, got 3",
                "e[0]: expected a string, got 1",
                "f.g: expected a map, got a list",
                "h: expected one of A, B, got \"AB\"",
            ]
        );
    }

    #[test]
    fn unknown_fields_at_any_depth() {
        let got = run(
            json!({"quotas": [{"name": "q", "maxAmout": 1}], "x": 1}),
            |r, e| {
                for q in r.objects("quotas", e) {
                    q.string("name", e);
                    q.int("maxAmount", e);
                    q.finish(e);
                }
            },
        );
        assert_eq!(
            got,
            [
                "quotas[0].maxAmout: unknown field (expected one of: name, maxAmount)",
                "x: unknown field (expected one of: quotas)",
            ]
        );
    }

    #[test]
    fn accepted_spellings() {
        let got = run(
            json!({"i": "42", "f": "0.5", "d": "1m30s", "m": {"a": 1, "b": true, "c": "x"},
                   "o": 7}),
            |r, e| {
                assert_eq!(r.int("i", e), Some(42));
                assert_eq!(r.float("f", e), Some(0.5));
                assert_eq!(r.duration("d", e), Some(Duration::from_secs(90)));
                let m = r.string_map("m", e).unwrap();
                assert_eq!(m["a"], "1");
                assert_eq!(m["b"], "true");
                assert_eq!(r.list("o", e), vec![]);
            },
        );
        assert_eq!(got, ["o: expected a list, got a number"]);
        assert_eq!(
            run(json!([1]), |_, _| {}),
            ["expected an object, got a list"]
        );
    }
}
