//! Messages: what the relay sends to a WebSocket client, keyed by `type`.
//!
//! The first message of every session is [`Hello`]. Then come events, each in its own frame as
//! `{"type":"event","seq":…,"t_us":…,"kind":…}`, errors for commands that could not be
//! carried out (the session stays usable), `lagged` when the session fell behind the event
//! stream, and `bye` when the relay shuts down.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{Event, Links, ServerName};

/// One message frame from the relay. Read back through one flat record of every field (see
/// `raw.rs`), not serde's derived reader.
#[derive(Serialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Hello(Hello),
    Event(Event),
    Error {
        code: ErrorCode,
        message: String,
        /// The `op` of the command that failed, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        op: Option<String>,
        /// The socket the command named, when it named one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        socket: Option<String>,
    },
    /// This session fell behind and `missed` events were skipped; the stream resumes after
    /// the gap.
    Lagged {
        missed: u64,
    },
    /// The relay is shutting down; the session's sockets are closed.
    Bye {
        reason: String,
    },
    /// Several messages in one frame, in order, after `subscribe` with `batch`.
    Batch {
        messages: Vec<ServerMsg>,
    },
}

/// The greeting: who you are, where the servers are, and the limits that apply to you.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Hello {
    /// The protocol version, [`crate::message::VERSION`].
    pub version: u32,
    /// This session's ID; client events carry it as `session`.
    pub session: String,
    /// The relay's clock when it said hello, on the events' `t_us` scale: what happened before
    /// (a projector's backlog) has a smaller `t_us`. Absent in recordings made before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t_us: Option<u64>,
    /// Each server's UDP address.
    pub servers: BTreeMap<ServerName, SocketAddr>,
    /// Each server's live settings when the session started; changes arrive later as
    /// `server_configured` events.
    #[serde(default)]
    pub settings: BTreeMap<ServerName, ServerSettings>,
    /// Each server's link, both directions, when the session started; changes arrive later as
    /// `link_configured` events.
    #[serde(default)]
    pub links: BTreeMap<ServerName, Links>,
    /// The URLs students' machines open, when the relay is reachable from the network (bound to
    /// every interface, or to one of them): one per address of this machine, then the
    /// `--public-host` names. Empty on loopback.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub join: Vec<String>,
    pub limits: Limits,
}

/// A server's settings. Each server fills in the ones it has.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
pub struct ServerSettings {
    /// Lossy: probability of dropping a datagram.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop: Option<f64>,
    /// Lossy: fixed delay before each answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    /// Lossy: random extra delay, up to this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    /// Lossy: the RNG seed, to replay a run with `--seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Lossy: delayed answers held at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pending: Option<usize>,
    /// Lossy: delayed answers shed so far because `max_pending` were already held.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shed: Option<u64>,
    /// Chat: how long a silent client lives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Chat: live clients at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clients: Option<usize>,
    /// Chat: live clients now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<usize>,
}

/// The version of this protocol. Adding fields and messages keeps it; renaming bumps it.
pub const VERSION: u32 = 1;

/// The limits a session works within. Each has a relay flag of the same name.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// WebSocket sessions at once, over the whole relay.
    pub sessions: usize,
    /// Open sockets per session.
    pub sockets_per_session: usize,
    /// Datagrams a session may send per second (retries and heartbeats included), averaged
    /// over a one-second burst.
    pub sends_per_sec: u32,
    /// Largest datagram a session may send, in bytes: UDP's own 65,507 unless the operator set
    /// less. A longer one is handed to the kernel, which refuses it (`client_send_failed`).
    pub datagram_bytes: usize,
    /// Datagram bytes a session may send per second (retries, heartbeats and crowds included),
    /// averaged over a one-second burst.
    pub bytes_per_sec: u64,
    /// Members of one crowd at most.
    pub crowd_clients: u32,
    /// Shortest heartbeat interval, in milliseconds.
    pub heartbeat_min_ms: u64,
    /// Requests with retries or IDs waiting for an answer, per socket.
    pub pending_requests: usize,
    /// Chat clients at once: the largest fan-out of one chat message.
    pub chat_clients: usize,
    /// Payload bytes shown in an event before it is marked `truncated`.
    pub preview_bytes: usize,
}

/// What kind of error a command met.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a JSON object.
    BadJson,
    /// The `op` is missing or not one the relay knows.
    UnknownOp,
    /// The command is well-formed JSON but a field is missing or wrong.
    BadCommand,
    /// No socket of that name is open in this session.
    UnknownSocket,
    /// A socket of that name is already open in this session.
    SocketExists,
    /// The target is neither one of the relay's servers nor allowed with `--allow-target`.
    TargetNotAllowed,
    /// A limit from `hello.limits` was reached.
    Limit,
    /// The relay could not do it: a socket could not be opened, or a send failed.
    Io,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hello_golden() {
        let hello = ServerMsg::Hello(Hello {
            version: VERSION,
            session: "s1".into(),
            t_us: Some(1_500),
            servers: BTreeMap::from([(ServerName::Echo, "127.0.0.1:10004".parse().expect("addr"))]),
            settings: BTreeMap::from([(
                ServerName::Lossy,
                ServerSettings { drop: Some(0.5), seed: Some(42), ..ServerSettings::default() },
            )]),
            links: BTreeMap::from([(ServerName::Echo, Links::default())]),
            join: Vec::new(),
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
        });
        assert_eq!(
            serde_json::to_value(&hello).expect("serialize"),
            json!({"type":"hello","version":1,"session":"s1","t_us":1500,"servers":{"echo":"127.0.0.1:10004"},
                   "settings":{"lossy":{"drop":0.5,"seed":42}},
                   "links":{"echo":{"in":{"loss":0.0,"duplicate":0.0,"reorder":0.0,"delay_ms":0,"jitter_ms":0},
                                    "out":{"loss":0.0,"duplicate":0.0,"reorder":0.0,"delay_ms":0,"jitter_ms":0}}},
                   "limits":{"sessions":64,"sockets_per_session":16,"sends_per_sec":200,
                             "datagram_bytes":65507,"bytes_per_sec":1048576,"crowd_clients":100,
                             "heartbeat_min_ms":100,"pending_requests":32,
                             "chat_clients":10000,"preview_bytes":256}})
        );
    }

    #[test]
    fn event_error_lagged_golden() {
        let event = ServerMsg::Event(Event {
            seq: 3,
            t_us: 99,
            kind: crate::EventKind::ClientRetry {
                session: "s1".into(),
                socket: "a".into(),
                attempt: 2,
                delay_ms: 100,
                next_wait_ms: 200,
            },
        });
        let json = json!({"type":"event","seq":3,"t_us":99,"kind":"client_retry","session":"s1",
                          "socket":"a","attempt":2,"delay_ms":100,"next_wait_ms":200});
        assert_eq!(serde_json::to_value(&event).expect("serialize"), json);
        assert_eq!(serde_json::from_value::<ServerMsg>(json).expect("deserialize"), event);

        let error = ServerMsg::Error {
            code: ErrorCode::UnknownSocket,
            message: "no socket named \"z\"".into(),
            op: Some("send".into()),
            socket: Some("z".into()),
        };
        assert_eq!(
            serde_json::to_value(&error).expect("serialize"),
            json!({"type":"error","code":"unknown_socket","message":"no socket named \"z\"",
                   "op":"send","socket":"z"})
        );
        assert_eq!(
            serde_json::to_value(ServerMsg::Lagged { missed: 5 }).expect("serialize"),
            json!({"type":"lagged","missed":5})
        );
        let batch = json!({"type":"batch","messages":[
            {"type":"lagged","missed":5},
            {"type":"event","seq":3,"t_us":99,"kind":"client_retry","session":"s1","socket":"a",
             "attempt":2,"delay_ms":100,"next_wait_ms":200}]});
        let ServerMsg::Batch { messages } = serde_json::from_value(batch).expect("deserialize") else {
            panic!("not a batch")
        };
        assert_eq!(messages, [ServerMsg::Lagged { missed: 5 }, event]);
    }
}
