//! Every expression of the official R4 SearchParameters parses and evaluates without error
//! on every R4 example resource it applies to, with spot checks of known answers.

use std::path::PathBuf;

use hds_fhirpath::{Expression, Item};
use serde_json::Value;

fn package_dir() -> PathBuf {
    let base = std::env::var_os("HDS_R4_PACKAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME is not set; set HDS_R4_PACKAGE_DIR");
            PathBuf::from(home).join(".cache/hds/r4-examples")
        });
    let dir = base.join("package");
    assert!(
        dir.join("Bundle-searchParams.json").is_file(),
        "the R4 examples package is missing at {}: run `bash scripts/fetch-r4-package.sh` from \
         the repository root (or point HDS_R4_PACKAGE_DIR at an unpacked hl7.fhir.r4.examples)",
        dir.display()
    );
    dir
}

fn read_json(path: &std::path::Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Param {
    id: String,
    base: Vec<String>,
    expression: Expression,
    components: Vec<Expression>,
}

fn search_params(dir: &std::path::Path) -> Vec<Param> {
    let bundle = read_json(&dir.join("Bundle-searchParams.json"));
    let mut failures = Vec::new();
    let mut params = Vec::new();
    for entry in bundle["entry"].as_array().expect("entry array") {
        let r = &entry["resource"];
        let id = r["id"].as_str().unwrap_or("?").to_owned();
        let parse = |src: &str, failures: &mut Vec<String>| match Expression::parse(src) {
            Ok(e) => Some(e),
            Err(e) => {
                failures.push(format!("{id}: {src:?}: {e}"));
                None
            }
        };
        let components: Vec<Expression> = r["component"]
            .as_array()
            .map(|cs| {
                cs.iter()
                    .filter_map(|c| c["expression"].as_str())
                    .filter_map(|src| parse(src, &mut failures))
                    .collect()
            })
            .unwrap_or_default();
        let Some(src) = r["expression"].as_str() else {
            continue;
        };
        if let Some(expression) = parse(src, &mut failures) {
            let base = r["base"]
                .as_array()
                .map(|b| {
                    b.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default();
            params.push(Param {
                id,
                base,
                expression,
                components,
            });
        }
    }
    assert!(
        failures.is_empty(),
        "expressions that do not parse:\n{}",
        failures.join("\n")
    );
    assert!(
        params.len() > 1300,
        "only {} search parameters found",
        params.len()
    );
    params
}

fn examples(dir: &std::path::Path) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read package dir") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        if !name.ends_with(".json") || name.starts_with("Bundle-") || name == "package.json" {
            continue;
        }
        let value = read_json(&path);
        if value.get("resourceType").and_then(Value::as_str).is_some() {
            out.push((name, value));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(out.len() > 2000, "only {} examples found", out.len());
    out
}

fn applies(param: &Param, resource_type: &str) -> bool {
    param
        .base
        .iter()
        .any(|b| b == resource_type || b == "Resource" || b == "DomainResource")
}

#[test]
fn every_search_expression_evaluates_on_every_example() {
    let dir = package_dir();
    let params = search_params(&dir);
    let examples = examples(&dir);
    let mut errors = Vec::new();
    let (mut evaluations, mut non_empty) = (0usize, 0usize);
    for (file, resource) in &examples {
        let rt = resource["resourceType"].as_str().unwrap_or_default();
        for param in params.iter().filter(|p| applies(p, rt)) {
            evaluations += 1;
            match param.expression.evaluate(resource) {
                Ok(items) => {
                    non_empty += usize::from(!items.is_empty());
                    for item in items {
                        for component in &param.components {
                            if let Err(e) = component.evaluate_on(resource, item.clone()) {
                                errors.push(format!(
                                    "{file} {} component {component}: {e}",
                                    param.id
                                ));
                            }
                        }
                    }
                }
                Err(e) => errors.push(format!("{file} {} {}: {e}", param.id, param.expression)),
            }
        }
    }
    assert!(
        errors.is_empty(),
        "{} evaluation errors:\n{}",
        errors.len(),
        errors.join("\n")
    );
    eprintln!("{evaluations} evaluations, {non_empty} non-empty, 0 errors");
    assert!(
        non_empty > evaluations / 10,
        "suspiciously few results: {non_empty}/{evaluations}"
    );
}

fn example(name: &str) -> Value {
    read_json(&package_dir().join(name))
}

fn eval<'a>(src: &str, resource: &'a Value) -> Vec<Item<'a>> {
    Expression::parse(src)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
        .evaluate(resource)
        .unwrap_or_else(|e| panic!("{src}: {e}"))
}

#[test]
fn known_values_on_r4_examples() {
    let patient = example("Patient-example.json");
    let names = eval("Patient.name", &patient);
    assert_eq!(names.len(), 3);
    assert!(names.iter().all(|n| matches!(
        n,
        Item::Node {
            value: Value::Object(_),
            ..
        }
    )));
    assert!(eval("Observation.code", &patient).is_empty());
    assert_eq!(eval("Patient.name.given", &patient).len(), 5);

    let observation = example("Observation-example.json");
    let q = eval("(Observation.value as Quantity)", &observation);
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].type_name(), Some("Quantity"));
    assert_eq!(q[0].as_node(), observation.get("valueQuantity"));
    assert!(eval("(Observation.value as CodeableConcept)", &observation).is_empty());

    let account = example("Account-example.json");
    let subject = eval("Account.subject.where(resolve() is Patient)", &account);
    assert_eq!(subject.len(), 1);
    assert_eq!(subject[0].as_node(), account["subject"].get(0));
    assert!(eval("Account.subject.where(resolve() is Group)", &account).is_empty());

    let deceased = "Patient.deceased.exists() and Patient.deceased != false";
    let cases = [
        ("Patient-example.json", false), // deceasedBoolean false
        ("Patient-pat4.json", true),     // deceasedBoolean true
        ("Patient-pat3.json", true),     // deceasedDateTime
        ("Patient-xds.json", false),     // no deceased[x]
    ];
    for (file, expected) in cases {
        let resource = example(file);
        assert_eq!(
            eval(deceased, &resource),
            vec![Item::Boolean(expected)],
            "{file}"
        );
    }
}

#[test]
fn composite_components_evaluate_relative_to_each_node() {
    let observation = example("Observation-blood-pressure.json");
    let components = eval("Observation.component", &observation);
    assert_eq!(components.len(), 2);
    let code = Expression::parse("code").unwrap();
    let value = Expression::parse("value.as(Quantity)").unwrap();
    for c in components {
        assert_eq!(code.evaluate_on(&observation, c.clone()).unwrap().len(), 1);
        let v = value.evaluate_on(&observation, c).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].type_name(), Some("Quantity"));
    }
}
