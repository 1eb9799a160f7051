//! UDP servers: handlers decide, one driver does the I/O.
//!
//! Each server is a [`DatagramHandler`], a small state machine with the lifecycle of Twisted's
//! `DatagramProtocol` (`startProtocol`, `datagramReceived`, `connectionRefused`,
//! `stopProtocol`). A handler never touches a socket or a clock: it is handed `now`, and it
//! writes what to send and which events to emit into a [`Cx`]. That keeps every server
//! deterministic and unit-testable with explicit time.
//!
//! - [`handler`]: the trait and [`Cx`].
//! - [`driver`]: [`drive`], the only code that owns a socket. It reads datagrams, names them,
//!   calls the handler, sends what the handler asked for, fires the handler's timer, passes on
//!   control messages, and stops on shutdown. The same driver runs the relay's servers and the
//!   client sockets that browser sessions open (`crate::bridge::client`), so both behave alike
//!   on errors and shutdown. A server's driver also keeps a sandbox for each session that
//!   changed something for its own sockets only (`"scope":"own"`): a copy of the handler
//!   ([`DatagramHandler::sandbox`]) and of its link, which that session's datagrams meet.
//! - [`control`]: live settings and commands for a running handler.
//! - [`identity`]: the `dg` every datagram is named by, from its send to its arrival.
//! - [`link`]: the impaired link in front of each server, one per direction.
//! - `sys`: the driver's sends and receives, as plain system calls on Linux.
//! - the servers: [`echo`], [`upper`], [`chat`], [`lossy`].

pub mod chat;
pub mod control;
pub mod driver;
pub mod echo;
pub mod handler;
pub mod identity;
pub mod link;
pub mod lossy;
mod sys;
pub mod upper;

pub use control::{Control, LinkChange, Setting, SettingError};
pub use driver::{drive, drive_server};
pub use handler::{Cx, DatagramHandler, Undelivered, Why};

/// The largest UDP payload over IPv4: 65,535 minus the 8-byte UDP and 20-byte IP headers.
/// Every server accepts datagrams up to this size.
pub const MAX_DATAGRAM: usize = 65_507;
