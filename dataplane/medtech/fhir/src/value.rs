use chrono::{DateTime, TimeDelta, Utc};
use hds_medtech_normalize::{ErrorType, MedTechError};
use serde_json::Number;

/// More slots than this in one SampledData would make a single Observation of hundreds of
/// megabytes (a Day window at 1 ms is 86.4 million); refusing beats exhausting memory.
pub(crate) const MAX_SAMPLED_SLOTS: i64 = 10_000_000;

/// A measured value as a FHIR decimal, keeping its digits. Accepts what .NET's
/// `decimal.Parse` does for plain numbers (`+5`, `.5`, `5.`, leading zeros, spaces) so Azure
/// templates behave the same, and refuses NaN, infinities and anything that is not a number.
pub(crate) fn parse_decimal(raw: &str) -> Option<Number> {
    let s = raw.trim();
    let s = s.strip_prefix('+').unwrap_or(s);
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !digits(int) || !digits(frac) {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut text = String::with_capacity(s.len() + 1);
    if neg {
        text.push('-');
    }
    text.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        text.push('.');
        text.push_str(frac);
    }
    if let Some(e) = exponent {
        let unsigned = e.strip_prefix(['+', '-']).unwrap_or(e);
        if unsigned.is_empty() || !digits(unsigned) {
            return None;
        }
        text.push('e');
        text.push_str(e);
    }
    let n: Number = serde_json::from_str(&text).ok()?;
    // Huge exponents parse as infinity: not a value a FHIR server can store.
    n.as_f64().filter(|f| f.is_finite())?;
    Some(n)
}

pub(crate) fn invalid_value(value_name: &str, raw: &str) -> MedTechError {
    MedTechError::new(
        ErrorType::FhirConversionError,
        "InvalidQuantityFhirValue",
        format!("value {raw:?} of {value_name:?} is not a finite decimal number"),
    )
}

/// A SampledData period in milliseconds as whole nanoseconds; `None` unless positive.
pub(crate) fn period_nanos(ms: &Number) -> Option<i64> {
    let ms = ms.as_f64()?;
    let ns = (ms * 1_000_000.0).round();
    (ns.is_finite() && ns >= 1.0 && ns < i64::MAX as f64).then_some(ns as i64)
}

/// One sample: its time and its text as it goes into `data`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Point {
    pub time: DateTime<Utc>,
    pub value: String,
}

/// The samples an existing `data` string holds (slot i at `start + i * period`, "E" slots
/// dropped), and the time of its last slot, so a merge never shortens stored data.
pub(crate) fn decode_sampled(
    data: &str,
    start: DateTime<Utc>,
    period_ns: i64,
) -> (Vec<Point>, Option<DateTime<Utc>>) {
    let mut points = Vec::new();
    let mut last = None;
    for (i, token) in data.split_ascii_whitespace().enumerate() {
        let Some(time) = (i as i64)
            .checked_mul(period_ns)
            .and_then(|ns| start.checked_add_signed(TimeDelta::nanoseconds(ns)))
        else {
            break;
        };
        last = Some(time);
        if token != "E" {
            points.push(Point {
                time,
                value: token.to_owned(),
            });
        }
    }
    (points, last)
}

/// Lays `points` into slots of `period_ns` from `start` up to the later of the latest point
/// and `end_at_least`. Points are taken in order after a stable sort by time, so within a slot
/// the latest time wins and, on equal times, the one given later.
pub(crate) fn build_sampled(
    mut points: Vec<Point>,
    start: DateTime<Utc>,
    end_at_least: Option<DateTime<Utc>>,
    period_ns: i64,
) -> Result<String, MedTechError> {
    points.sort_by_key(|p| p.time);
    let end = points.iter().map(|p| p.time).chain(end_at_least).max();
    let Some(end) = end.filter(|e| *e >= start) else {
        return Ok(String::new());
    };
    let too_large = || {
        MedTechError::new(
            ErrorType::FhirConversionError,
            "SampledDataTooLarge",
            format!("more than {MAX_SAMPLED_SLOTS} SampledData slots"),
        )
    };
    let slot_of = |t: DateTime<Utc>| (t - start).num_nanoseconds().map(|ns| ns / period_ns);
    let count = slot_of(end).ok_or_else(too_large)? + 1;
    if count > MAX_SAMPLED_SLOTS {
        return Err(too_large());
    }
    let mut slots: Vec<Option<String>> = vec![None; count as usize];
    for p in points.into_iter().filter(|p| p.time >= start) {
        if let Some(i) = slot_of(p.time) {
            slots[i as usize] = Some(p.value);
        }
    }
    let tokens: Vec<&str> = slots.iter().map(|s| s.as_deref().unwrap_or("E")).collect();
    Ok(tokens.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn decimals_keep_digits_and_refuse_non_numbers() {
        let text = |s: &str| parse_decimal(s).map(|n| n.to_string());
        assert_eq!(text("72"), Some("72".into()));
        assert_eq!(text("98.50"), Some("98.50".into()));
        assert_eq!(text(" +5 "), Some("5".into()));
        assert_eq!(text(".5"), Some("0.5".into()));
        assert_eq!(text("5."), Some("5".into()));
        assert_eq!(text("-007.1"), Some("-7.1".into()));
        // serde_json writes exponents with an explicit sign.
        assert_eq!(text("1e3"), Some("1e+3".into()));
        for bad in [
            "NaN",
            "nan",
            "Infinity",
            "-Infinity",
            "inf",
            "abc",
            "",
            "1e400",
            ".",
            "1e",
            "1,5",
            "0x10",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn periods_must_be_positive() {
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(period_nanos(&n("1000")), Some(1_000_000_000));
        assert_eq!(period_nanos(&n("0.5")), Some(500_000));
        assert_eq!(period_nanos(&n("0")), None);
        assert_eq!(period_nanos(&n("-1")), None);
    }

    #[test]
    fn sampled_data_round_trips() {
        let start = Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap();
        let at = |s: i64, v: &str| Point {
            time: start + TimeDelta::seconds(s),
            value: v.into(),
        };
        let data = build_sampled(
            vec![at(3, "b"), at(0, "a"), at(3, "c")],
            start,
            None,
            1_000_000_000,
        )
        .unwrap();
        assert_eq!(data, "a E E c");
        let (points, last) = decode_sampled(&data, start, 1_000_000_000);
        assert_eq!(points, vec![at(0, "a"), at(3, "c")]);
        assert_eq!(last, Some(start + TimeDelta::seconds(3)));
        let padded = build_sampled(
            points,
            start,
            Some(start + TimeDelta::seconds(5)),
            1_000_000_000,
        )
        .unwrap();
        assert_eq!(padded, "a E E c E E");
    }

    #[test]
    fn sampled_data_is_bounded() {
        let start = Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).unwrap();
        let late = Point {
            time: start + TimeDelta::days(1),
            value: "1".into(),
        };
        let err = build_sampled(vec![late], start, None, 1_000_000).unwrap_err();
        assert_eq!(err.name, "SampledDataTooLarge");
    }
}
