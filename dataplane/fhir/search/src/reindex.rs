//! `$reindex` as a durable background job: re-extracts the index rows of every current
//! resource in scope, in batches, each batch and the job's cursor in one transaction. A job
//! survives restarts (the worker resumes queued and running jobs at start-up), reports
//! progress, and can be cancelled. When it completes, the custom parameters that were pending
//! when it was created, and whose base types it covered, become ready.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Pool};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::custom::{SearchParams, load_custom};
use crate::index::extract_with;

/// Resources per transaction: small enough to keep locks short, large enough to amortise the
/// commit.
const BATCH: i64 = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: String,
    pub types: Option<Vec<String>>,
    pub status: String,
    pub processed: i64,
    pub total: i64,
    pub params: Vec<String>,
    pub message: Option<String>,
}

impl Job {
    /// The job as a FHIR Parameters resource, in the shape Azure's reindex operation reports.
    pub fn to_parameters(&self) -> Value {
        let progress = if self.total > 0 {
            (self.processed as f64 / self.total as f64 * 100.0).min(100.0)
        } else {
            100.0
        };
        let mut p = vec![
            json!({"name": "id", "valueString": self.id}),
            json!({"name": "status", "valueString": self.status}),
            json!({"name": "totalResourcesToReindex", "valueDecimal": self.total}),
            json!({"name": "resourcesSuccessfullyReindexed", "valueDecimal": self.processed}),
            json!({"name": "progress", "valueDecimal": (progress * 10.0).round() / 10.0}),
            json!({"name": "resources", "valueString": self.types.as_ref().map_or("*".to_owned(), |t| t.join(","))}),
        ];
        for sp in &self.params {
            let url = sp.split_once('|').map_or(sp.as_str(), |(u, _)| u);
            p.push(json!({"name": "searchParams", "valueString": url}));
        }
        if let Some(m) = &self.message {
            p.push(json!({"name": "message", "valueString": m}));
        }
        json!({"resourceType": "Parameters", "id": self.id, "parameter": p})
    }
}

fn job_from_row(r: &tokio_postgres::Row) -> Job {
    Job {
        id: r.get("id"),
        types: r.get("types"),
        status: r.get("status"),
        processed: r.get("processed"),
        total: r.get("total"),
        params: r.get("params"),
        message: r.get("message"),
    }
}

/// Queues a job over `types` (None: all types) and wakes the worker.
pub async fn start(
    client: &impl GenericClient,
    types: Option<Vec<String>>,
    wake: &Notify,
) -> Result<Job, tokio_postgres::Error> {
    let covered = |base: &[String]| {
        types
            .as_ref()
            .is_none_or(|t| base.iter().all(|b| t.contains(b)))
    };
    let pending: Vec<String> = load_custom(client)
        .await?
        .into_iter()
        .filter(|c| c.pending && covered(&c.base))
        .map(|c| format!("{}|{}", c.url, c.signature()))
        .collect();
    let total: i64 = client
        .query_one(
            "SELECT count(*) FROM resources WHERE NOT deleted AND ($1::text[] IS NULL OR res_type = ANY($1))",
            &[&types],
        )
        .await?
        .get(0);
    let id = uuid::Uuid::new_v4().to_string();
    let row = client
        .query_one(
            "INSERT INTO reindex_jobs (id, types, status, processed, total, params, created, updated)
             VALUES ($1, $2, 'queued', 0, $3, $4, now(), now()) RETURNING *",
            &[&id, &types, &total, &pending],
        )
        .await?;
    wake.notify_one();
    Ok(job_from_row(&row))
}

pub async fn get(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<Job>, tokio_postgres::Error> {
    let row = client
        .query_opt("SELECT * FROM reindex_jobs WHERE id = $1", &[&id])
        .await?;
    Ok(row.as_ref().map(job_from_row))
}

/// Cancels a queued or running job; a finished one is left as it is.
pub async fn cancel(
    client: &impl GenericClient,
    id: &str,
) -> Result<Option<Job>, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE reindex_jobs SET status = 'cancelled', updated = now(), message = 'cancelled on request'
              WHERE id = $1 AND status IN ('queued', 'running')",
            &[&id],
        )
        .await?;
    get(client, id).await
}

/// Runs jobs until the process ends: the oldest queued or running job first, batch by batch.
pub async fn worker(pool: Pool, params: Arc<SearchParams>, wake: Arc<Notify>) {
    loop {
        match run_next(&pool, &params).await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "reindex worker: database error; retrying"),
        }
        // Woken by a new job, or polling now and then for jobs another replica queued and for
        // SearchParameter changes another replica made.
        if tokio::time::timeout(Duration::from_secs(5), wake.notified())
            .await
            .is_err()
            && let Ok(c) = pool.get().await
            && let Err(e) = params.reload(&c).await
        {
            tracing::warn!(error = %e, "cannot refresh search parameters");
        }
    }
}

/// Advances the oldest active job by one batch. `Ok(true)` if there may be more work now.
async fn run_next(pool: &Pool, params: &SearchParams) -> Result<bool, WorkerError> {
    let mut conn = pool.get().await?;
    let tx = conn.transaction().await?;
    // SKIP LOCKED: replicas share the work without waiting on one another.
    let Some(row) = tx
        .query_opt(
            "SELECT * FROM reindex_jobs WHERE status IN ('queued', 'running')
              ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?
    else {
        return Ok(false);
    };
    let job = job_from_row(&row);
    let after_type: Option<String> = row.get("after_type");
    let after_id: Option<String> = row.get("after_id");
    let reg = params.current();
    let batch = tx
        .query(
            "SELECT r.res_type, r.id, v.body
               FROM resources r
               JOIN resource_versions v
                 ON v.res_type = r.res_type AND v.id = r.id AND v.version_id = r.version_id
              WHERE NOT r.deleted
                AND ($1::text[] IS NULL OR r.res_type = ANY($1))
                AND ($2::text IS NULL OR (r.res_type, r.id) > ($2, $3))
              ORDER BY r.res_type, r.id
              LIMIT $4
              FOR UPDATE OF r",
            &[&job.types, &after_type, &after_id, &BATCH],
        )
        .await?;
    for r in &batch {
        let (rt, id, body): (String, String, Option<String>) = (r.get(0), r.get(1), r.get(2));
        let Some(Ok(resource)) = body.map(|b| serde_json::from_str::<Value>(&b)) else {
            continue;
        };
        let entries = extract_with(&reg, &resource);
        hds_fhir_store::replace_index(&tx, &rt, &id, &entries).await?;
    }
    let done = (batch.len() as i64) < BATCH;
    let last = batch
        .last()
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)));
    let (lt, li) = match &last {
        Some((t, i)) => (Some(t.clone()), Some(i.clone())),
        None => (after_type, after_id),
    };
    // "completed" is set only after this process's registry knows the parameters are ready
    // (below), so a client that sees it can search with them at once.
    let status = "running";
    tx.execute(
        "UPDATE reindex_jobs SET status = $2, after_type = $3, after_id = $4,
                processed = processed + $5, updated = now() WHERE id = $1",
        &[&job.id, &status, &lt, &li, &(batch.len() as i64)],
    )
    .await?;
    if done {
        for p in &job.params {
            if let Some((url, signature)) = p.split_once('|') {
                tx.execute(
                    "INSERT INTO search_param_ready (url, signature, ready_at) VALUES ($1, $2, now())
                     ON CONFLICT (url) DO UPDATE SET signature = EXCLUDED.signature, ready_at = now()",
                    &[&url, &signature],
                )
                .await?;
            }
        }
    }
    tx.commit().await?;
    if done {
        tracing::info!(job = %job.id, processed = job.processed + batch.len() as i64, "reindex job completed");
        let c = pool.get().await?;
        params.reload(&c).await?;
        c.execute(
            "UPDATE reindex_jobs SET status = 'completed', updated = now() WHERE id = $1 AND status = 'running'",
            &[&job.id],
        )
        .await?;
    }
    // After a completed job another may be waiting; after a batch, this one continues.
    Ok(true)
}

#[derive(Debug, thiserror::Error)]
enum WorkerError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}
