//! Validating a resource against a compiled [`Profile`]: the rule tree is walked alongside
//! the JSON, each rule applied to every instance of its element.

use std::borrow::Cow;
use std::collections::HashSet;

use hds_fhir_model::{Issue, IssueCode, Severity};
use hds_fhirpath::Item;
use serde_json::{Map, Value};

use crate::compile::{Invariant, Profile, Rule, type_of_suffix};
use crate::terminology::ValueSets;
use crate::values::{codings, compare, contains, same, show};

/// One occurrence of an element in the resource.
#[derive(Debug, Clone)]
pub(crate) struct Inst<'a> {
    /// `None` for a primitive given only by its `_name` companion (id/extensions).
    pub value: Option<&'a Value>,
    /// A primitive's `_name` object.
    pub companion: Option<&'a Value>,
    /// FHIRPath-style location: `Patient.identifier[0].system`.
    pub loc: String,
    /// The FHIR type when known: from a choice key's suffix, or the element's one type.
    pub ty: Option<String>,
}

pub(crate) struct Checker<'a> {
    pub profile: &'a Profile,
    pub resource: &'a Value,
    pub value_sets: &'a dyn ValueSets,
    pub issues: Vec<Issue>,
    /// Warnings given once per validation (an unknown ValueSet, an invariant this engine
    /// cannot run), by key.
    warned: HashSet<String>,
}

impl Profile {
    /// The resource's conformance to this profile, beyond what the R4 definitions demand
    /// (run `hds_fhir_model::r4().validate` for that). Empty means it conforms.
    pub fn validate(&self, resource: &Value, value_sets: &dyn ValueSets) -> Vec<Issue> {
        let rt = resource.get("resourceType").and_then(Value::as_str);
        if rt != Some(self.resource_type.as_str()) {
            return vec![Issue {
                severity: Severity::Error,
                code: IssueCode::Invalid,
                expression: rt.unwrap_or("resourceType").to_owned(),
                diagnostics: format!(
                    "profile {} constrains {}, not {}",
                    self.url,
                    self.resource_type,
                    rt.unwrap_or("a resource without resourceType")
                ),
            }];
        }
        let mut c = Checker {
            profile: self,
            resource,
            value_sets,
            issues: Vec::new(),
            warned: HashSet::new(),
        };
        let root = Inst {
            value: Some(resource),
            companion: None,
            loc: self.resource_type.clone(),
            ty: Some(self.resource_type.clone()),
        };
        c.element(&self.root, &root);
        let mut seen = HashSet::new();
        c.issues.retain(|i| {
            seen.insert((
                i.severity,
                i.code,
                i.expression.clone(),
                i.diagnostics.clone(),
            ))
        });
        c.issues
    }
}

impl<'a> Checker<'a> {
    pub(crate) fn report(&mut self, severity: Severity, code: IssueCode, loc: &str, msg: String) {
        self.issues.push(Issue {
            severity,
            code,
            expression: loc.to_owned(),
            diagnostics: format!("{msg} (profile {})", self.profile.url),
        });
    }

    fn error(&mut self, code: IssueCode, loc: &str, msg: String) {
        self.report(Severity::Error, code, loc, msg);
    }

    fn warn_once(&mut self, key: String, code: IssueCode, loc: &str, msg: String) {
        if self.warned.insert(key) {
            self.report(Severity::Warning, code, loc, msg);
        }
    }

    /// Applies `rule` to one instance of its element, then its children's rules below it.
    pub(crate) fn element(&mut self, rule: &Rule, inst: &Inst<'a>) {
        // The rules below a narrowed choice are about the allowed type's insides.
        if !self.type_allowed(rule, inst) {
            return;
        }
        match inst.value {
            Some(v) => {
                if let Some(fixed) = &rule.fixed
                    && !same(v, fixed)
                {
                    self.error(
                        IssueCode::Value,
                        &inst.loc,
                        format!(
                            "{} must be exactly {} (fixed by {}), found {}",
                            inst.loc,
                            show(fixed),
                            rule.id,
                            show(v)
                        ),
                    );
                }
                if let Some(pattern) = &rule.pattern
                    && !contains(v, pattern)
                {
                    self.error(
                        IssueCode::Value,
                        &inst.loc,
                        format!(
                            "{} must contain {} (pattern of {}), found {}",
                            inst.loc,
                            show(pattern),
                            rule.id,
                            show(v)
                        ),
                    );
                }
                self.bounds(rule, inst, v);
                self.binding(rule, inst, v);
                self.reference_target(rule, inst, v);
                for inv in &rule.invariants {
                    self.invariant(inv, inst, v);
                }
            }
            None if rule.fixed.is_some() || rule.pattern.is_some() => self.error(
                IssueCode::Value,
                &inst.loc,
                format!("{} has no value, but {} fixes one", inst.loc, rule.id),
            ),
            None => {}
        }
        if rule.children.is_empty() {
            return;
        }
        let holder = match inst.value {
            Some(Value::Object(o)) => Some(o),
            _ => inst.companion.and_then(Value::as_object),
        };
        for child in &rule.children {
            match holder {
                Some(obj) => self.occurrences(child, obj, &inst.loc),
                None => self.cardinality(child, 0, &format!("{}.{}", inst.loc, spelled(child))),
            }
        }
    }

    /// A child rule over all its element's occurrences in `obj`: cardinality, slices, then
    /// each occurrence.
    fn occurrences(&mut self, rule: &Rule, obj: &'a Map<String, Value>, loc: &str) {
        let insts = collect(rule, obj, loc);
        let here = format!("{loc}.{}", spelled(rule));
        self.cardinality(rule, insts.len(), &here);
        if !rule.slices.is_empty() {
            self.slices(rule, &insts, &here);
        }
        for inst in &insts {
            self.element(rule, inst);
        }
    }

    pub(crate) fn cardinality(&mut self, rule: &Rule, count: usize, here: &str) {
        if let Some(min) = rule.min
            && count < min as usize
        {
            self.error(
                IssueCode::Required,
                here,
                format!("{} requires at least {min}, found {count}", rule.id),
            );
        }
        if let Some(Some(max)) = rule.max
            && count > max as usize
        {
            self.error(
                IssueCode::Structure,
                here,
                format!("{} allows at most {max}, found {count}", rule.id),
            );
        }
    }

    /// A choice narrowed by the profile must use one of its types.
    fn type_allowed(&mut self, rule: &Rule, inst: &Inst<'a>) -> bool {
        if !rule.name.ends_with("[x]") || rule.types.is_empty() {
            return true;
        }
        if let Some(ty) = &inst.ty
            && !rule.types.iter().any(|t| t.code == *ty)
        {
            let allowed: Vec<&str> = rule.types.iter().map(|t| t.code.as_str()).collect();
            self.error(
                IssueCode::Structure,
                &inst.loc,
                format!(
                    "{} may not be a {ty} here; {} allows {}",
                    inst.loc,
                    rule.id,
                    allowed.join(", ")
                ),
            );
            return false;
        }
        true
    }

    /// `maxLength`, `minValue[x]` and `maxValue[x]`.
    fn bounds(&mut self, rule: &Rule, inst: &Inst<'a>, v: &Value) {
        if let (Some(max), Some(text)) = (rule.max_length, v.as_str()) {
            let len = text.chars().count() as u64;
            if len > max {
                self.error(
                    IssueCode::TooLong,
                    &inst.loc,
                    format!(
                        "{} is {len} characters long; {} allows at most {max}",
                        inst.loc, rule.id
                    ),
                );
            }
        }
        for (limit, below) in [(&rule.min_value, true), (&rule.max_value, false)] {
            let Some(limit) = limit else { continue };
            let Some(order) = compare(v, limit) else {
                continue;
            };
            let outside = if below {
                order == std::cmp::Ordering::Less
            } else {
                order == std::cmp::Ordering::Greater
            };
            if outside {
                self.error(
                    IssueCode::Value,
                    &inst.loc,
                    format!(
                        "{} is {}, {} the {} {} of {}",
                        inst.loc,
                        show(v),
                        if below { "below" } else { "above" },
                        if below { "minimum" } else { "maximum" },
                        show(limit),
                        rule.id
                    ),
                );
            }
        }
    }

    fn binding(&mut self, rule: &Rule, inst: &Inst<'a>, v: &Value) {
        let Some(vs) = &rule.binding else { return };
        let Some(codes) = codings(v) else { return };
        let found: Vec<Option<bool>> = codes
            .iter()
            .map(|(system, code)| self.value_sets.contains(vs, *system, code))
            .collect();
        if found.contains(&Some(true)) {
            return;
        }
        if found.contains(&None)
            || (codes.is_empty() && self.value_sets.contains(vs, None, "").is_none())
        {
            self.warn_once(
                format!("vs {vs} {}", rule.id),
                IssueCode::NotFound,
                &inst.loc,
                format!(
                    "ValueSet {vs} is not known here, so the required binding of {} is not checked",
                    rule.id
                ),
            );
            return;
        }
        let what = match codes.as_slice() {
            [] => "no code".to_owned(),
            [(Some(s), c)] => format!("code {s}#{c}"),
            [(None, c)] => format!("code '{c}'"),
            many => format!("none of its {} codes", many.len()),
        };
        self.error(
            IssueCode::CodeInvalid,
            &inst.loc,
            format!(
                "{} has {what} from ValueSet {vs}, which {} requires",
                inst.loc, rule.id
            ),
        );
    }

    /// A Reference whose allowed targets are all R4 resource types must point at one of them.
    /// Targets defined by other profiles would need those profiles, so they are not judged.
    fn reference_target(&mut self, rule: &Rule, inst: &Inst<'a>, v: &Value) {
        const CORE: &str = "http://hl7.org/fhir/StructureDefinition/";
        let Some(t) = rule.types.iter().find(|t| t.code == "Reference") else {
            return;
        };
        let defs = hds_fhir_model::r4();
        let allowed: Option<Vec<&str>> = t
            .target_profiles
            .iter()
            .map(|p| p.strip_prefix(CORE).filter(|t| defs.is_resource_type(t)))
            .collect();
        let Some(allowed) = allowed.filter(|a| !a.is_empty() && !a.contains(&"Resource")) else {
            return;
        };
        // A type R4 does not know (`http://x/Network/1`) is not a reference this can judge.
        let Some(target) = v
            .get("reference")
            .and_then(Value::as_str)
            .and_then(target_type)
            .filter(|t| defs.is_resource_type(t))
        else {
            return;
        };
        if !allowed.contains(&target) {
            self.error(
                IssueCode::Structure,
                &format!("{}.reference", inst.loc),
                format!(
                    "{} may refer to {}, not to {target}",
                    rule.id,
                    allowed.join(", ")
                ),
            );
        }
    }

    fn invariant(&mut self, inv: &Invariant, inst: &Inst<'a>, v: &'a Value) {
        let expr = match &inv.expression {
            Ok(e) => e,
            Err(why) => {
                return self.warn_once(
                    format!("inv {}", inv.key),
                    IssueCode::NotSupported,
                    &inst.loc,
                    format!("constraint {} was not checked: {why}", inv.key),
                );
            }
        };
        let node = Item::Node {
            value: v,
            fhir_type: inst.ty.as_deref().map(|t| Cow::Owned(t.to_owned())),
        };
        let verdict = match expr.evaluate_on(self.resource, node) {
            Ok(items) => match items.as_slice() {
                // An empty result decides nothing; only a false one fails.
                [] => Ok(true),
                [Item::Boolean(b)] => Ok(*b),
                [_] => Ok(true),
                _ => Err(format!("it gave {} items, not one boolean", items.len())),
            },
            Err(e) => Err(e.to_string()),
        };
        match verdict {
            Ok(true) => {}
            Ok(false) if hides_primitives(v) => self.warn_once(
                format!("inv {} {}", inv.key, inst.loc),
                IssueCode::NotSupported,
                &inst.loc,
                format!(
                    "constraint {} ({}) was not judged: {} holds primitives given only by \
                     extensions, which this FHIRPath engine does not see",
                    inv.key, inv.human, inst.loc
                ),
            ),
            Ok(false) => {
                let msg = format!("constraint {} failed: {}", inv.key, inv.human);
                self.report(inv.severity, IssueCode::Invariant, &inst.loc, msg);
            }
            Err(why) => self.warn_once(
                format!("inv {}", inv.key),
                IssueCode::NotSupported,
                &inst.loc,
                format!(
                    "constraint {} ({}) could not be evaluated: {why}",
                    inv.key,
                    expr.source()
                ),
            ),
        }
    }
}

/// Whether a primitive below `v` is given by its `_name` companion alone: the engine sees
/// such an element as absent, so a failed invariant there may be its error, not the data's.
fn hides_primitives(v: &Value) -> bool {
    match v {
        Value::Object(o) => o.iter().any(|(k, x)| {
            k.strip_prefix('_').is_some_and(|name| {
                o.get(name).is_none_or(|val| match (val, x) {
                    (Value::Array(a), Value::Array(c)) => c
                        .iter()
                        .enumerate()
                        .any(|(i, ci)| !ci.is_null() && a.get(i).is_none_or(Value::is_null)),
                    _ => false,
                })
            }) || hides_primitives(x)
        }),
        Value::Array(a) => a.iter().any(hides_primitives),
        _ => false,
    }
}

/// The resource type a literal reference names: `Patient/1`, `http://x/fhir/Patient/1`,
/// `Patient/1/_history/2`. Contained (`#x`) and `urn:` references name none.
fn target_type(reference: &str) -> Option<&str> {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return None;
    }
    let path = reference.split(['?', '#']).next()?;
    let segments: Vec<&str> = path.split('/').collect();
    let n = segments.len();
    let ty = if n >= 4 && segments[n - 2] == "_history" {
        segments[n - 4]
    } else if n >= 2 {
        segments[n - 2]
    } else {
        return None;
    };
    ty.starts_with(|c: char| c.is_ascii_uppercase())
        .then_some(ty)
}

/// How a rule's element is written in locations: `value[x]` as `value`.
fn spelled(rule: &Rule) -> &str {
    rule.name.strip_suffix("[x]").unwrap_or(&rule.name)
}

/// Every occurrence of `rule`'s element in `obj` (at `loc`), in JSON order.
pub(crate) fn collect<'a>(rule: &Rule, obj: &'a Map<String, Value>, loc: &str) -> Vec<Inst<'a>> {
    let mut out = Vec::new();
    if let Some(base) = rule.name.strip_suffix("[x]") {
        for (k, v) in obj {
            let (key, value) = match k.strip_prefix('_') {
                // A companion alone stands for the element; with its value it is taken below.
                Some(key) if !obj.contains_key(key) => (key, None),
                Some(_) => continue,
                None => (k.as_str(), Some(v)),
            };
            let Some(suffix) = key
                .strip_prefix(base)
                .filter(|s| s.starts_with(|c: char| c.is_ascii_uppercase()))
            else {
                continue;
            };
            out.push(Inst {
                value,
                companion: obj.get(&format!("_{key}")),
                loc: format!("{loc}.{key}"),
                ty: Some(type_of_suffix(suffix)),
            });
        }
        return out;
    }
    let name = rule.name.as_str();
    let ty = match rule.types.as_slice() {
        [one] => Some(one.code.clone()),
        _ => None,
    };
    let value = obj.get(name).filter(|v| !v.is_null());
    let companion = obj.get(&format!("_{name}")).filter(|v| !v.is_null());
    match (value, companion) {
        (Some(Value::Array(_)), _) | (None, Some(Value::Array(_))) => {
            let vs = value
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            let cs = companion
                .and_then(Value::as_array)
                .map_or(&[][..], Vec::as_slice);
            for i in 0..vs.len().max(cs.len()) {
                let value = vs.get(i).filter(|v| !v.is_null());
                let companion = cs.get(i).filter(|v| !v.is_null());
                if value.is_some() || companion.is_some() {
                    out.push(Inst {
                        value,
                        companion,
                        loc: format!("{loc}.{name}[{i}]"),
                        ty: ty.clone(),
                    });
                }
            }
        }
        (None, None) => {}
        (value, companion) => out.push(Inst {
            value,
            companion,
            loc: format!("{loc}.{name}"),
            ty,
        }),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::target_type;

    #[test]
    fn reference_targets() {
        assert_eq!(target_type("Patient/1"), Some("Patient"));
        assert_eq!(target_type("http://x/fhir/Patient/1"), Some("Patient"));
        assert_eq!(target_type("Patient/1/_history/2"), Some("Patient"));
        assert_eq!(target_type("#c1"), None);
        assert_eq!(target_type("urn:uuid:0c3151bd"), None);
        assert_eq!(target_type("justanid"), None);
    }
}
