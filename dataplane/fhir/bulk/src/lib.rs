//! Bulk data for the FHIR service (Bulk Data Access IG 2.0): `$export` jobs.
//!
//! A kick-off records a job ([`export::start`]) with its transaction time; the worker
//! ([`export::Exporter::worker`]) claims jobs with a session advisory lock, reads each type's
//! resources as they were at that instant, id by id, and writes them as NDJSON files of at
//! most `maxFileBytes` into an object store ([`storage`]). Each finished file is recorded with
//! the cursor after it, so a job resumes after a restart where its last file ended, and memory
//! holds one file's worth of text whatever the size of the export.

pub mod export;
pub mod storage;

pub use export::{ExportError, ExportRequest, Exporter, Job, Level, OutputFile};
