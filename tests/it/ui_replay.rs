//! The toolbox in the page, end to end in Chromium at 1,400 × 900: a datagram's IP and UDP
//! headers with their bytes, a session saved by the page and replayed from a file (play,
//! step, scrub, speed), and an exported site served by a plain static server with no relay
//! at all, playing a lesson's recording.
//!
//! Every wait is bounded: the [`Browser`] helpers time out, and so does everything else here.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use protocol::ServerName;
use serde_json::{Value, json};

use crate::browser::{Browser, CONNECTED, WAIT};
use crate::support::{TestRelay, http_get};

/// The page shows a recording instead of a relay's live traffic.
const REPLAYING: &str = "#status[data-conn=replay]";

async fn page(relay: &TestRelay) -> Browser {
    let browser = Browser::open(&format!("http://{}/", relay.http())).await;
    browser.set_viewport(1400, 900).await;
    browser.wait_for(CONNECTED, Browser::LOAD).await;
    browser
}

/// Opens socket `name` on echo and sends `texts`, waiting for each echo.
async fn echo(browser: &Browser, name: &str, texts: &[&str]) {
    browser.fill("#open-name", name).await;
    browser.eval("document.getElementById('open-server').value = 'echo';", vec![]).await;
    browser.click("#open-btn").await;
    browser.wait_for(&format!("#log li[data-kind=client_open][data-socket={name}]"), WAIT).await;
    for (i, text) in texts.iter().enumerate() {
        browser.fill("#send-text", text).await;
        browser.click("#send-btn").await;
        let css = format!("#log li[data-kind=client_recv][data-socket={name}]");
        wait_count(browser, &css, i + 1).await;
    }
}

/// How many elements match `css`.
async fn count(browser: &Browser, css: &str) -> usize {
    let n = browser.eval("return document.querySelectorAll(arguments[0]).length;", vec![json!(css)]).await;
    n.as_u64().unwrap_or(0) as usize
}

/// Waits until at least `n` elements match `css`.
async fn wait_count(browser: &Browser, css: &str, n: usize) {
    let started = Instant::now();
    while count(browser, css).await < n {
        assert!(started.elapsed() < WAIT, "fewer than {n} elements match {css} after {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn arrows(browser: &Browser) -> u64 {
    browser.attr("#diagram", "data-arrows").await.unwrap_or_default().parse().unwrap_or(0)
}

/// A scratch directory under `target/`, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("target/tmp is writable");
    // Chromedriver takes only canonical paths for a file input.
    dir.canonicalize().expect("the directory was just made")
}

#[tokio::test]
async fn a_clicked_datagram_shows_its_udp_header_field_by_field_over_its_bytes() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;
    echo(&browser, "a", &["hello"]).await;

    // The echo's answer, selected from its log line.
    let line = "#log li[data-kind=client_recv][data-socket=a]";
    let dg = browser.attr(line, "data-dg").await.expect("the answer names its datagram");
    browser.click(line).await;
    browser.wait_for("#headers[data-state=shown]", WAIT).await;
    let field = |name: &str| format!("#headers [data-name='{name}'] dd");
    let echo_port = relay.addr(ServerName::Echo).port().to_string();
    assert_eq!(browser.text(&field("UDP Source port")).await, echo_port);
    assert_eq!(browser.text(&field("UDP Length")).await, "13 (8-byte header + 5 of data)");
    let checksum = browser.text(&field("UDP Checksum")).await;
    assert!(checksum.ends_with("[correct]"), "the checksum validates: {checksum}");
    assert_eq!(browser.text(&field("IPv4 Source address")).await, "127.0.0.1");
    assert_eq!(browser.text(&field("IPv4 Protocol")).await, "UDP (17)");

    // The hex view shows the same 8 bytes the relay's capture writes.
    let api = http_get(relay.http(), &format!("/api/datagrams/{dg}")).await;
    let headers: Value = serde_json::from_str(&api.text()).expect("the headers are JSON");
    let header_hex = headers["header_hex"].as_str().expect("header_hex");
    let udp_hex = &header_hex[header_hex.len() - 16..];
    let shown = browser
        .eval(
            "return Array.from(document.querySelectorAll('#headers .hex span.udp')).map(e => e.textContent).join('');",
            vec![],
        )
        .await;
    assert_eq!(shown.as_str(), Some(udp_hex), "the hex view's UDP header is the capture's");
    assert!(checksum.starts_with(&format!("0x{}", &udp_hex[12..])), "{checksum} vs {udp_hex}");
    let dst = headers["dst_port"].as_u64().expect("dst_port").to_string();
    assert_eq!(browser.text(&field("UDP Destination port")).await, dst);

    // Pointing at a field lights its bytes, as Wireshark's byte pane does: 2 for the length.
    browser
        .eval(
            "document.querySelector(\"#headers [data-name='UDP Length']\").dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));",
            vec![],
        )
        .await;
    assert_eq!(count(&browser, "#headers .hex span.lit").await, 2);
    let lit = browser
        .eval("return Array.from(document.querySelectorAll('#headers .hex span.lit')).map(e => e.textContent).join('');", vec![])
        .await;
    assert_eq!(lit.as_str(), Some("000d"), "13 bytes, big-endian");
    // The download links reach the relay's capture and events, as files.
    for (link, name) in
        [("dl-capture", "udp-playground.pcapng"), ("dl-events", "udp-playground-events.jsonl")]
    {
        assert_eq!(browser.attr(&format!("#{link}"), "download").await.as_deref(), Some(name));
        let script = "const done = arguments[arguments.length - 1];
            fetch(document.getElementById(arguments[0]).href).then(r => done(r.status), e => done(String(e)));";
        let status = Browser::limit(
            "following a download link",
            Browser::COMMAND,
            browser.client().execute_async(script, vec![json!(link)]),
        )
        .await
        .expect("the link answers");
        assert_eq!(status, json!(200), "#{link}");
    }
    browser.screenshot("ui-headers").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_saved_session_replays_from_a_file_with_play_step_scrub_and_speed() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;
    echo(&browser, "a", &["one", "two", "three"]).await;

    // Save: the link is given this session's messages as a file just before it is followed.
    browser.click("#save-events").await;
    let script = "const done = arguments[arguments.length - 1];
        fetch(document.getElementById('save-events').href).then(r => r.text()).then(done, e => done('failed: ' + e));";
    let saved = Browser::limit(
        "reading the saved file",
        Browser::COMMAND,
        browser.client().execute_async(script, vec![]),
    )
    .await
    .expect("the saved file reads");
    let saved = saved.as_str().expect("text").to_owned();
    let lines: Vec<Value> =
        saved.lines().map(|l| serde_json::from_str(l).expect("each line is JSON")).collect();
    assert_eq!(lines[0]["type"], "hello", "the hello comes first");
    let session = lines[0]["session"].as_str().expect("a session").to_owned();
    let sends = lines.iter().filter(|l| l["kind"] == "client_send").count();
    assert_eq!(sends, 3, "{saved}");
    let file = scratch("ui-replay").join("session.jsonl");
    std::fs::write(&file, &saved).expect("the file is written");

    // Replay it: the same diagram and log, from the file.
    let input = browser.find("#player-file").await;
    Browser::limit("choosing the file", Browser::COMMAND, input.send_keys(&file.display().to_string()))
        .await
        .expect("the file input takes a path");
    browser.wait_for(REPLAYING, WAIT).await;
    browser.wait_for("#player:not([hidden])[data-events]", WAIT).await;
    wait_count(&browser, "#log li[data-kind=client_recv][data-socket=a]", 3).await;
    browser.wait_for("#player[data-playing=false]", WAIT).await;
    let replies = browser.text("#log").await;
    for text in ["one", "two", "three"] {
        assert!(replies.contains(&format!("\"{text}\"")), "the log shows {text}: {replies}");
    }
    assert_eq!(arrows(&browser).await, 6, "three sends and three echoes");
    // Live traffic is set aside while a recording is shown.
    browser.wait_for_text("#status", "Replaying a recording", WAIT).await;
    // The diagram follows the recording's newest event, which is not live.
    let scale = browser.wait_for_text("#scale", "following", WAIT).await;
    assert!(!scale.contains("live"), "{scale}");

    // Scrub back to the start: the drawing starts over, with nothing sent yet.
    browser
        .eval(
            "const s = document.getElementById('player-scrub'); s.value = 0; s.dispatchEvent(new Event('input'));",
            vec![],
        )
        .await;
    let started = Instant::now();
    while arrows(&browser).await != 0 || count(&browser, "#log li[data-kind=client_recv]").await != 0 {
        assert!(started.elapsed() < WAIT, "scrubbing to 0 did not clear the drawing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Step: one event at a time, paused, until the first datagram is drawn.
    let mut steps = 0;
    while arrows(&browser).await == 0 {
        let before = count(&browser, "#log li").await;
        browser.click("#player-step").await;
        steps += 1;
        assert!(steps <= 5, "five steps and still no datagram");
        let started = Instant::now();
        while count(&browser, "#log li").await == before {
            assert!(started.elapsed() < WAIT, "a step delivered nothing");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(arrows(&browser).await, 1, "a step shows one event, here the first send");
    assert_eq!(browser.attr("#player", "data-playing").await.as_deref(), Some("false"));
    // And at 16× to the end.
    browser.eval("const s = document.getElementById('player-speed'); s.value = '16'; s.dispatchEvent(new Event('change'));", vec![]).await;
    browser.click("#player-play").await;
    wait_count(&browser, "#log li[data-kind=client_recv][data-socket=a]", 3).await;
    browser.wait_for("#player[data-playing=false]", WAIT).await;
    assert_eq!(arrows(&browser).await, 6);
    browser.screenshot("ui-replay").await;

    // The live controls wait while a recording is shown: a send (a script's click, as the
    // dimmed controls take no pointer) is refused and says why, and nothing reaches the relay.
    browser.eval("document.getElementById('send-btn').click();", vec![]).await;
    browser.wait_for_text("#error", "A recording is shown: press Back to live", WAIT).await;

    // Back to live: the same session, which went on behind the recording, drawn again at once,
    // its socket still open. Not a reconnect.
    browser.click("#player-exit").await;
    browser.wait_for(CONNECTED, WAIT).await;
    wait_count(&browser, "#log li[data-kind=client_recv][data-socket=a]", 3).await;
    assert_eq!(arrows(&browser).await, 6, "the live session's three round trips, no more");
    let status = browser.text("#status").await;
    assert!(status.contains(&session) && !status.contains("Reconnected"), "{status}");
    browser.fill("#send-text", "four").await;
    browser.click("#send-btn").await;
    browser.wait_for_text("#log li[data-kind=client_recv][data-socket=a]", "four", WAIT).await;
    let events = http_get(relay.http(), "/api/events.jsonl").await;
    let sends = String::from_utf8_lossy(&events.body)
        .lines()
        .filter(|l| l.contains(r#""kind":"client_send""#))
        .count();
    assert_eq!(sends, 4, "one, two, three and four: the refused send never left");
    browser.close().await;
    relay.shutdown().await;
}

/// `python3 -m http.server` on a free loopback port, killed when dropped.
struct StaticServer {
    child: Child,
    port: u16,
}

impl StaticServer {
    fn start(dir: &Path) -> StaticServer {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new("python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs: ./scripts/test installs it");
        let server = StaticServer { child, port };
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(started.elapsed() < WAIT, "python3 -m http.server did not listen within {WAIT:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_exported_site_on_a_static_server_replays_a_lesson_with_no_relay() {
    let dir = scratch("ui-demo-site");
    let recorded = tokio::time::timeout(Duration::from_secs(240), relay::export::export_site(&dir))
        .await
        .expect("the export finishes within 4 minutes")
        .expect("the export succeeds");
    assert!(recorded.contains(&"truncation"), "{recorded:?}");
    // No relay runs from here on: only a static file server.
    let server = StaticServer::start(&dir);
    let browser = Browser::open(&format!("http://127.0.0.1:{}/?lesson=truncation", server.port)).await;
    browser.set_viewport(1400, 900).await;
    browser.wait_for(REPLAYING, Browser::LOAD).await;
    let banner = browser.wait_for_text("#demo-banner", "replaying a recording", WAIT).await;
    assert!(banner.contains("No relay is running here"), "{banner}");
    for slug in ["no-listener", "truncation", "outside-clients"] {
        browser.wait_for(&format!("#demo-banner a[data-slug='{slug}']"), WAIT).await;
    }
    // The lesson's datagram, cut by the receive buffer, drawn from the recording.
    let line =
        browser.wait_for_text("#log li[data-kind=client_recv]", "cut to 1,024 of 2,000 bytes", WAIT).await;
    assert!(line.contains("1,024"), "{line}");
    // With the lessons panel's own caption, as when the lesson runs live, and its Replay.
    browser.wait_for_text("#caption[data-slug=truncation]", "1,024", WAIT).await;
    browser.wait_for("#player[data-playing=false]", WAIT).await;
    browser.click("#replay-btn").await;
    // The replay starts over: the lesson's one receipt comes back, and only once (the log
    // may still show the first play's for a moment).
    let started = std::time::Instant::now();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    loop {
        let n = count(&browser, "#log li[data-kind=client_recv]").await;
        assert!(n <= 1, "replayed from its start, once: {n} receipts");
        if n == 1 {
            break;
        }
        assert!(started.elapsed() < WAIT, "the replay did not come back");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    browser.wait_for_text("#log li[data-kind=client_recv]", "cut to 1,024 of 2,000 bytes", WAIT).await;
    let row = browser
        .eval("return document.getElementById('dl-capture').parentElement.offsetParent === null;", vec![])
        .await;
    assert_eq!(row, json!(true), "a site with no relay offers no relay downloads");
    // It never tried a WebSocket, which would fail with an error in the console.
    let errors: Vec<_> = browser.console().await.into_iter().filter(|e| e.level == "SEVERE").collect();
    assert!(errors.is_empty(), "the demo logged errors: {errors:#?}");
    browser.screenshot("ui-demo").await;
    // At 16× a lesson is done when its recording is: heartbeat-eviction's 9 s in about 0.6.
    // (Its recording is read first, and then plays from its start at 1×.)
    browser.click("#lesson-list [data-slug=heartbeat-eviction]").await;
    browser.wait_for("#caption[data-slug=heartbeat-eviction]", WAIT).await;
    browser
        .eval("const s = document.getElementById('player-speed'); s.value = '16'; s.dispatchEvent(new Event('change'));", vec![])
        .await;
    let faster = Instant::now();
    browser.wait_for("#lesson-list [data-slug=heartbeat-eviction][data-state=done]", WAIT).await;
    assert!(
        faster.elapsed() < Duration::from_secs(5),
        "done {:?} after 16× began: the recording's pace, not the 9 s of the lesson run live",
        faster.elapsed()
    );
    browser.wait_for("#player[data-playing=false]", WAIT).await;

    // Another lesson, picked from the list, then the other language: the switch reloads the
    // page, with the lesson shown (not the one the URL named), and the banner in Chinese too.
    browser.click("#lesson-list [data-slug=no-listener]").await;
    browser.wait_for("#caption[data-slug=no-listener]", WAIT).await;
    browser.click("#lang-btn").await;
    browser.wait_for("html[lang=zh-CN]", Browser::LOAD).await;
    let banner = browser.wait_for_text("#demo-banner", "这里没有运行中继", WAIT).await;
    assert!(!banner.contains("No relay"), "{banner}");
    browser.wait_for("#caption[data-slug=no-listener]", WAIT).await;
    browser.close().await;
    drop(server);
}
