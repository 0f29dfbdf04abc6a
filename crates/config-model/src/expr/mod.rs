//! The expression language of rule `match` conditions and instance fields:
//! parse, type-check, compile, evaluate.
//!
//! An [`Expression`] is compiled once, when config loads, against a
//! [`Manifest`]: every attribute name is checked and resolved to its
//! [`AttrId`](mixer_attributes::AttrId), every operator and function call
//! type-checked, constant subexpressions folded and constant regular
//! expressions compiled. Evaluating it then reads the bag by id, compares
//! strings borrowed, and records each attribute (and each string-map key) it
//! looked up in a [`ReferencedAttributes`], for caching.
//!
//! ```
//! use mixer_attributes::{OwnedBag, ReferencedAttributes, StringMap, Value, ValueType};
//! use mixer_config::expr::Expression;
//! use mixer_config::manifest::Manifest;
//!
//! let manifest = Manifest::standard();
//! let cond = Expression::compile(
//!     r#"(request.headers["x-user"] | "anonymous") == "admin" && match(request.path, "/admin/*")"#,
//!     &manifest,
//! )?;
//! assert_eq!(cond.result_type(), ValueType::Bool);
//!
//! let headers: StringMap = [("x-user", "admin")].into_iter().collect();
//! let bag = OwnedBag::new()
//!     .with("request.headers", Value::StringMap(headers))
//!     .with("request.path", Value::String("/admin/users".into()));
//! let mut refs = ReferencedAttributes::new();
//! assert!(cond.eval_bool(&bag, &mut refs)?);
//! assert_eq!(refs.map_keys().len(), 1); // request.headers["x-user"], not the whole map
//!
//! // Mistakes are found at compile time, with their position.
//! let err = Expression::compile("request.path == request.hots", &manifest).unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "1:17: unknown attribute request.hots\n | request.path == request.hots\n |                 ^^^^^^^^^^^^"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The language
//!
//! Go's expression syntax and precedence (`|` binds like `+`), dotted
//! attribute names read as one flat name, `m[k]` on string maps, the
//! functions of [`FUNCTIONS`], and the `|` default operator, which falls
//! through when an attribute (or a map, or a map key) is absent. A string
//! literal that reads as a duration (`"10ms"`) is a DURATION constant.
//! Beyond the original Mixer: `!`, unary `-`, and ordering on DURATION.
//!
//! # Limits
//!
//! An expression is at most [`MAX_EXPRESSION_LEN`] bytes and nests at most
//! [`MAX_DEPTH`] levels (operators, calls, parentheses); beyond either,
//! compiling fails with [`ExprErrorKind::Limit`] rather than risking the
//! stack. A pattern given to `matches` at run time (not a constant) is
//! compiled with a bounded size; a constant one is compiled once, here.

mod ast;
mod check;
mod error;
mod functions;
mod lexer;
mod parser;
mod program;

use std::borrow::Cow;
use std::fmt;

use mixer_attributes::{Bag, ReferencedAttributes, Value, ValueRef, ValueType};

pub use ast::{Ast, AstKind, BinaryOp, UnaryOp};
pub use check::FUNCTIONS;
pub use error::{EvalError, ExprError, ExprErrorKind};
pub use parser::parse;

use crate::manifest::Manifest;
use program::{Node, Val};

/// The longest expression accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 64 * 1024;

/// The deepest nesting accepted: the height of the syntax tree, and the
/// depth of parentheses and unary operators.
pub const MAX_DEPTH: usize = 100;

/// A parsed, type-checked and compiled expression.
///
/// Cheap to evaluate from many threads at once (`Send + Sync`, evaluation
/// takes `&self`).
#[derive(Debug)]
pub struct Expression {
    source: String,
    ty: ValueType,
    node: Node,
}

impl Expression {
    /// Parses `src`, type-checks it against `manifest` and compiles it.
    ///
    /// An empty (or blank) `src` is an error: a rule's empty `match` means
    /// "always" and is for the caller to handle before compiling.
    pub fn compile(src: &str, manifest: &Manifest) -> Result<Expression, ExprError> {
        let ast = parse(src)?;
        let (node, ty) = check::Checker { src, manifest }
            .check(&ast)
            .map_err(|e| *e)?;
        Ok(Expression {
            source: src.to_string(),
            ty,
            node,
        })
    }

    /// The type every successful evaluation returns.
    pub fn result_type(&self) -> ValueType {
        self.ty
    }

    /// The text it was compiled from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates against `bag`, recording into `refs` every attribute and
    /// map key looked up.
    pub fn eval<B: Bag + ?Sized>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
    ) -> Result<Value, EvalError> {
        Ok(self.node.eval(bag, refs)?.into_value(self.ty))
    }

    /// Evaluates and hands `f` a borrowed view of the result, so that
    /// reading a string attribute copies nothing.
    pub fn eval_with<B: Bag + ?Sized, R>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
        f: impl FnOnce(ValueRef<'_>) -> R,
    ) -> Result<R, EvalError> {
        let v = self.node.eval(bag, refs)?;
        Ok(f(v.as_value_ref(self.ty)))
    }

    /// Evaluates and keeps the result borrowed from the bag and the
    /// expression where it can be: what a caller holding several results at
    /// once (an instance's fields) uses to copy no string.
    pub fn eval_borrowed<'a, B: Bag + ?Sized>(
        &'a self,
        bag: &'a B,
        refs: &mut ReferencedAttributes,
    ) -> Result<Evaluated<'a>, EvalError> {
        Ok(Evaluated {
            val: self.node.eval(bag, refs)?,
            ty: self.ty,
        })
    }

    /// Evaluates a BOOL expression (a rule's `match`). Allocates nothing on
    /// the common conditions once `refs` has grown to size.
    ///
    /// Fails with [`EvalError::NotBool`] if the expression is not BOOL.
    pub fn eval_bool<B: Bag + ?Sized>(
        &self,
        bag: &B,
        refs: &mut ReferencedAttributes,
    ) -> Result<bool, EvalError> {
        if self.ty != ValueType::Bool {
            return Err(EvalError::NotBool { actual: self.ty });
        }
        self.node.eval_bool(bag, refs)
    }
}

/// A result of [`Expression::eval_borrowed`]: borrowed from the bag or the
/// expression, or owned when evaluation computed it.
#[derive(Clone, Debug)]
pub struct Evaluated<'a> {
    val: Val<'a>,
    ty: ValueType,
}

impl<'a> Evaluated<'a> {
    /// A borrowed view, tagged with the expression's type.
    pub fn as_value_ref(&self) -> ValueRef<'_> {
        self.val.as_value_ref(self.ty)
    }

    /// The value, owned.
    pub fn into_value(self) -> Value {
        self.val.into_value(self.ty)
    }

    /// The value as text: a string-like value as it is (still borrowed),
    /// any other formatted as [`ValueRef`]'s `Display` writes it.
    pub fn into_text(self) -> Evaluated<'a> {
        let val = match self.val {
            Val::Str(s) => Val::Str(s),
            other => Val::Str(Cow::Owned(other.as_value_ref(self.ty).to_string())),
        };
        Evaluated {
            val,
            ty: ValueType::String,
        }
    }
}

// Compiled config is shared between request threads.
const _: fn() = || {
    fn shared<T: Send + Sync>() {}
    shared::<Expression>();
};

/// The source text.
impl fmt::Display for Expression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}
