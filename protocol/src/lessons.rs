//! The twelve lessons, as steps any client of the relay can run: the page (one click each), and
//! `relay export-site`, which records each one from real traffic for the browser demo.
//!
//! A lesson is data, not code: commands in this protocol's JSON, waits, and a few steps that
//! need something only known while running (a socket's own address, a long payload, an outside
//! client). What a lesson changes (a server's settings, a link, a fault) it changes for its
//! own session's sockets only (`"scope":"own"`), so a class can run different lessons at
//! once; a `reset` dissolves it. Each lesson's words (its caption, in every language the page speaks) live with the
//! page, keyed by the slug.

use crate::ServerName;

/// One step of a lesson.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Send this command, as written.
    Do(&'static str),
    /// Wait this many milliseconds.
    Wait(u64),
    /// Open socket `socket`, connected, aimed at the `local` address of this session's socket
    /// `at` (from its `client_open`): a stranger to it. Being connected, it hears the kernel's
    /// ECONNREFUSED when nothing will take its datagram.
    AimAt { socket: &'static str, at: &'static str },
    /// Send `len` bytes of `byte` on `socket`, as text: too long to write out here.
    SendRepeated { socket: &'static str, byte: u8, len: usize },
    /// A datagram from an outside client (`nc -u`, a Python script) to `server`. The page leaves
    /// this to the student's terminal, and shows the command to run; a recording sends it from
    /// a real UDP socket.
    Outside { server: ServerName, tool: Tool, text: &'static str },
}

/// What a student runs in a terminal to send a lesson's [`Step::Outside`] datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// `nc -u HOST PORT`, then the text typed as a line.
    Nc,
    /// A Python one-liner that sends the text and prints the answer.
    Python,
}

/// One lesson: what to run and how long it takes to watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lesson {
    /// Its name in URLs (`?lesson=SLUG`) and in the page's text tables.
    pub slug: &'static str,
    pub steps: &'static [Step],
    /// How long its story takes to unfold, from the first step: the diagram shows this much.
    pub duration_ms: u64,
}

use Step::{AimAt, Do, Outside, SendRepeated, Wait};

/// Every lesson, in the order the page lists them.
pub static LESSONS: [Lesson; 12] = [
    Lesson {
        slug: "no-listener",
        steps: &[
            Do(r#"{"op":"open","socket":"lonely","server":"nobody","connect":false}"#),
            Do(r#"{"op":"send","socket":"lonely","text":"is anybody there?"}"#),
        ],
        duration_ms: 2_000,
    },
    Lesson {
        slug: "empty",
        steps: &[
            Do(r#"{"op":"open","socket":"empty","server":"echo"}"#),
            Do(r#"{"op":"send","socket":"empty","text":""}"#),
        ],
        duration_ms: 2_000,
    },
    Lesson {
        slug: "boundaries",
        steps: &[
            Do(r#"{"op":"open","socket":"words","server":"echo"}"#),
            Do(r#"{"op":"send","socket":"words","text":"first"}"#),
            Do(r#"{"op":"send","socket":"words","text":"second"}"#),
        ],
        duration_ms: 2_000,
    },
    Lesson {
        slug: "loss-retry",
        steps: &[
            Do(r#"{"op":"configure","server":"lossy","drop":1.0,"scope":"own"}"#),
            Do(r#"{"op":"open","socket":"retry","server":"lossy"}"#),
            Do(r#"{"op":"send","socket":"retry","text":"are you there?","retry":true}"#),
        ],
        duration_ms: 4_000,
    },
    Lesson {
        slug: "late-duplicate",
        steps: &[
            // Each answer is held 300 ms: attempts 1 (at 0 ms) and 2 (at 100 ms) are answered
            // at 300 and 400 ms, after the client has moved on: late.
            Do(
                r#"{"op":"configure","server":"lossy","drop":0.0,"delay_ms":300,"jitter_ms":0,"scope":"own"}"#,
            ),
            Do(r#"{"op":"open","socket":"ids","server":"lossy"}"#),
            Do(r#"{"op":"send","socket":"ids","text":"ping","retry":true,"request_id":true}"#),
            // The next answer to leave, attempt 3's at 600 ms, comes twice: a duplicate.
            Wait(450),
            Do(r#"{"op":"fault","server":"lossy","dir":"out","duplicate_next":1,"scope":"own"}"#),
            Wait(1_000),
            Do(r#"{"op":"open","socket":"no-ids","server":"lossy"}"#),
            Do(r#"{"op":"send","socket":"no-ids","text":"ping","retry":true}"#),
        ],
        duration_ms: 4_000,
    },
    Lesson {
        slug: "connected-refused",
        steps: &[
            Do(r#"{"op":"open","socket":"connected","server":"nobody","connect":true}"#),
            Do(r#"{"op":"open","socket":"unconnected","server":"nobody","connect":false}"#),
            Do(r#"{"op":"send","socket":"connected","text":"hello?"}"#),
            Do(r#"{"op":"send","socket":"unconnected","text":"hello?"}"#),
            Wait(500),
            AimAt { socket: "stranger", at: "unconnected" },
            Do(r#"{"op":"send","socket":"stranger","text":"a stranger says hi"}"#),
            AimAt { socket: "stranger-2", at: "connected" },
            Do(r#"{"op":"send","socket":"stranger-2","text":"a stranger says hi"}"#),
        ],
        duration_ms: 3_000,
    },
    Lesson {
        slug: "heartbeat-eviction",
        steps: &[
            Do(r#"{"op":"configure","server":"chat","timeout_ms":3000,"scope":"own"}"#),
            Do(r#"{"op":"open","socket":"alive","server":"chat"}"#),
            Do(r#"{"op":"heartbeat","socket":"alive","every_ms":1000}"#),
            Do(r#"{"op":"open","socket":"quiet","server":"chat"}"#),
            Do(r#"{"op":"send","socket":"quiet","text":"reg"}"#),
            Wait(5_000),
            Do(r#"{"op":"heartbeat","socket":"alive","every_ms":0}"#),
        ],
        duration_ms: 9_000,
    },
    Lesson {
        slug: "truncation",
        steps: &[
            Do(r#"{"op":"open","socket":"small","server":"echo","recv_buffer":1024}"#),
            SendRepeated { socket: "small", byte: b'x', len: 2_000 },
        ],
        duration_ms: 2_000,
    },
    Lesson {
        slug: "reordering",
        steps: &[
            Do(r#"{"op":"link","server":"echo","dir":"in","reorder":1.0,"scope":"own"}"#),
            Do(r#"{"op":"open","socket":"order","server":"echo"}"#),
            Do(r#"{"op":"send","socket":"order","text":"1"}"#),
            Do(r#"{"op":"send","socket":"order","text":"2"}"#),
            Do(r#"{"op":"send","socket":"order","text":"3"}"#),
            Do(r#"{"op":"send","socket":"order","text":"4"}"#),
        ],
        duration_ms: 2_000,
    },
    Lesson {
        slug: "size-limit",
        steps: &[
            Do(r#"{"op":"open","socket":"big","server":"echo"}"#),
            SendRepeated { socket: "big", byte: b'x', len: 65_507 },
            SendRepeated { socket: "big", byte: b'x', len: 65_508 },
            Wait(500),
            // Over a 1,500-byte MTU the biggest datagram is 45 fragments: losing any loses all.
            Do(r#"{"op":"link","server":"upper","dir":"in","mtu":1500,"loss":0.2,"scope":"own"}"#),
            Do(r#"{"op":"open","socket":"fragments","server":"upper"}"#),
            SendRepeated { socket: "fragments", byte: b'x', len: 65_507 },
            Do(r#"{"op":"send","socket":"fragments","text":"small enough for one packet"}"#),
        ],
        duration_ms: 3_000,
    },
    Lesson {
        slug: "many-clients",
        steps: &[
            Do(
                r#"{"op":"crowd","socket":"class","server":"upper","clients":100,"every_ms":1000,"text":"hello"}"#,
            ),
            Wait(4_500),
            Do(r#"{"op":"close","socket":"class"}"#),
        ],
        duration_ms: 5_000,
    },
    Lesson {
        slug: "outside-clients",
        steps: &[
            Do(r#"{"op":"subscribe","scope":"all","batch":true}"#),
            Outside { server: ServerName::Echo, tool: Tool::Nc, text: "hello from nc\n" },
            Wait(1_000),
            Outside { server: ServerName::Upper, tool: Tool::Python, text: "and from python\n" },
        ],
        duration_ms: 3_000,
    },
];

/// The lesson called `slug`.
pub fn lesson(slug: &str) -> Option<&'static Lesson> {
    LESSONS.iter().find(|l| l.slug == slug)
}

/// The sockets a lesson opens (and must close when it is undone).
pub fn sockets(lesson: &Lesson) -> Vec<&'static str> {
    let mut names = Vec::new();
    for step in lesson.steps {
        let name = match step {
            Do(json) if json.contains(r#""op":"open""#) || json.contains(r#""op":"crowd""#) => {
                socket_of(json)
            }
            AimAt { socket, .. } => Some(*socket),
            _ => None,
        };
        if let Some(name) = name.filter(|n| !names.contains(n)) {
            names.push(name);
        }
    }
    names
}

/// The socket a step's command names: `"socket":"NAME"`.
pub fn socket_of(json: &'static str) -> Option<&'static str> {
    let start = json.find(r#""socket":""#)? + r#""socket":""#.len();
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Command, Scope};

    #[test]
    fn every_step_is_a_valid_command_and_slugs_are_unique() {
        let mut slugs = Vec::new();
        for lesson in &LESSONS {
            assert!(!slugs.contains(&lesson.slug), "{} twice", lesson.slug);
            slugs.push(lesson.slug);
            for step in lesson.steps {
                if let Do(json) = step {
                    let command = serde_json::from_str::<Command>(json)
                        .unwrap_or_else(|e| panic!("{}: {json}: {e}", lesson.slug));
                    // A lesson changes things for its own sockets only, never the class's.
                    if let Command::Configure { scope, .. }
                    | Command::Link { scope, .. }
                    | Command::Fault { scope, .. } = command
                    {
                        assert_eq!(scope, Scope::Own, "{}: {json}", lesson.slug);
                    }
                }
            }
            assert!(lesson.duration_ms >= 1_000);
        }
        assert_eq!(lesson("truncation").map(|l| l.slug), Some("truncation"));
        assert!(lesson("nope").is_none());
    }

    #[test]
    fn a_lesson_knows_the_sockets_it_opens() {
        let refused = lesson("connected-refused").expect("lesson");
        assert_eq!(sockets(refused), ["connected", "unconnected", "stranger", "stranger-2"]);
        assert_eq!(sockets(lesson("many-clients").expect("lesson")), ["class"]);
    }
}
