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
    /// Instances the reindex could not index (see [`TagIndexError`]).
    pub errors: i64,
}

/// An instance whose value of a tag the reindex could not index, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct TagIndexError {
    pub partition: String,
    pub study_uid: String,
    pub series_uid: String,
    pub sop_uid: String,
    pub message: String,
    pub created: DateTime<Utc>,
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

/// The value of `tag` (top level) in an instance's DICOM JSON, as `vr` matches it: None when
/// the instance has none, an error (Azure's reasons, in our words) when it has one that cannot
/// be indexed. Only single values are indexed, as in Azure.
/// A private tag is its creator's: its element is looked for in the block that creator
/// reserved, as Azure's reference server resolves it.
pub fn value_of(
    metadata: &Value,
    tag: &str,
    vr: &str,
    creator: Option<&str>,
) -> Result<Option<TagValue>, String> {
    let Some(at) = resolve(metadata, tag, creator) else {
        return Ok(None);
    };
    let Some(attr) = metadata.get(&at) else {
        return Ok(None);
    };
    let values = match attr.get("Value").and_then(Value::as_array) {
        Some(v) if !v.is_empty() => v,
        _ => return Ok(None),
    };
    match attr.get("vr").and_then(Value::as_str) {
        Some(found) if found != vr => {
            return Err(format!("the instance gives {tag} the VR {found}, not {vr}"));
        }
        _ => {}
    }
    if values.len() > 1 {
        return Err(format!(
            "{tag} has {} values; only single values are indexed",
            values.len()
        ));
    }
    let text = match &values[0] {
        Value::String(s) => s.trim().to_owned(),
        Value::Number(n) => n.to_string(),
        Value::Object(pn) => match pn.get("Alphabetic").and_then(Value::as_str) {
            Some(a) => a.trim().to_owned(),
            None => return Ok(None),
        },
        Value::Null => return Ok(None),
        _ => return Err(format!("the value of {tag} is not a {vr} value")),
    };
    if text.is_empty() {
        return Ok(None);
    }
    checked(vr, &text)
        .map(Some)
        .map_err(|why| format!("the value '{text}' of {tag} is not a valid {vr}: {why}"))
}

/// Where `tag` is in this instance. For a private tag with a creator: (gggg,xxee) in the block
/// xx whose Private Creator (gggg,00xx) is that creator (PS3.5 7.8.1), which need not be the
/// block the registered path names; None when no block is that creator's, so an element of
/// another implementer's block is never taken for it.
fn resolve(metadata: &Value, tag: &str, creator: Option<&str>) -> Option<String> {
    let group = u16::from_str_radix(tag.get(..4)?, 16).ok()?;
    let Some(creator) = creator
        .map(str::trim)
        .filter(|c| group % 2 == 1 && !c.is_empty())
    else {
        return Some(tag.to_owned());
    };
    let low = tag.get(6..8)?;
    (0x10..=0xFFu8).find_map(|block| {
        let reserved = metadata
            .get(format!("{group:04X}00{block:02X}"))?
            .get("Value")?
            .get(0)?
            .as_str()?;
        (reserved.trim() == creator).then(|| format!("{group:04X}{block:02X}{low}"))
    })
}

/// A tag a store or reindex indexes: its path, VR and, for a private one, its creator.
#[derive(Debug, Clone)]
pub(crate) struct TagDef {
    pub tag: String,
    pub vr: String,
    pub creator: Option<String>,
}

impl TagDef {
    pub(crate) fn from_row(r: &tokio_postgres::Row) -> Self {
        Self {
            tag: r.get(0),
            vr: r.get(1),
            creator: r.get(2),
        }
    }
}

/// `text` as the column of its VR holds it, or what is wrong with it (PS3.5 6.2).
fn checked(vr: &str, text: &str) -> Result<TagValue, &'static str> {
    let mut out = TagValue::default();
    let integer = |min: i64, max: i64| {
        text.trim_start_matches('+')
            .parse::<i64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .map(|n| n as f64)
            .ok_or("not an integer in the range of the VR")
    };
    let longest = match vr {
        "DA" => {
            out.date = Some(dicom_date(text).ok_or("a date is YYYYMMDD")?);
            return Ok(out);
        }
        "DS" | "FD" | "FL" => {
            let n = text.parse::<f64>().ok().filter(|f| f.is_finite());
            out.number = Some(n.ok_or("not a decimal number")?);
            return Ok(out);
        }
        "IS" | "SL" => {
            out.number = Some(integer(i32::MIN.into(), i32::MAX.into())?);
            return Ok(out);
        }
        "SS" => {
            out.number = Some(integer(i16::MIN.into(), i16::MAX.into())?);
            return Ok(out);
        }
        "UL" => {
            out.number = Some(integer(0, u32::MAX.into())?);
            return Ok(out);
        }
        "US" => {
            out.number = Some(integer(0, u16::MAX.into())?);
            return Ok(out);
        }
        "PN" => {
            if text.split('=').any(|group| group.chars().count() > 64) {
                return Err("a component group is longer than 64 characters");
            }
            out.text = Some(name_words(text));
            return Ok(out);
        }
        "AS" => {
            let b = text.as_bytes();
            if b.len() != 4 || !b[..3].iter().all(u8::is_ascii_digit) || !b"DWMY".contains(&b[3]) {
                return Err("an age is three digits and D, W, M or Y");
            }
            4
        }
        "UI" => {
            if !text.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return Err("a UID is digits and dots");
            }
            64
        }
        "AE" | "CS" | "SH" => 16,
        "TM" => 14,
        "DT" => 26,
        _ => 64,
    };
    if text.chars().count() > longest {
        return Err("longer than the VR allows");
    }
    out.text = Some(text.to_owned());
    Ok(out)
}

impl Index {
    pub async fn extended_tags(&self) -> Result<Vec<ExtendedTag>> {
        self.tags_named(None).await
    }

    pub async fn extended_tag(&self, tag: &str) -> Result<Option<ExtendedTag>> {
        Ok(self.tags_named(Some(tag)).await?.pop())
    }

    /// Every tag, or the one named, with its count of indexing errors.
    async fn tags_named(&self, tag: Option<&str>) -> Result<Vec<ExtendedTag>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT t.tag, vr, private_creator, level, status, query_enabled, operation,
                        (SELECT count(*) FROM dicom_tag_errors e WHERE e.tag = t.tag)
                   FROM dicom_extended_tags t WHERE $1::text IS NULL OR t.tag = $1
                  ORDER BY t.tag",
                &[&tag],
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
                errors: r.get(7),
            })
            .collect())
    }

    /// Azure's QueryStatus: whether QIDO may match on a tag. A reindex that meets errors turns
    /// it off; the caller may turn it back on, accepting that some instances are not indexed.
    /// None when there is no such tag.
    pub async fn set_query_enabled(&self, tag: &str, enabled: bool) -> Result<Option<ExtendedTag>> {
        let c = self.pool.get().await?;
        let n = c
            .execute(
                "UPDATE dicom_extended_tags SET query_enabled = $2 WHERE tag = $1",
                &[&tag, &enabled],
            )
            .await?;
        drop(c);
        if n == 0 {
            return Ok(None);
        }
        self.extended_tag(tag).await
    }

    /// A page of a tag's indexing errors, in the order the reindex met them.
    pub async fn tag_errors(
        &self,
        tag: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<TagIndexError>> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT partition, study_uid, series_uid, sop_uid, message, created
                   FROM dicom_tag_errors WHERE tag = $1
                  ORDER BY partition, sop_uid LIMIT $2 OFFSET $3",
                &[&tag, &limit, &offset],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| TagIndexError {
                partition: r.get(0),
                study_uid: r.get(1),
                series_uid: r.get(2),
                sop_uid: r.get(3),
                message: r.get(4),
                created: r.get(5),
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
            let defs: Vec<TagDef> = tx
                .query(
                    "SELECT tag, vr, private_creator FROM dicom_extended_tags WHERE tag = ANY($1)",
                    &[&tags],
                )
                .await?
                .iter()
                .map(TagDef::from_row)
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
            let mut errors = Vec::new();
            for r in &rows {
                let meta: Value = serde_json::from_str(r.get::<_, &str>(4)).unwrap_or(Value::Null);
                let ids: [&str; 4] = [r.get(0), r.get(1), r.get(2), r.get(3)];
                for (tag, message) in write_values(&tx, &defs, ids, &meta).await? {
                    errors.push((ids.map(str::to_owned), tag, message));
                }
            }
            record_errors(&tx, &errors).await?;
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

/// The current tags' values of one instance, replacing what it had (and the errors an earlier
/// reindex recorded for it). Returns the (tag, reason) of each value that cannot be indexed.
pub(crate) async fn write_values(
    tx: &impl deadpool_postgres::GenericClient,
    defs: &[TagDef],
    [partition, study, series, sop]: [&str; 4],
    metadata: &Value,
) -> Result<Vec<(String, String)>> {
    let mut tags = Vec::new();
    let mut texts = Vec::new();
    let mut numbers = Vec::new();
    let mut dates = Vec::new();
    let mut errors = Vec::new();
    for TagDef { tag, vr, creator } in defs {
        match value_of(metadata, tag, vr, creator.as_deref()) {
            Ok(Some(v)) => {
                tags.push(tag.clone());
                texts.push(v.text);
                numbers.push(v.number);
                dates.push(v.date);
            }
            Ok(None) => {}
            Err(why) => errors.push((tag.clone(), why)),
        }
    }
    let tag_names: Vec<&str> = defs.iter().map(|d| d.tag.as_str()).collect();
    tx.execute(
        &tx.prepare_cached(
            "WITH errors AS (DELETE FROM dicom_tag_errors
                          WHERE partition = $1 AND sop_uid = $2 AND tag = ANY($3))
         DELETE FROM dicom_tag_values WHERE partition = $1 AND sop_uid = $2 AND tag = ANY($3)",
        )
        .await?,
        &[&partition, &sop, &tag_names],
    )
    .await?;
    if tags.is_empty() {
        return Ok(errors);
    }
    let params: [&(dyn ToSql + Sync); 8] = [
        &partition, &study, &series, &sop, &tags, &texts, &numbers, &dates,
    ];
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO dicom_tag_values (partition, study_uid, series_uid, sop_uid, tag,
             text_value, number_value, date_value)
         SELECT $1, $2, $3, $4, * FROM unnest($5::text[], $6::text[], $7::float8[], $8::date[])",
        )
        .await?,
        &params,
    )
    .await?;
    Ok(errors)
}

/// Keeps what a reindex batch could not index, and turns querying off for the tags concerned
/// (Azure's behaviour: matching on them would silently miss those instances).
async fn record_errors(
    tx: &Transaction<'_>,
    errors: &[([String; 4], String, String)],
) -> Result<()> {
    if errors.is_empty() {
        return Ok(());
    }
    let column = |i: usize| {
        errors
            .iter()
            .map(|(ids, _, _)| ids[i].clone())
            .collect::<Vec<_>>()
    };
    let tags: Vec<&str> = errors.iter().map(|(_, t, _)| t.as_str()).collect();
    let messages: Vec<&str> = errors.iter().map(|(_, _, m)| m.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 6] = [
        &tags,
        &column(0),
        &column(1),
        &column(2),
        &column(3),
        &messages,
    ];
    tx.execute(
        "INSERT INTO dicom_tag_errors (tag, partition, study_uid, series_uid, sop_uid, message)
         SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
         ON CONFLICT (tag, partition, sop_uid)
         DO UPDATE SET message = excluded.message, created = now()",
        &params,
    )
    .await?;
    tx.execute(
        "UPDATE dicom_extended_tags SET query_enabled = false WHERE tag = ANY($1)",
        &[&tags],
    )
    .await?;
    Ok(())
}

/// The tags a store must index now: those being added and those ready.
pub(crate) const ACTIVE_TAGS: &str = "SELECT tag, vr, private_creator FROM dicom_extended_tags";

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_private_tag_is_found_only_in_its_creators_block() {
        let m = json!({
            "00190010": {"vr": "LO", "Value": ["GEMS_ACQU_01"]},
            "00190011": {"vr": "LO", "Value": ["ACME "]},
            "00191002": {"vr": "SL", "Value": [912]},
            "00191102": {"vr": "SL", "Value": [5]},
        });
        let number = |creator| {
            value_of(&m, "00191002", "SL", creator)
                .unwrap()
                .and_then(|v| v.number)
        };
        assert_eq!(number(Some("GEMS_ACQU_01")), Some(912.0));
        assert_eq!(number(Some("ACME")), Some(5.0), "ACME reserved block 11");
        assert_eq!(
            number(Some("NOT_GEMS")),
            None,
            "another implementer's block"
        );
        assert_eq!(
            number(None),
            Some(912.0),
            "a tag registered without a creator"
        );
    }

    fn meta(vr: &str, value: Value) -> Value {
        json!({"00101010": {"vr": vr, "Value": value}})
    }

    #[test]
    fn values_are_checked_against_their_vr() {
        let ok = |vr: &str, v: Value| value_of(&meta(vr, v), "00101010", vr, None).unwrap();
        assert_eq!(
            ok("AS", json!(["035Y"])).unwrap().text.as_deref(),
            Some("035Y")
        );
        assert_eq!(ok("US", json!([512])).unwrap().number, Some(512.0));
        assert_eq!(ok("DS", json!(["5.0"])).unwrap().number, Some(5.0));
        assert_eq!(
            ok("PN", json!([{"Alphabetic": "Doe^Jane"}]))
                .unwrap()
                .text
                .as_deref(),
            Some("doe jane")
        );
        assert_eq!(ok("DA", json!([""])), None, "an empty value is no value");
        assert_eq!(value_of(&json!({}), "00101010", "AS", None), Ok(None));
        for (vr, v, why) in [
            ("DA", json!(["1997XX30"]), "YYYYMMDD"),
            ("AS", json!(["35 years"]), "three digits"),
            ("CS", json!(["A CODE LONGER THAN SIXTEEN"]), "longer"),
            ("US", json!([70000]), "range"),
            ("UI", json!(["1.2.abc"]), "digits and dots"),
            ("CS", json!(["A", "B"]), "single values"),
        ] {
            let e = value_of(&meta(vr, v.clone()), "00101010", vr, None).unwrap_err();
            assert!(e.contains(why), "{vr} {v}: {e}");
        }
        let e = value_of(&meta("SH", json!(["CT01"])), "00101010", "DA", None).unwrap_err();
        assert!(e.contains("VR SH, not DA"), "{e}");
    }
}
