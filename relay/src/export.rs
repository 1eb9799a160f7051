//! `relay export-site DIR`: the browser demo that needs no relay.
//!
//! Many students cannot run cargo: a school laptop, a tablet, a link in a course page. This
//! writes a static site that works from any static host (even `python3 -m http.server`): the
//! page, its wasm and JS, and a recording of every lesson made from real traffic. For each
//! lesson it starts a real relay on loopback, runs the lesson's steps over a real WebSocket
//! (and, where a lesson has an outside client, from a real UDP socket), and writes what the
//! page received, message by message, as `lessons/SLUG.jsonl`. `demo.json` lists them; a page
//! that finds no relay behind it and finds this file says it is replaying a recording.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use protocol::lessons::{LESSONS, Lesson, Step};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::{Config, Relay};

/// Why the site could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: std::io::Error },
    #[error("cannot start a relay to record lesson {slug}: {reason}")]
    Start { slug: &'static str, reason: String },
    #[error("lesson {slug}: {reason}")]
    Lesson { slug: &'static str, reason: String },
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    let fail = |reason| ExportError::Write { path: path.to_owned(), reason };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::write(path, bytes).map_err(fail)
}

/// How long one WebSocket step may take before the recording gives up.
const STEP: Duration = Duration::from_secs(5);

/// Writes the site into `dir`; returns the lessons recorded.
pub async fn export_site(dir: &Path) -> Result<Vec<&'static str>, ExportError> {
    for (path, bytes) in crate::http::site_files() {
        write(&dir.join(&path), &bytes)?;
    }
    let mut recorded = Vec::new();
    for lesson in &LESSONS {
        let messages = record(lesson).await?;
        let mut jsonl = String::new();
        for message in messages {
            jsonl.push_str(&message);
            jsonl.push('\n');
        }
        write(&dir.join("lessons").join(format!("{}.jsonl", lesson.slug)), jsonl.as_bytes())?;
        recorded.push(lesson.slug);
    }
    let demo = serde_json::json!({
        "demo": true,
        "about": "recordings of real traffic through a UDP Playground relay, made by `relay export-site`",
        "lessons": recorded,
    });
    write(&dir.join("demo.json"), demo.to_string().as_bytes())?;
    Ok(recorded)
}

/// Runs one lesson against a fresh relay and returns every message the page would have got:
/// the hello first, then the events, in order.
pub async fn record(lesson: &'static Lesson) -> Result<Vec<String>, ExportError> {
    let slug = lesson.slug;
    let fail = |reason: String| ExportError::Lesson { slug, reason };
    let mut config = Config::ephemeral();
    // Tutorial ports would clash with a relay already running; a fixed seed makes the
    // recording the same each time it is made.
    config.lossy.seed = 1;
    let relay = Relay::bind(config).await.map_err(|e| ExportError::Start { slug, reason: e.to_string() })?;
    let handle = relay.handle().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(relay.serve(async move {
        let _ = stopped.await;
    }));

    let url = format!("ws://{}/ws", handle.http);
    let (mut ws, _) = tokio::time::timeout(STEP, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| fail("the WebSocket did not open".into()))?
        .map_err(|e| fail(format!("the WebSocket did not open: {e}")))?;
    let mut messages = Vec::new();
    let subscribe = r#"{"op":"subscribe","scope":"all","batch":false}"#;
    ws.send(Message::text(subscribe)).await.map_err(|e| fail(e.to_string()))?;
    let outside = tokio::net::UdpSocket::bind("127.0.0.1:0").await.map_err(|e| fail(e.to_string()))?;

    let started = tokio::time::Instant::now();
    for step in lesson.steps {
        match *step {
            Step::Do(json) => ws.send(Message::text(json)).await.map_err(|e| fail(e.to_string()))?,
            Step::Wait(ms) => collect(&mut ws, &mut messages, Duration::from_millis(ms)).await,
            Step::SendRepeated { socket, byte, len } => {
                let text: String = std::iter::repeat_n(char::from(byte), len).collect();
                let command = serde_json::json!({"op":"send","socket":socket,"text":text});
                ws.send(Message::text(command.to_string())).await.map_err(|e| fail(e.to_string()))?;
            }
            Step::AimAt { socket, at } => {
                collect(&mut ws, &mut messages, Duration::from_millis(100)).await;
                let local = messages
                    .iter()
                    .filter_map(|m| serde_json::from_str::<Value>(m).ok())
                    .find(|m| m["kind"] == "client_open" && m["socket"] == at)
                    .and_then(|m| m["local"].as_str().map(str::to_owned))
                    .ok_or_else(|| fail(format!("no client_open for {at}")))?;
                let command = serde_json::json!({"op":"open","socket":socket,"target":local});
                ws.send(Message::text(command.to_string())).await.map_err(|e| fail(e.to_string()))?;
            }
            Step::Outside { server, text, .. } => {
                let Some(&to) = handle.servers.get(&server) else { continue };
                let _ = outside.send_to(text.as_bytes(), to).await;
            }
        }
    }
    let left = Duration::from_millis(lesson.duration_ms).saturating_sub(started.elapsed());
    collect(&mut ws, &mut messages, left + Duration::from_millis(300)).await;
    let _ = ws.close(None).await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(STEP, serving).await;
    // The page needs nothing but the hello and the events; errors belong to the live page.
    Ok(messages.into_iter().filter(|m| !m.starts_with(r#"{"type":"error""#)).collect())
}

/// Reads messages for `time`.
async fn collect<S>(ws: &mut S, messages: &mut Vec<String>, time: Duration)
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let until = tokio::time::Instant::now() + time;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(until, ws.next()).await {
        if let Message::Text(text) = message {
            messages.push(text.to_string());
        }
    }
}
