//! Policy adapters, each against its comparison in the same run:
//! - memquota allocations against the governor crate's keyed check on the
//!   same key set: 1000 keys visited round robin by both, one call per
//!   iteration, with like for like underneath: governor is built with `std`
//!   only, so it reads `std::time::Instant` (as our `SystemClock`) and keys a
//!   parking_lot `Mutex<HashMap>` with SipHash (as our shards). Ours is
//!   called with a prebuilt `QuotaInstance`, so it also finds the quota by
//!   name and encodes the dimension map, which governor's `&String` key
//!   does not need. After criterion, each memquota window is also compared
//!   as the median ratio over alternating 2,000-call rounds (on stderr),
//!   which the load of a shared machine moves far less;
//! - listchecker lookups: an IP among 10 and among 10,000 ranges, a string
//!   among 10 and among 100,000 entries;
//! - redisquota allocations at 1 and 32 concurrent callers against a
//!   trivial script through the same client at the same concurrency (the
//!   Redis round-trip limit): the same pool size, round robin, callers and
//!   key count, redis-rs's default response timeout on both pools; the
//!   handler also bounds each call by its `callTimeout` (one more timer),
//!   parses its answer and may fall back on `failurePolicy`. The trivial
//!   script is one call per allocation; the handler coalesces the
//!   allocations waiting for a busy connection into one script call (the
//!   allocations per script call are printed on stderr), and then, as for
//!   memquota, the median throughput ratio over 31 alternating rounds.
//!   Needs `redis-server`; skipped without it.

#[path = "../crates/adapters/tests/support/redis.rs"]
mod redis_support;

use std::hint::black_box;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};
use mixer_adapters::list::ListParams;
use mixer_adapters::memquota::{MemQuotaHandler, MemQuotaParams};
use mixer_adapters::template::{CheckInstance, ListEntryInstance, QuotaInstance};
use mixer_adapters::{Answer, BuildEnv, Handler, HandlerBuilder, Params, QuotaArgs, SystemClock};
use mixer_attributes::Value;
use serde_json::json;

const KEYS: usize = 1000;

fn memquota(c: &mut Criterion) {
    let mut g = c.benchmark_group("memquota_vs_governor");
    g.throughput(Throughput::Elements(1));
    let instances: Vec<QuotaInstance> = (0..KEYS)
        .map(|i| QuotaInstance {
            name: "requests.instance.ns".into(),
            dimensions: [(Arc::from("user"), Value::String(format!("user-{i}")))]
                .into_iter()
                .collect(),
        })
        .collect();
    let args = QuotaArgs {
        amount: 1,
        ..Default::default()
    };
    let handlers: Vec<(&str, MemQuotaHandler)> = ["ROLLING_WINDOW", "FIXED_WINDOW"]
        .into_iter()
        .map(|algorithm| {
            let params = MemQuotaParams::parse(&Params::new(json!({"quotas": [{
                "name": "requests.instance.ns", "maxAmount": 1_000_000_000_000i64,
                "validDuration": "1s", "rateLimitAlgorithm": algorithm}]})))
            .unwrap();
            (
                algorithm,
                MemQuotaHandler::new(params, Arc::new(SystemClock)),
            )
        })
        .collect();
    let allocate = |h: &MemQuotaHandler, i: usize| match h.quota(&instances[i], &args) {
        Answer::Ready(r) => r.unwrap().granted,
        Answer::Pending(_) => unreachable!(),
    };
    for (algorithm, h) in &handlers {
        let mut i = 0;
        g.bench_function(format!("memquota_{algorithm}"), |b| {
            b.iter(|| {
                i = (i + 1) % KEYS;
                allocate(h, i)
            })
        });
    }
    // The same key material governor hashes: the dimension values.
    let keys: Vec<String> = (0..KEYS).map(|i| format!("user-{i}")).collect();
    let limiter = RateLimiter::keyed(Quota::per_second(NonZeroU32::MAX));
    let mut i = 0;
    g.bench_function("governor_keyed_check", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            limiter.check_key(&keys[i]).is_ok()
        })
    });
    g.finish();
    // Other builds share this machine, and its load moves between
    // criterion's measurement of one function and the next; short rounds
    // of each, alternated, see the same load, so the median of the
    // per-round ratios is the steadier comparison.
    for (algorithm, h) in &handlers {
        let (mut i, mut j) = (0, 0);
        let ratio = interleaved_ratio(
            || {
                i = (i + 1) % KEYS;
                black_box(limiter.check_key(&keys[i]).is_ok());
            },
            || {
                j = (j + 1) % KEYS;
                black_box(allocate(h, j));
            },
        );
        eprintln!(
            "interleaved rounds, median of per-round ratios: memquota {algorithm} / governor = {ratio:.2} (target <= 1.5)"
        );
    }
}

/// The median over alternating rounds of `b`'s time over `a`'s.
fn interleaved_ratio(mut a: impl FnMut(), mut b: impl FnMut()) -> f64 {
    const ROUNDS: usize = 201;
    const ITERS: u32 = 2_000;
    let time = |f: &mut dyn FnMut()| {
        let t = Instant::now();
        for _ in 0..ITERS {
            f();
        }
        t.elapsed().as_secs_f64()
    };
    let mut ratios: Vec<f64> = (0..ROUNDS)
        .map(|round| {
            // Either may run first, so neither always follows the other.
            if round % 2 == 0 {
                let ta = time(&mut a);
                time(&mut b) / ta
            } else {
                let tb = time(&mut b);
                tb / time(&mut a)
            }
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ROUNDS / 2]
}

fn list_handler(entry_type: &str, entries: Vec<String>) -> Arc<dyn Handler> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let params = ListParams::parse(&Params::new(json!({
        "entryType": entry_type, "overrides": entries, "blacklist": true
    })))
    .unwrap();
    Box::new(params)
        .build(&BuildEnv::new(rt.handle().clone()))
        .unwrap()
}

fn list_lookups(c: &mut Criterion) {
    let mut g = c.benchmark_group("list_lookup");
    g.throughput(Throughput::Elements(1));
    // Ranges spread over the address space: /24s 256 addresses apart.
    let ranges = |n: u32| -> Vec<String> {
        (0..n)
            .map(|i| {
                let a = 0x0a00_0000u32 + i * 512;
                format!("{}/24", std::net::Ipv4Addr::from(a))
            })
            .collect()
    };
    // Half of the probes fall in a range, half in a gap, for both sizes.
    let probes = |n: u32| -> Vec<CheckInstance> {
        (0..1024u32)
            .map(|i| {
                let range = (i * 7919) % n;
                let offset = if i % 2 == 0 { 17 } else { 300 };
                let ip = std::net::Ipv4Addr::from(0x0a00_0000u32 + range * 512 + offset);
                CheckInstance::ListEntry(ListEntryInstance {
                    name: "l".into(),
                    value: Value::IpAddress(ip.into()),
                })
            })
            .collect()
    };
    for n in [10, 10_000] {
        let h = list_handler("IP_ADDRESSES", ranges(n));
        let probes = probes(n);
        let mut i = 0;
        g.bench_function(format!("ip_among_{n}_ranges"), |b| {
            b.iter(|| {
                i = (i + 1) % probes.len();
                match h.check(&probes[i]) {
                    Answer::Ready(r) => r.unwrap().status.code,
                    Answer::Pending(_) => unreachable!(),
                }
            })
        });
    }
    let strings: Vec<CheckInstance> = (0..1024u32)
        .map(|i| {
            CheckInstance::ListEntry(ListEntryInstance {
                name: "l".into(),
                // Half of the probes are in every list, half in none.
                value: Value::String(if i % 2 == 0 {
                    format!("entry-{}", i % 10)
                } else {
                    format!("absent-{i}")
                }),
            })
        })
        .collect();
    for n in [10, 100_000] {
        let h = list_handler("STRINGS", (0..n).map(|i| format!("entry-{i}")).collect());
        let mut i = 0;
        g.bench_function(format!("string_among_{n}_entries"), |b| {
            b.iter(|| {
                i = (i + 1) % strings.len();
                match h.check(&strings[i]) {
                    Answer::Ready(r) => r.unwrap().status.code,
                    Answer::Pending(_) => unreachable!(),
                }
            })
        });
    }
    g.finish();
}

/// Runs `calls` calls of `f` split over `callers` tasks; returns the time.
async fn concurrent<F, Fut>(callers: usize, calls: u64, f: Arc<F>) -> Duration
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let per = calls.div_ceil(callers as u64);
    let start = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|t| {
            let f = f.clone();
            tokio::spawn(async move {
                for n in 0..per {
                    f(t as u64 * per + n).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

fn redisquota(c: &mut Criterion) {
    let Some(server) = redis_support::RedisServer::start("benches/adapters_policy redisquota")
    else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let pool = 4;
    let handler: Arc<dyn Handler> = rt.block_on(async {
        mixer_adapters::Registry::builtin()
            .validate(
                "redisquota",
                &Params::new(json!({
                    "redisServerUrl": server.addr(), "connectionPoolSize": pool,
                    "quotas": [{"name": "q", "maxAmount": 1_000_000_000_000i64, "validDuration": "60s"}]
                })),
            )
            .unwrap()
            .build(&BuildEnv::current())
            .unwrap()
    });
    // The same client, pool size and round-robin, running a trivial script.
    let trivial = Arc::new(redis::Script::new("return {1, 1}"));
    let conns: Arc<Vec<redis::aio::ConnectionManager>> = Arc::new(rt.block_on(async {
        let client = redis::Client::open(format!("redis://{}", server.addr())).unwrap();
        let mut v = Vec::new();
        for _ in 0..pool {
            v.push(client.get_connection_manager().await.unwrap());
        }
        v
    }));
    let instances: Arc<Vec<QuotaInstance>> = Arc::new(
        (0..16)
            .map(|i| QuotaInstance {
                name: "q".into(),
                dimensions: [(Arc::from("user"), Value::String(format!("u{i}")))]
                    .into_iter()
                    .collect(),
            })
            .collect(),
    );
    let mut g = c.benchmark_group("redisquota_vs_trivial_script");
    g.throughput(Throughput::Elements(1));
    for callers in [1usize, 32] {
        let (h, inst) = (handler.clone(), instances.clone());
        let allocations = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counted = allocations.clone();
        let alloc = Arc::new(move |n: u64| {
            let (h, inst) = (h.clone(), inst.clone());
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            async move {
                let args = QuotaArgs {
                    amount: 1,
                    ..Default::default()
                };
                let r = h
                    .quota(&inst[n as usize % inst.len()], &args)
                    .resolve()
                    .await;
                assert_eq!(r.unwrap().granted, 1);
            }
        });
        server.command(&["CONFIG", "RESETSTAT"]);
        g.bench_function(format!("redisquota_{callers}_callers"), |b| {
            b.iter_custom(|iters| rt.block_on(concurrent(callers, iters, alloc.clone())))
        });
        // Coalescing at work: allocations per script call.
        let allocations = allocations.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "redisquota {callers} callers: {allocations} allocations in {} script calls",
            evalsha_calls(&server)
        );
        let (script, conns) = (trivial.clone(), conns.clone());
        // As many distinct keys as instances, passed and left untouched.
        let keys: Arc<Vec<String>> =
            Arc::new((0..instances.len()).map(|i| format!("k{i}")).collect());
        let call = Arc::new(move |n: u64| {
            let (script, conns, keys) = (script.clone(), conns.clone(), keys.clone());
            async move {
                let mut c = conns[n as usize % conns.len()].clone();
                let key = &keys[n as usize % keys.len()];
                let r: (i64, i64) = script.key(key).arg(1).invoke_async(&mut c).await.unwrap();
                assert_eq!(r.0, 1);
            }
        });
        g.bench_function(format!("trivial_script_{callers}_callers"), |b| {
            b.iter_custom(|iters| rt.block_on(concurrent(callers, iters, call.clone())))
        });
        // As for memquota: short rounds of each, alternated, see the same
        // load, so the median of the per-round ratios is the steadier
        // comparison. Throughput ratio: the trivial script's time over ours.
        let calls = if callers == 1 { 1_000 } else { 4_000 };
        let mut ratios: Vec<f64> = (0..31)
            .map(|round| {
                let ours = || {
                    rt.block_on(concurrent(callers, calls, alloc.clone()))
                        .as_secs_f64()
                };
                let trivial = || {
                    rt.block_on(concurrent(callers, calls, call.clone()))
                        .as_secs_f64()
                };
                // Either may run first, so neither always follows the other.
                if round % 2 == 0 {
                    let t = ours();
                    trivial() / t
                } else {
                    let t = trivial();
                    t / ours()
                }
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        eprintln!(
            "interleaved rounds, median of per-round ratios: redisquota / trivial script at \
             {callers} callers = {:.2} (rounds: {:.2} to {:.2}; target >= 0.7)",
            ratios[ratios.len() / 2],
            ratios[0],
            ratios[ratios.len() - 1]
        );
    }
    g.finish();
}

/// EVALSHA calls Redis ran since its stats were last reset.
fn evalsha_calls(server: &redis_support::RedisServer) -> u64 {
    let stats = server
        .command(&["INFO", "commandstats"])
        .unwrap_or_default();
    stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_evalsha:calls="))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

criterion_group!(benches, memquota, list_lookups, redisquota);
criterion_main!(benches);
