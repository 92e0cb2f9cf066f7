//! What every hds service shares, so that each service crate holds only its own domain.
//!
//! - [`audit`]: the audit layer (one record per request) every HTTP service puts outermost.
//! - [`auth`]: the token validator of a service, from its auth settings.
//! - [`blob`]: object stores (filesystem, S3) from URLs.
//! - [`cors`]: the CORS layer of a service, from its `cors` settings.
//! - [`config`]: the typed configuration of each service. The operator writes it into a ConfigMap
//!   and `hds up` builds it in memory, from the same custom-resource spec.
//! - [`telemetry`]: tracing logs and the Prometheus recorder.
//! - [`health`]: `/health/check` and `/metrics`.
//! - [`shutdown`]: the signal that starts a graceful drain.
//! - [`db`]: the Postgres pool and the versioned migration runner.
//! - [`fhir_client`]: calls to a FHIR service with a Workspace client's token.
//! - [`service_identity`]: the Workspace clients services act with when they call each other.

pub mod audit;
pub mod auth;
pub mod blob;
pub mod config;
pub mod cors;
pub mod db;
pub mod fhir_client;
pub mod from_spec;
pub mod health;
pub mod service_identity;
pub mod shutdown;
pub mod telemetry;
