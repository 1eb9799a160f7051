//! The relay as a whole: binding every socket, then serving until shutdown.
//!
//! [`Relay::bind`] binds every socket, so a caller can learn the real ports before serving;
//! [`Relay::serve`] runs until the shutdown future completes. [`run`] does both.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use protocol::{Scope, ServerName};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bridge::AppState;
use crate::bus::EventBus;
use crate::config::{self, Config};
use crate::history::History;
use crate::metrics::Metrics;
use crate::udp::chat::Chat;
use crate::udp::echo::Echo;
use crate::udp::link::{LinkError, Wire};
use crate::udp::lossy::Lossy;
use crate::udp::upper::Upper;
use crate::udp::{Control, LinkChange, Setting, SettingError, drive_server};
use crate::{http, serve};

/// Why the relay could not start.
///
/// The OS's reason is part of each message rather than a separate `source`, so the one-line
/// message reads the same however it is printed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot bind the {server} server to UDP {addr}: {reason} ({})", bind_advice(.reason, .addr, .flag))]
    BindUdp { server: ServerName, addr: SocketAddr, flag: &'static str, reason: io::Error },
    #[error("cannot bind the web page to TCP {addr}: {reason} ({})", bind_advice(.reason, .addr, "--http-port"))]
    BindHttp { addr: SocketAddr, reason: io::Error },
    /// Found before anything is bound.
    #[error(transparent)]
    SamePort(#[from] config::SamePort),
    #[error("cannot keep a port free for `nobody` at {addr}: {reason} (choose another with --nobody-port)")]
    Nobody { addr: SocketAddr, reason: io::Error },
    #[error("cannot write the capture to {}: {reason}", path.display())]
    Capture { path: std::path::PathBuf, reason: io::Error },
    #[error("--capture needs recording on: --history must be above 0")]
    CaptureWithoutHistory,
    #[error("the HTTP server failed: {0}")]
    Http(io::Error),
}

/// What to do about a failed bind, by what failed: the port (in use, or one below 1024 that
/// needs administrator rights) or the address (not one of this machine's).
fn bind_advice(reason: &io::Error, addr: &SocketAddr, flag: &str) -> String {
    match reason.kind() {
        io::ErrorKind::AddrNotAvailable => format!(
            "{} is not one of this machine's addresses: use --bind 127.0.0.1 for this machine only, \
             or --bind 0.0.0.0 for every interface",
            addr.ip()
        ),
        io::ErrorKind::PermissionDenied if addr.port() < 1024 => {
            format!("ports below 1024 need administrator rights: choose a port above 1023 with {flag}")
        }
        _ => format!("choose another port with {flag}"),
    }
}

/// A relay whose sockets are bound but which is not serving yet.
pub struct Relay {
    config: Config,
    http: TcpListener,
    /// `--capture`'s file, opened.
    capture: Option<std::fs::File>,
    sockets: Vec<(ServerName, UdpSocket, mpsc::Receiver<Control<Infallible>>)>,
    bus: EventBus,
    handle: RelayHandle,
}

/// What the rest of the relay (and tests) may hold on to: addresses, the bus, live settings.
#[derive(Clone, Debug)]
pub struct RelayHandle {
    /// Where the page and API are served.
    pub http: SocketAddr,
    /// Each server's real address.
    pub servers: BTreeMap<ServerName, SocketAddr>,
    /// Where nothing listens: the `nobody` target, a loopback port the relay keeps free.
    pub nobody: SocketAddr,
    /// The lossy server's seed, so a run can be repeated with `--seed`.
    pub seed: u64,
    settings: BTreeMap<ServerName, mpsc::Sender<Control<Infallible>>>,
}

/// The receive buffer each server asks the kernel for.
const RECV_BUFFER: usize = 4 << 20;

/// Live settings are changed rarely, by people; 16 waiting requests is plenty.
const SETTINGS_QUEUE: usize = 16;

impl RelayHandle {
    /// Everything a socket can be aimed at by name, with its address: the servers, then
    /// `nobody`.
    pub fn targets(&self) -> impl Iterator<Item = (ServerName, SocketAddr)> + '_ {
        self.servers.iter().map(|(&name, &addr)| (name, addr)).chain([(ServerName::Nobody, self.nobody)])
    }

    /// Every server's current settings, asked of the servers themselves.
    pub async fn settings(&self) -> BTreeMap<ServerName, protocol::ServerSettings> {
        self.ask_every_server(Control::Describe).await
    }

    /// Every server's link, both directions, asked of the servers' drivers.
    pub async fn links(&self) -> BTreeMap<ServerName, protocol::Links> {
        self.ask_every_server(Control::DescribeLinks).await
    }

    /// Asks each server's driver a question and collects the answers. The driver reads its
    /// control channel before its traffic, so it answers under any load; one that does not
    /// answer within a second (it never should) is left out.
    async fn ask_every_server<T>(
        &self,
        question: impl Fn(oneshot::Sender<T>) -> Control<Infallible>,
    ) -> BTreeMap<ServerName, T> {
        let mut all = BTreeMap::new();
        for (&server, tx) in &self.settings {
            let (reply, answer) = oneshot::channel();
            if tx.send(question(reply)).await.is_err() {
                continue;
            }
            if let Ok(Ok(value)) = tokio::time::timeout(std::time::Duration::from_secs(1), answer).await {
                all.insert(server, value);
            }
        }
        all
    }

    /// Changes one direction of a server's link, or aims a fault at it; answers with that
    /// direction's settings. `None` for a server the relay does not run (`nobody`). `by` is the
    /// session that asked, named in the event (`None`: the HTTP API). With [`Scope::Own`] the
    /// change is for that session's sockets only, in its sandbox at that server.
    pub async fn link(
        &self,
        server: ServerName,
        dir: protocol::Dir,
        change: LinkChange,
        by: Option<&str>,
        scope: Scope,
    ) -> Option<Result<protocol::LinkSettings, LinkError>> {
        let tx = self.settings.get(&server)?;
        let (reply, outcome) = oneshot::channel();
        let by = by.map(str::to_owned);
        tx.send(Control::Link { dir, change, by, scope, reply }).await.ok()?;
        outcome.await.ok()
    }

    /// Dissolves session `session`'s sandbox at `server`, if it has one there; with
    /// `announce`, the settings and links that change for its sockets are announced.
    pub async fn reset(&self, server: ServerName, session: &str, announce: bool) {
        if let Some(tx) = self.settings.get(&server) {
            let _ = tx.send(Control::Reset { session: session.to_owned(), announce }).await;
        }
    }

    /// Changes a live setting of a server and waits for the server to accept or refuse it. `by`
    /// and `scope` as for [`link`](Self::link).
    pub async fn configure(
        &self,
        server: ServerName,
        setting: Setting,
        by: Option<&str>,
        scope: Scope,
    ) -> Result<(), SettingError> {
        let Some(tx) = self.settings.get(&server) else {
            return Err(SettingError::NotSupported { server: Some(server), setting: setting.name() });
        };
        let (reply, outcome) = oneshot::channel();
        let gone = || SettingError::NotSupported { server: Some(server), setting: setting.name() };
        if tx.send(Control::Configure { setting, by: by.map(str::to_owned), scope, reply }).await.is_err() {
            return Err(gone());
        }
        outcome.await.unwrap_or_else(|_| Err(gone()))
    }
}

impl Relay {
    /// Binds the HTTP listener and every UDP server, reporting the first failure.
    pub async fn bind(config: Config) -> Result<Relay, StartError> {
        config.check_ports()?;
        let mut sockets = Vec::new();
        let mut servers = BTreeMap::new();
        let mut settings = BTreeMap::new();
        for server in ServerName::ALL {
            let addr = config.server_addr(server);
            let bind_error =
                |reason| StartError::BindUdp { server, addr, flag: config::port_flag(server), reason };
            let socket = UdpSocket::bind(addr).await.map_err(bind_error)?;
            // A server reads one datagram at a time; while it sends a chat message to
            // thousands of clients, their heartbeats queue in the kernel. The default receive
            // buffer (about 200 KB) overflows, and a lost heartbeat gets a client evicted.
            // The kernel caps the request at its `net.core.rmem_max`.
            if let Err(e) = socket2::SockRef::from(&socket).set_recv_buffer_size(RECV_BUFFER) {
                tracing::warn!(%server, "cannot enlarge the receive buffer: {e}");
            }
            servers.insert(server, socket.local_addr().map_err(bind_error)?);
            let (tx, rx) = mpsc::channel(SETTINGS_QUEUE);
            settings.insert(server, tx);
            sockets.push((server, socket, rx));
        }
        let addr = config.http_addr();
        let http = TcpListener::bind(addr).await.map_err(|reason| StartError::BindHttp { addr, reason })?;
        let http_addr = http.local_addr().map_err(|reason| StartError::BindHttp { addr, reason })?;
        let nobody = nobody_port(&config)?;
        let seed = config.lossy.seed;
        let handle = RelayHandle { http: http_addr, servers, nobody, seed, settings };
        let epoch = Instant::now();
        let history = (config.history.events > 0).then(|| Arc::new(History::new(config.history, epoch)));
        let capture = match (&config.capture, &history) {
            (None, _) => None,
            (Some(_), None) => return Err(StartError::CaptureWithoutHistory),
            (Some(path), Some(_)) => Some(
                std::fs::File::create(path)
                    .map_err(|reason| StartError::Capture { path: path.clone(), reason })?,
            ),
        };
        let bus = EventBus::recording(epoch, history, Arc::new(Metrics::new()));
        bus.datagrams().set_nobody(nobody);
        Ok(Relay { config, http, capture, sockets, bus, handle })
    }

    /// Addresses and live settings of the bound relay.
    pub fn handle(&self) -> &RelayHandle {
        &self.handle
    }

    /// The bus every server emits into. Subscribe before [`Relay::serve`] to see everything.
    pub fn bus(&self) -> &EventBus {
        &self.bus
    }

    /// Serves until `shutdown` completes, then stops every server (the chat server sends its
    /// clients `end`) and waits for them to finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), StartError> {
        let Relay { config, http, capture, sockets, bus, handle } = self;
        let token = CancellationToken::new();
        let tasks = TaskTracker::new();

        // The capture file is written from a thread of its own, until the servers have stopped.
        let capture_stop = CancellationToken::new();
        let capture = match (capture, config.capture.clone(), bus.history().cloned()) {
            (Some(file), Some(path), Some(history)) => {
                let stop = capture_stop.clone();
                let writer = std::thread::Builder::new().name("capture".into()).spawn(move || {
                    if let Err(e) = crate::capture::write_continuously(file, path.clone(), history, stop) {
                        tracing::error!(path = %path.display(), "the capture file stopped: {e}");
                    }
                });
                match writer {
                    Ok(writer) => Some(writer),
                    Err(reason) => {
                        let path = config.capture.clone().unwrap_or_default();
                        return Err(StartError::Capture { path, reason });
                    }
                }
            }
            _ => None,
        };

        for (server, socket, rx) in sockets {
            let (bus, token) = (bus.clone(), token.clone());
            // Every link gets a stream of its own from the one seed.
            let wire =
                Wire::new(server, config.lossy.seed, config.links.get(&server).copied().unwrap_or_default());
            match server {
                ServerName::Echo => tasks.spawn(drive_server(socket, Echo, wire, bus, rx, token)),
                ServerName::Upper => tasks.spawn(drive_server(socket, Upper, wire, bus, rx, token)),
                ServerName::Chat => {
                    tasks.spawn(drive_server(socket, Chat::new(config.chat), wire, bus, rx, token))
                }
                ServerName::Lossy => {
                    tasks.spawn(drive_server(socket, Lossy::new(config.lossy), wire, bus, rx, token))
                }
                // `ServerName::ALL`, which `bind` walks, holds only real servers.
                ServerName::Nobody => continue,
            };
        }

        // Shutdown runs in order: the servers stop first (the chat server sends `end`), then
        // the sessions, which pass on the last events and say bye, then the HTTP server.
        let sessions = TaskTracker::new();
        let stop_sessions = CancellationToken::new();
        let address_limits = config.limits.addresses;
        let state = AppState {
            relay: handle,
            sessions: Arc::new(Semaphore::new(config.limits.sessions)),
            config: Arc::new(config),
            bus,
            stop_sessions: stop_sessions.clone(),
            tasks: sessions.clone(),
        };
        let app = http::router(state);
        let stop_servers = token.clone();
        let server_tasks = tasks.clone();
        serve::serve(http, app, address_limits, async move {
            shutdown.await;
            stop_servers.cancel();
            server_tasks.close();
            server_tasks.wait().await;
            stop_sessions.cancel();
            sessions.close();
            sessions.wait().await;
        })
        .await;
        token.cancel();
        tasks.close();
        tasks.wait().await;
        capture_stop.cancel();
        if let Some(writer) = capture {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        Ok(())
    }
}

/// Chooses the `nobody` port: `--nobody-port`, or a free loopback port below the range the OS
/// hands out for port 0, so that no socket the relay or anyone else opens on port 0 lands on it
/// by chance. Every send there checks again that it is still free.
fn nobody_port(config: &Config) -> Result<SocketAddr, StartError> {
    let ip = match config.bind {
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
    };
    let free = |port| std::net::UdpSocket::bind(SocketAddr::new(ip, port)).map(|_| SocketAddr::new(ip, port));
    if config.nobody_port != 0 {
        let addr = SocketAddr::new(ip, config.nobody_port);
        return free(config.nobody_port).map_err(|reason| StartError::Nobody { addr, reason });
    }
    // Linux's ephemeral range starts at 32768 by default; 20000-32767 is rarely used.
    let mut last = None;
    for _ in 0..64 {
        match free(fastrand::u16(20_000..32_768)) {
            Ok(addr) => return Ok(addr),
            Err(e) => last = Some(e),
        }
    }
    let addr = SocketAddr::new(ip, 0);
    Err(StartError::Nobody { addr, reason: last.unwrap_or_else(|| io::Error::other("no free port")) })
}

/// Binds and serves until `shutdown` completes: the whole relay in one call.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    Relay::bind(config).await?.serve(shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_advice_names_what_failed() {
        let addr: SocketAddr = "10.99.99.99:1060".parse().expect("addr");
        let advice = |kind| bind_advice(&io::Error::from(kind), &addr, "--lossy-port");
        assert_eq!(advice(io::ErrorKind::AddrInUse), "choose another port with --lossy-port");
        let not_ours = advice(io::ErrorKind::AddrNotAvailable);
        assert!(not_ours.starts_with("10.99.99.99 is not one of this machine's addresses"), "{not_ours}");
        assert!(!not_ours.contains("port"), "the port is not the problem: {not_ours}");
        assert_eq!(advice(io::ErrorKind::PermissionDenied), "choose another port with --lossy-port");
        let low = bind_advice(
            &io::Error::from(io::ErrorKind::PermissionDenied),
            &"127.0.0.1:7".parse().expect("addr"),
            "--echo-port",
        );
        assert!(low.contains("below 1024") && low.contains("--echo-port"), "{low}");
    }
}
