//! System-wide search (`GET [base]?_type=...`): one query over several resource types. Each
//! parameter must mean the same on every type searched (R4 §3.1.1.3: with no `_type`, only the
//! parameters every resource has), so the query is parsed per type and the parses must agree.

use super::{Query, SearchError, parse_with};
use crate::registry::Registry;

type Pairs = Vec<(String, String)>;

/// The resource types `_type` names (comma-separated, repeatable), or every type when absent;
/// and the remaining parameters.
pub fn split_types(pairs: &[(String, String)]) -> Result<(Vec<String>, Pairs), SearchError> {
    let model = hds_fhir_model::r4();
    let mut types: Vec<String> = Vec::new();
    let mut rest = Vec::new();
    for (k, v) in pairs {
        if k != "_type" {
            rest.push((k.clone(), v.clone()));
            continue;
        }
        for t in v.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !model.is_resource_type(t) {
                return Err(SearchError::InvalidValue {
                    param: "_type".into(),
                    value: v.clone(),
                    reason: format!("'{t}' is not a resource type"),
                });
            }
            if !types.iter().any(|x| x == t) {
                types.push(t.to_owned());
            }
        }
    }
    if types.is_empty() {
        types = model.resource_types().map(str::to_owned).collect();
    }
    types.sort();
    Ok((types, rest))
}

/// `pairs` parsed for a search over all of `types` (not empty).
pub fn parse_system(
    reg: &Registry,
    types: &[String],
    pairs: &[(String, String)],
) -> Result<Query, SearchError> {
    let (first, others) = types
        .split_first()
        .ok_or_else(|| SearchError::Invalid("_type names no resource type".into()))?;
    let base = parse_with(reg, first, pairs)?;
    for t in others {
        let q = parse_with(reg, t, pairs)?;
        let differs =
            |a: &Query, b: &Query| a.applied.iter().find(|p| !b.applied.contains(p)).cloned();
        if let Some((name, _)) = differs(&base, &q).or_else(|| differs(&q, &base)) {
            let (has, lacks) = if base.applied.iter().any(|(n, _)| *n == name) {
                (first, t)
            } else {
                (t, first)
            };
            return Err(SearchError::Invalid(format!(
                "'{name}' applies to {has} but not to {lacks}; a search across types takes only parameters all of them share (narrow it with _type)"
            )));
        }
        if q.clauses != base.clauses || q.result != base.result {
            return Err(SearchError::Invalid(format!(
                "the parameters mean different things for {first} and {t}; search them separately"
            )));
        }
    }
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn common_parameters_work_across_types_and_others_are_refused() {
        let reg = crate::registry::r4();
        let (types, rest) =
            split_types(&pairs(&[("_type", "Patient,Observation"), ("_id", "a")])).unwrap();
        assert_eq!(types, ["Observation", "Patient"]);
        let q = parse_system(reg, &types, &rest).unwrap();
        assert_eq!(q.clauses.len(), 1);

        let err = parse_system(reg, &types, &pairs(&[("name", "x")])).unwrap_err();
        assert!(
            err.to_string()
                .contains("'name' applies to Patient but not to Observation")
        );

        // Shared by both, with the same type: fine.
        let q = parse_system(reg, &types, &pairs(&[("_tag", "a|b"), ("_text", "fever")]));
        let q = q.unwrap();
        assert_eq!(q.clauses.len(), 2, "{q:?}");
    }

    #[test]
    fn type_list_is_checked() {
        assert!(split_types(&pairs(&[("_type", "Patient,Nope")])).is_err());
        let (all, _) = split_types(&[]).unwrap();
        assert!(all.len() > 140 && all.iter().any(|t| t == "Patient"));
    }
}
