#!/usr/bin/env bash
# Regenerates dataplane/fhir/search/data/r4-search.json (R4 search parameters and compartments)
# from HL7's hl7.fhir.r4.examples 4.0.1 package. `--check` fails when the committed file is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
pkg="$(bash scripts/fetch-r4-package.sh)"
out=dataplane/fhir/search/data/r4-search.json
if [[ "${1:-}" == --check ]]; then
    tmp="$(mktemp)"
    cargo run -q -p hds-fhir-search --bin gen-r4-search -- "$pkg" "$tmp"
    cmp -s "$tmp" "$out" || { echo "$out is stale: run scripts/gen-r4-search.sh" >&2; rm -f "$tmp"; exit 1; }
    rm -f "$tmp"
else
    mkdir -p "$(dirname "$out")"
    cargo run -q -p hds-fhir-search --bin gen-r4-search -- "$pkg" "$out"
fi
