//! FHIR search over every R4 SearchParameter.
//!
//! - [`registry`]: the parameters and compartments, per resource type, expressions parsed once;
//! - [`index`]: a resource in, the index rows the store writes beside it (FHIRPath via
//!   `hds-fhirpath`);
//! - [`query`] and [`result`]: the query string in, a typed [`Query`];
//! - [`sql`]: a [`Filter`] in, a condition on the store's tables;
//! - `page`: the SQL of one page, from the rows that drive it;
//! - [`exec`]: pages of matches and totals out of the store;
//! - [`include`]: the resources `_include` and `_revinclude` add to a page.

pub mod custom;
pub mod date;
pub mod exec;
pub mod fulltext;
pub mod hierarchy;
pub mod include;
pub mod index;
pub mod normalize;
mod page;
pub mod query;
pub mod registry;
pub mod reindex;
pub mod result;
mod sql;
pub mod ucum;

pub use custom::SearchParams;
pub use exec::{
    Cursor, ExecError, Scope, SearchPage, count_matches, explain, find_ids, find_ids_after,
    matching_among, search, search_including,
};
pub use include::{includes, includes_from};
pub use index::{extract, extract_with};
pub use query::{
    Clause, DatePrefix, Filter, Prefix, Query, ReferenceValue, SearchError, TokenValue, parse,
    parse_system, parse_with, split_types,
};
pub use registry::{CustomParam, ParamType, Registry, SearchParam, custom_param, r4};
pub use result::{Include, ResultParams, SortKey, Summary, Total};
