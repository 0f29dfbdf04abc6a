//! The adapters a host can configure handlers of: the built-ins enabled by
//! cargo features, plus any the host registers.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::Error;
use crate::adapter::{Adapter, HandlerBuilder, Params};

/// Adapters by name.
///
/// Built-in adapter modules each expose `pub fn adapter() -> Arc<dyn
/// Adapter>`; [`Registry::builtin`] holds those whose feature is on.
#[derive(Clone, Default)]
pub struct Registry {
    adapters: BTreeMap<String, Arc<dyn Adapter>>,
}

impl Registry {
    /// A registry with no adapter.
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The built-in adapters whose cargo feature is enabled.
    pub fn builtin() -> Registry {
        let mut r = Registry::new();
        let builtins: Vec<Arc<dyn Adapter>> = vec![
            #[cfg(feature = "denier")]
            crate::denier::adapter(),
            #[cfg(feature = "list")]
            crate::list::adapter(),
            #[cfg(feature = "memquota")]
            crate::memquota::adapter(),
            #[cfg(feature = "redisquota")]
            crate::redisquota::adapter(),
            #[cfg(feature = "prometheus")]
            crate::prometheus::adapter(),
            #[cfg(feature = "stdio")]
            crate::stdio::adapter(),
            #[cfg(feature = "fluentd")]
            crate::fluentd::adapter(),
            #[cfg(feature = "statsd")]
            crate::statsd::adapter(),
            #[cfg(feature = "prometheus")]
            crate::prometheus::adapter(),
            #[cfg(feature = "fluentd")]
            crate::fluentd::adapter(),
            #[cfg(feature = "statsd")]
            crate::statsd::adapter(),
            #[cfg(feature = "stdio")]
            crate::stdio::adapter(),
        ];
        for a in builtins {
            r.adapters.insert(a.name().to_string(), a);
        }
        r
    }

    /// Adds an adapter; its name must not be taken.
    pub fn register(&mut self, adapter: Arc<dyn Adapter>) -> Result<(), Error> {
        let name = adapter.name().to_string();
        if self.adapters.contains_key(&name) {
            return Err(Error::DuplicateAdapter(name));
        }
        self.adapters.insert(name, adapter);
        Ok(())
    }

    /// The adapter named `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Adapter>> {
        self.adapters.get(name)
    }

    /// Validates `params` with the adapter named `adapter`.
    pub fn validate(
        &self,
        adapter: &str,
        params: &Params,
    ) -> Result<Box<dyn HandlerBuilder>, Error> {
        self.get(adapter)
            .ok_or_else(|| Error::UnknownAdapter(adapter.to_string()))?
            .validate(params)
    }

    /// Every adapter, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Adapter>> + '_ {
        self.adapters.values()
    }

    /// Every adapter's name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> + '_ {
        self.adapters.keys().map(String::as_str)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

// Every test here registers the denier.
#[cfg(all(test, feature = "denier"))]
mod tests {
    use super::*;

    #[cfg(all(
        feature = "denier",
        feature = "list",
        feature = "memquota",
        feature = "redisquota",
        feature = "prometheus",
        feature = "stdio",
        feature = "fluentd",
        feature = "statsd"
    ))]
    #[test]
    fn builtins_by_name_with_their_templates() {
        use crate::template::{Template, Variety};

        let r = Registry::builtin();
        let names: Vec<&str> = r.names().collect();
        assert_eq!(
            names,
            [
                "denier",
                "fluentd",
                "listchecker",
                "memquota",
                "prometheus",
                "redisquota",
                "statsd",
                "stdio"
            ]
        );
        let templates = |n: &str| r.get(n).unwrap().templates().to_vec();
        assert_eq!(
            templates("denier"),
            [Template::CheckNothing, Template::ListEntry, Template::Quota]
        );
        assert_eq!(templates("listchecker"), [Template::ListEntry]);
        assert_eq!(templates("memquota"), [Template::Quota]);
        assert_eq!(templates("redisquota"), [Template::Quota]);
        for n in ["prometheus", "stdio", "fluentd", "statsd"] {
            assert!(
                templates(n).iter().all(|t| t.variety() == Variety::Report),
                "{n}"
            );
        }
    }

    #[test]
    fn host_adapters_join_without_clobbering() {
        let mut r = Registry::builtin();
        assert_eq!(
            r.register(crate::denier::adapter()),
            Err(Error::DuplicateAdapter("denier".into()))
        );
        let mut empty = Registry::new();
        empty.register(crate::denier::adapter()).unwrap();
        assert!(empty.get("denier").is_some());
        let e = r.validate("nope", &Params::empty()).unwrap_err();
        assert_eq!(e.to_string(), "no adapter named `nope` is registered");
        assert_eq!(format!("{empty:?}"), "[\"denier\"]");
    }
}
