//! The compiled form and its interpreter.
//!
//! Attributes are read by pre-resolved [`AttrId`]; constants (map keys
//! included) are kept ready to compare (`Arc<str>`, parsed IPs, compiled
//! regexes), and strings from the bag are compared borrowed, so the common
//! conditions evaluate without allocating.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use mixer_attributes::{
    AttrId, Bag, Condition, ReferencedAttributes, StringMap, Timestamp, Value, ValueRef, ValueType,
    ip_from_bytes,
};
use regex::Regex;

use super::error::{EvalError, truncate};
use super::functions::{dns_eq, dns_valid, email_eq, email_valid, glob, uri_eq, uri_valid};

/// Bound on the compiled size of a regular expression built at evaluation
/// time from a non-constant pattern.
pub(crate) const RUNTIME_REGEX_SIZE_LIMIT: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct AttrRef {
    pub(crate) id: AttrId,
    pub(crate) name: Arc<str>,
    pub(crate) ty: ValueType,
}

#[derive(Debug, Clone)]
pub(crate) enum Const {
    Str(Arc<str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Timestamp(Timestamp),
    Duration(Duration),
    Bytes(Arc<[u8]>),
    Map(Arc<StringMap>),
    Ip(IpAddr),
}

#[derive(Debug)]
pub(crate) enum MapSource {
    /// An attribute: keys are recorded one by one.
    Attr(AttrRef),
    /// Any other map expression: what it reads is recorded by its nodes.
    Expr(Box<Node>),
}

#[derive(Debug)]
pub(crate) enum Key {
    Const(Arc<str>),
    Expr(Box<Node>),
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Func {
    Match,
    StartsWith,
    EndsWith,
    ToLower,
    Size,
    Ip,
    Timestamp,
    DnsName,
    Email,
    Uri,
}

#[derive(Debug)]
pub(crate) enum Node {
    Const(Const),
    Attr(AttrRef),
    Index(MapSource, Key),
    Not(Box<Node>),
    Neg(Box<Node>),
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Default(Box<Node>, Box<Node>),
    /// `attr["key"] | "default"`, the common header lookup, in one step.
    KeyOr {
        attr: AttrRef,
        key: Arc<str>,
        default: Arc<str>,
    },
    Eq {
        ty: ValueType,
        negate: bool,
        l: Box<Node>,
        r: Box<Node>,
    },
    /// `expr == constant` (or `!=`): the constant is compared as it is.
    EqConst {
        ty: ValueType,
        negate: bool,
        l: Box<Node>,
        value: Const,
    },
    /// `attr == constant` (or `!=`), the most common condition, compared
    /// straight against what the bag holds.
    AttrEq {
        attr: AttrRef,
        value: Const,
        negate: bool,
    },
    Cmp(CmpOp, Box<Node>, Box<Node>),
    Add(Box<Node>, Box<Node>),
    Call(Func, Vec<Node>),
    Matches {
        /// Compiled once when the pattern is a constant.
        re: Option<Box<Regex>>,
        pattern: Box<Node>,
        subject: Box<Node>,
    },
    Conditional(Box<Node>, Box<Node>, Box<Node>),
}

/// A value during evaluation. Strings of every string-like type are `Str`
/// (the static type says which); everything borrowed from the bag or the
/// program stays borrowed.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Double(f64),
    Bool(bool),
    Timestamp(Timestamp),
    Duration(Duration),
    Bytes(&'a [u8]),
    Map(&'a StringMap),
    Ip(IpAddr),
}

impl<'a> Val<'a> {
    fn str(&self) -> &str {
        match self {
            Val::Str(s) => s,
            _ => "",
        }
    }

    fn from_const(c: &'a Const) -> Val<'a> {
        match c {
            Const::Str(s) => Val::Str(Cow::Borrowed(s)),
            Const::Int(v) => Val::Int(*v),
            Const::Double(v) => Val::Double(*v),
            Const::Bool(v) => Val::Bool(*v),
            Const::Timestamp(v) => Val::Timestamp(*v),
            Const::Duration(v) => Val::Duration(*v),
            Const::Bytes(v) => Val::Bytes(v),
            Const::Map(v) => Val::Map(v),
            Const::Ip(v) => Val::Ip(*v),
        }
    }

    pub(crate) fn to_const(&self) -> Const {
        match self {
            Val::Str(s) => Const::Str(Arc::from(&**s)),
            Val::Int(v) => Const::Int(*v),
            Val::Double(v) => Const::Double(*v),
            Val::Bool(v) => Const::Bool(*v),
            Val::Timestamp(v) => Const::Timestamp(*v),
            Val::Duration(v) => Const::Duration(*v),
            Val::Bytes(v) => Const::Bytes(Arc::from(*v)),
            Val::Map(v) => Const::Map(Arc::new((*v).clone())),
            Val::Ip(v) => Const::Ip(*v),
        }
    }

    /// The value as the public type, tagged with the expression's type.
    pub(crate) fn into_value(self, ty: ValueType) -> Value {
        match self {
            Val::Str(s) => {
                let s = s.into_owned();
                match ty {
                    ValueType::DnsName => Value::DnsName(s),
                    ValueType::EmailAddress => Value::EmailAddress(s),
                    ValueType::Uri => Value::Uri(s),
                    _ => Value::String(s),
                }
            }
            Val::Int(v) => Value::Int64(v),
            Val::Double(v) => Value::Double(v),
            Val::Bool(v) => Value::Bool(v),
            Val::Timestamp(v) => Value::Timestamp(v),
            Val::Duration(v) => Value::Duration(v),
            Val::Bytes(v) => Value::Bytes(v.to_vec()),
            Val::Map(v) => Value::StringMap(v.clone()),
            Val::Ip(v) => Value::IpAddress(v),
        }
    }

    /// A borrowed view, tagged with the expression's type.
    pub(crate) fn as_value_ref(&self, ty: ValueType) -> ValueRef<'_> {
        match self {
            Val::Str(s) => match ty {
                ValueType::DnsName => ValueRef::DnsName(s),
                ValueType::EmailAddress => ValueRef::EmailAddress(s),
                ValueType::Uri => ValueRef::Uri(s),
                _ => ValueRef::String(s),
            },
            Val::Int(v) => ValueRef::Int64(*v),
            Val::Double(v) => ValueRef::Double(*v),
            Val::Bool(v) => ValueRef::Bool(*v),
            Val::Timestamp(v) => ValueRef::Timestamp(*v),
            Val::Duration(v) => ValueRef::Duration(*v),
            Val::Bytes(v) => ValueRef::Bytes(v),
            Val::Map(v) => ValueRef::StringMap(v),
            Val::Ip(v) => ValueRef::IpAddress(*v),
        }
    }
}

/// Reads a present attribute, checking the bag's type against the manifest's.
fn read<'a>(a: &AttrRef, v: ValueRef<'a>) -> Result<Val<'a>, EvalError> {
    let actual = v.value_type();
    if actual != a.ty && actual != a.ty.wire_type() {
        return Err(EvalError::AttributeType {
            name: a.name.clone(),
            expected: a.ty,
            actual,
        });
    }
    Ok(match v {
        ValueRef::String(s)
        | ValueRef::DnsName(s)
        | ValueRef::EmailAddress(s)
        | ValueRef::Uri(s) => Val::Str(Cow::Borrowed(s)),
        ValueRef::Int64(v) => Val::Int(v),
        ValueRef::Double(v) => Val::Double(v),
        ValueRef::Bool(v) => Val::Bool(v),
        ValueRef::Timestamp(v) => Val::Timestamp(v),
        ValueRef::Duration(v) => Val::Duration(v),
        ValueRef::Bytes(b) if a.ty == ValueType::IpAddress => match ip_from_bytes(b) {
            Some(ip) => Val::Ip(ip),
            None => {
                return Err(EvalError::BadIpBytes {
                    name: a.name.clone(),
                    len: b.len(),
                });
            }
        },
        ValueRef::Bytes(b) => Val::Bytes(b),
        ValueRef::StringMap(m) => Val::Map(m),
        ValueRef::IpAddress(ip) => Val::Ip(ip),
    })
}

fn lookup<'a, B: Bag + ?Sized>(
    a: &AttrRef,
    bag: &'a B,
    refs: &mut ReferencedAttributes,
) -> Result<Option<Val<'a>>, EvalError> {
    match bag.get(a.id) {
        Some(v) => {
            refs.record(a.id, Condition::Exact);
            read(a, v).map(Some)
        }
        None => {
            refs.record(a.id, Condition::Absence);
            Ok(None)
        }
    }
}

/// IPv4 and its IPv4-mapped IPv6 form are the same address.
fn ip_eq(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

fn equal(ty: ValueType, l: &Val<'_>, r: &Val<'_>) -> bool {
    match (l, r) {
        (Val::Str(a), Val::Str(b)) => match ty {
            ValueType::DnsName => dns_eq(a, b),
            ValueType::EmailAddress => email_eq(a, b),
            ValueType::Uri => uri_eq(a, b),
            _ => a == b,
        },
        (Val::Int(a), Val::Int(b)) => a == b,
        (Val::Double(a), Val::Double(b)) => a == b,
        (Val::Bool(a), Val::Bool(b)) => a == b,
        (Val::Timestamp(a), Val::Timestamp(b)) => a == b,
        (Val::Duration(a), Val::Duration(b)) => a == b,
        (Val::Ip(a), Val::Ip(b)) => ip_eq(*a, *b),
        (Val::Bytes(a), Val::Bytes(b)) => a == b,
        (Val::Map(a), Val::Map(b)) => a == b,
        _ => false,
    }
}

/// `attr[key]` inside a `|`: `None` when the map is absent or lacks the key.
fn key_or<'a, B: Bag + ?Sized>(
    a: &AttrRef,
    key: &Arc<str>,
    bag: &'a B,
    refs: &mut ReferencedAttributes,
) -> Result<Option<&'a str>, EvalError> {
    match bag.get(a.id) {
        Some(ValueRef::StringMap(map)) => {
            let v = map.get(key);
            refs.record_key(a.id, key, cond(v.is_some()));
            Ok(v)
        }
        Some(other) => {
            refs.record(a.id, Condition::Exact);
            read(a, other).map(|_| None)
        }
        None => {
            refs.record(a.id, Condition::Absence);
            Ok(None)
        }
    }
}

fn attr_eq<B: Bag + ?Sized>(
    a: &AttrRef,
    value: &Const,
    bag: &B,
    refs: &mut ReferencedAttributes,
) -> Result<bool, EvalError> {
    let Some(v) = bag.get(a.id) else {
        refs.record(a.id, Condition::Absence);
        return Err(EvalError::LookupFailed {
            name: a.name.clone(),
        });
    };
    refs.record(a.id, Condition::Exact);
    Ok(match (a.ty, v, value) {
        (ValueType::String, ValueRef::String(s), Const::Str(c)) => s == &**c,
        // IP attributes travel as bytes: compare them without building an
        // address (an IPv4 equals its IPv4-mapped IPv6 form).
        (ValueType::IpAddress, ValueRef::Bytes(b), Const::Ip(ip)) if b.len() == 4 => {
            match ip.to_canonical() {
                IpAddr::V4(c) => b == c.octets(),
                IpAddr::V6(_) => false,
            }
        }
        (ValueType::IpAddress, ValueRef::Bytes(b), Const::Ip(ip)) if b.len() == 16 => {
            let c = match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => *v6,
            };
            b == c.octets()
        }
        _ => equal(a.ty, &read(a, v)?, &Val::from_const(value)),
    })
}

fn order(l: &Val<'_>, r: &Val<'_>) -> Option<Ordering> {
    match (l, r) {
        (Val::Str(a), Val::Str(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
        (Val::Int(a), Val::Int(b)) => Some(a.cmp(b)),
        (Val::Double(a), Val::Double(b)) => a.partial_cmp(b),
        (Val::Timestamp(a), Val::Timestamp(b)) => Some(a.cmp(b)),
        (Val::Duration(a), Val::Duration(b)) => Some(a.cmp(b)),
        _ => None,
    }
}

fn convert(input: &str, target: ValueType) -> EvalError {
    EvalError::Convert {
        input: truncate(input, 256),
        target,
    }
}

#[inline(never)]
fn neg(v: Val<'_>) -> Result<Val<'_>, EvalError> {
    Ok(match v {
        Val::Int(v) => Val::Int(v.checked_neg().ok_or(EvalError::Overflow { op: "-" })?),
        Val::Double(v) => Val::Double(-v),
        other => other,
    })
}

#[inline(never)]
fn add<'a>(l: Val<'a>, r: Val<'a>) -> Result<Val<'a>, EvalError> {
    Ok(match (l, r) {
        (Val::Int(a), Val::Int(b)) => {
            Val::Int(a.checked_add(b).ok_or(EvalError::Overflow { op: "+" })?)
        }
        (Val::Double(a), Val::Double(b)) => Val::Double(a + b),
        (Val::Str(a), b) => {
            let mut s = a.into_owned();
            s.push_str(b.str());
            Val::Str(Cow::Owned(s))
        }
        (a, _) => a,
    })
}

fn compare(op: CmpOp, l: &Val<'_>, r: &Val<'_>) -> bool {
    match order(l, r) {
        Some(o) => match op {
            CmpOp::Lt => o.is_lt(),
            CmpOp::Le => o.is_le(),
            CmpOp::Gt => o.is_gt(),
            CmpOp::Ge => o.is_ge(),
        },
        None => false,
    }
}

/// `pattern.matches(subject)` with a pattern known only at run time.
#[inline(never)]
fn matches(pattern: &Val<'_>, subject: &Val<'_>) -> Result<bool, EvalError> {
    let p = pattern.str();
    let re = regex::RegexBuilder::new(p)
        .size_limit(RUNTIME_REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| EvalError::Regex {
            pattern: truncate(p, 256),
            reason: regex_reason(&e),
        })?;
    Ok(re.is_match(subject.str()))
}

fn to_bool(v: Val<'_>) -> bool {
    matches!(v, Val::Bool(true))
}

impl Node {
    /// Evaluates outside a `|`: an absent attribute is an error.
    ///
    /// Each kind of node is evaluated by its own small function so that the
    /// recursion (bounded by `MAX_DEPTH`) costs little stack per level.
    pub(crate) fn eval<'a, B: Bag + ?Sized>(
        &'a self,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
    ) -> Result<Val<'a>, EvalError> {
        match self {
            Node::Const(c) => Ok(Val::from_const(c)),
            Node::Attr(a) => match lookup(a, bag, refs)? {
                Some(v) => Ok(v),
                None => Err(EvalError::LookupFailed {
                    name: a.name.clone(),
                }),
            },
            Node::Index(m, k) => self.index_value(m, k, bag, refs),
            Node::Default(l, r) => match l.try_eval(bag, refs)? {
                Some(v) => Ok(v),
                None => r.eval(bag, refs),
            },
            Node::KeyOr { attr, key, default } => match key_or(attr, key, bag, refs)? {
                Some(v) => Ok(Val::Str(Cow::Borrowed(v))),
                None => Ok(Val::Str(Cow::Borrowed(default))),
            },
            Node::Neg(e) => neg(e.eval(bag, refs)?),
            Node::Add(l, r) => add(l.eval(bag, refs)?, r.eval(bag, refs)?),
            Node::Call(f, args) => self.call(*f, args, bag, refs),
            Node::Conditional(c, a, b) => {
                if c.eval_bool(bag, refs)? {
                    a.eval(bag, refs)
                } else {
                    b.eval(bag, refs)
                }
            }
            Node::Not(_)
            | Node::And(..)
            | Node::Or(..)
            | Node::Eq { .. }
            | Node::EqConst { .. }
            | Node::AttrEq { .. }
            | Node::Cmp(..)
            | Node::Matches { .. } => self.eval_bool(bag, refs).map(Val::Bool),
        }
    }

    /// Evaluates a BOOL node without building a [`Val`] where it can.
    pub(crate) fn eval_bool<B: Bag + ?Sized>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
    ) -> Result<bool, EvalError> {
        match self {
            Node::Eq { ty, negate, l, r } => {
                Ok(equal(*ty, &l.eval(bag, refs)?, &r.eval(bag, refs)?) != *negate)
            }
            Node::AttrEq {
                attr,
                value,
                negate,
            } => Ok(attr_eq(attr, value, bag, refs)? != *negate),
            Node::EqConst {
                ty,
                negate,
                l,
                value,
            } => {
                let v = l.eval(bag, refs)?;
                let eq = match (&v, value) {
                    (Val::Str(a), Const::Str(c)) if *ty == ValueType::String => **a == **c,
                    (v, c) => equal(*ty, v, &Val::from_const(c)),
                };
                Ok(eq != *negate)
            }
            Node::Cmp(op, l, r) => Ok(compare(*op, &l.eval(bag, refs)?, &r.eval(bag, refs)?)),
            Node::And(l, r) => Ok(l.eval_bool(bag, refs)? && r.eval_bool(bag, refs)?),
            Node::Or(l, r) => Ok(l.eval_bool(bag, refs)? || r.eval_bool(bag, refs)?),
            Node::Not(e) => Ok(!e.eval_bool(bag, refs)?),
            Node::Matches {
                re,
                pattern,
                subject,
            } => match re {
                Some(re) => Ok(re.is_match(subject.eval(bag, refs)?.str())),
                None => matches(&pattern.eval(bag, refs)?, &subject.eval(bag, refs)?),
            },
            _ => Ok(to_bool(self.eval(bag, refs)?)),
        }
    }

    #[inline(never)]
    fn index_value<'a, B: Bag + ?Sized>(
        &'a self,
        m: &'a MapSource,
        k: &'a Key,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
    ) -> Result<Val<'a>, EvalError> {
        match self.index(m, k, bag, refs, false)? {
            Some(v) => Ok(v),
            // Only reached when the map itself is an absent attribute.
            None => Err(EvalError::LookupFailed {
                name: match m {
                    MapSource::Attr(a) => a.name.clone(),
                    MapSource::Expr(_) => Arc::from("map"),
                },
            }),
        }
    }

    /// Evaluates inside a `|`: `Ok(None)` when an attribute (or a map key)
    /// the value comes from is absent, so that the next alternative is
    /// tried. Only attribute reads, map indexes and `|` chains can be
    /// absent; any other expression is evaluated normally and its errors
    /// propagate.
    fn try_eval<'a, B: Bag + ?Sized>(
        &'a self,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
    ) -> Result<Option<Val<'a>>, EvalError> {
        match self {
            Node::Attr(a) => lookup(a, bag, refs),
            Node::Index(m, k) => self.index(m, k, bag, refs, true),
            Node::Default(l, r) => match l.try_eval(bag, refs)? {
                Some(v) => Ok(Some(v)),
                None => r.try_eval(bag, refs),
            },
            _ => self.eval(bag, refs).map(Some),
        }
    }

    /// `m[k]`. `None` when the map is absent; when `trying`, also when the
    /// key's value is absent or the map lacks the key (outside a `|` that is
    /// `""`).
    ///
    /// The key is evaluated before the map is read: when the key fails, the
    /// outcome does not depend on the map, and nothing about it is recorded.
    #[inline(never)]
    fn index<'a, B: Bag + ?Sized>(
        &'a self,
        m: &'a MapSource,
        k: &'a Key,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
        trying: bool,
    ) -> Result<Option<Val<'a>>, EvalError> {
        let dynamic_key = match k {
            Key::Const(_) => None,
            Key::Expr(e) if trying => match e.try_eval(bag, refs)? {
                Some(v) => Some(v),
                None => return Ok(None),
            },
            Key::Expr(e) => Some(e.eval(bag, refs)?),
        };
        let key: &str = match (k, &dynamic_key) {
            (Key::Const(c), _) => c,
            (_, Some(v)) => v.str(),
            _ => "",
        };
        let found = match m {
            MapSource::Attr(a) => match bag.get(a.id) {
                Some(ValueRef::StringMap(map)) => {
                    let v = map.get(key);
                    let key_arc = match k {
                        Key::Const(c) => Cow::Borrowed(c),
                        Key::Expr(_) => Cow::Owned(Arc::from(key)),
                    };
                    refs.record_key(a.id, &key_arc, cond(v.is_some()));
                    v
                }
                Some(other) => {
                    refs.record(a.id, Condition::Exact);
                    // Not a map: `read` reports the type mismatch.
                    read(a, other)?;
                    return Ok(None);
                }
                None => {
                    refs.record(a.id, Condition::Absence);
                    return Ok(None);
                }
            },
            MapSource::Expr(e) => {
                let v = if trying {
                    e.try_eval(bag, refs)?
                } else {
                    Some(e.eval(bag, refs)?)
                };
                match v {
                    Some(Val::Map(map)) => map.get(key),
                    _ => return Ok(None),
                }
            }
        };
        Ok(match found {
            Some(v) => Some(Val::Str(Cow::Borrowed(v))),
            None if trying => None,
            None => Some(Val::Str(Cow::Borrowed(""))),
        })
    }

    #[inline(never)]
    fn call<'a, B: Bag + ?Sized>(
        &'a self,
        f: Func,
        args: &'a [Node],
        bag: &'a B,
        refs: &mut ReferencedAttributes,
    ) -> Result<Val<'a>, EvalError> {
        let mut vals = [const { None }, const { None }];
        for (slot, a) in vals.iter_mut().zip(args) {
            *slot = Some(a.eval(bag, refs)?);
        }
        let [a, b] = vals;
        let (a, b) = (a.unwrap_or(Val::Bool(false)), b.unwrap_or(Val::Bool(false)));
        let s = a.str();
        Ok(match f {
            Func::Match => Val::Bool(glob(s, b.str())),
            Func::StartsWith => Val::Bool(s.starts_with(b.str())),
            Func::EndsWith => Val::Bool(s.ends_with(b.str())),
            Func::ToLower => {
                if s.chars().any(char::is_uppercase) {
                    Val::Str(Cow::Owned(s.to_lowercase()))
                } else {
                    a
                }
            }
            Func::Size => Val::Int(i64::try_from(s.len()).unwrap_or(i64::MAX)),
            Func::Ip => Val::Ip(s.parse().map_err(|_| convert(s, ValueType::IpAddress))?),
            Func::Timestamp => Val::Timestamp(
                Timestamp::parse_rfc3339(s).ok_or_else(|| convert(s, ValueType::Timestamp))?,
            ),
            Func::DnsName if dns_valid(s) => a,
            Func::DnsName => return Err(convert(s, ValueType::DnsName)),
            Func::Email if email_valid(s) => a,
            Func::Email => return Err(convert(s, ValueType::EmailAddress)),
            Func::Uri if uri_valid(s) => a,
            Func::Uri => return Err(convert(s, ValueType::Uri)),
        })
    }
}

fn cond(present: bool) -> Condition {
    if present {
        Condition::Exact
    } else {
        Condition::Absence
    }
}

/// The regex crate's message without its multi-line excerpt (our own
/// error shows where the pattern is).
pub(crate) fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}
