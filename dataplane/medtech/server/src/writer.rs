//! Writes one measurement group into its Observation: resolves the subjects, merges into what
//! is stored (kept from our last write when we can, read otherwise) and PUTs it under a version
//! precondition, so concurrent writers (replicas sharing a subscription) never lose each other's
//! points: a 412 means read again and merge again.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::Utc;
use hds_medtech_fhir::{FhirMapping, GroupKey, IdScheme, Rendered, observation_identity, render};
use hds_medtech_normalize::{ErrorType, Measurement, MedTechError};
use serde::Serialize;
use serde_json::Value;

use crate::fhir::{Fhir, Precondition, Version, WriteError};
use crate::identity::{Resolved, Resolver};
use crate::metrics as m;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Saved {
    Created,
    Updated,
    NoOperation,
}

impl Saved {
    pub fn as_str(self) -> &'static str {
        match self {
            Saved::Created => "Created",
            Saved::Updated => "Updated",
            Saved::NoOperation => "NoOperation",
        }
    }
}

pub struct Writer {
    pub fhir: Fhir,
    pub resolver: Resolver,
    pub mapping: std::sync::Arc<FhirMapping>,
    pub scheme: IdScheme,
    /// The system of the extra coding every Observation carries (its typeName as code).
    pub service_system: String,
    pub service: String,
    /// Our last write of each Observation, so a merge needs no read when no one else wrote.
    written: Mutex<HashMap<String, (Value, Version)>>,
}

const CONTENTION_ATTEMPTS: usize = 10;

pub enum Prepared {
    /// Nothing to write (the Observation already holds these points).
    Done(String, Saved),
    Write(PendingWrite),
}

pub struct PendingWrite {
    pub id: String,
    body: Value,
    /// The version our last write made, which the stored one must still be.
    version: Option<Version>,
    pub saved: Saved,
}

impl Writer {
    pub fn new(
        fhir: Fhir,
        resolver: Resolver,
        mapping: std::sync::Arc<FhirMapping>,
        scheme: IdScheme,
        service: &str,
    ) -> Self {
        Self {
            fhir,
            resolver,
            mapping,
            scheme,
            service_system: crate::SERVICE_SYSTEM.into(),
            service: service.to_owned(),
            written: Mutex::new(HashMap::new()),
        }
    }

    /// What one group needs written: its Observation merged into our last write of it (or
    /// built new), not yet sent. Transactions of these are [`Writer::commit`]; a group whose
    /// transaction fails goes through [`Writer::write`] on its own.
    pub async fn prepare(
        &self,
        key: &GroupKey,
        measurements: &[Measurement],
    ) -> Result<Prepared, WriteError> {
        let (template, resolved) = self.subjects(key).await?;
        let subjects = resolved.subjects();
        let identity = observation_identity(&self.scheme, key, &subjects, measurements);
        let cached = self.written.lock().unwrap().get(&identity.id).cloned();
        let merged = self.merge(
            template,
            key,
            measurements,
            &subjects,
            &identity,
            cached.as_ref().map(|(v, _)| v),
        )?;
        let Some((body, saved)) = merged else {
            return Ok(Prepared::Done(identity.id, Saved::NoOperation));
        };
        Ok(Prepared::Write(PendingWrite {
            id: identity.id,
            body,
            version: cached.map(|(_, v)| v),
            saved,
        }))
    }

    /// Sends prepared writes as one FHIR transaction: all are stored, or none (Ok(false), and
    /// each should then be written on its own).
    pub async fn commit(&self, writes: &[&PendingWrite]) -> Result<bool, WriteError> {
        let entries: Vec<(&str, &Value, Precondition)> = writes
            .iter()
            .map(|w| {
                let pre = match &w.version {
                    Some(v) => Precondition::Version(v),
                    None => Precondition::Absent,
                };
                (w.id.as_str(), &w.body, pre)
            })
            .collect();
        let Some(versions) = self.fhir.transaction("Observation", &entries).await? else {
            return Ok(false);
        };
        let mut written = self.written.lock().unwrap();
        if written.len() > 50_000 {
            written.clear();
        }
        for (w, version) in writes.iter().zip(versions) {
            written.insert(w.id.clone(), (w.body.clone(), version));
        }
        Ok(true)
    }

    /// The group's Observation merged into `existing`, or None when it holds the points already.
    fn merge(
        &self,
        template: &hds_medtech_fhir::CodeValueFhir,
        key: &GroupKey,
        measurements: &[Measurement],
        subjects: &hds_medtech_fhir::Subjects,
        identity: &hds_medtech_fhir::ObservationIdentity,
        existing: Option<&Value>,
    ) -> Result<Option<(Value, Saved)>, WriteError> {
        let rendered = render(
            template,
            key,
            measurements,
            subjects,
            identity,
            &self.service_system,
            existing,
            Utc::now(),
        )
        .map_err(WriteError::Failed)?;
        Ok(match rendered {
            Rendered::Unchanged => None,
            Rendered::Created(v) => Some((v, Saved::Created)),
            Rendered::Updated(v) => Some((v, Saved::Updated)),
        })
    }

    async fn subjects(
        &self,
        key: &GroupKey,
    ) -> Result<(&hds_medtech_fhir::CodeValueFhir, Resolved), WriteError> {
        let template = self.mapping.template(&key.type_name).ok_or_else(|| {
            WriteError::Failed(MedTechError::new(
                ErrorType::FhirTemplateError,
                "TemplateNotFound",
                format!("no CodeValueFhir template has typeName '{}'", key.type_name),
            ))
        })?;
        let resolved = self
            .resolver
            .resolve(
                &self.fhir,
                &key.device_id,
                key.patient_id.as_deref(),
                key.encounter_id.as_deref(),
            )
            .await?;
        Ok((template, resolved))
    }

    /// One group on its own, merging into whatever is stored until its write is not
    /// contended.
    pub async fn write(
        &self,
        key: &GroupKey,
        measurements: &[Measurement],
    ) -> Result<(String, Saved), WriteError> {
        let (template, resolved) = self.subjects(key).await?;
        let subjects = resolved.subjects();
        let identity = observation_identity(&self.scheme, key, &subjects, measurements);
        let id = identity.id.clone();
        // Without our own last write, first assume the Observation is new (most are, with
        // per-measurement windows): a create that finds it exists costs what a read would.
        let mut read_first = false;
        for _ in 0..CONTENTION_ATTEMPTS {
            let cached = self.written.lock().unwrap().get(&id).cloned();
            let existing = match cached {
                Some(c) => Some(c),
                None if read_first => self.fhir.read("Observation", &id).await?,
                None => None,
            };
            read_first = true;
            let merged = self.merge(
                template,
                key,
                measurements,
                &subjects,
                &identity,
                existing.as_ref().map(|(v, _)| v),
            )?;
            let Some((body, saved)) = merged else {
                return Ok((id, Saved::NoOperation));
            };
            let pre = match &existing {
                Some((_, version)) => Precondition::Version(version),
                None => Precondition::Absent,
            };
            match self.fhir.put("Observation", &id, &body, pre).await? {
                Some(version) => {
                    let mut written = self.written.lock().unwrap();
                    if written.len() > 50_000 {
                        written.clear();
                    }
                    written.insert(id.clone(), (body, version));
                    return Ok((id, saved));
                }
                None => {
                    if existing.is_some() {
                        metrics::counter!(m::FHIR_RESOURCE_CONTENTION, "service" => self.service.clone())
                            .increment(1);
                    }
                    self.written.lock().unwrap().remove(&id);
                }
            }
        }
        Err(WriteError::Transient(format!(
            "Observation/{id} kept changing under {CONTENTION_ATTEMPTS} attempts to merge into it"
        )))
    }
}
