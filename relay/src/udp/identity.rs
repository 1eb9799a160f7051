//! Datagram identity: one name (`dg`) per datagram, from the send to the arrival.
//!
//! The relay owns both ends of most datagrams it draws: a page's socket sends to a server, a
//! server answers a page's socket. Each end is a different socket in a different task, so the
//! receiving end cannot simply be told which datagram it got. Instead the sender writes down
//! what it is about to send, and the receiver looks it up:
//!
//! - Before a relay socket sends to another relay socket, it records `(dg, fingerprint)` in the
//!   queue of that flow (source address and port, destination port). A send that then fails is
//!   struck out.
//! - When a relay socket reads a datagram, it takes the oldest entry of its flow whose
//!   fingerprint (length and bytes) matches. Loopback keeps the order of one flow, so that is
//!   the datagram it got. Entries skipped on the way were lost in the kernel (a full receive
//!   queue), and are forgotten.
//! - An arrival with no matching entry (an outside client's datagram, or one sent while nobody
//!   watched) gets a new `dg` of its own: where the relay cannot be sure, it leaves the link out.
//!
//! The table also knows the one address where the relay knows for sure that nothing listens:
//! the `nobody` port ([`Datagrams::set_nobody`]), which it keeps free; and which of its sockets
//! are connected, so take datagrams from their peer only: one sent to such a socket from
//! anywhere else is refused by the kernel, and [`Datagrams::sending`] says so.
//!
//! Names are given only while someone watches ([`Cx::observed`](super::Cx::observed)). A
//! running relay always does (its metrics and history count every event); a bus made for a
//! handler's test does not.

use std::collections::VecDeque;
use std::collections::hash_map::Entry;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use protocol::Dg;
// The keys are the relay's own ports and addresses, and the fingerprints are compared only
// within one of its own flows: nothing here is a peer's to choose, so a fast hash will do.
use rustc_hash::{FxHashMap as HashMap, FxHasher};

/// Datagrams remembered per flow that have been sent but not yet read. A receiver that stops
/// reading (or a kernel that drops) must not grow the table: the oldest are forgotten first,
/// and their arrival, if it ever comes, is simply not linked.
const PER_FLOW: usize = 1_024;

/// Bytes of a payload's start and end that go into its fingerprint, with its length. Enough to
/// tell apart the datagrams of one flow that are in flight together, cheap for 64 KB ones.
const FINGERPRINT_HEAD: usize = 128;
const FINGERPRINT_TAIL: usize = 64;

/// A receiving end: the address family and the port. A server bound to every interface does
/// not know which of its addresses a peer used, but it knows its port.
type End = (bool, u16);

fn end(addr: SocketAddr) -> End {
    (addr.ip().to_canonical().is_ipv6(), addr.port())
}

/// A flow: the sender's exact address and port, and the receiving end. A datagram from another
/// machine that happens to use the same port is another flow.
type Flow = ((IpAddr, u16), End);

fn flow(from: SocketAddr, to: SocketAddr) -> Flow {
    ((from.ip().to_canonical(), from.port()), end(to))
}

/// What identifies a datagram's bytes well enough among its flow's datagrams in flight.
fn fingerprint(payload: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    payload.len().hash(&mut h);
    if payload.len() <= FINGERPRINT_HEAD + FINGERPRINT_TAIL {
        payload.hash(&mut h);
    } else {
        payload[..FINGERPRINT_HEAD].hash(&mut h);
        payload[payload.len() - FINGERPRINT_TAIL..].hash(&mut h);
    }
    h.finish()
}

/// Which ports, per address family, one of the relay's sockets holds: one bit each, read
/// without the lock on every send (a server answering an outside client must not take it),
/// written under it.
#[derive(Debug)]
struct OwnedPorts([AtomicU64; 2 * 65_536 / 64]);

impl Default for OwnedPorts {
    fn default() -> Self {
        Self(std::array::from_fn(|_| AtomicU64::new(0)))
    }
}

impl OwnedPorts {
    fn bit((v6, port): End) -> (usize, u64) {
        let i = usize::from(v6) * 65_536 + usize::from(port);
        (i / 64, 1 << (i % 64))
    }

    fn contains(&self, end: End) -> bool {
        let (word, bit) = Self::bit(end);
        self.0[word].load(Ordering::Relaxed) & bit != 0
    }

    fn set(&self, end: End, on: bool) {
        let (word, bit) = Self::bit(end);
        if on {
            self.0[word].fetch_or(bit, Ordering::Relaxed);
        } else {
            self.0[word].fetch_and(!bit, Ordering::Relaxed);
        }
    }
}

/// The relay's datagram names and the sends awaiting their arrival. Shared by every socket
/// through the event bus.
#[derive(Debug, Default)]
pub struct Datagrams {
    /// The last name given; names start at 1.
    last: AtomicU64,
    /// Entries in every flow queue, so a receiver can skip the lock when there are none.
    in_flight: AtomicUsize,
    /// A `std::sync::Mutex`: held for one hash lookup and a queue operation, never across an
    /// await.
    table: Mutex<Table>,
    /// The `nobody` target: a loopback port the relay keeps free.
    nobody: OnceLock<SocketAddr>,
    /// `table.owned`'s keys, readable without the lock.
    owned: OwnedPorts,
}

#[derive(Debug, Default)]
struct Table {
    /// The relay's own sockets by receiving end, with the address each is bound to (two
    /// sockets may share a port on different addresses) and the peer it is connected to.
    owned: HashMap<End, Vec<(IpAddr, Option<SocketAddr>)>>,
    /// Sent, not yet read: per flow, oldest first.
    flows: HashMap<Flow, VecDeque<(Dg, u64)>>,
    /// Which session each browser session's socket belongs to, by the address it sends from.
    sessions: HashMap<SocketAddr, Arc<str>>,
}

impl Datagrams {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    /// Sets the `nobody` address, once, when the relay starts.
    pub fn set_nobody(&self, addr: SocketAddr) {
        let _ = self.nobody.set(addr);
    }

    /// Whether `to` is the `nobody` address.
    pub fn is_nobody(&self, to: SocketAddr) -> bool {
        self.nobody.get() == Some(&to)
    }

    /// A new name.
    pub fn next(&self) -> Dg {
        self.last.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers one of the relay's sockets, so datagrams sent to it are recorded. Dropping the
    /// guard unregisters it and forgets its flows.
    pub fn own(self: &Arc<Self>, local: SocketAddr) -> Owned {
        self.own_connected(local, None)
    }

    /// [`Datagrams::own`] for a socket connected to `peer`, if it is: the kernel gives it the
    /// datagrams of that peer only.
    pub fn own_connected(self: &Arc<Self>, local: SocketAddr, peer: Option<SocketAddr>) -> Owned {
        if let Ok(mut table) = self.table.lock() {
            let peer = peer.map(canonical);
            table.owned.entry(end(local)).or_default().push((local.ip().to_canonical(), peer));
            self.owned.set(end(local), true);
        }
        Owned { datagrams: self.clone(), local }
    }

    /// Marks the relay socket at `local` as session `session`'s until the guard drops, so a
    /// server that keeps a sandbox for that session knows the socket's datagrams.
    pub fn assign(self: &Arc<Self>, local: SocketAddr, session: Arc<str>) -> Assigned {
        let local = canonical(local);
        if let Ok(mut table) = self.table.lock() {
            table.sessions.insert(local, session.clone());
        }
        Assigned { datagrams: self.clone(), local, session }
    }

    /// The session whose socket sends from `peer`, if one does. Asked only by a server that
    /// keeps a sandbox.
    pub fn session_of(&self, peer: SocketAddr) -> Option<Arc<str>> {
        let table = self.table.lock().ok()?;
        table.sessions.get(&canonical(peer)).cloned()
    }

    /// Datagram `dg` is about to go from the relay socket at `local` to `to`. Recorded only if
    /// `to` is one of the relay's sockets: nobody else will look it up. False when `to` is one
    /// connected to another peer: the kernel will refuse it, so it is not recorded either.
    pub fn sending(&self, local: SocketAddr, to: SocketAddr, dg: Dg, payload: &[u8]) -> bool {
        if !self.owned.contains(end(to)) {
            return true;
        }
        let Ok(mut table) = self.table.lock() else { return true };
        let to_ip = to.ip().to_canonical();
        let from = canonical(source(local, to));
        let ours = table.owned.get(&end(to)).and_then(|bound| {
            bound.iter().find(|(ip, _)| *ip == to_ip || (ip.is_unspecified() && to_ip.is_loopback()))
        });
        match ours {
            None => return true,
            Some((_, Some(peer))) if *peer != from => return false,
            Some(_) => {}
        }
        let queue = table.flows.entry(flow(source(local, to), to)).or_default();
        if queue.len() == PER_FLOW {
            queue.pop_front();
        } else {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back((dg, fingerprint(payload)));
        true
    }

    /// The send of `dg` from `from` to `to` failed: it will never arrive.
    pub fn not_sent(&self, local: SocketAddr, to: SocketAddr, dg: Dg) {
        let Ok(mut table) = self.table.lock() else { return };
        if let Some(queue) = table.flows.get_mut(&flow(source(local, to), to))
            && let Some(i) = queue.iter().rposition(|&(d, _)| d == dg)
        {
            queue.remove(i);
            self.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether any recorded datagram still awaits its arrival. A receiver that is not watched
    /// still takes its entries off while this is true, so that a send recorded just before the
    /// last watcher left cannot be mistaken for a later one.
    pub fn any_in_flight(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) > 0
    }

    /// The name of the datagram `to` just read from `from`, if it was recorded as sent.
    pub fn arrived(&self, from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Option<Dg> {
        if !self.any_in_flight() {
            return None;
        }
        let Ok(mut table) = self.table.lock() else { return None };
        let Entry::Occupied(mut entry) = table.flows.entry(flow(from, to)) else { return None };
        let print = fingerprint(payload);
        let queue = entry.get_mut();
        let found = queue.iter().position(|&(_, p)| p == print)?;
        // Everything older in this flow was lost on the way.
        let (dg, _) = queue[found];
        queue.drain(..=found);
        self.in_flight.fetch_sub(found + 1, Ordering::Relaxed);
        // An empty queue is kept for the flow's next datagram: in a closed loop every arrival
        // empties it. The flow's queue goes when one of its sockets closes.
        Some(dg)
    }

    fn disown(&self, local: SocketAddr) {
        let Ok(mut table) = self.table.lock() else { return };
        let here = end(local);
        let ip = local.ip().to_canonical();
        if let Entry::Occupied(mut bound) = table.owned.entry(here) {
            if let Some(i) = bound.get().iter().position(|(b, _)| *b == ip) {
                bound.get_mut().swap_remove(i);
            }
            if !bound.get().is_empty() {
                return;
            }
            bound.remove();
            self.owned.set(here, false);
        }
        let mut forgotten = 0;
        table.flows.retain(|&((from_ip, from_port), to), queue| {
            let keep = to != here && !(from_port == local.port() && (from_ip == ip || ip.is_unspecified()));
            if !keep {
                forgotten += queue.len();
            }
            keep
        });
        self.in_flight.fetch_sub(forgotten, Ordering::Relaxed);
    }
}

/// The address a datagram from the relay socket at `local` to `to` leaves from: the socket's
/// own, or, for a socket bound to every interface, the loopback address it sends to (the
/// kernel answers loopback from loopback).
fn source(local: SocketAddr, to: SocketAddr) -> SocketAddr {
    if local.ip().is_unspecified() { SocketAddr::new(to.ip(), local.port()) } else { local }
}

fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// A session's socket, marked with [`Datagrams::assign`] until dropped.
#[derive(Debug)]
pub struct Assigned {
    datagrams: Arc<Datagrams>,
    local: SocketAddr,
    session: Arc<str>,
}

impl Drop for Assigned {
    fn drop(&mut self) {
        if let Ok(mut table) = self.datagrams.table.lock()
            && table.sessions.get(&self.local).is_some_and(|s| *s == self.session)
        {
            table.sessions.remove(&self.local);
        }
    }
}

/// One of the relay's sockets, registered with [`Datagrams::own`] until dropped.
#[derive(Debug)]
pub struct Owned {
    datagrams: Arc<Datagrams>,
    local: SocketAddr,
}

impl Drop for Owned {
    fn drop(&mut self) {
        self.datagrams.disown(self.local);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_sessions_socket_is_known_by_its_address_until_it_closes() {
        let dgs = Datagrams::new();
        let mine = dgs.assign(addr(5000), "a1".into());
        assert_eq!(dgs.session_of(addr(5000)).as_deref(), Some("a1"));
        let v4_in_v6 = SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.to_ipv6_mapped().into(), 5000);
        assert_eq!(dgs.session_of(v4_in_v6).as_deref(), Some("a1"), "the same address, written for IPv6");
        assert_eq!(dgs.session_of(addr(5001)), None, "an outside client's");
        // The port, freed and taken again by another session's socket before the first guard
        // went: the late guard leaves the new owner alone.
        let theirs = dgs.assign(addr(5000), "b2".into());
        drop(mine);
        assert_eq!(dgs.session_of(addr(5000)).as_deref(), Some("b2"));
        drop(theirs);
        assert_eq!(dgs.session_of(addr(5000)), None);
    }

    #[test]
    fn an_arrival_takes_the_name_it_was_sent_with() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(10004));
        let _client = dgs.own(addr(5000));
        let (a, b) = (dgs.next(), dgs.next());
        dgs.sending(addr(5000), addr(10004), a, b"one");
        dgs.sending(addr(5000), addr(10004), b, b"two");
        assert_eq!(dgs.arrived(addr(5000), addr(10004), b"one"), Some(a));
        assert_eq!(dgs.arrived(addr(5000), addr(10004), b"two"), Some(b));
        assert!(!dgs.any_in_flight());
    }

    #[test]
    fn a_connected_socket_takes_its_peers_datagrams_only() {
        let dgs = Datagrams::new();
        let _connected = dgs.own_connected(addr(5000), Some(addr(9)));
        let _peer = dgs.own(addr(9));
        let _stranger = dgs.own(addr(6000));
        let (from_peer, from_stranger) = (dgs.next(), dgs.next());
        assert!(dgs.sending(addr(9), addr(5000), from_peer, b"hi"), "its peer's datagram reaches it");
        assert!(!dgs.sending(addr(6000), addr(5000), from_stranger, b"hi"), "a stranger's is refused");
        assert_eq!(dgs.arrived(addr(6000), addr(5000), b"hi"), None, "and awaited by nobody");
        assert_eq!(dgs.arrived(addr(9), addr(5000), b"hi"), Some(from_peer));
    }

    #[test]
    fn a_server_bound_to_every_interface_is_found_by_its_port() {
        let dgs = Datagrams::new();
        let _server = dgs.own("0.0.0.0:10004".parse().expect("addr"));
        let dg = dgs.next();
        dgs.sending(addr(5000), addr(10004), dg, b"x");
        assert_eq!(dgs.arrived(addr(5000), "0.0.0.0:10004".parse().expect("addr"), b"x"), Some(dg));
    }

    #[test]
    fn identical_datagrams_are_named_in_the_order_they_were_sent() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(1));
        let names: Vec<_> = (0..3).map(|_| dgs.next()).collect();
        for &dg in &names {
            dgs.sending(addr(2), addr(1), dg, b"^hb^");
        }
        let arrived: Vec<_> = (0..3).map(|_| dgs.arrived(addr(2), addr(1), b"^hb^")).collect();
        assert_eq!(arrived, names.iter().map(|&d| Some(d)).collect::<Vec<_>>());
    }

    #[test]
    fn a_datagram_lost_on_the_way_is_skipped_and_forgotten() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(1));
        let (lost, kept) = (dgs.next(), dgs.next());
        dgs.sending(addr(2), addr(1), lost, b"lost");
        dgs.sending(addr(2), addr(1), kept, b"kept");
        assert_eq!(dgs.arrived(addr(2), addr(1), b"kept"), Some(kept));
        assert!(!dgs.any_in_flight(), "the lost one is forgotten, not left to confuse later arrivals");
        assert_eq!(dgs.arrived(addr(2), addr(1), b"lost"), None);
    }

    #[test]
    fn unrecorded_arrivals_and_sends_to_strangers_have_no_link() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(1));
        // An outside client's datagram was never recorded.
        assert_eq!(dgs.arrived(addr(40000), addr(1), b"from nc"), None);
        // A server's answer to an outside client is not recorded either: nobody looks it up.
        dgs.sending(addr(1), addr(40000), dgs.next(), b"answer");
        assert!(!dgs.any_in_flight());
    }

    #[test]
    fn another_machine_using_the_same_port_is_another_flow() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(1));
        let _client = dgs.own(addr(2));
        let dg = dgs.next();
        dgs.sending(addr(2), addr(1), dg, b"^hb^");
        let stranger: SocketAddr = "192.0.2.7:2".parse().expect("addr");
        assert_eq!(dgs.arrived(stranger, addr(1), b"^hb^"), None, "same port, another machine");
        assert_eq!(dgs.arrived(addr(2), addr(1), b"^hb^"), Some(dg));
        // A send to another machine that happens to use a relay socket's port is not recorded.
        dgs.sending(addr(1), "192.0.2.7:2".parse().expect("addr"), dgs.next(), b"x");
        assert!(!dgs.any_in_flight());
    }

    #[test]
    fn a_failed_send_is_struck_out() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(1));
        let (failed, sent) = (dgs.next(), dgs.next());
        dgs.sending(addr(2), addr(1), failed, b"same");
        dgs.not_sent(addr(2), addr(1), failed);
        dgs.sending(addr(2), addr(1), sent, b"same");
        assert_eq!(dgs.arrived(addr(2), addr(1), b"same"), Some(sent));
    }

    #[test]
    fn a_closed_socket_forgets_its_flows_and_queues_are_bounded() {
        let dgs = Datagrams::new();
        let server = dgs.own(addr(1));
        for _ in 0..PER_FLOW + 10 {
            dgs.sending(addr(2), addr(1), dgs.next(), b"x");
        }
        assert_eq!(dgs.in_flight.load(Ordering::Relaxed), PER_FLOW);
        drop(server);
        assert!(!dgs.any_in_flight());
        dgs.sending(addr(2), addr(1), dgs.next(), b"x");
        assert!(!dgs.any_in_flight(), "no longer the relay's socket");
    }

    #[test]
    fn long_datagrams_differing_only_in_the_middle_still_pair_in_order() {
        let dgs = Datagrams::new();
        let _server = dgs.own(addr(1));
        let (a, b) = (vec![0u8; 2000], {
            let mut v = vec![0u8; 2000];
            v[1000] = 1;
            v
        });
        let (da, db) = (dgs.next(), dgs.next());
        dgs.sending(addr(2), addr(1), da, &a);
        dgs.sending(addr(2), addr(1), db, &b);
        assert_eq!(dgs.arrived(addr(2), addr(1), &a), Some(da));
        assert_eq!(dgs.arrived(addr(2), addr(1), &b), Some(db));
    }
}
