//! The server's limits and timings, all documented as API.

use std::time::Duration;

use mixer_attributes::Limits;

/// How a server bounds its work and memory. [`Options::default`] suits a
/// sidecar-scale deployment; every bound is per server process.
#[derive(Clone, Debug)]
pub struct Options {
    /// What one stream may make the attribute decoder hold (contexts,
    /// dictionary size, attributes per context, value size). Exceeding one
    /// is an `INVALID_ARGUMENT` answer for that request; the stream goes on.
    pub limits: Limits,
    /// Largest request message served, in bytes (default 1 MiB, as the
    /// original). A larger one, up to [`message_ceiling_bytes`], is
    /// answered on its own with `INVALID_ARGUMENT` naming both sizes (its
    /// update is not applied) and the stream goes on.
    ///
    /// [`message_ceiling_bytes`]: Options::message_ceiling_bytes
    pub max_message_bytes: usize,
    /// Largest message read at all (default 4 MiB; taken as
    /// `max_message_bytes` if smaller). A message declaring more ends its
    /// stream with `OUT_OF_RANGE` from its gRPC frame header, before any
    /// of its bytes are buffered; other streams are unaffected. Between
    /// the two limits a message is buffered whole to be answered, so this
    /// bounds what one stream can make the server hold.
    pub message_ceiling_bytes: usize,
    /// Streams open at once across all connections (default 10,000);
    /// beyond it a new stream is refused with `UNAVAILABLE`.
    pub max_streams: usize,
    /// Requests being dispatched at once across all streams (default
    /// 10,000). Beyond it a request is answered `UNAVAILABLE` ("server
    /// overloaded") at once rather than queued: load shedding. Its
    /// attribute update is still applied, so the stream stays in step with
    /// the client's encoder.
    pub max_in_flight: usize,
    /// Requests one stream may have in flight (default 256). Beyond it the
    /// server stops reading that stream until answers complete, so HTTP/2
    /// flow control pushes back on that client alone.
    pub max_in_flight_per_stream: usize,
    /// HTTP/2 streams per connection (SETTINGS_MAX_CONCURRENT_STREAMS,
    /// default 1,000).
    pub max_streams_per_connection: u32,
    /// HTTP/2 keepalive ping interval (default 30 s; `None`: off).
    pub keepalive_interval: Option<Duration>,
    /// How long a keepalive ping may go unanswered before the connection
    /// is closed (default 10 s).
    pub keepalive_timeout: Duration,
    /// TCP keepalive (default 60 s; `None`: off).
    pub tcp_keepalive: Option<Duration>,
    /// On shutdown, how long in-flight requests may take to complete
    /// before connections are dropped (default 10 s).
    pub drain_timeout: Duration,
    /// On shutdown, how long report queues may take to flush (default 5 s).
    pub flush_timeout: Duration,
    /// How often a watched config directory is scanned (default 1 s).
    pub config_poll_interval: Duration,
    /// How long a changed config directory must stay unchanged before it
    /// is reloaded (default 250 ms), so that a tool writing several files
    /// causes one reload, not one per file.
    pub config_debounce: Duration,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            limits: Limits::default(),
            max_message_bytes: mixer_attributes::DEFAULT_MAX_MESSAGE_BYTES,
            message_ceiling_bytes: 4 << 20,
            max_streams: 10_000,
            max_in_flight: 10_000,
            max_in_flight_per_stream: 256,
            max_streams_per_connection: 1_000,
            keepalive_interval: Some(Duration::from_secs(30)),
            keepalive_timeout: Duration::from_secs(10),
            tcp_keepalive: Some(Duration::from_secs(60)),
            drain_timeout: Duration::from_secs(10),
            flush_timeout: Duration::from_secs(5),
            config_poll_interval: Duration::from_secs(1),
            config_debounce: Duration::from_millis(250),
        }
    }
}
