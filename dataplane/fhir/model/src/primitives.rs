//! Format and range checks for FHIR primitive values in JSON.

use regex::Regex;
use serde_json::Value;

use crate::IssueCode;

/// The spec caps strings at 1 MiB ("Strings SHALL NOT exceed 1MB in size").
const MAX_STRING_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PrimitiveKind {
    Base64Binary,
    Boolean,
    Canonical,
    Code,
    Date,
    DateTime,
    Decimal,
    Id,
    Instant,
    Integer,
    Markdown,
    Oid,
    PositiveInt,
    String,
    Time,
    UnsignedInt,
    Uri,
    Url,
    Uuid,
    Xhtml,
}

impl PrimitiveKind {
    pub fn from_name(name: &str) -> Option<Self> {
        use PrimitiveKind::*;
        Some(match name {
            "base64Binary" => Base64Binary,
            "boolean" => Boolean,
            "canonical" => Canonical,
            "code" => Code,
            "date" => Date,
            "dateTime" => DateTime,
            "decimal" => Decimal,
            "id" => Id,
            "instant" => Instant,
            "integer" => Integer,
            "markdown" => Markdown,
            "oid" => Oid,
            "positiveInt" => PositiveInt,
            "string" => String,
            "time" => Time,
            "unsignedInt" => UnsignedInt,
            "uri" => Uri,
            "url" => Url,
            "uuid" => Uuid,
            "xhtml" => Xhtml,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        use PrimitiveKind::*;
        match self {
            Base64Binary => "base64Binary",
            Boolean => "boolean",
            Canonical => "canonical",
            Code => "code",
            Date => "date",
            DateTime => "dateTime",
            Decimal => "decimal",
            Id => "id",
            Instant => "instant",
            Integer => "integer",
            Markdown => "markdown",
            Oid => "oid",
            PositiveInt => "positiveInt",
            String => "string",
            Time => "time",
            UnsignedInt => "unsignedInt",
            Uri => "uri",
            Url => "url",
            Uuid => "uuid",
            Xhtml => "xhtml",
        }
    }

    /// Human-readable expectation used in diagnostics.
    fn expected(self) -> &'static str {
        use PrimitiveKind::*;
        match self {
            Base64Binary => "base64-encoded data",
            Boolean => "true or false",
            Canonical | Uri | Url => "a URI without whitespace",
            Code => "a code: no leading, trailing or repeated whitespace",
            Date => "YYYY, YYYY-MM or YYYY-MM-DD",
            DateTime => "YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss(.sss)+zz:zz",
            Decimal => "a JSON number",
            Id => "1-64 characters of A-Z, a-z, 0-9, '-' and '.'",
            Instant => "YYYY-MM-DDThh:mm:ss(.sss)+zz:zz with a time zone",
            Integer => "a JSON integer between -2147483648 and 2147483647",
            Markdown | String => "a non-empty string",
            Oid => "urn:oid:<dotted numbers>",
            PositiveInt => "a JSON integer between 1 and 2147483647",
            Time => "hh:mm:ss(.sss)",
            UnsignedInt => "a JSON integer between 0 and 2147483647",
            Uuid => "urn:uuid:<lower-case UUID>",
            Xhtml => "an XHTML <div> element",
        }
    }
}

#[derive(Debug)]
pub(crate) struct Primitive {
    pub kind: PrimitiveKind,
    regex: Option<Regex>,
    /// False for xhtml, whose value can't carry id/extension (`_div` is not allowed).
    pub extensible: bool,
}

impl Primitive {
    pub fn new(kind: PrimitiveKind, regex: Option<&str>, extensible: bool) -> Result<Self, String> {
        // JSON numbers and booleans are checked by JSON kind and range; their spec regexes
        // describe the lexical form, which serde_json has already parsed.
        let lexical = !matches!(
            kind,
            PrimitiveKind::Boolean
                | PrimitiveKind::Decimal
                | PrimitiveKind::Integer
                | PrimitiveKind::PositiveInt
                | PrimitiveKind::UnsignedInt
        );
        let regex = match regex {
            Some(r) if lexical => {
                let anchored = format!("^(?:{})$", xsd_to_rust_regex(r));
                Some(Regex::new(&anchored).map_err(|e| format!("{}: {e}", kind.name()))?)
            }
            _ => None,
        };
        Ok(Primitive {
            kind,
            regex,
            extensible,
        })
    }

    pub fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether `v` is the JSON kind this primitive is carried as, before any format check.
    pub fn json_kind_name(&self) -> &'static str {
        use PrimitiveKind::*;
        match self.kind {
            Boolean => "boolean",
            Decimal | Integer | PositiveInt | UnsignedInt => "number",
            _ => "string",
        }
    }

    /// Checks a non-null, non-container JSON value. Returns the issue code and diagnostics.
    pub fn check(&self, v: &Value) -> Result<(), (IssueCode, String)> {
        use PrimitiveKind::*;
        let kind_err = || {
            Err((
                IssueCode::Value,
                format!(
                    "expected a JSON {} for FHIR {} ({}), found {}",
                    self.json_kind_name(),
                    self.name(),
                    self.kind.expected(),
                    describe(v)
                ),
            ))
        };
        match self.kind {
            Boolean => return if v.is_boolean() { Ok(()) } else { kind_err() },
            Decimal => return if v.is_number() { Ok(()) } else { kind_err() },
            Integer | PositiveInt | UnsignedInt => {
                let Some(n) = v.as_i64().or_else(|| v.as_u64().map(|_| i64::MAX)) else {
                    return kind_err();
                };
                let min = match self.kind {
                    Integer => i64::from(i32::MIN),
                    PositiveInt => 1,
                    _ => 0,
                };
                return if (min..=i64::from(i32::MAX)).contains(&n) {
                    Ok(())
                } else {
                    self.format_err(v)
                };
            }
            _ => {}
        }
        let Some(s) = v.as_str() else {
            return kind_err();
        };
        if s.is_empty() {
            return Err((
                IssueCode::Value,
                format!(
                    "empty string is not a valid {}; omit the element instead",
                    self.name()
                ),
            ));
        }
        if matches!(self.kind, String | Markdown) {
            if s.len() > MAX_STRING_BYTES {
                return Err((
                    IssueCode::TooLong,
                    format!(
                        "{} exceeds the 1 MiB limit ({} bytes)",
                        self.name(),
                        s.len()
                    ),
                ));
            }
            if let Some(c) = s
                .chars()
                .find(|&c| c < ' ' && !matches!(c, '\t' | '\r' | '\n'))
            {
                return Err((
                    IssueCode::Value,
                    format!(
                        "{} contains control character U+{:04X}, which FHIR does not allow",
                        self.name(),
                        c as u32
                    ),
                ));
            }
        }
        if self.kind == Xhtml && !s.trim_start().starts_with("<div") {
            return self.format_err(v);
        }
        if let Some(re) = &self.regex
            && !re.is_match(s)
        {
            return self.format_err(v);
        }
        if matches!(self.kind, Date | DateTime | Instant) && !valid_calendar_date(s) {
            return Err((
                IssueCode::Value,
                format!("{} value '{s}' is not a valid calendar date", self.name()),
            ));
        }
        Ok(())
    }

    fn format_err(&self, v: &Value) -> Result<(), (IssueCode, String)> {
        let shown = match v {
            Value::String(s) if s.chars().count() > 80 => format!(
                "'{}...'",
                s.chars().take(80).collect::<std::string::String>()
            ),
            Value::String(s) => format!("'{s}'"),
            other => other.to_string(),
        };
        Err((
            IssueCode::Value,
            format!(
                "invalid {} value {shown}: expected {}",
                self.name(),
                self.kind.expected()
            ),
        ))
    }
}

pub(crate) fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The spec regexes use XML Schema syntax, where `\s` is only space, tab, CR and LF; the
/// regex crate's Unicode `\s` would also reject e.g. non-breaking spaces inside strings.
fn xsd_to_rust_regex(re: &str) -> String {
    const WS: &str = r"\x20\t\n\r";
    let mut out = String::with_capacity(re.len() + 16);
    let mut in_class = false;
    let mut chars = re.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('s') if in_class => out.push_str(WS),
                Some('s') => out.push_str(&format!("[{WS}]")),
                Some('S') => out.push_str(&format!("[^{WS}]")),
                Some(other) => {
                    out.push('\\');
                    out.push(other);
                }
                None => out.push('\\'),
            },
            '[' => {
                in_class = true;
                out.push(c);
            }
            ']' => {
                in_class = false;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// The regexes accept day 31 in every month; "Dates SHALL be valid dates".
fn valid_calendar_date(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return true; // year or year-month only; the regex covered those
    }
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap_or(0);
    let (year, month, day) = (num(0..4), num(5..7), num(8..10));
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let days = match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    };
    day <= days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xsd_whitespace_classes() {
        assert_eq!(
            xsd_to_rust_regex(r"[^\s]+(\s[^\s]+)*"),
            r"[^\x20\t\n\r]+([\x20\t\n\r][^\x20\t\n\r]+)*"
        );
        assert_eq!(
            xsd_to_rust_regex(r"[ \r\n\t\S]+"),
            r"[ \r\n\t[^\x20\t\n\r]]+"
        );
    }

    #[test]
    fn calendar() {
        assert!(valid_calendar_date("2024-02-29"));
        assert!(!valid_calendar_date("2023-02-29"));
        assert!(!valid_calendar_date("2023-04-31T10:00:00Z"));
        assert!(valid_calendar_date("2023-04"));
    }
}
