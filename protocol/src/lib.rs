//! The contract between the relay and everything that watches it.
//!
//! The relay (native) and the UI (wasm) both depend on this crate and never on each other. It
//! holds plain serde types and no I/O, so the same definitions describe the JSON on the wire in
//! both directions.
//!
//! - [`ServerName`]: the four UDP servers the relay runs.
//! - [`Event`] and [`EventKind`]: past-tense facts, each stamped with a sequence number and a
//!   monotonic timestamp by the relay's event bus.
//! - [`Payload`]: a short, printable preview of a datagram's bytes.
//! - [`command`]: what a browser asks the relay to do over the WebSocket (`op`).
//! - [`message`]: what the relay sends back (`type`): hello, events, errors, lag notices.
//! - [`lessons`]: the twelve lessons as steps any client can run.
//! - [`link`]: the impaired link in front of each server: its settings, faults and reasons.
//!
//! The golden tests at the bottom pin the JSON shape: a change there is a change of the contract.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub mod addr;
pub mod command;
pub mod lessons;
pub mod link;
pub mod message;
mod raw;

pub use command::{Command, HeartbeatSpec, RetryParams, RetrySpec, Scope};
pub use link::{Dir, HoldReason, LinkDropReason, LinkFault, LinkPatch, LinkSettings, Links};
pub use message::{ErrorCode, Hello, Limits, ServerMsg, ServerSettings};

/// The four UDP servers of the relay. Their names appear in URLs, JSON and CLI flags.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ServerName {
    /// Returns every datagram unchanged.
    Echo,
    /// Returns every datagram with its ASCII letters uppercased.
    Upper,
    /// The heartbeat chat server: registration, broadcast, eviction of silent clients.
    Chat,
    /// Drops datagrams with a set probability and answers the rest with their length.
    Lossy,
    /// Not a server: a loopback port the relay keeps free, where nothing listens. A datagram
    /// sent there vanishes; a connected socket hears `ECONNREFUSED`.
    Nobody,
}

impl ServerName {
    /// Every server, in the order the relay starts them.
    pub const ALL: [ServerName; 4] = [Self::Echo, Self::Upper, Self::Chat, Self::Lossy];

    /// Everything a socket can be aimed at by name: the servers, then `nobody`.
    pub const TARGETS: [ServerName; 5] = [Self::Echo, Self::Upper, Self::Chat, Self::Lossy, Self::Nobody];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Upper => "upper",
            Self::Chat => "chat",
            Self::Lossy => "lossy",
            Self::Nobody => "nobody",
        }
    }
}

impl fmt::Display for ServerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name is not one of [`ServerName::TARGETS`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownServer(pub String);

impl fmt::Display for UnknownServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown server {:?}: expected echo, upper, chat, lossy or nobody", self.0)
    }
}

impl std::error::Error for UnknownServer {}

impl FromStr for ServerName {
    type Err = UnknownServer;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::TARGETS.into_iter().find(|name| name.as_str() == s).ok_or_else(|| UnknownServer(s.to_owned()))
    }
}

/// How many bytes of a datagram an event carries. Longer datagrams are cut here and marked
/// `truncated`; `len` always holds the real length. 256 bytes keep a chat line or a request
/// whole while a 64 KB datagram costs a subscriber no more than a short one.
pub const PREVIEW_BYTES: usize = 256;

/// A printable preview of a datagram: `text` when the previewed bytes are UTF-8, else `hex`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct Payload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// True when the datagram was longer than [`PREVIEW_BYTES`] and the preview is its start.
    #[serde(default, skip_serializing_if = "is_false")]
    pub truncated: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Payload {
    /// Previews up to [`PREVIEW_BYTES`] of `bytes`.
    pub fn preview(bytes: &[u8]) -> Self {
        let truncated = bytes.len() > PREVIEW_BYTES;
        let head = &bytes[..bytes.len().min(PREVIEW_BYTES)];
        match std::str::from_utf8(head) {
            Ok(text) => Self { text: Some(text.to_owned()), hex: None, truncated },
            // A cut can split a multi-byte character: keep the valid part as text.
            Err(e) if truncated && e.error_len().is_none() => Self {
                text: Some(String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()),
                hex: None,
                truncated,
            },
            Err(_) => Self { text: None, hex: Some(to_hex(head)), truncated },
        }
    }

    /// Whether this is exactly `Payload::preview(bytes)`, found without building that one.
    pub fn is_preview_of(&self, bytes: &[u8]) -> bool {
        let truncated = bytes.len() > PREVIEW_BYTES;
        let head = &bytes[..bytes.len().min(PREVIEW_BYTES)];
        let text =
            |valid: &[u8]| self.hex.is_none() && self.text.as_deref().is_some_and(|t| t.as_bytes() == valid);
        self.truncated == truncated
            && match std::str::from_utf8(head) {
                Ok(_) => text(head),
                Err(e) if truncated && e.error_len().is_none() => text(&head[..e.valid_up_to()]),
                Err(_) => {
                    self.text.is_none()
                        && self.hex.as_deref().is_some_and(|hex| {
                            hex.len() == 2 * head.len()
                                && hex.as_bytes().as_chunks::<2>().0.iter().zip(head).all(|(pair, &b)| {
                                    const DIGITS: &[u8; 16] = b"0123456789abcdef";
                                    *pair == [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 0x0f)]]
                                })
                        })
                }
            }
    }
}

/// Lowercase hex, two digits a byte, no separators.
pub fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

/// Something that happened in the relay, stamped by the event bus. Read back through
/// [`raw::RawEvent`], like [`EventKind`].
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct Event {
    /// Increases by one for every event the relay emits while anyone is listening.
    pub seq: u64,
    /// Microseconds since the relay started, from a monotonic clock.
    pub t_us: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

/// The name the relay gives one datagram, unique within its run. Every event about the same
/// datagram carries the same `dg`, from the send to the arrival; see `docs/protocol.md`.
pub type Dg = u64;

/// Why a server did not answer a datagram.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DropReason {
    /// The lossy server's dice said so: the loss a real network would cause.
    Loss,
    /// Too many delayed answers were already waiting; this one was shed to bound memory.
    Shed,
}

/// The facts themselves. Field names are the vocabulary of the whole project: `server`,
/// `peer`, `from`, `to`, `len`.
///
/// Read back (by the page, and by tests) through [`raw::RawEvent`], one flat record of every
/// field, rather than serde's derived reader for an internally tagged enum: that one is
/// generated once per kind and was most of the page's wasm.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventKind {
    /// A server read a datagram from `from`.
    ServerRecv {
        server: ServerName,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        #[serde(flatten)]
        payload: Payload,
    },
    /// A server sent a datagram to `to`. `reply_to` names the datagram it answers (for a chat
    /// copy, the message it copies); `delay_ms` is how long the answer was held first.
    ServerSend {
        server: ServerName,
        dg: Dg,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<Dg>,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        #[serde(flatten)]
        payload: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
    },
    /// A server read a datagram and will never answer it.
    ServerDrop {
        server: ServerName,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        reason: DropReason,
    },
    /// The kernel reported ICMP port unreachable (`ECONNREFUSED`) for something a server sent.
    /// `peer` is known only when the socket could tell.
    ServerRefused {
        server: ServerName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        peer: Option<SocketAddr>,
    },
    /// A chat client registered, or was heard from for the first time. `clients` counts the
    /// live clients after the change.
    ChatJoin {
        server: ServerName,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        clients: usize,
        /// The client will be evicted this many milliseconds after it was last heard.
        timeout_ms: u64,
    },
    /// A known chat client sent `^hb^` or `reg` and is alive for another `timeout_ms`.
    ChatHeartbeat {
        server: ServerName,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        timeout_ms: u64,
    },
    /// A chat client sent `quit`.
    ChatLeave {
        server: ServerName,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        clients: usize,
    },
    /// A chat client stayed silent for the whole timeout and was removed.
    ChatEvict {
        server: ServerName,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        silent_ms: u64,
        clients: usize,
    },
    /// A chat message (datagram `dg`) went out to `recipients` live clients, the sender
    /// included. Each copy is a datagram of its own: a `server_send` whose `reply_to` is `dg`.
    ChatBroadcast {
        server: ServerName,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        recipients: usize,
        len: usize,
        #[serde(flatten)]
        payload: Payload,
    },
    /// Chat message `dg` (`len` bytes) cannot be wrapped as `ack: IP PORT\n…\n` within UDP's
    /// 65,507 bytes: from this sender at most `max_len` fit. It went to nobody.
    ChatTooLong {
        server: ServerName,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        len: usize,
        max_len: usize,
    },
    /// A new chat client was turned away because `limit` clients are already live.
    ChatRefused {
        server: ServerName,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        limit: usize,
    },
    /// The chat server is stopping and sent `end` to its `clients` live clients.
    ChatEnd { server: ServerName, clients: usize },
    /// An operator changed a live setting of a server. Durations are in milliseconds. `by` is
    /// the session whose `configure` changed it (absent only in recordings from before it was
    /// named).
    ServerConfigured {
        server: ServerName,
        setting: String,
        value: f64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// `own`: only the datagrams of session `by`'s sockets meet it.
        #[serde(default = "Scope::all", skip_serializing_if = "Scope::is_all")]
        scope: Scope,
    },

    /// The link lost datagram `dg` on its way `dir` (to or from the server). `peer` is the
    /// server's other end. With `fragment`, fragment number `fragment` of `fragments` was lost.
    LinkDrop {
        server: ServerName,
        dir: Dir,
        dg: Dg,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        len: usize,
        reason: LinkDropReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fragment: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fragments: Option<u32>,
    },
    /// The link delivers datagram `dg` twice; the second delivery is datagram `copy`.
    LinkDuplicate {
        server: ServerName,
        dir: Dir,
        dg: Dg,
        copy: Dg,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
    },
    /// The link holds datagram `dg` back: for `hold_ms` (a delay or a fault), or until the next
    /// datagram has gone by (`reorder`, no `hold_ms`).
    LinkHold {
        server: ServerName,
        dir: Dir,
        dg: Dg,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        reason: HoldReason,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_ms: Option<u64>,
    },
    /// The link lets datagram `dg` go on after holding it `held_us` microseconds.
    LinkRelease {
        server: ServerName,
        dir: Dir,
        dg: Dg,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
        held_us: u64,
    },
    /// A direction of a server's link has new settings (all of them, not only the change).
    /// `by` is the session whose command changed it; absent when the HTTP API did.
    LinkConfigured {
        server: ServerName,
        dir: Dir,
        settings: LinkSettings,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
        /// `own`: only the datagrams of session `by`'s sockets meet it.
        #[serde(default = "Scope::all", skip_serializing_if = "Scope::is_all")]
        scope: Scope,
    },

    /// Session `session` now has a server `server` of its own: its first change with
    /// `scope` `own` copied the shared server and link as they were, and only its sockets'
    /// datagrams meet the copy.
    SandboxOpen { server: ServerName, session: String },
    /// Session `session`'s own server `server` is gone (a `reset`, or the session ended): its
    /// sockets meet the shared one again.
    SandboxClose { server: ServerName, session: String },

    /// A browser session opened a UDP socket at `local`, aimed at `remote`. `recv_buffer` is
    /// the most a read takes, when the socket was opened with one.
    ClientOpen {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        #[serde(with = "crate::addr")]
        local: SocketAddr,
        #[serde(with = "crate::addr")]
        remote: SocketAddr,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<ServerName>,
        connect: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recv_buffer: Option<usize>,
    },
    /// A session's socket was closed.
    ClientClose {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
    },
    /// A session's socket sent a datagram. `attempt` counts from 1 for requests with retries;
    /// `req` is the request ID put in front of the payload, if any.
    ClientSend {
        session: String,
        socket: String,
        /// Which member of a crowd sent it; absent for a plain socket.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        #[serde(flatten)]
        payload: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<String>,
    },
    /// A session's socket received a datagram. When the socket takes it as the answer to a
    /// request, `req` and `attempt` say which, and `rtt_us` is the time since that attempt was
    /// sent. `len` is the datagram's real length and `kept` the bytes the socket's read got:
    /// less than `len` when the datagram was cut by a small `recv_buffer`.
    ClientRecv {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        #[serde(flatten)]
        payload: Payload,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        attempt: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        req: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_us: Option<u64>,
        kept: usize,
    },
    /// No answer came within `delay_ms`, so the request is sent again as `attempt`, which will
    /// wait `next_wait_ms`.
    ClientRetry { session: String, socket: String, attempt: u32, delay_ms: u64, next_wait_ms: u64 },
    /// The request was given up after `attempts` attempts and `waited_ms` in all: the next
    /// wait would have passed `give_up_ms`. The tutorial's client says "I think the server is
    /// down" here.
    ClientGiveup { session: String, socket: String, attempts: u32, waited_ms: u64, give_up_ms: u64 },
    /// A reply that is not the answer: `late` when it answers an earlier attempt of the
    /// request, `duplicate` when the request was already answered or given up.
    ClientDuplicate {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        dg: Dg,
        #[serde(with = "crate::addr")]
        from: SocketAddr,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        #[serde(flatten)]
        payload: Payload,
        req: String,
        attempt: u32,
        reason: DuplicateReason,
    },
    /// The kernel reported ICMP port unreachable (`ECONNREFUSED`): nothing listens at `peer`.
    /// Only a connected socket learns this, as Twisted's `connectionRefused`.
    ClientRefused {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        #[serde(with = "crate::addr")]
        peer: SocketAddr,
    },
    /// Datagram `dg`, sent by a session's socket, reached no socket at all: nothing listens at
    /// `to` (the `nobody` target). The relay knows because it keeps that port free. A connected
    /// socket also hears of it as `client_refused`; an unconnected one never does.
    ClientVanished {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        dg: Dg,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        reason: VanishReason,
    },
    /// The kernel refused to send datagram `dg`: `error` is its reason, e.g. `EMSGSIZE`
    /// ("Message too long") for more than UDP's 65,507 bytes. Nothing left the socket.
    ClientSendFailed {
        session: String,
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        member: Option<u32>,
        dg: Dg,
        #[serde(with = "crate::addr")]
        to: SocketAddr,
        len: usize,
        /// The errno's name, such as `EMSGSIZE`, when it has one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        errno: Option<String>,
        /// The kernel's words, with what they mean here.
        error: String,
    },
}

/// Why a datagram reached nobody.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VanishReason {
    /// No socket is bound to the destination port.
    NoListener,
    /// The socket at the destination is connected to another address, and the kernel gives
    /// it datagrams from that peer only (lesson 6's stranger aimed at the connected socket).
    NotItsPeer,
}

/// Why a reply was not taken as the answer to its request.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateReason {
    /// It answers an earlier attempt; a later attempt was already on its way.
    Late,
    /// The request was already answered or given up.
    Duplicate,
}

/// The name of each [`EventKind`], as in its `kind` field, for choosing which kinds a session
/// receives (`subscribe` with `kinds`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    ServerRecv,
    ServerSend,
    ServerDrop,
    ServerRefused,
    ChatJoin,
    ChatHeartbeat,
    ChatLeave,
    ChatEvict,
    ChatBroadcast,
    ChatRefused,
    ChatEnd,
    ServerConfigured,
    ClientOpen,
    ClientClose,
    ClientSend,
    ClientRecv,
    ClientRetry,
    ClientGiveup,
    ClientDuplicate,
    ClientRefused,
    ClientVanished,
    ClientSendFailed,
    LinkDrop,
    LinkDuplicate,
    LinkHold,
    LinkRelease,
    LinkConfigured,
    ChatTooLong,
    SandboxOpen,
    SandboxClose,
}

// Each kind is one bit of a `u32`; `SandboxClose` is the last kind.
const _: () = assert!((Kind::SandboxClose as u32) < u32::BITS);

/// A set of [`Kind`]s, one bit each: cheap to copy and to test on every event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Kinds(u32);

impl Kinds {
    /// Every kind: what a session receives unless it asks for fewer.
    pub const ALL: Self = Self(u32::MAX);

    pub const fn contains(self, kind: Kind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }

    /// The set as a number, for keeping it in an atomic.
    pub const fn bits(self) -> u32 {
        self.0
    }

    pub const fn from_bits(bits: u32) -> Self {
        Self(bits)
    }
}

impl FromIterator<Kind> for Kinds {
    fn from_iter<I: IntoIterator<Item = Kind>>(kinds: I) -> Self {
        Self(kinds.into_iter().fold(0, |bits, kind| bits | 1 << kind as u32))
    }
}

impl EventKind {
    /// Which kind of event this is: the name in its `kind` field.
    pub fn kind(&self) -> Kind {
        match self {
            Self::ServerRecv { .. } => Kind::ServerRecv,
            Self::ServerSend { .. } => Kind::ServerSend,
            Self::ServerDrop { .. } => Kind::ServerDrop,
            Self::ServerRefused { .. } => Kind::ServerRefused,
            Self::ChatJoin { .. } => Kind::ChatJoin,
            Self::ChatHeartbeat { .. } => Kind::ChatHeartbeat,
            Self::ChatLeave { .. } => Kind::ChatLeave,
            Self::ChatEvict { .. } => Kind::ChatEvict,
            Self::ChatBroadcast { .. } => Kind::ChatBroadcast,
            Self::ChatRefused { .. } => Kind::ChatRefused,
            Self::ChatEnd { .. } => Kind::ChatEnd,
            Self::ServerConfigured { .. } => Kind::ServerConfigured,
            Self::ClientOpen { .. } => Kind::ClientOpen,
            Self::ClientClose { .. } => Kind::ClientClose,
            Self::ClientSend { .. } => Kind::ClientSend,
            Self::ClientRecv { .. } => Kind::ClientRecv,
            Self::ClientRetry { .. } => Kind::ClientRetry,
            Self::ClientGiveup { .. } => Kind::ClientGiveup,
            Self::ClientDuplicate { .. } => Kind::ClientDuplicate,
            Self::ClientRefused { .. } => Kind::ClientRefused,
            Self::ClientVanished { .. } => Kind::ClientVanished,
            Self::ClientSendFailed { .. } => Kind::ClientSendFailed,
            Self::LinkDrop { .. } => Kind::LinkDrop,
            Self::LinkDuplicate { .. } => Kind::LinkDuplicate,
            Self::LinkHold { .. } => Kind::LinkHold,
            Self::LinkRelease { .. } => Kind::LinkRelease,
            Self::LinkConfigured { .. } => Kind::LinkConfigured,
            Self::ChatTooLong { .. } => Kind::ChatTooLong,
            Self::SandboxOpen { .. } => Kind::SandboxOpen,
            Self::SandboxClose { .. } => Kind::SandboxClose,
        }
    }

    /// The server the event is about, for server events.
    pub fn server(&self) -> Option<ServerName> {
        Some(match self {
            Self::ServerRecv { server, .. }
            | Self::ServerSend { server, .. }
            | Self::ServerDrop { server, .. }
            | Self::ServerRefused { server, .. }
            | Self::ChatJoin { server, .. }
            | Self::ChatHeartbeat { server, .. }
            | Self::ChatLeave { server, .. }
            | Self::ChatEvict { server, .. }
            | Self::ChatBroadcast { server, .. }
            | Self::ChatRefused { server, .. }
            | Self::ChatEnd { server, .. }
            | Self::ServerConfigured { server, .. }
            | Self::LinkDrop { server, .. }
            | Self::LinkDuplicate { server, .. }
            | Self::LinkHold { server, .. }
            | Self::LinkRelease { server, .. }
            | Self::LinkConfigured { server, .. }
            | Self::ChatTooLong { server, .. }
            | Self::SandboxOpen { server, .. }
            | Self::SandboxClose { server, .. } => *server,
            _ => return None,
        })
    }

    /// The browser session the event belongs to: for client events, and for a session's
    /// sandbox opening or closing.
    pub fn session(&self) -> Option<&str> {
        match self {
            Self::ClientOpen { session, .. }
            | Self::ClientClose { session, .. }
            | Self::ClientSend { session, .. }
            | Self::ClientRecv { session, .. }
            | Self::ClientRetry { session, .. }
            | Self::ClientGiveup { session, .. }
            | Self::ClientDuplicate { session, .. }
            | Self::ClientRefused { session, .. }
            | Self::ClientVanished { session, .. }
            | Self::ClientSendFailed { session, .. }
            | Self::SandboxOpen { session, .. }
            | Self::SandboxClose { session, .. } => Some(session),
            _ => None,
        }
    }

    /// The datagram the event is about, if it is about one.
    pub fn dg(&self) -> Option<Dg> {
        match self {
            Self::ServerRecv { dg, .. }
            | Self::ServerSend { dg, .. }
            | Self::ServerDrop { dg, .. }
            | Self::ChatBroadcast { dg, .. }
            | Self::ClientSend { dg, .. }
            | Self::ClientRecv { dg, .. }
            | Self::ClientDuplicate { dg, .. }
            | Self::ClientVanished { dg, .. }
            | Self::ClientSendFailed { dg, .. }
            | Self::LinkDrop { dg, .. }
            | Self::LinkDuplicate { dg, .. }
            | Self::LinkHold { dg, .. }
            | Self::LinkRelease { dg, .. }
            | Self::ChatTooLong { dg, .. } => Some(*dg),
            _ => None,
        }
    }

    /// The peer a server event is about: who sent to, or was sent by, the server.
    pub fn peer(&self) -> Option<SocketAddr> {
        match self {
            Self::ServerRecv { from, .. } | Self::ServerDrop { from, .. } => Some(*from),
            Self::ServerSend { to, .. } => Some(*to),
            Self::ServerRefused { peer, .. } => *peer,
            Self::ChatJoin { peer, .. }
            | Self::ChatHeartbeat { peer, .. }
            | Self::ChatLeave { peer, .. }
            | Self::ChatEvict { peer, .. }
            | Self::ChatRefused { peer, .. } => Some(*peer),
            Self::ChatBroadcast { from, .. } | Self::ChatTooLong { from, .. } => Some(*from),
            Self::LinkDrop { peer, .. }
            | Self::LinkDuplicate { peer, .. }
            | Self::LinkHold { peer, .. }
            | Self::LinkRelease { peer, .. } => Some(*peer),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn a_payload_knows_whether_it_previews_some_bytes() {
        let long_text = "é".repeat(200);
        let cases: [&[u8]; 7] =
            [b"", b"hello", &[0xff, 0x00], long_text.as_bytes(), &[0xfe; 300], &[b'a'; 256], &[b'a'; 257]];
        for bytes in cases {
            let preview = Payload::preview(bytes);
            assert!(preview.is_preview_of(bytes), "{bytes:?}");
            for other in cases.iter().filter(|other| Payload::preview(other) != preview) {
                assert!(!preview.is_preview_of(other), "{preview:?} is not the preview of {other:?}");
            }
        }
        let mut hex = Payload::preview(&[0xff, 0x00]);
        hex.hex = Some("FF00".into());
        assert!(!hex.is_preview_of(&[0xff, 0x00]), "hex is lowercase");
    }

    fn golden(event: Event, expected: serde_json::Value) {
        let json = serde_json::to_value(&event).expect("serialize");
        assert_eq!(json, expected);
        let back: Event = serde_json::from_value(expected).expect("deserialize");
        assert_eq!(back, event);
    }

    #[test]
    fn server_recv_golden() {
        golden(
            Event {
                seq: 7,
                t_us: 1500,
                kind: EventKind::ServerRecv {
                    server: ServerName::Echo,
                    dg: 3,
                    from: addr("127.0.0.1:50000"),
                    to: addr("127.0.0.1:10004"),
                    len: 5,
                    payload: Payload::preview(b"hello"),
                },
            },
            json!({"seq":7,"t_us":1500,"kind":"server_recv","server":"echo","dg":3,
                   "from":"127.0.0.1:50000","to":"127.0.0.1:10004","len":5,"text":"hello"}),
        );
    }

    #[test]
    fn server_send_with_delay_golden() {
        golden(
            Event {
                seq: 8,
                t_us: 2500,
                kind: EventKind::ServerSend {
                    server: ServerName::Lossy,
                    dg: 4,
                    reply_to: Some(3),
                    from: addr("127.0.0.1:1060"),
                    to: addr("127.0.0.1:50000"),
                    len: 2,
                    payload: Payload::preview(&[0xff, 0x00]),
                    delay_ms: Some(150),
                },
            },
            json!({"seq":8,"t_us":2500,"kind":"server_send","server":"lossy","dg":4,"reply_to":3,
                   "from":"127.0.0.1:1060","to":"127.0.0.1:50000","len":2,"hex":"ff00",
                   "delay_ms":150}),
        );
    }

    #[test]
    fn drop_and_chat_golden() {
        golden(
            Event {
                seq: 1,
                t_us: 0,
                kind: EventKind::ServerDrop {
                    server: ServerName::Lossy,
                    dg: 17,
                    from: addr("127.0.0.1:5"),
                    to: addr("127.0.0.1:1060"),
                    len: 3,
                    reason: DropReason::Loss,
                },
            },
            json!({"seq":1,"t_us":0,"kind":"server_drop","server":"lossy","dg":17,"from":"127.0.0.1:5",
                   "to":"127.0.0.1:1060","len":3,"reason":"loss"}),
        );
        golden(
            Event {
                seq: 2,
                t_us: 10,
                kind: EventKind::ChatEvict {
                    server: ServerName::Chat,
                    peer: addr("[::1]:7"),
                    silent_ms: 10_000,
                    clients: 0,
                },
            },
            json!({"seq":2,"t_us":10,"kind":"chat_evict","server":"chat","peer":"[::1]:7",
                   "silent_ms":10000,"clients":0}),
        );
    }

    #[test]
    fn client_datagram_events_golden() {
        golden(
            Event {
                seq: 9,
                t_us: 30,
                kind: EventKind::ClientRecv {
                    session: "s1".into(),
                    socket: "a".into(),
                    member: None,
                    dg: 12,
                    from: addr("127.0.0.1:10004"),
                    to: addr("127.0.0.1:40522"),
                    len: 2000,
                    payload: Payload::preview(b"x"),
                    attempt: None,
                    req: None,
                    rtt_us: None,
                    kept: 1024,
                },
            },
            json!({"seq":9,"t_us":30,"kind":"client_recv","session":"s1","socket":"a","dg":12,
                   "from":"127.0.0.1:10004","to":"127.0.0.1:40522","len":2000,"text":"x",
                   "kept":1024}),
        );
        golden(
            Event {
                seq: 10,
                t_us: 31,
                kind: EventKind::ClientVanished {
                    session: "s1".into(),
                    socket: "n".into(),
                    member: Some(4),
                    dg: 13,
                    to: addr("127.0.0.1:29999"),
                    len: 5,
                    reason: VanishReason::NoListener,
                },
            },
            json!({"seq":10,"t_us":31,"kind":"client_vanished","session":"s1","socket":"n",
                   "member":4,"dg":13,"to":"127.0.0.1:29999","len":5,"reason":"no_listener"}),
        );
        golden(
            Event {
                seq: 11,
                t_us: 32,
                kind: EventKind::ClientSendFailed {
                    session: "s1".into(),
                    socket: "a".into(),
                    member: None,
                    dg: 14,
                    to: addr("127.0.0.1:10004"),
                    len: 65_508,
                    errno: Some("EMSGSIZE".into()),
                    error: "Message too long".into(),
                },
            },
            json!({"seq":11,"t_us":32,"kind":"client_send_failed","session":"s1","socket":"a",
                   "dg":14,"to":"127.0.0.1:10004","len":65508,"errno":"EMSGSIZE",
                   "error":"Message too long"}),
        );
    }

    #[test]
    fn link_events_golden() {
        golden(
            Event {
                seq: 12,
                t_us: 40,
                kind: EventKind::LinkDrop {
                    server: ServerName::Echo,
                    dir: Dir::Out,
                    dg: 21,
                    peer: addr("127.0.0.1:40522"),
                    len: 3000,
                    reason: LinkDropReason::Fragment,
                    fragment: Some(2),
                    fragments: Some(3),
                },
            },
            json!({"seq":12,"t_us":40,"kind":"link_drop","server":"echo","dir":"out","dg":21,
                   "peer":"127.0.0.1:40522","len":3000,"reason":"fragment","fragment":2,"fragments":3}),
        );
        golden(
            Event {
                seq: 13,
                t_us: 41,
                kind: EventKind::LinkHold {
                    server: ServerName::Upper,
                    dir: Dir::In,
                    dg: 22,
                    peer: addr("127.0.0.1:40522"),
                    reason: HoldReason::Delay,
                    hold_ms: Some(130),
                },
            },
            json!({"seq":13,"t_us":41,"kind":"link_hold","server":"upper","dir":"in","dg":22,
                   "peer":"127.0.0.1:40522","reason":"delay","hold_ms":130}),
        );
        golden(
            Event {
                seq: 14,
                t_us: 42,
                kind: EventKind::LinkConfigured {
                    server: ServerName::Echo,
                    dir: Dir::Out,
                    settings: LinkSettings { loss: 0.3, delay_ms: 100, jitter_ms: 50, ..Default::default() },
                    by: Some("f9e6efbc0518".into()),
                    scope: Scope::Own,
                },
            },
            json!({"seq":14,"t_us":42,"kind":"link_configured","server":"echo","dir":"out",
                   "settings":{"loss":0.3,"duplicate":0.0,"reorder":0.0,"delay_ms":100,"jitter_ms":50},
                   "by":"f9e6efbc0518","scope":"own"}),
        );
    }

    #[test]
    fn preview_cuts_long_datagrams_and_keeps_text_whole_characters() {
        let long = "é".repeat(PREVIEW_BYTES); // two bytes each: the cut lands mid-character
        let p = Payload::preview(long.as_bytes());
        assert!(p.truncated);
        assert_eq!(p.text.as_deref(), Some("é".repeat(PREVIEW_BYTES / 2).as_str()));
        assert_eq!(p.hex, None);

        let p = Payload::preview(b"");
        assert_eq!(p, Payload { text: Some(String::new()), hex: None, truncated: false });
    }

    #[test]
    fn preview_uses_hex_for_binary() {
        let p = Payload::preview(&[0x00, 0xab, 0xff]);
        assert_eq!(p.text, None);
        assert_eq!(p.hex.as_deref(), Some("00abff"));
    }

    #[test]
    fn server_names_round_trip() {
        for name in ServerName::TARGETS {
            assert_eq!(name.as_str().parse::<ServerName>(), Ok(name));
        }
        assert!("ECHO".parse::<ServerName>().is_err());
    }

    #[test]
    fn every_kind_is_named_as_in_its_events() {
        let (a, b) = ("127.0.0.1:1", "127.0.0.1:2");
        let (server, client) = (json!({"server":"echo"}), json!({"session":"s","socket":"x"}));
        let samples = [
            ("server_recv", json!({"dg":1,"from":a,"to":b,"len":0,"text":""}), &server),
            ("server_send", json!({"dg":2,"from":a,"to":b,"len":0,"text":""}), &server),
            ("server_drop", json!({"dg":1,"from":a,"to":b,"len":0,"reason":"loss"}), &server),
            ("server_refused", json!({}), &server),
            ("chat_join", json!({"peer":a,"clients":1,"timeout_ms":1}), &server),
            ("chat_heartbeat", json!({"peer":a,"timeout_ms":1}), &server),
            ("chat_leave", json!({"peer":a,"clients":0}), &server),
            ("chat_evict", json!({"peer":a,"silent_ms":1,"clients":0}), &server),
            ("chat_broadcast", json!({"dg":1,"from":a,"recipients":1,"len":0,"text":""}), &server),
            ("chat_refused", json!({"peer":a,"limit":1}), &server),
            ("chat_end", json!({"clients":0}), &server),
            ("server_configured", json!({"setting":"drop","value":0.5,"by":"s"}), &server),
            ("client_open", json!({"local":a,"remote":b,"connect":true}), &client),
            ("client_close", json!({}), &client),
            ("client_send", json!({"dg":1,"from":a,"to":b,"len":0,"text":""}), &client),
            ("client_recv", json!({"dg":2,"from":a,"to":b,"len":0,"text":"","kept":0}), &client),
            ("client_retry", json!({"attempt":2,"delay_ms":1,"next_wait_ms":2}), &client),
            ("client_giveup", json!({"attempts":2,"waited_ms":3,"give_up_ms":3}), &client),
            (
                "client_duplicate",
                json!({"dg":3,"from":a,"to":b,"len":0,"text":"","req":"1","attempt":1,"reason":"late"}),
                &client,
            ),
            ("client_refused", json!({"peer":b}), &client),
            ("client_vanished", json!({"dg":1,"to":b,"len":0,"reason":"no_listener"}), &client),
            ("client_send_failed", json!({"dg":1,"to":b,"len":0,"error":"x"}), &client),
            ("link_drop", json!({"dir":"in","dg":1,"peer":a,"len":0,"reason":"loss"}), &server),
            ("link_duplicate", json!({"dir":"out","dg":1,"copy":2,"peer":a}), &server),
            ("link_hold", json!({"dir":"out","dg":1,"peer":a,"reason":"reorder"}), &server),
            ("link_release", json!({"dir":"out","dg":1,"peer":a,"held_us":5}), &server),
            ("link_configured", json!({"dir":"in","settings":{"loss":0.5}}), &server),
            ("chat_too_long", json!({"dg":1,"from":a,"len":65490,"max_len":65486}), &server),
            ("sandbox_open", json!({"session":"s"}), &server),
            ("sandbox_close", json!({"session":"s"}), &server),
        ];
        let mut seen = Vec::new();
        for (name, fields, common) in samples {
            let mut event = fields;
            event["kind"] = json!(name);
            for (key, value) in common.as_object().into_iter().flatten() {
                event[key] = value.clone();
            }
            let kind = serde_json::from_value::<EventKind>(event).expect(name).kind();
            assert_eq!(serde_json::to_value(kind).expect("serialize"), json!(name));
            assert!(!seen.contains(&kind), "{name} twice");
            seen.push(kind);
        }
        let set: Kinds = seen.iter().copied().collect();
        assert_eq!(set.bits().count_ones(), 30, "distinct bits");
        assert!(seen.iter().all(|&kind| set.contains(kind)));
        assert!(!Kinds::from_iter([Kind::ClientRecv]).contains(Kind::ClientSend));
        assert!(serde_json::from_value::<Kind>(json!("client_reply")).is_err());
    }
}
