//! Subsumption within a CodeSystem held on this server, for the token modifiers `:below` (the
//! code and every code under it) and `:above` (the code and every code over it). The hierarchy
//! is the nesting of `concept`, plus the `parent`/`child` concept properties that flat code
//! systems use instead (R4 CodeSystem §4.8.7).

use std::collections::{HashMap, HashSet};

use serde_json::Value;

#[derive(Default)]
struct Graph<'a> {
    parents: HashMap<&'a str, Vec<&'a str>>,
    children: HashMap<&'a str, Vec<&'a str>>,
}

impl<'a> Graph<'a> {
    fn edge(&mut self, parent: &'a str, child: &'a str) {
        self.parents.entry(child).or_default().push(parent);
        self.children.entry(parent).or_default().push(child);
    }

    fn walk(&mut self, concepts: &'a [Value], parent: Option<&'a str>) {
        for c in concepts {
            let Some(code) = c.get("code").and_then(Value::as_str) else {
                continue;
            };
            if let Some(p) = parent {
                self.edge(p, code);
            }
            for prop in c
                .get("property")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let other = prop.get("valueCode").and_then(Value::as_str);
                match (prop.get("code").and_then(Value::as_str), other) {
                    (Some("parent"), Some(p)) => self.edge(p, code),
                    (Some("child"), Some(ch)) => self.edge(code, ch),
                    _ => {}
                }
            }
            if let Some(sub) = c.get("concept").and_then(Value::as_array) {
                self.walk(sub, Some(code));
            }
        }
    }
}

/// `code` and the codes it subsumes (`below`) or that subsume it, by `code_system`'s hierarchy.
/// A code the CodeSystem does not list is related only to itself.
pub fn related_codes(code_system: &Value, code: &str, below: bool) -> Vec<String> {
    let mut g = Graph::default();
    if let Some(concepts) = code_system.get("concept").and_then(Value::as_array) {
        g.walk(concepts, None);
    }
    let edges = if below { &g.children } else { &g.parents };
    let mut seen: HashSet<&str> = HashSet::from([code]);
    let mut out = vec![code.to_owned()];
    let mut todo = vec![code];
    // The set of seen codes bounds the walk even when a malformed system has cycles.
    while let Some(c) = todo.pop() {
        for &next in edges.get(c).into_iter().flatten() {
            if seen.insert(next) {
                out.push(next.to_owned());
                todo.push(next);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::related_codes;
    use serde_json::json;

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    #[test]
    fn nested_concepts_and_parent_properties_form_one_hierarchy() {
        let cs = json!({
            "resourceType": "CodeSystem",
            "concept": [
                {"code": "disorder", "concept": [
                    {"code": "heart", "concept": [{"code": "mi"}, {"code": "angina"}]},
                    {"code": "lung"}
                ]},
                {"code": "asthma", "property": [{"code": "parent", "valueCode": "lung"}]},
                {"code": "loop-a", "property": [{"code": "child", "valueCode": "loop-b"}]},
                {"code": "loop-b", "property": [{"code": "child", "valueCode": "loop-a"}]}
            ]
        });
        assert_eq!(
            sorted(related_codes(&cs, "disorder", true)),
            ["angina", "asthma", "disorder", "heart", "lung", "mi"]
        );
        assert_eq!(
            sorted(related_codes(&cs, "asthma", false)),
            ["asthma", "disorder", "lung"]
        );
        assert_eq!(related_codes(&cs, "mi", true), ["mi"]);
        assert_eq!(related_codes(&cs, "unknown", true), ["unknown"]);
        assert_eq!(
            sorted(related_codes(&cs, "loop-a", true)),
            ["loop-a", "loop-b"]
        );
    }
}
