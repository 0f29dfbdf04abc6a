//! Typical rule conditions: our compiled expressions against the
//! `cel-interpreter` crate evaluating the equivalent CEL on the same data,
//! in the same run.
//!
//! Before measuring, the bench checks (and fails if not) that both sides
//! agree on every answer and that our evaluation allocates nothing; under
//! `cargo bench` it also checks that ours is at least 5x faster.
//!
//! `cargo bench -p mixer --bench expressions -- --warm-up-time 1 --measurement-time 3`

#[path = "support/counting_alloc.rs"]
#[allow(unreachable_pub)]
mod counting_alloc;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use cel_interpreter::{Context, Program, Value as Cel};
use criterion::Criterion;
use mixer_attributes::{OwnedBag, ReferencedAttributes, StringMap, Value};
use mixer_config::expr::Expression;
use mixer_config::manifest::Manifest;

/// (name, our expression, the CEL equivalent).
const CASES: &[(&str, &str, &str)] = &[
    (
        "string_equality",
        r#"destination.service.host == "reviews.default.svc.cluster.local""#,
        r#"destination.service.host == "reviews.default.svc.cluster.local""#,
    ),
    (
        "header_with_default",
        r#"(request.headers["x-user"] | "anonymous") == "admin""#,
        r#"("x-user" in request.headers ? request.headers["x-user"] : "anonymous") == "admin""#,
    ),
    (
        "and_with_match",
        r#"request.method == "GET" && match(request.path, "/api/*")"#,
        r#"request.method == "GET" && request.path.startsWith("/api/")"#,
    ),
    (
        "ip_equality",
        r#"source.ip == ip("10.0.0.1")"#,
        r#"source.ip == b"\x0a\x00\x00\x01""#,
    ),
];

const HEADERS: &[(&str, &str)] = &[
    (":authority", "reviews.default.svc.cluster.local:9080"),
    ("user-agent", "Mozilla/5.0"),
    ("accept", "*/*"),
    ("x-request-id", "2b7c7b6e-0f6b-4a8b-9d7e-3f3c2a1b0c9d"),
    ("x-b3-traceid", "80f198ee56343ba864fe8b2a57d3eff7"),
    ("x-forwarded-proto", "http"),
    ("x-user", "admin"),
];

fn our_bag() -> OwnedBag {
    let headers: StringMap = HEADERS.iter().copied().collect();
    OwnedBag::new()
        .with(
            "destination.service.host",
            Value::String("reviews.default.svc.cluster.local".into()),
        )
        .with("request.headers", Value::StringMap(headers))
        .with("request.method", Value::String("GET".into()))
        .with("request.path", Value::String("/api/v1/reviews/0".into()))
        .with("source.ip", Value::Bytes(vec![10, 0, 0, 1]))
        .with("request.size", Value::Int64(1024))
        .with("response.code", Value::Int64(200))
        .with("source.namespace", Value::String("default".into()))
}

fn cel_context() -> Context<'static> {
    let s = |v: &str| Cel::String(Arc::new(v.to_string()));
    let map = |entries: Vec<(&str, Cel)>| {
        Cel::from(
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<HashMap<String, Cel>>(),
        )
    };
    let headers = map(HEADERS.iter().map(|(k, v)| (*k, s(v))).collect());
    let mut ctx = Context::default();
    ctx.add_variable_from_value(
        "request",
        map(vec![
            ("headers", headers),
            ("method", s("GET")),
            ("path", s("/api/v1/reviews/0")),
            ("size", Cel::Int(1024)),
        ]),
    );
    ctx.add_variable_from_value(
        "destination",
        map(vec![(
            "service",
            map(vec![("host", s("reviews.default.svc.cluster.local"))]),
        )]),
    );
    ctx.add_variable_from_value(
        "source",
        map(vec![
            ("ip", Cel::Bytes(Arc::new(vec![10, 0, 0, 1]))),
            ("namespace", s("default")),
        ]),
    );
    ctx.add_variable_from_value("response", map(vec![("code", Cel::Int(200))]));
    ctx
}

struct Compiled {
    name: &'static str,
    ours: Expression,
    cel: Program,
}

/// Best of several rounds, in nanoseconds per call.
fn ns_per_call(mut f: impl FnMut()) -> f64 {
    const ITERS: u32 = 20_000;
    (0..7)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..ITERS {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(ITERS)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let manifest = Manifest::standard();
    let bag = our_bag();
    let ctx = cel_context();
    let cases: Vec<Compiled> = CASES
        .iter()
        .map(|(name, ours, cel)| Compiled {
            name,
            ours: Expression::compile(ours, &manifest).expect("our expression compiles"),
            cel: Program::compile(cel).expect("the CEL expression compiles"),
        })
        .collect();
    let measuring = std::env::args().any(|a| a == "--bench");
    let mut refs = ReferencedAttributes::new();

    for c in &cases {
        refs.clear();
        let ours = c.ours.eval_bool(&bag, &mut refs).expect("ours evaluates");
        let theirs = c.cel.execute(&ctx).expect("CEL evaluates");
        assert!(ours, "{}: ours is false", c.name);
        assert_eq!(theirs, Cel::Bool(true), "{}: CEL disagrees", c.name);

        let allocs = counting_alloc::per_call(10_000, || {
            refs.clear();
            black_box(c.ours.eval_bool(black_box(&bag), &mut refs).ok());
        });
        let cel_allocs = counting_alloc::per_call(1_000, || {
            black_box(c.cel.execute(black_box(&ctx)).ok());
        });
        eprintln!(
            "{:<20} allocations per evaluation: ours {allocs}, cel-interpreter {cel_allocs}",
            c.name
        );
        assert_eq!(allocs, 0.0, "{}: our evaluation allocates", c.name);

        if measuring {
            let ours_ns = ns_per_call(|| {
                refs.clear();
                black_box(c.ours.eval_bool(black_box(&bag), &mut refs).ok());
            });
            let cel_ns = ns_per_call(|| {
                black_box(c.cel.execute(black_box(&ctx)).ok());
            });
            let ratio = cel_ns / ours_ns;
            eprintln!(
                "{:<20} quick check: ours {ours_ns:.1} ns, cel-interpreter {cel_ns:.1} ns, {ratio:.1}x",
                c.name
            );
            assert!(
                ratio >= 5.0,
                "{}: only {ratio:.1}x faster than cel-interpreter",
                c.name
            );
        }
    }

    let mut criterion = Criterion::default().configure_from_args();
    let mut group = criterion.benchmark_group("expressions");
    for c in &cases {
        group.bench_function(format!("{}/ours", c.name), |b| {
            b.iter(|| {
                refs.clear();
                c.ours.eval_bool(black_box(&bag), &mut refs)
            })
        });
        group.bench_function(format!("{}/cel-interpreter", c.name), |b| {
            b.iter(|| c.cel.execute(black_box(&ctx)))
        });
    }
    group.finish();
    criterion.final_summary();
}
