//! Runs one of the twelve lessons of [`protocol::lessons`] as a pure state machine: the app
//! calls [`Runner::poll`] every frame with the page's clock, and sends what it answers over
//! the WebSocket. No web-sys here, so `cargo test -p wasm` tests the timing natively.
//!
//! The steps are the relay's data, not re-defined here: `Do` is sent as written, `Wait`
//! holds the next step, `AimAt` opens a stranger aimed at one of our sockets once its
//! `client_open` said where it lives, `SendRepeated` writes its long text, and `Outside`
//! is left to the student's terminal (the page shows the `nc -u` or `python3` command).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use protocol::lessons::{Lesson, Step, Tool};
use protocol::{Command, Dir, Links, Scope, ServerName};

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
    /// The sockets its steps opened and have not closed: what [`Runner::undo`] closes.
    open: Vec<&'static str>,
}

impl Runner {
    pub fn new(lesson: &'static Lesson, now_ms: f64) -> Self {
        Self { lesson, step: 0, started_ms: now_ms, wait_until_ms: now_ms, open: Vec::new() }
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
                Step::Do(json) => {
                    if let Some(socket) = protocol::lessons::socket_of(json) {
                        if json.contains(r#""op":"open""#) || json.contains(r#""op":"crowd""#) {
                            self.open.push(socket);
                        } else if json.contains(r#""op":"close""#) {
                            self.open.retain(|s| *s != socket);
                        }
                    }
                    out.push(json.to_owned());
                }
                Step::Wait(ms) => self.wait_until_ms = now_ms + ms as f64,
                Step::AimAt { socket, at } => match local_of(at) {
                    Some(local) => {
                        self.open.push(socket);
                        out.push(command_json(&Command::Open {
                            socket: socket.to_owned(),
                            server: None,
                            target: Some(local),
                            connect: true,
                            recv_buffer: None,
                        }));
                    }
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

    /// What undoes the lesson so far: the sockets it opened and has not closed itself are
    /// closed (a lesson stopped early opened fewer; one that ran to its end may have closed
    /// some), and its own settings and links (`"scope":"own"`) dissolved, so this page's
    /// sockets meet the servers everyone meets again.
    pub fn undo(&self) -> Vec<String> {
        let mut out = Vec::new();
        for socket in &self.open {
            out.push(command_json(&Command::Close { socket: (*socket).to_owned() }));
        }
        out.push(command_json(&Command::Reset {}));
        out
    }

    /// Every step taken and the story told: the lesson is done.
    pub fn done(&self, now_ms: f64) -> bool {
        self.step >= self.lesson.steps.len() && now_ms >= self.started_ms + self.lesson.duration_ms as f64
    }
}

fn command_json(command: &Command) -> String {
    serde_json::to_string(command).unwrap_or_default()
}

/// What makes every link this page's sockets meet perfect, one `link` command each, for them
/// only: the directions of the shared `links` (as the relay last announced them) that do
/// anything. A lesson starts from perfect links without changing anyone else's.
pub fn perfect_links(links: &BTreeMap<ServerName, Links>) -> Vec<String> {
    let mut out = Vec::new();
    for (&server, both) in links {
        for dir in [Dir::In, Dir::Out] {
            if !both.get(dir).is_off() {
                out.push(command_json(&Command::Link {
                    server,
                    dir,
                    loss: Some(0.0),
                    duplicate: Some(0.0),
                    reorder: Some(0.0),
                    delay_ms: Some(0),
                    jitter_ms: Some(0),
                    mtu: Some(0),
                    scope: Scope::Own,
                }));
            }
        }
    }
    out
}

/// Whether `lesson` subscribes to all traffic (the outside clients'), which its undo reverts.
pub fn watches_all(lesson: &Lesson) -> bool {
    lesson.steps.iter().any(|s| matches!(s, Step::Do(json) if json.contains(r#""scope":"all""#)))
}

/// An outside datagram the student sends from a terminal: the command to run and, for `nc`,
/// the line to type into it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutsideCommand {
    pub command: String,
    pub typed: Option<&'static str>,
}

/// The outside datagrams of `lesson`, each with the exact command for this relay: `nc -u HOST
/// PORT`, or a Python one-liner that sends its text and prints the answer. A server bound to
/// every address is reached at the host that served the page.
pub fn outside_commands(
    lesson: &Lesson,
    servers: &[(ServerName, SocketAddr)],
    page_host: &str,
) -> Vec<OutsideCommand> {
    lesson
        .steps
        .iter()
        .filter_map(|s| match *s {
            Step::Outside { server, tool, text } => {
                let addr = servers.iter().find(|(n, _)| *n == server).map(|(_, a)| *a)?;
                // `location.hostname` writes an IPv6 address in brackets; the tools do not.
                let host = match addr.ip().is_unspecified() {
                    true => page_host.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    false => addr.ip().to_string(),
                };
                let port = addr.port();
                Some(match tool {
                    Tool::Nc => OutsideCommand { command: format!("nc -u {host} {port}"), typed: Some(text) },
                    Tool::Python => {
                        OutsideCommand { command: python_command(&host, port, text), typed: None }
                    }
                })
            }
            _ => None,
        })
        .collect()
}

/// A `python3 -c "…"` line for a POSIX shell that sends `text` to `host`:`port` from a UDP
/// socket and prints the answer: the tutorials' client, in one line.
fn python_command(host: &str, port: u16, text: &str) -> String {
    let family = if host.contains(':') { "AF_INET6" } else { "AF_INET" };
    // Inside a bytes literal in single quotes, inside the shell's double quotes: what either
    // would take for its own is written as a `\xNN` escape or escaped twice.
    let mut bytes = String::new();
    for c in text.chars() {
        match c {
            // The shell turns two backslashes into one, Python two into one again.
            '\\' => bytes.push_str("\\\\\\\\"),
            '\'' => bytes.push_str("\\'"),
            '\n' => bytes.push_str("\\n"),
            '"' | '$' | '`' => {
                bytes.push_str("\\x");
                bytes.push_str(&format!("{:02x}", c as u32));
            }
            c if c.is_ascii() && !c.is_ascii_control() => bytes.push(c),
            c => {
                let mut buf = [0; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    bytes.push_str(&format!("\\x{b:02x}"));
                }
            }
        }
    }
    format!(
        "python3 -c \"import socket; s = socket.socket(socket.{family}, socket.SOCK_DGRAM); s.settimeout(5); \
         s.sendto(b'{bytes}', ('{host}', {port})); print(s.recvfrom(65535)[0].decode())\""
    )
}

/// The query `search` with `lesson=SLUG` in place of any lesson it names, the rest kept:
/// `?view=all&lesson=empty` for `?lesson=no-listener&view=all` and `empty`.
pub fn with_lesson(search: &str, slug: &str) -> String {
    let mut query = format!("?lesson={slug}");
    for kv in search.trim_start_matches('?').split('&') {
        if !kv.is_empty() && !kv.starts_with("lesson=") {
            query.push('&');
            query.push_str(kv);
        }
    }
    query
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lesson_in_the_url_is_replaced_and_the_rest_kept() {
        assert_eq!(with_lesson("", "empty"), "?lesson=empty");
        assert_eq!(with_lesson("?lesson=no-listener&view=all", "empty"), "?lesson=empty&view=all");
        assert_eq!(with_lesson("?view=all", "reordering"), "?lesson=reordering&view=all");
    }
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
    fn only_shared_links_that_do_something_are_made_perfect_for_this_page_alone() {
        let mut links = BTreeMap::new();
        links.insert(ServerName::Echo, Links::default());
        let mut upper = Links::default();
        upper.inbound.mtu = Some(1500);
        upper.outbound.loss = 0.5;
        links.insert(ServerName::Upper, upper);
        let out = perfect_links(&links);
        assert_eq!(out.len(), 2, "{out:?}");
        let command: Command = serde_json::from_str(&out[0]).expect("a command");
        let Command::Link { server, dir, mtu, loss, reorder, scope, .. } = command else { panic!("{out:?}") };
        assert_eq!(
            (server, dir, mtu, loss, reorder, scope),
            (ServerName::Upper, Dir::In, Some(0), Some(0.0), Some(0.0), Scope::Own)
        );
        assert!(out[1].contains(r#""server":"upper","dir":"out""#), "{out:?}");
        assert!(perfect_links(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn long_payloads_are_written_out() {
        let mut r = Runner::new(lesson("truncation").expect("lesson"), 0.0);
        let out = r.poll(0.0, |_| None);
        assert!(out[1].contains(&"x".repeat(2_000)) && !out[1].contains(&"x".repeat(2_001)));
    }

    /// Every socket's address, as soon as it is asked: the page has heard every `client_open`.
    fn known(_: &str) -> Option<String> {
        Some("127.0.0.1:40000".to_owned())
    }

    /// Runs the lesson to its end, frame by frame.
    fn run_all(r: &mut Runner) {
        let mut now = 0.0;
        while !r.done(now) {
            r.poll(now, known);
            now += 50.0;
        }
    }

    /// The sockets `out` closes.
    fn closes(out: &[String]) -> Vec<String> {
        let commands = out.iter().filter_map(|json| serde_json::from_str::<Command>(json).ok());
        commands.filter_map(|c| if let Command::Close { socket } = c { Some(socket) } else { None }).collect()
    }

    #[test]
    fn undo_closes_the_sockets_the_lesson_left_open_then_dissolves_what_it_set_for_them() {
        let mut r = Runner::new(lesson("connected-refused").expect("lesson"), 0.0);
        run_all(&mut r);
        let out = r.undo();
        assert_eq!(closes(&out).len(), 4, "{out:?}");
        assert_eq!(out.last().map(String::as_str), Some(r#"{"op":"reset"}"#), "{out:?}");
        let mut r = Runner::new(lesson("reordering").expect("lesson"), 0.0);
        run_all(&mut r);
        assert_eq!(r.undo().len(), 2, "its socket, then the reset");
    }

    #[test]
    fn undo_closes_no_socket_the_lesson_closed_or_never_opened() {
        // Many clients closes its crowd itself, at its end: undoing it then closes nothing
        // more (the relay would answer `unknown_socket`).
        let mut r = Runner::new(lesson("many-clients").expect("lesson"), 0.0);
        run_all(&mut r);
        assert!(closes(&r.undo()).is_empty(), "{:?}", r.undo());
        // A lesson stopped before its second socket opened closes the first one only.
        let mut r = Runner::new(lesson("connected-refused").expect("lesson"), 0.0);
        let first = r.poll(0.0, |_| None);
        let opened: Vec<_> = first.iter().filter(|json| json.contains(r#""op":"open""#)).collect();
        assert_eq!(closes(&r.undo()).len(), opened.len(), "{first:?}");
        assert_eq!(Runner::new(lesson("reordering").expect("lesson"), 0.0).undo(), [r#"{"op":"reset"}"#]);
    }

    #[test]
    fn the_nc_command_names_this_relay() {
        let l = lesson("outside-clients").expect("lesson");
        let servers = [
            (ServerName::Echo, "0.0.0.0:9001".parse().expect("addr")),
            (ServerName::Upper, "127.0.0.1:9002".parse().expect("addr")),
        ];
        let cmds = outside_commands(l, &servers, "classroom.local");
        assert_eq!(
            cmds[0],
            OutsideCommand { command: "nc -u classroom.local 9001".into(), typed: Some("hello from nc\n") }
        );
        assert_eq!(
            cmds[1].command,
            "python3 -c \"import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5); \
             s.sendto(b'and from python\\n', ('127.0.0.1', 9002)); print(s.recvfrom(65535)[0].decode())\""
        );
        assert_eq!(cmds[1].typed, None, "the one-liner sends by itself");
        assert!(watches_all(l));
        // A page served over IPv6 names its host in brackets; the tools take it bare.
        let v6 = [
            (ServerName::Echo, "[::]:9001".parse().expect("addr")),
            (ServerName::Upper, "[::1]:9002".parse().expect("addr")),
        ];
        let cmds = outside_commands(l, &v6, "[::1]");
        assert_eq!(cmds[0].command, "nc -u ::1 9001");
        assert!(
            cmds[1].command.contains("socket.AF_INET6") && cmds[1].command.contains("('::1', 9002)"),
            "{cmds:?}"
        );
    }

    #[test]
    fn the_python_line_escapes_what_the_shell_or_python_would_take() {
        let line = python_command("h", 1, "a'b\\c\"$`é\t\n");
        let literal = line.split("s.sendto(b'").nth(1).and_then(|rest| rest.split("', ('h', 1))").next());
        assert_eq!(literal, Some(r"a\'b\\\\c\x22\x24\x60\xc3\xa9\x09\n"));
    }
}
