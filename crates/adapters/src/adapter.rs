//! The adapter contract: name and templates, side-effect-free validation of
//! params, then an effectful build.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use crate::Error;
use crate::clock::{Clock, SystemClock};
use crate::handler::Handler;
use crate::template::Template;

/// An adapter kind (`memquota`, `listchecker`...): what a handler config
/// names in its `compiledAdapter`/`adapter` field.
///
/// Validation and build are apart, as in a pipeline's component config:
/// [`validate`](Adapter::validate) reads the params and checks every rule
/// with no side effect (no connection, no file, no port; it may run in a
/// config linter), reporting every problem with its field path; the
/// [`HandlerBuilder`] it returns then builds the handler, which may connect,
/// bind and spawn background work on the runtime of the [`BuildEnv`].
pub trait Adapter: Send + Sync + 'static {
    /// The adapter's name, unique in a [`Registry`](crate::Registry).
    fn name(&self) -> &str;

    /// One line saying what it does.
    fn description(&self) -> &str {
        ""
    }

    /// The templates its handlers accept.
    fn templates(&self) -> &[Template];

    /// Validates `params`: returns a builder, or
    /// [`Error::InvalidParams`] listing every problem found.
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error>;
}

/// Validated params, ready to build a handler.
pub trait HandlerBuilder: Send + fmt::Debug {
    /// Builds the handler. May start background work on
    /// [`BuildEnv::runtime`]; must not block on I/O (connections are made
    /// lazily or in the background, so a backend that is down is a runtime
    /// error, not a build error).
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error>;
}

/// A handler's params: the JSON value from its config, kept whole so that
/// the dispatcher can tell cheaply whether a new config changed them (and
/// reuse the running handler, with its state, when not).
///
/// Equality is a pointer comparison when both sides share the value, else
/// a precomputed fingerprint, and only then a structural comparison.
#[derive(Clone)]
pub struct Params {
    value: Arc<serde_json::Value>,
    fingerprint: u64,
}

impl Params {
    /// Params from a JSON value.
    pub fn new(value: serde_json::Value) -> Params {
        let mut h = DefaultHasher::new();
        hash_json(&value, &mut h);
        Params {
            value: Arc::new(value),
            fingerprint: h.finish(),
        }
    }

    /// Empty params (`{}`).
    pub fn empty() -> Params {
        Params::new(serde_json::Value::Object(Default::default()))
    }

    /// The JSON value.
    pub fn value(&self) -> &serde_json::Value {
        &self.value
    }

    /// A hash of the value, equal for equal params.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }
}

impl From<serde_json::Value> for Params {
    fn from(value: serde_json::Value) -> Self {
        Params::new(value)
    }
}

impl PartialEq for Params {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.value, &other.value)
            || (self.fingerprint == other.fingerprint && self.value == other.value)
    }
}

impl Eq for Params {}

impl Hash for Params {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.fingerprint.hash(state);
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Params({})", self.value)
    }
}

// Hashes exactly what `serde_json::Value`'s equality compares (numbers by
// their representation, objects by sorted key), so equal values hash equal.
fn hash_json(v: &serde_json::Value, h: &mut DefaultHasher) {
    use serde_json::Value as J;
    match v {
        J::Null => 0u8.hash(h),
        J::Bool(b) => (1u8, b).hash(h),
        J::Number(n) => (2u8, n.to_string()).hash(h),
        J::String(s) => (3u8, s).hash(h),
        J::Array(a) => {
            (4u8, a.len()).hash(h);
            a.iter().for_each(|x| hash_json(x, h));
        }
        J::Object(o) => {
            (5u8, o.len()).hash(h);
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            for k in keys {
                k.hash(h);
                hash_json(&o[k], h);
            }
        }
    }
}

/// What a handler is built with: the runtime for its background work, the
/// clock it reads time from, and its own name (for logs).
#[derive(Clone, Debug)]
pub struct BuildEnv {
    runtime: tokio::runtime::Handle,
    clock: Arc<dyn Clock>,
    handler_name: Arc<str>,
}

impl BuildEnv {
    /// An environment on `runtime` with the system clock.
    pub fn new(runtime: tokio::runtime::Handle) -> BuildEnv {
        BuildEnv {
            runtime,
            clock: Arc::new(SystemClock),
            handler_name: Arc::from(""),
        }
    }

    /// An environment on the current tokio runtime. Panics outside one.
    pub fn current() -> BuildEnv {
        BuildEnv::new(tokio::runtime::Handle::current())
    }

    /// The same, reading time from `clock`.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> BuildEnv {
        self.clock = clock;
        self
    }

    /// The same, for the handler named `name` (its fully-qualified name).
    pub fn with_handler_name(mut self, name: impl Into<Arc<str>>) -> BuildEnv {
        self.handler_name = name.into();
        self
    }

    /// Where background work runs.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Where time comes from.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The handler's fully-qualified name (empty if not given).
    pub fn handler_name(&self) -> &Arc<str> {
        &self.handler_name
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn params_equality() {
        let a = Params::new(json!({"quotas": [{"name": "q", "maxAmount": 10}], "b": 1}));
        let b = Params::new(json!({"b": 1, "quotas": [{"name": "q", "maxAmount": 10}]}));
        let c = Params::new(json!({"b": 1, "quotas": [{"name": "q", "maxAmount": 11}]}));
        assert_eq!(a, b);
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a, c);
        assert_eq!(a, a.clone());
        assert_ne!(Params::new(json!(1)), Params::new(json!(1.0)));
        assert_eq!(Params::empty(), Params::new(json!({})));
    }
}
