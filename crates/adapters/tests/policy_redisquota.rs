//! redisquota on a real Redis: decisions, exactness across two handlers
//! (two replicas), TTLs, NOSCRIPT, and faults.
#![cfg(feature = "redisquota")]

mod support;

use std::sync::Arc;
use std::time::Duration;

use mixer_adapters::template::QuotaInstance;
use mixer_adapters::{BuildEnv, Error, Handler, Params, QuotaArgs, QuotaResult, Registry};
use mixer_attributes::Value;
use mixer_proto::code;
use serde_json::json;
use support::redis::RedisServer;

fn build(params: serde_json::Value) -> Arc<dyn Handler> {
    Registry::builtin()
        .validate("redisquota", &Params::new(params))
        .unwrap()
        .build(&BuildEnv::current())
        .unwrap()
}

fn inst(name: &str, user: &str) -> QuotaInstance {
    QuotaInstance {
        name: name.into(),
        dimensions: [(Arc::from("user"), Value::String(user.into()))]
            .into_iter()
            .collect(),
    }
}

async fn ask(
    h: &dyn Handler,
    i: &QuotaInstance,
    amount: i64,
    best_effort: bool,
    id: &str,
) -> Result<QuotaResult, Error> {
    let args = QuotaArgs {
        amount,
        deduplication_id: id.into(),
        best_effort,
    };
    let answer = h.quota(i, &args);
    assert!(!answer.is_ready(), "redisquota goes to Redis");
    // No call may hang: bounded well beyond callTimeout.
    tokio::time::timeout(Duration::from_secs(5), answer.resolve())
        .await
        .expect("a redisquota call hung")
}

async fn granted(h: &dyn Handler, i: &QuotaInstance, amount: i64, best_effort: bool) -> i64 {
    ask(h, i, amount, best_effort, "").await.unwrap().granted
}

/// Every key in Redis has a TTL.
fn assert_every_key_expires(server: &RedisServer) {
    let client = redis::Client::open(format!("redis://{}", server.addr())).unwrap();
    let mut c = client.get_connection().unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut c).unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(&mut c).unwrap();
        assert!(
            ttl > 0,
            "key {:?} has no TTL ({ttl})",
            String::from_utf8_lossy(&k)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_window_decisions_overrides_dedup_ttl() {
    let Some(server) = RedisServer::start("fixed_window_decisions_overrides_dedup_ttl") else {
        return;
    };
    let h = build(json!({
        "redisServerUrl": server.addr(), "connectionPoolSize": 2,
        "quotas": [{"name": "q", "maxAmount": 5, "validDuration": "2s",
            "overrides": [{"dimensions": {"user": "vip"}, "maxAmount": 8}]}]
    }));
    let h = &*h;
    let a = inst("q", "a");
    assert_eq!(granted(h, &a, 3, false).await, 3);
    let r = ask(h, &a, 3, false, "").await.unwrap();
    assert_eq!((r.granted, r.status.code), (0, code::RESOURCE_EXHAUSTED));
    assert_eq!(r.status.message, "quota q is exhausted");
    assert!(r.valid_duration <= Duration::from_secs(2) && r.valid_duration > Duration::ZERO);
    assert_eq!(granted(h, &a, 3, true).await, 2);
    assert_eq!(granted(h, &a, 1, true).await, 0);
    // Another user has its own counter; the override raises vip's limit.
    assert_eq!(granted(h, &inst("q", "b"), 5, false).await, 5);
    assert_eq!(granted(h, &inst("q", "vip"), 8, false).await, 8);
    // Dedup: a retry with the same id gets the same answer, consumes nothing.
    let c = inst("q", "c");
    assert_eq!(ask(h, &c, 4, false, "r1").await.unwrap().granted, 4);
    assert_eq!(ask(h, &c, 4, false, "r1").await.unwrap().granted, 4);
    assert_eq!(granted(h, &c, 1, false).await, 1);
    // Same id, other quota key: its own allocation.
    assert_eq!(
        ask(h, &inst("q", "d"), 4, false, "r1")
            .await
            .unwrap()
            .granted,
        4
    );
    // Non-positive amounts: nothing, no call needed.
    assert_eq!(granted(h, &a, 0, false).await, 0);
    assert_every_key_expires(&server);
    // The window ends: the counter starts over.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(granted(h, &a, 5, false).await, 5);
    // A quota not in params is an adapter error.
    let e = ask(h, &inst("other", "a"), 1, false, "").await.unwrap_err();
    assert_eq!(e.code(), code::INTERNAL);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_window_reclaims_buckets_and_sets_ttls() {
    let Some(server) = RedisServer::start("rolling_window_reclaims_buckets_and_sets_ttls") else {
        return;
    };
    let h = build(json!({
        "redisServerUrl": server.addr(),
        "quotas": [{"name": "q", "maxAmount": 4, "validDuration": "1s", "bucketDuration": "100ms",
            "rateLimitAlgorithm": "ROLLING_WINDOW"}]
    }));
    let h = &*h;
    let a = inst("q", "a");
    assert_eq!(granted(h, &a, 3, false).await, 3);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(granted(h, &a, 3, true).await, 1);
    assert_eq!(granted(h, &a, 1, false).await, 0);
    assert_every_key_expires(&server);
    // The first grant leaves the window (plus one bucket); the second not yet.
    tokio::time::sleep(Duration::from_millis(750)).await;
    assert_eq!(granted(h, &a, 4, true).await, 3);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(granted(h, &a, 4, false).await, 4);
}

/// Two handlers on one Redis, standing in for two Mixer replicas, hammered
/// by many tasks: exactly maxAmount is granted in the window, never more.
async fn two_replicas(server: &RedisServer, quota: serde_json::Value) {
    // A generous callTimeout: this measures exactness, and on a loaded
    // machine a call given up on would be answered by the failure policy
    // (a grant by default) while its script may still run.
    let params = json!({"redisServerUrl": server.addr(), "connectionPoolSize": 4,
        "callTimeout": "10s", "quotas": [quota]});
    let replicas = [build(params.clone()), build(params)];
    let mut tasks = Vec::new();
    for t in 0..32 {
        let h = replicas[t % 2].clone();
        tasks.push(tokio::spawn(async move {
            let i = inst("q", "shared");
            let mut sum = 0;
            for n in 0..40 {
                let args = QuotaArgs {
                    amount: 1 + (n % 3),
                    best_effort: (t + n as usize).is_multiple_of(2),
                    deduplication_id: String::new(),
                };
                sum += h.quota(&i, &args).resolve().await.unwrap().granted;
            }
            sum
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    // 32 x 40 x ~2 units asked, 500 allowed: exactly 500 granted.
    assert_eq!(total, 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_fixed_window_exact() {
    let Some(server) = RedisServer::start("two_replicas_fixed_window_exact") else {
        return;
    };
    two_replicas(
        &server,
        json!({"name": "q", "maxAmount": 500, "validDuration": "60s"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_rolling_window_exact() {
    let Some(server) = RedisServer::start("two_replicas_rolling_window_exact") else {
        return;
    };
    two_replicas(
        &server,
        json!({"name": "q", "maxAmount": 500, "validDuration": "60s", "bucketDuration": "1s",
            "rateLimitAlgorithm": "ROLLING_WINDOW"}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_reload_after_noscript() {
    let Some(server) = RedisServer::start("scripts_reload_after_noscript") else {
        return;
    };
    let h = build(
        json!({"redisServerUrl": server.addr(), "connectionPoolSize": 1,
        "quotas": [{"name": "q", "maxAmount": 10, "validDuration": "60s"}]}),
    );
    let a = inst("q", "a");
    assert_eq!(granted(&*h, &a, 2, false).await, 2);
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    assert!(stats.contains("cmdstat_evalsha"), "{stats}");
    assert!(
        server
            .command(&["SCRIPT", "FLUSH"])
            .unwrap()
            .starts_with("+OK")
    );
    assert_eq!(granted(&*h, &a, 2, false).await, 2);
    assert_eq!(granted(&*h, &a, 7, true).await, 6);
}

async fn fault_cycle(policy: &str) {
    let Some(mut server) = RedisServer::start(&format!("fault_cycle_{policy}")) else {
        return;
    };
    let h = build(json!({
        "redisServerUrl": server.addr(), "connectionPoolSize": 2, "callTimeout": "300ms",
        "failurePolicy": policy,
        "quotas": [{"name": "q", "maxAmount": 1, "validDuration": "60s"}]
    }));
    let h = &*h;
    assert_eq!(granted(h, &inst("q", "a"), 1, false).await, 1);
    assert_eq!(granted(h, &inst("q", "a"), 1, false).await, 0);

    // Redis dies: every call answers per the policy, within the timeout.
    server.stop();
    for n in 0..6 {
        let started = std::time::Instant::now();
        let r = ask(h, &inst("q", "a"), 1, false, "").await;
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "call {n} took {:?}",
            started.elapsed()
        );
        match policy {
            "grant" => {
                let r = r.unwrap();
                assert_eq!((r.granted, r.status.code), (1, code::OK));
                assert!(r.valid_duration <= Duration::from_secs(1));
            }
            "deny" => {
                let r = r.unwrap();
                assert_eq!((r.granted, r.status.code), (0, code::UNAVAILABLE));
                assert!(
                    r.status.message.contains("failurePolicy deny"),
                    "{}",
                    r.status.message
                );
            }
            _ => assert_eq!(r.unwrap_err().code(), code::UNAVAILABLE),
        }
    }
    let failures: u64 = h
        .counters()
        .iter()
        .filter(|c| c.name == "backend_errors" || c.name == "timeouts")
        .map(|c| c.value)
        .sum();
    assert_eq!(failures, 6);

    // Redis comes back (empty): the handler recovers by itself.
    server.restart();
    let mut recovered = false;
    for attempt in 0..50 {
        // A fresh key per attempt: Redis may come back between the two
        // calls of an attempt, leaving that key spent for the next ones.
        let key = format!("b{attempt}");
        if let Ok(r) = ask(h, &inst("q", &key), 1, false, "").await
            && r.granted == 1
            && r.status.is_ok()
            && granted(h, &inst("q", &key), 1, false).await == 0
        {
            // A second call refused: this answer came from Redis, not the policy.
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        recovered,
        "the handler did not recover after Redis restarted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_grant_policy_then_recovery() {
    fault_cycle("grant").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_deny_policy_then_recovery() {
    fault_cycle("deny").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_error_policy_then_recovery() {
    fault_cycle("error").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_redis_times_out_per_call() {
    let Some(server) = RedisServer::start("slow_redis_times_out_per_call") else {
        return;
    };
    let h = build(json!({
        "redisServerUrl": server.addr(), "connectionPoolSize": 1, "callTimeout": "150ms",
        "failurePolicy": "error",
        "quotas": [{"name": "q", "maxAmount": 10, "validDuration": "60s"}]
    }));
    let h = &*h;
    assert_eq!(granted(h, &inst("q", "a"), 1, false).await, 1);
    // Redis stops answering for a second.
    assert!(
        server
            .command(&["CLIENT", "PAUSE", "1000", "ALL"])
            .unwrap()
            .starts_with("+OK")
    );
    let started = std::time::Instant::now();
    let e = ask(h, &inst("q", "a"), 1, false, "").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(e.code(), code::UNAVAILABLE);
    assert_eq!(e.to_string(), "redisquota call timed out after 150ms");
    assert_eq!(
        h.counters()
            .iter()
            .find(|c| c.name == "timeouts")
            .unwrap()
            .value,
        1
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut ok = false;
    for _ in 0..20 {
        if ask(h, &inst("q", "a"), 1, false, "").await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "no recovery after the pause");
}
