//! The conditions a service resource reports, as a pure function of what the reconcile saw.
//!
//! Every service carries Ready, Progressing and Degraded (and, with a database, DatabaseReady),
//! each stamped with the generation it was computed from, so `kubectl wait --for=condition=Ready`
//! and GitOps tools can tell a stale verdict from a fresh one.

use hds_crds::common::condition_types::{DEGRADED, PROGRESSING, READY};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

pub const DATABASE_READY: &str = "DatabaseReady";

/// Why a reconcile stopped short of applying the workload, in the words a condition uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    pub reason: &'static str,
    pub message: String,
    /// True for faults (the operator or a dependency failed), false for things the user has
    /// yet to provide (a Secret, a Workspace): only faults make the resource Degraded.
    pub fault: bool,
}

impl Blocked {
    pub fn waiting(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            fault: false,
        }
    }

    pub fn fault(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
            fault: true,
        }
    }
}

/// How far a Deployment has rolled out its current template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rollout {
    Available,
    InProgress {
        updated: i32,
        available: i32,
        desired: i32,
    },
    /// The Deployment's own Progressing condition gave up (ProgressDeadlineExceeded).
    Stalled {
        message: String,
    },
}

pub fn rollout(dep: &Deployment) -> Rollout {
    let desired = dep.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let generation = dep.metadata.generation.unwrap_or(0);
    let Some(st) = dep.status.as_ref() else {
        return Rollout::InProgress {
            updated: 0,
            available: 0,
            desired,
        };
    };
    if let Some(c) = st.conditions.iter().flatten().find(|c| {
        c.type_ == "Progressing"
            && c.status == "False"
            && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
    }) {
        return Rollout::Stalled {
            message: c.message.clone().unwrap_or_default(),
        };
    }
    let updated = st.updated_replicas.unwrap_or(0);
    let available = st.available_replicas.unwrap_or(0);
    let total = st.replicas.unwrap_or(0);
    let observed = st.observed_generation.unwrap_or(0) >= generation;
    if observed && updated >= desired && available >= desired && total <= desired {
        Rollout::Available
    } else {
        Rollout::InProgress {
            updated,
            available,
            desired,
        }
    }
}

/// What a reconcile observed, from which the conditions follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Blocked(Blocked),
    Workload(Rollout),
}

/// The database's own condition, for services that have one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseState {
    Ready { message: String },
    NotReady(Blocked),
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str, generation: i64) -> Condition {
    Condition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: reason.into(),
        message: message.into(),
        observed_generation: Some(generation),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::now()),
    }
}

/// The conditions for `observed`, keeping each previous condition's transition time when its
/// status did not change (the API conventions' meaning of lastTransitionTime).
pub fn conditions(
    observed: &Observed,
    database: Option<&DatabaseState>,
    generation: i64,
    previous: &[Condition],
) -> Vec<Condition> {
    let mut out = match observed {
        Observed::Blocked(b) => vec![
            condition(READY, false, b.reason, &b.message, generation),
            condition(PROGRESSING, false, b.reason, &b.message, generation),
            if b.fault {
                condition(DEGRADED, true, b.reason, &b.message, generation)
            } else {
                condition(DEGRADED, false, "AsExpected", "", generation)
            },
        ],
        Observed::Workload(Rollout::Available) => vec![
            condition(
                READY,
                true,
                "Available",
                "all replicas are up to date and available",
                generation,
            ),
            condition(PROGRESSING, false, "RolloutComplete", "", generation),
            condition(DEGRADED, false, "AsExpected", "", generation),
        ],
        Observed::Workload(Rollout::InProgress {
            updated,
            available,
            desired,
        }) => {
            let msg = format!("{updated} of {desired} replicas updated, {available} available");
            vec![
                condition(READY, false, "RollingOut", &msg, generation),
                condition(PROGRESSING, true, "RollingOut", &msg, generation),
                condition(DEGRADED, false, "AsExpected", "", generation),
            ]
        }
        Observed::Workload(Rollout::Stalled { message }) => vec![
            condition(
                READY,
                false,
                "ProgressDeadlineExceeded",
                message,
                generation,
            ),
            condition(
                PROGRESSING,
                false,
                "ProgressDeadlineExceeded",
                message,
                generation,
            ),
            condition(
                DEGRADED,
                true,
                "ProgressDeadlineExceeded",
                message,
                generation,
            ),
        ],
    };
    match database {
        Some(DatabaseState::Ready { message }) => out.push(condition(
            DATABASE_READY,
            true,
            "Provisioned",
            message,
            generation,
        )),
        Some(DatabaseState::NotReady(b)) => out.push(condition(
            DATABASE_READY,
            false,
            b.reason,
            &b.message,
            generation,
        )),
        None => {}
    }
    for c in &mut out {
        if let Some(old) = previous.iter().find(|o| o.type_ == c.type_)
            && old.status == c.status
        {
            c.last_transition_time = old.last_transition_time.clone();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn deployment(generation: i64, observed: i64, updated: i32, available: i32) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..Default::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                ..Default::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(2),
                updated_replicas: Some(updated),
                available_replicas: Some(available),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn a_deployment_is_available_only_when_its_current_template_is() {
        assert_eq!(rollout(&deployment(3, 3, 2, 2)), Rollout::Available);
        // The controller has not seen generation 3 yet: its counts describe the old template.
        assert!(matches!(
            rollout(&deployment(3, 2, 2, 2)),
            Rollout::InProgress { .. }
        ));
        assert_eq!(
            rollout(&deployment(3, 3, 1, 2)),
            Rollout::InProgress {
                updated: 1,
                available: 2,
                desired: 2
            }
        );
        let mut stalled = deployment(3, 3, 1, 1);
        stalled.status.as_mut().unwrap().conditions = Some(vec![DeploymentCondition {
            type_: "Progressing".into(),
            status: "False".into(),
            reason: Some("ProgressDeadlineExceeded".into()),
            message: Some("ReplicaSet \"fhir-x\" has timed out progressing.".into()),
            ..Default::default()
        }]);
        assert!(matches!(rollout(&stalled), Rollout::Stalled { .. }));
        assert!(matches!(
            rollout(&Deployment::default()),
            Rollout::InProgress { .. }
        ));
    }

    fn find<'a>(cs: &'a [Condition], t: &str) -> &'a Condition {
        cs.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn a_missing_secret_is_waiting_not_degraded_and_a_fault_is_degraded() {
        let waiting =
            Observed::Blocked(Blocked::waiting("SecretNotFound", "Secret 'pg' not found"));
        let cs = conditions(&waiting, None, 4, &[]);
        assert_eq!(find(&cs, READY).status, "False");
        assert_eq!(find(&cs, READY).reason, "SecretNotFound");
        assert_eq!(find(&cs, READY).observed_generation, Some(4));
        assert_eq!(find(&cs, DEGRADED).status, "False");
        let fault = Observed::Blocked(Blocked::fault("ApplyConflict", "conflict"));
        let cs = conditions(&fault, None, 4, &[]);
        assert_eq!(find(&cs, DEGRADED).status, "True");
        assert_eq!(find(&cs, DEGRADED).reason, "ApplyConflict");
    }

    #[test]
    fn transition_times_survive_an_unchanged_status() {
        let ready = Observed::Workload(Rollout::Available);
        let db = DatabaseState::Ready {
            message: "database hds_ns_fhir".into(),
        };
        let mut first = conditions(&ready, Some(&db), 1, &[]);
        let past = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        for c in &mut first {
            c.last_transition_time = past.clone();
        }
        let second = conditions(&ready, Some(&db), 2, &first);
        assert_eq!(find(&second, READY).last_transition_time, past);
        assert_eq!(find(&second, DATABASE_READY).status, "True");
        assert_eq!(find(&second, READY).observed_generation, Some(2));
        let rolling = Observed::Workload(Rollout::InProgress {
            updated: 0,
            available: 1,
            desired: 1,
        });
        let third = conditions(&rolling, Some(&db), 3, &second);
        assert_ne!(find(&third, READY).last_transition_time, past);
        assert_eq!(find(&third, PROGRESSING).status, "True");
        assert_eq!(find(&third, DATABASE_READY).last_transition_time, past);
    }
}
