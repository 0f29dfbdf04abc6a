//! The [`Dispatcher`]: the running snapshot, its reloads, and what the
//! host reads back (metrics, handlers).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use mixer_adapters::{Handler, Registry};
use mixer_config::load::Documents;
use mixer_config::model::Config;
use mixer_config::schema::Schemas;
use mixer_config::validate::Validator;
use parking_lot::Mutex;
use tokio::runtime::Handle;

use crate::cache::CheckCache;
use crate::error::Error;
use crate::handler_docs;
use crate::metrics::{Metrics, Sample};
use crate::options::Options;
use crate::request::NamespaceIds;
use crate::snapshot::{self, BuildContext, ReloadSummary, Snapshot};

/// Turns attribute bags into decisions and telemetry under a configuration
/// that can be swapped while requests flow.
///
/// Cheap to clone (one `Arc`), `Send + Sync`: share one among every task of
/// a server. Dropping the last clone lets every handler go: report queues
/// drain, then handlers close.
#[derive(Clone)]
pub struct Dispatcher {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) snapshot: ArcSwap<Snapshot>,
    pub(crate) options: Options,
    pub(crate) metrics: Metrics,
    pub(crate) cache: Option<CheckCache>,
    pub(crate) ids: NamespaceIds,
    registry: Registry,
    runtime: Handle,
    /// Serializes reloads; holds the last generation handed out.
    reload: Mutex<u64>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("generation", &self.generation())
            .field("adapters", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

impl Dispatcher {
    /// A dispatcher with no configuration (every check OK with the default
    /// validity, every quota granted, reports go nowhere) for the adapters
    /// of `registry`. Handlers run their background work, report workers
    /// (on its blocking pool) and the check cache's clock run on `runtime`,
    /// which needs its time driver (`enable_time`).
    pub fn new(registry: Registry, runtime: Handle, options: Options) -> Dispatcher {
        let cache = (options.check_cache_capacity > 0).then(|| {
            CheckCache::new(
                options.check_cache_capacity,
                options.clock.clone(),
                &runtime,
            )
        });
        Dispatcher {
            inner: Arc::new(Inner {
                snapshot: ArcSwap::from_pointee(Snapshot::empty()),
                metrics: Metrics::default(),
                cache,
                ids: NamespaceIds::new(),
                registry,
                runtime,
                reload: Mutex::new(0),
                options,
            }),
        }
    }

    /// The templates and adapters this dispatcher supports, as the config
    /// validator's schemas: validate a configuration against them, then
    /// [`reload`](Dispatcher::reload) it.
    pub fn schemas(&self) -> Schemas {
        crate::schema::schemas(&self.inner.registry)
    }

    /// The options it was made with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// Validates `documents` and applies them ([`reload`](Dispatcher::reload)).
    /// Validation problems and handler problems come back together, each
    /// naming its object and field; the running configuration then stays.
    pub fn load(&self, documents: Documents) -> Result<ReloadSummary, Error> {
        let schemas = self.schemas();
        // Read before validation takes the documents: a config failing
        // validation gets its handlers' params checked in the same pass.
        let handlers = handler_docs::read(
            &documents,
            &self.inner.registry,
            &self.inner.options.default_namespace,
        );
        let validated = Validator::new(&schemas)
            .default_namespace(&self.inner.options.default_namespace)
            .validate(documents);
        match validated {
            Ok(config) => self.reload(config),
            Err(e) => {
                let params = match &e {
                    mixer_config::Error::Invalid { errors, .. } => {
                        handler_docs::params_problems(&handlers, &self.inner.registry, errors)
                    }
                    _ => Vec::new(),
                };
                let params = params.iter().map(crate::error::Problem::from_config);
                let mut e = Error::from_config(e);
                if let Error::Invalid { problems } = &mut e {
                    problems.extend(params);
                }
                self.rejected(&e);
                Err(e)
            }
        }
    }

    /// Compiles `config` into a new snapshot and swaps it in atomically.
    ///
    /// Handlers whose adapter and params are unchanged are carried over with
    /// their state; the others are built (and the ones let go are closed
    /// once no request uses them). Requests in flight finish on the
    /// snapshot they started with. On any problem nothing changes and
    /// every problem is returned.
    pub fn reload(&self, config: Config) -> Result<ReloadSummary, Error> {
        let mut generation = self.inner.reload.lock();
        let old = self.inner.snapshot.load_full();
        let ctx = BuildContext {
            registry: &self.inner.registry,
            runtime: &self.inner.runtime,
            clock: &self.inner.options.clock,
            queue_capacity: self.inner.options.report_queue_capacity,
            generation: *generation + 1,
        };
        match snapshot::build(config, &old, &ctx) {
            Ok((snap, summary)) => {
                *generation += 1;
                self.inner.snapshot.store(Arc::new(snap));
                if let Some(cache) = &self.inner.cache {
                    cache.clear(*generation);
                }
                self.inner
                    .metrics
                    .reloads_ok
                    .fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    generation = *generation,
                    built = summary.built.len(),
                    reused = summary.reused.len(),
                    replaced = summary.replaced.len(),
                    rules = summary.rules,
                    "configuration applied"
                );
                Ok(summary)
            }
            Err(problems) => {
                let e = Error::Invalid { problems };
                self.rejected(&e);
                Err(e)
            }
        }
    }

    fn rejected(&self, e: &Error) {
        self.inner
            .metrics
            .reloads_failed
            .fetch_add(1, Ordering::Relaxed);
        tracing::warn!("configuration rejected, the running one stays: {e}");
    }

    /// The running configuration's generation: 0 before the first, then 1,
    /// 2... for each one applied.
    pub fn generation(&self) -> u64 {
        self.inner.snapshot.load().generation
    }

    /// The running handler named `name` (fully qualified), if some rule
    /// uses it.
    pub fn handler(&self, name: &str) -> Option<Arc<dyn Handler>> {
        self.inner
            .snapshot
            .load()
            .handler(name)
            .map(|s| s.handler.clone())
    }

    /// Resolves once every report batch accepted so far has been handed to
    /// its handler: for a graceful shutdown, with a timeout of the caller's
    /// choosing around it (a hung handler never finishes).
    pub async fn flush(&self) {
        let snap = self.inner.snapshot.load_full();
        for h in &snap.handlers {
            h.flush().await;
        }
    }

    /// The dispatcher's metrics now, with the running handlers' own
    /// counters (labelled `handler`).
    pub fn metrics(&self) -> Vec<Sample> {
        let snap = self.inner.snapshot.load_full();
        self.inner
            .metrics
            .samples(&snap.handlers, self.inner.cache.as_ref())
    }
}
