//! Index extraction: which rows a resource contributes to the search tables.

use hds_fhir_store::{IndexEntries, TokenEntry};
use serde_json::Value;

/// Index rows of one resource. For now the `identifier` token of every type that has a
/// top-level `identifier` element (single or repeating).
pub fn extract(resource: &Value) -> IndexEntries {
    let mut entries = IndexEntries::default();
    match resource.get("identifier") {
        Some(Value::Array(ids)) => ids.iter().for_each(|i| push_identifier(&mut entries, i)),
        Some(id @ Value::Object(_)) => push_identifier(&mut entries, id),
        _ => {}
    }
    entries
}

fn push_identifier(entries: &mut IndexEntries, identifier: &Value) {
    if let Some(code) = identifier.get("value").and_then(Value::as_str) {
        entries.tokens.push(TokenEntry {
            param: "identifier".into(),
            system: identifier
                .get("system")
                .and_then(Value::as_str)
                .map(str::to_owned),
            code: code.to_owned(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn identifiers_become_tokens() {
        let e = extract(&json!({"resourceType":"Patient","identifier":[
            {"system":"urn:mrn","value":"1"},{"value":"2"},{"system":"urn:x"}]}));
        assert_eq!(e.tokens.len(), 2);
        assert_eq!(e.tokens[0].system.as_deref(), Some("urn:mrn"));
        assert_eq!(e.tokens[1].system, None);
        let single = extract(&json!({"resourceType":"Bundle","identifier":{"value":"b"}}));
        assert_eq!(single.tokens[0].code, "b");
    }
}
