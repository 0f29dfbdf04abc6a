//! The stdio handler: report formats the lines on the calling thread, from
//! the instances as they are (borrowed or owned), into a bounded buffer
//! that a writer thread of the handler's own takes whole, writes and
//! flushes.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mixer_attributes::{Timestamp, ValueRef};
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::template::{ReportBatch, ReportRefs, Template};
use crate::{Answer, BuildEnv, Clock, Counter, Error, Handler};

use super::format;
use super::params::{Level, LogStream, StdioParams, level_of};
use super::rotate::{FileSink, Sink};

/// Bytes of formatted lines waiting for the writer beyond which lines are
/// dropped (and counted), so that a stalled disk or pipe cannot grow
/// memory without bound.
///
/// Counted in bytes because bytes are what a stall holds in memory,
/// whatever the lines' sizes. 16 MiB is about 65,000 access-log lines of
/// 250 bytes, what the former bound of 65,536 queued instances held: a few
/// seconds of a busy proxy's reports, enough to ride out a slow disk or a
/// paused reader without dropping, small enough for any host. The round the
/// writer is writing may hold as much again.
pub const MAX_PENDING_BYTES: usize = 16 << 20;

/// After a round of writing, how long the writer leaves the buffer to fill
/// before it looks again. Under load this makes a round one wakeup and one
/// write for every report meanwhile, instead of a thread wakeup (two
/// context switches) and a write per report, which cost more than
/// formatting the lines; a line reaches its stream at most this much later.
const LINGER: Duration = Duration::from_millis(2);

/// A thread's scratch that grew past this many bytes (a huge batch) is
/// freed after use rather than held by the thread for good.
const SCRATCH_KEEP: usize = 1 << 20;

#[derive(Default)]
struct Stats {
    dropped: AtomicU64,
    written: AtomicU64,
    write_errors: AtomicU64,
}

/// What reporting threads and the writer share.
struct Shared {
    out: Mutex<Out>,
    /// Wakes the writer, signalled only when it waits (`Out::asleep`), so
    /// a report while it writes or lingers costs no syscall.
    wake: Condvar,
    stats: Stats,
    max_bytes: usize,
}

/// The pending output, under `Shared::out`.
#[derive(Default)]
struct Out {
    /// Whole lines formatted and not yet taken by the writer.
    bytes: Vec<u8>,
    /// Where each line of `bytes` ends. Kept rather than found by looking
    /// for `\n`: a console line writes keys and instance names as they
    /// are, and a rotated file must be cut between lines.
    ends: Vec<usize>,
    /// The writer waits on `Shared::wake` and must be woken.
    asleep: bool,
    state: State,
    /// Close calls waiting for the writer to finish.
    closers: Vec<oneshot::Sender<()>>,
}

#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum State {
    /// Lines are accepted.
    #[default]
    Open,
    /// Closed: nothing more is accepted; the writer writes what was and
    /// stops.
    Closing,
    /// The writer has stopped.
    Gone,
}

/// A batch's lines, formatted before the lock is taken so that the lock
/// covers only a copy.
#[derive(Default)]
struct Scratch {
    text: String,
    /// Where each line of `text` ends.
    ends: Vec<usize>,
}

impl Scratch {
    fn line<'a>(
        &mut self,
        json: bool,
        t: Timestamp,
        level: Level,
        instance: &str,
        value: Option<ValueRef<'_>>,
        fields: impl IntoIterator<Item = (&'a str, ValueRef<'a>)>,
    ) {
        format::line(&mut self.text, json, t, level, instance, value, fields);
        self.ends.push(self.text.len());
    }
}

thread_local! {
    static SCRATCH: Cell<Scratch> = const {
        Cell::new(Scratch { text: String::new(), ends: Vec::new() })
    };
}

impl Shared {
    /// Appends the whole lines of `s` that fit under the bound; the rest
    /// are dropped and counted.
    fn append(&self, s: &Scratch) -> Result<(), Error> {
        let n = s.ends.len();
        if n == 0 {
            return Ok(());
        }
        let mut out = self.out.lock();
        let fit = if out.state == State::Open {
            let room = self.max_bytes.saturating_sub(out.bytes.len());
            s.ends.partition_point(|&end| end <= room)
        } else {
            0
        };
        if let Some(&end) = s.ends[..fit].last() {
            // `ends` were recorded as `text` grew: within it.
            let base = out.bytes.len();
            out.bytes.extend_from_slice(&s.text.as_bytes()[..end]);
            out.ends.extend(s.ends[..fit].iter().map(|end| base + end));
        }
        let wake = fit > 0 && std::mem::take(&mut out.asleep);
        drop(out);
        if wake {
            self.wake.notify_one();
        }
        let dropped = n - fit;
        if dropped == 0 {
            return Ok(());
        }
        self.stats
            .dropped
            .fetch_add(dropped as u64, Ordering::Relaxed);
        Err(Error::QueueFull { dropped })
    }

    /// Stops accepting lines and wakes the writer to write the rest; false
    /// when the writer has already stopped.
    fn close(&self, closer: Option<oneshot::Sender<()>>) -> bool {
        let mut out = self.out.lock();
        if out.state == State::Gone {
            return false;
        }
        out.state = State::Closing;
        out.closers.extend(closer);
        let wake = std::mem::take(&mut out.asleep);
        drop(out);
        if wake {
            self.wake.notify_one();
        }
        true
    }
}

/// A built stdio handler.
pub struct StdioHandler {
    shared: Arc<Shared>,
    clock: Arc<dyn Clock>,
    levels: Levels,
    metric_level: Level,
    json: bool,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl StdioHandler {
    /// Builds the handler: opens the file (an error names it) and starts the
    /// writer thread.
    pub fn build(p: StdioParams, env: &BuildEnv) -> Result<StdioHandler, Error> {
        StdioHandler::build_bounded(p, env, MAX_PENDING_BYTES)
    }

    /// [`build`](StdioHandler::build) with another bound than
    /// [`MAX_PENDING_BYTES`], for tests to reach it with a few lines.
    pub(crate) fn build_bounded(
        p: StdioParams,
        env: &BuildEnv,
        max_bytes: usize,
    ) -> Result<StdioHandler, Error> {
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
        let shared = Arc::new(Shared {
            out: Mutex::new(Out::default()),
            wake: Condvar::new(),
            stats: Stats::default(),
            max_bytes,
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("mixer-stdio".into())
                .spawn(move || write_loop(&shared, sink))
                .map_err(|e| Error::Build(format!("stdio: cannot start the writer: {e}")))?
        };
        Ok(StdioHandler {
            shared,
            clock,
            levels: Levels {
                output: p.output_level,
                severities: p.severity_levels,
            },
            metric_level: p.metric_level,
            json: p.output_as_json,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The writer thread, for tests to see it stop.
    #[cfg(test)]
    pub(super) fn take_writer(&self) -> Option<std::thread::JoinHandle<()>> {
        self.thread.lock().take()
    }

    /// Formats a batch's lines with `fill` into this thread's scratch and
    /// appends them to the pending output.
    fn accept(&self, fill: impl FnOnce(&mut Scratch)) -> Result<(), Error> {
        // Taken out of the thread's slot rather than borrowed in it, so
        // that no path can find it borrowed; an exiting thread gets a new
        // one.
        let mut s = SCRATCH.try_with(Cell::take).unwrap_or_default();
        s.text.clear();
        s.ends.clear();
        fill(&mut s);
        let r = self.shared.append(&s);
        if s.text.capacity() <= SCRATCH_KEEP {
            let _ = SCRATCH.try_with(|c| c.set(s));
        }
        r
    }

    /// Metric lines are written at all.
    fn metrics_written(&self) -> bool {
        self.metric_level >= self.levels.output
    }

    fn unsupported(&self, template: Template) -> Error {
        Error::Unsupported {
            adapter: super::NAME.into(),
            what: format!("template {}", template.name()),
        }
    }
}

impl Drop for StdioHandler {
    /// A handler dropped without a close still has what it accepted
    /// written: the writer writes the rest and stops.
    fn drop(&mut self) {
        self.shared.close(None);
    }
}

/// Lines written but not yet flushed, counted as written once the flush
/// succeeds and as dropped if it fails.
struct Pending<'a> {
    lines: u64,
    stats: &'a Stats,
}

impl Pending<'_> {
    fn wrote(&mut self, lines: u64, r: io::Result<()>) {
        match r {
            Ok(()) => self.lines += lines,
            // What the buffer held is in an unknown state: counted lost.
            Err(e) => self.lost(lines, &e),
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

    fn lost(&mut self, extra: u64, e: &io::Error) {
        let n = std::mem::take(&mut self.lines) + extra;
        self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
        self.stats.dropped.fetch_add(n, Ordering::Relaxed);
        tracing::warn!(error = %e, lines = n, "stdio: write failed");
    }
}

/// Which entries are written.
struct Levels {
    output: Level,
    severities: BTreeMap<String, Level>,
}

impl Levels {
    fn of(&self, severity: &str) -> Option<Level> {
        let l = level_of(severity, &self.severities);
        (l >= self.output).then_some(l)
    }
}

/// Marks the writer stopped however it stops, so that reports are refused
/// (and counted) rather than left in a buffer nobody takes, and close
/// calls are answered.
struct Gone<'a>(&'a Shared);

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        let mut out = self.0.out.lock();
        out.state = State::Gone;
        // Lines are left only if the writer unwound.
        let left = out.ends.len() as u64;
        out.bytes.clear();
        out.ends.clear();
        self.0.stats.dropped.fetch_add(left, Ordering::Relaxed);
        for closer in out.closers.drain(..) {
            let _ = closer.send(());
        }
    }
}

fn write_loop(shared: &Shared, mut sink: Sink) {
    let _gone = Gone(shared);
    // The round being written; swapped with the pending output, so both
    // keep their capacity and no round allocates.
    let mut bytes = Vec::new();
    let mut ends = Vec::new();
    let mut pending = Pending {
        lines: 0,
        stats: &shared.stats,
    };
    loop {
        let closing = {
            let mut out = shared.out.lock();
            while out.bytes.is_empty() && out.state == State::Open {
                out.asleep = true;
                shared.wake.wait(&mut out);
            }
            out.asleep = false;
            std::mem::swap(&mut out.bytes, &mut bytes);
            std::mem::swap(&mut out.ends, &mut ends);
            // Seen with the take: nothing is accepted after it, so this
            // round holds the last line.
            out.state != State::Open
        };
        sink.write_lines(&bytes, &ends, |lines, r| pending.wrote(lines, r));
        pending.flush(&mut sink);
        bytes.clear();
        ends.clear();
        if closing {
            return;
        }
        std::thread::sleep(LINGER);
    }
}

impl Handler for StdioHandler {
    /// Cheap and never blocks: the lines are formatted and copied into the
    /// writer's bounded buffer under a lock held for the copy; past the
    /// bound they are dropped and counted.
    fn report_inline(&self) -> bool {
        true
    }

    fn report(&self, batch: ReportBatch) -> Result<(), Error> {
        let json = self.json;
        match &batch {
            ReportBatch::LogEntry(entries) => self.accept(|s| {
                let mut now = None;
                for e in entries {
                    let Some(level) = self.levels.of(&e.severity) else {
                        continue;
                    };
                    let t = e
                        .timestamp
                        .unwrap_or_else(|| *now.get_or_insert_with(|| self.clock.timestamp()));
                    let fields = e.variables.iter().map(|(k, v)| (&**k, v.as_ref()));
                    s.line(json, t, level, &e.name, None, fields);
                }
            }),
            ReportBatch::Metric(metrics) => {
                if !self.metrics_written() || metrics.is_empty() {
                    return Ok(());
                }
                self.accept(|s| {
                    let now = self.clock.timestamp();
                    for m in metrics {
                        let fields = m.dimensions.iter().map(|(k, v)| (&**k, v.as_ref()));
                        let value = Some(m.value.as_ref());
                        s.line(json, now, self.metric_level, &m.name, value, fields);
                    }
                })
            }
            other => Err(self.unsupported(other.template())),
        }
    }

    /// As [`report`](Handler::report), from the borrowed instances: no
    /// copy of them is made.
    fn report_refs(&self, batch: ReportRefs<'_>) -> Result<(), Error> {
        let json = self.json;
        match batch {
            ReportRefs::LogEntry(entries) => self.accept(|s| {
                let mut now = None;
                for e in entries {
                    let Some(level) = self.levels.of(e.severity) else {
                        continue;
                    };
                    let t = e
                        .timestamp
                        .unwrap_or_else(|| *now.get_or_insert_with(|| self.clock.timestamp()));
                    let fields = e.variables.iter().map(|(k, v)| (&**k, v));
                    s.line(json, t, level, e.name, None, fields);
                }
            }),
            ReportRefs::Metric(metrics) => {
                if !self.metrics_written() || metrics.is_empty() {
                    return Ok(());
                }
                self.accept(|s| {
                    let now = self.clock.timestamp();
                    for m in metrics {
                        let fields = m.dimensions.iter().map(|(k, v)| (&**k, v));
                        s.line(json, now, self.metric_level, m.name, Some(m.value), fields);
                    }
                })
            }
            other => Err(self.unsupported(other.template())),
        }
    }

    fn counters(&self) -> Vec<Counter> {
        let s = &self.shared.stats;
        vec![
            Counter {
                name: "dropped",
                help: "lines not written: buffer full or write failed",
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
            let (done, wait) = oneshot::channel();
            if self.shared.close(Some(done)) {
                // Answered once the writer has flushed everything accepted
                // before the close, or has stopped.
                let _ = wait.await;
            }
            // The writer is returning; it is not joined, so that close
            // never blocks a runtime thread.
            self.thread.lock().take();
            Ok(())
        })
    }
}
