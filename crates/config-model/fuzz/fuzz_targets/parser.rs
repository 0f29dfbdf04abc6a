//! Any text through the expression parser, printer, checker and evaluator:
//! no panic, no stack overflow, and printing a parsed tree parses back to
//! the same tree.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mixer_attributes::{OwnedBag, ReferencedAttributes, StringMap, Value};
use mixer_config::expr::{self, Expression};
use mixer_config::manifest::Manifest;

struct Fixture {
    manifest: Manifest,
    bag: OwnedBag,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let headers: StringMap = [("x-user", "admin"), ("a", "")].into_iter().collect();
        Fixture {
            manifest: Manifest::standard(),
            bag: OwnedBag::new()
                .with("request.path", Value::String("/api/v1".into()))
                .with("request.headers", Value::StringMap(headers))
                .with("request.size", Value::Int64(i64::MAX))
                .with("source.ip", Value::Bytes(vec![10, 0, 0, 1]))
                .with("destination.ip", Value::Bytes(vec![1, 2, 3]))
                .with("connection.mtls", Value::Bool(true))
                .with("request.host", Value::Int64(7)),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tree) = expr::parse(src) {
        let printed = tree.to_string();
        let again = expr::parse(&printed).expect("a printed tree parses");
        assert_eq!(again, tree, "`{src}` printed as `{printed}`");
    }
    let f = fixture();
    if let Ok(e) = Expression::compile(src, &f.manifest) {
        let mut refs = ReferencedAttributes::new();
        let _ = e.eval(&f.bag, &mut refs);
        refs.clear();
        let _ = e.eval_bool(&f.bag, &mut refs);
    } else if let Err(err) = Expression::compile(src, &f.manifest) {
        let _ = err.to_string();
    }
});
