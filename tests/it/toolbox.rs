//! The relay in a user's toolbox: its capture read by the real `tshark`, its metrics checked by
//! the real `promtool`, and its recorded events as JSON lines. `./scripts/test` installs both
//! tools from Debian's `tshark` and `prometheus` packages.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use protocol::ServerName;

use crate::support::{TestRelay, http_get, recv, udp_client, within};

/// A scratch file under `target/`, so a test run never dirties the work tree.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/toolbox");
    std::fs::create_dir_all(&dir).expect("create target/toolbox");
    dir.join(format!("{}-{name}", std::process::id()))
}

/// Runs a tool with a time limit; its stdout, stderr and success.
async fn run(tool: &str, args: &[&str], stdin: Option<&[u8]>) -> (String, String, bool) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(tool)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {tool}: {e} (./scripts/test installs it)"));
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        within("writing to the tool", pipe.write_all(input)).await.expect("write stdin");
    }
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{tool} ran longer than 30 s"))
        .expect("wait");
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&output.stdout), text(&output.stderr), output.status.success())
}

#[tokio::test]
async fn tshark_reads_the_capture_every_checksum_validates_and_comments_mark_the_drops() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let client = udp_client().await;
    let me = client.local_addr().expect("bound").port();
    let (echo, lossy) = (relay.addr(ServerName::Echo), relay.addr(ServerName::Lossy));
    for size in [0, 5, 2000, 65_507] {
        within("send", client.send_to(&vec![b'u'; size], echo)).await.expect("send");
        assert_eq!(recv(&client).await.0.len(), size);
    }
    within("send", client.send_to(b"into the void", lossy)).await.expect("send");
    tokio::time::sleep(Duration::from_millis(200)).await;

    let response = http_get(relay.http(), "/api/capture.pcapng").await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-type"), Some("application/x-pcapng"));
    let file = scratch("capture.pcapng");
    std::fs::write(&file, &response.body).expect("write the capture");
    let rows = tshark_rows(file.to_str().expect("utf-8 path")).await;
    assert_eq!(rows.len(), 9, "4 requests, 4 echoes and the dropped datagram: {rows:?}");
    assert!(rows.iter().all(|r| r[3] == "1"), "every UDP checksum is good (1): {rows:?}");
    let (me, echo_port, lossy_port) = (me.to_string(), echo.port().to_string(), lossy.port().to_string());
    let mut lengths = Vec::new();
    for pair in rows[..8].chunks(2) {
        let (ask, answer) = (&pair[0], &pair[1]);
        assert_eq!((&ask[0], &ask[1]), (&me, &echo_port), "{rows:?}");
        assert_eq!((&answer[0], &answer[1]), (&echo_port, &me), "{rows:?}");
        assert_eq!(ask[2], answer[2]);
        lengths.push(ask[2].parse::<usize>().expect("a length") - 8);
    }
    assert_eq!(lengths, [0, 5, 2000, 65_507], "the UDP length is 8 bytes of header plus the payload");
    let dropped = &rows[8];
    assert_eq!((dropped[1].as_str(), dropped[2].as_str()), (lossy_port.as_str(), "21"));
    assert!(dropped[4].starts_with("dropped by the lossy server (dg "), "{rows:?}");
    assert!(rows[..8].iter().all(|r| r[4].is_empty()), "only the drop has a comment: {rows:?}");
    let _ = std::fs::remove_file(&file);
    relay.shutdown().await;
}

/// The capture's fields per datagram, from the real tshark: source and destination port, UDP
/// length, checksum status and comment.
async fn tshark_rows(path: &str) -> Vec<Vec<String>> {
    let fields = ["udp.srcport", "udp.dstport", "udp.length", "udp.checksum.status", "frame.comment"];
    let mut args = vec!["-r", path, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|"];
    for field in fields {
        args.extend(["-e", field]);
    }
    let (out, err, ok) = run("tshark", &args, None).await;
    assert!(ok, "tshark failed: {err}");
    out.lines().map(|l| l.split('|').map(str::to_owned).collect()).collect()
}

#[tokio::test]
async fn capture_flag_writes_the_datagrams_as_they_happen_and_the_rest_at_the_end() {
    let file = scratch("continuous.pcapng");
    let path = file.to_str().expect("utf-8 path").to_owned();
    let capture = file.clone();
    let relay = TestRelay::start_with(move |c| {
        c.lossy.drop = 1.0;
        c.capture = Some(capture);
    })
    .await;
    let client = udp_client().await;
    let (echo, lossy) = (relay.addr(ServerName::Echo), relay.addr(ServerName::Lossy));
    for size in [1, 300] {
        within("send", client.send_to(&vec![b'c'; size], echo)).await.expect("send");
        assert_eq!(recv(&client).await.0.len(), size);
    }
    within("send", client.send_to(b"lost", lossy)).await.expect("send");
    // Written a quarter of a second after it happened, while the relay runs.
    let mut rows = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        rows = tshark_rows(&path).await;
        if rows.len() >= 5 {
            break;
        }
    }
    assert!(rows.iter().all(|r| r[3] == "1"), "every UDP checksum is good: {rows:?}");
    let lengths: Vec<_> = rows.iter().map(|r| r[2].as_str()).collect();
    assert_eq!(lengths, ["9", "9", "308", "308", "12"], "{rows:?}");
    assert!(rows[4][4].starts_with("dropped by the lossy server (dg "), "{rows:?}");
    // What comes last is written when the relay stops.
    within("send", client.send_to(b"bye", echo)).await.expect("send");
    recv(&client).await;
    relay.shutdown().await;
    let rows = tshark_rows(&path).await;
    assert_eq!(rows.len(), 7, "the last round trip too: {rows:?}");
    let _ = std::fs::remove_file(&file);
}

#[tokio::test]
async fn capture_flag_needs_recording_and_a_file_it_can_write() {
    let without_history = within(
        "binding",
        relay::Relay::bind({
            let mut c = relay::Config::ephemeral();
            c.history.events = 0;
            c.capture = Some(scratch("never.pcapng"));
            c
        }),
    )
    .await;
    let error = without_history.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.contains("--history"), "{error}");
    let unwritable = within(
        "binding",
        relay::Relay::bind({
            let mut c = relay::Config::ephemeral();
            c.capture = Some("/nonexistent-dir/udp.pcapng".into());
            c
        }),
    )
    .await;
    let error = unwritable.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(error.starts_with("cannot write the capture to /nonexistent-dir/udp.pcapng: "), "{error}");
}

#[tokio::test]
async fn promtool_passes_the_metrics_and_the_counters_count_exactly_what_was_sent() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let client = udp_client().await;
    let echo = relay.addr(ServerName::Echo);
    for size in [3, 4, 5] {
        within("send", client.send_to(&vec![b'm'; size], echo)).await.expect("send");
        recv(&client).await;
    }
    for _ in 0..2 {
        within("send", client.send_to(b"gone", relay.addr(ServerName::Lossy))).await.expect("send");
    }
    let ws = crate::ws::connect(relay.http()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = http_get(relay.http(), "/metrics").await;
    assert_eq!(response.status, 200);
    let text = response.text();
    let (out, err, ok) = run("promtool", &["check", "metrics"], Some(text.as_bytes())).await;
    assert!(ok && out.trim().is_empty() && err.trim().is_empty(), "promtool: {out}{err}\n{text}");
    for line in [
        r#"udp_playground_datagrams_total{server="echo",direction="in"} 3"#,
        r#"udp_playground_datagrams_total{server="echo",direction="out"} 3"#,
        r#"udp_playground_bytes_total{server="echo",direction="in"} 12"#,
        r#"udp_playground_bytes_total{server="echo",direction="out"} 12"#,
        r#"udp_playground_datagrams_total{server="lossy",direction="in"} 2"#,
        r#"udp_playground_dropped_total{server="lossy",reason="loss"} 2"#,
        "udp_playground_sessions 1",
        "udp_playground_chat_clients 0",
        "udp_playground_lagged_events_total 0",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn the_recorded_events_are_json_lines_in_seq_order_as_the_websocket_sends_them() {
    let relay = TestRelay::start().await;
    let mut ws = crate::ws::connect(relay.http()).await;
    ws.send(serde_json::json!({"op":"subscribe","scope":"all"})).await;
    let client = udp_client().await;
    for text in ["a", "b", "c"] {
        within("send", client.send_to(text.as_bytes(), relay.addr(ServerName::Upper))).await.expect("send");
        recv(&client).await;
    }
    let live = ws.event("server_send", None).await;
    let response = http_get(relay.http(), "/api/events.jsonl").await;
    assert_eq!(response.status, 200);
    let lines: Vec<serde_json::Value> =
        response.text().lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert!(lines.len() >= 6, "{lines:#?}");
    let seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().expect("seq")).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in seq order: {seqs:?}");
    let same = lines.iter().find(|l| l["seq"] == live["seq"]).expect("the live event is recorded");
    assert_eq!(same, &live, "exactly as the WebSocket sent it");
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_datagram_shows_its_ip_and_udp_headers_field_by_field() {
    let relay = TestRelay::start().await;
    let mut events = relay.bus.subscribe();
    let client = udp_client().await;
    let me = client.local_addr().expect("bound");
    within("send", client.send_to(b"hello", relay.addr(ServerName::Echo))).await.expect("send");
    recv(&client).await;
    let dg = within("server_recv", async {
        loop {
            if let protocol::EventKind::ServerRecv { dg, .. } = events.recv().await.expect("event").kind {
                return dg;
            }
        }
    })
    .await;
    let response = http_get(relay.http(), &format!("/api/datagrams/{dg}")).await;
    assert_eq!(response.status, 200, "{}", response.text());
    let h: serde_json::Value = serde_json::from_slice(&response.body).expect("JSON");
    assert_eq!(h["src_port"], me.port());
    assert_eq!(h["dst_port"], relay.addr(ServerName::Echo).port());
    assert_eq!((h["udp_length"].clone(), h["ip_length"].clone()), (13.into(), 33.into()));
    assert_eq!(h["payload_hex"], "68656c6c6f");
    let header = h["header_hex"].as_str().expect("hex");
    assert_eq!(header.len(), 56, "20 bytes of IPv4 header and 8 of UDP header");
    assert_eq!(&header[40..48], format!("{:04x}{:04x}", me.port(), relay.addr(ServerName::Echo).port()));
    assert_eq!(http_get(relay.http(), "/api/datagrams/999999").await.status, 404);
    relay.shutdown().await;
}

#[tokio::test]
async fn a_projector_opened_late_gets_the_recent_past_then_live_events_none_twice() {
    let relay = TestRelay::start().await;
    let client = udp_client().await;
    for text in ["before", "the", "projector"] {
        within("send", client.send_to(text.as_bytes(), relay.addr(ServerName::Echo))).await.expect("send");
        recv(&client).await;
    }
    let mut ws = crate::ws::connect(relay.http()).await;
    ws.send(serde_json::json!({"op":"subscribe","scope":"all","history":true})).await;
    let mut seen = Vec::new();
    ws.wait_for("the past", |m| {
        seen.push(m.clone());
        m["kind"] == "server_recv" && m["text"] == "projector"
    })
    .await;
    within("send", client.send_to(b"live", relay.addr(ServerName::Echo))).await.expect("send");
    ws.wait_for("a live event", |m| {
        seen.push(m.clone());
        m["kind"] == "server_send" && m["text"] == "live"
    })
    .await;
    let texts: Vec<_> =
        seen.iter().filter(|m| m["kind"] == "server_recv").map(|m| m["text"].clone()).collect();
    assert_eq!(texts, ["before", "the", "projector", "live"], "the past first, then live");
    let seqs: Vec<u64> = seen.iter().filter_map(|m| m["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order, none twice: {seqs:?}");
    ws.send(serde_json::json!({"op":"subscribe","scope":"own","history":true})).await;
    ws.error("bad_command").await;
    ws.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_datagram_the_link_lost_is_in_the_capture_with_what_the_link_did() {
    let relay =
        TestRelay::start_with(|c| c.links.entry(ServerName::Echo).or_default().outbound.loss = 1.0).await;
    let client = udp_client().await;
    within("send", client.send_to(b"lost on the way back", relay.addr(ServerName::Echo)))
        .await
        .expect("send");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let file = scratch("link.pcapng");
    std::fs::write(&file, http_get(relay.http(), "/api/capture.pcapng").await.body).expect("write");
    let path = file.to_str().expect("utf-8 path");
    let args = ["-r", path, "-o", "udp.check_checksum:TRUE", "-T", "fields", "-E", "separator=|"];
    let mut args = args.to_vec();
    args.extend(["-e", "udp.srcport", "-e", "udp.checksum.status", "-e", "frame.comment"]);
    let (out, err, ok) = run("tshark", &args, None).await;
    assert!(ok, "tshark failed: {err}");
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 2, "the request and the answer the link lost:\n{out}");
    let echo_port = relay.addr(ServerName::Echo).port().to_string();
    assert_eq!(rows[1][0], echo_port);
    assert_eq!(rows[1][1], "1");
    assert!(rows[1][2].starts_with("dropped by the echo link on the way out: loss (dg "), "{out}");
    let _ = std::fs::remove_file(&file);
    relay.shutdown().await;
}
