//! The Postgres pool and the migration runner that every service's store uses.
//!
//! Migrations are numbered SQL scripts compiled into the binary. They run at start-up inside one
//! transaction each, under an advisory lock, so that several replicas starting together apply
//! each script once.

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, StatementCache,
};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{NoTls, Row};

/// One versioned schema change.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("invalid PostgreSQL connection string: {0}")]
    Config(String),
    #[error("cannot reach PostgreSQL: {0}")]
    Connect(String),
    #[error("migration {version} ({name}) failed: {source}")]
    Migration {
        version: i32,
        name: &'static str,
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
}

/// A pooled connection or a transaction on one that can also send SQL built per request with
/// its parameters' types given. `query` with SQL text prepares a named statement first and waits
/// for its description (two round trips, and a Close); this sends Parse, Bind and Execute of
/// the unnamed statement at once, so the server parses and plans it for these values in one
/// round trip and nothing stays prepared on the connection.
pub trait TypedQuery: GenericClient {
    fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send;

    /// The statements prepared on this connection (deadpool's cache, shared with
    /// `prepare_cached`).
    fn statement_cache(&self) -> &StatementCache;

    /// Runs `sql` as a statement prepared once per connection and kept, for SQL whose plan
    /// does not depend on its values: PostgreSQL then plans it generically after five runs
    /// instead of for every request. SQL built per request comes in many texts, so the cache
    /// is emptied when it holds [`PREPARED_LIMIT`] statements rather than grow without bound.
    ///
    /// `force_generic` is for statements where PostgreSQL would keep planning anew: it does so
    /// whenever the generic plan's estimate is worse than the custom ones', which arrays of ids
    /// (of a length it cannot know) make it; an include's lookup spent 0.44 ms planning for
    /// 0.09 ms of work. The setting is switched on and off around the statement in the same
    /// round trip (the three messages are pipelined); that costs PostgreSQL two small
    /// transactions, more than it saves where the generic plan is chosen anyway.
    fn query_prepared(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
        force_generic: bool,
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        async move {
            if self.statement_cache().size() >= PREPARED_LIMIT {
                self.statement_cache().clear();
            }
            let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
            let statement = self.prepare_typed_cached(sql, &types).await?;
            let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
            if !force_generic {
                return self.query(&statement, &values).await;
            }
            // Polled in order, so sent in order: each request leaves on its first poll.
            let (_, rows, _) = futures_util::try_join!(
                self.batch_execute("SET plan_cache_mode = force_generic_plan"),
                self.query(&statement, &values),
                self.batch_execute("RESET plan_cache_mode"),
            )?;
            Ok(rows)
        }
    }
}

/// How many prepared statements a connection keeps: each holds a plan in its server process.
pub const PREPARED_LIMIT: usize = 128;

impl TypedQuery for deadpool_postgres::Client {
    fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        let client: &tokio_postgres::Client = self;
        client.query_typed(sql, params)
    }

    fn statement_cache(&self) -> &StatementCache {
        &self.statement_cache
    }
}

impl TypedQuery for deadpool_postgres::Transaction<'_> {
    fn query_typed(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> impl Future<Output = Result<Vec<Row>, tokio_postgres::Error>> + Send {
        tokio_postgres::Transaction::query_typed(self, sql, params)
    }

    fn statement_cache(&self) -> &StatementCache {
        &self.statement_cache
    }
}

/// Builds a pool for `url` (a libpq URL or key=value string) and checks one connection.
pub async fn connect(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let mut pg =
        tokio_postgres::Config::from_str(url).map_err(|e| DbError::Config(e.to_string()))?;
    if pg.get_application_name().is_none() {
        pg.application_name("hds");
    }
    if pg.get_connect_timeout().is_none() {
        pg.connect_timeout(Duration::from_secs(10));
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(max_size.max(1))
        .build()
        .map_err(|e| DbError::Config(e.to_string()))?;
    drop(
        pool.get()
            .await
            .map_err(|e| DbError::Connect(e.to_string()))?,
    );
    Ok(pool)
}

/// For tests: the admin URL of the test PostgreSQL (`HDS_TEST_POSTGRES_URL`).
pub fn test_admin_url() -> String {
    std::env::var("HDS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// For tests: a new, empty database on the test PostgreSQL; its URL.
pub async fn fresh_test_database() -> String {
    let admin = test_admin_url();
    let db = format!("hds_test_{}", uuid::Uuid::new_v4().simple());
    ensure_database(&admin, &db)
        .await
        .expect("the test PostgreSQL must be reachable (HDS_TEST_POSTGRES_URL)");
    match admin.rsplit_once('/') {
        Some((server, _)) => format!("{server}/{db}"),
        None => panic!("HDS_TEST_POSTGRES_URL must be a postgres:// URL"),
    }
}

/// Creates the database `name` on the server behind `admin_url` unless it exists. Used by
/// `hds up` and tests; in a cluster the operator provisions databases.
pub async fn ensure_database(admin_url: &str, name: &str) -> Result<(), DbError> {
    let (client, conn) = tokio_postgres::connect(admin_url, NoTls)
        .await
        .map_err(|e| DbError::Connect(e.to_string()))?;
    let task = tokio::spawn(conn);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .await?
        .is_some();
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match client
            .batch_execute(&format!("CREATE DATABASE {quoted}"))
            .await
        {
            Ok(()) => {}
            // Two services racing to create it: the loser finds it there, which is what it wanted.
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
            Err(e) => return Err(e.into()),
        }
    }
    drop(client);
    let _ = task.await;
    Ok(())
}

/// Applies the migrations not yet recorded in `schema_migrations`, in version order.
pub async fn migrate(
    pool: &Pool,
    component: &str,
    migrations: &[Migration],
) -> Result<(), DbError> {
    let mut client = pool.get().await?;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                 component text NOT NULL,
                 version integer NOT NULL,
                 name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now(),
                 PRIMARY KEY (component, version))",
        )
        .await?;
    let mut sorted = migrations.to_vec();
    sorted.sort_by_key(|m| m.version);
    for m in sorted {
        let tx = client.transaction().await?;
        // Serialises replicas that start together; released at commit.
        tx.execute("SELECT pg_advisory_xact_lock(hashtext($1))", &[&component])
            .await?;
        let done = tx
            .query_opt(
                "SELECT 1 FROM schema_migrations WHERE component = $1 AND version = $2",
                &[&component, &m.version],
            )
            .await?
            .is_some();
        if done {
            tx.commit().await?;
            continue;
        }
        tx.batch_execute(m.sql)
            .await
            .map_err(|source| DbError::Migration {
                version: m.version,
                name: m.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO schema_migrations (component, version, name) VALUES ($1, $2, $3)",
            &[&component, &m.version, &m.name],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            component,
            version = m.version,
            name = m.name,
            "migration applied"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_keeps_no_more_prepared_statements_than_the_limit() {
        let pool = connect(&fresh_test_database().await, 1).await.unwrap();
        let conn = pool.get().await.unwrap();
        let kept = || async {
            let rows = conn
                .simple_query(
                    "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'SELECT $1%'",
                )
                .await
                .unwrap();
            match &rows[1] {
                tokio_postgres::SimpleQueryMessage::Row(r) => {
                    r.get(0).unwrap().parse::<usize>().unwrap()
                }
                other => panic!("{other:?}"),
            }
        };
        for i in 0..(2 * PREPARED_LIMIT as i64 + 3) {
            let sql = format!("SELECT $1::int8 + {i}");
            let rows = conn
                .query_prepared(&sql, &[(&1i64, Type::INT8)], false)
                .await
                .unwrap();
            assert_eq!(rows[0].get::<_, i64>(0), 1 + i);
            assert!(kept().await <= PREPARED_LIMIT, "after {i}");
        }
        // Kept and reused: running one again prepares nothing new.
        let before = kept().await;
        let last = format!("SELECT $1::int8 + {}", 2 * PREPARED_LIMIT + 2);
        conn.query_prepared(&last, &[(&1i64, Type::INT8)], false)
            .await
            .unwrap();
        assert_eq!(kept().await, before);
        assert!(before > 0);
    }
}
