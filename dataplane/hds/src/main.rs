//! `hds`: one binary for every way of running the services.
//!
//! - `hds up -f <file|dir>`: reads custom-resource YAML and runs every service it finds in this
//!   process, on an embedded PostgreSQL unless one is given.
//! - `hds fhir --config FILE`: runs one FHIR service from the config the operator renders.
//! - `hds dicom --config FILE`: runs one DICOM service the same way.
//! - `hds medtech --config FILE`: runs one MedTech service; `hds medtech test` is the mapping
//!   debugger.
//! - `hds issuer --config FILE`: runs one Workspace's token issuer (what the operator deploys).
//! - `hds import <files|dirs> --server URL`: loads NDJSON and Bundle files into a FHIR service.

mod embedded_postgres;
mod import;
mod issuer;
mod medtech;
mod mqtt_broker;
mod serve;
mod unread_body;
mod up;
mod workspace_identity;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Every request allocates many small, short-lived objects (JSON trees, index rows); glibc's
/// allocator spent 30% of the process's CPU on them under ingest, mimalloc far less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "hds",
    version,
    about = "Health data services: FHIR, DICOM and MedTech"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the services declared in custom-resource YAML on this machine.
    Up(up::UpArgs),
    /// Run one FHIR service from a service config file (what the operator deploys).
    Fhir {
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Overrides the config's listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run one DICOM service (DICOMweb) from a service config file.
    Dicom {
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Overrides the config's listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Run one MedTech service (device messages → FHIR Observations), or debug its templates
    /// with `hds medtech test`.
    Medtech(medtech::MedTechArgs),
    /// Run one Workspace's token issuer (OpenID discovery, JWKS, client-credentials token
    /// endpoint) from an issuer config file (what the operator deploys).
    Issuer {
        #[arg(long, short = 'c')]
        config: PathBuf,
        /// Overrides the config's listen address.
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Load NDJSON files and Bundles into a FHIR service through its API, resumably.
    /// Exit status: 0 all imported, 1 stopped by an error (run again to resume), 2 done but
    /// some lines were refused (each is reported with its file and line).
    Import(import::ImportArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    hds_common::telemetry::init_tracing();
    // Installed before any service records a metric, so nothing counted early is lost.
    hds_common::telemetry::prometheus();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Up(args) => up::run(args).await,
        Command::Fhir { config, listen } => serve::fhir(config, listen).await,
        Command::Dicom { config, listen } => serve::dicom(config, listen).await,
        Command::Medtech(args) => match medtech::run(args).await {
            Ok(true) => Ok(()),
            Ok(false) => return std::process::ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Issuer { config, listen } => issuer::run(&config, listen).await,
        Command::Import(args) => match import::run(args).await {
            Ok(true) => Ok(()),
            Ok(false) => return std::process::ExitCode::from(2),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
