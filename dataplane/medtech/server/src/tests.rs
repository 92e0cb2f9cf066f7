//! The writes against a real FHIR service (the router on a fresh database): Create resolution
//! under concurrency makes one Patient and one Device (iomt-fhir #188 made several), a device
//! of another patient is refused, and two writers (replicas) merging into one Observation at
//! once keep each other's points.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hds_common::config::FhirClientConfig;
use hds_common::fhir_client::FhirClient;
use hds_crds::medtech_service::ResourceIdentityResolutionType as Mode;
use hds_medtech_fhir::{FhirMapping, IdScheme, group_key};
use hds_medtech_normalize::{Measurement, MeasurementProperty};
use serde_json::Value;

use crate::fhir::{Fhir, WriteError};
use crate::identity::Resolver;
use crate::writer::{Prepared, Writer};

async fn fhir_server() -> String {
    hds_fhir_server::testing::serve(hds_fhir_server::testing::config())
        .await
        .0
}

fn fhir(base: &str) -> Fhir {
    Fhir::new(
        FhirClient::new(&FhirClientConfig {
            fhir_url: base.into(),
            ..Default::default()
        })
        .unwrap(),
    )
}

async fn search(base: &str, query: &str) -> Vec<Value> {
    let b: Value = reqwest::get(format!("{base}/{query}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    b["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

#[tokio::test]
async fn create_resolution_makes_one_patient_and_one_device_however_many_ask_at_once() {
    let base = fhir_server().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let base = base.clone();
        // Separate resolvers (no shared cache), as replicas would be.
        tasks.push(tokio::spawn(async move {
            Resolver::new(Mode::Create, Duration::from_secs(60))
                .resolve(&fhir(&base), "dev-1", Some("pat-1"), None)
                .await
                .map_err(|e| e.to_string())
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.push(t.await.unwrap().unwrap());
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "{seen:?}");
    assert_eq!(search(&base, "Patient?identifier=pat-1").await.len(), 1);
    let devices = search(&base, "Device?identifier=dev-1").await;
    assert_eq!(devices.len(), 1);
    assert_eq!(
        devices[0]["patient"]["reference"],
        format!("Patient/{}", seen[0].patient)
    );

    let other = Resolver::new(Mode::Create, Duration::from_secs(60))
        .resolve(&fhir(&base), "dev-1", Some("pat-2"), None)
        .await;
    match other {
        Err(WriteError::Failed(e)) => assert_eq!(e.name, "PatientDeviceMismatch"),
        other => panic!("expected PatientDeviceMismatch, got {other:?}"),
    }
    let lookup = Resolver::new(Mode::Lookup, Duration::from_secs(60))
        .resolve(&fhir(&base), "dev-unknown", None, None)
        .await;
    assert!(matches!(lookup, Err(WriteError::Failed(e)) if e.name == "DeviceNotFound"));
}

async fn put(base: &str, resource: Value) {
    let path = format!(
        "{}/{}",
        resource["resourceType"].as_str().unwrap(),
        resource["id"].as_str().unwrap()
    );
    let r = reqwest::Client::new()
        .put(format!("{base}/{path}"))
        .header("content-type", "application/fhir+json")
        .body(resource.to_string())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
}

#[tokio::test]
async fn lookup_finds_the_patient_through_the_device_and_the_encounter_by_identifier() {
    let base = fhir_server().await;
    put(
        &base,
        serde_json::json!({"resourceType": "Patient", "id": "p7"}),
    )
    .await;
    put(
        &base,
        serde_json::json!({"resourceType": "Device", "id": "d7",
        "identifier": [{"system": "urn:serial", "value": "SN-7"}],
        "patient": {"reference": "Patient/p7"}}),
    )
    .await;
    put(
        &base,
        serde_json::json!({"resourceType": "Encounter", "id": "e7", "status": "in-progress",
        "class": {"code": "IMP"}, "identifier": [{"value": "visit-7"}]}),
    )
    .await;
    put(
        &base,
        serde_json::json!({"resourceType": "Device", "id": "d8",
        "identifier": [{"value": "SN-8"}]}),
    )
    .await;
    let lookup = Resolver::new(Mode::Lookup, Duration::from_secs(60));
    let found = lookup
        .resolve(&fhir(&base), "SN-7", None, None)
        .await
        .unwrap();
    assert_eq!(
        (found.patient.as_str(), found.device.as_str()),
        ("p7", "d7")
    );
    let orphan = lookup.resolve(&fhir(&base), "SN-8", None, None).await;
    assert!(matches!(orphan, Err(WriteError::Failed(e)) if e.name == "PatientNotFound"));

    let with_encounter = Resolver::new(Mode::LookupWithEncounter, Duration::from_secs(60));
    assert!(with_encounter.check(None, None).is_err());
    let found = with_encounter
        .resolve(&fhir(&base), "SN-7", None, Some("visit-7"))
        .await
        .unwrap();
    assert_eq!(found.encounter.as_deref(), Some("e7"));
    let missing = with_encounter
        .resolve(&fhir(&base), "SN-7", None, Some("visit-9"))
        .await;
    assert!(matches!(missing, Err(WriteError::Failed(e)) if e.name == "EncounterNotFound"));
}

fn heart_rate(second: u32, value: u32) -> Measurement {
    let at: DateTime<Utc> = format!("2026-01-01T10:00:{second:02}Z").parse().unwrap();
    Measurement {
        type_name: "heartrate".into(),
        occurrence_time: at,
        device_id: "dev-hr".into(),
        patient_id: Some("pat-hr".into()),
        encounter_id: None,
        correlation_id: None,
        properties: vec![MeasurementProperty {
            name: "hr".into(),
            value: value.to_string(),
        }],
    }
}

fn vitals_mapping() -> Arc<FhirMapping> {
    let mapping: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../examples/templates/vitals/fhirmapping.json"
        ))
        .unwrap(),
    )
    .unwrap();
    Arc::new(FhirMapping::parse(&mapping).unwrap())
}

fn writer(base: &str, mapping: &Arc<FhirMapping>) -> Writer {
    Writer::new(
        fhir(base),
        Resolver::new(Mode::Create, Duration::from_secs(60)),
        mapping.clone(),
        IdScheme::Hds {
            service: "t".into(),
        },
        "t",
    )
}

async fn prepare_all(
    w: &Writer,
    groups: &[(hds_medtech_fhir::GroupKey, Vec<Measurement>)],
) -> Vec<crate::writer::PendingWrite> {
    let mut out = Vec::new();
    for (k, ms) in groups {
        match w.prepare(k, ms).await.map_err(|e| e.to_string()).unwrap() {
            Prepared::Write(p) => out.push(p),
            Prepared::Done(..) => panic!("nothing to write"),
        }
    }
    out
}

#[tokio::test]
async fn a_transaction_writes_a_batch_and_a_refused_one_is_redone_group_by_group() {
    let base = fhir_server().await;
    let mapping = vitals_mapping();
    let groups: Vec<(hds_medtech_fhir::GroupKey, Vec<Measurement>)> = (0..3)
        .map(|d| {
            let mut m = heart_rate(d, 70);
            m.device_id = format!("dev-{d}");
            (group_key(&mapping, &m).unwrap(), vec![m])
        })
        .collect();
    let a = writer(&base, &mapping);
    let writes = prepare_all(&a, &groups).await;
    assert!(a.commit(&writes.iter().collect::<Vec<_>>()).await.unwrap());
    assert_eq!(search(&base, "Observation?code=8867-4").await.len(), 3);
    // Another writer (no cache) believes they are new: its transaction is refused whole...
    let b = writer(&base, &mapping);
    let stale = prepare_all(&b, &groups).await;
    assert!(!b.commit(&stale.iter().collect::<Vec<_>>()).await.unwrap());
    // ...and one by one each group merges into what is stored.
    for (k, ms) in &groups {
        let later: Vec<Measurement> = ms
            .iter()
            .map(|m| Measurement {
                occurrence_time: m.occurrence_time + chrono::Duration::seconds(1),
                ..m.clone()
            })
            .collect();
        b.write(k, &later).await.map_err(|e| e.to_string()).unwrap();
    }
    for o in search(&base, "Observation?code=8867-4").await {
        assert!(
            o["valueSampledData"]["data"]
                .as_str()
                .unwrap()
                .ends_with("70 70"),
            "{o}"
        );
    }
}

#[tokio::test]
async fn two_writers_merging_into_one_observation_keep_each_others_points() {
    let base = fhir_server().await;
    let mapping = vitals_mapping();
    let (a, b) = (
        Arc::new(writer(&base, &mapping)),
        Arc::new(writer(&base, &mapping)),
    );
    let mut tasks = Vec::new();
    for round in 0..5u32 {
        for (w, offset) in [(a.clone(), 0), (b.clone(), 1)] {
            let mapping = mapping.clone();
            tasks.push(tokio::spawn(async move {
                let m = heart_rate(round * 2 + offset, 60 + round * 2 + offset);
                let key = group_key(&mapping, &m).unwrap();
                w.write(&key, &[m]).await.map_err(|e| e.to_string())
            }));
        }
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let stored = search(&base, "Observation?code=8867-4").await;
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0]["valueSampledData"]["data"],
        "60 61 62 63 64 65 66 67 68 69"
    );
}
