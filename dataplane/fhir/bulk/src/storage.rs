//! Where export files go and import files come from: any store [`hds_common::blob::open`]
//! reaches from a URL.

use std::sync::Arc;

use hds_common::blob::GroupSync;
use object_store::ObjectStore;
use object_store::path::Path;

/// An object store and the prefix inside it that a service's files live under.
#[derive(Clone, Debug)]
pub struct FileStore {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
    /// The URL it was opened from, without a trailing slash.
    pub url: String,
    /// For a local directory: what makes written files durable ([`FileStore::make_durable`]).
    durable: Option<Arc<GroupSync>>,
}

impl FileStore {
    pub fn open(url: &str) -> Result<Self, String> {
        let (store, prefix) = hds_common::blob::open(url, "export storage")?;
        let durable = GroupSync::for_url(url, "export storage")?;
        Ok(Self {
            store,
            prefix,
            url: url.trim_end_matches('/').to_owned(),
            durable,
        })
    }

    /// Returns once the files this task wrote are on stable storage, so a job may record them
    /// as written: a crash after that record must not leave it naming a lost file. Object
    /// stores' writes are durable when they return.
    pub async fn make_durable(&self) -> std::io::Result<()> {
        match &self.durable {
            Some(sync) => sync.sync().await,
            None => Ok(()),
        }
    }

    /// The object an import input names: a path relative to this store, or a URL inside it.
    /// Anything else is refused, so `$import` cannot be pointed at other files or hosts.
    pub fn resolve(&self, input: &str) -> Result<Path, String> {
        let relative = match input.strip_prefix(self.url.as_str()) {
            Some(rest) if rest.starts_with('/') => rest,
            Some(_) | None if input.contains("://") => {
                return Err(format!(
                    "'{input}' is not inside this service's import storage ({}/...); give a URL there or a path relative to it",
                    self.url
                ));
            }
            _ => input,
        };
        let relative = relative.trim_start_matches('/');
        let mut path = self.prefix.clone();
        for part in relative.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(format!(
                    "'{input}' is not a plain file path (empty, '.' or '..' segments)"
                ));
            }
            let decoded = percent_encoding::percent_decode_str(part).decode_utf8_lossy();
            path = path.join(decoded.as_ref());
        }
        Ok(path)
    }

    /// The path of one export file.
    pub fn path(&self, job: &str, file: &str) -> Path {
        self.prefix.clone().join(job).join(file)
    }

    /// The directory of one job's files.
    pub fn job_dir(&self, job: &str) -> Path {
        self.prefix.clone().join(job)
    }

    /// Removes what uploads cut short by a crash left in `job`'s directory: object_store's
    /// staging files (`<name>#<n>`) of a local directory, which its listings do not show, so
    /// nothing else would ever remove them. An S3 bucket's unfinished multipart uploads are
    /// left to its lifecycle rules (`AbortIncompleteMultipartUpload`).
    pub async fn remove_unfinished(&self, job: &str) -> std::io::Result<()> {
        let Some(dir) = GroupSync::local_dir(&self.url) else {
            return Ok(());
        };
        let dir = dir.join(job);
        tokio::task::spawn_blocking(move || remove_staged(&dir))
            .await
            .map_err(std::io::Error::other)?
    }
}

/// Deletes the files in `dir` whose names are object_store's staging names (`…#<digits>`).
fn remove_staged(dir: &std::path::Path) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let staged = name
            .to_str()
            .and_then(|n| n.rsplit_once('#'))
            .is_some_and(|(_, suffix)| {
                !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit())
            });
        if staged {
            tracing::info!(file = %entry.path().display(), "removing an unfinished export file");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn local_export_files_are_synced_object_stores_need_no_sync() {
        use object_store::{ObjectStoreExt, PutPayload};
        let dir = std::env::temp_dir().join(format!("hds-sync-test-{}", std::process::id()));
        let local = FileStore::open(&format!("file://{}", dir.display())).unwrap();
        assert!(local.durable.is_some());
        local
            .store
            .put(
                &local.path("job", "Patient-0001.ndjson"),
                PutPayload::from_static(b"{}\n"),
            )
            .await
            .unwrap();
        local.make_durable().await.unwrap();
        let s3 = FileStore::open("s3://bucket/exports").unwrap();
        assert!(s3.durable.is_none());
        s3.make_durable().await.unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[tokio::test]
    async fn unfinished_uploads_are_removed_finished_files_kept() {
        let dir = std::env::temp_dir().join(format!("hds-unfinished-{}", std::process::id()));
        let local = FileStore::open(&format!("file://{}", dir.display())).unwrap();
        // A job that never wrote anything has no directory.
        local.remove_unfinished("none").await.unwrap();
        std::fs::create_dir_all(dir.join("job")).unwrap();
        for name in [
            "Patient-0001.ndjson",
            "Patient-0002.ndjson#1",
            "odd#name",
            "x#",
        ] {
            std::fs::write(dir.join("job").join(name), b"{}\n").unwrap();
        }
        local.remove_unfinished("job").await.unwrap();
        let mut left: Vec<String> = std::fs::read_dir(dir.join("job"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["Patient-0001.ndjson", "odd#name", "x#"]);
        FileStore::open("s3://bucket/exports")
            .unwrap()
            .remove_unfinished("job")
            .await
            .unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn inputs_resolve_only_inside_the_store() {
        let dir = std::env::temp_dir().join("hds-resolve-test");
        let store = FileStore::open(&format!("file://{}", dir.display())).unwrap();
        let base = store.prefix.clone();
        assert_eq!(
            store.resolve("a/Patient.ndjson").unwrap(),
            base.clone().join("a").join("Patient.ndjson")
        );
        assert_eq!(
            store
                .resolve(&format!("file://{}/Patient%201.ndjson", dir.display()))
                .unwrap(),
            base.clone().join("Patient 1.ndjson")
        );
        for bad in [
            "../etc/passwd",
            "a//b",
            "file:///etc/passwd",
            "https://example.org/x.ndjson",
            "s3://bucket/x.ndjson",
        ] {
            assert!(store.resolve(bad).is_err(), "{bad} must be refused");
        }
        // A sibling directory whose name merely starts like the store's is not inside it.
        assert!(
            store
                .resolve(&format!("file://{}-other/x.ndjson", dir.display()))
                .is_err()
        );
    }
}
