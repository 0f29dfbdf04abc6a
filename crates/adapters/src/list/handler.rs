//! The listchecker handler: the current list behind an atomic pointer,
//! replaced by a background refresh task.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use mixer_proto::code;
use parking_lot::Mutex;

use super::fetch::Source;
use super::matcher::{Matcher, parse_body};
use super::{ListParams, NAME};
use crate::template::CheckInstance;
use crate::{Answer, BuildEnv, CheckResult, Clock, Counter, Error, Handler, Status};

/// Longest a single fetch may take.
const MAX_FETCH_TIME: Duration = Duration::from_secs(30);

/// A listchecker handler.
pub struct ListHandler {
    shared: Arc<Shared>,
    task: Mutex<Option<tokio::task::AbortHandle>>,
}

struct Shared {
    params: ListParams,
    clock: Arc<dyn Clock>,
    list: ArcSwapOption<Snapshot>,
    refreshes: AtomicU64,
    failures: AtomicU64,
    last_error: Mutex<String>,
}

struct Snapshot {
    matcher: Matcher,
    /// When it was fetched; `None` for a list of overrides only, which
    /// never expires.
    fetched_at: Option<Instant>,
}

impl ListHandler {
    /// Starts a handler: without a provider the overrides are the list;
    /// with one, a background task fetches it now and every
    /// `refreshInterval` on `env`'s runtime.
    pub fn start(params: ListParams, env: &BuildEnv) -> Result<ListHandler, Error> {
        let shared = Arc::new(Shared {
            clock: env.clock().clone(),
            list: ArcSwapOption::empty(),
            refreshes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_error: Mutex::new("the first fetch has not finished".into()),
            params,
        });
        let mut task = None;
        if shared.params.provider.is_none() {
            let matcher = Matcher::build(shared.params.entry_type, &shared.params.overrides)
                .map_err(|(i, m)| Error::Build(format!("overrides[{i}]: {m}")))?;
            shared.list.store(Some(Arc::new(Snapshot {
                matcher,
                fetched_at: None,
            })));
        } else if let Some(provider) = shared.params.provider.clone() {
            let source = Source::new(provider, shared.params.ca_certificates.as_deref())
                .map_err(|e| Error::Build(format!("{NAME}: {e}")))?;
            let s = shared.clone();
            task = Some(env.runtime().spawn(refresh_loop(s, source)).abort_handle());
        }
        Ok(ListHandler {
            shared,
            task: Mutex::new(task),
        })
    }

    fn decide(&self, value: &mixer_attributes::Value) -> Result<CheckResult, Error> {
        let p = &self.shared.params;
        let guard = self.shared.list.load();
        let Some(list) = guard.as_ref() else {
            return Err(Error::Unavailable(format!(
                "{NAME}: no list fetched yet from {}: {}",
                p.provider_url,
                self.shared.last_error.lock()
            )));
        };
        if let Some(at) = list.fetched_at {
            let age = self.shared.clock.now().saturating_duration_since(at);
            if age > p.ttl {
                return Err(Error::Unavailable(format!(
                    "{NAME}: the list from {} expired: last fetched {} ago, ttl {} ({})",
                    p.provider_url,
                    mixer_attributes::format_duration(age),
                    mixer_attributes::format_duration(p.ttl),
                    self.shared.last_error.lock()
                )));
            }
        }
        let status = match list.matcher.contains(value) {
            Ok(found) if found == p.blacklist => Status::new(
                code::PERMISSION_DENIED,
                if p.blacklist {
                    format!("{value} is blacklisted")
                } else {
                    format!("{value} is not whitelisted")
                },
            ),
            Ok(_) => Status::OK,
            Err(message) => Status::new(code::INVALID_ARGUMENT, message),
        };
        Ok(CheckResult {
            status,
            valid_duration: p.caching_interval,
            valid_use_count: p.caching_use_count,
        })
    }
}

async fn refresh_loop(shared: Arc<Shared>, source: Source) {
    let timeout = shared.params.refresh_interval.min(MAX_FETCH_TIME);
    loop {
        let outcome = match source.fetch(timeout).await {
            Ok(body) => {
                let params = shared.params.clone();
                tokio::task::spawn_blocking(move || build(&params, &body))
                    .await
                    .unwrap_or_else(|e| Err(format!("building the list panicked: {e}")))
            }
            Err(e) => Err(e),
        };
        match outcome {
            Ok(matcher) => {
                shared.list.store(Some(Arc::new(Snapshot {
                    matcher,
                    fetched_at: Some(shared.clock.now()),
                })));
                shared.refreshes.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::warn!(provider = %shared.params.provider_url, error = %e, "list refresh failed; keeping the last good list");
                *shared.last_error.lock() = format!("last refresh failed: {e}");
                shared.failures.fetch_add(1, Ordering::Relaxed);
            }
        }
        tokio::time::sleep(shared.params.refresh_interval).await;
    }
}

fn build(params: &ListParams, body: &str) -> Result<Matcher, String> {
    let mut entries = parse_body(params.entry_type, body)?;
    let fetched = entries.len();
    entries.extend(params.overrides.iter().cloned());
    Matcher::build(params.entry_type, &entries).map_err(|(i, m)| {
        if i < fetched {
            format!("entry {} of the list: {m}", i + 1)
        } else {
            format!("overrides[{}]: {m}", i - fetched)
        }
    })
}

impl Handler for ListHandler {
    fn check<'a>(&'a self, instance: &'a CheckInstance) -> Answer<'a, CheckResult> {
        match instance {
            CheckInstance::ListEntry(i) => Answer::Ready(self.decide(&i.value)),
            other => Answer::err(Error::Unsupported {
                adapter: NAME.into(),
                what: format!("template {}", other.template()),
            }),
        }
    }

    fn counters(&self) -> Vec<Counter> {
        vec![
            Counter {
                name: "refreshes",
                help: "successful list fetches",
                value: self.shared.refreshes.load(Ordering::Relaxed),
            },
            Counter {
                name: "refresh_failures",
                help: "failed list fetches (the last good list was kept)",
                value: self.shared.failures.load(Ordering::Relaxed),
            },
        ]
    }

    fn close(&self) -> Answer<'_, ()> {
        if let Some(t) = self.task.lock().take() {
            t.abort();
        }
        Answer::ok(())
    }
}

impl Drop for ListHandler {
    fn drop(&mut self) {
        if let Some(t) = self.task.get_mut().take() {
            t.abort();
        }
    }
}

impl std::fmt::Debug for ListHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListHandler")
            .field("params", &self.shared.params)
            .finish_non_exhaustive()
    }
}
