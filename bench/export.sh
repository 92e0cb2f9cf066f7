#!/usr/bin/env bash
# $export benchmark: a system-level export of the 1M-resource databases that bench/search.sh
# loads (hds_search_bench, and hfs_search_bench for helios-hfs 0.2.7 when its binary and
# database are there), timed from kick-off to the manifest, with each server's peak RSS. Prints
# a Markdown table; server logs and manifests go to $HDS_CACHE/bench-results/. Export files
# are written under $HDS_CACHE/bench-export/ and removed afterwards.
#
# Knobs (environment): BENCH_PG (server URL without database), BENCH_HDS_PORT (18380),
# BENCH_HFS_PORT (18381), BENCH_MAX_FILE_BYTES (hds, 67108864), BENCH_PEER=none (hds alone),
# BENCH_HDS_BIN (an hds binary to measure instead of a fresh release build: before/after pairs),
# HDS_CACHE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HDS_CACHE:-$HOME/.cache/hds}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
hds_port="${BENCH_HDS_PORT:-18380}"
hfs_port="${BENCH_HFS_PORT:-18381}"
max_file="${BENCH_MAX_FILE_BYTES:-67108864}"
peer="${BENCH_PEER:-hfs}"
hfs_bin="$cache/peers/helios-hfs-0.2.7/bin/hfs"
hfs_data="$cache/peers/hfs-data-r4"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$cache/bench-results"
files="$cache/bench-export"
mkdir -p "$out"
rm -rf "$files"

log() { echo "[export-bench] $*" >&2; }
loaded() { psql -tAq "$pg/postgres" -c "select 1 from pg_database where datname = '$1'" | grep -q 1; }

loaded hds_search_bench || { log "no database hds_search_bench: run bench/search.sh first"; exit 1; }
servers="hds"
if [[ $peer != none ]]; then
    if [[ -x $hfs_bin ]] && loaded hfs_search_bench; then
        servers="hds hfs"
    else
        log "no hfs binary or hfs_search_bench database; measuring hds alone"
    fi
fi

hds_bin="${BENCH_HDS_BIN:-$CARGO_TARGET_DIR/release/hds}"
if [[ -n ${BENCH_HDS_BIN:-} ]]; then
    log "measuring $hds_bin (BENCH_HDS_BIN), not a fresh build"
else
    log "building hds (release)"
    (cd "$root" && cargo build --release -q -p hds)
fi

pid=""
trap '[[ -n $pid ]] && kill $pid 2>/dev/null; rm -rf "$files"' EXIT

start() { # server
    mkdir -p "$files/$1"
    if [[ $1 == hds ]]; then
        cat >"$out/$stamp-export-hds.yaml" <<YAML
name: bench
postgres: {url: "$pg/hds_search_bench", poolSize: 8}
auth: {mode: none}
export: {storageUrl: "file://$files/hds", maxFileBytes: $max_file}
YAML
        RUST_LOG=warn "$hds_bin" fhir --config "$out/$stamp-export-hds.yaml" \
            --listen "127.0.0.1:$hds_port" >"$out/$stamp-export-hds.log" 2>&1 &
        pid=$!
        port=$hds_port health="/health/check"
    else
        (
            cd "$hfs_data"
            HFS_STORAGE_BACKEND=postgres HFS_DATABASE_URL="$pg/hfs_search_bench" \
                HFS_SERVER_HOST=127.0.0.1 HFS_SERVER_PORT="$hfs_port" \
                HFS_BASE_URL="http://127.0.0.1:$hfs_port" HFS_PG_MAX_CONNECTIONS=8 \
                HFS_DATA_DIR="$hfs_data" HFS_UI_ENABLED=false HFS_LOG_LEVEL=warn \
                HFS_BULK_EXPORT_OUTPUT_DIR="$files/hfs" exec "$hfs_bin"
        ) >"$out/$stamp-export-hfs.log" 2>&1 &
        pid=$!
        port=$hfs_port health="/health"
    fi
    for _ in $(seq 1 240); do
        curl -fs -o /dev/null "http://127.0.0.1:$port$health" && return 0
        kill -0 $pid 2>/dev/null || { tail -20 "$out/$stamp-export-$1.log" >&2; exit 1; }
        sleep 0.5
    done
    log "$1 not ready"; exit 1
}

rss_kb() { awk "/^$2:/ { print \$2 }" "/proc/$1/status"; }
# hfs runs as a child of the subshell's exec, so $pid is the server itself in both cases.

echo "| server | resources | files | MB written | seconds | resources/s | RSS idle MB | peak RSS MB |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for server in $servers; do
    start "$server"
    idle=$(rss_kb $pid VmRSS)
    t0=$(date +%s.%N)
    status=$(curl -fs -D - -o /dev/null -H 'Prefer: respond-async' -H 'Accept: application/fhir+json' \
        "http://127.0.0.1:$port/\$export" | awk 'tolower($1) == "content-location:" { print $2 }' | tr -d '\r')
    [[ -n $status ]] || { log "$server: kick-off failed"; exit 1; }
    manifest="$out/$stamp-export-$server-manifest.json"
    while :; do
        code=$(curl -s -o "$manifest" -w '%{http_code}' "$status")
        [[ $code == 200 ]] && break
        [[ $code == 202 ]] || { log "$server: status $code: $(head -c 500 "$manifest")"; exit 1; }
        sleep 0.2
    done
    t1=$(date +%s.%N)
    peak=$(rss_kb $pid VmHWM)
    exported=$(jq '[.output[].count // 0] | add // 0' "$manifest")
    nfiles=$(jq '.output | length' "$manifest")
    bytes=$(du -sb "$files/$server" | cut -f1)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
    rate=$(awk -v n="$exported" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    echo "| $server | $exported | $nfiles | $((bytes / 1048576)) | $secs | $rate | $((idle / 1024)) | $((peak / 1024)) |"
    kill $pid; wait $pid 2>/dev/null || true; pid=""
done
