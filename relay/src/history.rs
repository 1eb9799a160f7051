//! The relay's recent past: one bounded history of events, and of the datagrams they are
//! about with their whole bytes.
//!
//! It is on by default, because a capture or a replay that must be switched on before the
//! interesting moment is useless in class. The bus records every event here as it emits it,
//! and each socket's driver records every datagram it reads or sends. Three things read it:
//! `GET /api/events.jsonl` (the events, as the WebSocket sends them), `GET /api/capture.pcapng`
//! and `--capture` (the datagrams, for Wireshark), and a projector's backlog (`subscribe` with
//! `history`).
//!
//! Two rings hold it: the datagrams, each with the event of the server that read or sent it
//! (nearly every event of a busy relay), and the other events. Both are bounded (`--history`,
//! and a byte budget for the datagrams' bytes); the oldest entries go first. A lock is held
//! for one push, or for one slice of a read, never across an await.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use protocol::{Dg, Event, EventKind, Payload, ServerName};

use crate::bus::Published;

/// How much the history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events kept, and datagrams kept (`--history`). 0 turns the history off. 5,000 events
    /// are a lesson several times over, and what a projector's backlog asks for.
    pub events: usize,
    /// Bytes of datagram payload kept at most: 64 MiB, so a burst of 64 KB datagrams cannot
    /// grow the relay past that.
    pub bytes: usize,
}

impl HistoryLimits {
    /// The most events `--history` may keep. A million take about 230 MB for the two rings'
    /// entries (112 bytes each), and more for previews: 1.3 GB at worst, were every event to
    /// carry a full preview and long names. Datagram payloads stay within `bytes`.
    pub const MAX_EVENTS: usize = 1_000_000;
}

impl Default for HistoryLimits {
    fn default() -> Self {
        Self { events: 5_000, bytes: 64 << 20 }
    }
}

/// A datagram as it crossed one of the relay's sockets.
#[derive(Debug, Clone)]
pub struct Seen {
    pub dg: Dg,
    /// Wall-clock time, in microseconds since the Unix epoch.
    pub wall_us: u64,
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub bytes: Arc<[u8]>,
}

/// Recording is on the path of every datagram, so there it allocates nothing and frees
/// nothing: entries are plain values in rings that, once grown, are reused in place, and the
/// bytes they carry (a datagram's, a preview's) are copied into an [`Arena`]. Full events and
/// shared bytes are built again only when someone reads the history. (An event that is not
/// about a server's datagram, a session's or a chat's, is kept boxed, as it came.)
#[derive(Debug)]
pub struct History {
    limits: HistoryLimits,
    /// The relay's start, on both clocks: events are stamped with the monotonic one.
    epoch: Instant,
    epoch_wall_us: u64,
    events: Mutex<Ring<Kept>>,
    datagrams: Mutex<Ring<SeenAt>>,
    /// The `sandbox_open` of every sandbox still open, however long ago: [`History::events`]
    /// starts with those it no longer keeps, so whoever reads them (a projector's backlog, the
    /// event log) knows whose datagrams meet a lesson's own server. One per session and server
    /// at most: bounded by the sessions.
    open_sandboxes: Mutex<Vec<Arc<Published>>>,
}

/// Bytes kept oldest first, each byte at a position that only grows, so an entry can name its
/// bytes by position and find them gone once they have been pushed out. Bytes equal to those
/// appended just before are not appended again: an echo's answer and its request share theirs.
#[derive(Debug, Default)]
struct Arena {
    bytes: VecDeque<u8>,
    /// The position of `bytes[0]`.
    start: u64,
    /// What `bytes` may grow to.
    max: usize,
    /// Where the bytes appended last are, and how many.
    last: Option<(u64, usize)>,
}

impl Arena {
    fn new(max: usize) -> Self {
        Self { max, ..Self::default() }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends `data` and returns its position, or returns the position of the same bytes
    /// appended just before and true. The caller has made room.
    fn push(&mut self, data: &[u8]) -> (u64, bool) {
        if let Some((at, len)) = self.last
            && len == data.len()
            && len > 0
            && self.slices(at, len).is_some_and(|(a, b)| {
                let (x, y) = data.split_at(a.len());
                // Never compare an empty part: glibc's `memcmp` reads even zero bytes, from
                // where an empty slice points (nowhere), and the processor takes a slow
                // path to let it; measured at about 80 ns (`busbench`).
                a == x && (b.is_empty() || b == y)
            })
        {
            return (at, true);
        }
        let at = self.start + self.bytes.len() as u64;
        let needed = self.bytes.len() + data.len();
        if needed > self.bytes.capacity() {
            // Double, as a `VecDeque` would, but never past the budget.
            let target = (self.bytes.capacity() * 2).max(needed).max(4_096).min(self.max.max(needed));
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend(data);
        self.last = Some((at, data.len()));
        (at, false)
    }

    /// Forgets the oldest `len` bytes.
    fn pop(&mut self, len: usize) {
        let len = len.min(self.bytes.len());
        self.bytes.drain(..len);
        self.start += len as u64;
        if self.last.is_some_and(|(at, _)| at < self.start) {
            self.last = None;
        }
    }

    /// The `len` bytes at `at`, in two parts (the arena wraps), if they are still kept.
    fn slices(&self, at: u64, len: usize) -> Option<(&[u8], &[u8])> {
        let offset = usize::try_from(at.checked_sub(self.start)?).ok()?;
        let end = offset.checked_add(len).filter(|&end| end <= self.bytes.len())?;
        let (head, tail) = self.bytes.as_slices();
        Some(if end <= head.len() {
            (&head[offset..end], &[][..])
        } else if offset >= head.len() {
            (&tail[offset - head.len()..end - head.len()], &[][..])
        } else {
            (&head[offset..], &tail[..end - head.len()])
        })
    }

    /// Appends the `len` bytes at `at` to `out`; false if they are no longer kept.
    fn copy(&self, at: u64, len: usize, out: &mut Vec<u8>) -> bool {
        let Some((a, b)) = self.slices(at, len) else { return false };
        out.extend_from_slice(a);
        out.extend_from_slice(b);
        true
    }
}

/// A socket address in 20 bytes rather than `SocketAddr`'s 32: an entry is written for every
/// datagram, so its size is what recording costs the caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Addr {
    ip: [u8; 16],
    port: u16,
    v4: bool,
}

impl Addr {
    /// The address and port; an IPv6 flow label or scope is left out, as IP and UDP headers do.
    fn new(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self { ip: a.ip().to_ipv6_mapped().octets(), port: a.port(), v4: true },
            SocketAddr::V6(a) => Self { ip: a.ip().octets(), port: a.port(), v4: false },
        }
    }

    /// `addr` exactly, or `None` if it has a flow label or scope.
    fn exact(addr: SocketAddr) -> Option<Self> {
        match addr {
            SocketAddr::V6(a) if a.flowinfo() != 0 || a.scope_id() != 0 => None,
            _ => Some(Self::new(addr)),
        }
    }

    fn get(self) -> SocketAddr {
        let ip = std::net::Ipv6Addr::from(self.ip);
        match (self.v4, ip.to_ipv4_mapped()) {
            (true, Some(v4)) => SocketAddr::from((v4, self.port)),
            _ => SocketAddr::from((ip, self.port)),
        }
    }
}

/// Which entries own which bytes of an arena: when an entry shares the bytes of the one
/// before, that one hands them on, so bytes are forgotten with the last entry to use them and
/// the arena stays oldest first.
trait Owner {
    /// Whether the entry owns its bytes; `None` for one that has none.
    fn owns(&mut self) -> Option<&mut bool>;
    /// The `seq` of the event the entry holds, if it holds one.
    fn seq(&self) -> Option<u64>;
    /// How many of the arena's bytes the entry owns.
    fn owned_bytes(&self) -> usize;
}

/// A ring of entries, each numbered in order, with the arena of their bytes.
#[derive(Debug)]
struct Ring<T> {
    entries: VecDeque<T>,
    /// The most entries it holds: once grown to it, it takes no more room.
    limit: usize,
    /// The most entries readers see, the newest: a full ring lets its oldest go a batch at a
    /// time (see [`evict_batch`]), so it may hold more than it shows.
    shown: usize,
    /// How many entries a full ring lets go at once.
    batch: usize,
    bytes: Arena,
    /// Entries ever pushed: the newest entry is number `pushed - 1`.
    pushed: u64,
    /// The number of the entry that owns the arena's last bytes.
    last_owner: Option<u64>,
    /// The highest `seq` of an event pushed out with its entry: what the history shows
    /// starts after it, so that it never has a gap where one ring forgot and the other not.
    horizon: u64,
    /// Where an entry's bytes are put together before they go into the arena.
    text: Vec<u8>,
}

impl<T: Owner> Ring<T> {
    /// A ring showing `shown` entries, holding a batch more.
    fn new(shown: usize, bytes: usize) -> Self {
        let batch = evict_batch(shown);
        let entries = shown.saturating_add(batch);
        Self {
            entries: VecDeque::with_capacity(entries.min(4_096)),
            limit: entries,
            shown,
            batch,
            bytes: Arena::new(bytes),
            pushed: 0,
            last_owner: None,
            horizon: 0,
            text: Vec::new(),
        }
    }

    /// The number of the oldest entry kept.
    fn first(&self) -> u64 {
        self.pushed - self.entries.len() as u64
    }

    /// The number of the oldest entry readers see.
    fn first_shown(&self) -> u64 {
        self.pushed - self.entries.len().min(self.shown) as u64
    }

    /// The horizon readers see: that of the entries pushed out, and of those kept but not shown.
    fn horizon_shown(&self) -> u64 {
        let hidden = self.entries.len().saturating_sub(self.shown);
        self.entries.iter().take(hidden).filter_map(T::seq).fold(self.horizon, u64::max)
    }

    /// Lets the oldest entries go if the ring is full, a batch of them: read one after the
    /// other, they come from memory as a stream rather than one cold line per entry, and the
    /// new entries are then written where the caches just held the old ones.
    fn make_room(&mut self) {
        if self.entries.len() >= self.limit {
            for _ in 0..self.batch {
                if !self.pop_oldest() {
                    break;
                }
            }
        }
    }

    /// Lets the oldest entry go, with the bytes it owns; false if there was none.
    fn pop_oldest(&mut self) -> bool {
        let Some(old) = self.entries.pop_front() else { return false };
        self.bytes.pop(old.owned_bytes());
        if let Some(seq) = old.seq() {
            self.horizon = self.horizon.max(seq);
        }
        true
    }

    fn get(&self, number: u64) -> Option<&T> {
        self.entries.get(usize::try_from(number.checked_sub(self.first())?).ok()?)
    }

    /// Puts `data` in the arena for the entry about to be pushed: its position, and whether
    /// that entry owns it (it always does, from the entry before if shared).
    fn bytes_for_next(&mut self, data: &[u8]) -> u64 {
        let (at, shared) = self.bytes.push(data);
        if shared && let Some(previous) = self.last_owner {
            let first = self.first();
            if let Some(entry) =
                usize::try_from(previous.wrapping_sub(first)).ok().and_then(|i| self.entries.get_mut(i))
                && let Some(owns) = entry.owns()
            {
                *owns = false;
            }
        }
        self.last_owner = Some(self.pushed);
        at
    }

    fn push(&mut self, entry: T) {
        let (len, capacity) = (self.entries.len(), self.entries.capacity());
        if len == capacity {
            // Grown as a `VecDeque` grows, by doubling, but never past the limit: a full ring
            // is what every new entry is written into, and the less memory it spans, the more
            // of it the caches still hold (5,000 entries would otherwise take room for 8,192).
            let target = (capacity * 2).clamp(len + 1, self.limit.max(len + 1));
            self.entries.reserve_exact(target - len);
        }
        self.entries.push_back(entry);
        self.pushed += 1;
    }
}

/// How far back a datagram just recorded is looked for, to join its event or strike it out:
/// other sockets may have recorded a few of theirs since.
const RECENT: usize = 16;

/// A datagram's entry; its bytes are in the ring's arena. It also keeps the event of the
/// server that read or sent it, which then needs no entry of its own: its preview is the
/// datagram's bytes, its addresses and length the datagram's.
#[derive(Debug, Clone, Copy)]
struct SeenAt {
    dg: Dg,
    wall_us: u64,
    at: u64,
    len: u32,
    from: Addr,
    to: Addr,
    owns: bool,
    /// False once its send failed: recorded before it was sent (so that its `server_send`
    /// could join it), it never left, and only its event is left to tell.
    sent: bool,
    event: Option<ServerEvent>,
}

/// A `server_recv`, or (`sent`) a `server_send`, of the datagram whose entry holds it.
#[derive(Debug, Clone, Copy)]
struct ServerEvent {
    seq: u64,
    t_us: u64,
    /// 0 for none: no datagram is named 0 while anyone records.
    reply_to: Dg,
    /// `u32::MAX` for none.
    delay_ms: u32,
    server: ServerName,
    sent: bool,
}

impl SeenAt {
    /// The facts of `event`, a server's event about this datagram.
    fn facts(&self, event: ServerEvent) -> ServerFacts {
        let ServerEvent { reply_to, delay_ms, server, sent, .. } = event;
        let (dg, len, from, to) = (self.dg, self.len, self.from, self.to);
        ServerFacts { dg, reply_to, len, delay_ms, from, to, server, sent }
    }
}

impl Owner for SeenAt {
    fn owns(&mut self) -> Option<&mut bool> {
        Some(&mut self.owns)
    }

    fn seq(&self) -> Option<u64> {
        self.event.map(|e| e.seq)
    }

    fn owned_bytes(&self) -> usize {
        if self.owns { self.len as usize } else { 0 }
    }
}

/// An event's entry. The events about a datagram that a server or a session's socket read or
/// sent (nearly all of them) are kept in a compact form, their text in the ring's arena; the
/// rest as they came.
#[derive(Debug)]
enum Kept {
    Datagram(DatagramEvent),
    Client(ClientEvent),
    Other {
        seq: u64,
        t_us: u64,
        kind: Box<EventKind>,
    },
    /// An event someone was watching, kept by sharing it (its JSON too, once written).
    Shared(Arc<Published>),
}

impl Owner for Kept {
    fn owns(&mut self) -> Option<&mut bool> {
        match self {
            Kept::Datagram(d) => Some(&mut d.owns),
            Kept::Client(c) => Some(&mut c.owns),
            Kept::Other { .. } | Kept::Shared(_) => None,
        }
    }

    fn seq(&self) -> Option<u64> {
        Some(match self {
            Kept::Datagram(d) => d.seq,
            Kept::Client(c) => c.seq,
            Kept::Other { seq, .. } => *seq,
            Kept::Shared(event) => event.seq,
        })
    }

    fn owned_bytes(&self) -> usize {
        match self {
            Kept::Datagram(d) if d.owns => usize::from(d.preview_len),
            Kept::Client(c) if c.owns => c.text_len(),
            _ => 0,
        }
    }
}

/// What a server's `server_recv` or (`sent`) `server_send` says apart from its preview, in
/// 64 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ServerFacts {
    dg: Dg,
    /// 0 for none: no datagram is named 0 while anyone records.
    reply_to: Dg,
    len: u32,
    /// `u32::MAX` for none.
    delay_ms: u32,
    from: Addr,
    to: Addr,
    server: ServerName,
    sent: bool,
}

impl ServerFacts {
    /// The facts of `kind`, and its preview, if it is a server's datagram event they can hold.
    fn of(kind: &EventKind) -> Option<(Self, &Payload)> {
        let (sent, server, dg, reply_to, delay_ms, from, to, len, payload) = match kind {
            EventKind::ServerRecv { server, dg, from, to, len, payload } => {
                (false, *server, *dg, None, None, *from, *to, *len, payload)
            }
            EventKind::ServerSend { server, dg, reply_to, from, to, len, payload, delay_ms } => {
                (true, *server, *dg, *reply_to, *delay_ms, *from, *to, *len, payload)
            }
            _ => return None,
        };
        let facts = Self {
            dg,
            reply_to: match reply_to {
                Some(0) => return None,
                other => other.unwrap_or(0),
            },
            len: u32::try_from(len).ok()?,
            delay_ms: match delay_ms {
                None => u32::MAX,
                Some(ms) => u32::try_from(ms).ok().filter(|&ms| ms < u32::MAX)?,
            },
            from: Addr::exact(from)?,
            to: Addr::exact(to)?,
            server,
            sent,
        };
        Some((facts, payload))
    }

    /// The event these facts and `payload` make.
    fn kind(&self, payload: Payload) -> EventKind {
        let (server, dg, from, to, len) =
            (self.server, self.dg, self.from.get(), self.to.get(), self.len as usize);
        match self.sent {
            false => EventKind::ServerRecv { server, dg, from, to, len, payload },
            true => EventKind::ServerSend {
                server,
                dg,
                reply_to: (self.reply_to != 0).then_some(self.reply_to),
                from,
                to,
                len,
                payload,
                delay_ms: (self.delay_ms != u32::MAX).then_some(u64::from(self.delay_ms)),
            },
        }
    }
}

/// A server's datagram event kept on its own, its preview's text (or hex) in the arena.
#[derive(Debug, Clone, Copy)]
struct DatagramEvent {
    seq: u64,
    t_us: u64,
    facts: ServerFacts,
    at: u64,
    preview_len: u16,
    hex: bool,
    truncated: bool,
    owns: bool,
}

impl DatagramEvent {
    /// `kind` as an entry whose preview is still to be put in the arena, if it fits one.
    fn of(seq: u64, t_us: u64, kind: &EventKind) -> Option<(Self, &[u8])> {
        let (facts, payload) = ServerFacts::of(kind)?;
        let (hex, preview) = match (&payload.text, &payload.hex) {
            (Some(text), None) => (false, text.as_bytes()),
            (None, Some(hex)) => (true, hex.as_bytes()),
            _ => return None,
        };
        let preview_len = u16::try_from(preview.len()).ok()?;
        let truncated = payload.truncated;
        Some((Self { seq, t_us, facts, at: 0, preview_len, hex, truncated, owns: true }, preview))
    }

    /// The event again, its preview from `bytes`.
    fn kind(&self, bytes: &Arena, scratch: &mut Vec<u8>) -> Option<EventKind> {
        scratch.clear();
        if !bytes.copy(self.at, usize::from(self.preview_len), scratch) {
            return None;
        }
        let preview = Some(String::from_utf8_lossy(scratch).into_owned());
        let payload = match self.hex {
            false => Payload { text: preview, hex: None, truncated: self.truncated },
            true => Payload { text: None, hex: preview, truncated: self.truncated },
        };
        Some(self.facts.kind(payload))
    }
}

/// A session socket's `client_send` or (`recv`) `client_recv`, kept without the event itself:
/// holding on to the shared event would keep its strings and its JSON alive, to be freed
/// thousands of events later from memory long gone cold. Its strings and its preview are in
/// the arena, one after the other: session, socket, `req`, preview.
#[derive(Debug, Clone, Copy)]
struct ClientEvent {
    seq: u64,
    t_us: u64,
    dg: Dg,
    /// `u64::MAX` for none.
    rtt_us: u64,
    from: Addr,
    to: Addr,
    len: u32,
    kept: u32,
    /// `u32::MAX` for none, as for `attempt`.
    member: u32,
    attempt: u32,
    at: u64,
    session_len: u8,
    socket_len: u8,
    /// `u8::MAX` for none: a request's name is at most 20 bytes and a `#`.
    req_len: u8,
    preview_len: u16,
    recv: bool,
    hex: bool,
    truncated: bool,
    owns: bool,
}

impl ClientEvent {
    /// `kind` as an entry, and the bytes it keeps in the arena (written into `text`), if it is
    /// a session socket's datagram event that fits one.
    fn of(seq: u64, t_us: u64, kind: &EventKind, text: &mut Vec<u8>) -> Option<Self> {
        let (recv, session, socket, member, dg, from, to, len, payload, attempt, req, rtt_us, kept) =
            match kind {
                EventKind::ClientSend {
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
                } => (false, session, socket, member, dg, from, to, len, payload, attempt, req, &None, len),
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
                } => (true, session, socket, member, dg, from, to, len, payload, attempt, req, rtt_us, kept),
                _ => return None,
            };
        let (hex, preview) = match (&payload.text, &payload.hex) {
            (Some(text), None) => (false, text.as_bytes()),
            (None, Some(hex)) => (true, hex.as_bytes()),
            _ => return None,
        };
        let none_or = |value: Option<u32>| match value {
            None => Some(u32::MAX),
            Some(n) => (n != u32::MAX).then_some(n),
        };
        let event = Self {
            seq,
            t_us,
            dg: *dg,
            rtt_us: match *rtt_us {
                None => u64::MAX,
                Some(us) => (us != u64::MAX).then_some(us)?,
            },
            from: Addr::exact(*from)?,
            to: Addr::exact(*to)?,
            len: u32::try_from(*len).ok()?,
            // A `client_send` has no `kept`: its own `len` stands in, and is not read back.
            kept: u32::try_from(*kept).ok()?,
            member: none_or(*member)?,
            attempt: none_or(*attempt)?,
            at: 0,
            session_len: u8::try_from(session.len()).ok()?,
            socket_len: u8::try_from(socket.len()).ok()?,
            req_len: match req {
                None => u8::MAX,
                Some(req) => u8::try_from(req.len()).ok().filter(|&n| n < u8::MAX)?,
            },
            preview_len: u16::try_from(preview.len()).ok()?,
            recv,
            hex,
            truncated: payload.truncated,
            owns: true,
        };
        text.clear();
        text.extend_from_slice(session.as_bytes());
        text.extend_from_slice(socket.as_bytes());
        text.extend_from_slice(req.as_deref().unwrap_or_default().as_bytes());
        text.extend_from_slice(preview);
        Some(event)
    }

    /// How many bytes of the arena it keeps.
    fn text_len(&self) -> usize {
        let req = if self.req_len == u8::MAX { 0 } else { usize::from(self.req_len) };
        usize::from(self.session_len) + usize::from(self.socket_len) + req + usize::from(self.preview_len)
    }

    /// The event again, its strings and preview from `bytes`.
    fn kind(&self, bytes: &Arena, scratch: &mut Vec<u8>) -> Option<EventKind> {
        scratch.clear();
        if !bytes.copy(self.at, self.text_len(), scratch) {
            return None;
        }
        let (session, rest) = scratch.split_at(usize::from(self.session_len));
        let (socket, rest) = rest.split_at(usize::from(self.socket_len));
        let (req, preview) = match self.req_len {
            u8::MAX => (None, rest),
            n => {
                let (req, preview) = rest.split_at(usize::from(n));
                (Some(String::from_utf8(req.to_vec()).ok()?), preview)
            }
        };
        let (session, socket) =
            (String::from_utf8(session.to_vec()).ok()?, String::from_utf8(socket.to_vec()).ok()?);
        let preview = Some(String::from_utf8(preview.to_vec()).ok()?);
        let payload = match self.hex {
            false => Payload { text: preview, hex: None, truncated: self.truncated },
            true => Payload { text: None, hex: preview, truncated: self.truncated },
        };
        let some = |n: u32| (n != u32::MAX).then_some(n);
        let (member, attempt) = (some(self.member), some(self.attempt));
        let (dg, from, to, len) = (self.dg, self.from.get(), self.to.get(), self.len as usize);
        Some(match self.recv {
            false => {
                EventKind::ClientSend { session, socket, member, dg, from, to, len, payload, attempt, req }
            }
            true => EventKind::ClientRecv {
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
                rtt_us: (self.rtt_us != u64::MAX).then_some(self.rtt_us),
                kept: self.kept as usize,
            },
        })
    }
}

impl History {
    pub fn new(limits: HistoryLimits, epoch: Instant) -> Self {
        let now_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let since_epoch = epoch.elapsed();
        let epoch_wall_us = u64::try_from(now_wall.saturating_sub(since_epoch).as_micros()).unwrap_or(0);
        // Previews are at most 256 bytes, 512 as hex; a session socket's event keeps its
        // session's, its socket's and its request's names too, under 255 bytes each. The ring
        // holds a batch more than it shows.
        let held = limits.events.saturating_add(evict_batch(limits.events));
        let preview_bytes = held.saturating_mul(2 * protocol::PREVIEW_BYTES + 3 * 254);
        Self {
            limits,
            epoch,
            epoch_wall_us,
            // `events` merges both rings and keeps the newest `--history` events: the events
            // ring may show all it holds.
            events: Mutex::new(Ring::new(limits.events, preview_bytes).showing_all()),
            datagrams: Mutex::new(Ring::new(limits.events, limits.bytes)),
            open_sandboxes: Mutex::default(),
        }
    }

    /// Wall-clock microseconds for a relay timestamp (`t_us`).
    pub fn wall_us(&self, t_us: u64) -> u64 {
        self.epoch_wall_us + t_us
    }

    /// Records event `seq`, stamped `t_us`. `shared` is the event as the bus hands it out, if
    /// it built one for someone watching: an event that is kept whole is then kept by sharing
    /// it, not by copying it.
    pub fn record_event(&self, seq: u64, t_us: u64, kind: &EventKind, shared: Option<&Arc<Published>>) {
        if self.limits.events == 0 || self.join(seq, t_us, kind) {
            return;
        }
        if let EventKind::SandboxOpen { server, session } | EventKind::SandboxClose { server, session } = kind
            && let Ok(mut open) = self.open_sandboxes.lock()
        {
            open.retain(|e| e.kind.server() != Some(*server) || e.kind.session() != Some(session));
            if matches!(kind, EventKind::SandboxOpen { .. }) {
                let event = shared.cloned();
                open.push(
                    event
                        .unwrap_or_else(|| Arc::new(Published::new(Event { seq, t_us, kind: kind.clone() }))),
                );
            }
        }
        let Ok(mut events) = self.events.lock() else { return };
        let events = &mut *events;
        events.make_room();
        let kept = match DatagramEvent::of(seq, t_us, kind) {
            Some((mut event, preview)) => {
                event.at = events.bytes_for_next(preview);
                Kept::Datagram(event)
            }
            None => match ClientEvent::of(seq, t_us, kind, &mut events.text) {
                Some(mut event) => {
                    let text = std::mem::take(&mut events.text);
                    event.at = events.bytes_for_next(&text);
                    events.text = text;
                    Kept::Client(event)
                }
                None => match shared {
                    Some(event) => Kept::Shared(event.clone()),
                    None => Kept::Other { seq, t_us, kind: Box::new(kind.clone()) },
                },
            },
        };
        events.push(kept);
    }

    /// Keeps a server's `server_recv` or `server_send` with its datagram's entry, if the
    /// datagram was recorded just before and the event says nothing its entry does not.
    fn join(&self, seq: u64, t_us: u64, kind: &EventKind) -> bool {
        let Some((facts, payload)) = ServerFacts::of(kind) else { return false };
        let Ok(mut seen) = self.datagrams.lock() else { return false };
        let seen = &mut *seen;
        // Among the entries shown only: one held but no longer shown counts as gone.
        let recent = RECENT.min(seen.shown);
        let Some(entry) = seen.entries.iter_mut().rev().take(recent).find(|e| e.dg == facts.dg) else {
            return false;
        };
        let event = ServerEvent {
            seq,
            t_us,
            reply_to: facts.reply_to,
            delay_ms: facts.delay_ms,
            server: facts.server,
            sent: facts.sent,
        };
        let fits = entry.event.is_none()
            && entry.facts(event) == facts
            && matches!(seen.bytes.slices(entry.at, entry.len as usize),
                Some((bytes, rest)) if rest.is_empty() && payload.is_preview_of(bytes));
        if fits {
            entry.event = Some(event);
        }
        fits
    }

    /// Records datagram `dg`. Each datagram is recorded once, by the relay socket that sent it or,
    /// when no relay socket did, by the one that read it.
    pub fn record_datagram(&self, dg: Dg, at: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let Ok(len) = u32::try_from(bytes.len()) else { return };
        if bytes.len() > self.limits.bytes || self.limits.events == 0 {
            return;
        }
        let t_us = u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        let Ok(mut seen) = self.datagrams.lock() else { return };
        let seen = &mut *seen;
        seen.make_room();
        // The byte budget is kept exactly, one datagram at a time.
        while seen.bytes.len() + bytes.len() > self.limits.bytes && seen.pop_oldest() {}
        let at = seen.bytes_for_next(bytes);
        let (from, to) = (Addr::new(from), Addr::new(to));
        let wall_us = self.wall_us(t_us);
        seen.push(SeenAt { dg, wall_us, at, len, from, to, owns: true, sent: true, event: None });
    }

    /// Strikes datagram `dg` out again: its send failed. Its event, if it has one, stays.
    pub fn unrecord_datagram(&self, dg: Dg) {
        let Ok(mut seen) = self.datagrams.lock() else { return };
        if let Some(entry) = seen.entries.iter_mut().rev().take(RECENT).find(|e| e.dg == dg) {
            entry.sent = false;
        }
    }

    /// The events kept, in `seq` order: those of their own ring and those kept with their
    /// datagrams, from where both rings remember on, the newest `--history` of them; first,
    /// the openings of the sandboxes still open from before those.
    pub fn events(&self) -> Vec<Arc<Published>> {
        self.latest_events(self.limits.events)
    }

    /// [`History::events`], the newest `most` of them (and the openings of the sandboxes
    /// still open from before those).
    pub fn latest_events(&self, most: usize) -> Vec<Arc<Published>> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let events_horizon = read_in_slices(
            &self.events,
            0..u64::MAX,
            |_| 0,
            |events, kept| {
                let event = match kept {
                    Kept::Datagram(d) => match d.kind(&events.bytes, &mut scratch) {
                        Some(kind) => Event { seq: d.seq, t_us: d.t_us, kind },
                        None => return,
                    },
                    Kept::Client(c) => match c.kind(&events.bytes, &mut scratch) {
                        Some(kind) => Event { seq: c.seq, t_us: c.t_us, kind },
                        None => return,
                    },
                    Kept::Other { seq, t_us, kind } => {
                        Event { seq: *seq, t_us: *t_us, kind: (**kind).clone() }
                    }
                    Kept::Shared(event) => return out.push((false, event.clone())),
                };
                out.push((false, Arc::new(Published::new(event))));
            },
        );
        let datagrams_horizon = read_in_slices(
            &self.datagrams,
            0..u64::MAX,
            |_| 0,
            |seen, entry| {
                if let Some(event) = seen.event(entry, &mut scratch) {
                    out.push((true, Arc::new(Published::new(event))));
                }
            },
        );
        // Each ring's events are shown from where the other ring remembers on.
        out.retain(|(with_datagram, e)| {
            e.seq > if *with_datagram { events_horizon } else { datagrams_horizon }
        });
        // Servers emit from several threads: an event may be pushed just after one with a
        // higher number.
        out.sort_unstable_by_key(|(_, e)| e.seq);
        let extra = out.len().saturating_sub(most);
        let first = out.get(extra).map_or(u64::MAX, |(_, e)| e.seq);
        let mut open: Vec<_> = self.open_sandboxes.lock().map(|open| open.clone()).unwrap_or_default();
        open.retain(|e| e.seq < first);
        open.sort_unstable_by_key(|e| e.seq);
        open.into_iter().chain(out.into_iter().skip(extra).map(|(_, e)| e)).collect()
    }

    /// The datagrams kept, oldest first.
    pub fn datagrams(&self) -> Vec<Seen> {
        self.datagrams_between(0..u64::MAX).0
    }

    /// How many datagrams have been recorded since the relay started: the number the next
    /// one will have.
    pub fn datagrams_recorded(&self) -> u64 {
        self.datagrams.lock().map(|d| d.pushed).unwrap_or_default()
    }

    /// The datagrams numbered within `numbers` (see [`History::datagrams_recorded`]) that are
    /// still kept, oldest first, and how many of those recorded were not kept any more.
    pub fn datagrams_between(&self, numbers: std::ops::Range<u64>) -> (Vec<Seen>, u64) {
        let numbers = numbers.start..numbers.end.min(self.datagrams_recorded());
        let (mut out, mut read) = (Vec::new(), 0);
        read_in_slices(
            &self.datagrams,
            numbers.clone(),
            |entry| entry.len as usize,
            |seen, entry| {
                read += 1;
                if entry.sent {
                    out.extend(seen.read(entry));
                }
            },
        );
        (out, (numbers.end.saturating_sub(numbers.start)).saturating_sub(read))
    }

    /// One datagram, if it is still kept. A scan: asked when a person clicks a datagram.
    pub fn datagram(&self, dg: Dg) -> Option<Seen> {
        let seen = self.datagrams.lock().ok()?;
        let entry = seen.entries.iter().rev().take(seen.shown).find(|s| s.dg == dg && s.sent)?;
        seen.read(entry)
    }
}

/// Reads every entry of `ring`, oldest first, a slice at a time: it lets go of the lock after
/// 256 entries, or after entries whose `bytes` (what reading each copies) come to 1 MiB, so
/// that a reader never holds up a socket for long, even reading a full history of 64 MiB.
/// Only the entries numbered within `numbers` are read; what is pushed out meanwhile is
/// skipped. Returns the ring's horizon.
fn read_in_slices<T: Owner>(
    ring: &Mutex<Ring<T>>,
    numbers: std::ops::Range<u64>,
    bytes: impl Fn(&T) -> usize,
    mut read: impl FnMut(&Ring<T>, &T),
) -> u64 {
    const SLICE: usize = 1 << 20;
    const ENTRY: usize = SLICE / 256;
    let mut horizon = 0;
    let (first, pushed) = ring.lock().map(|r| (r.first_shown(), r.pushed)).unwrap_or_default();
    let (mut next, end) = (first.max(numbers.start), pushed.min(numbers.end));
    while next < end {
        let Ok(ring) = ring.lock() else { break };
        next = next.max(ring.first_shown());
        horizon = ring.horizon_shown();
        let mut spent = 0;
        while next < end && spent < SLICE {
            if let Some(entry) = ring.get(next) {
                spent += bytes(entry).max(ENTRY);
                read(&ring, entry);
            }
            next += 1;
        }
    }
    horizon
}

impl Ring<Kept> {
    /// Shows readers every entry it holds.
    fn showing_all(mut self) -> Self {
        self.shown = usize::MAX;
        self
    }
}

/// How many of its oldest entries a full ring lets go at once: a sixteenth of what it shows,
/// at least one and at most 64.
fn evict_batch(limit: usize) -> usize {
    (limit / 16).clamp(1, 64)
}

impl Ring<SeenAt> {
    /// The server's event kept with `entry`, whole again, if it has one.
    fn event(&self, entry: &SeenAt, scratch: &mut Vec<u8>) -> Option<Event> {
        let event = entry.event?;
        scratch.clear();
        // One byte more than a preview shows tells it whether to say `truncated`.
        let head = (entry.len as usize).min(protocol::PREVIEW_BYTES + 1);
        if !self.bytes.copy(entry.at, head, scratch) {
            return None;
        }
        let kind = entry.facts(event).kind(Payload::preview(scratch));
        Some(Event { seq: event.seq, t_us: event.t_us, kind })
    }

    /// The datagram of `entry`, with its bytes, if they are still kept.
    fn read(&self, entry: &SeenAt) -> Option<Seen> {
        let mut bytes = Vec::with_capacity(entry.len as usize);
        self.bytes.copy(entry.at, entry.len as usize, &mut bytes).then(|| Seen {
            dg: entry.dg,
            wall_us: entry.wall_us,
            from: entry.from.get(),
            to: entry.to.get(),
            bytes: bytes.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ServerName;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn datagrams_are_kept_once_and_the_oldest_go_first() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 3, bytes: 10 }, epoch);
        history.record_datagram(1, epoch, addr(1), addr(2), b"abc");
        assert_eq!(history.datagrams().len(), 1);
        history.record_datagram(2, epoch, addr(1), addr(2), b"defg");
        history.record_datagram(3, epoch, addr(1), addr(2), b"hijk");
        let kept: Vec<_> = history.datagrams().iter().map(|s| s.dg).collect();
        assert_eq!(kept, [2, 3], "the byte budget pushed out the oldest");
        assert!(history.datagram(1).is_none());
        assert_eq!(history.datagram(3).map(|s| s.bytes.to_vec()), Some(b"hijk".to_vec()));
        history.record_datagram(4, epoch, addr(1), addr(2), &[0; 11]);
        assert!(history.datagram(4).is_none(), "larger than the whole budget");
    }

    #[test]
    fn a_sandbox_still_open_is_remembered_past_the_limit() {
        let history = History::new(HistoryLimits { events: 2, bytes: 10 }, Instant::now());
        let lossy = ServerName::Lossy;
        let sandbox = |open: bool, session: &str| match open {
            true => EventKind::SandboxOpen { server: lossy, session: session.into() },
            false => EventKind::SandboxClose { server: lossy, session: session.into() },
        };
        let end = EventKind::ChatEnd { server: ServerName::Chat, clients: 0 };
        history.record_event(1, 10, &sandbox(true, "a"), None);
        history.record_event(2, 20, &sandbox(true, "b"), None);
        history.record_event(3, 30, &sandbox(false, "b"), None);
        for seq in 4..10 {
            history.record_event(seq, seq * 10, &end, None);
        }
        // a's sandbox is open, b's closed: a's opening comes first, then the newest two.
        let seqs: Vec<_> = history.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 8, 9]);
        assert_eq!(history.latest_events(1).iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 9]);
        let roomy = History::new(HistoryLimits { events: 10, bytes: 10 }, Instant::now());
        roomy.record_event(1, 10, &sandbox(true, "a"), None);
        roomy.record_event(2, 20, &end, None);
        let seqs: Vec<_> = roomy.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2], "kept, it is not repeated");
        history.record_event(10, 100, &sandbox(false, "a"), None);
        let seqs: Vec<_> = history.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [9, 10]);
    }

    #[test]
    fn events_are_bounded_and_come_back_in_seq_order() {
        let history = History::new(HistoryLimits { events: 2, bytes: 10 }, Instant::now());
        let end = protocol::EventKind::ChatEnd { server: protocol::ServerName::Chat, clients: 0 };
        // Pushed out of order, as servers on several threads may: the newest two by number
        // come back, in order, whichever was pushed first.
        for seq in [3, 2, 1, 6, 5, 4] {
            history.record_event(seq, seq * 10, &end, None);
        }
        let seqs: Vec<_> = history.events().iter().map(|e| (e.seq, e.t_us)).collect();
        assert_eq!(seqs, [(5, 50), (6, 60)]);
        let kept = history.events.lock().expect("lock").entries.len();
        assert!(kept <= 2 + evict_batch(2), "{kept} entries kept for a limit of 2");
    }

    #[test]
    fn a_long_history_is_read_whole_across_slices() {
        let history = History::new(HistoryLimits { events: 1_000, bytes: 10 }, Instant::now());
        for seq in 1..=1_500 {
            let kind = protocol::EventKind::ServerRecv {
                server: protocol::ServerName::Echo,
                dg: seq,
                from: addr(1),
                to: addr(2),
                len: 1,
                payload: Payload::preview(&[seq as u8]),
            };
            history.record_event(seq, seq, &kind, None);
        }
        let events = history.events();
        let seqs: Vec<_> = events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (501..=1_500).collect::<Vec<_>>());
        assert!(events.iter().all(|e| e.kind
            == protocol::EventKind::ServerRecv {
                server: protocol::ServerName::Echo,
                dg: e.seq,
                from: addr(1),
                to: addr(2),
                len: 1,
                payload: Payload::preview(&[e.seq as u8]),
            }));
    }

    /// Every kind of preview a datagram's event can carry, kept apart and put back.
    #[test]
    fn datagram_events_come_back_exactly_as_they_were_sent() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 3, bytes: 1 << 20 }, epoch);
        let recv = |payload: &[u8], len| protocol::EventKind::ServerRecv {
            server: protocol::ServerName::Echo,
            dg: 9,
            from: addr(5000),
            to: addr(10004),
            len,
            payload: Payload::preview(payload),
        };
        let send = |payload: &[u8]| protocol::EventKind::ServerSend {
            server: protocol::ServerName::Upper,
            dg: 10,
            reply_to: Some(9),
            from: addr(8003),
            to: addr(5000),
            len: payload.len(),
            payload: Payload::preview(payload),
            delay_ms: Some(150),
        };
        let long = "é".repeat(200);
        let kinds = [
            recv(b"hello", 5),
            recv(&[0xff, 0x00, 0x7f], 3),
            send(b""),
            send(long.as_bytes()),
            recv(&[0xfe; 300], 300),
            protocol::EventKind::ClientClose { session: "s".into(), socket: "a".into(), member: None },
        ];
        for (i, kind) in kinds.iter().enumerate() {
            history.record_event(i as u64 + 1, 7, kind, None);
        }
        // The ring keeps three; the arena gave back the previews of the three pushed out.
        let back: Vec<_> = history.events().iter().map(|e| e.kind.clone()).collect();
        assert_eq!(back, kinds[3..]);
        let first = history.events().into_iter().next().expect("kept");
        let json: serde_json::Value = serde_json::from_str(first.json().expect("json")).expect("parses");
        assert_eq!(json["truncated"], true, "{json}");
        assert_eq!(
            json["text"].as_str().map(str::len),
            Some(256),
            "a cut between characters keeps whole ones"
        );
        let events = history.events.lock().expect("lock");
        let previews = events.entries.iter().map(|k| match k {
            Kept::Datagram(d) if d.owns => usize::from(d.preview_len),
            _ => 0,
        });
        let kept: usize = previews.sum();
        assert_eq!(events.bytes.len(), kept, "the arena holds exactly the kept previews");
    }

    /// A session socket's sends and receipts, with and without each optional field, kept in
    /// compact form and put back as they were; the arena holds exactly what the kept ones own.
    #[test]
    fn session_socket_events_come_back_exactly_as_they_were_sent() {
        let history = History::new(HistoryLimits { events: 6, bytes: 1 << 20 }, Instant::now());
        let send = |socket: &str, payload: &[u8], member, attempt, req: Option<&str>| {
            protocol::EventKind::ClientSend {
                session: "k3f9".into(),
                socket: socket.into(),
                member,
                dg: 41,
                from: addr(40000),
                to: "[::1]:10004".parse().expect("addr"),
                len: payload.len(),
                payload: Payload::preview(payload),
                attempt,
                req: req.map(str::to_owned),
            }
        };
        let recv = |payload: &[u8], kept, rtt_us, req: Option<&str>| protocol::EventKind::ClientRecv {
            session: "k3f9".into(),
            socket: "é-1".into(),
            member: Some(99),
            dg: 42,
            from: addr(10004),
            to: addr(40000),
            len: payload.len(),
            payload: Payload::preview(&payload[..kept]),
            attempt: Some(2),
            req: req.map(str::to_owned),
            rtt_us,
            kept,
        };
        let kinds = [
            send("a", b"ping", None, None, None),
            send("a", b"ping", None, None, None),
            recv(b"PING", 4, None, None),
            send("", b"", Some(0), Some(1), Some("#1")),
            send("b", &[0xff; 300], None, Some(3), Some("#abcdefghijklmnopqrst")),
            recv(&[b'x'; 2_000], 1_024, Some(812), Some("#7")),
            recv("上海".as_bytes(), 6, Some(0), None),
            // Too long a name to keep compact: kept as it came.
            send(&"n".repeat(300), b"ping", None, None, None),
        ];
        for (i, kind) in kinds.iter().enumerate() {
            history.record_event(i as u64 + 1, 7, kind, None);
        }
        let back: Vec<_> = history.events().iter().map(|e| e.kind.clone()).collect();
        assert_eq!(back, kinds[2..]);
        let events = history.events.lock().expect("lock");
        // The ring holds one entry more than the limit of 6 here (a batch, see `evict_batch`):
        // `kinds[1..]`, compact but for the last.
        assert_eq!(events.entries.len(), 7);
        assert_eq!(events.entries.iter().filter(|k| matches!(k, Kept::Client(_))).count(), 6);
        let owned = events.entries.iter().map(|k| match k {
            Kept::Client(c) if c.owns => c.text_len(),
            _ => 0,
        });
        assert_eq!(events.bytes.len(), owned.sum::<usize>(), "the arena holds exactly what is kept");
    }

    #[test]
    fn a_full_ring_takes_room_for_its_limit_only() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 5_000, bytes: 1 << 20 }, epoch);
        for dg in 1..=6_000 {
            history.record_datagram(dg, epoch, addr(1), addr(2), b"x");
        }
        let shown: Vec<Dg> = history.datagrams().iter().map(|s| s.dg).collect();
        assert_eq!(shown, (1_001..=6_000).collect::<Vec<_>>(), "exactly the newest 5,000 are shown");
        assert!(history.datagram(1_000).is_none(), "nor is an older one found");
        let seen = history.datagrams.lock().expect("lock");
        // Room for a batch more than it shows (see `evict_batch`), and no more.
        assert_eq!(seen.entries.capacity(), 5_000 + evict_batch(5_000));
        assert!(seen.entries.len() <= seen.entries.capacity());
    }

    #[test]
    fn the_arena_wraps_and_forgets_the_oldest() {
        let mut arena = Arena::new(8);
        let (a, _) = arena.push(b"abcde");
        arena.pop(3);
        let (b, shared) = arena.push(b"fghijk");
        assert!(!shared);
        let mut out = Vec::new();
        assert!(arena.copy(b, 6, &mut out));
        assert_eq!(out, b"fghijk");
        assert!(!arena.copy(a, 5, &mut out), "popped bytes are gone");
        out.clear();
        assert!(arena.copy(a + 3, 2, &mut out));
        assert_eq!(out, b"de");
        assert!(arena.bytes.capacity() <= 4_096, "grows only as far as asked");
    }

    #[test]
    fn reading_every_datagram_copies_them_all_in_order() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 5_000, bytes: 64 << 20 }, epoch);
        for dg in 1..=3_000u64 {
            // Larger than one slice of the copy, all together.
            let bytes = vec![(dg % 251) as u8; 1_000 + (dg as usize % 7)];
            history.record_datagram(dg, epoch, addr(1), addr(2), &bytes);
        }
        let seen = history.datagrams();
        assert_eq!(seen.len(), 3_000);
        for (i, s) in seen.iter().enumerate() {
            let dg = i as u64 + 1;
            assert_eq!(s.dg, dg);
            assert_eq!(*s.bytes, vec![(dg % 251) as u8; 1_000 + (dg as usize % 7)][..]);
        }
    }

    /// An echo's request and answer have the same bytes: kept once, and every datagram still
    /// comes back whole, whatever was pushed out, in a long random run checked against a plain
    /// list of what should be kept.
    #[test]
    fn shared_bytes_are_kept_once_and_forgotten_with_their_last_user() {
        let epoch = Instant::now();
        let limits = HistoryLimits { events: 7, bytes: 1 << 20 };
        let history = History::new(limits, epoch);
        let payloads: [&[u8]; 4] = [b"ping", b"PING", b"", b"a longer datagram"];
        let mut expected = VecDeque::new();
        let mut state = 12_345u64;
        for dg in 1..=2_000u64 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            // Often the same as the one before, as an echo's answer is.
            let bytes = payloads[(state >> 33) as usize % 2 + usize::from(dg % 5 == 0) * 2];
            history.record_datagram(dg, epoch, addr(1), addr(2), bytes);
            if expected.len() == limits.events {
                expected.pop_front();
            }
            expected.push_back((dg, bytes.to_vec()));
            let kept: Vec<_> = history.datagrams().into_iter().map(|s| (s.dg, s.bytes.to_vec())).collect();
            assert_eq!(kept, Vec::from(expected.clone()), "after datagram {dg}");
            let seen = history.datagrams.lock().expect("lock");
            let owned: usize = seen.entries.iter().filter(|s| s.owns).map(|s| s.len as usize).sum();
            assert_eq!(seen.bytes.len(), owned, "the arena holds each kept datagram's bytes once");
        }
        let seen = history.datagrams.lock().expect("lock");
        assert!(seen.bytes.len() < 7 * 17, "some bytes were shared");
    }

    #[test]
    fn an_echo_s_two_previews_are_one() {
        let history = History::new(HistoryLimits::default(), Instant::now());
        let recv = EventKind::ServerRecv {
            server: ServerName::Echo,
            dg: 1,
            from: addr(5000),
            to: addr(10004),
            len: 5,
            payload: Payload::preview(b"hello"),
        };
        let send = EventKind::ServerSend {
            server: ServerName::Echo,
            dg: 2,
            reply_to: Some(1),
            from: addr(10004),
            to: addr(5000),
            len: 5,
            payload: Payload::preview(b"hello"),
            delay_ms: None,
        };
        history.record_event(1, 1, &recv, None);
        history.record_event(2, 2, &send, None);
        assert_eq!(history.events.lock().expect("lock").bytes.len(), 5);
        let back: Vec<_> = history.events().iter().map(|e| e.kind.clone()).collect();
        assert_eq!(back, [recv, send]);
    }

    #[test]
    fn addresses_come_back_as_they_were() {
        let v6: SocketAddr = "[::1]:53".parse().expect("addr");
        let scoped = SocketAddr::V6(std::net::SocketAddrV6::new("fe80::1".parse().expect("ip"), 9, 0, 3));
        for a in
            [addr(1), "0.0.0.0:0".parse().expect("addr"), v6, "[::ffff:1.2.3.4]:7".parse().expect("addr")]
        {
            assert_eq!(Addr::exact(a).map(Addr::get), Some(a));
        }
        assert!(Addr::exact(scoped).is_none(), "an event keeps a scoped address whole instead");
        let history = History::new(HistoryLimits::default(), Instant::now());
        let kind = EventKind::ServerRecv {
            server: ServerName::Echo,
            dg: 1,
            from: scoped,
            to: v6,
            len: 1,
            payload: Payload::preview(b"x"),
        };
        history.record_event(1, 1, &kind, None);
        assert_eq!(history.events()[0].kind, kind);
    }

    fn recv(dg: Dg, bytes: &[u8]) -> EventKind {
        EventKind::ServerRecv {
            server: ServerName::Echo,
            dg,
            from: addr(5000),
            to: addr(10004),
            len: bytes.len(),
            payload: Payload::preview(bytes),
        }
    }

    fn send(dg: Dg, bytes: &[u8]) -> EventKind {
        EventKind::ServerSend {
            server: ServerName::Echo,
            dg,
            reply_to: Some(dg - 1),
            from: addr(10004),
            to: addr(5000),
            len: bytes.len(),
            payload: Payload::preview(bytes),
            delay_ms: Some(250),
        }
    }

    /// A server's events are kept with their datagrams, and come back exactly as they went,
    /// in `seq` order with the events kept on their own.
    #[test]
    fn a_server_s_events_are_kept_with_their_datagrams() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits::default(), epoch);
        let long = vec![b'x'; 1_000];
        let mut expected = Vec::new();
        let mut seq = 0;
        let mut event = |history: &History, kind: EventKind, expected: &mut Vec<EventKind>| {
            seq += 1;
            history.record_event(seq, seq * 10, &kind, None);
            expected.push(kind);
        };
        for (dg, bytes) in [(1, &b"ping"[..]), (3, &[0xff, 0xfe][..]), (5, &long[..]), (7, &b""[..])] {
            history.record_datagram(dg, epoch, addr(5000), addr(10004), bytes);
            event(&history, recv(dg, bytes), &mut expected);
            event(&history, EventKind::ChatEnd { server: ServerName::Chat, clients: 0 }, &mut expected);
            history.record_datagram(dg + 1, epoch, addr(10004), addr(5000), bytes);
            event(&history, send(dg + 1, bytes), &mut expected);
        }
        // Not the datagram's preview (another server's event about the same name), and a
        // datagram recorded long ago: kept on their own.
        let mut wrong = recv(2, b"PING");
        if let EventKind::ServerRecv { len, .. } = &mut wrong {
            *len = 4;
        }
        event(&history, wrong.clone(), &mut expected);
        event(&history, recv(1, b"ping"), &mut expected);
        let back: Vec<_> = history.events().iter().map(|e| (e.seq, e.kind.clone())).collect();
        let numbered: Vec<_> = (1..).zip(expected).collect();
        assert_eq!(back, numbered);
        assert_eq!(history.events.lock().expect("lock").entries.len(), 6, "four chat_end, the two strays");
    }

    #[test]
    fn a_failed_send_leaves_its_event_but_no_datagram() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits::default(), epoch);
        history.record_datagram(2, epoch, addr(10004), addr(5000), b"hi");
        history.record_event(1, 1, &send(2, b"hi"), None);
        history.unrecord_datagram(2);
        assert!(history.datagrams().is_empty());
        assert!(history.datagram(2).is_none());
        assert_eq!(history.events().iter().map(|e| e.kind.clone()).collect::<Vec<_>>(), [send(2, b"hi")]);
    }

    /// When the datagrams' byte budget pushes out old datagrams, with their events, the events
    /// kept on their own from that time are not shown either: no stretch of the history has
    /// only some of what happened.
    #[test]
    fn the_history_shows_only_what_both_rings_remember() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 100, bytes: 4 }, epoch);
        for (i, seq) in (1..=10).step_by(2).enumerate() {
            let (dg, bytes) = (i as u64 + 1, [b'a' + i as u8, b'!']);
            history.record_datagram(dg, epoch, addr(5000), addr(10004), &bytes);
            history.record_event(seq, 0, &recv(dg, &bytes), None);
            history.record_event(
                seq + 1,
                0,
                &EventKind::ChatEnd { server: ServerName::Chat, clients: 0 },
                None,
            );
        }
        // Two datagrams fit in four bytes, those of events 7 and 9: the history starts after
        // event 5, the last one pushed out.
        let seqs: Vec<_> = history.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [6, 7, 8, 9, 10]);
    }

    /// A datagram the ring still holds but no longer shows (it lets its oldest go a batch at a
    /// time) counts as gone, its event too: the history starts after it, without a gap.
    #[test]
    fn a_datagram_kept_but_not_shown_leaves_no_gap() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 16, bytes: 1 << 20 }, epoch);
        let end = || EventKind::ChatEnd { server: ServerName::Chat, clients: 0 };
        for seq in 1..=4 {
            history.record_event(seq, 0, &end(), None);
        }
        history.record_datagram(1, epoch, addr(5000), addr(10004), b"a");
        history.record_event(5, 0, &recv(1, b"a"), None);
        for (dg, seq) in (2..=17).zip(6..) {
            history.record_datagram(dg, epoch, addr(5000), addr(10004), b"b");
            if seq <= 20 {
                history.record_event(seq, 0, &end(), None);
            }
        }
        assert_eq!(history.datagrams.lock().expect("lock").entries.len(), 17, "datagram 1 is held");
        let seqs: Vec<_> = history.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (6..=20).collect::<Vec<_>>());
    }

    /// The event of a datagram held but no longer shown is not joined to it (where it would be
    /// hidden too), but kept on its own, as if the datagram were gone.
    #[test]
    fn an_event_is_not_joined_to_a_datagram_no_longer_shown() {
        let epoch = Instant::now();
        let history = History::new(HistoryLimits { events: 2, bytes: 1 << 20 }, epoch);
        for dg in 1..=3 {
            history.record_datagram(dg, epoch, addr(5000), addr(10004), b"a");
        }
        assert_eq!(history.datagrams.lock().expect("lock").entries.len(), 3, "datagram 1 is held");
        history.record_event(7, 0, &recv(1, b"a"), None);
        let seqs: Vec<_> = history.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [7]);
    }

    /// An event the bus built for someone watching is kept by sharing it, not by copying it.
    #[test]
    fn a_watched_event_is_kept_shared() {
        let history = History::new(HistoryLimits::default(), Instant::now());
        let kind = EventKind::ClientClose { session: "s".into(), socket: "a".into(), member: None };
        let event = Arc::new(Published::new(Event { seq: 1, t_us: 5, kind: kind.clone() }));
        history.record_event(1, 5, &kind, Some(&event));
        let kept = history.events();
        assert!(Arc::ptr_eq(&kept[0], &event), "the same event, not a copy");
    }
}
