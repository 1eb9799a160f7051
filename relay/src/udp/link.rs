//! The wire: a seeded, impaired link in front of a server, one per direction.
//!
//! Loopback is a perfect network, so the relay makes an imperfect one in user space, with no
//! root: each server's driver passes every datagram it reads through its `in` link before the
//! server sees it, and every datagram the server sends through its `out` link before the
//! socket does. A [`Link`] is a sans-I/O state machine like the servers: it is handed a
//! datagram and `now`, and answers what to deliver and when. It loses, duplicates, holds and
//! reorders datagrams, and can model IP fragmentation over an MTU (the one thing here that is a
//! model rather than the kernel: loopback's MTU is 65,536). smoltcp's `FaultInjector` and
//! netem's parameters are the references.
//!
//! Its randomness comes from a seeded RNG of its own, drawn the same number of times for every
//! datagram of a given size, so the same seed and the same traffic give the same decisions.
//! Held datagrams wait in a queue ordered by due time; the driver sleeps until the next one is
//! due and spends nothing while they wait.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{
    Dg, Dir, EventKind, HoldReason, LinkDropReason, LinkFault, LinkPatch, LinkSettings, ServerName,
};

/// How long a datagram held for reordering waits for the next one before it goes anyway.
pub const REORDER_WAIT: Duration = Duration::from_millis(200);

/// The longest delay, jitter or hold a link takes: a minute is already far past any lesson.
pub const MAX_HOLD: Duration = Duration::from_secs(60);

/// Datagrams a link holds at most at once (delayed or held by a fault), and their bytes: one
/// direction of one link never holds more than 16 MiB, however hard a peer sends into a delay.
/// What does not fit is dropped as `full`. Lessons hold a handful.
pub const MAX_HELD: usize = 4_096;
pub const MAX_HELD_BYTES: usize = 16 << 20;

/// The same for one direction of a session's sandbox link (`"scope":"own"`): a server keeps
/// one for each session that asked, so each holds far less than the shared link. 64 datagrams
/// and 128 KiB hold what a lesson does (one datagram of 65,507 bytes, reordered, among them),
/// and 256 sessions' sandboxes at four servers, both ways, hold at most 256 MiB.
pub const SANDBOX_HELD: usize = 64;
pub const SANDBOX_HELD_BYTES: usize = 128 << 10;

/// Bytes of IP header in front of each fragment, and of UDP header in front of the payload.
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// The smallest MTU IPv4 allows.
pub const MIN_MTU: u16 = 68;

/// How many IP fragments a datagram of `len` payload bytes needs over `mtu`: each carries a
/// 20-byte IP header and a multiple of 8 bytes of the 8-byte UDP header plus the payload.
pub fn fragments(len: usize, mtu: u16) -> u32 {
    let per = (usize::from(mtu).saturating_sub(IP_HEADER) / 8 * 8).max(8);
    u32::try_from((len + UDP_HEADER).div_ceil(per)).unwrap_or(u32::MAX)
}

/// A datagram crossing the link: its name, the server's other end, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub dg: Dg,
    pub peer: SocketAddr,
    /// Shared by the copies of a duplicate and of a broadcast.
    pub bytes: Arc<[u8]>,
    /// A copy the link made (`duplicate`), not a datagram handed to it.
    pub copy: bool,
}

/// A setting or fault that is out of range, naming the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LinkError {
    #[error("{field} is a probability from 0 to 1, got {value}")]
    Probability { field: &'static str, value: f64 },
    #[error("{field} may be at most {} ms", MAX_HOLD.as_millis())]
    TooLong { field: &'static str },
    #[error("mtu is from {MIN_MTU} to 65535 bytes, or 0 for none, got {0}")]
    Mtu(u16),
    #[error("a fault needs exactly one of drop_next, duplicate_next or hold_next_ms")]
    OneFault,
    #[error("only the relay's servers have links")]
    NoLink,
    #[error("a change for one session's sockets needs a session")]
    NoSession,
}

/// Checks a change and applies it to `settings`, or names what is wrong and changes nothing.
pub fn apply(settings: &LinkSettings, patch: &LinkPatch) -> Result<LinkSettings, LinkError> {
    let mut next = *settings;
    for (field, value, slot) in [
        ("loss", patch.loss, &mut next.loss),
        ("duplicate", patch.duplicate, &mut next.duplicate),
        ("reorder", patch.reorder, &mut next.reorder),
    ] {
        if let Some(value) = value {
            if !(0.0..=1.0).contains(&value) {
                return Err(LinkError::Probability { field, value });
            }
            // -0.0 is 0: it would be shown as `-0.0`.
            *slot = if value == 0.0 { 0.0 } else { value };
        }
    }
    for (field, value, slot) in [
        ("delay_ms", patch.delay_ms, &mut next.delay_ms),
        ("jitter_ms", patch.jitter_ms, &mut next.jitter_ms),
    ] {
        if let Some(value) = value {
            if Duration::from_millis(value) > MAX_HOLD {
                return Err(LinkError::TooLong { field });
            }
            *slot = value;
        }
    }
    match patch.mtu {
        Some(0) => next.mtu = None,
        Some(mtu) if mtu < MIN_MTU => return Err(LinkError::Mtu(mtu)),
        Some(mtu) => next.mtu = Some(mtu),
        None => {}
    }
    Ok(next)
}

#[derive(Debug, Default, Clone, Copy)]
struct Faults {
    drop_next: u32,
    duplicate_next: u32,
    hold_next: Option<Duration>,
}

#[derive(Debug)]
struct Held {
    due: Instant,
    /// Order of arrival, so datagrams due at the same instant leave in the order they came.
    order: u64,
    since: Instant,
    packet: Packet,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.order) == (other.due, other.order)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// One direction of one server's link.
#[derive(Debug)]
pub struct Link {
    server: ServerName,
    dir: Dir,
    settings: LinkSettings,
    faults: Faults,
    rng: fastrand::Rng,
    held: BinaryHeap<Reverse<Held>>,
    /// The datagram held back until the next one has gone by, and when it gives up waiting.
    reordered: Option<Held>,
    ready: VecDeque<Packet>,
    arrivals: u64,
    /// Bytes of the datagrams held, against `caps`.
    held_bytes: usize,
    /// The most datagrams and bytes it holds at once: [`MAX_HELD`] and [`MAX_HELD_BYTES`], or
    /// a sandbox's smaller caps.
    caps: (usize, usize),
}

/// Both directions of a server's link, as its driver holds them.
#[derive(Debug)]
pub struct Wire {
    pub inbound: Link,
    pub outbound: Link,
    server: ServerName,
    seed: u64,
}

impl Wire {
    pub fn new(server: ServerName, seed: u64, settings: protocol::Links) -> Self {
        Self {
            inbound: Link::new(server, Dir::In, seed, settings.inbound),
            outbound: Link::new(server, Dir::Out, seed, settings.outbound),
            server,
            seed,
        }
    }

    /// A wire for one session's sandbox: set as this one is now, holding nothing, with random
    /// streams of its own (from this wire's seed and `salt`), so that the sandbox changes
    /// nothing of what the shared link draws.
    pub fn sandbox(&self, salt: u64) -> Self {
        let mut wire = Self::new(self.server, mix(self.seed, salt), self.settings());
        for link in [&mut wire.inbound, &mut wire.outbound] {
            link.caps = (SANDBOX_HELD, SANDBOX_HELD_BYTES);
        }
        wire
    }

    pub fn get_mut(&mut self, dir: Dir) -> &mut Link {
        match dir {
            Dir::In => &mut self.inbound,
            Dir::Out => &mut self.outbound,
        }
    }

    pub fn settings(&self) -> protocol::Links {
        protocol::Links { inbound: self.inbound.settings(), outbound: self.outbound.settings() }
    }

    /// When the next held datagram of either direction is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.inbound.poll_timeout().into_iter().chain(self.outbound.poll_timeout()).min()
    }
}

/// A seed of its own for a sandbox, from a run's seed and the sandbox's salt (splitmix64's
/// finish of the two).
pub fn mix(seed: u64, salt: u64) -> u64 {
    let mut z = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The seed of one link's RNG, from the run's seed: its own stream, apart from the lossy
/// server's and from every other link's (splitmix64 of the seed and the link's index).
pub fn seed_for(seed: u64, server: ServerName, dir: Dir) -> u64 {
    let index = ServerName::TARGETS.iter().position(|&s| s == server).unwrap_or(0) as u64 * 2
        + u64::from(dir == Dir::Out);
    mix(seed, index + 1)
}

impl Link {
    pub fn new(server: ServerName, dir: Dir, seed: u64, settings: LinkSettings) -> Self {
        Self {
            server,
            dir,
            settings,
            faults: Faults::default(),
            rng: fastrand::Rng::with_seed(seed_for(seed, server, dir)),
            held: BinaryHeap::new(),
            reordered: None,
            ready: VecDeque::new(),
            arrivals: 0,
            held_bytes: 0,
            caps: (MAX_HELD, MAX_HELD_BYTES),
        }
    }

    /// Whether a datagram would cross untouched and nothing waits: then the driver skips the
    /// link entirely, and a link that is off costs nothing.
    pub fn is_idle(&self) -> bool {
        self.settings.is_off()
            && self.faults.drop_next == 0
            && self.faults.duplicate_next == 0
            && self.faults.hold_next.is_none()
            && self.held.is_empty()
            && self.reordered.is_none()
            && self.ready.is_empty()
    }

    pub fn settings(&self) -> LinkSettings {
        self.settings
    }

    /// Changes some settings, keeping the others.
    pub fn configure(&mut self, patch: &LinkPatch) -> Result<LinkSettings, LinkError> {
        self.settings = apply(&self.settings, patch)?;
        Ok(self.settings)
    }

    /// Aims a fault at the next datagrams.
    pub fn fault(&mut self, fault: &LinkFault) -> Result<(), LinkError> {
        match (fault.drop_next, fault.duplicate_next, fault.hold_next_ms) {
            (Some(n), None, None) => self.faults.drop_next = self.faults.drop_next.saturating_add(n),
            (None, Some(n), None) => {
                self.faults.duplicate_next = self.faults.duplicate_next.saturating_add(n)
            }
            (None, None, Some(ms)) if Duration::from_millis(ms) > MAX_HOLD => {
                return Err(LinkError::TooLong { field: "hold_next_ms" });
            }
            (None, None, Some(ms)) => self.faults.hold_next = Some(Duration::from_millis(ms)),
            _ => return Err(LinkError::OneFault),
        }
        Ok(())
    }

    /// A datagram enters the link at `now`. What comes out, now or later, is taken with
    /// [`Link::pop_ready`]; `name` names a duplicate's copy.
    pub fn push(
        &mut self,
        now: Instant,
        packet: Packet,
        events: &mut Vec<EventKind>,
        mut name: impl FnMut() -> Dg,
    ) {
        let (server, dir, dg, peer, len) =
            (self.server, self.dir, packet.dg, packet.peer, packet.bytes.len());
        let s = self.settings;
        // Every draw is made for every datagram, whatever the settings and faults, so the
        // decisions for a seed depend only on the traffic.
        let count = s.mtu.map_or(1, |mtu| fragments(len, mtu));
        let lost_fragment = (1..=count).fold(None, |lost, i| {
            let r = self.rng.f64();
            lost.or((r < s.loss).then_some(i))
        });
        let (dup_draw, reorder_draw, jitter_draw) = (self.rng.f64(), self.rng.f64(), self.rng.f64());

        let drop = |events: &mut Vec<EventKind>, reason, fragment: Option<u32>| {
            let fragments = fragment.map(|_| count);
            events.push(EventKind::LinkDrop { server, dir, dg, peer, len, reason, fragment, fragments });
        };
        if self.faults.drop_next > 0 {
            self.faults.drop_next -= 1;
            return drop(events, LinkDropReason::Fault, None);
        }
        if let Some(i) = lost_fragment {
            return match s.mtu {
                Some(_) if count > 1 => drop(events, LinkDropReason::Fragment, Some(i)),
                _ => drop(events, LinkDropReason::Loss, None),
            };
        }
        let copy = if self.faults.duplicate_next > 0 {
            self.faults.duplicate_next -= 1;
            true
        } else {
            dup_draw < s.duplicate
        };
        let jitter = Duration::from_millis(s.jitter_ms).mul_f64(jitter_draw);
        let reorder = reorder_draw < s.reorder && self.reordered.is_none();
        // A hold fault waits for a datagram it can hold: not one held back for reordering.
        let hold = if reorder { None } else { self.faults.hold_next.take() };
        let (wait, reason) = match hold {
            Some(hold) => (hold, HoldReason::Fault),
            None => (Duration::from_millis(s.delay_ms) + jitter, HoldReason::Delay),
        };

        let mut copies = vec![packet];
        if copy {
            let mut second = copies[0].clone();
            second.dg = name();
            second.copy = true;
            events.push(EventKind::LinkDuplicate { server, dir, dg, copy: second.dg, peer });
            copies.push(second);
        }
        for (i, packet) in copies.into_iter().enumerate() {
            self.arrivals += 1;
            let order = self.arrivals;
            let dg = packet.dg;
            let holds = (reorder && i == 0) || !wait.is_zero();
            if holds && (self.held.len() >= self.caps.0 || self.held_bytes + len > self.caps.1) {
                let reason = LinkDropReason::Full;
                events.push(EventKind::LinkDrop {
                    server,
                    dir,
                    dg,
                    peer,
                    len,
                    reason,
                    fragment: None,
                    fragments: None,
                });
                continue;
            }
            if holds {
                self.held_bytes += len;
            }
            // One datagram at a time is held for reordering; the next one passes it.
            if reorder && i == 0 {
                events.push(EventKind::LinkHold {
                    server,
                    dir,
                    dg,
                    peer,
                    reason: HoldReason::Reorder,
                    hold_ms: None,
                });
                self.reordered = Some(Held { due: now + REORDER_WAIT, order, since: now, packet });
            } else if !wait.is_zero() {
                let hold_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
                events.push(EventKind::LinkHold { server, dir, dg, peer, reason, hold_ms });
                self.held.push(Reverse(Held { due: now + wait, order, since: now, packet }));
            } else {
                self.deliver(now, packet, events);
            }
        }
    }

    /// `packet` goes on; one held back for reordering follows it.
    fn deliver(&mut self, now: Instant, packet: Packet, events: &mut Vec<EventKind>) {
        self.ready.push_back(packet);
        if let Some(held) = self.reordered.take() {
            self.release(now, held, events);
        }
    }

    fn release(&mut self, now: Instant, held: Held, events: &mut Vec<EventKind>) {
        let (server, dir) = (self.server, self.dir);
        let Held { since, packet, .. } = held;
        self.held_bytes = self.held_bytes.saturating_sub(packet.bytes.len());
        let held_us = u64::try_from(now.saturating_duration_since(since).as_micros()).unwrap_or(u64::MAX);
        events.push(EventKind::LinkRelease { server, dir, dg: packet.dg, peer: packet.peer, held_us });
        self.ready.push_back(packet);
    }

    /// When the next held datagram is due, if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let held = self.held.peek().map(|Reverse(h)| h.due);
        let reordered = self.reordered.as_ref().map(|h| h.due);
        held.into_iter().chain(reordered).min()
    }

    /// Releases every datagram due by `due_by`, in due order, at `now` (which may be a little
    /// earlier: the driver lets go of what is due within half a timer tick).
    pub fn release_due(&mut self, due_by: Instant, now: Instant, events: &mut Vec<EventKind>) {
        while self.held.peek().is_some_and(|Reverse(h)| h.due <= due_by) {
            if let Some(Reverse(held)) = self.held.pop() {
                self.release(now, held, events);
                // A delayed datagram going by passes one held for reordering, too.
                if let Some(reordered) = self.reordered.take() {
                    self.release(now, reordered, events);
                }
            }
        }
        if self.reordered.as_ref().is_some_and(|h| h.due <= due_by)
            && let Some(held) = self.reordered.take()
        {
            self.release(now, held, events);
        }
    }

    /// The next datagram that has crossed the link.
    pub fn pop_ready(&mut self) -> Option<Packet> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "127.0.0.1:5000".parse().expect("addr")
    }

    fn link(settings: LinkSettings) -> Link {
        Link::new(ServerName::Echo, Dir::Out, 42, settings)
    }

    fn packet(dg: Dg, len: usize) -> Packet {
        Packet { dg, peer: peer(), bytes: vec![b'x'; len].into(), copy: false }
    }

    /// Pushes datagrams 1..=n at `now`; returns what came out at once and the events.
    fn run(link: &mut Link, now: Instant, n: u64) -> (Vec<Dg>, Vec<EventKind>) {
        let mut events = Vec::new();
        let mut next = 1000;
        for dg in 1..=n {
            link.push(now, packet(dg, 10), &mut events, || {
                next += 1;
                next
            });
        }
        (std::iter::from_fn(|| link.pop_ready()).map(|p| p.dg).collect(), events)
    }

    #[test]
    fn an_off_link_is_idle_and_passes_everything_untouched() {
        let mut l = link(LinkSettings::default());
        assert!(l.is_idle());
        let (out, events) = run(&mut l, Instant::now(), 5);
        assert_eq!(out, [1, 2, 3, 4, 5]);
        assert!(events.is_empty());
    }

    #[test]
    fn the_seed_fixes_which_datagrams_drop_and_which_are_copied() {
        let settings = LinkSettings { loss: 0.3, duplicate: 0.2, ..Default::default() };
        let now = Instant::now();
        let (out, events) = run(&mut link(settings), now, 20);
        // Pinned: `--seed 42` must replay the same losses in every build.
        assert_eq!(out, [1, 2, 1001, 4, 1002, 5, 6, 7, 10, 1003, 11, 13, 14, 15, 1004, 16, 18, 1005, 19, 20]);
        let dropped: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                EventKind::LinkDrop { dg, reason: LinkDropReason::Loss, .. } => Some(*dg),
                _ => None,
            })
            .collect();
        assert_eq!(dropped, [3, 8, 9, 12, 17]);
        let (again, _) = run(&mut link(settings), now, 20);
        assert_eq!(again, out, "the same seed and traffic, the same decisions");
        let mut other = Link::new(ServerName::Echo, Dir::In, 42, settings);
        assert_ne!(run(&mut other, now, 20).0, out, "each direction has its own stream");
    }

    #[test]
    fn a_reordered_datagram_goes_after_the_next_one_or_after_a_bounded_wait() {
        let mut l = link(LinkSettings { reorder: 1.0, ..Default::default() });
        let now = Instant::now();
        let (out, _) = run(&mut l, now, 3);
        // 1 is held until 2 passes it; 3 is held in turn, and nothing follows it.
        assert_eq!(out, [2, 1]);
        assert_eq!(l.poll_timeout(), Some(now + REORDER_WAIT));
        let mut events = Vec::new();
        l.release_due(
            now + REORDER_WAIT - Duration::from_nanos(1),
            now + REORDER_WAIT - Duration::from_nanos(1),
            &mut events,
        );
        assert_eq!(l.pop_ready(), None);
        l.release_due(now + REORDER_WAIT, now + REORDER_WAIT, &mut events);
        assert_eq!(l.pop_ready().map(|p| p.dg), Some(3), "none followed: it goes after the wait");
        assert!(matches!(events.as_slice(), [EventKind::LinkRelease { dg: 3, held_us: 200_000, .. }]));

        // With half the datagrams reordered, the seed fixes the order.
        let mut l = link(LinkSettings { reorder: 0.5, ..Default::default() });
        let (out, _) = run(&mut l, now, 10);
        assert_eq!(out, [2, 1, 3, 5, 4, 7, 6, 9, 8, 10]);
    }

    #[test]
    fn delay_and_jitter_hold_datagrams_and_jitter_lets_them_overtake() {
        let mut l = link(LinkSettings { delay_ms: 100, jitter_ms: 50, ..Default::default() });
        let now = Instant::now();
        let (out, events) = run(&mut l, now, 5);
        assert!(out.is_empty());
        let holds: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                EventKind::LinkHold { hold_ms: Some(ms), reason: HoldReason::Delay, .. } => Some(*ms),
                _ => None,
            })
            .collect();
        assert!(holds.iter().all(|ms| (100..=150).contains(ms)), "{holds:?}");
        let mut order = Vec::new();
        let mut events = Vec::new();
        while let Some(at) = l.poll_timeout() {
            assert!(at >= now + Duration::from_millis(100));
            l.release_due(at, at, &mut events);
            order.extend(std::iter::from_fn(|| l.pop_ready()).map(|p| p.dg));
        }
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 2, 3, 4, 5]);
        assert_ne!(order, sorted, "with jitter, datagrams overtake each other (seed 42)");
        assert_eq!(l.poll_timeout(), None, "nothing is left waiting");
    }

    #[test]
    fn faults_hit_exactly_the_next_datagrams() {
        let mut l = link(LinkSettings::default());
        l.fault(&LinkFault { drop_next: Some(2), ..Default::default() }).expect("fault");
        assert!(!l.is_idle());
        let now = Instant::now();
        let (out, events) = run(&mut l, now, 3);
        assert_eq!(out, [3]);
        assert_eq!(events.len(), 2);
        assert!(l.is_idle());

        l.fault(&LinkFault { duplicate_next: Some(1), ..Default::default() }).expect("fault");
        let (out, _) = run(&mut l, now, 2);
        assert_eq!(out, [1, 1001, 2]);

        l.fault(&LinkFault { hold_next_ms: Some(500), ..Default::default() }).expect("fault");
        let (out, events) = run(&mut l, now, 2);
        assert_eq!(out, [2]);
        assert!(matches!(
            events[0],
            EventKind::LinkHold { dg: 1, reason: HoldReason::Fault, hold_ms: Some(500), .. }
        ));
        assert_eq!(l.poll_timeout(), Some(now + Duration::from_millis(500)));

        assert_eq!(l.fault(&LinkFault::default()), Err(LinkError::OneFault));
        let two = LinkFault { drop_next: Some(1), duplicate_next: Some(1), ..Default::default() };
        assert_eq!(l.fault(&two), Err(LinkError::OneFault));
    }

    #[test]
    fn a_full_link_drops_what_it_cannot_hold_and_says_so() {
        let mut l = link(LinkSettings { delay_ms: 100, ..Default::default() });
        let now = Instant::now();
        let mut events = Vec::new();
        let big = MAX_HELD_BYTES / 65_507;
        for dg in 0..=big as u64 {
            l.push(now, packet(dg, 65_507), &mut events, || 0);
        }
        let full: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                EventKind::LinkDrop { dg, reason: LinkDropReason::Full, .. } => Some(*dg),
                _ => None,
            })
            .collect();
        assert_eq!(full, [big as u64], "the one past 16 MiB");
        // Once released, the room is there again.
        let mut events = Vec::new();
        l.release_due(now + Duration::from_millis(100), now + Duration::from_millis(100), &mut events);
        l.push(now, packet(9_999, 65_507), &mut events, || 0);
        assert!(!events.iter().any(|e| matches!(e, EventKind::LinkDrop { .. })));
        assert_eq!(l.fault(&LinkFault { drop_next: Some(u32::MAX), ..Default::default() }), Ok(()));
        assert_eq!(
            l.fault(&LinkFault { drop_next: Some(u32::MAX), ..Default::default() }),
            Ok(()),
            "saturates"
        );
    }

    #[test]
    fn a_sandbox_is_set_as_its_link_is_and_holds_far_less() {
        let settings = LinkSettings { delay_ms: 100, ..Default::default() };
        let shared =
            Wire::new(ServerName::Echo, 7, protocol::Links { inbound: settings, outbound: settings });
        let mut sandbox = shared.sandbox(1);
        assert_eq!(sandbox.settings(), shared.settings());
        let now = Instant::now();
        let mut events = Vec::new();
        // One datagram of 65,507 bytes fits, and another; a third is past 128 KiB.
        for dg in 0..3 {
            sandbox.inbound.push(now, packet(dg, 65_507), &mut events, || 0);
        }
        let full = |events: &[EventKind]| {
            let dropped =
                |e: &&EventKind| matches!(e, EventKind::LinkDrop { reason: LinkDropReason::Full, .. });
            events.iter().filter(dropped).count()
        };
        assert_eq!(full(&events), 1, "{events:?}");
        // Small ones: 64 at most.
        let mut events = Vec::new();
        for dg in 10..80 {
            sandbox.outbound.push(now, packet(dg, 10), &mut events, || 0);
        }
        assert_eq!(full(&events), (80 - 10) - SANDBOX_HELD);
    }

    #[test]
    fn fragment_counts_follow_the_mtu() {
        // 20 bytes of IP header; payloads in multiples of 8: 1,480 bytes a fragment at 1,500.
        assert_eq!(fragments(1472, 1500), 1, "the largest that fits one 1,500-byte packet");
        assert_eq!(fragments(1473, 1500), 2);
        assert_eq!(fragments(2000, 1500), 2);
        assert_eq!(fragments(65_507, 1500), 45);
        assert_eq!(fragments(0, 68), 1);
        assert_eq!(fragments(100, 68), 3, "48 bytes a fragment at the IPv4 minimum");
        assert_eq!(fragments(65_507, 65_535), 2, "a 65,515-byte IP payload does not fit 65,515 - 20");
    }

    #[test]
    fn with_an_mtu_loss_applies_to_each_fragment() {
        let settings = LinkSettings { loss: 0.05, mtu: Some(1500), ..Default::default() };
        let now = Instant::now();
        let mut big = link(settings);
        let mut small = link(settings);
        let mut events = Vec::new();
        let (mut lost_big, mut lost_small) = (0, 0);
        for dg in 0..200 {
            big.push(now, packet(dg, 65_507), &mut events, || 0);
            small.push(now, packet(dg, 100), &mut Vec::new(), || 0);
            lost_big += usize::from(big.pop_ready().is_none());
            lost_small += usize::from(small.pop_ready().is_none());
        }
        // 45 fragments: 1 - 0.95^45 = 90% of big datagrams are lost, 5% of small ones.
        assert!(lost_big > 150 && lost_small < 25, "big {lost_big}, small {lost_small}");
        assert!(events.iter().all(|e| matches!(
            e,
            EventKind::LinkDrop {
                reason: LinkDropReason::Fragment,
                fragments: Some(45),
                fragment: Some(1..=45),
                ..
            }
        )));
    }

    #[test]
    fn settings_are_checked_and_name_the_field() {
        let s = LinkSettings::default();
        let bad = LinkPatch { duplicate: Some(1.5), ..Default::default() };
        assert_eq!(
            apply(&s, &bad).map_err(|e| e.to_string()),
            Err("duplicate is a probability from 0 to 1, got 1.5".into())
        );
        assert!(apply(&s, &LinkPatch { loss: Some(f64::NAN), ..Default::default() }).is_err());
        assert!(apply(&s, &LinkPatch { delay_ms: Some(60_001), ..Default::default() }).is_err());
        assert_eq!(apply(&s, &LinkPatch { mtu: Some(67), ..Default::default() }), Err(LinkError::Mtu(67)));
        let on =
            apply(&s, &LinkPatch { mtu: Some(1500), loss: Some(0.1), ..Default::default() }).expect("valid");
        assert_eq!((on.mtu, on.loss), (Some(1500), 0.1));
        let off = apply(&on, &LinkPatch { mtu: Some(0), ..Default::default() }).expect("valid");
        assert_eq!((off.mtu, off.loss), (None, 0.1), "the other settings are kept");
    }
}
