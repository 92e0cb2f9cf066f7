//! The one path every device message takes, whatever carried it: envelope → normalize →
//! buffer by Observation → flush → acknowledge. A message is acknowledged (MQTT PUBACK, or the
//! HTTP answer) only after every Observation it feeds is written or its errors are recorded,
//! so a crash at any point means redelivery, and deterministic ids make redelivery harmless.
//!
//! One batch is written at a time while the next one fills (group commit): a batch is written
//! as soon as the previous write has finished and its first message has waited
//! `batchDelayMs` (50 ms), or `maxMessages` wait. So at a low rate a message is in FHIR about
//! 50 ms plus one write after it arrived, and under load batches grow to what the writes can
//! take, which merges more points per Observation write. `flushIntervalMs` (1 s) bounds the
//! delay (it only matters when set below `batchDelayMs`).

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
use crate::writer::{PendingWrite, Prepared, Saved, Writer};

/// Observations per transaction Bundle (the FHIR service takes up to 500).
const TRANSACTION_ENTRIES: usize = 50;
/// Transactions of one batch in flight at once.
const TRANSACTIONS_AT_ONCE: usize = 8;

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
        let this = Arc::new(self);
        let mut batch = Batch::default();
        let delay = Duration::from_millis(
            this.buffering
                .batch_delay_ms
                .min(this.buffering.flush_interval_ms)
                .max(1),
        );
        let mut writing: Option<tokio::task::JoinHandle<()>> = None;
        let mut open = true;
        loop {
            let due = batch.first.map(|f| f + delay);
            let full = batch.waiting.len() >= this.buffering.max_messages;
            if writing.is_none() && !batch.waiting.is_empty() && (full || !open) {
                writing = Some(tokio::spawn(this.clone().flush(std::mem::take(&mut batch))));
                continue;
            }
            if !open && writing.is_none() {
                return;
            }
            tokio::select! {
                d = rx.recv(), if open && !full => match d {
                    Some(d) => this.accept(&mut batch, d).await,
                    None => open = false,
                },
                done = async { writing.as_mut().unwrap().await }, if writing.is_some() => {
                    writing = None;
                    if let Err(e) = done {
                        tracing::error!(service = %this.service, "a batch write failed: {e}");
                    }
                }
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now).into()),
                    if writing.is_none() && due.is_some() => {
                    writing = Some(tokio::spawn(this.clone().flush(std::mem::take(&mut batch))));
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

    async fn flush(self: Arc<Self>, batch: Batch) {
        let Batch {
            groups, waiting, ..
        } = batch;
        if waiting.is_empty() {
            return;
        }
        let this = &*self;
        metrics::counter!(m::MEASUREMENT_GROUP, "service" => self.label())
            .increment(groups.len() as u64);
        metrics::histogram!(m::MEASUREMENT_BATCH_SIZE, "service" => self.label())
            .record(waiting.len() as f64);
        let results = this.write_groups(groups).await;
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

    /// Every group of a batch: prepared (subjects resolved, merged into our last write) a few
    /// at a time, then sent as transactions of up to [`TRANSACTION_ENTRIES`] Observations, so
    /// that a batch costs a few commits rather than one per Observation. A transaction that
    /// fails (someone else wrote one of its Observations, or one is refused) is redone one
    /// group at a time, which finds out which and merges again.
    async fn write_groups(
        &self,
        groups: HashMap<GroupKey, Vec<Measurement>>,
    ) -> HashMap<GroupKey, Result<ObservationOutcome, MedTechError>> {
        let concurrency = self.buffering.write_concurrency.max(1);
        let prepared: Vec<_> = futures::stream::iter(groups)
            .map(|(key, ms)| async move {
                let p = self.writer.prepare(&key, &ms).await;
                (key, ms, p)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        let mut results = HashMap::new();
        let mut pending = Vec::new();
        let mut alone = Vec::new();
        for (key, ms, p) in prepared {
            match p {
                Ok(Prepared::Done(id, saved)) => {
                    results.insert(key, Ok(ObservationOutcome { id, saved }));
                }
                Ok(Prepared::Write(w)) => pending.push((key, ms, w)),
                Err(WriteError::Failed(e)) => {
                    results.insert(key.clone(), Err(e.in_template(&key.type_name)));
                }
                Err(WriteError::Transient(_)) => alone.push((key, ms)),
            }
        }
        let chunks: Vec<Vec<_>> = {
            let mut chunks = Vec::new();
            let mut it = pending.into_iter().peekable();
            while it.peek().is_some() {
                chunks.push(it.by_ref().take(TRANSACTION_ENTRIES).collect());
            }
            chunks
        };
        let committed: Vec<_> = futures::stream::iter(chunks)
            .map(
                |chunk: Vec<(GroupKey, Vec<Measurement>, PendingWrite)>| async move {
                    let writes: Vec<&PendingWrite> = chunk.iter().map(|(_, _, w)| w).collect();
                    let ok = matches!(self.writer.commit(&writes).await, Ok(true));
                    (chunk, ok)
                },
            )
            .buffer_unordered(TRANSACTIONS_AT_ONCE)
            .collect()
            .await;
        for (chunk, ok) in committed {
            for (key, ms, w) in chunk {
                if ok {
                    results.insert(
                        key,
                        Ok(ObservationOutcome {
                            id: w.id,
                            saved: w.saved,
                        }),
                    );
                } else {
                    alone.push((key, ms));
                }
            }
        }
        let one_by_one: Vec<_> = futures::stream::iter(alone)
            .map(|(key, ms)| async move {
                let r = self.write_until_durable(&key, &ms).await;
                (key, r)
            })
            .buffer_unordered(concurrency)
            .collect()
            .await;
        results.extend(one_by_one);
        results
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
