//! The MQTT side: one persistent session (clean start off, a week's session expiry, so the
//! broker keeps what arrives while the service restarts), a shared subscription when replicas
//! split the stream, and manual acknowledgements: the pipeline acknowledges a message once its
//! outcome is durable.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use hds_common::config::MqttConfig;
use rumqttc::Transport;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::SubscribeReasonCode;
use rumqttc::v5::{AsyncClient, Event, EventLoop, MqttOptions, mqttbytes::v5::Packet};
use tokio::sync::mpsc;

use crate::envelope::{MessageMeta, wrap};
use crate::pipeline::{Delivery, Done};

/// How long the broker keeps our session (and queues for it) while we are away.
const SESSION_EXPIRY_SECONDS: u32 = 7 * 24 * 3600;

pub fn qos(level: u8) -> QoS {
    match level {
        0 => QoS::AtMostOnce,
        2 => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

pub fn connect(
    cfg: &MqttConfig,
    service: &str,
    receive_maximum: u16,
) -> anyhow::Result<(AsyncClient, EventLoop)> {
    let url = url::Url::parse(&cfg.broker_url)
        .with_context(|| format!("brokerUrl '{}' is not a URL", cfg.broker_url))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => cfg.tls,
        "mqtts" | "ssl" => true,
        other => anyhow::bail!("brokerUrl scheme '{other}' is neither mqtt:// nor mqtts://"),
    };
    let host = url
        .host_str()
        .with_context(|| format!("brokerUrl '{}' names no host", cfg.broker_url))?;
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    let client_id = client_id(cfg, service, |name| std::env::var(name).ok())?;
    let mut options = MqttOptions::new(client_id, host, port);
    options
        .set_clean_start(false)
        .set_session_expiry_interval(Some(SESSION_EXPIRY_SECONDS))
        .set_manual_acks(true)
        .set_receive_maximum(Some(receive_maximum))
        .set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(16 * 1024 * 1024))
        .set_request_channel_capacity(usize::from(receive_maximum) + 1024);
    let read = |value: &Option<String>, file: &Option<std::path::PathBuf>, what: &str| {
        anyhow::Ok(match (value, file) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(f)) => Some(
                std::fs::read_to_string(f)
                    .with_context(|| format!("MQTT {what} file {}", f.display()))?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        })
    };
    let password = read(&cfg.password, &cfg.password_file, "password")?;
    if let Some(user) = read(&cfg.username, &cfg.username_file, "username")? {
        options.set_credentials(user, password.unwrap_or_default());
    }
    if tls {
        let transport = match &cfg.ca_file {
            Some(f) => Transport::tls(
                std::fs::read(f).with_context(|| format!("MQTT CA file {}", f.display()))?,
                None,
                None,
            ),
            None => Transport::tls_with_default_config(),
        };
        options.set_transport(transport);
    }
    Ok(AsyncClient::new(
        options,
        usize::from(receive_maximum) + 1024,
    ))
}

/// The subscription, shared among replicas when a group is configured.
pub fn filter(cfg: &MqttConfig) -> String {
    match &cfg.shared_subscription_group {
        Some(g) => format!("$share/{g}/{}", cfg.topic_filter),
        None => cfg.topic_filter.clone(),
    }
}

/// Polls the connection for as long as the pipeline listens: reconnects with backoff (the
/// session, and every unacknowledged message, survives), subscribes on each connection, and
/// hands each publish to the pipeline.
pub async fn run(
    client: AsyncClient,
    mut eventloop: EventLoop,
    cfg: MqttConfig,
    service: String,
    tx: mpsc::UnboundedSender<Delivery>,
    connected: Arc<AtomicBool>,
) {
    let filter = filter(&cfg);
    let mut backoff = Duration::from_millis(200);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = Duration::from_millis(200);
                tracing::info!(service = %service, broker = %cfg.broker_url, session_present = ack.session_present, "connected to the MQTT broker; subscribing to '{filter}'");
                if let Err(e) = client.subscribe(filter.clone(), qos(cfg.qos)).await {
                    tracing::error!(service = %service, "cannot subscribe to '{filter}': {e}");
                }
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let granted = ack
                    .return_codes
                    .iter()
                    .all(|c| matches!(c, SubscribeReasonCode::Success(_)));
                if granted {
                    tracing::info!(service = %service, "subscribed to '{filter}'");
                } else {
                    tracing::error!(service = %service, "the broker refused the subscription to '{filter}': {:?}", ack.return_codes);
                }
                connected.store(granted, Ordering::Relaxed);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let topic = String::from_utf8_lossy(&p.topic).into_owned();
                let (user_properties, content_type) = match &p.properties {
                    Some(props) => (props.user_properties.clone(), props.content_type.clone()),
                    None => (Vec::new(), None),
                };
                let enqueued = Utc::now();
                let envelope = wrap(
                    &p.payload,
                    &MessageMeta {
                        topic: &topic,
                        user_properties: &user_properties,
                        content_type: content_type.as_deref(),
                        enqueued,
                    },
                );
                let delivery = Delivery {
                    envelope,
                    size: p.payload.len(),
                    source: topic,
                    enqueued,
                    done: Done::Mqtt(Box::new(p)),
                };
                if tx.send(delivery).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                connected.store(false, Ordering::Relaxed);
                if tx.is_closed() {
                    return;
                }
                tracing::warn!(service = %service, broker = %cfg.broker_url, "MQTT connection lost, reconnecting in {backoff:?}: {e}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
}

/// The MQTT client id: the configured one (or `hds-medtech-<service>`), with the value of
/// `clientIdSuffixEnv` appended when that is set. A named but unset variable is an error: the
/// replicas would otherwise share one id.
fn client_id(
    cfg: &MqttConfig,
    service: &str,
    env: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<String> {
    let base = cfg
        .client_id
        .clone()
        .unwrap_or_else(|| format!("hds-medtech-{service}"));
    Ok(match &cfg.client_id_suffix_env {
        None => base,
        Some(var) => match env(var).filter(|v| !v.is_empty()) {
            Some(v) => format!("{base}-{v}"),
            None => anyhow::bail!("mqtt.clientIdSuffixEnv names {var}, which is not set"),
        },
    })
}

#[cfg(test)]
mod client_id_tests {
    use super::*;

    fn cfg(suffix: Option<&str>) -> MqttConfig {
        serde_json::from_value(serde_json::json!({
            "brokerUrl": "mqtt://broker:1883",
            "topicFilter": "devices/+/vitals",
            "clientIdSuffixEnv": suffix,
        }))
        .unwrap()
    }

    #[test]
    fn replicas_get_distinct_ids_from_their_pod_names() {
        let env = |v: &str| (v == "POD_NAME").then(|| "vitals-7d9f-abcde".to_owned());
        assert_eq!(
            client_id(&cfg(None), "vitals", env).unwrap(),
            "hds-medtech-vitals"
        );
        assert_eq!(
            client_id(&cfg(Some("POD_NAME")), "vitals", env).unwrap(),
            "hds-medtech-vitals-vitals-7d9f-abcde"
        );
        let err = client_id(&cfg(Some("NOPE")), "vitals", env).unwrap_err();
        assert!(err.to_string().contains("NOPE"), "{err}");
    }
}
