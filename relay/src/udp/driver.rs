//! The one loop that owns a socket: [`drive`].

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{Dir, EventKind, LinkSettings, Payload, Scope, ServerName, ServerSettings};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::MAX_DATAGRAM;
use super::control::{Control, LinkChange, SettingError};
use super::handler::{Cx, DatagramHandler, Report, Undelivered, Why};
use super::identity::Datagrams;
use super::link::{LinkError, Packet, Wire};
use super::sys;
use crate::bus::EventBus;

/// Queued datagrams and payload bytes a socket keeps room for between steps.
const KEEP_OUTGOING: usize = 1_024;
const KEEP_BUFFER: usize = 256 * 1024;

/// Datagrams handled back to back before the driver looks at its timer, its control channel
/// and shutdown again, which come first in its `select!`: small enough that a timer fires late
/// by microseconds, not more, however hard a peer floods the socket.
const RECV_BURST: usize = 32;

/// How early a held datagram may leave the wire. Tokio's timer works in whole milliseconds and
/// never fires early: a deadline is rounded up to the next tick, so a datagram released when the
/// timer fires leaves up to a millisecond or two late. Waking a millisecond before its due time
/// and letting go of what is due within a millisecond centres the error on the due time
/// instead (bench/wire.sh measures it: within a millisecond at p99 on a quiet machine).
const WIRE_SLACK: Duration = Duration::from_millis(1);

/// How many already-queued datagrams a stopping socket still handles, so that a reply that
/// has arrived (the chat server's `end`, say) is reported rather than lost.
const DRAIN_ON_STOP: usize = 64;

/// Runs one socket until `shutdown` is cancelled or, for a client socket, until its control
/// channel closes: the only code that touches it.
///
/// Commands are carried out in the order they were sent, and a closed channel is seen only
/// after every command before it: a `send` just before a `close` still goes out.
///
/// Nothing a peer sends can end this loop. Errors from the socket are logged (rate-limited)
/// and the loop goes on; refusals become `on_refused`.
pub async fn drive<H: DatagramHandler>(
    socket: UdpSocket,
    handler: H,
    bus: EventBus,
    control: mpsc::Receiver<Control<H::Command>>,
    shutdown: CancellationToken,
) {
    run(socket, handler, None, bus, control, shutdown).await;
}

/// [`drive`] for a server, with the link in front of it: every datagram it reads crosses
/// `wire.inbound` before the handler sees it, and every datagram it sends crosses
/// `wire.outbound` before the socket sends it.
pub async fn drive_server<H: DatagramHandler>(
    socket: UdpSocket,
    handler: H,
    wire: Wire,
    bus: EventBus,
    control: mpsc::Receiver<Control<H::Command>>,
    shutdown: CancellationToken,
) {
    run(socket, handler, Some(wire), bus, control, shutdown).await;
}

async fn run<H: DatagramHandler>(
    socket: UdpSocket,
    handler: H,
    wire: Option<Wire>,
    bus: EventBus,
    mut control: mpsc::Receiver<Control<H::Command>>,
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
    let datagrams = bus.datagrams();
    let _owned = datagrams.own_connected(local, peer);
    let mut cx = Cx::with_datagrams(server, local, datagrams);
    let mut io = Io { socket: &socket, peer, bus: &bus, errors: ErrorLog::default() };
    let mut stations = Stations::new(Station { handler, wire });
    // One byte more than the largest datagram, so an oversized one (possible over IPv6
    // loopback) is seen as such rather than silently cut to a plausible size.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];

    cx.observed = bus.is_observed();
    let started = Instant::now();
    stations.shared.handler.on_start(&mut cx, started);
    io.flush(&mut cx, &mut stations.shared, started).await;

    // Looked at again only once it has woken: polling a cancellation takes two locks, and the
    // loop below turns once a datagram.
    let mut cancelled = crate::quiet::Quiet::new(shutdown.cancelled());
    let timer = tokio::time::sleep_until(tokio::time::Instant::now());
    tokio::pin!(timer);
    let mut armed_for = None;

    loop {
        let deadline = stations.poll_timeout();
        if deadline != armed_for {
            if let Some(at) = deadline {
                timer.as_mut().reset(at.into());
            }
            armed_for = deadline;
        }
        // Each step reads the clock once (a burst of datagrams, once for each): what it sends
        // and reports is stamped with when it began, or when its datagram was read.
        let now = tokio::select! {
            biased;
            _ = &mut cancelled => break,
            // Control comes before traffic: a server flooded with datagrams still answers a
            // settings request at once, and a session's commands are never starved.
            message = control.recv() => {
                let Some(message) = message else { break };
                cx.observed = bus.is_observed();
                let now = Instant::now();
                io.control(&mut stations, &mut cx, now, message).await;
                now
            }
            // Timers come before traffic too: a flood of datagrams must not hold back a held
            // datagram's release, a delayed answer or an eviction.
            () = &mut timer, if armed_for.is_some() => {
                // Fire once per deadline: the handlers and the wires give a new one if they want.
                armed_for = None;
                cx.observed = bus.is_observed();
                let now = Instant::now();
                for station in stations.all_mut() {
                    if station.handler.poll_timeout().is_some_and(|at| at <= now) {
                        station.handler.on_tick(&mut cx, now);
                    }
                    io.release_due(station, &mut cx, now).await;
                    io.flush(&mut cx, station, now).await;
                }
                now
            }
            received = sys::recv_from(&socket, &mut buf) => {
                cx.observed = bus.is_observed();
                let mut now = Instant::now();
                io.received(&mut stations, &mut cx, now, &buf, received).await;
                // Datagrams come in bursts when many peers talk at once. Handle the ones
                // already queued straight away, each answered before the next is read,
                // instead of going round the select! (and its wake-up bookkeeping) for each.
                for _ in 1..RECV_BURST {
                    match sys::try_recv_from(&socket, &mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        received => {
                            now = Instant::now();
                            io.received(&mut stations, &mut cx, now, &buf, received).await;
                        }
                    }
                }
                now
            }
        };
        io.flush(&mut cx, &mut stations.shared, now).await;
    }

    // Handle what has already arrived, without waiting for more. This asks the kernel
    // directly: tokio's own readiness flag may not have caught up with a datagram that landed
    // a moment ago (the chat server's `end`, sent just before this socket was told to stop).
    cx.observed = bus.is_observed();
    let Io { mut errors, .. } = io;
    let std_socket = match socket.into_std() {
        Ok(std_socket) => std_socket,
        Err(e) => {
            errors.log(server, "stop", &e);
            return;
        }
    };
    let mut drained = Vec::new();
    for _ in 0..DRAIN_ON_STOP {
        match std_socket.recv_from(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Ok((len, from)) => drained.push((from, buf[..len].to_vec())),
            Err(e) if is_refusal(&e) => stations.shared.handler.on_refused(&mut cx, Instant::now(), peer),
            Err(e) => errors.log(server, "receive", &e),
        }
    }
    let socket = match UdpSocket::from_std(std_socket) {
        Ok(socket) => socket,
        Err(e) => {
            errors.log(server, "stop", &e);
            return;
        }
    };
    let mut io = Io { socket: &socket, peer, bus: &bus, errors };
    for (from, payload) in drained {
        io.received(&mut stations, &mut cx, Instant::now(), &payload, Ok((payload.len(), from))).await;
    }
    let stopped = Instant::now();
    // What the wires still hold is lost with the links: only what is due goes out.
    for station in stations.all_mut() {
        station.handler.on_stop(&mut cx, stopped);
        io.flush(&mut cx, station, stopped).await;
    }
}

/// A handler and the link in front of it: the server everyone meets, or one session's sandbox.
struct Station<H> {
    handler: H,
    wire: Option<Wire>,
}

/// What one socket serves: the shared station, and a sandbox for each session that changed
/// something for its own sockets only (`"scope":"own"`). A session's datagrams meet its
/// sandbox, found by the address they come from; everyone else's, the shared station. There
/// is at most one sandbox per session, and sessions are capped (`--max-sessions`).
struct Stations<H> {
    shared: Station<H>,
    sandboxes: HashMap<Arc<str>, Station<H>>,
    /// When the sandboxes next want the timer, or earlier: the loop asks at every turn, and a
    /// class's hundred sandboxes are not all looked at each time. Only what a sandbox was
    /// handed out for can bring its time forward, so those handed out since (`touched`) are
    /// looked at again; a time that has moved later only wakes the timer early, and the timer
    /// looks at them all (`retime`).
    sandboxes_due: Option<Instant>,
    touched: Vec<Arc<str>>,
    retime: bool,
}

impl<H: DatagramHandler> Stations<H> {
    fn new(shared: Station<H>) -> Self {
        Self { shared, sandboxes: HashMap::new(), sandboxes_due: None, touched: Vec::new(), retime: false }
    }

    /// The station a datagram from `peer` meets. Free while there is no sandbox.
    fn for_peer(&mut self, datagrams: &Datagrams, peer: SocketAddr) -> &mut Station<H> {
        if self.sandboxes.is_empty() {
            return &mut self.shared;
        }
        if let Some(session) = datagrams.session_of(peer)
            && let Some(station) = self.sandboxes.get_mut(&session)
        {
            self.touched.push(session);
            return station;
        }
        &mut self.shared
    }

    /// `session`'s sandbox, if it has one here.
    fn get(&mut self, session: &str) -> Option<&mut Station<H>> {
        let station = self.sandboxes.get_mut(session)?;
        self.touched.push(session.into());
        Some(station)
    }

    /// `session`'s sandbox, made now (a copy of the shared station as it is) if it has none,
    /// and whether it was made now. `None` for a handler that takes no sandbox.
    fn sandbox(&mut self, session: &str) -> Option<(&mut Station<H>, bool)> {
        let made = !self.sandboxes.contains_key(session);
        if made {
            let mut hasher = std::hash::DefaultHasher::new();
            session.hash(&mut hasher);
            let salt = hasher.finish();
            let handler = self.shared.handler.sandbox(salt)?;
            let wire = self.shared.wire.as_ref().map(|wire| wire.sandbox(salt));
            self.sandboxes.insert(session.into(), Station { handler, wire });
        }
        Some((self.get(session)?, made))
    }

    /// Keeps the sandbox just made for `session`'s change and says so, if the change was
    /// taken; a sandbox made for a change that was refused is not kept.
    fn opened(&mut self, cx: &mut Cx, session: &str, made: bool, taken: bool) {
        if !made {
            return;
        }
        if !taken {
            self.sandboxes.remove(session);
        } else if let Some(server) = cx.server {
            cx.emit(|| EventKind::SandboxOpen { server, session: session.to_owned() });
        }
    }

    /// Every station, the shared one first.
    fn all_mut(&mut self) -> impl Iterator<Item = &mut Station<H>> {
        self.retime = true;
        std::iter::once(&mut self.shared).chain(self.sandboxes.values_mut())
    }

    /// When a handler or a wire next wants the timer (or a little earlier: see
    /// `sandboxes_due`).
    fn poll_timeout(&mut self) -> Option<Instant> {
        if self.sandboxes.is_empty() {
            return self.shared.poll_timeout();
        }
        if std::mem::take(&mut self.retime) {
            self.touched.clear();
            self.sandboxes_due = self.sandboxes.values().filter_map(Station::poll_timeout).min();
        }
        for session in self.touched.drain(..) {
            let due = self.sandboxes.get(&session).and_then(Station::poll_timeout);
            self.sandboxes_due = self.sandboxes_due.into_iter().chain(due).min();
        }
        self.shared.poll_timeout().into_iter().chain(self.sandboxes_due).min()
    }
}

impl<H: DatagramHandler> Station<H> {
    fn poll_timeout(&self) -> Option<Instant> {
        let wire_due = self
            .wire
            .as_ref()
            .and_then(Wire::poll_timeout)
            .map(|at| at.checked_sub(WIRE_SLACK).unwrap_or(at));
        self.handler.poll_timeout().into_iter().chain(wire_due).min()
    }
}

/// What the driver's I/O steps share: the socket, its peer if connected, the bus and the log.
struct Io<'a> {
    socket: &'a UdpSocket,
    peer: Option<SocketAddr>,
    bus: &'a EventBus,
    errors: ErrorLog,
}

impl Io<'_> {
    /// Carries out one control message.
    async fn control<H: DatagramHandler>(
        &mut self,
        stations: &mut Stations<H>,
        cx: &mut Cx,
        now: Instant,
        message: Control<H::Command>,
    ) {
        let server = cx.server;
        match message {
            Control::Configure { setting, by, scope, reply } => {
                let outcome = match (scope, by.as_deref()) {
                    (Scope::Own, None) => Err(SettingError::NoSession),
                    (Scope::Own, Some(session)) => match stations.sandbox(session) {
                        Some((station, made)) => {
                            let outcome = station.handler.on_configure(cx, now, setting);
                            stations.opened(cx, session, made, outcome.is_ok());
                            outcome
                        }
                        None => Err(SettingError::NotSupported { server, setting: setting.name() }),
                    },
                    (Scope::All, by) => {
                        let outcome = stations.shared.handler.on_configure(cx, now, setting);
                        // The session that asked meets its change too, sandbox or not.
                        if let (Ok(()), Some(station)) =
                            (&outcome, by.and_then(|session| stations.get(session)))
                        {
                            let _ = station.handler.on_configure(cx, now, setting);
                        }
                        outcome
                    }
                };
                let asker = by.clone();
                if let (Ok(()), Some(server)) = (&outcome, server) {
                    let (name, value) = (setting.name().to_owned(), setting.value());
                    cx.emit(|| EventKind::ServerConfigured { server, setting: name, value, by, scope });
                }
                // The asker may have given up waiting; the setting still applies.
                let _ = reply.send(outcome);
                // What the asker's sandbox sends at once (a shorter chat timeout's evictions).
                if let Some(station) = asker.as_deref().and_then(|session| stations.get(session)) {
                    self.flush(cx, station, now).await;
                }
            }
            Control::Describe(reply) => {
                let _ = reply.send(stations.shared.handler.settings());
            }
            Control::Link { dir, change, by, scope, reply } => {
                let outcome = match (scope, by.as_deref()) {
                    (Scope::All, _) => change_link(&mut stations.shared, dir, change),
                    (Scope::Own, None) => Err(LinkError::NoSession),
                    (Scope::Own, Some(session)) => match stations.sandbox(session) {
                        Some((station, made)) => {
                            let outcome = change_link(station, dir, change);
                            stations.opened(cx, session, made, outcome.is_ok());
                            outcome
                        }
                        None => Err(LinkError::NoLink),
                    },
                };
                if let (Ok(settings), LinkChange::Set(patch), Some(server)) = (&outcome, change, server) {
                    // The session that asked meets a change for everyone too, sandbox or not, and
                    // hears what its sandbox's link is now.
                    let mine = match scope {
                        Scope::All => by.as_deref().and_then(|session| stations.get(session)),
                        Scope::Own => None,
                    };
                    let mine = mine
                        .and_then(|station| station.wire.as_mut())
                        .and_then(|wire| wire.get_mut(dir).configure(&patch).ok());
                    let settings = *settings;
                    let own_by = by.clone().filter(|_| mine.is_some());
                    cx.emit(|| EventKind::LinkConfigured { server, dir, settings, by, scope });
                    if let Some(settings) = mine {
                        cx.emit(|| EventKind::LinkConfigured {
                            server,
                            dir,
                            settings,
                            by: own_by,
                            scope: Scope::Own,
                        });
                    }
                }
                let _ = reply.send(outcome);
            }
            Control::DescribeLinks(reply) => {
                let _ = reply.send(stations.shared.wire.as_ref().map(Wire::settings).unwrap_or_default());
            }
            Control::Reset { session, announce } => {
                let Some(mut sandbox) = stations.sandboxes.remove(session.as_str()) else { return };
                stations.retime = true;
                if let Some(server) = server {
                    let session = session.clone();
                    cx.emit(|| EventKind::SandboxClose { server, session });
                }
                if let (true, Some(server)) = (announce, server) {
                    let by = Some(session);
                    let shared = stations.shared.handler.settings();
                    for (setting, value) in changed_settings(&sandbox.handler.settings(), &shared) {
                        let (setting, by) = (setting.to_owned(), by.clone());
                        cx.emit(|| EventKind::ServerConfigured {
                            server,
                            setting,
                            value,
                            by,
                            scope: Scope::Own,
                        });
                    }
                    let shared = stations.shared.wire.as_ref().map(Wire::settings).unwrap_or_default();
                    let mine = sandbox.wire.as_ref().map(Wire::settings).unwrap_or_default();
                    for (dir, was, is) in
                        [(Dir::In, mine.inbound, shared.inbound), (Dir::Out, mine.outbound, shared.outbound)]
                    {
                        if was != is {
                            let by = by.clone();
                            cx.emit(|| EventKind::LinkConfigured {
                                server,
                                dir,
                                settings: is,
                                by,
                                scope: Scope::Own,
                            });
                        }
                    }
                }
                // Its chat clients hear `end`, as at shutdown; what its wire holds is lost with it.
                sandbox.handler.on_stop(cx, now);
                self.flush(cx, &mut sandbox, now).await;
            }
            Control::Command(command) => stations.shared.handler.on_command(cx, now, command),
        }
    }

    /// Names one received datagram (or takes a receive error), passes it through the `in`
    /// link of the station it meets if that link is at work, hands what comes out to the
    /// station's handler, and sends what it answers.
    async fn received<H: DatagramHandler>(
        &mut self,
        stations: &mut Stations<H>,
        cx: &mut Cx,
        now: Instant,
        buf: &[u8],
        received: io::Result<(usize, SocketAddr)>,
    ) {
        let (len, from) = match received {
            Ok(got) => got,
            Err(e) if is_refusal(&e) => return stations.shared.handler.on_refused(cx, now, self.peer),
            Err(e) => return self.errors.log(cx.server, "receive", &e),
        };
        let payload = &buf[..len];
        // A datagram recorded as sent is taken off its flow even when nobody watches any
        // more, so that it cannot be mistaken for a later one.
        let recorded = if cx.observed || cx.datagrams.any_in_flight() {
            cx.datagrams.arrived(from, cx.local, payload)
        } else {
            None
        };
        // A datagram another relay socket sent is in the history already, from its send.
        let dg = match (cx.observed, recorded) {
            (true, Some(dg)) => dg,
            (true, None) => {
                let dg = cx.datagrams.next();
                if self.bus.history().is_some() {
                    self.bus.record(dg, now, from, cx.local, payload);
                }
                dg
            }
            (false, _) => 0,
        };
        let station = stations.for_peer(&cx.datagrams, from);
        match station.wire.as_mut() {
            Some(wire) if !wire.inbound.is_idle() => {
                let packet = Packet { dg, peer: from, bytes: payload.into(), copy: false };
                let mut events = Vec::new();
                let datagrams = &cx.datagrams;
                let observed = cx.observed;
                wire.inbound.push(now, packet, &mut events, || if observed { datagrams.next() } else { 0 });
                self.emit_all(cx, now, events);
                self.deliver_inbound(station, cx, now);
            }
            _ => self.deliver(&mut station.handler, cx, now, dg, from, payload),
        }
        self.flush(cx, station, now).await;
    }

    /// Hands every datagram that has crossed the station's `in` link to its handler.
    fn deliver_inbound<H: DatagramHandler>(&mut self, station: &mut Station<H>, cx: &mut Cx, now: Instant) {
        while let Some(packet) = station.wire.as_mut().and_then(|wire| wire.inbound.pop_ready()) {
            self.deliver(&mut station.handler, cx, now, packet.dg, packet.peer, &packet.bytes);
        }
    }

    /// Hands one datagram to the handler, reporting it as a server's receipt.
    fn deliver<H: DatagramHandler>(
        &self,
        handler: &mut H,
        cx: &mut Cx,
        now: Instant,
        dg: protocol::Dg,
        from: SocketAddr,
        payload: &[u8],
    ) {
        cx.arrival = cx.observed.then_some(dg);
        if let (true, Some(server)) = (cx.observed, handler.server()) {
            let (to, len) = (cx.local, payload.len());
            self.bus.emit(
                now,
                EventKind::ServerRecv { server, dg, from, to, len, payload: Payload::preview(payload) },
            );
        }
        handler.on_datagram(cx, now, from, payload);
        cx.arrival = None;
    }

    fn emit_all(&self, cx: &Cx, now: Instant, events: Vec<EventKind>) {
        if cx.observed {
            for event in events {
                self.bus.emit(now, event);
            }
        }
    }

    /// The timer fired: lets out what the station's links held until now.
    async fn release_due<H: DatagramHandler>(&mut self, station: &mut Station<H>, cx: &mut Cx, now: Instant) {
        let Some(wire) = station.wire.as_mut() else { return };
        let mut events = Vec::new();
        wire.inbound.release_due(now + WIRE_SLACK, now, &mut events);
        wire.outbound.release_due(now + WIRE_SLACK, now, &mut events);
        self.emit_all(cx, now, events);
        self.deliver_inbound(station, cx, now);
        self.send_outbound(station, cx, now).await;
    }

    /// Sends every datagram that has crossed the station's `out` link.
    async fn send_outbound<H: DatagramHandler>(
        &mut self,
        station: &mut Station<H>,
        cx: &mut Cx,
        now: Instant,
    ) {
        let mut refused = false;
        while let Some(packet) = station.wire.as_mut().and_then(|wire| wire.outbound.pop_ready()) {
            // Recorded as it entered the link; a link's copy is a datagram of its own, recorded
            // as it leaves.
            let record = packet.copy && self.bus.history().is_some();
            match self.transmit(cx, now, packet.dg, packet.peer, &packet.bytes, record).await {
                Err(e) if is_refusal(&e) => refused = true,
                Err(e) => self.errors.log(cx.server, "send", &e),
                Ok(_) => {}
            }
        }
        if refused {
            station.handler.on_refused(cx, now, self.peer);
        }
    }

    /// Sends everything queued, through the station's `out` link, then publishes the events:
    /// the handler's first, then one `server_send` per datagram that asked for one. `now` is
    /// when the step began (for a datagram read, when it was read).
    async fn flush<H: DatagramHandler>(&mut self, cx: &mut Cx, station: &mut Station<H>, now: Instant) {
        // Most turns of the loop leave nothing to flush: a session polls its sockets after every
        // command. Bytes queued for no one (a broadcast to an empty chat) are still let go below.
        if cx.events.is_empty() && cx.out.is_empty() && cx.buf.is_empty() {
            return;
        }
        for event in cx.events.drain(..) {
            self.bus.emit(now, event);
        }
        let mut refused = false;
        let mut undelivered = Vec::new();
        let out = std::mem::take(&mut cx.out);
        let buf = std::mem::take(&mut cx.buf);
        // The bytes of the datagram in hand, for the wire, shared by every copy of a broadcast:
        // a 64 KB message to 10,000 clients is one allocation, not 10,000.
        let mut shared: Option<(std::ops::Range<usize>, Arc<[u8]>)> = None;
        // A datagram is stamped with when its step began. A long broadcast took the handler a
        // while to write, so its datagrams are stamped from when they go instead, the clock
        // read again every 64 sends.
        let mut at = now;
        for (i, o) in out.iter().enumerate() {
            if i % 64 == 0 && (i > 0 || out.len() > 64) {
                at = Instant::now();
            }
            let bytes = &buf[o.bytes.clone()];
            let mut share = || match &shared {
                Some((range, arc)) if *range == o.bytes => arc.clone(),
                _ => {
                    let arc: Arc<[u8]> = bytes.into();
                    shared = Some((o.bytes.clone(), arc.clone()));
                    arc
                }
            };
            // Recorded before its `server_send`, which the history then keeps with it, and
            // struck out again if the send fails.
            let record = o.dg != 0 && self.bus.history().is_some();
            if record {
                self.bus.record(o.dg, at, cx.local, o.to, bytes);
            }
            if let (Some(server), true) = (cx.server, cx.observed && o.report != Report::Silent) {
                let delay_ms = match o.report {
                    Report::Delayed(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    _ => None,
                };
                self.bus.emit(
                    at,
                    EventKind::ServerSend {
                        server,
                        dg: o.dg,
                        reply_to: o.reply_to,
                        from: cx.local,
                        to: o.to,
                        len: bytes.len(),
                        payload: Payload::preview(bytes),
                        delay_ms,
                    },
                );
            }
            if let Some(wire) = station.wire.as_mut().filter(|wire| !wire.outbound.is_idle()) {
                // The server sent it, whatever the link then does to it: the history (and the
                // capture) has it, recorded above, with the link's doings as comments.
                let bytes = share();
                let packet = Packet { dg: o.dg, peer: o.to, bytes, copy: false };
                let (datagrams, observed) = (&cx.datagrams, cx.observed);
                let mut link_events = Vec::new();
                wire.outbound
                    .push(now, packet, &mut link_events, || if observed { datagrams.next() } else { 0 });
                // After the `server_send` they follow, in time as in order; what crossed goes
                // out at once, so a broadcast never piles up in the wire.
                self.emit_all(cx, at, link_events);
                self.send_outbound(station, cx, now).await;
                continue;
            }
            let nobody = cx.datagrams.is_nobody(o.to);
            match self.transmit(cx, at, o.dg, o.to, bytes, false).await {
                Ok(_) if nobody && o.report == Report::Silent => {
                    undelivered.push(Undelivered {
                        dg: o.dg,
                        to: o.to,
                        len: bytes.len(),
                        why: Why::NoListener,
                    });
                }
                Ok(false) if o.report == Report::Silent => {
                    undelivered.push(Undelivered {
                        dg: o.dg,
                        to: o.to,
                        len: bytes.len(),
                        why: Why::NotItsPeer,
                    });
                }
                Ok(_) => {}
                Err(e) if is_refusal(&e) => refused = true,
                Err(e) => {
                    self.errors.log(cx.server, "send", &e);
                    if o.report == Report::Silent {
                        let len = bytes.len();
                        undelivered.push(Undelivered { dg: o.dg, to: o.to, len, why: Why::SendFailed(e) });
                    }
                }
            }
        }
        cx.out = out;
        cx.out.clear();
        cx.buf = buf;
        cx.buf.clear();
        // One big step (a broadcast to 10,000 clients) must not keep its memory forever.
        if cx.out.capacity() > KEEP_OUTGOING {
            cx.out.shrink_to(KEEP_OUTGOING);
        }
        if cx.buf.capacity() > KEEP_BUFFER {
            cx.buf.shrink_to(KEEP_BUFFER);
        }
        for lost in undelivered {
            station.handler.on_undelivered(cx, now, lost);
        }
        if refused {
            station.handler.on_refused(cx, now, self.peer);
        }
        for event in cx.events.drain(..) {
            self.bus.emit(now, event);
        }
    }

    /// Puts one datagram on the socket, writing its name down first so that the relay socket
    /// it reaches knows it. A failed send is struck out again, also from the history; one that
    /// went out is recorded there if `record` (and was not already). Sent, it is `false` when
    /// it went to one of the relay's sockets connected to another peer, which will not take it.
    async fn transmit(
        &self,
        cx: &Cx,
        at: Instant,
        dg: protocol::Dg,
        to: SocketAddr,
        bytes: &[u8],
        record: bool,
    ) -> io::Result<bool> {
        let taken = dg == 0 || cx.datagrams.sending(cx.local, to, dg, bytes);
        let sent = if cx.datagrams.is_nobody(to) && !still_free(to) {
            Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!(
                    "another program has bound {to}, the port kept free for `nobody`, so the relay sent \
                     nothing there"
                ),
            ))
        } else {
            self.send(bytes, to).await
        };
        match &sent {
            Err(_) if dg != 0 => {
                cx.datagrams.not_sent(cx.local, to, dg);
                self.bus.unrecord(dg);
            }
            Ok(_) if dg != 0 && record => self.bus.record(dg, at, cx.local, to, bytes),
            _ => {}
        }
        sent.map(|_| taken)
    }

    /// Sends one datagram. A connected socket must use send(): it can only talk to its peer
    /// anyway.
    async fn send(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        sys::send(self.socket, self.peer.is_some(), bytes, to).await
    }
}

/// Changes one direction of `station`'s link, or aims a fault at it; answers with that
/// direction's settings after the change.
fn change_link<H>(station: &mut Station<H>, dir: Dir, change: LinkChange) -> Result<LinkSettings, LinkError> {
    let link = station.wire.as_mut().ok_or(LinkError::NoLink)?.get_mut(dir);
    match change {
        LinkChange::Set(patch) => link.configure(&patch),
        LinkChange::Fault(fault) => link.fault(&fault).map(|()| link.settings()),
    }
}

/// The live settings in which `was` and `is` differ, with their values in `is`.
fn changed_settings(was: &ServerSettings, is: &ServerSettings) -> Vec<(&'static str, f64)> {
    let ms = |v: Option<u64>| v.map(|ms| ms as f64);
    let mut changed = Vec::new();
    for (name, was, is) in [
        ("drop", was.drop, is.drop),
        ("delay_ms", ms(was.delay_ms), ms(is.delay_ms)),
        ("jitter_ms", ms(was.jitter_ms), ms(is.jitter_ms)),
        ("timeout_ms", ms(was.timeout_ms), ms(is.timeout_ms)),
    ] {
        if let Some(is) = is.filter(|_| was != is) {
            changed.push((name, is));
        }
    }
    changed
}

/// Whether nothing is bound to `addr`, checked by binding it for an instant: the relay never
/// sends to a `nobody` port that another program has taken since.
fn still_free(addr: SocketAddr) -> bool {
    std::net::UdpSocket::bind(addr).is_ok()
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::udp::echo::Echo;

    #[test]
    fn a_sessions_datagrams_meet_its_sandbox_and_the_timer_hears_of_what_it_holds() {
        use crate::udp::lossy::{Lossy, LossySettings};
        let settings = LossySettings { drop: 0.0, delay: Duration::from_millis(100), ..Default::default() };
        let mut stations = Stations::new(Station { handler: Lossy::new(settings), wire: None });
        for session in ["a", "b", "c"] {
            assert!(stations.sandbox(session).is_some_and(|(_, made)| made));
        }
        assert!(stations.sandbox("b").is_some_and(|(_, made)| !made), "one sandbox a session");
        assert_eq!(stations.poll_timeout(), None);

        let datagrams = Datagrams::new();
        let (mine, outsider) =
            ("127.0.0.1:5000".parse().expect("addr"), "127.0.0.1:6000".parse().expect("addr"));
        let _assigned = datagrams.assign(mine, "b".into());
        let mut cx = Cx::new(Some(ServerName::Lossy), "127.0.0.1:1060".parse().expect("addr"));
        let now = Instant::now();
        stations.for_peer(&datagrams, mine).handler.on_datagram(&mut cx, now, mine, b"hi");
        assert_eq!(stations.poll_timeout(), Some(now + Duration::from_millis(100)), "b's held answer");
        assert_eq!((stations.shared.handler.pending(), stations.sandboxes["b"].handler.pending()), (0, 1));
        let later = now + Duration::from_millis(50);
        stations.for_peer(&datagrams, outsider).handler.on_datagram(&mut cx, later, outsider, b"hi");
        assert_eq!(stations.shared.handler.pending(), 1, "an outside client's meets the shared server");
        assert_eq!(stations.poll_timeout(), Some(now + Duration::from_millis(100)));
        // The timer fires for b: once b's answer is out, the next is the shared server's.
        for station in stations.all_mut() {
            station.handler.on_tick(&mut cx, now + Duration::from_millis(100));
        }
        assert_eq!(stations.poll_timeout(), Some(later + Duration::from_millis(100)));
        assert_eq!(cx.take_sent().len(), 1);
    }

    #[test]
    fn a_reset_names_the_settings_that_change_with_their_shared_values() {
        let shared =
            ServerSettings { drop: Some(0.5), delay_ms: Some(0), jitter_ms: Some(0), ..Default::default() };
        let sandbox = ServerSettings { drop: Some(1.0), delay_ms: Some(300), ..shared.clone() };
        assert_eq!(changed_settings(&sandbox, &shared), [("drop", 0.5), ("delay_ms", 0.0)]);
        assert!(changed_settings(&shared, &shared).is_empty());
    }

    /// A broadcast to nobody (a chat with no one registered) queues its bytes and no datagram:
    /// the flush after it lets the bytes go, or every such message would keep its own.
    #[tokio::test]
    async fn a_flush_lets_go_of_bytes_queued_for_no_one() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let local = socket.local_addr().expect("address");
        let bus = EventBus::new(Instant::now());
        let mut io = Io { socket: &socket, peer: None, bus: &bus, errors: ErrorLog::default() };
        let mut cx = Cx::new(Some(ServerName::Chat), local);
        let mut station = Station { handler: Echo, wire: None };
        for _ in 0..3 {
            cx.send_to_all(std::iter::empty(), b"nobody hears this");
            let flushed =
                tokio::time::timeout(Duration::from_secs(5), io.flush(&mut cx, &mut station, Instant::now()));
            flushed.await.expect("a flush of nothing to send finishes at once");
            assert!(cx.buf.is_empty(), "{} bytes kept for no one", cx.buf.len());
        }
    }
}
