#!/usr/bin/env bash
# DICOMweb benchmark: hds against Orthanc 1.10 + its DICOMweb plugin 1.7 (Debian), same machine,
# same data, same client (bench/src/bin/dicom-load.rs), in one run:
#   - STOW-RS instances/s, 4 workers: the initial load (50 instances per request, empty store to
#     N), then on the loaded store a fresh sample at 50 per request and one at 1 per request;
#   - QIDO-RS p50/p99 at N instances: five query shapes, the same request paths for both;
#   - WADO-RS instance retrieve (multipart/related, application/dicom, transfer-syntax=*) in
#     instances/s and MB/s, next to the disk's sequential read (dd and fio, O_DIRECT, on a
#     fresh file);
#   - WADO-RS metadata of a 1,000-instance study, p50/p99 (target: p99 < 200 ms).
# The data are variants of pydicom's CT_small.dcm (39 KB) with their own UIDs, made by
# bench/dicom_gen.py and cached by size and generator version.
#
# Orthanc binds 0.0.0.0 and has no bind option, so both servers and the client run in a private
# network namespace (`unshare --net`, loopback only). hds reaches PostgreSQL there through its
# unix socket. Orthanc gets a fresh storage directory (SQLite index) and hds a fresh database
# and blob directory every run; both are deleted afterwards unless DICOM_BENCH_KEEP=1.
#
# Prints a Markdown table (measurement | hds | Orthanc | hds/Orthanc) with the command and
# commit; the table, raw JSON lines and server logs go to $HDS_CACHE/bench-results/ (outside the
# repo).
#
# Knobs (environment):
#   DICOM_BENCH_INSTANCES   instances loaded before QIDO/WADO (100000; 5000 for a quick run)
#   DICOM_BENCH_PEERS       servers to measure, "hds orthanc" (default) or "orthanc" or "hds"
#   DICOM_BENCH_SAMPLE      instances in each post-load STOW sample (2500)
#   DICOM_BENCH_WORKERS     STOW requests in flight (4)
#   DICOM_BENCH_DURATION    s per QIDO/WADO cell (10); DICOM_BENCH_WARMUP s (2)
#   DICOM_BENCH_QIDO_CONCURRENCY (1), DICOM_BENCH_WADO_CONCURRENCY (4)
#   DICOM_BENCH_METADATA_MIN  requests counted at least for the metadata cell (20)
#   DICOM_BENCH_DISK_MB     size of the dd/fio test file (2048)
#   DICOM_BENCH_POOL        hds PostgreSQL pool size (16)
#   DICOM_BENCH_ORTHANC_FIND  Orthanc's StorageAccessOnFind (Always, as shipped; or Answers, Never)
#   DICOM_BENCH_LARGE_COUNT large instances for the byte-throughput cells (48, 3 GB: enough
#                           that STOW waits for the disk, not only the page cache; 0 skips them)
#   DICOM_BENCH_LARGE_MB    size of each, about (64)
#   DICOM_BENCH_HDS_SYNC    hds's storage.sync (true; false measures what the file sync costs)
#   DICOM_BENCH_HDS_SYNCHRONOUS_COMMIT  PostgreSQL's synchronous_commit for hds's connections
#                           (on; off, with DICOM_BENCH_HDS_SYNC=false, measures hds with no flush)
#   DICOM_BENCH_KEEP        1 keeps the servers' stores after the run
#   DICOM_BENCH_TARGET      cargo target dir ($HOME/.cache/hds-bench-target)
#   DICOM_BENCH_HDS_BIN     an hds binary to measure instead of building one (a before/after
#                           pair of runs: copy each build out of the target dir first)
#   DICOM_BENCH_LOAD_BIN    a dicom-load binary to measure with instead of building one (to
#                           set one version of the client against another)
#   DICOM_BENCH_VENV        Python venv with pydicom ($HOME/.cache/hds-bench-venv)
#   HDS_CACHE               ($HOME/.cache/hds): data cache, results, run directories
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
self="$root/bench/dicom.sh"

# ------------------------------------------------------------------------------------------
# Inner half: runs inside `unshare --net`, driven by the variables the outer half exports.
# ------------------------------------------------------------------------------------------
if [[ ${1:-} == __inner ]]; then
    ilog() { echo "[dicom-bench] $*" >&2; }
    ip link set lo up
    pids=()
    # shellcheck disable=SC2317 # called by the trap
    cleanup_inner() {
        for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
        for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    }
    trap cleanup_inner EXIT INT TERM

    wait_ready() { # name url pid log
        for _ in $(seq 1 240); do
            if curl -fs -o /dev/null "$2"; then
                ilog "$1 ready"
                return 0
            fi
            kill -0 "$3" 2>/dev/null || { ilog "$1 exited; log:"; tail -20 "$4" >&2; exit 1; }
            sleep 0.5
        done
        ilog "$1 not ready after 120 s"
        exit 1
    }

    for server in $DB_PEERS; do
        case $server in
        orthanc)
            Orthanc "$DB_RUN/orthanc.json" >"$DB_LOGS-orthanc.log" 2>&1 &
            pids+=($!)
            wait_ready orthanc "http://127.0.0.1:$DB_ORTHANC_PORT/system" "$!" "$DB_LOGS-orthanc.log"
            ;;
        hds)
            # Request logging off: log formatting would be measured, not the server.
            RUST_LOG=warn "$DB_HDS_BIN" dicom --config "$DB_RUN/hds.yaml" \
                --listen "127.0.0.1:$DB_HDS_PORT" >"$DB_LOGS-hds.log" 2>&1 &
            pids+=($!)
            wait_ready hds "http://127.0.0.1:$DB_HDS_PORT/health/check" "$!" "$DB_LOGS-hds.log"
            ;;
        esac
    done

    base_of() {
        case $1 in
        orthanc) echo "http://127.0.0.1:$DB_ORTHANC_PORT/dicom-web" ;;
        hds) echo "http://127.0.0.1:$DB_HDS_PORT" ;;
        esac
    }
    load() { # server, then dicom-load arguments
        local server=$1
        shift
        "$DB_LOAD_BIN" --url "$(base_of "$server")" --label "$server" "$@" | tee -a "$DB_RESULTS" >&2
    }

    # STOW: the load, then the two samples on the loaded store. One server at a time: each has
    # both cores (bar the client's share) while it is measured.
    for server in $DB_PEERS; do
        ilog "$server: STOW load of $DB_INSTANCES instances, 50 per request, $DB_WORKERS workers"
        load "$server" --mode stow --name load --dir "$DB_DATA/load" --per-request 50 \
            --workers "$DB_WORKERS"
    done
    mb() { echo $(($1 / 1000000)); }
    for server in $DB_PEERS; do
        case $server in
        orthanc)
            # Orthanc's files and its SQLite index share one directory.
            stats=$(curl -fs "http://127.0.0.1:$DB_ORTHANC_PORT/statistics")
            jq -nc --argjson s "$stats" --argjson files "$(mb "$(du -sb "$DB_RUN/orthanc" | cut -f1)")" \
                --argjson index "$(mb "$(du -cb "$DB_RUN"/orthanc/index* | tail -n 1 | cut -f1)")" \
                '{label: "orthanc", mode: "store", name: "after-load", instances: $s.CountInstances,
                  studies: $s.CountStudies, store_mb: ($files - $index), db_mb: $index}'
            ;;
        hds)
            db=$(psql -h "$DB_PG_SOCKET" -U postgres -d "$DB_HDS_DB" -Atc \
                "select pg_database_size(current_database())")
            jq -nc --argjson files "$(mb "$(du -sb "$DB_RUN/hds-blobs" | cut -f1)")" \
                --argjson db "$(mb "$db")" \
                '{label: "hds", mode: "store", name: "after-load", store_mb: $files, db_mb: $db}'
            ;;
        esac | tee -a "$DB_RESULTS" >&2
    done
    for per in 50 1; do
        for server in $DB_PEERS; do
            ilog "$server: STOW sample of $DB_SAMPLE, $per per request"
            load "$server" --mode stow --name "stow$per" --dir "$DB_DATA/stow$per" \
                --per-request "$per" --workers "$DB_WORKERS"
        done
    done

    # QIDO, WADO: the cells alternate servers, so slow drifts of the shared machine hit both.
    for shape in patientid studydate patientname series instances; do
        for server in $DB_PEERS; do
            ilog "$server: QIDO $shape"
            load "$server" --mode qido --name "qido-$shape" --urls "$DB_DATA/urls/qido-$shape.txt" \
                --concurrency "$DB_QIDO_CONCURRENCY" --duration "$DB_DURATION" --warmup "$DB_WARMUP"
        done
    done
    for server in $DB_PEERS; do
        ilog "$server: metadata of the 1,000-instance study"
        load "$server" --mode metadata --name metadata --urls "$DB_DATA/urls/metadata.txt" \
            --concurrency 1 --duration "$DB_DURATION" --warmup "$DB_WARMUP" \
            --min-requests "$DB_METADATA_MIN"
    done
    for server in $DB_PEERS; do
        ilog "$server: WADO instance retrieve"
        load "$server" --mode wado --name wado-instance --urls "$DB_DATA/urls/wado-instance.txt" \
            --concurrency "$DB_WADO_CONCURRENCY" --duration "$DB_DURATION" --warmup "$DB_WARMUP"
    done

    # Bytes rather than requests: large instances, stored once, then retrieved from the disk
    # (page cache dropped, each file once) and again from memory.
    if [[ -n $DB_LARGE ]]; then
        for server in $DB_PEERS; do
            ilog "$server: STOW of the large instances, 1 per request, 2 workers"
            load "$server" --mode stow --name stow-large --dir "$DB_LARGE/large" --per-request 1 \
                --workers 2
        done
        for server in $DB_PEERS; do
            ilog "$server: WADO of the large instances, page cache dropped first"
            sync
            echo 3 >/proc/sys/vm/drop_caches
            load "$server" --mode wado --name wado-large-cold --urls "$DB_LARGE/urls/wado-large.txt" \
                --concurrency "$DB_WADO_CONCURRENCY" --once
            ilog "$server: WADO of the large instances, from memory"
            load "$server" --mode wado --name wado-large-warm --urls "$DB_LARGE/urls/wado-large.txt" \
                --concurrency "$DB_WADO_CONCURRENCY" --duration "$DB_DURATION" --warmup "$DB_WARMUP"
        done
    fi
    exit 0
fi

# ------------------------------------------------------------------------------------------
# The report: Markdown from a results file alone (`bench/dicom.sh --report FILE.jsonl` redoes it).
# ------------------------------------------------------------------------------------------
report() { # results.jsonl
    jq -r 'select(.mode == "run")
        | "DICOMweb: hds vs Orthanc \(.orthanc) + DICOMweb plugin \(.dicomweb) (SQLite index,",
          "StorageCompression false, StorageAccessOnFind \(.orthanc_find), otherwise as shipped);",
          "\(.data.load_instances) instances (variants of pydicom'"'"'s CT_small.dcm, 39 KB) in \(.data.load_studies)",
          "studies of \(.data.patients) patients; \(.cores) cores, \(.memory_gb) GB; loopback in a private network",
          "namespace; \(.date). Servers measured: \(.peers).",
          "",
          "Command: `\(.command)` at commit \(.commit).",
          ""' "$1"
    echo "| measurement | unit | hds | Orthanc | hds/Orthanc |"
    echo "|---|---|---:|---:|---:|"
    jq -rs '
        def cell($m; $name; $who): map(select(.mode == $m and .name == $name and .label == $who))[0];
        def num($x): if $x == null then "—" elif ($x | type) != "number" then $x
            elif $x >= 100 then ($x | round | tostring) else ($x * 10 | round / 10 | tostring) end;
        def ratio($a; $b): if ($a | type) == "number" and ($b | type) == "number" and $b > 0
            then "\(($a / $b * 100 | round) / 100)×" else "n/a" end;
        def row($title; $unit; $m; $name; $field):
            cell($m; $name; "hds")[$field] as $a | cell($m; $name; "orthanc")[$field] as $b
            | "| \($title) | \($unit) | \(num($a)) | \(num($b)) | \(ratio($a; $b)) |";
        . as $all
        | (map(select(.mode == "run"))[0]) as $run
        | ($run.data.load_instances) as $n
        | ($run.workers) as $w
        | (map(select(.mode == "disk"))[0]) as $disk
        | ($run.large) as $large
        | row("STOW load 0 → \($n), 50/request, \($w) workers"; "instances/s"; "stow"; "load"; "instances_per_s"),
          row("STOW at \($n), 50/request, \($w) workers"; "instances/s"; "stow"; "stow50"; "instances_per_s"),
          row("STOW at \($n), 1/request, \($w) workers"; "instances/s"; "stow"; "stow1"; "instances_per_s"),
          row("STOW at \($n), 1/request: request p50"; "ms"; "stow"; "stow1"; "p50_ms"),
          row("STOW at \($n), 1/request: request p99"; "ms"; "stow"; "stow1"; "p99_ms"),
          ((["patientid", "studies?PatientID={id}"], ["studydate", "studies?StudyDate={one month}"],
            ["patientname", "studies?PatientName={4 letters}*"], ["series", "studies/{s}/series"],
            ["instances", "studies/{s}/series/{se}/instances"]) as [$shape, $title]
           | (row("QIDO \($title) p50"; "ms"; "qido"; "qido-\($shape)"; "p50_ms"),
              row("QIDO \($title) p99"; "ms"; "qido"; "qido-\($shape)"; "p99_ms"))),
          row("metadata of the 1,000-instance study, p50"; "ms"; "metadata"; "metadata"; "p50_ms"),
          row("metadata of the 1,000-instance study, p99 (target < 200)"; "ms"; "metadata"; "metadata"; "p99_ms"),
          row("metadata of the 1,000-instance study, answer size"; "bytes"; "metadata"; "metadata"; "bytes_mean"),
          row("WADO instance retrieve, \($run.wado_concurrency) clients"; "instances/s"; "wado"; "wado-instance"; "rps"),
          row("WADO instance retrieve, \($run.wado_concurrency) clients"; "MB/s"; "wado"; "wado-instance"; "mb_per_s"),
          row("WADO instance retrieve, p99"; "ms"; "wado"; "wado-instance"; "p99_ms"),
          (if $large then
             row("STOW of \($large.count) large instances (\($large.bytes / 1e6 | round) MB), 1/request, 2 workers"; "MB/s"; "stow"; "stow-large"; "mb_per_s"),
             row("WADO large instance retrieve from disk (page cache dropped), \($run.wado_concurrency) clients"; "MB/s"; "wado"; "wado-large-cold"; "mb_per_s"),
             row("WADO large instance retrieve from memory, \($run.wado_concurrency) clients"; "MB/s"; "wado"; "wado-large-warm"; "mb_per_s"),
             row("WADO large instance retrieve from memory, p99"; "ms"; "wado"; "wado-large-warm"; "p99_ms")
           else empty end),
          row("store after the load: files"; "MB"; "store"; "after-load"; "store_mb"),
          row("store after the load: index (PostgreSQL database / SQLite file)"; "MB"; "store"; "after-load"; "db_mb"),
          "",
          "Disk: sequential read of a fresh \($disk.file_mb) MiB file on the filesystem of the stores, O_DIRECT, 1 MiB blocks:",
          "dd \($disk.dd_mb_per_s) MB/s, fio \($disk.fio_mb_per_s) MB/s. WADO instance retrieve reached "
          + (["hds", "orthanc"] | map(. as $who | ($all | cell("wado"; "wado-instance"; $who)) as $c
              | select($c != null) | "\($c.mb_per_s) MB/s (\($who), \($c.mb_per_s / $disk.dd_mb_per_s * 1000 | round / 10)% of dd)")
             | join(" and "))
          + ". The stored files fit in the page cache, so this sets the serving path against the disk, not disk against disk."
          + (if $large then
              " Large instances read from the disk: "
              + (["hds", "orthanc"] | map(. as $who | ($all | cell("wado"; "wado-large-cold"; $who)) as $c
                  | select($c != null) | "\($c.mb_per_s) MB/s (\($who), \($c.mb_per_s / $disk.dd_mb_per_s * 1000 | round / 10)% of dd)")
                 | join(" and ")) + "."
             else "" end)
        ' "$1"
    echo
    echo "hds/Orthanc above 1 is better for hds in instances/s and MB/s, below 1 in ms; MB are 10^6 bytes."
    echo
    echo "QIDO with $(jq -rs 'map(select(.mode == "run"))[0].qido_concurrency' "$1") client(s), metadata with 1, each cell $(jq -rs 'map(select(.mode == "run"))[0].duration' "$1") s after a warm-up. Every cell:"
    echo
    echo "| server | cell | requests | failed requests | failed instances | req/s | p50 ms | p99 ms | items/answer | bytes/answer |"
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    jq -r 'select(.mode == "stow" or .mode == "qido" or .mode == "metadata" or .mode == "wado")
        | "| \(.label) | \(.name) | \(.requests) | \(.errors // .failed_requests) | \(.failed_instances // "") | \(.rps // (.requests / .wall_s * 100 | round / 100)) | \(.p50_ms) | \(.p99_ms) | \(.items_mean // "") | \(.bytes_mean // "") |"' "$1"
    jq -r 'select(.first_error != null) | "\nFirst failure, \(.label) \(.name): \(.first_error | tostring | .[0:400])"' "$1"
}

if [[ ${1:-} == --report ]]; then
    report "$2"
    exit 0
fi

# ------------------------------------------------------------------------------------------
# Outer half: packages, builds, data, disk baseline, fresh stores, then the inner half.
# ------------------------------------------------------------------------------------------
export CARGO_TARGET_DIR="${DICOM_BENCH_TARGET:-$HOME/.cache/hds-bench-target}"
# shellcheck source=SCRIPTDIR/../scripts/lib.sh
source "$root/scripts/lib.sh"
log() { echo "[dicom-bench] $*" >&2; }

cache="${HDS_CACHE:-$HOME/.cache/hds}"
instances="${DICOM_BENCH_INSTANCES:-100000}"
peers="${DICOM_BENCH_PEERS:-hds orthanc}"
sample="${DICOM_BENCH_SAMPLE:-2500}"
workers="${DICOM_BENCH_WORKERS:-4}"
duration="${DICOM_BENCH_DURATION:-10}"
warmup="${DICOM_BENCH_WARMUP:-2}"
qido_concurrency="${DICOM_BENCH_QIDO_CONCURRENCY:-1}"
wado_concurrency="${DICOM_BENCH_WADO_CONCURRENCY:-4}"
metadata_min="${DICOM_BENCH_METADATA_MIN:-20}"
disk_mb="${DICOM_BENCH_DISK_MB:-2048}"
pool="${DICOM_BENCH_POOL:-16}"
orthanc_find="${DICOM_BENCH_ORTHANC_FIND:-Always}"
keep="${DICOM_BENCH_KEEP:-0}"
large_count="${DICOM_BENCH_LARGE_COUNT:-48}"
large_mb="${DICOM_BENCH_LARGE_MB:-64}"
hds_sync="${DICOM_BENCH_HDS_SYNC:-true}"
hds_commit="${DICOM_BENCH_HDS_SYNCHRONOUS_COMMIT:-on}"
venv="${DICOM_BENCH_VENV:-$HOME/.cache/hds-bench-venv}"
hds_port=18380
orthanc_port=18042
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
# One database per run: a finished run's cleanup (its store takes minutes to delete) must not
# drop the database of a run started meanwhile.
hds_db="hds_dicom_bench_$(tr '[:upper:]' '[:lower:]' <<<"$stamp")"
out="$cache/bench-results"
results="$out/$stamp-dicom.jsonl"
logs="$out/$stamp-dicom"
run="$cache/dicom-bench/run-$stamp"
command_line="$({ env | grep -E '^DICOM_BENCH_' || true; } | sort | tr '\n' ' ')bench/dicom.sh $*"
mkdir -p "$out" "$run"

for p in $peers; do
    [[ $p == hds || $p == orthanc ]] || { log "unknown peer '$p' in DICOM_BENCH_PEERS (hds, orthanc)"; exit 2; }
done
[[ $(id -u) == 0 ]] || { log "needs root (unshare --net)"; exit 2; }

# shellcheck disable=SC2317 # called by the trap
cleanup() {
    if [[ $keep != 1 ]]; then
        if [[ " $peers " == *" hds "* ]]; then
            psql -h "${pg_socket:-/var/run/postgresql}" -U postgres -d postgres -qc \
                "drop database if exists $hds_db with (force)" 2>/dev/null || true
        fi
        rm -rf "$run"
    fi
}
trap cleanup EXIT INT TERM

# --- packages, Python ----------------------------------------------------------------------
ensure_packages orthanc orthanc-dicomweb dcmtk fio jq curl iproute2 util-linux python3-venv
orthanc_version=$(dpkg-query -W -f='${Version}' orthanc)
dicomweb_version=$(dpkg-query -W -f='${Version}' orthanc-dicomweb)
dicomweb_plugin=$(find /usr/lib/orthanc -name 'libOrthancDicomWeb.so*' | sort -V | tail -n 1)
if ! "$venv/bin/python" -c 'import pydicom' 2>/dev/null; then
    log "creating a venv with pydicom in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'pydicom==3.*'
fi

# --- builds -------------------------------------------------------------------------------
if [[ -n ${DICOM_BENCH_LOAD_BIN:-} ]]; then
    load_bin="$DICOM_BENCH_LOAD_BIN"
    log "measuring with $load_bin (DICOM_BENCH_LOAD_BIN), not a fresh build"
else
    log "building dicom-load (release) in $CARGO_TARGET_DIR"
    (cd "$root" && cargo build --release -q -p hds-bench --bin dicom-load)
    load_bin="$CARGO_TARGET_DIR/release/dicom-load"
fi
hds_bin="${DICOM_BENCH_HDS_BIN:-$CARGO_TARGET_DIR/release/hds}"
if [[ " $peers " == *" hds "* && -n ${DICOM_BENCH_HDS_BIN:-} ]]; then
    log "measuring $hds_bin (DICOM_BENCH_HDS_BIN), not a fresh build"
elif [[ " $peers " == *" hds "* ]]; then
    log "building hds (release)"
    (cd "$root" && cargo build --release -q -p hds)
    if ! "$hds_bin" dicom --help >/dev/null 2>&1; then
        log "$hds_bin has no 'dicom' subcommand yet; DICOM_BENCH_PEERS=orthanc measures Orthanc alone"
        exit 1
    fi
fi

# --- data (cached by size and generator) ----------------------------------------------------
gen_hash=$(sha256sum "$root/bench/dicom_gen.py" | cut -c1-12)
data="$cache/dicom-bench-data/n$instances-s$sample-$gen_hash"
if [[ ! -f $data/manifest.json ]]; then
    log "generating $instances + 2×$sample instances into $data"
    rm -rf "$data.tmp"
    "$venv/bin/python" "$root/bench/dicom_gen.py" --out "$data.tmp" --instances "$instances" \
        --sample "$sample" >&2
    mv "$data.tmp" "$data"
fi
log "data: $(jq -c . "$data/manifest.json")"
large=""
large_manifest=null
if ((large_count > 0)); then
    large_hash=$(sha256sum "$root/bench/dicom_gen_large.py" | cut -c1-12)
    large="$cache/dicom-bench-data/large-c$large_count-m$large_mb-$large_hash"
    if [[ ! -f $large/manifest.json ]]; then
        log "generating $large_count large instances of ~$large_mb MB into $large"
        rm -rf "$large.tmp"
        "$venv/bin/python" "$root/bench/dicom_gen_large.py" --out "$large.tmp" \
            --count "$large_count" --mb "$large_mb" >&2
        mv "$large.tmp" "$large"
    fi
    large_manifest=$(jq -c . "$large/manifest.json")
    log "large instances: $large_manifest"
fi

# --- disk baseline: sequential read of a fresh file, bypassing the page cache ---------------
# The file lies on the filesystem of the servers' stores. dd and fio both read with O_DIRECT in
# 1 MiB blocks; fio at queue depth 1 as well, so it is the same access pattern in another tool.
log "disk: writing a fresh ${disk_mb} MiB file"
disk_file="$run/disk-test.bin"
dd if=/dev/urandom of="$disk_file" bs=1M count="$disk_mb" oflag=direct conv=fsync status=none
t0=$(date +%s.%N)
dd if="$disk_file" of=/dev/null bs=1M iflag=direct status=none
t1=$(date +%s.%N)
dd_mb_s=$(awk -v mb="$disk_mb" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", mb * 1048576 / 1e6 / (b - a) }')
fio_mb_s=$(fio --name=seqread --filename="$disk_file" --rw=read --bs=1M --direct=1 \
    --ioengine=psync --iodepth=1 --size="${disk_mb}M" --output-format=json 2>/dev/null \
    | jq '.jobs[0].read.bw_bytes / 1e6 | . * 10 | round / 10')
rm -f "$disk_file"
log "disk sequential read: dd $dd_mb_s MB/s, fio $fio_mb_s MB/s"
echo "{\"label\":\"disk\",\"mode\":\"disk\",\"name\":\"seq-read\",\"dd_mb_per_s\":$dd_mb_s,\"fio_mb_per_s\":$fio_mb_s,\"file_mb\":$disk_mb}" >>"$results"

# --- fresh stores and configs --------------------------------------------------------------
pg_socket=""
if [[ " $peers " == *" hds "* ]]; then
    ensure_postgres
    pg_socket=$(psql "$HDS_TEST_POSTGRES_URL" -Atc 'show unix_socket_directories' | cut -d, -f1 | xargs)
    PGOPTIONS="-c client_min_messages=warning" psql -h "$pg_socket" -U postgres -d postgres -q \
        -c "drop database if exists $hds_db with (force)" -c "create database $hds_db"
    mkdir -p "$run/hds-blobs"
    cat >"$run/hds.yaml" <<EOF
name: bench
postgres: {url: "host=$pg_socket user=postgres dbname=$hds_db options='-c synchronous_commit=$hds_commit'", poolSize: $pool}
auth: {mode: none}
storage: {url: "file://$run/hds-blobs", sync: $hds_sync}
EOF
fi
# Orthanc as shipped except: no jobs saved, no HTTP compression (the client does not ask for
# it anyway), StorageCompression off (the default, stated), index in SQLite (the default).
mkdir -p "$run/orthanc"
cat >"$run/orthanc.json" <<EOF
{
  "Name": "OrthancBench",
  "StorageDirectory": "$run/orthanc",
  "IndexDirectory": "$run/orthanc",
  "StorageCompression": false,
  "StorageAccessOnFind": "$orthanc_find",
  "SaveJobs": false,
  "HttpCompressionEnabled": false,
  "Plugins": ["$dicomweb_plugin"],
  "HttpPort": $orthanc_port,
  "DicomPort": 14242,
  "DicomAet": "ORTHANC",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/", "EnableWado": true, "WadoRoot": "/wado",
               "Host": "127.0.0.1:$orthanc_port", "Ssl": false}
}
EOF

# --- the measurements, in a private network namespace -----------------------------------------
export DB_PEERS="$peers" DB_RUN="$run" DB_LOGS="$logs" DB_RESULTS="$results" DB_DATA="$data" \
    DB_LOAD_BIN="$load_bin" DB_HDS_BIN="$hds_bin" DB_HDS_PORT="$hds_port" \
    DB_ORTHANC_PORT="$orthanc_port" DB_INSTANCES="$instances" DB_SAMPLE="$sample" \
    DB_WORKERS="$workers" DB_DURATION="$duration" DB_WARMUP="$warmup" \
    DB_QIDO_CONCURRENCY="$qido_concurrency" DB_WADO_CONCURRENCY="$wado_concurrency" \
    DB_METADATA_MIN="$metadata_min" DB_PG_SOCKET="$pg_socket" DB_HDS_DB="$hds_db" \
    DB_LARGE="$large"
commit="$(git -C "$root" rev-parse --short HEAD)"
git -C "$root" diff --quiet HEAD -- 2>/dev/null || commit="$commit + uncommitted changes"
jq -nc --arg orthanc "$orthanc_version" --arg dicomweb "$dicomweb_version" \
    --arg orthanc_find "$orthanc_find" --argjson data "$(cat "$data/manifest.json")" \
    --arg peers "$peers" --arg command "$command_line" --arg commit "$commit" \
    --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" --argjson cores "$(nproc)" \
    --argjson memory_gb "$(awk '/MemTotal/ { printf "%d", $2 / 1048576 + 0.5 }' /proc/meminfo)" \
    --argjson workers "$workers" --argjson wado_concurrency "$wado_concurrency" \
    --argjson qido_concurrency "$qido_concurrency" --argjson duration "$duration" \
    --argjson large "$large_manifest" \
    '{label: "run", mode: "run", $orthanc, $dicomweb, $orthanc_find, $data, $peers, $command,
      $commit, $date, $cores, $memory_gb, $workers, $wado_concurrency, $qido_concurrency,
      $duration, $large}' >>"$results"
log "measuring: $peers (results: $results)"
unshare --net -- bash "$self" __inner

# --- report ---------------------------------------------------------------------------------
report "$results" | tee "$out/$stamp-dicom.md"
log "table: $out/$stamp-dicom.md; raw results: $results; server logs: $logs-{hds,orthanc}.log"
