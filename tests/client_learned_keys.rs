//! Learned cache keys: the check cache fed by the in-process dispatcher's
//! referenced attributes reuses a decision exactly while the attributes
//! (and map keys) it read keep their values, and absent ones stay absent.

use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::Registry;
use mixer_attributes::{OwnedBag, StringMap, Value};
use mixer_client::{CacheKeys, CheckCache, ManualClock, Source, Status};
use mixer_config::load::Documents;
use mixer_dispatch::{Dispatcher, Options};

const CONFIG: &str = r#"
apiVersion: config.istio.io/v1alpha2
kind: handler
metadata: {name: no, namespace: istio-system}
spec: {compiledAdapter: denier, params: {status: {code: 7, message: no}, validDuration: 10s, validUseCount: 3}}
---
apiVersion: config.istio.io/v1alpha2
kind: instance
metadata: {name: nothing, namespace: istio-system}
spec: {compiledTemplate: checknothing}
---
apiVersion: config.istio.io/v1alpha2
kind: rule
metadata: {name: deny-admin-or-bots, namespace: istio-system}
spec:
  match: request.path == "/admin" || (request.headers["x-user"] | "") == "bot"
  actions: [{handler: no, instances: [nothing]}]
"#;

fn bag(path: &str, id: &str, user: Option<&str>) -> OwnedBag {
    let mut headers: StringMap = [("x-request-id", id)].into_iter().collect();
    if let Some(u) = user {
        headers.insert("x-user".into(), u.to_string());
    }
    OwnedBag::new()
        .with("request.path", Value::String(path.into()))
        .with("request.id", Value::String(id.into()))
        .with("request.headers", Value::StringMap(headers))
}

#[tokio::test(flavor = "current_thread")]
async fn learned_keys_follow_what_the_dispatcher_read() {
    let dispatcher = Dispatcher::new(
        Registry::builtin(),
        tokio::runtime::Handle::current(),
        Options::default().without_cache(),
    );
    let mut docs = Documents::new();
    docs.add_yaml("policy.yaml", CONFIG);
    dispatcher.load(docs).unwrap();
    let clock = ManualClock::new();
    let cache = CheckCache::new(CacheKeys::Learned, 100, Arc::new(clock.clone()));

    // What a host does: on a miss, ask the dispatcher and feed the cache.
    let decide = |b: OwnedBag| {
        let dispatcher = dispatcher.clone();
        let cache = &cache;
        async move {
            if let Some(hit) = cache.lookup(&b) {
                return (hit.status.code, hit.source);
            }
            let o = dispatcher.check(&b).await;
            cache.insert_referenced(
                &b,
                &o.referenced,
                &Status::new(o.status.code, o.status.message.as_str()),
                o.valid_duration,
                o.valid_use_count,
            );
            (o.status.code, Source::Remote)
        }
    };

    // A denial: the request id (not read by the rule) does not matter.
    assert_eq!(decide(bag("/admin", "1", None)).await, (7, Source::Remote));
    assert_eq!(decide(bag("/admin", "2", None)).await, (7, Source::Cache));
    assert_eq!(decide(bag("/admin", "3", None)).await, (7, Source::Cache));
    // The denier's valid_use_count is 3: three reuses, then the dispatcher.
    assert_eq!(decide(bag("/admin", "4", None)).await, (7, Source::Cache));
    assert_eq!(decide(bag("/admin", "5", None)).await, (7, Source::Remote));

    // An allow for /public read the path and the absent x-user key.
    assert_eq!(decide(bag("/public", "1", None)).await.1, Source::Remote);
    assert_eq!(decide(bag("/public", "2", None)).await, (0, Source::Cache));
    // x-user appearing changes the answer: no reuse of the allow.
    assert_eq!(
        decide(bag("/public", "3", Some("bot"))).await,
        (7, Source::Remote)
    );
    assert_eq!(
        decide(bag("/public", "4", Some("bot"))).await,
        (7, Source::Cache)
    );
    assert_eq!(
        decide(bag("/public", "5", Some("human"))).await.1,
        Source::Remote
    );

    // Expiry by the decision's valid duration (an allow no handler
    // answered: the dispatcher's default of one minute).
    clock.advance(Duration::from_secs(59));
    assert_eq!(decide(bag("/public", "6", None)).await.1, Source::Cache);
    clock.advance(Duration::from_secs(2));
    assert_eq!(decide(bag("/public", "6", None)).await.1, Source::Remote);
}
