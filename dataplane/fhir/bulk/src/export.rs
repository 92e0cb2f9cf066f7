//! `$export` jobs: the job table, and the worker that turns a job into NDJSON files.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Pool};
use futures_util::StreamExt;
use hds_common::db::TypedQuery;
use hds_fhir_search::{Query, SearchParams};
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::jobs::{self, JobKind};
use crate::storage::FileStore;

/// Rows read per query: enough to keep PostgreSQL streaming, few enough to bound memory.
const BATCH: i64 = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("export storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("export storage: the files could not be synced to disk: {0}")]
    Sync(#[from] std::io::Error),
    #[error("{0}")]
    Search(#[from] hds_fhir_search::ExecError),
    #[error("the _typeFilter '{0}' no longer parses: {1}")]
    TypeFilter(String, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    System,
    Patient,
    Group,
}

impl Level {
    fn as_str(self) -> &'static str {
        match self {
            Level::System => "system",
            Level::Patient => "patient",
            Level::Group => "group",
        }
    }

    fn parse(s: &str) -> Self {
        match s {
            "patient" => Level::Patient,
            "group" => Level::Group,
            _ => Level::System,
        }
    }
}

/// What a kick-off asked for, checked.
#[derive(Debug, Clone)]
pub struct ExportRequest {
    /// The kick-off URL, repeated in the manifest.
    pub request: String,
    pub level: Level,
    /// The Patients (ids) whose compartments are exported: a Group's members as listed when
    /// it was kicked off, or the `patient` parameter's; None: every Patient (system and
    /// Patient level without `patient`).
    pub patients: Option<Vec<String>>,
    /// `_type`; None: every type there is (in the Patient compartment, below system level).
    pub types: Option<Vec<String>>,
    /// `_since`: only resources last changed at or after it.
    pub since: Option<DateTime<Utc>>,
    /// `_typeFilter`: per type, search queries (ORed) its resources must match; types without
    /// one are exported whole.
    pub type_filters: BTreeMap<String, Vec<String>>,
    /// OperationOutcome issues for the manifest's error file, known at kick-off.
    pub errors: Vec<serde_json::Value>,
}

/// One finished file of a job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFile {
    #[serde(rename = "type")]
    pub res_type: String,
    pub file: String,
    pub count: i64,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: Uuid,
    pub status: String,
    pub request: String,
    pub level: Level,
    pub patients: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub since: Option<DateTime<Utc>>,
    pub transaction_time: DateTime<Utc>,
    pub type_index: i32,
    pub after_id: Option<String>,
    pub file_index: i32,
    pub output: Vec<OutputFile>,
    pub exported: i64,
    pub message: Option<String>,
    pub type_filters: BTreeMap<String, Vec<String>>,
    pub errors: Vec<serde_json::Value>,
}

impl Job {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        let output: serde_json::Value = r.get("output");
        Self {
            id: r.get("id"),
            status: r.get("status"),
            request: r.get("request"),
            level: Level::parse(r.get("level")),
            patients: r.get("patients"),
            types: r.get("types"),
            since: r.get("since"),
            transaction_time: r.get("transaction_time"),
            type_index: r.get("type_index"),
            after_id: r.get("after_id"),
            file_index: r.get("file_index"),
            output: serde_json::from_value(output).unwrap_or_default(),
            exported: r.get("exported"),
            message: r.get("message"),
            type_filters: serde_json::from_value(r.get("type_filters")).unwrap_or_default(),
            errors: serde_json::from_value(r.get("errors")).unwrap_or_default(),
        }
    }

    /// Still to be finished (queued or running).
    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
    }
}

/// Records a queued job, as of now, and wakes the worker.
pub async fn start(
    client: &impl GenericClient,
    req: &ExportRequest,
    wake: &Notify,
) -> Result<Job, ExportError> {
    let now = hds_fhir_store::now();
    let row = client
        .query_one(
            "INSERT INTO export_jobs (id, status, request, level, patients, types, since,
                                      type_filters, errors, transaction_time, created, updated)
             VALUES ($1, 'queued', $2, $3, $4, $5, $6, $7, $8, $9, $9, $9) RETURNING *",
            &[
                &Uuid::new_v4(),
                &req.request,
                &req.level.as_str(),
                &req.patients,
                &req.types,
                &req.since,
                &serde_json::to_value(&req.type_filters).unwrap_or_default(),
                &serde_json::Value::from(req.errors.clone()),
                &now,
            ],
        )
        .await?;
    wake.notify_one();
    Ok(Job::from_row(&row))
}

pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<Job>, ExportError> {
    let row = jobs::row(client, KIND, id).await?;
    Ok(row.as_ref().map(Job::from_row))
}

/// Marks a job cancelled: a running one's worker stops at its next page and removes the job's
/// files; a finished one's files are the caller's to remove. Returns the job as it was before,
/// or None if there is no such job or it was cancelled already.
pub async fn cancel(client: &impl GenericClient, id: Uuid) -> Result<Option<Job>, ExportError> {
    let row = jobs::cancel(client, KIND, id).await?;
    Ok(row.as_ref().map(Job::from_row))
}

impl jobs::JobRunner for Exporter {
    const KIND: JobKind = KIND;
    type Error = ExportError;

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    async fn run(&self, conn: &mut deadpool_postgres::Object, id: Uuid) -> Result<(), ExportError> {
        self.run_job(conn, id).await
    }
}

/// Runs export jobs for one service.
pub struct Exporter {
    pub pool: Pool,
    /// The service's live search parameters, for `_typeFilter`.
    pub search: Arc<SearchParams>,
    pub files: FileStore,
    pub max_file_bytes: usize,
    pub wake: Arc<Notify>,
}

const KIND: JobKind = JobKind {
    table: "export_jobs",
    lock_space: 7,
};

impl Exporter {
    /// Claims and runs export jobs for as long as the service lives (see [`crate::jobs`]).
    pub async fn worker(self: Arc<Self>) {
        jobs::serve(self).await;
    }

    async fn run_job(&self, conn: &deadpool_postgres::Object, id: Uuid) -> Result<(), ExportError> {
        let Some(mut job) = get(conn, id).await? else {
            return Ok(());
        };
        if !job.is_active() {
            return Ok(());
        }
        jobs::mark_running(conn, KIND, id).await?;
        let types = match job.types.clone() {
            Some(t) => t,
            None => {
                let t = self.types_of(conn, job.level).await?;
                conn.execute(
                    "UPDATE export_jobs SET types = $2 WHERE id = $1",
                    &[&id, &t],
                )
                .await?;
                t
            }
        };
        tracing::info!(job = %id, types = types.len(), resumed_at = job.type_index, "export job running");
        let dir = id.to_string();
        // A resumed job's file in progress when its server died is written again from its start.
        self.files.remove_unfinished(&dir).await?;
        for (ti, rt) in types
            .iter()
            .enumerate()
            .skip(job.type_index.max(0) as usize)
        {
            let mut after = if ti as i32 == job.type_index {
                job.after_id.take().unwrap_or_default()
            } else {
                String::new()
            };
            let filters = self.type_filters(&job, rt)?;
            let mut file = OutputWriter::default();
            loop {
                let rows = self.batch(conn, &job, rt, &after).await?;
                let done = (rows.len() as i64) < BATCH;
                let wanted = self.filtered(conn, rt, &filters, &rows).await?;
                for row in &rows {
                    after = row.get::<_, String>(0);
                    if let Some(body) = row.get::<_, Option<&str>>(1)
                        && wanted.as_ref().is_none_or(|w| w.contains(&after))
                    {
                        let path = || self.files.path(&dir, &file_name(rt, &job));
                        file.push(&self.files.store, path, body).await?;
                    }
                    if file.bytes >= self.max_file_bytes
                        && !self
                            .write(conn, &mut job, ti, rt, &after, &mut file)
                            .await?
                    {
                        return self.discard(&dir).await;
                    }
                }
                let finished = done && file.count > 0;
                if finished
                    && !self
                        .write(conn, &mut job, ti, rt, &after, &mut file)
                        .await?
                {
                    return self.discard(&dir).await;
                }
                if !finished && !self.still_running(conn, id).await? {
                    file.abort().await;
                    return self.discard(&dir).await;
                }
                if done {
                    break;
                }
            }
            jobs::next_type(conn, KIND, id, ti as i32 + 1).await?;
        }
        jobs::complete(conn, KIND, id).await?;
        Ok(())
    }

    /// The job's `_typeFilter` queries for `rt`, parsed with the service's parameters.
    fn type_filters(&self, job: &Job, rt: &str) -> Result<Vec<Query>, ExportError> {
        let reg = self.search.current();
        job.type_filters
            .get(rt)
            .into_iter()
            .flatten()
            .map(|q| {
                let pairs: Vec<(String, String)> =
                    form_urlencoded::parse(q.as_bytes()).into_owned().collect();
                hds_fhir_search::parse_with(&reg, rt, &pairs)
                    .map_err(|e| ExportError::TypeFilter(format!("{rt}?{q}"), e.to_string()))
            })
            .collect()
    }

    /// The ids of a page that pass the type's filters (any of them); None when it has none.
    /// Filters match current resources: one changed since the transaction time is judged as
    /// it is now.
    async fn filtered(
        &self,
        client: &impl TypedQuery,
        rt: &str,
        filters: &[Query],
        rows: &[tokio_postgres::Row],
    ) -> Result<Option<HashSet<String>>, ExportError> {
        if filters.is_empty() {
            return Ok(None);
        }
        let ids: Vec<&str> = rows
            .iter()
            .filter(|r| r.get::<_, Option<&str>>(1).is_some())
            .map(|r| r.get::<_, &str>(0))
            .collect();
        let mut wanted = HashSet::new();
        for f in filters {
            wanted.extend(hds_fhir_search::matching_among(client, rt, f, &ids).await?);
        }
        Ok(Some(wanted))
    }

    /// Completes the filled file in the store and records it; false if the job was cancelled.
    async fn write(
        &self,
        client: &impl GenericClient,
        job: &mut Job,
        type_index: usize,
        rt: &str,
        after: &str,
        file: &mut OutputWriter,
    ) -> Result<bool, ExportError> {
        let record = OutputFile {
            res_type: rt.to_owned(),
            file: file_name(rt, job),
            count: file.finish().await?,
        };
        // Recorded only once on disk: a resumed job skips what its record lists.
        self.files.make_durable().await?;
        let kept = self
            .checkpoint(client, job, type_index, after, &record)
            .await?;
        job.file_index += 1;
        Ok(kept)
    }

    /// The types a job without `_type` covers: those with resources, and at patient or group
    /// level only those in the Patient compartment.
    async fn types_of(
        &self,
        client: &impl GenericClient,
        level: Level,
    ) -> Result<Vec<String>, ExportError> {
        let reg = hds_fhir_search::r4();
        Ok(client
            .query("SELECT DISTINCT res_type FROM resources ORDER BY 1", &[])
            .await?
            .iter()
            .map(|r| r.get::<_, String>(0))
            .filter(|t| level == Level::System || in_patient_compartment(reg, t))
            .collect())
    }

    /// The next rows of `rt` below `before` in descending id order (all of them when `before`
    /// is empty): each with its body as it was at the job's transaction time, or NULL when it
    /// is not to be exported (deleted then, or changed before `_since`). Only
    /// `resource_versions` is read: the newest version of each id at or before the transaction
    /// time is the first of its id in a backward scan of the primary key, so one index scan
    /// gives the page, however the resource changed since.
    async fn batch(
        &self,
        client: &impl GenericClient,
        job: &Job,
        rt: &str,
        before: &str,
    ) -> Result<Vec<tokio_postgres::Row>, ExportError> {
        let reg = hds_fhir_search::r4();
        let params: Vec<String> = reg
            .compartment_params("Patient", rt)
            .iter()
            .filter(|p| *p != "{def}")
            .cloned()
            .collect();
        let patients = job.patients.as_deref();
        let mut args: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
            vec![&rt, &job.transaction_time, &job.since];
        let mut conds = Vec::new();
        if !before.is_empty() {
            args.push(&before);
            conds.push(format!("v.id < ${}", args.len()));
        }
        match (job.level, rt == "Patient", &patients) {
            (Level::System, _, _) | (_, true, None) => {}
            (_, true, Some(patients)) => {
                args.push(patients);
                conds.push(format!("v.id = ANY(${})", args.len()));
            }
            (_, false, patients) => {
                args.push(&params);
                let mut c = format!(
                    "EXISTS (SELECT 1 FROM search_reference s WHERE s.res_type = v.res_type
                        AND s.id = v.id AND s.param = ANY(${}) AND s.target_type = 'Patient'",
                    args.len()
                );
                if let Some(patients) = patients {
                    args.push(patients);
                    c.push_str(&format!(" AND s.target_id = ANY(${})", args.len()));
                }
                c.push(')');
                conds.push(c);
            }
        }
        let extra: String = conds.iter().map(|c| format!(" AND {c}")).collect();
        let sql = format!(
            "SELECT DISTINCT ON (v.id) v.id,
                    CASE WHEN $3::timestamptz IS NULL OR v.last_updated >= $3 THEN v.body END
               FROM resource_versions v
              WHERE v.res_type = $1 AND v.last_updated <= $2{extra}
              ORDER BY v.id DESC, v.version_id DESC
              LIMIT {BATCH}"
        );
        let stmt = client.prepare_cached(&sql).await?;
        Ok(client.query(&stmt, &args).await?)
    }

    /// Records a finished file and the cursor after it; false if the job was cancelled.
    async fn checkpoint(
        &self,
        client: &impl GenericClient,
        job: &Job,
        type_index: usize,
        after: &str,
        file: &OutputFile,
    ) -> Result<bool, ExportError> {
        let entry = serde_json::json!([file]);
        let n = client
            .execute(
                "UPDATE export_jobs
                    SET type_index = $2, after_id = $3, file_index = $4,
                        output = output || $5::jsonb, exported = exported + $6, updated = now()
                  WHERE id = $1 AND status = 'running'",
                &[
                    &job.id,
                    &(type_index as i32),
                    &after,
                    &(job.file_index + 1),
                    &entry,
                    &file.count,
                ],
            )
            .await?;
        Ok(n == 1)
    }

    async fn still_running(
        &self,
        client: &impl GenericClient,
        id: Uuid,
    ) -> Result<bool, ExportError> {
        let row = client
            .query_opt("SELECT status FROM export_jobs WHERE id = $1", &[&id])
            .await?;
        Ok(row.is_some_and(|r| r.get::<_, &str>(0) == "running"))
    }

    /// A cancelled job's files go.
    pub async fn discard(&self, dir: &str) -> Result<(), ExportError> {
        self.files.remove_unfinished(dir).await?;
        let mut listing = self.files.store.list(Some(&self.files.job_dir(dir)));
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            self.files.store.delete(&meta.location).await?;
        }
        tracing::info!(job = dir, "export job cancelled; its files are removed");
        Ok(())
    }
}

fn in_patient_compartment(reg: &hds_fhir_search::Registry, rt: &str) -> bool {
    !reg.compartment_params("Patient", rt).is_empty()
}

/// The name of the job's next file of type `rt`.
fn file_name(rt: &str, job: &Job) -> String {
    format!("{rt}-{:04}.ndjson", job.file_index + 1)
}

/// Parts of a file being put at once. With the part being filled (object_store's 5 MiB), a job
/// holds about 15 MiB of its file, whatever `maxFileBytes` is.
const PARTS_IN_FLIGHT: usize = 2;

/// The file being filled, put into the store part by part as it grows (a multipart upload; a
/// local directory's is a staging file renamed into place when complete, and removed if the
/// upload is dropped), so that no file is held whole.
#[derive(Default)]
struct OutputWriter {
    upload: Option<WriteMultipart>,
    bytes: usize,
    count: i64,
}

impl OutputWriter {
    /// Appends one resource as a line, beginning the upload to `path()` with the file's first;
    /// waits while [`PARTS_IN_FLIGHT`] parts are being put.
    async fn push(
        &mut self,
        store: &Arc<dyn ObjectStore>,
        path: impl FnOnce() -> object_store::path::Path,
        body: &str,
    ) -> Result<(), ExportError> {
        let upload = match &mut self.upload {
            Some(upload) => upload,
            None => {
                let upload = WriteMultipart::new(store.put_multipart(&path()).await?);
                self.upload.insert(upload)
            }
        };
        upload.wait_for_capacity(PARTS_IN_FLIGHT).await?;
        upload.write(body.as_bytes());
        upload.write(b"\n");
        self.bytes += body.len() + 1;
        self.count += 1;
        Ok(())
    }

    /// Completes the file; the number of resources in it.
    async fn finish(&mut self) -> Result<i64, ExportError> {
        let count = std::mem::take(&mut self.count);
        self.bytes = 0;
        if let Some(upload) = self.upload.take() {
            upload.finish().await?;
        }
        Ok(count)
    }

    /// Drops the file being filled (a cancelled job).
    async fn abort(&mut self) {
        self.count = 0;
        self.bytes = 0;
        if let Some(upload) = self.upload.take()
            && let Err(e) = upload.abort().await
        {
            tracing::warn!(error = %e, "export: an unfinished file could not be removed");
        }
    }
}
