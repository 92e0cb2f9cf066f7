//! Azure's MedTech metric names, as Prometheus series (each labelled with the service name).

pub const DEVICE_EVENT: &str = "DeviceEvent";
pub const NORMALIZED_EVENT: &str = "NormalizedEvent";
pub const DROPPED_EVENT: &str = "DroppedEvent";
pub const MEASUREMENT: &str = "Measurement";
pub const MEASUREMENT_GROUP: &str = "MeasurementGroup";
pub const MEASUREMENT_BATCH_SIZE: &str = "MeasurementBatchSize";
pub const DEVICE_EVENT_PROCESSING_LATENCY_MS: &str = "DeviceEventProcessingLatencyMs";
pub const MEASUREMENT_INGESTION_LATENCY_MS: &str = "MeasurementIngestionLatencyMs";
pub const DEVICE_INGRESS_SIZE_BYTES: &str = "DeviceIngressSizeBytes";
pub const FHIR_RESOURCE_SAVED: &str = "FhirResourceSaved";
pub const FHIR_RESOURCE_CONTENTION: &str = "FHIRResourceContention";
/// Errors by Azure's type and name.
pub const ERRORS: &str = "Errors";
/// Ours: messages whose outcome is durable (acknowledged to the broker or answered over HTTP).
pub const COMPLETED_EVENT: &str = "CompletedEvent";
/// Ours: FHIR calls that failed transiently and were retried.
pub const FHIR_RETRY: &str = "FhirRetry";
