//! The values of a resource that can link to another resource by URL, other than
//! `Reference.reference`: R4 http.html has a transaction rewrite the links to its entries
//! "found in ... elements of type uri, url, oid, uuid, and <a href="" & <img src="" in the
//! narrative". Which values those are is known only from the element definitions: an
//! `Identifier.value` (a string) that happens to hold a fullUrl is not a link.

use serde_json::{Map, Value};

use crate::defs::{Definitions, TypeRef};
use crate::primitives::PrimitiveKind;

/// What kind of linking value [`Definitions::for_each_link`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkKind {
    /// A value of type uri, url, oid or uuid: the whole value is the link.
    Uri,
    /// XHTML (the narrative): links are in its `href` and `src` attributes.
    Xhtml,
}

impl Definitions {
    /// Calls `f` with every uri, url, oid, uuid and xhtml value of `resource`, its contained
    /// resources and extensions included, to be rewritten in place. Elements the definitions
    /// do not know are left alone.
    pub fn for_each_link(&self, resource: &mut Value, f: &mut impl FnMut(LinkKind, &mut String)) {
        let Some(obj) = resource.as_object_mut() else {
            return;
        };
        let Some(rt) = obj.get("resourceType").and_then(Value::as_str) else {
            return;
        };
        let Some(def) = self.resources.get(rt) else {
            return;
        };
        self.links_in(obj, def.complex, f);
    }

    fn links_in(
        &self,
        obj: &mut Map<String, Value>,
        complex: usize,
        f: &mut impl FnMut(LinkKind, &mut String),
    ) {
        let complex = &self.complexes[complex];
        for (key, val) in obj.iter_mut() {
            let Some(&(e, form)) = complex.keys.get(key.as_str()) else {
                continue;
            };
            match complex.elements[e].forms[form].ty {
                TypeRef::Primitive(p) => {
                    let kind = match self.primitives[p].kind {
                        PrimitiveKind::Uri
                        | PrimitiveKind::Url
                        | PrimitiveKind::Oid
                        | PrimitiveKind::Uuid => LinkKind::Uri,
                        PrimitiveKind::Xhtml => LinkKind::Xhtml,
                        _ => continue,
                    };
                    each_item(val, |item| {
                        if let Value::String(s) = item {
                            f(kind, s);
                        }
                    });
                }
                TypeRef::Complex(c) => each_item(val, |item| {
                    if let Value::Object(o) = item {
                        self.links_in(o, c, f);
                    }
                }),
                TypeRef::Resource => each_item(val, |item| self.for_each_link(item, f)),
            }
        }
    }
}

/// Each value of an element: the items of an array, or the value itself. (This walk runs on
/// every resource of a transaction, so it allocates nothing.)
fn each_item(val: &mut Value, mut g: impl FnMut(&mut Value)) {
    match val {
        Value::Array(items) => items.iter_mut().for_each(g),
        v => g(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn links_are_the_uri_typed_values_and_the_narrative() {
        let mut r = json!({"resourceType": "DocumentReference", "status": "current",
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": "urn:uuid:not-a-link"}],
            "extension": [{"url": "http://example.org/ext", "valueUri": "urn:uuid:e"}],
            "content": [{"attachment": {"url": "urn:uuid:b", "title": "urn:uuid:not-a-link"}}],
            "contained": [{"resourceType": "Binary", "contentType": "text/plain",
                "meta": {"source": "urn:uuid:m"}}],
            "subject": {"reference": "urn:uuid:not-a-link"}});
        let mut seen = Vec::new();
        crate::r4().for_each_link(&mut r, &mut |kind, s| {
            seen.push((kind, s.clone()));
            s.push('!');
        });
        seen.sort_by(|a, b| a.1.cmp(&b.1));
        let uris: Vec<&str> = seen
            .iter()
            .filter(|(k, _)| *k == LinkKind::Uri)
            .map(|(_, s)| s.as_str())
            .collect();
        assert_eq!(
            uris,
            [
                "http://example.org/ext",
                "urn:ietf:rfc:3986",
                "urn:uuid:b",
                "urn:uuid:e",
                "urn:uuid:m"
            ]
        );
        assert!(seen.iter().any(|(k, _)| *k == LinkKind::Xhtml));
        assert_eq!(r["content"][0]["attachment"]["url"], "urn:uuid:b!");
        assert_eq!(r["identifier"][0]["value"], "urn:uuid:not-a-link");
    }
}
