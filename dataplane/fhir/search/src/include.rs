//! `_include` and `_revinclude`: the resources they add to a page of matches.
//!
//! A page of one type asks for its first round of includes in its own statement
//! ([`with_page`]): the page becomes a CTE and each include a branch joined to it, so the
//! includes cost no second round trip and their plan has no id array whose length PostgreSQL
//! cannot know. `:iterate` rounds, and pages whose includes must be judged against SMART
//! grants round by round, go through [`includes`] / [`includes_from`] with one statement per
//! include and round.

use std::collections::HashSet;

use hds_common::db::TypedQuery;
use hds_fhir_store::StoredVersion;

use crate::exec::page_version;
use crate::result::Include;
use crate::sql::{Builder, Plan, VERSION_COLUMNS, newest_version};

/// The resources `_include` and `_revinclude` add to a page of `matches`: the non-iterating
/// ones once from the matches, the `:iterate` ones again from everything included until
/// nothing new turns up. Each resource appears once, and never if it is a match.
pub async fn includes(
    client: &impl TypedQuery,
    matches: &[StoredVersion],
    includes: &[Include],
) -> Result<Vec<StoredVersion>, tokio_postgres::Error> {
    includes_from(client, matches, includes, None).await
}

/// As [`includes`], where `first` (when given) is what every include found from `matches`
/// already, unfiltered: the round [`with_page`] asked for in the page's statement.
pub async fn includes_from(
    client: &impl TypedQuery,
    matches: &[StoredVersion],
    includes: &[Include],
    first: Option<Vec<StoredVersion>>,
) -> Result<Vec<StoredVersion>, tokio_postgres::Error> {
    if includes.is_empty() || matches.is_empty() {
        return Ok(Vec::new());
    }
    let mut seen: HashSet<(String, String)> = matches
        .iter()
        .map(|m| (m.res_type.clone(), m.id.clone()))
        .collect();
    let mut out: Vec<StoredVersion> = Vec::new();
    let mut frontier: Vec<(String, String)> = seen.iter().cloned().collect();
    let mut given = first;
    let iterate = includes.iter().any(|i| i.iterate);
    // Each round adds only unseen resources, so it ends; the bound guards against pathologies.
    for round in 0..16 {
        let mut found = Vec::new();
        let mut keep = |v: StoredVersion| {
            if seen.insert((v.res_type.clone(), v.id.clone())) {
                found.push(v);
            }
        };
        match given.take() {
            Some(first) => first.into_iter().for_each(&mut keep),
            None => {
                for inc in includes.iter().filter(|i| round == 0 || i.iterate) {
                    for v in include_once(client, &frontier, inc).await? {
                        keep(v);
                    }
                }
            }
        }
        if found.is_empty() || !iterate {
            out.extend(found);
            break;
        }
        frontier = found
            .iter()
            .map(|v| (v.res_type.clone(), v.id.clone()))
            .collect();
        out.extend(found);
    }
    Ok(out)
}

/// The include's parameters and target type, when given.
fn narrow(b: &mut Builder, cond: &mut String, inc: &Include) {
    cond.push_str(&format!(
        " AND f.param = ANY({})",
        b.bind(inc.params.clone())
    ));
    if let Some(t) = &inc.target {
        cond.push_str(&format!(" AND f.target_type = {}", b.bind(t.clone())));
    }
}

async fn include_once(
    client: &impl TypedQuery,
    from: &[(String, String)],
    inc: &Include,
) -> Result<Vec<StoredVersion>, tokio_postgres::Error> {
    if inc.params.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = Builder::new("");
    if inc.reverse {
        // Resources of inc.source whose reference parameter points at one of `from`.
        let types: Vec<String> = from.iter().map(|(t, _)| t.clone()).collect();
        let ids: Vec<String> = from.iter().map(|(_, i)| i.clone()).collect();
        let src = b.bind(inc.source.clone());
        let tp = b.bind(types);
        let ip = b.bind(ids);
        let mut cond = format!(
            "f.res_type = {src} AND (f.target_type, f.target_id) IN (SELECT * FROM unnest({tp}::text[], {ip}::text[]))"
        );
        narrow(&mut b, &mut cond, inc);
        // The referrers are read from their index rows, so they are current: no visit to
        // `resources`, and their newest versions are the ones to return.
        let version = newest_version(&src, "r.id");
        b.sql = format!(
            "SELECT r.id, {VERSION_COLUMNS}, {src}::text
               FROM (SELECT DISTINCT f.id FROM search_reference f WHERE {cond}) r {version}"
        );
    } else {
        let ids: Vec<String> = from
            .iter()
            .filter(|(t, _)| *t == inc.source)
            .map(|(_, i)| i.clone())
            .collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let src = b.bind(inc.source.clone());
        let ip = b.bind(ids);
        let mut cond =
            format!("f.res_type = {src} AND f.id = ANY({ip}) AND f.target_id IS NOT NULL");
        narrow(&mut b, &mut cond, inc);
        // A target may be deleted (its newest version is the deletion, with no body) or may
        // never have existed; `resources` need not be visited to tell.
        let version = newest_version("r.target_type", "r.target_id");
        b.sql = format!(
            "SELECT r.target_id, {VERSION_COLUMNS}, r.target_type
               FROM (SELECT DISTINCT f.target_type, f.target_id FROM search_reference f WHERE {cond}) r
               {version}
              WHERE v.body IS NOT NULL"
        );
    }
    // Ids looked up by their keys: the same plan for any page. PostgreSQL kept planning it
    // for every page (0.44 ms, against 0.09 ms to run it), so its generic plan is forced.
    b.plan = Plan::Generic;
    // In a page's columns, so rows are read alike.
    let rows = b.query(client).await?;
    Ok(rows.iter().map(page_version).collect())
}

/// Turns `b`, the statement of a page of `rt` whose rows are `id`, [`VERSION_COLUMNS`],
/// `res_type` and `keys` sort keys as text, into one that also returns what `includes` find
/// from those rows: after the page's rows (which keep their order: the page is a materialized
/// CTE, read once, first), one row per included resource in the same columns, sort keys NULL,
/// plus a last column `via`: the page ids it was found from (NULL on the page's own rows). The
/// page asks for one row more than it shows, so [`split_page`] keeps an included resource only
/// when it was found from a row that is shown.
pub(crate) fn with_page(b: &mut Builder, rt: &str, keys: usize, includes: &[Include]) {
    let nulls: String = (0..keys).map(|_| ", NULL::text").collect();
    let mut branches = String::new();
    for inc in includes.iter().filter(|i| !i.params.is_empty()) {
        let src = b.bind(inc.source.clone());
        let mut cond = String::new();
        narrow(b, &mut cond, inc);
        if inc.reverse {
            // Referrers of the page's resources, from their index rows (so current).
            let version = newest_version(&src, "i.id");
            branches.push_str(&format!(
                " UNION ALL
                 SELECT i.id, {VERSION_COLUMNS}, {src}::text{nulls}, i.via
                   FROM (SELECT f.id, array_agg(page.id) AS via
                           FROM page JOIN search_reference f
                             ON f.res_type = {src} AND f.target_type = page.res_type
                            AND f.target_id = page.id
                          WHERE true{cond}
                          GROUP BY f.id) i {version}"
            ));
        } else if inc.source == rt {
            // What the page's resources point at; a deleted target's newest version has no body.
            let version = newest_version("i.target_type", "i.target_id");
            branches.push_str(&format!(
                " UNION ALL
                 SELECT i.target_id, {VERSION_COLUMNS}, i.target_type{nulls}, i.via
                   FROM (SELECT f.target_type, f.target_id, array_agg(f.id) AS via
                           FROM page JOIN search_reference f
                             ON f.res_type = {src} AND f.id = page.id
                          WHERE f.target_id IS NOT NULL{cond}
                          GROUP BY f.target_type, f.target_id) i {version}
                  WHERE v.body IS NOT NULL"
            ));
        }
    }
    b.sql = format!(
        "WITH page AS MATERIALIZED ({}) SELECT page.*, NULL::text[] AS via FROM page{branches}",
        b.sql
    );
}

/// The rows of a statement [`with_page`] made: the page's own rows (in order), and the
/// included resources found from the first `shown` of them.
pub(crate) fn split_page(
    rows: Vec<tokio_postgres::Row>,
    keys: usize,
    shown: usize,
) -> (Vec<tokio_postgres::Row>, Vec<StoredVersion>) {
    let via = 6 + keys;
    let cut = rows
        .iter()
        .position(|r| r.get::<_, Option<Vec<&str>>>(via).is_some())
        .unwrap_or(rows.len());
    let mut page = rows;
    let found = page.split_off(cut);
    let ids: HashSet<&str> = page.iter().take(shown).map(|r| r.get(0)).collect();
    let included = found
        .iter()
        .filter(|r| r.get::<_, Vec<&str>>(via).iter().any(|id| ids.contains(id)))
        .map(page_version)
        .collect();
    (page, included)
}
