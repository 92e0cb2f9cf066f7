//! `hds medtech`: run one MedTech service from its config, or try templates on a message.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use hds_common::config::MedTechServiceConfig;
use hds_common::health;
use serde_json::{Map, Value};

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct MedTechArgs {
    #[command(subcommand)]
    command: Option<MedTechCommand>,
    /// The service config file (what the operator deploys).
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Overrides the config's listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
}

#[derive(clap::Subcommand)]
enum MedTechCommand {
    /// The mapping debugger: what a device message becomes under a device mapping and a FHIR
    /// mapping (Azure's JSON), with nothing written. Exits 1 when anything reports an error.
    Test {
        #[arg(long)]
        device_mapping: PathBuf,
        #[arg(long)]
        fhir_mapping: PathBuf,
        /// The device's JSON, as it would be published.
        #[arg(long)]
        message: PathBuf,
        /// Observation ids as Azure makes them, instead of ours.
        #[arg(long)]
        azure_ids: bool,
    },
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Ok(false) when the debugger reported errors.
pub async fn run(args: MedTechArgs) -> anyhow::Result<bool> {
    match args.command {
        Some(MedTechCommand::Test {
            device_mapping,
            fhir_mapping,
            message,
            azure_ids,
        }) => {
            let scheme = if azure_ids {
                hds_medtech_fhir::IdScheme::Azure
            } else {
                hds_medtech_fhir::IdScheme::Hds {
                    service: "test".into(),
                }
            };
            let report = hds_medtech_server::debug(
                &read_json(&device_mapping)?,
                &read_json(&fhir_mapping)?,
                read_json(&message)?,
                Map::new(),
                Map::new(),
                &scheme,
            );
            println!("{}", serde_json::to_string_pretty(&report)?);
            let clean = ["deviceMapping", "fhirMapping"]
                .iter()
                .all(|t| report[t]["errors"].as_array().is_none_or(Vec::is_empty))
                && report["errors"].as_array().is_none_or(Vec::is_empty);
            Ok(clean)
        }
        None => {
            let path = args.config.context(
                "give --config FILE to run a MedTech service, or use `hds medtech test`",
            )?;
            let config = MedTechServiceConfig::load(&path)?;
            let addr = args
                .listen
                .or(config.listen)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 8080)));
            let name = config.name.clone();
            let running = hds_medtech_server::service(config).await?;
            // Ready while subscribed to the broker: without it no device data arrives.
            let probe = crate::serve::probe(crate::serve::Databases {
                mqtt: vec![(name, running.connected.clone())],
                ..Default::default()
            });
            let app = running.routes.merge(health::router(probe));
            tracing::info!(%addr, "MedTech service listening");
            crate::serve::listen(addr, app, hds_common::shutdown::signal()).await?;
            Ok(true)
        }
    }
}
