//! STOW-RS: `POST /studies[/{study}]` (and Azure's `PUT`, which replaces an instance stored
//! already). The body is read as a stream: each part is parsed and its file written while the
//! next part arrives, parts over `limits.spoolBytes` go through a temporary file, and the index
//! records every stored instance in one transaction at the end, so an aborted request (too
//! large, malformed) leaves nothing behind.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use hds_dicom_index::{DurableInstance, NewInstance, StoreOutcome, StoreReport};
use hds_dicom_model::{Instance, ParseOptions};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::media::parse_one;
use crate::spool::Spool;
use crate::{AppState, Blobs, DicomError};

/// Azure's failure reasons (PS3.18 Table 10.5.3-1 and Azure's own).
const PROCESSING_FAILURE: u16 = 272;
const STUDY_UID_MISMATCH: u16 = 43265;
const DUPLICATE: u16 = 45070;
/// Azure's warning for an instance stored with validation problems.
const VALIDATION_WARNINGS: u16 = 1;

/// Parts processed at once: enough to keep both parsing and blob writes busy.
const IN_FLIGHT: usize = 8;

pub(crate) async fn post(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DicomError> {
    store(s, p, headers, body, false).await
}

pub(crate) async fn put(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, DicomError> {
    store(s, p, headers, body, true).await
}

/// What became of one part before the index is written.
enum PartResult {
    Written {
        instance: Arc<Instance>,
        blob: String,
        size: i64,
    },
    Failed {
        sop_class: Option<String>,
        sop_uid: Option<String>,
        reason: u16,
        comment: String,
    },
}

enum Part {
    Memory(Bytes),
    Spooled(tempfile::TempPath, u64),
}

async fn store(
    s: AppState,
    p: HashMap<String, String>,
    headers: HeaderMap,
    body: Body,
    replace: bool,
) -> Result<Response, DicomError> {
    let partition = crate::partition_of(&p)?.to_owned();
    crate::check_path_uids(&p)?;
    // The answer is DICOM JSON; a client that can take nothing else hears so before it sends
    // its body (Azure: 406), not after everything is stored.
    crate::media::wants_json(&headers)?;
    let study = p.get("study").cloned();
    let limit = s.config.limits.max_stow_bytes;
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if content_length.is_some_and(|n| n > limit) {
        return Err(too_large(limit));
    }
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(parse_one)
        .ok_or_else(|| {
            DicomError::UnsupportedMediaType(
                "a STOW request is multipart/related; type=\"application/dicom\", or application/dicom".into(),
            )
        })?;
    let ctx = Arc::new(PartContext {
        state: s.clone(),
        partition: partition.clone(),
        study: study.clone(),
    });
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut tasks: Vec<JoinHandle<PartResult>> = Vec::new();
    let read = match (ct.essence.as_str(), ct.part_type.as_deref()) {
        ("multipart/related", None | Some("application/dicom")) => {
            let boundary = ct.boundary.clone().ok_or_else(|| {
                DicomError::BadRequest("the multipart/related Content-Type has no boundary".into())
            })?;
            read_multipart(&ctx, body, boundary, limit, &gate, &mut tasks).await
        }
        ("multipart/related", Some(other)) => {
            return Err(DicomError::UnsupportedMediaType(format!(
                "STOW parts of type {other} are not supported; send type=\"application/dicom\""
            )));
        }
        ("application/dicom", _) => read_single(&ctx, body, limit, &gate, &mut tasks).await,
        (other, _) => {
            return Err(DicomError::UnsupportedMediaType(format!(
                "a STOW request is multipart/related; type=\"application/dicom\", or application/dicom, not {other}"
            )));
        }
    };
    let mut results = Vec::with_capacity(tasks.len());
    for t in tasks {
        results.push(t.await.unwrap_or_else(|e| PartResult::Failed {
            sop_class: None,
            sop_uid: None,
            reason: PROCESSING_FAILURE,
            comment: format!("the part could not be processed: {e}"),
        }));
    }
    let written_blobs = || {
        results.iter().filter_map(|r| match r {
            PartResult::Written { blob, .. } => Some(blob.clone()),
            PartResult::Failed { .. } => None,
        })
    };
    if let Err(e) = read {
        s.blobs.remove(written_blobs().collect::<Vec<_>>()).await;
        return Err(e);
    }
    if results.is_empty() {
        return Err(DicomError::BadRequest(
            "the request holds no DICOM instance".into(),
        ));
    }
    let items: Vec<DurableInstance> = results
        .iter()
        .filter_map(|r| match r {
            PartResult::Written {
                instance,
                blob,
                size,
            } => Some(DurableInstance {
                instance: instance.clone(),
                blob: blob.clone(),
                size: *size,
            }),
            PartResult::Failed { .. } => None,
        })
        .collect();
    let report = if items.is_empty() {
        StoreReport {
            outcomes: Vec::new(),
            warnings: Vec::new(),
        }
    } else {
        // The files are synced before the index is written. Overlapping the sync with the
        // transaction's statements measured no faster (bench/dicom.sh at 5,000 instances: 472
        // against 508 instances/s at one per request), so the simpler order stays.
        let files_durable = s.blobs.make_durable().await.map_err(|e| e.to_string());
        let stored = if replace {
            let borrowed: Vec<NewInstance> = items.iter().map(DurableInstance::as_new).collect();
            s.index
                .store(&partition, &borrowed, true, files_durable)
                .await
        } else {
            // A POST is recorded with those that come at the same time (one transaction).
            s.index.store_posted(&partition, items, files_durable).await
        };
        match stored {
            Ok(r) => r,
            Err(e) => {
                if let hds_dicom_index::IndexError::FilesNotDurable(why) = &e {
                    tracing::error!(error = %why, "could not sync the instance files to disk");
                }
                let blobs: Vec<String> = written_blobs().collect();
                s.blobs.remove(blobs).await;
                return Err(e.into());
            }
        }
    };
    let mut to_remove = Vec::new();
    for (blob, outcome) in written_blobs().zip(&report.outcomes) {
        match outcome {
            StoreOutcome::Duplicate => to_remove.push(blob),
            StoreOutcome::Replaced { old_blob } => to_remove.push(old_blob.clone()),
            StoreOutcome::Stored => {}
        }
    }
    let base = s.base_url(&headers);
    let answer = answer(&base, &partition, study.as_deref(), &results, &report);
    s.blobs.remove(to_remove).await;
    Ok(answer)
}

fn too_large(limit: u64) -> DicomError {
    DicomError::PayloadTooLarge(format!(
        "the request is larger than this service's limit of {limit} bytes (limits.maxStowBytes); nothing was stored"
    ))
}

struct PartContext {
    state: AppState,
    partition: String,
    study: Option<String>,
}

async fn read_multipart(
    ctx: &Arc<PartContext>,
    body: Body,
    boundary: String,
    limit: u64,
    gate: &Arc<Semaphore>,
    tasks: &mut Vec<JoinHandle<PartResult>>,
) -> Result<(), DicomError> {
    let constraints =
        multer::Constraints::new().size_limit(multer::SizeLimit::new().whole_stream(limit));
    let mut mp =
        multer::Multipart::with_constraints(body.into_data_stream(), boundary, constraints);
    loop {
        let field = match mp.next_field().await {
            Ok(Some(f)) => f,
            Ok(None) => return Ok(()),
            Err(e) => return Err(multipart_error(e, limit)),
        };
        let part_type = field.content_type().map(|m| m.essence_str().to_owned());
        if let Some(t) = part_type.filter(|t| t != "application/dicom") {
            // Drain it; the part is refused, the others still count.
            let mut field = field;
            while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
                drop(chunk);
            }
            tasks.push(tokio::spawn(async move {
                PartResult::Failed {
                    sop_class: None,
                    sop_uid: None,
                    reason: PROCESSING_FAILURE,
                    comment: format!(
                        "a part of type {t} is not a DICOM instance (application/dicom)"
                    ),
                }
            }));
            continue;
        }
        let stream = field.map(|c| c.map_err(|e| multipart_error(e, limit)));
        let part = collect(
            stream,
            ctx.state.config.limits.spool_bytes,
            ctx.state.blobs.spool_dir(),
        )
        .await?;
        spawn_part(ctx, gate, tasks, part).await;
    }
}

async fn read_single(
    ctx: &Arc<PartContext>,
    body: Body,
    limit: u64,
    gate: &Arc<Semaphore>,
    tasks: &mut Vec<JoinHandle<PartResult>>,
) -> Result<(), DicomError> {
    let mut seen = 0u64;
    let stream = body.into_data_stream().map(move |c| {
        let c =
            c.map_err(|e| DicomError::BadRequest(format!("the request body broke off: {e}")))?;
        seen += c.len() as u64;
        if seen > limit {
            return Err(too_large(limit));
        }
        Ok(c)
    });
    let part = collect(
        stream,
        ctx.state.config.limits.spool_bytes,
        ctx.state.blobs.spool_dir(),
    )
    .await?;
    spawn_part(ctx, gate, tasks, part).await;
    Ok(())
}

fn multipart_error(e: multer::Error, limit: u64) -> DicomError {
    match e {
        multer::Error::StreamSizeExceeded { .. } | multer::Error::FieldSizeExceeded { .. } => {
            too_large(limit)
        }
        e => DicomError::BadRequest(format!("the multipart/related body is malformed: {e}")),
    }
}

/// Reads a part into memory, or into a file once it outgrows `spool` (`spool.rs`): in the
/// local store's spool directory when there is one (the file is then renamed into place), else
/// in the system's temporary directory.
async fn collect(
    stream: impl futures_util::Stream<Item = Result<Bytes, DicomError>> + Unpin,
    spool: u64,
    dir: Option<&std::path::Path>,
) -> Result<Part, DicomError> {
    let mut stream = with_preamble(stream).await?;
    // Chunks are held as they came (no copy) until the part is whole or outgrows memory.
    let mut held: Vec<Bytes> = Vec::new();
    let mut held_len = 0u64;
    let mut file: Option<Spool> = None;
    let io = |e: std::io::Error| DicomError::Internal(format!("cannot spool a large part: {e}"));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if let Some(f) = &mut file {
            f.push(chunk).await.map_err(io)?;
            continue;
        }
        held_len += chunk.len() as u64;
        held.push(chunk);
        if held_len > spool {
            let mut f = Spool::create(dir).map_err(io)?;
            for c in held.drain(..) {
                f.push(c).await.map_err(io)?;
            }
            file = Some(f);
        }
    }
    match file {
        Some(f) => {
            let (path, n) = f.finish().await.map_err(io)?;
            Ok(Part::Spooled(path, n))
        }
        None => Ok(Part::Memory(joined(held, held_len as usize))),
    }
}

/// The part's stream, with a zero preamble in front when it is a Part 10 file sent without one
/// (it starts with "DICM"): parsing accepts such a file, and what is stored, and served as
/// application/dicom, must be a PS3.10 file.
async fn with_preamble(
    mut stream: impl futures_util::Stream<Item = Result<Bytes, DicomError>> + Unpin,
) -> Result<impl futures_util::Stream<Item = Result<Bytes, DicomError>> + Unpin, DicomError> {
    static PREAMBLE: [u8; 128] = [0; 128];
    let mut first = Vec::new();
    let mut len = 0;
    while len < 132 {
        let Some(chunk) = stream.next().await else {
            break;
        };
        let chunk = chunk?;
        len += chunk.len();
        first.push(chunk);
    }
    let head: Vec<u8> = first
        .iter()
        .flat_map(|c| c.iter())
        .take(132)
        .copied()
        .collect();
    if head.starts_with(b"DICM") && head.get(128..132) != Some(&b"DICM"[..]) {
        first.insert(0, Bytes::from_static(&PREAMBLE));
    }
    Ok(futures_util::stream::iter(first.into_iter().map(Ok)).chain(stream))
}

/// The chunks of a part as one buffer: the chunk itself when there is one.
fn joined(mut chunks: Vec<Bytes>, len: usize) -> Bytes {
    if chunks.len() == 1 {
        return chunks.pop().unwrap_or_default();
    }
    let mut whole = BytesMut::with_capacity(len);
    for c in &chunks {
        whole.extend_from_slice(c);
    }
    whole.freeze()
}

async fn spawn_part(
    ctx: &Arc<PartContext>,
    gate: &Arc<Semaphore>,
    tasks: &mut Vec<JoinHandle<PartResult>>,
    part: Part,
) {
    let permit = gate.clone().acquire_owned().await;
    let ctx = ctx.clone();
    tasks.push(tokio::spawn(async move {
        let r = process(ctx, part).await;
        drop(permit);
        r
    }));
}

async fn process(ctx: Arc<PartContext>, part: Part) -> PartResult {
    let options = ParseOptions {
        strict: ctx.state.config.validation.strict,
    };
    let (parsed, part) = match part {
        // A part in memory for a local store is parsed and written by one blocking task: one
        // thread hand-off per part instead of two.
        Part::Memory(bytes) if ctx.state.blobs.is_local() => {
            let size = bytes.len() as i64;
            return tokio::task::spawn_blocking(move || {
                let instance = match checked(&ctx, hds_dicom_model::parse(&bytes, &options)) {
                    Ok(i) => i,
                    Err(failed) => return named(failed, &bytes),
                };
                let blob = blob_key(&ctx, &instance);
                let written = ctx.state.blobs.write_in_place(&blob, &bytes);
                outcome(instance, blob, size, written.map_err(|e| e.to_string()))
            })
            .await
            .unwrap_or_else(|e| processing_failure(format!("the part could not be stored: {e}")));
        }
        Part::Memory(bytes) => {
            let parsed = {
                let bytes = bytes.clone();
                tokio::task::spawn_blocking(move || hds_dicom_model::parse(&bytes, &options)).await
            };
            (parsed, Part::Memory(bytes))
        }
        Part::Spooled(path, n) => {
            let p = path.to_path_buf();
            let parsed =
                tokio::task::spawn_blocking(move || hds_dicom_model::parse_file(&p, &options))
                    .await;
            (parsed, Part::Spooled(path, n))
        }
    };
    let parsed = match parsed {
        Ok(p) => p,
        Err(e) => return processing_failure(format!("the instance could not be parsed: {e}")),
    };
    let instance = match checked(&ctx, parsed) {
        Ok(i) => i,
        Err(failed) => {
            return match &part {
                Part::Memory(bytes) => named(failed, bytes),
                Part::Spooled(path, _) => {
                    let path = path.to_path_buf();
                    let head = tokio::task::spawn_blocking(move || file_head(&path))
                        .await
                        .unwrap_or_default();
                    named(failed, &head)
                }
            };
        }
    };
    let blob = blob_key(&ctx, &instance);
    let (written, size) = match part {
        Part::Memory(bytes) => {
            let n = bytes.len() as u64;
            (ctx.state.blobs.put(&blob, bytes).await, n)
        }
        // Spooled inside a local store: the file becomes the instance's by a rename.
        Part::Spooled(path, n) if ctx.state.blobs.is_local() => {
            let (blobs, key) = (ctx.state.blobs.clone(), blob.clone());
            let renamed = tokio::task::spawn_blocking(move || blobs.adopt(&key, path))
                .await
                .unwrap_or_else(|e| Err(std::io::Error::other(e)))
                .map_err(|e| object_store::Error::Generic {
                    store: "LocalFileSystem",
                    source: Box::new(e),
                });
            (renamed, n)
        }
        Part::Spooled(path, n) => (ctx.state.blobs.put_file(&blob, &path).await, n),
    };
    outcome(
        instance,
        blob,
        size as i64,
        written.map_err(|e| e.to_string()),
    )
}

/// A failure with the SOP Class and Instance UIDs the file names, when it was readable that
/// far: PS3.18 table I.1-1 makes them Type 1 in each FailedSOPSequence item, and in a request of
/// many parts they are how a client tells which failed.
fn named(failed: PartResult, head: &[u8]) -> PartResult {
    match failed {
        PartResult::Failed {
            sop_class,
            sop_uid,
            reason,
            comment,
        } if sop_class.is_none() || sop_uid.is_none() => {
            let (class, uid) = hds_dicom_model::identify(head);
            PartResult::Failed {
                sop_class: sop_class.or(class),
                sop_uid: sop_uid.or(uid),
                reason,
                comment,
            }
        }
        other => other,
    }
}

/// The first bytes of a spooled part: enough for any file meta information in practice.
fn file_head(path: &std::path::Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(64 * 1024).read_to_end(&mut head);
    }
    head
}

fn processing_failure(comment: String) -> PartResult {
    PartResult::Failed {
        sop_class: None,
        sop_uid: None,
        reason: PROCESSING_FAILURE,
        comment,
    }
}

/// The parsed instance, if it belongs where the request stores it.
fn checked(
    ctx: &PartContext,
    parsed: Result<Instance, hds_dicom_model::ParseError>,
) -> Result<Instance, PartResult> {
    let instance = parsed.map_err(|e| PartResult::Failed {
        sop_class: None,
        sop_uid: None,
        reason: e.failure_reason(),
        comment: e.to_string(),
    })?;
    if let Some(study) = &ctx.study
        && study != &instance.study_uid
    {
        return Err(PartResult::Failed {
            comment: format!(
                "the instance's StudyInstanceUID {} is not the study {study} the request names",
                instance.study_uid
            ),
            sop_class: Some(instance.sop_class_uid),
            sop_uid: Some(instance.sop_uid),
            reason: STUDY_UID_MISMATCH,
        });
    }
    Ok(instance)
}

fn blob_key(ctx: &PartContext, instance: &Instance) -> String {
    Blobs::key(
        &ctx.partition,
        &instance.study_uid,
        &instance.series_uid,
        &instance.sop_uid,
    )
}

fn outcome(instance: Instance, blob: String, size: i64, written: Result<(), String>) -> PartResult {
    match written {
        Ok(()) => PartResult::Written {
            instance: Arc::new(instance),
            blob,
            size,
        },
        Err(e) => {
            tracing::error!(error = %e, "could not write an instance file");
            PartResult::Failed {
                sop_class: Some(instance.sop_class_uid),
                sop_uid: Some(instance.sop_uid),
                reason: PROCESSING_FAILURE,
                comment: format!("the instance file could not be written: {e}"),
            }
        }
    }
}

fn ui(v: &str) -> Value {
    json!({"vr": "UI", "Value": [v]})
}

fn ur(v: String) -> Value {
    json!({"vr": "UR", "Value": [v]})
}

fn comments(texts: &[String]) -> Value {
    json!({"vr": "SQ", "Value": texts.iter().map(|t| json!({"00000902": {"vr": "LO", "Value": [t]}})).collect::<Vec<_>>()})
}

/// The STOW response (PS3.18 10.5.3): the study's RetrieveURL, a FailedSOPSequence and a
/// ReferencedSOPSequence, with 200 when all was stored cleanly, 202 when some failed or carry
/// warnings, 409 when none was stored.
fn answer(
    base: &str,
    partition: &str,
    study: Option<&str>,
    results: &[PartResult],
    report: &StoreReport,
) -> Response {
    let root = crate::partition_root(base, partition);
    let mut failed = Vec::new();
    let mut referenced = Vec::new();
    let mut warned = false;
    let mut studies: Vec<&str> = Vec::new();
    let mut outcome = report.outcomes.iter().zip(&report.warnings);
    for r in results {
        match r {
            PartResult::Failed {
                sop_class,
                sop_uid,
                reason,
                comment,
            } => {
                let mut item = Map::new();
                if let Some(c) = sop_class {
                    item.insert("00081150".into(), ui(c));
                }
                if let Some(u) = sop_uid {
                    item.insert("00081155".into(), ui(u));
                }
                item.insert("00081197".into(), json!({"vr": "US", "Value": [reason]}));
                item.insert("00741048".into(), comments(std::slice::from_ref(comment)));
                failed.push(Value::Object(item));
            }
            PartResult::Written { instance, .. } => {
                let i = instance;
                let (stored, tag_warnings) = outcome.next().unzip();
                if stored == Some(&StoreOutcome::Duplicate) {
                    failed.push(json!({
                        "00081150": ui(&i.sop_class_uid),
                        "00081155": ui(&i.sop_uid),
                        "00081197": {"vr": "US", "Value": [DUPLICATE]},
                        "00741048": comments(&["the instance is stored already; PUT replaces it".to_owned()]),
                    }));
                    continue;
                }
                let mut item = Map::new();
                item.insert("00081150".into(), ui(&i.sop_class_uid));
                item.insert("00081155".into(), ui(&i.sop_uid));
                item.insert(
                    "00081190".into(),
                    ur(format!(
                        "{root}/studies/{}/series/{}/instances/{}",
                        i.study_uid, i.series_uid, i.sop_uid
                    )),
                );
                let notes: Vec<String> = i
                    .warnings
                    .iter()
                    .chain(tag_warnings.into_iter().flatten())
                    .cloned()
                    .collect();
                if !notes.is_empty() {
                    warned = true;
                    item.insert(
                        "00081196".into(),
                        json!({"vr": "US", "Value": [VALIDATION_WARNINGS]}),
                    );
                    item.insert("00741048".into(), comments(&notes));
                }
                if !studies.contains(&i.study_uid.as_str()) {
                    studies.push(&i.study_uid);
                }
                referenced.push(Value::Object(item));
            }
        }
    }
    let mut body = Map::new();
    let study_url = study.or(match studies.as_slice() {
        [one] => Some(*one),
        _ => None,
    });
    if let Some(st) = study_url {
        body.insert("00081190".into(), ur(format!("{root}/studies/{st}")));
    }
    let status = if referenced.is_empty() {
        StatusCode::CONFLICT
    } else if failed.is_empty() && !warned {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    if !failed.is_empty() {
        body.insert("00081198".into(), json!({"vr": "SQ", "Value": failed}));
    }
    if !referenced.is_empty() {
        body.insert("00081199".into(), json!({"vr": "SQ", "Value": referenced}));
    }
    let mut r = (status, Value::Object(body).to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/dicom+json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_part_in_chunks_is_joined_in_order() {
        let chunks =
            |parts: &[&'static [u8]]| parts.iter().map(|p| Bytes::from_static(p)).collect();
        assert_eq!(joined(Vec::new(), 0), Bytes::new());
        assert_eq!(joined(chunks(&[b"DICM"]), 4), Bytes::from_static(b"DICM"));
        assert_eq!(
            joined(chunks(&[b"DI", b"", b"CM", b"!"]), 5),
            Bytes::from_static(b"DICM!")
        );
    }

    async fn preambled(chunks: &[&'static [u8]]) -> Vec<u8> {
        let stream = futures_util::stream::iter(
            chunks
                .iter()
                .map(|c| Ok::<_, DicomError>(Bytes::from_static(c)))
                .collect::<Vec<_>>(),
        );
        let mut out = Vec::new();
        let mut s = with_preamble(stream).await.unwrap();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_file_without_preamble_gets_a_zero_one() {
        let mut whole = vec![0u8; 128];
        whole.extend_from_slice(b"DICM and the rest");
        assert_eq!(preambled(&[b"DI", b"CM and the rest"]).await, whole);
        // A file with a preamble, even one starting "DICM", stays as sent.
        let mut file = b"DICM".to_vec();
        file.resize(128, 7);
        file.extend_from_slice(b"DICMxyz");
        let file: &'static [u8] = file.leak();
        assert_eq!(preambled(&[file]).await, file);
        assert_eq!(preambled(&[b"not DICOM"]).await, b"not DICOM");
        assert_eq!(preambled(&[]).await, b"");
    }
}
