//! A classroom on one relay: the defects a black-box probe found, each pinned by a test.
//! Sleeping laptops, broken and hostile frames, duplicate headers, a chat message too long to
//! wrap, settings under load, and lenient retry parameters.

use std::time::Duration;

use protocol::ServerName;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{TestRelay, http_get, http_request, udp_client, within};
use crate::ws::{connect, try_connect};

/// A WebSocket opened by hand, so a test can send frames no library would, and leave pings
/// unanswered.
async fn raw_ws(relay: &TestRelay) -> TcpStream {
    let http = relay.http();
    let mut tcp = within("connect", TcpStream::connect(http)).await.expect("connect");
    let request = format!(
        "GET /ws HTTP/1.1\r\nHost: {http}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    within("upgrade", tcp.write_all(request.as_bytes())).await.expect("write");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        within("upgrade answer", tcp.read_exact(&mut byte)).await.expect("read");
        head.push(byte[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 101"), "{}", String::from_utf8_lossy(&head));
    tcp
}

/// A client frame: FIN, `opcode`, masked (with a zero mask when `masked`) as clients must.
fn frame(opcode: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if masked { 0x80 } else { 0 };
    assert!(payload.len() < 126);
    out.push(mask_bit | payload.len() as u8);
    if masked {
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out.extend_from_slice(payload);
    out
}

/// Reads server frames until a Close; returns its code and reason.
async fn close_of(tcp: &mut TcpStream) -> (u16, String) {
    within("the relay's Close frame", async {
        loop {
            let mut head = [0u8; 2];
            tcp.read_exact(&mut head).await.expect("a frame, not a bare close");
            let len = match head[1] & 0x7f {
                126 => {
                    let mut ext = [0u8; 2];
                    tcp.read_exact(&mut ext).await.expect("length");
                    usize::from(u16::from_be_bytes(ext))
                }
                127 => {
                    let mut ext = [0u8; 8];
                    tcp.read_exact(&mut ext).await.expect("length");
                    usize::try_from(u64::from_be_bytes(ext)).expect("length")
                }
                n => usize::from(n),
            };
            let mut payload = vec![0u8; len];
            tcp.read_exact(&mut payload).await.expect("payload");
            if head[0] & 0x0f == 0x8 {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                return (code, String::from_utf8_lossy(&payload[2..]).into_owned());
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_close_is_answered_with_its_code() {
    let relay = TestRelay::start().await;
    let mut tcp = raw_ws(&relay).await;
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"bye");
    within("send", tcp.write_all(&frame(0x8, &close, true))).await.expect("write");
    assert_eq!(close_of(&mut tcp).await.0, 1000);
    relay.shutdown().await;
}

#[tokio::test]
async fn broken_frames_are_closed_with_the_code_that_says_why() {
    let relay = TestRelay::start().await;
    let mut tcp = raw_ws(&relay).await;
    within("send", tcp.write_all(&frame(0x1, &[0xff, 0xfe], true))).await.expect("write");
    let (code, reason) = close_of(&mut tcp).await;
    assert_eq!(code, 1007, "{reason}");

    let mut tcp = raw_ws(&relay).await;
    // A client must mask its frames: an unmasked one is a protocol error.
    within("send", tcp.write_all(&frame(0x1, b"{}", false))).await.expect("write");
    let (code, reason) = close_of(&mut tcp).await;
    assert_eq!(code, 1002, "{reason}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_session_that_never_answers_pings_is_closed_and_a_live_one_is_kept() {
    let relay = TestRelay::start_with(|c| c.limits.ping_every = Duration::from_millis(200)).await;
    let mut asleep = raw_ws(&relay).await;
    let mut awake = connect(relay.http()).await;
    // The raw socket reads nothing, so it answers no ping: like a laptop that went to sleep.
    // The library client answers each ping as it reads, like a live tab.
    awake.assert_quiet(Duration::from_millis(800)).await;
    let (code, reason) = close_of(&mut asleep).await;
    assert_eq!(code, 1001, "{reason}");
    assert!(reason.contains("ping"), "{reason}");
    awake.send(json!({"op":"open","socket":"a","server":"echo"})).await;
    awake.event("client_open", Some("a")).await;
    awake.assert_quiet(Duration::from_millis(600)).await;
    awake.send(json!({"op":"send","socket":"a","text":"still here"})).await;
    assert_eq!(awake.event("client_recv", Some("a")).await["text"], "still here");
    awake.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn two_host_or_origin_headers_are_refused() {
    let relay = TestRelay::start().await;
    let http = relay.http();
    let own = http.to_string();
    let twice = http_request(http, "GET", "/healthz", &[("Host", &own), ("Host", &own)], "").await;
    assert_eq!(twice.status, 400, "{}", twice.text());
    assert_eq!(http_get(http, "/healthz").await.status, 200);

    let origin = format!("http://{own}");
    let welcome = try_connect(http, &[("Origin", &origin)]).await;
    assert!(welcome.is_ok(), "one own Origin is welcome");
    let raw = format!(
        "GET /ws HTTP/1.1\r\nHost: {own}\r\nOrigin: {origin}\r\nOrigin: http://evil.example\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    let mut tcp = within("connect", TcpStream::connect(http)).await.expect("connect");
    within("write", tcp.write_all(raw.as_bytes())).await.expect("write");
    let mut answer = vec![0u8; 64];
    let n = within("read", tcp.read(&mut answer)).await.expect("read");
    assert!(answer[..n].starts_with(b"HTTP/1.1 403"), "{}", String::from_utf8_lossy(&answer[..n]));
    relay.shutdown().await;
}

#[tokio::test]
async fn a_chat_message_too_long_to_wrap_reaches_nobody_and_says_so() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let chat = relay.addr(ServerName::Chat);
    let client = udp_client().await;
    within("reg", client.send_to(b"reg", chat)).await.expect("send");
    within("big", client.send_to(&vec![b'x'; 65_490], chat)).await.expect("send");
    let mut buf = vec![0u8; 65_536];
    let heard = tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf)).await;
    assert!(heard.is_err(), "a copy the kernel would refuse must not be claimed: got {heard:?}");
    let too_long = within("chat_too_long", async {
        loop {
            let event = events.recv().await.expect("event");
            if let protocol::EventKind::ChatTooLong { len, max_len, .. } = event.kind {
                return (len, max_len);
            }
            assert!(
                !matches!(event.kind, protocol::EventKind::ChatBroadcast { .. }),
                "a broadcast was claimed"
            );
        }
    })
    .await;
    assert_eq!(too_long.0, 65_490);
    assert!(too_long.1 < 65_490);
    relay.shutdown().await;
}

/// A page socket that anyone can send to (unconnected), flooded from outside: its session
/// still answers its commands, and another session's round trips still come back. The
/// session runs its sockets in its own task, so a flooded socket must not keep that task from
/// its WebSocket, nor the runtime from anyone else: on one thread, as the relay runs by default
/// (`--threads 1`), everything here shares it.
#[tokio::test]
async fn a_flooded_page_socket_holds_up_neither_its_session_nor_another() {
    let relay = TestRelay::start().await;
    let mut flooded = connect(relay.http()).await;
    flooded.send(json!({"op":"open","socket":"u","server":"echo","connect":false})).await;
    let local = flooded.event("client_open", Some("u")).await["local"].clone();
    let target: std::net::SocketAddr = local.as_str().expect("local").parse().expect("address");
    let mut other = connect(relay.http()).await;
    other.send(json!({"op":"open","socket":"e","server":"echo"})).await;
    other.event("client_open", Some("e")).await;

    // From a thread of its own, as another program would. Bounded: 200,000 datagrams, 3 s.
    let flood = std::thread::spawn(move || {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let started = std::time::Instant::now();
        let mut sent = 0u32;
        while sent < 200_000 && started.elapsed() < Duration::from_secs(3) {
            if socket.send_to(b"flood", target).is_ok() {
                sent += 1;
            }
        }
        sent
    });
    // Under way once the flooded socket has read some of it.
    flooded.wait_for("the flood", |m| m["kind"] == "client_recv" && m["text"] == "flood").await;
    let mut receipts = 0;
    // Commands for as long as the flood lasts, and at least ten of each, at a page's pace:
    // a hundred round trips a second keeps the other session under its send limit.
    let mut pace = tokio::time::interval(Duration::from_millis(10));
    let mut i = 0;
    while i < 10 || !flood.is_finished() {
        assert!(i < 1_000, "the flood outlasted its bounds");
        i += 1;
        pace.tick().await;
        // A command the flooded session must answer itself: its reply does not queue behind
        // the flood's events, which may be dropped when the page cannot keep up.
        flooded.send(json!({"op":"send","socket":"nope","text":"x"})).await;
        let error = flooded
            .wait_for("the error", |m| {
                receipts += usize::from(m["kind"] == "client_recv" && m["text"] == "flood");
                m["type"] == "error"
            })
            .await;
        assert_eq!(error["code"], "unknown_socket", "{error}");
        let text = format!("r{i}");
        other.send(json!({"op":"send","socket":"e","text":text})).await;
        other
            .wait_for("the echo's answer", |m| m["kind"] == "client_recv" && m["text"] == text.as_str())
            .await;
    }
    let sent = flood.join().expect("flood thread");
    assert!(sent > 10_000, "the flood must have been one: {sent} datagrams");
    // The flooded socket did read the flood (its own traffic, reported as such) meanwhile.
    assert!(receipts > 0, "the session saw none of the flood");
    relay.shutdown().await;
}

#[tokio::test]
async fn settings_always_answer_even_under_chat_load() {
    let relay = TestRelay::start().await;
    let chat = relay.addr(ServerName::Chat);
    let flood = tokio::spawn(async move {
        let client = udp_client().await;
        let started = tokio::time::Instant::now();
        // Bounded: at most 3 s and 300,000 datagrams.
        for i in 0..300_000u32 {
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
            let _ = client.send_to(if i % 2 == 0 { b"^hb^" } else { b"hello" }, chat).await;
            if i % 64 == 0 {
                tokio::task::yield_now().await;
            }
        }
    });
    for _ in 0..10 {
        let list: serde_json::Value =
            serde_json::from_slice(&http_get(relay.http(), "/api/servers").await.body).expect("JSON");
        let chat = list["servers"].as_array().and_then(|s| s.iter().find(|s| s["name"] == "chat")).cloned();
        let settings = chat.expect("chat is listed")["settings"].clone();
        assert_eq!(settings["timeout_ms"], 10_000, "chat's settings went missing: {settings}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    flood.abort();
    relay.shutdown().await;
}

#[tokio::test]
async fn retry_parameters_are_strict() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    ws.send(json!({"op":"open","socket":"l","server":"lossy"})).await;
    ws.event("client_open", Some("l")).await;
    ws.send(json!({"op":"send","socket":"l","text":"x","retry":[100, 2.0, 2000]})).await;
    ws.error("bad_command").await;
    ws.send(json!({"op":"send","socket":"l","text":"x","retry":{"initial_ms":3000,"give_up_ms":2000}})).await;
    let error = ws.error("bad_command").await;
    assert!(error["message"].as_str().is_some_and(|m| m.contains("give_up_ms")), "{error}");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_dropped() {
    let relay = TestRelay::start().await;
    let mut tcp = within("connect", TcpStream::connect(relay.http())).await.expect("connect");
    within("half a request", tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x")).await.expect("write");
    // The relay gives up on the head after its timeout and closes the connection: the read
    // ends (with nothing, or a 408) instead of waiting forever.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        relay::serve::HEADER_TIMEOUT + Duration::from_secs(3),
        tcp.read_to_end(&mut rest),
    )
    .await;
    assert!(read.is_ok(), "the half-sent request was held open for more than the timeout");
    relay.shutdown().await;
}

#[tokio::test]
async fn one_address_holds_a_bounded_number_of_connections_and_sessions() {
    let relay = TestRelay::start_with(|c| c.limits.addresses.per_loopback = 3).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(connect(relay.http()).await);
    }
    let refused = http_get(relay.http(), "/healthz").await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert!(refused.text().contains("--max-per-loopback"), "{}", refused.text());
    // A session that ends gives its place back.
    sessions.pop().expect("a session").close().await;
    let answered = within("the place given back", async {
        loop {
            let response = http_get(relay.http(), "/healthz").await;
            if response.status == 200 {
                return response;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(answered.text(), "ok\n");
    for ws in sessions {
        ws.close().await;
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn bound_to_every_interface_the_relay_accepts_its_own_addresses_without_being_told() {
    let relay = TestRelay::start_with(|c| c.bind = std::net::Ipv4Addr::UNSPECIFIED.into()).await;
    // Only the Host header names the machine's other addresses: every byte goes over loopback.
    let port = relay.http().port();
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    for (name, ip) in relay::interfaces::addresses() {
        let host = match ip {
            std::net::IpAddr::V6(v6) => format!("[{v6}]:{port}"),
            std::net::IpAddr::V4(v4) => format!("{v4}:{port}"),
        };
        let answer = http_request(http, "GET", "/healthz", &[("Host", &host)], "").await;
        assert_eq!(answer.status, 200, "{name} {host}: {}", answer.text());
    }
    let stranger = http_request(http, "GET", "/healthz", &[("Host", "192.0.2.1:80")], "").await;
    assert_eq!(stranger.status, 403, "not this machine's address");
    let rebound =
        http_request(http, "GET", "/healthz", &[("Host", &format!("evil.example:{port}"))], "").await;
    assert_eq!(rebound.status, 403, "a name is accepted only with --public-host");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_class_is_told_where_to_go_in_hello_and_as_a_qr_code() {
    let local = TestRelay::start().await;
    assert_eq!(http_get(local.http(), "/api/join.svg").await.status, 404, "loopback: nobody else can come");
    assert!(connect(local.http()).await.hello.get("join").is_none());
    local.shutdown().await;

    let relay = TestRelay::start_with(|c| {
        c.bind = std::net::Ipv4Addr::UNSPECIFIED.into();
        c.public_hosts = vec!["lab-7.local".into()];
    })
    .await;
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], relay.http().port()));
    let ws = connect(http).await;
    let join: Vec<String> = serde_json::from_value(ws.hello["join"].clone()).expect("join URLs");
    assert_eq!(
        join.last().map(String::as_str),
        Some(format!("http://lab-7.local:{}/", http.port()).as_str())
    );
    // Every IPv4 address of this machine, and no IPv6 one: a relay on 0.0.0.0 answers none.
    for (_, ip) in relay::interfaces::addresses().into_iter().filter(|(_, ip)| !ip.is_loopback()) {
        let listed = join.iter().any(|u| u.contains(&ip.to_string()));
        assert_eq!(listed, ip.is_ipv4(), "{ip} and {join:?}");
    }
    let qr = http_get(http, "/api/join.svg").await;
    assert_eq!((qr.status, qr.header("content-type")), (200, Some("image/svg+xml")));
    assert!(qr.text().starts_with("<?xml") && qr.text().contains("<svg"), "{}", qr.text());
    ws.close().await;
    relay.shutdown().await;
}
