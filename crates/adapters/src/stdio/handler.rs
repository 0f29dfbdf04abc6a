//! The stdio handler: report hands batches to a writer thread and returns;
//! the thread formats and writes them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use mixer_attributes::Timestamp;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::template::{LogEntryInstance, MetricInstance, ReportBatch};
use crate::{Answer, BuildEnv, Clock, Counter, Error, Handler};

use super::format;
use super::params::{Level, LogStream, StdioParams, level_of};
use super::rotate::{FileSink, Sink};

/// Instances waiting for the writer beyond which batches are dropped (and
/// counted), so that a stalled disk or pipe cannot grow memory without
/// bound.
pub const MAX_QUEUED_INSTANCES: usize = 65_536;

enum Msg {
    /// Entries below the output level are skipped by the writer.
    Logs(Vec<LogEntryInstance>, Timestamp),
    Metrics(Vec<MetricInstance>, Timestamp, Level),
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
struct Stats {
    queued: AtomicUsize,
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
}

/// A built stdio handler.
pub struct StdioHandler {
    tx: Mutex<Option<mpsc::Sender<Msg>>>,
    stats: Arc<Stats>,
    clock: Arc<dyn Clock>,
    levels: Arc<Levels>,
    metric_level: Level,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl StdioHandler {
    /// Builds the handler: opens the file (an error names it) and starts the
    /// writer thread.
    pub fn build(p: StdioParams, env: &BuildEnv) -> Result<StdioHandler, Error> {
        let clock = env.clock().clone();
        let sink = match (p.log_stream, &p.output_path) {
            (LogStream::Stdout, _) => Sink::stdout(),
            (LogStream::Stderr, _) => Sink::stderr(),
            (stream, Some(path)) => {
                let rotation = (stream == LogStream::RotatedFile).then_some(p.rotation);
                let f = FileSink::open(path.clone(), rotation, clock.clone()).map_err(|e| {
                    Error::Build(format!("stdio: cannot open {}: {e}", path.display()))
                })?;
                Sink::File(Box::new(f))
            }
            (_, None) => {
                return Err(Error::Build("stdio: outputPath is required".into()));
            }
        };
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel();
        let json = p.output_as_json;
        let levels = Arc::new(Levels {
            output: p.output_level,
            severities: p.severity_levels,
        });
        let thread = {
            let (stats, levels) = (stats.clone(), levels.clone());
            std::thread::Builder::new()
                .name("mixer-stdio".into())
                .spawn(move || write_loop(rx, sink, json, &levels, &stats))
                .map_err(|e| Error::Build(format!("stdio: cannot start the writer: {e}")))?
        };
        Ok(StdioHandler {
            tx: Mutex::new(Some(tx)),
            stats,
            clock,
            levels,
            metric_level: p.metric_level,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn enqueue(&self, n: usize, msg: Msg) -> Result<(), Error> {
        let q = self.stats.queued.fetch_add(n, Ordering::Relaxed);
        let sent = q + n <= MAX_QUEUED_INSTANCES
            && self
                .tx
                .lock()
                .as_ref()
                .is_some_and(|tx| tx.send(msg).is_ok());
        if sent {
            return Ok(());
        }
        self.stats.queued.fetch_sub(n, Ordering::Relaxed);
        self.stats.dropped.fetch_add(n as u64, Ordering::Relaxed);
        Err(Error::QueueFull { dropped: n })
    }
}

/// After a round of writing, how long the writer leaves the queue to fill
/// before it looks again. Under load this makes a round one wakeup and one
/// write for every batch queued meanwhile, instead of a thread wakeup (two
/// context switches) and a write per batch, which cost more than
/// formatting the lines; a line reaches its stream at most this much later.
const LINGER: Duration = Duration::from_millis(2);

/// Lines buffered but not yet flushed, counted as written once the flush
/// succeeds and as dropped if it fails.
struct Pending<'a> {
    lines: u64,
    stats: &'a Stats,
}

impl Pending<'_> {
    fn line(&mut self, sink: &mut Sink, line: &str) {
        match sink.write_line(line.as_bytes()) {
            Ok(()) => self.lines += 1,
            Err(e) => {
                // What the buffer held is in an unknown state: counted lost.
                self.lost(1, &e);
            }
        }
    }

    fn flush(&mut self, sink: &mut Sink) {
        match sink.flush() {
            Ok(()) => {
                self.stats.written.fetch_add(self.lines, Ordering::Relaxed);
                self.lines = 0;
            }
            Err(e) => self.lost(0, &e),
        }
    }

    fn lost(&mut self, extra: u64, e: &std::io::Error) {
        let n = std::mem::take(&mut self.lines) + extra;
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        tracing::warn!(error = %e, lines = n, "stdio: write failed");
    }
}

/// Which entries are written.
struct Levels {
    output: Level,
    severities: std::collections::BTreeMap<String, Level>,
}

impl Levels {
    fn of(&self, e: &LogEntryInstance) -> Option<Level> {
        let l = level_of(&e.severity, &self.severities);
        (l >= self.output).then_some(l)
    }
}

fn write_loop(rx: mpsc::Receiver<Msg>, mut sink: Sink, json: bool, levels: &Levels, stats: &Stats) {
    let mut buf = String::new();
    let mut pending = Pending { lines: 0, stats };
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        // Everything already queued is written before one flush.
        while let Some(msg) = next.take() {
            match msg {
                Msg::Logs(entries, now) => {
                    stats.queued.fetch_sub(entries.len(), Ordering::Relaxed);
                    for e in &entries {
                        let Some(level) = levels.of(e) else { continue };
                        buf.clear();
                        let t = e.timestamp.unwrap_or(now);
                        format::line(&mut buf, json, t, level, &e.name, None, &e.variables);
                        pending.line(&mut sink, &buf);
                    }
                }
                Msg::Metrics(metrics, now, level) => {
                    stats.queued.fetch_sub(metrics.len(), Ordering::Relaxed);
                    for m in &metrics {
                        buf.clear();
                        format::line(
                            &mut buf,
                            json,
                            now,
                            level,
                            &m.name,
                            Some(&m.value),
                            &m.dimensions,
                        );
                        pending.line(&mut sink, &buf);
                    }
                }
                Msg::Close(done) => {
                    pending.flush(&mut sink);
                    let _ = done.send(());
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        pending.flush(&mut sink);
        std::thread::sleep(LINGER);
    }
    pending.flush(&mut sink);
}

impl Handler for StdioHandler {
    /// Cheap and never blocks: batches go to the writer thread's bounded queue; a full queue drops and counts.
    fn report_inline(&self) -> bool {
        true
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        let now = self.clock.timestamp();
        match batch {
            ReportBatch::LogEntry(entries) => {
                // The batch goes over as it came (no copy); the writer
                // skips the entries below the output level.
                if !entries.iter().any(|e| self.levels.of(e).is_some()) {
                    return Ok(());
                }
                self.enqueue(entries.len(), Msg::Logs(entries, now))
            }
            ReportBatch::Metric(metrics) => {
                if self.metric_level < self.levels.output || metrics.is_empty() {
                    return Ok(());
                }
                let n = metrics.len();
                self.enqueue(n, Msg::Metrics(metrics, now, self.metric_level))
            }
            other => Err(Error::Unsupported {
                adapter: super::NAME.into(),
                what: format!("template {}", other.template().name()),
            }),
        }
    }

    fn counters(&self) -> Vec<Counter> {
        let s = &self.stats;
        vec![
            Counter {
                name: "dropped",
                help: "lines not written: queue full or write failed",
                value: s.dropped.load(Ordering::Relaxed),
            },
            Counter {
                name: "written",
                help: "lines written",
                value: s.written.load(Ordering::Relaxed),
            },
            Counter {
                name: "write_errors",
                help: "failed writes and flushes",
                value: s.write_errors.load(Ordering::Relaxed),
            },
        ]
    }

    fn close(&self) -> Answer<'_, ()> {
        Answer::pending(async move {
            let tx = self.tx.lock().take();
            if let Some(tx) = tx {
                let (done, wait) = oneshot::channel();
                if tx.send(Msg::Close(done)).is_ok() {
                    let _ = wait.await;
                }
            }
            // The writer has flushed and is returning; it is not joined, so
            // that close never blocks a runtime thread.
            self.thread.lock().take();
            Ok(())
        })
    }
}
