//! What every hds service shares, so that each service crate holds only its own domain.
//!
//! - [`config`]: the typed configuration of each service. The operator writes it into a ConfigMap
//!   and `hds up` builds it in memory, from the same custom-resource spec.
//! - [`telemetry`]: tracing logs and the Prometheus recorder.
//! - [`health`]: `/health/check` and `/metrics`.
//! - [`shutdown`]: the signal that starts a graceful drain.
//! - [`db`]: the Postgres pool and the versioned migration runner.

pub mod config;
pub mod db;
pub mod from_spec;
pub mod health;
pub mod shutdown;
pub mod telemetry;
