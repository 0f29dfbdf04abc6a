//! Templates, the adapter contract and registry, and the built-in adapters
//! of the Mixer: what turns an instance (attributes mapped onto a
//! template's fields) into a decision or into telemetry.
//!
//! - [`template`]: the six templates, each as a [`TemplateSchema`] (data,
//!   for the config validator) and as a typed instance handlers receive.
//! - [`Adapter`]: a kind of handler; validates its [`Params`] without side
//!   effects (every problem named by its field path, see [`params`]) into a
//!   [`HandlerBuilder`], which builds a [`Handler`] in a [`BuildEnv`] (a
//!   tokio runtime for background work and a [`Clock`]).
//! - [`Handler`]: answers checks and quotas with an [`Answer`] (`Ready`
//!   inline for in-memory handlers, so nothing is spawned or boxed;
//!   `Pending` for I/O), takes report batches without ever blocking, exposes
//!   [`Counter`]s and closes.
//! - [`Registry`]: the built-ins whose cargo feature is on, open to the
//!   host's own adapters.
//!
//! Each built-in adapter lives in its own module behind its own cargo
//! feature (all on by default): `denier`, `list` (`listchecker`),
//! `memquota`, `redisquota`, `prometheus`, `stdio`, `fluentd`, `statsd`.
//!
//! A host's own adapter plugs in beside the built-ins:
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use mixer_adapters::params::{Fields, ParamErrors};
//! use mixer_adapters::template::{CheckInstance, CheckNothingInstance, Template};
//! use mixer_adapters::{
//!     Adapter, Answer, BuildEnv, CheckResult, Error, Handler, HandlerBuilder, Params, Registry,
//! };
//!
//! /// Allows everything, for `validFor`.
//! struct AllowAll;
//! #[derive(Debug)]
//! struct AllowAllParams(Duration);
//! struct AllowAllHandler(Duration);
//!
//! impl Adapter for AllowAll {
//!     fn name(&self) -> &str { "allowall" }
//!     fn templates(&self) -> &[Template] { &[Template::CheckNothing] }
//!     fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
//!         let mut errs = ParamErrors::new();
//!         let root = Fields::root(params.value(), &mut errs);
//!         let d = root.duration("validFor", &mut errs).unwrap_or(Duration::from_secs(5));
//!         root.finish(&mut errs);
//!         errs.into_result(self.name(), Box::new(AllowAllParams(d)) as _)
//!     }
//! }
//! impl HandlerBuilder for AllowAllParams {
//!     fn build(self: Box<Self>, _env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
//!         Ok(Arc::new(AllowAllHandler(self.0)))
//!     }
//! }
//! impl Handler for AllowAllHandler {
//!     fn check<'a>(&'a self, _: &'a CheckInstance) -> Answer<'a, CheckResult> {
//!         Answer::ok(CheckResult::ok(self.0, 100))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Error> {
//! let mut registry = Registry::builtin();
//! registry.register(Arc::new(AllowAll))?;
//!
//! let bad = registry.validate("allowall", &Params::new(serde_json::json!({"validFr": "1s"})));
//! assert_eq!(
//!     bad.unwrap_err().to_string(),
//!     "invalid params for adapter `allowall`: validFr: unknown field (expected one of: validFor)"
//! );
//!
//! let params = Params::new(serde_json::json!({"validFor": "2s"}));
//! let handler = registry.validate("allowall", &params)?.build(&BuildEnv::current())?;
//! let instance = CheckInstance::CheckNothing(CheckNothingInstance { name: "i.instance.ns".into() });
//! match handler.check(&instance) {
//!     Answer::Ready(result) => assert_eq!(result?.valid_duration, Duration::from_secs(2)),
//!     Answer::Pending(_) => unreachable!("answered inline"),
//! }
//! # Ok(())
//! # }
//! ```

mod adapter;
mod clock;
#[cfg(any(feature = "memquota", feature = "redisquota", feature = "prometheus"))]
mod decimal;
mod error;
mod handler;
pub mod params;
#[cfg(any(feature = "memquota", feature = "redisquota"))]
mod quota_key;
mod registry;
pub mod template;

pub use adapter::{Adapter, BuildEnv, HandlerBuilder, Params};
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, FieldError};
pub use handler::{
    Answer, BoxFuture, CheckResult, Counter, Handler, QuotaArgs, QuotaResult, Status,
};
pub use registry::Registry;
pub use template::{Template, TemplateSchema, Variety};

#[cfg(feature = "denier")]
pub mod denier;
#[cfg(feature = "fluentd")]
pub mod fluentd;
#[cfg(feature = "list")]
pub mod list;
#[cfg(feature = "memquota")]
pub mod memquota;
#[cfg(feature = "prometheus")]
pub mod prometheus;
#[cfg(feature = "redisquota")]
pub mod redisquota;
#[cfg(feature = "statsd")]
pub mod statsd;
#[cfg(feature = "stdio")]
pub mod stdio;
