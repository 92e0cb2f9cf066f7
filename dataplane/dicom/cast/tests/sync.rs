//! The sync against a real FHIR service (the router on a fresh database) and a real DICOM index:
//! studies become ImagingStudies, a restart resumes from the recorded position, a replayed feed
//! changes nothing, and a deleted study's ImagingStudy goes.

use hds_common::config::{FhirClientConfig, FhirSyncConfig};
use hds_dicom_cast::Cast;
use hds_dicom_index::{DEFAULT_PARTITION, Index, NewInstance, Target};
use hds_fhir_server::testing::fresh_database as fresh_db;
use serde_json::Value;

async fn fhir_server() -> String {
    hds_fhir_server::testing::serve(hds_fhir_server::testing::config())
        .await
        .0
}

fn test_file(name: &str) -> Vec<u8> {
    let dir = match std::env::var("HDS_DICOM_TEST_FILES") {
        Ok(d) => d,
        Err(_) => {
            let python = std::env::var("HDS_PYTHON").unwrap_or_else(|_| "python3".into());
            let out = std::process::Command::new(&python)
                .args(["-c", "import pydicom,os;print(os.path.join(os.path.dirname(pydicom.__file__),'data','test_files'))"])
                .output()
                .expect("python runs");
            assert!(
                out.status.success(),
                "pydicom is not importable by {python}; set HDS_PYTHON"
            );
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        }
    };
    std::fs::read(format!("{dir}/{name}")).unwrap()
}

async fn store(index: &Index, name: &str) -> hds_dicom_model::Instance {
    store_in(index, DEFAULT_PARTITION, name).await
}

async fn store_in(index: &Index, partition: &str, name: &str) -> hds_dicom_model::Instance {
    let inst = hds_dicom_model::parse(&test_file(name), &Default::default()).unwrap();
    let item = NewInstance {
        instance: &inst,
        blob: format!("{partition}/{}", inst.sop_uid),
        size: 1,
    };
    index
        .store(partition, &[item], false, Ok(()))
        .await
        .unwrap();
    inst
}

async fn search(http: &reqwest::Client, fhir: &str, query: &str) -> Vec<Value> {
    let b: Value = http
        .get(format!("{fhir}/{query}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    b["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

fn sync_config(fhir: &str, patient_system: Option<&str>) -> FhirSyncConfig {
    FhirSyncConfig {
        fhir: FhirClientConfig {
            fhir_url: fhir.to_owned(),
            ..Default::default()
        },
        patient_identifier_system: patient_system.map(str::to_owned),
    }
}

#[tokio::test]
async fn studies_become_imaging_studies_and_a_restart_resumes() {
    let fhir = fhir_server().await;
    let index = Index::open(&fresh_db().await, 4).await.unwrap();
    let config = sync_config(&fhir, Some("urn:oid:1.2.3"));
    let http = reqwest::Client::new();
    let ct = store(&index, "CT_small.dcm").await;
    let mut cast = Cast::new(index.clone(), &config, "dicom", "http://dicom.test/dicom").unwrap();
    assert_eq!(cast.round().await.unwrap(), 1);
    let studies = search(
        &http,
        &fhir,
        &format!(
            "ImagingStudy?identifier=urn:dicom:uid|urn:oid:{}",
            ct.study_uid
        ),
    )
    .await;
    assert_eq!(studies.len(), 1);
    let s = &studies[0];
    assert_eq!(s["numberOfInstances"], 1);
    assert_eq!(s["series"][0]["uid"], ct.series_uid.as_str());
    assert_eq!(s["series"][0]["instance"][0]["uid"], ct.sop_uid.as_str());
    assert_eq!(s["modality"][0]["code"], "CT");
    let patients = search(&http, &fhir, "Patient?identifier=urn:oid:1.2.3|1CT1").await;
    assert_eq!(patients.len(), 1);
    assert_eq!(
        s["subject"]["reference"],
        format!("Patient/{}", patients[0]["id"].as_str().unwrap())
    );
    let endpoints = search(&http, &fhir, "Endpoint").await;
    assert_eq!(endpoints.len(), 1);
    assert_eq!(endpoints[0]["address"], "http://dicom.test/dicom");
    assert_eq!(cast.round().await.unwrap(), 0, "nothing new");

    // A restarted sync starts from the recorded position.
    let mr = store(&index, "MR_small.dcm").await;
    let mut restarted =
        Cast::new(index.clone(), &config, "dicom", "http://dicom.test/dicom").unwrap();
    assert_eq!(restarted.round().await.unwrap(), 1, "only the MR's change");
    assert_eq!(search(&http, &fhir, "ImagingStudy").await.len(), 2);

    // Deleting the CT study deletes its ImagingStudy.
    index
        .delete(Target {
            partition: DEFAULT_PARTITION,
            study: &ct.study_uid,
            series: None,
            instance: None,
        })
        .await
        .unwrap();
    assert_eq!(restarted.round().await.unwrap(), 1);
    let left = search(&http, &fhir, "ImagingStudy").await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0]["identifier"][0]["value"],
        format!("urn:oid:{}", mr.study_uid)
    );

    // Replaying the whole feed changes nothing.
    index.set_sync_position(0, None).await.unwrap();
    let mut replay = Cast::new(index.clone(), &config, "dicom", "http://dicom.test/dicom").unwrap();
    assert_eq!(replay.round().await.unwrap(), 3);
    assert_eq!(search(&http, &fhir, "ImagingStudy").await.len(), 1);
    assert_eq!(
        search(&http, &fhir, "Patient").await.len(),
        2,
        "one Patient per PatientID, never two"
    );
    assert_eq!(search(&http, &fhir, "Endpoint").await.len(), 1);
    assert_eq!(index.sync_position().await.unwrap(), 3);
}

#[tokio::test]
async fn each_partition_has_its_endpoint_and_its_own_imaging_study() {
    let fhir = fhir_server().await;
    let index = Index::open(&fresh_db().await, 4).await.unwrap();
    let config = sync_config(&fhir, None);
    let http = reqwest::Client::new();
    // The same study in two partitions: two studies, as far as DICOM is concerned.
    let ct = store(&index, "CT_small.dcm").await;
    store_in(&index, "north", "CT_small.dcm").await;
    let mut cast = Cast::new(index.clone(), &config, "dicom", "http://dicom.test/dicom").unwrap();
    assert_eq!(cast.round().await.unwrap(), 2);

    let mut endpoints: Vec<(String, String)> = search(&http, &fhir, "Endpoint")
        .await
        .iter()
        .map(|e| {
            (
                e["address"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    endpoints.sort();
    let addresses: Vec<&str> = endpoints.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "http://dicom.test/dicom",
            "http://dicom.test/dicom/partitions/north"
        ]
    );
    let by_uid = format!(
        "ImagingStudy?identifier=urn:dicom:uid|urn:oid:{}",
        ct.study_uid
    );
    let studies = search(&http, &fhir, &by_uid).await;
    assert_eq!(studies.len(), 2);
    let mut served_from: Vec<String> = studies
        .iter()
        .map(|s| s["endpoint"][0]["reference"].as_str().unwrap().to_owned())
        .collect();
    served_from.sort();
    let mut expected: Vec<String> = endpoints
        .iter()
        .map(|(_, id)| format!("Endpoint/{id}"))
        .collect();
    expected.sort();
    assert_eq!(
        served_from, expected,
        "one ImagingStudy per partition's Endpoint"
    );

    // Deleting the study in one partition leaves the other's ImagingStudy alone.
    index
        .delete(Target {
            partition: "north",
            study: &ct.study_uid,
            series: None,
            instance: None,
        })
        .await
        .unwrap();
    assert_eq!(cast.round().await.unwrap(), 1);
    let left = search(&http, &fhir, &by_uid).await;
    assert_eq!(left.len(), 1);
    assert_eq!(
        left[0]["endpoint"][0]["reference"],
        format!("Endpoint/{}", endpoints[0].1)
    );
}
