//! `hds up`: the custom resources of a directory, running on this machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use axum::Router;
use hds_common::config::PostgresConfig;
use hds_common::from_spec::{
    dicom_service_config, fhir_service_config, medtech_service_config, postgres_source,
};
use hds_crds::common::PostgresStorage;
use hds_crds::{DicomService, FhirService, Manifest, MedTechService, Workspace};
use serde_json::json;

use crate::embedded_postgres::EmbeddedPostgres;
use crate::serve;
use crate::workspace_identity;

#[derive(clap::Args)]
pub struct UpArgs {
    /// YAML files or directories of them (multi-document YAML is fine).
    #[arg(short = 'f', long = "file", required = true)]
    files: Vec<PathBuf>,
    /// Where every service listens; each is mounted at its own path.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Holds the embedded database and other local state.
    #[arg(long, default_value = ".hds")]
    data_dir: PathBuf,
    /// Use this PostgreSQL server (an admin URL) instead of starting an embedded one. Each service
    /// gets its own database on it.
    #[arg(long, env = "HDS_UP_POSTGRES_URL")]
    postgres_url: Option<String>,
    /// Write the services' URLs here as JSON once they are ready.
    #[arg(long)]
    endpoints_file: Option<PathBuf>,
    /// The embedded MQTT broker (MQTT 3.1.1 here, MQTT 5 on the next port), started for
    /// MedTechServices whose brokerUrl is a cluster address (`*.svc`) or `mqtt://embedded`.
    #[arg(long, default_value = "127.0.0.1:1883")]
    mqtt_listen: SocketAddr,
}

pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let manifests = load(&args.files)?;
    let mut workspaces: BTreeMap<String, Workspace> = BTreeMap::new();
    let mut secrets: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut fhir_services: Vec<FhirService> = Vec::new();
    let mut dicom_services: Vec<DicomService> = Vec::new();
    let mut medtech_services: Vec<MedTechService> = Vec::new();
    let mut service_identities = Vec::new();
    for m in manifests {
        match m {
            Manifest::Workspace(w) => {
                workspaces.insert(w.metadata.name.clone().unwrap_or_default(), w);
            }
            Manifest::FhirService(f) => fhir_services.push(f),
            Manifest::Secret { name, data, .. } => {
                secrets.insert(name, data);
            }
            Manifest::MedTechService(m) => {
                service_identities.extend(hds_common::service_identity::medtech(&m));
                medtech_services.push(m);
            }
            Manifest::DicomService(d) => {
                service_identities.extend(hds_common::service_identity::dicom_fhir_sync(&d));
                dicom_services.push(d);
            }
            other => tracing::info!(
                kind = other.kind(),
                name = other.name().unwrap_or(""),
                "not run by this version of hds up; skipped"
            ),
        }
    }
    if fhir_services.is_empty() && dicom_services.is_empty() {
        bail!("no FhirService or DicomService found in {:?}", args.files);
    }

    let base = format!("http://{}", display_addr(args.listen));
    let needs_embedded = args.postgres_url.is_none()
        && (fhir_services.iter().any(|f| {
            let ws = workspaces.get(&f.spec.workspace_ref.name);
            postgres_source(f.spec.storage.postgres.as_ref(), ws).is_none()
        }) || dicom_services.iter().any(|d| {
            let ws = workspaces.get(&d.spec.workspace_ref.name);
            postgres_source(d.spec.storage.postgres.as_ref(), ws).is_none()
        }));
    let embedded = if needs_embedded {
        Some(EmbeddedPostgres::start(&args.data_dir)?)
    } else {
        None
    };
    let default_admin = args
        .postgres_url
        .clone()
        .or_else(|| embedded.as_ref().map(|e| e.admin_url()));

    let mut app = Router::new();
    let mut dbs = serve::Databases::default();
    let mut endpoints = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    // Each Workspace a service names gets an issuer; its audiences are that Workspace's services.
    let mut audiences: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for svc in &fhir_services {
        let name = svc
            .metadata
            .name
            .clone()
            .context("a FhirService has no metadata.name")?;
        if !seen.insert(name.clone()) {
            bail!("two FhirServices are named '{name}'; names must be unique");
        }
        let ws = workspaces.get(&svc.spec.workspace_ref.name);
        if ws.is_none() {
            tracing::warn!(service = %name, workspace = %svc.spec.workspace_ref.name, "the Workspace is not among the files; using its defaults");
        }
        let url = database_url(
            &database_name("fhir", &name),
            postgres_source(svc.spec.storage.postgres.as_ref(), ws),
            &secrets,
            default_admin.as_deref(),
        )
        .await
        .with_context(|| format!("FhirService '{name}': database"))?;
        let mut config = fhir_service_config(svc, ws, PostgresConfig::from_url(url))?;
        let prefix = format!("/fhir/{name}");
        let service_url = format!("{base}{prefix}");
        config.base_url = Some(service_url.clone());
        for (kind, url) in [
            ("exports", &mut config.export.storage_url),
            ("imports", &mut config.import.storage_url),
        ] {
            if url.is_none() {
                let dir = std::path::absolute(args.data_dir.join(kind).join(&name))
                    .with_context(|| format!("FhirService '{name}': {kind} directory"))?;
                *url = Some(format!("file://{}", dir.display()));
            }
        }
        let ws_name = &svc.spec.workspace_ref.name;
        if config.auth.workspace_issuer.is_none() {
            config.auth.workspace_issuer = Some(workspace_identity::issuer_url(ws_name, ws, &base));
        }
        audiences
            .entry(ws_name.clone())
            .or_default()
            .push(service_url.clone());
        let (routes, store) = serve::fhir_service(config, &prefix).await?;
        app = app.nest(&prefix, routes);
        dbs.fhir.push(store);
        println!("FhirService {name}: {service_url}");
        endpoints.push(json!({
            "kind": "FhirService",
            "name": name,
            "namespace": svc.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            "workspace": svc.spec.workspace_ref.name,
            "url": service_url,
        }));
    }
    let mut seen = std::collections::BTreeSet::new();
    // DICOM→FHIR syncs start once the issuers (their credentials) exist.
    let mut syncs = Vec::new();
    for svc in &dicom_services {
        let name = svc
            .metadata
            .name
            .clone()
            .context("a DicomService has no metadata.name")?;
        if !seen.insert(name.clone()) {
            bail!("two DicomServices are named '{name}'; names must be unique");
        }
        let ws = workspaces.get(&svc.spec.workspace_ref.name);
        let url = database_url(
            &database_name("dicom", &name),
            postgres_source(svc.spec.storage.postgres.as_ref(), ws),
            &secrets,
            default_admin.as_deref(),
        )
        .await
        .with_context(|| format!("DicomService '{name}': database"))?;
        let mut config = dicom_service_config(svc, ws, PostgresConfig::from_url(url))?;
        let prefix = format!("/dicom/{name}");
        let service_url = format!("{base}{prefix}");
        config.base_url = Some(service_url.clone());
        // A filesystem claim means nothing on one machine: files go to the data directory.
        // S3 storage is used as given.
        if !config
            .storage
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("s3://"))
        {
            let dir = std::path::absolute(args.data_dir.join("dicom").join(&name))
                .with_context(|| format!("DicomService '{name}': its directory"))?;
            config.storage.url = Some(format!("file://{}", dir.display()));
        }
        let ws_name = &svc.spec.workspace_ref.name;
        if config.auth.workspace_issuer.is_none() {
            config.auth.workspace_issuer = Some(workspace_identity::issuer_url(ws_name, ws, &base));
        }
        audiences
            .entry(ws_name.clone())
            .or_default()
            .push(service_url.clone());
        let (routes, index) = hds_dicom_server::service(config, &prefix).await?;
        app = app.nest(&prefix, routes);
        if let Some(sync) = svc.spec.fhir_sync.as_ref().filter(|f| f.enabled) {
            syncs.push((
                name.clone(),
                ws_name.clone(),
                service_url.clone(),
                sync.clone(),
                index.clone(),
            ));
        }
        dbs.dicom.push(index);
        println!("DicomService {name}: {service_url}");
        endpoints.push(json!({
            "kind": "DicomService",
            "name": name,
            "namespace": svc.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            "workspace": svc.spec.workspace_ref.name,
            "url": service_url,
        }));
    }
    // MedTech services start after the issuers (they need their credentials), but are audiences
    // of them all the same.
    for svc in &medtech_services {
        audiences
            .entry(svc.spec.workspace_ref.name.clone())
            .or_default()
            .push(format!(
                "{base}/medtech/{}",
                svc.metadata.name.as_deref().unwrap_or_default()
            ));
    }
    let mut issuers = Vec::new();
    for (ws_name, auds) in audiences {
        let issuer = workspace_identity::build(
            &ws_name,
            workspaces.get(&ws_name),
            &base,
            &args.data_dir,
            &secrets,
            auds,
            &service_identities,
        )?;
        app = app.nest(
            &workspace_identity::mount_path(&ws_name),
            hds_auth::issuer::router(issuer.issuer.clone()),
        );
        issuer.print();
        if !issuer.service_credentials.is_empty() {
            tracing::info!(workspace = %ws_name, clients = ?issuer.service_credentials.keys().collect::<Vec<_>>(), "service identities registered with the Workspace issuer");
        }
        issuers.push(issuer);
    }
    for (name, ws_name, dicom_url, sync, index) in syncs {
        let fhir = &sync.fhir_service_ref.name;
        if !fhir_services
            .iter()
            .any(|f| f.metadata.name.as_deref() == Some(fhir.as_str()))
        {
            bail!(
                "DicomService '{name}': fhirSync names FhirService '{fhir}', which is not among the files"
            );
        }
        let config = hds_common::config::FhirSyncConfig {
            fhir: service_client(
                &issuers,
                &ws_name,
                format!("dicom-fhir-sync-{name}"),
                format!("{base}/fhir/{fhir}"),
            ),
            patient_identifier_system: sync.patient_identifier_system.clone(),
        };
        hds_dicom_cast::spawn(index, &config, &name, &dicom_url)
            .with_context(|| format!("DicomService '{name}': fhirSync"))?;
    }
    let broker = if medtech_services
        .iter()
        .any(|m| uses_embedded_broker(&m.spec.ingestion.mqtt.broker_url))
    {
        let b = crate::mqtt_broker::start(args.mqtt_listen)?;
        println!(
            "MQTT broker (embedded): mqtt://{} (MQTT 3.1.1), mqtt://{} (MQTT 5)",
            b.v4, b.v5
        );
        Some(b)
    } else {
        None
    };
    let mut seen = std::collections::BTreeSet::new();
    for svc in &medtech_services {
        let name = svc
            .metadata
            .name
            .clone()
            .context("a MedTechService has no metadata.name")?;
        if !seen.insert(name.clone()) {
            bail!("two MedTechServices are named '{name}'; names must be unique");
        }
        let fhir = &svc.spec.fhir_destination.fhir_service_ref.name;
        if !fhir_services
            .iter()
            .any(|f| f.metadata.name.as_deref() == Some(fhir.as_str()))
        {
            bail!(
                "MedTechService '{name}': fhirServiceRef names FhirService '{fhir}', which is not among the files"
            );
        }
        let ws_name = &svc.spec.workspace_ref.name;
        let ws = workspaces.get(ws_name);
        let client = service_client(
            &issuers,
            ws_name,
            format!("medtech-{name}"),
            format!("{base}/fhir/{fhir}"),
        );
        let mut config = medtech_service_config(svc, ws, client)?;
        let prefix = format!("/medtech/{name}");
        let service_url = format!("{base}{prefix}");
        config.base_url = Some(service_url.clone());
        if config.auth.workspace_issuer.is_none() {
            config.auth.workspace_issuer = Some(workspace_identity::issuer_url(ws_name, ws, &base));
        }
        if let Some(b) = broker
            .as_ref()
            .filter(|_| uses_embedded_broker(&config.mqtt.broker_url))
        {
            config.mqtt.broker_url = b.v5_url();
        } else {
            broker_secrets(
                &mut config.mqtt,
                &svc.spec.ingestion.mqtt,
                &secrets,
                &args.data_dir,
                &name,
            )?;
        }
        let running = hds_medtech_server::service(config)
            .await
            .with_context(|| format!("MedTechService '{name}'"))?;
        app = app.nest(&prefix, running.routes);
        dbs.mqtt.push((name.clone(), running.connected));
        println!("MedTechService {name}: {service_url}");
        endpoints.push(json!({
            "kind": "MedTechService",
            "name": name,
            "namespace": svc.metadata.namespace.clone().unwrap_or_else(|| "default".into()),
            "workspace": ws_name,
            "url": service_url,
            "mqtt": broker.as_ref().map(|b| format!("mqtt://{}", b.v4)),
        }));
    }
    app = app.merge(hds_common::health::router(serve::probe(dbs)));

    let listener_ready = {
        tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?
    };
    if let Some(file) = &args.endpoints_file {
        // The first Workspace's token URL and clients also sit at the top, for the common case
        // of one Workspace. The file holds client secrets, so only its owner may read it.
        let first = issuers.first().map(|i| i.endpoints_entry());
        let doc = json!({
            "services": endpoints,
            "tokenUrl": first.as_ref().map(|f| f["tokenUrl"].clone()),
            "clients": first.as_ref().map(|f| f["clients"].clone()),
            "workspaces": issuers.iter().map(|i| i.endpoints_entry()).collect::<Vec<_>>(),
        });
        workspace_identity::write_private(file, &serde_json::to_vec_pretty(&doc)?)?;
    }
    tracing::info!(listen = %args.listen, "hds up is ready; Ctrl-C stops it");
    let served = axum::serve(serve::no_delay(listener_ready), serve::make_service(app))
        .with_graceful_shutdown(hds_common::shutdown::signal())
        .await;
    tracing::info!("all requests drained");
    if let Some(e) = embedded {
        e.stop();
        std::mem::forget(e);
    }
    served.context("server failed")
}

/// How a service calls a FHIR service in `hds up`: as its Workspace client `client_id`, with
/// the secret the Workspace issuer registered for it.
fn service_client(
    issuers: &[workspace_identity::LocalIssuer],
    workspace: &str,
    client_id: String,
    fhir_url: String,
) -> hds_common::config::FhirClientConfig {
    let issuer = issuers.iter().find(|i| i.workspace == workspace);
    hds_common::config::FhirClientConfig {
        fhir_url,
        token_url: issuer.map(|i| i.issuer.token_endpoint()),
        client_secret: issuer.and_then(|i| i.service_credentials.get(&client_id).cloned()),
        client_id: Some(client_id),
        client_secret_file: None,
    }
}

/// The broker's credentials and CA from the Secrets among the files.
fn broker_secrets(
    config: &mut hds_common::config::MqttConfig,
    spec: &hds_crds::medtech_service::MqttIngestion,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    data_dir: &std::path::Path,
    service: &str,
) -> anyhow::Result<()> {
    let secret = |name: &str, key: &str| -> anyhow::Result<String> {
        secrets
            .get(name)
            .and_then(|s| s.get(key))
            .cloned()
            .with_context(|| format!("MedTechService '{service}': Secret '{name}' with key '{key}' is not among the files"))
    };
    if let Some(c) = &spec.credentials_secret_ref {
        config.username = Some(secret(&c.name, &c.username_key)?);
        config.password = Some(secret(&c.name, &c.password_key)?);
    }
    if let Some(tls) = &spec.tls {
        if tls.insecure_skip_verify {
            bail!(
                "MedTechService '{service}': tls.insecureSkipVerify is not supported; give the broker's CA in tls.caSecretRef"
            );
        }
        if let Some(ca) = &tls.ca_secret_ref {
            let path = data_file(data_dir, &format!("mqtt-ca-{service}.pem"))?;
            std::fs::write(&path, secret(&ca.name, &ca.key)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            config.ca_file = Some(path);
        }
    }
    Ok(())
}

fn data_file(data_dir: &std::path::Path, file: &str) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    Ok(std::path::absolute(data_dir.join(file))?)
}

/// A broker only a cluster can reach (`*.svc`, `*.svc.cluster.local`), or `mqtt://embedded`:
/// on one machine that is the embedded broker, as a PVC is the data directory.
fn uses_embedded_broker(url: &str) -> bool {
    let host = url
        .split_once("://")
        .map_or(url, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    host == "embedded" || host.ends_with(".svc") || host.ends_with(".svc.cluster.local")
}

fn display_addr(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        addr.to_string()
    }
}

/// Reads every `.yaml`/`.yml` file given, or found directly inside a given directory.
fn load(paths: &[PathBuf]) -> anyhow::Result<Vec<Manifest>> {
    let mut files = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut inside: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot read {}", p.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            inside.sort();
            files.extend(inside);
        } else {
            files.push(p.clone());
        }
    }
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
        out.extend(
            hds_crds::parse_manifests(&text).with_context(|| format!("in {}", f.display()))?,
        );
    }
    Ok(out)
}

/// A connection URL for the service's own database (named `service`), from its storage spec, the
/// Secrets among the files, or the default server.
async fn database_url(
    service: &str,
    source: Option<&PostgresStorage>,
    secrets: &BTreeMap<String, BTreeMap<String, String>>,
    default_admin: Option<&str>,
) -> anyhow::Result<String> {
    let secret = |name: &str, key: &str| -> anyhow::Result<String> {
        secrets
            .get(name)
            .and_then(|s| s.get(key))
            .cloned()
            .with_context(|| format!("Secret '{name}' with key '{key}' is not among the files"))
    };
    let admin = match source {
        Some(PostgresStorage { connection_secret_ref: Some(r), .. }) => return secret(&r.name, &r.key),
        Some(PostgresStorage { admin_secret_ref: Some(r), .. }) => secret(&r.name, &r.key)?,
        Some(PostgresStorage { cnpg: Some(_), .. }) => {
            bail!("CloudNativePG storage needs the operator in a cluster; hds up cannot provide it")
        }
        _ => default_admin
            .context("no database: give the service storage.postgres, or let hds up start its embedded one")?
            .to_owned(),
    };
    let db = service;
    hds_common::db::ensure_database(&admin, db).await?;
    with_database(&admin, db)
}

/// `hds_<kind>_<name>`, with anything but [a-z0-9_] replaced.
fn database_name(kind: &str, service: &str) -> String {
    let clean: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("hds_{kind}_{clean}")
}

/// The same server URL pointing at another database.
fn with_database(admin: &str, db: &str) -> anyhow::Result<String> {
    if admin.starts_with("postgres://") || admin.starts_with("postgresql://") {
        let (head, query) = admin
            .split_once('?')
            .map_or((admin, None), |(h, q)| (h, Some(q)));
        let scheme_end = head.find("://").map_or(0, |i| i + 3);
        let path_start = head[scheme_end..].find('/').map(|i| i + scheme_end);
        let server = path_start.map_or(head, |i| &head[..i]);
        let mut url = format!("{server}/{db}");
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        Ok(url)
    } else {
        // key=value form: a later dbname wins.
        Ok(format!("{admin} dbname={db}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn database_urls_keep_the_server_and_replace_the_database() {
        assert_eq!(
            with_database("postgres://u@h:5/postgres", "d").unwrap(),
            "postgres://u@h:5/d"
        );
        assert_eq!(
            with_database("postgresql://u@h", "d").unwrap(),
            "postgresql://u@h/d"
        );
        assert_eq!(
            with_database("postgres://h/x?sslmode=disable", "d").unwrap(),
            "postgres://h/d?sslmode=disable"
        );
        assert_eq!(
            with_database("host=h user=u", "d").unwrap(),
            "host=h user=u dbname=d"
        );
        assert_eq!(database_name("fhir", "My-Fhir"), "hds_fhir_my_fhir");
    }

    #[test]
    fn cluster_brokers_become_the_embedded_one() {
        assert!(uses_embedded_broker("mqtt://mosquitto.default.svc:1883"));
        assert!(uses_embedded_broker("mqtts://b.ns.svc.cluster.local"));
        assert!(uses_embedded_broker("mqtt://embedded"));
        assert!(!uses_embedded_broker("mqtt://127.0.0.1:1883"));
        assert!(!uses_embedded_broker("mqtts://broker.example.org:8883"));
    }

    #[test]
    fn examples_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
        let m = load(&[dir]).unwrap();
        assert!(m.iter().any(|m| m.kind() == "FhirService"));
    }
}
