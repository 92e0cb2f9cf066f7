use std::time::Duration;

use hds_crds::Workspace;
use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::controller::workspace::reconcile;

const API: &str = "/apis/hds.dev/v1alpha1/namespaces/ns1";
const CORE: &str = "/api/v1/namespaces/ns1";

fn workspace_json() -> Value {
    json!({
        "apiVersion": "hds.dev/v1alpha1", "kind": "Workspace",
        "metadata": {"name": "demo", "namespace": "ns1", "uid": "uid-ws", "generation": 1},
        "spec": {"identity": {"clients": [{
            "clientId": "demo-app",
            "secretRef": {"name": "demo-app-credentials", "key": "clientSecret"},
            "roles": ["FHIR Data Contributor"],
        }]}},
    })
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "hds.dev/v1alpha1", "kind": format!("{kind}List"), "metadata": {}, "items": items})
}

fn medtech() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/medtech-service.yaml"
    ))
    .unwrap();
    let doc: Value = serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .find(|d: &Value| d["kind"] == "MedTechService")
        .unwrap();
    let mut doc = doc;
    doc["metadata"]["namespace"] = json!("ns1");
    doc["metadata"]["uid"] = json!("uid-medtech");
    doc
}

fn fhir_ready() -> Value {
    json!({
        "apiVersion": "hds.dev/v1alpha1", "kind": "FhirService",
        "metadata": {"name": "fhir", "namespace": "ns1", "uid": "uid-fhir"},
        "spec": {"workspaceRef": {"name": "demo"}},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "",
                            "lastTransitionTime": "2026-12-03T12:00:00Z"}],
            "url": "http://fhir.ns1.svc.cluster.local:8080",
        },
    })
}

fn script(signing_key: Option<Value>, client: Option<Value>, events: usize) -> Vec<Expect> {
    let ws = workspace_json();
    let mut s = vec![
        expect(Method::GET, format!("{API}/fhirservices"), |_| {
            (200, list("FhirService", vec![fhir_ready()]))
        }),
        expect(Method::GET, format!("{API}/dicomservices"), |_| {
            (200, list("DicomService", vec![]))
        }),
        expect(Method::GET, format!("{API}/medtechservices"), |_| {
            (200, list("MedTechService", vec![medtech()]))
        }),
    ];
    let secret_step = |name: &str, existing: Option<Value>| -> Vec<Expect> {
        match existing {
            Some(v) => vec![expect(
                Method::GET,
                format!("{CORE}/secrets/{name}"),
                move |_| (200, v),
            )],
            None => vec![
                not_found(Method::GET, format!("{CORE}/secrets/{name}")),
                echo(Method::PATCH, format!("{CORE}/secrets/{name}")),
                echo(Method::POST, "/apis/events.k8s.io/v1/namespaces/ns1/events"),
            ],
        }
    };
    s.extend(secret_step("demo-signing-key", signing_key));
    s.extend(secret_step("demo-client-medtech-vitals", client));
    let _ = events;
    s.extend([
        expect(
            Method::GET,
            format!("{CORE}/secrets/demo-app-credentials"),
            |_| {
                (
                    200,
                    secret("demo-app-credentials", "ns1", &[("clientSecret", "s3cret")]),
                )
            },
        ),
        echo(Method::PATCH, format!("{CORE}/configmaps/demo-issuer")),
        echo(Method::PATCH, format!("{CORE}/serviceaccounts/demo-issuer")),
        echo(Method::PATCH, format!("{CORE}/services/demo-issuer")),
        echo(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns1/deployments/demo-issuer",
        ),
        expect(
            Method::PATCH,
            format!("{API}/workspaces/demo/status"),
            move |body| {
                let mut o = ws;
                o["status"] = body["status"].clone();
                (200, o)
            },
        ),
    ]);
    s
}

async fn run(
    script: Vec<Expect>,
) -> (Result<Action, crate::controller::ReconcileError>, Vec<Seen>) {
    let ws: Workspace = serde_json::from_value(workspace_json()).unwrap();
    let (client, server) = scripted(script);
    let result = reconcile(Arc::new(ws), ctx(client)).await;
    (result, server.await.unwrap())
}

#[tokio::test]
async fn a_workspace_gets_its_credentials_once_its_issuer_and_a_summary_of_its_services() {
    let (result, seen) = run(script(None, None, 2)).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
    let key = &seen
        .iter()
        .find(|s| s.method == Method::PATCH && s.path.ends_with("/secrets/demo-signing-key"))
        .unwrap()
        .body;
    assert!(secret_data(key, "signingKey").contains("BEGIN PRIVATE KEY"));
    assert_eq!(key["metadata"]["ownerReferences"][0]["uid"], "uid-ws");
    let client = seen
        .iter()
        .find(|s| {
            s.method == Method::PATCH && s.path.ends_with("/secrets/demo-client-medtech-vitals")
        })
        .unwrap()
        .body
        .clone();
    assert!(secret_data(&client, "clientSecret").len() >= 40);
    let status = &seen.last().unwrap().body["status"];
    assert_eq!(
        status["issuer"],
        "http://demo-issuer.ns1.svc.cluster.local:8080"
    );
    let services = status["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{services:?}");
    assert_eq!(services[0]["kind"], "FhirService");
    assert_eq!(services[0]["ready"], true);
    assert_eq!(services[1]["kind"], "MedTechService");
    assert_eq!(services[1]["ready"], false);

    // A second reconcile finds both Secrets and writes neither again.
    let (result, seen) = run(script(Some(key.clone()), Some(client), 0)).await;
    result.unwrap();
    assert!(
        !seen
            .iter()
            .any(|s| s.path.contains("/secrets/") && s.method == Method::PATCH)
    );
}

#[tokio::test]
async fn a_missing_client_secret_is_named() {
    let ws = workspace_json();
    let key = secret(
        "demo-signing-key",
        "ns1",
        &[("signingKey", "-----BEGIN PRIVATE KEY-----")],
    );
    let client = secret(
        "demo-client-medtech-vitals",
        "ns1",
        &[("clientSecret", "x")],
    );
    let script = vec![
        expect(Method::GET, format!("{API}/fhirservices"), |_| {
            (200, list("FhirService", vec![]))
        }),
        expect(Method::GET, format!("{API}/dicomservices"), |_| {
            (200, list("DicomService", vec![]))
        }),
        expect(Method::GET, format!("{API}/medtechservices"), |_| {
            (200, list("MedTechService", vec![medtech()]))
        }),
        expect(
            Method::GET,
            format!("{CORE}/secrets/demo-signing-key"),
            move |_| (200, key),
        ),
        expect(
            Method::GET,
            format!("{CORE}/secrets/demo-client-medtech-vitals"),
            move |_| (200, client),
        ),
        not_found(Method::GET, format!("{CORE}/secrets/demo-app-credentials")),
        expect(
            Method::PATCH,
            format!("{API}/workspaces/demo/status"),
            move |body| {
                let mut o = ws;
                o["status"] = body["status"].clone();
                (200, o)
            },
        ),
    ];
    let (result, seen) = run(script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(30)));
    let ready = seen.last().unwrap().body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["reason"], "SecretNotFound");
    assert!(
        ready["message"]
            .as_str()
            .unwrap()
            .contains("demo-app-credentials")
    );
}
