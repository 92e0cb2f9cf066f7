//! An authority's signing keys: found through its OpenID discovery document (`jwks_uri`),
//! cached by `kid`, fetched again when a token names a key the cache does not hold (rotation)
//! and when the cache is older than [`MAX_AGE`] (revocation). Refetches on unknown keys are
//! spaced by [`MIN_REFETCH`], so a flood of tokens with made-up `kid`s cannot turn into a flood
//! of requests to the authority.

use std::time::{Duration, Instant};

use jsonwebtoken::DecodingKey;
use jsonwebtoken::jwk::JwkSet;
use serde::Deserialize;
use tokio::sync::{Mutex, RwLock};

pub const MAX_AGE: Duration = Duration::from_secs(3600);
pub const MIN_REFETCH: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the authority's keys could not be fetched: {0}")]
    Unavailable(String),
    #[error("no signing key with kid '{0}' at the authority")]
    UnknownKid(String),
    #[error("the token names no kid and the authority has {0} signing keys")]
    Ambiguous(usize),
}

#[derive(Deserialize)]
struct Discovery {
    jwks_uri: String,
}

/// A usable signing key and the `kid` it is published under.
#[derive(Clone)]
struct Key {
    kid: Option<String>,
    key: DecodingKey,
}

#[derive(Default)]
struct Cache {
    jwks_uri: Option<String>,
    keys: Vec<Key>,
    fetched: Option<Instant>,
}

pub struct KeySet {
    issuer: String,
    http: reqwest::Client,
    cache: RwLock<Cache>,
    /// One fetch at a time; requests that arrive meanwhile wait for its result.
    fetching: Mutex<()>,
}

impl KeySet {
    pub fn new(issuer: &str, http: reqwest::Client) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            http,
            cache: RwLock::new(Cache::default()),
            fetching: Mutex::new(()),
        }
    }

    /// The key a token with `kid` (or none) was signed with.
    pub async fn key(&self, kid: Option<&str>) -> Result<DecodingKey, KeyError> {
        {
            let cache = self.cache.read().await;
            let fresh = cache.fetched.is_some_and(|t| t.elapsed() <= MAX_AGE);
            if fresh && let Ok(k) = find(&cache.keys, kid) {
                return Ok(k);
            }
        }
        let _one_fetch = self.fetching.lock().await;
        let (jwks_uri, due) = {
            let cache = self.cache.read().await;
            let stale = cache.fetched.is_none_or(|t| t.elapsed() > MAX_AGE);
            let may_refetch = cache.fetched.is_none_or(|t| t.elapsed() > MIN_REFETCH);
            let missing = find(&cache.keys, kid).is_err();
            (cache.jwks_uri.clone(), stale || (missing && may_refetch))
        };
        if due {
            let fetched = self.fetch(jwks_uri).await;
            let mut cache = self.cache.write().await;
            // Count the attempt, so an unreachable authority is not asked on every request.
            cache.fetched = Some(Instant::now());
            match fetched {
                Ok((uri, keys)) => {
                    cache.jwks_uri = Some(uri);
                    cache.keys = keys;
                }
                // Keys already held still verify while the authority is unreachable.
                Err(e) if cache.keys.is_empty() => return Err(e),
                Err(e) => tracing::warn!(issuer = %self.issuer, "keeping cached keys: {e}"),
            }
        }
        find(&self.cache.read().await.keys, kid)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, KeyError> {
        let unavailable = |e: reqwest::Error| KeyError::Unavailable(e.to_string());
        self.http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?
            .json()
            .await
            .map_err(unavailable)
    }

    async fn fetch(&self, jwks_uri: Option<String>) -> Result<(String, Vec<Key>), KeyError> {
        let uri = match jwks_uri {
            Some(u) => u,
            None => {
                let url = format!("{}/.well-known/openid-configuration", self.issuer);
                self.get_json::<Discovery>(&url).await?.jwks_uri
            }
        };
        let set: JwkSet = self.get_json(&uri).await?;
        let keys = set
            .keys
            .iter()
            // Signature keys only: `use` absent or `sig`.
            .filter(|k| {
                k.common
                    .public_key_use
                    .as_ref()
                    .is_none_or(|u| matches!(u, jsonwebtoken::jwk::PublicKeyUse::Signature))
            })
            .filter_map(|k| match DecodingKey::from_jwk(k) {
                Ok(key) => Some(Key {
                    kid: k.common.key_id.clone(),
                    key,
                }),
                Err(e) => {
                    tracing::warn!(issuer = %self.issuer, "skipping an unusable JWKS key: {e}");
                    None
                }
            })
            .collect();
        Ok((uri, keys))
    }
}

fn find(keys: &[Key], kid: Option<&str>) -> Result<DecodingKey, KeyError> {
    match kid {
        Some(kid) => keys
            .iter()
            .find(|k| k.kid.as_deref() == Some(kid))
            .map(|k| k.key.clone())
            .ok_or_else(|| KeyError::UnknownKid(kid.to_owned())),
        None => match keys {
            [one] => Ok(one.key.clone()),
            _ => Err(KeyError::Ambiguous(keys.len())),
        },
    }
}
