//! SMART on FHIR at the API (App Launch 1.0 and 2.0): what a token's scopes let one request do,
//! and the filters that confine it.
//!
//! A token that carries SMART resource scopes (`patient/…`, `user/…`, `system/…`) may do only
//! what they grant, whatever its roles; one without them is governed by its roles alone. The
//! `authenticate` layer checks the interaction and type of the route against the scopes and
//! leaves a [`Smart`] in the request; handlers take it as [`Access`] and ask it for the
//! [`Grants`] of what they do, which become:
//!
//! - for searches, one more filter ANDed into the parsed query and compiled by the same SQL as
//!   every other (the Patient compartment of the `patient` claim, and v2 `?query` constraints),
//!   with chains, `_has` and `_list` confined likewise inside, and `_include`d resources
//!   filtered through the same SQL before they are returned;
//! - for reads, that same filter on the one resource (a miss is a 404, as for a resource that
//!   does not exist);
//! - for writes, the resource before (if it exists) and after must both be in the compartment
//!   and refer to no other patient through the compartment's parameters, and match the scope's
//!   query when it has one (checked by SQL inside the write's transaction, which a miss rolls
//!   back).
//!
//! `patient/` scopes cover only the resource types of the R4 Patient CompartmentDefinition;
//! the Patient type itself is the launch patient's own record alone (not Patients that `link`
//! to it). Medication, Practitioner, Organization and the other types outside the compartment
//! need a `user/` or `system/` scope. `user/` and `system/` scopes narrow by type and
//! interaction only: this server keeps no per-user access lists for `fhirUser`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use deadpool_postgres::GenericClient;
use hds_auth::smart::{Context, Interaction, Scopes};
use hds_common::db::TypedQuery;
use hds_fhir_search::query::ReferenceValue;
use hds_fhir_search::{Filter, Include, Query, Registry, ResultParams, Total};
use hds_fhir_store::StoredVersion;
use serde_json::Value;

use crate::error::FhirError;

/// What `authenticate` learnt of a token with SMART resource scopes.
#[derive(Debug, Clone)]
pub struct Smart {
    pub scopes: Arc<Scopes>,
    /// The launch patient's id (the `patient` claim); present whenever a patient/ scope is.
    pub patient: Option<String>,
}

/// What a handler may do: everything its route's data action allows (no SMART scopes, or
/// authentication off), or what the token's scopes grant.
#[derive(Debug, Clone)]
pub enum Access {
    Open,
    Scoped(Smart),
}

impl<S: Send + Sync> FromRequestParts<S> for Access {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Smart>()
            .cloned()
            .map_or(Access::Open, Access::Scoped))
    }
}

pub fn forbidden(diagnostics: impl Into<String>) -> FhirError {
    FhirError::new(StatusCode::FORBIDDEN, "forbidden", diagnostics)
}

/// Whether `rt` resources can be in a Patient compartment.
pub fn in_patient_compartment(rt: &str) -> bool {
    rt == "Patient"
        || !hds_fhir_search::r4()
            .compartment_params("Patient", rt)
            .is_empty()
}

fn not_in_compartment(scope: &str, rt: &str) -> String {
    format!(
        "{scope} does not cover {rt}: patient/ scopes grant only resource types in the Patient compartment (add a user/ or system/ scope for {rt})"
    )
}

/// The checks `authenticate` makes on a request whose token carries SMART scopes: the launch
/// context, and that the route is an interaction the scopes can grant on its type. What is
/// allowed within the type is for the handler.
pub fn admit(
    principal: &hds_auth::Principal,
    scopes: Scopes,
    method: &Method,
    route: &str,
    path: &str,
) -> Result<Smart, FhirError> {
    // The launch patient matters to patient/ scopes alone.
    let patient = match principal
        .patient
        .as_ref()
        .filter(|_| scopes.uses(Context::Patient))
    {
        Some(p) => {
            let id = p.strip_prefix("Patient/").unwrap_or(p);
            if !crate::interactions::valid_id(id) {
                return Err(forbidden(format!(
                    "the token's patient claim '{p}' is not a Patient id"
                )));
            }
            Some(id.to_owned())
        }
        None => None,
    };
    if scopes.uses(Context::Patient) && patient.is_none() {
        return Err(forbidden(
            "the token has patient/ scopes but no patient claim: without the launch patient there is no compartment to confine them to",
        ));
    }
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let seg: Vec<&str> = path.trim_matches('/').split('/').collect();
    let need = |rt: Option<&&str>, i: Interaction| -> Result<(), FhirError> {
        let rt = rt.copied().unwrap_or_default();
        let mut reasons = Vec::new();
        for s in scopes.granting(rt, i) {
            if s.context != Context::Patient || in_patient_compartment(rt) {
                return Ok(());
            }
            reasons.push(not_in_compartment(&s.text, rt));
        }
        reasons.insert(0, Scopes::missing(rt, i));
        Err(forbidden(reasons.join("; ")))
    };
    use Interaction::*;
    match (m, route) {
        // The types of a system search or history are known to the handler only.
        ("GET", "/") | ("POST", "/_search") | ("GET", "/_history") => {}
        // A batch or transaction: each entry is judged as the request it stands for.
        ("POST", "/") => {}
        ("GET", "/{type}") | ("POST", "/{type}/_search") | ("GET", "/{type}/_history") => {
            need(seg.first(), Search)?
        }
        ("POST", "/{type}") => need(seg.first(), Create)?,
        ("PUT" | "PATCH", "/{type}") => {
            need(seg.first(), Update)?;
            need(seg.first(), Search)?
        }
        ("DELETE", "/{type}") => {
            need(seg.first(), Delete)?;
            need(seg.first(), Search)?
        }
        ("GET", "/{type}/{id}" | "/{type}/{id}/_history" | "/{type}/{id}/_history/{vid}") => {
            need(seg.first(), Read)?
        }
        ("PUT" | "PATCH", "/{type}/{id}") => need(seg.first(), Update)?,
        ("DELETE", "/{type}/{id}") => need(seg.first(), Delete)?,
        ("GET", "/{comp}/{id}/{type}") | ("POST", "/{comp}/{id}/{type}/_search") => {
            need(seg.get(2), Search)?
        }
        _ => {
            return Err(forbidden(format!(
                "{m} {route} is not an interaction SMART scopes can grant, so a token with SMART scopes may not call it"
            )));
        }
    }
    Ok(Smart {
        scopes: Arc::new(scopes),
        patient,
    })
}

/// One way a scope lets the caller act on a type.
#[derive(Debug, Clone)]
pub struct Grant {
    /// The scope as the token wrote it.
    pub scope: String,
    /// The Patient compartment it confines to (patient/ scopes).
    pub patient: Option<String>,
    /// A v2 scope's `?query`, parsed for the type: filters a resource must match (ANDed).
    pub constraint: Vec<Filter>,
}

impl Grant {
    fn unconditional(&self) -> bool {
        self.patient.is_none() && self.constraint.is_empty()
    }

    fn filter(&self, rt: &str) -> Filter {
        let mut all: Vec<Filter> = self.patient.iter().map(|p| compartment(rt, p)).collect();
        all.extend(self.constraint.iter().cloned());
        Filter::And(all)
    }
}

/// Membership of `rt` resources in the Patient compartment of `patient`, as compartment search
/// computes it, except that the Patient type is the patient alone.
fn compartment(rt: &str, patient: &str) -> Filter {
    if rt == "Patient" {
        return Filter::Id(vec![patient.to_owned()]);
    }
    let value = ReferenceValue {
        target_type: Some("Patient".into()),
        id: Some(patient.to_owned()),
        url: None,
        version: None,
    };
    Filter::Or(
        hds_fhir_search::r4()
            .compartment_params("Patient", rt)
            .iter()
            .map(|p| Filter::Reference {
                param: p.clone(),
                values: vec![value.clone()],
            })
            .collect(),
    )
}

/// What the caller may do with one interaction on one type: everything (`open`), or what one
/// of the grants allows.
#[derive(Debug, Clone)]
pub struct Grants {
    rt: String,
    open: bool,
    list: Vec<Grant>,
}

impl Grants {
    fn open(rt: &str) -> Self {
        Grants {
            rt: rt.to_owned(),
            open: true,
            list: Vec::new(),
        }
    }

    /// No narrowing at all.
    pub fn is_open(&self) -> bool {
        self.open || self.list.iter().any(Grant::unconditional)
    }

    /// The condition a resource of the type must meet; `None` when any will do.
    pub fn filter(&self) -> Option<Filter> {
        if self.is_open() {
            return None;
        }
        Some(Filter::Or(
            self.list.iter().map(|g| g.filter(&self.rt)).collect(),
        ))
    }

    /// When every grant confines to one and the same patient: that patient.
    pub fn only_patient(&self) -> Option<&str> {
        if self.is_open() {
            return None;
        }
        let first = self.list.first()?.patient.as_deref()?;
        self.list
            .iter()
            .all(|g| g.patient.as_deref() == Some(first))
            .then_some(first)
    }

    fn union(mut self, other: Grants) -> Grants {
        self.open |= other.open;
        self.list.extend(other.list);
        self
    }

    /// Whether a stored version (which may be an old one, so without index rows) is within a
    /// grant that has no query constraint; compartment membership is judged on its body.
    pub fn admits_version(&self, reg: &Registry, body: &Value) -> bool {
        self.is_open()
            || self.list.iter().any(|g| {
                g.constraint.is_empty()
                    && g.patient
                        .as_deref()
                        .is_none_or(|p| member(reg, &self.rt, body, p, false))
            })
    }

    /// Whether some grant has no query constraint (so old versions can be judged at all).
    pub fn has_unconstrained(&self) -> bool {
        self.is_open() || self.list.iter().any(|g| g.constraint.is_empty())
    }

    /// Whether `body`, a version of `rt/id` to be written or about to be replaced, is within a
    /// grant: in the compartment and referring to no other patient (checked here), and matching
    /// the grant's query (the returned filter, for [`check_current`] once its index rows are
    /// the body's). `what` names the interaction for the refusal.
    pub fn admit_body(
        &self,
        reg: &Registry,
        body: &Value,
        what: &str,
    ) -> Result<Pending, FhirError> {
        if self.is_open() {
            return Ok(Pending(None));
        }
        let candidates: Vec<&Grant> = self
            .list
            .iter()
            .filter(|g| {
                g.patient
                    .as_deref()
                    .is_none_or(|p| member(reg, &self.rt, body, p, true))
            })
            .collect();
        if candidates.is_empty() {
            let patients: Vec<String> =
                self.list.iter().filter_map(|g| g.patient.clone()).collect();
            return Err(forbidden(format!(
                "the token's scopes do not allow it to {what}: the {} is not in the compartment of Patient/{} alone (a patient/ scope covers resources of its patient that refer to no other patient)",
                self.rt,
                patients.first().map_or("?", String::as_str)
            )));
        }
        if candidates.iter().any(|g| g.constraint.is_empty()) {
            return Ok(Pending(None));
        }
        let scopes: Vec<&str> = candidates.iter().map(|g| g.scope.as_str()).collect();
        Ok(Pending(Some((
            Filter::Or(
                candidates
                    .iter()
                    .map(|g| Filter::And(g.constraint.clone()))
                    .collect(),
            ),
            format!(
                "the token's scopes do not allow it to {what}: the {} does not match the query of {}",
                self.rt,
                scopes.join(" or ")
            ),
        ))))
    }
}

/// A query condition still to check on a written (or existing) resource, with the refusal.
#[must_use]
pub struct Pending(Option<(Filter, String)>);

impl Pending {
    /// Nothing is left to check.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// Checks the current version of `rt/id` (as of `client`'s transaction) against it.
    pub async fn check_current(
        self,
        client: &impl TypedQuery,
        rt: &str,
        id: &str,
    ) -> Result<(), FhirError> {
        let Some((f, refusal)) = self.0 else {
            return Ok(());
        };
        if matches_one(client, rt, id, f).await? {
            Ok(())
        } else {
            Err(forbidden(refusal))
        }
    }
}

async fn matches_one(
    client: &impl TypedQuery,
    rt: &str,
    id: &str,
    f: Filter,
) -> Result<bool, FhirError> {
    let q = Query {
        clauses: vec![Filter::Id(vec![id.to_owned()]), f],
        ..Default::default()
    };
    Ok(!hds_fhir_search::find_ids(client, rt, &q, 1)
        .await?
        .is_empty())
}

/// The target ids of the Patient references through which `body` belongs to Patient
/// compartments, and whether it belongs to `patient`'s. `strict`: it must also refer to no
/// other patient (the rule for writes).
fn member(reg: &Registry, rt: &str, body: &Value, patient: &str, strict: bool) -> bool {
    let params = hds_fhir_search::r4().compartment_params("Patient", rt);
    let refs: Vec<String> = hds_fhir_search::extract_with(reg, body)
        .references
        .into_iter()
        .filter(|r| params.contains(&r.param) && r.target_type.as_deref() == Some("Patient"))
        .filter_map(|r| r.target_id)
        .collect();
    let is_member = if rt == "Patient" {
        body.get("id").and_then(Value::as_str) == Some(patient)
    } else {
        refs.iter().any(|r| r == patient)
    };
    is_member && (!strict || refs.iter().all(|r| r == patient))
}

/// A v2 scope's `?query`, parsed for `rt` with the service's registry: filters only.
fn parse_constraint(reg: &Registry, rt: &str, raw: &str) -> Result<Vec<Filter>, String> {
    let pairs = crate::http::query_pairs(Some(raw));
    let q = hds_fhir_search::parse_with(reg, rt, &pairs).map_err(|e| e.to_string())?;
    if let Some((_, reason)) = q.unknown.first() {
        return Err(reason.clone());
    }
    if q.result != ResultParams::default() || q.count.is_some() {
        return Err("a scope's query may only filter (no _include, _sort, _count, ...)".into());
    }
    if q.clauses.is_empty() {
        return Err("it names no filter".into());
    }
    Ok(q.clauses)
}

impl Access {
    pub fn is_open(&self) -> bool {
        matches!(self, Access::Open)
    }

    /// What the caller may do with `i` on `rt`; 403 naming the missing scope when nothing.
    pub fn grants(&self, reg: &Registry, rt: &str, i: Interaction) -> Result<Grants, FhirError> {
        let Access::Scoped(sm) = self else {
            return Ok(Grants::open(rt));
        };
        let mut list = Vec::new();
        let mut reasons = Vec::new();
        for s in sm.scopes.granting(rt, i) {
            let patient = match s.context {
                Context::Patient if !in_patient_compartment(rt) => {
                    reasons.push(not_in_compartment(&s.text, rt));
                    continue;
                }
                Context::Patient => match &sm.patient {
                    Some(p) => Some(p.clone()),
                    None => {
                        reasons.push(format!("{} needs the token's patient claim", s.text));
                        continue;
                    }
                },
                Context::User | Context::System => None,
            };
            let constraint = match &s.constraint {
                None => Vec::new(),
                Some(raw) => match parse_constraint(reg, rt, raw) {
                    Ok(c) => c,
                    Err(why) => {
                        reasons.push(format!(
                            "the query of {} cannot be applied to {rt}: {why}",
                            s.text
                        ));
                        continue;
                    }
                },
            };
            list.push(Grant {
                scope: s.text.clone(),
                patient,
                constraint,
            });
        }
        if list.is_empty() {
            reasons.insert(0, Scopes::missing(rt, i));
            return Err(forbidden(reasons.join("; ")));
        }
        Ok(Grants {
            rt: rt.to_owned(),
            open: false,
            list,
        })
    }

    /// Grants for showing a resource beside search results (`_include`): read or search.
    fn grants_to_show(&self, reg: &Registry, rt: &str) -> Option<Grants> {
        let r = self.grants(reg, rt, Interaction::Read).ok();
        let s = self.grants(reg, rt, Interaction::Search).ok();
        match (r, s) {
            (Some(r), Some(s)) => Some(r.union(s)),
            (r, s) => r.or(s),
        }
    }

    /// Confines a search of `rt`: the type's grants ANDed in, and every chain, `_has` and
    /// `_list` inside confined to what the caller may search of the types they reach.
    pub fn confine_search(&self, reg: &Registry, rt: &str, q: &mut Query) -> Result<(), FhirError> {
        if self.is_open() {
            return Ok(());
        }
        let g = self.grants(reg, rt, Interaction::Search)?;
        for f in &mut q.clauses {
            self.confine_nested(reg, f)?;
        }
        if let Some(f) = g.filter() {
            q.clauses.push(f);
            exact_totals(q);
        }
        Ok(())
    }

    /// A search across `types`: each must be searchable, and each is confined by its own
    /// grants (`_type` absent means every type, which few scopes cover).
    pub fn confine_system_search(
        &self,
        reg: &Registry,
        types: &[String],
        named: bool,
        q: &mut Query,
    ) -> Result<(), FhirError> {
        if self.is_open() {
            return Ok(());
        }
        let mut per_type = Vec::new();
        let mut all_open = true;
        for t in types {
            let g = self
                .grants(reg, t, Interaction::Search)
                .map_err(|mut e| {
                    if !named && let Some(i) = e.issues.first_mut() {
                        i.diagnostics.push_str(
                            "; a search without _type is over every resource type: name the types with _type",
                        );
                    }
                    e
                })?;
            let f = g.filter();
            all_open &= f.is_none();
            per_type.push((t.clone(), f));
        }
        for f in &mut q.clauses {
            self.confine_nested(reg, f)?;
        }
        if !all_open {
            exact_totals(q);
            q.clauses.push(Filter::Or(
                per_type
                    .into_iter()
                    .map(|(t, f)| {
                        let mut all = vec![Filter::ResourceType(vec![t])];
                        all.extend(f);
                        Filter::And(all)
                    })
                    .collect(),
            ));
        }
        Ok(())
    }

    /// Chains, `_has` and `_list` read other resources: each is confined to what the caller may
    /// search of their type. A chain's target types the scopes do not cover are dropped (the
    /// chain may name several); if none is left, or `_has`/`_list` reach such a type, 403.
    fn confine_nested(&self, reg: &Registry, f: &mut Filter) -> Result<(), FhirError> {
        match f {
            Filter::Chain { targets, .. } => {
                let mut kept = Vec::new();
                let mut refusal = None;
                for (t, mut inner) in std::mem::take(targets) {
                    match self.grants(reg, &t, Interaction::Search) {
                        Ok(g) => {
                            self.confine_nested(reg, &mut inner)?;
                            if let Some(c) = g.filter() {
                                inner = Box::new(Filter::And(vec![*inner, c]));
                            }
                            kept.push((t, inner));
                        }
                        Err(e) => {
                            refusal.get_or_insert(e);
                        }
                    }
                }
                if kept.is_empty() {
                    return Err(refusal.unwrap_or_else(|| forbidden("the chain reaches no type")));
                }
                *targets = kept;
            }
            Filter::Has {
                res_type, inner, ..
            } => {
                let g = self.grants(reg, res_type, Interaction::Search)?;
                self.confine_nested(reg, inner)?;
                if let Some(c) = g.filter() {
                    let i = std::mem::replace(&mut **inner, Filter::And(Vec::new()));
                    **inner = Filter::And(vec![i, c]);
                }
            }
            Filter::List(ids) => {
                let g = self.grants(reg, "List", Interaction::Search)?;
                if let Some(c) = g.filter() {
                    // The same probe of List.item rows, with the List itself confined.
                    *f = Filter::Has {
                        res_type: "List".into(),
                        param: "item".into(),
                        inner: Box::new(Filter::And(vec![Filter::Id(ids.clone()), c])),
                    };
                }
            }
            Filter::And(fs) | Filter::Or(fs) => {
                for f in fs {
                    self.confine_nested(reg, f)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `_include` and `_revinclude` results the caller may see: each round's resources are
    /// filtered (by the SQL of their type's grants) before `:iterate` goes on from them, so
    /// nothing is reached through a resource the caller could not see.
    pub async fn includes(
        &self,
        client: &impl TypedQuery,
        reg: &Registry,
        matches: &[StoredVersion],
        includes: &[Include],
    ) -> Result<Vec<StoredVersion>, FhirError> {
        if self.is_open() {
            return Ok(hds_fhir_search::includes(client, matches, includes).await?);
        }
        if includes.is_empty() || matches.is_empty() {
            return Ok(Vec::new());
        }
        let once = |i: &Include| Include {
            iterate: false,
            ..i.clone()
        };
        let first: Vec<Include> = includes.iter().map(once).collect();
        let again: Vec<Include> = includes.iter().filter(|i| i.iterate).map(once).collect();
        let mut seen: HashSet<(String, String)> = matches
            .iter()
            .map(|m| (m.res_type.clone(), m.id.clone()))
            .collect();
        let mut out = Vec::new();
        let mut frontier = matches.to_vec();
        let mut round = &first;
        // As the unconfined search: each round adds only unseen resources; 16 bounds it.
        for _ in 0..16 {
            let found: Vec<StoredVersion> = hds_fhir_search::includes(client, &frontier, round)
                .await?
                .into_iter()
                .filter(|v| !seen.contains(&(v.res_type.clone(), v.id.clone())))
                .collect();
            let shown = self.visible(client, reg, found).await?;
            for v in &shown {
                seen.insert((v.res_type.clone(), v.id.clone()));
            }
            out.extend(shown.iter().cloned());
            if shown.is_empty() || again.is_empty() {
                break;
            }
            frontier = shown;
            round = &again;
        }
        Ok(out)
    }

    /// The resources of `found` the caller may be shown (read or search grants of their type).
    async fn visible(
        &self,
        client: &impl TypedQuery,
        reg: &Registry,
        found: Vec<StoredVersion>,
    ) -> Result<Vec<StoredVersion>, FhirError> {
        let mut by_type: HashMap<String, Vec<String>> = HashMap::new();
        for v in &found {
            by_type
                .entry(v.res_type.clone())
                .or_default()
                .push(v.id.clone());
        }
        let mut keep: HashSet<(String, String)> = HashSet::new();
        for (t, ids) in by_type {
            let Some(g) = self.grants_to_show(reg, &t) else {
                continue;
            };
            let ids = match g.filter() {
                None => ids,
                Some(f) => {
                    let q = Query {
                        clauses: vec![Filter::Id(ids.clone()), f],
                        ..Default::default()
                    };
                    hds_fhir_search::find_ids(client, &t, &q, ids.len() as i64).await?
                }
            };
            keep.extend(ids.into_iter().map(|i| (t.clone(), i)));
        }
        Ok(found
            .into_iter()
            .filter(|v| keep.contains(&(v.res_type.clone(), v.id.clone())))
            .collect())
    }

    /// System history lists every type: only for tokens whose search grants cover every
    /// type without narrowing.
    pub fn check_system_history(&self, reg: &Registry) -> Result<(), FhirError> {
        if self.is_open() {
            return Ok(());
        }
        for t in hds_fhir_model::r4().resource_types() {
            let g = self.grants(reg, t, Interaction::Search)?;
            if !g.is_open() {
                return Err(history_refusal(&format!("{t} is")));
            }
        }
        Ok(())
    }
}

/// `_total=estimate` is the planner's row estimate, which comes from statistics over every
/// patient's rows: a confined search counts instead.
fn exact_totals(q: &mut Query) {
    if q.result.total == Some(Total::Estimate) {
        q.result.total = Some(Total::Accurate);
    }
}

/// History lists versions, deletions included, that have no index rows to filter by; under a
/// compartment or a scope's query it is refused rather than filtered in memory.
pub fn history_refusal(what: &str) -> FhirError {
    forbidden(format!(
        "history across resources is not available to this token: {what} confined by its scopes (to a patient compartment or a scope's query), and type and system history cannot be confined; search instead, or read one resource's history"
    ))
}

/// Whether the current version of `rt/id` is within `grants` (false when it is deleted or
/// missing: there is nothing to judge it by).
pub async fn current_visible(
    client: &impl TypedQuery,
    rt: &str,
    id: &str,
    grants: &Grants,
) -> Result<bool, FhirError> {
    match grants.filter() {
        None => Ok(true),
        Some(f) => matches_one(client, rt, id, f).await,
    }
}

/// Takes the row lock a write would take, before the resource is judged, so that what is
/// judged is what is replaced.
pub async fn lock(client: &impl GenericClient, rt: &str, id: &str) -> Result<(), FhirError> {
    client
        .execute(
            "SELECT 1 FROM resources WHERE res_type = $1 AND id = $2 FOR UPDATE",
            &[&rt, &id],
        )
        .await?;
    Ok(())
}

/// The current body of `rt/id`, parsed, if it exists and is not deleted.
pub async fn current_body(
    client: &impl GenericClient,
    rt: &str,
    id: &str,
) -> Result<Option<Value>, FhirError> {
    let Some(v) = hds_fhir_store::read(client, rt, id).await? else {
        return Ok(None);
    };
    match v.body {
        Some(b) => Ok(Some(serde_json::from_str(&b).map_err(|e| {
            FhirError::from(hds_fhir_store::StoreError::Corrupt(format!("{rt}/{id}"), e))
        })?)),
        None => Ok(None),
    }
}

/// Judges the resource a write replaces or deletes (when it exists): the caller must be
/// allowed to `what` it as it is now.
pub async fn admit_existing(
    client: &impl TypedQuery,
    reg: &Registry,
    grants: &Grants,
    rt: &str,
    id: &str,
    what: &str,
) -> Result<(), FhirError> {
    if grants.is_open() {
        return Ok(());
    }
    lock(client, rt, id).await?;
    if let Some(existing) = current_body(client, rt, id).await? {
        grants
            .admit_body(reg, &existing, &format!("{what} {rt}/{id}"))?
            .check_current(client, rt, id)
            .await?;
    }
    Ok(())
}
