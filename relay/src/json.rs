//! An event as the `{"type":"event",…}` message the WebSocket sends, written straight into a
//! buffer.
//!
//! serde's derived code writes an event through three layers of maps (the message's `type`
//! tag, the event's flattened kind, the kind's `kind` tag and its flattened payload), looking
//! up and escaping every key as it goes: most of an event's cost on the bridge. The four kinds
//! a round trip is made of (`client_send`, `server_recv`, `server_send`, `client_recv`) are
//! written here field by field instead, every value still through `serde_json` (strings
//! escaped as it escapes them, addresses as [`protocol::addr`] writes them); every other kind
//! goes through the derived code. The text is the same, byte for byte, which the tests check
//! against the derived code.

use std::net::SocketAddr;

use protocol::{Event, EventKind, Payload};
use serde::Serialize;

/// Appends `event` to `out`, as the WebSocket's event message.
pub fn write_event(out: &mut Vec<u8>, event: &Event) -> serde_json::Result<()> {
    let start = out.len();
    let mut w = Writer { out };
    w.raw(br#"{"type":"event","seq":"#);
    w.value(&event.seq)?;
    w.raw(br#","t_us":"#);
    w.value(&event.t_us)?;
    match &event.kind {
        EventKind::ServerRecv { server, dg, from, to, len, payload } => {
            w.raw(br#","kind":"server_recv","server":"#);
            w.value(server)?;
            w.datagram(*dg, from, to, *len, payload)?;
        }
        EventKind::ServerSend { server, dg, reply_to, from, to, len, payload, delay_ms } => {
            w.raw(br#","kind":"server_send","server":"#);
            w.value(server)?;
            w.raw(br#","dg":"#);
            w.value(dg)?;
            w.field(br#","reply_to":"#, reply_to)?;
            w.addresses(from, to, *len, payload)?;
            w.field(br#","delay_ms":"#, delay_ms)?;
        }
        EventKind::ClientSend { session, socket, member, dg, from, to, len, payload, attempt, req } => {
            w.raw(br#","kind":"client_send""#);
            w.socket(session, socket, member)?;
            w.datagram(*dg, from, to, *len, payload)?;
            w.field(br#","attempt":"#, attempt)?;
            w.field(br#","req":"#, req)?;
        }
        EventKind::ClientRecv {
            session,
            socket,
            member,
            dg,
            from,
            to,
            len,
            payload,
            attempt,
            req,
            rtt_us,
            kept,
        } => {
            w.raw(br#","kind":"client_recv""#);
            w.socket(session, socket, member)?;
            w.datagram(*dg, from, to, *len, payload)?;
            w.field(br#","attempt":"#, attempt)?;
            w.field(br#","req":"#, req)?;
            w.field(br#","rtt_us":"#, rtt_us)?;
            w.raw(br#","kept":"#);
            w.value(kept)?;
        }
        _ => {
            w.out.truncate(start);
            return write_derived(w.out, event);
        }
    }
    w.raw(b"}");
    Ok(())
}

/// Appends `event` to `out` through serde's derived code: what [`write_event`] does for the kinds it
/// does not write itself, and what the tests (and `busbench`) hold it to.
pub fn write_derived(out: &mut Vec<u8>, event: &Event) -> serde_json::Result<()> {
    serde_json::to_writer(out, &Message::Event(event))
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Message<'a> {
    Event(&'a Event),
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

impl Writer<'_> {
    fn raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *self.out, value)
    }

    /// `key` and `value`, or nothing for `None` (the derived code's `skip_serializing_if`).
    fn field<T: Serialize>(&mut self, key: &[u8], value: &Option<T>) -> serde_json::Result<()> {
        if let Some(value) = value {
            self.raw(key);
            self.value(value)?;
        }
        Ok(())
    }

    fn address(&mut self, addr: &SocketAddr) -> serde_json::Result<()> {
        protocol::addr::serialize(addr, &mut serde_json::Serializer::new(&mut *self.out))
    }

    fn socket(&mut self, session: &str, socket: &str, member: &Option<u32>) -> serde_json::Result<()> {
        self.raw(br#","session":"#);
        self.value(session)?;
        self.raw(br#","socket":"#);
        self.value(socket)?;
        self.field(br#","member":"#, member)
    }

    fn datagram(
        &mut self,
        dg: u64,
        from: &SocketAddr,
        to: &SocketAddr,
        len: usize,
        payload: &Payload,
    ) -> serde_json::Result<()> {
        self.raw(br#","dg":"#);
        self.value(&dg)?;
        self.addresses(from, to, len, payload)
    }

    fn addresses(
        &mut self,
        from: &SocketAddr,
        to: &SocketAddr,
        len: usize,
        payload: &Payload,
    ) -> serde_json::Result<()> {
        self.raw(br#","from":"#);
        self.address(from)?;
        self.raw(br#","to":"#);
        self.address(to)?;
        self.raw(br#","len":"#);
        self.value(&len)?;
        self.field(br#","text":"#, &payload.text)?;
        self.field(br#","hex":"#, &payload.hex)?;
        if payload.truncated {
            self.raw(br#","truncated":true"#);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::ServerName;

    fn derived(event: &Event) -> String {
        let mut out = Vec::new();
        write_derived(&mut out, event).expect("serializes");
        String::from_utf8(out).expect("UTF-8")
    }

    fn written(event: &Event) -> String {
        let mut out = Vec::new();
        write_event(&mut out, event).expect("writes");
        String::from_utf8(out).expect("UTF-8")
    }

    /// A small deterministic generator, so a failure names its case.
    struct Cases(u64);

    impl Cases {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            self.0 >> 33
        }

        fn pick<T: Clone>(&mut self, options: &[T]) -> T {
            options[(self.next() % options.len() as u64) as usize].clone()
        }

        fn maybe<T>(&mut self, value: T) -> Option<T> {
            self.next().is_multiple_of(2).then_some(value)
        }

        fn addr(&mut self) -> SocketAddr {
            let texts =
                ["127.0.0.1:40522", "0.0.0.0:0", "255.255.255.255:65535", "[::1]:9", "[fe80::1%2]:5000"];
            self.pick(&texts).parse().expect("address")
        }

        fn text(&mut self) -> String {
            let texts = [
                "",
                "hello",
                "ack: 127.0.0.1 5000\nhi",
                "quote \" and \\ back",
                "tab\t\u{1}\u{7f}",
                "上海 ✓",
            ];
            self.pick(&texts).to_owned()
        }

        fn payload(&mut self) -> Payload {
            match self.next() % 4 {
                0 => Payload::preview(self.text().as_bytes()),
                1 => Payload::preview(&[0xff, 0x00, 0x10]),
                2 => Payload::preview(&[b'x'; 300]),
                _ => Payload::default(),
            }
        }

        fn kind(&mut self) -> EventKind {
            let (dg, len, from, to, payload) =
                (self.next(), self.next() as usize, self.addr(), self.addr(), self.payload());
            let server =
                self.pick(&[ServerName::Echo, ServerName::Upper, ServerName::Chat, ServerName::Lossy]);
            let (session, socket) = (self.text(), self.text());
            let member = self.next() as u32;
            let (member, attempt) = (self.maybe(member), self.maybe(7));
            let req = self.text();
            let req = self.maybe(req);
            match self.next() % 5 {
                0 => EventKind::ServerRecv { server, dg, from, to, len, payload },
                1 => {
                    let (reply_to, delay_ms) = (self.maybe(dg + 1), self.maybe(u64::MAX));
                    EventKind::ServerSend { server, dg, reply_to, from, to, len, payload, delay_ms }
                }
                2 => EventKind::ClientSend {
                    session,
                    socket,
                    member,
                    dg,
                    from,
                    to,
                    len,
                    payload,
                    attempt,
                    req,
                },
                3 => {
                    let (rtt_us, kept) = (self.maybe(12_345), self.next() as usize);
                    EventKind::ClientRecv {
                        session,
                        socket,
                        member,
                        dg,
                        from,
                        to,
                        len,
                        payload,
                        attempt,
                        req,
                        rtt_us,
                        kept,
                    }
                }
                _ => EventKind::ClientClose { session, socket, member },
            }
        }
    }

    #[test]
    fn writes_what_the_derived_code_writes_byte_for_byte() {
        let mut cases = Cases(7);
        for case in 0..20_000 {
            let event = Event { seq: cases.next(), t_us: cases.next(), kind: cases.kind() };
            assert_eq!(written(&event), derived(&event), "case {case}: {event:?}");
        }
    }

    #[test]
    fn an_event_reads_back_as_the_page_reads_it() {
        let event = Event {
            seq: 3,
            t_us: 40,
            kind: EventKind::ClientRecv {
                session: "s".into(),
                socket: "a".into(),
                member: None,
                dg: 9,
                from: "127.0.0.1:7".parse().expect("addr"),
                to: "127.0.0.1:40000".parse().expect("addr"),
                len: 2,
                payload: Payload::preview(b"hi"),
                attempt: Some(2),
                req: Some("r1".into()),
                rtt_us: Some(812),
                kept: 2,
            },
        };
        let value: serde_json::Value = serde_json::from_str(&written(&event)).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"type":"event","seq":3,"t_us":40,"kind":"client_recv","session":"s","socket":"a",
                "dg":9,"from":"127.0.0.1:7","to":"127.0.0.1:40000","len":2,"text":"hi","attempt":2,"req":"r1",
                "rtt_us":812,"kept":2})
        );
    }
}
