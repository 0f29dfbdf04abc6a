//! The background half of the fluentd handler: drains the bounded queue,
//! batches entries by tag, and writes Forward-mode messages to the
//! connection, reconnecting with backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};

use crate::Clock;
use crate::template::LogEntryInstance;

use super::encode;

/// The first wait before reconnecting; doubles up to [`MAX_BACKOFF`].
pub const MIN_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait before reconnecting.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Counts shared with the handler.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) dropped: AtomicU64,
    pub(crate) sent: AtomicU64,
    pub(crate) write_errors: AtomicU64,
    pub(crate) connects: AtomicU64,
}

pub(crate) struct Config {
    pub(crate) address: String,
    pub(crate) integer_duration: bool,
    pub(crate) max_batch_bytes: usize,
    pub(crate) push_interval: Duration,
    pub(crate) push_timeout: Duration,
}

/// What the worker is told besides instances.
pub(crate) enum Control {
    /// Flush what is queued and pending, then stop; answer when done.
    Close(oneshot::Sender<()>),
}

#[derive(Default)]
struct Pending {
    /// Encoded entries and their count, by tag.
    by_tag: BTreeMap<String, (Vec<u8>, usize)>,
    bytes: usize,
    entries: usize,
}

pub(crate) struct Worker {
    cfg: Config,
    clock: Arc<dyn Clock>,
    stats: Arc<Stats>,
    rx: mpsc::Receiver<LogEntryInstance>,
    control: mpsc::Receiver<Control>,
    pending: Pending,
    conn: Option<TcpStream>,
    backoff: Duration,
    /// While set, no connection is attempted before this instant.
    retry_at: Option<Instant>,
    buf: Vec<u8>,
}

impl Worker {
    pub(crate) fn new(
        cfg: Config,
        clock: Arc<dyn Clock>,
        stats: Arc<Stats>,
        rx: mpsc::Receiver<LogEntryInstance>,
        control: mpsc::Receiver<Control>,
    ) -> Worker {
        Worker {
            cfg,
            clock,
            stats,
            rx,
            control,
            pending: Pending::default(),
            conn: None,
            backoff: MIN_BACKOFF,
            retry_at: None,
            buf: Vec::new(),
        }
    }

    pub(crate) async fn run(mut self) {
        let every = self.cfg.push_interval;
        let mut tick = tokio::time::interval_at(Instant::now() + every, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // A failed flush is retried when its backoff ends, not only at
            // the next interval.
            let retry = self.retry_at.filter(|_| self.pending.entries > 0);
            tokio::select! {
                inst = self.rx.recv() => match inst {
                    Some(inst) => self.add(&inst).await,
                    None => {
                        self.flush().await;
                        return;
                    }
                },
                c = self.control.recv() => {
                    while let Ok(inst) = self.rx.try_recv() {
                        self.add(&inst).await;
                    }
                    self.flush().await;
                    if let Some(Control::Close(done)) = c {
                        let _ = done.send(());
                    }
                    if let Some(mut conn) = self.conn.take() {
                        let _ = timeout(self.cfg.push_timeout, conn.shutdown()).await;
                    }
                    return;
                }
                _ = tick.tick() => self.flush().await,
                _ = sleep_until(retry) => self.flush().await,
            }
        }
    }

    async fn add(&mut self, inst: &LogEntryInstance) {
        let e = encode::entry(inst, self.clock.timestamp(), self.cfg.integer_duration);
        if self.pending.bytes + e.bytes.len() > self.cfg.max_batch_bytes {
            self.flush().await;
            if self.pending.bytes + e.bytes.len() > self.cfg.max_batch_bytes
                && self.pending.entries > 0
            {
                // Could not send and no room: the newest entry goes, so
                // that memory stays bounded by maxBatchSizeBytes.
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        let slot = self.pending.by_tag.entry(e.tag).or_default();
        slot.0.extend_from_slice(&e.bytes);
        slot.1 += 1;
        self.pending.bytes += e.bytes.len();
        self.pending.entries += 1;
        if self.pending.bytes >= self.cfg.max_batch_bytes {
            self.flush().await;
        }
    }

    /// Sends everything pending as one write of one message per tag. On
    /// failure the entries stay pending for the retry after the backoff.
    async fn flush(&mut self) {
        if self.pending.entries == 0 {
            return;
        }
        if self.retry_at.is_some_and(|t| Instant::now() < t) {
            return;
        }
        self.buf.clear();
        for (tag, (entries, n)) in &self.pending.by_tag {
            encode::forward(&mut self.buf, tag, entries, *n);
        }
        match self.write().await {
            Ok(()) => {
                self.stats
                    .sent
                    .fetch_add(self.pending.entries as u64, Ordering::Relaxed);
                self.pending = Pending::default();
                self.backoff = MIN_BACKOFF;
                self.retry_at = None;
            }
            Err(e) => {
                self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    address = %self.cfg.address,
                    error = %e,
                    retry_in = ?self.backoff,
                    "fluentd: cannot send; keeping {} entries for the retry",
                    self.pending.entries
                );
                self.conn = None;
                self.retry_at = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
        }
    }

    async fn write(&mut self) -> std::io::Result<()> {
        let t = self.cfg.push_timeout;
        let timed_out = || std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        // A receiver that closed its side would swallow this write into the
        // kernel's buffer and lose it: look for its FIN first.
        if let Some(c) = &self.conn {
            let mut probe = [0u8; 1];
            match c.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                // Closed, failed, or talking to us (Forward acks are not
                // asked for): start afresh.
                _ => self.conn = None,
            }
        }
        let conn = match &mut self.conn {
            Some(c) => c,
            None => {
                let c = timeout(t, TcpStream::connect(&self.cfg.address))
                    .await
                    .map_err(|_| timed_out())??;
                let _ = c.set_nodelay(true);
                self.stats.connects.fetch_add(1, Ordering::Relaxed);
                self.conn.insert(c)
            }
        };
        timeout(t, conn.write_all(&self.buf))
            .await
            .map_err(|_| timed_out())?
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}
