# bench/lib.sh: what the benchmark scripts share. Source it after `cd` to the repository root:
#
#   . bench/lib.sh
#
# PIDS      processes started by the script, stopped on exit (also on Ctrl-C or an error):
#           each gets TERM, up to 5 s to exit cleanly (the relay sends chat clients `end`),
#           then KILL.
# wait_for FILE PATTERN PID
#           waits (at most 60 s) until FILE has a line matching PATTERN; fails if PID exits.
# cpu_ticks PID
#           the CPU time (user + system, all threads, finished ones included) of a process,
#           in clock ticks.
# "${ON_SERVER[@]}" CMD... / "${ON_CLIENT[@]}" CMD...
#           runs CMD pinned (taskset, which execs it: `$!` is still CMD's PID) to the last CPU
#           for servers and to the first for load generators; with PIN=0, as it is. Unpinned,
#           the scheduler places a server's threads and its client's anew every run, and which
#           arrangement a run lands in moves a 2-core machine's figures more than what is
#           measured (BENCHMARKS.md, "Pinning"). Pinned, each server has a CPU of its own and
#           is saturated by the load: its round trips a second are then its cost. Every server
#           is pinned alike, so ratios stay fair. A machine with one CPU is never pinned.

PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_for() {
    local file=$1 pattern=$2 pid=$3 me
    me=$(basename "$0")
    for _ in $(seq 1 600); do
        if grep -q "$pattern" "$file" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "$me: process $pid exited before printing '$pattern'; see $file" >&2
            exit 1
        fi
        sleep 0.1
    done
    echo "$me: timed out waiting for '$pattern' in $file" >&2
    exit 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

PIN=${PIN:-1}
LAST_CPU=$(($(nproc) - 1))
if [ "$LAST_CPU" -lt 1 ] || ! command -v taskset >/dev/null; then
    PIN=0
fi
ON_SERVER=()
ON_CLIENT=()
if [ "$PIN" = 1 ]; then
    ON_SERVER=(taskset -c "$LAST_CPU")
    ON_CLIENT=(taskset -c 0)
fi
