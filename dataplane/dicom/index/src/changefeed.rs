//! The change feed: every create, replace and delete of an instance, in order, with the state
//! the instance is in now (Azure's `Current`, `Replaced`, `Deleted`).

use chrono::{DateTime, Utc};

use crate::{Index, Result};

#[derive(Debug, Clone)]
pub struct Change {
    pub sequence: i64,
    pub timestamp: DateTime<Utc>,
    pub action: String,
    pub partition: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub state: &'static str,
    /// The instance's DICOM JSON (BulkDataURIs relative), when asked for and still current.
    pub metadata: Option<String>,
}

/// Which entries: after a sequence number (Azure's v1 `offset`), or in a time window skipping
/// `offset` entries of it (v2).
#[derive(Debug, Clone, Default)]
pub struct ChangeQuery {
    pub offset: i64,
    pub limit: i64,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub include_metadata: bool,
}

/// Writers hold it shared until they commit, taken before their change rows (a store takes it
/// as it begins); numbering takes it exclusively.
pub(crate) const CHANGE_FEED_LOCK: i64 = 0x6864_735f_6466_7371;

const SELECT: &str = "SELECT c.seq, c.ts, c.action, c.partition, c.study_uid, c.series_uid,
        c.sop_uid, c.watermark, i.watermark, CASE WHEN $1 THEN i.metadata END
   FROM dicom_changes c
   LEFT JOIN dicom_instances i ON i.partition = c.partition AND i.sop_uid = c.sop_uid";

/// Numbers the committed entries. Holding the lock exclusively means no writer is between its
/// change rows and its commit, so every row without a number is visible here.
async fn sequence(c: &mut deadpool_postgres::Object) -> Result<()> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CHANGE_FEED_LOCK])
        .await?;
    tx.execute(
        "WITH ready AS (
             SELECT id, row_number() OVER (ORDER BY id) AS n FROM dicom_changes
              WHERE seq IS NULL),
         base AS (SELECT coalesce(max(seq), 0) AS b FROM dicom_changes)
         UPDATE dicom_changes c SET seq = base.b + ready.n
           FROM ready, base WHERE c.id = ready.id",
        &[],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

impl Index {
    pub async fn changes(&self, q: &ChangeQuery) -> Result<Vec<Change>> {
        let mut c = self.pool.get().await?;
        sequence(&mut c).await?;
        let rows = if q.start.is_some() || q.end.is_some() {
            c.query(
                &format!(
                    "{SELECT} WHERE c.seq IS NOT NULL AND ($2::timestamptz IS NULL OR c.ts >= $2)
                       AND ($3::timestamptz IS NULL OR c.ts < $3)
                     ORDER BY c.seq OFFSET $4 LIMIT $5"
                ),
                &[&q.include_metadata, &q.start, &q.end, &q.offset, &q.limit],
            )
            .await?
        } else {
            c.query(
                &format!("{SELECT} WHERE c.seq > $2 ORDER BY c.seq LIMIT $3"),
                &[&q.include_metadata, &q.offset, &q.limit],
            )
            .await?
        };
        Ok(rows.iter().map(change).collect())
    }

    pub async fn latest_change(&self, include_metadata: bool) -> Result<Option<Change>> {
        let mut c = self.pool.get().await?;
        sequence(&mut c).await?;
        let row = c
            .query_opt(
                &format!("{SELECT} WHERE c.seq IS NOT NULL ORDER BY c.seq DESC LIMIT 1"),
                &[&include_metadata],
            )
            .await?;
        Ok(row.as_ref().map(change))
    }
}

fn change(r: &tokio_postgres::Row) -> Change {
    let action: String = r.get(2);
    let entry_watermark: i64 = r.get(7);
    let now: Option<i64> = r.get(8);
    let state = match now {
        None => "Deleted",
        Some(w) if w == entry_watermark && action != "Delete" => "Current",
        Some(_) if action == "Delete" => "Deleted",
        Some(_) => "Replaced",
    };
    Change {
        sequence: r.get(0),
        timestamp: r.get(1),
        action,
        partition: r.get(3),
        study_uid: r.get(4),
        series_uid: r.get(5),
        sop_uid: r.get(6),
        state,
        metadata: if state == "Current" { r.get(9) } else { None },
    }
}

/// A data partition, as Azure lists them.
#[derive(Debug, Clone, PartialEq)]
pub struct Partition {
    pub key: i64,
    pub name: String,
    pub created: DateTime<Utc>,
}

impl Index {
    /// The partitions instances were ever stored in. Partitions are not recorded apart: they
    /// are created by their first store, and the change feed keeps every store, so its first
    /// entry for a partition is its creation. The key is stable: the default partition's is
    /// 1, as on Azure; another's is one more than the id of its first entry.
    pub async fn partitions(&self) -> Result<Vec<Partition>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT partition, min(ts), min(id) FROM dicom_changes
                  GROUP BY partition ORDER BY min(id)",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| {
                let name: String = r.get(0);
                let first: i64 = r.get(2);
                Partition {
                    key: if name == crate::DEFAULT_PARTITION {
                        1
                    } else {
                        first + 1
                    },
                    name,
                    created: r.get(1),
                }
            })
            .collect())
    }
}
