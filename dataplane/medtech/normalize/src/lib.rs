//! Azure MedTech device mappings, accepted as Azure writes them: a device message (wrapped in
//! Azure's event envelope) becomes normalized measurements.
//!
//! A [`DeviceMapping`] is Azure's CollectionContent JSON, parsed once (expressions compiled);
//! [`DeviceMapping::normalize`] runs every template against one envelope (see [`envelope`]).

mod error;
mod expr;
mod jmes;
mod jsonpath;
mod measurement;
mod normalize;
mod template;

use serde_json::{Map, Value};

pub use error::{ErrorType, MedTechError, TemplateError};
pub use measurement::{Measurement, MeasurementProperty};

/// What to do with a message when some of its matches fail.
///
/// - `Retry` (Azure's default): any error in any match fails the whole message —
///   `measurements` is empty and `errors` lists every error. The caller records the message as
///   failed; it must not retry it forever, since a template error is deterministic (iomt-fhir
///   did loop on those).
/// - `DiscardMatchAndExtractErrors`: a failing match is dropped and the other matches'
///   measurements are kept; `errors` still lists what failed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ErrorPolicy {
    #[default]
    Retry,
    DiscardMatchAndExtractErrors,
}

/// The result of one message.
#[derive(Debug, Default)]
pub struct Normalized {
    pub measurements: Vec<Measurement>,
    pub errors: Vec<MedTechError>,
    /// How many matches the type-match expressions found over all templates.
    pub matches: usize,
}

/// A parsed device mapping. Immutable and `Send + Sync`: parse once, share between workers.
pub struct DeviceMapping {
    templates: Vec<template::Template>,
}

impl std::fmt::Debug for DeviceMapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceMapping")
            .field("type_names", &self.type_names().collect::<Vec<_>>())
            .finish()
    }
}

impl DeviceMapping {
    /// Parses Azure's CollectionContent JSON. Every problem found, with a JSON path into the
    /// template.
    pub fn parse(template: &Value) -> Result<DeviceMapping, Vec<TemplateError>> {
        template::parse_collection(template).map(|templates| DeviceMapping { templates })
    }

    /// Runs every template against one envelope. A message that no template matches gives
    /// one DeviceTemplateError/TemplateNotFound.
    pub fn normalize(&self, envelope: &Value, policy: ErrorPolicy) -> Normalized {
        normalize::normalize(&self.templates, envelope, policy)
    }

    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| t.type_name.as_str())
    }
}

/// Wraps a device payload in Azure's envelope (so IotJsonPathContent templates work).
pub fn envelope(
    body: Value,
    properties: Map<String, Value>,
    system_properties: Map<String, Value>,
) -> Value {
    let mut envelope = Map::with_capacity(3);
    envelope.insert("Body".to_owned(), body);
    envelope.insert("Properties".to_owned(), Value::Object(properties));
    envelope.insert(
        "SystemProperties".to_owned(),
        Value::Object(system_properties),
    );
    Value::Object(envelope)
}

#[cfg(test)]
mod tests;
