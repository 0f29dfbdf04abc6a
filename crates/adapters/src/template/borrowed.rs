//! Report instances borrowed for one call: names from the compiled config,
//! values from the request's bag. What a handler that records in place (a
//! counter, a histogram) reads without the dispatcher copying a string.

use std::sync::Arc;

use mixer_attributes::{Timestamp, ValueRef};

use super::{
    Dimensions, LogEntryInstance, MetricInstance, ReportBatch, ReportNothingInstance, Template,
};

/// A `map<string, any>` field, borrowed: keys in key order (as
/// [`Dimensions`] iterates them), each with its value.
///
/// ```
/// use std::sync::Arc;
/// use mixer_adapters::template::DimensionsRef;
/// use mixer_attributes::ValueRef;
///
/// let keys: Vec<Arc<str>> = vec!["code".into(), "service".into()];
/// let values = [ValueRef::Int64(200), ValueRef::String("ratings")];
/// let dims = DimensionsRef::new(&keys, &values);
/// assert_eq!(dims.get("service"), Some(ValueRef::String("ratings")));
/// assert_eq!(dims.get("user"), None);
/// assert_eq!(dims.to_owned().len(), 2);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DimensionsRef<'a> {
    keys: &'a [Arc<str>],
    values: &'a [ValueRef<'a>],
}

impl<'a> DimensionsRef<'a> {
    /// No dimensions.
    pub const EMPTY: DimensionsRef<'static> = DimensionsRef {
        keys: &[],
        values: &[],
    };

    /// Pairs `keys`, which must be sorted and distinct (what a
    /// [`Dimensions`] map's keys are), with `values` in the same order.
    /// Surplus entries of the longer slice are ignored.
    pub fn new(keys: &'a [Arc<str>], values: &'a [ValueRef<'a>]) -> DimensionsRef<'a> {
        debug_assert!(keys.windows(2).all(|w| w[0] < w[1]), "keys not sorted");
        let n = keys.len().min(values.len());
        DimensionsRef {
            keys: &keys[..n],
            values: &values[..n],
        }
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        let i = self.keys.binary_search_by(|k| (**k).cmp(key)).ok()?;
        Some(self.values[i])
    }

    /// Entries in key order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&'a Arc<str>, ValueRef<'a>)> + 'a {
        self.keys.iter().zip(self.values.iter().copied())
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// An owned copy.
    pub fn to_owned(&self) -> Dimensions {
        self.iter()
            .map(|(k, v)| (k.clone(), v.to_owned()))
            .collect()
    }
}

/// A borrowed [`MetricInstance`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricRef<'a> {
    /// The instance's fully-qualified name.
    pub name: &'a Arc<str>,
    /// The measured value.
    pub value: ValueRef<'a>,
    /// Label values by label name.
    pub dimensions: DimensionsRef<'a>,
    /// The monitored resource's type (empty when not set).
    pub monitored_resource_type: &'a str,
    /// The monitored resource's dimensions.
    pub monitored_resource_dimensions: DimensionsRef<'a>,
}

impl MetricRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> MetricInstance {
        MetricInstance {
            name: self.name.clone(),
            value: self.value.to_owned(),
            dimensions: self.dimensions.to_owned(),
            monitored_resource_type: self.monitored_resource_type.to_string(),
            monitored_resource_dimensions: self.monitored_resource_dimensions.to_owned(),
        }
    }
}

/// A borrowed [`LogEntryInstance`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogEntryRef<'a> {
    /// The instance's fully-qualified name.
    pub name: &'a Arc<str>,
    /// The entry's variables.
    pub variables: DimensionsRef<'a>,
    /// When it happened; `None` when the instance does not set it.
    pub timestamp: Option<Timestamp>,
    /// The severity as configured (empty when unset).
    pub severity: &'a str,
    /// The monitored resource's type (empty when not set).
    pub monitored_resource_type: &'a str,
    /// The monitored resource's dimensions.
    pub monitored_resource_dimensions: DimensionsRef<'a>,
}

impl LogEntryRef<'_> {
    /// An owned copy.
    pub fn to_owned(&self) -> LogEntryInstance {
        LogEntryInstance {
            name: self.name.clone(),
            variables: self.variables.to_owned(),
            timestamp: self.timestamp,
            severity: self.severity.to_string(),
            monitored_resource_type: self.monitored_resource_type.to_string(),
            monitored_resource_dimensions: self.monitored_resource_dimensions.to_owned(),
        }
    }
}

/// A borrowed [`ReportNothingInstance`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReportNothingRef<'a> {
    /// The instance's fully-qualified name.
    pub name: &'a Arc<str>,
}

/// A [`ReportBatch`] borrowed for one call to
/// [`Handler::report_refs`](crate::Handler::report_refs).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReportRefs<'a> {
    /// `metric` instances.
    Metric(&'a [MetricRef<'a>]),
    /// `logentry` instances.
    LogEntry(&'a [LogEntryRef<'a>]),
    /// `reportnothing` instances.
    ReportNothing(&'a [ReportNothingRef<'a>]),
}

impl ReportRefs<'_> {
    /// Its template.
    pub fn template(&self) -> Template {
        match self {
            ReportRefs::Metric(_) => Template::Metric,
            ReportRefs::LogEntry(_) => Template::LogEntry,
            ReportRefs::ReportNothing(_) => Template::ReportNothing,
        }
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        match self {
            ReportRefs::Metric(v) => v.len(),
            ReportRefs::LogEntry(v) => v.len(),
            ReportRefs::ReportNothing(v) => v.len(),
        }
    }

    /// True when the batch holds no instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// An owned copy, what [`Handler::report`](crate::Handler::report)
    /// takes.
    pub fn to_owned(&self) -> ReportBatch {
        match self {
            ReportRefs::Metric(v) => ReportBatch::Metric(v.iter().map(|i| i.to_owned()).collect()),
            ReportRefs::LogEntry(v) => {
                ReportBatch::LogEntry(v.iter().map(|i| i.to_owned()).collect())
            }
            ReportRefs::ReportNothing(v) => ReportBatch::ReportNothing(
                v.iter()
                    .map(|i| ReportNothingInstance {
                        name: i.name.clone(),
                    })
                    .collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use mixer_attributes::Value;

    use super::*;

    #[test]
    fn a_borrowed_metric_copies_to_the_owned_instance_with_the_same_fields() {
        let name: Arc<str> = "requestcount.instance.istio-system".into();
        let keys: Vec<Arc<str>> = vec!["code".into(), "destination".into(), "source".into()];
        let values = [
            ValueRef::Int64(503),
            ValueRef::String("ratings"),
            ValueRef::String("productpage"),
        ];
        let res_keys: Vec<Arc<str>> = vec!["pod".into()];
        let res_values = [ValueRef::String("ratings-1")];
        let m = MetricRef {
            name: &name,
            value: ValueRef::Double(0.25),
            dimensions: DimensionsRef::new(&keys, &values),
            monitored_resource_type: "k8s_pod",
            monitored_resource_dimensions: DimensionsRef::new(&res_keys, &res_values),
        };
        let owned = m.to_owned();
        assert_eq!(owned.name, name);
        assert_eq!(owned.value, Value::Double(0.25));
        assert_eq!(owned.dimensions["code"], Value::Int64(503));
        assert_eq!(
            owned.dimensions["source"],
            Value::String("productpage".into())
        );
        assert_eq!(owned.dimensions.len(), 3);
        assert_eq!(owned.monitored_resource_type, "k8s_pod");
        assert_eq!(
            owned.monitored_resource_dimensions["pod"],
            Value::String("ratings-1".into())
        );
        // Every key is found by the binary search, in order.
        let dims = DimensionsRef::new(&keys, &values);
        for (k, v) in dims.iter() {
            assert_eq!(dims.get(k), Some(v));
        }
        assert_eq!(dims.get("aaa"), None);
        assert_eq!(dims.get("zzz"), None);
    }

    #[test]
    fn a_borrowed_batch_copies_every_instance_in_order() {
        let (a, b): (Arc<str>, Arc<str>) = ("a.instance.ns".into(), "b.instance.ns".into());
        let keys: Vec<Arc<str>> = vec!["path".into()];
        let values = [ValueRef::String("/x")];
        let entries = [
            LogEntryRef {
                name: &a,
                variables: DimensionsRef::new(&keys, &values),
                timestamp: None,
                severity: "Warning",
                monitored_resource_type: "",
                monitored_resource_dimensions: DimensionsRef::EMPTY,
            },
            LogEntryRef {
                name: &b,
                variables: DimensionsRef::EMPTY,
                timestamp: Timestamp::new(5, 0),
                severity: "",
                monitored_resource_type: "",
                monitored_resource_dimensions: DimensionsRef::EMPTY,
            },
        ];
        let refs = ReportRefs::LogEntry(&entries);
        assert_eq!(refs.len(), 2);
        assert_eq!(refs.template(), Template::LogEntry);
        let ReportBatch::LogEntry(owned) = refs.to_owned() else {
            panic!("not a log batch");
        };
        assert_eq!(owned[0].name, a);
        assert_eq!(owned[0].severity, "Warning");
        assert_eq!(owned[0].variables["path"], Value::String("/x".into()));
        assert_eq!(owned[1].name, b);
        assert_eq!(owned[1].timestamp, Timestamp::new(5, 0));
        assert!(owned[1].variables.is_empty());
    }

    #[test]
    fn mismatched_slices_pair_only_what_both_hold() {
        let keys: Vec<Arc<str>> = vec!["a".into(), "b".into()];
        let values = [ValueRef::Bool(true)];
        let dims = DimensionsRef::new(&keys, &values);
        assert_eq!(dims.len(), 1);
        assert_eq!(dims.get("b"), None);
    }
}
