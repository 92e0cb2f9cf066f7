//! `EXPLAIN (ANALYZE, BUFFERS)` of the SQL hds runs for search queries, straight against a
//! loaded database: reads `Type?query` lines (as `fhir-search-bench query --print` writes them)
//! on stdin and prints each query with its plans. `bench/explain.sh` drives it; the plans in
//! docs/ARCHITECTURE.md come from it.

use anyhow::{Context, bail};
use clap::Parser;
use std::io::BufRead;

#[derive(Parser)]
struct Cli {
    /// PostgreSQL URL of the database hds serves (e.g. the search benchmark's).
    #[arg(long)]
    db: String,
    /// Page size, as the server would use it when `_count` is absent.
    #[arg(long, default_value_t = 20)]
    count: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let pool = deadpool_postgres::Config {
        url: Some(cli.db.clone()),
        ..Default::default()
    }
    .create_pool(None, tokio_postgres::NoTls)?;
    let client = pool
        .get()
        .await
        .with_context(|| format!("connecting to {}", cli.db))?;
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((rt, qs)) = line.split_once('?') else {
            bail!("expected Type?query, got {line}");
        };
        let pairs: Vec<(String, String)> =
            form_urlencoded::parse(qs.as_bytes()).into_owned().collect();
        let q = hds_fhir_search::parse(rt, &pairs)?;
        let count = q.count.unwrap_or(cli.count);
        let plan = hds_fhir_search::explain(&client, rt, &q, count).await?;
        println!(
            "### {line}\n\n```\n{}```\n",
            plan.trim_end_matches('\n').to_owned() + "\n"
        );
    }
    Ok(())
}
