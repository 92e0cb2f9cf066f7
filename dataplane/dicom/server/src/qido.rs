//! QIDO-RS handlers: `/studies`, `/series`, `/instances` at every path level. Matching is the
//! index's ([`hds_dicom_index::qido`]); here the answer is assembled from the stored
//! level attributes, the computed ones (counts, ModalitiesInStudy, RetrieveURL) and what
//! `includefield` asks for.

use std::collections::HashMap;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hds_dicom_index::qido::{
    IncludeField, Level, MODALITIES_IN_STUDY, QidoMatch, QidoQuery, SERIES_RELATED_INSTANCES,
    STUDY_RELATED_INSTANCES, STUDY_RELATED_SERIES, Scope,
};
use serde_json::{Map, Value, json};

use crate::{AppState, DicomError, media};

/// Azure's header naming the extended query tags matched on whose reindex met errors, so a
/// caller knows the answer may miss instances.
pub(crate) const ERRONEOUS_ATTRIBUTES: &str = "erroneous-dicom-attributes";

pub(crate) async fn studies(
    s: State<AppState>,
    p: Path<HashMap<String, String>>,
    q: RawQuery,
    h: HeaderMap,
) -> Result<Response, DicomError> {
    search(s, p, q, h, Level::Study).await
}

pub(crate) async fn series(
    s: State<AppState>,
    p: Path<HashMap<String, String>>,
    q: RawQuery,
    h: HeaderMap,
) -> Result<Response, DicomError> {
    search(s, p, q, h, Level::Series).await
}

pub(crate) async fn instances(
    s: State<AppState>,
    p: Path<HashMap<String, String>>,
    q: RawQuery,
    h: HeaderMap,
) -> Result<Response, DicomError> {
    search(s, p, q, h, Level::Instance).await
}

async fn search(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    level: Level,
) -> Result<Response, DicomError> {
    media::wants_json(&headers)?;
    let params: Vec<(String, String)> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let extended = s.index.extended_tags().await?;
    let q = QidoQuery::parse_with(level, &params, &extended)
        .map_err(|e| DicomError::BadRequest(e.to_string()))?;
    let partition = crate::partition_of(&p)?;
    crate::check_path_uids(&p)?;
    let scope = Scope {
        partition,
        study: p.get("study").map(String::as_str),
        series: p.get("series").map(String::as_str),
    };
    let matches = s.index.qido(scope, &q).await?;
    let mut warning = q.warnings.join(" ");
    let base = s.base_url(&headers);
    let root = crate::partition_root(&base, partition);
    let mut out = Vec::with_capacity(matches.len());
    for m in &matches {
        match answer(&root, &q, m) {
            Ok(v) => out.push(v),
            Err(e) => {
                tracing::error!(error = %e, study = %m.study_uid, "stored QIDO attributes are not JSON");
                return Err(DicomError::Internal(format!(
                    "the stored attributes of study {} could not be read",
                    m.study_uid
                )));
            }
        }
    }
    let mut r = if out.is_empty() {
        // Azure answers an empty match with 204.
        StatusCode::NO_CONTENT.into_response()
    } else {
        let mut r = Value::Array(out).to_string().into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/dicom+json"),
        );
        r
    };
    if !q.erroneous.is_empty()
        && let Ok(v) = HeaderValue::from_str(&q.erroneous.join(","))
    {
        r.headers_mut().insert(ERRONEOUS_ATTRIBUTES, v);
    }
    if !warning.is_empty() {
        warning = format!(
            "299 {}: \"{}\"",
            s.config.name,
            warning.replace(['"', '\\'], "'")
        );
        if let Ok(v) = HeaderValue::from_str(&warning) {
            r.headers_mut().insert(header::WARNING, v);
        }
    }
    Ok(r)
}

fn answer(root: &str, q: &QidoQuery, m: &QidoMatch) -> Result<Value, serde_json::Error> {
    let mut obj = Map::new();
    for text in &m.objects {
        if let Value::Object(members) = serde_json::from_str(text)? {
            obj.extend(members);
        }
    }
    obj.insert(
        "0020000D".into(),
        json!({"vr": "UI", "Value": [m.study_uid]}),
    );
    if let Some(se) = &m.series_uid {
        obj.insert("0020000E".into(), json!({"vr": "UI", "Value": [se]}));
    }
    if let Some(i) = &m.sop_uid {
        obj.insert("00080018".into(), json!({"vr": "UI", "Value": [i]}));
    }
    // Everything stored is on line (PS3.4 C.4.23.1.1 InstanceAvailability).
    obj.insert("00080056".into(), json!({"vr": "CS", "Value": ["ONLINE"]}));
    if let Some(st) = &m.study {
        obj.insert(
            MODALITIES_IN_STUDY.into(),
            if st.modalities.is_empty() {
                json!({"vr": "CS"})
            } else {
                json!({"vr": "CS", "Value": st.modalities})
            },
        );
        obj.insert(
            STUDY_RELATED_SERIES.into(),
            json!({"vr": "IS", "Value": [st.series]}),
        );
        obj.insert(
            STUDY_RELATED_INSTANCES.into(),
            json!({"vr": "IS", "Value": [st.instances]}),
        );
    }
    if let Some(n) = m.series_instances {
        obj.insert(
            SERIES_RELATED_INSTANCES.into(),
            json!({"vr": "IS", "Value": [n]}),
        );
    }
    let mut url = format!("{root}/studies/{}", m.study_uid);
    if let Some(se) = &m.series_uid {
        url.push_str("/series/");
        url.push_str(se);
    }
    if let Some(i) = &m.sop_uid {
        url.push_str("/instances/");
        url.push_str(i);
    }
    obj.insert("00081190".into(), json!({"vr": "UR", "Value": [&url]}));
    if let Some(meta) = &m.metadata
        && let Value::Object(all) = serde_json::from_str(meta)?
    {
        match &q.include {
            IncludeField::All => {
                for (k, v) in all {
                    if !is_bulk(&v) {
                        obj.entry(k).or_insert(v);
                    }
                }
            }
            IncludeField::Tags(tags) => {
                for t in tags {
                    let Some(v) = all.get(t) else { continue };
                    // A binary value named by the caller is linked, never inlined: the answer
                    // stays small whatever its size, and the link is absolute, built like
                    // RetrieveURL, so it resolves from any request URL (versioned, partitioned).
                    let v = if is_bulk(v) {
                        json!({"vr": v.get("vr"), "BulkDataURI": format!("{url}/bulkdata/{t}")})
                    } else {
                        v.clone()
                    };
                    obj.entry(t.clone()).or_insert(v);
                    // PS3.18 10.6.3.3: a private element comes with its Private Creator, without
                    // which its value cannot be read.
                    if let Some(creator) = private_creator_of(t)
                        && let Some(c) = all.get(&creator)
                    {
                        obj.entry(creator).or_insert_with(|| c.clone());
                    }
                }
            }
            IncludeField::Default => {}
        }
    }
    if let IncludeField::Tags(tags) = &q.include
        && !m.parents.is_empty()
    {
        let mut parents = Vec::with_capacity(m.parents.len());
        for text in &m.parents {
            if let Value::Object(members) = serde_json::from_str(text)? {
                parents.push(members);
            }
        }
        for t in tags {
            if let Some(v) = parents.iter().find_map(|p| p.get(t)) {
                obj.entry(t.clone()).or_insert_with(|| v.clone());
            }
        }
    }
    // PS3.18 Table 6.7.1-2: these are always returned, empty when the instance has no value.
    let required: &[(&str, &str)] = match q.level {
        Level::Study => STUDY_REQUIRED,
        Level::Series => SERIES_REQUIRED,
        Level::Instance => INSTANCE_REQUIRED,
    };
    for (tag, vr) in required {
        obj.entry(*tag).or_insert_with(|| json!({"vr": vr}));
    }
    // Tag order, as a dataset lists them.
    obj.sort_keys();
    Ok(Value::Object(obj))
}

const STUDY_REQUIRED: &[(&str, &str)] = &[
    ("00080020", "DA"),
    ("00080030", "TM"),
    ("00080050", "SH"),
    ("00080090", "PN"),
    ("00100010", "PN"),
    ("00100020", "LO"),
    ("00100030", "DA"),
    ("00100040", "CS"),
    ("00200010", "SH"),
];
const SERIES_REQUIRED: &[(&str, &str)] = &[
    ("00080060", "CS"),
    ("0008103E", "LO"),
    ("00200011", "IS"),
    ("00400244", "DA"),
    ("00400245", "TM"),
];
const INSTANCE_REQUIRED: &[(&str, &str)] = &[
    ("00080016", "UI"),
    ("00200013", "IS"),
    ("00280008", "IS"),
    ("00280010", "US"),
    ("00280011", "US"),
    ("00280100", "US"),
];

fn is_bulk(v: &Value) -> bool {
    v.get("BulkDataURI").is_some() || v.get("InlineBinary").is_some()
}

/// The tag of the Private Creator element reserving a private data element's block
/// (PS3.5 7.8.1: (gggg,xxee) is reserved by (gggg,00xx)); None for other tags.
fn private_creator_of(tag: &str) -> Option<String> {
    let group = u16::from_str_radix(tag.get(..4)?, 16).ok()?;
    let element = u16::from_str_radix(tag.get(4..8)?, 16).ok()?;
    (group % 2 == 1 && group > 8 && element >= 0x1000)
        .then(|| format!("{group:04X}00{:02X}", element >> 8))
}

#[cfg(test)]
mod tests {
    use super::private_creator_of;

    #[test]
    fn private_elements_name_their_creator() {
        assert_eq!(private_creator_of("00191002").as_deref(), Some("00190010"));
        assert_eq!(private_creator_of("0043FF28").as_deref(), Some("004300FF"));
        assert_eq!(private_creator_of("00190010"), None, "a creator itself");
        assert_eq!(private_creator_of("00100010"), None, "a standard tag");
    }
}
