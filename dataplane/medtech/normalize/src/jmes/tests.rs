use serde_json::json;

use super::*;

fn eval(expression: &str, data: serde_json::Value) -> Value {
    let expr = compile(expression).unwrap();
    let mut ctx = Context::new(expr.as_str(), runtime());
    to_value(&jmespath::interpret(&to_var(&data), expr.as_ast(), &mut ctx).unwrap())
}

fn fails(expression: &str, data: serde_json::Value) -> bool {
    let expr = compile(expression).unwrap();
    let mut ctx = Context::new(expr.as_str(), runtime());
    jmespath::interpret(&to_var(&data), expr.as_ast(), &mut ctx).is_err()
}

#[test]
fn arithmetic_keeps_integers_integral() {
    let data = json!({"matchedToken": {"a": 71, "b": 1.5, "c": 4}});
    assert_eq!(
        eval("add(matchedToken.a, `1`)", data.clone()).to_string(),
        "72"
    );
    assert_eq!(
        eval("add(matchedToken.b, `1`)", data.clone()).to_string(),
        "2.5"
    );
    assert_eq!(
        eval("subtract(matchedToken.a, `1.5`)", data.clone()).to_string(),
        "69.5"
    );
    assert_eq!(
        eval("multiply(matchedToken.c, `2.5`)", data.clone()).to_string(),
        "10"
    );
    assert_eq!(
        eval("divide(matchedToken.a, `2`)", data.clone()).to_string(),
        "35.5"
    );
    assert_eq!(
        eval("pow(matchedToken.c, `2`)", data.clone()).to_string(),
        "16"
    );
    assert!(fails("divide(matchedToken.a, `0`)", data.clone()));
    assert!(fails("add(matchedToken.a, 'x')", data));
}

#[test]
fn literals_and_builtins_survive_arbitrary_precision() {
    let data = json!({"r": [{"v": 1}, {"v": 5}, {"v": 9}]});
    assert_eq!(eval("r[?v > `3`].v", data.clone()), json!([5, 9]));
    assert_eq!(eval("`{\"k\": 2}`", data.clone()), json!({"k": 2}));
    assert_eq!(eval("length(r)", data.clone()), json!(3));
    assert_eq!(eval("max(r[].v)", data), json!(9));
}

#[test]
fn insert_string() {
    let data = json!({"s": "2023-01-01T1000"});
    assert_eq!(
        eval("insertString(s, ':', `13`)", data.clone()),
        json!("2023-01-01T10:00")
    );
    assert_eq!(
        eval("insertString('ab', 'X', `0`)", data.clone()),
        json!("Xab")
    );
    assert_eq!(
        eval("insertString('ab', 'X', `2`)", data.clone()),
        json!("abX")
    );
    assert!(fails("insertString('ab', 'X', `3`)", data));
}

#[test]
fn unix_timestamps() {
    let data = json!({"s": 1675245600, "ms": 1675245600123_i64});
    assert_eq!(
        eval("fromUnixTimestamp(s)", data.clone()),
        json!("2023-02-01T10:00:00+00:00")
    );
    assert_eq!(
        eval("fromUnixTimestampMs(ms)", data),
        json!("2023-02-01T10:00:00.123+00:00")
    );
}

#[test]
fn unknown_functions_are_refused_when_compiled() {
    assert!(compile("nope(a)").unwrap_err().contains("nope"));
    assert!(compile("a[").is_err());
}
