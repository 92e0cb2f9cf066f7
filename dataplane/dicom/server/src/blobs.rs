//! Instance files in an object store: `{partition}/{study}/{series}/{sop}/{uuid}.dcm`. Each store
//! writes a new object, so a replaced instance never overwrites a file someone is reading.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// Where services name themselves as keeping files in a store ([`Blobs::mark_owner`]).
const OWNERS: &str = "~hds-dicom-services";

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl Blobs {
    pub fn open(url: &str) -> Result<Self, String> {
        let (store, prefix) = hds_common::blob::open(url, "DICOM storage")?;
        Ok(Self { store, prefix })
    }

    /// A fresh key for an instance's file.
    pub fn key(partition: &str, study: &str, series: &str, sop: &str) -> String {
        format!(
            "{partition}/{study}/{series}/{sop}/{}.dcm",
            uuid::Uuid::new_v4().simple()
        )
    }

    fn path(&self, key: &str) -> Path {
        key.split('/')
            .fold(self.prefix.clone(), |p, part| p.join(part))
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
        Ok(self.store.get(&self.path(key)).await?.into_stream())
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
