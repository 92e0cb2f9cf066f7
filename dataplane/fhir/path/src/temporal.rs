//! Partial-precision date, dateTime and time comparison (FHIRPath N1 §6.1.5): values are
//! compared field by field down to the coarser precision; if they agree that far but their
//! precisions differ the answer is unknown (empty), and zoned dateTimes are compared in UTC.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A date or dateTime; the two compare with each other.
    Date,
    Time,
}

#[derive(Debug)]
struct Parsed {
    /// year, month, day, hour, minute, millisecond-of-minute.
    fields: [i64; 6],
    /// Index of the first field present (3 for a time) and one past the last.
    start: usize,
    end: usize,
    tz_minutes: Option<i64>,
}

pub(crate) fn compare(a: &str, b: &str, kind: Kind) -> Option<Ordering> {
    let mut a = parse(a, kind)?;
    let mut b = parse(b, kind)?;
    // With a time on both sides, a zone on only one leaves the instant unknown.
    if a.end > 3 && b.end > 3 && a.tz_minutes.is_some() != b.tz_minutes.is_some() {
        return None;
    }
    if a.tz_minutes.is_some() && b.tz_minutes.is_some() && a.end > 3 && b.end > 3 {
        a.shift_to_utc();
        b.shift_to_utc();
    }
    let end = a.end.min(b.end);
    for i in a.start..end {
        match a.fields[i].cmp(&b.fields[i]) {
            Ordering::Equal => {}
            other => return Some(other),
        }
    }
    (a.end == b.end).then_some(Ordering::Equal)
}

/// Whether `s` is a well-formed value of `kind` (for `convertsTo*` and type sniffing).
pub(crate) fn is_valid(s: &str, kind: Kind) -> bool {
    parse(s, kind).is_some()
}

fn parse(s: &str, kind: Kind) -> Option<Parsed> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut fields = [0i64; 6];
    let digits = |i: &mut usize, n: usize| -> Option<i64> {
        let part = b.get(*i..*i + n)?;
        if !part.iter().all(u8::is_ascii_digit) {
            return None;
        }
        *i += n;
        Some(part.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
    };
    let start;
    let mut end: usize;
    if kind == Kind::Time {
        if b.first() == Some(&b'T') {
            i = 1;
        }
        start = 3;
    } else {
        start = 0;
        fields[0] = digits(&mut i, 4)?;
        end = 1;
        while end < 3 && b.get(i) == Some(&b'-') {
            i += 1;
            fields[end] = digits(&mut i, 2)?;
            end += 1;
        }
        if !(1..=12).contains(&fields[1]) && end > 1 || !(1..=31).contains(&fields[2]) && end > 2 {
            return None;
        }
        match b.get(i) {
            None => {
                return Some(Parsed {
                    fields,
                    start,
                    end,
                    tz_minutes: None,
                });
            }
            Some(b'T') => i += 1,
            Some(_) => return None,
        }
        if i == b.len() {
            return Some(Parsed {
                fields,
                start,
                end,
                tz_minutes: None,
            });
        }
        if end < 3 {
            return None;
        }
    }
    fields[3] = digits(&mut i, 2)?;
    end = 4;
    if b.get(i) == Some(&b':') {
        i += 1;
        fields[4] = digits(&mut i, 2)?;
        end = 5;
        if b.get(i) == Some(&b':') {
            i += 1;
            let mut ms = digits(&mut i, 2)? * 1000;
            if b.get(i) == Some(&b'.') {
                i += 1;
                let frac_start = i;
                while b.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if i == frac_start {
                    return None;
                }
                let mut scale = 100;
                for d in &b[frac_start..i.min(frac_start + 3)] {
                    ms += i64::from(d - b'0') * scale;
                    scale /= 10;
                }
            }
            fields[5] = ms;
            end = 6;
        }
    }
    if fields[3] > 23 || fields[4] > 59 || fields[5] >= 61_000 {
        return None;
    }
    let tz_minutes = match b.get(i) {
        None => None,
        Some(b'Z') if kind == Kind::Date => {
            i += 1;
            Some(0)
        }
        Some(sign @ (b'+' | b'-')) if kind == Kind::Date => {
            let sign = if *sign == b'-' { -1 } else { 1 };
            i += 1;
            let h = digits(&mut i, 2)?;
            if b.get(i) != Some(&b':') {
                return None;
            }
            i += 1;
            let m = digits(&mut i, 2)?;
            Some(sign * (h * 60 + m))
        }
        Some(_) => return None,
    };
    (i == b.len()).then_some(Parsed {
        fields,
        start,
        end,
        tz_minutes,
    })
}

/// `value + amount unit` (N1 §6.6.1) for a calendar keyword or its UCUM time unit, at the
/// precision of `value`; None for other units or a result outside years 1-9999. Years and
/// months move the calendar fields (clamping the day to the month's length); the other
/// units are fixed lengths, so they are added as milliseconds.
pub(crate) fn add(value: &str, kind: Kind, amount: f64, unit: &str) -> Option<String> {
    let p = parse(value, kind)?;
    let [mut y, mut mo, mut d, h, mi, ms] = p.fields;
    let (mo0, d0) = (mo.max(1), d.max(1));
    let ms_per = match unit {
        "year" | "years" | "a" => {
            y += amount.trunc() as i64;
            (mo, d) = (mo0, d0.min(month_days(y, mo0)));
            None
        }
        "month" | "months" | "mo" => {
            let months = y * 12 + (mo0 - 1) + amount.trunc() as i64;
            (y, mo) = (months.div_euclid(12), months.rem_euclid(12) + 1);
            d = d0.min(month_days(y, mo));
            None
        }
        "week" | "weeks" | "wk" => Some(7 * 86_400_000),
        "day" | "days" | "d" => Some(86_400_000),
        "hour" | "hours" | "h" => Some(3_600_000),
        "minute" | "minutes" | "min" => Some(60_000),
        "second" | "seconds" | "s" => Some(1000),
        "millisecond" | "milliseconds" | "ms" => Some(1),
        _ => return None,
    };
    let mut fields = [y, mo, d, h, mi, ms];
    if let Some(per) = ms_per {
        let delta = (amount * per as f64).round() as i64;
        let day_ms = (h * 60 + mi) * 60_000 + ms;
        if kind == Kind::Time {
            let t = (day_ms + delta).rem_euclid(86_400_000);
            fields[3..].copy_from_slice(&[t / 3_600_000, t / 60_000 % 60, t % 60_000]);
        } else {
            let total = days_from_civil(y, mo0, d0) * 86_400_000 + day_ms + delta;
            let (y, mo, d) = civil_from_days(total.div_euclid(86_400_000));
            let t = total.rem_euclid(86_400_000);
            fields = [y, mo, d, t / 3_600_000, t / 60_000 % 60, t % 60_000];
        }
    }
    if kind == Kind::Date && !(1..=9999).contains(&fields[0]) {
        return None;
    }
    let mut out = String::new();
    for (i, f) in fields.iter().enumerate().take(p.end).skip(p.start) {
        let _ = match i {
            0 => write!(out, "{f:04}"),
            1 | 2 => write!(out, "-{f:02}"),
            3 if kind == Kind::Date => write!(out, "T{f:02}"),
            3 => write!(out, "{f:02}"),
            4 => write!(out, ":{f:02}"),
            _ if value.contains('.') => write!(out, ":{:02}.{:03}", f / 1000, f % 1000),
            _ => write!(out, ":{:02}", f / 1000),
        };
    }
    if p.tz_minutes.is_some() {
        let zone_len = if value.ends_with('Z') { 1 } else { 6 };
        out.push_str(&value[value.len() - zone_len..]);
    }
    Some(out)
}

fn month_days(y: i64, m: i64) -> i64 {
    match m {
        2 if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Parsed {
    fn shift_to_utc(&mut self) {
        let Some(tz) = self.tz_minutes.take() else {
            return;
        };
        let [y, mo, d, h, mi, _] = self.fields;
        let minutes = days_from_civil(y, mo.max(1), d.max(1)) * 1440 + h * 60 + mi - tz;
        let (y, mo, d) = civil_from_days(minutes.div_euclid(1440));
        let in_day = minutes.rem_euclid(1440);
        self.fields[..5].copy_from_slice(&[y, mo, d, in_day / 60, in_day % 60]);
    }
}

// Howard Hinnant's days-from-civil algorithms (proleptic Gregorian, 1970-01-01 = day 0).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The current UTC instant as (date, time with milliseconds).
pub(crate) fn now_utc() -> (String, String) {
    let elapsed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(elapsed.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let in_day = secs.rem_euclid(86_400);
    (
        format!("{y:04}-{m:02}-{d:02}"),
        format!(
            "{:02}:{:02}:{:02}.{:03}",
            in_day / 3600,
            in_day % 3600 / 60,
            in_day % 60,
            elapsed.subsec_millis()
        ),
    )
}
