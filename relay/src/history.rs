//! The relay's recent past: one bounded history of events, and of the datagrams they are
//! about with their whole bytes.
//!
//! It is on by default, because a capture or a replay that must be switched on before the
//! interesting moment is useless in class. The bus records every event here as it emits it,
//! and each socket's driver records every datagram it reads or sends. Three things read it:
//! `GET /api/events.jsonl` (the events, as the WebSocket sends them), `GET /api/capture.pcapng`
//! (the datagrams, for Wireshark) and a projector's backlog (`subscribe` with `history`).
//!
//! Both rings are bounded (`--history`, and a byte budget for the datagrams' bytes); the oldest
//! entries go first. A lock is held for one push or one copy of the rings' handles, never across
//! an await.

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

/// Recording is on the path of every datagram, so it allocates nothing and frees nothing
/// there: entries are plain values in rings that, once grown, are reused in place, and the
/// bytes they carry (a datagram's, a preview's) are copied into an [`Arena`]. Full events and
/// shared bytes are built again only when someone reads the history.
#[derive(Debug)]
pub struct History {
    limits: HistoryLimits,
    /// The relay's start, on both clocks: events are stamped with the monotonic one.
    epoch: Instant,
    epoch_wall_us: u64,
    events: Mutex<Events>,
    datagrams: Mutex<Datagrams>,
}

/// Bytes kept oldest first, each byte at a position that only grows, so an entry can name its
/// bytes by position and find them gone once they have been pushed out.
#[derive(Debug, Default)]
struct Arena {
    bytes: VecDeque<u8>,
    /// The position of `bytes[0]`.
    start: u64,
    /// What `bytes` may grow to.
    max: usize,
}

impl Arena {
    fn new(max: usize) -> Self {
        Self { bytes: VecDeque::new(), start: 0, max }
    }

    fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Appends `data`, returning its position. The caller has made room.
    fn push(&mut self, data: &[u8]) -> u64 {
        let at = self.start + self.bytes.len() as u64;
        let needed = self.bytes.len() + data.len();
        if needed > self.bytes.capacity() {
            // Double, as a `VecDeque` would, but never past the budget.
            let target = (self.bytes.capacity() * 2).max(needed).max(4_096).min(self.max.max(needed));
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend(data);
        at
    }

    /// Forgets the oldest `len` bytes.
    fn pop(&mut self, len: usize) {
        let len = len.min(self.bytes.len());
        self.bytes.drain(..len);
        self.start += len as u64;
    }

    /// Appends the `len` bytes at `at` to `out`; false if they are no longer kept.
    fn copy(&self, at: u64, len: usize, out: &mut Vec<u8>) -> bool {
        let Some(offset) = at.checked_sub(self.start).and_then(|o| usize::try_from(o).ok()) else {
            return false;
        };
        if offset + len > self.bytes.len() {
            return false;
        }
        let (head, tail) = self.bytes.as_slices();
        let end = offset + len;
        if end <= head.len() {
            out.extend_from_slice(&head[offset..end]);
        } else if offset >= head.len() {
            out.extend_from_slice(&tail[offset - head.len()..end - head.len()]);
        } else {
            out.extend_from_slice(&head[offset..]);
            out.extend_from_slice(&tail[..end - head.len()]);
        }
        true
    }
}

/// A datagram's entry; its bytes are in the ring's arena.
#[derive(Debug, Clone, Copy)]
struct SeenAt {
    dg: Dg,
    wall_us: u64,
    from: SocketAddr,
    to: SocketAddr,
    at: u64,
    len: usize,
}

#[derive(Debug)]
struct Datagrams {
    ring: VecDeque<SeenAt>,
    bytes: Arena,
}

/// An event's entry. The events about a datagram that a server read or sent (nearly all of
/// them) are kept compactly, about half the size of an `EventKind`, their preview in the
/// ring's arena; the rest as they came.
#[derive(Debug)]
struct Kept {
    seq: u64,
    t_us: u64,
    what: What,
}

#[derive(Debug)]
enum What {
    Datagram(DatagramEvent),
    Other(Box<EventKind>),
}

/// A `server_recv` (when `reply_to`, `delay_ms` and `sent` are unset) or a `server_send`.
#[derive(Debug, Clone, Copy)]
struct DatagramEvent {
    sent: bool,
    server: ServerName,
    dg: Dg,
    reply_to: Option<Dg>,
    delay_ms: Option<u64>,
    from: SocketAddr,
    to: SocketAddr,
    len: usize,
    preview: Preview,
}

/// Where a kept event's preview went: its `text`, then its `hex`, at `at` in the arena.
#[derive(Debug, Clone, Copy)]
struct Preview {
    at: u64,
    text: Option<u32>,
    hex: Option<u32>,
    truncated: bool,
}

impl Preview {
    fn len(&self) -> usize {
        (self.text.unwrap_or(0) + self.hex.unwrap_or(0)) as usize
    }
}

#[derive(Debug)]
struct Events {
    ring: VecDeque<Kept>,
    text: Arena,
    /// Entries ever pushed: the newest entry is number `pushed - 1`.
    pushed: u64,
}

impl Events {
    /// The number of the oldest entry kept.
    fn first(&self) -> u64 {
        self.pushed - self.ring.len() as u64
    }

    /// Keeps the datagram event `kind`, its preview copied into the arena, if it is one.
    fn datagram_event(&mut self, kind: &EventKind) -> Option<DatagramEvent> {
        let (sent, server, dg, reply_to, delay_ms, from, to, len, payload) = match kind {
            EventKind::ServerRecv { server, dg, from, to, len, payload } => {
                (false, *server, *dg, None, None, *from, *to, *len, payload)
            }
            EventKind::ServerSend { server, dg, reply_to, from, to, len, payload, delay_ms } => {
                (true, *server, *dg, *reply_to, *delay_ms, *from, *to, *len, payload)
            }
            _ => return None,
        };
        let (text, hex) = (payload.text.as_deref(), payload.hex.as_deref());
        let at = self.text.push(text.unwrap_or_default().as_bytes());
        self.text.push(hex.unwrap_or_default().as_bytes());
        // Previews are at most 512 bytes.
        let size = |s: &str| u32::try_from(s.len()).unwrap_or(u32::MAX);
        let preview = Preview { at, text: text.map(size), hex: hex.map(size), truncated: payload.truncated };
        Some(DatagramEvent { sent, server, dg, reply_to, delay_ms, from, to, len, preview })
    }

    /// The event kept as `what`, whole again; `None` if its preview is no longer kept.
    fn kind(&self, what: &What, bytes: &mut Vec<u8>) -> Option<EventKind> {
        let d = match what {
            What::Other(kind) => return Some((**kind).clone()),
            What::Datagram(d) => d,
        };
        bytes.clear();
        if !self.text.copy(d.preview.at, d.preview.len(), bytes) {
            return None;
        }
        let (text, hex) = bytes.split_at(d.preview.text.unwrap_or(0) as usize);
        let string = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let payload = Payload {
            text: d.preview.text.map(|_| string(text)),
            hex: d.preview.hex.map(|_| string(hex)),
            truncated: d.preview.truncated,
        };
        let (server, dg, from, to, len) = (d.server, d.dg, d.from, d.to, d.len);
        Some(match d.sent {
            false => EventKind::ServerRecv { server, dg, from, to, len, payload },
            true => {
                let (reply_to, delay_ms) = (d.reply_to, d.delay_ms);
                EventKind::ServerSend { server, dg, reply_to, from, to, len, payload, delay_ms }
            }
        })
    }
}

impl History {
    pub fn new(limits: HistoryLimits, epoch: Instant) -> Self {
        let now_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let since_epoch = epoch.elapsed();
        let epoch_wall_us = u64::try_from(now_wall.saturating_sub(since_epoch).as_micros()).unwrap_or(0);
        // Previews are at most 256 bytes, 512 as hex.
        let preview_bytes = limits.events.saturating_mul(2 * protocol::PREVIEW_BYTES);
        Self {
            limits,
            epoch,
            epoch_wall_us,
            events: Mutex::new(Events {
                ring: VecDeque::with_capacity(limits.events.min(4_096)),
                text: Arena::new(preview_bytes),
                pushed: 0,
            }),
            datagrams: Mutex::new(Datagrams {
                ring: VecDeque::with_capacity(limits.events.min(4_096)),
                bytes: Arena::new(limits.bytes),
            }),
        }
    }

    /// Wall-clock microseconds for a relay timestamp (`t_us`).
    pub fn wall_us(&self, t_us: u64) -> u64 {
        self.epoch_wall_us + t_us
    }

    /// Records event `seq`, stamped `t_us`.
    pub fn record_event(&self, seq: u64, t_us: u64, kind: &EventKind) {
        if self.limits.events == 0 {
            return;
        }
        let Ok(mut events) = self.events.lock() else { return };
        let events = &mut *events;
        if events.ring.len() >= self.limits.events
            && let Some(Kept { what: What::Datagram(old), .. }) = events.ring.pop_front()
        {
            let preview = old.preview;
            events.text.pop(preview.len());
        }
        let what = match events.datagram_event(kind) {
            Some(d) => What::Datagram(d),
            None => What::Other(Box::new(kind.clone())),
        };
        events.ring.push_back(Kept { seq, t_us, what });
        events.pushed += 1;
    }

    /// Records datagram `dg`. Each datagram is recorded once, by the relay socket that sent it or,
    /// when no relay socket did, by the one that read it.
    pub fn record_datagram(&self, dg: Dg, at: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        if bytes.len() > self.limits.bytes || self.limits.events == 0 {
            return;
        }
        let t_us = u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        let Ok(mut seen) = self.datagrams.lock() else { return };
        let seen = &mut *seen;
        while seen.ring.len() >= self.limits.events || seen.bytes.len() + bytes.len() > self.limits.bytes {
            let Some(old) = seen.ring.pop_front() else { break };
            seen.bytes.pop(old.len);
        }
        let at = seen.bytes.push(bytes);
        seen.ring.push_back(SeenAt { dg, wall_us: self.wall_us(t_us), from, to, at, len: bytes.len() });
    }

    /// The events kept, in `seq` order. They are rebuilt a slice at a time, letting go of the
    /// lock in between, so that a reader never holds up a socket for long.
    pub fn events(&self) -> Vec<Arc<Published>> {
        const SLICE: u64 = 256;
        let Ok(events) = self.events.lock() else { return Vec::new() };
        let (mut next, end) = (events.first(), events.pushed);
        drop(events);
        let mut out = Vec::with_capacity(usize::try_from(end - next).unwrap_or(0));
        let mut bytes = Vec::new();
        while next < end {
            let Ok(events) = self.events.lock() else { break };
            // What was pushed out meanwhile is skipped.
            next = next.max(events.first());
            let slice = next..end.min(next + SLICE);
            for position in slice.clone() {
                let Some(kept) =
                    usize::try_from(position - events.first()).ok().and_then(|i| events.ring.get(i))
                else {
                    continue;
                };
                let Some(kind) = events.kind(&kept.what, &mut bytes) else { continue };
                out.push(Arc::new(Published::new(Event { seq: kept.seq, t_us: kept.t_us, kind })));
            }
            next = slice.end;
        }
        // Servers emit from several threads: an event may be pushed just after one with a
        // higher number.
        out.sort_by_key(|e| e.seq);
        out
    }

    /// The datagrams kept, oldest first. Their bytes are copied a slice at a time, letting go
    /// of the lock in between, so that reading a full history (64 MiB) never holds up a socket
    /// for longer than copying one slice.
    pub fn datagrams(&self) -> Vec<Seen> {
        const SLICE: usize = 1 << 20;
        let entries: Vec<SeenAt> =
            self.datagrams.lock().map(|d| d.ring.iter().copied().collect()).unwrap_or_default();
        let mut out = Vec::with_capacity(entries.len());
        let mut rest = entries.as_slice();
        while !rest.is_empty() {
            let Ok(seen) = self.datagrams.lock() else { break };
            let mut copied = 0;
            while let Some((entry, more)) = rest.split_first()
                && (copied == 0 || copied + entry.len <= SLICE)
            {
                rest = more;
                copied += entry.len.max(1);
                if let Some(seen) = seen.read(entry) {
                    out.push(seen);
                }
            }
        }
        out
    }

    /// One datagram, if it is still kept. A scan: asked when a person clicks a datagram.
    pub fn datagram(&self, dg: Dg) -> Option<Seen> {
        let seen = self.datagrams.lock().ok()?;
        let entry = seen.ring.iter().rev().find(|s| s.dg == dg)?;
        seen.read(entry)
    }
}

impl Datagrams {
    /// The datagram of `entry`, with its bytes, if they are still kept.
    fn read(&self, entry: &SeenAt) -> Option<Seen> {
        let mut bytes = Vec::with_capacity(entry.len);
        self.bytes.copy(entry.at, entry.len, &mut bytes).then(|| Seen {
            dg: entry.dg,
            wall_us: entry.wall_us,
            from: entry.from,
            to: entry.to,
            bytes: bytes.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn events_are_bounded_and_come_back_in_seq_order() {
        let history = History::new(HistoryLimits { events: 2, bytes: 10 }, Instant::now());
        let end = protocol::EventKind::ChatEnd { server: protocol::ServerName::Chat, clients: 0 };
        history.record_event(3, 30, &end);
        history.record_event(2, 20, &end);
        history.record_event(1, 10, &end);
        let seqs: Vec<_> = history.events().iter().map(|e| (e.seq, e.t_us)).collect();
        assert_eq!(seqs, [(1, 10), (2, 20)]);
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
            history.record_event(seq, seq, &kind);
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
            history.record_event(i as u64 + 1, 7, kind);
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
        let previews = events.ring.iter().map(|k| match &k.what {
            What::Datagram(d) => d.preview.len(),
            What::Other(_) => 0,
        });
        let kept: usize = previews.sum();
        assert_eq!(events.text.len(), kept, "the arena holds exactly the kept previews");
    }

    #[test]
    fn the_arena_wraps_and_forgets_the_oldest() {
        let mut arena = Arena::new(8);
        let a = arena.push(b"abcde");
        arena.pop(3);
        let b = arena.push(b"fghijk");
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
}
