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

use protocol::Dg;

use crate::bus::Published;

/// How much the history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Events kept, and datagrams kept (`--history`). 0 turns the history off. 5,000 events
    /// are a lesson several times over, and what a projector's backlog asks for; a longer ring
    /// costs every datagram more (its entries fall out of the caches).
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

#[derive(Debug, Default)]
struct Datagrams {
    ring: VecDeque<Seen>,
    bytes: usize,
}

#[derive(Debug)]
pub struct History {
    limits: HistoryLimits,
    /// The relay's start, on both clocks: events are stamped with the monotonic one.
    epoch: Instant,
    epoch_wall_us: u64,
    events: Mutex<VecDeque<Arc<Published>>>,
    datagrams: Mutex<Datagrams>,
}

impl History {
    pub fn new(limits: HistoryLimits, epoch: Instant) -> Self {
        let now_wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let since_epoch = epoch.elapsed();
        let epoch_wall_us = u64::try_from(now_wall.saturating_sub(since_epoch).as_micros()).unwrap_or(0);
        Self {
            limits,
            epoch,
            epoch_wall_us,
            events: Mutex::new(VecDeque::with_capacity(limits.events.min(4_096))),
            datagrams: Mutex::default(),
        }
    }

    /// Wall-clock microseconds for a relay timestamp (`t_us`).
    pub fn wall_us(&self, t_us: u64) -> u64 {
        self.epoch_wall_us + t_us
    }

    pub fn record_event(&self, event: &Arc<Published>) {
        let Ok(mut events) = self.events.lock() else { return };
        if events.len() == self.limits.events {
            events.pop_front();
        }
        events.push_back(event.clone());
    }

    /// Records datagram `dg`. Each datagram is recorded once, by the relay socket that sent it or,
    /// when no relay socket did, by the one that read it.
    pub fn record_datagram(&self, dg: Dg, at: Instant, from: SocketAddr, to: SocketAddr, bytes: Arc<[u8]>) {
        if bytes.len() > self.limits.bytes {
            return;
        }
        let t_us = u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        let Ok(mut seen) = self.datagrams.lock() else { return };
        while seen.ring.len() >= self.limits.events || seen.bytes + bytes.len() > self.limits.bytes {
            let Some(old) = seen.ring.pop_front() else { break };
            seen.bytes -= old.bytes.len();
        }
        seen.bytes += bytes.len();
        let entry = Seen { dg, wall_us: self.wall_us(t_us), from, to, bytes };
        seen.ring.push_back(entry);
    }

    /// The events kept, in `seq` order.
    pub fn events(&self) -> Vec<Arc<Published>> {
        let mut events: Vec<_> = self.events.lock().map(|e| e.iter().cloned().collect()).unwrap_or_default();
        // Servers emit from several threads: an event may be pushed just after one with a
        // higher number.
        events.sort_by_key(|e| e.seq);
        events
    }

    /// The datagrams kept, oldest first.
    pub fn datagrams(&self) -> Vec<Seen> {
        self.datagrams.lock().map(|d| d.ring.iter().cloned().collect()).unwrap_or_default()
    }

    /// One datagram, if it is still kept. A scan: asked when a person clicks a datagram.
    pub fn datagram(&self, dg: Dg) -> Option<Seen> {
        let seen = self.datagrams.lock().ok()?;
        seen.ring.iter().rev().find(|s| s.dg == dg).cloned()
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
        history.record_datagram(1, epoch, addr(1), addr(2), b"abc"[..].into());
        assert_eq!(history.datagrams().len(), 1);
        history.record_datagram(2, epoch, addr(1), addr(2), b"defg"[..].into());
        history.record_datagram(3, epoch, addr(1), addr(2), b"hijk"[..].into());
        let kept: Vec<_> = history.datagrams().iter().map(|s| s.dg).collect();
        assert_eq!(kept, [2, 3], "the byte budget pushed out the oldest");
        assert!(history.datagram(1).is_none());
        assert_eq!(history.datagram(3).map(|s| s.bytes.to_vec()), Some(b"hijk".to_vec()));
        history.record_datagram(4, epoch, addr(1), addr(2), vec![0; 11].into());
        assert!(history.datagram(4).is_none(), "larger than the whole budget");
    }

    #[test]
    fn events_are_bounded_and_come_back_in_seq_order() {
        let bus = crate::bus::EventBus::new(Instant::now());
        let history = History::new(HistoryLimits { events: 2, bytes: 10 }, Instant::now());
        let mut rx = bus.subscribe();
        for _ in 0..3 {
            bus.emit(
                Instant::now(),
                protocol::EventKind::ChatEnd { server: protocol::ServerName::Chat, clients: 0 },
            );
        }
        let got: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        history.record_event(&got[2]);
        history.record_event(&got[1]);
        history.record_event(&got[0]);
        let seqs: Vec<_> = history.events().iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2]);
    }
}
