//! UDP servers: handlers decide, one driver does the I/O.
//!
//! Each server is a [`DatagramHandler`], a small state machine with the lifecycle of Twisted's
//! `DatagramProtocol` (`startProtocol`, `datagramReceived`, `connectionRefused`,
//! `stopProtocol`). A handler never touches a socket or a clock: it is handed `now`, and it
//! writes what to send and which events to emit into a [`Cx`]. That keeps every server
//! deterministic and unit-testable with explicit time.
//!
//! [`drive`] is the only code that owns a socket. It reads datagrams, calls the handler, sends
//! what the handler asked for, fires the handler's timer, passes on control messages, and stops
//! on shutdown. The same driver runs the relay's servers and the client sockets that browser
//! sessions open (`crate::bridge::client`), so both behave alike on errors and shutdown.

pub mod chat;
pub mod echo;
pub mod lossy;
pub mod upper;

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use protocol::{EventKind, Payload, ServerName};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;

/// The largest UDP payload over IPv4: 65,535 minus the 8-byte UDP and 20-byte IP headers.
/// Every server accepts datagrams up to this size.
pub const MAX_DATAGRAM: usize = 65_507;

/// What a UDP server (or client socket) does. The driver owns the socket; the handler only
/// decides.
pub trait DatagramHandler: Send + 'static {
    /// Which server this is. The driver then reports every datagram in and out as
    /// `server_recv` and `server_send` events. `None` for a client socket, which reports its
    /// own traffic with richer events.
    fn server(&self) -> Option<ServerName>;

    /// The socket is bound and the server is about to read (Twisted's `startProtocol`).
    fn on_start(&mut self, _cx: &mut Cx, _now: Instant) {}

    /// A datagram arrived (`datagramReceived`). `payload` may be empty: an empty datagram is
    /// still a datagram.
    fn on_datagram(&mut self, cx: &mut Cx, now: Instant, from: SocketAddr, payload: &[u8]);

    /// The kernel reported ICMP port unreachable for an earlier send (`connectionRefused`).
    /// An unconnected socket rarely knows which peer it was, hence the `Option`.
    fn on_refused(&mut self, cx: &mut Cx, _now: Instant, peer: Option<SocketAddr>) {
        if let Some(server) = self.server() {
            cx.emit(|| EventKind::ServerRefused { server, peer });
        }
    }

    /// When the handler next wants [`DatagramHandler::on_tick`], if ever.
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// The time asked for by [`DatagramHandler::poll_timeout`] has come.
    fn on_tick(&mut self, _cx: &mut Cx, _now: Instant) {}

    /// An operator changed a live setting. Only servers have settings.
    fn on_configure(&mut self, _cx: &mut Cx, _now: Instant, setting: Setting) -> Result<(), SettingError> {
        Err(SettingError::NotSupported { server: self.server(), setting: setting.name() })
    }

    /// The server's current settings, for `/api/servers` and `hello`.
    fn settings(&self) -> protocol::ServerSettings {
        protocol::ServerSettings::default()
    }

    /// A browser session asked its client socket to do something. Only client sockets obey.
    fn on_client(&mut self, _cx: &mut Cx, _now: Instant, _command: ClientCommand) {}

    /// The relay is shutting down (`stopProtocol`). Sends queued here still go out.
    fn on_stop(&mut self, _cx: &mut Cx, _now: Instant) {}
}

/// A live setting change for one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    /// Lossy: the probability of dropping a datagram, 0.0 to 1.0.
    Drop(f64),
    /// Lossy: the fixed delay before each answer.
    Delay(Duration),
    /// Lossy: the upper bound of the random extra delay.
    Jitter(Duration),
    /// Chat: how long a silent client lives.
    ChatTimeout(Duration),
}

impl Setting {
    pub fn name(self) -> &'static str {
        match self {
            Self::Drop(_) => "drop",
            Self::Delay(_) => "delay_ms",
            Self::Jitter(_) => "jitter_ms",
            Self::ChatTimeout(_) => "timeout_ms",
        }
    }

    /// The new value as a number: a probability, or a duration in milliseconds.
    pub fn value(self) -> f64 {
        match self {
            Self::Drop(p) => p,
            Self::Delay(d) | Self::Jitter(d) | Self::ChatTimeout(d) => d.as_secs_f64() * 1000.0,
        }
    }
}

/// Why a live setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    #[error("the {} server has no setting {setting:?}", server.map_or("client", ServerName::as_str))]
    NotSupported { server: Option<ServerName>, setting: &'static str },
    #[error("drop probability must be between 0.0 and 1.0, got {0}")]
    DropOutOfRange(f64),
    #[error("the chat timeout must be more than zero")]
    ZeroTimeout,
    #[error("{setting} may be at most a day")]
    TooLong { setting: &'static str },
}

/// What the rest of the relay can tell a running handler.
#[derive(Debug)]
pub enum Control {
    /// Change a server setting, and say whether it was accepted.
    Configure { setting: Setting, reply: tokio::sync::oneshot::Sender<Result<(), SettingError>> },
    /// Report the current settings.
    Describe(tokio::sync::oneshot::Sender<protocol::ServerSettings>),
    /// A browser session's request to its client socket.
    Client(ClientCommand),
}

/// What a browser session can ask of one of its client sockets.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientCommand {
    /// Send a datagram, optionally as a request with retries and request IDs.
    Send { payload: Vec<u8>, retry: Option<protocol::RetryParams>, request_id: bool },
    /// Send `^hb^` every so often; `None` stops.
    Heartbeat(Option<Duration>),
}

/// How a queued datagram should be reported.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Report {
    /// One `server_send` event (servers only).
    Each,
    /// No event of its own: the handler reported it (a chat broadcast, a client send).
    Silent,
    /// One `server_send` event saying the answer was held this long.
    Delayed(Duration),
}

#[derive(Debug)]
struct Outgoing {
    to: SocketAddr,
    bytes: Range<usize>,
    report: Report,
}

/// The handler's side of one driver step: what to send and which events to emit.
///
/// Payloads are written into one reused buffer, so a steady stream of echoes allocates
/// nothing per datagram.
#[derive(Debug)]
pub struct Cx {
    server: Option<ServerName>,
    local: SocketAddr,
    observed: bool,
    buf: Vec<u8>,
    out: Vec<Outgoing>,
    events: Vec<EventKind>,
}

impl Cx {
    pub fn new(server: Option<ServerName>, local: SocketAddr) -> Self {
        Self { server, local, observed: false, buf: Vec::new(), out: Vec::new(), events: Vec::new() }
    }

    /// The server's own address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Sends `payload` to `to`, reported as a `server_send` event.
    pub fn send(&mut self, to: SocketAddr, payload: &[u8]) {
        self.send_with(to, |buf| buf.extend_from_slice(payload));
    }

    /// Sends the bytes that `write` appends, reported as a `server_send` event.
    pub fn send_with(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        self.queue(to, Report::Each, write);
    }

    /// Sends an answer that was held for `held`, reported with its delay.
    pub fn send_delayed(&mut self, to: SocketAddr, payload: &[u8], held: Duration) {
        self.queue(to, Report::Delayed(held), |buf| buf.extend_from_slice(payload));
    }

    /// Sends without a `server_send` event of its own; the handler reports it.
    pub fn send_silent(&mut self, to: SocketAddr, payload: &[u8]) {
        self.queue(to, Report::Silent, |buf| buf.extend_from_slice(payload));
    }

    /// Sends one payload to many peers, reported by the handler with one summary event. The
    /// bytes are stored once: a 64 KB chat message to 10,000 clients costs 64 KB, not 640 MB.
    pub fn send_silent_to_all(&mut self, to: impl IntoIterator<Item = SocketAddr>, payload: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        let bytes = start..self.buf.len();
        self.out.extend(to.into_iter().map(|to| Outgoing {
            to,
            bytes: bytes.clone(),
            report: Report::Silent,
        }));
    }

    fn queue(&mut self, to: SocketAddr, report: Report, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.buf.len();
        write(&mut self.buf);
        self.out.push(Outgoing { to, bytes: start..self.buf.len(), report });
    }

    /// Emits an event. `build` runs only when someone is watching, so unwatched servers do
    /// not even format their events.
    pub fn emit(&mut self, build: impl FnOnce() -> EventKind) {
        if self.observed {
            self.events.push(build());
        }
    }

    /// Whether events are being collected this step.
    pub fn observed(&self) -> bool {
        self.observed
    }

    /// Collects events from now on even without a bus subscriber. For tests of handlers.
    pub fn observe(&mut self) {
        self.observed = true;
    }

    /// Takes the queued datagrams as `(to, bytes)` pairs, in order. For tests of handlers.
    pub fn take_sent(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        let sent = self.out.iter().map(|o| (o.to, self.buf[o.bytes.clone()].to_vec())).collect();
        self.out.clear();
        self.buf.clear();
        sent
    }

    /// Takes the queued events, in order. For tests of handlers.
    pub fn take_events(&mut self) -> Vec<EventKind> {
        std::mem::take(&mut self.events)
    }

    /// Sends everything queued, then publishes the events: the handler's first, then one
    /// `server_send` per datagram that asked for one.
    async fn flush<H: DatagramHandler>(
        &mut self,
        socket: &UdpSocket,
        peer: Option<SocketAddr>,
        handler: &mut H,
        bus: &EventBus,
        errors: &mut ErrorLog,
    ) {
        let now = Instant::now();
        for event in self.events.drain(..) {
            bus.emit(now, event);
        }
        let mut refused = false;
        for o in &self.out {
            let bytes = &self.buf[o.bytes.clone()];
            // A connected socket must use send(): it can only talk to its peer anyway. Try the
            // plain non-blocking call first (a chat broadcast is thousands of them in a row)
            // and wait for the socket only when the kernel's send buffer is full.
            let tried = match peer {
                Some(_) => socket.try_send(bytes),
                None => socket.try_send_to(bytes, o.to),
            };
            let sent = match tried {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match peer {
                    Some(_) => socket.send(bytes).await,
                    None => socket.send_to(bytes, o.to).await,
                },
                other => other,
            };
            match sent {
                Ok(_) => {}
                Err(e) if is_refusal(&e) => refused = true,
                Err(e) => errors.log(self.server, "send", &e),
            }
            let Some(server) = self.server else { continue };
            if self.observed && o.report != Report::Silent {
                let delay_ms = match o.report {
                    Report::Delayed(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    _ => None,
                };
                bus.emit(
                    Instant::now(),
                    EventKind::ServerSend {
                        server,
                        from: self.local,
                        to: o.to,
                        len: bytes.len(),
                        payload: Payload::preview(bytes),
                        delay_ms,
                    },
                );
            }
        }
        self.out.clear();
        self.buf.clear();
        // One big step (a broadcast to 10,000 clients) must not keep its memory forever.
        if self.out.capacity() > KEEP_OUTGOING {
            self.out.shrink_to(KEEP_OUTGOING);
        }
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf.shrink_to(KEEP_BUFFER);
        }
        if refused {
            handler.on_refused(self, now, peer);
            for event in self.events.drain(..) {
                bus.emit(now, event);
            }
        }
    }
}

/// On Linux a UDP socket learns of an ICMP port unreachable as `ECONNREFUSED` on its next
/// call; Windows reports it on `recv_from` as `ConnectionReset` (WSAECONNRESET). Both mean
/// "some earlier datagram found no listener", never "this socket is broken".
fn is_refusal(e: &io::Error) -> bool {
    matches!(e.kind(), io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset)
}

/// Logs I/O errors at most once a second per server, with a count of the ones not shown.
/// A peer that triggers errors in a loop must not flood the operator's terminal.
#[derive(Debug, Default)]
struct ErrorLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl ErrorLog {
    fn log(&mut self, server: Option<ServerName>, what: &str, e: &io::Error) {
        let server = server.map_or("client", ServerName::as_str);
        let now = Instant::now();
        if self.last.is_some_and(|last| now.duration_since(last) < Duration::from_secs(1)) {
            self.suppressed += 1;
            return;
        }
        tracing::warn!(server, suppressed = self.suppressed, "{what} failed: {e}");
        self.last = Some(now);
        self.suppressed = 0;
    }
}

/// Queued datagrams and payload bytes a socket keeps room for between steps.
const KEEP_OUTGOING: usize = 1_024;
const KEEP_BUFFER: usize = 256 * 1024;

/// Datagrams handled back to back before the driver looks at its timer, its control channel
/// and shutdown again. Small enough that a timer fires late by microseconds, not more.
const RECV_BURST: usize = 32;

/// How many already-queued datagrams a stopping socket still handles, so that a reply that
/// has arrived (the chat server's `end`, say) is reported rather than lost.
const DRAIN_ON_STOP: usize = 64;

/// Runs one socket until `shutdown` is cancelled: the only code that touches it.
///
/// Nothing a peer sends can end this loop. Errors from the socket are logged (rate-limited)
/// and the loop goes on; refusals become `on_refused`.
pub async fn drive<H: DatagramHandler>(
    socket: UdpSocket,
    mut handler: H,
    bus: EventBus,
    mut control: mpsc::Receiver<Control>,
    shutdown: CancellationToken,
) {
    let server = handler.server();
    let local = match socket.local_addr() {
        Ok(addr) => addr,
        Err(e) => {
            tracing::error!(?server, "socket has no local address: {e}");
            return;
        }
    };
    let peer = socket.peer_addr().ok();
    let mut cx = Cx::new(server, local);
    let mut errors = ErrorLog::default();
    // One byte more than the largest datagram, so an oversized one (possible over IPv6
    // loopback) is seen as such rather than silently cut to a plausible size.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];

    cx.observed = bus.is_observed();
    handler.on_start(&mut cx, Instant::now());
    cx.flush(&socket, peer, &mut handler, &bus, &mut errors).await;

    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed_for = None;

    loop {
        let deadline = handler.poll_timeout();
        if deadline != armed_for {
            if let Some(at) = deadline {
                timer.as_mut().reset(at.into());
            }
            armed_for = deadline;
        }
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            received = socket.recv_from(&mut buf) => {
                cx.observed = bus.is_observed();
                received_one(&mut handler, &mut cx, &bus, &mut errors, peer, &buf, received);
                // Datagrams come in bursts when many peers talk at once. Handle the ones
                // already queued straight away, each answered before the next is read,
                // instead of going round the select! (and its wake-up bookkeeping) for each.
                for _ in 1..RECV_BURST {
                    cx.flush(&socket, peer, &mut handler, &bus, &mut errors).await;
                    match socket.try_recv_from(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        received => received_one(&mut handler, &mut cx, &bus, &mut errors, peer, &buf, received),
                    }
                }
            }
            () = &mut timer, if armed_for.is_some() => {
                // Fire once per deadline: the handler returns a new one if it wants another.
                armed_for = None;
                cx.observed = bus.is_observed();
                handler.on_tick(&mut cx, Instant::now());
            }
            Some(message) = control.recv() => {
                cx.observed = bus.is_observed();
                let now = Instant::now();
                match message {
                    Control::Configure { setting, reply } => {
                        let outcome = handler.on_configure(&mut cx, now, setting);
                        if let (Ok(()), Some(server)) = (&outcome, server) {
                            let (name, value) = (setting.name().to_owned(), setting.value());
                            cx.emit(|| EventKind::ServerConfigured { server, setting: name, value });
                        }
                        // The asker may have given up waiting; the setting still applies.
                        let _ = reply.send(outcome);
                    }
                    Control::Describe(reply) => {
                        let _ = reply.send(handler.settings());
                    }
                    Control::Client(command) => handler.on_client(&mut cx, now, command),
                }
            }
        }
        cx.flush(&socket, peer, &mut handler, &bus, &mut errors).await;
    }

    // Handle what has already arrived, without waiting for more. This asks the kernel
    // directly: tokio's own readiness flag may not have caught up with a datagram that landed
    // a moment ago (the chat server's `end`, sent just before this socket was told to stop).
    cx.observed = bus.is_observed();
    let socket = match socket.into_std() {
        Ok(std_socket) => {
            for _ in 0..DRAIN_ON_STOP {
                let received = match std_socket.recv_from(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    other => other,
                };
                received_one(&mut handler, &mut cx, &bus, &mut errors, peer, &buf, received);
            }
            UdpSocket::from_std(std_socket)
        }
        Err(e) => Err(e),
    };
    let socket = match socket {
        Ok(socket) => socket,
        Err(e) => {
            errors.log(server, "stop", &e);
            return;
        }
    };
    handler.on_stop(&mut cx, Instant::now());
    cx.flush(&socket, peer, &mut handler, &bus, &mut errors).await;
}

/// Hands one received datagram (or receive error) to the handler.
fn received_one<H: DatagramHandler>(
    handler: &mut H,
    cx: &mut Cx,
    bus: &EventBus,
    errors: &mut ErrorLog,
    peer: Option<SocketAddr>,
    buf: &[u8],
    received: io::Result<(usize, SocketAddr)>,
) {
    let now = Instant::now();
    match received {
        Ok((len, from)) => {
            let payload = &buf[..len];
            if let (true, Some(server)) = (cx.observed, handler.server()) {
                let to = cx.local;
                bus.emit(
                    now,
                    EventKind::ServerRecv { server, from, to, len, payload: Payload::preview(payload) },
                );
            }
            handler.on_datagram(cx, now, from, payload);
        }
        Err(e) if is_refusal(&e) => handler.on_refused(cx, now, peer),
        Err(e) => errors.log(handler.server(), "receive", &e),
    }
}
