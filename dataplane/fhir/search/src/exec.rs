//! Running a compiled search: matching ids (for conditional interactions), a page of matches
//! with a keyset cursor, the total as asked, and the `_include`/`_revinclude` resources.

use std::borrow::Cow;
use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hds_common::db::TypedQuery;
use hds_fhir_store::{Method, StoredVersion};
use serde::{Deserialize, Serialize};

use crate::include::{split_page, with_page};
use crate::page::{Keys, capped, driving_entry_cap, page_sql};
use crate::query::{Filter, Query, ReferenceValue, SearchError, StringMatch, TokenValue};
use crate::result::{Include, Total};
use crate::sql::{Builder, PREFIX_KEY_CHARS, Plan, filter};

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Db(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// What a search ranges over: one resource type, or several (system search).
#[derive(Debug, Clone, Copy)]
pub enum Scope<'a> {
    Type(&'a str),
    Types(&'a [String]),
}

impl<'a> From<&'a str> for Scope<'a> {
    fn from(t: &'a str) -> Self {
        Scope::Type(t)
    }
}

/// The first filter that is one exact token (`system|code`): its clause index, parameter,
/// system and code.
pub(crate) fn exact_token(q: &Query) -> Option<(usize, &str, &str, &str)> {
    q.clauses.iter().enumerate().find_map(|(i, f)| match f {
        Filter::Token {
            param,
            not: false,
            values,
        } => match values.as_slice() {
            [
                TokenValue {
                    system: Some(Some(system)),
                    code: Some(code),
                },
            ] => Some((i, param.as_str(), system.as_str(), code.as_str())),
            _ => None,
        },
        _ => None,
    })
}

/// Whether the plan of a search of `q` follows from its SQL whatever the values: one filter,
/// an equality on one token code or one reference target, a string prefix of three or more
/// characters or an exact string, a chain to one value, or a compartment, so that every value
/// is read through the same index in the same order. Such SQL runs as a prepared statement,
/// which PostgreSQL plans generically after five runs,
/// saving 0.2–0.4 ms of planning per request (more than the query takes). Anything else is
/// planned for its values each time, since there the values choose the plan: a common and a
/// rare code beside a date drive from different indexes, and a wide date window or a
/// one-letter name prefix is best read by walking ids in order until the page fills, a narrow
/// one from its range (a generic plan took 70 ms for `name=m` at 100k resources, the custom
/// one 2; a prefix of three characters or more names one key of the string index, whose rows
/// are in id order).
pub(crate) fn plan_follows_from_sql(scope: Scope<'_>, q: &Query) -> bool {
    matches!(scope, Scope::Type(_))
        && matches!(q.clauses.as_slice(), [only] if one_indexed_value(only))
}

/// One value looked up by equality (a string prefix of three characters or more is one key of
/// the string index, then a range within it); a chain through one target type to such a value
/// or to a string (its page walks the matching targets in id order, whatever their number); or
/// a union of those (a compartment).
fn one_indexed_value(f: &Filter) -> bool {
    match f {
        Filter::Token {
            not: false, values, ..
        } => matches!(values.as_slice(), [TokenValue { code: Some(_), .. }]),
        Filter::Reference { values, .. } => matches!(
            values.as_slice(),
            [ReferenceValue {
                id: Some(_),
                url: None,
                ..
            }]
        ),
        Filter::Chain { targets, .. } => matches!(
            targets.as_slice(),
            [(_, inner)] if one_indexed_value(inner) || matches!(&**inner,
                Filter::String { how: StringMatch::Prefix | StringMatch::Exact, values, .. }
                    if values.len() == 1)
        ),
        // A prefix that names one key of the string index, or one exact value: read in id order.
        Filter::String {
            how: StringMatch::Prefix,
            values,
            ..
        } => matches!(values.as_slice(), [v] if v.chars().count() >= PREFIX_KEY_CHARS),
        Filter::String {
            how: StringMatch::Exact,
            values,
            ..
        } => values.len() == 1,
        // A compartment: its parameters' references to one resource, and that resource.
        Filter::Or(fs) => fs
            .iter()
            .all(|f| matches!(f, Filter::Id(_)) || one_indexed_value(f)),
        _ => false,
    }
}

/// `search_token d WHERE …` for one exact token's index entries; `t` is the bound type.
pub(crate) fn token_entries(
    b: &mut Builder,
    t: &str,
    param: &str,
    system: &str,
    code: &str,
) -> String {
    let (p, sy, c) = (
        b.bind(param.to_owned()),
        b.bind(system.to_owned()),
        b.bind(code.to_owned()),
    );
    format!(
        "search_token d WHERE d.res_type = {t} AND d.param = {p} AND d.code = {c} AND d.system = {sy}"
    )
}

/// ` WHERE …`: the `resources r` rows in `scope` that match every clause of `q`.
pub(crate) fn where_clause(b: &mut Builder, scope: Scope<'_>, q: &Query) {
    // One type is a bound constant the planner can use; several are the row's own column.
    let (t, type_cond) = match scope {
        Scope::Type(rt) => {
            let t = b.bind(rt.to_owned());
            (t.clone(), format!("r.res_type = {t}"))
        }
        Scope::Types(ts) => {
            let p = b.bind(ts.to_vec());
            ("r.res_type".to_owned(), format!("r.res_type = ANY({p})"))
        }
    };
    let mut conds = vec![type_cond, "NOT r.deleted".to_owned()];
    for clause in &q.clauses {
        conds.push(filter(b, &t, "r.id", true, clause));
    }
    b.sql.push_str(" WHERE ");
    b.sql.push_str(&conds.join(" AND "));
}

/// The conditions that ids `d.id` of type `t` (a bound parameter), read from index rows, match
/// every clause of `q` but the one at `skip`. Index rows exist only for current, undeleted
/// resources, so such ids need no visit to `resources`.
pub(crate) fn filters_on_ids(
    b: &mut Builder,
    t: &str,
    q: &Query,
    skip: Option<usize>,
) -> Vec<String> {
    let mut conds = Vec::with_capacity(q.clauses.len());
    for (i, clause) in q.clauses.iter().enumerate() {
        if Some(i) != skip {
            conds.push(filter(b, t, "d.id", false, clause));
        }
    }
    conds
}

/// The query with what needs the database settled first: `:in`/`:not-in` ValueSets checked,
/// `:above`/`:below` expanded into the codes of the stored CodeSystems.
async fn resolve<'q>(client: &impl TypedQuery, q: &'q Query) -> Result<Cow<'q, Query>, ExecError> {
    check_value_sets(client, q).await?;
    fn systems<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
        match f {
            Filter::TokenHierarchy { values, .. } => {
                out.extend(values.iter().map(|(s, _)| s.as_str()))
            }
            Filter::Chain { targets, .. } => targets.iter().for_each(|(_, f)| systems(f, out)),
            Filter::Has { inner, .. } => systems(inner, out),
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| systems(f, out)),
            _ => {}
        }
    }
    let mut urls = Vec::new();
    q.clauses.iter().for_each(|f| systems(f, &mut urls));
    if urls.is_empty() {
        return Ok(Cow::Borrowed(q));
    }
    let rows = client
        .query(
            "SELECT u.uri, v.body FROM search_uri u
               JOIN resources r ON r.res_type = u.res_type AND r.id = u.id AND NOT r.deleted
               JOIN resource_versions v ON v.res_type = r.res_type AND v.id = r.id AND v.version_id = r.version_id
              WHERE u.res_type = 'CodeSystem' AND u.param = 'url' AND u.uri = ANY($1)",
            &[&urls],
        )
        .await?;
    let held: Vec<(String, serde_json::Value)> = rows
        .iter()
        .filter_map(|r| {
            let body: Option<String> = r.get(1);
            Some((r.get(0), serde_json::from_str(&body?).ok()?))
        })
        .collect();
    if let Some(missing) = urls.iter().find(|u| !held.iter().any(|(h, _)| h == *u)) {
        return Err(SearchError::Invalid(format!(
            "CodeSystem '{missing}' is not on this server; :above and :below use the hierarchies of the CodeSystems stored here"
        ))
        .into());
    }
    fn expand(f: &Filter, held: &[(String, serde_json::Value)]) -> Filter {
        match f {
            Filter::TokenHierarchy {
                param,
                below,
                values,
            } => Filter::Token {
                param: param.clone(),
                not: false,
                values: values
                    .iter()
                    .flat_map(|(system, code)| {
                        // Several stored versions of one system: the union of their hierarchies.
                        held.iter()
                            .filter(|(u, _)| u == system)
                            .flat_map(|(_, cs)| crate::hierarchy::related_codes(cs, code, *below))
                            .collect::<HashSet<_>>()
                            .into_iter()
                            .map(|c| TokenValue {
                                system: Some(Some(system.clone())),
                                code: Some(c),
                            })
                    })
                    .collect(),
            },
            Filter::Chain { param, targets } => Filter::Chain {
                param: param.clone(),
                targets: targets
                    .iter()
                    .map(|(t, f)| (t.clone(), Box::new(expand(f, held))))
                    .collect(),
            },
            Filter::Has {
                res_type,
                param,
                inner,
            } => Filter::Has {
                res_type: res_type.clone(),
                param: param.clone(),
                inner: Box::new(expand(inner, held)),
            },
            Filter::And(fs) => Filter::And(fs.iter().map(|f| expand(f, held)).collect()),
            Filter::Or(fs) => Filter::Or(fs.iter().map(|f| expand(f, held)).collect()),
            f => f.clone(),
        }
    }
    let mut resolved = q.clone();
    resolved.clauses = q.clauses.iter().map(|f| expand(f, &held)).collect();
    Ok(Cow::Owned(resolved))
}

/// `:in`/`:not-in` name ValueSets by url; one this server does not hold is an error, not an
/// empty (or, for `:not-in`, complete) result.
async fn check_value_sets(client: &impl TypedQuery, q: &Query) -> Result<(), ExecError> {
    fn collect<'a>(f: &'a Filter, out: &mut Vec<&'a str>) {
        match f {
            Filter::TokenIn { value_sets, .. } => out.extend(value_sets.iter().map(String::as_str)),
            Filter::Chain { targets, .. } => targets.iter().for_each(|(_, f)| collect(f, out)),
            Filter::Has { inner, .. } => collect(inner, out),
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| collect(f, out)),
            _ => {}
        }
    }
    let mut urls = Vec::new();
    q.clauses.iter().for_each(|f| collect(f, &mut urls));
    if urls.is_empty() {
        return Ok(());
    }
    let rows = client
        .query(
            "SELECT DISTINCT uri FROM search_uri WHERE res_type = 'ValueSet' AND param = 'url' AND uri = ANY($1)",
            &[&urls],
        )
        .await?;
    let held: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    if let Some(missing) = urls.iter().find(|u| !held.iter().any(|h| h == *u)) {
        return Err(SearchError::Invalid(format!(
            "ValueSet '{missing}' is not on this server; :in and :not-in use the ValueSets stored here"
        ))
        .into());
    }
    Ok(())
}

/// Ids of current resources of `res_type` matching `q`, at most `limit` of them. Conditional
/// interactions ask for two, to tell one match from several.
pub async fn find_ids(
    client: &impl TypedQuery,
    res_type: &str,
    q: &Query,
    limit: i64,
) -> Result<Vec<String>, ExecError> {
    find_ids_after(client, res_type, q, None, limit).await
}

/// Which of `ids` (of `res_type`) are current resources matching `q`: `_typeFilter` over a
/// page an export has read.
pub async fn matching_among(
    client: &impl TypedQuery,
    res_type: &str,
    q: &Query,
    ids: &[&str],
) -> Result<Vec<String>, ExecError> {
    let q = &*resolve(client, q).await?;
    let mut b = Builder::new("SELECT r.id FROM resources r");
    where_clause(&mut b, Scope::Type(res_type), q);
    let owned: Vec<String> = ids.iter().map(|s| (*s).to_owned()).collect();
    let p = b.bind(owned);
    b.sql.push_str(&format!(" AND r.id = ANY({p})"));
    let rows = b.query(client).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// [`find_ids`] after `after` in id order: the pages a bulk job walks.
pub async fn find_ids_after(
    client: &impl TypedQuery,
    res_type: &str,
    q: &Query,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<String>, ExecError> {
    let q = &*resolve(client, q).await?;
    let mut b = Builder::new("SELECT r.id FROM resources r");
    where_clause(&mut b, Scope::Type(res_type), q);
    if let Some(after) = after {
        let a = b.bind(after.to_owned());
        b.sql.push_str(&format!(" AND r.id > {a}"));
    }
    let l = b.bind(limit);
    b.sql.push_str(&format!(" ORDER BY r.id LIMIT {l}"));
    let rows = b.query(client).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Where the next page starts: the sort key values and id of the last row of this one. Opaque
/// to clients (base64url JSON); a keyset, so pages stay put while others write.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Cursor {
    #[serde(rename = "k", default)]
    pub keys: Vec<String>,
    #[serde(rename = "i")]
    pub id: String,
    /// A `previous` link: the page before this row rather than after it.
    #[serde(rename = "b", default, skip_serializing_if = "std::ops::Not::not")]
    pub back: bool,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    pub fn decode(s: &str) -> Result<Self, SearchError> {
        let bad = || {
            SearchError::Invalid(format!(
                "the paging cursor '{s}' is not one this server issued; start the search again"
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        serde_json::from_slice(&bytes).map_err(|_| bad())
    }
}

pub struct SearchPage {
    pub matches: Vec<StoredVersion>,
    /// What the includes passed to [`search_including`] found from the matches (their first
    /// round, before matches and repeats are left out); `None` where the page's statement did
    /// not ask (see [`crate::include::with_page`]).
    pub included: Option<Vec<StoredVersion>>,
    pub next: Option<Cursor>,
    pub previous: Option<Cursor>,
    pub total: Option<i64>,
}

/// The SQL of a page; for one type with `includes`, their first round too ([`with_page`]),
/// and then `true`: its rows end with what the includes found ([`split_page`]).
fn page_with_includes(
    scope: Scope<'_>,
    q: &Query,
    count: u32,
    after: Option<&Cursor>,
    cap: Option<i64>,
    includes: &[Include],
) -> Result<(Builder, Keys, bool), ExecError> {
    let (mut b, keys) = page_sql(scope, q, count, after, cap)?;
    let including = match scope {
        Scope::Type(rt) if !includes.is_empty() => {
            with_page(&mut b, rt, keys.len(), includes);
            true
        }
        _ => false,
    };
    Ok((b, keys, including))
}

/// A row of a page's statement: `id`, [`crate::sql::VERSION_COLUMNS`], `res_type`, then the
/// sort keys.
pub(crate) fn page_version(r: &tokio_postgres::Row) -> StoredVersion {
    StoredVersion {
        res_type: r.get(5),
        id: r.get(0),
        version_id: r.get(1),
        last_updated: r.get(2),
        method: Method::parse(r.get(3)),
        body: r.get(4),
    }
}

/// `EXPLAIN (ANALYZE, BUFFERS)` of the SQL a first page of `q` runs (with its includes, and
/// its count when `_total=accurate` asks for one): what docs/ARCHITECTURE.md shows for the
/// benchmark queries.
pub async fn explain<'s>(
    client: &impl TypedQuery,
    scope: impl Into<Scope<'s>>,
    q: &Query,
    count: u32,
) -> Result<String, ExecError> {
    let scope = scope.into();
    let q = &*resolve(client, q).await?;
    // The first try `search` makes (capped when it drives from a token beside other filters;
    // a page that does not fill there is asked again without the cap).
    let cap = capped(scope, q).then(driving_entry_cap);
    let (page, _, _) = page_with_includes(scope, q, count, None, cap, q.includes())?;
    let mut sqls = vec![page];
    if q.result.total == Some(Total::Accurate) {
        sqls.push(count_sql(scope, q));
    }
    let mut out = String::new();
    for b in sqls {
        let sql = format!("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {}", b.sql);
        for row in client.query_typed(&sql, &b.typed()).await? {
            out.push_str(row.get::<_, &str>(0));
            out.push('\n');
        }
        out.push('\n');
    }
    Ok(out)
}

/// One page of matches in `q`'s sort order (then type and id), starting after `after`.
pub async fn search<'s>(
    client: &impl TypedQuery,
    scope: impl Into<Scope<'s>>,
    q: &Query,
    count: u32,
    after: Option<&Cursor>,
) -> Result<SearchPage, ExecError> {
    search_including(client, scope, q, count, after, &[]).await
}

/// As [`search`], where a page of one type also brings the first round of `includes` in its
/// own statement (`SearchPage::included`); continue with [`crate::include::includes_from`].
pub async fn search_including<'s>(
    client: &impl TypedQuery,
    scope: impl Into<Scope<'s>>,
    q: &Query,
    count: u32,
    after: Option<&Cursor>,
    includes: &[Include],
) -> Result<SearchPage, ExecError> {
    let scope = scope.into();
    let q = &*resolve(client, q).await?;
    // A common token with a second, selective filter (a recent date, say) would make the
    // driving token scan many entries before a page fills. So the page is first tried on at
    // most `driving_entry_cap()` of the token's entries, each checked by index probes; a page
    // that does not fill there is asked again without the cap, where the planner can drive from
    // the selective filter instead.
    let capped = capped(scope, q);
    let mut rows = Vec::new();
    let mut keys = Vec::new();
    let mut included = None;
    let caps = [Some(driving_entry_cap()), None];
    for &cap in if capped { &caps[..] } else { &caps[1..] } {
        let (b, k, including) = page_with_includes(scope, q, count, after, cap, includes)?;
        rows = b.query(client).await?;
        if including {
            let (page, found) = split_page(std::mem::take(&mut rows), k.len(), count as usize);
            rows = page;
            included = Some(found);
        }
        keys = k;
        if rows.len() > count as usize {
            break;
        }
    }
    let back = after.is_some_and(|c| c.back);
    let more = rows.len() > count as usize;
    let cursor_at = |r: &tokio_postgres::Row, back: bool| Cursor {
        keys: (0..keys.len()).map(|k| r.get::<_, String>(6 + k)).collect(),
        id: r.get(0),
        back,
    };
    let mut page: Vec<&tokio_postgres::Row> = rows.iter().take(count as usize).collect();
    if back {
        page.reverse();
    }
    let (first, last) = (page.first(), page.last());
    let (next, previous) = if back {
        (
            last.map(|r| cursor_at(r, false)),
            first.filter(|_| more).map(|r| cursor_at(r, true)),
        )
    } else {
        (
            last.filter(|_| more).map(|r| cursor_at(r, false)),
            first
                .filter(|_| after.is_some())
                .map(|r| cursor_at(r, true)),
        )
    };
    let matches: Vec<StoredVersion> = page.iter().map(|r| page_version(r)).collect();
    let total = match q.result.total {
        Some(Total::None) => None,
        Some(Total::Accurate) => Some(count_resolved(client, scope, q).await?),
        Some(Total::Estimate) => Some(estimate(client, scope, q).await?),
        // Free when everything fits on the first page; otherwise only when asked, since
        // counting a large result costs more than the page.
        None if after.is_none() && !more => Some(matches.len() as i64),
        None => None,
    };
    Ok(SearchPage {
        matches,
        included,
        next,
        previous,
        total,
    })
}

pub async fn count_matches<'s>(
    client: &impl TypedQuery,
    scope: impl Into<Scope<'s>>,
    q: &Query,
) -> Result<i64, ExecError> {
    let q = &*resolve(client, q).await?;
    count_resolved(client, scope.into(), q).await
}

/// The count of a query [`resolve`] has already settled.
async fn count_resolved(
    client: &impl TypedQuery,
    scope: Scope<'_>,
    q: &Query,
) -> Result<i64, ExecError> {
    let b = count_sql(scope, q);
    // A count is one row.
    Ok(b.query(client).await?.first().map_or(0, |r| r.get(0)))
}

/// A count over one type with an exact token counts that token's index entries (an index-only
/// scan) instead of probing `resources` once per match: index rows exist only for current,
/// undeleted resources. Any other filters still apply to each counted id.
fn count_sql(scope: Scope<'_>, q: &Query) -> Builder {
    if let Scope::Type(rt) = scope
        && let Some((i, param, system, code)) = exact_token(q)
    {
        let mut b = Builder::new("");
        let t = b.bind(rt.to_owned());
        let entries = token_entries(&mut b, &t, param, system, code);
        if q.clauses.len() == 1 {
            b.sql = format!("SELECT count(DISTINCT d.id) FROM {entries}");
            b.plan = Plan::Kept;
        } else {
            let conds = filters_on_ids(&mut b, &t, q, Some(i)).join(" AND ");
            b.sql = format!(
                "SELECT count(*) FROM (SELECT DISTINCT d.id FROM {entries}) d WHERE {conds}"
            );
        }
        return b;
    }
    let mut b = Builder::new("SELECT count(*) FROM resources r");
    where_clause(&mut b, scope, q);
    b
}

/// The planner's row estimate: instant, and as good as the table statistics.
async fn estimate(
    client: &impl TypedQuery,
    scope: Scope<'_>,
    q: &Query,
) -> Result<i64, tokio_postgres::Error> {
    let mut b = Builder::new("EXPLAIN (FORMAT JSON) SELECT 1 FROM resources r");
    where_clause(&mut b, scope, q);
    let rows = b.query(client).await?;
    let plan: Option<serde_json::Value> = rows.first().map(|r| r.get(0));
    Ok(plan.map_or(0.0, |p| p[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0)) as i64)
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            keys: vec!["2020-01-01 00:00:00+00".into()],
            id: "abc".into(),
            back: false,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
        assert!(Cursor::decode("not a cursor!").is_err());
        assert!(Cursor::decode("e30").is_err(), "{{}} lacks an id");
    }
}
