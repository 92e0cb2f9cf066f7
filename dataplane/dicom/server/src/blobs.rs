//! Instance files in an object store: `{partition}/{study}/{series}/{sop}_{uuid}.dcm`. Each store
//! writes a new object, so a replaced instance never overwrites a file someone is reading.

use std::sync::Arc;

use bytes::Bytes;
use hds_common::blob::GroupSync;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetResultPayload, ObjectStore, ObjectStoreExt, PutPayload};

/// Where services name themselves as keeping files in a store ([`Blobs::mark_owner`]).
const OWNERS: &str = "~hds-dicom-services";
/// Where a local store's large STOW parts are spooled ([`Blobs::spool_dir`]). Like `OWNERS`,
/// no partition name starts with `~`, so no instance key is in here.
pub(crate) const SPOOL: &str = "~hds-spool";

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// For a local directory: what makes its writes durable (`storage.sync`).
    durable: Option<Arc<GroupSync>>,
    /// For a local directory: the store as a file system, to write instance files in place
    /// ([`Blobs::write_in_place`]).
    local: Option<Arc<LocalFileSystem>>,
    /// For a local directory: where large STOW parts are spooled ([`Blobs::spool_dir`]).
    spool: Option<Arc<std::path::Path>>,
}

impl Blobs {
    /// The store at `url`; a local one syncs its writes on [`Blobs::make_durable`].
    pub fn open(url: &str) -> Result<Self, String> {
        let (store, prefix) = hds_common::blob::open(url, "DICOM storage")?;
        let durable = GroupSync::for_url(url, "DICOM storage")?;
        // `object_store` serves a `file://` URL from the root with the directory as prefix.
        let local = GroupSync::local_dir(url).map(|_| Arc::new(LocalFileSystem::new()));
        let spool = local.as_ref().and_then(|l| {
            let dir = l.path_to_filesystem(&prefix.clone().join(SPOOL)).ok()?;
            Some(Arc::from(dir))
        });
        Ok(Self {
            store,
            prefix,
            durable,
            local,
            spool,
        })
    }

    /// Without syncing (`storage.sync: false`): a crash may lose files written shortly before.
    pub fn without_sync(mut self) -> Self {
        self.durable = None;
        self
    }

    /// Returns once every file this task wrote is on stable storage; the index may then name
    /// them. A no-op for object stores, whose writes are durable when they return.
    pub async fn make_durable(&self) -> std::io::Result<()> {
        match &self.durable {
            Some(sync) => sync.sync().await,
            None => Ok(()),
        }
    }

    /// A fresh key for an instance's file.
    pub fn key(partition: &str, study: &str, series: &str, sop: &str) -> String {
        format!(
            "{partition}/{study}/{series}/{sop}_{}.dcm",
            uuid::Uuid::new_v4().simple()
        )
    }

    fn path(&self, key: &str) -> Path {
        key.split('/')
            .fold(self.prefix.clone(), |p, part| p.join(part))
    }

    /// Whether files can be written with [`Blobs::write_in_place`].
    pub fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// Where a local store keeps the file of `key`.
    fn local_file(&self, key: &str) -> std::io::Result<std::path::PathBuf> {
        let local = self
            .local
            .as_ref()
            .ok_or_else(|| std::io::Error::other("the DICOM storage is not a local directory"))?;
        local
            .path_to_filesystem(&self.path(key))
            .map_err(std::io::Error::other)
    }

    /// Writes a new file of a local store directly under its name, on the calling thread (a
    /// blocking one). `object_store` writes a staged file and renames it, for readers that
    /// must never see a partial file, on a thread of its own; an instance file is named by
    /// nothing until the index records it, after it is whole and synced, so neither is
    /// needed, and each cost a STOW part a thread hand-off and a directory operation. The
    /// name is `object_store`'s own for the key, so its reads, lists and deletes find the
    /// file. A file that cannot be written whole is removed.
    pub fn write_in_place(&self, key: &str, data: &[u8]) -> std::io::Result<()> {
        use std::io::Write;
        let path = self.local_file(key)?;
        let create = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
        };
        let mut file = match create() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                create()?
            }
            other => other?,
        };
        file.write_all(data).inspect_err(|_| {
            let _ = std::fs::remove_file(&path);
        })
    }

    /// For a local store, the directory inside it where a STOW part too large for memory is
    /// written as it arrives. Being on the store's file system, the spooled file then becomes
    /// the instance's file by a rename ([`Blobs::adopt`]), where a spool elsewhere cost the
    /// part a second full write and read. Files left here by a killed process are removed by
    /// the orphan sweep.
    pub fn spool_dir(&self) -> Option<&std::path::Path> {
        self.spool.as_deref()
    }

    /// Makes a file spooled in [`Blobs::spool_dir`] the file of `key`, by renaming it.
    pub fn adopt(&self, key: &str, spooled: tempfile::TempPath) -> std::io::Result<()> {
        let path = self.local_file(key)?;
        match spooled.persist(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.error.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                e.path.persist(&path).map_err(|e| e.error)
            }
            Err(e) => Err(e.error),
        }
    }

    pub async fn put(&self, key: &str, data: Bytes) -> Result<(), object_store::Error> {
        self.store
            .put(&self.path(key), PutPayload::from_bytes(data))
            .await
            .map(|_| ())
    }

    /// Writes a spooled file, in parts, without reading it whole into memory.
    pub async fn put_file(
        &self,
        key: &str,
        file: &std::path::Path,
    ) -> Result<(), object_store::Error> {
        use tokio::io::AsyncReadExt;
        let mut upload =
            object_store::WriteMultipart::new(self.store.put_multipart(&self.path(key)).await?);
        let mut f =
            tokio::fs::File::open(file)
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "spool",
                    source: Box::new(e),
                })?;
        let mut buf = vec![0u8; 8 * 1024 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .await
                .map_err(|e| object_store::Error::Generic {
                    store: "spool",
                    source: Box::new(e),
                })?;
            if n == 0 {
                break;
            }
            upload.write(&buf[..n]);
        }
        upload.finish().await.map(|_| ())
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, object_store::Error> {
        self.store.get(&self.path(key)).await?.bytes().await
    }

    pub async fn stream(
        &self,
        key: &str,
    ) -> Result<
        futures_util::stream::BoxStream<'static, Result<Bytes, object_store::Error>>,
        object_store::Error,
    > {
        let got = self.store.get(&self.path(key)).await?;
        let range = got.range.clone();
        match got.payload {
            GetResultPayload::File(file, _) => Ok(file_chunks(file, range)),
            GetResultPayload::Stream(s) => Ok(s),
        }
    }

    /// Every file under the store's prefix, its key relative to the prefix and when it was
    /// written, as the store lists them (in pages, never the whole listing at once).
    pub(crate) fn list(
        &self,
    ) -> impl futures_util::Stream<
        Item = Result<(String, chrono::DateTime<chrono::Utc>), object_store::Error>,
    > + use<> {
        use futures_util::StreamExt;
        let prefix = self.prefix.clone();
        self.store.list(Some(&self.prefix)).map(move |meta| {
            let meta = meta?;
            let key = match meta.location.prefix_match(&prefix) {
                Some(parts) => parts
                    .map(|p| p.as_ref().to_owned())
                    .collect::<Vec<_>>()
                    .join("/"),
                None => meta.location.to_string(),
            };
            Ok((key, meta.last_modified))
        })
    }

    /// Records that a service keeps its files here (`~hds-dicom-services/{owner}`; `~` is in no
    /// partition name, so no instance key starts there). The orphan sweep refuses a store
    /// another service has marked: that service's files are not in this one's index.
    pub async fn mark_owner(&self, owner: &str) -> Result<(), object_store::Error> {
        let path = self.prefix.clone().join(OWNERS).join(owner);
        self.store
            .put(&path, PutPayload::from_static(b""))
            .await
            .map(|_| ())
    }

    /// The services other than `owner` that have marked this store as theirs.
    pub(crate) async fn other_owners(
        &self,
        owner: &str,
    ) -> Result<Vec<String>, object_store::Error> {
        use futures_util::TryStreamExt;
        let dir = self.prefix.clone().join(OWNERS);
        let me = object_store::path::PathPart::from(owner);
        let metas: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        Ok(metas
            .into_iter()
            .filter_map(|m| m.location.filename().map(str::to_owned))
            .filter(|name| name != me.as_ref())
            .map(|name| {
                percent_encoding::percent_decode_str(&name)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect())
    }

    /// Removes a file named as [`Blobs::list`] names it (object_store's encoded path, where
    /// [`Blobs::delete`] takes a key to encode); `false` when it was gone already.
    pub(crate) async fn delete_listed(&self, listed: &str) -> Result<bool, object_store::Error> {
        let relative = Path::parse(listed)?;
        let path = Path::from_iter(self.prefix.parts().chain(relative.parts()));
        match self.store.delete(&path).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes one file; `false` when it was gone already.
    pub(crate) async fn delete(&self, key: &str) -> Result<bool, object_store::Error> {
        match self.store.delete(&self.path(key)).await {
            Ok(()) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Removes files; a missing one is already what was wanted, other failures are logged
    /// (an orphaned file costs space, never correctness: the index no longer names it).
    pub async fn remove(&self, keys: impl IntoIterator<Item = String>) {
        for key in keys {
            match self.store.delete(&self.path(&key)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => {
                    tracing::warn!(blob = %key, error = %e, "could not remove an instance file")
                }
            }
        }
    }
}

/// A local file as a stream of 512 KiB pieces. object_store reads one in 8 KiB pieces, each a
/// round trip to the blocking pool, so a 64 MB instance cost 8,000 hand-offs; in this size a
/// retrieve keeps up with the disk.
fn file_chunks(
    file: std::fs::File,
    range: std::ops::Range<u64>,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, object_store::Error>> {
    use futures_util::StreamExt;
    use std::io::{Read, Seek, SeekFrom};
    const PIECE: u64 = 512 * 1024;
    let fail = |e: std::io::Error| object_store::Error::Generic {
        store: "LocalFileSystem",
        source: Box::new(e),
    };
    let start = (file, range.start, range.end - range.start, true);
    futures_util::stream::try_unfold(start, move |(mut file, at, left, first)| async move {
        if left == 0 {
            return Ok(None);
        }
        tokio::task::spawn_blocking(move || {
            if first {
                file.seek(SeekFrom::Start(at))?;
            }
            let want = left.min(PIECE);
            let mut buf = Vec::with_capacity(want as usize);
            let got = (&mut file).take(want).read_to_end(&mut buf)? as u64;
            if got == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the instance file is shorter than when it was opened",
                ));
            }
            Ok(Some((
                Bytes::from(buf),
                (file, at + got, left - got, false),
            )))
        })
        .await
        .map_err(|e| fail(std::io::Error::other(e)))?
        .map_err(fail)
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::TryStreamExt;

    #[tokio::test]
    async fn a_large_file_streams_whole_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&format!("file://{}", dir.path().display())).unwrap();
        // Three pieces and a bit, with no two pieces alike.
        let data: Vec<u8> = (0..1_600_000u32).map(|i| (i % 251) as u8).collect();
        let key = Blobs::key("p", "1.2", "1.2.3", "1.2.3.4");
        blobs.put(&key, Bytes::from(data.clone())).await.unwrap();
        blobs.make_durable().await.unwrap();
        let pieces: Vec<Bytes> = blobs
            .stream(&key)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(pieces.len(), 4);
        assert!(pieces.iter().take(3).all(|p| p.len() == 512 * 1024));
        assert_eq!(pieces.concat(), data);
    }

    /// Files written in place are object_store's files: found by its reads, lists and
    /// deletes under the same key, in directories created as needed.
    #[tokio::test]
    async fn a_file_written_in_place_is_the_stores_file_of_that_key() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::open(&format!("file://{}/store", dir.path().display())).unwrap();
        assert!(blobs.is_local());
        let key = Blobs::key("Microsoft.Default", "1.2", "1.2.3", "1.2.3.4");
        blobs.write_in_place(&key, b"DICM in place").unwrap();
        assert_eq!(&blobs.get(&key).await.unwrap()[..], b"DICM in place");
        let listed: Vec<String> = blobs.list().map_ok(|(k, _)| k).try_collect().await.unwrap();
        assert_eq!(listed, std::slice::from_ref(&key));
        // A key names one file once: a second write of it is refused, the first kept whole.
        assert!(blobs.write_in_place(&key, b"other").is_err());
        assert_eq!(&blobs.get(&key).await.unwrap()[..], b"DICM in place");
        assert!(blobs.delete(&key).await.unwrap());
        assert!(blobs.get(&key).await.is_err());
    }

    #[tokio::test]
    async fn a_range_starts_where_it_says() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123456789").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let got: Vec<Bytes> = file_chunks(file, 3..7).try_collect().await.unwrap();
        assert_eq!(got.concat(), b"3456");
    }

    #[tokio::test]
    async fn a_file_cut_short_is_an_error_not_a_short_answer() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"0123").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let got: Result<Vec<Bytes>, _> = file_chunks(file, 0..10).try_collect().await;
        assert!(got.is_err());
    }
}
