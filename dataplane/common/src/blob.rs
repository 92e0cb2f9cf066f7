//! Object stores from URLs: what export files, import inputs and DICOM instances live in.
//! `file://` is a local directory (created if missing); `s3://bucket/prefix` is S3 or an
//! S3-compatible service, configured by the usual `AWS_*` variables.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

/// The store a URL names and the prefix inside it. `what` names the use in error messages.
pub fn open(url: &str, what: &str) -> Result<(Arc<dyn ObjectStore>, Path), String> {
    let parsed = url::Url::parse(url).map_err(|e| format!("{what} URL '{url}': {e}"))?;
    if parsed.scheme() == "file" {
        let dir = parsed
            .to_file_path()
            .map_err(|()| format!("{what} URL '{url}' is not a local path"))?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create the {what} directory {}: {e}", dir.display()))?;
    }
    // `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, ... as the S3 builder's own option names.
    let options = std::env::vars()
        .filter(|(k, _)| k.starts_with("AWS_"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v));
    let (store, prefix) = object_store::parse_url_opts(&parsed, options)
        .map_err(|e| format!("{what} URL '{url}': {e}"))?;
    Ok((Arc::from(store), prefix))
}

/// Makes what was written to a local directory durable, for many writers at the cost of few
/// syncs. object_store's `LocalFileSystem` leaves files in the page cache (its own fsync option
/// syncs every file and every new directory one by one: four syncs per DICOM instance), so a
/// power cut after the index commit could lose a file the index names. Instead a writer calls
/// [`GroupSync::sync`] after its writes: one `syncfs(2)` of the directory's filesystem makes
/// every write finished before it began durable, data and directory entries alike, and the
/// writers that asked while it ran share the next one (group commit, as PostgreSQL's WAL flush).
#[derive(Debug)]
pub struct GroupSync {
    dir: std::fs::File,
    /// Tickets are drawn after a writer's writes; a sync that starts later covers them.
    next_ticket: std::sync::atomic::AtomicU64,
    /// Every ticket below this is durable.
    durable_below: std::sync::atomic::AtomicU64,
    one_at_a_time: tokio::sync::Mutex<()>,
}

impl GroupSync {
    /// For the filesystem that holds `dir`.
    pub fn open(dir: &std::path::Path) -> std::io::Result<Self> {
        Ok(Self {
            dir: std::fs::File::open(dir)?,
            next_ticket: 0.into(),
            durable_below: 0.into(),
            one_at_a_time: tokio::sync::Mutex::new(()),
        })
    }

    /// The group sync for the store at `url` (see [`open`]): `None` for stores whose writes
    /// are durable when they return. `what` names the use in error messages.
    pub fn for_url(url: &str, what: &str) -> Result<Option<Arc<Self>>, String> {
        match Self::local_dir(url) {
            Some(dir) => Self::open(&dir)
                .map(|s| Some(Arc::new(s)))
                .map_err(|e| format!("cannot open the {what} directory {}: {e}", dir.display())),
            None => Ok(None),
        }
    }

    /// The directory of a `file://` URL, for [`GroupSync::open`]; `None` for other stores,
    /// whose writes are durable when they return.
    pub fn local_dir(url: &str) -> Option<std::path::PathBuf> {
        let parsed = url::Url::parse(url).ok()?;
        (parsed.scheme() == "file")
            .then(|| parsed.to_file_path().ok())
            .flatten()
    }

    /// Returns once every write this task finished before the call is on stable storage.
    pub async fn sync(self: &Arc<Self>) -> std::io::Result<()> {
        use std::sync::atomic::Ordering::SeqCst;
        let ticket = self.next_ticket.fetch_add(1, SeqCst);
        let _turn = self.one_at_a_time.lock().await;
        if self.durable_below.load(SeqCst) > ticket {
            return Ok(());
        }
        let covers = self.next_ticket.load(SeqCst);
        let me = self.clone();
        tokio::task::spawn_blocking(move || me.syncfs())
            .await
            .map_err(std::io::Error::other)??;
        self.durable_below.fetch_max(covers, SeqCst);
        Ok(())
    }

    #[cfg(target_os = "linux")]
    fn syncfs(&self) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs takes any open descriptor and reads nothing through pointers.
        if unsafe { libc::syncfs(self.dir.as_raw_fd()) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn syncfs(&self) -> std::io::Result<()> {
        // No per-filesystem sync elsewhere: flushing the directory itself is the closest.
        self.dir.sync_all()
    }
}

#[cfg(test)]
mod group_sync_tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_writers_share_syncs_and_all_return() {
        let dir = std::env::temp_dir().join(format!("hds-groupsync-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let sync = Arc::new(GroupSync::open(&dir).unwrap());
        let mut tasks = Vec::new();
        for i in 0..16 {
            let (sync, dir) = (sync.clone(), dir.clone());
            tasks.push(tokio::spawn(async move {
                std::fs::write(dir.join(format!("f{i}")), [i as u8; 100]).unwrap();
                sync.sync().await
            }));
        }
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        use std::sync::atomic::Ordering::SeqCst;
        assert_eq!(sync.next_ticket.load(SeqCst), 16);
        // Every ticket is covered by a finished sync.
        assert!(sync.durable_below.load(SeqCst) >= 16);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn only_file_urls_have_a_local_dir() {
        assert_eq!(
            GroupSync::local_dir("file:///var/lib/hds/dicom"),
            Some(std::path::PathBuf::from("/var/lib/hds/dicom"))
        );
        assert_eq!(GroupSync::local_dir("s3://bucket/prefix"), None);
    }
}
