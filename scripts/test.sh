#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, generated files, the Rust tests
# (against the real PostgreSQL and MQTT broker), and the end-to-end tests with real clients.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

log "setting up: services, R4 package, Python clients, dcmtk, the OpenID provider"
ensure_postgres
ensure_mosquitto
ensure_node
export HDS_R4_PACKAGE_DIR="${HDS_R4_PACKAGE_DIR:-$HDS_CACHE/r4-examples}"
bash scripts/fetch-r4-package.sh >/dev/null
export HDS_FHIRPATH_TESTS_DIR="${HDS_FHIRPATH_TESTS_DIR:-$HDS_CACHE/fhirpath-tests}"
bash scripts/fetch-fhirpath-tests.sh >/dev/null
ensure_venv e2e/requirements.txt
# dcmtk alters DICOM test instances in the e2e tests.
command -v dcmodify >/dev/null 2>&1 || ensure_packages dcmtk
# The DICOM crates' tests read pydicom's bundled test files through the venv's Python.
export HDS_PYTHON="$HDS_VENV/bin/python"
ensure_npm_deps e2e/oidc

# Databases left by interrupted test runs.
psql "$HDS_TEST_POSTGRES_URL" -qAt -c "select datname from pg_database where datname like 'hds_test_%'" |
  while read -r db; do psql "$HDS_TEST_POSTGRES_URL" -qc "drop database if exists \"$db\" with (force)" || true; done

log "rustfmt"
cargo fmt --all -- --check
log "clippy"
cargo clippy --workspace --all-targets -q -- -D warnings
log "generated CRD YAML is current"
bash scripts/gen-crds.sh --check
log "Helm chart: lint, render, validate against the Kubernetes schemas"
bash scripts/check-chart.sh
log "generated R4 search parameters are current"
bash scripts/gen-r4-search.sh --check

log "Rust tests"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  cargo test --workspace --no-fail-fast
fi

log "end-to-end tests"
cargo build -q -p hds
export HDS_BIN="$CARGO_TARGET_DIR/debug/hds"
"$HDS_VENV/bin/python" -m pytest -q e2e
