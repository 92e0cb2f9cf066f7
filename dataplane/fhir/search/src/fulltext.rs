//! `_text` and `_content`: full-text search over a resource's narrative and over all of its
//! text, on PostgreSQL's `tsvector`. Both are extracted here, normalised like strings (lower
//! case, accents removed), and matched with `websearch_to_tsquery`, so a value may use quoted
//! phrases, `or`, and `-word` for negation.

use hds_fhir_store::TextEntry;
use serde_json::Value;

use crate::normalize::normalize;

/// PostgreSQL refuses a `tsvector` over 1 MB; a resource's words past this many bytes are not
/// searchable by `_content` (they still are by every other parameter).
const MAX_TEXT: usize = 256 * 1024;

/// Keys whose values are not words: base64 payloads, and the narrative's XHTML (whose text is
/// taken from [`narrative`] instead of its markup).
const SKIPPED_KEYS: &[&str] = &["data", "div"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// `_text`: the narrative (`text.div`) only.
    Narrative,
    /// `_content`: every string in the resource, the narrative included.
    Content,
}

impl TextField {
    pub fn column(self) -> &'static str {
        match self {
            TextField::Narrative => "narrative",
            TextField::Content => "content",
        }
    }
}

pub fn entry(resource: &Value) -> TextEntry {
    let narrative = resource
        .get("text")
        .and_then(|t| t.get("div"))
        .and_then(Value::as_str)
        .map(strip_markup)
        .unwrap_or_default();
    let mut content = String::new();
    collect_strings(resource, &mut content);
    if !narrative.is_empty() && content.len() < MAX_TEXT {
        content.push_str(&narrative);
    }
    truncate(&mut content);
    let mut narrative = normalize(&narrative);
    truncate(&mut narrative);
    TextEntry {
        narrative,
        content: normalize(&content),
    }
}

fn truncate(s: &mut String) {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn collect_strings(v: &Value, out: &mut String) {
    if out.len() >= MAX_TEXT {
        return;
    }
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push(' ');
        }
        Value::Array(items) => items.iter().for_each(|i| collect_strings(i, out)),
        Value::Object(map) => {
            for (k, v) in map {
                if !SKIPPED_KEYS.contains(&k.as_str()) {
                    collect_strings(v, out);
                }
            }
        }
        _ => {}
    }
}

/// The text of an XHTML fragment: tags become spaces, the common entities their characters.
fn strip_markup(div: &str) -> String {
    let mut out = String::with_capacity(div.len());
    let mut in_tag = false;
    for c in div.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    for (entity, ch) in [
        ("&lt;", "<"),
        ("&gt;", ">"),
        ("&quot;", "\""),
        ("&apos;", "'"),
        ("&nbsp;", " "),
        ("&#160;", " "),
        ("&amp;", "&"),
    ] {
        if out.contains(entity) {
            out = out.replace(entity, ch);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn narrative_loses_its_markup_and_content_has_every_string() {
        let e = entry(&json!({
            "resourceType": "Patient",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Peter &amp; <b>Chalmers</b></p></div>"},
            "name": [{"family": "Müller", "given": ["Élodie"]}],
            "photo": [{"data": "QUJDREVGRw=="}]
        }));
        assert!(e.narrative.contains("peter & ") && e.narrative.contains("chalmers"));
        assert!(!e.narrative.contains("<b>") && !e.narrative.contains("xmlns"));
        assert!(e.content.contains("muller") && e.content.contains("elodie"));
        assert!(
            e.content.contains("chalmers"),
            "the narrative is content too"
        );
        assert!(!e.content.contains("qujd"), "base64 payloads are not words");
    }

    #[test]
    fn huge_resources_are_cut_on_a_character_boundary() {
        let big = "é".repeat(MAX_TEXT);
        let e = entry(&json!({"resourceType": "Basic", "text": {"div": big}}));
        assert!(e.content.len() <= MAX_TEXT && e.narrative.len() <= MAX_TEXT);
    }
}
