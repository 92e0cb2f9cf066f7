//! Parsing a FHIR search query string into a typed [`Query`]: AND across repeated parameters, OR
//! across comma-separated values, with the spec's `\` escapes, chains, `_has`, modifiers and
//! prefixes, checked against the registry of the resource type searched.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::date;
use crate::fulltext::TextField;
use crate::normalize::normalize;
use crate::registry::{ParamType, Registry, SearchParam};
use crate::result::{Include, ResultParams, parse_result_param};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefix {
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

/// Kept under its old name for the REST core's callers.
pub type DatePrefix = Prefix;

#[derive(Debug, Clone, PartialEq)]
pub struct DateValue {
    pub prefix: Prefix,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// `system|code`, `|code` (no system), `system|` (any code), or `code` (any system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenValue {
    pub system: Option<Option<String>>,
    pub code: Option<String>,
}

/// A number with its implicit precision range: `100` means [99.5, 100.5).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberValue {
    pub prefix: Prefix,
    pub value: String,
    pub lo: String,
    pub hi: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuantityValue {
    pub number: NumberValue,
    /// For a UCUM unit with a canonical form: the dimension and `number` in base units, so that
    /// stored quantities in any unit of that dimension compare.
    pub canonical: Option<(String, NumberValue)>,
    /// `None`: any system; `Some("")` is not produced (empty means any).
    pub system: Option<String>,
    /// Matched against the coded unit, or the unit text when no system is given.
    pub code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceValue {
    pub target_type: Option<String>,
    pub id: Option<String>,
    pub url: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StringMatch {
    Prefix,
    Exact,
    Contains,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriMatch {
    Exact,
    Above,
    Below,
}

/// What one parameter occurrence demands; its values are ORed.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Id(Vec<String>),
    LastUpdated(Vec<DateValue>),
    Token {
        param: String,
        not: bool,
        values: Vec<TokenValue>,
    },
    TokenText {
        param: String,
        values: Vec<String>,
    },
    /// The code is in (or with `not`, not in) one of the ValueSets stored on this server with
    /// these canonical urls, by their expansion or enumerated compose.include concepts.
    TokenIn {
        param: String,
        not: bool,
        value_sets: Vec<String>,
    },
    String {
        param: String,
        how: StringMatch,
        values: Vec<String>,
    },
    Date {
        param: String,
        values: Vec<DateValue>,
    },
    /// Several ANDed date clauses on a parameter that has at most one value per resource
    /// (`date=ge2020&date=lt2021` on Observation.effective): one index row must satisfy every
    /// group (each group ORed), which an index range can find, where separate EXISTS per clause
    /// would each match most rows.
    DateAll {
        param: String,
        groups: Vec<Vec<DateValue>>,
    },
    Number {
        param: String,
        values: Vec<NumberValue>,
    },
    Quantity {
        param: String,
        values: Vec<QuantityValue>,
    },
    Reference {
        param: String,
        values: Vec<ReferenceValue>,
    },
    Uri {
        param: String,
        how: UriMatch,
        values: Vec<String>,
    },
    Missing {
        param: String,
        kind: ParamType,
        missing: bool,
        /// Only rows referring to this type count (a narrowed reference parameter's,
        /// [`crate::registry::SearchParam::narrows`]).
        target_type: Option<String>,
    },
    /// `param:Type.rest=value`: some target of `param`, of one of the types, matches the inner
    /// filter (parsed per target type, since the chained parameter differs by type).
    Chain {
        param: String,
        targets: Vec<(String, Box<Filter>)>,
    },
    /// `_has:Type:param:rest=value`: some `Type` whose `param` points here matches.
    Has {
        res_type: String,
        param: String,
        inner: Box<Filter>,
    },
    /// `_text` / `_content`: full-text queries (websearch syntax), ORed.
    Text {
        field: TextField,
        values: Vec<String>,
    },
    /// `_list`: the resource is an item of one of these Lists.
    List(Vec<String>),
    /// `:below` / `:above` on a token: the code or one it subsumes (or is subsumed by) in a
    /// CodeSystem stored on this server. The search resolves it into a [`Filter::Token`] before
    /// compiling SQL, since the hierarchy lives in the CodeSystem's JSON.
    TokenHierarchy {
        param: String,
        below: bool,
        /// (system, code) pairs, ORed.
        values: Vec<(String, String)>,
    },
    /// A composite parameter: for one of `values` (ORed), one repetition of the parameter's
    /// expression has every component filter (in component order) holding on its values.
    /// `params` holds the parameter, or, for a union, its parts: a repetition is one of theirs.
    Composite {
        params: Vec<String>,
        values: Vec<Vec<Filter>>,
    },
    /// The resource's type is one of these: lets a search over several types (system search)
    /// apply a condition to some of them only, as `Or([And([ResourceType([T]), f_T]), …])`.
    ResourceType(Vec<String>),
    /// All must hold (compartments).
    And(Vec<Filter>),
    /// One of them must hold (compartment membership through several parameters).
    Or(Vec<Filter>),
}

impl Filter {
    /// The same filter on another parameter of the same type and kind (a part of a union,
    /// [`SearchParam::union_of`]). Filters not on one parameter's own rows are unchanged.
    fn on_param(&self, code: &str) -> Filter {
        let mut f = self.clone();
        match &mut f {
            Filter::Token { param, .. }
            | Filter::TokenText { param, .. }
            | Filter::TokenIn { param, .. }
            | Filter::TokenHierarchy { param, .. }
            | Filter::String { param, .. }
            | Filter::Date { param, .. }
            | Filter::DateAll { param, .. }
            | Filter::Number { param, .. }
            | Filter::Quantity { param, .. }
            | Filter::Reference { param, .. }
            | Filter::Uri { param, .. }
            | Filter::Missing { param, .. }
            | Filter::Chain { param, .. } => *param = code.to_owned(),
            Filter::Composite { params, .. } => *params = vec![code.to_owned()],
            Filter::Id(_)
            | Filter::LastUpdated(_)
            | Filter::Has { .. }
            | Filter::Text { .. }
            | Filter::List(_)
            | Filter::ResourceType(_)
            | Filter::And(_)
            | Filter::Or(_) => {}
        }
        f
    }
}

/// Kept for the conditional interactions' callers: a clause is a filter.
pub type Clause = Filter;

#[derive(Debug, Clone, Default)]
pub struct Query {
    /// ANDed.
    pub clauses: Vec<Filter>,
    pub count: Option<u32>,
    pub result: ResultParams,
    /// Parameters not applied, with the reason; the caller decides (strict: error, lenient:
    /// report in an OperationOutcome and go on).
    pub unknown: Vec<(String, String)>,
    /// The `name=value` pairs that were applied, for the self link.
    pub applied: Vec<(String, String)>,
}

impl Query {
    pub fn includes(&self) -> &[Include] {
        &self.result.includes
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SearchError {
    #[error("invalid value '{value}' for search parameter '{param}': {reason}")]
    InvalidValue {
        param: String,
        value: String,
        reason: String,
    },
    #[error("the modifier ':{modifier}' on '{param}' is not supported: {reason}")]
    UnsupportedModifier {
        param: String,
        modifier: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Parameters that shape the response format only.
const FORMAT_PARAMETERS: &[&str] = &["_format", "_pretty"];

/// Parses `pairs` for a search on `res_type` against the built-in registry.
pub fn parse(res_type: &str, pairs: &[(String, String)]) -> Result<Query, SearchError> {
    parse_with(crate::registry::r4(), res_type, pairs)
}

pub fn parse_with(
    reg: &Registry,
    res_type: &str,
    pairs: &[(String, String)],
) -> Result<Query, SearchError> {
    let mut q = Query::default();
    for (name, value) in pairs {
        if FORMAT_PARAMETERS.contains(&name.as_str()) {
            continue;
        }
        if name == "_count" {
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
        match parse_result_param(reg, res_type, name, value, &mut q.result)? {
            Some(true) => {
                q.applied.push((name.clone(), value.clone()));
                continue;
            }
            Some(false) => {
                q.unknown
                    .push((name.clone(), format!("'{name}' is not supported")));
                continue;
            }
            None => {}
        }
        match parse_filter(reg, res_type, name, value)? {
            Ok(f) => {
                q.clauses.push(f);
                q.applied.push((name.clone(), value.clone()));
            }
            Err(reason) => q.unknown.push((name.clone(), reason)),
        }
    }
    merge_single_valued_dates(reg, res_type, &mut q.clauses);
    Ok(q)
}

/// See [`Filter::DateAll`]. Only for parameters whose expression is a plain path of
/// non-repeating elements, where "some value satisfies each clause" and "one value satisfies
/// all clauses" are the same thing.
fn merge_single_valued_dates(reg: &Registry, res_type: &str, clauses: &mut Vec<Filter>) {
    let mut merged: Vec<Filter> = Vec::with_capacity(clauses.len());
    for f in clauses.drain(..) {
        let Filter::Date { param, values } = f else {
            merged.push(f);
            continue;
        };
        let single = reg
            .get(res_type, &param)
            .and_then(|p| p.expression_text.as_deref())
            .is_some_and(|e| single_valued_path(res_type, e));
        let existing = merged.iter_mut().find_map(|m| match m {
            Filter::DateAll { param: p, groups } if *p == param => Some(groups),
            _ => None,
        });
        match (single, existing) {
            (true, Some(groups)) => groups.push(values),
            (true, None) => merged.push(Filter::DateAll {
                param,
                groups: vec![values],
            }),
            (false, _) => merged.push(Filter::Date { param, values }),
        }
    }
    *clauses = merged;
}

/// `Type.a.b` where no step repeats (a choice element counts as one value).
fn single_valued_path(res_type: &str, expr: &str) -> bool {
    let mut steps = expr.split('.');
    if steps.next() != Some(res_type) {
        return false;
    }
    let model = hds_fhir_model::r4();
    let mut parent = res_type.to_owned();
    let mut any = false;
    for step in steps {
        if step.is_empty() || !step.chars().all(|c| c.is_ascii_alphanumeric()) {
            return false;
        }
        match model.element_shape(&parent, step) {
            Some(shape) if !shape.repeats => {}
            _ => return false,
        }
        parent = format!("{parent}.{step}");
        any = true;
    }
    any
}

/// `Ok(Err(reason))` is a parameter this server does not know for `res_type` (lenient handling
/// may ignore it); `Err` is a known parameter with an unusable value (always an error).
pub fn parse_filter(
    reg: &Registry,
    res_type: &str,
    name: &str,
    value: &str,
) -> Result<Result<Filter, String>, SearchError> {
    if let Some(rest) = name.strip_prefix("_has:") {
        return parse_has(reg, res_type, rest, value);
    }
    // `subject:Patient.name` and `subject.name`: split the first link of a chain off.
    let (head, chain_rest) = match name.split_once('.') {
        Some((h, r)) => (h, Some(r)),
        None => (name, None),
    };
    let (code, modifier) = match head.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (head, None),
    };
    if code == "_id" || code == "_lastUpdated" {
        if let Some(m) = modifier {
            if m == "missing" {
                // Every resource has both: missing=true matches none, false all.
                return Ok(Ok(match value {
                    "true" => Filter::Id(vec![]),
                    "false" => Filter::And(vec![]),
                    _ => return Err(invalid(name, value, "':missing' takes true or false")),
                }));
            }
            return Err(unsupported(code, m, "only :missing applies here"));
        }
        if chain_rest.is_some() {
            return Err(SearchError::Invalid(format!(
                "'{name}': {code} is not a reference parameter, so it cannot be chained"
            )));
        }
        return Ok(Ok(if code == "_id" {
            Filter::Id(split_values(value).iter().map(|v| unescape(v)).collect())
        } else {
            Filter::LastUpdated(
                split_values(value)
                    .iter()
                    .map(|v| date_value(code, v))
                    .collect::<Result<_, _>>()?,
            )
        }));
    }
    if let Some(f) = resource_level(code, modifier, chain_rest, name, value)? {
        return Ok(f);
    }
    let Some(param) = reg.get(res_type, code) else {
        return Ok(Err(format!(
            "'{code}' is not a search parameter of {res_type}"
        )));
    };
    if param.pending {
        return Err(pending(&param.code));
    }
    if param.expression.is_none() {
        return Ok(Err(format!(
            "'{code}' on {res_type} has no expression this server can index"
        )));
    }
    if let Some(rest) = chain_rest {
        return parse_chain(reg, param, modifier, rest, value, name);
    }
    if modifier == Some("missing") {
        let missing = match value {
            "true" => true,
            "false" => false,
            _ => {
                return Err(invalid(name, value, "':missing' takes true or false"));
            }
        };
        let f = Filter::Missing {
            param: code.to_owned(),
            kind: param.kind,
            missing,
            target_type: None,
        };
        return Ok(Ok(narrowed(param, over_parts(param, f))));
    }
    let values = split_values(value);
    if values.iter().all(|v| v.is_empty()) {
        return Err(invalid(name, value, "a value is required"));
    }
    param_filter(reg, res_type, param, modifier, &values, name, value)
        .map(|f| Ok(narrowed(param, over_parts(param, f))))
}

/// A filter on a narrowed reference parameter ([`crate::registry::SearchParam::narrows`]) as
/// the same filter on the rows that answer it: the other parameter's references to its one
/// target type. A value naming another type, or an absolute reference that names no type,
/// can never be among its values. `:identifier` tokens are its own and stay as they are.
fn narrowed(param: &SearchParam, f: Filter) -> Filter {
    let Some(n) = &param.narrows else {
        return f;
    };
    match f {
        Filter::Reference { values, .. } => {
            let values: Vec<ReferenceValue> = values
                .into_iter()
                .filter_map(|mut v| match &v.target_type {
                    Some(t) if *t != n.target_type => None,
                    Some(_) => Some(v),
                    None if v.url.is_some() => None,
                    None => {
                        v.target_type = Some(n.target_type.clone());
                        Some(v)
                    }
                })
                .collect();
            if values.is_empty() {
                // No resource: what `_id:missing=true` matches.
                return Filter::Id(Vec::new());
            }
            Filter::Reference {
                param: n.param.clone(),
                values,
            }
        }
        Filter::Missing { kind, missing, .. } => Filter::Missing {
            param: n.param.clone(),
            kind,
            missing,
            target_type: Some(n.target_type.clone()),
        },
        f => f,
    }
}

/// A filter on a parameter that is a union of others ([`SearchParam::union_of`]) as the same
/// filter on each of them: one must match, or, for a filter that asks for the absence of a
/// value (`:not`, `:not-in`, `:missing=true`), all must.
fn over_parts(param: &SearchParam, f: Filter) -> Filter {
    if param.union_of.is_empty() {
        return f;
    }
    // A repetition belongs to one part: one EXISTS over all the parts' rows, which PostgreSQL
    // can still drive from the composite index, where an OR of two could only be probed row by
    // row (combo-code-value-quantity at 1M resources: 440–720 ms ORed, 13–19 ms as one).
    if let Filter::Composite { values, .. } = f {
        return Filter::Composite {
            params: param.union_of.clone(),
            values,
        };
    }
    let absent = matches!(
        f,
        Filter::Token { not: true, .. }
            | Filter::TokenIn { not: true, .. }
            | Filter::Missing { missing: true, .. }
    );
    let parts = param.union_of.iter().map(|code| f.on_param(code)).collect();
    if absent {
        Filter::And(parts)
    } else {
        Filter::Or(parts)
    }
}

/// `_text`, `_content` and `_list`, which the server answers from its own tables rather than
/// from a parameter's index rows.
fn resource_level(
    code: &str,
    modifier: Option<&str>,
    chain_rest: Option<&str>,
    name: &str,
    value: &str,
) -> Result<Option<Result<Filter, String>>, SearchError> {
    if !matches!(code, "_text" | "_content" | "_list") {
        return Ok(None);
    }
    if let Some(m) = modifier {
        return Err(unsupported(code, m, "this parameter takes no modifier"));
    }
    if chain_rest.is_some() {
        return Err(SearchError::Invalid(format!(
            "'{name}': {code} is not a reference parameter, so it cannot be chained"
        )));
    }
    let values: Vec<String> = split_values(value)
        .iter()
        .map(|v| unescape(v))
        .filter(|v| !v.trim().is_empty())
        .collect();
    if values.is_empty() {
        return Err(invalid(name, value, "a value is required"));
    }
    Ok(Some(match code {
        "_list" => {
            if let Some(f) = values.iter().find(|v| v.starts_with('$')) {
                Err(format!(
                    "'_list={f}': functional lists are not supported; name a List by its id"
                ))
            } else {
                Ok(Filter::List(values))
            }
        }
        _ => Ok(Filter::Text {
            field: if code == "_text" {
                TextField::Narrative
            } else {
                TextField::Content
            },
            values: values.iter().map(|v| normalize(v)).collect(),
        }),
    }))
}

fn param_filter(
    reg: &Registry,
    res_type: &str,
    param: &Arc<SearchParam>,
    modifier: Option<&str>,
    values: &[String],
    name: &str,
    raw: &str,
) -> Result<Filter, SearchError> {
    let code = param.code.clone();
    let no_modifier = |allowed: &str| -> Result<(), SearchError> {
        match modifier {
            None => Ok(()),
            Some(m) => Err(unsupported(&code, m, allowed)),
        }
    };
    Ok(match param.kind {
        ParamType::Token => match modifier {
            None | Some("not") => Filter::Token {
                param: code,
                not: modifier.is_some(),
                values: values.iter().map(|v| token(v)).collect(),
            },
            Some("text") => Filter::TokenText {
                param: code,
                values: values.iter().map(|v| normalize(&unescape(v))).collect(),
            },
            Some("of-type") => Filter::Token {
                param: format!("{code}:of-type"),
                not: false,
                values: values
                    .iter()
                    .map(|v| {
                        of_type(v).ok_or_else(|| {
                            invalid(
                                name,
                                raw,
                                "':of-type' takes [type system]|[type code]|[value]",
                            )
                        })
                    })
                    .collect::<Result<_, _>>()?,
            },
            Some(m @ ("in" | "not-in")) => Filter::TokenIn {
                param: code,
                not: m == "not-in",
                value_sets: values.iter().map(|v| unescape(v)).collect(),
            },
            Some(m @ ("above" | "below")) => Filter::TokenHierarchy {
                param: code,
                below: m == "below",
                values: values
                    .iter()
                    .map(|v| match token(v) {
                        TokenValue {
                            system: Some(Some(system)),
                            code: Some(code),
                        } => Ok((system, code)),
                        _ => Err(invalid(
                            name,
                            raw,
                            &format!(
                                "':{m}' takes system|code, the system being a CodeSystem stored on this server"
                            ),
                        )),
                    })
                    .collect::<Result<_, _>>()?,
            },
            Some(m) => {
                return Err(unsupported(
                    &code,
                    m,
                    "token parameters take :not, :text, :of-type, :in, :not-in, :above, :below and :missing",
                ));
            }
        },
        ParamType::String => {
            let how = match modifier {
                None => StringMatch::Prefix,
                Some("exact") => StringMatch::Exact,
                Some("contains") => StringMatch::Contains,
                Some(m) => {
                    return Err(unsupported(
                        &code,
                        m,
                        "string parameters take :exact, :contains and :missing",
                    ));
                }
            };
            Filter::String {
                param: code,
                how,
                values: values
                    .iter()
                    .map(|v| {
                        let v = unescape(v);
                        if how == StringMatch::Exact {
                            v
                        } else {
                            normalize(&v)
                        }
                    })
                    .collect(),
            }
        }
        ParamType::Date => {
            no_modifier("date parameters take only :missing")?;
            Filter::Date {
                param: code,
                values: values
                    .iter()
                    .map(|v| date_value(name, v))
                    .collect::<Result<_, _>>()?,
            }
        }
        ParamType::Number => {
            no_modifier("number parameters take only :missing")?;
            Filter::Number {
                param: code,
                values: values
                    .iter()
                    .map(|v| number_value(name, v))
                    .collect::<Result<_, _>>()?,
            }
        }
        ParamType::Quantity => {
            no_modifier("quantity parameters take only :missing")?;
            Filter::Quantity {
                param: code,
                values: values
                    .iter()
                    .map(|v| quantity_value(name, v))
                    .collect::<Result<_, _>>()?,
            }
        }
        ParamType::Uri => {
            let how = match modifier {
                None => UriMatch::Exact,
                Some("above") => UriMatch::Above,
                Some("below") => UriMatch::Below,
                Some(m) => {
                    return Err(unsupported(
                        &code,
                        m,
                        "uri parameters take :above, :below and :missing",
                    ));
                }
            };
            Filter::Uri {
                param: code,
                how,
                values: values.iter().map(|v| unescape(v)).collect(),
            }
        }
        ParamType::Reference => match modifier {
            Some("identifier") => Filter::Token {
                param: format!("{code}:identifier"),
                not: false,
                values: values.iter().map(|v| token(v)).collect(),
            },
            Some(m) if reg_has_type(m) => {
                can_point_at(param, m, name)?;
                Filter::Reference {
                    param: code,
                    values: values
                        .iter()
                        .map(|v| {
                            let mut r = reference_value(&unescape(v));
                            if r.target_type.is_none() && r.url.is_none() {
                                r.target_type = Some(m.to_owned());
                            }
                            r
                        })
                        .collect(),
                }
            }
            Some(m) => {
                return Err(unsupported(
                    &code,
                    m,
                    "reference parameters take :[type], :identifier and :missing",
                ));
            }
            None => Filter::Reference {
                param: code,
                values: values
                    .iter()
                    .map(|v| reference_value(&unescape(v)))
                    .collect(),
            },
        },
        ParamType::Composite => {
            no_modifier("composite parameters take no modifier")?;
            composite(reg, res_type, param, values, name, raw)?
        }
        ParamType::Special => {
            return Err(SearchError::Invalid(format!(
                "'{code}' is a special parameter this server does not evaluate"
            )));
        }
    })
}

/// `param:Type`: the type must be one the parameter can refer to.
fn can_point_at(param: &SearchParam, ty: &str, name: &str) -> Result<(), SearchError> {
    if param.targets.is_empty() || param.targets.iter().any(|t| t == ty) {
        return Ok(());
    }
    Err(SearchError::Invalid(format!(
        "'{name}': {} cannot point at a {ty} (targets: {})",
        param.code,
        param.targets.join(", ")
    )))
}

fn reg_has_type(t: &str) -> bool {
    hds_fhir_model::r4().is_resource_type(t)
}

/// `[value]$[value]...`: each part parsed as its component parameter would parse it.
fn composite(
    reg: &Registry,
    res_type: &str,
    param: &SearchParam,
    values: &[String],
    name: &str,
    raw: &str,
) -> Result<Filter, SearchError> {
    let mut ors = Vec::new();
    for v in values {
        let parts = split_on(v, '$');
        if parts.len() != param.components.len() {
            return Err(invalid(
                name,
                raw,
                &format!(
                    "expected {} components separated by '$'",
                    param.components.len()
                ),
            ));
        }
        let mut ands = Vec::new();
        for ((url, _), part) in param.components.iter().zip(parts) {
            let (code, _) = reg.by_url(url).ok_or_else(|| {
                SearchError::Invalid(format!("component {url} of {} is unknown", param.code))
            })?;
            // The component's own definition decides how its part parses; it need not be a
            // parameter of this type (R4 defines some only as components).
            let cp = reg
                .get(res_type, code)
                .or_else(|| reg.any_by_url(url))
                .ok_or_else(|| {
                    SearchError::Invalid(format!(
                        "component {code} of {} has no definition here",
                        param.code
                    ))
                })?;
            if part.is_empty() {
                return Err(invalid(name, raw, "every component needs a value"));
            }
            ands.push(param_filter(reg, res_type, cp, None, &[part], name, raw)?);
        }
        ors.push(ands);
    }
    Ok(Filter::Composite {
        params: vec![param.code.clone()],
        values: ors,
    })
}

fn parse_chain(
    reg: &Registry,
    param: &Arc<SearchParam>,
    modifier: Option<&str>,
    rest: &str,
    value: &str,
    name: &str,
) -> Result<Result<Filter, String>, SearchError> {
    if param.kind != ParamType::Reference {
        return Err(SearchError::Invalid(format!(
            "'{name}': {} is a {} parameter, and only reference parameters can be chained",
            param.code,
            param.kind.as_str()
        )));
    }
    let next_code = rest.split([':', '.']).next().unwrap_or_default();
    if let Some(t) = modifier {
        can_point_at(param, t, name)?;
    }
    let candidates: Vec<String> = match modifier {
        Some(t) => vec![t.to_owned()],
        None if !param.targets.is_empty() => param.targets.clone(),
        None => hds_fhir_model::r4()
            .resource_types()
            .map(str::to_owned)
            .collect(),
    };
    let mut targets = Vec::new();
    for t in candidates {
        let known = next_code == "_id"
            || next_code == "_lastUpdated"
            || next_code == "_has"
            || reg.get(&t, next_code).is_some();
        if !known {
            continue;
        }
        match parse_filter(reg, &t, rest, value)? {
            Ok(f) => targets.push((t, Box::new(f))),
            Err(_) => continue,
        }
    }
    if targets.is_empty() {
        return Err(SearchError::Invalid(format!(
            "'{name}': no target type of {} has a search parameter '{next_code}'",
            param.code
        )));
    }
    // A narrowed parameter's targets are its rows' parameter's of its one type.
    let param = match &param.narrows {
        Some(n) => {
            targets.retain(|(t, _)| *t == n.target_type);
            n.param.clone()
        }
        None => param.code.clone(),
    };
    if targets.is_empty() {
        return Err(SearchError::Invalid(format!(
            "'{name}': no target type of {param} has a search parameter '{next_code}'"
        )));
    }
    Ok(Ok(Filter::Chain { param, targets }))
}

/// `Type:param:rest` of `_has:Type:param:rest=value`.
fn parse_has(
    reg: &Registry,
    res_type: &str,
    rest: &str,
    value: &str,
) -> Result<Result<Filter, String>, SearchError> {
    let mut it = rest.splitn(3, ':');
    let (Some(ty), Some(param), Some(inner)) = (it.next(), it.next(), it.next()) else {
        return Err(SearchError::Invalid(format!(
            "'_has:{rest}': expected _has:[type]:[reference parameter]:[parameter]"
        )));
    };
    if !reg_has_type(ty) {
        return Err(SearchError::Invalid(format!(
            "'_has:{rest}': {ty} is not a resource type"
        )));
    }
    let Some(p) = reg.get(ty, param) else {
        return Err(SearchError::Invalid(format!(
            "'_has:{rest}': {param} is not a search parameter of {ty}"
        )));
    };
    if p.kind != ParamType::Reference
        || (!p.targets.is_empty() && !p.targets.iter().any(|t| t == res_type))
        || p.narrows
            .as_ref()
            .is_some_and(|n| n.target_type != res_type)
    {
        return Err(SearchError::Invalid(format!(
            "'_has:{rest}': {ty}.{param} does not refer to {res_type}"
        )));
    }
    let inner = match parse_filter(reg, ty, inner, value)? {
        Ok(f) => f,
        Err(reason) => return Err(SearchError::Invalid(format!("'_has:{rest}': {reason}"))),
    };
    // The referring rows are to `res_type`, so a narrowed parameter's are its rows' own.
    let param = p.narrows.as_ref().map_or(param, |n| n.param.as_str());
    Ok(Ok(Filter::Has {
        res_type: ty.to_owned(),
        param: param.to_owned(),
        inner: Box::new(inner),
    }))
}

/// A custom parameter whose index is still being built cannot answer yet.
pub(crate) fn pending(code: &str) -> SearchError {
    SearchError::Invalid(format!(
        "search parameter '{code}' is not usable yet: its index is incomplete until a $reindex covering its base types finishes (see /_operations/reindex)"
    ))
}

fn invalid(param: &str, value: &str, reason: &str) -> SearchError {
    SearchError::InvalidValue {
        param: param.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    }
}

fn unsupported(param: &str, modifier: &str, reason: &str) -> SearchError {
    SearchError::UnsupportedModifier {
        param: param.to_owned(),
        modifier: modifier.to_owned(),
        reason: reason.to_owned(),
    }
}

/// Splits on `sep` where it is not escaped with `\`; escapes are kept for [`unescape`].
fn split_on(value: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        let last = out.last_mut().expect("never empty");
        match c {
            '\\' => {
                last.push('\\');
                if let Some(n) = chars.next() {
                    last.push(n);
                }
            }
            c if c == sep => out.push(String::new()),
            c => last.push(c),
        }
    }
    out
}

pub(crate) fn split_values(value: &str) -> Vec<String> {
    split_on(value, ',')
}

pub(crate) fn unescape(v: &str) -> String {
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

/// `system|type code|value` of `:of-type`, as the row `(system, "type code|value")`.
fn of_type(v: &str) -> Option<TokenValue> {
    let parts = split_on(v, '|');
    let [system, type_code, value] = parts.as_slice() else {
        return None;
    };
    if type_code.is_empty() || value.is_empty() {
        return None;
    }
    Some(TokenValue {
        system: Some((!system.is_empty()).then(|| unescape(system))),
        code: Some(format!("{}|{}", unescape(type_code), unescape(value))),
    })
}

fn prefix(v: &str) -> (Prefix, &str) {
    let p = match v.get(..2) {
        Some("eq") => Prefix::Eq,
        Some("ne") => Prefix::Ne,
        Some("gt") => Prefix::Gt,
        Some("lt") => Prefix::Lt,
        Some("ge") => Prefix::Ge,
        Some("le") => Prefix::Le,
        Some("sa") => Prefix::Sa,
        Some("eb") => Prefix::Eb,
        Some("ap") => Prefix::Ap,
        _ => return (Prefix::Eq, v),
    };
    (p, &v[2..])
}

fn date_value(param: &str, v: &str) -> Result<DateValue, SearchError> {
    let (prefix, rest) = prefix(v);
    let (start, end) = date::range(rest).ok_or_else(|| {
        invalid(param, v, "expected a FHIR date, dateTime or instant (e.g. 2024-03-05 or 2024-03-05T10:00:00Z), optionally prefixed (eq, ne, gt, lt, ge, le, sa, eb, ap)")
    })?;
    Ok(DateValue { prefix, start, end })
}

/// A decimal literal and the range its precision implies (half a unit of the last digit).
fn number_value(param: &str, v: &str) -> Result<NumberValue, SearchError> {
    let (prefix, rest) = prefix(v);
    let bad = || {
        invalid(
            param,
            v,
            "expected a decimal number, optionally prefixed (eq, ne, gt, lt, ge, le, sa, eb, ap)",
        )
    };
    let (mantissa, exp) = match rest.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().map_err(|_| bad())?),
        None => (rest, 0),
    };
    let unsigned = mantissa.strip_prefix(['-', '+']).unwrap_or(mantissa);
    if unsigned.is_empty()
        || !unsigned.chars().all(|c| c.is_ascii_digit() || c == '.')
        || unsigned.matches('.').count() > 1
        || unsigned == "."
    {
        return Err(bad());
    }
    let value: f64 = rest.parse().map_err(|_| bad())?;
    if !value.is_finite() {
        return Err(bad());
    }
    let decimals = unsigned.split_once('.').map_or(0, |(_, f)| f.len() as i32) - exp;
    let half = 0.5 * 10f64.powi(-decimals);
    Ok(NumberValue {
        prefix,
        value: rest.to_owned(),
        lo: format!("{}", value - half),
        hi: format!("{}", value + half),
    })
}

/// `[prefix][number]|[system]|[code]`, or just the number.
fn quantity_value(param: &str, v: &str) -> Result<QuantityValue, SearchError> {
    let parts = split_on(v, '|');
    let number = number_value(param, &parts[0])?;
    let (system, code) = match parts.len() {
        1 => (None, None),
        3 => {
            let non_empty = |s: &str| (!s.is_empty()).then(|| unescape(s));
            (non_empty(&parts[1]), non_empty(&parts[2]))
        }
        _ => {
            return Err(invalid(
                param,
                v,
                "expected [prefix]number or [prefix]number|system|code",
            ));
        }
    };
    let canonical = match (&system, &code) {
        (Some(s), Some(c)) if s == crate::ucum::UCUM_SYSTEM => crate::ucum::conversion(c)
            .and_then(|conv| Some((conv.dimension.clone(), canonical_number(&number, &conv)?))),
        _ => None,
    };
    Ok(QuantityValue {
        number,
        canonical,
        system,
        code,
    })
}

/// `n` in base units. Conversions are increasing (factor > 0), so the precision range maps
/// onto the converted range.
fn canonical_number(n: &NumberValue, conv: &crate::ucum::Conversion) -> Option<NumberValue> {
    let c = |s: &str| -> Option<String> { Some(crate::ucum::decimal(conv.apply(s.parse().ok()?))) };
    Some(NumberValue {
        prefix: n.prefix,
        value: c(&n.value)?,
        lo: c(&n.lo)?,
        hi: c(&n.hi)?,
    })
}

fn reference_value(v: &str) -> ReferenceValue {
    let absolute = v.contains("://") || v.starts_with("urn:");
    let (url, version) = match (absolute, v.split_once('|')) {
        (true, Some((u, ver))) => (Some(u.to_owned()), Some(ver.to_owned())),
        (true, None) => (Some(v.to_owned()), None),
        _ => (None, None),
    };
    let (ty, id) = crate::index::parse_reference(v);
    match (ty, id, absolute) {
        (Some(t), Some(i), _) => ReferenceValue {
            target_type: Some(t.to_owned()),
            id: Some(i.to_owned()),
            url,
            version,
        },
        (_, _, true) => ReferenceValue {
            target_type: None,
            id: None,
            url,
            version,
        },
        _ => ReferenceValue {
            target_type: None,
            id: Some(v.to_owned()),
            url: None,
            version: None,
        },
    }
}

mod system;
pub use system::{parse_system, split_types};

#[cfg(test)]
mod tests;
