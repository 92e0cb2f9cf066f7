//! Autoscaling and exposure against the scripted API server: what is applied, what is removed
//! (only when it is the service's), the public URL in the status, and a missing Gateway API.

use std::time::Duration;

use http::Method;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use super::service::{
    API, EVENTS, condition, connection_prefix, deployment_answer, fhir_json, find, run,
    status_answer,
};
use super::*;

const HPA: &str = "/apis/autoscaling/v2/namespaces/ns1/horizontalpodautoscalers/fhir";
const PDB: &str = "/apis/policy/v1/namespaces/ns1/poddisruptionbudgets/fhir";
const INGRESS: &str = "/apis/networking.k8s.io/v1/namespaces/ns1/ingresses/fhir";
const ROUTE: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/ns1/httproutes/fhir";

/// The FhirService of the service tests with `spec` merged in.
fn fhir_with(spec: Value) -> Value {
    let mut obj = fhir_json("ns1", 600);
    for (k, v) in spec.as_object().unwrap() {
        obj["spec"][k] = v.clone();
    }
    obj
}

/// The database, then the ConfigMap, ServiceAccount, Service and Deployment (not yet
/// available).
fn up_to_the_deployment() -> Vec<Expect> {
    let mut script = connection_prefix("ns1");
    script.extend([
        echo(
            Method::PATCH,
            "/api/v1/namespaces/ns1/configmaps/fhir-config",
        ),
        echo(Method::PATCH, "/api/v1/namespaces/ns1/serviceaccounts/fhir"),
        echo(Method::PATCH, "/api/v1/namespaces/ns1/services/fhir"),
        expect(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns1/deployments/fhir",
            deployment_answer(false),
        ),
    ]);
    script
}

fn status(obj: &Value) -> Expect {
    expect(
        Method::PATCH,
        format!("{API}/ns1/fhirservices/fhir/status"),
        status_answer(obj.clone()),
    )
}

#[tokio::test]
async fn autoscaling_and_an_ingress_are_applied_and_the_status_names_the_public_url() {
    let obj = fhir_with(json!({
        "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 65},
        "exposure": {"ingress": {
            "className": "nginx", "host": "fhir.example.org", "tlsSecretName": "fhir-tls",
            "annotations": {"cert-manager.io/cluster-issuer": "letsencrypt"},
        }},
    }));
    let mut script = up_to_the_deployment();
    script.extend([
        echo(Method::PATCH, HPA),
        echo(Method::PATCH, PDB),
        echo(Method::PATCH, INGRESS),
        // No HTTPRoute asked for; none to remove (nor a Gateway API).
        not_found(Method::GET, ROUTE),
        status(&obj),
    ]);
    let (result, seen) = run(&obj, script).await;
    assert_eq!(result.unwrap(), Action::requeue(Duration::from_secs(60)));

    let dep = &find(&seen, Method::PATCH, "/deployments/fhir").body;
    assert!(
        dep["spec"].get("replicas").is_none(),
        "the HPA owns spec.replicas: {}",
        dep["spec"]
    );
    let hpa = &find(&seen, Method::PATCH, "/horizontalpodautoscalers/fhir");
    assert!(
        hpa.query.contains("fieldManager=hds-operator"),
        "{}",
        hpa.query
    );
    assert_eq!(hpa.body["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa.body["kind"], "HorizontalPodAutoscaler");
    assert_eq!(
        hpa.body["metadata"]["ownerReferences"][0]["uid"],
        "uid-fhir"
    );
    assert_eq!(
        hpa.body["spec"],
        json!({
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "fhir"},
            "minReplicas": 2,
            "maxReplicas": 5,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 65}}}],
        })
    );
    let pdb = &find(&seen, Method::PATCH, "/poddisruptionbudgets/fhir").body;
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);

    let ingress = &find(&seen, Method::PATCH, "/ingresses/fhir").body;
    assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(
        ingress["metadata"]["ownerReferences"][0]["kind"],
        "FhirService"
    );
    assert_eq!(
        ingress["metadata"]["annotations"]["cert-manager.io/cluster-issuer"],
        "letsencrypt"
    );
    assert_eq!(
        ingress["spec"],
        json!({
            "ingressClassName": "nginx",
            "rules": [{"host": "fhir.example.org", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "fhir", "port": {"number": 8080}}},
            }]}}],
            "tls": [{"hosts": ["fhir.example.org"], "secretName": "fhir-tls"}],
        })
    );

    // The config answers with the public URL and accepts tokens for both.
    let cm = &find(&seen, Method::PATCH, "/configmaps/fhir-config").body;
    let config: hds_common::config::FhirServiceConfig =
        serde_yaml::from_str(cm["data"]["config.yaml"].as_str().unwrap()).unwrap();
    assert_eq!(config.base_url.as_deref(), Some("https://fhir.example.org"));
    assert_eq!(
        config.auth.additional_audiences,
        ["http://fhir.ns1.svc.cluster.local:8080"]
    );

    let st = &find(&seen, Method::PATCH, "/fhirservices/fhir/status").body;
    assert_eq!(st["status"]["url"], "https://fhir.example.org");
    assert_eq!(
        st["status"]["internalUrl"],
        "http://fhir.ns1.svc.cluster.local:8080"
    );
    assert_eq!(condition(st, "Ready")["reason"], "RollingOut");
}

#[tokio::test]
async fn an_http_route_without_the_gateway_api_waits_for_it() {
    let obj = fhir_with(json!({
        "exposure": {"httpRoute": {
            "parentRefs": [{"name": "public", "namespace": "gateways"}],
            "hostnames": ["fhir.example.org"],
        }},
    }));
    let mut script = up_to_the_deployment();
    script.extend([
        not_found(Method::GET, HPA),
        not_found(Method::GET, PDB),
        not_found(Method::GET, INGRESS),
        // The kind is unknown: the apiserver has no such path.
        not_found(Method::PATCH, ROUTE),
        status(&obj),
    ]);
    let (result, seen) = run(&obj, script).await;
    assert_eq!(
        result.unwrap(),
        Action::requeue(Duration::from_secs(30)),
        "waiting, not backing off"
    );
    let route = &find(&seen, Method::PATCH, "/httproutes/fhir");
    assert!(
        route.query.contains("fieldManager=hds-operator"),
        "{}",
        route.query
    );
    assert_eq!(route.body["kind"], "HTTPRoute");
    assert_eq!(
        route.body["spec"]["parentRefs"],
        json!([{"name": "public", "namespace": "gateways"}])
    );
    assert_eq!(
        route.body["spec"]["rules"][0]["backendRefs"],
        json!([{"name": "fhir", "port": 8080}])
    );
    let st = &find(&seen, Method::PATCH, "/fhirservices/fhir/status").body;
    assert_eq!(condition(st, "Ready")["status"], "False");
    assert_eq!(condition(st, "Ready")["reason"], "GatewayApiNotInstalled");
    assert!(
        condition(st, "Ready")["message"]
            .as_str()
            .unwrap()
            .contains("gateway.networking.k8s.io/v1")
    );
    // Installing the Gateway API is the user's to do: not a fault.
    assert_eq!(condition(st, "Degraded")["status"], "False");
    assert_eq!(st["status"]["url"], "https://fhir.example.org");
    assert!(!seen.iter().any(|s| s.path.starts_with(EVENTS)));
}

#[tokio::test]
async fn objects_no_longer_asked_for_go_only_when_they_are_the_services() {
    let obj = fhir_json("ns1", 600);
    let owned_by = |uid: &str| {
        json!([{"apiVersion": "hds.dev/v1alpha1", "kind": "FhirService", "name": "fhir",
                "uid": uid, "controller": true}])
    };
    let hpa = json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "fhir", "namespace": "ns1", "uid": "hpa-1",
                     "ownerReferences": owned_by("uid-fhir")},
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "fhir"}, "maxReplicas": 3},
    });
    // A user's own Ingress that happens to bear the service's name.
    let ingress = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "fhir", "namespace": "ns1", "uid": "ing-1"},
        "spec": {},
    });
    let route = json!({
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "fhir", "namespace": "ns1", "uid": "route-1",
                     "ownerReferences": owned_by("uid-other")},
        "spec": {},
    });
    let mut script = up_to_the_deployment();
    script.extend([
        expect(Method::GET, HPA, move |_| (200, hpa)),
        echo(Method::DELETE, HPA),
        not_found(Method::GET, PDB),
        expect(Method::GET, INGRESS, move |_| (200, ingress)),
        expect(Method::GET, ROUTE, move |_| (200, route)),
        status(&obj),
    ]);
    let (result, seen) = run(&obj, script).await;
    result.unwrap();
    let delete = &find(&seen, Method::DELETE, "/horizontalpodautoscalers/fhir").body;
    // Only the object that was read, should another have taken its name since.
    assert_eq!(delete["preconditions"]["uid"], "hpa-1");
    assert_eq!(delete["propagationPolicy"], "Background");
    let dep = &find(&seen, Method::PATCH, "/deployments/fhir").body;
    assert_eq!(dep["spec"]["replicas"], 1);
    let st = &find(&seen, Method::PATCH, "/fhirservices/fhir/status").body;
    assert_eq!(
        st["status"]["url"],
        "http://fhir.ns1.svc.cluster.local:8080"
    );
    assert_eq!(st["status"]["url"], st["status"]["internalUrl"]);
}
