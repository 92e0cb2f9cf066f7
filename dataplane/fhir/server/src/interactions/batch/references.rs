//! References between the entries of a transaction: each entry's fullUrl stands for the
//! resource it writes, and a reference to that fullUrl (a `urn:uuid:`, or the URL a client gave
//! a resource it creates) is rewritten to the `Type/id` the server chose. A conditional
//! reference (`Patient?identifier=...`) is resolved to its one match.

use std::collections::HashMap;

use serde_json::Value;

use crate::error::FhirError;

/// fullUrl → `Type/id`, for the entries of one transaction.
#[derive(Default)]
pub struct Identities {
    map: HashMap<String, String>,
}

impl Identities {
    /// Records that `full_url` stands for `rt/id`. A fullUrl given to two entries is an error:
    /// references to it would be ambiguous.
    pub fn insert(&mut self, full_url: &str, rt: &str, id: &str) -> Result<(), String> {
        let local = format!("{rt}/{id}");
        if self.map.insert(full_url.to_owned(), local).is_some() {
            return Err(format!(
                "the fullUrl '{full_url}' is given to more than one entry"
            ));
        }
        // A client may give a created resource an absolute URL as fullUrl and refer to it by
        // its relative form, which is resolved against that fullUrl's base (R4 2.36.4.1).
        if !full_url.starts_with("urn:")
            && let Some(rel) = relative_part(full_url)
            && rel != format!("{rt}/{id}")
        {
            self.map.entry(rel).or_insert_with(|| format!("{rt}/{id}"));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, reference: &str) -> Option<&str> {
        self.map.get(reference).map(String::as_str)
    }
}

/// `Type/id` at the end of an absolute URL.
fn relative_part(url: &str) -> Option<String> {
    let mut seg = url.trim_end_matches('/').rsplit('/');
    let id = seg.next()?;
    let rt = seg.next()?;
    (rt.chars().next()?.is_ascii_uppercase()).then(|| format!("{rt}/{id}"))
}

/// Every `reference` string in a resource, to be rewritten in place.
pub fn for_each_reference(
    v: &mut Value,
    f: &mut impl FnMut(&mut String) -> Result<(), FhirError>,
) -> Result<(), FhirError> {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj.iter_mut() {
                match child {
                    Value::String(s) if k == "reference" => f(s)?,
                    Value::Object(_) | Value::Array(_) => for_each_reference(child, f)?,
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                for_each_reference(item, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Type?criteria`, the form of a conditional reference.
pub fn conditional_reference(reference: &str) -> Option<(&str, &str)> {
    let (rt, query) = reference.split_once('?')?;
    (!rt.is_empty() && !rt.contains('/') && rt.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some((rt, query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_urls_map_to_what_the_server_assigned() {
        let mut ids = Identities::default();
        ids.insert("urn:uuid:a", "Patient", "p1").unwrap();
        ids.insert("http://other/fhir/Practitioner/x", "Practitioner", "d1")
            .unwrap();
        assert_eq!(ids.get("urn:uuid:a"), Some("Patient/p1"));
        assert_eq!(ids.get("Practitioner/x"), Some("Practitioner/d1"));
        assert!(ids.insert("urn:uuid:a", "Patient", "p2").is_err());
    }

    #[test]
    fn every_reference_is_visited() {
        let mut r = json!({"resourceType": "Observation",
            "subject": {"reference": "urn:uuid:a"},
            "performer": [{"reference": "urn:uuid:b"}, {"display": "x"}],
            "contained": [{"resourceType": "Basic", "author": {"reference": "urn:uuid:c"}}],
            "note": [{"text": "reference"}]});
        let mut seen = Vec::new();
        for_each_reference(&mut r, &mut |s| {
            seen.push(s.clone());
            s.push('!');
            Ok(())
        })
        .unwrap();
        seen.sort();
        assert_eq!(seen, ["urn:uuid:a", "urn:uuid:b", "urn:uuid:c"]);
        assert_eq!(r["subject"]["reference"], "urn:uuid:a!");
    }

    #[test]
    fn conditional_references_are_recognised() {
        assert_eq!(
            conditional_reference("Patient?identifier=a|1"),
            Some(("Patient", "identifier=a|1"))
        );
        assert_eq!(conditional_reference("Patient/1"), None);
        assert_eq!(conditional_reference("http://x/Patient?a=b"), None);
    }
}
