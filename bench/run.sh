#!/usr/bin/env bash
# bench/run.sh: UDP Playground's benchmark, side by side, interleaved, in one run.
#
# What it does, in order:
#   1. builds the relay and the bench tools in release mode;
#   2. starts the relay (every port 0, so the OS picks free ones; the addresses are read from
#      its startup banner), the minimal tokio echo (bench/src/bin/tokio_echo.rs), Python's
#      socketserver.ThreadingUDPServer uppercase server (bench/threading_udp_server.py) and the
#      minimal blocking chat server (bench/src/bin/minimal_chat.rs);
#   3. reads the relay's idle memory (VmRSS in /proc/PID/status) before anyone has talked to it;
#   4. runs `loadgen` at 1, 16 and 256 flows against every server, round-robin: each round
#      measures every server once, starting with a different one each round, so noise on this
#      shared machine falls on all of them alike;
#   5. runs `chatfan` (10,000 chat clients, one message to all) against the relay's chat and
#      the minimal chat, interleaved, then `busbench` (event bus cost);
#   6. writes bench/results/results.md (tables and ratios) and prints it.
#
# Usage: bench/run.sh            (about 4 minutes once built)
# Knobs: ROUNDS=12 DURATION=1s WARMUP=200ms FLOWS="1 16 256" CHAT_ROUNDS=2 WITH_UPPER=0 PIN=1 bench/run.sh
#        (PIN=1: each server on a CPU of its own, the load on another; see bench/lib.sh)
#        WITH_UPPER=1 also measures the relay's upper server, the same work as the Python one.
#
# All traffic goes to 127.0.0.1, every load is bounded in time, and every process started here
# is stopped on exit (the trap below), also on Ctrl-C or an error.

set -euo pipefail

cd "$(dirname "$0")/.."
# Many short rounds beat a few long ones on a shared machine: a burst of noise then spoils
# one paired sample instead of a whole server's result.
# On the 2-core benchmark machine one round's relay ÷ tokio ratio ranged from 0.65 to 1.35 (where
# the threads happen to land), so the median needs a dozen pairs to settle within a few percent.
ROUNDS=${ROUNDS:-12}
DURATION=${DURATION:-1s}
WARMUP=${WARMUP:-200ms}
FLOWS=${FLOWS:-"1 16 256"}
CHAT_ROUNDS=${CHAT_ROUNDS:-2}
WITH_UPPER=${WITH_UPPER:-0}
OUT=bench/results
BIN=${CARGO_TARGET_DIR:-target}/release
mkdir -p "$OUT"
rm -f "$OUT"/*.jsonl "$OUT"/*.json "$OUT"/*.out "$OUT"/*.log

# --- processes started here, stopped on exit (bench/lib.sh) -----------------------------------
. bench/lib.sh

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

# --- 1. build ------------------------------------------------------------------------------
echo "== building (cargo build --release -p relay -p bench)"
cargo build --release -p relay -p bench
# Which relay was built: the commit, marked dirty if relay/ or protocol/ had local changes.
COMMIT="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if ! git diff --quiet HEAD -- relay protocol 2>/dev/null; then
    COMMIT="$COMMIT-dirty"
fi

# 10,000 chat clients are 10,000 sockets, each a file descriptor. chatfan raises its own soft
# limit up to the hard limit; raising it here too helps when chatfan is run by hand later.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- 2. servers ----------------------------------------------------------------------------
echo "== starting the relay, tokio-echo, the Python ThreadingUDPServer and minimal-chat"
RUST_LOG=warn "${ON_SERVER[@]}" "$BIN/relay" --bind 127.0.0.1 --http-port 0 --echo-port 0 --upper-port 0 \
    --chat-port 0 --lossy-port 0 --seed 1 >"$OUT/relay.out" 2>"$OUT/relay.log" &
RELAY_PID=$!
PIDS+=("$RELAY_PID")
"${ON_SERVER[@]}" "$BIN/tokio-echo" 127.0.0.1:0 >"$OUT/tokio-echo.out" 2>&1 &
TOKIO_PID=$!
PIDS+=("$TOKIO_PID")
"${ON_SERVER[@]}" python3 -u bench/threading_udp_server.py 0 >"$OUT/python.out" 2>&1 &
PYTHON_PID=$!
PIDS+=("$PYTHON_PID")
"${ON_SERVER[@]}" "$BIN/minimal-chat" 127.0.0.1:0 >"$OUT/minimal-chat.out" 2>&1 &
MINICHAT_PID=$!
PIDS+=("$MINICHAT_PID")

wait_for "$OUT/relay.out" "Open http" "$RELAY_PID"
wait_for "$OUT/tokio-echo.out" "listening udp://" "$TOKIO_PID"
wait_for "$OUT/python.out" "listening udp://" "$PYTHON_PID"
wait_for "$OUT/minimal-chat.out" "listening udp://" "$MINICHAT_PID"

# The banner has one line per server: "  echo   udp://127.0.0.1:PORT   ...".
relay_addr() { awk -v s="$1" '$1 == s { sub("udp://", "", $2); print $2 }' "$OUT/relay.out"; }
RELAY_ECHO=$(relay_addr echo)
RELAY_UPPER=$(relay_addr upper)
RELAY_CHAT=$(relay_addr chat)
TOKIO_ECHO=$(sed -n 's/.*udp:\/\///p' "$OUT/tokio-echo.out")
PYTHON_UPPER=$(sed -n 's/.*udp:\/\///p' "$OUT/python.out")
MINIMAL_CHAT=$(sed -n 's/.*udp:\/\///p' "$OUT/minimal-chat.out")
echo "   relay echo $RELAY_ECHO, relay upper $RELAY_UPPER, relay chat $RELAY_CHAT"
echo "   tokio-echo $TOKIO_ECHO, python $PYTHON_UPPER, minimal-chat $MINIMAL_CHAT"

# --- 3. idle memory ------------------------------------------------------------------------
sleep 1
RELAY_IDLE_KB=$(rss_kb "$RELAY_PID")
TOKIO_IDLE_KB=$(rss_kb "$TOKIO_PID")
PYTHON_IDLE_KB=$(rss_kb "$PYTHON_PID")
echo "   idle VmRSS: relay ${RELAY_IDLE_KB} kB, tokio-echo ${TOKIO_IDLE_KB} kB, python ${PYTHON_IDLE_KB} kB"

# --- 4. interleaved load -------------------------------------------------------------------
# label=address=pid; `relay-upper` is the relay doing the same work as the Python server.
TARGETS=("relay=$RELAY_ECHO=$RELAY_PID" "tokio=$TOKIO_ECHO=$TOKIO_PID" "python=$PYTHON_UPPER=$PYTHON_PID")
if [[ $WITH_UPPER == 1 ]]; then
    TARGETS+=("relay-upper=$RELAY_UPPER=$RELAY_PID")
fi
TICKS_PER_S=$(getconf CLK_TCK)
LOAD_START=$(date +%s)
echo "== loadgen: flows {$FLOWS} x $ROUNDS rounds x ${#TARGETS[@]} servers, $WARMUP warm-up + $DURATION each"
for flows in $FLOWS; do
    for round in $(seq 1 "$ROUNDS"); do
        for k in $(seq 0 $((${#TARGETS[@]} - 1))); do
            # Rotate the starting server each round, so none always runs first or last.
            IFS== read -r label addr pid <<<"${TARGETS[$(((k + round) % ${#TARGETS[@]}))]}"
            # The server's CPU time around the run, to report CPU per round trip: unlike
            # round trips/s it hardly moves when other programs share the machine.
            before=$(cpu_ticks "$pid")
            line=$("${ON_CLIENT[@]}" "$BIN/loadgen" --target "$addr" --flows "$flows" --duration "$DURATION" \
                --warmup "$WARMUP" --label "$label")
            after=$(cpu_ticks "$pid")
            # Tag each JSON line with its round and the server's CPU seconds for the report.
            cpu_s=$(awk -v a="$after" -v b="$before" -v t="$TICKS_PER_S" 'BEGIN {print (a - b) / t}')
            echo "${line%\}},\"round\":$round,\"server_cpu_s\":$cpu_s}" >>"$OUT/loadgen.jsonl"
        done
    done
done
LOAD_SECONDS=$(($(date +%s) - LOAD_START))
RELAY_LOADED_KB=$(rss_kb "$RELAY_PID")
RELAY_PEAK_KB=$(hwm_kb "$RELAY_PID")

# --- 5. chat fan-out and the event bus -------------------------------------------------------
echo "== chatfan: 10,000 clients, relay chat and minimal-chat, $CHAT_ROUNDS rounds"
for round in $(seq 1 "$CHAT_ROUNDS"); do
    for entry in "relay=$RELAY_CHAT" "minimal=$MINIMAL_CHAT"; do
        line=$("$BIN/chatfan" --target "${entry#*=}" --clients 10000 --messages 3 --label "${entry%%=*}")
        echo "${line%\}},\"run\":$round}" >>"$OUT/chatfan.jsonl"
    done
done
echo "== busbench"
"$BIN/busbench" >"$OUT/busbench.json"

# --- 6. report -----------------------------------------------------------------------------
cat >"$OUT/run.json" <<EOF
{"commit": "$COMMIT", "rounds": $ROUNDS, "pinned": $([ "$PIN" = 1 ] && echo true || echo false), "duration": "$DURATION", "warmup": "$WARMUP", "load_seconds": $LOAD_SECONDS,
 "relay_idle_kb": $RELAY_IDLE_KB, "tokio_idle_kb": $TOKIO_IDLE_KB, "python_idle_kb": $PYTHON_IDLE_KB,
 "relay_loaded_kb": $RELAY_LOADED_KB, "relay_peak_kb": $RELAY_PEAK_KB,
 "cpus": $(nproc), "kernel": "$(uname -r)", "loadavg": "$(cut -d' ' -f1-3 /proc/loadavg)",
 "cpu_model": "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)"}
EOF
python3 bench/report.py "$OUT" >"$OUT/results.md"
cat "$OUT/results.md"
