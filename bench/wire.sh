#!/usr/bin/env bash
# bench/wire.sh: the wire's timing, side by side in one run (issue 9).
#
# Two relays, both built from this tree: one with every link off, one with echo.out held
# 50 ms (--link echo.out=delay:50ms). For 16 and 256 closed-loop flows, in interleaved rounds,
# loadgen measures each: round trips/s, RTT p50 and p99, and the relay's CPU per round trip
# from /proc. The held answers' lateness is the delayed relay's RTT minus 50 ms minus the
# undelayed relay's RTT at the same percentile: how late (or early) an answer leaves its due
# time. Idle CPU while datagrams wait shows that held datagrams cost nothing.
#
# Usage: bench/wire.sh            Knobs: ROUNDS=5 DURATION=3s FLOWS="16 256" bench/wire.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-3s}
FLOWS=${FLOWS:-"16 256"}
BIN=${CARGO_TARGET_DIR:-target}/release
OUT=bench/results
mkdir -p "$OUT"

PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

cargo build --release -p relay -p bench >&2
start() {
    local name=$1; shift
    RUST_LOG=warn "$BIN/relay" --http-port 0 --echo-port 0 --upper-port 0 --chat-port 0 --lossy-port 0 \
        --seed 1 "$@" >"$OUT/wire-$name.out" 2>/dev/null &
    PIDS+=($!)
    eval "${name}_pid=$!"
}
start off
# A deep history, so that the relay's own account below holds every held answer of its run.
start held --link echo.out=delay:50ms --history 200000
for _ in $(seq 100); do
    grep -q "Open http" "$OUT/wire-off.out" 2>/dev/null && grep -q "Open http" "$OUT/wire-held.out" 2>/dev/null && break
    sleep 0.1
done
addr() { awk '$1 == "echo" { sub("udp://", "", $2); print $2 }' "$OUT/wire-$1.out"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

# Idle: nothing in flight for 2 s after a burst was held, on the delayed relay.
"$BIN/loadgen" --target "$(addr held)" --flows 256 --duration 1s --warmup 0ms --timeout 500ms --label burst >/dev/null 2>&1
t0=$(cpu_ticks "$held_pid"); sleep 2; t1=$(cpu_ticks "$held_pid")
echo "idle CPU of the delayed relay, 2 s after a burst: $(( (t1 - t0) * 1000 / hz )) ms" >&2

: >"$OUT/wire.jsonl"
for round in $(seq "$ROUNDS"); do
    for flows in $FLOWS; do
        for name in off held; do
            pid_var="${name}_pid"; pid=${!pid_var}
            before=$(cpu_ticks "$pid")
            line=$("$BIN/loadgen" --target "$(addr "$name")" --flows "$flows" --duration "$DURATION" \
                --warmup 300ms --timeout 500ms --label "$name" 2>/dev/null)
            after=$(cpu_ticks "$pid")
            echo "$line" | python3 -c "
import json,sys
r=json.loads(sys.stdin.read()); r['round']=$round; r['flows']=$flows; r['cpu_ms']=($after-$before)*1000/$hz
print(json.dumps(r))" >>"$OUT/wire.jsonl"
        done
    done
    echo "round $round done" >&2
done

# The relay's own account: each held answer's link_hold (the wait it was given) and
# link_release (the wait it got), paired by dg, from its recorded events after a run of 4 s:
# about 1,280 answers at 16 flows and 20,000 at 256, all in its history.
http_of() { grep -oE 'http://[0-9.:]+' "$OUT/wire-$1.out" | head -1; }
: >"$OUT/wire-lateness.txt"
for flows in $FLOWS; do
    # Only this run's answers: those recorded after the last event so far.
    since=$(curl -s "$(http_of held)/api/events.jsonl" | tail -n 1 | python3 -c "
import json, sys
line = sys.stdin.read().strip()
print(json.loads(line)['seq'] if line else 0)")
    "$BIN/loadgen" --target "$(addr held)" --flows "$flows" --duration 4s --warmup 0ms --timeout 500ms \
        --label lateness >/dev/null 2>&1
    sleep 0.2
    curl -s "$(http_of held)/api/events.jsonl" | python3 -c "
import json, sys
hold, late = {}, []
for line in sys.stdin:
    e = json.loads(line)
    if e['seq'] <= $since:
        continue
    if e.get('kind') == 'link_hold' and e.get('hold_ms') is not None:
        hold[e['dg']] = e['hold_ms'] * 1000
    elif e.get('kind') == 'link_release' and e['dg'] in hold:
        late.append(e['held_us'] - hold.pop(e['dg']))
late.sort()
q = lambda p: late[min(len(late) - 1, int(p * len(late)))] / 1000
print(f'$flows flows: {len(late)} held answers left their due time by {q(0.5):+.2f} ms at p50, '
      f'{q(0.99):+.2f} ms at p99, {late[0]/1000:+.2f} to {late[-1]/1000:+.2f} ms in all (the relay\'s own link_hold and link_release)')
" >>"$OUT/wire-lateness.txt"
done

python3 - "$OUT/wire.jsonl" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| flows | relay | round trips/s | RTT p50 | RTT p99 | CPU per round trip |")
print("|---:|---|---:|---:|---:|---:|")
summary = {}
for flows in sorted({r["flows"] for r in rows}):
    for name in ("off", "held"):
        rs = [r for r in rows if r["flows"] == flows and r["label"] == name]
        rt = statistics.median(r["rt_per_s"] for r in rs)
        p50 = statistics.median(r["p50_us"] for r in rs)
        p99 = statistics.median(r["p99_us"] for r in rs)
        cpu = statistics.median(r["cpu_ms"] * 1000 / max(r["round_trips"], 1) for r in rs)
        summary[(flows, name)] = (p50, p99)
        label = "links off" if name == "off" else "echo.out delay 50 ms"
        print(f"| {flows} | {label} | {rt:,.0f} | {p50/1000:.2f} ms | {p99/1000:.2f} ms | {cpu:.1f} µs |")
print()
for flows in sorted({r["flows"] for r in rows}):
    (p50o, p99o), (p50h, p99h) = summary[(flows, "off")], summary[(flows, "held")]
    print(f"{flows} flows: answers leave {(p50h - 50_000 - p50o)/1000:+.2f} ms from their due time at p50, "
          f"{(p99h - 50_000 - p99o)/1000:+.2f} ms at p99 (delayed RTT − 50 ms − undelayed RTT)")
PY
cat "$OUT/wire-lateness.txt"
