//! Errors that become responses: a status and a sentence saying what was wrong, as plain text
//! (Azure's DICOM service answers errors the same way).

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum DicomError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAcceptable(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Internal(String),
}

impl DicomError {
    pub fn status(&self) -> StatusCode {
        match self {
            DicomError::BadRequest(_) => StatusCode::BAD_REQUEST,
            DicomError::NotFound(_) => StatusCode::NOT_FOUND,
            DicomError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            DicomError::Conflict(_) => StatusCode::CONFLICT,
            DicomError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            DicomError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            DicomError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            DicomError::Forbidden(_) => StatusCode::FORBIDDEN,
            DicomError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for DicomError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "DICOM request failed");
        }
        let mut r = (status, self.to_string()).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<hds_dicom_index::IndexError> for DicomError {
    fn from(e: hds_dicom_index::IndexError) -> Self {
        DicomError::Internal(format!("the index could not be read or written: {e}"))
    }
}

impl From<object_store::Error> for DicomError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => DicomError::Internal(format!(
                "the file of an indexed instance is missing from the blob store: {path}"
            )),
            e => DicomError::Internal(format!("the blob store failed: {e}")),
        }
    }
}
