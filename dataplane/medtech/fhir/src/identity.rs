use hds_medtech_normalize::Measurement;
use sha2::{Digest, Sha256};

use crate::group::{GroupKey, Window};
use crate::template::AZURE_SERVICE_SYSTEM;
use crate::time::format_id_time;

/// The FHIR resource ids the identity resolution found (plain ids, not references).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subjects<'a> {
    pub patient_id: &'a str,
    pub device_id: &'a str,
    pub encounter_id: Option<&'a str>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdScheme {
    /// Azure's: identifier system [`AZURE_SERVICE_SYSTEM`], so Observations written by Azure
    /// before a migration are found and merged into.
    Azure,
    /// System `urn:hds:medtech:{service}`: two MedTech services writing to one FHIR service
    /// never share (and overwrite) one another's Observations.
    Hds { service: String },
}

impl IdScheme {
    pub fn system(&self) -> String {
        match self {
            IdScheme::Azure => AZURE_SERVICE_SYSTEM.to_owned(),
            IdScheme::Hds { service } => format!("urn:hds:medtech:{service}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservationIdentity {
    /// Lowercase hex SHA-256 of `{system}_{value}`.
    pub id: String,
    pub system: String,
    pub value: String,
}

/// Identifier value `{patient}.{device}.{type}.{start:yyyyMMddHHmmssZ}.{end:…}`, or
/// `{patient}.{device}.{type}.{correlationId}`; the id is a hash of it, so every batch of
/// one group writes to the same Observation with a plain PUT.
///
/// `measurements` is not used: the identity comes from the key alone, so it cannot change
/// with which measurements of a group arrive in which batch. It stays in the signature for
/// the service written against it.
pub fn observation_identity(
    scheme: &IdScheme,
    key: &GroupKey,
    subjects: &Subjects,
    measurements: &[Measurement],
) -> ObservationIdentity {
    let _ = measurements;
    let system = scheme.system();
    let when = match &key.window {
        Window::Interval { start, end } => {
            format!("{}.{}", format_id_time(*start), format_id_time(*end))
        }
        Window::Correlation(id) => id.clone(),
    };
    let value = format!(
        "{}.{}.{}.{when}",
        subjects.patient_id, subjects.device_id, key.type_name
    );
    let digest = Sha256::digest(format!("{system}_{value}").as_bytes());
    let id = digest.iter().map(|b| format!("{b:02x}")).collect();
    ObservationIdentity { id, system, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn key(window: Window) -> GroupKey {
        GroupKey {
            type_name: "spo2".into(),
            device_id: "device-serial".into(),
            patient_id: Some("mrn".into()),
            encounter_id: None,
            window,
        }
    }

    const SUBJECTS: Subjects = Subjects {
        patient_id: "p1",
        device_id: "d1",
        encounter_id: None,
    };

    #[test]
    fn azure_value_and_hash() {
        let t = Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap();
        let k = key(Window::Interval { start: t, end: t });
        let id = observation_identity(&IdScheme::Azure, &k, &SUBJECTS, &[]);
        assert_eq!(id.value, "p1.d1.spo2.20230101100000Z.20230101100000Z");
        assert_eq!(id.system, AZURE_SERVICE_SYSTEM);
        // Computed independently: sha256 of the system, "_", and the value.
        let mut h = Sha256::new();
        h.update(b"https://azure.microsoft.com/en-us/services/iomt-fhir-connector/_");
        h.update(b"p1.d1.spo2.20230101100000Z.20230101100000Z");
        let expected: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(id.id, expected);
        assert_eq!(id.id.len(), 64);
        assert_eq!(
            observation_identity(&IdScheme::Azure, &k, &SUBJECTS, &[]),
            id
        );
    }

    #[test]
    fn correlation_and_hds_scheme() {
        let k = key(Window::Correlation("corr-7".into()));
        let hds = IdScheme::Hds {
            service: "ws1-mt1".into(),
        };
        let id = observation_identity(&hds, &k, &SUBJECTS, &[]);
        assert_eq!(id.value, "p1.d1.spo2.corr-7");
        assert_eq!(id.system, "urn:hds:medtech:ws1-mt1");
        let azure = observation_identity(&IdScheme::Azure, &k, &SUBJECTS, &[]);
        assert_eq!(azure.value, id.value);
        assert_ne!(azure.id, id.id);
    }
}
