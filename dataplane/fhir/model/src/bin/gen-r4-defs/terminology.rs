//! Expands the ValueSets of required bindings on `code` elements from the package's own
//! ValueSets and CodeSystems.
//!
//! An expansion is either complete or absent: anything we cannot enumerate from the package
//! (filters, external or partial code systems, unresolvable imports) yields `None`, so the
//! validator leaves that element unchecked rather than rejecting valid codes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde_json::Value;

/// The bundles holding the R4 ValueSets and CodeSystems.
pub const BUNDLES: [&str; 3] = [
    "Bundle-valuesets.json",
    "Bundle-v3-valuesets.json",
    "Bundle-v2-valuesets.json",
];

/// (system, code): exclusions and intersections must not mix up equal codes of different
/// systems, even though the validator finally only sees the code.
type Coding = (String, String);

pub struct Terminology {
    value_sets: HashMap<String, Value>,
    code_systems: HashMap<String, Value>,
}

impl Terminology {
    pub fn load(pkg: &Path) -> Result<Self, String> {
        let mut t = Terminology {
            value_sets: HashMap::new(),
            code_systems: HashMap::new(),
        };
        for file in BUNDLES {
            let path = pkg.join(file);
            let text =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut bundle: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let Some(entries) = bundle["entry"].as_array_mut() else {
                return Err(format!("{}: bundle without entry", path.display()));
            };
            for entry in entries {
                let res = entry["resource"].take();
                let Some(url) = res["url"].as_str().map(str::to_string) else {
                    continue;
                };
                let map = match res["resourceType"].as_str() {
                    Some("ValueSet") => &mut t.value_sets,
                    Some("CodeSystem") => &mut t.code_systems,
                    _ => continue,
                };
                // The first definition wins so the output does not depend on hash order.
                map.entry(url).or_insert(res);
            }
        }
        Ok(t)
    }

    /// Every ValueSet url of the package, sorted.
    pub fn value_set_urls(&self) -> Vec<&str> {
        let mut urls: Vec<&str> = self.value_sets.keys().map(String::as_str).collect();
        urls.sort_unstable();
        urls
    }

    /// The codes of the ValueSet at `canonical` (version suffix ignored), grouped by code
    /// system in order of first appearance, each group in definition order; `None` when the
    /// package cannot enumerate it completely.
    pub fn expand(&self, canonical: &str) -> Option<Vec<(String, Vec<String>)>> {
        let codings = self.expand_codings(canonical, &mut Vec::new())?;
        let mut seen = HashSet::new();
        let mut groups: Vec<(String, Vec<String>)> = Vec::new();
        for (system, code) in codings {
            if !seen.insert((system.clone(), code.clone())) {
                continue;
            }
            match groups.iter_mut().find(|(s, _)| *s == system) {
                Some((_, codes)) => codes.push(code),
                None => groups.push((system, vec![code])),
            }
        }
        Some(groups)
    }

    fn expand_codings(&self, canonical: &str, visiting: &mut Vec<String>) -> Option<Vec<Coding>> {
        let url = strip_version(canonical);
        if visiting.iter().any(|v| v == url) {
            return None;
        }
        let compose = self.value_sets.get(url)?.get("compose")?;
        visiting.push(url.to_string());
        let result = (|| {
            let mut codings = Vec::new();
            for inc in compose["include"].as_array()? {
                codings.extend(self.component(inc, visiting)?);
            }
            if let Some(excludes) = compose.get("exclude") {
                let mut excluded = BTreeSet::new();
                for exc in excludes.as_array()? {
                    excluded.extend(self.component(exc, visiting)?);
                }
                codings.retain(|c| !excluded.contains(c));
            }
            Some(codings)
        })();
        visiting.pop();
        result
    }

    /// One `compose.include`/`exclude`: its system part intersected with every imported
    /// ValueSet, as the ValueSet resource defines.
    fn component(&self, inc: &Value, visiting: &mut Vec<String>) -> Option<Vec<Coding>> {
        if inc
            .get("filter")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
        {
            return None;
        }
        let mut codings: Option<Vec<Coding>> = match inc.get("system") {
            None => None,
            Some(system) => {
                let system = system.as_str()?;
                let codes = match inc.get("concept") {
                    Some(concepts) => concepts
                        .as_array()?
                        .iter()
                        .map(|c| c["code"].as_str().map(str::to_string))
                        .collect::<Option<Vec<_>>>()?,
                    None => self.all_codes(system)?,
                };
                Some(codes.into_iter().map(|c| (system.to_string(), c)).collect())
            }
        };
        for vs in inc
            .get("valueSet")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let imported = self.expand_codings(vs.as_str()?, visiting)?;
            codings = Some(match codings {
                None => imported,
                Some(mut cur) => {
                    let keep: HashSet<&Coding> = imported.iter().collect();
                    cur.retain(|c| keep.contains(c));
                    cur
                }
            });
        }
        codings
    }

    /// Every concept of a CodeSystem, nested ones included, if the package has all of them.
    fn all_codes(&self, system: &str) -> Option<Vec<String>> {
        let cs = self.code_systems.get(strip_version(system))?;
        if cs["content"] != "complete" {
            return None;
        }
        let mut out = Vec::new();
        collect_concepts(cs.get("concept")?, &mut out)?;
        Some(out)
    }
}

fn collect_concepts(concepts: &Value, out: &mut Vec<String>) -> Option<()> {
    for c in concepts.as_array()? {
        out.push(c["code"].as_str()?.to_string());
        if let Some(children) = c.get("concept") {
            collect_concepts(children, out)?;
        }
    }
    Some(())
}

fn strip_version(canonical: &str) -> &str {
    canonical.split_once('|').map_or(canonical, |(url, _)| url)
}
