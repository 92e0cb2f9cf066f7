use chrono::{DateTime, Utc};
use hds_medtech_normalize::{ErrorType, Measurement, MedTechError};
use serde_json::{Map, Value};

use crate::group::{GroupKey, Window};
use crate::identity::{ObservationIdentity, Subjects};
use crate::template::{CodeValueFhir, FhirCode, FhirValue};
use crate::time::{format_instant, parse_instant};
use crate::value::{
    Point, build_sampled, decode_sampled, invalid_value, parse_decimal, period_nanos,
};

/// What to save for one group.
#[derive(Clone, Debug, PartialEq)]
pub enum Rendered {
    /// No Observation had the id: PUT this one.
    Created(Value),
    /// The stored Observation changed: PUT this one (status `amended`, no `meta`).
    Updated(Value),
    /// Merging changed nothing the Observation says (meta, issued, narrative and status
    /// aside): nothing to save. Also returned for an empty group.
    Unchanged,
}

/// Builds the Observation for one group (measurements of one [`GroupKey`], any order), or
/// merges them into `existing`, the stored Observation with the same id.
///
/// A merge rebuilds the Observation from the template and the merged data rather than
/// editing the stored one (Azure edits it), so template changes such as new codes reach
/// stored Observations; the stored `id` is kept and `meta` dropped for the server to set.
///
/// Values: Quantity and String take the latest measurement by time (later in the input on a
/// tie) and replace the stored value; CodeableConcept is the template's concept whenever the
/// group has a measurement; SampledData merges samples by time, new samples winning a tie. A
/// value or component no measurement of the group carries keeps its stored value, or is
/// left out when there is none.
///
/// SampledData `data` runs from the effective start to the latest sample (or the end of the
/// stored data, so a merge never shortens it); unlike Azure it is not padded with `E` to the
/// window end, which for an hourly window at 1 s would be thousands of empty slots per save.
///
/// Errors (all tagged with the template's typeName): a Quantity or SampledData value that is
/// not a finite decimal is FHIRConversionError/InvalidQuantityFhirValue (one name for both,
/// so callers handle one); more than 10 million SampledData slots is
/// FHIRConversionError/SampledDataTooLarge.
#[allow(clippy::too_many_arguments)]
pub fn render(
    template: &CodeValueFhir,
    key: &GroupKey,
    measurements: &[Measurement],
    subjects: &Subjects,
    identity: &ObservationIdentity,
    service_system: &str,
    existing: Option<&Value>,
    now: DateTime<Utc>,
) -> Result<Rendered, MedTechError> {
    let job = Job {
        template,
        measurements,
        service_system,
        existing: existing.and_then(Value::as_object),
    };
    job.render(key, subjects, identity, now)
        .map_err(|e| e.in_template(&template.type_name))
}

struct Job<'a> {
    template: &'a CodeValueFhir,
    measurements: &'a [Measurement],
    service_system: &'a str,
    existing: Option<&'a Map<String, Value>>,
}

/// Where samples go: the merged effective start, and the stored start old samples are at.
struct Span {
    start: DateTime<Utc>,
    old_start: Option<DateTime<Utc>>,
}

impl Job<'_> {
    fn render(
        &self,
        key: &GroupKey,
        subjects: &Subjects,
        identity: &ObservationIdentity,
        now: DateTime<Utc>,
    ) -> Result<Rendered, MedTechError> {
        let times = self.measurements.iter().map(|m| m.occurrence_time);
        let (Some(first), Some(last)) = (times.clone().min(), times.max()) else {
            return Ok(Rendered::Unchanged);
        };
        let (mut start, mut end) = match &key.window {
            Window::Interval { start, end } => (*start, *end),
            Window::Correlation(_) => (first, last),
        };
        let old_period = self.existing.and_then(effective_period);
        if let Some((old_start, old_end)) = old_period {
            start = start.min(old_start);
            end = end.max(old_end);
        }
        let span = Span {
            start,
            old_start: old_period.map(|(s, _)| s),
        };

        let t = self.template;
        let mut obs = Map::new();
        obs.insert("resourceType".into(), "Observation".into());
        let id = self
            .existing
            .and_then(|e| e.get("id"))
            .and_then(Value::as_str)
            .unwrap_or(&identity.id);
        obs.insert("id".into(), id.into());
        obs.insert(
            "identifier".into(),
            serde_json::json!([{"system": identity.system, "value": identity.value}]),
        );
        let status = if self.existing.is_some() {
            "amended"
        } else {
            "final"
        };
        obs.insert("status".into(), status.into());
        let category: Vec<Value> = t
            .category
            .iter()
            .filter_map(|c| concept(c.text.as_deref(), &c.codes))
            .collect();
        if !category.is_empty() {
            obs.insert("category".into(), category.into());
        }
        obs.insert("code".into(), self.code(&t.codes, &t.type_name));
        obs.insert("subject".into(), reference("Patient", subjects.patient_id));
        obs.insert("device".into(), reference("Device", subjects.device_id));
        if let Some(encounter) = subjects.encounter_id {
            obs.insert("encounter".into(), reference("Encounter", encounter));
        }
        let mut period = Map::new();
        period.insert("start".into(), format_instant(start).into());
        period.insert("end".into(), format_instant(end).into());
        obs.insert("effectivePeriod".into(), period.into());
        obs.insert("issued".into(), format_instant(now).into());

        if let Some(def) = &t.value
            && let Some((name, value)) = self.value(def, &span, self.existing)?
        {
            obs.insert(name.into(), value);
        }
        let mut components = Vec::new();
        for c in &t.components {
            let name = c.value.value_name().unwrap_or(&t.type_name);
            let stored = self.stored_component(name, &c.codes);
            if let Some((field, value)) = self.value(&c.value, &span, stored)? {
                let mut component = Map::new();
                component.insert("code".into(), self.code(&c.codes, name));
                component.insert(field.into(), value);
                components.push(Value::Object(component));
            }
        }
        if !components.is_empty() {
            obs.insert("component".into(), components.into());
        }

        let obs = Value::Object(obs);
        Ok(match self.existing {
            None => Rendered::Created(obs),
            Some(old) if same_content(old, &obs) => Rendered::Unchanged,
            Some(_) => Rendered::Updated(obs),
        })
    }

    /// Azure's code: the template codes, then the type under the service's own system, which
    /// is also how a merge finds a stored component again.
    fn code(&self, codes: &[FhirCode], name: &str) -> Value {
        let mut coding: Vec<Value> = codes.iter().filter_map(coding).collect();
        let mut own = Map::new();
        own.insert("system".into(), self.service_system.into());
        own.insert("code".into(), name.into());
        own.insert("display".into(), name.into());
        coding.push(own.into());
        let mut code = Map::new();
        code.insert("coding".into(), coding.into());
        code.insert("text".into(), name.into());
        code.into()
    }

    fn stored_component(&self, name: &str, codes: &[FhirCode]) -> Option<&Map<String, Value>> {
        let stored = self.existing?.get("component")?.as_array()?;
        let has_coding = |c: &Map<String, Value>, system: &str, code: &str| {
            c.get("code")
                .and_then(|c| c.get("coding"))
                .and_then(Value::as_array)
                .is_some_and(|codings| {
                    codings.iter().any(|x| {
                        x.get("system").and_then(Value::as_str) == Some(system)
                            && x.get("code").and_then(Value::as_str) == Some(code)
                    })
                })
        };
        let components = || stored.iter().filter_map(Value::as_object);
        components()
            .find(|c| has_coding(c, self.service_system, name))
            .or_else(|| {
                // Written under another service system (e.g. Azure's before a switch of
                // scheme): the template's first code still identifies the component.
                let first = codes.first()?;
                let (system, code) = (first.system.as_deref()?, first.code.as_deref()?);
                components().find(|c| has_coding(c, system, code))
            })
    }

    /// The `value[x]` for one template value, from the group's measurements merged with what
    /// `stored` (the stored Observation or component) holds.
    fn value(
        &self,
        def: &FhirValue,
        span: &Span,
        stored: Option<&Map<String, Value>>,
    ) -> Result<Option<(&'static str, Value)>, MedTechError> {
        let points: Vec<(DateTime<Utc>, &str)> = match def.value_name() {
            Some(name) => self
                .measurements
                .iter()
                .filter_map(|m| m.value(name).map(|v| (m.occurrence_time, v)))
                .collect(),
            None => self
                .measurements
                .iter()
                .map(|m| (m.occurrence_time, ""))
                .collect(),
        };
        let keep = |field: &'static str| {
            stored
                .and_then(|s| s.get(field))
                .map(|v| (field, v.clone()))
        };
        let latest = points
            .iter()
            .fold(None::<&(DateTime<Utc>, &str)>, |best, p| match best {
                Some(b) if b.0 > p.0 => Some(b),
                _ => Some(p),
            })
            .map(|p| p.1);
        Ok(match def {
            FhirValue::Quantity {
                value_name,
                unit,
                system,
                code,
            } => match latest {
                None => keep("valueQuantity"),
                Some(raw) => {
                    let number =
                        parse_decimal(raw).ok_or_else(|| invalid_value(value_name, raw))?;
                    let mut q = Map::new();
                    q.insert("value".into(), Value::Number(number));
                    insert_opt(&mut q, "unit", unit);
                    insert_opt(&mut q, "system", system);
                    insert_opt(&mut q, "code", code);
                    Some(("valueQuantity", q.into()))
                }
            },
            FhirValue::String { .. } => match latest {
                None => keep("valueString"),
                Some(raw) => Some(("valueString", raw.into())),
            },
            FhirValue::CodeableConcept { text, codes, .. } => {
                if points.is_empty() && keep("valueCodeableConcept").is_none() {
                    None
                } else {
                    concept(text.as_deref(), codes).map(|c| ("valueCodeableConcept", c))
                }
            }
            FhirValue::SampledData {
                value_name,
                default_period,
                unit,
            } => {
                let period_ns = period_nanos(default_period).ok_or_else(|| {
                    MedTechError::new(
                        ErrorType::FhirTemplateError,
                        "InvalidDefaultPeriod",
                        "defaultPeriod must be greater than 0",
                    )
                })?;
                let (mut samples, stored_end) = stored
                    .and_then(|s| s.get("valueSampledData"))
                    .zip(span.old_start)
                    .and_then(|(sd, old_start)| {
                        let data = sd.get("data")?.as_str()?;
                        let old_period = sd
                            .get("period")
                            .and_then(Value::as_number)
                            .and_then(period_nanos)
                            .unwrap_or(period_ns);
                        Some(decode_sampled(data, old_start, old_period))
                    })
                    .unwrap_or_default();
                if points.is_empty() && stored_end.is_none() {
                    return Ok(None);
                }
                // Stored samples first: the stable sort then lets a new sample win a tie.
                for (time, raw) in &points {
                    let number =
                        parse_decimal(raw).ok_or_else(|| invalid_value(value_name, raw))?;
                    samples.push(Point {
                        time: *time,
                        value: number.to_string(),
                    });
                }
                let data = build_sampled(samples, span.start, stored_end, period_ns)?;
                let mut origin = Map::new();
                origin.insert("value".into(), 0.into());
                insert_opt(&mut origin, "unit", unit);
                let mut sd = Map::new();
                sd.insert("origin".into(), origin.into());
                sd.insert("period".into(), Value::Number(default_period.clone()));
                sd.insert("dimensions".into(), 1.into());
                sd.insert("data".into(), data.into());
                Some(("valueSampledData", sd.into()))
            }
        })
    }
}

fn insert_opt(map: &mut Map<String, Value>, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        map.insert(key.into(), v.as_str().into());
    }
}

fn coding(c: &FhirCode) -> Option<Value> {
    let mut m = Map::new();
    insert_opt(&mut m, "system", &c.system);
    insert_opt(&mut m, "code", &c.code);
    insert_opt(&mut m, "display", &c.display);
    (!m.is_empty()).then_some(m.into())
}

/// `None` when it would be empty, which FHIR does not allow.
fn concept(text: Option<&str>, codes: &[FhirCode]) -> Option<Value> {
    let coding: Vec<Value> = codes.iter().filter_map(coding).collect();
    let mut m = Map::new();
    if !coding.is_empty() {
        m.insert("coding".into(), coding.into());
    }
    if let Some(text) = text {
        m.insert("text".into(), text.into());
    }
    (!m.is_empty()).then_some(m.into())
}

fn reference(resource_type: &str, id: &str) -> Value {
    let mut m = Map::new();
    m.insert("reference".into(), format!("{resource_type}/{id}").into());
    m.into()
}

/// A stored Observation's period; Azure's merge also reads an `effectiveDateTime`.
fn effective_period(obs: &Map<String, Value>) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    if let Some(p) = obs.get("effectivePeriod") {
        let at = |k: &str| p.get(k).and_then(Value::as_str).and_then(parse_instant);
        return match (at("start"), at("end")) {
            (Some(s), Some(e)) => Some((s.min(e), s.max(e))),
            (Some(t), None) | (None, Some(t)) => Some((t, t)),
            (None, None) => None,
        };
    }
    let t = parse_instant(obs.get("effectiveDateTime")?.as_str()?)?;
    Some((t, t))
}

/// Whether the merge changed what the Observation says. Server-owned or per-save fields are
/// ignored, and numbers and instants compare by value, so a server that reformats them
/// (`72.0`, `+00:00`) does not make every merge look like a change.
fn same_content(old: &Map<String, Value>, new: &Value) -> bool {
    const IGNORED: [&str; 4] = ["meta", "issued", "text", "status"];
    let Some(new) = new.as_object() else {
        return false;
    };
    let kept = |m: &Map<String, Value>| -> Map<String, Value> {
        m.iter()
            .filter(|(k, _)| !IGNORED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    same(&Value::Object(kept(old)), &Value::Object(kept(new)))
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::String(x), Value::String(y)) => {
            x == y || matches!((parse_instant(x), parse_instant(y)), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests;
