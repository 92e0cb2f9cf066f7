//! Recording stored instances: their study and series rows (upserted, so the latest instance's
//! study-level attributes are what QIDO shows), the instance row, and a change-feed entry, for
//! all of a request's instances in one transaction.

use deadpool_postgres::Transaction;
use hds_dicom_model::Instance;

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

impl Index {
    /// Records `items` in one transaction. With `replace` an instance stored already is
    /// replaced (PUT); without, it is a [`StoreOutcome::Duplicate`] (POST).
    pub async fn store(
        &self,
        partition: &str,
        items: &[NewInstance<'_>],
        replace: bool,
    ) -> Result<Vec<StoreOutcome>> {
        match self.store_once(partition, items, replace, true).await {
            // A study or series this store found and left alone was deleted before the
            // instance went in: write them after all.
            Err(crate::IndexError::Postgres(e))
                if e.code() == Some(&tokio_postgres::error::SqlState::FOREIGN_KEY_VIOLATION) =>
            {
                self.store_once(partition, items, replace, false).await
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
    ) -> Result<Vec<StoreOutcome>> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Rows are locked in (study, series) order by every writer, so two requests sharing
        // studies never wait on each other in a cycle.
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (items[a].instance, items[b].instance);
            (&a.study_uid, &a.series_uid, &a.sop_uid).cmp(&(
                &b.study_uid,
                &b.series_uid,
                &b.sop_uid,
            ))
        });
        // What is there already, in one round trip: the instances, and the study and series
        // rows that already say what these instances would write. Those rows are left alone,
        // so concurrent stores into one study do not queue on its row lock.
        let sops: Vec<&str> = items.iter().map(|i| i.instance.sop_uid.as_str()).collect();
        let studies: Vec<&str> = items
            .iter()
            .map(|i| i.instance.study_uid.as_str())
            .collect();
        let study_json: Vec<&str> = items
            .iter()
            .map(|i| i.instance.study_json.as_str())
            .collect();
        let series: Vec<&str> = items
            .iter()
            .map(|i| i.instance.series_uid.as_str())
            .collect();
        let series_json: Vec<&str> = items
            .iter()
            .map(|i| i.instance.series_json.as_str())
            .collect();
        let known = tx
            .query(
                "SELECT 'i', sop_uid, NULL FROM dicom_instances
                  WHERE partition = $1 AND sop_uid = ANY($2)
                 UNION ALL
                 SELECT 's', study_uid, NULL FROM dicom_studies
                  WHERE partition = $1
                    AND (study_uid, study_json) IN (SELECT * FROM unnest($3::text[], $4::text[]))
                 UNION ALL
                 SELECT 'e', study_uid, series_uid FROM dicom_series
                  WHERE partition = $1
                    AND (study_uid, series_uid, series_json)
                        IN (SELECT * FROM unnest($3::text[], $5::text[], $6::text[]))",
                &[
                    &partition,
                    &sops,
                    &studies,
                    &study_json,
                    &series,
                    &series_json,
                ],
            )
            .await?;
        let mut present: Vec<String> = Vec::new();
        let mut same_study: Vec<String> = Vec::new();
        let mut same_series: Vec<(String, String)> = Vec::new();
        for r in &known {
            match r.get::<_, &str>(0) {
                "i" => present.push(r.get(1)),
                "s" if skip_unchanged => same_study.push(r.get(1)),
                "e" if skip_unchanged => same_series.push((r.get(1), r.get(2))),
                _ => {}
            }
        }
        let mut outcomes = vec![StoreOutcome::Duplicate; items.len()];
        let mut watermarks = vec![0i64; items.len()];
        let mut last_study: Option<&str> = None;
        let mut last_series: Option<(&str, &str)> = None;
        let mut touched_studies: Vec<&str> = Vec::new();
        let mut moved_from: Vec<String> = Vec::new();
        for &i in &order {
            let item = &items[i];
            let inst = item.instance;
            if !replace && present.iter().any(|p| p == &inst.sop_uid) {
                continue;
            }
            if last_study != Some(inst.study_uid.as_str()) {
                if !same_study.contains(&inst.study_uid) {
                    upsert_study(&tx, partition, inst).await?;
                }
                last_study = Some(&inst.study_uid);
                touched_studies.push(&inst.study_uid);
            }
            if last_series != Some((inst.study_uid.as_str(), inst.series_uid.as_str())) {
                if !same_series
                    .iter()
                    .any(|(st, se)| st == &inst.study_uid && se == &inst.series_uid)
                {
                    upsert_series(&tx, partition, inst).await?;
                }
                last_series = Some((&inst.study_uid, &inst.series_uid));
            }
            let (outcome, watermark, old_study) =
                insert_instance(&tx, partition, item, replace).await?;
            outcomes[i] = outcome;
            watermarks[i] = watermark;
            if let Some(old) = old_study.filter(|o| o != &inst.study_uid) {
                moved_from.push(old);
            }
        }
        let tags = crate::extended::active(&tx).await?;
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
                // is; only a reindex keeps errors, as Azure's does.
                crate::extended::write_values(&tx, &tags, ids, &meta).await?;
            }
        }
        let stored: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| outcomes[i] != StoreOutcome::Duplicate)
            .collect();
        if replace {
            // A replaced instance may have moved to another series or study; the places it
            // left may be empty now.
            moved_from.sort();
            moved_from.dedup();
            for s in moved_from
                .iter()
                .map(String::as_str)
                .chain(touched_studies.iter().copied())
            {
                drop_empty(&tx, partition, s).await?;
            }
        } else if stored.len() < items.len() - present.len().min(items.len()) {
            // A concurrent store won a race for an instance: its study or series row made here
            // may hold nothing.
            for s in &touched_studies {
                drop_empty(&tx, partition, s).await?;
            }
        }
        for (action, replaced) in [("Create", false), ("Update", true)] {
            let rows: Vec<usize> = stored
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
                &tx,
                action,
                partition,
                &pick(|i| &i.study_uid),
                &pick(|i| &i.series_uid),
                &pick(|i| &i.sop_uid),
                &marks,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(outcomes)
    }
}

async fn upsert_study(tx: &Transaction<'_>, partition: &str, inst: &Instance) -> Result<()> {
    let a = &inst.index;
    tx.execute(
        "INSERT INTO dicom_studies (partition, study_uid, patient_id, patient_name,
             patient_name_words, patient_birth_date, study_date, accession_number,
             referring_physician_words, study_description, study_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (partition, study_uid) DO UPDATE SET
             patient_id = EXCLUDED.patient_id, patient_name = EXCLUDED.patient_name,
             patient_name_words = EXCLUDED.patient_name_words,
             patient_birth_date = EXCLUDED.patient_birth_date, study_date = EXCLUDED.study_date,
             accession_number = EXCLUDED.accession_number,
             referring_physician_words = EXCLUDED.referring_physician_words,
             study_description = EXCLUDED.study_description, study_json = EXCLUDED.study_json",
        &[
            &partition,
            &inst.study_uid,
            &a.patient_id,
            &a.patient_name,
            &a.patient_name.as_deref().map(name_words),
            &a.patient_birth_date.as_deref().and_then(dicom_date),
            &a.study_date.as_deref().and_then(dicom_date),
            &a.accession_number,
            &a.referring_physician_name.as_deref().map(name_words),
            &a.study_description,
            &inst.study_json,
        ],
    )
    .await?;
    Ok(())
}

async fn upsert_series(tx: &Transaction<'_>, partition: &str, inst: &Instance) -> Result<()> {
    let a = &inst.index;
    tx.execute(
        "INSERT INTO dicom_series (partition, study_uid, series_uid, modality, pps_start_date,
             manufacturer_model_name, series_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (partition, study_uid, series_uid) DO UPDATE SET
             modality = EXCLUDED.modality, pps_start_date = EXCLUDED.pps_start_date,
             manufacturer_model_name = EXCLUDED.manufacturer_model_name,
             series_json = EXCLUDED.series_json",
        &[
            &partition,
            &inst.study_uid,
            &inst.series_uid,
            &a.modality,
            &a.performed_procedure_step_start_date
                .as_deref()
                .and_then(dicom_date),
            &a.manufacturer_model_name,
            &inst.series_json,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_instance(
    tx: &Transaction<'_>,
    partition: &str,
    item: &NewInstance<'_>,
    replace: bool,
) -> Result<(StoreOutcome, i64, Option<String>)> {
    let inst = item.instance;
    let sql = if replace {
        "INSERT INTO dicom_instances (partition, study_uid, series_uid, sop_uid, sop_class_uid,
             instance_number, transfer_syntax, blob, size, metadata, instance_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (partition, sop_uid) DO UPDATE SET
             study_uid = EXCLUDED.study_uid, series_uid = EXCLUDED.series_uid,
             sop_class_uid = EXCLUDED.sop_class_uid, instance_number = EXCLUDED.instance_number,
             transfer_syntax = EXCLUDED.transfer_syntax,
             watermark = nextval('dicom_watermark'),
             blob = EXCLUDED.blob, size = EXCLUDED.size, metadata = EXCLUDED.metadata,
             instance_json = EXCLUDED.instance_json, created = now()
         RETURNING watermark"
    } else {
        "INSERT INTO dicom_instances (partition, study_uid, series_uid, sop_uid, sop_class_uid,
             instance_number, transfer_syntax, blob, size, metadata, instance_json)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
         ON CONFLICT (partition, sop_uid) DO NOTHING
         RETURNING watermark"
    };
    // What is replaced, read (and locked) first: a CTE in the same statement would see the row
    // only after this statement's own update.
    let old = if replace {
        tx.query_opt(
            "SELECT blob, study_uid FROM dicom_instances
              WHERE partition = $1 AND sop_uid = $2 FOR UPDATE",
            &[&partition, &inst.sop_uid],
        )
        .await?
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
    } else {
        None
    };
    let row = tx
        .query_opt(
            sql,
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
    Ok(match (row, old) {
        (None, _) => (StoreOutcome::Duplicate, 0, None),
        (Some(r), Some((old_blob, old_study))) => (
            StoreOutcome::Replaced { old_blob },
            r.get(0),
            Some(old_study),
        ),
        (Some(r), None) => (StoreOutcome::Stored, r.get(0), None),
    })
}

/// Removes the study's series without instances, then the study if it has no series left.
pub(crate) async fn drop_empty(tx: &Transaction<'_>, partition: &str, study: &str) -> Result<()> {
    tx.execute(
        "DELETE FROM dicom_series s WHERE s.partition = $1 AND s.study_uid = $2
           AND NOT EXISTS (SELECT 1 FROM dicom_instances i WHERE i.partition = s.partition
                             AND i.study_uid = s.study_uid AND i.series_uid = s.series_uid)",
        &[&partition, &study],
    )
    .await?;
    tx.execute(
        "DELETE FROM dicom_studies t WHERE t.partition = $1 AND t.study_uid = $2
           AND NOT EXISTS (SELECT 1 FROM dicom_series s WHERE s.partition = t.partition
                             AND s.study_uid = t.study_uid)",
        &[&partition, &study],
    )
    .await?;
    Ok(())
}

pub(crate) async fn record_changes(
    tx: &Transaction<'_>,
    action: &str,
    partition: &str,
    studies: &[String],
    series: &[String],
    sops: &[String],
    watermarks: &[i64],
) -> Result<()> {
    tx.execute(
        "SELECT pg_advisory_xact_lock_shared($1)",
        &[&crate::changefeed::CHANGE_FEED_LOCK],
    )
    .await?;
    tx.execute(
        "INSERT INTO dicom_changes (action, partition, study_uid, series_uid, sop_uid, watermark)
         SELECT $1, $2, * FROM unnest($3::text[], $4::text[], $5::text[], $6::bigint[])",
        &[&action, &partition, &studies, &series, &sops, &watermarks],
    )
    .await?;
    Ok(())
}
