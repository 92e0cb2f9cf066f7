# What the A/B scripts share (sourced, not run): starting an hds service, and the CPU time of
# hds and of PostgreSQL from /proc. Figures per operation move far less with a shared
# machine's neighbours than throughput does.

ticks() { # CPU ticks of one process (user + system), 0 once it is gone
    awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
declare -A pg_start
pg_mark() { # remembers every postgres process's ticks
    pg_start=()
    local p
    for p in $(pgrep -x postgres); do pg_start[$p]=$(ticks "$p"); done
}
pg_since() { # PostgreSQL's ticks since pg_mark; a backend started since counts whole
    local t=0 p
    for p in $(pgrep -x postgres); do t=$((t + $(ticks "$p") - ${pg_start[$p]:-0})); done
    echo "$t"
}
hz=$(getconf CLK_TCK)

start_hds() { # service binary config port log: starts `hds service`, sets pid, waits for it
    RUST_LOG=warn "$2" "$1" --config "$3" --listen "127.0.0.1:$4" >"$5" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf "http://127.0.0.1:$4/health/check" >/dev/null && return 0
        sleep 0.2
    done
    echo "$2 did not start:" >&2
    tail -n 20 "$5" >&2
    exit 1
}
