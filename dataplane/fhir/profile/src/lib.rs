//! Validation of FHIR R4 resources against profiles: StructureDefinitions of kind
//! `resource` given as JSON, such as those uploaded to the server. Knows nothing of HTTP
//! or SQL.
//!
//! ```
//! use hds_fhir_profile::{Profile, R4ValueSets};
//! use serde_json::json;
//! let sd = json!({"resourceType": "StructureDefinition", "url": "http://example.org/p",
//!     "kind": "resource", "type": "Patient", "derivation": "constraint",
//!     "differential": {"element": [
//!         {"id": "Patient", "path": "Patient"},
//!         {"id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1}]}});
//! let profile = Profile::compile(&sd).unwrap();
//! let issues = profile.validate(&json!({"resourceType": "Patient"}), &R4ValueSets);
//! assert_eq!(issues[0].expression, "Patient.birthDate");
//! ```
//!
//! What a profile adds to R4 is checked: cardinality (nested paths and slices included),
//! the types a choice is narrowed to, Reference targets among R4 types, `fixed[x]` and
//! `pattern[x]`, slicing (`value`, `pattern`, `exists` and `type` discriminators, closed or
//! open), required bindings on code/Coding/CodeableConcept/Quantity/string elements, and
//! FHIRPath invariants. The R4 structure itself is `hds_fhir_model`'s job; run both.

mod check;
mod compile;
mod slicing;
mod terminology;
mod values;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_slicing;

pub use compile::{CompileError, Profile};
pub use hds_fhir_model::{Issue, IssueCode, Severity};
pub use terminology::{Expansions, R4ValueSets, ValueSets};
