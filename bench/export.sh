#!/usr/bin/env bash
# $export benchmark: a system-level export of the 1M-resource search benchmark database (loaded
# by bench/search.sh), timed from kick-off to manifest, with the hds process's peak RSS. Prints
# a Markdown table; the server log goes to $HDS_CACHE/bench-results/. The export files are
# written under $HDS_CACHE/bench-export/ and removed afterwards.
#
# Knobs (environment): BENCH_PG (server URL without database), BENCH_DB (hds_search_bench),
# BENCH_HDS_PORT (18380), BENCH_MAX_FILE_BYTES (67108864), HDS_CACHE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HDS_CACHE:-$HOME/.cache/hds}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
db="${BENCH_DB:-hds_search_bench}"
port="${BENCH_HDS_PORT:-18380}"
max_file="${BENCH_MAX_FILE_BYTES:-67108864}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$cache/bench-results"
files="$cache/bench-export"
mkdir -p "$out"
rm -rf "$files"

log() { echo "[export-bench] $*" >&2; }

if ! psql -tAq "$pg/postgres" -c "select 1 from pg_database where datname = '$db'" | grep -q 1; then
    log "no database $db: run bench/search.sh first (it loads the 1M resources)"
    exit 1
fi
resources=$(psql -tAq "$pg/$db" -c "select count(*) from resources where not deleted")

log "building hds (release)"
(cd "$root" && cargo build --release -q -p hds)
cat >"$out/$stamp-export.yaml" <<YAML
name: bench
postgres: {url: "$pg/$db", poolSize: 8}
auth: {mode: none}
export: {storageUrl: "file://$files", maxFileBytes: $max_file}
YAML
RUST_LOG=warn "$CARGO_TARGET_DIR/release/hds" fhir --config "$out/$stamp-export.yaml" \
    --listen "127.0.0.1:$port" >"$out/$stamp-export.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$files"' EXIT
for _ in $(seq 1 240); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/health/check" && break
    kill -0 $pid 2>/dev/null || { tail -20 "$out/$stamp-export.log" >&2; exit 1; }
    sleep 0.5
done
rss_kb() { awk "/^$1:/ { print \$2 }" "/proc/$pid/status"; }
idle_rss=$(rss_kb VmRSS)

t0=$(date +%s.%N)
status=$(curl -fs -D - -o /dev/null -H 'Prefer: respond-async' "http://127.0.0.1:$port/\$export" \
    | awk 'tolower($1) == "content-location:" { print $2 }' | tr -d '\r')
[[ -n $status ]] || { log "kick-off failed"; exit 1; }
while :; do
    code=$(curl -s -o "$out/$stamp-manifest.json" -w '%{http_code}' "$status")
    [[ $code == 200 ]] && break
    [[ $code == 202 ]] || { log "status $code: $(cat "$out/$stamp-manifest.json")"; exit 1; }
    sleep 0.2
done
t1=$(date +%s.%N)
peak_rss=$(rss_kb VmHWM)
exported=$(jq '[.output[].count] | add' "$out/$stamp-manifest.json")
nfiles=$(jq '.output | length' "$out/$stamp-manifest.json")
bytes=$(du -sb "$files" | cut -f1)
secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')
rate=$(awk -v n="$exported" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
log "exported $exported of $resources resources in $secs s"
echo "| resources | files | MB written | seconds | resources/s | hds RSS idle MB | hds peak RSS MB |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
echo "| $exported | $nfiles | $((bytes / 1048576)) | $secs | $rate | $((idle_rss / 1024)) | $((peak_rss / 1024)) |"
