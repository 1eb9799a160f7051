//! What a UDP server (or client socket) decides, apart from any I/O: the [`DatagramHandler`]
//! trait and the [`Cx`] it writes its decisions into.

use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Dg, EventKind, ServerName};

use super::control::{Setting, SettingError};
use super::identity::Datagrams;

/// What a UDP server (or client socket) does. The driver owns the socket; the handler only
/// decides. The lifecycle is that of Twisted's `DatagramProtocol`.
pub trait DatagramHandler: Send + 'static {
    /// What the rest of the relay can ask of this handler besides settings: a client socket's
    /// sends and heartbeats. Servers take none ([`std::convert::Infallible`]).
    type Command: Send + 'static;

    /// Which server this is. The driver then reports every datagram in and out as
    /// `server_recv` and `server_send` events. `None` for a client socket, which reports its
    /// own traffic with richer events.
    fn server(&self) -> Option<ServerName>;

    /// The socket is bound and the server is about to read (Twisted's `startProtocol`).
    fn on_start(&mut self, _cx: &mut Cx, _now: Instant) {}

    /// A datagram arrived (`datagramReceived`). `payload` may be empty: an empty datagram is
    /// still a datagram. [`Cx::arrival`] names it.
    fn on_datagram(&mut self, cx: &mut Cx, now: Instant, from: SocketAddr, payload: &[u8]);

    /// The kernel reported ICMP port unreachable for an earlier send (`connectionRefused`).
    /// An unconnected socket rarely knows which peer it was, hence the `Option`.
    fn on_refused(&mut self, cx: &mut Cx, _now: Instant, peer: Option<SocketAddr>) {
        if let Some(server) = self.server() {
            cx.emit(|| EventKind::ServerRefused { server, peer });
        }
    }

    /// A datagram queued with [`Cx::send_silent`] did not reach a socket: the kernel refused
    /// it, or it went where nothing listens. Servers' datagrams never get here.
    fn on_undelivered(&mut self, _cx: &mut Cx, _now: Instant, _lost: Undelivered) {}

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

    /// A fresh copy of this server for one session's sandbox (`"scope":"own"`): its settings
    /// as they are now, none of its state (no clients, nothing held), and random draws of its
    /// own, seeded from `salt`. `None`: this handler takes no sandbox (client sockets).
    fn sandbox(&self, _salt: u64) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// A command of this handler's own kind.
    fn on_command(&mut self, _cx: &mut Cx, _now: Instant, _command: Self::Command) {}

    /// The socket is closing or the relay is shutting down (`stopProtocol`). Sends queued here
    /// still go out.
    fn on_stop(&mut self, _cx: &mut Cx, _now: Instant) {}
}

/// A datagram that never reached a socket, and why.
#[derive(Debug)]
pub struct Undelivered {
    pub dg: Dg,
    pub to: SocketAddr,
    pub len: usize,
    pub why: Why,
}

#[derive(Debug)]
pub enum Why {
    /// It was sent to the `nobody` port, where nothing listens.
    NoListener,
    /// It was sent to one of the relay's sockets that is connected to another peer.
    NotItsPeer,
    /// The kernel refused to send it.
    SendFailed(io::Error),
}

/// How a queued datagram should be reported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Report {
    /// One `server_send` event (servers only).
    Each,
    /// No event of its own: the handler reported it (a client send).
    Silent,
    /// One `server_send` event saying the answer was held this long.
    Delayed(Duration),
}

#[derive(Debug)]
pub(super) struct Outgoing {
    pub(super) to: SocketAddr,
    pub(super) bytes: Range<usize>,
    pub(super) report: Report,
    /// Its name, or 0 when nobody watches.
    pub(super) dg: Dg,
    /// The datagram it answers.
    pub(super) reply_to: Option<Dg>,
}

/// The handler's side of one driver step: what to send and which events to emit.
///
/// Payloads are written into one reused buffer, so a steady stream of echoes allocates
/// nothing per datagram.
#[derive(Debug)]
pub struct Cx {
    pub(super) server: Option<ServerName>,
    pub(super) local: SocketAddr,
    pub(super) observed: bool,
    pub(super) buf: Vec<u8>,
    pub(super) out: Vec<Outgoing>,
    pub(super) events: Vec<EventKind>,
    pub(super) datagrams: Arc<Datagrams>,
    /// The name of the datagram being handled, while `on_datagram` runs and someone watches.
    pub(super) arrival: Option<Dg>,
}

impl Cx {
    /// A context with a name table of its own. For tests of handlers.
    pub fn new(server: Option<ServerName>, local: SocketAddr) -> Self {
        Self::with_datagrams(server, local, Datagrams::new())
    }

    pub fn with_datagrams(server: Option<ServerName>, local: SocketAddr, datagrams: Arc<Datagrams>) -> Self {
        Self {
            server,
            local,
            observed: false,
            buf: Vec::new(),
            out: Vec::new(),
            events: Vec::new(),
            datagrams,
            arrival: None,
        }
    }

    /// The socket's own address.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The name of the datagram being handled, when someone watches.
    pub fn arrival(&self) -> Option<Dg> {
        self.arrival
    }

    /// A name for a new datagram; 0 when nobody watches, as no event will carry it.
    fn name(&self) -> Dg {
        if self.observed { self.datagrams.next() } else { 0 }
    }

    /// Sends `payload` to `to` as the answer to the datagram being handled, reported as a
    /// `server_send` event.
    pub fn send(&mut self, to: SocketAddr, payload: &[u8]) {
        self.send_with(to, |buf| buf.extend_from_slice(payload));
    }

    /// Sends the bytes that `write` appends, as [`Cx::send`] does.
    pub fn send_with(&mut self, to: SocketAddr, write: impl FnOnce(&mut Vec<u8>)) {
        let reply_to = self.arrival;
        self.queue(to, Report::Each, reply_to, write);
    }

    /// Sends an answer to `reply_to` that was held for `held`, reported with its delay.
    pub fn send_delayed(&mut self, to: SocketAddr, payload: &[u8], held: Duration, reply_to: Option<Dg>) {
        self.queue(to, Report::Delayed(held), reply_to, |buf| buf.extend_from_slice(payload));
    }

    /// Sends without a `server_send` event of its own; the handler reports it with the name
    /// this returns. A datagram that reaches no socket comes back as
    /// [`DatagramHandler::on_undelivered`].
    pub fn send_silent(&mut self, to: SocketAddr, payload: &[u8]) -> Dg {
        self.queue(to, Report::Silent, None, |buf| buf.extend_from_slice(payload))
    }

    /// Sends one payload to many peers, each copy a datagram of its own answering the datagram
    /// being handled. The bytes are stored once: a 64 KB chat message to 10,000 clients costs
    /// 64 KB, not 640 MB.
    pub fn send_to_all(&mut self, to: impl IntoIterator<Item = SocketAddr>, payload: &[u8]) {
        let start = self.buf.len();
        self.buf.extend_from_slice(payload);
        let bytes = start..self.buf.len();
        let reply_to = self.arrival;
        for to in to {
            let dg = self.name();
            self.out.push(Outgoing { to, bytes: bytes.clone(), report: Report::Each, dg, reply_to });
        }
    }

    fn queue(
        &mut self,
        to: SocketAddr,
        report: Report,
        reply_to: Option<Dg>,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Dg {
        let start = self.buf.len();
        write(&mut self.buf);
        let dg = self.name();
        self.out.push(Outgoing { to, bytes: start..self.buf.len(), report, dg, reply_to });
        dg
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

    /// Handles `payload` as the datagram named `dg`, the way the driver does. For tests.
    pub fn arrive<H: DatagramHandler>(
        &mut self,
        handler: &mut H,
        now: Instant,
        dg: Dg,
        from: SocketAddr,
        payload: &[u8],
    ) {
        self.arrival = Some(dg);
        handler.on_datagram(self, now, from, payload);
        self.arrival = None;
    }

    /// Takes the queued datagrams as `(to, bytes)` pairs, in order. For tests of handlers.
    pub fn take_sent(&mut self) -> Vec<(SocketAddr, Vec<u8>)> {
        self.take_named().into_iter().map(|(to, bytes, _, _)| (to, bytes)).collect()
    }

    /// Takes the queued datagrams with their names: `(to, bytes, dg, reply_to)`. For tests.
    pub fn take_named(&mut self) -> Vec<(SocketAddr, Vec<u8>, Dg, Option<Dg>)> {
        let sent =
            self.out.iter().map(|o| (o.to, self.buf[o.bytes.clone()].to_vec(), o.dg, o.reply_to)).collect();
        self.out.clear();
        self.buf.clear();
        sent
    }

    /// Takes the queued events, in order. For tests of handlers.
    pub fn take_events(&mut self) -> Vec<EventKind> {
        std::mem::take(&mut self.events)
    }
}
