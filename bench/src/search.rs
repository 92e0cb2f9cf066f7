//! `fhir-search-bench`: loads `fhir-synth` NDJSON into a FHIR server and measures ten search
//! shapes against it. `bench/search.sh` drives it; see docs/benchmarks.md, "Search at scale".
//!
//! - `load`: `PUT {url}/{type}/{id}` for every line (update-as-create, client-chosen ids) with
//!   bounded concurrency over keep-alive connections. The input is ordered by type and the
//!   loader finishes each type before starting the next, so references always resolve.
//! - `query`: for each shape, a list of queries drawn from the generated data (the same seed,
//!   so every server gets the same list in the same order). A cell first sends the first
//!   `--probes` queries one by one and counts the entries they return (the same queries on
//!   every server, so the counts are directly comparable), then runs a closed-loop window like
//!   `fhir-load` (warm-up, then only requests started inside the window count). Each client
//!   keeps one connection for all its requests ([`hds_bench::http1`]).
//!
//! Each cell (and a load) prints one JSON line on stdout; diagnostics go to stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::{Duration as Days, NaiveDate};
use clap::{Parser, Subcommand, ValueEnum};
use hdrhistogram::Histogram;
use hds_bench::first_error::{FirstError, excerpt};
use hds_bench::http1::Connection;
use hds_bench::synth::{
    CONDITIONS, LOINC, PANELS, RARE_PANEL_WEIGHT, SNOMED, mix, patient_id, plan,
};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::Semaphore;

#[derive(Parser, Debug)]
#[command(about = "Load fhir-synth data into a FHIR server and measure search shapes")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Tokio worker threads. One leaves the scarce cores to the server and PostgreSQL, and
    /// both servers see the same client.
    #[arg(long, global = true, default_value_t = 1)]
    threads: usize,
    /// Per-request timeout, in seconds.
    #[arg(long, global = true, default_value_t = 120.0)]
    timeout: f64,
    /// Free-form label copied into the output (e.g. the server name).
    #[arg(long, global = true, default_value = "")]
    label: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// PUT every resource of an NDJSON file (or `-` for stdin) to the server.
    Load {
        /// FHIR base URL, e.g. http://127.0.0.1:18180
        #[arg(long)]
        url: String,
        /// NDJSON from fhir-synth; `-` reads stdin.
        #[arg(long, default_value = "-")]
        file: PathBuf,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Stop after this many failed requests.
        #[arg(long, default_value_t = 50)]
        max_errors: u64,
    },
    /// Measure search shapes; one JSON line per shape.
    Query {
        #[arg(long)]
        url: String,
        /// Patients in the loaded data (as given to fhir-synth).
        #[arg(long)]
        patients: usize,
        /// Seed of the loaded data (as given to fhir-synth).
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Shapes to run, comma-separated; all when absent.
        #[arg(long, value_enum, value_delimiter = ',')]
        shape: Vec<Shape>,
        /// Concurrent clients (each keeps one request in flight).
        #[arg(long, default_value_t = 1)]
        clients: usize,
        /// Measured window per shape, in seconds.
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Warm-up before the window, in seconds (after the probes).
        #[arg(long, default_value_t = 2.0)]
        warmup: f64,
        /// Queries sent one by one before the warm-up whose entries are counted.
        #[arg(long, default_value_t = 10)]
        probes: usize,
        /// Distinct queries per shape (used round-robin).
        #[arg(long, default_value_t = 2000)]
        queries: usize,
        /// Print the queries of each shape instead of running them.
        #[arg(long)]
        print: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum Shape {
    /// `Observation?code=http://loinc.org|<code>&_count=20`
    Token,
    /// `Observation?subject=Patient/<id>`
    Reference,
    /// `Observation?date=ge<d1>&date=lt<d1+7d>&_count=20`
    Date,
    /// `Patient?name=<3-letter prefix>&_count=20`
    Name,
    /// `Observation?subject:Patient.name=<family>&_count=20`
    Chain,
    /// `Patient?_has:Observation:patient:code=http://loinc.org|<rare code>&_count=20`
    Has,
    /// `Observation?subject=Patient/<id>&_include=Observation:subject`
    Include,
    /// `Observation?subject=Patient/<id>&_sort=-date&_count=20`
    Sort,
    /// `Condition?code=http://snomed.info/sct|<code>&_total=accurate&_count=20`
    Total,
    /// `Observation?code=http://loinc.org|<code>&date=ge<d1>&_count=20`
    TokenDate,
}

const ALL_SHAPES: [Shape; 10] = [
    Shape::Token,
    Shape::Reference,
    Shape::Date,
    Shape::Name,
    Shape::Chain,
    Shape::Has,
    Shape::Include,
    Shape::Sort,
    Shape::Total,
    Shape::TokenDate,
];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.threads == 0 {
        bail!("--threads must be at least 1");
    }
    let rt = if cli.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(cli.threads);
        b
    }
    .enable_all()
    .build()?;
    rt.block_on(async move {
        match cli.command {
            Command::Load {
                ref url,
                ref file,
                concurrency,
                max_errors,
            } => load(&cli, url, file, concurrency, max_errors).await,
            Command::Query {
                ref url,
                patients,
                seed,
                ref shape,
                clients,
                duration,
                warmup,
                probes,
                queries: n,
                print,
            } => {
                if patients == 0 || clients == 0 || n == 0 {
                    bail!("--patients, --clients and --queries must be at least 1");
                }
                let shapes = if shape.is_empty() {
                    ALL_SHAPES.to_vec()
                } else {
                    shape.clone()
                };
                for s in shapes {
                    let qs = queries(s, seed, patients, n);
                    if print {
                        for q in &qs {
                            println!("{q}");
                        }
                        continue;
                    }
                    let cell = Cell {
                        shape: s,
                        clients,
                        duration,
                        warmup,
                        probes,
                    };
                    let line = run_cell(&cli, url, &cell, Arc::new(qs)).await?;
                    println!("{line}");
                }
                Ok(())
            }
        }
    })
}

fn client(cli: &Cli, connections: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs_f64(cli.timeout))
        .tcp_nodelay(true)
        .build()?)
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// What every query asks for.
const FHIR_JSON: &str = "application/fhir+json";

fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(500).collect()
}

// --- load -----------------------------------------------------------------------------------

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "resourceType")]
    resource_type: String,
    id: String,
}

/// Per-type progress of a load.
#[derive(Default)]
struct TypeStats {
    count: u64,
    seconds: f64,
}

async fn load(
    cli: &Cli,
    url: &str,
    file: &PathBuf,
    concurrency: usize,
    max_errors: u64,
) -> anyhow::Result<()> {
    if concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    let base = url.trim_end_matches('/').to_string();
    let http = client(cli, concurrency)?;
    let input: Box<dyn AsyncRead + Unpin + Send> = if file.as_os_str() == "-" {
        Box::new(tokio::io::stdin())
    } else {
        Box::new(
            tokio::fs::File::open(file)
                .await
                .with_context(|| format!("cannot open {}", file.display()))?,
        )
    };
    let mut lines = BufReader::with_capacity(1 << 20, input).lines();

    let permits = u32::try_from(concurrency).context("--concurrency too large")?;
    let sem = Arc::new(Semaphore::new(concurrency));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();

    // Progress every 10 s: a 1M load takes a while.
    let progress = {
        let ok = ok.clone();
        let errors = errors.clone();
        let label = cli.label.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            tick.tick().await;
            loop {
                tick.tick().await;
                let n = ok.load(Ordering::Relaxed);
                let t = started.elapsed().as_secs_f64();
                eprintln!(
                    "[load {label}] {n} resources in {t:.0} s ({:.0}/s), {} errors",
                    n as f64 / t,
                    errors.load(Ordering::Relaxed)
                );
            }
        })
    };

    let mut by_type: BTreeMap<String, TypeStats> = BTreeMap::new();
    let mut current = String::new();
    let mut type_started = Instant::now();
    let mut type_base = 0u64;
    let mut aborted = false;
    while let Some(line) = lines.next_line().await? {
        if line.trim().is_empty() {
            continue;
        }
        let head: Head = serde_json::from_str(&line)
            .with_context(|| format!("not a resource: {}", snippet(line.as_bytes())))?;
        if head.resource_type != current {
            // Barrier: everything of the previous type is stored before the next type starts,
            // so references to it resolve on servers that check them.
            drop(sem.acquire_many(permits).await?);
            if !current.is_empty() {
                finish_type(&mut by_type, &current, &ok, type_base, type_started);
            }
            current = head.resource_type.clone();
            type_started = Instant::now();
            type_base = ok.load(Ordering::Relaxed);
        }
        let permit = sem.clone().acquire_owned().await?;
        if errors.load(Ordering::Relaxed) >= max_errors {
            aborted = true;
            break;
        }
        let http = http.clone();
        let target = format!("{base}/{}/{}", head.resource_type, head.id);
        let ok = ok.clone();
        let errors = errors.clone();
        tokio::spawn(async move {
            let outcome = http
                .put(&target)
                .header("content-type", "application/fhir+json")
                .header("accept", "application/fhir+json")
                .header("prefer", "return=minimal")
                .body(line)
                .send()
                .await;
            let failure = match outcome {
                Ok(resp) => {
                    let status = resp.status();
                    match resp.bytes().await {
                        Ok(_) if status.is_success() => None,
                        Ok(body) => Some(format!("{status}: {}", snippet(&body))),
                        Err(e) => Some(format!("{status}, body: {e}")),
                    }
                }
                Err(e) => Some(format!("transport: {e}")),
            };
            match failure {
                None => {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
                Some(msg) => {
                    let n = errors.fetch_add(1, Ordering::Relaxed);
                    if n < 5 {
                        eprintln!("[load] PUT {target} failed: {msg}");
                    }
                }
            }
            drop(permit);
        });
    }
    drop(sem.acquire_many(permits).await?);
    if !current.is_empty() {
        finish_type(&mut by_type, &current, &ok, type_base, type_started);
    }
    progress.abort();

    let seconds = started.elapsed().as_secs_f64();
    let n = ok.load(Ordering::Relaxed);
    let errors = errors.load(Ordering::Relaxed);
    let types: serde_json::Map<String, serde_json::Value> = by_type
        .iter()
        .map(|(t, s)| {
            (
                t.clone(),
                json!({"count": s.count, "seconds": round2(s.seconds),
                       "rps": round2(s.count as f64 / s.seconds.max(1e-9))}),
            )
        })
        .collect();
    let line = json!({
        "label": cli.label,
        "mode": "load",
        "url": base,
        "concurrency": concurrency,
        "resources": n,
        "errors": errors,
        "seconds": round2(seconds),
        "rps": round2(n as f64 / seconds.max(1e-9)),
        "by_type": types,
        "aborted": aborted,
    });
    println!("{line}");
    if aborted {
        bail!("aborted after {errors} failed requests");
    }
    if errors > 0 {
        bail!("{errors} resources failed to load");
    }
    Ok(())
}

fn finish_type(
    by_type: &mut BTreeMap<String, TypeStats>,
    ty: &str,
    ok: &AtomicU64,
    base: u64,
    started: Instant,
) {
    let s = by_type.entry(ty.to_owned()).or_default();
    s.count += ok.load(Ordering::Relaxed) - base;
    s.seconds += started.elapsed().as_secs_f64();
    eprintln!(
        "[load] {ty}: {} in {:.1} s ({:.0}/s)",
        s.count,
        s.seconds,
        s.count as f64 / s.seconds.max(1e-9)
    );
}

// --- queries --------------------------------------------------------------------------------

/// Everything but unreserved characters and `/` is escaped, so `|` and `:` in token values and
/// accents in names travel as %-escapes; parameter names are written as they are.
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn enc(v: &str) -> String {
    utf8_percent_encode(v, VALUE).to_string()
}

fn random_date(rng: &mut StdRng) -> NaiveDate {
    let from = NaiveDate::from_ymd_opt(hds_bench::synth::START_YEAR, 1, 1).expect("date");
    let to = NaiveDate::from_ymd_opt(hds_bench::synth::END_YEAR, 12, 24).expect("date");
    from + Days::days(rng.random_range(0..(to - from).num_days()))
}

/// `n` queries (path and query string, relative to the base URL) of one shape, drawn from the
/// data of `fhir-synth --seed seed --patients patients`: the same list for every server.
fn queries(shape: Shape, seed: u64, patients: usize, n: usize) -> Vec<String> {
    let shape_no = ALL_SHAPES.iter().position(|s| *s == shape).expect("listed") as u64;
    let mut rng = StdRng::seed_from_u64(mix(seed ^ 0x5ea7_c4b3_0000 ^ shape_no));
    let rare: Vec<usize> = (0..PANELS.len())
        .filter(|&p| PANELS[p].weight <= RARE_PANEL_WEIGHT)
        .collect();
    (0..n)
        .map(|_| {
            let i = rng.random_range(0..patients);
            let p = plan(seed, i);
            let pid = patient_id(i);
            match shape {
                Shape::Token => {
                    let o = &p.observations[rng.random_range(0..p.observations.len())];
                    format!(
                        "Observation?code={}&_count=20",
                        enc(&format!("{LOINC}|{}", o.test().code))
                    )
                }
                Shape::Reference => format!("Observation?subject=Patient/{pid}"),
                Shape::Date => {
                    let d1 = random_date(&mut rng);
                    let d2 = d1 + Days::days(7);
                    format!("Observation?date=ge{d1}&date=lt{d2}&_count=20")
                }
                Shape::Name => {
                    let prefix: String = p.family.chars().take(3).collect();
                    format!("Patient?name={}&_count=20", enc(&prefix))
                }
                Shape::Chain => {
                    format!(
                        "Observation?subject:Patient.name={}&_count=20",
                        enc(p.family)
                    )
                }
                Shape::Has => {
                    // A rare lab code some patient really has (drawn like the data), so the
                    // result is small but not empty.
                    let code = (0..100_000)
                        .find_map(|_| {
                            let q = plan(seed, rng.random_range(0..patients));
                            q.observations
                                .iter()
                                .find(|o| !o.vital && rare.contains(&o.panel))
                                .map(|o| o.test().code)
                        })
                        .unwrap_or_else(|| PANELS[rare[rng.random_range(0..rare.len())]].code);
                    format!(
                        "Patient?_has:Observation:patient:code={}&_count=20",
                        enc(&format!("{LOINC}|{code}"))
                    )
                }
                Shape::Include => {
                    format!("Observation?subject=Patient/{pid}&_include=Observation:subject")
                }
                Shape::Sort => format!("Observation?subject=Patient/{pid}&_sort=-date&_count=20"),
                Shape::Total => {
                    // A condition code drawn as the data is: from a patient who has conditions.
                    let code = (0..1000)
                        .find_map(|_| {
                            let q = plan(seed, rng.random_range(0..patients));
                            let k = q.conditions.len();
                            (k > 0).then(|| {
                                CONDITIONS[q.conditions[rng.random_range(0..k)].concept].code
                            })
                        })
                        .unwrap_or(CONDITIONS[0].code);
                    format!(
                        "Condition?code={}&_total=accurate&_count=20",
                        enc(&format!("{SNOMED}|{code}"))
                    )
                }
                Shape::TokenDate => {
                    let o = &p.observations[rng.random_range(0..p.observations.len())];
                    let d1 = random_date(&mut rng);
                    format!(
                        "Observation?code={}&date=ge{d1}&_count=20",
                        enc(&format!("{LOINC}|{}", o.test().code))
                    )
                }
            }
        })
        .collect()
}

/// What a search Bundle says about its size.
#[derive(Deserialize)]
struct BundleHead {
    #[serde(default)]
    entry: Vec<EntryHead>,
    total: Option<u64>,
}

#[derive(Deserialize)]
struct EntryHead {
    search: Option<SearchHead>,
}

#[derive(Deserialize)]
struct SearchHead {
    mode: Option<String>,
}

struct Cell {
    shape: Shape,
    clients: usize,
    duration: f64,
    warmup: f64,
    probes: usize,
}

struct ClientStats {
    hist: Histogram<u64>,
    ok: u64,
    errors: u64,
}

async fn run_cell(
    cli: &Cli,
    url: &str,
    cell: &Cell,
    queries: Arc<Vec<String>>,
) -> anyhow::Result<serde_json::Value> {
    let base = url.trim_end_matches('/').to_string();
    let timeout = Duration::from_secs_f64(cli.timeout);
    let mut probe_conn = Connection::new(&base, timeout)?;
    let first_error = Arc::new(FirstError::default());

    // Probes: the same first queries on every server, one at a time, entries counted.
    let probes = cell.probes.min(queries.len());
    let (mut entries, mut matches, mut totals, mut with_total, mut probe_errors) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut probe_ms = Vec::with_capacity(probes);
    for q in queries.iter().take(probes) {
        let sent = Instant::now();
        match probe_conn.get(q, FHIR_JSON).await {
            Ok(body) => {
                probe_ms.push(sent.elapsed().as_secs_f64() * 1000.0);
                let b: BundleHead = serde_json::from_slice(&body)
                    .with_context(|| format!("{q}: not a Bundle: {}", snippet(&body)))?;
                entries += b.entry.len() as u64;
                matches += b
                    .entry
                    .iter()
                    .filter(|e| {
                        !matches!(
                            e.search.as_ref().and_then(|s| s.mode.as_deref()),
                            Some("include" | "outcome")
                        )
                    })
                    .count() as u64;
                if let Some(t) = b.total {
                    totals += t;
                    with_total += 1;
                }
            }
            Err((status, body)) => {
                probe_errors += 1;
                eprintln!("[query {}] {q} -> {status:?}: {body}", cli.label);
                first_error.record(
                    || json!({ "query": q, "status": status, "body": excerpt(&body, 1000) }),
                );
            }
        }
    }
    let answered = (probes as u64 - probe_errors).max(1) as f64;

    // The measured window, closed loop, queries round-robin after the probes.
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(cell.warmup);
    let stop_at = measure_from + Duration::from_secs_f64(cell.duration);
    let cursor = Arc::new(AtomicUsize::new(probes));
    let mut tasks = Vec::with_capacity(cell.clients);
    for _ in 0..cell.clients {
        let mut conn = Connection::new(&base, timeout)?;
        let (queries, cursor, first_error) = (queries.clone(), cursor.clone(), first_error.clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = ClientStats {
                hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid bounds"),
                ok: 0,
                errors: 0,
            };
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let q = &queries[cursor.fetch_add(1, Ordering::Relaxed) % queries.len()];
                let outcome = conn.get(q, FHIR_JSON).await;
                let elapsed = sent.elapsed();
                if sent < measure_from {
                    continue;
                }
                match outcome {
                    Ok(_) => {
                        stats.ok += 1;
                        stats.hist.saturating_record(elapsed.as_micros() as u64);
                    }
                    Err((status, body)) => {
                        stats.errors += 1;
                        first_error.record(|| json!({ "query": q, "status": status, "body": excerpt(&body, 1000) }));
                    }
                }
            }
            stats
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let (mut ok, mut errors) = (0u64, 0u64);
    for t in tasks {
        let s = t.await?;
        hist.add(&s.hist)?;
        ok += s.ok;
        errors += s.errors;
    }
    let ms = |q: f64| round3(hist.value_at_quantile(q) as f64 / 1000.0);
    let first_error = first_error.take();
    probe_ms.sort_by(f64::total_cmp);
    Ok(json!({
        "label": cli.label,
        "mode": "search",
        "shape": cell.shape,
        "clients": cell.clients,
        "url": base,
        "example": queries[0],
        "duration_s": cell.duration,
        "warmup_s": cell.warmup,
        "requests": ok,
        "errors": errors,
        "rps": round2(ok as f64 / cell.duration),
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": round3(hist.max() as f64 / 1000.0),
        "mean_ms": round3(hist.mean() / 1000.0),
        "probes": probes,
        "probe_errors": probe_errors,
        "probe_median_ms": probe_ms.get(probe_ms.len() / 2).map(|v| round3(*v)),
        "entries": round2(entries as f64 / answered),
        "matches": round2(matches as f64 / answered),
        "total": (with_total > 0).then(|| round2(totals as f64 / with_total as f64)),
        "first_error": first_error,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_deterministic_and_encoded() {
        for s in ALL_SHAPES {
            let a = queries(s, 42, 200, 20);
            assert_eq!(a, queries(s, 42, 200, 20));
            for q in &a {
                assert!(!q.contains('|') && !q.contains(' '), "{q}");
            }
        }
        let t = queries(Shape::Token, 42, 200, 1);
        assert!(
            t[0].starts_with("Observation?code=http%3A//loinc.org%7C"),
            "{}",
            t[0]
        );
        let n = queries(Shape::Name, 42, 2000, 200);
        assert!(
            n.iter().any(|q| q.contains('%')),
            "some prefixes carry accents"
        );
    }
}
