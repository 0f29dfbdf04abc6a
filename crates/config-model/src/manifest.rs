//! Attribute manifests: the vocabulary expressions are checked against.
//!
//! A [`Manifest`] maps attribute names to their [`ValueType`]. The built-in
//! [`Manifest::standard`] is the vocabulary proxies and the platform produce;
//! `kind: attributemanifest` documents add to it with [`Manifest::insert`],
//! which refuses a name already declared with another type.
//!
//! ```
//! use mixer_attributes::ValueType;
//! use mixer_config::manifest::Manifest;
//!
//! let mut m = Manifest::standard();
//! assert_eq!(m.get("request.headers"), Some(ValueType::StringMap));
//! m.insert("request.tenant", ValueType::String).unwrap();
//! let err = m.insert("request.size", ValueType::String).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "attribute 'request.size' is declared as INT64 and as STRING"
//! );
//! ```

use std::collections::BTreeMap;

use mixer_attributes::ValueType;

/// A name declared twice with two different types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("attribute '{name}' is declared as {existing} and as {declared}")]
pub struct ManifestConflict {
    /// The attribute name.
    pub name: String,
    /// The type it already had.
    pub existing: ValueType,
    /// The type the refused declaration gave it.
    pub declared: ValueType,
}

/// Attribute names and their types.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    attrs: BTreeMap<String, ValueType>,
}

use ValueType::{Bool, Duration, Int64, IpAddress, String as Str, StringMap as Map, Timestamp};

/// The standard vocabulary (see the project's vocabulary specification).
const STANDARD: &[(&str, ValueType)] = &[
    // From the proxy.
    ("origin.ip", IpAddress),
    ("origin.uid", Str),
    ("origin.user", Str),
    ("request.headers", Map),
    ("request.id", Str),
    ("request.host", Str),
    ("request.method", Str),
    ("request.path", Str),
    ("request.url_path", Str),
    ("request.query_params", Map),
    ("request.reason", Str),
    ("request.referer", Str),
    ("request.scheme", Str),
    ("request.size", Int64),
    ("request.total_size", Int64),
    ("request.time", Timestamp),
    ("request.useragent", Str),
    ("response.code", Int64),
    ("response.duration", Duration),
    ("response.headers", Map),
    ("response.size", Int64),
    ("response.total_size", Int64),
    ("response.time", Timestamp),
    ("response.grpc_status", Str),
    ("response.grpc_message", Str),
    ("source.uid", Str),
    ("source.user", Str),
    ("source.principal", Str),
    ("destination.uid", Str),
    ("destination.principal", Str),
    ("destination.port", Int64),
    ("connection.event", Str),
    ("connection.id", Str),
    ("connection.received.bytes", Int64),
    ("connection.received.bytes_total", Int64),
    ("connection.sent.bytes", Int64),
    ("connection.sent.bytes_total", Int64),
    ("connection.duration", Duration),
    ("connection.mtls", Bool),
    ("connection.requested_server_name", Str),
    ("context.protocol", Str),
    ("context.proxy_error_code", Str),
    ("context.timestamp", Timestamp),
    ("context.time", Timestamp),
    ("context.reporter.local", Bool),
    ("context.reporter.kind", Str),
    ("context.reporter.uid", Str),
    ("api.service", Str),
    ("api.version", Str),
    ("api.operation", Str),
    ("api.protocol", Str),
    ("request.auth.principal", Str),
    ("request.auth.audiences", Str),
    ("request.auth.presenter", Str),
    ("request.auth.claims", Map),
    ("request.auth.raw_claims", Str),
    ("request.api_key", Str),
    ("check.error_code", Int64),
    ("check.error_message", Str),
    ("check.cache_hit", Bool),
    ("quota.cache_hit", Bool),
    // From the platform (Kubernetes).
    ("source.ip", IpAddress),
    ("source.labels", Map),
    ("source.name", Str),
    ("source.namespace", Str),
    ("source.owner", Str),
    ("source.serviceAccount", Str),
    ("source.services", Str),
    ("source.workload.uid", Str),
    ("source.workload.name", Str),
    ("source.workload.namespace", Str),
    ("destination.ip", IpAddress),
    ("destination.labels", Map),
    ("destination.metadata", Map),
    ("destination.name", Str),
    ("destination.namespace", Str),
    ("destination.owner", Str),
    ("destination.service.uid", Str),
    ("destination.service.name", Str),
    ("destination.service.namespace", Str),
    ("destination.service.host", Str),
    ("destination.serviceAccount", Str),
    ("destination.workload.uid", Str),
    ("destination.workload.name", Str),
    ("destination.workload.namespace", Str),
    ("destination.container.name", Str),
    // Older names still seen in early configs. `destination.service` is one
    // of them too: the expression-language examples of that era use it.
    ("destination.service", Str),
    ("source.service", Str),
    ("source.domain", Str),
    ("target.service", Str),
    ("target.uid", Str),
    ("target.ip", IpAddress),
    ("target.labels", Map),
];

impl Manifest {
    /// An empty manifest.
    pub fn new() -> Manifest {
        Manifest::default()
    }

    /// The standard vocabulary, older names included: the built-in default.
    pub fn standard() -> Manifest {
        Manifest {
            attrs: STANDARD.iter().map(|&(n, t)| (n.to_string(), t)).collect(),
        }
    }

    /// The type of attribute `name`.
    pub fn get(&self, name: &str) -> Option<ValueType> {
        self.attrs.get(name).copied()
    }

    /// True when `name` is declared.
    pub fn contains(&self, name: &str) -> bool {
        self.attrs.contains_key(name)
    }

    /// Declares `name` with type `ty`. Declaring a name again with the same
    /// type is fine; with another type it is refused and the manifest is
    /// left unchanged.
    pub fn insert(&mut self, name: &str, ty: ValueType) -> Result<(), ManifestConflict> {
        match self.attrs.get(name) {
            Some(&existing) if existing != ty => Err(ManifestConflict {
                name: name.to_string(),
                existing,
                declared: ty,
            }),
            Some(_) => Ok(()),
            None => {
                self.attrs.insert(name.to_string(), ty);
                Ok(())
            }
        }
    }

    /// Declares everything `other` declares, collecting every conflict
    /// (the names that do not conflict are still added).
    pub fn merge(&mut self, other: &Manifest) -> Result<(), Vec<ManifestConflict>> {
        let conflicts: Vec<_> = other
            .iter()
            .filter_map(|(n, t)| self.insert(n, t).err())
            .collect();
        if conflicts.is_empty() {
            Ok(())
        } else {
            Err(conflicts)
        }
    }

    /// Declared names and types, in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, ValueType)> + '_ {
        self.attrs.iter().map(|(n, t)| (n.as_str(), *t))
    }

    /// Number of declared names.
    pub fn len(&self) -> usize {
        self.attrs.len()
    }

    /// True when nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.attrs.is_empty()
    }
}

impl<'a> IntoIterator for &'a Manifest {
    type Item = (&'a str, ValueType);
    type IntoIter = Box<dyn Iterator<Item = (&'a str, ValueType)> + 'a>;
    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_has_every_group_and_the_older_names() {
        let m = Manifest::standard();
        assert_eq!(m.len(), STANDARD.len(), "a name is listed twice");
        for (name, ty) in [
            ("origin.ip", IpAddress),
            ("request.time", Timestamp),
            ("response.duration", Duration),
            ("connection.mtls", Bool),
            ("context.reporter.kind", Str),
            ("request.auth.claims", Map),
            ("quota.cache_hit", Bool),
            ("destination.container.name", Str),
            ("target.ip", IpAddress),
            ("target.labels", Map),
            ("source.domain", Str),
        ] {
            assert_eq!(m.get(name), Some(ty), "{name}");
        }
        assert_eq!(m.get("request.nope"), None);
    }

    #[test]
    fn same_type_twice_is_fine_another_is_refused() {
        let mut m = Manifest::standard();
        m.insert("request.path", Str).unwrap();
        let e = m.insert("request.path", Int64).unwrap_err();
        assert_eq!((e.existing, e.declared), (Str, Int64));
        assert_eq!(m.get("request.path"), Some(Str));
        let mut other = Manifest::new();
        other.insert("a.b", Bool).unwrap();
        other.insert("response.code", Str).unwrap();
        let errs = m.merge(&other).unwrap_err();
        assert_eq!(errs.len(), 1);
        assert_eq!(
            errs[0].to_string(),
            "attribute 'response.code' is declared as INT64 and as STRING"
        );
        assert_eq!(m.get("a.b"), Some(Bool));
    }
}
