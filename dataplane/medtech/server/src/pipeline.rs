//! The one path every device message takes, whatever carried it: envelope → normalize →
//! buffer by Observation → flush → acknowledge. A message is acknowledged (MQTT PUBACK, or the
//! HTTP answer) only after every Observation it feeds is written or its errors are recorded,
//! so a crash at any point means redelivery, and deterministic ids make redelivery harmless.
//!
//! A flush happens when the oldest waiting message is `flushIntervalMs` old, when `maxMessages`
//! wait, or when nothing has arrived for `idleFlushMs` (a broker that limits unacknowledged
//! messages in flight stops sending until we flush, so waiting longer would only add latency).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use hds_common::config::BufferingConfig;
use hds_medtech_fhir::{FhirMapping, GroupKey, group_key};
use hds_medtech_normalize::{DeviceMapping, ErrorPolicy, Measurement, MedTechError};
use rumqttc::v5::AsyncClient;
use rumqttc::v5::mqttbytes::v5::Publish;
use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

use crate::errors::ErrorSink;
use crate::fhir::WriteError;
use crate::metrics as m;
use crate::writer::{Saved, Writer};

/// One device message on its way in.
pub struct Delivery {
    pub envelope: Result<Value, MedTechError>,
    pub source: String,
    pub size: usize,
    pub enqueued: DateTime<Utc>,
    pub done: Done,
}

/// Who hears of the outcome.
pub enum Done {
    Mqtt(Box<Publish>),
    Http(oneshot::Sender<Outcome>),
}

/// What became of one message (the HTTP ingestion endpoint's answer).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub measurements: usize,
    pub observations: Vec<ObservationOutcome>,
    pub errors: Vec<MedTechError>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservationOutcome {
    pub id: String,
    pub saved: Saved,
}

pub struct Pipeline {
    pub service: String,
    pub device_mapping: Arc<DeviceMapping>,
    pub fhir_mapping: Arc<FhirMapping>,
    pub policy: ErrorPolicy,
    pub writer: Arc<Writer>,
    pub errors: ErrorSink,
    pub acker: Option<AsyncClient>,
    pub buffering: BufferingConfig,
}

struct Waiting {
    done: Done,
    /// Only kept for HTTP callers, who are told which Observations their message fed.
    keys: Vec<GroupKey>,
    outcome: Outcome,
    enqueued: DateTime<Utc>,
}

#[derive(Default)]
struct Batch {
    groups: HashMap<GroupKey, Vec<Measurement>>,
    waiting: Vec<Waiting>,
    first: Option<Instant>,
}

impl Pipeline {
    pub async fn run(self, mut rx: mpsc::UnboundedReceiver<Delivery>) {
        let mut batch = Batch::default();
        let interval = Duration::from_millis(self.buffering.flush_interval_ms.max(1));
        let idle = Duration::from_millis(self.buffering.idle_flush_ms.max(1));
        let mut last = Instant::now();
        loop {
            let deadline = batch
                .first
                .map(|f| (f + interval).min(last + idle))
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                d = rx.recv() => match d {
                    Some(d) => {
                        last = Instant::now();
                        self.accept(&mut batch, d).await;
                        if batch.waiting.len() >= self.buffering.max_messages {
                            self.flush(&mut batch).await;
                        }
                    }
                    None => {
                        self.flush(&mut batch).await;
                        return;
                    }
                },
                _ = tokio::time::sleep_until(deadline.into()), if !batch.waiting.is_empty() => {
                    self.flush(&mut batch).await;
                }
            }
        }
    }

    fn label(&self) -> String {
        self.service.clone()
    }

    async fn accept(&self, batch: &mut Batch, d: Delivery) {
        metrics::counter!(m::DEVICE_EVENT, "service" => self.label()).increment(1);
        metrics::histogram!(m::DEVICE_INGRESS_SIZE_BYTES, "service" => self.label())
            .record(d.size as f64);
        let mut waiting = Waiting {
            done: d.done,
            keys: Vec::new(),
            outcome: Outcome::default(),
            enqueued: d.enqueued,
        };
        let envelope = match d.envelope {
            Ok(e) => e,
            Err(e) => {
                self.errors.record(&e, &d.source, None).await;
                metrics::counter!(m::DROPPED_EVENT, "service" => self.label()).increment(1);
                waiting.outcome.errors.push(e);
                return self.complete(waiting).await;
            }
        };
        let normalized = self.device_mapping.normalize(&envelope, self.policy);
        let elapsed = (Utc::now() - d.enqueued).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        metrics::histogram!(m::DEVICE_EVENT_PROCESSING_LATENCY_MS, "service" => self.label())
            .record(elapsed);
        for e in &normalized.errors {
            self.errors.record(e, &d.source, Some(&envelope)).await;
        }
        waiting.outcome.errors = normalized.errors;
        if normalized.measurements.is_empty() {
            metrics::counter!(m::DROPPED_EVENT, "service" => self.label()).increment(1);
            return self.complete(waiting).await;
        }
        metrics::counter!(m::NORMALIZED_EVENT, "service" => self.label()).increment(1);
        metrics::counter!(m::MEASUREMENT, "service" => self.label())
            .increment(normalized.measurements.len() as u64);
        let http = matches!(waiting.done, Done::Http(_));
        for measurement in normalized.measurements {
            let checked = self
                .writer
                .resolver
                .check(
                    measurement.patient_id.as_deref(),
                    measurement.encounter_id.as_deref(),
                )
                .map_err(|e| e.in_template(&measurement.type_name))
                .and_then(|()| group_key(&self.fhir_mapping, &measurement));
            match checked {
                Ok(key) => {
                    waiting.outcome.measurements += 1;
                    if http {
                        waiting.keys.push(key.clone());
                    }
                    batch.groups.entry(key).or_default().push(measurement);
                }
                Err(e) => {
                    self.errors.record(&e, &d.source, Some(&envelope)).await;
                    waiting.outcome.errors.push(e);
                }
            }
        }
        if batch.first.is_none() {
            batch.first = Some(Instant::now());
        }
        batch.waiting.push(waiting);
    }

    async fn flush(&self, batch: &mut Batch) {
        let groups = std::mem::take(&mut batch.groups);
        let waiting = std::mem::take(&mut batch.waiting);
        batch.first = None;
        if waiting.is_empty() {
            return;
        }
        metrics::counter!(m::MEASUREMENT_GROUP, "service" => self.label())
            .increment(groups.len() as u64);
        metrics::histogram!(m::MEASUREMENT_BATCH_SIZE, "service" => self.label())
            .record(waiting.len() as f64);
        let concurrency = self.buffering.write_concurrency.max(1);
        let results: HashMap<GroupKey, Result<ObservationOutcome, MedTechError>> =
            futures::stream::iter(groups)
                .map(|(key, ms)| async move {
                    let r = self.write_until_durable(&key, &ms).await;
                    (key, r)
                })
                .buffer_unordered(concurrency)
                .collect()
                .await;
        for (key, r) in &results {
            match r {
                Ok(o) => metrics::counter!(m::FHIR_RESOURCE_SAVED,
                    "service" => self.label(),
                    "resource" => "Observation",
                    "outcome" => o.saved.as_str())
                .increment(1),
                Err(e) => {
                    let source = format!("device '{}', type '{}'", key.device_id, key.type_name);
                    self.errors.record(e, &source, None).await;
                }
            }
        }
        for mut w in waiting {
            for key in std::mem::take(&mut w.keys) {
                match results.get(&key) {
                    Some(Ok(o)) if !w.outcome.observations.iter().any(|x| x.id == o.id) => {
                        w.outcome.observations.push(o.clone())
                    }
                    Some(Err(e)) if !w.outcome.errors.contains(e) => {
                        w.outcome.errors.push(e.clone())
                    }
                    _ => {}
                }
            }
            self.complete(w).await;
        }
    }

    /// Retries what is transient for as long as it takes: the messages stay unacknowledged
    /// meanwhile, and the broker holds the rest of the stream back.
    async fn write_until_durable(
        &self,
        key: &GroupKey,
        ms: &[Measurement],
    ) -> Result<ObservationOutcome, MedTechError> {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.writer.write(key, ms).await {
                Ok((id, saved)) => return Ok(ObservationOutcome { id, saved }),
                Err(WriteError::Failed(e)) => return Err(e.in_template(&key.type_name)),
                Err(WriteError::Transient(why)) => {
                    metrics::counter!(m::FHIR_RETRY, "service" => self.label()).increment(1);
                    tracing::warn!(service = %self.service, "writing to FHIR failed, retrying in {backoff:?}: {why}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }

    async fn complete(&self, w: Waiting) {
        let latency = (Utc::now() - w.enqueued).num_microseconds().unwrap_or(0) as f64 / 1000.0;
        metrics::histogram!(m::MEASUREMENT_INGESTION_LATENCY_MS, "service" => self.label())
            .record(latency);
        metrics::counter!(m::COMPLETED_EVENT, "service" => self.label()).increment(1);
        match w.done {
            Done::Mqtt(publish) => {
                if let Some(client) = &self.acker
                    && let Err(e) = client.ack(&publish).await
                {
                    tracing::warn!(service = %self.service, "cannot acknowledge a message (it will be redelivered): {e}");
                }
            }
            Done::Http(tx) => {
                let _ = tx.send(w.outcome);
            }
        }
    }
}
