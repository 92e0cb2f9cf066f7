//! Where a message's errors go: the log, the `Errors{type,name}` metric, and (when configured)
//! an MQTT error topic as one JSON record each. Recording an error is what makes a bad
//! message's outcome durable, so it is acknowledged and the stream goes on.

use chrono::{SecondsFormat, Utc};
use hds_medtech_normalize::MedTechError;
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::QoS;
use serde_json::{Value, json};

use crate::metrics as m;

#[derive(Clone)]
pub struct ErrorSink {
    service: String,
    topic: Option<(AsyncClient, String)>,
}

impl ErrorSink {
    pub fn new(service: &str, topic: Option<(AsyncClient, String)>) -> Self {
        Self {
            service: service.to_owned(),
            topic,
        }
    }

    /// `source` is the message's topic; `message` its envelope, when there is one.
    pub async fn record(&self, e: &MedTechError, source: &str, message: Option<&Value>) {
        metrics::counter!(m::ERRORS,
            "service" => self.service.clone(),
            "type" => e.error_type.as_str(),
            "name" => e.name.clone())
        .increment(1);
        tracing::warn!(
            service = %self.service,
            error_type = e.error_type.as_str(),
            error_name = %e.name,
            template = e.template.as_deref().unwrap_or(""),
            source,
            "{}",
            e.message
        );
        if let Some((client, topic)) = &self.topic {
            let record = json!({
                "service": self.service,
                "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
                "type": e.error_type.as_str(),
                "name": e.name,
                "message": e.message,
                "template": e.template,
                "source": source,
                "deviceMessage": message.map(|m| &m["Body"]),
            });
            if let Err(err) = client
                .publish(topic.clone(), QoS::AtLeastOnce, false, record.to_string())
                .await
            {
                tracing::error!(service = %self.service, "cannot publish to the error topic '{topic}': {err}");
            }
        }
    }
}
