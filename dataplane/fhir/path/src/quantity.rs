//! Quantities: literals (`4 'mg'`, `3 days`), FHIR Quantity elements, and how two of them
//! compare. Units convert by UCUM (the `ucum-units` crate, as search's unit comparison does);
//! a unit UCUM does not know only compares with the very same unit.
//!
//! Calendar durations follow FHIRPath N1 §5.6: `week` and shorter are fixed lengths equal
//! to their UCUM units (`7 days = 1 'wk'`), but `year` and `month` vary in length, so they
//! only compare with themselves (`1 year > 1 'a'` is empty).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::Value;

use crate::Item;

pub(crate) const UCUM: &str = "http://unitsofmeasure.org";

/// The calendar duration keywords, singular; literals also accept the plurals.
pub(crate) const CALENDAR_UNITS: &[&str] = &[
    "year",
    "month",
    "week",
    "day",
    "hour",
    "minute",
    "second",
    "millisecond",
];

/// The singular calendar keyword for `word` (`days` -> `day`), if it is one.
pub(crate) fn calendar_unit(word: &str) -> Option<&'static str> {
    let singular = word.strip_suffix('s').unwrap_or(word);
    CALENDAR_UNITS.iter().find(|u| **u == singular).copied()
}

/// The UCUM code of a fixed-length calendar keyword (`day` is `d`); other units are UCUM.
fn ucum_code(unit: &str) -> &str {
    match unit {
        "millisecond" => "ms",
        "second" => "s",
        "minute" => "min",
        "hour" => "h",
        "day" => "d",
        "week" => "wk",
        u => u,
    }
}

/// The quantity an item stands for: a Quantity value, or a FHIR Quantity element (its UCUM
/// code when coded in UCUM, else its unit text, else unitless).
pub(crate) fn of<'x>(item: &'x Item<'_>) -> Option<(f64, &'x str)> {
    match item {
        Item::Quantity { value, unit } => Some((*value, unit)),
        Item::Node {
            value: Value::Object(map),
            ..
        } => {
            let value = map.get("value")?.as_f64()?;
            let s = |k: &str| map.get(k).and_then(Value::as_str);
            let unit = match (s("system"), s("code"), s("unit")) {
                (Some(UCUM), Some(code), _) => code,
                (_, _, Some(unit)) => unit,
                (_, Some(code), None) => code,
                _ => "1",
            };
            Some((value, unit))
        }
        _ => None,
    }
}

/// Both quantities in a common unit, or None when their units do not convert.
fn common(a: (f64, &str), b: (f64, &str)) -> Option<(f64, f64)> {
    if a.1 == b.1 {
        return Some((a.0, b.0));
    }
    let calendar_variable = |u: &str| matches!(u, "year" | "month");
    if calendar_variable(a.1) || calendar_variable(b.1) {
        return None;
    }
    let (ua, ub) = (ucum_code(a.1), ucum_code(b.1));
    if ua == ub {
        return Some((a.0, b.0));
    }
    if !ucum::is_comparable(ua, ub).ok()? {
        return None;
    }
    // Expressed in `a`'s unit, so equivalence can round to `a`'s written precision.
    Some((a.0, ucum::convert(b.0, ub, ua).ok()?))
}

/// `=`: None when the units do not convert (the result is empty).
pub(crate) fn equal(a: (f64, &str), b: (f64, &str)) -> Option<bool> {
    let (x, y) = common(a, b)?;
    Some((x - y).abs() <= 1e-12 * x.abs().max(y.abs()))
}

/// `~`: equal after rounding to the precision of the less precise value.
pub(crate) fn equivalent(a: (f64, &str), b: (f64, &str)) -> bool {
    common(a, b).is_some_and(|(x, y)| crate::ops::decimal_equivalent(x, y))
}

pub(crate) fn compare(a: (f64, &str), b: (f64, &str)) -> Option<Ordering> {
    let (x, y) = common(a, b)?;
    if equal(a, b) == Some(true) {
        return Some(Ordering::Equal);
    }
    x.partial_cmp(&y)
}

/// `a + b` or `a - b` in `a`'s unit; None when the units do not convert.
pub(crate) fn add(a: (f64, &str), b: (f64, &str), sign: f64) -> Option<f64> {
    let (x, y) = common(a, b)?;
    Some(crate::ops::tidy(x + sign * y))
}

/// `value` of `from` expressed in `to`, when the units convert.
pub(crate) fn convert(from: (f64, &str), to: &str) -> Option<f64> {
    common((1.0, to), from).map(|(_, v)| crate::ops::tidy(v))
}

/// `toQuantity()` of a string: a number, optionally followed by a quoted UCUM unit or a
/// calendar keyword (`'4 days'`, `'1 \'wk\''`).
pub(crate) fn parse(s: &str) -> Option<(f64, Cow<'static, str>)> {
    let s = s.trim();
    let (number, unit) = match s.split_once(' ') {
        Some((n, u)) => (n, Some(u.trim())),
        None => (s, None),
    };
    let body = number.strip_prefix(['+', '-']).unwrap_or(number);
    let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let unit = match unit {
        None => Cow::Borrowed("1"),
        Some(u) => match u.strip_prefix('\'').and_then(|u| u.strip_suffix('\'')) {
            Some(quoted) if !quoted.is_empty() => Cow::Owned(quoted.to_owned()),
            _ => Cow::Borrowed(calendar_unit(u)?),
        },
    };
    Some((value, unit))
}

/// The text form: `4 'mg'`, or `3 days` for calendar keywords.
pub(crate) fn format(value: f64, unit: &str) -> String {
    if CALENDAR_UNITS.contains(&unit) {
        let plural = if value == 1.0 { "" } else { "s" };
        format!("{value} {unit}{plural}")
    } else {
        format!("{value} '{unit}'")
    }
}
