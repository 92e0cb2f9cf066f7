use super::*;
use crate::desired::{
    CONFIG_KEY, Context, Desired, WorkspaceService, dicom_service, fhir_service, medtech_service,
    workspace,
};
use hds_common::config::{DicomServiceConfig, FhirServiceConfig, WorkspaceIssuerConfig};
use hds_crds::{DicomService, FhirService, MedTechService, Workspace};
use serde_json::json;

fn ctx() -> Context {
    Context::new("ghcr.io/example/hds:test")
}

fn fhir(extra: &str) -> FhirService {
    serde_yaml::from_str(&format!(
        "apiVersion: hds.dev/v1alpha1\nkind: FhirService\nmetadata: {{name: fhir, namespace: ns1, uid: u-1}}\nspec:\n  workspaceRef: {{name: demo}}\n{extra}"
    ))
    .unwrap()
}

fn dicom(extra: &str) -> DicomService {
    serde_yaml::from_str(&format!(
        "apiVersion: hds.dev/v1alpha1\nkind: DicomService\nmetadata: {{name: img, namespace: ns1, uid: u-3}}\nspec:\n  workspaceRef: {{name: demo}}\n{extra}"
    ))
    .unwrap()
}

fn medtech(extra: &str) -> MedTechService {
    serde_yaml::from_str(&format!(
        r#"apiVersion: hds.dev/v1alpha1
kind: MedTechService
metadata: {{name: vitals, namespace: ns1, uid: u-2}}
spec:
  workspaceRef: {{name: demo}}
  ingestion:
    mqtt: {{brokerUrl: "mqtt://broker:1883", topicFilter: "d/+"}}
  deviceMapping: {{content: {{templateType: CollectionContent, template: []}}}}
  fhirDestination:
    fhirServiceRef: {{name: fhir}}
    fhirMapping: {{content: {{templateType: CollectionFhir, template: []}}}}
{extra}"#
    ))
    .unwrap()
}

fn demo() -> Workspace {
    serde_yaml::from_str(
        "apiVersion: hds.dev/v1alpha1\nkind: Workspace\nmetadata: {name: demo, namespace: ns1, uid: w-1}\nspec: {}\n",
    )
    .unwrap()
}

fn exposure(yaml: &str) -> ExposureSpec {
    serde_yaml::from_str(yaml).unwrap()
}

fn replicas(d: &Desired) -> Option<i32> {
    d.deployment.spec.as_ref().unwrap().replicas
}

const AUTOSCALED_AND_INGRESS: &str = "  replicas: 2
  autoscaling: {maxReplicas: 6, targetMemoryUtilizationPercentage: 70}
  exposure:
    ingress:
      className: nginx
      host: fhir.example.org
      path: /r4/
      tlsSecretName: fhir-tls
      annotations: {cert-manager.io/cluster-issuer: letsencrypt}
";

#[test]
fn the_public_url_follows_the_route_unless_given() {
    assert_eq!(public_url(None), None);
    assert_eq!(public_url(Some(&ExposureSpec::default())), None);
    let ingress = exposure("{ingress: {host: fhir.example.org}}");
    assert_eq!(
        public_url(Some(&ingress)).as_deref(),
        Some("http://fhir.example.org")
    );
    let tls = exposure("{ingress: {host: fhir.example.org, path: /r4/, tlsSecretName: t}}");
    assert_eq!(
        public_url(Some(&tls)).as_deref(),
        Some("https://fhir.example.org/r4")
    );
    let route = exposure(
        "{httpRoute: {parentRefs: [{name: gw}], hostnames: ['*.example.org', dicom.example.org], path: /dicom}}",
    );
    assert_eq!(
        public_url(Some(&route)).as_deref(),
        Some("https://dicom.example.org/dicom")
    );
    let wildcard =
        exposure("{httpRoute: {parentRefs: [{name: gw}], hostnames: ['*.example.org']}}");
    assert_eq!(public_url(Some(&wildcard)), None);
    // The URL wins: TLS terminated before the Ingress, say.
    let given = exposure("{ingress: {host: fhir.internal}, url: 'https://fhir.example.org/'}");
    assert_eq!(
        public_url(Some(&given)).as_deref(),
        Some("https://fhir.example.org")
    );
}

#[test]
fn an_autoscaled_service_leaves_the_replica_count_to_its_autoscaler() {
    let d = fhir_service(&fhir(AUTOSCALED_AND_INGRESS), None, &ctx()).unwrap();
    assert_eq!(replicas(&d), None, "the HPA owns spec.replicas");
    let hpa = serde_json::to_value(d.horizontal_pod_autoscaler.as_ref().unwrap()).unwrap();
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["metadata"]["name"], "fhir");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"],
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "name": "fhir"})
    );
    // minReplicas defaults to spec.replicas.
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 6);
    assert_eq!(
        hpa["spec"]["metrics"],
        json!([
            {"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 80}}},
            {"type": "Resource", "resource": {"name": "memory",
                "target": {"type": "Utilization", "averageUtilization": 70}}},
        ])
    );
    // At least two pods at all times: a budget.
    assert!(d.pod_disruption_budget.is_some());

    let one = fhir_service(
        &fhir("  replicas: 3\n  autoscaling: {minReplicas: 1, maxReplicas: 4, targetCPUUtilizationPercentage: 60}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    // Scaling down to one pod: no budget, whatever spec.replicas says.
    assert!(one.pod_disruption_budget.is_none());
    let hpa = one.horizontal_pod_autoscaler.unwrap().spec.unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(1), 4));
    assert_eq!(hpa.metrics.unwrap().len(), 1);

    // Without autoscaling nothing changes.
    let fixed = fhir_service(&fhir("  replicas: 3\n"), None, &ctx()).unwrap();
    assert_eq!(replicas(&fixed), Some(3));
    assert!(fixed.horizontal_pod_autoscaler.is_none());
    assert!(fixed.ingress.is_none() && fixed.http_route.is_none());
}

#[test]
fn the_default_floor_stays_within_the_autoscaler_bounds() {
    let a = |yaml: &str| -> AutoscalingSpec { serde_yaml::from_str(yaml).unwrap() };
    assert_eq!(min_replicas(0, Some(&a("{maxReplicas: 3}"))), 1);
    assert_eq!(min_replicas(5, Some(&a("{maxReplicas: 3}"))), 3);
    assert_eq!(
        min_replicas(5, Some(&a("{minReplicas: 2, maxReplicas: 3}"))),
        2
    );
    assert_eq!(min_replicas(5, None), 5);
    assert_eq!(max_replicas(1, Some(&a("{maxReplicas: 3}"))), 3);
    assert_eq!(max_replicas(1, None), 1);
}

#[test]
fn claims_are_shared_when_the_autoscaler_may_add_pods() {
    let d = fhir_service(
        &fhir("  export: {enabled: true, storage: {filesystem: {claimName: exports, size: 1Gi}}}\n  autoscaling: {maxReplicas: 3}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    let claim = d.persistent_volume_claims[0].spec.as_ref().unwrap();
    assert_eq!(
        claim.access_modes.as_deref(),
        Some(&["ReadWriteMany".to_owned()][..])
    );
}

#[test]
fn an_ingress_routes_its_host_and_path_to_the_service() {
    let d = fhir_service(&fhir(AUTOSCALED_AND_INGRESS), None, &ctx()).unwrap();
    let ingress = serde_json::to_value(d.ingress.as_ref().unwrap()).unwrap();
    assert_eq!(ingress["apiVersion"], "networking.k8s.io/v1");
    assert_eq!(ingress["metadata"]["name"], "fhir");
    assert_eq!(
        ingress["metadata"]["annotations"],
        json!({"cert-manager.io/cluster-issuer": "letsencrypt"})
    );
    assert_eq!(
        ingress["spec"],
        json!({
            "ingressClassName": "nginx",
            "rules": [{"host": "fhir.example.org", "http": {"paths": [{
                "path": "/r4", "pathType": "Prefix",
                "backend": {"service": {"name": "fhir", "port": {"number": 8080}}},
            }]}}],
            "tls": [{"hosts": ["fhir.example.org"], "secretName": "fhir-tls"}],
        })
    );
    assert!(d.http_route.is_none());
}

#[test]
fn the_public_url_is_the_base_url_and_both_urls_are_audiences() {
    let d = fhir_service(&fhir(AUTOSCALED_AND_INGRESS), Some(&demo()), &ctx()).unwrap();
    let cfg: FhirServiceConfig =
        serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(cfg.base_url.as_deref(), Some("https://fhir.example.org/r4"));
    // MedTech and the DICOM sync call the in-cluster URL and name it in their tokens.
    assert_eq!(
        cfg.auth.additional_audiences,
        ["http://fhir.ns1.svc.cluster.local:8080"]
    );
    let v = hds_common::auth::validator_config("fhir", &cfg.auth, cfg.base_url.as_deref());
    let accepted = &v.unwrap().authorities[0].audiences;
    assert_eq!(
        accepted,
        &[
            "https://fhir.example.org/r4",
            "http://fhir.ns1.svc.cluster.local:8080"
        ]
    );

    // An explicit audience stays the first; both URLs are accepted besides it.
    let explicit = fhir(&format!(
        "{AUTOSCALED_AND_INGRESS}  authentication: {{audience: 'api://fhir'}}\n"
    ));
    let d = fhir_service(&explicit, None, &ctx()).unwrap();
    let cfg: FhirServiceConfig =
        serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(cfg.auth.audience.as_deref(), Some("api://fhir"));
    assert_eq!(
        cfg.auth.additional_audiences,
        [
            "https://fhir.example.org/r4",
            "http://fhir.ns1.svc.cluster.local:8080"
        ]
    );

    // Unexposed: the in-cluster URL alone, as before.
    let d = fhir_service(&fhir(""), None, &ctx()).unwrap();
    let cfg: FhirServiceConfig =
        serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(
        cfg.base_url.as_deref(),
        Some("http://fhir.ns1.svc.cluster.local:8080")
    );
    assert!(cfg.auth.additional_audiences.is_empty());
}

#[test]
fn an_http_route_attaches_to_its_gateways_and_strips_its_path() {
    let d = dicom_service(
        &dicom("  exposure:\n    httpRoute:\n      parentRefs: [{name: public, namespace: gateways, sectionName: https}]\n      hostnames: [imaging.example.org]\n      path: /dicom\n"),
        None,
        &ctx(),
    )
    .unwrap();
    let route = d.http_route.as_ref().unwrap();
    assert_eq!(route["apiVersion"], "gateway.networking.k8s.io/v1");
    assert_eq!(route["kind"], "HTTPRoute");
    assert_eq!(route["metadata"]["name"], "img");
    assert_eq!(
        route["spec"],
        json!({
            "parentRefs": [{"name": "public", "namespace": "gateways", "sectionName": "https"}],
            "hostnames": ["imaging.example.org"],
            "rules": [{
                "matches": [{"path": {"type": "PathPrefix", "value": "/dicom"}}],
                "filters": [{"type": "URLRewrite", "urlRewrite": {"path": {
                    "type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}}}],
                "backendRefs": [{"name": "img", "port": 8080}],
            }],
        })
    );
    assert!(d.ingress.is_none());
    let cfg: DicomServiceConfig =
        serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(
        cfg.base_url.as_deref(),
        Some("https://imaging.example.org/dicom")
    );

    // At the root: no rewrite.
    let root = dicom_service(
        &dicom("  exposure: {httpRoute: {parentRefs: [{name: gw}], hostnames: [imaging.example.org]}}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    let rule = &root.http_route.unwrap()["spec"]["rules"][0];
    assert_eq!(rule["matches"][0]["path"]["value"], "/");
    assert!(rule.get("filters").is_none());
}

#[test]
fn every_object_of_an_exposed_service_is_owned_and_labelled_in_apply_order() {
    let mut svc = fhir(AUTOSCALED_AND_INGRESS);
    svc.spec.exposure = Some(exposure(
        "{httpRoute: {parentRefs: [{name: gw}], hostnames: [fhir.example.org]}}",
    ));
    let with_route = fhir_service(&svc, None, &ctx()).unwrap();
    let with_ingress = fhir_service(&fhir(AUTOSCALED_AND_INGRESS), None, &ctx()).unwrap();
    for (d, last) in [(with_ingress, "Ingress"), (with_route, "HTTPRoute")] {
        let objects = d.objects();
        let kinds: Vec<_> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            [
                "ConfigMap",
                "ServiceAccount",
                "Service",
                "Deployment",
                "HorizontalPodAutoscaler",
                "PodDisruptionBudget",
                last
            ]
        );
        for o in &objects {
            let refs = o["metadata"]["ownerReferences"].as_array().unwrap();
            assert_eq!(refs.len(), 1, "{o}");
            assert_eq!(refs[0]["uid"], "u-1");
            assert_eq!(refs[0]["controller"], true);
            assert_eq!(o["metadata"]["namespace"], "ns1");
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/managed-by"],
                "hds-operator"
            );
            assert_eq!(
                o["metadata"]["labels"]["app.kubernetes.io/instance"],
                "fhir"
            );
        }
    }
}

#[test]
fn medtech_autoscales_and_stays_in_the_cluster() {
    let d = medtech_service(
        &medtech("  autoscaling: {minReplicas: 2, maxReplicas: 8}\n"),
        None,
        &ctx(),
    )
    .unwrap();
    assert_eq!(replicas(&d), None);
    let hpa = d.horizontal_pod_autoscaler.unwrap().spec.unwrap();
    assert_eq!((hpa.min_replicas, hpa.max_replicas), (Some(2), 8));
    assert!(d.pod_disruption_budget.is_some());
    assert!(d.ingress.is_none() && d.http_route.is_none());
}

#[test]
fn the_workspace_issuer_mints_tokens_for_public_and_in_cluster_urls() {
    let ws = demo();
    let services = [
        WorkspaceService::fhir(&fhir(AUTOSCALED_AND_INGRESS)).unwrap(),
        WorkspaceService::medtech(&medtech("")).unwrap(),
    ];
    assert_eq!(
        services[0].public_url.as_deref(),
        Some("https://fhir.example.org/r4")
    );
    let d = workspace(&ws, &services, &ctx()).unwrap();
    let cfg: WorkspaceIssuerConfig =
        serde_yaml::from_str(&d.config_map.data.as_ref().unwrap()[CONFIG_KEY]).unwrap();
    assert_eq!(
        cfg.audiences,
        [
            "http://fhir.ns1.svc.cluster.local:8080",
            "https://fhir.example.org/r4",
            "http://vitals.ns1.svc.cluster.local:8080",
        ]
    );
}
