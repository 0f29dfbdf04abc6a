//! What a problem is about: a config object, or a document that did not
//! get as far as having a name.

use std::fmt;

use super::ObjectName;

/// The category of a config object, as named in messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// A configured adapter (`kind: handler` or a per-adapter kind).
    Handler,
    /// A template instance (`kind: instance` or a per-template kind).
    Instance,
    /// A rule.
    Rule,
    /// An attribute manifest.
    AttributeManifest,
    /// A document whose kind is not (yet) known.
    Document,
}

impl Category {
    /// The lowercase word used in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Handler => "handler",
            Category::Instance => "instance",
            Category::Rule => "rule",
            Category::AttributeManifest => "attributemanifest",
            Category::Document => "document",
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object a problem is about: its category and, once known, its
/// fully-qualified name. Printed `rule 'deny.rule.istio-system'`, or
/// `rule document` when the document has no usable name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subject {
    /// What kind of object.
    pub category: Category,
    /// Its name, when the document gave one.
    pub name: Option<ObjectName>,
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(name) => write!(f, "{} '{name}'", self.category),
            None if self.category == Category::Document => f.write_str("document"),
            None => write!(f, "{} document", self.category),
        }
    }
}
