//! The FHIRPath function library. Arguments are evaluated against the caller's focus
//! (`Patient.name.select(use.union(given))` evaluates `given` on each name), except the
//! criteria and projections of iterating functions, which see each input item as `$this`.

use std::borrow::Cow;

use regex::Regex;
use serde_json::Value;

use crate::ast::{Call, Expr, Func};
use crate::convert::{TemporalType, to_boolean, to_decimal, to_integer, to_quantity, to_temporal};
use crate::eval::{Collection, Env, EvalResult, Evaluator, navigate, push_value};
use crate::ops::{self, boolean, single, text, text_of, truth};
use crate::sets::{Lookup, distinct};
use crate::types::{self, is_resource_type};
use crate::{EvalError, Item};
use crate::{quantity, temporal};

static NO_ARGUMENT: Expr = Expr::Empty;

/// Guards `repeat` and `descendants` against expressions that never stop producing items.
const MAX_ITEMS: usize = 100_000;

impl<'a> Evaluator<'a> {
    pub(crate) fn call(
        &self,
        call: &Call,
        input: Collection<'a>,
        env: Env<'_, 'a>,
    ) -> EvalResult<'a> {
        let name = call.func.name();
        let arg = |i: usize| -> EvalResult<'a> {
            match call.args.get(i) {
                Some(e) => self.eval(e, env),
                None => Ok(Vec::new()),
            }
        };
        let bool_out = |b: bool| Ok(vec![Item::Boolean(b)]);
        // The parser checked arities; `{}` in place of a missing argument keeps this total.
        let first = call.args.first().unwrap_or(&NO_ARGUMENT);
        match call.func {
            Func::Empty => bool_out(input.is_empty()),
            Func::Exists => match call.args.first() {
                None => bool_out(!input.is_empty()),
                Some(crit) => bool_out(!self.filter(crit, input, env, name)?.is_empty()),
            },
            Func::Where => self.filter(first, input, env, name),
            Func::All => {
                for (i, item) in input.iter().enumerate() {
                    let r = self.eval(first, env.iteration(item, i))?;
                    if truth(&r, name)? != Some(true) {
                        return bool_out(false);
                    }
                }
                bool_out(true)
            }
            Func::AllTrue => bool_out(input.iter().all(|i| boolean(i) == Some(true))),
            Func::AnyTrue => bool_out(input.iter().any(|i| boolean(i) == Some(true))),
            Func::AllFalse => bool_out(input.iter().all(|i| boolean(i) == Some(false))),
            Func::AnyFalse => bool_out(input.iter().any(|i| boolean(i) == Some(false))),
            Func::SubsetOf => {
                let other = arg(0)?;
                let other = Lookup::new(&other);
                bool_out(input.iter().all(|i| other.contains(i)))
            }
            Func::SupersetOf => {
                let other = arg(0)?;
                let lookup = Lookup::new(&input);
                bool_out(other.iter().all(|i| lookup.contains(i)))
            }
            Func::Count => Ok(vec![Item::Integer(
                i64::try_from(input.len()).unwrap_or(i64::MAX),
            )]),
            Func::Distinct => Ok(distinct(input)),
            Func::IsDistinct => {
                let n = input.len();
                bool_out(distinct(input).len() == n)
            }
            Func::Select => {
                let mut out = Vec::new();
                for (i, item) in input.iter().enumerate() {
                    out.extend(self.eval(first, env.iteration(item, i))?);
                }
                Ok(out)
            }
            Func::Repeat => self.repeat(first, input, env),
            Func::OfType | Func::As => {
                let mut input = input;
                if let Some(spec) = &call.type_arg {
                    input.retain(|item| types::conforms(item, spec));
                }
                Ok(input)
            }
            Func::Is => Ok(match (single(&input, name)?, &call.type_arg) {
                (Some(item), Some(spec)) => vec![Item::Boolean(types::is_type(item, spec))],
                _ => Vec::new(),
            }),
            Func::Single => Ok(single(&input, name)?.cloned().into_iter().collect()),
            Func::First => Ok(input.into_iter().take(1).collect()),
            Func::Last => Ok(input.into_iter().last().into_iter().collect()),
            Func::Tail => Ok(input.into_iter().skip(1).collect()),
            Func::Skip | Func::Take => {
                let n = match single(&arg(0)?, name)? {
                    Some(n) => ops::integer(n, name)?,
                    None => return Ok(Vec::new()),
                };
                let n = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
                Ok(if call.func == Func::Skip {
                    input.into_iter().skip(n).collect()
                } else {
                    input.into_iter().take(n).collect()
                })
            }
            Func::Intersect => {
                let other = arg(0)?;
                let other = Lookup::new(&other);
                let mut input = input;
                input.retain(|i| other.contains(i));
                Ok(distinct(input))
            }
            Func::Exclude => {
                let other = arg(0)?;
                let other = Lookup::new(&other);
                let mut input = input;
                input.retain(|i| !other.contains(i));
                Ok(input)
            }
            Func::Union => Ok(distinct(input.into_iter().chain(arg(0)?).collect())),
            Func::Combine => {
                let mut input = input;
                input.extend(arg(0)?);
                Ok(input)
            }
            Func::Iif => {
                // The criterion and branches see the function's input as their focus.
                let inner = Env {
                    this: &input,
                    index: env.index,
                    total: env.total,
                };
                let crit = self.eval(first, inner)?;
                let pick = if truth(&crit, name)? == Some(true) {
                    1
                } else {
                    2
                };
                match call.args.get(pick) {
                    Some(e) => self.eval(e, inner),
                    None => Ok(Vec::new()),
                }
            }
            Func::Not => Ok(truth(&input, name)?
                .map(|b| Item::Boolean(!b))
                .into_iter()
                .collect()),
            Func::Trace => Ok(input),
            Func::Aggregate => {
                let mut total = arg(1)?;
                for (i, item) in input.iter().enumerate() {
                    let step = Env {
                        this: std::slice::from_ref(item),
                        index: Some(i),
                        total: Some(&total),
                    };
                    total = self.eval(first, step)?;
                }
                Ok(total)
            }
            Func::Join => {
                let sep = match single(&arg(0)?, name)? {
                    Some(sep) => text_of(sep, name)?,
                    None => Cow::Borrowed(""),
                };
                let parts = input
                    .iter()
                    .map(|i| text_of(i, name))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(vec![Item::String(Cow::Owned(parts.join(&*sep)))])
            }
            Func::Children => Ok(children(&input)),
            Func::Type => Ok(input.iter().filter_map(types::type_info).collect()),
            Func::Descendants => descendants(&input),
            Func::Resolve => {
                let mut out = Vec::new();
                for item in &input {
                    self.resolve(item, &mut out);
                }
                Ok(out)
            }
            Func::Extension => {
                let Some(url) = single(&arg(0)?, name)?
                    .map(|u| text_of(u, name))
                    .transpose()?
                else {
                    return Ok(Vec::new());
                };
                let mut out = Vec::new();
                for item in &input {
                    let mut exts = Vec::new();
                    navigate(item, "extension", &mut exts);
                    out.extend(exts.into_iter().filter(|e| {
                        e.as_node()
                            .and_then(|v| v.get("url"))
                            .and_then(Value::as_str)
                            == Some(&*url)
                    }));
                }
                Ok(out)
            }
            Func::HasValue => bool_out(matches!(input.as_slice(), [one] if is_primitive(one))),
            Func::GetValue => Ok(match input.as_slice() {
                [one] if is_primitive(one) => input,
                _ => Vec::new(),
            }),
            Func::Now | Func::Today | Func::TimeOfDay => {
                let (date, time) = temporal::now_utc();
                Ok(vec![match call.func {
                    Func::Now => Item::DateTime(Cow::Owned(format!("{date}T{time}Z"))),
                    Func::Today => Item::Date(Cow::Owned(date)),
                    _ => Item::Time(Cow::Owned(time)),
                }])
            }
            _ => {
                let Some(item) = single(&input, name)? else {
                    return Ok(Vec::new());
                };
                self.scalar(call, item, &arg)
            }
        }
    }

    fn filter(
        &self,
        crit: &Expr,
        input: Collection<'a>,
        env: Env<'_, 'a>,
        name: &'static str,
    ) -> EvalResult<'a> {
        let mut keep = Vec::with_capacity(input.len());
        for (i, item) in input.iter().enumerate() {
            let r = self.eval(crit, env.iteration(item, i))?;
            keep.push(truth(&r, name)? == Some(true));
        }
        let mut keep = keep.into_iter();
        let mut input = input;
        input.retain(|_| keep.next().unwrap_or(false));
        Ok(input)
    }

    fn repeat(&self, projection: &Expr, input: Collection<'a>, env: Env<'_, 'a>) -> EvalResult<'a> {
        let mut out: Collection<'a> = Vec::new();
        let mut current = input;
        while !current.is_empty() {
            let mut next = Vec::new();
            for (i, item) in current.iter().enumerate() {
                for produced in self.eval(projection, env.iteration(item, i))? {
                    if !ops::contains(&out, &produced) {
                        out.push(produced.clone());
                        next.push(produced);
                    }
                }
                if out.len() > MAX_ITEMS {
                    return Err(EvalError::TooManyItems {
                        operation: "repeat",
                        limit: MAX_ITEMS,
                    });
                }
            }
            current = next;
        }
        Ok(out)
    }

    /// `resolve()` for one item: contained (`#id`) and Bundle (`fullUrl`) references find
    /// the embedded resource; others become [`Item::Resolved`] from the reference text.
    fn resolve(&self, item: &Item<'a>, out: &mut Collection<'a>) {
        let reference = match item {
            Item::Node { value, .. } => match value {
                Value::Object(map) if map.contains_key("resourceType") => {
                    out.push(item.clone());
                    return;
                }
                Value::Object(map) => match map.get("reference") {
                    Some(Value::String(r)) => r.as_str(),
                    _ => return,
                },
                Value::String(s) => s.as_str(),
                _ => return,
            },
            Item::Resolved { .. } => {
                out.push(item.clone());
                return;
            }
            _ => return,
        };
        if let Some(id) = reference.strip_prefix('#') {
            if id.is_empty() {
                out.push(Item::node(self.resource));
            } else if let Some(Value::Array(contained)) = self.resource.get("contained") {
                let found = contained
                    .iter()
                    .find(|c| c.get("id").and_then(Value::as_str) == Some(id));
                out.extend(found.map(Item::node));
            }
            return;
        }
        if types::resource_type_of(self.resource) == Some("Bundle")
            && let Some(Value::Array(entries)) = self.resource.get("entry")
        {
            let hit = entries
                .iter()
                .find(|e| e.get("fullUrl").and_then(Value::as_str) == Some(reference))
                .and_then(|e| e.get("resource"));
            if let Some(resource) = hit {
                out.push(Item::node(resource));
                return;
            }
        }
        if let Some((resource_type, id)) = parse_reference(reference) {
            out.push(Item::Resolved {
                resource_type: Cow::Borrowed(resource_type),
                id: Cow::Borrowed(id),
            });
        }
    }

    /// Functions on a single input item (strings, conversions, math).
    fn scalar(
        &self,
        call: &Call,
        item: &Item<'a>,
        arg: &dyn Fn(usize) -> EvalResult<'a>,
    ) -> EvalResult<'a> {
        let name = call.func.name();
        let one = |i: Item<'a>| Ok(vec![i]);
        let boolean_out = |b: bool| Ok(vec![Item::Boolean(b)]);
        match call.func {
            Func::ToBoolean => Ok(to_boolean(item).map(Item::Boolean).into_iter().collect()),
            Func::ConvertsToBoolean => boolean_out(to_boolean(item).is_some()),
            Func::ToInteger => Ok(to_integer(item).map(Item::Integer).into_iter().collect()),
            Func::ConvertsToInteger => boolean_out(to_integer(item).is_some()),
            Func::ToDecimal => Ok(to_decimal(item).map(Item::Decimal).into_iter().collect()),
            Func::ConvertsToDecimal => boolean_out(to_decimal(item).is_some()),
            Func::ToString => Ok(text(item).map(Item::String).into_iter().collect()),
            Func::ConvertsToString => boolean_out(text(item).is_some()),
            Func::ToDate | Func::ToDateTime | Func::ToTime => {
                Ok(to_temporal(item, temporal_target(call.func))
                    .into_iter()
                    .collect())
            }
            Func::ConvertsToDate | Func::ConvertsToDateTime | Func::ConvertsToTime => {
                boolean_out(to_temporal(item, temporal_target(call.func)).is_some())
            }
            Func::ToQuantity | Func::ConvertsToQuantity => {
                let mut q = to_quantity(item);
                if let (Some((value, unit)), Some(target)) = (&q, single(&arg(0)?, name)?) {
                    let target = text_of(target, name)?;
                    q = quantity::convert((*value, unit), &target)
                        .map(|v| (v, Cow::Owned(target.into_owned())));
                }
                if call.func == Func::ConvertsToQuantity {
                    return boolean_out(q.is_some());
                }
                Ok(q.map(|(value, unit)| Item::Quantity { value, unit })
                    .into_iter()
                    .collect())
            }
            Func::Abs
            | Func::Ceiling
            | Func::Floor
            | Func::Truncate
            | Func::Sqrt
            | Func::Exp
            | Func::Ln => {
                match (call.func, ops::prim(item)) {
                    (Func::Abs, ops::Prim::Int(i)) => {
                        return Ok(i.checked_abs().map(Item::Integer).into_iter().collect());
                    }
                    (Func::Abs, ops::Prim::Quantity(value, unit)) => {
                        return one(Item::Quantity {
                            value: value.abs(),
                            unit: Cow::Owned(unit.to_owned()),
                        });
                    }
                    _ => {}
                }
                let x = ops::decimal(item, name)?;
                let v = match call.func {
                    Func::Abs => return one(Item::Decimal(x.abs())),
                    Func::Ceiling => {
                        return Ok(ops::in_i64(x.ceil())
                            .map(Item::Integer)
                            .into_iter()
                            .collect());
                    }
                    Func::Floor => {
                        return Ok(ops::in_i64(x.floor())
                            .map(Item::Integer)
                            .into_iter()
                            .collect());
                    }
                    Func::Truncate => {
                        return Ok(ops::in_i64(x.trunc())
                            .map(Item::Integer)
                            .into_iter()
                            .collect());
                    }
                    Func::Sqrt => x.sqrt(),
                    Func::Exp => x.exp(),
                    _ => x.ln(),
                };
                Ok(v.is_finite()
                    .then_some(Item::Decimal(v))
                    .into_iter()
                    .collect())
            }
            Func::Round => {
                let x = ops::decimal(item, name)?;
                let digits = match single(&arg(0)?, name)? {
                    Some(d) => ops::integer(d, name)?.clamp(0, 15),
                    None => 0,
                };
                let scale = 10f64.powi(i32::try_from(digits).unwrap_or(0));
                one(Item::Decimal((x * scale).round() / scale))
            }
            Func::Log | Func::Power => {
                let x = ops::decimal(item, name)?;
                let y = arg(0)?;
                let Some(y) = single(&y, name)? else {
                    return Ok(Vec::new());
                };
                if let (Func::Power, ops::Prim::Int(b), ops::Prim::Int(e)) =
                    (call.func, ops::prim(item), ops::prim(y))
                    && let Ok(e) = u32::try_from(e)
                {
                    return Ok(b.checked_pow(e).map(Item::Integer).into_iter().collect());
                }
                let y = ops::decimal(y, name)?;
                let v = if call.func == Func::Log {
                    x.ln() / y.ln()
                } else {
                    x.powf(y)
                };
                Ok(v.is_finite()
                    .then_some(Item::Decimal(v))
                    .into_iter()
                    .collect())
            }
            _ => {
                let s = text_of(item, name)?;
                string_function(call, s, arg)
            }
        }
    }
}

fn string_function<'a>(
    call: &Call,
    s: Cow<'a, str>,
    arg: &dyn Fn(usize) -> EvalResult<'a>,
) -> EvalResult<'a> {
    let name = call.func.name();
    let str_arg = |i: usize| -> Result<Option<Cow<'a, str>>, EvalError> {
        single(&arg(i)?, name)?
            .map(|a| text_of(a, name))
            .transpose()
    };
    let int_arg = |i: usize| -> Result<Option<i64>, EvalError> {
        single(&arg(i)?, name)?
            .map(|a| ops::integer(a, name))
            .transpose()
    };
    let string = |s: Cow<'a, str>| Ok(vec![Item::String(s)]);
    let boolean_out = |b: bool| Ok(vec![Item::Boolean(b)]);
    let int_out = |n: usize| Ok(vec![Item::Integer(i64::try_from(n).unwrap_or(i64::MAX))]);
    // Each string argument that is empty makes the result empty.
    macro_rules! arg {
        ($i:expr) => {
            match str_arg($i)? {
                Some(a) => a,
                None => return Ok(Vec::new()),
            }
        };
    }
    match call.func {
        Func::Length => int_out(s.chars().count()),
        Func::Upper => string(Cow::Owned(s.to_uppercase())),
        Func::Lower => string(Cow::Owned(s.to_lowercase())),
        Func::Trim => string(match s {
            Cow::Borrowed(b) => Cow::Borrowed(b.trim()),
            Cow::Owned(o) => Cow::Owned(o.trim().to_owned()),
        }),
        Func::ToChars => Ok(s
            .chars()
            .map(|c| Item::String(Cow::Owned(c.to_string())))
            .collect()),
        Func::StartsWith => boolean_out(s.starts_with(&*arg!(0))),
        Func::EndsWith => boolean_out(s.ends_with(&*arg!(0))),
        Func::Contains => boolean_out(s.contains(&*arg!(0))),
        Func::IndexOf => {
            let needle = arg!(0);
            Ok(vec![Item::Integer(match s.find(&*needle) {
                Some(byte) => i64::try_from(s[..byte].chars().count()).unwrap_or(i64::MAX),
                None => -1,
            })])
        }
        Func::Substring => {
            let Some(start) = int_arg(0)? else {
                return Ok(Vec::new());
            };
            let len = int_arg(1)?;
            let count = s.chars().count();
            let Ok(start) = usize::try_from(start) else {
                return Ok(Vec::new());
            };
            if start >= count {
                return Ok(Vec::new());
            }
            let take = len.map_or(usize::MAX, |l| usize::try_from(l.max(0)).unwrap_or(0));
            let sub: String = s.chars().skip(start).take(take).collect();
            string(Cow::Owned(sub))
        }
        Func::Replace => {
            let (pattern, with) = (arg!(0), arg!(1));
            string(Cow::Owned(s.replace(&*pattern, &with)))
        }
        Func::Matches | Func::ReplaceMatches => {
            let compiled;
            let re = match &call.regex {
                Some(re) => re,
                None => {
                    let pattern = arg!(0);
                    compiled = Regex::new(&pattern).map_err(|e| EvalError::InvalidRegex {
                        pattern: pattern.into_owned(),
                        message: e.to_string(),
                    })?;
                    &compiled
                }
            };
            if call.func == Func::Matches {
                boolean_out(re.is_match(&s))
            } else {
                let with = arg!(1);
                string(Cow::Owned(re.replace_all(&s, &*with).into_owned()))
            }
        }
        Func::Split => {
            let sep = arg!(0);
            Ok(s.split(&*sep)
                .map(|p| Item::String(Cow::Owned(p.to_owned())))
                .collect())
        }
        _ => Err(EvalError::WrongType {
            operation: name,
            expected: "a supported input",
            found: "this item",
        }),
    }
}

fn is_primitive(item: &Item<'_>) -> bool {
    !matches!(
        item,
        Item::Node {
            value: Value::Object(_) | Value::Array(_),
            ..
        } | Item::Resolved { .. }
    )
}

fn children<'a>(input: &[Item<'a>]) -> Collection<'a> {
    let mut out = Vec::new();
    for item in input {
        if let Item::Node {
            value: Value::Object(map),
            ..
        } = item
        {
            for (key, v) in map {
                // `_name` holds a primitive's extensions, not a child of its own.
                if !key.starts_with('_') && key != "resourceType" {
                    push_value(v, key, None, &mut out);
                }
            }
        }
    }
    out
}

fn descendants<'a>(input: &[Item<'a>]) -> EvalResult<'a> {
    let mut out = children(input);
    let mut i = 0;
    while i < out.len() {
        let more = children(std::slice::from_ref(&out[i]));
        out.extend(more);
        if out.len() > MAX_ITEMS {
            return Err(EvalError::TooManyItems {
                operation: "descendants",
                limit: MAX_ITEMS,
            });
        }
        i += 1;
    }
    Ok(out)
}

/// `Patient/123`, `http://x/fhir/Patient/123`, `Patient/123/_history/2`, and canonical
/// URLs with `|version`; None when the text names no R4 resource type and valid id.
pub(crate) fn parse_reference(reference: &str) -> Option<(&str, &str)> {
    let r = reference.split(['|', '#']).next()?;
    let r = r.find("/_history/").map_or(r, |i| &r[..i]);
    let (rest, id) = r.rsplit_once('/')?;
    let resource_type = rest.rsplit_once('/').map_or(rest, |(_, t)| t);
    let id_ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (is_resource_type(resource_type) && id_ok).then_some((resource_type, id))
}

fn temporal_target(func: Func) -> TemporalType {
    match func {
        Func::ToDate | Func::ConvertsToDate => TemporalType::Date,
        Func::ToDateTime | Func::ConvertsToDateTime => TemporalType::DateTime,
        _ => TemporalType::Time,
    }
}
