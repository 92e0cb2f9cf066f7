//! StructureDefinition (JSON) → [`Profile`]: the profile's elements as a tree of [`Rule`]s,
//! each holding only what the profile demands of its element.
//!
//! The tree is built from element ids (`Patient.identifier:mrn.system`), so slices carry
//! their own children. Paths are checked against the R4 definitions while building: a rule
//! the validator could not place on the JSON is refused here rather than silently skipped
//! at validation time.

use hds_fhir_model::Severity;
use hds_fhirpath::Expression;
use serde_json::{Map, Value};

/// Why a StructureDefinition cannot be used as a profile.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CompileError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, CompileError> {
    Err(CompileError(msg.into()))
}

/// A compiled resource profile; compile once, validate many resources (it is `Send + Sync`).
#[derive(Debug)]
pub struct Profile {
    pub(crate) url: String,
    pub(crate) version: Option<String>,
    pub(crate) resource_type: String,
    pub(crate) root: Rule,
    /// The profile a differential derives from, when that is not the R4 definition of its
    /// type: its rules hold too, and only the caller can find it.
    pub(crate) derived_from: Option<String>,
}

/// What a profile demands of one element (or of one slice of it).
#[derive(Debug, Default)]
pub(crate) struct Rule {
    /// The element id, for messages: `Patient.identifier:mrn`.
    pub id: String,
    /// The spec name: `identifier`, `value[x]`.
    pub name: String,
    pub slice_name: Option<String>,
    /// Dotted JSON keys from the resource type (`Observation.valueQuantity`), to look the
    /// element up in the R4 definitions; `None` below a choice whose type is not narrowed.
    pub json_path: Option<String>,
    /// The JSON path of the object holding the element.
    pub parent_json: Option<String>,
    /// Cardinality to check; `None` when it adds nothing to the base definition's.
    pub min: Option<u32>,
    /// `Some(None)` is `*`.
    pub max: Option<Option<u32>>,
    pub types: Vec<TypeRule>,
    pub fixed: Option<Value>,
    pub pattern: Option<Value>,
    /// `maxLength` of a string-like value, in characters.
    pub max_length: Option<u64>,
    /// `minValue[x]` and `maxValue[x]`.
    pub min_value: Option<Value>,
    pub max_value: Option<Value>,
    /// The ValueSet of a `required` binding.
    pub binding: Option<String>,
    pub invariants: Vec<Invariant>,
    pub children: Vec<Rule>,
    pub slicing: Option<Slicing>,
    pub slices: Vec<Rule>,
}

#[derive(Debug, Clone)]
pub(crate) struct TypeRule {
    pub code: String,
    pub profiles: Vec<String>,
    pub target_profiles: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Slicing {
    pub discriminators: Vec<Discriminator>,
    pub closed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DiscriminatorKind {
    Value,
    Pattern,
    Exists,
    Type,
    Profile,
}

#[derive(Debug)]
pub(crate) struct Discriminator {
    pub kind: DiscriminatorKind,
    /// `$this`, or dotted element names (`coding.code`); other FHIRPath leaves it `None`.
    pub names: Option<Vec<String>>,
    /// The path as FHIRPath, to find the instance's values; `None` when it does not parse.
    pub expression: Option<Expression>,
}

#[derive(Debug)]
pub(crate) struct Invariant {
    pub key: String,
    pub severity: Severity,
    pub human: String,
    /// The parsed expression, or why this engine cannot run it.
    pub expression: Result<Expression, String>,
}

/// Where R4's own StructureDefinitions live: `{CORE}Patient` is the base of a Patient profile.
const CORE: &str = "http://hl7.org/fhir/StructureDefinition/";

impl Profile {
    /// Compiles a StructureDefinition of kind `resource`: its snapshot when it has one, its
    /// differential otherwise (the R4 definitions already cover what it does not change).
    pub fn compile(sd: &Value) -> Result<Profile, CompileError> {
        if sd.get("resourceType").and_then(Value::as_str) != Some("StructureDefinition") {
            return err("not a StructureDefinition");
        }
        let url = sd
            .get("url")
            .and_then(Value::as_str)
            .ok_or_else(|| CompileError("the StructureDefinition has no url".into()))?;
        let named = |msg: &str| CompileError(format!("profile {url}: {msg}"));
        match sd.get("kind").and_then(Value::as_str) {
            Some("resource") => {}
            Some(other) => {
                return Err(named(&format!(
                    "kind '{other}' cannot be used to validate a resource (only kind 'resource')"
                )));
            }
            None => return Err(named("kind is missing")),
        }
        let rt = sd
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| named("type is missing"))?;
        if !hds_fhir_model::r4().is_resource_type(rt) {
            return Err(named(&format!("type '{rt}' is not an R4 resource type")));
        }
        let (elements, snapshot) = match sd.pointer("/snapshot/element").and_then(Value::as_array) {
            Some(e) if !e.is_empty() => (e, true),
            _ => match sd
                .pointer("/differential/element")
                .and_then(Value::as_array)
            {
                Some(e) => (e, false),
                None => return Err(named("it has neither snapshot nor differential elements")),
            },
        };
        let mut root = Rule {
            id: rt.to_owned(),
            name: rt.to_owned(),
            json_path: Some(rt.to_owned()),
            ..Rule::default()
        };
        for (i, el) in elements.iter().enumerate() {
            add_element(&mut root, rt, el, snapshot)
                .map_err(|e| named(&format!("element {}: {}", i, e.0)))?;
        }
        // A snapshot holds its base's rules already; a differential holds only its own.
        let core = format!("{CORE}{rt}");
        let derived_from = sd
            .get("baseDefinition")
            .and_then(Value::as_str)
            .filter(|base| !snapshot && *base != core && *base != url)
            .map(str::to_owned);
        Ok(Profile {
            url: url.to_owned(),
            version: sd.get("version").and_then(Value::as_str).map(str::to_owned),
            resource_type: rt.to_owned(),
            root,
            derived_from,
        })
    }

    /// The canonical of the profile this one's differential constrains further, whose rules a
    /// resource must meet as well; `None` when that is R4's own definition of the type (or
    /// when this profile was compiled from a snapshot, which carries its base's rules).
    pub fn derived_from(&self) -> Option<&str> {
        self.derived_from.as_deref()
    }

    /// The canonical URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// The resource type it constrains.
    pub fn resource_type(&self) -> &str {
        &self.resource_type
    }

    /// The ValueSets of its required bindings, for a caller that supplies ValueSets of its own.
    pub fn bound_value_sets(&self) -> Vec<&str> {
        fn walk<'a>(r: &'a Rule, out: &mut Vec<&'a str>) {
            if let Some(vs) = &r.binding
                && !out.contains(&vs.as_str())
            {
                out.push(vs);
            }
            r.children
                .iter()
                .chain(&r.slices)
                .for_each(|c| walk(c, out));
        }
        let mut out = Vec::new();
        walk(&self.root, &mut out);
        out
    }
}

/// One `name` or `name:slice` step of an element id.
fn id_steps(el: &Value) -> Result<Vec<(String, Option<String>)>, CompileError> {
    let path = el
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| CompileError("no path".into()))?;
    let id = match el.get("id").and_then(Value::as_str) {
        Some(id) => id.to_owned(),
        // Without an id, only a slice on the last step can be told apart.
        None => match el.get("sliceName").and_then(Value::as_str) {
            Some(s) => format!("{path}:{s}"),
            None => path.to_owned(),
        },
    };
    let steps: Vec<(String, Option<String>)> = id
        .split('.')
        .map(|step| match step.split_once(':') {
            Some((n, s)) => (n.to_owned(), Some(s.to_owned())),
            None => (step.to_owned(), None),
        })
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| n.as_str()).collect();
    if names.join(".") != path {
        return err(format!("id '{id}' does not follow its path '{path}'"));
    }
    Ok(steps)
}

fn add_element(root: &mut Rule, rt: &str, el: &Value, snapshot: bool) -> Result<(), CompileError> {
    let steps = id_steps(el)?;
    if steps[0].0 != rt {
        return err(format!(
            "path '{}' does not start at {rt}",
            el["path"].as_str().unwrap_or_default()
        ));
    }
    let mut rule = root;
    for (name, slice) in &steps[1..] {
        rule = child(rule, name)?;
        if let Some(slice) = slice {
            rule = slice_of(rule, slice);
        }
    }
    if steps.len() == 1 && steps[0].1.is_some() {
        return err("the resource itself cannot be sliced");
    }
    fill(rule, el, snapshot)
}

/// The child rule `name` of `parent`, created (and its path checked) on first sight.
fn child<'r>(parent: &'r mut Rule, name: &str) -> Result<&'r mut Rule, CompileError> {
    // A choice's type-specific name (`valueQuantity`, R4's older style) is that choice
    // narrowed to one type: a type slice of `value[x]`.
    let (name, type_slice) = match choice_form(parent, name) {
        Some((base, ty)) => (format!("{base}[x]"), Some((name.to_owned(), ty))),
        None => (name.to_owned(), None),
    };
    let pos = match parent.children.iter().position(|c| c.name == name) {
        Some(p) => p,
        None => {
            let json_path = match &parent.json_path {
                Some(p) => {
                    check_path(p, &name)?;
                    if matches!(name.as_str(), "extension" | "modifierExtension") {
                        // Below a primitive too, an extension's insides are Extension's.
                        Some("Extension".to_owned())
                    } else {
                        (!name.ends_with("[x]")).then(|| format!("{p}.{name}"))
                    }
                }
                None => {
                    return err(format!(
                        "cannot follow '{name}' below {}: its type is not narrowed to one",
                        parent.id
                    ));
                }
            };
            parent.children.push(Rule {
                id: format!("{}.{name}", parent.id),
                name: name.clone(),
                json_path,
                parent_json: parent.json_path.clone(),
                ..Rule::default()
            });
            parent.children.len() - 1
        }
    };
    let c = &mut parent.children[pos];
    Ok(match type_slice {
        Some((slice, ty)) => {
            let s = slice_of(c, &slice);
            if s.types.is_empty() {
                s.types.push(TypeRule {
                    code: ty,
                    profiles: Vec::new(),
                    target_profiles: Vec::new(),
                });
                s.json_path = s.parent_json.as_ref().map(|p| format!("{p}.{slice}"));
            }
            s
        }
        None => c,
    })
}

/// `(base, Type)` when `name` is the JSON key of one type of a choice element of `parent`.
fn choice_form(parent: &Rule, name: &str) -> Option<(String, String)> {
    let path = parent.json_path.as_deref()?;
    if name.ends_with("[x]") {
        return None;
    }
    let defs = hds_fhir_model::r4();
    if defs.element_shape(path, name).is_some_and(|s| !s.choice) {
        return None;
    }
    name.char_indices()
        .filter(|(_, c)| c.is_ascii_uppercase())
        .map(|(i, _)| (&name[..i], &name[i..]))
        .find(|(base, _)| {
            defs.element_shape(path, &format!("{base}[x]"))
                .is_some_and(|s| s.choice)
        })
        .map(|(base, ty)| (base.to_owned(), type_of_suffix(ty)))
}

/// The FHIR type a choice key's suffix names: `String` → `string`, `Quantity` → `Quantity`.
pub(crate) fn type_of_suffix(suffix: &str) -> String {
    let mut lower = suffix.to_owned();
    if let Some(first) = lower.get_mut(..1) {
        first.make_ascii_lowercase();
    }
    if hds_fhirpath::PRIMITIVE_TYPES.contains(&lower.as_str()) {
        lower
    } else {
        suffix.to_owned()
    }
}

fn check_path(parent: &str, name: &str) -> Result<(), CompileError> {
    // Every element has `id` and `extension` (a primitive's live in `_name`), which the R4
    // definitions do not spell out below primitives.
    if matches!(name, "id" | "extension" | "modifierExtension")
        || hds_fhir_model::r4().element_shape(parent, name).is_some()
    {
        Ok(())
    } else {
        err(format!("'{parent}' has no element '{name}'"))
    }
}

fn slice_of<'r>(rule: &'r mut Rule, slice: &str) -> &'r mut Rule {
    let pos = match rule
        .slices
        .iter()
        .position(|s| s.slice_name.as_deref() == Some(slice))
    {
        Some(p) => p,
        None => {
            rule.slices.push(Rule {
                id: format!("{}:{slice}", rule.id),
                name: rule.name.clone(),
                slice_name: Some(slice.to_owned()),
                json_path: rule.json_path.clone(),
                parent_json: rule.parent_json.clone(),
                ..Rule::default()
            });
            rule.slices.len() - 1
        }
    };
    &mut rule.slices[pos]
}

fn fill(rule: &mut Rule, el: &Value, snapshot: bool) -> Result<(), CompileError> {
    let min = match el.get("min") {
        None => None,
        Some(v) => Some(
            v.as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .ok_or_else(|| CompileError(format!("min {v} is not a count")))?,
        ),
    };
    let max = match el.get("max") {
        None => None,
        Some(Value::String(s)) if s == "*" => Some(None),
        Some(Value::String(s)) => {
            Some(Some(s.parse::<u32>().map_err(|_| {
                CompileError(format!("max '{s}' is neither a count nor '*'"))
            })?))
        }
        Some(v) => return err(format!("max {v} is not a string")),
    };
    let base_min = el.pointer("/base/min").and_then(Value::as_u64);
    let base_max = el.pointer("/base/max").and_then(Value::as_str);
    let is_slice = rule.slice_name.is_some();
    // A snapshot repeats the base cardinality on every element; checking it again would only
    // echo the R4 validator's findings.
    rule.min = min.filter(|&m| is_slice || !snapshot || base_min.is_none_or(|b| u64::from(m) > b));
    rule.max = max.filter(|m| {
        is_slice
            || !snapshot
            || match (m, base_max) {
                (_, None) => true,
                (None, _) => false,
                (Some(m), Some(b)) => b == "*" || b.parse::<u32>().is_ok_and(|b| *m < b),
            }
    });
    if let Some(types) = el.get("type").and_then(Value::as_array) {
        rule.types = types
            .iter()
            .map(|t| {
                let code = t
                    .get("code")
                    .and_then(Value::as_str)
                    .ok_or_else(|| CompileError("a type without code".into()))?;
                Ok(TypeRule {
                    code: fhir_type_code(t, code),
                    profiles: strings(t.get("profile")),
                    target_profiles: strings(t.get("targetProfile")),
                })
            })
            .collect::<Result<_, CompileError>>()?;
        if rule.name.ends_with("[x]")
            && rule.json_path.is_none()
            && let [only] = rule.types.as_slice()
            && let Some(path) = &rule.parent_json
        {
            let base = rule.name.trim_end_matches("[x]");
            rule.json_path = Some(format!("{path}.{base}{}", upper_first(&only.code)));
        }
    }
    if let Some(obj) = el.as_object() {
        rule.fixed = prefixed(obj, "fixed").cloned();
        rule.pattern = prefixed(obj, "pattern").cloned();
        rule.max_length = obj.get("maxLength").and_then(Value::as_u64);
        rule.min_value = prefixed(obj, "minValue").cloned();
        rule.max_value = prefixed(obj, "maxValue").cloned();
    }
    if el.pointer("/binding/strength").and_then(Value::as_str) == Some("required") {
        rule.binding = el
            .pointer("/binding/valueSet")
            .and_then(Value::as_str)
            .map(str::to_owned);
    }
    for c in el
        .get("constraint")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(inv) = invariant(c)?
            && !rule.invariants.iter().any(|i| i.key == inv.key)
        {
            rule.invariants.push(inv);
        }
    }
    if let Some(s) = el.get("slicing") {
        rule.slicing = Some(slicing(s)?);
    }
    Ok(())
}

/// R4 snapshots type some primitives' insides as FHIRPath system types; the extension
/// names the FHIR type.
fn fhir_type_code(t: &Value, code: &str) -> String {
    if code.starts_with("http://hl7.org/fhirpath/System.") {
        let ext = t
            .get("extension")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|x| {
                x["url"] == "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"
            })
            .and_then(|x| x.get("valueUrl").and_then(Value::as_str));
        if let Some(ty) = ext {
            return ty.to_owned();
        }
    }
    code.to_owned()
}

fn upper_first(s: &str) -> String {
    let mut out = s.to_owned();
    if let Some(first) = out.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The value of `fixedQuantity`, `patternCodeableConcept`, ... (`prefix` + a type name).
fn prefixed<'v>(obj: &'v Map<String, Value>, prefix: &str) -> Option<&'v Value> {
    obj.iter()
        .find(|(k, _)| {
            k.strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
        })
        .map(|(_, v)| v)
}

fn invariant(c: &Value) -> Result<Option<Invariant>, CompileError> {
    let key = c
        .get("key")
        .and_then(Value::as_str)
        .ok_or_else(|| CompileError("a constraint without key".into()))?;
    // ele-1 (a value or children) is what the R4 validator's empty-element checks enforce,
    // and this engine cannot see the extensions of primitives it would count.
    if key == "ele-1" {
        return Ok(None);
    }
    // XPath-only constraints of older definitions carry no FHIRPath to run.
    let Some(expr) = c.get("expression").and_then(Value::as_str) else {
        return Ok(None);
    };
    let severity = match c.get("severity").and_then(Value::as_str) {
        Some("error") => Severity::Error,
        Some("warning") => Severity::Warning,
        other => {
            return err(format!(
                "constraint {key}: severity {other:?} is neither error nor warning"
            ));
        }
    };
    Ok(Some(Invariant {
        key: key.to_owned(),
        severity,
        human: c
            .get("human")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        expression: Expression::parse(expr).map_err(|e| e.to_string()),
    }))
}

fn slicing(s: &Value) -> Result<Slicing, CompileError> {
    let closed = match s.get("rules").and_then(Value::as_str) {
        Some("closed") => true,
        Some("open" | "openAtEnd") | None => false,
        Some(other) => return err(format!("slicing rules '{other}' are not open/closed")),
    };
    let discriminators = s
        .get("discriminator")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|d| {
            let kind = match d.get("type").and_then(Value::as_str) {
                Some("value") => DiscriminatorKind::Value,
                Some("pattern") => DiscriminatorKind::Pattern,
                Some("exists") => DiscriminatorKind::Exists,
                Some("type") => DiscriminatorKind::Type,
                Some("profile") => DiscriminatorKind::Profile,
                other => return err(format!("discriminator type {other:?} is unknown")),
            };
            let path = d
                .get("path")
                .and_then(Value::as_str)
                .ok_or_else(|| CompileError("a discriminator without path".into()))?;
            Ok(Discriminator {
                kind,
                names: simple_names(path),
                expression: Expression::parse(path).ok(),
            })
        })
        .collect::<Result<_, CompileError>>()?;
    Ok(Slicing {
        discriminators,
        closed,
    })
}

/// `$this` → `[]`; `coding.code` → `["coding", "code"]`; anything else (functions) → `None`.
fn simple_names(path: &str) -> Option<Vec<String>> {
    if path == "$this" {
        return Some(Vec::new());
    }
    let names: Vec<String> = path
        .strip_prefix("$this.")
        .unwrap_or(path)
        .split('.')
        .map(str::to_owned)
        .collect();
    names
        .iter()
        .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .then_some(names)
}
