#!/usr/bin/env bash
# The WebSocket bridge of two relay binaries, A/B, in one run: is the new relay's bridge as fast
# as an earlier build's?
#
#   git worktree add /tmp/prev f7017bd && (cd /tmp/prev && cargo build --release -p relay)
#   RELAY_B=/tmp/prev/target/release/relay bench/bridge-ab.sh
#
# A is the relay built from this tree (RELAY_A to use another binary), B the other build. Both
# run side by side, each on its own ports, with the same flags. Every round measures, at
# CONNECTIONS connections, through A and through B: every event of each round trip (what the
# page asks for) and the replies only (`subscribe` with `"kinds":["client_recv"]`); and, with
# `loadgen` at as many flows, each relay's echo server straight over UDP, with nobody watching
# and while a projector session (`subscribe all` with `batch`) reads every event.
# The kinds come in a shuffled order each round, A and B back to back for each, by turns A
# first or B first, so neither binary always runs first or after the same run. websocat, when
# on PATH, runs once a round as a yardstick, bridging to A's echo server. Ratios A ÷ B are taken
# within a round (the runs seconds apart), then their median and range. The CPU time of each
# relay (websocat's added for its row) around each run comes from /proc/PID/stat, warm-up
# included.
#
# Knobs: ROUNDS=10 DURATION=2s CONNECTIONS=16 RELAY_A=target/release/relay RELAY_B=(required)
#        KINDS="echo watched" (only those streams, and no websocat)
#        FLAGS_A="" FLAGS_B="" add flags to one relay: FLAGS_A="--history 0" compares a relay that
#        records nothing, like builds from before the history (issue 11), at equal work.
#        POOL="a.jsonl b.jsonl" reports over the raw lines of earlier runs together, measuring nothing.
# Results: bench/results/bridge-ab.jsonl (raw) and bridge-ab.md (table). Loopback only; every
# load run is bounded in time, and everything started here is stopped on exit.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-10}
DURATION=${DURATION:-2s}
CONNECTIONS=${CONNECTIONS:-16}
RELAY_B=${RELAY_B:?set RELAY_B to the relay binary to compare against, e.g. /tmp/prev/target/release/relay}
out=bench/results
mkdir -p "$out"
raw="$out/bridge-ab.jsonl"
bin=target/release
RELAY_A=${RELAY_A:-$bin/relay}

# report RAW WHAT: the tables and ratios of RAW's lines; WHAT says how the rounds were run.
report() {
    python3 - "$1" "$(getconf CLK_TCK)" "$CONNECTIONS" "$2" "$RELAY_A ${FLAGS_A:-}" "$RELAY_B ${FLAGS_B:-}" <<'PY'
import json, statistics, sys
raw, clk, conns, runs_were, relay_a, relay_b = sys.argv[1:7]
rows = [json.loads(l) for l in open(raw) if l.strip()]
us_per_tick = 1e6 / int(clk)
rounds = sorted({r["round"] for r in rows})
def runs(which, kind):
    return [r for r in rows if r["relay"] == which and r["kind"] == kind]
def cpu(r):
    user = r["relay_user_ticks"] + r["websocat_user_ticks"]
    sys_ = r["relay_sys_ticks"] + r["websocat_sys_ticks"]
    n = max(r["round_trips_total"], 1)
    client = (r["cpu_user_ticks"] + r["cpu_sys_ticks"]) * us_per_tick / n
    return (user + sys_) * us_per_tick / n, user * us_per_tick / n, sys_ * us_per_tick / n, client
names = {"a": "A (new)", "b": "B (old)", "websocat": "websocat + A's echo"}
kinds = {"all": "every event", "replies": "replies only", "raw": "binary frames, no events",
         "echo": "echo over UDP, unwatched", "watched": "echo over UDP, a projector watching"}
print(f"A = `{relay_a}`, B = `{relay_b}`. {conns} connections, {len(rounds)} interleaved rounds "
      f"({runs_were}). Medians over rounds, range in brackets.")
print()
print("| relay | stream | round trips/s | range | p50 µs | p99 µs | relay CPU µs per round trip | user | system | client CPU µs |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for which, kind in (("a", "all"), ("b", "all"), ("a", "replies"), ("b", "replies"), ("websocat", "raw"),
                    ("a", "echo"), ("b", "echo"), ("a", "watched"), ("b", "watched")):
    rs = runs(which, kind)
    if not rs:
        continue
    rate = [r["rt_per_s"] for r in rs]
    c = [cpu(r) for r in rs]
    med = lambda i: statistics.median(x[i] for x in c)
    print(f"| {names[which]} | {kinds[kind]} | {statistics.median(rate):,.0f} | {min(rate):,.0f}–{max(rate):,.0f} "
          f"| {statistics.median(r['p50_us'] for r in rs):,.0f} | {statistics.median(r['p99_us'] for r in rs):,.0f} "
          f"| {med(0):.1f} | {med(1):.1f} | {med(2):.1f} | {'–' if kind in ('echo', 'watched') else f'{med(3):.1f}'} |")
print()
def ratio(kind, metric, invert=False):
    # Within each round, then the median and range over rounds.
    by_round = {}
    for r in rows:
        if r["kind"] == kind and r["relay"] in ("a", "b"):
            by_round.setdefault(r["round"], {})[r["relay"]] = metric(r)
    vals = sorted((v["b"] / v["a"]) if invert else (v["a"] / v["b"])
                  for v in by_round.values() if "a" in v and "b" in v and v["a"] and v["b"])
    if not vals:
        return "n/a"
    return f"{statistics.median(vals):.2f} ({vals[0]:.2f}–{vals[-1]:.2f}, {len(vals)} rounds)"
for kind in ("all", "replies", "echo", "watched"):
    if runs("a", kind):
        print(f"- {kinds[kind]}: A ÷ B round trips/s = {ratio(kind, lambda r: r['rt_per_s'])}; "
              f"B ÷ A relay CPU per round trip = {ratio(kind, lambda r: cpu(r)[0], invert=True)} (≥ 1 favours A)")
# The byte budget check: what one session sent per second at the highest rate seen.
for which in ("a", "b"):
    ws = [r for r in rows if r["relay"] == which and r["kind"] == "watched"]
    if ws:
        print(f"- {names[which]}'s projector read {statistics.median(r['projector_events'] for r in ws):,.0f} events "
              f"per run (median), missed {statistics.median(r['projector_missed'] for r in ws):,.0f}")
fastest = max((r for r in rows if r["relay"] == "a" and r["kind"] in ("all", "replies")), key=lambda r: r["rt_per_s"], default=None)
if fastest:
    per_session = fastest["rt_per_s"] / max(fastest["connections"], 1) * 64
    print(f"- the fastest A run sent {per_session / 1024:,.0f} KiB/s of payload per session "
          f"(64-byte datagrams), against A's default byte budget of 1,024 KiB/s")
PY
}

# POOL="run1.jsonl run2.jsonl ...": measure nothing, report over the raw lines of several earlier
# runs together (each run's rounds kept apart), into bridge-ab-pooled.md.
if [ -n "${POOL:-}" ]; then
    # shellcheck disable=SC2086 # POOL is a list of files
    python3 -c 'import json, sys
for i, path in enumerate(sys.argv[1:]):
    for line in open(path):
        if line.strip():
            r = json.loads(line); r["round"] += 1000 * i; print(json.dumps(r))' $POOL > "$out/bridge-ab-pooled.jsonl"
    report "$out/bridge-ab-pooled.jsonl" "pooled from $(wc -w <<<"$POOL") runs" > "$out/bridge-ab-pooled.md"
    cat "$out/bridge-ab-pooled.md"
    exit 0
fi

: > "$raw"
cargo build --release -p relay -p bench >&2

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# start_relay NAME BINARY: starts a relay on free ports, with the per-session send limit raised
# as in bridge.sh (the benchmark measures the bridge, not the rate limit). The byte budget
# (--max-bytes-per-sec, 1 MiB/s by default where the binary has it) is left as it is: small round
# trips stay far below it, and a refused send would stop bridgebench with an error.
start_relay() {
    local name=$1 relay=$2
    shift 2
    "$relay" --http-port 0 --echo-port 0 --upper-port 0 --chat-port 0 --lossy-port 0 --seed 1 \
        --max-sends-per-sec 1000000 "$@" > "$out/bridge-ab-$name.out" 2> "$out/bridge-ab-$name.log" &
    pids+=($!)
    eval "pid_$name=$!"
    for _ in $(seq 100); do
        grep -q "Open http" "$out/bridge-ab-$name.out" 2>/dev/null && break
        sleep 0.1
    done
    local http
    http=$(grep -oE 'Open http://[^/]+' "$out/bridge-ab-$name.out" | sed 's|Open http://||')
    [ -n "$http" ] || { echo "relay $name ($relay) did not start; see $out/bridge-ab-$name.log" >&2; exit 1; }
    eval "http_$name=$http"
    eval "echo_$name=$(grep -oE 'echo +udp://[^ ]+' "$out/bridge-ab-$name.out" | sed 's|.*udp://||')"
}
# shellcheck disable=SC2086 # the flags are words on purpose
start_relay a "$RELAY_A" ${FLAGS_A:-}
# shellcheck disable=SC2086
start_relay b "$RELAY_B" ${FLAGS_B:-}
echo "A: $RELAY_A ${FLAGS_A:-} (pid $pid_a, http $http_a); B: $RELAY_B ${FLAGS_B:-} (pid $pid_b, http $http_b)" >&2

websocat_pid=0
if command -v websocat >/dev/null; then
    ws_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    websocat -b "ws-l:127.0.0.1:$ws_port" "udp:$echo_a" > "$out/bridge-ab-websocat.log" 2>&1 &
    websocat_pid=$!
    pids+=($websocat_pid)
    sleep 0.5
else
    echo "websocat not found: its rows are skipped (cargo install websocat)" >&2
fi

# A process's user and system CPU time so far, in clock ticks (fields 14 and 15 of
# /proc/PID/stat; right for relay and websocat, whose names hold no spaces).
ticks() { awk '{ print $14, $15 }' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }

# run ROUND WHICH KIND: one bridgebench run through relay WHICH (a, b, or websocat), every
# event (all) or replies only (replies), tagged with the round and the CPU the bridge spent:
# the relay's, or websocat's plus relay A's (its echo server).
run() {
    local round=$1 which=$2 kind=$3 pid line before_r before_w
    local args=(--connections "$CONNECTIONS" --duration "$DURATION")
    case $which in
        a) pid=$pid_a; args+=(--mode relay --url "ws://$http_a/ws") ;;
        b) pid=$pid_b; args+=(--mode relay --url "ws://$http_b/ws") ;;
        websocat) pid=$pid_a; args+=(--mode websocat --url "ws://127.0.0.1:$ws_port/") ;;
    esac
    [ "$kind" = replies ] && args+=(--kinds client_recv)
    before_r=$(ticks "$pid"); before_w=$(ticks "$websocat_pid")
    if [ "$kind" = echo ] || [ "$kind" = watched ]; then
        # The relay's echo server straight over UDP: with nobody watching (what datagram
        # identity must not slow down), or while a projector session reads every event, as in
        # bridge.sh (it starts first and outlasts the load). loadgen's fields are renamed to
        # bridgebench's; the relay's CPU includes what it spent on the projector.
        local target=$echo_a http=$http_a projector="" events=0
        [ "$which" = b ] && target=$echo_b http=$http_b
        if [ "$kind" = watched ]; then
            "$bin/bridgebench" --mode projector --url "ws://$http/ws" --duration "$DURATION" \
                --warmup 800ms --label "$which-projector" > "$out/bridge-ab-projector.json" &
            projector=$!
            sleep 0.2
        fi
        line=$("$bin/loadgen" --target "$target" --flows "$CONNECTIONS" --duration "$DURATION" \
            --warmup 300ms --label "$which-$kind")
        if [ -n "$projector" ]; then
            wait "$projector"
            events=$(tail -n 1 "$out/bridge-ab-projector.json")
        fi
        line=$(python3 -c 'import json, sys; r = json.loads(sys.argv[1]); p = json.loads(sys.argv[2])
r.update(connections=r["flows"], round_trips_total=r["round_trips_all"], cpu_user_ticks=0, cpu_sys_ticks=0)
if p: r.update(projector_events=p["events"], projector_missed=p["missed"])
print(json.dumps(r))' "$line" "$events")
    else
        line=$("$bin/bridgebench" "${args[@]}" --label "$which-$kind")
    fi
    python3 - "$line" "$round" "$which" "$kind" "$before_r" "$(ticks "$pid")" \
        "$before_w" "$(ticks "$websocat_pid")" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
(ru0, rs0), (ru1, rs1), (wu0, ws0), (wu1, ws1) = (map(int, a.split()) for a in sys.argv[5:9])
r.update(round=int(sys.argv[2]), relay=sys.argv[3], kind=sys.argv[4],
         relay_user_ticks=ru1 - ru0, relay_sys_ticks=rs1 - rs0,
         websocat_user_ticks=wu1 - wu0, websocat_sys_ticks=ws1 - ws0)
print(json.dumps(r))
PY
}

read -r -a kinds <<< "${KINDS:-all replies echo watched}"
[ "$websocat_pid" != 0 ] && [ -z "${KINDS:-}" ] && kinds+=(raw)
start=$(date +%s)
for round in $(seq "$ROUNDS"); do
    # Each round takes the kinds in a shuffled order (seeded by the round), and runs A and B
    # back to back for each, A first in every other round (the name's length staggers the
    # kinds): no run always follows the same one, and the two runs of a pair are seconds apart.
    for kind in $(python3 -c 'import random, sys; r = random.Random(int(sys.argv[1])); k = sys.argv[2:]; r.shuffle(k); print(*k)' \
        "$round" "${kinds[@]}"); do
        if [ "$kind" = raw ]; then
            run "$round" websocat raw >> "$raw"
        elif (((round + ${#kind}) % 2)); then
            run "$round" b "$kind" >> "$raw"
            run "$round" a "$kind" >> "$raw"
        else
            run "$round" a "$kind" >> "$raw"
            run "$round" b "$kind" >> "$raw"
        fi
    done
    echo "round $round of $ROUNDS done" >&2
done
seconds=$(($(date +%s) - start))

report "$raw" "rounds of $DURATION, load runs $seconds s in all" > "$out/bridge-ab.md"
cat "$out/bridge-ab.md"
