//! Azure's `$bulk-delete` jobs: the job table, and the worker that deletes what a search
//! matches, type by type, in batches that commit with the cursor after them.

use std::sync::Arc;

use deadpool_postgres::{GenericClient, Object, Pool, Transaction};
use futures_util::future::try_join_all;
use hds_fhir_search::SearchParams;
use hds_fhir_store::VersionCheck;
use serde_json::Value;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::jobs::{self, JobKind};

/// Resources deleted per transaction.
const BATCH: i64 = 500;

const KIND: JobKind = JobKind {
    table: "bulk_delete_jobs",
    lock_space: 9,
};

#[derive(Debug, thiserror::Error)]
pub enum BulkDeleteError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("{0}")]
    Store(#[from] hds_fhir_store::StoreError),
    #[error("{0}")]
    Search(#[from] hds_fhir_search::ExecError),
    #[error("the search no longer parses for {0}: {1}")]
    Query(String, String),
}

/// What a matched resource undergoes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A deletion version, as `DELETE [type]/[id]` writes (history stays, unless the type's
    /// versioning policy keeps none).
    Soft,
    /// Every version gone (`_hardDelete=true`).
    Hard,
    /// Only the history goes; the current version stays (`_purgeHistory=true`).
    PurgeHistory,
}

#[derive(Debug, Clone)]
pub struct BulkDeleteRequest {
    pub request: String,
    /// None: every type that has resources when the job starts.
    pub types: Option<Vec<String>>,
    /// The search parameters, as a query string.
    pub query: String,
    pub mode: Mode,
}

#[derive(Debug, Clone)]
pub struct BulkDeleteJob {
    pub id: Uuid,
    pub status: String,
    pub request: String,
    pub types: Option<Vec<String>>,
    pub query: String,
    pub mode: Mode,
    pub type_index: i32,
    pub after_id: Option<String>,
    /// Resources handled so far, per type.
    pub deleted: Vec<(String, i64)>,
    pub message: Option<String>,
}

impl BulkDeleteJob {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        let deleted: Value = r.get("deleted");
        let mode = match (r.get::<_, bool>("hard"), r.get::<_, bool>("purge_history")) {
            (true, _) => Mode::Hard,
            (false, true) => Mode::PurgeHistory,
            _ => Mode::Soft,
        };
        // jsonb keeps keys shortest first; type names read better in order.
        let mut deleted: Vec<(String, i64)> = deleted
            .as_object()
            .into_iter()
            .flatten()
            .map(|(t, n)| (t.clone(), n.as_i64().unwrap_or(0)))
            .collect();
        deleted.sort();
        Self {
            id: r.get("id"),
            status: r.get("status"),
            request: r.get("request"),
            types: r.get("types"),
            query: r.get("query"),
            mode,
            type_index: r.get("type_index"),
            after_id: r.get("after_id"),
            deleted,
            message: r.get("message"),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
    }
}

pub async fn start(
    client: &impl GenericClient,
    req: &BulkDeleteRequest,
    wake: &Notify,
) -> Result<BulkDeleteJob, BulkDeleteError> {
    let now = hds_fhir_store::now();
    let row = client
        .query_one(
            "INSERT INTO bulk_delete_jobs (id, status, request, types, query, hard,
                                           purge_history, created, updated)
             VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $7) RETURNING *",
            &[
                &Uuid::new_v4(),
                &req.request,
                &req.types,
                &req.query,
                &(req.mode == Mode::Hard),
                &(req.mode == Mode::PurgeHistory),
                &now,
            ],
        )
        .await?;
    wake.notify_one();
    Ok(BulkDeleteJob::from_row(&row))
}

pub async fn get(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<BulkDeleteJob>, BulkDeleteError> {
    let row = jobs::row(client, KIND, id).await?;
    Ok(row.as_ref().map(BulkDeleteJob::from_row))
}

/// Stops a job at its next batch; what it deleted stays deleted. The job as it was before, or
/// None when there is no such job or it was cancelled already.
pub async fn cancel(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<BulkDeleteJob>, BulkDeleteError> {
    let row = jobs::cancel(client, KIND, id).await?;
    Ok(row.as_ref().map(BulkDeleteJob::from_row))
}

impl jobs::JobRunner for BulkDeleter {
    const KIND: JobKind = KIND;
    type Error = BulkDeleteError;

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    async fn run(&self, conn: &mut Object, id: Uuid) -> Result<(), BulkDeleteError> {
        self.run_job(conn, id).await
    }
}

/// Runs bulk-delete jobs for one service.
pub struct BulkDeleter {
    pub pool: Pool,
    /// The service's live search parameters, to parse each job's search with.
    pub search: Arc<SearchParams>,
    /// Whether a type keeps history (its versioning policy), for soft deletes.
    pub keeps_history: Arc<dyn Fn(&str) -> bool + Send + Sync>,
    pub wake: Arc<Notify>,
}

impl BulkDeleter {
    /// Claims and runs jobs for as long as the service lives (see [`crate::jobs`]).
    pub async fn worker(self: Arc<Self>) {
        jobs::serve(self).await;
    }

    async fn run_job(&self, conn: &mut Object, id: Uuid) -> Result<(), BulkDeleteError> {
        let Some(job) = get(&*conn, id).await? else {
            return Ok(());
        };
        if !job.is_active() {
            return Ok(());
        }
        jobs::mark_running(conn, KIND, id).await?;
        let types = match job.types.clone() {
            Some(t) => t,
            None => {
                let t: Vec<String> = conn
                    .query(
                        "SELECT DISTINCT res_type FROM resources WHERE NOT deleted ORDER BY 1",
                        &[],
                    )
                    .await?
                    .iter()
                    .map(|r| r.get(0))
                    .collect();
                conn.execute(
                    "UPDATE bulk_delete_jobs SET types = $2 WHERE id = $1",
                    &[&id, &t],
                )
                .await?;
                t
            }
        };
        let pairs: Vec<(String, String)> = form_urlencoded::parse(job.query.as_bytes())
            .into_owned()
            .collect();
        for (ti, rt) in types
            .iter()
            .enumerate()
            .skip(job.type_index.max(0) as usize)
        {
            let query = hds_fhir_search::parse_with(&self.search.current(), rt, &pairs)
                .map_err(|e| BulkDeleteError::Query(rt.clone(), e.to_string()))?;
            let mut after = if ti as i32 == job.type_index {
                job.after_id.clone()
            } else {
                None
            };
            loop {
                let tx = conn.transaction().await?;
                let ids = hds_fhir_search::find_ids_after(&tx, rt, &query, after.as_deref(), BATCH)
                    .await?;
                self.delete_all(&tx, rt, &ids, job.mode).await?;
                let n = ids.len() as i64;
                after = ids.last().cloned().or(after);
                let kept = tx
                    .execute(
                        "UPDATE bulk_delete_jobs
                            SET type_index = $2, after_id = $3, updated = now(),
                                deleted = jsonb_set(deleted, ARRAY[$4::text],
                                    to_jsonb(COALESCE((deleted ->> $4)::bigint, 0) + $5))
                          WHERE id = $1 AND status = 'running'",
                        &[&id, &(ti as i32), &after, rt, &n],
                    )
                    .await?;
                if kept != 1 {
                    tracing::info!(job = %id, "bulk delete cancelled");
                    return Ok(());
                }
                tx.commit().await?;
                if n < BATCH {
                    break;
                }
            }
            jobs::next_type(conn, KIND, id, ti as i32 + 1).await?;
        }
        jobs::complete(conn, KIND, id).await?;
        Ok(())
    }

    /// One batch, pipelined on the transaction's connection (the ids are distinct).
    async fn delete_all(
        &self,
        tx: &Transaction<'_>,
        rt: &str,
        ids: &[String],
        mode: Mode,
    ) -> Result<(), BulkDeleteError> {
        let keep = (self.keeps_history)(rt);
        try_join_all(ids.iter().map(|id| async move {
            match mode {
                Mode::Soft => {
                    hds_fhir_store::delete(tx, rt, id, VersionCheck::Any, keep).await?;
                }
                Mode::Hard => {
                    hds_fhir_store::hard_delete(tx, rt, id).await?;
                }
                Mode::PurgeHistory => {
                    hds_fhir_store::purge_history(tx, rt, id).await?;
                }
            }
            Ok::<_, BulkDeleteError>(())
        }))
        .await?;
        Ok(())
    }
}
