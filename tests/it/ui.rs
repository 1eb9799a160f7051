//! The UI end to end: headless Chromium drives the real page against a real relay, the way a
//! student and a teacher use it. Each test clicks the controls, then reads the event log
//! (`#log li[data-kind][data-socket]`), the canvas's summary (`#diagram[aria-label]`), the
//! liveness and stats panels, and saves a screenshot into `target/screenshots/ui-*.png`.
//!
//! Every wait is bounded: the [`Browser`] helpers time out, and so does everything else here.

use std::time::{Duration, Instant};

use protocol::ServerName;
use serde_json::json;

use crate::browser::{Browser, CONNECTED, WAIT};
use crate::support::{TestRelay, udp_client, within};

async fn page(relay: &TestRelay, query: &str) -> Browser {
    let browser = Browser::open(&format!("http://{}/{query}", relay.http())).await;
    browser.wait_for(CONNECTED, Browser::LOAD).await;
    browser
}

/// Opens socket `name` on `server` with the "Open a socket" form.
async fn open_socket(browser: &Browser, name: &str, server: &str) {
    browser.fill("#open-name", name).await;
    browser.eval("document.getElementById('open-server').value = arguments[0];", vec![json!(server)]).await;
    browser.click("#open-btn").await;
    browser.wait_for(&format!("#log li[data-kind=client_open][data-socket={name}]"), WAIT).await;
}

async fn send(browser: &Browser, text: &str) {
    browser.fill("#send-text", text).await;
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

/// A command the relay refuses is told in the page's language, followed by the relay's own
/// words (they name its flags and numbers).
#[tokio::test]
async fn a_refused_command_is_told_in_the_pages_language() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;
    for (lang, name, kind) in [("zh-CN", "a", "名字已被占用："), ("en", "b", "Name taken: ")] {
        // The switch reloads the page in the other language, a new session.
        browser.click("#lang-btn").await;
        browser.wait_for(&format!("html[lang={lang}] #status[data-conn=open]"), Browser::LOAD).await;
        open_socket(&browser, name, "echo").await;
        // The same name again (the form has moved on to the next one): the relay refuses it.
        browser.fill("#open-name", name).await;
        browser.click("#open-btn").await;
        let error = browser.wait_for_text("#error", kind, WAIT).await;
        assert!(error.starts_with(kind) && error.contains(&format!("\"{name}\"")), "{lang}: {error}");
        browser.screenshot(&format!("ui-refused-{lang}")).await;
    }
    browser.close().await;
    relay.shutdown().await;
}

/// The texts of every log line matching `css`, oldest first.
async fn log_texts(browser: &Browser, css: &str) -> Vec<String> {
    let script =
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent).reverse();";
    let value = browser.eval(script, vec![json!(css)]).await;
    serde_json::from_value(value).expect("a list of strings")
}

#[tokio::test]
async fn echo_round_trip_shows_in_the_log_the_diagram_and_the_details() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;

    open_socket(&browser, "a", "echo").await;
    send(&browser, "hello").await;
    let reply = browser.wait_for_text("#log li[data-kind=client_recv][data-socket=a]", "hello", WAIT).await;
    assert!(reply.contains("echo → a"), "the reply comes from echo: {reply}");
    assert!(reply.contains("RTT"), "the answer carries its RTT: {reply}");
    // The canvas says what it drew: the newest datagram is echo's answer, delivered.
    browser.wait_for("#diagram[aria-label*='echo → a, \"hello\"'][aria-label*='delivered']", WAIT).await;
    let arrows: u64 = browser.attr("#diagram", "data-arrows").await.unwrap_or_default().parse().unwrap_or(0);
    assert!(arrows >= 2, "the request and the reply are arrows, got {arrows}");

    // Selecting the reply (from its log line) shows its bytes.
    browser.click("#log li[data-kind=client_recv][data-socket=a]").await;
    let details = browser.wait_for_text("#details", "68 65 6c 6c 6f", WAIT).await;
    for needle in ["\"hello\"", "5 bytes", "RTT", "Arrived at"] {
        assert!(details.contains(needle), "details lack {needle:?}:\n{details}");
    }
    browser.wait_for("#stats dd[data-stat=received]", WAIT).await;
    assert_eq!(browser.text("#stats dd[data-stat=received]").await, "1");

    let errors: Vec<_> = browser.console().await.into_iter().filter(|e| e.level == "SEVERE").collect();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");

    browser.screenshot("ui-echo").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn total_loss_shows_retries_with_growing_waits_then_the_give_up() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;

    // A drop past 1 is refused. The field keeps what was typed, to be corrected; the slider,
    // which followed it as far as it goes (1), shows the relay's drop again.
    browser.fill("#lossy-drop", "1.5").await;
    browser.click("#lossy-apply").await;
    let error = browser.wait_for_text("#error", "lossy server: drop is", WAIT).await;
    assert!(error.contains("from 0 to 1, got \"1.5\""), "{error}");
    let shown = browser
        .eval(
            "return ['lossy-drop', 'lossy-drop-range'].map(id => document.getElementById(id).value);",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(["1.5", "0"]), "the field as typed, the slider at the relay's drop");

    configure_lossy(&browser, "1", "0").await;
    // Apply again with nothing changed: nothing is sent. (Commands take effect in order, so
    // a second change would be logged before the socket opens, and counted below.)
    browser.click("#lossy-apply").await;
    open_socket(&browser, "l", "lossy").await;
    browser.click("#retry-on").await;
    send(&browser, "anyone there?").await;
    let gave_up =
        browser.wait_for_text("#log li[data-kind=client_giveup][data-socket=l]", "gave up", WAIT).await;
    assert!(gave_up.contains("after 5 attempts"), "{gave_up}");

    let retries = log_texts(&browser, "#log li[data-kind=client_retry][data-socket=l]").await;
    let waits: Vec<bool> = ["after 100 ms", "after 200 ms", "after 400 ms", "after 800 ms"]
        .iter()
        .zip(&retries)
        .map(|(wait, line)| line.contains(wait))
        .collect();
    assert_eq!(waits, [true; 4], "each retry waited twice as long: {retries:#?}");
    let drops = browser.find_all("#log li[data-kind=server_drop]").await.len();
    assert_eq!(drops, 5, "every attempt was dropped");
    let set = log_texts(&browser, "#log li[data-kind=server_configured]").await;
    assert_eq!(set.len(), 1, "Apply sent the one setting typed differently, once: {set:#?}");
    assert!(set[0].contains("drop set to 1"), "{set:#?}");
    browser.wait_for_text("#stats dd[data-stat=loss]", "100% / 100%", WAIT).await;

    browser.screenshot("ui-lossy").await;

    // A mistake is named, and nothing is sent: the next change is the only one logged.
    browser.fill("#lossy-delay", "-5").await;
    browser.click("#lossy-apply").await;
    let error = browser.wait_for_text("#error", "lossy server: delay is", WAIT).await;
    assert!(error.contains("whole number of milliseconds, got \"-5\""), "{error}");
    // Text a number field would have read as empty, and so as no change: named too.
    browser.fill("#lossy-delay", "0").await;
    browser.fill("#lossy-jitter", "5 ms").await;
    browser.click("#lossy-apply").await;
    let error = browser.wait_for_text("#error", "lossy server: jitter is", WAIT).await;
    assert!(error.contains("got \"5 ms\""), "{error}");
    browser.fill("#lossy-jitter", "5").await;
    browser.click("#lossy-apply").await;
    browser.wait_for_text("#log", "jitter_ms set to 5", WAIT).await;
    let set = log_texts(&browser, "#log li[data-kind=server_configured]").await;
    assert_eq!(set.len(), 2, "the drop, then the jitter alone: {set:#?}");

    // A retry typed wrong sends nothing, rather than retrying on a default nobody asked for.
    let sends = browser.find_all("#log li[data-kind=client_send]").await.len();
    browser.fill("#retry-initial", "1O0").await;
    send(&browser, "once more").await;
    let error = browser.wait_for_text("#error", "retry: “wait”", WAIT).await;
    assert!(error.contains("whole number of milliseconds, got \"1O0\""), "{error}");
    browser.fill("#hb-every", "1 s").await;
    browser.click("#hb-start").await;
    browser.wait_for_text("#error", "“every” is a whole number of milliseconds, got \"1 s\"", WAIT).await;
    // 0 is what Stop sends: Start says so rather than quietly stopping.
    browser.fill("#hb-every", "0").await;
    browser.click("#hb-start").await;
    browser.wait_for_text("#error", "A heartbeat every 0 ms is none", WAIT).await;
    assert_eq!(browser.find_all("#log li[data-kind=client_send]").await.len(), sends, "nothing was sent");
    // The message lies over the lessons' buttons for a while: a click goes through it.
    let covered = browser
        .eval(
            "const e = document.getElementById('error').getBoundingClientRect();
             return Array.from(document.querySelectorAll('#lesson-list button')).filter(b => {
                 const r = b.getBoundingClientRect();
                 return r.left < e.right && e.left < r.right && r.top < e.bottom && e.top < r.bottom;
             }).map(b => b.getAttribute('data-slug'));",
            vec![],
        )
        .await;
    let under = covered[0].as_str().expect("a lesson's button under the message").to_owned();
    browser.click(&format!("#lesson-list [data-slug={under}]")).await;
    browser.wait_for(&format!("#caption[data-slug={under}]"), WAIT).await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn with_request_ids_a_late_reply_is_marked_late() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;

    // Answers take 300 ms, the first retry fires after 100 ms: attempt 1's answer is late.
    configure_lossy(&browser, "0", "300").await;
    open_socket(&browser, "r", "lossy").await;
    browser.click("#retry-on").await;
    browser.click("#reqid-on").await;
    send(&browser, "ping").await;
    browser.wait_for_text("#log li[data-kind=client_duplicate][data-socket=r]", "LATE", WAIT).await;
    // The log is written in order, a few times a second: the oldest late line is attempt 1's.
    let lates = log_texts(&browser, "#log li[data-kind=client_duplicate][data-socket=r]").await;
    assert!(
        lates[0].contains("LATE") && lates[0].contains("#1-1"),
        "the first late reply answers attempt 1: {lates:#?}"
    );
    let answer =
        browser.wait_for_text("#log li[data-kind=client_recv][data-socket=r]", "answers #1-", WAIT).await;
    assert!(!answer.contains("#1-1,"), "attempt 1's reply is not the answer: {answer}");

    browser.click("#log li[data-kind=client_duplicate][data-socket=r]").await;
    browser.wait_for("#details[data-fate=late]", WAIT).await;
    let details = browser.text("#details").await;
    assert!(details.contains("LATE") && details.contains("Request ID"), "{details}");

    browser.screenshot("ui-late").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn heartbeats_keep_a_chat_client_alive_and_stopping_them_evicts_it() {
    let relay = TestRelay::start_with(|c| c.chat.timeout = Duration::from_millis(1500)).await;
    let browser = page(&relay, "").await;

    open_socket(&browser, "c", "chat").await;
    browser.fill("#hb-every", "300").await;
    browser.click("#hb-start").await;
    browser.wait_for("#liveness li[data-state=alive]", WAIT).await;
    send(&browser, "hi everyone").await;
    browser.wait_for_text("#log li[data-kind=chat_broadcast]", "hi everyone", WAIT).await;
    let alive = browser.text("#liveness").await;
    assert!(alive.contains("ALIVE") && alive.contains("evicted in"), "{alive}");
    browser.screenshot("ui-chat").await;

    browser.click("#hb-stop").await;
    browser.wait_for("#liveness li[data-state=evicted]", WAIT).await;
    browser.wait_for_text("#log li[data-kind=chat_evict]", "EVICTED c", WAIT).await;
    browser.screenshot("ui-chat-evicted").await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn projector_mode_shows_an_outside_client_as_its_own_lane() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "?view=all").await;
    browser.wait_for("body.projector", WAIT).await;
    // The relay handles a session's commands in order: once this configure is seen, the
    // page's earlier `subscribe all` has taken effect. (The controls are hidden on a
    // projector, so the click is a script's.)
    browser
        .eval(
            "document.getElementById('lossy-drop').value = '0.5';
             document.getElementById('lossy-apply').click();",
            vec![],
        )
        .await;
    browser.wait_for("#log li[data-kind=server_configured]", WAIT).await;

    let outside = udp_client().await;
    let port = outside.local_addr().expect("bound").port();
    within("sending from outside", outside.send_to(b"hi from nc", relay.addr(ServerName::Echo)))
        .await
        .expect("send");
    browser.wait_for("#lanes li[data-lane-kind=outside]", WAIT).await;
    let lanes = browser.dom_text("#lanes").await;
    assert!(lanes.contains(&format!(":{port}")), "the outside client's lane names its port: {lanes}");
    browser.wait_for_text("#log li[data-kind=server_recv]", "hi from nc", WAIT).await;
    browser.wait_for_text("#status", "projector", WAIT).await;
    browser.screenshot("ui-projector").await;

    // Nothing else happens: the diagram keeps what happened last in view, a view's time and
    // more after it (time stops once the newest event is a quarter of the view old), rather
    // than scrolling it away into an empty diagram.
    let script = "return Number(document.getElementById('diagram').getAttribute('data-columns'));";
    let drawn = browser.eval(script, vec![]).await.as_u64().unwrap_or(0);
    assert!(drawn >= 2, "the outside client and echo are drawn: {drawn}");
    let span = browser.dom_text("#scale").await;
    assert!(span.contains("visible · live"), "{span}");
    // As long as the view shows, and 2 s more: long enough for the traffic to have slid off.
    let visible_ms: u64 = span
        .split(" ms visible")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or(6_000);
    tokio::time::sleep(Duration::from_millis(visible_ms + 2_000)).await;
    let still = browser.eval(script, vec![]).await.as_u64().unwrap_or(0);
    let oldest = browser.attr("#diagram", "data-oldest-item").await;
    assert_eq!(
        (still, oldest.is_some()),
        (drawn, true),
        "{visible_ms} ms and 2 s later ({span}) it scrolled away"
    );

    // An outside client never says it has gone: once a newer client's traffic has pushed its
    // own out of view, its lane gives its column back, so a class's `nc` windows do not pile
    // up; quiet for 10 s, it leaves the list of those here. The page still knows it.
    let newer = udp_client().await;
    let started = Instant::now();
    let hidden = loop {
        within("sending from another outside client", newer.send_to(b"tick", relay.addr(ServerName::Echo)))
            .await
            .expect("send");
        let lanes = browser.dom_text("#lanes").await;
        let hidden = browser.texts("#lanes li[data-lane-kind=hidden]").await.concat();
        if !lanes.contains(&format!(":{port}")) || started.elapsed() > Duration::from_secs(20) {
            break hidden;
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
    };
    assert_eq!(hidden, "1 more, gone or quiet");
    let lanes = browser.dom_text("#lanes").await;
    assert!(!lanes.contains(&format!(":{port}")), "the list names those here: {lanes}");
    assert!(lanes.contains("echo"), "{lanes}");
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn stopping_the_relay_shows_the_page_disconnected_and_it_reconnects_when_back() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;
    open_socket(&browser, "a", "echo").await;

    let http_port = relay.http().port();
    relay.shutdown().await;
    browser.wait_for("#status[data-conn=closed]", WAIT).await;
    let status = browser.text("#status").await;
    assert!(status.contains("Disconnected"), "{status}");
    browser.screenshot("ui-disconnected").await;

    // The relay comes back on the same port: the page reconnects by itself, in a new session,
    // and opens its socket again.
    let relay = TestRelay::start_with(|c| c.http_port = http_port).await;
    browser.wait_for(CONNECTED, WAIT).await;
    browser.wait_for("#log li[data-kind=client_open][data-socket=a]", WAIT).await;
    send(&browser, "back again").await;
    browser.wait_for_text("#log li[data-kind=client_recv][data-socket=a]", "back again", WAIT).await;
    browser.close().await;
    relay.shutdown().await;
}

/// A browser over its address's connection cap is turned away before its WebSocket opens,
/// which the browser does not tell the page: the page asks `/healthz`, which answers the same
/// 429, and says that, not "the relay is not answering". A place given back lets it in.
#[tokio::test]
async fn a_browser_over_its_addresss_cap_is_told_so_and_gets_in_when_a_place_is_free() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;
    let http_port = relay.http().port();
    relay.shutdown().await;
    browser.wait_for("#status[data-conn=closed]", WAIT).await;
    // Failed tries double the page's wait: once it says 4 s (a wait of 4 or 8 s counting
    // down), the next try comes seconds after the relay is back and the test holds every
    // place this address has.
    browser.wait_for_text("#status", "Reconnecting in 4 s", Duration::from_secs(20)).await;
    let relay = TestRelay::start_with(|c| {
        c.http_port = http_port;
        c.limits.addresses.per_loopback = 2;
    })
    .await;
    let mut held = vec![crate::ws::connect(relay.http()).await, crate::ws::connect(relay.http()).await];
    let status = browser.wait_for_text("#status", "turned this browser away", Duration::from_secs(20)).await;
    assert!(status.contains("--max-per-loopback"), "{status}");
    let banner = browser.text("#error").await;
    assert!(banner.starts_with("The relay turned") && banner.contains("Close another tab"), "{banner}");
    browser.screenshot("ui-refused").await;
    held.pop().expect("held").close().await;
    browser.wait_for(CONNECTED, Duration::from_secs(20)).await;
    browser.close().await;
    for ws in held {
        ws.close().await;
    }
    relay.shutdown().await;
}

#[tokio::test]
async fn the_keyboard_alone_can_send_pause_and_switch_to_projector_mode() {
    use fantoccini::key::Key;

    let relay = TestRelay::start().await;
    let browser = page(&relay, "").await;
    open_socket(&browser, "k", "echo").await;

    // Type into the text box and press Enter: the datagram goes out.
    let input = browser.find("#send-text").await;
    Browser::limit("clearing the text box", WAIT, input.clear()).await.expect("clear");
    let typed = format!("typed{}", Key::Enter);
    Browser::limit("typing", WAIT, input.send_keys(&typed)).await.expect("type");
    browser.wait_for_text("#log li[data-kind=client_recv][data-socket=k]", "typed", WAIT).await;

    // Space on the page pauses the diagram, and again resumes it.
    let body = browser.find("body").await;
    Browser::limit("pressing Space", WAIT, body.send_keys(" ")).await.expect("space");
    browser.wait_for("#pause-btn[aria-pressed=true]", WAIT).await;
    Browser::limit("pressing Space", WAIT, body.send_keys(" ")).await.expect("space");
    browser.wait_for("#pause-btn[aria-pressed=false]", WAIT).await;

    // P switches to projector mode, which subscribes to everything.
    Browser::limit("pressing P", WAIT, body.send_keys("p")).await.expect("p");
    browser.wait_for_text("#status", "projector", WAIT).await;
    browser.close().await;
    relay.shutdown().await;
}

#[tokio::test]
async fn a_projector_shows_where_students_go_and_a_qr_code_when_the_class_can_reach_the_relay() {
    let relay = TestRelay::start_with(|c| {
        c.bind = std::net::Ipv4Addr::UNSPECIFIED.into();
        c.public_hosts = vec!["lab-7.local".into()];
    })
    .await;
    // Everything over loopback: only the page's words name the machine's other addresses.
    let http = std::net::SocketAddr::from(([127, 0, 0, 1], relay.http().port()));
    let browser = Browser::open(&format!("http://{http}/?view=all")).await;
    browser.wait_for(CONNECTED, Browser::LOAD).await;
    let url = browser.wait_for_text("#join:not([hidden]) #join-url", "http://", WAIT).await;
    assert!(url.ends_with(&format!(":{}/", http.port())), "{url}");
    let loaded = browser
        .eval(
            "const img = document.getElementById('join-qr'); return img.complete && img.naturalWidth > 0;",
            vec![],
        )
        .await;
    assert_eq!(loaded, serde_json::json!(true), "the QR code loaded");
    browser.screenshot("ui-join").await;
    // On a 1,366 × 768 projector the code shrinks with the window: the diagram keeps its room.
    browser.set_viewport(1366, 768).await;
    let share =
        "return document.getElementById('diagram').getBoundingClientRect().height / window.innerHeight;";
    let share = browser.eval(share, vec![]).await.as_f64().unwrap_or(0.0);
    assert!(share >= 0.4, "the diagram has {:.0}% of a 768-px projector's window", share * 100.0);
    browser.close().await;
    relay.shutdown().await;

    // On loopback nobody else can come: nothing to show.
    let relay = TestRelay::start().await;
    let browser = Browser::open(&format!("http://{}/?view=all", relay.http())).await;
    browser.wait_for(CONNECTED, Browser::LOAD).await;
    browser.wait_for("#join[hidden]", WAIT).await;
    browser.close().await;
    relay.shutdown().await;
}

/// The side columns hold everything they show: nothing in them is wider than the column, so
/// neither scrolls sideways or cuts a control off (the file picker once did).
#[tokio::test]
async fn nothing_in_the_side_columns_is_wider_than_they_are() {
    let relay = crate::support::TestRelay::start().await;
    let browser = crate::browser::Browser::launch().await;
    for (width, height) in [(1400, 900), (1920, 1080)] {
        browser.set_viewport(width, height).await;
        browser.goto(&format!("http://{}/?lesson=late-duplicate", relay.http())).await;
        browser.wait_for(crate::browser::CONNECTED, crate::browser::Browser::LOAD).await;
        let out = browser
            .eval(
                "return ['controls', 'panels'].map((id) => {
                   const column = document.getElementById(id);
                   const right = column.getBoundingClientRect().right;
                   const wide = [...column.querySelectorAll('*')]
                     .filter((el) => el.getBoundingClientRect().right > right + 0.5)
                     .map((el) => el.tagName + '#' + el.id + '.' + el.className);
                   return id + ': ' + (column.scrollWidth - column.clientWidth) + ' ' + wide.join(' ');
                 }).join('; ');",
                vec![],
            )
            .await;
        let out = out.as_str().unwrap_or_default().to_owned();
        assert_eq!(out, "controls: 0 ; panels: 0 ", "at {width}x{height}, what sticks out of a column");
    }
    browser.close().await;
    relay.shutdown().await;
}

/// A class's chat room on the projector: a dozen clients and more get one line each, the
/// countdown in the meter under it, where a smaller room's rows say it in words too.
#[tokio::test]
async fn a_class_sized_chat_room_gets_a_line_a_client() {
    let relay = TestRelay::start().await;
    let browser = page(&relay, "?view=all").await;
    browser.wait_for("body.projector", WAIT).await;
    let mut class = Vec::new();
    let mut small_room = None;
    // Height of a row, and whether its words are shown.
    let rows = "return Array.from(document.querySelectorAll('#liveness li')).map(li =>
                  [li.getBoundingClientRect().height, getComputedStyle(li.querySelector('.muted')).display,
                   getComputedStyle(li).whiteSpace]);";
    for n in [2, 13] {
        while class.len() < n {
            let student = udp_client().await;
            within("registering", student.send_to(b"reg", relay.addr(ServerName::Chat))).await.expect("send");
            class.push(student);
        }
        Browser::limit("the room's rows", WAIT, async {
            while browser.find_all("#liveness li[data-peer]").await.len() < n {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        let shown: Vec<(f64, String, String)> =
            serde_json::from_value(browser.eval(rows, vec![]).await).expect("rows");
        assert_eq!(shown.len(), n, "{shown:?}");
        let (words, wrap) = if n < 13 { ("inline", "normal") } else { ("none", "nowrap") };
        assert!(shown.iter().all(|(_, d, w)| d == words && w == wrap), "{n} clients: {shown:?}");
        let tallest = shown.iter().map(|(h, _, _)| *h).fold(0.0, f64::max);
        match small_room {
            None => small_room = Some(tallest),
            Some(small) => {
                assert!(tallest < 0.75 * small, "a row of {tallest} px, {small} px in a small room")
            }
        }
    }
    browser.screenshot("ui-projector-chat-room").await;
    browser.close().await;
    relay.shutdown().await;
}

/// The page puts a datagram's log line into words only when it writes the line, and changes
/// the stats and the liveness rows in place rather than rebuilding them: what they say is
/// still exactly what happened, line by line and row by row.
#[tokio::test]
async fn the_log_written_late_and_the_panels_changed_in_place_say_exactly_what_happened() {
    let relay = TestRelay::start_with(|c| c.chat.timeout = Duration::from_millis(1500)).await;
    let browser = page(&relay, "").await;

    open_socket(&browser, "e", "echo").await;
    send(&browser, "one").await;
    browser.wait_for_text("#log li[data-kind=client_recv][data-socket=e]", "\"one\"", WAIT).await;
    let sent = log_texts(&browser, "#log li[data-kind=client_send][data-socket=e]").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0].ends_with("  e → echo: \"one\" (3 B)"), "{sent:?}");
    let read = log_texts(&browser, "#log li[data-kind=server_recv]").await;
    assert!(read.iter().any(|l| l.ends_with("  echo read \"one\" (3 B) from e")), "{read:?}");
    let answer = log_texts(&browser, "#log li[data-kind=server_send]").await;
    assert!(answer.iter().any(|l| l.ends_with("  echo → e: \"one\" (3 B)")), "{answer:?}");
    let got = log_texts(&browser, "#log li[data-kind=client_recv][data-socket=e]").await;
    assert!(got[0].contains("  echo → e: \"one\" (3 B), RTT "), "{got:?}");

    // The stats' values change in place as the counts grow.
    browser.wait_for_text("#stats dd[data-stat=received]", "1", WAIT).await;
    send(&browser, "two").await;
    browser.wait_for_text("#log li[data-kind=client_recv][data-socket=e]", "\"two\"", WAIT).await;
    Browser::limit("the stats to count the second round trip", WAIT, async {
        while browser.texts("#stats dd[data-stat=sent], #stats dd[data-stat=received]").await != ["2", "2"] {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert_eq!(browser.texts("#stats dt").await.len(), browser.texts("#stats dd").await.len());

    // Two chat clients, each with its row; their countdowns tick in place.
    for name in ["c1", "c2"] {
        open_socket(&browser, name, "chat").await;
        browser.fill("#hb-every", "200").await;
        browser.click("#hb-start").await;
    }
    Browser::limit("two clients alive", WAIT, async {
        while browser.find_all("#liveness li[data-state=alive]").await.len() < 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    let rows = browser.texts("#liveness li").await;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.starts_with("● ALIVE") && r.contains("evicted in")), "{rows:?}");
    assert_eq!(browser.texts("#liveness li .state").await, ["● ALIVE", "● ALIVE"]);

    // c2 goes quiet: its row turns evicted, in place, and c1's stays alive.
    browser.eval("document.getElementById('send-socket').value = 'c2';", vec![]).await;
    browser.click("#hb-stop").await;
    browser.wait_for("#liveness li[data-state=evicted]", WAIT).await;
    let evicted = browser.text("#liveness li[data-state=evicted]").await;
    assert!(evicted.starts_with("✕ EVICTED") && evicted.contains("s of silence"), "{evicted}");
    assert!(!evicted.contains("evicted in"), "{evicted}");
    let rows = browser.texts("#liveness li").await;
    assert_eq!(rows.len(), 2, "still one row each: {rows:?}");
    let alive = browser.text("#liveness li[data-state=alive]").await;
    assert!(alive.starts_with("● ALIVE") && alive.contains("evicted in"), "{alive}");
    browser.close().await;
    relay.shutdown().await;
}
