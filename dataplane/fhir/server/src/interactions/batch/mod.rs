//! Batch and transaction Bundles: `POST [base]` (FHIR R4 3.1.0.11).
//!
//! Each entry runs through the same interaction code as the request it stands for
//! (`*_in` functions that take a database transaction), after the data action and SMART scopes
//! of that request are checked for the caller. A transaction runs in one database transaction:
//! its DELETEs run first, then fullUrls get their ids (a conditional create or update resolved
//! then, so as to see the deletes), references to them are rewritten (conditional references
//! resolved, likewise), and the other entries run in the order POST, PUT/PATCH, GET. The first
//! failure rolls everything back and is the answer. A batch runs each entry in a transaction of
//! its own and answers every entry with its own status.

pub mod entry;
mod references;

use std::collections::{HashMap, HashSet};

use axum::Extension;
use axum::body::to_bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hds_auth::Principal;
use hds_fhir_store::{self as store, Transaction};
use serde_json::{Value, json};

use self::entry::{BundleKind, EntryRequest, Target};
use self::references::{EntryVersion, Identities, conditional_reference, for_each_reference};
use super::conditional::criteria;
use super::instance::{
    PatchDocument, delete_in, parse_patch, patch_in, read_in, update_in, vread_in,
};
use super::search::search_in;
use super::type_level::{
    NewResource, conditional_delete_in, conditional_patch_in, conditional_update_in,
    conditional_update_target, existing_match,
};
use super::{reindex, set_id};
use crate::bundle::BundleWriter;
use crate::error::{FhirError, OutcomeIssue};
use crate::http::{
    BaseUrl, FhirBody, LastUpdated, Prefer, ReturnPref, json_response, parse_resource,
    require_json_body, version_response,
};
use crate::smart::Access;
use crate::{AppState, authn};
use hds_auth::smart::Interaction;

/// Batch entries run this many at a time, each on a connection of its own.
const BATCH_CONCURRENCY: usize = 4;

pub async fn process(
    State(s): State<AppState>,
    BaseUrl(base): BaseUrl,
    prefer: Prefer,
    headers: HeaderMap,
    principal: Option<Extension<Principal>>,
    FhirBody(body): FhirBody,
) -> Result<Response, FhirError> {
    require_json_body(&headers)?;
    let bundle = parse_resource(&body)?;
    drop(body);
    let request = entry::parse_bundle(bundle, &base, s.config.limits.transaction_entry_limit)?;
    let writes_search_parameters = request.entries.iter().flatten().any(|e| {
        !matches!(e.method, Method::GET | Method::HEAD)
            && e.target.resource_type() == Some("SearchParameter")
    });
    let cx = Context {
        s: &s,
        base: &base,
        prefer,
        principal: principal.map(|Extension(p)| p),
    };
    let (kind, responses) = match request.kind {
        BundleKind::Batch => ("batch-response", cx.batch(request.entries).await),
        BundleKind::Transaction => (
            "transaction-response",
            cx.transaction(request.entries).await?,
        ),
    };
    if writes_search_parameters {
        reindex::reload_search_parameters(&s).await;
    }
    let mut w = BundleWriter::new(kind, None, &[]);
    for r in responses {
        let (entry, resource) = entry_of(r, prefer.return_).await;
        w.entry_text(entry, resource.as_deref());
    }
    Ok(json_response(StatusCode::OK, w.finish()))
}

struct Context<'a> {
    s: &'a AppState,
    base: &'a str,
    prefer: Prefer,
    /// The caller, when authentication is on.
    principal: Option<Principal>,
}

impl Context<'_> {
    /// What the caller may do with this entry: judged as the request it stands for would be.
    fn access(&self, e: &EntryRequest) -> Result<Access, FhirError> {
        let (route, path) = e.target.route_and_path();
        super::import::refuse_in_initial_mode(self.s, &e.method, route, &path)?;
        let Some(p) = &self.principal else {
            return Ok(Access::Open);
        };
        authn::admit(p, &e.method, route, &path)
            .map(|(_, smart)| smart.map_or(Access::Open, Access::Scoped))
            .map_err(|(refusal, _)| refusal)
    }

    async fn batch(&self, entries: Vec<Result<EntryRequest, FhirError>>) -> Vec<Response> {
        futures_util::stream::iter(entries)
            .map(|e| async move {
                let result = match e {
                    Ok(e) => self.batch_entry(e).await,
                    Err(err) => Err(err),
                };
                result.unwrap_or_else(IntoResponse::into_response)
            })
            .buffered(BATCH_CONCURRENCY)
            .collect()
            .await
    }

    async fn batch_entry(&self, mut e: EntryRequest) -> Result<Response, FhirError> {
        let access = self.access(&e)?;
        let mut conn = self.s.store.connection().await?;
        let tx = conn.transaction().await?;
        // Batch entries are independent (R4 3.1.0.11.1): one cannot name another's fullUrl.
        self.rewrite_references(
            &tx,
            std::slice::from_mut(&mut e),
            &Identities::default(),
            &access,
        )
        .await
        .map_err(|err| at_entry(e.index, err))?;
        let response = self.run(&tx, e, &access, None).await?;
        tx.commit().await?;
        Ok(response)
    }

    async fn transaction(
        &self,
        entries: Vec<Result<EntryRequest, FhirError>>,
    ) -> Result<Vec<Response>, FhirError> {
        let mut entries: Vec<EntryRequest> = entries.into_iter().collect::<Result<_, _>>()?;
        let access: Vec<Access> = entries
            .iter()
            .map(|e| self.access(e).map_err(|err| failed(&Label::of(e), err)))
            .collect::<Result<_, _>>()?;
        let mut conn = self.s.store.connection().await?;
        let tx = conn.transaction().await?;
        let mut responses: Vec<Option<Response>> = (0..entries.len()).map(|_| None).collect();
        let mut written: HashSet<(String, String)> = HashSet::new();

        // 1. The deletes, first of all (R4 3.1.0.11.2): what an ifNoneExist, a conditional
        // update or a conditional reference matches is judged with them done, so none of
        // them can land on a resource the transaction deletes.
        for (e, access) in entries.iter().zip(&access) {
            if e.method != Method::DELETE {
                continue;
            }
            if let Target::Instance { rt, id, .. } = &e.target
                && !written.insert((rt.clone(), id.clone()))
            {
                return Err(failed(
                    &Label::of(e),
                    FhirError::bad_request(format!(
                        "{rt}/{id} is written by more than one entry of the transaction"
                    )),
                ));
            }
            let label = Label::of(e);
            let response = self
                .run(&tx, e.clone(), access, None)
                .await
                .map_err(|err| failed(&label, err))?;
            responses[e.index] = Some(response);
        }

        // 2. Every other written resource gets its identity, before any reference is
        // rewritten.
        let mut ids = Identities::default();
        let mut assigned: HashMap<usize, String> = HashMap::new();
        let mut matched: HashMap<usize, Response> = HashMap::new();
        for (e, access) in entries.iter_mut().zip(&access) {
            if e.method == Method::DELETE {
                continue;
            }
            let identity = self
                .identify(&tx, e, access, &mut matched)
                .await
                .map_err(|err| failed(&Label::of(e), err))?;
            if let Some((rt, id, version_written)) = identity {
                if let Some(full_url) = &e.full_url {
                    let declared = e
                        .resource
                        .as_ref()
                        .and_then(|r| r["meta"]["versionId"].as_str().map(str::to_owned));
                    let version = EntryVersion {
                        written: version_written,
                        declared,
                    };
                    ids.insert(full_url, &rt, &id, version)
                        .map_err(|why| failed(&Label::of(e), FhirError::bad_request(why)))?;
                }
                let rewrites = e.method != Method::POST || !matched.contains_key(&e.index);
                if rewrites && !written.insert((rt.clone(), id.clone())) {
                    return Err(failed(
                        &Label::of(e),
                        FhirError::bad_request(format!(
                            "{rt}/{id} is written by more than one entry of the transaction"
                        )),
                    ));
                }
                if e.method == Method::POST {
                    assigned.insert(e.index, id);
                }
            }
        }

        // 3. References to fullUrls, and conditional references, now name stored resources.
        for (e, access) in entries.iter_mut().zip(&access) {
            self.rewrite_references(&tx, std::slice::from_mut(e), &ids, access)
                .await
                .map_err(|err| failed(&Label::of(e), err))?;
        }

        // 4. The other entries, in the order R4 sets, each with the same checks as on its own.
        let mut order: Vec<usize> = (0..entries.len()).collect();
        order.sort_by_key(|&i| (entries[i].phase(), i));
        let mut slots: Vec<Option<EntryRequest>> = entries
            .into_iter()
            .map(|e| (e.method != Method::DELETE).then_some(e))
            .collect();
        for (i, r) in matched {
            slots[i] = None;
            responses[i] = Some(r);
        }
        let mut creates_done = false;
        for i in order {
            let Some(e) = slots[i].take() else {
                continue;
            };
            if (e.method == Method::POST || e.is_create_only_put()) && !creates_done {
                slots[i] = Some(e);
                self.create_all(&tx, &mut slots, &access, &mut assigned, &mut responses)
                    .await?;
                creates_done = true;
                continue;
            }
            let label = Label::of(&e);
            let response = self
                .run(&tx, e, &access[i], assigned.remove(&i))
                .await
                .map_err(|err| failed(&label, err))?;
            responses[i] = Some(response);
        }
        tx.commit().await?;
        Ok(responses.into_iter().flatten().collect())
    }

    /// The creates of a transaction, sent to the database together: tokio-postgres pipelines
    /// statements issued at once on one connection, so a Bundle of N creates waits for one
    /// round trip rather than N. Each is checked and indexed first, in entry order.
    async fn create_all(
        &self,
        tx: &Transaction<'_>,
        slots: &mut [Option<EntryRequest>],
        access: &[Access],
        assigned: &mut HashMap<usize, String>,
        responses: &mut [Option<Response>],
    ) -> Result<(), FhirError> {
        let mut prepared = Vec::new();
        for (i, slot) in slots.iter_mut().enumerate() {
            if slot
                .as_ref()
                .is_none_or(|e| e.method != Method::POST && !e.is_create_only_put())
            {
                continue;
            }
            let e = slot.take().expect("checked above");
            let label = Label::of(&e);
            let new = if e.method == Method::PUT {
                self.prepare_put_create(e, &access[i])
            } else {
                let id = assigned.remove(&i);
                self.prepare_create(e, &access[i], id)
            }
            .map_err(|err| failed(&label, err))?;
            prepared.push((i, label, new));
        }
        // Plain creates (nothing to match first, nothing to check after) go in one multi-row
        // statement; the others each run their own, pipelined.
        let (plain, checked): (Vec<_>, Vec<_>) = prepared.into_iter().partition(|(_, _, new)| {
            new.if_none_exist.is_none() && new.after.is_none() && new.profiles.is_none()
        });
        let (base, prefer) = (self.base, self.prefer);
        if !plain.is_empty() {
            let mut owners = Vec::with_capacity(plain.len());
            let mut resources = Vec::with_capacity(plain.len());
            for (i, label, new) in plain {
                owners.push((i, label, new.rt, new.id, new.index));
                resources.push(new.resource);
            }
            let items = owners
                .iter()
                .zip(resources)
                .map(|((_, _, rt, id, index), r)| (rt.as_str(), id.as_str(), r, index))
                .collect();
            let stored = store::create_many(tx, items).await.map_err(|err| {
                // Only a create-only PUT can name an id that is taken.
                let taken = matches!(&err, hds_fhir_store::StoreError::Db(db)
                    if db.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION));
                let err = if taken {
                    FhirError::precondition_failed(
                        "If-None-Match: * (ifNoneMatch), and a resource with one of the ids exists",
                    )
                } else {
                    err.into()
                };
                failed(&owners[0].1, err)
            })?;
            for ((i, _, rt, _, _), v) in owners.iter().zip(&stored) {
                metrics::counter!("hds_fhir_resources_created_total", "type" => rt.clone())
                    .increment(1);
                responses[*i] = Some(version_response(
                    StatusCode::CREATED,
                    v,
                    base,
                    prefer.return_,
                    true,
                    &[],
                ));
            }
        }
        let results =
            futures_util::future::join_all(checked.into_iter().map(|(i, label, new)| async move {
                (i, label, new.create_in(tx, base, prefer, &[]).await)
            }))
            .await;
        for (i, label, result) in results {
            responses[i] = Some(result.map_err(|err| failed(&label, err))?);
        }
        Ok(())
    }

    /// A create entry, checked and indexed under its assigned id (a new one in a batch).
    fn prepare_create(
        &self,
        e: EntryRequest,
        access: &Access,
        assigned_id: Option<String>,
    ) -> Result<NewResource, FhirError> {
        let Target::Type { rt, .. } = &e.target else {
            unreachable!("a create's target is its type, checked when parsed")
        };
        let resource = e.resource.expect("checked when parsed");
        if rt == "SearchParameter" {
            reindex::check_search_parameter(&resource)?;
        }
        let id = assigned_id.unwrap_or_else(hds_fhir_store::new_id);
        NewResource::prepare(
            self.s,
            access,
            rt,
            &id,
            resource,
            e.if_none_exist.as_deref(),
        )
    }

    /// A create-only PUT (`ifNoneMatch: *`), checked and indexed as a create under its URL's id.
    fn prepare_put_create(
        &self,
        e: EntryRequest,
        access: &Access,
    ) -> Result<NewResource, FhirError> {
        let Target::Instance { rt, id, .. } = &e.target else {
            unreachable!("checked by is_create_only_put")
        };
        let resource = e.resource.expect("checked when parsed");
        if resource.get("id").and_then(serde_json::Value::as_str) != Some(id.as_str()) {
            return Err(FhirError::bad_request(format!(
                "the resource's id must be '{id}', the id in the entry's request.url"
            )));
        }
        if rt == "SearchParameter" {
            reindex::check_search_parameter(&resource)?;
        }
        NewResource::prepare(self.s, access, rt, id, resource, None)
    }

    /// The resource an entry will write, as (type, id, version written when known now): a
    /// create's new id (or the one resource its ifNoneExist matches, whose response is then
    /// settled), a conditional update's match.
    async fn identify(
        &self,
        tx: &Transaction<'_>,
        e: &mut EntryRequest,
        access: &Access,
        matched: &mut HashMap<usize, Response>,
    ) -> Result<Option<(String, String, Option<String>)>, FhirError> {
        // A create writes version 1 (a create-only PUT too).
        let created = Some("1".to_owned());
        let create_only_put = e.is_create_only_put();
        let reg = self.s.registry();
        Ok(match (&e.method, &mut e.target) {
            (&Method::POST, Target::Type { rt, .. }) => {
                let rt = rt.clone();
                let mut id = hds_fhir_store::new_id();
                let mut version = created;
                if let Some(raw) = e.if_none_exist.take() {
                    access.grants(&reg, &rt, Interaction::Create)?;
                    let (mut query, key) = criteria(&reg, &rt, &raw)?;
                    access.confine_search(&reg, &rt, &mut query)?;
                    // The criteria's lock is held to the end of the transaction, so nothing
                    // matching can appear before this create commits.
                    if let Some(v) = existing_match(tx, &rt, &query, &key).await? {
                        id = v.id.clone();
                        version = Some(v.version_id.to_string());
                        let r = version_response(
                            StatusCode::OK,
                            &v,
                            self.base,
                            self.prefer.return_,
                            true,
                            &[],
                        );
                        matched.insert(e.index, r);
                    }
                }
                Some((rt, id, version))
            }
            (&Method::PUT, Target::Type { rt, query }) => {
                let resource = e.resource.as_mut().expect("checked when parsed");
                let id = conditional_update_target(self.s, tx, access, rt, query, resource).await?;
                set_id(resource, &id);
                let rt = rt.clone();
                e.target = Target::Instance {
                    rt: rt.clone(),
                    id: id.clone(),
                    query: Vec::new(),
                };
                Some((rt, id, None))
            }
            (&Method::PUT | &Method::PATCH | &Method::DELETE, Target::Instance { rt, id, .. }) => {
                let version = if create_only_put { created } else { None };
                Some((rt.clone(), id.clone(), version))
            }
            _ => None,
        })
    }

    /// Rewrites the references of `entries` that name a fullUrl in `ids` (a version-specific
    /// one to the version the entry writes), and the links to them in uri-typed values and
    /// the narrative; resolves conditional references to their one match. A `urn:uuid:` that
    /// names no entry, or a conditional reference with no match or several, is an error.
    async fn rewrite_references(
        &self,
        tx: &Transaction<'_>,
        entries: &mut [EntryRequest],
        ids: &Identities,
        access: &Access,
    ) -> Result<(), FhirError> {
        let reg = self.s.registry();
        let mut conditional: Vec<String> = Vec::new();
        for e in entries.iter_mut() {
            let Some(r) = e.resource.as_mut() else {
                continue;
            };
            if !ids.is_empty() {
                hds_fhir_model::r4().for_each_link(r, &mut |kind, s| ids.rewrite_link(kind, s));
            }
            for_each_reference(r, &mut |s| {
                if let Some(local) = ids.get(s) {
                    *s = local.to_owned();
                } else if let Some(versioned) =
                    ids.get_version(s).map_err(FhirError::bad_request)?
                {
                    *s = versioned;
                } else if s.starts_with("urn:uuid:") {
                    return Err(FhirError::bad_request(format!(
                        "the reference '{s}' names no entry's fullUrl in this Bundle{}",
                        if ids.is_empty() {
                            " (batch entries are independent: use a transaction to refer from one entry to another)"
                        } else {
                            ""
                        }
                    )));
                } else if conditional_reference(s).is_some() && !conditional.contains(s) {
                    conditional.push(s.clone());
                }
                Ok(())
            })?;
        }
        if conditional.is_empty() {
            return Ok(());
        }
        let mut resolved: HashMap<String, String> = HashMap::new();
        for reference in conditional {
            let (rt, raw) = conditional_reference(&reference).expect("collected as one");
            let (rt, raw) = (rt.to_owned(), raw.to_owned());
            let rt = rt.as_str();
            super::check_type(rt)?;
            access.grants(&reg, rt, Interaction::Search)?;
            let (mut query, _) = criteria(&reg, rt, &raw)?;
            access.confine_search(&reg, rt, &mut query)?;
            let found = hds_fhir_search::find_ids(tx, rt, &query, 2).await?;
            match found.as_slice() {
                [id] => {
                    let local = format!("{rt}/{id}");
                    resolved.insert(reference, local);
                }
                [] => {
                    return Err(FhirError::precondition_failed(format!(
                        "the conditional reference '{reference}' matches no {rt}"
                    )));
                }
                _ => {
                    return Err(FhirError::precondition_failed(format!(
                        "the conditional reference '{reference}' matches more than one {rt}"
                    )));
                }
            }
        }
        for e in entries.iter_mut() {
            if let Some(r) = e.resource.as_mut() {
                for_each_reference(r, &mut |s| {
                    if let Some(local) = resolved.get(s.as_str()) {
                        *s = local.clone();
                    }
                    Ok(())
                })?;
            }
        }
        Ok(())
    }

    /// One entry, as the interaction it stands for, inside `tx`.
    async fn run(
        &self,
        tx: &Transaction<'_>,
        e: EntryRequest,
        access: &Access,
        assigned_id: Option<String>,
    ) -> Result<Response, FhirError> {
        let (s, base, prefer, h) = (self.s, self.base, self.prefer, &e.headers);
        if e.method == Method::POST {
            // `prepare_create` checks a SearchParameter itself.
            return self
                .prepare_create(e, access, assigned_id)?
                .create_in(tx, base, prefer, &[])
                .await;
        }
        if let (Some(r), false) = (&e.resource, matches!(e.method, Method::GET | Method::HEAD))
            && r.get("resourceType").and_then(Value::as_str) == Some("SearchParameter")
        {
            reindex::check_search_parameter(r)?;
        }
        let head = e.method == Method::HEAD;
        let response = match (e.method, e.target) {
            (Method::PUT, Target::Instance { rt, id, .. }) => {
                let resource = e.resource.expect("checked when parsed");
                update_in(s, tx, access, &rt, &id, resource, h, base, prefer, &[]).await?
            }
            (Method::PUT, Target::Type { rt, query }) => {
                let resource = e.resource.expect("checked when parsed");
                conditional_update_in(s, tx, access, &rt, &query, resource, h, base, prefer).await?
            }
            (Method::PATCH, target) => {
                let document = patch_document(&e.resource.expect("checked when parsed"), h)?;
                match target {
                    Target::Instance { rt, id, .. } => {
                        let grants = access.grants(&s.registry(), &rt, Interaction::Update)?;
                        patch_in(s, tx, &rt, &id, &document, h, base, prefer, &[], &grants).await?
                    }
                    Target::Type { rt, query } => {
                        conditional_patch_in(s, tx, access, &rt, &query, &document, h, base, prefer)
                            .await?
                    }
                    _ => unreachable!("checked when parsed"),
                }
            }
            (Method::DELETE, Target::Instance { rt, id, .. }) => {
                delete_in(s, tx, access, &rt, &id, h, prefer).await?
            }
            (Method::DELETE, Target::Type { rt, query }) => {
                conditional_delete_in(s, tx, access, &rt, &query, prefer).await?
            }
            (Method::POST, _) => unreachable!("creates return above"),
            (_, Target::Instance { rt, id, query }) => {
                read_in(s, tx, access, &rt, &id, h, base, &query).await?
            }
            (_, Target::Version { rt, id, vid }) => {
                vread_in(s, tx, access, &rt, &id, &vid, base, &[]).await?
            }
            (_, Target::Type { rt, query }) => {
                search_in(s, tx, Some(&rt), None, base, query, prefer, access).await?
            }
            (
                _,
                Target::Compartment {
                    comp,
                    id,
                    rt,
                    query,
                },
            ) => {
                search_in(
                    s,
                    tx,
                    Some(&rt),
                    Some((&comp, &id)),
                    base,
                    query,
                    prefer,
                    access,
                )
                .await?
            }
            (_, Target::System { query }) => {
                search_in(s, tx, None, None, base, query, prefer, access).await?
            }
        };
        Ok(if head {
            let (parts, _) = response.into_parts();
            Response::from_parts(parts, axum::body::Body::empty())
        } else {
            response
        })
    }
}

/// A patch entry's resource as the patch document the PATCH interaction takes.
fn patch_document(resource: &Value, headers: &HeaderMap) -> Result<PatchDocument, FhirError> {
    if resource.get("resourceType").and_then(Value::as_str) == Some("Binary") {
        use base64::Engine;
        let data = resource.get("data").and_then(Value::as_str).unwrap_or("");
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|e| {
                FhirError::bad_request(format!("the patch Binary's data is not base64: {e}"))
            })?;
        return parse_patch(headers, &bytes);
    }
    parse_patch(headers, resource.to_string().as_bytes())
}

/// Which entry a message is about, kept when the entry itself has moved on.
struct Label {
    index: usize,
    text: String,
}

impl Label {
    fn of(e: &EntryRequest) -> Self {
        Self {
            index: e.index,
            text: e.label(),
        }
    }
}

/// An entry's error, said to be that entry's.
fn at_entry(index: usize, mut err: FhirError) -> FhirError {
    for issue in &mut err.issues {
        issue
            .expression
            .get_or_insert_with(|| format!("Bundle.entry[{index}]"));
    }
    err
}

/// A transaction's failure: the failing entry's status and issues, after one that says which
/// entry it was and that nothing was written.
fn failed(e: &Label, err: FhirError) -> FhirError {
    let err = at_entry(e.index, err);
    let code = err.issues.first().map_or("processing", |i| i.code);
    let mut issues = vec![
        OutcomeIssue::error(
            code,
            format!("the transaction failed at {}; nothing was written", e.text),
        )
        .at(format!("Bundle.entry[{}]", e.index)),
    ];
    issues.extend(err.issues);
    FhirError::with_issues(err.status, issues)
}

/// An entry of the response Bundle, from the response its request got: the resource (as
/// text, spliced in unparsed) and `response` with status, location, etag, lastModified and
/// outcome.
async fn entry_of(r: Response, prefer: ReturnPref) -> (Value, Option<String>) {
    let status = r.status();
    let last_updated = r.extensions().get::<LastUpdated>().map(|l| l.0);
    let (parts, body) = r.into_parts();
    let body = to_bytes(body, usize::MAX).await.unwrap_or_default();
    let text = |name| parts.headers.get(name).and_then(|v| v.to_str().ok());
    let mut response = json!({
        "status": format!("{} {}", status.as_u16(), status.canonical_reason().unwrap_or_default()),
    });
    let mut entry = json!({});
    if let Some(location) = text(header::LOCATION) {
        response["location"] = json!(location);
        let resource_url = location.split("/_history/").next().unwrap_or(location);
        entry["fullUrl"] = json!(resource_url);
    }
    if let Some(etag) = text(header::ETAG) {
        response["etag"] = json!(etag);
    }
    if let Some(t) = last_updated {
        response["lastModified"] = json!(store::instant(&t));
    }
    let mut resource = None;
    if !body.is_empty() {
        let body = String::from_utf8_lossy(&body).into_owned();
        // Failures, and successes answered as `Prefer: return=OperationOutcome` asks, carry an
        // OperationOutcome: it goes in response.outcome. Anything else is the entry's resource.
        let outcome = (!status.is_success() || prefer == ReturnPref::OperationOutcome)
            .then(|| serde_json::from_str::<Value>(&body).ok())
            .flatten()
            .filter(|v| v["resourceType"] == "OperationOutcome");
        match outcome {
            Some(oo) => response["outcome"] = oo,
            None => resource = Some(body),
        }
    }
    entry["response"] = response;
    (entry, resource)
}
