//! `ingest-cost`: where the CPU of ingesting one Synthea-like patient record goes, outside any
//! server: parsing the transaction Bundle, validating each resource against R4, extracting its
//! search index rows, and rendering it. Prints a Markdown table of microseconds per resource.
//! Compare with the server's resources/s in docs/benchmarks.md ("Ingest").

use std::time::Instant;

use serde_json::Value;

fn main() {
    let bundles: Vec<(String, usize)> = (0..200)
        .map(|i| hds_bench::synth::transaction_bundle(42, i, 1))
        .collect();
    let resources: usize = bundles.iter().map(|b| b.1).sum();
    let reg = hds_fhir_search::r4();
    // Warm the lazily built definitions and registry first.
    let _ = hds_fhir_model::r4();

    let t = Instant::now();
    let parsed: Vec<Value> = bundles
        .iter()
        .map(|(b, _)| serde_json::from_str(b).expect("JSON"))
        .collect();
    let parse = t.elapsed();
    let all: Vec<&Value> = parsed
        .iter()
        .flat_map(|b| {
            b["entry"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| &e["resource"])
        })
        .collect();

    let t = Instant::now();
    let issues: usize = all
        .iter()
        .map(|r| hds_fhir_model::r4().validate(r).len())
        .sum();
    let validate = t.elapsed();

    let t = Instant::now();
    let rows: usize = all
        .iter()
        .map(|r| hds_fhir_search::extract_with(reg, r).len())
        .sum();
    let extract = t.elapsed();

    // Part of the extraction above: the `_text`/`_content` words.
    let t = Instant::now();
    let lexemes: usize = all
        .iter()
        .map(|r| hds_fhir_search::fulltext::entry(r).content.len())
        .sum();
    let full_text = t.elapsed();

    let t = Instant::now();
    let bytes: usize = all.iter().map(|r| r.to_string().len()).sum();
    let render = t.elapsed();

    let per = |d: std::time::Duration| d.as_secs_f64() * 1e6 / resources as f64;
    println!(
        "{resources} resources ({bytes} bytes of JSON; {issues} validation issues; {rows} index rows; {lexemes} full-text lexemes)"
    );
    println!();
    println!("| step | µs per resource |");
    println!("|---|---:|");
    println!("| parse the Bundle | {:.1} |", per(parse));
    println!("| validate against R4 | {:.1} |", per(validate));
    println!("| extract search index rows | {:.1} |", per(extract));
    println!(
        "| of which `_text`/`_content` words | {:.1} |",
        per(full_text)
    );
    println!("| render JSON | {:.1} |", per(render));
}
