//! Every official R4 example (npm hl7.fhir.r4.examples 4.0.1) goes through create and reads back
//! equal apart from `id` and the server-owned parts of `meta`. The few examples that break the R4
//! specification themselves must be refused with a 400, and exactly those.

mod common;

use std::path::PathBuf;

use common::*;
use futures_util::StreamExt;
use serde_json::Value;

/// The resource without what the server owns: id, meta.versionId and meta.lastUpdated.
fn comparable(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    obj.remove("id");
    if let Some(Value::Object(meta)) = obj.get_mut("meta") {
        meta.remove("versionId");
        meta.remove("lastUpdated");
        if meta.is_empty() {
            obj.remove("meta");
        }
    }
    v
}

enum Outcome {
    RoundTripped,
    Refused,
    Wrong(String),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_official_example_round_trips() {
    let dir = package_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json") && !p.ends_with("package.json"))
        .collect();
    files.sort();
    assert_eq!(
        files.len(),
        5306,
        "the package holds 5,306 example resources"
    );
    // The package carries the definition Bundles too, up to 35 MB.
    let mut cfg = config();
    cfg.limits.max_request_body_bytes = 64 * 1024 * 1024;
    let s = start_with(cfg).await;
    let s = &s;
    let results: Vec<(PathBuf, Outcome)> = futures_util::stream::iter(files)
        .map(|path| async move {
            let text = std::fs::read_to_string(&path).unwrap();
            let original: Value = serde_json::from_str(&text).unwrap();
            let rt = original["resourceType"].as_str().unwrap().to_owned();
            // What the validator says of the resource as create will see it (the id replaced).
            let mut as_created = original.clone();
            as_created["id"] = Value::String("x".into());
            let invalid = !hds_fhir_model::r4().validate(&as_created).is_empty();
            let r = s
                .http
                .post(s.url(&rt))
                .header("content-type", FHIR_JSON)
                .body(text)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: Value = r.json().await.unwrap();
            let outcome = match (invalid, status) {
                (true, 400) if body["resourceType"] == "OperationOutcome" => Outcome::Refused,
                (false, 201) => {
                    let id = body["id"].as_str().unwrap();
                    let read: Value = s.get(&format!("{rt}/{id}")).await.json().await.unwrap();
                    if comparable(read) == comparable(original) {
                        Outcome::RoundTripped
                    } else {
                        Outcome::Wrong("read back differs".into())
                    }
                }
                _ => Outcome::Wrong(format!(
                    "status {status}, validator invalid={invalid}: {body}"
                )),
            };
            (path, outcome)
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let wrong: Vec<String> = results
        .iter()
        .filter_map(|(p, o)| match o {
            Outcome::Wrong(why) => Some(format!(
                "{}: {why}",
                p.file_name().unwrap().to_string_lossy()
            )),
            _ => None,
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} examples misbehaved:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    let refused: Vec<String> = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Refused))
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    let round_tripped = results
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::RoundTripped))
        .count();
    eprintln!("{round_tripped} examples round-tripped; refused as invalid R4: {refused:?}");
    // The known-invalid examples (see the model crate's tests/official_examples.rs), less the one
    // whose only fault is a 67-character id, which create replaces.
    assert!(
        refused.len() <= 13,
        "more examples refused than the known-invalid ones: {refused:?}"
    );
    assert_eq!(round_tripped + refused.len(), 5306);
}
