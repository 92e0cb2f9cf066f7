#!/usr/bin/env bash
# A/B of hds binaries on STOW-RS: each binary on a fresh database and blob directory, loaded
# with the same instances, then one STOW sample at one instance per request and one at 50, in
# rounds that alternate the binaries, so the drift of a shared machine hits every binary alike.
# Beside instances/s it prints the CPU time per instance of hds and of PostgreSQL (every
# `postgres` process, from /proc), which moves far less with the machine's neighbours than
# throughput does.
#   bench/dicom-ab.sh /path/to/hds-a /path/to/hds-b ...
# Uses the data bench/dicom.sh generated ($HDS_CACHE/dicom-bench-data, its 100,000-instance
# set) and its release load generator; PostgreSQL as for the other benchmarks. Knobs:
# DICOM_AB_PRELOAD (20000), DICOM_AB_SAMPLE (5000), DICOM_AB_ROUNDS (3), DICOM_AB_WORKERS (4),
# DICOM_AB_SYNC (storage.sync, true), DICOM_AB_SYNCHRONOUS_COMMIT (PostgreSQL's, on),
# DICOM_AB_FRESH_FS (MB: each binary's files go to a new ext4 file system of that size on a
# loop device, root only; unset: a directory here), DICOM_BENCH_TARGET, BENCH_PG,
# BENCH_AB_PORT, DICOM_AB_LARGE (passes over a set of bench/dicom.sh's large instances per
# binary and round, one per request, 2 workers, each pass deleted after; 0, the default, skips
# the cell; DICOM_AB_LARGE_SET picks the set's directory, else the first found).
# A fresh file system per binary keeps the cost of creating files from
# depending on how many were deleted before: ext4 skips inodes freed shortly before
# (`recently_deleted`), which made hds's CPU per instance vary twofold between rounds.
set -euo pipefail
cache="${HDS_CACHE:-$HOME/.cache/hds}"
target="${DICOM_BENCH_TARGET:-$HOME/.cache/hds-bench-target}"
load="$target/release/dicom-load"
pg="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
port="${BENCH_AB_PORT:-18192}"
preload="${DICOM_AB_PRELOAD:-20000}"
sample="${DICOM_AB_SAMPLE:-5000}"
rounds="${DICOM_AB_ROUNDS:-3}"
workers="${DICOM_AB_WORKERS:-4}"
sync="${DICOM_AB_SYNC:-true}"
commit="${DICOM_AB_SYNCHRONOUS_COMMIT:-on}"
fresh_fs="${DICOM_AB_FRESH_FS:-}"
large_passes="${DICOM_AB_LARGE:-0}"
large=""
if (( large_passes > 0 )); then
    large="${DICOM_AB_LARGE_SET:-$(find "$cache/dicom-bench-data" -maxdepth 1 -name 'large-*' | sort | head -n 1)}"
    [[ -n $large && -d $large/large ]] || { echo "no large instances in $cache/dicom-bench-data (run bench/dicom.sh once)" >&2; exit 1; }
fi
[[ $# -ge 1 ]] || { echo "usage: bench/dicom-ab.sh HDS_BINARY..." >&2; exit 2; }
[[ -x $load ]] || { echo "no load generator at $load (run bench/dicom.sh once)" >&2; exit 1; }
data=$(find "$cache/dicom-bench-data" -maxdepth 1 -name 'n100000-*' | head -n 1)
[[ -n $data && -d $data/load ]] || { echo "no bench data in $cache/dicom-bench-data (run bench/dicom.sh once)" >&2; exit 1; }
need=$((preload + rounds * 2 * sample))
(( need <= 100000 )) || { echo "preload + rounds × 2 × sample is over the 100,000 files there are" >&2; exit 2; }

work="$(mktemp -d)"
new_blobs() { # an empty $work/blobs, on a file system of its own with DICOM_AB_FRESH_FS
    if mountpoint -q "$work/blobs"; then umount "$work/blobs"; fi
    rm -rf "$work/blobs" "$work/blobs.img" && mkdir -p "$work/blobs"
    if [[ -n $fresh_fs ]]; then
        truncate -s "${fresh_fs}M" "$work/blobs.img"
        mkfs.ext4 -q -F "$work/blobs.img"
        mount -o loop "$work/blobs.img" "$work/blobs"
    fi
}
trap 'if mountpoint -q "$work/blobs"; then umount "$work/blobs"; fi; rm -rf "$work"' EXIT
# Sets of symbolic links: the preload, then per round a one-per-request and a 50-per-request
# sample, all distinct, each sent to every binary.
mapfile -t files < <(find "$data/load" -name '*.dcm' | sort | head -n "$need")
link() { # dir first count
    mkdir -p "$1"
    printf '%s\0' "${files[@]:$2:$3}" | xargs -0 ln -s -t "$1"
}
link "$work/preload" 0 "$preload"
for r in $(seq "$rounds"); do
    link "$work/one-$r" $((preload + (2 * r - 2) * sample)) "$sample"
    link "$work/fifty-$r" $((preload + (2 * r - 1) * sample)) "$sample"
done

# shellcheck source=bench/ab-lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/ab-lib.sh"

printf '%-5s %-40s %-12s %12s %16s %16s\n' round binary cell instances/s "hds ms/instance" "pg ms/instance"
[[ -z $large ]] || echo "(large: MB/s over all passes, hds and PostgreSQL CPU ms per 64 MB instance)"
for r in $(seq "$rounds"); do
    for bin in "$@"; do
        psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS hds_dicom_ab WITH (FORCE)" \
            -qc "CREATE DATABASE hds_dicom_ab"
        new_blobs
        cat >"$work/hds.yaml" <<YAML
name: ab
postgres: {url: '$pg/hds_dicom_ab?options=-c%20synchronous_commit%3D$commit', poolSize: 16}
auth: {mode: none}
storage: {url: "file://$work/blobs", sync: $sync}
YAML
        start_hds dicom "$bin" "$work/hds.yaml" "$port" "$work/hds.log"
        url="http://127.0.0.1:$port"
        "$load" --url "$url" --mode stow --dir "$work/preload" --per-request 50 \
            --workers "$workers" >/dev/null
        psql "$pg/hds_dicom_ab" -qc "VACUUM ANALYZE" >/dev/null
        for cell in one fifty; do
            per=1
            [[ $cell == fifty ]] && per=50
            pg_mark
            h0=$(ticks "$pid")
            rate=$("$load" --url "$url" --mode stow --dir "$work/$cell-$r" --per-request "$per" \
                --workers "$workers" | grep -o '"instances_per_s":[0-9.]*' | cut -d: -f2)
            h1=$(ticks "$pid")
            pt=$(pg_since)
            printf '%-5s %-40s %-12s %12s %16s %16s\n' "$r" "${bin/#$HOME/\~}" "$per/request" "$rate" \
                "$(echo "scale=3; ($h1 - $h0) * 1000 / $hz / $sample" | bc)" \
                "$(echo "scale=3; $pt * 1000 / $hz / $sample" | bc)"
        done
        if [[ -n $large ]]; then
            pg_mark
            h0=$(ticks "$pid")
            mb=0 secs=0
            for _ in $(seq "$large_passes"); do
                line=$("$load" --url "$url" --mode stow --dir "$large/large" --per-request 1 --workers 2)
                mb=$(echo "$mb + $(jq .mb_per_s <<<"$line") * $(jq .wall_s <<<"$line")" | bc)
                secs=$(echo "$secs + $(jq .wall_s <<<"$line")" | bc)
                jq -e '.failed_instances == 0' <<<"$line" >/dev/null || { echo "large STOW failed: $line" >&2; exit 1; }
                while read -r study; do
                    curl -sf -o /dev/null -X DELETE "$url/$study"
                done < <(cut -d/ -f1-2 "$large/urls/wado-large.txt")
            done
            h1=$(ticks "$pid")
            pt=$(pg_since)
            n=$((large_passes * $(find "$large/large" -name '*.dcm' | wc -l)))
            printf '%-5s %-40s %-12s %12s %16s %16s\n' "$r" "${bin/#$HOME/\~}" "large MB/s" \
                "$(echo "scale=1; $mb / $secs" | bc)" \
                "$(echo "scale=3; ($h1 - $h0) * 1000 / $hz / $n" | bc)" \
                "$(echo "scale=3; $pt * 1000 / $hz / $n" | bc)"
        fi
        kill "$pid"
        wait "$pid" 2>/dev/null || true
    done
done
