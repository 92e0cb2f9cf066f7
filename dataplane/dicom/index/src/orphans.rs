//! What the orphan-file sweep asks of the index: a lock no two replicas hold at once, and which
//! of the files it found instance rows name.

use std::collections::HashSet;

use deadpool_postgres::Object;

use crate::{Index, Result};

/// The session advisory lock a sweep holds for its whole run (advisory locks are per
/// database, and a service has its database to itself).
pub const SWEEP_LOCK: i64 = 0x6864_735f_6f72_7068; // "hds_orph"

/// A held sweep lock, on the connection that holds it. Dropped without
/// [`SweepLock::release`], the connection is closed rather than pooled, which frees the lock.
pub struct SweepLock {
    conn: Option<Object>,
}

/// A file key the sweep checks: `{partition}/{study}/{series}/{sop}/{uuid}.dcm`.
#[derive(Debug, Clone)]
pub struct FileKey {
    pub key: String,
    pub partition: String,
    pub sop_uid: String,
}

impl Index {
    /// The sweep lock, or `None` when another sweep (another replica) holds it.
    pub async fn try_sweep_lock(&self) -> Result<Option<SweepLock>> {
        let conn = self.pool.get().await?;
        let locked: bool = conn
            .query_one("SELECT pg_try_advisory_lock($1)", &[&SWEEP_LOCK])
            .await?
            .get(0);
        Ok(locked.then_some(SweepLock { conn: Some(conn) }))
    }
}

impl SweepLock {
    fn conn(&self) -> &Object {
        self.conn.as_ref().expect("held until released")
    }

    /// Which of these keys an instance row names. Looked up by (partition, SOP Instance UID),
    /// the unique index, so a batch of 1,000 keys is 1,000 index probes.
    pub async fn referenced(&self, keys: &[FileKey]) -> Result<HashSet<String>> {
        let partitions: Vec<&str> = keys.iter().map(|k| k.partition.as_str()).collect();
        let sops: Vec<&str> = keys.iter().map(|k| k.sop_uid.as_str()).collect();
        let blobs: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
        let rows = self
            .conn()
            .query(
                "SELECT i.blob FROM unnest($1::text[], $2::text[]) AS k(partition, sop_uid)
                 JOIN dicom_instances i
                   ON i.partition = k.partition AND i.sop_uid = k.sop_uid
                 WHERE i.blob = ANY($3)",
                &[&partitions, &sops, &blobs],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    pub async fn release(mut self) {
        let conn = self.conn.take().expect("held until released");
        if conn
            .query_one("SELECT pg_advisory_unlock($1)", &[&SWEEP_LOCK])
            .await
            .is_err()
        {
            // A connection that may still hold the lock must not go back to the pool.
            drop(Object::take(conn));
        }
    }
}

impl Drop for SweepLock {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            drop(Object::take(conn));
        }
    }
}
