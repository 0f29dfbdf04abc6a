//! The `listchecker` adapter: allows or denies a `listentry` value by
//! whether it is in a list, fetched from a provider and refreshed in the
//! background.
//!
//! | param | default | rule |
//! |---|---|---|
//! | `providerUrl` | none | `http://`, `https://`, or `file://` (Better) |
//! | `caCertificates` | system roots | path of a PEM bundle an `https://` provider's certificate must chain to, instead of the system's; must not be empty; read when the handler is built (Different: the original always used the system roots) |
//! | `refreshInterval` | 60s | >= 1s |
//! | `ttl` | 300s | >= `refreshInterval` |
//! | `cachingInterval` | 300s | the `validDuration` of every answer |
//! | `cachingUseCount` | 10000 | the `validUseCount` of every answer; 0 to 2^31-1 |
//! | `overrides` | [] | entries always in the list; each must parse as the entry type |
//! | `entryType` | STRINGS | STRINGS, CASE_INSENSITIVE_STRINGS, IP_ADDRESSES, REGEX |
//! | `blacklist` | false | true: a listed value is denied; false: an unlisted value is denied |
//!
//! Decisions:
//! - Denials are `PERMISSION_DENIED` with `<value> is blacklisted` or
//!   `<value> is not whitelisted`.
//! - A value that is not a string or an IP, or a non-IP given to an
//!   IP_ADDRESSES list, is answered `INVALID_ARGUMENT`.
//! - With a provider: before the first successful fetch, and once the last
//!   successful fetch is older than `ttl`, the handler answers an adapter
//!   error (`UNAVAILABLE`) so the client's fail policy decides. A failed
//!   refresh keeps the last good list until then.
//! - IP lookups are a binary search over merged ranges; string lookups a
//!   hash lookup; REGEX entries are one `RegexSet` (unanchored, any match).
//!
//! TLS: `https://` uses rustls (ring), TLS 1.2 or 1.3, and checks the
//! certificate against the host of the URL (a DNS name or an IP address).
//! Without `caCertificates` the roots are the PEM file named by
//! `SSL_CERT_FILE`, else the first of [`SYSTEM_BUNDLES`] that exists; a
//! missing or unusable bundle fails the build, naming the file. The fetch
//! timeout covers connecting and the handshake; a handshake failure (an
//! untrusted certificate, a wrong host) is a failed fetch like any other.
//!
//! Limits: a provider body is at most [`MAX_BODY_BYTES`]; a REGEX list
//! compiles to at most [`REGEX_SIZE_LIMIT`] bytes.

mod fetch;
mod handler;
mod ipset;
mod matcher;
mod tls;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::time::Duration;

use crate::params::{Fields, ParamErrors};
use crate::template::Template;
use crate::{Adapter, BuildEnv, Error, Handler, HandlerBuilder, Params};

pub use fetch::{MAX_BODY_BYTES, Provider};
pub use handler::ListHandler;
pub use matcher::{EntryType, REGEX_SIZE_LIMIT};
pub use tls::SYSTEM_BUNDLES;

/// The adapter's name.
pub const NAME: &str = "listchecker";

/// The `listchecker` adapter.
pub fn adapter() -> Arc<dyn Adapter> {
    Arc::new(ListChecker)
}

#[derive(Debug)]
struct ListChecker;

/// Validated listchecker params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListParams {
    /// Where the list comes from; `None`: the overrides are the list.
    pub provider: Option<Provider>,
    /// The provider URL as written.
    pub provider_url: String,
    /// A PEM bundle to trust for `https://` instead of the system roots.
    pub ca_certificates: Option<String>,
    /// How often to re-fetch.
    pub refresh_interval: Duration,
    /// How long a fetched list stays valid without a successful refresh.
    pub ttl: Duration,
    /// `validDuration` of every answer.
    pub caching_interval: Duration,
    /// `validUseCount` of every answer.
    pub caching_use_count: i32,
    /// Entries always in the list.
    pub overrides: Vec<String>,
    /// How entries are read and matched.
    pub entry_type: EntryType,
    /// Deny listed values (true) or unlisted ones (false).
    pub blacklist: bool,
}

const ENTRY_TYPES: &[(&str, EntryType)] = &[
    ("STRINGS", EntryType::Strings),
    (
        "CASE_INSENSITIVE_STRINGS",
        EntryType::CaseInsensitiveStrings,
    ),
    ("IP_ADDRESSES", EntryType::IpAddresses),
    ("REGEX", EntryType::Regex),
];

impl ListParams {
    /// Reads and validates params.
    pub fn parse(params: &Params) -> Result<ListParams, Error> {
        let mut errs = ParamErrors::new();
        let root = Fields::root(params.value(), &mut errs);
        let provider_url = root.string("providerUrl", &mut errs).unwrap_or_default();
        let provider = if provider_url.is_empty() {
            None
        } else {
            match Provider::parse(&provider_url) {
                Ok(p) => Some(p),
                Err(m) => {
                    errs.push("providerUrl", m);
                    None
                }
            }
        };
        // Only the path is checked here: reading the file is the build's
        // side effect.
        let ca_certificates = root.string("caCertificates", &mut errs);
        if ca_certificates.as_deref() == Some("") {
            errs.push("caCertificates", "must not be empty");
        }
        let refresh_interval = root
            .duration("refreshInterval", &mut errs)
            .unwrap_or(Duration::from_secs(60));
        if refresh_interval < Duration::from_secs(1) {
            errs.push("refreshInterval", "must be at least 1s");
        }
        let ttl = root
            .duration("ttl", &mut errs)
            .unwrap_or(Duration::from_secs(300));
        if ttl < refresh_interval {
            errs.push("ttl", "must be at least refreshInterval");
        }
        let caching_interval = root
            .duration("cachingInterval", &mut errs)
            .unwrap_or(Duration::from_secs(300));
        let caching_use_count = match root.int("cachingUseCount", &mut errs) {
            None => 10_000,
            Some(n) => i32::try_from(n)
                .ok()
                .filter(|n| *n >= 0)
                .unwrap_or_else(|| {
                    errs.push(
                        "cachingUseCount",
                        format!("must be between 0 and {}, got {n}", i32::MAX),
                    );
                    0
                }),
        };
        let overrides: Vec<String> = root
            .strings("overrides", &mut errs)
            .into_iter()
            .map(|s| s.trim().to_string())
            .collect();
        let entry_type = root
            .enumeration("entryType", ENTRY_TYPES, &mut errs)
            .unwrap_or(EntryType::Strings);
        if let Err((i, m)) = matcher::Matcher::build(entry_type, &overrides) {
            errs.push(format!("overrides[{i}]"), m);
        }
        let blacklist = root.bool("blacklist", &mut errs).unwrap_or(false);
        root.finish(&mut errs);
        errs.into_result(
            NAME,
            ListParams {
                provider,
                provider_url,
                ca_certificates,
                refresh_interval,
                ttl,
                caching_interval,
                caching_use_count,
                overrides,
                entry_type,
                blacklist,
            },
        )
    }
}

impl Adapter for ListChecker {
    fn name(&self) -> &str {
        NAME
    }
    fn description(&self) -> &str {
        "allows or denies values by a list (strings, IP ranges or regexes)"
    }
    fn templates(&self) -> &[Template] {
        &[Template::ListEntry]
    }
    fn validate(&self, params: &Params) -> Result<Box<dyn HandlerBuilder>, Error> {
        Ok(Box::new(ListParams::parse(params)?))
    }
}

impl HandlerBuilder for ListParams {
    fn build(self: Box<Self>, env: &BuildEnv) -> Result<Arc<dyn Handler>, Error> {
        Ok(Arc::new(ListHandler::start(*self, env)?))
    }
}
