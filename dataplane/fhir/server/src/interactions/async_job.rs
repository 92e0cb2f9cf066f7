//! The answers the asynchronous request pattern shares (`$export`, `$import`): 202 with the
//! status URL, 202 with X-Progress while a job runs, and what a job that ended badly says.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use crate::error::{FhirError, OutcomeIssue, operation_outcome};
use crate::http::json_response;

/// 202 with an informational OperationOutcome, and the status URL as Content-Location when
/// there is one.
pub fn accepted(diagnostics: String, status_url: Option<&str>) -> Response {
    let oo = operation_outcome(&[OutcomeIssue {
        severity: "information",
        code: "informational",
        diagnostics,
        expression: None,
    }]);
    let mut r = json_response(StatusCode::ACCEPTED, oo.to_string());
    if let Some(v) = status_url.and_then(|u| HeaderValue::from_str(u).ok()) {
        r.headers_mut().insert(header::CONTENT_LOCATION, v);
    }
    r
}

/// 202 with X-Progress and Retry-After: the job is still at work.
pub fn in_progress(progress: &str) -> Response {
    let mut r = StatusCode::ACCEPTED.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(progress) {
        h.insert("x-progress", v);
    }
    h.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    r
}

/// One asynchronous operation: where its jobs' status lives and what messages call them.
pub struct Operation {
    /// `[base]/_operations/<path>/<id>`.
    pub path: &'static str,
    /// In messages: "<name> job ...".
    pub name: &'static str,
}

impl Operation {
    pub fn status_url(&self, base: &str, id: Uuid) -> String {
        format!("{base}/_operations/{}/{id}", self.path)
    }

    /// A job id from a status URL; anything that is not one names no job.
    pub fn job_id(&self, id: &str) -> Result<Uuid, FhirError> {
        Uuid::parse_str(id)
            .map_err(|_| FhirError::not_found(format!("no {} job '{id}'", self.name)))
    }

    /// A database or storage failure while handling a job.
    pub fn failure(&self, e: impl std::fmt::Display) -> FhirError {
        FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!("{}: {e}", self.name),
        )
    }

    /// A job that was cancelled (404, as if gone) or failed (500 with its recorded reason).
    pub fn ended(&self, id: Uuid, status: &str, message: Option<&str>) -> FhirError {
        if status == "cancelled" {
            return FhirError::not_found(format!("{} job {id} was cancelled", self.name));
        }
        FhirError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            format!(
                "{} job {id} failed: {}",
                self.name,
                message.unwrap_or("no reason was recorded")
            ),
        )
    }
}
