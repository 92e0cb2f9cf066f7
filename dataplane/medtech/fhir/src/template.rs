use hds_medtech_normalize::TemplateError;
use serde_json::{Map, Number, Value};

/// The coding system Azure puts the measurement type under in every Observation code.
pub const AZURE_SERVICE_SYSTEM: &str =
    "https://azure.microsoft.com/en-us/services/iomt-fhir-connector/";

/// A parsed `CollectionFhir` template.
#[derive(Clone, Debug, PartialEq)]
pub struct FhirMapping {
    templates: Vec<CodeValueFhir>,
}

/// One `CodeValueFhir` template: how measurements of one type become Observations.
#[derive(Clone, Debug, PartialEq)]
pub struct CodeValueFhir {
    pub type_name: String,
    pub period_interval: PeriodInterval,
    pub category: Vec<FhirCodeableConcept>,
    pub codes: Vec<FhirCode>,
    pub value: Option<FhirValue>,
    pub components: Vec<FhirComponent>,
}

/// Azure's `periodInterval`, in minutes: how measurements are grouped into one Observation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodInterval {
    /// -1: one Observation per correlation id.
    CorrelationId,
    /// 0: one Observation per measurement time.
    Instance,
    /// 60: one Observation per clock hour (UTC).
    Hour,
    /// 1440: one Observation per day (UTC).
    Day,
}

impl PeriodInterval {
    pub fn from_minutes(minutes: i64) -> Option<Self> {
        match minutes {
            -1 => Some(Self::CorrelationId),
            0 => Some(Self::Instance),
            60 => Some(Self::Hour),
            1440 => Some(Self::Day),
            _ => None,
        }
    }

    pub fn minutes(self) -> i32 {
        match self {
            Self::CorrelationId => -1,
            Self::Instance => 0,
            Self::Hour => 60,
            Self::Day => 1440,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FhirCode {
    pub code: Option<String>,
    pub system: Option<String>,
    pub display: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FhirCodeableConcept {
    pub text: Option<String>,
    pub codes: Vec<FhirCode>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FhirComponent {
    pub codes: Vec<FhirCode>,
    pub value: FhirValue,
}

/// A template `value` (or a component's), by `valueType`.
#[derive(Clone, Debug, PartialEq)]
pub enum FhirValue {
    /// `default_period` is in milliseconds, kept as written so the Observation shows it so.
    SampledData {
        value_name: String,
        default_period: Number,
        unit: Option<String>,
    },
    Quantity {
        value_name: String,
        unit: Option<String>,
        system: Option<String>,
        code: Option<String>,
    },
    String {
        value_name: String,
    },
    /// The measured value is not used: the measurement being there is the observation (a
    /// fall, say). Without a `value_name` every measurement of the group counts.
    CodeableConcept {
        value_name: Option<String>,
        text: Option<String>,
        codes: Vec<FhirCode>,
    },
}

impl FhirValue {
    pub fn value_name(&self) -> Option<&str> {
        match self {
            FhirValue::SampledData { value_name, .. }
            | FhirValue::Quantity { value_name, .. }
            | FhirValue::String { value_name } => Some(value_name),
            FhirValue::CodeableConcept { value_name, .. } => value_name.as_deref(),
        }
    }
}

impl FhirMapping {
    /// Azure's CollectionFhir JSON; every problem with a JSON path into the template.
    pub fn parse(template: &Value) -> Result<FhirMapping, Vec<TemplateError>> {
        let mut p = Parser::default();
        let templates = p.collection(template);
        if p.errors.is_empty() {
            Ok(FhirMapping { templates })
        } else {
            Err(p.errors)
        }
    }

    /// Exact typeName first, as Azure matches; then case-insensitively, because device
    /// templates and FHIR templates are often written by different people.
    pub fn template(&self, type_name: &str) -> Option<&CodeValueFhir> {
        self.templates
            .iter()
            .find(|t| t.type_name == type_name)
            .or_else(|| {
                self.templates
                    .iter()
                    .find(|t| t.type_name.eq_ignore_ascii_case(type_name))
            })
    }

    pub fn type_names(&self) -> impl Iterator<Item = &str> {
        self.templates.iter().map(|t| t.type_name.as_str())
    }

    pub fn templates(&self) -> &[CodeValueFhir] {
        &self.templates
    }
}

/// Azure reads templates with Newtonsoft, which matches property names case-insensitively.
fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name)
        .or_else(|| {
            obj.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

fn join(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}.{name}")
    }
}

#[derive(Default)]
struct Parser {
    errors: Vec<TemplateError>,
}

impl Parser {
    fn err(&mut self, path: &str, message: impl Into<String>) {
        let path = if path.is_empty() { "$" } else { path };
        self.errors.push(TemplateError {
            path: path.to_owned(),
            message: message.into(),
        });
    }

    fn object<'a>(&mut self, v: &'a Value, path: &str) -> Option<&'a Map<String, Value>> {
        let obj = v.as_object();
        if obj.is_none() {
            self.err(path, "must be an object");
        }
        obj
    }

    fn opt_string(&mut self, obj: &Map<String, Value>, name: &str, base: &str) -> Option<String> {
        match field(obj, name)? {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.err(&join(base, name), "must be a string");
                None
            }
        }
    }

    fn req_string(&mut self, obj: &Map<String, Value>, name: &str, base: &str) -> Option<String> {
        if field(obj, name).is_none() {
            self.err(&join(base, name), "is required");
            return None;
        }
        let s = self.opt_string(obj, name, base)?;
        if s.trim().is_empty() {
            self.err(&join(base, name), "must not be empty");
            return None;
        }
        Some(s)
    }

    fn array<'a>(&mut self, obj: &'a Map<String, Value>, name: &str, base: &str) -> &'a [Value] {
        match field(obj, name) {
            None => &[],
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.err(&join(base, name), "must be an array");
                &[]
            }
        }
    }

    fn template_type(&mut self, obj: &Map<String, Value>, base: &str, expected: &str) -> bool {
        match self.req_string(obj, "templateType", base) {
            Some(t) if t.eq_ignore_ascii_case(expected) => true,
            Some(t) => {
                self.err(
                    &join(base, "templateType"),
                    format!("unsupported templateType {t:?}, expected {expected}"),
                );
                false
            }
            None => false,
        }
    }

    fn collection(&mut self, root: &Value) -> Vec<CodeValueFhir> {
        let Some(obj) = self.object(root, "") else {
            return Vec::new();
        };
        if !self.template_type(obj, "", "CollectionFhir") {
            return Vec::new();
        }
        let Some(items) = field(obj, "template") else {
            self.err("template", "is required");
            return Vec::new();
        };
        let Some(items) = items.as_array() else {
            self.err("template", "must be an array");
            return Vec::new();
        };
        let mut templates: Vec<CodeValueFhir> = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = format!("template[{i}]");
            let Some(entry) = self.object(item, &path) else {
                continue;
            };
            if !self.template_type(entry, &path, "CodeValueFhir") {
                continue;
            }
            let inner_path = join(&path, "template");
            let Some(inner) = field(entry, "template") else {
                self.err(&inner_path, "is required");
                continue;
            };
            let Some(inner) = self.object(inner, &inner_path) else {
                continue;
            };
            if let Some(t) = self.code_value(inner, &inner_path) {
                // Two templates for one type would make the Observation depend on order.
                if templates.iter().any(|o| o.type_name == t.type_name) {
                    self.err(
                        &join(&inner_path, "typeName"),
                        format!("duplicate typeName {:?}", t.type_name),
                    );
                } else {
                    templates.push(t);
                }
            }
        }
        templates
    }

    fn code_value(&mut self, obj: &Map<String, Value>, base: &str) -> Option<CodeValueFhir> {
        let before = self.errors.len();
        let type_name = self.req_string(obj, "typeName", base);
        let period_interval = self.period_interval(obj, base);
        let category = self
            .array(obj, "category", base)
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.concept(c, &format!("{}[{i}]", join(base, "category"))))
            .collect();
        let codes_path = join(base, "codes");
        let codes = match field(obj, "codes") {
            None => {
                self.err(&codes_path, "is required");
                Vec::new()
            }
            Some(_) => {
                let codes = self.codes(obj, base);
                if codes.is_empty() {
                    self.err(&codes_path, "must have at least one code");
                }
                codes
            }
        };
        let value = field(obj, "value").and_then(|v| self.value(v, &join(base, "value")));
        let components_path = join(base, "components");
        let components = self
            .array(obj, "components", base)
            .iter()
            .enumerate()
            .filter_map(|(i, c)| self.component(c, &format!("{components_path}[{i}]")))
            .collect();
        if self.errors.len() > before {
            return None;
        }
        Some(CodeValueFhir {
            type_name: type_name?,
            period_interval: period_interval?,
            category,
            codes,
            value,
            components,
        })
    }

    fn period_interval(&mut self, obj: &Map<String, Value>, base: &str) -> Option<PeriodInterval> {
        let path = join(base, "periodInterval");
        // Azure's field is an int, so an absent one is 0.
        let Some(v) = field(obj, "periodInterval") else {
            return Some(PeriodInterval::Instance);
        };
        let minutes = match v {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse::<i64>().ok(),
            _ => None,
        };
        let interval = minutes.and_then(PeriodInterval::from_minutes);
        if interval.is_none() {
            self.err(
                &path,
                format!(
                    "must be -1 (correlation id), 0 (instance), 60 (hour) or 1440 (day), not {v}"
                ),
            );
        }
        interval
    }

    fn codes(&mut self, obj: &Map<String, Value>, base: &str) -> Vec<FhirCode> {
        let path = join(base, "codes");
        self.array(obj, "codes", base)
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let p = format!("{path}[{i}]");
                let c = self.object(c, &p)?;
                Some(FhirCode {
                    code: self.opt_string(c, "code", &p),
                    system: self.opt_string(c, "system", &p),
                    display: self.opt_string(c, "display", &p),
                })
            })
            .collect()
    }

    fn concept(&mut self, v: &Value, path: &str) -> Option<FhirCodeableConcept> {
        let obj = self.object(v, path)?;
        Some(FhirCodeableConcept {
            text: self.opt_string(obj, "text", path),
            codes: self.codes(obj, path),
        })
    }

    fn component(&mut self, v: &Value, path: &str) -> Option<FhirComponent> {
        let obj = self.object(v, path)?;
        let codes = self.codes(obj, path);
        let value_path = join(path, "value");
        let Some(value) = field(obj, "value") else {
            self.err(&value_path, "is required");
            return None;
        };
        Some(FhirComponent {
            codes,
            value: self.value(value, &value_path)?,
        })
    }

    fn value(&mut self, v: &Value, path: &str) -> Option<FhirValue> {
        let obj = self.object(v, path)?;
        let value_type = self.req_string(obj, "valueType", path)?;
        match value_type.to_ascii_lowercase().as_str() {
            "sampleddata" => {
                let value_name = self.req_string(obj, "valueName", path);
                let default_period = self.default_period(obj, path);
                let unit = self.opt_string(obj, "unit", path);
                Some(FhirValue::SampledData {
                    value_name: value_name?,
                    default_period: default_period?,
                    unit,
                })
            }
            "quantity" => Some(FhirValue::Quantity {
                value_name: self.req_string(obj, "valueName", path)?,
                unit: self.opt_string(obj, "unit", path),
                system: self.opt_string(obj, "system", path),
                code: self.opt_string(obj, "code", path),
            }),
            "string" => Some(FhirValue::String {
                value_name: self.req_string(obj, "valueName", path)?,
            }),
            "codeableconcept" => Some(FhirValue::CodeableConcept {
                value_name: self.opt_string(obj, "valueName", path),
                text: self.opt_string(obj, "text", path),
                codes: self.codes(obj, path),
            }),
            _ => {
                self.err(
                    &join(path, "valueType"),
                    format!(
                        "unknown valueType {value_type:?}; expected SampledData, Quantity, String or CodeableConcept"
                    ),
                );
                None
            }
        }
    }

    fn default_period(&mut self, obj: &Map<String, Value>, base: &str) -> Option<Number> {
        let path = join(base, "defaultPeriod");
        let number = match field(obj, "defaultPeriod") {
            None => {
                self.err(&path, "is required");
                return None;
            }
            Some(Value::Number(n)) => Some(n.clone()),
            Some(Value::String(s)) => crate::value::parse_decimal(s),
            Some(_) => None,
        };
        match number {
            Some(n) if crate::value::period_nanos(&n).is_some() => Some(n),
            _ => {
                self.err(&path, "must be a number of milliseconds greater than 0");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests;
