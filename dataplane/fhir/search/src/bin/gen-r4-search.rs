//! Generates `data/r4-search.json`, the compact form of R4's search parameters and patient-style
//! compartments that the server embeds, from HL7's `hl7.fhir.r4.examples` 4.0.1 package.
//!
//! Usage: `gen-r4-search <package dir> <out file>` (see scripts/gen-r4-search.sh).
//!
//! The official expressions are unions over every base type (`AllergyIntolerance.patient |
//! CarePlan.subject.where(resolve() is Patient) | ...`); the server evaluates one resource type at
//! a time, so each expression is split here into the parts that start with that type. Parts on
//! `Resource`/`DomainResource` become relative to the resource (`meta.tag`), under the key
//! `Resource`, and apply to every type.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: {} <package dir> <out file>", args[0]);
        std::process::exit(2);
    }
    if let Err(e) = run(Path::new(&args[1]), Path::new(&args[2])) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn read(path: &Path) -> Result<Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn run(pkg: &Path, out: &Path) -> Result<(), String> {
    let bundle = read(&pkg.join("Bundle-searchParams.json"))?;
    let mut params = Vec::new();
    for entry in bundle["entry"].as_array().ok_or("bundle without entry")? {
        let sp = &entry["resource"];
        params.push(compact(sp)?);
    }

    let mut compartments = BTreeMap::new();
    for name in [
        "patient",
        "encounter",
        "relatedPerson",
        "practitioner",
        "device",
    ] {
        let cd = read(&pkg.join(format!("CompartmentDefinition-{name}.json")))?;
        let code = cd["code"]
            .as_str()
            .ok_or("CompartmentDefinition without code")?;
        let mut members = BTreeMap::new();
        for r in cd["resource"].as_array().into_iter().flatten() {
            let Some(p) = r["param"].as_array() else {
                continue;
            };
            members.insert(r["code"].as_str().unwrap_or_default().to_owned(), p.clone());
        }
        compartments.insert(code.to_owned(), members);
    }

    let doc = json!({
        "source": "hl7.fhir.r4.examples 4.0.1 (CC0): Bundle-searchParams.json, CompartmentDefinition-*.json",
        "params": params,
        "compartments": compartments,
    });
    let text = serde_json::to_string(&doc).map_err(|e| e.to_string())?;
    std::fs::write(out, text + "\n").map_err(|e| format!("{}: {e}", out.display()))?;
    Ok(())
}

fn compact(sp: &Value) -> Result<Value, String> {
    let code = sp["code"].as_str().ok_or("SearchParameter without code")?;
    let bases: Vec<&str> = sp["base"]
        .as_array()
        .ok_or_else(|| format!("{code}: no base"))?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let mut exprs: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(e) = sp["expression"].as_str() {
        for part in split_union(e) {
            let (ty, rel) = leading_type(&part);
            match ty {
                Some("Resource" | "DomainResource") => {
                    exprs.entry("Resource".into()).or_default().push(rel)
                }
                Some(t) if bases.contains(&t) => exprs.entry(t.into()).or_default().push(part),
                // A part that starts with no base type (a function on the whole resource):
                // it belongs to every base.
                _ => {
                    for b in &bases {
                        exprs.entry((*b).into()).or_default().push(part.clone());
                    }
                }
            }
        }
    }
    let exprs: BTreeMap<String, String> =
        exprs.into_iter().map(|(k, v)| (k, v.join(" | "))).collect();
    let mut out = json!({
        "code": code,
        "url": sp["url"],
        "type": sp["type"],
        "base": bases,
        "expr": exprs,
    });
    for key in ["target", "modifier", "comparator"] {
        if let Some(v) = sp.get(key) {
            out[key] = v.clone();
        }
    }
    if let Some(components) = sp["component"].as_array() {
        out["component"] = Value::Array(
            components
                .iter()
                .map(|c| json!({"definition": c["definition"], "expression": c["expression"]}))
                .collect(),
        );
    }
    Ok(out)
}

/// Splits on `|` outside parentheses and string literals.
fn split_union(expr: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut depth = 0i32;
    let mut in_str = false;
    let mut prev = '\0';
    for c in expr.chars() {
        match c {
            '\'' if prev != '\\' => in_str = !in_str,
            '(' if !in_str => depth += 1,
            ')' if !in_str => depth -= 1,
            '|' if !in_str && depth == 0 => {
                parts.push(String::new());
                prev = c;
                continue;
            }
            _ => {}
        }
        parts.last_mut().expect("never empty").push(c);
        prev = c;
    }
    parts
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect()
}

/// The type name an expression part starts with (after any opening parentheses), and the part
/// with that leading `Type.` removed.
fn leading_type(part: &str) -> (Option<&str>, String) {
    let open = part.len() - part.trim_start_matches('(').len();
    let rest = &part[open..];
    let ident_len = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let ident = &rest[..ident_len];
    if ident.is_empty() || !ident.starts_with(|c: char| c.is_ascii_uppercase()) {
        return (None, part.to_owned());
    }
    let after = &rest[ident_len..];
    let relative = match after.strip_prefix('.') {
        Some(tail) => format!("{}{}", &part[..open], tail),
        None => format!("{}$this{}", &part[..open], after),
    };
    (Some(ident), relative)
}
