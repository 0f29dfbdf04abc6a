//! The fluentd handler: report hands instances to a bounded queue and
//! returns; a background worker batches and sends them.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::template::{LogEntryInstance, ReportBatch};
use crate::{Answer, BuildEnv, Counter, Error, Handler};

use super::params::FluentdParams;
use super::worker::{Config, Control, Stats, Worker};

/// A built fluentd handler.
pub struct FluentdHandler {
    tx: mpsc::Sender<LogEntryInstance>,
    control: mpsc::Sender<Control>,
    stats: Arc<Stats>,
    close_limit: std::time::Duration,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl FluentdHandler {
    /// Builds the handler and starts its worker; the connection is made at
    /// the first flush, so a Fluentd that is down is a runtime condition.
    pub fn build(p: FluentdParams, env: &BuildEnv) -> Result<FluentdHandler, Error> {
        let (tx, rx) = mpsc::channel(p.instance_buffer_size);
        let (control, control_rx) = mpsc::channel(1);
        let stats = Arc::new(Stats::default());
        // Close waits for one last connect and write at most.
        let close_limit = p.push_timeout * 2 + std::time::Duration::from_secs(1);
        let worker = Worker::new(
            Config {
                address: p.address,
                integer_duration: p.integer_duration,
                max_batch_bytes: p.max_batch_size_bytes,
                push_interval: p.push_interval,
                push_timeout: p.push_timeout,
            },
            env.clock().clone(),
            stats.clone(),
            rx,
            control_rx,
        );
        let task = env.runtime().spawn(worker.run());
        Ok(FluentdHandler {
            tx,
            control,
            stats,
            close_limit,
            task: Mutex::new(Some(task)),
        })
    }
}

impl Handler for FluentdHandler {
    /// Cheap and never blocks: instances go to the writer's bounded queue with `try_send`; a full queue drops and counts.
    fn report_inline(&self) -> bool {
        true
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        let ReportBatch::LogEntry(instances) = batch else {
            return Err(Error::Unsupported {
                adapter: super::NAME.into(),
                what: format!("template {}", batch.template().name()),
            });
        };
        let mut dropped = 0;
        for inst in instances {
            if self.tx.try_send(inst).is_err() {
                dropped += 1;
            }
        }
        if dropped > 0 {
            self.stats
                .dropped
                .fetch_add(dropped as u64, Ordering::Relaxed);
            return Err(Error::QueueFull { dropped });
        }
        Ok(())
    }

    fn counters(&self) -> Vec<Counter> {
        let s = &self.stats;
        vec![
            Counter {
                name: "dropped",
                help: "entries dropped: queue full, or unsendable past maxBatchSizeBytes",
                value: s.dropped.load(Ordering::Relaxed),
            },
            Counter {
                name: "sent",
                help: "entries written to Fluentd",
                value: s.sent.load(Ordering::Relaxed),
            },
            Counter {
                name: "write_errors",
                help: "failed connects or writes (each followed by a backoff)",
                value: s.write_errors.load(Ordering::Relaxed),
            },
            Counter {
                name: "connects",
                help: "connections made to Fluentd",
                value: s.connects.load(Ordering::Relaxed),
            },
        ]
    }

    fn close(&self) -> Answer<'_, ()> {
        Answer::pending(async move {
            let (done, wait) = oneshot::channel();
            if self.control.send(Control::Close(done)).await.is_ok() {
                let _ = tokio::time::timeout(self.close_limit, wait).await;
            }
            if let Some(t) = self.task.lock().take() {
                t.abort();
            }
            Ok(())
        })
    }
}
