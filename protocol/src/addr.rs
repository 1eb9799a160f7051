//! Socket addresses in JSON: strings like `127.0.0.1:40522` or `[::1]:40522`.
//!
//! The same text as serde's own impl, which formats through `core::fmt`. Events carry two
//! addresses each, and formatting them that way was half the cost of serializing an event, so
//! IPv4 addresses (nearly all of them) are written digit by digit here. Use on a field with
//! `#[serde(with = "crate::addr")]`.

use std::net::{SocketAddr, SocketAddrV4};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<S: Serializer>(addr: &SocketAddr, serializer: S) -> Result<S::Ok, S::Error> {
    if !serializer.is_human_readable() {
        // Binary formats have a shape of their own for addresses: keep serde's.
        return addr.serialize(serializer);
    }
    match addr {
        SocketAddr::V4(v4) => {
            let mut buf = Buf::default();
            write_v4(&mut buf, v4);
            serializer.serialize_str(buf.as_str())
        }
        SocketAddr::V6(_) => serializer.collect_str(addr),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    SocketAddr::deserialize(deserializer)
}

/// Room for the longest IPv4 socket address, `255.255.255.255:65535`.
#[derive(Default)]
struct Buf {
    bytes: [u8; 21],
    len: usize,
}

impl Buf {
    fn push(&mut self, byte: u8) {
        if let Some(slot) = self.bytes.get_mut(self.len) {
            *slot = byte;
            self.len += 1;
        }
    }

    /// `n` in decimal, without leading zeros.
    fn number(&mut self, n: u16) {
        let mut digits = [0u8; 5];
        let (mut n, mut count) = (n, 0);
        loop {
            digits[count] = b'0' + (n % 10) as u8;
            n /= 10;
            count += 1;
            if n == 0 {
                break;
            }
        }
        for &digit in digits[..count].iter().rev() {
            self.push(digit);
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits, dots and a colon were pushed.
        std::str::from_utf8(&self.bytes[..self.len]).unwrap_or_default()
    }
}

fn write_v4(buf: &mut Buf, addr: &SocketAddrV4) {
    for (i, octet) in addr.ip().octets().into_iter().enumerate() {
        if i > 0 {
            buf.push(b'.');
        }
        buf.number(u16::from(octet));
    }
    buf.push(b':');
    buf.number(addr.port());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Holder(#[serde(with = "crate::addr")] SocketAddr);

    #[test]
    fn writes_what_display_writes_and_reads_it_back() {
        for text in [
            "127.0.0.1:10004",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "10.0.20.3:9",
            "[::1]:40522",
            "[fe80::1]:7",
        ] {
            let addr: SocketAddr = text.parse().expect("test address");
            let json = serde_json::to_string(&Holder(addr)).expect("serialize");
            assert_eq!(json, format!("\"{addr}\""));
            assert_eq!(serde_json::from_str::<Holder>(&json).expect("deserialize"), Holder(addr));
        }
    }

    #[test]
    fn every_octet_and_port_width_is_written_as_display_writes_it() {
        for octet in 0..=255u8 {
            for port in [0, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535] {
                for position in 0..4 {
                    let mut octets = [127, 0, 0, 1];
                    octets[position] = octet;
                    let addr = SocketAddr::from((octets, port));
                    let json = serde_json::to_string(&Holder(addr)).expect("serialize");
                    assert_eq!(json, format!("\"{addr}\""));
                }
            }
        }
    }
}
