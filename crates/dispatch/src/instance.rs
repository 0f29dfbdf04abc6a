//! Instance builders: a template's fields as compiled expressions, turned
//! into the typed instances handlers receive by evaluating them on a bag.

use std::collections::BTreeMap;
use std::sync::Arc;

use mixer_adapters::Template;
use mixer_adapters::template::{
    CheckInstance, CheckNothingInstance, Dimensions, DimensionsRef, ListEntryInstance, LogEntryRef,
    MetricRef, QuotaInstance, ReportNothingRef,
};
use mixer_attributes::{Bag, ReferencedAttributes, Value, ValueRef};
use mixer_config::expr::{EvalError, Evaluated, Expression};
use mixer_config::model::{FieldValue, Instance};

use crate::error::Problem;

/// Why an instance could not be built for a request: the field whose
/// expression failed, and how.
#[derive(Debug)]
pub(crate) struct FieldFailure {
    pub(crate) field: &'static str,
    pub(crate) error: EvalError,
}

/// A `map<string, any>` field: keys in key order (from the config's map),
/// kept apart from the expressions so that borrowed instances can point at
/// them as one slice.
#[derive(Debug, Default)]
struct Dims {
    keys: Vec<Arc<str>>,
    exprs: Vec<Expression>,
}

#[derive(Debug)]
enum Builder {
    CheckNothing,
    ListEntry {
        value: Expression,
    },
    Quota {
        dimensions: Dims,
    },
    Metric {
        value: Expression,
        dimensions: Dims,
        resource_type: Option<Expression>,
        resource_dimensions: Dims,
    },
    LogEntry {
        variables: Dims,
        timestamp: Option<Expression>,
        severity: Option<Expression>,
        resource_type: Option<Expression>,
        resource_dimensions: Dims,
    },
    ReportNothing,
}

/// A config instance compiled for one template.
#[derive(Debug)]
pub(crate) struct CompiledInstance {
    pub(crate) name: Arc<str>,
    pub(crate) template: Template,
    builder: Builder,
}

struct Fields {
    name: String,
    fields: BTreeMap<String, FieldValue>,
    problems: Vec<Problem>,
    origin: String,
}

impl Fields {
    fn problem(&mut self, field: &str, message: String) {
        self.problems.push(Problem {
            origin: Some(self.origin.clone()),
            subject: Some(format!("instance '{}'", self.name)),
            field: Some(format!("params.{field}")),
            message,
        });
    }

    fn expr(&mut self, field: &str) -> Option<Expression> {
        match self.fields.remove(field) {
            None => None,
            Some(FieldValue::Expr(e)) => Some(e),
            Some(FieldValue::Map(_)) => {
                self.problem(field, "expected an expression, found a map".into());
                None
            }
        }
    }

    fn required(&mut self, field: &str) -> Option<Expression> {
        let e = self.expr(field);
        if e.is_none()
            && !self
                .problems
                .iter()
                .any(|p| p.field.as_deref() == Some(field))
        {
            self.problem(field, "missing required field".into());
        }
        e
    }

    fn map(&mut self, field: &str) -> Dims {
        match self.fields.remove(field) {
            None => Dims::default(),
            Some(FieldValue::Map(m)) => {
                let (keys, exprs) = m.into_iter().map(|(k, e)| (Arc::from(k), e)).unzip();
                Dims { keys, exprs }
            }
            Some(FieldValue::Expr(_)) => {
                self.problem(field, "expected a map of expressions".into());
                Dims::default()
            }
        }
    }
}

impl CompiledInstance {
    /// Takes the compiled expressions of a config instance.
    pub(crate) fn compile(instance: Instance) -> Result<CompiledInstance, Vec<Problem>> {
        let name = instance.name.to_string();
        let mut f = Fields {
            name: name.clone(),
            fields: instance.fields,
            problems: Vec::new(),
            origin: instance.origin.to_string(),
        };
        let Some(template) = Template::from_name(&instance.template) else {
            f.problem(
                "template",
                format!("unknown template '{}'", instance.template),
            );
            return Err(f.problems);
        };
        let builder = match template {
            Template::CheckNothing => Builder::CheckNothing,
            Template::ReportNothing => Builder::ReportNothing,
            Template::ListEntry => match f.required("value") {
                Some(value) => Builder::ListEntry { value },
                None => Builder::CheckNothing,
            },
            Template::Quota => Builder::Quota {
                dimensions: f.map("dimensions"),
            },
            Template::Metric => {
                let value = f.required("value");
                Builder::Metric {
                    dimensions: f.map("dimensions"),
                    resource_type: f.expr("monitoredResourceType"),
                    resource_dimensions: f.map("monitoredResourceDimensions"),
                    value: match value {
                        Some(v) => v,
                        None => return Err(f.problems),
                    },
                }
            }
            Template::LogEntry => Builder::LogEntry {
                variables: f.map("variables"),
                timestamp: f.expr("timestamp"),
                severity: f.expr("severity"),
                resource_type: f.expr("monitoredResourceType"),
                resource_dimensions: f.map("monitoredResourceDimensions"),
            },
        };
        let leftover: Vec<String> = f.fields.keys().cloned().collect();
        for field in leftover {
            f.problem(
                &field,
                format!("template '{}' has no such field", template.name()),
            );
        }
        if !f.problems.is_empty() {
            return Err(f.problems);
        }
        Ok(CompiledInstance {
            name: Arc::from(name),
            template,
            builder,
        })
    }

    /// Builds a CHECK instance (`None` if the template is not a CHECK one).
    pub(crate) fn check<B: Bag + ?Sized>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
    ) -> Result<CheckInstance, FieldFailure> {
        let name = self.name.clone();
        Ok(match &self.builder {
            Builder::ListEntry { value } => CheckInstance::ListEntry(ListEntryInstance {
                name,
                value: eval(value, "value", bag, refs)?,
            }),
            _ => CheckInstance::CheckNothing(CheckNothingInstance { name }),
        })
    }

    /// Builds a QUOTA instance.
    pub(crate) fn quota<B: Bag + ?Sized>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
    ) -> Result<QuotaInstance, FieldFailure> {
        let dimensions = match &self.builder {
            Builder::Quota { dimensions } => dims(dimensions, "dimensions", bag, refs)?,
            _ => Dimensions::new(),
        };
        Ok(QuotaInstance {
            name: self.name.clone(),
            dimensions,
        })
    }

    /// Evaluates a REPORT instance's fields onto `out`, in the order
    /// [`report_ref`](Self::report_ref) reads them back. On failure `out` is
    /// left as it was.
    pub(crate) fn eval_report<'a, B: Bag + ?Sized>(
        &'a self,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
        out: &mut Vec<Option<Evaluated<'a>>>,
    ) -> Result<(), FieldFailure> {
        let start = out.len();
        let r = self.push_report_fields(bag, refs, out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn push_report_fields<'a, B: Bag + ?Sized>(
        &'a self,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
        out: &mut Vec<Option<Evaluated<'a>>>,
    ) -> Result<(), FieldFailure> {
        match &self.builder {
            Builder::Metric {
                value,
                dimensions,
                resource_type,
                resource_dimensions,
            } => {
                out.push(Some(borrowed(value, "value", bag, refs)?));
                push_dims(dimensions, "dimensions", bag, refs, out)?;
                out.push(text(resource_type, "monitoredResourceType", bag, refs)?);
                push_dims(
                    resource_dimensions,
                    "monitoredResourceDimensions",
                    bag,
                    refs,
                    out,
                )?;
            }
            Builder::LogEntry {
                variables,
                timestamp,
                severity,
                resource_type,
                resource_dimensions,
            } => {
                push_dims(variables, "variables", bag, refs, out)?;
                out.push(match timestamp {
                    Some(e) => Some(borrowed(e, "timestamp", bag, refs)?),
                    None => None,
                });
                out.push(text(severity, "severity", bag, refs)?);
                out.push(text(resource_type, "monitoredResourceType", bag, refs)?);
                push_dims(
                    resource_dimensions,
                    "monitoredResourceDimensions",
                    bag,
                    refs,
                    out,
                )?;
            }
            _ => {}
        }
        Ok(())
    }

    /// The REPORT instance whose fields [`eval_report`](Self::eval_report)
    /// evaluated, `values` starting at its first (an absent optional field
    /// reads as an empty string).
    pub(crate) fn report_ref<'a>(&'a self, values: &'a [ValueRef<'a>]) -> ReportRef<'a> {
        let name = &self.name;
        let mut at = 0;
        let mut next = |n: usize| {
            let v = values.get(at..at + n).unwrap_or(&[]);
            at += n;
            v
        };
        let dims_ref = |d: &'a Dims, v: &'a [ValueRef<'a>]| DimensionsRef::new(&d.keys, v);
        let as_text = |v: &[ValueRef<'a>]| match v.first() {
            Some(ValueRef::String(s)) => *s,
            _ => "",
        };
        match &self.builder {
            Builder::Metric {
                dimensions,
                resource_dimensions,
                ..
            } => {
                let value = next(1).first().copied().unwrap_or(ValueRef::String(""));
                let dimensions = dims_ref(dimensions, next(dimensions.keys.len()));
                let resource_type = as_text(next(1));
                let resource_dimensions =
                    dims_ref(resource_dimensions, next(resource_dimensions.keys.len()));
                ReportRef::Metric(MetricRef {
                    name,
                    value,
                    dimensions,
                    monitored_resource_type: resource_type,
                    monitored_resource_dimensions: resource_dimensions,
                })
            }
            Builder::LogEntry {
                variables,
                resource_dimensions,
                ..
            } => {
                let variables = dims_ref(variables, next(variables.keys.len()));
                let timestamp = match next(1).first() {
                    Some(ValueRef::Timestamp(t)) => Some(*t),
                    _ => None,
                };
                let severity = as_text(next(1));
                let resource_type = as_text(next(1));
                let resource_dimensions =
                    dims_ref(resource_dimensions, next(resource_dimensions.keys.len()));
                ReportRef::LogEntry(LogEntryRef {
                    name,
                    variables,
                    timestamp,
                    severity,
                    monitored_resource_type: resource_type,
                    monitored_resource_dimensions: resource_dimensions,
                })
            }
            _ => ReportRef::ReportNothing(ReportNothingRef { name }),
        }
    }
}

/// One built REPORT instance, borrowed.
pub(crate) enum ReportRef<'a> {
    Metric(MetricRef<'a>),
    LogEntry(LogEntryRef<'a>),
    ReportNothing(ReportNothingRef<'a>),
}

fn borrowed<'a, B: Bag + ?Sized>(
    e: &'a Expression,
    field: &'static str,
    bag: &'a B,
    refs: &mut ReferencedAttributes,
) -> Result<Evaluated<'a>, FieldFailure> {
    e.eval_borrowed(bag, refs)
        .map_err(|error| FieldFailure { field, error })
}

/// A string field: a STRING as it is, any other type as its text.
fn text<'a, B: Bag + ?Sized>(
    e: &'a Option<Expression>,
    field: &'static str,
    bag: &'a B,
    refs: &mut ReferencedAttributes,
) -> Result<Option<Evaluated<'a>>, FieldFailure> {
    Ok(match e {
        None => None,
        Some(e) => Some(borrowed(e, field, bag, refs)?.into_text()),
    })
}

fn push_dims<'a, B: Bag + ?Sized>(
    d: &'a Dims,
    field: &'static str,
    bag: &'a B,
    refs: &mut ReferencedAttributes,
    out: &mut Vec<Option<Evaluated<'a>>>,
) -> Result<(), FieldFailure> {
    for e in &d.exprs {
        out.push(Some(borrowed(e, field, bag, refs)?));
    }
    Ok(())
}

fn eval<B: Bag + ?Sized>(
    e: &Expression,
    field: &'static str,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<Value, FieldFailure> {
    e.eval(bag, refs)
        .map_err(|error| FieldFailure { field, error })
}

fn dims<B: Bag + ?Sized>(
    d: &Dims,
    field: &'static str,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<Dimensions, FieldFailure> {
    let mut out = Dimensions::new();
    for (k, e) in d.keys.iter().zip(&d.exprs) {
        out.insert(k.clone(), eval(e, field, bag, refs)?);
    }
    Ok(out)
}
