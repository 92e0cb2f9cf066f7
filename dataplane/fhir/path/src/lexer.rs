//! Tokens of FHIRPath text. Positions are byte offsets; errors convert them to the
//! 1-based character columns a user sees.

use crate::ParseError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// A plain identifier or keyword; the parser decides which by position.
    Ident(String),
    /// A `backtick` identifier, never a keyword.
    Delimited(String),
    Str(String),
    Int(i64),
    Dec(f64),
    Date(String),
    DateTime(String),
    Time(String),
    /// `$this`, `$index`, `$total`, without the `$`.
    Special(String),
    /// `%name` or `%`name``, without the `%`.
    External(String),
    Sym(&'static str),
    End,
}

impl Tok {
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("'{s}'"),
            Tok::Delimited(s) => format!("`{s}`"),
            Tok::Str(_) => "string literal".into(),
            Tok::Int(_) | Tok::Dec(_) => "number".into(),
            Tok::Date(_) | Tok::DateTime(_) | Tok::Time(_) => "date/time literal".into(),
            Tok::Special(s) => format!("'${s}'"),
            Tok::External(s) => format!("'%{s}'"),
            Tok::Sym(s) => format!("'{s}'"),
            Tok::End => "end of expression".into(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    /// Byte offset of the token's first character.
    pub pos: usize,
}

/// 1-based character column of a byte offset, as error messages report it.
pub(crate) fn column(src: &str, byte: usize) -> usize {
    src.get(..byte).map_or(byte, |s| s.chars().count()) + 1
}

const SYMBOLS: &[&str] = &[
    "!=", "!~", "<=", ">=", ".", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "&", "|",
    "=", "~", "<", ">",
];

pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut lx = Lexer { src, pos: 0 };
    let mut out = Vec::new();
    loop {
        lx.skip_trivia()?;
        let pos = lx.pos;
        let Some(c) = lx.peek() else {
            out.push(Token { tok: Tok::End, pos });
            return Ok(out);
        };
        let tok = if c.is_ascii_alphabetic() || c == '_' {
            Tok::Ident(
                lx.take_while(|c| c.is_ascii_alphanumeric() || c == '_')
                    .to_owned(),
            )
        } else if c.is_ascii_digit() {
            lx.number()?
        } else if c == '\'' {
            Tok::Str(lx.quoted('\'', "string")?)
        } else if c == '`' {
            Tok::Delimited(lx.quoted('`', "delimited identifier")?)
        } else if c == '@' {
            lx.temporal()?
        } else if c == '$' {
            lx.pos += 1;
            let name = lx.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
            if name.is_empty() {
                return Err(lx.unexpected(pos, '$'));
            }
            Tok::Special(name.to_owned())
        } else if c == '%' {
            lx.pos += 1;
            match lx.peek() {
                Some('`') => Tok::External(lx.quoted('`', "delimited identifier")?),
                Some('\'') => Tok::External(lx.quoted('\'', "string")?),
                _ => {
                    let name = lx.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
                    if name.is_empty() {
                        return Err(lx.unexpected(pos, '%'));
                    }
                    Tok::External(name.to_owned())
                }
            }
        } else if let Some(sym) = SYMBOLS.iter().find(|s| src[pos..].starts_with(**s)) {
            lx.pos += sym.len();
            Tok::Sym(sym)
        } else {
            return Err(lx.unexpected(pos, c));
        };
        out.push(Token { tok, pos });
    }
}

struct Lexer<'s> {
    src: &'s str,
    pos: usize,
}

impl<'s> Lexer<'s> {
    fn rest(&self) -> &'s str {
        &self.src[self.pos..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.rest().chars().nth(n)
    }

    fn unexpected(&self, pos: usize, found: char) -> ParseError {
        ParseError::UnexpectedChar {
            position: column(self.src, pos),
            found,
        }
    }

    fn take_while(&mut self, f: impl Fn(char) -> bool) -> &'s str {
        let rest = self.rest();
        let len = rest.find(|c| !f(c)).unwrap_or(rest.len());
        self.pos += len;
        &rest[..len]
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            if rest.starts_with(|c: char| c.is_whitespace()) {
                self.take_while(char::is_whitespace);
            } else if rest.starts_with("//") {
                self.take_while(|c| c != '\n');
            } else if let Some(body) = rest.strip_prefix("/*") {
                let start = self.pos;
                match body.find("*/") {
                    Some(end) => self.pos += end + 4,
                    None => {
                        return Err(ParseError::Unterminated {
                            position: column(self.src, start),
                            what: "comment",
                        });
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    fn number(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        self.take_while(|c| c.is_ascii_digit());
        // `1.` followed by a letter is an invocation on the integer (`1.toString()`).
        let decimal =
            self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit());
        if decimal {
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
        }
        let text = &self.src[start..self.pos];
        let invalid = |reason: &str| ParseError::InvalidLiteral {
            position: column(self.src, start),
            what: "number",
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        if decimal {
            text.parse::<f64>()
                .map(Tok::Dec)
                .map_err(|e| invalid(&e.to_string()))
        } else {
            text.parse::<i64>()
                .map(Tok::Int)
                .map_err(|_| invalid("integer out of range (at most 9223372036854775807)"))
        }
    }

    /// A quoted string or delimited identifier with FHIRPath escapes.
    fn quoted(&mut self, quote: char, what: &'static str) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(ParseError::Unterminated {
                    position: column(self.src, start),
                    what,
                });
            };
            let at = self.pos;
            self.pos += c.len_utf8();
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let bad = |lx: &Lexer<'_>| ParseError::InvalidEscape {
                position: column(lx.src, at),
                sequence: lx.src[at..lx.pos].to_owned(),
            };
            let Some(e) = self.peek() else {
                return Err(ParseError::Unterminated {
                    position: column(self.src, start),
                    what,
                });
            };
            self.pos += e.len_utf8();
            out.push(match e {
                '\'' | '"' | '`' | '\\' | '/' => e,
                'f' => '\u{c}',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'u' => {
                    let hex = self
                        .rest()
                        .get(..4)
                        .filter(|h| h.chars().all(|c| c.is_ascii_hexdigit()));
                    let Some(hex) = hex else {
                        self.pos += self
                            .rest()
                            .chars()
                            .take(4)
                            .map(char::len_utf8)
                            .sum::<usize>();
                        return Err(bad(self));
                    };
                    self.pos += 4;
                    let code = u32::from_str_radix(hex, 16).map_err(|_| bad(self))?;
                    // Surrogate halves are not characters; the spec allows none here.
                    char::from_u32(code).ok_or_else(|| bad(self))?
                }
                _ => return Err(bad(self)),
            });
        }
    }

    /// `@2020-01-01`, `@2020-01-01T10:00:00.000+01:00`, `@T10:00`.
    fn temporal(&mut self) -> Result<Tok, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let invalid = |lx: &Lexer<'_>, reason: &str| ParseError::InvalidLiteral {
            position: column(lx.src, start),
            what: "date/time",
            text: lx.src[start..lx.pos].to_owned(),
            reason: reason.to_owned(),
        };
        if self.peek() == Some('T') {
            self.pos += 1;
            let t0 = self.pos;
            if !self.time_part() {
                return Err(invalid(self, "expected @Thh[:mm[:ss[.fff]]]"));
            }
            return Ok(Tok::Time(self.src[t0..self.pos].to_owned()));
        }
        let d0 = self.pos;
        if !self.digits(4) {
            return Err(invalid(
                self,
                "expected @YYYY[-MM[-DD]][Thh:mm:ss[.fff][Z|+hh:mm]] or @Thh:mm",
            ));
        }
        for _ in 0..2 {
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                if !self.digits(2) {
                    return Err(invalid(self, "month and day take two digits"));
                }
            } else {
                break;
            }
        }
        if self.peek() != Some('T') {
            return Ok(Tok::Date(self.src[d0..self.pos].to_owned()));
        }
        self.pos += 1;
        if self.peek().is_some_and(|c| c.is_ascii_digit()) {
            if !self.time_part() {
                return Err(invalid(self, "expected hh[:mm[:ss[.fff]]] after T"));
            }
            if self.peek() == Some('Z') {
                self.pos += 1;
            } else if matches!(self.peek(), Some('+' | '-'))
                && self.peek_at(1).is_some_and(|c| c.is_ascii_digit())
            {
                self.pos += 1;
                if !(self.digits(2) && self.peek() == Some(':') && {
                    self.pos += 1;
                    self.digits(2)
                }) {
                    return Err(invalid(self, "time zone offsets are written +hh:mm"));
                }
            }
        }
        let text = self.src[d0..self.pos].trim_end_matches('T');
        Ok(Tok::DateTime(text.to_owned()))
    }

    fn digits(&mut self, n: usize) -> bool {
        let ok =
            self.rest().len() >= n && self.rest().as_bytes()[..n].iter().all(u8::is_ascii_digit);
        if ok {
            self.pos += n;
        }
        ok
    }

    fn time_part(&mut self) -> bool {
        if !self.digits(2) {
            return false;
        }
        for _ in 0..2 {
            if self.peek() == Some(':') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
                if !self.digits(2) {
                    return false;
                }
            } else {
                return true;
            }
        }
        if self.peek() == Some('.') && self.peek_at(1).is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
            self.take_while(|c| c.is_ascii_digit());
        }
        true
    }
}
