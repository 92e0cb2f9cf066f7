//! `/extendedquerytags` (Azure's shape): add tags (an asynchronous reindex makes them
//! searchable, followed at `/operations/{id}`), list, read, update (QueryStatus) and delete them,
//! and list the instances a reindex could not index (`/extendedquerytags/{tag}/errors`).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hds_dicom_index::extended::{ExtendedTag, SUPPORTED_VRS, TagError};
use hds_dicom_index::qido::{dictionary_vr, is_standard_searchable, tag_of};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{AppState, DicomError};

/// Azure's "Extended Query Tag for Adding". Its server reads member names case-insensitively,
/// so clients written against it send `Path`/`VR` as well as `path`/`vr`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct NewTag {
    #[serde(alias = "Path")]
    path: String,
    #[serde(default, alias = "VR", alias = "Vr")]
    vr: Option<String>,
    #[serde(default, alias = "PrivateCreator")]
    private_creator: Option<String>,
    #[serde(alias = "Level")]
    level: String,
}

pub(crate) async fn add(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, DicomError> {
    let tags: Vec<NewTag> = serde_json::from_slice(&body).map_err(|e| {
        DicomError::BadRequest(format!(
            "the body is a JSON array of {{\"path\", \"vr\", \"privateCreator\", \"level\"}}: {e}"
        ))
    })?;
    if tags.is_empty() {
        return Err(DicomError::BadRequest(
            "no extended query tag was given".into(),
        ));
    }
    let mut checked: Vec<ExtendedTag> = Vec::new();
    for t in &tags {
        let c = check(t)?;
        if checked.iter().any(|x| x.tag == c.tag) {
            return Err(DicomError::BadRequest(format!("{} is given twice", t.path)));
        }
        checked.push(c);
    }
    let id = s
        .index
        .add_extended_tags(&checked)
        .await
        .map_err(|e| match e {
            TagError::Exists(t) => {
                DicomError::Conflict(format!("the extended query tag {t} exists already"))
            }
            TagError::Index(e) => e.into(),
        })?;
    s.reindex.notify_one();
    let href = format!("{}/operations/{id}", s.base_url(&headers));
    Ok((StatusCode::ACCEPTED, Json(json!({"id": id, "href": href}))).into_response())
}

fn check(t: &NewTag) -> Result<ExtendedTag, DicomError> {
    let bad = |why: String| DicomError::BadRequest(format!("extended query tag {}: {why}", t.path));
    let tag = tag_of(&t.path).ok_or_else(|| {
        bad("not a tag (8 hex digits) or a keyword of the standard dictionary".into())
    })?;
    if is_standard_searchable(&tag) {
        return Err(bad("it is searchable already".into()));
    }
    let group = u16::from_str_radix(&tag[..4], 16).unwrap_or(0);
    let private = group % 2 == 1;
    if group == 0x0002 || group == 0x7FE0 {
        return Err(bad(
            "file meta and pixel data attributes cannot be queried".into()
        ));
    }
    let vr = match (&t.vr, dictionary_vr(&tag)) {
        (Some(given), Some(known)) if !given.eq_ignore_ascii_case(&known) && !private => {
            return Err(bad(format!("its VR is {known}, not {given}")));
        }
        (Some(given), _) => given.to_ascii_uppercase(),
        (None, Some(known)) if !private => known,
        (None, _) => return Err(bad("a VR is required for a private or unknown tag".into())),
    };
    if !SUPPORTED_VRS.contains(&vr.as_str()) {
        return Err(bad(format!(
            "VR {vr} cannot be queried; supported: {}",
            SUPPORTED_VRS.join(", ")
        )));
    }
    let creator = t.private_creator.as_deref().filter(|c| !c.is_empty());
    // Azure's ExtendedQueryTagEntryValidator refuses these: a creator means nothing on a
    // standard tag, nor on a Private Creator element, which is no private tag's value.
    let element = u16::from_str_radix(&tag[4..], 16).unwrap_or(0);
    match (private, creator) {
        (true, None) if element >= 0x1000 => {
            return Err(bad("a private tag needs its privateCreator".into()));
        }
        (false, Some(_)) => {
            return Err(bad("a standard tag has no privateCreator".into()));
        }
        (true, Some(_)) if element < 0x1000 => {
            return Err(bad(
                "a Private Creator element (gggg,0010-00FF) has no privateCreator".into(),
            ));
        }
        _ => {}
    }
    let level = match t.level.to_ascii_lowercase().as_str() {
        "study" => "Study",
        "series" => "Series",
        "instance" => "Instance",
        _ => return Err(bad("level is Study, Series or Instance".into())),
    };
    Ok(ExtendedTag {
        tag,
        vr,
        private_creator: creator.map(str::to_owned),
        level: level.into(),
        status: "Adding".into(),
        query_enabled: true,
        operation: None,
        errors: 0,
    })
}

fn describe(base: &str, t: &ExtendedTag) -> Value {
    let mut v = json!({
        "path": t.tag,
        "vr": t.vr,
        "level": t.level,
        "status": t.status,
        "queryStatus": if t.query_enabled { "Enabled" } else { "Disabled" },
    });
    if t.errors > 0 {
        v["errors"] = json!({
            "count": t.errors,
            "href": format!("{base}/extendedquerytags/{}/errors", t.tag),
        });
    }
    if let Some(p) = &t.private_creator {
        v["privateCreator"] = json!(p);
    }
    if let (Some(op), "Adding") = (&t.operation, t.status.as_str()) {
        v["operation"] = json!({"id": op, "href": format!("{base}/operations/{op}")});
    }
    v
}

pub(crate) async fn list(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let base = s.base_url(&headers);
    let tags = s.index.extended_tags().await?;
    Ok(Json(tags.iter().map(|t| describe(&base, t)).collect::<Vec<_>>()).into_response())
}

fn named(p: &HashMap<String, String>) -> Result<String, DicomError> {
    let path = p.get("tag").map_or("", String::as_str);
    tag_of(path).ok_or_else(|| DicomError::BadRequest(format!("'{path}' is not a tag or keyword")))
}

fn no_such(tag: &str) -> DicomError {
    DicomError::NotFound(format!("there is no extended query tag {tag}"))
}

pub(crate) async fn get(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let tag = named(&p)?;
    let t = s
        .index
        .extended_tag(&tag)
        .await?
        .ok_or_else(|| no_such(&tag))?;
    Ok(Json(describe(&s.base_url(&headers), &t)).into_response())
}

/// Azure's "Extended Query Tag for Updating": `{"queryStatus": "Enabled" | "Disabled"}`, names
/// in any case as ASP.NET binds them.
pub(crate) async fn update(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, DicomError> {
    let tag = named(&p)?;
    let bad = || {
        DicomError::BadRequest(
            "the body is a JSON object {\"queryStatus\": \"Enabled\" or \"Disabled\"}".into(),
        )
    };
    let fields: serde_json::Map<String, Value> =
        serde_json::from_slice(&body).map_err(|_| bad())?;
    let mut enabled = None;
    for (name, value) in &fields {
        if !name.eq_ignore_ascii_case("queryStatus") {
            return Err(DicomError::BadRequest(format!(
                "'{name}' cannot be updated; only queryStatus can"
            )));
        }
        enabled = match value.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("enabled") => Some(true),
            Some("disabled") => Some(false),
            _ => return Err(bad()),
        };
    }
    let enabled = enabled.ok_or_else(bad)?;
    let t = s
        .index
        .set_query_enabled(&tag, enabled)
        .await?
        .ok_or_else(|| no_such(&tag))?;
    Ok(Json(describe(&s.base_url(&headers), &t)).into_response())
}

/// Azure's "List Extended Query Tag Errors": the instances a reindex could not index on the
/// tag, `limit` (1–200, default 100) at a time from `offset`.
pub(crate) async fn errors(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
) -> Result<Response, DicomError> {
    let tag = named(&p)?;
    let (mut limit, mut offset) = (100, 0);
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        let n = value.parse::<i64>().ok();
        match name.as_ref() {
            "limit" => {
                limit = n.filter(|l| (1..=200).contains(l)).ok_or_else(|| {
                    DicomError::BadRequest(format!(
                        "limit must be an integer from 1 to 200, not '{value}'"
                    ))
                })?;
            }
            "offset" => {
                offset = n.filter(|o| *o >= 0).ok_or_else(|| {
                    DicomError::BadRequest(format!(
                        "offset must be a non-negative integer, not '{value}'"
                    ))
                })?;
            }
            other => {
                return Err(DicomError::BadRequest(format!(
                    "'{other}' is not a parameter of the errors list (limit, offset)"
                )));
            }
        }
    }
    if s.index.extended_tag(&tag).await?.is_none() {
        return Err(no_such(&tag));
    }
    let page = s.index.tag_errors(&tag, limit, offset).await?;
    let body: Vec<Value> = page
        .iter()
        .map(|e| {
            let mut v = json!({
                "studyInstanceUid": e.study_uid,
                "seriesInstanceUid": e.series_uid,
                "sopInstanceUid": e.sop_uid,
                "createdTime": e.created.to_rfc3339(),
                "errorMessage": e.message,
            });
            if e.partition != hds_dicom_index::DEFAULT_PARTITION {
                v["partitionName"] = json!(e.partition);
            }
            v
        })
        .collect();
    Ok(Json(body).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Response, DicomError> {
    let tag = named(&p)?;
    if s.index.delete_extended_tag(&tag).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(DicomError::NotFound(format!(
            "there is no extended query tag {tag}"
        )))
    }
}

/// Azure's operation status: 202 while it runs, 200 once it has ended.
pub(crate) async fn operation(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let id = p.get("id").map_or("", String::as_str);
    let op = s
        .index
        .operation(id)
        .await?
        .ok_or_else(|| DicomError::NotFound(format!("there is no operation {id}")))?;
    let base = s.base_url(&headers);
    let body = json!({
        "operationId": op.id,
        "type": op.kind,
        "createdTime": op.created.to_rfc3339(),
        "lastUpdatedTime": op.updated.to_rfc3339(),
        "status": op.status,
        "percentComplete": op.percent,
        "resources": op.tags.iter().map(|t| format!("{base}/extendedquerytags/{t}")).collect::<Vec<_>>(),
        "errors": op.error.into_iter().collect::<Vec<_>>(),
    });
    let status = match op.status.as_str() {
        "notStarted" | "running" => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(body)).into_response())
}

/// Runs reindex operations as they are added (and any left by a restart).
pub(crate) async fn reindex_worker(s: AppState) {
    loop {
        match s.index.reindex_pending().await {
            Ok(n) if n > 0 => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reindexing extended query tags failed; retrying"),
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(1), s.reindex.notified()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_tags_are_read_in_either_case_as_azure_reads_them() {
        for body in [
            r#"{"path": "00101010", "vr": "AS", "level": "Study"}"#,
            r#"{"Path": "00101010", "VR": "AS", "Level": "Study"}"#,
        ] {
            let t: NewTag = serde_json::from_str(body).unwrap();
            assert_eq!((t.path.as_str(), t.vr.as_deref()), ("00101010", Some("AS")));
        }
        assert!(
            serde_json::from_str::<NewTag>(r#"{"path": "x", "level": "Study", "x": 1}"#).is_err()
        );
    }
}
