//! Profiles stored in the service (StructureDefinition resources) as compiled
//! [`hds_fhir_profile::Profile`]s, validation of a resource against core R4 and its profiles,
//! and `validation.enforceProfiles` on writes.
//!
//! A profile is found by its canonical URL through the `url` search index, and compiled once
//! per stored version: the cache is keyed by the StructureDefinition's url, id and version,
//! so an updated profile is recompiled on its next use, and a lookup of the current version
//! is the only database work of a cached profile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use deadpool_postgres::GenericClient;
use hds_fhir_profile::{CompileError, Expansions, Issue, Profile, ValueSets};
use serde_json::Value;

use crate::AppState;
use crate::error::{FhirError, OutcomeIssue};

/// More compiled profiles than this and the cache starts over, so that a service whose
/// profiles keep changing does not keep every old version.
const MAX_CACHED: usize = 512;

type Compiled = Result<Arc<Profile>, CompileError>;

#[derive(Default)]
pub struct ProfileCache {
    /// (url, StructureDefinition id, version id) → the compiled profile or why it is unusable.
    compiled: Mutex<HashMap<(String, String, i64), Compiled>>,
}

/// What looking a profile up found.
pub enum Found {
    Usable(Arc<Profile>),
    Unusable(CompileError),
    NotStored,
}

impl ProfileCache {
    /// The stored profile at `canonical` (`url` or `url|version`); with several versions of
    /// one url and none asked for, the most recently written.
    pub async fn find(
        &self,
        client: &impl GenericClient,
        canonical: &str,
    ) -> Result<Found, FhirError> {
        let (url, version) = match canonical.split_once('|') {
            Some((u, v)) => (u, Some(v)),
            None => (canonical, None),
        };
        for (id, version_id) in current_by_url(client, "StructureDefinition", url).await? {
            let key = (url.to_owned(), id, version_id);
            let cached = self.get(&key);
            let compiled = match cached {
                Some(c) => c,
                None => {
                    let Some(sd) = read_body(client, "StructureDefinition", &key.1).await? else {
                        continue;
                    };
                    let c = Profile::compile(&sd).map(Arc::new);
                    self.put(key, c.clone());
                    c
                }
            };
            match compiled {
                Ok(p) if version.is_none_or(|v| p.version() == Some(v)) => {
                    return Ok(Found::Usable(p));
                }
                Ok(_) => {}
                Err(e) if version.is_none() => return Ok(Found::Unusable(e)),
                Err(_) => {}
            }
        }
        Ok(Found::NotStored)
    }

    fn get(&self, key: &(String, String, i64)) -> Option<Compiled> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
    }

    fn put(&self, key: (String, String, i64), c: Compiled) {
        let mut map = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED {
            map.clear();
        }
        map.insert(key, c);
    }
}

/// (id, version) of the current, undeleted resources of `rt` whose `url` is `url`, newest first.
async fn current_by_url(
    client: &impl GenericClient,
    rt: &str,
    url: &str,
) -> Result<Vec<(String, i64)>, FhirError> {
    let stmt = client
        .prepare_cached(
            "SELECT r.id, r.version_id FROM search_uri u \
             JOIN resources r ON r.res_type = u.res_type AND r.id = u.id \
             WHERE u.res_type = $1 AND u.param = 'url' AND u.uri = $2 AND NOT r.deleted \
             ORDER BY r.last_updated DESC, r.id",
        )
        .await?;
    Ok(client
        .query(&stmt, &[&rt, &url])
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect())
}

async fn read_body(
    client: &impl GenericClient,
    rt: &str,
    id: &str,
) -> Result<Option<Value>, FhirError> {
    let Some(body) = hds_fhir_store::read(client, rt, id)
        .await?
        .and_then(|v| v.body)
    else {
        return Ok(None);
    };
    serde_json::from_str(&body)
        .map(Some)
        .map_err(|e| hds_fhir_store::StoreError::Corrupt(format!("{rt}/{id}"), e).into())
}

/// The ValueSets a profile binds to that R4 does not carry, from those stored here.
async fn stored_value_sets(
    client: &impl GenericClient,
    profile: &Profile,
    into: &mut Expansions,
    notes: &mut Vec<OutcomeIssue>,
) -> Result<(), FhirError> {
    for canonical in profile.bound_value_sets() {
        if hds_fhir_model::r4().value_set(canonical).is_some()
            || into.contains(canonical, None, "").is_some()
        {
            continue;
        }
        let url = canonical.split_once('|').map_or(canonical, |(u, _)| u);
        for (id, _) in current_by_url(client, "ValueSet", url).await? {
            if let Some(vs) = read_body(client, "ValueSet", &id).await?
                && let Err(why) = into.add(&vs)
            {
                notes.push(OutcomeIssue {
                    severity: "warning",
                    code: "not-supported",
                    diagnostics: why,
                    expression: None,
                });
            }
        }
    }
    Ok(())
}

/// Where a profile to validate against came from: asked for by the caller (a missing one
/// is an error) or named by the resource's `meta.profile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    Requested,
    MetaProfile,
}

/// How deep a chain of stored profiles, each a differential on the one before, is followed.
const MAX_DERIVATION: usize = 16;

/// The issues of `resource` against each profile in `profiles`, and against every stored
/// profile a differential among them derives from: a profile that constrains another keeps
/// the other's rules (R4 profiling), and its differential states only what it adds.
pub async fn check_profiles(
    cache: &ProfileCache,
    client: &impl GenericClient,
    resource: &Value,
    profiles: &[(String, Named)],
) -> Result<Vec<OutcomeIssue>, FhirError> {
    let mut out = Vec::new();
    let mut value_sets = Expansions::default();
    let mut checked: Vec<String> = Vec::new();
    for (canonical, named) in profiles {
        let mut next = Some(canonical.clone());
        let mut depth = 0;
        while let Some(canonical) = next.take() {
            // A chain that loops, or meets a profile checked already, has nothing more to add.
            if checked.contains(&canonical) {
                break;
            }
            checked.push(canonical.clone());
            let derived = depth > 0;
            depth += 1;
            match cache.find(client, &canonical).await? {
                Found::Usable(p) => {
                    stored_value_sets(client, &p, &mut value_sets, &mut out).await?;
                    out.extend(
                        p.validate(resource, &value_sets)
                            .into_iter()
                            .map(outcome_issue),
                    );
                    next = p.derived_from().map(str::to_owned);
                    if next.is_some() && depth >= MAX_DERIVATION {
                        out.push(OutcomeIssue::error(
                            "processing",
                            format!(
                                "profile {canonical} derives from a chain of more than \
                                 {MAX_DERIVATION} stored profiles; the rest were not checked"
                            ),
                        ));
                        next = None;
                    }
                }
                Found::Unusable(e) => out.push(
                    OutcomeIssue::error(
                        "processing",
                        format!("the stored profile {canonical} cannot be used: {e}"),
                    )
                    .at("meta.profile"),
                ),
                // The rules of a missing base are unknown, so conformance cannot be claimed.
                Found::NotStored if derived => out.push(OutcomeIssue {
                    severity: severity(*named),
                    code: "not-found",
                    diagnostics: format!(
                        "profile {canonical}, which a profile named here derives from \
                         (baseDefinition), is not stored here (no StructureDefinition with \
                         this url), so its rules were not checked"
                    ),
                    expression: None,
                }),
                Found::NotStored => out.push(OutcomeIssue {
                    severity: severity(*named),
                    code: "not-found",
                    diagnostics: format!(
                        "profile {canonical} is not stored here (no StructureDefinition with this url)"
                    ),
                    expression: (*named == Named::MetaProfile).then(|| "meta.profile".to_owned()),
                }),
            }
        }
    }
    Ok(out)
}

/// A profile that cannot be found fails a request that asked for it, and only warns about
/// one the resource names itself.
fn severity(named: Named) -> &'static str {
    match named {
        Named::Requested => "error",
        Named::MetaProfile => "warning",
    }
}

pub fn outcome_issue(i: Issue) -> OutcomeIssue {
    OutcomeIssue {
        severity: i.severity.as_str(),
        code: i.code.as_str(),
        diagnostics: i.diagnostics,
        expression: Some(i.expression),
    }
}

/// The canonicals in `meta.profile`.
pub fn meta_profiles(resource: &Value) -> Vec<String> {
    resource
        .pointer("/meta/profile")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// `validation.enforceProfiles`: a create or update of a resource that fails a profile named
/// in its `meta.profile` (or names one not stored here) is refused with 422.
pub struct Enforcement {
    cache: Arc<ProfileCache>,
    profiles: Vec<(String, Named)>,
}

impl Enforcement {
    /// What a write of `resource` must be checked against; `None`, at no cost, when the
    /// switch is off or the resource names no profile.
    pub fn of(s: &AppState, resource: &Value) -> Option<Self> {
        Self::with(&s.profiles, s.config.validation.enforce_profiles, resource)
    }

    /// [`Enforcement::of`] from the cache and the switch themselves (for `$import`, whose
    /// worker starts before the service's state exists).
    pub fn with(cache: &Arc<ProfileCache>, enabled: bool, resource: &Value) -> Option<Self> {
        if !enabled {
            return None;
        }
        let named = meta_profiles(resource);
        // A profile that cannot be found cannot be enforced; accepting the resource anyway
        // would let it claim a conformance nobody checked, so each counts as requested.
        (!named.is_empty()).then(|| Self {
            cache: cache.clone(),
            profiles: named.into_iter().map(|p| (p, Named::Requested)).collect(),
        })
    }

    pub async fn check(
        &self,
        client: &impl GenericClient,
        resource: &Value,
    ) -> Result<(), FhirError> {
        let errors: Vec<OutcomeIssue> =
            check_profiles(&self.cache, client, resource, &self.profiles)
                .await?
                .into_iter()
                .filter(|i| i.severity == "error")
                .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FhirError::with_issues(
                StatusCode::UNPROCESSABLE_ENTITY,
                errors,
            ))
        }
    }
}

/// [`Enforcement`] of one write, if any.
pub async fn enforce(
    s: &AppState,
    client: &impl GenericClient,
    resource: &Value,
) -> Result<(), FhirError> {
    match Enforcement::of(s, resource) {
        Some(e) => e.check(client, resource).await,
        None => Ok(()),
    }
}
