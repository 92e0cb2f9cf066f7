#!/usr/bin/env bash
# MedTech benchmark: device messages through a private Mosquitto into `hds up` (MedTechService →
# FhirService → PostgreSQL), with the same publisher (bench/src/bin/medtech-load.rs) for every
# measurement:
#   0. whether Mosquitto honours an MQTT 5 subscriber's receive-maximum (the service relies on it
#      to bound what is unacknowledged);
#   1. raw Mosquitto: N heart-rate messages (QoS 1, C publisher connections) to one QoS 1
#      subscriber that counts them: the ceiling;
#   2. hds sustained: the same N messages over D devices (each on a distinct second of one hour,
#      so each device has one hourly SampledData Observation), as fast as the broker takes them;
#      time from the first publish until CompletedEvent{service} reaches N; then a check that
#      the non-"E" points of those Observations equal the distinct (device, second) pairs sent;
#   3. hds latency: spo2 messages at a fixed rate for a fixed time, each carrying its send time
#      (ms) as the reading's ts, so each becomes its own Observation with effectivePeriod.start =
#      send time; latency = meta.lastUpdated of its first version − effectivePeriod.start, from
#      SQL on the FHIR service's database. Its devices are created (Create resolution) by a
#      warm-up message each before the clock starts.
# Prints a Markdown table; raw JSON lines, the hds log, metrics and CPU figures go to
# $HDS_CACHE/bench-results/ (outside the repo). Idempotent: a fresh broker, databases and
# directories every run; its processes are stopped on exit.
#
# Knobs (environment):
#   MEDTECH_BENCH_MESSAGES     messages in scenarios 1 and 2 (200000)
#   MEDTECH_BENCH_DEVICES      heart-rate devices (200)
#   MEDTECH_BENCH_CONNECTIONS  publisher connections (4)
#   MEDTECH_BENCH_RATE         messages/s in scenario 3 (1000)
#   MEDTECH_BENCH_DURATION     s of scenario 3 (30)
#   MEDTECH_BENCH_LATENCY_DEVICES  spo2 devices (2 × rate: a device sends every 2 s, because
#                              Observation ids have second precision and two readings of one
#                              device in one second would share one Observation)
#   MEDTECH_BENCH_SCENARIOS    any of "raw sustained latency" (all)
#   MEDTECH_BENCH_MAX_MESSAGES the MedTechService's buffering.maxMessages (unset: its default)
#   MEDTECH_BENCH_PERF         1: record `perf record -g` of hds during scenario 2
#   MEDTECH_BENCH_PG           PostgreSQL admin URL (postgres://postgres@127.0.0.1:5432/postgres)
#   MEDTECH_BENCH_PORT         hds listen port (18480); MEDTECH_BENCH_MQTT_PORT (18831)
#   MEDTECH_BENCH_TARGET       cargo target dir ($HOME/.cache/hds-bench-target)
#   MEDTECH_BENCH_KEEP         1 keeps the run directory and the database
#   HDS_CACHE                  ($HOME/.cache/hds)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${MEDTECH_BENCH_TARGET:-$HOME/.cache/hds-bench-target}"
cache="${HDS_CACHE:-$HOME/.cache/hds}"
messages="${MEDTECH_BENCH_MESSAGES:-200000}"
devices="${MEDTECH_BENCH_DEVICES:-200}"
connections="${MEDTECH_BENCH_CONNECTIONS:-4}"
rate="${MEDTECH_BENCH_RATE:-1000}"
duration="${MEDTECH_BENCH_DURATION:-30}"
latency_devices="${MEDTECH_BENCH_LATENCY_DEVICES:-$((2 * rate))}"
scenarios="${MEDTECH_BENCH_SCENARIOS:-raw sustained latency}"
max_messages="${MEDTECH_BENCH_MAX_MESSAGES:-}"
perf_record="${MEDTECH_BENCH_PERF:-0}"
pg="${MEDTECH_BENCH_PG:-postgres://postgres@127.0.0.1:5432/postgres}"
port="${MEDTECH_BENCH_PORT:-18480}"
mqtt_port="${MEDTECH_BENCH_MQTT_PORT:-18831}"
keep="${MEDTECH_BENCH_KEEP:-0}"
fhir_name=mtbench
medtech_name=mtbench-vitals
db="hds_fhir_$fhir_name"
db_url="${pg%/*}/$db"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="$cache/bench-results"
work="$out/$stamp-medtech"
results="$out/$stamp-medtech.jsonl"
command_line="$({ env | grep -E '^MEDTECH_BENCH_' || true; } | sort | tr '\n' ' ')bench/medtech.sh $*"
mkdir -p "$work/manifests"

log() { echo "[medtech-bench] $*" >&2; }

pids=()
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ $keep != 1 ]]; then
        rm -rf "$work/data"
        psql -q "$pg" -c "drop database if exists $db with (force)" 2>/dev/null || true
    fi
}
trap cleanup EXIT INT TERM

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for p in "$port" "$mqtt_port"; do
    port_free "$p" || { log "port $p is in use; set MEDTECH_BENCH_PORT / MEDTECH_BENCH_MQTT_PORT"; exit 2; }
done
command -v mosquitto >/dev/null || { log "mosquitto is not installed"; exit 2; }
psql -qAtc 'select 1' "$pg" >/dev/null || { log "no PostgreSQL at $pg"; exit 2; }

# --- builds ---------------------------------------------------------------------------------
log "building hds and medtech-load (release) in $CARGO_TARGET_DIR"
(cd "$root" && cargo build --release -q -p hds -p hds-bench --bin hds --bin medtech-load)
hds_bin="$CARGO_TARGET_DIR/release/hds"
load="$CARGO_TARGET_DIR/release/medtech-load"

# --- our own broker ---------------------------------------------------------------------------
# No persistence, no limits on queued or in-flight messages: the broker must not be what
# drops or throttles. A fresh process every run, so no session survives from an earlier one.
cat >"$work/mosquitto.conf" <<EOF
listener $mqtt_port 127.0.0.1
allow_anonymous true
persistence false
max_inflight_messages 0
max_queued_messages 0
max_queued_bytes 0
log_dest file $work/mosquitto.log
log_type error
log_type warning
EOF
mosquitto -c "$work/mosquitto.conf" >>"$work/mosquitto.log" 2>&1 &
pids+=($!)
mosquitto_pid=$!
for _ in $(seq 1 50); do port_free "$mqtt_port" || break; sleep 0.1; done
port_free "$mqtt_port" && { log "mosquitto did not start:"; cat "$work/mosquitto.log" >&2; exit 1; }
mosquitto_version="$({ mosquitto -h 2>/dev/null || true; } | head -n 1 | awk '{print $3}')"

record() { tee -a "$results" >&2; }
jqr() { jq -r "$1" <<<"$2"; }

# Runs a subscriber in the background until it has subscribed; its JSON line goes to $1.
start_subscriber() { # out-file, then subscribe arguments
    local outf=$1 ready="$work/sub.ready"
    shift
    rm -f "$ready"
    "$load" subscribe --port "$mqtt_port" --ready-file "$ready" "$@" >"$outf" &
    sub_pid=$!
    for _ in $(seq 1 100); do [[ -f $ready ]] && return 0; sleep 0.05; done
    log "the subscriber did not subscribe"
    exit 1
}

# --- 0. does Mosquitto honour a v5 subscriber's receive-maximum? -----------------------------
start_subscriber "$work/rm.json" --topic 'devices/rmtest-00000/messages/events' --messages 1000 \
    --receive-maximum 10 --hold-acks --idle-exit 2
"$load" publish --port "$mqtt_port" --kind heartrate --messages 100 --devices 1 --connections 1 \
    --device-prefix "rmtest-" --label rm-test >/dev/null
wait "$sub_pid" || true
rm_got="$(jq -r .messages "$work/rm.json")"
if [[ $rm_got == 10 ]]; then rm_honoured="yes (10 of 100 delivered with 10 unacknowledged)"
else rm_honoured="NO: $rm_got of 100 delivered to a subscriber with receive-maximum 10 that never acknowledges"; fi
log "receive-maximum honoured by mosquitto $mosquitto_version: $rm_honoured"
jq -c --arg v "$rm_honoured" '. + {mode: "receive-maximum", verdict: $v}' "$work/rm.json" >>"$results"

# --- 1. raw Mosquitto -------------------------------------------------------------------------
raw_rate=""
if [[ " $scenarios " == *" raw "* ]]; then
    log "raw mosquitto: $messages heart-rate messages, $connections connections, one QoS 1 subscriber"
    start_subscriber "$work/raw-sub.json" --messages "$messages" --idle-exit 30
    pub="$("$load" publish --port "$mqtt_port" --kind heartrate --messages "$messages" \
        --devices "$devices" --connections "$connections" --device-prefix raw- --label raw)"
    wait "$sub_pid"
    sub="$(cat "$work/raw-sub.json")"
    raw="$(jq -nc --argjson p "$pub" --argjson s "$sub" '
        {mode: "raw", messages: $s.messages, expected: $p.messages,
         seconds: (($s.last_ms - $p.start_ms) / 1000),
         messages_per_s: ($s.messages / (($s.last_ms - $p.start_ms) / 1000) | round),
         publisher_messages_per_s: $p.messages_per_s}')"
    echo "$raw" | record
    raw_rate="$(jqr .messages_per_s "$raw")"
fi

# --- hds up ---------------------------------------------------------------------------------
psql -q "$pg" -c "drop database if exists $db with (force)"
rm -rf "$work/data"
buffering=""
[[ -n $max_messages ]] && buffering="  buffering: {maxMessages: $max_messages}"
cat >"$work/manifests/services.yaml" <<YAML
apiVersion: hds.dev/v1alpha1
kind: Workspace
metadata: {name: mtbench}
spec: {}
---
apiVersion: hds.dev/v1alpha1
kind: FhirService
metadata: {name: $fhir_name}
spec:
  workspaceRef: {name: mtbench}
  # Token checks stay on (the MedTech service uses its own Workspace credentials); the
  # per-request audit line would be log formatting measured, not the pipeline.
  audit: {log: "off"}
---
apiVersion: hds.dev/v1alpha1
kind: MedTechService
metadata: {name: $medtech_name}
spec:
  workspaceRef: {name: mtbench}
  ingestion:
    mqtt:
      brokerUrl: mqtt://127.0.0.1:$mqtt_port
      topicFilter: devices/+/messages/events
      qos: 1
  deviceMapping:
    content: $(jq -c . "$root/examples/templates/vitals/devicemapping.json")
  fhirDestination:
    fhirServiceRef: {name: $fhir_name}
    resourceIdentityResolutionType: Create
    fhirMapping:
      content: $(jq -c . "$root/examples/templates/vitals/fhirmapping.json")
  errorPolicy: Retry
$buffering
YAML
RUST_LOG="${RUST_LOG:-warn}" "$hds_bin" up -f "$work/manifests" --listen "127.0.0.1:$port" \
    --data-dir "$work/data" --postgres-url "$pg" --endpoints-file "$work/endpoints.json" \
    >"$work/hds.log" 2>&1 &
hds_pid=$!
pids+=("$hds_pid")
for _ in $(seq 1 240); do
    [[ -s "$work/endpoints.json" ]] && break
    kill -0 "$hds_pid" 2>/dev/null || { log "hds up exited:"; tail -20 "$work/hds.log" >&2; exit 1; }
    sleep 0.5
done
[[ -s "$work/endpoints.json" ]] || { log "hds up not ready"; exit 1; }
metrics_url="http://127.0.0.1:$port/metrics"
label="service=\"$medtech_name\""
for _ in $(seq 1 100); do
    curl -fs "$metrics_url" | grep -q "^CompletedEvent" && break
    # The series appears with the first message; until then wait only for /metrics itself.
    curl -fs -o /dev/null "$metrics_url" && break
    sleep 0.1
done
log "hds up ready (log: $work/hds.log)"

completed() { curl -fs "$metrics_url" | awk -v l="$label" '$0 ~ "^CompletedEvent\\{" && index($0, l) { s += $NF } END { print s + 0 }'; }
# CPU seconds (user + system) of processes, from /proc; postgres: every process of that user.
cpu_of() { # pids...
    local t=0 p
    for p in "$@"; do
        [[ -r /proc/$p/stat ]] && t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
    done
    echo "$t"
}
pg_pids() { pgrep -u postgres | tr '\n' ' '; }
ticks="$(getconf CLK_TCK)"

# --- 2. hds sustained -------------------------------------------------------------------------
sustained_rate=""
if [[ " $scenarios " == *" sustained "* ]]; then
    base="$(completed)"
    target=$((base + messages))
    log "hds sustained: $messages heart-rate messages over $devices devices, $connections connections"
    # shellcheck disable=SC2046
    cpu0=("$(cpu_of "$hds_pid")" "$(cpu_of "$mosquitto_pid")" "$(cpu_of $(pg_pids))")
    "$load" publish --port "$mqtt_port" --kind heartrate --messages "$messages" \
        --devices "$devices" --connections "$connections" --label sustained >"$work/sustained-pub.json" &
    pub_pid=$!
    pids+=("$pub_pid")
    perf_pid=""
    (sleep 5 && top -b -n 1 -w 200 | head -n 25 >"$work/top-sustained.txt") &
    if [[ $perf_record == 1 ]] && command -v perf >/dev/null; then
        perf record -g -F 499 -p "$hds_pid" -o "$work/perf.data" -- sleep 10 >/dev/null 2>&1 &
        perf_pid=$!
    fi
    w="$("$load" wait --url "$metrics_url" --label "$label" --target "$target" --stall 60)"
    # shellcheck disable=SC2046
    cpu1=("$(cpu_of "$hds_pid")" "$(cpu_of "$mosquitto_pid")" "$(cpu_of $(pg_pids))")
    wait "$pub_pid"
    pub="$(cat "$work/sustained-pub.json")"
    [[ -n $perf_pid ]] && wait "$perf_pid" || true
    sustained="$(jq -nc --argjson p "$pub" --argjson w "$w" --argjson base "$base" \
        --argjson hds "$(((cpu1[0] - cpu0[0]) / ticks))" --argjson mosq "$(((cpu1[1] - cpu0[1]) / ticks))" \
        --argjson pgc "$(((cpu1[2] - cpu0[2]) / ticks))" '
        {mode: "sustained", messages: ($w.value - $base), expected: $p.messages, reached: $w.reached,
         seconds: (($w.at_ms - $p.start_ms) / 1000),
         messages_per_s: (($w.value - $base) / (($w.at_ms - $p.start_ms) / 1000) | round),
         publisher_seconds: $p.seconds, publisher_messages_per_s: $p.messages_per_s,
         distinct_pairs: $p.distinct_pairs,
         cpu_s: {hds: $hds, mosquitto: $mosq, postgres: $pgc}}')"
    # The points that reached FHIR: the non-"E" values of the heart-rate Observations.
    check="$(psql -qAt "$db_url" -c "
        with cur as (
            select v.body::jsonb as b from resources r
            join resource_versions v using (res_type, id, version_id)
            where r.res_type = 'Observation' and not r.deleted)
        select count(*), coalesce(sum((select count(*) from regexp_split_to_table(
                   b->'valueSampledData'->>'data', ' ') t where t <> 'E')), 0)
        from cur where b->'code'->'coding' @> '[{\"code\": \"8867-4\"}]'")"
    sustained="$(jq -c --arg obs "${check%%|*}" --arg points "${check##*|}" \
        '. + {observations: ($obs | tonumber), points: ($points | tonumber),
              points_ok: (($points | tonumber) == .distinct_pairs)}' <<<"$sustained")"
    echo "$sustained" | record
    sustained_rate="$(jqr .messages_per_s "$sustained")"
fi

# --- 3. hds latency at a fixed rate ----------------------------------------------------------
if [[ " $scenarios " == *" latency "* ]]; then
    n=$((rate * duration))
    log "hds latency warm-up: one spo2 message for each of $latency_devices devices"
    base="$(completed)"
    "$load" publish --port "$mqtt_port" --kind spo2 --messages "$latency_devices" \
        --devices "$latency_devices" --connections "$connections" --device-prefix spo2- \
        --label warmup >/dev/null
    "$load" wait --url "$metrics_url" --label "$label" --target $((base + latency_devices)) \
        --stall 60 >/dev/null
    log "hds latency: $rate spo2 messages/s for $duration s over $latency_devices devices"
    base="$(completed)"
    pub="$("$load" publish --port "$mqtt_port" --kind spo2 --messages "$n" --rate "$rate" \
        --devices "$latency_devices" --connections "$connections" --device-prefix spo2- \
        --label latency)"
    w="$("$load" wait --url "$metrics_url" --label "$label" --target $((base + n)) --stall 60)"
    start_ms="$(jqr .start_ms "$pub")"
    lat="$(psql -qAt "$db_url" -c "
        with first as (
            select distinct on (v.id) v.body::jsonb as b from resource_versions v
            where v.res_type = 'Observation' and v.body is not null
            order by v.id, v.version_id),
        spo2 as (
            select extract(epoch from ((b->'meta'->>'lastUpdated')::timestamptz
                       - (b->'effectivePeriod'->>'start')::timestamptz)) * 1000 as ms
            from first
            where b->'code'->'coding' @> '[{\"code\": \"59408-5\"}]'
              and (b->'effectivePeriod'->>'start')::timestamptz >= to_timestamp($start_ms / 1000.0))
        select json_build_object('observations', count(*),
            'p50_ms', round(percentile_cont(0.5) within group (order by ms)::numeric, 1),
            'p95_ms', round(percentile_cont(0.95) within group (order by ms)::numeric, 1),
            'p99_ms', round(percentile_cont(0.99) within group (order by ms)::numeric, 1),
            'max_ms', round(max(ms)::numeric, 1))
        from spo2")"
    multi="$(psql -qAt "$db_url" -c "
        select count(*) from resources r join resource_versions v using (res_type, id, version_id)
        where r.res_type = 'Observation' and r.version_id > 1
          and v.body::jsonb->'code'->'coding' @> '[{\"code\": \"59408-5\"}]'")"
    latency="$(jq -nc --argjson p "$pub" --argjson w "$w" --argjson l "$lat" --argjson base "$base" \
        --argjson multi "$multi" '
        {mode: "latency", messages: ($w.value - $base), expected: $p.messages, reached: $w.reached,
         seconds: $p.seconds, messages_per_s: $p.messages_per_s, rate_target: $p.rate_target,
         spo2_observations_updated: $multi} + $l')"
    echo "$latency" | record
fi

# --- service health after the run --------------------------------------------------------------
curl -fs "$metrics_url" >"$work/metrics.txt" || true
grep -E "^(Errors|FhirRetry|FHIRResourceContention|FhirResourceSaved|DroppedEvent|DeviceEvent|CompletedEvent|MeasurementBatchSize_(sum|count)|MeasurementIngestionLatencyMs\{.*quantile=\"0.99\")" \
    "$work/metrics.txt" >"$work/metrics-summary.txt" || true
warnings="$(grep -cE ' (WARN|ERROR) ' "$work/hds.log" || true)"

# --- report ---------------------------------------------------------------------------------------
commit="$(git -C "$root" rev-parse --short HEAD)"
git -C "$root" diff --quiet HEAD -- 2>/dev/null || commit="$commit + uncommitted changes"
{
    echo "MedTech ingestion: Mosquitto $mosquitto_version (own instance, no persistence) → hds up"
    echo "(MedTechService, Create resolution, vitals templates → FhirService, auth on, audit off →"
    echo "PostgreSQL $(psql -qAt "$pg" -c 'show server_version' | awk '{print $1}')); $(nproc) cores; $(date -u +%Y-%m-%dT%H:%MZ)."
    echo "Command: \`$command_line\` at commit $commit. Publisher: medtech-load, QoS 1, $connections connections."
    echo
    echo "| scenario | messages | seconds | messages/s | vs raw Mosquitto | p50 ms | p95 ms | p99 ms | max ms |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -rs --arg raw "$raw_rate" --argjson devices "$devices" --argjson ldev "$latency_devices" '
        def r(x): if x == null then "—" else (x * 100 | round / 100 | tostring) end;
        def vs(x): if $raw == "" or x == null then "—" else "\((x / ($raw | tonumber) * 100 | round) / 100)×" end;
        .[] | select(.mode == "raw" or .mode == "sustained" or .mode == "latency")
        | if .mode == "raw" then
            "| raw Mosquitto: publish → 1 subscriber (ceiling) | \(.messages) | \(r(.seconds)) | \(.messages_per_s) | 1× | — | — | — | — |"
          elif .mode == "sustained" then
            "| hds sustained: heart rate, \($devices) devices, publish → CompletedEvent (target ≥ 10,000/s) | \(.messages) | \(r(.seconds)) | \(.messages_per_s) | \(vs(.messages_per_s)) | — | — | — | — |"
          else
            "| hds latency: spo2 at \(.rate_target)/s (achieved publish rate), \($ldev) devices; end-to-end (target p99 < 1000) | \(.messages) | \(r(.seconds)) | \(.messages_per_s) | — | \(.p50_ms) | \(.p95_ms) | \(.p99_ms) | \(.max_ms) |"
          end' "$results"
    echo
    jq -r 'select(.mode == "sustained")
        | "Sustained check: \(.observations) heart-rate Observations hold \(.points) points; \(.distinct_pairs) distinct (device, second) pairs were sent: " + (if .points_ok then "OK." else "MISMATCH." end),
          "Sustained: the publisher had all \(.expected) acknowledged by the broker after \(.publisher_seconds) s (\(.publisher_messages_per_s)/s); CPU s during the run: hds \(.cpu_s.hds), mosquitto \(.cpu_s.mosquitto), postgres \(.cpu_s.postgres)."
          + (if .reached then "" else " CompletedEvent STALLED at \(.messages) of \(.expected)." end)' "$results"
    jq -r 'select(.mode == "latency")
        | "Latency: \(.observations) spo2 Observations of \(.expected) messages (\(.spo2_observations_updated) updated more than once)."
          + (if .reached then "" else " CompletedEvent STALLED at \(.messages) of \(.expected)." end)' "$results"
    echo "Mosquitto honours a v5 subscriber's receive-maximum: $rm_honoured."
    echo "hds log: $warnings WARN/ERROR lines ($work/hds.log); service counters after the run:"
    echo
    sed 's/^/    /' "$work/metrics-summary.txt"
} | tee "$out/$stamp-medtech.md"
log "table: $out/$stamp-medtech.md; raw results: $results; logs and metrics: $work"
