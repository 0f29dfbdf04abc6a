//! [`ServerStats`]: the server's own counters, read at one moment.

use std::sync::atomic::Ordering;

use crate::shared::{Method, Shared};

/// Counters of one method since the server started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MethodCounts {
    /// Streams opened.
    pub streams: u64,
    /// Requests read.
    pub requests: u64,
    /// Requests answered with a status other than OK (denials included).
    pub not_ok: u64,
    /// Requests refused as invalid (`INVALID_ARGUMENT`): malformed, a bad
    /// update, over a decoder limit or the message size limit.
    pub invalid: u64,
    /// Requests refused by load shedding (`UNAVAILABLE`).
    pub shed: u64,
    /// Streams ended by a transport error (a message over the ceiling, a
    /// truncated frame...).
    pub stream_errors: u64,
}

/// The server's counters at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Streams open now.
    pub open_streams: usize,
    /// Requests being dispatched now.
    pub in_flight: usize,
    /// Streams refused (over the limit, or shutting down).
    pub streams_refused: u64,
    /// Config directory reloads applied.
    pub config_reloads_ok: u64,
    /// Config directory reloads rejected (the old config kept serving).
    pub config_reloads_failed: u64,
    /// Per method, in the order of [`Method::ALL`].
    pub methods: [MethodCounts; 3],
}

impl ServerStats {
    pub(crate) fn read(shared: &Shared) -> ServerStats {
        let s = &shared.stats;
        let count = |m: Method| {
            let c = s.method(m);
            MethodCounts {
                streams: c.streams.load(Ordering::Relaxed),
                requests: c.requests.load(Ordering::Relaxed),
                not_ok: c.not_ok.load(Ordering::Relaxed),
                invalid: c.invalid.load(Ordering::Relaxed),
                shed: c.shed.load(Ordering::Relaxed),
                stream_errors: c.stream_errors.load(Ordering::Relaxed),
            }
        };
        ServerStats {
            open_streams: shared.open_streams(),
            in_flight: shared.in_flight(),
            streams_refused: s.streams_refused.load(Ordering::Relaxed),
            config_reloads_ok: s.config_reloads_ok.load(Ordering::Relaxed),
            config_reloads_failed: s.config_reloads_failed.load(Ordering::Relaxed),
            methods: Method::ALL.map(count),
        }
    }

    /// The counters of one method.
    pub fn method(&self, m: Method) -> &MethodCounts {
        &self.methods[m as usize]
    }
}
