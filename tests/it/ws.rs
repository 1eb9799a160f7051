//! A WebSocket client for the bridge tests: connect with chosen headers, send commands, and
//! wait for the message that matches, each step under a timeout.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, StatusCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{STEP, within};

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `hello` message, read on connect.
    pub hello: Value,
}

/// The result of an upgrade attempt: a session, or the HTTP status it was refused with.
pub async fn try_connect(http: SocketAddr, headers: &[(&str, &str)]) -> Result<Ws, StatusCode> {
    let mut request = format!("ws://{http}/ws").into_client_request().expect("valid ws url");
    for (name, value) in headers {
        let name: tokio_tungstenite::tungstenite::http::HeaderName = name.parse().expect("header name");
        request.headers_mut().insert(name, HeaderValue::from_str(value).expect("header value"));
    }
    match within("WebSocket connect", tokio_tungstenite::connect_async(request)).await {
        Ok((stream, _)) => {
            let mut ws = Ws { stream, hello: Value::Null };
            ws.hello = ws.next().await;
            Ok(ws)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status()),
        Err(e) => panic!("WebSocket connect failed: {e}"),
    }
}

/// Connects from `ip`, as a script would, and reads `hello`: another loopback address than
/// 127.0.0.1 stands in for another machine, a student's.
pub async fn connect_from(ip: std::net::IpAddr, http: SocketAddr) -> Ws {
    let tcp = crate::support::tcp_from(ip, http).await;
    let request = format!("ws://{http}/ws").into_client_request().expect("valid ws url");
    let upgrade = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp));
    let (stream, _) = within("WebSocket connect", upgrade).await.expect("upgrade accepted");
    let mut ws = Ws { stream, hello: Value::Null };
    ws.hello = ws.next().await;
    ws
}

/// Connects as a script would (no `Origin`) and reads `hello`.
pub async fn connect(http: SocketAddr) -> Ws {
    try_connect(http, &[]).await.expect("upgrade accepted")
}

impl Ws {
    pub async fn send(&mut self, command: Value) {
        within("sending a command", self.stream.send(Message::text(command.to_string())))
            .await
            .expect("send command");
    }

    pub async fn send_raw(&mut self, message: Message) {
        within("sending a frame", self.stream.send(message)).await.expect("send frame");
    }

    /// The next JSON message.
    pub async fn next(&mut self) -> Value {
        loop {
            let frame = within("waiting for a message", self.stream.next())
                .await
                .expect("the relay closed the WebSocket")
                .expect("WebSocket error");
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).expect("relay sends JSON"),
                Message::Close(_) => return Value::Null,
                _ => continue,
            }
        }
    }

    /// Skips messages until one satisfies `pred`, within [`STEP`]; returns it.
    pub async fn wait_for(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + STEP;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Ok(msg) = tokio::time::timeout(left, self.next()).await else {
                panic!("timed out waiting for {what}; saw {} messages, last: {:?}", seen.len(), seen.last());
            };
            if msg.is_null() {
                panic!("the session closed while waiting for {what}; saw {seen:?}");
            }
            if pred(&msg) {
                return msg;
            }
            seen.push(msg);
        }
    }

    /// Waits for an event of `kind` on `socket` (any socket if `None`).
    pub async fn event(&mut self, kind: &str, socket: Option<&str>) -> Value {
        self.wait_for(&format!("event {kind}"), |m| {
            m["type"] == "event" && m["kind"] == kind && socket.is_none_or(|s| m["socket"] == s)
        })
        .await
    }

    /// Waits for an error and checks its code.
    pub async fn error(&mut self, code: &str) -> Value {
        let msg = self.wait_for(&format!("error {code}"), |m| m["type"] == "error").await;
        assert_eq!(msg["code"], code, "unexpected error {msg}");
        msg
    }

    /// Asserts that no message arrives for `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Ok(msg) = tokio::time::timeout(quiet, self.next()).await {
            panic!("expected no message, got {msg}");
        }
    }

    /// Reads until the relay closes the connection, and returns its Close frame's code and
    /// reason, or `None` if it closed without one.
    pub async fn closed(&mut self) -> Option<(u16, String)> {
        loop {
            match within("waiting for the relay to close", self.stream.next()).await {
                Some(Ok(Message::Close(frame))) => {
                    return frame.map(|f| (f.code.into(), f.reason.to_string()));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return None,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = within("closing the WebSocket", self.stream.close(None)).await;
    }
}
