//! Chat liveness: each chat client the page has seen, when it was last heard, and its
//! countdown to eviction, as the liveness panel shows it at a given `now`.

use std::net::SocketAddr;

use super::{LaneKind, Model};

/// Chat clients remembered for the liveness panel.
const MAX_CHAT_CLIENTS: usize = 64;

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
pub(super) struct ChatClient {
    pub(super) lane: usize,
    pub(super) last_heard_us: u64,
    pub(super) timeout_ms: u64,
    /// Set once evicted or left, with when.
    pub(super) gone: Option<(Liveness, u64)>,
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

/// Clients gone (evicted, or left) that the liveness panel still shows.
const GONE_SHOWN: usize = 4;

/// A client is shown as silent once it has been quiet for this share of its timeout.
const SILENT_SHARE: u64 = 4;

impl Model {
    pub(super) fn chat_heard(&mut self, peer: SocketAddr, lane: usize, t_us: u64, timeout_ms: Option<u64>) {
        if let Some(i) = self.chat.iter().position(|(p, _)| *p == peer) {
            let c = &mut self.chat[i].1;
            c.last_heard_us = t_us;
            c.lane = lane;
            if let Some(t) = timeout_ms {
                c.timeout_ms = t;
            }
            if c.gone.take().is_some() {
                self.place(i);
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
        self.place(self.chat.len() - 1);
    }

    /// Moves client `i` to its place in the panel's order: the clients in the room, in the
    /// order they came, then those gone, the last to go first. Either way, between the two.
    fn place(&mut self, i: usize) {
        let client = self.chat.remove(i);
        let at = self.chat.iter().position(|(_, c)| c.gone.is_some()).unwrap_or(self.chat.len());
        self.chat.insert(at, client);
    }

    /// A chat server ended: a lesson's room (`room`, its session), or the class's. Its clients
    /// are no longer anyone's, and leave the panel: a room's sockets are often closed before
    /// it ends, and would otherwise wait there, silent, for an eviction that never comes.
    pub(super) fn chat_ended(&mut self, room: Option<&str>) {
        let Some(session) = room else {
            self.chat.clear();
            return;
        };
        let Some(sockets) = self.by_socket.get(session) else { return };
        let lanes = &self.lanes;
        // Not the lane many sessions' sockets share: its clients may be in other rooms.
        let in_room = |c: &ChatClient| {
            lanes[c.lane].kind != LaneKind::Overflow && sockets.values().any(|&l| l == c.lane)
        };
        self.chat.retain(|(_, c)| !in_room(c));
    }

    pub(super) fn chat_gone(&mut self, peer: SocketAddr, state: Liveness, t_us: u64) {
        if let Some(i) = self.chat.iter().position(|(p, _)| *p == peer) {
            self.chat[i].1.gone = Some((state, t_us));
            self.place(i);
        }
    }

    /// The liveness panel at `now_us` (the relay's clock): the clients still in the room, in
    /// the order they came, then the [`GONE_SHOWN`] that went last, newest first. A class's
    /// projector would otherwise push a newcomer below a column of the evicted.
    pub fn chat_clients(&self, now_us: u64) -> Vec<ChatView> {
        // In that order already (see `place`).
        let live = self.chat.iter().filter(|(_, c)| c.gone.is_none()).count();
        self.chat
            .iter()
            .take(live + GONE_SHOWN)
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
                    // Past the lanes the diagram has room for, clients share one lane: each
                    // still gets a row of its own, named by its address.
                    label: match self.lanes.get(c.lane) {
                        Some(lane) if lane.kind == LaneKind::Overflow => peer.to_string(),
                        _ => self.label(c.lane).to_owned(),
                    },
                    state,
                    silent_ms: silent_us / 1000,
                    countdown_ms: countdown_us / 1000,
                    timeout_ms: c.timeout_ms,
                }
            })
            .collect()
    }
}
