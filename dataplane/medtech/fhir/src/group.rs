use chrono::{DateTime, TimeDelta, Utc};
use hds_medtech_normalize::{ErrorType, Measurement, MedTechError};

use crate::template::{FhirMapping, PeriodInterval};

/// Which Observation a measurement belongs in. The service buffers measurements by it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// The template's typeName (not the measurement's spelling, which may differ in case), so
    /// one template always yields one Observation per window.
    pub type_name: String,
    pub device_id: String,
    pub patient_id: Option<String>,
    pub encounter_id: Option<String>,
    pub window: Window,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// Both ends inclusive, UTC; `start == end` for Instance templates.
    Interval {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
    Correlation(String),
}

/// Window ends fall on the last 100 ns tick before the next window, as .NET's
/// `AddTicks(-1)` puts them, so a stored Azure Observation's period matches ours exactly.
const TICK: TimeDelta = TimeDelta::nanoseconds(100);

pub(crate) fn interval_window(
    interval: PeriodInterval,
    t: DateTime<Utc>,
) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let floor = |seconds: i64| {
        let start = DateTime::from_timestamp(t.timestamp().div_euclid(seconds) * seconds, 0)?;
        Some((start, start + TimeDelta::seconds(seconds) - TICK))
    };
    match interval {
        PeriodInterval::Instance => Some((t, t)),
        PeriodInterval::Hour => floor(3600),
        PeriodInterval::Day => floor(86_400),
        PeriodInterval::CorrelationId => None,
    }
}

/// Errors: no template for the measurement's type is FHIRTemplateError/TemplateNotFound; a
/// CorrelationId template and a measurement without a correlation id is
/// DeviceMessageError/CorrelationIdNotDefined, as Azure classifies it (the message, not the
/// template, lacks the id).
pub fn group_key(mapping: &FhirMapping, m: &Measurement) -> Result<GroupKey, MedTechError> {
    let Some(template) = mapping.template(&m.type_name) else {
        return Err(MedTechError::new(
            ErrorType::FhirTemplateError,
            "TemplateNotFound",
            format!("no FHIR template for measurement type {:?}", m.type_name),
        ));
    };
    let window = match template.period_interval {
        PeriodInterval::CorrelationId => {
            match m.correlation_id.as_deref().filter(|c| !c.trim().is_empty()) {
                Some(c) => Window::Correlation(c.to_owned()),
                None => {
                    return Err(MedTechError::new(
                        ErrorType::DeviceMessageError,
                        "CorrelationIdNotDefined",
                        "the template groups by correlation id and the measurement has none",
                    )
                    .in_template(&template.type_name));
                }
            }
        }
        interval => {
            let (start, end) = interval_window(interval, m.occurrence_time)
                .expect("only CorrelationId has no time window");
            Window::Interval { start, end }
        }
    };
    Ok(GroupKey {
        type_name: template.type_name.clone(),
        device_id: m.device_id.clone(),
        patient_id: m.patient_id.clone(),
        encounter_id: m.encounter_id.clone(),
        window,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    fn mapping(interval: i64) -> FhirMapping {
        FhirMapping::parse(&json!({
            "templateType": "CollectionFhir",
            "template": [{"templateType": "CodeValueFhir", "template": {
                "typeName": "HeartRate", "periodInterval": interval,
                "codes": [{"code": "8867-4", "system": "http://loinc.org"}]
            }}]
        }))
        .unwrap()
    }

    fn measurement(type_name: &str, t: DateTime<Utc>) -> Measurement {
        Measurement {
            type_name: type_name.into(),
            occurrence_time: t,
            device_id: "dev1".into(),
            patient_id: Some("pat1".into()),
            encounter_id: None,
            correlation_id: None,
            properties: vec![],
        }
    }

    #[test]
    fn windows_follow_the_period_interval() {
        let t = Utc.with_ymd_and_hms(2023, 1, 1, 10, 17, 3).unwrap();
        let hour = group_key(&mapping(60), &measurement("HeartRate", t)).unwrap();
        assert_eq!(
            hour.window,
            Window::Interval {
                start: Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap(),
                end: Utc.with_ymd_and_hms(2023, 1, 1, 11, 0, 0).unwrap() - TICK,
            }
        );
        let day = group_key(&mapping(1440), &measurement("HeartRate", t)).unwrap();
        let Window::Interval { start, end } = day.window else {
            panic!("day window")
        };
        assert_eq!(start, Utc.with_ymd_and_hms(2023, 1, 1, 0, 0, 0).unwrap());
        assert_eq!(
            crate::time::format_instant(end),
            "2023-01-01T23:59:59.9999999Z"
        );
        let instant = group_key(&mapping(0), &measurement("HeartRate", t)).unwrap();
        assert_eq!(instant.window, Window::Interval { start: t, end: t });
    }

    #[test]
    fn type_falls_back_to_case_insensitive_and_keys_use_the_template_name() {
        let t = Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap();
        let key = group_key(&mapping(0), &measurement("heartrate", t)).unwrap();
        assert_eq!(key.type_name, "HeartRate");
        let err = group_key(&mapping(0), &measurement("spo2", t)).unwrap_err();
        assert_eq!(err.error_type, ErrorType::FhirTemplateError);
        assert_eq!(err.name, "TemplateNotFound");
    }

    #[test]
    fn correlation_needs_an_id() {
        let t = Utc.with_ymd_and_hms(2023, 1, 1, 10, 0, 0).unwrap();
        let mut m = measurement("HeartRate", t);
        let err = group_key(&mapping(-1), &m).unwrap_err();
        assert_eq!(err.name, "CorrelationIdNotDefined");
        assert_eq!(err.error_type, ErrorType::DeviceMessageError);
        assert_eq!(err.template.as_deref(), Some("HeartRate"));
        m.correlation_id = Some("c1".into());
        let key = group_key(&mapping(-1), &m).unwrap();
        assert_eq!(key.window, Window::Correlation("c1".into()));
    }
}
