use chrono::{DateTime, Utc};

/// RFC 3339 in UTC with only the fraction the instant has, so the .NET-style window end
/// `HH:59:59.9999999` prints as Azure prints it rather than as chrono's `.999999900`.
pub(crate) fn format_instant(t: DateTime<Utc>) -> String {
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    // chrono encodes a leap second as nanos >= 1e9; FHIR has no leap seconds.
    let nanos = t.timestamp_subsec_nanos() % 1_000_000_000;
    if nanos != 0 {
        s.push('.');
        s.push_str(format!("{nanos:09}").trim_end_matches('0'));
    }
    s.push('Z');
    s
}

pub(crate) fn parse_instant(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Azure's identifier time part, `yyyyMMddHHmmssZ` with a literal Z.
pub(crate) fn format_id_time(t: DateTime<Utc>) -> String {
    t.format("%Y%m%d%H%M%SZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn instants_keep_only_their_fraction() {
        let t = Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap();
        assert_eq!(format_instant(t), "2023-01-01T10:00:00Z");
        let end = t + chrono::TimeDelta::hours(1) - chrono::TimeDelta::nanoseconds(100);
        assert_eq!(format_instant(end), "2023-01-01T10:59:59.9999999Z");
        assert_eq!(parse_instant("2023-01-01T10:59:59.9999999Z"), Some(end));
        assert_eq!(
            parse_instant("2023-01-01T11:59:59.9999999+01:00"),
            Some(end)
        );
        assert_eq!(format_id_time(end), "20230101105959Z");
    }
}
