//! The dispatcher's own metrics, as plain samples a host renders in its
//! exposition format of choice (the server crate: Prometheus text).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::cache::CheckCache;
use crate::slot::{CallStats, HandlerSlot};

/// Whether a sample only goes up or can go down.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic since the dispatcher (or the handler) was created.
    Counter,
    /// A current value.
    Gauge,
}

/// One metric value with its labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// The metric name (`mixer_dispatch_checks_total`).
    pub name: Cow<'static, str>,
    /// One line saying what it measures.
    pub help: Cow<'static, str>,
    /// Counter or gauge.
    pub kind: MetricKind,
    /// Label names and values.
    pub labels: Vec<(&'static str, String)>,
    /// The value.
    pub value: f64,
}

fn sample(
    name: &'static str,
    help: &'static str,
    kind: MetricKind,
    labels: Vec<(&'static str, String)>,
    value: u64,
) -> Sample {
    Sample {
        name: Cow::Borrowed(name),
        help: Cow::Borrowed(help),
        kind,
        labels,
        value: value as f64,
    }
}

/// Most rules with a match-error series of their own.
pub(crate) const MAX_MATCH_ERROR_RULES: usize = 1024;
const OTHER_RULES: &str = "(other rules)";

/// Outcome counters of one kind of request.
#[derive(Debug, Default)]
pub(crate) struct Outcomes {
    pub(crate) ok: AtomicU64,
    pub(crate) denied: AtomicU64,
    pub(crate) error: AtomicU64,
}

impl Outcomes {
    pub(crate) fn count(&self, code: i32, from_error: bool) {
        let c = if code == mixer_proto::code::OK {
            &self.ok
        } else if from_error {
            &self.error
        } else {
            &self.denied
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters of the dispatcher as a whole.
#[derive(Debug, Default)]
pub(crate) struct Metrics {
    pub(crate) checks: Outcomes,
    pub(crate) quotas: Outcomes,
    pub(crate) reports: AtomicU64,
    pub(crate) report_instances_queued: AtomicU64,
    pub(crate) report_instances_dropped: AtomicU64,
    pub(crate) instances_skipped: AtomicU64,
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
    pub(crate) cache_misses: AtomicU64,
    pub(crate) match_errors: Mutex<BTreeMap<Arc<str>, u64>>,
    pub(crate) unhandled_quotas: AtomicU64,
}

impl Metrics {
    /// Counts a match error of `rule`; true the first time for that rule
    /// (the caller then logs it).
    pub(crate) fn match_error(&self, rule: &Arc<str>) -> bool {
        let mut m = self.match_errors.lock();
        if let Some(n) = m.get_mut(rule) {
            *n += 1;
            return false;
        }
        // Rules come and go with reloads: past the bound, new ones share
        // one series rather than growing the map for ever.
        let key = if m.len() < MAX_MATCH_ERROR_RULES {
            rule.clone()
        } else {
            Arc::from(OTHER_RULES)
        };
        let n = m.entry(key).or_insert(0);
        *n += 1;
        *n == 1
    }

    pub(crate) fn samples(
        &self,
        handlers: &[Arc<HandlerSlot>],
        cache: Option<&CheckCache>,
    ) -> Vec<Sample> {
        let (hits_ok, hits_denied) = cache.map_or((0, 0), CheckCache::hits);
        use MetricKind::{Counter, Gauge};
        let l = |k: &'static str, v: &str| vec![(k, v.to_string())];
        let mut out = Vec::new();
        for (kind, o, help) in [
            ("check", &self.checks, "Check requests by outcome."),
            ("quota", &self.quotas, "Quota requests by outcome."),
        ] {
            let name = if kind == "check" {
                "mixer_dispatch_checks_total"
            } else {
                "mixer_dispatch_quotas_total"
            };
            // Cache hits are checks too, counted by the cache.
            let (ok, denied) = if kind == "check" {
                (hits_ok, hits_denied)
            } else {
                (0, 0)
            };
            for (outcome, v, extra) in [
                ("ok", &o.ok, ok),
                ("denied", &o.denied, denied),
                ("error", &o.error, 0),
            ] {
                out.push(sample(
                    name,
                    help,
                    Counter,
                    l("outcome", outcome),
                    v.load(Ordering::Relaxed) + extra,
                ));
            }
        }
        let plain: [(&'static str, &'static str, &AtomicU64); 7] = [
            (
                "mixer_dispatch_reports_total",
                "Report calls (each may carry many attribute sets).",
                &self.reports,
            ),
            (
                "mixer_dispatch_report_instances_queued_total",
                "Report instances handed to handlers (their queues, or the handlers on the reporting thread).",
                &self.report_instances_queued,
            ),
            (
                "mixer_dispatch_report_instances_dropped_total",
                "Report instances dropped because a queue was full (the dispatcher's for a handler, or the handler's own).",
                &self.report_instances_dropped,
            ),
            (
                "mixer_dispatch_instances_skipped_total",
                "Instances not built because a field expression failed.",
                &self.instances_skipped,
            ),
            (
                "mixer_dispatch_unhandled_quotas_total",
                "Quota requests no rule handled.",
                &self.unhandled_quotas,
            ),
            (
                "mixer_dispatch_check_cache_misses_total",
                "Checks the check cache could not answer.",
                &self.cache_misses,
            ),
            (
                "mixer_dispatch_config_reloads_total",
                "Configurations applied.",
                &self.reloads_ok,
            ),
        ];
        for (name, help, v) in plain {
            out.push(sample(
                name,
                help,
                Counter,
                Vec::new(),
                v.load(Ordering::Relaxed),
            ));
        }
        out.push(sample(
            "mixer_dispatch_config_reload_failures_total",
            "Configurations rejected (the running one kept).",
            Counter,
            Vec::new(),
            self.reloads_failed.load(Ordering::Relaxed),
        ));
        if let Some(cache) = cache {
            out.push(sample(
                "mixer_dispatch_check_cache_hits_total",
                "Checks answered from the check cache.",
                Counter,
                Vec::new(),
                hits_ok + hits_denied,
            ));
            out.push(sample(
                "mixer_dispatch_check_cache_entries",
                "Entries in the check cache.",
                Gauge,
                Vec::new(),
                cache.len() as u64,
            ));
        }
        for (rule, n) in self.match_errors.lock().iter() {
            out.push(sample(
                "mixer_dispatch_match_errors_total",
                "Rule conditions that failed to evaluate (counted as no match unless failing closed).",
                Counter,
                l("rule", rule),
                *n,
            ));
        }
        for h in handlers {
            let s = &h.stats;
            for (variety, c) in [
                ("check", &s.check),
                ("quota", &s.quota),
                ("report", &s.report),
            ] {
                let calls = c.calls.load(Ordering::Relaxed);
                if calls == 0 {
                    continue;
                }
                out.extend(call_samples(&h.name, variety, c));
            }
            let labels = l("handler", &h.name);
            out.push(sample(
                "mixer_dispatch_handler_dropped_batches_total",
                "Report batches dropped, in whole or in part, because the handler's queue (or its own) was full.",
                Counter,
                labels.clone(),
                s.dropped_batches.load(Ordering::Relaxed),
            ));
            out.push(sample(
                "mixer_dispatch_handler_dropped_instances_total",
                "Report instances dropped because the handler's queue (or its own) was full.",
                Counter,
                labels.clone(),
                s.dropped_instances.load(Ordering::Relaxed),
            ));
            out.push(sample(
                "mixer_dispatch_handler_panics_total",
                "Calls on which the handler panicked.",
                Counter,
                labels.clone(),
                s.panics.load(Ordering::Relaxed),
            ));
            for c in h.handler.counters() {
                out.push(Sample {
                    name: Cow::Owned(format!("mixer_handler_{}", c.name)),
                    help: Cow::Borrowed(c.help),
                    kind: Counter,
                    labels: labels.clone(),
                    value: c.value as f64,
                });
            }
        }
        out
    }
}

fn call_samples(handler: &str, variety: &'static str, c: &CallStats) -> [Sample; 4] {
    let labels = vec![
        ("handler", handler.to_string()),
        ("variety", variety.to_string()),
    ];
    [
        sample(
            "mixer_dispatch_handler_calls_total",
            "Calls dispatched to the handler.",
            MetricKind::Counter,
            labels.clone(),
            c.calls.load(Ordering::Relaxed),
        ),
        sample(
            "mixer_dispatch_handler_errors_total",
            "Handler calls that failed (errors, timeouts, panics).",
            MetricKind::Counter,
            labels.clone(),
            c.errors.load(Ordering::Relaxed),
        ),
        sample(
            "mixer_dispatch_handler_waits_total",
            "Handler calls that waited (pending answers, report batches): the ones timed.",
            MetricKind::Counter,
            labels.clone(),
            c.timed.load(Ordering::Relaxed),
        ),
        Sample {
            name: Cow::Borrowed("mixer_dispatch_handler_wait_seconds_sum"),
            help: Cow::Borrowed(
                "Time spent in handler calls that waited, in seconds (divide by waits for the mean).",
            ),
            kind: MetricKind::Counter,
            labels,
            value: c.nanos.load(Ordering::Relaxed) as f64 / 1e9,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn match_error_series_are_bounded() {
        let m = Metrics::default();
        let r: Arc<str> = Arc::from("r.rule.ns");
        assert!(m.match_error(&r));
        assert!(!m.match_error(&r), "logged once per rule");
        for i in 0..2 * MAX_MATCH_ERROR_RULES {
            m.match_error(&Arc::from(format!("r{i}.rule.ns")));
        }
        let series = m.match_errors.lock();
        assert_eq!(series.len(), MAX_MATCH_ERROR_RULES + 1);
        assert_eq!(series[&*r], 2);
        assert_eq!(series[OTHER_RULES], MAX_MATCH_ERROR_RULES as u64 + 1);
    }
}
