//! A browser session's UDP socket: the tutorial's retrying client, as a sans-I/O handler.
//!
//! The relay opens the socket for the browser and [`crate::udp::drive`] owns it, exactly as for
//! the servers. This handler decides what to send and reports everything as `client_*` events:
//!
//! - **Retries.** A request waits `initial_ms` for an answer. Each silent wait multiplies the
//!   next by `factor`; when the next wait would pass `give_up_ms`, the request is given up (the
//!   tutorial client's "I think the server is down"). With the defaults that is five attempts,
//!   waiting 100, 200, 400, 800 and 1600 ms.
//! - **Request IDs.** With `request_id`, attempt `a` of request `n` starts with `#n-a `, and the
//!   lossy server echoes that prefix. Only a reply to the latest attempt is the answer; a reply
//!   to an earlier attempt is `late`, and one to a finished request is a `duplicate`. Without
//!   IDs the client cannot tell, and takes the first reply as the answer: the tutorial's lesson.
//! - **Heartbeats.** `^hb^` every interval, the first one at once, keeping a chat client alive.
//! - **Refusals.** A connected socket hears ICMP port unreachable as ECONNREFUSED.
//! - **Receive buffers.** With `recv_buffer`, a read keeps at most that many bytes of a
//!   datagram, as Python's `recvfrom(N)` does; `client_recv` reports both `len` and `kept`.
//! - **Crowds.** A crowd member sends its message on a beat of its own, like the many clients
//!   of the tutorials, and may keep itself registered with heartbeats.
//! - **Its own lifecycle.** It reports `client_open` when it starts and `client_close` when it
//!   stops, whether closed by the session or by shutdown.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{DuplicateReason, EventKind, Payload, RetryParams, ServerName, VanishReason};
use tokio::sync::oneshot;

use super::budget::Budget;
use crate::request_id;
use crate::udp::{Cx, DatagramHandler, Undelivered, Why};

/// Attempts per request at most, whatever the backoff parameters say.
pub const MAX_ATTEMPTS: u32 = 16;

/// Finished requests remembered per socket to recognise their duplicates.
const REMEMBERED: usize = 64;

/// How long a request with an ID but no retries waits for its answer before it is given up.
const SINGLE_ATTEMPT_WAIT: Duration = Duration::from_secs(2);

/// The heartbeat datagram of the chat protocol.
pub const HEARTBEAT: &[u8] = b"^hb^";

/// Names that go into every event of this socket.
#[derive(Debug, Clone)]
pub struct Names {
    pub session: String,
    pub socket: String,
    /// Which member of a crowd this socket is.
    pub member: Option<u32>,
}

/// How the socket was opened, for its `client_open` event.
#[derive(Debug, Clone, Copy)]
pub struct Opening {
    pub remote: SocketAddr,
    pub server: Option<ServerName>,
    pub connect: bool,
    /// The most one read takes; the rest of a longer datagram is lost, as with `recvfrom(N)`.
    pub recv_buffer: Option<usize>,
}

/// What a session can ask of one of its sockets.
#[derive(Debug)]
pub enum ClientCommand {
    /// Send a datagram, optionally as a request with retries and request IDs. A request is
    /// answered on `accepted`: refused when `max_pending` requests already wait, as only the
    /// socket knows how many do.
    Send {
        payload: Vec<u8>,
        retry: Option<RetryParams>,
        request_id: bool,
        accepted: Option<oneshot::Sender<Result<(), TooManyPending>>>,
    },
    /// Send `^hb^` every so often, the first at once; `None` stops.
    Heartbeat(Option<Duration>),
}

/// A request was refused: this many were already waiting for answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyPending(pub usize);

#[derive(Debug)]
struct Request {
    /// `Some(n)` when attempts carry `#n-a `.
    id: Option<u64>,
    payload: Vec<u8>,
    /// `None`: a single attempt.
    retry: Option<RetryParams>,
    attempt: u32,
    /// How long the current attempt waits.
    wait: Duration,
    sent_at: Instant,
    first_sent: Instant,
}

impl Request {
    fn deadline(&self) -> Instant {
        self.sent_at + self.wait
    }
}

/// A request that is over, kept to classify replies that still arrive.
#[derive(Debug, Clone, Copy)]
struct Finished {
    id: u64,
    /// The attempt that was answered, or `None` if the request was given up.
    answered: Option<u32>,
}

/// A payload sent on a beat: `^hb^` heartbeats, or a crowd member's message.
#[derive(Debug)]
struct Beat {
    payload: Vec<u8>,
    /// `None`: once only.
    every: Option<Duration>,
    next: Instant,
}

impl Beat {
    /// Sends it if due, and schedules the next: regular, but never catching up on missed beats.
    fn due(&mut self, now: Instant) -> Option<bool> {
        if self.next > now {
            return None;
        }
        match self.every {
            Some(every) => {
                self.next = (self.next + every).max(now);
                Some(true)
            }
            None => Some(false),
        }
    }
}

#[derive(Debug)]
pub struct ClientSocket {
    names: Names,
    opening: Opening,
    budget: Arc<Mutex<Budget>>,
    max_pending: usize,
    requests: Vec<Request>,
    finished: VecDeque<Finished>,
    next_id: u64,
    heartbeat: Option<Beat>,
    /// A crowd member's own message, and when it first goes out after the start.
    message: Option<(Beat, Duration)>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The name of an OS error, like `EMSGSIZE`, where the platform gives one.
fn errno_name(e: &std::io::Error) -> Option<String> {
    #[cfg(unix)]
    {
        e.raw_os_error().map(|code| format!("{:?}", nix::errno::Errno::from_raw(code)))
    }
    #[cfg(not(unix))]
    {
        let _ = e;
        None
    }
}

impl ClientSocket {
    pub fn new(names: Names, opening: Opening, budget: Arc<Mutex<Budget>>, max_pending: usize) -> Self {
        Self {
            names,
            opening,
            budget,
            max_pending,
            requests: Vec::new(),
            finished: VecDeque::new(),
            next_id: 1,
            heartbeat: None,
            message: None,
        }
    }

    /// A crowd member: sends `payload` first `after` the start, then every `every` (or once),
    /// and `^hb^` every `heartbeat` if given.
    pub fn crowd_member(
        mut self,
        payload: Vec<u8>,
        after: Duration,
        every: Option<Duration>,
        heartbeat: Option<Duration>,
    ) -> Self {
        // Placeholder times: `on_start` sets them from its `now`.
        let now = Instant::now();
        self.message = Some((Beat { payload, every, next: now }, after));
        self.heartbeat =
            heartbeat.map(|every| Beat { payload: HEARTBEAT.to_vec(), every: Some(every), next: now });
        self
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Charges a datagram the relay sends on its own (retry, heartbeat, crowd) to the session.
    fn charge(&self, now: Instant, bytes: usize) {
        // The lock is held for a few arithmetic operations and never across an await; it is
        // shared with the session task and this socket's siblings.
        if let Ok(mut budget) = self.budget.lock() {
            budget.charge(now, bytes);
        }
    }

    /// Sends one datagram and reports it.
    fn transmit(&self, cx: &mut Cx, payload: &[u8], attempt: Option<u32>, req: Option<String>) {
        let (from, to) = (cx.local(), self.opening.remote);
        let dg = cx.send_silent(to, payload);
        let names = &self.names;
        cx.emit(|| EventKind::ClientSend {
            session: names.session.clone(),
            socket: names.socket.clone(),
            member: names.member,
            dg,
            from,
            to,
            len: payload.len(),
            payload: Payload::preview(payload),
            attempt,
            req,
        });
    }

    /// Sends the current attempt of `requests[i]`.
    fn send_attempt(&self, cx: &mut Cx, i: usize) {
        let r = &self.requests[i];
        match r.id {
            Some(id) => {
                let mut bytes = Vec::with_capacity(r.payload.len() + 16);
                request_id::write(&mut bytes, id, r.attempt, &r.payload);
                self.transmit(cx, &bytes, Some(r.attempt), Some(request_id::name(id, r.attempt)));
            }
            None => self.transmit(cx, &r.payload, Some(r.attempt), None),
        }
    }

    fn finish(&mut self, i: usize, answered: Option<u32>) {
        let r = self.requests.remove(i);
        if let Some(id) = r.id {
            if self.finished.len() == REMEMBERED {
                self.finished.pop_front();
            }
            self.finished.push_back(Finished { id, answered });
        }
    }

    fn send(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        payload: Vec<u8>,
        retry: Option<RetryParams>,
        with_id: bool,
    ) -> Result<(), TooManyPending> {
        if retry.is_none() && !with_id {
            self.transmit(cx, &payload, None, None);
            return Ok(());
        }
        if self.requests.len() >= self.max_pending {
            return Err(TooManyPending(self.max_pending));
        }
        let id = with_id.then(|| {
            self.next_id += 1;
            self.next_id - 1
        });
        let wait = retry.map_or(SINGLE_ATTEMPT_WAIT, |p| Duration::from_millis(p.initial_ms));
        self.requests.push(Request { id, payload, retry, attempt: 1, wait, sent_at: now, first_sent: now });
        self.send_attempt(cx, self.requests.len() - 1);
        Ok(())
    }

    /// Reports a received datagram; `answers` is the request the socket takes it to answer.
    fn report_recv(&self, cx: &mut Cx, now: Instant, from: SocketAddr, got: Got, answers: Option<&Request>) {
        let to = cx.local();
        let names = &self.names;
        let (attempt, req, rtt_us) = match answers {
            Some(r) => {
                let rtt = now.saturating_duration_since(r.sent_at);
                let req = r.id.map(|id| request_id::name(id, r.attempt));
                (Some(r.attempt), req, Some(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX)))
            }
            None => (None, None, None),
        };
        let dg = cx.arrival().unwrap_or_default();
        cx.emit(|| EventKind::ClientRecv {
            session: names.session.clone(),
            socket: names.socket.clone(),
            member: names.member,
            dg,
            from,
            to,
            len: got.len,
            payload: Payload::preview(got.kept),
            attempt,
            req,
            rtt_us,
            kept: got.kept.len(),
        });
    }

    fn report_duplicate(
        &self,
        cx: &mut Cx,
        from: SocketAddr,
        got: Got,
        (id, attempt): (u64, u32),
        reason: DuplicateReason,
    ) {
        let to = cx.local();
        let names = &self.names;
        let dg = cx.arrival().unwrap_or_default();
        cx.emit(|| EventKind::ClientDuplicate {
            session: names.session.clone(),
            socket: names.socket.clone(),
            member: names.member,
            dg,
            from,
            to,
            len: got.len,
            payload: Payload::preview(got.kept),
            req: request_id::name(id, attempt),
            attempt,
            reason,
        });
    }

    /// A reply carrying `#id-attempt`.
    fn on_tagged_reply(
        &mut self,
        cx: &mut Cx,
        now: Instant,
        from: SocketAddr,
        got: Got,
        (id, attempt): (u64, u32),
    ) {
        if let Some(i) = self.requests.iter().position(|r| r.id == Some(id)) {
            let current = self.requests[i].attempt;
            if attempt == current {
                self.report_recv(cx, now, from, got, Some(&self.requests[i]));
                self.finish(i, Some(attempt));
            } else {
                // An earlier attempt's answer: the request was already sent again, so this
                // reply is late. Taking it would hide which attempt got through.
                self.report_duplicate(cx, from, got, (id, attempt), DuplicateReason::Late);
            }
            return;
        }
        match self.finished.iter().find(|f| f.id == id) {
            Some(f) => {
                let reason = match f.answered {
                    Some(a) if attempt < a => DuplicateReason::Late,
                    None => DuplicateReason::Late,
                    Some(_) => DuplicateReason::Duplicate,
                };
                self.report_duplicate(cx, from, got, (id, attempt), reason);
            }
            None => self.report_recv(cx, now, from, got, None),
        }
    }
}

/// A datagram as the socket's read got it: its real length, and the bytes the buffer kept.
#[derive(Debug, Clone, Copy)]
struct Got<'a> {
    len: usize,
    kept: &'a [u8],
}

impl DatagramHandler for ClientSocket {
    type Command = ClientCommand;

    fn server(&self) -> Option<ServerName> {
        None
    }

    fn on_start(&mut self, cx: &mut Cx, now: Instant) {
        let (names, o, local) = (&self.names, self.opening, cx.local());
        cx.emit(|| EventKind::ClientOpen {
            session: names.session.clone(),
            socket: names.socket.clone(),
            member: names.member,
            local,
            remote: o.remote,
            server: o.server,
            connect: o.connect,
            recv_buffer: o.recv_buffer,
        });
        if let Some((beat, after)) = &mut self.message {
            beat.next = now + *after;
        }
        if let Some(beat) = &mut self.heartbeat {
            beat.next = now;
        }
    }

    fn on_datagram(&mut self, cx: &mut Cx, now: Instant, from: SocketAddr, payload: &[u8]) {
        // What a read with a buffer of `recv_buffer` bytes gets: the rest is gone.
        let kept = &payload[..payload.len().min(self.opening.recv_buffer.unwrap_or(usize::MAX))];
        let got = Got { len: payload.len(), kept };
        if let Some(tag) = request_id::parse(kept) {
            self.on_tagged_reply(cx, now, from, got, tag);
            return;
        }
        // Without an ID the client cannot tell which request this answers: like the tutorial's
        // client, it takes the oldest request without an ID as answered.
        match self.requests.iter().position(|r| r.id.is_none()) {
            Some(i) => {
                self.report_recv(cx, now, from, got, Some(&self.requests[i]));
                let attempt = self.requests[i].attempt;
                self.finish(i, Some(attempt));
            }
            None => self.report_recv(cx, now, from, got, None),
        }
    }

    fn on_refused(&mut self, cx: &mut Cx, _now: Instant, peer: Option<SocketAddr>) {
        let peer = peer.unwrap_or(self.opening.remote);
        let names = &self.names;
        cx.emit(|| EventKind::ClientRefused {
            session: names.session.clone(),
            socket: names.socket.clone(),
            member: names.member,
            peer,
        });
    }

    fn on_undelivered(&mut self, cx: &mut Cx, _now: Instant, lost: Undelivered) {
        let names = &self.names;
        let Undelivered { dg, to, len, why } = lost;
        match why {
            Why::NoListener | Why::NotItsPeer => cx.emit(|| EventKind::ClientVanished {
                session: names.session.clone(),
                socket: names.socket.clone(),
                member: names.member,
                dg,
                to,
                len,
                reason: match why {
                    Why::NotItsPeer => VanishReason::NotItsPeer,
                    _ => VanishReason::NoListener,
                },
            }),
            Why::SendFailed(e) => {
                let errno = errno_name(&e);
                let error = if errno.as_deref() == Some("EMSGSIZE") {
                    format!(
                        "Message too long: UDP carries at most {} bytes over IPv4, and this datagram has {len}",
                        crate::udp::MAX_DATAGRAM
                    )
                } else {
                    e.to_string()
                };
                cx.emit(|| EventKind::ClientSendFailed {
                    session: names.session.clone(),
                    socket: names.socket.clone(),
                    member: names.member,
                    dg,
                    to,
                    len,
                    errno,
                    error,
                });
            }
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.iter().map(Request::deadline);
        let beats = self.heartbeat.iter().chain(self.message.as_ref().map(|(beat, _)| beat)).map(|b| b.next);
        requests.chain(beats).min()
    }

    fn on_tick(&mut self, cx: &mut Cx, now: Instant) {
        if let Some(beat) = &mut self.heartbeat
            && beat.due(now).is_some()
        {
            self.charge(now, HEARTBEAT.len());
            self.transmit(cx, HEARTBEAT, None, None);
        }
        if let Some((beat, _)) = &mut self.message
            && let Some(again) = beat.due(now)
        {
            let payload = std::mem::take(&mut beat.payload);
            self.charge(now, payload.len());
            self.transmit(cx, &payload, None, None);
            match &mut self.message {
                Some((beat, _)) if again => beat.payload = payload,
                _ => self.message = None,
            }
        }
        let mut i = 0;
        while i < self.requests.len() {
            if self.requests[i].deadline() > now {
                i += 1;
                continue;
            }
            let r = &self.requests[i];
            let waited = r.wait;
            let next_wait = r.retry.map(|p| waited.mul_f64(p.factor));
            let give_up = match (r.retry, next_wait) {
                (Some(p), Some(next)) => {
                    next > Duration::from_millis(p.give_up_ms) || r.attempt >= MAX_ATTEMPTS
                }
                _ => true,
            };
            if give_up {
                let (attempts, total) = (r.attempt, now.saturating_duration_since(r.first_sent));
                let give_up_ms = r.retry.map_or(ms(SINGLE_ATTEMPT_WAIT), |p| p.give_up_ms);
                let names = &self.names;
                cx.emit(|| EventKind::ClientGiveup {
                    session: names.session.clone(),
                    socket: names.socket.clone(),
                    attempts,
                    waited_ms: ms(total),
                    give_up_ms,
                });
                self.finish(i, None);
                continue;
            }
            let next_wait = next_wait.unwrap_or(waited);
            let r = &mut self.requests[i];
            r.attempt += 1;
            r.wait = next_wait;
            r.sent_at = now;
            let (attempt, len) = (r.attempt, r.payload.len());
            let names = &self.names;
            cx.emit(|| EventKind::ClientRetry {
                session: names.session.clone(),
                socket: names.socket.clone(),
                attempt,
                delay_ms: ms(waited),
                next_wait_ms: ms(next_wait),
            });
            self.charge(now, len);
            self.send_attempt(cx, i);
            i += 1;
        }
    }

    fn on_command(&mut self, cx: &mut Cx, now: Instant, command: ClientCommand) {
        match command {
            ClientCommand::Send { payload, retry, request_id, accepted } => {
                let outcome = self.send(cx, now, payload, retry, request_id);
                if let Some(accepted) = accepted {
                    // The session may have stopped waiting; the outcome stands.
                    let _ = accepted.send(outcome);
                }
            }
            ClientCommand::Heartbeat(every) => {
                self.heartbeat =
                    every.map(|every| Beat { payload: HEARTBEAT.to_vec(), every: Some(every), next: now });
                if self.heartbeat.is_some() {
                    self.on_tick(cx, now);
                }
            }
        }
    }

    fn on_stop(&mut self, cx: &mut Cx, _now: Instant) {
        let names = &self.names;
        cx.emit(|| EventKind::ClientClose {
            session: names.session.clone(),
            socket: names.socket.clone(),
            member: names.member,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "127.0.0.1:5000";
    const REMOTE: &str = "127.0.0.1:1060";

    fn opening(recv_buffer: Option<usize>) -> Opening {
        Opening {
            remote: REMOTE.parse().expect("addr"),
            server: Some(ServerName::Lossy),
            connect: true,
            recv_buffer,
        }
    }

    fn setup_with(recv_buffer: Option<usize>) -> (ClientSocket, Cx, Arc<Mutex<Budget>>, Instant) {
        let t0 = Instant::now();
        let budget = Arc::new(Mutex::new(Budget::new(1000, 1 << 20, t0)));
        let names = Names { session: "s".into(), socket: "a".into(), member: None };
        let client = ClientSocket::new(names, opening(recv_buffer), budget.clone(), 8);
        let mut cx = Cx::new(None, LOCAL.parse().expect("addr"));
        cx.observe();
        (client, cx, budget, t0)
    }

    fn setup() -> (ClientSocket, Cx, Arc<Mutex<Budget>>, Instant) {
        setup_with(None)
    }

    fn send(client: &mut ClientSocket, cx: &mut Cx, now: Instant, text: &str, retry: bool, request_id: bool) {
        let retry = retry.then(RetryParams::default);
        let payload = text.as_bytes().to_vec();
        client.on_command(cx, now, ClientCommand::Send { payload, retry, request_id, accepted: None });
    }

    fn texts(cx: &mut Cx) -> Vec<String> {
        cx.take_sent().into_iter().map(|(_, b)| String::from_utf8_lossy(&b).into_owned()).collect()
    }

    /// Runs the timer from `from` to `until` the way the driver would.
    fn run_timer(client: &mut ClientSocket, cx: &mut Cx, until: Instant) {
        while let Some(at) = client.poll_timeout().filter(|&at| at <= until) {
            client.on_tick(cx, at);
        }
    }

    #[test]
    fn backs_off_100_200_400_800_1600_then_gives_up() {
        let (mut client, mut cx, _, t0) = setup();
        send(&mut client, &mut cx, t0, "ping", true, false);
        run_timer(&mut client, &mut cx, t0 + Duration::from_secs(10));
        assert_eq!(texts(&mut cx), ["ping"; 5]);
        let events = cx.take_events();
        let waits: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                EventKind::ClientRetry { delay_ms, attempt, .. } => Some((*attempt, *delay_ms)),
                _ => None,
            })
            .collect();
        assert_eq!(waits, [(2, 100), (3, 200), (4, 400), (5, 800)]);
        assert!(matches!(
            events.last(),
            Some(EventKind::ClientGiveup { attempts: 5, waited_ms: 3100, give_up_ms: 2000, .. })
        ));
        assert_eq!(client.pending(), 0);
        assert_eq!(client.poll_timeout(), None);
    }

    #[test]
    fn an_answer_stops_the_retries() {
        let (mut client, mut cx, _, t0) = setup();
        send(&mut client, &mut cx, t0, "ping", true, false);
        run_timer(&mut client, &mut cx, t0 + Duration::from_millis(150));
        client.on_datagram(&mut cx, t0 + Duration::from_millis(160), REMOTE.parse().expect("addr"), b"pong");
        assert_eq!(client.pending(), 0);
        let recv = cx.take_events().into_iter().find(|e| matches!(e, EventKind::ClientRecv { .. }));
        assert!(matches!(recv, Some(EventKind::ClientRecv { attempt: Some(2), rtt_us: Some(60_000), .. })));
    }

    #[test]
    fn request_ids_tell_late_and_duplicate_replies_from_the_answer() {
        let (mut client, mut cx, _, t0) = setup();
        let from: SocketAddr = REMOTE.parse().expect("addr");
        send(&mut client, &mut cx, t0, "hi", true, true);
        run_timer(&mut client, &mut cx, t0 + Duration::from_millis(100));
        assert_eq!(texts(&mut cx), ["#1-1 hi", "#1-2 hi"]);
        cx.take_events();

        let at = t0 + Duration::from_millis(120);
        client.on_datagram(&mut cx, at, from, b"#1-1 Your data was 7 bytes long");
        assert_eq!(client.pending(), 1, "a reply to attempt 1 is not the answer");
        client.on_datagram(&mut cx, at, from, b"#1-2 Your data was 7 bytes long");
        assert_eq!(client.pending(), 0);
        client.on_datagram(&mut cx, at, from, b"#1-2 Your data was 7 bytes long");
        client.on_datagram(&mut cx, at, from, b"#1-1 Your data was 7 bytes long");

        let seen: Vec<_> = cx
            .take_events()
            .into_iter()
            .map(|e| match e {
                EventKind::ClientDuplicate { req, reason, .. } => format!("{reason:?} {req}"),
                EventKind::ClientRecv { req, attempt, rtt_us, .. } => {
                    format!("answer {} {attempt:?} {rtt_us:?}", req.unwrap_or_default())
                }
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(seen, ["Late 1-1", "answer 1-2 Some(2) Some(20000)", "Duplicate 1-2", "Late 1-1"]);
    }

    #[test]
    fn a_single_attempt_with_an_id_gives_up_after_two_seconds() {
        let (mut client, mut cx, _, t0) = setup();
        send(&mut client, &mut cx, t0, "x", false, true);
        assert_eq!(texts(&mut cx), ["#1-1 x"]);
        run_timer(&mut client, &mut cx, t0 + Duration::from_secs(5));
        assert!(texts(&mut cx).is_empty());
        assert!(matches!(cx.take_events().last(), Some(EventKind::ClientGiveup { attempts: 1, .. })));
    }

    #[test]
    fn plain_sends_have_no_timer_and_replies_are_plain() {
        let (mut client, mut cx, _, t0) = setup();
        send(&mut client, &mut cx, t0, "hello", false, false);
        assert_eq!(client.poll_timeout(), None);
        client.on_datagram(&mut cx, t0, REMOTE.parse().expect("addr"), b"hello");
        let events = cx.take_events();
        assert!(matches!(&events[0], EventKind::ClientSend { attempt: None, req: None, len: 5, .. }));
        assert!(matches!(&events[1], EventKind::ClientRecv { attempt: None, req: None, rtt_us: None, .. }));
    }

    #[test]
    fn heartbeats_start_at_once_and_keep_the_beat() {
        let (mut client, mut cx, budget, t0) = setup();
        client.on_command(&mut cx, t0, ClientCommand::Heartbeat(Some(Duration::from_secs(5))));
        run_timer(&mut client, &mut cx, t0 + Duration::from_secs(12));
        assert_eq!(texts(&mut cx), ["^hb^"; 3], "at 0, 5 and 10 s");
        client.on_command(&mut cx, t0 + Duration::from_secs(12), ClientCommand::Heartbeat(None));
        assert_eq!(client.poll_timeout(), None);
        let mut budget = budget.lock().expect("budget lock");
        let last_beat = t0 + Duration::from_secs(10);
        assert_eq!(
            (0..2000).filter(|_| budget.try_take(last_beat, 0)).count(),
            999,
            "the beat at 10 s was charged"
        );
    }

    #[test]
    fn refusal_names_the_remote() {
        let (mut client, mut cx, _, t0) = setup();
        client.on_refused(&mut cx, t0, None);
        assert!(matches!(
            cx.take_events().as_slice(),
            [EventKind::ClientRefused { peer, .. }] if *peer == REMOTE.parse::<SocketAddr>().expect("addr")
        ));
    }

    #[test]
    fn a_small_receive_buffer_cuts_the_datagram_as_recvfrom_does() {
        let (mut client, mut cx, _, t0) = setup_with(Some(1024));
        let big = vec![b'a'; 2000];
        cx.arrive(&mut client, t0, 5, REMOTE.parse().expect("addr"), &big);
        match cx.take_events().as_slice() {
            [EventKind::ClientRecv { dg: 5, len: 2000, kept: 1024, payload, .. }] => {
                assert_eq!(payload.text.as_deref().map(str::len), Some(protocol::PREVIEW_BYTES));
            }
            other => panic!("unexpected {other:?}"),
        }
        cx.arrive(&mut client, t0, 6, REMOTE.parse().expect("addr"), b"short");
        assert!(matches!(cx.take_events().as_slice(), [EventKind::ClientRecv { len: 5, kept: 5, .. }]));
    }

    #[test]
    fn a_request_id_cut_off_by_the_buffer_is_not_read() {
        let (mut client, mut cx, _, t0) = setup_with(Some(3));
        send(&mut client, &mut cx, t0, "hi", true, true);
        cx.arrive(&mut client, t0, 9, REMOTE.parse().expect("addr"), b"#1-1 Your data was 7 bytes long");
        assert_eq!(client.pending(), 1, "the socket only got \"#1-\", which names no request");
    }

    #[test]
    fn sends_are_named_and_the_name_is_in_the_event() {
        let (mut client, mut cx, _, t0) = setup();
        send(&mut client, &mut cx, t0, "hello", false, false);
        let named = cx.take_named();
        let events = cx.take_events();
        assert!(
            matches!(events.as_slice(), [EventKind::ClientSend { dg, .. }] if *dg == named[0].2 && *dg != 0)
        );
    }

    #[test]
    fn more_requests_than_the_limit_are_refused_by_the_socket() {
        let (mut client, mut cx, _, t0) = setup();
        for _ in 0..8 {
            send(&mut client, &mut cx, t0, "x", true, false);
        }
        let (tx, mut rx) = oneshot::channel();
        let payload = b"x".to_vec();
        let command = ClientCommand::Send { payload, retry: None, request_id: true, accepted: Some(tx) };
        client.on_command(&mut cx, t0, command);
        assert_eq!(rx.try_recv().expect("answered"), Err(TooManyPending(8)));
        assert_eq!(client.pending(), 8);
    }

    #[test]
    fn open_and_close_come_from_the_lifecycle() {
        let (mut client, mut cx, _, t0) = setup_with(Some(1024));
        client.on_start(&mut cx, t0);
        client.on_stop(&mut cx, t0);
        match cx.take_events().as_slice() {
            [
                EventKind::ClientOpen { recv_buffer: Some(1024), connect: true, .. },
                EventKind::ClientClose { .. },
            ] => {}
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_crowd_member_sends_on_its_own_beat_and_keeps_its_heartbeat() {
        let t0 = Instant::now();
        let budget = Arc::new(Mutex::new(Budget::new(1000, 1 << 20, t0)));
        let names = Names { session: "s".into(), socket: "k".into(), member: Some(3) };
        let every = Duration::from_secs(1);
        let mut member = ClientSocket::new(names, opening(None), budget, 8).crowd_member(
            b"hi".to_vec(),
            Duration::from_millis(250),
            Some(every),
            Some(Duration::from_secs(5)),
        );
        let mut cx = Cx::new(None, LOCAL.parse().expect("addr"));
        cx.observe();
        member.on_start(&mut cx, t0);
        run_timer(&mut member, &mut cx, t0 + Duration::from_millis(2300));
        assert_eq!(texts(&mut cx), ["^hb^", "hi", "hi", "hi"], "a beat at 0, messages at 0.25, 1.25, 2.25 s");
        let members: Vec<_> = cx
            .take_events()
            .into_iter()
            .filter_map(|e| match e {
                EventKind::ClientSend { member, .. } => Some(member),
                _ => None,
            })
            .collect();
        assert_eq!(members, [Some(3); 4]);

        let (mut once, mut cx, _, t0) = setup();
        once = once.crowd_member(b"one".to_vec(), Duration::ZERO, None, None);
        once.on_start(&mut cx, t0);
        run_timer(&mut once, &mut cx, t0 + Duration::from_secs(5));
        assert_eq!(texts(&mut cx), ["one"]);
        assert_eq!(once.poll_timeout(), None);
    }

    #[test]
    fn vanished_and_refused_sends_are_reported_with_their_names() {
        let (mut client, mut cx, _, t0) = setup();
        let to = REMOTE.parse().expect("addr");
        client.on_undelivered(&mut cx, t0, Undelivered { dg: 4, to, len: 5, why: Why::NoListener });
        let too_long = std::io::Error::from_raw_os_error(90);
        client.on_undelivered(
            &mut cx,
            t0,
            Undelivered { dg: 5, to, len: 65_508, why: Why::SendFailed(too_long) },
        );
        match cx.take_events().as_slice() {
            [
                EventKind::ClientVanished { dg: 4, reason: VanishReason::NoListener, .. },
                EventKind::ClientSendFailed { dg: 5, len: 65_508, errno, error, .. },
            ] => {
                if cfg!(target_os = "linux") {
                    assert_eq!(errno.as_deref(), Some("EMSGSIZE"));
                    assert!(error.contains("65507") && error.contains("65508"), "{error}");
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
