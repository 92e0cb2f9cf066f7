//! Extended query tags: their definitions, the values stores and reindexing write, and the
//! reindex operation that fills them in for instances stored before a tag was added.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use serde_json::Value;
use tokio_postgres::types::ToSql;

use crate::{Index, Result, dicom_date, name_words};

/// Value representations a tag may be matched on (Azure's list).
pub const SUPPORTED_VRS: &[&str] = &[
    "AE", "AS", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "PN", "SH", "SL", "SS", "TM", "UI",
    "UL", "US",
];

#[derive(Debug, Clone, PartialEq)]
pub struct ExtendedTag {
    pub tag: String,
    pub vr: String,
    pub private_creator: Option<String>,
    pub level: String,
    pub status: String,
    pub query_enabled: bool,
    pub operation: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub tags: Vec<String>,
    pub percent: i64,
    pub error: Option<String>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum TagError {
    #[error("the extended query tag {0} exists already")]
    Exists(String),
    #[error(transparent)]
    Index(#[from] crate::IndexError),
}

impl From<tokio_postgres::Error> for TagError {
    fn from(e: tokio_postgres::Error) -> Self {
        TagError::Index(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for TagError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        TagError::Index(e.into())
    }
}

/// What one instance holds of one tag, in the column its VR compares in.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TagValue {
    pub text: Option<String>,
    pub number: Option<f64>,
    pub date: Option<chrono::NaiveDate>,
}

/// The value of `tag` (top level) in an instance's DICOM JSON, as `vr` matches it.
pub fn value_of(metadata: &Value, tag: &str, vr: &str) -> Option<TagValue> {
    let v = metadata.get(tag)?.get("Value")?.get(0)?;
    let text = match v {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Object(pn) => pn.get("Alphabetic")?.as_str()?.to_owned(),
        _ => return None,
    };
    let mut out = TagValue::default();
    match vr {
        "DA" => out.date = Some(dicom_date(&text)?),
        "DS" | "FD" | "FL" | "IS" | "SL" | "SS" | "UL" | "US" => {
            out.number = Some(text.parse::<f64>().ok().filter(|f| f.is_finite())?)
        }
        "PN" => out.text = Some(name_words(&text)),
        _ => out.text = Some(text),
    }
    Some(out)
}

impl Index {
    pub async fn extended_tags(&self) -> Result<Vec<ExtendedTag>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT tag, vr, private_creator, level, status, query_enabled, operation
                   FROM dicom_extended_tags ORDER BY tag",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ExtendedTag {
                tag: r.get(0),
                vr: r.get(1),
                private_creator: r.get(2),
                level: r.get(3),
                status: r.get(4),
                query_enabled: r.get(5),
                operation: r.get::<_, Option<uuid::Uuid>>(6).map(|u| u.to_string()),
            })
            .collect())
    }

    /// Adds tags (status `Adding`) and the reindex operation that will make them `Ready`.
    pub async fn add_extended_tags(&self, tags: &[ExtendedTag]) -> Result<String, TagError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        let id = uuid::Uuid::new_v4();
        let names: Vec<String> = tags.iter().map(|t| t.tag.clone()).collect();
        tx.execute(
            "INSERT INTO dicom_operations (id, kind, status, tags, start_xid)
             VALUES ($1, 'reindex', 'notStarted', $2, pg_current_xact_id())",
            &[&id, &names],
        )
        .await?;
        for t in tags {
            let n = tx
                .execute(
                    "INSERT INTO dicom_extended_tags (tag, vr, private_creator, level, status, operation)
                     VALUES ($1, $2, $3, $4, 'Adding', $5) ON CONFLICT DO NOTHING",
                    &[&t.tag, &t.vr, &t.private_creator, &t.level, &id],
                )
                .await?;
            if n == 0 {
                return Err(TagError::Exists(t.tag.clone()));
            }
        }
        tx.commit().await?;
        Ok(id.to_string())
    }

    /// Removes a tag and its values; false when there was none.
    pub async fn delete_extended_tag(&self, tag: &str) -> Result<bool> {
        let c = self.pool.get().await?;
        Ok(
            c.execute("DELETE FROM dicom_extended_tags WHERE tag = $1", &[&tag])
                .await?
                > 0,
        )
    }

    pub async fn operation(&self, id: &str) -> Result<Option<Operation>> {
        let Ok(id) = uuid::Uuid::parse_str(id) else {
            return Ok(None);
        };
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT id, kind, status, tags, total, done, error, created, updated
                   FROM dicom_operations WHERE id = $1",
                &[&id],
            )
            .await?;
        Ok(row.map(|r| {
            let total: Option<i64> = r.get(4);
            let done: i64 = r.get(5);
            let status: String = r.get(2);
            Operation {
                id: r.get::<_, uuid::Uuid>(0).to_string(),
                kind: r.get(1),
                percent: match (status.as_str(), total) {
                    ("completed", _) => 100,
                    (_, Some(t)) if t > 0 => (done * 100 / t).min(99),
                    _ => 0,
                },
                status,
                tags: r.get(3),
                error: r.get(6),
                created: r.get(7),
                updated: r.get(8),
            }
        }))
    }

    /// Runs reindex operations until none is left; the number of instances indexed.
    pub async fn reindex_pending(&self) -> Result<u64> {
        let mut indexed = 0;
        loop {
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            let Some(op) = tx
                .query_opt(
                    "SELECT id, tags, cursor_partition, cursor_sop, total,
                            pg_snapshot_xmin(pg_current_snapshot()) > start_xid
                       FROM dicom_operations
                      WHERE kind = 'reindex' AND status IN ('notStarted', 'running')
                      ORDER BY created LIMIT 1 FOR UPDATE SKIP LOCKED",
                    &[],
                )
                .await?
            else {
                return Ok(indexed);
            };
            let id: uuid::Uuid = op.get(0);
            let tags: Vec<String> = op.get(1);
            if !op.get::<_, bool>(5) {
                // A store older than the tags may still be running; it must end first.
                tx.commit().await?;
                return Ok(indexed);
            }
            let defs: Vec<(String, String)> = tx
                .query(
                    "SELECT tag, vr FROM dicom_extended_tags WHERE tag = ANY($1)",
                    &[&tags],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            if op.get::<_, Option<i64>>(4).is_none() {
                tx.execute(
                    "UPDATE dicom_operations SET status = 'running',
                         total = (SELECT count(*) FROM dicom_instances) WHERE id = $1",
                    &[&id],
                )
                .await?;
            }
            let (cp, cs): (Option<String>, Option<String>) = (op.get(2), op.get(3));
            let rows = tx
                .query(
                    "SELECT partition, study_uid, series_uid, sop_uid, metadata FROM dicom_instances
                      WHERE ($1::text IS NULL OR (partition, sop_uid) > ($1, $2))
                      ORDER BY partition, sop_uid LIMIT 200",
                    &[&cp, &cs],
                )
                .await?;
            for r in &rows {
                let meta: Value = serde_json::from_str(r.get::<_, &str>(4)).unwrap_or(Value::Null);
                let ids: [&str; 4] = [r.get(0), r.get(1), r.get(2), r.get(3)];
                write_values(&tx, &defs, ids, &meta).await?;
            }
            indexed += rows.len() as u64;
            match rows.last() {
                Some(last) => {
                    tx.execute(
                        "UPDATE dicom_operations SET cursor_partition = $2, cursor_sop = $3,
                             done = done + $4, updated = now() WHERE id = $1",
                        &[
                            &id,
                            &last.get::<_, String>(0),
                            &last.get::<_, String>(3),
                            &(rows.len() as i64),
                        ],
                    )
                    .await?;
                }
                None => {
                    tx.execute(
                        "UPDATE dicom_operations SET status = 'completed', updated = now() WHERE id = $1",
                        &[&id],
                    )
                    .await?;
                    tx.execute(
                        "UPDATE dicom_extended_tags SET status = 'Ready' WHERE operation = $1",
                        &[&id],
                    )
                    .await?;
                }
            }
            tx.commit().await?;
        }
    }
}

/// The current tags' values of one instance, replacing what it had.
pub(crate) async fn write_values(
    tx: &Transaction<'_>,
    defs: &[(String, String)],
    [partition, study, series, sop]: [&str; 4],
    metadata: &Value,
) -> Result<()> {
    let mut tags = Vec::new();
    let mut texts = Vec::new();
    let mut numbers = Vec::new();
    let mut dates = Vec::new();
    for (tag, vr) in defs {
        if let Some(v) = value_of(metadata, tag, vr) {
            tags.push(tag.clone());
            texts.push(v.text);
            numbers.push(v.number);
            dates.push(v.date);
        }
    }
    let tag_names: Vec<&str> = defs.iter().map(|(t, _)| t.as_str()).collect();
    tx.execute(
        "DELETE FROM dicom_tag_values WHERE partition = $1 AND sop_uid = $2 AND tag = ANY($3)",
        &[&partition, &sop, &tag_names],
    )
    .await?;
    if tags.is_empty() {
        return Ok(());
    }
    let params: [&(dyn ToSql + Sync); 8] = [
        &partition, &study, &series, &sop, &tags, &texts, &numbers, &dates,
    ];
    tx.execute(
        "INSERT INTO dicom_tag_values (partition, study_uid, series_uid, sop_uid, tag,
             text_value, number_value, date_value)
         SELECT $1, $2, $3, $4, * FROM unnest($5::text[], $6::text[], $7::float8[], $8::date[])",
        &params,
    )
    .await?;
    Ok(())
}

/// The tags a store must index now: those being added and those ready.
pub(crate) async fn active(tx: &Transaction<'_>) -> Result<Vec<(String, String)>> {
    Ok(tx
        .query("SELECT tag, vr FROM dicom_extended_tags", &[])
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
