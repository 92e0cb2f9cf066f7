//! Compiling profiles and the checks outside slicing, on small hand-written profiles shaped
//! like published ones.

use serde_json::{Value, json};

use crate::{Expansions, Issue, Profile, R4ValueSets, Severity};

pub(crate) fn profile(rt: &str, elements: Value) -> Profile {
    Profile::compile(&sd(rt, elements)).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn sd(rt: &str, elements: Value) -> Value {
    json!({"resourceType": "StructureDefinition", "url": format!("http://example.org/fhir/StructureDefinition/test-{rt}"),
        "version": "1.0.0", "name": "Test", "status": "active", "kind": "resource", "abstract": false,
        "type": rt, "baseDefinition": format!("http://hl7.org/fhir/StructureDefinition/{rt}"),
        "derivation": "constraint", "differential": {"element": elements}})
}

/// (severity, code, expression) of each issue, for exact comparisons.
pub(crate) fn found(issues: &[Issue]) -> Vec<(&'static str, &'static str, &str)> {
    issues
        .iter()
        .map(|i| (i.severity.as_str(), i.code.as_str(), i.expression.as_str()))
        .collect()
}

#[test]
fn unusable_definitions_are_refused_with_a_reason() {
    let refused = |v: Value| Profile::compile(&v).unwrap_err().to_string();
    assert_eq!(
        refused(json!({"resourceType": "Patient"})),
        "not a StructureDefinition"
    );
    let mut no_kind = sd("Patient", json!([]));
    no_kind.as_object_mut().unwrap().remove("kind");
    assert!(refused(no_kind).ends_with("kind is missing"));
    let mut logical = sd("Patient", json!([]));
    logical["kind"] = json!("logical");
    assert!(refused(logical).contains("kind 'logical' cannot be used"));
    let mut no_type = sd("Patient", json!([]));
    no_type.as_object_mut().unwrap().remove("type");
    assert!(refused(no_type).ends_with("type is missing"));
    let bad_path = sd(
        "Patient",
        json!([{"id": "Patient.colour", "path": "Patient.colour", "min": 1}]),
    );
    assert!(
        refused(bad_path).contains("'Patient' has no element 'colour'"),
        "{}",
        refused(sd(
            "Patient",
            json!([{"id": "Patient.colour", "path": "Patient.colour"}])
        ))
    );
    let below_choice = sd(
        "Observation",
        json!([{"id": "Observation.value[x].unit", "path": "Observation.value[x].unit"}]),
    );
    assert!(refused(below_choice).contains("its type is not narrowed to one"));
    let wrong_root = sd(
        "Patient",
        json!([{"id": "Observation.status", "path": "Observation.status"}]),
    );
    assert!(refused(wrong_root).contains("does not start at Patient"));
}

#[test]
fn cardinality_on_top_level_and_nested_elements() {
    let p = profile(
        "Patient",
        json!([
            {"id": "Patient", "path": "Patient"},
            {"id": "Patient.identifier", "path": "Patient.identifier", "min": 1},
            {"id": "Patient.name", "path": "Patient.name", "max": "1"},
            {"id": "Patient.name.family", "path": "Patient.name.family", "min": 1},
            {"id": "Patient.contact.name", "path": "Patient.contact.name", "min": 1}
        ]),
    );
    let good = json!({"resourceType": "Patient", "identifier": [{"value": "1"}], "name": [{"family": "Chalmers"}]});
    assert_eq!(p.validate(&good, &R4ValueSets), vec![]);
    let bad = json!({"resourceType": "Patient", "name": [{"given": ["Peter"]}, {"family": "Chalmers"}],
        "contact": [{"telecom": [{"system": "phone", "value": "1"}]}]});
    assert_eq!(
        found(&p.validate(&bad, &R4ValueSets)),
        [
            ("error", "required", "Patient.identifier"),
            ("error", "structure", "Patient.name"),
            ("error", "required", "Patient.name[0].family"),
            ("error", "required", "Patient.contact[0].name"),
        ]
    );
    let other = json!({"resourceType": "Observation"});
    assert_eq!(
        found(&p.validate(&other, &R4ValueSets)),
        [("error", "invalid", "Observation")]
    );
}

#[test]
fn choice_types_fixed_and_pattern_values() {
    let p = profile(
        "Observation",
        json!([
            {"id": "Observation.status", "path": "Observation.status", "fixedCode": "final"},
            {"id": "Observation.code", "path": "Observation.code",
             "patternCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}},
            {"id": "Observation.value[x]", "path": "Observation.value[x]", "min": 1, "type": [{"code": "Quantity"}]},
            {"id": "Observation.value[x].system", "path": "Observation.value[x].system", "min": 1,
             "fixedUri": "http://unitsofmeasure.org"}
        ]),
    );
    let good = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}], "text": "Weight"},
        "valueQuantity": {"value": 72.5, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}});
    assert_eq!(p.validate(&good, &R4ValueSets), vec![]);
    let bad = json!({"resourceType": "Observation", "status": "preliminary",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "valueString": "heavy"});
    assert_eq!(
        found(&p.validate(&bad, &R4ValueSets)),
        [
            ("error", "value", "Observation.status"),
            ("error", "value", "Observation.code"),
            ("error", "structure", "Observation.valueString"),
        ]
    );
    let wrong_unit = json!({"resourceType": "Observation", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
        "valueQuantity": {"value": 160, "unit": "lb", "system": "http://example.org/units"}});
    assert_eq!(
        found(&p.validate(&wrong_unit, &R4ValueSets)),
        [("error", "value", "Observation.valueQuantity.system")]
    );
}

#[test]
fn required_bindings_against_r4_and_supplied_value_sets() {
    let p = profile(
        "Patient",
        json!([
            {"id": "Patient.maritalStatus", "path": "Patient.maritalStatus",
             "binding": {"strength": "required", "valueSet": "http://hl7.org/fhir/ValueSet/marital-status|4.0.1"}},
            {"id": "Patient.communication.language", "path": "Patient.communication.language",
             "binding": {"strength": "required", "valueSet": "http://example.org/fhir/ValueSet/languages"}},
            {"id": "Patient.gender", "path": "Patient.gender",
             "binding": {"strength": "required", "valueSet": "http://example.org/fhir/ValueSet/two-genders"}},
            {"id": "Patient.contact.relationship", "path": "Patient.contact.relationship",
             "binding": {"strength": "extensible", "valueSet": "http://hl7.org/fhir/ValueSet/patient-contactrelationship"}}
        ]),
    );
    let married = json!({"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M"}]});
    let wrong_system = json!({"coding": [{"system": "http://example.org/status", "code": "M"}]});
    let patient = |ms: &Value| {
        json!({"resourceType": "Patient", "maritalStatus": ms,
        "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "nl"}]}}],
        "gender": "other", "contact": [{"relationship": [{"text": "neighbour"}]}]})
    };
    // The languages ValueSet is unknown: one warning, however often it is met.
    let issues = p.validate(&patient(&married), &R4ValueSets);
    assert_eq!(
        found(&issues),
        [
            ("warning", "not-found", "Patient.communication[0].language"),
            ("warning", "not-found", "Patient.gender"),
        ]
    );
    assert!(
        issues[0]
            .diagnostics
            .contains("http://example.org/fhir/ValueSet/languages")
    );
    let mut stored = Expansions::default();
    stored
        .add(
            &json!({"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/languages",
            "status": "active", "compose": {"include": [{"system": "urn:ietf:bcp:47",
            "concept": [{"code": "en"}, {"code": "de"}]}]}}),
        )
        .unwrap();
    stored
        .add(&json!({"resourceType": "ValueSet", "url": "http://example.org/fhir/ValueSet/two-genders",
            "status": "active", "expansion": {"timestamp": "2024-01-01", "contains": [
                {"system": "http://hl7.org/fhir/administrative-gender", "code": "male"},
                {"system": "http://hl7.org/fhir/administrative-gender", "code": "female"}]}}))
        .unwrap();
    assert_eq!(
        found(&p.validate(&patient(&wrong_system), &stored)),
        [
            ("error", "code-invalid", "Patient.maritalStatus"),
            ("error", "code-invalid", "Patient.communication[0].language"),
            ("error", "code-invalid", "Patient.gender"),
        ]
    );
    let all_of = json!({"resourceType": "ValueSet", "url": "http://example.org/vs/all",
        "compose": {"include": [{"system": "http://loinc.org"}]}});
    assert!(
        stored
            .add(&all_of)
            .unwrap_err()
            .contains("includes all of http://loinc.org")
    );
}

#[test]
fn invariants_with_their_severity_and_unrunnable_ones_as_warnings() {
    let p = profile(
        "Patient",
        json!([
            {"id": "Patient", "path": "Patient", "constraint": [
                {"key": "test-1", "severity": "error", "human": "A name or an identifier",
                 "expression": "name.exists() or identifier.exists()"},
                {"key": "test-2", "severity": "warning", "human": "Should have a birth date",
                 "expression": "birthDate.exists()"},
                {"key": "test-3", "severity": "error", "human": "Gender from the value set",
                 "expression": "gender.memberOf('http://hl7.org/fhir/ValueSet/administrative-gender')"}]},
            {"id": "Patient.telecom", "path": "Patient.telecom", "constraint": [
                {"key": "test-4", "severity": "error", "human": "Phones need a use",
                 "expression": "system = 'phone' implies use.exists()"}]}
        ]),
    );
    let bad = json!({"resourceType": "Patient", "gender": "male", "telecom": [
        {"system": "email", "value": "a@b.c"}, {"system": "phone", "value": "1"}, {"system": "phone", "value": "2"}]});
    let issues = p.validate(&bad, &R4ValueSets);
    assert_eq!(
        found(&issues),
        [
            ("error", "invariant", "Patient"),
            ("warning", "invariant", "Patient"),
            ("warning", "not-supported", "Patient"),
            ("error", "invariant", "Patient.telecom[1]"),
            ("error", "invariant", "Patient.telecom[2]"),
        ]
    );
    assert!(issues[0].diagnostics.contains("test-1"));
    assert!(
        issues[2].diagnostics.contains("test-3"),
        "{}",
        issues[2].diagnostics
    );
    let good = json!({"resourceType": "Patient", "name": [{"family": "X"}], "birthDate": "1970",
        "telecom": [{"system": "phone", "value": "1", "use": "home"}]});
    let issues = p.validate(&good, &R4ValueSets);
    assert!(
        issues.iter().all(|i| i.severity != Severity::Error),
        "{issues:?}"
    );
}

#[test]
fn reference_targets_narrowed_to_r4_types() {
    let p = profile(
        "Observation",
        json!([{"id": "Observation.subject", "path": "Observation.subject", "min": 1, "type": [{"code": "Reference",
            "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Patient"]}]}]),
    );
    let obs = |r: &str| json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "subject": {"reference": r}});
    assert_eq!(p.validate(&obs("Patient/1"), &R4ValueSets), vec![]);
    assert_eq!(
        p.validate(
            &obs("https://other.example/fhir/Patient/1/_history/2"),
            &R4ValueSets
        ),
        vec![]
    );
    assert_eq!(
        found(&p.validate(&obs("Group/1"), &R4ValueSets)),
        [("error", "structure", "Observation.subject.reference")]
    );
}

#[test]
fn lengths_and_value_bounds() {
    let p = profile(
        "Observation",
        json!([
            {"id": "Observation", "path": "Observation"},
            {"id": "Observation.valueQuantity", "path": "Observation.valueQuantity",
             "minValueQuantity": {"value": 0, "system": "http://unitsofmeasure.org", "code": "/min"},
             "maxValueQuantity": {"value": 300, "system": "http://unitsofmeasure.org", "code": "/min"}},
            {"id": "Observation.issued", "path": "Observation.issued",
             "minValueInstant": "2000-01-01T00:00:00Z"},
            {"id": "Observation.code.text", "path": "Observation.code.text", "maxLength": 5}
        ]),
    );
    let obs = |value: Value, issued: &str, text: &str| {
        json!({"resourceType": "Observation", "status": "final", "code": {"text": text},
               "issued": issued, "valueQuantity": value})
    };
    let hr = |v: i64| json!({"value": v, "system": "http://unitsofmeasure.org", "code": "/min"});
    let ok = p.validate(&obs(hr(72), "2020-01-01T00:00:00Z", "HR"), &R4ValueSets);
    assert_eq!(found(&ok), vec![]);
    let bad = p.validate(
        &obs(hr(400), "1999-12-31T23:59:59Z", "Heart rate"),
        &R4ValueSets,
    );
    assert_eq!(
        found(&bad),
        vec![
            ("error", "value", "Observation.valueQuantity"),
            ("error", "value", "Observation.issued"),
            ("error", "too-long", "Observation.code.text"),
        ]
    );
    // Another unit is not compared (nothing is claimed about it).
    let other = json!({"value": 9000, "system": "http://unitsofmeasure.org", "code": "/h"});
    let fine = p.validate(&obs(other, "2020-01-01T00:00:00Z", "HR"), &R4ValueSets);
    assert_eq!(found(&fine), vec![]);
}

#[test]
fn a_differential_names_the_stored_profile_it_derives_from() {
    let base = |url: &str| {
        let mut sd = sd("Patient", json!([{"id": "Patient", "path": "Patient"}]));
        sd["baseDefinition"] = json!(url);
        Profile::compile(&sd).unwrap()
    };
    let derived = base("http://example.org/fhir/StructureDefinition/audit-patient");
    assert_eq!(
        derived.derived_from(),
        Some("http://example.org/fhir/StructureDefinition/audit-patient")
    );
    // R4's own definition of the type is checked by the R4 structure, not looked up.
    assert_eq!(
        base("http://hl7.org/fhir/StructureDefinition/Patient").derived_from(),
        None
    );
    // A profile R4 publishes on a type is a profile like any other: it must be found.
    assert_eq!(
        base("http://hl7.org/fhir/StructureDefinition/vitalsigns").derived_from(),
        Some("http://hl7.org/fhir/StructureDefinition/vitalsigns")
    );
    // A snapshot carries its base's rules itself.
    let mut with_snapshot = sd("Patient", json!([]));
    with_snapshot["baseDefinition"] = json!("http://example.org/fhir/StructureDefinition/x");
    with_snapshot["snapshot"] = json!({"element": [{"id": "Patient", "path": "Patient"}]});
    assert_eq!(
        Profile::compile(&with_snapshot).unwrap().derived_from(),
        None
    );
}
