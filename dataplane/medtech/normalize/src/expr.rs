//! Compiled expressions of either language, and the documents they run against.

use std::cell::OnceCell;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use jmespath::{Context, Rcvar, Variable};
use serde_json::Value;

use crate::jmes;
use crate::jsonpath::NewtonsoftPath;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Language {
    JsonPath,
    JmesPath,
}

impl Language {
    pub(crate) fn parse(name: &str) -> Option<Language> {
        if name.eq_ignore_ascii_case("JsonPath") {
            Some(Language::JsonPath)
        } else if name.eq_ignore_ascii_case("JmesPath") {
            Some(Language::JmesPath)
        } else {
            None
        }
    }
}

pub(crate) enum Expr {
    JsonPath {
        text: String,
        path: NewtonsoftPath,
    },
    JmesPath {
        text: String,
        expr: jmespath::Expression<'static>,
    },
}

/// Why a single-value expression gave no usable token.
pub(crate) enum EvalError {
    /// Newtonsoft's `SelectToken` refuses a path that selects several tokens.
    Multiple(usize),
    /// A JMESPath runtime error (e.g. a function given the wrong type).
    Failed(String),
}

impl Expr {
    pub(crate) fn compile(text: &str, language: Language) -> Result<Expr, String> {
        Ok(match language {
            Language::JsonPath => Expr::JsonPath {
                text: text.to_owned(),
                path: NewtonsoftPath::parse(text)?,
            },
            Language::JmesPath => Expr::JmesPath {
                text: text.to_owned(),
                expr: jmes::compile(text)?,
            },
        })
    }

    pub(crate) fn text(&self) -> &str {
        match self {
            Expr::JsonPath { text, .. } | Expr::JmesPath { text, .. } => text,
        }
    }

    fn search(expr: &jmespath::Expression<'static>, doc: &Doc<'_>) -> Result<Rcvar, EvalError> {
        // `Expression::search` would convert the input through serde (see jmes.rs).
        let mut ctx = Context::new(expr.as_str(), jmes::runtime());
        jmespath::interpret(&doc.var(), expr.as_ast(), &mut ctx)
            .map_err(|e| EvalError::Failed(e.reason.to_string()))
    }

    /// Type matching: every JSONPath node; for JMESPath each element of an array result, or
    /// the result itself when it is neither null nor an array.
    pub(crate) fn matches<'d>(&self, doc: &'d Doc<'_>) -> Result<Vec<Hit<'d>>, EvalError> {
        match self {
            Expr::JsonPath { path, .. } => {
                Ok(select_json(path, doc).into_iter().map(Hit::Json).collect())
            }
            Expr::JmesPath { expr, .. } => {
                let result = Self::search(expr, doc)?;
                Ok(match &*result {
                    Variable::Null => Vec::new(),
                    Variable::Array(items) => items.iter().cloned().map(Hit::Var).collect(),
                    _ => vec![Hit::Var(result)],
                })
            }
        }
    }

    /// A single token: none when nothing (or JSON null) is selected.
    pub(crate) fn one<'d>(&self, doc: &'d Doc<'_>) -> Result<Option<Hit<'d>>, EvalError> {
        match self {
            Expr::JsonPath { path, .. } => {
                let mut nodes = select_json(path, doc);
                match nodes.len() {
                    0 => Ok(None),
                    1 => Ok(nodes.pop().filter(|v| !v.is_null()).map(Hit::Json)),
                    n => Err(EvalError::Multiple(n)),
                }
            }
            Expr::JmesPath { expr, .. } => {
                let result = Self::search(expr, doc)?;
                Ok((!result.is_null()).then_some(Hit::Var(result)))
            }
        }
    }
}

fn select_json<'d>(path: &NewtonsoftPath, doc: &'d Doc<'_>) -> Vec<&'d Value> {
    let wrapped = path.scans_root().then(|| doc.wrapped());
    path.select(doc.json(), wrapped)
}

/// A token an expression selected: a node of a JSON document, or a JMESPath result.
#[derive(Clone, Debug)]
pub(crate) enum Hit<'a> {
    Json(&'a Value),
    Var(Rcvar),
}

impl Hit<'_> {
    pub(crate) fn to_value(&self) -> Value {
        match self {
            Hit::Json(v) => (*v).clone(),
            Hit::Var(v) => jmes::to_value(v),
        }
    }

    fn to_var(&self) -> Rcvar {
        match self {
            Hit::Json(v) => jmes::to_var(v),
            Hit::Var(v) => v.clone(),
        }
    }

    /// The measurement text of a token: strings unquoted, numbers as written, other JSON as
    /// compact JSON text. None for null.
    pub(crate) fn text(&self) -> Option<String> {
        match self {
            Hit::Json(v) => json_text(v),
            Hit::Var(v) => match &**v {
                Variable::Null => None,
                Variable::String(s) => Some(s.clone()),
                Variable::Number(n) => Some(n.to_string()),
                Variable::Bool(b) => Some(b.to_string()),
                other => Some(jmes::to_value(other).to_string()),
            },
        }
    }
}

fn json_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// What expressions run against: a JSON value, or (CalculatedContent) the envelope with the
/// match added as `matchedToken`. Each form is built only if an expression needs it, so an
/// all-JMESPath template never copies the envelope as JSON and vice versa.
pub(crate) struct Doc<'a> {
    source: Source<'a>,
    json: OnceCell<Value>,
    wrapped: OnceCell<Value>,
    var: OnceCell<Rcvar>,
}

enum Source<'a> {
    Json(&'a Value),
    Matched {
        envelope: &'a Doc<'a>,
        token: &'a Hit<'a>,
    },
}

impl<'a> Doc<'a> {
    pub(crate) fn new(value: &'a Value) -> Self {
        Self::with(Source::Json(value))
    }

    pub(crate) fn matched(envelope: &'a Doc<'a>, token: &'a Hit<'a>) -> Self {
        Self::with(Source::Matched { envelope, token })
    }

    fn with(source: Source<'a>) -> Self {
        Self {
            source,
            json: OnceCell::new(),
            wrapped: OnceCell::new(),
            var: OnceCell::new(),
        }
    }

    pub(crate) fn json(&self) -> &Value {
        match &self.source {
            Source::Json(value) => value,
            Source::Matched { envelope, token } => self.json.get_or_init(|| {
                let mut map = match envelope.json() {
                    Value::Object(map) => map.clone(),
                    _ => serde_json::Map::new(),
                };
                map.insert("matchedToken".to_owned(), token.to_value());
                Value::Object(map)
            }),
        }
    }

    /// `[json]`, for testing the root itself against a filter.
    fn wrapped(&self) -> &Value {
        self.wrapped
            .get_or_init(|| Value::Array(vec![self.json().clone()]))
    }

    fn var(&self) -> Rcvar {
        self.var
            .get_or_init(|| match &self.source {
                Source::Json(value) => jmes::to_var(value),
                Source::Matched { envelope, token } => {
                    // Shares the envelope's converted members instead of converting again.
                    let mut map = match &*envelope.var() {
                        Variable::Object(map) => map.clone(),
                        _ => Default::default(),
                    };
                    map.insert("matchedToken".to_owned(), token.to_var());
                    Rcvar::new(Variable::Object(map))
                }
            })
            .clone()
    }
}

/// ISO 8601 / RFC 3339 date-times, with or without an offset (none means UTC), `T` or space
/// between date and time, any number of fractional digits; a bare date means midnight UTC.
pub(crate) fn parse_timestamp(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f%#z", "%Y-%m-%d %H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(text, format) {
            return Some(t.with_timezone(&Utc));
        }
    }
    let naive = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    for format in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(naive, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}
