//! The conversion functions (`toX()` / `convertsToX()`): which items convert to which
//! System type, and to what value.

use std::borrow::Cow;

use crate::Item;
use crate::ops::{self, text};
use crate::quantity;
use crate::temporal::{self, Kind};

pub(crate) fn to_boolean(item: &Item<'_>) -> Option<bool> {
    match ops::prim(item) {
        ops::Prim::Bool(b) => Some(b),
        ops::Prim::Int(1) => Some(true),
        ops::Prim::Int(0) => Some(false),
        ops::Prim::Dec(1.0) => Some(true),
        ops::Prim::Dec(0.0) => Some(false),
        ops::Prim::Str(s) => match s.to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "y" | "1" | "1.0" => Some(true),
            "false" | "f" | "no" | "n" | "0" | "0.0" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

pub(crate) fn to_integer(item: &Item<'_>) -> Option<i64> {
    match ops::prim(item) {
        ops::Prim::Int(i) => Some(i),
        ops::Prim::Bool(b) => Some(i64::from(b)),
        ops::Prim::Str(s) => {
            let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        _ => None,
    }
}

pub(crate) fn to_decimal(item: &Item<'_>) -> Option<f64> {
    match ops::prim(item) {
        ops::Prim::Int(i) => Some(i as f64),
        ops::Prim::Dec(d) => Some(d),
        ops::Prim::Bool(b) => Some(if b { 1.0 } else { 0.0 }),
        ops::Prim::Str(s) => {
            let body = s.strip_prefix(['+', '-']).unwrap_or(s);
            let (int, frac) = body.split_once('.').unwrap_or((body, "0"));
            let ok = !int.is_empty()
                && !frac.is_empty()
                && int.bytes().all(|b| b.is_ascii_digit())
                && frac.bytes().all(|b| b.is_ascii_digit());
            if ok { s.parse().ok() } else { None }
        }
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TemporalType {
    Date,
    DateTime,
    Time,
}

/// `toDate()`, `toDateTime()`, `toTime()` of one item. A DateTime converts to its date part
/// and a Date to a DateTime of date precision; strings must be in FHIRPath literal form
/// (without the `@`), and a Time keeps no time zone.
pub(crate) fn to_temporal<'a>(item: &Item<'a>, target: TemporalType) -> Option<Item<'a>> {
    let (s, source) = match item {
        Item::Date(s) => (s.clone(), Some(TemporalType::Date)),
        Item::DateTime(s) => (s.clone(), Some(TemporalType::DateTime)),
        Item::Time(s) => (s.clone(), Some(TemporalType::Time)),
        Item::Node {
            value: serde_json::Value::String(s),
            fhir_type,
        } => (
            Cow::Borrowed(s.as_str()),
            match fhir_type.as_deref() {
                Some("date") => Some(TemporalType::Date),
                Some("dateTime" | "instant") => Some(TemporalType::DateTime),
                Some("time") => Some(TemporalType::Time),
                _ => None,
            },
        ),
        Item::String(_) => (text(item)?, None),
        _ => return None,
    };
    let typed = source.is_some();
    let source = match source {
        Some(t) => t,
        None if !s.contains(':') && !s.contains('T') && temporal::is_valid(&s, Kind::Date) => {
            TemporalType::Date
        }
        None if temporal::is_valid(&s, Kind::Date) => TemporalType::DateTime,
        None if !s.starts_with('T') && temporal::is_valid(&s, Kind::Time) => TemporalType::Time,
        None => return None,
    };
    let date_part = |s: Cow<'a, str>| match s {
        Cow::Borrowed(b) => Cow::Borrowed(b.split('T').next().unwrap_or(b)),
        Cow::Owned(o) => Cow::Owned(o.split('T').next().unwrap_or(&o).to_owned()),
    };
    Some(match (source, target) {
        (TemporalType::Time, TemporalType::Time) => Item::Time(s),
        (TemporalType::Time, _) | (_, TemporalType::Time) => return None,
        // A DateTime value drops its time, but a string must already be a date.
        (TemporalType::DateTime, TemporalType::Date) if !typed => return None,
        (_, TemporalType::Date) => Item::Date(date_part(s)),
        (_, TemporalType::DateTime) => Item::DateTime(s),
    })
}

/// `toQuantity()` of one item: numbers and Booleans become unitless quantities, strings
/// are read as quantity literals.
pub(crate) fn to_quantity<'a>(item: &Item<'a>) -> Option<(f64, Cow<'a, str>)> {
    match ops::prim(item) {
        ops::Prim::Quantity(value, unit) => Some((value, Cow::Owned(unit.to_owned()))),
        ops::Prim::Int(i) => Some((i as f64, Cow::Borrowed("1"))),
        ops::Prim::Dec(d) => Some((d, Cow::Borrowed("1"))),
        ops::Prim::Bool(b) => Some((if b { 1.0 } else { 0.0 }, Cow::Borrowed("1"))),
        ops::Prim::Str(s) => quantity::parse(s),
        ops::Prim::Complex(_)
            if matches!(item.type_name(), Some("Quantity" | "Age" | "Duration")) =>
        {
            quantity::of(item).map(|(v, u)| (v, Cow::Owned(u.to_owned())))
        }
        _ => None,
    }
}
