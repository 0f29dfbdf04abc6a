//! The six templates: the shape of the instances adapters receive.
//!
//! Each template is described twice: as a [`TemplateSchema`] (data: field
//! names and allowed types, what the config validator checks instance
//! expressions against) and as a typed instance struct (what a handler
//! receives: [`CheckInstance`], [`QuotaInstance`], [`ReportBatch`] and the
//! structs they hold).

mod borrowed;
mod instance;

pub use borrowed::{DimensionsRef, LogEntryRef, MetricRef, ReportNothingRef, ReportRefs};
pub use instance::{
    CheckInstance, CheckNothingInstance, Dimensions, ListEntryInstance, LogEntryInstance,
    MetricInstance, QuotaInstance, ReportBatch, ReportNothingInstance,
};

use std::fmt;

use mixer_attributes::ValueType;

/// Which of the three calls a template serves.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Variety {
    /// Check: may the request go ahead?
    Check,
    /// Quota: may it spend an amount of a limit?
    Quota,
    /// Report: what happened (metrics, logs).
    Report,
}

impl Variety {
    /// The name used in Istio config (`TEMPLATE_VARIETY_CHECK` is written
    /// `CHECK` here).
    pub fn name(self) -> &'static str {
        match self {
            Variety::Check => "CHECK",
            Variety::Quota => "QUOTA",
            Variety::Report => "REPORT",
        }
    }
}

impl fmt::Display for Variety {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What an instance field's expression must evaluate to.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// A single value of one of these types.
    OneOf(&'static [ValueType]),
    /// `map<string, any>`: a map of expressions, one per key, each of any
    /// type (`dimensions`, `variables`).
    MapOfAny,
}

impl FieldType {
    /// Whether a single value of type `t` fits (always false for a map).
    pub fn accepts(self, t: ValueType) -> bool {
        match self {
            FieldType::OneOf(types) => types.contains(&t),
            FieldType::MapOfAny => false,
        }
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldType::OneOf(types) => {
                for (i, t) in types.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" | ")?;
                    }
                    f.write_str(t.name())?;
                }
                Ok(())
            }
            FieldType::MapOfAny => f.write_str("map<string, any>"),
        }
    }
}

/// One field of a template.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FieldSchema {
    /// The field's name as written in instance config (`monitoredResourceType`).
    pub name: &'static str,
    /// What its expression must produce.
    pub ty: FieldType,
    /// Whether an instance must set it (others default to empty/absent).
    pub required: bool,
}

/// A template as data: its name, variety and fields.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct TemplateSchema {
    /// The template's name (`listentry`).
    pub name: &'static str,
    /// The call it serves.
    pub variety: Variety,
    /// Its fields, in declaration order.
    pub fields: &'static [FieldSchema],
}

impl TemplateSchema {
    /// The field named `name`.
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields.iter().find(|f| f.name == name)
    }
}

/// The built-in templates.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Template {
    /// `checknothing` (CHECK, no fields).
    CheckNothing,
    /// `listentry` (CHECK, `value`).
    ListEntry,
    /// `quota` (QUOTA, `dimensions`).
    Quota,
    /// `metric` (REPORT).
    Metric,
    /// `logentry` (REPORT).
    LogEntry,
    /// `reportnothing` (REPORT, no fields).
    ReportNothing,
}

const STRING: &[ValueType] = &[ValueType::String];
const LIST_VALUE: &[ValueType] = &[ValueType::String, ValueType::IpAddress];
const METRIC_VALUE: &[ValueType] = &[
    ValueType::Int64,
    ValueType::Double,
    ValueType::Duration,
    ValueType::String,
];
const TIMESTAMP: &[ValueType] = &[ValueType::Timestamp];

const fn field(name: &'static str, ty: FieldType, required: bool) -> FieldSchema {
    FieldSchema { name, ty, required }
}

const MONITORED_TYPE: FieldSchema = field("monitoredResourceType", FieldType::OneOf(STRING), false);
const MONITORED_DIMS: FieldSchema =
    field("monitoredResourceDimensions", FieldType::MapOfAny, false);

static SCHEMAS: [TemplateSchema; 6] = [
    TemplateSchema {
        name: "checknothing",
        variety: Variety::Check,
        fields: &[],
    },
    TemplateSchema {
        name: "listentry",
        variety: Variety::Check,
        fields: &[field("value", FieldType::OneOf(LIST_VALUE), true)],
    },
    TemplateSchema {
        name: "quota",
        variety: Variety::Quota,
        fields: &[field("dimensions", FieldType::MapOfAny, false)],
    },
    TemplateSchema {
        name: "metric",
        variety: Variety::Report,
        fields: &[
            field("value", FieldType::OneOf(METRIC_VALUE), true),
            field("dimensions", FieldType::MapOfAny, false),
            MONITORED_TYPE,
            MONITORED_DIMS,
        ],
    },
    TemplateSchema {
        name: "logentry",
        variety: Variety::Report,
        fields: &[
            field("variables", FieldType::MapOfAny, false),
            field("timestamp", FieldType::OneOf(TIMESTAMP), false),
            field("severity", FieldType::OneOf(STRING), false),
            MONITORED_TYPE,
            MONITORED_DIMS,
        ],
    },
    TemplateSchema {
        name: "reportnothing",
        variety: Variety::Report,
        fields: &[],
    },
];

impl Template {
    /// Every built-in template.
    pub const ALL: [Template; 6] = [
        Template::CheckNothing,
        Template::ListEntry,
        Template::Quota,
        Template::Metric,
        Template::LogEntry,
        Template::ReportNothing,
    ];

    /// The template's schema.
    pub fn schema(self) -> &'static TemplateSchema {
        &SCHEMAS[self as usize]
    }

    /// The template's name (`listentry`).
    pub fn name(self) -> &'static str {
        self.schema().name
    }

    /// The call it serves.
    pub fn variety(self) -> Variety {
        self.schema().variety
    }

    /// The template named `name`.
    pub fn from_name(name: &str) -> Option<Template> {
        Template::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_match_the_spec() {
        for t in Template::ALL {
            assert_eq!(Template::from_name(t.name()), Some(t));
        }
        assert_eq!(Template::from_name("quotas"), None);
        assert_eq!(Template::Quota.variety(), Variety::Quota);
        assert_eq!(Template::LogEntry.variety(), Variety::Report);
        assert_eq!(Template::ListEntry.variety(), Variety::Check);
        let value = Template::ListEntry.schema().field("value").unwrap();
        assert!(value.ty.accepts(ValueType::IpAddress));
        assert!(!value.ty.accepts(ValueType::Int64));
        assert_eq!(value.ty.to_string(), "STRING | IP_ADDRESS");
        let metric = Template::Metric.schema();
        let names: Vec<_> = metric.fields.iter().map(|f| f.name).collect();
        assert_eq!(
            names,
            [
                "value",
                "dimensions",
                "monitoredResourceType",
                "monitoredResourceDimensions"
            ]
        );
        assert!(
            metric
                .field("value")
                .unwrap()
                .ty
                .accepts(ValueType::Duration)
        );
        assert_eq!(
            Template::Quota.schema().field("dimensions").unwrap().ty,
            FieldType::MapOfAny
        );
        assert!(Template::CheckNothing.schema().fields.is_empty());
        assert!(
            Template::LogEntry
                .schema()
                .field("timestamp")
                .unwrap()
                .ty
                .accepts(ValueType::Timestamp)
        );
    }
}
