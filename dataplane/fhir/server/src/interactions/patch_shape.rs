//! FHIRPath Patch needs to know whether an added element is a list and whether it is a choice
//! (`value[x]`); the R4 definitions know, so the patch engine asks them instead of guessing.

use hds_fhir_patch::{DefaultElementInfo, ElementInfo};

pub struct R4ElementInfo;

impl ElementInfo for R4ElementInfo {
    fn is_repeating(&self, parent_path: &str, name: &str) -> Option<bool> {
        match hds_fhir_model::r4().element_shape(parent_path, name) {
            Some(shape) => Some(shape.repeats),
            // Below a resource-typed element the path restarts; fall back to the engine's guess.
            None => DefaultElementInfo.is_repeating(parent_path, name),
        }
    }

    fn is_choice(&self, parent_path: &str, name: &str) -> Option<bool> {
        match hds_fhir_model::r4().element_shape(parent_path, name) {
            Some(shape) => Some(shape.choice),
            None => DefaultElementInfo.is_choice(parent_path, name),
        }
    }
}
