//! One module per group of FHIR interactions. Handlers are small: they check the request, call
//! the store inside a transaction, and shape the response.

pub mod async_job;
pub mod batch;
pub mod bulk_delete;
pub mod capability;
pub mod conditional;
pub mod everything;
pub mod export;
pub mod history;
pub mod import;
pub mod instance;
pub mod patch_shape;
pub mod reindex;
pub mod search;
pub mod type_level;
pub mod validate;

use axum::http::StatusCode;
use hds_common::config::VersionPolicy;
use hds_fhir_model::Severity;
use serde_json::Value;

use crate::error::{FhirError, OutcomeIssue};

/// The URL's resource type must be a concrete R4 resource type.
pub fn check_type(resource_type: &str) -> Result<(), FhirError> {
    if hds_fhir_model::r4().is_resource_type(resource_type) {
        Ok(())
    } else {
        Err(FhirError::unsupported_type(resource_type))
    }
}

/// FHIR ids are 1–64 of `[A-Za-z0-9\-\.]`.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

pub fn check_id(id: &str) -> Result<(), FhirError> {
    if valid_id(id) {
        Ok(())
    } else {
        Err(FhirError::bad_request(format!(
            "'{id}' is not a valid FHIR id (1-64 characters of A-Z, a-z, 0-9, '-' and '.')"
        )))
    }
}

/// resourceType must match the URL, and the resource must be valid R4.
pub fn validate(
    resource: &Value,
    resource_type: &str,
    status: StatusCode,
) -> Result<(), FhirError> {
    match resource.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == resource_type => {}
        Some(t) => {
            return Err(FhirError::with_issues(
                StatusCode::BAD_REQUEST,
                vec![
                    OutcomeIssue::error(
                        "invalid",
                        format!(
                            "resourceType '{t}' does not match the '{resource_type}' in the URL"
                        ),
                    )
                    .at("resourceType"),
                ],
            ));
        }
        None => {
            return Err(FhirError::with_issues(
                StatusCode::BAD_REQUEST,
                vec![
                    OutcomeIssue::error("required", "the resource has no resourceType")
                        .at("resourceType"),
                ],
            ));
        }
    }
    let issues: Vec<OutcomeIssue> = hds_fhir_model::r4()
        .validate(resource)
        .into_iter()
        .filter(|i| matches!(i.severity, Severity::Error | Severity::Fatal))
        .map(|i| OutcomeIssue {
            severity: "error",
            code: i.code.as_str(),
            diagnostics: i.diagnostics,
            expression: Some(i.expression),
        })
        .collect();
    if issues.is_empty() {
        Ok(())
    } else {
        Err(FhirError::with_issues(status, issues))
    }
}

/// Sets the resource's id, keeping it right after resourceType where readers expect it.
pub fn set_id(resource: &mut Value, id: &str) {
    if let Value::Object(obj) = resource {
        if let Some(existing) = obj.get_mut("id") {
            *existing = Value::String(id.to_owned());
        } else {
            let at = usize::from(obj.contains_key("resourceType")).min(obj.len());
            obj.shift_insert(at, "id".into(), Value::String(id.to_owned()));
        }
    }
}

pub fn keeps_history(policy: VersionPolicy) -> bool {
    policy != VersionPolicy::NoVersion
}
