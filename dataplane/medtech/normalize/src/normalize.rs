//! Running parsed templates against one envelope.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::{ErrorType, MedTechError};
use crate::expr::{Doc, EvalError, Expr, Hit, parse_timestamp};
use crate::measurement::{Measurement, MeasurementProperty};
use crate::template::{Kind, Template};
use crate::{ErrorPolicy, Normalized};

const IOT_DEVICE_ID: &str = "/SystemProperties/iothub-connection-device-id";
const IOT_CREATION_TIME: &str = "/Properties/iothub-creation-time-utc";
const IOT_ENQUEUED_TIME: &str = "/SystemProperties/iothub-enqueuedtime";
const IOT_CENTRAL_DEVICE_ID: &str = "/Body/deviceId";
const IOT_CENTRAL_TIME: &str = "/Body/enqueuedTime";

fn message_error(name: &str, message: String) -> MedTechError {
    MedTechError::new(ErrorType::DeviceMessageError, name, message)
}

fn eval_error(error: EvalError, field: &str, expr: &Expr) -> MedTechError {
    match error {
        EvalError::Multiple(n) => message_error(
            "MultipleTokensFound",
            format!(
                "{field} {:?} selected {n} tokens where a single value is expected",
                expr.text()
            ),
        ),
        EvalError::Failed(reason) => message_error(
            "ExpressionEvaluationError",
            format!("{field} {:?} failed: {reason}", expr.text()),
        ),
    }
}

pub(crate) fn normalize(
    templates: &[Template],
    envelope: &Value,
    policy: ErrorPolicy,
) -> Normalized {
    let doc = Doc::new(envelope);
    let mut out = Normalized::default();
    for template in templates {
        let hits = match template.type_match.matches(&doc) {
            Ok(hits) => hits,
            Err(e) => {
                out.errors.push(
                    eval_error(e, "typeMatchExpression", &template.type_match)
                        .in_template(&template.type_name),
                );
                continue;
            }
        };
        out.matches += hits.len();
        for hit in &hits {
            match extract(template, &doc, envelope, hit) {
                Ok(measurement) => out.measurements.push(measurement),
                Err(errors) => out.errors.extend(
                    errors
                        .into_iter()
                        .map(|e| e.in_template(&template.type_name)),
                ),
            }
        }
    }
    if out.matches == 0 && out.errors.is_empty() {
        out.errors.push(MedTechError::new(
            ErrorType::DeviceTemplateError,
            "TemplateNotFound",
            "no device template matched the message",
        ));
    }
    if policy == ErrorPolicy::Retry && !out.errors.is_empty() {
        out.measurements.clear();
    }
    out
}

/// One measurement from one match, or every error found in it.
fn extract<'a>(
    template: &Template,
    envelope_doc: &'a Doc<'a>,
    envelope: &Value,
    hit: &'a Hit<'a>,
) -> Result<Measurement, Vec<MedTechError>> {
    let owned;
    let doc = match (template.kind, hit) {
        (Kind::Calculated, _) => Doc::matched(envelope_doc, hit),
        (_, Hit::Json(value)) => Doc::new(value),
        // Only CalculatedContent allows JMESPath, so other kinds never get here.
        (_, Hit::Var(_)) => {
            owned = hit.to_value();
            Doc::new(&owned)
        }
    };
    let mut errors = Vec::new();
    // Err means the error is already recorded, so "not defined" is not reported as well.
    let mut single = |expr: Option<&Expr>, field: &str| -> Result<Option<Hit<'_>>, ()> {
        let Some(expr) = expr else { return Ok(None) };
        expr.one(&doc)
            .map_err(|e| errors.push(eval_error(e, field, expr)))
    };

    let device_id = match template.kind {
        Kind::IotJsonPath => Ok(envelope.pointer(IOT_DEVICE_ID).map(Hit::Json)),
        Kind::IotCentralJsonPath => Ok(envelope.pointer(IOT_CENTRAL_DEVICE_ID).map(Hit::Json)),
        _ => single(template.device_id.as_ref(), "deviceIdExpression"),
    }
    .map(|hit| hit.and_then(|h| h.text()).filter(|id| !id.is_empty()));
    let device_id_failed = device_id.is_err();
    let time = match template.kind {
        Kind::IotJsonPath => Ok(envelope
            .pointer(IOT_CREATION_TIME)
            .filter(|v| !v.is_null())
            .or_else(|| envelope.pointer(IOT_ENQUEUED_TIME))
            .map(Hit::Json)),
        Kind::IotCentralJsonPath => Ok(envelope.pointer(IOT_CENTRAL_TIME).map(Hit::Json)),
        _ => single(template.timestamp.as_ref(), "timestampExpression"),
    };
    let mut id = |expr: &Option<Expr>, field: &str| {
        single(expr.as_ref(), field)
            .ok()
            .flatten()
            .and_then(|h| h.text())
            .filter(|id| !id.is_empty())
    };
    let patient_id = id(&template.patient_id, "patientIdExpression");
    let encounter_id = id(&template.encounter_id, "encounterIdExpression");
    let correlation_id = id(&template.correlation_id, "correlationIdExpression");
    let mut properties = Vec::with_capacity(template.values.len());
    let mut missing = Vec::new();
    for spec in &template.values {
        let Ok(hit) = single(Some(&spec.expr), "valueExpression") else {
            continue;
        };
        match hit.and_then(|h| h.text()) {
            Some(text) if !(spec.required && text.is_empty()) => {
                properties.push(MeasurementProperty {
                    name: spec.name.clone(),
                    value: text,
                });
            }
            _ if spec.required => missing.push(spec),
            _ => {}
        }
    }

    // An expression error is already recorded; only a clean miss is "not defined".
    let device_id = device_id.unwrap_or_default();
    if device_id.is_none() && !device_id_failed {
        errors.push(message_error(
            "DeviceIdentityNotDefined",
            "the message has no device id".to_owned(),
        ));
    }
    let occurrence_time = timestamp(time, &mut errors);
    for spec in missing {
        errors.push(message_error(
            "RequiredValueNotFound",
            format!(
                "required value {:?} ({:?}) is missing or empty",
                spec.name,
                spec.expr.text()
            ),
        ));
    }
    match (device_id, occurrence_time) {
        (Some(device_id), Some(occurrence_time)) if errors.is_empty() => Ok(Measurement {
            type_name: template.type_name.clone(),
            occurrence_time,
            device_id,
            patient_id,
            encounter_id,
            correlation_id,
            properties,
        }),
        _ => Err(errors),
    }
}

fn timestamp(
    hit: Result<Option<Hit<'_>>, ()>,
    errors: &mut Vec<MedTechError>,
) -> Option<DateTime<Utc>> {
    let Ok(hit) = hit else { return None };
    let Some(text) = hit.and_then(|h| h.text()).filter(|t| !t.is_empty()) else {
        errors.push(message_error(
            "TimestampNotDefined",
            "the message has no timestamp".to_owned(),
        ));
        return None;
    };
    let parsed = parse_timestamp(&text);
    if parsed.is_none() {
        errors.push(message_error(
            "InvalidTimestamp",
            format!("{text:?} is not an ISO 8601 date-time"),
        ));
    }
    parsed
}
