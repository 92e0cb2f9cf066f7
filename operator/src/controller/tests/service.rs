use std::time::Duration;

use hds_crds::FhirService;
use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::*;
use crate::controller::service::reconcile;
use crate::database::{self, admin};

pub(super) const API: &str = "/apis/hds.dev/v1alpha1/namespaces";
pub(super) const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces";

pub(super) fn workspace_json(ns: &str, postgres: Value) -> Value {
    json!({
        "apiVersion": "hds.dev/v1alpha1", "kind": "Workspace",
        "metadata": {"name": "demo", "namespace": ns, "uid": "uid-ws", "generation": 1},
        "spec": {"defaults": {"postgres": postgres}},
    })
}

pub(super) fn fhir_json(ns: &str, max_age: u32) -> Value {
    json!({
        "apiVersion": "hds.dev/v1alpha1", "kind": "FhirService",
        "metadata": {
            "name": "fhir", "namespace": ns, "uid": "uid-fhir", "generation": 2,
            "finalizers": ["hds.dev/cleanup"],
        },
        "spec": {
            "workspaceRef": {"name": "demo"},
            "kind": "fhir-R4",
            "cors": {"origins": ["http://localhost:3000"], "maxAge": max_age},
        },
    })
}

fn fhir(v: &Value) -> Arc<FhirService> {
    Arc::new(serde_json::from_value(v.clone()).unwrap())
}

fn deleting(mut v: Value) -> Value {
    v["metadata"]["deletionTimestamp"] = json!("2026-12-03T12:00:00Z");
    v
}

/// A Deployment as the apiserver returns it after an apply: the applied object plus status.
pub(super) fn deployment_answer(available: bool) -> impl FnOnce(&Value) -> (u16, Value) + Send {
    move |body| {
        let mut d = body.clone();
        d["metadata"]["generation"] = json!(1);
        let n = if available { 1 } else { 0 };
        d["status"] = json!({
            "observedGeneration": 1, "replicas": 1,
            "updatedReplicas": 1, "availableReplicas": n, "readyReplicas": n,
        });
        (200, d)
    }
}

/// The status subresource answers with the whole object.
pub(super) fn status_answer(obj: Value) -> impl FnOnce(&Value) -> (u16, Value) + Send {
    move |body| {
        let mut o = obj;
        o["status"] = body["status"].clone();
        (200, o)
    }
}

/// Everything after the database: the objects in apply order, then the status.
fn workload(ns: &str, obj: &Value, available: bool) -> Vec<Expect> {
    vec![
        echo(
            Method::PATCH,
            format!("/api/v1/namespaces/{ns}/configmaps/fhir-config"),
        ),
        echo(
            Method::PATCH,
            format!("/api/v1/namespaces/{ns}/serviceaccounts/fhir"),
        ),
        echo(
            Method::PATCH,
            format!("/api/v1/namespaces/{ns}/services/fhir"),
        ),
        expect(
            Method::PATCH,
            format!("/apis/apps/v1/namespaces/{ns}/deployments/fhir"),
            deployment_answer(available),
        ),
        // No autoscaling, budget or exposure asked for: none is left behind.
        not_found(
            Method::GET,
            format!("/apis/autoscaling/v2/namespaces/{ns}/horizontalpodautoscalers/fhir"),
        ),
        not_found(
            Method::GET,
            format!("/apis/policy/v1/namespaces/{ns}/poddisruptionbudgets/fhir"),
        ),
        not_found(
            Method::GET,
            format!("/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses/fhir"),
        ),
        not_found(
            Method::GET,
            format!("/apis/gateway.networking.k8s.io/v1/namespaces/{ns}/httproutes/fhir"),
        ),
        expect(
            Method::PATCH,
            format!("{API}/{ns}/fhirservices/fhir/status"),
            status_answer(obj.clone()),
        ),
    ]
}

/// The Workspace and the database through a connection Secret, up to `<name>-db`.
pub(super) fn connection_prefix(ns: &str) -> Vec<Expect> {
    let ws = workspace_json(ns, json!({"connectionSecretRef": {"name": "pg-conn"}}));
    let conn = secret(
        "pg-conn",
        ns,
        &[("uri", "postgres://app:pw@db.example:5432/fhir")],
    );
    vec![
        expect(
            Method::GET,
            format!("{API}/{ns}/workspaces/demo"),
            move |_| (200, ws),
        ),
        expect(
            Method::GET,
            format!("/api/v1/namespaces/{ns}/secrets/pg-conn"),
            move |_| (200, conn),
        ),
        echo(
            Method::PATCH,
            format!("/api/v1/namespaces/{ns}/secrets/fhir-db"),
        ),
    ]
}

fn connection_path(ns: &str, obj: &Value, available: bool) -> Vec<Expect> {
    let mut script = connection_prefix(ns);
    script.extend(workload(ns, obj, available));
    script
}

pub(super) fn find<'a>(seen: &'a [Seen], method: Method, suffix: &str) -> &'a Seen {
    seen.iter()
        .find(|s| s.method == method && s.path.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {method} …{suffix}"))
}

pub(super) fn condition<'a>(status_patch: &'a Value, type_: &str) -> &'a Value {
    status_patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {status_patch}"))
}

pub(super) async fn run(
    obj: &Value,
    script: Vec<Expect>,
) -> (Result<Action, crate::controller::ReconcileError>, Vec<Seen>) {
    let (client, server) = scripted(script);
    let result = reconcile(fhir(obj), ctx(client)).await;
    (result, server.await.unwrap())
}

#[tokio::test]
async fn a_new_service_first_gets_the_finalizer() {
    let mut obj = fhir_json("ns1", 600);
    obj["metadata"]["finalizers"] = json!([]);
    let answer = fhir_json("ns1", 600);
    let (result, seen) = run(
        &obj,
        vec![expect(
            Method::PATCH,
            format!("{API}/ns1/fhirservices/fhir"),
            move |_| (200, answer),
        )],
    )
    .await;
    assert_eq!(result.unwrap(), Action::await_change());
    let ops = seen[0].body.as_array().expect("a JSON patch");
    assert!(
        ops.iter()
            .any(|op| op["op"] == "add" && op["value"] == json!(["hds.dev/cleanup"])),
        "{ops:?}"
    );
}

#[tokio::test]
async fn create_applies_every_object_with_one_field_manager_unforced() {
    let obj = fhir_json("ns1", 600);
    let (result, seen) = run(&obj, connection_path("ns1", &obj, false)).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));
    for s in seen.iter().filter(|s| s.method == Method::PATCH) {
        assert!(
            s.query.contains("fieldManager=hds-operator"),
            "{}: {}",
            s.path,
            s.query
        );
        assert!(!s.query.contains("force"), "{}: {}", s.path, s.query);
    }
    let db = &find(&seen, Method::PATCH, "/secrets/fhir-db").body;
    assert_eq!(
        secret_data(db, "url"),
        "postgres://app:pw@db.example:5432/fhir"
    );
    assert_eq!(db["metadata"]["ownerReferences"][0]["uid"], "uid-fhir");
    let dep = &find(&seen, Method::PATCH, "/deployments/fhir").body;
    assert_eq!(
        dep["spec"]["template"]["spec"]["containers"][0]["image"],
        "ghcr.io/hds/hds:test"
    );
    assert_eq!(dep["metadata"]["ownerReferences"][0]["kind"], "FhirService");
    let status = &find(&seen, Method::PATCH, "/fhirservices/fhir/status").body;
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(condition(status, "Ready")["reason"], "RollingOut");
    assert_eq!(condition(status, "Progressing")["status"], "True");
    assert_eq!(condition(status, "Degraded")["status"], "False");
    assert_eq!(condition(status, "DatabaseReady")["status"], "True");
    assert_eq!(condition(status, "Ready")["observedGeneration"], 2);
    assert_eq!(status["status"]["observedGeneration"], 2);
    assert_eq!(
        status["status"]["url"],
        "http://fhir.ns1.svc.cluster.local:8080"
    );
}

#[tokio::test]
async fn an_available_deployment_makes_the_service_ready_and_says_so() {
    let obj = fhir_json("ns1", 600);
    let mut script = connection_path("ns1", &obj, true);
    script.push(echo(Method::POST, format!("{EVENTS}/ns1/events")));
    let (result, seen) = run(&obj, script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(600)));
    let status = &find(&seen, Method::PATCH, "/fhirservices/fhir/status").body;
    assert_eq!(condition(status, "Ready")["status"], "True");
    assert_eq!(condition(status, "Progressing")["status"], "False");
    let event = &find(&seen, Method::POST, "/events").body;
    assert_eq!(event["reason"], "Ready");
    assert_eq!(event["type"], "Normal");
    assert_eq!(event["regarding"]["name"], "fhir");
}

#[tokio::test]
async fn a_config_change_rolls_the_pods_and_an_unchanged_spec_changes_nothing() {
    let bodies = |seen: &[Seen]| -> Vec<Value> {
        seen.iter()
            .filter(|s| s.method == Method::PATCH)
            .map(|s| s.body.clone())
            .collect()
    };
    let hash = |seen: &[Seen]| {
        find(seen, Method::PATCH, "/deployments/fhir").body["spec"]["template"]["metadata"]
            ["annotations"]["hds.dev/config-hash"]
            .clone()
    };
    let a = fhir_json("ns1", 600);
    let (r1, first) = run(&a, connection_path("ns1", &a, false)).await;
    let (r2, again) = run(&a, connection_path("ns1", &a, false)).await;
    r1.unwrap();
    r2.unwrap();
    // Byte for byte the same applies: server-side apply then changes nothing.
    let strip = |mut v: Vec<Value>| {
        for b in &mut v {
            // Condition transition times are the only clock-dependent field.
            if let Some(cs) = b["status"]["conditions"].as_array_mut() {
                for c in cs {
                    c["lastTransitionTime"] = Value::Null;
                }
            }
        }
        v
    };
    assert_eq!(strip(bodies(&first)), strip(bodies(&again)));

    let b = fhir_json("ns1", 900);
    let (r3, changed) = run(&b, connection_path("ns1", &b, false)).await;
    r3.unwrap();
    assert_ne!(
        hash(&first),
        hash(&changed),
        "a config change must change the pod template"
    );
    let cm = &find(&changed, Method::PATCH, "/configmaps/fhir-config").body;
    assert!(cm["data"]["config.yaml"].as_str().unwrap().contains("900"));
}

#[tokio::test]
async fn a_missing_secret_waits_and_names_it() {
    let obj = fhir_json("ns1", 600);
    let ws = workspace_json("ns1", json!({"connectionSecretRef": {"name": "pg-conn"}}));
    let script = vec![
        expect(
            Method::GET,
            format!("{API}/ns1/workspaces/demo"),
            move |_| (200, ws),
        ),
        not_found(Method::GET, "/api/v1/namespaces/ns1/secrets/pg-conn"),
        expect(
            Method::PATCH,
            format!("{API}/ns1/fhirservices/fhir/status"),
            status_answer(obj.clone()),
        ),
    ];
    let (result, seen) = run(&obj, script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(30)));
    let status = &seen[2].body;
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(condition(status, "Ready")["reason"], "SecretNotFound");
    assert!(
        condition(status, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("'pg-conn'")
    );
    assert_eq!(
        condition(status, "DatabaseReady")["reason"],
        "SecretNotFound"
    );
    // Waiting for the user is not a fault.
    assert_eq!(condition(status, "Degraded")["status"], "False");
}

#[tokio::test]
async fn a_missing_workspace_waits() {
    let obj = fhir_json("ns1", 600);
    let script = vec![
        not_found(Method::GET, format!("{API}/ns1/workspaces/demo")),
        expect(
            Method::PATCH,
            format!("{API}/ns1/fhirservices/fhir/status"),
            status_answer(obj.clone()),
        ),
    ];
    let (result, seen) = run(&obj, script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(30)));
    assert_eq!(
        condition(&seen[1].body, "Ready")["reason"],
        "WorkspaceNotFound"
    );
}

#[tokio::test]
async fn cnpg_absent_is_a_database_condition() {
    let obj = fhir_json("ns1", 600);
    let ws = workspace_json("ns1", json!({"cnpg": {"clusterName": "pg"}}));
    let script = vec![
        expect(
            Method::GET,
            format!("{API}/ns1/workspaces/demo"),
            move |_| (200, ws),
        ),
        not_found(Method::GET, "/apis/postgresql.cnpg.io/v1"),
        expect(
            Method::PATCH,
            format!("{API}/ns1/fhirservices/fhir/status"),
            status_answer(obj.clone()),
        ),
    ];
    let (result, seen) = run(&obj, script).await;
    result.unwrap();
    let status = &seen[2].body;
    assert_eq!(condition(status, "DatabaseReady")["status"], "False");
    assert_eq!(
        condition(status, "DatabaseReady")["reason"],
        "CnpgNotInstalled"
    );
    assert_eq!(condition(status, "Ready")["reason"], "CnpgNotInstalled");
}

#[tokio::test]
async fn a_conflict_on_apply_is_reported_not_forced() {
    let obj = fhir_json("ns1", 600);
    let ws = workspace_json("ns1", json!({"connectionSecretRef": {"name": "pg-conn"}}));
    let conn = secret(
        "pg-conn",
        "ns1",
        &[("uri", "postgres://app:pw@db:5432/fhir")],
    );
    let script = vec![
        expect(
            Method::GET,
            format!("{API}/ns1/workspaces/demo"),
            move |_| (200, ws),
        ),
        expect(
            Method::GET,
            "/api/v1/namespaces/ns1/secrets/pg-conn",
            move |_| (200, conn),
        ),
        echo(Method::PATCH, "/api/v1/namespaces/ns1/secrets/fhir-db"),
        expect(
            Method::PATCH,
            "/api/v1/namespaces/ns1/configmaps/fhir-config",
            |_| {
                (
                    409,
                    status(
                        409,
                        "Conflict",
                        "Apply failed with 1 conflict: conflict with \"argocd-controller\": .data.config.yaml",
                    ),
                )
            },
        ),
        expect(
            Method::PATCH,
            format!("{API}/ns1/fhirservices/fhir/status"),
            status_answer(obj.clone()),
        ),
        echo(Method::POST, format!("{EVENTS}/ns1/events")),
    ];
    let (result, seen) = run(&obj, script).await;
    let err = result.expect_err("a conflict must back off");
    assert!(err.to_string().contains("ApplyConflict"), "{err}");
    let status = &seen[4].body;
    assert_eq!(condition(status, "Degraded")["status"], "True");
    assert_eq!(condition(status, "Degraded")["reason"], "ApplyConflict");
    assert!(
        condition(status, "Degraded")["message"]
            .as_str()
            .unwrap()
            .contains("argocd-controller")
    );
    assert_eq!(seen[5].body["type"], "Warning");
    assert_eq!(seen[5].body["reason"], "ApplyConflict");
}

fn unique_namespace() -> String {
    format!("optest{}", &uuid_like()[..10])
}

fn uuid_like() -> String {
    use rand::Rng;
    let mut rng = rand::thread_rng();
    (0..16)
        .map(|_| format!("{:x}", rng.gen_range(0..16u8)))
        .collect()
}

/// The admin-secret path end to end against the real PostgreSQL: create, a second apply that
/// changes nothing, then deletion under Retain keeps the data.
#[tokio::test]
async fn admin_secret_path_provisions_once_and_retain_keeps_the_data() {
    let ns = unique_namespace();
    let admin_url = hds_common::db::test_admin_url();
    let names = database::database_names(&ns, "fhir");
    let obj = fhir_json(&ns, 600);
    let ws = workspace_json(&ns, json!({"adminSecretRef": {"name": "pg-admin"}}));
    let admin_secret = secret("pg-admin", &ns, &[("uri", &admin_url)]);

    let script = |db_secret: Option<Value>, event: bool| {
        let (ws, admin_secret) = (ws.clone(), admin_secret.clone());
        let mut s = vec![
            expect(
                Method::GET,
                format!("{API}/{ns}/workspaces/demo"),
                move |_| (200, ws),
            ),
            expect(
                Method::GET,
                format!("/api/v1/namespaces/{ns}/secrets/pg-admin"),
                move |_| (200, admin_secret),
            ),
            match db_secret {
                Some(s) => expect(
                    Method::GET,
                    format!("/api/v1/namespaces/{ns}/secrets/fhir-db"),
                    move |_| (200, s),
                ),
                None => not_found(
                    Method::GET,
                    format!("/api/v1/namespaces/{ns}/secrets/fhir-db"),
                ),
            },
            echo(
                Method::PATCH,
                format!("/api/v1/namespaces/{ns}/secrets/fhir-db"),
            ),
        ];
        s.extend(workload(&ns, &obj, false));
        if event {
            s.push(echo(Method::POST, format!("{EVENTS}/{ns}/events")));
        }
        s
    };

    let (r, first) = run(&obj, script(None, true)).await;
    r.unwrap();
    let db_secret = find(&first, Method::PATCH, "/secrets/fhir-db").body.clone();
    let url = secret_data(&db_secret, "url");
    assert!(url.contains(&names.database), "{url}");
    assert_eq!(
        db_secret["metadata"]["annotations"]["hds.dev/deletion-policy"],
        "Retain"
    );
    let event = &find(&first, Method::POST, "/events").body;
    assert_eq!(event["reason"], "DatabaseCreated");

    // The service's own role can use its database.
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
        .batch_execute("create table kept (v text); insert into kept values ('phi')")
        .await
        .unwrap();
    drop(client);

    // A second apply: the Secret the first one wrote is read back, nothing is created, no event.
    let (r, second) = run(&obj, script(Some(db_secret.clone()), false)).await;
    r.unwrap();
    assert_eq!(
        find(&second, Method::PATCH, "/secrets/fhir-db").body,
        db_secret
    );

    // Deleting under Retain: the database and its rows stay.
    let deleted = deleting(obj.clone());
    let mut gone = deleted.clone();
    gone["metadata"]["finalizers"] = json!([]);
    let dbs = db_secret.clone();
    let (r, seen) = run(
        &deleted,
        vec![
            expect(
                Method::GET,
                format!("/api/v1/namespaces/{ns}/secrets/fhir-db"),
                move |_| (200, dbs),
            ),
            echo(Method::POST, format!("{EVENTS}/{ns}/events")),
            expect(
                Method::PATCH,
                format!("{API}/{ns}/fhirservices/fhir"),
                move |_| (200, gone),
            ),
        ],
    )
    .await;
    r.unwrap();
    assert_eq!(seen[1].body["reason"], "DatabaseRetained");
    assert!(admin::exists(&admin_url, &names).await.unwrap());
    let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client.query_one("select v from kept", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "phi");
    drop(client);
    admin::drop(&admin_url, &names).await.unwrap();
}

#[tokio::test]
async fn deletion_under_delete_drops_the_database() {
    let ns = unique_namespace();
    let admin_url = hds_common::db::test_admin_url();
    let names = database::database_names(&ns, "fhir");
    let password = database::generate_password();
    admin::ensure(&admin_url, &names, &password, database::PasswordMode::Reset)
        .await
        .unwrap();
    let mut db_secret = secret(
        "fhir-db",
        &ns,
        &[(
            "url",
            &database::connection_url(&admin_url, &names, &password).unwrap(),
        )],
    );
    db_secret["metadata"]["annotations"] = json!({
        "hds.dev/database-source": "admin",
        "hds.dev/deletion-policy": "Delete",
        "hds.dev/admin-secret": "pg-admin/uri",
        "hds.dev/database": names.database,
    });
    let admin_secret = secret("pg-admin", &ns, &[("uri", &admin_url)]);
    let deleted = deleting(fhir_json(&ns, 600));
    let mut gone = deleted.clone();
    gone["metadata"]["finalizers"] = json!([]);
    let (r, seen) = run(
        &deleted,
        vec![
            expect(
                Method::GET,
                format!("/api/v1/namespaces/{ns}/secrets/fhir-db"),
                move |_| (200, db_secret),
            ),
            expect(
                Method::GET,
                format!("/api/v1/namespaces/{ns}/secrets/pg-admin"),
                move |_| (200, admin_secret),
            ),
            echo(Method::POST, format!("{EVENTS}/{ns}/events")),
            expect(
                Method::PATCH,
                format!("{API}/{ns}/fhirservices/fhir"),
                move |_| (200, gone),
            ),
        ],
    )
    .await;
    r.unwrap();
    assert_eq!(seen[2].body["reason"], "DatabaseDropped");
    let ops = seen[3]
        .body
        .as_array()
        .expect("a JSON patch removing the finalizer");
    assert!(ops.iter().any(|op| op["op"] == "remove"), "{ops:?}");
    assert!(!admin::exists(&admin_url, &names).await.unwrap());
}

#[test]
fn backoff_doubles_to_five_minutes() {
    let d: Vec<u64> = (0..9).map(|n| Ctx::backoff(n).as_secs()).collect();
    assert_eq!(d, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
}
