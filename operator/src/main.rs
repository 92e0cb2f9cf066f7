use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::{fs, process::ExitCode};

use anyhow::Context;
use clap::{ArgAction, Args, Parser, Subcommand};
use hds_operator::{controller, desired, leader, server};

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
    /// Run the controllers against the cluster of the ambient kubeconfig or service account.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// The `hds` image the services' Deployments run.
    #[arg(long, env = "HDS_IMAGE")]
    image: String,
    /// Hold a Lease before reconciling, so several replicas can run.
    #[arg(long, env = "HDS_LEADER_ELECTION", action = ArgAction::Set, num_args = 0..=1,
          default_value_t = false, default_missing_value = "true")]
    leader_election: bool,
    #[arg(long, default_value = "hds-operator")]
    lease_name: String,
    /// Where the Lease lives: the operator's own namespace.
    #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
    lease_namespace: String,
    /// This replica's identity in the Lease and in Events.
    #[arg(long, env = "POD_NAME")]
    pod_name: Option<String>,
    #[arg(long, env = "HDS_METRICS_LISTEN", default_value = "0.0.0.0:9090")]
    metrics_listen: SocketAddr,
    #[arg(long, env = "HDS_CLUSTER_DOMAIN", default_value = "cluster.local")]
    cluster_domain: String,
    /// Watch one namespace only (all when empty).
    #[arg(long, env = "HDS_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    hds_common::telemetry::init_tracing();
    hds_common::telemetry::prometheus();
    let result = match Cli::parse().command {
        Command::Crds { out_dir: None } => {
            print!("{}", hds_crds::crds_yaml());
            Ok(())
        }
        Command::Crds { out_dir: Some(dir) } => write_crds(&dir),
        Command::Run(args) => run(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The log line is what a pod's logs keep; stderr is what a terminal shows.
            tracing::error!("{e:#}");
            if std::env::var_os("KUBERNETES_SERVICE_HOST").is_none() {
                eprintln!("hds-operator: {e:#}");
            }
            ExitCode::FAILURE
        }
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let ready = Arc::new(AtomicBool::new(false));
    let metrics = tokio::spawn(server::serve(args.metrics_listen, ready.clone()));
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster service account or KUBECONFIG)")?;
    client
        .apiserver_version()
        .await
        .context("the apiserver does not answer")?;
    ready.store(true, Ordering::Relaxed);
    let identity = args
        .pod_name
        .clone()
        .unwrap_or_else(|| format!("hds-operator-{}", std::process::id()));
    let mut desired_ctx = desired::Context::new(args.image);
    desired_ctx.cluster_domain = args.cluster_domain;
    if let Some(ns) = &args.watch_namespace {
        desired_ctx.default_namespace = ns.clone();
    }
    let ctx = Arc::new(controller::Ctx::new(
        client.clone(),
        desired_ctx,
        Some(identity.clone()),
    ));
    let namespace = args.watch_namespace.filter(|n| !n.is_empty());
    if args.leader_election {
        let lost = leader::acquire(
            client,
            leader::Election {
                lease_name: args.lease_name,
                namespace: args.lease_namespace,
                identity,
            },
        )
        .await?;
        tokio::select! {
            () = controller::run(ctx, namespace) => {}
            () = lost => anyhow::bail!("lost the Lease; exiting so a new leader takes over"),
            r = metrics => r??,
        }
    } else {
        tokio::select! {
            () = controller::run(ctx, namespace) => {}
            r = metrics => r??,
        }
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
