//! The heartbeat chat server (the tutorials' `ChatServerUdp`, version 2, on port 9998).
//!
//! UDP has no connections, so the server cannot know a client has gone away: a client proves
//! it is alive by sending something at least once per timeout, usually a `^hb^` heartbeat.
//!
//! The wire protocol, after stripping ASCII whitespace from the datagram:
//! - `reg` or `^hb^` registers or refreshes the sender; no reply;
//! - `quit` removes the sender;
//! - anything else refreshes the sender and goes to every live client, the sender included, as
//!   `ack: IP PORT\nTEXT\n`.
//!
//! A client silent for the whole timeout is evicted by a timer, at exactly `last heard +
//! timeout`. On shutdown every live client gets `end`. Bytes need not be UTF-8: they are
//! compared and forwarded as bytes.

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use protocol::{EventKind, Payload, ServerName};

use super::{Cx, DatagramHandler, Setting, SettingError};

/// Tunables of the chat server.
#[derive(Debug, Clone, Copy)]
pub struct ChatSettings {
    /// How long a client may stay silent before it is evicted (`--chat-timeout`).
    pub timeout: Duration,
    /// Live clients at most (`--chat-max-clients`). Each costs about 100 bytes of state and
    /// one datagram per broadcast, so the cap bounds both memory and the fan-out of a message.
    pub max_clients: usize,
}

impl Default for ChatSettings {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), max_clients: 10_000 }
    }
}

#[derive(Debug)]
pub struct Chat {
    settings: ChatSettings,
    /// When each live client was last heard from.
    last_heard: HashMap<SocketAddr, Instant>,
    /// The same clients ordered by when they were last heard, so the next eviction is the
    /// first entry and the timer never scans every client.
    by_silence: BTreeSet<(Instant, SocketAddr)>,
}

impl Chat {
    pub fn new(settings: ChatSettings) -> Self {
        Self { settings, last_heard: HashMap::new(), by_silence: BTreeSet::new() }
    }

    /// The number of live clients.
    pub fn clients(&self) -> usize {
        self.last_heard.len()
    }

    fn timeout_ms(&self) -> u64 {
        u64::try_from(self.settings.timeout.as_millis()).unwrap_or(u64::MAX)
    }

    /// Marks `peer` as heard at `now`. Returns false when it is new and the server is full.
    fn refresh(&mut self, cx: &mut Cx, now: Instant, peer: SocketAddr) -> bool {
        match self.last_heard.insert(peer, now) {
            Some(before) => {
                self.by_silence.remove(&(before, peer));
            }
            None if self.last_heard.len() > self.settings.max_clients => {
                self.last_heard.remove(&peer);
                let limit = self.settings.max_clients;
                cx.emit(|| EventKind::ChatRefused { server: ServerName::Chat, peer, limit });
                return false;
            }
            None => {
                let (clients, timeout_ms) = (self.clients(), self.timeout_ms());
                cx.emit(|| EventKind::ChatJoin { server: ServerName::Chat, peer, clients, timeout_ms });
            }
        }
        self.by_silence.insert((now, peer));
        true
    }

    /// Removes every client whose silence has reached the timeout by `now`.
    fn evict_silent(&mut self, cx: &mut Cx, now: Instant) {
        while let Some(&(heard, peer)) = self.by_silence.first() {
            let silent = now.saturating_duration_since(heard);
            if silent < self.settings.timeout {
                break;
            }
            self.by_silence.pop_first();
            self.last_heard.remove(&peer);
            let clients = self.clients();
            let silent_ms = u64::try_from(silent.as_millis()).unwrap_or(u64::MAX);
            cx.emit(|| EventKind::ChatEvict { server: ServerName::Chat, peer, silent_ms, clients });
        }
    }
}

/// ASCII whitespace, as Python's `bytes.strip()` removes it.
fn strip(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c');
    let start = bytes.iter().position(|b| !is_space(b)).unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &bytes[start..end]
}

impl DatagramHandler for Chat {
    type Command = std::convert::Infallible;

    fn server(&self) -> Option<ServerName> {
        Some(ServerName::Chat)
    }

    fn sandbox(&self, _salt: u64) -> Option<Self> {
        Some(Self::new(self.settings))
    }

    fn on_datagram(&mut self, cx: &mut Cx, now: Instant, from: SocketAddr, payload: &[u8]) {
        // Evict first, so a client whose time ran out is not sent a message just because the
        // timer has not fired yet.
        self.evict_silent(cx, now);
        let text = strip(payload);
        match text {
            b"reg" | b"^hb^" => {
                let known = self.last_heard.contains_key(&from);
                if self.refresh(cx, now, from) && known {
                    let timeout_ms = self.timeout_ms();
                    cx.emit(|| EventKind::ChatHeartbeat { server: ServerName::Chat, peer: from, timeout_ms });
                }
            }
            b"quit" => {
                if let Some(heard) = self.last_heard.remove(&from) {
                    self.by_silence.remove(&(heard, from));
                    let clients = self.clients();
                    cx.emit(|| EventKind::ChatLeave { server: ServerName::Chat, peer: from, clients });
                }
            }
            _ => {
                if !self.refresh(cx, now, from) {
                    return;
                }
                let mut message = Vec::with_capacity(text.len() + 32);
                // Writing to a Vec cannot fail.
                let _ = writeln!(message, "ack: {} {}", from.ip(), from.port());
                // The wrapper and the closing newline must fit in one datagram with the text;
                // a copy the kernel would refuse must not be claimed as sent.
                let max_len = super::MAX_DATAGRAM.saturating_sub(message.len() + 1);
                if text.len() > max_len {
                    let dg = cx.arrival().unwrap_or_default();
                    let len = text.len();
                    cx.emit(|| EventKind::ChatTooLong { server: ServerName::Chat, dg, from, len, max_len });
                    return;
                }
                message.extend_from_slice(text);
                message.push(b'\n');
                let recipients = self.clients();
                let dg = cx.arrival().unwrap_or_default();
                cx.emit(|| EventKind::ChatBroadcast {
                    server: ServerName::Chat,
                    dg,
                    from,
                    recipients,
                    len: text.len(),
                    payload: Payload::preview(text),
                });
                // Every copy is a datagram of its own, answering the message it copies.
                cx.send_to_all(self.last_heard.keys().copied(), &message);
            }
        }
    }

    fn settings(&self) -> protocol::ServerSettings {
        protocol::ServerSettings {
            timeout_ms: Some(self.timeout_ms()),
            max_clients: Some(self.settings.max_clients),
            clients: Some(self.clients()),
            ..Default::default()
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.by_silence.first().map(|&(heard, _)| heard + self.settings.timeout)
    }

    fn on_tick(&mut self, cx: &mut Cx, now: Instant) {
        self.evict_silent(cx, now);
    }

    fn on_configure(&mut self, cx: &mut Cx, now: Instant, setting: Setting) -> Result<(), SettingError> {
        setting.check(ServerName::Chat)?;
        match setting {
            Setting::ChatTimeout(t) => {
                self.settings.timeout = t;
                self.evict_silent(cx, now);
                Ok(())
            }
            _ => Ok(()), // refused by `check`
        }
    }

    fn on_stop(&mut self, cx: &mut Cx, _now: Instant) {
        cx.send_to_all(self.last_heard.keys().copied(), b"end");
        let clients = self.clients();
        cx.emit(|| EventKind::ChatEnd { server: ServerName::Chat, clients });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(10);

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn setup(max_clients: usize) -> (Chat, Cx) {
        let mut cx = Cx::new(Some(ServerName::Chat), addr(9998));
        cx.observe();
        (Chat::new(ChatSettings { timeout: TIMEOUT, max_clients }), cx)
    }

    fn kinds(events: &[EventKind]) -> Vec<&'static str> {
        events
            .iter()
            .map(|e| match e {
                EventKind::ChatJoin { .. } => "join",
                EventKind::ChatHeartbeat { .. } => "heartbeat",
                EventKind::ChatLeave { .. } => "leave",
                EventKind::ChatEvict { .. } => "evict",
                EventKind::ChatBroadcast { .. } => "broadcast",
                EventKind::ChatRefused { .. } => "refused",
                EventKind::ChatEnd { .. } => "end",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn registration_and_heartbeats_are_silent_on_the_wire() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg\n");
        chat.on_datagram(&mut cx, t0, addr(1), b" ^hb^ ");
        assert!(cx.take_sent().is_empty());
        assert_eq!(kinds(&cx.take_events()), ["join", "heartbeat"]);
        assert_eq!(chat.clients(), 1);
    }

    #[test]
    fn message_goes_to_every_live_client_including_the_sender() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_datagram(&mut cx, t0, addr(2), b"  hello there \r\n");
        let mut sent = cx.take_sent();
        sent.sort();
        let expected = b"ack: 127.0.0.1 2\nhello there\n".to_vec();
        assert_eq!(sent, vec![(addr(1), expected.clone()), (addr(2), expected)]);
        assert_eq!(kinds(&cx.take_events()), ["join", "join", "broadcast"]);
    }

    #[test]
    fn each_copy_is_a_datagram_of_its_own_answering_the_message() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        cx.arrive(&mut chat, t0, 100, addr(1), b"reg");
        cx.arrive(&mut chat, t0, 101, addr(2), b"hi");
        let copies = cx.take_named();
        assert_eq!(copies.len(), 2);
        assert!(
            copies
                .iter()
                .all(|(_, bytes, _, reply_to)| bytes == b"ack: 127.0.0.1 2\nhi\n" && *reply_to == Some(101))
        );
        assert_ne!(copies[0].2, copies[1].2, "each copy has its own name");
        assert!(copies.iter().all(|(_, _, dg, _)| *dg != 0 && *dg != 101));
        let broadcast = cx.take_events().into_iter().find(|e| matches!(e, EventKind::ChatBroadcast { .. }));
        assert!(matches!(broadcast, Some(EventKind::ChatBroadcast { dg: 101, recipients: 2, .. })));
    }

    #[test]
    fn quit_removes_the_sender() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_datagram(&mut cx, t0, addr(1), b"quit\n");
        assert_eq!(chat.clients(), 0);
        assert_eq!(chat.poll_timeout(), None);
        assert_eq!(kinds(&cx.take_events()), ["join", "leave"]);
    }

    #[test]
    fn eviction_happens_exactly_at_the_timeout() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"^hb^");
        assert_eq!(chat.poll_timeout(), Some(t0 + TIMEOUT));

        chat.on_tick(&mut cx, t0 + TIMEOUT - Duration::from_nanos(1));
        assert_eq!(chat.clients(), 1, "still alive a nanosecond before the timeout");

        chat.on_tick(&mut cx, t0 + TIMEOUT);
        assert_eq!(chat.clients(), 0, "evicted at the timeout");
        assert_eq!(chat.poll_timeout(), None);
        let events = cx.take_events();
        assert_eq!(
            events.last(),
            Some(&EventKind::ChatEvict {
                server: ServerName::Chat,
                peer: addr(1),
                silent_ms: 10_000,
                clients: 0
            })
        );
    }

    #[test]
    fn heartbeat_postpones_eviction_and_the_timer_follows_the_oldest_client() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_datagram(&mut cx, t0 + Duration::from_secs(3), addr(2), b"reg");
        chat.on_datagram(&mut cx, t0 + Duration::from_secs(5), addr(1), b"^hb^");
        assert_eq!(chat.poll_timeout(), Some(t0 + Duration::from_secs(13)));

        chat.on_tick(&mut cx, t0 + Duration::from_secs(13));
        assert_eq!(chat.clients(), 1);
        assert_eq!(chat.poll_timeout(), Some(t0 + Duration::from_secs(15)));
    }

    #[test]
    fn silent_client_gets_no_message_even_before_the_timer_fires() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_datagram(&mut cx, t0 + TIMEOUT, addr(2), b"hi");
        let sent = cx.take_sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].0, addr(2));
    }

    #[test]
    fn an_evicted_client_registers_again_when_heard() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_tick(&mut cx, t0 + TIMEOUT);
        chat.on_datagram(&mut cx, t0 + TIMEOUT * 2, addr(1), b"^hb^");
        assert_eq!(chat.clients(), 1);
        assert_eq!(kinds(&cx.take_events()), ["join", "evict", "join"]);
    }

    #[test]
    fn clients_beyond_the_cap_are_refused_and_the_rest_still_served() {
        let (mut chat, mut cx) = setup(2);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_datagram(&mut cx, t0, addr(2), b"reg");
        chat.on_datagram(&mut cx, t0, addr(3), b"let me in");
        assert_eq!(chat.clients(), 2);
        assert!(cx.take_sent().is_empty(), "a refused client's message goes nowhere");
        chat.on_datagram(&mut cx, t0, addr(1), b"still here");
        assert_eq!(cx.take_sent().len(), 2);
        let events = cx.take_events();
        assert!(events.contains(&EventKind::ChatRefused {
            server: ServerName::Chat,
            peer: addr(3),
            limit: 2
        }));
    }

    #[test]
    fn a_big_message_to_many_clients_is_stored_once() {
        let (mut chat, mut cx) = setup(1_000);
        let t0 = Instant::now();
        for port in 1..=500 {
            chat.on_datagram(&mut cx, t0, addr(port), b"reg");
        }
        let big = vec![b'x'; 60_000];
        chat.on_datagram(&mut cx, t0, addr(1), &big);
        assert_eq!(cx.out.len(), 500);
        assert!(cx.buf.len() < 61_000, "stored {} bytes for 500 copies", cx.buf.len());
        assert!(cx.take_sent().iter().all(|(_, bytes)| bytes.len() == 60_000 + "ack: 127.0.0.1 1\n\n".len()));
    }

    #[test]
    fn a_message_too_long_to_wrap_goes_to_nobody_and_says_so() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        // "ack: 127.0.0.1 1\n" is 17 bytes and the closing newline one more.
        let fits = vec![b'x'; super::super::MAX_DATAGRAM - 18];
        chat.on_datagram(&mut cx, t0, addr(1), &fits);
        assert_eq!(cx.take_sent()[0].1.len(), super::super::MAX_DATAGRAM);
        let too_long = vec![b'x'; super::super::MAX_DATAGRAM - 17];
        cx.take_events();
        chat.on_datagram(&mut cx, t0, addr(1), &too_long);
        assert!(cx.take_sent().is_empty());
        let events = cx.take_events();
        assert!(
            matches!(events.as_slice(), [EventKind::ChatTooLong { len, max_len, .. }] if *len == 65_490 && *max_len == 65_489),
            "{events:?}"
        );
        assert!(
            !events.iter().any(|e| matches!(e, EventKind::ChatBroadcast { .. })),
            "no broadcast is claimed"
        );
    }

    #[test]
    fn non_utf8_bytes_are_forwarded_as_bytes() {
        let (mut chat, mut cx) = setup(10);
        chat.on_datagram(&mut cx, Instant::now(), addr(1), &[0xff, 0xfe, b'\n']);
        assert_eq!(cx.take_sent(), vec![(addr(1), b"ack: 127.0.0.1 1\n\xff\xfe\n".to_vec())]);
    }

    #[test]
    fn stop_sends_end_to_every_live_client() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        chat.on_datagram(&mut cx, t0, addr(2), b"reg");
        chat.on_stop(&mut cx, t0);
        let mut sent = cx.take_sent();
        sent.sort();
        assert_eq!(sent, vec![(addr(1), b"end".to_vec()), (addr(2), b"end".to_vec())]);
    }

    #[test]
    fn shorter_timeout_applies_at_once() {
        let (mut chat, mut cx) = setup(10);
        let t0 = Instant::now();
        chat.on_datagram(&mut cx, t0, addr(1), b"reg");
        let later = t0 + Duration::from_secs(2);
        assert_eq!(chat.on_configure(&mut cx, later, Setting::ChatTimeout(Duration::from_secs(1))), Ok(()));
        assert_eq!(chat.clients(), 0);
        assert_eq!(
            chat.on_configure(&mut cx, later, Setting::ChatTimeout(Duration::ZERO)),
            Err(SettingError::ZeroTimeout)
        );
    }

    #[test]
    fn strip_matches_python_bytes_strip() {
        assert_eq!(strip(b" \t\r\n\x0b\x0cquit \n"), b"quit");
        assert_eq!(strip(b"   "), b"");
        assert_eq!(strip(b""), b"");
    }
}
