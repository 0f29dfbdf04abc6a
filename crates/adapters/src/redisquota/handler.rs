//! The redisquota handler: a pool of self-reconnecting connections, each
//! sending one caller's allocation at once when free, else the allocations
//! queued for it in batches (see `batch.rs`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mixer_proto::code;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::{mpsc, oneshot};

use super::batch::{self, BatchScript, Connection, Item, Limits, Outcome, PREFIX_LEN, Request};
use super::{Algorithm, FailurePolicy, NAME, QuotaConfig, RedisQuotaParams};
use crate::quota_key::{matches, write_key};
use crate::template::QuotaInstance;
use crate::{Answer, BuildEnv, Counter, Error, Handler, QuotaArgs, QuotaResult, Status};

/// How long an answer made up by the failure policy stays valid at most,
/// so callers come back soon after Redis does.
const FAILURE_VALIDITY: Duration = Duration::from_secs(1);

/// Allocations sent in one script call, at most.
pub const MAX_BATCH: usize = 64;

/// Allocations waiting for one connection, at most.
pub const MAX_QUEUED_PER_CONNECTION: usize = 1024;

/// A redisquota handler.
pub struct RedisQuotaHandler {
    quotas: HashMap<String, QuotaConfig>,
    pool: Vec<(mpsc::Sender<Request>, Arc<Connection>)>,
    next: AtomicUsize,
    policy: FailurePolicy,
    timeout: Duration,
    backend_errors: AtomicU64,
    timeouts: AtomicU64,
    queue_full: AtomicU64,
    policy_answers: AtomicU64,
}

struct Failure {
    message: String,
    timed_out: bool,
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisQuotaHandler {
    /// A handler for validated params. Connects lazily: Redis need not be
    /// up yet. Starts one worker per connection on the build runtime; they
    /// end once the handler is dropped and their queues are drained.
    pub fn new(params: RedisQuotaParams, env: &BuildEnv) -> Result<RedisQuotaHandler, Error> {
        let limits = Limits {
            max_batch: MAX_BATCH,
            queue: MAX_QUEUED_PER_CONNECTION,
            timeout: params.call_timeout,
        };
        RedisQuotaHandler::with_limits(params, env, limits)
    }

    pub(super) fn with_limits(
        params: RedisQuotaParams,
        env: &BuildEnv,
        limits: Limits,
    ) -> Result<RedisQuotaHandler, Error> {
        let client = redis::Client::open(params.redis_url.as_str())
            .map_err(|e| Error::Build(format!("{NAME}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(params.call_timeout))
            .set_response_timeout(Some(params.call_timeout))
            .set_number_of_retries(1)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(Duration::from_millis(500));
        // The connection managers find their runtime from the context.
        let _entered = env.runtime().enter();
        let script = Arc::new(BatchScript::new());
        let mut pool = Vec::with_capacity(params.connection_pool_size);
        for _ in 0..params.connection_pool_size {
            let conn = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
                .map_err(|e| Error::Build(format!("{NAME}: {e}")))?;
            let conn = Arc::new(Connection::new(conn, script.clone(), limits.timeout));
            let (tx, rx) = mpsc::channel(limits.queue);
            env.runtime()
                .spawn(batch::worker(rx, conn.clone(), limits.max_batch));
            pool.push((tx, conn));
        }
        Ok(RedisQuotaHandler {
            quotas: params
                .quotas
                .into_iter()
                .map(|q| (q.name.clone(), q))
                .collect(),
            pool,
            next: AtomicUsize::new(0),
            policy: params.failure_policy,
            timeout: params.call_timeout,
            backend_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
            queue_full: AtomicU64::new(0),
            policy_answers: AtomicU64::new(0),
        })
    }

    async fn allocate(
        &self,
        instance: &QuotaInstance,
        args: &QuotaArgs,
    ) -> Result<QuotaResult, Error> {
        let Some(quota) = self.quotas.get(&*instance.name) else {
            return Err(Error::Unsupported {
                adapter: NAME.into(),
                what: format!("quota {} (not in params.quotas)", instance.name),
            });
        };
        if args.amount <= 0 {
            return Ok(QuotaResult {
                granted: 0,
                valid_duration: quota.valid_duration,
                status: Status::OK,
            });
        }
        let max = quota
            .overrides
            .iter()
            .find(|o| matches(&o.dimensions, &instance.dimensions))
            .map_or(quota.max_amount, |o| o.max_amount);
        // The counter's key straight after its prefix, then the
        // deduplication key only when there is an id, in one buffer.
        let id = &args.deduplication_id;
        let mut keys = Vec::with_capacity(if id.is_empty() { 64 } else { 128 + id.len() });
        // Fixed windows count in a string, rolling ones in a hash: the
        // prefixes differ so that a key never changes type.
        keys.extend_from_slice(match quota.algorithm {
            Algorithm::FixedWindow => b"mixer:rq:f:",
            Algorithm::RollingWindow => b"mixer:rq:h:",
        });
        write_key(&mut keys, &instance.name, &instance.dimensions);
        let counter_len = keys.len();
        if !id.is_empty() {
            use std::io::Write;
            let _ = write!(keys, "mixer:rq:d:{}:{id}", id.len());
            keys.extend_from_within(PREFIX_LEN..counter_len);
        }
        let item = Item {
            keys,
            counter_len,
            rolling: quota.algorithm == Algorithm::RollingWindow,
            best_effort: args.best_effort,
            max,
            window_ms: millis(quota.valid_duration),
            bucket_ms: millis(quota.bucket_duration),
            amount: args.amount,
        };
        let (queue, conn) = &self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()];
        let answer = match conn.try_send_now(queue, &item).await {
            Some(outcome) => Ok(Ok(Ok(outcome))),
            None => {
                let (reply, answer) = oneshot::channel();
                match queue.try_send(Request { item, reply }) {
                    Ok(()) => Ok(tokio::time::timeout(self.timeout, answer).await),
                    Err(e) => Err(e),
                }
            }
        };
        let failure = match answer {
            Ok(Ok(Ok(Outcome::Granted(granted, ttl_ms)))) => {
                let status = if granted == 0 {
                    Status::new(
                        code::RESOURCE_EXHAUSTED,
                        format!("quota {} is exhausted", instance.name),
                    )
                } else {
                    Status::OK
                };
                return Ok(QuotaResult {
                    granted,
                    valid_duration: Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
                    status,
                });
            }
            Ok(Ok(Ok(Outcome::Failed {
                timed_out: true, ..
            })))
            | Ok(Err(_)) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: String::new(),
                    timed_out: true,
                }
            }
            Ok(Ok(Ok(Outcome::Failed { message, .. }))) => {
                self.backend_errors.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message,
                    timed_out: false,
                }
            }
            // The worker is gone: its runtime shut down.
            Ok(Ok(Err(_))) => {
                self.backend_errors.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: format!("{NAME}: the connection's worker has stopped"),
                    timed_out: false,
                }
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.queue_full.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: format!(
                        "{NAME}: {} allocations already wait for this connection",
                        queue.max_capacity()
                    ),
                    timed_out: false,
                }
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.backend_errors.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: format!("{NAME}: the connection's worker has stopped"),
                    timed_out: false,
                }
            }
        };
        self.on_failure(quota, args, failure)
    }

    fn on_failure(
        &self,
        quota: &QuotaConfig,
        args: &QuotaArgs,
        f: Failure,
    ) -> Result<QuotaResult, Error> {
        let error = if f.timed_out {
            Error::Timeout {
                what: format!("{NAME} call"),
                after: self.timeout,
            }
        } else {
            Error::Unavailable(f.message)
        };
        let valid_duration = quota.valid_duration.min(FAILURE_VALIDITY);
        match self.policy {
            FailurePolicy::Error => Err(error),
            FailurePolicy::Grant => {
                self.policy_answers.fetch_add(1, Ordering::Relaxed);
                Ok(QuotaResult {
                    granted: args.amount,
                    valid_duration,
                    status: Status::OK,
                })
            }
            FailurePolicy::Deny => {
                self.policy_answers.fetch_add(1, Ordering::Relaxed);
                Ok(QuotaResult {
                    granted: 0,
                    valid_duration,
                    status: Status::new(code::UNAVAILABLE, format!("{error} (failurePolicy deny)")),
                })
            }
        }
    }
}

impl Handler for RedisQuotaHandler {
    fn quota<'a>(
        &'a self,
        instance: &'a QuotaInstance,
        args: &'a QuotaArgs,
    ) -> Answer<'a, QuotaResult> {
        Answer::pending(self.allocate(instance, args))
    }

    fn counters(&self) -> Vec<Counter> {
        vec![
            Counter {
                name: "backend_errors",
                help: "allocations Redis failed (unreachable or an error)",
                value: self.backend_errors.load(Ordering::Relaxed),
            },
            Counter {
                name: "timeouts",
                help: "allocations that took longer than callTimeout",
                value: self.timeouts.load(Ordering::Relaxed),
            },
            Counter {
                name: "queue_full",
                help: "allocations answered at once because too many already waited for Redis",
                value: self.queue_full.load(Ordering::Relaxed),
            },
            Counter {
                name: "failure_policy_answers",
                help: "answers made by failurePolicy while Redis could not answer",
                value: self.policy_answers.load(Ordering::Relaxed),
            },
        ]
    }
}

impl std::fmt::Debug for RedisQuotaHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisQuotaHandler")
            .field("quotas", &self.quotas.len())
            .field("pool", &self.pool.len())
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}
