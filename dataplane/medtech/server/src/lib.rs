//! The MedTech service: device messages arrive over MQTT (or `POST /ingest`), Azure's device
//! mapping normalizes them ([`hds_medtech_normalize`]), Azure's FHIR destination mapping turns
//! them into Observations ([`hds_medtech_fhir`]), and they are written to the FHIR service with
//! the service's own Workspace identity. See [`pipeline`] for the path and its guarantees.

mod debugger;
mod envelope;
mod errors;
mod fhir;
mod http;
mod identity;
pub mod metrics;
mod mqtt;
pub mod pipeline;
mod writer;

#[cfg(test)]
mod tests;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use hds_common::config::MedTechServiceConfig;
use hds_common::fhir_client::FhirClient;
use hds_crds::medtech_service::{ErrorPolicy as SpecPolicy, ObservationIdScheme};
use hds_medtech_fhir::{FhirMapping, IdScheme};
use hds_medtech_normalize::{DeviceMapping, ErrorPolicy, TemplateError};
use tokio::sync::mpsc;

pub use debugger::debug;

/// The system of the coding (code = typeName) every Observation carries besides the template's.
pub const SERVICE_SYSTEM: &str = "https://hds.dev/medtech";

fn template_errors(which: &str, errors: Vec<TemplateError>) -> anyhow::Error {
    let lines: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
    anyhow::anyhow!("the {which} is not usable:\n{}", lines.join("\n"))
}

pub fn id_scheme(config: &MedTechServiceConfig) -> IdScheme {
    match config.observation_id_scheme {
        ObservationIdScheme::Azure => IdScheme::Azure,
        ObservationIdScheme::Hds => IdScheme::Hds {
            service: config.name.clone(),
        },
    }
}

/// A started service: its routes (`/ingest`, `/$validate-mapping`; the caller mounts them and
/// adds health and metrics), and whether it is subscribed to its broker, for the readiness
/// probe.
pub struct Running {
    pub routes: Router,
    pub connected: Arc<AtomicBool>,
}

/// Checks both templates, connects to the broker, and starts the pipeline.
pub async fn service(config: MedTechServiceConfig) -> anyhow::Result<Running> {
    let name = config.name.clone();
    let device_mapping = DeviceMapping::parse(&config.device_mapping)
        .map_err(|e| template_errors("device mapping", e))?;
    let fhir_mapping =
        FhirMapping::parse(&config.fhir_mapping).map_err(|e| template_errors("FHIR mapping", e))?;
    for t in device_mapping.type_names() {
        if fhir_mapping.template(t).is_none() {
            tracing::warn!(service = %name, type_name = t, "the device mapping makes '{t}' measurements, and no FHIR mapping template has that typeName: each will be a TemplateNotFound error");
        }
    }
    let client = FhirClient::new(&config.fhir).context("the FHIR destination")?;
    let tokens = hds_common::auth::token_validator(&name, &config.auth, config.base_url.as_deref());
    if tokens.is_none() {
        tracing::warn!(service = %name, "AUTHENTICATION IS OFF (auth.mode: None): anyone who can reach this MedTech service's HTTP endpoints may post device data into FHIR");
    }
    let receive_maximum = config.buffering.max_messages.clamp(1, 65_535) as u16;
    let (mqtt_client, eventloop) = mqtt::connect(&config.mqtt, &name, receive_maximum)?;
    let errors = errors::ErrorSink::new(
        &name,
        config
            .mqtt
            .error_topic
            .clone()
            .map(|t| (mqtt_client.clone(), t)),
    );
    let resolver = identity::Resolver::new(
        config.resolution,
        Duration::from_secs(config.buffering.identity_cache_ttl_seconds),
    );
    let fhir_mapping = Arc::new(fhir_mapping);
    let writer = writer::Writer::new(
        fhir::Fhir::new(client),
        resolver,
        fhir_mapping.clone(),
        id_scheme(&config),
        &name,
    );
    let pipeline = pipeline::Pipeline {
        service: name.clone(),
        device_mapping: Arc::new(device_mapping),
        fhir_mapping,
        policy: match config.error_policy {
            SpecPolicy::Retry => ErrorPolicy::Retry,
            SpecPolicy::DiscardMatchAndExtractErrors => ErrorPolicy::DiscardMatchAndExtractErrors,
        },
        writer: Arc::new(writer),
        errors,
        acker: Some(mqtt_client.clone()),
        buffering: config.buffering.clone(),
    };
    // Unbounded on purpose: the broker never has more than `receive_maximum` QoS 1/2 messages
    // unacknowledged with us, and the MQTT loop must never wait on the pipeline, or the acks and
    // error records the pipeline sends through that loop could never leave.
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(pipeline.run(rx));
    let connected = Arc::new(AtomicBool::new(false));
    tokio::spawn(mqtt::run(
        mqtt_client,
        eventloop,
        config.mqtt.clone(),
        name.clone(),
        tx.clone(),
        connected.clone(),
    ));
    tracing::info!(service = %name, broker = %config.mqtt.broker_url, filter = %mqtt::filter(&config.mqtt), fhir = %config.fhir.fhir_url, "MedTech service started");
    let routes = http::router(http::HttpState {
        tokens: tokens.map(Arc::new),
        ingest: config.http_ingestion.then_some(tx),
        device_mapping: Arc::new(config.device_mapping.clone()),
        fhir_mapping: Arc::new(config.fhir_mapping.clone()),
        scheme: id_scheme(&config),
    });
    Ok(Running { routes, connected })
}
