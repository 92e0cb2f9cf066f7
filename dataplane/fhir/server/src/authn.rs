//! Who may call: bearer tokens checked against the authorities a service trusts, then the
//! caller's roles and SMART scopes against the data action the endpoint declares
//! ([`crate::access`]). The caller and the action are left on the response for the audit layer.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hds_auth::{DataAction, Principal};
use hds_common::config::FhirServiceConfig;

use crate::error::FhirError;
use crate::{AppState, access, audit, smart};

/// The authorities a service trusts (see [`hds_common::auth::token_validator`]).
pub(crate) fn token_validator(config: &FhirServiceConfig) -> Option<hds_auth::Validator> {
    hds_common::auth::token_validator(&config.name, &config.auth, config.base_url.as_deref())
}

/// Every data request carries a valid token whose roles grant the data action its endpoint
/// declares in [`access::ENDPOINTS`]; the caller then travels with the request as a
/// [`hds_auth::Principal`].
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
        Err(e) => {
            let description = e.to_string();
            let challenge = format!(
                "Bearer error=\"{}\", error_description=\"{}\"",
                e.code(),
                description.replace('"', "'")
            );
            return FhirError::new(StatusCode::UNAUTHORIZED, "login", description)
                .header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge)
                        .unwrap_or(HeaderValue::from_static("Bearer error=\"invalid_token\"")),
                )
                .into_response();
        }
    };
    // The audit layer records who called and what they needed, refused or not.
    let caller = audit::Caller(principal.clone());
    let (mut resp, action) = authorize(&s, principal, req, next).await;
    resp.extensions_mut().insert(caller);
    if let Some(action) = action {
        resp.extensions_mut().insert(action);
    }
    resp
}

/// The caller's roles and scopes admit the request, which then runs; or the refusal. Also
/// returns the data action the endpoint declares, when it declares one.
async fn authorize(
    s: &AppState,
    principal: Principal,
    mut req: Request,
    next: Next,
) -> (Response, Option<DataAction>) {
    let (route, path) = s.route_and_path(&req);
    match admit(&principal, req.method(), &route, &path) {
        Ok((action, smart)) => {
            if let Some(sm) = smart {
                req.extensions_mut().insert(sm);
            }
            req.extensions_mut().insert(principal);
            (next.run(req).await, Some(action))
        }
        Err((refusal, action)) => (refusal.into_response(), action),
    }
}

/// Whether the caller holds `action` at all (by roles, or a SMART provider application's
/// allowed actions): for what a request's parameters add to its route's action.
pub(crate) fn grants(principal: &Principal, action: DataAction) -> bool {
    match &principal.application_actions {
        Some(allowed) => allowed.contains(&action),
        None => {
            hds_auth::actions::role_grant(
                principal.roles.iter().map(String::as_str),
                hds_auth::actions::ServiceKind::Fhir,
                action,
            ) != hds_auth::actions::RoleGrant::Denied
        }
    }
}

/// Whether the caller's roles (and SMART scopes, when the token has them) admit `method` on
/// `route`: the data action and what the scopes grant, or the refusal with the action when the
/// endpoint declares one. Each entry of a batch or transaction Bundle is judged here too, as
/// the request it stands for.
pub(crate) fn admit(
    principal: &Principal,
    method: &axum::http::Method,
    route: &str,
    path: &str,
) -> Result<(DataAction, Option<smart::Smart>), (FhirError, Option<DataAction>)> {
    let Some(action) = access::required_action(method, route, path) else {
        tracing::error!(%route, %method, "no data action is declared for this endpoint; refusing it");
        let refusal = FhirError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "no data action is declared for this endpoint, so no one may call it",
        );
        return Err((refusal, None));
    };
    let roles = principal.roles.iter().map(String::as_str);
    let scopes = hds_auth::smart::Scopes::parse(principal.scopes.iter().map(String::as_str));
    // A SMART identity provider's application acts by its allowed data actions, never more
    // than its scopes grant.
    let grant = match &principal.application_actions {
        Some(allowed) if allowed.contains(&action) => hds_auth::actions::RoleGrant::ThroughScopes,
        Some(_) => {
            let refusal = FhirError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the application '{}' is not allowed the data action '{action}' (allowedDataActions)",
                    principal.client_id.as_deref().unwrap_or_default()
                ),
            );
            return Err((refusal, Some(action)));
        }
        None => hds_auth::actions::role_grant(roles, hds_auth::actions::ServiceKind::Fhir, action),
    };
    match grant {
        hds_auth::actions::RoleGrant::Denied => {
            let refusal = FhirError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the caller's roles ({}) do not grant the data action '{action}' this request needs",
                    if principal.roles.is_empty() {
                        "none".to_owned()
                    } else {
                        principal.roles.join(", ")
                    }
                ),
            );
            return Err((refusal, Some(action)));
        }
        hds_auth::actions::RoleGrant::ThroughScopes if !scopes.is_scoped() => {
            let refusal = smart::forbidden(format!(
                "the data action '{action}' is granted only through SMART scopes (patient/, user/ or system/), and the token has none"
            ));
            return Err((refusal, Some(action)));
        }
        _ => {}
    }
    // A token with SMART scopes may do only what they grant, whatever its roles.
    if scopes.is_scoped() {
        return match smart::admit(principal, scopes, method, route, path) {
            Ok(sm) => Ok((action, Some(sm))),
            Err(e) => Err((e, Some(action))),
        };
    }
    Ok((action, None))
}
