//! The prometheus handler: records metric instances into its families and
//! keeps them on the shared `/metrics` endpoint.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use mixer_attributes::{Value, ValueRef};
use parking_lot::Mutex;

use crate::template::{
    Dimensions, DimensionsRef, MetricInstance, ReportBatch, ReportRefs, Template,
};
use crate::{Answer, BuildEnv, Clock, Counter, Error, Handler};

use super::endpoint::{self, Registration};
use super::params::{MetricDef, PrometheusParams, sanitizes_to};
use super::series::{Family, Kind, LabelValue, RecordError};
use crate::decimal::push_signed;

struct Entry {
    family: Arc<Family>,
    raw_labels: Vec<String>,
}

/// A built prometheus handler.
pub struct PrometheusHandler {
    by_instance: HashMap<Arc<str>, Entry>,
    clock: Arc<dyn Clock>,
    start: Instant,
    registration: Mutex<Option<Registration>>,
    address: SocketAddr,
    expiry_task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rejected_metrics: u64,
    dropped: AtomicU64,
    invalid: AtomicU64,
    unknown: AtomicU64,
    expired: Arc<AtomicU64>,
}

thread_local! {
    // Scratch for series keys, so that recording into an existing series
    // allocates nothing.
    static KEY: RefCell<String> = const { RefCell::new(String::new()) };
}

impl PrometheusHandler {
    /// Builds the handler: binds (or joins) the endpoint and starts the
    /// expiry task on the environment's runtime.
    pub fn build(p: PrometheusParams, env: &BuildEnv) -> Result<PrometheusHandler, Error> {
        for r in &p.rejected {
            tracing::warn!(
                handler = %env.handler_name(),
                field = %r.path,
                "prometheus: metric rejected: {}",
                r.message
            );
        }
        let mut by_instance = HashMap::new();
        let mut families = Vec::new();
        for MetricDef {
            instance_name,
            exposed_name,
            help,
            kind,
            raw_labels,
            labels,
            bounds,
        } in p.metrics
        {
            let family = Arc::new(Family::new(
                exposed_name,
                help,
                kind,
                labels,
                bounds,
                p.max_series,
            ));
            families.push(family.clone());
            by_instance.insert(Arc::from(instance_name), Entry { family, raw_labels });
        }
        let families: Arc<[Arc<Family>]> = families.into();
        let registration =
            endpoint::register(env.runtime(), p.address, families.clone()).map_err(|e| {
                Error::Build(format!("prometheus: cannot listen on {}: {e}", p.address))
            })?;
        let clock = env.clock().clone();
        let start = clock.now();
        let expired = Arc::new(AtomicU64::new(0));
        let expiry_task = p.expiry.map(|(expiry, every)| {
            let (clock, expired) = (clock.clone(), expired.clone());
            env.runtime().spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let now = clock.now().saturating_duration_since(start);
                    let Some(cutoff) = now.checked_sub(expiry) else {
                        continue;
                    };
                    let cutoff = cutoff.as_millis() as u64;
                    let n: usize = families.iter().map(|f| f.expire(cutoff)).sum();
                    expired.fetch_add(n as u64, Ordering::Relaxed);
                }
            })
        });
        Ok(PrometheusHandler {
            by_instance,
            clock,
            start,
            address: registration.local_addr(),
            registration: Mutex::new(Some(registration)),
            expiry_task: Mutex::new(expiry_task),
            rejected_metrics: p.rejected.len() as u64,
            dropped: AtomicU64::new(0),
            invalid: AtomicU64::new(0),
            unknown: AtomicU64::new(0),
            expired,
        })
    }

    /// The address `/metrics` is served on (the bound port when 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.address
    }

    /// Records one instance.
    pub fn record(&self, inst: &MetricInstance) {
        self.record_at(
            &inst.name,
            inst.value.as_ref(),
            &inst.dimensions,
            self.now_ms(),
        );
    }

    /// Milliseconds since the handler started, on its clock: what idle
    /// series expire by.
    fn now_ms(&self) -> u64 {
        self.clock
            .now()
            .saturating_duration_since(self.start)
            .as_millis() as u64
    }

    /// Records one instance, owned or borrowed (the one recording path of
    /// both `report` and `report_refs`), as seen at `now_ms` (read once per
    /// batch: a clock read cost as much as a recording).
    fn record_at<'a>(&self, name: &str, value: ValueRef<'_>, dims: impl Dims<'a>, now_ms: u64) {
        let Some(entry) = self.by_instance.get(name) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return;
        };
        // A counter only goes up, and NaN would poison a series for good.
        let value = as_f64(value)
            .filter(|v| !v.is_nan() && (entry.family.kind != Kind::Counter || *v >= 0.0));
        let Some(value) = value else {
            self.invalid.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let labels = entry
            .raw_labels
            .iter()
            .zip(&entry.family.label_names)
            .map(|(raw, exposed)| Label(lookup(&dims, raw, exposed)));
        let r = KEY.with(|k| match k.try_borrow_mut() {
            Ok(mut key) => entry.family.record(labels, value, now_ms, &mut key),
            Err(_) => entry
                .family
                .record(labels, value, now_ms, &mut String::new()),
        });
        if let Err(RecordError::TooManySeries) = r {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// An instance's dimensions, owned or borrowed: what recording reads, so
/// that both report paths share it.
trait Dims<'a> {
    /// The value of `key`.
    fn get(&self, key: &str) -> Option<ValueRef<'a>>;
    /// The value of the first dimension, in key order, whose name passes
    /// `pred`.
    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<ValueRef<'a>>;
}

impl<'a> Dims<'a> for &'a Dimensions {
    fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        Dimensions::get(self, key).map(Value::as_ref)
    }
    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<ValueRef<'a>> {
        self.iter().find(|(k, _)| pred(k)).map(|(_, v)| v.as_ref())
    }
}

impl<'a> Dims<'a> for DimensionsRef<'a> {
    fn get(&self, key: &str) -> Option<ValueRef<'a>> {
        DimensionsRef::get(self, key)
    }
    fn find(&self, pred: impl Fn(&str) -> bool) -> Option<ValueRef<'a>> {
        self.iter().find(|(k, _)| pred(k)).map(|(_, v)| v)
    }
}

/// The dimension for a label: by its configured name, else by any
/// dimension whose name sanitises to the exposed label name.
fn lookup<'a>(dims: &impl Dims<'a>, raw: &str, exposed: &str) -> Option<ValueRef<'a>> {
    dims.get(raw)
        .or_else(|| dims.find(|k| sanitizes_to(k, exposed)))
}

/// A label value as text; a missing dimension is the empty value, which
/// Prometheus reads as the label being absent.
struct Label<'a>(Option<ValueRef<'a>>);

impl LabelValue for Label<'_> {
    fn push_to(&self, out: &mut String) {
        match self.0 {
            // Most label values are strings or integers (a response code):
            // written without the formatting machinery.
            Some(ValueRef::String(s)) => out.push_str(s),
            Some(ValueRef::Int64(n)) => push_signed(out, n),
            Some(v) => {
                let _ = write!(out, "{v}");
            }
            None => {}
        }
    }
}

/// A metric value as a number: integers and doubles as they are, durations
/// in seconds, numeric strings parsed.
pub(crate) fn as_f64(v: ValueRef<'_>) -> Option<f64> {
    match v {
        ValueRef::Int64(i) => Some(i as f64),
        ValueRef::Double(d) => Some(d),
        ValueRef::Duration(d) => Some(d.as_secs_f64()),
        ValueRef::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn unsupported(template: Template) -> Error {
    Error::Unsupported {
        adapter: super::NAME.into(),
        what: format!("template {}", template.name()),
    }
}

impl Handler for PrometheusHandler {
    /// Cheap and never blocks: recording is in memory (a map lookup and an atomic add per instance).
    fn report_inline(&self) -> bool {
        true
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        let ReportBatch::Metric(instances) = batch else {
            return Err(unsupported(batch.template()));
        };
        let now_ms = self.now_ms();
        for i in &instances {
            self.record_at(&i.name, i.value.as_ref(), &i.dimensions, now_ms);
        }
        Ok(())
    }

    /// Records in place: no string is copied, and an instance whose series
    /// exists allocates nothing.
    fn report_refs(&self, batch: ReportRefs<'_>) -> Result<(), Error> {
        let ReportRefs::Metric(instances) = batch else {
            return Err(unsupported(batch.template()));
        };
        let now_ms = self.now_ms();
        for i in instances {
            self.record_at(i.name, i.value, i.dimensions, now_ms);
        }
        Ok(())
    }

    fn counters(&self) -> Vec<Counter> {
        vec![
            Counter {
                name: "dropped",
                help: "instances not recorded because their metric held maxSeriesPerMetric series",
                value: self.dropped.load(Ordering::Relaxed),
            },
            Counter {
                name: "invalid_values",
                help: "instances whose value was not a number, duration or numeric string \
                       (or was NaN, or negative for a counter)",
                value: self.invalid.load(Ordering::Relaxed),
            },
            Counter {
                name: "unknown_instances",
                help: "instances of no configured metric",
                value: self.unknown.load(Ordering::Relaxed),
            },
            Counter {
                name: "expired_series",
                help: "series removed after metricsExpiryDuration without an update",
                value: self.expired.load(Ordering::Relaxed),
            },
            Counter {
                name: "rejected_metrics",
                help: "metric definitions rejected at validation (the others work)",
                value: self.rejected_metrics,
            },
        ]
    }

    fn close(&self) -> Answer<'_, ()> {
        if let Some(t) = self.expiry_task.lock().take() {
            t.abort();
        }
        self.registration.lock().take();
        Answer::ok(())
    }
}

impl Drop for PrometheusHandler {
    fn drop(&mut self) {
        if let Some(t) = self.expiry_task.get_mut().take() {
            t.abort();
        }
    }
}

#[cfg(test)]
impl PrometheusHandler {
    pub(crate) fn by_instance_family(&self, name: &str) -> Arc<Family> {
        self.by_instance[name].family.clone()
    }
}
