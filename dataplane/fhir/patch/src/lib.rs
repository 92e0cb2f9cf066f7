//! The two FHIR PATCH formats, applied to a resource held as `serde_json::Value`:
//! JSON Patch (RFC 6902, `application/json-patch+json`) and FHIRPath Patch (a `Parameters`
//! resource, `application/fhir+json`). Both are atomic: on error the resource is unchanged.
//! Errors distinguish a malformed document (HTTP 400) from a well-formed one that cannot be
//! applied to this resource (HTTP 422).

mod element_info;
mod fhirpath_patch;
mod path;

pub use element_info::{DefaultElementInfo, ElementInfo};
pub use fhirpath_patch::{apply_fhirpath_patch, apply_fhirpath_patch_with};

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The patch document itself is malformed (HTTP 400).
    #[error("invalid patch document{}: {message}", at(.expression))]
    Invalid {
        message: String,
        expression: Option<String>,
    },
    /// The document is well formed but cannot be applied to this resource (HTTP 422).
    #[error("patch cannot be applied{}: {message}", at(.expression))]
    Unprocessable {
        message: String,
        expression: Option<String>,
    },
}

fn at(expression: &Option<String>) -> String {
    expression
        .as_deref()
        .map(|e| format!(" at {e}"))
        .unwrap_or_default()
}

impl PatchError {
    pub fn invalid(message: impl Into<String>, expression: Option<String>) -> Self {
        Self::Invalid {
            message: message.into(),
            expression,
        }
    }

    pub fn unprocessable(message: impl Into<String>, expression: Option<String>) -> Self {
        Self::Unprocessable {
            message: message.into(),
            expression,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::Invalid { message, .. } | Self::Unprocessable { message, .. } => message,
        }
    }

    /// Which operation failed: `Parameters.parameter[1]` (optionally `.part[n]`) for
    /// FHIRPath Patch, a JSON Pointer into the patch array such as `/1` for JSON Patch.
    /// Meant for `OperationOutcome.issue.expression`.
    pub fn expression(&self) -> Option<&str> {
        match self {
            Self::Invalid { expression, .. } | Self::Unprocessable { expression, .. } => {
                expression.as_deref()
            }
        }
    }

    /// True for errors the HTTP layer should report as 422 rather than 400.
    pub fn is_unprocessable(&self) -> bool {
        matches!(self, Self::Unprocessable { .. })
    }
}

/// Applies an RFC 6902 JSON Patch document (a JSON array of operations).
pub fn apply_json_patch(resource: &mut Value, patch: &Value) -> Result<(), PatchError> {
    let items = patch.as_array().ok_or_else(|| {
        PatchError::invalid(
            "a JSON Patch document must be a JSON array of operations",
            None,
        )
    })?;
    let mut ops = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // Parsed one by one so the error can say which operation is malformed.
        let op: json_patch::PatchOperation = serde_json::from_value(item.clone())
            .map_err(|e| PatchError::invalid(e.to_string(), Some(format!("/{i}"))))?;
        ops.push(op);
    }
    // Working on a copy keeps the caller's value untouched on failure without relying on
    // the crate's undo log.
    let mut work = resource.clone();
    json_patch::patch_unsafe(&mut work, &ops).map_err(|e| {
        let name = match ops.get(e.operation) {
            Some(json_patch::PatchOperation::Add(_)) => "add",
            Some(json_patch::PatchOperation::Remove(_)) => "remove",
            Some(json_patch::PatchOperation::Replace(_)) => "replace",
            Some(json_patch::PatchOperation::Move(_)) => "move",
            Some(json_patch::PatchOperation::Copy(_)) => "copy",
            Some(json_patch::PatchOperation::Test(_)) => "test",
            None => "operation",
        };
        PatchError::unprocessable(
            format!("{name} at '{}' failed: {}", e.path, e.kind),
            Some(format!("/{}", e.operation)),
        )
    })?;
    *resource = work;
    Ok(())
}

#[cfg(test)]
mod tests_fhirpath;
#[cfg(test)]
mod tests_json;
