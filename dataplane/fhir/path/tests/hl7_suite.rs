//! The official HL7 FHIRPath R4 test suite (`tests-fhir-r4.xml`), fetched by
//! `scripts/fetch-fhirpath-tests.sh`. Every test must pass except those named in
//! `hl7_suite_known_failures.txt`, and a listed test that passes fails this test too, so the
//! list can only shrink.
//!
//! Conventions of the suite as this runner reads them: no `<output>` means the empty
//! collection; `invalid` on the expression or the test means parsing or evaluation must fail;
//! `predicate="true"` turns the result into "is it non-empty"; `context` names an expression
//! whose single result becomes the focus; `ordered="false"` compares outputs as a multiset.
//! Tests in `mode="strict"` or with semantic checks expect model-based errors that an engine
//! without StructureDefinitions cannot raise; they stay in the known-failures list.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use hds_fhirpath::{Expression, Item};
use serde_json::Value;

fn data_dir() -> PathBuf {
    let base = std::env::var_os("HDS_FHIRPATH_TESTS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home =
                std::env::var_os("HOME").expect("HOME is not set; set HDS_FHIRPATH_TESTS_DIR");
            PathBuf::from(home).join(".cache/hds/fhirpath-tests")
        });
    let dir = base.join("r4");
    assert!(
        dir.join("tests-fhir-r4.xml").is_file(),
        "the HL7 FHIRPath test suite is missing at {}: run `bash scripts/fetch-fhirpath-tests.sh` \
         from the repository root (or point HDS_FHIRPATH_TESTS_DIR at its cache directory)",
        dir.display()
    );
    dir
}

struct Case {
    group: String,
    name: String,
    input: Option<String>,
    expression: String,
    invalid: bool,
    predicate: bool,
    ordered: bool,
    context: Option<String>,
    outputs: Vec<(String, String)>,
}

fn read_cases(xml: &str) -> Vec<Case> {
    let doc = roxmltree::Document::parse(xml).expect("tests-fhir-r4.xml is well-formed XML");
    let mut cases = Vec::new();
    for group in doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("group"))
    {
        let group_name = group.attribute("name").unwrap_or("?").to_owned();
        for (i, test) in group
            .children()
            .filter(|n| n.has_tag_name("test"))
            .enumerate()
        {
            let expr = test
                .children()
                .find(|n| n.has_tag_name("expression"))
                .expect("every test has an expression");
            let outputs = test
                .children()
                .filter(|n| n.has_tag_name("output"))
                .map(|o| {
                    let ty = o.attribute("type").unwrap_or("string").to_owned();
                    (ty, o.text().unwrap_or("").to_owned())
                })
                .collect();
            cases.push(Case {
                name: test
                    .attribute("name")
                    .map_or_else(|| format!("{group_name}#{i}"), str::to_owned),
                group: group_name.clone(),
                input: test.attribute("inputfile").map(str::to_owned),
                expression: expr.text().unwrap_or("").to_owned(),
                invalid: expr.attribute("invalid").is_some() || test.attribute("invalid").is_some(),
                predicate: test.attribute("predicate") == Some("true"),
                ordered: test.attribute("ordered") != Some("false"),
                context: test.attribute("context").map(str::to_owned),
                outputs,
            });
        }
    }
    cases
}

fn describe(item: &Item<'_>) -> String {
    match item {
        Item::Node { value, fhir_type } => match fhir_type {
            Some(t) => format!("{value} ({t})"),
            None => value.to_string(),
        },
        Item::Boolean(b) => b.to_string(),
        Item::String(s) => format!("'{s}'"),
        Item::Integer(i) => i.to_string(),
        Item::Decimal(d) => format!("{d:?}"),
        Item::Date(s) | Item::DateTime(s) => format!("@{s}"),
        Item::Time(s) => format!("@T{s}"),
        Item::Resolved { resource_type, id } => format!("{resource_type}/{id} (resolved)"),
        Item::Quantity { value, unit } => format!("{value} '{unit}'"),
    }
}

fn number_of(item: &Item<'_>) -> Option<f64> {
    match item {
        Item::Integer(i) => Some(*i as f64),
        Item::Decimal(d) => Some(*d),
        Item::Node {
            value: Value::Number(n),
            ..
        } => n.as_f64(),
        _ => None,
    }
}

/// Whether `item` is the expected output `(type, text)`, compared by the type's rules.
fn matches(item: &Item<'_>, ty: &str, text: &str) -> bool {
    let text_of = |item: &Item<'_>| match item {
        Item::String(s) | Item::Date(s) | Item::DateTime(s) | Item::Time(s) => Some(s.to_string()),
        Item::Node {
            value: Value::String(s),
            ..
        } => Some(s.clone()),
        _ => None,
    };
    match ty {
        "boolean" => match item {
            Item::Boolean(b)
            | Item::Node {
                value: Value::Bool(b),
                ..
            } => b.to_string() == text.trim(),
            _ => false,
        },
        "integer" => match item {
            Item::Integer(_)
            | Item::Node {
                value: Value::Number(_),
                ..
            } => text.trim().parse::<i64>().ok().map(|i| i as f64) == number_of(item),
            _ => false,
        },
        "decimal" => match (number_of(item), text.trim().parse::<f64>()) {
            (Some(got), Ok(want)) => (got - want).abs() <= 1e-9 * want.abs().max(1.0),
            _ => false,
        },
        "date" | "dateTime" | "time" => {
            let want = text.trim().trim_start_matches('@');
            let want = if ty == "time" {
                want.trim_start_matches('T')
            } else {
                want
            };
            text_of(item).is_some_and(|got| got == want)
        }
        "Quantity" => quantity_matches(item, text.trim()),
        _ => {
            matches!(
                item,
                Item::String(_)
                    | Item::Node {
                        value: Value::String(_),
                        ..
                    }
            ) && text_of(item).is_some_and(|got| got == text)
        }
    }
}

/// A Quantity written as `value 'unit'` against a Quantity value or element (its `code`,
/// else `unit`).
fn quantity_matches(item: &Item<'_>, text: &str) -> bool {
    let Some((value, unit)) = text.split_once(' ') else {
        return false;
    };
    let unit = unit.trim().trim_matches('\'');
    let Ok(value) = value.parse::<f64>() else {
        return false;
    };
    match item {
        Item::Quantity { value: v, unit: u } => *v == value && u == unit,
        Item::Node {
            value: Value::Object(map),
            ..
        } => {
            let got = map.get("value").and_then(Value::as_f64);
            let got_unit = map
                .get("code")
                .or_else(|| map.get("unit"))
                .and_then(Value::as_str)
                .unwrap_or("1");
            got == Some(value) && got_unit == unit
        }
        _ => false,
    }
}

/// The outcome of one test: None when it passed, else what went wrong.
fn run(case: &Case, inputs: &mut HashMap<String, Value>, dir: &Path) -> Option<String> {
    let resource = match &case.input {
        Some(file) => inputs
            .entry(file.clone())
            .or_insert_with(|| {
                let path = dir.join("input").join(file);
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            })
            .clone(),
        None => Value::Object(Default::default()),
    };
    let expr = Expression::parse(&case.expression);
    let result = expr.as_ref().map_err(ToString::to_string).and_then(|e| {
        let Some(context) = &case.context else {
            return e.evaluate(&resource).map_err(|err| err.to_string());
        };
        let ctx = Expression::parse(context).map_err(|err| format!("context: {err}"))?;
        let focus = ctx
            .evaluate(&resource)
            .map_err(|err| format!("context: {err}"))?;
        match <[Item<'_>; 1]>::try_from(focus) {
            Ok([one]) => e.evaluate_on(&resource, one).map_err(|err| err.to_string()),
            Err(many) => Err(format!("context gave {} items, not 1", many.len())),
        }
    });
    let items = match (result, case.invalid) {
        (Err(_), true) => return None,
        (Ok(items), true) => {
            let got: Vec<String> = items.iter().map(describe).collect();
            return Some(format!("got [{}]", got.join(", ")));
        }
        (Err(e), false) => return Some(format!("error: {e}")),
        (Ok(items), false) => items,
    };
    let items = if case.predicate {
        vec![Item::Boolean(!items.is_empty())]
    } else {
        items
    };
    let ok = items.len() == case.outputs.len()
        && if case.ordered {
            items
                .iter()
                .zip(&case.outputs)
                .all(|(item, (ty, text))| matches(item, ty, text))
        } else {
            let mut used = vec![false; items.len()];
            case.outputs.iter().all(|(ty, text)| {
                let hit = (0..items.len()).find(|&i| !used[i] && matches(&items[i], ty, text));
                hit.map(|i| used[i] = true).is_some()
            })
        };
    if ok {
        return None;
    }
    let got: Vec<String> = items.iter().map(describe).collect();
    Some(format!("got [{}]", got.join(", ")))
}

/// `name # reason` per line; blank lines and lines starting with `#` are ignored.
fn known_failures() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/hl7_suite_known_failures.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (name, reason) = line
            .split_once(" # ")
            .unwrap_or_else(|| panic!("{}:{}: expected `name # reason`", path.display(), n + 1));
        let (name, reason) = (name.trim(), reason.trim());
        assert!(
            !reason.is_empty(),
            "{}:{}: empty reason",
            path.display(),
            n + 1
        );
        assert!(
            out.insert(name.to_owned(), reason.to_owned()).is_none(),
            "{}:{}: {name} is listed twice",
            path.display(),
            n + 1
        );
    }
    out
}

#[test]
fn hl7_fhirpath_r4_suite() {
    let dir = data_dir();
    let xml = std::fs::read_to_string(dir.join("tests-fhir-r4.xml")).expect("read the suite");
    let cases = read_cases(&xml);
    assert!(cases.len() > 500, "only {} tests found", cases.len());
    let known = known_failures();

    let mut inputs = HashMap::new();
    let mut report = String::new();
    let mut failed_by_group: BTreeMap<&str, usize> = BTreeMap::new();
    // A name shared by several tests passes only when all of them pass.
    let mut failed_names = BTreeSet::new();
    let mut all_names = BTreeSet::new();
    for case in &cases {
        all_names.insert(case.name.as_str());
        if let Some(why) = run(case, &mut inputs, &dir) {
            *failed_by_group.entry(&case.group).or_default() += 1;
            failed_names.insert(case.name.as_str());
            let expected: Vec<String> = case
                .outputs
                .iter()
                .map(|(ty, text)| format!("{text} ({ty})"))
                .collect();
            let expected = if case.invalid {
                "an error".to_owned()
            } else {
                format!("[{}]", expected.join(", "))
            };
            let listed = if known.contains_key(&case.name) {
                " [known]"
            } else {
                ""
            };
            let _ = writeln!(
                report,
                "  {}/{}{listed}: {}\n      expected {expected}; {why}",
                case.group, case.name, case.expression
            );
        }
    }
    let failed = failed_by_group.values().sum::<usize>();
    let passed = cases.len() - failed;
    println!("failures:\n{report}");
    println!("failed by group:");
    for (group, n) in &failed_by_group {
        println!("  {group}: {n}");
    }
    println!("total {}, passed {passed}, failed {failed}", cases.len());
    println!("hl7 fhirpath r4 suite: {passed}/{} passed", cases.len());

    let mut problems = Vec::new();
    for name in &failed_names {
        if !known.contains_key(*name) {
            problems.push(format!(
                "{name} fails and is not in tests/hl7_suite_known_failures.txt"
            ));
        }
    }
    for name in known.keys() {
        if !all_names.contains(name.as_str()) {
            problems.push(format!(
                "{name} is listed in tests/hl7_suite_known_failures.txt but is not in the suite; \
                 remove it from the list"
            ));
        } else if !failed_names.contains(name.as_str()) {
            problems.push(format!(
                "{name} now passes: remove it from tests/hl7_suite_known_failures.txt"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
