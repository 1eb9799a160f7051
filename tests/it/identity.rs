//! Every datagram has an identity, and the relay can stage every socket lesson: the `dg` chain
//! from send to arrival, receive buffers, `nobody`, UDP's 65,507-byte limit, frames too large,
//! and crowds. Over a real WebSocket, with the tutorials' Python clients where they have one.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use protocol::ServerName;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{TestRelay, recv, udp_client, within};
use crate::tutorial::{assert_succeeded, host_port, python};
use crate::ws::{Ws, connect};

async fn open(ws: &mut Ws, socket: &str, open: Value) -> Value {
    let mut command = json!({"op":"open","socket":socket});
    command.as_object_mut().expect("object").extend(open.as_object().expect("object").clone());
    ws.send(command).await;
    ws.event("client_open", Some(socket)).await
}

/// Collects events until `last` says the story is over; returns them in order.
async fn events_until(ws: &mut Ws, mut last: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    ws.wait_for("the end of the exchange", |m| {
        if m["type"] == "event" {
            seen.push(m.clone());
        }
        m["type"] == "event" && last(m)
    })
    .await;
    seen
}

fn one<'a>(events: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<_> = events.iter().filter(|e| e["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} in {events:#?}");
    found[0]
}

/// Sends `text` on `socket` and checks the whole chain of names: the page socket's send and
/// the server's receive share one `dg`; the server's answer names it in `reply_to`, and the
/// page socket's receive shares the answer's `dg`.
async fn assert_chain(ws: &mut Ws, socket: &str, text: &str, server: &str) -> Vec<Value> {
    ws.send(json!({"op":"send","socket":socket,"text":text})).await;
    let events = events_until(ws, |e| e["kind"] == "client_recv" && e["socket"] == socket).await;
    let sent = one(&events, "client_send");
    let received = one(&events, "server_recv");
    let answered = one(&events, "server_send");
    let got = one(&events, "client_recv");
    assert_eq!(received["server"], server);
    let dg = sent["dg"].as_u64().expect("client_send has a dg");
    assert_eq!(received["dg"], dg, "the server received the datagram the socket sent");
    assert_eq!(answered["reply_to"], dg, "the answer names what it answers");
    assert_ne!(answered["dg"], dg, "an answer is a datagram of its own");
    assert_eq!(got["dg"], answered["dg"], "the socket received the answer the server sent");
    events
}

#[tokio::test]
async fn echo_upper_and_lossy_answers_keep_their_names_from_send_to_arrival() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    for server in ["echo", "upper", "lossy"] {
        open(&mut ws, server, json!({"server":server})).await;
        assert_chain(&mut ws, server, "hello", server).await;
        // A second datagram gets new names.
        let again = assert_chain(&mut ws, server, "hello", server).await;
        assert!(one(&again, "client_send")["dg"].as_u64() > Some(1));
    }
    // Names are unique within the run.
    ws.send(json!({"op":"send","socket":"echo","text":"x"})).await;
    let events = events_until(&mut ws, |e| e["kind"] == "client_recv").await;
    let names: BTreeSet<_> = events.iter().filter_map(|e| e["dg"].as_u64()).collect();
    assert_eq!(names.len(), 2, "one send, one answer: {events:#?}");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_held_lossy_answer_still_names_the_request_it_answers() {
    let relay = TestRelay::start_with(|c| c.lossy.delay = Duration::from_millis(150)).await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "l", json!({"server":"lossy"})).await;
    let events = assert_chain(&mut ws, "l", "#7 late", "lossy").await;
    let held = one(&events, "server_send")["delay_ms"].as_u64().expect("delay_ms");
    assert!(held >= 150, "held {held} ms, at least the delay");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_chat_message_is_a_datagram_and_each_copy_another_to_a_page_socket_and_an_outside_client() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"subscribe","scope":"all"})).await;
    let page = open(&mut ws, "c", json!({"server":"chat"})).await;
    ws.send(json!({"op":"send","socket":"c","text":"reg"})).await;
    ws.event("chat_join", None).await;

    // The tutorial's chat client registers, says something, reads its ack and quits.
    let output = python("chat_client.py", &host_port(&relay, ServerName::Chat)).await;
    assert_succeeded("chat_client.py", &output);

    let broadcast = ws.event("chat_broadcast", None).await;
    let message = broadcast["dg"].as_u64().expect("chat_broadcast names the message");
    let outsider = broadcast["from"].as_str().expect("from").to_owned();
    let (ip, port) = outsider.rsplit_once(':').expect("address");
    let ack = format!("ack: {ip} {port}\n");
    let mut copies = HashMap::new();
    let mut page_got = None;
    ws.wait_for("both copies and the page socket's receipt", |m| {
        if m["kind"] == "server_send" && m["reply_to"] == message {
            copies.insert(m["to"].as_str().unwrap_or_default().to_owned(), m.clone());
        }
        if m["kind"] == "client_recv" && m["socket"] == "c" {
            page_got = Some(m.clone());
        }
        copies.len() == 2 && page_got.is_some()
    })
    .await;
    let page_copy = &copies[page["local"].as_str().expect("local")];
    let outside_copy = &copies[&outsider];
    for copy in [page_copy, outside_copy] {
        assert!(
            copy["text"].as_str().is_some_and(|t| t.starts_with(&ack)),
            "the bytes each client got: {copy}"
        );
    }
    assert_ne!(page_copy["dg"], outside_copy["dg"], "each copy is a datagram of its own");
    let page_got = page_got.expect("received");
    assert_eq!(page_got["dg"], page_copy["dg"], "the page socket got its copy");
    assert_eq!(page_got["text"], page_copy["text"]);
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_small_receive_buffer_keeps_1024_of_2000_bytes_like_the_tutorials_recvfrom() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let opened = open(&mut ws, "small", json!({"server":"echo","recv_buffer":1024})).await;
    assert_eq!(opened["recv_buffer"], 1024);
    ws.send(json!({"op":"send","socket":"small","text":"a".repeat(2000)})).await;
    let got = ws.event("client_recv", Some("small")).await;
    assert_eq!((got["len"].clone(), got["kept"].clone()), (json!(2000), json!(1024)));

    // The kernel does the same to a Python client reading with recvfrom(1024).
    let mut args = host_port(&relay, ServerName::Echo);
    args.extend(["2000".into(), "1024".into()]);
    let output = python("small_buffer_client.py", &args).await;
    assert_succeeded("small_buffer_client.py", &output);
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "sent 2000 got 1024");

    for bad in [0, 65_536] {
        ws.send(json!({"op":"open","socket":"bad","server":"echo","recv_buffer":bad})).await;
        assert!(ws.error("bad_command").await["message"].as_str().is_some_and(|m| m.contains("recv_buffer")));
    }
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn nobody_listens_there_connected_sockets_are_refused_and_datagrams_vanish_either_way() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let nobody = ws.hello["servers"]["nobody"].as_str().expect("hello lists nobody").to_owned();
    assert_eq!(nobody, relay.handle.nobody.to_string());

    let opened = open(&mut ws, "conn", json!({"server":"nobody"})).await;
    assert_eq!(
        (opened["remote"].as_str(), opened["server"].as_str()),
        (Some(nobody.as_str()), Some("nobody"))
    );
    ws.send(json!({"op":"send","socket":"conn","text":"anyone?"})).await;
    let events = events_until(&mut ws, |e| e["kind"] == "client_refused").await;
    let sent = one(&events, "client_send");
    let vanished = one(&events, "client_vanished");
    assert_eq!(
        (vanished["dg"].clone(), vanished["reason"].clone()),
        (sent["dg"].clone(), json!("no_listener"))
    );
    assert_eq!(one(&events, "client_refused")["peer"], nobody.as_str());

    open(&mut ws, "unconn", json!({"server":"nobody","connect":false})).await;
    ws.send(json!({"op":"send","socket":"unconn","text":"anyone?"})).await;
    let sent = ws.event("client_send", Some("unconn")).await;
    let vanished = ws.event("client_vanished", Some("unconn")).await;
    assert_eq!(vanished["dg"], sent["dg"], "the page learns at once that it never arrived");
    ws.assert_quiet(Duration::from_millis(500)).await;

    // If another program binds the port, the relay sends nothing there.
    let squatter =
        within("binding the nobody port", tokio::net::UdpSocket::bind(&nobody)).await.expect("bind");
    ws.send(json!({"op":"send","socket":"unconn","text":"secret"})).await;
    let failed = ws.event("client_send_failed", Some("unconn")).await;
    assert!(failed["error"].as_str().is_some_and(|e| e.contains("another program")), "{failed}");
    let mut buf = [0u8; 64];
    let heard = tokio::time::timeout(Duration::from_millis(300), squatter.recv_from(&mut buf)).await;
    assert!(heard.is_err(), "the squatter heard {heard:?}");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn with_default_flags_0_and_65507_bytes_go_through_and_65508_is_refused_by_udp() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    assert_eq!(ws.hello["limits"]["datagram_bytes"], 65_507);
    open(&mut ws, "e", json!({"server":"echo"})).await;
    ws.send(json!({"op":"send","socket":"e","text":""})).await;
    assert_eq!(ws.event("client_recv", Some("e")).await["len"], 0);

    ws.send(json!({"op":"send","socket":"e","hex":"ab".repeat(65_507)})).await;
    let got = ws.event("client_recv", Some("e")).await;
    assert_eq!((got["len"].clone(), got["kept"].clone()), (json!(65_507), json!(65_507)));
    ws.send(json!({"op":"send","socket":"e","text":"x".repeat(65_507)})).await;
    assert_eq!(ws.event("client_recv", Some("e")).await["len"], 65_507);

    ws.send(json!({"op":"send","socket":"e","text":"x".repeat(65_508)})).await;
    let failed = ws.event("client_send_failed", Some("e")).await;
    assert_eq!((failed["len"].clone(), failed["errno"].clone()), (json!(65_508), json!("EMSGSIZE")));
    let error = failed["error"].as_str().expect("error");
    assert!(error.contains("Message too long") && error.contains("65507"), "{error}");
    assert!(!error.contains("--"), "UDP's limit, not a flag of ours: {error}");
    // The session and the socket carry on.
    ws.send(json!({"op":"send","socket":"e","text":"still here"})).await;
    assert_eq!(ws.event("client_recv", Some("e")).await["text"], "still here");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn the_byte_budget_protects_the_relay_and_names_its_flag() {
    let relay = TestRelay::start_with(|c| c.limits.bytes_per_sec = 100_000).await;
    let mut ws = connect(relay.http()).await;
    assert_eq!(ws.hello["limits"]["bytes_per_sec"], 100_000);
    open(&mut ws, "e", json!({"server":"echo"})).await;
    ws.send(json!({"op":"send","socket":"e","text":"x".repeat(60_000)})).await;
    ws.event("client_recv", Some("e")).await;
    ws.send(json!({"op":"send","socket":"e","text":"x".repeat(60_000)})).await;
    let error = ws.error("limit").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("--max-bytes-per-sec")), "{error}");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_frame_larger_than_any_command_is_refused_and_one_too_large_to_read_closes_with_1009() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send_raw(Message::text(" ".repeat(500_000))).await;
    let error = ws.error("limit").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("at most")), "{error}");
    open(&mut ws, "e", json!({"server":"echo"})).await;

    ws.send_raw(Message::text(" ".repeat(2 << 20))).await;
    let (code, reason) = ws.closed().await.expect("a Close frame, never a silent close");
    assert_eq!(code, 1009);
    assert!(reason.contains("cannot be read"), "{reason}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_send_just_before_a_close_still_goes_out() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    for round in 0..20 {
        let name = format!("s{round}");
        open(&mut ws, &name, json!({"server":"echo"})).await;
        ws.send(json!({"op":"send","socket":name,"text":"last words"})).await;
        ws.send(json!({"op":"close","socket":name})).await;
        let events = events_until(&mut ws, |e| e["kind"] == "client_close" && e["socket"] == name).await;
        assert_eq!(one(&events, "client_send")["text"], "last words", "round {round}");
    }
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_crowd_of_100_sends_concurrently_from_100_ports_and_close_stops_it_all() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"crowd","socket":"k","server":"upper","clients":100,"every_ms":1000,"text":"hi"}))
        .await;
    let mut opened = BTreeSet::new();
    let mut senders = Vec::new();
    let mut answered = BTreeSet::new();
    ws.wait_for("every member to send and hear back", |m| {
        match m["kind"].as_str() {
            Some("client_open") => {
                opened.insert(m["local"].as_str().unwrap_or_default().to_owned());
            }
            Some("client_send") => senders.push(m["member"].as_u64().expect("member")),
            Some("client_recv") => {
                assert_eq!(m["text"], "HI");
                answered.insert(m["member"].as_u64().expect("member"));
            }
            _ => {}
        }
        answered.len() == 100
    })
    .await;
    assert_eq!(opened.len(), 100, "each member on its own port");
    let first: Vec<_> = senders.iter().take(100).collect();
    let mut sorted = first.clone();
    sorted.sort();
    assert_ne!(first, sorted, "members send independently, not in turn");

    ws.send(json!({"op":"send","socket":"k","text":"x"})).await;
    ws.error("bad_command").await;
    ws.send(json!({"op":"close","socket":"k"})).await;
    let mut closed = BTreeSet::new();
    ws.wait_for("every member to close", |m| {
        if m["kind"] == "client_close" {
            closed.insert(m["member"].as_u64().expect("member"));
        }
        closed.len() == 100
    })
    .await;
    let quiet = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            let m = ws.next().await;
            if m["kind"] == "client_send" {
                return m;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "a closed crowd sent {quiet:?}");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_crowd_with_heartbeats_stays_registered_and_crowds_are_bounded() {
    let relay = TestRelay::start_with(|c| c.chat.timeout = Duration::from_millis(600)).await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"crowd","socket":"k","server":"chat","clients":3,"every_ms":0,"text":"hi",
                   "heartbeat":200}))
        .await;
    let mut joined = 0;
    ws.wait_for("three joins", |m| {
        joined += usize::from(m["kind"] == "chat_join");
        joined == 3
    })
    .await;
    // Well past the timeout, nobody was evicted.
    let evicted = tokio::time::timeout(Duration::from_millis(1500), async {
        loop {
            if ws.next().await["kind"] == "chat_evict" {
                return;
            }
        }
    })
    .await;
    assert!(evicted.is_err(), "a heartbeating member was evicted");

    ws.send(json!({"op":"crowd","socket":"big","server":"echo","clients":98,"every_ms":1000,"text":"x"}))
        .await;
    assert!(ws.error("limit").await["message"].as_str().is_some_and(|m| m.contains("--max-crowd")));
    ws.send(json!({"op":"crowd","socket":"fast","server":"echo","clients":50,"every_ms":100,"text":"x"}))
        .await;
    assert!(ws.error("limit").await["message"].as_str().is_some_and(|m| m.contains("--max-sends-per-sec")));
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn an_outside_clients_datagram_is_named_where_it_arrives() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let client = udp_client().await;
    within("send", client.send_to(b"from nc", relay.addr(ServerName::Echo))).await.expect("send");
    recv(&client).await;
    let mut recv_dg = None;
    let mut reply = None;
    within("events", async {
        while reply.is_none() {
            let event = events.recv().await.expect("event");
            match &event.kind {
                protocol::EventKind::ServerRecv { dg, .. } => recv_dg = Some(*dg),
                protocol::EventKind::ServerSend { reply_to, .. } => reply = Some(*reply_to),
                _ => {}
            }
        }
    })
    .await;
    assert!(recv_dg.is_some_and(|d| d > 0));
    assert_eq!(reply, Some(recv_dg), "the echo names the outside client's datagram");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_strangers_datagram_reaches_only_the_unconnected_socket() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let conn = open(&mut ws, "conn", json!({"server":"echo"})).await;
    let unconn = open(&mut ws, "unconn", json!({"server":"echo","connect":false})).await;
    // Another socket of the same session may be aimed at them: a stranger to both.
    open(&mut ws, "to-unconn", json!({"target":unconn["local"],"connect":false})).await;
    open(&mut ws, "to-conn", json!({"target":conn["local"]})).await;

    ws.send(json!({"op":"send","socket":"to-unconn","text":"hi, stranger here"})).await;
    let got = ws.event("client_recv", Some("unconn")).await;
    assert_eq!(got["text"], "hi, stranger here");
    assert_ne!(got["from"], relay.addr(ServerName::Echo).to_string(), "it came from the stranger");

    ws.send(json!({"op":"send","socket":"to-conn","text":"hi, stranger here"})).await;
    // The connected socket accepts only its peer: the kernel answers the stranger with ICMP
    // port unreachable, as if nothing listened. The relay, which holds both, says the
    // datagram vanished, and why, so it is not drawn in flight for ever.
    let sent = ws.event("client_send", Some("to-conn")).await;
    let vanished = ws.event("client_vanished", Some("to-conn")).await;
    assert_eq!(
        (vanished["dg"].clone(), vanished["to"].clone(), vanished["reason"].clone()),
        (sent["dg"].clone(), conn["local"].clone(), json!("not_its_peer"))
    );
    let refused = ws.event("client_refused", Some("to-conn")).await;
    assert_eq!(refused["peer"], conn["local"]);
    let quiet = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            let m = ws.next().await;
            if m["kind"] == "client_recv" && m["socket"] == "conn" {
                return m;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "the connected socket heard a stranger: {quiet:?}");

    ws.send(json!({"op":"open","socket":"far","target":"127.0.0.1:9"})).await;
    ws.error("target_not_allowed").await;
    ws.close().await;
    relay.shutdown().await;
}
