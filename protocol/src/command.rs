//! Commands: what a browser (or any WebSocket client) asks the relay to do.
//!
//! Each is one JSON text frame, keyed by `op`. Commands are imperative; what they cause comes
//! back as events. `docs/protocol.md` describes each one with examples.

use serde::{Deserialize, Serialize};

use crate::{Dir, Kind, ServerName};

/// One command frame.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Command {
    /// Opens a UDP socket owned by the relay, on loopback with an OS-chosen port, aimed at one
    /// of the relay's servers (`server`) or at an address the operator allowed (`target`).
    Open {
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<ServerName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// A connected socket (the default) hears ICMP port unreachable as ECONNREFUSED; an
        /// unconnected one uses `sendto` and never learns of it.
        #[serde(default = "yes")]
        connect: bool,
        /// The most one read takes, 1 to 65,535 bytes, like the buffer size of Python's
        /// `recvfrom(N)`: a longer datagram is cut to it and the rest is lost. By default the
        /// whole datagram is read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recv_buffer: Option<usize>,
    },
    /// Sends one datagram: `text` as UTF-8, or `hex` for arbitrary bytes.
    Send {
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
        /// Retry with exponential backoff until answered or given up.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry: Option<RetrySpec>,
        /// Put `#ID ` in front of each attempt and match replies by it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        request_id: bool,
    },
    /// Sends `^hb^` on the socket every `every_ms`; 0 stops.
    Heartbeat { socket: String, every_ms: u64 },
    /// Closes the socket, or stops a whole crowd.
    Close { socket: String },
    /// Changes the settings of one direction of a server's link; the others are kept. Every
    /// session hears of it as `link_configured`. `mtu` 0 turns fragmenting off.
    Link {
        server: ServerName,
        dir: Dir,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        loss: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duplicate: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reorder: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mtu: Option<u16>,
        /// `own`: for this session's sockets only, a sandbox the rest of the class never sees;
        /// `all` (the default): for everyone.
        #[serde(default = "Scope::all", skip_serializing_if = "Scope::is_all")]
        scope: Scope,
    },
    /// Aims a fault at the next datagrams of one direction of a server's link: exactly one of
    /// `drop_next`, `duplicate_next` (counts) or `hold_next_ms`.
    Fault {
        server: ServerName,
        dir: Dir,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drop_next: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        duplicate_next: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hold_next_ms: Option<u64>,
        /// `own`: for this session's sockets only, a sandbox the rest of the class never sees;
        /// `all` (the default): for everyone.
        #[serde(default = "Scope::all", skip_serializing_if = "Scope::is_all")]
        scope: Scope,
    },
    /// Runs `clients` sockets at once, each on its own port and aimed at the same server or
    /// target, each sending the payload every `every_ms` (starting at a random moment within
    /// the first interval, so that members interleave as independent clients would). With
    /// `heartbeat`, each also sends `^hb^` that often (`true`: every 5 s, the tutorial's
    /// client), so the members stay registered on the chat server. Its events are those of any
    /// socket, with `member` saying which one; `close` stops them all.
    Crowd {
        socket: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        server: Option<ServerName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        clients: u32,
        /// 0: each member sends once, at a random moment within the first second.
        every_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hex: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        heartbeat: Option<HeartbeatSpec>,
    },
    /// `all`: also receive every event of the relay (the projector view). `own`: only this
    /// session's sockets and what they cause, the default. With `batch`, events that are ready
    /// together arrive in one `batch` message instead of one frame each.
    Subscribe {
        scope: Scope,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        batch: bool,
        /// Only events of these kinds, e.g. `["client_recv"]` for a script that wants just the
        /// replies; every kind when absent. Errors, `lagged` and `bye` always come.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kinds: Option<Vec<Kind>>,
        /// With `all`: first the relay's recent past (up to the last 5,000 recorded events,
        /// in `seq` order), then live events, with none twice. A projector opened late still
        /// shows what happened before it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        history: bool,
    },
    /// Changes a server's live settings; each change is announced as a `server_configured`
    /// event.
    Configure {
        server: ServerName,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        drop: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        delay_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter_ms: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout_ms: Option<u64>,
        /// `own`: for this session's sockets only, a sandbox the rest of the class never sees;
        /// `all` (the default): for everyone.
        #[serde(default = "Scope::all", skip_serializing_if = "Scope::is_all")]
        scope: Scope,
    },
    /// Undoes every `configure`, `link` and `fault` this session made with `"scope":"own"`:
    /// its sockets' datagrams meet the servers and links everyone meets again.
    Reset {},
}

fn yes() -> bool {
    true
}

impl Command {
    /// The `op` name, for error messages.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Send { .. } => "send",
            Self::Heartbeat { .. } => "heartbeat",
            Self::Close { .. } => "close",
            Self::Subscribe { .. } => "subscribe",
            Self::Configure { .. } => "configure",
            Self::Crowd { .. } => "crowd",
            Self::Link { .. } => "link",
            Self::Fault { .. } => "fault",
            Self::Reset {} => "reset",
        }
    }

    /// The socket the command names, if any.
    pub fn socket(&self) -> Option<&str> {
        match self {
            Self::Open { socket, .. }
            | Self::Send { socket, .. }
            | Self::Heartbeat { socket, .. }
            | Self::Close { socket }
            | Self::Crowd { socket, .. } => Some(socket),
            Self::Subscribe { .. }
            | Self::Configure { .. }
            | Self::Link { .. }
            | Self::Fault { .. }
            | Self::Reset {} => None,
        }
    }
}

/// Which events a session receives (`subscribe`), or whose datagrams a change applies to
/// (`configure`, `link`, `fault`, and the events they cause).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// This session's sockets (and the server events they cause).
    Own,
    /// Everything, everyone's.
    All,
}

impl Scope {
    /// A change's scope when none is given.
    pub fn all() -> Self {
        Self::All
    }

    pub fn is_all(&self) -> bool {
        *self == Self::All
    }
}

/// A crowd's `"heartbeat": true` (every 5 s) or `"heartbeat": 2000` (milliseconds).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(untagged)]
pub enum HeartbeatSpec {
    Enabled(bool),
    EveryMs(u64),
}

impl HeartbeatSpec {
    /// The tutorial's chat client beats every 5 s, half the server's 10 s timeout.
    pub const DEFAULT_MS: u64 = 5_000;

    /// The interval in milliseconds, or `None` for no heartbeats.
    pub fn every_ms(self) -> Option<u64> {
        match self {
            Self::Enabled(true) => Some(Self::DEFAULT_MS),
            Self::Enabled(false) | Self::EveryMs(0) => None,
            Self::EveryMs(ms) => Some(ms),
        }
    }
}

/// `"retry": true`, `"retry": false`, or `"retry": {…}` with any of the parameters by name.
/// Anything else, an array of parameters by position included, is refused.
#[derive(Serialize, Clone, Copy, Debug, PartialEq)]
#[serde(untagged)]
pub enum RetrySpec {
    Enabled(bool),
    With(RetryParams),
}

impl<'de> Deserialize<'de> for RetrySpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> serde::de::Visitor<'de> for Spec {
            type Value = RetrySpec;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or an object such as {\"initial_ms\":100,\"factor\":2.0,\"give_up_ms\":2000}")
            }

            fn visit_bool<E: serde::de::Error>(self, enabled: bool) -> Result<RetrySpec, E> {
                Ok(RetrySpec::Enabled(enabled))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RetrySpec, A::Error> {
                RetryParams::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RetrySpec::With)
            }
        }
        deserializer.deserialize_any(Spec)
    }
}

impl RetrySpec {
    /// The parameters to retry with, or `None` for no retries.
    pub fn params(self) -> Option<RetryParams> {
        match self {
            Self::Enabled(true) => Some(RetryParams::default()),
            Self::Enabled(false) => None,
            Self::With(p) => Some(p),
        }
    }
}

/// The tutorial's backoff: wait `initial_ms`, multiply the wait by `factor` after each silent
/// attempt, and give up when the next wait would pass `give_up_ms`. The defaults (100 ms, ×2,
/// 2 s) wait 100, 200, 400, 800 and 1600 ms: five attempts.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct RetryParams {
    pub initial_ms: u64,
    pub factor: f64,
    pub give_up_ms: u64,
}

impl Default for RetryParams {
    fn default() -> Self {
        Self { initial_ms: 100, factor: 2.0, give_up_ms: 2_000 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Command {
        serde_json::from_value(v).expect("valid command")
    }

    #[test]
    fn open_defaults_to_connected() {
        assert_eq!(
            parse(json!({"op":"open","socket":"a","server":"echo"})),
            Command::Open {
                socket: "a".into(),
                server: Some(ServerName::Echo),
                target: None,
                connect: true,
                recv_buffer: None
            }
        );
        assert_eq!(
            parse(json!({"op":"open","socket":"t","target":"127.0.0.1:9000","connect":false})),
            Command::Open {
                socket: "t".into(),
                server: None,
                target: Some("127.0.0.1:9000".into()),
                connect: false,
                recv_buffer: None
            }
        );
    }

    #[test]
    fn send_with_retry_forms() {
        let full = parse(json!({"op":"send","socket":"a","text":"hi",
            "retry":{"initial_ms":100,"factor":2.0,"give_up_ms":2000},"request_id":true}));
        let Command::Send { retry: Some(spec), request_id: true, .. } = full else {
            panic!("unexpected {full:?}")
        };
        assert_eq!(spec.params(), Some(RetryParams::default()));

        let short = parse(json!({"op":"send","socket":"a","text":"hi","retry":true}));
        let Command::Send { retry: Some(spec), request_id: false, .. } = short else {
            panic!("unexpected {short:?}")
        };
        assert_eq!(spec.params(), Some(RetryParams::default()));

        let partial = parse(json!({"op":"send","socket":"a","hex":"00ff","retry":{"initial_ms":50}}));
        let Command::Send { retry: Some(spec), hex: Some(hex), .. } = partial else {
            panic!("unexpected {partial:?}")
        };
        assert_eq!(hex, "00ff");
        assert_eq!(spec.params(), Some(RetryParams { initial_ms: 50, ..RetryParams::default() }));
    }

    #[test]
    fn retry_is_a_flag_or_named_parameters_never_a_list() {
        let list = json!({"op":"send","socket":"a","text":"x","retry":[100, 2.0, 2000]});
        let error = serde_json::from_value::<Command>(list).expect_err("by position").to_string();
        assert!(error.contains("initial_ms"), "{error}");
        assert!(
            serde_json::from_value::<Command>(json!({"op":"send","socket":"a","text":"x","retry":1}))
                .is_err()
        );
        let off = parse(json!({"op":"send","socket":"a","text":"x","retry":false}));
        assert!(matches!(off, Command::Send { retry: Some(RetrySpec::Enabled(false)), .. }));
    }

    #[test]
    fn every_op_round_trips() {
        for v in [
            json!({"op":"heartbeat","socket":"c","every_ms":5000}),
            json!({"op":"close","socket":"a"}),
            json!({"op":"subscribe","scope":"all"}),
            json!({"op":"subscribe","scope":"own","batch":true}),
            json!({"op":"subscribe","scope":"own","kinds":["client_recv","client_giveup"]}),
            json!({"op":"subscribe","scope":"all","batch":true,"history":true}),
            json!({"op":"configure","server":"lossy","drop":0.3,"delay_ms":150,"jitter_ms":100}),
            json!({"op":"configure","server":"chat","timeout_ms":3000}),
            json!({"op":"open","socket":"n","server":"nobody","connect":false,"recv_buffer":1024}),
            json!({"op":"crowd","socket":"k","server":"upper","clients":100,"every_ms":1000,"text":"hi"}),
            json!({"op":"crowd","socket":"k","server":"chat","clients":3,"every_ms":0,"text":"hi","heartbeat":true}),
            json!({"op":"crowd","socket":"k","server":"chat","clients":3,"every_ms":0,"hex":"00","heartbeat":500}),
            json!({"op":"link","server":"echo","dir":"out","loss":0.3,"delay_ms":100,"jitter_ms":50}),
            json!({"op":"link","server":"upper","dir":"in","mtu":1500}),
            json!({"op":"fault","server":"echo","dir":"in","drop_next":2}),
            json!({"op":"configure","server":"lossy","drop":1.0,"scope":"own"}),
            json!({"op":"link","server":"echo","dir":"in","reorder":1.0,"scope":"own"}),
            json!({"op":"fault","server":"lossy","dir":"out","duplicate_next":1,"scope":"own"}),
            json!({"op":"reset"}),
        ] {
            let command = parse(v.clone());
            assert_eq!(serde_json::to_value(&command).expect("serialize"), v);
        }
    }

    #[test]
    fn unknown_ops_and_fields_are_rejected() {
        assert!(serde_json::from_value::<Command>(json!({"op":"fly","socket":"a"})).is_err());
        assert!(serde_json::from_value::<Command>(json!({"op":"close"})).is_err());
        assert!(serde_json::from_value::<Command>(json!({"op":"close","socket":"a","sockt":1})).is_err());
        assert!(serde_json::from_value::<Command>(json!({"op":"reset","socket":"a"})).is_err());
        let everyone = json!({"op":"link","server":"echo","dir":"in","loss":0.1,"scope":"everyone"});
        assert!(serde_json::from_value::<Command>(everyone).is_err(), "own or all");
        let typo = json!({"op":"subscribe","scope":"own","kinds":["client_reply"]});
        let error = serde_json::from_value::<Command>(typo).expect_err("unknown kind").to_string();
        assert!(error.contains("client_reply") && error.contains("client_recv"), "{error}");
    }
}
