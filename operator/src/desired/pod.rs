//! What the three services and the Workspace issuer share: the pod, its volumes, and the
//! objects around it.

use std::collections::BTreeMap;

use hds_crds::common::{AutoscalingSpec, BlobStorage, FilesystemStorage, S3Storage};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretProjection, SecretVolumeSource, SecurityContext, Service,
    ServiceAccount, ServicePort, ServiceSpec, Volume, VolumeMount, VolumeProjection,
    VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::exposure::{horizontal_pod_autoscaler, min_replicas};
use super::{
    CONFIG_DIR, CONFIG_HASH_ANNOTATION, CONFIG_KEY, Context, DB_DIR, DB_URL_KEY, Desired,
    DesiredError, Owner, PORT, config_hash, db_secret_name,
};

/// Answers while the process serves HTTP.
const LIVE: &str = "/health/live";
/// Answers 200 only while the service can do its work (database reachable, broker subscribed).
const READY: &str = "/health/check";

/// The user and group the containers run as (distroless's `nonroot`).
pub const RUN_AS: i64 = 65532;
/// Files of mounted Secrets: readable by the owner and the pod's group only.
const SECRET_MODE: i32 = 0o440;

/// Volumes, mounts, variables and pod annotations a pod needs beyond the config and the
/// database.
#[derive(Default)]
pub(super) struct Pod {
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    env: Vec<EnvVar>,
    claims: Vec<PersistentVolumeClaim>,
    annotations: BTreeMap<String, String>,
}

impl Pod {
    /// An annotation of the pod template: changing its value rolls the pods.
    /// Sets `name` to the pod's own name (the Downward API).
    pub(super) fn pod_name_env(&mut self, name: &str) {
        self.env.push(EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(k8s_openapi::api::core::v1::ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: "metadata.name".into(),
                }),
                ..EnvVarSource::default()
            }),
        });
    }

    pub(super) fn annotate(&mut self, key: &str, value: &str) {
        self.annotations.insert(key.into(), value.into());
    }

    /// Mounts keys of several Secrets as files of one directory: `(secret, key, file name)`.
    pub(super) fn projected_secrets(
        &mut self,
        volume: &str,
        files: &[(String, String, String)],
        dir: &str,
    ) {
        let mut sources: Vec<VolumeProjection> = Vec::new();
        for (secret, key, path) in files {
            let item = KeyToPath {
                key: key.clone(),
                path: path.clone(),
                mode: None,
            };
            // One source per Secret, holding every key taken from it.
            match sources.iter_mut().find_map(|s| {
                s.secret
                    .as_mut()
                    .filter(|p| p.name == *secret)
                    .and_then(|p| p.items.as_mut())
            }) {
                Some(items) => items.push(item),
                None => sources.push(VolumeProjection {
                    secret: Some(SecretProjection {
                        name: secret.clone(),
                        items: Some(vec![item]),
                        optional: None,
                    }),
                    ..VolumeProjection::default()
                }),
            }
        }
        self.volumes.push(Volume {
            name: volume.into(),
            projected: Some(ProjectedVolumeSource {
                sources: Some(sources),
                default_mode: Some(SECRET_MODE),
            }),
            ..Volume::default()
        });
        self.mount(volume, dir, true);
    }

    /// Mounts the keys of Secret `secret` as files in `dir`: `items` maps key to file name.
    pub(super) fn secret_files(
        &mut self,
        volume: &str,
        secret: &str,
        items: &[(&str, &str)],
        dir: &str,
    ) {
        self.volumes.push(Volume {
            name: volume.into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.into()),
                items: Some(
                    items
                        .iter()
                        .map(|(key, path)| KeyToPath {
                            key: (*key).into(),
                            path: (*path).into(),
                            mode: None,
                        })
                        .collect(),
                ),
                default_mode: Some(SECRET_MODE),
                optional: None,
            }),
            ..Volume::default()
        });
        self.mount(volume, dir, true);
    }

    fn mount(&mut self, volume: &str, dir: &str, read_only: bool) {
        self.mounts.push(VolumeMount {
            name: volume.into(),
            mount_path: dir.into(),
            read_only: read_only.then_some(true),
            ..VolumeMount::default()
        });
    }

    /// Blob storage as the pod sees it: a filesystem claim mounted at `dir` (where
    /// `hds_common::from_spec` points the config), or S3 through `AWS_*` variables (added once,
    /// by [`Pod::s3`]).
    pub(super) fn blob_storage(
        &mut self,
        owner: &Owner,
        volume: &str,
        storage: &BlobStorage,
        dir: &str,
        replicas: i32,
    ) {
        if storage.s3.is_none()
            && let Some(fs) = &storage.filesystem
        {
            self.claim(owner, volume, fs, dir, replicas);
        }
    }

    fn claim(
        &mut self,
        owner: &Owner,
        volume: &str,
        fs: &FilesystemStorage,
        dir: &str,
        replicas: i32,
    ) {
        self.volumes.push(Volume {
            name: volume.into(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: fs.claim_name.clone(),
                read_only: None,
            }),
            ..Volume::default()
        });
        self.mount(volume, dir, false);
        let Some(size) = &fs.size else { return };
        if self
            .claims
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some(fs.claim_name.as_str()))
        {
            return;
        }
        // Several replicas on several nodes need a claim they can all mount.
        let mode = if replicas > 1 {
            "ReadWriteMany"
        } else {
            "ReadWriteOnce"
        };
        self.claims.push(PersistentVolumeClaim {
            metadata: ObjectMeta {
                owner_references: None,
                ..owner.meta(fs.claim_name.clone())
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![mode.into()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([("storage".into(), size.clone())])),
                    limits: None,
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            status: None,
        });
    }

    /// The `AWS_*` variables of the S3 storages a service uses. One pod has one set, so the
    /// storages must agree on endpoint, region and credentials (buckets and prefixes may differ:
    /// they are in the URLs).
    pub(super) fn s3(&mut self, owner: &Owner, stores: &[&S3Storage]) -> Result<(), DesiredError> {
        let Some(first) = stores.first() else {
            return Ok(());
        };
        let same = |s: &&S3Storage| {
            s.endpoint == first.endpoint
                && s.region == first.region
                && s.credentials_secret_ref == first.credentials_secret_ref
        };
        if !stores.iter().all(same) {
            return Err(DesiredError::ConflictingS3 {
                kind: owner.kind,
                name: owner.name.clone(),
            });
        }
        let value = |name: &str, v: &str| EnvVar {
            name: name.into(),
            value: Some(v.into()),
            value_from: None,
        };
        if let Some(endpoint) = &first.endpoint {
            self.env.push(value("AWS_ENDPOINT", endpoint));
            if endpoint.starts_with("http://") {
                self.env.push(value("AWS_ALLOW_HTTP", "true"));
            }
        }
        if let Some(region) = &first.region {
            self.env.push(value("AWS_REGION", region));
        }
        if let Some(c) = &first.credentials_secret_ref {
            let secret = |name: &str, key: &str| EnvVar {
                name: name.into(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: c.name.clone(),
                        key: key.into(),
                        optional: None,
                    }),
                    ..EnvVarSource::default()
                }),
            };
            self.env
                .push(secret("AWS_ACCESS_KEY_ID", &c.access_key_id_key));
            self.env
                .push(secret("AWS_SECRET_ACCESS_KEY", &c.secret_access_key_key));
        }
        Ok(())
    }
}

/// Everything a service's (or the Workspace issuer's) objects are made from.
pub(super) struct Workload<'a> {
    pub owner: &'a Owner,
    /// The name of the ServiceAccount, Service, Deployment and PDB: the resource's name for a
    /// service, `<workspace>-issuer` for the issuer.
    pub name: String,
    /// The name of the ConfigMap holding the config.
    pub config_map: String,
    /// The `hds` subcommand: `fhir`, `dicom`, `medtech` or `issuer`.
    pub command: &'static str,
    pub replicas: i32,
    /// A HorizontalPodAutoscaler instead of the fixed `replicas`.
    pub autoscaling: Option<&'a AutoscalingSpec>,
    pub resources: Option<ResourceRequirements>,
    pub config_yaml: String,
    /// Whether the service has a database, whose Secret `<name>-db` is then mounted.
    pub database: bool,
    pub pod: Pod,
}

impl Workload<'_> {
    pub(super) fn build(self, ctx: &Context) -> Desired {
        let owner = self.owner;
        let name = &self.name;
        let data = BTreeMap::from([(CONFIG_KEY.to_owned(), self.config_yaml)]);
        let hash = config_hash(&data);
        let config_map = ConfigMap {
            metadata: owner.meta(self.config_map.clone()),
            data: Some(data),
            ..ConfigMap::default()
        };
        let service_account = ServiceAccount {
            metadata: owner.meta(name.clone()),
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        };
        let service = Service {
            metadata: owner.meta(name.clone()),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(owner.selector()),
                ports: Some(vec![ServicePort {
                    name: Some("http".into()),
                    port: PORT,
                    target_port: Some(IntOrString::String("http".into())),
                    protocol: Some("TCP".into()),
                    ..ServicePort::default()
                }]),
                ..ServiceSpec::default()
            }),
            status: None,
        };
        let selector = LabelSelector {
            match_labels: Some(owner.selector()),
            match_expressions: None,
        };
        // A budget keeps all but one pod through drains, so it needs more than one at all times.
        let pod_disruption_budget =
            (min_replicas(self.replicas, self.autoscaling) > 1).then(|| PodDisruptionBudget {
                metadata: owner.meta(name.clone()),
                spec: Some(PodDisruptionBudgetSpec {
                    max_unavailable: Some(IntOrString::Int(1)),
                    selector: Some(selector.clone()),
                    ..PodDisruptionBudgetSpec::default()
                }),
                status: None,
            });

        let mut pod = self.pod;
        let mut volumes = vec![
            Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.config_map.clone(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            },
        ];
        let mut mounts = vec![
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "tmp".into(),
                mount_path: "/tmp".into(),
                ..VolumeMount::default()
            },
        ];
        // The database Secret, which the database provisioning writes (named after the
        // resource).
        let mut db = Pod::default();
        if self.database {
            db.secret_files(
                "db",
                &db_secret_name(&owner.name),
                &[(DB_URL_KEY, DB_URL_KEY)],
                DB_DIR,
            );
        }
        volumes.append(&mut db.volumes);
        mounts.append(&mut db.mounts);
        volumes.append(&mut pod.volumes);
        mounts.append(&mut pod.mounts);

        let probe = |path: &str, period: i32, failures: i32| Probe {
            http_get: Some(HTTPGetAction {
                path: Some(path.into()),
                port: IntOrString::String("http".into()),
                scheme: Some("HTTP".into()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(period),
            timeout_seconds: Some(5),
            failure_threshold: Some(failures),
            ..Probe::default()
        };
        let seccomp = || {
            Some(SeccompProfile {
                type_: "RuntimeDefault".into(),
                localhost_profile: None,
            })
        };
        let container = Container {
            name: owner.component.into(),
            image: Some(ctx.image.clone()),
            command: Some(vec!["hds".into()]),
            args: Some(vec![
                self.command.into(),
                "--config".into(),
                format!("{CONFIG_DIR}/{CONFIG_KEY}"),
            ]),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: PORT,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]),
            env: (!pod.env.is_empty()).then_some(pod.env),
            resources: self.resources,
            // Migrations run before the service answers: up to five minutes.
            startup_probe: Some(probe(LIVE, 5, 60)),
            // Readiness follows the database (and the broker): an outage takes the pods out of
            // the Service. Liveness does not, or the outage would become a restart loop.
            readiness_probe: Some(probe(READY, 10, 3)),
            liveness_probe: Some(probe(LIVE, 20, 3)),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                run_as_non_root: Some(true),
                capabilities: Some(Capabilities {
                    drop: Some(vec!["ALL".into()]),
                    add: None,
                }),
                seccomp_profile: seccomp(),
                ..SecurityContext::default()
            }),
            volume_mounts: Some(mounts),
            ..Container::default()
        };
        let deployment = Deployment {
            metadata: owner.meta(name.clone()),
            spec: Some(DeploymentSpec {
                // While an autoscaler scales the Deployment the operator must not own the count:
                // server-side apply would set it back on every reconcile, fighting the HPA. The
                // first apply without it may reset the count the operator owned until then to 1,
                // until the HPA (whose minimum is at least 1) scales it again.
                replicas: self.autoscaling.is_none().then_some(self.replicas),
                selector,
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(owner.labels()),
                        annotations: Some({
                            let mut a = pod.annotations;
                            a.insert(CONFIG_HASH_ANNOTATION.into(), hash);
                            a
                        }),
                        ..ObjectMeta::default()
                    }),
                    spec: Some(PodSpec {
                        service_account_name: Some(name.clone()),
                        automount_service_account_token: Some(false),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            run_as_user: Some(RUN_AS),
                            run_as_group: Some(RUN_AS),
                            fs_group: Some(RUN_AS),
                            seccomp_profile: seccomp(),
                            ..PodSecurityContext::default()
                        }),
                        containers: vec![container],
                        volumes: Some(volumes),
                        ..PodSpec::default()
                    }),
                },
                ..DeploymentSpec::default()
            }),
            status: None,
        };
        let horizontal_pod_autoscaler = self
            .autoscaling
            .map(|a| horizontal_pod_autoscaler(owner, name, self.replicas, a));
        Desired {
            config_map,
            service_account,
            service,
            deployment,
            horizontal_pod_autoscaler,
            pod_disruption_budget,
            ingress: None,
            http_route: None,
            persistent_volume_claims: pod.claims,
        }
    }
}
