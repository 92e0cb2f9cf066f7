#!/usr/bin/env bash
# Regenerates crds/yaml/ from the Rust types in crds/.
#   scripts/gen-crds.sh          rewrite crds/yaml/
#   scripts/gen-crds.sh --check  fail if crds/yaml/ is stale (for CI)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/hds-target}"
committed="$root/crds/yaml"

generate() {
    cargo run --quiet --manifest-path "$root/Cargo.toml" -p hds-operator -- crds --out-dir "$1"
}

case "${1:-}" in
"")
    # Generate aside and swap in, so CRDs that disappear from the code also disappear here.
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    generate "$tmp"
    rm -rf "$committed"
    mkdir -p "$committed"
    cp "$tmp"/*.yaml "$committed"/
    echo "wrote $(ls "$committed" | wc -l) files to crds/yaml/"
    ;;
--check)
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    generate "$tmp"
    if ! diff -ru "$committed" "$tmp"; then
        echo "error: crds/yaml/ is stale; run scripts/gen-crds.sh and commit the result" >&2
        exit 1
    fi
    echo "crds/yaml/ is up to date"
    ;;
*)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
