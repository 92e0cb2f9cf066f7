//! `_summary` and `_elements`: returning part of each resource, marked SUBSETTED as R4 §3.1.1.5.8
//! requires so that no client mistakes it for the whole.

use hds_fhir_search::Summary;
use serde_json::{Map, Value, json};

/// What to keep of each resource; `None` members mean "everything".
#[derive(Debug, Clone, Default)]
pub struct Subset {
    pub summary: Option<Summary>,
    pub elements: Option<Vec<String>>,
}

impl Subset {
    pub fn is_whole(&self) -> bool {
        matches!(self.summary, None | Some(Summary::False)) && self.elements.is_none()
    }

    /// The body with only the asked-for top-level elements (always id, meta, resourceType and
    /// the mandatory ones), or `None` to send the stored text as it is.
    pub fn apply(&self, res_type: &str, body: &str) -> Option<String> {
        if self.is_whole() {
            return None;
        }
        let Ok(Value::Object(resource)) = serde_json::from_str::<Value>(body) else {
            return None;
        };
        let defs = hds_fhir_model::r4();
        let keep = |k: &str| -> bool {
            if matches!(k, "resourceType" | "id" | "meta") {
                return true;
            }
            if let Some(list) = &self.elements {
                let bare = k.strip_prefix('_').unwrap_or(k);
                return list.iter().any(|e| e == bare || choice_of(e, bare));
            }
            match self.summary {
                Some(Summary::Text) => matches!(k, "text") || defs.is_mandatory_key(res_type, k),
                Some(Summary::Data) => k != "text",
                Some(Summary::True) => defs.is_summary_key(res_type, k),
                _ => true,
            }
        };
        let mut out: Map<String, Value> = resource.into_iter().filter(|(k, _)| keep(k)).collect();
        tag_subsetted(&mut out);
        Some(Value::Object(out).to_string())
    }
}

/// `value` in `_elements` selects `valueQuantity` and the other choices.
fn choice_of(element: &str, key: &str) -> bool {
    key.strip_prefix(element)
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
}

fn tag_subsetted(resource: &mut Map<String, Value>) {
    let meta = resource
        .entry("meta")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(meta) = meta {
        let tags = meta.entry("tag").or_insert_with(|| Value::Array(vec![]));
        if let Value::Array(tags) = tags {
            tags.push(json!({
                "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                "code": "SUBSETTED",
                "display": "Resource encoded in summary mode"
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OBS: &str = r#"{"resourceType":"Observation","id":"o","meta":{"versionId":"1"},"text":{"status":"generated","div":"<div/>"},"status":"final","code":{"text":"x"},"valueQuantity":{"value":1},"note":[{"text":"n"}]}"#;

    fn keys(s: &str) -> Vec<String> {
        let v: Value = serde_json::from_str(s).unwrap();
        v.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn elements_keep_named_and_mandatory_members() {
        let s = Subset {
            elements: Some(vec!["value".into()]),
            ..Default::default()
        };
        let out = s.apply("Observation", OBS).unwrap();
        assert_eq!(keys(&out), ["resourceType", "id", "meta", "valueQuantity"]);
        assert!(out.contains("SUBSETTED"));
    }

    #[test]
    fn summaries() {
        let t = |summary| {
            keys(
                &Subset {
                    summary: Some(summary),
                    elements: None,
                }
                .apply("Observation", OBS)
                .unwrap(),
            )
        };
        assert!(!t(Summary::Data).contains(&"text".to_string()));
        assert_eq!(
            t(Summary::Text),
            ["resourceType", "id", "meta", "text", "status", "code"]
        );
        let summary = t(Summary::True);
        assert!(summary.contains(&"code".to_string()));
        assert!(
            !summary.contains(&"note".to_string()),
            "note is not a summary element"
        );
        assert!(Subset::default().apply("Observation", OBS).is_none());
    }
}
