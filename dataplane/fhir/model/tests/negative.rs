//! Each spec violation is reported with an actionable expression and the right issue code.

use hds_fhir_model::{IssueCode, Severity, r4};
use serde_json::{Value, json};

/// Validates and returns (expression, code) pairs.
fn issues(v: Value) -> Vec<(String, IssueCode)> {
    r4().validate(&v)
        .into_iter()
        .map(|i| (i.expression, i.code))
        .collect()
}

fn one(v: Value, expression: &str, code: IssueCode) {
    let got = r4().validate(&v);
    assert_eq!(
        got.iter()
            .map(|i| (i.expression.as_str(), i.code))
            .collect::<Vec<_>>(),
        vec![(expression, code)],
        "full issues: {got:#?}"
    );
}

fn patient(extra: Value) -> Value {
    let mut p = json!({"resourceType": "Patient", "id": "p1"});
    p.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    p
}

#[test]
fn valid_resources_have_no_issues() {
    let p = patient(json!({
        "name": [{"family": "Chalmers", "given": ["Peter", null], "_given": [null, {"extension": [{"url": "http://x", "valueString": "J"}]}]}],
        "birthDate": "1974-12-25",
        "_birthDate": {"extension": [{"url": "http://hl7.org/fhir/StructureDefinition/patient-birthTime", "valueDateTime": "1974-12-25T14:35:45-05:00"}]},
        "deceasedBoolean": false,
        "multipleBirthInteger": 2,
        "contained": [{"resourceType": "Organization", "id": "org", "name": "Acme"}],
        "managingOrganization": {"reference": "#org"}
    }));
    assert_eq!(issues(p), vec![]);
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueQuantity": {"value": 1.5, "unit": "mg"}, "component": [{"code": {"text": "c"}, "valueInteger": -3}]});
    assert_eq!(issues(obs), vec![]);
}

#[test]
fn unknown_element() {
    let got = r4().validate(&patient(json!({"foo": 1})));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].expression, "Patient.foo");
    assert_eq!(got[0].code, IssueCode::Structure);
    assert_eq!(got[0].severity, Severity::Error);
    assert!(
        got[0].diagnostics.contains("'foo'"),
        "{}",
        got[0].diagnostics
    );
    one(
        patient(json!({"name": [{"family": "x", "nickname": "y"}]})),
        "Patient.name[0].nickname",
        IssueCode::Structure,
    );
    // A primitive's `_x` companion only exists for primitive elements.
    one(
        patient(json!({"_name": {"id": "a"}})),
        "Patient._name",
        IssueCode::Structure,
    );
    one(
        patient(json!({"valueFoo": 1})),
        "Patient.valueFoo",
        IssueCode::Structure,
    );
}

#[test]
fn wrong_json_kind() {
    one(
        patient(json!({"name": "Peter"})),
        "Patient.name",
        IssueCode::Structure,
    );
    one(
        patient(json!({"name": ["Peter"]})),
        "Patient.name[0]",
        IssueCode::Structure,
    );
    one(
        patient(json!({"active": "true"})),
        "Patient.active",
        IssueCode::Value,
    );
    one(
        patient(json!({"active": {"value": true}})),
        "Patient.active",
        IssueCode::Structure,
    );
    one(
        patient(json!({"managingOrganization": "Organization/1"})),
        "Patient.managingOrganization",
        IssueCode::Structure,
    );
}

#[test]
fn empty_and_null_values() {
    one(
        patient(json!({"name": []})),
        "Patient.name",
        IssueCode::Structure,
    );
    one(
        patient(json!({"name": [{}]})),
        "Patient.name[0]",
        IssueCode::Structure,
    );
    one(
        patient(json!({"gender": ""})),
        "Patient.gender",
        IssueCode::Value,
    );
    one(
        patient(json!({"gender": null})),
        "Patient.gender",
        IssueCode::Structure,
    );
    one(
        patient(json!({"name": [{"given": ["a", null]}]})),
        "Patient.name[0].given[1]",
        IssueCode::Structure,
    );
}

#[test]
fn bad_primitive_formats() {
    one(
        patient(json!({"birthDate": "1990-13-01"})),
        "Patient.birthDate",
        IssueCode::Value,
    );
    one(
        patient(json!({"birthDate": "2023-02-29"})),
        "Patient.birthDate",
        IssueCode::Value,
    );
    one(
        patient(json!({"birthDate": "1990-01-01T10:00:00Z"})),
        "Patient.birthDate",
        IssueCode::Value,
    );
    one(
        patient(json!({"id": "has space"})),
        "Patient.id",
        IssueCode::Value,
    );
    one(
        patient(json!({"id": "x".repeat(65)})),
        "Patient.id",
        IssueCode::Value,
    );
    one(
        patient(json!({"deceasedDateTime": "2020-01-01T10:00"})),
        "Patient.deceasedDateTime",
        IssueCode::Value,
    );
    one(
        patient(json!({"multipleBirthInteger": 1.5})),
        "Patient.multipleBirthInteger",
        IssueCode::Value,
    );
    one(
        patient(json!({"multipleBirthInteger": 2147483648u64})),
        "Patient.multipleBirthInteger",
        IssueCode::Value,
    );
    one(
        patient(json!({"gender": "fe male "})),
        "Patient.gender",
        IssueCode::Value,
    );
    one(
        patient(json!({"implicitRules": "http://a b"})),
        "Patient.implicitRules",
        IssueCode::Value,
    );
    one(
        patient(json!({"meta": {"lastUpdated": "2020-01-01"}})),
        "Patient.meta.lastUpdated",
        IssueCode::Value,
    );
    one(
        patient(json!({"photo": [{"data": "not base64!"}]})),
        "Patient.photo[0].data",
        IssueCode::Value,
    );
    one(
        patient(json!({"text": {"status": "generated", "div": "plain text"}})),
        "Patient.text.div",
        IssueCode::Value,
    );
    one(
        patient(json!({"name": [{"text": "a\u{0001}b"}]})),
        "Patient.name[0].text",
        IssueCode::Value,
    );
    let schedule = json!({"resourceType": "Schedule", "actor": [{"reference": "Practitioner/1"}],
        "extension": [{"url": "http://x", "valuePositiveInt": 0}]});
    one(
        schedule,
        "Schedule.extension[0].valuePositiveInt",
        IssueCode::Value,
    );
    one(
        patient(json!({"name": [{"text": "x".repeat(1024 * 1024 + 1)}]})),
        "Patient.name[0].text",
        IssueCode::TooLong,
    );
}

#[test]
fn choice_types() {
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"},
        "valueString": "a", "valueQuantity": {"value": 1}});
    one(obs, "Observation.valueString", IssueCode::Structure);
    one(
        patient(json!({"deceasedBoolean": true, "deceasedDateTime": "2020"})),
        "Patient.deceasedBoolean",
        IssueCode::Structure,
    );
    // `value[x]` itself and types outside the allowed list are unknown elements.
    let obs = json!({"resourceType": "Observation", "status": "final", "code": {"text": "x"}, "valueReference": {"reference": "Patient/1"}});
    one(obs, "Observation.valueReference", IssueCode::Structure);
}

#[test]
fn missing_required() {
    let got = issues(json!({"resourceType": "Observation", "subject": {"reference": "Patient/1"}}));
    assert_eq!(
        got,
        vec![
            ("Observation.status".to_string(), IssueCode::Required),
            ("Observation.code".to_string(), IssueCode::Required)
        ]
    );
    // Only an extension on a required primitive still counts as present.
    let obs = json!({"resourceType": "Observation", "_status": {"extension": [{"url": "http://x", "valueCode": "a"}]}, "code": {"text": "x"}});
    assert_eq!(issues(obs), vec![]);
}

#[test]
fn cardinality() {
    one(
        patient(json!({"gender": ["male"]})),
        "Patient.gender",
        IssueCode::Structure,
    );
    one(
        patient(json!({"identifier": {"value": "1"}})),
        "Patient.identifier",
        IssueCode::Structure,
    );
}

#[test]
fn primitive_extensions() {
    one(
        patient(json!({"_birthDate": "1970"})),
        "Patient.birthDate",
        IssueCode::Structure,
    );
    one(
        patient(json!({"_birthDate": {"foo": 1}})),
        "Patient.birthDate.foo",
        IssueCode::Structure,
    );
    one(
        patient(json!({"_birthDate": {"extension": [{"valueString": "x"}]}})),
        "Patient.birthDate.extension[0].url",
        IssueCode::Required,
    );
    one(
        patient(json!({"_birthDate": {}})),
        "Patient.birthDate",
        IssueCode::Structure,
    );
    one(
        patient(json!({"name": [{"given": ["a", "b"], "_given": [null]}]})),
        "Patient.name[0].given",
        IssueCode::Structure,
    );
    one(
        patient(json!({"name": [{"given": ["a", null], "_given": [null, null]}]})),
        "Patient.name[0].given[1]",
        IssueCode::Structure,
    );
    // Element ids are plain strings (only Resource.id is an `id`), but never empty.
    one(
        patient(json!({"name": [{"_given": [{"id": ""}]}]})),
        "Patient.name[0].given[0].id",
        IssueCode::Value,
    );
    // xhtml can't carry extensions.
    one(
        patient(
            json!({"text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>", "_div": {"id": "a"}}}),
        ),
        "Patient.text._div",
        IssueCode::Structure,
    );
}

#[test]
fn contained_and_nested_resources() {
    one(
        patient(json!({"contained": [{"resourceType": "Medication", "id": "m", "foo": true}]})),
        "Patient.contained[0].ofType(Medication).foo",
        IssueCode::Structure,
    );
    one(
        patient(json!({"contained": [{"resourceType": "Observation", "code": {"text": "x"}}]})),
        "Patient.contained[0].ofType(Observation).status",
        IssueCode::Required,
    );
    one(
        patient(json!({"contained": [{"id": "x"}]})),
        "Patient.contained[0].resourceType",
        IssueCode::Invalid,
    );
    let bundle = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": {"resourceType": "Patient"}},
        {"fullUrl": "urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6"},
        {"resource": {"resourceType": "Observation", "code": {"text": "x"}}}
    ]});
    one(
        bundle,
        "Bundle.entry[2].resource.ofType(Observation).status",
        IssueCode::Required,
    );
    let params = json!({"resourceType": "Parameters", "parameter": [{"name": "p", "resource": {"resourceType": "Patient", "gender": 1}}]});
    one(
        params,
        "Parameters.parameter[0].resource.ofType(Patient).gender",
        IssueCode::Value,
    );
    // resourceType belongs to resource roots only.
    one(
        patient(json!({"name": [{"resourceType": "HumanName"}]})),
        "Patient.name[0].resourceType",
        IssueCode::Structure,
    );
}

#[test]
fn content_references() {
    let q = json!({"resourceType": "Questionnaire", "status": "draft", "item": [
        {"linkId": "1", "type": "group", "item": [{"linkId": "1.1", "type": "string", "item": [{"type": "display", "bogus": 1}]}]}
    ]});
    assert_eq!(
        issues(q),
        vec![
            (
                "Questionnaire.item[0].item[0].item[0].bogus".to_string(),
                IssueCode::Structure
            ),
            (
                "Questionnaire.item[0].item[0].item[0].linkId".to_string(),
                IssueCode::Required
            ),
        ]
    );
}

#[test]
fn nested_datatypes() {
    one(
        patient(json!({"extension": [{"url": "http://x", "valueAge": {"value": "5"}}]})),
        "Patient.extension[0].valueAge.value",
        IssueCode::Value,
    );
    one(
        patient(
            json!({"extension": [{"url": "http://x", "extension": [{"url": "y", "valueCodeableConcept": {"coding": [{"code": " a"}]}}]}]}),
        ),
        "Patient.extension[0].extension[0].valueCodeableConcept.coding[0].code",
        IssueCode::Value,
    );
    one(
        patient(json!({"contact": [{"gender": "female", "telecom": {"value": "1"}}]})),
        "Patient.contact[0].telecom",
        IssueCode::Structure,
    );
}

#[test]
fn wrong_resource_type() {
    let got = r4().validate(&json!({"resourceType": "Patientt"}));
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].expression.as_str(), got[0].code, got[0].severity),
        ("resourceType", IssueCode::Invalid, Severity::Fatal)
    );
    one(
        json!({"resourceType": "DomainResource"}),
        "resourceType",
        IssueCode::Invalid,
    );
    one(json!({"id": "x"}), "resourceType", IssueCode::Invalid);
    one(
        json!({"resourceType": 5}),
        "resourceType",
        IssueCode::Invalid,
    );
    one(
        json!([{"resourceType": "Patient"}]),
        "$this",
        IssueCode::Invalid,
    );
}

#[test]
fn definitions_api() {
    let d = r4();
    assert!(d.is_resource_type("Patient"));
    assert!(!d.is_resource_type("Resource"));
    assert!(!d.is_resource_type("DomainResource"));
    assert!(!d.is_resource_type("HumanName"));
    let types: Vec<&str> = d.resource_types().collect();
    assert_eq!(types.len(), 146);
    assert!(types.windows(2).all(|w| w[0] < w[1]));
    assert!(d.resource_has_element("Patient", "identifier"));
    assert!(!d.resource_has_element("Bundle", "contained"));
    assert!(d.resource_has_element("Bundle", "identifier"));
    assert!(!d.resource_has_element("Parameters", "identifier"));
    assert!(d.resource_has_element("Observation", "effective[x]"));
    assert!(d.resource_has_element("Observation", "effective"));
    assert!(d.resource_has_element("Observation", "effectiveDateTime"));
    assert!(!d.resource_has_element("Nope", "id"));
}

#[test]
fn issue_serializes_with_fhir_codes() {
    let got = r4().validate(&patient(json!({"gender": ["male"]})));
    let v = serde_json::to_value(&got[0]).unwrap();
    assert_eq!(v["severity"], "error");
    assert_eq!(v["code"], "structure");
    assert_eq!(IssueCode::TooLong.as_str(), "too-long");
}

#[test]
fn required_bindings_on_codes() {
    let got = r4().validate(&patient(json!({"gender": "robot"})));
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].expression, "Patient.gender");
    assert_eq!(got[0].code, IssueCode::CodeInvalid);
    assert_eq!(got[0].severity, Severity::Error);
    assert_eq!(
        got[0].diagnostics,
        "'robot' is not in the required value set \
         http://hl7.org/fhir/ValueSet/administrative-gender (male, female, other, unknown)"
    );
    assert_eq!(issues(patient(json!({"gender": "female"}))), vec![]);

    let obs = |status: &str| json!({"resourceType": "Observation", "status": status, "code": {"text": "x"}});
    one(obs("done"), "Observation.status", IssueCode::CodeInvalid);
    assert_eq!(issues(obs("amended")), vec![]);

    // Backbone elements, datatypes and repeating codes are checked per item.
    one(
        patient(json!({"contact": [{"gender": "robot"}]})),
        "Patient.contact[0].gender",
        IssueCode::CodeInvalid,
    );
    assert_eq!(
        issues(patient(json!({"contact": [{"gender": "other"}]}))),
        vec![]
    );
    one(
        patient(json!({"telecom": [{"system": "pager"}, {"system": "telepathy"}]})),
        "Patient.telecom[1].system",
        IssueCode::CodeInvalid,
    );
    let allergy = |category: Value| json!({"resourceType": "AllergyIntolerance", "patient": {"reference": "Patient/p1"}, "category": category});
    one(
        allergy(json!(["food", "robot"])),
        "AllergyIntolerance.category[1]",
        IssueCode::CodeInvalid,
    );
    assert_eq!(issues(allergy(json!(["food", "biologic"]))), vec![]);

    // Codes are case-sensitive.
    one(
        patient(json!({"gender": "Male"})),
        "Patient.gender",
        IssueCode::CodeInvalid,
    );
    // A malformed code is reported once, as a format problem.
    one(
        patient(json!({"gender": " male"})),
        "Patient.gender",
        IssueCode::Value,
    );
    // Long value sets are summarized rather than listed.
    let sp = r4().validate(
        &json!({"resourceType": "SearchParameter", "url": "http://x", "name": "x",
        "status": "active", "description": "x", "code": "x", "base": ["Robot"], "type": "token"}),
    );
    assert_eq!(sp.len(), 1, "{sp:#?}");
    assert_eq!(sp[0].expression, "SearchParameter.base[0]");
    assert!(
        sp[0].diagnostics.ends_with("resource-types (148 codes)"),
        "{}",
        sp[0].diagnostics
    );
    // Value sets the package cannot enumerate (mime types here) stay unchecked.
    assert_eq!(
        issues(patient(
            json!({"photo": [{"contentType": "application/x-made-up"}]})
        )),
        vec![]
    );
    assert_eq!(IssueCode::CodeInvalid.as_str(), "code-invalid");
}
