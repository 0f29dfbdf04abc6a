//! The `denier` adapter: answers every check with one configured status
//! (by default `FAILED_PRECONDITION`), and grants nothing to quotas.
//!
//! | param | default |
//! |---|---|
//! | `status` (`code`, `message`; `code` as a number or a name such as `PERMISSION_DENIED`) | code 9 (FAILED_PRECONDITION), no message |
//! | `validDuration` | 5s |
//! | `validUseCount` | 1000 |
//!
//! A quota against a denier grants 0, with the configured status (or
//! `RESOURCE_EXHAUSTED` if that status is OK) and the configured validity.

use std::sync::Arc;
use std::time::Duration;

use mixer_proto::code;

use crate::params::{Fields, ParamErrors, describe};
use crate::template::{CheckInstance, QuotaInstance, Template};
use crate::{
    Adapter, Answer, BuildEnv, CheckResult, Error, Handler, HandlerBuilder, Params, QuotaArgs,
    QuotaResult, Status,
};

/// The adapter's name.
pub const NAME: &str = "denier";

/// The `denier` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(Denier)
}

#[derive(Debug)]
struct Denier;

/// Validated denier params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DenierParams {
    /// The status of every answer.
    pub status: Status,
    /// The validity of every answer.
    pub valid_duration: Duration,
    /// The use count of every answer.
    pub valid_use_count: i32,
}

impl DenierParams {
    /// Reads and validates params.
    pub fn parse(params: &Params) -> Result<DenierParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let mut status = Status::new(code::FAILED_PRECONDITION, "");
        if let Some(s) = root.object("status", &mut errs) {
            if let Some(c) = s.get("code") {
                match parse_code(c) {
                    Some(c) => status.code = c,
                    None => errs.push(
                        s.path_of("code"),
                        format!(
                            "expected a google.rpc.Code (0 to 16, or a name such as \
                             PERMISSION_DENIED), got {}",
                            describe(c)
                        ),
                    ),
                }
            }
            if let Some(m) = s.string("message", &mut errs) {
                status.message = m;
            }
            // A google.rpc.Status may carry details; a denier has no use for them.
            let _ = s.list("details", &mut errs);
            s.finish(&mut errs);
        }
        let valid_duration = root
            .duration("validDuration", &mut errs)
            .unwrap_or(Duration::from_secs(5));
        let valid_use_count = match root.int("validUseCount", &mut errs) {
            Some(n) if (0..=i64::from(i32::MAX)).contains(&n) => n as i32,
            Some(n) => {
                errs.push(
                    root.path_of("validUseCount"),
                    format!("must be between 0 and {}, got {n}", i32::MAX),
                );
                0
            }
            None => 1000,
        };
        root.finish(&mut errs);
        errs.into_result(
            NAME,
            DenierParams {
                status,
                valid_duration,
                valid_use_count,
            },
        )
    }
}

fn parse_code(v: &serde_json::Value) -> Option<i32> {
    if let Some(s) = v.as_str()
        && let Some(c) = (0..=16).find(|&c| code::name(c) == s)
    {
        return Some(c);
    }
    crate::params::as_int(v)
        .filter(|c| (0..=16).contains(c))
        .map(|c| c as i32)
}

impl Adapter for Denier {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "answers every check with a configured status"
    }
    fn templates(&self) -> &[Template] {
        &[Template::CheckNothing, Template::ListEntry, Template::Quota]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(DenierParams::parse(params)?))
    }
}

impl HandlerBuilder for DenierParams {
    fn build(self: Box<Self>, _env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(DenierHandler { params: *self }))
    }
}

/// A denier handler.
#[derive(Debug)]
pub struct DenierHandler {
    params: DenierParams,
}

impl DenierHandler {
    /// A handler for validated params.
    pub fn new(params: DenierParams) -> DenierHandler {
        DenierHandler { params }
    }
}

impl Handler for DenierHandler {
    fn check<'a>(&'a self, _instance: &'a CheckInstance) -> Answer<'a, CheckResult> {
        Answer::ok(CheckResult {
            status: self.params.status.clone(),
            valid_duration: self.params.valid_duration,
            valid_use_count: self.params.valid_use_count,
        })
    }

    fn quota<'a>(&'a self, _: &'a QuotaInstance, _: &'a QuotaArgs) -> Answer<'a, QuotaResult> {
        let status = if self.params.status.is_ok() {
            Status::new(code::RESOURCE_EXHAUSTED, "denied by denier")
        } else {
            self.params.status.clone()
        };
        Answer::ok(QuotaResult {
            granted: 0,
            valid_duration: self.params.valid_duration,
            status,
        })
    }
}

#[cfg(test)]
mod tests;
