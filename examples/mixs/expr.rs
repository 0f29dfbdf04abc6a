//! `mixs expr`: type-check and evaluate one expression, as a rule or an
//! instance field would, against attributes given on the command line.

use std::net::IpAddr;
use std::process::ExitCode;

use mixer_attributes::{
    Interner, OwnedBag, ReferencedAttributes, StringMap, Timestamp, Value, ValueType,
    parse_duration,
};
use mixer_config::expr::Expression;
use mixer_config::manifest::Manifest;

use crate::args::Args;

pub(crate) fn run(argv: Vec<String>) -> Result<ExitCode, String> {
    let manifest = Manifest::standard();
    let mut bag = OwnedBag::new();
    let mut a = Args::new(argv);
    while let Some((flag, inline)) = a.next_flag() {
        match flag.as_str() {
            "attr" | "a" => {
                let kv = a.value(&flag, inline)?;
                let (name, text) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("--attr {kv:?}: expected NAME=VALUE"))?;
                let ty = type_of(&manifest, name)?;
                bag = bag.with(name, from_text(name, ty, text)?);
            }
            "json" => {
                let v = a.value(&flag, inline)?;
                let text = match v.strip_prefix('@') {
                    Some(path) => {
                        std::fs::read_to_string(path).map_err(|e| format!("--json {path}: {e}"))?
                    }
                    None => v,
                };
                let json: serde_json::Value =
                    serde_json::from_str(&text).map_err(|e| format!("--json: {e}"))?;
                let serde_json::Value::Object(map) = json else {
                    return Err("--json: expected one object of attribute name to value".into());
                };
                for (name, v) in map {
                    let ty = type_of(&manifest, &name)?;
                    bag = bag.with(&name, from_json(&name, ty, &v)?);
                }
            }
            other => return Err(format!("unknown flag --{other}; try `mixs help`")),
        }
    }
    let positional = a.positional();
    let [source] = positional.as_slice() else {
        return Err("give exactly one expression (quote it)".into());
    };
    let expr = match Expression::compile(source, &manifest) {
        Ok(e) => e,
        Err(e) => {
            println!("error: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut refs = ReferencedAttributes::new();
    match expr.eval(&bag, &mut refs) {
        Ok(v) => {
            println!("{v}");
            println!("type: {}", expr.result_type());
        }
        Err(e) => {
            println!("error: {e}");
            println!("type: {}", expr.result_type());
            return Ok(ExitCode::from(1));
        }
    }
    let names: Vec<String> =
        refs.attributes()
            .iter()
            .map(|(id, cond)| format!("{} ({cond:?})", Interner::global().name(*id)))
            .chain(refs.map_keys().iter().map(|(id, key, cond)| {
                format!("{}[{key:?}] ({cond:?})", Interner::global().name(*id))
            }))
            .collect();
    if !names.is_empty() {
        println!("read: {}", names.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

fn type_of(manifest: &Manifest, name: &str) -> Result<ValueType, String> {
    manifest
        .get(name)
        .ok_or_else(|| format!("attribute {name:?} is not in the vocabulary"))
}

fn bad(name: &str, ty: ValueType, text: &str) -> String {
    format!("attribute {name} is {ty}: cannot read {text:?} as one")
}

/// Reads `text` as a value of `ty` (the manifest type of `name`).
fn from_text(name: &str, ty: ValueType, text: &str) -> Result<Value, String> {
    let err = || bad(name, ty, text);
    Ok(match ty {
        ValueType::String => Value::String(text.into()),
        ValueType::EmailAddress => Value::EmailAddress(text.into()),
        ValueType::Uri => Value::Uri(text.into()),
        ValueType::DnsName => Value::DnsName(text.into()),
        ValueType::Int64 => Value::Int64(text.parse().map_err(|_| err())?),
        ValueType::Double => Value::Double(text.parse().map_err(|_| err())?),
        ValueType::Bool => Value::Bool(text.parse().map_err(|_| err())?),
        ValueType::Timestamp => Value::Timestamp(Timestamp::parse_rfc3339(text).ok_or_else(err)?),
        ValueType::Duration => Value::Duration(parse_duration(text).ok_or_else(err)?),
        ValueType::Bytes => Value::Bytes(text.as_bytes().to_vec()),
        ValueType::IpAddress => Value::IpAddress(text.parse::<IpAddr>().map_err(|_| err())?),
        ValueType::StringMap => {
            let mut m = StringMap::new();
            for pair in text.split(',').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once(':').ok_or_else(err)?;
                m.insert(k.into(), v.into());
            }
            Value::StringMap(m)
        }
    })
}

fn from_json(name: &str, ty: ValueType, v: &serde_json::Value) -> Result<Value, String> {
    use serde_json::Value as J;
    match (ty, v) {
        (ValueType::StringMap, J::Object(o)) => {
            let mut m = StringMap::new();
            for (k, v) in o {
                let J::String(s) = v else {
                    return Err(format!("attribute {name}: map values must be strings"));
                };
                m.insert(k.as_str().into(), s.clone());
            }
            Ok(Value::StringMap(m))
        }
        (ValueType::Int64, J::Number(n)) => n
            .as_i64()
            .map(Value::Int64)
            .ok_or_else(|| bad(name, ty, &n.to_string())),
        (ValueType::Double, J::Number(n)) => n
            .as_f64()
            .map(Value::Double)
            .ok_or_else(|| bad(name, ty, &n.to_string())),
        (ValueType::Bool, J::Bool(b)) => Ok(Value::Bool(*b)),
        (_, J::String(s)) => from_text(name, ty, s),
        (_, other) => Err(bad(name, ty, &other.to_string())),
    }
}
