//! The embedded MQTT broker of `hds up` (rumqttd, in memory): MQTT 3.1.1 on the listen address,
//! which is what most devices and `mosquitto_pub` speak, and MQTT 5 on the next port, which the
//! MedTech services use (user properties, session expiry). rumqttd keeps sessions in memory
//! only: messages survive a MedTech restart inside `hds up`, not a restart of `hds up`; for that,
//! point `brokerUrl` at a broker that persists (Mosquitto with `persistence true`).

use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::Context;
use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

pub struct EmbeddedBroker {
    /// Where devices publish (MQTT 3.1.1).
    pub v4: SocketAddr,
    /// Where the MedTech services subscribe (MQTT 5).
    pub v5: SocketAddr,
}

impl EmbeddedBroker {
    pub fn v5_url(&self) -> String {
        format!("mqtt://{}", self.v5)
    }
}

fn server(name: &str, listen: SocketAddr) -> ServerSettings {
    ServerSettings {
        name: name.into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: 1024 * 1024,
            // The MedTech pipeline holds messages unacknowledged until they are written: a
            // small window would stall it between flushes.
            max_inflight_count: 20_000,
            auth: None,
            external_auth: None,
            dynamic_filters: true,
        },
    }
}

/// Binds both ports first (so a taken port is a clear error), then starts the broker threads.
pub fn start(listen: SocketAddr) -> anyhow::Result<EmbeddedBroker> {
    let v5 = SocketAddr::new(listen.ip(), listen.port().wrapping_add(1));
    for addr in [listen, v5] {
        std::net::TcpListener::bind(addr).with_context(|| {
            format!("the embedded MQTT broker cannot listen on {addr} (another broker there? pass --mqtt-listen)")
        })?;
    }
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: 10_010,
            max_outgoing_packet_count: 20_000,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server("v4", listen))])),
        v5: Some(HashMap::from([("1".to_owned(), server("v5", v5))])),
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = Broker::new(config);
            if let Err(e) = broker.start() {
                tracing::error!("the embedded MQTT broker stopped: {e}");
            }
        })
        .context("cannot start the embedded MQTT broker")?;
    Ok(EmbeddedBroker { v4: listen, v5 })
}
