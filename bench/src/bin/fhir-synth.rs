//! `fhir-synth`: deterministic, Synthea-like FHIR R4 NDJSON for the search benchmark
//! (see `hds_bench` and docs/benchmarks.md, "Search at scale").
//!
//! About 25 resources per patient (40,000 patients ≈ 1M resources), ordered by type so that a
//! loader finishing each type before the next never meets an unresolved reference. Streams:
//! nothing but one patient's plan is held in memory.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use hds_bench::synth::{TYPES, write_ndjson};

#[derive(Parser, Debug)]
#[command(about = "Synthea-like FHIR R4 NDJSON, deterministic from a seed")]
struct Args {
    /// Number of patients (≈25 resources each).
    #[arg(long, default_value_t = 1000)]
    patients: usize,
    /// Seed; the same seed and size give byte-identical output.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Output file; stdout when absent or `-`.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut out: Box<dyn Write> = match &args.out {
        Some(p) if p.as_os_str() != "-" => {
            Box::new(BufWriter::with_capacity(1 << 20, File::create(p)?))
        }
        _ => Box::new(BufWriter::with_capacity(1 << 20, std::io::stdout().lock())),
    };
    let counts = write_ndjson(args.seed, args.patients, &mut out)?;
    let total: usize = counts.iter().sum();
    let by_type: Vec<String> = TYPES
        .iter()
        .zip(counts)
        .map(|(t, n)| format!("{t} {n}"))
        .collect();
    eprintln!(
        "fhir-synth: {} patients, {total} resources ({:.1} per patient) in {:.1} s: {}",
        args.patients,
        total as f64 / args.patients.max(1) as f64,
        started.elapsed().as_secs_f64(),
        by_type.join(", ")
    );
    Ok(())
}
