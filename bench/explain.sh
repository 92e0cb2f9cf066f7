#!/usr/bin/env bash
# The query plans behind the search benchmark: for the first query of each of the ten shapes
# (the same generator, seed and size as bench/search.sh), EXPLAIN (ANALYZE, BUFFERS) of the SQL
# hds runs, against the database search.sh loaded. Prints Markdown; docs/ARCHITECTURE.md quotes
# it. Knobs: BENCH_PATIENTS (40000), BENCH_SEED (42), BENCH_PG, BENCH_SHAPES.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
patients="${BENCH_PATIENTS:-40000}"
seed="${BENCH_SEED:-42}"
shapes="${BENCH_SHAPES:-token,reference,date,name,chain,has,include,sort,total,token-date}"

# The same packages as search.sh builds: built alone, hds-bench would unify other features
# and rebuild every crate (slow under the release profile's LTO).
(cd "$root" && cargo build --release -q -p hds -p hds-bench)
bin="$CARGO_TARGET_DIR/release"
for shape in ${shapes//,/ }; do
    echo "## $shape"
    echo
    "$bin/fhir-search-bench" query --url http://unused --patients "$patients" --seed "$seed" \
        --shape "$shape" --queries 1 --print |
        "$bin/fhir-search-explain" --db "$pg/hds_search_bench"
done
