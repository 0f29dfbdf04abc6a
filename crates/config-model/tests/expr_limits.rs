//! The documented input limits of the expression language: expressions up
//! to `MAX_EXPRESSION_LEN` bytes and `MAX_DEPTH` levels compile and evaluate
//! on a 2 MiB thread stack (Rust's default for spawned threads), even in a
//! debug build; beyond them compiling fails with a `Limit` error rather than
//! overflowing the stack.

use mixer_attributes::{OwnedBag, ReferencedAttributes, StringMap, Value};
use mixer_config::expr::{ExprErrorKind, Expression, MAX_DEPTH, MAX_EXPRESSION_LEN};
use mixer_config::manifest::Manifest;

/// Expressions `n` levels deep, of every recursive shape the grammar has.
fn shapes(n: usize) -> Vec<(&'static str, String)> {
    vec![
        ("not", "!".repeat(n - 1) + "true"),
        ("neg", "-".repeat(n - 1) + "1"),
        ("parens", "(".repeat(n - 1) + "true" + &")".repeat(n - 1)),
        (
            "calls",
            "toLower(".repeat(n - 1) + "request.path" + &")".repeat(n - 1),
        ),
        (
            "conditional",
            "conditional(connection.mtls, ".repeat(n - 1)
                + "request.path"
                + &", \"b\")".repeat(n - 1),
        ),
        (
            "index",
            "request.headers[".repeat(n - 1) + "\"a\"" + &"]".repeat(n - 1),
        ),
        ("or-chain", vec!["connection.mtls"; n].join(" || ")),
        (
            "default-chain",
            vec!["request.host"; n - 1].join(" | ") + " | \"x\"",
        ),
        (
            "right-nested",
            "connection.mtls && (".repeat(n - 1) + "true" + &")".repeat(n - 1),
        ),
    ]
}

fn on_small_stack(f: impl FnOnce() + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

#[test]
fn at_the_depth_limit_everything_works_on_a_2_mib_stack() {
    on_small_stack(|| {
        let manifest = Manifest::standard();
        let headers: StringMap = [("a", "a")].into_iter().collect();
        let bag = OwnedBag::new()
            .with("request.path", Value::String("/P".into()))
            .with("request.headers", Value::StringMap(headers))
            .with("connection.mtls", Value::Bool(false));
        for (shape, src) in shapes(MAX_DEPTH) {
            let e = Expression::compile(&src, &manifest)
                .unwrap_or_else(|e| panic!("{shape} at the limit: {}", e.message()));
            let mut refs = ReferencedAttributes::new();
            let r = e.eval(&bag, &mut refs);
            assert!(r.is_ok(), "{shape}: {r:?}");
            let printed = mixer_config::expr::parse(&src).unwrap().to_string();
            assert!(!printed.is_empty());
        }
    });
}

#[test]
fn one_level_deeper_is_a_limit_error() {
    on_small_stack(|| {
        let manifest = Manifest::standard();
        for (shape, src) in shapes(MAX_DEPTH + 1) {
            let err = Expression::compile(&src, &manifest).unwrap_err();
            assert_eq!(err.kind(), ExprErrorKind::Limit, "{shape}: {err}");
            assert_eq!(
                err.message(),
                format!("expression nests deeper than {MAX_DEPTH} levels")
            );
        }
    });
}

#[test]
fn hostile_nesting_is_refused_without_overflowing() {
    on_small_stack(|| {
        let manifest = Manifest::standard();
        let n = MAX_EXPRESSION_LEN / 2 - 8;
        for src in [
            "(".repeat(n),
            "!".repeat(n),
            "f(".repeat(n / 2),
            "a[".repeat(n / 2),
            vec!["a"; n / 4].join("+"),
        ] {
            let err = Expression::compile(&src, &manifest).unwrap_err();
            assert_eq!(err.kind(), ExprErrorKind::Limit, "{}", err.message());
        }
    });
}

#[test]
fn length_limit() {
    let manifest = Manifest::standard();
    let literal = |len: usize| format!("\"{}\"", "a".repeat(len - 2));
    let e = Expression::compile(&literal(MAX_EXPRESSION_LEN), &manifest).unwrap();
    assert_eq!(e.source().len(), MAX_EXPRESSION_LEN);
    let err = Expression::compile(&literal(MAX_EXPRESSION_LEN + 1), &manifest).unwrap_err();
    assert_eq!(err.kind(), ExprErrorKind::Limit);
    assert_eq!(
        err.message(),
        format!(
            "expression is {} bytes long, the limit is {MAX_EXPRESSION_LEN}",
            MAX_EXPRESSION_LEN + 1
        )
    );
}

#[test]
fn a_long_flat_name_is_no_problem() {
    let manifest = Manifest::standard();
    let name = vec!["seg"; 5000].join(".");
    let err = Expression::compile(&name, &manifest).unwrap_err();
    assert_eq!(err.message(), format!("unknown attribute {name}"));
}
