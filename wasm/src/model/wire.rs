//! The wire: what the link in front of each server did to a datagram, put on its own arrow.
//!
//! The relay runs an impaired link in each direction of every server: `in` carries datagrams
//! to the server, `out` the server's datagrams back. It can lose a datagram (or one of its IP
//! fragments), deliver it twice, hold it back or reorder it. Every `link_*` event names the
//! datagram (`dg`), the server, the direction and the server's other end (`peer`), so each
//! decision lands on the arrow of the datagram it is about, never on a guess by order:
//!
//! - `link_drop` ends the arrow on the link, short of where it was going: [`Fate::LostIn`]
//!   (the server never saw it) or [`Fate::LostOut`] (the server sent it, nobody got it). That
//!   is not the lossy server's `server_drop`: that server reads a datagram and throws it away
//!   on purpose, where the network loses one on the way;
//! - `link_duplicate` draws the copy as an arrow of its own, under the copy's own name, from
//!   the point on the link where it was made; an answer to it answers the same request;
//! - `link_hold` and `link_release` record where and how long the datagram waited, so its
//!   delivery is drawn late, with the hold, and a reordered one is marked as such.
//!
//! The panel's side lives here too: [`link_patch`] turns what a user typed into the one change
//! to send, and only the settings that differ from the relay's, so Apply never sets a value
//! twice.

use std::fmt;

use protocol::{
    Dg, Dir, Event, EventKind, HoldReason, LinkDropReason, LinkPatch, LinkSettings, Payload, RetryParams,
    Scope, ServerName,
};

use super::{Arrow, Body, Fate, MarkKind, Model, link_summary, preview, thousands};
use crate::text::{fill, word};

/// What the link did to one datagram.
#[derive(Clone, Debug, PartialEq)]
pub struct LinkPath {
    /// The way it crossed: to the server (`in`) or from it (`out`).
    pub dir: Dir,
    /// The link lost it.
    pub lost: Option<LinkLoss>,
    /// The link held it back.
    pub held: Option<LinkHeld>,
    /// This datagram is the link's second delivery of datagram `copy_of`.
    pub copy_of: Option<Dg>,
    /// The link delivered this datagram twice; the second delivery is datagram `copied_as`.
    pub copied_as: Option<Dg>,
}

impl LinkPath {
    fn new(dir: Dir) -> Self {
        Self { dir, lost: None, held: None, copy_of: None, copied_as: None }
    }
}

/// Why the link lost a datagram.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkLoss {
    pub reason: LinkDropReason,
    /// With an MTU: `(lost fragment, fragments)`, counted from 1.
    pub fragment: Option<(u32, u32)>,
}

/// A hold on the link: why, for how long, and when it began and ended.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkHeld {
    pub reason: HoldReason,
    /// The planned hold; none for a reorder, which waits for the next datagram.
    pub hold_ms: Option<u64>,
    /// The `seq` and time of the `link_hold`.
    pub since_seq: u64,
    pub since_us: u64,
    /// How long it was really held, and the `seq` and time of its `link_release`, once out.
    pub held_us: Option<u64>,
    pub release_seq: Option<u64>,
    pub release_us: Option<u64>,
}

impl Arrow {
    /// The datagram this one is the link's copy of.
    pub fn copy_of(&self) -> Option<Dg> {
        self.link.as_ref()?.copy_of
    }

    /// The link's hold of this datagram, if it held it.
    pub fn held(&self) -> Option<&LinkHeld> {
        self.link.as_ref()?.held.as_ref()
    }

    /// Space-separated words for what the link did, for `data-link` (CSS `~=`): its
    /// direction, then `lost`, `fragment`, `fault`, `copy`, `copied`, `held`, `reordered`.
    pub fn link_words(&self) -> Option<String> {
        let link = self.link.as_ref()?;
        let mut words = link.dir.as_str().to_owned();
        let mut add = |word| {
            words.push(' ');
            words.push_str(word);
        };
        if let Some(loss) = &link.lost {
            add("lost");
            match loss.reason {
                LinkDropReason::Fragment => add("fragment"),
                LinkDropReason::Fault => add("fault"),
                LinkDropReason::Full => add("full"),
                LinkDropReason::Loss => {}
            }
        }
        if link.copy_of.is_some() {
            add("copy");
        }
        if link.copied_as.is_some() {
            add("copied");
        }
        if let Some(held) = &link.held {
            add("held");
            match held.reason {
                HoldReason::Reorder => add("reordered"),
                HoldReason::Fault => add("fault"),
                HoldReason::Delay => {}
            }
        }
        Some(words)
    }

    fn link_mut(&mut self, dir: Dir) -> &mut LinkPath {
        self.link.get_or_insert_with(|| Box::new(LinkPath::new(dir)))
    }
}

impl Model {
    /// One `link_*` event: the link's decision goes on the arrow of the datagram it names.
    pub(super) fn link_event(&mut self, event: &Event) {
        let seq = event.seq;
        match &event.kind {
            EventKind::LinkDrop { server, dir, dg, peer, len, reason, fragment, fragments } => {
                let (id, fresh) = self.link_arrow(event, *server, *dir, *dg, *peer, *len);
                let sender_reports =
                    self.lanes_of(id).is_some_and(|(from, _)| self.lanes[from].kind.reports());
                let Some(arrow) = self.arrow_mut(id) else { return };
                let was = arrow.fate;
                let fate = match dir {
                    Dir::In => Fate::LostIn,
                    Dir::Out => Fate::LostOut,
                };
                arrow.end(fate, seq, event.t_us);
                let fragment = fragment.zip(*fragments);
                arrow.link_mut(*dir).lost = Some(LinkLoss { reason: *reason, fragment });
                match dir {
                    Dir::In => self.stats.link_lost_in += 1,
                    Dir::Out => self.stats.link_lost_out += 1,
                }
                if was == Fate::Delivered {
                    // An answer to an outside client was counted as received when it was sent.
                    self.stats.received = self.stats.received.saturating_sub(1);
                }
                if fresh && *dir == Dir::In && !sender_reports {
                    // An outside client's datagram: it was sent, though nobody read it.
                    self.stats.sent += 1;
                }
                let way = self.way(id);
                let bytes = self.arrow(id).map_or_else(String::new, |a| bytes_text(&a.payload, *len));
                let why = match (reason, fragment) {
                    (LinkDropReason::Fragment, Some((i, n))) => fill("link-why-fragment", &[&i, &n]),
                    (LinkDropReason::Fault, _) => word("link-why-fault").to_owned(),
                    _ => String::new(),
                };
                let text = fill("log-link-drop", &[&way, &bytes, &there_or_back(*dir), &why]);
                self.log_dg(seq, "link_drop", None, text, Some(id), Some(*dg));
            }
            EventKind::LinkDuplicate { server, dir, dg, copy, peer } => {
                let (original, _) = self.link_arrow(event, *server, *dir, *dg, *peer, 0);
                let Some(first) = self.arrow_mut(original) else { return };
                first.link_mut(*dir).copied_as = Some(*copy);
                // The copy is the same bytes between the same ends, and answers what they answer.
                let mut second = Arrow {
                    member: first.member,
                    attempt: first.attempt,
                    req: first.req.clone(),
                    reply_to: first.reply_to,
                    dg: Some(*copy),
                    ..Arrow::new(first.from, first.to, first.len, &first.payload)
                };
                second.link_mut(*dir).copy_of = Some(*dg);
                let to_outsider = *dir == Dir::Out && !self.lanes[second.to].kind.reports();
                if to_outsider {
                    second.end(Fate::Delivered, seq, event.t_us);
                    self.stats.received += 1;
                }
                let id = self.push(seq, event.t_us, Body::Arrow(second));
                self.dgs.name(*copy, id);
                self.stats.link_copies += 1;
                let way = self.way(id);
                let text = fill("log-link-dup", &[&way, &there_or_back(*dir), copy]);
                self.log_dg(seq, "link_duplicate", None, text, Some(id), Some(*dg));
                if let Some(line) = self.log.back_mut() {
                    line.copy = Some(*copy);
                }
            }
            EventKind::LinkHold { server, dir, dg, peer, reason, hold_ms } => {
                let (id, _) = self.link_arrow(event, *server, *dir, *dg, *peer, 0);
                let Some(arrow) = self.arrow_mut(id) else { return };
                if arrow.fate == Fate::Delivered {
                    // An answer to an outside client, taken as delivered when sent: it is not yet.
                    arrow.fate = Fate::InFlight;
                    arrow.t_end_us = None;
                    arrow.end_seq = None;
                    self.stats.received = self.stats.received.saturating_sub(1);
                }
                let Some(arrow) = self.arrow_mut(id) else { return };
                arrow.link_mut(*dir).held = Some(LinkHeld {
                    reason: *reason,
                    hold_ms: *hold_ms,
                    since_seq: seq,
                    since_us: event.t_us,
                    held_us: None,
                    release_seq: None,
                    release_us: None,
                });
                self.stats.link_held += 1;
                let due = event.t_us.saturating_add(hold_ms.map_or(1_000, u64::from).saturating_mul(1_000));
                self.holds_until_us = self.holds_until_us.max(due);
                if *reason == HoldReason::Reorder {
                    self.stats.link_reordered += 1;
                }
                let way = self.way(id);
                let how = match (reason, hold_ms) {
                    (HoldReason::Reorder, _) => word("hold-reorder").to_owned(),
                    (HoldReason::Fault, Some(ms)) => fill("hold-fault", &[ms]),
                    (_, Some(ms)) => fill("hold-delay-ms", &[ms]),
                    (_, None) => word("hold-delay").to_owned(),
                };
                let text = fill("log-link-hold", &[&way, dg, &there_or_back(*dir), &how]);
                self.log_dg(seq, "link_hold", None, text, Some(id), Some(*dg));
            }
            EventKind::LinkRelease { dir, dg, held_us, .. } => {
                let found = self.dgs.arrow(*dg).filter(|id| self.arrow(*id).is_some());
                if let Some(id) = found {
                    let to_outsider = self.lanes_of(id).is_some_and(|(_, to)| !self.lanes[to].kind.reports());
                    if let Some(arrow) = self.arrow_mut(id) {
                        if let Some(held) = arrow.link_mut(*dir).held.as_mut() {
                            held.held_us = Some(*held_us);
                            held.release_seq = Some(seq);
                            held.release_us = Some(event.t_us);
                        }
                        if to_outsider && arrow.fate == Fate::InFlight {
                            arrow.end(Fate::Delivered, seq, event.t_us);
                            self.stats.received += 1;
                        }
                    }
                }
                let way = found.map_or_else(|| "?".to_owned(), |id| self.way(id));
                let text = fill("log-link-release", &[&way, dg, &super::ms_text(*held_us)]);
                self.log_dg(seq, "link_release", None, text, found, Some(*dg));
            }
            EventKind::LinkConfigured { server, dir, settings, by, scope } => {
                // The links everyone meets, or this page's sandbox's, kept only where they differ
                // (a `Vec`: a second map's removal code would cost the bundle 2 KB).
                let mine = self.is_mine(by.as_deref());
                let at = self.own_links.iter().position(|(s, _)| s == server);
                let links = self.links.entry(*server).or_default();
                let shared = *links;
                let links = match (*scope, at) {
                    (Scope::All, _) => links,
                    (Scope::Own, Some(i)) if mine => &mut self.own_links[i].1,
                    (Scope::Own, None) if mine => {
                        let i = self.own_links.len();
                        self.own_links.push((*server, shared));
                        &mut self.own_links[i].1
                    }
                    (Scope::Own, _) => &mut protocol::Links::default(),
                };
                *links.get_mut(*dir) = *settings;
                self.links_revision += 1;
                let everyone = &self.links;
                self.own_links.retain(|(s, links)| everyone.get(s) != Some(links));
                let lane = self.server_lane(*server);
                let side = word(match dir {
                    Dir::In => "link-in",
                    Dir::Out => "link-out",
                });
                let text = fill("log-link-set", &[server, &side, &link_summary(settings)])
                    + &self.whose(by.as_deref(), *scope);
                let id = self.mark(event, lane, MarkKind::LinkConfigured { dir: *dir }, &text);
                self.log_line(seq, "link_configured", None, text, Some(id));
            }
            _ => {}
        }
    }

    /// The arrow of datagram `dg` if it is in the window; else (an outside client's datagram,
    /// whose send nobody reports) a new one between the link's two ends, starting now.
    /// Returns it and whether it is new.
    fn link_arrow(
        &mut self,
        event: &Event,
        server: ServerName,
        dir: Dir,
        dg: Dg,
        peer: std::net::SocketAddr,
        len: usize,
    ) -> (u64, bool) {
        if let Some(id) = self.dgs.arrow(dg).filter(|id| self.arrow(*id).is_some()) {
            return (id, false);
        }
        let (lane, peer) = (self.server_lane(server), self.lane_of(peer));
        let (from, to) = match dir {
            Dir::In => (peer, lane),
            Dir::Out => (lane, peer),
        };
        let arrow = Arrow { dg: Some(dg), ..Arrow::new(from, to, len, &Payload::default()) };
        let id = self.push(event.seq, event.t_us, Body::Arrow(arrow));
        self.dgs.name(dg, id);
        (id, true)
    }

    fn lanes_of(&self, id: u64) -> Option<(usize, usize)> {
        self.arrow(id).map(|a| (a.from, a.to))
    }

    /// `a → echo`: the arrow's two ends.
    fn way(&self, id: u64) -> String {
        match self.arrow(id) {
            Some(a) => format!("{} → {}", self.who(a.from, a.member), self.who(a.to, None)),
            None => "?".to_owned(),
        }
    }
}

/// `on the way there` or `on the way back`, in the page's language.
pub(super) fn there_or_back(dir: Dir) -> &'static str {
    word(match dir {
        Dir::In => "way-there",
        Dir::Out => "way-back",
    })
}

/// `"hello" (5 B)`, or `2,000 B` when the bytes are not known.
fn bytes_text(payload: &Payload, len: usize) -> String {
    if *payload == Payload::default() {
        format!("{} B", thousands(len))
    } else {
        format!("{} ({} B)", preview(payload), thousands(len))
    }
}

/// The panel's settings, in the order of its columns: the names in `link` ops.
pub const LINK_FIELDS: [&str; 6] = ["loss", "duplicate", "reorder", "delay_ms", "jitter_ms", "mtu"];

/// What the panel shows for `settings`, one string per [`LINK_FIELDS`] entry. No MTU is an
/// empty field.
pub fn link_values(settings: &LinkSettings) -> [String; 6] {
    [
        super::text::short(settings.loss),
        super::text::short(settings.duplicate),
        super::text::short(settings.reorder),
        settings.delay_ms.to_string(),
        settings.jitter_ms.to_string(),
        settings.mtu.map_or_else(String::new, |m| m.to_string()),
    ]
}

/// A probability typed into field `field`, from 0 to 1.
fn probability(field: &'static str, text: &str) -> Result<f64, FieldError> {
    match super::text::decimal(text) {
        Some(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(FieldError { field, message: fill("patch-probability", &[&field, &format!("{text:?}")]) }),
    }
}

/// A whole number of milliseconds typed into field `field`.
pub fn millis(field: &'static str, text: &str) -> Result<u64, FieldError> {
    text.parse::<u64>()
        .map_err(|_| FieldError { field, message: fill("patch-millis", &[&field, &format!("{text:?}")]) })
}

/// The lossy server's `drop`, `delay_ms` and `jitter_ms` to set, each `None` to leave it.
pub type LossyChange = (Option<f64>, Option<u64>, Option<u64>);

/// The lossy server's change to send, from its panel's drop, delay and jitter as typed: those
/// that differ from `relay`, its settings as the page last heard them. An empty field is left
/// as it is. As with [`link_patch`], Apply with nothing changed sends nothing, one field
/// changed makes one change (one log line, one mark), and a mistake is named and sends nothing.
pub fn lossy_patch(
    relay: &protocol::ServerSettings,
    [drop, delay, jitter]: [&str; 3],
) -> Result<LossyChange, FieldError> {
    let [drop_text, delay, jitter] = [drop, delay, jitter].map(str::trim);
    let drop = (!drop_text.is_empty()).then(|| probability("drop", drop_text)).transpose()?;
    let delay_ms = (!delay.is_empty()).then(|| millis("delay", delay)).transpose()?;
    let jitter_ms = (!jitter.is_empty()).then(|| millis("jitter", jitter)).transpose()?;
    // The panel shows the relay's drop as `short` writes it: that text, untouched, is no change.
    let shown = relay.drop.map(super::text::short);
    Ok((
        drop.filter(|d| relay.drop != Some(*d) && shown.as_deref() != Some(drop_text)),
        delay_ms.filter(|ms| relay.delay_ms != Some(*ms)),
        jitter_ms.filter(|ms| relay.jitter_ms != Some(*ms)),
    ))
}

/// The retry a send asks for, from the page's wait, factor and give-up as typed, each named
/// in a mistake as the page labels it. An empty
/// field takes its default; a mistake is named, and nothing is sent. The relay checks the
/// ranges, and that the first wait is no longer than the whole.
pub fn retry_params(initial: &str, factor: &str, give_up: &str) -> Result<RetryParams, FieldError> {
    let mut params = RetryParams::default();
    let (initial, factor, give_up) = (initial.trim(), factor.trim(), give_up.trim());
    if !initial.is_empty() {
        params.initial_ms = millis("“wait”", initial)?;
    }
    if !factor.is_empty() {
        params.factor = super::text::decimal(factor).ok_or_else(|| FieldError {
            field: "factor",
            message: fill("patch-factor", &[&format!("{factor:?}")]),
        })?;
    }
    if !give_up.is_empty() {
        params.give_up_ms = millis("“give up”", give_up)?;
    }
    Ok(params)
}

/// A field the page cannot send as it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// The change to send for one direction, from the fields as typed (in [`LINK_FIELDS`] order):
/// only the settings that differ from `current`, the relay's, or `None` when nothing does.
///
/// Sending the difference makes Apply idempotent: a value typed once is sent once, and a
/// setting someone else changed meanwhile is left alone unless it was typed here. An empty
/// field is 0, and an empty `mtu` (or 0) is no MTU. The relay checks the ranges again.
pub fn link_patch(current: &LinkSettings, fields: &[String; 6]) -> Result<Option<LinkPatch>, FieldError> {
    let or_zero = |i: usize| match fields[i].trim() {
        "" => "0",
        text => text,
    };
    let probability = |i: usize| probability(LINK_FIELDS[i], or_zero(i));
    let millis = |i: usize| millis(LINK_FIELDS[i], or_zero(i));
    let mtu = {
        let text = fields[5].trim();
        match text {
            "" | "0" | "off" => None,
            _ => match text.parse::<u16>() {
                Ok(m) if m >= 68 => Some(m),
                _ => {
                    return Err(FieldError {
                        field: "mtu",
                        message: fill("patch-mtu", &[&format!("{text:?}")]),
                    });
                }
            },
        }
    };
    let changed = |new: f64, old: f64| (new != old).then_some(new);
    let patch = LinkPatch {
        loss: changed(probability(0)?, current.loss),
        duplicate: changed(probability(1)?, current.duplicate),
        reorder: changed(probability(2)?, current.reorder),
        delay_ms: Some(millis(3)?).filter(|ms| *ms != current.delay_ms),
        jitter_ms: Some(millis(4)?).filter(|ms| *ms != current.jitter_ms),
        mtu: (mtu != current.mtu).then_some(mtu.unwrap_or(0)),
    };
    Ok((patch != LinkPatch::default()).then_some(patch))
}
