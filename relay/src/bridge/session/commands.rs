//! What each command does: open a socket or a crowd, send, retry, heartbeat, close, change
//! a server or its link, subscribe, reset. The session loop ([`super::run`]) hands every
//! command frame to [`Session::command`], and sends back only what is refused: what is
//! carried out shows up as events.

use std::net::SocketAddr;
use std::sync::PoisonError;
use std::time::{Duration, Instant};

use axum::extract::ws::Message;
use protocol::{Command, Dir, ErrorCode, Kinds, LinkFault, LinkPatch, RetryParams, Scope, ServerName};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use super::{ANSWER_TIMEOUT, BACKLOG, MAX_NAME, OpenSocket, SOCKET_QUEUE, Session, error_frame};
use crate::bridge::budget::Over;
use crate::bridge::client::{ClientCommand, ClientSocket, Names, Opening, TooManyPending};
use crate::bridge::command::{self, Refusal, refuse};
use crate::bridge::drivers::Driver;
use crate::bridge::target;
use crate::udp::{self, Control, LinkChange, MAX_DATAGRAM, Setting};

impl Session {
    /// Carries out one command frame. Returns the frame to answer with, if any: errors are
    /// answered, successes show up as events.
    pub(super) async fn command(&mut self, text: &str) -> Option<Message> {
        let command = match command::parse(text) {
            Ok(command) => command,
            Err(e) => return Some(error_frame(e.refusal, e.op.as_deref(), e.socket.as_deref())),
        };
        let (op, socket) = (command.op(), command.socket().map(str::to_owned));
        let outcome = self.execute(command).await;
        outcome.err().map(|refusal| error_frame(refusal, Some(op), socket.as_deref()))
    }

    async fn execute(&mut self, command: Command) -> Result<(), Refusal> {
        match command {
            Command::Open { socket, server, target, connect, recv_buffer } => {
                self.check_new_name(&socket)?;
                let (remote, server) =
                    target::resolve(&self.state, server, target.as_deref(), &self.locals())?;
                if let Some(n) = recv_buffer
                    && !(1..=65_535).contains(&n)
                {
                    return Err(refuse(ErrorCode::BadCommand, "recv_buffer is from 1 to 65535 bytes"));
                }
                let opening = Opening { remote, server, connect, recv_buffer };
                let names = Names { session: self.id.clone(), socket: socket.clone(), member: None };
                let limits = self.state.config.limits;
                let handler = ClientSocket::new(names, opening, self.budget.clone(), limits.pending_requests);
                let (control, local) = self.spawn_socket(opening, handler).await?;
                self.sockets.insert(
                    socket,
                    OpenSocket { controls: vec![control], locals: vec![local], crowd: false },
                );
                Ok(())
            }
            Command::Send { socket, text, hex, retry, request_id } => {
                let payload = command::payload(text, hex, "send")?;
                let retry = retry.and_then(|r| r.params()).map(command::check_retry).transpose()?;
                self.send(&socket, payload, retry, request_id).await
            }
            Command::Heartbeat { socket, every_ms } => {
                let every = (every_ms > 0).then(|| Duration::from_millis(every_ms));
                let min = self.state.config.limits.heartbeat_min;
                if every.is_some_and(|every| every < min) {
                    return Err(refuse(
                        ErrorCode::Limit,
                        format!(
                            "heartbeats may come every {} ms at most often (--min-heartbeat)",
                            min.as_millis()
                        ),
                    ));
                }
                let control = self.plain_socket(&socket)?.clone();
                // The first beat goes out at once: it is a send like any other.
                if every.is_some() {
                    self.take_budget(udp_heartbeat_len())?;
                }
                order(&control, ClientCommand::Heartbeat(every))
            }
            Command::Close { socket } => {
                let closed = self.sockets.remove(&socket).ok_or_else(|| unknown_socket(&socket))?;
                if closed.crowd {
                    self.crowd_members -= u32::try_from(closed.controls.len()).unwrap_or(u32::MAX);
                }
                Ok(())
            }
            Command::Crowd { socket, server, target, clients, every_ms, text, hex, heartbeat } => {
                let payload = command::payload(text, hex, "crowd")?;
                let heartbeat = heartbeat.and_then(|h| h.every_ms()).map(Duration::from_millis);
                let every = (every_ms > 0).then(|| Duration::from_millis(every_ms));
                self.crowd(socket, server, target.as_deref(), clients, every, payload, heartbeat).await
            }
            Command::Link { server, dir, loss, duplicate, reorder, delay_ms, jitter_ms, mtu, scope } => {
                let scope = self.scope(scope);
                let patch = LinkPatch { loss, duplicate, reorder, delay_ms, jitter_ms, mtu };
                if patch == LinkPatch::default() {
                    return Err(refuse(ErrorCode::BadCommand, "link needs a setting to change"));
                }
                self.link(server, dir, LinkChange::Set(patch), scope).await
            }
            Command::Fault { server, dir, drop_next, duplicate_next, hold_next_ms, scope } => {
                let fault = LinkFault { drop_next, duplicate_next, hold_next_ms };
                self.link(server, dir, LinkChange::Fault(fault), self.scope(scope)).await
            }
            Command::Reset {} => self.reset().await,
            Command::Subscribe { scope, batch, kinds, history } => {
                if history && scope != Scope::All {
                    return Err(refuse(
                        ErrorCode::BadCommand,
                        "history comes with scope all: the whole relay's past",
                    ));
                }
                if kinds.as_ref().is_some_and(Vec::is_empty) {
                    return Err(refuse(
                        ErrorCode::BadCommand,
                        "kinds lists the kinds of event to receive; leave it out to receive every kind",
                    ));
                }
                self.batch = batch;
                self.kinds = kinds.map_or(Kinds::ALL, |kinds| kinds.into_iter().collect());
                self.feed.filter(self.kinds);
                // Everything comes from the broadcast then, the session's own events included,
                // so its own feed pauses to avoid sending them twice.
                match scope {
                    Scope::All if self.all.is_none() => self.all = Some(self.state.bus.subscribe()),
                    Scope::All => {}
                    Scope::Own => self.all = None,
                }
                self.feed.pause(scope == Scope::All);
                if history && let Some(recorded) = self.state.bus.history().cloned() {
                    // The subscription above is open first, so nothing falls between the two;
                    // what both hold goes out once, from the backlog. Thousands of events are
                    // built again and written as JSON: away from the thread that runs the
                    // servers, which go on meanwhile.
                    let backlog = tokio::task::spawn_blocking(move || {
                        let events = recorded.latest_events(BACKLOG);
                        for event in &events {
                            event.frame();
                        }
                        events
                    });
                    // The subscription is made by now: without its backlog if that failed.
                    self.backlog = backlog.await.unwrap_or_else(|e| {
                        tracing::error!(session = %self.id, "the history's backlog could not be read: {e}");
                        Vec::new()
                    });
                    self.sent = self.backlog.iter().map(|e| e.seq).collect();
                }
                Ok(())
            }
            Command::Configure { server, drop, delay_ms, jitter_ms, timeout_ms, scope } => {
                let scope = self.scope(scope);
                let settings = [
                    drop.map(Setting::Drop),
                    delay_ms.map(|ms| Setting::Delay(Duration::from_millis(ms))),
                    jitter_ms.map(|ms| Setting::Jitter(Duration::from_millis(ms))),
                    timeout_ms.map(|ms| Setting::ChatTimeout(Duration::from_millis(ms))),
                ];
                if settings.iter().all(Option::is_none) {
                    return Err(refuse(ErrorCode::BadCommand, "configure needs a setting to change"));
                }
                // All or none: a refused delay must not leave the drop it came with set.
                for setting in settings.iter().flatten() {
                    setting.check(server).map_err(|e| refuse(ErrorCode::BadCommand, e.to_string()))?;
                }
                for setting in settings.into_iter().flatten() {
                    let outcome = tokio::time::timeout(
                        ANSWER_TIMEOUT,
                        self.state.relay.configure(server, setting, Some(&self.id), scope),
                    )
                    .await;
                    match outcome {
                        Ok(Ok(())) if scope == Scope::Own => {
                            self.sandboxes.insert(server);
                        }
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => return Err(refuse(ErrorCode::BadCommand, e.to_string())),
                        Err(_) => {
                            return Err(refuse(ErrorCode::Io, format!("the {server} server did not answer")));
                        }
                    }
                }
                Ok(())
            }
        }
    }

    /// The scope a change asked for `asked` is made with: a session that may not change what
    /// everyone meets changes it for its own sockets, and the events say so.
    fn scope(&self, asked: Scope) -> Scope {
        if self.shares { asked } else { Scope::Own }
    }

    /// Changes a server's link, or aims a fault at it.
    async fn link(
        &mut self,
        server: ServerName,
        dir: Dir,
        change: LinkChange,
        scope: Scope,
    ) -> Result<(), Refusal> {
        let changed = self.state.relay.link(server, dir, change, Some(&self.id), scope);
        match tokio::time::timeout(ANSWER_TIMEOUT, changed).await {
            Ok(Some(Ok(_))) => {
                if scope == Scope::Own {
                    self.sandboxes.insert(server);
                }
                Ok(())
            }
            Ok(Some(Err(e))) => Err(refuse(ErrorCode::BadCommand, e.to_string())),
            Ok(None) => Err(refuse(ErrorCode::BadCommand, format!("{server} has no link"))),
            Err(_) => Err(refuse(ErrorCode::Io, format!("the {server} server did not answer"))),
        }
    }

    /// Dissolves this session's sandboxes, announcing what changes: its sockets meet the
    /// servers and links everyone meets again. A server too busy to take the reset in time
    /// keeps that sandbox, and the page hears so and may ask again.
    async fn reset(&mut self) -> Result<(), Refusal> {
        let mut busy = Vec::new();
        for server in std::mem::take(&mut self.sandboxes) {
            // Sending is cancel-safe: a reset that times out was never queued.
            let reset = self.state.relay.reset(server, &self.id, true);
            if tokio::time::timeout(ANSWER_TIMEOUT, reset).await.is_err() {
                self.sandboxes.insert(server);
                busy.push(server.to_string());
            }
        }
        if busy.is_empty() {
            return Ok(());
        }
        let noun = if busy.len() == 1 { "server" } else { "servers" };
        let busy = busy.join(" and ");
        Err(refuse(
            ErrorCode::Io,
            format!("the {busy} {noun} did not take the reset in time; send reset again"),
        ))
    }

    /// Dissolves this session's sandboxes once it has ended, unannounced: nobody is left to
    /// meet them. It runs as a task of its own, without a deadline, so that a busy server
    /// delays the reset rather than keeping a sandbox nobody can reset any more. At shutdown
    /// the servers have already stopped, and it ends at once.
    pub(super) fn reset_when_gone(&mut self) {
        let sandboxes = std::mem::take(&mut self.sandboxes);
        if sandboxes.is_empty() {
            return;
        }
        let (relay, id) = (self.state.relay.clone(), self.id.clone());
        self.state.tasks.spawn(async move {
            for server in sandboxes {
                relay.reset(server, &id, false).await;
            }
        });
    }

    /// Refuses a name that is malformed or taken, or one socket too many.
    fn check_new_name(&self, name: &str) -> Result<(), Refusal> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(refuse(ErrorCode::BadCommand, format!("a socket name has 1 to {MAX_NAME} bytes")));
        }
        if self.sockets.contains_key(name) {
            return Err(refuse(ErrorCode::SocketExists, format!("a socket named {name:?} is already open")));
        }
        let limit = self.state.config.limits.sockets_per_session;
        if self.sockets.len() >= limit {
            return Err(refuse(
                ErrorCode::Limit,
                format!("a session may open {limit} sockets (--max-sockets)"),
            ));
        }
        Ok(())
    }

    /// Opens a real UDP socket aimed at `opening.remote` and runs `handler` on it, in a driver
    /// that releases the socket's address when it ends; the session's [`Drivers`] run it.
    async fn spawn_socket(
        &mut self,
        opening: Opening,
        handler: ClientSocket,
    ) -> Result<(mpsc::Sender<Control<ClientCommand>>, SocketAddr), Refusal> {
        let io = |e: std::io::Error| refuse(ErrorCode::Io, format!("cannot open a UDP socket: {e}"));
        let bind = target::bind_addr(opening.remote, opening.server.is_some());
        let socket = UdpSocket::bind(bind).await.map_err(io)?;
        if opening.connect {
            // connect() on UDP sends nothing: it fixes the peer, so the kernel filters
            // datagrams from anyone else and reports ICMP errors back to this socket.
            socket.connect(opening.remote).await.map_err(io)?;
        }
        let local: SocketAddr = socket.local_addr().map_err(io)?;
        let (control, rx) = mpsc::channel(SOCKET_QUEUE);
        let claims = self.feed.claims();
        claims.claim(local);
        // A server keeping a sandbox for this session knows the socket's datagrams by this.
        let assigned = self.state.bus.datagrams().assign(local, self.id.as_str().into());
        let driven = udp::drive(socket, handler, self.state.bus.clone(), rx, self.stop.child_token());
        let driver: Driver = Box::pin(async move {
            driven.await;
            claims.release(local);
            drop(assigned);
        });
        self.opened.get_mut().unwrap_or_else(PoisonError::into_inner).push(driver);
        Ok((control, local))
    }

    /// Where this session's sockets are bound.
    fn locals(&self) -> Vec<SocketAddr> {
        self.sockets.values().flat_map(|open| open.locals.iter().copied()).collect()
    }

    /// The control channel of a plain (not crowd) socket.
    fn plain_socket(&self, name: &str) -> Result<&mpsc::Sender<Control<ClientCommand>>, Refusal> {
        let open = self.sockets.get(name).ok_or_else(|| unknown_socket(name))?;
        if open.crowd {
            return Err(refuse(
                ErrorCode::BadCommand,
                format!(
                    "{name:?} is a crowd: its members send on their own; close it and start another to change them"
                ),
            ));
        }
        Ok(&open.controls[0])
    }

    async fn send(
        &mut self,
        socket: &str,
        payload: Vec<u8>,
        retry: Option<RetryParams>,
        request_id: bool,
    ) -> Result<(), Refusal> {
        let limits = self.state.config.limits;
        // UDP's own limit is the kernel's to enforce (`client_send_failed`); a lower one is
        // the operator's.
        if payload.len() > limits.datagram_bytes && limits.datagram_bytes < MAX_DATAGRAM {
            return Err(refuse(
                ErrorCode::Limit,
                format!(
                    "{} bytes is over this relay's {}-byte datagram limit (--max-datagram)",
                    payload.len(),
                    limits.datagram_bytes
                ),
            ));
        }
        let control = self.plain_socket(socket)?.clone();
        self.take_budget(payload.len())?;
        if retry.is_none() && !request_id {
            return order(&control, ClientCommand::Send { payload, retry, request_id, accepted: None });
        }
        // Only the socket knows how many of its requests still wait: ask it.
        let (accepted, answer) = oneshot::channel();
        order(&control, ClientCommand::Send { payload, retry, request_id, accepted: Some(accepted) })?;
        match tokio::time::timeout(ANSWER_TIMEOUT, answer).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(TooManyPending(limit)))) => Err(refuse(
                ErrorCode::Limit,
                format!("{limit} requests are already waiting for answers on this socket (--max-pending)"),
            )),
            Ok(Err(_)) => Err(refuse(ErrorCode::Io, "the socket has stopped")),
            Err(_) => Err(refuse(ErrorCode::Io, "the socket did not answer")),
        }
    }

    /// Starts a crowd: `clients` sockets under one name, each sending on a beat of its own.
    #[allow(clippy::too_many_arguments)]
    async fn crowd(
        &mut self,
        name: String,
        server: Option<ServerName>,
        target: Option<&str>,
        clients: u32,
        every: Option<Duration>,
        payload: Vec<u8>,
        heartbeat: Option<Duration>,
    ) -> Result<(), Refusal> {
        self.check_new_name(&name)?;
        let (remote, server) = target::resolve(&self.state, server, target, &self.locals())?;
        let limits = self.state.config.limits;
        let room = limits.crowd_clients.saturating_sub(self.crowd_members);
        if clients == 0 {
            return Err(refuse(ErrorCode::BadCommand, "a crowd needs at least 1 client"));
        }
        if clients > room {
            return Err(refuse(
                ErrorCode::Limit,
                format!(
                    "a crowd has 1 to {room} clients now: this session's crowds may have {} in all (--max-crowd)",
                    limits.crowd_clients
                ),
            ));
        }
        let min = limits.heartbeat_min;
        if every.is_some_and(|e| e < min) || heartbeat.is_some_and(|h| h < min) {
            return Err(refuse(
                ErrorCode::Limit,
                format!(
                    "a crowd member may send every {} ms at most often (--min-heartbeat)",
                    min.as_millis()
                ),
            ));
        }
        // What the crowd will send each second, against the session's budget.
        let per_sec =
            |interval: Option<Duration>| interval.map_or(0.0, |d| f64::from(clients) / d.as_secs_f64());
        let (messages, beats) = (per_sec(every), per_sec(heartbeat));
        let datagrams = messages + beats;
        let bytes = messages * payload.len() as f64 + beats * udp_heartbeat_len() as f64;
        if datagrams > f64::from(limits.sends_per_sec) || bytes > limits.bytes_per_sec as f64 {
            return Err(refuse(
                ErrorCode::Limit,
                format!(
                    "this crowd would send {datagrams:.0} datagrams ({bytes:.0} bytes) a second, over this \
                     session's {} datagrams (--max-sends-per-sec) or {} bytes (--max-bytes-per-sec)",
                    limits.sends_per_sec, limits.bytes_per_sec
                ),
            ));
        }
        let opening = Opening { remote, server, connect: true, recv_buffer: None };
        // Each member starts at a random moment within its first interval, as independent
        // clients would, so that their datagrams interleave.
        let spread = every.unwrap_or(Duration::from_secs(1));
        let mut controls = Vec::with_capacity(clients as usize);
        let mut locals = Vec::with_capacity(clients as usize);
        for member in 0..clients {
            let names = Names { session: self.id.clone(), socket: name.clone(), member: Some(member) };
            let after = spread.mul_f64(fastrand::f64());
            let handler = ClientSocket::new(names, opening, self.budget.clone(), limits.pending_requests)
                .crowd_member(payload.clone(), after, every, heartbeat);
            // A member that cannot open stops the crowd: the ones already open close with it.
            let (control, local) = self.spawn_socket(opening, handler).await?;
            controls.push(control);
            locals.push(local);
        }
        self.crowd_members += clients;
        self.sockets.insert(name, OpenSocket { controls, locals, crowd: true });
        Ok(())
    }

    /// Takes one datagram of `bytes` from the session's budget, or refuses with `limit`.
    fn take_budget(&self, bytes: usize) -> Result<(), Refusal> {
        // The lock guards a few arithmetic operations and is never held across an await.
        let taken = match self.budget.lock() {
            Ok(mut budget) => budget.take(Instant::now(), bytes),
            Err(_) => Err(Over::Datagrams),
        };
        let limits = self.state.config.limits;
        taken.map_err(|over| match over {
            Over::Datagrams => refuse(
                ErrorCode::Limit,
                format!("over {} datagrams per second (--max-sends-per-sec)", limits.sends_per_sec),
            ),
            Over::Bytes => refuse(
                ErrorCode::Limit,
                format!("over {} bytes per second (--max-bytes-per-sec)", limits.bytes_per_sec),
            ),
        })
    }
}

fn udp_heartbeat_len() -> usize {
    crate::bridge::client::HEARTBEAT.len()
}

/// Passes a command to a socket, in order behind the ones before it.
fn order(control: &mpsc::Sender<Control<ClientCommand>>, command: ClientCommand) -> Result<(), Refusal> {
    control.try_send(Control::Command(command)).map_err(|e| match e {
        mpsc::error::TrySendError::Full(_) => refuse(ErrorCode::Limit, "the socket is busy; try again"),
        mpsc::error::TrySendError::Closed(_) => refuse(ErrorCode::Io, "the socket has stopped"),
    })
}

fn unknown_socket(name: &str) -> Refusal {
    refuse(ErrorCode::UnknownSocket, format!("no socket named {name:?} is open in this session"))
}
