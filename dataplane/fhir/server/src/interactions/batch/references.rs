//! References between the entries of a transaction: each entry's fullUrl stands for the
//! resource it writes, and a reference to that fullUrl (a `urn:uuid:`, or the URL a client gave
//! a resource it creates) is rewritten to the `Type/id` the server chose. A conditional
//! reference (`Patient?identifier=...`) is resolved to its one match. Links to fullUrls in
//! values of type uri, url, oid and uuid and in the narrative are rewritten too.

use std::collections::HashMap;

use hds_fhir_model::LinkKind;
use serde_json::Value;

use crate::error::FhirError;

/// fullUrl → `Type/id`, for the entries of one transaction.
#[derive(Default)]
pub struct Identities {
    map: HashMap<String, String>,
    /// `Type/id` → the entry's version: the one it will have once written (when known before
    /// it is: a create's is 1), and the one the client gave it in meta.versionId.
    versions: HashMap<String, EntryVersion>,
}

/// See [`Identities::versions`].
#[derive(Default, Clone)]
pub struct EntryVersion {
    pub written: Option<String>,
    pub declared: Option<String>,
}

impl Identities {
    /// Records that `full_url` stands for `rt/id`. A fullUrl given to two entries is an error:
    /// references to it would be ambiguous.
    pub fn insert(
        &mut self,
        full_url: &str,
        rt: &str,
        id: &str,
        version: EntryVersion,
    ) -> Result<(), String> {
        let local = format!("{rt}/{id}");
        self.versions.insert(local.clone(), version);
        if self.map.insert(full_url.to_owned(), local).is_some() {
            return Err(format!(
                "the fullUrl '{full_url}' is given to more than one entry"
            ));
        }
        // A client may give a created resource an absolute URL as fullUrl and refer to it by
        // its relative form, which is resolved against that fullUrl's base (R4 2.36.4.1).
        if !full_url.starts_with("urn:")
            && let Some(rel) = relative_part(full_url)
            && rel != format!("{rt}/{id}")
        {
            self.map.entry(rel).or_insert_with(|| format!("{rt}/{id}"));
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, reference: &str) -> Option<&str> {
        self.map.get(reference).map(String::as_str)
    }

    /// A version-specific reference to an entry (`[fullUrl]/_history/[vid]`) as the version
    /// that entry writes (R4 bundle.html, "Resolving references in Bundles": the version is
    /// removed before matching the fullUrl, then matched against meta.versionId). None when
    /// it names no entry; an error when it names one whose version cannot be that.
    pub fn get_version(&self, reference: &str) -> Result<Option<String>, String> {
        let Some((url, vid)) = reference.rsplit_once("/_history/") else {
            return Ok(None);
        };
        // A URN has no path to put a version in: `urn:uuid:x/_history/1` is no reference.
        if url.starts_with("urn:") || vid.is_empty() || vid.contains('/') {
            return Ok(None);
        }
        let Some(local) = self.get(url) else {
            return Ok(None);
        };
        let version = self.versions.get(local).cloned().unwrap_or_default();
        if let Some(declared) = version.declared.filter(|d| d != vid) {
            return Err(format!(
                "the reference '{reference}' names version {vid} of an entry whose meta.versionId is {declared}"
            ));
        }
        match version.written {
            Some(written) => Ok(Some(format!("{local}/_history/{written}"))),
            // An update under the fullUrl's own id: the reference names a version of a
            // resource that keeps its URL, so it stands as the client wrote it.
            None if relative_part(url).as_deref() == Some(local) => Ok(None),
            None => Err(format!(
                "the reference '{reference}' names a version of an entry that updates a resource, whose new version is known only once it is written: refer to it without /_history/"
            )),
        }
    }

    /// Rewrites a link to a fullUrl found in a uri-typed value or in the narrative.
    pub fn rewrite_link(&self, kind: LinkKind, value: &mut String) {
        match kind {
            LinkKind::Uri => {
                if let Some(local) = self.get(value) {
                    *value = local.to_owned();
                }
            }
            LinkKind::Xhtml => {
                if let Some(rewritten) = rewrite_xhtml_links(value, |url| self.get(url)) {
                    *value = rewritten;
                }
            }
        }
    }
}

/// The XHTML with the `href` and `src` attribute values `lookup` knows replaced, or None when
/// there are none.
fn rewrite_xhtml_links<'a>(
    xhtml: &str,
    lookup: impl Fn(&str) -> Option<&'a str>,
) -> Option<String> {
    // Most narratives link nowhere: they are not copied to find that out.
    if !xhtml.contains("href=") && !xhtml.contains("src=") {
        return None;
    }
    let mut out = String::with_capacity(xhtml.len());
    let mut rest = xhtml;
    let mut changed = false;
    while let Some(at) = rest.find(['h', 's']) {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let attribute = ["href=", "src="].into_iter().find(|a| {
            from.starts_with(a)
                && out
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_ascii_whitespace())
        });
        let Some(attribute) = attribute else {
            out.push_str(&from[..1]);
            rest = &from[1..];
            continue;
        };
        let value_at = attribute.len();
        let quote = from[value_at..]
            .chars()
            .next()
            .filter(|q| *q == '"' || *q == '\'');
        let Some(quote) = quote else {
            out.push_str(attribute);
            rest = &from[value_at..];
            continue;
        };
        let value = &from[value_at + 1..];
        let Some(end) = value.find(quote) else {
            out.push_str(from);
            rest = "";
            break;
        };
        out.push_str(attribute);
        out.push(quote);
        match lookup(&value[..end]) {
            Some(local) => {
                out.push_str(local);
                changed = true;
            }
            None => out.push_str(&value[..end]),
        }
        out.push(quote);
        rest = &value[end + 1..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// `Type/id` at the end of an absolute URL.
fn relative_part(url: &str) -> Option<String> {
    let mut seg = url.trim_end_matches('/').rsplit('/');
    let id = seg.next()?;
    let rt = seg.next()?;
    (rt.chars().next()?.is_ascii_uppercase()).then(|| format!("{rt}/{id}"))
}

/// Every `reference` string in a resource, to be rewritten in place.
pub fn for_each_reference(
    v: &mut Value,
    f: &mut impl FnMut(&mut String) -> Result<(), FhirError>,
) -> Result<(), FhirError> {
    match v {
        Value::Object(obj) => {
            for (k, child) in obj.iter_mut() {
                match child {
                    Value::String(s) if k == "reference" => f(s)?,
                    Value::Object(_) | Value::Array(_) => for_each_reference(child, f)?,
                    _ => {}
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                for_each_reference(item, f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// `Type?criteria`, the form of a conditional reference.
pub fn conditional_reference(reference: &str) -> Option<(&str, &str)> {
    let (rt, query) = reference.split_once('?')?;
    (!rt.is_empty() && !rt.contains('/') && rt.chars().all(|c| c.is_ascii_alphanumeric()))
        .then_some((rt, query))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_urls_map_to_what_the_server_assigned() {
        let mut ids = Identities::default();
        let v = EntryVersion::default;
        ids.insert("urn:uuid:a", "Patient", "p1", v()).unwrap();
        ids.insert(
            "http://other/fhir/Practitioner/x",
            "Practitioner",
            "d1",
            v(),
        )
        .unwrap();
        assert_eq!(ids.get("urn:uuid:a"), Some("Patient/p1"));
        assert_eq!(ids.get("Practitioner/x"), Some("Practitioner/d1"));
        assert!(ids.insert("urn:uuid:a", "Patient", "p2", v()).is_err());
    }

    #[test]
    fn version_specific_references_name_the_version_written() {
        let mut ids = Identities::default();
        let created = EntryVersion {
            written: Some("1".into()),
            declared: None,
        };
        ids.insert("http://x/fhir/Patient/a", "Patient", "p1", created)
            .unwrap();
        let updated = EntryVersion {
            written: None,
            declared: Some("4".into()),
        };
        ids.insert("http://x/fhir/Patient/b", "Patient", "p2", updated)
            .unwrap();
        ids.insert("urn:uuid:c", "Patient", "p3", EntryVersion::default())
            .unwrap();
        ids.insert(
            "http://x/fhir/Patient/same",
            "Patient",
            "same",
            EntryVersion::default(),
        )
        .unwrap();
        let got = |r: &str| ids.get_version(r);
        assert_eq!(
            got("http://x/fhir/Patient/a/_history/1"),
            Ok(Some("Patient/p1/_history/1".into()))
        );
        assert_eq!(
            got("Patient/a/_history/7"),
            Ok(Some("Patient/p1/_history/1".into()))
        );
        assert!(got("http://x/fhir/Patient/b/_history/3").is_err());
        assert!(got("http://x/fhir/Patient/b/_history/4").is_err());
        assert_eq!(got("urn:uuid:c/_history/1"), Ok(None));
        assert_eq!(got("http://x/fhir/Patient/same/_history/3"), Ok(None));
        assert_eq!(got("http://x/fhir/Patient/z/_history/1"), Ok(None));
        assert_eq!(got("Patient/a"), Ok(None));
    }

    #[test]
    fn narrative_links_are_rewritten() {
        let map: HashMap<&str, &str> = [
            ("urn:uuid:b", "Binary/1"),
            ("http://x/Patient/p", "Patient/2"),
        ]
        .into();
        let xhtml = r#"<div xmlns="http://www.w3.org/1999/xhtml"><a href="urn:uuid:b">see urn:uuid:b</a><img src='http://x/Patient/p'/><a href="urn:uuid:other">s</a><p class="href=">h</p></div>"#;
        let got = rewrite_xhtml_links(xhtml, |u| map.get(u).copied()).unwrap();
        assert_eq!(
            got,
            r#"<div xmlns="http://www.w3.org/1999/xhtml"><a href="Binary/1">see urn:uuid:b</a><img src='Patient/2'/><a href="urn:uuid:other">s</a><p class="href=">h</p></div>"#
        );
        assert_eq!(
            rewrite_xhtml_links("<div>no links</div>", |u| map.get(u).copied()),
            None
        );
    }

    #[test]
    fn every_reference_is_visited() {
        let mut r = json!({"resourceType": "Observation",
            "subject": {"reference": "urn:uuid:a"},
            "performer": [{"reference": "urn:uuid:b"}, {"display": "x"}],
            "contained": [{"resourceType": "Basic", "author": {"reference": "urn:uuid:c"}}],
            "note": [{"text": "reference"}]});
        let mut seen = Vec::new();
        for_each_reference(&mut r, &mut |s| {
            seen.push(s.clone());
            s.push('!');
            Ok(())
        })
        .unwrap();
        seen.sort();
        assert_eq!(seen, ["urn:uuid:a", "urn:uuid:b", "urn:uuid:c"]);
        assert_eq!(r["subject"]["reference"], "urn:uuid:a!");
    }

    #[test]
    fn conditional_references_are_recognised() {
        assert_eq!(
            conditional_reference("Patient?identifier=a|1"),
            Some(("Patient", "identifier=a|1"))
        );
        assert_eq!(conditional_reference("Patient/1"), None);
        assert_eq!(conditional_reference("http://x/Patient?a=b"), None);
    }
}
