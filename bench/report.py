#!/usr/bin/env python3
"""Turns the raw results of bench/run.sh into the markdown tables of BENCHMARKS.md.

    python3 bench/report.py bench/results > bench/results/results.md

Reads, from the results folder:
  loadgen.jsonl  one JSON line per loadgen run, tagged with its round;
  chatfan.jsonl  the 10,000-client chat fan-out, one line per chatfan run;
  busbench.json  the event bus micro-benchmark;
  run.json       memory readings and facts about the machine.

Ratios are taken per round first (relay and tokio measured within seconds of each other),
then the median over rounds is shown with the range: on a shared, noisy machine that is
fairer than dividing two medians taken minutes apart. Standard library only.
"""

import json
import statistics
import sys
from pathlib import Path

# Targets from issue 2.
TOKIO_TARGET = 0.95  # relay echo >= 0.95x tokio echo, at 16 and 256 flows
PYTHON_TARGET = 30.0  # relay echo >= 30x ThreadingUDPServer
RSS_TARGET_KB = 15 * 1024  # idle RSS <= 15 MB
CHAT_TARGET_MS = 100.0  # one message reaches 10,000 clients within 100 ms

NAMES = {
    "relay": "relay echo",
    "tokio": "minimal tokio echo",
    "python": "Python ThreadingUDPServer (upper)",
    "relay-upper": "relay upper",
}


def fmt_int(x):
    return f"{x:,.0f}"


def mark(ok):
    return "met" if ok else "**missed**"


def cpu_per_rt(run):
    """Server CPU microseconds per round trip over the whole loadgen run, warm-up included."""
    return run["server_cpu_s"] * 1e6 / max(run["round_trips_all"], 1)


def loadgen_tables(runs, meta):
    flows_list = sorted({r["flows"] for r in runs})
    labels = [l for l in NAMES if any(r["label"] == l for r in runs)]
    out = []
    out.append(
        f"Closed loop, {runs[0]['size']}-byte datagrams, each cell the median of "
        f"{meta['rounds']} interleaved rounds of {meta['duration']} after a {meta['warmup']} warm-up "
        f"(range in brackets). Loss is requests unanswered within 200 ms.\n"
    )
    out.append("| flows | server | round trips/s | range | loss % | p50 µs | p99 µs | server CPU µs per round trip |")
    out.append("|---:|---|---:|---:|---:|---:|---:|---:|")
    for flows in flows_list:
        for label in labels:
            rs = [r for r in runs if r["flows"] == flows and r["label"] == label]
            if not rs:
                continue
            rate = [r["rt_per_s"] for r in rs]
            out.append(
                f"| {flows} | {NAMES[label]} | {fmt_int(statistics.median(rate))} "
                f"| {fmt_int(min(rate))}–{fmt_int(max(rate))} "
                f"| {statistics.median(r['loss_pct'] for r in rs):.2f} "
                f"| {statistics.median(r['p50_us'] for r in rs):,.0f} "
                f"| {statistics.median(r['p99_us'] for r in rs):,.0f} "
                f"| {statistics.median(cpu_per_rt(r) for r in rs):.1f} |"
            )
    out.append("")

    def ratios(flows, top, bottom, metric=lambda r: r["rt_per_s"]):
        by_round = {}
        for r in runs:
            if r["flows"] == flows:
                by_round.setdefault(r["round"], {})[r["label"]] = metric(r)
        rs = [v[top] / v[bottom] for v in by_round.values() if top in v and bottom in v and v[bottom] > 0]
        return rs

    out.append(
        "Ratios taken per round (the servers measured within seconds of each other), then the "
        "median over rounds, range in brackets. *rt/s* compares round trips per second; *CPU* "
        "compares the server's CPU time per round trip the other way round (tokio's ÷ the "
        "relay's), so for both a value ≥ 1 favours the relay.\n"
    )
    with_upper = any(r["label"] == "relay-upper" for r in runs)
    header = (
        "| flows | relay ÷ tokio, rt/s | tokio ÷ relay, CPU | target ≥ 0.95 "
        "| relay ÷ Python, rt/s | Python ÷ relay, CPU | target ≥ 30× | tokio ÷ Python, rt/s |"
    )
    rule = "|---:|---:|---:|---|---:|---:|---|---:|"
    if with_upper:
        header += " relay upper ÷ Python, rt/s |"
        rule += "---:|"
    out += [header, rule]

    def cell(values, times=""):
        if not values:
            return "–"
        m = statistics.median(values)
        if times:
            return f"{m:.0f}× ({min(values):.0f}–{max(values):.0f})"
        return f"{m:.2f} ({min(values):.2f}–{max(values):.2f})"

    for flows in flows_list:
        rt = ratios(flows, "relay", "tokio")
        cpu = ratios(flows, "tokio", "relay", cpu_per_rt)
        rp = ratios(flows, "relay", "python")
        cpu_p = ratios(flows, "python", "relay", cpu_per_rt)
        tp = ratios(flows, "tokio", "python")
        tokio_mark = (
            mark(statistics.median(rt) >= TOKIO_TARGET) if rt and flows in (16, 256) else "(not a target)"
        )
        python_mark = mark(statistics.median(rp) >= PYTHON_TARGET) if rp else "–"
        cells = [str(flows), cell(rt), cell(cpu), tokio_mark, cell(rp, "×"), cell(cpu_p, "×"), python_mark,
                 cell(tp, "×")]
        if with_upper:
            cells.append(cell(ratios(flows, "relay-upper", "python"), "×"))
        out.append("| " + " | ".join(cells) + " |")
    out.append("")
    return out


def memory_table(meta):
    mb = lambda kb: f"{kb / 1024:.1f} MB"  # noqa: E731
    return [
        "| process | VmRSS | target |",
        "|---|---:|---|",
        f"| relay, idle (after start-up, nobody connected) | {mb(meta['relay_idle_kb'])} "
        f"| ≤ 15 MB: {mark(meta['relay_idle_kb'] <= RSS_TARGET_KB)} |",
        f"| relay, after the load runs | {mb(meta['relay_loaded_kb'])} (peak {mb(meta['relay_peak_kb'])}) | |",
        f"| minimal tokio echo, idle | {mb(meta['tokio_idle_kb'])} | |",
        f"| Python ThreadingUDPServer, idle | {mb(meta['python_idle_kb'])} | |",
        "",
    ]


def chat_table(chats):
    ms = lambda us: f"{us / 1000:.1f}"  # noqa: E731
    first = chats[0]
    out = [
        f"{first['clients']:,} clients (sockets) registered and confirmed by a probe message, each "
        f"sending `^hb^` every {first['heartbeat_s']:.0f} s; then {first['messages']} messages, 1 s "
        "apart, per run; runs alternate between the relay and `minimal-chat` (a blocking std "
        "socket and a `send_to` loop, nothing else). Times in ms from just before the send. "
        "*In socket*: the kernel's receive timestamp (`SO_TIMESTAMPNS`), i.e. what the server "
        "and the kernel did. *Read*: when chatfan's task read it (adds chatfan's own work).\n",
        "| server | run | message | clients reached | in socket p50 | p99 | all in socket | all read |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for chat in sorted(chats, key=lambda c: (c["label"] != "relay", c["run"])):
        for r in chat["rounds"]:
            out.append(
                f"| {chat['label']} | {chat['run']} | {r['round']} | {r['received']:,} "
                f"| {ms(r['reached']['p50_us'])} | {ms(r['reached']['p99_us'])} "
                f"| {ms(r['reached']['max_us'])} | {ms(r['read']['max_us'])} |"
            )
    out.append("")
    out.append("| server | messages | all in socket, median | worst | within 100 ms, all clients | deliveries missed |")
    out.append("|---|---:|---:|---:|---:|---:|")
    for label in ["relay", "minimal"]:
        runs = [c for c in chats if c["label"] == label]
        rounds = [r for c in runs for r in c["rounds"]]
        if not rounds:
            continue
        alls = [r["reached"]["max_us"] for r in rounds]
        within = sum(
            1 for c in runs for r in c["rounds"]
            if r["received"] == c["clients"] and r["reached"]["max_us"] / 1000 <= CHAT_TARGET_MS
        )
        missed = sum(c["missed"] for c in runs)
        out.append(
            f"| {label} | {len(rounds)} | {ms(statistics.median(alls))} | {ms(max(alls))} "
            f"| {within} of {len(rounds)} | {missed:,} |"
        )
    out.append("")
    return out


def bus_table(bus):
    out = [
        f"Nanoseconds per call, median (and minimum) of {bus['rounds']} interleaved rounds.\n",
        "| case | ns/op | min |",
        "|---|---:|---:|",
    ]
    for c in bus["cases"]:
        out.append(f"| `{c['name']}` | {c['median_ns']:.1f} | {c['min_ns']:.1f} |")
    out.append("")
    return out


def main():
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")
    runs = [json.loads(line) for line in (folder / "loadgen.jsonl").read_text().splitlines() if line.strip()]
    meta = json.loads((folder / "run.json").read_text())
    # CHAT_ROUNDS=0 runs no chat fan-out, and writes no chatfan.jsonl.
    chat_file = folder / "chatfan.jsonl"
    chat_lines = chat_file.read_text().splitlines() if chat_file.exists() else []
    chats = [json.loads(line) for line in chat_lines if line.strip()]
    bus = json.loads((folder / "busbench.json").read_text())

    lines = [
        f"Relay at commit {meta.get('commit', 'unknown')}. "
        f"Machine: {meta['cpus']} cores ({meta['cpu_model']}), Linux {meta['kernel']}, "
        f"load average at the end {meta['loadavg']}; load runs took {meta['load_seconds']} s"
        + (", each server pinned to a CPU of its own (PIN=1).\n" if meta.get("pinned") else ".\n"),
        "### Echo round trips\n",
        *loadgen_tables(runs, meta),
        "### Memory\n",
        *memory_table(meta),
        *(["### Chat fan-out\n", *chat_table(chats)] if chats else []),
        "### Event bus\n",
        *bus_table(bus),
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
