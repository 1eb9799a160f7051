//! The wire: the impaired link in front of each server, one per direction.
//!
//! `in` carries datagrams on their way to a server, `out` the server's datagrams on their way
//! to whoever they are for. Every setting is off by default. The same shapes serve the
//! WebSocket (`link`, `fault`), the HTTP API (`/api/links`) and `hello.links`.

use serde::{Deserialize, Serialize};

/// Which way a datagram crosses a server's link.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// On its way to the server.
    In,
    /// On its way from the server.
    Out,
}

impl Dir {
    pub const BOTH: [Dir; 2] = [Dir::In, Dir::Out];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "in",
            Self::Out => "out",
        }
    }
}

impl std::fmt::Display for Dir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Dir {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "in" => Ok(Self::In),
            "out" => Ok(Self::Out),
            _ => Err(format!("unknown direction {s:?}: expected in or out")),
        }
    }
}

/// One direction's settings. All off by default: a perfect link.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSettings {
    /// Probability, 0 to 1, that a datagram (or, with `mtu`, each of its fragments) is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back and delivered after the next one.
    pub reorder: f64,
    /// Every datagram waits this long...
    pub delay_ms: u64,
    /// ...plus a uniform draw of up to this much, so datagrams can overtake each other.
    pub jitter_ms: u64,
    /// The link carries datagrams as IP fragments of at most this many bytes (a model: loopback's
    /// MTU is 65,536). `None`: whole datagrams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

impl LinkSettings {
    /// Whether the link does anything at all.
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

/// Both directions of one server's link.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
pub struct Links {
    #[serde(rename = "in")]
    pub inbound: LinkSettings,
    #[serde(rename = "out")]
    pub outbound: LinkSettings,
}

impl Links {
    pub fn get(&self, dir: Dir) -> &LinkSettings {
        match dir {
            Dir::In => &self.inbound,
            Dir::Out => &self.outbound,
        }
    }

    pub fn get_mut(&mut self, dir: Dir) -> &mut LinkSettings {
        match dir {
            Dir::In => &mut self.inbound,
            Dir::Out => &mut self.outbound,
        }
    }
}

/// Settings to change; the others are kept. `mtu` 0 turns fragmenting off.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LinkPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reorder: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delay_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u16>,
}

/// A fault aimed at the next datagrams of one direction.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Default)]
#[serde(default, deny_unknown_fields)]
pub struct LinkFault {
    /// Drop the next N datagrams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drop_next: Option<u32>,
    /// Deliver each of the next N datagrams twice.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_next: Option<u32>,
    /// Hold the next datagram this many milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hold_next_ms: Option<u64>,
}

/// Why the link lost a datagram.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkDropReason {
    /// `loss`: the network lost it.
    Loss,
    /// A `drop_next` fault.
    Fault,
    /// One of its IP fragments was lost (`mtu` with `loss`), so the whole datagram was.
    Fragment,
    /// The link already held as many datagrams (or bytes) as it may: a queue overflowing.
    Full,
}

/// Why the link held a datagram back.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    /// `delay` and `jitter`.
    Delay,
    /// `reorder`: until the next datagram has gone by.
    Reorder,
    /// A `hold_next_ms` fault.
    Fault,
}
