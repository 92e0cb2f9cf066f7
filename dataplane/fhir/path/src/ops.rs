//! Operators on collections: equality, equivalence, ordering, membership, arithmetic,
//! and the conversions they share with functions (truth, singletons, text, numbers).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::ast::Op;
use crate::quantity;
use crate::temporal::{self, Kind};
use crate::{EvalError, Item};

/// A system-level view of one item, which is what operators compare.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Prim<'x> {
    Bool(bool),
    Str(&'x str),
    Int(i64),
    Dec(f64),
    Temporal(&'x str, Kind),
    /// An object (or, never in practice, an array): compared structurally.
    Complex(&'x Value),
    Ref(&'x str, &'x str),
    Quantity(f64, &'x str),
}

pub(crate) fn prim<'x>(item: &'x Item<'_>) -> Prim<'x> {
    match item {
        Item::Node { value, fhir_type } => match value {
            Value::Bool(b) => Prim::Bool(*b),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Prim::Int(i),
                None => Prim::Dec(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => match fhir_type.as_deref() {
                Some("date" | "dateTime" | "instant") => Prim::Temporal(s, Kind::Date),
                Some("time") => Prim::Temporal(s, Kind::Time),
                _ => Prim::Str(s),
            },
            _ => Prim::Complex(value),
        },
        Item::Boolean(b) => Prim::Bool(*b),
        Item::String(s) => Prim::Str(s),
        Item::Integer(i) => Prim::Int(*i),
        Item::Decimal(d) => Prim::Dec(*d),
        Item::Date(s) | Item::DateTime(s) => Prim::Temporal(s, Kind::Date),
        Item::Time(s) => Prim::Temporal(s, Kind::Time),
        Item::Resolved { resource_type, id } => Prim::Ref(resource_type, id),
        Item::Quantity { value, unit } => Prim::Quantity(*value, unit),
    }
}

fn label(p: Prim<'_>) -> &'static str {
    match p {
        Prim::Bool(_) => "Boolean",
        Prim::Str(_) => "String",
        Prim::Int(_) => "Integer",
        Prim::Dec(_) => "Decimal",
        Prim::Temporal(_, Kind::Date) => "DateTime",
        Prim::Temporal(_, Kind::Time) => "Time",
        Prim::Complex(_) => "an element",
        Prim::Ref(..) => "a resolved reference",
        Prim::Quantity(..) => "Quantity",
    }
}

fn number(p: Prim<'_>) -> Option<f64> {
    match p {
        Prim::Int(i) => Some(i as f64),
        Prim::Dec(d) => Some(d),
        _ => None,
    }
}

/// The two sides as temporals when at least one is and the other can be read as one.
fn temporals<'x>(a: Prim<'x>, b: Prim<'x>) -> Option<(&'x str, &'x str, Kind)> {
    match (a, b) {
        (Prim::Temporal(x, k), Prim::Temporal(y, l)) if k == l => Some((x, y, k)),
        (Prim::Temporal(x, k), Prim::Str(y)) => Some((x, y, k)),
        (Prim::Str(x), Prim::Temporal(y, k)) => Some((x, y, k)),
        _ => None,
    }
}

/// Both items as quantities, when one is a Quantity value and the other a Quantity value or
/// element, or (with `elements`) both are Quantity elements.
type QuantityPair<'x> = ((f64, &'x str), (f64, &'x str));

fn quantities<'x>(a: &'x Item<'_>, b: &'x Item<'_>, elements: bool) -> Option<QuantityPair<'x>> {
    let is_value = |i: &Item<'_>| matches!(i, Item::Quantity { .. });
    let typed = |i: &Item<'_>| {
        i.type_name()
            .is_some_and(|t| matches!(t, "Quantity" | "Age" | "Count" | "Distance" | "Duration"))
    };
    if !(is_value(a) || is_value(b) || elements && typed(a) && typed(b)) {
        return None;
    }
    Some((quantity::of(a)?, quantity::of(b)?))
}

/// `a = b` for single items; None when temporal precision makes it unknowable.
pub(crate) fn item_eq(a: &Item<'_>, b: &Item<'_>) -> Option<bool> {
    if let (Item::Node { value: x, .. }, Item::Node { value: y, .. }) = (a, b)
        && std::ptr::eq(*x, *y)
    {
        return Some(true);
    }
    if matches!(a, Item::Quantity { .. }) || matches!(b, Item::Quantity { .. }) {
        return match quantities(a, b, false) {
            Some((x, y)) => quantity::equal(x, y),
            None => Some(false),
        };
    }
    let (pa, pb) = (prim(a), prim(b));
    if let Some((x, y, kind)) = temporals(pa, pb) {
        return match temporal::compare(x, y, kind) {
            Some(o) => Some(o == Ordering::Equal),
            None if temporal::is_valid(x, kind) && temporal::is_valid(y, kind) => None,
            None => Some(false),
        };
    }
    Some(match (pa, pb) {
        (Prim::Bool(x), Prim::Bool(y)) => x == y,
        (Prim::Int(x), Prim::Int(y)) => x == y,
        (Prim::Str(x), Prim::Str(y)) => x == y,
        (Prim::Complex(x), Prim::Complex(y)) => x == y,
        (Prim::Ref(t1, i1), Prim::Ref(t2, i2)) => t1 == t2 && i1 == i2,
        (x, y) => match (number(x), number(y)) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    })
}

/// `a ~ b` for single items: case- and whitespace-insensitive strings, unknown temporal
/// precision counts as different.
fn item_equiv(a: &Item<'_>, b: &Item<'_>) -> bool {
    if let Some((x, y)) = quantities(a, b, true) {
        return quantity::equivalent(x, y);
    }
    match (prim(a), prim(b)) {
        (Prim::Str(x), Prim::Str(y)) => {
            let norm = |s: &str| {
                s.split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
                    .to_lowercase()
            };
            norm(x) == norm(y)
        }
        (Prim::Dec(x), Prim::Dec(y)) => decimal_equivalent(x, y),
        _ => item_eq(a, b) == Some(true),
    }
}

/// Decimal `~`: equal once rounded to the precision of the less precise value.
pub(crate) fn decimal_equivalent(x: f64, y: f64) -> bool {
    let places = decimal_places(x).min(decimal_places(y));
    round_to(x, places) == round_to(y, places)
}

/// Digits after the point in the shortest text that reads back as `d`, which is how many
/// the literal or JSON number was written with (less any trailing zeros).
fn decimal_places(d: f64) -> i32 {
    let s = d.to_string();
    s.split_once('.')
        .map_or(0, |(_, frac)| i32::try_from(frac.len()).unwrap_or(i32::MAX))
}

fn round_to(d: f64, places: i32) -> f64 {
    let scale = 10f64.powi(places.min(15));
    (d * scale).round() / scale
}

/// Drops the binary noise of a decimal result (`1.8 - 1.2` is 0.6000000000000001 in f64)
/// by keeping 15 significant digits, all an f64 holds reliably.
pub(crate) fn tidy(d: f64) -> f64 {
    if d == 0.0 || !d.is_finite() {
        return d;
    }
    format!("{d:.14e}").parse().unwrap_or(d)
}

fn item_cmp(a: &Item<'_>, b: &Item<'_>, op: &'static str) -> Result<Option<Ordering>, EvalError> {
    if let Some((x, y)) = quantities(a, b, true) {
        return Ok(quantity::compare(x, y));
    }
    let (pa, pb) = (prim(a), prim(b));
    if let Some((x, y, kind)) = temporals(pa, pb) {
        return Ok(temporal::compare(x, y, kind));
    }
    match (pa, pb) {
        (Prim::Str(x), Prim::Str(y)) => Ok(Some(x.cmp(y))),
        (x, y) => match (number(x), number(y)) {
            (Some(x), Some(y)) => Ok(x.partial_cmp(&y)),
            _ => Err(EvalError::TypeMismatch {
                operation: op,
                left: label(pa),
                right: label(pb),
            }),
        },
    }
}

/// The comparison-family operators; None is the empty result.
pub(crate) fn compare_op(
    op: Op,
    l: &[Item<'_>],
    r: &[Item<'_>],
) -> Result<Option<bool>, EvalError> {
    let sym = op.symbol();
    Ok(match op {
        Op::Eq | Op::Ne => {
            if l.is_empty() || r.is_empty() {
                return Ok(None);
            }
            let eq = if l.len() != r.len() {
                Some(false)
            } else {
                let mut acc = Some(true);
                for (a, b) in l.iter().zip(r) {
                    match item_eq(a, b) {
                        Some(false) => {
                            acc = Some(false);
                            break;
                        }
                        None => acc = None,
                        Some(true) => {}
                    }
                }
                acc
            };
            if op == Op::Eq { eq } else { eq.map(|b| !b) }
        }
        Op::Equiv | Op::NotEquiv => {
            let eq = l.len() == r.len() && l.iter().all(|a| r.iter().any(|b| item_equiv(a, b)));
            Some(if op == Op::Equiv { eq } else { !eq })
        }
        Op::In | Op::Contains => {
            let (needle, haystack) = if op == Op::In { (l, r) } else { (r, l) };
            single(needle, sym)?.map(|n| haystack.iter().any(|h| item_eq(n, h) == Some(true)))
        }
        _ => {
            let (Some(a), Some(b)) = (single(l, sym)?, single(r, sym)?) else {
                return Ok(None);
            };
            item_cmp(a, b, sym)?.map(|o| match op {
                Op::Lt => o == Ordering::Less,
                Op::Gt => o == Ordering::Greater,
                Op::Le => o != Ordering::Greater,
                _ => o != Ordering::Less,
            })
        }
    })
}

pub(crate) fn contains(items: &[Item<'_>], item: &Item<'_>) -> bool {
    items.iter().any(|x| item_eq(x, item) == Some(true))
}

/// At most one item, or an error naming the operation that needed one.
pub(crate) fn single<'x, 'a>(
    items: &'x [Item<'a>],
    operation: &'static str,
) -> Result<Option<&'x Item<'a>>, EvalError> {
    match items {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(EvalError::NotSingleton {
            operation,
            count: items.len(),
        }),
    }
}

/// Singleton evaluation to a Boolean: empty is unknown, a single non-Boolean item is true.
pub(crate) fn truth(
    items: &[Item<'_>],
    operation: &'static str,
) -> Result<Option<bool>, EvalError> {
    Ok(single(items, operation)?.map(|item| match prim(item) {
        Prim::Bool(b) => b,
        _ => true,
    }))
}

/// The Boolean value of an item, if it is one.
pub(crate) fn boolean(item: &Item<'_>) -> Option<bool> {
    match prim(item) {
        Prim::Bool(b) => Some(b),
        _ => None,
    }
}

pub(crate) fn integer(item: &Item<'_>, operation: &'static str) -> Result<i64, EvalError> {
    match prim(item) {
        Prim::Int(i) => Ok(i),
        p => Err(EvalError::WrongType {
            operation,
            expected: "an Integer",
            found: label(p),
        }),
    }
}

pub(crate) fn decimal(item: &Item<'_>, operation: &'static str) -> Result<f64, EvalError> {
    let p = prim(item);
    number(p).ok_or(EvalError::WrongType {
        operation,
        expected: "a number",
        found: label(p),
    })
}

/// The string form of a primitive (`toString()`), None for elements.
pub(crate) fn text<'a>(item: &Item<'a>) -> Option<Cow<'a, str>> {
    Some(match item {
        Item::Node { value, .. } => match value {
            Value::String(s) => Cow::Borrowed(s.as_str()),
            // With arbitrary_precision this is the number exactly as written (`1.50`).
            Value::Number(n) => Cow::Owned(n.to_string()),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            _ => return None,
        },
        Item::String(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => s.clone(),
        Item::Boolean(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
        Item::Integer(i) => Cow::Owned(i.to_string()),
        Item::Decimal(d) => Cow::Owned(format_decimal(*d)),
        Item::Resolved { resource_type, id } => Cow::Owned(format!("{resource_type}/{id}")),
        Item::Quantity { value, unit } => Cow::Owned(quantity::format(*value, unit)),
    })
}

pub(crate) fn text_of<'a>(
    item: &Item<'a>,
    operation: &'static str,
) -> Result<Cow<'a, str>, EvalError> {
    text(item).ok_or(EvalError::WrongType {
        operation,
        expected: "a string",
        found: "an element",
    })
}

pub(crate) fn format_decimal(d: f64) -> String {
    if d.is_finite() && d.fract() == 0.0 && d.abs() < 1e15 {
        format!("{d:.1}")
    } else {
        d.to_string()
    }
}

pub(crate) fn negate<'a>(items: Vec<Item<'a>>) -> Result<Vec<Item<'a>>, EvalError> {
    let Some(item) = single(&items, "unary -")? else {
        return Ok(Vec::new());
    };
    Ok(match prim(item) {
        Prim::Int(i) => i.checked_neg().map(Item::Integer).into_iter().collect(),
        Prim::Dec(d) => vec![Item::Decimal(-d)],
        Prim::Quantity(value, unit) => vec![Item::Quantity {
            value: -value,
            unit: Cow::Owned(unit.to_owned()),
        }],
        p => {
            return Err(EvalError::WrongType {
                operation: "unary -",
                expected: "a number",
                found: label(p),
            });
        }
    })
}

/// `+ - * / div mod &`. Overflow and division by zero give empty, as the spec asks.
pub(crate) fn arithmetic<'a>(
    op: Op,
    l: &[Item<'a>],
    r: &[Item<'a>],
) -> Result<Vec<Item<'a>>, EvalError> {
    let sym = op.symbol();
    if op == Op::Concat {
        let part = |items: &[Item<'a>]| -> Result<Cow<'a, str>, EvalError> {
            Ok(match single(items, sym)? {
                None => Cow::Borrowed(""),
                Some(item) => text_of(item, sym)?,
            })
        };
        let mut s = part(l)?.into_owned();
        s.push_str(&part(r)?);
        return Ok(vec![Item::String(Cow::Owned(s))]);
    }
    let (Some(a), Some(b)) = (single(l, sym)?, single(r, sym)?) else {
        return Ok(Vec::new());
    };
    if matches!(op, Op::Add | Op::Sub)
        && let Some((x, y)) = quantities(a, b, true)
    {
        let sign = if op == Op::Add { 1.0 } else { -1.0 };
        let sum = quantity::add(x, y, sign).map(|value| Item::Quantity {
            value,
            unit: Cow::Owned(x.1.to_owned()),
        });
        return Ok(sum.into_iter().collect());
    }
    let (pa, pb) = (prim(a), prim(b));
    let result = match (pa, pb) {
        (Prim::Int(x), Prim::Int(y)) => match op {
            Op::Add => x.checked_add(y).map(Item::Integer),
            Op::Sub => x.checked_sub(y).map(Item::Integer),
            Op::Mul => x.checked_mul(y).map(Item::Integer),
            Op::Div => (y != 0).then(|| Item::Decimal(x as f64 / y as f64)),
            Op::IntDiv => x.checked_div(y).map(Item::Integer),
            _ => x.checked_rem(y).map(Item::Integer),
        },
        (Prim::Str(x), Prim::Str(y)) if op == Op::Add => {
            Some(Item::String(Cow::Owned(format!("{x}{y}"))))
        }
        (Prim::Temporal(t, kind), Prim::Quantity(y, u)) if matches!(op, Op::Add | Op::Sub) => {
            let sign = if op == Op::Add { 1.0 } else { -1.0 };
            return Ok(temporal::add(t, kind, sign * y, u)
                .map(|s| match (a, kind) {
                    (_, Kind::Time) => Item::Time(Cow::Owned(s)),
                    (Item::Date(_), _) => Item::Date(Cow::Owned(s)),
                    (Item::Node { fhir_type, .. }, _) if fhir_type.as_deref() == Some("date") => {
                        Item::Date(Cow::Owned(s))
                    }
                    _ => Item::DateTime(Cow::Owned(s)),
                })
                .into_iter()
                .collect());
        }
        _ => {
            let (Some(x), Some(y)) = (number(pa), number(pb)) else {
                return Err(EvalError::TypeMismatch {
                    operation: sym,
                    left: label(pa),
                    right: label(pb),
                });
            };
            let v = match op {
                Op::Add => x + y,
                Op::Sub => x - y,
                Op::Mul => x * y,
                Op::Div if y != 0.0 => x / y,
                Op::IntDiv if y != 0.0 => {
                    let q = (x / y).trunc();
                    return Ok(in_i64(q).map(Item::Integer).into_iter().collect());
                }
                Op::Mod if y != 0.0 => x % y,
                _ => return Ok(Vec::new()),
            };
            v.is_finite().then_some(Item::Decimal(tidy(v)))
        }
    };
    Ok(result.into_iter().collect())
}

/// `f` as an i64 when it is integral and in range.
pub(crate) fn in_i64(f: f64) -> Option<i64> {
    (f.is_finite() && f.fract() == 0.0 && (-9.2e18..=9.2e18).contains(&f)).then_some(f as i64)
}
