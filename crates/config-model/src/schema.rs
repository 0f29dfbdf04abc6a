//! What the host supports, as data: the templates (with their fields'
//! types) and adapters the validator checks config against.
//!
//! This crate knows no concrete template or adapter. A host (the
//! dispatcher) describes its own, and the validator derives from them
//! which document kinds are per-adapter handlers (`kind: listchecker`) and
//! which per-template instances (`kind: metric`).

use std::collections::BTreeMap;
use std::fmt;

use mixer_attributes::ValueType;

/// When a template's instances are dispatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variety {
    /// Policy checks.
    Check,
    /// Quota allocation.
    Quota,
    /// Telemetry reports.
    Report,
}

/// The types an expression may have to fit a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Types {
    /// Any type.
    Any,
    /// One of these.
    OneOf(Vec<ValueType>),
}

impl Types {
    /// Whether `t` fits.
    pub fn allows(&self, t: ValueType) -> bool {
        match self {
            Types::Any => true,
            Types::OneOf(types) => types.contains(&t),
        }
    }
}

impl fmt::Display for Types {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Types::Any => f.write_str("any type"),
            Types::OneOf(types) => {
                for (i, t) in types.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        _ if i + 1 == types.len() => " or ",
                        _ => ", ",
                    };
                    write!(f, "{sep}{t}")?;
                }
                Ok(())
            }
        }
    }
}

/// The shape of a template field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// One expression whose type must fit.
    Expr(Types),
    /// A map from names to expressions (`dimensions`, `variables`), each
    /// value's type fitting.
    Map(Types),
}

/// One field of a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSchema {
    /// The field name as written in instance params (`monitoredResourceType`).
    pub name: String,
    /// Its shape.
    pub kind: FieldKind,
    /// Whether an instance must set it.
    pub required: bool,
}

impl FieldSchema {
    /// An optional single-expression field.
    pub fn expr(name: &str, types: Types) -> FieldSchema {
        FieldSchema {
            name: name.to_owned(),
            kind: FieldKind::Expr(types),
            required: false,
        }
    }

    /// An optional map-of-expressions field.
    pub fn map(name: &str, types: Types) -> FieldSchema {
        FieldSchema {
            name: name.to_owned(),
            kind: FieldKind::Map(types),
            required: false,
        }
    }

    /// The same field, required.
    pub fn required(self) -> FieldSchema {
        FieldSchema {
            required: true,
            ..self
        }
    }
}

/// A template: its name, variety and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSchema {
    /// The template name (`metric`), also its per-template document kind.
    pub name: String,
    /// When its instances are dispatched.
    pub variety: Variety,
    /// Its fields.
    pub fields: Vec<FieldSchema>,
}

impl TemplateSchema {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// An adapter: its name and, when known, the templates it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterSchema {
    /// The adapter name (`listchecker`), also its per-adapter document kind.
    pub name: String,
    /// The templates its handlers accept; `None` skips that check.
    pub templates: Option<Vec<String>>,
}

/// Everything the host supports.
///
/// A document kind that names both an adapter and a template is read as a
/// per-adapter handler.
///
/// ```
/// use mixer_attributes::ValueType;
/// use mixer_config::schema::{AdapterSchema, FieldSchema, Schemas, TemplateSchema, Types, Variety};
///
/// let schemas = Schemas::new()
///     .template(TemplateSchema {
///         name: "listentry".into(),
///         variety: Variety::Check,
///         fields: vec![FieldSchema::expr(
///             "value",
///             Types::OneOf(vec![ValueType::String, ValueType::IpAddress]),
///         )
///         .required()],
///     })
///     .adapter(AdapterSchema {
///         name: "listchecker".into(),
///         templates: Some(vec!["listentry".into()]),
///     });
/// assert!(schemas.get_template("listentry").is_some());
/// assert!(schemas.get_adapter("listchecker").is_some());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    templates: BTreeMap<String, TemplateSchema>,
    adapters: BTreeMap<String, AdapterSchema>,
}

impl Schemas {
    /// No templates, no adapters.
    pub fn new() -> Schemas {
        Schemas::default()
    }

    /// Adds (or replaces) a template.
    pub fn template(mut self, template: TemplateSchema) -> Schemas {
        self.templates.insert(template.name.clone(), template);
        self
    }

    /// Adds (or replaces) an adapter.
    pub fn adapter(mut self, adapter: AdapterSchema) -> Schemas {
        self.adapters.insert(adapter.name.clone(), adapter);
        self
    }

    /// The template named `name`.
    pub fn get_template(&self, name: &str) -> Option<&TemplateSchema> {
        self.templates.get(name)
    }

    /// The adapter named `name`.
    pub fn get_adapter(&self, name: &str) -> Option<&AdapterSchema> {
        self.adapters.get(name)
    }

    /// Every template, by name.
    pub fn templates(&self) -> impl Iterator<Item = &TemplateSchema> {
        self.templates.values()
    }

    /// Every adapter, by name.
    pub fn adapters(&self) -> impl Iterator<Item = &AdapterSchema> {
        self.adapters.values()
    }
}
