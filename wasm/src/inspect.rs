//! A datagram as Wireshark shows it: its IP and UDP headers field by field, over the bytes
//! they are made of, so pointing at a field lights up its bytes in the hex view.
//!
//! The relay answers `GET /api/datagrams/{dg}` with the headers its capture writes
//! (`header_hex`: the IPv4 or IPv6 header, then the 8-byte UDP header) and the payload.
//! [`dissect`] reads the fields from those bytes, as a dissector does, rather than trusting
//! the JSON's own field list: what the page shows is what is on the wire. It is pure and
//! tested natively; `app/toolbox.rs` fetches the JSON and draws the view in `#headers`.
//!
//! The JSON is read with [`json_field`], not a serde derive: the relay's answer is flat and
//! its strings are hex digits, and the page's bundle has a size budget.

/// The part of `GET /api/datagrams/{dg}` the view needs.
#[derive(Debug, Default)]
pub struct Headers {
    pub dg: u64,
    pub header_hex: String,
    pub payload_hex: String,
    pub payload_len: usize,
}

/// The raw value of `"key":` in a flat JSON object: a string without its quotes, or a
/// number. Enough for the relay's own answers, whose strings are hex digits, addresses and
/// slugs (no escapes); `None` if the key is missing.
pub fn json_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = json[at..].trim_start();
    match rest.strip_prefix('"') {
        Some(s) => s.split('"').next(),
        None => rest.split([',', '}', ']']).next().map(str::trim),
    }
}

impl Headers {
    /// Reads the relay's answer; `None` if it lacks the headers.
    pub fn parse(json: &str) -> Option<Headers> {
        let field = |key| json_field(json, key).unwrap_or_default();
        Some(Headers {
            dg: field("dg").parse().ok()?,
            header_hex: json_field(json, "header_hex")?.to_owned(),
            payload_hex: field("payload_hex").to_owned(),
            payload_len: field("payload_len").parse().unwrap_or(0),
        })
    }
}

/// One field: its layer, name, value as words, and where its bytes are.
#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub layer: &'static str,
    pub name: &'static str,
    pub value: String,
    /// The first byte, counted from the start of the IP header.
    pub start: usize,
    pub len: usize,
}

/// The fields of a datagram, the header bytes, and the payload bytes (the first of them).
#[derive(Clone, Debug, PartialEq)]
pub struct Dissection {
    pub fields: Vec<Field>,
    pub bytes: Vec<u8>,
    /// Where the payload starts in `bytes`: the IP header and the UDP header come before it.
    pub payload_at: usize,
    pub payload_len: usize,
}

/// Bytes from hex digits; `None` if they are not hex.
pub fn unhex(hex: &str) -> Option<Vec<u8>> {
    let hex = hex.as_bytes();
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16);
            Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
        })
        .collect()
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// The internet checksum's one's-complement sum (RFC 1071), folded to 16 bits.
fn sum16(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    for part in parts {
        for pair in part.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]));
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// `0x8f2e [correct]`: the stored checksum, and whether the bytes add up to it.
fn checksum_words(stored: u16, valid: Option<bool>) -> String {
    let verdict = match valid {
        Some(true) => crate::text::word("hdr-correct"),
        Some(false) => crate::text::word("hdr-incorrect"),
        None => "",
    };
    format!("0x{stored:04x}{verdict}")
}

/// An address as text: dotted for IPv4, colon-separated groups for IPv6 (uncompressed).
fn address(b: &[u8]) -> String {
    if b.len() == 4 {
        return format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]);
    }
    let groups: Vec<String> = b.chunks(2).map(|g| format!("{:x}", be16(g, 0))).collect();
    groups.join(":")
}

/// Reads the IP and UDP headers out of `headers.header_hex`. The UDP checksum is verified
/// when the whole payload came with it. `None` if the bytes are not an IPv4 or IPv6 header
/// followed by a UDP header.
pub fn dissect(headers: &Headers) -> Option<Dissection> {
    let header = unhex(&headers.header_hex)?;
    let payload = unhex(&headers.payload_hex).unwrap_or_default();
    let mut fields = Vec::new();
    let mut field =
        |layer, name, value: String, start, len| fields.push(Field { layer, name, value, start, len });
    let (layer, ip_len, mut pseudo) = match header.first()? >> 4 {
        4 => {
            let ihl = usize::from(header[0] & 0x0f) * 4;
            if ihl < 20 || header.len() < ihl + 8 {
                return None;
            }
            let l = "IPv4";
            field(l, "Version, header length", crate::text::fill("hdr-version", &[&ihl]), 0, 1);
            field(l, "Total length", be16(&header, 2).to_string(), 2, 2);
            field(l, "Identification", be16(&header, 4).to_string(), 4, 2);
            field(l, "Time to live", header[8].to_string(), 8, 1);
            field(l, "Protocol", format!("UDP ({})", header[9]), 9, 1);
            let valid = sum16(&[&header[..ihl]]) == 0xffff;
            field(l, "Header checksum", checksum_words(be16(&header, 10), Some(valid)), 10, 2);
            (l, ihl, header[12..20].to_vec())
        }
        6 if header.len() >= 48 => {
            let l = "IPv6";
            field(l, "Version", "6".into(), 0, 1);
            field(l, "Payload length", be16(&header, 4).to_string(), 4, 2);
            field(l, "Next header", format!("UDP ({})", header[6]), 6, 1);
            field(l, "Hop limit", header[7].to_string(), 7, 1);
            (l, 40, header[8..40].to_vec())
        }
        _ => return None,
    };
    let (half, at) = (pseudo.len() / 2, if layer == "IPv4" { 12 } else { 8 });
    field(layer, "Source address", address(&pseudo[..half]), at, half);
    field(layer, "Destination address", address(&pseudo[half..]), at + half, half);
    let udp = &header[ip_len..ip_len + 8];
    let length = be16(udp, 4);
    field("UDP", "Source port", be16(udp, 0).to_string(), ip_len, 2);
    field("UDP", "Destination port", be16(udp, 2).to_string(), ip_len + 2, 2);
    let data = length.saturating_sub(8);
    field("UDP", "Length", crate::text::fill("hdr-udp-length", &[&length, &data]), ip_len + 4, 2);
    // The checksum covers a pseudo-header (the addresses, the protocol, the UDP length), the
    // UDP header and the data; IPv4 allows 0 for "none".
    let stored = be16(udp, 6);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&length.to_be_bytes());
    let whole = payload.len() == headers.payload_len;
    let valid = (whole && stored != 0).then(|| sum16(&[&pseudo, udp, &payload]) == 0xffff);
    field("UDP", "Checksum", checksum_words(stored, valid), ip_len + 6, 2);
    let payload_at = header.len();
    let mut bytes = header;
    bytes.extend_from_slice(&payload);
    Some(Dissection { fields, bytes, payload_at, payload_len: headers.payload_len })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo of "hello" from 127.0.0.1:46415 to port 10004, as the relay's capture writes it
    /// (the checksums computed by hand with the RFC 1071 sum).
    fn hello() -> Headers {
        Headers {
            dg: 1,
            header_hex: "45000021000140004011 3c5d 7f000001 7f000001 b54f 2714 000d 0000"
                .replace(' ', "")
                .replace("3c5d", &format!("{:04x}", ip_checksum()))
                .replace("000d0000", &format!("000d{:04x}", udp_checksum())),
            payload_hex: "68656c6c6f".into(),
            payload_len: 5,
        }
    }

    fn ip_checksum() -> u16 {
        let h =
            unhex("450000210001400040110000 7f000001 7f000001".replace(' ', "").as_str()).unwrap_or_default();
        !sum16(&[&h])
    }

    fn udp_checksum() -> u16 {
        let pseudo = unhex("7f0000017f0000010011000d").unwrap_or_default();
        let udp = unhex("b54f2714000d0000").unwrap_or_default();
        !sum16(&[&pseudo, &udp, b"hello"])
    }

    fn value<'a>(d: &'a Dissection, name: &str) -> (&'a str, usize, usize) {
        let f = d.fields.iter().find(|f| f.name == name).expect("the field is there");
        (f.value.as_str(), f.start, f.len)
    }

    #[test]
    fn an_ipv4_udp_datagram_reads_field_by_field() {
        let d = dissect(&hello()).expect("a valid header");
        assert_eq!(value(&d, "Source port"), ("46415", 20, 2));
        assert_eq!(value(&d, "Destination port"), ("10004", 22, 2));
        assert_eq!(value(&d, "Length"), ("13 (8-byte header + 5 of data)", 24, 2));
        assert!(value(&d, "Checksum").0.ends_with("[correct]"), "{:?}", value(&d, "Checksum"));
        assert!(value(&d, "Header checksum").0.ends_with("[correct]"));
        assert_eq!(value(&d, "Source address"), ("127.0.0.1", 12, 4));
        assert_eq!(value(&d, "Total length").0, "33");
        assert_eq!(d.payload_at, 28);
        assert_eq!(&d.bytes[28..], b"hello");
    }

    #[test]
    fn a_wrong_checksum_says_so_and_a_partial_payload_is_not_judged() {
        let mut h = hello();
        let n = h.header_hex.len();
        h.header_hex.replace_range(n - 4.., "1234");
        let d = dissect(&h).expect("still a header");
        assert_eq!(value(&d, "Checksum").0, "0x1234 [incorrect]");
        h.payload_hex = "6865".into();
        let d = dissect(&h).expect("still a header");
        assert_eq!(value(&d, "Checksum").0, "0x1234");
    }

    #[test]
    fn the_relays_json_reads_without_serde() {
        let json = r#"{"dg":17,"ip_version":4,"src":"127.0.0.1","header_hex":"4500","payload_hex":"6869","payload_len":2}"#;
        let h = Headers::parse(json).expect("the headers");
        assert_eq!(
            (h.dg, h.header_hex.as_str(), h.payload_hex.as_str(), h.payload_len),
            (17, "4500", "6869", 2)
        );
        assert_eq!(json_field(json, "src"), Some("127.0.0.1"));
        assert_eq!(json_field(json, "ip_version"), Some("4"));
        assert!(Headers::parse(r#"{"error":"no such datagram"}"#).is_none());
    }

    #[test]
    fn ipv6_and_garbage() {
        let mut hex = String::from("60000000000d1140");
        hex += &"00".repeat(15);
        hex += "01";
        hex += &"00".repeat(15);
        hex += "01";
        hex += "b54f2714000d0000";
        let h = Headers { dg: 2, header_hex: hex, payload_hex: String::new(), payload_len: 5 };
        let d = dissect(&h).expect("an IPv6 header");
        assert_eq!(value(&d, "Source address"), ("0:0:0:0:0:0:0:1", 8, 16));
        assert_eq!(value(&d, "Destination port"), ("10004", 42, 2));
        let bad = Headers { dg: 3, header_hex: "zz".into(), payload_hex: String::new(), payload_len: 0 };
        assert!(dissect(&bad).is_none());
        let short = Headers { dg: 3, header_hex: "4500".into(), payload_hex: String::new(), payload_len: 0 };
        assert!(dissect(&short).is_none());
    }
}
