//! Recursive-descent parser with Go's operator precedence.

use std::ops::Range;

use super::ast::{Ast, AstKind, BinaryOp, UnaryOp};
use super::error::{ExprError, ExprErrorKind};
use super::lexer::{Tok, Token, tokenize};
use super::{MAX_DEPTH, MAX_EXPRESSION_LEN};

/// Parses `src` into a syntax tree (no type checking).
///
/// Fails on an empty expression, on text that is not an expression, and on
/// input beyond [`MAX_EXPRESSION_LEN`] bytes or [`MAX_DEPTH`] levels of
/// nesting.
pub fn parse(src: &str) -> Result<Ast, ExprError> {
    if src.len() > MAX_EXPRESSION_LEN {
        return Err(ExprError::new(
            ExprErrorKind::Limit,
            format!(
                "expression is {} bytes long, the limit is {MAX_EXPRESSION_LEN}",
                src.len()
            ),
            0..0,
            src,
        ));
    }
    if src.trim().is_empty() {
        return Err(ExprError::new(
            ExprErrorKind::Empty,
            "empty expression",
            0..src.len(),
            src,
        ));
    }
    let toks = tokenize(src)?;
    let mut p = Parser {
        src,
        toks,
        pos: 0,
        nesting: 0,
    };
    let e = p.expr().map_err(|e| *e)?;
    if p.peek().tok != Tok::Eof {
        return Err(*p.unexpected("an operator or end of expression"));
    }
    Ok(e)
}

struct Parser<'s> {
    src: &'s str,
    toks: Vec<Token>,
    pos: usize,
    nesting: usize,
}

/// Errors are boxed inside the parser so that its recursive frames stay
/// small: nesting is bounded by [`MAX_DEPTH`], and every level costs stack.
type PResult<T> = Result<T, Box<ExprError>>;

fn binary_op(t: &Tok) -> Option<BinaryOp> {
    Some(match t {
        Tok::Star => BinaryOp::Mul,
        Tok::Slash => BinaryOp::Quo,
        Tok::Percent => BinaryOp::Rem,
        Tok::Plus => BinaryOp::Add,
        Tok::Minus => BinaryOp::Sub,
        Tok::Pipe => BinaryOp::Default,
        Tok::Eq => BinaryOp::Eq,
        Tok::Ne => BinaryOp::Ne,
        Tok::Lt => BinaryOp::Lt,
        Tok::Le => BinaryOp::Le,
        Tok::Gt => BinaryOp::Gt,
        Tok::Ge => BinaryOp::Ge,
        Tok::AndAnd => BinaryOp::And,
        Tok::OrOr => BinaryOp::Or,
        _ => return None,
    })
}

impl Parser<'_> {
    fn peek(&self) -> &Token {
        // The token list always ends with Eof and `pos` never passes it.
        &self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if t.tok != Tok::Eof {
            self.pos += 1;
        }
        t
    }

    /// "expected `what`, found <the next token>", at the next token.
    #[cold]
    #[inline(never)]
    fn unexpected(&self, what: &str) -> Box<ExprError> {
        let t = self.peek();
        let msg = format!("expected {what}, found {}", t.tok.describe());
        Box::new(ExprError::new(
            ExprErrorKind::Syntax,
            msg,
            t.span.clone(),
            self.src,
        ))
    }

    #[cold]
    #[inline(never)]
    fn too_deep(&self, span: Range<usize>) -> Box<ExprError> {
        Box::new(ExprError::new(
            ExprErrorKind::Limit,
            format!("expression nests deeper than {MAX_DEPTH} levels"),
            span,
            self.src,
        ))
    }

    fn expect(&mut self, want: Tok, what: &str) -> PResult<Token> {
        if self.peek().tok == want {
            Ok(self.bump())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn node(&self, kind: AstKind, span: Range<usize>) -> PResult<Ast> {
        let n = Ast::new(kind, span);
        if n.depth > MAX_DEPTH {
            return Err(self.too_deep(n.span.clone()));
        }
        Ok(n)
    }

    fn expr(&mut self) -> PResult<Ast> {
        self.binary(1)
    }

    fn binary(&mut self, min: u8) -> PResult<Ast> {
        let mut left = self.unary()?;
        loop {
            let Some(op) = binary_op(&self.peek().tok) else {
                return Ok(left);
            };
            if op.precedence() < min {
                return Ok(left);
            }
            let op_span = self.bump().span;
            let right = self.binary(op.precedence() + 1)?;
            let span = left.span.start..right.span.end;
            left = self.node(
                AstKind::Binary(op, op_span, Box::new(left), Box::new(right)),
                span,
            )?;
        }
    }

    fn unary(&mut self) -> PResult<Ast> {
        self.nesting += 1;
        if self.nesting > MAX_DEPTH {
            return Err(self.too_deep(self.peek().span.clone()));
        }
        let op = match self.peek().tok {
            Tok::Not => Some(UnaryOp::Not),
            Tok::Minus => Some(UnaryOp::Neg),
            _ => None,
        };
        let r = match op {
            Some(op) => {
                let start = self.bump().span.start;
                self.unary().and_then(|e| {
                    let span = start..e.span.end;
                    self.node(AstKind::Unary(op, Box::new(e)), span)
                })
            }
            None => self.postfix(),
        };
        self.nesting -= 1;
        r
    }

    fn postfix(&mut self) -> PResult<Ast> {
        let mut e = self.primary()?;
        loop {
            match self.peek().tok {
                Tok::LBracket => {
                    self.bump();
                    let k = self.expr()?;
                    let close = self.expect(Tok::RBracket, "']'")?;
                    let span = e.span.start..close.span.end;
                    e = self.node(AstKind::Index(Box::new(e), Box::new(k)), span)?;
                }
                Tok::Dot => {
                    self.bump();
                    let name = self.ident("a method name after '.'")?;
                    if self.peek().tok != Tok::LParen {
                        return Err(self.unexpected(&format!("'(' after method name '{}'", name.0)));
                    }
                    e = self.call(Some(e), name)?;
                }
                _ => return Ok(e),
            }
        }
    }

    fn ident(&mut self, what: &str) -> PResult<(String, Range<usize>)> {
        if let Tok::Ident(_) = self.peek().tok {
            let t = self.bump();
            if let Tok::Ident(s) = t.tok {
                return Ok((s, t.span));
            }
        }
        Err(self.unexpected(what))
    }

    /// Parses `(args)` after a function or method name.
    fn call(
        &mut self,
        receiver: Option<Ast>,
        (name, name_span): (String, Range<usize>),
    ) -> PResult<Ast> {
        self.expect(Tok::LParen, "'('")?;
        let mut args = Vec::new();
        if self.peek().tok != Tok::RParen {
            loop {
                args.push(self.expr()?);
                if self.peek().tok == Tok::Comma {
                    self.bump();
                } else {
                    break;
                }
            }
        }
        let close = self.expect(Tok::RParen, "',' or ')'")?;
        let start = receiver.as_ref().map_or(name_span.start, |r| r.span.start);
        self.node(
            AstKind::Call {
                receiver: receiver.map(Box::new),
                name,
                args,
            },
            start..close.span.end,
        )
    }

    fn primary(&mut self) -> PResult<Ast> {
        let kind = match &self.peek().tok {
            Tok::Int(v) => AstKind::Int(*v),
            Tok::Float(v) => AstKind::Float(*v),
            Tok::Str(s) => AstKind::Str(s.clone()),
            Tok::LParen => {
                self.bump();
                let e = self.expr()?;
                self.expect(Tok::RParen, "')'")?;
                return Ok(e);
            }
            Tok::Ident(_) => return self.name(),
            _ => return Err(self.unexpected("an operand")),
        };
        let t = self.bump();
        Ok(Ast::new(kind, t.span))
    }

    /// A dotted chain is one flat attribute name, unless a call follows:
    /// then its last part is the function (or method) name and the rest the
    /// receiver.
    fn name(&mut self) -> PResult<Ast> {
        let mut parts = vec![self.ident("a name")?];
        while self.peek().tok == Tok::Dot
            && matches!(
                self.toks.get(self.pos + 1),
                Some(Token {
                    tok: Tok::Ident(_),
                    ..
                })
            )
        {
            self.bump();
            parts.push(self.ident("a name")?);
        }
        let literal = |(b, span): &(String, Range<usize>)| {
            (b == "true" || b == "false")
                .then(|| Ast::new(AstKind::Bool(b == "true"), span.clone()))
        };
        if self.peek().tok == Tok::LParen {
            let name = parts.pop().unwrap_or_default();
            let receiver = match parts.as_slice() {
                [] => None,
                // `true.f()` reads the literal, as `(true).f()` prints.
                [one] if literal(one).is_some() => literal(one),
                _ => Some(attribute(&parts)),
            };
            return self.call(receiver, name);
        }
        if let [one] = parts.as_slice()
            && let Some(b) = literal(one)
        {
            return Ok(b);
        }
        Ok(attribute(&parts))
    }
}

fn attribute(parts: &[(String, Range<usize>)]) -> Ast {
    let start = parts.first().map_or(0, |p| p.1.start);
    let end = parts.last().map_or(0, |p| p.1.end);
    let name: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    Ast::new(AstKind::Attribute(name.join(".")), start..end)
}
