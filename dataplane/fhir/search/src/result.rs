//! The result parameters: what to sort by, what to include beside the matches, whether to
//! count them, and how much of each resource to return.

use crate::query::{SearchError, split_values};
use crate::registry::{ParamType, Registry};

#[derive(Debug, Clone, PartialEq)]
pub struct SortKey {
    /// A parameter code, `_id` or `_lastUpdated`.
    pub param: String,
    pub kind: Option<ParamType>,
    pub descending: bool,
    /// The parameters whose rows hold its values, when it is a union of others
    /// (`SearchParam::union_of`); empty when it has rows of its own.
    pub union_of: Vec<String>,
    /// Only references to this type count: a narrowed reference parameter's values are its
    /// rows' parameter's of that type (`SearchParam::narrows`, whose code `param` then is).
    pub target_type: Option<String>,
}

/// `_include=Source:param[:Target]` or `_revinclude=...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Include {
    pub source: String,
    /// The reference parameters followed: the one named, or for `*` every one of `source`
    /// that has index rows. Always bound, so the lookup starts from (type, parameter) like
    /// every other reference search, and no index led by the target is needed.
    pub params: Vec<String>,
    pub target: Option<String>,
    pub iterate: bool,
    pub reverse: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    None,
    Estimate,
    Accurate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Summary {
    True,
    Text,
    Data,
    Count,
    False,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultParams {
    pub sort: Vec<SortKey>,
    pub includes: Vec<Include>,
    pub total: Option<Total>,
    pub summary: Option<Summary>,
    pub elements: Option<Vec<String>>,
}

/// Parameters this server recognises but does not evaluate.
const UNSUPPORTED: &[&str] = &["_query", "_contained", "_containedType", "_filter"];

/// `None`: not a result parameter. `Some(true)`: applied. `Some(false)`: recognised but not
/// supported (the caller handles it like an unknown parameter).
pub fn parse_result_param(
    reg: &Registry,
    res_type: &str,
    name: &str,
    value: &str,
    out: &mut ResultParams,
) -> Result<Option<bool>, SearchError> {
    let (base, modifier) = match name.split_once(':') {
        Some((b, m)) => (b, Some(m)),
        None => (name, None),
    };
    match base {
        "_sort" => {
            for key in split_values(value) {
                let (descending, code) = match key.strip_prefix('-') {
                    Some(c) => (true, c.to_owned()),
                    None => (false, key.clone()),
                };
                let mut union_of = Vec::new();
                let mut target_type = None;
                let mut code = code;
                let kind = if code == "_id" || code == "_lastUpdated" {
                    None
                } else {
                    let p = reg.get(res_type, &code).ok_or_else(|| {
                        SearchError::Invalid(format!(
                            "cannot sort on '{code}': it is not a search parameter of {res_type}"
                        ))
                    })?;
                    if p.pending {
                        return Err(crate::query::pending(&code));
                    }
                    if matches!(p.kind, ParamType::Composite | ParamType::Special) {
                        return Err(SearchError::Invalid(format!(
                            "cannot sort on '{code}': {} parameters have no order",
                            p.kind.as_str()
                        )));
                    }
                    union_of.clone_from(&p.union_of);
                    if let Some(n) = &p.narrows {
                        target_type = Some(n.target_type.clone());
                        code.clone_from(&n.param);
                    }
                    Some(p.kind)
                };
                out.sort.push(SortKey {
                    param: code,
                    kind,
                    descending,
                    union_of,
                    target_type,
                });
            }
            Ok(Some(true))
        }
        "_include" | "_revinclude" => {
            let iterate = match modifier {
                None => false,
                Some("iterate" | "recurse") => true,
                Some(m) => {
                    return Err(SearchError::Invalid(format!(
                        "'{name}': unknown modifier ':{m}' (use :iterate)"
                    )));
                }
            };
            let reverse = base == "_revinclude";
            out.includes
                .push(include(reg, name, value, iterate, reverse)?);
            Ok(Some(true))
        }
        "_total" => {
            out.total = Some(match value {
                "none" => Total::None,
                "estimate" => Total::Estimate,
                "accurate" => Total::Accurate,
                _ => {
                    return Err(SearchError::InvalidValue {
                        param: name.into(),
                        value: value.into(),
                        reason: "expected none, estimate or accurate".into(),
                    });
                }
            });
            Ok(Some(true))
        }
        "_summary" => {
            out.summary = Some(match value {
                "true" => Summary::True,
                "text" => Summary::Text,
                "data" => Summary::Data,
                "count" => Summary::Count,
                "false" => Summary::False,
                _ => {
                    return Err(SearchError::InvalidValue {
                        param: name.into(),
                        value: value.into(),
                        reason: "expected true, text, data, count or false".into(),
                    });
                }
            });
            Ok(Some(true))
        }
        "_elements" => {
            let list: Vec<String> = value
                .split(',')
                .map(|e| e.trim())
                .filter(|e| !e.is_empty())
                .map(|e| {
                    e.strip_prefix(&format!("{res_type}."))
                        .unwrap_or(e)
                        .to_owned()
                })
                .collect();
            out.elements = Some(list);
            Ok(Some(true))
        }
        b if UNSUPPORTED.contains(&b) => Ok(Some(false)),
        _ => Ok(None),
    }
}

fn include(
    reg: &Registry,
    name: &str,
    value: &str,
    iterate: bool,
    reverse: bool,
) -> Result<Include, SearchError> {
    let bad = |reason: String| SearchError::InvalidValue {
        param: name.into(),
        value: value.into(),
        reason,
    };
    let mut parts = value.split(':');
    let mut narrowed_to = None;
    let source = parts.next().unwrap_or_default();
    let param = parts.next();
    let target = parts.next();
    if !hds_fhir_model::r4().is_resource_type(source) {
        return Err(bad(format!(
            "'{source}' is not a resource type (expected Type:param[:Target] or Type:*)"
        )));
    }
    let params = match param {
        Some("*") => reg
            .params(source)
            .filter(|sp| {
                sp.kind == ParamType::Reference
                    && !sp.pending
                    && sp.union_of.is_empty()
                    && sp.narrows.is_none()
            })
            .map(|sp| sp.code.clone())
            .collect(),
        Some(p) => {
            let sp = reg
                .get(source, p)
                .ok_or_else(|| bad(format!("'{p}' is not a search parameter of {source}")))?;
            if sp.kind != ParamType::Reference {
                return Err(bad(format!(
                    "'{p}' of {source} is not a reference parameter"
                )));
            }
            if sp.pending {
                return Err(crate::query::pending(p));
            }
            if let Some(t) = target
                && !sp.targets.is_empty()
                && !sp.targets.iter().any(|x| x == t)
            {
                return Err(bad(format!("{source}.{p} cannot point at a {t}")));
            }
            // A narrowed parameter follows its rows' parameter to its one type, and to no
            // other.
            if let Some(n) = &sp.narrows {
                if target.is_some_and(|t| t != n.target_type) {
                    Vec::new()
                } else {
                    narrowed_to = Some(n.target_type.clone());
                    vec![n.param.clone()]
                }
            } else {
                vec![p.to_owned()]
            }
        }
        None => return Err(bad("expected Type:param[:Target] or Type:*".into())),
    };
    if let Some(t) = target
        && !hds_fhir_model::r4().is_resource_type(t)
    {
        return Err(bad(format!("'{t}' is not a resource type")));
    }
    Ok(Include {
        source: source.to_owned(),
        params,
        target: target.map(str::to_owned).or(narrowed_to),
        iterate,
        reverse,
    })
}
