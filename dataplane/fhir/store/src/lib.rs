//! The FHIR service's system of record in PostgreSQL.
//!
//! Layout (see `migrations/`): `resources` says where each resource's current version is,
//! `resource_versions` holds every kept version as the exact JSON text the server returns, and
//! the `search_*` tables hold the index rows of current versions. Every write puts all three in
//! one transaction, so a search can never see a resource its index disagrees with.
//!
//! The functions take a [`deadpool_postgres::Transaction`] rather than opening their own, so that
//! a conditional interaction (search, then write) or a FHIR transaction Bundle composes several of
//! them atomically.

mod history;
mod index;
mod tsvector;
mod write;

use chrono::{DateTime, SubsecRound, Utc};
use deadpool_postgres::{GenericClient, Pool};
use hds_common::db::{self, Migration};

pub use deadpool_postgres::{Object as Connection, Transaction};
pub use history::{HistoryPage, HistoryQuery, HistoryScope, history};
pub use index::{
    CanonicalQuantity, CompositeEntry, DateEntry, IndexEntries, NumberEntry, QuantityEntry,
    ReferenceEntry, StringEntry, TextEntry, TokenEntry, UriEntry,
};
pub use tsvector::TsVector;
pub use write::{
    DeleteOutcome, VersionCheck, VersionWrite, WriteOutcome, create, create_many, delete,
    hard_delete, purge_history, replace_index, stamp, update, write_version,
};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "resources",
        sql: include_str!("../migrations/0001_resources.sql"),
    },
    Migration {
        version: 2,
        name: "search_index",
        sql: include_str!("../migrations/0002_search_index.sql"),
    },
    Migration {
        version: 3,
        name: "custom_search",
        sql: include_str!("../migrations/0003_custom_search.sql"),
    },
    Migration {
        version: 4,
        name: "date_ranges",
        sql: include_str!("../migrations/0004_date_ranges.sql"),
    },
    Migration {
        version: 5,
        name: "fulltext_ucum",
        sql: include_str!("../migrations/0005_fulltext_ucum.sql"),
    },
    Migration {
        version: 6,
        name: "composites",
        sql: include_str!("../migrations/0006_composites.sql"),
    },
    Migration {
        version: 7,
        name: "covering_indexes",
        sql: include_str!("../migrations/0007_covering_indexes.sql"),
    },
    Migration {
        version: 8,
        name: "covering_date_indexes",
        sql: include_str!("../migrations/0008_covering_date_indexes.sql"),
    },
    Migration {
        version: 9,
        name: "date_span_gist",
        sql: include_str!("../migrations/0009_date_span_gist.sql"),
    },
    Migration {
        version: 10,
        name: "export_jobs",
        sql: include_str!("../migrations/0010_export_jobs.sql"),
    },
    Migration {
        version: 11,
        name: "reference_owner_covering",
        sql: include_str!("../migrations/0011_reference_owner_covering.sql"),
    },
    Migration {
        version: 12,
        name: "import_jobs",
        sql: include_str!("../migrations/0012_import_jobs.sql"),
    },
    Migration {
        version: 13,
        name: "bulk_delete_jobs",
        sql: include_str!("../migrations/0013_bulk_delete_jobs.sql"),
    },
    Migration {
        version: 14,
        name: "export_type_filters",
        sql: include_str!("../migrations/0014_export_type_filters.sql"),
    },
    Migration {
        version: 15,
        name: "union_parameter_rows",
        sql: include_str!("../migrations/0015_union_parameter_rows.sql"),
    },
    Migration {
        version: 16,
        name: "drop_reference_target_index",
        sql: include_str!("../migrations/0016_drop_reference_target_index.sql"),
    },
    Migration {
        version: 17,
        name: "drop_date_btree_indexes",
        sql: include_str!("../migrations/0017_drop_date_btree_indexes.sql"),
    },
    Migration {
        version: 18,
        name: "narrowed_reference_rows",
        sql: include_str!("../migrations/0018_narrowed_reference_rows.sql"),
    },
    Migration {
        version: 19,
        name: "fulltext_words_from_hds",
        sql: include_str!("../migrations/0019_fulltext_words_from_hds.sql"),
    },
    Migration {
        version: 20,
        name: "date_gist_integer_key",
        sql: include_str!("../migrations/0020_date_gist_integer_key.sql"),
    },
    Migration {
        version: 21,
        name: "string_prefix_keys",
        sql: include_str!("../migrations/0021_string_prefix_keys.sql"),
    },
    Migration {
        version: 22,
        name: "export_errors",
        sql: include_str!("../migrations/0022_export_errors.sql"),
    },
];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {}", db_message(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error(transparent)]
    Setup(#[from] db::DbError),
    #[error("stored resource {0} is not valid JSON: {1}")]
    Corrupt(String, serde_json::Error),
}

/// tokio-postgres prints "db error" for server errors; the server's own message says what failed.
fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// How a version came to be, as FHIR history reports it in `Bundle.entry.request.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }

    pub fn parse(s: &str) -> Self {
        match s {
            "POST" => Method::Post,
            "PATCH" => Method::Patch,
            "DELETE" => Method::Delete,
            _ => Method::Put,
        }
    }
}

/// One version of one resource. `body` is `None` for a deletion.
#[derive(Debug, Clone)]
pub struct StoredVersion {
    pub res_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: DateTime<Utc>,
    pub method: Method,
    pub body: Option<String>,
}

impl StoredVersion {
    pub fn is_deleted(&self) -> bool {
        self.body.is_none()
    }
}

/// The store: a pool on the service's own database, migrated.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
}

impl Store {
    /// Connects and applies pending migrations.
    pub async fn open(url: &str, pool_size: usize) -> Result<Self> {
        let pool = db::connect(url, pool_size).await?;
        db::migrate(&pool, "fhir", MIGRATIONS).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn connection(&self) -> Result<Connection> {
        Ok(self.pool.get().await?)
    }

    /// Is the database answering? For `/health/check`.
    pub async fn ping(&self) -> Result<()> {
        let c = self.pool.get().await?;
        c.simple_query("SELECT 1").await?;
        Ok(())
    }
}

/// Timestamps are cut to milliseconds: that is what `meta.lastUpdated` shows, and a stored value
/// finer than the one clients see would make `If-Modified-Since` and `_since` disagree with it.
/// A new server-assigned resource id: a UUID whose leading bits are the time (version 7), so
/// that the rows of new resources land at the end of every index keyed by id rather than on a
/// random page of each; random ids made every create dirty (and log) a page per index.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// The FHIR `instant` form of a stored timestamp.
pub fn instant(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The current version of a resource (deleted or not), or `None` if it never existed.
pub async fn read(
    client: &impl GenericClient,
    res_type: &str,
    id: &str,
) -> Result<Option<StoredVersion>> {
    let stmt = client
        .prepare_cached(
            "SELECT v.version_id, v.last_updated, v.method, v.body
               FROM resources r
               JOIN resource_versions v
                 ON v.res_type = r.res_type AND v.id = r.id AND v.version_id = r.version_id
              WHERE r.res_type = $1 AND r.id = $2",
        )
        .await?;
    let row = client.query_opt(&stmt, &[&res_type, &id]).await?;
    Ok(row.map(|r| StoredVersion {
        res_type: res_type.to_owned(),
        id: id.to_owned(),
        version_id: r.get(0),
        last_updated: r.get(1),
        method: Method::parse(r.get(2)),
        body: r.get(3),
    }))
}

/// One kept version, or `None` if it never existed or was not kept.
pub async fn vread(
    client: &impl GenericClient,
    res_type: &str,
    id: &str,
    version_id: i64,
) -> Result<Option<StoredVersion>> {
    let stmt = client
        .prepare_cached(
            "SELECT last_updated, method, body FROM resource_versions
              WHERE res_type = $1 AND id = $2 AND version_id = $3",
        )
        .await?;
    let row = client
        .query_opt(&stmt, &[&res_type, &id, &version_id])
        .await?;
    Ok(row.map(|r| StoredVersion {
        res_type: res_type.to_owned(),
        id: id.to_owned(),
        version_id,
        last_updated: r.get(0),
        method: Method::parse(r.get(1)),
        body: r.get(2),
    }))
}
