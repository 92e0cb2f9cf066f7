//! The access matrix of the issue: every endpoint × every built-in role, representative SMART
//! scopes, and every token fault, each giving the expected 401, 403 or admission. The expected
//! grants are written out here, from Azure's role definitions, rather than computed by the code
//! under test.

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use hds_auth::testing::{ec_key, now, sign};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};

/// Azure's built-in roles and the FHIR data actions each grants (DICOM roles grant none here).
const ROLES: &[(&str, &[&str])] = &[
    ("FHIR Data Reader", &["read"]),
    ("FHIR Data Writer", &["read", "write", "delete"]),
    (
        "FHIR Data Contributor",
        &[
            "read",
            "write",
            "delete",
            "hardDelete",
            "export",
            "import",
            "convertData",
            "resourceValidate",
            "reindex",
            "searchParameter",
            "smart",
        ],
    ),
    ("FHIR Data Exporter", &["read", "export"]),
    ("FHIR Data Importer", &["read", "import"]),
    ("FHIR Data Converter", &["convertData"]),
    // Only through SMART scopes, and this token has none.
    ("FHIR SMART User", &[]),
    ("DICOM Data Owner", &[]),
    ("DICOM Data Reader", &[]),
];

type Setup = Secured;

async fn setup() -> Setup {
    let setup = start_secured(|cfg| {
        cfg.audit.log = "off".into();
        // Off by default (then a 400 for everyone): here the roles are what is judged.
        cfg.import.enabled = true;
    })
    .await;
    // Something to read, so that admitted reads are not told apart from refusals by a 404 alone.
    let admin = setup.token(&["FHIR Data Contributor"], None);
    let r = setup
        .s
        .http
        .put(setup.s.url("Patient/p1"))
        .bearer_auth(admin)
        .header("content-type", FHIR_JSON)
        .body(patient().to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    setup
}

impl Setup {
    fn claims(&self, roles: &[&str], scope: Option<&str>) -> Value {
        let mut c = json!({"iss": self.a.issuer, "aud": AUD, "sub": "u", "exp": now() + 300,
                           "iat": now(), "roles": roles});
        if let Some(s) = scope {
            c["scope"] = json!(s);
        }
        c
    }

    fn token(&self, roles: &[&str], scope: Option<&str>) -> String {
        sign(&self.key, &self.claims(roles, scope))
    }

    async fn status(&self, method: &str, path: &str, auth: Option<String>) -> u16 {
        let mut r = self.s.http.request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            self.s.url(path),
        );
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        if matches!(method, "POST" | "PUT" | "PATCH") {
            r = r
                .header("content-type", FHIR_JSON)
                .body(patient().to_string());
        }
        r.send().await.unwrap().status().as_u16()
    }
}

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1", "name": [{"family": "Matrix"}]})
}

/// Each declared endpoint with a concrete path on Patient.
fn endpoints() -> Vec<(&'static str, String, &'static str)> {
    hds_fhir_server::access::ENDPOINTS
        .iter()
        .map(|(m, route, action)| {
            let path = route
                .replace("{type}", "Patient")
                .replace("{comp}", "Patient")
                .replace("{id}", "p1")
                .replace("{vid}", "1");
            (*m, path.trim_start_matches('/').to_owned(), action.as_str())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_times_every_role() {
    let t = setup().await;
    for (role, grants) in ROLES {
        let token = t.token(&[role], None);
        for (method, path, action) in endpoints() {
            // Deleting the seed patient would change what later cells see.
            if method == "DELETE" && path == "Patient/p1" && grants.contains(&"delete") {
                continue;
            }
            let got = t
                .status(method, &path, Some(format!("Bearer {token}")))
                .await;
            if grants.contains(&action) {
                assert!(
                    got != 401 && got != 403,
                    "{role}: {method} /{path} ({action}) was refused with {got}"
                );
            } else {
                assert_eq!(got, 403, "{role}: {method} /{path} ({action})");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn representative_smart_scopes_narrow_what_roles_grant() {
    let t = setup().await;
    // (roles, scope, method, path, admitted)
    let cases: &[(&str, &str, &str, &str, bool)] = &[
        (
            "FHIR SMART User",
            "system/Patient.read",
            "GET",
            "Patient/p1",
            true,
        ),
        (
            "FHIR SMART User",
            "system/Patient.read",
            "GET",
            "Patient",
            true,
        ),
        (
            "FHIR SMART User",
            "system/Patient.read",
            "PUT",
            "Patient/p1",
            false,
        ),
        (
            "FHIR SMART User",
            "system/Patient.read",
            "GET",
            "Observation",
            false,
        ),
        (
            "FHIR SMART User",
            "system/Patient.rs",
            "GET",
            "Patient/p1/_history",
            true,
        ),
        (
            "FHIR SMART User",
            "system/Patient.r",
            "GET",
            "Patient",
            false,
        ),
        (
            "FHIR SMART User",
            "system/Patient.cruds",
            "PUT",
            "Patient/p1",
            true,
        ),
        (
            "FHIR SMART User",
            "system/*.read",
            "GET",
            "Observation",
            true,
        ),
        (
            "FHIR SMART User",
            "system/*.read",
            "POST",
            "$reindex",
            false,
        ),
        (
            "FHIR SMART User",
            "user/Patient.write",
            "GET",
            "Patient/p1",
            false,
        ),
        (
            "FHIR Data Contributor",
            "system/Patient.read",
            "PUT",
            "Patient/p1",
            false,
        ),
        (
            "FHIR Data Contributor",
            "system/Patient.read",
            "POST",
            "$reindex",
            false,
        ),
        ("FHIR Data Reader", "system/*.*", "PUT", "Patient/p1", false),
        (
            "FHIR Data Reader",
            "openid fhirUser",
            "GET",
            "Patient/p1",
            true,
        ),
        (
            "FHIR Data Reader",
            "openid fhirUser",
            "PUT",
            "Patient/p1",
            false,
        ),
        ("FHIR SMART User", "openid", "GET", "Patient/p1", false),
        // A patient scope without a patient claim.
        (
            "FHIR SMART User",
            "patient/Patient.read",
            "GET",
            "Patient/p1",
            false,
        ),
    ];
    for (role, scope, method, path, admitted) in cases {
        let got = t
            .status(
                method,
                path,
                Some(format!("Bearer {}", t.token(&[role], Some(scope)))),
            )
            .await;
        if *admitted {
            assert!(
                got != 401 && got != 403 && got != 404,
                "{role} / {scope}: {method} /{path} got {got}"
            );
        } else {
            assert!(
                got == 403 || got == 404,
                "{role} / {scope}: {method} /{path} got {got}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_fault_on_every_endpoint_is_401() {
    let t = setup().await;
    let good = t.claims(&["FHIR Data Contributor"], None);
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        c
    };
    let unsigned = |claims: &Value| {
        let h = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(claims.to_string());
        format!("{h}.{p}.")
    };
    // The right kid, the wrong key: a forged signature.
    let mut forger = ec_key("k1");
    forger.kid = "k1".into();
    let hs256 = {
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some("k1".into());
        jsonwebtoken::encode(&h, &good, &EncodingKey::from_secret(b"public-knowledge")).unwrap()
    };
    let faults: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        (
            "expired",
            Some(format!(
                "Bearer {}",
                sign(&t.key, &with(&|c| c["exp"] = json!(now() - 600)))
            )),
        ),
        (
            "not yet valid",
            Some(format!(
                "Bearer {}",
                sign(&t.key, &with(&|c| c["nbf"] = json!(now() + 600)))
            )),
        ),
        (
            "wrong aud",
            Some(format!(
                "Bearer {}",
                sign(&t.key, &with(&|c| c["aud"] = json!("https://other")))
            )),
        ),
        (
            "wrong iss",
            Some(format!(
                "Bearer {}",
                sign(&t.key, &with(&|c| c["iss"] = json!("https://evil")))
            )),
        ),
        (
            "bad signature",
            Some(format!("Bearer {}", sign(&forger, &good))),
        ),
        ("alg none", Some(format!("Bearer {}", unsigned(&good)))),
        ("symmetric", Some(format!("Bearer {hs256}"))),
        (
            "unknown kid",
            Some(format!("Bearer {}", sign(&ec_key("k9"), &good))),
        ),
        (
            "malformed header",
            Some(format!("Token {}", sign(&t.key, &good))),
        ),
        ("empty bearer", Some("Bearer ".into())),
    ];
    for (method, path, action) in endpoints() {
        for (fault, auth) in &faults {
            let got = t.status(method, &path, auth.clone()).await;
            assert_eq!(got, 401, "{fault}: {method} /{path} ({action})");
        }
    }
    // And the good token is admitted, so the faults above are what was refused.
    assert_eq!(
        t.status(
            "GET",
            "Patient/p1",
            Some(format!("Bearer {}", sign(&t.key, &good)))
        )
        .await,
        200
    );
}

/// A batch needs only `read` to be posted; each entry then needs the data action of the request
/// it stands for, whatever the others need.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bundle_entries_need_their_own_data_actions() {
    let t = setup().await;
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"request": {"method": "GET", "url": "Patient/p1"}},
        {"resource": patient(), "request": {"method": "PUT", "url": "Patient/p1"}},
        {"request": {"method": "DELETE", "url": "Patient/nobody"}},
    ]});
    for (role, grants) in ROLES {
        let r =
            t.s.http
                .post(t.s.url(""))
                .bearer_auth(t.token(&[role], None))
                .header("content-type", FHIR_JSON)
                .body(batch.to_string())
                .send()
                .await
                .unwrap();
        if !grants.contains(&"read") {
            assert_eq!(r.status(), 403, "{role}");
            continue;
        }
        assert_eq!(r.status(), 200, "{role}");
        let b: Value = r.json().await.unwrap();
        let got: Vec<&str> = b["entry"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["response"]["status"].as_str().unwrap())
            .collect();
        let want = |action: &str, ok: &'static str| {
            if grants.contains(&action) {
                ok
            } else {
                "403 Forbidden"
            }
        };
        assert_eq!(
            got,
            [
                want("read", "200 OK"),
                want("write", "200 OK"),
                want("delete", "204 No Content")
            ],
            "{role}: {b}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_for_good_needs_hard_delete() {
    let t = setup().await;
    let writer = format!("Bearer {}", t.token(&["FHIR Data Writer"], None));
    let contributor = format!("Bearer {}", t.token(&["FHIR Data Contributor"], None));
    for flag in ["_hardDelete=true", "_purgeHistory=true"] {
        let path = format!("Patient/$bulk-delete?{flag}");
        assert_eq!(t.status("DELETE", &path, Some(writer.clone())).await, 403);
        // Past authorization, it asks for Prefer: respond-async.
        assert_eq!(
            t.status("DELETE", &path, Some(contributor.clone())).await,
            400
        );
    }
    assert_eq!(
        t.status(
            "DELETE",
            "Patient/$bulk-delete?_hardDelete=false",
            Some(writer)
        )
        .await,
        400
    );
}
