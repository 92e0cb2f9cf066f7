//! Loading hds.dev resources (and the Secrets they reference) from plain YAML files, for tools
//! that run without an apiserver, such as `hds up`.

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;

use crate::{API_VERSION, DicomService, FhirService, MedTechService, Workspace};

// A handful of manifests are parsed per run, so boxing would only make matching noisier.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Manifest {
    Workspace(Workspace),
    FhirService(FhirService),
    DicomService(DicomService),
    MedTechService(MedTechService),
    Secret {
        name: String,
        namespace: Option<String>,
        /// Decoded values: `data` (base64) overlaid by `stringData`, as the apiserver does.
        data: BTreeMap<String, String>,
    },
    /// Anything else is passed through untouched; callers decide whether to ignore or reject it.
    Other {
        api_version: String,
        kind: String,
        name: Option<String>,
    },
}

impl Manifest {
    pub fn kind(&self) -> &str {
        match self {
            Manifest::Workspace(_) => "Workspace",
            Manifest::FhirService(_) => "FhirService",
            Manifest::DicomService(_) => "DicomService",
            Manifest::MedTechService(_) => "MedTechService",
            Manifest::Secret { .. } => "Secret",
            Manifest::Other { kind, .. } => kind,
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            Manifest::Workspace(r) => r.metadata.name.as_deref(),
            Manifest::FhirService(r) => r.metadata.name.as_deref(),
            Manifest::DicomService(r) => r.metadata.name.as_deref(),
            Manifest::MedTechService(r) => r.metadata.name.as_deref(),
            Manifest::Secret { name, .. } => Some(name),
            Manifest::Other { name, .. } => name.as_deref(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("document {index}: invalid YAML: {source}")]
    Yaml {
        index: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index}: missing or non-string `{field}`")]
    MissingField { index: usize, field: &'static str },
    #[error("document {index} ({kind} {name}): {source}")]
    Invalid {
        index: usize,
        kind: String,
        name: String,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {index} (Secret {name}): {message}")]
    InvalidSecret {
        index: usize,
        name: String,
        message: String,
    },
}

/// Parses a multi-document YAML stream. Empty documents are skipped; document indexes in
/// errors are 0-based positions in the stream, counting empty documents.
pub fn parse_manifests(yaml: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for (index, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let value = serde_yaml::Value::deserialize(doc)
            .map_err(|source| ManifestError::Yaml { index, source })?;
        if value.is_null() {
            continue;
        }
        out.push(parse_one(index, value)?);
    }
    Ok(out)
}

fn parse_one(index: usize, value: serde_yaml::Value) -> Result<Manifest, ManifestError> {
    let field = |field: &'static str| {
        value
            .get(field)
            .and_then(|v| v.as_str())
            .map(str::to_owned)
            .ok_or(ManifestError::MissingField { index, field })
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
        .map(str::to_owned);

    let invalid = |source| ManifestError::Invalid {
        index,
        kind: kind.clone(),
        name: name.clone().unwrap_or_else(|| "<unnamed>".into()),
        source,
    };
    let hds = api_version == API_VERSION;
    Ok(match kind.as_str() {
        "Workspace" if hds => Manifest::Workspace(serde_yaml::from_value(value).map_err(invalid)?),
        "FhirService" if hds => {
            Manifest::FhirService(serde_yaml::from_value(value).map_err(invalid)?)
        }
        "DicomService" if hds => {
            Manifest::DicomService(serde_yaml::from_value(value).map_err(invalid)?)
        }
        "MedTechService" if hds => {
            Manifest::MedTechService(serde_yaml::from_value(value).map_err(invalid)?)
        }
        "Secret" if api_version == "v1" => parse_secret(value).map_err(|e| match e {
            SecretError::Yaml(source) => invalid(source),
            SecretError::Data(message) => ManifestError::InvalidSecret {
                index,
                name: name.clone().unwrap_or_else(|| "<unnamed>".into()),
                message,
            },
        })?,
        _ => Manifest::Other {
            api_version,
            kind,
            name,
        },
    })
}

enum SecretError {
    Yaml(serde_yaml::Error),
    Data(String),
}

fn parse_secret(value: serde_yaml::Value) -> Result<Manifest, SecretError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Meta {
        name: String,
        #[serde(default)]
        namespace: Option<String>,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Secret {
        metadata: Meta,
        #[serde(default)]
        data: BTreeMap<String, String>,
        #[serde(default)]
        string_data: BTreeMap<String, String>,
    }
    let secret: Secret = serde_yaml::from_value(value).map_err(SecretError::Yaml)?;
    let mut data = BTreeMap::new();
    for (key, encoded) in secret.data {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| SecretError::Data(format!("data.{key} is not valid base64: {e}")))?;
        let text = String::from_utf8(bytes)
            .map_err(|_| SecretError::Data(format!("data.{key} is not UTF-8 text")))?;
        data.insert(key, text);
    }
    data.extend(secret.string_data);
    Ok(Manifest::Secret {
        name: secret.metadata.name,
        namespace: secret.metadata.namespace,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const FHIR: &str = "apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {name: fhir, namespace: default}
spec:
  workspaceRef: {name: demo}
  authentication: {mode: none}
";

    #[test]
    fn parses_kinds_and_skips_empty_documents() {
        let yaml = format!(
            "---\n{FHIR}---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm}}\n"
        );
        let manifests = parse_manifests(&yaml).unwrap();
        assert_eq!(manifests.len(), 2);
        let Manifest::FhirService(fhir) = &manifests[0] else {
            panic!("{manifests:?}")
        };
        assert_eq!(fhir.metadata.name.as_deref(), Some("fhir"));
        assert_eq!(
            fhir.spec.authentication.mode,
            crate::common::AuthenticationMode::None
        );
        // Defaults apply as the apiserver would apply them.
        assert_eq!(fhir.spec.replicas, 1);
        assert_eq!(
            manifests[1],
            Manifest::Other {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                name: Some("cm".into()),
            }
        );
    }

    #[test]
    fn decodes_secret_data_with_string_data_winning() {
        let yaml = "apiVersion: v1
kind: Secret
metadata: {name: pg, namespace: db}
data:
  uri: cG9zdGdyZXM6Ly9h
  user: YWRtaW4=
stringData:
  user: root
";
        let manifests = parse_manifests(yaml).unwrap();
        let Manifest::Secret {
            name,
            namespace,
            data,
        } = &manifests[0]
        else {
            panic!("{manifests:?}")
        };
        assert_eq!(name, "pg");
        assert_eq!(namespace.as_deref(), Some("db"));
        assert_eq!(data["uri"], "postgres://a");
        assert_eq!(data["user"], "root");
    }

    #[test]
    fn errors_name_document_kind_and_name() {
        let yaml = format!(
            "{FHIR}---\napiVersion: hds.dev/v1alpha1\nkind: DicomService\nmetadata: {{name: broken}}\nspec:\n  replicas: many\n"
        );
        let err = parse_manifests(&yaml).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, ManifestError::Invalid { index: 1, .. }),
            "{msg}"
        );
        assert!(msg.contains("document 1 (DicomService broken)"), "{msg}");
    }

    #[test]
    fn rejects_documents_without_kind_and_bad_base64() {
        let err = parse_manifests("apiVersion: v1\nmetadata: {name: x}\n").unwrap_err();
        assert!(
            matches!(
                err,
                ManifestError::MissingField {
                    index: 0,
                    field: "kind"
                }
            ),
            "{err}"
        );

        let err =
            parse_manifests("apiVersion: v1\nkind: Secret\nmetadata: {name: s}\ndata: {k: '!!'}\n")
                .unwrap_err();
        assert!(err.to_string().contains("Secret s"), "{err}");
    }

    #[test]
    fn reports_yaml_syntax_errors_with_index() {
        let err = parse_manifests("a: [1, 2\n").unwrap_err();
        assert!(matches!(err, ManifestError::Yaml { index: 0, .. }), "{err}");
    }
}
