//! Recursive-descent parser following the FHIRPath N1 precedence table. Nesting (brackets,
//! function arguments, unary signs) is capped so hostile input cannot exhaust the stack.

use regex::Regex;

use crate::ParseError;
use crate::ast::{Call, Expr, Func, Op, Operand, Step, UNSUPPORTED_FUNCTIONS, Var};
use crate::lexer::{Tok, Token, column, tokenize};
use crate::quantity::calendar_unit;
use crate::types::{self, Namespace, TypeSpec};

/// Deep enough for any real expression, shallow enough for a 2 MiB thread stack in debug.
pub(crate) const MAX_NESTING: usize = 64;

/// Binary operator levels, loosest first; `unary` sits below the last.
const LEVELS: usize = 10;

pub(crate) fn parse(src: &str) -> Result<Expr, ParseError> {
    let tokens = tokenize(src)?;
    let mut p = Parser {
        src,
        tokens,
        i: 0,
        depth: 0,
    };
    let expr = p.binary(0)?;
    if p.peek() != &Tok::End {
        return Err(p.unexpected("an operator or the end of the expression"));
    }
    Ok(expr)
}

struct Parser<'s> {
    src: &'s str,
    tokens: Vec<Token>,
    i: usize,
    depth: usize,
}

impl Parser<'_> {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.i).map_or(&Tok::End, |t| &t.tok)
    }

    fn peek_next(&self) -> &Tok {
        self.tokens.get(self.i + 1).map_or(&Tok::End, |t| &t.tok)
    }

    /// Byte offset of the current token.
    fn pos(&self) -> usize {
        self.tokens
            .get(self.i)
            .or(self.tokens.last())
            .map_or(0, |t| t.pos)
    }

    fn col(&self, byte: usize) -> usize {
        column(self.src, byte)
    }

    fn advance(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.i < self.tokens.len() {
            self.i += 1;
        }
        tok
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        match self.peek() {
            Tok::End => ParseError::UnexpectedEnd { expected },
            tok => ParseError::UnexpectedToken {
                position: self.col(self.pos()),
                found: tok.describe(),
                expected,
            },
        }
    }

    fn expect(&mut self, sym: &'static str, expected: &'static str) -> Result<(), ParseError> {
        if self.peek() == &Tok::Sym(sym) {
            self.i += 1;
            Ok(())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn nested<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        if self.depth >= MAX_NESTING {
            return Err(ParseError::TooDeep {
                position: self.col(self.pos()),
                limit: MAX_NESTING,
            });
        }
        self.depth += 1;
        let out = f(self);
        self.depth -= 1;
        out
    }

    fn operator(&self, level: usize) -> Option<Op> {
        let op = match self.peek() {
            Tok::Sym(s) => match *s {
                "=" => Op::Eq,
                "~" => Op::Equiv,
                "!=" => Op::Ne,
                "!~" => Op::NotEquiv,
                "<" => Op::Lt,
                ">" => Op::Gt,
                "<=" => Op::Le,
                ">=" => Op::Ge,
                "|" => Op::Union,
                "+" => Op::Add,
                "-" => Op::Sub,
                "&" => Op::Concat,
                "*" => Op::Mul,
                "/" => Op::Div,
                _ => return None,
            },
            Tok::Ident(s) => match s.as_str() {
                "implies" => Op::Implies,
                "or" => Op::Or,
                "xor" => Op::Xor,
                "and" => Op::And,
                "in" => Op::In,
                "contains" => Op::Contains,
                "is" => Op::Is,
                "as" => Op::As,
                "div" => Op::IntDiv,
                "mod" => Op::Mod,
                _ => return None,
            },
            _ => return None,
        };
        let op_level = match op {
            Op::Implies => 0,
            Op::Or | Op::Xor => 1,
            Op::And => 2,
            Op::In | Op::Contains => 3,
            Op::Eq | Op::Equiv | Op::Ne | Op::NotEquiv => 4,
            Op::Lt | Op::Gt | Op::Le | Op::Ge => 5,
            Op::Union => 6,
            Op::Is | Op::As => 7,
            Op::Add | Op::Sub | Op::Concat => 8,
            Op::Mul | Op::Div | Op::IntDiv | Op::Mod => 9,
        };
        (op_level == level).then_some(op)
    }

    fn binary(&mut self, level: usize) -> Result<Expr, ParseError> {
        if level == LEVELS {
            return self.unary();
        }
        let first = self.binary(level + 1)?;
        let mut rest = Vec::new();
        while let Some(op) = self.operator(level) {
            self.i += 1;
            let operand = match op {
                Op::Is | Op::As => Operand::Type(self.type_specifier()?),
                _ => Operand::Expr(self.binary(level + 1)?),
            };
            rest.push((op, operand));
        }
        Ok(if rest.is_empty() {
            first
        } else {
            Expr::Binary(Box::new(first), rest)
        })
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        match self.peek() {
            Tok::Sym("-") => {
                self.i += 1;
                let inner = self.nested(Self::unary)?;
                Ok(Expr::Negate(Box::new(inner)))
            }
            Tok::Sym("+") => {
                self.i += 1;
                self.nested(Self::unary)
            }
            _ => self.postfix(),
        }
    }

    fn postfix(&mut self) -> Result<Expr, ParseError> {
        let base = self.term()?;
        let mut steps = Vec::new();
        loop {
            match self.peek() {
                Tok::Sym(".") => {
                    self.i += 1;
                    let pos = self.pos();
                    let (name, plain) = match self.peek() {
                        Tok::Ident(n) => (n.clone(), true),
                        Tok::Delimited(n) => (n.clone(), false),
                        _ => return Err(self.unexpected("a member or function name after '.'")),
                    };
                    self.i += 1;
                    if plain && self.peek() == &Tok::Sym("(") {
                        steps.push(Step::Call(self.call(&name, pos)?));
                    } else {
                        steps.push(Step::Member(name.into()));
                    }
                }
                Tok::Sym("[") => {
                    self.i += 1;
                    let index = self.nested(|p| p.binary(0))?;
                    self.expect("]", "']' to close the indexer")?;
                    steps.push(Step::Index(index));
                }
                _ => break,
            }
        }
        Ok(if steps.is_empty() {
            base
        } else {
            Expr::Path(Box::new(base), steps)
        })
    }

    fn term(&mut self) -> Result<Expr, ParseError> {
        let pos = self.pos();
        let expr = match self.peek().clone() {
            Tok::Int(i) => Expr::Int(i),
            Tok::Dec(d) => Expr::Dec(d),
            Tok::Str(s) => Expr::Str(s.into()),
            Tok::Date(s) => Expr::Date(s.into()),
            Tok::DateTime(s) => Expr::DateTime(s.into()),
            Tok::Time(s) => Expr::Time(s.into()),
            Tok::Sym("(") => {
                self.i += 1;
                let inner = self.nested(|p| p.binary(0))?;
                self.expect(")", "')' to close the parenthesis")?;
                return Ok(inner);
            }
            Tok::Sym("{") => {
                self.i += 1;
                self.expect("}", "'}' (only the empty collection {} can be written)")?;
                return Ok(Expr::Empty);
            }
            Tok::Special(name) => match name.as_str() {
                "this" => Expr::This,
                "index" => Expr::Index,
                "total" => Expr::Total,
                _ => {
                    return Err(ParseError::Unsupported {
                        position: self.col(pos),
                        found: format!("${name}"),
                        reason: "the special variables are $this, $index and $total",
                    });
                }
            },
            Tok::External(name) => Expr::Var(self.variable(&name, pos)?),
            Tok::Ident(name) => match name.as_str() {
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                _ if self.peek_next() == &Tok::Sym("(") => {
                    self.i += 1;
                    return Ok(Expr::Call(Box::new(self.call(&name, pos)?)));
                }
                "and" | "or" | "xor" | "implies" | "div" | "mod" => {
                    return Err(self.unexpected("an operand"));
                }
                _ => ident(name),
            },
            Tok::Delimited(name) => ident(name),
            _ => return Err(self.unexpected("an operand")),
        };
        self.i += 1;
        let value = match expr {
            Expr::Int(i) => i as f64,
            Expr::Dec(d) => d,
            _ => return Ok(expr),
        };
        let unit = match self.peek() {
            Tok::Str(unit) => unit.clone(),
            Tok::Ident(word) => match calendar_unit(word) {
                Some(unit) => unit.to_owned(),
                None => return Ok(expr),
            },
            _ => return Ok(expr),
        };
        self.i += 1;
        Ok(Expr::Quantity(value, unit.into()))
    }

    fn variable(&self, name: &str, pos: usize) -> Result<Var, ParseError> {
        Ok(match name {
            "resource" | "rootResource" => Var::Resource,
            "context" => Var::Context,
            "ucum" => Var::Const("http://unitsofmeasure.org".into()),
            "sct" => Var::Const("http://snomed.info/sct".into()),
            "loinc" => Var::Const("http://loinc.org".into()),
            _ => {
                if let Some(vs) = name.strip_prefix("vs-") {
                    Var::Const(format!("http://hl7.org/fhir/ValueSet/{vs}").into())
                } else if let Some(ext) = name.strip_prefix("ext-") {
                    Var::Const(format!("http://hl7.org/fhir/StructureDefinition/{ext}").into())
                } else {
                    return Err(ParseError::UnknownVariable {
                        position: self.col(pos),
                        name: name.to_owned(),
                    });
                }
            }
        })
    }

    /// Parses `name(args)`; the current token is the `(`.
    fn call(&mut self, name: &str, pos: usize) -> Result<Call, ParseError> {
        let position = self.col(pos);
        if let Some((_, reason)) = UNSUPPORTED_FUNCTIONS.iter().find(|(n, _)| *n == name) {
            return Err(ParseError::UnsupportedFunction {
                position,
                name: name.to_owned(),
                reason,
            });
        }
        let func = Func::lookup(name).ok_or_else(|| ParseError::UnknownFunction {
            position,
            name: name.to_owned(),
        })?;
        self.expect("(", "'('")?;
        let mut args = Vec::new();
        let mut arg_pos = Vec::new();
        if self.peek() != &Tok::Sym(")") {
            loop {
                arg_pos.push(self.pos());
                args.push(self.nested(|p| p.binary(0))?);
                if self.peek() == &Tok::Sym(",") {
                    self.i += 1;
                } else {
                    break;
                }
            }
        }
        self.expect(")", "',' or ')' in the argument list")?;
        let (min, max) = func.arity();
        if args.len() < min || args.len() > max {
            return Err(ParseError::WrongArgumentCount {
                position,
                name: name.to_owned(),
                expected: match (min, max) {
                    (0, 0) => "no",
                    (1, 1) => "exactly 1",
                    (2, 2) => "exactly 2",
                    (0, 1) => "0 or 1",
                    (1, 2) => "1 or 2",
                    _ => "2 or 3",
                },
                found: args.len(),
            });
        }
        let mut call = Call {
            func,
            args,
            type_arg: None,
            regex: None,
        };
        match func {
            Func::OfType | Func::As | Func::Is => {
                let arg = call.args.pop();
                let spec = arg.as_ref().and_then(type_of_expr);
                let arg_at = self.col(arg_pos.first().copied().unwrap_or(pos));
                call.type_arg =
                    Some(spec.ok_or(ParseError::InvalidTypeSpecifier { position: arg_at })?);
            }
            Func::Matches | Func::ReplaceMatches => {
                if let Some(Expr::Str(pattern)) = call.args.first() {
                    let re = Regex::new(pattern).map_err(|e| ParseError::InvalidRegex {
                        position: self.col(arg_pos.first().copied().unwrap_or(pos)),
                        message: e.to_string(),
                    })?;
                    call.regex = Some(re);
                }
            }
            _ => {}
        }
        Ok(call)
    }

    /// The type after `is`/`as`: `Quantity`, `FHIR.Quantity`, `System.String`.
    fn type_specifier(&mut self) -> Result<TypeSpec, ParseError> {
        let position = self.col(self.pos());
        let first = match self.advance() {
            Tok::Ident(n) | Tok::Delimited(n) => n,
            _ => return Err(ParseError::InvalidTypeSpecifier { position }),
        };
        let namespace = match first.as_str() {
            "FHIR" => Namespace::Fhir,
            "System" => Namespace::System,
            _ => {
                return Ok(TypeSpec {
                    namespace: Namespace::Any,
                    name: first.into(),
                });
            }
        };
        if self.peek() != &Tok::Sym(".") {
            return Ok(TypeSpec {
                namespace: Namespace::Any,
                name: first.into(),
            });
        }
        self.i += 1;
        match self.advance() {
            Tok::Ident(n) | Tok::Delimited(n) => Ok(TypeSpec {
                namespace,
                name: n.into(),
            }),
            _ => Err(ParseError::InvalidTypeSpecifier { position }),
        }
    }
}

fn ident(name: String) -> Expr {
    // FHIR element names never start with an upper-case letter, so this cannot shadow one.
    if name.starts_with(|c: char| c.is_ascii_uppercase()) && types::is_type_name(&name) {
        Expr::TypeName(name.into())
    } else {
        Expr::Ident(name.into())
    }
}

/// A function's type argument, parsed as an ordinary expression first.
fn type_of_expr(expr: &Expr) -> Option<TypeSpec> {
    match expr {
        Expr::Ident(name) | Expr::TypeName(name) => Some(TypeSpec {
            namespace: Namespace::Any,
            name: name.clone(),
        }),
        Expr::Path(base, steps) => {
            let (Expr::Ident(ns), [Step::Member(name)]) = (&**base, steps.as_slice()) else {
                return None;
            };
            let namespace = match &**ns {
                "FHIR" => Namespace::Fhir,
                "System" => Namespace::System,
                _ => return None,
            };
            Some(TypeSpec {
                namespace,
                name: name.clone(),
            })
        }
        _ => None,
    }
}
