//! The write path: head row, version row and index rows of one resource, inside the caller's
//! transaction. The statements after the head row are sent together (tokio-postgres pipelines
//! queries issued concurrently on one connection), so a write costs two round trips plus commit.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Transaction};
use futures_util::try_join;
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::{IndexEntries, Method, Result, StoredVersion, instant, now};

/// What an If-Match header (or a transaction entry's ifMatch) demands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    Any,
    Expect(i64),
    /// Azure's versioned-update policy: an existing resource may only be changed with If-Match.
    RequiredIfExists,
    /// `If-None-Match: *`: only a create; a live resource with the id is a conflict. Lets
    /// writers that choose ids (the MedTech service) create exactly once under concurrency.
    Absent,
}

#[derive(Debug)]
pub enum WriteOutcome {
    /// The resource did not exist (or was deleted) and now does.
    Created(StoredVersion),
    Updated(StoredVersion),
    /// If-Match named another version; `current` is the one there (None if none is).
    VersionConflict {
        current: Option<i64>,
    },
    /// The resource exists and the policy demands If-Match, which was not given.
    PreconditionRequired,
}

#[derive(Debug)]
pub enum DeleteOutcome {
    Deleted(StoredVersion),
    /// Nothing to delete: never existed, or deleted already.
    NotFound,
    VersionConflict {
        current: Option<i64>,
    },
}

/// Sets the server-owned `meta` elements and renders the JSON text that will be stored and served.
pub fn stamp(resource: &mut Value, version_id: i64, last_updated: &DateTime<Utc>) -> String {
    if let Value::Object(obj) = resource {
        if !obj.contains_key("meta") {
            // Right after id, where FHIR's own serialisation puts it.
            let at = obj
                .keys()
                .position(|k| k == "id")
                .map_or(obj.len(), |i| i + 1);
            obj.shift_insert(at, "meta".into(), Value::Object(Default::default()));
        }
        let meta = obj.get_mut("meta").expect("inserted above");
        if !meta.is_object() {
            *meta = Value::Object(Default::default());
        }
        if let Value::Object(meta) = meta {
            meta.insert("versionId".into(), Value::String(version_id.to_string()));
            meta.insert("lastUpdated".into(), Value::String(instant(last_updated)));
        }
    }
    resource.to_string()
}

/// Inserts a new resource with version 1 under an id the caller chose (server-assigned on create).
///
/// Head, version and index rows go in one statement, so on a plain connection (autocommit) a
/// create is a single round trip and a single commit; inside a transaction it composes as usual.
pub async fn create(
    client: &impl GenericClient,
    res_type: &str,
    id: &str,
    mut resource: Value,
    index: &IndexEntries,
) -> Result<StoredVersion> {
    let last_updated = now();
    let body = stamp(&mut resource, 1, &last_updated);
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH head AS (
                 INSERT INTO resources (res_type, id, version_id, last_updated, deleted)
                 VALUES ($1, $2, 1, $3, false)),
             version AS (
                 INSERT INTO resource_versions (res_type, id, version_id, last_updated, method, body)
                 VALUES ($1, $2, 1, $3, 'POST', $4)),
             {}
             SELECT 1",
            crate::index::IndexBatch::insert_ctes(5)
        )
    });
    let stmt = client.prepare_cached(&SQL).await?;
    let owners = [(res_type, id, index)];
    let columns = crate::index::IndexBatch::new(&owners).columns();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&res_type, &id, &last_updated, &body];
    params.extend(columns.iter().map(|c| c.as_ref() as &(dyn ToSql + Sync)));
    client.execute(&stmt, &params).await?;
    Ok(StoredVersion {
        res_type: res_type.to_owned(),
        id: id.to_owned(),
        version_id: 1,
        last_updated,
        method: Method::Post,
        body: Some(body),
    })
}

/// Inserts several new resources with version 1, in one statement: head, version and index rows
/// of all of them as multi-row inserts (a transaction's creates), so PostgreSQL runs one
/// statement rather than one per resource. All get the same lastUpdated. Must run inside a
/// transaction (it sets a planner option for its statement).
pub async fn create_many(
    client: &impl GenericClient,
    items: Vec<(&str, &str, Value, &IndexEntries)>,
) -> Result<Vec<StoredVersion>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let last_updated = now();
    let mut types = Vec::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    let mut bodies = Vec::with_capacity(items.len());
    let mut owners = Vec::with_capacity(items.len());
    for (rt, id, mut resource, index) in items {
        bodies.push(stamp(&mut resource, 1, &last_updated));
        types.push(rt);
        ids.push(id);
        owners.push((rt, id, index));
    }
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "WITH head AS (
                 INSERT INTO resources (res_type, id, version_id, last_updated, deleted)
                 SELECT x.rt, x.id, 1, $3, false FROM unnest($1::text[], $2::text[]) AS x(rt, id)),
             version AS (
                 INSERT INTO resource_versions (res_type, id, version_id, last_updated, method, body)
                 SELECT x.rt, x.id, 1, $3, 'POST', x.b
                   FROM unnest($1::text[], $2::text[], $4::text[]) AS x(rt, id, b)),
             {}
             SELECT 1",
            crate::index::IndexBatch::insert_ctes(5)
        )
    });
    let batch = crate::index::IndexBatch::new(&owners);
    let columns = batch.columns();
    let stmt = client.prepare_cached(&SQL).await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&types, &ids, &last_updated, &bodies];
    params.extend(columns.iter().map(|c| c.as_ref() as &(dyn ToSql + Sync)));
    // Planning this statement anew for each Bundle (PostgreSQL's custom plans, which it keeps
    // choosing for array parameters) cost more than inserting: its plan does not depend on the
    // values, so the generic one is used, for this statement only. The caller's transaction
    // scopes the setting; RESET returns to the session's own.
    client
        .batch_execute("SET LOCAL plan_cache_mode = force_generic_plan")
        .await?;
    client.execute(&stmt, &params).await?;
    client.batch_execute("RESET plan_cache_mode").await?;
    Ok(owners
        .iter()
        .zip(bodies)
        .map(|((rt, id, _), body)| StoredVersion {
            res_type: (*rt).to_owned(),
            id: (*id).to_owned(),
            version_id: 1,
            last_updated,
            method: Method::Post,
            body: Some(body),
        })
        .collect())
}

/// Writes a new version of `res_type/id`, creating it if absent (update-as-create).
/// With `keep_history` false (Azure's no-version policy) older versions are dropped.
#[allow(clippy::too_many_arguments)]
pub async fn update(
    tx: &Transaction<'_>,
    res_type: &str,
    id: &str,
    mut resource: Value,
    index: &IndexEntries,
    check: VersionCheck,
    keep_history: bool,
    method: Method,
) -> Result<WriteOutcome> {
    let current = lock_head(tx, res_type, id).await?;
    match check {
        VersionCheck::Expect(expected) if current.map(|(v, _)| v) != Some(expected) => {
            return Ok(WriteOutcome::VersionConflict {
                current: current.map(|(v, _)| v),
            });
        }
        VersionCheck::RequiredIfExists if matches!(current, Some((_, false))) => {
            return Ok(WriteOutcome::PreconditionRequired);
        }
        VersionCheck::Absent if matches!(current, Some((_, false))) => {
            return Ok(WriteOutcome::VersionConflict {
                current: current.map(|(v, _)| v),
            });
        }
        _ => {}
    }
    let version_id = current.map_or(1, |(v, _)| v + 1);
    let was_live = matches!(current, Some((_, false)));
    let last_updated = now();
    let body = stamp(&mut resource, version_id, &last_updated);
    let head = tx
        .prepare_cached(
            "INSERT INTO resources (res_type, id, version_id, last_updated, deleted)
             VALUES ($1, $2, $3, $4, false)
             ON CONFLICT (res_type, id) DO UPDATE
                SET version_id = EXCLUDED.version_id, last_updated = EXCLUDED.last_updated,
                    deleted = false",
        )
        .await?;
    let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&res_type, &id, &version_id, &last_updated];
    try_join!(
        tx.execute(&head, &head_params),
        insert_version(
            tx,
            res_type,
            id,
            version_id,
            &last_updated,
            method,
            Some(&body)
        ),
        replace_index(tx, res_type, id, index),
        prune_history(tx, res_type, id, version_id, keep_history),
    )?;
    let stored = StoredVersion {
        res_type: res_type.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated,
        method,
        body: Some(body),
    };
    Ok(if was_live {
        WriteOutcome::Updated(stored)
    } else {
        WriteOutcome::Created(stored)
    })
}

/// Marks `res_type/id` deleted with a new version that has no body, and drops its index rows.
pub async fn delete(
    tx: &Transaction<'_>,
    res_type: &str,
    id: &str,
    check: VersionCheck,
    keep_history: bool,
) -> Result<DeleteOutcome> {
    let current = lock_head(tx, res_type, id).await?;
    if let VersionCheck::Expect(expected) = check
        && current.map(|(v, _)| v) != Some(expected)
    {
        return Ok(DeleteOutcome::VersionConflict {
            current: current.map(|(v, _)| v),
        });
    }
    let Some((current_version, false)) = current else {
        return Ok(DeleteOutcome::NotFound);
    };
    let version_id = current_version + 1;
    let last_updated = now();
    let head = tx
        .prepare_cached(
            "UPDATE resources SET version_id = $3, last_updated = $4, deleted = true
              WHERE res_type = $1 AND id = $2",
        )
        .await?;
    let head_params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] =
        [&res_type, &id, &version_id, &last_updated];
    try_join!(
        tx.execute(&head, &head_params),
        insert_version(
            tx,
            res_type,
            id,
            version_id,
            &last_updated,
            Method::Delete,
            None
        ),
        crate::index::delete(tx, res_type, id),
        prune_history(tx, res_type, id, version_id, keep_history),
    )?;
    Ok(DeleteOutcome::Deleted(StoredVersion {
        res_type: res_type.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated,
        method: Method::Delete,
        body: None,
    }))
}

/// The current (version, deleted) of a resource, locked until the transaction ends so that two
/// writers of one resource take turns and each sees the other's version.
async fn lock_head(tx: &Transaction<'_>, res_type: &str, id: &str) -> Result<Option<(i64, bool)>> {
    let stmt = tx
        .prepare_cached(
            "SELECT version_id, deleted FROM resources WHERE res_type = $1 AND id = $2 FOR UPDATE",
        )
        .await?;
    if let Some(row) = tx.query_opt(&stmt, &[&res_type, &id]).await? {
        return Ok(Some((row.get(0), row.get(1))));
    }
    // Nothing to lock yet: two update-as-creates of one new id would both get here, so take a
    // transaction-scoped advisory lock on the name and look again.
    let lock = tx
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
        .await?;
    tx.execute(&lock, &[&res_type, &id]).await?;
    let row = tx.query_opt(&stmt, &[&res_type, &id]).await?;
    Ok(row.map(|r| (r.get(0), r.get(1))))
}

async fn insert_version(
    tx: &Transaction<'_>,
    res_type: &str,
    id: &str,
    version_id: i64,
    last_updated: &DateTime<Utc>,
    method: Method,
    body: Option<&str>,
) -> Result<u64, tokio_postgres::Error> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO resource_versions (res_type, id, version_id, last_updated, method, body)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &res_type,
            &id,
            &version_id,
            last_updated,
            &method.as_str(),
            &body,
        ],
    )
    .await
}

/// Replaces the index rows of `res_type/id` (writes, and `$reindex`). Old rows must go before
/// new ones arrive, so the two statements run in order, not pipelined together.
pub async fn replace_index(
    tx: &impl GenericClient,
    res_type: &str,
    id: &str,
    index: &IndexEntries,
) -> Result<u64, tokio_postgres::Error> {
    crate::index::delete(tx, res_type, id).await?;
    crate::index::insert(tx, res_type, id, index).await
}

async fn prune_history(
    tx: &Transaction<'_>,
    res_type: &str,
    id: &str,
    version_id: i64,
    keep_history: bool,
) -> Result<u64, tokio_postgres::Error> {
    if keep_history {
        return Ok(0);
    }
    let stmt = tx
        .prepare_cached(
            "DELETE FROM resource_versions WHERE res_type = $1 AND id = $2 AND version_id < $3",
        )
        .await?;
    tx.execute(&stmt, &[&res_type, &id, &version_id]).await
}

/// Drops every version of `res_type/id` older than its current one (Azure's `$purge-history`).
/// The number dropped, or `None` if the resource never existed.
pub async fn purge_history(tx: &Transaction<'_>, res_type: &str, id: &str) -> Result<Option<u64>> {
    let Some((current, _)) = lock_head(tx, res_type, id).await? else {
        return Ok(None);
    };
    Ok(Some(prune_history(tx, res_type, id, current, false).await?))
}

/// Removes `res_type/id` entirely: every version, its head and its index rows (Azure's hard
/// delete). False if it never existed.
pub async fn hard_delete(tx: &Transaction<'_>, res_type: &str, id: &str) -> Result<bool> {
    if lock_head(tx, res_type, id).await?.is_none() {
        return Ok(false);
    }
    let versions = tx
        .prepare_cached("DELETE FROM resource_versions WHERE res_type = $1 AND id = $2")
        .await?;
    let head = tx
        .prepare_cached("DELETE FROM resources WHERE res_type = $1 AND id = $2")
        .await?;
    let key: [&(dyn ToSql + Sync); 2] = [&res_type, &id];
    try_join!(
        crate::index::delete(tx, res_type, id),
        tx.execute(&versions, &key),
        tx.execute(&head, &key),
    )?;
    Ok(true)
}

/// What [`write_version`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionWrite {
    /// Written, and now the current version.
    Current,
    /// Written into history, behind a newer current version.
    History,
    /// That version of the resource is stored already; nothing was written.
    Exists,
}

/// Writes `res_type/id` as the version the caller names, with the lastUpdated it names (each
/// defaulting as an update would): Azure's incremental `$import`, which keeps the
/// `meta.versionId` and `meta.lastUpdated` of resources moved from another server, in any
/// order. The newest version is the current one, with its index rows.
#[allow(clippy::too_many_arguments)]
pub async fn write_version(
    tx: &Transaction<'_>,
    res_type: &str,
    id: &str,
    mut resource: Value,
    index: &IndexEntries,
    version_id: Option<i64>,
    last_updated: Option<DateTime<Utc>>,
    keep_history: bool,
) -> Result<VersionWrite> {
    let current = lock_head(tx, res_type, id).await?;
    let version_id = version_id.unwrap_or_else(|| current.map_or(1, |(v, _)| v + 1));
    let exists = tx
        .prepare_cached(
            "SELECT 1 FROM resource_versions WHERE res_type = $1 AND id = $2 AND version_id = $3",
        )
        .await?;
    if tx
        .query_opt(&exists, &[&res_type, &id, &version_id])
        .await?
        .is_some()
    {
        return Ok(VersionWrite::Exists);
    }
    let last_updated = last_updated.unwrap_or_else(now);
    let body = stamp(&mut resource, version_id, &last_updated);
    insert_version(
        tx,
        res_type,
        id,
        version_id,
        &last_updated,
        Method::Put,
        Some(&body),
    )
    .await?;
    if current.is_some_and(|(v, _)| v > version_id) {
        return Ok(VersionWrite::History);
    }
    let head = tx
        .prepare_cached(
            "INSERT INTO resources (res_type, id, version_id, last_updated, deleted)
             VALUES ($1, $2, $3, $4, false)
             ON CONFLICT (res_type, id) DO UPDATE
                SET version_id = EXCLUDED.version_id, last_updated = EXCLUDED.last_updated,
                    deleted = false",
        )
        .await?;
    let head_params: [&(dyn ToSql + Sync); 4] = [&res_type, &id, &version_id, &last_updated];
    try_join!(
        tx.execute(&head, &head_params),
        replace_index(tx, res_type, id, index),
        prune_history(tx, res_type, id, version_id, keep_history),
    )?;
    Ok(VersionWrite::Current)
}
