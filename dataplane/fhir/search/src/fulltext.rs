//! `_text` and `_content`: full-text search over a resource's narrative and over all of its
//! text, on PostgreSQL's `tsvector`. Both are extracted here, normalised like strings (lower
//! case, accents removed) and cut into words here too: a word is a run of letters and digits,
//! and anything else separates words. The vectors go to PostgreSQL ready-made, and a search
//! value is turned into a `tsquery` by the same rule ([`web_query`]), with the syntax of
//! PostgreSQL's `websearch_to_tsquery`: quoted phrases, `or`, and `-word` for negation. A value
//! that is several words without spaces (`x-ray`, `8867-4`, a URL) is a phrase of them.

use hds_fhir_store::{TextEntry, TsVector};
use serde_json::Value;

use crate::normalize::normalize;

/// PostgreSQL refuses a `tsvector` over 1 MB; a resource's words past this many bytes are not
/// searchable by `_content` (they still are by every other parameter).
const MAX_TEXT: usize = 256 * 1024;

/// Keys whose values are not words: base64 payloads, and the narrative's XHTML (whose text is
/// taken from [`narrative`] instead of its markup).
const SKIPPED_KEYS: &[&str] = &["data", "div"];

/// Keys whose string values are not words either: logical and element ids, and literal
/// references (`Reference.reference`). `_id` and the reference parameters search them; in the
/// full-text index they would be nearly all the keys seen only once, which cost GIN far more
/// per resource than all the words shared between resources (docs/benchmarks.md, "Ingest").
const SKIPPED_STRING_KEYS: &[&str] = &["id", "reference"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextField {
    /// `_text`: the narrative (`text.div`) only.
    Narrative,
    /// `_content`: every string in the resource but ids and literal references, the narrative
    /// included.
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
        narrative: TsVector::from_words(words(&narrative)),
        content: TsVector::from_words(words(&normalize(&content))),
    }
}

/// The words of normalised text, in order.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
}

/// A web search value's parts, in order: operands already in `tsquery` form, and `or`s, which
/// are operators only between two operands.
enum Item {
    Operand(String),
    Or,
}

/// The `tsquery` (in its text form) of a normalised web search value, or `None` when it holds
/// no word, so that it matches nothing. Unquoted words are ANDed, a quoted phrase's words
/// must follow each other, `or` between two operands ORs them (AND binding tighter), and `-`
/// before an operand negates it; as in PostgreSQL, an `or` with no operand on one side is a
/// word, and a phrase left open runs to the end. Lexemes are letters and digits only, so they
/// need no escaping inside their quotes.
pub fn web_query(value: &str) -> Option<String> {
    let mut items: Vec<Item> = Vec::new();
    let mut negate = false;
    let mut rest = value;
    loop {
        rest = rest.trim_start();
        let Some(c) = rest.chars().next() else { break };
        let chunk;
        if c == '-' {
            negate = true;
            rest = &rest[1..];
            continue;
        } else if c == '"' {
            let inner = &rest[1..];
            let end = inner.find('"').unwrap_or(inner.len());
            chunk = &inner[..end];
            rest = inner.get(end + 1..).unwrap_or("");
        } else {
            let end = rest
                .find(|c: char| c.is_whitespace() || c == '"')
                .unwrap_or(rest.len());
            chunk = &rest[..end];
            rest = &rest[end..];
            if chunk == "or" && !negate {
                items.push(Item::Or);
                continue;
            }
        }
        // A word too long for PostgreSQL is in no document (`TsVector::from_words`), and is
        // dropped here as `websearch_to_tsquery` drops it.
        let words: Vec<&str> = words(chunk)
            .filter(|w| w.len() <= TsVector::MAX_LEXEME_BYTES)
            .collect();
        if words.is_empty() {
            continue;
        }
        let phrase = words
            .iter()
            .map(|w| format!("'{w}'"))
            .collect::<Vec<_>>()
            .join(" <-> ");
        items.push(Item::Operand(match (negate, words.len()) {
            (false, 1) => phrase,
            (false, _) => format!("({phrase})"),
            (true, _) => format!("!({phrase})"),
        }));
        negate = false;
    }
    let mut groups: Vec<Vec<&str>> = vec![Vec::new()];
    for (i, item) in items.iter().enumerate() {
        let operand = match item {
            Item::Operand(o) => o.as_str(),
            Item::Or => {
                let between = i > 0
                    && matches!(items[i - 1], Item::Operand(_))
                    && matches!(items.get(i + 1), Some(Item::Operand(_)));
                if between {
                    groups.push(Vec::new());
                    continue;
                }
                "'or'"
            }
        };
        if let Some(g) = groups.last_mut() {
            g.push(operand);
        }
    }
    let query = groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|g| format!("({})", g.join(" & ")))
        .collect::<Vec<_>>()
        .join(" | ");
    (!query.is_empty()).then_some(query)
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
                let skipped = SKIPPED_KEYS.contains(&k.as_str())
                    || (v.is_string() && SKIPPED_STRING_KEYS.contains(&k.as_str()));
                if !skipped {
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

    fn lexemes(v: &TsVector) -> Vec<&str> {
        v.lexemes().into_iter().map(|(l, _)| l).collect()
    }

    #[test]
    fn narrative_loses_its_markup_and_content_has_every_string() {
        let e = entry(&json!({
            "resourceType": "Patient",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Peter &amp; <b>Chalmers</b></p></div>"},
            "name": [{"family": "Müller", "given": ["Élodie"]}],
            "photo": [{"data": "QUJDREVGRw=="}]
        }));
        assert_eq!(lexemes(&e.narrative), ["chalmers", "peter"]);
        let content = lexemes(&e.content);
        for w in ["muller", "elodie", "patient", "generated"] {
            assert!(content.contains(&w), "{w} not in {content:?}");
        }
        assert!(
            content.contains(&"chalmers"),
            "the narrative is content too"
        );
        assert!(
            !content
                .iter()
                .any(|w| w.starts_with("qujd") || *w == "xmlns"),
            "base64 payloads and markup are not words: {content:?}"
        );
    }

    #[test]
    fn words_are_runs_of_letters_and_digits_with_their_positions() {
        let e = entry(&json!({
            "resourceType": "Observation",
            "code": {"text": "Heart-rate: 8867-4 (LOINC)"},
        }));
        assert_eq!(
            e.content.lexemes(),
            [
                ("4", vec![5]),
                ("8867", vec![4]),
                ("heart", vec![2]),
                ("loinc", vec![6]),
                ("observation", vec![1]),
                ("rate", vec![3]),
            ]
        );
    }

    #[test]
    fn ids_and_literal_references_are_not_content_but_a_reference_display_is() {
        let e = entry(&json!({
            "resourceType": "Observation",
            "id": "f81d4fae-7dec-11d0-a765-00a0c91e6bf6",
            "code": {"id": "c1", "text": "Heart rate"},
            "subject": {"reference": "Patient/pat-one", "display": "Peter Chalmers"},
            "identifier": [{"value": "MRN-77"}],
            "contained": [{"resourceType": "Device", "id": "dev-two"}],
            "note": [{"text": "an id and a reference in words"}]
        }));
        let content = lexemes(&e.content);
        for absent in ["f81d4fae", "c1", "pat", "one", "dev", "two"] {
            assert!(!content.contains(&absent), "{absent} in {content:?}");
        }
        for present in [
            "heart",
            "peter",
            "chalmers",
            "mrn",
            "77",
            "device",
            "reference",
            "id",
        ] {
            assert!(content.contains(&present), "{present} not in {content:?}");
        }
    }

    #[test]
    fn huge_resources_are_cut_on_a_character_boundary() {
        let big = "é ".repeat(MAX_TEXT);
        let e = entry(&json!({"resourceType": "Basic", "text": {"div": big}}));
        assert_eq!(lexemes(&e.narrative), ["e"]);
    }

    #[test]
    fn web_queries_follow_websearch_to_tsquery() {
        let q = |v: &str| web_query(v);
        assert_eq!(q("fever").as_deref(), Some("('fever')"));
        assert_eq!(
            q("known allergies").as_deref(),
            Some("('known' & 'allergies')")
        );
        assert_eq!(
            q("\"known allergies\"").as_deref(),
            Some("(('known' <-> 'allergies'))")
        );
        assert_eq!(
            q("fever or penicillin").as_deref(),
            Some("('fever') | ('penicillin')")
        );
        assert_eq!(
            q("a -\"b c\" or d e").as_deref(),
            Some("('a' & !('b' <-> 'c')) | ('d' & 'e')")
        );
        assert_eq!(q("a - b").as_deref(), Some("('a' & !('b'))"));
        assert_eq!(q("x-ray").as_deref(), Some("(('x' <-> 'ray'))"));
        assert_eq!(
            q("\"open phrase").as_deref(),
            Some("(('open' <-> 'phrase'))")
        );
        // `or` with nothing on one side is a word, as in PostgreSQL.
        assert_eq!(q("or").as_deref(), Some("('or')"));
        assert_eq!(q("a or").as_deref(), Some("('a' & 'or')"));
        assert_eq!(q("-a").as_deref(), Some("(!('a'))"));
        // Nothing to search for: matches nothing.
        assert_eq!(q(" - \"\" !?"), None);
        let long = "y".repeat(TsVector::MAX_LEXEME_BYTES + 1);
        assert_eq!(q(&format!("x {long}")).as_deref(), Some("('x')"));
        // Quotes and backslashes never reach a lexeme.
        assert_eq!(q("o'brien\\").as_deref(), Some("(('o' <-> 'brien'))"));
    }
}
