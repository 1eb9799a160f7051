//! Reading an [`EventKind`] back: every field of every kind in one flat record, then the kind
//! picks its fields. The JSON is exactly what the derived writer writes; the reader is a small
//! fraction of the code serde derives for an internally tagged enum of 28 kinds.

use std::net::SocketAddr;

use serde::de::{DeserializeOwned, Error as _, IntoDeserializer};
use serde::{Deserialize, Deserializer};

use crate::{Dg, Dir, EventKind, Kind, LinkSettings, Payload, ServerName};

/// Every field any kind of event has, each optional.
#[derive(Deserialize)]
pub struct RawEvent {
    kind: Kind,
    server: Option<ServerName>,
    dg: Option<Dg>,
    reply_to: Option<Dg>,
    copy: Option<Dg>,
    from: Option<SocketAddr>,
    to: Option<SocketAddr>,
    peer: Option<SocketAddr>,
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    len: Option<usize>,
    clients: Option<usize>,
    recipients: Option<usize>,
    limit: Option<usize>,
    max_len: Option<usize>,
    kept: Option<usize>,
    recv_buffer: Option<usize>,
    timeout_ms: Option<u64>,
    silent_ms: Option<u64>,
    delay_ms: Option<u64>,
    next_wait_ms: Option<u64>,
    waited_ms: Option<u64>,
    give_up_ms: Option<u64>,
    rtt_us: Option<u64>,
    hold_ms: Option<u64>,
    held_us: Option<u64>,
    setting: Option<String>,
    value: Option<f64>,
    dir: Option<Dir>,
    reason: Option<String>,
    fragment: Option<u32>,
    fragments: Option<u32>,
    member: Option<u32>,
    attempt: Option<u32>,
    attempts: Option<u32>,
    session: Option<String>,
    socket: Option<String>,
    req: Option<String>,
    errno: Option<String>,
    error: Option<String>,
    connect: Option<bool>,
    settings: Option<LinkSettings>,
    text: Option<String>,
    hex: Option<String>,
    truncated: Option<bool>,
}

/// A field the kind needs, or the name of the one missing.
fn need<T>(value: Option<T>, name: &'static str) -> Result<T, &'static str> {
    value.ok_or(name)
}

/// A `reason`, read as the enum the kind gives it.
fn reason<T: DeserializeOwned>(reason: Option<String>) -> Result<T, &'static str> {
    let text = need(reason, "reason")?;
    T::deserialize(IntoDeserializer::<serde::de::value::Error>::into_deserializer(text)).map_err(|_| "reason")
}

impl RawEvent {
    fn into_kind(self) -> Result<EventKind, &'static str> {
        let r = self;
        let payload = Payload { text: r.text, hex: r.hex, truncated: r.truncated.unwrap_or(false) };
        let server = || need(r.server, "server");
        Ok(match r.kind {
            Kind::ServerRecv => EventKind::ServerRecv {
                server: server()?,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                payload,
            },
            Kind::ServerSend => EventKind::ServerSend {
                server: server()?,
                dg: need(r.dg, "dg")?,
                reply_to: r.reply_to,
                from: need(r.from, "from")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                payload,
                delay_ms: r.delay_ms,
            },
            Kind::ServerDrop => EventKind::ServerDrop {
                server: server()?,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                reason: reason(r.reason)?,
            },
            Kind::ServerRefused => EventKind::ServerRefused { server: server()?, peer: r.peer },
            Kind::ChatJoin => EventKind::ChatJoin {
                server: server()?,
                peer: need(r.peer, "peer")?,
                clients: need(r.clients, "clients")?,
                timeout_ms: need(r.timeout_ms, "timeout_ms")?,
            },
            Kind::ChatHeartbeat => EventKind::ChatHeartbeat {
                server: server()?,
                peer: need(r.peer, "peer")?,
                timeout_ms: need(r.timeout_ms, "timeout_ms")?,
            },
            Kind::ChatLeave => EventKind::ChatLeave {
                server: server()?,
                peer: need(r.peer, "peer")?,
                clients: need(r.clients, "clients")?,
            },
            Kind::ChatEvict => EventKind::ChatEvict {
                server: server()?,
                peer: need(r.peer, "peer")?,
                silent_ms: need(r.silent_ms, "silent_ms")?,
                clients: need(r.clients, "clients")?,
            },
            Kind::ChatBroadcast => EventKind::ChatBroadcast {
                server: server()?,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                recipients: need(r.recipients, "recipients")?,
                len: need(r.len, "len")?,
                payload,
            },
            Kind::ChatTooLong => EventKind::ChatTooLong {
                server: server()?,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                len: need(r.len, "len")?,
                max_len: need(r.max_len, "max_len")?,
            },
            Kind::ChatRefused => EventKind::ChatRefused {
                server: server()?,
                peer: need(r.peer, "peer")?,
                limit: need(r.limit, "limit")?,
            },
            Kind::ChatEnd => EventKind::ChatEnd { server: server()?, clients: need(r.clients, "clients")? },
            Kind::ServerConfigured => EventKind::ServerConfigured {
                server: server()?,
                setting: need(r.setting, "setting")?,
                value: need(r.value, "value")?,
            },
            Kind::LinkDrop => EventKind::LinkDrop {
                server: server()?,
                dir: need(r.dir, "dir")?,
                dg: need(r.dg, "dg")?,
                peer: need(r.peer, "peer")?,
                len: need(r.len, "len")?,
                reason: reason(r.reason)?,
                fragment: r.fragment,
                fragments: r.fragments,
            },
            Kind::LinkDuplicate => EventKind::LinkDuplicate {
                server: server()?,
                dir: need(r.dir, "dir")?,
                dg: need(r.dg, "dg")?,
                copy: need(r.copy, "copy")?,
                peer: need(r.peer, "peer")?,
            },
            Kind::LinkHold => EventKind::LinkHold {
                server: server()?,
                dir: need(r.dir, "dir")?,
                dg: need(r.dg, "dg")?,
                peer: need(r.peer, "peer")?,
                reason: reason(r.reason)?,
                hold_ms: r.hold_ms,
            },
            Kind::LinkRelease => EventKind::LinkRelease {
                server: server()?,
                dir: need(r.dir, "dir")?,
                dg: need(r.dg, "dg")?,
                peer: need(r.peer, "peer")?,
                held_us: need(r.held_us, "held_us")?,
            },
            Kind::LinkConfigured => EventKind::LinkConfigured {
                server: server()?,
                dir: need(r.dir, "dir")?,
                settings: need(r.settings, "settings")?,
            },
            Kind::ClientOpen => EventKind::ClientOpen {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                local: need(r.local, "local")?,
                remote: need(r.remote, "remote")?,
                server: r.server,
                connect: need(r.connect, "connect")?,
                recv_buffer: r.recv_buffer,
            },
            Kind::ClientClose => EventKind::ClientClose {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
            },
            Kind::ClientSend => EventKind::ClientSend {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                payload,
                attempt: r.attempt,
                req: r.req,
            },
            Kind::ClientRecv => EventKind::ClientRecv {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                payload,
                attempt: r.attempt,
                req: r.req,
                rtt_us: r.rtt_us,
                kept: need(r.kept, "kept")?,
            },
            Kind::ClientRetry => EventKind::ClientRetry {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                attempt: need(r.attempt, "attempt")?,
                delay_ms: need(r.delay_ms, "delay_ms")?,
                next_wait_ms: need(r.next_wait_ms, "next_wait_ms")?,
            },
            Kind::ClientGiveup => EventKind::ClientGiveup {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                attempts: need(r.attempts, "attempts")?,
                waited_ms: need(r.waited_ms, "waited_ms")?,
                give_up_ms: need(r.give_up_ms, "give_up_ms")?,
            },
            Kind::ClientDuplicate => EventKind::ClientDuplicate {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                dg: need(r.dg, "dg")?,
                from: need(r.from, "from")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                payload,
                req: need(r.req, "req")?,
                attempt: need(r.attempt, "attempt")?,
                reason: reason(r.reason)?,
            },
            Kind::ClientRefused => EventKind::ClientRefused {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                peer: need(r.peer, "peer")?,
            },
            Kind::ClientVanished => EventKind::ClientVanished {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                dg: need(r.dg, "dg")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                reason: reason(r.reason)?,
            },
            Kind::ClientSendFailed => EventKind::ClientSendFailed {
                session: need(r.session, "session")?,
                socket: need(r.socket, "socket")?,
                member: r.member,
                dg: need(r.dg, "dg")?,
                to: need(r.to, "to")?,
                len: need(r.len, "len")?,
                errno: r.errno,
                error: need(r.error, "error")?,
            },
        })
    }
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(deserializer)?
            .into_kind()
            .map_err(|field| D::Error::custom(format_args!("missing or wrong field `{field}`")))
    }
}
