//! Test support for services that check tokens (enabled by the `testing` feature): signing
//! keys, an OpenID authority on loopback that publishes them, and signed tokens.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use p256::ecdsa::SigningKey;
use p256::pkcs8::EncodePrivateKey;
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{Value, json};

/// A signing key with its JWK.
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    pub jwk: Value,
}

pub fn ec_key(kid: &str) -> TestKey {
    let sk = SigningKey::random(&mut rand::thread_rng());
    let point = sk.verifying_key().to_encoded_point(false);
    let der = sk.to_pkcs8_der().expect("a fresh key encodes");
    TestKey {
        kid: kid.into(),
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(der.as_bytes()),
        jwk: json!({"kty": "EC", "crv": "P-256", "use": "sig", "kid": kid, "alg": "ES256",
                    "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
                    "y": URL_SAFE_NO_PAD.encode(point.y().unwrap())}),
    }
}

pub fn rsa_key(kid: &str, alg: Algorithm) -> TestKey {
    let sk = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let der = sk.to_pkcs1_der().expect("a fresh key encodes");
    TestKey {
        kid: kid.into(),
        alg,
        encoding: EncodingKey::from_rsa_der(der.as_bytes()),
        jwk: json!({"kty": "RSA", "use": "sig", "kid": kid,
                    "n": URL_SAFE_NO_PAD.encode(sk.n().to_bytes_be()),
                    "e": URL_SAFE_NO_PAD.encode(sk.e().to_bytes_be())}),
    }
}

/// An OpenID authority on loopback: a discovery document and a JWKS the test controls.
#[derive(Clone)]
pub struct Authority {
    pub issuer: String,
    pub jwks: Arc<Mutex<Vec<Value>>>,
    /// How often the JWKS was fetched.
    pub fetches: Arc<Mutex<usize>>,
}

pub async fn start_authority() -> Authority {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}/tenant", listener.local_addr().unwrap());
    let a = Authority {
        issuer: issuer.clone(),
        jwks: Arc::default(),
        fetches: Arc::default(),
    };
    let app = Router::new()
        .route(
            "/tenant/.well-known/openid-configuration",
            get(|State(a): State<Authority>| async move {
                Json(json!({"issuer": a.issuer, "jwks_uri": format!("{}/keys", a.issuer)}))
            }),
        )
        .route(
            "/tenant/keys",
            get(|State(a): State<Authority>| async move {
                *a.fetches.lock().unwrap() += 1;
                Json(json!({"keys": a.jwks.lock().unwrap().clone()}))
            }),
        )
        .with_state(a.clone());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    a
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn sign(key: &TestKey, claims: &Value) -> String {
    let mut h = Header::new(key.alg);
    h.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&h, claims, &key.encoding).unwrap()
}
