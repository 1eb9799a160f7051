//! The echo server: every datagram goes straight back to its sender, unchanged.
//!
//! This is the "hello world" of UDP (the Twisted tutorial's echo on port 10004). The empty
//! datagram comes back empty, and a 65,507-byte datagram comes back whole: UDP keeps message
//! boundaries, so there is no framing to do.

use std::net::SocketAddr;
use std::time::Instant;

use protocol::ServerName;

use super::{Cx, DatagramHandler};

#[derive(Debug, Default)]
pub struct Echo;

impl DatagramHandler for Echo {
    type Command = std::convert::Infallible;

    fn server(&self) -> Option<ServerName> {
        Some(ServerName::Echo)
    }

    fn sandbox(&self, _salt: u64) -> Option<Self> {
        Some(Self)
    }

    fn on_datagram(&mut self, cx: &mut Cx, _now: Instant, from: SocketAddr, payload: &[u8]) {
        cx.send(from, payload);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_every_datagram_unchanged_including_empty_and_binary() {
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let mut cx = Cx::new(Some(ServerName::Echo), "127.0.0.1:10004".parse().expect("addr"));
        let big = vec![0xa5; super::super::MAX_DATAGRAM];
        for payload in [&b""[..], b"hello", &[0, 255, 10][..], &big] {
            Echo.on_datagram(&mut cx, Instant::now(), peer, payload);
            assert_eq!(cx.take_sent(), vec![(peer, payload.to_vec())]);
        }
    }
}
