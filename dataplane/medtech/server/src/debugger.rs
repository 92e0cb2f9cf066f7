//! The mapping debugger behind `hds medtech test` and `POST /$validate-mapping`: what a message
//! becomes under a pair of templates, with nothing written. Subjects get the ids identity
//! resolution Create would give them.

use chrono::Utc;
use hds_medtech_fhir::{
    FhirMapping, IdScheme, Rendered, Subjects, group_key, observation_identity, render,
};
use hds_medtech_normalize::{DeviceMapping, ErrorPolicy, Measurement, envelope};
use serde_json::{Map, Value, json};

use crate::fhir::hashed_id;

/// `message` is the device's JSON; `properties`/`system_properties` fill the envelope as a
/// broker would. The answer lists each template's errors, the normalized measurements and the
/// Observations that would be written.
pub fn debug(
    device_mapping: &Value,
    fhir_mapping: &Value,
    message: Value,
    properties: Map<String, Value>,
    system_properties: Map<String, Value>,
    scheme: &IdScheme,
) -> Value {
    let device = DeviceMapping::parse(device_mapping);
    let fhir = FhirMapping::parse(fhir_mapping);
    let mut report = json!({
        "deviceMapping": {"errors": device.as_ref().err().cloned().unwrap_or_default()},
        "fhirMapping": {"errors": fhir.as_ref().err().cloned().unwrap_or_default()},
    });
    let Ok(device) = device else {
        return report;
    };
    let normalized = device.normalize(
        &envelope(message, properties, system_properties),
        ErrorPolicy::DiscardMatchAndExtractErrors,
    );
    let mut errors: Vec<Value> = normalized
        .errors
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    report["measurements"] = serde_json::to_value(&normalized.measurements).unwrap_or_default();
    let mut observations = Vec::new();
    if let Ok(fhir) = fhir {
        let mut groups: Vec<(hds_medtech_fhir::GroupKey, Vec<Measurement>)> = Vec::new();
        for m in normalized.measurements {
            match group_key(&fhir, &m) {
                Ok(k) => match groups.iter_mut().find(|(g, _)| *g == k) {
                    Some((_, ms)) => ms.push(m),
                    None => groups.push((k, vec![m])),
                },
                Err(e) => errors.push(serde_json::to_value(&e).unwrap_or_default()),
            }
        }
        for (key, ms) in groups {
            let patient = hashed_id("Patient", key.patient_id.as_deref().unwrap_or(""));
            let device = hashed_id("Device", &key.device_id);
            let subjects = Subjects {
                patient_id: &patient,
                device_id: &device,
                encounter_id: key.encounter_id.as_deref(),
            };
            let identity = observation_identity(scheme, &key, &subjects, &ms);
            let Some(template) = fhir.template(&key.type_name) else {
                continue;
            };
            match render(
                template,
                &key,
                &ms,
                &subjects,
                &identity,
                crate::SERVICE_SYSTEM,
                None,
                Utc::now(),
            ) {
                Ok(Rendered::Created(o) | Rendered::Updated(o)) => observations.push(o),
                Ok(Rendered::Unchanged) => {}
                Err(e) => errors.push(serde_json::to_value(&e).unwrap_or_default()),
            }
        }
    }
    report["observations"] = Value::Array(observations);
    report["errors"] = Value::Array(errors);
    report
}
