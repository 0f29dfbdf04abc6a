//! The typical rule conditions evaluate without allocating, once the
//! reused `ReferencedAttributes` has grown to size. (The bench
//! `benches/expressions.rs` checks the same under `cargo bench`.)

#[path = "../../../benches/support/counting_alloc.rs"]
#[allow(unreachable_pub)]
mod counting_alloc;

#[global_allocator]
static ALLOC: counting_alloc::Counting = counting_alloc::Counting;

use mixer_attributes::{OwnedBag, ReferencedAttributes, StringMap, Value};
use mixer_config::expr::Expression;
use mixer_config::manifest::Manifest;

#[test]
fn typical_conditions_do_not_allocate() {
    let manifest = Manifest::standard();
    let headers: StringMap = [("x-user", "admin"), ("user-agent", "curl")]
        .into_iter()
        .collect();
    let bag = OwnedBag::new()
        .with("request.method", Value::String("GET".into()))
        .with("request.path", Value::String("/api/v1".into()))
        .with("request.headers", Value::StringMap(headers))
        .with("source.ip", Value::Bytes(vec![10, 0, 0, 1]))
        .with(
            "response.duration",
            Value::Duration(std::time::Duration::from_millis(7)),
        );
    let mut refs = ReferencedAttributes::new();
    for (src, want) in [
        (r#"request.method == "GET""#, true),
        (
            r#"(request.headers["x-user"] | "anonymous") == "admin""#,
            true,
        ),
        (
            r#"(request.headers["x-missing"] | "anonymous") == "admin""#,
            false,
        ),
        (
            r#"request.method == "GET" && match(request.path, "/api/*")"#,
            true,
        ),
        (r#"source.ip == ip("10.0.0.1")"#, true),
        (
            r#"request.path.startsWith("/api") || request.host == "x""#,
            true,
        ),
        (
            r#"response.duration < "10ms" && !(request.method != "GET")"#,
            true,
        ),
        (r#""^/api/v[0-9]+$".matches(request.path)"#, true),
    ] {
        let e = Expression::compile(src, &manifest).unwrap();
        let mut got = None;
        let per_call = counting_alloc::per_call_on_this_thread(1000, || {
            refs.clear();
            got = Some(e.eval_bool(&bag, &mut refs).unwrap());
        });
        assert_eq!(got, Some(want), "{src}");
        assert_eq!(per_call, 0.0, "{src} allocates");
    }
}
