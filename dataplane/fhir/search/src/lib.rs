//! FHIR search, as far as the REST core needs it: `_id`, `identifier` and `_lastUpdated`, the
//! parameters that conditional create, update, delete and patch match on. The search issue widens
//! the same three pieces to every SearchParameter:
//!
//! - [`index`]: a resource in, the index rows the store writes beside it;
//! - [`query`]: the query string in, a typed [`Query`];
//! - [`sql`]: a [`Query`] in, matching ids or resources out of the store's tables.

pub mod date;
pub mod index;
pub mod query;
pub mod sql;

pub use index::extract;
pub use query::{Clause, DatePrefix, Query, SearchError, TokenValue, parse};
pub use sql::{SearchPage, find_ids, search};
