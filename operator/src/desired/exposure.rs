//! What a service asks for beyond its workload: a HorizontalPodAutoscaler (`spec.autoscaling`),
//! and an Ingress or a Gateway API HTTPRoute (`spec.exposure`) with the public URL that follows
//! from it.
//!
//! The public URL becomes the service's base URL, because FHIR and DICOM answer absolute URLs
//! (Location headers, Bundle links, RetrieveURLs) that clients outside the cluster must be able
//! to follow. Callers inside the cluster (MedTech, the DICOM→FHIR sync) keep using the in-cluster
//! URL, so a service with a public URL accepts tokens naming either ([`accept_own_urls`]) and
//! the Workspace issuer lists both as audiences.

use hds_common::config::AuthConfig;
use hds_crds::common::{AutoscalingSpec, ExposureSpec, HttpRouteSpec, IngressSpec};
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec as K8sIngressSpec, IngressTLS, ServiceBackendPort,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Value, json};

use super::{Desired, Owner, PORT};

/// The Gateway API group of [`HTTP_ROUTE_KIND`].
pub const GATEWAY_API_GROUP: &str = "gateway.networking.k8s.io";
/// The version of the Gateway API the HTTPRoute is written in (GA since Gateway API 1.0).
pub const GATEWAY_API_VERSION: &str = "v1";
pub const HTTP_ROUTE_KIND: &str = "HTTPRoute";
/// The plural of [`HTTP_ROUTE_KIND`], for its URL path.
pub const HTTP_ROUTES: &str = "httproutes";
/// The CPU utilization the autoscaler aims at when the spec names none.
pub const DEFAULT_TARGET_CPU: i32 = 80;

/// The public base URL of a service with `exposure`: `exposure.url` when set; else from the
/// Ingress (`https://` with a TLS Secret, `http://` without) or the HTTPRoute (`https://`, as
/// gateways terminate TLS), its first hostname that is not a wildcard, and its path. Without a
/// trailing slash; None when nothing says where the service is public.
pub fn public_url(exposure: Option<&ExposureSpec>) -> Option<String> {
    let e = exposure?;
    if let Some(url) = &e.url {
        return Some(url.trim_end_matches('/').to_owned());
    }
    if let Some(i) = &e.ingress {
        let scheme = if i.tls_secret_name.is_some() {
            "https"
        } else {
            "http"
        };
        return Some(format!(
            "{scheme}://{}{}",
            i.host,
            prefix(i.path.as_deref())
        ));
    }
    let r = e.http_route.as_ref()?;
    let host = r.hostnames.iter().find(|h| !h.starts_with('*'))?;
    Some(format!("https://{host}{}", prefix(r.path.as_deref())))
}

/// A route's path as the tail of a base URL: `/` is nothing, `/fhir/` is `/fhir`.
fn prefix(path: Option<&str>) -> &str {
    path.unwrap_or("/").trim_end_matches('/')
}

/// A route's path as a match: `/` by default, without a trailing slash otherwise.
fn match_path(path: Option<&str>) -> String {
    match prefix(path) {
        "" => "/".into(),
        p => p.into(),
    }
}

/// Makes the token validator accept the service's own URLs besides the audience it derives
/// (`auth.audience`, else the base URL): with a public URL, the in-cluster URL that callers in
/// the cluster name, and the public URL too when `auth.audience` is set explicitly. The
/// Workspace issuer mints tokens for either URL ([`super::workspace()`]).
pub(super) fn accept_own_urls(auth: &mut AuthConfig, internal: &str, public: Option<&str>) {
    let Some(public) = public else { return };
    let primary = auth.audience.as_deref().unwrap_or(public).to_owned();
    for url in [public, internal] {
        if url != primary && !auth.additional_audiences.iter().any(|a| a == url) {
            auth.additional_audiences.push(url.to_owned());
        }
    }
}

/// The fewest pods the service runs: `autoscaling.minReplicas`, else `replicas` kept within the
/// autoscaler's bounds (an HPA needs at least 1 and at most `maxReplicas`).
pub(super) fn min_replicas(replicas: i32, autoscaling: Option<&AutoscalingSpec>) -> i32 {
    match autoscaling {
        None => replicas,
        Some(a) => a
            .min_replicas
            .unwrap_or_else(|| replicas.max(1).min(a.max_replicas.max(1))),
    }
}

/// The most pods the service may run, which decides whether claims must be shareable.
pub(super) fn max_replicas(replicas: i32, autoscaling: Option<&AutoscalingSpec>) -> i32 {
    match autoscaling {
        None => replicas,
        Some(a) => a.max_replicas.max(min_replicas(replicas, autoscaling)),
    }
}

/// The autoscaler of the Deployment `name`, on average CPU (and memory, when asked)
/// utilization of the pods' requests.
pub(super) fn horizontal_pod_autoscaler(
    owner: &Owner,
    name: &str,
    replicas: i32,
    a: &AutoscalingSpec,
) -> HorizontalPodAutoscaler {
    let utilization = |resource: &str, percent: i32| MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    };
    let cpu = a
        .target_cpu_utilization_percentage
        .unwrap_or(DEFAULT_TARGET_CPU);
    let mut metrics = vec![utilization("cpu", cpu)];
    if let Some(memory) = a.target_memory_utilization_percentage {
        metrics.push(utilization("memory", memory));
    }
    HorizontalPodAutoscaler {
        metadata: owner.meta(name.into()),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: name.into(),
            },
            min_replicas: Some(min_replicas(replicas, Some(a))),
            max_replicas: a.max_replicas,
            metrics: Some(metrics),
            behavior: None,
        }),
        status: None,
    }
}

/// Adds the Ingress or HTTPRoute `exposure` asks for to `desired`, both named after the service
/// and sending to its Service's port.
pub(super) fn expose(owner: &Owner, exposure: Option<&ExposureSpec>, desired: &mut Desired) {
    let Some(e) = exposure else { return };
    desired.ingress = e.ingress.as_ref().map(|i| ingress(owner, i));
    desired.http_route = e.http_route.as_ref().map(|r| http_route(owner, r));
}

fn ingress(owner: &Owner, spec: &IngressSpec) -> Ingress {
    let name = owner.name.clone();
    Ingress {
        metadata: ObjectMeta {
            annotations: (!spec.annotations.is_empty()).then(|| spec.annotations.clone()),
            ..owner.meta(name.clone())
        },
        spec: Some(K8sIngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(match_path(spec.path.as_deref())),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name,
                                port: Some(ServiceBackendPort {
                                    name: None,
                                    number: Some(PORT),
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: spec.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    }
}

/// The HTTPRoute as JSON: k8s-openapi has no Gateway API types. One rule: the path prefix to
/// the Service; a longer prefix than `/` is replaced by `/` on the way (the standard URLRewrite
/// filter), since the service answers at its root.
fn http_route(owner: &Owner, spec: &HttpRouteSpec) -> Value {
    let parents: Vec<Value> = spec
        .parent_refs
        .iter()
        .map(|p| {
            let mut r = json!({"name": p.name});
            if let Some(ns) = &p.namespace {
                r["namespace"] = json!(ns);
            }
            if let Some(section) = &p.section_name {
                r["sectionName"] = json!(section);
            }
            r
        })
        .collect();
    let path = match_path(spec.path.as_deref());
    let mut rule = json!({
        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
        "backendRefs": [{"name": owner.name, "port": PORT}],
    });
    if path != "/" {
        rule["filters"] = json!([{
            "type": "URLRewrite",
            "urlRewrite": {"path": {"type": "ReplacePrefixMatch", "replacePrefixMatch": "/"}},
        }]);
    }
    json!({
        "apiVersion": format!("{GATEWAY_API_GROUP}/{GATEWAY_API_VERSION}"),
        "kind": HTTP_ROUTE_KIND,
        "metadata": owner.meta(owner.name.clone()),
        "spec": {
            "parentRefs": parents,
            "hostnames": spec.hostnames,
            "rules": [rule],
        },
    })
}

#[cfg(test)]
#[path = "exposure_tests.rs"]
mod tests;
