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
# The examples' MedTechService uses the embedded MQTT broker; where a broker already has 1883
# (Mosquitto on a developer machine), it takes 11883 (and 11884 for MQTT 5) instead.
mqtt=()
if [[ " $* " != *" --mqtt-listen"* ]] && (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; then
  mqtt=(--mqtt-listen 127.0.0.1:11883)
  log "port 1883 is taken; the embedded MQTT broker listens on 127.0.0.1:11883"
fi
exec "$CARGO_TARGET_DIR/debug/hds" up -f examples/ --endpoints-file .hds/endpoints.json "${mqtt[@]}" "$@"
