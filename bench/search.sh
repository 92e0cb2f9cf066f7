#!/usr/bin/env bash
# FHIR search benchmark at scale: hds against helios-hfs 0.2.7 on the same Synthea-like data
# (≈25 resources per patient, 40,000 patients ≈ 1M resources), same machine, same PostgreSQL,
# same client, in one run. Prints a Markdown table; raw JSON lines and server logs go to
# $HDS_CACHE/bench-results/ (outside the repo). See docs/benchmarks.md, "Search at scale".
#
# Loading 1M resources takes long, so a database is loaded only when it does not already hold
# this data: after a successful load and VACUUM ANALYZE the database's comment records the size,
# seed and generator (a hash of bench/src/synth.rs) plus the load figures, and a later run with
# the same settings reuses it. BENCH_RELOAD=1 drops and reloads anyway.
#
# Knobs (environment): BENCH_PATIENTS (40000), BENCH_SEED (42), BENCH_DURATION (s per cell,
# 10), BENCH_WARMUP (s, 2), BENCH_CLIENTS ("1 8"), BENCH_SHAPES (comma list, all), BENCH_PROBES
# (queries whose entries are counted, 10), BENCH_LOAD_CONCURRENCY (16), BENCH_POOL
# (PostgreSQL connections per server, 32), BENCH_PG (server URL without database),
# BENCH_HDS_PORT, BENCH_HFS_PORT, BENCH_RELOAD, HDS_CACHE. BENCH_PEER=none measures hds alone;
# without the hfs binary (built by bench/run.sh) hds runs alone too.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HDS_CACHE:-$HOME/.cache/hds}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
patients="${BENCH_PATIENTS:-40000}"
seed="${BENCH_SEED:-42}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-2}"
clients="${BENCH_CLIENTS:-1 8}"
shapes="${BENCH_SHAPES:-token,reference,date,name,chain,has,include,sort,total,token-date}"
probes="${BENCH_PROBES:-10}"
load_concurrency="${BENCH_LOAD_CONCURRENCY:-16}"
pool="${BENCH_POOL:-32}"
hds_port="${BENCH_HDS_PORT:-18280}"
hfs_port="${BENCH_HFS_PORT:-18281}"
reload="${BENCH_RELOAD:-0}"
peer="${BENCH_PEER:-hfs}"
hfs_version=0.2.7
hfs_bin="$cache/peers/helios-hfs-$hfs_version/bin/hfs"
hfs_data="$cache/peers/hfs-data-r4"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$cache/bench-results"
results="$out/$stamp-search.jsonl"
mkdir -p "$out"

log() { echo "[search-bench] $*" >&2; }

if [[ $peer != none && ! -x $hfs_bin ]]; then
    log "no hfs binary at $hfs_bin (bench/run.sh builds it); measuring hds alone"
    peer=none
fi
servers="hds"
[[ $peer == none ]] || servers="hds hfs"

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
log "building hds and the benchmark tools (release)"
(cd "$root" && cargo build --release -q -p hds -p hds-bench)
hds_bin="$CARGO_TARGET_DIR/release/hds"
synth_bin="$CARGO_TARGET_DIR/release/fhir-synth"
bench_bin="$CARGO_TARGET_DIR/release/fhir-search-bench"

# The full R4 SearchParameter set for hfs, as in bench/run.sh (without it hfs falls back to a
# minimal built-in set and could not answer most of these queries).
if [[ $peer != none && ! -s "$hfs_data/search-parameters-r4.json" ]]; then
    pkg="$("$root/scripts/fetch-r4-package.sh")"
    mkdir -p "$hfs_data"
    jq -s '{resourceType: "Bundle", type: "collection", entry: [.[] | {resource: .}]}' \
        "$pkg"/SearchParameter-*.json >"$hfs_data/search-parameters-r4.json.tmp"
    mv "$hfs_data/search-parameters-r4.json.tmp" "$hfs_data/search-parameters-r4.json"
fi

# --- databases: reuse when they hold this data ----------------------------------------------
marker="hds-search-bench patients=$patients seed=$seed synth=$(sha256sum "$root/bench/src/synth.rs" | cut -c1-12)"
db_of() { echo "${1}_search_bench"; }
comment_of() { # db
    psql -tAq "$pg/postgres" -c \
        "select coalesce(shobj_description(oid, 'pg_database'), '') from pg_database where datname = '$1'"
}
to_load=()
for server in $servers; do
    db="$(db_of "$server")"
    current="$(comment_of "$db")"
    if [[ $reload != 1 && $current == "$marker "* ]]; then
        log "$db already holds this data ($current); not reloading"
    else
        [[ -n $current ]] && log "$db holds other data ($current); reloading"
        psql -q "$pg/postgres" -c "drop database if exists $db with (force)" -c "create database $db"
        to_load+=("$server")
    fi
done

# --- servers --------------------------------------------------------------------------------
cat >"$out/$stamp-search-hds.yaml" <<EOF
name: search-bench
postgres: {url: "$pg/$(db_of hds)", poolSize: $pool}
auth: {mode: none}
EOF
RUST_LOG=warn "$hds_bin" fhir --config "$out/$stamp-search-hds.yaml" \
    --listen "127.0.0.1:$hds_port" >"$out/$stamp-search-hds.log" 2>&1 &
pids+=($!)

if [[ $peer != none ]]; then
    # Auth (HFS_AUTH_ENABLED) and audit (HFS_AUDIT_BACKEND) are off by default in hfs 0.2.7.
    (
        cd "$hfs_data"
        HFS_STORAGE_BACKEND=postgres \
            HFS_DATABASE_URL="$pg/$(db_of hfs)" \
            HFS_SERVER_HOST=127.0.0.1 HFS_SERVER_PORT="$hfs_port" \
            HFS_BASE_URL="http://127.0.0.1:$hfs_port" \
            HFS_PG_MAX_CONNECTIONS="$pool" \
            HFS_DATA_DIR="$hfs_data" \
            HFS_UI_ENABLED=false HFS_LOG_LEVEL=warn \
            exec "$hfs_bin"
    ) >"$out/$stamp-search-hfs.log" 2>&1 &
    pids+=($!)
fi

wait_ready() { # name url pid
    for _ in $(seq 1 240); do
        if curl -fs -o /dev/null "$2"; then
            log "$1 ready"
            return 0
        fi
        kill -0 "$3" 2>/dev/null || {
            log "$1 exited; log:"
            tail -20 "$out/$stamp-search-$1.log" >&2
            exit 1
        }
        sleep 0.5
    done
    log "$1 not ready after 120 s"
    exit 1
}
wait_ready hds "http://127.0.0.1:$hds_port/health/check" "${pids[0]}"
[[ $peer == none ]] || wait_ready hfs "http://127.0.0.1:$hfs_port/health" "${pids[1]}"

port_of() { if [[ $1 == hfs ]]; then echo "$hfs_port"; else echo "$hds_port"; fi; }

# --- loads (one server at a time: they share the cores) ------------------------------------
for server in "${to_load[@]}"; do
    db="$(db_of "$server")"
    log "loading $patients patients into $server ($db), $load_concurrency requests in flight"
    "$synth_bin" --patients "$patients" --seed "$seed" \
        | "$bench_bin" load --url "http://127.0.0.1:$(port_of "$server")" \
            --concurrency "$load_concurrency" --label "$server" \
        | tee -a "$results" >&2
    line="$(tail -1 "$results")"
    log "VACUUM ANALYZE $db"
    t0=$(date +%s)
    psql -q "$pg/$db" -c "vacuum analyze"
    vacuum_s=$(($(date +%s) - t0))
    size="$(psql -tAq "$pg/postgres" -c "select pg_size_pretty(pg_database_size('$db'))")"
    note="$marker resources=$(jq -r .resources <<<"$line") load_s=$(jq -r .seconds <<<"$line") load_rps=$(jq -r .rps <<<"$line") vacuum_s=$vacuum_s size=${size// /}"
    psql -q "$pg/postgres" -c "comment on database $db is '$note'"
done

# --- measurements ---------------------------------------------------------------------------
# Cells alternate hds/hfs so slow drifts of the shared machine hit both servers alike.
for c in $clients; do
    for shape in ${shapes//,/ }; do
        for server in $servers; do
            log "$server $shape c=$c"
            "$bench_bin" query --url "http://127.0.0.1:$(port_of "$server")" \
                --patients "$patients" --seed "$seed" --shape "$shape" --clients "$c" \
                --duration "$duration" --warmup "$warmup" --probes "$probes" --label "$server" \
                | tee -a "$results" >&2
        done
    done
done

# --- report ---------------------------------------------------------------------------------
{
    echo "Data: $patients patients, seed $seed. Loads (from the database comments):"
    echo
    for server in $servers; do
        echo "- $server: $(comment_of "$(db_of "$server")" | sed "s/^$marker //")"
    done
    echo
    echo "| shape | clients | hds req/s | hds p50 ms | hds p99 ms | hfs req/s | hfs p50 ms | hfs p99 ms | hds/hfs req/s | entries hds/hfs | errors hds/hfs |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -rs --arg shapes "$shapes" '
        ($shapes | split(",")) as $order
        | map(select(.mode == "search"))
        | group_by([.shape, .clients])
        | sort_by((.[0].shape as $s | $order | index($s)), .[0].clients) | .[]
        | (map(select(.label == "hds"))[0]) as $a | (map(select(.label == "hfs"))[0]) as $b
        | ($b // {rps: "—", p50_ms: "—", p99_ms: "—", errors: "—", probe_errors: 0, entries: null}) as $b
        | "| \($a.shape) | \($a.clients) | \($a.rps) | \($a.p50_ms) | \($a.p99_ms) | \($b.rps) | \($b.p50_ms) | \($b.p99_ms) | "
          + (if ($b.rps | type) == "number" and $b.rps > 0 then "\(($a.rps / $b.rps * 100 | round) / 100)×" else "n/a" end)
          + " | \($a.entries)/\($b.entries // "—")"
          + (if $b.entries != null and ([$a.entries, $b.entries] | max) > 0
                and ((($a.entries - $b.entries) | fabs) / ([$a.entries, $b.entries] | max)) > 0.1
             then " ⚠" else "" end)
          + " | \($a.errors + $a.probe_errors)/\(if ($b.errors | type) == "number" then $b.errors + $b.probe_errors else "—" end) |"' "$results"
    echo
    echo "Queries (first of each shape; entries are the mean over the first $probes, the same on both servers):"
    echo
    jq -rs 'map(select(.mode == "search" and .label == "hds")) | unique_by(.shape) | .[] | "- \(.shape): `\(.example)`"' "$results"
} | tee "$out/$stamp-search.md"

# Errors are worth reading before the figures: show the first of each failing cell.
jq -r 'select(.mode == "search" and .first_error != null)
       | "[search-bench] \(.label) \(.shape) c=\(.clients): \(.first_error.status) \(.first_error.query): \(.first_error.body)"' \
    "$results" >&2
log "raw results: $results; server logs: $out/$stamp-search-{hds,hfs}.log"
