//! The SQL of one page of a search: which rows drive it (a token's entries, a single filter's
//! index rows, a chain's reference rows, or `resources` itself), the keyset after a cursor, the
//! sort, and the versions the page returns. [`crate::exec`] runs it.

use std::borrow::Cow;

use crate::exec::{
    Cursor, ExecError, Scope, exact_token, filters_on_ids, plan_follows_from_sql, token_entries,
    where_clause,
};
use crate::query::{Filter, Query, SearchError};
use crate::result::SortKey;
use crate::sql::{
    Builder, Plan, VERSION_COLUMNS, any_of, date_all_cond, date_rows_key, filter, has_rows, keyset,
    newest_version, row_cond, sort_expr, text_cond,
};

/// A page in id order whose first filter is one exact token (`system|code`) can be read from
/// that token's index entries, which are stored in id order: the page then ends after about as
/// many entries as it has rows. PostgreSQL does not always find this plan by itself (it may
/// collect every match to sort them), so the query names the entries as its driving table.
/// Index rows exist only for current, undeleted resources, so they may drive the search alone.
fn driving_token(q: &Query) -> Option<(usize, &str, &str, &str)> {
    if !q.result.sort.is_empty() {
        return None;
    }
    exact_token(q)
}

/// A page in id order whose filters include a chain is chosen from the chain's reference rows
/// (see `chain_ids`); index rows exist only for current resources, so they may drive it.
/// A chain's target types, each with the filter on that type.
type ChainTargets = [(String, Box<Filter>)];

fn first_chain(q: &Query) -> Option<(usize, &str, &ChainTargets)> {
    if !q.result.sort.is_empty() {
        return None;
    }
    q.clauses.iter().enumerate().find_map(|(i, f)| match f {
        Filter::Chain { param, targets } => Some((i, param.as_str(), targets.as_slice())),
        _ => None,
    })
}

/// Whether a page is first tried on a capped number of a driving token's entries.
pub(crate) fn capped(scope: Scope<'_>, q: &Query) -> bool {
    matches!(scope, Scope::Type(_)) && q.clauses.len() > 1 && driving_token(q).is_some()
}

/// How many of a driving token's entries a first try looks at: 2,000 index probes cost a few
/// milliseconds. `HDS_SEARCH_DRIVING_CAP` changes it (the tests use a tiny one).
pub(crate) fn driving_entry_cap() -> i64 {
    static CAP: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *CAP.get_or_init(|| {
        std::env::var("HDS_SEARCH_DRIVING_CAP")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(2000)
    })
}

/// Sort keys as (SQL expression, key type, descending).
pub(crate) type Keys = Vec<(String, &'static str, bool)>;

/// Where a search of one type reads its candidates from, when not from `resources`: index rows
/// exist only for current, undeleted resources, so ids read from them need no visit to
/// `resources` at all, and the page's bodies are then each resource's newest version. At 1M
/// resources that visit was a third of a page's buffer reads (4 per row, like the version's).
enum Driver<'q> {
    /// One exact token's entries (the clause at this index), in id order.
    Token(usize, &'q str, &'q str, &'q str),
    /// The only filter is a chain through one target type ([`chain_rows`]).
    SingleChain(SingleChain<'q>),
    /// The only filter, read from its index rows: the SQL of [`single_filter_ids`].
    SingleFilter(String),
    /// A chain among other filters (the clause at this index), from its reference rows.
    Chain(usize, &'q str, &'q ChainTargets),
}

fn driver<'q>(
    b: &mut Builder,
    rt: &str,
    q: &'q Query,
    after: Option<&Cursor>,
    count: u32,
) -> Option<Driver<'q>> {
    if let Some((i, param, system, code)) = driving_token(q) {
        return Some(Driver::Token(i, param, system, code));
    }
    if let Some(chain) = single_chain(q) {
        return Some(Driver::SingleChain(chain));
    }
    if let Some(ids) = single_filter_ids(b, rt, q, after, count) {
        return Some(Driver::SingleFilter(ids));
    }
    first_chain(q).map(|(i, param, targets)| Driver::Chain(i, param, targets))
}

/// The SQL of one page: the matches' versions and sort key values, `count + 1` rows to tell
/// whether another page follows.
/// `cap`: with a driving token and other filters, look at no more than this many of the
/// token's entries (from the cursor on); see [`search`].
pub(crate) fn page_sql(
    scope: Scope<'_>,
    q: &Query,
    count: u32,
    after: Option<&Cursor>,
    cap: Option<i64>,
) -> Result<(Builder, Keys), ExecError> {
    let mut b = Builder::new("");
    let driven = match scope {
        Scope::Type(rt) => driver(&mut b, rt, q, after, count).map(|d| (b.bind(rt.to_owned()), d)),
        Scope::Types(_) => None,
    };
    // The candidates' type and id: `d` when read from index rows, else `resources r`.
    let row = match &driven {
        Some((t, _)) => (t.as_str(), "d.id"),
        None => ("r.res_type", "r.id"),
    };
    let mut keys: Keys = q
        .result
        .sort
        .iter()
        .map(|k| {
            let (e, ty) = sort_expr(&mut b, k, row);
            (e, ty, k.descending)
        })
        .collect();
    // Across types an id is unique only with its type, which orders before it.
    if let Scope::Types(_) = scope {
        keys.push(("r.res_type".into(), "id", false));
    }
    if let Some((_, Driver::SingleChain(_))) = driven {
        keys.push(("d.target_id".into(), "id", false));
    }
    // The page is chosen on the index tables (and `resources`, when no index rows drive it)
    // alone; only its rows' bodies are then read, so a query that sorts many candidates never
    // fetches their bodies.
    let key_cols: String = keys
        .iter()
        .enumerate()
        .map(|(i, (e, _, _))| format!(", ({e}) AS o{i}"))
        .collect();
    let back = after.is_some_and(|c| c.back);
    let mut conds = Vec::new();
    match &driven {
        Some((t, driver)) => {
            let (rows, skip) = match driver {
                &Driver::Token(i, param, system, code) => {
                    let where_entries = token_entries(&mut b, t, param, system, code);
                    let entries = match cap {
                        Some(n) => {
                            let from = after.map_or(String::new(), |c| {
                                format!(
                                    " AND d.id {} {}",
                                    if back { "<" } else { ">" },
                                    b.text(&c.id)
                                )
                            });
                            let n = b.bind(n);
                            format!(
                                "SELECT DISTINCT d.id FROM {where_entries}{from}
                                  ORDER BY d.id {} LIMIT {n}",
                                if back { "DESC" } else { "ASC" }
                            )
                        }
                        None => format!("SELECT DISTINCT d.id FROM {where_entries}"),
                    };
                    // The capped candidates are few: probe each rather than join every match
                    // of the other filters (a common date range can hold 100,000 rows).
                    b.per_row = cap.is_some();
                    (Cow::Owned(entries), Some(i))
                }
                &Driver::SingleChain(chain) => (
                    Cow::Owned(chain_rows(&mut b, t, chain, after, count)),
                    Some(0),
                ),
                Driver::SingleFilter(ids) => (Cow::Borrowed(ids.as_str()), Some(0)),
                &Driver::Chain(i, param, targets) => {
                    (Cow::Owned(chain_ids(&mut b, t, param, targets)), Some(i))
                }
            };
            b.sql = format!("SELECT d.id{key_cols} FROM ({rows}) d");
            conds = filters_on_ids(&mut b, t, q, skip);
        }
        None => {
            b.sql = format!("SELECT r.res_type, r.id, r.version_id{key_cols} FROM resources r");
            where_clause(&mut b, scope, q);
        }
    }
    if let Some(c) = after {
        if c.keys.len() != keys.len() {
            return Err(SearchError::Invalid(
                "the paging cursor does not belong to this search's _sort; start the search again"
                    .into(),
            )
            .into());
        }
        conds.push(keyset(&mut b, &keys, (row.1, &c.id), &c.keys, back));
    }
    if !conds.is_empty() {
        // `where_clause` has already begun the WHERE of a `resources` page.
        b.sql
            .push_str(if driven.is_some() { " WHERE " } else { " AND " });
        b.sql.push_str(&conds.join(" AND "));
    }
    // Walking backwards reads the reversed order and turns the page round afterwards.
    let dir = |desc: bool| if desc != back { "DESC" } else { "ASC" };
    let order = |inner: bool| -> String {
        keys.iter()
            .enumerate()
            .map(|(i, (e, _, desc))| {
                let col = if inner { e.clone() } else { format!("p.o{i}") };
                format!("{col} {}", dir(*desc))
            })
            .chain(std::iter::once(format!(
                "{} {}",
                if inner { row.1 } else { "p.id" },
                dir(false)
            )))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let l = b.bind(i64::from(count) + 1);
    let inner = format!("{} ORDER BY {} LIMIT {l}", b.sql, order(true));
    let outer_keys: String = (0..keys.len()).map(|i| format!(", p.o{i}::text")).collect();
    let versions = match &driven {
        // The newest version is the current one: these ids have index rows.
        Some((t, _)) => format!(
            "{t} AS res_type{outer_keys} FROM ({inner}) p {}",
            newest_version(t, "p.id")
        ),
        None => format!(
            "p.res_type{outer_keys}
               FROM ({inner}) p
               JOIN resource_versions v
                 ON v.res_type = p.res_type AND v.id = p.id AND v.version_id = p.version_id"
        ),
    };
    b.sql = format!(
        "SELECT p.id, {VERSION_COLUMNS}, {versions}
          ORDER BY {}",
        order(false)
    );
    if plan_follows_from_sql(scope, q) {
        b.plan = Plan::Kept;
    }
    Ok((b, keys))
}

/// A search of one type with a single filter and no `_sort` has its page picked from that
/// filter's index rows alone (`index_ids`): the matching ids are sorted and cut to the
/// page before any version is read, which it then is once per row of the page rather than
/// once per match (2,600 probes for `Patient?name=Smi` at 1M resources). With more filters the
/// planner chooses which to drive from, since cutting one filter's ids to a page is no longer
/// safe. Index rows exist only for current, undeleted resources, so they may drive alone.
/// With a `_sort`, every match is a candidate (the page is cut after the sort keys).
fn single_filter_ids(
    b: &mut Builder,
    rt: &str,
    q: &Query,
    after: Option<&Cursor>,
    count: u32,
) -> Option<String> {
    let [only] = q.clauses.as_slice() else {
        return None;
    };
    if !drives(only) {
        return None;
    }
    if !q.result.sort.is_empty() {
        // Sorted, every match is a candidate, each then probed for its sort key. `_id` and
        // `_lastUpdated` are left to `resources`, whose indexes hold them in order.
        let by_own_column = |k: &SortKey| k.param == "_id" || k.param == "_lastUpdated";
        if q.result.sort.iter().any(by_own_column) {
            return None;
        }
        let ids = index_ids(b, rt, only)?;
        let check = if names_others(only) {
            format!(" WHERE {}", current(&b.text(rt), "x.id"))
        } else {
            String::new()
        };
        return Some(format!("SELECT DISTINCT x.id FROM ({ids}) x{check}"));
    }
    let back = after.is_some_and(|c| c.back);
    let dir = if back { "DESC" } else { "ASC" };
    let cursor = after.map(|c| (if back { "<" } else { ">" }, b.text(&c.id)));
    let from = |alias: &str| {
        cursor.as_ref().map_or(String::new(), |(op, id)| {
            format!(" WHERE {alias}.id {op} {id}")
        })
    };
    let n = b.bind(i64::from(count) + 1);
    // The type, bound only where some ids are to be checked.
    let ty = names_others(only).then(|| b.text(rt));
    let check = |f: &Filter| ty.as_deref().filter(|_| names_others(f));
    let ids = match only {
        // Each part's own page first, read in id order from its index, then merged: PostgreSQL
        // does not merge the parts' ordered scans by itself, and hashed every match instead
        // (`combo-code` of a common code at 1M resources: 85–115 ms against 0.2 ms).
        Filter::Or(parts) => {
            let mut pages = Vec::with_capacity(parts.len());
            for part in parts {
                let ids = part_ids(b, rt, part)?;
                let ids = format!("SELECT p.id FROM ({ids}) p{}", from("p"));
                pages.push(format!("({})", first_ids(&ids, dir, &n, check(part))));
            }
            pages.join(" UNION ALL ")
        }
        f => {
            let ids = index_ids(b, rt, f)?;
            let ids = format!("SELECT x.id FROM ({ids}) x{}", from("x"));
            return Some(first_ids(&ids, dir, &n, check(f)));
        }
    };
    Some(first_ids(&ids, dir, &n, None))
}

/// A search whose only filter is a chain through one target type: its parameter, the target
/// type and the filter on the target.
type SingleChain<'q> = (&'q str, &'q str, &'q Filter);

fn single_chain(q: &Query) -> Option<SingleChain<'_>> {
    if !q.result.sort.is_empty() {
        return None;
    }
    match q.clauses.as_slice() {
        [Filter::Chain { param, targets }] => match targets.as_slice() {
            [(target, inner)] if drives(inner) => Some((param.as_str(), target.as_str(), &**inner)),
            _ => None,
        },
        _ => None,
    }
}

/// The page of a single chain, in (target id, id) order rather than id order: the targets
/// that match (677 patients named Harris at 1M resources) are read from their index rows and
/// walked in id order, and each one's referrers are read from the reference index in id order,
/// so the page ends after its first few targets instead of collecting and sorting every
/// referrer of every target (9,571 Observations: 3 s cold, against 1 ms). A resource that
/// refers to several matching targets is listed once, at the first of them. The cursor carries
/// the target id.
fn chain_rows(
    b: &mut Builder,
    t: &str,
    (param, target, inner): SingleChain<'_>,
    after: Option<&Cursor>,
    count: u32,
) -> String {
    let p = b.text(param);
    let tt = b.text(target);
    let targets =
        index_ids(b, target, inner).unwrap_or_else(|| "SELECT NULL::text AS id WHERE false".into());
    let earlier = filter(b, &tt, "e.target_id", false, inner);
    let back = after.is_some_and(|c| c.back);
    let (op, dir) = if back { ("<", "DESC") } else { (">", "ASC") };
    let (from_target, from) = match after.and_then(|c| Some((c.keys.first()?, &c.id))) {
        Some((k, id)) => {
            let (k, id) = (b.text(k), b.text(id));
            (
                format!(" WHERE x.id {op}= {k}"),
                format!(" AND (t.id, d.id) {op} ({k}, {id})"),
            )
        }
        None => (String::new(), String::new()),
    };
    let n = b.bind(i64::from(count) + 1);
    // The targets sorted, each one's referrers in index order: PostgreSQL then needs only an
    // incremental sort (presorted by target) and stops at the limit.
    format!(
        "SELECT t.id AS target_id, d.id
           FROM (SELECT DISTINCT x.id FROM ({targets}) x{from_target} ORDER BY x.id {dir}) t
           CROSS JOIN LATERAL (
                SELECT DISTINCT d.id FROM search_reference d
                 WHERE d.target_type = {tt} AND d.target_id = t.id AND d.res_type = {t} AND d.param = {p}
                 ORDER BY d.id {dir}) d
          WHERE NOT EXISTS (SELECT 1 FROM search_reference e
                             WHERE e.res_type = {t} AND e.id = d.id AND e.param = {p}
                               AND e.target_type = {tt} AND e.target_id < t.id
                               AND {earlier} OFFSET 0){from}
          ORDER BY t.id {dir}, d.id {dir} LIMIT {n}"
    )
}

/// Whether [`index_ids`] can read `f`'s matches from its index rows.
fn drives(f: &Filter) -> bool {
    matches!(
        f,
        Filter::Token { not: false, .. }
            | Filter::TokenIn { not: false, .. }
            | Filter::TokenText { .. }
            | Filter::String { .. }
            | Filter::Number { .. }
            | Filter::Quantity { .. }
            | Filter::Reference { .. }
            | Filter::Uri { .. }
            | Filter::Date { .. }
            | Filter::DateAll { .. }
            | Filter::Chain { .. }
            | Filter::Has { .. }
            | Filter::Text { .. }
    ) || matches!(f, Filter::Or(fs) if fs.iter().all(|f| matches!(f, Filter::Id(_)) || drives(f)))
}

/// The ids (as column `id`, possibly repeated) of resources of type `ty` that match `f`, read
/// from `f`'s own index rows without visiting `resources`: a page in id order can be picked
/// from them first, so a filter matching thousands of rows costs one probe per row of the page
/// rather than one per match. `None` for filters that are not a positive match on index rows
/// (`:not`, `:missing`, `_id`, `_lastUpdated`, combinations), which the planner handles better.
fn index_ids(b: &mut Builder, rt: &str, f: &Filter) -> Option<String> {
    if !drives(f) {
        return None;
    }
    // A compartment: the rows of each of its parameters (and the compartment's own resource,
    // by id), each read in id order.
    if let Filter::Or(fs) = f {
        let mut parts = Vec::with_capacity(fs.len());
        for f in fs {
            parts.push(format!("({})", part_ids(b, rt, f)?));
        }
        return Some(parts.join(" UNION ALL "));
    }
    let ty = &b.text(rt);
    let on_rows = |b: &mut Builder, table: &str, param: &str| {
        let a = b.alias();
        let p = b.text(param);
        let c = row_cond(b, &a, f, ("lo", "hi"));
        format!(
            "SELECT {a}.id FROM {table} {a} WHERE {a}.res_type = {ty} AND {a}.param = {p} AND ({c})"
        )
    };
    Some(match f {
        Filter::Token {
            param, not: false, ..
        }
        | Filter::TokenIn {
            param, not: false, ..
        }
        | Filter::TokenText { param, .. } => on_rows(b, "search_token", param),
        Filter::String { param, .. } => on_rows(b, "search_string", param),
        Filter::Number { param, .. } => on_rows(b, "search_number", param),
        Filter::Quantity { param, .. } => on_rows(b, "search_quantity", param),
        Filter::Reference { param, .. } => on_rows(b, "search_reference", param),
        Filter::Uri { param, .. } => on_rows(b, "search_uri", param),
        Filter::Date { param, .. } | Filter::DateAll { param, .. } => {
            let a = b.alias();
            let p = b.text(param);
            let c = match f {
                Filter::DateAll { groups, .. } => date_all_cond(b, &a, groups),
                _ => format!("({})", row_cond(b, &a, f, ("lo", "hi"))),
            };
            format!(
                "SELECT {a}.id FROM search_date {a} WHERE {a}.res_type = {ty} AND {a}.param = {p} AND {} AND {c}",
                date_rows_key(&a, ty, &p)
            )
        }
        Filter::Chain { param, targets } => chain_ids(b, ty, param, targets),
        Filter::Has {
            res_type,
            param,
            inner,
        } => {
            // Other resources' reference targets, not this type's own rows: see `names_others`.
            let (a, rows) = has_rows(b, ty, res_type, param, inner);
            format!("SELECT {a}.target_id AS id {rows}")
        }
        Filter::Text { field, values } => {
            let a = b.alias();
            let matched = text_cond(b, &a, *field, values);
            format!(
                "SELECT {a}.id FROM search_text {a} WHERE {a}.res_type = {ty} AND {}",
                matched
            )
        }
        _ => return None,
    })
}

/// The ids of one part of an ORed filter: listed ids (a compartment's own resource) or a part's
/// index rows.
fn part_ids(b: &mut Builder, rt: &str, f: &Filter) -> Option<String> {
    match f {
        Filter::Id(ids) => Some(format!("SELECT unnest({}) AS id", b.bind(ids.clone()))),
        f => index_ids(b, rt, f),
    }
}

/// Whether `f`'s ids may name resources that are not current: a `_has` reads other resources'
/// reference targets (which may be deleted), a compartment lists its own resource by id. Only
/// the searched type's own index rows are known current; these ids are checked as they fill a
/// page ([`first_ids`]).
fn names_others(f: &Filter) -> bool {
    match f {
        Filter::Has { .. } | Filter::Id(_) => true,
        Filter::Or(fs) => fs.iter().any(names_others),
        _ => false,
    }
}

/// The first `n` of the ids `ids` (column `id`, possibly repeated) in `dir` order, each checked
/// to be a current resource of type `ty` when `check`. The check comes after the sort, one
/// probe per id until the page is full (`OFFSET 0` keeps it a probe rather than a join with
/// every resource of the type): checking every match first doubled the `_has` shape's cost.
fn first_ids(ids: &str, dir: &str, n: &str, check: Option<&str>) -> String {
    match check {
        None => format!("SELECT DISTINCT x.id FROM ({ids}) x ORDER BY x.id {dir} LIMIT {n}"),
        Some(ty) => format!(
            "SELECT y.id FROM (SELECT DISTINCT x.id FROM ({ids}) x ORDER BY x.id {dir}) y
              WHERE {} ORDER BY y.id {dir} LIMIT {n}",
            current(ty, "y.id")
        ),
    }
}

/// That (`ty`, `id`) is a current, undeleted resource, probed per row.
fn current(ty: &str, id: &str) -> String {
    format!(
        "EXISTS (SELECT 1 FROM resources r WHERE r.res_type = {ty} AND r.id = {id} AND NOT r.deleted OFFSET 0)"
    )
}

/// The ids a chain matches, read from the chain's own reference rows: a page in id order can
/// be chosen from these before `resources` is visited, instead of probing `resources` once per
/// match (10,000 probes for a common family name at 1M resources).
fn chain_ids(b: &mut Builder, ty: &str, param: &str, targets: &[(String, Box<Filter>)]) -> String {
    let p = b.text(param);
    let ors = targets
        .iter()
        .map(|(target, inner)| {
            let t = b.text(target);
            let inner_cond = filter(b, &t, "d.target_id", false, inner);
            format!("(d.target_type = {t} AND {inner_cond})")
        })
        .collect();
    format!(
        "SELECT DISTINCT d.id FROM search_reference d WHERE d.res_type = {ty} AND d.param = {p} AND {}",
        any_of(ors)
    )
}
