//! `loadgen`: a closed-loop UDP load generator for any echo-like server.
//!
//! It opens N flows, each with its own UDP socket, and every flow runs a closed loop: send one
//! request, wait for its reply (or for the per-request timeout, which counts as a loss), then
//! send the next. N flows therefore keep at most N requests in flight, like N polite clients;
//! throughput is then set by how fast the server turns a datagram around, not by how fast we can
//! flood it.
//!
//! Each request carries its sequence number as ASCII digits padded with dots, so an echo server
//! and an uppercasing server (Python's `bytes.upper()` leaves digits and dots alone) both send
//! back exactly the bytes we sent. A reply that does not match the request in flight is a late
//! reply to an earlier, timed-out request: it is counted and skipped.
//!
//! Output: one JSON line on stdout (for scripts such as `bench/run.sh`) and one line for people
//! on stderr. Example:
//!
//! ```text
//! loadgen --target 127.0.0.1:10004 --flows 16 --duration 3s
//! ```
//!
//! The runtime is single-threaded by default (`--threads 1`). On a 2-core machine the client
//! then uses one core and leaves the other to the server, identically for every server measured,
//! which keeps the comparison fair; a multi-threaded client would fight the server for its cores.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use bench::{Latency, parse_duration};
use clap::Parser;
use serde::Serialize;
use tokio::net::UdpSocket;
use tokio::time::Instant;

/// Closed-loop UDP load generator: N flows, one socket each, send -> wait reply -> repeat.
#[derive(Parser, Debug, Clone)]
#[command(name = "loadgen")]
struct Cli {
    /// UDP address of the server to measure, e.g. 127.0.0.1:10004.
    #[arg(long, value_name = "ADDR")]
    target: SocketAddr,

    /// Concurrent flows; each has its own socket and one request in flight.
    #[arg(long, value_name = "N", default_value_t = 1)]
    flows: usize,

    /// How long to measure, after the warm-up. Also the cap when --count is given.
    #[arg(long, value_name = "D", default_value = "3s", value_parser = parse_duration)]
    duration: Duration,

    /// Requests per flow to measure; the flow stops early when it has done this many.
    #[arg(long, value_name = "N")]
    count: Option<u64>,

    /// Load applied before measuring starts, so caches, buffers and CPU clocks settle.
    #[arg(long, value_name = "D", default_value = "500ms", value_parser = parse_duration)]
    warmup: Duration,

    /// How long a flow waits for a reply before it counts the request as lost and moves on.
    #[arg(long, value_name = "D", default_value = "200ms", value_parser = parse_duration)]
    timeout: Duration,

    /// Bytes per request (at least 16: the sequence number takes 16 digits).
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,

    /// Client threads; 1 (the default) is a current_thread runtime. See the file's doc.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// Name of the target in the output, e.g. relay or tokio.
    #[arg(long, default_value = "target")]
    label: String,
}

/// What one flow counted inside the measurement window.
#[derive(Debug, Default)]
struct FlowStats {
    /// Requests sent during the window.
    sent: u64,
    /// Of those, answered with the matching reply before the timeout.
    ok: u64,
    /// Of those, not answered in time (or failed to send or receive).
    lost: u64,
    /// Replies that arrived for an earlier request after its timeout: skipped.
    late: u64,
    /// Socket errors, e.g. ECONNREFUSED when nothing listens on the target port.
    errors: u64,
    /// Answered requests over the whole run, warm-up included: divides the server's CPU time
    /// (read by `bench/run.sh` from /proc) into CPU per round trip.
    answered_all: u64,
    rtt: Latency,
}

/// The JSON line.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    target: SocketAddr,
    flows: usize,
    threads: usize,
    size: usize,
    duration_s: f64,
    round_trips: u64,
    rt_per_s: f64,
    /// Round trips over the whole run, warm-up included.
    round_trips_all: u64,
    sent: u64,
    lost: u64,
    loss_pct: f64,
    late: u64,
    errors: u64,
    #[serde(flatten)]
    rtt: bench::LatencySummary,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.flows >= 1, "--flows must be at least 1");
    anyhow::ensure!(cli.size >= 16, "--size must be at least 16 bytes (the sequence number)");
    anyhow::ensure!(cli.size <= 65_507, "--size must fit one UDP datagram (65,507 bytes)");
    let runtime = bench::runtime(cli.threads).context("cannot start the tokio runtime")?;
    let report = runtime.block_on(run(cli))?;
    eprintln!(
        "{:<8} {:>4} flows: {:>9.0} round trips/s, loss {:.2}%, p50 {:.0} us, p99 {:.0} us{}",
        report.label,
        report.flows,
        report.rt_per_s,
        report.loss_pct,
        report.rtt.p50_us,
        report.rtt.p99_us,
        if report.errors > 0 { format!(", {} socket errors", report.errors) } else { String::new() },
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    // Bind and connect every socket before the clock starts, so setup is not measured.
    let mut sockets = Vec::with_capacity(cli.flows);
    for _ in 0..cli.flows {
        let local: SocketAddr = match cli.target {
            SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
        };
        let socket = UdpSocket::bind(local).await.context("cannot bind a client socket")?;
        // A connected UDP socket only receives from the target, and on Linux it is also told
        // (as ECONNREFUSED) when an ICMP "port unreachable" says nothing listens there.
        socket.connect(cli.target).await.context("cannot connect a client socket")?;
        sockets.push(socket);
    }

    let start = Instant::now();
    let window_start = start + cli.warmup;
    let window_end = window_start + cli.duration;
    let mut flows = tokio::task::JoinSet::new();
    for socket in sockets {
        let cli = cli.clone();
        flows.spawn(flow(socket, cli, window_start, window_end));
    }

    // Every flow stops sending at `window_end` and waits at most one timeout more; this outer
    // bound only guards against a bug, so a run can never hang.
    let hard_stop = window_end + cli.timeout + Duration::from_secs(5);
    let mut total = FlowStats::default();
    loop {
        match tokio::time::timeout_at(hard_stop, flows.join_next()).await {
            Ok(Some(joined)) => {
                let stats = joined.context("a flow task panicked")?;
                total.sent += stats.sent;
                total.ok += stats.ok;
                total.lost += stats.lost;
                total.late += stats.late;
                total.errors += stats.errors;
                total.answered_all += stats.answered_all;
                total.rtt.merge(&stats.rtt);
            }
            Ok(None) => break,
            Err(_) => anyhow::bail!("flows did not stop by the hard deadline"),
        }
    }
    // With --count, flows may finish before `window_end`: divide by the time actually used.
    let elapsed = Instant::now().min(window_end).saturating_duration_since(window_start);
    let secs = elapsed.as_secs_f64().max(1e-9);
    Ok(Report {
        label: cli.label,
        target: cli.target,
        flows: cli.flows,
        threads: cli.threads,
        size: cli.size,
        duration_s: secs,
        round_trips: total.ok,
        rt_per_s: total.ok as f64 / secs,
        round_trips_all: total.answered_all,
        sent: total.sent,
        lost: total.lost,
        loss_pct: if total.sent == 0 { 0.0 } else { 100.0 * total.lost as f64 / total.sent as f64 },
        late: total.late,
        errors: total.errors,
        rtt: total.rtt.summary(),
    })
}

/// Writes request number `seq` into `buf`: 16 decimal digits, then dots up to the size.
fn fill_request(buf: &mut [u8], seq: u64) {
    let mut rest = seq;
    for digit in buf[..16].iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    buf[16..].fill(b'.');
}

/// One closed-loop flow. Returns what it counted inside [window_start, window_end).
async fn flow(socket: UdpSocket, cli: Cli, window_start: Instant, window_end: Instant) -> FlowStats {
    let mut stats = FlowStats::default();
    let mut request = vec![0u8; cli.size];
    // Room for any datagram, so an unexpectedly long reply is seen whole and rejected.
    let mut reply = vec![0u8; 65_536];
    let mut seq: u64 = 0;
    let mut measured: u64 = 0;

    loop {
        let sent_at = Instant::now();
        if sent_at >= window_end || cli.count.is_some_and(|count| measured >= count) {
            break;
        }
        let in_window = sent_at >= window_start;
        if in_window {
            stats.sent += 1;
            measured += 1;
        }
        seq += 1;
        fill_request(&mut request, seq);

        let outcome = exchange(&socket, &request, &mut reply, sent_at + cli.timeout, &mut stats).await;
        match outcome {
            Outcome::Answered => {
                stats.answered_all += 1;
                if in_window {
                    stats.ok += 1;
                    stats.rtt.record(sent_at.elapsed());
                }
            }
            Outcome::TimedOut => {
                if in_window {
                    stats.lost += 1;
                }
            }
            Outcome::Failed => {
                if in_window {
                    stats.lost += 1;
                }
                stats.errors += 1;
                // Nothing listening, most likely: do not spin on a failing socket.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    stats
}

enum Outcome {
    Answered,
    TimedOut,
    Failed,
}

/// Sends `request` and waits until its own reply arrives or `deadline` passes.
async fn exchange(
    socket: &UdpSocket,
    request: &[u8],
    reply: &mut [u8],
    deadline: Instant,
    stats: &mut FlowStats,
) -> Outcome {
    if socket.send(request).await.is_err() {
        return Outcome::Failed;
    }
    loop {
        match tokio::time::timeout_at(deadline, socket.recv(reply)).await {
            Err(_elapsed) => return Outcome::TimedOut,
            Ok(Err(_)) => return Outcome::Failed,
            Ok(Ok(len)) if reply[..len] == *request => return Outcome::Answered,
            // An answer to an earlier request that we already gave up on: keep waiting.
            Ok(Ok(_)) => stats.late += 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_survive_python_upper() {
        let mut buf = vec![0u8; 24];
        fill_request(&mut buf, 42);
        assert_eq!(&buf, b"0000000000000042........");
        assert_eq!(buf.to_ascii_uppercase(), buf, "uppercasing must not change a request");
    }
}
