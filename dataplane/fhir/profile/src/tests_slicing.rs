//! Slicing by value, pattern, type and existence, open and closed, on real-shaped profiles.

use serde_json::json;

use crate::R4ValueSets;
use crate::tests::{found, profile};

const MRN: &str = "http://hospital.example.org/mrn";

#[test]
fn identifier_slices_by_system_value() {
    let elements = |rules: &str| {
        json!([
            {"id": "Patient.identifier", "path": "Patient.identifier",
             "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": rules}},
            {"id": "Patient.identifier:mrn", "path": "Patient.identifier", "sliceName": "mrn", "min": 1, "max": "1"},
            {"id": "Patient.identifier:mrn.system", "path": "Patient.identifier.system", "min": 1, "fixedUri": MRN},
            {"id": "Patient.identifier:mrn.value", "path": "Patient.identifier.value", "min": 1}
        ])
    };
    let open = profile("Patient", elements("open"));
    let closed = profile("Patient", elements("closed"));
    let good = json!({"resourceType": "Patient", "identifier": [
        {"system": "http://example.org/ssn", "value": "1"}, {"system": MRN, "value": "42"}]});
    assert_eq!(open.validate(&good, &R4ValueSets), vec![]);
    assert_eq!(
        found(&closed.validate(&good, &R4ValueSets)),
        [("error", "structure", "Patient.identifier[0]")]
    );
    let missing = json!({"resourceType": "Patient", "identifier": [{"system": "http://example.org/ssn", "value": "1"}]});
    assert_eq!(
        found(&open.validate(&missing, &R4ValueSets)),
        [("error", "required", "Patient.identifier")]
    );
    let twice = json!({"resourceType": "Patient", "identifier": [
        {"system": MRN, "value": "1"}, {"system": MRN, "use": "old"}]});
    assert_eq!(
        found(&open.validate(&twice, &R4ValueSets)),
        [
            ("error", "structure", "Patient.identifier"),
            ("error", "required", "Patient.identifier[1].value"),
        ]
    );
}

#[test]
fn extension_slices_by_url_from_their_type_profile() {
    let race = "http://example.org/fhir/StructureDefinition/race";
    let p = profile(
        "Patient",
        json!([
            {"id": "Patient.extension:race", "path": "Patient.extension", "sliceName": "race", "min": 1, "max": "1",
             "type": [{"code": "Extension", "profile": [race]}]},
            {"id": "Patient.extension:race.value[x]", "path": "Patient.extension.value[x]", "min": 1,
             "type": [{"code": "Coding"}]}
        ]),
    );
    let with = |ext: serde_json::Value| json!({"resourceType": "Patient", "extension": ext});
    let good = with(
        json!([{"url": "http://example.org/other", "valueString": "x"},
        {"url": race, "valueCoding": {"system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3"}}]),
    );
    assert_eq!(p.validate(&good, &R4ValueSets), vec![]);
    let bad = with(json!([{"url": race, "valueString": "White"}]));
    assert_eq!(
        found(&p.validate(&bad, &R4ValueSets)),
        [("error", "structure", "Patient.extension[0].valueString")]
    );
    assert_eq!(
        found(&p.validate(
            &with(json!([{"url": "http://example.org/other", "valueString": "x"}])),
            &R4ValueSets
        )),
        [("error", "required", "Patient.extension")]
    );
}

#[test]
fn vital_signs_category_and_components_by_pattern() {
    let p = profile(
        "Observation",
        json!([
            {"id": "Observation.category", "path": "Observation.category", "min": 1,
             "slicing": {"discriminator": [{"type": "pattern", "path": "$this"}], "rules": "open"}},
            {"id": "Observation.category:VSCat", "path": "Observation.category", "sliceName": "VSCat", "min": 1, "max": "1",
             "patternCodeableConcept": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}},
            {"id": "Observation.component", "path": "Observation.component",
             "slicing": {"discriminator": [{"type": "pattern", "path": "code"}], "rules": "closed"}},
            {"id": "Observation.component:systolic", "path": "Observation.component", "sliceName": "systolic", "min": 1, "max": "1"},
            {"id": "Observation.component:systolic.code", "path": "Observation.component.code",
             "patternCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]}},
            {"id": "Observation.component:systolic.value[x]", "path": "Observation.component.value[x]", "min": 1,
             "type": [{"code": "Quantity"}]},
            {"id": "Observation.component:systolic.value[x].code", "path": "Observation.component.value[x].code",
             "min": 1, "fixedCode": "mm[Hg]"},
            {"id": "Observation.component:diastolic", "path": "Observation.component", "sliceName": "diastolic", "min": 1, "max": "1"},
            {"id": "Observation.component:diastolic.code", "path": "Observation.component.code",
             "patternCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]}}
        ]),
    );
    let cat = json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}]);
    let comp = |code: &str, unit: &str| {
        json!({"code": {"coding": [{"system": "http://loinc.org", "code": code}]},
        "valueQuantity": {"value": 107, "system": "http://unitsofmeasure.org", "code": unit}})
    };
    let bp = |category: serde_json::Value, components: serde_json::Value| {
        json!({"resourceType": "Observation",
        "status": "final", "category": category, "code": {"text": "BP"}, "component": components})
    };
    let good = bp(
        cat.clone(),
        json!([comp("8480-6", "mm[Hg]"), comp("8462-4", "mm[Hg]")]),
    );
    assert_eq!(p.validate(&good, &R4ValueSets), vec![]);
    let bad = bp(
        json!([{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}]),
        json!([comp("8480-6", "kPa"), comp("8310-5", "Cel")]),
    );
    assert_eq!(
        found(&p.validate(&bad, &R4ValueSets)),
        [
            ("error", "required", "Observation.category"),
            (
                "error",
                "value",
                "Observation.component[0].valueQuantity.code"
            ),
            ("error", "required", "Observation.component"),
            ("error", "structure", "Observation.component[1]"),
        ]
    );
}

#[test]
fn type_slices_and_exists_discriminators() {
    let p = profile(
        "Observation",
        json!([
            {"id": "Observation.value[x]", "path": "Observation.value[x]",
             "slicing": {"discriminator": [{"type": "type", "path": "$this"}], "rules": "closed"}},
            {"id": "Observation.value[x]:valueQuantity", "path": "Observation.value[x]", "sliceName": "valueQuantity",
             "type": [{"code": "Quantity"}]},
            {"id": "Observation.value[x]:valueQuantity.unit", "path": "Observation.value[x].unit", "min": 1},
            {"id": "Observation.note", "path": "Observation.note",
             "slicing": {"discriminator": [{"type": "exists", "path": "author"}], "rules": "open"}},
            {"id": "Observation.note:signed", "path": "Observation.note", "sliceName": "signed", "min": 1},
            {"id": "Observation.note:signed.author[x]", "path": "Observation.note.author[x]", "min": 1}
        ]),
    );
    let obs = |value: serde_json::Value| {
        let mut o = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
            "note": [{"text": "unsigned"}, {"authorString": "Dr X", "text": "signed"}]});
        for (k, v) in value.as_object().unwrap() {
            o[k] = v.clone();
        }
        o
    };
    assert_eq!(
        p.validate(
            &obs(json!({"valueQuantity": {"value": 1, "unit": "mg"}})),
            &R4ValueSets
        ),
        vec![]
    );
    assert_eq!(
        found(&p.validate(&obs(json!({"valueQuantity": {"value": 1}})), &R4ValueSets)),
        [("error", "required", "Observation.valueQuantity.unit")]
    );
    assert_eq!(
        found(&p.validate(&obs(json!({"valueString": "1 mg"})), &R4ValueSets)),
        [("error", "structure", "Observation.valueString")]
    );
    let unsigned = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "note": [{"text": "a"}]});
    assert_eq!(
        found(&p.validate(&unsigned, &R4ValueSets)),
        [("error", "required", "Observation.note")]
    );
}
