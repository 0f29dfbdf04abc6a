//! The redisquota handler: a pool of self-reconnecting connections and the
//! two window scripts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use mixer_proto::code;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{Algorithm, FailurePolicy, NAME, QuotaConfig, RedisQuotaParams};
use crate::quota_key::{matches, write_key};
use crate::template::QuotaInstance;
use crate::{Answer, BuildEnv, Counter, Error, Handler, QuotaArgs, QuotaResult, Status};

/// The length of every key prefix: `mixer:rq:` and one letter and `:`.
const PREFIX_LEN: usize = b"mixer:rq:h:".len();

/// How long an answer made up by the failure policy stays valid at most,
/// so callers come back soon after Redis does.
const FAILURE_VALIDITY: Duration = Duration::from_secs(1);

/// A redisquota handler.
pub struct RedisQuotaHandler {
    quotas: HashMap<String, QuotaConfig>,
    pool: Vec<ConnectionManager>,
    next: AtomicUsize,
    fixed: redis::Script,
    rolling: redis::Script,
    policy: FailurePolicy,
    timeout: Duration,
    backend_errors: AtomicU64,
    timeouts: AtomicU64,
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
    /// up yet.
    pub fn new(params: RedisQuotaParams, env: &BuildEnv) -> Result<RedisQuotaHandler, Error> {
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
        let pool = (0..params.connection_pool_size)
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Build(format!("{NAME}: {e}")))?;
        Ok(RedisQuotaHandler {
            quotas: params
                .quotas
                .into_iter()
                .map(|q| (q.name.clone(), q))
                .collect(),
            pool,
            next: AtomicUsize::new(0),
            fixed: redis::Script::new(include_str!("fixed_window.lua")),
            rolling: redis::Script::new(include_str!("rolling_window.lua")),
            policy: params.failure_policy,
            timeout: params.call_timeout,
            backend_errors: AtomicU64::new(0),
            timeouts: AtomicU64::new(0),
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
        // The counter's key is built once, straight after its prefix; the
        // deduplication key only when there is an id, and then passed as
        // the scripts' last key.
        let mut counter = Vec::with_capacity(64);
        // Fixed windows count in a string, rolling ones in a hash: the
        // prefixes differ so that a key never changes type.
        counter.extend_from_slice(match quota.algorithm {
            Algorithm::FixedWindow => b"mixer:rq:f:",
            Algorithm::RollingWindow => b"mixer:rq:h:",
        });
        write_key(&mut counter, &instance.name, &instance.dimensions);
        let id = &args.deduplication_id;
        let dedup_key = (!id.is_empty()).then(|| {
            let mut k = format!("mixer:rq:d:{}:{id}", id.len()).into_bytes();
            k.extend_from_slice(&counter[PREFIX_LEN..]);
            k
        });
        let dedup = if dedup_key.is_some() { "1" } else { "0" };
        let best = if args.best_effort { "1" } else { "0" };
        let window = millis(quota.valid_duration);
        let mut conn =
            self.pool[self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len()].clone();
        let call = async {
            match quota.algorithm {
                Algorithm::FixedWindow => {
                    let mut inv = self.fixed.key(&counter);
                    if let Some(d) = &dedup_key {
                        inv.key(d);
                    }
                    inv.arg(max)
                        .arg(window)
                        .arg(args.amount)
                        .arg(best)
                        .arg(dedup)
                        .invoke_async::<(i64, i64)>(&mut conn)
                        .await
                }
                Algorithm::RollingWindow => {
                    let mut buckets = counter.clone();
                    buckets[PREFIX_LEN - 2] = b'z';
                    let mut inv = self.rolling.key(&counter);
                    inv.key(buckets);
                    if let Some(d) = &dedup_key {
                        inv.key(d);
                    }
                    inv.arg(max)
                        .arg(window)
                        .arg(millis(quota.bucket_duration))
                        .arg(args.amount)
                        .arg(best)
                        .arg(dedup)
                        .invoke_async::<(i64, i64)>(&mut conn)
                        .await
                }
            }
        };
        let failure = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok((granted, ttl_ms))) => {
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
            Ok(Err(e)) if e.is_timeout() => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: String::new(),
                    timed_out: true,
                }
            }
            Ok(Err(e)) => {
                self.backend_errors.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: format!("{NAME}: redis: {e}"),
                    timed_out: false,
                }
            }
            Err(_) => {
                self.timeouts.fetch_add(1, Ordering::Relaxed);
                Failure {
                    message: String::new(),
                    timed_out: true,
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
