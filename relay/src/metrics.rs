//! `GET /metrics`: the relay in Prometheus' text format, for people who run services.
//!
//! Every count comes from the event stream, at one place: the bus counts each event as it
//! emits it, so the metrics say exactly what the events say. A relay with metrics therefore
//! always emits its events (see [`crate::bus::EventBus::is_observed`]).
//!
//! - `udp_playground_datagrams_total{server,direction}` and `udp_playground_bytes_total{…}`:
//!   `in` for the datagrams a server received (`server_recv`), `out` for those it sent
//!   (`server_send`);
//! - `udp_playground_dropped_total{server,reason}`: the lossy server's `loss` and `shed`, the
//!   link's `link_loss`, `link_fault` and `link_fragment`, and the chat server's `too_long`;
//! - `udp_playground_chat_clients` and `udp_playground_sessions`;
//! - `udp_playground_sandboxes{server}`: sessions with a server of their own (`sandbox_open`,
//!   `sandbox_close`), which is what a class's lessons make;
//! - `udp_playground_lagged_events_total`: events sessions missed because they fell behind.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use protocol::{DropReason, EventKind, LinkDropReason, ServerName};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Flow {
    server: &'static str,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Server {
    server: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Dropped {
    server: &'static str,
    reason: &'static str,
}

/// The relay's metrics. Cheap to share: every handle is an atomic.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Per server (in [`ServerName::ALL`] order), `[in, out]`: resolved once, so counting a
    /// datagram is two atomic adds.
    datagrams: Vec<[Counter; 2]>,
    bytes: Vec<[Counter; 2]>,
    dropped: Family<Dropped, Counter>,
    chat_clients: Gauge,
    /// Per server, in [`ServerName::ALL`] order, like `datagrams`.
    sandboxes: Vec<Gauge>,
    sessions: Gauge,
    lagged: Counter,
}

fn index(server: ServerName) -> Option<usize> {
    ServerName::ALL.iter().position(|&s| s == server)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("udp_playground");
        let datagrams = Family::<Flow, Counter>::default();
        let bytes = Family::<Flow, Counter>::default();
        let dropped = Family::<Dropped, Counter>::default();
        let sandboxes = Family::<Server, Gauge>::default();
        let (chat_clients, sessions, lagged) = (Gauge::default(), Gauge::default(), Counter::default());
        registry.register(
            "datagrams",
            "Datagrams each server received (in) and sent (out)",
            datagrams.clone(),
        );
        registry.register("bytes", "Payload bytes each server received (in) and sent (out)", bytes.clone());
        registry.register(
            "dropped",
            "Datagrams dropped, by the server or its link, and why",
            dropped.clone(),
        );
        registry.register(
            "chat_clients",
            "Live chat clients, in every room (a sandbox keeps its own)",
            chat_clients.clone(),
        );
        registry.register(
            "sandboxes",
            "Sessions with a server of their own (a lesson's changes for its own sockets)",
            sandboxes.clone(),
        );
        let sandboxes = ServerName::ALL
            .iter()
            .map(|server| sandboxes.get_or_create(&Server { server: server.as_str() }).clone());
        let sandboxes = sandboxes.collect();
        registry.register("sessions", "WebSocket sessions connected", sessions.clone());
        registry.register("lagged_events", "Events sessions missed because they fell behind", lagged.clone());
        let resolve = |family: &Family<Flow, Counter>| {
            ServerName::ALL
                .iter()
                .map(|server| {
                    let get = |direction| {
                        family.get_or_create(&Flow { server: server.as_str(), direction }).clone()
                    };
                    [get("in"), get("out")]
                })
                .collect()
        };
        Self {
            datagrams: resolve(&datagrams),
            bytes: resolve(&bytes),
            registry,
            dropped,
            chat_clients,
            sandboxes,
            sessions,
            lagged,
        }
    }

    /// Counts what `event` says happened.
    pub fn count(&self, event: &EventKind) {
        let flow = |server: ServerName, direction: usize, len: usize| {
            if let Some(i) = index(server) {
                self.datagrams[i][direction].inc();
                self.bytes[i][direction].inc_by(len as u64);
            }
        };
        let drop = |server: ServerName, reason| {
            self.dropped.get_or_create(&Dropped { server: server.as_str(), reason }).inc();
        };
        match event {
            EventKind::ServerRecv { server, len, .. } => flow(*server, 0, *len),
            EventKind::ServerSend { server, len, .. } => flow(*server, 1, *len),
            EventKind::ServerDrop { server, reason, .. } => drop(
                *server,
                match reason {
                    DropReason::Loss => "loss",
                    DropReason::Shed => "shed",
                },
            ),
            EventKind::LinkDrop { server, reason, .. } => drop(
                *server,
                match reason {
                    LinkDropReason::Loss => "link_loss",
                    LinkDropReason::Fault => "link_fault",
                    LinkDropReason::Fragment => "link_fragment",
                    LinkDropReason::Full => "link_full",
                },
            ),
            EventKind::ChatTooLong { server, .. } => drop(*server, "too_long"),
            // Counted by what joins and goes, not by each event's `clients`: that is one room's,
            // and a session's sandbox keeps a chat room of its own.
            EventKind::ChatJoin { .. } => {
                self.chat_clients.inc();
            }
            EventKind::ChatLeave { .. } | EventKind::ChatEvict { .. } => {
                self.chat_clients.dec();
            }
            EventKind::ChatEnd { clients, .. } => {
                self.chat_clients.dec_by(i64::try_from(*clients).unwrap_or(i64::MAX));
            }
            EventKind::SandboxOpen { server, .. } => self.sandboxes(*server, 1),
            EventKind::SandboxClose { server, .. } => self.sandboxes(*server, -1),
            _ => {}
        }
    }

    fn sandboxes(&self, server: ServerName, change: i64) {
        if let Some(i) = index(server) {
            self.sandboxes[i].inc_by(change);
        }
    }

    pub fn session_started(&self) {
        self.sessions.inc();
    }

    pub fn session_ended(&self) {
        self.sessions.dec();
    }

    pub fn lagged(&self, missed: u64) {
        self.lagged.inc_by(missed);
    }

    /// Prometheus' text exposition format (version 0.0.4), which `promtool check metrics` and
    /// every Prometheus scrapes.
    ///
    /// `prometheus-client` writes OpenMetrics, which differs in two ways only for these
    /// metrics: a counter's `# HELP` and `# TYPE` name it without `_total`, and the text ends
    /// with `# EOF`. Both are translated here.
    pub fn encode(&self) -> String {
        let mut open_metrics = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry) {
            tracing::error!("cannot encode the metrics: {e}");
        }
        let counters: Vec<&str> = open_metrics
            .lines()
            .filter_map(|line| line.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
            .collect();
        let mut out = String::with_capacity(open_metrics.len() + 64);
        for line in open_metrics.lines() {
            if line == "# EOF" {
                continue;
            }
            let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
                let rest = line.strip_prefix(prefix)?;
                let (name, tail) = rest.split_once(' ')?;
                counters.contains(&name).then(|| format!("{prefix}{name}_total {tail}"))
            });
            out.push_str(renamed.as_deref().unwrap_or(line));
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_counted_by_server_direction_and_reason() {
        let metrics = Metrics::new();
        let a: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let payload = protocol::Payload::preview(b"hello");
        metrics.count(&EventKind::ServerRecv {
            server: ServerName::Echo,
            dg: 1,
            from: a,
            to: a,
            len: 5,
            payload: payload.clone(),
        });
        metrics.count(&EventKind::ServerSend {
            server: ServerName::Echo,
            dg: 2,
            reply_to: Some(1),
            from: a,
            to: a,
            len: 5,
            payload,
            delay_ms: None,
        });
        metrics.count(&EventKind::ServerDrop {
            server: ServerName::Lossy,
            dg: 3,
            from: a,
            to: a,
            len: 1,
            reason: DropReason::Loss,
        });
        let text = metrics.encode();
        assert!(text.contains(r#"udp_playground_datagrams_total{server="echo",direction="in"} 1"#), "{text}");
        assert!(text.contains(r#"udp_playground_bytes_total{server="echo",direction="out"} 5"#), "{text}");
        assert!(text.contains(r#"udp_playground_dropped_total{server="lossy",reason="loss"} 1"#), "{text}");
        assert!(text.contains("udp_playground_sessions 0"), "{text}");
        assert!(text.contains("# TYPE udp_playground_datagrams_total counter"), "{text}");
        assert!(text.contains("# HELP udp_playground_dropped_total "), "{text}");
        assert!(!text.contains("# EOF"), "{text}");
    }

    #[test]
    fn chat_clients_are_counted_across_rooms() {
        let metrics = Metrics::new();
        let peer: std::net::SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let (server, timeout_ms) = (ServerName::Chat, 10_000);
        // Two in the shared room, one in a session's sandbox: each event counts its own room.
        for clients in [1, 2, 1] {
            metrics.count(&EventKind::ChatJoin { server, peer, clients, timeout_ms });
        }
        assert!(metrics.encode().contains("udp_playground_chat_clients 3"));
        // The sandbox is dissolved: its room ends, the shared room's two stay.
        metrics.count(&EventKind::ChatEnd { server, clients: 1 });
        metrics.count(&EventKind::ChatLeave { server, peer, clients: 1 });
        let text = metrics.encode();
        assert!(text.contains("udp_playground_chat_clients 1"), "{text}");
    }

    #[test]
    fn sandboxes_are_counted_per_server_from_zero() {
        let metrics = Metrics::new();
        let gauge = |text: &str, server: &str| {
            let line = format!("udp_playground_sandboxes{{server=\"{server}\"}} ");
            text.lines().find_map(|l| l.strip_prefix(&line)).map(str::to_owned)
        };
        assert_eq!(gauge(&metrics.encode(), "lossy").as_deref(), Some("0"));
        let (lossy, echo) = (ServerName::Lossy, ServerName::Echo);
        for (server, session) in [(lossy, "a"), (lossy, "b"), (echo, "a")] {
            metrics.count(&EventKind::SandboxOpen { server, session: session.into() });
        }
        metrics.count(&EventKind::SandboxClose { server: lossy, session: "a".into() });
        let text = metrics.encode();
        assert_eq!(gauge(&text, "lossy").as_deref(), Some("1"), "{text}");
        assert_eq!(gauge(&text, "echo").as_deref(), Some("1"), "{text}");
        assert_eq!(gauge(&text, "chat").as_deref(), Some("0"), "{text}");
    }
}
