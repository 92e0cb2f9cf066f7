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
