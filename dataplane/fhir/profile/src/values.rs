//! Comparing instance values with a profile's fixed and pattern values, and finding the
//! codes a bound element carries.

use serde_json::Value;

/// `fixed[x]`: the same value, nothing more and nothing less. Numbers compare by value
/// (`1.0` is `1`), as the JSON text of a decimal is not its meaning.
pub(crate) fn same(instance: &Value, fixed: &Value) -> bool {
    match (instance, fixed) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Value::Object(a), Value::Object(b)) => {
            a.len() == b.len() && a.iter().all(|(k, v)| b.get(k).is_some_and(|w| same(v, w)))
        }
        _ => instance == fixed,
    }
}

/// `pattern[x]`: everything the pattern has, the instance has too (it may hold more); each
/// repetition of the pattern must be matched by one of the instance's.
pub(crate) fn contains(instance: &Value, pattern: &Value) -> bool {
    match (instance, pattern) {
        (Value::Number(a), Value::Number(b)) => numbers_equal(a, b),
        (Value::Object(a), Value::Object(b)) => b
            .iter()
            .all(|(k, p)| a.get(k).is_some_and(|v| contains(v, p))),
        (Value::Array(a), Value::Array(b)) => b.iter().all(|p| a.iter().any(|v| contains(v, p))),
        // A pattern for one repetition, met by any repetition.
        (Value::Array(a), p) => a.iter().any(|v| contains(v, p)),
        _ => instance == pattern,
    }
}

/// How an instance value stands to a `minValue[x]`/`maxValue[x]`: numbers by value, Quantities
/// by value when their units agree, dates and times as their ISO 8601 text (which orders them
/// at equal precision); None when they cannot be compared (then nothing is claimed).
pub(crate) fn compare(instance: &Value, limit: &Value) -> Option<std::cmp::Ordering> {
    match (instance, limit) {
        (Value::Number(a), Value::Number(b)) => a.as_f64()?.partial_cmp(&b.as_f64()?),
        (Value::Object(a), Value::Object(b)) => {
            let unit = |o: &serde_json::Map<String, Value>| {
                o.get("code").or_else(|| o.get("unit")).cloned()
            };
            if unit(a) != unit(b) || a.get("system") != b.get("system") {
                return None;
            }
            compare(a.get("value")?, b.get("value")?)
        }
        (Value::String(a), Value::String(b)) if a.len() == b.len() => Some(a.cmp(b)),
        _ => None,
    }
}

fn numbers_equal(a: &serde_json::Number, b: &serde_json::Number) -> bool {
    if a.to_string() == b.to_string() {
        return true;
    }
    matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if x == y)
}

/// Short JSON text of a value for messages.
pub(crate) fn show(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 120 {
        let cut: String = text.chars().take(117).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The (system, code) pairs a bound element carries: a `code`/`string`/`uri` is one code
/// without system; a Coding or Quantity its own; a CodeableConcept each of its codings.
/// `None` for a shape that carries no code at all.
pub(crate) fn codings(v: &Value) -> Option<Vec<(Option<&str>, &str)>> {
    match v {
        Value::String(code) => Some(vec![(None, code.as_str())]),
        Value::Object(o) if o.contains_key("coding") => Some(
            o["coding"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|c| coding(c))
                .collect(),
        ),
        Value::Object(_) => Some(coding(v).into_iter().collect()),
        _ => None,
    }
}

fn coding(c: &Value) -> Option<(Option<&str>, &str)> {
    let code = c.get("code").and_then(Value::as_str)?;
    Some((c.get("system").and_then(Value::as_str), code))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fixed_is_exact_and_pattern_is_contained() {
        let cc = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"},
            {"system": "http://snomed.info/sct", "code": "364075005"}], "text": "HR"});
        let pat = json!({"coding": [{"system": "http://loinc.org", "code": "8867-4"}]});
        assert!(contains(&cc, &pat));
        assert!(!same(&cc, &pat));
        assert!(!contains(
            &cc,
            &json!({"coding": [{"system": "http://loinc.org", "code": "9279-1"}]})
        ));
        assert!(same(
            &json!({"a": 1.0, "b": [1, 2]}),
            &json!({"b": [1, 2], "a": 1})
        ));
        assert!(!same(&json!([1, 2]), &json!([2, 1])));
        assert!(contains(
            &json!([{"use": "official"}, {"use": "usual"}]),
            &json!({"use": "usual"})
        ));
        assert!(!contains(&json!("abc"), &json!("ab")));
    }

    #[test]
    fn codings_by_shape() {
        assert_eq!(codings(&json!("male")), Some(vec![(None, "male")]));
        assert_eq!(
            codings(&json!({"coding": [{"system": "s", "code": "c"}, {"display": "no code"}]})),
            Some(vec![(Some("s"), "c")])
        );
        assert_eq!(
            codings(&json!({"value": 1, "system": "http://unitsofmeasure.org", "code": "mg"})),
            Some(vec![(Some("http://unitsofmeasure.org"), "mg")])
        );
        assert_eq!(codings(&json!(true)), None);
    }
}
