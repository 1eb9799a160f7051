//! What the page knows about the traffic, in plain Rust: no web-sys, no clock, no DOM.
//!
//! The socket code feeds every [`ServerMsg`] to [`Model::apply`]; the frame loop reads the model
//! and draws it. Nothing here draws or waits, so the tests (`model/tests.rs`) drive it natively
//! with hand-written events and an explicit `now`, the same sans-I/O shape as the relay's servers.
//!
//! The model turns events into a sequence diagram:
//! - **lanes**: one per endpoint. This page's sockets (a crowd's members share their crowd's
//!   lane), other sessions' sockets (projector mode), outside clients such as `nc -u`, and each
//!   server;
//! - **arrows**: one per datagram, found by the name the relay gives it (`dg`): a `client_send`
//!   and the `server_recv` of it are one arrow, as are a `server_send` and the `client_recv` of
//!   it, and an answer's `reply_to` names the request it answers. Nothing is paired by order or
//!   timing ([`matching`] says why). An arrow ends where its datagram ended: delivered, dropped
//!   by the server, vanished (nothing listened), or never sent (the kernel refused it);
//! - **marks**: things that happen on one lane: retries, give-ups, ECONNREFUSED, chat joins,
//!   evictions, broadcasts, configuration changes;
//! - **the link** in front of each server (`link_*` events, [`wire`]): each decision is put on
//!   the arrow of the datagram it names. Lost on the link, copied, held or reordered is drawn
//!   where it happened, apart from a server that drops on purpose (`server_drop`).
//!
//! Memory is bounded: the model keeps the last [`Model::window`] items and folds older ones
//! into the counters of [`Stats`], which count everything ever seen.
//!
//! Parts: [`matching`] (the index by `dg` and the reply chain), [`text`] (previews, byte
//! counts and arrow labels), [`wire`] (the link's decisions, and its settings for the panel),
//! [`stats`] (the counters and the RTT histogram) and [`liveness`] (each chat client's
//! countdown).

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};

use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;

use protocol::{
    Dg, DuplicateReason, Event, EventKind, Hello, Links, Payload, Scope, ServerMsg, ServerName, VanishReason,
};

mod liveness;
mod matching;
mod stats;
mod text;
mod wire;

#[cfg(test)]
mod tests;

use crate::text::{fill, word};
use liveness::ChatClient;
pub use liveness::{ChatView, Liveness};
use matching::DgIndex;
pub use stats::{RTT_BUCKETS_US, Stats};
use text::secs;
pub use text::{
    close_code_text, cut_text, hex_dump, link_short, link_summary, misattributed_text, ms_text,
    payload_bytes, preview, thousands,
};
pub use text::{decimal, fixed, short};
pub use wire::{
    FieldError, LINK_FIELDS, LinkHeld, LinkLoss, LinkPath, link_patch, link_values, lossy_patch, millis,
    retry_params,
};

/// Items kept for drawing by default: about half a second of a 5,000 events/s storm, or
/// several minutes of a lesson.
pub const DEFAULT_WINDOW: usize = 2_000;

/// Clients' lanes open at once, at most (an open socket's, or an outside client's with traffic in
/// the last [`OUTSIDE_HELD_US`]). Past this, new endpoints share one "more clients" lane, so a
/// busy classroom cannot squeeze the diagram without end.
pub const MAX_LANES: usize = 32;

/// How long an outside client's lane keeps its place after its last datagram: a class's `nc`
/// windows come and go, each on a new port, and the ones gone quiet make room for newcomers.
/// (A projector shows about 5 s at its first zoom.)
pub const OUTSIDE_HELD_US: u64 = 10_000_000;

/// While the diagram is full, how long strangers go straight to the shared lane before one
/// asks again for a lane of its own, at most: sooner if an outside client's place runs out
/// first, or a socket closes.
const OVERFLOW_RETRY_US: u64 = 1_000_000;

/// Lanes the page knows, at most: past this, a new endpoint takes the lane of one closed and
/// out of the window, so a class's morning of sockets cannot grow memory without end.
pub const MAX_KNOWN_LANES: usize = 256;

/// Event log lines waiting for the frame loop; older ones are counted, not kept.
const LOG_OUTBOX: usize = 500;

/// Who a lane stands for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LaneKind {
    /// One of the relay's servers, or `nobody`, the port where nothing listens.
    Server(ServerName),
    /// A socket (or crowd) this page opened.
    Own,
    /// A socket of another browser session, seen in projector mode.
    OtherSession,
    /// Anything else that talks to a server: `nc -u`, a Python script, an allowed target.
    Outside,
    /// The lane shared by endpoints past [`MAX_LANES`].
    Overflow,
}

impl LaneKind {
    /// The largest [`LaneKind::rank`].
    pub const LAST_RANK: u8 = 4;

    /// Left-to-right order in the diagram: clients on the left, servers on the right, from 0
    /// to [`LaneKind::LAST_RANK`].
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

    /// Whether this is a client's lane, of a socket or an outside client, not a server's or
    /// the shared one.
    fn is_client(&self) -> bool {
        !matches!(self, Self::Server(_) | Self::Overflow)
    }

    /// Whether this endpoint reports what it receives. An outside client's arrivals are never
    /// seen; a server's and a relay socket's are.
    fn reports(&self) -> bool {
        !matches!(self, Self::Outside | Self::Overflow)
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

impl Lane {
    /// Whether the diagram gives this lane a column even with nothing of it in view: an open
    /// socket of the relay's or a server. A closed socket's lane, and an outside client's
    /// (which never says it has gone), show only while their traffic does.
    pub fn keeps_column(&self) -> bool {
        !self.closed && self.kind.reports()
    }
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
    /// It reached no socket: nothing listens at its destination (`client_vanished`).
    Vanished,
    /// The kernel refused to send it, e.g. `EMSGSIZE` for more than 65,507 bytes: nothing left
    /// the socket (`client_send_failed`).
    NotSent,
    /// A reply to an earlier attempt, arriving after a later attempt was sent.
    Late,
    /// A second reply to a request that was already answered or given up.
    Duplicate,
    /// The link lost it on its way to the server (`link_drop`, `in`): the server never saw it.
    LostIn,
    /// The link lost it on its way from the server (`link_drop`, `out`): the server sent it,
    /// and nobody got it.
    LostOut,
}

impl Fate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in flight",
            Self::Delivered => "delivered",
            Self::Dropped => "dropped",
            Self::Vanished => "vanished",
            Self::NotSent => "not sent",
            Self::Late => "late",
            Self::Duplicate => "duplicate",
            Self::LostIn => "lost-link-in",
            Self::LostOut => "lost-link-out",
        }
    }
}

/// One datagram from one lane to another.
#[derive(Clone, Debug, PartialEq)]
pub struct Arrow {
    pub from: usize,
    pub to: usize,
    /// When the receiving end reported it (or when it was dropped, vanished or refused).
    pub t_end_us: Option<u64>,
    pub fate: Fate,
    pub len: usize,
    /// The bytes, as the receiving socket got them once it has (a chat copy's `ack: …`).
    pub payload: Payload,
    /// The relay's name for this datagram, carried by every event about it.
    pub dg: Option<Dg>,
    /// For a server's answer: the datagram it answers (for a chat copy, the message copied).
    pub reply_to: Option<Dg>,
    /// Which member of a crowd sent or received it.
    pub member: Option<u32>,
    /// For a send, its attempt; for a reply, the attempt the client took it as the answer to.
    pub attempt: Option<u32>,
    pub req: Option<String>,
    /// For a reply: the attempt it really answers, found by following `reply_to` to the
    /// request. It differs from `attempt` when a client without request IDs took an answer to
    /// an earlier attempt as the answer to its latest one.
    pub answers: Option<u32>,
    /// The round trip: from the send of the attempt this reply really answers, when the
    /// relay's names say which; else as the client measured it.
    pub rtt_us: Option<u64>,
    /// The client's own RTT when it is wrong: measured from the attempt it took the reply for.
    pub claimed_rtt_us: Option<u64>,
    /// Bytes the receiving socket's read kept: less than `len` when its buffer was smaller.
    pub kept: Option<usize>,
    /// For a datagram the kernel refused to send: the errno's name, and its words.
    pub errno: Option<String>,
    pub error: Option<String>,
    /// For a retry: how long the previous attempt waited for an answer.
    pub waited_ms: Option<u64>,
    /// How long the server held the answer (the lossy server's delay).
    pub delay_ms: Option<u64>,
    /// The `seq` of the event that ended the arrow.
    pub end_seq: Option<u64>,
    /// What the link in front of the server did to it, if anything. Boxed: most datagrams
    /// cross a perfect link, and their arrows stay small.
    pub link: Option<Box<LinkPath>>,
    /// A server's answer to the link's copy of a request (its `reply_to` names the copy): the
    /// server answered the same request twice.
    pub answers_copy: bool,
    /// A reply that arrived after the answer to a request sent later: out of order.
    pub out_of_order: bool,
}

impl Arrow {
    /// A datagram from `from` to `to`, not yet ended.
    pub(crate) fn new(from: usize, to: usize, len: usize, payload: &Payload) -> Self {
        Arrow {
            from,
            to,
            t_end_us: None,
            fate: Fate::InFlight,
            len,
            payload: payload.clone(),
            dg: None,
            reply_to: None,
            member: None,
            attempt: None,
            req: None,
            answers: None,
            rtt_us: None,
            claimed_rtt_us: None,
            kept: None,
            errno: None,
            error: None,
            waited_ms: None,
            delay_ms: None,
            end_seq: None,
            link: None,
            answers_copy: false,
            out_of_order: false,
        }
    }

    /// Ends the arrow with `fate` at the event `seq`, `t_us`.
    fn end(&mut self, fate: Fate, seq: u64, t_us: u64) {
        self.fate = fate;
        self.t_end_us = Some(t_us);
        self.end_seq = Some(seq);
    }

    /// The bytes a read kept, when it cut the datagram short.
    pub fn cut(&self) -> Option<usize> {
        self.kept.filter(|kept| *kept < self.len)
    }

    /// `(taken as, really answers)` when the client took this reply as the answer to another
    /// attempt than the one it answers.
    pub fn misattributed(&self) -> Option<(u32, u32)> {
        match (self.attempt, self.answers) {
            (Some(taken), Some(answers)) if taken != answers => Some((taken, answers)),
            _ => None,
        }
    }
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
    /// A chat client, on lane `who`, joined, left or was evicted: the mark, on the server's
    /// lane, names it.
    Join {
        who: usize,
    },
    Leave {
        who: usize,
    },
    Evict {
        who: usize,
    },
    Broadcast {
        recipients: usize,
    },
    Configured,
    /// A direction of a server's link has new settings.
    LinkConfigured {
        dir: protocol::Dir,
    },
    Opened,
    Closed,
    /// A lesson's own chat room ended (a sandbox), not the class's chat server.
    RoomClosed,
    /// The relay skipped events for this page.
    Lagged {
        missed: u64,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Mark {
    pub lane: usize,
    pub kind: MarkKind,
    pub text: String,
}

#[derive(Clone, Debug, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "most items are arrows: boxing each would cost an allocation per datagram to save room only on marks"
)]
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
    pub kind: Cow<'static, str>,
    /// The socket name, for this page's sockets.
    pub socket: Option<String>,
    pub text: String,
    /// The diagram item this line is about, for click-to-select.
    pub item: Option<u64>,
    /// The datagram the event is about.
    pub dg: Option<Dg>,
    /// For `link_duplicate`: the copy's own name.
    pub copy: Option<Dg>,
}

/// What [`Model::reply`] recorded on a reply's arrow, for the stats and the log line: a few
/// numbers rather than a copy of the arrow, for every datagram a socket receives.
#[derive(Clone, Copy, Debug, Default)]
struct Reply {
    cut: Option<usize>,
    misattributed: Option<(u32, u32)>,
    rtt_us: Option<u64>,
    claimed_rtt_us: Option<u64>,
}

/// A part of a log line put into words later: see [`LogText`].
#[derive(Clone, Copy, Debug)]
enum Part {
    /// A lane's label, with the crowd member when there is one: `k[3]`.
    Who(usize, Option<u32>),
    Server(ServerName),
    /// The preview of the line's payload.
    Preview,
    Num(usize),
    /// Milliseconds, said in seconds.
    Secs(u64),
}

/// A log line's words. A class's projector hears some 20,000 events a second and the log
/// shows a few hundred lines a second, so the lines of the common events (datagrams,
/// heartbeats) keep their parts and are put into words only when they are handed out
/// ([`Model::take_log`]); the others are written at once. The parts name lanes, whose labels
/// are read then: before a label changes, or the language, the lines still waiting are
/// written out ([`Model::seal_log`]), so each says what it would have said at once.
#[derive(Clone, Debug)]
enum LogText {
    Ready(String),
    Parts {
        /// The words' key, `{0}`… filled with the parts in order.
        key: &'static str,
        parts: [Part; 5],
        used: usize,
        payload: Payload,
        /// Written already, after the filled words: an attempt, an RTT.
        tail: String,
    },
}

impl From<String> for LogText {
    fn from(text: String) -> Self {
        Self::Ready(text)
    }
}

impl LogText {
    /// The datagram line `key` of `parts` (at most five), with `tail` after it.
    fn parts(key: &'static str, parts: &[Part], payload: &Payload, tail: String) -> Self {
        let mut all = [Part::Num(0); 5];
        let used = parts.len().min(all.len());
        all[..used].copy_from_slice(&parts[..used]);
        Self::Parts { key, parts: all, used, payload: payload.clone(), tail }
    }

    /// The words, with the lanes' labels as they are now.
    fn words(self, lanes: &[Lane]) -> String {
        let (key, parts, used, payload, tail) = match self {
            Self::Ready(text) => return text,
            Self::Parts { key, parts, used, payload, tail } => (key, parts, used, payload, tail),
        };
        let mut said: Vec<String> = Vec::with_capacity(used);
        for part in &parts[..used] {
            said.push(match *part {
                Part::Who(lane, member) => who(lanes, lane, member),
                Part::Server(name) => name.to_string(),
                Part::Preview => preview(&payload),
                Part::Num(n) => n.to_string(),
                Part::Secs(ms) => secs(ms),
            });
        }
        let mut args: Vec<&dyn std::fmt::Display> = Vec::with_capacity(used);
        for s in &said {
            args.push(s);
        }
        let mut text = fill(key, &args);
        text.push_str(&tail);
        text
    }
}

/// A line waiting in the outbox: a [`LogLine`] whose words may not be written yet.
#[derive(Clone, Debug)]
struct Pending {
    seq: u64,
    t_us: u64,
    kind: Cow<'static, str>,
    socket: Option<String>,
    text: LogText,
    item: Option<u64>,
    dg: Option<Dg>,
    copy: Option<Dg>,
    /// A crowd's members opening or closing, folded into this one line: its lane, and how
    /// many members the line speaks for.
    fold: Option<(usize, u32)>,
}

/// A lane's label, with the crowd member when there is one: `k[3]`.
fn who(lanes: &[Lane], lane: usize, member: Option<u32>) -> String {
    let label = lanes.get(lane).map_or("?", |l| l.label.as_str());
    match member {
        Some(m) => format!("{label}[{m}]"),
        None => label.to_owned(),
    }
}

/// The relay's messages one at a time. A projector subscribes with `batch: true`, and the
/// relay then packs many events into one WebSocket frame (`batch`); a saved recording keeps
/// those frames as they came. This is the one place a batch is opened: the page's socket and
/// a recording (`replay`) both read their messages through it, so [`Model::apply`] and
/// everything else see single messages only.
pub fn unbatch(msg: ServerMsg) -> Vec<ServerMsg> {
    fn open(msg: ServerMsg, out: &mut Vec<ServerMsg>) {
        match msg {
            ServerMsg::Batch { messages } => {
                out.reserve(messages.len());
                for inner in messages {
                    open(inner, out);
                }
            }
            msg => out.push(msg),
        }
    }
    let mut out = Vec::new();
    open(msg, &mut out);
    out
}

#[derive(Debug)]
pub struct Model {
    /// This page's session, from `hello`.
    pub session: Option<String>,
    /// Every address `hello` named, `nobody` included.
    pub servers: Vec<(ServerName, SocketAddr)>,
    lanes: Vec<Lane>,
    by_addr: HashMap<SocketAddr, usize>,
    /// Each socket's lane, by session and then by socket name: looked up on every event of
    /// a socket, so without building a key.
    by_socket: HashMap<String, HashMap<String, usize>>,
    /// The crowd members open on each crowd's lane, so the lane closes with its last member.
    crowd_members: HashMap<usize, usize>,
    /// The most members each crowd's lane had open at once: the count its header shows.
    crowd_peak: HashMap<usize, usize>,
    /// Datagrams each crowd's lane sent and got: a crowd too busy to follow arrow by arrow is
    /// read by its counts.
    crowd_sent: HashMap<usize, usize>,
    crowd_got: HashMap<usize, usize>,
    items: VecDeque<Item>,
    /// Per lane, the newest item drawn on it, plus one (see [`Model::in_use`]).
    lane_seen: Vec<u64>,
    /// Until this `t_us`, strangers go to the shared lane without asking for one of their own.
    overflow_retry_us: u64,
    /// The shared lane, once made (it is never taken again).
    overflow: Option<usize>,
    next_id: u64,
    window: usize,
    /// The arrow of each datagram, by the relay's name for it.
    dgs: DgIndex,
    /// The wait that preceded the next attempt, per socket lane, from `client_retry`.
    retry_wait: HashMap<usize, u64>,
    /// Per socket lane, the newest request (by item id, so by send order) answered so far: an
    /// answer to an older one arrived out of order.
    newest_answered: HashMap<usize, u64>,
    chat: Vec<(SocketAddr, ChatClient)>,
    stats: Stats,
    /// The stats count events from this `t_us` on (`restart_stats`).
    stats_since_us: u64,
    log: VecDeque<Pending>,
    /// The newest `t_us` seen.
    pub latest_us: u64,
    /// When the datagrams a link holds now are due out (a hold of unknown length counts
    /// for a second): a live view keeps time running until then, so a wait stays drawn growing.
    pub holds_until_us: u64,
    /// The relay's clock now, as the page estimates it (the app sets it): the time of what the
    /// relay says without a time of its own, an error or its bye, which may come long after
    /// the newest event.
    pub now_us: u64,
    /// The newest `seq` seen, which stamps marks of our own such as `lagged`.
    latest_seq: u64,
    /// Each server's link, both directions, from `hello` and every `link_configured`.
    links: BTreeMap<ServerName, Links>,
    /// This page's sandbox links, where they differ from `links`: what its own changes (a
    /// lesson's, `"scope":"own"`) made them, from its own `link_configured` events.
    own_links: Vec<(ServerName, Links)>,
    /// Counts changes to `links` and `own_links`, so the panel redraws only when they change.
    links_revision: u64,
    /// The sessions with a server of their own (a sandbox), from `sandbox_open` until
    /// `sandbox_close`: a lesson's lossy server, a lesson's chat room.
    sandboxes: Vec<(ServerName, String)>,
    /// The session whose chat room (a sandbox) just closed: the relay sends that room's
    /// clients `end`, and its `chat_end` comes next, with nothing of the room's in between.
    closed_room: Option<String>,
    /// The `seq` of every event applied lately, so an event heard twice (the relay's history
    /// after live traffic, on subscribing again) is drawn once. Sorted, and trimmed to
    /// [`SEEN_SEQS`]: a plain `Vec`, as events mostly come in order (a `HashSet` would cost
    /// the bundle a new instantiation).
    seen: Vec<u64>,
}

/// How many recent `seq`s [`Model`] remembers: more than the relay's history of 5,000.
const SEEN_SEQS: u64 = 20_000;

/// A unit variant's name on the wire (`unknown_socket`, `link_drop`), or empty. Written as a
/// JSON string and unquoted: the string writer is in the bundle already, a `Value` one is not.
fn wire_name(value: &impl serde::Serialize) -> String {
    let json = serde_json::to_string(value).unwrap_or_default();
    json.trim_matches('"').to_owned()
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
            by_addr: HashMap::default(),
            by_socket: HashMap::default(),
            crowd_members: HashMap::default(),
            crowd_peak: HashMap::default(),
            crowd_sent: HashMap::default(),
            crowd_got: HashMap::default(),
            items: VecDeque::new(),
            lane_seen: Vec::new(),
            overflow_retry_us: 0,
            overflow: None,
            next_id: 0,
            window: window.max(1),
            dgs: DgIndex::default(),
            retry_wait: HashMap::default(),
            newest_answered: HashMap::default(),
            chat: Vec::new(),
            stats: Stats::default(),
            stats_since_us: 0,
            log: VecDeque::new(),
            latest_us: 0,
            holds_until_us: 0,
            now_us: 0,
            latest_seq: 0,
            links: BTreeMap::new(),
            own_links: Vec::new(),
            sandboxes: Vec::new(),
            closed_room: None,
            links_revision: 0,
            seen: Vec::new(),
        }
    }

    pub fn window(&self) -> usize {
        self.window
    }

    /// For a crowd's lane, how many members it had: many clients drawn as one lane, counted.
    pub fn crowd_size(&self, lane: usize) -> Option<usize> {
        self.crowd_peak.get(&lane).copied()
    }

    /// For a crowd's lane, the datagrams its members sent and got.
    pub fn crowd_traffic(&self, lane: usize) -> (usize, usize) {
        let count = |m: &HashMap<usize, usize>| m.get(&lane).copied().unwrap_or(0);
        (count(&self.crowd_sent), count(&self.crowd_got))
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

    /// Starts the stats again (a lesson's are its own), but for the events missed, which say
    /// the page fell behind at some point, and the lossy server's drop, which is a setting.
    /// Events from before `since_us` that arrive later are drawn but not counted.
    pub fn restart_stats(&mut self, since_us: u64) {
        let Stats { missed, configured_drop, .. } = self.stats;
        self.stats = Stats { missed, configured_drop, ..Stats::default() };
        self.stats_since_us = since_us;
    }

    /// The item with this id, if it is still in the window.
    pub fn item(&self, id: u64) -> Option<&Item> {
        let first = self.items.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        self.items.get(index)
    }

    /// The arrow with this item id, if it is still in the window.
    pub fn arrow(&self, id: u64) -> Option<&Arrow> {
        match self.item(id) {
            Some(Item { body: Body::Arrow(arrow), .. }) => Some(arrow),
            _ => None,
        }
    }

    /// Up to `max` of the log lines not taken yet, oldest first. The rest wait for the next
    /// call (the outbox keeps the newest [`LOG_OUTBOX`]), so a burst is spread over frames.
    pub fn take_log(&mut self, max: usize) -> impl Iterator<Item = LogLine> + '_ {
        let n = self.log.len().min(max);
        let lanes = &self.lanes;
        self.log.drain(..n).map(move |p| LogLine {
            seq: p.seq,
            t_us: p.t_us,
            kind: p.kind,
            socket: p.socket,
            text: p.text.words(lanes),
            item: p.item,
            dg: p.dg,
            copy: p.copy,
        })
    }

    /// Puts every line still waiting into words now: called before a lane's label changes,
    /// and by the page before its language does.
    pub fn seal_log(&mut self) {
        let lanes = &self.lanes;
        for line in &mut self.log {
            // Sealed, a crowd's line takes no more members: its words stay as they were said.
            line.fold = None;
            if matches!(line.text, LogText::Parts { .. }) {
                let text = std::mem::replace(&mut line.text, LogText::Ready(String::new()));
                line.text = LogText::Ready(text.words(lanes));
            }
        }
    }

    /// Each server's link as last announced (`hello.links`, then `link_configured`).
    pub fn links(&self) -> &BTreeMap<ServerName, Links> {
        &self.links
    }

    /// `server`'s link as this page's sockets meet it: its sandbox's, or the shared one.
    pub fn my_links(&self, server: ServerName) -> Links {
        let mine = self.own_links.iter().find(|(s, _)| *s == server).map(|(_, links)| links);
        mine.or_else(|| self.links.get(&server)).copied().unwrap_or_default()
    }

    /// Grows whenever [`Model::links`] or [`Model::my_links`] may have changed.
    pub fn links_revision(&self) -> u64 {
        self.links_revision
    }

    /// The relay closed the WebSocket with `code` and `reason`: logged in its words, so a page
    /// that reconnects never hides why (a frame too big to read is 1009). Returns the words
    /// for the banner, unless the close says nothing (the relay just went away).
    pub fn connection_closed(&mut self, code: u16, reason: &str) -> Option<String> {
        let text = text::close_text(code, reason)?;
        self.log_line(0, "ws_close", None, text.clone(), None);
        Some(text)
    }

    /// Sets the lossy server's configured drop rate, e.g. from `/api/servers`.
    pub fn set_configured_drop(&mut self, drop: f64) {
        self.stats.configured_drop = Some(drop);
    }

    /// Applies one message from the relay, as [`unbatch`] hands them out.
    pub fn apply(&mut self, msg: &ServerMsg) {
        match msg {
            ServerMsg::Hello(hello) => self.hello(hello),
            ServerMsg::Event(event) => self.event(event),
            ServerMsg::Lagged { missed } => {
                self.stats.missed += missed;
                // What was missed may be the `chat_end` that closed room was waiting for.
                self.closed_room = None;
                let lane = self.lanes.iter().position(|l| l.kind == LaneKind::Own).unwrap_or(0);
                let text = fill("lagged", &[missed]);
                if !self.lanes.is_empty() {
                    let mark = Mark { lane, kind: MarkKind::Lagged { missed: *missed }, text: text.clone() };
                    let id = self.push(self.latest_seq, self.latest_us, Body::Mark(mark));
                    self.log_line(0, "lagged", None, text, Some(id));
                } else {
                    self.log_line(0, "lagged", None, text, None);
                }
            }
            ServerMsg::Error { code, message, .. } => {
                let code = wire_name(code);
                let text = fill("error", &[&code, message]);
                self.log_now("error", text);
            }
            ServerMsg::Bye { reason } => self.log_now("bye", fill("bye", &[reason])),
            // Opened by `unbatch` before anything is applied: that is the one place batches are
            // unwrapped, so none reaches the model.
            ServerMsg::Batch { .. } => {}
        }
    }

    /// A new session: this page's earlier sockets are gone with the old one.
    fn hello(&mut self, hello: &Hello) {
        self.session = Some(hello.session.clone());
        self.links.clone_from(&hello.links);
        self.own_links.clear();
        self.links_revision += 1;
        self.servers = hello.servers.iter().map(|(name, addr)| (*name, *addr)).collect();
        if let Some(drop) = hello.settings.get(&ServerName::Lossy).and_then(|s| s.drop) {
            self.stats.configured_drop = Some(drop);
        }
        for lane in &mut self.lanes {
            if lane.kind == LaneKind::Own {
                lane.closed = true;
            }
        }
        for sockets in self.by_socket.values_mut() {
            sockets.retain(|_, lane| self.lanes[*lane].kind != LaneKind::Own);
        }
        // The old session's, now empty: a page that reconnects all morning keeps none.
        self.by_socket.retain(|_, sockets| !sockets.is_empty());
        for (name, addr) in hello.servers.clone() {
            // `nobody` gets its lane only once something is sent there.
            if name == ServerName::Nobody {
                continue;
            }
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
        let addr = self.servers.iter().find(|(n, _)| *n == name).map(|(_, a)| *a);
        self.add_lane(Lane { kind, label: name.as_str().to_owned(), addr, closed: false })
    }

    /// The lane of server `name`, which uses `addr`. A recording that starts after a socket's
    /// `client_open` (`GET /api/events.jsonl` of a busy relay, a projector's backlog) shows the
    /// socket's sends to an address it has not named yet: the stranger's lane they made there
    /// is the server's, and becomes it, so that one server is never drawn twice.
    fn server_at(&mut self, name: ServerName, addr: SocketAddr) -> usize {
        let kind = LaneKind::Server(name);
        match self.by_addr.get(&addr) {
            Some(&lane)
                if self.lanes[lane].kind == LaneKind::Outside
                    && !self.lanes.iter().any(|l| l.kind == kind) =>
            {
                // Not sealed: what the log said of that lane was this server all along.
                self.lanes[lane].kind = kind;
                self.lanes[lane].label = name.as_str().to_owned();
                lane
            }
            _ => {
                let lane = self.server_lane(name);
                self.by_addr.entry(addr).or_insert(lane);
                lane
            }
        }
    }

    /// Whether lane `i` stands for someone here at `now_us`: a server, an open socket, or an
    /// outside client (or the shared lane) with traffic, either way, in the [`OUTSIDE_HELD_US`]
    /// before. What the
    /// lanes' list names; the rest it counts.
    pub fn present(&self, i: usize, now_us: u64) -> bool {
        self.lanes.get(i).is_some_and(|l| {
            l.keeps_column()
                || (matches!(l.kind, LaneKind::Outside | LaneKind::Overflow) && self.busy_lately(i, now_us))
        })
    }

    /// Client lanes that hold a place under [`MAX_LANES`] (open sockets, and outside clients
    /// with traffic lately; closed sockets, servers and the shared lane do not count), and the
    /// `t_us` at which the first outside client's place runs out.
    fn client_places(&self) -> (usize, u64) {
        let (mut places, mut frees_at) = (0, u64::MAX);
        for (i, l) in self.lanes.iter().enumerate() {
            if !l.kind.is_client() || !self.present(i, self.latest_us) {
                continue;
            }
            places += 1;
            if !l.keeps_column()
                && let Some(item) = self.item(self.lane_seen[i] - 1)
            {
                frees_at = frees_at.min(item.t_us.saturating_add(OUTSIDE_HELD_US + 1));
            }
        }
        (places, frees_at)
    }

    /// Whether lane `i` had something drawn on it in the [`OUTSIDE_HELD_US`] before `now_us`
    /// (the relay's time), or was just taken.
    fn busy_lately(&self, i: usize, now_us: u64) -> bool {
        if !self.drawn_on(i) {
            return false;
        }
        match self.item(self.lane_seen[i] - 1) {
            Some(item) => item.t_us.saturating_add(OUTSIDE_HELD_US) >= now_us,
            None => true, // taken, with nothing drawn yet
        }
    }

    fn add_lane(&mut self, lane: Lane) -> usize {
        if lane.kind.is_client() {
            let n = self.lanes.len();
            let (places, frees_at) = self.client_places();
            let slot = if places >= MAX_LANES {
                self.overflow_retry_us = frees_at.min(self.latest_us.saturating_add(OVERFLOW_RETRY_US));
                None
            } else if n < MAX_KNOWN_LANES {
                Some(n)
            } else {
                (0..n).find(|&i| !self.in_use(i))
            };
            let Some(i) = slot else { return self.overflow_lane() };
            match self.lanes.get_mut(i) {
                Some(_) => {
                    self.forget_lane(i);
                    self.lanes[i] = lane;
                }
                None => self.lanes.push(lane),
            }
            // Taken from now, even before anything is drawn on it.
            self.seen_on(i, self.next_id);
            return i;
        }
        self.lanes.push(lane);
        self.lanes.len() - 1
    }

    /// The lane endpoints past [`MAX_LANES`] share.
    fn overflow_lane(&mut self) -> usize {
        if let Some(i) = self.overflow {
            return i;
        }
        let overflow =
            Lane { kind: LaneKind::Overflow, label: word("lane-more").into(), addr: None, closed: false };
        self.lanes.push(overflow);
        self.overflow = Some(self.lanes.len() - 1);
        self.lanes.len() - 1
    }

    /// Whether lane `i` is still to be seen: a server's or the shared one, an open socket's,
    /// one that something in the window is drawn on, one a chat client in the panel is on.
    fn in_use(&self, i: usize) -> bool {
        let lane = &self.lanes[i];
        lane.keeps_column()
            || !lane.kind.is_client()
            || self.drawn_on(i)
            || self.chat.iter().any(|(_, c)| c.lane == i)
    }

    /// Whether something in the window is drawn on lane `i` (or it was just taken).
    fn drawn_on(&self, i: usize) -> bool {
        let first = self.items.front().map_or(self.next_id, |item| item.id);
        self.lane_seen.get(i).is_some_and(|&seen| seen > first)
    }

    /// Forgets all that named `lane` before a new endpoint took it: a class goes through more
    /// sockets than [`MAX_KNOWN_LANES`] in a morning.
    fn forget_lane(&mut self, lane: usize) {
        // The log's lines still to be written name lanes by number: they say their words now.
        self.seal_log();
        self.by_addr.retain(|_, l| *l != lane);
        for sockets in self.by_socket.values_mut() {
            sockets.retain(|_, l| *l != lane);
        }
        self.by_socket.retain(|_, sockets| !sockets.is_empty());
        for counts in
            [&mut self.crowd_members, &mut self.crowd_peak, &mut self.crowd_sent, &mut self.crowd_got]
        {
            counts.remove(&lane);
        }
        self.retry_wait.remove(&lane);
        self.newest_answered.remove(&lane);
    }

    /// The lane of whoever uses `addr`, making an outside lane for a stranger.
    fn lane_of(&mut self, addr: SocketAddr) -> usize {
        if let Some(&lane) = self.by_addr.get(&addr) {
            return lane;
        }
        // One of the relay's addresses (`nobody`'s lane is made on first use), or a server
        // bound to 0.0.0.0, reached at 127.0.0.1 on the same port.
        if let Some(&(name, _)) = self
            .servers
            .iter()
            .find(|(_, a)| *a == addr || (a.port() == addr.port() && a.ip().is_unspecified()))
        {
            let lane = self.server_lane(name);
            self.by_addr.insert(addr, lane);
            return lane;
        }
        // A stranger is not remembered in the shared lane: once others have gone quiet, it
        // gets a lane of its own (asking at most once a second while there is no room).
        if self.latest_us < self.overflow_retry_us {
            return self.overflow_lane();
        }
        let label = fill("lane-outside", &[&addr]);
        let lane = self.add_lane(Lane { kind: LaneKind::Outside, label, addr: Some(addr), closed: false });
        if Some(lane) != self.overflow {
            self.by_addr.insert(addr, lane);
        }
        lane
    }

    /// Whose change a setting or a link was, and whose sockets meet it, when that is not
    /// simply everyone's by this page or the HTTP API: ` (by session ab12)` for another page's
    /// change for everyone, ` (this page's sockets only)` for this page's own (a lesson's), and
    /// ` (session ab12's sockets only)` for another's, sessions named as their sockets' lanes
    /// are. A class shares the servers, and a change in the middle of a lesson is explained, not
    /// a mystery. (A page that reconnected has a new session: its own changes from before, in
    /// a projector's backlog, read as another's.)
    fn whose(&self, by: Option<&str>, scope: Scope) -> String {
        let key = match (scope, self.is_mine(by)) {
            (Scope::Own, true) => "log-own",
            (Scope::Own, false) => "log-own-other",
            (Scope::All, false) if by.is_some() => "log-by-other",
            (Scope::All, _) => return String::new(),
        };
        let short: String = by.unwrap_or_default().chars().take(4).collect();
        fill(key, &[&short])
    }

    fn is_mine(&self, by: Option<&str>) -> bool {
        by.is_some() && self.session.as_deref() == by
    }

    /// Whether a change of `server` reaches this page's sockets: this page's own, or one for
    /// everyone, unless this page has a sandbox there (a lesson's server), which another's
    /// change for everyone leaves alone.
    pub fn reaches_me(&self, server: ServerName, by: Option<&str>, scope: Scope) -> bool {
        let sandboxed =
            || self.sandboxes.iter().any(|(s, session)| *s == server && self.is_mine(Some(session)));
        self.is_mine(by) || (scope == Scope::All && !sandboxed())
    }

    /// Whether a datagram from `peer`'s lane met the lossy server this page's loss figures
    /// are about: its own sandbox's, or else the shared one. A projector sees every page's
    /// lessons, and a lesson's own drop rate is not the class's.
    fn meets_my_lossy(&self, peer: usize) -> bool {
        match self
            .sandboxes
            .iter()
            .any(|(server, session)| *server == ServerName::Lossy && self.is_mine(Some(session)))
        {
            true => self.lanes[peer].kind == LaneKind::Own,
            false => self.sandbox_of(ServerName::Lossy, peer).is_none(),
        }
    }

    /// The session whose sandbox of `server` the socket of `lane` meets, if it meets one.
    fn sandbox_of(&self, server: ServerName, lane: usize) -> Option<&str> {
        if self.lanes[lane].kind == LaneKind::Overflow {
            return None; // many sockets, of many sessions: no one room
        }
        let mut theirs = self.sandboxes.iter().filter(|(s, _)| *s == server);
        let (_, session) = theirs.find(|(_, session)| {
            self.by_socket.get(session).is_some_and(|s| s.values().any(|&l| l == lane))
        })?;
        Some(session)
    }

    /// What a chat event says of the room it happened in, when that is another session's own
    /// (a lesson's, in its sandbox) rather than the class's: a projector sees every room, and
    /// each counts its own live clients.
    fn room(&self, server: ServerName, lane: usize) -> String {
        self.sandbox_of(server, lane).map_or_else(String::new, |session| self.room_of(session, false))
    }

    /// " (in session b7c9's own room)" for another session's room; for this page's own,
    /// nothing, or with `mine` " (in this page's own room)".
    fn room_of(&self, session: &str, mine: bool) -> String {
        match self.is_mine(Some(session)) {
            false => fill("log-room", &[&session.chars().take(4).collect::<String>()]),
            true if mine => word("log-room-mine").to_owned(),
            true => String::new(),
        }
    }

    /// The lane of a session's socket, creating it (at `addr`, when known).
    fn socket_lane(&mut self, session: &str, socket: &str, addr: Option<SocketAddr>) -> usize {
        if let Some(&lane) = self.by_socket.get(session).and_then(|s| s.get(socket)) {
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
            self.seal_log();
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
        self.by_socket.entry(session.to_owned()).or_default().insert(socket.to_owned(), lane);
        lane
    }

    /// A socket put in the shared lane while the diagram was full asks again for a lane of its
    /// own as it sends, as a stranger does: `socket_lane` then takes it for a new socket. (Not
    /// a crowd's members, who share their crowd's lane.)
    fn leave_the_shared_lane(&mut self, session: &str, socket: &str, addr: SocketAddr) {
        let Some(shared) = self.overflow else { return };
        if self.latest_us < self.overflow_retry_us {
            return;
        }
        let Some(sockets) = self.by_socket.get_mut(session) else { return };
        if sockets.get(socket) == Some(&shared) {
            sockets.remove(socket);
            self.by_addr.remove(&addr);
        }
    }

    fn label(&self, lane: usize) -> &str {
        self.lanes.get(lane).map_or("?", |l| l.label.as_str())
    }

    /// Item `id` is drawn on `lane`: the lane is in use while that item is in the window
    /// (kept as `id + 1`, 0 for never).
    fn seen_on(&mut self, lane: usize, id: u64) {
        if self.lane_seen.len() <= lane {
            self.lane_seen.resize(lane + 1, 0);
        }
        self.lane_seen[lane] = self.lane_seen[lane].max(id + 1);
    }

    /// A lane's label, with the crowd member when there is one: `k[3]`.
    fn who(&self, lane: usize, member: Option<u32>) -> String {
        who(&self.lanes, lane, member)
    }

    fn push(&mut self, seq: u64, t_us: u64, body: Body) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let (a, b) = match &body {
            Body::Arrow(arrow) => (arrow.from, arrow.to),
            Body::Mark(mark) => match mark.kind {
                MarkKind::Join { who } | MarkKind::Leave { who } | MarkKind::Evict { who } => {
                    (mark.lane, who)
                }
                _ => (mark.lane, mark.lane),
            },
        };
        self.seen_on(a, id);
        self.seen_on(b, id);
        self.items.push_back(Item { id, seq, t_us, body });
        while self.items.len() > self.window {
            self.items.pop_front();
            self.stats.folded += 1;
        }
        if let Some(first) = self.items.front().map(|i| i.id) {
            self.dgs.fold(first, self.window);
        }
        id
    }

    fn log_line(
        &mut self,
        seq: u64,
        kind: &'static str,
        socket: Option<&str>,
        text: impl Into<LogText>,
        item: Option<u64>,
    ) {
        self.log_dg(seq, kind, socket, text, item, None);
    }

    /// Logs what the relay says without a time of its own, at [`Model::now_us`].
    fn log_now(&mut self, kind: &'static str, text: String) {
        self.log_line(0, kind, None, text, None);
        if let Some(line) = self.log.back_mut() {
            line.t_us = line.t_us.max(self.now_us);
        }
    }

    fn log_dg(
        &mut self,
        seq: u64,
        kind: impl Into<Cow<'static, str>>,
        socket: Option<&str>,
        text: impl Into<LogText>,
        item: Option<u64>,
        dg: Option<Dg>,
    ) {
        if self.log.len() >= LOG_OUTBOX {
            self.log.pop_front();
        }
        let t_us = self.latest_us;
        let kind = kind.into();
        let socket = socket.map(str::to_owned);
        let text = text.into();
        self.log.push_back(Pending { seq, t_us, kind, socket, text, item, dg, copy: None, fold: None });
    }

    /// A crowd member's open or close: a hundred members opening at once say so in one line,
    /// "k: 100 members opened…", not a hundred. The line waiting last in the outbox takes the
    /// next member in, if it is the same crowd's same news; else the member's own line starts
    /// a fold. `many` words the folded line from the count.
    fn log_member(
        &mut self,
        (seq, kind, lane): (u64, &'static str, usize),
        socket: Option<&str>,
        text: String,
        item: Option<u64>,
        many: impl FnOnce(&str) -> String,
    ) {
        if let Some(line) = self.log.back_mut()
            && let Some((l, n)) = &mut line.fold
            && *l == lane
            && line.kind == kind
        {
            *n += 1;
            line.seq = seq;
            line.t_us = self.latest_us;
            line.item = item.or(line.item);
            line.text = LogText::Ready(many(&n.to_string()));
            return;
        }
        self.log_line(seq, kind, socket, text, item);
        if let Some(line) = self.log.back_mut() {
            line.fold = Some((lane, 1));
        }
    }

    /// Starts the arrow of datagram `dg`. A server's answer to an outside client is taken as
    /// delivered at once, as the outside client's requests are counted as sent: nobody reports
    /// its arrival, and the projector view would otherwise show every answer lost. Anything
    /// else waits for its receiving end to report it.
    fn send_arrow(&mut self, event: &Event, dg: Dg, arrow: Arrow) -> u64 {
        // Its arrival was reported first (events of two tasks): complete that arrow instead.
        if let Some(id) = self.dgs.arrow(dg)
            && let Some(arrived) = self.arrow_mut(id)
        {
            arrived.from = arrow.from;
            arrived.member = arrived.member.or(arrow.member);
            arrived.attempt = arrived.attempt.or(arrow.attempt);
            arrived.req = arrived.req.take().or(arrow.req);
            arrived.reply_to = arrow.reply_to;
            arrived.waited_ms = arrow.waited_ms;
            arrived.delay_ms = arrow.delay_ms;
            arrived.answers_copy = arrow.answers_copy;
            self.seen_on(arrow.from, id);
            return id;
        }
        let mut arrow = arrow;
        let to_outsider = matches!(self.lanes[arrow.from].kind, LaneKind::Server(_))
            && !self.lanes[arrow.to].kind.reports();
        if to_outsider {
            arrow.fate = Fate::Delivered;
            arrow.t_end_us = Some(event.t_us);
            self.stats.received += 1;
        }
        arrow.dg = Some(dg);
        let id = self.push(event.seq, event.t_us, Body::Arrow(arrow));
        self.dgs.name(dg, id);
        id
    }

    /// The arrow of datagram `dg`, while it is still in flight and in the window.
    fn in_flight(&mut self, dg: Dg) -> Option<u64> {
        let id = self.dgs.arrow(dg)?;
        self.arrow_mut(id).filter(|a| a.fate == Fate::InFlight).map(|_| id)
    }

    fn arrow_mut(&mut self, id: u64) -> Option<&mut Arrow> {
        let first = self.items.front()?.id;
        let index = usize::try_from(id.checked_sub(first)?).ok()?;
        match self.items.get_mut(index) {
            Some(Item { body: Body::Arrow(arrow), .. }) => Some(arrow),
            _ => None,
        }
    }

    /// Datagram `dg` arrived (or met its `fate`) at `to`: ends its arrow, or, if no send of it
    /// was seen (an outside sender, a send folded away, a link the relay left out), draws it
    /// unpaired, starting and ending now.
    ///
    /// `fresh` is the arrow to draw if none is in flight, and `payload` its bytes: they are
    /// copied only if they are drawn, not for the arrival of an arrow already there.
    fn arrival(&mut self, event: &Event, dg: Dg, fate: Fate, fresh: Arrow, payload: &Payload) -> u64 {
        if let Some(id) = self.in_flight(dg)
            && let Some(arrow) = self.arrow_mut(id)
        {
            arrow.end(fate, event.seq, event.t_us);
            // An arrow the link drew first (an outside client's datagram it held) learns its
            // bytes from the arrival.
            if arrow.payload == Payload::default() {
                arrow.payload.clone_from(payload);
            }
            return id;
        }
        let mut arrow = Arrow { dg: Some(dg), payload: payload.clone(), ..fresh };
        arrow.end(fate, event.seq, event.t_us);
        let id = self.push(event.seq, event.t_us, Body::Arrow(arrow));
        self.dgs.name(dg, id);
        id
    }

    /// What the reply on arrow `id` really answers, by its `reply_to`, if the request was sent
    /// by the socket (and member) that received it and is still in the window.
    fn answered(&self, id: u64, lane: usize, member: Option<u32>) -> Option<matching::Answered> {
        let mut request = self.dgs.arrow(self.arrow(id)?.reply_to?)?;
        // An answer to the link's copy of a request answers that request: its round trip
        // starts at the request's send.
        if let Some(original) = self.arrow(request).and_then(Arrow::copy_of).and_then(|dg| self.dgs.arrow(dg))
        {
            request = original;
        }
        matching::answered(self.item(request)?, lane, member)
    }

    /// Whether the reply `id` answers a request sent before one already answered on `lane`;
    /// marks its arrow if so.
    fn arrived_out_of_order(&mut self, id: u64, lane: usize) -> bool {
        let Some(request) = self.arrow(id).and_then(|a| a.reply_to).and_then(|dg| self.dgs.arrow(dg)) else {
            return false;
        };
        let newest = self.newest_answered.entry(lane).or_insert(request);
        let late = request < *newest;
        *newest = (*newest).max(request);
        if let (true, Some(arrow)) = (late, self.arrow_mut(id)) {
            arrow.out_of_order = true;
        }
        late
    }

    fn mark(&mut self, event: &Event, lane: usize, kind: MarkKind, text: &str) -> u64 {
        let mark = Mark { lane, kind, text: text.to_owned() };
        self.push(event.seq, event.t_us, Body::Mark(mark))
    }

    fn own_socket<'a>(&self, session: &str, socket: &'a str) -> Option<&'a str> {
        (self.session.as_deref() == Some(session)).then_some(socket)
    }

    fn event(&mut self, event: &Event) {
        if event.t_us >= self.stats_since_us {
            return self.draw_event(event);
        }
        // From before the stats restarted: a projector's backlog, arriving behind the lesson
        // the page began as it connected. Drawn, not counted; a setting it changed still holds.
        let counted = self.stats.clone();
        self.draw_event(event);
        self.stats = Stats { configured_drop: self.stats.configured_drop, ..counted };
    }

    fn draw_event(&mut self, event: &Event) {
        match self.seen.last() {
            Some(last) if *last >= event.seq => match self.seen.binary_search(&event.seq) {
                Ok(_) => return, // drawn already
                Err(at) => self.seen.insert(at, event.seq),
            },
            _ => self.seen.push(event.seq),
        }
        if self.seen.len() as u64 > 2 * SEEN_SEQS {
            self.seen.drain(..SEEN_SEQS as usize);
        }
        self.stats.events += 1;
        self.latest_us = self.latest_us.max(event.t_us);
        self.latest_seq = self.latest_seq.max(event.seq);
        let seq = event.seq;
        match &event.kind {
            EventKind::ClientOpen {
                session,
                socket,
                member,
                local,
                remote,
                server,
                connect,
                recv_buffer,
            } => {
                let known = self.by_socket.get(session).and_then(|s| s.get(socket)).copied();
                let lane = self.socket_lane(session, socket, Some(*local));
                // A crowd is one lane: it is marked opened once, when its first member opens.
                let first = known.is_none_or(|l| self.lanes[l].closed || member.is_none());
                if member.is_some() {
                    let open = self.crowd_members.entry(lane).or_default();
                    *open += 1;
                    let open = *open;
                    let peak = self.crowd_peak.entry(lane).or_default();
                    *peak = (*peak).max(open);
                }
                let target = match server {
                    Some(name) => {
                        self.server_at(*name, *remote);
                        name.as_str().to_owned()
                    }
                    None => {
                        let l = self.lane_of(*remote);
                        // An address nobody named yet is "target …"; one of the sockets' keeps
                        // its name (lesson 6's strangers aim at its sockets).
                        if self.lanes[l].kind == LaneKind::Outside {
                            self.seal_log();
                            self.lanes[l].label = fill("lane-target", &[remote]);
                        }
                        remote.to_string()
                    }
                };
                let how = word(if *connect { "open-connected" } else { "open-unconnected" });
                let mut text = fill("log-open", &[&self.who(lane, *member), local, &how, &target]);
                if let Some(bytes) = recv_buffer {
                    text.push_str(&fill("open-buffer", &[&thousands(*bytes)]));
                }
                let id = first.then(|| self.mark(event, lane, MarkKind::Opened, &text));
                let own = self.own_socket(session, socket);
                if member.is_some() {
                    let label = self.who(lane, None);
                    let buffer = recv_buffer.map(|b| fill("open-buffer", &[&thousands(b)]));
                    let many = |n: &str| {
                        let mut text = fill("log-crowd-open", &[&label, &n, &how, &target]);
                        text.push_str(buffer.as_deref().unwrap_or_default());
                        text
                    };
                    self.log_member((seq, "client_open", lane), own, text, id, many);
                } else {
                    self.log_line(seq, "client_open", own, text, id);
                }
            }
            EventKind::ClientClose { session, socket, member } => {
                // A place may be free: the shared lane's strangers may ask again.
                self.overflow_retry_us = 0;
                let lane = self.socket_lane(session, socket, None);
                let members = match member {
                    Some(_) => self.crowd_members.get_mut(&lane).map(|n| {
                        *n = n.saturating_sub(1);
                        *n
                    }),
                    None => None,
                };
                let text = fill("log-close", &[&self.who(lane, *member)]);
                // A crowd's lane closes with its last member.
                // The lane many sockets share stays open for the others.
                let id = matches!(members, None | Some(0)).then(|| {
                    self.lanes[lane].closed = self.lanes[lane].kind != LaneKind::Overflow;
                    self.crowd_members.remove(&lane);
                    self.mark(event, lane, MarkKind::Closed, &text)
                });
                let own = self.own_socket(session, socket);
                if member.is_some() {
                    let label = self.who(lane, None);
                    let many = |n: &str| fill("log-crowd-close", &[&label, &n]);
                    self.log_member((seq, "client_close", lane), own, text, id, many);
                } else {
                    self.log_line(seq, "client_close", own, text, id);
                }
            }
            EventKind::ClientSend { session, socket, member, dg, from, to, len, payload, attempt, req } => {
                self.stats.sent += 1;
                if member.is_none() {
                    self.leave_the_shared_lane(session, socket, *from);
                }
                let lane = self.socket_lane(session, socket, Some(*from));
                if member.is_some() {
                    *self.crowd_sent.entry(lane).or_default() += 1;
                }
                let target = self.lane_of(*to);
                let waited_ms = match attempt {
                    Some(a) if *a > 1 => self.retry_wait.remove(&lane),
                    _ => None,
                };
                let arrow = Arrow {
                    member: *member,
                    attempt: *attempt,
                    req: req.clone(),
                    waited_ms,
                    ..Arrow::new(lane, target, *len, payload)
                };
                let id = self.send_arrow(event, *dg, arrow);
                let mut tail = String::new();
                if let Some(a) = attempt {
                    tail.push_str(&fill("send-attempt", &[a]));
                }
                if let Some(w) = waited_ms {
                    tail.push_str(&fill("send-waited", &[&w]));
                }
                if let Some(r) = req {
                    tail.push_str(&fill("send-req", &[r]));
                }
                let parts =
                    [Part::Who(lane, *member), Part::Who(target, None), Part::Preview, Part::Num(*len)];
                let text = LogText::parts("log-dg", &parts, payload, tail);
                let own = self.own_socket(session, socket);
                self.log_dg(seq, "client_send", own, text, Some(id), Some(*dg));
            }
            EventKind::ClientRecv {
                session,
                socket,
                member,
                dg,
                from,
                to,
                len,
                payload,
                attempt,
                req,
                rtt_us,
                kept,
            } => {
                self.stats.received += 1;
                let lane = self.socket_lane(session, socket, Some(*to));
                if member.is_some() {
                    *self.crowd_got.entry(lane).or_default() += 1;
                }
                let source = self.lane_of(*from);
                let fresh = Arrow::new(source, lane, *len, &Payload::default());
                let id = self.arrival(event, *dg, Fate::Delivered, fresh, payload);
                let reply =
                    self.reply(event, id, lane, *member, *attempt, req, *rtt_us, payload, Some(*kept));
                if reply.cut.is_some() {
                    self.stats.cut += 1;
                }
                if reply.misattributed.is_some() {
                    self.stats.misattributed += 1;
                }
                if let Some(rtt) = reply.rtt_us {
                    self.stats.record_rtt(rtt);
                }
                let out_of_order = self.arrived_out_of_order(id, lane);
                // A reply to one of this socket's requests, taken for none: it had taken its
                // answer already, or given up. Without request IDs the socket cannot tell; the
                // datagrams' names can, and it is drawn LATE as one with an ID would be.
                let late = attempt.is_none()
                    && req.is_none()
                    && self.arrow_mut(id).is_some_and(|a| {
                        let late = a.answers.is_some();
                        if late {
                            a.fate = Fate::Late;
                        }
                        late
                    });
                if late {
                    self.stats.duplicates += 1;
                    self.stats.late += 1;
                }
                let mut text = String::new();
                if let Some(kept) = reply.cut {
                    text.push_str(&fill("recv-cut", &[&cut_text(kept, *len)]));
                }
                if out_of_order {
                    text.push_str(word("recv-ooo"));
                }
                if late {
                    text.push_str(word("recv-late"));
                }
                match (req, reply.misattributed, attempt) {
                    (Some(r), _, _) => text.push_str(&fill("recv-answers", &[r])),
                    (None, Some((taken, answers)), _) => {
                        text.push_str(word("comma"));
                        text.push_str(&misattributed_text(taken, answers));
                    }
                    (None, None, Some(a)) => text.push_str(&fill("recv-taken", &[a])),
                    (None, None, None) => {}
                }
                if let Some(rtt) = reply.rtt_us {
                    text.push_str(&fill("recv-rtt", &[&ms_text(rtt)]));
                }
                if let Some(claimed) = reply.claimed_rtt_us {
                    text.push_str(&fill("recv-claimed", &[&ms_text(claimed), &attempt.unwrap_or(0)]));
                }
                let parts =
                    [Part::Who(source, None), Part::Who(lane, *member), Part::Preview, Part::Num(*len)];
                let text = LogText::parts("log-dg", &parts, payload, text);
                let own = self.own_socket(session, socket);
                self.log_dg(seq, "client_recv", own, text, Some(id), Some(*dg));
            }
            EventKind::ClientDuplicate {
                session,
                socket,
                member,
                dg,
                from,
                to,
                len,
                payload,
                req,
                attempt,
                reason,
            } => {
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
                let fresh = Arrow::new(source, lane, *len, &Payload::default());
                let id = self.arrival(event, *dg, fate, fresh, payload);
                let tag = Some(req.clone());
                self.reply(event, id, lane, *member, Some(*attempt), &tag, None, payload, None);
                let what = word(match reason {
                    DuplicateReason::Late => "dup-late",
                    DuplicateReason::Duplicate => "dup-dup",
                });
                let who = self.who(lane, *member);
                let text = fill("log-dup", &[&self.label(source), &who, &what, req, attempt]);
                let own = self.own_socket(session, socket);
                self.log_dg(seq, "client_duplicate", own, text, Some(id), Some(*dg));
            }
            EventKind::ClientRetry { session, socket, attempt, delay_ms, next_wait_ms } => {
                self.stats.retried += 1;
                let lane = self.socket_lane(session, socket, None);
                self.retry_wait.insert(lane, *delay_ms);
                let text = fill("log-retry", &[&self.label(lane), delay_ms, attempt, next_wait_ms]);
                let kind = MarkKind::Retry { attempt: *attempt, waited_ms: *delay_ms };
                let id = self.mark(event, lane, kind, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_retry", own, text, Some(id));
            }
            EventKind::ClientGiveup { session, socket, attempts, waited_ms, give_up_ms } => {
                self.stats.gave_up += 1;
                let lane = self.socket_lane(session, socket, None);
                self.retry_wait.remove(&lane);
                let text = fill("log-giveup", &[&self.label(lane), attempts, waited_ms, give_up_ms]);
                let kind = MarkKind::GiveUp { attempts: *attempts, waited_ms: *waited_ms };
                let id = self.mark(event, lane, kind, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_giveup", own, text, Some(id));
            }
            EventKind::ClientRefused { session, socket, member, peer } => {
                self.stats.refused += 1;
                let lane = self.socket_lane(session, socket, None);
                // The ICMP error names no datagram, so no arrow is blamed for it: a datagram
                // that reached nobody is named by its own `client_vanished`.
                let text = fill("log-refused", &[&self.who(lane, *member), peer]);
                let id = self.mark(event, lane, MarkKind::Refused, &text);
                let own = self.own_socket(session, socket);
                self.log_line(seq, "client_refused", own, text, Some(id));
            }
            EventKind::ClientVanished { session, socket, member, dg, to, len, reason } => {
                self.stats.vanished += 1;
                let lane = self.socket_lane(session, socket, None);
                let target = self.lane_of(*to);
                let fresh = Arrow { member: *member, ..Arrow::new(lane, target, *len, &Payload::default()) };
                let id = self.arrival(event, *dg, Fate::Vanished, fresh, &Payload::default());
                let payload =
                    self.arrow(id).map_or_else(String::new, |a| format!("{} ", preview(&a.payload)));
                let key = match reason {
                    VanishReason::NoListener => "log-vanished",
                    VanishReason::NotItsPeer => "log-vanished-peer",
                };
                let text = fill(key, &[&self.who(lane, *member), &self.label(target), &payload, len, to]);
                let own = self.own_socket(session, socket);
                self.log_dg(seq, "client_vanished", own, text, Some(id), Some(*dg));
            }
            EventKind::ClientSendFailed { session, socket, member, dg, to, len, errno, error } => {
                self.stats.not_sent += 1;
                let lane = self.socket_lane(session, socket, None);
                let target = self.lane_of(*to);
                if self.in_flight(*dg).is_some() {
                    // Its `client_send` counted it as sent, but nothing left the socket.
                    self.stats.sent = self.stats.sent.saturating_sub(1);
                }
                let fresh = Arrow { member: *member, ..Arrow::new(lane, target, *len, &Payload::default()) };
                let id = self.arrival(event, *dg, Fate::NotSent, fresh, &Payload::default());
                if let Some(arrow) = self.arrow_mut(id) {
                    arrow.errno.clone_from(errno);
                    arrow.error = Some(error.clone());
                }
                let why = match errno {
                    Some(errno) => format!("{errno}, {error}"),
                    None => error.clone(),
                };
                let who = self.who(lane, *member);
                let text = fill("log-not-sent", &[&who, &self.label(target), &thousands(*len), &why]);
                let own = self.own_socket(session, socket);
                self.log_dg(seq, "client_send_failed", own, text, Some(id), Some(*dg));
            }
            EventKind::ServerRecv { server, dg, from, to, len, payload } => {
                let lane = self.server_at(*server, *to);
                let peer = self.lane_of(*from);
                if *server == ServerName::Lossy && self.meets_my_lossy(peer) {
                    self.stats.lossy_seen += 1;
                }
                let fresh = Arrow::new(peer, lane, *len, &Payload::default());
                let id = self.arrival(event, *dg, Fate::Delivered, fresh, payload);
                if !self.lanes[peer].kind.reports() && self.arrow(id).and_then(Arrow::copy_of).is_none() {
                    // An outside client sends without telling us: its read is its send (once:
                    // the link's copy of it was not sent again).
                    self.stats.sent += 1;
                }
                let parts = [Part::Server(*server), Part::Preview, Part::Num(*len), Part::Who(peer, None)];
                let text = LogText::parts("log-server-recv", &parts, payload, String::new());
                self.log_dg(seq, "server_recv", None, text, Some(id), Some(*dg));
            }
            EventKind::ServerSend { server, dg, reply_to, from, to, len, payload, delay_ms } => {
                let lane = self.server_at(*server, *from);
                let peer = self.lane_of(*to);
                let answers_copy = reply_to
                    .and_then(|r| self.dgs.arrow(r))
                    .and_then(|id| self.arrow(id))
                    .is_some_and(|request| request.copy_of().is_some());
                let arrow = Arrow {
                    reply_to: *reply_to,
                    delay_ms: *delay_ms,
                    answers_copy,
                    ..Arrow::new(lane, peer, *len, payload)
                };
                let id = self.send_arrow(event, *dg, arrow);
                let tail = delay_ms.map_or_else(String::new, |d| fill("server-held", &[&d]));
                let parts = [Part::Server(*server), Part::Who(peer, None), Part::Preview, Part::Num(*len)];
                let text = LogText::parts("log-dg", &parts, payload, tail);
                self.log_dg(seq, "server_send", None, text, Some(id), Some(*dg));
            }
            EventKind::ServerDrop { server, dg, from, len, reason, .. } => {
                self.stats.dropped += 1;
                let lane = self.server_lane(*server);
                let peer = self.lane_of(*from);
                if *server == ServerName::Lossy && self.meets_my_lossy(peer) {
                    self.stats.lossy_dropped += 1;
                }
                // The server read it first (`server_recv`, same `dg`): the drop turns that
                // arrow's fate rather than drawing a second one.
                let read = self.dgs.arrow(*dg).and_then(|id| {
                    let arrow = self.arrow_mut(id)?;
                    arrow.fate = Fate::Dropped;
                    arrow.t_end_us.get_or_insert(event.t_us);
                    arrow.end_seq.get_or_insert(seq);
                    Some(id)
                });
                let id = match read {
                    Some(id) => id,
                    None => {
                        let fresh = Arrow::new(peer, lane, *len, &Payload::default());
                        self.arrival(event, *dg, Fate::Dropped, fresh, &Payload::default())
                    }
                };
                let why = word(match reason {
                    protocol::DropReason::Loss => "drop-loss",
                    protocol::DropReason::Shed => "drop-shed",
                });
                let text = fill("log-server-drop", &[server, len, &self.label(peer), &why]);
                self.log_dg(seq, "server_drop", None, text, Some(id), Some(*dg));
            }
            EventKind::ServerRefused { server, peer } => {
                let lane = self.server_lane(*server);
                let who = peer.map_or_else(|| word("a-peer").to_owned(), |p| p.to_string());
                let text = fill("log-server-refused", &[server, &who]);
                let id = self.mark(event, lane, MarkKind::Refused, &text);
                self.log_line(seq, "server_refused", None, text, Some(id));
            }
            EventKind::ChatJoin { server, peer, clients, timeout_ms } => {
                let lane = self.server_lane(*server);
                let peer_lane = self.lane_of(*peer);
                self.chat_heard(*peer, peer_lane, event.t_us, Some(*timeout_ms));
                let text = fill("log-join", &[server, &self.label(peer_lane), clients, &secs(*timeout_ms)])
                    + &self.room(*server, peer_lane);
                let id = self.mark(event, lane, MarkKind::Join { who: peer_lane }, &text);
                self.log_line(seq, "chat_join", None, text, Some(id));
            }
            EventKind::ChatHeartbeat { server, peer, timeout_ms } => {
                let peer_lane = self.lane_of(*peer);
                self.chat_heard(*peer, peer_lane, event.t_us, Some(*timeout_ms));
                let parts = [Part::Server(*server), Part::Who(peer_lane, None), Part::Secs(*timeout_ms)];
                let text = LogText::parts("log-heartbeat", &parts, &Payload::default(), String::new());
                self.log_line(seq, "chat_heartbeat", None, text, None);
            }
            EventKind::ChatLeave { server, peer, clients } => {
                let lane = self.server_lane(*server);
                let peer_lane = self.lane_of(*peer);
                self.chat_gone(*peer, Liveness::Left, event.t_us);
                let text = fill("log-leave", &[server, &self.label(peer_lane), clients])
                    + &self.room(*server, peer_lane);
                let id = self.mark(event, lane, MarkKind::Leave { who: peer_lane }, &text);
                self.log_line(seq, "chat_leave", None, text, Some(id));
            }
            EventKind::ChatEvict { server, peer, silent_ms, clients } => {
                let lane = self.server_lane(*server);
                let peer_lane = self.lane_of(*peer);
                self.chat_gone(*peer, Liveness::Evicted, event.t_us);
                let text = fill("log-evict", &[server, &self.label(peer_lane), &secs(*silent_ms), clients])
                    + &self.room(*server, peer_lane);
                let id = self.mark(event, lane, MarkKind::Evict { who: peer_lane }, &text);
                self.log_line(seq, "chat_evict", None, text, Some(id));
            }
            EventKind::ChatBroadcast { server, dg, from, recipients, len, payload } => {
                let lane = self.server_lane(*server);
                let sender = self.lane_of(*from);
                self.chat_heard(*from, sender, event.t_us, None);
                // Each copy is a datagram of its own, reported as a `server_send` whose
                // `reply_to` is this message: those draw the fan-out, with the bytes each
                // client got. The broadcast itself is a mark.
                let text =
                    fill("log-broadcast", &[server, &preview(payload), len, &self.label(sender), recipients])
                        + &self.room(*server, sender);
                let id = self.mark(event, lane, MarkKind::Broadcast { recipients: *recipients }, &text);
                self.log_dg(seq, "chat_broadcast", None, text, Some(id), Some(*dg));
            }
            EventKind::ChatRefused { server, peer, limit } => {
                let lane = self.server_lane(*server);
                let text = fill("log-chat-refused", &[server, peer, limit]);
                let id = self.mark(event, lane, MarkKind::Refused, &text);
                self.log_line(seq, "chat_refused", None, text, Some(id));
            }
            EventKind::ChatEnd { server, clients } => {
                let lane = self.server_lane(*server);
                // A lesson's room that closed, or else the class's chat server stopping.
                let closed = self.closed_room.take();
                self.chat_ended(closed.as_deref());
                let kind = if closed.is_some() { MarkKind::RoomClosed } else { MarkKind::Closed };
                let room = closed.map(|session| self.room_of(&session, true));
                let text = fill("log-chat-end", &[server, clients]) + &room.unwrap_or_default();
                let id = self.mark(event, lane, kind, &text);
                self.log_line(seq, "chat_end", None, text, Some(id));
            }
            EventKind::SandboxOpen { server, session } | EventKind::SandboxClose { server, session } => {
                let open = matches!(event.kind, EventKind::SandboxOpen { .. });
                self.sandboxes.retain(|(s, who)| s != server || who != session);
                if open {
                    self.sandboxes.push((*server, session.clone()));
                } else if *server == ServerName::Chat {
                    self.closed_room = Some(session.clone());
                }
                let (kind, key) = match open {
                    true => ("sandbox_open", "log-sandbox-open"),
                    false => ("sandbox_close", "log-sandbox-close"),
                };
                let text = fill(key, &[server]) + &self.whose(Some(session), Scope::Own);
                self.log_line(seq, kind, None, text, None);
            }
            EventKind::ServerConfigured { server, setting, value, by, scope } => {
                if *server == ServerName::Lossy
                    && setting == "drop"
                    && self.reaches_me(*server, by.as_deref(), *scope)
                {
                    self.stats.configured_drop = Some(*value);
                }
                let lane = self.server_lane(*server);
                // The lossy server's settings in the page's words, as its panel says them.
                let name = match word(&format!("setting-{setting}")) {
                    "" => setting.as_str(),
                    name => name,
                };
                let text = fill("log-configured", &[server, &name, &short(*value)])
                    + &self.whose(by.as_deref(), *scope);
                let id = self.mark(event, lane, MarkKind::Configured, &text);
                self.log_line(seq, "server_configured", None, text, Some(id));
            }
            EventKind::LinkDrop { .. }
            | EventKind::LinkDuplicate { .. }
            | EventKind::LinkHold { .. }
            | EventKind::LinkRelease { .. }
            | EventKind::LinkConfigured { .. } => self.link_event(event),
            #[allow(
                unreachable_patterns,
                reason = "kinds the protocol gains before this page draws them land here"
            )]
            other => self.unknown(seq, other),
        }
    }

    /// An event of a kind this page does not draw yet: logged under its name, nothing drawn and
    /// nothing guessed (the protocol may gain kinds at any time).
    fn unknown(&mut self, seq: u64, kind: &EventKind) {
        let name = wire_name(&kind.kind());
        let name = if name.is_empty() { "event".to_owned() } else { name };
        let mut text = match kind.server() {
            Some(server) => format!("{server}: {name}"),
            None => name.clone(),
        };
        if let Some(dg) = kind.dg() {
            text.push_str(&fill("unknown-dg", &[&dg]));
        }
        self.log_dg(seq, name, None, text, None, kind.dg());
    }

    /// A socket received the datagram drawn as arrow `id`: records what it got and what the
    /// relay's names say the datagram answers, and returns the arrow as it now is.
    ///
    /// The chain is `client_recv.dg` = `server_send.dg`, whose `reply_to` = `server_recv.dg` =
    /// `client_send.dg`, and that send has its attempt. When the client took the reply as the
    /// answer to another attempt (`attempt`, with the RTT `rtt_us` measured from it), the
    /// arrow keeps both, and its RTT is the real one, from the send it answers.
    #[allow(clippy::too_many_arguments)]
    fn reply(
        &mut self,
        event: &Event,
        id: u64,
        lane: usize,
        member: Option<u32>,
        attempt: Option<u32>,
        req: &Option<String>,
        rtt_us: Option<u64>,
        payload: &Payload,
        kept: Option<usize>,
    ) -> Reply {
        let answered = self.answered(id, lane, member);
        let Some(arrow) = self.arrow_mut(id) else {
            // Only if the window could not hold the arrow just drawn; nothing to record.
            return Reply::default();
        };
        arrow.payload.clone_from(payload);
        arrow.member = member;
        arrow.attempt = attempt;
        arrow.req.clone_from(req);
        arrow.kept = kept;
        arrow.answers = answered.and_then(|a| a.attempt);
        let real = answered.map(|a| event.t_us.saturating_sub(a.sent_us));
        if arrow.misattributed().is_some() {
            arrow.rtt_us = real;
            arrow.claimed_rtt_us = rtt_us;
        } else {
            arrow.rtt_us = rtt_us.or(real);
            arrow.claimed_rtt_us = None;
        }
        Reply {
            cut: arrow.cut(),
            misattributed: arrow.misattributed(),
            rtt_us: arrow.rtt_us,
            claimed_rtt_us: arrow.claimed_rtt_us,
        }
    }
}
