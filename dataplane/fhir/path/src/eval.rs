//! The evaluator: walks the AST over borrowed JSON. Collections are `Vec<Item>` whose
//! nodes point into the resource, so navigation allocates result vectors but never copies
//! the tree.

use std::borrow::Cow;
use std::slice;

use serde_json::Value;

use crate::ast::{Expr, Op, Operand, Step, Var};
use crate::types::{self, choice_type};
use crate::{EvalError, Item};
use crate::{ops, sets};

pub(crate) struct Evaluator<'a> {
    pub resource: &'a Value,
    context: Item<'a>,
}

/// What a (sub)expression is evaluated against.
#[derive(Clone, Copy)]
pub(crate) struct Env<'e, 'a> {
    /// The focus: `$this`, and the input of identifiers and functions with no receiver.
    pub this: &'e [Item<'a>],
    pub index: Option<usize>,
    pub total: Option<&'e [Item<'a>]>,
}

impl<'e, 'a> Env<'e, 'a> {
    /// The environment of one iteration of `where`, `select`, `all`, ...
    pub fn iteration(self, item: &'e Item<'a>, index: usize) -> Env<'e, 'a> {
        Env {
            this: slice::from_ref(item),
            index: Some(index),
            total: self.total,
        }
    }
}

pub(crate) type Collection<'a> = Vec<Item<'a>>;
pub(crate) type EvalResult<'a> = Result<Collection<'a>, EvalError>;

impl<'a> Evaluator<'a> {
    pub fn new(resource: &'a Value, context: Item<'a>) -> Self {
        Evaluator { resource, context }
    }

    pub fn run(&self, expr: &Expr, focus: Item<'a>) -> EvalResult<'a> {
        let this = [focus];
        self.eval(
            expr,
            Env {
                this: &this,
                index: None,
                total: None,
            },
        )
    }

    pub fn eval(&self, expr: &Expr, env: Env<'_, 'a>) -> EvalResult<'a> {
        Ok(match expr {
            Expr::Path(base, steps) => self.path(base, steps, env)?,
            Expr::Ident(name) => {
                let mut out = Vec::new();
                for item in env.this {
                    navigate(item, name, &mut out);
                }
                out
            }
            Expr::TypeName(name) => env
                .this
                .iter()
                .filter(|i| types::has_fhir_type(i, name))
                .cloned()
                .collect(),
            Expr::Binary(first, rest) => self.binary(first, rest, env)?,
            Expr::Call(call) => self.call(call, env.this.to_vec(), env)?,
            Expr::This => env.this.to_vec(),
            Expr::Index => env
                .index
                .map(|i| Item::Integer(i64::try_from(i).unwrap_or(i64::MAX)))
                .into_iter()
                .collect(),
            Expr::Total => env.total.ok_or(EvalError::TotalOutsideAggregate)?.to_vec(),
            Expr::Var(Var::Resource) => vec![Item::node(self.resource)],
            Expr::Var(Var::Context) => vec![self.context.clone()],
            Expr::Var(Var::Const(s)) => vec![Item::String(Cow::Owned(s.to_string()))],
            Expr::Negate(inner) => ops::negate(self.eval(inner, env)?)?,
            Expr::Empty => Vec::new(),
            // Literals cannot borrow from the expression: results live as long as the
            // resource, not as long as the parsed expression.
            other => literal(other).map(owned).into_iter().collect(),
        })
    }

    fn path(&self, base: &Expr, steps: &[Step], env: Env<'_, 'a>) -> EvalResult<'a> {
        let mut current = self.eval(base, env)?;
        for step in steps {
            current = match step {
                Step::Member(name) => {
                    let mut out = Vec::with_capacity(current.len());
                    for item in &current {
                        navigate(item, name, &mut out);
                    }
                    out
                }
                Step::Index(index) => {
                    let index = self.eval(index, env)?;
                    match ops::single(&index, "indexer []")? {
                        None => Vec::new(),
                        Some(i) => {
                            let i = ops::integer(i, "indexer []")?;
                            match usize::try_from(i) {
                                Ok(i) if i < current.len() => vec![current.swap_remove(i)],
                                _ => Vec::new(),
                            }
                        }
                    }
                }
                Step::Call(call) => self.call(call, current, env)?,
            };
        }
        Ok(current)
    }

    fn binary(&self, first: &Expr, rest: &[(Op, Operand)], env: Env<'_, 'a>) -> EvalResult<'a> {
        let mut acc = self.eval(first, env)?;
        for (op, operand) in rest {
            let rhs = match operand {
                Operand::Type(spec) => {
                    acc = if *op == Op::Is {
                        match ops::single(&acc, "is")? {
                            None => Vec::new(),
                            Some(item) => vec![Item::Boolean(types::is_type(item, spec))],
                        }
                    } else {
                        // Lenient like HAPI: `as` filters a multi-item input instead of
                        // failing, which the R4 search parameters rely on
                        // (`useContext.value as Quantity` over repeating useContext).
                        acc.retain(|item| types::conforms(item, spec));
                        acc
                    };
                    continue;
                }
                Operand::Expr(rhs) => rhs,
            };
            acc = match op {
                Op::And | Op::Or | Op::Implies | Op::Xor => {
                    let left = ops::truth(&acc, op.symbol())?;
                    let short = match (op, left) {
                        (Op::And, Some(false)) => Some(false),
                        (Op::Or, Some(true)) => Some(true),
                        (Op::Implies, Some(false)) => Some(true),
                        _ => None,
                    };
                    let value = match short {
                        Some(v) => Some(v),
                        None => {
                            let right = ops::truth(&self.eval(rhs, env)?, op.symbol())?;
                            logic(*op, left, right)
                        }
                    };
                    value.map(Item::Boolean).into_iter().collect()
                }
                Op::Eq
                | Op::Ne
                | Op::Equiv
                | Op::NotEquiv
                | Op::Lt
                | Op::Gt
                | Op::Le
                | Op::Ge
                | Op::In
                | Op::Contains => {
                    // A literal right-hand side is compared in place instead of being
                    // copied into a collection, the common `where(system = 'email')`.
                    let result = match literal(rhs) {
                        Some(lit) => ops::compare_op(*op, &acc, slice::from_ref(&lit))?,
                        None => ops::compare_op(*op, &acc, &self.eval(rhs, env)?)?,
                    };
                    result.map(Item::Boolean).into_iter().collect()
                }
                Op::Union => {
                    acc.extend(self.eval(rhs, env)?);
                    sets::distinct(acc)
                }
                _ => ops::arithmetic(*op, &acc, &self.eval(rhs, env)?)?,
            };
        }
        Ok(acc)
    }
}

/// Three-valued `or`, `and`, `xor`, `implies` once short-circuiting did not decide.
fn logic(op: Op, left: Option<bool>, right: Option<bool>) -> Option<bool> {
    match op {
        Op::And => match (left, right) {
            (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Op::Or => match (left, right) {
            (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Op::Xor => Some(left? != right?),
        _ => match (left, right) {
            (Some(true), r) => r,
            (None, Some(true)) => Some(true),
            _ => None,
        },
    }
}

/// A literal as an item borrowing from the expression, or None for non-literals.
pub(crate) fn literal(expr: &Expr) -> Option<Item<'_>> {
    Some(match expr {
        Expr::Bool(b) => Item::Boolean(*b),
        Expr::Str(s) => Item::String(Cow::Borrowed(s)),
        Expr::Int(i) => Item::Integer(*i),
        Expr::Dec(d) => Item::Decimal(*d),
        Expr::Quantity(value, unit) => Item::Quantity {
            value: *value,
            unit: Cow::Borrowed(unit),
        },
        Expr::Date(s) => Item::Date(Cow::Borrowed(s)),
        Expr::DateTime(s) => Item::DateTime(Cow::Borrowed(s)),
        Expr::Time(s) => Item::Time(Cow::Borrowed(s)),
        _ => return None,
    })
}

/// Detaches a computed (non-node) item from the lifetime it borrows.
fn owned<'a>(item: Item<'_>) -> Item<'a> {
    let own = |s: Cow<'_, str>| Cow::Owned(s.into_owned());
    match item {
        Item::Boolean(b) => Item::Boolean(b),
        Item::String(s) => Item::String(own(s)),
        Item::Integer(i) => Item::Integer(i),
        Item::Decimal(d) => Item::Decimal(d),
        Item::Date(s) => Item::Date(own(s)),
        Item::DateTime(s) => Item::DateTime(own(s)),
        Item::Time(s) => Item::Time(own(s)),
        Item::Resolved { resource_type, id } => Item::Resolved {
            resource_type: own(resource_type),
            id: own(id),
        },
        Item::Quantity { value, unit } => Item::Quantity {
            value,
            unit: own(unit),
        },
        // Literals are never nodes; an empty string keeps this total without a panic.
        Item::Node { .. } => Item::String(Cow::Borrowed("")),
    }
}

/// Children named `name` of one item: arrays flatten, `null`s (array gaps beside `_name`
/// extension lists) vanish, and a missing `name` falls back to the one choice element
/// `nameXxx` whose suffix is an R4 type.
pub(crate) fn navigate<'a>(item: &Item<'a>, name: &str, out: &mut Vec<Item<'a>>) {
    match item {
        Item::Node {
            value: Value::Object(map),
            ..
        } => {
            if let Some(v) = map.get(name) {
                push_value(v, name, None, out);
                return;
            }
            for (key, v) in map {
                if let Some(t) = key.strip_prefix(name).and_then(choice_type) {
                    push_value(v, name, Some(t), out);
                    return;
                }
            }
        }
        Item::Resolved { id, .. } if name == "id" => out.push(Item::String(id.clone())),
        _ => {}
    }
}

/// Pushes the value(s) of element `key`. In R4 only `contained`, `Bundle.entry.resource`,
/// `Bundle.entry.response.outcome` and `Parameters.parameter.resource` hold resources, so
/// only those pay for a `resourceType` lookup to type the node.
pub(crate) fn push_value<'a>(
    v: &'a Value,
    key: &str,
    fhir_type: Option<&'static str>,
    out: &mut Vec<Item<'a>>,
) {
    let may_be_resource =
        fhir_type.is_none() && matches!(key, "contained" | "resource" | "outcome");
    let push_one = |x: &'a Value, out: &mut Vec<Item<'a>>| match x {
        Value::Null => {}
        Value::Object(_) if may_be_resource => out.push(Item::node(x)),
        _ => out.push(Item::Node {
            value: x,
            fhir_type: fhir_type.map(Cow::Borrowed),
        }),
    };
    match v {
        Value::Array(items) => {
            out.reserve(items.len());
            for x in items {
                push_one(x, out);
            }
        }
        _ => push_one(v, out),
    }
}
