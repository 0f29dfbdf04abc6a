//! Report: match each bag's rules, evaluate the REPORT instances, and hand
//! them to their handlers batched per (handler, template) without waiting.
//!
//! Instances are evaluated borrowed: string values stay in the bags and the
//! compiled config until every handler has had its batch. A handler that
//! takes reports on the reporting thread ([`Handler::report_inline`]) reads
//! them in place through [`Handler::report_refs`]; only a batch going to a
//! queue (or to a handler that keeps the default `report_refs`) is copied.
//!
//! [`Handler::report_inline`]: mixer_adapters::Handler::report_inline
//! [`Handler::report_refs`]: mixer_adapters::Handler::report_refs

use std::sync::atomic::Ordering;

use mixer_adapters::template::ReportRefs;
use mixer_adapters::{Template, Variety};
use mixer_attributes::{Bag, ReferencedAttributes, ValueRef};
use mixer_config::expr::Evaluated;

use crate::dispatcher::{Dispatcher, Inner};
use crate::instance::ReportRef;
use crate::request::{SCRATCH, Seen, matches};
use crate::snapshot::Snapshot;

/// What a report call did with the instances its bags produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// Instances handed to handlers (to their queues, or to the handlers
    /// themselves on the reporting thread).
    pub queued: usize,
    /// Instances dropped because a queue was full: the dispatcher's queue
    /// for the handler, or the handler's own (counted).
    pub dropped: usize,
    /// Instances not built because a field expression failed (counted);
    /// the request's other instances still went out.
    pub skipped: usize,
}

/// One evaluated instance: whose, and where its values start.
struct Built {
    handler: u32,
    template: Template,
    instance: u32,
    start: usize,
}

impl Dispatcher {
    /// Reports one bag. Never waits on a handler.
    pub fn report<B: Bag + ?Sized>(&self, bag: &B) -> ReportOutcome {
        self.report_all(std::iter::once(bag))
    }

    /// Reports several bags (one Report request's attribute sets): the
    /// instances of all of them go to each handler in one batch per
    /// template. Never waits on a handler: a full queue drops the batch and
    /// counts it.
    pub fn report_all<'b, B, I>(&self, bags: I) -> ReportOutcome
    where
        B: Bag + ?Sized + 'b,
        I: IntoIterator<Item = &'b B>,
    {
        let inner = &*self.inner;
        inner.metrics.reports.fetch_add(1, Ordering::Relaxed);
        let snap = inner.snapshot.load();
        let mut out = ReportOutcome::default();
        // Sized for a typical request's telemetry (a few instances of a
        // handful of fields) so that filling them does not reallocate.
        let mut values: Vec<Option<Evaluated<'_>>> = Vec::with_capacity(32);
        let mut built: Vec<Built> = Vec::with_capacity(8);
        SCRATCH.with(|cell| {
            let refs = &mut *cell.borrow_mut();
            for bag in bags {
                collect(inner, &snap, bag, refs, &mut values, &mut built, &mut out);
            }
        });
        if !built.is_empty() {
            deliver(&snap, &values, &mut built, &mut out);
        }
        let m = &inner.metrics;
        m.report_instances_queued
            .fetch_add(out.queued as u64, Ordering::Relaxed);
        m.report_instances_dropped
            .fetch_add(out.dropped as u64, Ordering::Relaxed);
        m.instances_skipped
            .fetch_add(out.skipped as u64, Ordering::Relaxed);
        out
    }
}

/// Hands the built instances to their handlers, one batch per (handler,
/// template), each batch's instances in the order they were built.
fn deliver(
    snap: &Snapshot,
    values: &[Option<Evaluated<'_>>],
    built: &mut [Built],
    out: &mut ReportOutcome,
) {
    let views: Vec<ValueRef<'_>> = values
        .iter()
        .map(|v| {
            v.as_ref()
                .map_or(ValueRef::String(""), Evaluated::as_value_ref)
        })
        .collect();
    built.sort_by_key(|b| (b.handler, b.template));
    for group in built.chunk_by(|a, b| (a.handler, a.template) == (b.handler, b.template)) {
        let refs = group.iter().map(|b| {
            snap.instances[b.instance as usize].report_ref(views.get(b.start..).unwrap_or(&[]))
        });
        let slot = &snap.handlers[group[0].handler as usize];
        let delivered = match group[0].template {
            Template::Metric => {
                let v: Vec<_> = refs
                    .filter_map(|r| match r {
                        ReportRef::Metric(m) => Some(m),
                        _ => None,
                    })
                    .collect();
                slot.report(ReportRefs::Metric(&v))
            }
            Template::LogEntry => {
                let v: Vec<_> = refs
                    .filter_map(|r| match r {
                        ReportRef::LogEntry(l) => Some(l),
                        _ => None,
                    })
                    .collect();
                slot.report(ReportRefs::LogEntry(&v))
            }
            _ => {
                let v: Vec<_> = refs
                    .filter_map(|r| match r {
                        ReportRef::ReportNothing(n) => Some(n),
                        _ => None,
                    })
                    .collect();
                slot.report(ReportRefs::ReportNothing(&v))
            }
        };
        out.queued += delivered.queued;
        out.dropped += delivered.dropped;
    }
}

fn collect<'a, B: Bag + ?Sized>(
    inner: &Inner,
    snap: &'a Snapshot,
    bag: &'a B,
    refs: &mut ReferencedAttributes,
    values: &mut Vec<Option<Evaluated<'a>>>,
    built: &mut Vec<Built>,
    out: &mut ReportOutcome,
) {
    refs.clear();
    let ns = inner.ids.namespace(bag, refs);
    let mut seen = Seen::new(snap.pair_counts[2]);
    for route in snap.routes(ns).of(Variety::Report) {
        let rule = &snap.rules[route.rule as usize];
        match matches(rule, bag, refs) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                inner.match_error(rule, &e);
                continue;
            }
        }
        for p in &route.pairs {
            if !seen.insert(p.id) {
                continue;
            }
            let instance = &snap.instances[p.instance as usize];
            let start = values.len();
            if let Err(f) = instance.eval_report(bag, refs, values) {
                out.skipped += 1;
                tracing::debug!(
                    instance = &*instance.name,
                    "report instance skipped: field {}: {}",
                    f.field,
                    f.error
                );
                continue;
            }
            built.push(Built {
                handler: p.handler,
                template: instance.template,
                instance: p.instance,
                start,
            });
        }
    }
}
