//! Instance files in an object store: `{partition}/{study}/{series}/{sop}/{uuid}.dcm`. Each store
//! writes a new object, so a replaced instance never overwrites a file someone is reading.

use std::sync::Arc;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

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
