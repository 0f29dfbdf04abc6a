//! What every stream of a server shares: the dispatcher, the options, the
//! admission counters and the shutdown signal.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use mixer_dispatch::Dispatcher;
use tokio::sync::watch;

use crate::options::Options;

/// One of the three Generation-1 methods.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// `/istio.mixer.v1.Mixer/Check`.
    Check,
    /// `/istio.mixer.v1.Mixer/Quota`.
    Quota,
    /// `/istio.mixer.v1.Mixer/Report`.
    Report,
}

impl Method {
    /// Every method.
    pub const ALL: [Method; 3] = [Method::Check, Method::Quota, Method::Report];

    /// Lower-case name, as in metric labels.
    pub fn name(self) -> &'static str {
        match self {
            Method::Check => "check",
            Method::Quota => "quota",
            Method::Report => "report",
        }
    }
}

/// Counters of one method.
#[derive(Debug, Default)]
pub(crate) struct MethodStats {
    pub(crate) streams: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) not_ok: AtomicU64,
    pub(crate) invalid: AtomicU64,
    pub(crate) shed: AtomicU64,
    pub(crate) stream_errors: AtomicU64,
}

/// The server's own counters.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    by_method: [MethodStats; 3],
    pub(crate) streams_refused: AtomicU64,
    pub(crate) config_reloads_ok: AtomicU64,
    pub(crate) config_reloads_failed: AtomicU64,
}

impl Stats {
    pub(crate) fn method(&self, m: Method) -> &MethodStats {
        &self.by_method[m as usize]
    }
}

/// State shared by the service, its streams, the watcher and the
/// monitoring endpoint.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) dispatcher: Dispatcher,
    pub(crate) options: Options,
    pub(crate) stats: Stats,
    in_flight: AtomicUsize,
    streams: AtomicUsize,
    shutting_down: AtomicBool,
    shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(dispatcher: Dispatcher, options: Options) -> Shared {
        Shared {
            dispatcher,
            options,
            stats: Stats::default(),
            in_flight: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            shutting_down: AtomicBool::new(false),
            shutdown: watch::channel(false).0,
        }
    }

    /// Takes an in-flight slot; false when the server is saturated.
    pub(crate) fn admit(&self) -> bool {
        let before = self.in_flight.fetch_add(1, Ordering::AcqRel);
        if before >= self.options.max_in_flight {
            self.in_flight.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    /// Gives back `n` in-flight slots.
    pub(crate) fn release(&self, n: usize) {
        if n > 0 {
            self.in_flight.fetch_sub(n, Ordering::AcqRel);
        }
    }

    /// Requests being dispatched now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Takes a stream slot; refused when full or shutting down.
    pub(crate) fn open_stream(&self) -> Result<(), tonic::Status> {
        if self.is_shutting_down() {
            self.stats.streams_refused.fetch_add(1, Ordering::Relaxed);
            return Err(crate::status::shutting_down());
        }
        let before = self.streams.fetch_add(1, Ordering::AcqRel);
        if before >= self.options.max_streams {
            self.streams.fetch_sub(1, Ordering::AcqRel);
            self.stats.streams_refused.fetch_add(1, Ordering::Relaxed);
            return Err(crate::status::too_many_streams(self.options.max_streams));
        }
        Ok(())
    }

    pub(crate) fn stream_closed(&self) {
        self.streams.fetch_sub(1, Ordering::AcqRel);
    }

    /// Streams open now.
    pub(crate) fn open_streams(&self) -> usize {
        self.streams.load(Ordering::Acquire)
    }

    /// Asks every stream to stop reading, answer what it has in flight and
    /// end; new streams are refused from now on.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Release);
        self.shutdown.send_replace(true);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Resolves once shutdown begins.
    pub(crate) fn shutdown_signal(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut rx = self.shutdown.subscribe();
        async move {
            let _ = rx.wait_for(|down| *down).await;
        }
    }
}
