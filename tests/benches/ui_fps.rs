//! The page's frame rate while the relay streams 5,000 events a second: a benchmark, not a test.
//!
//!     cargo bench -p playground-tests --bench ui_fps
//!
//! Headless Chromium opens the page in projector mode (it subscribes to every event). An
//! outside UDP client then makes 2,500 echo round trips a second, each a `server_recv` and a
//! `server_send`: 5,000 events a second, counted on the relay's bus to be sure. Meanwhile a
//! script in the page counts `requestAnimationFrame` callbacks. The same count with no traffic,
//! in the same run, is the yardstick: headless Chromium's own frame clock.
//!
//! Then, the same page while a crowd of 100 clients (the `many-clients` lesson) runs from a
//! second session: 100 sockets each sending every second, their answers, and the crowd lane.
//!
//! It prints a Markdown table for BENCHMARKS.md and fails only if something could not be
//! measured (no browser, no frames), never on a speed.

#[path = "../it/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "../it/browser.rs"]
mod browser;

use std::time::Duration;

use browser::Browser;
use protocol::ServerName;
use serde_json::Value;
use support::{TestRelay, udp_client};

/// How long each measurement counts frames.
const WINDOW: Duration = Duration::from_secs(5);

/// Echo round trips per second from the outside client: two events each.
const ROUND_TRIPS_PER_SEC: u64 = 2_500;

/// Counts animation frames for `ms`, and the frames that took over 25 ms (a visible stutter
/// at 60 Hz is two frames' time, 33 ms; 25 ms catches near misses too).
const COUNT_FRAMES: &str = r#"
const ms = arguments[0];
window.__fps = null;
let frames = 0, slow = 0, last = performance.now();
const t0 = last;
function tick(now) {
  frames += 1;
  if (now - last > 25) slow += 1;
  last = now;
  if (now - t0 < ms) requestAnimationFrame(tick);
  else window.__fps = { fps: frames * 1000 / (now - t0), frames, slow };
}
requestAnimationFrame(tick);
"#;

async fn count_frames(browser: &Browser) -> Value {
    let ms = u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX);
    browser.eval(COUNT_FRAMES, vec![Value::from(ms)]).await;
    tokio::time::sleep(WINDOW).await;
    for _ in 0..50 {
        let result = browser.eval("return window.__fps;", vec![]).await;
        if !result.is_null() {
            return result;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page counted no frames: is requestAnimationFrame running?");
}

/// Echo traffic at a steady rate until `stop`, returning the round trips made.
async fn traffic(relay_echo: std::net::SocketAddr, stop: tokio::sync::watch::Receiver<bool>) -> u64 {
    let client = udp_client().await;
    let tick = Duration::from_millis(10);
    let per_tick = ROUND_TRIPS_PER_SEC / 100;
    let mut interval = tokio::time::interval(tick);
    let mut buf = [0u8; 2048];
    let mut done = 0;
    while !*stop.borrow() {
        interval.tick().await;
        for _ in 0..per_tick {
            if client.send_to(b"frame-rate probe", relay_echo).await.is_err() {
                continue;
            }
            // Every await here is bounded: a lost reply costs one timeout, not the run.
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), client.recv_from(&mut buf)).await
            {
                done += 1;
            }
        }
    }
    done
}

#[tokio::main]
async fn main() {
    let relay = TestRelay::start().await;
    let browser = Browser::open(&format!("http://{}/?view=all", relay.http())).await;
    browser.wait_for("#status[data-conn=open]", Browser::LOAD).await;

    let idle = count_frames(&browser).await;

    let mut events = relay.bus.subscribe();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let load = tokio::spawn(traffic(relay.addr(ServerName::Echo), stopped));
    // Let the stream settle before counting.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while events.try_recv().is_ok() {}
    let started = std::time::Instant::now();
    let loaded = count_frames(&browser).await;
    let mut emitted = 0u64;
    loop {
        match events.try_recv() {
            Ok(_) => emitted += 1,
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => emitted += n,
            Err(_) => break,
        }
    }
    let events_per_sec = emitted as f64 / started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    let round_trips = tokio::time::timeout(Duration::from_secs(5), load).await.ok().and_then(Result::ok);

    // A crowd of 100, from a script's session, drawn by the projector page.
    let url = format!("ws://{}/ws", relay.http());
    let (mut crowd, _) = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url))
        .await
        .expect("the WebSocket opens in time")
        .expect("the WebSocket opens");
    use futures_util::SinkExt;
    let start =
        r#"{"op":"crowd","socket":"class","server":"upper","clients":100,"every_ms":1000,"text":"hello"}"#;
    crowd.send(tokio_tungstenite::tungstenite::Message::text(start)).await.expect("crowd");
    let reader = tokio::spawn(async move {
        use futures_util::StreamExt;
        // Read the session's own events so it never lags; bounded by the measurement.
        let until = tokio::time::Instant::now() + WINDOW + Duration::from_secs(3);
        while let Ok(Some(_)) = tokio::time::timeout_at(until, crowd.next()).await {}
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let crowded = count_frames(&browser).await;
    reader.abort();
    let drawn = browser.attr("#diagram", "data-arrows").await.unwrap_or_default();
    let screenshot = browser.screenshot("ui-fps-under-load").await;
    browser.close().await;
    relay.shutdown().await;

    let fps = |v: &Value| v["fps"].as_f64().unwrap_or(0.0);
    println!("| load | events/s on the bus | frames/s | frames over 25 ms | ratio to idle |");
    println!("|---|---:|---:|---:|---:|");
    println!("| idle | 0 | {:.1} | {} | 1.00 |", fps(&idle), idle["slow"]);
    println!(
        "| echo traffic, projector mode | {:.0} | {:.1} | {} | {:.2} |",
        events_per_sec,
        fps(&loaded),
        loaded["slow"],
        fps(&loaded) / fps(&idle).max(1.0)
    );
    println!(
        "| a crowd of 100 clients (many-clients), projector mode | about 400 | {:.1} | {} | {:.2} |",
        fps(&crowded),
        crowded["slow"],
        fps(&crowded) / fps(&idle).max(1.0)
    );
    println!();
    println!(
        "round trips made: {round_trips:?}; arrows on the canvas at the end: {drawn}; screenshot: {}",
        screenshot.display()
    );
}
