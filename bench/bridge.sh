#!/usr/bin/env bash
# The bridge benchmark: round trips through the relay's WebSocket bridge against websocat and
# against direct UDP, and the echo server's speed while a projector watches every event.
#
#   bench/bridge.sh            # needs websocat on PATH (cargo install websocat) for its rows
#
# The relay is measured twice: sending every event of a round trip (what the page asks for),
# and only the replies (`subscribe` with `"kinds":["client_recv"]`, what a script may ask for).
# Everything runs side by side in one go, in interleaved rounds, on loopback only; each load
# run is bounded in time. Results: bench/results/bridge.jsonl (raw) and bridge.md (table).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-2s}
out=bench/results
mkdir -p "$out"
raw="$out/bridge.jsonl"
: > "$raw"

cargo build --release -p relay -p bench >&2
bin=target/release

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; }
trap cleanup EXIT

# The relay, with the per-session send limits raised: the benchmark measures the bridge, not the
# rate limits that protect the servers from a runaway tab. One connection's 64-byte round trips
# come near the default byte budget of 1 MiB/s at 16,000 a second.
limits=(--max-sends-per-sec 1000000)
if "$bin/relay" --help | grep -q -- --max-bytes-per-sec; then
    limits+=(--max-bytes-per-sec 1099511627776)
fi
"$bin/relay" --http-port 0 --echo-port 0 --upper-port 0 --chat-port 0 --lossy-port 0 --seed 1 \
    "${limits[@]}" > "$out/bridge-relay.out" 2> "$out/bridge-relay.log" &
relay_pid=$!
pids+=($relay_pid)
"$bin/tokio-echo" 127.0.0.1:0 > "$out/bridge-tokio.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
    grep -q "Open http" "$out/bridge-relay.out" 2>/dev/null && grep -q . "$out/bridge-tokio.out" && break
    sleep 0.1
done
echo_addr=$(grep -oE 'echo +udp://[^ ]+' "$out/bridge-relay.out" | sed 's|.*udp://||')
http_addr=$(grep -oE 'Open http://[^/]+' "$out/bridge-relay.out" | sed 's|Open http://||')
tokio_addr=$(grep -oE '127\.0\.0\.1:[0-9]+' "$out/bridge-tokio.out" | head -1)
[ -n "$echo_addr" ] && [ -n "$http_addr" ] && [ -n "$tokio_addr" ] || { echo "servers did not start" >&2; exit 1; }

have_websocat=false
if command -v websocat >/dev/null; then
    ws_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    websocat -b "ws-l:127.0.0.1:$ws_port" "udp:$echo_addr" > "$out/bridge-websocat.log" 2>&1 &
    websocat_pid=$!
    pids+=($websocat_pid)
    sleep 0.5
    have_websocat=true
else
    echo "websocat not found: its rows are skipped (cargo install websocat)" >&2
fi

# A process's user and system CPU time so far, in clock ticks (fields 14 and 15 of
# /proc/PID/stat; right for relay and websocat, whose names hold no spaces).
ticks() { awk '{ print $14, $15 }' "/proc/$1/stat" 2>/dev/null || echo "0 0"; }

# Runs bridgebench and adds to its JSON line the CPU time the bridge spent meanwhile: the
# relay's (its bridge and echo server), and websocat's when it is the bridge under test.
bridge() {
    local before_r before_w line
    before_r=$(ticks "$relay_pid"); before_w=$(ticks "${websocat_pid:-0}")
    line=$("$bin/bridgebench" "$@")
    python3 - "$line" "$before_r" "$(ticks "$relay_pid")" "$before_w" "$(ticks "${websocat_pid:-0}")" <<'PY'
import json, sys
r = json.loads(sys.argv[1])
(ru0, rs0), (ru1, rs1), (wu0, ws0), (wu1, ws1) = (map(int, a.split()) for a in sys.argv[2:6])
r.update(relay_user_ticks=ru1 - ru0, relay_sys_ticks=rs1 - rs0,
         websocat_user_ticks=wu1 - wu0, websocat_sys_ticks=ws1 - ws0)
print(json.dumps(r))
PY
}

for round in $(seq "$ROUNDS"); do
    for n in 1 16; do
        "$bin/loadgen" --target "$echo_addr" --flows "$n" --duration "$DURATION" --warmup 300ms \
            --label "udp-direct" >> "$raw"
        bridge --mode relay --url "ws://$http_addr/ws" --connections "$n" \
            --duration "$DURATION" --label "relay-bridge" >> "$raw"
        bridge --mode relay --url "ws://$http_addr/ws" --connections "$n" \
            --duration "$DURATION" --kinds client_recv --label "relay-bridge-replies" >> "$raw"
        if $have_websocat; then
            bridge --mode websocat --url "ws://127.0.0.1:$ws_port/" --connections "$n" \
                --duration "$DURATION" --label "websocat" >> "$raw"
        fi
    done
    # The echo server while a projector subscribes to everything, against the bare tokio echo
    # and against itself unwatched. The projector starts first and outlasts the load (its
    # warm-up is only a longer run here), so the whole measured load is watched.
    "$bin/loadgen" --target "$tokio_addr" --flows 16 --duration "$DURATION" --warmup 300ms \
        --label "tokio-echo" >> "$raw"
    "$bin/bridgebench" --mode projector --url "ws://$http_addr/ws" --duration "$DURATION" \
        --warmup 800ms --label "projector" >> "$raw" &
    projector=$!
    sleep 0.2
    "$bin/loadgen" --target "$echo_addr" --flows 16 --duration "$DURATION" --warmup 300ms \
        --label "relay-echo-watched" >> "$raw"
    wait "$projector"
    "$bin/loadgen" --target "$echo_addr" --flows 16 --duration "$DURATION" --warmup 300ms \
        --label "relay-echo-unwatched" >> "$raw"
    echo "round $round done" >&2
done

python3 - "$raw" "$(getconf CLK_TCK)" > "$out/bridge.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
us_per_tick = 1e6 / int(sys.argv[2])
def med(label, n, key):
    vals = [r[key] for r in rows if r.get("label") == label and r.get("flows", r.get("connections")) == n]
    return statistics.median(vals) if vals else None
print("| connections | path | round trips/s | p50 µs | p99 µs |")
print("|---:|---|---:|---:|---:|")
for n in (1, 16):
    for label in ("udp-direct", "relay-bridge", "relay-bridge-replies", "websocat"):
        rps = med(label, n, "rt_per_s")
        if rps is None:
            continue
        print(f"| {n} | {label} | {rps:,.0f} | {med(label, n, 'p50_us'):,.0f} | {med(label, n, 'p99_us'):,.0f} |")
print()
print("CPU per round trip, warm-up included (µs; the bridge's share spent in the kernel in brackets). "
      "For websocat, the bridge is websocat plus the relay's echo server; for the relay, the relay.")
print()
print("| connections | path | bridge CPU µs | client CPU µs |")
print("|---:|---|---:|---:|")
def cpu(r):
    user = r.get("relay_user_ticks", 0) + r.get("websocat_user_ticks", 0)
    sys_ = r.get("relay_sys_ticks", 0) + r.get("websocat_sys_ticks", 0)
    n = max(r.get("round_trips_total", 0), 1)
    client = (r.get("cpu_user_ticks", 0) + r.get("cpu_sys_ticks", 0)) * us_per_tick / n
    return (user + sys_) * us_per_tick / n, sys_ / max(user + sys_, 1), client
for n in (1, 16):
    for label in ("relay-bridge", "relay-bridge-replies", "websocat"):
        runs = [cpu(r) for r in rows if r.get("label") == label and r.get("connections") == n]
        if runs:
            total, kernel, client = (statistics.median(x[i] for x in runs) for i in range(3))
            name = "websocat + relay echo" if label == "websocat" else label
            print(f"| {n} | {name} | {total:.1f} ({kernel:.0%}) | {client:.1f} |")
print()
for label in ("relay-bridge", "relay-bridge-replies"):
    for n in (1, 16):
        r, w = med(label, n, "rt_per_s"), med("websocat", n, "rt_per_s")
        rp, wp = med(label, n, "p50_us"), med("websocat", n, "p50_us")
        if r and w:
            print(f"- {label}, {n} connection(s): ÷ websocat round trips/s = {r / w:.2f}; p50 ÷ websocat = {rp / wp:.2f}")
def per_round(label):
    return [r["rt_per_s"] for r in rows if r.get("label") == label]
def ratio(top, bottom):
    # Ratios within each round (the runs seconds apart), then their median and range.
    ratios = sorted(a / b for a, b in zip(per_round(top), per_round(bottom)) if b)
    if ratios:
        return f"{statistics.median(ratios):.2f} (range {ratios[0]:.2f}–{ratios[-1]:.2f}, {len(ratios)} rounds)"
    return "n/a"
proj = [r for r in rows if r.get("label") == "projector"]
if per_round("relay-echo-watched"):
    print(f"- relay echo with a projector watching ÷ bare tokio echo, 16 flows: {ratio('relay-echo-watched', 'tokio-echo')}")
    print(f"- relay echo watched ÷ the same echo unwatched: {ratio('relay-echo-watched', 'relay-echo-unwatched')}")
    print(f"- relay echo unwatched ÷ bare tokio echo: {ratio('relay-echo-unwatched', 'tokio-echo')}")
if proj:
    print(f"- the projector read {statistics.median(p['events'] for p in proj):,.0f} events per run (median), "
          f"missed {statistics.median(p['missed'] for p in proj):,.0f}")
PY
cat "$out/bridge.md"
