//! One WebSocket session: commands in, events out.
//!
//! The session task reads commands and carries them out: it opens sockets (each run by
//! [`crate::udp::drive`] with a [`ClientSocket`] handler, in a task of its own), passes sends
//! and heartbeats to them, and changes server settings. It forwards the events this session
//! should see: its [`Feed`] from the bus (its own sockets' events and the server events they
//! cause), or every event after `subscribe all`.
//!
//! A slow browser only slows its own session: the bus never waits for it, and when the session
//! falls behind, it sends `lagged` with the number of events skipped and resumes. Events that are ready together are written together and flushed
//! once, so a busy projector costs one write per batch rather than one per event.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures_util::SinkExt;
use futures_util::stream::{SplitSink, StreamExt};
use protocol::message::VERSION;
use protocol::{
    Command, ErrorCode, EventKind, Hello, Kinds, Limits, RetryParams, Scope, ServerMsg, ServerName,
};
use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::budget::Budget;
use super::client::{ClientSocket, Names};
use crate::bus::{Feed, Published, Subscription};
use crate::http::AppState;
use crate::udp::{self, ClientCommand, Control, Setting};

/// Events written to the WebSocket before one flush.
const BATCH: usize = 256;

/// Commands queued per socket. A full queue means the socket cannot keep up; the command is
/// refused with `limit` rather than waited for.
const SOCKET_QUEUE: usize = 64;

/// Longest socket name, in bytes.
const MAX_NAME: usize = 64;

/// How long a session may take to pass on its last events and say bye at shutdown.
const GOODBYE: Duration = Duration::from_secs(2);

/// How long a `configure` may wait for the server to answer.
const CONFIGURE_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket this session opened.
struct OpenSocket {
    control: mpsc::Sender<Control>,
    local: SocketAddr,
    /// Requests in flight on it, kept by its handler, checked here against the limit.
    pending: Arc<AtomicUsize>,
    stop: CancellationToken,
}

/// A command that could not be carried out.
struct Refusal {
    code: ErrorCode,
    message: String,
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal { code, message: message.into() }
}

type Sink = SplitSink<WebSocket, Message>;

struct Session {
    id: String,
    state: AppState,
    /// This session's own events: its sockets' and the server events they cause.
    feed: Feed,
    /// Every event of the relay, after `subscribe all`.
    all: Option<Subscription>,
    /// Send ready events together in `batch` messages.
    batch: bool,
    /// The kinds of event the browser asked for (`subscribe` with `kinds`), given to the feed
    /// and to every [`Outbox`].
    kinds: Kinds,
    sockets: HashMap<String, OpenSocket>,
    budget: Arc<Mutex<Budget>>,
    /// Cancelled when the session ends or the relay shuts down; parent of every socket's.
    stop: CancellationToken,
    /// The tasks driving this session's sockets.
    socket_tasks: TaskTracker,
}

/// Serializes a message to a text frame. Our types always serialize; should one ever fail,
/// the frame says so instead of ending the session.
fn frame(msg: &ServerMsg) -> Message {
    match serde_json::to_string(msg) {
        Ok(json) => Message::Text(json.into()),
        Err(e) => Message::Text(format!(r#"{{"type":"error","code":"io","message":"{e}"}}"#).into()),
    }
}

fn error_frame(refusal: Refusal, op: Option<&str>, socket: Option<&str>) -> Message {
    frame(&ServerMsg::Error {
        code: refusal.code,
        message: refusal.message,
        op: op.map(str::to_owned),
        socket: socket.map(str::to_owned),
    })
}

/// The hello's view of the limits.
pub fn limits(state: &AppState) -> Limits {
    let l = state.config.limits;
    Limits {
        sessions: l.sessions,
        sockets_per_session: l.sockets_per_session,
        sends_per_sec: l.sends_per_sec,
        datagram_bytes: l.datagram_bytes,
        heartbeat_min_ms: u64::try_from(l.heartbeat_min.as_millis()).unwrap_or(u64::MAX),
        pending_requests: l.pending_requests,
        chat_clients: state.config.chat.max_clients,
        preview_bytes: protocol::PREVIEW_BYTES,
    }
}

/// Runs one session until the browser leaves or the relay shuts down.
pub async fn run(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    let Ok(_permit) = state.sessions.clone().try_acquire_owned() else {
        let refusal = refuse(
            ErrorCode::Limit,
            format!("the relay already serves {} sessions (--max-sessions)", state.config.limits.sessions),
        );
        let _ = sink.send(error_frame(refusal, None, None)).await;
        let _ = sink.close().await;
        return;
    };

    let id = format!("{:012x}", fastrand::u64(..) >> 16);
    // Open the feed before saying hello, so no event caused by the first command is missed.
    let feed = state.bus.feed(&id);
    let hello = ServerMsg::Hello(Hello {
        version: VERSION,
        session: id.clone(),
        servers: state.relay.servers.clone(),
        settings: state.relay.settings().await,
        limits: limits(&state),
    });
    if sink.send(frame(&hello)).await.is_err() {
        return;
    }
    tracing::info!(session = %id, "session started");

    let stop = state.stop_sessions.child_token();
    let budget = Arc::new(Mutex::new(Budget::new(state.config.limits.sends_per_sec, Instant::now())));
    let mut session = Session {
        id,
        state,
        feed,
        all: None,
        batch: false,
        kinds: Kinds::ALL,
        sockets: HashMap::new(),
        budget,
        stop: stop.clone(),
        socket_tasks: TaskTracker::new(),
    };

    const SHUTTING_DOWN: &str = "the relay is shutting down";
    let ended = loop {
        // Every write may wait on a browser that stopped reading: it also gives way to shutdown.
        let written = tokio::select! {
            biased;
            () = stop.cancelled() => break SHUTTING_DOWN,
            frame = stream.next() => match frame {
                Some(Ok(Message::Text(text))) => match session.command(text.as_str()).await {
                    Some(reply) => until_stopped(&stop, sink.send(reply)).await,
                    None => Some(Ok(())),
                },
                Some(Ok(Message::Binary(_))) => {
                    let refusal = refuse(ErrorCode::BadJson, "send commands as JSON text frames");
                    until_stopped(&stop, sink.send(error_frame(refusal, None, None))).await
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break "",
                Some(Ok(_)) => Some(Ok(())), // ping and pong are answered by the WebSocket layer
            },
            Some(event) = session.feed.recv() => until_stopped(&stop, session.forward_own(&mut sink, event)).await,
            received = next_of_all(&mut session.all) => {
                until_stopped(&stop, session.forward_all(&mut sink, received)).await
            }
        };
        match written {
            Some(Ok(())) => {}
            Some(Err(_)) => break "",
            None => break SHUTTING_DOWN,
        }
    };

    // Close the sockets. On shutdown, their drivers first handle what already arrived (the
    // chat server's `end`), and the session passes those last events on before saying bye.
    for (_, socket) in session.sockets.drain() {
        socket.stop.cancel();
    }
    session.socket_tasks.close();
    if !ended.is_empty() {
        // A browser that stopped reading gets a moment for its goodbye, not forever.
        let goodbye = async {
            session.drain_on_stop(&mut sink).await;
            let _ = sink.send(frame(&ServerMsg::Bye { reason: ended.to_owned() })).await;
            let _ = sink.close().await;
        };
        let _ = tokio::time::timeout(GOODBYE, goodbye).await;
    }
    stop.cancel();
    tracing::info!(session = %session.id, "session ended");
}

/// Runs `write` unless the relay starts shutting down first (`None`).
async fn until_stopped<T>(stop: &CancellationToken, write: impl Future<Output = T>) -> Option<T> {
    tokio::select! {
        biased;
        () = stop.cancelled() => None,
        done = write => Some(done),
    }
}

/// The next event of the everything-subscription, or never when there is none.
async fn next_of_all(all: &mut Option<Subscription>) -> Result<Arc<Published>, RecvError> {
    match all {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

/// Messages ready to go out together: one frame each, or one `batch` frame for all of them.
/// Either way they are flushed once, so a burst of events costs one write.
struct Outbox {
    batch: bool,
    /// The kinds of event the session asked for. The feed already leaves the others out as it
    /// routes them; this also catches the everything-subscription, and events that were queued
    /// before a new `subscribe`.
    kinds: Kinds,
    /// One frame per message; in batch mode, the one batch frame being written.
    frames: Vec<String>,
}

impl Outbox {
    fn new(batch: bool, kinds: Kinds) -> Self {
        Self { batch, kinds, frames: Vec::new() }
    }

    /// Adds a message that is JSON already: events are serialized once for every session
    /// (see [`Published`]), and a batch splices them in rather than parse them.
    fn push(&mut self, json: &str) {
        match self.frames.last_mut() {
            Some(batch) if self.batch => {
                batch.push(',');
                batch.push_str(json);
            }
            _ if self.batch => {
                // A guess at a typical batch; the string grows as needed.
                let mut batch = String::with_capacity(json.len() * 8);
                batch.push_str(r#"{"type":"batch","messages":["#);
                batch.push_str(json);
                self.frames.push(batch);
            }
            _ => self.frames.push(json.to_owned()),
        }
    }

    fn event(&mut self, event: &Published) {
        if !self.kinds.contains(event.kind.kind()) {
            return;
        }
        if let Some(json) = event.json() {
            self.push(json);
        }
    }

    fn message(&mut self, msg: &ServerMsg) {
        match serde_json::to_string(msg) {
            Ok(json) => self.push(&json),
            Err(e) => tracing::error!("cannot serialize a message: {e}"),
        }
    }

    /// The finished frames.
    fn frames(mut self) -> Vec<String> {
        if let (true, Some(batch)) = (self.batch, self.frames.last_mut()) {
            batch.push_str("]}");
        }
        self.frames
    }

    async fn send(self, sink: &mut Sink) -> Result<(), axum::Error> {
        let frames = self.frames();
        if frames.is_empty() {
            return Ok(());
        }
        for frame in frames {
            sink.feed(Message::Text(frame.into())).await?;
        }
        sink.flush().await
    }
}

impl Session {
    /// Writes `first` and whatever else of this session's own events is ready, then flushes
    /// once: one write for a burst of events, not one each.
    async fn forward_own(&mut self, sink: &mut Sink, first: Arc<Published>) -> Result<(), axum::Error> {
        let mut out = Outbox::new(self.batch, self.kinds);
        out.event(&first);
        // A datagram just left one of this session's sockets: the server's receive and answer,
        // and the socket's receive, follow within microseconds. Giving the runtime one turn
        // first lets them join this write: 20-25% more round trips/s at 16 busy sessions
        // (bench/bridge.sh), the same latency at one. Any other event goes out at once.
        if matches!(first.kind, EventKind::ClientSend { .. }) {
            tokio::task::yield_now().await;
        }
        for _ in 1..BATCH {
            let Some(event) = self.feed.try_recv() else { break };
            out.event(&event);
        }
        let missed = self.feed.take_missed();
        if missed > 0 {
            out.message(&ServerMsg::Lagged { missed });
        }
        out.send(sink).await
    }

    /// The same for the everything-subscription, which reports its gaps as `Lagged`.
    async fn forward_all(
        &mut self,
        sink: &mut Sink,
        mut received: Result<Arc<Published>, RecvError>,
    ) -> Result<(), axum::Error> {
        let mut out = Outbox::new(self.batch, self.kinds);
        for _ in 0..BATCH {
            match received {
                Ok(event) => out.event(&event),
                Err(RecvError::Lagged(missed)) => out.message(&ServerMsg::Lagged { missed }),
                Err(RecvError::Closed) => break,
            }
            let Some(all) = self.all.as_mut() else { break };
            received = match all.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(_) => break,
            };
        }
        out.send(sink).await
    }

    /// On shutdown: waits for this session's sockets to finish, then forwards what they and
    /// the servers reported last. The relay stops its servers before its sessions, so once the
    /// sockets have handled what was already in their queues, every last event has been emitted.
    async fn drain_on_stop(&mut self, sink: &mut Sink) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.socket_tasks.wait()).await;
        if let Some(first) = self.feed.try_recv() {
            let _ = self.forward_own(sink, first).await;
        }
        if let Some(Ok(first)) = self.all.as_mut().map(|all| all.try_recv()) {
            let _ = self.forward_all(sink, Ok(first)).await;
        }
    }

    /// Parses and carries out one command. Returns the frame to answer with, if any: errors
    /// are answered, successes show up as events.
    async fn command(&mut self, text: &str) -> Option<Message> {
        // Nearly every frame is a well-formed command: parse it once, straight into its type.
        if let Ok(command) = serde_json::from_str::<Command>(text) {
            let (op, socket) = (command.op(), command.socket().map(str::to_owned));
            let outcome = self.execute(command).await;
            return outcome.err().map(|refusal| error_frame(refusal, Some(op), socket.as_deref()));
        }
        // Otherwise look closer, to say precisely what is wrong.
        let value: serde_json::Value = match serde_json::from_str(text) {
            Ok(v @ serde_json::Value::Object(_)) => v,
            Ok(_) => {
                return Some(error_frame(
                    refuse(ErrorCode::BadJson, "a command is a JSON object"),
                    None,
                    None,
                ));
            }
            Err(e) => {
                return Some(error_frame(refuse(ErrorCode::BadJson, format!("not JSON: {e}")), None, None));
            }
        };
        let op = value.get("op").and_then(|op| op.as_str()).map(str::to_owned);
        let socket = value.get("socket").and_then(|s| s.as_str()).map(str::to_owned);
        const OPS: [&str; 6] = ["open", "send", "heartbeat", "close", "subscribe", "configure"];
        let Some(op) = op.filter(|op| OPS.contains(&op.as_str())) else {
            let refusal = refuse(ErrorCode::UnknownOp, format!("\"op\" must be one of {}", OPS.join(", ")));
            return Some(error_frame(refusal, None, socket.as_deref()));
        };
        let outcome = match serde_json::from_value::<Command>(value) {
            Ok(command) => self.execute(command).await,
            Err(e) => Err(refuse(ErrorCode::BadCommand, format!("{op}: {e}"))),
        };
        outcome.err().map(|refusal| error_frame(refusal, Some(&op), socket.as_deref()))
    }

    async fn execute(&mut self, command: Command) -> Result<(), Refusal> {
        match command {
            Command::Open { socket, server, target, connect } => {
                self.open(socket, server, target, connect).await
            }
            Command::Send { socket, text, hex, retry, request_id } => {
                let payload = match (text, hex) {
                    (Some(text), None) => text.into_bytes(),
                    (None, Some(hex)) => decode_hex(&hex)?,
                    _ => {
                        return Err(refuse(
                            ErrorCode::BadCommand,
                            "send needs exactly one of \"text\" or \"hex\"",
                        ));
                    }
                };
                let retry = retry.and_then(|r| r.params()).map(check_retry).transpose()?;
                self.send(&socket, payload, retry, request_id)
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
                // The first beat goes out at once: it is a send like any other.
                if every.is_some() {
                    self.take_send_token()?;
                }
                self.control(&socket, ClientCommand::Heartbeat(every))
            }
            Command::Close { socket } => {
                let open = self.sockets.remove(&socket).ok_or_else(|| unknown_socket(&socket))?;
                open.stop.cancel();
                self.feed.release(open.local);
                let (session, socket) = (self.id.clone(), socket);
                self.state.bus.emit(Instant::now(), EventKind::ClientClose { session, socket });
                Ok(())
            }
            Command::Subscribe { scope, batch, kinds } => {
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
                Ok(())
            }
            Command::Configure { server, drop, delay_ms, jitter_ms, timeout_ms } => {
                let settings = [
                    drop.map(Setting::Drop),
                    delay_ms.map(|ms| Setting::Delay(Duration::from_millis(ms))),
                    jitter_ms.map(|ms| Setting::Jitter(Duration::from_millis(ms))),
                    timeout_ms.map(|ms| Setting::ChatTimeout(Duration::from_millis(ms))),
                ];
                if settings.iter().all(Option::is_none) {
                    return Err(refuse(ErrorCode::BadCommand, "configure needs a setting to change"));
                }
                for setting in settings.into_iter().flatten() {
                    let outcome =
                        tokio::time::timeout(CONFIGURE_TIMEOUT, self.state.relay.configure(server, setting))
                            .await;
                    match outcome {
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

    /// Where a socket aimed at `server` or `target` should send, if it may.
    fn resolve(
        &self,
        server: Option<ServerName>,
        target: Option<String>,
    ) -> Result<(SocketAddr, Option<ServerName>), Refusal> {
        let servers = &self.state.relay.servers;
        match (server, target) {
            (Some(server), None) => {
                let addr = servers[&server];
                // A server bound to every interface is reached over loopback.
                let ip = match addr.ip() {
                    IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                    ip => ip,
                };
                Ok((SocketAddr::new(ip, addr.port()), Some(server)))
            }
            (None, Some(target)) => {
                let addr: SocketAddr = target.parse().map_err(|_| {
                    refuse(
                        ErrorCode::BadCommand,
                        format!("target {target:?} is not an address like 127.0.0.1:9000"),
                    )
                })?;
                let own = servers.iter().find(|(_, a)| **a == addr).map(|(name, _)| *name);
                if own.is_none() && !self.state.config.allow_targets.contains(&addr) {
                    return Err(refuse(
                        ErrorCode::TargetNotAllowed,
                        format!(
                            "{addr} is not one of the relay's servers; the operator can allow it with --allow-target {addr}"
                        ),
                    ));
                }
                Ok((addr, own))
            }
            _ => Err(refuse(ErrorCode::BadCommand, "open needs exactly one of \"server\" or \"target\"")),
        }
    }

    async fn open(
        &mut self,
        name: String,
        server: Option<ServerName>,
        target: Option<String>,
        connect: bool,
    ) -> Result<(), Refusal> {
        if name.is_empty() || name.len() > MAX_NAME {
            return Err(refuse(ErrorCode::BadCommand, format!("a socket name has 1 to {MAX_NAME} bytes")));
        }
        if self.sockets.contains_key(&name) {
            return Err(refuse(ErrorCode::SocketExists, format!("a socket named {name:?} is already open")));
        }
        let limit = self.state.config.limits.sockets_per_session;
        if self.sockets.len() >= limit {
            return Err(refuse(
                ErrorCode::Limit,
                format!("a session may open {limit} sockets (--max-sockets)"),
            ));
        }
        let (remote, server) = self.resolve(server, target)?;

        // Bind where the server will see us from: loopback for loopback, and the server's own
        // address when it listens on one of this machine's other addresses, so the address
        // this session claims is the one the server's events name.
        let bind = match remote.ip() {
            IpAddr::V4(ip) if ip.is_loopback() => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            IpAddr::V6(ip) if ip.is_loopback() => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
            ip if server.is_some() => SocketAddr::new(ip, 0),
            IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
        };
        let io = |e: std::io::Error| refuse(ErrorCode::Io, format!("cannot open a UDP socket: {e}"));
        let socket = UdpSocket::bind(bind).await.map_err(io)?;
        if connect {
            // connect() on UDP sends nothing: it fixes the peer, so the kernel filters
            // datagrams from anyone else and reports ICMP errors back to this socket.
            socket.connect(remote).await.map_err(io)?;
        }
        let local = socket.local_addr().map_err(io)?;

        let pending = Arc::new(AtomicUsize::new(0));
        let names = Names { session: self.id.clone(), socket: name.clone() };
        let limits = self.state.config.limits;
        let handler = ClientSocket::new(names, remote, self.budget.clone(), limits.pending_requests)
            .with_pending_counter(pending.clone());
        let (control, rx) = mpsc::channel(SOCKET_QUEUE);
        let stop = self.stop.child_token();
        self.feed.claim(local);
        let (session, socket_name) = (self.id.clone(), name.clone());
        self.state.bus.emit(
            Instant::now(),
            EventKind::ClientOpen { session, socket: socket_name, local, remote, server, connect },
        );
        self.socket_tasks.spawn(udp::drive(socket, handler, self.state.bus.clone(), rx, stop.clone()));
        self.sockets.insert(name, OpenSocket { control, local, pending, stop });
        Ok(())
    }

    fn send(
        &mut self,
        socket: &str,
        payload: Vec<u8>,
        retry: Option<RetryParams>,
        request_id: bool,
    ) -> Result<(), Refusal> {
        let limits = self.state.config.limits;
        if payload.len() > limits.datagram_bytes {
            return Err(refuse(
                ErrorCode::Limit,
                format!(
                    "{} bytes is over the {}-byte datagram limit (--max-datagram)",
                    payload.len(),
                    limits.datagram_bytes
                ),
            ));
        }
        let open = self.sockets.get(socket).ok_or_else(|| unknown_socket(socket))?;
        let is_request = retry.is_some() || request_id;
        if is_request && open.pending.load(Ordering::Relaxed) >= limits.pending_requests {
            return Err(refuse(
                ErrorCode::Limit,
                format!(
                    "{} requests are already waiting for answers on this socket (--max-pending)",
                    limits.pending_requests
                ),
            ));
        }
        self.take_send_token()?;
        // Count the request in now, before its socket sees it, so a burst of commands cannot
        // all pass the check above; the socket counts it out when it is answered or given up.
        let pending = open.pending.clone();
        if is_request {
            pending.fetch_add(1, Ordering::Relaxed);
        }
        let sent = self.control(socket, ClientCommand::Send { payload, retry, request_id });
        if sent.is_err() && is_request {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
        sent
    }

    /// Takes one datagram from the session's budget, or refuses with `limit`.
    fn take_send_token(&self) -> Result<(), Refusal> {
        // The lock guards a few arithmetic operations and is never held across an await.
        let allowed = self.budget.lock().map(|mut b| b.try_take(Instant::now())).unwrap_or(false);
        if allowed {
            Ok(())
        } else {
            let per_sec = self.state.config.limits.sends_per_sec;
            Err(refuse(
                ErrorCode::Limit,
                format!("over {per_sec} datagrams per second (--max-sends-per-sec)"),
            ))
        }
    }

    fn control(&self, socket: &str, command: ClientCommand) -> Result<(), Refusal> {
        let open = self.sockets.get(socket).ok_or_else(|| unknown_socket(socket))?;
        open.control.try_send(Control::Client(command)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => refuse(ErrorCode::Limit, "the socket is busy; try again"),
            mpsc::error::TrySendError::Closed(_) => refuse(ErrorCode::Io, "the socket has stopped"),
        })
    }
}

fn unknown_socket(name: &str) -> Refusal {
    refuse(ErrorCode::UnknownSocket, format!("no socket named {name:?} is open in this session"))
}

/// Checks retry parameters, so that no request retries faster than every 10 ms or forever.
fn check_retry(p: RetryParams) -> Result<RetryParams, Refusal> {
    let ok = (10..=60_000).contains(&p.initial_ms)
        && p.factor.is_finite()
        && (1.0..=10.0).contains(&p.factor)
        && p.give_up_ms <= 600_000;
    if ok {
        Ok(p)
    } else {
        Err(refuse(
            ErrorCode::BadCommand,
            "retry needs initial_ms from 10 to 60000, factor from 1.0 to 10.0 and give_up_ms up to 600000",
        ))
    }
}

fn decode_hex(hex: &str) -> Result<Vec<u8>, Refusal> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    let bad = || refuse(ErrorCode::BadCommand, "hex must be pairs of hex digits, like \"00ff\"");
    if !digits.len().is_multiple_of(2) {
        return Err(bad());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            u8::from_str_radix(text, 16).map_err(|_| bad())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two events as the bus hands them out: a `client_close`, then a `client_open`.
    fn two_events() -> (Arc<Published>, Arc<Published>) {
        let bus = crate::bus::EventBus::new(Instant::now());
        let mut rx = bus.subscribe();
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        bus.emit(Instant::now(), EventKind::ClientClose { session: "s".into(), socket: "a".into() });
        let open = EventKind::ClientOpen {
            session: "s".into(),
            socket: "b".into(),
            local,
            remote: local,
            server: None,
            connect: true,
        };
        bus.emit(Instant::now(), open);
        (rx.try_recv().expect("first"), rx.try_recv().expect("second"))
    }

    fn parsed(frames: Vec<String>) -> Vec<serde_json::Value> {
        frames.iter().map(|f| serde_json::from_str(f).expect("each frame is JSON")).collect()
    }

    #[test]
    fn outbox_writes_a_frame_per_message_or_one_batch() {
        let (close, open) = two_events();
        let lagged = ServerMsg::Lagged { missed: 3 };

        let mut out = Outbox::new(false, Kinds::ALL);
        out.event(&close);
        out.event(&open);
        out.message(&lagged);
        let frames = parsed(out.frames());
        let types: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap_or_default()).collect();
        assert_eq!(types, ["event", "event", "lagged"]);
        assert_eq!(
            (frames[0]["kind"].as_str(), frames[1]["kind"].as_str()),
            (Some("client_close"), Some("client_open"))
        );

        let mut out = Outbox::new(true, Kinds::ALL);
        out.event(&close);
        out.event(&open);
        out.message(&lagged);
        let frames = parsed(out.frames());
        assert_eq!(frames.len(), 1, "one batch frame");
        let messages = frames[0]["messages"].as_array().expect("messages");
        assert_eq!(frames[0]["type"], "batch");
        assert_eq!(messages.len(), 3);
        assert_eq!((messages[0]["seq"].as_u64(), messages[1]["seq"].as_u64()), (Some(1), Some(2)));
        assert_eq!(messages[2], serde_json::json!({"type":"lagged","missed":3}));

        let mut out = Outbox::new(true, Kinds::ALL);
        out.event(&open);
        assert_eq!(parsed(out.frames())[0]["messages"].as_array().map(Vec::len), Some(1), "a batch of one");
        assert!(Outbox::new(true, Kinds::ALL).frames().is_empty(), "nothing to say, no frame");
    }

    #[test]
    fn outbox_leaves_out_kinds_not_asked_for() {
        let (close, open) = two_events();
        let mut out = Outbox::new(false, [protocol::Kind::ClientOpen].into_iter().collect());
        out.event(&close);
        out.event(&open);
        let frames = parsed(out.frames());
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["kind"], "client_open");
    }

    #[test]
    fn hex_decodes_pairs_and_refuses_the_rest() {
        assert_eq!(decode_hex("00ff 7A").ok(), Some(vec![0x00, 0xff, 0x7a]));
        assert_eq!(decode_hex("").ok(), Some(vec![]));
        assert!(decode_hex("abc").is_err());
        assert!(decode_hex("zz").is_err());
        assert!(decode_hex("é0").is_err());
    }

    #[test]
    fn retry_parameters_are_bounded() {
        assert!(check_retry(RetryParams::default()).is_ok());
        assert!(check_retry(RetryParams { initial_ms: 1, ..RetryParams::default() }).is_err());
        assert!(check_retry(RetryParams { factor: f64::NAN, ..RetryParams::default() }).is_err());
        assert!(check_retry(RetryParams { factor: 0.5, ..RetryParams::default() }).is_err());
    }
}
