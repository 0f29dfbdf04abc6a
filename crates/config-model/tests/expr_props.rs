//! Property tests of the expression language:
//!
//! - printing a parsed expression and parsing it again gives the same tree
//!   (and printing is canonical: printing twice gives the same text);
//! - evaluation never panics, for any expression that type-checks and any
//!   bag (attributes absent, present, or present with the wrong type);
//! - the referenced-attribute set of an evaluation is exactly what is
//!   needed: a bag holding only those attributes (and map keys) gives the
//!   same answer and the same set, and so does any other bag that agrees on
//!   them (which is what a cache keyed on the set relies on).
//!
//! Expressions come from a generator driven by a vector of choices, so that
//! proptest can shrink a failure to a small expression.

use std::collections::BTreeSet;
use std::sync::Arc;

use mixer_attributes::{
    AttrId, Bag, Condition, OwnedBag, ReferencedAttributes, StringMap, Timestamp, Value, ValueType,
};
use mixer_config::expr::{self, Expression};
use mixer_config::manifest::Manifest;
use proptest::prelude::*;

use ValueType as T;

/// Attributes the generated expressions and bags use.
const ATTRS: &[(&str, ValueType)] = &[
    ("request.path", T::String),
    ("request.host", T::String),
    ("source.name", T::String),
    ("connection.mtls", T::Bool),
    ("request.size", T::Int64),
    ("response.code", T::Int64),
    ("prop.double", T::Double),
    ("response.duration", T::Duration),
    ("request.time", T::Timestamp),
    ("source.ip", T::IpAddress),
    ("destination.ip", T::IpAddress),
    ("prop.dns", T::DnsName),
    ("prop.email", T::EmailAddress),
    ("prop.uri", T::Uri),
    ("request.headers", T::StringMap),
    ("source.labels", T::StringMap),
    ("prop.bytes", T::Bytes),
];

const STRINGS: &[&str] = &[
    "",
    "a",
    "GET",
    "/api/v1",
    "*",
    "/api/*",
    "*.svc",
    "Example.COM",
    "10.0.0.1",
    "::ffff:10.0.0.1",
    "(",
    "^a.*",
    "a.b",
    "x@y.com",
    "http://a/b",
    "2017-01-01T00:00:00Z",
    "é\u{0}\t\"\\`",
];

const KEYS: &[&str] = &["a", "b", "x-user", ""];

fn manifest() -> Manifest {
    let mut m = Manifest::standard();
    for (n, t) in ATTRS {
        m.insert(n, *t).unwrap();
    }
    m
}

/// Reads choices off a vector; past its end every choice is 0, which is
/// always a leaf, so generation terminates.
struct Gen<'a> {
    choices: &'a [u32],
    at: usize,
}

impl Gen<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let v = self.choices.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        v as usize % n
    }

    fn attr(&mut self, ty: ValueType) -> String {
        let of: Vec<&str> = ATTRS
            .iter()
            .filter(|(_, t)| *t == ty)
            .map(|(n, _)| *n)
            .collect();
        of[self.pick(of.len())].to_string()
    }

    fn string_literal(&mut self) -> String {
        let s = STRINGS[self.pick(STRINGS.len())];
        // Alternate the two quoting styles; back quotes cannot hold a back quote.
        if self.pick(2) == 0 || s.contains('`') {
            let mut out = String::from("\"");
            for c in s.chars() {
                match c {
                    '"' | '\\' => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if c.is_ascii_graphic() || c == ' ' => out.push(c),
                    c => out.push_str(&format!("\\U{:08x}", c as u32)),
                }
            }
            out + "\""
        } else {
            format!("`{s}`")
        }
    }

    /// An expression of type `ty` (before constant-conversion checks: some,
    /// like `ip("a")`, are rejected by the compiler and skipped).
    fn typed(&mut self, ty: ValueType, depth: u32) -> String {
        let d = depth.saturating_sub(1);
        let leaf = depth == 0;
        let n = |k: usize| if leaf { 1 } else { k };
        match ty {
            T::String => match self.pick(n(8)) {
                0 => self.pick_leaf_string(),
                1 => format!("{}[{}]", self.map(d), self.typed(T::String, d)),
                2 => format!(
                    "({} | {})",
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                3 => format!(
                    "({} + {})",
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                4 => format!("toLower({})", self.typed(T::String, d)),
                5 => format!(
                    "conditional({}, {}, {})",
                    self.typed(T::Bool, d),
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                6 => format!("{}[\"{}\"]", self.map(d), KEYS[self.pick(KEYS.len())]),
                _ => format!(
                    "({}[\"{}\"] | {})",
                    self.map(d),
                    KEYS[self.pick(KEYS.len())],
                    self.typed(T::String, d)
                ),
            },
            T::Bool => match self.pick(n(14)) {
                0 => {
                    if self.pick(2) == 0 {
                        self.attr(T::Bool)
                    } else {
                        ["true", "false"][self.pick(2)].to_string()
                    }
                }
                1 => {
                    let t = [
                        T::String,
                        T::Int64,
                        T::Double,
                        T::Bool,
                        T::Duration,
                        T::Timestamp,
                        T::IpAddress,
                        T::DnsName,
                        T::EmailAddress,
                        T::Uri,
                    ][self.pick(10)];
                    let op = ["==", "!="][self.pick(2)];
                    format!("({} {op} {})", self.typed(t, d), self.typed(t, d))
                }
                2 => {
                    let t =
                        [T::String, T::Int64, T::Double, T::Duration, T::Timestamp][self.pick(5)];
                    let op = ["<", "<=", ">", ">="][self.pick(4)];
                    format!("({} {op} {})", self.typed(t, d), self.typed(t, d))
                }
                3 => format!("({} && {})", self.typed(T::Bool, d), self.typed(T::Bool, d)),
                4 => format!("({} || {})", self.typed(T::Bool, d), self.typed(T::Bool, d)),
                5 => format!("!({})", self.typed(T::Bool, d)),
                6 => format!(
                    "match({}, {})",
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                7 => format!(
                    "({}).startsWith({})",
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                8 => format!(
                    "({}).endsWith({})",
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                9 => format!(
                    "({}).matches({})",
                    self.typed(T::String, d),
                    self.typed(T::String, d)
                ),
                10 => format!("({} | {})", self.typed(T::Bool, d), self.typed(T::Bool, d)),
                _ => format!(
                    "conditional({}, {}, {})",
                    self.typed(T::Bool, d),
                    self.typed(T::Bool, d),
                    self.typed(T::Bool, d)
                ),
            },
            T::Int64 => match self.pick(n(6)) {
                0 => {
                    if self.pick(2) == 0 {
                        self.attr(T::Int64)
                    } else {
                        ["0", "1", "200", "9223372036854775807"][self.pick(4)].to_string()
                    }
                }
                1 => format!("-({})", self.typed(T::Int64, d)),
                2 => format!(
                    "({} + {})",
                    self.typed(T::Int64, d),
                    self.typed(T::Int64, d)
                ),
                3 => format!("size({})", self.typed(T::String, d)),
                4 => format!(
                    "({} | {})",
                    self.typed(T::Int64, d),
                    self.typed(T::Int64, d)
                ),
                _ => format!(
                    "conditional({}, {}, {})",
                    self.typed(T::Bool, d),
                    self.typed(T::Int64, d),
                    self.typed(T::Int64, d)
                ),
            },
            T::Double => match self.pick(n(4)) {
                0 => {
                    if self.pick(2) == 0 {
                        self.attr(T::Double)
                    } else {
                        ["0.0", "1.5", "1e300"][self.pick(3)].to_string()
                    }
                }
                1 => format!("-({})", self.typed(T::Double, d)),
                2 => format!(
                    "({} + {})",
                    self.typed(T::Double, d),
                    self.typed(T::Double, d)
                ),
                _ => format!(
                    "({} | {})",
                    self.typed(T::Double, d),
                    self.typed(T::Double, d)
                ),
            },
            T::Duration => match self.pick(n(2)) {
                0 => {
                    if self.pick(2) == 0 {
                        self.attr(T::Duration)
                    } else {
                        ["\"10ms\"", "`1h`", "\"0\""][self.pick(3)].to_string()
                    }
                }
                _ => format!(
                    "({} | {})",
                    self.typed(T::Duration, d),
                    self.typed(T::Duration, d)
                ),
            },
            T::Timestamp => match self.pick(n(2)) {
                0 => self.attr(T::Timestamp),
                _ => format!("timestamp({})", self.typed(T::String, d)),
            },
            T::IpAddress => match self.pick(n(3)) {
                0 => self.attr(T::IpAddress),
                1 => format!("ip({})", self.typed(T::String, d)),
                _ => format!(
                    "({} | {})",
                    self.typed(T::IpAddress, d),
                    self.typed(T::IpAddress, d)
                ),
            },
            T::DnsName | T::EmailAddress | T::Uri => match self.pick(n(2)) {
                0 => self.attr(ty),
                _ => {
                    let f = match ty {
                        T::DnsName => "dnsName",
                        T::EmailAddress => "email",
                        _ => "uri",
                    };
                    format!("{f}({})", self.typed(T::String, d))
                }
            },
            T::StringMap => self.map(depth),
            T::Bytes => match self.pick(n(2)) {
                0 => self.attr(T::Bytes),
                _ => format!("({} | {})", self.attr(T::Bytes), self.attr(T::Bytes)),
            },
        }
    }

    fn pick_leaf_string(&mut self) -> String {
        if self.pick(2) == 0 {
            self.attr(T::String)
        } else {
            self.string_literal()
        }
    }

    fn map(&mut self, depth: u32) -> String {
        let d = depth.saturating_sub(1);
        match self.pick(if depth == 0 { 2 } else { 4 }) {
            0 => self.attr(T::StringMap),
            1 => "emptyStringMap()".to_string(),
            2 => format!("({} | {})", self.map(d), self.map(d)),
            _ => format!(
                "conditional({}, {}, {})",
                self.typed(T::Bool, d),
                self.map(d),
                self.map(d)
            ),
        }
    }

    /// Any syntax, well-typed or not: every operator (`*` `/` `%` and
    /// binary `-` included), unknown names, methods on any receiver.
    fn syntax(&mut self, depth: u32) -> String {
        let d = depth.saturating_sub(1);
        match self.pick(if depth == 0 { 3 } else { 9 }) {
            0 => {
                ["a", "a.b", "request.headers", "x_1.y2", "true", "false"][self.pick(6)].to_string()
            }
            1 => self.string_literal(),
            2 => ["0", "7", "1.5", "2.5e-7", "1e300", "9223372036854775807"][self.pick(6)]
                .to_string(),
            3 => {
                let op = [
                    "*", "/", "%", "+", "-", "|", "==", "!=", "<", "<=", ">", ">=", "&&", "||",
                ][self.pick(14)];
                format!("{} {op} {}", self.syntax(d), self.syntax(d))
            }
            4 => format!("{}{}", ["!", "-"][self.pick(2)], self.syntax(d)),
            5 => format!("({})", self.syntax(d)),
            6 => format!("{}[{}]", self.syntax(d), self.syntax(d)),
            7 => {
                let args: Vec<String> = (0..self.pick(3)).map(|_| self.syntax(d)).collect();
                format!(
                    "{}({})",
                    ["f", "match", "size"][self.pick(3)],
                    args.join(", ")
                )
            }
            _ => format!(
                "{}.{}({})",
                self.syntax(d),
                ["startsWith", "m"][self.pick(2)],
                self.syntax(d)
            ),
        }
    }
}

fn value_of(ty: ValueType, seed: u32) -> Value {
    let s = seed as usize;
    let str_of = || STRINGS[s % STRINGS.len()].to_string();
    match ty {
        T::String => Value::String(str_of()),
        T::Int64 => Value::Int64([0, 1, -1, 200, i64::MAX, i64::MIN][s % 6]),
        T::Double => Value::Double([0.0, 1.5, -2.0, f64::NAN, f64::INFINITY, 1e300][s % 6]),
        T::Bool => Value::Bool(s.is_multiple_of(2)),
        T::Duration => Value::Duration(std::time::Duration::from_millis((s % 5000) as u64)),
        T::Timestamp => {
            Value::Timestamp(Timestamp::new((s % 3) as i64 * 1_000_000_000, 0).unwrap())
        }
        // As the wire carries them, lengths other than 4 and 16 included.
        T::IpAddress => Value::Bytes(
            [
                vec![10, 0, 0, 1],
                vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 10, 0, 0, 1],
                vec![1, 2, 3],
                vec![],
            ][s % 4]
                .clone(),
        ),
        T::DnsName | T::EmailAddress | T::Uri => Value::String(str_of()),
        T::StringMap => Value::StringMap(
            KEYS.iter()
                .enumerate()
                .filter(|(i, _)| seed >> i & 1 == 1)
                .map(|(i, k)| (*k, STRINGS[(s + i) % STRINGS.len()]))
                .collect(),
        ),
        T::Bytes => Value::Bytes(vec![(s % 256) as u8; s % 5]),
    }
}

/// A bag over [`ATTRS`]: each attribute absent, present, or (rarely)
/// present with a type other than the manifest's.
fn bag_strategy() -> impl Strategy<Value = OwnedBag> {
    prop::collection::vec(
        (0u8..10, any::<u32>(), 0usize..ValueType::ALL.len()),
        ATTRS.len(),
    )
    .prop_map(|slots| {
        let mut bag = OwnedBag::new();
        for ((name, ty), (presence, seed, other)) in ATTRS.iter().zip(slots) {
            let ty = match presence {
                0..=3 => continue,
                4 => ValueType::ALL[other].wire_type(),
                _ => *ty,
            };
            bag.set(AttrId::of(name), value_of(ty, seed));
        }
        bag
    })
}

fn choices() -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(any::<u32>(), 0..48)
}

fn result_type_strategy() -> impl Strategy<Value = ValueType> {
    prop::sample::select(ValueType::ALL.to_vec())
}

/// Results compared as text, so that NaN equals NaN.
fn outcome(r: &Result<Value, expr::EvalError>) -> String {
    format!("{r:?}")
}

fn refs_set(refs: &ReferencedAttributes) -> BTreeSet<String> {
    refs.attributes()
        .iter()
        .map(|(id, c)| format!("{c:?} {id}"))
        .chain(
            refs.map_keys()
                .iter()
                .map(|(id, k, c)| format!("{c:?} {id}[{k}]")),
        )
        .collect()
}

/// Makes `bag` agree with `refs` as recorded on `source`: every EXACT
/// attribute and key copied, every ABSENCE removed. With an empty `bag`
/// this is the bag holding only the referenced attributes.
fn agree(bag: &mut OwnedBag, source: &OwnedBag, refs: &ReferencedAttributes) {
    let exact: BTreeSet<AttrId> = refs
        .attributes()
        .iter()
        .filter(|(_, c)| *c == Condition::Exact)
        .map(|(id, _)| *id)
        .collect();
    for (id, c) in refs.attributes() {
        match c {
            Condition::Exact => {
                bag.set(
                    *id,
                    source.get(*id).expect("EXACT means present").to_owned(),
                );
            }
            Condition::Absence => {
                bag.remove(*id);
            }
        }
    }
    for (id, key, c) in refs.map_keys() {
        if exact.contains(id) {
            continue;
        }
        let mut map = match bag.get(*id).map(|v| v.to_owned()) {
            Some(Value::StringMap(m)) => m,
            _ => StringMap::new(),
        };
        match c {
            Condition::Exact => {
                let Some(Value::StringMap(src)) = source.get(*id).map(|v| v.to_owned()) else {
                    panic!("a key recorded EXACT in a map the source lacks");
                };
                let v = src.get(key).expect("EXACT key present");
                map.insert(Arc::clone(key), v.to_string());
            }
            Condition::Absence => {
                map.remove(key);
            }
        }
        bag.set(*id, Value::StringMap(map));
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn print_then_parse_gives_the_same_tree(c in choices(), depth in 0u32..5, typed in any::<bool>(), ty in result_type_strategy()) {
        let mut g = Gen { choices: &c, at: 0 };
        let src = if typed { g.typed(ty, depth) } else { g.syntax(depth) };
        if let Ok(tree) = expr::parse(&src) {
            let printed = tree.to_string();
            let again = expr::parse(&printed)
                .unwrap_or_else(|e| panic!("`{printed}` (printed from `{src}`) does not parse:\n{e}"));
            prop_assert_eq!(&again, &tree, "`{}` printed as `{}`", src, printed);
            prop_assert_eq!(again.to_string(), printed);
        }
    }

    #[test]
    fn print_then_parse_on_arbitrary_text(src in "[a-z.()\\[\\]!|&=<>+*/%\" `0-9,-]{0,40}") {
        if let Ok(tree) = expr::parse(&src) {
            let printed = tree.to_string();
            let again = expr::parse(&printed)
                .unwrap_or_else(|e| panic!("`{printed}` (printed from `{src}`) does not parse:\n{e}"));
            prop_assert_eq!(again, tree);
        }
    }

    #[test]
    fn evaluation_never_panics(c in choices(), depth in 0u32..6, ty in result_type_strategy(), bag in bag_strategy()) {
        let manifest = manifest();
        let src = Gen { choices: &c, at: 0 }.typed(ty, depth);
        let Ok(e) = Expression::compile(&src, &manifest) else {
            // Only constant conversions (`ip("a")`) and bad constant
            // regexes are rejected among generated expressions.
            return Ok(());
        };
        prop_assert_eq!(e.result_type(), ty);
        let mut refs = ReferencedAttributes::new();
        let r = e.eval(&bag, &mut refs);
        if let Ok(v) = &r {
            prop_assert_eq!(v.value_type(), ty);
        }
        let mut refs2 = ReferencedAttributes::new();
        let _ = e.eval_with(&bag, &mut refs2, |v| v.to_string());
        let mut refs3 = ReferencedAttributes::new();
        let b = e.eval_bool(&bag, &mut refs3);
        if ty == T::Bool {
            prop_assert_eq!(outcome(&b.map(Value::Bool)), outcome(&r));
        } else {
            prop_assert!(b.is_err());
        }
    }

    #[test]
    fn referenced_attributes_are_exactly_what_the_answer_needs(
        c in choices(), depth in 0u32..6, ty in result_type_strategy(),
        bag in bag_strategy(), other in bag_strategy(),
    ) {
        let manifest = manifest();
        let src = Gen { choices: &c, at: 0 }.typed(ty, depth);
        let Ok(e) = Expression::compile(&src, &manifest) else { return Ok(()) };
        let mut refs = ReferencedAttributes::new();
        let want = outcome(&e.eval(&bag, &mut refs));

        // Present means EXACT, absent means ABSENCE.
        for (id, c) in refs.attributes() {
            prop_assert_eq!(bag.get(*id).is_some(), *c == Condition::Exact);
        }

        // A bag holding only the referenced attributes and keys.
        let mut only = OwnedBag::new();
        agree(&mut only, &bag, &refs);
        let mut refs_only = ReferencedAttributes::new();
        prop_assert_eq!(outcome(&e.eval(&only, &mut refs_only)), want.clone(), "`{}` on {:?}", src, only);
        prop_assert_eq!(refs_set(&refs_only), refs_set(&refs));

        // Any other bag that agrees on them.
        let mut agreeing = other;
        agree(&mut agreeing, &bag, &refs);
        let mut refs_other = ReferencedAttributes::new();
        prop_assert_eq!(outcome(&e.eval(&agreeing, &mut refs_other)), want, "`{}` on {:?}", src, agreeing);
        prop_assert_eq!(refs_set(&refs_other), refs_set(&refs));
    }
}

/// The properties above skip expressions that do not compile; this keeps
/// them from passing vacuously.
#[test]
fn generated_expressions_mostly_type_check() {
    let manifest = manifest();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u32
    };
    let (mut total, mut ok, mut deep) = (0, 0, 0);
    for i in 0..1000 {
        let choices: Vec<u32> = (0..48).map(|_| next()).collect();
        let ty = ValueType::ALL[i % ValueType::ALL.len()];
        let src = Gen {
            choices: &choices,
            at: 0,
        }
        .typed(ty, 5);
        total += 1;
        if let Ok(e) = Expression::compile(&src, &manifest) {
            assert_eq!(e.result_type(), ty, "{src}");
            ok += 1;
            if expr::parse(&src).unwrap().to_string().len() > 40 {
                deep += 1;
            }
        }
    }
    assert!(
        ok * 10 >= total * 8,
        "only {ok} of {total} generated expressions compile"
    );
    assert!(deep * 4 >= total, "only {deep} of {total} are not trivial");
}
