//! `dicom-load`: the DICOMweb load generator behind `bench/dicom.sh`.
//!
//! Four modes, one JSON line on stdout per run (diagnostics go to stderr):
//!
//! - `stow`: `POST {url}/studies` of every `.dcm` file in `--dir` (sorted by name), `--per-request`
//!   files per `multipart/related; type="application/dicom"` body, `--workers` requests in flight.
//!   When all the bodies fit in [`PRELOAD_BYTES`] they are built (files read) before the clock
//!   starts, so the client's own file reading and copying is not measured (with one client
//!   thread it was the limit for 64 MB instances: 1.3 s of its CPU in a 1.4 s cell); otherwise
//!   each body is built before its request's clock starts. Throughput is instances stored per
//!   second of wall time, first request to last answer. A 200 stores the whole
//!   request; for any other answer the instances named in ReferencedSOPSequence (0008,1199)
//!   count as stored and the rest as failed, with the first failure kept verbatim.
//! - `qido`, `metadata`, `wado`: closed-loop GETs of the paths in `--urls` (relative to `--url`,
//!   taken round-robin by `--concurrency` clients) for `--warmup` + `--duration` seconds. Only
//!   requests started inside the measured window count; the rates divide by the time from the
//!   window's start until the last counted request has been answered, so slow requests (a large
//!   study's metadata) are not overstated. `--min-requests` stretches the window until that many
//!   requests have been counted. `qido` and `metadata` ask for `application/dicom+json` and
//!   check for a JSON array (a 204 counts as an empty one); `wado` asks for
//!   `multipart/related; type="application/dicom"; transfer-syntax=*` and checks that the body
//!   holds a DICOM file (the `DICM` magic near its start).
//!
//! Each STOW worker and each GET client keeps one HTTP/1.1 connection ([`hds_bench::http1`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use hds_bench::first_error::{FirstError, excerpt};
use hds_bench::http1::Connection;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderMap};
use hyper::{Method, StatusCode};
use serde::Serialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// STOW-RS of a directory of DICOM files.
    Stow,
    /// QIDO-RS searches (JSON arrays).
    Qido,
    /// WADO-RS metadata (`.../metadata`, JSON arrays).
    Metadata,
    /// WADO-RS retrieve of whole instances (multipart/related, application/dicom).
    Wado,
}

#[derive(Parser, Debug)]
#[command(about = "DICOMweb STOW/QIDO/WADO load generator; prints one JSON line")]
struct Args {
    /// DICOMweb root, e.g. http://127.0.0.1:8042/dicom-web
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Free-form label copied into the output (the server's name).
    #[arg(long, default_value = "")]
    label: String,
    /// Free-form name of the measurement copied into the output (e.g. the query shape).
    #[arg(long, default_value = "")]
    name: String,
    /// stow: the directory of `.dcm` files to send.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// stow: instances per request.
    #[arg(long, default_value_t = 50)]
    per_request: usize,
    /// stow: requests in flight.
    #[arg(long, default_value_t = 4)]
    workers: usize,
    /// qido/metadata/wado: a file of request paths relative to --url, one per line.
    #[arg(long)]
    urls: Option<PathBuf>,
    /// qido/metadata/wado: concurrent clients (each keeps one request in flight).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// qido/metadata/wado: measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// qido/metadata/wado: warm-up before the window, in seconds (requests run, not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// qido/metadata/wado: keep the window open until this many requests were counted.
    #[arg(long, default_value_t = 0)]
    min_requests: u64,
    /// GET modes: request each path exactly once, without warm-up or duration (a cold-cache
    /// pass over large instances).
    #[arg(long)]
    once: bool,
    /// Tokio worker threads. One leaves the (scarce) cores to the servers; both see the same
    /// client.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 300.0)]
    timeout: f64,
}

/// The first failure, kept so a run that "works" but answers 4xx/5xx says why.
/// Keeps the run's first failure for the report, and says it at once on stderr.
fn record_failure(first: &FirstError, what: &str, status: Option<u16>, body: &str) {
    let body = excerpt(body, 800);
    let kept = first.record(|| json!({ "request": what, "status": status, "body": &body }));
    if kept {
        eprintln!("first failure: {what}: status {status:?}: {body}");
    }
}

fn new_histogram() -> Histogram<u64> {
    // 1 µs .. 10 min at 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.threads == 0 || args.workers == 0 || args.concurrency == 0 || args.per_request == 0 {
        bail!("--threads, --workers, --concurrency and --per-request must be at least 1");
    }
    let rt = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(args.threads);
        b
    }
    .enable_all()
    .build()?;
    let line = rt.block_on(async {
        match args.mode {
            Mode::Stow => stow(&args).await,
            Mode::Qido | Mode::Metadata | Mode::Wado => get(&args).await,
        }
    })?;
    println!("{line}");
    Ok(())
}

/// One kept connection for a worker or a client: a pooled client reconnected for about one
/// request in four (see `hds_bench::http1`), inside the measured latency of either server.
fn connection(args: &Args) -> anyhow::Result<Connection> {
    Connection::new(&args.url, Duration::from_secs_f64(args.timeout))
}

fn dicom_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "dcm") {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        bail!("no .dcm files in {}", dir.display());
    }
    Ok(files)
}

const DICOM_JSON: &str = "application/dicom+json";

/// The request bodies of a STOW cell are built before its clock starts when they fit in this.
const PRELOAD_BYTES: u64 = 2 << 30;

/// The STOW body of the files `names`.
async fn stow_body(names: &[PathBuf], boundary: &str) -> anyhow::Result<Vec<u8>> {
    let mut parts = Vec::with_capacity(names.len());
    for name in names {
        let bytes = tokio::fs::read(name)
            .await
            .with_context(|| format!("reading {}", name.display()))?;
        parts.push(bytes);
    }
    Ok(multipart_body(&parts, boundary))
}

/// A `multipart/related` body of DICOM files, and its boundary.
fn multipart_body(parts: &[Vec<u8>], boundary: &str) -> Vec<u8> {
    let size: usize = parts.iter().map(|p| p.len() + boundary.len() + 48).sum();
    let mut body = Vec::with_capacity(size + boundary.len() + 8);
    for part in parts {
        body.extend_from_slice(b"--");
        body.extend_from_slice(boundary.as_bytes());
        body.extend_from_slice(b"\r\nContent-Type: application/dicom\r\n\r\n");
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"--");
    body.extend_from_slice(boundary.as_bytes());
    body.extend_from_slice(b"--\r\n");
    body
}

/// Items of a sequence attribute in a DICOM JSON object (`{"00081199": {"vr": "SQ", "Value":
/// [...]}}`), or None when the attribute is absent.
fn sequence_len(v: &Value, tag: &str) -> Option<usize> {
    let attr = v.get(tag)?;
    Some(
        attr.get("Value")
            .and_then(Value::as_array)
            .map_or(0, Vec::len),
    )
}

/// How many of a STOW request's `sent` instances were stored, judged from the answer.
fn stored_by_answer(status: u16, body: &[u8], sent: usize) -> usize {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let referenced = parsed.as_ref().and_then(|v| sequence_len(v, "00081199"));
    let failed = parsed.as_ref().and_then(|v| sequence_len(v, "00081198"));
    match (status, referenced, failed) {
        // All stored, unless the answer itself lists failures.
        (200, _, Some(f)) if f > 0 => sent.saturating_sub(f),
        (200, _, _) => sent,
        (202, Some(r), _) => r.min(sent),
        (202, None, Some(f)) => sent.saturating_sub(f),
        _ => 0,
    }
}

#[derive(Default)]
struct StowStats {
    requests: u64,
    failed_requests: u64,
    stored: u64,
    failed_instances: u64,
    bytes: u64,
    statuses: std::collections::BTreeMap<String, u64>,
}

async fn stow(args: &Args) -> anyhow::Result<Value> {
    let dir = args.dir.as_deref().context("--mode stow needs --dir")?;
    let files = Arc::new(dicom_files(dir)?);
    let chunks = files.len().div_ceil(args.per_request);
    let url = format!("{}/studies", args.url.trim_end_matches('/'));
    let boundary = format!("hds-bench-{:032x}", rand::random::<u128>());
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    let next = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(FirstError::default());
    let per_request = args.per_request;
    eprintln!(
        "stow: {} files in {} requests of {per_request}, {} workers -> {url}",
        files.len(),
        chunks,
        args.workers
    );

    let total_bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(u64::MAX))
        .fold(0, u64::saturating_add);
    let preloaded: Arc<Vec<Bytes>> = Arc::new(if total_bytes <= PRELOAD_BYTES {
        let mut bodies = Vec::with_capacity(chunks);
        for names in files.chunks(per_request) {
            bodies.push(Bytes::from(stow_body(names, &boundary).await?));
        }
        bodies
    } else {
        Vec::new()
    });

    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.workers.min(chunks) {
        let (files, next, first_error) = (files.clone(), next.clone(), first_error.clone());
        let preloaded = preloaded.clone();
        let (boundary, content_type) = (boundary.clone(), content_type.clone());
        let mut conn = connection(args)?;
        tasks.push(tokio::spawn(async move {
            let mut hist = new_histogram();
            let mut stats = StowStats::default();
            loop {
                let c = next.fetch_add(1, Ordering::Relaxed);
                if c >= chunks {
                    break;
                }
                let names = &files[c * per_request..((c + 1) * per_request).min(files.len())];
                let body = match preloaded.get(c) {
                    Some(b) => b.clone(),
                    None => Bytes::from(stow_body(names, &boundary).await?),
                };
                stats.bytes += body.len() as u64;
                let what = format!("{} .. {}", names[0].display(), names.len());
                let sent = Instant::now();
                let body = Some((content_type.as_str(), body));
                let read = async |status: StatusCode, _: &HeaderMap, body: Incoming| {
                    Ok((status.as_u16(), body.collect().await?.to_bytes()))
                };
                let (status, text) = match conn
                    .exchange(Method::POST, "studies", DICOM_JSON, body, read)
                    .await
                {
                    Ok((status, text)) => (Some(status), text),
                    Err((_, e)) => (None, Bytes::from(e)),
                };
                hist.saturating_record(sent.elapsed().as_micros() as u64);
                stats.requests += 1;
                let key = status.map_or_else(|| "transport".to_owned(), |s| s.to_string());
                *stats.statuses.entry(key).or_default() += 1;
                let stored = status.map_or(0, |s| stored_by_answer(s, &text, names.len()));
                stats.stored += stored as u64;
                stats.failed_instances += (names.len() - stored) as u64;
                if stored < names.len() {
                    stats.failed_requests += 1;
                    record_failure(&first_error, &what, status, &String::from_utf8_lossy(&text));
                }
            }
            Ok::<_, anyhow::Error>((hist, stats))
        }));
    }
    let mut hist = new_histogram();
    let mut total = StowStats::default();
    for t in tasks {
        let (h, s) = t.await??;
        hist.add(&h)?;
        total.requests += s.requests;
        total.failed_requests += s.failed_requests;
        total.stored += s.stored;
        total.failed_instances += s.failed_instances;
        total.bytes += s.bytes;
        for (k, v) in s.statuses {
            *total.statuses.entry(k).or_default() += v;
        }
    }
    let wall = start.elapsed().as_secs_f64();
    let ms = |q: f64| round3(hist.value_at_quantile(q) as f64 / 1000.0);
    Ok(json!({
        "label": args.label,
        "mode": args.mode,
        "name": args.name,
        "per_request": per_request,
        "workers": args.workers,
        "files": files.len(),
        "requests": total.requests,
        "failed_requests": total.failed_requests,
        "instances": total.stored,
        "failed_instances": total.failed_instances,
        "statuses": total.statuses,
        "wall_s": round3(wall),
        "instances_per_s": round2(total.stored as f64 / wall),
        "mb_per_s": round2(total.bytes as f64 / wall / 1e6),
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": round3(hist.max() as f64 / 1000.0),
        "first_error": first_error.take(),
    }))
}

/// What one GET client saw during the measured window.
struct GetStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    bytes: u64,
    /// JSON array items over the counted answers (qido, metadata).
    items: u64,
    /// When this client's last counted request was answered.
    last_done: Option<Instant>,
}

/// Checks one answer; the number of JSON items (qido, metadata) or 1 (wado).
fn check_answer(mode: Mode, status: u16, content_type: &str, body: &[u8]) -> Result<u64, String> {
    match (mode, status) {
        (Mode::Qido, 204) => Ok(0),
        (Mode::Qido | Mode::Metadata, 200) => serde_json::from_slice::<Vec<IgnoredAny>>(body)
            .map(|v| v.len() as u64)
            .map_err(|e| format!("not a JSON array: {e}")),
        (Mode::Wado, 200) => {
            if !content_type.starts_with("multipart/related") {
                return Err(format!("content-type {content_type}"));
            }
            let head = &body[..body.len().min(2048)];
            if head.windows(4).any(|w| w == b"DICM") {
                Ok(1)
            } else {
                Err("no DICM magic in the first part".to_owned())
            }
        }
        _ => Err(format!("status {status}")),
    }
}

async fn get(args: &Args) -> anyhow::Result<Value> {
    let file = args.urls.as_deref().context("this mode needs --urls")?;
    let paths: Vec<String> = std::fs::read_to_string(file)
        .with_context(|| format!("reading {}", file.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.trim_start_matches('/').to_owned())
        .collect();
    if paths.is_empty() {
        bail!("no paths in {}", file.display());
    }
    let paths = Arc::new(paths);
    let accept = match args.mode {
        Mode::Wado => "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
        _ => DICOM_JSON,
    };
    let once = args.once;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(if once { 0.0 } else { args.warmup });
    let stop_at = measure_from + Duration::from_secs_f64(args.duration);
    let cursor = Arc::new(AtomicUsize::new(0));
    let counted = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(FirstError::default());
    let (mode, min_requests) = (args.mode, args.min_requests as usize);

    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let mut conn = connection(args)?;
        let (paths, cursor, counted, first_error) = (
            paths.clone(),
            cursor.clone(),
            counted.clone(),
            first_error.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut s = GetStats {
                hist: new_histogram(),
                ok: 0,
                errors: 0,
                bytes: 0,
                items: 0,
                last_done: None,
            };
            loop {
                let sent = Instant::now();
                if !once && sent >= stop_at && counted.load(Ordering::Relaxed) >= min_requests {
                    break;
                }
                let next = cursor.fetch_add(1, Ordering::Relaxed);
                if once && next >= paths.len() {
                    break;
                }
                let url = &paths[next % paths.len()];
                // The body is read to the end: a request is not done until the client has it.
                let read = async |status: StatusCode, headers: &HeaderMap, body: Incoming| {
                    let ct = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
                    let ct = ct.unwrap_or("").to_owned();
                    let (head, len) = read_body(body, mode).await?;
                    Ok(match check_answer(mode, status.as_u16(), &ct, &head) {
                        Ok(items) => Ok((items, len)),
                        Err(e) => Err((
                            Some(status.as_u16()),
                            format!("{e}: {}", String::from_utf8_lossy(&head)),
                        )),
                    })
                };
                let outcome = conn
                    .exchange(Method::GET, url, accept, None, read)
                    .await
                    .and_then(|checked| checked);
                let done = Instant::now();
                if sent < measure_from {
                    continue;
                }
                counted.fetch_add(1, Ordering::Relaxed);
                s.last_done = Some(done);
                match outcome {
                    Ok((items, bytes)) => {
                        s.ok += 1;
                        s.items += items;
                        s.bytes += bytes;
                        s.hist.saturating_record((done - sent).as_micros() as u64);
                    }
                    Err((status, body)) => {
                        s.errors += 1;
                        record_failure(&first_error, url, status, &body);
                    }
                }
            }
            s
        }));
    }
    let mut hist = new_histogram();
    let (mut ok, mut errors, mut bytes, mut items) = (0u64, 0u64, 0u64, 0u64);
    let mut last_done = measure_from;
    for t in tasks {
        let s = t.await?;
        hist.add(&s.hist)?;
        ok += s.ok;
        errors += s.errors;
        bytes += s.bytes;
        items += s.items;
        if let Some(d) = s.last_done {
            last_done = last_done.max(d);
        }
    }
    let window = (last_done - measure_from).as_secs_f64().max(1e-9);
    let ms = |q: f64| round3(hist.value_at_quantile(q) as f64 / 1000.0);
    Ok(json!({
        "label": args.label,
        "mode": args.mode,
        "name": args.name,
        "concurrency": args.concurrency,
        "paths": paths.len(),
        "window_s": round3(window),
        "requests": ok,
        "errors": errors,
        "rps": round2(ok as f64 / window),
        "bytes": bytes,
        "mb_per_s": round2(bytes as f64 / window / 1e6),
        "bytes_mean": bytes.checked_div(ok).unwrap_or(0),
        "items_mean": if ok > 0 { round2(items as f64 / ok as f64) } else { 0.0 },
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": round3(hist.max() as f64 / 1000.0),
        "mean_ms": round3(hist.mean() / 1000.0),
        "first_error": first_error.take(),
    }))
}

/// An answer's body: whole for JSON answers, which are parsed; for WADO only the first 2 KiB
/// (where the DICM magic is) are kept and the rest is counted as it arrives, so a large
/// instance costs the client no copy.
async fn read_body(mut body: Incoming, mode: Mode) -> hyper::Result<(Bytes, u64)> {
    if mode != Mode::Wado {
        let body = body.collect().await?.to_bytes();
        let len = body.len() as u64;
        return Ok((body, len));
    }
    let mut head = Vec::with_capacity(2048);
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(chunk) = frame?.into_data() else {
            continue; // trailers
        };
        if head.len() < 2048 {
            let take = (2048 - head.len()).min(chunk.len());
            head.extend_from_slice(&chunk[..take]);
        }
        len += chunk.len() as u64;
    }
    Ok((head.into(), len))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_body_frames_every_part() {
        let body = multipart_body(&[b"AB".to_vec(), b"CD".to_vec()], "xyz");
        assert_eq!(
            body,
            b"--xyz\r\nContent-Type: application/dicom\r\n\r\nAB\r\n\
              --xyz\r\nContent-Type: application/dicom\r\n\r\nCD\r\n--xyz--\r\n"
        );
    }

    #[test]
    fn stored_counts_follow_the_answer() {
        let partial =
            br#"{"00081198":{"vr":"SQ","Value":[{}]},"00081199":{"vr":"SQ","Value":[{},{}]}}"#;
        assert_eq!(stored_by_answer(200, b"{}", 50), 50);
        assert_eq!(stored_by_answer(200, b"", 50), 50);
        assert_eq!(stored_by_answer(202, partial, 3), 2);
        assert_eq!(stored_by_answer(409, partial, 3), 0);
        assert_eq!(stored_by_answer(400, b"bad", 3), 0);
        // Orthanc sends an empty FailedSOPSequence on success.
        assert_eq!(stored_by_answer(200, br#"{"00081198":{"vr":"SQ"}}"#, 5), 5);
    }

    #[test]
    fn answers_are_checked_per_mode() {
        assert_eq!(check_answer(Mode::Qido, 200, "", b"[{},{}]"), Ok(2));
        assert_eq!(check_answer(Mode::Qido, 204, "", b""), Ok(0));
        assert!(check_answer(Mode::Metadata, 204, "", b"").is_err());
        assert!(check_answer(Mode::Qido, 200, "", b"{}").is_err());
        let mut part = b"--b\r\nContent-Type: application/dicom\r\n\r\n".to_vec();
        part.extend_from_slice(&[0u8; 128]);
        part.extend_from_slice(b"DICM");
        assert_eq!(
            check_answer(Mode::Wado, 200, "multipart/related; type=x", &part),
            Ok(1)
        );
        assert!(check_answer(Mode::Wado, 200, "application/dicom", &part).is_err());
        assert!(check_answer(Mode::Wado, 200, "multipart/related", b"--b\r\n\r\n").is_err());
    }
}
