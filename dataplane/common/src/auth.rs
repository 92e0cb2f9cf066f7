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
    validator_config(service, auth, base_url).map(hds_auth::Validator::new)
}

/// What [`token_validator`] builds its validator from: None when authentication is off.
pub fn validator_config(
    service: &str,
    auth: &AuthConfig,
    base_url: Option<&str>,
) -> Option<hds_auth::ValidatorConfig> {
    if auth.mode == AuthMode::None {
        return None;
    }
    // The audience (by default the base URL), then the service's other URLs.
    let mut audiences: Vec<String> = auth
        .audience
        .clone()
        .or_else(|| base_url.map(str::to_owned))
        .into_iter()
        .collect();
    for a in &auth.additional_audiences {
        if !audiences.contains(a) {
            audiences.push(a.clone());
        }
    }
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
    Some(hds_auth::ValidatorConfig {
        authorities,
        leeway: std::time::Duration::from_secs(auth.leeway_seconds.unwrap_or(60)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn audiences(auth: &AuthConfig, base_url: Option<&str>) -> Vec<(String, Vec<String>)> {
        validator_config("test", auth, base_url)
            .unwrap()
            .authorities
            .into_iter()
            .map(|a| (a.issuer, a.audiences))
            .collect()
    }

    #[test]
    fn the_audience_is_the_base_url_unless_configured() {
        let auth = AuthConfig {
            workspace_issuer: Some("http://issuer".into()),
            ..AuthConfig::default()
        };
        assert_eq!(
            audiences(&auth, Some("https://fhir.example.org")),
            [(
                "http://issuer".into(),
                vec!["https://fhir.example.org".into()]
            )]
        );
        let explicit = AuthConfig {
            audience: Some("api://fhir".into()),
            ..auth.clone()
        };
        assert_eq!(
            audiences(&explicit, Some("https://fhir.example.org")),
            [("http://issuer".into(), vec!["api://fhir".into()])]
        );
        // Neither: any audience of the authority (with a warning), as before.
        assert_eq!(audiences(&auth, None), [("http://issuer".into(), vec![])]);
        let off = AuthConfig {
            mode: AuthMode::None,
            ..auth
        };
        assert!(validator_config("test", &off, None).is_none());
    }

    #[test]
    fn additional_audiences_are_accepted_from_every_authority() {
        let auth = AuthConfig {
            authority: Some("https://login.example/t".into()),
            workspace_issuer: Some("http://issuer".into()),
            additional_audiences: vec![
                "http://fhir.ns1.svc.cluster.local:8080".into(),
                "https://fhir.example.org".into(),
            ],
            ..AuthConfig::default()
        };
        let both = vec![
            "https://fhir.example.org".to_owned(),
            "http://fhir.ns1.svc.cluster.local:8080".to_owned(),
        ];
        // The base URL first, and not twice.
        assert_eq!(
            audiences(&auth, Some("https://fhir.example.org")),
            [
                ("https://login.example/t".into(), both.clone()),
                ("http://issuer".into(), both),
            ]
        );
        // The config names the field as the operator writes it.
        let yaml = "additionalAudiences: [http://fhir.ns1.svc.cluster.local:8080]\n";
        let parsed: AuthConfig = serde_yaml::from_str(yaml).unwrap();
        assert_eq!(
            parsed.additional_audiences,
            ["http://fhir.ns1.svc.cluster.local:8080"]
        );
    }
}
