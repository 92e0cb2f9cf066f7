//! The orphan-file sweep. A STOW writes its files before the index commit, and a delete removes
//! files after its commit, so a process killed in between leaves a file no instance row names:
//! never served, only costing space. The sweep lists the store, asks the index about files older
//! than the grace period 1,000 at a time, and removes those it does not name. One replica sweeps
//! at a time (a session advisory lock); a store another service has marked is left alone.

use std::time::Duration;

use futures_util::StreamExt;
use hds_common::config::DicomServiceConfig;
use hds_dicom_index::Index;
use hds_dicom_index::orphans::{FileKey, SweepLock};

use crate::blobs::SPOOL;
use crate::{AppState, Blobs};

/// Files asked about in one query.
const BATCH: usize = 1000;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Instance files older than the grace period.
    pub examined: u64,
    /// Of those, the ones no instance row named, now removed.
    pub removed: u64,
    /// STOW parts spooled by a process that died before storing them
    /// ([`Blobs::spool_dir`]), older than the grace period, now removed.
    pub spool_removed: u64,
}

/// The name a service marks its store with ([`Blobs::mark_owner`]).
pub fn owner(config: &DicomServiceConfig) -> String {
    format!("{}~{}", config.workspace, config.name)
}

/// One sweep: `None` when another replica holds the sweep lock.
pub async fn sweep_orphans(
    index: &Index,
    blobs: &Blobs,
    owner: &str,
    grace: Duration,
) -> Result<Option<SweepOutcome>, String> {
    let lock = index
        .try_sweep_lock()
        .await
        .map_err(|e| format!("the sweep lock: {e}"))?;
    let Some(lock) = lock else {
        return Ok(None);
    };
    let outcome = sweep(&lock, blobs, owner, grace).await;
    lock.release().await;
    outcome.map(Some)
}

async fn sweep(
    lock: &SweepLock,
    blobs: &Blobs,
    owner: &str,
    grace: Duration,
) -> Result<SweepOutcome, String> {
    let others = blobs
        .other_owners(owner)
        .await
        .map_err(|e| format!("listing the store's services: {e}"))?;
    if !others.is_empty() {
        return Err(format!(
            "the blob store is shared with other DICOM services ({others:?}); \
             their files are not in this index, so no file is removed"
        ));
    }
    let cutoff = chrono::Utc::now()
        - chrono::Duration::from_std(grace).map_err(|e| format!("grace period: {e}"))?;
    let mut outcome = SweepOutcome::default();
    let mut batch = Vec::with_capacity(BATCH);
    // Listed keys are object_store's encoded paths (`~` is `%7E`).
    let spool = object_store::path::PathPart::from(SPOOL);
    let mut files = std::pin::pin!(blobs.list());
    while let Some(file) = files.next().await {
        let (key, modified) = file.map_err(|e| format!("listing the store: {e}"))?;
        if modified >= cutoff {
            continue;
        }
        if key
            .strip_prefix(spool.as_ref())
            .is_some_and(|rest| rest.starts_with('/'))
        {
            // A live request renames or removes its spool within the grace period.
            match blobs.delete_listed(&key).await {
                Ok(true) => outcome.spool_removed += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(file = %key, error = %e, "could not remove a stale spool file")
                }
            }
            continue;
        }
        let Some(file) = instance_file(key) else {
            continue;
        };
        batch.push(file);
        if batch.len() == BATCH {
            remove_unreferenced(lock, blobs, &mut batch, &mut outcome).await?;
        }
    }
    remove_unreferenced(lock, blobs, &mut batch, &mut outcome).await?;
    Ok(outcome)
}

/// A key as the service writes them, `{partition}/{study}/{series}/{sop}_{uuid}.dcm`, or as it
/// wrote them before instances lost their own directory, `{partition}/{study}/{series}/{sop}/{uuid}.dcm`;
/// anything else in the store is not an instance file and is never touched.
fn instance_file(key: String) -> Option<FileKey> {
    let parts: Vec<&str> = key.split('/').collect();
    let (partition, sop, uuid) = match parts[..] {
        [partition, _, _, name] => {
            let (sop, uuid) = name.strip_suffix(".dcm")?.rsplit_once('_')?;
            (partition, sop, uuid)
        }
        [partition, _, _, sop, name] => (partition, sop, name.strip_suffix(".dcm")?),
        _ => return None,
    };
    if sop.is_empty() || uuid.len() != 32 || !uuid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (partition, sop_uid) = (partition.to_owned(), sop.to_owned());
    Some(FileKey {
        key,
        partition,
        sop_uid,
    })
}

async fn remove_unreferenced(
    lock: &SweepLock,
    blobs: &Blobs,
    batch: &mut Vec<FileKey>,
    outcome: &mut SweepOutcome,
) -> Result<(), String> {
    if batch.is_empty() {
        return Ok(());
    }
    let named = lock
        .referenced(batch)
        .await
        .map_err(|e| format!("asking the index: {e}"))?;
    outcome.examined += batch.len() as u64;
    for file in batch.drain(..) {
        if named.contains(&file.key) {
            continue;
        }
        match blobs.delete(&file.key).await {
            Ok(true) => {
                outcome.removed += 1;
                metrics::counter!("dicom_orphan_files_removed_total").increment(1);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(blob = %file.key, error = %e, "could not remove an orphan file")
            }
        }
    }
    Ok(())
}

/// Sweeps some minutes after start, then every `intervalHours`, for as long as the service lives.
pub(crate) async fn worker(state: AppState) {
    let cfg = state.config.orphan_sweep.clone();
    let owner = owner(&state.config);
    let grace = Duration::from_secs(cfg.grace_seconds);
    tokio::time::sleep(Duration::from_secs(cfg.start_delay_seconds)).await;
    loop {
        let service = &state.config.name;
        match sweep_orphans(&state.index, &state.blobs, &owner, grace).await {
            Ok(Some(o)) => tracing::info!(
                service = %service,
                examined = o.examined,
                removed = o.removed,
                spool_removed = o.spool_removed,
                "orphan-file sweep done"
            ),
            Ok(None) => {
                tracing::debug!(service = %service, "another replica is sweeping orphan files")
            }
            Err(e) => tracing::warn!(service = %service, error = %e, "orphan-file sweep failed"),
        }
        tokio::time::sleep(Duration::from_secs(cfg.interval_hours.max(1) * 3600)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_keys_of_both_layouts_name_their_instance() {
        let uuid = "0123456789abcdef0123456789abcdef";
        for key in [
            format!("p/1.2/1.2.3/1.2.3.4_{uuid}.dcm"),
            format!("p/1.2/1.2.3/1.2.3.4/{uuid}.dcm"),
        ] {
            let f = instance_file(key).expect("an instance file");
            assert_eq!((f.partition.as_str(), f.sop_uid.as_str()), ("p", "1.2.3.4"));
        }
        for other in [
            "p/notes.txt".to_owned(),
            format!("p/1.2/1.2.3/_{uuid}.dcm"),
            "p/1.2/1.2.3/1.2.3.4_123.dcm".to_owned(),
            format!("p/1.2/1.2.3/1.2.3.4_{uuid}.txt"),
            format!("~hds-dicom-services/{uuid}"),
        ] {
            assert!(instance_file(other.clone()).is_none(), "{other}");
        }
    }
}
