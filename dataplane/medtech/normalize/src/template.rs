//! Parsing Azure's CollectionContent JSON. Field names and type names are matched
//! case-insensitively, as Azure's Newtonsoft deserializer does; every problem is collected
//! (not just the first) so `$validate-mapping` can list them all.

use serde_json::{Map, Value};

use crate::error::TemplateError;
use crate::expr::{Expr, Language};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    JsonPath,
    IotJsonPath,
    IotCentralJsonPath,
    Calculated,
}

impl Kind {
    fn parse(name: &str) -> Option<Kind> {
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        if is("JsonPathContent") || is("JsonPathContentTemplate") {
            Some(Kind::JsonPath)
        } else if is("IotJsonPathContent") || is("IotJsonPathContentTemplate") {
            Some(Kind::IotJsonPath)
        } else if is("IotCentralJsonPathContent") || is("IotCentralJsonPathContentTemplate") {
            Some(Kind::IotCentralJsonPath)
        } else if is("CalculatedContent") || is("CalculatedContentTemplate") {
            Some(Kind::Calculated)
        } else {
            None
        }
    }
}

pub(crate) struct ValueSpec {
    pub(crate) name: String,
    pub(crate) expr: Expr,
    pub(crate) required: bool,
}

pub(crate) struct Template {
    pub(crate) kind: Kind,
    pub(crate) type_name: String,
    pub(crate) type_match: Expr,
    /// Absent for the IoT kinds, whose device id and time come from fixed envelope fields.
    pub(crate) device_id: Option<Expr>,
    pub(crate) timestamp: Option<Expr>,
    pub(crate) patient_id: Option<Expr>,
    pub(crate) encounter_id: Option<Expr>,
    pub(crate) correlation_id: Option<Expr>,
    pub(crate) values: Vec<ValueSpec>,
}

fn field<'v>(object: &'v Map<String, Value>, name: &str) -> Option<&'v Value> {
    object
        .get(name)
        .or_else(|| {
            object
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })
        .filter(|v| !v.is_null())
}

struct Errors(Vec<TemplateError>);

impl Errors {
    fn add(&mut self, path: &str, message: impl Into<String>) {
        self.0.push(TemplateError {
            path: path.to_owned(),
            message: message.into(),
        });
    }
}

pub(crate) fn parse_collection(root: &Value) -> Result<Vec<Template>, Vec<TemplateError>> {
    let mut errors = Errors(Vec::new());
    let Some(root) = root.as_object() else {
        errors.add("", "a device mapping must be a JSON object");
        return Err(errors.0);
    };
    match field(root, "templateType").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("CollectionContent") => {}
        Some(t) => errors.add(
            "templateType",
            format!("expected CollectionContent, found {t:?}"),
        ),
        None => errors.add("templateType", "required (CollectionContent)"),
    }
    let mut templates = Vec::new();
    match field(root, "template") {
        Some(Value::Array(entries)) => {
            for (i, entry) in entries.iter().enumerate() {
                if let Some(t) = parse_entry(entry, &format!("template[{i}]"), &mut errors) {
                    templates.push(t);
                }
            }
        }
        Some(_) => errors.add("template", "must be an array of templates"),
        None => errors.add("template", "required (an array of templates)"),
    }
    if errors.0.is_empty() {
        Ok(templates)
    } else {
        Err(errors.0)
    }
}

fn parse_entry(entry: &Value, path: &str, errors: &mut Errors) -> Option<Template> {
    let Some(entry) = entry.as_object() else {
        errors.add(path, "must be an object with templateType and template");
        return None;
    };
    let kind_path = format!("{path}.templateType");
    let kind = match field(entry, "templateType").and_then(Value::as_str) {
        Some(name) => match Kind::parse(name) {
            Some(kind) => Some(kind),
            None => {
                errors.add(
                    &kind_path,
                    format!(
                        "unknown template type {name:?} (expected JsonPathContent, \
                         IotJsonPathContent, IotCentralJsonPathContent or CalculatedContent)"
                    ),
                );
                None
            }
        },
        None => {
            errors.add(&kind_path, "required");
            None
        }
    };
    let body_path = format!("{path}.template");
    let Some(body) = field(entry, "template").and_then(Value::as_object) else {
        errors.add(&body_path, "required (an object)");
        return None;
    };
    parse_template(kind?, body, &body_path, errors)
}

struct Fields<'a> {
    body: &'a Map<String, Value>,
    path: &'a str,
    kind: Kind,
    default_language: Language,
}

impl Fields<'_> {
    /// An expression field: a string, or (CalculatedContent) `{"value", "language"}`. Empty
    /// counts as absent, as Azure's `string.IsNullOrEmpty` checks do.
    fn expr_at(&self, value: Option<&Value>, path: &str, errors: &mut Errors) -> Option<Expr> {
        let (text, language) = match value? {
            Value::String(text) => (text.as_str(), self.default_language),
            Value::Object(object) if self.kind == Kind::Calculated => {
                let text = match field(object, "value") {
                    Some(Value::String(text)) => text.as_str(),
                    _ => {
                        errors.add(&format!("{path}.value"), "required (the expression text)");
                        return None;
                    }
                };
                let language = match field(object, "language") {
                    None => self.default_language,
                    Some(Value::String(name)) => {
                        match Language::parse(name) {
                            Some(language) => language,
                            None => {
                                errors.add(
                                &format!("{path}.language"),
                                format!("unknown expression language {name:?} (JsonPath or JmesPath)"),
                            );
                                return None;
                            }
                        }
                    }
                    Some(_) => {
                        errors.add(&format!("{path}.language"), "must be a string");
                        return None;
                    }
                };
                (text, language)
            }
            _ => {
                errors.add(path, "must be a string");
                return None;
            }
        };
        if text.trim().is_empty() {
            return None;
        }
        Expr::compile(text, language)
            .map_err(|message| errors.add(path, message))
            .ok()
    }

    fn expr(&self, name: &str, errors: &mut Errors) -> Option<Expr> {
        self.expr_at(
            field(self.body, name),
            &format!("{}.{name}", self.path),
            errors,
        )
    }

    fn required_expr(&self, name: &str, errors: &mut Errors) -> Option<Expr> {
        let path = format!("{}.{name}", self.path);
        let before = errors.0.len();
        let expr = self.expr_at(field(self.body, name), &path, errors);
        if expr.is_none() && errors.0.len() == before {
            errors.add(&path, "required");
        }
        expr
    }
}

fn parse_template(
    kind: Kind,
    body: &Map<String, Value>,
    path: &str,
    errors: &mut Errors,
) -> Option<Template> {
    let before = errors.0.len();
    let mut default_language = Language::JsonPath;
    if kind == Kind::Calculated
        && let Some(value) = field(body, "defaultExpressionLanguage")
    {
        match value.as_str().and_then(Language::parse) {
            Some(language) => default_language = language,
            None => errors.add(
                &format!("{path}.defaultExpressionLanguage"),
                "must be JsonPath or JmesPath",
            ),
        }
    }
    let fields = Fields {
        body,
        path,
        kind,
        default_language,
    };
    let type_name = match field(body, "typeName") {
        Some(Value::String(name)) if !name.trim().is_empty() => Some(name.clone()),
        _ => {
            errors.add(&format!("{path}.typeName"), "required (a non-empty string)");
            None
        }
    };
    let type_match = fields.required_expr("typeMatchExpression", errors);
    // Azure fixes the IoT kinds' device id and time, and ignores these fields there.
    let fixed_identity = matches!(kind, Kind::IotJsonPath | Kind::IotCentralJsonPath);
    let (device_id, timestamp) = if fixed_identity {
        (None, None)
    } else {
        (
            fields.required_expr("deviceIdExpression", errors),
            fields.required_expr("timestampExpression", errors),
        )
    };
    let patient_id = fields.expr("patientIdExpression", errors);
    let encounter_id = fields.expr("encounterIdExpression", errors);
    let correlation_id = fields.expr("correlationIdExpression", errors);
    let values = parse_values(&fields, errors);
    if errors.0.len() != before {
        return None;
    }
    Some(Template {
        kind,
        type_name: type_name?,
        type_match: type_match?,
        device_id,
        timestamp,
        patient_id,
        encounter_id,
        correlation_id,
        values,
    })
}

fn parse_values(fields: &Fields<'_>, errors: &mut Errors) -> Vec<ValueSpec> {
    let path = format!("{}.values", fields.path);
    let entries = match field(fields.body, "values") {
        None => return Vec::new(),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            errors.add(&path, "must be an array");
            return Vec::new();
        }
    };
    let mut values = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let path = format!("{path}[{i}]");
        let Some(entry) = entry.as_object() else {
            errors.add(
                &path,
                "must be an object with valueName and valueExpression",
            );
            continue;
        };
        let name = match field(entry, "valueName") {
            Some(Value::String(name)) if !name.trim().is_empty() => Some(name.clone()),
            _ => {
                errors.add(
                    &format!("{path}.valueName"),
                    "required (a non-empty string)",
                );
                None
            }
        };
        let required = match field(entry, "required") {
            None => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            // Newtonsoft reads "true"/"false" strings into a bool as well.
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Some(true),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Some(false),
            Some(_) => {
                errors.add(&format!("{path}.required"), "must be true or false");
                None
            }
        };
        let expr_path = format!("{path}.valueExpression");
        let before = errors.0.len();
        let expr = fields.expr_at(field(entry, "valueExpression"), &expr_path, errors);
        if expr.is_none() && errors.0.len() == before {
            errors.add(&expr_path, "required");
        }
        if let (Some(name), Some(required), Some(expr)) = (name, required, expr) {
            values.push(ValueSpec {
                name,
                expr,
                required,
            });
        }
    }
    values
}
