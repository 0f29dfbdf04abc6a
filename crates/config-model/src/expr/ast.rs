//! The syntax tree, and its canonical printing.

use std::fmt;
use std::ops::Range;

/// A unary operator.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    /// `!`
    Not,
    /// `-`
    Neg,
}

/// A binary operator.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    /// `*` (parses, does not type-check: `unknown function: MUL`).
    Mul,
    /// `/` (parses, does not type-check: `unknown function: QUO`).
    Quo,
    /// `%` (parses, does not type-check: `unknown function: REM`).
    Rem,
    /// `+`
    Add,
    /// binary `-` (parses, does not type-check: `unknown function: SUB`).
    Sub,
    /// `|`, the default operator.
    Default,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `&&`
    And,
    /// `||`
    Or,
}

impl BinaryOp {
    /// Every binary operator.
    pub const ALL: [BinaryOp; 14] = [
        BinaryOp::Mul,
        BinaryOp::Quo,
        BinaryOp::Rem,
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Default,
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
        BinaryOp::And,
        BinaryOp::Or,
    ];

    /// Binding strength, Go's: higher binds tighter.
    pub fn precedence(self) -> u8 {
        match self {
            BinaryOp::Mul | BinaryOp::Quo | BinaryOp::Rem => 5,
            BinaryOp::Add | BinaryOp::Sub | BinaryOp::Default => 4,
            BinaryOp::Eq
            | BinaryOp::Ne
            | BinaryOp::Lt
            | BinaryOp::Le
            | BinaryOp::Gt
            | BinaryOp::Ge => 3,
            BinaryOp::And => 2,
            BinaryOp::Or => 1,
        }
    }

    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Mul => "*",
            BinaryOp::Quo => "/",
            BinaryOp::Rem => "%",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Default => "|",
            BinaryOp::Eq => "==",
            BinaryOp::Ne => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::Le => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::Ge => ">=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }

    /// The function name the original Mixer gave the operator, used in
    /// `unknown function: QUO`.
    pub fn function_name(self) -> &'static str {
        match self {
            BinaryOp::Mul => "MUL",
            BinaryOp::Quo => "QUO",
            BinaryOp::Rem => "REM",
            BinaryOp::Add => "ADD",
            BinaryOp::Sub => "SUB",
            BinaryOp::Default => "OR",
            BinaryOp::Eq => "EQ",
            BinaryOp::Ne => "NEQ",
            BinaryOp::Lt => "LT",
            BinaryOp::Le => "LE",
            BinaryOp::Gt => "GT",
            BinaryOp::Ge => "GE",
            BinaryOp::And => "LAND",
            BinaryOp::Or => "LOR",
        }
    }
}

/// A node of the syntax tree, with the byte range of the source it came
/// from.
///
/// Two trees are equal when they have the same shape and literals, whatever
/// their source positions: `a==b` and `a == b` parse to equal trees.
#[derive(Clone, Debug)]
pub struct Ast {
    pub(crate) kind: AstKind,
    pub(crate) span: Range<usize>,
    /// Height of the tree below (1 for a leaf), bounded by [`super::MAX_DEPTH`].
    pub(crate) depth: usize,
}

/// What an [`Ast`] node is.
#[derive(Clone, Debug, PartialEq)]
pub enum AstKind {
    /// An attribute, by its flat dotted name (`request.headers`).
    Attribute(String),
    /// A string literal (double- or back-quoted in the source).
    Str(String),
    /// A non-negative integer literal (`-1` is [`UnaryOp::Neg`] of `1`).
    Int(i64),
    /// A finite, non-negative floating-point literal.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// A unary operation.
    Unary(UnaryOp, Box<Ast>),
    /// A binary operation; the span is the operator's.
    Binary(BinaryOp, Range<usize>, Box<Ast>, Box<Ast>),
    /// `map[key]`.
    Index(Box<Ast>, Box<Ast>),
    /// `name(args)`, or `receiver.name(args)` for an instance method.
    Call {
        /// The receiver of a method call.
        receiver: Option<Box<Ast>>,
        /// The function's name.
        name: String,
        /// The arguments.
        args: Vec<Ast>,
    },
}

impl PartialEq for Ast {
    fn eq(&self, other: &Ast) -> bool {
        match (&self.kind, &other.kind) {
            (AstKind::Binary(a, _, l1, r1), AstKind::Binary(b, _, l2, r2)) => {
                a == b && l1 == l2 && r1 == r2
            }
            (a, b) => a == b,
        }
    }
}

impl Ast {
    pub(crate) fn new(kind: AstKind, span: Range<usize>) -> Ast {
        let depth = 1 + match &kind {
            AstKind::Unary(_, e) => e.depth,
            AstKind::Binary(_, _, l, r) | AstKind::Index(l, r) => l.depth.max(r.depth),
            AstKind::Call { receiver, args, .. } => receiver
                .iter()
                .map(|r| r.depth)
                .chain(args.iter().map(|a| a.depth))
                .max()
                .unwrap_or(0),
            _ => 0,
        };
        Ast { kind, span, depth }
    }

    /// What the node is.
    pub fn kind(&self) -> &AstKind {
        &self.kind
    }

    /// The byte range of the source this node was parsed from.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// Calls `f` on this node and every node below it, parents first.
    pub fn walk(&self, f: &mut dyn FnMut(&Ast)) {
        f(self);
        match &self.kind {
            AstKind::Unary(_, e) => e.walk(f),
            AstKind::Binary(_, _, l, r) | AstKind::Index(l, r) => {
                l.walk(f);
                r.walk(f);
            }
            AstKind::Call { receiver, args, .. } => {
                if let Some(r) = receiver {
                    r.walk(f);
                }
                args.iter().for_each(|a| a.walk(f));
            }
            _ => {}
        }
    }

    /// Precedence as an operand: binary operators their own, unary 6,
    /// everything else (postfix, primary) 7.
    fn binding(&self) -> u8 {
        match &self.kind {
            AstKind::Binary(op, ..) => op.precedence(),
            AstKind::Unary(..) => 6,
            _ => 7,
        }
    }
}

fn write_operand(f: &mut fmt::Formatter<'_>, e: &Ast, min: u8) -> fmt::Result {
    if e.binding() < min {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

/// Writes `s` as a double-quoted literal that the lexer reads back as `s`.
pub(crate) fn write_quoted(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_char('"')?;
    for c in s.chars() {
        match c {
            '"' => f.write_str("\\\"")?,
            '\\' => f.write_str("\\\\")?,
            '\n' => f.write_str("\\n")?,
            '\t' => f.write_str("\\t")?,
            '\r' => f.write_str("\\r")?,
            c if (c as u32) < 0x20 || c == '\x7f' => write!(f, "\\x{:02x}", c as u32)?,
            c if c.is_control() && (c as u32) <= 0xffff => write!(f, "\\u{:04x}", c as u32)?,
            c if c.is_control() => write!(f, "\\U{:08x}", c as u32)?,
            c => f.write_char(c)?,
        }
    }
    f.write_char('"')
}

/// The canonical form: single spaces around binary operators, double-quoted
/// strings, and only the parentheses precedence needs. It parses back to an
/// equal tree.
impl fmt::Display for Ast {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            AstKind::Attribute(n) => f.write_str(n),
            AstKind::Str(s) => write_quoted(f, s),
            AstKind::Int(v) => write!(f, "{v}"),
            AstKind::Float(v) => write!(f, "{v:?}"),
            AstKind::Bool(v) => write!(f, "{v}"),
            AstKind::Unary(op, e) => {
                f.write_str(match op {
                    UnaryOp::Not => "!",
                    UnaryOp::Neg => "-",
                })?;
                write_operand(f, e, 6)
            }
            AstKind::Binary(op, _, l, r) => {
                let p = op.precedence();
                write_operand(f, l, p)?;
                write!(f, " {} ", op.symbol())?;
                // Left-associative: an equal-precedence right operand needs
                // parentheses to stay on the right.
                write_operand(f, r, p + 1)
            }
            AstKind::Index(m, k) => {
                write_operand(f, m, 7)?;
                write!(f, "[{k}]")
            }
            AstKind::Call {
                receiver,
                name,
                args,
            } => {
                if let Some(r) = receiver {
                    // A number followed by `.` would read as a float.
                    if matches!(r.kind, AstKind::Int(_) | AstKind::Float(_)) {
                        write!(f, "({r})")?;
                    } else {
                        write_operand(f, r, 7)?;
                    }
                    f.write_str(".")?;
                }
                write!(f, "{name}(")?;
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{a}")?;
                }
                f.write_str(")")
            }
        }
    }
}
