#!/usr/bin/env bash
# FHIR create/read/ingest benchmark: hds against helios-hfs 0.2.7, same machine, same
# PostgreSQL, same load generator, in one run. Ingest is Synthea-like transaction Bundles (one
# patient's record each), also set against the limit: a PostgreSQL COPY of the same resources'
# JSON into a bare table. Prints Markdown tables; raw JSON lines and server logs go to
# $HDS_CACHE/bench-results/ (outside the repo). Idempotent: rebuilds only what is missing and
# recreates the databases every run.
#
# Knobs (environment): BENCH_MODES ("create read transaction"), BENCH_DURATION (s per cell, 10),
# BENCH_WARMUP (s, 2), BENCH_CLIENTS ("1 8 32"), BENCH_SEED (patients created before a read
# cell, 1000), BENCH_COPY_PATIENTS (patients in the COPY baseline, 4000), BENCH_POOL
# (PostgreSQL connections per server, 32), BENCH_PG (server URL without database),
# BENCH_HDS_PORT, BENCH_HFS_PORT, HDS_CACHE. BENCH_PEER=none measures hds alone (no hfs build
# or server).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HDS_CACHE:-$HOME/.cache/hds}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-2}"
clients="${BENCH_CLIENTS:-1 8 32}"
modes="${BENCH_MODES:-create read transaction}"
copy_patients="${BENCH_COPY_PATIENTS:-4000}"
seed="${BENCH_SEED:-1000}"
pool="${BENCH_POOL:-32}"
hds_port="${BENCH_HDS_PORT:-18180}"
hfs_port="${BENCH_HFS_PORT:-18181}"
peer="${BENCH_PEER:-hfs}"
servers="hds"
[[ $peer == none ]] || servers="hds hfs"
hfs_version=0.2.7
hfs_root="$cache/peers/helios-hfs-$hfs_version"
hfs_bin="$hfs_root/bin/hfs"
hfs_data="$cache/peers/hfs-data-r4"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$cache/bench-results"
results="$out/$stamp.jsonl"
mkdir -p "$out" "$cache/peers"

log() { echo "[bench] $*" >&2; }

pids=()
cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT INT TERM

# --- builds ---------------------------------------------------------------------------------
log "building hds and the load generator (release)"
(cd "$root" && cargo build --release -q -p hds -p hds-bench)
hds_bin="$CARGO_TARGET_DIR/release/hds"
load_bin="$CARGO_TARGET_DIR/release/fhir-load"
synth_bin="$CARGO_TARGET_DIR/release/fhir-synth"

# helios-hfs is built outside the repo, once. A lock makes concurrent runs build it only once;
# an install someone started by hand is waited for rather than duplicated.
ensure_hfs() {
    [[ -x "$hfs_bin" ]] && return 0
    while pgrep -f "cargo install helios-hfs --version $hfs_version" >/dev/null; do
        log "waiting for a running helios-hfs build to finish"
        sleep 20
    done
    (
        flock 9
        if [[ ! -x "$hfs_bin" ]]; then
            log "building helios-hfs $hfs_version into $hfs_root (takes a while)"
            cargo install helios-hfs --version "$hfs_version" --no-default-features \
                --features R4,sqlite,postgres,skip-r6-download --root "$hfs_root" \
                >>"$cache/peers/helios-build.log" 2>&1
        fi
    ) 9>"$cache/peers/helios-hfs.lock"
    [[ -x "$hfs_bin" ]] || { log "no hfs binary at $hfs_bin; see $cache/peers/helios-build.log"; exit 1; }
}
[[ $peer == none ]] || ensure_hfs

# Without search-parameters-r4.json hfs falls back to a minimal built-in set and indexes far
# less per create than hds does; give it the full R4 set (the SearchParameter resources of the
# official R4 package) so both servers do comparable index work.
if [[ $peer != none && ! -s "$hfs_data/search-parameters-r4.json" ]]; then
    pkg="$("$root/scripts/fetch-r4-package.sh")"
    mkdir -p "$hfs_data"
    jq -s '{resourceType: "Bundle", type: "collection", entry: [.[] | {resource: .}]}' \
        "$pkg"/SearchParameter-*.json >"$hfs_data/search-parameters-r4.json.tmp"
    mv "$hfs_data/search-parameters-r4.json.tmp" "$hfs_data/search-parameters-r4.json"
fi

# --- fresh databases ------------------------------------------------------------------------
for db in hds_bench hfs_bench copy_bench; do
    psql -q "$pg/postgres" -c "drop database if exists $db with (force)" -c "create database $db"
done

# --- servers --------------------------------------------------------------------------------
cat >"$out/$stamp-hds.yaml" <<EOF
name: bench
postgres: {url: "$pg/hds_bench", poolSize: $pool}
auth: {mode: none}
EOF
# Request logging off on both sides: log formatting would be measured, not the server.
RUST_LOG=warn "$hds_bin" fhir --config "$out/$stamp-hds.yaml" --listen "127.0.0.1:$hds_port" \
    >"$out/$stamp-hds.log" 2>&1 &
pids+=($!)

if [[ $peer != none ]]; then
    # Auth (HFS_AUTH_ENABLED) and audit (HFS_AUDIT_BACKEND) are off by default in hfs 0.2.7.
    (
        cd "$hfs_data"
        HFS_STORAGE_BACKEND=postgres \
            HFS_DATABASE_URL="$pg/hfs_bench" \
            HFS_SERVER_HOST=127.0.0.1 HFS_SERVER_PORT="$hfs_port" \
            HFS_BASE_URL="http://127.0.0.1:$hfs_port" \
            HFS_PG_MAX_CONNECTIONS="$pool" \
            HFS_DATA_DIR="$hfs_data" \
            HFS_UI_ENABLED=false HFS_LOG_LEVEL=warn \
            exec "$hfs_bin"
    ) >"$out/$stamp-hfs.log" 2>&1 &
    pids+=($!)
fi

wait_ready() { # name url pid
    for _ in $(seq 1 240); do
        if curl -fs -o /dev/null "$2"; then
            log "$1 ready"
            return 0
        fi
        kill -0 "$3" 2>/dev/null || { log "$1 exited; log:"; tail -20 "$out/$stamp-$1.log" >&2; exit 1; }
        sleep 0.5
    done
    log "$1 not ready after 120 s"
    exit 1
}
wait_ready hds "http://127.0.0.1:$hds_port/health/check" "${pids[0]}"
[[ $peer == none ]] || wait_ready hfs "http://127.0.0.1:$hfs_port/health" "${pids[1]}"

# --- measurements ---------------------------------------------------------------------------
# Cells alternate hds/hfs so slow drifts of the shared machine hit both servers alike.
for mode in $modes; do
    for c in $clients; do
        for server in $servers; do
            port=$hds_port
            [[ $server == hfs ]] && port=$hfs_port
            log "$server $mode c=$c"
            "$load_bin" --url "http://127.0.0.1:$port" --mode "$mode" --concurrency "$c" \
                --duration "$duration" --warmup "$warmup" --seed "$seed" --label "$server" \
                | tee -a "$results" >&2
        done
    done
done

# --- the limit: COPY of the same JSON into a bare table -------------------------------------
# The generator's NDJSON is the resources of the transaction cells (same generator, same sizes),
# written to a file first so only the COPY is timed. CSV with quote and delimiter bytes that
# never occur in JSON text loads each line verbatim.
copy_rate=""
if [[ " $modes " == *" transaction "* ]]; then
    ndjson="$out/$stamp-copy.ndjson"
    "$synth_bin" --patients "$copy_patients" --seed 42 --out "$ndjson" 2>/dev/null
    lines=$(wc -l <"$ndjson")
    psql -q "$pg/copy_bench" -c "create table raw_resources (body jsonb not null)"
    t0=$(date +%s.%N)
    psql -q "$pg/copy_bench" -c "\\copy raw_resources (body) from '$ndjson' with (format csv, quote e'\\x01', delimiter e'\\x02')"
    t1=$(date +%s.%N)
    copy_rate=$(awk -v n="$lines" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", n / (b - a) }')
    log "COPY: $lines resources in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s ($copy_rate/s)"
    echo "{\"label\":\"copy\",\"mode\":\"copy\",\"resources\":$lines,\"resources_per_s\":$copy_rate}" >>"$results"
    rm -f "$ndjson"
fi

# --- report ---------------------------------------------------------------------------------
{
    echo "| operation | clients | hds req/s | hds p50 ms | hds p99 ms | hfs req/s | hfs p50 ms | hfs p99 ms | hds/hfs req/s | errors hds/hfs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -rs '
        group_by([.mode, .concurrency]) | sort_by(.[0].mode, .[0].concurrency) | .[]
        | (map(select(.label == "hds"))[0]) as $a | (map(select(.label == "hfs"))[0]) as $b
        | ($b // {rps: "—", p50_ms: "—", p99_ms: "—", errors: "—"}) as $b
        | "| \($a.mode) | \($a.concurrency) | \($a.rps) | \($a.p50_ms) | \($a.p99_ms) | \($b.rps) | \($b.p50_ms) | \($b.p99_ms) | "
          + (if ($b.rps | type) == "number" and $b.rps > 0 then "\(($a.rps / $b.rps * 100 | round) / 100)×" else "n/a" end)
          + " | \($a.errors)/\($b.errors) |"' <(jq -c 'select(.mode != "copy")' "$results")
    if [[ -n $copy_rate ]]; then
        echo
        echo "| ingest (transaction Bundles) | clients | hds resources/s | hfs resources/s | hds/hfs | COPY resources/s | hds/COPY |"
        echo "|---|---:|---:|---:|---:|---:|---:|"
        jq -rs --argjson copy "$copy_rate" '
            map(select(.mode == "transaction")) | group_by(.concurrency) | .[]
            | (map(select(.label == "hds"))[0]) as $a | (map(select(.label == "hfs"))[0]) as $b
            | "| one patient per Bundle | \($a.concurrency) | \($a.resources_per_s) | \($b.resources_per_s // "—") | "
              + (if $b and $b.resources_per_s > 0 then "\(($a.resources_per_s / $b.resources_per_s * 100 | round) / 100)×" else "n/a" end)
              + " | \($copy) | \(($a.resources_per_s / $copy * 100 | round))% |"' "$results"
    fi
} | tee "$out/$stamp.md"
log "raw results: $results; server logs: $out/$stamp-{hds,hfs}.log"
