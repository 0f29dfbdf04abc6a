//! The client: the three streams behind the cache, the prefetch, the report
//! buffer and the failure policy.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use mixer_attributes::{Bag, OwnedBag};
use mixer_proto::code;
use mixer_proto::istio::mixer::v1 as proto;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tonic::transport::{Channel, Endpoint};

use crate::cache::CheckCache;
use crate::error::Error;
use crate::hash::KeyHasher;
use crate::keys::{KeySet, with_scratch};
use crate::options::{FailPolicy, Options};
use crate::prefetch::Prefetch;
use crate::stats::{Counters, Statistics, bump};
use crate::status::{CheckResult, QuotaResult, Source, Status};
use crate::transport::{
    CheckMethod, Method, QuotaMethod, ReportMethod, Transport, TransportOptions,
};

/// A quota allocation sent straight to the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuotaArgs {
    /// The quota's name (the instance name, e.g. `requestcount.quota.istio-system`).
    pub quota: String,
    /// How much to allocate.
    pub amount: i64,
    /// Grant whatever is available rather than all or nothing.
    pub best_effort: bool,
    /// Reused by retries of this call so the server counts it once; one is
    /// generated when `None`.
    pub deduplication_id: Option<String>,
}

/// A Mixer client for the three Generation-1 streams.
///
/// Cheap to clone; every clone shares the streams, cache, quota pools,
/// report buffer and counters, and may be used from many tasks at once.
/// Must be created inside a tokio runtime (it spawns the stream readers and
/// the report flusher). Streams open on first use.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.inner.options.address)
            .finish_non_exhaustive()
    }
}

struct Pool {
    quota: String,
    state: Prefetch,
}

struct ReportBuffer {
    bags: VecDeque<OwnedBag>,
    oldest: Option<Instant>,
}

struct Inner {
    options: Options,
    check: Transport<CheckMethod>,
    quota: Transport<QuotaMethod>,
    report: Transport<ReportMethod>,
    cache: CheckCache,
    quota_keys: KeySet,
    quota_hasher: KeyHasher,
    pools: Mutex<HashMap<u64, Arc<Mutex<Pool>>>>,
    reports: Mutex<ReportBuffer>,
    report_wake: Arc<Notify>,
    /// One flush at a time, so reports go out in the order they came.
    flushing: tokio::sync::Mutex<()>,
    counters: Counters,
    dedup_prefix: u64,
    dedup_next: AtomicU64,
    last_report_warning: Mutex<Option<Instant>>,
}

impl Client {
    /// A client for `options.address`; connects lazily.
    pub fn new(options: Options) -> Result<Client, Error> {
        options.validate()?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::NoRuntime)?;
        let uri = if options.address.contains("://") {
            options.address.clone()
        } else {
            format!("http://{}", options.address)
        };
        let endpoint = Endpoint::from_shared(uri).map_err(|e| Error::InvalidAddress {
            address: options.address.clone(),
            reason: e.to_string(),
        })?;
        let channel: Channel = endpoint
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .connect_lazy();
        let topts = TransportOptions {
            contexts: options.contexts,
            max_in_flight: options.max_in_flight,
            reopen: options.reopen_backoff,
        };
        let cache = CheckCache::new(
            options.cache_keys.clone(),
            options.cache_capacity,
            options.clock.clone(),
        );
        let report_wake = Arc::new(Notify::new());
        let inner = Arc::new(Inner {
            check: Transport::new(channel.clone(), topts.clone()),
            quota: Transport::new(channel.clone(), topts.clone()),
            report: Transport::new(channel, topts),
            cache,
            quota_keys: KeySet::Parts(options.quota.keys.clone()),
            quota_hasher: KeyHasher::random(),
            pools: Mutex::new(HashMap::new()),
            reports: Mutex::new(ReportBuffer {
                bags: VecDeque::new(),
                oldest: None,
            }),
            report_wake: report_wake.clone(),
            flushing: tokio::sync::Mutex::new(()),
            counters: Counters::default(),
            dedup_prefix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(0),
            dedup_next: AtomicU64::new(0),
            last_report_warning: Mutex::new(None),
            options,
        });
        runtime.spawn(flusher(Arc::downgrade(&inner), report_wake));
        Ok(Client { inner })
    }

    /// The options the client was built with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The check cache (for inspection, or to feed it learned answers).
    pub fn cache(&self) -> &CheckCache {
        &self.inner.cache
    }

    /// The counters now.
    pub fn statistics(&self) -> Statistics {
        let mut s = self.inner.counters.snapshot();
        s.streams_opened =
            self.inner.check.opened() + self.inner.quota.opened() + self.inner.report.opened();
        s
    }

    /// Checks `bag`: from the cache when a valid answer is there (no
    /// network call, no allocation), else from the server (caching the
    /// answer, allow or deny), else by the failure policy.
    pub async fn check<B: Bag + Sync + ?Sized>(&self, bag: &B) -> CheckResult {
        let inner = &self.inner;
        let c = &inner.counters;
        bump(&c.checks);
        if let Some(hit) = inner.cache.lookup(bag) {
            bump(if hit.status.is_ok() {
                &c.check_cache_hits_allow
            } else {
                &c.check_cache_hits_deny
            });
            return hit;
        }
        let answer = inner
            .call(&inner.check, bag, &c.remote_check_calls, |index, update| {
                proto::CheckRequest {
                    request_index: index,
                    attribute_update: Some(update),
                }
            })
            .await;
        let result = match answer {
            Ok(resp) => {
                let status = Status::from_proto(resp.result);
                if status.code == code::INTERNAL {
                    inner.policy(Error::Transport {
                        method: "Check",
                        reason: format!("server error: {}", status.message),
                    })
                } else {
                    let result = CheckResult {
                        status,
                        expiration: to_duration(resp.expiration),
                        source: Source::Remote,
                    };
                    inner
                        .cache
                        .insert(bag, &result, inner.options.cache_use_count);
                    result
                }
            }
            Err(e) => inner.policy(e),
        };
        bump(if result.status.is_ok() {
            &c.check_cache_misses_allow
        } else {
            &c.check_cache_misses_deny
        });
        result
    }

    /// Allocates `amount` of `quota` for `bag` from prefetched tokens,
    /// refilling them in the background (see [`crate::PrefetchOptions`]);
    /// with prefetch turned off, asks the server every time.
    pub async fn quota<B: Bag + Sync + ?Sized>(
        &self,
        bag: &B,
        quota: &str,
        amount: i64,
    ) -> QuotaResult {
        let inner = &self.inner;
        bump(&inner.counters.quotas);
        if !inner.options.quota.prefetch {
            return self
                .quota_remote(
                    bag,
                    &QuotaArgs {
                        quota: quota.to_string(),
                        amount,
                        best_effort: false,
                        deduplication_id: None,
                    },
                )
                .await;
        }
        let key = {
            // The key's encoding is self-delimited, so the name can follow.
            with_scratch(|s| {
                inner.quota_keys.encode(bag, s);
                s.key.extend_from_slice(quota.as_bytes());
                inner.quota_hasher.hash(&s.key)
            })
        };
        let pool = inner.pool(key, quota);
        let now = inner.options.clock.now();
        let fail_open = inner.options.fail_policy == FailPolicy::Open;
        let step = {
            let mut p = pool.lock();
            // A hash collision of two pools is rare enough to just ask.
            (p.quota == quota).then(|| p.state.request(amount, now, fail_open))
        };
        let Some(step) = step else {
            let args = QuotaArgs {
                quota: quota.to_string(),
                amount,
                best_effort: false,
                deduplication_id: None,
            };
            return self.quota_remote(bag, &args).await;
        };
        if let Some(ask) = step.fetch {
            bump(&inner.counters.prefetch_calls);
            let this = self.clone();
            let bag = OwnedBag::copy_of(bag);
            let quota = quota.to_string();
            tokio::spawn(async move {
                let inner = &this.inner;
                let args = QuotaArgs {
                    quota,
                    amount: ask,
                    best_effort: true,
                    deduplication_id: None,
                };
                let answer = inner.remote_quota(&bag, &args).await;
                let now = inner.options.clock.now();
                let mut p = pool.lock();
                match answer {
                    Ok(resp)
                        if resp.result.as_ref().is_none_or(|s| {
                            s.code == code::OK || s.code == code::RESOURCE_EXHAUSTED
                        }) =>
                    {
                        p.state
                            .answered(ask, resp.amount, to_duration(resp.expiration), now)
                    }
                    Ok(_) => p.state.failed(false),
                    Err(e) => p
                        .state
                        .failed(e.is_transport() || matches!(e, Error::Timeout { .. })),
                }
            });
        }
        bump(&inner.counters.quota_cache_hits);
        if step.granted {
            QuotaResult {
                status: Status::ok(),
                granted: amount,
                expiration: Duration::ZERO,
                source: Source::Cache,
            }
        } else {
            QuotaResult {
                status: Status::new(
                    code::RESOURCE_EXHAUSTED,
                    format!("quota {quota} exhausted (prefetched tokens used up)"),
                ),
                granted: 0,
                expiration: Duration::ZERO,
                source: Source::Cache,
            }
        }
    }

    /// Allocates quota by asking the server, with no prefetch.
    pub async fn quota_remote<B: Bag + Sync + ?Sized>(
        &self,
        bag: &B,
        args: &QuotaArgs,
    ) -> QuotaResult {
        let inner = &self.inner;
        match inner.remote_quota(bag, args).await {
            Ok(resp) => {
                let status = Status::from_proto(resp.result);
                if status.code == code::INTERNAL && inner.options.fail_policy == FailPolicy::Open {
                    return QuotaResult {
                        status: Status::ok(),
                        granted: args.amount,
                        expiration: Duration::ZERO,
                        source: Source::Policy,
                    };
                }
                QuotaResult {
                    status,
                    granted: resp.amount,
                    expiration: to_duration(resp.expiration),
                    source: Source::Remote,
                }
            }
            Err(e) => {
                let status = inner.policy(e).status;
                let granted = if status.is_ok() { args.amount } else { 0 };
                QuotaResult {
                    status,
                    granted,
                    expiration: Duration::ZERO,
                    source: Source::Policy,
                }
            }
        }
    }

    /// Queues `bag` for the next report batch and returns at once. The
    /// batch goes out when it holds `report.batch_size` entries or its
    /// oldest is `report.max_age` old; past `report.max_buffered` reports
    /// are dropped and counted.
    pub fn report<B: Bag + ?Sized>(&self, bag: &B) {
        let inner = &self.inner;
        bump(&inner.counters.reports);
        let full = {
            let mut buf = inner.reports.lock();
            if buf.bags.len() >= inner.options.report.max_buffered {
                drop(buf);
                bump(&inner.counters.report_drops);
                return;
            }
            if buf.bags.is_empty() {
                buf.oldest = Some(Instant::now());
            }
            buf.bags.push_back(OwnedBag::copy_of(bag));
            buf.bags.len() >= inner.options.report.batch_size
        };
        if full {
            inner.report_wake.notify_one();
        }
    }

    /// Sends one report straight to the server and waits for its answer,
    /// bypassing the batch buffer (for tools; proxies use [`Client::report`]).
    /// The error says why the server could not be reached (the failure
    /// policy does not apply: a report has nothing to let through).
    pub async fn report_remote<B: Bag + Sync + ?Sized>(&self, bag: &B) -> Result<Status, Error> {
        let inner = &self.inner;
        bump(&inner.counters.reports);
        let answer = inner
            .call(
                &inner.report,
                bag,
                &inner.counters.remote_report_calls,
                |index, update| proto::ReportRequest {
                    request_index: index,
                    attribute_update: Some(update),
                },
            )
            .await;
        answer.map(|resp| Status::from_proto(resp.result))
    }

    /// Sends every buffered report now and waits for the server's answers
    /// (or their failure). For shutdown and tests.
    pub async fn flush(&self) {
        self.inner.flush_reports(true).await;
    }
}

impl Inner {
    fn pool(&self, key: u64, quota: &str) -> Arc<Mutex<Pool>> {
        let mut pools = self.pools.lock();
        if let Some(p) = pools.get(&key) {
            return p.clone();
        }
        if pools.len() >= self.options.quota.max_pools {
            // Unlikely in practice (pools are per quota and key values);
            // dropping one costs at most a prefetch.
            if let Some(k) = pools.keys().next().copied() {
                pools.remove(&k);
            }
        }
        let p = Arc::new(Mutex::new(Pool {
            quota: quota.to_string(),
            state: Prefetch::new(self.options.quota.params.clone(), self.options.clock.now()),
        }));
        pools.insert(key, p.clone());
        p
    }

    async fn remote_quota<B: Bag + Sync + ?Sized>(
        &self,
        bag: &B,
        args: &QuotaArgs,
    ) -> Result<proto::QuotaResponse, Error> {
        let dedup = match &args.deduplication_id {
            Some(d) => d.clone(),
            None => format!(
                "{:x}-{}",
                self.dedup_prefix,
                self.dedup_next.fetch_add(1, Ordering::Relaxed)
            ),
        };
        self.call(
            &self.quota,
            bag,
            &self.counters.remote_quota_calls,
            |index, update| proto::QuotaRequest {
                request_index: index,
                attribute_update: Some(update),
                deduplication_id: dedup.clone(),
                quota: args.quota.clone(),
                amount: args.amount,
                best_effort: args.best_effort,
            },
        )
        .await
    }

    /// One remote call with the retry policy.
    async fn call<M: Method, B: Bag + Sync + ?Sized>(
        &self,
        transport: &Transport<M>,
        bag: &B,
        calls: &AtomicU64,
        build: impl Fn(i64, proto::Attributes) -> M::Req,
    ) -> Result<M::Resp, Error> {
        let c = &self.counters;
        let mut attempt = 0;
        loop {
            bump(calls);
            let answer = match transport.send(bag, &build) {
                Ok(call) => transport.wait(call, self.options.timeout).await,
                Err(e) => Err(e),
            };
            let e = match answer {
                Ok(resp) => {
                    bump(&c.remote_successes);
                    return Ok(resp);
                }
                Err(e) => e,
            };
            bump(match &e {
                Error::Timeout { .. } => &c.remote_timeouts,
                e if e.is_transport() => &c.remote_send_errors,
                _ => &c.remote_other_errors,
            });
            if !e.is_transport() || attempt >= self.options.retry.max_retries {
                return Err(e);
            }
            bump(&c.remote_retries);
            tokio::time::sleep(self.options.retry.backoff.delay(attempt)).await;
            attempt += 1;
        }
    }

    /// What the failure policy answers for a call that got no answer.
    fn policy(&self, e: Error) -> CheckResult {
        tracing::debug!(error = %e, "Mixer call failed");
        let status = match self.options.fail_policy {
            FailPolicy::Open => Status::ok(),
            FailPolicy::Close => match &e {
                Error::Timeout { .. } => Status::new(code::DEADLINE_EXCEEDED, e.to_string()),
                _ => Status::new(code::UNAVAILABLE, e.to_string()),
            },
        };
        CheckResult {
            status,
            expiration: Duration::ZERO,
            source: Source::Policy,
        }
    }

    /// Sends the buffered reports if a batch is due (or `force`), pipelined,
    /// then counts the answers.
    async fn flush_reports(&self, force: bool) {
        let _one = self.flushing.lock().await;
        let opts = self.options.report;
        let batch: Vec<OwnedBag> = {
            let mut buf = self.reports.lock();
            let due = buf.bags.len() >= opts.batch_size
                || buf.oldest.is_some_and(|t| t.elapsed() >= opts.max_age);
            if !(force || due) || buf.bags.is_empty() {
                return;
            }
            let n = if force {
                buf.bags.len()
            } else {
                buf.bags.len().min(opts.batch_size)
            };
            let batch = buf.bags.drain(..n).collect();
            buf.oldest = (!buf.bags.is_empty()).then(Instant::now);
            batch
        };
        let c = &self.counters;
        let mut calls = Vec::with_capacity(batch.len());
        let mut failed = 0u64;
        let mut reason = None;
        for bag in &batch {
            bump(&c.remote_report_calls);
            match self.report.send(bag, |index, update| proto::ReportRequest {
                request_index: index,
                attribute_update: Some(update),
            }) {
                Ok(call) => calls.push(call),
                Err(e) => {
                    failed += 1;
                    reason.get_or_insert(e);
                }
            }
        }
        for call in calls {
            match self.report.wait(call, self.options.timeout).await {
                Ok(resp) if resp.result.as_ref().is_none_or(|s| s.code == code::OK) => {
                    bump(&c.remote_successes)
                }
                Ok(resp) => {
                    failed += 1;
                    reason.get_or_insert(Error::Transport {
                        method: "Report",
                        reason: resp.result.map(|s| s.message).unwrap_or_default(),
                    });
                }
                Err(e) => {
                    failed += 1;
                    reason.get_or_insert(e);
                }
            }
        }
        if failed > 0 {
            c.report_drops.fetch_add(failed, Ordering::Relaxed);
            let mut last = self.last_report_warning.lock();
            if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                *last = Some(Instant::now());
                tracing::warn!(
                    dropped = failed,
                    reason = %reason.map(|e| e.to_string()).unwrap_or_default(),
                    "Mixer reports not delivered"
                );
            }
        }
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        let left = self.reports.get_mut().bags.len();
        if left > 0 {
            tracing::warn!(
                dropped = left,
                "Mixer client dropped with reports still buffered; call flush() before dropping it"
            );
        }
    }
}

/// Sends batches when they fill up or age; ends when the client is gone.
async fn flusher(inner: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let wait = {
            let Some(inner) = inner.upgrade() else { return };
            let age = inner.options.report.max_age;
            let buf = inner.reports.lock();
            match buf.oldest {
                Some(t) => age.saturating_sub(t.elapsed()),
                None => age,
            }
        };
        let _ = tokio::time::timeout(wait, wake.notified()).await;
        let Some(inner) = inner.upgrade() else { return };
        inner.flush_reports(false).await;
    }
}

fn to_duration(d: Option<mixer_proto::Duration>) -> Duration {
    d.map_or(Duration::ZERO, |d| {
        if d.seconds < 0 || d.nanos < 0 {
            Duration::ZERO
        } else {
            Duration::new(d.seconds as u64, d.nanos as u32)
        }
    })
}
