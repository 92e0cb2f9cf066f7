//! FHIR date, dateTime and instant values as the half-open time range their precision implies:
//! `2024` is the whole year, `2024-03-05T10:00` the whole minute. Comparisons in search and in
//! history's `_at` are made on these ranges.

use chrono::{DateTime, Datelike, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// `[start, end)` of a FHIR date/dateTime/instant literal, or None if it is not one. A time
/// without a zone is taken as UTC.
pub fn range(value: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let v = value.trim();
    match v.len() {
        4 => {
            let y: i32 = v.parse().ok()?;
            let start = Utc.with_ymd_and_hms(y, 1, 1, 0, 0, 0).single()?;
            let end = Utc.with_ymd_and_hms(y + 1, 1, 1, 0, 0, 0).single()?;
            Some((start, end))
        }
        7 => {
            let (y, m) = v.split_once('-')?;
            let (y, m): (i32, u32) = (y.parse().ok()?, m.parse().ok()?);
            let start = Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0).single()?;
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let end = Utc.with_ymd_and_hms(ny, nm, 1, 0, 0, 0).single()?;
            Some((start, end))
        }
        10 => {
            let d = NaiveDate::parse_from_str(v, "%Y-%m-%d").ok()?;
            let start = Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?);
            Some((start, start + Duration::days(1)))
        }
        _ => date_time_range(v),
    }
}

fn date_time_range(v: &str) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let (local, zone) = split_zone(v);
    let offset = match zone {
        None | Some("Z") => FixedOffset::east_opt(0)?,
        Some(z) => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let (h, m) = z[1..].split_once(':')?;
            let secs = h.parse::<i32>().ok()? * 3600 + m.parse::<i32>().ok()? * 60;
            FixedOffset::east_opt(sign * secs)?
        }
    };
    let (naive, step) = if local.len() == 16 {
        (
            NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M").ok()?,
            Duration::minutes(1),
        )
    } else if local.len() == 19 {
        (
            NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S").ok()?,
            Duration::seconds(1),
        )
    } else if local.len() > 20 && local.as_bytes()[19] == b'.' {
        let digits = local.len() - 20;
        let naive = NaiveDateTime::parse_from_str(local, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
        let step = Duration::nanoseconds(10_i64.pow(9u32.saturating_sub(digits as u32).min(9)));
        (naive, step)
    } else {
        return None;
    };
    if naive.year() < 1 {
        return None;
    }
    let start = offset
        .from_local_datetime(&naive)
        .single()?
        .with_timezone(&Utc);
    Some((start, start + step))
}

fn split_zone(v: &str) -> (&str, Option<&str>) {
    if let Some(stripped) = v.strip_suffix('Z') {
        return (stripped, Some("Z"));
    }
    // A zone offset is the last 6 characters (+hh:mm) after the time part.
    if v.len() > 16 {
        let tail = &v[v.len() - 6..];
        if (tail.starts_with('+') || tail.starts_with('-')) && tail.as_bytes()[3] == b':' {
            return (&v[..v.len() - 6], Some(tail));
        }
    }
    (v, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &str) -> (String, String) {
        let (s, e) = range(v).unwrap();
        (s.to_rfc3339(), e.to_rfc3339())
    }

    #[test]
    fn precision_sets_the_range() {
        assert_eq!(
            r("2024"),
            (
                "2024-01-01T00:00:00+00:00".into(),
                "2025-01-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(
            r("2024-12"),
            (
                "2024-12-01T00:00:00+00:00".into(),
                "2025-01-01T00:00:00+00:00".into()
            )
        );
        assert_eq!(r("2024-02-28").1, "2024-02-29T00:00:00+00:00");
        assert_eq!(r("2024-02-28T10:00+02:00").0, "2024-02-28T08:00:00+00:00");
        assert_eq!(r("2024-02-28T10:00:05Z").1, "2024-02-28T10:00:06+00:00");
        assert_eq!(
            r("2024-02-28T10:00:05.120Z").1,
            "2024-02-28T10:00:05.121+00:00"
        );
    }

    #[test]
    fn garbage_is_rejected() {
        for bad in [
            "",
            "20x4",
            "2024-13",
            "2024-02-30",
            "2024-02-28T25:00Z",
            "yesterday",
        ] {
            assert!(range(bad).is_none(), "{bad}");
        }
    }
}
