//! How an MQTT message becomes Azure's event envelope, so templates written for Event Hubs and
//! IoT Hub (IotJsonPathContent) work unchanged. The mapping is documented in docs/medtech.md.

use chrono::{DateTime, SecondsFormat, Utc};
use hds_medtech_normalize::{ErrorType, MedTechError};
use serde_json::{Map, Value};

/// What a transport knows about one message besides its payload.
pub struct MessageMeta<'a> {
    /// The MQTT topic, or `http` for `POST /ingest`.
    pub topic: &'a str,
    /// MQTT 5 user properties (or HTTP `x-ms-property-*`-style headers); later ones win.
    pub user_properties: &'a [(String, String)],
    pub content_type: Option<&'a str>,
    pub enqueued: DateTime<Utc>,
}

/// `{"Body": <payload>, "Properties": {...}, "SystemProperties": {...}}`. A payload that is not
/// JSON is a DeviceMessageError, recorded and never retried.
pub fn wrap(payload: &[u8], meta: &MessageMeta) -> Result<Value, MedTechError> {
    let body: Value = serde_json::from_slice(payload).map_err(|e| {
        MedTechError::new(
            ErrorType::DeviceMessageError,
            "InvalidDeviceMessage",
            format!("the message is not JSON: {e}"),
        )
    })?;
    let mut properties = Map::new();
    for (k, v) in meta.user_properties {
        properties.insert(k.clone(), Value::String(v.clone()));
    }
    let enqueued = meta.enqueued.to_rfc3339_opts(SecondsFormat::Millis, true);
    let mut system = Map::new();
    system.insert(
        "iothub-enqueuedtime".into(),
        Value::String(enqueued.clone()),
    );
    system.insert("x-opt-enqueued-time".into(), Value::String(enqueued));
    system.insert("mqtt-topic".into(), Value::String(meta.topic.to_owned()));
    if let Some(device) = device_of_topic(meta.topic) {
        system.insert(
            "iothub-connection-device-id".into(),
            Value::String(device.to_owned()),
        );
    }
    if let Some(ct) = meta.content_type {
        system.insert("content-type".into(), Value::String(ct.to_owned()));
    }
    Ok(hds_medtech_normalize::envelope(body, properties, system))
}

/// IoT Hub's own topic scheme, `devices/{deviceId}/messages/events/...`, and the common
/// `devices/{deviceId}/...`: the segment after `devices/` names the device.
fn device_of_topic(topic: &str) -> Option<&str> {
    let rest = topic.strip_prefix("devices/")?;
    let device = rest.split('/').next()?;
    (!device.is_empty()).then_some(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_and_user_properties_land_where_iot_templates_look() {
        let props = vec![(
            "iothub-creation-time-utc".to_owned(),
            "2024-01-01T10:00:00Z".to_owned(),
        )];
        let meta = MessageMeta {
            topic: "devices/dev-7/messages/events",
            user_properties: &props,
            content_type: Some("application/json"),
            enqueued: "2024-01-01T10:00:01Z".parse().unwrap(),
        };
        let e = wrap(br#"{"heartRate": 70}"#, &meta).unwrap();
        assert_eq!(e["Body"]["heartRate"], 70);
        assert_eq!(
            e["Properties"]["iothub-creation-time-utc"],
            "2024-01-01T10:00:00Z"
        );
        assert_eq!(
            e["SystemProperties"]["iothub-connection-device-id"],
            "dev-7"
        );
        assert_eq!(
            e["SystemProperties"]["mqtt-topic"],
            "devices/dev-7/messages/events"
        );
        assert_eq!(
            e["SystemProperties"]["iothub-enqueuedtime"],
            "2024-01-01T10:00:01.000Z"
        );
    }

    #[test]
    fn a_payload_that_is_not_json_is_a_device_message_error() {
        let meta = MessageMeta {
            topic: "t",
            user_properties: &[],
            content_type: None,
            enqueued: Utc::now(),
        };
        let e = wrap(b"{not json", &meta).unwrap_err();
        assert_eq!(e.error_type, ErrorType::DeviceMessageError);
        assert_eq!(e.name, "InvalidDeviceMessage");
    }
}
