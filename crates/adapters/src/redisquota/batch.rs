//! Request coalescing: the allocations waiting for a connection go to
//! Redis as one EVALSHA of `allocate.lua`.
//!
//! Each connection has one sender at a time (as a rule: see
//! `Connection::acquire`). A caller that finds its connection free and
//! nothing queued sends its own allocation at once (a batch of one, on its
//! own task: no hand-off, no batching delay, no added latency).
//! Callers that find it busy queue, and the connection's worker sends what
//! is queued, up to `max_batch`, as soon as the connection is free. After a
//! batch the worker yields once, so that the callers it just answered (who
//! under load ask again at once) queue before it looks again; while it
//! finds callers queued it keeps the connection. Callers that gave up (timed
//! out or were cancelled) are dropped from a batch before it is sent, so
//! Redis is not charged for answers nobody waits for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::{Notify, mpsc, oneshot};

use super::NAME;

/// The length of every key prefix: `mixer:rq:` and one letter and `:`.
pub(super) const PREFIX_LEN: usize = b"mixer:rq:h:".len();

/// One allocation, ready to send.
pub(super) struct Item {
    /// The counter's key, then (when deduplicating) the deduplication
    /// record's key: one buffer, one allocation.
    pub(super) keys: Vec<u8>,
    /// Where the counter's key ends in `keys`.
    pub(super) counter_len: usize,
    pub(super) rolling: bool,
    pub(super) best_effort: bool,
    pub(super) max: i64,
    pub(super) window_ms: u64,
    pub(super) bucket_ms: u64,
    pub(super) amount: i64,
}

impl Item {
    fn dedup(&self) -> bool {
        self.keys.len() > self.counter_len
    }
}

/// One allocation waiting for its connection.
pub(super) struct Request {
    pub(super) item: Item,
    pub(super) reply: oneshot::Sender<Outcome>,
}

/// What Redis answered for one allocation.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Units granted and how long the answer holds, in ms.
    Granted(i64, i64),
    /// Redis could not answer (unreachable, an error, or the call took
    /// longer than the call timeout).
    Failed { message: String, timed_out: bool },
}

/// The batch script, shared by a handler's connections.
pub(super) struct BatchScript {
    script: redis::Script,
}

impl BatchScript {
    pub(super) fn new() -> BatchScript {
        BatchScript {
            script: redis::Script::new(include_str!("allocate.lua")),
        }
    }

    /// EVALSHA for `items`: keys and arguments written straight into one
    /// command buffer. `scratch` holds a rolling window's buckets key.
    fn command<'a>(
        &self,
        items: impl Iterator<Item = &'a Item> + Clone,
        scratch: &mut Vec<u8>,
    ) -> redis::Cmd {
        let keys: usize = items
            .clone()
            .map(|i| 1 + usize::from(i.rolling) + usize::from(i.dedup()))
            .sum();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(keys);
        for i in items.clone() {
            let counter = &i.keys[..i.counter_len];
            cmd.arg(counter);
            if i.rolling {
                scratch.clear();
                scratch.extend_from_slice(counter);
                scratch[PREFIX_LEN - 2] = b'z';
                cmd.arg(&scratch[..]);
            }
            if i.dedup() {
                cmd.arg(&i.keys[i.counter_len..]);
            }
        }
        for i in items {
            let flags =
                u8::from(i.rolling) | u8::from(i.best_effort) << 1 | u8::from(i.dedup()) << 2;
            cmd.arg(flags).arg(i.max).arg(i.window_ms).arg(i.amount);
            if i.rolling {
                cmd.arg(i.bucket_ms);
            }
        }
        cmd
    }

    /// Runs `cmd` within `timeout`, loading the script first if Redis does
    /// not know it (first use, a restart, SCRIPT FLUSH). The connection's
    /// response timeout bounds each command; this bounds the call as a
    /// whole (NOSCRIPT costs two more round trips).
    async fn run(
        &self,
        cmd: &redis::Cmd,
        conn: &mut ConnectionManager,
        timeout: Duration,
    ) -> Result<std::vec::IntoIter<redis::Value>, (String, bool)> {
        let call = async {
            match cmd.query_async(conn).await {
                Err(e)
                    if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
                {
                    self.script.load_async(conn).await?;
                    cmd.query_async(conn).await
                }
                r => r,
            }
        };
        match tokio::time::timeout(timeout, call).await {
            Ok(Ok(redis::Value::Array(values))) => Ok(values.into_iter()),
            Ok(Ok(other)) => Err((format!("{NAME}: unexpected reply {other:?}"), false)),
            Ok(Err(e)) => Err((format!("{NAME}: redis: {e}"), e.is_timeout())),
            Err(_) => Err((String::new(), true)),
        }
    }
}

/// The next item's answer in a script's reply.
fn outcome(values: &mut std::vec::IntoIter<redis::Value>) -> Outcome {
    match (values.next(), values.next()) {
        (Some(redis::Value::Int(g)), Some(redis::Value::Int(ttl))) if g >= 0 => {
            Outcome::Granted(g, ttl)
        }
        (_, Some(redis::Value::BulkString(m))) => Outcome::Failed {
            message: format!("{NAME}: redis: {}", String::from_utf8_lossy(&m)),
            timed_out: false,
        },
        (g, s) => Outcome::Failed {
            message: format!("{NAME}: unexpected reply {g:?}, {s:?}"),
            timed_out: false,
        },
    }
}

/// How a handler's connections batch.
#[derive(Copy, Clone, Debug)]
pub(super) struct Limits {
    /// Allocations in one script call, at most.
    pub(super) max_batch: usize,
    /// Allocations waiting per connection, at most; beyond it a call is
    /// answered by the failure policy at once.
    pub(super) queue: usize,
    /// The longest one call may take (the call timeout).
    pub(super) timeout: Duration,
}

/// One pooled connection, shared by its worker and the callers that find
/// it free.
pub(super) struct Connection {
    conn: ConnectionManager,
    script: Arc<BatchScript>,
    timeout: Duration,
    busy: AtomicBool,
    freed: Notify,
}

/// The right to send on a connection, given back on drop (also when a
/// caller's future is dropped mid-call).
struct Busy<'a>(&'a Connection);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.busy.store(false, Ordering::Release);
        // Stored as a permit if the worker is not waiting yet.
        self.0.freed.notify_one();
    }
}

impl Connection {
    pub(super) fn new(
        conn: ConnectionManager,
        script: Arc<BatchScript>,
        timeout: Duration,
    ) -> Connection {
        Connection {
            conn,
            script,
            timeout,
            busy: AtomicBool::new(false),
            freed: Notify::new(),
        }
    }

    fn try_acquire(&self) -> Option<Busy<'_>> {
        self.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            // Lazily: a `Busy` built and dropped on failure would free the
            // connection another holds.
            .then(|| Busy(self))
    }

    /// Waits for the connection, at most half the call timeout (so that
    /// the queued callers still have time for their call): holding it is
    /// only what lets batches form (the connection itself multiplexes), so
    /// a caller's future left unpolled while holding it must not stall the
    /// queue.
    async fn acquire(&self) -> Option<Busy<'_>> {
        if let Some(busy) = self.try_acquire() {
            return Some(busy);
        }
        let wait = async {
            loop {
                self.freed.notified().await;
                if let Some(busy) = self.try_acquire() {
                    return busy;
                }
            }
        };
        tokio::time::timeout(self.timeout / 2, wait).await.ok()
    }

    /// Sends `item` alone at once if the connection is free and nothing
    /// waits for it; `None` if the caller must queue.
    pub(super) async fn try_send_now(
        &self,
        queued: &mpsc::Sender<Request>,
        item: &Item,
    ) -> Option<Outcome> {
        if queued.capacity() != queued.max_capacity() {
            return None;
        }
        let _busy = self.try_acquire()?;
        let mut scratch = Vec::new();
        let cmd = self.script.command(std::iter::once(item), &mut scratch);
        Some(
            match self
                .script
                .run(&cmd, &mut self.conn.clone(), self.timeout)
                .await
            {
                Ok(mut values) => outcome(&mut values),
                Err((message, timed_out)) => Outcome::Failed { message, timed_out },
            },
        )
    }
}

/// The worker for one connection: runs until every sender (the handler)
/// is gone and the queue is drained.
pub(super) async fn worker(
    mut queue: mpsc::Receiver<Request>,
    shared: Arc<Connection>,
    max_batch: usize,
) {
    let mut conn = shared.conn.clone();
    let mut batch = Vec::with_capacity(max_batch);
    let mut scratch = Vec::new();
    while queue.recv_many(&mut batch, max_batch).await > 0 {
        let _busy = shared.acquire().await;
        loop {
            // Those who queued while the connection was busy, or during
            // the yield below, go too.
            while batch.len() < max_batch {
                match queue.try_recv() {
                    Ok(r) => batch.push(r),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            batch.retain(|r: &Request| !r.reply.is_closed());
            if !batch.is_empty() {
                let cmd = shared
                    .script
                    .command(batch.iter().map(|r| &r.item), &mut scratch);
                match shared.script.run(&cmd, &mut conn, shared.timeout).await {
                    Ok(mut values) => {
                        for r in batch.drain(..) {
                            let _ = r.reply.send(outcome(&mut values));
                        }
                    }
                    Err((message, timed_out)) => {
                        for r in batch.drain(..) {
                            let _ = r.reply.send(Outcome::Failed {
                                message: message.clone(),
                                timed_out,
                            });
                        }
                    }
                }
            }
            // The callers just answered usually ask again at once: let them
            // run and queue before looking, so that the next batch carries
            // them all. No timer: a queue found empty frees the connection.
            tokio::task::yield_now().await;
        }
    }
}
