//! Compiling a [`Query`] to SQL on the store's tables. Values are always bound parameters; only
//! table and column names chosen here are spliced in.
//!
//! Every filter becomes a condition on a `(res_type, id)` pair: the searched resource at the top,
//! a reference's target inside a chain, a referring resource inside `_has`. So chains and `_has`
//! nest to any depth as correlated EXISTS, with no intermediate result lists to cap.

use chrono::{DateTime, Utc};
use tokio_postgres::types::{ToSql, Type};

use hds_common::db::TypedQuery;

use crate::fulltext::TextField;
use crate::normalize::normalize;
use crate::query::{
    DateValue, Filter, NumberValue, Prefix, QuantityValue, ReferenceValue, StringMatch, TokenValue,
    UriMatch,
};
use crate::registry::ParamType;
use crate::result::SortKey;

/// A bound value and the PostgreSQL type it is sent as: the statement goes out with its
/// parameter types, so the server need not describe it first (one round trip, see
/// [`hds_common::db::TypedQuery`]).
pub(crate) type Param = (Box<dyn ToSql + Sync + Send>, Type);

/// The PostgreSQL type a bound Rust value is sent as.
pub(crate) trait SqlType: ToSql + Sync + Send + 'static {
    const TYPE: Type;
}

impl SqlType for String {
    const TYPE: Type = Type::TEXT;
}
impl SqlType for Vec<String> {
    const TYPE: Type = Type::TEXT_ARRAY;
}
impl SqlType for i64 {
    const TYPE: Type = Type::INT8;
}
impl SqlType for DateTime<Utc> {
    const TYPE: Type = Type::TIMESTAMPTZ;
}

#[derive(Default)]
pub(crate) struct Builder {
    pub sql: String,
    pub params: Vec<Param>,
    aliases: usize,
    /// Keep each EXISTS a per-row probe (`OFFSET 0` stops PostgreSQL from turning it into a
    /// semi-join over every row that matches it): for a few candidate rows known in advance.
    pub per_row: bool,
    /// How the statement is planned.
    pub plan: Plan,
}

/// How a statement is planned (see [`TypedQuery::query_prepared`]).
#[derive(Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Plan {
    /// For its values, on every request: they choose the plan.
    #[default]
    PerRequest,
    /// The plan follows from the SQL alone, whatever the values: prepared and kept, so
    /// PostgreSQL plans it generically after five runs.
    Kept,
    /// As `Kept`, where PostgreSQL would not settle on its generic plan by itself: forced.
    Generic,
}

impl Builder {
    pub fn new(sql: &str) -> Self {
        Self {
            sql: sql.to_owned(),
            ..Default::default()
        }
    }

    pub fn bind<T: SqlType>(&mut self, value: T) -> String {
        self.params.push((Box::new(value), T::TYPE));
        format!("${}", self.params.len())
    }

    pub(crate) fn text(&mut self, v: &str) -> String {
        self.bind(v.to_owned())
    }

    pub(crate) fn alias(&mut self) -> String {
        self.aliases += 1;
        format!("a{}", self.aliases)
    }

    /// The bound values with their types, as [`TypedQuery::query_typed`] takes them.
    pub fn typed(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|(p, t)| (p.as_ref() as _, t.clone()))
            .collect()
    }

    /// Runs the statement in one round trip (two the first time a prepared one runs on a
    /// connection).
    pub async fn query(
        &self,
        client: &impl TypedQuery,
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let generic = match self.plan {
            Plan::PerRequest => return client.query_typed(&self.sql, &self.typed()).await,
            Plan::Kept => false,
            Plan::Generic => true,
        };
        client
            .query_prepared(&self.sql, &self.typed(), generic)
            .await
    }
}

fn table(kind: ParamType) -> &'static str {
    match kind {
        ParamType::Token | ParamType::Special => "search_token",
        ParamType::Composite => "search_composite",
        ParamType::String => "search_string",
        ParamType::Date => "search_date",
        ParamType::Number => "search_number",
        ParamType::Quantity => "search_quantity",
        ParamType::Reference => "search_reference",
        ParamType::Uri => "search_uri",
    }
}

/// `EXISTS` over the rows of `param` in `table` owned by (`ty`, `id`), where `cond` (given the
/// row alias) holds for one of them.
fn exists(
    b: &mut Builder,
    table: &str,
    ty: &str,
    id: &str,
    param: &str,
    cond: impl FnOnce(&mut Builder, &str) -> String,
) -> String {
    let p = b.text(param);
    exists_bound(b, table, ty, id, &p, cond)
}

/// [`exists`] with the parameter already bound as `p`.
fn exists_bound(
    b: &mut Builder,
    table: &str,
    ty: &str,
    id: &str,
    p: &str,
    cond: impl FnOnce(&mut Builder, &str) -> String,
) -> String {
    let a = b.alias();
    let c = cond(b, &a);
    let probe = if b.per_row { " OFFSET 0" } else { "" };
    format!(
        "EXISTS (SELECT 1 FROM {table} {a} WHERE {a}.res_type = {ty} AND {a}.id = {id} AND {a}.param = {p} AND ({c}){probe})"
    )
}

/// [`exists`] over date rows, naming their GiST index's key: without an id's probe the planner
/// may read the matching rows from that index.
fn date_exists(
    b: &mut Builder,
    ty: &str,
    id: &str,
    param: &str,
    cond: impl FnOnce(&mut Builder, &str) -> String,
) -> String {
    let p = b.text(param);
    exists_bound(b, "search_date", ty, id, &p, |b, a| {
        format!("{} AND ({})", date_rows_key(a, ty, &p), cond(b, a))
    })
}

/// The GiST index of the date rows' spans leads with an integer made from the row's type and
/// parameter (migration 0020: text keys made each insert into it cost twice as much), so a
/// search of the rows of type `ty` and parameter `p` names that integer to use the index.
pub(crate) fn date_rows_key(a: &str, ty: &str, p: &str) -> String {
    format!("hashtext({a}.res_type || '|' || {a}.param) = hashtext({ty} || '|' || {p})")
}

/// One date row (alias `a`) inside every group of ANDed date clauses (each group ORed), with a
/// range-overlap hint the GiST index on the rows' spans can answer.
pub(crate) fn date_all_cond(b: &mut Builder, a: &str, groups: &[Vec<DateValue>]) -> String {
    let window = groups
        .iter()
        .map(|g| hull(g))
        .try_fold((None, None), |(lo, hi): Window, g| {
            let (glo, ghi) = g?;
            Some((later(lo, glo), earlier(hi, ghi)))
        });
    let overlap = match window {
        // An inverted window (ge 2021 & le 2019) still matches long ranges: no hint.
        Some((Some(lo), Some(hi))) if lo > hi => String::new(),
        Some((lo, hi)) => {
            let l = lo.map_or("NULL".into(), |t| b.bind(t));
            let h = hi.map_or("NULL".into(), |t| b.bind(t));
            format!(
                "tstzrange({a}.lo, greatest({a}.lo, {a}.hi), '[]') && tstzrange({l}::timestamptz, {h}::timestamptz, '[]') AND "
            )
        }
        None => String::new(),
    };
    overlap
        + &all_of(
            groups
                .iter()
                .map(|values| {
                    any_of(
                        values
                            .iter()
                            .map(|v| range_cond(b, &format!("{a}.lo"), &format!("{a}.hi"), v))
                            .collect(),
                    )
                })
                .collect(),
        )
}

/// A `search_text` row (alias `a`) matches one of the websearch queries in `values`; a value
/// with no word matches nothing.
pub(crate) fn text_cond(b: &mut Builder, a: &str, field: TextField, values: &[String]) -> String {
    let col = field.column();
    let ors = values
        .iter()
        .filter_map(|v| crate::fulltext::web_query(v))
        .map(|q| {
            let p = b.text(&q);
            format!("{a}.{col} @@ {p}::tsquery")
        })
        .collect();
    any_of(ors)
}

pub(crate) fn any_of(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "false".into()
    } else {
        format!("({})", parts.join(" OR "))
    }
}

fn all_of(parts: Vec<String>) -> String {
    if parts.is_empty() {
        "true".into()
    } else {
        format!("({})", parts.join(" AND "))
    }
}

/// The condition that (`ty`, `id`) matches `f`. `ty` is an SQL expression (a bound parameter);
/// `id` a column. `top` says whether `id` is `r.id` of the searched `resources` row.
pub(crate) fn filter(b: &mut Builder, ty: &str, id: &str, top: bool, f: &Filter) -> String {
    match f {
        Filter::Id(ids) => {
            let p = b.bind(ids.clone());
            format!("{id} = ANY({p})")
        }
        Filter::LastUpdated(values) => {
            if top {
                let ors = values
                    .iter()
                    .map(|v| instant_cond(b, "r.last_updated", v))
                    .collect();
                any_of(ors)
            } else {
                let x = b.alias();
                let col = format!("{x}.last_updated");
                let ors = values.iter().map(|v| instant_cond(b, &col, v)).collect();
                format!(
                    "EXISTS (SELECT 1 FROM resources {x} WHERE {x}.res_type = {ty} AND {x}.id = {id} AND NOT {x}.deleted AND {})",
                    any_of(ors)
                )
            }
        }
        Filter::Token { param, not, .. } | Filter::TokenIn { param, not, .. } => {
            let e = exists(b, "search_token", ty, id, param, |b, a| {
                row_cond(b, a, f, ("lo", "hi"))
            });
            if *not { format!("NOT {e}") } else { e }
        }
        Filter::TokenText { param, .. } | Filter::TokenHierarchy { param, .. } => {
            exists(b, "search_token", ty, id, param, |b, a| {
                row_cond(b, a, f, ("lo", "hi"))
            })
        }
        Filter::String { param, .. } => exists(b, "search_string", ty, id, param, |b, a| {
            row_cond(b, a, f, ("lo", "hi"))
        }),
        Filter::Date { param, .. } => {
            date_exists(b, ty, id, param, |b, a| row_cond(b, a, f, ("lo", "hi")))
        }
        Filter::DateAll { param, groups } => {
            date_exists(b, ty, id, param, |b, a| date_all_cond(b, a, groups))
        }
        Filter::Number { param, .. } => exists(b, "search_number", ty, id, param, |b, a| {
            row_cond(b, a, f, ("lo", "hi"))
        }),
        Filter::Quantity { param, .. } => exists(b, "search_quantity", ty, id, param, |b, a| {
            row_cond(b, a, f, ("lo", "hi"))
        }),
        Filter::Reference { param, .. } => exists(b, "search_reference", ty, id, param, |b, a| {
            row_cond(b, a, f, ("lo", "hi"))
        }),
        Filter::Uri { param, .. } => exists(b, "search_uri", ty, id, param, |b, a| {
            row_cond(b, a, f, ("lo", "hi"))
        }),
        Filter::Missing {
            param,
            kind,
            missing,
            target_type,
        } => {
            let e = exists(b, table(*kind), ty, id, param, |b, a| match target_type {
                Some(t) => format!("{a}.target_type = {}", b.text(t)),
                None => "true".into(),
            });
            if *missing { format!("NOT {e}") } else { e }
        }
        Filter::Chain { param, targets } => {
            let ors = targets
                .iter()
                .map(|(target, inner)| {
                    let t = b.text(target);
                    exists(b, "search_reference", ty, id, param, |b, a| {
                        let inner_cond = filter(b, &t, &format!("{a}.target_id"), false, inner);
                        format!("{a}.target_type = {t} AND {inner_cond}")
                    })
                })
                .collect();
            any_of(ors)
        }
        Filter::Has {
            res_type,
            param,
            inner,
        } => {
            let (a, rows) = has_rows(b, ty, res_type, param, inner);
            format!("EXISTS (SELECT 1 {rows} AND {a}.target_id = {id})")
        }
        Filter::Text { field, values } => {
            let a = b.alias();
            let matched = text_cond(b, &a, *field, values);
            format!(
                "EXISTS (SELECT 1 FROM search_text {a} WHERE {a}.res_type = {ty} AND {a}.id = {id} AND {})",
                matched
            )
        }
        Filter::List(lists) => {
            let a = b.alias();
            let p = b.bind(lists.clone());
            format!(
                "EXISTS (SELECT 1 FROM search_reference {a} WHERE {a}.target_type = {ty} AND {a}.target_id = {id} AND {a}.res_type = 'List' AND {a}.param = 'item' AND {a}.id = ANY({p}))"
            )
        }
        Filter::Composite { params, values } => {
            let ors = values
                .iter()
                .map(|components| composite_cond(b, ty, id, params, components))
                .collect();
            any_of(ors)
        }
        Filter::ResourceType(types) => {
            let p = b.bind(types.clone());
            format!("{ty}::text = ANY({p}::text[])")
        }
        Filter::And(fs) => all_of(fs.iter().map(|f| filter(b, ty, id, top, f)).collect()),
        Filter::Or(fs) => any_of(fs.iter().map(|f| filter(b, ty, id, top, f)).collect()),
    }
}

/// The reference rows of `_has:{res_type}:{param}:...` that point at resources of type `ty`
/// from a referrer matching `inner`: `FROM ... WHERE ...`, and the alias whose `target_id` is
/// the matched resource. Shared by the EXISTS of a filter and the id list of a page.
pub(crate) fn has_rows(
    b: &mut Builder,
    ty: &str,
    res_type: &str,
    param: &str,
    inner: &Filter,
) -> (String, String) {
    let a = b.alias();
    let h = b.text(res_type);
    let p = b.text(param);
    let inner_cond = filter(b, &h, &format!("{a}.id"), false, inner);
    let rows = format!(
        "FROM search_reference {a} WHERE {a}.res_type = {h} AND {a}.param = {p} AND {a}.target_type = {ty} AND {inner_cond}"
    );
    (a, rows)
}

/// The condition one index row (alias `a`) must meet for a value filter, on the typed tables'
/// columns (which `search_composite` shares; its dates are `dlo`/`dhi`, passed as `dates`).
/// A filter that is not about one row's value (`:missing`, chains, ...) is `false`.
pub(crate) fn row_cond(b: &mut Builder, a: &str, f: &Filter, dates: (&str, &str)) -> String {
    let (dlo, dhi) = (format!("{a}.{}", dates.0), format!("{a}.{}", dates.1));
    match f {
        Filter::Token { values, .. } => {
            any_of(values.iter().map(|v| token_cond(b, a, v)).collect())
        }
        Filter::TokenIn { value_sets, .. } => {
            let vs = b.bind(value_sets.clone());
            // A `code` element has no system in its rows: its code alone must be listed.
            format!(
                "(EXISTS (SELECT 1 FROM ({}) x(sys, code) WHERE x.code = {a}.code AND ({a}.system IS NULL OR x.sys = {a}.system)) OR {a}.system IN ({}))",
                vs_codes(&vs),
                vs_systems(&vs)
            )
        }
        Filter::TokenText { values, .. } => any_of(
            values
                .iter()
                .map(|v| {
                    let p = b.bind(format!("{}%", like_escape(v)));
                    format!("{a}.display LIKE {p}")
                })
                .collect(),
        ),
        // Resolved by the executor before compiling; alone, the code itself is what it names.
        Filter::TokenHierarchy { values, .. } => any_of(
            values
                .iter()
                .map(|(s, c)| format!("({a}.system = {} AND {a}.code = {})", b.text(s), b.text(c)))
                .collect(),
        ),
        Filter::String { how, values, .. } => any_of(
            values
                .iter()
                .map(|v| match how {
                    // Its normal form names the index key; the value is checked within the key.
                    StringMatch::Exact => {
                        let n = b.text(&normalize(v));
                        let check = format!("{a}.norm = {n} AND {a}.exact = {}", b.text(v));
                        format!(
                            "(left({a}.norm, {PREFIX_KEY_CHARS}) = left({n}, {PREFIX_KEY_CHARS}) AND {})",
                            within_key(&check)
                        )
                    }
                    StringMatch::Prefix => prefix_cond(b, a, v),
                    StringMatch::Contains => {
                        let p = b.bind(format!("%{}%", like_escape(v)));
                        format!("{a}.norm LIKE {p}")
                    }
                })
                .collect(),
        ),
        Filter::Date { values, .. } => any_of(
            values
                .iter()
                .map(|v| range_cond(b, &dlo, &dhi, v))
                .collect(),
        ),
        Filter::Number { values, .. } => any_of(
            values
                .iter()
                .map(|v| number_cond(b, &format!("{a}.value"), v))
                .collect(),
        ),
        Filter::Quantity { values, .. } => {
            any_of(values.iter().map(|v| quantity_cond(b, a, v)).collect())
        }
        Filter::Reference { values, .. } => {
            any_of(values.iter().map(|v| reference_cond(b, a, v)).collect())
        }
        Filter::Uri { how, values, .. } => any_of(
            values
                .iter()
                .map(|v| {
                    let p = b.text(v);
                    match how {
                        UriMatch::Exact => format!("{a}.uri = {p}"),
                        UriMatch::Above => format!("starts_with({p}, {a}.uri)"),
                        UriMatch::Below => format!("starts_with({a}.uri, {p})"),
                    }
                })
                .collect(),
        ),
        _ => "false".into(),
    }
}

/// Component 0 matching in some repetition, and each later component in the same one.
fn composite_cond(
    b: &mut Builder,
    ty: &str,
    id: &str,
    params: &[String],
    components: &[Filter],
) -> String {
    let p = match params {
        [one] => format!("= {}", b.text(one)),
        several => format!("= ANY({})", b.bind(several.to_vec())),
    };
    let mut aliases: Vec<String> = Vec::new();
    let mut sql = String::new();
    for (i, f) in components.iter().enumerate() {
        let a = b.alias();
        let owner = match aliases.first() {
            None => format!("{a}.res_type = {ty} AND {a}.id = {id} AND {a}.param {p}"),
            Some(first) => format!(
                "{a}.res_type = {first}.res_type AND {a}.id = {first}.id AND {a}.param = {first}.param AND {a}.grp = {first}.grp"
            ),
        };
        let cond = row_cond(b, &a, f, ("dlo", "dhi"));
        let negate = matches!(
            f,
            Filter::Token { not: true, .. } | Filter::TokenIn { not: true, .. }
        );
        let cond = if negate {
            format!("NOT ({cond})")
        } else {
            cond
        };
        sql.push_str(&format!(
            "EXISTS (SELECT 1 FROM search_composite {a} WHERE {owner} AND {a}.comp = {i} AND {cond}"
        ));
        if i + 1 < components.len() {
            sql.push_str(" AND ");
        }
        aliases.push(a);
    }
    sql.push_str(&")".repeat(components.len()));
    sql
}

/// The bodies of the ValueSets stored here with one of the canonical urls in `vs` (a text[]).
fn vs_bodies(vs: &str) -> String {
    format!(
        "SELECT v.body::jsonb AS b FROM search_uri u
           JOIN resources r ON r.res_type = u.res_type AND r.id = u.id AND NOT r.deleted
           JOIN resource_versions v ON v.res_type = r.res_type AND v.id = r.id AND v.version_id = r.version_id
          WHERE u.res_type = 'ValueSet' AND u.param = 'url' AND u.uri = ANY({vs})"
    )
}

/// (system, code) pairs a stored ValueSet enumerates: its expansion, and the concepts listed
/// in its compose.include.
fn vs_codes(vs: &str) -> String {
    let bodies = vs_bodies(vs);
    format!(
        "SELECT c->>'system', c->>'code' FROM ({bodies}) s, jsonb_array_elements(s.b->'expansion'->'contains') c
         UNION ALL
         SELECT i->>'system', c->>'code' FROM ({bodies}) s, jsonb_array_elements(s.b->'compose'->'include') i,
                jsonb_array_elements(i->'concept') c"
    )
}

/// Whole code systems a stored ValueSet includes (an include with neither concepts nor filters).
fn vs_systems(vs: &str) -> String {
    format!(
        "SELECT i->>'system' FROM ({}) s, jsonb_array_elements(s.b->'compose'->'include') i
          WHERE NOT (i ? 'concept') AND NOT (i ? 'filter') AND NOT (i ? 'valueSet')",
        vs_bodies(vs)
    )
}

/// How many leading characters of a string row's normal form its index is keyed on, before the
/// resource id (`search_string_lookup`, migration 0021).
pub(crate) const PREFIX_KEY_CHARS: usize = 3;

/// Rows whose normal form starts with `v` (normalised). The index is keyed on the first
/// [`PREFIX_KEY_CHARS`] characters, then the id: a prefix at least that long names one key,
/// whose rows are read in id order, so a page ends after about as many rows as it holds
/// however common the prefix (`name=Mar`: 4,840 rows at 1M resources, read to the last before).
/// A shorter prefix is a range of keys, written as a `text_pattern_ops` range (not `LIKE`) so
/// that a plan made without the value can still use it.
fn prefix_cond(b: &mut Builder, a: &str, v: &str) -> String {
    let key = format!("left({a}.norm, {PREFIX_KEY_CHARS})");
    let chars = v.chars().count();
    if chars == PREFIX_KEY_CHARS {
        return format!("{key} = {}", b.text(v));
    }
    let p = b.text(v);
    if chars > PREFIX_KEY_CHARS {
        let mut range = format!("{a}.norm ~>=~ {p}");
        if let Some(end) = prefix_end(v) {
            range = format!("{range} AND {a}.norm ~<~ {}", b.bind(end));
        }
        return format!(
            "({key} = left({p}, {PREFIX_KEY_CHARS}) AND {})",
            within_key(&range)
        );
    }
    let from = format!("{key} ~>=~ {p}");
    match prefix_end(v) {
        Some(end) => format!("({from} AND {key} ~<~ {})", b.bind(end)),
        None => format!("({from})"),
    }
}

/// `check` on the rows of one key of the string index, in a form whose selectivity PostgreSQL
/// does not estimate (a `CASE` is taken as true for half the rows). Estimated as written, the
/// key and the whole value would multiply as if independent, though the value implies the
/// key: `Harris` came out at one row of 677, and a chain to it then joined and sorted all
/// 9,571 referrers (140 ms) instead of stopping after the first patients (0.7 ms).
fn within_key(check: &str) -> String {
    format!("CASE WHEN {check} THEN true ELSE false END")
}

/// The least string above every string that starts with `prefix`, in byte order, which in
/// UTF-8 is code point order: the prefix with its last character raised by one (dropped, and
/// the one before raised, when it is the last character there is). None for an empty prefix.
fn prefix_end(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match last as u32 + 1 {
            0xD800 => 0xE000,
            n => n,
        };
        if let Some(next) = char::from_u32(next) {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

/// LIKE's own metacharacters in a value are literal.
fn like_escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        if matches!(c, '%' | '_' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn token_cond(b: &mut Builder, a: &str, v: &TokenValue) -> String {
    let mut parts = Vec::new();
    match &v.system {
        None => {}
        Some(None) => parts.push(format!("{a}.system IS NULL")),
        Some(Some(s)) => parts.push(format!("{a}.system = {}", b.text(s))),
    }
    match &v.code {
        Some(c) => parts.push(format!("{a}.code = {}", b.text(c))),
        // `system|` still needs a real code, not a text-only row.
        None => parts.push(format!("{a}.code <> ''")),
    }
    all_of(parts)
}

/// A search value's range against a stored `[lo, hi)` (FHIR R4 §3.1.1.4.6).
fn range_cond(b: &mut Builder, lo: &str, hi: &str, v: &DateValue) -> String {
    let mut t = |d: DateTime<Utc>| b.bind(d);
    match v.prefix {
        Prefix::Eq => format!("({lo} >= {} AND {hi} <= {})", t(v.start), t(v.end)),
        Prefix::Ne => format!("NOT ({lo} >= {} AND {hi} <= {})", t(v.start), t(v.end)),
        Prefix::Gt => format!("{hi} > {}", t(v.end)),
        Prefix::Lt => format!("{lo} < {}", t(v.start)),
        Prefix::Ge => format!("{hi} > {}", t(v.start)),
        Prefix::Le => format!("{lo} < {}", t(v.end)),
        Prefix::Sa => format!("{lo} >= {}", t(v.end)),
        Prefix::Eb => format!("{hi} <= {}", t(v.start)),
        Prefix::Ap => {
            // Approximately: within 10% of the distance from now, at least the value's own span.
            let span = v.end - v.start;
            let gap = ((Utc::now() - v.start).abs() / 10).max(span);
            let (s, e) = (v.start - gap, v.end + gap);
            format!("({lo} < {} AND {hi} > {})", t(e), t(s))
        }
    }
}

/// An interval of time, `None` for an open end.
type Window = (Option<DateTime<Utc>>, Option<DateTime<Utc>>);

/// The smallest window every stored range matching one of `values` overlaps, or `None` when
/// there is none (`ne` excludes a window rather than naming one).
fn hull(values: &[DateValue]) -> Option<Window> {
    let mut out: Option<Window> = None;
    for v in values {
        let w: Window = match v.prefix {
            Prefix::Eq => (Some(v.start), Some(v.end)),
            Prefix::Gt | Prefix::Sa => (Some(v.end), None),
            Prefix::Ge => (Some(v.start), None),
            Prefix::Lt | Prefix::Eb => (None, Some(v.start)),
            Prefix::Le => (None, Some(v.end)),
            Prefix::Ne | Prefix::Ap => return None,
        };
        out = Some(match out {
            None => w,
            Some((lo, hi)) => (
                lo.and_then(|l| w.0.map(|x| l.min(x))),
                hi.and_then(|h| w.1.map(|x| h.max(x))),
            ),
        });
    }
    out
}

fn later(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    }
}

fn earlier(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// `last_updated` is an instant: the millisecond it names.
fn instant_cond(b: &mut Builder, col: &str, v: &DateValue) -> String {
    let hi = format!("({col} + interval '1 millisecond')");
    range_cond(b, col, &hi, v)
}

fn num(b: &mut Builder, v: &str) -> String {
    format!("{}::text::numeric", b.text(v))
}

fn number_cond(b: &mut Builder, col: &str, v: &NumberValue) -> String {
    match v.prefix {
        Prefix::Eq => format!("({col} >= {} AND {col} < {})", num(b, &v.lo), num(b, &v.hi)),
        Prefix::Ne => format!(
            "NOT ({col} >= {} AND {col} < {})",
            num(b, &v.lo),
            num(b, &v.hi)
        ),
        Prefix::Gt | Prefix::Sa => format!("{col} > {}", num(b, &v.value)),
        Prefix::Lt | Prefix::Eb => format!("{col} < {}", num(b, &v.value)),
        Prefix::Ge => format!("{col} >= {}", num(b, &v.value)),
        Prefix::Le => format!("{col} <= {}", num(b, &v.value)),
        Prefix::Ap => {
            let x = num(b, &v.value);
            format!("({col} BETWEEN {x} - abs({x}) * 0.1 AND {x} + abs({x}) * 0.1)")
        }
    }
}

/// A stored quantity compares in base units when both sides have them, and in the query's
/// own unit when the row has none (a unit outside UCUM's linear ones, or written before
/// canonical forms were indexed).
fn quantity_cond(b: &mut Builder, a: &str, v: &QuantityValue) -> String {
    let Some((dim, n)) = &v.canonical else {
        return quantity_in_unit(b, a, v);
    };
    let d = b.text(dim);
    let canon = quantity_range(b, &format!("{a}.canon_lo"), &format!("{a}.canon_hi"), n);
    let plain = quantity_in_unit(b, a, v);
    format!("(({a}.canon_dim = {d} AND {canon}) OR ({a}.canon_dim IS NULL AND {plain}))")
}

fn quantity_in_unit(b: &mut Builder, a: &str, v: &QuantityValue) -> String {
    let value_cond = quantity_range(b, &format!("{a}.lo"), &format!("{a}.hi"), &v.number);
    let mut parts = vec![value_cond];
    if let Some(s) = &v.system {
        parts.push(format!("{a}.system = {}", b.text(s)));
    }
    if let Some(c) = &v.code {
        let p = b.text(c);
        if v.system.is_some() {
            parts.push(format!("{a}.code = {p}"));
        } else {
            parts.push(format!("({a}.code = {p} OR {a}.unit = {p})"));
        }
    }
    all_of(parts)
}

fn quantity_range(b: &mut Builder, lo: &str, hi: &str, n: &NumberValue) -> String {
    // Open Range ends (NULL) extend without bound.
    match n.prefix {
        Prefix::Eq => format!("({lo} >= {} AND {hi} < {})", num(b, &n.lo), num(b, &n.hi)),
        Prefix::Ne => format!(
            "NOT coalesce({lo} >= {} AND {hi} < {}, false)",
            num(b, &n.lo),
            num(b, &n.hi)
        ),
        Prefix::Gt => format!("coalesce({hi} > {}, true)", num(b, &n.value)),
        Prefix::Lt => format!("coalesce({lo} < {}, true)", num(b, &n.value)),
        Prefix::Ge => format!("coalesce({hi} >= {}, true)", num(b, &n.value)),
        Prefix::Le => format!("coalesce({lo} <= {}, true)", num(b, &n.value)),
        Prefix::Sa => format!("{lo} > {}", num(b, &n.value)),
        Prefix::Eb => format!("{hi} < {}", num(b, &n.value)),
        Prefix::Ap => {
            let x = num(b, &n.value);
            format!(
                "(coalesce({lo} <= {x} + abs({x}) * 0.1, true) AND coalesce({hi} >= {x} - abs({x}) * 0.1, true))"
            )
        }
    }
}

fn reference_cond(b: &mut Builder, a: &str, v: &ReferenceValue) -> String {
    if let Some(url) = &v.url {
        let mut parts = vec![format!("{a}.url = {}", b.text(url))];
        if let Some(ver) = &v.version {
            parts.push(format!("{a}.version = {}", b.text(ver)));
        }
        return all_of(parts);
    }
    let mut parts = Vec::new();
    if let Some(t) = &v.target_type {
        parts.push(format!("{a}.target_type = {}", b.text(t)));
    }
    if let Some(i) = &v.id {
        parts.push(format!("{a}.target_id = {}", b.text(i)));
    }
    all_of(parts)
}

/// What a sort key orders by, for the row (`ty`, `id`) (SQL expressions; `r.res_type` and
/// `r.id` for a `resources` row): the parameter's smallest value ascending, its largest
/// descending (R4 §3.1.1.5.5), with a sentinel for "no value" so that such resources come last
/// either way and keyset comparisons never meet NULL. `_lastUpdated` is `r.last_updated`.
pub(crate) fn sort_expr(
    b: &mut Builder,
    key: &SortKey,
    (row_type, row_id): (&str, &str),
) -> (String, &'static str) {
    let desc = key.descending;
    let agg = if desc { "max" } else { "min" };
    if key.param == "_id" {
        // In the primary key's own collation, so the index can deliver the order.
        return (row_id.into(), "id");
    }
    if key.param == "_lastUpdated" {
        return ("r.last_updated".into(), "timestamptz");
    }
    let kind = key.kind.unwrap_or(ParamType::Token);
    let (col, ty, sentinel) = match kind {
        ParamType::String => (
            "norm".to_owned(),
            "text",
            if desc { "''" } else { "chr(1114111)" },
        ),
        ParamType::Date => (
            if desc { "hi" } else { "lo" }.to_owned(),
            "timestamptz",
            if desc {
                "'-infinity'::timestamptz"
            } else {
                "'infinity'::timestamptz"
            },
        ),
        ParamType::Number => (
            "value".into(),
            "numeric",
            if desc {
                "'-Infinity'::numeric"
            } else {
                "'Infinity'::numeric"
            },
        ),
        ParamType::Quantity => (
            if desc { "hi" } else { "lo" }.to_owned(),
            "numeric",
            if desc {
                "'-Infinity'::numeric"
            } else {
                "'Infinity'::numeric"
            },
        ),
        ParamType::Reference => (
            "coalesce(target_type || '/' || target_id, url)".into(),
            "text",
            if desc { "''" } else { "chr(1114111)" },
        ),
        ParamType::Uri => (
            "uri".into(),
            "text",
            if desc { "''" } else { "chr(1114111)" },
        ),
        _ => (
            "code".into(),
            "text",
            if desc { "''" } else { "chr(1114111)" },
        ),
    };
    let mut param = if key.union_of.is_empty() {
        format!("= {}", b.text(&key.param))
    } else {
        format!("= ANY({})", b.bind(key.union_of.clone()))
    };
    if let Some(t) = &key.target_type {
        param.push_str(&format!(" AND s.target_type = {}", b.text(t)));
    }
    let collate = if ty == "text" { " COLLATE \"C\"" } else { "" };
    (
        format!(
            "(coalesce((SELECT {agg}({col}{collate}) FROM {} s WHERE s.res_type = {row_type} AND s.id = {row_id} AND s.param {param}), {sentinel}){collate})",
            table(kind)
        ),
        ty,
    )
}

/// The columns of a version `v`, as a page or an include returns them.
pub(crate) const VERSION_COLUMNS: &str = "v.version_id, v.last_updated, v.method, v.body";

/// `CROSS JOIN LATERAL (…) v`: the newest version of the resource (`ty`, `id`), its
/// [`VERSION_COLUMNS`]. For a resource that has index rows this is its current version, so
/// rows read from the index tables need no visit to `resources` (whose probe was half of a
/// page row's buffer reads at 1M resources).
pub(crate) fn newest_version(ty: &str, id: &str) -> String {
    format!(
        "CROSS JOIN LATERAL (
            SELECT {VERSION_COLUMNS} FROM resource_versions v
             WHERE v.res_type = {ty} AND v.id = {id}
             ORDER BY v.version_id DESC LIMIT 1) v"
    )
}

/// Rows strictly after `after` in the order of `keys` (each with its direction), then `id` (the
/// rows' id column); strictly before it when `back`.
pub(crate) fn keyset(
    b: &mut Builder,
    keys: &[(String, &'static str, bool)],
    (id, after_id): (&str, &str),
    after: &[String],
    back: bool,
) -> String {
    // (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ... OR (all equal AND id > last id)
    let mut ors = Vec::new();
    let mut eqs: Vec<String> = Vec::new();
    for ((expr, ty, desc), v) in keys.iter().zip(after) {
        let cast = if *ty == "id" { "text" } else { ty };
        let p = format!("{}::text::{cast}", b.text(v));
        let p = if *ty == "text" {
            format!("({p} COLLATE \"C\")")
        } else {
            p
        };
        let op = if *desc != back { "<" } else { ">" };
        let mut c = eqs.clone();
        c.push(format!("{expr} {op} {p}"));
        ors.push(all_of(c));
        eqs.push(format!("{expr} = {p}"));
    }
    let mut c = eqs;
    let op = if back { "<" } else { ">" };
    c.push(format!("{id} {op} {}", b.text(after_id)));
    ors.push(all_of(c));
    any_of(ors)
}

#[cfg(test)]
mod tests {
    use super::prefix_end;

    #[test]
    fn a_prefix_range_holds_exactly_the_strings_with_that_prefix() {
        assert_eq!(prefix_end("smi").as_deref(), Some("smj"));
        assert_eq!(prefix_end("gonzá").as_deref(), Some("gonzâ"));
        assert_eq!(prefix_end("a\u{D7FF}").as_deref(), Some("a\u{E000}"));
        assert_eq!(prefix_end("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_end("\u{10FFFF}"), None);
        assert_eq!(prefix_end(""), None);
        // Every string of up to three of these characters, against every prefix of them.
        let alphabet = [
            'a',
            'z',
            '{',
            'é',
            'ÿ',
            '\u{7FF}',
            '\u{D7FF}',
            '\u{E000}',
            '😀',
            '\u{10FFFF}',
        ];
        let mut all = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = all
                .iter()
                .flat_map(|s| alphabet.iter().map(move |c| format!("{s}{c}")))
                .collect();
            all.extend(longer);
        }
        all.sort();
        all.dedup();
        for p in all.iter().filter(|p| p.chars().count() <= 2) {
            let end = prefix_end(p);
            for s in &all {
                let inside = s.as_bytes() >= p.as_bytes()
                    && end.as_ref().is_none_or(|e| s.as_bytes() < e.as_bytes());
                assert_eq!(inside, s.starts_with(p.as_str()), "{p:?} {s:?} {end:?}");
            }
        }
    }
}
