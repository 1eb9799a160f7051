//! The relay's datagrams as Wireshark sees them: IP and UDP headers built from the real
//! addresses and ports, with valid checksums, in a pcapng file with a comment on every
//! datagram that was dropped, duplicated, delayed, cut, or reached nobody.
//!
//! The same headers serve `GET /api/capture.pcapng` and `GET /api/datagrams/{dg}`, which the
//! page shows field by field: the 8-byte UDP header students are taught, on a datagram they
//! just sent.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use pcap_file::DataLink;
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption};
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use protocol::{Dg, Dir, DropReason, EventKind, HoldReason, LinkDropReason};
use serde::Serialize;

use crate::history::{History, Seen};

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
const UDP_HEADER: usize = 8;

/// A datagram's IP and UDP headers, field by field, as Wireshark shows them.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Headers {
    pub dg: Dg,
    pub ip_version: u8,
    /// IPv4: the header's length; IPv6: always 40.
    pub ip_header_len: usize,
    /// IPv4 total length, or IPv6 payload length.
    pub ip_length: usize,
    pub ttl: u8,
    pub protocol: u8,
    /// IPv4 header checksum (IPv6 has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_checksum: Option<String>,
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    /// The UDP length: 8 bytes of header plus the payload.
    pub udp_length: usize,
    pub udp_checksum: String,
    /// The IP and UDP headers' bytes, in hex: the UDP header is the last 16 digits.
    pub header_hex: String,
    /// The payload's first 256 bytes, in hex.
    pub payload_hex: String,
    pub payload_len: usize,
}

/// Ones' complement sum of 16-bit words, as the Internet checksum adds them.
fn sum16(mut sum: u32, bytes: &[u8]) -> u32 {
    let (pairs, rest) = bytes.as_chunks::<2>();
    for pair in pairs {
        sum += u32::from(u16::from_be_bytes(*pair));
    }
    if let [last] = rest {
        sum += u32::from(*last) << 8;
    }
    sum
}

fn fold(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An address as a header carries it. An unspecified one (a server bound to every interface)
/// does not say which of the machine's addresses the peer used: it is written as loopback for a
/// peer on loopback, else as this machine's first address in the peer's family (`own`).
fn concrete(ip: IpAddr, peer: IpAddr, own: &[IpAddr]) -> IpAddr {
    let peer = peer.to_canonical();
    match ip.to_canonical() {
        ip if !ip.is_unspecified() => ip,
        _ if !peer.is_loopback()
            && let Some(&own) = own.iter().find(|o| o.is_ipv4() == peer.is_ipv4()) =>
        {
            own
        }
        _ if peer.is_ipv4() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => IpAddr::V6(Ipv6Addr::LOCALHOST),
    }
}

/// This machine's network addresses, for [`concrete`].
fn own_addresses() -> Vec<IpAddr> {
    crate::interfaces::addresses().into_iter().map(|(_, ip)| ip).filter(|ip| !ip.is_loopback()).collect()
}

/// The packet `seen` was on the wire: IP header, UDP header, payload. `None` when IP cannot
/// carry it (more than 65,507 bytes over IPv4: such a send fails in the kernel).
pub fn packet(seen: &Seen) -> Option<(Vec<u8>, Headers)> {
    packet_with(seen, &own_addresses())
}

fn packet_with(seen: &Seen, own: &[IpAddr]) -> Option<(Vec<u8>, Headers)> {
    let (from, to) = (seen.from, seen.to);
    let src = concrete(from.ip(), to.ip(), own);
    let dst = concrete(to.ip(), from.ip(), own);
    let payload = &seen.bytes[..];
    let udp_len = UDP_HEADER + payload.len();
    let udp_len16 = u16::try_from(udp_len).ok()?;
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&from.port().to_be_bytes());
    udp.extend_from_slice(&to.port().to_be_bytes());
    udp.extend_from_slice(&udp_len16.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let (mut header, ip_checksum, ip_version, ip_length) = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = u16::try_from(IPV4_HEADER + udp_len).ok()?;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            // The identification is the datagram's name, so the capture and the page agree.
            h.extend_from_slice(&((seen.dg & 0xffff) as u16).to_be_bytes());
            h.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let checksum = fold(sum16(0, &h));
            h[10..12].copy_from_slice(&checksum.to_be_bytes());
            let pseudo = sum16(sum16(sum16(0, &s.octets()), &d.octets()), &[0, 17]) + u32::from(udp_len16);
            let udp_checksum = match fold(sum16(pseudo, &udp)) {
                0 => 0xffff,
                c => c,
            };
            udp[6..8].copy_from_slice(&udp_checksum.to_be_bytes());
            (h, Some(format!("0x{checksum:04x}")), 4, usize::from(total))
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&udp_len16.to_be_bytes());
            h.extend_from_slice(&[17, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            let pseudo =
                sum16(sum16(sum16(0, &s.octets()), &d.octets()), &(udp_len as u32).to_be_bytes()) + 17;
            let udp_checksum = match fold(sum16(pseudo, &udp)) {
                0 => 0xffff,
                c => c,
            };
            udp[6..8].copy_from_slice(&udp_checksum.to_be_bytes());
            (h, None, 6, udp_len)
        }
        _ => return None,
    };
    let udp_checksum = format!("0x{:02x}{:02x}", udp[6], udp[7]);
    header.extend_from_slice(&udp[..UDP_HEADER]);
    let headers = Headers {
        dg: seen.dg,
        ip_version,
        ip_header_len: if ip_version == 4 { IPV4_HEADER } else { IPV6_HEADER },
        ip_length,
        ttl: 64,
        protocol: 17,
        ip_checksum,
        src,
        dst,
        src_port: from.port(),
        dst_port: to.port(),
        udp_length: udp_len,
        udp_checksum,
        header_hex: protocol::to_hex(&header),
        payload_hex: protocol::to_hex(&payload[..payload.len().min(protocol::PREVIEW_BYTES)]),
        payload_len: payload.len(),
    };
    header.extend_from_slice(payload);
    Some((header, headers))
}

fn dir_words(dir: Dir) -> &'static str {
    match dir {
        Dir::In => "on the way in",
        Dir::Out => "on the way out",
    }
}

/// What happened to each datagram, in plain words that name it, and the copies links made
/// (original, copy).
type Notes = (HashMap<Dg, Vec<String>>, Vec<(Dg, Dg)>);

/// The [`Notes`] the events tell.
fn comments(events: &[std::sync::Arc<crate::bus::Published>]) -> Notes {
    let mut notes: HashMap<Dg, Vec<String>> = HashMap::new();
    let mut copies = Vec::new();
    let mut note = |dg: Dg, text: String| notes.entry(dg).or_default().push(format!("{text} (dg {dg})"));
    for event in events {
        match &event.kind {
            EventKind::ServerDrop { dg, reason: DropReason::Loss, .. } => {
                note(*dg, "dropped by the lossy server".into())
            }
            EventKind::ServerDrop { dg, reason: DropReason::Shed, .. } => {
                note(*dg, "shed by the lossy server: too many answers were waiting".into())
            }
            EventKind::ServerSend { dg, delay_ms: Some(ms), server, .. } => {
                note(*dg, format!("held {ms} ms by the {server} server before it answered"))
            }
            EventKind::LinkDrop { dg, server, dir, reason, fragment, fragments, .. } => {
                let how = match (reason, fragment, fragments) {
                    (LinkDropReason::Fragment, Some(i), Some(n)) => {
                        format!(
                            "fragment {i} of {n} was lost over the link's MTU (modelled: loopback never fragments)"
                        )
                    }
                    (LinkDropReason::Fault, ..) => "a drop_next fault".into(),
                    (LinkDropReason::Full, ..) => "it held as much as it may already".into(),
                    _ => "loss".into(),
                };
                note(*dg, format!("dropped by the {server} link {}: {how}", dir_words(*dir)))
            }
            EventKind::LinkDuplicate { dg, copy, server, dir, .. } => {
                note(
                    *dg,
                    format!("duplicated by the {server} link {}: the copy is dg {copy}", dir_words(*dir)),
                );
                note(*copy, format!("a copy of dg {dg} made by the {server} link"));
                copies.push((*dg, *copy));
            }
            EventKind::LinkRelease { dg, server, dir, held_us, .. } => {
                note(*dg, format!("delayed {} ms by the {server} link {}", held_us / 1000, dir_words(*dir)))
            }
            EventKind::LinkHold { dg, server, reason: HoldReason::Reorder, .. } => {
                note(*dg, format!("held back by the {server} link so that the next datagram passed it"))
            }
            EventKind::ClientRecv { dg, len, kept, .. } if kept < len => note(
                *dg,
                format!("cut to {kept} of {len} bytes by the receiving socket's {kept}-byte buffer"),
            ),
            EventKind::ClientVanished { dg, to, .. } => {
                note(*dg, format!("reached no socket: nothing listens at {to}"))
            }
            _ => {}
        }
    }
    (notes, copies)
}

/// A pcapng file being written: one interface for IPv4, one for IPv6, then one packet per
/// datagram, wall-clock timestamps in microseconds.
pub struct CaptureWriter<W: std::io::Write> {
    writer: PcapNgWriter<W>,
    own: Vec<IpAddr>,
}

impl<W: std::io::Write> CaptureWriter<W> {
    pub fn new(out: W) -> Result<Self, pcap_file::PcapError> {
        let mut writer = PcapNgWriter::new(out)?;
        for linktype in [DataLink::IPV4, DataLink::IPV6] {
            let name =
                if linktype == DataLink::IPV4 { "udp-playground (IPv4)" } else { "udp-playground (IPv6)" };
            writer.write_pcapng_block(InterfaceDescriptionBlock {
                linktype,
                snaplen: 0,
                options: vec![
                    InterfaceDescriptionOption::IfName(Cow::Borrowed(name)),
                    // Timestamps are written in nanoseconds.
                    InterfaceDescriptionOption::IfTsResol(9),
                ],
            })?;
        }
        Ok(Self { writer, own: own_addresses() })
    }

    /// Writes `seen`, in the order the relay saw them, each with what `notes` say of it. A copy
    /// a link made on the way in never left a socket: it is written like its original.
    pub fn write(
        &mut self,
        mut seen: Vec<Seen>,
        (notes, copies): &mut Notes,
    ) -> Result<(), pcap_file::PcapError> {
        let by_dg: HashMap<Dg, usize> = seen.iter().enumerate().map(|(i, s)| (s.dg, i)).collect();
        for &(original, copy) in copies.iter() {
            if let (Some(&i), false) = (by_dg.get(&original), by_dg.contains_key(&copy)) {
                let mut duplicate = seen[i].clone();
                duplicate.dg = copy;
                seen.push(duplicate);
            }
        }
        seen.sort_by_key(|s| (s.wall_us, s.dg));
        for datagram in &seen {
            let Some((bytes, headers)) = packet_with(datagram, &self.own) else { continue };
            let options = notes
                .remove(&datagram.dg)
                .map(|notes| vec![EnhancedPacketOption::Comment(Cow::Owned(notes.join("; ")))])
                .unwrap_or_default();
            self.writer.write_pcapng_block(EnhancedPacketBlock {
                interface_id: if headers.ip_version == 4 { 0 } else { 1 },
                timestamp: Duration::from_micros(datagram.wall_us),
                original_len: u32::try_from(bytes.len()).unwrap_or(u32::MAX),
                data: Cow::Owned(bytes),
                options,
            })?;
        }
        Ok(())
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.writer.get_mut()
    }

    pub fn into_inner(self) -> W {
        self.writer.into_inner()
    }
}

/// The whole history as a pcapng file.
pub fn pcapng(history: &History) -> Result<Vec<u8>, pcap_file::PcapError> {
    let mut notes = comments(&history.events());
    let mut writer = CaptureWriter::new(Vec::new())?;
    writer.write(history.datagrams(), &mut notes)?;
    Ok(writer.into_inner())
}

/// How often `--capture` writes what the relay has seen.
const CAPTURE_EVERY: Duration = Duration::from_millis(250);

/// `--capture FILE`: writes every datagram the history records into `out`, as
/// `GET /api/capture.pcapng` would, continuously, until `stop` is cancelled; then writes the
/// rest and flushes. A datagram is written a quarter of a second after it was recorded, once
/// what became of it (its comment) is known. Runs on a thread of its own, off the servers'
/// runtime; the history is read a slice at a time, so the servers never wait for it.
pub fn write_continuously(
    out: std::fs::File,
    path: std::path::PathBuf,
    history: std::sync::Arc<History>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), pcap_file::PcapError> {
    let mut writer = CaptureWriter::new(std::io::BufWriter::new(out))?;
    // From the first datagram: the file was opened before the servers started.
    let mut written = 0;
    let mut due = written;
    let mut missed = 0;
    loop {
        let stopping = stop.is_cancelled();
        let now = history.datagrams_recorded();
        // At the end everything goes; otherwise what was recorded by the last round.
        let until = if stopping { now } else { due };
        if until > written {
            let (seen, skipped) = history.datagrams_between(written..until);
            if skipped > 0 {
                missed += skipped;
                tracing::warn!(
                    path = %path.display(),
                    missed,
                    "the capture file missed datagrams the history had already let go (raise --history)"
                );
            }
            writer.write(seen, &mut comments(&history.events()))?;
            std::io::Write::flush(writer.get_mut()).map_err(pcap_file::PcapError::IoError)?;
            written = until;
        }
        if stopping {
            return Ok(());
        }
        due = now;
        std::thread::sleep(CAPTURE_EVERY);
    }
}

/// The events kept, one JSON object a line, exactly as the WebSocket sends them.
pub fn jsonl(history: &History) -> String {
    let mut out = String::new();
    for event in history.events() {
        if let Some(json) = event.json() {
            let _ = writeln!(out, "{json}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;

    fn seen(from: &str, to: &str, bytes: &[u8]) -> Seen {
        Seen {
            dg: 7,
            wall_us: 1,
            from: from.parse().expect("addr"),
            to: to.parse().expect("addr"),
            bytes: bytes.into(),
        }
    }

    #[test]
    fn headers_carry_the_real_addresses_lengths_and_valid_checksums() {
        let (bytes, h) = packet(&seen("127.0.0.1:40000", "127.0.0.1:10004", b"hello")).expect("fits");
        assert_eq!(bytes.len(), 20 + 8 + 5);
        assert_eq!((h.src_port, h.dst_port, h.udp_length, h.ip_length), (40000, 10004, 13, 33));
        // A correct checksum makes the ones' complement sum of the covered bytes all ones.
        assert_eq!(fold(sum16(0, &bytes[..20])), 0, "IPv4 header checksum");
        let pseudo = sum16(sum16(0, &bytes[12..20]), &[0, 17]) + 13;
        assert_eq!(fold(sum16(pseudo, &bytes[20..])), 0, "UDP checksum");
        assert_eq!(&h.header_hex[40..], "9c402714000d".to_owned() + &h.udp_checksum[2..]);

        let (bytes, h) = packet(&seen("[::1]:5000", "[::1]:6000", b"")).expect("fits");
        assert_eq!((bytes.len(), h.ip_version, h.udp_length), (48, 6, 8));
        let pseudo = sum16(sum16(0, &bytes[8..40]), &8u32.to_be_bytes()) + 17;
        assert_eq!(fold(sum16(pseudo, &bytes[40..])), 0, "UDP over IPv6");
    }

    #[test]
    fn a_server_bound_to_every_interface_is_written_as_the_loopback_its_peer_used() {
        let (_, h) = packet(&seen("0.0.0.0:10004", "127.0.0.1:40000", b"x")).expect("fits");
        assert_eq!(h.src, IpAddr::V4(Ipv4Addr::LOCALHOST));
    }

    #[test]
    fn more_than_ip_carries_is_left_out() {
        assert!(packet(&seen("127.0.0.1:1", "127.0.0.1:2", &vec![0; 65_508])).is_none());
        assert!(packet(&seen("127.0.0.1:1", "127.0.0.1:2", &vec![0; 65_507])).is_some());
    }

    #[test]
    fn comments_say_what_happened_in_plain_words_and_name_the_datagram() {
        let bus = crate::bus::EventBus::new(std::time::Instant::now());
        let mut rx = bus.subscribe();
        let peer: SocketAddr = "127.0.0.1:4000".parse().expect("addr");
        let server = protocol::ServerName::Lossy;
        bus.emit(
            std::time::Instant::now(),
            EventKind::ServerDrop { server, dg: 17, from: peer, to: peer, len: 3, reason: DropReason::Loss },
        );
        let events: Vec<Arc<_>> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        let (notes, _) = comments(&events);
        assert_eq!(notes[&17], ["dropped by the lossy server (dg 17)"]);
    }
}
