//! Where the codes of a required binding come from: R4's own ValueSets (expanded into
//! `hds-fhir-model`'s definitions) and ValueSets the caller holds, such as those stored in
//! the server.

use std::collections::{HashMap, HashSet};

use serde_json::Value;

/// Answers whether a ValueSet holds a code. `None`: the ValueSet is not known here, so the
/// binding cannot be checked (a warning, never an error).
pub trait ValueSets {
    /// `system` is `None` for a `code` element, which carries none.
    fn contains(&self, canonical: &str, system: Option<&str>, code: &str) -> Option<bool>;
}

/// The ValueSets of R4 that its package enumerates completely.
#[derive(Debug, Clone, Copy, Default)]
pub struct R4ValueSets;

impl ValueSets for R4ValueSets {
    fn contains(&self, canonical: &str, system: Option<&str>, code: &str) -> Option<bool> {
        hds_fhir_model::r4()
            .value_set(canonical)
            .map(|vs| vs.contains(system, code))
    }
}

/// ValueSets given as resources, in front of R4's.
#[derive(Debug, Default)]
pub struct Expansions {
    sets: HashMap<String, Expansion>,
}

#[derive(Debug, Default)]
struct Expansion {
    /// (system, code).
    codings: HashSet<(String, String)>,
    codes: HashSet<String>,
}

impl Expansions {
    /// Adds a ValueSet resource under its url (and `url|version`). It must list its codes:
    /// an `expansion.contains`, or a `compose` of explicit concepts (including R4 ValueSets
    /// and ones added before is allowed). Filters and whole code systems cannot be
    /// enumerated here; the error says why, and the ValueSet stays unknown.
    pub fn add(&mut self, value_set: &Value) -> Result<(), String> {
        let url = value_set
            .get("url")
            .and_then(Value::as_str)
            .ok_or("the ValueSet has no url")?;
        let mut e = Expansion::default();
        if let Some(contains) = value_set.pointer("/expansion/contains") {
            collect_contains(contains, &mut e);
        } else {
            let compose = value_set
                .get("compose")
                .ok_or_else(|| format!("ValueSet {url} has neither expansion nor compose"))?;
            for inc in array(compose.get("include")) {
                for (s, c) in self.component(url, inc)? {
                    e.codes.insert(c.clone());
                    e.codings.insert((s, c));
                }
            }
            for exc in array(compose.get("exclude")) {
                for coding in self.component(url, exc)? {
                    e.codings.remove(&coding);
                }
            }
            e.codes = e.codings.iter().map(|(_, c)| c.clone()).collect();
        }
        if let Some(v) = value_set.get("version").and_then(Value::as_str) {
            self.sets.insert(
                format!("{url}|{v}"),
                Expansion {
                    codings: e.codings.clone(),
                    codes: e.codes.clone(),
                },
            );
        }
        self.sets.insert(url.to_owned(), e);
        Ok(())
    }

    /// The codings of one `include`/`exclude`: its listed concepts, or the members of the
    /// ValueSets it names when it names no system.
    fn component(&self, url: &str, inc: &Value) -> Result<Vec<(String, String)>, String> {
        if !array(inc.get("filter")).is_empty() {
            return Err(format!(
                "ValueSet {url} selects codes by filter, which is not expanded here"
            ));
        }
        if let Some(system) = inc.get("system").and_then(Value::as_str) {
            let concepts = array(inc.get("concept"));
            if concepts.is_empty() {
                return Err(format!(
                    "ValueSet {url} includes all of {system}, which is not expanded here"
                ));
            }
            return Ok(concepts
                .iter()
                .filter_map(|c| c.get("code").and_then(Value::as_str))
                .map(|c| (system.to_owned(), c.to_owned()))
                .collect());
        }
        let mut out = Vec::new();
        for vs in array(inc.get("valueSet")).iter().filter_map(Value::as_str) {
            if let Some(e) = self.sets.get(vs) {
                out.extend(e.codings.iter().cloned());
            } else if let Some(r4) = hds_fhir_model::r4().value_set(vs) {
                for system in r4.systems() {
                    out.extend(
                        r4.first_codes(usize::MAX)
                            .filter(|c| r4.contains(Some(system), c))
                            .map(|c| (system.to_owned(), c.to_owned())),
                    );
                }
            } else {
                return Err(format!(
                    "ValueSet {url} imports {vs}, which is not known here"
                ));
            }
        }
        Ok(out)
    }
}

fn array(v: Option<&Value>) -> &[Value] {
    v.and_then(Value::as_array).map_or(&[], Vec::as_slice)
}

fn collect_contains(contains: &Value, e: &mut Expansion) {
    for c in array(Some(contains)) {
        if let Some(code) = c.get("code").and_then(Value::as_str) {
            let system = c.get("system").and_then(Value::as_str).unwrap_or_default();
            e.codes.insert(code.to_owned());
            e.codings.insert((system.to_owned(), code.to_owned()));
        }
        if let Some(nested) = c.get("contains") {
            collect_contains(nested, e);
        }
    }
}

impl ValueSets for Expansions {
    fn contains(&self, canonical: &str, system: Option<&str>, code: &str) -> Option<bool> {
        match self.sets.get(canonical) {
            Some(e) => Some(match system {
                Some(s) => e.codings.contains(&(s.to_owned(), code.to_owned())),
                None => e.codes.contains(code),
            }),
            None => R4ValueSets.contains(canonical, system, code),
        }
    }
}
