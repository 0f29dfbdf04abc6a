//! Fully-qualified config object names (`name.kind.namespace`).

use std::fmt;

/// The fully-qualified name of a config object: `name.kind.namespace`.
///
/// `kind` is the document's kind as written: `handler`, `instance`, `rule`,
/// or an older per-adapter / per-template kind (`listchecker`, `metric`), so
/// `whitelist.listchecker.istio-system` and `whitelist.handler.istio-system`
/// are different objects, as in the original Mixer.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectName {
    /// `metadata.name`.
    pub name: String,
    /// The document's `kind`.
    pub kind: String,
    /// `metadata.namespace`, or the default config namespace.
    pub namespace: String,
}

impl ObjectName {
    /// The name `name.kind.namespace`.
    pub fn new(name: &str, kind: &str, namespace: &str) -> ObjectName {
        ObjectName {
            name: name.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
        }
    }

    /// The fully-qualified text form, `name.kind.namespace`.
    pub fn qualified(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.name, self.kind, self.namespace)
    }
}
