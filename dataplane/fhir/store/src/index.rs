//! Index rows: what the search crate extracts from a resource and this crate writes beside it.
//!
//! All tables are written by one statement (data-modifying CTEs over `unnest`ed columns), so an
//! index of any size costs one round trip. Numbers travel as text and are cast to `numeric` by
//! PostgreSQL, which keeps decimals exact without a decimal crate on this side.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use crate::tsvector::TsVector;

/// Index rows of one resource version.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IndexEntries {
    pub tokens: Vec<TokenEntry>,
    pub strings: Vec<StringEntry>,
    pub dates: Vec<DateEntry>,
    pub numbers: Vec<NumberEntry>,
    pub quantities: Vec<QuantityEntry>,
    pub references: Vec<ReferenceEntry>,
    pub uris: Vec<UriEntry>,
    /// The resource's words for `_text` and `_content`; `None` writes no row.
    pub text: Option<TextEntry>,
    pub composites: Vec<CompositeEntry>,
}

/// One component value of one repetition of a composite parameter; the value fields are those
/// of the typed entries, filled as the component's type has them. Travels as JSON (one bind
/// parameter for the whole set) since it has so many columns and is rare.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct CompositeEntry {
    pub param: String,
    pub grp: i32,
    pub comp: i16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub norm: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlo: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dhi: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canon_dim: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canon_lo: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canon_hi: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TokenEntry {
    pub param: String,
    pub system: Option<String>,
    pub code: String,
    /// Normalised display text (Coding.display, CodeableConcept.text) for `:text`.
    pub display: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StringEntry {
    pub param: String,
    pub norm: String,
    pub exact: String,
}

/// The half-open range `[lo, hi)` a date value spans.
#[derive(Debug, Clone, PartialEq)]
pub struct DateEntry {
    pub param: String,
    pub lo: DateTime<Utc>,
    pub hi: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NumberEntry {
    pub param: String,
    /// A decimal literal, exactly as in the resource.
    pub value: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct QuantityEntry {
    pub param: String,
    pub system: Option<String>,
    pub code: Option<String>,
    pub unit: Option<String>,
    /// Decimal literals; `None` is an open end of a Range.
    pub lo: Option<String>,
    pub hi: Option<String>,
    /// For a UCUM unit: its dimension in base units and `lo`/`hi` converted to them.
    pub canonical: Option<CanonicalQuantity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CanonicalQuantity {
    pub dimension: String,
    pub lo: Option<String>,
    pub hi: Option<String>,
}

/// The words of the narrative (`_text`) and of the whole resource (`_content`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TextEntry {
    pub narrative: TsVector,
    pub content: TsVector,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceEntry {
    pub param: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub url: Option<String>,
    pub version: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UriEntry {
    pub param: String,
    pub uri: String,
}

impl IndexEntries {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
            && self.strings.is_empty()
            && self.dates.is_empty()
            && self.numbers.is_empty()
            && self.quantities.is_empty()
            && self.references.is_empty()
            && self.uris.is_empty()
            && self.text.is_none()
            && self.composites.is_empty()
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
            + self.strings.len()
            + self.dates.len()
            + self.numbers.len()
            + self.quantities.len()
            + self.references.len()
            + self.uris.len()
            + usize::from(self.text.is_some())
            + self.composites.len()
    }
}

/// The index rows of one resource or several, each row carrying its owner: what a write's
/// insert binds (several for a transaction's creates, in one multi-row statement).
pub(crate) struct IndexBatch<'a> {
    items: &'a [(&'a str, &'a str, &'a IndexEntries)],
}

impl<'a> IndexBatch<'a> {
    pub(crate) fn new(items: &'a [(&'a str, &'a str, &'a IndexEntries)]) -> Self {
        Self { items }
    }

    /// The CTEs that insert every row, one per table, with the array parameters numbered from
    /// `first` (each table's led by its rows' owner types and ids); the values to bind follow
    /// in [`IndexBatch::columns`] order.
    pub(crate) fn insert_ctes(first: usize) -> String {
        let mut n = first;
        let mut p = |k: usize| {
            let s: Vec<String> = (0..k).map(|i| format!("${}", n + i)).collect();
            n += k;
            s
        };
        let arrays = |ps: &[String], types: &[&str]| -> String {
            ps.iter()
                .zip(types)
                .map(|(p, t)| format!("{p}::{t}[]"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let t = p(6);
        let s = p(5);
        let d = p(5);
        let num = p(4);
        let q = p(11);
        let r = p(7);
        let u = p(4);
        let x = p(4);
        let c = p(1);
        let txt = |k: usize| vec!["text"; k];
        format!(
            "ins_token AS (INSERT INTO search_token (res_type, id, param, system, code, display)
                SELECT * FROM unnest({})),
             ins_string AS (INSERT INTO search_string (res_type, id, param, norm, exact)
                SELECT * FROM unnest({})),
             ins_date AS (INSERT INTO search_date (res_type, id, param, lo, hi)
                SELECT * FROM unnest({})),
             ins_number AS (INSERT INTO search_number (res_type, id, param, value)
                SELECT x.rt, x.id, x.p, x.v::numeric FROM unnest({}) AS x(rt, id, p, v)),
             ins_quantity AS (INSERT INTO search_quantity
                    (res_type, id, param, system, code, unit, lo, hi, canon_dim, canon_lo, canon_hi)
                SELECT x.rt, x.id, x.p, x.s, x.c, x.u, x.lo::numeric, x.hi::numeric, x.d,
                       x.clo::numeric, x.chi::numeric
                  FROM unnest({}) AS x(rt, id, p, s, c, u, lo, hi, d, clo, chi)),
             ins_reference AS (INSERT INTO search_reference (res_type, id, param, target_type, target_id, url, version)
                SELECT * FROM unnest({})),
             ins_uri AS (INSERT INTO search_uri (res_type, id, param, uri)
                SELECT * FROM unnest({})),
             ins_text AS (INSERT INTO search_text (res_type, id, narrative, content)
                SELECT * FROM unnest({})),
             ins_composite AS (INSERT INTO search_composite
                SELECT x.* FROM jsonb_to_recordset({}::jsonb) AS x(
                    res_type text, id text, param text, grp integer, comp smallint, system text,
                    code text, display text, norm text, exact text, dlo timestamptz,
                    dhi timestamptz, value numeric, unit text, lo numeric, hi numeric,
                    canon_dim text, canon_lo numeric, canon_hi numeric, target_type text,
                    target_id text, url text, version text, uri text))",
            arrays(&t, &txt(6)),
            arrays(&s, &txt(5)),
            arrays(&d, &["text", "text", "text", "timestamptz", "timestamptz"]),
            arrays(&num, &txt(4)),
            arrays(&q, &txt(11)),
            arrays(&r, &txt(7)),
            arrays(&u, &txt(4)),
            arrays(&x, &["text", "text", "tsvector", "tsvector"]),
            c[0],
        )
    }

    /// The arrays [`IndexBatch::insert_ctes`] binds, in its order.
    pub(crate) fn columns(&self) -> Vec<Box<dyn ToSql + Sync + Send + 'a>> {
        type Owned<'e, T> = Vec<(&'e str, &'e str, &'e T)>;
        fn rows<'e, T>(
            items: &[(&'e str, &'e str, &'e IndexEntries)],
            f: impl Fn(&'e IndexEntries) -> &'e [T],
        ) -> Owned<'e, T> {
            items
                .iter()
                .flat_map(|(rt, id, ix)| f(ix).iter().map(move |e| (*rt, *id, e)))
                .collect()
        }
        fn col<'e, T, V: ToSql + Sync + Send + 'e>(
            rows: &[(&'e str, &'e str, &'e T)],
            f: impl Fn(&'e T) -> V,
        ) -> Vec<Box<dyn ToSql + Sync + Send + 'e>> {
            vec![
                Box::new(rows.iter().map(|r| r.0).collect::<Vec<&str>>()),
                Box::new(rows.iter().map(|r| r.1).collect::<Vec<&str>>()),
                Box::new(rows.iter().map(|r| f(r.2)).collect::<Vec<V>>()),
            ]
        }
        fn more<'e, T, V: ToSql + Sync + Send + 'e>(
            rows: &[(&'e str, &'e str, &'e T)],
            f: impl Fn(&'e T) -> V,
        ) -> Box<dyn ToSql + Sync + Send + 'e> {
            Box::new(rows.iter().map(|r| f(r.2)).collect::<Vec<V>>())
        }
        let items = self.items;
        let t = rows(items, |ix| ix.tokens.as_slice());
        let s = rows(items, |ix| ix.strings.as_slice());
        let d = rows(items, |ix| ix.dates.as_slice());
        let n = rows(items, |ix| ix.numbers.as_slice());
        let q = rows(items, |ix| ix.quantities.as_slice());
        let r = rows(items, |ix| ix.references.as_slice());
        let u = rows(items, |ix| ix.uris.as_slice());
        let x = rows(items, |ix| ix.text.as_slice());
        let mut out = Vec::with_capacity(48);
        out.extend(col(&t, |e| e.param.as_str()));
        out.push(more(&t, |e| e.system.as_deref()));
        out.push(more(&t, |e| e.code.as_str()));
        out.push(more(&t, |e| e.display.as_deref()));
        out.extend(col(&s, |e| e.param.as_str()));
        out.push(more(&s, |e| e.norm.as_str()));
        out.push(more(&s, |e| e.exact.as_str()));
        out.extend(col(&d, |e| e.param.as_str()));
        out.push(more(&d, |e| e.lo));
        out.push(more(&d, |e| e.hi));
        out.extend(col(&n, |e| e.param.as_str()));
        out.push(more(&n, |e| e.value.as_str()));
        out.extend(col(&q, |e| e.param.as_str()));
        out.push(more(&q, |e| e.system.as_deref()));
        out.push(more(&q, |e| e.code.as_deref()));
        out.push(more(&q, |e| e.unit.as_deref()));
        out.push(more(&q, |e| e.lo.as_deref()));
        out.push(more(&q, |e| e.hi.as_deref()));
        out.push(more(&q, |e| {
            e.canonical.as_ref().map(|c| c.dimension.as_str())
        }));
        out.push(more(&q, |e| {
            e.canonical.as_ref().and_then(|c| c.lo.as_deref())
        }));
        out.push(more(&q, |e| {
            e.canonical.as_ref().and_then(|c| c.hi.as_deref())
        }));
        out.extend(col(&r, |e| e.param.as_str()));
        out.push(more(&r, |e| e.target_type.as_deref()));
        out.push(more(&r, |e| e.target_id.as_deref()));
        out.push(more(&r, |e| e.url.as_deref()));
        out.push(more(&r, |e| e.version.as_deref()));
        out.extend(col(&u, |e| e.param.as_str()));
        out.push(more(&u, |e| e.uri.as_str()));
        out.extend(col(&x, |e| &e.narrative));
        out.push(more(&x, |e| &e.content));
        let composites: Vec<serde_json::Value> = items
            .iter()
            .flat_map(|(rt, id, ix)| {
                ix.composites.iter().map(move |c| {
                    let mut v = serde_json::to_value(c).unwrap_or_default();
                    if let serde_json::Value::Object(o) = &mut v {
                        o.insert("res_type".into(), (*rt).into());
                        o.insert("id".into(), (*id).into());
                    }
                    v
                })
            })
            .collect();
        out.push(Box::new(serde_json::Value::Array(composites)));
        out
    }
}

/// Every index table, for deleting a resource's rows.
const TABLES: &[&str] = &[
    "search_token",
    "search_string",
    "search_date",
    "search_number",
    "search_quantity",
    "search_reference",
    "search_uri",
    "search_text",
    "search_composite",
];

/// Inserts the index rows of `res_type/id` (whose old rows are already gone).
pub(crate) async fn insert(
    client: &impl GenericClient,
    res_type: &str,
    id: &str,
    index: &IndexEntries,
) -> Result<u64, tokio_postgres::Error> {
    if index.is_empty() {
        return Ok(0);
    }
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("WITH {} SELECT 1", IndexBatch::insert_ctes(1)));
    let stmt = client.prepare_cached(&SQL).await?;
    let owners = [(res_type, id, index)];
    let columns = IndexBatch::new(&owners).columns();
    let params: Vec<&(dyn ToSql + Sync)> = columns
        .iter()
        .map(|c| c.as_ref() as &(dyn ToSql + Sync))
        .collect();
    client.execute(&stmt, &params).await
}

/// Deletes every index row of `res_type/id`, all tables in one statement.
pub(crate) async fn delete(
    client: &impl GenericClient,
    res_type: &str,
    id: &str,
) -> Result<u64, tokio_postgres::Error> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        let ctes: Vec<String> = TABLES
            .iter()
            .map(|t| format!("del_{t} AS (DELETE FROM {t} WHERE res_type = $1 AND id = $2)"))
            .collect();
        format!("WITH {} SELECT 1", ctes.join(", "))
    });
    let stmt = client.prepare_cached(&SQL).await?;
    client.execute(&stmt, &[&res_type, &id]).await
}
