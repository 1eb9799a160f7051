//! The four UDP servers' wire contract (issue 2, "The servers"), tested with real sockets on
//! 127.0.0.1 against a relay running in this process, plus the events each server emits.
//!
//! Where a test must know that the server has seen a datagram before it sends the next one,
//! it waits for the matching event on the bus instead of sleeping. Sleeps appear only to show
//! that nothing arrives.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use protocol::{DropReason, EventKind, Scope, ServerName};
use relay::bus::Published;
use relay::udp::Setting;
use tokio::net::UdpSocket;
use tokio::sync::broadcast;

use crate::support::{TestRelay, assert_silent, drain_events, recv, udp_client, wait_for_event, within};

/// Long enough to be confident that a datagram on loopback is not coming.
const QUIET: Duration = Duration::from_millis(250);

type Events = broadcast::Receiver<Arc<Published>>;

async fn send(socket: &UdpSocket, payload: &[u8], to: SocketAddr) {
    let sent = within("sending a datagram", socket.send_to(payload, to)).await.expect("send_to");
    assert_eq!(sent, payload.len(), "a datagram goes out whole or not at all");
}

fn local(socket: &UdpSocket) -> SocketAddr {
    socket.local_addr().expect("a bound socket has a local address")
}

/// Sends `payload` to `server` and returns the one answer, checking it came from `server`.
async fn round_trip(socket: &UdpSocket, payload: &[u8], server: SocketAddr) -> Vec<u8> {
    send(socket, payload, server).await;
    let (answer, from) = recv(socket).await;
    assert_eq!(from, server, "the answer comes from the server's own address");
    answer
}

/// What the chat server broadcasts when `from` says `text`.
fn ack(from: SocketAddr, text: &[u8]) -> Vec<u8> {
    let mut message = format!("ack: {} {}\n", from.ip(), from.port()).into_bytes();
    message.extend_from_slice(text);
    message.push(b'\n');
    message
}

/// Sends `reg` from `client` and waits until the chat server reports the join.
async fn join_chat(relay: &TestRelay, events: &mut Events, client: &UdpSocket) {
    let peer = local(client);
    send(client, b"reg", relay.addr(ServerName::Chat)).await;
    wait_for_event(events, "chat_join", |e| match e.kind {
        EventKind::ChatJoin { peer: p, .. } if p == peer => Some(()),
        _ => None,
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// echo

#[tokio::test]
async fn echo_returns_the_empty_datagram() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    let answer = round_trip(&client, b"", relay.addr(ServerName::Echo)).await;
    assert!(answer.is_empty(), "an empty datagram is answered by an empty datagram, got {answer:?}");
    relay.shutdown().await;
}

#[tokio::test]
async fn echo_returns_the_largest_ipv4_datagram_unchanged() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    // 65,535 - 20 (IPv4 header) - 8 (UDP header): the most one IPv4 datagram can carry.
    let payload: Vec<u8> = (0..65_507u32).map(|i| (i % 251) as u8).collect();
    let answer = round_trip(&client, &payload, relay.addr(ServerName::Echo)).await;
    assert_eq!(answer.len(), 65_507);
    assert!(answer == payload, "the 65,507-byte datagram came back changed");
    relay.shutdown().await;
}

#[tokio::test]
async fn echo_returns_binary_bytes_unchanged() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    let every_byte: Vec<u8> = (0..=255u8).rev().collect();
    assert_eq!(round_trip(&client, &every_byte, relay.addr(ServerName::Echo)).await, every_byte);
    let not_utf8 = b"\xff\xfe\x00\x80quit\x00";
    assert_eq!(round_trip(&client, not_utf8, relay.addr(ServerName::Echo)).await, not_utf8);
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// upper

#[tokio::test]
async fn upper_uppercases_ascii_letters_only() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    let server = relay.addr(ServerName::Upper);
    // "été" in UTF-8, a stray 0xff, and ASCII around them: only a-z change.
    let answer = round_trip(&client, b"hello, World! \xc3\xa9t\xc3\xa9 \xff\x00z{", server).await;
    assert_eq!(answer, b"HELLO, WORLD! \xc3\xa9T\xc3\xa9 \xff\x00Z{");
    relay.shutdown().await;
}

#[tokio::test]
async fn upper_leaves_every_non_ascii_letter_byte_untouched() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    let every_byte: Vec<u8> = (0..=255u8).collect();
    let answer = round_trip(&client, &every_byte, relay.addr(ServerName::Upper)).await;
    assert_eq!(answer.len(), 256, "the answer has the request's length");
    for (sent, got) in every_byte.iter().zip(&answer) {
        // Python's bytes.upper(): only a..z change, by 32.
        let expected = if sent.is_ascii_lowercase() { sent - 32 } else { *sent };
        assert_eq!(*got, expected, "byte {sent:#04x} came back as {got:#04x}");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn upper_returns_the_empty_datagram() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    let answer = round_trip(&client, b"", relay.addr(ServerName::Upper)).await;
    assert!(answer.is_empty(), "got {answer:?}");
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// chat

#[tokio::test]
async fn chat_registration_and_heartbeats_get_no_reply() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (quiet, talker) = (udp_client().await, udp_client().await);
    let quiet_addr = local(&quiet);

    for payload in [&b"reg"[..], b"^hb^", b"  ^hb^\r\n", b"\treg \n"] {
        send(&quiet, payload, chat).await;
    }
    let mut heartbeats = 0;
    wait_for_event(&mut events, "one join and three heartbeats", |e| match e.kind {
        EventKind::ChatHeartbeat { peer, .. } if peer == quiet_addr => {
            heartbeats += 1;
            (heartbeats == 3).then_some(())
        }
        _ => None,
    })
    .await;
    assert_silent(&quiet, QUIET).await;

    // Registered all the same: the next message reaches it.
    send(&talker, b"anyone?", chat).await;
    let (got, from) = recv(&quiet).await;
    assert_eq!((got, from), (ack(local(&talker), b"anyone?"), chat));
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_message_goes_to_every_live_client_including_the_sender() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (a, b, sender, stranger) =
        (udp_client().await, udp_client().await, udp_client().await, udp_client().await);
    join_chat(&relay, &mut events, &a).await;
    join_chat(&relay, &mut events, &b).await;

    // The sender never sent `reg`: saying something registers it too.
    send(&sender, b"  hello there \r\n", chat).await;
    let expected = ack(local(&sender), b"hello there");
    for client in [&a, &b, &sender] {
        let (got, from) = recv(client).await;
        assert_eq!(from, chat);
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&expected));
    }
    // Exactly one copy each, and nothing for a socket that never spoke.
    for client in [&a, &b, &sender, &stranger] {
        assert_silent(client, QUIET).await;
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_quit_removes_the_sender() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (leaver, stayer) = (udp_client().await, udp_client().await);
    let leaver_addr = local(&leaver);
    join_chat(&relay, &mut events, &leaver).await;
    join_chat(&relay, &mut events, &stayer).await;

    send(&leaver, b"quit\n", chat).await;
    let clients = wait_for_event(&mut events, "chat_leave", |e| match e.kind {
        EventKind::ChatLeave { peer, clients, .. } if peer == leaver_addr => Some(clients),
        _ => None,
    })
    .await;
    assert_eq!(clients, 1, "one client left after the quit");
    assert_silent(&leaver, QUIET).await; // `quit` itself gets no reply

    send(&stayer, b"bye then", chat).await;
    assert_eq!(recv(&stayer).await.0, ack(local(&stayer), b"bye then"));
    assert_silent(&leaver, QUIET).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_evicts_a_silent_client_by_timer_and_takes_it_back_when_heard() {
    const TIMEOUT: Duration = Duration::from_millis(300);
    let relay = TestRelay::start_with(|c| c.chat.timeout = TIMEOUT).await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (silent, talker) = (udp_client().await, udp_client().await);
    let silent_addr = local(&silent);

    let registered = Instant::now();
    join_chat(&relay, &mut events, &silent).await;
    // No datagram reaches the chat server from here on until the eviction is seen: only its
    // timer can have evicted the client.
    let silent_ms =
        wait_for_event(&mut events, "chat_evict without any further datagram", |e| match e.kind {
            EventKind::ChatEvict { peer, silent_ms, clients, .. } if peer == silent_addr => {
                assert_eq!(clients, 0);
                Some(silent_ms)
            }
            _ => None,
        })
        .await;
    assert!(silent_ms >= 300, "evicted after {silent_ms} ms of silence, before the 300 ms timeout");
    assert!(registered.elapsed() >= TIMEOUT, "evicted {:?} after registering", registered.elapsed());

    // The rest need not race a 300 ms clock on a busy machine.
    within(
        "setting a long chat timeout",
        relay.handle.configure(
            ServerName::Chat,
            Setting::ChatTimeout(Duration::from_secs(30)),
            None,
            Scope::All,
        ),
    )
    .await
    .expect("the chat server accepts a new timeout");

    send(&talker, b"is anyone there", chat).await;
    assert_eq!(recv(&talker).await.0, ack(local(&talker), b"is anyone there"));
    assert_silent(&silent, QUIET).await;

    // A later datagram from the evicted client registers it again, as a new join.
    send(&silent, b"^hb^", chat).await;
    wait_for_event(&mut events, "chat_join again after eviction", |e| match e.kind {
        EventKind::ChatJoin { peer, clients, .. } if peer == silent_addr => {
            assert_eq!(clients, 2);
            Some(())
        }
        EventKind::ChatHeartbeat { peer, .. } if peer == silent_addr => {
            panic!("an evicted client's heartbeat must count as a new registration")
        }
        _ => None,
    })
    .await;
    send(&talker, b"welcome back", chat).await;
    for client in [&silent, &talker] {
        assert_eq!(recv(client).await.0, ack(local(&talker), b"welcome back"));
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_non_utf8_bytes_do_not_stall_the_server() {
    let relay = TestRelay::start().await;
    let chat = relay.addr(ServerName::Chat);
    let client = udp_client().await;
    let me = local(&client);

    let garbage = b"\xff\xfe\x80 \xc3\x28 \x00";
    assert_eq!(round_trip(&client, garbage, chat).await, ack(me, b"\xff\xfe\x80 \xc3\x28 \x00"));
    assert_eq!(round_trip(&client, b"\xc0\n", chat).await, ack(me, b"\xc0"));
    // Still serving, and still reading text.
    assert_eq!(round_trip(&client, b"still alive?", chat).await, ack(me, b"still alive?"));
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_keeps_serving_after_a_client_socket_vanishes() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (gone, stays) = (udp_client().await, udp_client().await);
    join_chat(&relay, &mut events, &gone).await;
    join_chat(&relay, &mut events, &stays).await;
    drop(gone); // its port now answers with ICMP port unreachable

    for text in [&b"first"[..], b"second", b"third"] {
        assert_eq!(round_trip(&stays, text, chat).await, ack(local(&stays), text));
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_refuses_clients_beyond_the_cap_and_keeps_serving_the_rest() {
    let relay = TestRelay::start_with(|c| c.chat.max_clients = 2).await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (a, b, late) = (udp_client().await, udp_client().await, udp_client().await);
    let late_addr = local(&late);
    join_chat(&relay, &mut events, &a).await;
    join_chat(&relay, &mut events, &b).await;

    send(&late, b"let me in", chat).await;
    let limit = wait_for_event(&mut events, "chat_refused", |e| match e.kind {
        EventKind::ChatRefused { peer, limit, .. } if peer == late_addr => Some(limit),
        EventKind::ChatJoin { peer, .. } if peer == late_addr => {
            panic!("a third client joined a chat capped at 2")
        }
        _ => None,
    })
    .await;
    assert_eq!(limit, 2);

    send(&a, b"still here", chat).await;
    for client in [&a, &b] {
        assert_eq!(recv(client).await.0, ack(local(&a), b"still here"));
    }
    assert_silent(&late, QUIET).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_sends_end_to_every_live_client_on_shutdown() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let (a, b, quitter, stranger) =
        (udp_client().await, udp_client().await, udp_client().await, udp_client().await);
    let quitter_addr = local(&quitter);
    join_chat(&relay, &mut events, &a).await;
    join_chat(&relay, &mut events, &b).await;
    join_chat(&relay, &mut events, &quitter).await;
    send(&quitter, b"quit", chat).await;
    wait_for_event(&mut events, "chat_leave", |e| match e.kind {
        EventKind::ChatLeave { peer, .. } if peer == quitter_addr => Some(()),
        _ => None,
    })
    .await;

    relay.shutdown().await;
    for client in [&a, &b] {
        let (got, from) = recv(client).await;
        assert_eq!((got.as_slice(), from), (&b"end"[..], chat));
    }
    for client in [&quitter, &stranger] {
        assert_silent(client, QUIET).await;
    }
    let clients = wait_for_event(&mut events, "chat_end", |e| match e.kind {
        EventKind::ChatEnd { clients, .. } => Some(clients),
        _ => None,
    })
    .await;
    assert_eq!(clients, 2);
}

// ---------------------------------------------------------------------------------------------
// lossy

#[tokio::test]
async fn lossy_with_drop_one_answers_nothing() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let mut events = relay.bus.subscribe();
    let lossy = relay.addr(ServerName::Lossy);
    let client = udp_client().await;
    let me = local(&client);

    for i in 0..20 {
        send(&client, format!("#{i} please answer").as_bytes(), lossy).await;
    }
    let mut drops = 0;
    wait_for_event(&mut events, "20 drops", |e| match e.kind {
        EventKind::ServerDrop { server: ServerName::Lossy, from, reason: DropReason::Loss, .. }
            if from == me =>
        {
            drops += 1;
            (drops == 20).then_some(())
        }
        EventKind::ServerSend { server: ServerName::Lossy, .. } => panic!("answered with drop 1.0: {e:?}"),
        _ => None,
    })
    .await;
    assert_silent(&client, QUIET).await;
    relay.shutdown().await;
}

#[tokio::test]
async fn lossy_with_drop_zero_answers_with_the_length() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 0.0).await;
    let lossy = relay.addr(ServerName::Lossy);
    let client = udp_client().await;

    let cases: [(&[u8], &str); 4] = [
        (b"This is another message", "Your data was 23 bytes long"),
        (b"", "Your data was 0 bytes long"),
        (b"\xff\x00\xfe", "Your data was 3 bytes long"),
        (&[b'x'; 1400], "Your data was 1400 bytes long"),
    ];
    for (request, expected) in cases {
        let answer = round_trip(&client, request, lossy).await;
        assert_eq!(String::from_utf8_lossy(&answer), expected);
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn lossy_echoes_request_ids() {
    let relay = TestRelay::start().await;
    let lossy = relay.addr(ServerName::Lossy);
    let client = udp_client().await;

    let cases: [(&[u8], &str); 7] = [
        (b"#a7-Z_9 hi", "#a7-Z_9 Your data was 10 bytes long"),
        (b"#1 ", "#1 Your data was 3 bytes long"),
        (b"#abcdefghij0123456789 x", "#abcdefghij0123456789 Your data was 23 bytes long"),
        // Not request IDs: 21 characters, a forbidden character, empty, no space, no '#'.
        (b"#abcdefghij0123456789X x", "Your data was 24 bytes long"),
        (b"#bad! x", "Your data was 7 bytes long"),
        (b"# x", "Your data was 3 bytes long"),
        (b"#nospace", "Your data was 8 bytes long"),
    ];
    for (request, expected) in cases {
        let answer = round_trip(&client, request, lossy).await;
        assert_eq!(
            String::from_utf8_lossy(&answer),
            expected,
            "request {:?}",
            String::from_utf8_lossy(request)
        );
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn lossy_delay_holds_the_answer() {
    const DELAY: Duration = Duration::from_millis(300);
    let relay = TestRelay::start_with(|c| c.lossy.delay = DELAY).await;
    let mut events = relay.bus.subscribe();
    let lossy = relay.addr(ServerName::Lossy);
    let client = udp_client().await;

    let asked = Instant::now();
    send(&client, b"#late hello", lossy).await;
    let (answer, from) = recv(&client).await;
    let waited = asked.elapsed();
    assert_eq!((answer.as_slice(), from), (&b"#late Your data was 11 bytes long"[..], lossy));
    assert!(waited >= DELAY, "the answer came after {waited:?}, before the {DELAY:?} delay");
    let delay_ms = wait_for_event(&mut events, "server_send with delay_ms", |e| match e.kind {
        EventKind::ServerSend { server: ServerName::Lossy, delay_ms, .. } => Some(delay_ms),
        _ => None,
    })
    .await;
    let delay_ms = delay_ms.expect("a held answer reports how long it was held");
    assert!(delay_ms >= 300, "reported delay {delay_ms} ms");
    relay.shutdown().await;
}

#[tokio::test]
async fn lossy_jitter_spreads_the_answers() {
    let relay = TestRelay::start_with(|c| c.lossy.jitter = Duration::from_millis(200)).await;
    let mut events = relay.bus.subscribe();
    let lossy = relay.addr(ServerName::Lossy);
    let client = udp_client().await;

    for i in 0..8 {
        send(&client, format!("#{i} ping").as_bytes(), lossy).await;
    }
    let mut ids = Vec::new();
    for _ in 0..8 {
        let (answer, _) = recv(&client).await;
        let answer = String::from_utf8(answer).expect("answers are text");
        let (id, rest) = answer.split_once(' ').expect("an ID, then the answer");
        assert_eq!(rest, "Your data was 7 bytes long");
        ids.push(id.to_owned());
    }
    ids.sort();
    assert_eq!(ids, ["#0", "#1", "#2", "#3", "#4", "#5", "#6", "#7"], "each request answered once");

    let mut delays = Vec::new();
    wait_for_event(&mut events, "8 server_send events", |e| match e.kind {
        EventKind::ServerSend { server: ServerName::Lossy, delay_ms, .. } => {
            delays.push(delay_ms.expect("with jitter every answer is held"));
            (delays.len() == 8).then_some(())
        }
        _ => None,
    })
    .await;
    let (min, max) = (delays.iter().min(), delays.iter().max());
    assert!(min < max, "jitter of up to 200 ms gave every answer the same delay: {delays:?}");
    relay.shutdown().await;
}

#[tokio::test]
async fn lossy_flood_of_delayed_datagrams_is_shed_beyond_max_pending() {
    const MAX_PENDING: usize = 5;
    let relay = TestRelay::start_with(|c| {
        c.lossy.delay = Duration::from_millis(800);
        c.lossy.max_pending = MAX_PENDING;
    })
    .await;
    let mut events = relay.bus.subscribe();
    let lossy = relay.addr(ServerName::Lossy);
    let client = udp_client().await;
    let me = local(&client);

    for i in 0..20 {
        send(&client, format!("#{i} flood").as_bytes(), lossy).await;
    }
    let mut shed = 0;
    wait_for_event(&mut events, "15 sheds", |e| match e.kind {
        EventKind::ServerDrop { server: ServerName::Lossy, from, reason, .. } if from == me => {
            assert_eq!(reason, DropReason::Shed, "drop is 0.0, so every drop is a shed");
            shed += 1;
            (shed == 20 - MAX_PENDING).then_some(())
        }
        _ => None,
    })
    .await;

    // The held five, the first five to arrive, still come out after their delay.
    let mut ids = Vec::new();
    for _ in 0..MAX_PENDING {
        let (answer, _) = recv(&client).await;
        let answer = String::from_utf8(answer).expect("answers are text");
        ids.push(answer.split_once(' ').expect("an ID").0.to_owned());
    }
    assert_eq!(ids, ["#0", "#1", "#2", "#3", "#4"]);
    assert_silent(&client, QUIET).await;
    let more_sheds = drain_events(&mut events)
        .iter()
        .filter(|e| matches!(e.kind, EventKind::ServerDrop { reason: DropReason::Shed, .. }))
        .count();
    assert_eq!(more_sheds, 0, "exactly 15 of 20 were shed");
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// events

#[tokio::test]
async fn events_carry_seq_server_and_peer() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let (echo, chat, lossy) =
        (relay.addr(ServerName::Echo), relay.addr(ServerName::Chat), relay.addr(ServerName::Lossy));
    let client = udp_client().await;
    let me = local(&client);

    // Every event from here on is collected, in bus order.
    let mut seen = vec![];
    round_trip(&client, b"hi", echo).await;
    send(&client, b"reg", chat).await;
    send(&client, b"^hb^", chat).await;
    assert_eq!(round_trip(&client, b"hello", chat).await, ack(me, b"hello"));
    send(&client, b"quit", chat).await;
    wait_for_event(&mut events, "chat_leave", |e| {
        seen.push(e.clone());
        matches!(e.kind, EventKind::ChatLeave { .. }).then_some(())
    })
    .await;
    within(
        "dropping everything at the lossy server",
        relay.handle.configure(ServerName::Lossy, Setting::Drop(1.0), None, Scope::All),
    )
    .await
    .expect("the lossy server accepts drop 1.0");
    send(&client, b"lost", lossy).await;
    wait_for_event(&mut events, "server_drop", |e| {
        seen.push(e.clone());
        matches!(e.kind, EventKind::ServerDrop { .. }).then_some(())
    })
    .await;

    let kinds: Vec<String> = seen
        .iter()
        .map(|e| {
            serde_json::to_value(e).expect("events serialize")["kind"].as_str().unwrap_or("?").to_owned()
        })
        .collect();
    for window in seen.windows(2) {
        assert!(window[0].seq < window[1].seq, "seq must increase: {kinds:?}");
        assert!(window[0].t_us <= window[1].t_us, "time must not go back: {kinds:?}");
    }
    let find = |wanted: &dyn Fn(&EventKind) -> bool, what: &str| {
        seen.iter()
            .find(|e| wanted(&e.kind))
            .unwrap_or_else(|| panic!("no {what} among {kinds:?}"))
            .kind
            .clone()
    };
    let echo_recv =
        find(&|k| matches!(k, EventKind::ServerRecv { server: ServerName::Echo, .. }), "echo recv");
    let echo_send =
        find(&|k| matches!(k, EventKind::ServerSend { server: ServerName::Echo, .. }), "echo send");
    let (Some(asked), Some(answered)) = (echo_recv.dg(), echo_send.dg()) else { panic!("unnamed datagrams") };
    assert_ne!(asked, answered, "an answer is a datagram of its own");
    assert_eq!(
        echo_send,
        EventKind::ServerSend {
            server: ServerName::Echo,
            dg: answered,
            reply_to: Some(asked),
            from: echo,
            to: me,
            len: 2,
            payload: protocol::Payload::preview(b"hi"),
            delay_ms: None
        }
    );
    assert!(matches!(
        find(&|k| matches!(k, EventKind::ChatJoin { .. }), "chat_join"),
        EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 10_000 } if peer == me
    ));
    assert!(matches!(
        find(&|k| matches!(k, EventKind::ChatHeartbeat { .. }), "chat_heartbeat"),
        EventKind::ChatHeartbeat { server: ServerName::Chat, peer, .. } if peer == me
    ));
    assert!(matches!(
        find(&|k| matches!(k, EventKind::ChatBroadcast { .. }), "chat_broadcast"),
        EventKind::ChatBroadcast { server: ServerName::Chat, from, recipients: 1, len: 5, .. } if from == me
    ));
    assert!(matches!(
        find(&|k| matches!(k, EventKind::ChatLeave { .. }), "chat_leave"),
        EventKind::ChatLeave { server: ServerName::Chat, peer, clients: 0 } if peer == me
    ));
    let drop = find(&|k| matches!(k, EventKind::ServerDrop { .. }), "server_drop");
    let lossy_recv =
        find(&|k| matches!(k, EventKind::ServerRecv { server: ServerName::Lossy, .. }), "lossy recv");
    assert_eq!(
        drop,
        EventKind::ServerDrop {
            server: ServerName::Lossy,
            dg: lossy_recv.dg().expect("named"),
            from: me,
            to: lossy,
            len: 4,
            reason: DropReason::Loss
        }
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn echo_events_name_the_server_and_the_peer() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let echo = relay.addr(ServerName::Echo);
    let client = udp_client().await;
    let me = local(&client);

    round_trip(&client, b"\x00\xff", echo).await;
    let recv_event = wait_for_event(&mut events, "server_recv", |e| {
        matches!(e.kind, EventKind::ServerRecv { .. }).then(|| (e.seq, e.kind.clone()))
    })
    .await;
    let send_event = wait_for_event(&mut events, "server_send", |e| {
        matches!(e.kind, EventKind::ServerSend { .. }).then(|| (e.seq, e.kind.clone()))
    })
    .await;
    assert!(recv_event.0 < send_event.0, "the receive is numbered before the answer");
    let dg = recv_event.1.dg().expect("named");
    assert!(matches!(send_event.1, EventKind::ServerSend { reply_to: Some(r), .. } if r == dg));
    assert_eq!(
        recv_event.1,
        EventKind::ServerRecv {
            server: ServerName::Echo,
            dg,
            from: me,
            to: echo,
            len: 2,
            payload: protocol::Payload::preview(b"\x00\xff")
        }
    );
    relay.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// the OS

/// Not the relay's behaviour but the kernel's, which the relay and its lessons rely on: a
/// *connected* UDP socket learns of ICMP port unreachable as `ECONNREFUSED` on its next call.
#[tokio::test]
async fn connected_socket_to_a_closed_port_gets_connection_refused() {
    let client = udp_client().await;
    let closed_port = {
        let placeholder = udp_client().await;
        local(&placeholder)
    }; // dropped here: nothing listens on that port now
    within("connecting", client.connect(closed_port)).await.expect("connect never fails for UDP");
    within("sending", client.send(b"anyone?")).await.expect("the first send succeeds");
    let mut buf = [0u8; 64];
    let err = within("receiving the refusal", client.recv(&mut buf))
        .await
        .expect_err("nothing listens there, so recv must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
}
