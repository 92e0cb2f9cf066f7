//! Structural validation of FHIR JSON against the definitions.
//!
//! The walk keeps one path buffer and one scratch stack for the whole resource, so the only
//! allocations on a valid resource are the buffer growths; expressions are rendered only
//! when an issue is reported.

use serde_json::{Map, Value};

use crate::defs::{Complex, Definitions, Element, Form, TypeRef, ValueSet};
use crate::primitives::describe;
use crate::{Issue, IssueCode, Severity};

impl Definitions {
    /// Validates one resource in FHIR JSON form. An empty result means it is valid.
    pub fn validate(&self, resource: &Value) -> Vec<Issue> {
        let mut v = Validator {
            defs: self,
            issues: Vec::new(),
            path: String::with_capacity(128),
            seen: Vec::new(),
        };
        v.resource(resource, true);
        v.issues
    }
}

struct Validator<'d> {
    defs: &'d Definitions,
    issues: Vec<Issue>,
    path: String,
    /// (element, form) pairs present in the objects currently being walked, stacked so
    /// each object sees only its own slice.
    seen: Vec<(usize, usize)>,
}

impl<'d> Validator<'d> {
    fn report(&mut self, code: IssueCode, diagnostics: String) {
        self.report_at(Severity::Error, code, self.path.clone(), diagnostics);
    }

    fn report_at(
        &mut self,
        severity: Severity,
        code: IssueCode,
        expression: String,
        diagnostics: String,
    ) {
        self.issues.push(Issue {
            severity,
            code,
            expression,
            diagnostics,
        });
    }

    fn child_path(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_string()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Validates a whole resource at the current path (empty for the root).
    fn resource(&mut self, value: &Value, root: bool) {
        let severity = if root {
            Severity::Fatal
        } else {
            Severity::Error
        };
        let Some(obj) = value.as_object() else {
            let expr = if root {
                "$this".to_string()
            } else {
                self.path.clone()
            };
            self.report_at(
                severity,
                IssueCode::Invalid,
                expr,
                format!(
                    "expected a resource (JSON object), found {}",
                    describe(value)
                ),
            );
            return;
        };
        let rt = match obj.get("resourceType") {
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                let (expr, d) = (
                    self.child_path("resourceType"),
                    format!("resourceType must be a string, found {}", describe(other)),
                );
                self.report_at(severity, IssueCode::Invalid, expr, d);
                return;
            }
            None => {
                let (expr, d) = (
                    self.child_path("resourceType"),
                    "missing resourceType: a resource must name its type".to_string(),
                );
                self.report_at(severity, IssueCode::Invalid, expr, d);
                return;
            }
        };
        let Some(def) = self.defs.resources.get(rt).filter(|r| !r.is_abstract) else {
            let why = if self.defs.resources.contains_key(rt) {
                "is abstract"
            } else {
                "is not a FHIR R4 resource type"
            };
            let (expr, d) = (
                self.child_path("resourceType"),
                format!("resourceType '{rt}' {why}"),
            );
            self.report_at(severity, IssueCode::Invalid, expr, d);
            return;
        };
        let mark = self.path.len();
        if root {
            self.path.push_str(rt);
        } else {
            self.path.push_str(".ofType(");
            self.path.push_str(rt);
            self.path.push(')');
        }
        self.object(obj, def.complex, true);
        self.path.truncate(mark);
    }

    /// Validates the properties of an object against a complex type or backbone element.
    fn object(&mut self, obj: &Map<String, Value>, cid: usize, resource_root: bool) {
        let defs = self.defs;
        let complex = &defs.complexes[cid];
        if obj.is_empty() {
            self.report(
                IssueCode::Structure,
                "empty objects are not allowed in FHIR JSON; omit the element instead".into(),
            );
            return;
        }
        let start = self.seen.len();
        for (key, val) in obj {
            if resource_root && key == "resourceType" {
                continue;
            }
            let (is_ext, base) = match key.strip_prefix('_') {
                Some(b) => (true, b),
                None => (false, key.as_str()),
            };
            let Some(&(ei, fi)) = complex.keys.get(base) else {
                self.unknown(complex, key);
                continue;
            };
            let el = &complex.elements[ei];
            let form = &el.forms[fi];
            let prim = match form.ty {
                TypeRef::Primitive(p) => Some(&defs.primitives[p]),
                _ => None,
            };
            if is_ext {
                if !prim.is_some_and(|p| p.extensible) {
                    self.unknown(complex, key);
                    continue;
                }
                // With a value present, `_key` is checked together with it.
                if obj.contains_key(base) {
                    continue;
                }
            }
            self.seen.push((ei, fi));
            let mark = self.path.len();
            self.path.push('.');
            self.path.push_str(&form.key);
            match form.ty {
                TypeRef::Primitive(p) => {
                    let ext = if is_ext {
                        Some(val)
                    } else {
                        obj.get(&*form.ext_key)
                    };
                    let ext = ext.filter(|_| defs.primitives[p].extensible);
                    self.primitive_element(el, form, p, (!is_ext).then_some(val), ext);
                }
                TypeRef::Complex(c) => self.complex_element(el, &form.key, val, Some(c)),
                TypeRef::Resource => self.complex_element(el, &form.key, val, None),
            }
            self.path.truncate(mark);
        }
        self.check_presence(complex, start);
        self.seen.truncate(start);
    }

    fn unknown(&mut self, complex: &Complex, key: &str) {
        let hint = if key == "resourceType" {
            "; resourceType is only allowed at the root of a resource"
        } else {
            ""
        };
        let expr = self.child_path(key);
        self.report_at(
            Severity::Error,
            IssueCode::Structure,
            expr,
            format!("unknown element '{key}' in {}{hint}", complex.name),
        );
    }

    /// Required elements and the one-form-per-choice rule, over this object's `seen` slice.
    fn check_presence(&mut self, complex: &Complex, start: usize) {
        for &ei in &complex.required {
            if !self.seen[start..].iter().any(|&(e, _)| e == ei) {
                let el = &complex.elements[ei];
                let expr = self.child_path(el.name.trim_end_matches("[x]"));
                self.report_at(
                    Severity::Error,
                    IssueCode::Required,
                    expr,
                    format!(
                        "missing required element '{}' (min {}) in {}",
                        el.name, el.min, complex.name
                    ),
                );
            }
        }
        for i in start..self.seen.len() {
            let (ei, fi) = self.seen[i];
            let el = &complex.elements[ei];
            // Report each conflicting element once, at its first form.
            if !el.choice || self.seen[start..i].iter().any(|&(e, _)| e == ei) {
                continue;
            }
            let forms: Vec<&str> = self.seen[i..]
                .iter()
                .filter(|&&(e, _)| e == ei)
                .map(|&(_, f)| &*el.forms[f].key)
                .collect();
            if forms.len() > 1 {
                let expr = self.child_path(&el.forms[fi].key);
                self.report_at(
                    Severity::Error,
                    IssueCode::Structure,
                    expr,
                    format!(
                        "choice element '{}' has several forms ({}); only one is allowed",
                        el.name,
                        forms.join(", ")
                    ),
                );
            }
        }
    }

    /// Shape checks shared by all element kinds: single vs. array, empties, max.
    /// Returns the items to validate, or `None` when the shape is already wrong.
    fn items<'v>(&mut self, el: &Element, key: &str, val: &'v Value) -> Option<&'v [Value]> {
        if el.max == Some(0) {
            self.report(
                IssueCode::Structure,
                format!("element '{key}' is not allowed here (max 0)"),
            );
            return None;
        }
        match (el.repeats(), val) {
            (true, Value::Array(a)) if a.is_empty() => {
                self.report(
                    IssueCode::Structure,
                    format!("'{key}' is an empty array; omit the element instead"),
                );
                None
            }
            (true, Value::Array(a)) => {
                if let Some(max) = el.max
                    && a.len() > max as usize
                {
                    self.report(
                        IssueCode::Structure,
                        format!("'{key}' has {} items but allows at most {max}", a.len()),
                    );
                }
                Some(a)
            }
            (true, other) => {
                self.report(
                    IssueCode::Structure,
                    format!(
                        "'{key}' repeats (max {}) and must be a JSON array, found {}",
                        max_str(el),
                        describe(other)
                    ),
                );
                None
            }
            (false, Value::Array(_)) => {
                self.report(
                    IssueCode::Structure,
                    format!("'{key}' has max cardinality 1 and must not be an array"),
                );
                None
            }
            (false, v) => Some(std::slice::from_ref(v)),
        }
    }

    /// A complex-typed element (`ty` = Some) or a Resource-typed one (`ty` = None).
    fn complex_element(&mut self, el: &Element, key: &str, val: &Value, ty: Option<usize>) {
        let Some(items) = self.items(el, key, val) else {
            return;
        };
        let repeats = el.repeats();
        for (i, item) in items.iter().enumerate() {
            let mark = self.path.len();
            if repeats {
                push_index(&mut self.path, i);
            }
            match (ty, item) {
                (None, _) => self.resource(item, false),
                (Some(c), Value::Object(o)) => self.object(o, c, false),
                (Some(c), other) => {
                    let d = format!(
                        "expected a JSON object for {}, found {}",
                        self.defs.complexes[c].name,
                        describe(other)
                    );
                    self.report(IssueCode::Structure, d);
                }
            }
            self.path.truncate(mark);
        }
    }

    /// A primitive element given as `key` and/or `_key` (id + extensions).
    fn primitive_element(
        &mut self,
        el: &Element,
        form: &Form,
        p: usize,
        val: Option<&Value>,
        ext: Option<&Value>,
    ) {
        if !el.repeats() {
            if let Some(v) = val
                && self.items(el, &form.key, v).is_some()
            {
                self.primitive_value(p, v, form.value_set);
            }
            if let Some(e) = ext {
                if e.is_array() {
                    self.report(
                        IssueCode::Structure,
                        format!(
                            "'{}' has max cardinality 1 and must not be an array",
                            form.ext_key
                        ),
                    );
                } else {
                    self.primitive_extension(e, &form.ext_key);
                }
            }
            return;
        }
        let values = match val {
            Some(v) => match self.items(el, &form.key, v) {
                Some(a) => Some(a),
                None => return,
            },
            None => None,
        };
        let exts = match ext {
            Some(e) => match self.items(el, &form.ext_key, e) {
                Some(a) => Some(a),
                None => return,
            },
            None => None,
        };
        if let (Some(v), Some(e)) = (values, exts)
            && v.len() != e.len()
        {
            self.report(
                IssueCode::Structure,
                format!(
                    "'{}' ({} items) and '{}' ({} items) must have the same length",
                    form.key,
                    v.len(),
                    form.ext_key,
                    e.len()
                ),
            );
            return;
        }
        let len = values.or(exts).map_or(0, <[Value]>::len);
        for i in 0..len {
            let mark = self.path.len();
            push_index(&mut self.path, i);
            let v = values.map(|a| &a[i]).filter(|v| !v.is_null());
            let e = exts.map(|a| &a[i]).filter(|e| !e.is_null());
            if v.is_none() && e.is_none() {
                let d = format!(
                    "null is only allowed in '{}' where '{}' has an entry at the same index",
                    form.key, form.ext_key
                );
                self.report(IssueCode::Structure, d);
            }
            if let Some(v) = v {
                self.primitive_value(p, v, form.value_set);
            }
            if let Some(e) = e {
                self.primitive_extension(e, &form.ext_key);
            }
            self.path.truncate(mark);
        }
    }

    fn primitive_value(&mut self, p: usize, v: &Value, value_set: Option<usize>) {
        let prim = &self.defs.primitives[p];
        if matches!(v, Value::Object(_) | Value::Array(_) | Value::Null) {
            let d = format!(
                "expected a JSON {} for FHIR {}, found {}",
                prim.json_kind_name(),
                prim.name(),
                describe(v)
            );
            self.report(IssueCode::Structure, d);
            return;
        }
        if let Err((code, d)) = prim.check(v) {
            self.report(code, d);
            return;
        }
        if let (Some(vs), Value::String(code)) = (value_set, v) {
            let vs = &self.defs.value_sets[vs];
            if !vs.codes.contains(code.as_str()) {
                let d = not_in_value_set(code, vs);
                self.report(IssueCode::CodeInvalid, d);
            }
        }
    }

    /// The `_key` object: only `id` and `extension`, like `Element`.
    fn primitive_extension(&mut self, e: &Value, ext_key: &str) {
        match e {
            Value::Object(o) => self.object(o, self.defs.element_complex, false),
            other => {
                let d = format!(
                    "'{ext_key}' must be a JSON object with id/extension, found {}",
                    describe(other)
                );
                self.report(IssueCode::Structure, d);
            }
        }
    }
}

/// Lists the allowed codes when they are few enough to read.
fn not_in_value_set(code: &str, vs: &ValueSet) -> String {
    let allowed = if vs.listed.len() <= 10 {
        vs.listed.join(", ")
    } else {
        format!("{} codes", vs.listed.len())
    };
    format!(
        "'{code}' is not in the required value set {} ({allowed})",
        vs.url
    )
}

fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write;
    let _ = write!(path, "[{i}]");
}

fn max_str(el: &Element) -> String {
    el.max.map_or_else(|| "*".to_string(), |m| m.to_string())
}
