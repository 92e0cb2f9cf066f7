use super::*;
use serde_json::json;

fn errors(v: Value) -> Vec<TemplateError> {
    FhirMapping::parse(&v).expect_err("template should be refused")
}

fn collection(inner: Value) -> Value {
    json!({"templateType": "CollectionFhir", "template": [
        {"templateType": "CodeValueFhir", "template": inner}
    ]})
}

#[test]
fn parses_the_repo_example() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../examples/templates/fhirmapping.json"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let mapping = FhirMapping::parse(&serde_json::from_str(&text).unwrap()).unwrap();
    assert_eq!(
        mapping.type_names().collect::<Vec<_>>(),
        ["heartrate", "bloodpressure"]
    );
    let hr = mapping.template("heartrate").unwrap();
    assert_eq!(hr.period_interval, PeriodInterval::Instance);
    assert_eq!(hr.category[0].codes[0].code.as_deref(), Some("vital-signs"));
    assert_eq!(
        hr.value,
        Some(FhirValue::Quantity {
            value_name: "hr".into(),
            unit: Some("beats/minute".into()),
            system: Some("http://unitsofmeasure.org".into()),
            code: Some("/min".into()),
        })
    );
    let bp = mapping.template("bloodpressure").unwrap();
    assert_eq!(bp.value, None);
    let names: Vec<_> = bp.components.iter().map(|c| c.value.value_name()).collect();
    assert_eq!(names, [Some("systolic"), Some("diastolic")]);
}

/// The `fhirMapping.content` of examples/medtech-service.yaml, hand-converted, with field
/// names and template types in other cases as Azure (Newtonsoft) accepts them.
#[test]
fn parses_the_service_example_case_insensitively() {
    let mapping = FhirMapping::parse(&json!({
        "TemplateType": "collectionfhir",
        "Template": [{
            "templateType": "CODEVALUEFHIR",
            "template": {
                "TypeName": "heartrate",
                "periodinterval": 0,
                "category": [{"codes": [{
                    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                    "code": "vital-signs", "display": "Vital Signs"
                }]}],
                "Codes": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}],
                "value": {
                    "ValueType": "quantity", "valueName": "hr", "unit": "beats/minute",
                    "system": "http://unitsofmeasure.org", "code": "/min"
                }
            }
        }]
    }))
    .unwrap();
    let hr = mapping.template("HEARTRATE").unwrap();
    assert_eq!(hr.codes[0].code.as_deref(), Some("8867-4"));
    assert!(matches!(hr.value, Some(FhirValue::Quantity { .. })));
}

#[test]
fn exact_type_name_wins_over_case_insensitive() {
    let t = |name: &str, code: &str| json!({"templateType": "CodeValueFhir", "template": {"typeName": name, "codes": [{"code": code}]}});
    let mapping = FhirMapping::parse(&json!({
        "templateType": "CollectionFhir", "template": [t("HR", "upper"), t("hr", "lower")]
    }))
    .unwrap();
    assert_eq!(
        mapping.template("hr").unwrap().codes[0].code.as_deref(),
        Some("lower")
    );
    assert_eq!(
        mapping.template("HR").unwrap().codes[0].code.as_deref(),
        Some("upper")
    );
    assert_eq!(
        mapping.template("Hr").unwrap().codes[0].code.as_deref(),
        Some("upper")
    );
    assert!(mapping.template("spo2").is_none());
}

#[test]
fn value_types() {
    let mapping = FhirMapping::parse(&collection(json!({
        "typeName": "hr", "periodInterval": 60, "codes": [{"code": "8867-4"}],
        "value": {"valueType": "SampledData", "valueName": "hr", "defaultPeriod": 1000, "unit": "count/min"},
        "components": [
            {"codes": [{"code": "s"}], "value": {"valueType": "String", "valueName": "note"}},
            {"codes": [], "value": {"valueType": "CodeableConcept", "text": "Fall", "codes": [{"code": "fall"}]}}
        ]
    })))
    .unwrap();
    let hr = mapping.template("hr").unwrap();
    assert_eq!(hr.period_interval, PeriodInterval::Hour);
    let Some(FhirValue::SampledData { default_period, .. }) = &hr.value else {
        panic!("SampledData expected");
    };
    assert_eq!(default_period.to_string(), "1000");
    assert_eq!(hr.components[1].value.value_name(), None);
}

#[test]
fn period_interval_must_be_azures() {
    let errs = errors(collection(
        json!({"typeName": "hr", "periodInterval": 30, "codes": [{"code": "x"}]}),
    ));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "template[0].template.periodInterval");
    for (minutes, expected) in [
        (-1, PeriodInterval::CorrelationId),
        (1440, PeriodInterval::Day),
    ] {
        let m = FhirMapping::parse(&collection(
            json!({"typeName": "hr", "periodInterval": minutes, "codes": [{"code": "x"}]}),
        ))
        .unwrap();
        assert_eq!(m.template("hr").unwrap().period_interval, expected);
        assert_eq!(expected.minutes() as i64, minutes);
    }
}

#[test]
fn codes_are_required() {
    let errs = errors(collection(json!({"typeName": "hr"})));
    assert_eq!(errs[0].path, "template[0].template.codes");
    let errs = errors(collection(json!({"typeName": "hr", "codes": []})));
    assert_eq!(errs[0].path, "template[0].template.codes");
}

#[test]
fn unknown_value_type_and_bad_values() {
    let errs = errors(collection(json!({
        "typeName": "hr", "codes": [{"code": "x"}],
        "value": {"valueType": "Ratio", "valueName": "hr"},
        "components": [
            {"codes": [{"code": "y"}], "value": {"valueType": "SampledData", "valueName": "a", "defaultPeriod": 0}},
            {"codes": [{"code": "z"}], "value": {"valueType": "Quantity"}},
            {"codes": [{"code": "w"}]}
        ]
    })));
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "template[0].template.value.valueType",
            "template[0].template.components[0].value.defaultPeriod",
            "template[0].template.components[1].value.valueName",
            "template[0].template.components[2].value",
        ]
    );
}

#[test]
fn collection_level_errors() {
    assert_eq!(errors(json!([]))[0].path, "$");
    assert_eq!(
        errors(json!({"templateType": "CollectionContent", "template": []}))[0].path,
        "templateType"
    );
    assert_eq!(
        errors(json!({"templateType": "CollectionFhir"}))[0].path,
        "template"
    );
    let errs = errors(json!({"templateType": "CollectionFhir", "template": [
        {"templateType": "JsonPathContent", "template": {}},
        {"templateType": "CodeValueFhir"},
        {"templateType": "CodeValueFhir", "template": {"typeName": "", "codes": [{"code": 1}]}}
    ]}));
    let paths: Vec<_> = errs.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "template[0].templateType",
            "template[1].template",
            "template[2].template.typeName",
            "template[2].template.codes[0].code",
        ]
    );
}

#[test]
fn duplicate_type_names_are_refused() {
    let t = json!({"templateType": "CodeValueFhir", "template": {"typeName": "hr", "codes": [{"code": "x"}]}});
    let errs = errors(json!({"templateType": "CollectionFhir", "template": [t.clone(), t]}));
    assert_eq!(errs[0].path, "template[1].template.typeName");
}
