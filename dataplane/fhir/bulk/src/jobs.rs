//! What `$export` and `$import` jobs share: a worker loop that claims jobs with session advisory
//! locks, so a job whose process died is free again the moment its connection closes, and no
//! two replicas ever run one job.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{GenericClient, Object, Pool};
use tokio::sync::{Notify, Semaphore};
use tokio_postgres::Row;
use uuid::Uuid;

/// Jobs of one kind one service runs at once; more wait queued.
const CONCURRENT_JOBS: usize = 2;

/// One kind of job: its table and the advisory-lock space its ids are locked in.
#[derive(Clone, Copy)]
pub(crate) struct JobKind {
    pub table: &'static str,
    pub lock_space: i64,
}

/// Claims and runs jobs for as long as the service lives: a new job wakes it, and it looks
/// now and then for jobs another replica queued or left behind when it died. `run` gets the
/// connection that holds the job's lock and must leave the job in a final state or fail.
pub(crate) async fn worker<F, Fut>(pool: Pool, kind: JobKind, wake: Arc<Notify>, run: F)
where
    F: Fn(Object, Uuid) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Object> + Send + 'static,
{
    let running = Arc::new(Semaphore::new(CONCURRENT_JOBS));
    let run = Arc::new(run);
    loop {
        while let Ok(permit) = running.clone().try_acquire_owned() {
            match claim(&pool, kind).await {
                Ok(Some((conn, id))) => {
                    let run = run.clone();
                    let wake = wake.clone();
                    tokio::spawn(async move {
                        let conn = run(conn, id).await;
                        release(conn, kind, id).await;
                        drop(permit);
                        wake.notify_one();
                    });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(table = kind.table, error = %e, "cannot look for jobs; retrying");
                    break;
                }
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), wake.notified()).await;
    }
}

/// An active job no worker holds, with the connection that now holds its lock.
async fn claim(pool: &Pool, kind: JobKind) -> Result<Option<(Object, Uuid)>, String> {
    let conn = pool.get().await.map_err(|e| e.to_string())?;
    let sql = format!(
        "SELECT id FROM {} WHERE status IN ('queued', 'running') ORDER BY created",
        kind.table
    );
    let ids: Vec<Uuid> = conn
        .query(&sql, &[])
        .await
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in ids {
        let locked: bool = conn
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1::uuid::text, $2))",
                &[&id, &kind.lock_space],
            )
            .await
            .map_err(|e| e.to_string())?
            .get(0);
        if locked {
            return Ok(Some((conn, id)));
        }
    }
    Ok(None)
}

async fn release(conn: Object, kind: JobKind, id: Uuid) {
    let unlocked = conn
        .query_one(
            "SELECT pg_advisory_unlock(hashtextextended($1::uuid::text, $2))",
            &[&id, &kind.lock_space],
        )
        .await;
    if unlocked.is_err() {
        // A connection that may still hold the lock must not go back to the pool.
        drop(Object::take(conn));
    }
}

/// A kind of job and how one is run.
pub(crate) trait JobRunner: Send + Sync + 'static {
    const KIND: JobKind;
    type Error: std::fmt::Display + Send;
    fn pool(&self) -> &Pool;
    fn wake(&self) -> &Arc<Notify>;
    /// Runs (or resumes) the job whose lock `conn` holds, to a final state.
    fn run(
        &self,
        conn: &mut Object,
        id: Uuid,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// [`worker`] for a [`JobRunner`]: a job whose run fails is marked failed with the reason.
pub(crate) async fn serve<R: JobRunner>(runner: Arc<R>) {
    let (pool, wake) = (runner.pool().clone(), runner.wake().clone());
    worker(pool, R::KIND, wake, move |mut conn, id| {
        let runner = runner.clone();
        async move {
            if let Err(e) = runner.run(&mut conn, id).await {
                fail(&conn, R::KIND, id, &e.to_string()).await;
            }
            conn
        }
    })
    .await;
}

/// Marks a queued job running; one already running (resumed) stays so.
pub(crate) async fn mark_running(
    conn: &Object,
    kind: JobKind,
    id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "UPDATE {} SET status = 'running', updated = now() WHERE id = $1 AND status = 'queued'",
        kind.table
    );
    conn.execute(&sql, &[&id]).await.map(drop)
}

/// Moves a job walking types on to type `next`, from its start.
pub(crate) async fn next_type(
    conn: &Object,
    kind: JobKind,
    id: Uuid,
    next: i32,
) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "UPDATE {} SET type_index = $2, after_id = NULL, updated = now()
          WHERE id = $1 AND status = 'running'",
        kind.table
    );
    conn.execute(&sql, &[&id, &next]).await.map(drop)
}

/// Marks a running job completed.
pub(crate) async fn complete(
    conn: &Object,
    kind: JobKind,
    id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "UPDATE {} SET status = 'completed', updated = now() WHERE id = $1 AND status = 'running'",
        kind.table
    );
    conn.execute(&sql, &[&id]).await?;
    tracing::info!(table = kind.table, job = %id, "job completed");
    Ok(())
}

/// One job's row.
pub(crate) async fn row(
    client: &impl GenericClient,
    kind: JobKind,
    id: Uuid,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let sql = format!("SELECT * FROM {} WHERE id = $1", kind.table);
    client.query_opt(&sql, &[&id]).await
}

/// Marks a job cancelled; its row as it was before, or None when there is no such job or it
/// was cancelled already. A running job's worker sees it at its next step.
pub(crate) async fn cancel(
    client: &impl GenericClient,
    kind: JobKind,
    id: Uuid,
) -> Result<Option<Row>, tokio_postgres::Error> {
    let sql = format!(
        "UPDATE {t} new SET status = 'cancelled', updated = now()
           FROM {t} old
          WHERE new.id = $1 AND old.id = new.id AND old.status <> 'cancelled'
         RETURNING old.*",
        t = kind.table
    );
    client.query_opt(&sql, &[&id]).await
}

/// Records why a job failed, unless it finished or was cancelled meanwhile.
pub(crate) async fn fail(conn: &Object, kind: JobKind, id: Uuid, message: &str) {
    tracing::error!(table = kind.table, job = %id, error = message, "job failed");
    let sql = format!(
        "UPDATE {} SET status = 'failed', message = $2, updated = now()
          WHERE id = $1 AND status = 'running'",
        kind.table
    );
    let _ = conn.execute(&sql, &[&id, &message]).await;
}
