//! FHIRPath Patch (FHIR R4 `fhirpatch.html`): a `Parameters` resource whose `operation`
//! parameters add, insert, delete, replace or move elements addressed by FHIRPath.

use serde_json::{Map, Value};

use crate::PatchError;
use crate::element_info::{DefaultElementInfo, ElementInfo};
use crate::path::{self, Path, Step};

/// Applies a FHIRPath Patch using [`DefaultElementInfo`] for cardinality guesses.
pub fn apply_fhirpath_patch(resource: &mut Value, parameters: &Value) -> Result<(), PatchError> {
    apply_fhirpath_patch_with(resource, parameters, &DefaultElementInfo)
}

/// Applies a FHIRPath Patch, asking `info` whether added elements repeat or are choices.
/// The whole document is validated before anything is applied, and operations run on a
/// copy, so on any error `resource` is unchanged.
pub fn apply_fhirpath_patch_with(
    resource: &mut Value,
    parameters: &Value,
    info: &dyn ElementInfo,
) -> Result<(), PatchError> {
    let ops = parse_parameters(parameters)?;
    let mut work = resource.clone();
    for op in &ops {
        apply_op(&mut work, op, info)?;
    }
    *resource = work;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Document parsing

#[derive(Debug)]
struct Op {
    /// `Parameters.parameter[i]`, reported with errors.
    expr: String,
    path_text: String,
    path: Path,
    kind: OpKind,
}

#[derive(Debug)]
enum OpKind {
    Add { name: String, value: ValueSrc },
    Insert { index: usize, value: ValueSrc },
    Delete,
    Replace { value: ValueSrc },
    Move { source: usize, destination: usize },
}

/// A value to write, kept unmaterialised because repeating/choice decisions for parts
/// depend on where it lands.
#[derive(Debug)]
enum ValueSrc {
    /// A `value[x]` (with its type suffix, e.g. `Date`) or `resource` (no suffix).
    Typed {
        suffix: Option<String>,
        value: Value,
    },
    /// Nested `part`s naming the children of a complex value.
    Parts(Vec<(String, ValueSrc)>),
}

fn parse_parameters(doc: &Value) -> Result<Vec<Op>, PatchError> {
    let obj = doc
        .as_object()
        .ok_or_else(|| PatchError::invalid("FHIRPath Patch must be a Parameters resource", None))?;
    if obj.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
        return Err(PatchError::invalid(
            "FHIRPath Patch must be a Parameters resource (resourceType 'Parameters')",
            Some("Parameters".into()),
        ));
    }
    let params = match obj.get("parameter") {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => {
            return Err(PatchError::invalid(
                "Parameters has no 'operation' parameter",
                Some("Parameters.parameter".into()),
            ));
        }
    };
    params
        .iter()
        .enumerate()
        .map(|(i, p)| parse_operation(p, format!("Parameters.parameter[{i}]")))
        .collect()
}

fn parse_operation(param: &Value, expr: String) -> Result<Op, PatchError> {
    let invalid = |msg: String| PatchError::invalid(msg, Some(expr.clone()));
    if param.get("name").and_then(Value::as_str) != Some("operation") {
        return Err(invalid("each parameter must be named 'operation'".into()));
    }
    let parts = param
        .get("part")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("operation has no parts".into()))?;

    let mut found: Vec<(&str, usize, &Value)> = Vec::new();
    for (j, part) in parts.iter().enumerate() {
        let name = part.get("name").and_then(Value::as_str).ok_or_else(|| {
            PatchError::invalid("part has no name", Some(format!("{expr}.part[{j}]")))
        })?;
        if !matches!(
            name,
            "type" | "path" | "name" | "value" | "index" | "source" | "destination"
        ) {
            return Err(PatchError::invalid(
                format!("unknown operation part '{name}'"),
                Some(format!("{expr}.part[{j}]")),
            ));
        }
        if found.iter().any(|(n, _, _)| *n == name) {
            return Err(PatchError::invalid(
                format!("part '{name}' is repeated"),
                Some(format!("{expr}.part[{j}]")),
            ));
        }
        found.push((name, j, part));
    }
    let get = |name: &str| {
        found
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, j, p)| (*j, *p))
    };
    let required = |name: &str, ty: &str| {
        get(name).ok_or_else(|| invalid(format!("a '{ty}' operation requires the '{name}' part")))
    };
    let string_of = |name: &str, ty: &str| -> Result<String, PatchError> {
        let (j, part) = required(name, ty)?;
        primitive(part)
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| {
                PatchError::invalid(
                    format!("part '{name}' needs a string value"),
                    Some(format!("{expr}.part[{j}]")),
                )
            })
    };
    let index_of = |name: &str, ty: &str| -> Result<usize, PatchError> {
        let (j, part) = required(name, ty)?;
        primitive(part)
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| {
                PatchError::invalid(
                    format!("part '{name}' needs a non-negative integer value"),
                    Some(format!("{expr}.part[{j}]")),
                )
            })
    };
    let value_of = |ty: &str| -> Result<ValueSrc, PatchError> {
        let (j, part) = required("value", ty)?;
        value_src(part, &format!("{expr}.part[{j}]"))
    };

    let ty = string_of("type", "any")?;
    let path_text = string_of("path", &ty)?;
    let kind = match ty.as_str() {
        "add" => OpKind::Add {
            name: string_of("name", "add")?,
            value: value_of("add")?,
        },
        "insert" => OpKind::Insert {
            index: index_of("index", "insert")?,
            value: value_of("insert")?,
        },
        "delete" => OpKind::Delete,
        "replace" => OpKind::Replace {
            value: value_of("replace")?,
        },
        "move" => OpKind::Move {
            source: index_of("source", "move")?,
            destination: index_of("destination", "move")?,
        },
        other => {
            return Err(invalid(format!(
                "unknown operation type '{other}' (expected add, insert, delete, replace or move)"
            )));
        }
    };
    let path = path::parse(&path_text).map_err(|e| invalid(format!("path '{path_text}': {e}")))?;
    if matches!(kind, OpKind::Insert { .. } | OpKind::Move { .. })
        && path.split_last_child().is_none()
    {
        return Err(invalid(format!(
            "path '{path_text}' must end with the name of the list to {ty} into"
        )));
    }
    Ok(Op {
        expr,
        path_text,
        path,
        kind,
    })
}

/// The single `value[x]` of a part, if it has one.
fn typed_value(part: &Value) -> Result<Option<(String, &Value)>, String> {
    let Some(obj) = part.as_object() else {
        return Err("part must be an object".into());
    };
    let mut found = None;
    for (k, v) in obj {
        if let Some(suffix) = k.strip_prefix("value")
            && suffix.starts_with(|c: char| c.is_ascii_uppercase())
        {
            if found.is_some() {
                return Err("part has more than one value[x]".into());
            }
            found = Some((suffix.to_string(), v));
        }
    }
    Ok(found)
}

fn primitive(part: &Value) -> Option<&Value> {
    typed_value(part).ok().flatten().map(|(_, v)| v)
}

fn value_src(part: &Value, expr: &str) -> Result<ValueSrc, PatchError> {
    let invalid = |msg: String| PatchError::invalid(msg, Some(expr.to_string()));
    let typed = typed_value(part).map_err(invalid)?;
    let resource = part.get("resource");
    let parts = part.get("part");
    match (typed, resource, parts) {
        (Some((suffix, v)), None, None) => Ok(ValueSrc::Typed {
            suffix: Some(suffix),
            value: v.clone(),
        }),
        (None, Some(r), None) => Ok(ValueSrc::Typed {
            suffix: None,
            value: r.clone(),
        }),
        (None, None, Some(Value::Array(children))) => {
            let mut out = Vec::with_capacity(children.len());
            for (j, child) in children.iter().enumerate() {
                let child_expr = format!("{expr}.part[{j}]");
                let name = child.get("name").and_then(Value::as_str).ok_or_else(|| {
                    PatchError::invalid("value part has no name", Some(child_expr.clone()))
                })?;
                out.push((name.to_string(), value_src(child, &child_expr)?));
            }
            Ok(ValueSrc::Parts(out))
        }
        (None, None, None) => Err(invalid(
            "value has neither value[x], resource nor part".into(),
        )),
        _ => Err(invalid(
            "value must have exactly one of value[x], resource or part".into(),
        )),
    }
}

/// Builds the JSON for a value landing at `elem_path`; returns its type suffix if known.
fn materialize(src: &ValueSrc, elem_path: &str, info: &dyn ElementInfo) -> (Value, Option<String>) {
    match src {
        ValueSrc::Typed { suffix, value } => (value.clone(), suffix.clone()),
        ValueSrc::Parts(children) => {
            let mut obj = Map::new();
            for (name, child) in children {
                let child_path = format!("{elem_path}.{name}");
                let (value, suffix) = materialize(child, &child_path, info);
                let base = name.strip_suffix("[x]").unwrap_or(name);
                let key = choice_key(base, name != base, elem_path, suffix.as_deref(), info);
                let repeating = info.is_repeating(elem_path, base) == Some(true);
                match obj.get_mut(&key) {
                    Some(Value::Array(items)) => items.push(value),
                    Some(existing) => {
                        let first = existing.take();
                        *existing = Value::Array(vec![first, value]);
                    }
                    None if repeating => {
                        obj.insert(key, Value::Array(vec![value]));
                    }
                    None => {
                        obj.insert(key, value);
                    }
                }
            }
            (Value::Object(obj), None)
        }
    }
}

/// The JSON key for `name`: `base + Type` when it is a choice element and the type is known.
fn choice_key(
    base: &str,
    explicit: bool,
    parent_path: &str,
    suffix: Option<&str>,
    info: &dyn ElementInfo,
) -> String {
    match suffix {
        Some(s) if explicit || info.is_choice(parent_path, base) == Some(true) => {
            let mut chars = s.chars();
            let upper: String = chars
                .next()
                .map(|c| c.to_ascii_uppercase())
                .into_iter()
                .chain(chars)
                .collect();
            format!("{base}{upper}")
        }
        _ => base.to_string(),
    }
}

// ---------------------------------------------------------------------------------------
// Application

fn apply_op(root: &mut Value, op: &Op, info: &dyn ElementInfo) -> Result<(), PatchError> {
    let unprocessable = |msg: String| PatchError::unprocessable(msg, Some(op.expr.clone()));
    let invalid = |msg: String| PatchError::invalid(msg, Some(op.expr.clone()));
    let single = |path: &Path,
                  what: &str|
     -> Result<(Vec<Step>, String, Option<String>, bool), PatchError> {
        let nodes = path::evaluate(path, root)
            .map_err(|e| invalid(format!("path '{}': {e}", op.path_text)))?;
        match nodes.as_slice() {
            [n] => Ok((
                n.loc.clone(),
                n.elem_path.clone(),
                n.choice_type.clone(),
                n.value.is_object(),
            )),
            [] => Err(unprocessable(format!(
                "{what} '{}' matches no element",
                op.path_text
            ))),
            many => Err(unprocessable(format!(
                "{what} '{}' matches {} elements; exactly one is required",
                op.path_text,
                many.len()
            ))),
        }
    };

    match &op.kind {
        OpKind::Add { name, value } => {
            let (loc, parent_path, _, is_object) = single(&op.path, "path")?;
            if !is_object {
                return Err(unprocessable(format!(
                    "path '{}' is a primitive; cannot add '{name}' to it",
                    op.path_text
                )));
            }
            let base = name.strip_suffix("[x]").unwrap_or(name);
            let (value, suffix) = materialize(value, &format!("{parent_path}.{base}"), info);
            if name != base && suffix.is_none() {
                return Err(invalid(format!(
                    "adding choice element '{name}' needs a typed value[x]"
                )));
            }
            let key = choice_key(base, name != base, &parent_path, suffix.as_deref(), info);
            let repeating = info.is_repeating(&parent_path, base);
            let parent = get_mut(root, &loc)
                .and_then(Value::as_object_mut)
                .expect("located object");
            if key != base && parent.keys().any(|k| k != &key && is_choice_of(k, base)) {
                return Err(unprocessable(format!(
                    "choice element '{base}[x]' already has a value"
                )));
            }
            match parent.get_mut(&key) {
                Some(Value::Array(items)) => items.push(value),
                Some(Value::Null) | None => {
                    let v = if repeating == Some(true) {
                        Value::Array(vec![value])
                    } else {
                        value
                    };
                    parent.insert(key, v);
                }
                Some(existing) if repeating == Some(true) => {
                    let first = existing.take();
                    *existing = Value::Array(vec![first, value]);
                }
                Some(_) => {
                    return Err(unprocessable(format!(
                        "'{key}' already has a value and is not repeating; use replace"
                    )));
                }
            }
            Ok(())
        }
        OpKind::Insert { index, value } => {
            let (list_parent, name) = op.path.split_last_child().expect("validated at parse time");
            let (loc, parent_path, _, is_object) = single(&list_parent, "parent of")?;
            if !is_object {
                return Err(unprocessable(format!("'{}' is not a list", op.path_text)));
            }
            let (value, _) = materialize(value, &format!("{parent_path}.{name}"), info);
            let parent = get_mut(root, &loc)
                .and_then(Value::as_object_mut)
                .expect("located object");
            match parent.get_mut(name) {
                Some(Value::Array(items)) if *index <= items.len() => items.insert(*index, value),
                Some(Value::Array(items)) => {
                    return Err(unprocessable(format!(
                        "index {index} is out of range for '{}' ({} elements)",
                        op.path_text,
                        items.len()
                    )));
                }
                None | Some(Value::Null) if *index == 0 => {
                    parent.insert(name.to_string(), Value::Array(vec![value]));
                }
                None | Some(Value::Null) => {
                    return Err(unprocessable(format!(
                        "index {index} is out of range for '{}' (0 elements)",
                        op.path_text
                    )));
                }
                Some(_) => return Err(unprocessable(format!("'{}' is not a list", op.path_text))),
            }
            if let Some(Value::Array(ext)) = parent.get_mut(&format!("_{name}"))
                && *index <= ext.len()
            {
                ext.insert(*index, Value::Null);
            }
            Ok(())
        }
        OpKind::Delete => {
            let nodes = path::evaluate(&op.path, root)
                .map_err(|e| invalid(format!("path '{}': {e}", op.path_text)))?;
            let loc = match nodes.as_slice() {
                // Deleting something absent is explicitly not an error in FHIRPath Patch.
                [] => return Ok(()),
                [n] => n.loc.clone(),
                many => {
                    return Err(unprocessable(format!(
                        "path '{}' matches {} elements; delete removes exactly one",
                        op.path_text,
                        many.len()
                    )));
                }
            };
            if loc.is_empty() {
                return Err(unprocessable("cannot delete the resource itself".into()));
            }
            remove_at(root, &loc);
            Ok(())
        }
        OpKind::Replace { value } => {
            let (loc, elem_path, choice_type, _) = single(&op.path, "path")?;
            let Some((last, parent_loc)) = loc.split_last() else {
                return Err(unprocessable("cannot replace the resource itself".into()));
            };
            let (value, suffix) = materialize(value, &elem_path, info);
            let parent = get_mut(root, parent_loc).expect("located parent");
            match (last, parent) {
                (Step::Index(i), Value::Array(items)) => items[*i] = value,
                (Step::Key(key), Value::Object(obj)) => {
                    // A choice element replaced with another type must change key too.
                    let new_key = match (&choice_type, &suffix) {
                        (Some(old), Some(new)) if old != new => {
                            let base = &key[..key.len() - old.len()];
                            choice_key(base, true, "", Some(new), info)
                        }
                        _ => key.clone(),
                    };
                    if &new_key == key {
                        obj.insert(key.clone(), value);
                    } else {
                        let old = std::mem::take(obj);
                        for (k, v) in old {
                            if &k == key {
                                obj.insert(new_key.clone(), value.clone());
                            } else if k != format!("_{key}") {
                                obj.insert(k, v);
                            }
                        }
                    }
                }
                _ => unreachable!("locations always follow the JSON shape"),
            }
            Ok(())
        }
        OpKind::Move {
            source,
            destination,
        } => {
            let (list_parent, name) = op.path.split_last_child().expect("validated at parse time");
            let (loc, ..) = single(&list_parent, "parent of")?;
            let parent = get_mut(root, &loc).and_then(Value::as_object_mut);
            let Some(Value::Array(items)) = parent.and_then(|p| p.get_mut(name)) else {
                return Err(unprocessable(format!("'{}' is not a list", op.path_text)));
            };
            let len = items.len();
            for (what, i) in [("source", source), ("destination", destination)] {
                if *i >= len {
                    return Err(unprocessable(format!(
                        "{what} index {i} is out of range for '{}' ({len} elements)",
                        op.path_text
                    )));
                }
            }
            let item = items.remove(*source);
            items.insert(*destination, item);
            let parent = get_mut(root, &loc)
                .and_then(Value::as_object_mut)
                .expect("located object");
            if let Some(Value::Array(ext)) = parent.get_mut(&format!("_{name}"))
                && ext.len() == len
            {
                let e = ext.remove(*source);
                ext.insert(*destination, e);
            }
            Ok(())
        }
    }
}

fn is_choice_of(key: &str, base: &str) -> bool {
    key.strip_prefix(base)
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_uppercase()))
}

fn get_mut<'a>(mut v: &'a mut Value, loc: &[Step]) -> Option<&'a mut Value> {
    for step in loc {
        v = match step {
            Step::Key(k) => v.as_object_mut()?.get_mut(k)?,
            Step::Index(i) => v.as_array_mut()?.get_mut(*i)?,
        };
    }
    Some(v)
}

/// Removes the value at `loc`, together with its `_name` primitive-extension sibling, and
/// prunes containers left empty because FHIR JSON forbids empty objects and arrays.
fn remove_at(root: &mut Value, loc: &[Step]) {
    let Some((last, parent_loc)) = loc.split_last() else {
        return;
    };
    let now_empty = match (last, get_mut(root, parent_loc)) {
        (Step::Key(k), Some(Value::Object(obj))) => {
            obj.shift_remove(k);
            obj.shift_remove(&format!("_{k}"));
            obj.is_empty()
        }
        (Step::Index(i), Some(Value::Array(items))) => {
            items.remove(*i);
            items.is_empty()
        }
        _ => return,
    };
    if let (Step::Index(i), Some((Step::Key(k), grand_loc))) = (last, parent_loc.split_last())
        && let Some(Value::Object(grand)) = get_mut(root, grand_loc)
    {
        let ext_key = format!("_{k}");
        if let Some(Value::Array(ext)) = grand.get_mut(&ext_key)
            && *i < ext.len()
        {
            ext.remove(*i);
            if ext.iter().all(Value::is_null) {
                grand.shift_remove(&ext_key);
            }
        }
    }
    if now_empty && !parent_loc.is_empty() {
        remove_at(root, parent_loc);
    }
}
