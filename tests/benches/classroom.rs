//! A classroom on one relay: a benchmark, not a test.
//!
//!     cargo build --release -p relay && cargo bench -p playground-tests --bench classroom
//!
//! The real relay binary (`target/release/relay`) runs as its own process, so its CPU and
//! memory can be read from /proc. Then, side by side in one run:
//!
//! 1. **Alone:** one echo flow's round trips a second, with nobody connected: the yardstick.
//! 2. **A class:** 100 student sessions over real WebSockets, each with an echo socket, a lossy
//!    socket whose sends retry with request IDs, and a chat socket that heartbeats and talks:
//!    about 10 datagrams a second each, as in the lessons. Two projector pages in real headless
//!    Chromium (`?view=all`) draw everything, and count their frames. The same echo flow runs.
//!
//! It prints a Markdown table for BENCHMARKS.md: the relay's CPU (share of one core) and RSS,
//! each projector's frames a second, the share of its time its renderer spent in script and in
//! style and layout (Chromium's own `Performance.getMetrics`), and the events it reported
//! missing (`lagged`), the students' own missed events, and the echo's round trips as a ratio to
//! the relay alone. It fails only if something could not be measured, never on a speed. Every
//! loop is bounded in time.
//!
//! `CLASSROOM_RELAY_FLAGS="--threads 2"` passes more flags to the relay.
//!
//! With `CLASSROOM_PROFILE=FILE.cpuprofile` it also records projector 1's JavaScript and wasm
//! with the DevTools sampling profiler (which slows it a little, so its frame rate is not the
//! figure to quote), for DevTools' Performance panel or any `.cpuprofile` reader.

#[path = "../it/support.rs"]
mod support;

#[allow(dead_code)]
#[path = "../it/browser.rs"]
mod browser;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use browser::Browser;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

const STUDENTS: usize = 100;
const WINDOW: Duration = Duration::from_secs(10);

fn relay_binary() -> PathBuf {
    let bench = std::env::current_exe().expect("own path");
    let target = bench.ancestors().nth(3).expect("target/<profile>/deps/<bench>").to_owned();
    let release = target.join("release").join("relay");
    assert!(release.is_file(), "{} is missing: cargo build --release -p relay first", release.display());
    release
}

/// utime + stime of `pid`, in clock ticks, and its resident memory in KiB.
fn usage(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = fields.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (ticks, rss)
}

/// One echo flow's round trips in `time`.
async fn echo_round_trips(echo: SocketAddr, time: Duration) -> u64 {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let mut buf = [0u8; 64];
    let (mut done, until) = (0, Instant::now() + time);
    while Instant::now() < until {
        if socket.send_to(b"class is in", echo).await.is_err() {
            continue;
        }
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(100), socket.recv_from(&mut buf)).await
        {
            done += 1;
        }
    }
    done
}

/// One student for `time`: sockets on echo, lossy and chat, about 10 datagrams a second in all.
/// Returns the events the student's session reported missing.
async fn student(http: SocketAddr, n: usize, time: Duration) -> u64 {
    let url = format!("ws://{http}/ws");
    let Ok(Ok((ws, _))) =
        tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url)).await
    else {
        eprintln!("student {n} could not connect");
        return 0;
    };
    let (mut tx, mut rx) = ws.split();
    let reader = tokio::spawn(async move {
        let mut missed = 0;
        while let Some(Ok(message)) = rx.next().await {
            if let Message::Text(text) = message
                && let Ok(m) = serde_json::from_str::<Value>(&text)
                && m["type"] == "lagged"
            {
                missed += m["missed"].as_u64().unwrap_or(0);
            }
        }
        missed
    });
    for command in [
        json!({"op":"open","socket":"e","server":"echo"}),
        json!({"op":"open","socket":"l","server":"lossy"}),
        json!({"op":"open","socket":"c","server":"chat"}),
        json!({"op":"heartbeat","socket":"c","every_ms":1000}),
    ] {
        let _ = tx.send(Message::text(command.to_string())).await;
    }
    let until = Instant::now() + time;
    // Start at a different moment each, as a class does.
    tokio::time::sleep(Duration::from_millis((n as u64 * 37) % 1000)).await;
    let mut tick = tokio::time::interval(Duration::from_millis(125));
    let mut i = 0u64;
    while Instant::now() < until {
        tick.tick().await;
        i += 1;
        let command = match i % 8 {
            0 => {
                json!({"op":"send","socket":"l","text":format!("question {i}"),"retry":true,"request_id":true})
            }
            4 => json!({"op":"send","socket":"c","text":format!("student {n} says {i}")}),
            _ => json!({"op":"send","socket":"e","text":format!("ping {i}")}),
        };
        if tx.send(Message::text(command.to_string())).await.is_err() {
            break;
        }
    }
    let _ = tx.close().await;
    tokio::time::timeout(Duration::from_secs(5), reader).await.ok().and_then(Result::ok).unwrap_or(0)
}

/// One of `Performance.getMetrics`' figures (seconds for the durations), or 0 if absent.
fn metric(metrics: &Value, name: &str) -> f64 {
    metrics["metrics"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["name"] == name))
        .and_then(|m| m["value"].as_f64())
        .unwrap_or(0.0)
}

const COUNT_FRAMES: &str = r#"
const ms = arguments[0];
window.__fps = null;
let frames = 0; const t0 = performance.now();
function tick(now) { frames += 1; if (now - t0 < ms) requestAnimationFrame(tick); else window.__fps = frames * 1000 / (now - t0); }
requestAnimationFrame(tick);
"#;

#[tokio::main]
async fn main() {
    let mut child = tokio::process::Command::new(relay_binary())
        .args([
            "--http-port",
            "0",
            "--echo-port",
            "0",
            "--upper-port",
            "0",
            "--chat-port",
            "0",
            "--lossy-port",
            "0",
        ])
        .args(["--lossy-drop", "0.3", "--seed", "1"])
        .args(std::env::var("CLASSROOM_RELAY_FLAGS").unwrap_or_default().split_whitespace())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the relay");
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let (mut echo, mut http) = (None, None);
    while let Ok(Ok(Some(line))) = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await {
        let addr = |prefix: &str| {
            line.split_whitespace().find_map(|w| w.strip_prefix(prefix)?.trim_end_matches('/').parse().ok())
        };
        if line.trim_start().starts_with("echo ") {
            echo = addr("udp://");
        }
        if let Some(found) = addr("http://") {
            http = Some(found);
            break;
        }
    }
    let (echo, http): (SocketAddr, SocketAddr) = (echo.expect("echo address"), http.expect("page address"));

    // 1. Alone.
    let alone = echo_round_trips(echo, Duration::from_secs(5)).await;
    let (_, idle_rss) = usage(pid);

    // 2. A class.
    let projectors = [
        Browser::open(&format!("http://{http}/?view=all")).await,
        Browser::open(&format!("http://{http}/?view=all")).await,
    ];
    for p in &projectors {
        p.wait_for("#status[data-conn=open]", Browser::LOAD).await;
    }
    let students: Vec<_> =
        (0..STUDENTS).map(|n| tokio::spawn(student(http, n, WINDOW + Duration::from_secs(3)))).collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (ticks_before, _) = usage(pid);
    let started = Instant::now();
    let ms = Value::from(u64::try_from(WINDOW.as_millis()).unwrap_or(u64::MAX));
    let profile = std::env::var_os("CLASSROOM_PROFILE").map(PathBuf::from);
    if profile.is_some() {
        projectors[0].cdp("Profiler.enable", json!({})).await;
        projectors[0].cdp("Profiler.start", json!({})).await;
    }
    let mut metrics_before = Vec::new();
    for p in &projectors {
        p.cdp("Performance.enable", json!({})).await;
        metrics_before.push(p.cdp("Performance.getMetrics", json!({})).await);
        p.eval(COUNT_FRAMES, vec![ms.clone()]).await;
    }
    let watched = echo_round_trips(echo, WINDOW).await;
    let elapsed = started.elapsed().as_secs_f64();
    let (ticks_after, rss) = usage(pid);
    let mut busy = Vec::new();
    for (p, before) in projectors.iter().zip(&metrics_before) {
        let after = p.cdp("Performance.getMetrics", json!({})).await;
        let spent = |name: &str| (metric(&after, name) - metric(before, name)) / elapsed;
        busy.push((
            spent("ScriptDuration"),
            spent("RecalcStyleDuration") + spent("LayoutDuration"),
            spent("TaskDuration"),
        ));
    }
    if let Some(path) = &profile {
        let recorded = projectors[0].cdp("Profiler.stop", json!({})).await;
        let written = std::fs::write(path, recorded["profile"].to_string());
        eprintln!("profile of projector 1: {} ({written:?})", path.display());
    }
    let mut fps = Vec::new();
    let mut lagged = Vec::new();
    for p in &projectors {
        let mut value = Value::Null;
        for _ in 0..50 {
            value = p.eval("return window.__fps;", vec![]).await;
            if !value.is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        fps.push(value.as_f64().unwrap_or(0.0));
        let missed =
            p.eval("return document.querySelectorAll('#log li[data-kind=lagged]').length;", vec![]).await;
        lagged.push(missed.as_u64().unwrap_or(0));
    }
    let shot = projectors[0].screenshot("classroom-projector").await;
    let mut student_missed = 0;
    for s in students {
        student_missed +=
            tokio::time::timeout(Duration::from_secs(20), s).await.ok().and_then(Result::ok).unwrap_or(0);
    }
    for p in projectors {
        p.close().await;
    }
    let _ = child.kill().await;

    let hz = 100.0; // USER_HZ on Linux
    let cpu = (ticks_after - ticks_before) as f64 / hz / elapsed;
    println!("| measure | value | target |");
    println!("|---|---:|---|");
    println!("| student sessions | {STUDENTS} (about 10 datagrams/s each) | |");
    println!("| relay CPU, share of one core | {:.1}% | |", cpu * 100.0);
    println!("| relay RSS | {:.1} MB (idle {:.1} MB) | |", rss as f64 / 1024.0, idle_rss as f64 / 1024.0);
    for (i, ((f, l), (script, layout, task))) in fps.iter().zip(&lagged).zip(&busy).enumerate() {
        println!("| projector {} frames/s | {f:.1} | ≥ 55 |", i + 1);
        println!(
            "| projector {} busy: script / style+layout / all tasks | {:.0}% / {:.0}% / {:.0}% | |",
            i + 1,
            script * 100.0,
            layout * 100.0,
            task * 100.0
        );
        println!("| projector {} lagged notices | {l} | 0 |", i + 1);
    }
    println!("| events the students' sessions missed | {student_missed} | 0 |");
    println!(
        "| echo round trips/s, class ÷ alone | {:.0} ÷ {:.0} = {:.2} | |",
        watched as f64 / WINDOW.as_secs_f64(),
        alone as f64 / 5.0,
        (watched as f64 / WINDOW.as_secs_f64()) / (alone as f64 / 5.0).max(1.0)
    );
    println!();
    println!("screenshot: {}", shot.display());
}
