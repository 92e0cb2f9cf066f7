//! Recording stored instances: their study and series rows (upserted, so the latest instance's
//! study-level attributes are what QIDO shows), the instance row, and a change-feed entry, for
//! all of a request's instances in one transaction.

use std::sync::LazyLock;

use deadpool_postgres::{Client, GenericClient};
use hds_dicom_model::Instance;
use tokio_postgres::Statement;
use tokio_postgres::types::ToSql;

use crate::pipelined::PipelinedTransaction;
use crate::{Index, Result, dicom_date, name_words};

/// An instance whose file is in the blob store already.
pub struct NewInstance<'a> {
    pub instance: &'a Instance,
    pub blob: String,
    pub size: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StoreOutcome {
    Stored,
    /// A POST of an instance stored already (Azure's 45070); its file was not recorded.
    Duplicate,
    /// A PUT over an instance stored already: its former file is to be removed.
    Replaced {
        old_blob: String,
    },
}

/// What became of each of a request's instances, in the order given.
#[derive(Debug)]
pub struct StoreReport {
    pub outcomes: Vec<StoreOutcome>,
    /// Per instance: the extended query tags whose values could not be indexed, and why. The
    /// instance is stored without them (lenient, as for standard attributes).
    pub warnings: Vec<Vec<String>>,
}

impl Index {
    /// Records `items` in one transaction. Its statements are prepared once per connection
    /// (deadpool's cache: parsing them on every request was much of PostgreSQL's work for a
    /// STOW of one instance) and planned for each request's values. With `replace` an
    /// instance stored already is replaced (PUT); without, it is a
    /// [`StoreOutcome::Duplicate`] (POST).
    ///
    /// `files_durable` says whether the items' files reached stable storage; when they did
    /// not, nothing is written, so the index never names a file a crash could lose.
    pub async fn store(
        &self,
        partition: &str,
        items: &[NewInstance<'_>],
        replace: bool,
        files_durable: std::result::Result<(), String>,
    ) -> Result<StoreReport> {
        files_durable.map_err(crate::IndexError::FilesNotDurable)?;
        let once = |skip| self.store_once(partition, items, replace, skip);
        match once(true).await {
            // A study or series this store found and left alone was deleted before the
            // instance went in: write them after all.
            Err(crate::IndexError::Postgres(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
            {
                once(false).await
            }
            other => other,
        }
    }

    async fn store_once(
        &self,
        partition: &str,
        items: &[NewInstance<'_>],
        replace: bool,
        skip_unchanged: bool,
    ) -> Result<StoreReport> {
        let conn = self.pool.get().await?;
        let statements = Statements::prepare(&conn).await?;
        let tx = PipelinedTransaction::new(conn);
        let written = write(
            tx.client(),
            &statements,
            partition,
            items,
            replace,
            skip_unchanged,
        )
        .await;
        let (report, maybe_empty) = match written {
            Ok(w) => {
                tx.ended();
                w
            }
            Err(e) => {
                tx.rollback().await;
                return Err(e);
            }
        };
        if !maybe_empty.is_empty() {
            // A concurrent store won a race for an instance: a study or series row made here
            // may hold nothing. A store that finds such a row gone before its instance goes in
            // writes it again (the foreign-key retry in `store`).
            let mut c = self.pool.get().await?;
            let tx = c.transaction().await?;
            for s in &maybe_empty {
                drop_empty(&tx, partition, s).await?;
            }
            tx.commit().await?;
        }
        Ok(report)
    }
}

/// The statements of every store, prepared before the transaction begins (pipelined, on a new
/// connection; from deadpool's cache after that), so that each write below is sent the moment
/// it is first polled: joined in order, they reach the server in order.
struct Statements {
    known: Statement,
    known_one: Statement,
    tags: Statement,
    studies: Statement,
    series: Statement,
    instances: Statement,
}

impl Statements {
    async fn prepare(c: &Client) -> Result<Self> {
        let (known, known_one, tags, studies, series, instances) = tokio::try_join!(
            c.prepare_cached(KNOWN),
            c.prepare_cached(KNOWN_ONE),
            c.prepare_cached(crate::extended::ACTIVE_TAGS),
            c.prepare_cached(UPSERT_STUDIES),
            c.prepare_cached(UPSERT_SERIES),
            c.prepare_cached(INSERT_INSTANCES),
        )?;
        Ok(Self {
            known,
            known_one,
            tags,
            studies,
            series,
            instances,
        })
    }
}

/// What is there already: the instances, and the study and series rows that already say what
/// these instances would write. Those rows are left alone, so concurrent stores into one study
/// do not queue on its row lock.
const KNOWN: &str = "SELECT 'i', sop_uid, NULL FROM dicom_instances
  WHERE partition = $1 AND sop_uid = ANY($2)
 UNION ALL
 SELECT 's', study_uid, NULL FROM dicom_studies
  WHERE partition = $1
    AND (study_uid, study_json) IN (SELECT * FROM unnest($3::text[], $4::text[]))
 UNION ALL
 SELECT 'e', study_uid, series_uid FROM dicom_series
  WHERE partition = $1
    AND (study_uid, series_uid, series_json)
        IN (SELECT * FROM unnest($3::text[], $5::text[], $6::text[]))";

/// [`KNOWN`] for a request of one instance, the commonest (a modality or router sends each
/// instance as it comes): with plain values instead of arrays it plans in about half the time,
/// which was much of PostgreSQL's work for such a request.
const KNOWN_ONE: &str = "SELECT 'i', sop_uid, NULL FROM dicom_instances
  WHERE partition = $1 AND sop_uid = $2
 UNION ALL
 SELECT 's', study_uid, NULL FROM dicom_studies
  WHERE partition = $1 AND study_uid = $3 AND study_json = $4
 UNION ALL
 SELECT 'e', study_uid, series_uid FROM dicom_series
  WHERE partition = $1 AND study_uid = $3 AND series_uid = $5 AND series_json = $6";

/// The transaction's start, sent with the first statements. The lookups are planned for this
/// request's values, never on a cached generic plan: a generic plan made while the tables were
/// small (early in a bulk load, or on an empty database, where every index looks as good as
/// another) scanned a partition's every study and series row on each request until the next
/// ANALYZE (one instance per request ran at a third of its speed right after a
/// 100,000-instance load). The change feed's lock is taken before any row lock, so a writer
/// waiting for it behind the numbering never holds a row another writer waits for.
static BEGIN: LazyLock<String> = LazyLock::new(|| {
    format!(
        "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan;
         SELECT pg_advisory_xact_lock_shared({})",
        crate::changefeed::CHANGE_FEED_LOCK
    )
});

/// One store's transaction, in two round trips for a POST with no extended query tags:
/// `BEGIN` with the lookups, the writes with `COMMIT`. Returns the report and the studies to
/// check for emptiness once it has committed.
async fn write(
    c: &Client,
    st: &Statements,
    partition: &str,
    items: &[NewInstance<'_>],
    replace: bool,
    skip_unchanged: bool,
) -> Result<(StoreReport, Vec<String>)> {
    // Rows are locked in (study, series) order by every writer, so two requests sharing
    // studies never wait on each other in a cycle.
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by(|&a, &b| {
        let (a, b) = (items[a].instance, items[b].instance);
        (&a.study_uid, &a.series_uid, &a.sop_uid).cmp(&(&b.study_uid, &b.series_uid, &b.sop_uid))
    });
    // Arrays only for a request of several instances; one instance is looked up by its values.
    let columns: [Vec<&str>; 5];
    let lookup: [&(dyn ToSql + Sync); 6];
    let (statement, params) = match items {
        [one] => {
            let i = one.instance;
            lookup = [
                &partition,
                &i.sop_uid,
                &i.study_uid,
                &i.study_json,
                &i.series_uid,
                &i.series_json,
            ];
            (&st.known_one, &lookup)
        }
        _ => {
            let of =
                |f: fn(&Instance) -> &str| items.iter().map(|i| f(i.instance)).collect::<Vec<_>>();
            columns = [
                of(|i| &i.sop_uid),
                of(|i| &i.study_uid),
                of(|i| &i.study_json),
                of(|i| &i.series_uid),
                of(|i| &i.series_json),
            ];
            let [sops, studies, study_json, series, series_json] = &columns;
            lookup = [&partition, sops, studies, study_json, series, series_json];
            (&st.known, &lookup)
        }
    };
    let (begun, known, tags) = tokio::join!(
        biased;
        c.batch_execute(&BEGIN),
        c.query(statement, params),
        c.query(&st.tags, &[]),
    );
    begun?;
    let tags: Vec<crate::extended::TagDef> = tags?
        .iter()
        .map(crate::extended::TagDef::from_row)
        .collect();
    let mut present: Vec<String> = Vec::new();
    let mut same_study: Vec<String> = Vec::new();
    let mut same_series: Vec<(String, String)> = Vec::new();
    for r in &known? {
        match r.get::<_, &str>(0) {
            "i" => present.push(r.get(1)),
            "s" if skip_unchanged => same_study.push(r.get(1)),
            "e" if skip_unchanged => same_series.push((r.get(1), r.get(2))),
            _ => {}
        }
    }
    let mut outcomes = vec![StoreOutcome::Duplicate; items.len()];
    let mut watermarks = vec![0i64; items.len()];
    // What goes in, in lock order; a POST leaves out what is stored already.
    let wanted: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| replace || !present.iter().any(|p| p == &items[i].instance.sop_uid))
        .collect();
    let touched_studies: Vec<String> = first_per(items, &wanted, |i| i.study_uid.as_str())
        .iter()
        .map(|i| i.study_uid.clone())
        .collect();
    let upserts = async {
        tokio::try_join!(
            biased;
            upsert_studies(c, &st.studies, partition, items, &wanted, &same_study),
            upsert_series(c, &st.series, partition, items, &wanted, &same_series),
        )
    };
    let mut maybe_empty = Vec::new();
    let mut committed = false;
    if replace {
        upserts.await?;
        let mut moved_from: Vec<String> = Vec::new();
        for &i in &wanted {
            let (outcome, watermark, old_study) = replace_instance(c, partition, &items[i]).await?;
            outcomes[i] = outcome;
            watermarks[i] = watermark;
            if let Some(old) = old_study.filter(|o| o != &items[i].instance.study_uid) {
                moved_from.push(old);
            }
        }
        // A replaced instance may have moved to another series or study; the places it left
        // may be empty now.
        moved_from.sort();
        moved_from.dedup();
        for s in moved_from.iter().chain(touched_studies.iter()) {
            drop_empty(c, partition, s).await?;
        }
        for (action, replaced) in [("Create", false), ("Update", true)] {
            let rows: Vec<usize> = wanted
                .iter()
                .copied()
                .filter(|&i| matches!(outcomes[i], StoreOutcome::Replaced { .. }) == replaced)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let pick = |f: fn(&Instance) -> &String| -> Vec<String> {
                rows.iter().map(|&i| f(items[i].instance).clone()).collect()
            };
            let marks: Vec<i64> = rows.iter().map(|&i| watermarks[i]).collect();
            record_changes(
                c,
                action,
                partition,
                &pick(|i| &i.study_uid),
                &pick(|i| &i.series_uid),
                &pick(|i| &i.sop_uid),
                &marks,
            )
            .await?;
        }
    } else {
        // Nothing left to do after the instances go in unless extended query tags must be
        // written: then the `COMMIT` goes with them. Should a write fail, the server turns it
        // into a rollback. These writes read no table (their rows come from the arrays sent,
        // their conflicts from the unique indexes), so no plan of theirs can scan one, and
        // each connection plans them once (`write_plans_scan_no_table` checks it).
        let commit_now = tags.is_empty();
        let after = match commit_now {
            true => "COMMIT",
            false => "SET LOCAL plan_cache_mode = force_custom_plan",
        };
        let (generic, upserted, inserted, commit) = tokio::join!(
            biased;
            c.batch_execute("SET LOCAL plan_cache_mode = force_generic_plan"),
            upserts,
            insert_instances(c, &st.instances, partition, items, &wanted),
            c.batch_execute(after),
        );
        generic?;
        upserted?;
        for (i, watermark) in inserted? {
            outcomes[i] = StoreOutcome::Stored;
            watermarks[i] = watermark;
        }
        commit?;
        committed = commit_now;
        let stored = outcomes
            .iter()
            .filter(|o| **o == StoreOutcome::Stored)
            .count();
        if stored < wanted.len() {
            maybe_empty = touched_studies;
        }
    }
    let mut warnings = vec![Vec::new(); items.len()];
    if !tags.is_empty() {
        for (i, item) in items.iter().enumerate() {
            if outcomes[i] == StoreOutcome::Duplicate {
                continue;
            }
            let inst = item.instance;
            let meta: serde_json::Value =
                serde_json::from_str(&inst.metadata).unwrap_or(serde_json::Value::Null);
            let ids = [partition, &inst.study_uid, &inst.series_uid, &inst.sop_uid];
            // A value that cannot be indexed is left out, as a malformed indexed attribute
            // is, and the answer says so; only a reindex keeps errors, as Azure's does.
            let errors = crate::extended::write_values(c, &tags, ids, &meta).await?;
            warnings[i] = errors
                .into_iter()
                .map(|(tag, why)| {
                    format!("the extended query tag {tag} is not indexed for this instance: {why}")
                })
                .collect();
        }
    }
    if !committed {
        c.batch_execute("COMMIT").await?;
    }
    Ok((StoreReport { outcomes, warnings }, maybe_empty))
}

/// The first of `wanted` for each key, in order: the rows one statement may upsert (a row
/// cannot be updated twice by one `INSERT ... ON CONFLICT DO UPDATE`).
fn first_per<'a, K: PartialEq>(
    items: &'a [NewInstance<'_>],
    wanted: &[usize],
    key: impl Fn(&'a Instance) -> K,
) -> Vec<&'a Instance> {
    let mut out: Vec<&Instance> = Vec::new();
    for &i in wanted {
        let inst = items[i].instance;
        if out.last().is_none_or(|last| key(last) != key(inst)) {
            out.push(inst);
        }
    }
    out
}

/// Writes the study rows of `wanted` (sorted by study) that do not already say what these
/// instances would write, in one statement.
async fn upsert_studies(
    c: &Client,
    statement: &Statement,
    partition: &str,
    items: &[NewInstance<'_>],
    wanted: &[usize],
    same: &[String],
) -> Result<()> {
    let rows: Vec<&Instance> = first_per(items, wanted, |i| i.study_uid.as_str())
        .into_iter()
        .filter(|i| !same.contains(&i.study_uid))
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Instance) -> Option<&str>| rows.iter().map(|i| f(i)).collect::<Vec<_>>();
    let words = |f: fn(&Instance) -> Option<&str>| {
        rows.iter()
            .map(|i| f(i).map(name_words))
            .collect::<Vec<_>>()
    };
    let date = |f: fn(&Instance) -> Option<&str>| {
        rows.iter()
            .map(|i| f(i).and_then(dicom_date))
            .collect::<Vec<_>>()
    };
    c.execute(
        statement,
        &[
            &partition,
            &text(|i| Some(&i.study_uid)),
            &text(|i| i.index.patient_id.as_deref()),
            &text(|i| i.index.patient_name.as_deref()),
            &words(|i| i.index.patient_name.as_deref()),
            &date(|i| i.index.patient_birth_date.as_deref()),
            &date(|i| i.index.study_date.as_deref()),
            &text(|i| i.index.accession_number.as_deref()),
            &words(|i| i.index.referring_physician_name.as_deref()),
            &text(|i| i.index.study_description.as_deref()),
            &text(|i| Some(&i.study_json)),
        ],
    )
    .await?;
    Ok(())
}

const UPSERT_STUDIES: &str =
    "INSERT INTO dicom_studies (partition, study_uid, patient_id, patient_name,
     patient_name_words, patient_birth_date, study_date, accession_number,
     referring_physician_words, study_description, study_json)
 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::date[],
     $7::date[], $8::text[], $9::text[], $10::text[], $11::text[])
 ON CONFLICT (partition, study_uid) DO UPDATE SET
     patient_id = EXCLUDED.patient_id, patient_name = EXCLUDED.patient_name,
     patient_name_words = EXCLUDED.patient_name_words,
     patient_birth_date = EXCLUDED.patient_birth_date, study_date = EXCLUDED.study_date,
     accession_number = EXCLUDED.accession_number,
     referring_physician_words = EXCLUDED.referring_physician_words,
     study_description = EXCLUDED.study_description, study_json = EXCLUDED.study_json";

/// The series rows, as [`upsert_studies`] writes the study rows.
async fn upsert_series(
    c: &Client,
    statement: &Statement,
    partition: &str,
    items: &[NewInstance<'_>],
    wanted: &[usize],
    same: &[(String, String)],
) -> Result<()> {
    let rows: Vec<&Instance> = first_per(items, wanted, |i| (&i.study_uid, &i.series_uid))
        .into_iter()
        .filter(|i| {
            !same
                .iter()
                .any(|(st, se)| st == &i.study_uid && se == &i.series_uid)
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Instance) -> Option<&str>| rows.iter().map(|i| f(i)).collect::<Vec<_>>();
    let pps: Vec<_> = rows
        .iter()
        .map(|i| {
            i.index
                .performed_procedure_step_start_date
                .as_deref()
                .and_then(dicom_date)
        })
        .collect();
    c.execute(
        statement,
        &[
            &partition,
            &text(|i| Some(&i.study_uid)),
            &text(|i| Some(&i.series_uid)),
            &text(|i| i.index.modality.as_deref()),
            &pps,
            &text(|i| i.index.manufacturer_model_name.as_deref()),
            &text(|i| Some(&i.series_json)),
        ],
    )
    .await?;
    Ok(())
}

const UPSERT_SERIES: &str =
    "INSERT INTO dicom_series (partition, study_uid, series_uid, modality, pps_start_date,
     manufacturer_model_name, series_json)
 SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::date[], $6::text[],
     $7::text[])
 ON CONFLICT (partition, study_uid, series_uid) DO UPDATE SET
     modality = EXCLUDED.modality, pps_start_date = EXCLUDED.pps_start_date,
     manufacturer_model_name = EXCLUDED.manufacturer_model_name,
     series_json = EXCLUDED.series_json";

/// A POST's new instances and their change-feed entries, in one statement; what a concurrent
/// store got in first is left out (a duplicate). Returns the index in `items` and the
/// watermark of each row written.
async fn insert_instances(
    c: &Client,
    statement: &Statement,
    partition: &str,
    items: &[NewInstance<'_>],
    wanted: &[usize],
) -> Result<Vec<(usize, i64)>> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let numbers = column(items, wanted, |i| i.instance.index.instance_number);
    let sizes = column(items, wanted, |i| i.size);
    let rows = c
        .query(
            statement,
            &[
                &partition,
                &column(items, wanted, |i| i.instance.study_uid.as_str()),
                &column(items, wanted, |i| i.instance.series_uid.as_str()),
                &column(items, wanted, |i| i.instance.sop_uid.as_str()),
                &column(items, wanted, |i| i.instance.sop_class_uid.as_str()),
                &numbers,
                &column(items, wanted, |i| i.instance.transfer_syntax.as_str()),
                &column(items, wanted, |i| i.blob.as_str()),
                &sizes,
                &column(items, wanted, |i| i.instance.metadata.as_str()),
                &column(items, wanted, |i| i.instance.instance_json.as_str()),
            ],
        )
        .await?;
    // Blob keys are fresh per part, so they tell the items apart.
    Ok(rows
        .iter()
        .filter_map(|r| {
            let blob: &str = r.get(0);
            let i = wanted.iter().copied().find(|&i| items[i].blob == blob)?;
            Some((i, r.get(1)))
        })
        .collect())
}

/// The row order of the arrays is kept by `WITH ORDINALITY`, so the first of two items with
/// one SOP Instance UID is the one stored, and watermarks follow lock order. The change-feed
/// lock is held already (see [`BEGIN`]).
const INSERT_INSTANCES: &str = "WITH stored AS (
   INSERT INTO dicom_instances (partition, study_uid, series_uid, sop_uid, sop_class_uid,
          instance_number, transfer_syntax, blob, size, metadata, instance_json)
   SELECT $1, st, se, sop, cl, num, ts, bl, sz, md, ij
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                 $7::text[], $8::text[], $9::bigint[], $10::text[], $11::text[])
          WITH ORDINALITY AS u(st, se, sop, cl, num, ts, bl, sz, md, ij, n)
    ORDER BY n
   ON CONFLICT (partition, sop_uid) DO NOTHING
   RETURNING study_uid, series_uid, sop_uid, blob, watermark),
 changes AS (
   INSERT INTO dicom_changes (action, partition, study_uid, series_uid, sop_uid, watermark)
   SELECT 'Create', $1, study_uid, series_uid, sop_uid, watermark FROM stored ORDER BY watermark)
 SELECT blob, watermark FROM stored";

/// One value of each of `wanted`, as a statement's array parameter.
fn column<'a, 'b, T>(
    items: &'a [NewInstance<'b>],
    wanted: &[usize],
    f: impl Fn(&'a NewInstance<'b>) -> T,
) -> Vec<T> {
    wanted.iter().map(|&i| f(&items[i])).collect()
}

/// A PUT's instance: inserted, or replacing the one stored under its SOP Instance UID (whose
/// file and former study are returned, to be removed or emptied).
async fn replace_instance(
    tx: &impl GenericClient,
    partition: &str,
    item: &NewInstance<'_>,
) -> Result<(StoreOutcome, i64, Option<String>)> {
    let inst = item.instance;
    // What is replaced, read (and locked) first: a CTE in the same statement would see the row
    // only after this statement's own update.
    let old = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT blob, study_uid FROM dicom_instances
              WHERE partition = $1 AND sop_uid = $2 FOR UPDATE",
            )
            .await?,
            &[&partition, &inst.sop_uid],
        )
        .await?
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)));
    let row = tx
        .query_one(
            &tx.prepare_cached(
                "INSERT INTO dicom_instances (partition, study_uid, series_uid, sop_uid,
                 sop_class_uid, instance_number, transfer_syntax, blob, size, metadata,
                 instance_json)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
             ON CONFLICT (partition, sop_uid) DO UPDATE SET
                 study_uid = EXCLUDED.study_uid, series_uid = EXCLUDED.series_uid,
                 sop_class_uid = EXCLUDED.sop_class_uid,
                 instance_number = EXCLUDED.instance_number,
                 transfer_syntax = EXCLUDED.transfer_syntax,
                 watermark = nextval('dicom_watermark'),
                 blob = EXCLUDED.blob, size = EXCLUDED.size, metadata = EXCLUDED.metadata,
                 instance_json = EXCLUDED.instance_json, created = now()
             RETURNING watermark",
            )
            .await?,
            &[
                &partition,
                &inst.study_uid,
                &inst.series_uid,
                &inst.sop_uid,
                &inst.sop_class_uid,
                &inst.index.instance_number,
                &inst.transfer_syntax,
                &item.blob,
                &item.size,
                &inst.metadata,
                &inst.instance_json,
            ],
        )
        .await?;
    Ok(match old {
        Some((old_blob, old_study)) => (
            StoreOutcome::Replaced { old_blob },
            row.get(0),
            Some(old_study),
        ),
        None => (StoreOutcome::Stored, row.get(0), None),
    })
}

/// Removes the study's series without instances, then the study if it has no series left.
pub(crate) async fn drop_empty(
    tx: &impl GenericClient,
    partition: &str,
    study: &str,
) -> Result<()> {
    tx.execute(
        &tx.prepare_cached(
            "DELETE FROM dicom_series s WHERE s.partition = $1 AND s.study_uid = $2
           AND NOT EXISTS (SELECT 1 FROM dicom_instances i WHERE i.partition = s.partition
                             AND i.study_uid = s.study_uid AND i.series_uid = s.series_uid)",
        )
        .await?,
        &[&partition, &study],
    )
    .await?;
    tx.execute(
        &tx.prepare_cached(
            "DELETE FROM dicom_studies t WHERE t.partition = $1 AND t.study_uid = $2
           AND NOT EXISTS (SELECT 1 FROM dicom_series s WHERE s.partition = t.partition
                             AND s.study_uid = t.study_uid)",
        )
        .await?,
        &[&partition, &study],
    )
    .await?;
    Ok(())
}

pub(crate) async fn record_changes(
    tx: &impl GenericClient,
    action: &str,
    partition: &str,
    studies: &[String],
    series: &[String],
    sops: &[String],
    watermarks: &[i64],
) -> Result<()> {
    tx.execute(
        &tx.prepare_cached("SELECT pg_advisory_xact_lock_shared($1)")
            .await?,
        &[&crate::changefeed::CHANGE_FEED_LOCK],
    )
    .await?;
    tx.execute(

        &tx.prepare_cached("INSERT INTO dicom_changes (action, partition, study_uid, series_uid, sop_uid, watermark)
         SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[])").await?,
        &[&action, &partition, &studies, &series, &sops, &watermarks],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
#[path = "write_tests.rs"]
pub(crate) mod tests;
