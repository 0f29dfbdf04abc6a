//! Tokens of the expression language, with byte spans.

use std::ops::Range;

use super::error::{ExprError, ExprErrorKind};

#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Tok {
    Ident(String),
    Int(i64),
    Float(f64),
    Str(String),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Dot,
    Not,
    Minus,
    Plus,
    Star,
    Slash,
    Percent,
    Pipe,
    OrOr,
    AndAnd,
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Eof,
}

impl Tok {
    /// How the token reads in a message.
    pub(crate) fn describe(&self) -> String {
        let s = match self {
            Tok::Ident(s) => return format!("'{s}'"),
            Tok::Int(v) => return format!("'{v}'"),
            Tok::Float(v) => return format!("'{v:?}'"),
            Tok::Str(_) => "a string literal",
            Tok::LParen => "'('",
            Tok::RParen => "')'",
            Tok::LBracket => "'['",
            Tok::RBracket => "']'",
            Tok::Comma => "','",
            Tok::Dot => "'.'",
            Tok::Not => "'!'",
            Tok::Minus => "'-'",
            Tok::Plus => "'+'",
            Tok::Star => "'*'",
            Tok::Slash => "'/'",
            Tok::Percent => "'%'",
            Tok::Pipe => "'|'",
            Tok::OrOr => "'||'",
            Tok::AndAnd => "'&&'",
            Tok::Eq => "'=='",
            Tok::Ne => "'!='",
            Tok::Lt => "'<'",
            Tok::Le => "'<='",
            Tok::Gt => "'>'",
            Tok::Ge => "'>='",
            Tok::Eof => "end of expression",
        };
        s.to_string()
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) span: Range<usize>,
}

/// Splits `src` into tokens, ending with [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ExprError> {
    let mut lx = Lexer {
        src,
        b: src.as_bytes(),
        i: 0,
        out: Vec::new(),
    };
    lx.run()?;
    Ok(lx.out)
}

struct Lexer<'s> {
    src: &'s str,
    b: &'s [u8],
    i: usize,
    out: Vec<Token>,
}

impl Lexer<'_> {
    fn err(&self, msg: impl Into<String>, span: Range<usize>) -> ExprError {
        ExprError::new(ExprErrorKind::Syntax, msg, span, self.src)
    }

    fn push(&mut self, tok: Tok, start: usize) {
        self.out.push(Token {
            tok,
            span: start..self.i,
        });
    }

    fn run(&mut self) -> Result<(), ExprError> {
        while self.i < self.b.len() {
            let start = self.i;
            let c = self.b[self.i];
            let next = self.b.get(self.i + 1).copied();
            let two = |t| (t, 2);
            let one = |t| (t, 1);
            let (tok, len) = match c {
                b' ' | b'\t' | b'\n' | b'\r' => {
                    self.i += 1;
                    continue;
                }
                b'0'..=b'9' => {
                    let t = self.number()?;
                    self.push(t, start);
                    continue;
                }
                b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                    while self.i < self.b.len()
                        && (self.b[self.i].is_ascii_alphanumeric() || self.b[self.i] == b'_')
                    {
                        self.i += 1;
                    }
                    let t = Tok::Ident(self.src[start..self.i].to_string());
                    self.push(t, start);
                    continue;
                }
                b'"' => {
                    let s = self.quoted()?;
                    self.push(Tok::Str(s), start);
                    continue;
                }
                b'`' => {
                    let s = self.raw()?;
                    self.push(Tok::Str(s), start);
                    continue;
                }
                b'(' => one(Tok::LParen),
                b')' => one(Tok::RParen),
                b'[' => one(Tok::LBracket),
                b']' => one(Tok::RBracket),
                b',' => one(Tok::Comma),
                b'.' => one(Tok::Dot),
                b'+' => one(Tok::Plus),
                b'-' => one(Tok::Minus),
                b'*' => one(Tok::Star),
                b'/' => one(Tok::Slash),
                b'%' => one(Tok::Percent),
                b'|' if next == Some(b'|') => two(Tok::OrOr),
                b'|' => one(Tok::Pipe),
                b'&' if next == Some(b'&') => two(Tok::AndAnd),
                b'&' => {
                    return Err(self.err("unexpected '&' (did you mean '&&'?)", start..start + 1));
                }
                b'=' if next == Some(b'=') => two(Tok::Eq),
                b'=' => {
                    return Err(self.err("unexpected '=' (did you mean '=='?)", start..start + 1));
                }
                b'!' if next == Some(b'=') => two(Tok::Ne),
                b'!' => one(Tok::Not),
                b'<' if next == Some(b'=') => two(Tok::Le),
                b'<' => one(Tok::Lt),
                b'>' if next == Some(b'=') => two(Tok::Ge),
                b'>' => one(Tok::Gt),
                _ => {
                    let ch = self.src[start..].chars().next().unwrap_or('?');
                    let msg = if c == b'\'' {
                        "unexpected character \"'\" (strings are written in double quotes or back quotes)"
                            .to_string()
                    } else {
                        format!("unexpected character {ch:?}")
                    };
                    return Err(self.err(msg, start..start + ch.len_utf8()));
                }
            };
            self.i += len;
            self.push(tok, start);
        }
        let end = self.b.len();
        self.out.push(Token {
            tok: Tok::Eof,
            span: end..end,
        });
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - start
    }

    fn number(&mut self) -> Result<Tok, ExprError> {
        let start = self.i;
        self.digits();
        let mut float = false;
        if self.b.get(self.i) == Some(&b'.')
            && self.b.get(self.i + 1).is_some_and(u8::is_ascii_digit)
        {
            self.i += 1;
            self.digits();
            float = true;
        }
        if matches!(self.b.get(self.i), Some(b'e' | b'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.b.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                self.i = save;
            } else {
                float = true;
            }
        }
        let text = &self.src[start..self.i];
        if self
            .b
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
        {
            let mut end = self.i;
            while end < self.b.len() && (self.b[end].is_ascii_alphanumeric() || self.b[end] == b'_')
            {
                end += 1;
            }
            let word = &self.src[start..end];
            return Err(self.err(
                format!(
                    "invalid number literal '{word}' (durations are written as strings: \"{word}\")"
                ),
                start..end,
            ));
        }
        if float {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() => Ok(Tok::Float(v)),
                _ => Err(self.err(
                    format!("floating-point literal {text} is out of range"),
                    start..self.i,
                )),
            }
        } else {
            if text.len() > 1 && text.starts_with('0') {
                return Err(self.err(
                    format!("integer literal {text} has a leading zero (only decimal integers are supported)"),
                    start..self.i,
                ));
            }
            text.parse::<i64>().map(Tok::Int).map_err(|_| {
                self.err(
                    format!("integer literal {text} is out of range for INT64"),
                    start..self.i,
                )
            })
        }
    }

    fn raw(&mut self) -> Result<String, ExprError> {
        let start = self.i;
        self.i += 1;
        match self.src[self.i..].find('`') {
            Some(n) => {
                let s = self.src[self.i..self.i + n].replace('\r', "");
                self.i += n + 1;
                Ok(s)
            }
            None => Err(self.err("unterminated back-quoted string", start..self.b.len())),
        }
    }

    fn quoted(&mut self) -> Result<String, ExprError> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(ch) = self.src[self.i..].chars().next() else {
                return Err(self.err("unterminated string literal", start..self.b.len()));
            };
            match ch {
                '"' => {
                    self.i += 1;
                    return Ok(out);
                }
                '\n' => {
                    return Err(self.err("unterminated string literal", start..self.i));
                }
                '\\' => {
                    let esc_start = self.i;
                    self.i += 1;
                    let Some(e) = self.src[self.i..].chars().next() else {
                        return Err(self.err("unterminated string literal", start..self.b.len()));
                    };
                    self.i += e.len_utf8();
                    let simple = match e {
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        'f' => Some('\x0c'),
                        'n' => Some('\n'),
                        'r' => Some('\r'),
                        't' => Some('\t'),
                        'v' => Some('\x0b'),
                        '\\' => Some('\\'),
                        '"' => Some('"'),
                        _ => None,
                    };
                    if let Some(c) = simple {
                        out.push(c);
                        continue;
                    }
                    let (radix, len) = match e {
                        'x' => (16, 2),
                        'u' => (16, 4),
                        'U' => (16, 8),
                        '0'..='7' => {
                            self.i -= 1;
                            (8, 3)
                        }
                        _ => {
                            return Err(self.err(
                                format!("invalid escape sequence '\\{e}'"),
                                esc_start..self.i,
                            ));
                        }
                    };
                    let digits = self.src.get(self.i..self.i + len).unwrap_or("");
                    let code = if digits.len() == len && digits.chars().all(|c| c.is_digit(radix)) {
                        u32::from_str_radix(digits, radix).ok()
                    } else {
                        None
                    };
                    let end = (self.i + len).min(self.b.len());
                    let end = (esc_start..=end)
                        .rev()
                        .find(|&i| self.src.is_char_boundary(i))
                        .unwrap_or(esc_start);
                    let Some(code) = code else {
                        return Err(self.err(
                            format!("invalid escape sequence '{}'", &self.src[esc_start..end]),
                            esc_start..end,
                        ));
                    };
                    self.i += len;
                    // \x and octal escapes are single bytes in Go; above
                    // 0x7f they would not be valid UTF-8 on their own.
                    let byte_escape = e != 'u' && e != 'U';
                    match char::from_u32(code) {
                        Some(c) if !byte_escape || code < 0x80 => out.push(c),
                        _ => {
                            return Err(self.err(
                                format!(
                                    "escape sequence '{}' is not a valid character",
                                    &self.src[esc_start..self.i]
                                ),
                                esc_start..self.i,
                            ));
                        }
                    }
                }
                c => {
                    out.push(c);
                    self.i += c.len_utf8();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn operators_and_literals() {
        assert_eq!(
            toks("a.b|| !x != 1.5e3 `r\\n` \"q\\\"\\u00e9\\101\""),
            vec![
                Tok::Ident("a".into()),
                Tok::Dot,
                Tok::Ident("b".into()),
                Tok::OrOr,
                Tok::Not,
                Tok::Ident("x".into()),
                Tok::Ne,
                Tok::Float(1500.0),
                Tok::Str("r\\n".into()),
                Tok::Str("q\"\u{e9}A".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        for s in [
            "\"abc",
            "\"\\q\"",
            "\"\\x\"",
            "\"\\xff\"",
            "`x",
            "a & b",
            "#",
            "'a'",
            "\"\\U0011ffff\"",
            "\"\\u12",
        ] {
            assert!(tokenize(s).is_err(), "{s}");
        }
    }
}
