//! History at instance, type and system level. Pages are keyed on `seq` (newest first), so a
//! page link stays valid and gap-free while other clients keep writing: new versions get higher
//! numbers and land before the first page, never inside a later one.

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::{Method, Result, StoredVersion};

#[derive(Debug, Clone)]
pub enum HistoryScope {
    System,
    Type(String),
    Instance(String, String),
}

#[derive(Debug, Clone)]
pub struct HistoryQuery {
    pub scope: HistoryScope,
    /// `_since`: versions updated at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// `_at`: versions that were current at some point in [start, end].
    pub at: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Only versions older than this `seq` (the page cursor).
    pub before_seq: Option<i64>,
    pub count: u32,
}

#[derive(Debug)]
pub struct HistoryPage {
    pub versions: Vec<StoredVersion>,
    /// The cursor of the next page, if there is one.
    pub next_before_seq: Option<i64>,
}

pub async fn history(client: &impl GenericClient, q: &HistoryQuery) -> Result<HistoryPage> {
    let mut sql = String::from(
        "SELECT v.seq, v.res_type, v.id, v.version_id, v.last_updated, v.method, v.body
           FROM resource_versions v WHERE true",
    );
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = Vec::new();
    let mut bind = |sql: &mut String, clause: &str, value: Box<dyn ToSql + Sync + Send>| {
        params.push(value);
        sql.push_str(&clause.replace('?', &format!("${}", params.len())));
    };
    match &q.scope {
        HistoryScope::System => {}
        HistoryScope::Type(t) => bind(&mut sql, " AND v.res_type = ?", Box::new(t.clone())),
        HistoryScope::Instance(t, id) => {
            bind(&mut sql, " AND v.res_type = ?", Box::new(t.clone()));
            bind(&mut sql, " AND v.id = ?", Box::new(id.clone()));
        }
    }
    if let Some(since) = q.since {
        bind(&mut sql, " AND v.last_updated >= ?", Box::new(since));
    }
    if let Some((start, end)) = q.at {
        bind(&mut sql, " AND v.last_updated <= ?", Box::new(end));
        bind(
            &mut sql,
            " AND NOT EXISTS (SELECT 1 FROM resource_versions n
                 WHERE n.res_type = v.res_type AND n.id = v.id
                   AND n.version_id > v.version_id AND n.last_updated <= ?)",
            Box::new(start),
        );
    }
    if let Some(before) = q.before_seq {
        bind(&mut sql, " AND v.seq < ?", Box::new(before));
    }
    let limit = i64::from(q.count) + 1;
    bind(&mut sql, " ORDER BY v.seq DESC LIMIT ?", Box::new(limit));
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as _).collect();
    let rows = client.query(&sql, &refs).await?;
    let mut versions = Vec::with_capacity(rows.len());
    let mut last_seq = None;
    for row in rows.iter().take(q.count as usize) {
        last_seq = Some(row.get::<_, i64>(0));
        versions.push(StoredVersion {
            res_type: row.get(1),
            id: row.get(2),
            version_id: row.get(3),
            last_updated: row.get(4),
            method: Method::parse(row.get(5)),
            body: row.get(6),
        });
    }
    let next_before_seq = if rows.len() > q.count as usize {
        last_seq
    } else {
        None
    };
    Ok(HistoryPage {
        versions,
        next_before_seq,
    })
}
