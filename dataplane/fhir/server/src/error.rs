//! Every failure leaves the server as an OperationOutcome with the status that fits it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// One OperationOutcome.issue.
#[derive(Debug, Clone)]
pub struct OutcomeIssue {
    pub severity: &'static str,
    pub code: &'static str,
    pub diagnostics: String,
    pub expression: Option<String>,
}

impl OutcomeIssue {
    pub fn error(code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            severity: "error",
            code,
            diagnostics: diagnostics.into(),
            expression: None,
        }
    }

    pub fn at(mut self, expression: impl Into<String>) -> Self {
        self.expression = Some(expression.into());
        self
    }
}

pub fn operation_outcome(issues: &[OutcomeIssue]) -> Value {
    let issues: Vec<Value> = issues
        .iter()
        .map(|i| {
            let mut v =
                json!({"severity": i.severity, "code": i.code, "diagnostics": i.diagnostics});
            if let Some(e) = &i.expression {
                v["expression"] = json!([e]);
            }
            v
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issues})
}

/// An interaction that failed, on its way to becoming a response.
#[derive(Debug)]
pub struct FhirError {
    pub status: StatusCode,
    pub issues: Vec<OutcomeIssue>,
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl FhirError {
    pub fn new(status: StatusCode, code: &'static str, diagnostics: impl Into<String>) -> Self {
        Self {
            status,
            issues: vec![OutcomeIssue::error(code, diagnostics)],
            headers: Vec::new(),
        }
    }

    pub fn with_issues(status: StatusCode, issues: Vec<OutcomeIssue>) -> Self {
        Self {
            status,
            issues,
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Points every issue without a location at `expression`.
    pub fn at_expression(mut self, expression: impl Into<String>) -> Self {
        let expression = expression.into();
        for i in &mut self.issues {
            i.expression.get_or_insert_with(|| expression.clone());
        }
        self
    }

    pub fn bad_request(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", diagnostics)
    }

    pub fn not_found(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", diagnostics)
    }

    pub fn gone(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::GONE, "deleted", diagnostics)
    }

    pub fn precondition_failed(diagnostics: impl Into<String>) -> Self {
        Self::new(StatusCode::PRECONDITION_FAILED, "conflict", diagnostics)
    }

    pub fn unsupported_type(resource_type: &str) -> Self {
        Self::not_found(format!(
            "'{resource_type}' is not a FHIR R4 resource type supported by this server"
        ))
    }
}

impl IntoResponse for FhirError {
    fn into_response(self) -> Response {
        let body = operation_outcome(&self.issues).to_string();
        let mut resp = (self.status, body).into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
        for (k, v) in self.headers {
            h.insert(k, v);
        }
        resp
    }
}

impl From<hds_fhir_store::StoreError> for FhirError {
    fn from(e: hds_fhir_store::StoreError) -> Self {
        tracing::error!(error = %e, "storage failure");
        let status = match e {
            hds_fhir_store::StoreError::Pool(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        Self::new(
            status,
            "exception",
            format!("the request could not be stored: {e}"),
        )
    }
}

impl From<tokio_postgres::Error> for FhirError {
    fn from(e: tokio_postgres::Error) -> Self {
        hds_fhir_store::StoreError::from(e).into()
    }
}

impl From<deadpool_postgres::PoolError> for FhirError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        hds_fhir_store::StoreError::from(e).into()
    }
}

impl From<hds_fhir_search::SearchError> for FhirError {
    fn from(e: hds_fhir_search::SearchError) -> Self {
        Self::bad_request(e.to_string())
    }
}

impl From<hds_fhir_search::ExecError> for FhirError {
    fn from(e: hds_fhir_search::ExecError) -> Self {
        match e {
            hds_fhir_search::ExecError::Search(s) => s.into(),
            hds_fhir_search::ExecError::Db(d) => d.into(),
        }
    }
}

impl From<hds_fhir_patch::PatchError> for FhirError {
    fn from(e: hds_fhir_patch::PatchError) -> Self {
        let (status, code) = if e.is_unprocessable() {
            (StatusCode::UNPROCESSABLE_ENTITY, "processing")
        } else {
            (StatusCode::BAD_REQUEST, "invalid")
        };
        let mut issue = OutcomeIssue::error(
            code,
            format!("the patch cannot be applied: {}", e.message()),
        );
        if let Some(x) = e.expression() {
            issue = issue.at(x);
        }
        Self::with_issues(status, vec![issue])
    }
}
