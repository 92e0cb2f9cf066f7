//! `hds import <files|dirs> --server URL`: loads NDJSON files and Bundles into a FHIR service
//! through its API, as Bundles of PUTs (a transaction each, one commit; a refused one is sent
//! again as a batch, to learn which lines were bad), with a progress bar and a state file to
//! resume.
//!
//! Every resource is written under an id: its own, or for one without an id a UUID derived
//! from its file, line and text, so that sending a batch again after an interruption writes
//! the same resources rather than duplicates. A line the server (or the JSON parser) refuses is
//! reported with its file and line number, and the rest goes on.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(clap::Args)]
pub struct ImportArgs {
    /// NDJSON files (one resource per line), JSON files (a Bundle or one resource), or
    /// directories holding them (`*.ndjson`, `*.jsonl`, `*.json`, read in name order).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// The FHIR service's base URL, e.g. `http://127.0.0.1:8080/fhir/fhir`.
    #[arg(long, env = "HDS_FHIR_URL")]
    server: String,
    /// A bearer token for the service.
    #[arg(long, env = "HDS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Get a token by client credentials from this token endpoint instead.
    #[arg(long, requires_all = ["client_id", "client_secret"], conflicts_with = "token")]
    token_url: Option<String>,
    #[arg(long)]
    client_id: Option<String>,
    #[arg(long, env = "HDS_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// Resources per batch Bundle (the service's transactionEntryLimit caps it).
    #[arg(long, default_value_t = 200)]
    batch_size: usize,
    /// Batch Bundles in flight at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// Where progress is recorded, to resume an interrupted run.
    #[arg(long, default_value = ".hds-import-state.json")]
    state: PathBuf,
    /// Start from the beginning, replacing an earlier run's state.
    #[arg(long)]
    restart: bool,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
}

/// How far each file got: every line before `offset` has been acknowledged by the server.
#[derive(Default, Serialize, Deserialize)]
struct State {
    server: String,
    files: BTreeMap<String, FileState>,
}

#[derive(Default, Clone, Serialize, Deserialize)]
struct FileState {
    offset: u64,
    line: u64,
    done: bool,
}

impl State {
    fn load(args: &ImportArgs) -> anyhow::Result<Self> {
        if args.restart || !args.state.exists() {
            return Ok(State {
                server: args.server.clone(),
                ..State::default()
            });
        }
        let text = std::fs::read_to_string(&args.state)
            .with_context(|| format!("cannot read {}", args.state.display()))?;
        let state: State = serde_json::from_str(&text)
            .with_context(|| format!("{} is not an import state file", args.state.display()))?;
        if state.server != args.server {
            bail!(
                "{} records an import into {}, not {}; use --restart or another --state",
                args.state.display(),
                state.server,
                args.server
            );
        }
        Ok(state)
    }

    /// Written whole to a temporary file and renamed, so a crash never leaves half a state.
    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}

/// Where a resource came from, to report it.
#[derive(Clone)]
struct Origin {
    file: usize,
    line: u64,
}

/// One batch Bundle to send, with the position it completes.
struct Batch {
    entries: Vec<Value>,
    origins: Vec<Origin>,
    file: usize,
    /// After this batch is acknowledged, the file is read up to here.
    end: FileState,
    /// A transaction or batch Bundle from a file, sent as it is.
    as_is: bool,
    /// Lines refused before sending (not JSON, not a resource), reported already.
    refused: u64,
}

#[derive(Default)]
struct Tally {
    imported: u64,
    refused: u64,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<bool> {
    let files = collect(&args.paths)?;
    if files.is_empty() {
        bail!("no .ndjson, .jsonl or .json files in the given paths");
    }
    let mut state = State::load(&args)?;
    let keys: Vec<String> = files
        .iter()
        .map(|f| std::path::absolute(f).map(|p| p.display().to_string()))
        .collect::<Result<_, _>>()?;
    let total: u64 = files
        .iter()
        .zip(&keys)
        .map(|(f, k)| {
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let st = state.files.get(k).cloned().unwrap_or_default();
            if st.done {
                0
            } else {
                size - st.offset.min(size)
            }
        })
        .sum();
    if total == 0 && !args.restart && args.state.exists() {
        eprintln!(
            "nothing left to import: {} records every file as done (--restart imports them again)",
            args.state.display()
        );
        return Ok(true);
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()?;
    let token = match (&args.token, &args.token_url) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(url)) => Some(client_credentials(&client, &args, url).await?),
        (None, None) => None,
    };
    let base = args.server.trim_end_matches('/').to_owned();
    let bar = progress_bar(total, args.quiet);
    let started = Instant::now();
    let mut tally = Tally::default();
    let start = state.files.clone();
    let batches = Reader::new(
        &files,
        &keys,
        &start,
        args.batch_size.clamp(1, 10_000),
        &bar,
    );
    let mut sent = futures_util::stream::iter(batches)
        .map(|b| {
            let (client, token, base) = (&client, token.as_deref(), base.as_str());
            async move {
                let b = b?;
                let reply = post(client, base, token, &b).await;
                Ok::<_, anyhow::Error>((b, reply))
            }
        })
        .buffered(args.concurrency.max(1));
    while let Some(next) = sent.next().await {
        let (batch, reply) = next?;
        let reply = reply?;
        tally.refused += batch.refused;
        report(&batch, &reply, &files, &bar, &mut tally);
        let key = &keys[batch.file];
        let before = state.files.get(key).map_or(0, |s| s.offset);
        bar.inc(batch.end.offset.saturating_sub(before));
        state.files.insert(key.clone(), batch.end.clone());
        state.save(&args.state)?;
        let secs = started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{} resources, {:.0}/s",
            tally.imported,
            tally.imported as f64 / secs
        ));
    }
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "imported {} resources from {} files in {secs:.1} s ({:.0}/s); {} refused",
        tally.imported,
        files.len(),
        tally.imported as f64 / secs.max(0.001),
        tally.refused
    );
    Ok(tally.refused == 0)
}

fn progress_bar(total: u64, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(total),
        if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {msg} ETA {eta}",
        )
        .expect("the template is valid"),
    );
    bar
}

/// The files named, directories expanded (recursively, in name order).
fn collect(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("cannot list {}", p.display()))?
                .map(|e| e.map(|e| e.path()))
                .collect::<Result<_, _>>()?;
            entries.sort();
            let (dirs, files): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.is_dir());
            out.extend(files.into_iter().filter(|f| {
                matches!(
                    f.extension().and_then(|e| e.to_str()),
                    Some("ndjson" | "jsonl" | "json")
                )
            }));
            out.extend(collect(&dirs)?);
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            bail!("{} is neither a file nor a directory", p.display());
        }
    }
    Ok(out)
}

fn is_ndjson(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()) != Some("json")
}

/// Reads the files lazily into batches, reporting lines that are not JSON resources as it
/// goes.
struct Reader<'a> {
    files: &'a [PathBuf],
    keys: &'a [String],
    /// Where the files stood when this run began.
    start: &'a BTreeMap<String, FileState>,
    batch_size: usize,
    bar: &'a ProgressBar,
    current: usize,
    open: Option<(BufReader<File>, FileState)>,
    /// Batches made from a JSON file, waiting to be handed out.
    queued: std::collections::VecDeque<Batch>,
}

impl<'a> Reader<'a> {
    fn new(
        files: &'a [PathBuf],
        keys: &'a [String],
        start: &'a BTreeMap<String, FileState>,
        batch_size: usize,
        bar: &'a ProgressBar,
    ) -> Self {
        Self {
            files,
            keys,
            start,
            batch_size,
            bar,
            current: 0,
            open: None,
            queued: Default::default(),
        }
    }

    fn next_batch(&mut self) -> anyhow::Result<Option<Batch>> {
        loop {
            if let Some(b) = self.queued.pop_front() {
                return Ok(Some(b));
            }
            let Some(path) = self.files.get(self.current) else {
                return Ok(None);
            };
            let st = self
                .start
                .get(&self.keys[self.current])
                .cloned()
                .unwrap_or_default();
            if st.done {
                self.current += 1;
                continue;
            }
            if !is_ndjson(path) {
                self.queued = self.json_file(path)?.into();
                self.current += 1;
                continue;
            }
            if self.open.is_none() {
                let mut f =
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                f.seek(SeekFrom::Start(st.offset))?;
                self.open = Some((BufReader::with_capacity(1 << 20, f), st));
            }
            if let Some(b) = self.ndjson_batch()? {
                return Ok(Some(b));
            }
            self.open = None;
            self.current += 1;
        }
    }

    /// The next batch of the open NDJSON file; the last one marks it done.
    fn ndjson_batch(&mut self) -> anyhow::Result<Option<Batch>> {
        let file = self.current;
        let path = &self.files[file];
        let (reader, pos) = self.open.as_mut().expect("a file is open");
        if pos.done {
            return Ok(None);
        }
        let mut entries = Vec::new();
        let mut origins = Vec::new();
        let mut refused = 0;
        let mut line = Vec::new();
        let mut written = HashSet::new();
        while entries.len() < self.batch_size {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 {
                pos.done = true;
                break;
            }
            pos.offset += n as u64;
            pos.line += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Value>(&line) {
                Ok(resource) => {
                    match entry(resource, &format!("{}:{}", path.display(), pos.line)) {
                        Ok(e) => {
                            let key = e["request"]["url"].as_str().unwrap_or_default();
                            if !written.insert(key.to_owned()) {
                                // The same resource again: it opens the next batch (a
                                // transaction writes a resource once, and versions follow
                                // the file).
                                reader.seek_relative(-(n as i64))?;
                                pos.offset -= n as u64;
                                pos.line -= 1;
                                break;
                            }
                            entries.push(e);
                            origins.push(Origin {
                                file,
                                line: pos.line,
                            });
                        }
                        Err(why) => {
                            refused += 1;
                            say(self.bar, format!("{}:{}: {why}", path.display(), pos.line));
                        }
                    }
                }
                Err(e) => {
                    refused += 1;
                    say(
                        self.bar,
                        format!("{}:{}: not valid JSON: {e}", path.display(), pos.line),
                    );
                }
            }
        }
        Ok(Some(Batch {
            entries,
            origins,
            file,
            end: pos.clone(),
            as_is: false,
            refused,
        }))
    }

    /// A JSON file: a transaction or batch Bundle goes as it is; any other Bundle's resources
    /// and a lone resource go in batches like NDJSON lines (numbered by entry).
    fn json_file(&self, path: &Path) -> anyhow::Result<Vec<Batch>> {
        let file = self.current;
        let size = path.metadata()?.len();
        let done = FileState {
            offset: size,
            line: 0,
            done: true,
        };
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let value: Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => {
                say(self.bar, format!("{}: not valid JSON: {e}", path.display()));
                return Ok(vec![Batch {
                    entries: vec![],
                    origins: vec![],
                    file,
                    end: done,
                    as_is: false,
                    refused: 1,
                }]);
            }
        };
        let is_bundle = value["resourceType"] == "Bundle";
        if is_bundle && matches!(value["type"].as_str(), Some("transaction" | "batch")) {
            let n = value["entry"].as_array().map_or(0, Vec::len);
            return Ok(vec![Batch {
                origins: (1..=n as u64).map(|line| Origin { file, line }).collect(),
                entries: vec![value],
                file,
                end: done,
                as_is: true,
                refused: 0,
            }]);
        }
        let resources: Vec<Value> = if is_bundle {
            value["entry"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|e| e["resource"].clone())
                .collect()
        } else {
            vec![value]
        };
        let mut batches = Vec::new();
        let mut entries = Vec::new();
        let mut origins = Vec::new();
        let mut refused = 0;
        for (i, r) in resources.into_iter().enumerate() {
            let line = i as u64 + 1;
            match entry(r, &format!("{}#{line}", path.display())) {
                Ok(e) => {
                    entries.push(e);
                    origins.push(Origin { file, line });
                }
                Err(why) => {
                    refused += 1;
                    say(self.bar, format!("{}: entry {line}: {why}", path.display()));
                }
            }
            if entries.len() == self.batch_size {
                batches.push(Batch {
                    entries: std::mem::take(&mut entries),
                    origins: std::mem::take(&mut origins),
                    file,
                    end: FileState::default(),
                    as_is: false,
                    refused: std::mem::take(&mut refused),
                });
            }
        }
        batches.push(Batch {
            entries,
            origins,
            file,
            end: FileState::default(),
            as_is: false,
            refused,
        });
        // Only the last batch completes the file.
        if let Some(last) = batches.last_mut() {
            last.end = done;
        }
        Ok(batches)
    }
}

impl Iterator for Reader<'_> {
    type Item = anyhow::Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch().transpose()
    }
}

/// A batch entry writing `resource` under its id (or one derived from where it came from).
fn entry(mut resource: Value, origin: &str) -> Result<Value, String> {
    let Some(rt) = resource["resourceType"].as_str().map(str::to_owned) else {
        return Err("no resourceType: not a FHIR resource".into());
    };
    let id = match resource.get("id") {
        Some(Value::String(id)) => id.clone(),
        Some(_) => return Err("id is not a string".into()),
        None => {
            let id = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                format!("{origin}\n{resource}").as_bytes(),
            )
            .to_string();
            resource["id"] = Value::String(id.clone());
            id
        }
    };
    Ok(json!({
        "resource": resource,
        "request": {"method": "PUT", "url": format!("{rt}/{id}")},
    }))
}

/// Sends one batch of lines as a transaction (one commit on the server); if the server refuses
/// it, as a batch, whose answer says which entries it refused and why.
async fn post(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    b: &Batch,
) -> anyhow::Result<Value> {
    if b.entries.is_empty() {
        return Ok(json!({"resourceType": "Bundle", "entry": []}));
    }
    if b.as_is {
        return send(client, base, token, b.entries[0].to_string()).await;
    }
    let bundle = |kind: &str| json!({"resourceType": "Bundle", "type": kind, "entry": b.entries});
    let reply = send(client, base, token, bundle("transaction").to_string()).await?;
    if reply.get("refused").is_none() {
        return Ok(reply);
    }
    send(client, base, token, bundle("batch").to_string()).await
}

/// Posts a Bundle, retrying what may pass later (no connection, 429, 5xx) a few times.
async fn send(
    client: &reqwest::Client,
    base: &str,
    token: Option<&str>,
    body: String,
) -> anyhow::Result<Value> {
    // Shared, not copied, between attempts.
    let body = bytes::Bytes::from(body);
    let mut delay = Duration::from_millis(500);
    for attempt in 1.. {
        let mut req = client
            .post(format!("{base}/"))
            .header("content-type", "application/fhir+json")
            .header("accept", "application/fhir+json")
            .header("prefer", "return=minimal")
            .body(body.clone());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let retry = match req.send().await {
            Ok(resp) => {
                let status = resp.status();
                let bytes = resp.bytes().await?;
                let reply: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                if status.is_success() || (status.is_client_error() && status.as_u16() != 429) {
                    if matches!(status.as_u16(), 401 | 403) {
                        bail!(
                            "the server refused the import ({status}): {}",
                            diagnostics(&reply)
                        );
                    }
                    return Ok(if status.is_success() {
                        reply
                    } else {
                        json!({"refused": status.as_u16(), "outcome": reply})
                    });
                }
                format!("{status}: {}", diagnostics(&reply))
            }
            Err(e) => e.to_string(),
        };
        if attempt == 4 {
            bail!("{base}: {retry} (gave up after {attempt} attempts; run again to resume)");
        }
        tokio::time::sleep(delay).await;
        delay *= 2;
    }
    unreachable!("the loop returns or fails")
}

/// Prints each refused entry with its file and line, and counts.
fn report(b: &Batch, reply: &Value, files: &[PathBuf], bar: &ProgressBar, tally: &mut Tally) {
    let place = |o: &Origin| {
        let f = files[o.file].display();
        if is_ndjson(&files[o.file]) {
            format!("{f}:{}", o.line)
        } else {
            format!("{f}: entry {}", o.line)
        }
    };
    if let Some(status) = reply.get("refused") {
        // The whole Bundle was refused: a transaction that failed, or a malformed Bundle.
        let why = diagnostics(&reply["outcome"]);
        let what = if b.as_is {
            files[b.file].display().to_string()
        } else {
            b.origins.first().map(&place).unwrap_or_default()
        };
        say(bar, format!("{what}: refused ({status}): {why}"));
        tally.refused += b.origins.len() as u64;
        return;
    }
    let entries = reply["entry"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for (i, o) in b.origins.iter().enumerate() {
        let e = entries.get(i);
        let status = e
            .and_then(|e| e["response"]["status"].as_str())
            .unwrap_or("");
        if status.starts_with('2') {
            tally.imported += 1;
        } else {
            tally.refused += 1;
            let why = e.map_or_else(
                || "no answer for this entry".to_owned(),
                |e| diagnostics(&e["response"]["outcome"]),
            );
            say(bar, format!("{}: {status} {why}", place(o)));
        }
    }
}

/// A line of report: above the progress bar, or plainly when there is none to draw.
fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

fn diagnostics(outcome: &Value) -> String {
    let texts: Vec<String> = outcome["issue"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            let text = i["diagnostics"].as_str().unwrap_or("");
            match i["expression"][0].as_str() {
                Some(at) => format!("{text} (at {at})"),
                None => text.to_owned(),
            }
        })
        .collect();
    if texts.is_empty() {
        "no explanation was given".into()
    } else {
        texts.join("; ")
    }
}

async fn client_credentials(
    client: &reqwest::Client,
    args: &ImportArgs,
    url: &str,
) -> anyhow::Result<String> {
    let form = format!(
        "grant_type=client_credentials&client_id={}&client_secret={}&resource={}",
        enc(args.client_id.as_deref().unwrap_or_default()),
        enc(args.client_secret.as_deref().unwrap_or_default()),
        enc(args.server.trim_end_matches('/')),
    );
    let resp = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .with_context(|| format!("token endpoint {url}"))?;
    let status = resp.status();
    let body: Value = serde_json::from_slice(&resp.bytes().await?).unwrap_or(Value::Null);
    match body["access_token"].as_str() {
        Some(t) if status.is_success() => Ok(t.to_owned()),
        _ => bail!("token endpoint {url} answered {status}: {body}"),
    }
}

fn enc(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
