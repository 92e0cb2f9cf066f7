//! Slicing: which slice each occurrence of a sliced element belongs to, by the slicing's
//! discriminators, and then each slice's cardinality and rules.
//!
//! A discriminator this module cannot decide (`profile`, a path with functions, a slice
//! without a fixed or pattern value at the path) falls back to conformance: an occurrence
//! belongs to a slice when it meets that slice's rules without error.

use std::borrow::Cow;

use hds_fhir_model::IssueCode;
use hds_fhirpath::Item;
use serde_json::Value;

use crate::check::{Checker, Inst};
use crate::compile::{Discriminator, DiscriminatorKind, Rule};
use crate::values::{contains, same};

impl<'a> Checker<'a> {
    pub(crate) fn slices(&mut self, rule: &Rule, insts: &[Inst<'a>], here: &str) {
        let closed = rule.slicing.as_ref().is_some_and(|s| s.closed);
        let mut members: Vec<Vec<usize>> = vec![Vec::new(); rule.slices.len()];
        let mut unmatched = Vec::new();
        for (i, inst) in insts.iter().enumerate() {
            match rule
                .slices
                .iter()
                .position(|slice| self.belongs(rule, slice, inst))
            {
                Some(s) => members[s].push(i),
                None => unmatched.push(i),
            }
        }
        for (slice, idx) in rule.slices.iter().zip(&members) {
            self.cardinality(slice, idx.len(), here);
            for &i in idx {
                self.element(slice, &insts[i]);
            }
        }
        if closed {
            for i in unmatched {
                let names: Vec<&str> = rule
                    .slices
                    .iter()
                    .filter_map(|s| s.slice_name.as_deref())
                    .collect();
                let loc = insts[i].loc.clone();
                self.report(
                    hds_fhir_model::Severity::Error,
                    IssueCode::Structure,
                    &loc,
                    format!(
                        "{loc} matches none of the slices of {} ({}), and the slicing is closed",
                        rule.id,
                        names.join(", ")
                    ),
                );
            }
        }
    }

    fn belongs(&mut self, rule: &Rule, slice: &Rule, inst: &Inst<'a>) -> bool {
        let defaults;
        let discriminators: &[Discriminator] = match &rule.slicing {
            Some(s) => &s.discriminators,
            None => {
                defaults = default_discriminators(rule);
                &defaults
            }
        };
        if discriminators.is_empty() {
            return self.conforms(slice, inst);
        }
        for d in discriminators {
            match self.discriminate(d, slice, inst) {
                Some(true) => {}
                Some(false) => return false,
                None => return self.conforms(slice, inst),
            }
        }
        true
    }

    /// Whether `inst` meets the slice's rules without error; nothing is reported.
    fn conforms(&mut self, slice: &Rule, inst: &Inst<'a>) -> bool {
        let mark = self.issues.len();
        self.element(slice, inst);
        let ok = self.issues[mark..]
            .iter()
            .all(|i| i.severity != hds_fhir_model::Severity::Error);
        self.issues.truncate(mark);
        ok
    }

    /// `Some(matches)` when the discriminator decides, `None` when it cannot.
    fn discriminate(&self, d: &Discriminator, slice: &Rule, inst: &Inst<'a>) -> Option<bool> {
        let names = d.names.as_ref()?;
        let target = rule_at(slice, names);
        match d.kind {
            DiscriminatorKind::Value | DiscriminatorKind::Pattern => {
                let (expected, exact) = match target {
                    Some(Rule { fixed: Some(v), .. }) => (Cow::Borrowed(v), true),
                    Some(Rule {
                        pattern: Some(v), ..
                    }) => (Cow::Borrowed(v), false),
                    // An extension slice names its extension by type profile, not by a
                    // fixed url.
                    _ if names.len() == 1 && names[0] == "url" => (
                        Cow::Owned(Value::String(
                            slice.types.first()?.profiles.first()?.clone(),
                        )),
                        true,
                    ),
                    _ => return None,
                };
                let found = self.values_at(d, inst)?;
                Some(found.iter().any(|v| {
                    if exact {
                        same(v, &expected)
                    } else {
                        contains(v, &expected)
                    }
                }))
            }
            DiscriminatorKind::Exists => {
                let t = target?;
                let required = t.min.is_some_and(|m| m > 0);
                let forbidden = t.max == Some(Some(0));
                if required == forbidden {
                    return None;
                }
                let n = self.values_at(d, inst)?.len();
                Some(if required { n > 0 } else { n == 0 })
            }
            DiscriminatorKind::Type => {
                let t = target?;
                if t.types.is_empty() {
                    return None;
                }
                let allowed = |ty: &str| t.types.iter().any(|x| x.code == ty);
                if names.is_empty() {
                    return Some(allowed(inst.ty.as_deref()?));
                }
                let ty = match inst.value?.get(names.last()?) {
                    Some(Value::Object(o)) => o.get("resourceType").and_then(Value::as_str),
                    _ => None,
                }?;
                Some(allowed(ty))
            }
            DiscriminatorKind::Profile => None,
        }
    }

    /// The instance's values at the discriminator's path, as JSON.
    fn values_at(&self, d: &Discriminator, inst: &Inst<'a>) -> Option<Vec<Value>> {
        let expr = d.expression.as_ref()?;
        let Some(v) = inst.value else {
            return Some(Vec::new());
        };
        let node = Item::Node {
            value: v,
            fhir_type: inst.ty.as_deref().map(|t| Cow::Owned(t.to_owned())),
        };
        let items = expr.evaluate_on(self.resource, node).ok()?;
        items
            .into_iter()
            .map(|i| match i {
                Item::Node { value, .. } => Some(value.clone()),
                Item::String(s) => Some(Value::String(s.into_owned())),
                Item::Boolean(b) => Some(Value::Bool(b)),
                Item::Integer(n) => Some(Value::from(n)),
                _ => None,
            })
            .collect()
    }
}

/// The slicing an element has without saying so: extensions by url, choices by type.
fn default_discriminators(rule: &Rule) -> Vec<Discriminator> {
    let (kind, path) = if matches!(rule.name.as_str(), "extension" | "modifierExtension") {
        (DiscriminatorKind::Value, "url")
    } else if rule.name.ends_with("[x]") {
        (DiscriminatorKind::Type, "$this")
    } else {
        return Vec::new();
    };
    vec![Discriminator {
        kind,
        names: Some(if path == "$this" {
            Vec::new()
        } else {
            vec![path.to_owned()]
        }),
        expression: hds_fhirpath::Expression::parse(path).ok(),
    }]
}

/// The rule at dotted `names` below `rule` (`[]` is `rule` itself).
fn rule_at<'r>(rule: &'r Rule, names: &[String]) -> Option<&'r Rule> {
    let mut r = rule;
    for n in names {
        r = r
            .children
            .iter()
            .find(|c| c.name == *n || c.name.strip_suffix("[x]") == Some(n.as_str()))?;
    }
    Some(r)
}
