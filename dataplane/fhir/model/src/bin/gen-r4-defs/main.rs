//! Builds the compact R4 definitions file (`data/r4-defs.json`) from the official
//! `hl7.fhir.r4.examples` 4.0.1 package.
//!
//! Usage: `gen-r4-defs <package dir> <out file>`; run `scripts/fetch-r4-package.sh` first.
//! The output is deterministic: types are sorted by name, elements keep snapshot order and
//! the JSON is written with a fixed layout.

mod terminology;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::{Map, Value, json};

use terminology::Terminology;

const FHIR_TYPE_EXT: &str = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";
const REGEX_EXT: &str = "http://hl7.org/fhir/StructureDefinition/regex";
const FHIRPATH_PREFIX: &str = "http://hl7.org/fhirpath/System.";

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

fn run(pkg: &Path, out: &Path) -> Result<(), String> {
    let mut sds = Vec::new();
    for file in ["Bundle-types.json", "Bundle-resources.json"] {
        let path = pkg.join(file);
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bundle: Value =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        for entry in bundle["entry"].as_array().ok_or("bundle without entry")? {
            let res = &entry["resource"];
            if res["resourceType"] == "StructureDefinition" {
                sds.push(res.clone());
            }
        }
    }

    let value_sets = required_value_sets(pkg, &sds)?;
    let vs_index: BTreeMap<&str, usize> = value_sets
        .iter()
        .enumerate()
        .map(|(i, (url, _))| (url.as_str(), i))
        .collect();

    let mut primitives = BTreeMap::new();
    let mut types = BTreeMap::new();
    for sd in &sds {
        let kind = sd["kind"].as_str().unwrap_or_default();
        // Constraints (SimpleQuantity, MoneyQuantity) are profiles on Quantity, not types,
        // and logical models (MetadataResource) never appear on the wire.
        if sd["derivation"] == "constraint" || kind == "logical" {
            continue;
        }
        let name = sd["type"]
            .as_str()
            .ok_or("StructureDefinition without type")?;
        let elements = sd["snapshot"]["element"]
            .as_array()
            .ok_or("missing snapshot")?;
        match kind {
            "primitive-type" => {
                primitives.insert(name.to_string(), primitive(name, elements)?);
            }
            "complex-type" | "resource" => {
                let mut t = Map::new();
                t.insert(
                    "kind".into(),
                    json!(if kind == "resource" {
                        "resource"
                    } else {
                        "complex"
                    }),
                );
                t.insert(
                    "abstract".into(),
                    json!(sd["abstract"].as_bool().unwrap_or(false)),
                );
                if let Some(base) = sd["baseDefinition"].as_str() {
                    t.insert(
                        "base".into(),
                        json!(base.rsplit('/').next().unwrap_or(base)),
                    );
                }
                let is_resource = kind == "resource";
                t.insert(
                    "elements".into(),
                    Value::Array(element_tree(name, elements, is_resource, &vs_index)?),
                );
                types.insert(name.to_string(), Value::Object(t));
            }
            other => return Err(format!("{name}: unexpected kind {other}")),
        }
    }

    write_output(out, &primitives, &types, &value_sets)
}

/// Whether an element is a `code` that must hold a code from its bound ValueSet; returns
/// that ValueSet's canonical without version.
fn required_code_binding(el: &Value) -> Option<&str> {
    let is_code = el["type"].as_array()?.iter().any(|t| t["code"] == "code");
    let binding = &el["binding"];
    (is_code && binding["strength"] == "required")
        .then(|| binding["valueSet"].as_str())
        .flatten()
        .map(|vs| vs.split_once('|').map_or(vs, |(url, _)| url))
}

/// Codes grouped by system, as [`Terminology::expand`] gives them.
type Expansion = Vec<(String, Vec<String>)>;

/// Expands every ValueSet of the package that it can enumerate completely, sorted by url:
/// `code` elements bound with strength `required` point at theirs, and profiles may bind any
/// element to any of them. A required `code` binding whose ValueSet cannot be enumerated is
/// reported, and its elements stay unchecked.
fn required_value_sets(pkg: &Path, sds: &[Value]) -> Result<Vec<(String, Expansion)>, String> {
    let terminology = Terminology::load(pkg)?;
    let mut out = Vec::new();
    for url in terminology.value_set_urls() {
        match terminology.expand(url) {
            Some(groups) if !groups.is_empty() => out.push((url.to_string(), groups)),
            _ => {}
        }
    }
    let required: BTreeSet<&str> = sds
        .iter()
        .filter_map(|sd| sd["snapshot"]["element"].as_array())
        .flatten()
        .filter_map(required_code_binding)
        .collect();
    for url in required {
        if !out.iter().any(|(u, _)| u == url) {
            eprintln!("not checked (cannot expand from the package): {url}");
        }
    }
    Ok(out)
}

/// Writes compact JSON with one top-level entry per line so regenerating after a spec
/// change yields a reviewable diff instead of a single 500 kB line.
fn write_output(
    out: &Path,
    primitives: &BTreeMap<String, Value>,
    types: &BTreeMap<String, Value>,
    value_sets: &[(String, Expansion)],
) -> Result<(), String> {
    let mut text = String::from("{\"fhirVersion\":\"4.0.1\",\n");
    text.push_str(&format!(
        "\"source\":\"hl7.fhir.r4.examples#4.0.1 (Bundle-types.json, Bundle-resources.json, {})\",\n",
        terminology::BUNDLES.join(", ")
    ));
    // Elements refer to these by index (`valueSet`), which keeps each code list once.
    text.push_str("\"valueSets\":[\n");
    let lines: Vec<String> = value_sets
        .iter()
        .map(|(url, groups)| {
            let include: Vec<Value> = groups
                .iter()
                .map(|(system, codes)| json!({"system": system, "codes": codes}))
                .collect();
            json!({"url": url, "include": include}).to_string()
        })
        .collect();
    text.push_str(&lines.join(",\n"));
    text.push_str("\n],\n");
    for (section, entries) in [("primitives", primitives), ("types", types)] {
        text.push_str(&format!("\"{section}\":{{\n"));
        let lines: Vec<String> = entries
            .iter()
            .map(|(name, v)| format!("{}:{}", json!(name), v))
            .collect();
        text.push_str(&lines.join(",\n"));
        text.push_str(if section == "types" {
            "\n}\n"
        } else {
            "\n},\n"
        });
    }
    text.push_str("}\n");
    serde_json::from_str::<Value>(&text).map_err(|e| format!("generated invalid JSON: {e}"))?;
    std::fs::write(out, &text).map_err(|e| format!("{}: {e}", out.display()))?;
    eprintln!("wrote {} ({} bytes)", out.display(), text.len());
    Ok(())
}

fn primitive(name: &str, elements: &[Value]) -> Result<Value, String> {
    let value_path = format!("{name}.value");
    let value_el = elements
        .iter()
        .find(|e| e["path"] == value_path.as_str())
        .ok_or_else(|| format!("{name}: no value element"))?;
    let ty = &value_el["type"][0];
    let regex = ext_value(ty, REGEX_EXT, "valueString");
    let system = ty["code"].as_str().unwrap_or_default();
    let json_kind = match (name, system.strip_prefix(FHIRPATH_PREFIX)) {
        (_, Some("Boolean")) => "boolean",
        // JSON carries decimals and all integer flavours as numbers, even though the
        // spec models positiveInt/unsignedInt as System.String.
        ("positiveInt" | "unsignedInt", _) | (_, Some("Integer" | "Decimal")) => "number",
        _ => "string",
    };
    let ext_path = format!("{name}.extension");
    let extensible = elements
        .iter()
        .find(|e| e["path"] == ext_path.as_str())
        .is_none_or(|e| e["max"] != "0");
    let mut p = Map::new();
    p.insert("json".into(), json!(json_kind));
    p.insert("regex".into(), regex.map_or(Value::Null, |r| json!(r)));
    p.insert("extensible".into(), json!(extensible));
    Ok(Value::Object(p))
}

fn ext_value<'a>(ty: &'a Value, url: &str, key: &str) -> Option<&'a str> {
    ty["extension"]
        .as_array()?
        .iter()
        .find(|x| x["url"] == url)
        .and_then(|x| x[key].as_str())
}

/// Nests the flat snapshot into a tree keyed by path so inline BackboneElements carry
/// their own children and the validator never has to re-parse dotted paths.
fn element_tree(
    root: &str,
    elements: &[Value],
    is_resource: bool,
    value_sets: &BTreeMap<&str, usize>,
) -> Result<Vec<Value>, String> {
    let mut stack: Vec<(String, Vec<Value>, Map<String, Value>)> =
        vec![(root.to_string(), Vec::new(), Map::new())];
    for el in elements {
        let path = el["path"].as_str().ok_or("element without path")?;
        if path == root {
            continue;
        }
        while !path.starts_with(&format!("{}.", stack.last().expect("root stays").0)) {
            pop_into_parent(&mut stack);
        }
        let name = &path[stack.last().expect("root stays").0.len() + 1..];
        let mut e = Map::new();
        e.insert("name".into(), json!(name));
        e.insert(
            "min".into(),
            json!(el["min"].as_u64().ok_or_else(|| format!("{path}: min"))?),
        );
        if el["isSummary"] == json!(true) {
            e.insert("summary".into(), json!(true));
        }
        let max = el["max"].as_str().ok_or_else(|| format!("{path}: max"))?;
        e.insert(
            "max".into(),
            if max == "*" {
                json!("*")
            } else {
                json!(max.parse::<u64>().map_err(|e| format!("{path}: {e}"))?)
            },
        );
        if let Some(target) = el["contentReference"].as_str() {
            e.insert(
                "contentReference".into(),
                json!(target.trim_start_matches('#')),
            );
        } else {
            let codes = el["type"]
                .as_array()
                .ok_or_else(|| format!("{path}: no type"))?
                .iter()
                .map(|t| type_code(t, path, is_resource && stack.len() == 1 && name == "id"))
                .collect::<Result<Vec<_>, _>>()?;
            e.insert("types".into(), json!(codes));
            if let Some(&vs) = required_code_binding(el).and_then(|url| value_sets.get(url)) {
                e.insert("valueSet".into(), json!(vs));
            }
        }
        stack.push((path.to_string(), Vec::new(), e));
    }
    while stack.len() > 1 {
        pop_into_parent(&mut stack);
    }
    Ok(stack.pop().expect("root").1)
}

fn pop_into_parent(stack: &mut Vec<(String, Vec<Value>, Map<String, Value>)>) {
    let (_, children, mut e) = stack.pop().expect("non-root");
    if !children.is_empty() {
        e.insert("elements".into(), Value::Array(children));
    }
    stack.last_mut().expect("parent").1.push(Value::Object(e));
}

fn type_code(t: &Value, path: &str, resource_id: bool) -> Result<String, String> {
    let code = t["code"]
        .as_str()
        .ok_or_else(|| format!("{path}: type without code"))?;
    if !code.starts_with(FHIRPATH_PREFIX) {
        return Ok(code.to_string());
    }
    // R4 snapshots type Resource.id as System.String/"string", but the resource pages,
    // XML schema and JSON schema all define it as `id`; follow the normative wire format.
    if resource_id {
        return Ok("id".to_string());
    }
    ext_value(t, FHIR_TYPE_EXT, "valueUrl")
        .map(str::to_string)
        .ok_or_else(|| format!("{path}: {code} without fhir-type extension"))
}
