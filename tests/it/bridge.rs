//! The WebSocket bridge, driven by a plain WebSocket client as a script would: the hello,
//! every op, every event kind, every error code, the limits, and the Origin and Host guards.

use std::time::{Duration, Instant};

use protocol::ServerName;
use serde_json::{Value, json};
use tokio::net::UdpSocket;

use crate::support::{TestRelay, recv, udp_client, within};
use crate::ws::{Ws, connect, try_connect};

async fn open(ws: &mut Ws, socket: &str, server: &str) -> Value {
    ws.send(json!({"op":"open","socket":socket,"server":server})).await;
    ws.event("client_open", Some(socket)).await
}

#[tokio::test]
async fn hello_lists_version_session_servers_and_limits() {
    let relay = TestRelay::start().await;
    let ws = connect(relay.http()).await;
    let hello = &ws.hello;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["version"], 1);
    assert!(hello["session"].as_str().is_some_and(|s| !s.is_empty()));
    for server in ServerName::ALL {
        assert_eq!(hello["servers"][server.as_str()], relay.addr(server).to_string());
    }
    for limit in ["sessions", "sockets_per_session", "sends_per_sec", "datagram_bytes", "heartbeat_min_ms"] {
        assert!(hello["limits"][limit].as_u64().is_some_and(|n| n > 0), "limit {limit} in {hello}");
    }
    assert_eq!(hello["limits"]["chat_clients"], 10_000);
    assert_eq!(hello["settings"]["lossy"]["drop"], 0.0);
    assert_eq!(hello["settings"]["lossy"]["seed"], 42);
    assert_eq!(hello["settings"]["chat"]["timeout_ms"], 10_000);
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn echo_round_trip_reports_every_step() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let opened = open(&mut ws, "a", "echo").await;
    assert_eq!(opened["remote"], relay.addr(ServerName::Echo).to_string());
    assert_eq!(opened["connect"], true);
    let local = opened["local"].clone();

    ws.send(json!({"op":"send","socket":"a","text":"hello"})).await;
    let sent = ws.event("client_send", Some("a")).await;
    assert_eq!(
        (sent["len"].clone(), sent["text"].clone(), sent["from"].clone()),
        (json!(5), json!("hello"), local.clone())
    );
    let server_recv = ws.event("server_recv", None).await;
    assert_eq!((server_recv["server"].clone(), server_recv["from"].clone()), (json!("echo"), local.clone()));
    let server_send = ws.event("server_send", None).await;
    assert_eq!(server_send["to"], local);
    let got = ws.event("client_recv", Some("a")).await;
    assert_eq!(got["text"], "hello");
    assert_eq!(got["from"], relay.addr(ServerName::Echo).to_string());
    assert!(got["seq"].as_u64() > sent["seq"].as_u64());
    assert!(got["t_us"].as_u64() >= sent["t_us"].as_u64());
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn hex_payloads_go_out_as_bytes_and_binary_replies_come_back_as_hex() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "u", "upper").await;
    ws.send(json!({"op":"send","socket":"u","hex":"61ff00"})).await;
    let got = ws.event("client_recv", Some("u")).await;
    assert_eq!(got["hex"], "41ff00");
    assert!(got.get("text").is_none());
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn unconnected_socket_uses_sendto() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"open","socket":"u","server":"echo","connect":false})).await;
    assert_eq!(ws.event("client_open", Some("u")).await["connect"], false);
    ws.send(json!({"op":"send","socket":"u","text":"x"})).await;
    assert_eq!(ws.event("client_recv", Some("u")).await["text"], "x");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn close_ends_the_socket() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "a", "echo").await;
    ws.send(json!({"op":"close","socket":"a"})).await;
    ws.event("client_close", Some("a")).await;
    ws.send(json!({"op":"send","socket":"a","text":"x"})).await;
    ws.error("unknown_socket").await;
    // The name is free again.
    open(&mut ws, "a", "echo").await;
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn errors_are_answered_and_the_session_stays_usable() {
    let relay = TestRelay::start_with(|c| c.limits.sockets_per_session = 1).await;
    let mut ws = connect(relay.http()).await;
    let cases: Vec<(Value, &str)> = vec![
        (json!("{not json"), "bad_json"),
        (json!([1, 2]), "bad_json"),
        (json!({"op":"fly"}), "unknown_op"),
        (json!({"socket":"a"}), "unknown_op"),
        (json!({"op":"send","socket":"a"}), "bad_command"),
        (json!({"op":"open","socket":"a","server":"nope"}), "bad_command"),
        (json!({"op":"send","socket":"zz","text":"x"}), "unknown_socket"),
        (json!({"op":"open","socket":"t","target":"127.0.0.1:9"}), "target_not_allowed"),
        (json!({"op":"send","socket":"a","hex":"abc"}), "bad_command"),
    ];
    for (command, code) in cases {
        match &command {
            Value::String(raw) => {
                ws.send_raw(tokio_tungstenite::tungstenite::Message::text(raw.clone())).await
            }
            other => ws.send(other.clone()).await,
        }
        let error = ws.error(code).await;
        assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
        // Still usable: a harmless command goes through.
        ws.send(json!({"op":"subscribe","scope":"own"})).await;
    }
    // A server's name given as the target: the error says where the name goes.
    ws.send(json!({"op":"open","socket":"t","target":"upper"})).await;
    let named = ws.error("bad_command").await;
    let message = named["message"].as_str().unwrap_or_default();
    assert!(message.contains(r#"open it with "server":"upper""#), "{message}");
    open(&mut ws, "a", "echo").await;
    ws.send(json!({"op":"open","socket":"a","server":"echo"})).await;
    let exists = ws.error("socket_exists").await;
    assert_eq!((exists["op"].clone(), exists["socket"].clone()), (json!("open"), json!("a")));
    ws.send(json!({"op":"open","socket":"b","server":"echo"})).await;
    ws.error("limit").await;
    ws.send(json!({"op":"send","socket":"a","text":"still works"})).await;
    assert_eq!(ws.event("client_recv", Some("a")).await["text"], "still works");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn retries_back_off_then_give_up_when_everything_is_dropped() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "l", "lossy").await;
    ws.send(json!({"op":"send","socket":"l","text":"anyone?",
                   "retry":{"initial_ms":20,"factor":2.0,"give_up_ms":200}}))
        .await;
    let mut waits = Vec::new();
    let giveup = ws
        .wait_for("give-up", |m| {
            if m["kind"] == "client_retry" {
                waits.push((m["attempt"].as_u64(), m["delay_ms"].as_u64()));
            }
            m["kind"] == "client_giveup"
        })
        .await;
    assert_eq!(waits, [(Some(2), Some(20)), (Some(3), Some(40)), (Some(4), Some(80))]);
    assert_eq!(giveup["attempts"], 4);
    assert!(giveup["waited_ms"].as_u64().is_some_and(|ms| ms >= 300), "{giveup}");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn default_retry_waits_grow_from_100ms() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "l", "lossy").await;
    ws.send(json!({"op":"send","socket":"l","text":"x","retry":true})).await;
    let first = ws.event("client_retry", Some("l")).await;
    assert_eq!((first["delay_ms"].clone(), first["next_wait_ms"].clone()), (json!(100), json!(200)));
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn request_ids_mark_late_replies_and_take_only_the_current_attempts_answer() {
    // The server holds every answer 300 ms; the client retries after 100, then 200 ms. So
    // the answers to attempts 1 and 2 arrive after attempt 3 was sent: late. Attempt 3's
    // answer (at 600 ms) is the answer, before attempt 4 would go out (at 700 ms).
    let relay = TestRelay::start_with(|c| c.lossy.delay = Duration::from_millis(300)).await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "l", "lossy").await;
    ws.send(json!({"op":"send","socket":"l","text":"hi","request_id":true,
                   "retry":{"initial_ms":100,"factor":2.0,"give_up_ms":2000}}))
        .await;
    let first = ws.event("client_send", Some("l")).await;
    assert_eq!(first["text"], "#1-1 hi");
    assert_eq!(first["req"], "1-1");
    let mut late = Vec::new();
    let answer = ws
        .wait_for("the answer", |m| {
            if m["kind"] == "client_duplicate" {
                late.push((m["req"].clone(), m["reason"].clone()));
            }
            m["kind"] == "client_recv"
        })
        .await;
    assert_eq!(late, [(json!("1-1"), json!("late")), (json!("1-2"), json!("late"))]);
    assert_eq!(answer["req"], "1-3");
    assert_eq!(answer["attempt"], 3);
    assert_eq!(answer["text"], "#1-3 Your data was 7 bytes long");
    assert!(answer["rtt_us"].as_u64().is_some_and(|rtt| rtt >= 300_000));
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_second_reply_to_an_answered_request_is_a_duplicate() {
    // An outside client replays the lossy server's answer to the browser's socket.
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let opened = ws_open_unconnected(&mut ws, "l", "lossy").await;
    ws.send(json!({"op":"send","socket":"l","text":"hi","request_id":true})).await;
    let answer = ws.event("client_recv", Some("l")).await;
    assert_eq!(answer["req"], "1-1");
    let replayer = udp_client().await;
    let to: std::net::SocketAddr = opened["local"].as_str().expect("local").parse().expect("addr");
    within("replaying", replayer.send_to(b"#1-1 Your data was 7 bytes long", to)).await.expect("send");
    let dup = ws.event("client_duplicate", Some("l")).await;
    assert_eq!((dup["req"].clone(), dup["reason"].clone()), (json!("1-1"), json!("duplicate")));
    ws.close().await;
    relay.shutdown().await;
}

async fn ws_open_unconnected(ws: &mut Ws, socket: &str, server: &str) -> Value {
    ws.send(json!({"op":"open","socket":socket,"server":server,"connect":false})).await;
    ws.event("client_open", Some(socket)).await
}

#[tokio::test]
async fn connected_socket_reports_econnrefused_from_an_allowed_port_with_no_listener() {
    let free = UdpSocket::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    // The socket above is closed again: nothing listens on `free` now.
    let relay = TestRelay::start_with(|c| c.allow_targets = vec![free]).await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"open","socket":"t","target":free.to_string(),"connect":true})).await;
    ws.event("client_open", Some("t")).await;
    ws.send(json!({"op":"send","socket":"t","text":"knock knock"})).await;
    let refused = ws.event("client_refused", Some("t")).await;
    assert_eq!(refused["peer"], free.to_string());
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_a_chat_client_alive_until_they_stop() {
    let relay = TestRelay::start_with(|c| c.chat.timeout = Duration::from_millis(400)).await;
    let mut ws = connect(relay.http()).await;
    let opened = open(&mut ws, "c", "chat").await;
    ws.send(json!({"op":"heartbeat","socket":"c","every_ms":100})).await;
    let join = ws.event("chat_join", None).await;
    assert_eq!(join["peer"], opened["local"]);
    assert_eq!(join["timeout_ms"], 400);
    // Alive well past the timeout while beating.
    let started = Instant::now();
    let mut beats = 0;
    while started.elapsed() < Duration::from_millis(700) {
        ws.event("chat_heartbeat", None).await;
        beats += 1;
    }
    assert!(beats >= 4, "{beats} heartbeats in 700 ms");
    ws.send(json!({"op":"heartbeat","socket":"c","every_ms":0})).await;
    let evicted = ws.wait_for("eviction", |m| m["kind"] == "chat_evict").await;
    assert_eq!(evicted["peer"], opened["local"]);
    assert!(evicted["silent_ms"].as_u64().is_some_and(|ms| ms >= 400));
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn chat_messages_broadcast_to_browser_sockets() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "c", "chat").await;
    ws.send(json!({"op":"send","socket":"c","text":"hello class"})).await;
    let broadcast = ws.event("chat_broadcast", None).await;
    assert_eq!(
        (broadcast["recipients"].clone(), broadcast["text"].clone()),
        (json!(1), json!("hello class"))
    );
    let got = ws.event("client_recv", Some("c")).await;
    let local = ws_local_port(&got);
    assert_eq!(got["text"], format!("ack: 127.0.0.1 {local}\nhello class\n"));
    ws.close().await;
    relay.shutdown().await;
}

fn ws_local_port(event: &Value) -> u16 {
    event["to"].as_str().and_then(|a| a.parse::<std::net::SocketAddr>().ok()).expect("to address").port()
}

#[tokio::test]
async fn projector_sees_outside_clients_and_other_sessions() {
    let relay = TestRelay::start().await;
    let mut projector = connect(relay.http()).await;
    projector.send(json!({"op":"subscribe","scope":"all"})).await;
    let mut student = connect(relay.http()).await;
    // Make sure the subscription took effect: configure is visible to everyone.
    projector.send(json!({"op":"configure","server":"lossy","drop":0.25})).await;
    let configured = projector.event("server_configured", None).await;
    assert_eq!((configured["setting"].clone(), configured["value"].clone()), (json!("drop"), json!(0.25)));

    let outside = udp_client().await;
    within("outside send", outside.send_to(b"from nc", relay.addr(ServerName::Echo))).await.expect("send");
    let _ = recv(&outside).await;
    let me = outside.local_addr().expect("addr").to_string();
    let seen =
        projector.wait_for("outside datagram", |m| m["kind"] == "server_recv" && m["from"] == me).await;
    assert_eq!(seen["text"], "from nc");

    // The student, not subscribed, saw the configure change but not the outside client.
    student.event("server_configured", None).await;
    open(&mut student, "s", "echo").await;
    student.send(json!({"op":"send","socket":"s","text":"mine"})).await;
    let sent = projector.event("client_send", Some("s")).await;
    assert_eq!(sent["session"], student.hello["session"]);
    let mut others = 0;
    student
        .wait_for("own reply", |m| {
            if m["from"] == me || m["to"] == me {
                others += 1;
            }
            m["kind"] == "client_recv"
        })
        .await;
    assert_eq!(others, 0, "a session without subscribe sees only its own traffic");
    projector.close().await;
    student.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn configure_validates_and_changes_live_settings() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"configure","server":"lossy","drop":1.5})).await;
    ws.error("bad_command").await;
    ws.send(json!({"op":"configure","server":"echo","drop":0.5})).await;
    ws.error("bad_command").await;
    ws.send(json!({"op":"configure","server":"chat","timeout_ms":3000})).await;
    let changed = ws.event("server_configured", None).await;
    assert_eq!((changed["server"].clone(), changed["value"].clone()), (json!("chat"), json!(3000.0)));
    // A command that changes several settings changes all of them or none: a refused delay
    // leaves the drop it came with unset, and the lossy server with no `timeout_ms` is no
    // reason to have changed its drop either.
    ws.send(json!({"op":"configure","server":"lossy","drop":0.25,"delay_ms":100_000_000})).await;
    let refused = ws.error("bad_command").await;
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("delay_ms")), "{refused}");
    ws.send(json!({"op":"configure","server":"lossy","drop":0.25,"timeout_ms":1000})).await;
    ws.error("bad_command").await;
    ws.send(json!({"op":"configure","server":"lossy","drop":1.0})).await;
    let changed = ws.event("server_configured", None).await;
    assert_eq!(
        (changed["setting"].clone(), changed["value"].clone()),
        (json!("drop"), json!(1.0)),
        "the first change"
    );
    // A new session's hello shows the live values.
    let later = connect(relay.http()).await;
    assert_eq!(later.hello["settings"]["lossy"]["drop"], 1.0);
    assert_eq!(later.hello["settings"]["lossy"]["delay_ms"], 0);
    assert_eq!(later.hello["settings"]["chat"]["timeout_ms"], 3000);
    later.close().await;
    open(&mut ws, "l", "lossy").await;
    ws.send(json!({"op":"send","socket":"l","text":"x"})).await;
    let dropped = ws.event("server_drop", None).await;
    assert_eq!(dropped["reason"], "loss");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn origin_of_another_site_is_refused_and_own_page_or_scripts_allowed() {
    let relay = TestRelay::start().await;
    let port = relay.http().port();
    for origin in ["http://evil.example", "null", &format!("http://evil.example:{port}"), "https://127.0.0.1"]
    {
        let refused = try_connect(relay.http(), &[("origin", origin)]).await.err();
        assert_eq!(refused.map(|s| s.as_u16()), Some(403), "Origin {origin}");
    }
    for origin in [format!("http://127.0.0.1:{port}"), format!("http://localhost:{port}")] {
        assert!(try_connect(relay.http(), &[("origin", &origin)]).await.is_ok(), "Origin {origin}");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn host_other_than_the_relays_own_is_refused() {
    let relay = TestRelay::start_with(|c| c.public_hosts = vec!["classroom.local".into()]).await;
    let port = relay.http().port();
    let refused = try_connect(relay.http(), &[("host", &format!("rebind.attacker.example:{port}"))]).await;
    assert_eq!(refused.err().map(|s| s.as_u16()), Some(403));
    let wrong_port =
        try_connect(relay.http(), &[("host", &format!("127.0.0.1:{}", port.wrapping_add(1)))]).await;
    assert_eq!(wrong_port.err().map(|s| s.as_u16()), Some(403));
    for host in [format!("localhost:{port}"), format!("classroom.local:{port}")] {
        assert!(try_connect(relay.http(), &[("host", &host)]).await.is_ok(), "Host {host}");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn session_limit_refuses_the_extra_tab_with_an_error() {
    let relay = TestRelay::start_with(|c| c.limits.sessions = 1).await;
    let first = connect(relay.http()).await;
    let refused = try_connect(relay.http(), &[]).await.expect("upgrade happens");
    assert_eq!(refused.hello["type"], "error");
    assert_eq!(refused.hello["code"], "limit");
    first.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn send_rate_datagram_size_heartbeat_and_pending_limits() {
    let relay = TestRelay::start_with(|c| {
        c.limits.sends_per_sec = 5;
        c.limits.datagram_bytes = 16;
        c.limits.pending_requests = 1;
        c.lossy.drop = 1.0;
    })
    .await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "a", "echo").await;
    ws.send(json!({"op":"send","socket":"a","text":"seventeen bytes!!"})).await;
    assert!(ws.error("limit").await["message"].as_str().is_some_and(|m| m.contains("--max-datagram")));
    ws.send(json!({"op":"heartbeat","socket":"a","every_ms":10})).await;
    assert!(ws.error("limit").await["message"].as_str().is_some_and(|m| m.contains("--min-heartbeat")));

    open(&mut ws, "l", "lossy").await;
    ws.send(json!({"op":"send","socket":"l","text":"1","retry":true})).await;
    ws.event("client_send", Some("l")).await;
    ws.send(json!({"op":"send","socket":"l","text":"2","retry":true})).await;
    assert!(ws.error("limit").await["message"].as_str().is_some_and(|m| m.contains("--max-pending")));

    // Two sends spent (one refused by the pending limit still took a token); burst of 5.
    let mut refused = None;
    for i in 0..10 {
        ws.send(json!({"op":"send","socket":"a","text":format!("{i}")})).await;
        let reply = ws.wait_for("send outcome", |m| m["kind"] == "client_send" || m["type"] == "error").await;
        if reply["type"] == "error" {
            refused = Some((i, reply));
            break;
        }
    }
    let (i, error) = refused.expect("the rate limit refuses a send");
    assert!(i <= 5, "refused only after {i} sends");
    assert_eq!(error["code"], "limit");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("--max-sends-per-sec")));
    ws.close().await;
    relay.shutdown().await;
}

/// A session subscribed to everything, known to be subscribed, that will read nothing more.
async fn projector_that_stops_reading(relay: &TestRelay) -> Ws {
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"subscribe","scope":"all"})).await;
    ws.send(json!({"op":"configure","server":"lossy","drop":0.5})).await;
    ws.event("server_configured", None).await;
    ws
}

/// 30,000 echo round trips of 256 bytes: 60,000 events, over 30 MB of JSON for a projector,
/// more than the socket buffers and the bus can hold for one that stopped reading.
async fn flood_echo(relay: &TestRelay) {
    let client = udp_client().await;
    let echo = relay.addr(ServerName::Echo);
    let payload = [b'x'; 256];
    for _ in 0..30_000 {
        within("echo send", client.send_to(&payload, echo)).await.expect("send");
        let (got, _) = recv(&client).await;
        assert_eq!(got.len(), payload.len());
    }
}

#[tokio::test]
async fn a_stalled_reader_does_not_slow_the_echo_server_and_later_learns_what_it_missed() {
    let relay = TestRelay::start().await;
    let mut stalled = projector_that_stops_reading(&relay).await;
    let started = Instant::now();
    flood_echo(&relay).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "30,000 round trips took {elapsed:?}");

    let lagged = stalled.wait_for("lagged", |m| m["type"] == "lagged").await;
    assert!(lagged["missed"].as_u64().is_some_and(|n| n > 0));
    // And the session carries on.
    stalled.send(json!({"op":"open","socket":"after","server":"echo"})).await;
    stalled.event("client_open", Some("after")).await;
    stalled.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn shutdown_says_bye_after_the_chat_servers_end() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "c", "chat").await;
    ws.send(json!({"op":"send","socket":"c","text":"reg"})).await;
    ws.event("chat_join", None).await;
    let stopping = tokio::spawn(relay.shutdown());
    let end = ws.wait_for("end", |m| m["kind"] == "client_recv").await;
    assert_eq!(end["text"], "end");
    let bye = ws.wait_for("bye", |m| m["type"] == "bye").await;
    assert!(bye["reason"].as_str().is_some_and(|r| r.contains("shutting down")));
    within("relay stops", stopping).await.expect("shutdown task");
}

#[tokio::test]
async fn kinds_leave_out_every_other_event_and_reset_with_the_next_subscribe() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"subscribe","scope":"own","kinds":["client_recv"]})).await;
    ws.send(json!({"op":"open","socket":"a","server":"echo"})).await;
    ws.send(json!({"op":"send","socket":"a","text":"just the reply"})).await;
    // Nothing before the reply: not client_open, client_send, server_recv nor server_send.
    let first = ws.next().await;
    assert_eq!(
        (first["kind"].clone(), first["text"].clone()),
        (json!("client_recv"), json!("just the reply"))
    );

    // The everything-subscription is filtered the same way: an outside client's datagram
    // shows up as the server's receive, and nothing else of it does.
    let mut projector = connect(relay.http()).await;
    projector.send(json!({"op":"subscribe","scope":"all","kinds":["server_recv"]})).await;
    projector.send(json!({"op":"configure","server":"lossy","drop":0.0})).await; // filtered out
    let outside = udp_client().await;
    // The subscription may not have taken effect before the first datagram: send until seen.
    let me = outside.local_addr().expect("addr").to_string();
    let seen = within("a filtered projector sees the outside client", async {
        loop {
            outside.send_to(b"outside", relay.addr(ServerName::Echo)).await.expect("send");
            let _ = recv(&outside).await;
            let Ok(m) = tokio::time::timeout(Duration::from_millis(200), projector.next()).await else {
                continue;
            };
            return m;
        }
    })
    .await;
    assert_eq!((seen["kind"].clone(), seen["from"].clone()), (json!("server_recv"), json!(me)));

    // A typo in a kind is refused and says which kinds exist; the session carries on.
    ws.send(json!({"op":"subscribe","scope":"own","kinds":["client_reply"]})).await;
    let error = ws.error("bad_command").await;
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("client_reply") && message.contains("client_recv"), "{message}");
    // The filter still holds after the refused command, and a subscribe without kinds lifts it.
    ws.send(json!({"op":"send","socket":"a","text":"again"})).await;
    assert_eq!(ws.next().await["kind"], "client_recv");
    ws.send(json!({"op":"subscribe","scope":"own","kinds":[]})).await;
    ws.error("bad_command").await;
    ws.send(json!({"op":"subscribe","scope":"own"})).await;
    ws.send(json!({"op":"send","socket":"a","text":"all of it"})).await;
    // The previous round trip's server_send may still come (emitted after its reply): skip it.
    let sent = ws.wait_for("client_send", |m| m["kind"] == "client_send").await;
    assert_eq!(sent["text"], "all of it");
    ws.event("server_recv", None).await;
    projector.close().await;
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn batch_mode_delivers_ready_events_together_in_order() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"subscribe","scope":"own","batch":true})).await;
    ws.send(json!({"op":"open","socket":"a","server":"echo"})).await;
    let mut kinds = Vec::new();
    let mut seqs = Vec::new();
    let mut batches = 0;
    ws.send(json!({"op":"send","socket":"a","text":"together"})).await;
    ws.wait_for("the reply inside a batch", |m| {
        assert_eq!(m["type"], "batch", "with batch on, events come in batches: {m}");
        batches += 1;
        for inner in m["messages"].as_array().expect("messages") {
            assert_eq!(inner["type"], "event");
            kinds.push(inner["kind"].as_str().unwrap_or_default().to_owned());
            seqs.push(inner["seq"].as_u64().unwrap_or_default());
        }
        kinds.last().is_some_and(|k| k == "client_recv")
    })
    .await;
    assert_eq!(kinds, ["client_open", "client_send", "server_recv", "server_send", "client_recv"]);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    assert!(batches <= kinds.len());
    ws.close().await;
    relay.shutdown().await;
}

/// A projector in batch mode is written at most every few milliseconds while traffic flows:
/// a steady stream of events comes in a few frames, not a frame for every few events, and none
/// is lost or reordered.
#[tokio::test]
async fn a_projector_in_batch_mode_gets_a_steady_stream_in_few_frames() {
    let relay = TestRelay::start().await;
    let mut projector = connect(relay.http()).await;
    projector.send(json!({"op":"subscribe","scope":"all","batch":true})).await;
    projector.send(json!({"op":"configure","server":"lossy","drop":0.25})).await;
    projector.wait_for("the subscription in effect", |m| m["type"] == "batch").await;

    // An outside client's 40 round trips, one every 2 ms or so: 80 events over ~100 ms.
    let outside = udp_client().await;
    let me = outside.local_addr().expect("addr").to_string();
    within("the round trips", async {
        for i in 0..40 {
            outside
                .send_to(format!("tick {i}").as_bytes(), relay.addr(ServerName::Echo))
                .await
                .expect("send");
            let _ = recv(&outside).await;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let (mut frames, mut seqs) = (0, Vec::new());
    projector
        .wait_for("all 80 events", |m| {
            frames += 1;
            for inner in m["messages"].as_array().into_iter().flatten() {
                if inner["from"] == me || inner["to"] == me {
                    seqs.push(inner["seq"].as_u64().unwrap_or_default());
                }
            }
            seqs.len() >= 80
        })
        .await;
    assert_eq!(seqs.len(), 80, "every event, once");
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");
    // Written as they came, 40 round trips 2 ms apart took ~40 frames or more.
    assert!(frames <= 25, "{frames} frames for 80 events over ~100 ms");
    projector.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_burst_of_requests_cannot_pass_the_pending_limit_and_none_vanish() {
    let relay = TestRelay::start_with(|c| {
        c.limits.pending_requests = 2;
        c.lossy.drop = 1.0;
    })
    .await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "l", "lossy").await;
    for i in 0..5 {
        ws.send(json!({"op":"send","socket":"l","text":format!("{i}"),"retry":true})).await;
    }
    let (mut sent, mut refused) = (0, 0);
    while sent + refused < 5 {
        let m = ws
            .wait_for("a send or a refusal", |m| {
                (m["kind"] == "client_send" && m["attempt"] == 1) || m["type"] == "error"
            })
            .await;
        if m["type"] == "error" {
            assert_eq!(m["code"], "limit");
            refused += 1;
        } else {
            sent += 1;
        }
    }
    assert_eq!((sent, refused), (2, 3), "every command is either sent or refused");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn heartbeat_commands_count_against_the_send_rate() {
    let relay = TestRelay::start_with(|c| c.limits.sends_per_sec = 3).await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "c", "chat").await;
    let mut refused = None;
    for i in 0..6 {
        ws.send(json!({"op":"heartbeat","socket":"c","every_ms":60_000})).await;
        let m =
            ws.wait_for("a beat or a refusal", |m| m["kind"] == "client_send" || m["type"] == "error").await;
        if m["type"] == "error" {
            refused = Some((i, m));
            break;
        }
    }
    let (i, error) = refused.expect("restarting heartbeats over and over hits the rate limit");
    assert!(i <= 3, "refused only after {i} beats");
    assert!(error["message"].as_str().is_some_and(|m| m.contains("--max-sends-per-sec")));
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn shutdown_finishes_even_when_a_browser_stopped_reading() {
    let relay = TestRelay::start().await;
    let stalled = projector_that_stops_reading(&relay).await;
    // The session is now stuck in a write to the stalled tab when the relay is told to stop.
    flood_echo(&relay).await;
    // `shutdown` fails the test if the relay takes longer than its step timeout.
    relay.shutdown().await;
    drop(stalled);
}

/// Sends `frame` as it is, and returns the error it is answered with, after checking its code.
async fn refused(ws: &mut Ws, frame: &str, code: &str) -> String {
    ws.send_raw(tokio_tungstenite::tungstenite::Message::text(frame.to_owned())).await;
    let error = ws.error(code).await;
    error["message"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn refusals_name_the_value_to_change_and_what_it_takes() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let like = r#"a command is one JSON object, like {"op":"open","socket":"a","server":"echo"}"#;
    let cases = [
        ("not json", "bad_json", format!("the frame is not JSON: {like}")),
        (r#"{"op":"open""#, "bad_json", format!("the frame's JSON is cut off: {like}")),
        (
            r#"{"op":"open","socket":"a","server":"uper"}"#,
            "bad_command",
            r#"unknown server "uper": expected echo, upper, chat, lossy or nobody"#.into(),
        ),
        (
            r#"{"op":"link","server":"ehco","dir":"in","loss":0.1}"#,
            "bad_command",
            r#"unknown server "ehco": expected echo, upper, chat or lossy"#.into(),
        ),
        (
            r#"{"op":"fault","server":"echo","dir":"up","drop_next":1}"#,
            "bad_command",
            r#"unknown direction "up": expected in or out"#.into(),
        ),
        (
            r#"{"op":"reset","scope":"own"}"#,
            "bad_command",
            r#"reset takes no fields: send {"op":"reset"}"#.into(),
        ),
    ];
    for (frame, code, wanted) in cases {
        let message = refused(&mut ws, frame, code).await;
        assert!(message.contains(&wanted), "{frame}: {message:?}, wanted {wanted:?}");
    }
    let ops = refused(&mut ws, r#"{"op":"fly"}"#, "unknown_op").await;
    assert!(ops.contains("fault, reset"), "{ops}");
    ws.send(json!({"op":"reset"})).await;
    ws.assert_quiet(Duration::from_millis(100)).await;

    open(&mut ws, "a", "echo").await;
    for (retry, wanted) in [
        (json!({"initial_ms":1}), "retry's initial_ms is from 10 to 60000 ms, got 1"),
        (json!({"factor":0.5}), "retry's factor is from 1.0 to 10.0, got 0.5"),
        (json!({"give_up_ms":700_000}), "retry's give_up_ms is at most 600000 ms, got 700000"),
    ] {
        ws.send(json!({"op":"send","socket":"a","text":"x","retry":retry})).await;
        let error = ws.error("bad_command").await;
        assert_eq!(error["message"], wanted, "{retry}");
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn a_crowd_of_no_clients_is_a_bad_command_and_of_too_many_a_limit() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    let crowd = |clients: u32| json!({"op":"crowd","socket":"k","server":"echo","clients":clients,"every_ms":1000,"text":"hi"});
    ws.send(crowd(0)).await;
    let error = ws.error("bad_command").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("at least 1 client")), "{error}");
    let max = ws.hello["limits"]["crowd_clients"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .expect("hello.limits.crowd_clients");
    ws.send(crowd(max + 1)).await;
    ws.error("limit").await;
    relay.shutdown().await;
}
