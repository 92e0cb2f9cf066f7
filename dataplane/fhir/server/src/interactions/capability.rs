//! The CapabilityStatement is generated from what the server implements, so it cannot claim
//! more: every interaction listed here has a route, and every search parameter is indexed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use hds_common::config::{AuthMode, FhirServiceConfig, VersionPolicy};
use hds_fhir_search::{ParamType, SearchParam};
use serde_json::{Value, json};

use crate::AppState;
use crate::error::FhirError;
use crate::http::{BaseUrl, QueryPairs, json_response, render_body};

pub async fn metadata(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    QueryPairs(q): QueryPairs,
) -> Result<Response, FhirError> {
    let mut cs = (*s.capability).clone();
    cs["implementation"]["url"] = json!(base);
    // The authority's endpoints, from its discovery document (cached).
    if let Some(uris) = crate::smart_configuration::oauth_uris(&s).await {
        cs["rest"][0]["security"]["extension"] = json!([uris]);
    }
    Ok(json_response(
        StatusCode::OK,
        render_body(&cs.to_string(), &q),
    ))
}

const INTERACTIONS: &[&str] = &[
    "read",
    "vread",
    "update",
    "patch",
    "delete",
    "history-instance",
    "history-type",
    "create",
    "search-type",
];

/// Builds the statement once at start-up; only `implementation.url` varies per request.
pub fn capability_statement(config: &FhirServiceConfig) -> Value {
    let defs = hds_fhir_model::r4();
    let registry = hds_fhir_search::r4();
    let resources: Vec<Value> = defs
        .resource_types()
        .map(|t| {
            let versioning = match config.resource_version_policy.for_type(t) {
                VersionPolicy::NoVersion => "no-version",
                VersionPolicy::Versioned => "versioned",
                VersionPolicy::VersionedUpdate => "versioned-update",
            };
            let mut params: Vec<&std::sync::Arc<SearchParam>> =
                registry.params(t).filter(|p| searchable(p)).collect();
            params.sort_by(|a, b| a.code.cmp(&b.code));
            let includes: Vec<String> = params
                .iter()
                .filter(|p| p.kind == ParamType::Reference)
                .map(|p| format!("{t}:{}", p.code))
                .chain(std::iter::once(format!("{t}:*")))
                .collect();
            let params: Vec<Value> = params
                .iter()
                .map(|p| json!({"name": p.code, "definition": p.url, "type": p.kind.as_str()}))
                .collect();
            let interactions: Vec<Value> =
                INTERACTIONS.iter().map(|c| json!({"code": c})).collect();
            let mut operations = vec![json!({"name": "validate",
                "definition": "http://hl7.org/fhir/OperationDefinition/Resource-validate"})];
            match t {
                "Patient" => operations.extend([
                    json!({"name": "everything",
                        "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}),
                    json!({"name": "export",
                        "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"}),
                ]),
                "Group" => operations.push(json!({"name": "export",
                    "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"})),
                _ => {}
            }
            json!({
                "type": t,
                "interaction": interactions,
                "operation": operations,
                "versioning": versioning,
                "readHistory": true,
                "updateCreate": true,
                "conditionalCreate": true,
                "conditionalRead": "full-support",
                "conditionalUpdate": true,
                "conditionalDelete": "multiple",
                "searchParam": params,
                "searchInclude": includes,
            })
        })
        .collect();
    let mut security = json!({"cors": config.cors.is_some()});
    if config.auth.mode == AuthMode::Oidc {
        security["service"] = json!([{"coding": [
            {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
             "code": "OAuth"},
            {"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
             "code": "SMART-on-FHIR"},
        ], "text": "OAuth 2.0 bearer tokens; SMART on FHIR scopes (v1 and v2) and patient launch context"}]);
        security["description"] = json!(
            "Bearer tokens (OAuth 2.0) are required on every interaction but metadata and /.well-known/smart-configuration. A token with SMART scopes (patient/, user/, system/) may do only what they grant; patient/ scopes confine every interaction to the Patient compartment of the token's patient claim."
        );
    } else {
        security["description"] =
            json!("Authentication is turned off on this service (auth.mode: none)");
    }
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-22",
        "publisher": "hds",
        "kind": "instance",
        "software": {"name": "hds", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": format!("hds FHIR service '{}'", config.name)},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "patchFormat": ["application/json-patch+json", "application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": security,
            "resource": resources,
            "interaction": [
                {"code": "transaction"}, {"code": "batch"},
                {"code": "history-system"}, {"code": "search-system"},
            ],
            // Answered for every type from the server's own tables, not from a parameter's
            // index rows, so listed once here rather than per resource.
            "operation": system_operations(config),
            "searchParam": [
                {"name": "_type", "type": "token",
                 "documentation": "system search: the resource types to search (default: all)"},
                {"name": "_text", "type": "string",
                 "documentation": "full text of the narrative: words are runs of letters and digits; quotes make a phrase, or, -word (websearch syntax)"},
                {"name": "_content", "type": "string",
                 "documentation": "full text of every string in the resource but ids and literal references (same syntax as _text)"},
                {"name": "_list", "type": "string",
                 "documentation": "items of the List with this id; functional lists ($...) are not supported"},
            ],
            "compartment": [
                "http://hl7.org/fhir/CompartmentDefinition/patient",
                "http://hl7.org/fhir/CompartmentDefinition/encounter",
                "http://hl7.org/fhir/CompartmentDefinition/relatedPerson",
                "http://hl7.org/fhir/CompartmentDefinition/practitioner",
                "http://hl7.org/fhir/CompartmentDefinition/device",
            ],
        }],
    })
}

/// Parameters a search can actually use: not the `special` ones.
/// System-level operations: the Bulk Data IG's export, and Azure's own (defined by this
/// server, as Azure defines them by its own).
fn system_operations(config: &FhirServiceConfig) -> Vec<Value> {
    let ours = |name: &str| json!({"name": name, "definition": format!("https://hds.dev/fhir/OperationDefinition/{name}")});
    let mut ops = vec![
        json!({"name": "export",
            "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"}),
        ours("bulk-delete"),
        ours("reindex"),
        ours("purge-history"),
    ];
    if config.import.enabled {
        ops.push(ours("import"));
    }
    ops
}

fn searchable(p: &SearchParam) -> bool {
    match p.kind {
        ParamType::Special => false,
        _ => p.expression.is_some() || p.code == "_id" || p.code == "_lastUpdated",
    }
}
