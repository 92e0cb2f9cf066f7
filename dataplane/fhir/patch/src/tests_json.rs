use serde_json::{Value, json};

use crate::{PatchError, apply_json_patch};

fn patient() -> Value {
    json!({"resourceType": "Patient", "id": "p1", "active": true, "name": [{"family": "Doe"}]})
}

#[test]
fn applies_operations() {
    let mut p = patient();
    let patch = json!([
        {"op": "test", "path": "/active", "value": true},
        {"op": "replace", "path": "/active", "value": false},
        {"op": "add", "path": "/name/0/given", "value": ["Jane"]},
        {"op": "add", "path": "/birthDate", "value": "1970-01-01"},
        {"op": "remove", "path": "/id"}
    ]);
    apply_json_patch(&mut p, &patch).unwrap();
    assert_eq!(
        p,
        json!({"resourceType": "Patient", "active": false, "name": [{"family": "Doe", "given": ["Jane"]}], "birthDate": "1970-01-01"})
    );
}

#[test]
fn failed_test_is_unprocessable_and_atomic() {
    let mut p = patient();
    let patch = json!([
        {"op": "replace", "path": "/active", "value": false},
        {"op": "test", "path": "/name/0/family", "value": "Smith"}
    ]);
    let err = apply_json_patch(&mut p, &patch).unwrap_err();
    assert!(matches!(err, PatchError::Unprocessable { .. }), "{err}");
    assert_eq!(err.expression(), Some("/1"));
    assert!(err.message().contains("test"), "{err}");
    assert_eq!(p, patient());
}

#[test]
fn missing_target_is_unprocessable() {
    let mut p = patient();
    let err = apply_json_patch(&mut p, &json!([{"op": "remove", "path": "/gender"}])).unwrap_err();
    assert!(err.is_unprocessable(), "{err}");
    assert_eq!(p, patient());
}

#[test]
fn malformed_documents_are_invalid() {
    for (doc, expr) in [
        (json!({"op": "remove", "path": "/id"}), None),
        (
            json!([{"op": "remove", "path": "/id"}, {"op": "frobnicate", "path": "/id"}]),
            Some("/1"),
        ),
        (json!([{"op": "replace", "path": "/id"}]), Some("/0")),
        (json!([{"op": "remove", "path": "id"}]), Some("/0")),
    ] {
        let mut p = patient();
        let err = apply_json_patch(&mut p, &doc).unwrap_err();
        assert!(matches!(err, PatchError::Invalid { .. }), "{doc}: {err}");
        assert_eq!(err.expression(), expr);
        assert_eq!(p, patient());
    }
}
