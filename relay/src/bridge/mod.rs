//! The bridge: browsers drive real UDP sockets over a WebSocket and watch every event.
pub mod budget;
pub mod client;
