//! Conditional interactions match on search criteria, then act on what matched. The match and
//! the write share one transaction, and an advisory lock on the criteria keeps two identical
//! conditional requests from both seeing "no match" and both creating.

use hds_fhir_search::{Query, Registry};
use hds_fhir_store::Transaction;

use crate::error::FhirError;
use crate::http::query_pairs;

/// Criteria from a query string or an If-None-Exist header (which may carry `Type?` in front).
pub fn criteria(reg: &Registry, rt: &str, raw: &str) -> Result<(Query, String), FhirError> {
    let raw = raw.split_once('?').map_or(raw, |(_, q)| q);
    let pairs = query_pairs(Some(raw));
    criteria_from_pairs(reg, rt, &pairs)
}

/// Conditional matching is strict: an unknown parameter would match more than the client
/// meant, and acting on that (deleting, overwriting) cannot be undone.
pub fn criteria_from_pairs(
    reg: &Registry,
    rt: &str,
    pairs: &[(String, String)],
) -> Result<(Query, String), FhirError> {
    let q = hds_fhir_search::parse_with(reg, rt, pairs)?;
    if let Some((p, reason)) = q.unknown.first() {
        return Err(FhirError::bad_request(format!(
            "search parameter '{p}' cannot be used for a conditional interaction: {reason}"
        )));
    }
    if q.clauses.is_empty() {
        return Err(FhirError::bad_request(
            "a conditional interaction needs at least one search criterion",
        ));
    }
    let mut key: Vec<String> = q.applied.iter().map(|(k, v)| format!("{k}={v}")).collect();
    key.sort();
    Ok((q, key.join("&")))
}

/// Ids matching the criteria (at most `limit`), after taking the criteria's lock.
pub async fn matches(
    tx: &Transaction<'_>,
    rt: &str,
    q: &Query,
    key: &str,
    limit: i64,
) -> Result<Vec<String>, FhirError> {
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1, 1))")
        .await?;
    tx.execute(&lock, &[&format!("{rt}?{key}")]).await?;
    Ok(hds_fhir_search::find_ids(tx, rt, q, limit).await?)
}
