//! The wire: the seeded, impaired link in front of every server, both directions, driven from
//! a page socket, from outside Python clients, from the WebSocket and from the HTTP API.

use std::time::Duration;

use protocol::ServerName;
use serde_json::{Value, json};

use crate::support::{
    TestRelay, http_get, http_request, http_request_on, recv, tcp_from, udp_client, within,
};
use crate::tutorial::{assert_succeeded, host_port, python};
use crate::ws::{Ws, connect, connect_from};

async fn open(ws: &mut Ws, socket: &str, server: &str) -> Value {
    ws.send(json!({"op":"open","socket":socket,"server":server})).await;
    ws.event("client_open", Some(socket)).await
}

async fn link(ws: &mut Ws, command: Value) -> Value {
    let mut full = json!({"op":"link"});
    full.as_object_mut().expect("object").extend(command.as_object().expect("object").clone());
    ws.send(full).await;
    ws.event("link_configured", None).await
}

/// A session watching every event of the relay, as a projector does.
async fn projector(http: std::net::SocketAddr) -> Ws {
    let mut ws = connect(http).await;
    ws.send(json!({"op":"subscribe","scope":"all"})).await;
    ws
}

/// The line of `/metrics` counting `server`'s sandboxes, without its name: `"1"`.
async fn sandboxes(relay: &TestRelay, server: &str) -> String {
    let metrics = http_get(relay.http(), "/metrics").await.text();
    let name = format!("udp_playground_sandboxes{{server=\"{server}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&name))
        .unwrap_or_else(|| panic!("no {name}in {metrics}"))
        .to_owned()
}

/// Collects events until one satisfies `last`, or until `quiet` passes with nothing new.
async fn events_for(ws: &mut Ws, quiet: Duration) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Ok(m) = tokio::time::timeout(quiet, ws.next()).await {
        if m["type"] == "event" {
            seen.push(m);
        }
    }
    seen
}

fn kinds(events: &[Value]) -> Vec<&str> {
    events.iter().filter_map(|e| e["kind"].as_str()).collect()
}

fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

#[tokio::test]
async fn loss_on_the_way_there_and_on_the_way_back() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "e", "echo").await;

    let configured = link(&mut ws, json!({"server":"echo","dir":"in","loss":1.0})).await;
    assert_eq!(
        (configured["dir"].clone(), configured["settings"]["loss"].clone()),
        (json!("in"), json!(1.0))
    );
    ws.send(json!({"op":"send","socket":"e","text":"there"})).await;
    let events = events_for(&mut ws, Duration::from_millis(300)).await;
    let sent = &of(&events, "client_send")[0];
    let dropped = of(&events, "link_drop");
    assert_eq!(dropped.len(), 1, "{events:#?}");
    assert_eq!((dropped[0]["dir"].clone(), dropped[0]["dg"].clone()), (json!("in"), sent["dg"].clone()));
    assert_eq!(dropped[0]["reason"], "loss");
    assert!(of(&events, "server_recv").is_empty(), "the server never saw it: {:?}", kinds(&events));

    link(&mut ws, json!({"server":"echo","dir":"in","loss":0.0})).await;
    link(&mut ws, json!({"server":"echo","dir":"out","loss":1.0})).await;
    ws.send(json!({"op":"send","socket":"e","text":"back"})).await;
    let events = events_for(&mut ws, Duration::from_millis(300)).await;
    let answer = of(&events, "server_send");
    assert_eq!(answer.len(), 1, "the server answered: {:?}", kinds(&events));
    let dropped = of(&events, "link_drop");
    assert_eq!(
        (dropped[0]["dir"].clone(), dropped[0]["dg"].clone()),
        (json!("out"), answer[0]["dg"].clone())
    );
    assert!(of(&events, "client_recv").is_empty(), "lost on the way back: {:?}", kinds(&events));
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn duplicates_are_datagrams_of_their_own_and_delays_are_held_then_released() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "u", "upper").await;
    link(&mut ws, json!({"server":"upper","dir":"out","duplicate":1.0})).await;
    ws.send(json!({"op":"send","socket":"u","text":"twice"})).await;
    let events = events_for(&mut ws, Duration::from_millis(300)).await;
    let dup = of(&events, "link_duplicate");
    assert_eq!(dup.len(), 1, "{:?}", kinds(&events));
    let got: Vec<_> = of(&events, "client_recv").iter().map(|e| e["dg"].clone()).collect();
    assert_eq!(
        got,
        [dup[0]["dg"].clone(), dup[0]["copy"].clone()],
        "the socket got both, each by its own name"
    );

    link(&mut ws, json!({"server":"upper","dir":"out","duplicate":0.0})).await;
    link(&mut ws, json!({"server":"upper","dir":"in","delay_ms":200})).await;
    ws.send(json!({"op":"send","socket":"u","text":"slow"})).await;
    let events = events_for(&mut ws, Duration::from_millis(500)).await;
    let hold = of(&events, "link_hold");
    let release = of(&events, "link_release");
    assert_eq!((hold.len(), release.len()), (1, 1), "{:?}", kinds(&events));
    assert_eq!((hold[0]["reason"].clone(), hold[0]["hold_ms"].clone()), (json!("delay"), json!(200)));
    // The wire lets a datagram go within a millisecond of its due time.
    assert!(release[0]["held_us"].as_u64().is_some_and(|us| us >= 199_000), "{}", release[0]);
    let sent = of(&events, "client_send")[0]["t_us"].as_u64().expect("t_us");
    let received = of(&events, "server_recv")[0]["t_us"].as_u64().expect("t_us");
    assert!(received - sent >= 199_000, "the server read it after the hold");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_reordered_datagram_arrives_after_the_next_one() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "e", "echo").await;
    link(&mut ws, json!({"server":"echo","dir":"in","reorder":1.0})).await;
    ws.send(json!({"op":"send","socket":"e","text":"first"})).await;
    ws.send(json!({"op":"send","socket":"e","text":"second"})).await;
    let events = events_for(&mut ws, Duration::from_millis(500)).await;
    let read: Vec<_> = of(&events, "server_recv").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(read, [json!("second"), json!("first")], "the second passed the first");
    let first = of(&events, "client_send")[0]["dg"].clone();
    let hold = of(&events, "link_hold");
    assert_eq!((hold[0]["dg"].clone(), hold[0]["reason"].clone()), (first.clone(), json!("reorder")));
    assert_eq!(of(&events, "link_release")[0]["dg"], first);
    // The answers come back in the order the server read them.
    let answers: Vec<_> = of(&events, "client_recv").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(answers, [json!("second"), json!("first")]);
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn over_a_1500_byte_mtu_a_lost_fragment_loses_the_datagram() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "e", "echo").await;
    link(&mut ws, json!({"server":"echo","dir":"out","mtu":1500,"loss":1.0})).await;
    ws.send(json!({"op":"send","socket":"e","text":"x".repeat(2000)})).await;
    let dropped = ws.event("link_drop", None).await;
    assert_eq!(
        (dropped["reason"].clone(), dropped["fragment"].clone(), dropped["fragments"].clone()),
        (json!("fragment"), json!(1), json!(2))
    );
    ws.send(json!({"op":"send","socket":"e","text":"small"})).await;
    let dropped = ws.event("link_drop", None).await;
    assert_eq!(dropped["reason"], "loss", "a datagram in one fragment is simply lost");
    assert!(dropped.get("fragments").is_none());
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn faults_hit_the_next_datagrams_in_each_direction() {
    let relay = TestRelay::start().await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "e", "echo").await;
    ws.send(json!({"op":"fault","server":"echo","dir":"in","drop_next":2})).await;
    for text in ["a", "b", "c"] {
        ws.send(json!({"op":"send","socket":"e","text":text})).await;
    }
    let events = events_for(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(of(&events, "link_drop").iter().filter(|e| e["reason"] == "fault").count(), 2);
    let got: Vec<_> = of(&events, "client_recv").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(got, [json!("c")]);

    ws.send(json!({"op":"fault","server":"echo","dir":"out","duplicate_next":1})).await;
    ws.send(json!({"op":"send","socket":"e","text":"d"})).await;
    let events = events_for(&mut ws, Duration::from_millis(300)).await;
    assert_eq!(of(&events, "client_recv").len(), 2, "{:?}", kinds(&events));

    ws.send(json!({"op":"fault","server":"echo","dir":"out","hold_next_ms":300})).await;
    ws.send(json!({"op":"send","socket":"e","text":"held"})).await;
    ws.send(json!({"op":"send","socket":"e","text":"free"})).await;
    let events = events_for(&mut ws, Duration::from_millis(600)).await;
    let got: Vec<_> = of(&events, "client_recv").iter().map(|e| e["text"].clone()).collect();
    assert_eq!(got, [json!("free"), json!("held")], "the held one arrives last");
    assert_eq!(of(&events, "link_hold")[0]["reason"], "fault");

    ws.send(json!({"op":"fault","server":"echo","dir":"out"})).await;
    assert!(ws.error("bad_command").await["message"].as_str().is_some_and(|m| m.contains("exactly one")));
    ws.send(json!({"op":"link","server":"echo","dir":"out","loss":3})).await;
    assert!(ws.error("bad_command").await["message"].as_str().is_some_and(|m| m.contains("loss")));
    ws.send(json!({"op":"link","server":"nobody","dir":"out","loss":0.5})).await;
    ws.error("bad_command").await;
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn every_session_hears_of_a_change_and_hello_lists_the_links() {
    let relay = TestRelay::start().await;
    let mut a = connect(relay.http()).await;
    let mut b = connect(relay.http()).await;
    assert_eq!(a.hello["links"]["echo"]["out"]["loss"], 0.0);
    link(&mut a, json!({"server":"chat","dir":"out","jitter_ms":30})).await;
    let heard = b.event("link_configured", None).await;
    assert_eq!((heard["server"].clone(), heard["settings"]["jitter_ms"].clone()), (json!("chat"), json!(30)));
    // Each change names the session that made it, so a class sharing the servers can tell
    // whose it was; the HTTP API's names none.
    assert_eq!(heard["by"], a.hello["session"], "{heard}");
    a.send(json!({"op":"configure","server":"lossy","drop":0.75})).await;
    let heard = b.event("server_configured", None).await;
    assert_eq!((heard["value"].clone(), heard["by"].clone()), (json!(0.75), a.hello["session"].clone()));
    let json = [("Content-Type", "application/json")];
    let put = http_request(relay.http(), "PUT", "/api/links/chat/out", &json, r#"{"jitter_ms":0}"#).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let heard = b.event("link_configured", None).await;
    assert!(heard.get("by").is_none(), "the HTTP API is no session: {heard}");
    let c = connect(relay.http()).await;
    assert_eq!(c.hello["links"]["chat"]["out"]["jitter_ms"], 0);
    for ws in [a, b, c] {
        ws.close().await;
    }
    relay.shutdown().await;
}

/// The drop pattern of 30 datagrams sent one at a time through `echo.in` at 50% loss.
async fn drop_pattern(seed: u64) -> String {
    let relay = TestRelay::start_with(|c| {
        c.lossy.seed = seed;
        c.links.entry(ServerName::Echo).or_default().inbound.loss = 0.5;
    })
    .await;
    let mut ws = connect(relay.http()).await;
    open(&mut ws, "e", "echo").await;
    let mut pattern = String::new();
    for i in 0..30 {
        ws.send(json!({"op":"send","socket":"e","text":format!("n{i}")})).await;
        let outcome =
            ws.wait_for("the outcome", |m| m["kind"] == "link_drop" || m["kind"] == "client_recv").await;
        pattern.push(if outcome["kind"] == "link_drop" { 'x' } else { '.' });
    }
    ws.close().await;
    relay.shutdown().await;
    pattern
}

#[tokio::test]
async fn the_seed_replays_the_same_losses() {
    let first = drop_pattern(7).await;
    assert!(first.contains('x') && first.contains('.'), "{first}");
    assert_eq!(drop_pattern(7).await, first, "the same seed and traffic, the same losses");
    assert_ne!(drop_pattern(8).await, first, "another seed, other losses");
}

#[tokio::test]
async fn outside_clients_cross_the_link_too() {
    // The tutorial's retrying client gets through a link that loses half of what it sends.
    let relay = TestRelay::start_with(|c| {
        c.lossy.seed = 3;
        c.links.entry(ServerName::Lossy).or_default().inbound.loss = 0.5;
    })
    .await;
    let mut events = relay.bus.subscribe();
    let output = python("lossy_client.py", &host_port(&relay, ServerName::Lossy)).await;
    assert_succeeded("lossy_client.py", &output);
    let mut drops = 0;
    while let Ok(event) = events.try_recv() {
        drops += usize::from(matches!(event.kind, protocol::EventKind::LinkDrop { .. }));
    }
    assert!(drops > 0, "no datagram was lost on the way: the seed lets everything through?");
    relay.shutdown().await;

    // An outside client's answers are delayed on the way back.
    let relay =
        TestRelay::start_with(|c| c.links.entry(ServerName::Echo).or_default().outbound.delay_ms = 150).await;
    let client = udp_client().await;
    let started = tokio::time::Instant::now();
    within("send", client.send_to(b"late", relay.addr(ServerName::Echo))).await.expect("send");
    assert_eq!(recv(&client).await.0, b"late");
    assert!(started.elapsed() >= Duration::from_micros(149_000));
    let output = python("echo_client.py", &host_port(&relay, ServerName::Echo)).await;
    assert_succeeded("echo_client.py through a slow link", &output);
    relay.shutdown().await;
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).expect("JSON body")
}

#[tokio::test]
async fn the_http_api_reads_and_changes_links_and_refuses_what_it_must() {
    let relay = TestRelay::start().await;
    let http = relay.http();
    let listed = http_get(http, "/api/links").await;
    assert_eq!(listed.status, 200);
    let links = json_of(&listed.body);
    for server in ServerName::ALL {
        assert_eq!(links[server.as_str()]["in"]["loss"], 0.0, "{links}");
        assert_eq!(links[server.as_str()]["out"]["delay_ms"], 0, "{links}");
    }

    let json = [("Content-Type", "application/json")];
    let put = http_request(http, "PUT", "/api/links/echo/out", &json, r#"{"loss":0.3,"delay_ms":100}"#).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let settings = json_of(&put.body);
    assert_eq!((settings["loss"].clone(), settings["delay_ms"].clone()), (json!(0.3), json!(100)));
    let put = http_request(http, "PUT", "/api/links/echo/out", &json, r#"{"jitter_ms":50}"#).await;
    let settings = json_of(&put.body);
    assert_eq!(
        (settings["loss"].clone(), settings["jitter_ms"].clone()),
        (json!(0.3), json!(50)),
        "others kept"
    );
    assert_eq!(json_of(&http_get(http, "/api/links").await.body)["echo"]["out"]["jitter_ms"], 50);

    let fault = http_request(http, "POST", "/api/links/upper/in/faults", &json, r#"{"drop_next":2}"#).await;
    assert_eq!(fault.status, 200, "{}", fault.text());
    assert_eq!(json_of(&fault.body)["fault"]["drop_next"], 2);
    let client = udp_client().await;
    for text in [&b"one"[..], b"two", b"three"] {
        within("send", client.send_to(text, relay.addr(ServerName::Upper))).await.expect("send");
    }
    assert_eq!(recv(&client).await.0, b"THREE", "the first two were dropped");

    // method, path, headers, body, the status, and a word the error must say.
    type Refusal<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, u16, &'a str);
    let refusals: [Refusal; 8] = [
        ("PUT", "/api/links/echo/out", &[], r#"{"loss":0.1}"#, 415, "application/json"),
        (
            "PUT",
            "/api/links/echo/out",
            &[("Content-Type", "text/plain")],
            r#"{"loss":0.1}"#,
            415,
            "application/json",
        ),
        (
            "PUT",
            "/api/links/echo/out",
            &[("Content-Type", "application/json"), ("Origin", "http://evil.example")],
            r#"{"loss":0.1}"#,
            403,
            "refused",
        ),
        ("PUT", "/api/links/echo/out", &json, r#"{"loss":1.5}"#, 400, "loss"),
        ("PUT", "/api/links/echo/out", &json, r#"{"los":0.1}"#, 400, "los"),
        ("PUT", "/api/links/ehco/out", &json, r#"{"loss":0.1}"#, 404, "ehco"),
        ("PUT", "/api/links/echo/sideways", &json, r#"{"loss":0.1}"#, 404, "sideways"),
        ("POST", "/api/links/echo/in/faults", &json, r#"{"hold_next_ms":"long"}"#, 400, "hold_next_ms"),
    ];
    for (method, path, headers, body, status, says) in refusals {
        let response = http_request(http, method, path, headers, body).await;
        assert_eq!(response.status, status, "{method} {path} {headers:?} {body}: {}", response.text());
        let error = json_of(&response.body)["error"].as_str().unwrap_or_default().to_owned();
        assert!(error.contains(says), "{method} {path} {body}: {error}");
    }
    assert_eq!(
        json_of(&http_get(http, "/api/links").await.body)["echo"]["out"]["loss"],
        0.3,
        "nothing changed"
    );
    relay.shutdown().await;
}

/// What a session's echo socket `socket` reads back after sending "1" then "2".
async fn echo_order(ws: &mut Ws, socket: &str) -> Vec<Value> {
    for text in ["1", "2"] {
        ws.send(json!({"op":"send","socket":socket,"text":text})).await;
    }
    let events = events_for(ws, Duration::from_millis(400)).await;
    let own = |e: &&Value| e["socket"] == socket;
    of(&events, "client_recv").into_iter().filter(own).map(|e| e["text"].clone()).collect()
}

/// Whether the lossy server answers one datagram from the session's socket `socket`.
async fn lossy_answers(ws: &mut Ws, socket: &str) -> bool {
    ws.send(json!({"op":"send","socket":socket,"text":"are you there?"})).await;
    let outcome = ws
        .wait_for("the lossy server's answer or drop", |m| {
            m["kind"] == "server_drop" || (m["kind"] == "client_recv" && m["socket"] == socket)
        })
        .await;
    outcome["kind"] == "client_recv"
}

#[tokio::test]
async fn a_change_for_a_sessions_own_sockets_reaches_no_one_else_until_reset() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 0.0).await;
    let mut a = connect(relay.http()).await;
    let mut b = connect(relay.http()).await;
    let mut projector = projector(relay.http()).await;
    for ws in [&mut a, &mut b] {
        open(ws, "e", "echo").await;
        open(ws, "l", "lossy").await;
    }
    let by_a = a.hello["session"].clone();

    // A's own reordering link and its own lossy server, which drops everything.
    let set = link(&mut a, json!({"server":"echo","dir":"in","reorder":1.0,"scope":"own"})).await;
    assert_eq!((set["scope"].clone(), set["by"].clone()), (json!("own"), by_a.clone()), "{set}");
    a.send(json!({"op":"configure","server":"lossy","drop":1.0,"scope":"own"})).await;
    let set = a.event("server_configured", None).await;
    assert_eq!((set["value"].clone(), set["scope"].clone()), (json!(1.0), json!("own")), "{set}");
    // Whoever watches everything hears of them, each sandbox opening before its first change;
    // b, whom they do not concern, does not.
    let heard = events_for(&mut projector, Duration::from_millis(300)).await;
    let heard: Vec<_> = heard.iter().filter(|e| e["kind"] != "client_open").collect();
    let said: Vec<_> = heard
        .iter()
        .map(|e| (e["kind"].as_str().unwrap_or(""), e["server"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        said,
        [
            ("sandbox_open", "echo"),
            ("link_configured", "echo"),
            ("sandbox_open", "lossy"),
            ("server_configured", "lossy")
        ],
        "{heard:?}"
    );
    assert_eq!((heard[1]["scope"].clone(), heard[1]["by"].clone()), (json!("own"), by_a.clone()));
    assert!(heard.iter().all(|e| e["kind"] != "sandbox_open" || e["session"] == by_a), "{heard:?}");
    let b_heard = events_for(&mut b, Duration::from_millis(300)).await;
    assert!(
        !kinds(&b_heard).iter().any(|k| k.ends_with("_configured") || k.starts_with("sandbox_")),
        "{b_heard:?}"
    );
    for server in ["echo", "lossy"] {
        assert_eq!(sandboxes(&relay, server).await, "1", "{server}");
    }
    assert_eq!(echo_order(&mut a, "e").await, [json!("2"), json!("1")], "a's datagrams meet a's link");
    assert!(!lossy_answers(&mut a, "l").await, "a's lossy server drops everything");

    // B, and an outside client, meet the servers and links everyone meets.
    assert_eq!(echo_order(&mut b, "e").await, [json!("1"), json!("2")], "b's are not reordered");
    assert!(lossy_answers(&mut b, "l").await, "b's lossy server still answers");
    let outside = udp_client().await;
    for text in [&b"1"[..], b"2"] {
        within("send", outside.send_to(text, relay.addr(ServerName::Echo))).await.expect("send");
    }
    assert_eq!((recv(&outside).await.0, recv(&outside).await.0), (b"1".to_vec(), b"2".to_vec()));
    let shared = json_of(&http_get(relay.http(), "/api/links").await.body);
    assert_eq!(shared["echo"]["in"]["reorder"], 0.0, "the shared link is untouched: {shared}");

    // A change for everyone by a reaches a's own sockets too: what it just set, it meets, and
    // it hears what its sandbox's link is now.
    link(&mut a, json!({"server":"echo","dir":"in","loss":0.0})).await;
    let mine = a.event("link_configured", None).await;
    assert_eq!(
        (mine["scope"].clone(), mine["settings"]["reorder"].clone()),
        (json!("own"), json!(1.0)),
        "{mine}"
    );
    a.send(json!({"op":"configure","server":"lossy","drop":0.0})).await;
    let set = a.event("server_configured", None).await;
    assert!(set.get("scope").is_none(), "{set}");
    assert!(lossy_answers(&mut a, "l").await, "a set the drop to 0 for everyone, itself included");

    // A fault for a's own sockets hits a's next answer, not b's.
    a.send(json!({"op":"fault","server":"echo","dir":"out","drop_next":1,"scope":"own"})).await;
    b.send(json!({"op":"send","socket":"e","text":"b's"})).await;
    assert_eq!(b.event("client_recv", Some("e")).await["text"], "b's");
    a.send(json!({"op":"send","socket":"e","text":"a's"})).await;
    let lost = a.event("link_drop", None).await;
    assert_eq!((lost["server"].clone(), lost["dir"].clone()), (json!("echo"), json!("out")), "{lost}");

    // A reset closes a's sandboxes, says what a's sockets meet now, and they meet it.
    a.send(json!({"op":"reset"})).await;
    let said = events_for(&mut a, Duration::from_millis(300)).await;
    let mut closed: Vec<_> =
        said.iter().filter(|e| e["kind"] == "sandbox_close").map(|e| &e["server"]).collect();
    closed.sort_by_key(|server| server.to_string());
    assert_eq!(closed, [&json!("echo"), &json!("lossy")], "{said:?}");
    let back = said.iter().find(|e| e["kind"] == "link_configured").expect("the link a's sockets meet now");
    assert_eq!(
        (back["scope"].clone(), back["by"].clone(), back["settings"]["reorder"].clone()),
        (json!("own"), by_a, json!(0.0)),
        "{back}"
    );
    assert_eq!(echo_order(&mut a, "e").await, [json!("1"), json!("2")], "in order again");
    for ws in [a, b, projector] {
        ws.close().await;
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn a_sessions_own_chat_is_a_room_of_its_own_that_closes_with_a_reset() {
    let relay = TestRelay::start().await;
    let mut a = connect(relay.http()).await;
    let mut b = connect(relay.http()).await;
    a.send(json!({"op":"configure","server":"chat","timeout_ms":300,"scope":"own"})).await;
    a.event("server_configured", None).await;
    let mut locals = Vec::new();
    for ws in [&mut a, &mut b] {
        locals.push(open(ws, "c", "chat").await["local"].clone());
        ws.send(json!({"op":"send","socket":"c","text":"reg"})).await;
        assert_eq!(ws.event("chat_join", None).await["clients"], 1, "each in a room of one");
    }
    // A's client, silent, is gone after a's 300 ms; b's lives on the shared 10 s.
    let evicted = a.event("chat_evict", None).await;
    assert_eq!(evicted["peer"], locals[0], "{evicted}");
    b.send(json!({"op":"send","socket":"c","text":"still here"})).await;
    let heard = b.event("chat_broadcast", None).await;
    assert_eq!(heard["recipients"], 1, "b's room is b alone: {heard}");
    // A reset closes a's room: its clients hear `end`, as at a shutdown.
    open(&mut a, "d", "chat").await;
    a.send(json!({"op":"send","socket":"d","text":"reg"})).await;
    a.event("chat_join", None).await;
    a.send(json!({"op":"reset"})).await;
    let back = a.event("server_configured", None).await;
    assert_eq!(
        (back["setting"].clone(), back["value"].clone()),
        (json!("timeout_ms"), json!(10_000.0)),
        "{back}"
    );
    assert_eq!(a.event("client_recv", Some("d")).await["text"], "end");
    // The relay counts every room's clients: b's, in the shared room, is the one left.
    let metrics = http_get(relay.http(), "/metrics").await.text();
    assert!(metrics.contains("udp_playground_chat_clients 1\n"), "{metrics}");
    a.close().await;
    b.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_refused_change_for_a_sessions_own_sockets_leaves_no_sandbox_behind() {
    let relay = TestRelay::start().await;
    let mut a = connect(relay.http()).await;
    let mut projector = projector(relay.http()).await;
    open(&mut a, "e", "echo").await;
    a.send(json!({"op":"link","server":"echo","dir":"in","loss":2.0,"scope":"own"})).await;
    assert!(a.error("bad_command").await["message"].as_str().unwrap_or_default().contains("loss"));
    a.send(json!({"op":"configure","server":"echo","drop":0.5,"scope":"own"})).await;
    a.error("bad_command").await;
    let heard = events_for(&mut projector, Duration::from_millis(300)).await;
    assert!(!kinds(&heard).iter().any(|k| k.starts_with("sandbox_")), "{heard:?}");
    assert_eq!(sandboxes(&relay, "echo").await, "0");
    // The class's link changes, and a's sockets meet it: no stale copy stands in their way.
    let json = [("Content-Type", "application/json")];
    let put = http_request(relay.http(), "PUT", "/api/links/echo/in", &json, r#"{"reorder":1.0}"#).await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(echo_order(&mut a, "e").await, [json!("2"), json!("1")], "reordered, as everyone's");
    a.close().await;
    projector.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_session_that_leaves_takes_its_sandboxes_with_it() {
    let relay = TestRelay::start().await;
    let mut a = connect(relay.http()).await;
    let mut projector = projector(relay.http()).await;
    let by_a = a.hello["session"].clone();
    a.send(json!({"op":"configure","server":"lossy","drop":1.0,"scope":"own"})).await;
    let opened = projector.event("sandbox_open", None).await;
    assert_eq!((opened["server"].clone(), opened["session"].clone()), (json!("lossy"), by_a.clone()));
    a.close().await;
    let closed = projector.event("sandbox_close", None).await;
    assert_eq!((closed["server"].clone(), closed["session"].clone()), (json!("lossy"), by_a));
    assert_eq!(sandboxes(&relay, "lossy").await, "0");
    projector.close().await;
    relay.shutdown().await;
}

/// A lesson's chat room, when it goes, sends its clients `end`: a projector hears that room's
/// `chat_end` right after its `sandbox_close`, and tells it from the class's server stopping.
#[tokio::test]
async fn a_chat_room_that_closes_says_end_right_after_its_sandbox_close() {
    let relay = TestRelay::start().await;
    let mut a = connect(relay.http()).await;
    let mut projector = projector(relay.http()).await;
    a.send(json!({"op":"configure","server":"chat","timeout_ms":3000,"scope":"own"})).await;
    assert_eq!(projector.event("sandbox_open", None).await["server"], "chat");
    assert_eq!(projector.event("server_configured", None).await["scope"], "own");
    a.close().await;
    let said = events_for(&mut projector, Duration::from_millis(300)).await;
    let chat: Vec<&str> =
        said.iter().filter(|e| e["server"] == "chat").filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(chat, ["sandbox_close", "chat_end"], "{said:?}");
    assert_eq!(sandboxes(&relay, "chat").await, "0");
    projector.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_students_change_for_everyone_is_made_for_its_own_sockets_only() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 0.0).await;
    // 127.0.0.2 stands in for a student's laptop; 127.0.0.1 is the teacher's, the relay's own.
    let laptop: std::net::IpAddr = [127, 0, 0, 2].into();
    let mut student = connect_from(laptop, relay.http()).await;
    let mut teacher = connect(relay.http()).await;
    let by_student = student.hello["session"].clone();
    open(&mut student, "l", "lossy").await;
    open(&mut teacher, "l", "lossy").await;

    // The student drags the lossy panel's slider and a link's loss, changes for everyone as
    // the page sends them: they are made for its own sockets, and the events say so.
    student.send(json!({"op":"configure","server":"lossy","drop":1.0})).await;
    let set = student.event("server_configured", None).await;
    assert_eq!((set["scope"].clone(), set["by"].clone()), (json!("own"), by_student.clone()), "{set}");
    let set = link(&mut student, json!({"server":"echo","dir":"in","loss":1.0,"scope":"all"})).await;
    assert_eq!(set["scope"], "own", "{set}");
    assert!(!lossy_answers(&mut student, "l").await, "the student meets what it set");
    assert!(lossy_answers(&mut teacher, "l").await, "the class's lossy server is untouched");
    let shared = json_of(&http_get(relay.http(), "/api/links").await.body);
    assert_eq!(shared["echo"]["in"]["loss"], 0.0, "{shared}");

    // The student's page is told so as it is served, the teacher's is not.
    let tcp = tcp_from(laptop, relay.http()).await;
    let served = http_request_on(tcp, relay.http(), "GET", "/", &[], "").await.text();
    assert!(served.contains(r#"<html data-changes="own""#), "{served}");
    assert!(!http_get(relay.http(), "/").await.text().contains("data-changes"));

    // Over HTTP there is no sandbox to change instead: refused, and told why.
    let json = [("Content-Type", "application/json")];
    let tcp = tcp_from(laptop, relay.http()).await;
    let put = http_request_on(tcp, relay.http(), "PUT", "/api/links/echo/in", &json, r#"{"loss":1.0}"#).await;
    assert_eq!(put.status, 403, "{}", put.text());
    assert!(put.text().contains("--shared-changes anyone"), "{}", put.text());
    let tcp = tcp_from(laptop, relay.http()).await;
    let path = "/api/links/echo/out/faults";
    let fault = http_request_on(tcp, relay.http(), "POST", path, &json, r#"{"drop_next":1}"#).await;
    assert_eq!(fault.status, 403, "{}", fault.text());

    // The teacher's change is the class's, the student's sockets' too once its sandbox goes.
    teacher.send(json!({"op":"configure","server":"lossy","drop":1.0})).await;
    let set = teacher.event("server_configured", None).await;
    assert!(set.get("scope").is_none(), "{set}");
    teacher.send(json!({"op":"configure","server":"lossy","drop":0.0})).await;
    teacher.event("server_configured", None).await;
    student.send(json!({"op":"reset"})).await;
    student.event("sandbox_close", None).await;
    assert!(lossy_answers(&mut student, "l").await, "the class's again");
    for ws in [student, teacher] {
        ws.close().await;
    }
    relay.shutdown().await;

    // An operator may let everyone change what everyone meets.
    let relay = TestRelay::start_with(|c| c.shared_changes = relay::config::SharedChanges::Anyone).await;
    let mut student = connect_from(laptop, relay.http()).await;
    student.send(json!({"op":"configure","server":"lossy","drop":0.5})).await;
    let set = student.event("server_configured", None).await;
    assert!(set.get("scope").is_none(), "{set}");
    let tcp = tcp_from(laptop, relay.http()).await;
    let put = http_request_on(tcp, relay.http(), "PUT", "/api/links/echo/in", &json, r#"{"loss":0.5}"#).await;
    assert_eq!(put.status, 200, "{}", put.text());
    let tcp = tcp_from(laptop, relay.http()).await;
    assert!(!http_request_on(tcp, relay.http(), "GET", "/", &[], "").await.text().contains("data-changes"));
    student.close().await;
    relay.shutdown().await;
}
