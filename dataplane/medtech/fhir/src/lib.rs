//! Azure MedTech FHIR destination mappings, accepted as Azure writes them (a `CollectionFhir`
//! of `CodeValueFhir` templates): normalized measurements are grouped into Observations, and
//! each group is rendered as a new FHIR R4 Observation or merged into the stored one.
//!
//! Everything here is a pure function of its inputs; the service does the HTTP, the
//! Patient/Device/Encounter resolution and the retries. The flow per measurement batch:
//! [`group_key`] for every measurement, buffer by key, resolve the subjects, then
//! [`observation_identity`] → read the stored Observation by id → [`render`] → save.

mod group;
mod identity;
mod render;
mod template;
mod time;
mod value;

pub use group::{GroupKey, Window, group_key};
pub use identity::{IdScheme, ObservationIdentity, Subjects, observation_identity};
pub use render::{Rendered, render};
pub use template::{
    AZURE_SERVICE_SYSTEM, CodeValueFhir, FhirCode, FhirCodeableConcept, FhirComponent, FhirMapping,
    FhirValue, PeriodInterval,
};
