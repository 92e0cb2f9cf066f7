//! The orphan-file sweep against the real PostgreSQL and a file store: old files no instance row
//! names go, referenced and young ones stay, partitions are told apart, and a sweep another
//! replica holds the lock for, or of a store another service shares, removes nothing.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;
use hds_dicom_index::Index;
use hds_dicom_index::orphans::SWEEP_LOCK;
use hds_dicom_server::{Blobs, SweepOutcome, sweep_orphans};

const GRACE: Duration = Duration::from_secs(3600);

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn age(path: &Path, by: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - by)
        .unwrap();
}

/// Writes a file at `key` under the store's directory, `old` or just written.
fn orphan(root: &Path, key: &str, old: bool) -> PathBuf {
    let path = root.join(key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, b"not indexed").unwrap();
    if old {
        age(&path, 2 * GRACE);
    }
    path
}

async fn sweep(s: &TestServer) -> Result<Option<SweepOutcome>, String> {
    let index = Index::open(&s.db_url, 2).await.unwrap();
    let blobs = Blobs::open(&format!("file://{}", s.blob_dir.path().display())).unwrap();
    sweep_orphans(&index, &blobs, "ws~test", GRACE).await
}

async fn started() -> (TestServer, PathBuf, [String; 4]) {
    let mut cfg = config();
    cfg.enable_data_partitions = true;
    cfg.orphan_sweep.enabled = false;
    let s = start_with(cfg).await;
    let (status, answer) = stow(
        &s,
        "partitions/p1/studies",
        &[("application/dicom", &file("CT_small.dcm"))],
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let root = s.blob_dir.path().to_owned();
    let stored: Vec<PathBuf> = files(&root)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dcm"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let referenced = stored[0].clone();
    let key = referenced.strip_prefix(&root).unwrap().to_str().unwrap();
    // `{partition}/{study}/{series}/{sop}_{uuid}.dcm`
    let parts: Vec<&str> = key.split('/').collect();
    assert_eq!(parts.len(), 4, "{key}");
    assert_eq!(parts[0], "p1");
    let sop = parts[3].split_once('_').unwrap().0;
    let ids = [parts[0], parts[1], parts[2], sop].map(str::to_owned);
    (s, referenced, ids)
}

fn fresh_name() -> String {
    format!("{}.dcm", uuid_like())
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!("{:032x}", N.fetch_add(1, Ordering::Relaxed))
}

#[tokio::test]
async fn old_unreferenced_files_are_removed_and_nothing_else() {
    let (s, referenced, [_, study, series, sop]) = started().await;
    let root = s.blob_dir.path().to_owned();
    // Old enough to be taken, were the index not to name it.
    age(&referenced, 2 * GRACE);
    // The same instance's older file (a replace whose old file outlived a crash), the same SOP
    // Instance UID in another partition, and an instance the index never heard of.
    let replaced = orphan(
        &root,
        &format!("p1/{study}/{series}/{sop}_{}", fresh_name()),
        true,
    );
    let other_partition = orphan(
        &root,
        &format!("Microsoft.Default/{study}/{series}/{sop}/{}", fresh_name()),
        true,
    );
    let unknown = orphan(
        &root,
        &format!("p1/1.2/1.2.3/1.2.3.4_{}", fresh_name()),
        true,
    );
    // The same, in the layout of files written before instances lost their own directory.
    let unknown_old_layout = orphan(
        &root,
        &format!("p1/1.2/1.2.3/1.2.3.6/{}", fresh_name()),
        true,
    );
    // A STOW in flight: written, not yet committed.
    let young = orphan(
        &root,
        &format!("p1/1.2/1.2.3/1.2.3.5/{}", fresh_name()),
        false,
    );
    // Not an instance file's key: never touched, however old.
    let foreign = orphan(&root, "p1/notes.txt", true);
    // A large part spooled by a process that died; and one a STOW is still receiving.
    let spool = Blobs::open(&format!("file://{}", root.display()))
        .unwrap()
        .spool_dir()
        .unwrap()
        .to_owned();
    let stale_spool = orphan(&spool, "part-dead", true);
    let live_spool = orphan(&spool, "part-live", false);

    let outcome = sweep(&s).await.unwrap().expect("the lock was free");
    assert_eq!(
        outcome,
        SweepOutcome {
            examined: 5,
            removed: 4,
            spool_removed: 1,
        }
    );
    assert!(referenced.exists());
    assert!(young.exists());
    assert!(foreign.exists());
    assert!(!stale_spool.exists());
    assert!(live_spool.exists());
    for gone in [&replaced, &other_partition, &unknown, &unknown_old_layout] {
        assert!(!gone.exists(), "{gone:?} was left");
    }
    let r = s
        .http
        .get(s.url(&format!(
            "partitions/p1/studies/{study}/series/{series}/instances/{sop}"
        )))
        .header("accept", "multipart/related; type=\"application/dicom\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // A second sweep finds nothing more to do.
    let again = sweep(&s).await.unwrap().unwrap();
    assert_eq!(again.removed, 0);
}

#[tokio::test]
async fn a_sweep_another_replica_holds_the_lock_for_does_nothing() {
    let (s, _, [_, study, series, sop]) = started().await;
    let root = s.blob_dir.path().to_owned();
    let old = orphan(
        &root,
        &format!("p1/{study}/{series}/{sop}_{}", fresh_name()),
        true,
    );

    let (client, conn) = tokio_postgres::connect(&s.db_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let conn = tokio::spawn(conn);
    client
        .execute("SELECT pg_advisory_lock($1)", &[&SWEEP_LOCK])
        .await
        .unwrap();
    assert_eq!(sweep(&s).await.unwrap(), None);
    assert!(old.exists());

    // The other replica gone, its lock goes with its session.
    drop(client);
    conn.await.unwrap().unwrap();
    let outcome = sweep(&s).await.unwrap().expect("the lock is free now");
    assert_eq!(outcome.removed, 1);
    assert!(!old.exists());
}

#[tokio::test]
async fn a_store_another_service_shares_is_not_swept() {
    let (s, _, [_, study, series, sop]) = started().await;
    let root = s.blob_dir.path().to_owned();
    let old = orphan(
        &root,
        &format!("p1/{study}/{series}/{sop}_{}", fresh_name()),
        true,
    );
    let blobs = Blobs::open(&format!("file://{}", root.display())).unwrap();
    blobs.mark_owner("ws~another").await.unwrap();
    let err = sweep(&s).await.unwrap_err();
    assert!(err.contains("ws~another"), "{err}");
    assert!(old.exists());
}
