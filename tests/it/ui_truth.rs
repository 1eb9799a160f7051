//! The page draws what happened, by the relay's names for each datagram (`dg`, `reply_to`),
//! not by guessing pairs in order. One test per drawing that a first-in-first-out page got
//! wrong: a datagram to nobody, a read cut by a small buffer, a reply taken for the wrong
//! attempt, and the bytes each chat client got.
//!
//! Each test drives the real page in headless Chromium against a real relay, reads the event
//! log (`#log li[data-kind][data-socket]`, with `data-fate` and `data-label`, the words the
//! canvas prints on the arrow), the details panel and the stats, and saves a screenshot into
//! `target/screenshots/ui-truth-*.png`. Every wait is bounded.

use std::time::Duration;

use serde_json::json;

use crate::browser::{Browser, CONNECTED, WAIT};
use crate::support::TestRelay;

async fn page(relay: &TestRelay) -> Browser {
    let browser = Browser::open(&format!("http://{}/", relay.http())).await;
    browser.wait_for(CONNECTED, Browser::LOAD).await;
    browser
}

/// Opens socket `name` on `server` with the "Open a socket" form, as it is set otherwise.
async fn open_socket(browser: &Browser, name: &str, server: &str) {
    browser.fill("#open-name", name).await;
    browser.eval("document.getElementById('open-server').value = arguments[0];", vec![json!(server)]).await;
    browser.click("#open-btn").await;
    browser.wait_for(&format!("#log li[data-kind=client_open][data-socket={name}]"), WAIT).await;
}

/// Sends `text` on socket `socket` with the "Send" form. The text is set by script, so a long
/// one costs no typing.
async fn send_on(browser: &Browser, socket: &str, text: &str) {
    browser
        .eval(
            "document.getElementById('send-socket').value = arguments[0];
             document.getElementById('send-text').value = arguments[1];",
            vec![json!(socket), json!(text)],
        )
        .await;
    browser.click("#send-btn").await;
}

/// Sets the lossy server's drop rate and delay with its form, and waits for the change. The
/// page sends only what differs from the relay's settings, the test relay's 0 and 0, and the
/// relay announces each: the helper waits for those.
async fn configure_lossy(browser: &Browser, drop: &str, delay_ms: &str) {
    browser.fill("#lossy-drop", drop).await;
    browser.fill("#lossy-delay", delay_ms).await;
    browser.click("#lossy-apply").await;
    for (setting, value) in [("drop", drop), ("delay_ms", delay_ms)] {
        if value != "0" {
            browser.wait_for_text("#log", &format!("{setting} set to {value}"), WAIT).await;
        }
    }
}

/// The value of one row of the stats panel, once it shows `expected`.
async fn wait_for_stat(browser: &Browser, stat: &str, expected: &str) {
    let css = format!("#stats dd[data-stat={stat}]");
    let started = std::time::Instant::now();
    loop {
        let value = browser
            .eval(
                "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
                vec![json!(css)],
            )
            .await;
        if value.as_str() == Some(expected) {
            return;
        }
        assert!(started.elapsed() < WAIT, "{css} showed {value} instead of {expected:?} for {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Selects the log line matching `css`, as a click on it does. The click is dispatched on the
/// element itself: a pointer click at its place could land on a line written above it since.
async fn select_line(browser: &Browser, css: &str) {
    browser.wait_for(css, WAIT).await;
    browser.eval("document.querySelector(arguments[0]).click();", vec![json!(css)]).await;
}

/// `(data-label, text)` of every log line matching `css`, oldest first.
async fn log_lines(browser: &Browser, css: &str) -> Vec<(String, String)> {
    let script = "return Array.from(document.querySelectorAll(arguments[0]))
                    .map(e => [e.getAttribute('data-label') || '', e.textContent]).reverse();";
    let value = browser.eval(script, vec![json!(css)]).await;
    serde_json::from_value(value).expect("a list of pairs of strings")
}

/// The port a socket of this page was opened on, from its `client_open` log line.
async fn local_port(browser: &Browser, socket: &str) -> u16 {
    let line = browser.text(&format!("#log li[data-kind=client_open][data-socket={socket}]")).await;
    let local = line.split(" opened on ").nth(1).and_then(|rest| rest.split(',').next());
    let port = local.and_then(|addr| addr.rsplit(':').next()).and_then(|port| port.parse().ok());
    port.unwrap_or_else(|| panic!("no local port in {line:?}"))
}

/// The number after `RTT ` in a log line, in milliseconds.
fn rtt_ms(line: &str) -> f64 {
    let after = line.split("RTT ").nth(1).unwrap_or_else(|| panic!("no RTT in {line:?}"));
    let number = after.split(' ').next().unwrap_or_default();
    number.parse().unwrap_or_else(|_| panic!("RTT {number:?} is not a number in {line:?}"))
}

fn assert_no_page_errors(console: Vec<crate::browser::ConsoleEntry>) {
    let errors: Vec<_> = console.into_iter().filter(|e| e.level == "SEVERE").collect();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
}

#[tokio::test]
async fn a_datagram_sent_to_nobody_is_drawn_vanished_and_never_received() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;

    // Unconnected (sendto): the socket never learns that nobody listened.
    browser.click("#open-connect").await;
    open_socket(&browser, "n", "nobody").await;
    send_on(&browser, "n", "anyone there?").await;
    let vanished = "#log li[data-kind=client_vanished][data-socket=n][data-fate=vanished]";
    let line = browser.wait_for_text(vanished, "VANISHED", WAIT).await;
    assert!(line.contains("n → nobody") && line.contains("nothing listens at"), "{line}");

    // Connected: the same datagram vanishes, and the kernel also reports ECONNREFUSED.
    browser.click("#open-connect").await;
    open_socket(&browser, "m", "nobody").await;
    send_on(&browser, "m", "hello?").await;
    browser.wait_for("#log li[data-kind=client_vanished][data-socket=m][data-fate=vanished]", WAIT).await;
    browser.wait_for("#log li[data-kind=client_refused][data-socket=m]", WAIT).await;
    for (label, text) in log_lines(&browser, "#log li[data-kind=client_vanished]").await {
        assert!(label.starts_with("∅ VANISHED \""), "the arrow says where it died: {label:?} ({text})");
    }
    assert!(
        browser.find_all("#log li[data-kind=client_refused][data-socket=n]").await.is_empty(),
        "an unconnected socket hears nothing of it"
    );

    wait_for_stat(&browser, "vanished", "2").await;
    assert_eq!(browser.text("#stats dd[data-stat=sent]").await, "2");
    assert_eq!(browser.text("#stats dd[data-stat=received]").await, "0", "nothing arrived anywhere");
    let lanes = browser.dom_text("#lanes").await;
    assert!(lanes.contains("nobody"), "a lane for the port nobody listens at: {lanes}");

    select_line(&browser, "#log li[data-kind=client_vanished][data-socket=n]").await;
    browser.wait_for("#details[data-fate=vanished]", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains("VANISHED") && details.contains("\"anyone there?\""), "{details}");
    assert_no_page_errors(browser.console().await);

    browser.screenshot("ui-truth-vanished").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_datagram_longer_than_the_receive_buffer_is_labelled_cut() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;

    // Like Python's recvfrom(1024): a 2,000-byte echo is cut and its rest is lost.
    browser.fill("#open-recv-buffer", "1024").await;
    open_socket(&browser, "b", "echo").await;
    let opened = browser.text("#log li[data-kind=client_open][data-socket=b]").await;
    assert!(opened.contains("reads at most 1,024 bytes"), "{opened}");
    send_on(&browser, "b", &"x".repeat(2_000)).await;

    let cut = "#log li[data-kind=client_recv][data-socket=b][data-label*='cut to 1,024 of 2,000 bytes']";
    let line = browser.wait_for_text(cut, "cut to 1,024 of 2,000 bytes: the rest is lost", WAIT).await;
    assert!(line.contains("echo → b") && line.contains("(2000 B)"), "{line}");
    // The server read it whole: only the socket's read cut it.
    let (request, _) = log_lines(&browser, "#log li[data-kind=server_recv]").await.pop().expect("a read");
    assert!(!request.contains("cut"), "{request}");
    wait_for_stat(&browser, "cut", "1").await;

    select_line(&browser, cut).await;
    browser.wait_for("#details[data-label*='cut to 1,024 of 2,000 bytes']", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains("cut to 1,024 of 2,000 bytes") && details.contains("2,000 bytes"), "{details}");
    assert_no_page_errors(browser.console().await);
    // With the details and the datagram's headers open the page is still one screen: its
    // column scrolls, the page does not run under the keys at the bottom. (At 1,280 × 757, a
    // 1,280 × 900 window's page, it ran 61 px past the window.)
    browser.set_viewport(1280, 757).await;
    browser.wait_for("#headers[data-state=shown]", WAIT).await;
    let sizes =
        browser.eval("return [document.documentElement.scrollHeight, window.innerHeight];", vec![]).await;
    let (page, window) = (sizes[0].as_f64().unwrap_or(f64::NAN), sizes[1].as_f64().unwrap_or(f64::NAN));
    assert!(page <= window, "the page is {page} px tall in a {window}-px window");

    browser.screenshot("ui-truth-cut").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_reply_to_attempt_1_taken_for_attempt_2_is_labelled_with_the_attempt_it_answers() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;

    // The server holds each answer 300 ms; the client waits 150 ms, then sends attempt 2 and
    // waits 300 ms more. Attempt 1's answer arrives halfway through attempt 2's wait, and
    // without request IDs the client takes it as the answer to attempt 2.
    configure_lossy(&browser, "0", "300").await;
    open_socket(&browser, "r", "lossy").await;
    browser.click("#retry-on").await;
    browser.fill("#retry-initial", "150").await;
    send_on(&browser, "r", "ping").await;

    let mislabelled = "#log li[data-kind=client_recv][data-socket=r]\
                       [data-label*='taken as the answer to #2, but it answers #1']";
    let line = browser.wait_for_text(mislabelled, "taken as the answer to #2, but it answers #1", WAIT).await;
    // The real round trip runs from attempt 1's send: the 300 ms hold and more, where the
    // client measured from attempt 2's, 150 ms later.
    let rtt = rtt_ms(&line);
    assert!(rtt >= 295.0, "the real RTT, from attempt 1's send: {line}");
    assert!(line.contains("(the client measured ") && line.contains(" from #2)"), "{line}");
    let retries = browser.find_all("#log li[data-kind=client_retry][data-socket=r]").await;
    assert_eq!(retries.len(), 1, "answered during attempt 2's wait, so no attempt 3");
    // Attempt 2's own answer comes 150 ms later: the client has stopped waiting, and that
    // reply is not mislabelled.
    wait_for_stat(&browser, "received", "2").await;
    let answers = log_lines(&browser, "#log li[data-kind=client_recv][data-socket=r]").await;
    let wrong: Vec<_> = answers.iter().filter(|(label, _)| label.contains("but it answers")).collect();
    assert_eq!(wrong.len(), 1, "{answers:#?}");
    wait_for_stat(&browser, "misattributed", "1").await;

    select_line(&browser, mislabelled).await;
    browser.wait_for("#details[data-label*='but it answers #1']", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains("taken as the answer to #2, but it answers #1"), "{details}");
    assert!(details.contains("RTT the client measured"), "{details}");
    assert_no_page_errors(browser.console().await);

    browser.screenshot("ui-truth-misattributed").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn each_chat_copy_is_labelled_with_the_bytes_its_client_got() {
    let relay = TestRelay::start().await;
    let browser = page(&relay).await;

    open_socket(&browser, "c", "chat").await;
    open_socket(&browser, "d", "chat").await;
    for socket in ["c", "d"] {
        send_on(&browser, socket, "reg").await;
    }
    browser.wait_for_text("#log li[data-kind=chat_join]", "2 live", WAIT).await;
    send_on(&browser, "c", "hi all").await;
    browser.wait_for_text("#log li[data-kind=chat_broadcast]", "hi all", WAIT).await;

    // Every client got `ack: IP PORT` of the sender, then the text: that is each copy's label.
    let port = local_port(&browser, "c").await;
    let ack = format!("ack: 127.0.0.1 {port}");
    for socket in ["c", "d"] {
        let css = format!("#log li[data-kind=client_recv][data-socket={socket}][data-label*='{ack}']");
        let line = browser.wait_for_text(&css, &ack, WAIT).await;
        assert!(line.contains(&format!("chat → {socket}")) && line.contains("(28 B)"), "{line}");
    }
    let copies = log_lines(&browser, "#log li[data-kind=server_send]").await;
    assert_eq!(copies.len(), 2, "one copy per client: {copies:#?}");
    for (label, text) in &copies {
        assert!(
            label.starts_with(&format!("\"{ack}·hi")),
            "labelled with the bytes sent: {label:?} ({text})"
        );
    }

    select_line(&browser, "#log li[data-kind=client_recv][data-socket=d]").await;
    browser.wait_for("#details[data-fate=delivered]", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains(&format!("{ack}\\nhi all\\n")), "the bytes d got: {details}");
    assert_no_page_errors(browser.console().await);

    browser.screenshot("ui-truth-chat").await;
    browser.close().await;
    relay.shutdown().await;
}
