use serde_json::{Value, json};

use crate::{ElementInfo, PatchError, apply_fhirpath_patch, apply_fhirpath_patch_with};

/// Builds a Parameters resource from (type, extra parts) pairs.
fn params(ops: &[Value]) -> Value {
    json!({"resourceType": "Parameters", "parameter": ops})
}

fn op(ty: &str, path: &str, extra: Value) -> Value {
    let mut parts = vec![
        json!({"name": "type", "valueCode": ty}),
        json!({"name": "path", "valueString": path}),
    ];
    parts.extend(extra.as_array().cloned().unwrap_or_default());
    json!({"name": "operation", "part": parts})
}

fn patient() -> Value {
    json!({
        "resourceType": "Patient",
        "id": "example",
        "identifier": [
            {"system": "http://a", "value": "1"},
            {"system": "http://b", "value": "2"},
            {"system": "http://c", "value": "3"}
        ],
        "name": [
            {"use": "official", "family": "Chalmers", "given": ["Peter", "James"]},
            {"use": "usual", "given": ["Jim"]}
        ],
        "birthDate": "1974-12-25"
    })
}

fn apply(resource: &Value, ops: &[Value]) -> Result<Value, PatchError> {
    let mut r = resource.clone();
    apply_fhirpath_patch(&mut r, &params(ops))?;
    Ok(r)
}

#[test]
fn add_birth_date() {
    let mut p = patient();
    p.as_object_mut().unwrap().remove("birthDate");
    let out = apply(&p, &[op("add", "Patient", json!([{"name": "name", "valueString": "birthDate"}, {"name": "value", "valueDate": "1930-01-01"}]))]).unwrap();
    assert_eq!(out["birthDate"], "1930-01-01");
}

#[test]
fn add_to_existing_single_value_is_unprocessable() {
    let err = apply(&patient(), &[op("add", "Patient", json!([{"name": "name", "valueString": "birthDate"}, {"name": "value", "valueDate": "1930-01-01"}]))]).unwrap_err();
    assert!(err.is_unprocessable(), "{err}");
}

#[test]
fn replace_birth_date() {
    let out = apply(
        &patient(),
        &[op(
            "replace",
            "Patient.birthDate",
            json!([{"name": "value", "valueDate": "1930-01-01"}]),
        )],
    )
    .unwrap();
    assert_eq!(out["birthDate"], "1930-01-01");
}

#[test]
fn delete_birth_date_and_its_extensions() {
    let mut p = patient();
    p["_birthDate"] = json!({"extension": [{"url": "x", "valueBoolean": true}]});
    let out = apply(&p, &[op("delete", "Patient.birthDate", json!([]))]).unwrap();
    assert!(out.get("birthDate").is_none());
    assert!(out.get("_birthDate").is_none());
}

#[test]
fn delete_missing_element_is_a_no_op() {
    let mut p = patient();
    p.as_object_mut().unwrap().remove("birthDate");
    let out = apply(&p, &[op("delete", "Patient.birthDate", json!([]))]).unwrap();
    assert_eq!(out, p);
}

#[test]
fn add_identifier_from_parts_appends_to_array() {
    let out = apply(
        &patient(),
        &[op(
            "add",
            "Patient",
            json!([
                {"name": "name", "valueString": "identifier"},
                {"name": "value", "part": [
                    {"name": "system", "valueUri": "http://d"},
                    {"name": "value", "valueString": "4"}
                ]}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(out["identifier"].as_array().unwrap().len(), 4);
    assert_eq!(
        out["identifier"][3],
        json!({"system": "http://d", "value": "4"})
    );
}

#[test]
fn add_repeating_element_creates_array_when_absent() {
    let out = apply(
        &json!({"resourceType": "Patient"}),
        &[op(
            "add",
            "Patient",
            json!([
                {"name": "name", "valueString": "name"},
                {"name": "value", "part": [
                    {"name": "family", "valueString": "Smith"},
                    {"name": "given", "valueString": "Anna"}
                ]}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(out["name"], json!([{"family": "Smith", "given": ["Anna"]}]));
}

#[test]
fn add_given_name_via_where() {
    let out = apply(
        &patient(),
        &[op(
            "add",
            "Patient.name.where(use='usual')",
            json!([
                {"name": "name", "valueString": "given"},
                {"name": "value", "valueString": "Jimmy"}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(out["name"][1]["given"], json!(["Jim", "Jimmy"]));
}

#[test]
fn add_complex_typed_value() {
    let out = apply(
        &patient(),
        &[op(
            "add",
            "Patient",
            json!([
                {"name": "name", "valueString": "maritalStatus"},
                {"name": "value", "valueCodeableConcept": {"text": "married"}}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(out["maritalStatus"], json!({"text": "married"}));
}

#[test]
fn custom_element_info_decides_cardinality() {
    struct AllSingle;
    impl ElementInfo for AllSingle {
        fn is_repeating(&self, _: &str, _: &str) -> Option<bool> {
            Some(false)
        }
    }
    struct AllRepeating;
    impl ElementInfo for AllRepeating {
        fn is_repeating(&self, parent: &str, name: &str) -> Option<bool> {
            assert_eq!((parent, name), ("Patient", "photoNote"));
            Some(true)
        }
    }
    let add = params(&[op(
        "add",
        "Patient",
        json!([{"name": "name", "valueString": "photoNote"}, {"name": "value", "valueString": "x"}]),
    )]);
    let mut a = json!({"resourceType": "Patient"});
    apply_fhirpath_patch_with(&mut a, &add, &AllSingle).unwrap();
    assert_eq!(a["photoNote"], "x");
    let mut b = json!({"resourceType": "Patient"});
    apply_fhirpath_patch_with(&mut b, &add, &AllRepeating).unwrap();
    assert_eq!(b["photoNote"], json!(["x"]));
}

#[test]
fn insert_identifier_at_index() {
    let out = apply(
        &patient(),
        &[op(
            "insert",
            "Patient.identifier",
            json!([
                {"name": "index", "valueInteger": 1},
                {"name": "value", "valueIdentifier": {"system": "http://new", "value": "n"}}
            ]),
        )],
    )
    .unwrap();
    let systems: Vec<_> = out["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["system"].as_str().unwrap())
        .collect();
    assert_eq!(systems, ["http://a", "http://new", "http://b", "http://c"]);
}

#[test]
fn insert_out_of_range_is_unprocessable() {
    let err = apply(
        &patient(),
        &[op(
            "insert",
            "Patient.identifier",
            json!([
                {"name": "index", "valueInteger": 4},
                {"name": "value", "valueIdentifier": {"value": "n"}}
            ]),
        )],
    )
    .unwrap_err();
    assert!(err.is_unprocessable(), "{err}");
    assert_eq!(err.expression(), Some("Parameters.parameter[0]"));
}

#[test]
fn insert_into_absent_list_at_zero() {
    let out = apply(
        &json!({"resourceType": "Patient"}),
        &[op(
            "insert",
            "Patient.telecom",
            json!([
                {"name": "index", "valueInteger": 0},
                {"name": "value", "valueContactPoint": {"system": "phone", "value": "555"}}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(out["telecom"], json!([{"system": "phone", "value": "555"}]));
}

#[test]
fn move_identifier() {
    let out = apply(
        &patient(),
        &[op(
            "move",
            "Patient.identifier",
            json!([
                {"name": "source", "valueInteger": 0},
                {"name": "destination", "valueInteger": 2}
            ]),
        )],
    )
    .unwrap();
    let values: Vec<_> = out["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["2", "3", "1"]);
}

#[test]
fn move_keeps_primitive_extensions_aligned() {
    let p = json!({"resourceType": "Patient", "name": [{"given": ["A", "B"], "_given": [null, {"id": "b"}]}]});
    let out = apply(
        &p,
        &[op(
            "move",
            "Patient.name[0].given",
            json!([
                {"name": "source", "valueInteger": 1},
                {"name": "destination", "valueInteger": 0}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(out["name"][0]["given"], json!(["B", "A"]));
    assert_eq!(out["name"][0]["_given"], json!([{"id": "b"}, null]));
}

#[test]
fn delete_with_where() {
    let out = apply(
        &patient(),
        &[op(
            "delete",
            "Patient.identifier.where(system='http://b' and value='2')",
            json!([]),
        )],
    )
    .unwrap();
    let values: Vec<_> = out["identifier"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert_eq!(values, ["1", "3"]);
}

#[test]
fn delete_last_item_removes_the_empty_list() {
    let out = apply(
        &patient(),
        &[op(
            "delete",
            "Patient.name.where(use='usual').given",
            json!([]),
        )],
    )
    .unwrap();
    assert_eq!(out["name"][1], json!({"use": "usual"}));
    let p = json!({"resourceType": "Patient", "name": [{"text": "x"}]});
    let out = apply(&p, &[op("delete", "Patient.name.text", json!([]))]).unwrap();
    assert_eq!(out, json!({"resourceType": "Patient"}));
}

#[test]
fn delete_matching_many_is_unprocessable() {
    let err = apply(&patient(), &[op("delete", "Patient.identifier", json!([]))]).unwrap_err();
    assert!(err.is_unprocessable(), "{err}");
}

#[test]
fn replace_with_where() {
    let out = apply(
        &patient(),
        &[op(
            "replace",
            "Patient.name.where(use='official').family",
            json!([{"name": "value", "valueString": "Windsor"}]),
        )],
    )
    .unwrap();
    assert_eq!(out["name"][0]["family"], "Windsor");
    let out = apply(
        &patient(),
        &[op(
            "replace",
            "Patient.name.where(use = 'official').given.first()",
            json!([{"name": "value", "valueString": "Pete"}]),
        )],
    )
    .unwrap();
    assert_eq!(out["name"][0]["given"], json!(["Pete", "James"]));
}

#[test]
fn replace_unresolvable_is_unprocessable() {
    let err = apply(
        &patient(),
        &[op(
            "replace",
            "Patient.gender",
            json!([{"name": "value", "valueCode": "male"}]),
        )],
    )
    .unwrap_err();
    assert!(matches!(err, PatchError::Unprocessable { .. }), "{err}");
    let err = apply(
        &patient(),
        &[op(
            "replace",
            "Patient.name.given",
            json!([{"name": "value", "valueString": "x"}]),
        )],
    )
    .unwrap_err();
    assert!(err.is_unprocessable(), "{err}");
    assert!(err.message().contains("3 elements"), "{err}");
}

#[test]
fn observation_value_of_type() {
    let obs = json!({"resourceType": "Observation", "status": "final", "valueQuantity": {"value": 5.4, "unit": "mmol/L"}});
    let out = apply(
        &obs,
        &[op(
            "replace",
            "Observation.value.ofType(Quantity).value",
            json!([{"name": "value", "valueDecimal": 6.1}]),
        )],
    )
    .unwrap();
    assert_eq!(out["valueQuantity"]["value"], 6.1);
    // ofType() of another type finds nothing, so replace cannot apply.
    let err = apply(
        &obs,
        &[op(
            "replace",
            "Observation.value.ofType(string)",
            json!([{"name": "value", "valueString": "x"}]),
        )],
    )
    .unwrap_err();
    assert!(err.is_unprocessable());
    // Replacing a choice with another type renames the key.
    let out = apply(
        &obs,
        &[op(
            "replace",
            "Observation.value",
            json!([{"name": "value", "valueString": "high"}]),
        )],
    )
    .unwrap();
    assert_eq!(out["valueString"], "high");
    assert!(out.get("valueQuantity").is_none());
    // Adding a choice uses the value's type for the key.
    let mut bare = obs.clone();
    bare.as_object_mut().unwrap().remove("valueQuantity");
    let out = apply(&bare, &[op("add", "Observation", json!([{"name": "name", "valueString": "value"}, {"name": "value", "valueCodeableConcept": {"text": "pos"}}]))]).unwrap();
    assert_eq!(out["valueCodeableConcept"], json!({"text": "pos"}));
    let out = apply(&obs, &[op("delete", "Observation.value", json!([]))]).unwrap();
    assert!(out.get("valueQuantity").is_none());
}

#[test]
fn add_extension_with_choice_value_from_parts() {
    let out = apply(
        &patient(),
        &[op(
            "add",
            "Patient",
            json!([
                {"name": "name", "valueString": "extension"},
                {"name": "value", "part": [
                    {"name": "url", "valueUri": "http://ext"},
                    {"name": "value", "valueBoolean": true}
                ]}
            ]),
        )],
    )
    .unwrap();
    assert_eq!(
        out["extension"],
        json!([{"url": "http://ext", "valueBoolean": true}])
    );
    let out = apply(
        &out,
        &[op(
            "replace",
            "Patient.extension('http://ext').value",
            json!([{"name": "value", "valueBoolean": false}]),
        )],
    )
    .unwrap();
    assert_eq!(out["extension"][0]["valueBoolean"], false);
}

#[test]
fn invalid_documents() {
    let cases = [
        json!({"resourceType": "Patient"}),
        json!({"resourceType": "Parameters"}),
        params(&[
            json!({"name": "operation", "part": [{"name": "path", "valueString": "Patient.birthDate"}]}),
        ]),
        params(&[op("frobnicate", "Patient.birthDate", json!([]))]),
        params(&[op("delete", "Patient.name.given.exists()", json!([]))]),
        params(&[op("delete", "Patient..birthDate", json!([]))]),
        params(&[op("replace", "Patient.birthDate", json!([]))]),
        params(&[op(
            "add",
            "Patient",
            json!([{"name": "value", "valueString": "x"}]),
        )]),
        params(&[op(
            "insert",
            "Patient.identifier",
            json!([{"name": "index", "valueInteger": -1}, {"name": "value", "valueString": "x"}]),
        )]),
        params(&[op(
            "move",
            "Patient.identifier.first()",
            json!([{"name": "source", "valueInteger": 0}, {"name": "destination", "valueInteger": 1}]),
        )]),
        params(&[json!({"name": "notAnOperation", "part": []})]),
    ];
    for (i, doc) in cases.iter().enumerate() {
        let mut p = patient();
        let err = apply_fhirpath_patch(&mut p, doc).unwrap_err();
        assert!(matches!(err, PatchError::Invalid { .. }), "case {i}: {err}");
        assert_eq!(p, patient());
    }
}

#[test]
fn invalid_names_the_failing_operation_and_expression() {
    let doc = params(&[
        op("delete", "Patient.birthDate", json!([])),
        op("delete", "Patient.name.select(given)", json!([])),
    ]);
    let mut p = patient();
    let err = apply_fhirpath_patch(&mut p, &doc).unwrap_err();
    assert_eq!(err.expression(), Some("Parameters.parameter[1]"));
    assert!(err.message().contains("select"), "{err}");
    // Validation happens before anything is applied.
    assert_eq!(p, patient());
    let missing_type = params(&[
        json!({"name": "operation", "part": [{"name": "path", "valueString": "Patient"}]}),
    ]);
    let err = apply_fhirpath_patch(&mut p, &missing_type).unwrap_err();
    assert!(err.message().contains("'type'"), "{err}");
}

#[test]
fn atomic_when_a_later_operation_fails() {
    let doc = params(&[
        op(
            "replace",
            "Patient.birthDate",
            json!([{"name": "value", "valueDate": "2000-01-01"}]),
        ),
        op(
            "replace",
            "Patient.gender",
            json!([{"name": "value", "valueCode": "female"}]),
        ),
    ]);
    let mut p = patient();
    let err = apply_fhirpath_patch(&mut p, &doc).unwrap_err();
    assert!(err.is_unprocessable());
    assert_eq!(err.expression(), Some("Parameters.parameter[1]"));
    assert_eq!(p, patient());
}

#[test]
fn operations_apply_in_order() {
    let doc = params(&[
        op(
            "add",
            "Patient",
            json!([{"name": "name", "valueString": "gender"}, {"name": "value", "valueCode": "male"}]),
        ),
        op(
            "replace",
            "Patient.gender",
            json!([{"name": "value", "valueCode": "other"}]),
        ),
        op(
            "insert",
            "Patient.name[0].given",
            json!([{"name": "index", "valueInteger": 0}, {"name": "value", "valueString": "Sir"}]),
        ),
    ]);
    let mut p = patient();
    apply_fhirpath_patch(&mut p, &doc).unwrap();
    assert_eq!(p["gender"], "other");
    assert_eq!(p["name"][0]["given"], json!(["Sir", "Peter", "James"]));
}
