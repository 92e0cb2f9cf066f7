//! Who may call what. Every route of the service is listed here with the data action it needs
//! (Azure's data actions); a route missing from the list is refused to everyone, so nothing
//! becomes reachable by being added to the router alone.

use axum::http::Method;
use hds_auth::DataAction;

use DataAction::*;

/// (method, route as written in the router, action). HEAD is answered as GET.
pub const ENDPOINTS: &[(&str, &str, DataAction)] = &[
    ("GET", "/", Read),
    // A batch or transaction: each entry is then judged as the request it stands for.
    ("POST", "/", Read),
    ("POST", "/_search", Read),
    ("GET", "/_history", Read),
    ("GET", "/{type}", Read),
    ("POST", "/{type}", Write),
    ("PUT", "/{type}", Write),
    ("PATCH", "/{type}", Write),
    ("DELETE", "/{type}", Delete),
    ("POST", "/{type}/_search", Read),
    ("GET", "/{type}/_history", Read),
    ("GET", "/{type}/{id}", Read),
    ("PUT", "/{type}/{id}", Write),
    ("PATCH", "/{type}/{id}", Write),
    ("DELETE", "/{type}/{id}", Delete),
    ("GET", "/{type}/{id}/_history", Read),
    ("GET", "/{type}/{id}/_history/{vid}", Read),
    ("GET", "/$export", Export),
    ("POST", "/$export", Export),
    ("GET", "/{type}/$export", Export),
    ("POST", "/{type}/$export", Export),
    ("GET", "/{type}/{id}/$export", Export),
    ("POST", "/{type}/{id}/$export", Export),
    ("DELETE", "/{type}/{id}/$purge-history", HardDelete),
    ("GET", "/{type}/{id}/$everything", Read),
    ("POST", "/{type}/{id}/$everything", Read),
    ("POST", "/{type}/$validate", ResourceValidate),
    ("GET", "/{type}/{id}/$validate", ResourceValidate),
    ("POST", "/{type}/{id}/$validate", ResourceValidate),
    ("GET", "/_operations/export/{id}", Export),
    ("DELETE", "/_operations/export/{id}", Export),
    ("GET", "/_operations/export/{id}/{file}", Export),
    ("POST", "/$import", Import),
    // `_hardDelete` and `_purgeHistory` also need hardDelete, checked by the handler.
    ("DELETE", "/$bulk-delete", Delete),
    ("DELETE", "/{type}/$bulk-delete", Delete),
    ("GET", "/_operations/bulk-delete/{id}", Delete),
    ("DELETE", "/_operations/bulk-delete/{id}", Delete),
    ("GET", "/_operations/import/{id}", Import),
    ("DELETE", "/_operations/import/{id}", Import),
    ("GET", "/_operations/import/{id}/errors/{n}", Import),
    ("POST", "/$reindex", Reindex),
    ("POST", "/{type}/$reindex", Reindex),
    ("GET", "/_operations/reindex/{id}", Reindex),
    ("DELETE", "/_operations/reindex/{id}", Reindex),
    ("GET", "/{comp}/{id}/{type}", Read),
    ("POST", "/{comp}/{id}/{type}/_search", Read),
];

/// The action a request needs: `route` is the matched route below the service's mount point,
/// `path` the request's path there (its first segment is the resource type on type routes).
/// Writing SearchParameter resources changes what the server indexes, so it needs Azure's
/// `searchParameter` action rather than plain `write`.
pub fn required_action(method: &Method, route: &str, path: &str) -> Option<DataAction> {
    let m = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    let action = ENDPOINTS
        .iter()
        .find(|(em, er, _)| *em == m && *er == route)
        .map(|(_, _, a)| *a)?;
    let on_search_parameters = route.starts_with("/{type}")
        && path.trim_start_matches('/').split('/').next() == Some("SearchParameter");
    Some(match action {
        Write | Delete if on_search_parameters => SearchParameter,
        a => a,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_method_route_and_type() {
        let a = |m: Method, r: &str, p: &str| required_action(&m, r, p);
        assert_eq!(a(Method::GET, "/{type}/{id}", "/Patient/1"), Some(Read));
        assert_eq!(a(Method::HEAD, "/{type}/{id}", "/Patient/1"), Some(Read));
        assert_eq!(a(Method::PUT, "/{type}/{id}", "/Patient/1"), Some(Write));
        assert_eq!(
            a(Method::PUT, "/{type}/{id}", "/SearchParameter/1"),
            Some(SearchParameter)
        );
        assert_eq!(
            a(Method::GET, "/{type}/{id}", "/SearchParameter/1"),
            Some(Read)
        );
        assert_eq!(a(Method::POST, "/$reindex", "/$reindex"), Some(Reindex));
        assert_eq!(a(Method::OPTIONS, "/{type}", "/Patient"), None);
        assert_eq!(a(Method::GET, "/not-a-route", "/x"), None);
    }
}
