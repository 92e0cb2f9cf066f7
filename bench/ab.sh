#!/usr/bin/env bash
# A/B of hds binaries on transaction ingest: each binary on a fresh database every round, 1 and 8
# clients, rounds alternating the binaries, so the drift of a shared machine hits every binary
# alike.
#   bench/ab.sh /path/to/hds-a /path/to/hds-b ...
# Prints one line per cell: round, binary, clients, resources/s, Bundle p50, and the CPU time per
# resource of PostgreSQL (every postgres process) and of hds, from /proc: figures per resource
# move far less with the machine's neighbours than throughput does. Needs the release load
# generator (`cargo build --release -p hds-bench`) and PostgreSQL as for bench/run.sh.
# Knobs: BENCH_DURATION (s per cell, 8), BENCH_AB_ROUNDS (2), BENCH_AB_CLIENTS ("1 8"),
# BENCH_AB_PORT, BENCH_PG.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib.sh
source "$root/scripts/lib.sh"
# shellcheck source=bench/ab-lib.sh
source "$root/bench/ab-lib.sh"
load="$CARGO_TARGET_DIR/release/fhir-load"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
port="${BENCH_AB_PORT:-18191}"
duration="${BENCH_DURATION:-8}"
rounds="${BENCH_AB_ROUNDS:-2}"
clients="${BENCH_AB_CLIENTS:-1 8}"
[[ $# -ge 1 ]] || { echo "usage: bench/ab.sh HDS_BINARY..." >&2; exit 2; }
[[ -x $load ]] || { echo "no load generator at $load" >&2; exit 1; }
config="$(mktemp)"
log="$(mktemp)"
trap 'rm -f "$config" "$log"' EXIT
cat >"$config" <<YAML
name: ab
workspace: ab
postgres: {url: '$pg/hds_ab', poolSize: 32}
auth: {mode: none}
audit: {log: "off"}
YAML
per_resource() { # ticks resources -> ms
    awk -v t="$1" -v n="$2" -v hz="$hz" 'BEGIN { printf "%.3f", (n > 0 ? t * 1000 / hz / n : 0) }'
}
for round in $(seq "$rounds"); do
    for bin in "$@"; do
        psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS hds_ab WITH (FORCE)" -qc "CREATE DATABASE hds_ab"
        start_hds fhir "$bin" "$config" "$port" "$log"
        for c in $clients; do
            pg_mark
            hds0=$(ticks "$pid")
            out=$("$load" --url "http://127.0.0.1:$port" --mode transaction --concurrency "$c" \
                --duration "$duration" --warmup 2 --seed $((round * 100 + c)))
            pg_ticks=$(pg_since)
            hds_ticks=$(($(ticks "$pid") - hds0))
            # The warm-up's resources are not in the count but their CPU is: about 2 s of 10.
            n=$(jq '.resources * (.duration_s + .warmup_s) / .duration_s | floor' <<<"$out")
            echo "round $round $(basename "$bin") c=$c $(jq -r '"\(.resources_per_s) resources/s, p50 \(.p50_ms) ms"' <<<"$out")," \
                "PostgreSQL $(per_resource "$pg_ticks" "$n") ms/resource, hds $(per_resource "$hds_ticks" "$n") ms/resource"
        done
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
