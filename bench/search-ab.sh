#!/usr/bin/env bash
# A/B of hds binaries on FHIR search: every binary serves the one database bench/search.sh
# loaded (hds_search_bench), in rounds that alternate the binaries, so the drift of a shared
# machine hits every binary alike. Beside requests/s and p50/p99 it prints the CPU time per
# request of hds and of PostgreSQL (every `postgres` process, from /proc), which moves far less
# with the machine's neighbours than throughput does.
#   BENCH_PATIENTS=4000 BENCH_PEER=none bench/search.sh    # once: load the data
#   bench/search-ab.sh /path/to/hds-a /path/to/hds-b ...
# Knobs: BENCH_PATIENTS and BENCH_SEED (as the load used; 40000, 42), SEARCH_AB_SHAPES (all ten),
# SEARCH_AB_CLIENTS ("1 8"), SEARCH_AB_DURATION (s per cell, 5), SEARCH_AB_ROUNDS (2),
# BENCH_POOL (32), BENCH_PG, BENCH_AB_PORT, CARGO_TARGET_DIR (where the release
# fhir-search-bench is).
set -euo pipefail
target="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
bench_bin="$target/release/fhir-search-bench"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
port="${BENCH_AB_PORT:-18193}"
patients="${BENCH_PATIENTS:-40000}"
seed="${BENCH_SEED:-42}"
shapes="${SEARCH_AB_SHAPES:-token,reference,date,name,chain,has,include,sort,total,token-date}"
clients="${SEARCH_AB_CLIENTS:-1 8}"
duration="${SEARCH_AB_DURATION:-5}"
rounds="${SEARCH_AB_ROUNDS:-2}"
pool="${BENCH_POOL:-32}"
db=hds_search_bench
[[ $# -ge 1 ]] || { echo "usage: bench/search-ab.sh HDS_BINARY..." >&2; exit 2; }
[[ -x $bench_bin ]] || { echo "no fhir-search-bench at $bench_bin (run bench/search.sh once)" >&2; exit 1; }
held="$(psql -tAq "$pg/postgres" -c \
    "select coalesce(shobj_description(oid, 'pg_database'), '') from pg_database where datname = '$db'")"
[[ $held == *"patients=$patients seed=$seed "* ]] ||
    { echo "$db does not hold $patients patients of seed $seed (it says: '$held'); load it with bench/search.sh" >&2; exit 1; }

work="$(mktemp -d)"
pid=
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

# shellcheck source=bench/ab-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ab-lib.sh"
cat >"$work/hds.yaml" <<YAML
name: search-ab
postgres: {url: "$pg/$db", poolSize: $pool}
auth: {mode: none}
audit: {log: "off"}
YAML

printf '%-5s %-36s %-10s %3s %9s %8s %8s %13s %12s\n' round binary shape c "req/s" "p50 ms" "p99 ms" "hds ms/req" "pg ms/req"
for r in $(seq "$rounds"); do
    for bin in "$@"; do
        start_hds fhir "$bin" "$work/hds.yaml" "$port" "$work/hds.log"
        for c in $clients; do
            for shape in ${shapes//,/ }; do
                q=("$bench_bin" query --url "http://127.0.0.1:$port" --patients "$patients"
                    --seed "$seed" --shape "$shape" --clients "$c" --probes 0 --label ab)
                # Warm up apart, so that the CPU counted is that of the measured requests.
                "${q[@]}" --duration 1 --warmup 0 >/dev/null
                pg_mark
                h0=$(ticks "$pid")
                line="$("${q[@]}" --duration "$duration" --warmup 0)"
                h1=$(ticks "$pid")
                pt=$(pg_since)
                n=$(jq -r .requests <<<"$line")
                (( n > 0 )) || { echo "no request succeeded: $line" >&2; exit 1; }
                [[ $(jq -r .errors <<<"$line") == 0 ]] || echo "errors in $shape c=$c: $line" >&2
                printf '%-5s %-36s %-10s %3s %9s %8s %8s %13s %12s\n' "$r" "${bin/#$HOME/\~}" "$shape" "$c" \
                    "$(jq -r .rps <<<"$line")" "$(jq -r .p50_ms <<<"$line")" "$(jq -r .p99_ms <<<"$line")" \
                    "$(echo "scale=3; ($h1 - $h0) * 1000 / $hz / $n" | bc)" \
                    "$(echo "scale=3; $pt * 1000 / $hz / $n" | bc)"
            done
        done
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        pid=
    done
done
