#!/usr/bin/env bash
# A/B of hds binaries on transaction ingest: each binary on a fresh database, 1 and 8 clients,
# two rounds alternating, so the drift of a shared machine hits every binary alike.
#   bench/ab.sh /path/to/hds-a /path/to/hds-b ...
# Prints one line per cell: round, binary, clients, resources/s. Needs the release load
# generator (`cargo build --release -p hds-bench`) and PostgreSQL as for bench/run.sh.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
load="$CARGO_TARGET_DIR/release/fhir-load"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
port="${BENCH_AB_PORT:-18191}"
duration="${BENCH_DURATION:-8}"
[[ $# -ge 1 ]] || { echo "usage: bench/ab.sh HDS_BINARY..." >&2; exit 2; }
[[ -x $load ]] || { echo "no load generator at $load" >&2; exit 1; }
config="$(mktemp)"
trap 'rm -f "$config"' EXIT
for round in 1 2; do
    for bin in "$@"; do
        psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS hds_ab WITH (FORCE)" -qc "CREATE DATABASE hds_ab"
        cat >"$config" <<YAML
name: ab
workspace: ab
listen: 127.0.0.1:$port
postgres: {url: '$pg/hds_ab', poolSize: 32}
auth: {mode: none}
audit: {log: "off"}
YAML
        RUST_LOG=warn "$bin" fhir --config "$config" >/dev/null 2>&1 &
        pid=$!
        for _ in $(seq 50); do
            curl -sf "http://127.0.0.1:$port/health/check" >/dev/null && break
            sleep 0.2
        done
        for c in 1 8; do
            rate=$("$load" --url "http://127.0.0.1:$port" --mode transaction --concurrency "$c" \
                --duration "$duration" --warmup 2 --seed $((round * 100 + c)) |
                grep -o '"resources_per_s":[0-9.]*' | cut -d: -f2)
            echo "round $round $(basename "$bin") c=$c $rate"
        done
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
