//! WADO-RS (instances as stored or transcoded, metadata from the index's projection, frames,
//! rendered images, bulk data) and DELETE of a study, series or instance.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use hds_dicom_index::{InstanceFile, Target};
use hds_dicom_model::{FrameError, RenderFormat};

use crate::media::{self, DicomRetrieve};
use crate::{AppState, DicomError};

fn target(p: &HashMap<String, String>) -> Result<Target<'_>, DicomError> {
    crate::check_path_uids(p)?;
    Ok(Target {
        partition: crate::partition_of(p)?,
        study: p.get("study").map_or("", String::as_str),
        series: p.get("series").map(String::as_str),
        instance: p.get("instance").map(String::as_str),
    })
}

fn not_found(t: &Target<'_>) -> DicomError {
    DicomError::NotFound(match (t.series, t.instance) {
        (_, Some(i)) => format!("the instance {i} is not stored here"),
        (Some(se), None) => format!("the series {se} is not stored here"),
        (None, None) => format!("the study {} is not stored here", t.study),
    })
}

pub(crate) async fn retrieve(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let t = target(&p)?;
    let wants = media::dicom_retrieve(&headers, t.instance.is_some())?;
    let files = s.index.files(t).await?;
    if files.is_empty() {
        return Err(not_found(&t));
    }
    // The first representation Accept allows that every file can be sent in; decided before
    // the first byte, since a stream cannot turn into a 406 halfway.
    let mut refused = None;
    let mut chosen = None;
    for want in wants {
        match producible(&s, t, &files, &want).await {
            Ok(()) => {
                chosen = Some(want);
                break;
            }
            Err(DicomError::NotAcceptable(why)) => {
                refused.get_or_insert(why);
            }
            Err(e) => return Err(e),
        }
    }
    let Some(want) = chosen else {
        return Err(DicomError::NotAcceptable(refused.unwrap_or_default()));
    };
    if !want.multipart {
        let f = &files[0];
        let data = file_bytes(&s, f, &want).await?;
        let mut r = data.into_response();
        set(&mut r, header::CONTENT_TYPE, &dicom_type(f, &want));
        return Ok(r);
    }
    let boundary = media::boundary();
    let content_type = media::multipart_type(
        &boundary,
        "application/dicom",
        Some(want.transfer_syntax.as_deref().unwrap_or("*")),
    );
    let state = s.clone();
    let closing = media::closing(&boundary);
    let body = futures_util::stream::iter(files)
        .then(move |f| {
            let state = state.clone();
            let want = want.clone();
            let boundary = boundary.clone();
            async move { part_stream(state, f, want, boundary).await }
        })
        .flatten()
        .chain(futures_util::stream::once(async move {
            Ok::<_, std::io::Error>(Bytes::from(closing))
        }));
    let mut r = Response::new(Body::from_stream(body));
    set(&mut r, header::CONTENT_TYPE, &content_type);
    Ok(r)
}

/// Whether every file can be sent as `want` asks: a syntax it can be transcoded into, and
/// pixel data the codecs can decode (12-bit lossy JPEG and 32-bit RLE fail only once decoding,
/// when the answer would be under way). The pixel layouts come from the index, so a study is
/// not decoded twice to find out.
async fn producible(
    s: &AppState,
    t: Target<'_>,
    files: &[InstanceFile],
    want: &DicomRetrieve,
) -> Result<(), DicomError> {
    let Some(ts) = want.transfer_syntax.as_deref() else {
        return Ok(());
    };
    if let Some(f) = files
        .iter()
        .find(|f| !hds_dicom_model::can_transcode(&f.transfer_syntax, ts))
    {
        return Err(DicomError::NotAcceptable(format!(
            "the instance {} is stored as {} and cannot be sent as {ts}; ask for transfer-syntax=* to get it as stored",
            f.sop_uid, f.transfer_syntax
        )));
    }
    if files.iter().all(|f| f.transfer_syntax == ts) {
        return Ok(());
    }
    let layouts = s.index.pixel_layouts(t, ts).await?;
    for f in files.iter().filter(|f| f.transfer_syntax != ts) {
        let layout = layouts.get(&f.sop_uid).copied().unwrap_or_default();
        if let Some(reason) = hds_dicom_model::undecodable(&f.transfer_syntax, &layout) {
            return Err(DicomError::NotAcceptable(format!(
                "the instance {} is stored as {} and cannot be sent as {ts}: its pixel data cannot be decoded here ({reason}); ask for transfer-syntax=* to get it as stored",
                f.sop_uid, f.transfer_syntax
            )));
        }
    }
    Ok(())
}

fn dicom_type(f: &InstanceFile, want: &DicomRetrieve) -> String {
    format!(
        "application/dicom; transfer-syntax={}",
        want.transfer_syntax
            .as_deref()
            .unwrap_or(&f.transfer_syntax)
    )
}

/// One part: its head, then the file (streamed as stored, or transcoded whole).
async fn part_stream(
    s: AppState,
    f: InstanceFile,
    want: DicomRetrieve,
    boundary: String,
) -> futures_util::stream::BoxStream<'static, Result<Bytes, std::io::Error>> {
    let head = Bytes::from(media::part_head(&boundary, &dicom_type(&f, &want), None));
    fn io(e: DicomError) -> std::io::Error {
        std::io::Error::other(e.to_string())
    }
    let tail = Bytes::from_static(b"\r\n");
    let as_stored = want
        .transfer_syntax
        .as_deref()
        .is_none_or(|ts| ts == f.transfer_syntax);
    if as_stored {
        match s.blobs.stream(&f.blob).await {
            Ok(stream) => futures_util::stream::once(async { Ok(head) })
                .chain(stream.map(|c| c.map_err(|e| io(e.into()))))
                .chain(futures_util::stream::once(async { Ok(tail) }))
                .boxed(),
            Err(e) => {
                tracing::error!(sop = %f.sop_uid, error = %e, "a multipart retrieve broke off: an instance file could not be read");
                futures_util::stream::once(async move { Err(io(e.into())) }).boxed()
            }
        }
    } else {
        let data = file_bytes(&s, &f, &want).await.map_err(|e| {
            // The status line is out: all that is left is to break the chunked body off (the
            // client sees an incomplete answer, never a short one that looks whole) and say why.
            tracing::error!(sop = %f.sop_uid, error = %e, "a multipart retrieve broke off: an instance could not be transcoded");
            io(e)
        });
        futures_util::stream::iter([Ok(head), data, Ok(tail)]).boxed()
    }
}

async fn file_bytes(
    s: &AppState,
    f: &InstanceFile,
    want: &DicomRetrieve,
) -> Result<Bytes, DicomError> {
    let data = s.blobs.get(&f.blob).await?;
    match &want.transfer_syntax {
        Some(ts) if ts != &f.transfer_syntax => {
            let ts = ts.clone();
            let sop = f.sop_uid.clone();
            tokio::task::spawn_blocking(move || hds_dicom_model::transcode(&data, &ts))
                .await
                .map_err(|e| DicomError::Internal(e.to_string()))?
                .map(Bytes::from)
                .map_err(|e| {
                    DicomError::NotAcceptable(format!(
                        "the instance {sop} cannot be transcoded: {e}"
                    ))
                })
        }
        _ => Ok(data),
    }
}

fn set(r: &mut Response, name: header::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

pub(crate) async fn metadata(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    media::wants_json(&headers)?;
    let t = target(&p)?;
    let (texts, tag) = s.index.metadata(t).await?;
    if texts.is_empty() {
        return Err(not_found(&t));
    }
    let etag = format!("\"{tag}\"");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|e| e.trim().trim_start_matches("W/") == etag || e.trim() == "*")
        });
    if matches {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        set(&mut r, header::ETAG, &etag);
        return Ok(r);
    }
    let base = s.base_url(&headers);
    let root = format!("{}/", crate::partition_root(&base, t.partition));
    // The stored texts are joined as they are; only relative BulkDataURIs get the base.
    let needle = "\"BulkDataURI\":\"";
    let total: usize = texts.iter().map(|t| t.len() + 1).sum();
    let mut out = String::with_capacity(total + 2);
    out.push('[');
    for (i, text) in texts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let mut rest = text.as_str();
        while let Some(at) = rest.find(needle) {
            out.push_str(&rest[..at + needle.len()]);
            out.push_str(&root);
            rest = &rest[at + needle.len()..];
        }
        out.push_str(rest);
    }
    out.push(']');
    let mut r = out.into_response();
    set(&mut r, header::CONTENT_TYPE, "application/dicom+json");
    set(&mut r, header::ETAG, &etag);
    Ok(r)
}

/// `1,3,5` → frame numbers; DICOMweb numbers frames from 1.
fn frame_list(text: &str) -> Result<Vec<u32>, DicomError> {
    text.split(',')
        .map(|f| {
            f.trim()
                .parse::<u32>()
                .ok()
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    DicomError::BadRequest(format!(
                        "'{text}' is not a list of frame numbers (1, 2, ... separated by commas)"
                    ))
                })
        })
        .collect()
}

async fn one_file(s: &AppState, t: Target<'_>) -> Result<(InstanceFile, Bytes), DicomError> {
    let f = s
        .index
        .files(t)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| not_found(&t))?;
    let data = s.blobs.get(&f.blob).await?;
    Ok((f, data))
}

/// One representation of frames an Accept range asks for.
#[derive(Debug, Clone, PartialEq)]
enum FrameWant {
    /// Native little endian (application/octet-stream, the default).
    Decoded,
    /// Each frame as stored, labelled with its own type (`transfer-syntax=*`).
    AsStored,
    /// A compressed media type, and the syntax named with it: served only as stored, since
    /// nothing is encoded into compressed syntaxes here.
    Typed { media: String, ts: Option<String> },
}

/// The frame representations Accept allows, most preferred first.
/// With `single_ok` (one frame asked for), a bare `application/octet-stream` range is also
/// allowed, answered with the frame alone (Azure's single frame retrieval); such wants come
/// with `true`.
fn frame_wants(headers: &HeaderMap, single_ok: bool) -> Vec<(FrameWant, bool)> {
    let mut out = Vec::new();
    for m in media::accept(headers) {
        let (part, single) = match (m.essence.as_str(), m.part_type.as_deref()) {
            // `type="*/*"` (dicomweb-client's default) leaves the choice to the server.
            ("multipart/related" | "multipart/*", None | Some("*/*" | "*")) | ("*/*", _) => {
                ("application/octet-stream", false)
            }
            ("multipart/related" | "multipart/*", Some(t)) => (t, false),
            ("application/octet-stream", _) if single_ok => ("application/octet-stream", true),
            _ => continue,
        };
        let want = match (part, m.transfer_syntax.as_deref()) {
            ("application/octet-stream", Some("*")) => FrameWant::AsStored,
            ("application/octet-stream", None) => FrameWant::Decoded,
            ("application/octet-stream", Some(ts))
                if ts == hds_dicom_model::EXPLICIT_VR_LITTLE_ENDIAN =>
            {
                FrameWant::Decoded
            }
            ("application/octet-stream", Some(_)) => continue,
            (t, ts) => FrameWant::Typed {
                media: t.to_owned(),
                ts: ts.filter(|ts| *ts != "*").map(str::to_owned),
            },
        };
        if !out.contains(&(want.clone(), single)) {
            out.push((want, single));
        }
    }
    out
}

pub(crate) async fn frames(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let numbers = frame_list(p.get("frames").map_or("", String::as_str))?;
    let wants = frame_wants(&headers, numbers.len() == 1);
    if wants.is_empty() {
        return Err(DicomError::NotAcceptable(
            "frames are answered as multipart/related; type=\"application/octet-stream\" (uncompressed, or transfer-syntax=* as stored), or the stored compressed type; a single frame also as application/octet-stream".into(),
        ));
    }
    let t = target(&p)?;
    let (f, data) = one_file(&s, t).await?;
    let kinds = wants.iter().map(|(w, _)| w.clone()).collect();
    let (mut frames, chosen) = negotiate(&f, &data, kinds, move |data, as_stored| {
        hds_dicom_model::frames(data, &numbers, as_stored)
    })
    .await?;
    if wants[chosen].1
        && let Some(frame) = frames.pop()
    {
        let mut r = frame.data.into_response();
        let ct = format!(
            "application/octet-stream; transfer-syntax={}",
            frame.transfer_syntax
        );
        set(&mut r, header::CONTENT_TYPE, &ct);
        return Ok(r);
    }
    Ok(frames_response(&frames))
}

/// The first of `wants` that can be produced from `f` (PS3.18 8.7.8.1): compressed types only
/// as stored, decoding only where the codecs can; a 406 saying why the most preferred could not
/// be when none can. Also says which of `wants` it is.
async fn negotiate<T: Send + 'static>(
    f: &InstanceFile,
    data: &Bytes,
    wants: Vec<FrameWant>,
    produce: impl Fn(&[u8], bool) -> Result<T, FrameError> + Clone + Send + 'static,
) -> Result<(T, usize), DicomError> {
    let stored_type = hds_dicom_model::frame_media_type(&f.transfer_syntax);
    let mut refused = None;
    for (i, want) in wants.into_iter().enumerate() {
        let as_stored = match &want {
            FrameWant::AsStored => true,
            FrameWant::Typed { media, ts } => {
                let ts_ok = ts.as_deref().is_none_or(|ts| ts == f.transfer_syntax);
                if media != stored_type || !ts_ok {
                    refused.get_or_insert_with(|| {
                        format!(
                            "the frames are stored as {stored_type} in {}, not {media}{}, and are not encoded into compressed syntaxes here",
                            f.transfer_syntax,
                            ts.as_deref().map(|t| format!(" in {t}")).unwrap_or_default()
                        )
                    });
                    continue;
                }
                true
            }
            FrameWant::Decoded => false,
        };
        let (data, produce) = (data.clone(), produce.clone());
        let got = tokio::task::spawn_blocking(move || produce(&data, as_stored))
            .await
            .map_err(|e| DicomError::Internal(e.to_string()))?;
        match got {
            Ok(got) => return Ok((got, i)),
            Err(e @ (FrameError::NotDecodable(_) | FrameError::Unsupported { .. })) => {
                refused.get_or_insert_with(|| frame_error(e).to_string());
            }
            Err(e) => return Err(frame_error(e)),
        }
    }
    Err(DicomError::NotAcceptable(refused.unwrap_or_else(|| {
        "frames are answered as multipart/related; type=\"application/octet-stream\" (uncompressed, or transfer-syntax=* as stored), or the stored compressed type".into()
    })))
}

/// A multipart/related answer of frames, each part labelled with its type and syntax.
fn frames_response(frames: &[hds_dicom_model::Frame]) -> Response {
    let boundary = media::boundary();
    let mut body = Vec::new();
    for f in frames {
        let ct = format!("{}; transfer-syntax={}", f.content_type, f.transfer_syntax);
        body.extend(media::part_head(&boundary, &ct, None));
        body.extend_from_slice(&f.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(media::closing(&boundary));
    let first = frames.first();
    let mut r = body.into_response();
    set(
        &mut r,
        header::CONTENT_TYPE,
        &media::multipart_type(
            &boundary,
            first.map_or("application/octet-stream", |f| f.content_type.as_str()),
            first.map(|f| f.transfer_syntax.as_str()),
        ),
    );
    r
}

fn frame_error(e: hds_dicom_model::FrameError) -> DicomError {
    use hds_dicom_model::FrameError as E;
    match e {
        E::NotFound(n) => DicomError::NotFound(format!("the instance has no frame {n}")),
        // As Azure: an instance without pixel data has no frames or image to find.
        E::NoPixelData => DicomError::NotFound("the instance has no pixel data".into()),
        E::NotDecodable(ts) => DicomError::NotAcceptable(format!(
            "frames stored as {ts} cannot be decoded here; ask for transfer-syntax=* to get them as stored"
        )),
        // The request was fine; what the server cannot do with this data is a 406, as for
        // syntaxes without a decoder.
        e @ (E::Unsupported { .. } | E::Decode { .. }) => DicomError::NotAcceptable(format!(
            "{e}; ask for transfer-syntax=* to get the frames as stored"
        )),
        e => DicomError::BadRequest(e.to_string()),
    }
}

pub(crate) async fn rendered(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let frame = match p.get("frames") {
        Some(f) => match frame_list(f)?.as_slice() {
            [one] => *one,
            _ => {
                return Err(DicomError::BadRequest(
                    "a rendered frame is one frame number".into(),
                ));
            }
        },
        None => 1,
    };
    let quality = match q.get("quality") {
        None => 90,
        Some(v) => v
            .parse::<u8>()
            .ok()
            .filter(|q| (1..=100).contains(q))
            .ok_or_else(|| DicomError::BadRequest(format!("quality is 1 to 100, not '{v}'")))?,
    };
    let mut format = None;
    for m in media::accept(&headers) {
        format = match m.essence.as_str() {
            "image/jpeg" | "*/*" | "image/*" => {
                Some((RenderFormat::Jpeg { quality }, "image/jpeg"))
            }
            "image/png" => Some((RenderFormat::Png, "image/png")),
            _ => continue,
        };
        break;
    }
    let Some((format, content_type)) = format else {
        return Err(DicomError::NotAcceptable(
            "rendered images are image/jpeg or image/png".into(),
        ));
    };
    let t = target(&p)?;
    let (_, data) = one_file(&s, t).await?;
    let image = tokio::task::spawn_blocking(move || hds_dicom_model::render(&data, frame, format))
        .await
        .map_err(|e| DicomError::Internal(e.to_string()))?
        .map_err(|e| match e {
            hds_dicom_model::RenderError::Frame(e) => frame_error(e),
            e => DicomError::NotAcceptable(format!("the image cannot be rendered: {e}")),
        })?;
    let mut r = image.into_response();
    set(&mut r, header::CONTENT_TYPE, content_type);
    Ok(r)
}

pub(crate) async fn bulkdata(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, DicomError> {
    let path = p.get("path").cloned().unwrap_or_default();
    let t = target(&p)?;
    let (f, data) = one_file(&s, t).await?;
    // Compressed Pixel Data is what the frames resource gives, frame by frame: decoded to
    // little endian by default (PS3.18 8.7.3.3), or as stored under its own media type, so
    // compressed bytes never pass for raw pixels.
    let compressed =
        hds_dicom_model::frame_media_type(&f.transfer_syntax) != "application/octet-stream";
    if compressed && path.trim_matches('/').eq_ignore_ascii_case("7FE00010") {
        let wants = frame_wants(&headers, false);
        let kinds = wants.into_iter().map(|(w, _)| w).collect();
        if let (Some(frames), _) =
            negotiate(&f, &data, kinds, hds_dicom_model::encapsulated_pixels).await?
        {
            return Ok(frames_response(&frames));
        }
    }
    let shown = path.clone();
    let values = tokio::task::spawn_blocking(move || hds_dicom_model::bulkdata(&data, &path))
        .await
        .map_err(|e| DicomError::Internal(e.to_string()))?
        .map_err(|e| match e {
            // Its own text already says this.
            hds_dicom_model::BulkError::NotFound(_) => DicomError::NotFound(e.to_string()),
            e => DicomError::NotFound(format!("no bulk data at {shown}: {e}")),
        })?;
    let boundary = media::boundary();
    let mut body = Vec::new();
    for v in &values {
        body.extend(media::part_head(
            &boundary,
            "application/octet-stream",
            None,
        ));
        body.extend_from_slice(&v.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend(media::closing(&boundary));
    let mut r = body.into_response();
    set(
        &mut r,
        header::CONTENT_TYPE,
        &media::multipart_type(&boundary, "application/octet-stream", None),
    );
    Ok(r)
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Path(p): Path<HashMap<String, String>>,
) -> Result<Response, DicomError> {
    let t = target(&p)?;
    let blobs = s.index.delete(t).await?;
    if blobs.is_empty() {
        return Err(not_found(&t));
    }
    s.blobs.remove(blobs).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
