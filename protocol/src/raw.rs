//! Reading a [`ServerMsg`], an [`Event`] or an [`EventKind`] back: every field of every
//! message and every kind of event in one flat record, then the `type` and the `kind` pick
//! their fields. The JSON is exactly what the derived writers write; the reader is a small
//! fraction of the code serde derives for internally tagged enums and a flattened field, which
//! buffer every message into serde's private `Content` tree before reading it a second time.
//! The page carries this reader, so its size is the bundle's.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::message::{ErrorCode, Hello, Limits, ServerMsg, ServerSettings};
use crate::{Dg, Dir, Event, EventKind, Kind, LinkSettings, Links, Payload, Scope, ServerName};

/// A message's `type`.
#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum MsgType {
    Hello,
    Event,
    Error,
    Lagged,
    Bye,
    Batch,
}

/// Every field any message or any kind of event has, each optional.
#[derive(Deserialize)]
pub struct RawEvent {
    #[serde(rename = "type")]
    msg: Option<MsgType>,
    seq: Option<u64>,
    t_us: Option<u64>,
    kind: Option<Kind>,
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
    by: Option<String>,
    scope: Option<Scope>,
    socket: Option<String>,
    req: Option<String>,
    errno: Option<String>,
    error: Option<String>,
    connect: Option<bool>,
    /// A hello's servers' settings, or a `link_configured` event's link.
    settings: Option<Settings>,
    text: Option<String>,
    hex: Option<String>,
    truncated: Option<bool>,
    // A hello's.
    version: Option<u32>,
    servers: Option<BTreeMap<ServerName, SocketAddr>>,
    links: Option<BTreeMap<ServerName, Links>>,
    join: Option<Vec<String>>,
    limits: Option<Limits>,
    // An error's, a lag's and a batch's.
    code: Option<ErrorCode>,
    message: Option<String>,
    op: Option<String>,
    missed: Option<u64>,
    messages: Option<Vec<ServerMsg>>,
}

/// `settings`, which means two things: in a hello, each server's settings by name; in a
/// `link_configured` event, one link's. The first key tells which (server names and link
/// settings share none), and the whole map is then read as that.
enum Settings {
    Empty,
    Servers(BTreeMap<ServerName, ServerSettings>),
    Link(LinkSettings),
}

impl<'de> Deserialize<'de> for Settings {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SettingsVisitor;
        impl<'de> Visitor<'de> for SettingsVisitor {
            type Value = Settings;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Settings, A::Error> {
                let Some(first) = map.next_key::<String>()? else { return Ok(Settings::Empty) };
                let by_server = ServerName::TARGETS.iter().any(|name| name.as_str() == first);
                let whole = MapAccessDeserializer::new(Resumed { first: Some(first), map });
                if by_server {
                    BTreeMap::deserialize(whole).map(Settings::Servers)
                } else {
                    LinkSettings::deserialize(whole).map(Settings::Link)
                }
            }
        }
        deserializer.deserialize_map(SettingsVisitor)
    }
}

/// A map whose first key was already read: it hands that key back first, then the rest.
struct Resumed<A> {
    first: Option<String>,
    map: A,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for Resumed<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, A::Error> {
        match self.first.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => self.map.next_key_seed(seed),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, A::Error> {
        self.map.next_value_seed(seed)
    }
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
    fn into_msg(self) -> Result<ServerMsg, &'static str> {
        let mut r = self;
        Ok(match need(r.msg.take(), "type")? {
            MsgType::Event => ServerMsg::Event(r.into_event()?),
            MsgType::Hello => ServerMsg::Hello(Hello {
                version: need(r.version, "version")?,
                session: need(r.session, "session")?,
                t_us: r.t_us,
                servers: need(r.servers, "servers")?,
                settings: match r.settings {
                    None | Some(Settings::Empty) => BTreeMap::new(),
                    Some(Settings::Servers(settings)) => settings,
                    Some(Settings::Link(_)) => return Err("settings"),
                },
                links: r.links.unwrap_or_default(),
                join: r.join.unwrap_or_default(),
                limits: need(r.limits, "limits")?,
            }),
            MsgType::Error => ServerMsg::Error {
                code: need(r.code, "code")?,
                message: need(r.message, "message")?,
                op: r.op,
                socket: r.socket,
            },
            MsgType::Lagged => ServerMsg::Lagged { missed: need(r.missed, "missed")? },
            MsgType::Bye => ServerMsg::Bye { reason: need(r.reason, "reason")? },
            MsgType::Batch => ServerMsg::Batch { messages: need(r.messages, "messages")? },
        })
    }

    fn into_event(self) -> Result<Event, &'static str> {
        Ok(Event { seq: need(self.seq, "seq")?, t_us: need(self.t_us, "t_us")?, kind: self.into_kind()? })
    }

    fn into_kind(self) -> Result<EventKind, &'static str> {
        let r = self;
        let payload = Payload { text: r.text, hex: r.hex, truncated: r.truncated.unwrap_or(false) };
        let server = || need(r.server, "server");
        Ok(match need(r.kind, "kind")? {
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
                by: r.by,
                scope: r.scope.unwrap_or(Scope::All),
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
                settings: match r.settings {
                    Some(Settings::Link(settings)) => settings,
                    Some(Settings::Empty) => LinkSettings::default(),
                    _ => return Err("settings"),
                },
                by: r.by,
                scope: r.scope.unwrap_or(Scope::All),
            },
            Kind::SandboxOpen => {
                EventKind::SandboxOpen { server: server()?, session: need(r.session, "session")? }
            }
            Kind::SandboxClose => {
                EventKind::SandboxClose { server: server()?, session: need(r.session, "session")? }
            }
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

fn wrong<E: serde::de::Error>(field: &'static str) -> E {
    E::custom(format_args!("missing or wrong field `{field}`"))
}

impl<'de> Deserialize<'de> for EventKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(deserializer)?.into_kind().map_err(wrong)
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(deserializer)?.into_event().map_err(wrong)
    }
}

impl<'de> Deserialize<'de> for ServerMsg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        RawEvent::deserialize(deserializer)?.into_msg().map_err(wrong)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes `msg` with the derived writer and reads it back with the flat reader.
    fn round_trip(msg: ServerMsg) {
        let json = serde_json::to_string(&msg).expect("serialize");
        let back: ServerMsg = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, msg, "{json}");
        let value: ServerMsg =
            serde_json::from_value(serde_json::to_value(&msg).expect("value")).expect("from value");
        assert_eq!(value, msg);
    }

    fn hello(settings: BTreeMap<ServerName, ServerSettings>, links: BTreeMap<ServerName, Links>) -> Hello {
        Hello {
            version: crate::message::VERSION,
            session: "s1".into(),
            t_us: Some(2_000_000),
            servers: BTreeMap::from([(ServerName::Echo, "127.0.0.1:10004".parse().expect("addr"))]),
            settings,
            links,
            join: vec!["http://192.0.2.7:8080/".into()],
            limits: Limits {
                sessions: 64,
                sockets_per_session: 16,
                sends_per_sec: 200,
                datagram_bytes: 65_507,
                bytes_per_sec: 1_048_576,
                crowd_clients: 100,
                heartbeat_min_ms: 100,
                pending_requests: 32,
                chat_clients: 10_000,
                preview_bytes: 256,
            },
        }
    }

    #[test]
    fn every_message_reads_back_as_written() {
        let settings = BTreeMap::from([
            (
                ServerName::Lossy,
                ServerSettings { drop: Some(0.5), seed: Some(42), ..ServerSettings::default() },
            ),
            (ServerName::Chat, ServerSettings { timeout_ms: Some(3_000), ..ServerSettings::default() }),
        ]);
        let link = LinkSettings { loss: 0.2, delay_ms: 50, mtu: Some(1_500), ..LinkSettings::default() };
        let links =
            BTreeMap::from([(ServerName::Echo, Links { inbound: link, outbound: LinkSettings::default() })]);
        round_trip(ServerMsg::Hello(hello(settings, links)));
        round_trip(ServerMsg::Hello(hello(BTreeMap::new(), BTreeMap::new())));
        let configured = Event {
            seq: 7,
            t_us: 1_000,
            kind: EventKind::LinkConfigured {
                server: ServerName::Upper,
                dir: Dir::In,
                settings: link,
                by: Some("f9e6efbc0518".into()),
                scope: Scope::Own,
            },
        };
        round_trip(ServerMsg::Event(configured.clone()));
        let off = Event {
            kind: EventKind::LinkConfigured {
                server: ServerName::Upper,
                dir: Dir::Out,
                settings: LinkSettings::default(),
                by: None,
                scope: Scope::All,
            },
            ..configured.clone()
        };
        round_trip(ServerMsg::Event(off));
        round_trip(ServerMsg::Error {
            code: ErrorCode::UnknownSocket,
            message: "no socket named \"z\"".into(),
            op: Some("send".into()),
            socket: Some("z".into()),
        });
        round_trip(ServerMsg::Error {
            code: ErrorCode::BadJson,
            message: "?".into(),
            op: None,
            socket: None,
        });
        for kind in [
            EventKind::SandboxOpen { server: ServerName::Lossy, session: "f9e6efbc0518".into() },
            EventKind::SandboxClose { server: ServerName::Chat, session: "f9e6efbc0518".into() },
        ] {
            round_trip(ServerMsg::Event(Event { seq: 8, t_us: 2_000, kind }));
        }
        round_trip(ServerMsg::Lagged { missed: 5 });
        round_trip(ServerMsg::Bye { reason: "shutdown".into() });
        round_trip(ServerMsg::Batch {
            messages: vec![ServerMsg::Lagged { missed: 1 }, ServerMsg::Event(configured)],
        });
    }

    #[test]
    fn fields_are_read_in_any_order_and_unknown_ones_are_skipped() {
        let msg: ServerMsg = serde_json::from_value(json!({
            "t_us": 99, "kind": "client_retry", "extra": [1, {"a": 2}], "session": "s1", "socket": "a",
            "attempt": 2, "delay_ms": 100, "next_wait_ms": 200, "seq": 3, "type": "event"
        }))
        .expect("deserialize");
        let ServerMsg::Event(event) = msg else { panic!("not an event: {msg:?}") };
        assert_eq!((event.seq, event.t_us, event.kind.kind()), (3, 99, Kind::ClientRetry));
        // An empty `settings` is no settings in a hello, and the perfect link in an event.
        let hello: ServerMsg =
            serde_json::from_value(json!({"settings": {}, "type": "hello", "version": 1, "session": "s", "servers": {},
                "limits": serde_json::to_value(hello(BTreeMap::new(), BTreeMap::new()).limits).expect("limits")}))
            .expect("a hello");
        assert!(matches!(hello, ServerMsg::Hello(h) if h.settings.is_empty() && h.links.is_empty()));
        let event: Event = serde_json::from_value(json!({"seq": 1, "t_us": 2, "kind": "link_configured",
            "server": "echo", "dir": "in", "settings": {}}))
        .expect("an event");
        assert_eq!(
            event.kind,
            EventKind::LinkConfigured {
                server: ServerName::Echo,
                dir: Dir::In,
                settings: LinkSettings::default(),
                by: None,
                scope: Scope::All,
            }
        );
    }

    #[test]
    fn a_message_missing_what_its_type_needs_is_an_error_naming_the_field() {
        let read = |v: serde_json::Value| serde_json::from_value::<ServerMsg>(v).map_err(|e| e.to_string());
        assert!(read(json!({"missed": 5})).is_err_and(|e| e.contains("`type`")), "no type");
        assert!(read(json!({"type": "lagged"})).is_err_and(|e| e.contains("`missed`")));
        assert!(
            read(json!({"type": "event", "seq": 1, "kind": "chat_end", "server": "chat", "clients": 0}))
                .is_err_and(|e| e.contains("`t_us`"))
        );
        assert!(read(json!({"type": "nonsense"})).is_err());
        // A link's settings in a hello, or servers' settings in a link event, are wrong.
        assert!(
            read(json!({"type": "event", "seq": 1, "t_us": 1, "kind": "link_configured", "server": "echo",
            "dir": "in", "settings": {"echo": {}}}))
            .is_err_and(|e| e.contains("`settings`"))
        );
        assert!(
            read(json!({"type": "event", "seq": 1, "t_us": 1, "kind": "link_configured", "server": "echo",
            "dir": "in", "settings": {"loss": 0.1, "nonsense": 1}}))
            .is_err(),
            "a link's settings deny unknown fields, as before"
        );
    }
}
