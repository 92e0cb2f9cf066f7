//! Tokens already verified, so that a client presenting the same token again costs a map lookup
//! instead of a signature check (an ES256 or RS256 verification costs more than serving a
//! read). An entry lives until the token's `exp` (plus leeway) or [`MAX_AGE`], whichever comes
//! first, so a key the authority withdraws stops being honoured within [`MAX_AGE`]; the cache
//! holds at most [`CAPACITY`] tokens and drops expired entries, then everything, when full.

use std::collections::HashMap;
use std::sync::RwLock;

use crate::Principal;

pub const MAX_AGE: u64 = 300;
pub const CAPACITY: usize = 10_000;

struct Entry {
    principal: Principal,
    /// Unix seconds: usable from, and until.
    from: u64,
    until: u64,
}

#[derive(Default)]
pub struct VerifiedTokens {
    // Keyed by the whole token: a digest would be smaller, but a collision would admit a forgery.
    map: RwLock<HashMap<Box<str>, Entry>>,
}

impl VerifiedTokens {
    /// The caller of a token verified earlier and still within its validity at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let e = map.get(token)?;
        (e.from <= now && now <= e.until).then(|| e.principal.clone())
    }

    /// Remembers a verified token; `from`/`until` already include the leeway.
    pub fn insert(&self, token: &str, principal: &Principal, from: u64, until: u64, now: u64) {
        let until = until.min(now + MAX_AGE);
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY {
            map.retain(|_, e| e.until >= now);
            if map.len() >= CAPACITY {
                map.clear();
            }
        }
        map.insert(
            token.into(),
            Entry {
                principal: principal.clone(),
                from,
                until,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_honour_validity_max_age_and_capacity() {
        let c = VerifiedTokens::default();
        let p = Principal {
            issuer: "i".into(),
            ..Default::default()
        };
        c.insert("t", &p, 100, 10_000, 100);
        assert_eq!(c.get("t", 100), Some(p.clone()));
        assert_eq!(c.get("t", 99), None, "not yet valid");
        assert_eq!(c.get("t", 100 + MAX_AGE + 1), None, "older than MAX_AGE");
        assert_eq!(c.get("other", 100), None);
        c.insert("short", &p, 0, 150, 100);
        assert_eq!(c.get("short", 151), None, "expired");
        for i in 0..CAPACITY + 5 {
            c.insert(&format!("k{i}"), &p, 0, 1_000, 100);
        }
        assert!(c.map.read().unwrap().len() <= CAPACITY);
    }
}
