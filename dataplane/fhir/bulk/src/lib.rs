//! Bulk data for the FHIR service: `$export` jobs (Bulk Data Access IG 2.0) and `$import`
//! jobs (Azure's shape).
//!
//! A kick-off records a job ([`export::start`]) with its transaction time; the worker
//! ([`export::Exporter::worker`]) claims jobs with a session advisory lock, reads each type's
//! resources as they were at that instant, id by id, and writes them as NDJSON files of at
//! most `maxFileBytes` into an object store ([`storage`]). Each finished file is recorded with
//! the cursor after it, so a job resumes after a restart where its last file ended, and memory
//! holds one file's worth of text whatever the size of the export.
//!
//! An import ([`import::start`]) lists NDJSON inputs inside the service's import store; the
//! worker ([`import::Importer::worker`]) streams each from the byte offset the job recorded and
//! commits every chunk's resources together with the offset after it (see [`import`]). Both
//! kinds of job share the claiming worker loop of [`jobs`], as do Azure's `$bulk-delete` jobs
//! ([`bulk_delete`]), which delete what a search matches in batches that commit with their
//! cursor.

pub mod bulk_delete;
pub mod export;
pub mod import;
mod jobs;
pub mod storage;

pub use bulk_delete::{BulkDeleteError, BulkDeleteJob, BulkDeleteRequest, BulkDeleter};
pub use export::{ExportError, ExportRequest, Exporter, Job, Level, OutputFile};
pub use import::{ImportError, ImportJob, ImportRequest, Importer};
