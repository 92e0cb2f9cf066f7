use serde_json::{Value, json};

use super::*;

fn map(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap()
}

fn wrap(body: Value) -> Value {
    envelope(body, Map::new(), Map::new())
}

fn collection(templates: Value) -> Value {
    json!({"templateType": "CollectionContent", "template": templates})
}

fn mapping(templates: Value) -> DeviceMapping {
    DeviceMapping::parse(&collection(templates)).unwrap()
}

fn names(errors: &[MedTechError]) -> Vec<&str> {
    errors.iter().map(|e| e.name.as_str()).collect()
}

fn parse_errors(templates: Value) -> Vec<TemplateError> {
    DeviceMapping::parse(&collection(templates)).unwrap_err()
}

fn example_mapping() -> DeviceMapping {
    let text = include_str!("../../../../examples/templates/devicemapping.json");
    DeviceMapping::parse(&serde_json::from_str(text).unwrap()).unwrap()
}

fn heart_rate_template() -> Value {
    json!({"templateType": "CalculatedContent", "template": {
        "typeName": "heartrate",
        "typeMatchExpression": "$..[?(@heartRate)]",
        "deviceIdExpression": "$.matchedToken.deviceId",
        "patientIdExpression": "$.matchedToken.patientId",
        "timestampExpression": "$.matchedToken.endDate",
        "values": [{"required": true, "valueExpression": "$.matchedToken.heartRate", "valueName": "hr"}]
    }})
}

#[test]
fn repository_example_mapping() {
    let mapping = example_mapping();
    assert_eq!(
        mapping.type_names().collect::<Vec<_>>(),
        ["heartrate", "bloodpressure"]
    );
    let out = mapping.normalize(
        &wrap(json!({"deviceId": "dev-1", "patientId": "pat-1",
            "endDate": "2023-01-01T10:00:00Z", "heartRate": 72})),
        ErrorPolicy::Retry,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.matches, 1);
    let m = &out.measurements[0];
    assert_eq!(
        (
            m.type_name.as_str(),
            m.device_id.as_str(),
            m.patient_id.as_deref()
        ),
        ("heartrate", "dev-1", Some("pat-1"))
    );
    assert_eq!(m.value("hr"), Some("72"));
    assert_eq!(m.occurrence_time.to_rfc3339(), "2023-01-01T10:00:00+00:00");

    let out = mapping.normalize(
        &wrap(json!({"deviceId": "dev-1", "patientId": "pat-1",
            "endDate": "2023-01-01T10:00:00.1234567+02:00", "systolic": 120, "diastolic": 80.5})),
        ErrorPolicy::Retry,
    );
    let m = &out.measurements[0];
    assert_eq!(
        (
            m.type_name.as_str(),
            m.value("systolic"),
            m.value("diastolic")
        ),
        ("bloodpressure", Some("120"), Some("80.5"))
    );
    assert_eq!(
        m.occurrence_time.to_rfc3339(),
        "2023-01-01T08:00:00.123456700+00:00"
    );
}

#[test]
fn service_yaml_example_mapping() {
    let text = include_str!("../../../../examples/medtech-service.yaml");
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(text)
        .filter_map(|d| serde::Deserialize::deserialize(d).ok())
        .collect();
    let content = docs
        .iter()
        .find_map(|d| d.pointer("/spec/deviceMapping/content"))
        .expect("deviceMapping.content in the example");
    let mapping = DeviceMapping::parse(content).unwrap();
    let out = mapping.normalize(
        &wrap(
            json!({"deviceId": "dev-1", "endDate": "2023-01-01 10:00:00Z",
            "systolic": 120, "diastolic": 80}),
        ),
        ErrorPolicy::Retry,
    );
    assert_eq!(out.measurements.len(), 1, "{:?}", out.errors);
    assert_eq!(out.measurements[0].patient_id, None);
}

#[test]
fn two_readings_give_two_measurements() {
    let out = example_mapping().normalize(
        &wrap(json!({"readings": [
            {"deviceId": "d", "endDate": "2023-01-01T10:00:00Z", "heartRate": 70},
            {"deviceId": "d", "endDate": "2023-01-01T10:01:00Z", "heartRate": 71}
        ]})),
        ErrorPolicy::Retry,
    );
    assert_eq!(out.matches, 2);
    let hr: Vec<_> = out.measurements.iter().map(|m| m.value("hr")).collect();
    assert_eq!(hr, [Some("70"), Some("71")]);
}

#[test]
fn error_policies_with_one_good_and_one_bad_match() {
    let message = wrap(json!({"readings": [
        {"deviceId": "d", "endDate": "2023-01-01T10:00:00Z", "heartRate": 70},
        {"endDate": "2023-01-01T10:01:00Z", "heartRate": 71}
    ]}));
    let mapping = example_mapping();
    let retry = mapping.normalize(&message, ErrorPolicy::Retry);
    assert!(retry.measurements.is_empty());
    assert_eq!(names(&retry.errors), ["DeviceIdentityNotDefined"]);
    assert_eq!(retry.errors[0].error_type, ErrorType::DeviceMessageError);
    assert_eq!(retry.errors[0].template.as_deref(), Some("heartrate"));
    assert_eq!(retry.matches, 2);
    let discard = mapping.normalize(&message, ErrorPolicy::DiscardMatchAndExtractErrors);
    assert_eq!(discard.measurements.len(), 1);
    assert_eq!(discard.measurements[0].value("hr"), Some("70"));
    assert_eq!(names(&discard.errors), ["DeviceIdentityNotDefined"]);
}

#[test]
fn per_match_errors() {
    let mapping = mapping(json!([heart_rate_template()]));
    let run = |body: Value| mapping.normalize(&wrap(body), ErrorPolicy::Retry);
    let required =
        run(json!({"deviceId": "d", "endDate": "2023-01-01T10:00:00Z", "heartRate": ""}));
    assert_eq!(names(&required.errors), ["RequiredValueNotFound"]);
    let time = run(json!({"deviceId": "d", "heartRate": 1}));
    assert_eq!(names(&time.errors), ["TimestampNotDefined"]);
    let bad_time = run(json!({"deviceId": "d", "endDate": "yesterday", "heartRate": 1}));
    assert_eq!(names(&bad_time.errors), ["InvalidTimestamp"]);
    let none = run(json!({"deviceId": "d"}));
    assert_eq!(
        (none.matches, names(&none.errors)),
        (0, vec!["TemplateNotFound"])
    );
    assert_eq!(none.errors[0].error_type, ErrorType::DeviceTemplateError);
    let several = run(json!({"deviceId": "d", "endDate": "2023-01-01T10:00:00Z", "heartRate": 1}));
    assert!(several.errors.is_empty());

    let mapping = self::mapping(json!([{"templateType": "JsonPathContent", "template": {
        "typeName": "hr", "typeMatchExpression": "$..[?(@heartRate)]",
        "deviceIdExpression": "$..id", "timestampExpression": "$.t",
        "values": [{"valueName": "hr", "valueExpression": "$.heartRate"},
                   {"valueName": "extra", "valueExpression": "$.extra"}]
    }}]));
    let out = mapping.normalize(
        &wrap(json!({"heartRate": 1, "t": "2023-01-01T10:00:00", "a": {"id": 1}, "b": {"id": 2}})),
        ErrorPolicy::Retry,
    );
    assert_eq!(names(&out.errors), ["MultipleTokensFound"]);
    assert!(out.errors[0].message.contains("deviceIdExpression"));
    let out = mapping.normalize(
        &wrap(json!({"heartRate": {"v": [1, true]}, "t": "2023-01-01T10:00:00", "id": "d"})),
        ErrorPolicy::Retry,
    );
    let m = &out.measurements[0];
    assert_eq!(m.value("hr"), Some(r#"{"v":[1,true]}"#));
    assert_eq!(m.properties.len(), 1, "optional missing value is absent");
}

#[test]
fn iot_hub_template() {
    let mapping = mapping(json!([{"templateType":"IotJsonPathContent","template":{
        "typeName":"heartrate","typeMatchExpression":"$..[?(@Body.heartRate)]",
        "patientIdExpression":"$.Body.patientId",
        "deviceIdExpression": "$.ignored",
        "values":[{"required":true,"valueExpression":"$.Body.heartRate","valueName":"hr"}]}}]));
    let message = envelope(
        json!({"heartRate": 78, "patientId": "p"}),
        map(json!({"iothub-creation-time-utc": "2023-03-01T08:00:00.000Z"})),
        map(json!({"iothub-connection-device-id": "dev-7",
            "iothub-enqueuedtime": "2023-03-01T09:00:00Z"})),
    );
    let out = mapping.normalize(&message, ErrorPolicy::Retry);
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    let m = &out.measurements[0];
    assert_eq!(
        (m.device_id.as_str(), m.patient_id.as_deref(), m.value("hr")),
        ("dev-7", Some("p"), Some("78"))
    );
    assert_eq!(m.occurrence_time.to_rfc3339(), "2023-03-01T08:00:00+00:00");

    // Without the creation time, the hub's enqueued time is used.
    let message = envelope(
        json!({"heartRate": 78}),
        Map::new(),
        map(json!({"iothub-connection-device-id": "dev-7",
            "iothub-enqueuedtime": "2023-03-01T09:00:00Z"})),
    );
    let out = mapping.normalize(&message, ErrorPolicy::Retry);
    assert_eq!(
        out.measurements[0].occurrence_time.to_rfc3339(),
        "2023-03-01T09:00:00+00:00"
    );
}

#[test]
fn iot_central_template() {
    let mapping = mapping(
        json!([{"templateType":"IotCentralJsonPathContent","template":{
        "typeName":"hr","typeMatchExpression":"$..[?(@telemetry.HeartRate)]",
        "values":[{"required":true,"valueExpression":"$.telemetry.HeartRate","valueName":"hr"}]}}]),
    );
    let out = mapping.normalize(
        &wrap(
            json!({"deviceId": "c-1", "enqueuedTime": "2023-03-01T09:00:00Z",
            "telemetry": {"HeartRate": 88}}),
        ),
        ErrorPolicy::Retry,
    );
    let m = &out.measurements[0];
    assert_eq!((m.device_id.as_str(), m.value("hr")), ("c-1", Some("88")));
}

#[test]
fn calculated_content_mixing_languages() {
    let mapping = mapping(json!([{"templateType": "CalculatedContent", "template": {
        "typeName": "hr",
        "defaultExpressionLanguage": "JmesPath",
        "typeMatchExpression": "Body.readings[?hr]",
        "deviceIdExpression": {"value": "$.matchedToken.dev", "language": "jsonpath"},
        "timestampExpression": "fromUnixTimestamp(matchedToken.ts)",
        "correlationIdExpression": "Body.session",
        "values": [
            {"required": true, "valueExpression": "add(matchedToken.hr, `1`)", "valueName": "hr"},
            {"valueExpression": {"value": "$.matchedToken.note", "language": "JsonPath"},
             "valueName": "note"}
        ]
    }}]));
    let out = mapping.normalize(
        &wrap(json!({"session": "s-1", "readings": [
            {"dev": "d", "ts": 1675245600, "hr": 71, "note": "ok"},
            {"dev": "d", "ts": 1675245660, "hr": 1.5},
            {"dev": "d", "ts": 1675245660}
        ]})),
        ErrorPolicy::Retry,
    );
    assert!(out.errors.is_empty(), "{:?}", out.errors);
    assert_eq!(out.matches, 2);
    let [a, b] = &out.measurements[..] else {
        panic!("{:?}", out.measurements)
    };
    assert_eq!((a.value("hr"), a.value("note")), (Some("72"), Some("ok")));
    assert_eq!((b.value("hr"), b.value("note")), (Some("2.5"), None));
    assert_eq!(a.device_id, "d");
    assert_eq!(a.correlation_id.as_deref(), Some("s-1"));
    assert_eq!(b.occurrence_time.to_rfc3339(), "2023-02-01T10:01:00+00:00");
}

#[test]
fn jmespath_type_match_single_object_and_runtime_error() {
    let mapping = mapping(json!([{"templateType": "CalculatedContent", "template": {
        "typeName": "one",
        "typeMatchExpression": {"value": "Body", "language": "JmesPath"},
        "deviceIdExpression": {"value": "matchedToken.id", "language": "JmesPath"},
        "timestampExpression": {"value": "matchedToken.t", "language": "JmesPath"},
        "values": [{"required": true, "valueName": "v",
            "valueExpression": {"value": "add(matchedToken.v, matchedToken.id)", "language": "JmesPath"}}]
    }}]));
    let out = mapping.normalize(
        &wrap(json!({"id": "d", "t": "2023-01-01T00:00:00Z", "v": 1})),
        ErrorPolicy::Retry,
    );
    assert_eq!(out.matches, 1);
    assert!(names(&out.errors).contains(&"ExpressionEvaluationError"));
}

#[test]
fn case_insensitive_fields_and_types() {
    let mapping = mapping(json!([{"TemplateType": "calculatedcontent", "Template": {
        "TypeName": "hr", "TypeMatchExpression": "$..[?(@hr)]",
        "DeviceIdExpression": "$.matchedToken.d", "TimestampExpression": "$.matchedToken.t",
        "Values": [{"ValueName": "hr", "ValueExpression": "$.matchedToken.hr", "Required": "true"}]
    }}]));
    let out = mapping.normalize(
        &wrap(json!({"d": "x", "t": "2023-01-01", "hr": 3})),
        ErrorPolicy::Retry,
    );
    assert_eq!(out.measurements[0].value("hr"), Some("3"));
}

#[test]
fn template_errors_carry_paths() {
    let errors =
        DeviceMapping::parse(&json!({"templateType": "Other", "template": {}})).unwrap_err();
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["templateType", "template"]);

    let errors = parse_errors(json!([
        {"templateType": "Nope", "template": {}},
        {"templateType": "CalculatedContent", "template": {"typeMatchExpression": "$..[?(@x)]",
            "values": [{"valueName": "v", "valueExpression": "$.a[?(@.x =~ /y/)]"}]}},
        {"templateType": "CalculatedContent", "template": {"typeName": "t",
            "typeMatchExpression": {"value": "nope(a)", "language": "JmesPath"},
            "deviceIdExpression": {"value": "x", "language": "XPath"},
            "timestampExpression": "$.a[", "defaultExpressionLanguage": "Cobol"}}
    ]));
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "template[0].templateType",
            "template[1].template.typeName",
            "template[1].template.deviceIdExpression",
            "template[1].template.timestampExpression",
            "template[1].template.values[0].valueExpression",
            "template[2].template.defaultExpressionLanguage",
            "template[2].template.typeMatchExpression",
            "template[2].template.deviceIdExpression.language",
            "template[2].template.timestampExpression",
        ],
        "{errors:#?}"
    );
    assert!(errors[0].message.contains("Nope"));
    assert!(errors[6].message.contains("nope"));
}

#[test]
fn mapping_is_shareable() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<DeviceMapping>();
}

#[test]
fn each_problem_is_reported_once() {
    let mapping = mapping(json!([{"templateType": "CalculatedContent", "template": {
        "typeName": "hr", "typeMatchExpression": "$..[?(@hr)]",
        "deviceIdExpression": "$.matchedToken.d", "timestampExpression": "$.matchedToken.t",
        "patientIdExpression": "$..p",
        "values": [{"required": true, "valueName": "hr", "valueExpression": "$..hr"}]
    }}]));
    let out = mapping.normalize(
        &wrap(json!({"hr": 1, "t": "2023-01-01T00:00:00Z", "x": {"p": 1}, "y": {"p": 2}})),
        ErrorPolicy::Retry,
    );
    let mut found = names(&out.errors);
    found.sort();
    assert_eq!(
        found,
        [
            "DeviceIdentityNotDefined",
            "MultipleTokensFound",
            "MultipleTokensFound"
        ]
    );
}

#[test]
fn iot_hub_without_device_id() {
    let mapping = mapping(
        json!([{"templateType": "IotJsonPathContentTemplate", "template": {
        "typeName": "hr", "typeMatchExpression": "$..[?(@Body.hr)]",
        "values": [{"valueName": "hr", "valueExpression": "$.Body.hr"}]}}]),
    );
    let out = mapping.normalize(&wrap(json!({"hr": 1})), ErrorPolicy::Retry);
    assert_eq!(
        names(&out.errors),
        ["DeviceIdentityNotDefined", "TimestampNotDefined"]
    );
}
