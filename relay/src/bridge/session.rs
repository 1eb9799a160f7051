//! One WebSocket session: commands in, events out.
//!
//! The session task reads commands and carries them out: it opens sockets (each run by
//! [`crate::udp::drive`] with a [`ClientSocket`](super::client::ClientSocket) handler, inside the session's own task: see
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
//!
//! This file is the session's loop and what it forwards; `commands` is what each command does.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::SinkExt;
use futures_util::stream::StreamExt;
use protocol::message::VERSION;
use protocol::{ErrorCode, EventKind, Hello, Kinds, Limits, ServerMsg, ServerName};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

mod commands;

use super::AppState;
use super::budget::Budget;
use super::client::ClientCommand;
use super::command::{self, Refusal, refuse};
use super::drivers::{Driver, Drivers};
use super::outbox::{Outbox, Sink};
use crate::bus::{Feed, Published, Subscription};
use crate::quiet::Quiet;
use crate::udp::Control;

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
        t_us: Some(state.bus.t_us(std::time::Instant::now())),
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

    fn count_lagged(&self, missed: u64) {
        if let Some(metrics) = self.state.bus.metrics() {
            metrics.lagged(missed);
        }
    }
}
