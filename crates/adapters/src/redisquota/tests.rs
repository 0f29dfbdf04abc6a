use super::*;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<RedisQuotaParams, Error> {
    RedisQuotaParams::parse(&Params::new(v))
}

fn errors(v: serde_json::Value) -> Vec<String> {
    crate::params::error_texts(parse(v))
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

// Request coalescing. `CLIENT PAUSE` holds Redis so that callers queue
// behind a batch in flight; each test first makes one call, so that the
// connection is up and the script loaded before the pause.

type Shared = std::sync::Arc<RedisQuotaHandler>;

fn handler_with(
    server: &redis_support::RedisServer,
    extra: serde_json::Value,
    quotas: serde_json::Value,
    max_batch: usize,
    queue: usize,
) -> Shared {
    let mut p = json!({"redisServerUrl": server.addr(), "connectionPoolSize": 1, "quotas": quotas});
    for (k, v) in extra.as_object().unwrap() {
        p[k] = v.clone();
    }
    let params = parse(p).unwrap();
    let limits = super::batch::Limits {
        max_batch,
        queue,
        timeout: params.call_timeout,
    };
    std::sync::Arc::new(
        RedisQuotaHandler::with_limits(params, &crate::BuildEnv::current(), limits).unwrap(),
    )
}

fn instance(quota: &str, user: &str) -> crate::template::QuotaInstance {
    crate::template::QuotaInstance {
        name: quota.into(),
        dimensions: [(
            std::sync::Arc::from("user"),
            mixer_attributes::Value::String(user.into()),
        )]
        .into_iter()
        .collect(),
    }
}

/// One allocation of quota `f` for user `warm`, granted: the connection is
/// up and the script loaded before a test starts counting.
async fn warm(h: &Shared) {
    let (r, _) = spawn_ask(h, "f", "warm", 1, "").await.unwrap();
    assert_eq!(r.unwrap().granted, 1);
}

/// One allocation on its own task, with the time it took.
fn spawn_ask(
    h: &Shared,
    quota: &str,
    user: &str,
    amount: i64,
    id: &str,
) -> tokio::task::JoinHandle<(Result<crate::QuotaResult, Error>, Duration)> {
    let (h, i) = (h.clone(), instance(quota, user));
    let args = crate::QuotaArgs {
        amount,
        deduplication_id: id.into(),
        best_effort: false,
    };
    tokio::spawn(async move {
        let started = std::time::Instant::now();
        let r = crate::Handler::quota(&*h, &i, &args).resolve().await;
        (r, started.elapsed())
    })
}

fn counter(h: &RedisQuotaHandler, name: &str) -> u64 {
    crate::Handler::counters(h)
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .value
}

/// EVALSHA calls Redis ran since the last `CONFIG RESETSTAT`.
fn evalsha_calls(server: &redis_support::RedisServer) -> u64 {
    let stats = server.command(&["INFO", "commandstats"]).unwrap();
    let Some(line) = stats.lines().find(|l| l.starts_with("cmdstat_evalsha:")) else {
        return 0;
    };
    line["cmdstat_evalsha:calls=".len()..]
        .split(',')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn pause(server: &redis_support::RedisServer, ms: u32) {
    assert!(
        server
            .command(&["CLIENT", "PAUSE", &ms.to_string(), "ALL"])
            .unwrap()
            .starts_with("+OK")
    );
}

/// Callers queued together are sent as a few script calls, and each gets
/// exactly the answer it would have had alone: different keys, fixed and
/// rolling windows side by side, retries with the same id in the same
/// batch deduplicated, the same id on another key counted apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_keeps_every_allocation_apart() {
    let Some(server) = redis_support::RedisServer::start("a_batch_keeps_every_allocation_apart")
    else {
        return;
    };
    let h = handler_with(
        &server,
        json!({"callTimeout": "5s"}),
        json!([{"name": "f", "maxAmount": 5, "validDuration": "60s"},
            {"name": "r", "maxAmount": 5, "validDuration": "60s", "bucketDuration": "1s",
             "rateLimitAlgorithm": "ROLLING_WINDOW"}]),
        64,
        1024,
    );
    warm(&h).await;
    assert!(
        server
            .command(&["CONFIG", "RESETSTAT"])
            .unwrap()
            .starts_with("+OK")
    );
    pause(&server, 500);
    // Per quota, 3 users x 8 ids, each id asked twice: 96 callers.
    let mut calls = Vec::new();
    for quota in ["f", "r"] {
        for user in ["a", "b", "c"] {
            for id in 0..8 {
                for _ in 0..2 {
                    let task = spawn_ask(&h, quota, user, 1, &format!("id{id}"));
                    calls.push(((quota, user, id), task));
                }
            }
        }
    }
    let mut answers = std::collections::BTreeMap::<_, Vec<i64>>::new();
    for (k, task) in calls {
        answers
            .entry(k)
            .or_default()
            .push(task.await.unwrap().0.unwrap().granted);
    }
    for quota in ["f", "r"] {
        for user in ["a", "b", "c"] {
            let mut granted_ids = 0;
            for id in 0..8 {
                let a = &answers[&(quota, user, id)];
                assert_eq!(
                    a[0], a[1],
                    "{quota}/{user}/id{id}: a retry got another answer"
                );
                granted_ids += a[0];
            }
            // Every id is one allocation of 1: exactly the max granted.
            assert_eq!(granted_ids, 5, "{quota}/{user}");
        }
    }
    let evalsha = evalsha_calls(&server);
    assert!(evalsha <= 4, "96 callers took {evalsha} script calls");
}

/// An item Redis refuses (its key holds another type) fails alone; the
/// others in its batch are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_item_fails_alone() {
    let Some(server) = redis_support::RedisServer::start("a_refused_item_fails_alone") else {
        return;
    };
    let h = handler_with(
        &server,
        json!({"callTimeout": "5s", "failurePolicy": "error"}),
        json!([{"name": "f", "maxAmount": 5, "validDuration": "60s"}]),
        64,
        1024,
    );
    warm(&h).await;
    let mut bad = b"mixer:rq:f:".to_vec();
    crate::quota_key::write_key(&mut bad, "f", &instance("f", "bad").dimensions);
    let client = redis::Client::open(format!("redis://{}", server.addr())).unwrap();
    let mut c = client.get_connection().unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&bad)
        .arg("x")
        .arg(1)
        .query(&mut c)
        .unwrap();
    assert!(
        server
            .command(&["CONFIG", "RESETSTAT"])
            .unwrap()
            .starts_with("+OK")
    );
    pause(&server, 200);
    let tasks: Vec<_> = ["a", "bad", "b"]
        .into_iter()
        .map(|u| spawn_ask(&h, "f", u, 2, ""))
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap().0);
    }
    assert_eq!(results[0].as_ref().unwrap().granted, 2);
    assert_eq!(results[2].as_ref().unwrap().granted, 2);
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(e.code(), mixer_proto::code::UNAVAILABLE);
    assert!(e.to_string().contains("WRONGTYPE"), "{e}");
    let calls = evalsha_calls(&server);
    assert!(calls <= 2, "{calls} script calls");
    assert_eq!(counter(&h, "backend_errors"), 1);
}

/// With the queue full, a call is answered by the failure policy at once
/// rather than queued without bound; the queued ones are answered by
/// Redis once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_answers_per_failure_policy() {
    let Some(server) = redis_support::RedisServer::start("a_full_queue_answers_per_failure_policy")
    else {
        return;
    };
    let (max_batch, queue) = (2, 4);
    let h = handler_with(
        &server,
        json!({"callTimeout": "3s", "failurePolicy": "deny"}),
        json!([{"name": "f", "maxAmount": 100, "validDuration": "60s"}]),
        max_batch,
        queue,
    );
    warm(&h).await;
    pause(&server, 500);
    let tasks: Vec<_> = (0..20).map(|_| spawn_ask(&h, "f", "a", 1, "")).collect();
    let (mut full, mut granted) = (0, 0);
    for t in tasks {
        let (r, took) = t.await.unwrap();
        let r = r.unwrap();
        if r.granted == 1 {
            granted += 1;
            continue;
        }
        full += 1;
        assert_eq!(r.status.code, mixer_proto::code::UNAVAILABLE);
        assert!(
            r.status.message.contains("already wait") && r.status.message.contains("deny"),
            "{}",
            r.status.message
        );
        assert!(
            took < Duration::from_millis(300),
            "a full queue answered after {took:?}"
        );
    }
    // Held by Redis: one call sent alone, one batch taken by the worker
    // (waiting for the connection) and a full queue, at most.
    assert!(
        full >= 20 - (1 + max_batch + queue),
        "{full} answered as full"
    );
    assert_eq!(full + granted, 20);
    assert_eq!(counter(&h, "queue_full"), full as u64);
    assert_eq!(counter(&h, "failure_policy_answers"), full as u64);
}

/// A batch stuck in Redis holds its callers and those queued behind it no
/// longer than the call timeout: each gets its failure-policy answer in
/// time. Callers that gave up are not sent to Redis afterwards, and the
/// handler recovers once Redis answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_batch_answers_each_caller_within_its_timeout() {
    let Some(server) =
        redis_support::RedisServer::start("a_stuck_batch_answers_each_caller_within_its_timeout")
    else {
        return;
    };
    let h = handler_with(
        &server,
        json!({"callTimeout": "150ms", "failurePolicy": "grant"}),
        json!([{"name": "f", "maxAmount": 1000, "validDuration": "60s"}]),
        1,
        1024,
    );
    warm(&h).await;
    pause(&server, 800);
    let tasks: Vec<_> = (0..40).map(|_| spawn_ask(&h, "f", "a", 1, "")).collect();
    for t in tasks {
        let (r, took) = t.await.unwrap();
        let r = r.unwrap();
        assert_eq!((r.granted, r.status.code), (1, mixer_proto::code::OK));
        assert!(r.valid_duration <= Duration::from_secs(1));
        assert!(took < Duration::from_millis(500), "answered after {took:?}");
    }
    assert_eq!(counter(&h, "timeouts"), 40);
    tokio::time::sleep(Duration::from_millis(900)).await;
    // Back: answers come from Redis again.
    let mut back = None;
    for _ in 0..20 {
        let (r, _) = spawn_ask(&h, "f", "probe", 1, "").await.unwrap();
        if counter(&h, "timeouts") == 40 && r.unwrap().granted == 1 {
            back = Some(());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back.is_some(), "no recovery after the pause");
    // Of the 40 who gave up, only those already sent (one per batch, a
    // batch each call timeout) were charged by Redis.
    let mut key = b"mixer:rq:f:".to_vec();
    crate::quota_key::write_key(&mut key, "f", &instance("f", "a").dimensions);
    let client = redis::Client::open(format!("redis://{}", server.addr())).unwrap();
    let mut c = client.get_connection().unwrap();
    let charged: i64 = redis::cmd("GET").arg(&key).query(&mut c).unwrap();
    assert!(charged < 20, "{charged} of 40 abandoned calls were sent");
}

/// A caller's future that took the free connection and is then neither
/// polled nor dropped does not stall the callers queued behind it: the
/// worker stops waiting for the connection after half the call timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpolled_caller_does_not_stall_the_queue() {
    let Some(server) =
        redis_support::RedisServer::start("an_unpolled_caller_does_not_stall_the_queue")
    else {
        return;
    };
    let h = handler_with(
        &server,
        json!({"callTimeout": "1s", "failurePolicy": "error"}),
        json!([{"name": "f", "maxAmount": 100, "validDuration": "60s"}]),
        64,
        1024,
    );
    warm(&h).await;
    let (i, args) = (
        instance("f", "held"),
        crate::QuotaArgs {
            amount: 1,
            ..Default::default()
        },
    );
    // Polled once: it takes the connection and sends; then left alone. The
    // reply may already be there on that first poll (then the connection is
    // free again): try again.
    let mut held = None;
    for _ in 0..100 {
        let crate::Answer::Pending(mut f) = crate::Handler::quota(&*h, &i, &args) else {
            panic!("redisquota answers after a call");
        };
        let first = std::future::poll_fn(|cx| std::task::Poll::Ready(f.as_mut().poll(cx))).await;
        if first.is_pending() {
            held = Some(f);
            break;
        }
    }
    assert!(held.is_some(), "every call answered on its first poll");
    let tasks: Vec<_> = (0..5)
        .map(|n| spawn_ask(&h, "f", &format!("u{n}"), 1, ""))
        .collect();
    for t in tasks {
        let (r, took) = t.await.unwrap();
        assert_eq!(r.unwrap().granted, 1);
        assert!(took < Duration::from_millis(900), "answered after {took:?}");
    }
    drop(held);
}
