//! The proxy-side Mixer client: what lets a proxy call the Mixer only
//! rarely.
//!
//! A [`Client`] speaks the three Generation-1 streams (`Check`, `Quota`,
//! `Report`) of `istio.mixer.v1`:
//!
//! - **Transport**: one long-lived stream per method; requests are
//!   delta-encoded by `mixer_attributes::Encoder` on a pool of attribute
//!   contexts, pipelined and matched to answers by `request_index` (a
//!   per-stream counter from 1). A stream that breaks is re-opened, with
//!   backoff when it never answered, with a fresh dictionary.
//! - **Check cache** ([`CheckCache`]): answers (allows and denials) reused
//!   while the server's expiration and the use count allow, keyed on the
//!   whole request, on configured attributes and string-map keys
//!   (`request.headers/:method`), or on the referenced attributes a host
//!   linking the dispatcher in-process feeds it. LRU, 10,000 entries by
//!   default (sharded by hash past 1,024). Transport failures are never
//!   cached. A lookup encodes the key in one pass into a reused buffer,
//!   hashes it with a random-keyed hash and confirms a hit by comparing
//!   bytes: a hit allocates nothing.
//! - **Quota prefetch** ([`PrefetchOptions`]): the original's predicted
//!   window algorithm, with a documented overshoot bound.
//! - **Report batching**: fire-and-forget, sent by size or age from a
//!   bounded buffer; drops counted.
//! - **Failure policy** ([`FailPolicy`]): fail open (default) or closed;
//!   retries for transport errors only, with jittered exponential backoff;
//!   a per-call timeout.
//! - **Statistics** ([`Statistics`]).
//!
//! ```
//! use mixer_attributes::{OwnedBag, Value};
//! use mixer_client::{Client, FailPolicy, Options, Source};
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // Nothing listens on port 1: the call fails and the policy decides.
//! let mut options = Options::new("127.0.0.1:1");
//! options.timeout = Duration::from_millis(200);
//! let client = Client::new(options.clone()).unwrap();
//! let bag = OwnedBag::new().with("request.path", Value::String("/".into()));
//! let result = client.check(&bag).await;
//! assert!(result.status.is_ok(), "fail open");
//! assert_eq!(result.source, Source::Policy);
//!
//! options.fail_policy = FailPolicy::Close;
//! let closed = Client::new(options).unwrap();
//! assert_eq!(closed.check(&bag).await.status.code, mixer_proto::code::UNAVAILABLE);
//! assert_eq!(closed.statistics().remote_send_errors, 1);
//!
//! // Outside a runtime: an error, not a panic.
//! let elsewhere = std::thread::spawn(|| Client::new(Options::new("127.0.0.1:1")).err());
//! assert!(matches!(elsewhere.join().unwrap(), Some(mixer_client::Error::NoRuntime)));
//! # }
//! ```

mod backoff;
mod cache;
mod client;
mod clock;
mod error;
mod hash;
mod keys;
mod lru;
mod options;
mod prefetch;
mod stats;
mod status;
mod transport;

pub use backoff::Backoff;
pub use cache::{CacheKeys, CheckCache, DEFAULT_CACHE_CAPACITY, MAX_LEARNED_KEY_SETS};
pub use client::{Client, QuotaArgs};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::Error;
pub use keys::KeyPart;
pub use options::{FailPolicy, Options, QuotaOptions, ReportOptions, RetryPolicy};
pub use prefetch::PrefetchOptions;
pub use stats::Statistics;
pub use status::{CheckResult, QuotaResult, Source, Status};
