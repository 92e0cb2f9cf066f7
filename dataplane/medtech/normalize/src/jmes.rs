//! JMESPath with Azure's extra functions (add, subtract, multiply, divide, pow, insertString,
//! fromUnixTimestamp, fromUnixTimestampMs).
//!
//! The workspace turns on serde_json's `arbitrary_precision`, under which a `Number` serializes
//! as a one-entry map. jmespath converts nested `Value`s (and its own backtick literals) through
//! serde, so numbers would arrive as objects: values are therefore converted by walking them
//! here, and literals in compiled expressions are repaired the same way.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use chrono::{DateTime, SecondsFormat};
use jmespath::ast::Ast;
use jmespath::functions::{ArgumentType, CustomFunction, Signature};
use jmespath::{Context, ErrorReason, Expression, JmespathError, Rcvar, Runtime, Variable};
use serde_json::{Number, Value};

/// serde_json's private marker for an arbitrary-precision number seen through serde.
const NUMBER_TOKEN: &str = "$serde_json::private::Number";

type BinaryOp = fn(f64, f64) -> f64;

static RUNTIME: LazyLock<Runtime> = LazyLock::new(|| {
    let mut runtime = Runtime::new();
    runtime.register_builtin_functions();
    let numbers = || vec![ArgumentType::Number, ArgumentType::Number];
    let arithmetic: [(&str, BinaryOp); 5] = [
        ("add", |a, b| a + b),
        ("subtract", |a, b| a - b),
        ("multiply", |a, b| a * b),
        ("divide", |a, b| a / b),
        ("pow", f64::powf),
    ];
    for (name, op) in arithmetic {
        runtime.register_function(
            name,
            Box::new(CustomFunction::new(
                Signature::new(numbers(), None),
                Box::new(move |args: &[Rcvar], ctx: &mut Context<'_>| {
                    let (a, b) = (number_arg(&args[0]), number_arg(&args[1]));
                    if name == "divide" && b == 0.0 {
                        return Err(error(ctx, "divide: division by zero"));
                    }
                    Ok(Rcvar::new(Variable::Number(number(op(a, b)).ok_or_else(
                        || error(ctx, &format!("{name}: the result is not a finite number")),
                    )?)))
                }),
            )),
        );
    }
    runtime.register_function(
        "insertString",
        Box::new(CustomFunction::new(
            Signature::new(
                vec![
                    ArgumentType::String,
                    ArgumentType::String,
                    ArgumentType::Number,
                ],
                None,
            ),
            Box::new(insert_string),
        )),
    );
    for (name, per_second) in [("fromUnixTimestamp", 1i64), ("fromUnixTimestampMs", 1000)] {
        runtime.register_function(
            name,
            Box::new(CustomFunction::new(
                Signature::new(vec![ArgumentType::Number], None),
                Box::new(move |args: &[Rcvar], ctx: &mut Context<'_>| {
                    // .NET's FromUnixTimeSeconds/Milliseconds take whole numbers.
                    let units = number_arg(&args[0]).trunc() as i64;
                    let time = DateTime::from_timestamp(
                        units.div_euclid(per_second),
                        (units.rem_euclid(per_second) * (1_000_000_000 / per_second)) as u32,
                    )
                    .ok_or_else(|| error(ctx, &format!("{name}: {units} is out of range")))?;
                    Ok(Rcvar::new(Variable::String(
                        time.to_rfc3339_opts(SecondsFormat::AutoSi, false),
                    )))
                }),
            )),
        );
    }
    runtime
});

pub(crate) fn runtime() -> &'static Runtime {
    &RUNTIME
}

fn number_arg(arg: &Rcvar) -> f64 {
    // The signature has already checked that it is a number.
    arg.as_number().unwrap_or(f64::NAN)
}

/// Whole results print without a fraction ("72", as .NET prints 71 + 1), others as shortest f64.
fn number(value: f64) -> Option<Number> {
    if value.fract() == 0.0 && value.abs() < 9.0e15 {
        Some(Number::from(value as i64))
    } else {
        Number::from_f64(value)
    }
}

fn error(ctx: &Context<'_>, message: &str) -> JmespathError {
    JmespathError::new(
        ctx.expression,
        ctx.offset,
        ErrorReason::Parse(message.to_owned()),
    )
}

fn insert_string(args: &[Rcvar], ctx: &mut Context<'_>) -> jmespath::SearchResult {
    let original = args[0].as_string().map(String::as_str).unwrap_or_default();
    let to_insert = args[1].as_string().map(String::as_str).unwrap_or_default();
    let position = number_arg(&args[2]);
    let length = original.chars().count();
    if position.fract() != 0.0 || position < 0.0 || position > length as f64 {
        return Err(error(
            ctx,
            &format!("insertString: position {position} is outside 0..={length}"),
        ));
    }
    let at = original
        .char_indices()
        .nth(position as usize)
        .map_or(original.len(), |(i, _)| i);
    let mut result = String::with_capacity(original.len() + to_insert.len());
    result.push_str(&original[..at]);
    result.push_str(to_insert);
    result.push_str(&original[at..]);
    Ok(Rcvar::new(Variable::String(result)))
}

/// Compiles against Azure's runtime. Unknown functions are refused here rather than on the
/// first message (jmespath itself only notices them when called).
pub(crate) fn compile(expression: &str) -> Result<Expression<'static>, String> {
    let compiled = RUNTIME
        .compile(expression)
        .map_err(|e| format!("invalid JMESPath {expression:?}: {}", e.reason))?;
    let mut ast = compiled.as_ast().clone();
    repair(&mut ast)?;
    Ok(Expression::new(expression, ast, &RUNTIME))
}

/// Fixes literal numbers and checks function names, everywhere in the tree.
fn repair(ast: &mut Ast) -> Result<(), String> {
    match ast {
        Ast::Literal { value, .. } => *value = repair_var(value),
        Ast::Function { name, args, .. } => {
            if RUNTIME.get_function(name).is_none() {
                return Err(format!("unknown JMESPath function {name}()"));
            }
            for arg in args {
                repair(arg)?;
            }
        }
        Ast::Comparison { lhs, rhs, .. }
        | Ast::Projection { lhs, rhs, .. }
        | Ast::And { lhs, rhs, .. }
        | Ast::Or { lhs, rhs, .. }
        | Ast::Subexpr { lhs, rhs, .. } => {
            repair(lhs)?;
            repair(rhs)?;
        }
        Ast::Condition {
            predicate, then, ..
        } => {
            repair(predicate)?;
            repair(then)?;
        }
        Ast::Expref { ast, .. } => repair(ast)?,
        Ast::Flatten { node, .. } | Ast::Not { node, .. } | Ast::ObjectValues { node, .. } => {
            repair(node)?
        }
        Ast::MultiList { elements, .. } => {
            for element in elements {
                repair(element)?;
            }
        }
        Ast::MultiHash { elements, .. } => {
            for element in elements {
                repair(&mut element.value)?;
            }
        }
        Ast::Identity { .. } | Ast::Field { .. } | Ast::Index { .. } | Ast::Slice { .. } => {}
    }
    Ok(())
}

fn repair_var(var: &Rcvar) -> Rcvar {
    match &**var {
        Variable::Object(map) => {
            if map.len() == 1
                && let Some(Variable::String(digits)) = map.get(NUMBER_TOKEN).map(|v| &**v)
                && let Ok(n) = digits.parse::<Number>()
            {
                return Rcvar::new(Variable::Number(n));
            }
            Rcvar::new(Variable::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), repair_var(v)))
                    .collect(),
            ))
        }
        Variable::Array(items) => {
            Rcvar::new(Variable::Array(items.iter().map(repair_var).collect()))
        }
        _ => var.clone(),
    }
}

pub(crate) fn to_var(value: &Value) -> Rcvar {
    Rcvar::new(match value {
        Value::Null => Variable::Null,
        Value::Bool(b) => Variable::Bool(*b),
        Value::Number(n) => Variable::Number(n.clone()),
        Value::String(s) => Variable::String(s.clone()),
        Value::Array(items) => Variable::Array(items.iter().map(to_var).collect()),
        Value::Object(map) => Variable::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), to_var(v)))
                .collect::<BTreeMap<_, _>>(),
        ),
    })
}

pub(crate) fn to_value(var: &Variable) -> Value {
    match var {
        Variable::Null | Variable::Expref(_) => Value::Null,
        Variable::Bool(b) => Value::Bool(*b),
        Variable::Number(n) => Value::Number(n.clone()),
        Variable::String(s) => Value::String(s.clone()),
        Variable::Array(items) => Value::Array(items.iter().map(|v| to_value(v)).collect()),
        Variable::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), to_value(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests;
