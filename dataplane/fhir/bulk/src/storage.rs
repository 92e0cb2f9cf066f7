//! Where export files go: any store the `object_store` crate reaches from a URL. `file://` is
//! a local directory (created if missing); `s3://bucket/prefix` is S3 or an S3-compatible
//! service, configured by the usual `AWS_*` variables.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::path::Path;

/// An object store and the prefix inside it that export files go under.
#[derive(Clone, Debug)]
pub struct FileStore {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: Path,
}

impl FileStore {
    pub fn open(url: &str) -> Result<Self, String> {
        let parsed =
            url::Url::parse(url).map_err(|e| format!("export storage URL '{url}': {e}"))?;
        if parsed.scheme() == "file" {
            let dir = parsed
                .to_file_path()
                .map_err(|()| format!("export storage URL '{url}' is not a local path"))?;
            std::fs::create_dir_all(&dir).map_err(|e| {
                format!("cannot create the export directory {}: {e}", dir.display())
            })?;
        }
        // `AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, ... as the S3 builder's own option names.
        let options = std::env::vars()
            .filter(|(k, _)| k.starts_with("AWS_"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v));
        let (store, prefix) = object_store::parse_url_opts(&parsed, options)
            .map_err(|e| format!("export storage URL '{url}': {e}"))?;
        Ok(Self {
            store: Arc::from(store),
            prefix,
        })
    }

    /// The path of one export file.
    pub fn path(&self, job: &str, file: &str) -> Path {
        self.prefix.clone().join(job).join(file)
    }

    /// The directory of one job's files.
    pub fn job_dir(&self, job: &str) -> Path {
        self.prefix.clone().join(job)
    }
}
