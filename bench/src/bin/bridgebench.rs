//! `bridgebench`: round trips through a WebSocket-to-UDP bridge, and a projector that watches.
//!
//! Three modes, one per thing `bench/bridge.sh` compares:
//!
//! - `relay`: N WebSocket sessions on the relay's `/ws`. Each opens a socket on the echo server
//!   and runs a closed loop: `{"op":"send",…}`, then wait for that socket's `client_recv`. One
//!   round trip is browser → relay → UDP echo → relay → browser, with the JSON events the page
//!   would draw in between, or only the `client_recv` with `--kinds client_recv`.
//! - `websocat`: N WebSocket connections to `websocat -b ws-l:… udp:…`, the general-purpose
//!   bridge. Each sends a binary message and waits for the binary reply.
//! - `projector`: one session that subscribes to every event and reads them as fast as it can,
//!   for as long as the run lasts; it reports how many events and `lagged` gaps it saw. Run it
//!   beside `loadgen` to measure the echo server while a projector watches.
//!
//! Output: one JSON line on stdout, one line for people on stderr.

use std::time::Duration;

use anyhow::{Context, bail};
use bench::{Latency, parse_duration};
use clap::{Parser, ValueEnum};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

#[derive(Clone, Copy, Debug, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
enum Mode {
    Relay,
    Websocat,
    Projector,
}

/// Closed-loop round trips through a WebSocket bridge, or a projector reading every event.
#[derive(Parser, Debug, Clone)]
#[command(name = "bridgebench")]
struct Cli {
    #[arg(long, value_enum)]
    mode: Mode,

    /// The WebSocket URL, e.g. ws://127.0.0.1:8080/ws.
    #[arg(long, value_name = "URL")]
    url: String,

    /// Concurrent WebSocket connections, each with one request in flight.
    #[arg(long, value_name = "N", default_value_t = 1)]
    connections: usize,

    /// How long to measure, after the warm-up.
    #[arg(long, value_name = "D", default_value = "3s", value_parser = parse_duration)]
    duration: Duration,

    /// Load applied before measuring starts.
    #[arg(long, value_name = "D", default_value = "300ms", value_parser = parse_duration)]
    warmup: Duration,

    /// Payload bytes per datagram.
    #[arg(long, value_name = "BYTES", default_value_t = 64)]
    size: usize,

    /// Worker threads of the client's runtime (1: leave the other core to the bridge).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// Relay mode: ask for only these event kinds (`subscribe` with `kinds`), e.g.
    /// `client_recv` for the replies alone. Every kind when not given.
    #[arg(long, value_name = "KIND", value_delimiter = ',')]
    kinds: Vec<String>,

    /// A label copied into the JSON line.
    #[arg(long, default_value = "")]
    label: String,
}

#[derive(Serialize)]
struct Report {
    label: String,
    mode: Mode,
    connections: usize,
    seconds: f64,
    round_trips: u64,
    /// Round trips including the warm-up's, and this client's CPU time over its whole run in
    /// clock ticks (`getconf CLK_TCK`), for CPU per round trip.
    round_trips_total: u64,
    cpu_user_ticks: u64,
    cpu_sys_ticks: u64,
    rt_per_s: f64,
    p50_us: f64,
    p99_us: f64,
    max_us: f64,
    /// Projector mode: events read, and events the relay said were skipped (`lagged`).
    events: u64,
    missed: u64,
    /// Projector mode: WebSocket frames that carried them.
    frames: u64,
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long any single reply may take before the run fails instead of hanging.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

async fn connect(url: &str) -> anyhow::Result<Ws> {
    // TCP_NODELAY on, as browsers do: small frames must not wait for a delayed ACK. A small
    // read buffer: tungstenite zeroes the whole buffer (128 KiB by default) before each read,
    // which would make the client, not the bridge, the bottleneck. Both modes use this client.
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (ws, _) = tokio::time::timeout(REPLY_TIMEOUT, connecting)
        .await
        .context("connect timed out")?
        .with_context(|| format!("cannot connect to {url}"))?;
    Ok(ws)
}

async fn next(ws: &mut Ws) -> anyhow::Result<Message> {
    match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
        Ok(Some(Ok(message))) => Ok(message),
        Ok(Some(Err(e))) => Err(e).context("WebSocket error"),
        Ok(None) => bail!("the bridge closed the connection"),
        Err(_) => bail!("no message for {REPLY_TIMEOUT:?}"),
    }
}

async fn next_json(ws: &mut Ws) -> anyhow::Result<Value> {
    loop {
        if let Message::Text(text) = next(ws).await? {
            return serde_json::from_str(&text).context("the relay sent invalid JSON");
        }
    }
}

/// The payload: printable, so `text` carries it unchanged.
fn payload(size: usize) -> String {
    "x".repeat(size)
}

/// What one connection's closed loop did.
#[derive(Default)]
struct Flow {
    /// Round trips sent after the warm-up, and their latency.
    measured: u64,
    latency: Latency,
    /// Every round trip, the warm-up's included: what the CPU times cover.
    total: u64,
}

impl Flow {
    fn record(&mut self, sent: Instant, start: Instant) {
        self.total += 1;
        if sent >= start {
            self.measured += 1;
            self.latency.record(sent.elapsed());
        }
    }
}

/// One relay session's closed loop.
async fn relay_flow(cli: &Cli, start: Instant, end: Instant) -> anyhow::Result<Flow> {
    let mut ws = connect(&cli.url).await?;
    let hello = next_json(&mut ws).await?;
    if hello["type"] != "hello" {
        bail!("expected hello, got {hello}");
    }
    ws.send(Message::text(json!({"op":"open","socket":"b","server":"echo"}).to_string())).await?;
    loop {
        let m = next_json(&mut ws).await?;
        if m["kind"] == "client_open" {
            break;
        }
        if m["type"] == "error" {
            bail!("open failed: {m}");
        }
    }
    if !cli.kinds.is_empty() {
        ws.send(Message::text(json!({"op":"subscribe","scope":"own","kinds":cli.kinds}).to_string())).await?;
    }
    let send = Message::text(json!({"op":"send","socket":"b","text":payload(cli.size)}).to_string());
    let mut flow = Flow::default();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        ws.send(send.clone()).await?;
        // Look for the reply without parsing every event: the client should cost little, so
        // the bridge is what gets measured (websocat's client parses nothing either).
        loop {
            let Message::Text(text) = next(&mut ws).await? else { continue };
            if text.contains(r#""kind":"client_recv""#) {
                break;
            }
            if text.starts_with(r#"{"type":"error""#) {
                let hint = if text.contains(r#""code":"limit""#) {
                    " (raise the relay's --max-sends-per-sec?)"
                } else {
                    ""
                };
                bail!("the relay refused a command{hint}: {}", text.as_str());
            }
        }
        flow.record(sent, start);
    }
    let _ = ws.close(None).await;
    Ok(flow)
}

/// One websocat connection's closed loop.
async fn websocat_flow(cli: &Cli, start: Instant, end: Instant) -> anyhow::Result<Flow> {
    let mut ws = connect(&cli.url).await?;
    let bytes = payload(cli.size).into_bytes();
    let mut flow = Flow::default();
    loop {
        let sent = Instant::now();
        if sent >= end {
            break;
        }
        ws.send(Message::binary(bytes.clone())).await?;
        loop {
            if let Message::Binary(reply) = next(&mut ws).await? {
                if reply.len() != bytes.len() {
                    bail!("websocat answered {} bytes for {}", reply.len(), bytes.len());
                }
                break;
            }
        }
        flow.record(sent, start);
    }
    let _ = ws.close(None).await;
    Ok(flow)
}

/// Reads every event until `end`: (events, missed, frames).
async fn projector(cli: &Cli, end: Instant) -> anyhow::Result<(u64, u64, u64)> {
    let mut ws = connect(&cli.url).await?;
    next_json(&mut ws).await?;
    // Batches: what the page asks for in projector mode.
    ws.send(Message::text(json!({"op":"subscribe","scope":"all","batch":true}).to_string())).await?;
    let (mut events, mut missed, mut frames) = (0, 0, 0);
    while Instant::now() < end {
        // Quiet periods are fine here: wait at most until the end of the run.
        let left = end.saturating_duration_since(Instant::now());
        let Ok(message) = tokio::time::timeout(left, ws.next()).await else { break };
        let Some(Ok(Message::Text(text))) = message else { continue };
        frames += 1;
        // Count without parsing every event: the projector should be cheap, not the test.
        events += text.matches(r#"{"type":"event""#).count() as u64;
        if text.contains(r#"{"type":"lagged""#) {
            let v: Value = serde_json::from_str(&text)?;
            let lagged = v["messages"].as_array().into_iter().flatten().chain(std::iter::once(&v));
            missed +=
                lagged.filter(|m| m["type"] == "lagged").filter_map(|m| m["missed"].as_u64()).sum::<u64>();
        }
    }
    let _ = ws.close(None).await;
    Ok((events, missed, frames))
}

/// This process's user and system CPU time so far, in clock ticks (Linux; zeros elsewhere).
fn own_cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let tick = |i: usize| fields.get(i).and_then(|f| f.parse().ok()).unwrap_or(0);
    // utime and stime are fields 14 and 15 of proc_pid_stat(5); field 3 comes first here.
    (tick(11), tick(12))
}

async fn run(cli: Cli) -> anyhow::Result<Report> {
    let start = Instant::now() + cli.warmup;
    let end = start + cli.duration;
    let (mut round_trips, mut round_trips_total, mut latency) = (0, 0, Latency::new());
    let (mut events, mut missed, mut frames) = (0, 0, 0);
    match cli.mode {
        Mode::Projector => (events, missed, frames) = projector(&cli, end).await?,
        Mode::Relay | Mode::Websocat => {
            let mut flows = tokio::task::JoinSet::new();
            for _ in 0..cli.connections {
                let cli = cli.clone();
                flows.spawn(async move {
                    match cli.mode {
                        Mode::Relay => relay_flow(&cli, start, end).await,
                        _ => websocat_flow(&cli, start, end).await,
                    }
                });
            }
            while let Some(flow) = flows.join_next().await {
                let flow = flow.context("a flow panicked")??;
                round_trips += flow.measured;
                round_trips_total += flow.total;
                latency.merge(&flow.latency);
            }
        }
    }
    let seconds = cli.duration.as_secs_f64();
    let s = latency.summary();
    let (cpu_user_ticks, cpu_sys_ticks) = own_cpu_ticks();
    Ok(Report {
        label: cli.label,
        mode: cli.mode,
        connections: cli.connections,
        seconds,
        round_trips,
        round_trips_total,
        cpu_user_ticks,
        cpu_sys_ticks,
        rt_per_s: round_trips as f64 / seconds,
        p50_us: s.p50_us,
        p99_us: s.p99_us,
        max_us: s.max_us,
        events,
        missed,
        frames,
    })
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = bench::runtime(cli.threads).context("cannot start the tokio runtime")?;
    let report = runtime.block_on(run(cli))?;
    eprintln!(
        "{} {:?} x{}: {:.0} round trips/s, p50 {:.0} us, p99 {:.0} us; {} events, {} missed",
        report.label,
        report.mode,
        report.connections,
        report.rt_per_s,
        report.p50_us,
        report.p99_us,
        report.events,
        report.missed
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
