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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{DuplicateReason, EventKind, Payload, RetryParams, ServerName};

use super::budget::Budget;
use crate::udp::lossy::request_id;
use crate::udp::{ClientCommand, Cx, DatagramHandler};

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
}

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

#[derive(Debug)]
pub struct ClientSocket {
    names: Names,
    remote: SocketAddr,
    budget: Arc<Mutex<Budget>>,
    max_pending: usize,
    requests: Vec<Request>,
    finished: VecDeque<Finished>,
    next_id: u64,
    heartbeat: Option<(Duration, Instant)>,
    /// Requests in flight, shared with the session: the session counts a request in when it
    /// accepts the command, this handler counts it out when the request ends.
    pending_counter: Arc<AtomicUsize>,
}

/// The request ID of attempt `attempt` of request `id`, as it goes on the wire after `#`:
/// `7-2`. [`ClientSocket::parse_reply_id`] reads it back.
fn req_name(id: u64, attempt: u32) -> String {
    format!("{id}-{attempt}")
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl ClientSocket {
    pub fn new(names: Names, remote: SocketAddr, budget: Arc<Mutex<Budget>>, max_pending: usize) -> Self {
        Self {
            names,
            remote,
            budget,
            max_pending,
            requests: Vec::new(),
            finished: VecDeque::new(),
            next_id: 1,
            heartbeat: None,
            pending_counter: Arc::default(),
        }
    }

    /// Shares the count of requests in flight with the session (see the field).
    pub fn with_pending_counter(mut self, counter: Arc<AtomicUsize>) -> Self {
        self.pending_counter = counter;
        self
    }

    /// Counts one request out.
    fn request_ended(&self) {
        let _ = self
            .pending_counter
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| Some(n.saturating_sub(1)));
    }

    /// Requests waiting for an answer.
    pub fn pending(&self) -> usize {
        self.requests.len()
    }

    /// Charges a datagram the relay sends on its own (retry, heartbeat) to the session.
    fn charge(&self, now: Instant) {
        // The lock is held for a few arithmetic operations and never across an await; it is
        // shared with the session task and this socket's siblings.
        if let Ok(mut budget) = self.budget.lock() {
            budget.charge(now);
        }
    }

    /// Sends one datagram and reports it.
    fn transmit(&self, cx: &mut Cx, payload: &[u8], attempt: Option<u32>, req: Option<String>) {
        let (from, to) = (cx.local(), self.remote);
        let names = &self.names;
        cx.emit(|| EventKind::ClientSend {
            session: names.session.clone(),
            socket: names.socket.clone(),
            from,
            to,
            len: payload.len(),
            payload: Payload::preview(payload),
            attempt,
            req,
        });
        cx.send_silent(to, payload);
    }

    /// Sends the current attempt of `requests[i]`.
    fn send_attempt(&self, cx: &mut Cx, i: usize) {
        let r = &self.requests[i];
        match r.id {
            Some(id) => {
                let req = req_name(id, r.attempt);
                let mut bytes = Vec::with_capacity(r.payload.len() + req.len() + 2);
                bytes.push(b'#');
                bytes.extend_from_slice(req.as_bytes());
                bytes.push(b' ');
                bytes.extend_from_slice(&r.payload);
                self.transmit(cx, &bytes, Some(r.attempt), Some(req));
            }
            None => self.transmit(cx, &r.payload, Some(r.attempt), None),
        }
    }

    fn finish(&mut self, i: usize, answered: Option<u32>) {
        let r = self.requests.remove(i);
        self.request_ended();
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
    ) {
        if retry.is_none() && !with_id {
            self.transmit(cx, &payload, None, None);
            return;
        }
        if self.requests.len() >= self.max_pending {
            // The session counts requests in before it passes them on, so this never happens;
            // if it did, the request is refused here and counted out again.
            self.request_ended();
            return;
        }
        let id = with_id.then(|| {
            self.next_id += 1;
            self.next_id - 1
        });
        let wait = retry.map_or(SINGLE_ATTEMPT_WAIT, |p| Duration::from_millis(p.initial_ms));
        self.requests.push(Request { id, payload, retry, attempt: 1, wait, sent_at: now, first_sent: now });
        self.send_attempt(cx, self.requests.len() - 1);
    }

    /// Which request and attempt a reply answers, from its `#n-a ` prefix.
    fn parse_reply_id(payload: &[u8]) -> Option<(u64, u32)> {
        let prefix = request_id(payload)?;
        let inner = std::str::from_utf8(&prefix[1..prefix.len() - 1]).ok()?;
        let (n, a) = inner.split_once('-')?;
        Some((n.parse().ok()?, a.parse().ok()?))
    }

    /// Reports a received datagram; `answers` is the request it answers, if any.
    fn report_recv(
        &self,
        cx: &mut Cx,
        now: Instant,
        from: SocketAddr,
        payload: &[u8],
        answers: Option<&Request>,
    ) {
        let to = cx.local();
        let names = &self.names;
        let (attempt, req, rtt_us) = match answers {
            Some(r) => {
                let rtt = now.saturating_duration_since(r.sent_at);
                let req = r.id.map(|id| req_name(id, r.attempt));
                (Some(r.attempt), req, Some(u64::try_from(rtt.as_micros()).unwrap_or(u64::MAX)))
            }
            None => (None, None, None),
        };
        cx.emit(|| EventKind::ClientRecv {
            session: names.session.clone(),
            socket: names.socket.clone(),
            from,
            to,
            len: payload.len(),
            payload: Payload::preview(payload),
            attempt,
            req,
            rtt_us,
        });
    }

    fn report_duplicate(
        &self,
        cx: &mut Cx,
        from: SocketAddr,
        payload: &[u8],
        (id, attempt): (u64, u32),
        reason: DuplicateReason,
    ) {
        let to = cx.local();
        let names = &self.names;
        cx.emit(|| EventKind::ClientDuplicate {
            session: names.session.clone(),
            socket: names.socket.clone(),
            from,
            to,
            len: payload.len(),
            payload: Payload::preview(payload),
            req: req_name(id, attempt),
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
        payload: &[u8],
        (id, attempt): (u64, u32),
    ) {
        if let Some(i) = self.requests.iter().position(|r| r.id == Some(id)) {
            let current = self.requests[i].attempt;
            if attempt == current {
                self.report_recv(cx, now, from, payload, Some(&self.requests[i]));
                self.finish(i, Some(attempt));
            } else {
                // An earlier attempt's answer: the request was already sent again, so this
                // reply is late. Taking it would hide which attempt got through.
                self.report_duplicate(cx, from, payload, (id, attempt), DuplicateReason::Late);
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
                self.report_duplicate(cx, from, payload, (id, attempt), reason);
            }
            None => self.report_recv(cx, now, from, payload, None),
        }
    }
}

impl DatagramHandler for ClientSocket {
    fn server(&self) -> Option<ServerName> {
        None
    }

    fn on_datagram(&mut self, cx: &mut Cx, now: Instant, from: SocketAddr, payload: &[u8]) {
        if let Some(tag) = Self::parse_reply_id(payload) {
            self.on_tagged_reply(cx, now, from, payload, tag);
            return;
        }
        // Without an ID the client cannot tell which request this answers: like the tutorial's
        // client, it takes the oldest request without an ID as answered.
        match self.requests.iter().position(|r| r.id.is_none()) {
            Some(i) => {
                self.report_recv(cx, now, from, payload, Some(&self.requests[i]));
                let attempt = self.requests[i].attempt;
                self.finish(i, Some(attempt));
            }
            None => self.report_recv(cx, now, from, payload, None),
        }
    }

    fn on_refused(&mut self, cx: &mut Cx, _now: Instant, peer: Option<SocketAddr>) {
        let peer = peer.unwrap_or(self.remote);
        let names = &self.names;
        cx.emit(|| EventKind::ClientRefused {
            session: names.session.clone(),
            socket: names.socket.clone(),
            peer,
        });
    }

    fn poll_timeout(&self) -> Option<Instant> {
        let requests = self.requests.iter().map(Request::deadline);
        requests.chain(self.heartbeat.map(|(_, next)| next)).min()
    }

    fn on_tick(&mut self, cx: &mut Cx, now: Instant) {
        if let Some((every, next)) = self.heartbeat
            && next <= now
        {
            self.charge(now);
            self.transmit(cx, HEARTBEAT, None, None);
            // Keep the beat regular, but never try to catch up on missed beats.
            self.heartbeat = Some((every, (next + every).max(now)));
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
            let attempt = r.attempt;
            let names = &self.names;
            cx.emit(|| EventKind::ClientRetry {
                session: names.session.clone(),
                socket: names.socket.clone(),
                attempt,
                delay_ms: ms(waited),
                next_wait_ms: ms(next_wait),
            });
            self.charge(now);
            self.send_attempt(cx, i);
            i += 1;
        }
    }

    fn on_client(&mut self, cx: &mut Cx, now: Instant, command: ClientCommand) {
        match command {
            ClientCommand::Send { payload, retry, request_id } => {
                self.send(cx, now, payload, retry, request_id)
            }
            ClientCommand::Heartbeat(every) => {
                self.heartbeat = every.map(|every| (every, now));
                if self.heartbeat.is_some() {
                    self.on_tick(cx, now);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "127.0.0.1:5000";
    const REMOTE: &str = "127.0.0.1:1060";

    fn setup() -> (ClientSocket, Cx, Arc<Mutex<Budget>>, Instant) {
        let t0 = Instant::now();
        let budget = Arc::new(Mutex::new(Budget::new(1000, t0)));
        let names = Names { session: "s".into(), socket: "a".into() };
        let client = ClientSocket::new(names, REMOTE.parse().expect("addr"), budget.clone(), 8);
        let mut cx = Cx::new(None, LOCAL.parse().expect("addr"));
        cx.observe();
        (client, cx, budget, t0)
    }

    fn send(client: &mut ClientSocket, cx: &mut Cx, now: Instant, text: &str, retry: bool, request_id: bool) {
        let retry = retry.then(RetryParams::default);
        client.on_client(
            cx,
            now,
            ClientCommand::Send { payload: text.as_bytes().to_vec(), retry, request_id },
        );
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
        client.on_client(&mut cx, t0, ClientCommand::Heartbeat(Some(Duration::from_secs(5))));
        run_timer(&mut client, &mut cx, t0 + Duration::from_secs(12));
        assert_eq!(texts(&mut cx), ["^hb^"; 3], "at 0, 5 and 10 s");
        client.on_client(&mut cx, t0 + Duration::from_secs(12), ClientCommand::Heartbeat(None));
        assert_eq!(client.poll_timeout(), None);
        let mut budget = budget.lock().expect("budget lock");
        let last_beat = t0 + Duration::from_secs(10);
        assert_eq!(
            (0..2000).filter(|_| budget.try_take(last_beat)).count(),
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
}
