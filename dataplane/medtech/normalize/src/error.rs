use serde::Serialize;

/// Azure's error types, as its metrics and logs name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub enum ErrorType {
    DeviceTemplateError,
    DeviceMessageError,
    #[serde(rename = "FHIRTemplateError")]
    FhirTemplateError,
    #[serde(rename = "FHIRConversionError")]
    FhirConversionError,
    #[serde(rename = "FHIRResourceError")]
    FhirResourceError,
    #[serde(rename = "FHIRServerError")]
    FhirServerError,
    GeneralError,
}

impl ErrorType {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorType::DeviceTemplateError => "DeviceTemplateError",
            ErrorType::DeviceMessageError => "DeviceMessageError",
            ErrorType::FhirTemplateError => "FHIRTemplateError",
            ErrorType::FhirConversionError => "FHIRConversionError",
            ErrorType::FhirResourceError => "FHIRResourceError",
            ErrorType::FhirServerError => "FHIRServerError",
            ErrorType::GeneralError => "GeneralError",
        }
    }
}

/// Why one message, or one match in it, produced no data: Azure's error type and name (e.g.
/// DeviceMessageError / DeviceIdentityNotDefined) and a sentence for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "camelCase")]
#[error("{error_type:?}/{name}: {message}")]
pub struct MedTechError {
    #[serde(rename = "type")]
    pub error_type: ErrorType,
    pub name: String,
    pub message: String,
    /// The template (its typeName) the error came from, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
}

impl MedTechError {
    pub fn new(error_type: ErrorType, name: &str, message: impl Into<String>) -> Self {
        Self {
            error_type,
            name: name.to_owned(),
            message: message.into(),
            template: None,
        }
    }

    pub fn in_template(mut self, type_name: &str) -> Self {
        self.template = Some(type_name.to_owned());
        self
    }
}

/// A template that cannot be used at all: refused when the service starts (and by
/// `$validate-mapping`), never met per message. `path` points into the template JSON
/// (e.g. `template[1].template.values[0].valueExpression`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message}")]
pub struct TemplateError {
    pub path: String,
    pub message: String,
}
