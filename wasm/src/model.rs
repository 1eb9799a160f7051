//! What the page knows about the traffic, in plain Rust: no web-sys, no clock, no DOM.
//!
//! The socket code feeds every [`ServerMsg`] to [`Model::apply`]; the frame loop reads the model
//! and draws it. Nothing here draws or waits, so the tests below drive it natively with
//! hand-written events and an explicit `now`, the same sans-I/O shape as the relay's servers.
//!
//! The model turns events into a sequence diagram:
//! - **lanes**: one per endpoint. This page's sockets, other sessions' sockets (projector
//!   mode), outside clients such as `nc -u`, and each server;
//! - **arrows**: one per datagram. A `client_send` waits for the matching `server_recv` (or
//!   `server_drop`) on the same pair of lanes, and a `server_send` for the matching
//!   `client_recv` (or `client_duplicate`), first in first out, as UDP on loopback keeps order;
//! - **marks**: things that happen on one lane: retries, give-ups, ECONNREFUSED, chat joins,
//!   evictions, broadcasts, configuration changes.
//!
//! Memory is bounded: the model keeps the last [`Model::window`] items and folds older ones
//! into the counters of [`Stats`], which count everything ever seen.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use protocol::{DuplicateReason, Event, EventKind, Hello, Payload, ServerMsg, ServerName};

/// Items kept for drawing by default: about half a second of a 5,000 events/s storm, or
/// several minutes of a lesson.
pub const DEFAULT_WINDOW: usize = 2_000;

/// Lanes at most. Past this, new endpoints share one "more clients" lane so a busy classroom
/// cannot grow the diagram (or memory) without end.
pub const MAX_LANES: usize = 32;

/// Chat clients remembered for the liveness panel.
const MAX_CHAT_CLIENTS: usize = 64;

/// Event log lines waiting for the frame loop; older ones are counted, not kept.
const LOG_OUTBOX: usize = 500;

/// Datagrams waiting for their other end, per pair of lanes.
const MAX_IN_FLIGHT: usize = 64;

/// Upper bounds of the RTT histogram's buckets, in microseconds; the last bucket is open.
pub const RTT_BUCKETS_US: [u64; 11] =
    [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000];

/// Who a lane stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaneKind {
    /// One of the relay's servers.
    Server(ServerName),
    /// A socket this page opened.
    Own,
    /// A socket of another browser session, seen in projector mode.
    OtherSession,
    /// Anything else that talks to a server: `nc -u`, a Python script, an allowed target.
    Outside,
    /// The lane shared by endpoints past [`MAX_LANES`].
    Overflow,
}

impl LaneKind {
    /// Left-to-right order in the diagram: clients on the left, servers on the right.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Own => 0,
            Self::OtherSession => 1,
            Self::Outside => 2,
            Self::Overflow => 3,
            Self::Server(_) => 4,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Server(_) => "server",
            Self::Own => "own",
            Self::OtherSession => "session",
            Self::Outside => "outside",
            Self::Overflow => "overflow",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Lane {
    pub kind: LaneKind,
    /// What the diagram prints on top: `a`, `echo`, `outside 127.0.0.1:5555`.
    pub label: String,
    pub addr: Option<SocketAddr>,
    /// The socket was closed; the lane stays for the arrows it already has.
    pub closed: bool,
}

/// What became of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Sent, and its receiving end has not reported it (yet).
    InFlight,
    /// Arrived.
    Delivered,
    /// The server read it and threw it away (the lossy server's simulated loss).
    Dropped,
    /// The kernel answered with ICMP port unreachable: ECONNREFUSED.
    Refused,
    /// A reply to an earlier attempt, arriving after a later attempt was sent.
    Late,
    /// A second reply to a request that was already answered or given up.
    Duplicate,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in flight",
            Self::Delivered => "delivered",
            Self::Dropped => "dropped",
            Self::Refused => "refused",
            Self::Late => "late",
            Self::Duplicate => "duplicate",
        }
    }
}

/// One datagram from one lane to another.
#[derive(Clone, Debug)]
pub struct Arrow {
    pub from: usize,
    pub to: usize,
    /// When the receiving end reported it (or when it was dropped or refused).
    pub t_end_us: Option<u64>,
    pub fate: Fate,
    pub len: usize,
    pub payload: Payload,
    pub attempt: Option<u32>,
    pub req: Option<String>,
    pub rtt_us: Option<u64>,
    /// For a retry: how long the previous attempt waited for an answer.
    pub waited_ms: Option<u64>,
    /// How long the server held the answer (the lossy server's delay).
    pub delay_ms: Option<u64>,
    /// The `seq` of the event that ended the arrow.
    pub end_seq: Option<u64>,
}

/// Something that happened on one lane.
#[derive(Clone, Debug, PartialEq)]
pub enum MarkKind {
    /// Attempt `attempt` goes out after waiting `waited_ms` for the previous one.
    Retry {
        attempt: u32,
        waited_ms: u64,
    },
    GiveUp {
        attempts: u32,
        waited_ms: u64,
    },
    /// ECONNREFUSED.
    Refused,
    Join,
    Leave,
    Evict,
    Broadcast {
        recipients: usize,
    },
    Configured,
    Opened,
    Closed,
    /// The relay skipped events for this page.
    Lagged {
        missed: u64,
    },
}

#[derive(Clone, Debug)]
pub struct Mark {
    pub lane: usize,
    pub kind: MarkKind,
    pub text: String,
}

#[derive(Clone, Debug)]
pub enum Body {
    Arrow(Arrow),
    Mark(Mark),
}

/// An arrow or a mark, in the order the relay stamped them.
#[derive(Clone, Debug)]
pub struct Item {
    /// Counts up from 0 for the life of the model; stable while the item is in the window.
    pub id: u64,
    pub seq: u64,
    pub t_us: u64,
    pub body: Body,
}

/// A line for the event log, the DOM mirror of the diagram.
#[derive(Clone, Debug, PartialEq)]
pub struct LogLine {
    pub seq: u64,
    pub t_us: u64,
    /// The event's `kind`, as on the wire.
    pub kind: &'static str,
    /// The socket name, for this page's sockets.
    pub socket: Option<String>,
    pub text: String,
    /// The diagram item this line is about, for click-to-select.
    pub item: Option<u64>,
}

/// Counters over everything ever seen, including items folded out of the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    pub sent: u64,
    pub received: u64,
    pub dropped: u64,
    pub retried: u64,
    pub duplicates: u64,
    pub late: u64,
    pub gave_up: u64,
    pub refused: u64,
    /// Datagrams the lossy server read, and how many of those it dropped.
    pub lossy_seen: u64,
    pub lossy_dropped: u64,
    /// The lossy server's drop rate as last configured, when known.
    pub configured_drop: Option<f64>,
    pub rtt_buckets: [u64; RTT_BUCKETS_US.len() + 1],
    pub rtt_count: u64,
    pub rtt_sum_us: u64,
    pub events: u64,
    /// Items that left the window.
    pub folded: u64,
    /// Events the relay skipped because this page fell behind.
    pub missed: u64,
}

impl Stats {
    /// The lossy server's measured drop rate, once it has seen a datagram.
    pub fn measured_loss(&self) -> Option<f64> {
        (self.lossy_seen > 0).then(|| self.lossy_dropped as f64 / self.lossy_seen as f64)
    }

    pub fn mean_rtt_us(&self) -> Option<u64> {
        self.rtt_sum_us.checked_div(self.rtt_count)
    }

    fn record_rtt(&mut self, rtt_us: u64) {
        let bucket = RTT_BUCKETS_US.iter().position(|&upper| rtt_us < upper).unwrap_or(RTT_BUCKETS_US.len());
        self.rtt_buckets[bucket] += 1;
        self.rtt_count += 1;
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(rtt_us);
    }
}

/// A chat client's liveness, as the liveness panel shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Heard from recently.
    Alive,
    /// Quiet for a while: it will be evicted when the countdown runs out.
    Silent,
    /// The server removed it.
    Evicted,
    /// It said `quit`.
    Left,
}

impl Liveness {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Alive => "alive",
            Self::Silent => "silent",
            Self::Evicted => "evicted",
            Self::Left => "left",
        }
    }
}

#[derive(Clone, Debug)]
struct ChatClient {
    lane: usize,
    last_heard_us: u64,
    timeout_ms: u64,
    /// Set once evicted or left, with when.
    gone: Option<(Liveness, u64)>,
}

/// One row of the liveness panel at a given `now`.
#[derive(Clone, Debug, PartialEq)]
pub struct ChatView {
    pub peer: SocketAddr,
    pub label: String,
    pub state: Liveness,
    /// Time since the client was last heard, at `now` (or at its end).
    pub silent_ms: u64,
    /// Time left before eviction; 0 once gone.
    pub countdown_ms: u64,
    pub timeout_ms: u64,
}

/// A client is shown as silent once it has been quiet for this share of its timeout.
const SILENT_SHARE: u64 = 4;

#[derive(Debug)]
pub struct Model {
    /// This page's session, from `hello`.
    pub session: Option<String>,
    pub servers: Vec<(ServerName, SocketAddr)>,
    lanes: Vec<Lane>,
    by_addr: HashMap<SocketAddr, usize>,
    by_socket: HashMap<(String, String), usize>,
    items: VecDeque<Item>,
    next_id: u64,
    window: usize,
    in_flight: HashMap<(usize, usize), VecDeque<u64>>,
    /// The wait that preceded the next attempt, per socket lane, from `client_retry`.
    retry_wait: HashMap<usize, u64>,
    /// The arrow of the latest datagram each server read from each peer. The driver reports
    /// every read as `server_recv`, and the lossy server then reports a drop of the same
    /// datagram: the drop turns that arrow's fate rather than drawing a second one.
    last_read: HashMap<(usize, usize), u64>,
    /// When each socket last sent a datagram without retries or request IDs that is still
    /// unanswered. The relay measures RTT only for requests; for plain sends the page measures
    /// it from the events' timestamps, like the tutorial's first client.
    plain_sent: HashMap<usize, u64>,
    chat: Vec<(SocketAddr, ChatClient)>,
    stats: Stats,
    log: VecDeque<LogLine>,
    /// The newest `t_us` seen.
    pub latest_us: u64,
    /// The newest `seq` seen, which stamps marks of our own such as `lagged`.
    latest_seq: u64,
}

impl Default for Model {
    fn default() -> Self {
        Self::new(DEFAULT_WINDOW)
    }
}

impl Model {
    pub fn new(window: usize) -> Self {
        Self {
            session: None,
            servers: Vec::new(),
            lanes: Vec::new(),
            by_addr: HashMap::new(),
            by_socket: HashMap::new(),
            items: VecDeque::new(),
            next_id: 0,
            window: window.max(1),
            in_flight: HashMap::new(),
            retry_wait: HashMap::new(),
            last_read: HashMap::new(),
            plain_sent: HashMap::new(),
            chat: Vec::new(),
            stats: Stats::default(),
            log: VecDeque::new(),
            latest_us: 0,
            latest_seq: 0,
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn lanes(&self) -> &[Lane] {
        &self.lanes
    }

    pub fn items(&self) -> &VecDeque<Item> {
        &self.items
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The item with this id, if it is still in the window.
    pub fn item(&self, id: u64) -> Option<&Item> {
        let first = self.items.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        self.items.get(index)
    }

    /// Up to `max` of the log lines not taken yet, oldest first. The rest wait for the next
    /// call (the outbox keeps the newest [`LOG_OUTBOX`]), so a burst is spread over frames.
    pub fn take_log(&mut self, max: usize) -> std::collections::vec_deque::Drain<'_, LogLine> {
        let n = self.log.len().min(max);
        self.log.drain(..n)
    }

    /// Sets the lossy server's configured drop rate, e.g. from `/api/servers`.
    pub fn set_configured_drop(&mut self, drop: f64) {
        self.stats.configured_drop = Some(drop);
    }

    /// Applies one message from the relay.
    pub fn apply(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Hello(hello) => self.hello(hello),
            ServerMsg::Event(event) => self.event(event),
            ServerMsg::Lagged { missed } => {
                self.stats.missed += missed;
                let lane = self.lanes.iter().position(|l| l.kind == LaneKind::Own).unwrap_or(0);
                let text = format!("{missed} events skipped: this page fell behind");
                if !self.lanes.is_empty() {
                    let mark = Mark { lane, kind: MarkKind::Lagged { missed: *missed }, text: text.clone() };
                    let id = self.push(self.latest_seq, self.latest_us, Body::Mark(mark));
                    self.log_line(0, "lagged", None, text, Some(id));
                } else {
                    self.log_line(0, "lagged", None, text, None);
                }
            }
            ServerMsg::Error { code, message, .. } => {
                let code = serde_json::to_value(code).ok().and_then(|v| v.as_str().map(str::to_owned));
                let text = format!("error {}: {message}", code.unwrap_or_default());
                self.log_line(0, "error", None, text, None);
            }
            ServerMsg::Bye { reason } => {
                self.log_line(0, "bye", None, format!("the relay said goodbye: {reason}"), None);
            }
            ServerMsg::Batch { messages } => messages.iter().for_each(|m| self.apply(m)),
        }
    }

    /// A new session: this page's earlier sockets are gone with the old one.
    fn hello(&mut self, hello: &Hello) {
        self.session = Some(hello.session.clone());
        self.servers = hello.servers.iter().map(|(name, addr)| (*name, *addr)).collect();
        if let Some(drop) = hello.settings.get(&ServerName::Lossy).and_then(|s| s.drop) {
            self.stats.configured_drop = Some(drop);
        }
        for lane in &mut self.lanes {
            if lane.kind == LaneKind::Own {
                lane.closed = true;
            }
        }
        self.by_socket.retain(|_, lane| self.lanes[*lane].kind != LaneKind::Own);
        for (name, addr) in hello.servers.clone() {
            let lane = self.server_lane(name);
            self.by_addr.insert(addr, lane);
            self.lanes[lane].addr = Some(addr);
        }
    }

    fn server_lane(&mut self, name: ServerName) -> usize {
        let kind = LaneKind::Server(name);
        if let Some(i) = self.lanes.iter().position(|l| l.kind == kind) {
            return i;
        }
        self.add_lane(Lane { kind, label: name.as_str().to_owned(), addr: None, closed: false })
    }

    fn add_lane(&mut self, lane: Lane) -> usize {
        if self.lanes.len() >= MAX_LANES && !matches!(lane.kind, LaneKind::Server(_)) {
            if let Some(i) = self.lanes.iter().position(|l| l.kind == LaneKind::Overflow) {
                return i;
            }
            let overflow =
                Lane { kind: LaneKind::Overflow, label: "more clients".into(), addr: None, closed: false };
            self.lanes.push(overflow);
            return self.lanes.len() - 1;
        }
        self.lanes.push(lane);
        self.lanes.len() - 1
    }

    /// The lane of whoever uses `addr`, making an outside lane for a stranger.
    fn lane_of(&mut self, addr: SocketAddr) -> usize {
        if let Some(&lane) = self.by_addr.get(&addr) {
            return lane;
        }
        // A server bound to 0.0.0.0 is reached at 127.0.0.1 on the same port.
        if let Some(&(name, _)) =
            self.servers.iter().find(|(_, a)| a.port() == addr.port() && a.ip().is_unspecified())
        {
            let lane = self.server_lane(name);
            self.by_addr.insert(addr, lane);
            return lane;
        }
        let label = format!("outside {addr}");
        let lane = self.add_lane(Lane { kind: LaneKind::Outside, label, addr: Some(addr), closed: false });
        self.by_addr.insert(addr, lane);
        lane
    }

    /// The lane of a session's socket, creating it (at `addr`, when known).
    fn socket_lane(&mut self, session: &str, socket: &str, addr: Option<SocketAddr>) -> usize {
        let key = (session.to_owned(), socket.to_owned());
        if let Some(&lane) = self.by_socket.get(&key) {
            if let Some(addr) = addr {
                self.by_addr.insert(addr, lane);
            }
            return lane;
        }
        let own = self.session.as_deref() == Some(session);
        // The socket may have spoken to a server before we learnt its name (projector mode).
        let existing = addr.and_then(|a| self.by_addr.get(&a).copied());
        let lane = match existing {
            Some(lane) if self.lanes[lane].kind == LaneKind::Outside => lane,
            _ => self.add_lane(Lane { kind: LaneKind::Outside, label: String::new(), addr, closed: false }),
        };
        if self.lanes[lane].kind != LaneKind::Overflow {
            let l = &mut self.lanes[lane];
            l.kind = if own { LaneKind::Own } else { LaneKind::OtherSession };
            l.label = if own {
                socket.to_owned()
            } else {
                let short: String = session.chars().take(4).collect();
                format!("{socket}@{short}")
            };
            l.closed = false;
            if addr.is_some() {
                l.addr = addr;
            }
        }
        if let Some(addr) = addr {
            self.by_addr.insert(addr, lane);
        }
        self.by_socket.insert(key, lane);
        lane
    }

    fn label(&self, lane: usize) -> &str {
        self.lanes.get(lane).map_or("?", |l| l.label.as_str())
    }

    fn push(&mut self, seq: u64, t_us: u64, body: Body) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.items.push_back(Item { id, seq, t_us, body });
        while self.items.len() > self.window {
            self.items.pop_front();
            self.stats.folded += 1;
        }
        id
    }

    fn log_line(
        &mut self,
        seq: u64,
        kind: &'static str,
        socket: Option<&str>,
        text: String,
        item: Option<u64>,
    ) {
        if self.log.len() >= LOG_OUTBOX {
            self.log.pop_front();
        }
        let t_us = self.latest_us;
        self.log.push_back(LogLine { seq, t_us, kind, socket: socket.map(str::to_owned), text, item });
    }

    /// Starts an arrow. Toward a lane that reports nothing (an outside client), it is
    /// delivered at once; otherwise it waits for its receiving end.
    fn send_arrow(&mut self, event: &Event, from: usize, to: usize, arrow: Arrow) -> u64 {
        let reports = !matches!(self.lanes[to].kind, LaneKind::Outside | LaneKind::Overflow);
        let mut arrow = arrow;
        if !reports {
            // Nobody reports its arrival: on loopback, take it as received, as the outside
            // client's own sends are counted as sent.
            arrow.fate = Fate::Delivered;
            arrow.t_end_us = Some(event.t_us);
            self.stats.received += 1;
        }
        let id = self.push(event.seq, event.t_us, Body::Arrow(arrow));
        if reports {
            let queue = self.in_flight.entry((from, to)).or_default();
            if queue.len() >= MAX_IN_FLIGHT {
                queue.pop_front();
            }
            queue.push_back(id);
        }
        id
    }

    /// Ends the oldest arrow in flight from `from` to `to`, if one is still in the window.
    fn arrive(&mut self, from: usize, to: usize, event: &Event, fate: Fate) -> Option<u64> {
        let first = self.items.front().map_or(0, |i| i.id);
        let queue = self.in_flight.get_mut(&(from, to))?;
        while let Some(id) = queue.pop_front() {
            if id < first {
                continue;
            }
            let index = usize::try_from(id - first).ok()?;
            if let Some(Item { body: Body::Arrow(arrow), .. }) = self.items.get_mut(index) {
                arrow.fate = fate;
                arrow.t_end_us = Some(event.t_us);
                arrow.end_seq = Some(event.seq);
                return Some(id);
            }
        }
        None
    }

    fn arrow_mut(&mut self, id: u64) -> Option<&mut Arrow> {
        let first = self.items.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        match self.items.get_mut(index) {
            Some(Item { body: Body::Arrow(arrow), .. }) => Some(arrow),
            _ => None,
        }
    }

    fn mark(&mut self, event: &Event, lane: usize, kind: MarkKind, text: &str) -> u64 {
        let mark = Mark { lane, kind, text: text.to_owned() };
        self.push(event.seq, event.t_us, Body::Mark(mark))
    }

    fn own_socket<'a>(&self, session: &str, socket: &'a str) -> Option<&'a str> {
        (self.session.as_deref() == Some(session)).then_some(socket)
    }

    fn chat_heard(&mut self, peer: SocketAddr, lane: usize, t_us: u64, timeout_ms: Option<u64>) {
        if let Some((_, c)) = self.chat.iter_mut().find(|(p, _)| *p == peer) {
            c.last_heard_us = t_us;
            c.lane = lane;
            c.gone = None;
            if let Some(t) = timeout_ms {
                c.timeout_ms = t;
            }
            return;
        }
        if self.chat.len() >= MAX_CHAT_CLIENTS {
            // Forget the longest-gone client first, else the longest-silent one.
            let oldest = self
                .chat
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, c))| (c.gone.is_none(), c.last_heard_us))
                .map(|(i, _)| i);
            if let Some(i) = oldest {
                self.chat.remove(i);
            }
        }
        let client =
            ChatClient { lane, last_heard_us: t_us, timeout_ms: timeout_ms.unwrap_or(10_000), gone: None };
        self.chat.push((peer, client));
    }

    fn chat_gone(&mut self, peer: SocketAddr, state: Liveness, t_us: u64) {
        if let Some((_, c)) = self.chat.iter_mut().find(|(p, _)| *p == peer) {
            c.gone = Some((state, t_us));
        }
    }

    /// The liveness panel at `now_us` (the relay's clock).
    pub fn chat_clients(&self, now_us: u64) -> Vec<ChatView> {
        self.chat
            .iter()
            .map(|(peer, c)| {
                let timeout_us = c.timeout_ms.saturating_mul(1000);
                let (state, until) = match c.gone {
                    Some((state, at)) => (state, at),
                    None => {
                        let quiet = now_us.saturating_sub(c.last_heard_us);
                        let state = if quiet * SILENT_SHARE >= timeout_us {
                            Liveness::Silent
                        } else {
                            Liveness::Alive
                        };
                        (state, now_us)
                    }
                };
                let silent_us = until.saturating_sub(c.last_heard_us);
                let countdown_us = if c.gone.is_some() { 0 } else { timeout_us.saturating_sub(silent_us) };
                ChatView {
                    peer: *peer,
                    label: self.label(c.lane).to_owned(),
                    state,
                    silent_ms: silent_us / 1000,
                    countdown_ms: countdown_us / 1000,
                    timeout_ms: c.timeout_ms,
                }
            })
            .collect()
    }

    fn event(&mut self, event: &Event) {
        self.stats.events += 1;
        self.latest_us = self.latest_us.max(event.t_us);
        self.latest_seq = self.latest_seq.max(event.seq);
        let seq = event.seq;
        match &event.kind {
            EventKind::ClientOpen { session, socket, local, remote, server, connect } => {
                let lane = self.socket_lane(session, socket, Some(*local));
                let target = match server {
                    Some(name) => {
                        let l = self.server_lane(*name);
                        self.by_addr.entry(*remote).or_insert(l);
                        name.as_str().to_owned()
                    }
                    None => {
                        let l = self.lane_of(*remote);
                        self.lanes[l].label = format!("target {remote}");
                        remote.to_string()
                    }
                };
                let how = if *connect { "connected" } else { "unconnected (sendto)" };
                let text = format!("{} opened on {local}, {how}, aimed at {target}", self.label(lane));
                let id = self.mark(event, lane, MarkKind::Opened, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_open", own, text, Some(id));
            }
            EventKind::ClientClose { session, socket } => {
                let lane = self.socket_lane(session, socket, None);
                self.lanes[lane].closed = true;
                let text = format!("{} closed", self.label(lane));
                let id = self.mark(event, lane, MarkKind::Closed, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_close", own, text, Some(id));
            }
            EventKind::ClientSend { session, socket, from, to, len, payload, attempt, req } => {
                self.stats.sent += 1;
                let lane = self.socket_lane(session, socket, Some(*from));
                let target = self.lane_of(*to);
                let waited_ms = match attempt {
                    Some(a) if *a > 1 => self.retry_wait.remove(&lane),
                    _ => None,
                };
                if attempt.is_none() && req.is_none() {
                    self.plain_sent.insert(lane, event.t_us);
                }
                let arrow = Arrow {
                    from: lane,
                    to: target,
                    t_end_us: None,
                    fate: Fate::InFlight,
                    len: *len,
                    payload: payload.clone(),
                    attempt: *attempt,
                    req: req.clone(),
                    rtt_us: None,
                    waited_ms,
                    delay_ms: None,
                    end_seq: None,
                };
                let id = self.send_arrow(event, lane, target, arrow);
                let mut text =
                    format!("{} → {}: {} ({len} B)", self.label(lane), self.label(target), preview(payload));
                if let Some(a) = attempt {
                    text.push_str(&format!(", attempt {a}"));
                }
                if let Some(w) = waited_ms {
                    text.push_str(&format!(" after waiting {w} ms"));
                }
                if let Some(r) = req {
                    text.push_str(&format!(", request #{r}"));
                }
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_send", own, text, Some(id));
            }
            EventKind::ClientRecv { session, socket, from, to, len, payload, attempt, req, rtt_us } => {
                self.stats.received += 1;
                let lane = self.socket_lane(session, socket, Some(*to));
                let source = self.lane_of(*from);
                let plain = self.plain_sent.remove(&lane).filter(|_| rtt_us.is_none() && req.is_none());
                let rtt_us = &rtt_us.or(plain.map(|sent| event.t_us.saturating_sub(sent)));
                if let Some(rtt) = rtt_us {
                    self.stats.record_rtt(*rtt);
                }
                let id =
                    self.receive(event, source, lane, Fate::Delivered, *len, payload, *attempt, req, *rtt_us);
                let mut text =
                    format!("{} → {}: {} ({len} B)", self.label(source), self.label(lane), preview(payload));
                if let Some(r) = req {
                    text.push_str(&format!(", answers #{r}"));
                }
                if let Some(rtt) = rtt_us {
                    text.push_str(&format!(", RTT {}", ms_text(*rtt)));
                }
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_recv", own, text, Some(id));
            }
            EventKind::ClientDuplicate { session, socket, from, to, len, payload, req, attempt, reason } => {
                self.stats.duplicates += 1;
                let fate = match reason {
                    DuplicateReason::Late => {
                        self.stats.late += 1;
                        Fate::Late
                    }
                    DuplicateReason::Duplicate => Fate::Duplicate,
                };
                let lane = self.socket_lane(session, socket, Some(*to));
                let source = self.lane_of(*from);
                let tag = Some(req.clone());
                let id = self.receive(event, source, lane, fate, *len, payload, Some(*attempt), &tag, None);
                let what = match reason {
                    DuplicateReason::Late => "LATE reply",
                    DuplicateReason::Duplicate => "DUPLICATE reply",
                };
                let text = format!(
                    "{} → {}: {what} to #{} (attempt {attempt}), not taken as the answer",
                    self.label(source),
                    self.label(lane),
                    req
                );
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_duplicate", own, text, Some(id));
            }
            EventKind::ClientRetry { session, socket, attempt, delay_ms, next_wait_ms } => {
                self.stats.retried += 1;
                let lane = self.socket_lane(session, socket, None);
                self.retry_wait.insert(lane, *delay_ms);
                let text = format!(
                    "{}: no answer after {delay_ms} ms, retry {attempt} (next wait {next_wait_ms} ms)",
                    self.label(lane)
                );
                let kind = MarkKind::Retry { attempt: *attempt, waited_ms: *delay_ms };
                let id = self.mark(event, lane, kind, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_retry", own, text, Some(id));
            }
            EventKind::ClientGiveup { session, socket, attempts, waited_ms, give_up_ms } => {
                self.stats.gave_up += 1;
                let lane = self.socket_lane(session, socket, None);
                self.retry_wait.remove(&lane);
                let text = format!(
                    "{}: gave up after {attempts} attempts and {waited_ms} ms (limit {give_up_ms} ms): \
                     I think the server is down",
                    self.label(lane)
                );
                let kind = MarkKind::GiveUp { attempts: *attempts, waited_ms: *waited_ms };
                let id = self.mark(event, lane, kind, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_giveup", own, text, Some(id));
            }
            EventKind::ClientRefused { session, socket, peer } => {
                self.stats.refused += 1;
                let lane = self.socket_lane(session, socket, None);
                let target = self.lane_of(*peer);
                // The ICMP error answers the latest datagram this socket sent there.
                let latest = self.items.iter().rev().take(200).find_map(|item| match &item.body {
                    Body::Arrow(a) if a.from == lane && a.to == target => Some(item.id),
                    _ => None,
                });
                if let Some(arrow) = latest.and_then(|id| self.arrow_mut(id)) {
                    arrow.fate = Fate::Refused;
                    arrow.t_end_us = Some(event.t_us);
                    arrow.end_seq = Some(seq);
                }
                let text = format!("{}: ECONNREFUSED, nothing listens at {peer}", self.label(lane));
                let id = self.mark(event, lane, MarkKind::Refused, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_refused", own, text, Some(id));
            }
            EventKind::ServerRecv { server, from, to, len, payload } => {
                let lane = self.server_lane(*server);
                self.by_addr.entry(*to).or_insert(lane);
                let peer = self.lane_of(*from);
                if *server == ServerName::Lossy {
                    self.stats.lossy_seen += 1;
                }
                let id = match self.arrive(peer, lane, event, Fate::Delivered) {
                    Some(id) => id,
                    None => {
                        // Nobody we watch reported sending it: an outside client.
                        self.stats.sent += 1;
                        let arrow = plain_arrow(peer, lane, *len, payload, Some(event.t_us), Fate::Delivered);
                        self.push(seq, event.t_us, Body::Arrow(arrow))
                    }
                };
                self.last_read.insert((peer, lane), id);
                let text =
                    format!("{} read {} ({len} B) from {}", server, preview(payload), self.label(peer));
                self.log_line(seq, "server_recv", None, text, Some(id));
            }
            EventKind::ServerSend { server, from, to, len, payload, delay_ms } => {
                let lane = self.server_lane(*server);
                self.by_addr.entry(*from).or_insert(lane);
                let peer = self.lane_of(*to);
                let mut arrow = plain_arrow(lane, peer, *len, payload, None, Fate::InFlight);
                arrow.delay_ms = *delay_ms;
                let id = self.send_arrow(event, lane, peer, arrow);
                let mut text = format!("{server} → {}: {} ({len} B)", self.label(peer), preview(payload));
                if let Some(d) = delay_ms {
                    text.push_str(&format!(" after holding it {d} ms"));
                }
                self.log_line(seq, "server_send", None, text, Some(id));
            }
            EventKind::ServerDrop { server, from, len, reason, .. } => {
                self.stats.dropped += 1;
                let lane = self.server_lane(*server);
                let peer = self.lane_of(*from);
                if *server == ServerName::Lossy {
                    self.stats.lossy_dropped += 1;
                }
                let read = self.last_read.remove(&(peer, lane));
                let turned = read.and_then(|id| {
                    let arrow = self.arrow_mut(id)?;
                    arrow.fate = Fate::Dropped;
                    Some(id)
                });
                let id = match turned.or_else(|| self.arrive(peer, lane, event, Fate::Dropped)) {
                    Some(id) => id,
                    None => {
                        let empty = Payload::default();
                        let arrow = plain_arrow(peer, lane, *len, &empty, Some(event.t_us), Fate::Dropped);
                        self.push(seq, event.t_us, Body::Arrow(arrow))
                    }
                };
                let why = match reason {
                    protocol::DropReason::Loss => "simulated loss",
                    protocol::DropReason::Shed => "too many answers waiting",
                };
                let text = format!("{server} DROPPED {len} B from {} ({why})", self.label(peer));
                self.log_line(seq, "server_drop", None, text, Some(id));
            }
            EventKind::ServerRefused { server, peer } => {
                let lane = self.server_lane(*server);
                let who = peer.map_or_else(|| "a peer".to_owned(), |p| p.to_string());
                let text = format!("{server}: ECONNREFUSED from {who}");
                let id = self.mark(event, lane, MarkKind::Refused, &text);
                self.log_line(seq, "server_refused", None, text, Some(id));
            }
            EventKind::ChatJoin { server, peer, clients, timeout_ms } => {
                let lane = self.server_lane(*server);
                let peer_lane = self.lane_of(*peer);
                self.chat_heard(*peer, peer_lane, event.t_us, Some(*timeout_ms));
                let text = format!(
                    "{server}: {} joined ({clients} live, evicted after {} s of silence)",
                    self.label(peer_lane),
                    secs(*timeout_ms)
                );
                let id = self.mark(event, lane, MarkKind::Join, &text);
                self.log_line(seq, "chat_join", None, text, Some(id));
            }
            EventKind::ChatHeartbeat { server, peer, timeout_ms } => {
                let peer_lane = self.lane_of(*peer);
                self.chat_heard(*peer, peer_lane, event.t_us, Some(*timeout_ms));
                let text = format!(
                    "{server}: heartbeat from {}, alive for {} s more",
                    self.label(peer_lane),
                    secs(*timeout_ms)
                );
                self.log_line(seq, "chat_heartbeat", None, text, None);
            }
            EventKind::ChatLeave { server, peer, clients } => {
                let lane = self.server_lane(*server);
                let peer_lane = self.lane_of(*peer);
                self.chat_gone(*peer, Liveness::Left, event.t_us);
                let text = format!("{server}: {} left ({clients} live)", self.label(peer_lane));
                let id = self.mark(event, lane, MarkKind::Leave, &text);
                self.log_line(seq, "chat_leave", None, text, Some(id));
            }
            EventKind::ChatEvict { server, peer, silent_ms, clients } => {
                let lane = self.server_lane(*server);
                let peer_lane = self.lane_of(*peer);
                self.chat_gone(*peer, Liveness::Evicted, event.t_us);
                let text = format!(
                    "{server}: EVICTED {} after {} s of silence ({clients} live)",
                    self.label(peer_lane),
                    secs(*silent_ms)
                );
                let id = self.mark(event, lane, MarkKind::Evict, &text);
                self.log_line(seq, "chat_evict", None, text, Some(id));
            }
            EventKind::ChatBroadcast { server, from, recipients, len, payload } => {
                let lane = self.server_lane(*server);
                let sender = self.lane_of(*from);
                self.chat_heard(*from, sender, event.t_us, None);
                // The chat server sends the copies silently; draw the fan-out to every live
                // client that reports nothing itself. This page's sockets draw their own copy
                // when their `client_recv` arrives.
                let quiet: Vec<usize> = self
                    .chat
                    .iter()
                    .filter(|(_, c)| c.gone.is_none())
                    .map(|(_, c)| c.lane)
                    .filter(|l| matches!(self.lanes[*l].kind, LaneKind::Outside | LaneKind::Overflow))
                    .collect();
                for peer in quiet {
                    let arrow = plain_arrow(lane, peer, *len, payload, Some(event.t_us), Fate::Delivered);
                    self.push(seq, event.t_us, Body::Arrow(arrow));
                }
                let text = format!(
                    "{server}: broadcast {} from {} to {recipients} clients",
                    preview(payload),
                    self.label(sender)
                );
                let id = self.mark(event, lane, MarkKind::Broadcast { recipients: *recipients }, &text);
                self.log_line(seq, "chat_broadcast", None, text, Some(id));
            }
            EventKind::ChatRefused { server, peer, limit } => {
                let lane = self.server_lane(*server);
                let text = format!("{server}: turned away {peer}, already {limit} clients");
                let id = self.mark(event, lane, MarkKind::Refused, &text);
                self.log_line(seq, "chat_refused", None, text, Some(id));
            }
            EventKind::ChatEnd { server, clients } => {
                let lane = self.server_lane(*server);
                let text = format!("{server}: stopping, sent `end` to {clients} clients");
                let id = self.mark(event, lane, MarkKind::Leave, &text);
                self.log_line(seq, "chat_end", None, text, Some(id));
            }
            EventKind::ServerConfigured { server, setting, value } => {
                if *server == ServerName::Lossy && setting == "drop" {
                    self.stats.configured_drop = Some(*value);
                }
                let lane = self.server_lane(*server);
                let text = format!("{server}: {setting} set to {value}");
                let id = self.mark(event, lane, MarkKind::Configured, &text);
                self.log_line(seq, "server_configured", None, text, Some(id));
            }
        }
    }

    /// A socket received a datagram: end the arrow the server started, or draw a fresh one.
    #[allow(clippy::too_many_arguments)]
    fn receive(
        &mut self,
        event: &Event,
        source: usize,
        lane: usize,
        fate: Fate,
        len: usize,
        payload: &Payload,
        attempt: Option<u32>,
        req: &Option<String>,
        rtt_us: Option<u64>,
    ) -> u64 {
        match self.arrive(source, lane, event, fate) {
            Some(id) => {
                if let Some(arrow) = self.arrow_mut(id) {
                    arrow.attempt = attempt;
                    arrow.req.clone_from(req);
                    arrow.rtt_us = rtt_us;
                }
                id
            }
            None => {
                let mut arrow = plain_arrow(source, lane, len, payload, Some(event.t_us), fate);
                arrow.attempt = attempt;
                arrow.req.clone_from(req);
                arrow.rtt_us = rtt_us;
                arrow.end_seq = Some(event.seq);
                self.push(event.seq, event.t_us, Body::Arrow(arrow))
            }
        }
    }
}

fn plain_arrow(
    from: usize,
    to: usize,
    len: usize,
    payload: &Payload,
    t_end_us: Option<u64>,
    fate: Fate,
) -> Arrow {
    Arrow {
        from,
        to,
        t_end_us,
        fate,
        len,
        payload: payload.clone(),
        attempt: None,
        req: None,
        rtt_us: None,
        waited_ms: None,
        delay_ms: None,
        end_seq: None,
    }
}

/// A short quoted preview of a payload for labels and the log.
pub fn preview(payload: &Payload) -> String {
    const MAX: usize = 24;
    match (&payload.text, &payload.hex) {
        (Some(text), _) => {
            let clean: String = text.chars().map(|c| if c.is_control() { '·' } else { c }).collect();
            let mut short: String = clean.chars().take(MAX).collect();
            if clean.chars().count() > MAX || payload.truncated {
                short.push('…');
            }
            format!("\"{short}\"")
        }
        (None, Some(hex)) => {
            let mut short: String = hex.chars().take(MAX).collect();
            if hex.len() > MAX || payload.truncated {
                short.push('…');
            }
            format!("0x{short}")
        }
        (None, None) => "(bytes not shown)".to_owned(),
    }
}

/// The payload's previewed bytes.
pub fn payload_bytes(payload: &Payload) -> Vec<u8> {
    match (&payload.text, &payload.hex) {
        (Some(text), _) => text.as_bytes().to_vec(),
        (None, Some(hex)) => hex
            .as_bytes()
            .chunks(2)
            .filter_map(|pair| std::str::from_utf8(pair).ok().and_then(|p| u8::from_str_radix(p, 16).ok()))
            .collect(),
        (None, None) => Vec::new(),
    }
}

/// Bytes as spaced hex pairs, as a hex dump shows them.
pub fn hex_dump(bytes: &[u8]) -> String {
    let hex = protocol::to_hex(bytes);
    let pairs: Vec<&str> = hex.as_bytes().chunks(2).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    pairs.join(" ")
}

/// Microseconds as milliseconds with sensible precision: `0.31 ms`, `12.4 ms`, `250 ms`.
pub fn ms_text(us: u64) -> String {
    let ms = us as f64 / 1000.0;
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 100.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn secs(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if ms.is_multiple_of(1000) { format!("{s:.0}") } else { format!("{s:.1}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::Limits;
    use std::collections::BTreeMap;

    const ECHO: &str = "127.0.0.1:10004";
    const LOSSY: &str = "127.0.0.1:1060";
    const CHAT: &str = "127.0.0.1:9998";
    const SOCK: &str = "127.0.0.1:50000";

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    fn hello() -> ServerMsg {
        ServerMsg::Hello(Hello {
            version: 1,
            session: "me".into(),
            servers: BTreeMap::from([
                (ServerName::Echo, addr(ECHO)),
                (ServerName::Lossy, addr(LOSSY)),
                (ServerName::Chat, addr(CHAT)),
            ]),
            settings: BTreeMap::from([(
                ServerName::Lossy,
                protocol::message::ServerSettings { drop: Some(0.25), ..Default::default() },
            )]),
            limits: Limits {
                sessions: 64,
                sockets_per_session: 16,
                sends_per_sec: 200,
                datagram_bytes: 8192,
                heartbeat_min_ms: 100,
                pending_requests: 32,
                chat_clients: 100,
                preview_bytes: 256,
            },
        })
    }

    /// Feeds events with increasing `seq`.
    struct Feed {
        model: Model,
        seq: u64,
    }

    impl Feed {
        fn new() -> Self {
            Self::with_window(DEFAULT_WINDOW)
        }

        fn with_window(window: usize) -> Self {
            let mut model = Model::new(window);
            model.apply(&hello());
            Feed { model, seq: 0 }
        }

        fn at(&mut self, t_ms: u64, kind: EventKind) {
            self.seq += 1;
            let event = Event { seq: self.seq, t_us: t_ms * 1000, kind };
            self.model.apply(&ServerMsg::Event(event));
        }

        fn open(&mut self, socket: &str, local: &str, server: ServerName, remote: &str) {
            self.at(
                0,
                EventKind::ClientOpen {
                    session: "me".into(),
                    socket: socket.into(),
                    local: addr(local),
                    remote: addr(remote),
                    server: Some(server),
                    connect: true,
                },
            );
        }

        fn arrows(&self) -> Vec<Arrow> {
            self.model
                .items()
                .iter()
                .filter_map(|i| match &i.body {
                    Body::Arrow(a) => Some(a.clone()),
                    Body::Mark(_) => None,
                })
                .collect()
        }

        fn marks(&self) -> Vec<MarkKind> {
            self.model
                .items()
                .iter()
                .filter_map(|i| match &i.body {
                    Body::Mark(m) => Some(m.kind.clone()),
                    Body::Arrow(_) => None,
                })
                .collect()
        }

        fn lane(&self, label: &str) -> usize {
            self.model.lanes().iter().position(|l| l.label == label).expect("lane exists")
        }
    }

    fn send(socket: &str, to: &str, text: &str, attempt: Option<u32>, req: Option<&str>) -> EventKind {
        EventKind::ClientSend {
            session: "me".into(),
            socket: socket.into(),
            from: addr(SOCK),
            to: addr(to),
            len: text.len(),
            payload: Payload::preview(text.as_bytes()),
            attempt,
            req: req.map(str::to_owned),
        }
    }

    fn server_recv(server: ServerName, at: &str, from: &str, text: &str) -> EventKind {
        EventKind::ServerRecv {
            server,
            from: addr(from),
            to: addr(at),
            len: text.len(),
            payload: Payload::preview(text.as_bytes()),
        }
    }

    fn server_send(server: ServerName, at: &str, to: &str, text: &str) -> EventKind {
        EventKind::ServerSend {
            server,
            from: addr(at),
            to: addr(to),
            len: text.len(),
            payload: Payload::preview(text.as_bytes()),
            delay_ms: None,
        }
    }

    fn recv(from: &str, text: &str, rtt_us: Option<u64>) -> EventKind {
        EventKind::ClientRecv {
            session: "me".into(),
            socket: "a".into(),
            from: addr(from),
            to: addr(SOCK),
            len: text.len(),
            payload: Payload::preview(text.as_bytes()),
            attempt: rtt_us.map(|_| 1),
            req: None,
            rtt_us,
        }
    }

    #[test]
    fn echo_round_trip_pairs_sends_with_receipts() {
        let mut f = Feed::new();
        f.open("a", SOCK, ServerName::Echo, ECHO);
        f.at(10, send("a", ECHO, "hello", None, None));
        f.at(11, server_recv(ServerName::Echo, ECHO, SOCK, "hello"));
        f.at(12, server_send(ServerName::Echo, ECHO, SOCK, "hello"));
        // No request ID, so no RTT from the relay: the page measures it, 13 ms - 10 ms.
        f.at(13, recv(ECHO, "hello", None));

        let arrows = f.arrows();
        assert_eq!(arrows.len(), 2, "one arrow per datagram: {arrows:?}");
        let (a, echo) = (f.lane("a"), f.lane("echo"));
        assert_eq!((arrows[0].from, arrows[0].to, arrows[0].fate), (a, echo, Fate::Delivered));
        assert_eq!(arrows[0].t_end_us, Some(11_000));
        assert_eq!((arrows[1].from, arrows[1].to, arrows[1].fate), (echo, a, Fate::Delivered));
        assert_eq!(arrows[1].rtt_us, Some(3_000));
        assert_eq!(f.model.lanes()[a].kind, LaneKind::Own);

        let stats = f.model.stats();
        assert_eq!((stats.sent, stats.received, stats.rtt_count), (1, 1, 1));
        assert_eq!(stats.rtt_buckets[RTT_BUCKETS_US.iter().position(|&b| b == 4_000).expect("bucket")], 1);

        let log: Vec<LogLine> = f.model.take_log(usize::MAX).collect();
        let kinds: Vec<&str> = log.iter().map(|l| l.kind).collect();
        assert_eq!(kinds, ["client_open", "client_send", "server_recv", "server_send", "client_recv"]);
        assert_eq!(log[4].socket.as_deref(), Some("a"));
        assert!(log[4].text.contains("\"hello\""), "{:?}", log[4]);
        assert!(f.model.take_log(usize::MAX).next().is_none(), "the log is handed out once");
    }

    #[test]
    fn drops_retries_and_give_up_are_marked_with_their_waits() {
        let mut f = Feed::new();
        f.open("a", SOCK, ServerName::Lossy, LOSSY);
        let mut t = 0;
        for (attempt, wait) in [(1, 0), (2, 100), (3, 200)] {
            t += wait;
            if attempt > 1 {
                f.at(
                    t,
                    EventKind::ClientRetry {
                        session: "me".into(),
                        socket: "a".into(),
                        attempt,
                        delay_ms: wait,
                        next_wait_ms: wait * 2,
                    },
                );
            }
            f.at(t, send("a", LOSSY, "ping", Some(attempt), None));
            f.at(t, server_recv(ServerName::Lossy, LOSSY, SOCK, "ping"));
            f.at(
                t,
                EventKind::ServerDrop {
                    server: ServerName::Lossy,
                    from: addr(SOCK),
                    to: addr(LOSSY),
                    len: 4,
                    reason: protocol::DropReason::Loss,
                },
            );
        }
        f.at(
            700,
            EventKind::ClientGiveup {
                session: "me".into(),
                socket: "a".into(),
                attempts: 3,
                waited_ms: 700,
                give_up_ms: 700,
            },
        );

        let arrows = f.arrows();
        assert_eq!(arrows.len(), 3);
        assert!(arrows.iter().all(|a| a.fate == Fate::Dropped));
        let waits: Vec<Option<u64>> = arrows.iter().map(|a| a.waited_ms).collect();
        assert_eq!(waits, [None, Some(100), Some(200)]);
        let marks = f.marks();
        assert!(marks.contains(&MarkKind::Retry { attempt: 2, waited_ms: 100 }));
        assert!(marks.contains(&MarkKind::Retry { attempt: 3, waited_ms: 200 }));
        assert!(marks.contains(&MarkKind::GiveUp { attempts: 3, waited_ms: 700 }));

        let stats = f.model.stats();
        assert_eq!((stats.sent, stats.dropped, stats.retried, stats.gave_up), (3, 3, 2, 1));
        assert_eq!(stats.measured_loss(), Some(1.0));
    }

    #[test]
    fn late_and_duplicate_replies_are_marked_apart_from_the_answer() {
        let mut f = Feed::new();
        f.open("a", SOCK, ServerName::Lossy, LOSSY);
        for (t, attempt) in [(0, 1), (100, 2)] {
            let req = format!("1-{attempt}");
            f.at(t, send("a", LOSSY, "#x ping", Some(attempt), Some(&req)));
            f.at(t, server_recv(ServerName::Lossy, LOSSY, SOCK, "#x ping"));
        }
        for (t, attempt, reason) in [(300, 1, DuplicateReason::Late), (400, 2, DuplicateReason::Duplicate)] {
            f.at(t, server_send(ServerName::Lossy, LOSSY, SOCK, "#x 4"));
            f.at(
                t,
                EventKind::ClientDuplicate {
                    session: "me".into(),
                    socket: "a".into(),
                    from: addr(LOSSY),
                    to: addr(SOCK),
                    len: 4,
                    payload: Payload::preview(b"#x 4"),
                    req: format!("1-{attempt}"),
                    attempt,
                    reason,
                },
            );
        }
        let fates: Vec<Fate> = f.arrows().iter().map(|a| a.fate).collect();
        assert_eq!(fates, [Fate::Delivered, Fate::Delivered, Fate::Late, Fate::Duplicate]);
        assert_eq!((f.model.stats().duplicates, f.model.stats().late), (2, 1));
        let log: Vec<LogLine> = f.model.take_log(usize::MAX).collect();
        assert!(log.iter().any(|l| l.kind == "client_duplicate" && l.text.contains("LATE")));
    }

    #[test]
    fn econnrefused_ends_the_latest_arrow_to_that_peer() {
        let mut f = Feed::new();
        let target = "127.0.0.1:9";
        f.at(
            0,
            EventKind::ClientOpen {
                session: "me".into(),
                socket: "t".into(),
                local: addr(SOCK),
                remote: addr(target),
                server: None,
                connect: true,
            },
        );
        f.at(1, send("t", target, "hi", None, None));
        f.at(2, EventKind::ClientRefused { session: "me".into(), socket: "t".into(), peer: addr(target) });
        let arrows = f.arrows();
        assert_eq!(arrows.len(), 1);
        assert_eq!(arrows[0].fate, Fate::Refused);
        assert!(f.marks().contains(&MarkKind::Refused));
        assert_eq!(f.model.stats().refused, 1);
    }

    #[test]
    fn liveness_counts_down_from_an_explicit_now_until_eviction() {
        let mut f = Feed::new();
        let peer = addr(SOCK);
        f.open("c", SOCK, ServerName::Chat, CHAT);
        f.at(1_000, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 2_000 });
        let view = |f: &Feed, now_ms: u64| f.model.chat_clients(now_ms * 1000)[0].clone();

        let v = view(&f, 1_200);
        assert_eq!(
            (v.state, v.silent_ms, v.countdown_ms, v.label.as_str()),
            (Liveness::Alive, 200, 1_800, "c")
        );
        f.at(1_400, EventKind::ChatHeartbeat { server: ServerName::Chat, peer, timeout_ms: 2_000 });
        assert_eq!(view(&f, 1_500).countdown_ms, 1_900);
        // Quiet for a quarter of the timeout: silent, still counting down.
        let v = view(&f, 2_000);
        assert_eq!((v.state, v.countdown_ms), (Liveness::Silent, 1_400));
        assert_eq!(view(&f, 3_400).countdown_ms, 0);
        f.at(3_400, EventKind::ChatEvict { server: ServerName::Chat, peer, silent_ms: 2_000, clients: 0 });
        let v = view(&f, 9_000);
        assert_eq!((v.state, v.silent_ms, v.countdown_ms), (Liveness::Evicted, 2_000, 0));
        assert!(f.marks().contains(&MarkKind::Evict));
        // Heard again: back to alive.
        f.at(9_000, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 2_000 });
        assert_eq!(view(&f, 9_000).state, Liveness::Alive);
    }

    #[test]
    fn outside_clients_get_their_own_lane_and_broadcasts_fan_out_to_them() {
        let mut f = Feed::new();
        let nc = "127.0.0.1:40000";
        let py = "127.0.0.1:40001";
        f.at(1, server_recv(ServerName::Echo, ECHO, nc, "hi from nc"));
        f.at(2, server_send(ServerName::Echo, ECHO, nc, "hi from nc"));
        let outside = f.lane(&format!("outside {nc}"));
        assert_eq!(f.model.lanes()[outside].kind, LaneKind::Outside);
        let arrows = f.arrows();
        assert_eq!(arrows.len(), 2);
        assert!(arrows.iter().all(|a| a.fate == Fate::Delivered), "nobody else reports: {arrows:?}");
        let stats = f.model.stats();
        assert_eq!((stats.sent, stats.received), (1, 1), "an outside client's datagram and its echo count");

        for peer in [nc, py] {
            let peer = addr(peer);
            f.at(3, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 10_000 });
        }
        f.at(
            4,
            EventKind::ChatBroadcast {
                server: ServerName::Chat,
                from: addr(nc),
                recipients: 2,
                len: 2,
                payload: Payload::preview(b"yo"),
            },
        );
        let chat = f.lane("chat");
        let fan: Vec<usize> = f.arrows().iter().filter(|a| a.from == chat).map(|a| a.to).collect();
        assert_eq!(fan.len(), 2, "one arrow per recipient");
        assert!(f.marks().contains(&MarkKind::Broadcast { recipients: 2 }));
    }

    #[test]
    fn the_window_is_bounded_and_old_items_fold_into_counts() {
        let mut f = Feed::with_window(100);
        f.open("a", SOCK, ServerName::Echo, ECHO);
        for i in 0..1_000 {
            f.at(i, send("a", ECHO, "x", None, None));
            f.at(i, server_recv(ServerName::Echo, ECHO, SOCK, "x"));
        }
        assert_eq!(f.model.items().len(), 100);
        let stats = f.model.stats();
        assert_eq!(stats.sent, 1_000);
        assert_eq!(stats.folded, 1_001 - 100);
        assert!(f.arrows().iter().all(|a| a.fate == Fate::Delivered), "pairing survives folding");
        let first = f.model.items().front().expect("items").id;
        assert!(f.model.item(first).is_some());
        assert!(f.model.item(first - 1).is_none(), "folded items are gone");
        assert!(f.model.take_log(usize::MAX).count() <= LOG_OUTBOX);
    }

    #[test]
    fn configured_loss_sits_next_to_measured_loss() {
        let mut f = Feed::new();
        assert_eq!(f.model.stats().configured_drop, Some(0.25), "from hello's settings");
        f.at(
            0,
            EventKind::ServerConfigured { server: ServerName::Lossy, setting: "drop".into(), value: 0.5 },
        );
        assert_eq!(f.model.stats().configured_drop, Some(0.5));
        assert_eq!(f.model.stats().measured_loss(), None);
        f.at(1, server_recv(ServerName::Lossy, LOSSY, SOCK, "a"));
        f.at(1, server_recv(ServerName::Lossy, LOSSY, SOCK, "b"));
        f.at(
            2,
            EventKind::ServerDrop {
                server: ServerName::Lossy,
                from: addr(SOCK),
                to: addr(LOSSY),
                len: 1,
                reason: protocol::DropReason::Loss,
            },
        );
        assert_eq!(f.model.stats().measured_loss(), Some(0.5));
    }

    #[test]
    fn a_new_session_closes_the_old_sockets_lanes() {
        let mut f = Feed::new();
        f.open("a", SOCK, ServerName::Echo, ECHO);
        let a = f.lane("a");
        f.model.apply(&hello());
        assert!(f.model.lanes()[a].closed);
        f.model.apply(&ServerMsg::Lagged { missed: 7 });
        assert_eq!(f.model.stats().missed, 7);
    }

    #[test]
    fn previews_and_hex_dumps() {
        assert_eq!(preview(&Payload::preview(b"hi\n")), "\"hi·\"");
        assert_eq!(preview(&Payload::preview(&[0, 255])), "0x00ff");
        assert_eq!(payload_bytes(&Payload::preview(&[0, 255])), [0, 255]);
        assert_eq!(hex_dump(b"AB"), "41 42");
        assert_eq!(ms_text(310), "0.31 ms");
        assert_eq!(ms_text(250_000), "250 ms");
    }
}
