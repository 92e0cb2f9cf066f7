//! The token validator of a service from its [`AuthConfig`]: the same trust rules for every
//! data-plane service (FHIR, DICOM, MedTech).

use hds_auth::DataAction;

use crate::config::{AuthConfig, AuthMode};

/// The authorities a service trusts: its configured one, with the audience it expects (by
/// default its own URL, as in Azure).
pub fn token_validator(
    service: &str,
    auth: &AuthConfig,
    base_url: Option<&str>,
) -> Option<hds_auth::Validator> {
    if auth.mode == AuthMode::None {
        return None;
    }
    let audiences: Vec<String> = auth
        .audience
        .clone()
        .or_else(|| base_url.map(str::to_owned))
        .into_iter()
        .collect();
    let mut authorities: Vec<hds_auth::AuthorityConfig> = auth
        .authority
        .iter()
        .map(|issuer| hds_auth::AuthorityConfig {
            issuer: issuer.clone(),
            audiences: audiences.clone(),
            roles_claim: auth.roles_claim.clone().unwrap_or_else(|| "roles".into()),
            applications: Vec::new(),
        })
        .collect();
    // The Workspace's own issuer names roles as Azure does, whatever the outside authority uses.
    if let Some(ws) = &auth.workspace_issuer
        && !authorities
            .iter()
            .any(|a| a.issuer.trim_end_matches('/') == ws.trim_end_matches('/'))
    {
        authorities.push(hds_auth::AuthorityConfig {
            issuer: ws.clone(),
            audiences: audiences.clone(),
            roles_claim: "roles".into(),
            applications: Vec::new(),
        });
    }
    for p in &auth.smart_identity_providers {
        let key = p.authority.trim_end_matches('/');
        if authorities
            .iter()
            .any(|a| a.issuer.trim_end_matches('/') == key)
        {
            tracing::warn!(service = %service, authority = %p.authority, "a SMART identity provider is also the service's authority; its tokens are judged by roles as the authority's");
            continue;
        }
        let applications: Vec<hds_auth::SmartApplication> = p
            .applications
            .iter()
            .map(|a| hds_auth::SmartApplication {
                client_id: a.client_id.clone(),
                audience: a.audience.clone(),
                allowed_data_actions: a
                    .allowed_data_actions
                    .iter()
                    .filter_map(|name| {
                        let action = DataAction::parse(name);
                        if action.is_none() {
                            tracing::warn!(service = %service, action = %name, "unknown data action in allowedDataActions; ignored");
                        }
                        action
                    })
                    .collect(),
            })
            .collect();
        if applications.is_empty() {
            tracing::warn!(service = %service, authority = %p.authority, "a SMART identity provider without applications admits no one");
        }
        authorities.push(hds_auth::AuthorityConfig {
            issuer: p.authority.clone(),
            audiences: applications.iter().map(|a| a.audience.clone()).collect(),
            roles_claim: "roles".into(),
            applications,
        });
    }
    if authorities.is_empty() {
        tracing::error!(
            service = %service,
            "no token authority is configured (auth.authority or the Workspace issuer): every data request will be refused with 401"
        );
    } else if audiences.is_empty() {
        tracing::warn!(service = %service, "no audience configured or derivable from the base URL: tokens for any audience of the authority are accepted");
    }
    Some(hds_auth::Validator::new(hds_auth::ValidatorConfig {
        authorities,
        leeway: std::time::Duration::from_secs(auth.leeway_seconds.unwrap_or(60)),
    }))
}
