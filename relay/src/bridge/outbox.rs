//! A session's outgoing frames: messages ready together go out together and are flushed once.

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::SinkExt;
use futures_util::stream::SplitSink;
use protocol::{Kinds, ServerMsg};

use crate::bus::Published;

pub type Sink = SplitSink<axum::extract::ws::WebSocket, Message>;

/// Messages ready to go out together: one frame each, or one `batch` frame for all of them.
/// Either way they are flushed once, so a burst of events costs one write.
pub struct Outbox {
    frames: Frames,
    /// The kinds of event the session asked for. The feed already leaves the others out as it
    /// routes them; this also catches the everything-subscription, and events that were queued
    /// before a new `subscribe`.
    kinds: Kinds,
    /// What [`Outbox::added`] says.
    added: usize,
}

enum Frames {
    /// One frame per message. An event's frame shares the text the bus wrote once for every
    /// session: nothing is copied until the WebSocket writes it out.
    Each(Vec<Utf8Bytes>),
    /// The one `batch` frame being written, once there is something in it.
    Batch(Option<String>),
}

impl Outbox {
    pub fn new(batch: bool, kinds: Kinds) -> Self {
        let frames = if batch { Frames::Batch(None) } else { Frames::Each(Vec::new()) };
        Self { frames, kinds, added: 0 }
    }

    /// Adds a message that is JSON already: a batch splices it in rather than parse it.
    fn push(&mut self, json: Utf8Bytes) {
        match &mut self.frames {
            Frames::Each(frames) => frames.push(json),
            Frames::Batch(Some(batch)) => {
                batch.push(',');
                batch.push_str(&json);
            }
            Frames::Batch(batch) => {
                // A guess at a typical batch; the string grows as needed.
                let mut text = String::with_capacity(json.len() * 8);
                text.push_str(r#"{"type":"batch","messages":["#);
                text.push_str(&json);
                *batch = Some(text);
            }
        }
    }

    /// Events offered so far, whether or not the session asked for their kind.
    pub fn added(&self) -> usize {
        self.added
    }

    pub fn event(&mut self, event: &Published) {
        self.added += 1;
        if !self.kinds.contains(event.kind.kind()) {
            return;
        }
        if let Some(json) = event.frame() {
            self.push(json.clone());
        }
    }

    pub fn message(&mut self, msg: &ServerMsg) {
        match serde_json::to_string(msg) {
            Ok(json) => self.push(json.into()),
            Err(e) => tracing::error!("cannot serialize a message: {e}"),
        }
    }

    /// The finished frames.
    fn frames(self) -> Vec<Utf8Bytes> {
        match self.frames {
            Frames::Each(frames) => frames,
            Frames::Batch(Some(mut batch)) => {
                batch.push_str("]}");
                vec![batch.into()]
            }
            Frames::Batch(None) => Vec::new(),
        }
    }

    pub async fn send(self, sink: &mut Sink) -> Result<(), axum::Error> {
        let frames = self.frames();
        if frames.is_empty() {
            return Ok(());
        }
        for frame in frames {
            sink.feed(Message::Text(frame)).await?;
        }
        sink.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::Instant;

    use protocol::EventKind;

    /// Two events as the bus hands them out: a `client_close`, then a `client_open`.
    fn two_events() -> (Arc<Published>, Arc<Published>) {
        let bus = crate::bus::EventBus::new(Instant::now());
        let mut rx = bus.subscribe();
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        bus.emit(
            Instant::now(),
            EventKind::ClientClose { session: "s".into(), socket: "a".into(), member: None },
        );
        let open = EventKind::ClientOpen {
            session: "s".into(),
            socket: "b".into(),
            local,
            remote: local,
            server: None,
            connect: true,
            member: None,
            recv_buffer: None,
        };
        bus.emit(Instant::now(), open);
        (rx.try_recv().expect("first"), rx.try_recv().expect("second"))
    }

    fn parsed(frames: Vec<Utf8Bytes>) -> Vec<serde_json::Value> {
        frames.iter().map(|f| serde_json::from_str(f).expect("each frame is JSON")).collect()
    }

    #[test]
    fn outbox_writes_a_frame_per_message_or_one_batch() {
        let (close, open) = two_events();
        let lagged = ServerMsg::Lagged { missed: 3 };

        let mut out = Outbox::new(false, Kinds::ALL);
        out.event(&close);
        out.event(&open);
        out.message(&lagged);
        let frames = parsed(out.frames());
        let types: Vec<_> = frames.iter().map(|f| f["type"].as_str().unwrap_or_default()).collect();
        assert_eq!(types, ["event", "event", "lagged"]);
        assert_eq!(
            (frames[0]["kind"].as_str(), frames[1]["kind"].as_str()),
            (Some("client_close"), Some("client_open"))
        );

        let mut out = Outbox::new(true, Kinds::ALL);
        out.event(&close);
        out.event(&open);
        out.message(&lagged);
        let frames = parsed(out.frames());
        assert_eq!(frames.len(), 1, "one batch frame");
        let messages = frames[0]["messages"].as_array().expect("messages");
        assert_eq!(frames[0]["type"], "batch");
        assert_eq!(messages.len(), 3);
        assert_eq!((messages[0]["seq"].as_u64(), messages[1]["seq"].as_u64()), (Some(1), Some(2)));
        assert_eq!(messages[2], serde_json::json!({"type":"lagged","missed":3}));

        let mut out = Outbox::new(true, Kinds::ALL);
        out.event(&open);
        assert_eq!(parsed(out.frames())[0]["messages"].as_array().map(Vec::len), Some(1), "a batch of one");
        assert!(Outbox::new(true, Kinds::ALL).frames().is_empty(), "nothing to say, no frame");
    }

    #[test]
    fn outbox_leaves_out_kinds_not_asked_for() {
        let (close, open) = two_events();
        let mut out = Outbox::new(false, [protocol::Kind::ClientOpen].into_iter().collect());
        out.event(&close);
        out.event(&open);
        let frames = parsed(out.frames());
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["kind"], "client_open");
    }
}
