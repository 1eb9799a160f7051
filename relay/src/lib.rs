//! UDP Playground's relay: real UDP servers, and a web page that shows what they do.
//!
//! A tour of the crate, in the order data flows:
//!
//! - [`udp`]: the four servers. Each is a sans-I/O [`udp::DatagramHandler`] (`echo`, `upper`,
//!   `chat`, `lossy`); [`udp::drive`] is the one loop that owns a socket, a server's or a
//!   browser session's, and names every datagram it sees ([`udp::identity`]). A server's
//!   datagrams cross its seeded, impaired link ([`udp::link`]) both ways.
//! - [`bus`]: the [`bus::EventBus`] every server and socket emits into. Projectors subscribe
//!   to everything; each browser session gets a [`bus::Feed`] of its own events.
//! - [`bridge`]: `GET /ws`, where browser sessions open UDP sockets and crowds of their own
//!   (run by [`bridge::client`], the tutorial's retrying client) and watch the events; guarded
//!   by `Host` and `Origin` checks and per-session limits.
//! - [`history`]: the recent past, recorded by default: events and datagrams, bounded.
//! - [`capture`]: the history as Wireshark sees it (pcapng) and as JSON lines.
//! - [`metrics`]: `/metrics`, counted from the event stream.
//! - [`request_id`]: the `#n-a ` request-ID format the lossy server and the client share.
//! - [`http`]: the page (embedded in the binary), `/healthz`, `/api/servers`, and the bridge.
//! - [`api`]: `/api/links`, the HTTP API for each server's link (the wire).
//! - [`serve`]: the HTTP accept loop, with a header read timeout and a cap per client address.
//! - [`interfaces`]: this machine's addresses, which a classroom's browsers use.
//! - [`export`]: `relay export-site DIR`, the browser demo recorded from real traffic.
//! - [`config`]: what `main.rs` parses from the command line.
//! - [`fuzz`]: a fuzzer for every parser and handler of untrusted input.
//! - [`quiet`]: a future polled again only once it has woken, for the loops that wait on many
//!   things at once (a socket's driver, a session).
//! - [`relay`]: binding it all and serving until shutdown: [`Relay`], [`run`].

pub mod api;
pub mod bridge;
pub mod bus;
pub mod capture;
pub mod config;
pub mod export;
pub mod fuzz;
pub mod history;
pub mod http;
pub mod interfaces;
pub mod json;
pub mod metrics;
pub mod quiet;
pub mod relay;
pub mod request_id;
pub mod serve;
pub mod udp;

pub use crate::config::Config;
pub use crate::relay::{Relay, RelayHandle, StartError, run};
