//! Value checks for the attributes the index keeps. Dates and times feed range queries, so a
//! value that is not a real date is better left out of the index than stored as garbage.

/// The outcome of checking one value.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Checked<T> {
    Empty,
    Valid(T),
    /// Usable after normalising a retired form; the reason is worth a warning.
    Repaired(T, String),
    Invalid(String),
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

fn digits(s: &str) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn real_date(y: &str, m: &str, d: &str) -> bool {
    match (digits(y), digits(m), digits(d)) {
        (Some(y), Some(m), Some(d)) => (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m),
        _ => false,
    }
}

/// A DA value as YYYYMMDD; the ACR-NEMA form YYYY.MM.DD is accepted and rewritten.
pub(crate) fn date(raw: &str) -> Checked<String> {
    let s = raw.trim_matches([' ', '\0']);
    if s.is_empty() {
        return Checked::Empty;
    }
    if !s.is_ascii() {
        return Checked::Invalid(format!(
            "has the value {s:?}, which is not a valid DA date (YYYYMMDD)"
        ));
    }
    if s.len() == 8 && real_date(&s[..4], &s[4..6], &s[6..]) {
        return Checked::Valid(s.to_string());
    }
    if s.len() == 10
        && s.as_bytes()[4] == b'.'
        && s.as_bytes()[7] == b'.'
        && real_date(&s[..4], &s[5..7], &s[8..])
    {
        let fixed = format!("{}{}{}", &s[..4], &s[5..7], &s[8..]);
        return Checked::Repaired(fixed, format!("uses the retired date form {s:?}"));
    }
    Checked::Invalid(format!(
        "has the value {s:?}, which is not a valid DA date (YYYYMMDD)"
    ))
}

fn real_time(s: &str) -> bool {
    let (main, fraction) = match s.split_once('.') {
        Some((m, f)) => (m, Some(f)),
        None => (s, None),
    };
    if let Some(f) = fraction
        && (main.len() != 6 || f.is_empty() || f.len() > 6 || digits(f).is_none())
    {
        return false;
    }
    if !matches!(main.len(), 2 | 4 | 6) || digits(main).is_none() {
        return false;
    }
    let part = |i: usize| main.get(i..i + 2).and_then(digits);
    part(0).is_some_and(|h| h < 24)
        && part(2).is_none_or(|m| m < 60)
        && part(4).is_none_or(|sec| sec < 61)
}

/// A TM value; the ACR-NEMA form HH:MM:SS is accepted and rewritten.
pub(crate) fn time(raw: &str) -> Checked<String> {
    let s = raw.trim_matches([' ', '\0']);
    if s.is_empty() {
        return Checked::Empty;
    }
    if real_time(s) {
        return Checked::Valid(s.to_string());
    }
    if s.contains(':') {
        let fixed: String = s.chars().filter(|&c| c != ':').collect();
        if real_time(&fixed) {
            return Checked::Repaired(fixed, format!("uses the retired time form {s:?}"));
        }
    }
    Checked::Invalid(format!("has the value {s:?}, which is not a valid TM time"))
}

/// An integer of the given type from an IS or binary value already rendered as text.
pub(crate) fn integer<T: TryFrom<i64>>(raw: &str, what: &str) -> Checked<T> {
    let s = raw.trim_matches([' ', '\0']);
    let s = s.split('\\').next().unwrap_or("").trim();
    if s.is_empty() {
        return Checked::Empty;
    }
    match s
        .strip_prefix('+')
        .unwrap_or(s)
        .parse::<i64>()
        .ok()
        .and_then(|v| T::try_from(v).ok())
    {
        Some(v) => Checked::Valid(v),
        None => Checked::Invalid(format!("has the value {s:?}, which is not {what}")),
    }
}

/// What is wrong with a UID that cannot be used even leniently, or the warnings (reason and
/// lenient effect) for one that can.
pub(crate) enum UidCheck {
    Missing,
    Unusable(String),
    Usable(String, Vec<(String, &'static str)>),
}

/// UIDs name storage paths and URLs, so only digits and dots are ever let through. Trailing
/// NUL is the standard padding; a trailing space is a common writer bug and only warned about.
pub(crate) fn uid(raw: &str) -> UidCheck {
    let no_nul = raw.trim_end_matches('\0');
    let value = no_nul.trim_end_matches([' ', '\0']);
    let mut warnings = Vec::new();
    if value.len() != no_nul.len() {
        warnings.push((
            "is padded with spaces instead of a NUL byte".to_string(),
            "the spaces were dropped",
        ));
    }
    if value.is_empty() {
        return UidCheck::Missing;
    }
    if value.len() > 64 {
        return UidCheck::Unusable(format!(
            "is {} characters long; a UID has at most 64",
            value.len()
        ));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
        return UidCheck::Unusable(format!("contains {c:?}; a UID has only digits and dots"));
    }
    if value
        .split('.')
        .any(|part| part.is_empty() || (part.len() > 1 && part.starts_with('0')))
    {
        warnings.push((
            format!("has the value {value:?}, which is not a well-formed UID (an empty component or a leading zero)"),
            "it was stored as sent",
        ));
    }
    UidCheck::Usable(value.to_string(), warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(date("20040119"), Checked::Valid("20040119".into()));
        assert_eq!(date(" 20240229 "), Checked::Valid("20240229".into()));
        assert!(matches!(date("20230229"), Checked::Invalid(_)));
        assert!(matches!(date("2004011"), Checked::Invalid(_)));
        assert!(matches!(date("2004-01-19"), Checked::Invalid(_)));
        assert!(matches!(date("2004.01.19"), Checked::Repaired(ref d, _) if d == "20040119"));
        assert_eq!(date("  "), Checked::Empty);
    }

    #[test]
    fn times() {
        for ok in ["07", "0712", "071259", "071259.123456", "235960"] {
            assert!(matches!(time(ok), Checked::Valid(_)), "{ok}");
        }
        for bad in ["24", "0760", "071259.", "071259.1234567", "7", "ab"] {
            assert!(matches!(time(bad), Checked::Invalid(_)), "{bad}");
        }
        assert!(matches!(time("07:12:59"), Checked::Repaired(ref t, _) if t == "071259"));
    }

    #[test]
    fn integers() {
        assert_eq!(integer::<i32>(" +12 ", "an integer"), Checked::Valid(12));
        assert!(matches!(
            integer::<u32>("-1", "a frame count"),
            Checked::Invalid(_)
        ));
        assert!(matches!(
            integer::<i32>("1A", "an integer"),
            Checked::Invalid(_)
        ));
    }

    #[test]
    fn uids() {
        assert!(
            matches!(uid("1.2.3\0"), UidCheck::Usable(ref u, ref w) if u == "1.2.3" && w.is_empty())
        );
        assert!(matches!(uid("1.2.3 "), UidCheck::Usable(_, ref w) if w.len() == 1));
        assert!(matches!(uid("1.02.3"), UidCheck::Usable(_, ref w) if w.len() == 1));
        assert!(matches!(uid("1.2.x"), UidCheck::Unusable(_)));
        assert!(matches!(uid(" 1.2"), UidCheck::Unusable(_)));
        assert!(matches!(uid(&"1.".repeat(40)), UidCheck::Unusable(_)));
        assert!(matches!(uid("\0"), UidCheck::Missing));
    }
}
