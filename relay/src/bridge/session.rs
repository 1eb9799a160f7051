//! One WebSocket session: commands in, events out.
//!
//! The session task reads commands and carries them out: it opens sockets (each run by
//! [`crate::udp::drive`] with a [`ClientSocket`] handler, inside the session's own task: see
//! [`Drivers`]), passes sends and heartbeats to them, and changes server settings. It forwards the events this session
//! should see: its [`Feed`] from the bus (its own sockets' events and the server events they
//! cause), or every event after `subscribe all`.
//!
//! Commands reach a socket through its control channel, in order, so a `send` just before a
//! `close` still goes out: closing drops the channel, and the socket stops once it has done
//! everything asked before. Only the socket counts its pending requests: the session asks it.
//!
//! A slow browser only slows its own session: the bus never waits for it, and when the session
//! falls behind, it sends `lagged` with the number of events skipped and resumes. Events that
//! are ready together are written together and flushed once (see [`Outbox`]), so a busy
//! projector costs one write per batch rather than one per event.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::SinkExt;
use futures_util::stream::StreamExt;
use protocol::message::VERSION;
use protocol::{
    Command, Dir, ErrorCode, EventKind, Hello, Kinds, Limits, LinkFault, LinkPatch, RetryParams, Scope,
    ServerMsg, ServerName,
};
use tokio::net::UdpSocket;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use super::AppState;
use super::budget::{Budget, Over};
use super::client::{ClientCommand, ClientSocket, Names, Opening, TooManyPending};
use super::command::{self, Refusal, refuse};
use super::drivers::{Driver, Drivers};
use super::outbox::{Outbox, Sink};
use super::target;
use crate::bus::{Feed, Published, Subscription};
use crate::quiet::Quiet;
use crate::udp::{self, Control, LinkChange, MAX_DATAGRAM, Setting};

/// Events written to the WebSocket before one flush.
const BATCH: usize = 256;

/// A session subscribed to everything in batches (a projector) is written at most this often
/// while it is busy: the first event after a quiet spell goes out at once, and what follows
/// within this time waits to go with the next write. A class's projector is sent some 20,000
/// events a second; written as they came they made ~4,400 frames of ~4 events, and each frame
/// costs the browser far more to receive than its events cost to draw. Half a 60 Hz frame:
/// the page draws once a frame, so nobody sees the wait. A full batch ([`BATCH`]) never waits.
const GATHER: Duration = Duration::from_millis(8);

/// Turns of the runtime a session gives a datagram it just sent to come back before it
/// writes what it has: see [`Session::collect_own`].
const WAIT_TURNS: usize = 4;

/// Recorded events a `subscribe` with `history` sends at most.
const BACKLOG: usize = 5_000;

/// Commands queued per socket. A full queue means the socket cannot keep up; the command is
/// refused with `limit` rather than waited for.
const SOCKET_QUEUE: usize = 64;

/// Longest socket name, in bytes.
const MAX_NAME: usize = 64;

/// How long a session may take to pass on its last events and say bye at shutdown.
const GOODBYE: Duration = Duration::from_secs(2);

/// How long a `configure`, or a socket asked to take a request, may take to answer.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// A socket this session opened, or a crowd of them under one name.
struct OpenSocket {
    /// One control channel per socket: one for a plain socket, one per member of a crowd.
    /// Dropping them closes the sockets, after whatever they were asked before.
    controls: Vec<mpsc::Sender<Control<ClientCommand>>>,
    /// Where each of them is bound: another of this session's sockets may send there.
    locals: Vec<SocketAddr>,
    crowd: bool,
}

struct Session {
    id: String,
    /// Whether its changes for everyone are made for everyone (`--shared-changes`), or for
    /// its own sockets instead: a page on another machine than the relay's, a student's.
    shares: bool,
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
    /// Recorded events to send before the live ones, after `subscribe` with `history`.
    backlog: Vec<Arc<Published>>,
    /// The events the backlog sent: the live stream skips them. Servers emit from several
    /// threads, so an event numbered below the backlog's last may still arrive live: only
    /// these exact numbers are skipped.
    sent: std::collections::HashSet<u64>,
    /// Members of this session's crowds, against `--max-crowd`.
    crowd_members: u32,
    /// The servers keeping a sandbox for this session (`"scope":"own"`), dissolved by `reset`
    /// and when the session ends.
    sandboxes: std::collections::BTreeSet<ServerName>,
    budget: Arc<Mutex<Budget>>,
    /// Cancelled when the session ends or the relay shuts down; parent of every socket's.
    stop: CancellationToken,
    /// The drivers of sockets opened by the command being carried out, for the session's
    /// [`Drivers`] to run once it is done. A lock only so that `Session` is `Sync`, as its
    /// `&self` methods wait on other tasks: taken once per socket opened, never across an await.
    opened: Mutex<Vec<Driver>>,
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
        bytes_per_sec: l.bytes_per_sec,
        crowd_clients: l.crowd_clients,
        heartbeat_min_ms: ms(l.heartbeat_min),
        pending_requests: l.pending_requests,
        chat_clients: state.config.chat.max_clients,
        preview_bytes: protocol::PREVIEW_BYTES,
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Runs one session until the browser leaves or the relay shuts down.
pub async fn run(socket: WebSocket, state: AppState, ip: Option<std::net::IpAddr>) {
    let (mut sink, stream) = socket.split();
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
        servers: state.relay.targets().collect(),
        settings: state.relay.settings().await,
        links: state.relay.links().await,
        join: crate::interfaces::join_urls(
            state.config.bind,
            state.relay.http.port(),
            &state.config.public_hosts,
        ),
        limits: limits(&state),
    });
    if sink.send(frame(&hello)).await.is_err() {
        return;
    }
    tracing::info!(session = %id, "session started");
    let metrics = state.bus.metrics().cloned();
    if let Some(metrics) = &metrics {
        metrics.session_started();
    }

    let stop = state.stop_sessions.child_token();
    let l = state.config.limits;
    let budget = Arc::new(Mutex::new(Budget::new(l.sends_per_sec, l.bytes_per_sec, Instant::now())));
    let mut session = Session {
        id,
        shares: state.config.shared_changes.allow(ip),
        state,
        feed,
        all: None,
        batch: false,
        kinds: Kinds::ALL,
        sockets: HashMap::new(),
        crowd_members: 0,
        sandboxes: Default::default(),
        backlog: Vec::new(),
        sent: std::collections::HashSet::new(),
        budget,
        stop: stop.clone(),
        opened: Mutex::default(),
    };
    let mut drivers = Drivers::default();
    // One wait for shutdown for the whole session, rather than one made and dropped (each a
    // lock taken twice) for every frame in and every write; it and the browser's frames are
    // looked at only once they have woken (see `Quiet`).
    let mut stopped = Quiet::new(stop.clone().cancelled_owned());
    let mut stream = Quiet::new(stream);

    // Every frame from the browser, pongs included, shows it is still there.
    let ping_every = session.state.config.limits.ping_every;
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    pings.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_heard = Instant::now();
    // When the everything-subscription may be written again (see [`GATHER`]).
    let mut all_after = Instant::now();

    const SHUTTING_DOWN: &str = "the relay is shutting down";
    let ended = loop {
        // Every write may wait on a browser that stopped reading: it also gives way to shutdown,
        // and the sockets go on running meanwhile.
        let written = tokio::select! {
            biased;
            () = &mut stopped => break SHUTTING_DOWN,
            frame = stream.next() => match frame.inspect(|_| last_heard = Instant::now()) {
                Some(Ok(Message::Text(text))) => {
                    let reply = drivers.alongside(session.command(text.as_str())).await;
                    drivers.adopt(session.opened.get_mut().unwrap_or_else(PoisonError::into_inner));
                    // The socket a command was for carries it out now, not after the next frame.
                    drivers.turn().await;
                    match reply {
                        Some(reply) => until_stopped(&mut stopped, &mut drivers, sink.send(reply)).await,
                        None if !session.backlog.is_empty() => {
                            let backlog = session.backlog_frames();
                            until_stopped(&mut stopped, &mut drivers, send_all(&mut sink, backlog)).await
                        }
                        None => Some(Ok(())),
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let refusal = refuse(ErrorCode::BadJson, "send commands as JSON text frames");
                    until_stopped(&mut stopped, &mut drivers, sink.send(error_frame(refusal, None, None))).await
                }
                Some(Ok(Message::Close(_))) => {
                    // The WebSocket layer has queued the Close that answers it, with the same
                    // code; flushing sends it.
                    let _ = tokio::time::timeout(GOODBYE, sink.flush()).await;
                    break "";
                }
                None => break "",
                Some(Err(e)) => {
                    // A frame too big, broken or not UTF-8: say so before closing, never close
                    // silently.
                    if let Some(close) = unreadable(e) {
                        let _ = tokio::time::timeout(GOODBYE, sink.send(Message::Close(Some(close)))).await;
                    }
                    break "";
                }
                Some(Ok(_)) => Some(Ok(())), // ping and pong are answered by the WebSocket layer
            },
            _ = pings.tick() => {
                if last_heard.elapsed() > ping_every * 2 {
                    // A laptop that went to sleep, or a tab that is gone: free its slot.
                    let reason = format!("no answer to pings for {} s", last_heard.elapsed().as_secs());
                    let close = CloseFrame { code: close_code::AWAY, reason: reason.into() };
                    let _ = tokio::time::timeout(GOODBYE, sink.send(Message::Close(Some(close)))).await;
                    break "";
                }
                until_stopped(&mut stopped, &mut drivers, sink.send(Message::Ping(Default::default()))).await
            }
            // Before the feed: the events of a datagram a socket has just read go out in the
            // same turn.
            Some(()) = drivers.next_stopped(), if !drivers.is_empty() => Some(Ok(())),
            Some(event) = session.feed.recv() => {
                let out = session.collect_own(&mut drivers, event).await;
                until_stopped(&mut stopped, &mut drivers, out.send(&mut sink)).await
            }
            received = next_of_all_after(&mut session.all, all_after) => {
                let out = session.collect_all(received);
                all_after = if session.batch && out.added() < BATCH { Instant::now() + GATHER } else { Instant::now() };
                until_stopped(&mut stopped, &mut drivers, out.send(&mut sink)).await
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
    // Dropping a socket's control channel closes it once it has done what it was asked.
    session.sockets.clear();
    if !ended.is_empty() {
        // A browser that stopped reading gets a moment for its goodbye, not forever.
        let goodbye = async {
            session.drain_on_stop(&mut drivers, &mut sink).await;
            let _ = sink.send(frame(&ServerMsg::Bye { reason: ended.to_owned() })).await;
            let _ = sink.close().await;
        };
        let _ = tokio::time::timeout(GOODBYE, goodbye).await;
    }
    stop.cancel();
    // The sockets report their closing (`client_close`) as they stop, which they do at once
    // now: they run in this task, so they stop with it or not at all.
    if tokio::time::timeout(GOODBYE, drivers.finish()).await.is_err() {
        tracing::warn!(session = %session.id, "a socket did not stop in time");
    }
    session.reset_when_gone();
    if let Some(metrics) = &metrics {
        metrics.session_ended();
    }
    tracing::info!(session = %session.id, "session ended");
}

/// The Close frame for a read error that ends the session, if the browser should hear why.
fn unreadable(e: axum::Error) -> Option<CloseFrame> {
    let e = e.into_inner();
    match e.downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Utf8(_)) => {
            Some(CloseFrame { code: close_code::INVALID, reason: "a text frame that is not UTF-8".into() })
        }
        Some(tungstenite::Error::Protocol(p)) => Some(CloseFrame {
            code: close_code::PROTOCOL,
            reason: format!("WebSocket protocol error: {p}").into(),
        }),
        Some(tungstenite::Error::Capacity(_)) => Some(CloseFrame {
            code: close_code::SIZE,
            reason: format!(
                "a frame of more than {} bytes cannot be read; commands are at most {} bytes",
                command::MAX_FRAME,
                command::MAX_COMMAND
            )
            .into(),
        }),
        _ => None,
    }
}

/// Runs `write` unless the relay starts shutting down first (`None`), with the session's
/// sockets running meanwhile.
async fn until_stopped<T>(
    stopped: &mut Quiet<WaitForCancellationFutureOwned>,
    drivers: &mut Drivers,
    write: impl Future<Output = T>,
) -> Option<T> {
    drivers
        .alongside(async {
            // The write first: it nearly always completes at once, and shutdown is then
            // noticed by the loop.
            tokio::select! {
                biased;
                done = write => Some(done),
                () = stopped => None,
            }
        })
        .await
}

/// Writes `frames` and flushes once.
async fn send_all(sink: &mut Sink, frames: Vec<Outbox>) -> Result<(), axum::Error> {
    for out in frames {
        out.send(sink).await?;
    }
    Ok(())
}

/// Whether `event` says a datagram is on its way, to a server or back: its arrival will follow.
fn on_its_way(event: &Published) -> bool {
    matches!(
        event.kind,
        EventKind::ClientSend { .. } | EventKind::ServerRecv { .. } | EventKind::ServerSend { .. }
    )
}

/// The next event of the everything-subscription once `after` has come, or never when there
/// is none. Until then the events wait in the subscription, and the session's sockets and
/// commands go on as ever.
async fn next_of_all_after(
    all: &mut Option<Subscription>,
    after: Instant,
) -> Result<Arc<Published>, RecvError> {
    if all.is_some() && after > Instant::now() {
        tokio::time::sleep_until(after.into()).await;
    }
    next_of_all(all).await
}

/// The next event of the everything-subscription, or never when there is none.
async fn next_of_all(all: &mut Option<Subscription>) -> Result<Arc<Published>, RecvError> {
    match all {
        Some(subscription) => subscription.recv().await,
        None => std::future::pending().await,
    }
}

impl Session {
    /// `first` and whatever else of this session's own events is ready, to be written
    /// together and flushed once: one write for a burst of events, not one each.
    async fn collect_own(&mut self, drivers: &mut Drivers, first: Arc<Published>) -> Outbox {
        let mut out = Outbox::new(self.batch, self.kinds);
        let mut on_its_way = on_its_way(&first);
        out.event(&first);
        self.take_ready(&mut out, &mut on_its_way);
        // A datagram just left one of this session's sockets: the server's receive and answer,
        // and the socket's receive, follow within microseconds. Giving the runtime a turn (the
        // server runs, the socket's read is noticed), then the sockets theirs, lets them join
        // this write, so that a round trip costs the browser one frame to read and the relay
        // one write. It waits a few turns at most, and only while all it has to say is that
        // datagrams are on their way; any other event goes out at once.
        for _ in 0..WAIT_TURNS {
            if !on_its_way || out.added() >= BATCH {
                break;
            }
            tokio::task::yield_now().await;
            drivers.turn().await;
            self.take_ready(&mut out, &mut on_its_way);
        }
        let missed = self.feed.take_missed();
        if missed > 0 {
            self.count_lagged(missed);
            out.message(&ServerMsg::Lagged { missed });
        }
        out
    }

    /// Adds the events already in the feed to `out`, up to [`BATCH`] in all, noting whether
    /// they are all [`on_its_way`].
    fn take_ready(&mut self, out: &mut Outbox, all_on_the_way: &mut bool) {
        while out.added() < BATCH
            && let Some(event) = self.feed.try_recv()
        {
            *all_on_the_way &= on_its_way(&event);
            out.event(&event);
        }
    }

    /// The same for the everything-subscription, which reports its gaps as `Lagged`.
    fn collect_all(&mut self, mut received: Result<Arc<Published>, RecvError>) -> Outbox {
        let mut out = Outbox::new(self.batch, self.kinds);
        for _ in 0..BATCH {
            match received {
                // Already sent with the backlog.
                Ok(event) if !self.sent.is_empty() && self.sent.remove(&event.seq) => {}
                Ok(event) => out.event(&event),
                Err(RecvError::Lagged(missed)) => {
                    self.count_lagged(missed);
                    out.message(&ServerMsg::Lagged { missed })
                }
                Err(RecvError::Closed) => break,
            }
            let Some(all) = self.all.as_mut() else { break };
            received = match all.try_recv() {
                Ok(event) => Ok(event),
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(_) => break,
            };
        }
        out
    }

    /// The recorded past asked for with `subscribe`'s `history`, in frames of [`BATCH`].
    fn backlog_frames(&mut self) -> Vec<Outbox> {
        let backlog = std::mem::take(&mut self.backlog);
        let frames = backlog.chunks(BATCH).map(|chunk| {
            let mut out = Outbox::new(self.batch, self.kinds);
            for event in chunk {
                out.event(event);
            }
            out
        });
        frames.collect()
    }

    /// On shutdown: waits for this session's sockets to finish, then forwards what they and
    /// the servers reported last. The relay stops its servers before its sessions, so once the
    /// sockets have handled what was already in their queues, every last event has been emitted.
    async fn drain_on_stop(&mut self, drivers: &mut Drivers, sink: &mut Sink) {
        let _ = tokio::time::timeout(Duration::from_secs(1), drivers.finish()).await;
        if let Some(first) = self.feed.try_recv() {
            let _ = self.collect_own(drivers, first).await.send(sink).await;
        }
        if let Some(Ok(first)) = self.all.as_mut().map(|all| all.try_recv()) {
            let _ = self.collect_all(Ok(first)).send(sink).await;
        }
    }

    /// Carries out one command frame. Returns the frame to answer with, if any: errors are
    /// answered, successes show up as events.
    async fn command(&mut self, text: &str) -> Option<Message> {
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

    fn count_lagged(&self, missed: u64) {
        if let Some(metrics) = self.state.bus.metrics() {
            metrics.lagged(missed);
        }
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
    fn reset_when_gone(&mut self) {
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
        if clients == 0 || clients > room {
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
                    "this crowd would send {datagrams:.0} datagrams ({bytes:.0} bytes) a second, over this                      session's {} datagrams (--max-sends-per-sec) or {} bytes (--max-bytes-per-sec)",
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
    super::client::HEARTBEAT.len()
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
