//! The event bus: every server emits into it, every watcher subscribes to it.
//!
//! A thin wrapper over a bounded [`tokio::sync::broadcast`] channel. It stamps each event with a
//! sequence number and a monotonic timestamp. Emitting never waits: a subscriber that falls more
//! than [`EventBus::CAPACITY`] events behind gets `Lagged { missed }` from its receiver and
//! carries on, so a slow watcher can never slow a server. With nobody subscribed, emitting is a
//! single atomic load and servers skip even building the event (see [`EventBus::is_observed`]).
//! The bus counts its subscribers itself: tokio's `receiver_count` takes a lock, and servers
//! ask on every datagram.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use protocol::{Event, EventKind};
use tokio::sync::broadcast;

/// Cloned into every server and watcher; all clones share one channel and one sequence.
#[derive(Clone, Debug)]
pub struct EventBus {
    /// Events are shared, not copied, between subscribers.
    tx: broadcast::Sender<Arc<Event>>,
    /// The next sequence number. Shared by clones so `seq` is unique across servers.
    next_seq: Arc<AtomicU64>,
    /// Time zero for `t_us`: when the relay started.
    epoch: Instant,
    /// Live [`Subscription`]s.
    subscribers: Arc<AtomicUsize>,
}

/// A receiver of every event emitted after it subscribed. It derefs to the underlying
/// `broadcast::Receiver` for `recv` and `try_recv`; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Event>>,
    subscribers: Arc<AtomicUsize>,
}

impl Deref for Subscription {
    type Target = broadcast::Receiver<Arc<Event>>;
    fn deref(&self) -> &Self::Target {
        &self.rx
    }
}

impl DerefMut for Subscription {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.rx
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }
}

impl EventBus {
    /// How many events the bus holds for its slowest subscriber before that subscriber lags.
    /// 16,384 events are about a second of a busy classroom; each slot holds an `Arc`.
    pub const CAPACITY: usize = 16_384;

    pub fn new(epoch: Instant) -> Self {
        let (tx, _) = broadcast::channel(Self::CAPACITY);
        Self { tx, next_seq: Arc::new(AtomicU64::new(1)), epoch, subscribers: Arc::default() }
    }

    /// True when at least one subscriber is listening. Servers check this before building an
    /// event, so an unwatched relay pays nothing for its events.
    pub fn is_observed(&self) -> bool {
        self.subscribers.load(Ordering::Relaxed) > 0
    }

    /// Stamps and publishes an event that happened at `at`. Never blocks.
    pub fn emit(&self, at: Instant, kind: EventKind) {
        if !self.is_observed() {
            return;
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let t_us = u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX);
        // An error here only means the last subscriber left since the check above.
        let _ = self.tx.send(Arc::new(Event { seq, t_us, kind }));
    }

    /// A new receiver of every event emitted from now on.
    pub fn subscribe(&self) -> Subscription {
        // Count first: an event emitted in between then finds no receiver, which is harmless,
        // rather than a receiver that was never counted.
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription { rx: self.tx.subscribe(), subscribers: self.subscribers.clone() }
    }

    /// Time zero of `t_us`.
    pub fn epoch(&self) -> Instant {
        self.epoch
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ServerName;

    fn refused() -> EventKind {
        EventKind::ServerRefused { server: ServerName::Echo, peer: None }
    }

    #[test]
    fn stamps_seq_and_time_from_epoch() {
        let epoch = Instant::now();
        let bus = EventBus::new(epoch);
        let mut rx = bus.subscribe();
        bus.emit(epoch + std::time::Duration::from_micros(1500), refused());
        bus.clone().emit(epoch + std::time::Duration::from_secs(2), refused());
        let a = rx.try_recv().expect("first event");
        let b = rx.try_recv().expect("second event");
        assert_eq!((a.seq, a.t_us), (1, 1500));
        assert_eq!((b.seq, b.t_us), (2, 2_000_000));
    }

    #[test]
    fn unobserved_emit_consumes_no_sequence_numbers() {
        let bus = EventBus::new(Instant::now());
        assert!(!bus.is_observed());
        bus.emit(Instant::now(), refused());
        let mut rx = bus.subscribe();
        assert!(bus.is_observed());
        bus.emit(Instant::now(), refused());
        assert_eq!(rx.try_recv().expect("event").seq, 1);
        let second = bus.clone().subscribe();
        drop(rx);
        assert!(bus.is_observed());
        drop(second);
        assert!(!bus.is_observed(), "dropping the last subscription unsubscribes");
    }

    #[test]
    fn slow_subscriber_lags_instead_of_blocking() {
        let bus = EventBus::new(Instant::now());
        let mut rx = bus.subscribe();
        for _ in 0..EventBus::CAPACITY + 10 {
            bus.emit(Instant::now(), refused());
        }
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(missed)) => assert_eq!(missed, 10),
            other => panic!("expected Lagged, got {other:?}"),
        }
        assert_eq!(rx.try_recv().expect("resumes after the gap").seq, 11);
    }
}
