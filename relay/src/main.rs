//! The `relay` binary: parses the command line, starts logging, runs the relay until Ctrl-C or
//! SIGTERM, and exits 0 after a clean shutdown.

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use protocol::ServerName;
use relay::config::{
    Config, Ports, SessionLimits, SharedChanges, parse_allow_target, parse_bind, parse_duration,
    parse_probability, parse_public_host, parse_seed,
};
use relay::udp::chat::ChatSettings;
use relay::udp::lossy::LossySettings;

/// UDP Playground: real UDP servers you can watch in your browser.
///
/// Starts four UDP servers on the tutorials' ports (echo, uppercase echo, a heartbeat chat, and
/// a server that loses datagrams on purpose) and a web page that draws every datagram live.
/// Talk to the servers from the page, or from `nc -u 127.0.0.1 10004` and your own scripts.
#[derive(Parser, Debug)]
#[command(name = "relay", version)]
struct Cli {
    #[command(subcommand)]
    action: Option<Action>,

    /// IP address every server listens on. The default, 127.0.0.1 (or localhost), keeps the
    /// relay private to this computer; use 0.0.0.0 to let other machines in the room reach it.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1", value_parser = parse_bind)]
    bind: IpAddr,

    /// TCP port of the web page. Open http://127.0.0.1:PORT/ in a browser.
    #[arg(long, value_name = "N", default_value_t = 8080)]
    http_port: u16,

    /// UDP port of the echo server, which sends every datagram back unchanged. 0 picks a free one.
    #[arg(long, value_name = "N", default_value_t = Ports::TUTORIAL.echo)]
    echo_port: u16,

    /// UDP port of the uppercase server, which sends each datagram back in capital letters.
    #[arg(long, value_name = "N", default_value_t = Ports::TUTORIAL.upper)]
    upper_port: u16,

    /// UDP port of the chat server: send `reg` to join, `^hb^` to stay alive, `quit` to leave.
    #[arg(long, value_name = "N", default_value_t = Ports::TUTORIAL.chat)]
    chat_port: u16,

    /// UDP port of the lossy server, which drops datagrams on purpose and answers the rest.
    #[arg(long, value_name = "N", default_value_t = Ports::TUTORIAL.lossy)]
    lossy_port: u16,

    /// Chance that the lossy server drops a datagram, from 0.0 (never) to 1.0 (always).
    #[arg(long, value_name = "P", default_value = "0.5", value_parser = parse_probability)]
    lossy_drop: f64,

    /// Seed for the lossy server's dice. Without it a random seed is chosen and printed, so you
    /// can replay exactly the same losses later.
    #[arg(long, value_name = "N", value_parser = parse_seed)]
    seed: Option<u64>,

    /// How long the lossy server waits before answering, e.g. 150ms. A wait longer than the
    /// client's retry timer makes late and duplicate replies happen.
    #[arg(long, value_name = "D", default_value = "0ms", value_parser = parse_duration)]
    lossy_delay: Duration,

    /// Extra random wait, up to this much, added to each lossy answer, e.g. 100ms. Answers can
    /// then overtake each other.
    #[arg(long, value_name = "D", default_value = "0ms", value_parser = parse_duration)]
    lossy_jitter: Duration,

    /// How many lossy answers may wait for their delay at once; more are dropped and counted.
    #[arg(long, value_name = "N", default_value_t = LossySettings::default().max_pending)]
    lossy_max_pending: usize,

    /// How long a chat client may stay silent before the server forgets it, e.g. 10s or 600ms.
    #[arg(long, value_name = "D", default_value = "10s", value_parser = parse_duration)]
    chat_timeout: Duration,

    /// Most chat clients at once; newcomers beyond this are turned away.
    #[arg(long, value_name = "N", default_value_t = ChatSettings::default().max_clients)]
    chat_max_clients: usize,

    /// Also let the page send to this IP address and port, e.g. 127.0.0.1:9000 for your own
    /// server. Repeat for more. Without it, the page can reach only the relay's own servers.
    #[arg(long, value_name = "IP:PORT", value_parser = parse_allow_target)]
    allow_target: Vec<SocketAddr>,

    /// Also accept the page when reached by this name, without a port, e.g. the classroom
    /// machine's name or address when started with --bind 0.0.0.0. Repeat for more.
    #[arg(long, value_name = "NAME", value_parser = parse_public_host)]
    public_host: Vec<String>,

    /// Who may change the servers and links the whole class meets: local (pages and scripts on
    /// this machine, the teacher's) or anyone. With local, a student's page changes them for
    /// its own sockets only, and another machine's HTTP changes are refused.
    #[arg(long, value_enum, value_name = "WHO", default_value_t = SharedChanges::Local)]
    shared_changes: SharedChanges,

    /// Most browser tabs connected at once (up to 100,000).
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().sessions,
          value_parser = parse_session_limit)]
    max_sessions: usize,

    /// Most UDP sockets one browser tab may open.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().sockets_per_session)]
    max_sockets: usize,

    /// Most datagrams one browser tab may send per second, retries and heartbeats included.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().sends_per_sec)]
    max_sends_per_sec: u32,

    /// Largest datagram, in bytes, a browser tab may send. The default is UDP's own maximum,
    /// 65507: a longer send is refused by the kernel (EMSGSIZE), as for any program.
    #[arg(long, value_name = "BYTES", default_value_t = SessionLimits::default().datagram_bytes,
          value_parser = parse_datagram_size)]
    max_datagram: usize,

    /// Most datagram bytes one browser tab may send per second, retries, heartbeats and crowds
    /// included.
    #[arg(long, value_name = "BYTES", default_value_t = SessionLimits::default().bytes_per_sec,
          value_parser = clap::value_parser!(u64).range(1..=1 << 40))]
    max_bytes_per_sec: u64,

    /// Most crowd members one browser tab may run at once, all its crowds together.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().crowd_clients,
          value_parser = clap::value_parser!(u32).range(0..=10_000))]
    max_crowd: u32,

    /// Events and datagrams the relay keeps for /api/capture.pcapng, /api/events.jsonl and
    /// the projector's backlog, up to 1,000,000; 0 turns recording off.
    #[arg(long, value_name = "N", default_value_t = relay::history::HistoryLimits::default().events,
          value_parser = parse_history)]
    history: usize,

    /// Also write every datagram into this pcapng file as it happens (a quarter of a second
    /// later, with its comment), for as long as the relay runs: what /api/capture.pcapng gives,
    /// kept whole. The file is replaced if it exists, and grows with the traffic. Needs
    /// recording on (--history above 0).
    #[arg(long, value_name = "FILE")]
    capture: Option<std::path::PathBuf>,

    /// Impair a server's link from the start: SERVER.DIR=KEY:VALUE[,KEY:VALUE...], e.g.
    /// echo.out=loss:0.3,delay:100ms,jitter:50ms or upper.in=duplicate:0.1. DIR is in (to the
    /// server) or out (from it); the keys are loss, duplicate, reorder, delay, jitter and mtu.
    /// Repeat for more.
    #[arg(long, value_name = "SERVER.DIR=KEY:VALUE,...", value_parser = relay::config::parse_link)]
    link: Vec<(ServerName, protocol::Dir, protocol::LinkPatch)>,

    /// The loopback UDP port kept free for the `nobody` target, where nothing listens. By
    /// default a free one below the OS's ephemeral range is picked.
    #[arg(long, value_name = "N", default_value_t = 0)]
    nobody_port: u16,

    /// Shortest heartbeat interval a browser tab may ask for.
    #[arg(long, value_name = "D", default_value = "100ms", value_parser = parse_duration)]
    min_heartbeat: Duration,

    /// Most connections (WebSocket sessions included) from one client address: one student's
    /// runaway tabs stop here, not at --max-sessions.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().addresses.per_address)]
    max_per_address: usize,

    /// Most connections from loopback (this machine: the teacher's own tabs and scripts).
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().addresses.per_loopback)]
    max_per_loopback: usize,

    /// How often to ping each browser tab; one that answers nothing for two pings is closed.
    #[arg(long, value_name = "D", default_value = "20s", value_parser = parse_ping)]
    ws_ping: Duration,

    /// Most requests with retries waiting for an answer on one socket.
    #[arg(long, value_name = "N", default_value_t = SessionLimits::default().pending_requests)]
    max_pending: usize,

    /// Threads that run the servers, the browser tabs' sessions and their sockets. One spends
    /// the least CPU per datagram, since nothing then waits on another core, and carries a
    /// class of 100 with a fraction of a core; more pay off only when one core is not enough.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
}

#[derive(clap::Subcommand, Debug, Clone)]
enum Action {
    /// Write a self-contained static site into DIR: the page, its wasm and JS, and a recording of
    /// every lesson made from real traffic. It works from any static host, even
    /// `python3 -m http.server`, with no relay behind it.
    ExportSite {
        /// The folder to write into; created if missing.
        dir: std::path::PathBuf,
    },
}

fn parse_ping(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < Duration::from_millis(100) {
        return Err(format!("{} is too often: ping at most every 100ms", s.trim()));
    }
    Ok(d)
}

fn parse_session_limit(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a number of sessions from 1 to 100000")),
    }
}

fn parse_history(s: &str) -> Result<usize, String> {
    let max = relay::history::HistoryLimits::MAX_EVENTS;
    match s.trim().parse::<usize>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!("{s:?} is not a number of events from 0 (recording off) to {max}")),
    }
}

fn parse_datagram_size(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(n) if (1..=relay::udp::MAX_DATAGRAM).contains(&n) => Ok(n),
        _ => Err(format!("{s:?} is not a datagram size from 1 to {} bytes", relay::udp::MAX_DATAGRAM)),
    }
}

impl Cli {
    fn into_config(self) -> anyhow::Result<Config> {
        if self.chat_timeout.is_zero() {
            anyhow::bail!("--chat-timeout must be longer than zero");
        }
        let seed = self.seed.unwrap_or_else(|| fastrand::u64(..));
        Ok(Config {
            bind: self.bind,
            http_port: self.http_port,
            ports: Ports {
                echo: self.echo_port,
                upper: self.upper_port,
                chat: self.chat_port,
                lossy: self.lossy_port,
            },
            chat: ChatSettings { timeout: self.chat_timeout, max_clients: self.chat_max_clients },
            lossy: LossySettings {
                drop: self.lossy_drop,
                delay: self.lossy_delay,
                jitter: self.lossy_jitter,
                seed,
                max_pending: self.lossy_max_pending,
            },
            limits: SessionLimits {
                sessions: self.max_sessions,
                sockets_per_session: self.max_sockets,
                sends_per_sec: self.max_sends_per_sec,
                datagram_bytes: self.max_datagram,
                bytes_per_sec: self.max_bytes_per_sec,
                crowd_clients: self.max_crowd,
                heartbeat_min: self.min_heartbeat,
                pending_requests: self.max_pending,
                ping_every: self.ws_ping,
                addresses: relay::serve::AddressLimits {
                    per_address: self.max_per_address,
                    per_loopback: self.max_per_loopback,
                },
            },
            allow_targets: self.allow_target,
            nobody_port: self.nobody_port,
            links: links(&self.link)?,
            history: relay::history::HistoryLimits { events: self.history, ..Default::default() },
            capture: self.capture,
            public_hosts: self.public_host,
            shared_changes: self.shared_changes,
        })
    }
}

/// Folds the `--link` flags into each server's settings, later flags changing earlier ones.
fn links(
    flags: &[(ServerName, protocol::Dir, protocol::LinkPatch)],
) -> anyhow::Result<std::collections::BTreeMap<ServerName, protocol::Links>> {
    let mut links = std::collections::BTreeMap::<ServerName, protocol::Links>::new();
    for (server, dir, patch) in flags {
        let settings = links.entry(*server).or_default().get_mut(*dir);
        *settings = relay::udp::link::apply(settings, patch)
            .map_err(|e| anyhow::anyhow!("--link {server}.{dir}: {e}"))?;
    }
    Ok(links)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // Reading a datagram, handling it, recording it and passing its event to the tabs that
    // watch happen one after the other: on one thread they never hand over to another core
    // (bench/bridge.sh, BENCHMARKS.md). Blocking work (exports, captures) has threads of its
    // own either way.
    let runtime = match cli.threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(usize::from(n)).enable_all().build(),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the relay's threads: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On a thread of its own rather than the main one: glibc gives the main thread the heap
    // that grows with brk and shrinks only from its top, and a class's worth of events freed
    // in between stayed resident (34 MB against 21 MB, `--bench classroom`).
    // With the main thread's stack, 8 MiB: every task is polled on it.
    let relay = std::thread::Builder::new()
        .name("relay".into())
        .stack_size(8 << 20)
        .spawn(move || runtime.block_on(start(cli)));
    let ran = match relay.map(std::thread::JoinHandle::join) {
        Ok(Ok(ran)) => ran,
        Ok(Err(_)) => Err(anyhow::anyhow!("the relay's thread panicked")),
        Err(e) => Err(anyhow::anyhow!("cannot start the relay's thread: {e}")),
    };
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn start(cli: Cli) -> anyhow::Result<()> {
    if let Some(Action::ExportSite { dir }) = &cli.action {
        let lessons = relay::export::export_site(dir).await?;
        println!("Wrote the page and {} lesson recordings to {}.", lessons.len(), dir.display());
        println!("Serve it from any static host, e.g. python3 -m http.server -d {}", dir.display());
        return Ok(());
    }
    let seed_given = cli.seed.is_some();
    let config = cli.into_config()?;
    let relay = relay::Relay::bind(config.clone()).await?;
    let handle = relay.handle();
    let shutdown = shutdown_signal();

    // Bound to every interface, this machine opens the page at loopback: 127.0.0.1, which a
    // relay bound to `::` answers at too unless its sockets are IPv6 only.
    let page_ip = match handle.http.ip() {
        ip if !ip.is_unspecified() => ip,
        IpAddr::V6(_) if !relay::interfaces::ipv6_any_takes_ipv4() => std::net::Ipv6Addr::LOCALHOST.into(),
        _ => std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let url = format!("http://{}/", SocketAddr::new(page_ip, handle.http.port()));
    println!("UDP Playground relay is running.\n");
    // Bound to every interface, a server's own address (0.0.0.0) is one nobody can send to:
    // show it at the address students use instead. Scripts read these lines (bench/).
    let shown = config.bind.is_unspecified().then(|| relay::interfaces::primary(config.bind));
    let loopback = match config.bind {
        IpAddr::V4(_) => IpAddr::from(std::net::Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    };
    for (server, addr) in handle.targets() {
        let addr = match &shown {
            Some(found) if addr.ip().is_unspecified() => {
                SocketAddr::new(found.as_ref().map_or(loopback, |(_, ip)| *ip), addr.port())
            }
            _ => addr,
        };
        println!("  {:<6} udp://{addr:<22} {}", server.as_str(), describe(server, &config));
    }
    match &shown {
        Some(Some((name, ip))) => {
            println!("\n  The servers listen on every interface (--bind {}); they are shown at", config.bind);
            println!("  {name}'s address, {ip}, which students use. On this machine {loopback} works too.");
        }
        Some(None) => {
            println!("\n  The servers listen on every interface (--bind {}); they are shown at", config.bind);
            println!("  {loopback}, as this machine has no network address yet.");
        }
        None => {}
    }
    println!("\n  Open {url} to watch the traffic. Press Ctrl-C to stop.");
    if !seed_given {
        println!("  Lossy seed {} (repeat this run's losses with --seed {}).", handle.seed, handle.seed);
    }
    if config.bind.is_unspecified() {
        let port = handle.http.port();
        let addresses = relay::interfaces::network_addresses(config.bind);
        if addresses.is_empty() {
            println!("  No network address found: students' machines cannot reach this one yet.");
        } else {
            println!("  Students open one of these (the same network as this machine):");
            for (name, ip) in addresses {
                let url = format!("http://{}/", SocketAddr::new(ip, port));
                println!("    {url:<32} ({name})");
            }
        }
        for host in &config.public_hosts {
            println!("    {}", relay::interfaces::host_url(host, port));
        }
        println!("  On this machine's projector, open {url}?view=all to show everyone's traffic.");
        if config.shared_changes == SharedChanges::Local {
            println!("  A student's page changes the servers and links for its own sockets only; pages");
            println!("  on this machine change them for everyone (--shared-changes anyone lets all pages).");
        }
    }
    tracing::info!(%url, seed = handle.seed, "relay started");

    relay.serve(shutdown).await?;
    tracing::info!("relay stopped");
    Ok(())
}

fn describe(server: ServerName, config: &Config) -> String {
    match server {
        ServerName::Echo => "echoes every datagram".to_owned(),
        ServerName::Upper => "echoes in UPPERCASE".to_owned(),
        ServerName::Chat => {
            format!("chat, evicts clients silent for {}", humantime::format_duration(config.chat.timeout))
        }
        ServerName::Lossy => format!("drops {:.0}% of datagrams", config.lossy.drop * 100.0),
        ServerName::Nobody => "nothing listens here: datagrams vanish".to_owned(),
    }
}

/// Completes on Ctrl-C or, on Unix, SIGTERM: both stop the relay the same clean way.
///
/// The handlers are installed here, before the banner is printed, not when the future is
/// first polled: a SIGTERM that came in between (a script stopping the relay as soon as it
/// answers) would otherwise meet the default action and kill the relay without its shutdown.
fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let listen = {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers =
            signal(SignalKind::interrupt()).and_then(|i| Ok((i, signal(SignalKind::terminate())?)));
        async move {
            match handlers {
                Ok((mut interrupt, mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                Err(e) => {
                    tracing::error!("cannot listen for Ctrl-C and SIGTERM: {e}");
                    std::future::pending::<()>().await;
                }
            }
        }
    };
    #[cfg(not(unix))]
    let listen = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!("cannot listen for Ctrl-C: {e}");
            std::future::pending::<()>().await;
        }
    };
    async move {
        listen.await;
        tracing::info!("shutting down");
    }
}
