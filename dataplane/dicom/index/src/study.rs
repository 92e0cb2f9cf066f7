//! A whole study as the index holds it (its level attributes, series and instances), for what
//! describes a study elsewhere: the DICOM→FHIR sync's ImagingStudy. And the sync's cursor.

use crate::{Index, Result};

#[derive(Debug, Clone)]
pub struct StudySummary {
    pub study_uid: String,
    /// The study-level attributes as DICOM JSON object text.
    pub study_json: String,
    pub series: Vec<SeriesSummary>,
}

#[derive(Debug, Clone)]
pub struct SeriesSummary {
    pub series_uid: String,
    pub series_json: String,
    pub instances: Vec<InstanceSummary>,
}

#[derive(Debug, Clone)]
pub struct InstanceSummary {
    pub sop_uid: String,
    pub sop_class_uid: String,
    pub instance_number: Option<i32>,
}

impl Index {
    /// The study, or None when nothing of it is stored (any more).
    pub async fn study(&self, partition: &str, study: &str) -> Result<Option<StudySummary>> {
        let c = self.pool.get().await?;
        let Some(row) = c
            .query_opt(
                "SELECT study_json FROM dicom_studies WHERE partition = $1 AND study_uid = $2",
                &[&partition, &study],
            )
            .await?
        else {
            return Ok(None);
        };
        let series_rows = c
            .query(
                "SELECT series_uid, series_json FROM dicom_series
                  WHERE partition = $1 AND study_uid = $2 ORDER BY series_uid",
                &[&partition, &study],
            )
            .await?;
        let instance_rows = c
            .query(
                "SELECT series_uid, sop_uid, sop_class_uid, instance_number FROM dicom_instances
                  WHERE partition = $1 AND study_uid = $2
                  ORDER BY series_uid, instance_number NULLS LAST, sop_uid",
                &[&partition, &study],
            )
            .await?;
        let mut series: Vec<SeriesSummary> = series_rows
            .iter()
            .map(|r| SeriesSummary {
                series_uid: r.get(0),
                series_json: r.get(1),
                instances: Vec::new(),
            })
            .collect();
        for r in &instance_rows {
            let se: String = r.get(0);
            if let Some(s) = series.iter_mut().find(|s| s.series_uid == se) {
                s.instances.push(InstanceSummary {
                    sop_uid: r.get(1),
                    sop_class_uid: r.get(2),
                    instance_number: r.get(3),
                });
            }
        }
        series.retain(|s| !s.instances.is_empty());
        if series.is_empty() {
            return Ok(None);
        }
        Ok(Some(StudySummary {
            study_uid: study.to_owned(),
            study_json: row.get(0),
            series,
        }))
    }

    /// The last change-feed sequence the FHIR sync has handled.
    pub async fn sync_position(&self) -> Result<i64> {
        let c = self.pool.get().await?;
        Ok(
            c.query_one("SELECT last_sequence FROM dicom_fhir_sync", &[])
                .await?
                .get(0),
        )
    }

    pub async fn set_sync_position(&self, sequence: i64, error: Option<&str>) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE dicom_fhir_sync SET last_sequence = $1, last_error = $2, updated = now()",
            &[&sequence, &error],
        )
        .await?;
        Ok(())
    }

    /// Records why the sync is stuck, without moving it.
    pub async fn set_sync_error(&self, error: &str) -> Result<()> {
        let c = self.pool.get().await?;
        c.execute(
            "UPDATE dicom_fhir_sync SET last_error = $1, updated = now()",
            &[&error],
        )
        .await?;
        Ok(())
    }
}
