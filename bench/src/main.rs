//! `fhir-load`: a closed-loop HTTP load generator for FHIR `create`, `read` and `transaction`
//! (one Synthea-like patient record per transaction Bundle).
//!
//! Each of `--concurrency` clients sends one request, waits for the whole response, and sends
//! the next, so the offered load adapts to the server (closed loop): throughput and latency are
//! two views of the same run. Only requests *started* after the warm-up and before the end of
//! the measured window are counted, so connection set-up, JIT-like caches (prepared statements,
//! pool growth) and the tail of the warm-up do not leak into the figures. Each client keeps one
//! connection for all its requests (`hds_bench::http1`).
//!
//! Prints exactly one JSON line on stdout; diagnostics go to stderr. `bench/run.sh` drives it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use hds_bench::first_error::{FirstError, excerpt};
use hds_bench::http1::Connection;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde::Serialize;
use serde_json::json;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// `POST {url}/Patient` with a fresh Patient each time.
    Create,
    /// `GET {url}/Patient/{id}` round-robin over patients created beforehand.
    Read,
    /// `POST {url}` with a transaction Bundle holding one patient's whole record (≈25
    /// resources, `urn:uuid:` references), as Synthea writes them.
    Transaction,
}

#[derive(Parser, Debug)]
#[command(about = "Closed-loop FHIR create/read load generator; prints one JSON line")]
struct Args {
    /// FHIR base URL, e.g. http://127.0.0.1:18080
    #[arg(long)]
    url: String,
    #[arg(long, value_enum)]
    mode: Mode,
    /// Number of concurrent clients (each keeps one request in flight).
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Measured window, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before the measured window, in seconds (requests run but are not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Read mode: how many patients to create first and read round-robin.
    #[arg(long, default_value_t = 1000)]
    seed: usize,
    /// Free-form label copied into the output (e.g. the server name).
    #[arg(long, default_value = "")]
    label: String,
    /// Tokio worker threads. One is plenty for a few thousand requests/s and leaves the
    /// (scarce) cores to the server and PostgreSQL; both servers see the same client.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout, in seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    /// A bearer token sent with every request (for servers that check tokens).
    #[arg(long, env = "BENCH_TOKEN")]
    token: Option<String>,
}

/// What one client saw during the measured window.
struct ClientStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
    /// Resources written by the successful requests (one per create, a Bundle's entries).
    resources: u64,
}

/// The first failure, kept so a run that "works" but returns 4xx/5xx says why.
fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.concurrency == 0 || args.threads == 0 {
        bail!("--concurrency and --threads must be at least 1");
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
    rt.block_on(run(args))
}

/// What every request asks for, and what every body is.
const FHIR_JSON: &str = "application/fhir+json";

async fn run(args: Args) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_string();
    let bearer = match &args.token {
        Some(t) => Some(HeaderValue::from_str(&format!("Bearer {t}"))?),
        None => None,
    };
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(b) = &bearer {
        headers.insert(AUTHORIZATION, b.clone());
    }
    // Seeding only (not measured); the measured requests go through `Connection`s below.
    let client = reqwest::Client::builder()
        .default_headers(headers)
        .pool_max_idle_per_host(args.concurrency)
        .timeout(Duration::from_secs_f64(args.timeout))
        .tcp_nodelay(true)
        .build()?;

    // Unique per process so repeated runs against the same database never collide on
    // identifiers (neither server enforces uniqueness, but it keeps the data realistic).
    let run_tag = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();

    let ids: Arc<Vec<String>> = Arc::new(match args.mode {
        Mode::Create | Mode::Transaction => Vec::new(),
        Mode::Read => seed(&client, &base, args.seed, args.concurrency, run_tag).await?,
    });

    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(args.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(args.duration);
    let counter = Arc::new(AtomicU64::new(0));
    let cursor = Arc::new(AtomicUsize::new(0));
    let first_error = Arc::new(FirstError::default());

    let mut tasks = Vec::with_capacity(args.concurrency);
    for _ in 0..args.concurrency {
        // Each client keeps its own connection (see `hds_bench::http1`).
        let mut conn = Connection::new(&base, Duration::from_secs_f64(args.timeout))?;
        if let Some(b) = &bearer {
            conn = conn.with_header(AUTHORIZATION, b.clone());
        }
        let ids = ids.clone();
        let counter = counter.clone();
        let cursor = cursor.clone();
        let first_error = first_error.clone();
        let mode = args.mode;
        tasks.push(tokio::spawn(async move {
            // 1 µs .. 60 s at 3 significant digits: p99 is exact to 0.1 %.
            let mut stats = ClientStats {
                hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
                ok: 0,
                errors: 0,
                resources: 0,
            };
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let mut resources = 1;
                // Bodies are read to the end: a request is not done until the client has the
                // answer.
                let outcome = match mode {
                    Mode::Create => {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let body = Bytes::from(patient_body(run_tag, n));
                        conn.post("Patient", FHIR_JSON, FHIR_JSON, body).await
                    }
                    Mode::Transaction => {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let (bundle, entries) =
                            hds_bench::synth::transaction_bundle(42, n as usize, run_tag as u64);
                        resources = entries as u64;
                        conn.post("", FHIR_JSON, FHIR_JSON, Bytes::from(bundle))
                            .await
                    }
                    Mode::Read => {
                        let i = cursor.fetch_add(1, Ordering::Relaxed) % ids.len();
                        conn.get(&format!("Patient/{}", ids[i]), FHIR_JSON).await
                    }
                };
                let elapsed = sent.elapsed();
                if sent < measure_from {
                    continue;
                }
                match outcome {
                    Ok(_) => {
                        stats.ok += 1;
                        stats.resources += resources;
                        stats.hist.saturating_record(elapsed.as_micros() as u64);
                    }
                    Err((status, body)) => {
                        stats.errors += 1;
                        first_error
                            .record(|| json!({ "status": status, "body": excerpt(&body, 500) }));
                    }
                }
            }
            stats
        }));
    }

    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let (mut ok, mut errors, mut resources) = (0u64, 0u64, 0u64);
    for t in tasks {
        let s = t.await?;
        hist.add(&s.hist)?;
        ok += s.ok;
        errors += s.errors;
        resources += s.resources;
    }
    // Closed loop: the last requests started just before `stop_at` finish a little later, so
    // divide by the nominal window (the requests it admitted), not by the wall time.
    let window = args.duration;
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let first_error = first_error.take();
    let line = json!({
        "label": args.label,
        "mode": args.mode,
        "concurrency": args.concurrency,
        "url": base,
        "duration_s": window,
        "warmup_s": args.warmup,
        "requests": ok,
        "errors": errors,
        "rps": round2(ok as f64 / window),
        "resources": resources,
        "resources_per_s": round2(resources as f64 / window),
        "p50_ms": round3(ms(0.50)),
        "p90_ms": round3(ms(0.90)),
        "p99_ms": round3(ms(0.99)),
        "max_ms": round3(hist.max() as f64 / 1000.0),
        "mean_ms": round3(hist.mean() / 1000.0),
        "first_error": first_error,
    });
    println!("{line}");
    Ok(())
}

const SEED_CLIENTS: usize = 16;

/// Creates `n` patients (with `concurrency` clients in parallel) and returns their ids.
async fn seed(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    concurrency: usize,
    run_tag: u128,
) -> anyhow::Result<Vec<String>> {
    if n == 0 {
        bail!("--seed must be at least 1 in read mode");
    }
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    // Seeding is set-up, not measurement: use enough clients that it stays short even for a
    // single-client read run.
    for _ in 0..concurrency.max(SEED_CLIENTS).min(n) {
        let client = client.clone();
        let url = format!("{base}/Patient");
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let resp = client
                    .post(&url)
                    .header("content-type", "application/fhir+json")
                    .header("accept", "application/fhir+json")
                    .body(patient_body(run_tag, (1 << 40) + i as u64))
                    .send()
                    .await
                    .context("seeding: request failed")?;
                let status = resp.status();
                let location = resp
                    .headers()
                    .get("location")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let body = resp.bytes().await?;
                if !status.is_success() {
                    bail!(
                        "seeding: POST {url} returned {status}: {}",
                        String::from_utf8_lossy(&body)
                    );
                }
                ids.push(created_id(&body, location.as_deref())?);
            }
            Ok::<_, anyhow::Error>(ids)
        }));
    }
    let mut ids = Vec::with_capacity(n);
    for t in tasks {
        ids.extend(t.await??);
    }
    Ok(ids)
}

/// The id of a created resource: from the returned body if there is one (`Prefer:
/// return=representation` is the usual default), else from `Location: .../Patient/{id}/_history/{v}`.
fn created_id(body: &[u8], location: Option<&str>) -> anyhow::Result<String> {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(id) = v.get("id").and_then(|i| i.as_str())
    {
        return Ok(id.to_owned());
    }
    let loc = location.context("created resource has neither a body id nor a Location")?;
    let after = loc
        .split("/Patient/")
        .nth(1)
        .context("Location does not name a Patient")?;
    Ok(after.split('/').next().unwrap_or(after).to_owned())
}

/// A realistic Patient (~600 bytes): the fields a registration system sends, varied per
/// request so no layer can cache or deduplicate the payload.
fn patient_body(run_tag: u128, n: u64) -> String {
    const FAMILIES: [&str; 8] = [
        "Nguyen",
        "Smith",
        "García",
        "Müller",
        "Okafor",
        "Kowalski",
        "Tanaka",
        "Johansson",
    ];
    const GIVEN: [&str; 8] = [
        "Amelia", "Oliver", "Sofia", "Lucas", "Aisha", "Mateo", "Yuki", "Noah",
    ];
    let family = FAMILIES[(n % 8) as usize];
    let given = GIVEN[((n / 8) % 8) as usize];
    let gender = if n.is_multiple_of(2) {
        "female"
    } else {
        "male"
    };
    let year = 1940 + (n % 80);
    let month = 1 + (n % 12);
    let day = 1 + (n % 28);
    json!({
        "resourceType": "Patient",
        "identifier": [{
            "use": "usual",
            "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]},
            "system": "urn:oid:1.2.36.146.595.217.0.1",
            "value": format!("MRN-{run_tag}-{n}")
        }],
        "active": true,
        "name": [{"use": "official", "family": family, "given": [given, "J"]}],
        "telecom": [
            {"system": "phone", "value": format!("+1-555-{:04}", n % 10_000), "use": "home"},
            {"system": "email", "value": format!("{}.{}{}@example.org", given.to_lowercase(), family.to_lowercase(), n)}
        ],
        "gender": gender,
        "birthDate": format!("{year}-{month:02}-{day:02}"),
        "address": [{
            "use": "home",
            "line": [format!("{} Main Street", 1 + n % 999)],
            "city": "Springfield",
            "state": "IL",
            "postalCode": format!("{:05}", 60000 + n % 10_000),
            "country": "US"
        }]
    })
    .to_string()
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
    fn body_is_realistic_size_and_valid_json() {
        let b = patient_body(1_700_000_000_000, 12345);
        let v: serde_json::Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["resourceType"], "Patient");
        assert!((500..800).contains(&b.len()), "len {}", b.len());
    }

    #[test]
    fn id_from_body_or_location() {
        assert_eq!(created_id(br#"{"id":"abc"}"#, None).unwrap(), "abc");
        assert_eq!(
            created_id(b"", Some("http://h/Patient/xyz/_history/1")).unwrap(),
            "xyz"
        );
        assert!(created_id(b"", None).is_err());
    }
}
