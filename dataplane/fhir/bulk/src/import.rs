//! `$import` jobs in Azure's shape: the job table, and the worker that reads NDJSON inputs
//! from the import store and writes their resources.
//!
//! Each input is read from the byte offset its job recorded. Lines are taken in chunks; a
//! chunk's resources, the error rows of its bad lines and the offset after it are committed in
//! one transaction, so a job resumes after a restart at the first uncommitted line, and no line
//! is written twice or lost.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use deadpool_postgres::{GenericClient, Object, Pool, Transaction};
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use hds_fhir_store::{IndexEntries, VersionCheck, VersionWrite, WriteOutcome};
use object_store::{GetOptions, GetRange};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::jobs::{self, JobKind};
use crate::storage::FileStore;

/// Lines committed together: enough to pipeline the writes, few enough that a restart redoes
/// little and a chunk's resources stay small in memory.
const CHUNK_LINES: usize = 500;
const CHUNK_BYTES: usize = 8 * 1024 * 1024;

const KIND: JobKind = JobKind {
    table: "import_jobs",
    lock_space: 8,
};

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("database error: {0}")]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("import storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("{0}")]
    Store(#[from] hds_fhir_store::StoreError),
}

/// Azure's two modes. IncrementalLoad writes each resource under its own id, as an update (or
/// update-as-create), keeping its `meta.versionId` and `meta.lastUpdated` when it has them (so
/// versions exported elsewhere arrive as they were, in any order); InitialLoad only creates,
/// with the server's version and lastUpdated, and an id already taken is a refused line. Both
/// give a resource without an id a new one. InitialLoad is only accepted while the service is
/// in initial import mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    InitialLoad,
    IncrementalLoad,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::InitialLoad => "InitialLoad",
            Mode::IncrementalLoad => "IncrementalLoad",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "InitialLoad" => Some(Mode::InitialLoad),
            "IncrementalLoad" => Some(Mode::IncrementalLoad),
            _ => None,
        }
    }
}

/// One `input` part of the kick-off: the type its lines must have (if given), the URL as the
/// client wrote it, and the object it names in the import store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportInput {
    #[serde(rename = "type")]
    pub res_type: Option<String>,
    pub url: String,
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub request: String,
    pub mode: Mode,
    pub inputs: Vec<ImportInput>,
}

#[derive(Debug, Clone)]
pub struct ImportJob {
    pub id: Uuid,
    pub status: String,
    pub request: String,
    pub mode: String,
    pub inputs: Vec<ImportInput>,
    pub input_index: i32,
    pub byte_offset: i64,
    pub line_no: i64,
    pub succeeded: Vec<i64>,
    pub failed: Vec<i64>,
    pub transaction_time: DateTime<Utc>,
    pub message: Option<String>,
}

impl ImportJob {
    fn from_row(r: &tokio_postgres::Row) -> Self {
        let inputs: Value = r.get("inputs");
        Self {
            id: r.get("id"),
            status: r.get("status"),
            request: r.get("request"),
            mode: r.get("mode"),
            inputs: serde_json::from_value(inputs).unwrap_or_default(),
            input_index: r.get("input_index"),
            byte_offset: r.get("byte_offset"),
            line_no: r.get("line_no"),
            succeeded: r.get("succeeded"),
            failed: r.get("failed"),
            transaction_time: r.get("transaction_time"),
            message: r.get("message"),
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.status.as_str(), "queued" | "running")
    }
}

pub async fn start(
    client: &impl GenericClient,
    req: &ImportRequest,
    wake: &Notify,
) -> Result<ImportJob, ImportError> {
    let now = hds_fhir_store::now();
    let zeros = vec![0i64; req.inputs.len()];
    let inputs = serde_json::to_value(&req.inputs).unwrap_or_default();
    let row = client
        .query_one(
            "INSERT INTO import_jobs (id, status, request, mode, inputs, succeeded, failed,
                                      transaction_time, created, updated)
             VALUES ($1, 'queued', $2, $3, $4, $5, $5, $6, $6, $6) RETURNING *",
            &[
                &Uuid::new_v4(),
                &req.request,
                &req.mode.as_str(),
                &inputs,
                &zeros,
                &now,
            ],
        )
        .await?;
    wake.notify_one();
    Ok(ImportJob::from_row(&row))
}

pub async fn get(client: &impl GenericClient, id: Uuid) -> Result<Option<ImportJob>, ImportError> {
    let row = jobs::row(client, KIND, id).await?;
    Ok(row.as_ref().map(ImportJob::from_row))
}

/// Stops a job at its next chunk; what it committed stays. Returns the job as it was before,
/// or None when there is no such job or it was cancelled already.
pub async fn cancel(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<ImportJob>, ImportError> {
    let row = jobs::cancel(client, KIND, id).await?;
    Ok(row.as_ref().map(ImportJob::from_row))
}

/// The OperationOutcomes of one input's refused lines, in line order, after line `after`.
pub async fn errors(
    client: &impl GenericClient,
    id: Uuid,
    input_index: i32,
    after: i64,
    limit: i64,
) -> Result<Vec<(i64, String)>, ImportError> {
    Ok(client
        .query(
            "SELECT line_no, outcome FROM import_errors
              WHERE job = $1 AND input_index = $2 AND line_no > $3
              ORDER BY line_no LIMIT $4",
            &[&id, &input_index, &after, &limit],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}

/// A resource checked, indexed and ready to write, as the service's own write path would.
pub struct Prepared {
    pub res_type: String,
    /// None: the server assigns one.
    pub id: Option<String>,
    pub resource: Value,
    pub index: IndexEntries,
    pub keep_history: bool,
    /// `meta.versionId` and `meta.lastUpdated`, kept by an IncrementalLoad.
    pub version_id: Option<i64>,
    pub last_updated: Option<DateTime<Utc>>,
    /// Written SearchParameters change what the service indexes; it is told after the chunk.
    pub search_parameter: bool,
}

/// Why a line was refused, as an OperationOutcome issue.
#[derive(Debug, Clone)]
pub struct LineIssue {
    pub code: String,
    pub diagnostics: String,
    pub expression: Option<String>,
}

/// The service's own checks for one resource: the type an input demands (if any) and the
/// parsed line.
pub type Prepare =
    Arc<dyn Fn(Option<&str>, Value) -> Result<Prepared, Vec<LineIssue>> + Send + Sync>;

impl jobs::JobRunner for Importer {
    const KIND: JobKind = KIND;
    type Error = ImportError;

    fn pool(&self) -> &Pool {
        &self.pool
    }

    fn wake(&self) -> &Arc<Notify> {
        &self.wake
    }

    async fn run(&self, conn: &mut Object, id: Uuid) -> Result<(), ImportError> {
        self.run_job(conn, id).await
    }
}

/// A check that needs the database (the profiles stored in the service), run on each prepared
/// resource inside the chunk's transaction.
pub type Check = Arc<
    dyn for<'a, 'c> Fn(
            &'a Transaction<'c>,
            &'a Value,
        )
            -> Pin<Box<dyn Future<Output = Result<(), Vec<LineIssue>>> + Send + 'a>>
        + Send
        + Sync,
>;

/// Runs import jobs for one service.
pub struct Importer {
    pub pool: Pool,
    pub files: FileStore,
    pub prepare: Prepare,
    /// `validation.enforceProfiles`, when it is on.
    pub check: Option<Check>,
    pub wake: Arc<Notify>,
    /// Notified after a chunk that wrote SearchParameters was committed.
    pub search_parameters_written: Arc<Notify>,
}

/// One line of an input, with its number (1-based).
struct Line {
    no: i64,
    text: Vec<u8>,
}

impl Importer {
    /// Claims and runs import jobs for as long as the service lives (see [`crate::jobs`]).
    pub async fn worker(self: Arc<Self>) {
        jobs::serve(self).await;
    }

    async fn run_job(&self, conn: &mut Object, id: Uuid) -> Result<(), ImportError> {
        let Some(job) = get(&*conn, id).await? else {
            return Ok(());
        };
        if !job.is_active() {
            return Ok(());
        }
        jobs::mark_running(conn, KIND, id).await?;
        tracing::info!(job = %id, inputs = job.inputs.len(), resumed_at = job.input_index, "import job running");
        for (i, input) in job
            .inputs
            .iter()
            .enumerate()
            .skip(job.input_index.max(0) as usize)
        {
            let i = i as i32;
            let (offset, line_no) = if i == job.input_index {
                (job.byte_offset, job.line_no)
            } else {
                (0, 0)
            };
            if !self
                .run_input(conn, &job, i, input, offset, line_no)
                .await?
            {
                tracing::info!(job = %id, "import job cancelled");
                return Ok(());
            }
        }
        jobs::complete(conn, KIND, id).await?;
        Ok(())
    }

    /// Reads one input from `offset` to its end; false if the job was cancelled.
    async fn run_input(
        &self,
        conn: &mut Object,
        job: &ImportJob,
        i: i32,
        input: &ImportInput,
        mut offset: i64,
        mut line_no: i64,
    ) -> Result<bool, ImportError> {
        let path = object_store::path::Path::from(input.path.as_str());
        let options = GetOptions {
            range: (offset > 0).then_some(GetRange::Offset(offset as u64)),
            ..GetOptions::default()
        };
        let got = match self.files.store.get_opts(&path, options).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return self.missing(conn, job, i, input).await;
            }
            Err(e) => return Err(e.into()),
        };
        let mut stream = got.into_stream();
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk: Vec<Line> = Vec::new();
        let mut chunk_bytes = 0usize;
        let mut eof = false;
        while !eof {
            match stream.next().await {
                Some(bytes) => pending.extend_from_slice(&bytes?),
                None => eof = true,
            }
            let mut start = 0;
            while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
                line_no += 1;
                let text = pending[start..start + nl].to_vec();
                chunk_bytes += text.len();
                chunk.push(Line { no: line_no, text });
                start += nl + 1;
                offset += nl as i64 + 1;
                if chunk.len() >= CHUNK_LINES || chunk_bytes >= CHUNK_BYTES {
                    let lines = std::mem::take(&mut chunk);
                    chunk_bytes = 0;
                    if !self
                        .commit(conn, job, i, input, lines, offset, line_no, false)
                        .await?
                    {
                        return Ok(false);
                    }
                }
            }
            pending.drain(..start);
            if eof && !pending.is_empty() {
                // The last line need not end with a newline.
                line_no += 1;
                offset += pending.len() as i64;
                chunk.push(Line {
                    no: line_no,
                    text: std::mem::take(&mut pending),
                });
            }
        }
        self.commit(conn, job, i, input, chunk, offset, line_no, true)
            .await
    }

    /// An input that is not there: one error (line 0) and on to the next input.
    async fn missing(
        &self,
        conn: &Object,
        job: &ImportJob,
        i: i32,
        input: &ImportInput,
    ) -> Result<bool, ImportError> {
        let issue = LineIssue {
            code: "not-found".into(),
            diagnostics: format!("{}: no such file in the import storage", input.url),
            expression: None,
        };
        let kept = conn
            .execute(
                "WITH e AS (INSERT INTO import_errors (job, input_index, line_no, outcome)
                            VALUES ($1, $2, 0, $3) ON CONFLICT DO NOTHING)
                 UPDATE import_jobs SET input_index = $2 + 1, byte_offset = 0, line_no = 0,
                        failed[$2 + 1] = 1, updated = now()
                  WHERE id = $1 AND status = 'running'",
                &[&job.id, &i, &outcome(input, 0, &[issue])],
            )
            .await?;
        Ok(kept == 1)
    }

    /// The prepared resources that pass the database check (if any); the others join `bad`.
    async fn screen(
        &self,
        tx: &Transaction<'_>,
        good: Vec<(i64, Prepared)>,
        bad: &mut Vec<(i64, Vec<LineIssue>)>,
    ) -> Vec<(i64, Prepared)> {
        let Some(check) = &self.check else {
            return good;
        };
        let mut passed = Vec::with_capacity(good.len());
        for (no, p) in good {
            match check(tx, &p.resource).await {
                Ok(()) => passed.push((no, p)),
                Err(issues) => bad.push((no, issues)),
            }
        }
        bad.sort_by_key(|(no, _)| *no);
        passed
    }

    /// Parses and prepares each line (blank lines are skipped): those ready to write, and
    /// the refused ones with why.
    fn check(&self, input: &ImportInput, chunk: &[Line]) -> Checked {
        let mut good = Vec::with_capacity(chunk.len());
        let mut bad = Vec::new();
        for l in chunk {
            if l.text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let prepared = match serde_json::from_slice::<Value>(&l.text) {
                Ok(v) => (self.prepare)(input.res_type.as_deref(), v),
                Err(e) => Err(vec![LineIssue {
                    code: "structure".into(),
                    diagnostics: format!("not a JSON resource: {e}"),
                    expression: None,
                }]),
            };
            match prepared {
                Ok(p) => good.push((l.no, p)),
                Err(issues) => bad.push((l.no, issues)),
            }
        }
        (good, bad)
    }

    /// Writes one chunk, its error rows and the position after it in one transaction; false
    /// if the job was cancelled meanwhile (nothing of the chunk is then kept).
    #[allow(clippy::too_many_arguments)]
    async fn commit(
        &self,
        conn: &mut Object,
        job: &ImportJob,
        i: i32,
        input: &ImportInput,
        chunk: Vec<Line>,
        offset: i64,
        line_no: i64,
        last: bool,
    ) -> Result<bool, ImportError> {
        let (good, mut bad) = self.check(input, &chunk);
        let search_parameters = good.iter().any(|(_, p)| p.search_parameter);
        let create_only = job.mode == Mode::InitialLoad.as_str();
        let mut tx = conn.transaction().await?;
        let good = self.screen(&tx, good, &mut bad).await;
        let mut written = good.len() as i64;
        let written_all = write_all(&tx, good, create_only).await;
        if let Ok(refused) = &written_all {
            written -= refused.len() as i64;
            bad.extend(refused.iter().map(|(no, i)| (*no, vec![i.clone()])));
            bad.sort_by_key(|(no, _)| *no);
        }
        if let Err(e) = written_all {
            // Some resource broke a database rule (a NUL character, a value out of range):
            // the chunk is redone one resource at a time, and only the culprits are refused.
            tracing::warn!(job = %job.id, error = %e, "import chunk refused; writing it line by line");
            drop(tx);
            tx = conn.transaction().await?;
            let (good, _) = self.check(input, &chunk);
            let good = self.screen(&tx, good, &mut Vec::new()).await;
            written = 0;
            for (no, p) in good {
                let sp = tx.savepoint("import_line").await?;
                let what = format!("{}/{}", p.res_type, p.id.as_deref().unwrap_or("(new)"));
                match write_one(&sp, p, create_only).await {
                    Ok(None) => {
                        sp.commit().await?;
                        written += 1;
                    }
                    Ok(Some(issue)) => {
                        sp.commit().await?;
                        bad.push((no, vec![issue]));
                    }
                    Err(e) => {
                        sp.rollback().await?;
                        bad.push((no, vec![refusal(&e, &what, create_only)]));
                    }
                }
            }
            bad.sort_by_key(|(no, _)| *no);
        }
        let failed = bad.len() as i64;
        let (nos, outcomes): (Vec<i64>, Vec<String>) = bad
            .iter()
            .map(|(no, issues)| (*no, outcome(input, *no, issues)))
            .unzip();
        tx.execute(
            "INSERT INTO import_errors (job, input_index, line_no, outcome)
             SELECT $1, $2, * FROM unnest($3::bigint[], $4::text[])
             ON CONFLICT DO NOTHING",
            &[&job.id, &i, &nos, &outcomes],
        )
        .await?;
        let (next_index, next_offset, next_line) = if last {
            (i + 1, 0, 0)
        } else {
            (i, offset, line_no)
        };
        let kept = tx
            .execute(
                "UPDATE import_jobs
                    SET input_index = $2, byte_offset = $3, line_no = $4,
                        succeeded[$5] = succeeded[$5] + $6, failed[$5] = failed[$5] + $7,
                        updated = now()
                  WHERE id = $1 AND status = 'running'",
                &[
                    &job.id,
                    &next_index,
                    &next_offset,
                    &next_line,
                    &(i + 1),
                    &written,
                    &failed,
                ],
            )
            .await?;
        if kept != 1 {
            return Ok(false);
        }
        tx.commit().await?;
        if search_parameters {
            self.search_parameters_written.notify_one();
        }
        Ok(true)
    }
}

type Checked = (Vec<(i64, Prepared)>, Vec<(i64, Vec<LineIssue>)>);

/// Writes the prepared resources, pipelined on the one connection. Resources that share a type
/// and id are written in separate rounds, in line order, so their versions follow the file.
async fn write_all(
    tx: &Transaction<'_>,
    good: Vec<(i64, Prepared)>,
    create_only: bool,
) -> Result<Vec<(i64, LineIssue)>, ImportError> {
    let mut rounds: Vec<Vec<(i64, Prepared)>> = Vec::new();
    let mut seen: Vec<HashSet<(String, String)>> = Vec::new();
    for (no, p) in good {
        let key = p.id.clone().map(|id| (p.res_type.clone(), id));
        let round = match &key {
            Some(k) => seen
                .iter()
                .position(|s| !s.contains(k))
                .unwrap_or(seen.len()),
            None => 0,
        };
        if round == rounds.len() {
            rounds.push(Vec::new());
            seen.push(HashSet::new());
        }
        if let Some(k) = key {
            seen[round].insert(k);
        }
        rounds[round].push((no, p));
    }
    let mut refused = Vec::new();
    for mut round in rounds {
        if create_only {
            // Only creates: one multi-row statement for the round (a taken id fails it, and
            // the chunk is then redone line by line, which names the line).
            for (_, p) in &mut round {
                if p.id.is_none() {
                    let id = hds_fhir_store::new_id();
                    if let Value::Object(o) = &mut p.resource {
                        o.insert("id".into(), Value::String(id.clone()));
                    }
                    p.id = Some(id);
                }
            }
            let mut owners = Vec::with_capacity(round.len());
            let mut resources = Vec::with_capacity(round.len());
            for (_, p) in round {
                owners.push((p.res_type, p.id.unwrap_or_default(), p.index));
                resources.push(p.resource);
            }
            let rows = owners
                .iter()
                .zip(resources)
                .map(|((rt, id, ix), r)| (rt.as_str(), id.as_str(), r, ix))
                .collect();
            hds_fhir_store::create_many(tx, rows).await?;
            continue;
        }
        let outcomes = try_join_all(round.into_iter().map(|(no, p)| async move {
            write_one(tx, p, create_only)
                .await
                .map(|r| r.map(|issue| (no, issue)))
        }))
        .await?;
        refused.extend(outcomes.into_iter().flatten());
    }
    Ok(refused)
}

/// An update-as-create of the resource under its id, or (`create_only`, InitialLoad) a create
/// that fails if the id is taken; a new id when it has none. A resource that names its
/// version or lastUpdated (IncrementalLoad) is kept as that version; one already stored is
/// the refusal returned.
async fn write_one(
    tx: &Transaction<'_>,
    p: Prepared,
    create_only: bool,
) -> Result<Option<LineIssue>, ImportError> {
    match p.id {
        Some(id) if !create_only && (p.version_id.is_some() || p.last_updated.is_some()) => {
            let outcome = hds_fhir_store::write_version(
                tx,
                &p.res_type,
                &id,
                p.resource,
                &p.index,
                p.version_id,
                p.last_updated,
                p.keep_history,
            )
            .await?;
            if outcome == VersionWrite::Exists {
                return Ok(Some(LineIssue {
                    code: "duplicate".into(),
                    diagnostics: format!(
                        "{}/{id} version {} is stored already",
                        p.res_type,
                        p.version_id.unwrap_or_default()
                    ),
                    expression: Some("meta.versionId".into()),
                }));
            }
        }
        Some(id) if create_only => {
            hds_fhir_store::create(tx, &p.res_type, &id, p.resource, &p.index).await?;
        }
        Some(id) => {
            let outcome = hds_fhir_store::update(
                tx,
                &p.res_type,
                &id,
                p.resource,
                &p.index,
                VersionCheck::Any,
                p.keep_history,
                hds_fhir_store::Method::Put,
            )
            .await?;
            debug_assert!(matches!(
                outcome,
                WriteOutcome::Created(_) | WriteOutcome::Updated(_)
            ));
        }
        None => {
            let id = hds_fhir_store::new_id();
            let mut resource = p.resource;
            if let Value::Object(o) = &mut resource {
                o.insert("id".into(), Value::String(id.clone()));
            }
            hds_fhir_store::create(tx, &p.res_type, &id, resource, &p.index).await?;
        }
    }
    Ok(None)
}

/// Why the database refused one resource, in the import's words.
fn refusal(e: &ImportError, what: &str, create_only: bool) -> LineIssue {
    let taken = matches!(e, ImportError::Store(hds_fhir_store::StoreError::Db(db))
        if db.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION));
    if taken && create_only {
        LineIssue {
            code: "duplicate".into(),
            diagnostics: format!(
                "{what} exists already, and an InitialLoad import only creates resources"
            ),
            expression: None,
        }
    } else {
        LineIssue {
            code: "processing".into(),
            diagnostics: format!("the database refused {what}: {e}"),
            expression: None,
        }
    }
}

/// The OperationOutcome of one refused line, naming the input and the line.
fn outcome(input: &ImportInput, line: i64, issues: &[LineIssue]) -> String {
    let issue: Vec<Value> = issues
        .iter()
        .map(|x| {
            let mut i = json!({
                "severity": "error",
                "code": x.code,
                "diagnostics": if line > 0 {
                    format!("{} line {line}: {}", input.url, x.diagnostics)
                } else {
                    x.diagnostics.clone()
                },
            });
            if let Some(e) = &x.expression {
                i["expression"] = json!([e]);
            }
            i
        })
        .collect();
    json!({"resourceType": "OperationOutcome", "issue": issue}).to_string()
}
