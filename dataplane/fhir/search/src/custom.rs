//! The live registry of one FHIR service: R4's parameters plus the SearchParameter resources
//! stored in it, each ready or pending (see `migrations/0003_custom_search.sql` in the store).
//!
//! The registry is rebuilt from the database after every SearchParameter write and every
//! finished reindex, and swapped in whole; readers take an `Arc` snapshot, so a search or a
//! write sees one consistent set of parameters.

use std::sync::{Arc, RwLock};

use deadpool_postgres::GenericClient;

use crate::registry::{CustomParam, Registry, custom_param, r4};

pub struct SearchParams {
    current: RwLock<Arc<Registry>>,
}

impl Default for SearchParams {
    fn default() -> Self {
        Self {
            current: RwLock::new(Arc::new(r4().clone())),
        }
    }
}

impl SearchParams {
    /// The registry now in force.
    pub fn current(&self) -> Arc<Registry> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Rebuilds the registry from the stored SearchParameters and their readiness.
    pub async fn reload(&self, client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
        let customs = load_custom(client).await?;
        let next = Arc::new(r4().with_custom(&customs));
        *self
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = next;
        Ok(())
    }
}

/// Every usable stored SearchParameter, marked pending unless its current definition has been
/// reindexed. Unusable ones cannot be stored (writes validate them), so none are skipped here
/// but those an older server version accepted.
pub async fn load_custom(
    client: &impl GenericClient,
) -> Result<Vec<CustomParam>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT v.body, s.signature
               FROM resources r
               JOIN resource_versions v
                 ON v.res_type = r.res_type AND v.id = r.id AND v.version_id = r.version_id
               LEFT JOIN search_param_ready s ON s.url = (v.body::jsonb ->> 'url')
              WHERE r.res_type = 'SearchParameter' AND NOT r.deleted",
            &[],
        )
        .await?;
    let mut out = Vec::new();
    for row in rows {
        let body: Option<String> = row.get(0);
        let ready: Option<String> = row.get(1);
        let Some(Ok(sp)) = body.map(|b| serde_json::from_str::<serde_json::Value>(&b)) else {
            continue;
        };
        let Ok(Some(mut c)) = custom_param(r4(), &sp) else {
            continue;
        };
        c.pending = ready.as_deref() != Some(c.signature().as_str());
        out.push(c);
    }
    Ok(out)
}
