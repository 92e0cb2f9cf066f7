//! The CloudNativePG path: the objects that make a CNPG `Cluster` hold the service's database
//! and role. Pure functions; the controller applies what they return (the CRDs are found
//! through discovery, so these are `DynamicObject`s and JSON, not typed structs).
//!
//! The role is declared in the Cluster's `spec.managed.roles`, which every CNPG release
//! supports. That list carries no `x-kubernetes-list-type: map` in CNPG's CRD, so it is
//! *atomic* for server-side apply: whoever applies it replaces all of it. See
//! [`cluster_roles_apply`] and [`cluster_roles_merge_patch`] for what that means.

use std::collections::BTreeMap;

use hds_crds::common::{CnpgRef, DeletionPolicy};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use super::{DatabaseNames, percent_encode};
use crate::desired::MANAGER;

pub const CNPG_GROUP: &str = "postgresql.cnpg.io";
pub const CNPG_VERSION: &str = "v1";
/// CNPG reconciles a role again when its password Secret carries this label and changes,
/// which is how a reset password reaches PostgreSQL.
pub const RELOAD_LABEL: &str = "cnpg.io/reload";

/// `postgresql.cnpg.io/v1` `Database`, for `Api<DynamicObject>`.
pub fn database_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(CNPG_GROUP, CNPG_VERSION, "Database");
    ApiResource::from_gvk_with_plural(&gvk, "databases")
}

/// `postgresql.cnpg.io/v1` `Cluster`, for `Api<DynamicObject>`.
pub fn cluster_resource() -> ApiResource {
    let gvk = GroupVersionKind::gvk(CNPG_GROUP, CNPG_VERSION, "Cluster");
    ApiResource::from_gvk_with_plural(&gvk, "clusters")
}

/// The Secret holding the role's password: `<service-name>-db-role`.
pub fn role_secret_name(service_name: &str) -> String {
    format!("{service_name}-db-role")
}

/// Whether the role should exist, CNPG's `ensure`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleEnsure {
    Present,
    Absent,
}

impl RoleEnsure {
    fn as_str(self) -> &'static str {
        match self {
            RoleEnsure::Present => "present",
            RoleEnsure::Absent => "absent",
        }
    }
}

fn labels() -> Value {
    json!({ "app.kubernetes.io/managed-by": MANAGER })
}

/// The `Database` named `<service-name>` in the service's namespace. With `Delete`, CNPG drops
/// the PostgreSQL database when this object goes (with the service, through the owner
/// reference); with `Retain` the database outlives it.
pub fn database(
    service_name: &str,
    namespace: &str,
    cluster_name: &str,
    names: &DatabaseNames,
    policy: DeletionPolicy,
    owner: &OwnerReference,
) -> Value {
    let reclaim = match policy {
        DeletionPolicy::Retain => "retain",
        DeletionPolicy::Delete => "delete",
    };
    json!({
        "apiVersion": format!("{CNPG_GROUP}/{CNPG_VERSION}"),
        "kind": "Database",
        "metadata": {
            "name": service_name,
            "namespace": namespace,
            "labels": labels(),
            "ownerReferences": [owner],
        },
        "spec": {
            "name": names.database,
            "owner": names.role,
            "cluster": { "name": cluster_name },
            "ensure": "present",
            "databaseReclaimPolicy": reclaim,
        },
    })
}

/// The role's password Secret, in the shape CNPG requires for a managed role's
/// `passwordSecret`: type `kubernetes.io/basic-auth`, `username` equal to the role.
pub fn role_secret(
    service_name: &str,
    namespace: &str,
    names: &DatabaseNames,
    password: &str,
    owner: &OwnerReference,
) -> Secret {
    let labels = BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            MANAGER.to_string(),
        ),
        (RELOAD_LABEL.to_string(), "true".to_string()),
    ]);
    Secret {
        metadata: ObjectMeta {
            name: Some(role_secret_name(service_name)),
            namespace: Some(namespace.into()),
            labels: Some(labels),
            owner_references: Some(vec![owner.clone()]),
            ..ObjectMeta::default()
        },
        type_: Some("kubernetes.io/basic-auth".into()),
        string_data: Some(BTreeMap::from([
            ("username".to_string(), names.role.clone()),
            ("password".to_string(), password.to_string()),
        ])),
        ..Secret::default()
    }
}

/// Our entry of `spec.managed.roles`.
pub fn role_entry(service_name: &str, names: &DatabaseNames, ensure: RoleEnsure) -> Value {
    json!({
        "name": names.role,
        "ensure": ensure.as_str(),
        "login": true,
        "passwordSecret": { "name": role_secret_name(service_name) },
    })
}

/// A server-side-apply body for Cluster `<cluster_name>` holding only our role.
///
/// Caution: `spec.managed.roles` is an atomic list in CNPG's CRD, not a map keyed by name, so
/// applying this replaces the whole list, and a forced apply takes it from its other owners
/// (the user's `kubectl apply`, a GitOps tool, another hds service on the same Cluster, which
/// shares our field manager). It is only right when hds is the sole writer of the list;
/// otherwise use [`cluster_roles_merge_patch`].
pub fn cluster_roles_apply(
    cluster_name: &str,
    namespace: &str,
    service_name: &str,
    names: &DatabaseNames,
    ensure: RoleEnsure,
) -> Value {
    json!({
        "apiVersion": format!("{CNPG_GROUP}/{CNPG_VERSION}"),
        "kind": "Cluster",
        "metadata": { "name": cluster_name, "namespace": namespace },
        "spec": { "managed": { "roles": [role_entry(service_name, names, ensure)] } },
    })
}

/// A JSON merge patch (`Patch::Merge`) for the Cluster as read (`cluster`), which puts our
/// entry into `spec.managed.roles` and keeps every other entry; `None` when the list already
/// says what we want.
///
/// A merge patch replaces the list whole, so it carries the `resourceVersion` that was read:
/// when someone else changed the Cluster meanwhile, the API server answers 409 Conflict and
/// the controller reads again and retries, instead of losing their edit.
pub fn cluster_roles_merge_patch(
    cluster: &Value,
    service_name: &str,
    names: &DatabaseNames,
    ensure: RoleEnsure,
) -> Option<Value> {
    let ours = role_entry(service_name, names, ensure);
    let mut roles: Vec<Value> = cluster
        .pointer("/spec/managed/roles")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match roles
        .iter_mut()
        .find(|r| r.get("name") == Some(&json!(names.role)))
    {
        Some(existing) => {
            // The server fills defaults in (inherit, connectionLimit...): compare only what
            // we set, and keep the rest of the entry as it is.
            let fields = ours.as_object()?;
            if fields.iter().all(|(k, v)| existing.get(k) == Some(v)) {
                return None;
            }
            let entry = existing.as_object_mut()?;
            for (k, v) in fields {
                entry.insert(k.clone(), v.clone());
            }
        }
        None if ensure == RoleEnsure::Absent => return None,
        None => roles.push(ours),
    }
    let resource_version = cluster.pointer("/metadata/resourceVersion").cloned();
    Some(json!({
        "metadata": { "resourceVersion": resource_version },
        "spec": { "managed": { "roles": roles } },
    }))
}

/// Everything the CNPG path applies for one service.
#[derive(Clone, Debug)]
pub struct CnpgObjects {
    /// `<service-name>-db-role`, to apply before the Cluster names it.
    pub role_secret: Secret,
    /// The server-side-apply body of [`cluster_roles_apply`]; read its caution.
    pub cluster_roles_patch: Value,
    /// The `Database` of [`database`].
    pub database: Value,
}

/// The Secret, the Cluster's role entry and the `Database` for service `service_name`.
pub fn desired(
    owner: OwnerReference,
    namespace: &str,
    service_name: &str,
    cnpg: &CnpgRef,
    names: &DatabaseNames,
    policy: DeletionPolicy,
    password: &str,
) -> CnpgObjects {
    let cluster = cnpg.cluster_name.as_str();
    CnpgObjects {
        role_secret: role_secret(service_name, namespace, names, password, &owner),
        cluster_roles_patch: cluster_roles_apply(
            cluster,
            namespace,
            service_name,
            names,
            RoleEnsure::Present,
        ),
        database: database(service_name, namespace, cluster, names, policy, &owner),
    }
}

/// The service's URL through the Cluster's read-write Service `<cluster>-rw`.
pub fn cnpg_url(
    cluster: &str,
    namespace: &str,
    cluster_domain: &str,
    names: &DatabaseNames,
    password: &str,
) -> String {
    format!(
        "postgres://{}:{}@{cluster}-rw.{namespace}.svc.{cluster_domain}:5432/{}",
        percent_encode(&names.role),
        percent_encode(password),
        percent_encode(&names.database),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "hds.dev/v1alpha1".into(),
            kind: "FhirService".into(),
            name: "fhir".into(),
            uid: "0000-1111".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn names() -> DatabaseNames {
        DatabaseNames {
            database: "hds_team_fhir".into(),
            role: "hds_team_fhir".into(),
        }
    }

    #[test]
    fn the_database_object_names_cluster_owner_and_reclaim_policy() {
        let db = database(
            "fhir",
            "team",
            "pg",
            &names(),
            DeletionPolicy::Retain,
            &owner(),
        );
        assert_eq!(db["apiVersion"], "postgresql.cnpg.io/v1");
        assert_eq!(db["kind"], "Database");
        assert_eq!(db["metadata"]["name"], "fhir");
        assert_eq!(db["metadata"]["namespace"], "team");
        assert_eq!(
            db["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "hds-operator"
        );
        assert_eq!(db["metadata"]["ownerReferences"][0]["uid"], "0000-1111");
        assert_eq!(db["metadata"]["ownerReferences"][0]["kind"], "FhirService");
        assert_eq!(
            db["spec"],
            json!({
                "name": "hds_team_fhir",
                "owner": "hds_team_fhir",
                "cluster": { "name": "pg" },
                "ensure": "present",
                "databaseReclaimPolicy": "retain",
            })
        );
        let delete = database(
            "fhir",
            "team",
            "pg",
            &names(),
            DeletionPolicy::Delete,
            &owner(),
        );
        assert_eq!(delete["spec"]["databaseReclaimPolicy"], "delete");
    }

    #[test]
    fn the_role_secret_is_basic_auth_owned_and_reloaded() {
        let secret = role_secret("fhir", "team", &names(), "pw", &owner());
        let value = serde_json::to_value(&secret).unwrap();
        assert_eq!(value["metadata"]["name"], "fhir-db-role");
        assert_eq!(value["metadata"]["namespace"], "team");
        assert_eq!(value["type"], "kubernetes.io/basic-auth");
        assert_eq!(
            value["stringData"],
            json!({ "username": "hds_team_fhir", "password": "pw" })
        );
        assert_eq!(value["metadata"]["labels"]["cnpg.io/reload"], "true");
        assert_eq!(value["metadata"]["ownerReferences"][0]["name"], "fhir");
    }

    #[test]
    fn the_cluster_apply_holds_only_our_role() {
        let patch = cluster_roles_apply("pg", "team", "fhir", &names(), RoleEnsure::Present);
        assert_eq!(patch["kind"], "Cluster");
        assert_eq!(
            patch["metadata"],
            json!({ "name": "pg", "namespace": "team" })
        );
        assert_eq!(
            patch["spec"],
            json!({ "managed": { "roles": [{
                "name": "hds_team_fhir",
                "ensure": "present",
                "login": true,
                "passwordSecret": { "name": "fhir-db-role" },
            }] } })
        );
        let absent = cluster_roles_apply("pg", "team", "fhir", &names(), RoleEnsure::Absent);
        assert_eq!(absent["spec"]["managed"]["roles"][0]["ensure"], "absent");
    }

    #[test]
    fn the_merge_patch_keeps_other_roles_and_is_none_when_nothing_changes() {
        let cluster = json!({
            "metadata": { "name": "pg", "resourceVersion": "42" },
            "spec": { "instances": 3, "managed": { "roles": [
                { "name": "dante", "login": true, "ensure": "present" },
            ] } },
        });
        let patch =
            cluster_roles_merge_patch(&cluster, "fhir", &names(), RoleEnsure::Present).unwrap();
        assert_eq!(patch["metadata"]["resourceVersion"], "42");
        let roles = patch["spec"]["managed"]["roles"].as_array().unwrap();
        assert_eq!(roles.len(), 2);
        assert_eq!(roles[0]["name"], "dante");
        assert_eq!(roles[1]["name"], "hds_team_fhir");
        assert!(patch["spec"].get("instances").is_none());

        // As the server returns it: our entry plus the defaults CNPG filled in.
        let mut applied = cluster.clone();
        let mut ours = role_entry("fhir", &names(), RoleEnsure::Present);
        ours["inherit"] = json!(true);
        ours["connectionLimit"] = json!(-1);
        applied["spec"]["managed"]["roles"]
            .as_array_mut()
            .unwrap()
            .push(ours);
        assert_eq!(
            cluster_roles_merge_patch(&applied, "fhir", &names(), RoleEnsure::Present),
            None
        );

        let absent =
            cluster_roles_merge_patch(&applied, "fhir", &names(), RoleEnsure::Absent).unwrap();
        let roles = absent["spec"]["managed"]["roles"].as_array().unwrap();
        assert_eq!(roles[1]["ensure"], "absent");
        assert_eq!(roles[1]["connectionLimit"], -1, "server defaults are kept");
        assert_eq!(
            cluster_roles_merge_patch(&cluster, "fhir", &names(), RoleEnsure::Absent),
            None,
            "a role never declared needs no absent entry"
        );
    }

    #[test]
    fn the_cnpg_url_goes_through_the_rw_service() {
        let url = cnpg_url("pg", "team", "cluster.local", &names(), "p@ss/word");
        assert_eq!(
            url,
            "postgres://hds_team_fhir:p%40ss%2Fword@pg-rw.team.svc.cluster.local:5432/hds_team_fhir"
        );
        let config: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(config.get_password(), Some(&b"p@ss/word"[..]));
    }

    #[test]
    fn the_api_resources_are_cnpg_v1() {
        let db = database_resource();
        assert_eq!(
            (db.group.as_str(), db.version.as_str(), db.kind.as_str()),
            (CNPG_GROUP, "v1", "Database")
        );
        assert_eq!(db.api_version, "postgresql.cnpg.io/v1");
        assert_eq!(db.plural, "databases");
        let cluster = cluster_resource();
        assert_eq!(
            (cluster.kind.as_str(), cluster.plural.as_str()),
            ("Cluster", "clusters")
        );
    }
}
