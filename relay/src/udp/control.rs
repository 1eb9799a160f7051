//! Live settings and commands: what the rest of the relay can tell a running handler.
//!
//! Each socket's driver reads a channel of [`Control`] messages. A server takes [`Setting`]s
//! and describes its settings; a client socket takes the commands of its handler's own type
//! ([`DatagramHandler::Command`](super::DatagramHandler::Command)). Whoever asks waits for the
//! answer on a oneshot channel, so every count and setting keeps one owner: the handler.

use std::time::Duration;

use protocol::{Dir, LinkFault, LinkPatch, LinkSettings, Links, Scope, ServerName};
use tokio::sync::oneshot;

use super::link::LinkError;

/// A message to a running handler. `C` is the handler's own command type.
#[derive(Debug)]
pub enum Control<C> {
    /// Change a server setting, and say whether it was accepted. `by` is the session that
    /// asked, for the event (none for one the relay makes itself). With [`Scope::Own`] it
    /// changes only that session's sandbox, which it makes first if there is none.
    Configure {
        setting: Setting,
        by: Option<String>,
        scope: Scope,
        reply: oneshot::Sender<Result<(), SettingError>>,
    },
    /// Report the current settings.
    Describe(oneshot::Sender<protocol::ServerSettings>),
    /// Change one direction of the server's link, or aim a fault at it; answers with the
    /// direction's settings after the change. `by` and `scope` as for `Configure`.
    Link {
        dir: Dir,
        change: LinkChange,
        by: Option<String>,
        scope: Scope,
        reply: oneshot::Sender<Result<LinkSettings, LinkError>>,
    },
    /// Dissolve session `session`'s sandbox, if it has one here: its sockets meet the server
    /// and link everyone meets again. With `announce`, each setting and link direction that
    /// changes for them is announced, as `scope: own`.
    Reset { session: String, announce: bool },
    /// Report both directions of the server's link.
    DescribeLinks(oneshot::Sender<Links>),
    /// A command of the handler's own kind.
    Command(C),
}

/// What to do to a link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LinkChange {
    Set(LinkPatch),
    Fault(LinkFault),
}

/// A live setting change for one server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Setting {
    /// Lossy: the probability of dropping a datagram, 0.0 to 1.0.
    Drop(f64),
    /// Lossy: the fixed delay before each answer.
    Delay(Duration),
    /// Lossy: the upper bound of the random extra delay.
    Jitter(Duration),
    /// Chat: how long a silent client lives.
    ChatTimeout(Duration),
}

impl Setting {
    pub fn name(self) -> &'static str {
        match self {
            Self::Drop(_) => "drop",
            Self::Delay(_) => "delay_ms",
            Self::Jitter(_) => "jitter_ms",
            Self::ChatTimeout(_) => "timeout_ms",
        }
    }

    /// Whether `server` has this setting and the value is one it takes. A server checks this
    /// before it changes anything, and so does a session before it asks for any of the
    /// changes of one command: a command changes all its settings or none.
    pub fn check(self, server: ServerName) -> Result<(), SettingError> {
        let has = match self {
            Self::Drop(_) | Self::Delay(_) | Self::Jitter(_) => server == ServerName::Lossy,
            Self::ChatTimeout(_) => server == ServerName::Chat,
        };
        match self {
            _ if !has => Err(SettingError::NotSupported { server: Some(server), setting: self.name() }),
            Self::Drop(p) if !(0.0..=1.0).contains(&p) => Err(SettingError::DropOutOfRange(p)),
            Self::ChatTimeout(t) if t.is_zero() => Err(SettingError::ZeroTimeout),
            Self::Delay(d) | Self::Jitter(d) | Self::ChatTimeout(d) if d > crate::config::MAX_DURATION => {
                Err(SettingError::TooLong { setting: self.name() })
            }
            _ => Ok(()),
        }
    }

    /// The new value as a number: a probability, or a duration in milliseconds.
    pub fn value(self) -> f64 {
        match self {
            Self::Drop(p) => p,
            Self::Delay(d) | Self::Jitter(d) | Self::ChatTimeout(d) => d.as_secs_f64() * 1000.0,
        }
    }
}

/// Why a live setting was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingError {
    #[error("the {} server has no setting {setting:?}", server.map_or("client", ServerName::as_str))]
    NotSupported { server: Option<ServerName>, setting: &'static str },
    #[error("drop probability must be between 0.0 and 1.0, got {0}")]
    DropOutOfRange(f64),
    #[error("the chat timeout must be more than zero")]
    ZeroTimeout,
    #[error("{setting} may be at most a day")]
    TooLong { setting: &'static str },
    #[error("a change for one session's sockets needs a session")]
    NoSession,
}
