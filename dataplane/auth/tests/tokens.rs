//! Token validation against a real HTTP authority on loopback (discovery document and JWKS
//! served by axum), with keys made here: every fault a token can have, key rotation, and the
//! claim shapes of Entra ID and Keycloak.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hds_auth::testing::{Authority, TestKey, ec_key, now, rsa_key, sign, start_authority};
use hds_auth::{AuthError, AuthorityConfig, Validator, ValidatorConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

fn claims(iss: &str) -> Value {
    json!({"iss": iss, "aud": "https://fhir.example", "sub": "user-1", "azp": "app-1",
           "exp": now() + 300, "iat": now(), "nbf": now() - 5,
           "roles": ["FHIR Data Reader"], "scp": "user/*.read"})
}

fn validator(a: &Authority, roles_claim: &str) -> Validator {
    Validator::new(ValidatorConfig {
        authorities: vec![AuthorityConfig {
            issuer: a.issuer.clone(),
            audiences: vec!["https://fhir.example".into()],
            roles_claim: roles_claim.into(),
            applications: vec![],
        }],
        leeway: Duration::from_secs(30),
    })
}

fn invalid(r: Result<hds_auth::Principal, AuthError>, needle: &str) {
    match r {
        Err(AuthError::Invalid(m)) => assert!(m.contains(needle), "{m} lacks {needle}"),
        other => panic!("expected an invalid token ({needle}), got {other:?}"),
    }
}

#[tokio::test]
async fn accepts_rs256_es256_and_ps256_and_reads_the_caller() {
    let a = start_authority().await;
    let keys = [
        ec_key("ec"),
        rsa_key("rs", Algorithm::RS256),
        rsa_key("ps", Algorithm::PS256),
    ];
    *a.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    let v = validator(&a, "roles");
    for k in &keys {
        let p = v
            .authorize_header(Some(&format!("Bearer {}", sign(k, &claims(&a.issuer)))))
            .await
            .unwrap_or_else(|e| panic!("{:?}: {e}", k.alg));
        assert_eq!(p.subject.as_deref(), Some("user-1"));
        assert_eq!(p.client_id.as_deref(), Some("app-1"));
        assert_eq!(p.roles, ["FHIR Data Reader"]);
        assert_eq!(p.scopes, ["user/*.read"]);
    }
    // The JWKS was fetched once and served every key from the cache afterwards.
    assert_eq!(*a.fetches.lock().unwrap(), 1);
}

#[tokio::test]
async fn every_token_fault_is_refused_with_its_reason() {
    let a = start_authority().await;
    let key = ec_key("k1");
    *a.jwks.lock().unwrap() = vec![key.jwk.clone()];
    let v = validator(&a, "roles");
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims(&a.issuer);
        f(&mut c);
        sign(&key, &c)
    };
    let check = |t: String| {
        let v = v.clone();
        async move { v.validate(&t).await }
    };
    invalid(
        check(with(&|c| c["exp"] = json!(now() - 120))).await,
        "expired",
    );
    invalid(
        check(with(&|c| c["nbf"] = json!(now() + 600))).await,
        "not valid yet",
    );
    invalid(
        check(with(&|c| c["iat"] = json!(now() + 600))).await,
        "issued in the future",
    );
    invalid(
        check(with(&|c| c["aud"] = json!("https://other"))).await,
        "aud",
    );
    invalid(
        check(with(&|c| c["iss"] = json!("https://evil.example"))).await,
        "not trusted",
    );
    invalid(
        check(with(&|c| {
            c.as_object_mut().unwrap().remove("exp");
        }))
        .await,
        "exp",
    );
    // Within the leeway an expired token still passes.
    assert!(check(with(&|c| c["exp"] = json!(now() - 10))).await.is_ok());

    // A bad signature: the payload changed after signing.
    let good = with(&|_| {});
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut c = claims(&a.issuer);
    c["roles"] = json!(["FHIR Data Contributor"]);
    parts[1] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&c).unwrap());
    invalid(check(parts.join(".")).await, "signature");

    // Signed by a key the authority does not publish, under a kid it does not know.
    let stranger = ec_key("stranger");
    invalid(
        check(sign(&stranger, &claims(&a.issuer))).await,
        "kid 'stranger'",
    );
    // ...or under the known kid.
    let impostor = TestKey {
        kid: "k1".into(),
        ..ec_key("x")
    };
    invalid(
        check(sign(&impostor, &claims(&a.issuer))).await,
        "signature",
    );

    // `alg: none` and a symmetric algorithm keyed with the public key.
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(&a.issuer))
    );
    invalid(check(none).await, "accepted algorithm");
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k1".into());
    let hs = jsonwebtoken::encode(
        &h,
        &claims(&a.issuer),
        &EncodingKey::from_secret(key.jwk.to_string().as_bytes()),
    )
    .unwrap();
    invalid(check(hs).await, "HS256");

    // The header itself.
    assert_eq!(v.authorize_header(None).await, Err(AuthError::Missing));
    for bad in ["Basic dXNlcjpwdw==", "Bearer", "Bearer ", "token"] {
        assert_eq!(
            v.authorize_header(Some(bad)).await,
            Err(AuthError::Malformed),
            "{bad}"
        );
    }
    invalid(
        v.authorize_header(Some("Bearer not.a.jwt")).await,
        "not a JWT",
    );
}

#[tokio::test]
async fn rotated_keys_are_fetched_and_unknown_kids_do_not_flood_the_authority() {
    let a = start_authority().await;
    let old = ec_key("old");
    *a.jwks.lock().unwrap() = vec![old.jwk.clone()];
    let v = validator(&a, "roles");
    v.validate(&sign(&old, &claims(&a.issuer))).await.unwrap();
    assert_eq!(*a.fetches.lock().unwrap(), 1);

    // Unknown kids within the refetch interval: refused without asking the authority again.
    for i in 0..20 {
        let k = ec_key(&format!("made-up-{i}"));
        assert!(v.validate(&sign(&k, &claims(&a.issuer))).await.is_err());
    }
    assert_eq!(*a.fetches.lock().unwrap(), 1);

    // Rotation: after the interval, a token with the new kid triggers one fetch and passes.
    let new = ec_key("new");
    *a.jwks.lock().unwrap() = vec![old.jwk.clone(), new.jwk.clone()];
    tokio::time::sleep(hds_auth::jwks::MIN_REFETCH + Duration::from_millis(200)).await;
    v.validate(&sign(&new, &claims(&a.issuer))).await.unwrap();
    assert_eq!(*a.fetches.lock().unwrap(), 2);
    v.validate(&sign(&old, &claims(&a.issuer))).await.unwrap();
    assert_eq!(*a.fetches.lock().unwrap(), 2);
}

#[tokio::test]
async fn keycloak_roles_and_an_unreachable_authority() {
    let a = start_authority().await;
    let key = ec_key("k");
    *a.jwks.lock().unwrap() = vec![key.jwk.clone()];
    let v = validator(&a, "realm_access.roles");
    let mut c = claims(&a.issuer);
    c["realm_access"] = json!({"roles": ["fhir-data-writer"]});
    c["scope"] = json!("openid system/*.read");
    c.as_object_mut().unwrap().remove("scp");
    let p = v.validate(&sign(&key, &c)).await.unwrap();
    assert_eq!(p.roles, ["fhir-data-writer"]);
    assert_eq!(p.scopes, ["openid", "system/*.read"]);

    // Nobody listens at this issuer: the token cannot be checked, and says why.
    let gone = Validator::new(ValidatorConfig {
        authorities: vec![AuthorityConfig {
            issuer: "http://127.0.0.1:9/nobody".into(),
            audiences: vec![],
            roles_claim: "roles".into(),
            applications: vec![],
        }],
        leeway: Duration::from_secs(30),
    });
    let r = gone
        .validate(&sign(&key, &claims("http://127.0.0.1:9/nobody")))
        .await;
    assert!(matches!(r, Err(AuthError::Unavailable(_))), "{r:?}");
}

/// Verified tokens are remembered (the second use costs no signature check), but never past
/// their `exp`.
#[tokio::test]
async fn remembered_tokens_still_expire() {
    let a = start_authority().await;
    let key = ec_key("k1");
    *a.jwks.lock().unwrap() = vec![key.jwk.clone()];
    let v = Validator::new(ValidatorConfig {
        authorities: vec![AuthorityConfig {
            issuer: a.issuer.clone(),
            audiences: vec!["https://fhir.example".into()],
            roles_claim: "roles".into(),
            applications: vec![],
        }],
        leeway: Duration::from_secs(0),
    });
    let mut c = claims(&a.issuer);
    c["exp"] = json!(now() + 1);
    let token = sign(&key, &c);
    let first = v.validate(&token).await.unwrap();
    assert_eq!(v.validate(&token).await.unwrap(), first);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    invalid(v.validate(&token).await, "expired");
    // A tampered copy of a remembered token is not the remembered token.
    let fresh = sign(&key, &claims(&a.issuer));
    v.validate(&fresh).await.unwrap();
    // Flip a character inside the signature (not the last, whose low bits are padding).
    let mut chars: Vec<char> = fresh.chars().collect();
    let i = chars.len() - 10;
    chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
    let tampered: String = chars.into_iter().collect();
    assert!(v.validate(&tampered).await.is_err());
}
