//! The credentials the operator generates for a Workspace, as Secrets it owns: the issuer's
//! signing key (`<workspace>-signing-key`, key `signingKey`, unless the spec names its own
//! Secret) and the client secret of each service identity (`<workspace>-client-<clientId>`, key
//! `clientSecret`).
//!
//! Pure: given the Workspace and the Secret found (if any), each function says whether a new
//! Secret must be written. A Secret is made when it is absent (or lacks its key), and made anew
//! when the Workspace's [`ROTATE_ANNOTATION`] holds a value other than the one the Secret
//! records in [`ROTATION_ANNOTATION`]. The pods reading those Secrets carry the same value as
//! a pod annotation, so a rotation also rolls them.

use std::collections::BTreeMap;

use hds_crds::Workspace;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::desired::{
    CLIENT_SECRET_KEY, MANAGER, SIGNING_KEY_KEY, client_secret_name, signing_key_secret_name,
};

/// Set on a Workspace by a user, any value: changing it asks for new credentials. Removing it
/// asks for nothing.
pub const ROTATE_ANNOTATION: &str = "hds.dev/rotate-credentials";
/// On the Secrets the operator generated: the [`ROTATE_ANNOTATION`] value they were made for.
/// On the pod templates that read them: the value they were started for.
pub const ROTATION_ANNOTATION: &str = "hds.dev/rotation";

/// The Workspace's rotation request, when it has one.
pub fn rotate_value(ws: &Workspace) -> Option<&str> {
    ws.metadata
        .annotations
        .as_ref()?
        .get(ROTATE_ANNOTATION)
        .map(String::as_str)
}

/// The signing-key Secret to write: Some when it is absent or a rotation is asked for, None to
/// keep the existing one. None as well when the spec names its own signing-key Secret, or the
/// Workspace has no name.
pub fn signing_key_secret(
    ws: &Workspace,
    existing: Option<&Secret>,
    owner: OwnerReference,
) -> Option<Secret> {
    let own = ws
        .spec
        .identity
        .issuer
        .as_ref()
        .is_some_and(|i| i.signing_key_secret_ref.is_some());
    if own {
        return None;
    }
    let name = ws.metadata.name.as_deref()?;
    if keep(ws, existing, SIGNING_KEY_KEY) {
        return None;
    }
    Some(generated(
        ws,
        signing_key_secret_name(name),
        SIGNING_KEY_KEY,
        hds_common::config::generate_signing_key(),
        owner,
    ))
}

/// The Secret holding the secret of the Workspace client `client_id` (a service identity):
/// Some when it is absent or a rotation is asked for, None to keep the existing one. The
/// secret is 32 random bytes in URL-safe base64 without padding.
pub fn client_secret(
    ws: &Workspace,
    client_id: &str,
    existing: Option<&Secret>,
    owner: OwnerReference,
) -> Option<Secret> {
    let name = ws.metadata.name.as_deref()?;
    if keep(ws, existing, CLIENT_SECRET_KEY) {
        return None;
    }
    Some(generated(
        ws,
        client_secret_name(name, client_id),
        CLIENT_SECRET_KEY,
        crate::database::generate_password(),
        owner,
    ))
}

/// Whether `existing` holds a value under `key`, made for the rotation the Workspace asks for.
fn keep(ws: &Workspace, existing: Option<&Secret>, key: &str) -> bool {
    let Some(secret) = existing else {
        return false;
    };
    let has_value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .is_some_and(|v| !v.0.is_empty());
    let recorded = secret
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ROTATION_ANNOTATION))
        .map(String::as_str);
    has_value && rotate_value(ws).is_none_or(|want| recorded == Some(want))
}

fn generated(
    ws: &Workspace,
    name: String,
    key: &str,
    value: String,
    owner: OwnerReference,
) -> Secret {
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "hds".to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            ws.metadata.name.clone().unwrap_or_default(),
        ),
        (
            "app.kubernetes.io/component".to_owned(),
            "identity".to_owned(),
        ),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
    ]);
    let annotations =
        rotate_value(ws).map(|v| BTreeMap::from([(ROTATION_ANNOTATION.to_owned(), v.to_owned())]));
    Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: ws.metadata.namespace.clone(),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            key.to_owned(),
            ByteString(value.into_bytes()),
        )])),
        ..Secret::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ws(extra_meta: &str, spec: &str) -> Workspace {
        serde_yaml::from_str(&format!(
            "apiVersion: hds.dev/v1alpha1\nkind: Workspace\nmetadata: {{name: demo, namespace: ns1, uid: w-1{extra_meta}}}\nspec: {spec}\n"
        ))
        .unwrap()
    }

    fn rotate(value: &str) -> Workspace {
        ws(
            &format!(", annotations: {{hds.dev/rotate-credentials: '{value}'}}"),
            "{}",
        )
    }

    fn owner() -> OwnerReference {
        OwnerReference {
            api_version: "hds.dev/v1alpha1".into(),
            kind: "Workspace".into(),
            name: "demo".into(),
            uid: "w-1".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn value(s: &Secret, key: &str) -> String {
        String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
    }

    #[test]
    fn client_secrets_are_made_once_and_anew_on_rotation() {
        let plain = ws("", "{}");
        let first = client_secret(&plain, "medtech-vitals", None, owner()).unwrap();
        assert_eq!(
            first.metadata.name.as_deref(),
            Some("demo-client-medtech-vitals")
        );
        assert_eq!(first.metadata.namespace.as_deref(), Some("ns1"));
        assert_eq!(first.metadata.owner_references, Some(vec![owner()]));
        assert_eq!(
            first.metadata.labels.as_ref().unwrap()["app.kubernetes.io/managed-by"],
            "hds-operator"
        );
        assert!(first.metadata.annotations.is_none());
        let secret = value(&first, "clientSecret");
        assert_eq!(secret.len(), 43, "32 bytes, base64url without padding");
        assert!(
            secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        // Present and no rotation asked for: kept.
        assert_eq!(
            client_secret(&plain, "medtech-vitals", Some(&first), owner()),
            None
        );

        // A rotation request: a new secret, recording the request.
        let r1 = rotate("1");
        let second = client_secret(&r1, "medtech-vitals", Some(&first), owner()).unwrap();
        assert_ne!(value(&second, "clientSecret"), secret);
        assert_eq!(
            second.metadata.annotations.as_ref().unwrap()[ROTATION_ANNOTATION],
            "1"
        );
        // The same request again: kept.
        assert_eq!(
            client_secret(&r1, "medtech-vitals", Some(&second), owner()),
            None
        );
        // A changed value: rotated again.
        let third = client_secret(&rotate("2"), "medtech-vitals", Some(&second), owner()).unwrap();
        assert_ne!(
            value(&third, "clientSecret"),
            value(&second, "clientSecret")
        );
        // The annotation removed: nothing asked, kept.
        assert_eq!(
            client_secret(&plain, "medtech-vitals", Some(&third), owner()),
            None
        );
        // A Secret that lost its key is made again.
        let mut emptied = third.clone();
        emptied.data = Some(BTreeMap::new());
        assert!(client_secret(&rotate("2"), "medtech-vitals", Some(&emptied), owner()).is_some());
    }

    #[test]
    fn the_signing_key_is_generated_and_rotated_like_the_secrets() {
        let plain = ws("", "{}");
        let key = signing_key_secret(&plain, None, owner()).unwrap();
        assert_eq!(key.metadata.name.as_deref(), Some("demo-signing-key"));
        let pem = value(&key, "signingKey");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
        assert_eq!(signing_key_secret(&plain, Some(&key), owner()), None);
        let rotated = signing_key_secret(&rotate("now"), Some(&key), owner()).unwrap();
        assert_ne!(value(&rotated, "signingKey"), pem);
        assert_eq!(
            signing_key_secret(&rotate("now"), Some(&rotated), owner()),
            None
        );
    }

    #[test]
    fn a_signing_key_the_spec_names_is_never_generated() {
        let own = ws(
            ", annotations: {hds.dev/rotate-credentials: x}",
            "{identity: {issuer: {signingKeySecretRef: {name: my-key}}}}",
        );
        assert_eq!(signing_key_secret(&own, None, owner()), None);
        // The service identities' secrets are still the operator's.
        assert!(client_secret(&own, "medtech-vitals", None, owner()).is_some());
    }
}
