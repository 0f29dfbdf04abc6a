//! Typed instances, what handlers receive.

use std::collections::BTreeMap;
use std::sync::Arc;

use mixer_attributes::{Timestamp, Value};

use super::Template;

/// A `map<string, any>` field: evaluated values by key, in key order (so
/// that every adapter renders and keys them the same way).
pub type Dimensions = BTreeMap<Arc<str>, Value>;

/// A `checknothing` instance.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckNothingInstance {
    /// The instance's fully-qualified name (`denyall.instance.istio-system`).
    pub name: Arc<str>,
}

/// A `listentry` instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ListEntryInstance {
    /// The instance's fully-qualified name.
    pub name: Arc<str>,
    /// The value to look up (a STRING or an IP address, as the bag gave it:
    /// IP attributes may arrive as 4 or 16 bytes).
    pub value: Value,
}

/// A `quota` instance.
#[derive(Clone, Debug, PartialEq)]
pub struct QuotaInstance {
    /// The instance's fully-qualified name; quota adapters key their
    /// per-quota config on it.
    pub name: Arc<str>,
    /// The quota's dimensions: each distinct set is its own counter.
    pub dimensions: Dimensions,
}

/// A `metric` instance.
#[derive(Clone, Debug, PartialEq)]
pub struct MetricInstance {
    /// The instance's fully-qualified name.
    pub name: Arc<str>,
    /// The measured value (INT64, DOUBLE, DURATION or a numeric STRING).
    pub value: Value,
    /// Label values by label name.
    pub dimensions: Dimensions,
    /// The monitored resource's type (empty when not set).
    pub monitored_resource_type: String,
    /// The monitored resource's dimensions.
    pub monitored_resource_dimensions: Dimensions,
}

/// A `logentry` instance.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntryInstance {
    /// The instance's fully-qualified name.
    pub name: Arc<str>,
    /// The entry's variables.
    pub variables: Dimensions,
    /// When it happened; `None` when the instance does not set it (adapters
    /// then use their clock's current time).
    pub timestamp: Option<Timestamp>,
    /// The severity as configured (`info`, `Warning`...; empty when unset).
    pub severity: String,
    /// The monitored resource's type (empty when not set).
    pub monitored_resource_type: String,
    /// The monitored resource's dimensions.
    pub monitored_resource_dimensions: Dimensions,
}

/// A `reportnothing` instance.
#[derive(Clone, Debug, PartialEq)]
pub struct ReportNothingInstance {
    /// The instance's fully-qualified name.
    pub name: Arc<str>,
}

/// An instance of one of the CHECK templates.
#[derive(Clone, Debug, PartialEq)]
pub enum CheckInstance {
    /// `checknothing`.
    CheckNothing(CheckNothingInstance),
    /// `listentry`.
    ListEntry(ListEntryInstance),
}

impl CheckInstance {
    /// The instance's fully-qualified name.
    pub fn name(&self) -> &Arc<str> {
        match self {
            CheckInstance::CheckNothing(i) => &i.name,
            CheckInstance::ListEntry(i) => &i.name,
        }
    }

    /// Its template.
    pub fn template(&self) -> Template {
        match self {
            CheckInstance::CheckNothing(_) => Template::CheckNothing,
            CheckInstance::ListEntry(_) => Template::ListEntry,
        }
    }
}

/// Instances of one REPORT template for one handler, handed over in one
/// call. Owned, so that a handler can move the batch into its queue without
/// copying.
#[derive(Clone, Debug, PartialEq)]
pub enum ReportBatch {
    /// `metric` instances.
    Metric(Vec<MetricInstance>),
    /// `logentry` instances.
    LogEntry(Vec<LogEntryInstance>),
    /// `reportnothing` instances.
    ReportNothing(Vec<ReportNothingInstance>),
}

impl ReportBatch {
    /// Its template.
    pub fn template(&self) -> Template {
        match self {
            ReportBatch::Metric(_) => Template::Metric,
            ReportBatch::LogEntry(_) => Template::LogEntry,
            ReportBatch::ReportNothing(_) => Template::ReportNothing,
        }
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        match self {
            ReportBatch::Metric(v) => v.len(),
            ReportBatch::LogEntry(v) => v.len(),
            ReportBatch::ReportNothing(v) => v.len(),
        }
    }

    /// True when the batch holds no instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
