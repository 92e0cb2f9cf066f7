#!/usr/bin/env bash
# Regenerates crds/yaml/ from the Rust types in crds/, and the Helm chart's copies in
# charts/hds/crds/ (one file per CRD; not all.yaml, which would make Helm install each CRD twice).
#   scripts/gen-crds.sh          rewrite crds/yaml/ and charts/hds/crds/
#   scripts/gen-crds.sh --check  fail if either is stale (for CI)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
committed="$root/crds/yaml"
chart="$root/charts/hds/crds"

generate() {
    cargo run --quiet --manifest-path "$root/Cargo.toml" -p hds-operator -- crds --out-dir "$1"
}

# The chart's files: every generated file except all.yaml.
chart_files() {
    mkdir -p "$2"
    find "$1" -maxdepth 1 -name '*.yaml' ! -name all.yaml -exec cp {} "$2"/ \;
}

case "${1:-}" in
"")
    # Generate aside and swap in, so CRDs that disappear from the code also disappear here.
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    generate "$tmp/yaml"
    chart_files "$tmp/yaml" "$tmp/chart"
    rm -rf "$committed" "$chart"
    mkdir -p "$committed" "$chart"
    cp "$tmp"/yaml/*.yaml "$committed"/
    cp "$tmp"/chart/*.yaml "$chart"/
    echo "wrote $(ls "$committed" | wc -l) files to crds/yaml/ and $(ls "$chart" | wc -l) to charts/hds/crds/"
    ;;
--check)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    generate "$tmp/yaml"
    chart_files "$tmp/yaml" "$tmp/chart"
    stale=0
    if ! diff -ru "$committed" "$tmp/yaml"; then
        echo "error: crds/yaml/ is stale; run scripts/gen-crds.sh and commit the result" >&2
        stale=1
    fi
    if ! diff -ru "$chart" "$tmp/chart"; then
        echo "error: charts/hds/crds/ is stale; run scripts/gen-crds.sh and commit the result" >&2
        stale=1
    fi
    [ "$stale" = 0 ] || exit 1
    echo "crds/yaml/ and charts/hds/crds/ are up to date"
    ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
