use super::*;
use crate::template::QuotaInstance;
use crate::{Answer, ManualClock, QuotaArgs, QuotaResult};
use mixer_attributes::Value;
use mixer_proto::code;
use serde_json::json;

fn parse(v: serde_json::Value) -> Result<MemQuotaParams, Error> {
    MemQuotaParams::parse(&Params::new(v))
}

fn errors(v: serde_json::Value) -> Vec<String> {
    crate::params::error_texts(parse(v))
}

#[test]
fn defaults_and_every_param() {
    let p = parse(json!({"quotas": [{"name": "q", "maxAmount": 5}]})).unwrap();
    assert_eq!(p.min_deduplication_duration, Duration::from_secs(1));
    assert_eq!(p.quotas[0].limit.valid_duration, Duration::ZERO);
    assert_eq!(p.quotas[0].algorithm, Algorithm::RollingWindow);
    let p = parse(json!({
        "minDeduplicationDuration": "3s",
        "quotas": [{
            "name": "q", "maxAmount": 5, "validDuration": "250ms",
            "rateLimitAlgorithm": "FIXED_WINDOW",
            "overrides": [{"dimensions": {"a": "b", "code": 200}, "maxAmount": 1},
                          {"dimensions": {"a": "c"}, "maxAmount": 2, "validDuration": "1s"}]
        }]
    }))
    .unwrap();
    assert_eq!(p.min_deduplication_duration, Duration::from_secs(3));
    let q = &p.quotas[0];
    assert_eq!(q.algorithm, Algorithm::FixedWindow);
    assert_eq!(q.overrides[0].dimensions["code"], "200");
    assert_eq!(
        q.overrides[0].limit.valid_duration,
        Duration::from_millis(250)
    );
    assert_eq!(q.overrides[1].limit.valid_duration, Duration::from_secs(1));
    assert_eq!(parse(json!({})).unwrap().quotas, vec![]);
}

#[test]
fn validation_errors() {
    assert_eq!(
        errors(json!({
            "minDeduplicationDuration": "0s",
            "quotas": [
                {"maxAmount": -1, "validDuration": "-1s", "rateLimitAlgorithm": "SLIDING"},
                {"name": "", "maxAmount": "x"},
                {"name": "q", "maxAmount": 1, "overrides": [{"maxAmount": -2, "dims": {}}]},
                {"name": "q", "maxAmount": 1, "overrides": [{"dimensions": {"a": []}}]}
            ]
        })),
        [
            "quotas[0].name: is required",
            "quotas[0].maxAmount: must be >= 0, got -1",
            "quotas[0].validDuration: expected a duration such as \"5s\" or \"100ms\", got \"-1s\"",
            "quotas[0].rateLimitAlgorithm: expected one of ROLLING_WINDOW, FIXED_WINDOW, got \"SLIDING\"",
            "quotas[1].name: must not be empty",
            "quotas[1].maxAmount: expected an integer, got \"x\"",
            "quotas[2].overrides[0].dimensions: must name at least one dimension",
            "quotas[2].overrides[0].maxAmount: must be >= 0, got -2",
            "quotas[2].overrides[0].dims: unknown field (expected one of: dimensions, maxAmount, validDuration)",
            "quotas[3].name: duplicate quota \"q\"",
            "quotas[3].overrides[0].dimensions.a: expected a string, got a list",
            "quotas[3].overrides[0].dimensions: must name at least one dimension",
            "quotas[3].overrides[0].maxAmount: is required",
            "minDeduplicationDuration: must be greater than 0",
        ]
    );
    assert_eq!(
        errors(json!({"quotas": {"name": "q"}, "extra": true})),
        [
            "quotas: expected a list, got an object",
            "extra: unknown field (expected one of: quotas, minDeduplicationDuration)",
        ]
    );
    assert_eq!(
        errors(
            json!({"quotas": [{"name": "q", "maxAmount": 1, "validDuration": "1s", "overrides": [
                {"dimensions": {"a": "b"}, "maxAmount": 1, "validDuration": "-1s"},
                {"dimensions": {"a": "c"}, "maxAmount": 1, "validDuration": "soon"},
                {"dimensions": {"a": "d"}, "maxAmount": 1, "validDuration": 5},
                {"dimensions": {"a": "e"}, "maxAmount": 1, "validDuration": "2s"}
            ]}]})
        ),
        [
            "quotas[0].overrides[0].validDuration: expected a duration such as \"5s\" or \"100ms\", got \"-1s\"",
            "quotas[0].overrides[1].validDuration: expected a duration such as \"5s\" or \"100ms\", got \"soon\"",
            "quotas[0].overrides[2].validDuration: expected a duration such as \"5s\" or \"100ms\", got 5",
        ]
    );
}

struct Fixture {
    clock: Arc<ManualClock>,
    h: MemQuotaHandler,
}

fn fixture(params: serde_json::Value) -> Fixture {
    let clock = Arc::new(ManualClock::new());
    let h = MemQuotaHandler::new(parse(params).unwrap(), clock.clone());
    Fixture { clock, h }
}

fn inst(name: &str, dims: &[(&str, Value)]) -> QuotaInstance {
    QuotaInstance {
        name: name.into(),
        dimensions: dims
            .iter()
            .map(|(k, v)| (Arc::from(*k), v.clone()))
            .collect(),
    }
}

fn ask(
    h: &MemQuotaHandler,
    i: &QuotaInstance,
    amount: i64,
    best_effort: bool,
    id: &str,
) -> QuotaResult {
    let args = QuotaArgs {
        amount,
        deduplication_id: id.into(),
        best_effort,
    };
    match h.quota(i, &args) {
        Answer::Ready(r) => r.unwrap(),
        Answer::Pending(_) => panic!("memquota must answer inline"),
    }
}

#[test]
fn rolling_window_grants_up_to_max_then_exhausts() {
    let f = fixture(json!({"quotas": [{"name": "q", "maxAmount": 3, "validDuration": "1s"}]}));
    let i = inst("q", &[]);
    assert_eq!(ask(&f.h, &i, 2, false, "").granted, 2);
    let r = ask(&f.h, &i, 2, false, "");
    assert_eq!((r.granted, r.status.code), (0, code::RESOURCE_EXHAUSTED));
    assert_eq!(r.status.message, "quota q is exhausted");
    assert_eq!(r.valid_duration, Duration::from_secs(1));
    let r = ask(&f.h, &i, 2, true, "");
    assert_eq!((r.granted, r.status.code), (1, code::OK));
    let r = ask(&f.h, &i, 1, true, "");
    assert_eq!((r.granted, r.status.code), (0, code::RESOURCE_EXHAUSTED));
    f.clock.advance(Duration::from_millis(999));
    assert_eq!(ask(&f.h, &i, 1, false, "").granted, 0);
    f.clock.advance(Duration::from_millis(101));
    assert_eq!(ask(&f.h, &i, 3, false, "").granted, 3);
}

#[test]
fn fixed_sub_second_window() {
    let f = fixture(
        json!({"quotas": [{"name": "q", "maxAmount": 2, "validDuration": "300ms",
        "rateLimitAlgorithm": "FIXED_WINDOW"}]}),
    );
    let i = inst("q", &[]);
    assert_eq!(ask(&f.h, &i, 2, false, "").granted, 2);
    f.clock.advance(Duration::from_millis(299));
    assert_eq!(ask(&f.h, &i, 1, false, "").granted, 0);
    f.clock.advance(Duration::from_millis(1));
    assert_eq!(ask(&f.h, &i, 2, false, "").granted, 2);
}

#[test]
fn non_expiring_counter_allocates_and_releases() {
    let f = fixture(json!({"quotas": [{"name": "q", "maxAmount": 2}]}));
    let i = inst("q", &[]);
    assert_eq!(ask(&f.h, &i, 2, false, "").granted, 2);
    f.clock.advance(Duration::from_secs(3600));
    assert_eq!(ask(&f.h, &i, 1, false, "").granted, 0);
    let r = ask(&f.h, &i, -1, false, "");
    assert_eq!(
        (r.granted, r.status.code, r.valid_duration),
        (1, code::OK, Duration::ZERO)
    );
    assert_eq!(ask(&f.h, &i, 1, false, "").granted, 1);
    assert_eq!(ask(&f.h, &i, -5, false, "").granted, 2);
    assert_eq!(ask(&f.h, &i, 0, false, "").granted, 0);
    assert!(ask(&f.h, &i, 0, false, "").status.is_ok());
}

#[test]
fn overrides_first_match_by_string_and_separate_counters() {
    let f = fixture(
        json!({"quotas": [{"name": "q", "maxAmount": 10, "validDuration": "1s",
        "overrides": [
            {"dimensions": {"code": "200", "path": "/a"}, "maxAmount": 1},
            {"dimensions": {"code": "200"}, "maxAmount": 2},
            {"dimensions": {"code": "200"}, "maxAmount": 7}
        ]}]}),
    );
    let a = inst(
        "q",
        &[
            ("code", Value::Int64(200)),
            ("path", Value::String("/a".into())),
        ],
    );
    let b = inst(
        "q",
        &[
            ("code", Value::Int64(200)),
            ("path", Value::String("/b".into())),
        ],
    );
    let c = inst("q", &[("code", Value::Int64(500))]);
    let d = inst("q", &[("path", Value::String("/a".into()))]);
    assert_eq!(ask(&f.h, &a, 5, true, "").granted, 1);
    assert_eq!(ask(&f.h, &b, 5, true, "").granted, 2);
    assert_eq!(ask(&f.h, &c, 50, true, "").granted, 10);
    assert_eq!(ask(&f.h, &d, 50, true, "").granted, 10);
}

#[test]
fn dedup_by_id_and_quota_key() {
    let f = fixture(json!({"minDeduplicationDuration": "2s",
        "quotas": [{"name": "q", "maxAmount": 5, "validDuration": "1s"}]}));
    let x = inst("q", &[("u", Value::String("x".into()))]);
    let y = inst("q", &[("u", Value::String("y".into()))]);
    assert_eq!(ask(&f.h, &x, 3, false, "id1").granted, 3);
    // A retry: same answer, nothing more consumed.
    assert_eq!(ask(&f.h, &x, 3, false, "id1").granted, 3);
    assert_eq!(ask(&f.h, &x, 2, false, "").granted, 2);
    // Same id, other quota key: a separate allocation.
    assert_eq!(ask(&f.h, &y, 4, false, "id1").granted, 4);
    f.clock.advance(Duration::from_millis(1999));
    assert_eq!(ask(&f.h, &x, 3, false, "id1").granted, 3);
    f.clock.advance(Duration::from_millis(1));
    // Dedup record expired: a fresh allocation in a fresh window.
    assert_eq!(ask(&f.h, &x, 5, false, "id1").granted, 5);
    assert_eq!(ask(&f.h, &x, 5, false, "id1").granted, 5);
}

#[test]
fn unknown_quota_is_an_adapter_error() {
    let f = fixture(json!({"quotas": [{"name": "q", "maxAmount": 5}]}));
    let args = QuotaArgs {
        amount: 1,
        ..Default::default()
    };
    let Answer::Ready(Err(e)) = f.h.quota(&inst("other", &[]), &args) else {
        panic!("expected an error");
    };
    assert_eq!(e.code(), code::INTERNAL);
    assert!(
        e.to_string().contains("quota other (not in params.quotas)"),
        "{e}"
    );
}

#[test]
fn keys_cannot_be_forged() {
    let f = fixture(json!({"quotas": [{"name": "q", "maxAmount": 1}]}));
    let a = inst("q", &[("a", Value::String("1\0b".into()))]);
    let b = inst(
        "q",
        &[
            ("a", Value::String("1".into())),
            ("b", Value::String(String::new())),
        ],
    );
    assert_eq!(ask(&f.h, &a, 1, false, "").granted, 1);
    assert_eq!(ask(&f.h, &b, 1, false, "").granted, 1);
}

#[test]
fn idle_counters_are_swept() {
    let f = fixture(json!({"quotas": [{"name": "q", "maxAmount": 1, "validDuration": "1s"}]}));
    // 100,000 distinct keys over time: without sweeping all would stay.
    for round in 0..20 {
        for n in 0..5000 {
            let key = round * 5000 + n;
            ask(&f.h, &inst("q", &[("n", Value::Int64(key))]), 1, false, "");
        }
        f.clock.advance(Duration::from_secs(2));
        let total = f.h.live_keys();
        assert!(
            total <= 32 * SWEEP_MIN_FOR_TESTS + 5000,
            "round {round}: {total}"
        );
    }
}

const SWEEP_MIN_FOR_TESTS: usize = 1024;

#[test]
fn keys_sharing_a_hash_keep_their_own_counters() {
    let clock = Arc::new(ManualClock::new());
    let params = parse(json!({"quotas": [{"name": "q", "maxAmount": 3, "validDuration": "1s"}]}));
    let h = MemQuotaHandler::new(params.unwrap(), clock.clone()).with_colliding_hashes();
    let key = |n: i64| inst("q", &[("n", Value::Int64(n))]);
    for n in 0..50 {
        assert_eq!(ask(&h, &key(n), 2, false, "").granted, 2, "key {n}");
    }
    // Each key still has exactly 1 left, found wherever it sits in the chain.
    for n in (0..50).rev() {
        assert_eq!(ask(&h, &key(n), 2, true, "").granted, 1, "key {n}");
        assert_eq!(ask(&h, &key(n), 1, false, "").granted, 0, "key {n}");
    }
    assert_eq!(h.live_keys(), 50);
    // Past the window all 50 are idle; enough new keys to trigger a sweep
    // drop them from the chain, head and tail alike.
    clock.advance(Duration::from_secs(2));
    for n in 1000..1000 + SWEEP_MIN_FOR_TESTS as i64 {
        ask(&h, &key(n), 1, false, "");
    }
    assert!(h.live_keys() <= SWEEP_MIN_FOR_TESTS, "{}", h.live_keys());
    // Kept and new counters are still exact after the chain was rebuilt.
    assert_eq!(ask(&h, &key(1000), 3, true, "").granted, 2);
    assert_eq!(ask(&h, &key(7), 3, false, "").granted, 3);
}
