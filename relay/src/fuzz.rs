//! A fuzzer for everything that reads untrusted input, on stable Rust: the WebSocket command
//! parser, the `--link` and duration parsers, and every handler's `on_datagram`.
//!
//! Each case is built from a seeded RNG: random bytes, or a valid input mutated (bytes
//! flipped, cut, repeated, spliced with another), which reaches far deeper than noise alone.
//! Nothing may panic; every parse must end in a value or an error, and the handlers must keep
//! their bounds (the chat server never holds more clients than its cap, an answer is never
//! larger than a datagram). The test suite runs a bounded number of cases; `cargo run
//! --release -p bench --bin fuzz -- --cases 10000000` runs the long one (BENCHMARKS.md).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::bridge::command;
use crate::udp::chat::{Chat, ChatSettings};
use crate::udp::lossy::{Lossy, LossySettings};
use crate::udp::{Cx, DatagramHandler, MAX_DATAGRAM};

/// Valid inputs the mutations start from.
const COMMANDS: &[&str] = &[
    r#"{"op":"open","socket":"a","server":"echo"}"#,
    r#"{"op":"open","socket":"n","server":"nobody","connect":false,"recv_buffer":1024}"#,
    r#"{"op":"send","socket":"a","text":"hello","retry":{"initial_ms":100,"factor":2.0,"give_up_ms":2000},"request_id":true}"#,
    r#"{"op":"send","socket":"a","hex":"00ff 7a"}"#,
    r#"{"op":"heartbeat","socket":"c","every_ms":5000}"#,
    r#"{"op":"close","socket":"a"}"#,
    r#"{"op":"subscribe","scope":"all","batch":true,"kinds":["client_recv"],"history":true}"#,
    r#"{"op":"configure","server":"lossy","drop":0.3,"delay_ms":150}"#,
    r#"{"op":"crowd","socket":"k","server":"upper","clients":100,"every_ms":1000,"text":"hi","heartbeat":true}"#,
    r#"{"op":"link","server":"echo","dir":"out","loss":0.3,"mtu":1500}"#,
    r#"{"op":"fault","server":"echo","dir":"in","drop_next":2}"#,
];

const LINKS: &[&str] =
    &["echo.out=loss:0.3,delay:100ms,jitter:50ms", "upper.in=duplicate:0.1,mtu:1500,reorder:1"];
const DURATIONS: &[&str] = &["10s", "600ms", "1m30s", "1day", "0s"];
const DATAGRAMS: &[&[u8]] = &[b"reg", b"^hb^", b"quit", b"hello there\n", b"#1-2 ping", b"#abc_Z x", b""];

/// What a run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub cases: u64,
    /// Inputs each parser accepted (the rest it refused with an error).
    pub commands_parsed: u64,
    pub links_parsed: u64,
    pub durations_parsed: u64,
    /// Datagrams handed to handlers.
    pub datagrams: u64,
}

/// A mutated copy of one of `seeds`, or random bytes.
fn input(rng: &mut fastrand::Rng, seeds: &[&[u8]]) -> Vec<u8> {
    if rng.u8(..) < 16 {
        return (0..rng.usize(..64)).map(|_| rng.u8(..)).collect();
    }
    let mut bytes = seeds[rng.usize(..seeds.len())].to_vec();
    // Some cases stay valid, so every parser is also driven past its first error.
    for _ in 0..rng.usize(0..4) {
        match rng.u8(..6) {
            0 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes[i] = rng.u8(..);
            }
            1 if !bytes.is_empty() => bytes.truncate(rng.usize(..bytes.len())),
            2 => {
                let i = rng.usize(..=bytes.len());
                let byte = *b"{}[]\",:0-.e\\u#\n ".get(rng.usize(..17)).unwrap_or(&b'x');
                bytes.insert(i, byte);
            }
            3 => {
                let other = seeds[rng.usize(..seeds.len())];
                let cut = rng.usize(..=other.len());
                let at = rng.usize(..=bytes.len());
                bytes.splice(at..at, other[cut..].iter().copied());
            }
            4 if !bytes.is_empty() => {
                let i = rng.usize(..bytes.len());
                bytes.remove(i);
            }
            _ => {
                // A long run of one byte: sizes near and past the limits.
                let n = [255, 256, 1024, 65_507, 65_508][rng.usize(..5)].min(70_000);
                bytes.extend(std::iter::repeat_n(
                    b'x',
                    n.min(MAX_DATAGRAM + 1 - bytes.len().min(MAX_DATAGRAM)),
                ));
            }
        }
    }
    bytes
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `cases` cases from `seed`. Panics, with the case number and seed, on a broken bound;
/// a panic inside a parser or handler propagates with its own message.
pub fn run(cases: u64, seed: u64) -> Stats {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut stats = Stats::default();
    let commands: Vec<&[u8]> = COMMANDS.iter().map(|c| c.as_bytes()).collect();
    let links: Vec<&[u8]> = LINKS.iter().map(|c| c.as_bytes()).collect();
    let durations: Vec<&[u8]> = DURATIONS.iter().map(|c| c.as_bytes()).collect();
    let max_clients = 64;
    let mut chat = Chat::new(ChatSettings { timeout: Duration::from_secs(10), max_clients });
    let mut lossy =
        Lossy::new(LossySettings { drop: 0.3, delay: Duration::from_millis(5), seed, ..Default::default() });
    let server: SocketAddr =
        "127.0.0.1:9998".parse().unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 9998)));
    let mut cx = Cx::new(Some(protocol::ServerName::Chat), server);
    cx.observe();
    // The tutorial's retrying client, with requests waiting, reads the same datagrams.
    let names = crate::bridge::client::Names { session: "fuzz".into(), socket: "c".into(), member: None };
    let opening = crate::bridge::client::Opening {
        remote: server,
        server: None,
        connect: true,
        recv_buffer: Some(512),
    };
    let budget = std::sync::Arc::new(std::sync::Mutex::new(crate::bridge::budget::Budget::new(
        1000,
        1 << 20,
        Instant::now(),
    )));
    let mut client = crate::bridge::client::ClientSocket::new(names, opening, budget, 8);
    let start = Instant::now();
    let mut now = start;

    for case in 0..cases {
        stats.cases += 1;
        match case % 4 {
            0 => {
                let frame = text(&input(&mut rng, &commands));
                if let Ok(parsed) = command::parse(&frame) {
                    stats.commands_parsed += 1;
                    if let protocol::Command::Send { text, hex, retry, .. } = parsed {
                        let _ = command::payload(text, hex, "send");
                        if let Some(p) = retry.and_then(|r| r.params()) {
                            let _ = command::check_retry(p);
                        }
                    }
                }
            }
            1 => {
                let flag = text(&input(&mut rng, &links));
                stats.links_parsed += u64::from(crate::config::parse_link(&flag).is_ok());
                let d = text(&input(&mut rng, &durations));
                if let Ok(d) = crate::config::parse_duration(&d) {
                    stats.durations_parsed += 1;
                    assert!(
                        d <= crate::config::MAX_DURATION,
                        "case {case}, seed {seed}: {d:?} is over a day"
                    );
                }
            }
            _ => {
                let datagram = input(&mut rng, DATAGRAMS);
                let datagram = &datagram[..datagram.len().min(MAX_DATAGRAM)];
                let from = SocketAddr::from(([127, 0, 0, 1], rng.u16(1..200)));
                now += Duration::from_micros(rng.u64(..2_000_000));
                stats.datagrams += 1;
                crate::udp::echo::Echo.on_datagram(&mut cx, now, from, datagram);
                crate::udp::upper::Upper.on_datagram(&mut cx, now, from, datagram);
                chat.on_datagram(&mut cx, now, from, datagram);
                lossy.on_datagram(&mut cx, now, from, datagram);
                if rng.u8(..8) == 0 {
                    chat.on_tick(&mut cx, now);
                    lossy.on_tick(&mut cx, now);
                }
                assert!(chat.clients() <= max_clients, "case {case}, seed {seed}: chat over its cap");
                for (_, bytes) in cx.take_sent() {
                    assert!(
                        bytes.len() <= MAX_DATAGRAM,
                        "case {case}, seed {seed}: an answer of {} bytes",
                        bytes.len()
                    );
                }
                // The client's sends may pass UDP's limit (a request ID in front of 65,507
                // bytes): the kernel refuses those, and the socket reports it.
                client.on_datagram(&mut cx, now, from, datagram);
                if rng.u8(..8) == 0 {
                    client.on_tick(&mut cx, now);
                    let retry = Some(protocol::RetryParams::default());
                    let send = crate::bridge::client::ClientCommand::Send {
                        payload: datagram.to_vec(),
                        retry,
                        request_id: rng.bool(),
                        accepted: None,
                    };
                    client.on_command(&mut cx, now, send);
                }
                assert!(client.pending() <= 8, "case {case}, seed {seed}: more requests than the cap");
                cx.take_sent();
                cx.take_events();
            }
        }
    }
    stats
}

#[cfg(test)]
mod tests {
    #[test]
    fn twenty_thousand_cases_find_no_panic_and_reach_past_the_errors() {
        let stats = super::run(20_000, 7);
        assert_eq!(stats.cases, 20_000);
        // The mutations keep enough inputs valid to test more than the first error path.
        assert!(stats.commands_parsed > 100, "{stats:?}");
        assert!(stats.links_parsed > 10, "{stats:?}");
        assert!(stats.durations_parsed > 100, "{stats:?}");
        assert_eq!(stats.datagrams, 10_000);
    }
}
