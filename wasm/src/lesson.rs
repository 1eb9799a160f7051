//! Runs one of the twelve lessons of [`protocol::lessons`] as a pure state machine: the app
//! calls [`Runner::poll`] every frame with the page's clock, and sends what it answers over
//! the WebSocket. No web-sys here, so `cargo test -p wasm` tests the timing natively.
//!
//! The steps are the relay's data, not re-defined here: `Do` is sent as written, `Wait`
//! holds the next step, `AimAt` opens a stranger aimed at one of our sockets once its
//! `client_open` said where it lives, `SendRepeated` writes its long text, and `Outside`
//! is left to the student's terminal (the page shows the `nc -u` command instead).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use protocol::lessons::{Lesson, Step};
use protocol::{Command, ServerName, ServerSettings};

/// How long an `AimAt` waits for its target's address before the lesson skips it.
const AIM_PATIENCE_MS: f64 = 3_000.0;

/// A lesson being run.
#[derive(Debug)]
pub struct Runner {
    pub lesson: &'static Lesson,
    /// The next step to take.
    step: usize,
    /// Page time the lesson started, and until when the next step waits.
    started_ms: f64,
    wait_until_ms: f64,
}

impl Runner {
    pub fn new(lesson: &'static Lesson, now_ms: f64) -> Self {
        Self { lesson, step: 0, started_ms: now_ms, wait_until_ms: now_ms }
    }

    /// The commands due by `now_ms`, as JSON. `local_of` answers the local address of one of
    /// this session's sockets, once its `client_open` has arrived.
    pub fn poll(&mut self, now_ms: f64, local_of: impl Fn(&str) -> Option<String>) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(step) = self.lesson.steps.get(self.step) {
            if now_ms < self.wait_until_ms {
                break;
            }
            match *step {
                Step::Do(json) => out.push(json.to_owned()),
                Step::Wait(ms) => self.wait_until_ms = now_ms + ms as f64,
                Step::AimAt { socket, at } => match local_of(at) {
                    Some(local) => out.push(command_json(&Command::Open {
                        socket: socket.to_owned(),
                        server: None,
                        target: Some(local),
                        connect: true,
                        recv_buffer: None,
                    })),
                    // Not known yet: look again next frame, but not forever.
                    None if now_ms - self.started_ms < AIM_PATIENCE_MS + self.waits_ms() => break,
                    None => {}
                },
                Step::SendRepeated { socket, byte, len } => {
                    let text = char::from(byte).to_string().repeat(len);
                    out.push(command_json(&Command::Send {
                        socket: socket.to_owned(),
                        text: Some(text),
                        hex: None,
                        retry: None,
                        request_id: false,
                    }));
                }
                Step::Outside { .. } => {}
            }
            self.step += 1;
        }
        out
    }

    /// The sum of the lesson's waits, in milliseconds.
    fn waits_ms(&self) -> f64 {
        self.lesson.steps.iter().map(|s| if let Step::Wait(ms) = s { *ms as f64 } else { 0.0 }).sum()
    }

    /// Every step taken and the story told: the lesson is done.
    pub fn done(&self, now_ms: f64) -> bool {
        self.step >= self.lesson.steps.len() && now_ms >= self.started_ms + self.lesson.duration_ms as f64
    }
}

fn command_json(command: &Command) -> String {
    serde_json::to_string(command).unwrap_or_default()
}

/// What undoes `lesson`: its sockets closed, its own undo steps, and the settings it changed
/// put back to `settings` (the values from `hello`).
pub fn undo(lesson: &Lesson, settings: &BTreeMap<ServerName, ServerSettings>) -> Vec<String> {
    let mut out: Vec<String> = protocol::lessons::sockets(lesson)
        .into_iter()
        .map(|socket| command_json(&Command::Close { socket: socket.to_owned() }))
        .collect();
    for step in lesson.undo {
        if let Step::Do(json) = step {
            out.push((*json).to_owned());
        }
    }
    for server in [ServerName::Lossy, ServerName::Chat] {
        let configures = lesson.steps.iter().any(|s| {
            matches!(s, Step::Do(json) if json.contains(r#""op":"configure""#)
                && json.contains(&format!(r#""server":"{server}""#)))
        });
        if let (true, Some(s)) = (configures, settings.get(&server)) {
            out.push(command_json(&Command::Configure {
                server,
                drop: s.drop,
                delay_ms: s.delay_ms,
                jitter_ms: s.jitter_ms,
                timeout_ms: s.timeout_ms,
            }));
        }
    }
    out
}

/// Whether `lesson` subscribes to all traffic (the outside clients'), which its undo reverts.
pub fn watches_all(lesson: &Lesson) -> bool {
    lesson.steps.iter().any(|s| matches!(s, Step::Do(json) if json.contains(r#""scope":"all""#)))
}

/// The outside datagrams the student sends from a terminal, as `(command, text)`: the exact
/// `nc -u HOST PORT` for this relay. A server bound to every address is reached at the host
/// that served the page.
pub fn outside_commands(
    lesson: &Lesson,
    servers: &[(ServerName, SocketAddr)],
    page_host: &str,
) -> Vec<(String, &'static str)> {
    lesson
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Outside { server, text } => {
                let addr = servers.iter().find(|(n, _)| n == server).map(|(_, a)| *a)?;
                let host =
                    if addr.ip().is_unspecified() { page_host.to_owned() } else { addr.ip().to_string() };
                Some((format!("nc -u {host} {}", addr.port()), *text))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::lessons::lesson;

    #[test]
    fn waits_hold_the_next_steps_and_done_waits_for_the_story() {
        let l = lesson("late-duplicate").expect("lesson");
        let mut r = Runner::new(l, 1_000.0);
        assert_eq!(r.poll(1_000.0, |_| None).len(), 3, "configure, open, send");
        assert!(r.poll(1_449.0, |_| None).is_empty(), "waiting 450 ms");
        let fault = r.poll(1_450.0, |_| None);
        assert!(fault.len() == 1 && fault[0].contains("duplicate_next"), "{fault:?}");
        assert_eq!(r.poll(2_450.0, |_| None).len(), 2);
        assert!(!r.done(2_450.0));
        assert!(r.done(5_000.0));
    }

    #[test]
    fn a_stranger_is_aimed_at_our_socket_once_its_address_is_known() {
        let l = lesson("connected-refused").expect("lesson");
        let mut r = Runner::new(l, 0.0);
        assert_eq!(r.poll(0.0, |_| None).len(), 4);
        assert!(r.poll(500.0, |_| None).is_empty(), "no address yet");
        let out = r.poll(600.0, |s| (s == "unconnected").then(|| "127.0.0.1:5555".to_owned()));
        assert!(out[0].contains(r#""target":"127.0.0.1:5555""#) && out[0].contains("stranger"), "{out:?}");
    }

    #[test]
    fn long_payloads_are_written_out() {
        let mut r = Runner::new(lesson("truncation").expect("lesson"), 0.0);
        let out = r.poll(0.0, |_| None);
        assert!(out[1].contains(&"x".repeat(2_000)) && !out[1].contains(&"x".repeat(2_001)));
    }

    #[test]
    fn undo_closes_sockets_and_restores_settings() {
        let mut settings = BTreeMap::new();
        settings.insert(ServerName::Lossy, ServerSettings { drop: Some(0.2), ..ServerSettings::default() });
        let out = undo(lesson("loss-retry").expect("lesson"), &settings);
        assert!(out[0].contains(r#""op":"close""#) && out[0].contains("retry"), "{out:?}");
        assert!(out[1].contains(r#""drop":0.2"#), "{out:?}");
        let reorder = undo(lesson("reordering").expect("lesson"), &settings);
        assert!(reorder[1].contains(r#""reorder":0.0"#), "{reorder:?}");
    }

    #[test]
    fn the_nc_command_names_this_relay() {
        let l = lesson("outside-clients").expect("lesson");
        let servers = [
            (ServerName::Echo, "0.0.0.0:9001".parse().expect("addr")),
            (ServerName::Upper, "127.0.0.1:9002".parse().expect("addr")),
        ];
        let cmds = outside_commands(l, &servers, "classroom.local");
        assert_eq!(cmds[0].0, "nc -u classroom.local 9001");
        assert_eq!(cmds[1].0, "nc -u 127.0.0.1 9002");
        assert!(watches_all(l));
    }
}
