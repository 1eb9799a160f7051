//! `chatfan`: how long one chat message takes to reach 10,000 heartbeating clients.
//!
//! The relay's chat server (the tutorials' heartbeat chat) sends every message to every live
//! client. This tool:
//!
//! 1. opens `--clients` UDP sockets (10,000 by default; each is a client with its own port), after
//!    raising the open-file limit, since every socket is a file descriptor;
//! 2. registers them with `reg`, paced in small batches so the server's receive buffer never
//!    overflows, then checks with a probe message that every client is registered;
//! 3. lets every client send `^hb^` every `--heartbeat` (5 s), spread evenly, for `--warm` so the
//!    server is handling a steady stream of heartbeats when we measure;
//! 4. sends `--messages` messages from client 0, one every `--gap`, and for each one measures, per
//!    client, the time from just before the send to the moment that client's task has read the
//!    message: p50, p99 and max (the max is the time until all clients have it).
//!
//! Every wait is bounded (`--wait` per message), so a lost datagram shows up as a client count
//! below 10,000, never as a hang.
//!
//! Two times are taken for every client, both from just before the send:
//!
//! - **reached**: when the datagram arrived in the client's socket, from the kernel's receive
//!   timestamp (`SO_TIMESTAMPNS`, read with `recvmsg`). This is what the relay and the kernel
//!   did, and nothing of this program's own speed.
//! - **read**: when the client's task had read it. It adds this program's work of waking 10,000
//!   tasks on one thread, which on a 2-core machine competes with the relay for CPU: an upper
//!   bound.
//!
//! ```text
//! chatfan --target 127.0.0.1:9998
//! ```

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use bench::{Latency, LatencySummary, parse_duration};
use clap::Parser;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use serde::Serialize;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};

/// Measure how long one chat message takes to reach every one of many heartbeating clients.
#[derive(Parser, Debug)]
#[command(name = "chatfan")]
struct Cli {
    /// UDP address of the chat server, e.g. 127.0.0.1:9998.
    #[arg(long, value_name = "ADDR")]
    target: SocketAddr,

    /// How many clients (sockets) to register. The relay accepts 10,000 by default
    /// (`--chat-max-clients`).
    #[arg(long, value_name = "N", default_value_t = 10_000)]
    clients: usize,

    /// How often each client sends `^hb^`. Must stay below the server's chat timeout (10 s).
    #[arg(long, value_name = "D", default_value = "5s", value_parser = parse_duration)]
    heartbeat: Duration,

    /// How long the clients heartbeat before the first measured message.
    #[arg(long, value_name = "D", default_value = "6s", value_parser = parse_duration)]
    warm: Duration,

    /// How many measured messages to send.
    #[arg(long, value_name = "N", default_value_t = 5)]
    messages: u32,

    /// Pause between measured messages.
    #[arg(long, value_name = "D", default_value = "1s", value_parser = parse_duration)]
    gap: Duration,

    /// Longest wait for one message to reach everyone; clients still without it are counted
    /// as missed.
    #[arg(long, value_name = "D", default_value = "2s", value_parser = parse_duration)]
    wait: Duration,

    /// Client threads; 1 (the default) is a current_thread runtime, leaving the other core of
    /// a 2-core machine to the relay.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// Name of the server in the output, e.g. relay or minimal.
    #[arg(long, default_value = "target")]
    label: String,
}

/// A client read the message of round `round`.
#[derive(Debug)]
struct Arrival {
    round: u32,
    /// When the client task read it.
    read: Instant,
    /// When it reached the socket, by the kernel's wall clock (`SO_TIMESTAMPNS`).
    reached: Option<SystemTime>,
}

/// One measured message.
#[derive(Debug, Serialize)]
struct Round {
    round: u32,
    received: usize,
    /// From the send to the datagram's arrival in each client socket (kernel timestamp).
    reached: LatencySummary,
    /// From the send to each client task reading it.
    read: LatencySummary,
}

/// Delivery times of one message (or of all of them).
#[derive(Debug, Default)]
struct Delivery {
    received: usize,
    reached: Latency,
    read: Latency,
}

/// The JSON line.
#[derive(Debug, Serialize)]
struct Report {
    label: String,
    target: SocketAddr,
    clients: usize,
    registered: usize,
    heartbeat_s: f64,
    messages: u32,
    /// Deliveries that missed the wait, over all messages.
    missed: usize,
    /// Over all measured messages and clients: arrival in the socket (kernel timestamp).
    reached: LatencySummary,
    /// Over all measured messages and clients: read by the client task.
    read: LatencySummary,
    /// The slowest message's time until it was in the last client's socket.
    worst_all_reached_ms: f64,
    /// The slowest message's time until the last client task had read it.
    worst_all_read_ms: f64,
    rounds: Vec<Round>,
}

/// Registrations sent back to back before a short pause: 50 every 2 ms is 25,000 a second,
/// 0.4 s for 10,000 clients. A batch of small datagrams fits easily in the server's default
/// receive buffer (about 200 KB, some 250 datagrams), so none is dropped there.
const REGISTER_BATCH: usize = 50;
const REGISTER_PAUSE: Duration = Duration::from_millis(2);
/// Registration attempts before giving up on clients the probe did not reach.
const REGISTER_ATTEMPTS: u32 = 3;
/// Round numbers of the registration probes start here; measured messages count from 1.
const PROBE_ROUND: u32 = 1_000_000;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.clients >= 1, "--clients must be at least 1");
    raise_fd_limit(cli.clients)?;
    let runtime = bench::runtime(cli.threads).context("cannot start the tokio runtime")?;
    let report = runtime.block_on(run(&cli))?;
    for round in &report.rounds {
        eprintln!(
            "chatfan {} message {}: {}/{} clients; in every socket after {:.1} ms (p50 {:.1}, p99 {:.1}); \
             read by every client after {:.1} ms (p50 {:.1}, p99 {:.1})",
            report.label,
            round.round,
            round.received,
            report.clients,
            round.reached.max_us / 1e3,
            round.reached.p50_us / 1e3,
            round.reached.p99_us / 1e3,
            round.read.max_us / 1e3,
            round.read.p50_us / 1e3,
            round.read.p99_us / 1e3,
        );
    }
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

/// Every socket is a file descriptor; the common default soft limit of 1,024 is far too low for
/// 10,000 clients. Raise the soft limit up to the hard limit (no privileges needed); if even
/// the hard limit is too low, say what to run.
fn raise_fd_limit(clients: usize) -> anyhow::Result<()> {
    // The sockets, plus stdio, the runtime's epoll and eventfd, and some slack.
    let needed = u64::try_from(clients).unwrap_or(u64::MAX).saturating_add(64);
    let got = rlimit::increase_nofile_limit(needed).context("cannot read or raise RLIMIT_NOFILE")?;
    anyhow::ensure!(
        got >= needed,
        "{clients} clients need {needed} open files but the limit is {got}; \
         raise the hard limit, e.g. run `ulimit -Hn {needed}` as root, then try again"
    );
    Ok(())
}

async fn run(cli: &Cli) -> anyhow::Result<Report> {
    let mut sockets = Vec::with_capacity(cli.clients);
    for _ in 0..cli.clients {
        let socket =
            UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).await.context("cannot bind a client socket")?;
        // Connected: the socket only receives from the chat server and `send` needs no address.
        socket.connect(cli.target).await.context("cannot connect a client socket")?;
        // Ask the kernel to stamp every datagram with its arrival time (nanoseconds, wall clock).
        setsockopt(&socket, sockopt::ReceiveTimestampns, &true).context("cannot set SO_TIMESTAMPNS")?;
        sockets.push(Arc::new(socket));
    }

    let (arrivals_tx, mut arrivals) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();
    let heartbeat_start = Instant::now() + cli.heartbeat;
    for (index, socket) in sockets.iter().enumerate() {
        // Spread the heartbeats evenly over the period: 10,000 clients every 5 s is a steady
        // 2,000 heartbeats per second, not a burst of 10,000 every 5 s.
        let offset = cli.heartbeat.mul_f64(index as f64 / cli.clients as f64);
        tasks.spawn(client(Arc::clone(socket), heartbeat_start + offset, cli.heartbeat, arrivals_tx.clone()));
    }
    drop(arrivals_tx);
    let speaker = Arc::clone(&sockets[0]);

    // Register everyone, then check with a probe message that everyone gets it. Probes are
    // numbered from PROBE_ROUND, so a late probe can never be taken for a measured message.
    let mut registered = 0;
    for attempt in 1..=REGISTER_ATTEMPTS {
        for batch in sockets.chunks(REGISTER_BATCH) {
            for socket in batch {
                socket.send(b"reg").await.context("cannot send reg")?;
            }
            tokio::time::sleep(REGISTER_PAUSE).await;
        }
        let probe = broadcast(&speaker, &mut arrivals, PROBE_ROUND + attempt, cli.clients, cli.wait).await?;
        let probe = probe.received;
        registered = probe;
        eprintln!("chatfan registration attempt {attempt}: probe reached {probe}/{} clients", cli.clients);
        if probe == cli.clients {
            break;
        }
        // `reg` again is harmless for clients already registered: it only refreshes them.
    }
    anyhow::ensure!(
        registered == cli.clients,
        "only {registered} of {} clients registered; is --chat-max-clients at least {}?",
        cli.clients,
        cli.clients
    );

    // Heartbeats run in the client tasks from now on.
    tokio::time::sleep(cli.warm).await;

    let mut all = Delivery::default();
    let mut rounds = Vec::new();
    let mut missed = 0;
    for round in 1..=cli.messages {
        let delivery = broadcast(&speaker, &mut arrivals, round, cli.clients, cli.wait).await?;
        missed += cli.clients - delivery.received;
        all.reached.merge(&delivery.reached);
        all.read.merge(&delivery.read);
        rounds.push(Round {
            round,
            received: delivery.received,
            reached: delivery.reached.summary(),
            read: delivery.read.summary(),
        });
        tokio::time::sleep(cli.gap).await;
    }
    tasks.abort_all();
    // Leave the server as we found it: without this, our 10,000 clients would hold every seat
    // of a 10,000-client server until the chat timeout evicts them.
    for batch in sockets.chunks(REGISTER_BATCH) {
        for socket in batch {
            let _ = socket.send(b"quit").await;
        }
        tokio::time::sleep(REGISTER_PAUSE).await;
    }

    let worst = |f: fn(&Round) -> f64| rounds.iter().map(f).fold(0.0, f64::max) / 1e3;
    Ok(Report {
        label: cli.label.clone(),
        target: cli.target,
        clients: cli.clients,
        registered,
        heartbeat_s: cli.heartbeat.as_secs_f64(),
        messages: cli.messages,
        missed,
        reached: all.reached.summary(),
        read: all.read.summary(),
        worst_all_reached_ms: worst(|r| r.reached.max_us),
        worst_all_read_ms: worst(|r| r.read.max_us),
        rounds,
    })
}

/// Sends the message of `round` from `speaker` and waits until `clients` clients have read it,
/// or `wait` has passed. Returns how many did, and their delivery times.
async fn broadcast(
    speaker: &UdpSocket,
    arrivals: &mut mpsc::UnboundedReceiver<Arrival>,
    round: u32,
    clients: usize,
    wait: Duration,
) -> anyhow::Result<Delivery> {
    let mut delivery = Delivery::default();
    let message = format!("round {round}");
    // Two clocks: the monotonic one for the time our tasks read it, and the wall clock the
    // kernel uses for its receive timestamps.
    let sent_wall = SystemTime::now();
    let sent_at = Instant::now();
    speaker.send(message.as_bytes()).await.context("cannot send the message")?;
    let deadline = sent_at + wait;
    while delivery.received < clients {
        match tokio::time::timeout_at(deadline, arrivals.recv()).await {
            Ok(Some(arrival)) if arrival.round == round => {
                delivery.received += 1;
                delivery.read.record(arrival.read.saturating_duration_since(sent_at));
                if let Some(reached) = arrival.reached {
                    delivery.reached.record(reached.duration_since(sent_wall).unwrap_or_default());
                }
            }
            // A straggler from an earlier round: not this message.
            Ok(Some(_)) => {}
            Ok(None) => anyhow::bail!("every client task has stopped"),
            Err(_) => break,
        }
    }
    Ok(delivery)
}

/// One chat client: heartbeats on its own schedule and reports each `round N` message it reads.
async fn client(
    socket: Arc<UdpSocket>,
    first_heartbeat: Instant,
    period: Duration,
    arrivals: mpsc::UnboundedSender<Arrival>,
) {
    let mut heartbeat = tokio::time::interval_at(first_heartbeat, period);
    // If this thread falls behind, send the next heartbeat late rather than a burst.
    heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // Chat messages here are short; 2 KiB leaves plenty of room.
    let mut buf = vec![0u8; 2048];
    // Room for the one control message we asked for: the arrival timestamp.
    let mut control = nix::cmsg_space!(TimeSpec);
    loop {
        tokio::select! {
            ready = socket.readable() => {
                if ready.is_err() {
                    return;
                }
                // `try_io` clears tokio's readiness flag on WouldBlock, so the next
                // `readable()` really waits for the next datagram.
                let received = socket.try_io(Interest::READABLE, || recv_stamped(&socket, &mut buf, &mut control));
                let read = Instant::now();
                // Errors (e.g. ECONNREFUSED before the server is up) are skipped, not fatal.
                if let Ok((len, reached)) = received
                    && let Some(round) = parse_round(&buf[..len])
                    && arrivals.send(Arrival { round, read, reached }).is_err()
                {
                    return;
                }
            }
            _ = heartbeat.tick() => {
                let _ = socket.send(b"^hb^").await;
            }
        }
    }
}

/// Reads one datagram with `recvmsg`, returning its length and the kernel's arrival timestamp.
///
/// `recvmsg` is `recv` plus "ancillary data": small control messages the kernel attaches, here
/// the `SCM_TIMESTAMPNS` we asked for with `SO_TIMESTAMPNS`.
fn recv_stamped(
    socket: &UdpSocket,
    buf: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(socket.as_raw_fd(), &mut iov, Some(control), MsgFlags::empty())?;
    let mut reached = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmTimestampns(ts) = cmsg {
            let since_epoch = Duration::from(ts);
            reached = Some(SystemTime::UNIX_EPOCH + since_epoch);
        }
    }
    Ok((msg.bytes, reached))
}

/// Finds `N` in a broadcast `ack: IP PORT\nround N\n`.
fn parse_round(message: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(message).ok()?;
    let (_, rest) = text.split_once("round ")?;
    rest.trim_end().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_round_in_a_chat_broadcast() {
        assert_eq!(parse_round(b"ack: 127.0.0.1 40000\nround 7\n"), Some(7));
        assert_eq!(parse_round(b"end"), None);
        assert_eq!(parse_round(b"ack: 127.0.0.1 1\nround x\n"), None);
    }

    #[test]
    fn the_fd_limit_check_accepts_a_handful_of_clients() {
        raise_fd_limit(10).expect("64 + 10 files are always allowed");
    }
}
