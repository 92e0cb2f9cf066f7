//! Bearer tokens at the FHIR API: a loopback OpenID authority signs tokens with Azure's data
//! roles, and every endpoint answers 401 (no valid token), 403 (roles without its data action)
//! or goes through, as the matrix says.

mod common;

use common::*;
use hds_auth::testing::{ec_key, now, sign};
use reqwest::Method;
use serde_json::{Value, json};

type Setup = Secured;

async fn setup() -> Setup {
    start_secured(|_| {}).await
}

impl Setup {
    fn token(&self, roles: &[&str]) -> String {
        sign(
            &self.key,
            &json!({"iss": self.a.issuer, "aud": AUD, "sub": "u", "exp": now() + 300,
                    "iat": now(), "roles": roles}),
        )
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> u16 {
        let mut r = self.s.http.request(method, self.s.url(path));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        if let Some(b) = body {
            r = r.header("content-type", FHIR_JSON).body(b.to_string());
        }
        r.send().await.unwrap().status().as_u16()
    }
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Auth"}]})
}

fn search_parameter() -> Value {
    json!({"resourceType": "SearchParameter", "id": "sp1",
           "url": "http://example.org/sp/nickname", "name": "nickname", "status": "active",
           "description": "d", "code": "nickname", "base": ["Patient"], "type": "string",
           "expression": "Patient.name.given"})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_grant_exactly_their_data_actions() {
    let t = setup().await;
    let contributor = t.token(&["FHIR Data Contributor"]);
    assert_eq!(
        t.call(
            Method::PUT,
            "Patient/p1",
            Some(&contributor),
            Some(&patient())
        )
        .await,
        201
    );
    // (role, read, write, delete, reindex, write a SearchParameter)
    let matrix: &[(&[&str], [bool; 5])] = &[
        (&["FHIR Data Reader"], [true, false, false, false, false]),
        (&["FHIR Data Writer"], [true, true, true, false, false]),
        (&["FHIR Data Contributor"], [true, true, true, true, true]),
        (&["FHIR Data Exporter"], [true, false, false, false, false]),
        (&["FHIR Data Importer"], [true, false, false, false, false]),
        (
            &["FHIR Data Converter"],
            [false, false, false, false, false],
        ),
        (&["FHIR SMART User"], [false, false, false, false, false]),
        (&["DICOM Data Owner"], [false, false, false, false, false]),
        (
            &["fhir-data-reader", "fhir-data-writer"],
            [true, true, true, false, false],
        ),
        (&[], [false, false, false, false, false]),
    ];
    for (roles, allowed) in matrix {
        let tok = t.token(roles);
        let ok = |status: u16| status != 403;
        let got = [
            ok(t.call(Method::GET, "Patient/p1", Some(&tok), None).await),
            ok(
                t.call(Method::PUT, "Patient/p1", Some(&tok), Some(&patient()))
                    .await,
            ),
            ok(t.call(Method::DELETE, "Patient/gone", Some(&tok), None)
                .await),
            ok(
                t.call(Method::GET, "_operations/reindex/none", Some(&tok), None)
                    .await,
            ),
            ok(t.call(
                Method::PUT,
                "SearchParameter/sp1",
                Some(&tok),
                Some(&search_parameter()),
            )
            .await),
        ];
        assert_eq!(&got, allowed, "{roles:?}");
    }
    // A 403 says which action was missing, as an OperationOutcome.
    let r =
        t.s.http
            .post(t.s.url("Patient"))
            .bearer_auth(t.token(&["FHIR Data Reader"]))
            .header("content-type", FHIR_JSON)
            .body(patient().to_string())
            .send()
            .await
            .unwrap();
    let o = outcome(r, 403).await;
    assert!(o.to_string().contains("'write'"), "{o}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_get_401_with_a_bearer_challenge() {
    let t = setup().await;
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({"iss": t.a.issuer, "aud": AUD, "exp": now() + 300, "iat": now(),
                           "roles": ["FHIR Data Contributor"]});
        f(&mut c);
        c
    };
    let faults: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "invalid_request"),
        (
            "expired",
            Some(sign(&t.key, &claims(&|c| c["exp"] = json!(now() - 600)))),
            "invalid_token",
        ),
        (
            "not yet valid",
            Some(sign(&t.key, &claims(&|c| c["nbf"] = json!(now() + 600)))),
            "invalid_token",
        ),
        (
            "wrong audience",
            Some(sign(
                &t.key,
                &claims(&|c| c["aud"] = json!("https://other")),
            )),
            "invalid_token",
        ),
        (
            "wrong issuer",
            Some(sign(&t.key, &claims(&|c| c["iss"] = json!("https://evil")))),
            "invalid_token",
        ),
        (
            "unknown key",
            Some(sign(&ec_key("k2"), &claims(&|_| {}))),
            "invalid_token",
        ),
        ("garbage", Some("not-a-token".into()), "invalid_token"),
    ];
    for (name, token, code) in faults {
        let mut r = t.s.http.get(t.s.url("Patient"));
        if let Some(tok) = &token {
            r = r.bearer_auth(tok);
        }
        let r = r.send().await.unwrap();
        let challenge = header(&r, "www-authenticate");
        assert!(
            challenge.starts_with(&format!("Bearer error=\"{code}\"")),
            "{name}: {challenge}"
        );
        assert!(
            challenge.contains("error_description="),
            "{name}: {challenge}"
        );
        outcome(r, 401).await;
    }
    // A malformed Authorization header.
    let r =
        t.s.http
            .get(t.s.url("Patient"))
            .header("authorization", "Basic dXNlcjpwdw==")
            .send()
            .await
            .unwrap();
    assert!(header(&r, "www-authenticate").contains("invalid_request"));
    outcome(r, 401).await;
    // The CapabilityStatement needs no token.
    assert_eq!(t.call(Method::GET, "metadata", None, None).await, 200);
}

/// Every route the router serves is in the access table: a Contributor (all FHIR actions) is
/// never refused with 403 by any of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_declares_its_action() {
    let t = setup().await;
    let tok = t.token(&["FHIR Data Contributor"]);
    for (method, route, _) in hds_fhir_server::access::ENDPOINTS {
        let path = route
            .replace("{type}", "Patient")
            .replace("{comp}", "Patient")
            .replace("{id}", "p1")
            .replace("{vid}", "1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let status = t
            .call(
                method.clone(),
                path.trim_start_matches('/'),
                Some(&tok),
                Some(&patient()),
            )
            .await;
        assert_ne!(status, 403, "{method} {route}");
        assert_ne!(status, 401, "{method} {route}");
    }
}

/// Azure's `smartIdentityProviders`: an outside authority admitted only for its registered
/// applications, each for its audience, acting by its allowed data actions and its scopes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smart_identity_providers_admit_registered_applications_only() {
    use hds_common::config::{SmartApplicationConfig, SmartIdentityProviderConfig};
    let provider = hds_auth::testing::start_authority().await;
    let provider_key = ec_key("p1");
    *provider.jwks.lock().unwrap() = vec![provider_key.jwk.clone()];
    let authority = provider.issuer.clone();
    let t = start_secured(move |cfg| {
        cfg.auth.smart_identity_providers = vec![SmartIdentityProviderConfig {
            authority,
            applications: vec![SmartApplicationConfig {
                client_id: "smart-app".into(),
                audience: AUD.into(),
                allowed_data_actions: vec!["Read".into()],
            }],
        }];
    })
    .await;
    let admin = t.token(&["FHIR Data Contributor"]);
    assert_eq!(
        t.call(Method::PUT, "Patient/p1", Some(&admin), Some(&patient()))
            .await,
        201
    );
    let app_token = |azp: &str, aud: &str, scope: Option<&str>| {
        let mut c = json!({"iss": provider.issuer, "aud": aud, "sub": "user-7", "azp": azp,
                           "exp": now() + 300, "iat": now()});
        if let Some(s) = scope {
            c["scope"] = json!(s);
        }
        sign(&provider_key, &c)
    };
    let read = app_token("smart-app", AUD, Some("system/Patient.read"));
    assert_eq!(
        t.call(Method::GET, "Patient/p1", Some(&read), None).await,
        200
    );
    // Scopes narrow it: no Observations.
    assert_eq!(
        t.call(Method::GET, "Observation", Some(&read), None).await,
        403
    );
    // Read is all the application is allowed, whatever its scopes say.
    let write = app_token("smart-app", AUD, Some("system/Patient.cruds"));
    assert_eq!(
        t.call(Method::PUT, "Patient/p1", Some(&write), Some(&patient()))
            .await,
        403
    );
    // Without SMART scopes it may do nothing.
    let bare = app_token("smart-app", AUD, None);
    assert_eq!(
        t.call(Method::GET, "Patient/p1", Some(&bare), None).await,
        403
    );
    // Another application of the same provider, or another audience, is not admitted at all.
    let other_app = app_token("other-app", AUD, Some("system/Patient.read"));
    assert_eq!(
        t.call(Method::GET, "Patient/p1", Some(&other_app), None)
            .await,
        401
    );
    let other_aud = app_token(
        "smart-app",
        "https://elsewhere",
        Some("system/Patient.read"),
    );
    assert_eq!(
        t.call(Method::GET, "Patient/p1", Some(&other_aud), None)
            .await,
        401
    );
    // Roles in a provider's token count for nothing.
    let mut c = json!({"iss": provider.issuer, "aud": AUD, "azp": "smart-app", "exp": now() + 300,
                       "roles": ["FHIR Data Contributor"]});
    c["scope"] = json!("system/Patient.read");
    let with_roles = sign(&provider_key, &c);
    assert_eq!(
        t.call(
            Method::PUT,
            "Patient/p1",
            Some(&with_roles),
            Some(&patient())
        )
        .await,
        403
    );
}
