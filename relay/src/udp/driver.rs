//! The one loop that owns a socket: [`drive`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::{EventKind, Payload, ServerName};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::MAX_DATAGRAM;
use super::control::Control;
use super::handler::{Cx, DatagramHandler, Report, Undelivered, Why};
use crate::bus::EventBus;

/// Queued datagrams and payload bytes a socket keeps room for between steps.
const KEEP_OUTGOING: usize = 1_024;
const KEEP_BUFFER: usize = 256 * 1024;

/// Datagrams handled back to back before the driver looks at its timer, its control channel
/// and shutdown again. Small enough that a timer fires late by microseconds, not more.
const RECV_BURST: usize = 32;

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
    mut handler: H,
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
    let _owned = datagrams.own(local);
    let mut cx = Cx::with_datagrams(server, local, datagrams);
    let mut io = Io { socket: &socket, peer, bus: &bus, errors: ErrorLog::default() };
    // One byte more than the largest datagram, so an oversized one (possible over IPv6
    // loopback) is seen as such rather than silently cut to a plausible size.
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];

    cx.observed = bus.is_observed();
    handler.on_start(&mut cx, Instant::now());
    io.flush(&mut cx, &mut handler).await;

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
                io.received(&mut handler, &mut cx, &buf, received);
                // Datagrams come in bursts when many peers talk at once. Handle the ones
                // already queued straight away, each answered before the next is read,
                // instead of going round the select! (and its wake-up bookkeeping) for each.
                for _ in 1..RECV_BURST {
                    io.flush(&mut cx, &mut handler).await;
                    match socket.try_recv_from(&mut buf) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        received => io.received(&mut handler, &mut cx, &buf, received),
                    }
                }
            }
            () = &mut timer, if armed_for.is_some() => {
                // Fire once per deadline: the handler returns a new one if it wants another.
                armed_for = None;
                cx.observed = bus.is_observed();
                handler.on_tick(&mut cx, Instant::now());
            }
            message = control.recv() => {
                let Some(message) = message else { break };
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
                    Control::Command(command) => handler.on_command(&mut cx, now, command),
                }
            }
        }
        io.flush(&mut cx, &mut handler).await;
    }

    // Handle what has already arrived, without waiting for more. This asks the kernel
    // directly: tokio's own readiness flag may not have caught up with a datagram that landed
    // a moment ago (the chat server's `end`, sent just before this socket was told to stop).
    cx.observed = bus.is_observed();
    let mut errors = io.errors;
    let std_socket = match socket.into_std() {
        Ok(std_socket) => std_socket,
        Err(e) => {
            errors.log(server, "stop", &e);
            return;
        }
    };
    for _ in 0..DRAIN_ON_STOP {
        let received = match std_socket.recv_from(&mut buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            other => other,
        };
        if let Some(e) = received_one(&mut handler, &mut cx, &bus, peer, &buf, received) {
            errors.log(server, "receive", &e);
        }
    }
    let socket = match UdpSocket::from_std(std_socket) {
        Ok(socket) => socket,
        Err(e) => {
            errors.log(server, "stop", &e);
            return;
        }
    };
    handler.on_stop(&mut cx, Instant::now());
    let mut io = Io { socket: &socket, peer, bus: &bus, errors };
    io.flush(&mut cx, &mut handler).await;
}

/// Hands one received datagram (or receive error) to the handler, naming it first. Returns
/// an error to log, if any.
fn received_one<H: DatagramHandler>(
    handler: &mut H,
    cx: &mut Cx,
    bus: &EventBus,
    peer: Option<SocketAddr>,
    buf: &[u8],
    received: io::Result<(usize, SocketAddr)>,
) -> Option<io::Error> {
    let now = Instant::now();
    match received {
        Ok((len, from)) => {
            let payload = &buf[..len];
            // A datagram recorded as sent is taken off its flow even when nobody watches any
            // more, so that it cannot be mistaken for a later one.
            let recorded = if cx.observed || cx.datagrams.any_in_flight() {
                cx.datagrams.arrived(from, cx.local, payload)
            } else {
                None
            };
            cx.arrival = cx.observed.then(|| recorded.unwrap_or_else(|| cx.datagrams.next()));
            if let (Some(dg), Some(server)) = (cx.arrival, handler.server()) {
                let to = cx.local;
                bus.emit(
                    now,
                    EventKind::ServerRecv { server, dg, from, to, len, payload: Payload::preview(payload) },
                );
            }
            handler.on_datagram(cx, now, from, payload);
            cx.arrival = None;
            None
        }
        Err(e) if is_refusal(&e) => {
            handler.on_refused(cx, now, peer);
            None
        }
        Err(e) => Some(e),
    }
}

/// What the driver's sends share: the socket, its peer if connected, the bus, the log.
struct Io<'a> {
    socket: &'a UdpSocket,
    peer: Option<SocketAddr>,
    bus: &'a EventBus,
    errors: ErrorLog,
}

impl Io<'_> {
    fn received<H: DatagramHandler>(
        &mut self,
        handler: &mut H,
        cx: &mut Cx,
        buf: &[u8],
        received: io::Result<(usize, SocketAddr)>,
    ) {
        if let Some(e) = received_one(handler, cx, self.bus, self.peer, buf, received) {
            self.errors.log(handler.server(), "receive", &e);
        }
    }

    /// Sends everything queued, then publishes the events: the handler's first, then one
    /// `server_send` per datagram that asked for one.
    async fn flush<H: DatagramHandler>(&mut self, cx: &mut Cx, handler: &mut H) {
        let now = Instant::now();
        for event in cx.events.drain(..) {
            self.bus.emit(now, event);
        }
        let mut refused = false;
        let mut undelivered = Vec::new();
        for o in &cx.out {
            let bytes = &cx.buf[o.bytes.clone()];
            // Write the name down before the datagram can arrive.
            if o.dg != 0 {
                cx.datagrams.sending(cx.local, o.to, o.dg, bytes);
            }
            let nobody = cx.datagrams.is_nobody(o.to);
            let sent = if nobody && !still_free(o.to) {
                Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!(
                        "another program has bound {}, the port kept free for `nobody`, so the relay \
                         sent nothing there",
                        o.to
                    ),
                ))
            } else {
                self.send(bytes, o.to).await
            };
            match sent {
                Ok(_) if nobody && o.report == Report::Silent => {
                    undelivered.push(Undelivered {
                        dg: o.dg,
                        to: o.to,
                        len: bytes.len(),
                        why: Why::NoListener,
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    if o.dg != 0 {
                        cx.datagrams.not_sent(cx.local, o.to, o.dg);
                    }
                    if is_refusal(&e) {
                        refused = true;
                    } else {
                        self.errors.log(cx.server, "send", &e);
                        if o.report == Report::Silent {
                            let len = bytes.len();
                            undelivered.push(Undelivered {
                                dg: o.dg,
                                to: o.to,
                                len,
                                why: Why::SendFailed(e),
                            });
                        }
                    }
                }
            }
            let Some(server) = cx.server else { continue };
            if cx.observed && o.report != Report::Silent {
                let delay_ms = match o.report {
                    Report::Delayed(d) => Some(u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    _ => None,
                };
                self.bus.emit(
                    Instant::now(),
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
        }
        cx.out.clear();
        cx.buf.clear();
        // One big step (a broadcast to 10,000 clients) must not keep its memory forever.
        if cx.out.capacity() > KEEP_OUTGOING {
            cx.out.shrink_to(KEEP_OUTGOING);
        }
        if cx.buf.capacity() > KEEP_BUFFER {
            cx.buf.shrink_to(KEEP_BUFFER);
        }
        for lost in undelivered {
            handler.on_undelivered(cx, now, lost);
        }
        if refused {
            handler.on_refused(cx, now, self.peer);
        }
        for event in cx.events.drain(..) {
            self.bus.emit(now, event);
        }
    }

    /// Sends one datagram. A connected socket must use send(): it can only talk to its peer
    /// anyway. Try the plain non-blocking call first (a chat broadcast is thousands of them in
    /// a row) and wait for the socket only when the kernel's send buffer is full.
    async fn send(&self, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        let tried = match self.peer {
            Some(_) => self.socket.try_send(bytes),
            None => self.socket.try_send_to(bytes, to),
        };
        match tried {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match self.peer {
                Some(_) => self.socket.send(bytes).await,
                None => self.socket.send_to(bytes, to).await,
            },
            other => other,
        }
    }
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
