#!/usr/bin/env bash
# The main job: run every custom resource in examples/ on this machine with `hds up`, on an
# embedded PostgreSQL. Extra arguments go to `hds up` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh
if ! command -v initdb >/dev/null 2>&1 && [ -z "$(pg_bin_dir)" ]; then
  ensure_packages postgresql
fi
cargo build -q -p hds
mkdir -p .hds
exec "$CARGO_TARGET_DIR/debug/hds" up -f examples/ --endpoints-file .hds/endpoints.json "$@"
