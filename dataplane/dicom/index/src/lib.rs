//! The DICOM metadata index in PostgreSQL (`migrations/`): which studies, series and instances
//! exist, where each instance's file is, what QIDO matches and returns ([`qido`]), every
//! instance's metadata as DICOM JSON, and the change feed ([`changefeed`]).
//!
//! Files themselves live in a blob store the server crate owns; a store here records a file
//! already written, and a delete returns the files to remove once the rows are gone.

pub mod changefeed;
pub mod extended;
mod group;
pub mod orphans;
mod pipelined;
pub mod qido;
pub mod study;
mod write;

use std::collections::HashMap;

use deadpool_postgres::Pool;
use hds_common::db::{self, DbError, Migration};
use hds_dicom_model::PixelLayout;

pub use group::DurableInstance;
pub use write::{NewInstance, StoreOutcome, StoreReport};

pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "dicom",
        sql: include_str!("../migrations/0001_dicom.sql"),
    },
    Migration {
        version: 2,
        name: "fhir_sync",
        sql: include_str!("../migrations/0002_fhir_sync.sql"),
    },
    Migration {
        version: 3,
        name: "extended_query_tags",
        sql: include_str!("../migrations/0003_extended_query_tags.sql"),
    },
    Migration {
        version: 4,
        name: "extended_tag_errors",
        sql: include_str!("../migrations/0004_extended_tag_errors.sql"),
    },
    Migration {
        version: 5,
        name: "json_storage",
        sql: include_str!("../migrations/0005_json_storage.sql"),
    },
];

/// The partition every request uses when data partitions are off (Azure's name for it).
pub const DEFAULT_PARTITION: &str = "Microsoft.Default";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The files a store would name could not be made durable; nothing was committed.
    #[error("the instance files could not be synced to disk, so nothing was stored: {0}")]
    FilesNotDurable(String),
    /// The work was cut off before it could answer (a task that ended unexpectedly).
    #[error("{0}")]
    Interrupted(String),
}

pub type Result<T, E = IndexError> = std::result::Result<T, E>;

#[derive(Clone)]
pub struct Index {
    pool: Pool,
    /// POSTs waiting to be recorded together (see [`Index::store_posted`]).
    groups: std::sync::Arc<group::StoreGroups>,
}

/// One stored instance's file, as a retrieve needs it.
#[derive(Debug, Clone)]
pub struct InstanceFile {
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub transfer_syntax: String,
    pub blob: String,
    pub size: i64,
    pub watermark: i64,
}

/// What a retrieve or delete names: a study, a series of it, or an instance of that.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub partition: &'a str,
    pub study: &'a str,
    pub series: Option<&'a str>,
    pub instance: Option<&'a str>,
}

impl Index {
    pub async fn open(url: &str, pool_size: usize) -> Result<Self> {
        let pool = db::connect(url, pool_size).await?;
        db::migrate(&pool, "dicom", MIGRATIONS).await?;
        Ok(Self {
            pool,
            groups: Default::default(),
        })
    }

    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    pub async fn ping(&self) -> Result<()> {
        self.pool.get().await?.simple_query("SELECT 1").await?;
        Ok(())
    }

    /// Which of these SOP Instance UIDs are stored in the partition already.
    pub async fn existing(&self, partition: &str, sop_uids: &[&str]) -> Result<Vec<String>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT sop_uid FROM dicom_instances WHERE partition = $1 AND sop_uid = ANY($2)",
                &[&partition, &sop_uids],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The files of what `target` names, in (series, instance number, SOP UID) order.
    pub async fn files(&self, target: Target<'_>) -> Result<Vec<InstanceFile>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT study_uid, series_uid, sop_uid, transfer_syntax, blob, size, watermark
                   FROM dicom_instances
                  WHERE partition = $1 AND study_uid = $2
                    AND ($3::text IS NULL OR series_uid = $3)
                    AND ($4::text IS NULL OR sop_uid = $4)
                  ORDER BY series_uid, instance_number NULLS LAST, sop_uid",
                &[
                    &target.partition,
                    &target.study,
                    &target.series,
                    &target.instance,
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| InstanceFile {
                study_uid: r.get(0),
                series_uid: r.get(1),
                sop_uid: r.get(2),
                transfer_syntax: r.get(3),
                blob: r.get(4),
                size: r.get(5),
                watermark: r.get(6),
            })
            .collect())
    }

    /// The pixel layouts of the instances `target` names that are not stored as `except_ts`,
    /// by SOP Instance UID, read from their metadata so nothing needs decoding to know them.
    pub async fn pixel_layouts(
        &self,
        target: Target<'_>,
        except_ts: &str,
    ) -> Result<HashMap<String, PixelLayout>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT sop_uid, m->'00280100'->'Value'->>0, m->'00280101'->'Value'->>0,
                        m->'00280002'->'Value'->>0
                   FROM (SELECT sop_uid, metadata::json AS m FROM dicom_instances
                          WHERE partition = $1 AND study_uid = $2
                            AND ($3::text IS NULL OR series_uid = $3)
                            AND ($4::text IS NULL OR sop_uid = $4)
                            AND transfer_syntax <> $5) AS i",
                &[
                    &target.partition,
                    &target.study,
                    &target.series,
                    &target.instance,
                    &except_ts,
                ],
            )
            .await?;
        let number = |r: &tokio_postgres::Row, i: usize| {
            r.get::<_, Option<String>>(i)
                .and_then(|v| v.parse::<u16>().ok())
        };
        Ok(rows
            .iter()
            .map(|r| {
                let layout = PixelLayout {
                    bits_allocated: number(r, 1),
                    bits_stored: number(r, 2),
                    samples: number(r, 3),
                };
                (r.get(0), layout)
            })
            .collect())
    }

    /// The DICOM JSON of every instance `target` names (BulkDataURIs still relative), and a
    /// validator that changes whenever any of them is stored, replaced or deleted.
    pub async fn metadata(&self, target: Target<'_>) -> Result<(Vec<String>, String)> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT metadata, watermark FROM dicom_instances
                  WHERE partition = $1 AND study_uid = $2
                    AND ($3::text IS NULL OR series_uid = $3)
                    AND ($4::text IS NULL OR sop_uid = $4)
                  ORDER BY series_uid, instance_number NULLS LAST, sop_uid",
                &[
                    &target.partition,
                    &target.study,
                    &target.series,
                    &target.instance,
                ],
            )
            .await?;
        // Watermarks only grow, so their sum and count change with any store or delete.
        let mut sum: i128 = 0;
        let texts = rows
            .iter()
            .map(|r| {
                sum += i128::from(r.get::<_, i64>(1));
                r.get(0)
            })
            .collect::<Vec<String>>();
        Ok((texts, format!("{:x}-{:x}", rows.len(), sum)))
    }

    /// Removes what `target` names, with a Delete entry per instance in the change feed, and
    /// returns the files to remove (after this has committed).
    pub async fn delete(&self, target: Target<'_>) -> Result<Vec<String>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let rows = tx
            .query(
                "DELETE FROM dicom_instances
                  WHERE partition = $1 AND study_uid = $2
                    AND ($3::text IS NULL OR series_uid = $3)
                    AND ($4::text IS NULL OR sop_uid = $4)
                 RETURNING series_uid, sop_uid, watermark, blob",
                &[
                    &target.partition,
                    &target.study,
                    &target.series,
                    &target.instance,
                ],
            )
            .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let series: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        let sops: Vec<String> = rows.iter().map(|r| r.get(1)).collect();
        let watermarks: Vec<i64> = rows.iter().map(|r| r.get(2)).collect();
        tx.execute(
            "WITH errors AS (DELETE FROM dicom_tag_errors WHERE partition = $1 AND sop_uid = ANY($2))
             DELETE FROM dicom_tag_values WHERE partition = $1 AND sop_uid = ANY($2)",
            &[&target.partition, &sops],
        )
        .await?;
        write::drop_empty(&tx, target.partition, target.study).await?;
        write::record_changes(
            &tx,
            "Delete",
            target.partition,
            &vec![target.study.to_owned(); rows.len()],
            &series,
            &sops,
            &watermarks,
        )
        .await?;
        tx.commit().await?;
        Ok(rows.iter().map(|r| r.get(3)).collect())
    }
}

/// PersonName text as matching compares it: lowercase, components and groups as spaces.
pub fn name_words(pn: &str) -> String {
    let mut out = String::with_capacity(pn.len());
    for c in pn.chars() {
        match c {
            '^' | '=' => out.push(' '),
            c => out.extend(c.to_lowercase()),
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A `YYYYMMDD` date as PostgreSQL's date, if it is one.
pub fn dicom_date(s: &str) -> Option<chrono::NaiveDate> {
    let s = s.trim();
    if s.len() != 8 {
        // The pre-3.0 form `YYYY.MM.DD` still turns up.
        let compact: String = s.chars().filter(|c| *c != '.').collect();
        if compact.len() == 8 && compact.len() != s.len() {
            return dicom_date(&compact);
        }
        return None;
    }
    chrono::NaiveDate::parse_from_str(s, "%Y%m%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_as_words() {
        assert_eq!(name_words("Doe^John^^Dr"), "doe john dr");
        assert_eq!(
            name_words("Yamada^Tarou=山田^太郎"),
            "yamada tarou 山田 太郎"
        );
    }

    #[test]
    fn dates() {
        assert_eq!(
            dicom_date("20040119"),
            chrono::NaiveDate::from_ymd_opt(2004, 1, 19)
        );
        assert_eq!(
            dicom_date("2004.01.19"),
            chrono::NaiveDate::from_ymd_opt(2004, 1, 19)
        );
        assert_eq!(dicom_date("20041319"), None);
        assert_eq!(dicom_date("2004"), None);
    }
}
