//! The page draws the link in front of each server where it acted: a datagram lost on the way
//! there or back, a copy, a hold, a lost fragment, each on the arrow of the datagram the relay
//! names (`dg`), and told apart from the lossy server's own drop. The link panel sets the link
//! and its faults, and shows every change, whoever made it. A connection the relay closes
//! with a reason shows that reason.
//!
//! Each test drives the real page in headless Chromium at 1,400 × 900 against a real relay,
//! reads the event log (`#log li[data-kind][data-dg]`, with `data-fate`, `data-label`, the
//! words on the canvas, and `data-link`, what the link did), and saves a screenshot into
//! `target/screenshots/ui-wire-*.png`. Every wait is bounded.

use std::time::Duration;

use protocol::ServerName;
use serde_json::json;

use crate::browser::{Browser, CONNECTED, WAIT};
use crate::support::{TestRelay, http_request};

/// The page in a 1,400 × 900 viewport, tall enough to show the link panel under the diagram
/// (a shorter one keeps it a scroll below: see `a_small_laptop_and_a_720p_projector_keep_the_diagram_in_view`).
async fn page(relay: &TestRelay) -> Browser {
    let browser = Browser::open(&format!("http://{}/", relay.http())).await;
    browser.set_viewport(1400, 900).await;
    browser.wait_for(CONNECTED, Browser::LOAD).await;
    browser
}

async fn open_socket(browser: &Browser, name: &str, server: &str) {
    browser.fill("#open-name", name).await;
    browser.eval("document.getElementById('open-server').value = arguments[0];", vec![json!(server)]).await;
    browser.click("#open-btn").await;
    browser.wait_for(&format!("#log li[data-kind=client_open][data-socket={name}]"), WAIT).await;
}

/// Sends `text` on socket `socket` with the "Send" form.
async fn send_on(browser: &Browser, socket: &str, text: &str) {
    send_repeated(browser, socket, text, 1).await;
}

/// Sends `text` repeated `times` times: the text is set by script, so a long one costs no
/// typing and no megabytes over WebDriver.
async fn send_repeated(browser: &Browser, socket: &str, text: &str, times: usize) {
    browser
        .eval(
            "document.getElementById('send-socket').value = arguments[0];
             document.getElementById('send-text').value = arguments[1].repeat(arguments[2]);",
            vec![json!(socket), json!(text), json!(times)],
        )
        .await;
    browser.click("#send-btn").await;
}

/// One log line's attributes and text.
#[derive(Debug, serde::Deserialize)]
struct Line {
    dg: Option<String>,
    copy: Option<String>,
    fate: Option<String>,
    label: Option<String>,
    link: Option<String>,
    text: String,
}

/// Every log line matching `css`, oldest first.
async fn lines(browser: &Browser, css: &str) -> Vec<Line> {
    let script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => ({
                    dg: e.getAttribute('data-dg'),
                    copy: e.getAttribute('data-copy'), fate: e.getAttribute('data-fate'),
                    label: e.getAttribute('data-label'), link: e.getAttribute('data-link'),
                    text: e.textContent })).reverse();";
    let value = browser.eval(script, vec![json!(css)]).await;
    serde_json::from_value(value).expect("a list of log lines")
}

/// The one log line matching `css`, once there is one.
async fn line(browser: &Browser, css: &str) -> Line {
    browser.wait_for(css, WAIT).await;
    lines(browser, css).await.pop().expect("the line just found")
}

/// Types `value` into the link panel's field for `dir` and `field`.
async fn type_link(browser: &Browser, dir: &str, field: &str, value: &str) {
    browser.fill(&format!("#link-{dir}-{field}"), value).await;
}

async fn input_value(browser: &Browser, css: &str) -> String {
    let value = browser.eval("return document.querySelector(arguments[0]).value;", vec![json!(css)]).await;
    value.as_str().unwrap_or_default().to_owned()
}

/// The first element matching `css` is inside the viewport: a teacher sees it without scrolling.
async fn assert_in_view(browser: &Browser, css: &str) {
    let script = "const r = document.querySelector(arguments[0]).getBoundingClientRect();
                  return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight && r.right <= window.innerWidth;";
    let seen = browser.eval(script, vec![json!(css)]).await;
    assert_eq!(seen, json!(true), "{css} is out of view at 1,400 × 900");
}

fn assert_no_page_errors(console: Vec<crate::browser::ConsoleEntry>) {
    let errors: Vec<_> = console.into_iter().filter(|e| e.level == "SEVERE").collect();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

#[tokio::test]
async fn a_loss_set_from_the_panel_draws_the_answer_lost_on_the_way_back() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;
    for css in ["#link-panel", "#link-apply", "#link-out-mtu", "#send-btn", "#lossy-apply"] {
        assert_in_view(&browser, css).await;
    }

    // Typing a value and pressing Apply sets it once, and Apply again sends nothing new.
    type_link(&browser, "out", "loss", "1").await;
    browser.click("#link-apply").await;
    let configured = "#log li[data-kind=link_configured]";
    browser.wait_for_text(configured, "echo: link out loss 100%", WAIT).await;
    browser.click("#link-apply").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(lines(&browser, configured).await.len(), 1, "one Apply, one change");
    browser.wait_for("#link-row-out[data-settings='loss 100%']", WAIT).await;

    open_socket(&browser, "a", "echo").await;
    send_on(&browser, "a", "hello").await;
    let lost = line(&browser, "#log li[data-kind=link_drop][data-fate=lost-link-out]").await;
    let dg = lost.dg.clone().expect("the drop names its datagram");
    let label = lost.label.clone().unwrap_or_default();
    assert_eq!(label, "↯ LOST ON LINK \"hello\" 5B · on the way back", "{lost:?}");
    assert_eq!(lost.link.as_deref(), Some("out lost"));
    assert!(lost.text.contains("link echo → a: LOST \"hello\" (5 B) on the way back"), "{lost:?}");
    // The server did send it: its send is on the same arrow, and nothing arrived.
    let sent = line(&browser, &format!("#log li[data-kind=server_send][data-dg='{dg}']")).await;
    assert!(sent.text.contains("echo → a"), "{sent:?}");
    let request = line(&browser, "#log li[data-kind=server_recv]").await;
    assert_eq!(request.fate.as_deref(), Some("delivered"), "the way there was fine: {request:?}");
    browser.wait_for("#stats dd[data-stat=link-lost]", WAIT).await;
    assert_eq!(browser.text("#stats dd[data-stat=link-lost]").await, "0 / 1");
    assert!(browser.find_all("#log li[data-kind=client_recv]").await.is_empty(), "nothing came back");

    // A change made elsewhere (here the HTTP API, as another tab would) shows in the panel.
    let json = [("Content-Type", "application/json")];
    let put = http_request(relay.http(), "PUT", "/api/links/echo/in", &json, r#"{"delay_ms":50}"#).await;
    assert_eq!(put.status, 200, "{}", put.text());
    browser.wait_for("#link-row-in[data-settings='delay 50 ms']", WAIT).await;
    assert_eq!(input_value(&browser, "#link-in-delay_ms").await, "50");
    assert_eq!(input_value(&browser, "#link-out-loss").await, "1", "the other direction is kept");

    browser.click("#log li[data-kind=link_drop]").await;
    browser.wait_for("#details[data-fate=lost-link-out]", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains("LOST ON THE LINK on the way back"), "{details}");
    assert_no_page_errors(browser.console().await);
    browser.screenshot("ui-wire-lost-back").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_drop_next_fault_draws_the_datagram_lost_on_the_way_there_apart_from_a_lossy_drop() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let browser = page(&relay).await;
    open_socket(&browser, "e", "echo").await;
    open_socket(&browser, "l", "lossy").await;

    browser.click("#link-in-drop").await;
    send_on(&browser, "e", "first").await;
    let lost = line(&browser, "#log li[data-kind=link_drop][data-fate=lost-link-in]").await;
    let dg = lost.dg.clone().expect("a dg");
    assert_eq!(
        lost.label.as_deref(),
        Some("↯ LOST ON LINK \"first\" 5B · dropped by a fault, on the way there")
    );
    assert_eq!(lost.link.as_deref(), Some("in lost fault"));
    let send = line(&browser, &format!("#log li[data-kind=client_send][data-dg='{dg}']")).await;
    assert!(send.text.contains("e → echo"), "{send:?}");
    // The fault took exactly one datagram: the next one is read and answered.
    send_on(&browser, "e", "second").await;
    browser.wait_for_text("#log li[data-kind=client_recv][data-socket=e]", "second", WAIT).await;
    assert!(
        browser.find_all(&format!("#log li[data-kind=server_recv][data-dg='{dg}']")).await.is_empty(),
        "the server never saw the lost one"
    );

    // The lossy server's drop: it read the datagram, then threw it away on purpose.
    send_on(&browser, "l", "please").await;
    let dropped = line(&browser, "#log li[data-kind=server_drop][data-fate=dropped]").await;
    assert!(dropped.label.as_deref().is_some_and(|l| l.starts_with("✕ DROPPED")), "{dropped:?}");
    assert_eq!(dropped.link, None, "not the link's doing");
    let read = line(
        &browser,
        &format!("#log li[data-kind=server_recv][data-dg='{}']", dropped.dg.as_deref().unwrap_or("?")),
    )
    .await;
    assert!(read.text.contains("lossy read"), "{read:?}");
    browser.wait_for("#stats dd[data-stat=link-lost]", WAIT).await;
    assert_eq!(browser.text("#stats dd[data-stat=link-lost]").await, "1 / 0");
    assert_eq!(browser.text("#stats dd[data-stat=dropped]").await, "1");
    assert_no_page_errors(browser.console().await);
    browser.screenshot("ui-wire-lost-there").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_duplicate_a_hold_and_a_reorder_are_drawn_on_their_own_datagrams() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;
    open_socket(&browser, "d", "echo").await;

    // Duplicated on the way there: the server reads both and answers both.
    browser.click("#link-in-dup").await;
    send_on(&browser, "d", "twice").await;
    let dup = line(&browser, "#log li[data-kind=link_duplicate]").await;
    let (dg, copy) = (dup.dg.clone().expect("dg"), dup.copy.clone().expect("the copy's dg"));
    assert_ne!(dg, copy);
    assert_eq!(dup.label.as_deref(), Some("⇉ LINK COPY \"twice\" 5B"), "{dup:?}");
    assert_eq!(dup.link.as_deref(), Some("in copy"));
    for read in [&dg, &copy] {
        browser.wait_for(&format!("#log li[data-kind=server_recv][data-dg='{read}']"), WAIT).await;
    }
    let copy_read = line(&browser, &format!("#log li[data-kind=server_recv][data-dg='{copy}']")).await;
    assert!(copy_read.label.as_deref().is_some_and(|l| l.starts_with("⇉ LINK COPY")), "{copy_read:?}");
    let answers = "#log li[data-kind=client_recv][data-socket=d]";
    let started = std::time::Instant::now();
    while lines(&browser, answers).await.len() < 2 {
        assert!(started.elapsed() < WAIT, "two answers, one to each copy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let to_copy: Vec<Line> = lines(&browser, answers)
        .await
        .into_iter()
        .filter(|l| l.label.as_deref().is_some_and(|l| l.ends_with("· answers the link's copy")))
        .collect();
    assert_eq!(to_copy.len(), 1, "the server's answer to the copy says so: {to_copy:#?}");

    // Held on the way back, from its button: its arrival is drawn late, with the hold.
    browser.fill("#link-hold-ms", "300").await;
    browser.click("#link-out-hold").await;
    send_on(&browser, "d", "slowly").await;
    let hold = line(&browser, "#log li[data-kind=link_hold]").await;
    let held = hold.dg.clone().expect("dg");
    assert!(hold.text.contains("for 300 ms (a hold-next fault)"), "{hold:?}");
    let arrived = line(&browser, &format!("#log li[data-kind=client_recv][data-dg='{held}']")).await;
    assert_eq!(arrived.label.as_deref(), Some("\"slowly\" 6B · held 300 ms (fault)"), "{arrived:?}");
    assert_eq!(arrived.link.as_deref(), Some("out held fault"));
    let rtt: f64 = arrived
        .text
        .split("RTT ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("an RTT in {arrived:?}"));
    assert!(rtt >= 299.0, "the hold is in the round trip: {arrived:?}");
    line(&browser, &format!("#log li[data-kind=link_release][data-dg='{held}']")).await;

    // Reordered on the way back: the first answer waits until the second has passed it.
    type_link(&browser, "out", "reorder", "1").await;
    browser.click("#link-apply").await;
    browser.wait_for_text("#log li[data-kind=link_configured]", "reorder 100%", WAIT).await;
    // Both sent at once: the link waits at most 200 ms for the next datagram before it lets
    // a held one go anyway, longer than a round of WebDriver.
    browser
        .eval(
            "const text = document.getElementById('send-text');
             for (const t of ['one', 'two']) { text.value = t; document.getElementById('send-btn').click(); }",
            vec![],
        )
        .await;
    let reordered = line(&browser, "#log li[data-kind=client_recv][data-link~=reordered]").await;
    assert!(reordered.text.contains("\"one\""), "the first answer is the one held: {reordered:?}");
    let label = reordered.label.clone().unwrap_or_default();
    // Marked out of order first (the lessons' mark), then the link's own account.
    assert!(label.contains("\"one\" 3B · reordered: held "), "{label}");
    // The log is in the relay's order: "two", which came first, is already in it.
    let order: Vec<String> = lines(&browser, answers)
        .await
        .into_iter()
        .map(|l| l.text)
        .filter(|t| t.contains("\"one\"") || t.contains("\"two\""))
        .collect();
    assert!(order[0].contains("\"two\"") && order[1].contains("\"one\""), "two arrived first: {order:#?}");
    browser.wait_for("#stats dd[data-stat=link-copies]", WAIT).await;
    assert_eq!(browser.text("#stats dd[data-stat=link-copies]").await, "1");
    assert_no_page_errors(browser.console().await);
    browser.screenshot("ui-wire-copy-hold-reorder").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_lost_fragment_loses_the_whole_datagram_and_says_which() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;
    open_socket(&browser, "f", "echo").await;

    // Both settings typed, one Apply: one op with both.
    type_link(&browser, "in", "mtu", "1500").await;
    type_link(&browser, "in", "loss", "1").await;
    browser.click("#link-apply").await;
    browser.wait_for_text("#log li[data-kind=link_configured]", "loss 100% · mtu 1,500 B", WAIT).await;
    assert_eq!(lines(&browser, "#log li[data-kind=link_configured]").await.len(), 1);

    // 2,000 bytes and 8 of UDP header in fragments of at most 1,480: two fragments.
    send_repeated(&browser, "f", "x", 2_000).await;
    let lost = line(&browser, "#log li[data-kind=link_drop][data-link~=fragment]").await;
    assert_eq!(lost.fate.as_deref(), Some("lost-link-in"));
    let label = lost.label.clone().unwrap_or_default();
    assert!(label.ends_with("2000B · fragment 1 of 2 lost, on the way there"), "{label}");
    assert!(lost.text.contains("fragment 1 of 2 lost"), "{lost:?}");

    browser.click("#log li[data-kind=link_drop]").await;
    browser.wait_for("#details[data-fate=lost-link-in]", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains("fragment 1 of 2 lost, so the whole datagram is"), "{details}");
    assert_no_page_errors(browser.console().await);
    browser.screenshot("ui-wire-fragment").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_link_set_at_start_is_in_the_panel_and_under_the_server() {
    let relay = TestRelay::start_with(|c| {
        let echo = c.links.entry(ServerName::Echo).or_default();
        echo.outbound.delay_ms = 200;
        echo.inbound.duplicate = 0.5;
    })
    .await;
    let browser = page(&relay).await;
    browser.wait_for("#link-row-out[data-settings='delay 200 ms']", WAIT).await;
    browser.wait_for("#link-row-in[data-settings='duplicate 50%']", WAIT).await;
    assert_eq!(input_value(&browser, "#link-out-delay_ms").await, "200");
    // Another server's link is shown when it is picked.
    browser.eval("const s = document.getElementById('link-server'); s.value = 'lossy'; s.dispatchEvent(new Event('change'));", vec![]).await;
    browser.wait_for("#link-row-out[data-settings=perfect]", WAIT).await;
    assert_eq!(input_value(&browser, "#link-out-delay_ms").await, "0");
    browser.eval("const s = document.getElementById('link-server'); s.value = 'echo'; s.dispatchEvent(new Event('change'));", vec![]).await;
    browser.wait_for("#link-row-out[data-settings='delay 200 ms']", WAIT).await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_connection_the_relay_closes_with_a_reason_shows_the_reason() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;
    open_socket(&browser, "big", "echo").await;
    // A text too long for any frame the relay reads: it closes with 1009 and says why.
    send_repeated(&browser, "big", "x", 1_100_000).await;
    let error = browser.wait_for_text("#error", "code 1009, message too big", WAIT).await;
    assert!(error.starts_with("The relay closed the connection (code 1009, message too big): "), "{error}");
    let closed = line(&browser, "#log li[data-kind=ws_close]").await;
    assert_eq!(closed.text.trim_start().split_once("  ").map(|(_, t)| t), Some(error.as_str()));
    // Then it reconnects, in a new session, and still says why the last one ended.
    browser.wait_for(CONNECTED, WAIT).await;
    let status = browser.wait_for_text("#status", "Reconnected", WAIT).await;
    assert!(status.contains("code 1009"), "{status}");
    browser.screenshot("ui-wire-closed").await;
    browser.close().await;
    relay.shutdown().await;
}
