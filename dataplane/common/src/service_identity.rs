//! The identities services use to call other services of their Workspace, as Azure's managed
//! identities do: the MedTech service writes Observations to its FHIR service, and a DICOM
//! service's FHIR sync writes ImagingStudy resources. Each gets its own client of the
//! Workspace issuer, holding only what it needs: the FHIR Data Writer role (no hard delete,
//! export, reindex or search-parameter changes) narrowed by SMART v2 scopes to the types it
//! touches. `hds up` registers them in its issuers; the operator creates the same clients as
//! Secrets.

use hds_crds::medtech_service::ResourceIdentityResolutionType;
use hds_crds::{DicomService, MedTechService};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceIdentity {
    pub workspace: String,
    /// `medtech-<name>` or `dicom-fhir-sync-<name>`.
    pub client_id: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
}

const WRITER: &str = "FHIR Data Writer";

/// The identity a MedTechService acts with. With `Create` resolution it may create the Patient
/// and Device it cannot find; with `Lookup` it only reads them.
pub fn medtech(svc: &MedTechService) -> Option<ServiceIdentity> {
    let name = svc.metadata.name.as_deref()?;
    let creates = matches!(
        svc.spec.fhir_destination.resource_identity_resolution_type,
        ResourceIdentityResolutionType::Create
    );
    let identities = if creates { "crus" } else { "rs" };
    Some(ServiceIdentity {
        workspace: svc.spec.workspace_ref.name.clone(),
        client_id: format!("medtech-{name}"),
        roles: vec![WRITER.into()],
        scopes: vec![
            "system/Observation.crus".into(),
            format!("system/Patient.{identities}"),
            format!("system/Device.{identities}"),
            "system/Encounter.rs".into(),
        ],
    })
}

/// The identity of a DicomService's FHIR sync, when the sync is on.
pub fn dicom_fhir_sync(svc: &DicomService) -> Option<ServiceIdentity> {
    let name = svc.metadata.name.as_deref()?;
    svc.spec.fhir_sync.as_ref().filter(|s| s.enabled)?;
    Some(ServiceIdentity {
        workspace: svc.spec.workspace_ref.name.clone(),
        client_id: format!("dicom-fhir-sync-{name}"),
        roles: vec![WRITER.into()],
        scopes: vec![
            // Deleted when the last of a study's instances is.
            "system/ImagingStudy.cruds".into(),
            "system/Endpoint.crus".into(),
            // Created when a study names a PatientID not found; never changed.
            "system/Patient.crs".into(),
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example<T: serde::de::DeserializeOwned>(file: &str) -> T {
        let path = format!("{}/../../examples/{file}", env!("CARGO_MANIFEST_DIR"));
        serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_example_services_get_least_privilege_identities() {
        let m: MedTechService = example("medtech-service.yaml");
        let id = medtech(&m).unwrap();
        assert_eq!(id.client_id, "medtech-vitals");
        assert_eq!(id.workspace, "demo");
        assert_eq!(id.roles, [WRITER]);
        assert!(id.scopes.contains(&"system/Observation.crus".to_owned()));
        assert!(!id.scopes.iter().any(|s| s.contains('*')));
        let d: DicomService = example("dicom-service.yaml");
        let id = dicom_fhir_sync(&d).unwrap();
        assert_eq!(id.client_id, "dicom-fhir-sync-dicom");
        let mut off = d.clone();
        off.spec.fhir_sync.as_mut().unwrap().enabled = false;
        assert_eq!(dicom_fhir_sync(&off), None);
    }
}
