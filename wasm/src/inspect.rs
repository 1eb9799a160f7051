//! A datagram as Wireshark shows it: its IP and UDP headers field by field, over the bytes
//! they are made of, so hovering a field lights up its bytes in the hex view.
//!
//! The relay answers `GET /api/datagrams/{dg}` with the headers its capture writes
//! (`header_hex`: the IPv4 or IPv6 header, then the 8-byte UDP header) and the payload.
//! [`dissect`] reads the fields from those bytes, as a dissector does, rather than trusting
//! the JSON's own field list: what the page shows is what is on the wire. It is pure and
//! tested natively; the DOM view (`view`, wasm only) is called by `app.rs` when an arrow is
//! selected.

use serde::Deserialize;

/// The part of `GET /api/datagrams/{dg}` the view needs; the rest is the same, field by field.
#[derive(Deserialize, Debug)]
pub struct Headers {
    pub dg: u64,
    pub header_hex: String,
    #[serde(default)]
    pub payload_hex: String,
    #[serde(default)]
    pub payload_len: usize,
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
            let word = u16::from_be_bytes([pair[0], pair.get(1).copied().unwrap_or(0)]);
            sum += u32::from(word);
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

fn checksum_words(stored: u16, valid: Option<bool>) -> String {
    match valid {
        Some(true) => format!("0x{stored:04x} [correct]"),
        Some(false) => format!("0x{stored:04x} [incorrect]"),
        None => format!("0x{stored:04x}"),
    }
}

/// Reads the IP and UDP headers out of `headers.header_hex`. The UDP checksum is verified
/// when the whole payload came with it. `None` if the bytes are not an IPv4 or IPv6 header
/// followed by a UDP header.
pub fn dissect(headers: &Headers) -> Option<Dissection> {
    let header = unhex(&headers.header_hex)?;
    let payload = unhex(&headers.payload_hex).unwrap_or_default();
    let whole = payload.len() == headers.payload_len;
    let mut fields = Vec::new();
    let mut field =
        |layer, name, value: String, start, len| fields.push(Field { layer, name, value, start, len });
    let version = header.first()? >> 4;
    let (ip_len, pseudo) = match version {
        4 => {
            let ihl = usize::from(header[0] & 0x0f) * 4;
            if ihl < 20 || header.len() < ihl + 8 {
                return None;
            }
            field("IPv4", "Version", "4".into(), 0, 1);
            field("IPv4", "Header length", format!("{ihl} bytes"), 0, 1);
            field("IPv4", "Total length", be16(&header, 2).to_string(), 2, 2);
            field("IPv4", "Identification", format!("0x{0:04x} ({0})", be16(&header, 4)), 4, 2);
            let frag = be16(&header, 6);
            let flags = if frag & 0x4000 != 0 { "Don't fragment" } else { "none" };
            field("IPv4", "Flags, fragment offset", format!("{flags}, offset {}", frag & 0x1fff), 6, 2);
            field("IPv4", "Time to live", header[8].to_string(), 8, 1);
            field("IPv4", "Protocol", format!("UDP ({})", header[9]), 9, 1);
            let valid = sum16(&[&header[..ihl]]) == 0xffff;
            field("IPv4", "Header checksum", checksum_words(be16(&header, 10), Some(valid)), 10, 2);
            field("IPv4", "Source address", ip4(&header[12..16]), 12, 4);
            field("IPv4", "Destination address", ip4(&header[16..20]), 16, 4);
            let mut pseudo = header[12..20].to_vec();
            pseudo.extend_from_slice(&[0, 17]);
            (ihl, pseudo)
        }
        6 => {
            if header.len() < 48 {
                return None;
            }
            field("IPv6", "Version", "6".into(), 0, 1);
            field("IPv6", "Payload length", be16(&header, 4).to_string(), 4, 2);
            field("IPv6", "Next header", format!("UDP ({})", header[6]), 6, 1);
            field("IPv6", "Hop limit", header[7].to_string(), 7, 1);
            field("IPv6", "Source address", ip6(&header[8..24]), 8, 16);
            field("IPv6", "Destination address", ip6(&header[24..40]), 24, 16);
            let mut pseudo = header[8..40].to_vec();
            pseudo.extend_from_slice(&[0, 0, 0, 17]);
            (40, pseudo)
        }
        _ => return None,
    };
    let udp = &header[ip_len..ip_len + 8];
    let length = be16(udp, 4);
    field("UDP", "Source port", be16(udp, 0).to_string(), ip_len, 2);
    field("UDP", "Destination port", be16(udp, 2).to_string(), ip_len + 2, 2);
    let data = usize::from(length).saturating_sub(8);
    field("UDP", "Length", format!("{length} (8-byte header + {data} bytes of data)"), ip_len + 4, 2);
    let stored = be16(udp, 6);
    let valid = whole.then(|| {
        // The pseudo-header carries the UDP length too (the upper-layer length for IPv6).
        let len = length.to_be_bytes();
        let ip_part: Vec<u8> = if version == 4 {
            [&pseudo[..], &len[..]].concat()
        } else {
            [&pseudo[..32], &[0, 0], &len[..], &pseudo[32..]].concat()
        };
        stored == 0 && version == 4 || sum16(&[&ip_part, udp, &payload]) == 0xffff
    });
    field("UDP", "Checksum", checksum_words(stored, valid), ip_len + 6, 2);
    let payload_at = header.len();
    let mut bytes = header;
    bytes.extend_from_slice(&payload);
    Some(Dissection { fields, bytes, payload_at, payload_len: headers.payload_len })
}

fn ip4(b: &[u8]) -> String {
    format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3])
}

fn ip6(b: &[u8]) -> String {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(b);
    std::net::Ipv6Addr::from(octets).to_string()
}

#[cfg(target_arch = "wasm32")]
pub use view::{follow, wire};

/// The view in the page: a field table next to a hex and ASCII pane, in `#headers`.
#[cfg(target_arch = "wasm32")]
mod view {
    use std::cell::RefCell;

    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;
    use web_sys::{Document, Element, XmlHttpRequest};

    use super::{Dissection, Headers, dissect};

    /// Payload bytes shown after the headers: enough to see the data start, not 65,507 spans.
    const PAYLOAD_SHOWN: usize = 64;

    /// The view's state. One page, one view: kept in a thread local, not in `App`, so the
    /// view is its own (the page has one thread).
    #[derive(Default)]
    struct State {
        /// The datagram shown or being fetched.
        dg: Option<u64>,
        dissection: Option<Dissection>,
        /// The field clicked, which stays lit when the pointer leaves.
        pinned: Option<usize>,
        request: Option<XmlHttpRequest>,
        /// The request's and the panel's handlers: they live as long as the page.
        handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    }

    thread_local! {
        static STATE: RefCell<State> = RefCell::new(State::default());
    }

    fn log(message: &str) {
        web_sys::console::log_1(&JsValue::from_str(message));
    }

    fn el(document: &Document, parent: &Element, tag: &str, text: &str) -> Option<Element> {
        let e = document.create_element(tag).ok()?;
        if !text.is_empty() {
            e.set_text_content(Some(text));
        }
        parent.append_child(&e).ok()?;
        Some(e)
    }

    /// Hovering a field row or a byte lights the field's bytes; a click pins it.
    pub fn wire(document: &Document) {
        let Some(panel) = document.get_element_by_id("headers") else { return };
        for event in ["mouseover", "click", "mouseleave"] {
            let d = document.clone();
            let kind = event;
            let handler = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
                let field = e
                    .target()
                    .and_then(|t| t.dyn_into::<Element>().ok())
                    .and_then(|t| t.closest("[data-field]").ok().flatten())
                    .and_then(|t| t.get_attribute("data-field"))
                    .and_then(|f| f.parse::<usize>().ok());
                let lit = STATE.with(|s| {
                    let Ok(mut s) = s.try_borrow_mut() else { return None };
                    match kind {
                        "click" => {
                            s.pinned = if s.pinned == field { None } else { field };
                            s.pinned
                        }
                        "mouseleave" => s.pinned,
                        _ => field.or(s.pinned),
                    }
                });
                highlight(&d, lit);
            });
            if panel.add_event_listener_with_callback(event, handler.as_ref().unchecked_ref()).is_err() {
                log("udp-playground: cannot listen to the header view");
            }
            STATE.with(|s| {
                if let Ok(mut s) = s.try_borrow_mut() {
                    s.handlers.push(handler);
                }
            });
        }
    }

    /// Marks the rows and bytes of field `lit` (and only those) with `class="lit"`.
    fn highlight(document: &Document, lit: Option<usize>) {
        let Some(panel) = document.get_element_by_id("headers") else { return };
        let Ok(all) = panel.query_selector_all("[data-field]") else { return };
        let lit = lit.map(|i| i.to_string());
        for i in 0..all.length() {
            let Some(e) = all.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else { continue };
            let on = lit.is_some() && e.get_attribute("data-field") == lit;
            let _ = if on { e.class_list().add_1("lit") } else { e.class_list().remove_1("lit") };
        }
    }

    /// Shows the headers of datagram `dg` (the selected arrow's), fetching them when it
    /// changes; `None` hides the view. `offline`: there is no relay to ask (a replay), so
    /// the view says so instead of asking another relay about a recorded `dg`.
    pub fn follow(document: &Document, dg: Option<u64>, offline: bool) {
        let changed = STATE.with(|s| {
            let Ok(mut s) = s.try_borrow_mut() else { return false };
            if s.dg == dg {
                return false;
            }
            s.dg = dg;
            s.dissection = None;
            s.pinned = None;
            if let Some(old) = s.request.take() {
                let _ = old.abort();
            }
            true
        });
        if !changed {
            return;
        }
        let Some(panel) = document.get_element_by_id("headers") else { return };
        panel.set_text_content(None);
        let Some(dg) = dg else {
            let _ = panel.set_attribute("hidden", "");
            return;
        };
        let _ = panel.remove_attribute("hidden");
        if offline {
            let _ = el(
                document,
                &panel,
                "p",
                "The IP and UDP headers come from the relay that saw this datagram; a replay has only its events.",
            );
            let _ = panel.set_attribute("data-state", "offline");
            return;
        }
        let _ = panel.set_attribute("data-state", "loading");
        let _ = el(document, &panel, "p", &format!("Reading dg {dg}'s headers from the relay…"));
        fetch(document, dg);
    }

    fn fetch(document: &Document, dg: u64) {
        let Ok(xhr) = XmlHttpRequest::new() else { return };
        if xhr.open("GET", &format!("api/datagrams/{dg}")).is_err() {
            return;
        }
        let d = document.clone();
        let x = xhr.clone();
        let onload = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
            let status = x.status().unwrap_or(0);
            let text = x.response_text().ok().flatten().unwrap_or_default();
            let parsed = (status == 200).then(|| serde_json::from_str::<Headers>(&text).ok()).flatten();
            let dissection = parsed.filter(|h| h.dg == dg).and_then(|h| dissect(&h));
            let still = STATE.with(|s| s.try_borrow().map(|s| s.dg == Some(dg)).unwrap_or(false));
            if !still {
                return;
            }
            let message = match (&dissection, status) {
                (Some(_), _) => None,
                (None, 404) => {
                    Some(format!("dg {dg} has left the relay's history (--history): its headers are gone."))
                }
                (None, 0) => Some("The relay did not answer: no headers to show.".to_owned()),
                (None, _) => Some(format!("The relay could not give dg {dg}'s headers (HTTP {status}).")),
            };
            render(&d, dissection.as_ref(), message.as_deref());
            STATE.with(|s| {
                if let Ok(mut s) = s.try_borrow_mut() {
                    s.dissection = dissection;
                }
            });
        });
        xhr.set_onloadend(Some(onload.as_ref().unchecked_ref()));
        if xhr.send().is_err() {
            log("udp-playground: cannot ask for a datagram's headers");
        }
        STATE.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.request = Some(xhr);
                // One load handler per request; the last few are enough to keep.
                if s.handlers.len() > 8 {
                    s.handlers.remove(3);
                }
                s.handlers.push(onload);
            }
        });
    }

    fn render(document: &Document, dissection: Option<&Dissection>, message: Option<&str>) {
        let Some(panel) = document.get_element_by_id("headers") else { return };
        panel.set_text_content(None);
        let Some(dis) = dissection else {
            let _ = panel.set_attribute("data-state", "missing");
            let _ = el(document, &panel, "p", message.unwrap_or(""));
            return;
        };
        let _ = panel.set_attribute("data-state", "shown");
        let Some(tree) = el(document, &panel, "table", "") else { return };
        let _ = tree.set_attribute("class", "fields");
        let mut layer = "";
        for (i, f) in dis.fields.iter().enumerate() {
            if f.layer != layer {
                layer = f.layer;
                let title = match layer {
                    "UDP" => "User Datagram Protocol (8 bytes)",
                    "IPv6" => "Internet Protocol version 6 (40 bytes)",
                    _ => "Internet Protocol version 4",
                };
                if let Some(row) = el(document, &tree, "tr", "")
                    && let Some(th) = el(document, &row, "th", title)
                {
                    let _ = th.set_attribute("colspan", "2");
                }
            }
            let Some(row) = el(document, &tree, "tr", "") else { continue };
            let _ = row.set_attribute("data-field", &i.to_string());
            let _ = row.set_attribute("data-name", &format!("{} {}", f.layer, f.name));
            let _ = el(document, &row, "td", f.name);
            let _ = el(document, &row, "td", &f.value);
        }
        // The byte pane: offset, 16 bytes in hex, the same as ASCII, as Wireshark's.
        let Some(pane) = el(document, &panel, "div", "") else { return };
        let _ = pane.set_attribute("class", "bytes");
        let shown = dis.bytes.len().min(dis.payload_at + PAYLOAD_SHOWN);
        let field_of = |b: usize| dis.fields.iter().rposition(|f| b >= f.start && b < f.start + f.len);
        for (line, chunk) in dis.bytes[..shown].chunks(16).enumerate() {
            let Some(row) = el(document, &pane, "div", "") else { continue };
            let _ = el(document, &row, "span", &format!("{:04x}", line * 16))
                .map(|o| o.set_attribute("class", "off"));
            for ascii in [false, true] {
                let Some(group) = el(document, &row, "span", "") else { continue };
                let _ = group.set_attribute("class", if ascii { "ascii" } else { "hex" });
                for (k, b) in chunk.iter().enumerate() {
                    let at = line * 16 + k;
                    let text = match ascii {
                        false => format!("{b:02x}"),
                        true if b.is_ascii_graphic() || *b == b' ' => char::from(*b).to_string(),
                        true => ".".to_owned(),
                    };
                    let Some(span) = el(document, &group, "span", &text) else { continue };
                    match field_of(at) {
                        Some(f) => {
                            let _ = span.set_attribute("data-field", &f.to_string());
                        }
                        None if at >= dis.payload_at => {
                            let _ = span.set_attribute("class", "data");
                        }
                        None => {}
                    }
                }
            }
        }
        if dis.payload_len > shown - dis.payload_at {
            let more = dis.payload_len - (shown - dis.payload_at);
            let _ = el(document, &pane, "p", &format!("… and {more} more bytes of data"));
        }
    }
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
        assert_eq!(value(&d, "Length"), ("13 (8-byte header + 5 bytes of data)", 24, 2));
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
    fn ipv6_and_garbage() {
        let mut hex = String::from("60000000000d1140");
        hex += &"00".repeat(15);
        hex += "01";
        hex += &"00".repeat(15);
        hex += "01";
        hex += "b54f2714000d0000";
        let h = Headers { dg: 2, header_hex: hex, payload_hex: String::new(), payload_len: 5 };
        let d = dissect(&h).expect("an IPv6 header");
        assert_eq!(value(&d, "Source address"), ("::1", 8, 16));
        assert_eq!(value(&d, "Destination port"), ("10004", 42, 2));
        let bad = Headers { dg: 3, header_hex: "zz".into(), payload_hex: String::new(), payload_len: 0 };
        assert!(dissect(&bad).is_none());
        let short = Headers { dg: 3, header_hex: "4500".into(), payload_hex: String::new(), payload_len: 0 };
        assert!(dissect(&short).is_none());
    }
}
