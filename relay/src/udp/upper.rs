//! The uppercase server: every datagram comes back with its ASCII letters uppercased.
//!
//! Byte for byte what Python's `bytes.upper()` does in the tutorials' `socketserver` example on
//! port 8003: `a`..`z` become `A`..`Z`, and every other byte, including each byte of a UTF-8
//! `é`, is left alone. The reply always has the same length as the request.

use std::net::SocketAddr;
use std::time::Instant;

use protocol::ServerName;

use super::{Cx, DatagramHandler};

#[derive(Debug, Default)]
pub struct Upper;

impl DatagramHandler for Upper {
    type Command = std::convert::Infallible;

    fn server(&self) -> Option<ServerName> {
        Some(ServerName::Upper)
    }

    fn sandbox(&self, _salt: u64) -> Option<Self> {
        Some(Self)
    }

    fn on_datagram(&mut self, cx: &mut Cx, _now: Instant, from: SocketAddr, payload: &[u8]) {
        cx.send_with(from, |buf| buf.extend(payload.iter().map(u8::to_ascii_uppercase)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upper(payload: &[u8]) -> Vec<u8> {
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let mut cx = Cx::new(Some(ServerName::Upper), "127.0.0.1:8003".parse().expect("addr"));
        Upper.on_datagram(&mut cx, Instant::now(), peer, payload);
        let mut sent = cx.take_sent();
        assert_eq!(sent.len(), 1);
        let (to, bytes) = sent.remove(0);
        assert_eq!(to, peer);
        bytes
    }

    #[test]
    fn uppercases_ascii_letters_only() {
        assert_eq!(upper(b"hello, World 42!"), b"HELLO, WORLD 42!");
        assert_eq!(upper(b""), b"");
    }

    #[test]
    fn leaves_non_ascii_bytes_untouched_like_python_bytes_upper() {
        // "é" is 0xc3 0xa9 in UTF-8; Python's b"caf\xc3\xa9".upper() == b"CAF\xc3\xa9".
        assert_eq!(upper("café".as_bytes()), b"CAF\xc3\xa9");
        assert_eq!(upper(&[0xe0, b'a', 0xff]), [0xe0, b'A', 0xff]);
    }
}
