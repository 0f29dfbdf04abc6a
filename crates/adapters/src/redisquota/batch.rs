//! Request coalescing: one worker per connection sends the allocations
//! waiting for that connection as one EVALSHA of `allocate.lua`.
//!
//! The worker takes everything queued (at most `max_batch`) as soon as its
//! connection is free, so an idle connection sends a batch of one at once
//! (no timer, no added latency), and callers arriving while a batch is in
//! flight are sent together next. Callers that gave up (timed out or were
//! cancelled) are dropped from a batch before it is sent, so Redis is not
//! charged for answers nobody waits for.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionManager;
use tokio::sync::{mpsc, oneshot};

use super::NAME;

/// The length of every key prefix: `mixer:rq:` and one letter and `:`.
pub(super) const PREFIX_LEN: usize = b"mixer:rq:h:".len();

/// One allocation waiting for its connection.
pub(super) struct Request {
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
    pub(super) reply: oneshot::Sender<Outcome>,
}

/// What Redis answered for one allocation.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Units granted and how long the answer holds, in ms.
    Granted(i64, i64),
    /// Redis could not answer (unreachable, an error, or the batch took
    /// longer than the call timeout).
    Failed { message: String, timed_out: bool },
}

/// The batch script, shared by a handler's workers.
pub(super) struct BatchScript {
    script: redis::Script,
}

impl BatchScript {
    pub(super) fn new() -> BatchScript {
        BatchScript {
            script: redis::Script::new(include_str!("allocate.lua")),
        }
    }

    /// EVALSHA for `batch`: keys and arguments written straight into one
    /// command buffer. `scratch` holds a rolling window's buckets key.
    fn command(&self, batch: &[Request], scratch: &mut Vec<u8>) -> redis::Cmd {
        let keys: usize = batch
            .iter()
            .map(|r| 1 + usize::from(r.rolling) + usize::from(r.keys.len() > r.counter_len))
            .sum();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(self.script.get_hash()).arg(keys);
        for r in batch {
            let counter = &r.keys[..r.counter_len];
            cmd.arg(counter);
            if r.rolling {
                scratch.clear();
                scratch.extend_from_slice(counter);
                scratch[PREFIX_LEN - 2] = b'z';
                cmd.arg(&scratch[..]);
            }
            if r.keys.len() > r.counter_len {
                cmd.arg(&r.keys[r.counter_len..]);
            }
        }
        for r in batch {
            let flags = u8::from(r.rolling)
                | u8::from(r.best_effort) << 1
                | u8::from(r.keys.len() > r.counter_len) << 2;
            cmd.arg(flags).arg(r.max).arg(r.window_ms).arg(r.amount);
            if r.rolling {
                cmd.arg(r.bucket_ms);
            }
        }
        cmd
    }

    /// Runs `cmd`, loading the script first if Redis does not know it
    /// (first use, a restart, SCRIPT FLUSH).
    async fn run(
        &self,
        cmd: &redis::Cmd,
        conn: &mut ConnectionManager,
    ) -> redis::RedisResult<redis::Value> {
        match cmd.query_async(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                self.script.load_async(conn).await?;
                cmd.query_async(conn).await
            }
            r => r,
        }
    }
}

/// How a handler's workers batch.
#[derive(Copy, Clone, Debug)]
pub(super) struct Limits {
    /// Allocations in one script call, at most.
    pub(super) max_batch: usize,
    /// Allocations waiting per connection, at most; beyond it a call is
    /// answered by the failure policy at once.
    pub(super) queue: usize,
    /// The longest one batch may take (the call timeout).
    pub(super) timeout: Duration,
}

/// The worker for one connection: runs until every sender (the handler)
/// is gone and the queue is drained.
pub(super) async fn worker(
    mut queue: mpsc::Receiver<Request>,
    mut conn: ConnectionManager,
    script: Arc<BatchScript>,
    limits: Limits,
) {
    let mut batch = Vec::with_capacity(limits.max_batch);
    let mut scratch = Vec::new();
    while queue.recv_many(&mut batch, limits.max_batch).await > 0 {
        batch.retain(|r| !r.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let cmd = script.command(&batch, &mut scratch);
        // The connection's response timeout bounds each command; this
        // bounds the batch as a whole (NOSCRIPT costs two more round trips),
        // so that one stuck batch never holds the queue for long.
        let reply = tokio::time::timeout(limits.timeout, script.run(&cmd, &mut conn)).await;
        match reply {
            Ok(Ok(redis::Value::Array(values))) if values.len() == 2 * batch.len() => {
                let mut values = values.into_iter();
                for r in batch.drain(..) {
                    let (granted, second) = (values.next(), values.next());
                    let _ = r.reply.send(outcome(granted, second));
                }
            }
            Ok(Ok(other)) => fail_all(
                &mut batch,
                format!("{NAME}: unexpected reply {other:?}"),
                false,
            ),
            Ok(Err(e)) => fail_all(&mut batch, format!("{NAME}: redis: {e}"), e.is_timeout()),
            Err(_) => fail_all(&mut batch, String::new(), true),
        }
        // The callers just answered usually ask again at once: let them
        // run and queue before the next batch is taken, so that it carries
        // them all. No timer: a queue found empty waits for the next caller.
        tokio::task::yield_now().await;
    }
}

fn outcome(granted: Option<redis::Value>, second: Option<redis::Value>) -> Outcome {
    match (granted, second) {
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

fn fail_all(batch: &mut Vec<Request>, message: String, timed_out: bool) {
    for r in batch.drain(..) {
        let _ = r.reply.send(Outcome::Failed {
            message: message.clone(),
            timed_out,
        });
    }
}
