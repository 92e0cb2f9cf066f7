//! Every request carries a valid bearer token whose roles grant what the method does: DICOM
//! Data Reader reads, DICOM Data Owner also stores and deletes (Azure's two DICOM roles). The
//! caller and the action are left on the response for the audit layer, refused or not.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hds_auth::DataAction;
use hds_auth::actions::{ServiceKind, allowed};
use hds_common::audit::Caller;

use crate::{AppState, DicomError};

pub(crate) async fn authenticate(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let Some(tokens) = &s.tokens else {
        return next.run(req).await;
    };
    let header_value = req
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let principal = match tokens.authorize_header(header_value).await {
        Ok(p) => p,
        Err(e) => return DicomError::Unauthorized(e.to_string()).into_response(),
    };
    let action = match *req.method() {
        Method::GET | Method::HEAD => DataAction::Read,
        Method::DELETE => DataAction::Delete,
        _ => DataAction::Write,
    };
    let granted = match &principal.application_actions {
        Some(actions) => actions.contains(&action),
        None => allowed(
            principal.roles.iter().map(String::as_str),
            ServiceKind::Dicom,
            action,
        ),
    };
    let caller = Caller(principal);
    let mut resp = if granted {
        next.run(req).await
    } else {
        DicomError::Forbidden(format!(
            "the caller's roles do not grant '{}' on this DICOM service (DICOM Data Reader reads; DICOM Data Owner reads, stores and deletes)",
            action.as_str()
        ))
        .into_response()
    };
    resp.extensions_mut().insert(caller);
    resp.extensions_mut().insert(action);
    resp
}
