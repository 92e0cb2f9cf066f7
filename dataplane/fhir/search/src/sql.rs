//! Compiling a [`Query`] to SQL on the store's tables. Values are always bound parameters.

use deadpool_postgres::GenericClient;
use hds_fhir_store::{Method, StoredVersion};
use tokio_postgres::types::ToSql;

use crate::query::{Clause, DatePrefix, DateValue, Query};

type Param = Box<dyn ToSql + Sync + Send>;

struct Builder {
    sql: String,
    params: Vec<Param>,
}

impl Builder {
    fn bind(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref() as _).collect()
    }
}

fn where_clause(b: &mut Builder, res_type: &str, q: &Query) {
    let t = b.bind(Box::new(res_type.to_owned()));
    b.sql
        .push_str(&format!(" WHERE r.res_type = {t} AND NOT r.deleted"));
    for clause in &q.clauses {
        let cond = match clause {
            Clause::Id(ids) => {
                let p = b.bind(Box::new(ids.clone()));
                format!("r.id = ANY({p})")
            }
            Clause::LastUpdated(values) => {
                let ors: Vec<String> = values.iter().map(|v| date_condition(b, v)).collect();
                format!("({})", ors.join(" OR "))
            }
            Clause::Identifier(values) => {
                let ors: Vec<String> = values
                    .iter()
                    .map(|v| {
                        let mut parts = Vec::new();
                        match &v.system {
                            None => {}
                            Some(None) => parts.push("t.system IS NULL".to_owned()),
                            Some(Some(s)) => {
                                let p = b.bind(Box::new(s.clone()));
                                parts.push(format!("t.system = {p}"));
                            }
                        }
                        if let Some(code) = &v.code {
                            let p = b.bind(Box::new(code.clone()));
                            parts.push(format!("t.code = {p}"));
                        }
                        if parts.is_empty() {
                            "true".to_owned()
                        } else {
                            format!("({})", parts.join(" AND "))
                        }
                    })
                    .collect();
                format!(
                    "EXISTS (SELECT 1 FROM search_token t WHERE t.res_type = r.res_type AND t.id = r.id
                       AND t.param = 'identifier' AND ({}))",
                    ors.join(" OR ")
                )
            }
        };
        b.sql.push_str(" AND ");
        b.sql.push_str(&cond);
    }
}

/// `_lastUpdated` is an instant, so comparisons are against the range the search value spans.
fn date_condition(b: &mut Builder, v: &DateValue) -> String {
    // Bind only what the SQL uses: PostgreSQL cannot type a parameter it never sees.
    let c = "r.last_updated";
    match v.prefix {
        DatePrefix::Gt | DatePrefix::Sa => format!("{c} >= {}", b.bind(Box::new(v.end))),
        DatePrefix::Lt | DatePrefix::Eb => format!("{c} < {}", b.bind(Box::new(v.start))),
        DatePrefix::Ge => format!("{c} >= {}", b.bind(Box::new(v.start))),
        DatePrefix::Le => format!("{c} < {}", b.bind(Box::new(v.end))),
        DatePrefix::Eq | DatePrefix::Ne | DatePrefix::Ap => {
            let s = b.bind(Box::new(v.start));
            let e = b.bind(Box::new(v.end));
            match v.prefix {
                DatePrefix::Eq => format!("({c} >= {s} AND {c} < {e})"),
                DatePrefix::Ne => format!("({c} < {s} OR {c} >= {e})"),
                // Approximately: within the value's own span on either side.
                _ => format!("({c} >= {s} - ({e} - {s}) AND {c} < {e} + ({e} - {s}))"),
            }
        }
    }
}

/// Ids of current resources of `res_type` matching `q`, at most `limit` of them. Conditional
/// interactions ask for two, to tell one match from several.
pub async fn find_ids(
    client: &impl GenericClient,
    res_type: &str,
    q: &Query,
    limit: i64,
) -> Result<Vec<String>, tokio_postgres::Error> {
    let mut b = Builder {
        sql: "SELECT r.id FROM resources r".into(),
        params: Vec::new(),
    };
    where_clause(&mut b, res_type, q);
    let l = b.bind(Box::new(limit));
    b.sql.push_str(&format!(" ORDER BY r.id LIMIT {l}"));
    let rows = client.query(&b.sql, &b.refs()).await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

pub struct SearchPage {
    pub matches: Vec<StoredVersion>,
    /// Where the next page starts (resources are ordered by id), if there is one.
    pub next_after: Option<String>,
    pub total: i64,
}

/// One page of matching current resources, ordered by id, starting after `after` (a keyset
/// cursor, so pages do not shift while others write).
pub async fn search(
    client: &impl GenericClient,
    res_type: &str,
    q: &Query,
    count: u32,
    after: Option<&str>,
) -> Result<SearchPage, tokio_postgres::Error> {
    let mut b = Builder {
        sql: "SELECT count(*) FROM resources r".into(),
        params: Vec::new(),
    };
    where_clause(&mut b, res_type, q);
    let total: i64 = client.query_one(&b.sql, &b.refs()).await?.get(0);

    let mut b = Builder {
        sql: "SELECT r.id, v.version_id, v.last_updated, v.method, v.body
                FROM resources r
                JOIN resource_versions v
                  ON v.res_type = r.res_type AND v.id = r.id AND v.version_id = r.version_id"
            .into(),
        params: Vec::new(),
    };
    where_clause(&mut b, res_type, q);
    if let Some(after) = after {
        let p = b.bind(Box::new(after.to_owned()));
        b.sql.push_str(&format!(" AND r.id > {p}"));
    }
    let l = b.bind(Box::new(i64::from(count) + 1));
    b.sql.push_str(&format!(" ORDER BY r.id LIMIT {l}"));
    let rows = client.query(&b.sql, &b.refs()).await?;
    let more = rows.len() > count as usize;
    let matches: Vec<StoredVersion> = rows
        .iter()
        .take(count as usize)
        .map(|r| StoredVersion {
            res_type: res_type.to_owned(),
            id: r.get(0),
            version_id: r.get(1),
            last_updated: r.get(2),
            method: Method::parse(r.get(3)),
            body: r.get(4),
        })
        .collect();
    let next_after = if more {
        matches.last().map(|m| m.id.clone())
    } else {
        None
    };
    Ok(SearchPage {
        matches,
        next_after,
        total,
    })
}
