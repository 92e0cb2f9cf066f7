//! Writes search and history Bundles as text. Stored bodies are spliced in as they are, so a page
//! of resources is never parsed and re-serialised on its way out.

use hds_fhir_store::{StoredVersion, instant};
use serde_json::{Value, json};

pub struct BundleWriter {
    out: String,
    entries: usize,
}

impl BundleWriter {
    pub fn new(bundle_type: &str, total: Option<i64>, links: &[(&str, String)]) -> Self {
        let mut head = json!({
            "resourceType": "Bundle",
            "id": uuid::Uuid::new_v4().to_string(),
            "meta": {"lastUpdated": instant(&hds_fhir_store::now())},
            "type": bundle_type,
        });
        if let Some(t) = total {
            head["total"] = json!(t);
        }
        if !links.is_empty() {
            head["link"] = Value::Array(
                links
                    .iter()
                    .map(|(rel, url)| json!({"relation": rel, "url": url}))
                    .collect(),
            );
        }
        let mut out = head.to_string();
        out.pop(); // reopen the object to append "entry"
        out.push_str(",\"entry\":[");
        Self { out, entries: 0 }
    }

    /// An entry whose `resource` is the stored body and whose other members are `extra`.
    pub fn entry(&mut self, v: &StoredVersion, base: &str, extra: Value) {
        self.entry_inner(v, base, extra, v.body.as_deref());
    }

    /// A searchset entry: `fullUrl`, `resource` (`body`, or the stored body) and `search.mode`,
    /// written as text (this is every search result's loop; no `Value` is built per entry).
    pub fn search_entry(&mut self, v: &StoredVersion, base: &str, mode: &str, body: Option<&str>) {
        if self.entries > 0 {
            self.out.push(',');
        }
        self.entries += 1;
        self.out.push_str("{\"fullUrl\":\"");
        for part in [base, "/", &v.res_type, "/", &v.id] {
            push_escaped(&mut self.out, part);
        }
        self.out.push('"');
        if let Some(body) = body.or(v.body.as_deref()) {
            self.out.push_str(",\"resource\":");
            self.out.push_str(body);
        }
        self.out.push_str(",\"search\":{\"mode\":\"");
        push_escaped(&mut self.out, mode);
        self.out.push_str("\"}}");
    }

    /// An entry that is not a stored resource (an OperationOutcome, say).
    pub fn raw_entry(&mut self, entry: Value) {
        if self.entries > 0 {
            self.out.push(',');
        }
        self.entries += 1;
        self.out.push_str(&entry.to_string());
    }

    /// An entry given as JSON, with `resource` (a resource's JSON text) spliced in.
    pub fn entry_text(&mut self, entry: Value, resource: Option<&str>) {
        if self.entries > 0 {
            self.out.push(',');
        }
        self.entries += 1;
        let mut text = entry.to_string();
        if let Some(body) = resource {
            text.pop();
            if text.len() > 1 {
                text.push(',');
            }
            text.push_str("\"resource\":");
            text.push_str(body);
            text.push('}');
        }
        self.out.push_str(&text);
    }

    fn entry_inner(&mut self, v: &StoredVersion, base: &str, extra: Value, body: Option<&str>) {
        if self.entries > 0 {
            self.out.push(',');
        }
        self.entries += 1;
        let mut e = json!({"fullUrl": format!("{base}/{}/{}", v.res_type, v.id)});
        if let (Value::Object(e), Value::Object(extra)) = (&mut e, extra) {
            e.extend(extra);
        }
        let mut text = e.to_string();
        if let Some(body) = body {
            text.pop();
            text.push_str(",\"resource\":");
            text.push_str(body);
            text.push('}');
        }
        self.out.push_str(&text);
    }

    pub fn finish(mut self) -> String {
        if self.entries == 0 {
            // An empty Bundle has no entry element at all.
            let cut = self.out.len() - ",\"entry\":[".len();
            self.out.truncate(cut);
            self.out.push('}');
        } else {
            self.out.push_str("]}");
        }
        self.out
    }
}

/// `s` as the inside of a JSON string: as it is when nothing in it needs escaping (URLs, ids),
/// else as serde_json escapes it.
fn push_escaped(out: &mut String, s: &str) {
    if s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        out.push_str(
            quoted
                .get(1..quoted.len().saturating_sub(1))
                .unwrap_or_default(),
        );
    } else {
        out.push_str(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hds_fhir_store::Method;

    fn patient_a() -> StoredVersion {
        StoredVersion {
            res_type: "Patient".into(),
            id: "a".into(),
            version_id: 1,
            last_updated: hds_fhir_store::now(),
            method: Method::Post,
            body: Some(r#"{"resourceType":"Patient","id":"a"}"#.into()),
        }
    }

    #[test]
    fn output_is_valid_json_with_and_without_entries() {
        let empty: Value =
            serde_json::from_str(&BundleWriter::new("searchset", Some(0), &[]).finish()).unwrap();
        assert_eq!(empty["total"], 0);
        assert!(empty.get("entry").is_none());

        let mut w = BundleWriter::new("history", None, &[("self", "http://x/_history".into())]);
        let v = patient_a();
        w.entry(
            &v,
            "http://x",
            json!({"request": {"method": "POST", "url": "Patient"}}),
        );
        w.entry(&StoredVersion { body: None, ..v }, "http://x", json!({}));
        let b: Value = serde_json::from_str(&w.finish()).unwrap();
        assert_eq!(b["entry"][0]["resource"]["id"], "a");
        assert_eq!(b["entry"][0]["request"]["method"], "POST");
        assert!(b["entry"][1].get("resource").is_none());
    }

    #[test]
    fn search_entries_hold_full_url_resource_and_mode() {
        let v = patient_a();
        let mut w = BundleWriter::new("searchset", None, &[]);
        w.search_entry(&v, "http://x/a\"b", "match", None);
        w.search_entry(
            &v,
            "http://x",
            "include",
            Some(r#"{"resourceType":"Patient"}"#),
        );
        w.search_entry(
            &StoredVersion { body: None, ..v },
            "http://x",
            "match",
            None,
        );
        let b: Value = serde_json::from_str(&w.finish()).unwrap();
        assert_eq!(
            b["entry"][0],
            json!({"fullUrl": "http://x/a\"b/Patient/a", "search": {"mode": "match"},
                   "resource": {"resourceType": "Patient", "id": "a"}})
        );
        assert_eq!(
            b["entry"][1]["resource"],
            json!({"resourceType": "Patient"})
        );
        assert_eq!(b["entry"][1]["search"]["mode"], "include");
        assert_eq!(
            b["entry"][2],
            json!({"fullUrl": "http://x/Patient/a", "search": {"mode": "match"}})
        );
    }
}
