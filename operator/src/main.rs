use std::{fs, path::PathBuf};

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hds-operator",
    version,
    about = "Kubernetes operator for hds.dev resources"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as multi-document YAML.
    Crds {
        /// Write one `<plural>.<group>.yaml` per CRD plus `all.yaml` into this directory
        /// instead of printing.
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crds { out_dir: None } => print!("{}", hds_crds::crds_yaml()),
        Command::Crds { out_dir: Some(dir) } => write_crds(&dir)?,
    }
    Ok(())
}

fn write_crds(dir: &std::path::Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for crd in hds_crds::all_crds() {
        let name = crd.metadata.name.clone().context("CRD without a name")?;
        let path = dir.join(format!("{name}.yaml"));
        fs::write(&path, hds_crds::crd_yaml(&crd))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let path = dir.join("all.yaml");
    fs::write(&path, hds_crds::crds_yaml())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}
