//! The Mixer's dispatcher: what turns a bag of attributes into decisions
//! (Check, Quota) and telemetry (Report) under a configuration operators
//! change while traffic flows.
//!
//! A [`Dispatcher`] holds the running configuration compiled once into an
//! immutable snapshot: rule conditions and instance fields as compiled
//! expressions, handlers built from their params by the adapters of a
//! [`Registry`](mixer_adapters::Registry), and routing tables per variety
//! and namespace with the default namespace's rules merged in. Requests read
//! the snapshot without a lock; [`Dispatcher::reload`] swaps in a new one
//! atomically, carrying over (with their state) the handlers whose adapter
//! and params did not change, and never replacing a good configuration with
//! a bad one.
//!
//! - [`Dispatcher::check`]: each (handler, instance) asked once; answers
//!   merged in rule order then action order (minimum validity, first
//!   denial, every denial's message joined), the referenced attributes
//!   returned; in-memory handlers answer on the first poll with nothing
//!   spawned; a panicking or slow handler is an error for that request.
//!   [`Dispatcher::check_decision`] is the same without the referenced
//!   attributes, for callers that only answer with the decision.
//! - [`Dispatcher::quota`]: the requested quota's instance built and
//!   allocated; a quota no rule handles is granted (or, by option, denied).
//! - [`Dispatcher::report`] / [`Dispatcher::report_all`]: instances batched
//!   per (handler, template) into bounded per-handler queues, each served
//!   by a worker thread; never waits. A handler whose report is cheap and
//!   cannot block ([`Handler::report_inline`], as the built-in telemetry
//!   adapters: in-memory work or their own bounded queues) takes its
//!   batches on the reporting thread instead, sparing each report a
//!   thread hand-off, and borrowed ([`Handler::report_refs`]): values stay
//!   in the request's bag, so recording into an existing series copies no
//!   string.
//! - An optional check cache keyed on the referenced attribute set.
//! - [`Dispatcher::metrics`]: counts by outcome, per-handler calls, errors
//!   and time, queue drops, reloads, match errors, handlers' own counters.
//!
//! [`Handler::report_inline`]: mixer_adapters::Handler::report_inline
//! [`Handler::report_refs`]: mixer_adapters::Handler::report_refs
//!
//! ```
//! use mixer_adapters::Registry;
//! use mixer_attributes::{OwnedBag, Value};
//! use mixer_config::load::Documents;
//! use mixer_dispatch::{Dispatcher, Options};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), mixer_dispatch::Error> {
//! let yaml = r#"
//! apiVersion: config.istio.io/v1alpha2
//! kind: handler
//! metadata: {name: deny-all, namespace: istio-system}
//! spec:
//!   compiledAdapter: denier
//!   params: {status: {code: 7, message: "not today"}}
//! ---
//! apiVersion: config.istio.io/v1alpha2
//! kind: instance
//! metadata: {name: nothing, namespace: istio-system}
//! spec: {compiledTemplate: checknothing}
//! ---
//! apiVersion: config.istio.io/v1alpha2
//! kind: rule
//! metadata: {name: deny-bots, namespace: istio-system}
//! spec:
//!   match: request.useragent == "bot"
//!   actions: [{handler: deny-all, instances: [nothing]}]
//! "#;
//! let dispatcher = Dispatcher::new(
//!     Registry::builtin(),
//!     tokio::runtime::Handle::current(),
//!     Options::default(),
//! );
//! let mut docs = Documents::new();
//! docs.add_yaml("policy.yaml", yaml);
//! dispatcher.load(docs)?;
//!
//! let bot = OwnedBag::new().with("request.useragent", Value::String("bot".into()));
//! let outcome = dispatcher.check(&bot).await;
//! assert_eq!(outcome.status.code, 7);
//! assert_eq!(outcome.status.message, "deny-all.handler.istio-system: not today");
//!
//! let human = OwnedBag::new().with("request.useragent", Value::String("curl".into()));
//! assert!(dispatcher.check(&human).await.status.is_ok());
//! # Ok(())
//! # }
//! ```

mod cache;
mod call;
mod check;
mod coarse_clock;
mod dispatcher;
mod error;
mod handler_docs;
mod instance;
mod metrics;
mod options;
mod quota;
mod report;
mod request;
mod schema;
mod slot;
mod snapshot;

pub use check::{CheckDecision, CheckOutcome};
pub use dispatcher::Dispatcher;
pub use error::{Error, Problem};
pub use handler_docs::{params_problems, params_problems_of, read as document_handlers};
pub use metrics::{MetricKind, Sample};
pub use options::Options;
pub use quota::{QuotaOutcome, QuotaRequest};
pub use report::ReportOutcome;
pub use schema::schemas;
pub use slot::closed;
pub use snapshot::ReloadSummary;
