//! Report: match each bag's rules, build REPORT instances, batch them per
//! (handler, template) and hand each batch to its handler's queue without
//! waiting.

use std::sync::atomic::Ordering;

use mixer_adapters::Variety;
use mixer_adapters::template::ReportBatch;
use mixer_attributes::{Bag, ReferencedAttributes};

use crate::dispatcher::{Dispatcher, Inner};
use crate::instance::ReportInstance;
use crate::request::{SCRATCH, Seen, matches};
use crate::slot::Enqueued;
use crate::snapshot::Snapshot;

/// What a report call did with the instances its bags produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// Instances handed to handler queues.
    pub queued: usize,
    /// Instances dropped because their handler's queue was full (counted).
    pub dropped: usize,
    /// Instances not built because a field expression failed (counted);
    /// the request's other instances still went out.
    pub skipped: usize,
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
        let mut batches: Vec<(u32, ReportBatch)> = Vec::new();
        SCRATCH.with(|cell| {
            let refs = &mut *cell.borrow_mut();
            for bag in bags {
                collect(inner, &snap, bag, refs, &mut batches, &mut out);
            }
        });
        for (h, batch) in batches {
            let n = batch.len();
            match snap.handlers[h as usize].enqueue(batch) {
                Enqueued::Queued => out.queued += n,
                Enqueued::Dropped => out.dropped += n,
            }
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

fn collect<B: Bag + ?Sized>(
    inner: &Inner,
    snap: &Snapshot,
    bag: &B,
    refs: &mut ReferencedAttributes,
    batches: &mut Vec<(u32, ReportBatch)>,
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
            let built = match instance.report(bag, refs) {
                Ok(i) => i,
                Err(f) => {
                    out.skipped += 1;
                    tracing::debug!(
                        instance = &*instance.name,
                        "report instance skipped: field {}: {}",
                        f.field,
                        f.error
                    );
                    continue;
                }
            };
            let template = instance.template;
            let batch = match batches
                .iter_mut()
                .find(|(h, b)| *h == p.handler && b.template() == template)
            {
                Some((_, b)) => b,
                None => {
                    let empty = match built {
                        ReportInstance::Metric(_) => ReportBatch::Metric(Vec::new()),
                        ReportInstance::LogEntry(_) => ReportBatch::LogEntry(Vec::new()),
                        ReportInstance::ReportNothing(_) => ReportBatch::ReportNothing(Vec::new()),
                    };
                    batches.push((p.handler, empty));
                    &mut batches.last_mut().expect("just pushed").1
                }
            };
            match (batch, built) {
                (ReportBatch::Metric(v), ReportInstance::Metric(i)) => v.push(i),
                (ReportBatch::LogEntry(v), ReportInstance::LogEntry(i)) => v.push(i),
                (ReportBatch::ReportNothing(v), ReportInstance::ReportNothing(i)) => v.push(i),
                _ => {}
            }
        }
    }
}
