//! Index extraction: the rows a resource contributes to the search tables. Each parameter's
//! FHIRPath expression selects nodes; the parameter's type and the node's shape (a Coding, a
//! CodeableConcept, a Period, ...) decide the rows.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use hds_fhir_store::{
    CompositeEntry, DateEntry, IndexEntries, NumberEntry, QuantityEntry, ReferenceEntry,
    StringEntry, TokenEntry, UriEntry,
};
use hds_fhirpath::Item;
use serde_json::Value;

use crate::date;
use crate::normalize::normalize;
use crate::registry::{ParamType, Registry, SearchParam};

/// Index rows of one resource under the built-in R4 parameters.
pub fn extract(resource: &Value) -> IndexEntries {
    extract_with(crate::registry::r4(), resource)
}

pub fn extract_with(registry: &Registry, resource: &Value) -> IndexEntries {
    let mut out = IndexEntries::default();
    let Some(res_type) = resource.get("resourceType").and_then(Value::as_str) else {
        return out;
    };
    for param in registry.params(res_type) {
        // Its values are its parts' rows (`SearchParam::union_of`).
        if !param.union_of.is_empty() {
            continue;
        }
        let Some(expr) = &param.expression else {
            continue;
        };
        // An expression that fails on this resource (a singleton function on a repeating
        // element, say) indexes nothing for it; the write itself must not fail over search.
        let Ok(items) = expr.evaluate(resource) else {
            continue;
        };
        if param.kind == ParamType::Composite {
            composite(&mut out, registry, resource, param, &items);
            continue;
        }
        // Its references are rows of another parameter (`SearchParam::narrows`); only the
        // identifiers it holds, for `:identifier`, are its own.
        if param.narrows.is_some() {
            for item in &items {
                if let Item::Node { value, .. } = item {
                    reference_identifier(&mut out, &param.code, value);
                }
            }
            continue;
        }
        for item in &items {
            index_item(&mut out, &param.code, param.kind, item);
        }
    }
    out.text = Some(crate::fulltext::entry(resource));
    out
}

/// Each repetition the composite's expression selects is a group; each component's values in
/// it are indexed as that component's own type would be, then kept as composite rows.
fn composite(
    out: &mut IndexEntries,
    registry: &Registry,
    resource: &Value,
    param: &SearchParam,
    items: &[Item<'_>],
) {
    for (grp, item) in items.iter().enumerate() {
        let mut group: Vec<CompositeEntry> = Vec::new();
        for (comp, (url, expr)) in param.components.iter().enumerate() {
            // A repetition missing a component can never match the composite: no rows for it
            // (most Observations have only one of the value[x] that composites pair with code).
            let before = group.len();
            let Some((_, kind)) = registry.by_url(url) else {
                group.clear();
                break;
            };
            let Ok(values) = expr.evaluate_on(resource, item.clone()) else {
                group.clear();
                break;
            };
            let mut rows = IndexEntries::default();
            for v in &values {
                index_item(&mut rows, "", kind, v);
            }
            let entry = |e: CompositeEntry| CompositeEntry {
                param: param.code.clone(),
                grp: grp as i32,
                comp: comp as i16,
                ..e
            };
            let IndexEntries {
                tokens,
                strings,
                dates,
                numbers,
                quantities,
                references,
                uris,
                ..
            } = rows;
            // `:of-type` rows are not component values.
            group.extend(tokens.into_iter().filter(|t| t.param.is_empty()).map(|t| {
                entry(CompositeEntry {
                    system: t.system,
                    code: Some(t.code),
                    display: t.display,
                    ..Default::default()
                })
            }));
            group.extend(strings.into_iter().map(|x| {
                entry(CompositeEntry {
                    norm: Some(x.norm),
                    exact: Some(x.exact),
                    ..Default::default()
                })
            }));
            group.extend(dates.into_iter().map(|d| {
                entry(CompositeEntry {
                    dlo: Some(d.lo),
                    dhi: Some(d.hi),
                    ..Default::default()
                })
            }));
            group.extend(numbers.into_iter().map(|n| {
                entry(CompositeEntry {
                    value: Some(n.value),
                    ..Default::default()
                })
            }));
            group.extend(quantities.into_iter().map(|q| {
                let (canon_dim, canon_lo, canon_hi) = match q.canonical {
                    Some(c) => (Some(c.dimension), c.lo, c.hi),
                    None => (None, None, None),
                };
                entry(CompositeEntry {
                    system: q.system,
                    code: q.code,
                    unit: q.unit,
                    lo: q.lo,
                    hi: q.hi,
                    canon_dim,
                    canon_lo,
                    canon_hi,
                    ..Default::default()
                })
            }));
            group.extend(references.into_iter().map(|r| {
                entry(CompositeEntry {
                    target_type: r.target_type,
                    target_id: r.target_id,
                    url: r.url,
                    version: r.version,
                    ..Default::default()
                })
            }));
            group.extend(uris.into_iter().map(|u| {
                entry(CompositeEntry {
                    uri: Some(u.uri),
                    ..Default::default()
                })
            }));
            if group.len() == before {
                group.clear();
                break;
            }
        }
        out.composites.append(&mut group);
    }
}

fn index_item(out: &mut IndexEntries, code: &str, kind: ParamType, item: &Item<'_>) {
    match kind {
        ParamType::Token => token(out, code, item),
        ParamType::String => match item {
            Item::Node { value, .. } => strings(out, code, value),
            Item::String(s) => push_string(out, code, s),
            _ => {}
        },
        ParamType::Date => {
            if let Item::Node { value, .. } = item {
                dates(out, code, value);
            } else if let Item::String(s) = item
                && let Some((lo, hi)) = date::range(s)
            {
                push_date(out, code, lo, hi);
            }
        }
        ParamType::Number => {
            if let Item::Node {
                value: Value::Number(n),
                ..
            } = item
            {
                out.numbers.push(NumberEntry {
                    param: code.to_owned(),
                    value: n.to_string(),
                });
            } else if let Item::Integer(i) = item {
                out.numbers.push(NumberEntry {
                    param: code.to_owned(),
                    value: i.to_string(),
                });
            }
        }
        ParamType::Quantity => {
            if let Item::Node { value, .. } = item {
                quantity(out, code, value);
            }
        }
        ParamType::Reference => match item {
            Item::Node { value, .. } => reference(out, code, value),
            Item::Resolved { resource_type, id } => out.references.push(ReferenceEntry {
                param: code.to_owned(),
                target_type: Some(resource_type.to_string()),
                target_id: Some(id.to_string()),
                url: None,
                version: None,
            }),
            _ => {}
        },
        ParamType::Uri => {
            if let Some(s) = item_str(item) {
                out.uris.push(UriEntry {
                    param: code.to_owned(),
                    uri: s.to_owned(),
                });
            }
        }
        ParamType::Composite | ParamType::Special => {}
    }
}

fn item_str<'a>(item: &'a Item<'_>) -> Option<&'a str> {
    match item {
        Item::Node {
            value: Value::String(s),
            ..
        } => Some(s),
        Item::String(s) => Some(s),
        _ => None,
    }
}

fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn token(out: &mut IndexEntries, param: &str, item: &Item<'_>) {
    let value = match item {
        Item::Node { value, .. } => *value,
        Item::Boolean(b) => return push_token(out, param, None, &b.to_string(), None),
        Item::String(c) => return push_token(out, param, None, c, None),
        Item::Integer(i) => return push_token(out, param, None, &i.to_string(), None),
        _ => return,
    };
    match value {
        Value::String(c) => push_token(out, param, None, c, None),
        Value::Bool(b) => push_token(out, param, None, &b.to_string(), None),
        Value::Number(n) => push_token(out, param, None, &n.to_string(), None),
        Value::Object(o) => {
            if let Some(codings) = o.get("coding").and_then(Value::as_array) {
                // CodeableConcept: every coding, with the concept's text as their display too.
                let text = s(value, "text");
                for c in codings {
                    coding(out, param, c, text);
                }
                if codings.is_empty()
                    && let Some(t) = text
                {
                    push_token_text(out, param, t);
                }
            } else if o.contains_key("code") {
                coding(out, param, value, None);
            } else if let Some(v) = s(value, "value") {
                // Identifier and ContactPoint: the value, under the identifier's system (a
                // ContactPoint's system is a kind of contact, not a namespace).
                let system = s(value, "system").filter(|sys| !CONTACT_SYSTEMS.contains(sys));
                let display = value
                    .get("type")
                    .and_then(|t| t.get("text"))
                    .and_then(Value::as_str);
                push_token(out, param, system, v, display);
                // `identifier:of-type=[type system]|[type code]|[value]`: rows under
                // `param:of-type` whose code is "[type code]|[value]".
                let type_codings = value.get("type").and_then(|t| t.get("coding"));
                for c in type_codings.and_then(Value::as_array).into_iter().flatten() {
                    if let Some(tc) = s(c, "code") {
                        push_token(
                            out,
                            &format!("{param}:of-type"),
                            s(c, "system"),
                            &format!("{tc}|{v}"),
                            None,
                        );
                    }
                }
            } else if let Some(t) = s(value, "text") {
                push_token_text(out, param, t);
            }
        }
        _ => {}
    }
}

/// ContactPoint.system codes (R4 contact-point-system).
const CONTACT_SYSTEMS: &[&str] = &["phone", "fax", "email", "pager", "url", "sms", "other"];

fn coding(out: &mut IndexEntries, param: &str, c: &Value, concept_text: Option<&str>) {
    if let Some(code) = s(c, "code") {
        let display = s(c, "display").or(concept_text);
        push_token(out, param, s(c, "system"), code, display);
    } else if let Some(d) = s(c, "display").or(concept_text) {
        push_token_text(out, param, d);
    }
}

fn push_token(
    out: &mut IndexEntries,
    param: &str,
    system: Option<&str>,
    code: &str,
    display: Option<&str>,
) {
    out.tokens.push(TokenEntry {
        param: param.to_owned(),
        system: system.map(str::to_owned),
        code: code.to_owned(),
        display: display.map(normalize),
    });
}

/// Text with no code still answers `:text`; the empty code never matches a code search.
fn push_token_text(out: &mut IndexEntries, param: &str, text: &str) {
    out.tokens.push(TokenEntry {
        param: param.to_owned(),
        system: None,
        code: String::new(),
        display: Some(normalize(text)),
    });
}

fn push_string(out: &mut IndexEntries, param: &str, v: &str) {
    out.strings.push(StringEntry {
        param: param.to_owned(),
        norm: normalize(v),
        exact: v.to_owned(),
    });
}

/// A string parameter on a complex type searches its string parts (HumanName: family, given,
/// prefix, suffix, text; Address: line, city, district, state, postalCode, country, text).
fn strings(out: &mut IndexEntries, param: &str, value: &Value) {
    match value {
        Value::String(v) => push_string(out, param, v),
        Value::Object(o) => {
            for (k, v) in o {
                if matches!(k.as_str(), "extension" | "id" | "use" | "type" | "period") {
                    continue;
                }
                match v {
                    Value::String(s) => push_string(out, param, s),
                    Value::Array(a) => a
                        .iter()
                        .filter_map(Value::as_str)
                        .for_each(|s| push_string(out, param, s)),
                    _ => {}
                }
            }
        }
        _ => {}
    }
}

fn push_date(out: &mut IndexEntries, param: &str, lo: DateTime<Utc>, hi: DateTime<Utc>) {
    out.dates.push(DateEntry {
        param: param.to_owned(),
        lo,
        hi,
    });
}

/// Open Period ends: the first and last instants a FHIR date (four-digit year) can name, and
/// within PostgreSQL's timestamp range (chrono's own MIN/MAX are not).
static OPEN_START: LazyLock<DateTime<Utc>> =
    LazyLock::new(|| date::range("0001").expect("valid year").0);
static OPEN_END: LazyLock<DateTime<Utc>> =
    LazyLock::new(|| date::range("9999").expect("valid year").1);

fn dates(out: &mut IndexEntries, param: &str, value: &Value) {
    match value {
        Value::String(v) => {
            if let Some((lo, hi)) = date::range(v) {
                push_date(out, param, lo, hi);
            }
        }
        Value::Object(o) => {
            if o.contains_key("start") || o.contains_key("end") {
                // Period: an absent end is open (ongoing), an absent start unknown.
                let lo = s(value, "start")
                    .and_then(date::range)
                    .map_or(*OPEN_START, |r| r.0);
                let hi = s(value, "end")
                    .and_then(date::range)
                    .map_or(*OPEN_END, |r| r.1);
                push_date(out, param, lo, hi);
            } else if let Some(events) = o.get("event").and_then(Value::as_array) {
                for e in events.iter().filter_map(Value::as_str) {
                    if let Some((lo, hi)) = date::range(e) {
                        push_date(out, param, lo, hi);
                    }
                }
            } else if let Some(bounds) = o.get("repeat").and_then(|r| r.get("boundsPeriod")) {
                dates(out, param, bounds);
            }
        }
        _ => {}
    }
}

fn number_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn quantity(out: &mut IndexEntries, param: &str, value: &Value) {
    if value.get("low").is_some() || value.get("high").is_some() {
        // Range: both ends share one unit in practice; take it from whichever end has one.
        let low = value.get("low");
        let high = value.get("high");
        let unit_of = low.filter(|l| l.get("code").is_some()).or(high);
        let (system, code) = (
            unit_of.and_then(|u| s(u, "system")),
            unit_of.and_then(|u| s(u, "code")),
        );
        let lo = number_text(low.and_then(|l| l.get("value")));
        let hi = number_text(high.and_then(|h| h.get("value")));
        out.quantities.push(QuantityEntry {
            param: param.to_owned(),
            canonical: canonical(system, code, lo.as_deref(), hi.as_deref()),
            system: system.map(str::to_owned),
            code: code.map(str::to_owned),
            unit: unit_of.and_then(|u| s(u, "unit")).map(str::to_owned),
            lo,
            hi,
        });
        return;
    }
    let Some(v) = number_text(value.get("value")) else {
        return;
    };
    // Money has a currency instead of a unit code.
    let (system, code) = match s(value, "currency") {
        Some(c) => (Some("urn:iso:std:iso:4217"), Some(c)),
        None => (s(value, "system"), s(value, "code")),
    };
    out.quantities.push(QuantityEntry {
        param: param.to_owned(),
        canonical: canonical(system, code, Some(&v), Some(&v)),
        system: system.map(str::to_owned),
        code: code.map(str::to_owned),
        unit: s(value, "unit").map(str::to_owned),
        lo: Some(v.clone()),
        hi: Some(v),
    });
}

fn canonical(
    system: Option<&str>,
    code: Option<&str>,
    lo: Option<&str>,
    hi: Option<&str>,
) -> Option<hds_fhir_store::CanonicalQuantity> {
    match (system, code) {
        (Some(crate::ucum::UCUM_SYSTEM), Some(code)) => crate::ucum::canonical(code, lo, hi),
        _ => None,
    }
}

/// `Patient/123`, `Patient/123/_history/2`, or an absolute URL ending in `Type/id`.
pub fn parse_reference(r: &str) -> (Option<&str>, Option<&str>) {
    let path = r.split_once("/_history/").map_or(r, |(p, _)| p);
    let mut parts = path.rsplitn(3, '/');
    let id = parts.next();
    let ty = parts.next();
    match (ty, id) {
        (Some(t), Some(i)) if hds_fhir_model::r4().is_resource_type(t) && !i.is_empty() => {
            (Some(t), Some(i))
        }
        _ => (None, None),
    }
}

fn reference(out: &mut IndexEntries, param: &str, value: &Value) {
    let url_text = match value {
        // canonical and uri elements are plain strings.
        Value::String(s) => Some(s.as_str()),
        Value::Object(_) => s(value, "reference"),
        _ => None,
    };
    if let Some(r) = url_text
        && !r.starts_with('#')
    {
        let absolute = r.contains("://") || r.starts_with("urn:");
        let (ty, id) = parse_reference(r);
        let (url, version) = if absolute {
            match r.split_once('|') {
                Some((u, v)) => (Some(u), Some(v)),
                None => (Some(r), None),
            }
        } else {
            (None, None)
        };
        out.references.push(ReferenceEntry {
            param: param.to_owned(),
            target_type: ty.map(str::to_owned),
            target_id: id.map(str::to_owned),
            url: url.map(str::to_owned),
            version: version.map(str::to_owned),
        });
    }
    reference_identifier(out, param, value);
}

/// Reference.identifier answers `param:identifier`, stored as a token under that name.
fn reference_identifier(out: &mut IndexEntries, param: &str, value: &Value) {
    if let Some(ident) = value.get("identifier")
        && let Some(v) = s(ident, "value")
    {
        push_token(
            out,
            &format!("{param}:identifier"),
            s(ident, "system"),
            v,
            None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patient_rows_by_type() {
        let e = extract(&json!({
            "resourceType": "Patient", "id": "p",
            "identifier": [{"system": "urn:mrn", "value": "1"}],
            "name": [{"family": "Chalmers", "given": ["Peter", "James"]}],
            "gender": "male", "birthDate": "1974-12-25",
            "active": true,
            "managingOrganization": {"reference": "Organization/1"},
            "telecom": [{"system": "phone", "value": "555"}],
            "meta": {"tag": [{"system": "urn:t", "code": "x"}]}
        }));
        let has_token = |p: &str, c: &str| e.tokens.iter().any(|t| t.param == p && t.code == c);
        assert!(has_token("identifier", "1"));
        assert!(has_token("gender", "male"));
        assert!(has_token("active", "true"));
        assert!(has_token("phone", "555"));
        assert!(has_token("_tag", "x"));
        let names: Vec<&str> = e
            .strings
            .iter()
            .filter(|s| s.param == "name")
            .map(|s| s.norm.as_str())
            .collect();
        assert_eq!(names, ["chalmers", "peter", "james"]);
        let birth = e.dates.iter().find(|d| d.param == "birthdate").unwrap();
        assert_eq!(birth.lo.to_rfc3339(), "1974-12-25T00:00:00+00:00");
        assert_eq!(birth.hi.to_rfc3339(), "1974-12-26T00:00:00+00:00");
        let org = e
            .references
            .iter()
            .find(|r| r.param == "organization")
            .unwrap();
        assert_eq!(org.target_type.as_deref(), Some("Organization"));
        assert_eq!(org.target_id.as_deref(), Some("1"));
    }

    #[test]
    fn observation_quantity_period_and_typed_references() {
        // Parsed from text, as the server does, so the decimal keeps its written precision.
        let e = extract(&serde_json::from_str(&json!({
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body Weight"}], "text": "Weight"},
            "subject": {"reference": "Patient/p1"},
            "effectivePeriod": {"start": "2020-01-01"},
            "valueQuantity": {"value": "__72.50__", "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}
        }).to_string().replace("\"__72.50__\"", "72.50")).unwrap());
        let q = e
            .quantities
            .iter()
            .find(|q| q.param == "value-quantity")
            .unwrap();
        assert_eq!(q.lo.as_deref(), Some("72.50"));
        assert_eq!(q.code.as_deref(), Some("kg"));
        let code = e.tokens.iter().find(|t| t.param == "code").unwrap();
        assert_eq!(code.display.as_deref(), Some("body weight"));
        // subject indexes the reference; patient (subject narrowed to Patients) reads its row.
        assert!(!e.references.iter().any(|r| r.param == "patient"));
        assert!(e.references.iter().any(|r| r.param == "subject"));
        let d = e.dates.iter().find(|d| d.param == "date").unwrap();
        assert_eq!(d.hi, *OPEN_END);
    }

    #[test]
    fn references_parse_relative_absolute_and_canonical() {
        assert_eq!(parse_reference("Patient/1"), (Some("Patient"), Some("1")));
        assert_eq!(
            parse_reference("http://x/fhir/Patient/1/_history/3"),
            (Some("Patient"), Some("1"))
        );
        assert_eq!(parse_reference("urn:uuid:abc"), (None, None));
        assert_eq!(parse_reference("Foo/1"), (None, None));
    }

    #[test]
    fn a_narrowed_reference_parameter_lends_its_rows_and_keeps_its_identifiers() {
        let e = extract(&json!({
            "resourceType": "Observation", "id": "o", "status": "final",
            "code": {"text": "x"},
            "subject": {"reference": "Patient/1",
                        "identifier": {"system": "urn:mrn", "value": "42"}},
        }));
        let refs: Vec<&str> = e.references.iter().map(|r| r.param.as_str()).collect();
        assert_eq!(refs, ["subject"]);
        let idents: Vec<&str> = e
            .tokens
            .iter()
            .filter(|t| t.param.ends_with(":identifier"))
            .map(|t| t.param.as_str())
            .collect();
        assert_eq!(idents.len(), 2);
        assert!(idents.contains(&"patient:identifier"));
        assert!(idents.contains(&"subject:identifier"));
    }

    /// What makes `patient` answerable from `subject` rows: the expression selects a reference
    /// exactly when the row stored for it names a Patient.
    #[test]
    fn resolve_is_patient_agrees_with_the_row_target_type() {
        let patient = crate::registry::r4()
            .get("Observation", "patient")
            .and_then(|p| p.expression.clone())
            .unwrap();
        for r in [
            "Patient/1",
            "Patient/a-b.c",
            "Patient/1/_history/2",
            "http://example.org/fhir/Patient/7",
            "http://example.org/fhir/Patient/7/_history/1",
            "Group/1",
            "Device/d",
            "http://example.org/fhir/Group/7",
            "urn:uuid:9b1f8a36-3c1c-4c55-9f0a-8a2a3f0a1b2c",
            "#p1",
            "Patient",
            "Patient/",
            "Foo/1",
        ] {
            let o = json!({
                "resourceType": "Observation", "id": "o", "status": "final",
                "code": {"text": "x"}, "subject": {"reference": r},
                "contained": [{"resourceType": "Patient", "id": "p1"}],
            });
            let selected = !patient.evaluate(&o).unwrap().is_empty();
            let mut rows = IndexEntries::default();
            reference(&mut rows, "subject", &o["subject"]);
            let row_is_patient = rows
                .references
                .iter()
                .any(|row| row.target_type.as_deref() == Some("Patient"));
            // A contained Patient resolves, but contained references have no rows at all.
            let expected = selected && !r.starts_with('#');
            assert_eq!(row_is_patient, expected, "{r}");
        }
    }
}
