//! The type checker, which also lowers the tree to the compiled form:
//! attribute names resolved to ids, constant subexpressions folded
//! (so `ip("10.0.0.x")` is a config error, not a run-time one), constant
//! regular expressions compiled once.

use std::ops::Range;
use std::sync::Arc;

use mixer_attributes::{Interner, OwnedBag, ReferencedAttributes, ValueType, parse_duration};

use super::ast::{Ast, AstKind, BinaryOp, UnaryOp};
use super::error::{ExprError, ExprErrorKind};
use super::program::{AttrRef, CmpOp, Const, Func, Key, MapSource, Node, regex_reason};
use crate::manifest::Manifest;

use ValueType as T;

/// Types `==` and `!=` accept.
const EQ_TYPES: &[ValueType] = &[
    T::Bool,
    T::String,
    T::Int64,
    T::Double,
    T::IpAddress,
    T::DnsName,
    T::EmailAddress,
    T::Uri,
    T::Timestamp,
    T::Duration,
];
/// Types `<` `<=` `>` `>=` accept.
const ORD_TYPES: &[ValueType] = &[T::String, T::Int64, T::Double, T::Timestamp, T::Duration];
/// Types `+` accepts.
const ADD_TYPES: &[ValueType] = &[T::String, T::Int64, T::Double];

/// The built-in functions, by the name a call uses.
pub const FUNCTIONS: &[&str] = &[
    "match",
    "matches",
    "startsWith",
    "endsWith",
    "toLower",
    "size",
    "ip",
    "timestamp",
    "dnsName",
    "email",
    "uri",
    "emptyStringMap",
    "conditional",
];

/// Instance methods among [`FUNCTIONS`]: called as `receiver.name(arg)`.
const METHODS: &[&str] = &["matches", "startsWith", "endsWith"];

pub(crate) struct Checker<'m> {
    pub(crate) src: &'m str,
    pub(crate) manifest: &'m Manifest,
}

type Checked = (Node, ValueType);

/// Errors are boxed so that the checker's recursive frames stay small.
type CResult<T> = Result<T, Box<ExprError>>;

fn list(types: &[ValueType]) -> String {
    match types {
        [t] => t.name().to_string(),
        _ => {
            let names: Vec<&str> = types.iter().map(|t| t.name()).collect();
            format!("one of {}", names.join(", "))
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "argument" } else { "arguments" }
}

impl Checker<'_> {
    #[cold]
    #[inline(never)]
    fn err(
        &self,
        kind: ExprErrorKind,
        msg: impl Into<String>,
        span: Range<usize>,
    ) -> Box<ExprError> {
        Box::new(ExprError::new(kind, msg, span, self.src))
    }

    /// `what` (`operator '=='`, `function 'match'`) `argument n` has the
    /// wrong type. `because` explains an expectation taken from another
    /// operand.
    #[cold]
    #[inline(never)]
    fn type_err(
        &self,
        what: &str,
        position: &str,
        expected: &str,
        e: &Ast,
        actual: ValueType,
    ) -> Box<ExprError> {
        let mut msg = format!("{what} {position}: expected {expected}, got {actual}");
        if let AstKind::Str(s) = &e.kind
            && actual == T::Duration
        {
            msg.push_str(&format!(
                " (the string literal \"{s}\" reads as a DURATION)"
            ));
        }
        self.err(ExprErrorKind::Type, msg, e.span())
    }

    fn want(
        &self,
        what: &str,
        position: &str,
        allowed: &[ValueType],
        e: &Ast,
        actual: ValueType,
    ) -> CResult<()> {
        if allowed.contains(&actual) {
            Ok(())
        } else {
            Err(self.type_err(what, position, &list(allowed), e, actual))
        }
    }

    /// `e`'s type must be `ty`, the type of the operand at `from`.
    fn same(
        &self,
        what: &str,
        position: usize,
        from: usize,
        ty: ValueType,
        e: &Ast,
        actual: ValueType,
    ) -> CResult<()> {
        if actual == ty {
            Ok(())
        } else {
            let expected = format!("{ty} (the type of argument {from})");
            Err(self.type_err(what, &format!("argument {position}"), &expected, e, actual))
        }
    }

    pub(crate) fn check(&self, e: &Ast) -> CResult<Checked> {
        let (node, ty) = self.lower(e)?;
        Ok((self.fold(node, e)?, ty))
    }

    /// Replaces a node all of whose inputs are constants by its value.
    fn fold(&self, node: Node, e: &Ast) -> CResult<Node> {
        let foldable = match &node {
            Node::Const(_) | Node::Attr(_) | Node::AttrEq { .. } | Node::KeyOr { .. } => false,
            // A missing key reads as "" here but falls through a `|`:
            // folding it to a constant would lose that.
            Node::Index(..) => false,
            Node::Not(a) | Node::Neg(a) => is_const(a),
            Node::And(a, b)
            | Node::Or(a, b)
            | Node::Default(a, b)
            | Node::Cmp(_, a, b)
            | Node::Add(a, b)
            | Node::Eq { l: a, r: b, .. } => is_const(a) && is_const(b),
            Node::EqConst { l, .. } => is_const(l),
            Node::Call(_, args) => args.iter().all(is_const),
            Node::Matches {
                pattern, subject, ..
            } => is_const(pattern) && is_const(subject),
            Node::Conditional(c, a, b) => is_const(c) && is_const(a) && is_const(b),
        };
        if !foldable {
            return Ok(node);
        }
        let bag = OwnedBag::new();
        let mut refs = ReferencedAttributes::new();
        match node.eval(&bag, &mut refs) {
            Ok(v) => Ok(Node::Const(v.to_const())),
            Err(err) => Err(self.err(ExprErrorKind::InvalidConstant, err.to_string(), e.span())),
        }
    }

    fn lower(&self, e: &Ast) -> CResult<Checked> {
        match &e.kind {
            AstKind::Attribute(name) => self.attribute(e, name),
            AstKind::Str(s) => Ok(match parse_duration(s) {
                Some(d) => (Node::Const(Const::Duration(d)), T::Duration),
                None => (Node::Const(Const::Str(Arc::from(s.as_str()))), T::String),
            }),
            AstKind::Int(v) => Ok((Node::Const(Const::Int(*v)), T::Int64)),
            AstKind::Float(v) => Ok((Node::Const(Const::Double(*v)), T::Double)),
            AstKind::Bool(v) => Ok((Node::Const(Const::Bool(*v)), T::Bool)),
            AstKind::Unary(op, a) => self.unary(*op, a),
            AstKind::Binary(op, op_span, l, r) => self.binary(*op, op_span, l, r),
            AstKind::Index(m, k) => self.index(m, k),
            AstKind::Call {
                receiver,
                name,
                args,
            } => self.call(e, receiver.as_deref(), name, args),
        }
    }

    fn attribute(&self, e: &Ast, name: &str) -> CResult<Checked> {
        let Some(ty) = self.manifest.get(name) else {
            return Err(self.err(
                ExprErrorKind::UnknownAttribute,
                format!("unknown attribute {name}"),
                e.span(),
            ));
        };
        let id = Interner::global()
            .try_intern(name)
            .map_err(|err| self.err(ExprErrorKind::Limit, err.to_string(), e.span()))?;
        let name = Arc::from(name);
        Ok((Node::Attr(AttrRef { id, name, ty }), ty))
    }

    fn unary(&self, op: UnaryOp, a: &Ast) -> CResult<Checked> {
        let (n, t) = self.check(a)?;
        match op {
            UnaryOp::Not => {
                self.want("operator '!'", "argument 1", &[T::Bool], a, t)?;
                Ok((Node::Not(Box::new(n)), T::Bool))
            }
            UnaryOp::Neg => {
                self.want("operator '-'", "argument 1", &[T::Int64, T::Double], a, t)?;
                Ok((Node::Neg(Box::new(n)), t))
            }
        }
    }

    fn index(&self, m: &Ast, k: &Ast) -> CResult<Checked> {
        let what = "operator '[]'";
        let (mn, mt) = self.check(m)?;
        self.want(what, "argument 1", &[T::StringMap], m, mt)?;
        let (kn, kt) = self.check(k)?;
        self.want(what, "argument 2", &[T::String], k, kt)?;
        let map = match mn {
            Node::Attr(a) => MapSource::Attr(a),
            other => MapSource::Expr(Box::new(other)),
        };
        let key = match kn {
            Node::Const(Const::Str(s)) => Key::Const(s),
            other => Key::Expr(Box::new(other)),
        };
        Ok((Node::Index(map, key), T::String))
    }

    fn binary(&self, op: BinaryOp, op_span: &Range<usize>, l: &Ast, r: &Ast) -> CResult<Checked> {
        if matches!(
            op,
            BinaryOp::Mul | BinaryOp::Quo | BinaryOp::Rem | BinaryOp::Sub
        ) {
            return Err(self.err(
                ExprErrorKind::UnknownFunction,
                format!("unknown function: {}", op.function_name()),
                op_span.clone(),
            ));
        }
        let what = format!("operator '{}'", op.symbol());
        let (ln, lt) = self.check(l)?;
        let allowed: &[ValueType] = match op {
            BinaryOp::Eq | BinaryOp::Ne => EQ_TYPES,
            BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => ORD_TYPES,
            BinaryOp::Add => ADD_TYPES,
            BinaryOp::And | BinaryOp::Or => &[T::Bool],
            _ => &ValueType::ALL,
        };
        self.want(&what, "argument 1", allowed, l, lt)?;
        let (rn, rt) = self.check(r)?;
        self.same(&what, 2, 1, lt, r, rt)?;
        let (l, r) = (Box::new(ln), Box::new(rn));
        let cmp = match op {
            BinaryOp::Lt => Some(CmpOp::Lt),
            BinaryOp::Le => Some(CmpOp::Le),
            BinaryOp::Gt => Some(CmpOp::Gt),
            BinaryOp::Ge => Some(CmpOp::Ge),
            _ => None,
        };
        if let Some(c) = cmp {
            return Ok((Node::Cmp(c, l, r), T::Bool));
        }
        match op {
            BinaryOp::Eq | BinaryOp::Ne => Ok((
                match (*l, *r) {
                    (Node::Attr(attr), Node::Const(value))
                    | (Node::Const(value), Node::Attr(attr)) => Node::AttrEq {
                        attr,
                        value,
                        negate: op == BinaryOp::Ne,
                    },
                    (l, Node::Const(value)) | (Node::Const(value), l) => Node::EqConst {
                        ty: lt,
                        negate: op == BinaryOp::Ne,
                        l: Box::new(l),
                        value,
                    },
                    (l, r) => Node::Eq {
                        ty: lt,
                        negate: op == BinaryOp::Ne,
                        l: Box::new(l),
                        r: Box::new(r),
                    },
                },
                T::Bool,
            )),
            BinaryOp::And => Ok((Node::And(l, r), T::Bool)),
            BinaryOp::Or => Ok((Node::Or(l, r), T::Bool)),
            BinaryOp::Add => Ok((Node::Add(l, r), lt)),
            _ => Ok((
                match (*l, *r) {
                    (
                        Node::Index(MapSource::Attr(attr), Key::Const(key)),
                        Node::Const(Const::Str(default)),
                    ) => Node::KeyOr { attr, key, default },
                    (l, r) => Node::Default(Box::new(l), Box::new(r)),
                },
                lt,
            )),
        }
    }

    fn call(&self, e: &Ast, receiver: Option<&Ast>, name: &str, args: &[Ast]) -> CResult<Checked> {
        if !FUNCTIONS.contains(&name) {
            return Err(self.err(
                ExprErrorKind::UnknownFunction,
                format!("unknown function: {name}"),
                e.span(),
            ));
        }
        let method = METHODS.contains(&name);
        match (method, receiver) {
            (true, None) => {
                return Err(self.err(
                    ExprErrorKind::Arity,
                    format!("function '{name}' is a method: call it as receiver.{name}(...)"),
                    e.span(),
                ));
            }
            (false, Some(_)) => {
                return Err(self.err(
                    ExprErrorKind::Arity,
                    format!("function '{name}' is not a method: call it as {name}(...)"),
                    e.span(),
                ));
            }
            _ => {}
        }
        let what = if method {
            format!("method '{name}'")
        } else {
            format!("function '{name}'")
        };
        let params: &[ValueType] = match name {
            "match" => &[T::String, T::String],
            "matches" | "startsWith" | "endsWith" => &[T::String],
            "emptyStringMap" => &[],
            "conditional" => &[T::Bool, T::Bool, T::Bool],
            _ => &[T::String],
        };
        if args.len() != params.len() {
            return Err(self.err(
                ExprErrorKind::Arity,
                format!(
                    "{what} expects {} {}, got {}",
                    params.len(),
                    plural(params.len()),
                    args.len()
                ),
                e.span(),
            ));
        }
        let recv = match receiver {
            Some(r) => {
                let (n, t) = self.check(r)?;
                self.want(&what, "receiver", &[T::String], r, t)?;
                Some(n)
            }
            None => None,
        };
        if name == "conditional" {
            let (c, ct) = self.check(&args[0])?;
            self.want(&what, "argument 1", &[T::Bool], &args[0], ct)?;
            let (a, at) = self.check(&args[1])?;
            let (b, bt) = self.check(&args[2])?;
            self.same(&what, 3, 2, at, &args[2], bt)?;
            return Ok((Node::Conditional(Box::new(c), Box::new(a), Box::new(b)), at));
        }
        let mut nodes = Vec::with_capacity(args.len() + 1);
        nodes.extend(recv);
        for (i, (a, p)) in args.iter().zip(params).enumerate() {
            let (n, t) = self.check(a)?;
            self.want(&what, &format!("argument {}", i + 1), &[*p], a, t)?;
            nodes.push(n);
        }
        let (func, ty) = match name {
            "emptyStringMap" => {
                return Ok((Node::Const(Const::Map(Arc::default())), T::StringMap));
            }
            "matches" => return self.matches(nodes, receiver),
            "match" => (Func::Match, T::Bool),
            "startsWith" => (Func::StartsWith, T::Bool),
            "endsWith" => (Func::EndsWith, T::Bool),
            "toLower" => (Func::ToLower, T::String),
            "size" => (Func::Size, T::Int64),
            "ip" => (Func::Ip, T::IpAddress),
            "timestamp" => (Func::Timestamp, T::Timestamp),
            "dnsName" => (Func::DnsName, T::DnsName),
            "email" => (Func::Email, T::EmailAddress),
            _ => (Func::Uri, T::Uri),
        };
        Ok((Node::Call(func, nodes), ty))
    }

    fn matches(&self, mut nodes: Vec<Node>, receiver: Option<&Ast>) -> CResult<Checked> {
        let (Some(subject), Some(pattern)) = (nodes.pop(), nodes.pop()) else {
            // The arity check above makes this impossible; say so rather than panic.
            return Err(self.err(
                ExprErrorKind::Arity,
                "method 'matches' expects 1 argument and a receiver",
                receiver.map_or(0..0, Ast::span),
            ));
        };
        let re = match &pattern {
            Node::Const(Const::Str(p)) => match regex::Regex::new(p) {
                Ok(re) => Some(Box::new(re)),
                Err(err) => {
                    let span = receiver.map_or(0..0, Ast::span);
                    return Err(self.err(
                        ExprErrorKind::InvalidConstant,
                        format!("invalid regular expression {p:?}: {}", regex_reason(&err)),
                        span,
                    ));
                }
            },
            _ => None,
        };
        Ok((
            Node::Matches {
                re,
                pattern: Box::new(pattern),
                subject: Box::new(subject),
            },
            T::Bool,
        ))
    }
}

fn is_const(n: &Node) -> bool {
    matches!(n, Node::Const(_))
}
