#!/usr/bin/env bash
# Ensures the HL7 FHIRPath R4 test suite (tests-fhir-r4.xml and the JSON resources it reads)
# is unpacked locally and prints the directory holding tests-fhir-r4.xml. hds-fhirpath's
# tests/hl7_suite.rs runs it. HL7 publishes the suite only as a git repository, so it is taken
# from the crates.io tarball of helios-fhirpath 0.2.7, which ships a copy; only the test data
# is extracted, never that crate's code. Idempotent: does nothing when the files are already
# there. Override the location with HDS_FHIRPATH_TESTS_DIR.
set -euo pipefail

version=0.2.7
# The crate's checksum as published in the crates.io index, so a changed tarball is noticed.
sha256=b82faeee298148e918ad37717a7ae7d87a749c8bc3c88b8a6e1b3dadcddf9f62
url="https://static.crates.io/crates/helios-fhirpath/helios-fhirpath-$version.crate"

cache_dir="${HDS_FHIRPATH_TESTS_DIR:-$HOME/.cache/hds/fhirpath-tests}"
data_dir="$cache_dir/r4"

if [[ -f "$data_dir/tests-fhir-r4.xml" && -f "$data_dir/input/patient-example.json" ]]; then
    echo "$data_dir"
    exit 0
fi

command -v curl >/dev/null || { echo "curl is required to fetch the FHIRPath test suite" >&2; exit 1; }

mkdir -p "$cache_dir"
tmp="$(mktemp -d "$cache_dir/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
curl -sSfL -o "$tmp/crate.tar.gz" "$url"
echo "$sha256  $tmp/crate.tar.gz" | sha256sum -c --quiet - ||
    { echo "checksum mismatch for $url" >&2; exit 1; }
prefix="helios-fhirpath-$version/tests/data/r4"
tar -xzf "$tmp/crate.tar.gz" -C "$tmp" --strip-components=3 --wildcards \
    "$prefix/tests-fhir-r4.xml" "$prefix/input/*.json"
rm -rf "$data_dir"
mv "$tmp/r4" "$data_dir"

[[ -f "$data_dir/input/patient-example.json" ]] || { echo "unexpected layout in $url" >&2; exit 1; }
echo "$data_dir"
