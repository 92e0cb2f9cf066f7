//! Which Patient, Device (and Encounter) a measurement group belongs to, as Azure resolves
//! them: Lookup finds the Device by identifier and its Patient through Device.patient;
//! LookupWithEncounter also finds the Encounter; Create makes the Patient and Device when they
//! are missing, under ids hashed from their identifiers and with `If-None-Match: *`, so two
//! writers racing create one of each (iomt-fhir #188 made duplicates there).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hds_crds::medtech_service::ResourceIdentityResolutionType as Mode;
use hds_medtech_normalize::{ErrorType, MedTechError};
use serde_json::{Value, json};

use crate::fhir::{Fhir, WriteError, hashed_id};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub patient: String,
    pub device: String,
    pub encounter: Option<String>,
}

impl Resolved {
    pub fn subjects(&self) -> hds_medtech_fhir::Subjects<'_> {
        hds_medtech_fhir::Subjects {
            patient_id: &self.patient,
            device_id: &self.device,
            encounter_id: self.encounter.as_deref(),
        }
    }
}

type Key = (String, Option<String>, Option<String>);

pub struct Resolver {
    mode: Mode,
    ttl: Duration,
    cache: Mutex<HashMap<Key, (Resolved, Instant)>>,
}

fn resource_error(name: &str, message: String) -> WriteError {
    WriteError::Failed(MedTechError::new(
        ErrorType::FhirResourceError,
        name,
        message,
    ))
}

impl Resolver {
    pub fn new(mode: Mode, ttl: Duration) -> Self {
        Self {
            mode,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Measurement-level requirements of the mode, checked before anything is buffered.
    pub fn check(
        &self,
        patient: Option<&str>,
        encounter: Option<&str>,
    ) -> Result<(), MedTechError> {
        if self.mode == Mode::Create && patient.is_none_or(str::is_empty) {
            return Err(MedTechError::new(
                ErrorType::DeviceMessageError,
                "PatientIdentityNotDefined",
                "identity resolution Create needs a patient id, and patientIdExpression found none",
            ));
        }
        if self.mode == Mode::LookupWithEncounter && encounter.is_none_or(str::is_empty) {
            return Err(MedTechError::new(
                ErrorType::DeviceMessageError,
                "EncounterIdentityNotDefined",
                "identity resolution LookupWithEncounter needs an encounter id, and encounterIdExpression found none",
            ));
        }
        Ok(())
    }

    pub async fn resolve(
        &self,
        fhir: &Fhir,
        device: &str,
        patient: Option<&str>,
        encounter: Option<&str>,
    ) -> Result<Resolved, WriteError> {
        let key: Key = (
            device.to_owned(),
            patient.map(str::to_owned),
            encounter.map(str::to_owned),
        );
        if let Some((r, at)) = self.cache.lock().unwrap().get(&key)
            && at.elapsed() < self.ttl
        {
            return Ok(r.clone());
        }
        let resolved = match self.mode {
            Mode::Lookup => self.lookup(fhir, device, None).await?,
            Mode::LookupWithEncounter => self.lookup(fhir, device, encounter).await?,
            Mode::Create => {
                let patient = patient.unwrap_or_default();
                let patient_id = self.ensure_patient(fhir, patient).await?;
                let device_id = self.ensure_device(fhir, device, &patient_id).await?;
                Resolved {
                    patient: patient_id,
                    device: device_id,
                    encounter: None,
                }
            }
        };
        let mut cache = self.cache.lock().unwrap();
        // Bounded without a dependency: a full cache starts over (it is only a shortcut).
        if cache.len() > 100_000 {
            cache.clear();
        }
        cache.insert(key, (resolved.clone(), Instant::now()));
        Ok(resolved)
    }

    async fn lookup(
        &self,
        fhir: &Fhir,
        device: &str,
        encounter: Option<&str>,
    ) -> Result<Resolved, WriteError> {
        let Some(found) = find_one(fhir, "Device", device).await? else {
            return Err(resource_error(
                "DeviceNotFound",
                format!("no Device has the identifier '{device}'"),
            ));
        };
        let device_id = found["id"].as_str().unwrap_or_default().to_owned();
        let Some(patient) = patient_of(&found) else {
            return Err(resource_error(
                "PatientNotFound",
                format!("Device/{device_id} (identifier '{device}') has no patient"),
            ));
        };
        let encounter = match encounter {
            Some(e) => match find_one(fhir, "Encounter", e).await? {
                Some(found) => Some(found["id"].as_str().unwrap_or_default().to_owned()),
                None => {
                    return Err(resource_error(
                        "EncounterNotFound",
                        format!("no Encounter has the identifier '{e}'"),
                    ));
                }
            },
            None => None,
        };
        Ok(Resolved {
            patient,
            device: device_id,
            encounter,
        })
    }

    async fn ensure_patient(&self, fhir: &Fhir, identifier: &str) -> Result<String, WriteError> {
        if let Some(found) = find_one(fhir, "Patient", identifier).await? {
            return Ok(found["id"].as_str().unwrap_or_default().to_owned());
        }
        let id = hashed_id("Patient", identifier);
        let body = json!({
            "resourceType": "Patient",
            "id": id,
            "identifier": [{"value": identifier}],
        });
        // Lost a race to another writer: theirs has the same id and content.
        fhir.create_only("Patient", &id, &body).await?;
        Ok(id)
    }

    async fn ensure_device(
        &self,
        fhir: &Fhir,
        identifier: &str,
        patient_id: &str,
    ) -> Result<String, WriteError> {
        for _ in 0..3 {
            if let Some(found) = find_one(fhir, "Device", identifier).await? {
                let id = found["id"].as_str().unwrap_or_default().to_owned();
                return match patient_of(&found) {
                    Some(p) if p == patient_id => Ok(id),
                    Some(p) => Err(resource_error(
                        "PatientDeviceMismatch",
                        format!(
                            "Device/{id} (identifier '{identifier}') belongs to Patient/{p}, not Patient/{patient_id}"
                        ),
                    )),
                    None => {
                        let mut linked = found.clone();
                        linked["patient"] = json!({"reference": format!("Patient/{patient_id}")});
                        let version = found["meta"]["versionId"].as_str().unwrap_or("");
                        match fhir
                            .update_if_match("Device", &id, &linked, version)
                            .await?
                        {
                            true => Ok(id),
                            false => continue,
                        }
                    }
                };
            }
            let id = hashed_id("Device", identifier);
            let body = json!({
                "resourceType": "Device",
                "id": id,
                "identifier": [{"value": identifier}],
                "patient": {"reference": format!("Patient/{patient_id}")},
            });
            if fhir.create_only("Device", &id, &body).await? {
                return Ok(id);
            }
            // Someone else created it first: look again, and check whose patient it names.
        }
        Err(WriteError::Transient(format!(
            "Device '{identifier}' kept changing while it was being linked"
        )))
    }
}

/// The one resource of `kind` with `identifier`; several is Azure's MultipleResourceFound.
async fn find_one(fhir: &Fhir, kind: &str, identifier: &str) -> Result<Option<Value>, WriteError> {
    let bundle = fhir.search(kind, &[("identifier", identifier)]).await?;
    let mut found = bundle["entry"]
        .as_array()
        .map(|e| {
            e.iter()
                .filter(|e| e["search"]["mode"].as_str() != Some("include"))
                .map(|e| e["resource"].clone())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(resource_error(
            "MultipleResourceFound",
            format!("{n} {kind} resources have the identifier '{identifier}'"),
        )),
    }
}

fn patient_of(device: &Value) -> Option<String> {
    device["patient"]["reference"]
        .as_str()
        .and_then(|r| r.rsplit_once("Patient/").map(|(_, id)| id))
        .map(|id| id.split('/').next().unwrap_or(id).to_owned())
}
