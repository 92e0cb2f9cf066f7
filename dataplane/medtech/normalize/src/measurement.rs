use chrono::{DateTime, Utc};
use serde::Serialize;

/// One normalized measurement: what a device-mapping template extracts from one match in a
/// message. Serialized with Azure's field names, as the mapping debugger shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct Measurement {
    #[serde(rename = "Type")]
    pub type_name: String,
    #[serde(rename = "OccurrenceTimeUtc")]
    pub occurrence_time: DateTime<Utc>,
    pub device_id: String,
    pub patient_id: Option<String>,
    pub encounter_id: Option<String>,
    pub correlation_id: Option<String>,
    pub properties: Vec<MeasurementProperty>,
}

/// A named value. JSON strings keep their text; numbers keep their literal digits; other JSON
/// is kept as its JSON text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct MeasurementProperty {
    pub name: String,
    pub value: String,
}

impl Measurement {
    pub fn value(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|p| p.name.eq_ignore_ascii_case(name))
            .map(|p| p.value.as_str())
    }
}
