//! The DICOM→FHIR sync ("DICOM cast"): follows the DICOM service's change feed from the
//! position it recorded, and for every study a batch of changes touches writes the study as it
//! now is into the FHIR service, through its API and with the sync's own Workspace identity:
//! the Patient (found by PatientID, created when missing), the ImagingStudy (a conditional
//! update on its DICOM UID identifier, rebuilt whole from the index, so replaying a change is
//! harmless) and the Endpoint of the DICOMweb service (one per data partition, whose address
//! names the partition); a study with nothing left is deleted. An ImagingStudy is found by its
//! Study Instance UID and its Endpoint, so two partitions holding the same UID keep one each.
//! The position advances only after a batch is written, so a restart repeats at most one batch.

mod fhir;
pub mod resources;

use std::collections::HashMap;
use std::time::Duration;

use hds_common::config::FhirSyncConfig;
use hds_dicom_index::Index;
use hds_dicom_index::changefeed::ChangeQuery;

pub use fhir::{FhirClient, SyncError};

/// Changes read per round.
const BATCH: i64 = 100;
/// How long an idle sync waits before looking at the feed again.
const IDLE: Duration = Duration::from_millis(500);

pub struct Cast {
    index: Index,
    fhir: FhirClient,
    service: String,
    dicomweb_url: String,
    patient_system: Option<String>,
    /// The Endpoint id of each partition seen.
    endpoint_ids: HashMap<String, String>,
}

impl Cast {
    pub fn new(
        index: Index,
        config: &FhirSyncConfig,
        service: &str,
        dicomweb_url: &str,
    ) -> Result<Self, SyncError> {
        Ok(Self {
            index,
            fhir: FhirClient::new(config)?,
            service: service.to_owned(),
            dicomweb_url: dicomweb_url.trim_end_matches('/').to_owned(),
            patient_system: config.patient_identifier_system.clone(),
            endpoint_ids: HashMap::new(),
        })
    }

    /// Runs until the process ends; failures are logged and retried with a growing pause.
    pub async fn run(mut self) {
        tracing::info!(service = %self.service, fhir = %self.fhir.base(), "DICOM→FHIR sync started");
        let mut pause = IDLE;
        loop {
            match self.round().await {
                Ok(0) => {
                    pause = IDLE;
                    tokio::time::sleep(IDLE).await;
                }
                Ok(_) => pause = IDLE,
                Err(e) => {
                    tracing::warn!(service = %self.service, error = %e, "DICOM→FHIR sync failed; retrying");
                    let _ = self.index.set_sync_error(&e.to_string()).await;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    /// One batch of the feed; the number of changes handled.
    pub async fn round(&mut self) -> Result<usize, SyncError> {
        let from = self.index.sync_position().await?;
        let changes = self
            .index
            .changes(&ChangeQuery {
                offset: from,
                limit: BATCH,
                include_metadata: false,
                ..ChangeQuery::default()
            })
            .await?;
        let Some(last) = changes.last().map(|c| c.sequence) else {
            return Ok(0);
        };
        let mut studies: Vec<(&str, &str)> = Vec::new();
        for c in &changes {
            let key = (c.partition.as_str(), c.study_uid.as_str());
            if !studies.contains(&key) {
                studies.push(key);
            }
        }
        let mut problems = Vec::new();
        for (partition, study) in studies {
            let endpoint = self.endpoint(partition).await?;
            match self.study(partition, study, &endpoint).await {
                Ok(()) => {}
                // The FHIR service refused what this study maps to: waiting will not change
                // that, so it is recorded and the feed goes on.
                Err(SyncError::Refused(why)) => {
                    tracing::error!(service = %self.service, %study, %why, "the FHIR service refused a study");
                    problems.push(format!("study {study}: {why}"));
                }
                Err(e) => return Err(e),
            }
        }
        let error = (!problems.is_empty()).then(|| problems.join("; "));
        self.index.set_sync_position(last, error.as_deref()).await?;
        Ok(changes.len())
    }

    async fn endpoint(&mut self, partition: &str) -> Result<String, SyncError> {
        if let Some(id) = self.endpoint_ids.get(partition) {
            return Ok(id.clone());
        }
        let e = resources::PartitionEndpoint::new(&self.service, &self.dicomweb_url, partition);
        let search = format!(
            "identifier={}",
            enc(&format!("{}|{}", resources::ENDPOINT_SYSTEM, e.identifier))
        );
        let id = self
            .fhir
            .upsert("Endpoint", &search, &resources::endpoint(&e))
            .await?;
        self.endpoint_ids.insert(partition.to_owned(), id.clone());
        Ok(id)
    }

    async fn study(&self, partition: &str, study: &str, endpoint: &str) -> Result<(), SyncError> {
        let search = format!(
            "identifier={}&endpoint=Endpoint/{}",
            enc(&resources::study_identifier(study)),
            enc(endpoint)
        );
        let Some(summary) = self.index.study(partition, study).await? else {
            return self.fhir.delete("ImagingStudy", &search).await;
        };
        let Some(patient_id) = resources::patient_id(&summary) else {
            return Err(SyncError::Refused(
                "the study has no PatientID, and an ImagingStudy needs a subject".into(),
            ));
        };
        let patient = resources::patient(&summary, self.patient_system.as_deref())
            .ok_or_else(|| SyncError::Refused("the study's attributes are unreadable".into()))?;
        let token = resources::patient_identifier(self.patient_system.as_deref(), &patient_id);
        let patient = self
            .fhir
            .create_if_missing("Patient", &format!("identifier={}", enc(&token)), &patient)
            .await?;
        let body = resources::imaging_study(&summary, &patient, endpoint);
        self.fhir.upsert("ImagingStudy", &search, &body).await?;
        Ok(())
    }
}

fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// Starts the sync for a DICOM service as a background task.
pub fn spawn(
    index: Index,
    config: &FhirSyncConfig,
    service: &str,
    dicomweb_url: &str,
) -> Result<tokio::task::JoinHandle<()>, SyncError> {
    let cast = Cast::new(index, config, service, dicomweb_url)?;
    Ok(tokio::spawn(cast.run()))
}
