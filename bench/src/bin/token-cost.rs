//! The CPU cost of checking a bearer token, per request, in isolation: the same `Validator` the
//! services use, against a loopback authority, for tokens signed with ES256, RS256 and PS256.
//! "first use" is a full check (header, claims, signature against the cached JWKS key); "again"
//! is a token the validator has verified before. Prints a Markdown table of microseconds per
//! check; `bench/auth.sh` runs it beside the HTTP comparison.

use std::time::{Duration, Instant};

use hds_auth::testing::{ec_key, now, rsa_key, sign, start_authority};
use hds_auth::{AuthorityConfig, Validator, ValidatorConfig};
use jsonwebtoken::Algorithm;
use serde_json::json;

const TOKENS: usize = 2000;
const REPEATS: usize = 50_000;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let a = start_authority().await;
    let keys = [
        ec_key("es256"),
        rsa_key("rs256", Algorithm::RS256),
        rsa_key("ps256", Algorithm::PS256),
    ];
    *a.jwks.lock().unwrap() = keys.iter().map(|k| k.jwk.clone()).collect();
    println!("| algorithm | first use µs/token | again µs/token |");
    println!("|---|---:|---:|");
    for key in &keys {
        let v = Validator::new(ValidatorConfig {
            authorities: vec![AuthorityConfig {
                issuer: a.issuer.clone(),
                audiences: vec!["https://fhir.bench".into()],
                roles_claim: "roles".into(),
                applications: vec![],
            }],
            leeway: Duration::from_secs(60),
        });
        // Distinct tokens (a jti each), as many clients would present.
        let tokens: Vec<String> = (0..TOKENS)
            .map(|i| {
                sign(
                    key,
                    &json!({"iss": a.issuer, "aud": "https://fhir.bench", "sub": format!("c{i}"),
                            "client_id": format!("c{i}"), "exp": now() + 3600, "iat": now(),
                            "jti": i, "roles": ["FHIR Data Reader"], "scope": "system/Patient.rs"}),
                )
            })
            .collect();
        // Warm the JWKS cache.
        v.validate(&tokens[0]).await?;
        let start = Instant::now();
        for t in &tokens[1..] {
            v.validate(t).await?;
        }
        let first = start.elapsed().as_secs_f64() * 1e6 / (TOKENS - 1) as f64;
        let start = Instant::now();
        for i in 0..REPEATS {
            v.validate(&tokens[i % TOKENS]).await?;
        }
        let again = start.elapsed().as_secs_f64() * 1e6 / REPEATS as f64;
        println!("| {:?} | {first:.1} | {again:.2} |", key.alg);
    }
    Ok(())
}
