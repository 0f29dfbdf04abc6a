use super::*;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<RedisQuotaParams, Error> {
    RedisQuotaParams::parse(&Params::new(v))
}

fn errors(v: serde_json::Value) -> Vec<String> {
    parse(v)
        .unwrap_err()
        .field_errors()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn defaults_and_every_param() {
    let p =
        parse(json!({"quotas": [{"name": "q", "maxAmount": 5, "validDuration": "1s"}]})).unwrap();
    assert_eq!(p.redis_url, "redis://localhost:6379");
    assert_eq!(p.connection_pool_size, 10);
    assert_eq!(p.failure_policy, FailurePolicy::Grant);
    assert_eq!(p.call_timeout, Duration::from_millis(500));
    assert_eq!(p.quotas[0].algorithm, Algorithm::FixedWindow);
    let p = parse(json!({
        "redisServerUrl": "redis://10.0.0.1:7000/2", "connectionPoolSize": 3,
        "failurePolicy": "deny", "callTimeout": "50ms",
        "quotas": [{"name": "q", "maxAmount": 5, "validDuration": "10s", "bucketDuration": "1s",
            "rateLimitAlgorithm": "ROLLING_WINDOW",
            "overrides": [{"dimensions": {"user": "a"}, "maxAmount": 1}]}]
    }))
    .unwrap();
    assert_eq!(p.redis_url, "redis://10.0.0.1:7000/2");
    assert_eq!(
        (p.connection_pool_size, p.failure_policy),
        (3, FailurePolicy::Deny)
    );
    assert_eq!(p.call_timeout, Duration::from_millis(50));
    let q = &p.quotas[0];
    assert_eq!(
        (q.algorithm, q.bucket_duration),
        (Algorithm::RollingWindow, Duration::from_secs(1))
    );
    assert_eq!(q.overrides[0].max_amount, 1);
}

#[test]
fn validation_errors() {
    assert_eq!(
        errors(json!({})),
        ["quotas: at least one quota is required"]
    );
    assert_eq!(
        errors(json!({
            "quotas": [
                {"maxAmount": -1},
                {"name": "r", "maxAmount": 1, "validDuration": "1s", "rateLimitAlgorithm": "ROLLING_WINDOW"},
                {"name": "s", "maxAmount": 1, "validDuration": "1s", "bucketDuration": "1s",
                 "rateLimitAlgorithm": "ROLLING_WINDOW"},
                {"name": "s", "maxAmount": 1, "validDuration": "0s",
                 "overrides": [{"dimensions": {}, "maxAmount": 0}, {"maxAmount": 2, "validDuration": "1s"}]}
            ],
            "redisServerUrl": "http://x", "connectionPoolSize": 0, "failurePolicy": "open",
            "callTimeout": "0s", "timeout": "1s"
        })),
        [
            "quotas[0].name: is required",
            "quotas[0].maxAmount: must be >= 0, got -1",
            "quotas[0].validDuration: must be greater than 0",
            "quotas[1].bucketDuration: must be greater than 0 for ROLLING_WINDOW",
            "quotas[2].validDuration: must be greater than bucketDuration for ROLLING_WINDOW",
            "quotas[3].name: duplicate quota \"s\"",
            "quotas[3].validDuration: must be greater than 0",
            "quotas[3].overrides[0].dimensions: must name at least one dimension",
            "quotas[3].overrides[0].maxAmount: must be greater than 0, got 0",
            "quotas[3].overrides[1].dimensions: must name at least one dimension",
            "quotas[3].overrides[1].validDuration: unknown field (expected one of: dimensions, maxAmount)",
            "redisServerUrl: \"http://x\": only redis:// URLs are supported",
            "connectionPoolSize: must be between 1 and 1000, got 0",
            "failurePolicy: expected one of grant, deny, error, got \"open\"",
            "callTimeout: must be greater than 0",
            "timeout: unknown field (expected one of: quotas, redisServerUrl, connectionPoolSize, \
             failurePolicy, callTimeout)",
        ]
    );
    assert_eq!(
        errors(
            json!({"quotas": [{"name": "q", "maxAmount": 1, "validDuration": 1}],
            "redisServerUrl": "redis://host:notaport"})
        ),
        [
            "quotas[0].validDuration: expected a duration such as \"5s\" or \"100ms\", got 1",
            "redisServerUrl: \"redis://host:notaport\" is not a Redis address: Redis URL did not parse - InvalidClientConfig",
        ]
    );
}

#[test]
fn validation_needs_no_redis_and_build_does_not_connect() {
    // Nothing listens on port 1: validation and build still succeed.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let params = Params::new(json!({"redisServerUrl": "127.0.0.1:1",
        "quotas": [{"name": "q", "maxAmount": 1, "validDuration": "1s"}]}));
    let h = adapter()
        .validate(&params)
        .unwrap()
        .build(&BuildEnv::new(rt.handle().clone()))
        .unwrap();
    assert_eq!(h.counters()[0].value, 0);
}

#[path = "../../tests/support/redis.rs"]
mod redis_support;

/// The fixed window's edges on a real Redis: a grant refused on an unused
/// counter does not start the window (no key is left), best effort on an
/// unused counter asking past the max gets exactly the max, and a
/// sub-second window ends on time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_edges_on_redis() {
    let Some(server) = redis_support::RedisServer::start("fixed_window_edges_on_redis") else {
        return;
    };
    let params = parse(json!({
        "redisServerUrl": server.addr(),
        "quotas": [{"name": "q", "maxAmount": 4, "validDuration": "300ms"}]
    }))
    .unwrap();
    let h = RedisQuotaHandler::new(params, &crate::BuildEnv::current()).unwrap();
    let ask = |user: &str, amount: i64, best_effort: bool| {
        let instance = crate::template::QuotaInstance {
            name: "q".into(),
            dimensions: [(
                std::sync::Arc::from("user"),
                mixer_attributes::Value::String(user.into()),
            )]
            .into_iter()
            .collect(),
        };
        let args = crate::QuotaArgs {
            amount,
            best_effort,
            ..Default::default()
        };
        let h = &h;
        async move {
            crate::Handler::quota(h, &instance, &args)
                .resolve()
                .await
                .unwrap()
        }
    };
    let keys = || server.command(&["DBSIZE"]).unwrap();
    let r = ask("a", 5, false).await;
    assert_eq!(r.granted, 0);
    assert_eq!(keys(), ":0\r\n", "a refused grant left a key");
    let r = ask("a", 9, true).await;
    assert_eq!(r.granted, 4);
    assert!(r.valid_duration <= Duration::from_millis(300));
    assert_eq!(ask("a", 1, true).await.granted, 0);
    assert_eq!(keys(), ":1\r\n");
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(ask("a", 4, false).await.granted, 4);
}
