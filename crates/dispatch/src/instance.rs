//! Instance builders: a template's fields as compiled expressions, turned
//! into the typed instances handlers receive by evaluating them on a bag.

use std::collections::BTreeMap;
use std::sync::Arc;

use mixer_adapters::Template;
use mixer_adapters::template::{
    CheckInstance, CheckNothingInstance, Dimensions, ListEntryInstance, LogEntryInstance,
    MetricInstance, QuotaInstance, ReportNothingInstance,
};
use mixer_attributes::{Bag, ReferencedAttributes, Value};
use mixer_config::expr::{EvalError, Expression};
use mixer_config::model::{FieldValue, Instance};

use crate::error::Problem;

/// Why an instance could not be built for a request: the field whose
/// expression failed, and how.
#[derive(Debug)]
pub(crate) struct FieldFailure {
    pub(crate) field: &'static str,
    pub(crate) error: EvalError,
}

type Dims = Vec<(Arc<str>, Expression)>;

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
            None => Vec::new(),
            Some(FieldValue::Map(m)) => m.into_iter().map(|(k, e)| (Arc::from(k), e)).collect(),
            Some(FieldValue::Expr(_)) => {
                self.problem(field, "expected a map of expressions".into());
                Vec::new()
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

    /// Builds a REPORT instance and appends it to the matching batch.
    pub(crate) fn report<B: Bag + ?Sized>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
    ) -> Result<ReportInstance, FieldFailure> {
        let name = self.name.clone();
        Ok(match &self.builder {
            Builder::Metric {
                value,
                dimensions,
                resource_type,
                resource_dimensions,
            } => {
                let value = eval(value, "value", bag, refs)?;
                let dimensions = dims(dimensions, "dimensions", bag, refs)?;
                let (resource_type, resource_dimensions) =
                    resource(resource_type, resource_dimensions, bag, refs)?;
                ReportInstance::Metric(MetricInstance {
                    name,
                    value,
                    dimensions,
                    monitored_resource_type: resource_type,
                    monitored_resource_dimensions: resource_dimensions,
                })
            }
            Builder::LogEntry {
                variables,
                timestamp,
                severity,
                resource_type,
                resource_dimensions,
            } => {
                let variables = dims(variables, "variables", bag, refs)?;
                let timestamp = match timestamp {
                    Some(e) => match eval(e, "timestamp", bag, refs)? {
                        Value::Timestamp(t) => Some(t),
                        _ => None,
                    },
                    None => None,
                };
                let severity = string(severity, "severity", bag, refs)?;
                let (resource_type, resource_dimensions) =
                    resource(resource_type, resource_dimensions, bag, refs)?;
                ReportInstance::LogEntry(LogEntryInstance {
                    name,
                    variables,
                    timestamp,
                    severity,
                    monitored_resource_type: resource_type,
                    monitored_resource_dimensions: resource_dimensions,
                })
            }
            _ => ReportInstance::ReportNothing(ReportNothingInstance { name }),
        })
    }
}

/// One built REPORT instance, before batching.
pub(crate) enum ReportInstance {
    Metric(MetricInstance),
    LogEntry(LogEntryInstance),
    ReportNothing(ReportNothingInstance),
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

/// The monitored resource fields that metric and logentry share.
fn resource<B: Bag + ?Sized>(
    resource_type: &Option<Expression>,
    resource_dimensions: &Dims,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<(String, Dimensions), FieldFailure> {
    Ok((
        string(resource_type, "monitoredResourceType", bag, refs)?,
        dims(
            resource_dimensions,
            "monitoredResourceDimensions",
            bag,
            refs,
        )?,
    ))
}

fn string<B: Bag + ?Sized>(
    e: &Option<Expression>,
    field: &'static str,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<String, FieldFailure> {
    Ok(match e {
        None => String::new(),
        Some(e) => match eval(e, field, bag, refs)? {
            Value::String(s) => s,
            other => other.as_ref().to_string(),
        },
    })
}

fn dims<B: Bag + ?Sized>(
    d: &Dims,
    field: &'static str,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<Dimensions, FieldFailure> {
    let mut out = Dimensions::new();
    for (k, e) in d {
        out.insert(k.clone(), eval(e, field, bag, refs)?);
    }
    Ok(out)
}
