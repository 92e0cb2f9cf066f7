//! Throughput of the search indexer's workload: every R4 SearchParameter expression on every
//! R4 example resource it applies to, plus `Patient.name` on the Patient example alone.
//!
//! `cargo run --release -p hds-fhirpath --example bench`
//! (needs the package from `bash scripts/fetch-r4-package.sh`, or `HDS_R4_PACKAGE_DIR`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hds_fhirpath::Expression;
use serde_json::Value;

fn main() {
    let base = std::env::var_os("HDS_R4_PACKAGE_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/hds/r4-examples"))
        })
        .unwrap_or_default();
    let dir = base.join("package");
    let read = |name: &str| -> Value {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| {
            eprintln!(
                "{}: {e}; run `bash scripts/fetch-r4-package.sh` first",
                dir.display()
            );
            std::process::exit(1);
        });
        serde_json::from_str(&text).expect("valid JSON")
    };

    let bundle = read("Bundle-searchParams.json");
    let mut params: Vec<(Vec<String>, Expression)> = Vec::new();
    for entry in bundle["entry"].as_array().into_iter().flatten() {
        let r = &entry["resource"];
        if let Some(src) = r["expression"].as_str() {
            let base = r["base"].as_array().into_iter().flatten();
            let base = base.filter_map(Value::as_str).map(str::to_owned).collect();
            params.push((base, Expression::parse(src).expect("R4 expressions parse")));
        }
    }
    let mut examples = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("package dir") {
        let name = entry
            .expect("entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".json") && !name.starts_with("Bundle-") && name != "package.json" {
            let value = read(&name);
            if let Some(rt) = value["resourceType"].as_str().map(str::to_owned) {
                examples.push((rt, value));
            }
        }
    }
    // The work list: (expression, resource) pairs the indexer would evaluate.
    let mut work = Vec::new();
    for (rt, resource) in &examples {
        for (base, expr) in &params {
            if base
                .iter()
                .any(|b| b == rt || b == "Resource" || b == "DomainResource")
            {
                work.push((expr, resource));
            }
        }
    }

    let (mut evaluations, mut items, mut errors) = (0u64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        for (expr, resource) in &work {
            match expr.evaluate(resource) {
                Ok(out) => items += out.len() as u64,
                Err(_) => errors += 1,
            }
        }
        evaluations += work.len() as u64;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "all R4 search expressions x {} examples: {} pairs, {:.0} evaluations/s ({:.2} µs each), \
         {} items, {} errors",
        examples.len(),
        work.len(),
        evaluations as f64 / secs,
        secs * 1e6 / evaluations as f64,
        items,
        errors
    );

    let patient = read("Patient-example.json");
    for src in [
        "Patient.name",
        "Patient.telecom.where(system='email')",
        "Patient.deceased.exists() and Patient.deceased != false",
    ] {
        let expr = Expression::parse(src).expect("parses");
        let n = 1_000_000u32;
        let start = Instant::now();
        let mut total = 0usize;
        for _ in 0..n {
            total += expr
                .evaluate(std::hint::black_box(&patient))
                .map_or(0, |v| v.len());
        }
        let per = start.elapsed().as_secs_f64() * 1e9 / f64::from(n);
        println!("{src} on Patient-example: {per:.0} ns per evaluation ({total} items)");
    }
}
