#!/usr/bin/env bash
# The cost of checking tokens: read and create throughput of one `hds up` serving three
# FhirServices that differ only in security: `open` (auth.mode none), `secured` (bearer tokens
# from the Workspace issuer, JWKS cached; audit log off) and `audited` (the same, plus the
# default audit log, one JSON line per request, here into a file). Same process, same
# PostgreSQL, same load generator, cells alternating. Prints a Markdown table with the ratio to
# `open`; raw JSON lines and the server log go to $HDS_CACHE/bench-results/. First it prints
# the cost of one token check in isolation (token-cost), which HTTP noise cannot blur.
#
# Knobs: BENCH_DURATION (s per cell, 10), BENCH_WARMUP (s, 2), BENCH_CLIENTS ("1 8"),
# BENCH_SEED (1000), BENCH_PG (server URL without database), BENCH_PORT (18190), HDS_CACHE.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${HDS_CACHE:-$HOME/.cache/hds}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
duration="${BENCH_DURATION:-10}"
warmup="${BENCH_WARMUP:-2}"
clients="${BENCH_CLIENTS:-1 8}"
seed="${BENCH_SEED:-1000}"
port="${BENCH_PORT:-18190}"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$cache/bench-results"
work="$out/$stamp-auth"
results="$out/$stamp-auth.jsonl"
mkdir -p "$work/manifests"

log() { echo "[bench] $*" >&2; }
pid=
cleanup() { [[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

log "building hds and the load generator (release)"
(cd "$root" && cargo build --release -q -p hds -p hds-bench)
log "token checks in isolation (bench/src/bin/token-cost.rs)"
"$CARGO_TARGET_DIR/release/token-cost" | tee "$out/$stamp-token-cost.md"
hds_bin="$CARGO_TARGET_DIR/release/hds"
load_bin="$CARGO_TARGET_DIR/release/fhir-load"

for svc in open secured audited; do
    psql -q "$pg/postgres" -c "drop database if exists hds_fhir_$svc with (force)"
done

cat >"$work/manifests/services.yaml" <<YAML
apiVersion: hds.dev/v1alpha1
kind: Workspace
metadata: {name: bench}
spec: {}
---
apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {name: open}
spec:
  workspaceRef: {name: bench}
  authentication: {mode: none}
  audit: {log: "off"}
---
apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {name: secured}
spec:
  workspaceRef: {name: bench}
  audit: {log: "off"}
---
apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {name: audited}
spec:
  workspaceRef: {name: bench}
  audit: {log: "$work/audit.jsonl"}
YAML

RUST_LOG=warn "$hds_bin" up -f "$work/manifests" --listen "127.0.0.1:$port" \
    --data-dir "$work/data" --postgres-url "$pg/postgres" \
    --endpoints-file "$work/endpoints.json" >"$work/hds.log" 2>&1 &
pid=$!
for _ in $(seq 1 240); do
    [[ -s "$work/endpoints.json" ]] && break
    kill -0 "$pid" 2>/dev/null || { log "hds up exited:"; tail -20 "$work/hds.log" >&2; exit 1; }
    sleep 0.5
done
[[ -s "$work/endpoints.json" ]] || { log "hds up not ready"; exit 1; }
token_url="$(jq -r .tokenUrl "$work/endpoints.json")"
secret="$(jq -r '.clients[0].clientSecret' "$work/endpoints.json")"
token="$(curl -fs -u "hds-dev:$secret" -d grant_type=client_credentials "$token_url" | jq -r .access_token)"
[[ -n $token && $token != null ]] || { log "no token from $token_url"; exit 1; }

base="http://127.0.0.1:$port/fhir"
for mode in read create; do
    for c in $clients; do
        for svc in open secured audited; do
            log "$svc $mode c=$c"
            tok=()
            [[ $svc == open ]] || tok=(--token "$token")
            "$load_bin" --url "$base/$svc" --mode "$mode" --concurrency "$c" \
                --duration "$duration" --warmup "$warmup" --seed "$seed" --label "$svc" "${tok[@]}" \
                | tee -a "$results" >&2
        done
    done
done

{
    echo "| operation | clients | open req/s | secured req/s | secured/open | audited req/s | audited/open | p99 ms open / secured / audited | errors |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -rs '
        def r(a; b): if b.rps > 0 then "\((a.rps / b.rps * 1000 | round) / 1000)" else "n/a" end;
        group_by([.mode, .concurrency]) | sort_by(.[0].mode, .[0].concurrency) | .[]
        | (map(select(.label == "open"))[0]) as $o
        | (map(select(.label == "secured"))[0]) as $s
        | (map(select(.label == "audited"))[0]) as $a
        | "| \($o.mode) | \($o.concurrency) | \($o.rps) | \($s.rps) | \(r($s; $o)) | \($a.rps) | \(r($a; $o)) | \($o.p99_ms) / \($s.p99_ms) / \($a.p99_ms) | \($o.errors + $s.errors + $a.errors) |"' "$results"
} | tee "$out/$stamp-auth.md"
log "audit lines written: $(wc -l <"$work/audit.jsonl")"
log "raw results: $results; server log: $work/hds.log"
