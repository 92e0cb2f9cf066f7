#!/usr/bin/env bash
# Ensures the official HL7 FHIR R4 4.0.1 examples package (npm hl7.fhir.r4.examples, CC0)
# is unpacked locally and prints its package directory. Idempotent: does nothing when
# the package is already there. Override the location with HDS_R4_PACKAGE_DIR.
set -euo pipefail

cache_dir="${HDS_R4_PACKAGE_DIR:-$HOME/.cache/hds/r4-examples}"
pkg_dir="$cache_dir/package"

if [[ -f "$pkg_dir/package.json" && -f "$pkg_dir/Bundle-resources.json" ]]; then
    echo "$pkg_dir"
    exit 0
fi

command -v npm >/dev/null || { echo "npm is required to fetch hl7.fhir.r4.examples" >&2; exit 1; }

mkdir -p "$cache_dir"
cd "$cache_dir"
# `npm pack` downloads the tarball from the registry without installing anything.
tarball="$(npm pack --silent hl7.fhir.r4.examples@4.0.1 | tail -n 1)"
rm -rf "$pkg_dir"
tar -xzf "$tarball"
rm -f "$tarball"

[[ -f "$pkg_dir/Bundle-resources.json" ]] || { echo "unexpected package layout in $cache_dir" >&2; exit 1; }
echo "$pkg_dir"
