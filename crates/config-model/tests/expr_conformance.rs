//! The data-driven conformance suite of the expression language: every case
//! of `testdata/expressions.yaml` (expression, attributes, and the expected
//! value and type, compile error, or evaluation error), run by one test.
//!
//! Attribute values in a case are typed by the manifest (the standard one
//! plus the file's `manifest` section) and put in the bag as the wire
//! carries them (an IP_ADDRESS as 4 or 16 bytes). `raw` attributes are put
//! in the bag with the type they state, whatever the manifest says.

use std::collections::{BTreeMap, BTreeSet};

use mixer_attributes::{
    AttrId, Condition, OwnedBag, ReferencedAttributes, StringMap, Timestamp, Value, ValueType,
    parse_duration,
};
use mixer_config::expr::{self, AstKind, BinaryOp, Expression, FUNCTIONS, UnaryOp};
use mixer_config::manifest::Manifest;
use serde::Deserialize;
use yaml_serde::Value as Yaml;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suite {
    manifest: BTreeMap<String, String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    expr: String,
    #[serde(default)]
    attrs: BTreeMap<String, Yaml>,
    #[serde(default)]
    raw: BTreeMap<String, Raw>,
    value: Option<Yaml>,
    #[serde(rename = "type")]
    ty: Option<String>,
    /// The compile error's message.
    error: Option<String>,
    /// `line:column` of the compile error.
    at: Option<String>,
    /// The compile error's whole `Display`.
    display: Option<String>,
    eval_error: Option<String>,
    /// `name`, `name[key]`; a leading `!` for ABSENCE.
    refs: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "type")]
    ty: String,
    value: Yaml,
}

fn value_type(name: &str) -> Result<ValueType, String> {
    ValueType::from_name(name).ok_or_else(|| format!("unknown type {name}"))
}

fn yaml_str(y: &Yaml) -> Result<String, String> {
    match y {
        Yaml::String(s) => Ok(s.clone()),
        Yaml::Number(n) => Ok(n.to_string()),
        Yaml::Bool(b) => Ok(b.to_string()),
        other => Err(format!("expected a string, got {other:?}")),
    }
}

/// A YAML value read as type `ty`; `wire` puts semantic types in the form
/// a bag carries them.
fn to_value(y: &Yaml, ty: ValueType, wire: bool) -> Result<Value, String> {
    let bad = || format!("{y:?} is not a {ty}");
    Ok(match ty {
        ValueType::String => Value::String(yaml_str(y)?),
        ValueType::Int64 => Value::Int64(y.as_i64().ok_or_else(bad)?),
        ValueType::Double => Value::Double(match y {
            Yaml::String(s) => s.parse().map_err(|_| bad())?,
            _ => y.as_f64().ok_or_else(bad)?,
        }),
        ValueType::Bool => Value::Bool(y.as_bool().ok_or_else(bad)?),
        ValueType::Timestamp => {
            Value::Timestamp(Timestamp::parse_rfc3339(&yaml_str(y)?).ok_or_else(bad)?)
        }
        ValueType::Duration => Value::Duration(parse_duration(&yaml_str(y)?).ok_or_else(bad)?),
        ValueType::Bytes => Value::Bytes(
            y.as_sequence()
                .ok_or_else(bad)?
                .iter()
                .map(|b| {
                    b.as_u64()
                        .and_then(|b| u8::try_from(b).ok())
                        .ok_or_else(bad)
                })
                .collect::<Result<_, _>>()?,
        ),
        ValueType::StringMap => Value::StringMap(
            y.as_mapping()
                .ok_or_else(bad)?
                .iter()
                .map(|(k, v)| Ok((yaml_str(k)?, yaml_str(v)?)))
                .collect::<Result<StringMap, String>>()?,
        ),
        ValueType::IpAddress => {
            let ip: std::net::IpAddr = yaml_str(y)?.parse().map_err(|_| bad())?;
            match (wire, ip) {
                (true, std::net::IpAddr::V4(v4)) => Value::Bytes(v4.octets().to_vec()),
                (true, std::net::IpAddr::V6(v6)) => Value::Bytes(v6.octets().to_vec()),
                (false, ip) => Value::IpAddress(ip),
            }
        }
        ValueType::DnsName if wire => Value::String(yaml_str(y)?),
        ValueType::EmailAddress if wire => Value::String(yaml_str(y)?),
        ValueType::Uri if wire => Value::String(yaml_str(y)?),
        ValueType::DnsName => Value::DnsName(yaml_str(y)?),
        ValueType::EmailAddress => Value::EmailAddress(yaml_str(y)?),
        ValueType::Uri => Value::Uri(yaml_str(y)?),
    })
}

fn render_refs(refs: &ReferencedAttributes) -> BTreeSet<String> {
    let mark = |c: Condition| if c == Condition::Absence { "!" } else { "" };
    refs.attributes()
        .iter()
        .map(|(id, c)| format!("{}{}", mark(*c), id.name()))
        .chain(
            refs.map_keys()
                .iter()
                .map(|(id, k, c)| format!("{}{}[{k}]", mark(*c), id.name())),
        )
        .collect()
}

fn run(case: &Case, manifest: &Manifest) -> Result<(), String> {
    let compiled = Expression::compile(&case.expr, manifest);
    if let Some(want) = &case.error {
        let err = match compiled {
            Ok(e) => {
                return Err(format!(
                    "compiled (type {}), expected error",
                    e.result_type()
                ));
            }
            Err(e) => e,
        };
        if err.message() != want {
            return Err(format!(
                "error message:\n  got:  {}\n  want: {want}",
                err.message()
            ));
        }
        if let Some(at) = &case.at {
            let got = format!("{}:{}", err.line(), err.column());
            if &got != at {
                return Err(format!("error position: got {got}, want {at}"));
            }
        }
        if let Some(display) = &case.display
            && &err.to_string() != display
        {
            return Err(format!("error display:\n{err}\nwant:\n{display}"));
        }
        return Ok(());
    }
    let compiled = compiled.map_err(|e| format!("did not compile:\n{e}"))?;

    let mut bag = OwnedBag::new();
    for (name, y) in &case.attrs {
        let ty = manifest
            .get(name)
            .ok_or_else(|| format!("attribute {name} is not in the manifest"))?;
        bag.set(AttrId::of(name), to_value(y, ty, true)?);
    }
    for (name, raw) in &case.raw {
        bag.set(
            AttrId::of(name),
            to_value(&raw.value, value_type(&raw.ty)?, false)?,
        );
    }

    let mut refs = ReferencedAttributes::new();
    let got = compiled.eval(&bag, &mut refs);
    match (&case.eval_error, &case.value) {
        (Some(want), None) => match got {
            Ok(v) => return Err(format!("evaluated to {v:?}, expected error {want}")),
            Err(e) if &e.to_string() != want => {
                return Err(format!("eval error:\n  got:  {e}\n  want: {want}"));
            }
            Err(_) => {}
        },
        (None, Some(want)) => {
            let ty = value_type(case.ty.as_deref().ok_or("a case with value needs a type")?)?;
            if compiled.result_type() != ty {
                return Err(format!("type: got {}, want {ty}", compiled.result_type()));
            }
            let want = to_value(want, ty, false)?;
            let got = got.map_err(|e| format!("eval failed: {e}"))?;
            if got != want {
                return Err(format!("value: got {got:?}, want {want:?}"));
            }
            // eval_bool agrees with eval and records the same references.
            if ty == ValueType::Bool {
                let mut refs2 = ReferencedAttributes::new();
                let b = compiled
                    .eval_bool(&bag, &mut refs2)
                    .map_err(|e| e.to_string())?;
                if Value::Bool(b) != got || render_refs(&refs2) != render_refs(&refs) {
                    return Err("eval_bool disagrees with eval".into());
                }
            }
        }
        _ => return Err("a case needs exactly one of value, error, eval_error".into()),
    }
    if let Some(want) = &case.refs {
        let want: BTreeSet<String> = want.iter().cloned().collect();
        let got = render_refs(&refs);
        if got != want {
            return Err(format!("referenced:\n  got:  {got:?}\n  want: {want:?}"));
        }
    }
    Ok(())
}

/// What the cases exercise, so that a construct of the spec left without a
/// case fails the suite.
#[derive(Default)]
struct Coverage {
    binary: BTreeSet<&'static str>,
    unary: BTreeSet<&'static str>,
    functions: BTreeSet<String>,
    error_kinds: BTreeSet<String>,
    eval_errors: BTreeSet<String>,
}

impl Coverage {
    fn note(&mut self, case: &Case, manifest: &Manifest) {
        if let Ok(ast) = expr::parse(&case.expr) {
            ast.walk(&mut |n| match n.kind() {
                AstKind::Binary(op, ..) => {
                    self.binary.insert(op.symbol());
                }
                AstKind::Unary(op, _) => {
                    self.unary.insert(match op {
                        UnaryOp::Not => "!",
                        UnaryOp::Neg => "-",
                    });
                }
                AstKind::Call { name, .. } => {
                    self.functions.insert(name.clone());
                }
                AstKind::Index(..) => {
                    self.binary.insert("[]");
                }
                _ => {}
            });
        }
        if let Err(e) = Expression::compile(&case.expr, manifest) {
            self.error_kinds.insert(format!("{:?}", e.kind()));
        }
        if let Some(e) = &case.eval_error {
            let kind = e.split([':', ' ']).next().unwrap_or_default().to_string();
            self.eval_errors.insert(kind);
        }
    }
}

#[test]
fn conformance() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/expressions.yaml");
    let text = std::fs::read_to_string(path).expect("read testdata/expressions.yaml");
    let suite: Suite = yaml_serde::from_str(&text).expect("parse testdata/expressions.yaml");
    let mut manifest = Manifest::standard();
    for (name, ty) in &suite.manifest {
        manifest
            .insert(name, value_type(ty).expect("manifest type"))
            .expect("test manifest");
    }

    let mut failures = Vec::new();
    let mut coverage = Coverage::default();
    for (i, case) in suite.cases.iter().enumerate() {
        coverage.note(case, &manifest);
        if let Err(why) = run(case, &manifest) {
            failures.push(format!("case {} `{}`: {why}", i + 1, case.expr));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        suite.cases.len(),
        failures.join("\n\n")
    );

    assert!(suite.cases.len() >= 250, "only {} cases", suite.cases.len());
    for op in BinaryOp::ALL {
        assert!(
            coverage.binary.contains(op.symbol()),
            "no case uses {}",
            op.symbol()
        );
    }
    assert!(coverage.binary.contains("[]"), "no case indexes a map");
    assert_eq!(
        coverage.unary.len(),
        2,
        "unary operators: {:?}",
        coverage.unary
    );
    for f in FUNCTIONS {
        assert!(coverage.functions.contains(*f), "no case calls {f}");
    }
    for kind in [
        "Empty",
        "Syntax",
        "Limit",
        "UnknownAttribute",
        "UnknownFunction",
        "Arity",
        "Type",
        "InvalidConstant",
    ] {
        assert!(
            coverage.error_kinds.contains(kind),
            "no case has a {kind} error"
        );
    }
    for kind in ["lookup", "could", "attribute", "integer", "invalid"] {
        assert!(
            coverage.eval_errors.contains(kind),
            "no case has a `{kind} ...` evaluation error"
        );
    }
}
