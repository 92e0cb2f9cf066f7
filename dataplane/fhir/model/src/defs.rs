//! Loads the compact definitions file into index-based lookup tables.
//!
//! Every datatype, resource and inline BackboneElement becomes a [`Complex`] addressed by
//! its index, so recursive structures (Extension.extension, Questionnaire.item.item) are
//! plain integer links and validation never allocates or hashes type names.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;

use crate::primitives::{Primitive, PrimitiveKind};

#[derive(Deserialize)]
struct RawFile {
    primitives: BTreeMap<String, RawPrimitive>,
    types: BTreeMap<String, RawType>,
    #[serde(default, rename = "valueSets")]
    value_sets: Vec<RawValueSet>,
}

#[derive(Deserialize)]
struct RawValueSet {
    url: String,
    include: Vec<RawInclude>,
}

#[derive(Deserialize)]
struct RawInclude {
    system: String,
    codes: Vec<String>,
}

#[derive(Deserialize)]
struct RawPrimitive {
    regex: Option<String>,
    extensible: bool,
}

#[derive(Deserialize)]
struct RawType {
    kind: String,
    #[serde(rename = "abstract")]
    is_abstract: bool,
    elements: Vec<RawElement>,
}

#[derive(Deserialize)]
struct RawElement {
    name: String,
    min: u32,
    /// In the `_summary=true` subset.
    #[serde(default)]
    summary: bool,
    max: RawMax,
    #[serde(default)]
    types: Vec<String>,
    #[serde(rename = "contentReference")]
    content_reference: Option<String>,
    /// Index into `valueSets`: a required binding on a `code` element.
    #[serde(rename = "valueSet")]
    value_set: Option<usize>,
    #[serde(default)]
    elements: Vec<RawElement>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawMax {
    Bounded(u32),
    Unbounded(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TypeRef {
    Primitive(usize),
    Complex(usize),
    /// Any concrete resource, chosen by the value's own `resourceType`.
    Resource,
}

/// One JSON spelling of an element: `status`, or `valueQuantity` for `value[x]`.
#[derive(Debug, Clone)]
pub(crate) struct Form {
    pub key: Box<str>,
    /// `_key`, the property carrying a primitive's id/extension.
    pub ext_key: Box<str>,
    pub ty: TypeRef,
    /// The required ValueSet, set only on `code` forms whose binding we could expand.
    pub value_set: Option<usize>,
}

/// The expansion of one R4 ValueSet: what a binding to it allows.
#[derive(Debug)]
pub struct ValueSet {
    pub(crate) url: Box<str>,
    /// Every code, whatever its system: a `code` element carries no system.
    pub(crate) codes: HashSet<Box<str>>,
    /// Definition order, for diagnostics.
    pub(crate) listed: Vec<Box<str>>,
    /// (system, codes of that system), for Codings, which must match both.
    systems: Vec<(Box<str>, HashSet<Box<str>>)>,
}

impl ValueSet {
    /// The canonical URL, without version.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the ValueSet holds `code`: of `system` when one is given, of any system
    /// otherwise (a `code` element's binding).
    pub fn contains(&self, system: Option<&str>, code: &str) -> bool {
        match system {
            None => self.codes.contains(code),
            Some(system) => self
                .systems
                .iter()
                .any(|(s, codes)| &**s == system && codes.contains(code)),
        }
    }

    /// The code systems the ValueSet draws from, in definition order.
    pub fn systems(&self) -> impl Iterator<Item = &str> {
        self.systems.iter().map(|(s, _)| &**s)
    }

    /// Up to `n` codes in definition order, for messages.
    pub fn first_codes(&self, n: usize) -> impl Iterator<Item = &str> {
        self.listed.iter().take(n).map(|c| &**c)
    }

    /// How many distinct codes it holds.
    pub fn len(&self) -> usize {
        self.listed.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Element {
    /// Spec name, with `[x]` for choices.
    pub name: Box<str>,
    pub min: u32,
    /// `None` means unbounded (`*`).
    pub max: Option<u32>,
    pub choice: bool,
    pub summary: bool,
    pub forms: Vec<Form>,
}

impl Element {
    pub fn repeats(&self) -> bool {
        self.max.is_none_or(|m| m > 1)
    }
}

#[derive(Debug)]
pub(crate) struct Complex {
    /// Type name or element path (`HumanName`, `Patient.contact`), for diagnostics.
    pub name: Box<str>,
    pub elements: Vec<Element>,
    /// JSON property name (without `_`) -> (element index, form index).
    pub keys: HashMap<Box<str>, (usize, usize)>,
    pub required: Vec<usize>,
}

/// What a patch needs to know of an element to write it in the right JSON form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementShape {
    pub repeats: bool,
    pub choice: bool,
}

/// The FHIR definitions used by the validator; obtain the R4 set with [`crate::r4`].
#[derive(Debug)]
pub struct Definitions {
    pub(crate) primitives: Vec<Primitive>,
    pub(crate) complexes: Vec<Complex>,
    pub(crate) value_sets: Vec<ValueSet>,
    /// Resource and complex datatype names -> their complex.
    named_complexes: HashMap<Box<str>, usize>,
    /// ValueSet canonical URL -> index in `value_sets`.
    value_set_urls: HashMap<Box<str>, usize>,
    /// Every resource type, including the abstract Resource and DomainResource.
    pub(crate) resources: HashMap<Box<str>, ResourceDef>,
    concrete_resources: Vec<Box<str>>,
    /// `Element`: the shape of `_name` objects (id + extension) next to primitives.
    pub(crate) element_complex: usize,
}

#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub complex: usize,
    pub is_abstract: bool,
}

impl Definitions {
    /// Whether `name` is a concrete resource type (Resource and DomainResource are not).
    pub fn is_resource_type(&self, name: &str) -> bool {
        self.resources.get(name).is_some_and(|r| !r.is_abstract)
    }

    /// Concrete resource types, sorted.
    pub fn resource_types(&self) -> impl Iterator<Item = &str> {
        self.concrete_resources.iter().map(|s| &**s)
    }

    /// The expansion of the R4 ValueSet at `canonical` (a `|version` suffix is ignored), when
    /// the R4 package enumerates it completely (no filters, no external code systems).
    pub fn value_set(&self, canonical: &str) -> Option<&ValueSet> {
        let url = canonical.split_once('|').map_or(canonical, |(url, _)| url);
        self.value_set_urls.get(url).map(|&i| &self.value_sets[i])
    }

    /// Whether `resource_type` has a top-level element `element`, given either by its spec
    /// name (`identifier`, `effective[x]`, `effective`) or a JSON name (`effectiveDateTime`).
    pub fn resource_has_element(&self, resource_type: &str, element: &str) -> bool {
        let Some(r) = self.resources.get(resource_type) else {
            return false;
        };
        let c = &self.complexes[r.complex];
        c.keys.contains_key(element)
            || c.elements.iter().any(|e| {
                &*e.name == element || (e.choice && e.name.strip_suffix("[x]") == Some(element))
            })
    }

    /// Whether the top-level JSON key `key` of a `resource_type` is in its `_summary=true` subset
    /// (the elements R4 marks isSummary).
    pub fn is_summary_key(&self, resource_type: &str, key: &str) -> bool {
        self.top_element(resource_type, key)
            .is_some_and(|e| e.summary)
    }

    /// Whether the top-level JSON key `key` of a `resource_type` is a mandatory element (min > 0).
    pub fn is_mandatory_key(&self, resource_type: &str, key: &str) -> bool {
        self.top_element(resource_type, key)
            .is_some_and(|e| e.min > 0)
    }

    /// The element of `resource_type` a top-level JSON key (`valueQuantity`, `_birthDate`) is.
    fn top_element(&self, resource_type: &str, key: &str) -> Option<&Element> {
        let r = self.resources.get(resource_type)?;
        let key = key.strip_prefix('_').unwrap_or(key);
        self.complexes[r.complex]
            .elements
            .iter()
            .find(|e| e.forms.iter().any(|f| &*f.key == key))
    }

    /// Shape of the child `name` under a dotted JSON path such as `Patient.contact.name`
    /// (a resource or complex datatype, then JSON keys; indexes left out): whether it repeats,
    /// and whether it is a choice element (`value[x]`). `name` may be a spec name or a JSON
    /// key. `None` when the path does not resolve, e.g. below a resource-typed element.
    pub fn element_shape(&self, parent_path: &str, name: &str) -> Option<ElementShape> {
        let mut segments = parent_path.split('.');
        let mut complex = &self.complexes[*self.named_complexes.get(segments.next()?)?];
        for key in segments {
            let &(e, f) = complex.keys.get(key)?;
            match complex.elements[e].forms[f].ty {
                TypeRef::Complex(c) => complex = &self.complexes[c],
                TypeRef::Primitive(_) | TypeRef::Resource => return None,
            }
        }
        let element = match complex.keys.get(name) {
            Some(&(e, _)) => &complex.elements[e],
            None => complex.elements.iter().find(|e| {
                &*e.name == name || (e.choice && e.name.strip_suffix("[x]") == Some(name))
            })?,
        };
        Some(ElementShape {
            repeats: element.repeats(),
            choice: element.choice,
        })
    }

    pub(crate) fn from_json(text: &str) -> Result<Self, String> {
        let raw: RawFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let mut b = Builder {
            value_sets: raw.value_sets.len(),
            ..Builder::default()
        };
        for (name, p) in &raw.primitives {
            let kind = PrimitiveKind::from_name(name)
                .ok_or_else(|| format!("unknown primitive {name}"))?;
            b.primitive_ids.insert(name.clone(), b.primitives.len());
            b.primitives
                .push(Primitive::new(kind, p.regex.as_deref(), p.extensible)?);
        }
        // Reserve ids for all named types first: element types refer to each other freely.
        for name in raw.types.keys() {
            b.type_ids.insert(name.clone(), b.complexes.len());
            b.complexes.push(empty_complex(name));
        }
        let mut resources: HashMap<Box<str>, ResourceDef> = HashMap::new();
        for (name, t) in &raw.types {
            let id = b.type_ids[name];
            b.fill(id, name, &t.elements)?;
            if t.kind == "resource" {
                resources.insert(
                    name.as_str().into(),
                    ResourceDef {
                        complex: id,
                        is_abstract: t.is_abstract,
                    },
                );
            }
        }
        b.resolve_content_references()?;
        let mut concrete_resources: Vec<Box<str>> = resources
            .iter()
            .filter(|(_, r)| !r.is_abstract)
            .map(|(n, _)| n.clone())
            .collect();
        concrete_resources.sort();
        let element_complex = *b.type_ids.get("Element").ok_or("no Element type")?;
        let value_sets: Vec<ValueSet> = raw.value_sets.into_iter().map(value_set).collect();
        let value_set_urls = value_sets
            .iter()
            .enumerate()
            .map(|(i, v)| (v.url.clone(), i))
            .collect();
        Ok(Definitions {
            primitives: b.primitives,
            complexes: b.complexes,
            value_sets,
            value_set_urls,
            named_complexes: b
                .type_ids
                .iter()
                .map(|(n, &i)| (n.as_str().into(), i))
                .collect(),
            resources,
            concrete_resources,
            element_complex,
        })
    }
}

fn value_set(raw: RawValueSet) -> ValueSet {
    let mut codes = HashSet::new();
    let mut listed = Vec::new();
    let mut systems = Vec::with_capacity(raw.include.len());
    for inc in raw.include {
        for code in &inc.codes {
            if codes.insert(Box::<str>::from(code.as_str())) {
                listed.push(code.as_str().into());
            }
        }
        let of_system = inc.codes.into_iter().map(Into::into).collect();
        systems.push((inc.system.into(), of_system));
    }
    ValueSet {
        url: raw.url.into(),
        codes,
        listed,
        systems,
    }
}

fn empty_complex(name: &str) -> Complex {
    Complex {
        name: name.into(),
        elements: Vec::new(),
        keys: HashMap::new(),
        required: Vec::new(),
    }
}

#[derive(Default)]
struct Builder {
    primitives: Vec<Primitive>,
    primitive_ids: HashMap<String, usize>,
    complexes: Vec<Complex>,
    type_ids: HashMap<String, usize>,
    /// Path of every element -> (complex, element index), for contentReference targets.
    element_paths: HashMap<String, (usize, usize)>,
    /// (complex, element index, target path) still to be resolved.
    pending_refs: Vec<(usize, usize, String)>,
    /// Number of value sets, to reject dangling `valueSet` indexes at load time.
    value_sets: usize,
}

impl Builder {
    fn fill(&mut self, id: usize, path: &str, raw: &[RawElement]) -> Result<(), String> {
        let mut elements = Vec::with_capacity(raw.len());
        for (idx, r) in raw.iter().enumerate() {
            let el_path = format!("{path}.{}", r.name);
            self.element_paths.insert(el_path.clone(), (id, idx));
            let max = match &r.max {
                RawMax::Bounded(n) => Some(*n),
                RawMax::Unbounded(s) if s == "*" => None,
                RawMax::Unbounded(s) => return Err(format!("{el_path}: bad max {s}")),
            };
            let (base, choice) = match r.name.strip_suffix("[x]") {
                Some(base) => (base, true),
                None => (r.name.as_str(), false),
            };
            if let Some(vs) = r.value_set
                && vs >= self.value_sets
            {
                return Err(format!("{el_path}: valueSet {vs} out of range"));
            }
            let mut forms = Vec::new();
            if let Some(target) = &r.content_reference {
                self.pending_refs.push((id, idx, target.clone()));
            } else {
                if !choice && r.types.len() != 1 {
                    return Err(format!(
                        "{el_path}: {} types on a non-choice element",
                        r.types.len()
                    ));
                }
                for code in &r.types {
                    let ty = if !r.elements.is_empty() {
                        // Inline BackboneElement/Element: its children define a new complex.
                        let child = self.complexes.len();
                        self.complexes.push(empty_complex(&el_path));
                        self.fill(child, &el_path, &r.elements)?;
                        TypeRef::Complex(child)
                    } else {
                        self.type_ref(code)
                            .ok_or_else(|| format!("{el_path}: unknown type {code}"))?
                    };
                    let key = if choice {
                        format!("{base}{}", upper_first(code))
                    } else {
                        base.to_string()
                    };
                    let is_code = matches!(ty, TypeRef::Primitive(p)
                        if self.primitives[p].kind == PrimitiveKind::Code);
                    forms.push(Form {
                        ext_key: format!("_{key}").into(),
                        key: key.into(),
                        ty,
                        value_set: r.value_set.filter(|_| is_code),
                    });
                }
            }
            elements.push(Element {
                name: r.name.as_str().into(),
                min: r.min,
                max,
                choice,
                summary: r.summary,
                forms,
            });
        }
        let c = &mut self.complexes[id];
        c.required = elements
            .iter()
            .enumerate()
            .filter(|(_, e)| e.min > 0)
            .map(|(i, _)| i)
            .collect();
        c.elements = elements;
        rebuild_keys(c);
        Ok(())
    }

    fn type_ref(&self, code: &str) -> Option<TypeRef> {
        if code == "Resource" {
            return Some(TypeRef::Resource);
        }
        if let Some(&p) = self.primitive_ids.get(code) {
            return Some(TypeRef::Primitive(p));
        }
        self.type_ids.get(code).map(|&c| TypeRef::Complex(c))
    }

    fn resolve_content_references(&mut self) -> Result<(), String> {
        for (id, idx, target) in std::mem::take(&mut self.pending_refs) {
            let &(tc, ti) = self
                .element_paths
                .get(&target)
                .ok_or_else(|| format!("unresolved contentReference {target}"))?;
            let target_el = &self.complexes[tc].elements[ti];
            let (forms, choice) = (target_el.forms.clone(), target_el.choice);
            let target_base = target_el.name.trim_end_matches("[x]").len();
            if forms.is_empty() {
                return Err(format!(
                    "contentReference {target} points at an untyped element"
                ));
            }
            let c = &mut self.complexes[id];
            let el = &mut c.elements[idx];
            // The referencing element keeps its own name; only the type is borrowed.
            el.forms = if choice {
                let base = el.name.trim_end_matches("[x]").to_string();
                forms
                    .into_iter()
                    .map(|f| {
                        let key = format!("{base}{}", &f.key[target_base..]);
                        Form {
                            ext_key: format!("_{key}").into(),
                            key: key.into(),
                            ty: f.ty,
                            value_set: f.value_set,
                        }
                    })
                    .collect()
            } else {
                forms
                    .into_iter()
                    .map(|f| Form {
                        ext_key: format!("_{}", el.name).into(),
                        key: el.name.clone(),
                        ty: f.ty,
                        value_set: f.value_set,
                    })
                    .collect()
            };
            el.choice = choice;
            rebuild_keys(c);
        }
        Ok(())
    }
}

fn rebuild_keys(c: &mut Complex) {
    c.keys = c
        .elements
        .iter()
        .enumerate()
        .flat_map(|(ei, e)| {
            e.forms
                .iter()
                .enumerate()
                .map(move |(fi, f)| (f.key.clone(), (ei, fi)))
        })
        .collect();
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
        .unwrap_or_default()
}
