//! The profiles of the official R4 package (the resource StructureDefinitions themselves,
//! with every invariant, and constraints such as vitalsigns, bp, shareablevalueset) against
//! the package's examples: what the spec publishes as valid must validate without errors,
//! except the documented errata in `KNOWN_ERRORS`. Needs the package
//! (`scripts/fetch-r4-package.sh`, or `HDS_R4_PACKAGE_DIR`); fails when it is missing.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use hds_fhir_profile::{Profile, R4ValueSets, Severity};
use serde_json::Value;

fn package_dir() -> PathBuf {
    let base = std::env::var_os("HDS_R4_PACKAGE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/hds/r4-examples")
        });
    let dir = base.join("package");
    assert!(
        dir.join("package.json").is_file(),
        "the R4 examples package is missing at {}: run scripts/fetch-r4-package.sh",
        dir.display()
    );
    dir
}

/// Published examples that break their own profiles: (file, number of errors, what each
/// error's text contains). The validator must report exactly these, so the list documents
/// errata rather than hiding findings.
const KNOWN_ERRORS: &[(&str, usize, &str)] = &[
    // Entries share fullUrls without differing meta.versionId.
    ("Bundle-dataelements.json", 1, "constraint bdl-7 failed"),
    // References to types the element does not allow.
    ("DeviceMetric-example.json", 1, "not to DeviceDefinition"),
    ("DeviceUseStatement-example.json", 1, "not to Procedure"),
    ("MedicationRequest-medrx0301.json", 1, "not to Practitioner"),
    ("Observation-clinical-gender.json", 1, "not to Encounter"),
    // Logical models that are neither abstract nor based on anything.
    (
        "StructureDefinition-Definition.json",
        1,
        "constraint sdf-4 failed",
    ),
    (
        "StructureDefinition-Event.json",
        1,
        "constraint sdf-4 failed",
    ),
    (
        "StructureDefinition-FiveWs.json",
        1,
        "constraint sdf-4 failed",
    ),
    (
        "StructureDefinition-Request.json",
        1,
        "constraint sdf-4 failed",
    ),
    // Asserts with both responseCode and response.
    (
        "TestScript-testscript-example-history.json",
        3,
        "constraint tst-5 failed",
    ),
    (
        "TestScript-testscript-example-search.json",
        1,
        "constraint tst-5 failed",
    ),
    (
        "TestScript-testscript-example-update.json",
        2,
        "constraint tst-5 failed",
    ),
    (
        "TestScript-testscript-example.json",
        2,
        "constraint tst-5 failed",
    ),
];

#[test]
fn package_examples_conform_to_package_profiles() {
    let dir = package_dir();
    let mut examples = Vec::new();
    let mut profiles: HashMap<String, Profile> = HashMap::new();
    let mut refused = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".json") || name == "package.json" {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()) else {
            continue;
        };
        if v["resourceType"] == "StructureDefinition"
            && v["kind"] == "resource"
            && v["abstract"] != true
            && hds_fhir_model::r4().is_resource_type(v["type"].as_str().unwrap_or_default())
        {
            match Profile::compile(&v) {
                Ok(p) => {
                    profiles.insert(p.url().to_owned(), p);
                }
                Err(e) => refused.push(format!("{name}: {e}")),
            }
        }
        examples.push((name, v));
    }
    assert!(refused.is_empty(), "refused: {refused:#?}");
    assert!(profiles.len() > 150, "{} profiles", profiles.len());
    let mut errors: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for (name, ex) in &examples {
        let Some(rt) = ex["resourceType"].as_str() else {
            continue;
        };
        let mut urls = vec![format!("http://hl7.org/fhir/StructureDefinition/{rt}")];
        urls.extend(
            ex["meta"]["profile"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_owned),
        );
        for url in urls {
            let Some(p) = profiles.get(&url) else {
                continue;
            };
            checked += 1;
            for i in p.validate(ex, &R4ValueSets) {
                if i.severity == Severity::Error {
                    errors.entry(name.clone()).or_default().push(i.to_string());
                }
            }
        }
    }
    assert!(checked > 5000, "{checked} validations");
    let mut report = String::new();
    for (file, count, needle) in KNOWN_ERRORS {
        match errors.remove(*file) {
            Some(found) if found.len() == *count && found.iter().all(|e| e.contains(needle)) => {}
            found => report.push_str(&format!(
                "{file}: expected {count} errors with '{needle}', found {found:#?}\n"
            )),
        }
    }
    for (k, v) in &errors {
        report.push_str(&format!("{k}:\n  {}\n", v.join("\n  ")));
    }
    assert!(report.is_empty(), "unexpected findings:\n{report}");
}
