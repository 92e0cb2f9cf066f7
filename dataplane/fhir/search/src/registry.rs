//! The search parameters the server knows: R4's 1,375 official ones (generated into
//! `data/r4-search.json` by `gen-r4-search`), resolved per resource type with their FHIRPath
//! expressions parsed once, and R4's compartment definitions.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use hds_fhirpath::Expression;
use serde::Deserialize;

static R4_SEARCH: &str = include_str!("../data/r4-search.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    Number,
    Date,
    String,
    Token,
    Reference,
    Composite,
    Quantity,
    Uri,
    Special,
}

impl ParamType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "number" => Self::Number,
            "date" => Self::Date,
            "string" => Self::String,
            "token" => Self::Token,
            "reference" => Self::Reference,
            "composite" => Self::Composite,
            "quantity" => Self::Quantity,
            "uri" => Self::Uri,
            "special" => Self::Special,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Number => "number",
            Self::Date => "date",
            Self::String => "string",
            Self::Token => "token",
            Self::Reference => "reference",
            Self::Composite => "composite",
            Self::Quantity => "quantity",
            Self::Uri => "uri",
            Self::Special => "special",
        }
    }
}

/// One search parameter as it applies to one resource type.
#[derive(Debug)]
pub struct SearchParam {
    pub code: String,
    pub url: String,
    pub kind: ParamType,
    /// The expression for this resource type; `None` for parameters the server evaluates itself
    /// (`_id`, `_lastUpdated`) or cannot index (`special`).
    pub expression: Option<Arc<Expression>>,
    pub expression_text: Option<String>,
    /// Resource types a reference parameter may point at.
    pub targets: Vec<String>,
    /// Composite parameters: the component parameters' urls and their relative expressions.
    pub components: Arc<[(String, Expression)]>,
    /// A custom parameter whose index is not complete yet: writes index it, searches refuse
    /// it until a `$reindex` covering its base types finishes.
    pub pending: bool,
    /// Defined by a SearchParameter resource on this server rather than by R4.
    pub custom: bool,
    /// A built-in parameter whose values are exactly those of these other parameters of the
    /// same type together (`combo-code` is `code` and `component-code`): it has no index rows
    /// of its own, and a search on it is one on each of them (see [`union_of`]). Empty for
    /// every other parameter.
    pub union_of: Vec<String>,
    /// A reference parameter whose values are another one's that point at one type
    /// (`Observation.patient` is `subject` where it refers to a Patient): it has no reference
    /// rows of its own, and a search on it is one on the other's rows of that target type (see
    /// [`narrowed_reference`]). `None` for every other parameter.
    pub narrows: Option<NarrowedReference>,
}

/// What a narrowed reference parameter ([`SearchParam::narrows`]) is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NarrowedReference {
    /// The parameter whose rows hold its values.
    pub param: String,
    /// The one type of target among them that counts.
    pub target_type: String,
}

/// Parameters answered from the `resources` table rather than index rows.
pub const TABLE_PARAMS: &[&str] = &["_id", "_lastUpdated"];

#[derive(Deserialize)]
struct RawDoc {
    params: Vec<RawParam>,
    compartments: HashMap<String, HashMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
struct RawParam {
    code: String,
    url: String,
    #[serde(rename = "type")]
    kind: String,
    base: Vec<String>,
    expr: HashMap<String, String>,
    #[serde(default)]
    target: Vec<String>,
    #[serde(default)]
    component: Vec<RawComponent>,
}

#[derive(Deserialize)]
struct RawComponent {
    definition: String,
    expression: String,
}

#[derive(Clone)]
pub struct Registry {
    /// resource type -> code -> parameter.
    by_type: HashMap<String, HashMap<String, Arc<SearchParam>>>,
    by_url: HashMap<String, (String, ParamType)>,
    /// compartment type -> member resource type -> parameters linking a member to it.
    compartments: HashMap<String, HashMap<String, Vec<String>>>,
}

static R4: LazyLock<Registry> = LazyLock::new(|| {
    Registry::from_json(R4_SEARCH).expect("data/r4-search.json is generated and tested")
});

/// The built-in R4 registry.
pub fn r4() -> &'static Registry {
    &R4
}

/// Resource types that are not DomainResources (no text, contained, extension).
const NOT_DOMAIN: &[&str] = &["Bundle", "Binary", "Parameters"];

impl Registry {
    fn from_json(text: &str) -> Result<Self, String> {
        let doc: RawDoc = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let model = hds_fhir_model::r4();
        let mut by_type: HashMap<String, HashMap<String, Arc<SearchParam>>> = HashMap::new();
        let mut by_url = HashMap::new();
        for raw in &doc.params {
            let kind = ParamType::parse(&raw.kind)
                .ok_or_else(|| format!("{}: unknown type {}", raw.code, raw.kind))?;
            by_url.insert(raw.url.clone(), (raw.code.clone(), kind));
            let components: Arc<[(String, Expression)]> = raw
                .component
                .iter()
                .map(|c| {
                    Expression::parse(&c.expression)
                        .map(|e| (c.definition.clone(), e))
                        .map_err(|e| format!("{} component {}: {e}", raw.code, c.expression))
                })
                .collect::<Result<Vec<_>, _>>()?
                .into();
            let types: Vec<String> = if raw
                .base
                .iter()
                .any(|b| b == "Resource" || b == "DomainResource")
            {
                let domain_only = raw.base.iter().all(|b| b == "DomainResource");
                model
                    .resource_types()
                    .filter(|t| !domain_only || !NOT_DOMAIN.contains(t))
                    .map(str::to_owned)
                    .collect()
            } else {
                raw.base.clone()
            };
            for ty in types {
                let text = raw
                    .expr
                    .get(&ty)
                    .or_else(|| raw.expr.get("Resource"))
                    .filter(|_| !TABLE_PARAMS.contains(&raw.code.as_str()))
                    .cloned();
                let expression = match &text {
                    Some(t) => Some(Arc::new(
                        Expression::parse(t)
                            .map_err(|e| format!("{} on {ty}: {t}: {e}", raw.code))?,
                    )),
                    None => None,
                };
                let param = SearchParam {
                    code: raw.code.clone(),
                    url: raw.url.clone(),
                    kind,
                    expression,
                    expression_text: text,
                    targets: raw.target.clone(),
                    components: components.clone(),
                    pending: false,
                    custom: false,
                    union_of: Vec::new(),
                    narrows: None,
                };
                by_type
                    .entry(ty)
                    .or_default()
                    .insert(raw.code.clone(), Arc::new(param));
            }
        }
        let unions: Vec<(String, String, Vec<String>)> = by_type
            .iter()
            .flat_map(|(ty, params)| {
                params
                    .values()
                    .filter_map(|p| Some((ty.clone(), p.code.clone(), union_of(params, p)?)))
            })
            .collect();
        for (ty, code, parts) in unions {
            if let Some(p) = by_type.get_mut(&ty).and_then(|m| m.get_mut(&code)) {
                Arc::get_mut(p).expect("not shared yet").union_of = parts;
            }
        }
        let narrowed: Vec<(String, String, NarrowedReference)> = by_type
            .iter()
            .flat_map(|(ty, params)| {
                params.values().filter_map(|p| {
                    Some((
                        ty.clone(),
                        p.code.clone(),
                        narrowed_reference(ty, params, p)?,
                    ))
                })
            })
            .collect();
        let mut compartments = doc.compartments;
        for (ty, code, n) in narrowed {
            // A compartment is always searched for references to its own type, which the
            // narrowed parameter's stored rows hold exactly; to any other type it never
            // refers.
            for (comp, members) in &mut compartments {
                if let Some(list) = members.get_mut(&ty)
                    && let Some(i) = list.iter().position(|c| *c == code)
                {
                    if *comp == n.target_type && !list.contains(&n.param) {
                        list[i].clone_from(&n.param);
                    } else {
                        list.remove(i);
                    }
                }
            }
            if let Some(p) = by_type.get_mut(&ty).and_then(|m| m.get_mut(&code)) {
                Arc::get_mut(p).expect("not shared yet").narrows = Some(n);
            }
        }
        Ok(Self {
            by_type,
            by_url,
            compartments,
        })
    }

    /// The parameter `code` on `res_type`, if the type has it.
    pub fn get(&self, res_type: &str, code: &str) -> Option<&Arc<SearchParam>> {
        self.by_type.get(res_type)?.get(code)
    }

    /// Every parameter of `res_type`.
    pub fn params(&self, res_type: &str) -> impl Iterator<Item = &Arc<SearchParam>> {
        self.by_type
            .get(res_type)
            .into_iter()
            .flat_map(|m| m.values())
    }

    /// Some type's parameter with canonical `url`, for composite components that are not
    /// parameters of the composite's own type.
    pub fn any_by_url(&self, url: &str) -> Option<&Arc<SearchParam>> {
        self.by_type
            .values()
            .flat_map(|m| m.values())
            .find(|p| p.url == url)
    }

    /// The code and type of the parameter with canonical `url` (composite components name theirs).
    pub fn by_url(&self, url: &str) -> Option<(&str, ParamType)> {
        self.by_url.get(url).map(|(c, k)| (c.as_str(), *k))
    }

    /// The parameters through which a `member` resource belongs to a `compartment` (e.g.
    /// Patient, Observation -> subject, performer); empty if it cannot belong.
    pub fn compartment_params(&self, compartment: &str, member: &str) -> &[String] {
        self.compartments
            .get(compartment)
            .and_then(|m| m.get(member))
            .map_or(&[], Vec::as_slice)
    }

    pub fn is_compartment(&self, res_type: &str) -> bool {
        self.compartments.contains_key(res_type)
    }

    /// This registry plus custom parameters (which may not redefine a built-in one).
    pub fn with_custom(&self, customs: &[CustomParam]) -> Registry {
        let mut r = self.clone();
        for c in customs {
            for base in &c.base {
                let param = SearchParam {
                    code: c.code.clone(),
                    url: c.url.clone(),
                    kind: c.kind,
                    expression: Some(c.expression.clone()),
                    expression_text: Some(c.expression_text.clone()),
                    targets: c.targets.clone(),
                    components: Arc::from(Vec::new()),
                    pending: c.pending,
                    custom: true,
                    union_of: Vec::new(),
                    narrows: None,
                };
                r.by_type
                    .entry(base.clone())
                    .or_default()
                    .insert(c.code.clone(), Arc::new(param));
            }
            r.by_url.insert(c.url.clone(), (c.code.clone(), c.kind));
        }
        r
    }
}

/// The other parameters of one type whose expressions, together, are exactly `p`'s: its
/// top-level `|` operands, partitioned among them (R4's `combo-*` parameters of Observation,
/// which pair each value with the same value in a component). A composite must also have the
/// same components (kinds and relative expressions) as each of them, so that each of its
/// repetitions is one of theirs. FHIRPath's union only removes duplicates, so a resource has a
/// value of `p` exactly when it has that value in one of them: their index rows answer every
/// search on `p`, and storing `p`'s too would only repeat them (on the benchmark's
/// Observations, a sixth of all index rows).
fn union_of(params: &HashMap<String, Arc<SearchParam>>, p: &SearchParam) -> Option<Vec<String>> {
    let operands = |q: &SearchParam| -> Option<Vec<String>> {
        q.expression_text.as_deref().map(top_level_operands)
    };
    // A component is known by its kind (its definition's, found among the type's parameters)
    // and its expression relative to the repetition.
    let components = |q: &SearchParam| -> Vec<(Option<ParamType>, String)> {
        q.components
            .iter()
            .map(|(url, e)| {
                let kind = params.values().find(|d| &d.url == url).map(|d| d.kind);
                (kind, e.source().to_owned())
            })
            .collect()
    };
    let mut left = operands(p)?;
    let all = left.len();
    if p.custom || all < 2 {
        return None;
    }
    let mut members: Vec<(&SearchParam, Vec<String>)> = params
        .values()
        .map(Arc::as_ref)
        .filter(|q| q.code != p.code && !q.custom && q.kind == p.kind)
        .filter(|q| p.kind != ParamType::Composite || components(q) == components(p))
        .filter_map(|q| Some((q, operands(q)?)))
        .collect();
    // Largest first, then by code: the same partition on every start.
    members.sort_by(|(a, ao), (b, bo)| bo.len().cmp(&ao.len()).then(a.code.cmp(&b.code)));
    let mut parts = Vec::new();
    for (q, ops) in members {
        if ops.len() < all && ops.iter().all(|o| left.contains(o)) {
            left.retain(|o| !ops.contains(o));
            parts.push(q.code.clone());
        }
    }
    (left.is_empty() && parts.len() >= 2).then(|| {
        parts.sort();
        parts
    })
}

/// The other reference parameter of the same type whose rows, restricted to one target type,
/// are exactly `p`'s: `p`'s expression is `<q's expression>.where(resolve() is T)`.
/// `resolve()` of a reference outside a Bundle names its target's type from the reference text
/// (`Patient/1`, `http://x/fhir/Patient/1`), and so does the target type of an index row: for
/// any reference with a well-formed id the two agree, and a search on `p` reads `q`'s rows of
/// type `T` (R4's `patient` on 40-odd clinical types: every Observation's `subject` row was
/// stored twice). Contained references have no rows either way.
fn narrowed_reference(
    res_type: &str,
    params: &HashMap<String, Arc<SearchParam>>,
    p: &SearchParam,
) -> Option<NarrowedReference> {
    if p.custom || p.kind != ParamType::Reference || res_type == "Bundle" {
        return None;
    }
    let text = p.expression_text.as_deref()?;
    let (inner, target_type) = text
        .strip_suffix(')')?
        .rsplit_once(".where(resolve() is ")?;
    if !hds_fhir_model::r4().is_resource_type(target_type) {
        return None;
    }
    let q = params.values().find(|q| {
        q.code != p.code
            && !q.custom
            && q.kind == ParamType::Reference
            && q.union_of.is_empty()
            && q.expression_text.as_deref() == Some(inner)
            && (q.targets.is_empty() || q.targets.iter().any(|t| t == target_type))
    })?;
    // A parameter narrowed in turn would have no rows to lend.
    if narrowed_reference(res_type, params, q).is_some() {
        return None;
    }
    Some(NarrowedReference {
        param: q.code.clone(),
        target_type: target_type.to_owned(),
    })
}

/// The operands of an expression's top-level `|` unions, trimmed (`a | (b | c)` has two).
fn top_level_operands(expression: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in expression.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            '|' if !quoted && depth == 0 => {
                out.push(expression[start..i].trim().to_owned());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(expression[start..].trim().to_owned());
    out
}

/// A SearchParameter resource this server can index.
#[derive(Debug, Clone)]
pub struct CustomParam {
    pub url: String,
    pub code: String,
    pub base: Vec<String>,
    pub kind: ParamType,
    pub expression: Arc<Expression>,
    pub expression_text: String,
    pub targets: Vec<String>,
    pub pending: bool,
}

impl CustomParam {
    /// What must stay the same for an existing index to remain valid.
    pub fn signature(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.kind.as_str(),
            self.base.join(","),
            self.code,
            self.expression_text
        )
    }
}

/// Reads a SearchParameter resource as a custom parameter, or says why the server cannot use
/// it (the message goes into a 400 OperationOutcome). `None`: the definition of a built-in
/// parameter (the official SearchParameter resources), or one not `active` (draft, retired):
/// both are stored like any resource and change nothing, as in HAPI.
pub fn custom_param(
    builtin: &Registry,
    sp: &serde_json::Value,
) -> Result<Option<CustomParam>, String> {
    let s = |k: &str| sp.get(k).and_then(serde_json::Value::as_str);
    let url = s("url").ok_or("a SearchParameter needs a url to be used for search")?;
    if builtin.by_url(url).is_some() || s("status") != Some("active") {
        return Ok(None);
    }
    let code = s("code").ok_or("a SearchParameter needs a code")?;
    if code.starts_with('_') || code.contains([':', '.', ',', '$', '|']) {
        return Err(format!(
            "code '{code}' cannot be searched on: it may not start with '_' or contain : . , $ |"
        ));
    }
    let kind_text = s("type").ok_or("a SearchParameter needs a type")?;
    let kind = ParamType::parse(kind_text).ok_or_else(|| format!("unknown type '{kind_text}'"))?;
    if matches!(kind, ParamType::Composite | ParamType::Special) {
        return Err(format!(
            "custom {kind_text} parameters are not supported (number, date, string, token, reference, quantity and uri are)"
        ));
    }
    let text = s("expression").ok_or("a SearchParameter needs an expression to be indexed")?;
    let expression = Arc::new(
        Expression::parse(text)
            .map_err(|e| format!("the expression '{text}' does not parse: {e}"))?,
    );
    let base: Vec<String> = sp
        .get("base")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if base.is_empty() {
        return Err("a SearchParameter needs at least one base resource type".into());
    }
    let model = hds_fhir_model::r4();
    for b in &base {
        if !model.is_resource_type(b) {
            return Err(format!("base '{b}' is not a concrete R4 resource type"));
        }
        if let Some(existing) = builtin.get(b, code)
            && existing.url != url
        {
            return Err(format!(
                "{b} already has a search parameter '{code}' ({}); choose another code",
                existing.url
            ));
        }
    }
    let targets = sp
        .get("target")
        .and_then(serde_json::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|b| b.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(CustomParam {
        url: url.to_owned(),
        code: code.to_owned(),
        base,
        kind,
        expression,
        expression_text: text.to_owned(),
        targets,
        pending: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_official_parameter_parses_and_resolves_per_type() {
        let r = r4();
        let name = r.get("Patient", "name").expect("Patient.name");
        assert_eq!(name.kind, ParamType::String);
        assert_eq!(name.expression_text.as_deref(), Some("Patient.name"));
        let subject = r
            .get("Observation", "patient")
            .expect("Observation.patient");
        assert_eq!(
            subject.expression_text.as_deref(),
            Some("Observation.subject.where(resolve() is Patient)")
        );
        let tag = r.get("Observation", "_tag").expect("_tag on every type");
        assert_eq!(tag.expression_text.as_deref(), Some("meta.tag"));
        assert!(
            r.get("Bundle", "_text").is_none(),
            "Bundle is not a DomainResource"
        );
        assert!(r.get("Observation", "_id").unwrap().expression.is_none());
        let cvq = r.get("Observation", "code-value-quantity").unwrap();
        assert_eq!(cvq.components.len(), 2);
        assert_eq!(
            r.compartment_params("Patient", "Observation"),
            ["subject", "performer"]
        );
        // Encounter's Patient compartment is through `patient`, answered from `subject` rows.
        assert_eq!(r.compartment_params("Patient", "Encounter"), ["subject"]);
        let n: usize = hds_fhir_model::r4()
            .resource_types()
            .map(|t| r.params(t).count())
            .sum();
        assert!(n > 2000, "{n} parameter bindings");
    }

    #[test]
    fn the_combo_parameters_are_unions_of_their_parts_and_nothing_else_is() {
        let r = r4();
        let mut unions: Vec<String> = hds_fhir_model::r4()
            .resource_types()
            .flat_map(|t| r.params(t))
            .filter(|p| !p.union_of.is_empty())
            .map(|p| format!("{} = {}", p.code, p.union_of.join(" + ")))
            .collect();
        unions.sort();
        assert_eq!(
            unions,
            [
                "combo-code = code + component-code",
                "combo-code-value-concept = code-value-concept + component-code-value-concept",
                "combo-code-value-quantity = code-value-quantity + component-code-value-quantity",
                "combo-data-absent-reason = component-data-absent-reason + data-absent-reason",
                "combo-value-concept = component-value-concept + value-concept",
                "combo-value-quantity = component-value-quantity + value-quantity",
            ]
        );
        assert_eq!(
            top_level_operands("(a as B) | a.where(x = 'p|q') | (c | d)"),
            ["(a as B)", "a.where(x = 'p|q')", "(c | d)"]
        );
    }

    #[test]
    fn patient_parameters_that_narrow_subject_are_listed() {
        let r = r4();
        let mut narrowed: Vec<String> = hds_fhir_model::r4()
            .resource_types()
            .flat_map(|t| r.params(t).map(move |p| (t, p)))
            .filter_map(|(t, p)| {
                let n = p.narrows.as_ref()?;
                Some(format!("{t}.{} = {}:{}", p.code, n.param, n.target_type))
            })
            .collect();
        narrowed.sort();
        assert!(narrowed.contains(&"Observation.patient = subject:Patient".to_owned()));
        assert!(narrowed.contains(&"Encounter.practitioner = participant:Practitioner".to_owned()));
        assert_eq!(narrowed.len(), 47, "{narrowed:#?}");
        // The migration that removed the rows these parameters once had names each of them.
        let migration = include_str!("../../store/migrations/0018_narrowed_reference_rows.sql");
        let mut deleted: Vec<String> = migration
            .lines()
            .filter_map(|l| l.trim().strip_prefix("('"))
            .map(|l| {
                l.trim_end_matches([',', ')', ';'])
                    .replace("', '", ".")
                    .replace('\'', "")
            })
            .collect();
        deleted.sort();
        let named: Vec<String> = narrowed
            .iter()
            .map(|n| n.split(" = ").next().unwrap().to_owned())
            .collect();
        assert_eq!(deleted, named);
    }
}
