//! Matching: which arrow an event about a datagram belongs to, by the names the relay gives.
//!
//! The relay sees both ends of every datagram it draws, so it names each one (`dg`) and every
//! event about it carries that name: a socket's `client_send` and the server's `server_recv` of
//! it share one `dg`, as do a `server_send` and the socket's `client_recv` of it. An answer also
//! names what it answers (`server_send.reply_to`). So the page never pairs a send with an
//! arrival by order or timing. That guess is the very mistake request IDs teach students to
//! avoid: a reply that overtakes another, or answers an earlier attempt, would be drawn on the
//! wrong arrow. Where the relay could not be sure it leaves the link out, and the arrival is
//! drawn on its own.
//!
//! [`DgIndex`] maps a `dg` to the arrow drawn for it, and [`answered`] follows an answer's
//! `reply_to` back to the request it answers, which says which attempt it really answers.
//! Both are bounded by the model's window: a datagram whose arrow has been folded away is
//! forgotten, and its late events are drawn unpaired rather than matched to a guess.

use rustc_hash::FxHashMap as HashMap;

use protocol::Dg;

use super::{Body, Item};

/// The arrow drawn for each datagram, by its `dg`.
#[derive(Debug, Default)]
pub(super) struct DgIndex {
    arrows: HashMap<Dg, u64>,
}

impl DgIndex {
    /// Datagram `dg` is drawn as the arrow with item id `id`.
    pub fn name(&mut self, dg: Dg, id: u64) {
        self.arrows.insert(dg, id);
    }

    /// The item id of the arrow drawn for `dg`, if any. It may have left the window since.
    pub fn arrow(&self, dg: Dg) -> Option<u64> {
        self.arrows.get(&dg).copied()
    }

    /// Forgets datagrams whose arrows left the window (ids below `first`), once the index
    /// holds more than twice `window` names: amortised, so a storm pays nothing per event.
    pub fn fold(&mut self, first: u64, window: usize) {
        if self.arrows.len() > window.saturating_mul(2) {
            self.arrows.retain(|_, id| *id >= first);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.arrows.len()
    }
}

/// What an answer's chain of names says it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Answered {
    /// The attempt of the request it answers, for a request sent with retries.
    pub attempt: Option<u32>,
    /// When that attempt was sent, on the relay's clock: the start of the real round trip.
    pub sent_us: u64,
}

/// Follows an answer to its request: `request` is the item drawn for the datagram the answer's
/// `reply_to` names. It counts only if that datagram was sent by the socket (and crowd member)
/// that received the answer. A chat copy of someone else's message answers nothing of ours.
pub(super) fn answered(request: &Item, lane: usize, member: Option<u32>) -> Option<Answered> {
    match &request.body {
        Body::Arrow(sent) if sent.from == lane && sent.member == member => {
            Some(Answered { attempt: sent.attempt, sent_us: request.t_us })
        }
        _ => None,
    }
}
