use super::*;
use crate::group::group_key;
use crate::identity::{IdScheme, observation_identity};
use crate::template::{AZURE_SERVICE_SYSTEM, FhirMapping};
use chrono::{TimeDelta, TimeZone};
use hds_medtech_normalize::{ErrorType, MeasurementProperty};
use serde_json::json;

fn mapping() -> FhirMapping {
    let code = |c: &str| json!([{"system": "http://loinc.org", "code": c}]);
    let t = |inner: Value| json!({"templateType": "CodeValueFhir", "template": inner});
    FhirMapping::parse(&json!({"templateType": "CollectionFhir", "template": [
        t(json!({
            "typeName": "heartrate", "periodInterval": 60, "codes": code("8867-4"),
            "category": [{"text": "Vital Signs", "codes": [{"code": "vital-signs"}]}],
            "value": {"valueType": "SampledData", "valueName": "hr", "defaultPeriod": 1000, "unit": "count/min"}
        })),
        t(json!({
            "typeName": "bloodpressure", "periodInterval": -1, "codes": code("85354-9"),
            "components": [
                {"codes": code("8480-6"), "value": {"valueType": "Quantity", "valueName": "systolic", "unit": "mmHg"}},
                {"codes": code("8462-4"), "value": {"valueType": "Quantity", "valueName": "diastolic", "unit": "mmHg"}}
            ]
        })),
        t(json!({
            "typeName": "spo2", "periodInterval": 0, "codes": code("59408-5"),
            "value": {"valueType": "Quantity", "valueName": "spo2", "unit": "%",
                      "system": "http://unitsofmeasure.org", "code": "%"}
        })),
        t(json!({
            "typeName": "fall", "codes": code("fall-event"),
            "value": {"valueType": "CodeableConcept", "text": "Fall",
                      "codes": [{"system": "http://snomed.info/sct", "code": "161898004", "display": "Falls"}]}
        })),
        t(json!({
            "typeName": "note", "codes": code("note"),
            "value": {"valueType": "String", "valueName": "text"}
        }))
    ]}))
    .unwrap()
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap()
}

fn m(type_name: &str, secs: i64, props: &[(&str, &str)]) -> Measurement {
    Measurement {
        type_name: type_name.into(),
        occurrence_time: t0() + TimeDelta::seconds(secs),
        device_id: "dev1".into(),
        patient_id: Some("pat1".into()),
        encounter_id: None,
        correlation_id: None,
        properties: props
            .iter()
            .map(|(n, v)| MeasurementProperty {
                name: (*n).into(),
                value: (*v).into(),
            })
            .collect(),
    }
}

const SUBJECTS: Subjects = Subjects {
    patient_id: "p1",
    device_id: "d1",
    encounter_id: None,
};

/// Renders one group the way the service does: key from the first measurement, identity,
/// then render.
fn run(ms: &[Measurement], existing: Option<&Value>) -> Result<Rendered, MedTechError> {
    let mapping = mapping();
    let key = group_key(&mapping, &ms[0]).unwrap();
    for other in ms {
        assert_eq!(group_key(&mapping, other).unwrap(), key, "one group");
    }
    let template = mapping.template(&key.type_name).unwrap();
    let identity = observation_identity(&IdScheme::Azure, &key, &SUBJECTS, ms);
    let now = Utc.with_ymd_and_hms(2023, 1, 2, 0, 0, 0).unwrap();
    render(
        template,
        &key,
        ms,
        &SUBJECTS,
        &identity,
        AZURE_SERVICE_SYSTEM,
        existing,
        now,
    )
}

fn created(r: Rendered) -> Value {
    match r {
        Rendered::Created(v) => v,
        other => panic!("expected Created, got {other:?}"),
    }
}

fn updated(r: Rendered) -> Value {
    match r {
        Rendered::Updated(v) => v,
        other => panic!("expected Updated, got {other:?}"),
    }
}

fn hr_batch() -> Vec<Measurement> {
    vec![
        m("heartrate", 5, &[("hr", "75")]),
        m("heartrate", 0, &[("hr", "70")]),
        m("heartrate", 2, &[("hr", "72")]),
    ]
}

#[test]
fn hourly_sampled_data_is_one_observation_with_gaps() {
    let obs = created(run(&hr_batch(), None).unwrap());
    let key = group_key(&mapping(), &hr_batch()[0]).unwrap();
    let identity = observation_identity(&IdScheme::Azure, &key, &SUBJECTS, &[]);
    assert_eq!(
        identity.value,
        "p1.d1.heartrate.20230101100000Z.20230101105959Z"
    );
    assert_eq!(
        obs,
        json!({
            "resourceType": "Observation",
            "id": identity.id,
            "identifier": [{"system": AZURE_SERVICE_SYSTEM, "value": identity.value}],
            "status": "final",
            "category": [{"coding": [{"code": "vital-signs"}], "text": "Vital Signs"}],
            "code": {"coding": [
                {"system": "http://loinc.org", "code": "8867-4"},
                {"system": AZURE_SERVICE_SYSTEM, "code": "heartrate", "display": "heartrate"}
            ], "text": "heartrate"},
            "subject": {"reference": "Patient/p1"},
            "device": {"reference": "Device/d1"},
            "effectivePeriod": {"start": "2023-01-01T10:00:00Z", "end": "2023-01-01T10:59:59.9999999Z"},
            "issued": "2023-01-02T00:00:00Z",
            "valueSampledData": {
                "origin": {"value": 0, "unit": "count/min"},
                "period": 1000, "dimensions": 1, "data": "70 E 72 E E 75"
            }
        })
    );
}

#[test]
fn sampled_data_merge_new_wins_ties_and_amends() {
    let first = created(run(&hr_batch(), None).unwrap());
    let mut stored = first.clone();
    stored["meta"] = json!({"versionId": "1", "lastUpdated": "2023-01-02T00:00:01Z"});

    let second = [
        m("heartrate", 2, &[("hr", "80")]),
        m("heartrate", 7, &[("hr", "77")]),
    ];
    let merged = updated(run(&second, Some(&stored)).unwrap());
    assert_eq!(merged["status"], "amended");
    assert_eq!(merged["id"], first["id"]);
    assert!(merged.get("meta").is_none());
    assert_eq!(merged["valueSampledData"]["data"], "70 E 80 E E 75 E 77");
    assert_eq!(merged["effectivePeriod"], first["effectivePeriod"]);

    // The same data again, or a batch already merged, changes nothing.
    assert_eq!(
        run(&hr_batch(), Some(&stored)).unwrap(),
        Rendered::Unchanged
    );
    assert_eq!(run(&second, Some(&merged)).unwrap(), Rendered::Unchanged);
}

#[test]
fn stored_padding_is_kept_and_two_points_in_a_slot_take_the_later() {
    let mut stored = created(run(&hr_batch(), None).unwrap());
    stored["valueSampledData"]["data"] = json!("70 E 72 E E 75 E E E E");
    let late = [m("heartrate", 3, &[("hr", "90")])];
    let mut in_slot = late[0].clone();
    in_slot.occurrence_time += TimeDelta::milliseconds(500);
    in_slot.properties[0].value = "91".into();
    let merged = updated(run(&[in_slot, late[0].clone()], Some(&stored)).unwrap());
    assert_eq!(
        merged["valueSampledData"]["data"],
        "70 E 72 91 E 75 E E E E"
    );
}

#[test]
fn blood_pressure_components_by_correlation_id() {
    let with_corr = |mut m: Measurement| {
        m.correlation_id = Some("reading-1".into());
        m
    };
    let batch = [
        with_corr(m(
            "bloodpressure",
            5,
            &[("systolic", "120"), ("diastolic", "80")],
        )),
        with_corr(m("bloodpressure", 1, &[("systolic", "118")])),
    ];
    let obs = created(run(&batch, None).unwrap());
    assert_eq!(
        obs["identifier"][0]["value"],
        "p1.d1.bloodpressure.reading-1"
    );
    assert_eq!(
        obs["effectivePeriod"],
        json!({"start": "2023-01-01T10:00:01Z", "end": "2023-01-01T10:00:05Z"})
    );
    assert_eq!(
        obs["component"],
        json!([
            {"code": {"coding": [
                {"system": "http://loinc.org", "code": "8480-6"},
                {"system": AZURE_SERVICE_SYSTEM, "code": "systolic", "display": "systolic"}
            ], "text": "systolic"}, "valueQuantity": {"value": 120, "unit": "mmHg"}},
            {"code": {"coding": [
                {"system": "http://loinc.org", "code": "8462-4"},
                {"system": AZURE_SERVICE_SYSTEM, "code": "diastolic", "display": "diastolic"}
            ], "text": "diastolic"}, "valueQuantity": {"value": 80, "unit": "mmHg"}}
        ])
    );
    assert!(obs.get("valueQuantity").is_none());

    // An earlier reading widens the period and, as Azure does, overwrites systolic; the
    // diastolic it lacks stays as stored.
    let merged = updated(
        run(
            &[with_corr(m("bloodpressure", -60, &[("systolic", "130")]))],
            Some(&obs),
        )
        .unwrap(),
    );
    assert_eq!(
        merged["effectivePeriod"],
        json!({"start": "2023-01-01T09:59:00Z", "end": "2023-01-01T10:00:05Z"})
    );
    assert_eq!(merged["component"][0]["valueQuantity"]["value"], json!(130));
    assert_eq!(merged["component"][1], obs["component"][1]);
}

#[test]
fn a_component_without_a_value_is_left_out() {
    let mut only = m("bloodpressure", 0, &[("diastolic", "79")]);
    only.correlation_id = Some("r2".into());
    let obs = created(run(&[only], None).unwrap());
    let components = obs["component"].as_array().unwrap();
    assert_eq!(components.len(), 1);
    assert_eq!(components[0]["code"]["text"], "diastolic");
}

#[test]
fn spo2_quantity_per_instant_keeps_digits_and_encounter() {
    let batch = [m("spo2", 0, &[("spo2", "98.50")])];
    let mapping = mapping();
    let key = group_key(&mapping, &batch[0]).unwrap();
    let subjects = Subjects {
        encounter_id: Some("e1"),
        ..SUBJECTS
    };
    let identity = observation_identity(&IdScheme::Azure, &key, &subjects, &batch);
    assert_eq!(
        identity,
        observation_identity(&IdScheme::Azure, &key, &subjects, &batch)
    );
    let template = mapping.template("spo2").unwrap();
    let obs = created(
        render(
            template,
            &key,
            &batch,
            &subjects,
            &identity,
            AZURE_SERVICE_SYSTEM,
            None,
            t0(),
        )
        .unwrap(),
    );
    assert_eq!(obs["id"], identity.id.as_str());
    assert_eq!(obs["encounter"], json!({"reference": "Encounter/e1"}));
    assert_eq!(
        obs["effectivePeriod"],
        json!({"start": "2023-01-01T10:00:00Z", "end": "2023-01-01T10:00:00Z"})
    );
    let text = serde_json::to_string(&obs["valueQuantity"]).unwrap();
    assert_eq!(
        text,
        r#"{"value":98.50,"unit":"%","system":"http://unitsofmeasure.org","code":"%"}"#
    );
}

#[test]
fn the_latest_quantity_wins_and_ties_go_to_the_later_input() {
    let obs = created(
        run(
            &[
                m("spo2", 0, &[("spo2", "97")]),
                m("spo2", 0, &[("spo2", "96")]),
            ],
            None,
        )
        .unwrap(),
    );
    assert_eq!(obs["valueQuantity"]["value"], json!(96));
    let merged = updated(run(&[m("spo2", 0, &[("spo2", "95")])], Some(&obs)).unwrap());
    assert_eq!(merged["valueQuantity"]["value"], json!(95));
    // A server that reformats numbers and instants does not make the next merge a change.
    let mut reformatted = merged.clone();
    reformatted["valueQuantity"]["value"] = json!(95.0);
    reformatted["effectivePeriod"]["start"] = json!("2023-01-01T10:00:00.000+00:00");
    assert_eq!(
        run(&[m("spo2", 0, &[("spo2", "95")])], Some(&reformatted)).unwrap(),
        Rendered::Unchanged
    );
}

#[test]
fn fall_event_is_a_codeable_concept() {
    let obs = created(run(&[m("fall", 0, &[("fall", "1")])], None).unwrap());
    assert_eq!(
        obs["valueCodeableConcept"],
        json!({"coding": [{"system": "http://snomed.info/sct", "code": "161898004", "display": "Falls"}], "text": "Fall"})
    );
    assert_eq!(
        run(&[m("fall", 0, &[])], Some(&obs)).unwrap(),
        Rendered::Unchanged
    );
}

#[test]
fn string_values() {
    let obs = created(run(&[m("note", 0, &[("text", "dizzy")])], None).unwrap());
    assert_eq!(obs["valueString"], "dizzy");
    // A measurement without the value keeps the stored one.
    assert_eq!(
        run(&[m("note", 0, &[])], Some(&obs)).unwrap(),
        Rendered::Unchanged
    );
}

#[test]
fn non_numbers_are_conversion_errors() {
    for bad in ["NaN", "Infinity", "abc", ""] {
        let err = run(&[m("spo2", 0, &[("spo2", bad)])], None).unwrap_err();
        assert_eq!(err.error_type, ErrorType::FhirConversionError, "{bad:?}");
        assert_eq!(err.name, "InvalidQuantityFhirValue");
        assert_eq!(err.template.as_deref(), Some("spo2"));
    }
    let err = run(
        &[
            m("heartrate", 0, &[("hr", "70")]),
            m("heartrate", 1, &[("hr", "NaN")]),
        ],
        None,
    )
    .unwrap_err();
    assert_eq!(err.name, "InvalidQuantityFhirValue");
    assert_eq!(err.template.as_deref(), Some("heartrate"));
}

#[test]
fn an_effective_date_time_is_read_as_a_period() {
    let mut stored = created(run(&[m("spo2", 0, &[("spo2", "97")])], None).unwrap());
    let obj = stored.as_object_mut().unwrap();
    obj.remove("effectivePeriod");
    obj.insert("effectiveDateTime".into(), json!("2023-01-01T10:00:00Z"));
    let merged = updated(run(&[m("spo2", 0, &[("spo2", "97")])], Some(&stored)).unwrap());
    assert_eq!(merged["effectivePeriod"]["start"], "2023-01-01T10:00:00Z");
    assert!(merged.get("effectiveDateTime").is_none());
}

#[test]
fn empty_groups_render_nothing() {
    let mapping = mapping();
    let key = group_key(&mapping, &m("spo2", 0, &[])).unwrap();
    let identity = observation_identity(&IdScheme::Azure, &key, &SUBJECTS, &[]);
    let template = mapping.template("spo2").unwrap();
    let r = render(
        template,
        &key,
        &[],
        &SUBJECTS,
        &identity,
        AZURE_SERVICE_SYSTEM,
        None,
        t0(),
    );
    assert_eq!(r.unwrap(), Rendered::Unchanged);
}
