//! Parsing a FHIR search query string into a typed [`Query`]: AND across repeated parameters, OR
//! across comma-separated values, with the spec's `\` escapes.

use chrono::{DateTime, Utc};

use crate::date;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatePrefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DateValue {
    pub prefix: DatePrefix,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `system|code`, `|code` (no system), `system|` (any code), or `code` (any system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: Option<Option<String>>,
    pub code: Option<String>,
}

/// One search parameter occurrence; its values are ORed.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    Id(Vec<String>),
    Identifier(Vec<TokenValue>),
    LastUpdated(Vec<DateValue>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    /// ANDed.
    pub clauses: Vec<Clause>,
    pub count: Option<u32>,
    /// Parameters this server does not know; the caller decides (strict: error, lenient: ignore).
    pub unknown: Vec<String>,
    /// The `name=value` pairs that were applied, for the self link.
    pub applied: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SearchError {
    #[error("invalid value '{value}' for search parameter '{param}': {reason}")]
    InvalidValue {
        param: String,
        value: String,
        reason: String,
    },
    #[error("the modifier ':{modifier}' on '{param}' is not supported")]
    UnsupportedModifier { param: String, modifier: String },
}

/// Parameters that shape the result rather than select resources, accepted without effect on
/// matching.
const RESULT_PARAMETERS: &[&str] = &["_format", "_pretty"];

pub fn parse(pairs: &[(String, String)]) -> Result<Query, SearchError> {
    let mut q = Query::default();
    for (name, value) in pairs {
        let (param, modifier) = match name.split_once(':') {
            Some((p, m)) => (p, Some(m)),
            None => (name.as_str(), None),
        };
        let clause = match param {
            "_id" | "identifier" | "_lastUpdated" if modifier.is_some() => {
                return Err(SearchError::UnsupportedModifier {
                    param: param.to_owned(),
                    modifier: modifier.unwrap_or_default().to_owned(),
                });
            }
            "_id" => Clause::Id(
                split_values(value)
                    .into_iter()
                    .map(|v| unescape(&v))
                    .collect(),
            ),
            "identifier" => {
                Clause::Identifier(split_values(value).iter().map(|v| token(v)).collect())
            }
            "_lastUpdated" => Clause::LastUpdated(
                split_values(value)
                    .iter()
                    .map(|v| date_value(param, v))
                    .collect::<Result<_, _>>()?,
            ),
            "_count" => {
                let n = value
                    .parse::<u32>()
                    .map_err(|_| SearchError::InvalidValue {
                        param: "_count".into(),
                        value: value.clone(),
                        reason: "expected a non-negative integer".into(),
                    })?;
                q.count = Some(n);
                continue;
            }
            p if RESULT_PARAMETERS.contains(&p) => continue,
            _ => {
                q.unknown.push(name.clone());
                continue;
            }
        };
        q.clauses.push(clause);
        q.applied.push((name.clone(), value.clone()));
    }
    Ok(q)
}

/// Splits on commas that are not escaped with `\`.
fn split_values(value: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                out.last_mut().unwrap().push('\\');
                if let Some(n) = chars.next() {
                    out.last_mut().unwrap().push(n);
                }
            }
            ',' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out
}

fn unescape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                s.push(n);
            }
        } else {
            s.push(c);
        }
    }
    s
}

/// Finds the first `|` not escaped with `\`.
fn unescaped_bar(v: &str) -> Option<usize> {
    let bytes = v.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'|' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

fn token(v: &str) -> TokenValue {
    let non_empty = |s: &str| (!s.is_empty()).then(|| unescape(s));
    match unescaped_bar(v) {
        None => TokenValue {
            system: None,
            code: Some(unescape(v)),
        },
        Some(i) => TokenValue {
            system: Some(non_empty(&v[..i])),
            code: non_empty(&v[i + 1..]),
        },
    }
}

fn date_value(param: &str, v: &str) -> Result<DateValue, SearchError> {
    let (prefix, rest) = match v.get(..2) {
        Some("eq") => (DatePrefix::Eq, &v[2..]),
        Some("ne") => (DatePrefix::Ne, &v[2..]),
        Some("gt") => (DatePrefix::Gt, &v[2..]),
        Some("lt") => (DatePrefix::Lt, &v[2..]),
        Some("ge") => (DatePrefix::Ge, &v[2..]),
        Some("le") => (DatePrefix::Le, &v[2..]),
        Some("sa") => (DatePrefix::Sa, &v[2..]),
        Some("eb") => (DatePrefix::Eb, &v[2..]),
        Some("ap") => (DatePrefix::Ap, &v[2..]),
        _ => (DatePrefix::Eq, v),
    };
    let (start, end) = date::range(rest).ok_or_else(|| SearchError::InvalidValue {
        param: param.to_owned(),
        value: v.to_owned(),
        reason: "expected a FHIR date, dateTime or instant, optionally prefixed (eq, ne, gt, lt, ge, le, sa, eb, ap)".into(),
    })?;
    Ok(DateValue { prefix, start, end })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn tokens_follow_the_four_forms_and_escapes() {
        let q = parse(&pairs(&[(
            "identifier",
            "urn:a|1,|2,urn:b|,3,urn:c|a\\,b\\|c",
        )]))
        .unwrap();
        let Clause::Identifier(t) = &q.clauses[0] else {
            panic!()
        };
        assert_eq!(
            t[0],
            TokenValue {
                system: Some(Some("urn:a".into())),
                code: Some("1".into())
            }
        );
        assert_eq!(
            t[1],
            TokenValue {
                system: Some(None),
                code: Some("2".into())
            }
        );
        assert_eq!(
            t[2],
            TokenValue {
                system: Some(Some("urn:b".into())),
                code: None
            }
        );
        assert_eq!(
            t[3],
            TokenValue {
                system: None,
                code: Some("3".into())
            }
        );
        assert_eq!(t[4].code.as_deref(), Some("a,b|c"));
    }

    #[test]
    fn unknown_and_result_parameters_are_separated() {
        let q = parse(&pairs(&[
            ("_id", "a,b"),
            ("name", "x"),
            ("_format", "json"),
            ("_count", "5"),
        ]))
        .unwrap();
        assert_eq!(q.clauses, vec![Clause::Id(vec!["a".into(), "b".into()])]);
        assert_eq!(q.unknown, vec!["name".to_string()]);
        assert_eq!(q.count, Some(5));
    }

    #[test]
    fn bad_values_and_modifiers_are_errors() {
        assert!(matches!(
            parse(&pairs(&[("_lastUpdated", "gt20x")])),
            Err(SearchError::InvalidValue { .. })
        ));
        assert!(matches!(
            parse(&pairs(&[("identifier:not", "1")])),
            Err(SearchError::UnsupportedModifier { .. })
        ));
        assert!(parse(&pairs(&[("_count", "-1")])).is_err());
    }

    #[test]
    fn date_prefixes() {
        let q = parse(&pairs(&[
            ("_lastUpdated", "ge2024-01-01"),
            ("_lastUpdated", "lt2025"),
        ]))
        .unwrap();
        assert_eq!(q.clauses.len(), 2);
        let Clause::LastUpdated(d) = &q.clauses[0] else {
            panic!()
        };
        assert_eq!(d[0].prefix, DatePrefix::Ge);
    }
}
