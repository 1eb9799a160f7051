#!/usr/bin/env bash
# bench/recording.sh: what the relay's history (on by default) costs its echo server, and what
# exporting a full capture while traffic flows costs it, side by side in one run.
#
# Four echo servers run at once, each measured by `loadgen` in turn, in a shuffled order every
# round, at FLOWS flows:
#   recording   the relay with every flag at its default: the history records every event and
#               every datagram;
#   no-history  the same binary with `--history 0`: events are still built and counted for
#               `/metrics`, nothing is kept;
#   tokio       the minimal tokio echo (bench/src/bin/tokio_echo.rs): the target's yardstick;
#   exporting   the recording relay again, while `GET /api/capture.pcapng` downloads its whole
#               history (5,000 datagrams, its default) every EXPORT_EVERY seconds, the download
#               started before the measurement and kept going until it ends.
# Ratios are taken within a round (the runs seconds apart), then their median and range; the
# CPU time of each relay around each run comes from /proc/PID/stat.
#
# Usage: bench/recording.sh        (about 3 minutes once built)
# Knobs: ROUNDS=16 DURATION=1s WARMUP=200ms FLOWS="16 256" EXPORT_EVERY=0.25 PIN=1
#        (PIN=1: each server on a CPU of its own, the load on another; see bench/lib.sh)
# Results: bench/results/recording.jsonl (raw) and recording.md (table). Loopback only; every
# load is bounded in time, and everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-16}
DURATION=${DURATION:-1s}
WARMUP=${WARMUP:-200ms}
FLOWS=${FLOWS:-"16 256"}
EXPORT_EVERY=${EXPORT_EVERY:-0.25}
OUT=bench/results
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"
RAW="$OUT/recording.jsonl"
: >"$RAW"

. bench/lib.sh

echo "== building (cargo build --release -p relay -p bench)"
cargo build --release -p relay -p bench

# relay NAME FLAGS...: starts a relay on free ports; sets NAME_PID, NAME_ECHO and NAME_HTTP.
relay() {
    local name=$1
    shift
    RUST_LOG=warn "${ON_SERVER[@]}" "$BIN/relay" --http-port 0 --echo-port 0 --upper-port 0 --chat-port 0 \
        --lossy-port 0 --seed 1 "$@" >"$OUT/recording-$name.out" 2>"$OUT/recording-$name.log" &
    local pid=$!
    PIDS+=("$pid")
    wait_for "$OUT/recording-$name.out" "Open http" "$pid"
    printf -v "${name}_PID" %s "$pid"
    printf -v "${name}_ECHO" %s "$(awk '$1 == "echo" { sub("udp://", "", $2); print $2 }' "$OUT/recording-$name.out")"
    printf -v "${name}_HTTP" %s "$(grep -o 'http://[0-9.:]*' "$OUT/recording-$name.out" | head -1)"
}
relay recording
relay nohistory --history 0
"${ON_SERVER[@]}" "$BIN/tokio-echo" 127.0.0.1:0 >"$OUT/recording-tokio.out" 2>&1 &
TOKIO_PID=$!
PIDS+=("$TOKIO_PID")
wait_for "$OUT/recording-tokio.out" "listening udp://" "$TOKIO_PID"
TOKIO_ECHO=$(sed -n 's/.*udp:\/\///p' "$OUT/recording-tokio.out")
echo "   recording $recording_ECHO ($recording_HTTP), no-history $nohistory_ECHO, tokio $TOKIO_ECHO"

# Fill the history before anything is measured, so every export is a full one.
"$BIN/loadgen" --target "$recording_ECHO" --flows 16 --duration 1s --warmup 0ms >/dev/null 2>&1

EXPORTS="$OUT/recording-exports.txt"
: >"$EXPORTS"
# exporter: downloads the capture every EXPORT_EVERY s until killed; one line per download.
exporter() {
    while true; do
        curl -s -o /dev/null -w '%{size_download} %{time_total}\n' "$recording_HTTP/api/capture.pcapng" >>"$EXPORTS" || true
        sleep "$EXPORT_EVERY"
    done
}

# run ROUND FLOWS NAME: one loadgen run against NAME, one JSON line into RAW.
run() {
    local round=$1 flows=$2 name=$3 target pid exporting=""
    case $name in
        recording) target=$recording_ECHO pid=$recording_PID ;;
        no-history) target=$nohistory_ECHO pid=$nohistory_PID ;;
        tokio) target=$TOKIO_ECHO pid=$TOKIO_PID ;;
        exporting) target=$recording_ECHO pid=$recording_PID ;;
    esac
    if [ "$name" = exporting ]; then
        exporter &
        exporting=$!
    fi
    local before after line
    before=$(cpu_ticks "$pid")
    line=$("${ON_CLIENT[@]}" "$BIN/loadgen" --target "$target" --flows "$flows" --duration "$DURATION" --warmup "$WARMUP" \
        --label "$name" 2>/dev/null | tail -1)
    after=$(cpu_ticks "$pid")
    if [ -n "$exporting" ]; then
        kill "$exporting" 2>/dev/null || true
        wait "$exporting" 2>/dev/null || true
    fi
    echo "{\"round\":$round,\"flows\":$flows,\"cpu_ticks\":$((after - before)),\"run\":$line}" >>"$RAW"
}

for flows in $FLOWS; do
    echo "== $flows flows, $ROUNDS rounds of $DURATION"
    for round in $(seq 1 "$ROUNDS"); do
        for name in $(printf '%s\n' recording no-history tokio exporting | shuf); do
            run "$round" "$flows" "$name"
        done
    done
done

python3 - "$RAW" "$EXPORTS" "$(getconf CLK_TCK)" "$DURATION" "$WARMUP" "$PIN" >"$OUT/recording.md" <<'PY'
import json, statistics, sys
raw, exports, tck = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = [json.loads(l) for l in open(raw) if l.strip()]
def secs(s):
    return float(s[:-2]) / 1000 if s.endswith("ms") else float(s[:-1])
span = secs(sys.argv[4]) + secs(sys.argv[5])
by = {}
for r in rows:
    by.setdefault((r["flows"], r["round"]), {})[r["run"]["label"]] = r
names = ["recording", "no-history", "tokio", "exporting"]
print("| flows | server | round trips/s (median) | CPU µs per round trip | ÷ tokio, per round: median (range) | ÷ recording |")
print("|---:|---|---:|---:|---:|---:|")
for flows in sorted({k[0] for k in by}):
    rounds = [v for k, v in by.items() if k[0] == flows and all(n in v for n in names)]
    for n in names:
        rts = [v[n]["run"]["rt_per_s"] for v in rounds]
        cpu = [v[n]["cpu_ticks"] / tck / span / max(v[n]["run"]["rt_per_s"], 1) * 1e6 for v in rounds]
        vs_tokio = sorted(v[n]["run"]["rt_per_s"] / v["tokio"]["run"]["rt_per_s"] for v in rounds)
        vs_rec = sorted(v[n]["run"]["rt_per_s"] / v["recording"]["run"]["rt_per_s"] for v in rounds)
        print(f"| {flows} | {n} | {statistics.median(rts):,.0f} | {statistics.median(cpu):.1f} | "
              f"{statistics.median(vs_tokio):.2f} ({vs_tokio[0]:.2f}–{vs_tokio[-1]:.2f}) | "
              f"{statistics.median(vs_rec):.2f} ({vs_rec[0]:.2f}–{vs_rec[-1]:.2f}) |")
sizes = [l.split() for l in open(exports) if l.strip()]
if sizes:
    b = statistics.median(float(s[0]) for s in sizes)
    t = statistics.median(float(s[1]) for s in sizes)
    print(f"\n{len(sizes)} captures downloaded while `exporting` ran, median {b/1e6:.2f} MB in {t*1000:.0f} ms each.")
print("\nCPU per round trip counts the whole relay process over the warm-up and the run (the tokio row: the tokio echo)."
      + (" Each server was pinned to a CPU of its own, the load to the other (PIN=1)." if sys.argv[6] == "1" else ""))
PY
cat "$OUT/recording.md"
