//! Reconcile tests against a scripted API server (tower-test), in the manner of kube-rs
//! controller-rs's ApiServerVerifier: each expected request is checked for its method and path,
//! its body is kept for the test to inspect, and the scripted answer is sent back. A request
//! the script does not expect fails the test. PostgreSQL, where a path needs one, is real.

mod exposure;
mod service;
mod workspace;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

use super::Ctx;
use crate::desired;

/// How long the script waits for the operator's next request. Generous: between two requests
/// the operator may run real SQL (DROP DATABASE … WITH (FORCE) waits on a busy server).
const STEP_TIMEOUT: Duration = Duration::from_secs(120);

type Respond = Box<dyn FnOnce(&Value) -> (u16, Value) + Send>;

pub struct Expect {
    method: Method,
    path: String,
    respond: Respond,
}

/// One request as the operator sent it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: String,
    pub body: Value,
}

pub fn expect(
    method: Method,
    path: impl Into<String>,
    respond: impl FnOnce(&Value) -> (u16, Value) + Send + 'static,
) -> Expect {
    Expect {
        method,
        path: path.into(),
        respond: Box::new(respond),
    }
}

/// Answers with the request's own body (what an apply of an unchanged object returns).
pub fn echo(method: Method, path: impl Into<String>) -> Expect {
    expect(method, path, |b| (200, b.clone()))
}

pub fn not_found(method: Method, path: impl Into<String>) -> Expect {
    let path = path.into();
    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
    expect(method, path, move |_| {
        (
            404,
            status(404, "NotFound", &format!("\"{name}\" not found")),
        )
    })
}

pub fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": message, "reason": reason, "code": code,
    })
}

pub fn secret(name: &str, ns: &str, data: &[(&str, &str)]) -> Value {
    let b64 = base64::engine::general_purpose::STANDARD;
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String(b64.encode(v))))
        .collect();
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns, "uid": format!("uid-{name}")},
        "type": "Opaque",
        "data": data,
    })
}

/// The decoded value of `key` in a Secret's JSON.
pub fn secret_data(secret: &Value, key: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let raw = secret["data"][key]
        .as_str()
        .unwrap_or_else(|| panic!("no data.{key} in {secret}"));
    String::from_utf8(b64.decode(raw).unwrap()).unwrap()
}

/// A client whose requests go to `script`, and the task answering them; the task returns the
/// requests seen once the script is done and no further request arrives.
pub fn scripted(script: Vec<Expect>) -> (Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let server = tokio::spawn(async move {
        let mut script: VecDeque<Expect> = script.into();
        let mut seen = Vec::new();
        while let Some(next) = script.pop_front() {
            let (request, send) = tokio::time::timeout(STEP_TIMEOUT, handle.next_request())
                .await
                .unwrap_or_else(|_| {
                    panic!(
                        "the operator stopped before {} {} (seen: {:#?})",
                        next.method,
                        next.path,
                        summary(&seen)
                    )
                })
                .expect("the client went away");
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap_or(Value::Null)
            };
            let s = Seen {
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().unwrap_or_default().to_owned(),
                body,
            };
            assert_eq!(
                (&s.method, s.path.as_str()),
                (&next.method, next.path.as_str()),
                "unexpected request after {:#?}",
                summary(&seen)
            );
            let (code, answer) = (next.respond)(&s.body);
            seen.push(s);
            send.send_response(
                Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).unwrap()))
                    .unwrap(),
            );
        }
        // Nothing more may come.
        if let Ok(Some((request, _))) =
            tokio::time::timeout(Duration::from_millis(200), handle.next_request()).await
        {
            panic!(
                "unexpected request {} {} after the script (seen: {:#?})",
                request.method(),
                request.uri(),
                summary(&seen)
            );
        }
        seen
    });
    (Client::new(service, "default"), server)
}

fn summary(seen: &[Seen]) -> Vec<String> {
    seen.iter()
        .map(|s| format!("{} {}", s.method, s.path))
        .collect()
}

pub fn ctx(client: Client) -> Arc<Ctx> {
    Arc::new(Ctx::new(
        client,
        desired::Context::new("ghcr.io/hds/hds:test"),
        Some("test".into()),
    ))
}
