//! A service's database as the controller sees it: which source the spec names, the Secret
//! `<name>-db` the pods read their URL from, and what deleting the service does to the data.
//!
//! How the database was provisioned is recorded on `<name>-db` itself, so the cleanup of a
//! deleted service does not depend on its Workspace (often deleted in the same breath).

use std::collections::BTreeMap;

use hds_crds::common::{DeletionPolicy, PostgresStorage};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DynamicObject, Patch, PatchParams};

use super::apply::{apply, get_opt, is_status};
use super::status::{Blocked, DatabaseState};
use super::{Ctx, ReconcileError};
use crate::database::{self, PasswordMode, admin, cnpg};
use crate::desired::{DB_URL_KEY, MANAGER, db_secret_name};

const PASSWORD_KEY: &str = "password";
/// `admin`, `cnpg` or `connection`.
const SOURCE_ANNOTATION: &str = "hds.dev/database-source";
const POLICY_ANNOTATION: &str = "hds.dev/deletion-policy";
/// `<secret>/<key>` of the admin connection, for the cleanup of the `admin` source.
const ADMIN_ANNOTATION: &str = "hds.dev/admin-secret";
const NAMES_ANNOTATION: &str = "hds.dev/database";

/// The service whose database this is.
pub(super) struct Owner<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
    pub reference: OwnerReference,
}

/// What the reconcile learned: the database's condition, and events worth a record.
pub(super) struct Outcome {
    pub state: DatabaseState,
    pub events: Vec<(&'static str, String)>,
}

impl Outcome {
    fn blocked(b: Blocked) -> Self {
        Self {
            state: DatabaseState::NotReady(b),
            events: Vec::new(),
        }
    }
}

/// Makes sure the database `storage` describes exists and `<name>-db` holds its URL.
pub(super) async fn ensure(
    ctx: &Ctx,
    owner: &Owner<'_>,
    storage: Option<&PostgresStorage>,
    workspace: &str,
) -> Result<Outcome, ReconcileError> {
    let Some(storage) = storage else {
        return Ok(Outcome::blocked(Blocked::waiting(
            "NoDatabase",
            format!(
                "no spec.storage.postgres, and Workspace '{workspace}' has no spec.defaults.postgres"
            ),
        )));
    };
    if let Some(r) = &storage.connection_secret_ref {
        let url = match secret_value(ctx, owner.namespace, &r.name, &r.key).await? {
            Ok(url) => url,
            Err(b) => return Ok(Outcome::blocked(b)),
        };
        let mut notes = BTreeMap::from([(SOURCE_ANNOTATION, "connection".to_owned())]);
        notes.insert(POLICY_ANNOTATION, policy(storage.deletion_policy).into());
        write_db_secret(ctx, owner, &url, None, notes).await?;
        return Ok(Outcome {
            state: DatabaseState::Ready {
                message: format!("connection URL from Secret '{}'", r.name),
            },
            events: Vec::new(),
        });
    }
    if let Some(r) = &storage.admin_secret_ref {
        let admin_url = match secret_value(ctx, owner.namespace, &r.name, &r.key).await? {
            Ok(url) => url,
            Err(b) => return Ok(Outcome::blocked(b)),
        };
        let names = database::database_names(owner.namespace, owner.name);
        let (password, mode) = existing_password(ctx, owner).await?;
        let provisioned = match admin::ensure(&admin_url, &names, &password, mode).await {
            Ok(p) => p,
            Err(e) => {
                return Ok(Outcome::blocked(Blocked::fault(e.reason(), e.to_string())));
            }
        };
        let url = match database::connection_url(&admin_url, &names, &password) {
            Ok(u) => u,
            Err(e) => return Ok(Outcome::blocked(Blocked::fault(e.reason(), e.to_string()))),
        };
        let mut notes = BTreeMap::from([(SOURCE_ANNOTATION, "admin".to_owned())]);
        notes.insert(POLICY_ANNOTATION, policy(storage.deletion_policy).into());
        notes.insert(ADMIN_ANNOTATION, format!("{}/{}", r.name, r.key));
        notes.insert(NAMES_ANNOTATION, names.database.clone());
        write_db_secret(ctx, owner, &url, Some(&password), notes).await?;
        let mut events = Vec::new();
        if provisioned.created_database {
            events.push((
                "DatabaseCreated",
                format!(
                    "created database {} owned by role {}",
                    names.database, names.role
                ),
            ));
        } else if provisioned.password_set {
            events.push((
                "DatabasePasswordReset",
                format!(
                    "the Secret holding role {}'s password was gone; set a new one",
                    names.role
                ),
            ));
        }
        return Ok(Outcome {
            state: DatabaseState::Ready {
                message: format!("database {} on the admin Secret's server", names.database),
            },
            events,
        });
    }
    if let Some(c) = &storage.cnpg {
        return ensure_cnpg(ctx, owner, c, storage.deletion_policy).await;
    }
    Ok(Outcome::blocked(Blocked::fault(
        "InvalidSpec",
        "postgres storage names none of adminSecretRef, cnpg or connectionSecretRef",
    )))
}

async fn ensure_cnpg(
    ctx: &Ctx,
    owner: &Owner<'_>,
    c: &hds_crds::common::CnpgRef,
    deletion: DeletionPolicy,
) -> Result<Outcome, ReconcileError> {
    match ctx
        .client
        .list_api_group_resources(&format!("{}/v1", cnpg::CNPG_GROUP))
        .await
    {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => {
            return Ok(Outcome::blocked(Blocked::waiting(
                "CnpgNotInstalled",
                format!(
                    "spec names CloudNativePG cluster '{}', but the {}/v1 API is not installed",
                    c.cluster_name,
                    cnpg::CNPG_GROUP
                ),
            )));
        }
        Err(e) => return Err(e.into()),
    }
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        owner.namespace,
        &cnpg::cluster_resource(),
    );
    let Some(cluster) = clusters.get_opt(&c.cluster_name).await? else {
        return Ok(Outcome::blocked(Blocked::waiting(
            "CnpgClusterNotFound",
            format!("CloudNativePG Cluster '{}' not found", c.cluster_name),
        )));
    };
    let names = database::cnpg_names(owner.namespace, owner.name, c);
    let (password, _) = existing_password(ctx, owner).await?;
    let objects = cnpg::desired(
        owner.reference.clone(),
        owner.namespace,
        owner.name,
        c,
        &names,
        deletion,
        &password,
    );
    apply(&ctx.client, &objects.role_secret).await?;
    // CNPG's managed.roles is an atomic list to server-side apply, so applying our entry
    // would replace everyone else's: a merge patch of the whole list as read, guarded by the
    // resourceVersion it was read at, changes only our entry (a concurrent writer gets a 409
    // and the reconcile retries).
    let cluster_json = serde_json::to_value(&cluster).map_err(|e| {
        ReconcileError::Internal(format!("CloudNativePG Cluster '{}': {e}", c.cluster_name))
    })?;
    if let Some(patch) = cnpg::cluster_roles_merge_patch(
        &cluster_json,
        owner.name,
        &names,
        cnpg::RoleEnsure::Present,
    ) {
        clusters
            .patch(
                &c.cluster_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    let pp = PatchParams::apply(MANAGER);
    let databases: Api<DynamicObject> = Api::namespaced_with(
        ctx.client.clone(),
        owner.namespace,
        &cnpg::database_resource(),
    );
    let db = databases
        .patch(owner.name, &pp, &Patch::Apply(&objects.database))
        .await?;
    let url = cnpg::cnpg_url(
        &c.cluster_name,
        owner.namespace,
        &ctx.desired.cluster_domain,
        &names,
        &password,
    );
    let mut notes = BTreeMap::from([(SOURCE_ANNOTATION, "cnpg".to_owned())]);
    notes.insert(POLICY_ANNOTATION, policy(deletion).into());
    notes.insert(NAMES_ANNOTATION, names.database.clone());
    write_db_secret(ctx, owner, &url, Some(&password), notes).await?;
    let status = db.data.get("status");
    let applied = status
        .and_then(|s| s.get("applied"))
        .and_then(|a| a.as_bool())
        == Some(true);
    let state = if applied {
        DatabaseState::Ready {
            message: format!(
                "database {} in CloudNativePG cluster {}",
                names.database, c.cluster_name
            ),
        }
    } else {
        let why = status
            .and_then(|s| s.get("message"))
            .and_then(|m| m.as_str())
            .unwrap_or("CloudNativePG has not applied the Database yet");
        DatabaseState::NotReady(Blocked::waiting("DatabaseNotApplied", why))
    };
    Ok(Outcome {
        state,
        events: Vec::new(),
    })
}

/// What deleting the service does to its database, as recorded on `<name>-db`. Returns the
/// event to record.
pub(super) async fn cleanup(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
) -> Result<Option<(&'static str, String)>, ReconcileError> {
    let Some(secret) = get_opt::<Secret>(&ctx.client, namespace, &db_secret_name(name)).await?
    else {
        return Ok(None);
    };
    let notes = secret.metadata.annotations.unwrap_or_default();
    let get = |k: &str| notes.get(k).map(String::as_str);
    let database = get(NAMES_ANNOTATION).unwrap_or("the database");
    match (get(SOURCE_ANNOTATION), get(POLICY_ANNOTATION)) {
        (Some("admin"), Some("Delete")) => {
            let Some((secret_name, key)) = get(ADMIN_ANNOTATION).and_then(|a| a.split_once('/'))
            else {
                return Ok(None);
            };
            let admin_url = match secret_value(ctx, namespace, secret_name, key).await? {
                Ok(u) => u,
                Err(b) => return Err(ReconcileError::Cleanup(b.message)),
            };
            let names = database::database_names(namespace, name);
            admin::drop(&admin_url, &names)
                .await
                .map_err(|e| ReconcileError::Cleanup(e.to_string()))?;
            Ok(Some((
                "DatabaseDropped",
                format!(
                    "dropped database {} and role {} (deletionPolicy Delete)",
                    names.database, names.role
                ),
            )))
        }
        // CloudNativePG drops it: the Database object carries reclaim policy `delete` and is
        // garbage-collected with the service.
        (Some("cnpg"), Some("Delete")) => Ok(Some((
            "DatabaseDropped",
            format!("CloudNativePG drops {database} (deletionPolicy Delete)"),
        ))),
        (Some("connection"), _) => Ok(Some((
            "DatabaseRetained",
            "the database behind connectionSecretRef is not the operator's to drop".into(),
        ))),
        _ => Ok(Some((
            "DatabaseRetained",
            format!("kept {database} (deletionPolicy Retain)"),
        ))),
    }
}

fn policy(p: DeletionPolicy) -> &'static str {
    match p {
        DeletionPolicy::Retain => "Retain",
        DeletionPolicy::Delete => "Delete",
    }
}

/// The password kept in `<name>-db`, or a new one when that Secret (or its key) is gone, in
/// which case the role's password must be reset to it.
async fn existing_password(
    ctx: &Ctx,
    owner: &Owner<'_>,
) -> Result<(String, PasswordMode), ReconcileError> {
    let existing = get_opt::<Secret>(&ctx.client, owner.namespace, &db_secret_name(owner.name))
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get(PASSWORD_KEY).cloned())
        .and_then(|b| String::from_utf8(b.0).ok())
        .filter(|p| !p.is_empty());
    Ok(match existing {
        Some(p) => (p, PasswordMode::IfCreated),
        None => (database::generate_password(), PasswordMode::Reset),
    })
}

/// The value of `key` in Secret `name`, or why it cannot be had.
async fn secret_value(
    ctx: &Ctx,
    namespace: &str,
    name: &str,
    key: &str,
) -> Result<Result<String, Blocked>, ReconcileError> {
    let Some(secret) = get_opt::<Secret>(&ctx.client, namespace, name).await? else {
        return Ok(Err(Blocked::waiting(
            "SecretNotFound",
            format!("Secret '{name}' not found in namespace '{namespace}'"),
        )));
    };
    let value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .map(|s| s.trim().to_owned())
        });
    Ok(match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(Blocked::waiting(
            "SecretKeyMissing",
            format!("Secret '{name}' has no key '{key}'"),
        )),
    })
}

async fn write_db_secret(
    ctx: &Ctx,
    owner: &Owner<'_>,
    url: &str,
    password: Option<&str>,
    notes: BTreeMap<&'static str, String>,
) -> Result<(), ReconcileError> {
    let mut data = BTreeMap::from([(DB_URL_KEY.to_owned(), ByteString(url.as_bytes().to_vec()))]);
    if let Some(p) = password {
        data.insert(PASSWORD_KEY.into(), ByteString(p.as_bytes().to_vec()));
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(db_secret_name(owner.name)),
            namespace: Some(owner.namespace.into()),
            labels: Some(BTreeMap::from([
                ("app.kubernetes.io/managed-by".into(), MANAGER.into()),
                ("app.kubernetes.io/instance".into(), owner.name.into()),
            ])),
            annotations: Some(notes.into_iter().map(|(k, v)| (k.into(), v)).collect()),
            owner_references: Some(vec![owner.reference.clone()]),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    apply(&ctx.client, &secret).await?;
    Ok(())
}
