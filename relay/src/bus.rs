//! The event bus: every server emits into it, every watcher listens to it.
//!
//! It stamps each event with a sequence number and a monotonic timestamp, then delivers it two
//! ways:
//!
//! - to every [`Subscription`]: a bounded [`tokio::sync::broadcast`] channel carrying every
//!   event, for projectors and tests;
//! - to the one browser session it concerns, through that session's [`Feed`]: its own client
//!   events, and the server events whose peer is one of its sockets. Sessions that only want
//!   their own traffic (nearly all of them) are then not woken for everyone else's, so the cost
//!   of an event does not grow with the number of open tabs.
//!
//! Emitting never waits. A subscriber that falls more than [`EventBus::CAPACITY`] events behind
//! gets `Lagged { missed }` from its receiver, and a feed that is full counts what it missed;
//! both carry on, so a slow watcher can never slow a server. A running relay's bus also counts
//! every event for `/metrics` and records it in the history, so it always watches; a bus with
//! none of these (`EventBus::new`, for tests) costs a single atomic load, and servers skip even
//! building the event (see [`EventBus::is_observed`]).
//! The bus counts its subscribers itself: tokio's `receiver_count` takes a lock, and servers
//! ask on every datagram.

// Looked up on every routed event: a fast hash (the keys are the relay's own sockets and
// sessions).
use rustc_hash::FxHashMap as HashMap;
use std::net::SocketAddr;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

use axum::extract::ws::Utf8Bytes;
use protocol::{Event, EventKind, Kinds, Scope};

use crate::history::History;
use crate::metrics::Metrics;
use crate::udp::identity::Datagrams;
use tokio::sync::{broadcast, mpsc};

/// An event as the bus hands it out, shared by everyone it concerns: the event itself and,
/// once the first session has written it, its JSON message. Every other session watching
/// reuses that text, so a classroom of projector tabs costs one serialization per event, not
/// one per tab. It derefs to the [`Event`].
#[derive(Debug)]
pub struct Published {
    event: Event,
    /// Shared bytes, so a session sends the text as a frame of its own without copying it.
    json: OnceLock<Option<Utf8Bytes>>,
}

/// Room for a typical event's JSON (about 250 bytes with a short preview) in the first
/// allocation, so serializing it does not grow the buffer two or three times.
const JSON_ROOM: usize = 384;

impl Published {
    pub fn new(event: Event) -> Self {
        Self { event, json: OnceLock::new() }
    }

    /// The event as a `{"type":"event",…}` message, serialized on first use. `None` only if
    /// serializing failed, which our types never do; it is logged once.
    pub fn json(&self) -> Option<&str> {
        self.frame().map(Utf8Bytes::as_str)
    }

    /// [`Published::json`] as a WebSocket frame's text: cloning it shares the bytes.
    pub fn frame(&self) -> Option<&Utf8Bytes> {
        self.json
            .get_or_init(|| {
                let mut json = Vec::with_capacity(JSON_ROOM);
                let written = crate::json::write_event(&mut json, &self.event)
                    .map_err(|e| e.to_string())
                    .and_then(|()| String::from_utf8(json).map_err(|e| e.to_string()));
                match written {
                    Ok(json) => Some(json.into()),
                    Err(e) => {
                        tracing::error!(seq = self.event.seq, "cannot serialize an event: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }
}

impl Deref for Published {
    type Target = Event;
    fn deref(&self) -> &Event {
        &self.event
    }
}

/// Cloned into every server and watcher; all clones share one channel and one sequence.
#[derive(Clone, Debug)]
pub struct EventBus {
    /// Events are shared, not copied, between subscribers.
    tx: broadcast::Sender<Arc<Published>>,
    /// The next sequence number. Shared by clones so `seq` is unique across servers.
    next_seq: Arc<AtomicU64>,
    /// Time zero for `t_us`: when the relay started.
    epoch: Instant,
    /// Live [`Subscription`]s.
    subscribers: Arc<AtomicUsize>,
    /// Where each session's events go.
    routes: Arc<Routes>,
    /// The names of datagrams, which every event about one carries.
    datagrams: Arc<Datagrams>,
    /// The recent past, when recording (the default for a running relay).
    history: Option<Arc<History>>,
    /// What `/metrics` counts, from every event.
    metrics: Option<Arc<Metrics>>,
}

/// The sessions' feeds, and which session owns which socket address.
#[derive(Debug, Default)]
struct Routes {
    /// `feeds.len()`, readable without the lock.
    count: AtomicUsize,
    /// Read on every routed event, written when a session or socket comes or goes. A
    /// `std::sync::RwLock`: held for a map lookup, the event's recording and a `try_send`,
    /// never across an await.
    table: RwLock<Table>,
}

#[derive(Debug, Default)]
struct Table {
    feeds: HashMap<String, Route>,
    /// The local address of every socket a session opened, and the session's ID.
    owners: HashMap<SocketAddr, String>,
}

impl Table {
    /// The feed of the session an event concerns: the session named in a client event, the
    /// owner of the socket a server event is about, or the session whose sandbox a change is
    /// for.
    fn owner(&self, kind: &EventKind) -> Option<&Route> {
        let session = match kind {
            EventKind::ServerConfigured { by: Some(by), scope: Scope::Own, .. }
            | EventKind::LinkConfigured { by: Some(by), scope: Scope::Own, .. } => by,
            _ => match kind.session() {
                Some(session) => session,
                None => self.owners.get(&kind.peer()?)?,
            },
        };
        self.feeds.get(session)
    }

    /// A change of the servers or links everyone meets concerns everyone; a change in one
    /// session's sandbox, that session (and whoever watches everything).
    fn concerns_all(kind: &EventKind) -> bool {
        matches!(
            kind,
            EventKind::ServerConfigured { scope: Scope::All, .. }
                | EventKind::LinkConfigured { scope: Scope::All, .. }
        )
    }

    /// Whether any feed takes an event of `kind`.
    fn wants(&self, kind: &EventKind) -> bool {
        match Self::concerns_all(kind) {
            true => self.feeds.values().any(|route| route.wants(kind)),
            false => self.owner(kind).is_some_and(|route| route.wants(kind)),
        }
    }

    /// Delivers `event` to every feed it concerns.
    fn route(&self, event: &Arc<Published>) {
        match Self::concerns_all(&event.kind) {
            true => self.feeds.values().for_each(|route| route.deliver(event)),
            false => {
                if let Some(route) = self.owner(&event.kind) {
                    route.deliver(event);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
struct Route {
    tx: mpsc::Sender<Arc<Published>>,
    /// Events dropped because the feed was full, not yet reported to the session.
    missed: Arc<AtomicU64>,
    /// The session subscribed to everything and reads the broadcast instead.
    paused: Arc<AtomicBool>,
    /// The kinds of event the session asked for ([`Kinds::bits`]). The others are left out
    /// here, so they cost the session nothing, not even a wake-up.
    kinds: Arc<AtomicU32>,
}

impl Route {
    /// Whether the session takes events of `kind` from its feed now.
    fn wants(&self, kind: &EventKind) -> bool {
        !self.paused.load(Ordering::Relaxed)
            && Kinds::from_bits(self.kinds.load(Ordering::Relaxed)).contains(kind.kind())
    }

    fn deliver(&self, event: &Arc<Published>) {
        if !self.wants(&event.kind) {
            return;
        }
        if self.tx.try_send(event.clone()).is_err() {
            self.missed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One session's own events: those of its sockets and the server events they cause.
/// Dropping it removes the session's route and its sockets' addresses.
#[derive(Debug)]
pub struct Feed {
    session: String,
    rx: mpsc::Receiver<Arc<Published>>,
    route: Route,
    routes: Arc<Routes>,
}

impl Feed {
    /// Events queued per feed before it counts misses. A session reads its own events far
    /// faster than its sockets can cause them unless the browser stalls.
    pub const CAPACITY: usize = 4_096;

    /// Routes server events about `addr` (one of this session's sockets) to this feed.
    pub fn claim(&self, addr: SocketAddr) {
        self.claims().claim(addr);
    }

    /// Stops routing events about `addr` here.
    pub fn release(&self, addr: SocketAddr) {
        self.claims().release(addr);
    }

    /// A handle for claiming and releasing this session's addresses from its sockets' tasks,
    /// which may outlive the feed by a moment.
    pub fn claims(&self) -> Claims {
        Claims { session: self.session.clone(), routes: self.routes.clone() }
    }

    /// While paused, nothing is routed here: the session reads the broadcast instead.
    pub fn pause(&self, paused: bool) {
        self.route.paused.store(paused, Ordering::Relaxed);
    }

    /// From now on, only events of these kinds are routed here.
    pub fn filter(&self, kinds: Kinds) {
        self.route.kinds.store(kinds.bits(), Ordering::Relaxed);
    }

    pub async fn recv(&mut self) -> Option<Arc<Published>> {
        self.rx.recv().await
    }

    pub fn try_recv(&mut self) -> Option<Arc<Published>> {
        self.rx.try_recv().ok()
    }

    /// Events this feed could not take since the last call.
    pub fn take_missed(&self) -> u64 {
        self.route.missed.swap(0, Ordering::Relaxed)
    }
}

/// Claims socket addresses for one session's feed; see [`Feed::claims`].
#[derive(Debug, Clone)]
pub struct Claims {
    session: String,
    routes: Arc<Routes>,
}

impl Claims {
    /// Routes server events about `addr` to the session.
    pub fn claim(&self, addr: SocketAddr) {
        if let Ok(mut table) = self.routes.table.write() {
            table.owners.insert(addr, self.session.clone());
        }
    }

    /// Stops routing events about `addr` to the session, unless another session has claimed
    /// the address since (the OS may give a closed socket's port to a new one).
    pub fn release(&self, addr: SocketAddr) {
        if let Ok(mut table) = self.routes.table.write()
            && table.owners.get(&addr) == Some(&self.session)
        {
            table.owners.remove(&addr);
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        if let Ok(mut table) = self.routes.table.write() {
            table.feeds.remove(&self.session);
            table.owners.retain(|_, owner| *owner != self.session);
            self.routes.count.store(table.feeds.len(), Ordering::Relaxed);
        }
    }
}

/// A receiver of every event emitted after it subscribed. It derefs to the underlying
/// `broadcast::Receiver` for `recv` and `try_recv`; dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Arc<Published>>,
    subscribers: Arc<AtomicUsize>,
}

impl Deref for Subscription {
    type Target = broadcast::Receiver<Arc<Published>>;
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
        Self {
            tx,
            next_seq: Arc::new(AtomicU64::new(1)),
            epoch,
            subscribers: Arc::default(),
            routes: Arc::default(),
            datagrams: Datagrams::new(),
            history: None,
            metrics: None,
        }
    }

    /// The relay's bus: it counts every event into `metrics` and, with a `history`, records
    /// every event and datagram. Both always watch, so events are built and datagrams named
    /// whether or not a browser is connected.
    pub fn recording(epoch: Instant, history: Option<Arc<History>>, metrics: Arc<Metrics>) -> Self {
        Self { history, metrics: Some(metrics), ..Self::new(epoch) }
    }

    /// What `/metrics` counts, if this bus counts.
    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    /// The recent past, if this bus records it.
    pub fn history(&self) -> Option<&Arc<History>> {
        self.history.as_ref()
    }

    /// Records a datagram one of the relay's sockets read or sent, with its whole bytes.
    pub fn record(&self, dg: protocol::Dg, at: Instant, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        if let Some(history) = &self.history {
            history.record_datagram(dg, at, from, to, bytes);
        }
    }

    /// Strikes a recorded datagram out of the history again: its send failed.
    pub fn unrecord(&self, dg: protocol::Dg) {
        if let Some(history) = &self.history {
            history.unrecord_datagram(dg);
        }
    }

    /// The relay's datagram names, shared by every socket's driver.
    pub fn datagrams(&self) -> Arc<Datagrams> {
        self.datagrams.clone()
    }

    /// True when at least one subscriber is listening. Servers check this before building an
    /// event, so an unwatched relay pays nothing for its events.
    pub fn is_observed(&self) -> bool {
        self.history.is_some()
            || self.metrics.is_some()
            || self.subscribers.load(Ordering::Relaxed) > 0
            || self.routes.count.load(Ordering::Relaxed) > 0
    }

    /// `at` on the events' clock: microseconds since the relay started.
    pub fn t_us(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// Stamps and publishes an event that happened at `at`. Never blocks.
    pub fn emit(&self, at: Instant, kind: EventKind) {
        if !self.is_observed() {
            return;
        }
        if let Some(metrics) = &self.metrics {
            metrics.count(&kind);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let t_us = self.t_us(at);
        let subscribed = self.subscribers.load(Ordering::Relaxed) > 0;
        // Held until the event is delivered: looked up once, whether anyone wants it and then
        // to hand it over.
        let table = match self.routes.count.load(Ordering::Relaxed) > 0 {
            true => self.routes.table.read().ok(),
            false => None,
        };
        let wanted = table.as_deref().is_some_and(|table| table.wants(&kind));
        if !wanted && !subscribed {
            // Nobody receives it: it is recorded, and never wrapped for sharing.
            drop(table);
            if let Some(history) = &self.history {
                history.record_event(seq, t_us, &kind, None);
            }
            return;
        }
        let event = Arc::new(Published::new(Event { seq, t_us, kind }));
        // Recorded before it is delivered: a projector that asks for the backlog after
        // subscribing finds it in one or the other, and sends it once.
        if let Some(history) = &self.history {
            history.record_event(seq, t_us, &event.kind, Some(&event));
        }
        if let (true, Some(table)) = (wanted, &table) {
            table.route(&event);
        }
        drop(table);
        if subscribed {
            // An error here only means the last subscriber left since the check above.
            let _ = self.tx.send(event);
        }
    }

    /// A feed of the events that concern `session`, until it is dropped.
    pub fn feed(&self, session: &str) -> Feed {
        let (tx, rx) = mpsc::channel(Feed::CAPACITY);
        let kinds = Arc::new(AtomicU32::new(Kinds::ALL.bits()));
        let route = Route { tx, missed: Arc::default(), paused: Arc::default(), kinds };
        if let Ok(mut table) = self.routes.table.write() {
            table.feeds.insert(session.to_owned(), route.clone());
            self.routes.count.store(table.feeds.len(), Ordering::Relaxed);
        }
        Feed { session: session.to_owned(), rx, route, routes: self.routes.clone() }
    }

    /// A new receiver of every event emitted from now on.
    pub fn subscribe(&self) -> Subscription {
        // Count first: an event emitted in between then finds no receiver, which is harmless,
        // rather than a receiver that was never counted.
        self.subscribers.fetch_add(1, Ordering::Relaxed);
        Subscription { rx: self.tx.subscribe(), subscribers: self.subscribers.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{Kind, ServerName};

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

    fn client_close(session: &str) -> EventKind {
        EventKind::ClientClose { session: session.into(), socket: "a".into(), member: None }
    }

    #[test]
    fn feeds_get_their_own_events_and_server_events_about_their_sockets() {
        let bus = EventBus::new(Instant::now());
        let mut a = bus.feed("a");
        let mut b = bus.feed("b");
        assert!(bus.is_observed());
        let a_socket: std::net::SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        a.claim(a_socket);

        bus.emit(Instant::now(), client_close("a"));
        bus.emit(Instant::now(), EventKind::ServerRefused { server: ServerName::Echo, peer: Some(a_socket) });
        bus.emit(Instant::now(), EventKind::ServerRefused { server: ServerName::Echo, peer: None });
        bus.emit(
            Instant::now(),
            EventKind::ServerConfigured {
                server: ServerName::Lossy,
                setting: "drop".into(),
                value: 1.0,
                by: None,
                scope: Scope::All,
            },
        );
        // A change in b's sandbox is b's alone.
        bus.emit(
            Instant::now(),
            EventKind::LinkConfigured {
                server: ServerName::Echo,
                dir: protocol::Dir::In,
                settings: protocol::LinkSettings::default(),
                by: Some("b".into()),
                scope: Scope::Own,
            },
        );
        let seqs =
            |feed: &mut Feed| std::iter::from_fn(|| feed.try_recv()).map(|e| e.seq).collect::<Vec<_>>();
        assert_eq!(seqs(&mut a), [1, 2, 4]);
        assert_eq!(seqs(&mut b), [4, 5], "b sees the settings change and its own sandbox's");

        a.release(a_socket);
        bus.emit(Instant::now(), EventKind::ServerRefused { server: ServerName::Echo, peer: Some(a_socket) });
        assert!(a.try_recv().is_none());

        a.claim(a_socket);
        a.filter([Kind::ClientOpen, Kind::ClientClose].into_iter().collect());
        bus.emit(Instant::now(), EventKind::ServerRefused { server: ServerName::Echo, peer: Some(a_socket) });
        bus.emit(Instant::now(), client_close("a"));
        assert_eq!(seqs(&mut a), [8], "a filtered feed gets only the kinds it asked for");
        a.filter(Kinds::ALL);

        a.pause(true);
        bus.emit(Instant::now(), client_close("a"));
        assert!(a.try_recv().is_none(), "a paused feed gets nothing");

        drop((a, b));
        assert!(!bus.is_observed(), "dropping the feeds removes their routes");
    }

    #[test]
    fn a_full_feed_counts_what_it_missed() {
        let bus = EventBus::new(Instant::now());
        let mut feed = bus.feed("s");
        for _ in 0..Feed::CAPACITY + 7 {
            bus.emit(Instant::now(), client_close("s"));
        }
        assert_eq!(feed.take_missed(), 7);
        assert_eq!(feed.take_missed(), 0);
        assert_eq!(feed.try_recv().map(|e| e.seq), Some(1));
    }

    #[test]
    fn the_json_of_an_event_is_its_server_message_written_once() {
        let bus = EventBus::new(Instant::now());
        let (mut a, mut b) = (bus.subscribe(), bus.subscribe());
        bus.emit(Instant::now(), client_close("s"));
        let (first, second) = (a.try_recv().expect("a"), b.try_recv().expect("b"));
        let json = first.json().expect("serializes");
        let owned = serde_json::to_value(protocol::ServerMsg::Event((**first).clone())).expect("serialize");
        assert_eq!(serde_json::from_str::<serde_json::Value>(json).expect("JSON"), owned);
        assert!(std::ptr::eq(json, second.json().expect("serializes")), "the second reader reuses the text");
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
