//! The model, driven natively: explicit events in (with the relay's `dg` names), the drawing
//! model out. No browser, no clock: every event carries its own time.

use super::*;
use protocol::{Scope, VanishReason};

const ECHO: &str = "127.0.0.1:10004";
const LOSSY: &str = "127.0.0.1:1060";
const CHAT: &str = "127.0.0.1:9998";
const NOBODY: &str = "127.0.0.1:29999";
const SOCK: &str = "127.0.0.1:50000";
const SOCK2: &str = "127.0.0.1:50001";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("test address")
}

/// The relay's greeting, written as on the wire: fields it gains later take their defaults.
fn hello() -> ServerMsg {
    let hello = serde_json::json!({
        "type": "hello", "version": 1, "session": "me",
        "servers": {"echo": ECHO, "lossy": LOSSY, "chat": CHAT, "nobody": NOBODY},
        "settings": {"lossy": {"drop": 0.25}},
        "limits": {"sessions": 64, "sockets_per_session": 16, "sends_per_sec": 200,
                   "datagram_bytes": 65_507, "bytes_per_sec": 1_048_576, "crowd_clients": 100,
                   "heartbeat_min_ms": 100, "pending_requests": 32, "chat_clients": 100,
                   "preview_bytes": 256},
    });
    serde_json::from_value(hello).expect("a hello")
}

/// Feeds events with increasing `seq`.
struct Feed {
    model: Model,
    seq: u64,
}

impl Feed {
    fn new() -> Self {
        Self::with_window(DEFAULT_WINDOW)
    }

    fn with_window(window: usize) -> Self {
        let mut model = Model::new(window);
        model.apply(&hello());
        Feed { model, seq: 0 }
    }

    fn at(&mut self, t_ms: u64, kind: EventKind) {
        self.seq += 1;
        let event = Event { seq: self.seq, t_us: t_ms * 1000, kind };
        self.model.apply(&ServerMsg::Event(event));
    }

    fn open(&mut self, socket: &str, local: &str, server: ServerName, remote: &str) {
        self.open_with(socket, local, server, remote, true, None);
    }

    fn open_with(
        &mut self,
        socket: &str,
        local: &str,
        server: ServerName,
        remote: &str,
        connect: bool,
        recv_buffer: Option<usize>,
    ) {
        self.at(
            0,
            EventKind::ClientOpen {
                session: "me".into(),
                socket: socket.into(),
                member: None,
                local: addr(local),
                remote: addr(remote),
                server: Some(server),
                connect,
                recv_buffer,
            },
        );
    }

    fn arrows(&self) -> Vec<Arrow> {
        self.model
            .items()
            .iter()
            .filter_map(|i| match &i.body {
                Body::Arrow(a) => Some(a.clone()),
                Body::Mark(_) => None,
            })
            .collect()
    }

    /// The arrow drawn for datagram `dg`.
    fn arrow(&self, dg: Dg) -> Arrow {
        let found = self.arrows().into_iter().filter(|a| a.dg == Some(dg)).collect::<Vec<_>>();
        assert_eq!(found.len(), 1, "one arrow for dg {dg}: {found:#?}");
        found.into_iter().next().expect("one arrow")
    }

    fn marks(&self) -> Vec<MarkKind> {
        self.model
            .items()
            .iter()
            .filter_map(|i| match &i.body {
                Body::Mark(m) => Some(m.kind.clone()),
                Body::Arrow(_) => None,
            })
            .collect()
    }

    fn lane(&self, label: &str) -> usize {
        self.model.lanes().iter().position(|l| l.label == label).expect("lane exists")
    }

    fn log(&mut self) -> Vec<LogLine> {
        self.model.take_log(usize::MAX).collect()
    }
}

fn bytes(text: &str) -> (usize, Payload) {
    (text.len(), Payload::preview(text.as_bytes()))
}

/// Socket `socket` at `SOCK` sends datagram `dg`.
fn send(dg: Dg, socket: &str, to: &str, text: &str, attempt: Option<u32>, req: Option<&str>) -> EventKind {
    send_from(dg, socket, SOCK, to, text, attempt, req)
}

fn send_from(
    dg: Dg,
    socket: &str,
    from: &str,
    to: &str,
    text: &str,
    attempt: Option<u32>,
    req: Option<&str>,
) -> EventKind {
    let (len, payload) = bytes(text);
    EventKind::ClientSend {
        session: "me".into(),
        socket: socket.into(),
        member: None,
        dg,
        from: addr(from),
        to: addr(to),
        len,
        payload,
        attempt,
        req: req.map(str::to_owned),
    }
}

fn server_recv(dg: Dg, server: ServerName, at: &str, from: &str, text: &str) -> EventKind {
    let (len, payload) = bytes(text);
    EventKind::ServerRecv { server, dg, from: addr(from), to: addr(at), len, payload }
}

fn server_send(
    dg: Dg,
    reply_to: Option<Dg>,
    server: ServerName,
    at: &str,
    to: &str,
    text: &str,
) -> EventKind {
    let (len, payload) = bytes(text);
    EventKind::ServerSend { server, dg, reply_to, from: addr(at), to: addr(to), len, payload, delay_ms: None }
}

fn dropped(dg: Dg, from: &str, len: usize) -> EventKind {
    EventKind::ServerDrop {
        server: ServerName::Lossy,
        dg,
        from: addr(from),
        to: addr(LOSSY),
        len,
        reason: protocol::DropReason::Loss,
    }
}

/// Socket `a` at `SOCK` receives datagram `dg`, whole.
fn recv(dg: Dg, from: &str, text: &str, attempt: Option<u32>, rtt_us: Option<u64>) -> EventKind {
    recv_at(dg, "a", SOCK, from, text, attempt, rtt_us)
}

fn recv_at(
    dg: Dg,
    socket: &str,
    at: &str,
    from: &str,
    text: &str,
    attempt: Option<u32>,
    rtt_us: Option<u64>,
) -> EventKind {
    let (len, payload) = bytes(text);
    EventKind::ClientRecv {
        session: "me".into(),
        socket: socket.into(),
        member: None,
        dg,
        from: addr(from),
        to: addr(at),
        len,
        payload,
        attempt,
        req: None,
        rtt_us,
        kept: len,
    }
}

fn retry(attempt: u32, delay_ms: u64) -> EventKind {
    EventKind::ClientRetry {
        session: "me".into(),
        socket: "a".into(),
        attempt,
        delay_ms,
        next_wait_ms: delay_ms * 2,
    }
}

#[test]
fn echo_round_trip_is_two_arrows_named_by_their_datagrams() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(10, send(1, "a", ECHO, "hello", None, None));
    f.at(11, server_recv(1, ServerName::Echo, ECHO, SOCK, "hello"));
    f.at(12, server_send(2, Some(1), ServerName::Echo, ECHO, SOCK, "hello"));
    // No request ID, so no RTT from the relay: the reply names its request (reply_to 1),
    // whose send was at 10 ms, so the round trip took 13 ms - 10 ms.
    f.at(13, recv(2, ECHO, "hello", None, None));

    let arrows = f.arrows();
    assert_eq!(arrows.len(), 2, "one arrow per datagram: {arrows:?}");
    let (a, echo) = (f.lane("a"), f.lane("echo"));
    let (request, reply) = (f.arrow(1), f.arrow(2));
    assert_eq!((request.from, request.to, request.fate), (a, echo, Fate::Delivered));
    assert_eq!(request.t_end_us, Some(11_000));
    assert_eq!((reply.from, reply.to, reply.fate), (echo, a, Fate::Delivered));
    assert_eq!((reply.reply_to, reply.rtt_us), (Some(1), Some(3_000)));
    assert_eq!(f.model.lanes()[a].kind, LaneKind::Own);

    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.received, stats.rtt_count), (1, 1, 1));
    assert_eq!(stats.rtt_buckets[RTT_BUCKETS_US.iter().position(|&b| b == 4_000).expect("bucket")], 1);

    let log = f.log();
    let kinds: Vec<&str> = log.iter().map(|l| l.kind.as_ref()).collect();
    assert_eq!(kinds, ["client_open", "client_send", "server_recv", "server_send", "client_recv"]);
    let dgs: Vec<Option<Dg>> = log.iter().map(|l| l.dg).collect();
    assert_eq!(dgs, [None, Some(1), Some(1), Some(2), Some(2)]);
    assert_eq!(log[4].socket.as_deref(), Some("a"));
    assert!(log[4].text.contains("\"hello\""), "{:?}", log[4]);
    assert!(f.model.take_log(usize::MAX).next().is_none(), "the log is handed out once");
    assert!(!f.model.lanes().iter().any(|l| l.label == "nobody"), "nobody's lane waits for a send there");
}

#[test]
fn a_recording_that_starts_after_the_open_draws_its_server_once() {
    // `GET /api/events.jsonl` of a busy relay: no hello, and the socket's client_open is gone,
    // so its first send goes to an address nobody has named yet.
    const UPPER: &str = "127.0.0.1:8003";
    let mut f = Feed { model: Model::new(DEFAULT_WINDOW), seq: 0 };
    f.at(10, send(1, "a", UPPER, "hello", None, None));
    f.at(11, server_recv(1, ServerName::Upper, UPPER, SOCK, "hello"));
    f.at(12, server_send(2, Some(1), ServerName::Upper, UPPER, SOCK, "HELLO"));
    f.at(13, recv(2, UPPER, "HELLO", None, None));

    let at_upper: Vec<&Lane> = f.model.lanes().iter().filter(|l| l.addr == Some(addr(UPPER))).collect();
    assert_eq!(at_upper.len(), 1, "one lane for upper's port: {:?}", f.model.lanes());
    assert_eq!(
        (&at_upper[0].kind, at_upper[0].label.as_str()),
        (&LaneKind::Server(ServerName::Upper), "upper")
    );
    let upper = f.lane("upper");
    assert_eq!((f.arrow(1).to, f.arrow(2).from), (upper, upper));
    let log = f.log();
    assert!(log[0].text.contains("upper") && !log[0].text.contains("outside"), "{:?}", log[0]);
}

#[test]
fn arrivals_end_the_arrow_of_their_own_datagram_whatever_the_order() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, "first", None, None));
    f.at(1, send(2, "a", ECHO, "second", None, None));
    // The second overtakes the first, and so does its echo: first in first out would have
    // ended each arrow with the other's arrival.
    f.at(5, server_recv(2, ServerName::Echo, ECHO, SOCK, "second"));
    f.at(6, server_recv(1, ServerName::Echo, ECHO, SOCK, "first"));
    f.at(7, server_send(3, Some(2), ServerName::Echo, ECHO, SOCK, "second"));
    f.at(8, server_send(4, Some(1), ServerName::Echo, ECHO, SOCK, "first"));
    f.at(9, recv(3, ECHO, "second", None, None));
    assert_eq!(f.arrow(1).t_end_us, Some(6_000));
    assert_eq!(f.arrow(2).t_end_us, Some(5_000));
    assert_eq!((f.arrow(3).fate, f.arrow(3).rtt_us), (Fate::Delivered, Some(8_000)));
    assert_eq!(f.arrow(4).fate, Fate::InFlight, "its arrival is not reported yet: not guessed");
}

#[test]
fn an_arrival_no_send_named_is_drawn_unpaired_and_guesses_nothing() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, "x", None, None));
    // The relay could not be sure which send this read was: it gave it a name of its own.
    f.at(1, server_recv(7, ServerName::Echo, ECHO, SOCK, "x"));
    f.at(2, server_send(8, None, ServerName::Echo, ECHO, SOCK, "x"));
    f.at(3, recv(8, ECHO, "x", None, None));
    assert_eq!(f.arrow(1).fate, Fate::InFlight, "the send keeps waiting for its own name");
    let unpaired = f.arrow(7);
    assert_eq!((unpaired.fate, unpaired.t_end_us), (Fate::Delivered, Some(1_000)));
    assert_eq!(f.arrow(8).rtt_us, None, "no reply_to: no round trip is claimed");
    assert_eq!(f.model.stats().sent, 1, "the unpaired read is not counted as a second send");
}

#[test]
fn drops_retries_and_give_up_are_marked_with_their_waits() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Lossy, LOSSY);
    let mut t = 0;
    for (attempt, wait) in [(1, 0), (2, 100), (3, 200)] {
        t += wait;
        if attempt > 1 {
            f.at(t, retry(attempt, wait));
        }
        let dg = Dg::from(attempt);
        f.at(t, send(dg, "a", LOSSY, "ping", Some(attempt), None));
        f.at(t, server_recv(dg, ServerName::Lossy, LOSSY, SOCK, "ping"));
        f.at(t, dropped(dg, SOCK, 4));
    }
    f.at(
        700,
        EventKind::ClientGiveup {
            session: "me".into(),
            socket: "a".into(),
            attempts: 3,
            waited_ms: 700,
            give_up_ms: 700,
        },
    );

    let arrows = f.arrows();
    assert_eq!(arrows.len(), 3);
    assert!(arrows.iter().all(|a| a.fate == Fate::Dropped));
    let waits: Vec<Option<u64>> = arrows.iter().map(|a| a.waited_ms).collect();
    assert_eq!(waits, [None, Some(100), Some(200)]);
    let marks = f.marks();
    assert!(marks.contains(&MarkKind::Retry { attempt: 2, waited_ms: 100 }));
    assert!(marks.contains(&MarkKind::Retry { attempt: 3, waited_ms: 200 }));
    assert!(marks.contains(&MarkKind::GiveUp { attempts: 3, waited_ms: 700 }));

    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.dropped, stats.retried, stats.gave_up), (3, 3, 2, 1));
    assert_eq!(stats.measured_loss(), Some(1.0));
}

#[test]
fn late_and_duplicate_replies_are_marked_apart_from_the_answer() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Lossy, LOSSY);
    for (t, attempt) in [(0, 1), (100, 2)] {
        let req = format!("1-{attempt}");
        let dg = Dg::from(attempt);
        f.at(t, send(dg, "a", LOSSY, "#x ping", Some(attempt), Some(&req)));
        f.at(t, server_recv(dg, ServerName::Lossy, LOSSY, SOCK, "#x ping"));
    }
    for (t, attempt, reason) in [(300, 1, DuplicateReason::Late), (400, 2, DuplicateReason::Duplicate)] {
        let dg = 10 + Dg::from(attempt);
        f.at(t, server_send(dg, Some(Dg::from(attempt)), ServerName::Lossy, LOSSY, SOCK, "#x 4"));
        f.at(
            t,
            EventKind::ClientDuplicate {
                session: "me".into(),
                socket: "a".into(),
                member: None,
                dg,
                from: addr(LOSSY),
                to: addr(SOCK),
                len: 4,
                payload: Payload::preview(b"#x 4"),
                req: format!("1-{attempt}"),
                attempt,
                reason,
            },
        );
    }
    let fates: Vec<Fate> = f.arrows().iter().map(|a| a.fate).collect();
    assert_eq!(fates, [Fate::Delivered, Fate::Delivered, Fate::Late, Fate::Duplicate]);
    assert_eq!(f.arrow(11).answers, Some(1), "the late reply's chain agrees with its request ID");
    assert_eq!(f.arrow(11).misattributed(), None);
    assert_eq!((f.model.stats().duplicates, f.model.stats().late), (2, 1));
    let log = f.log();
    assert!(log.iter().any(|l| l.kind == "client_duplicate" && l.text.contains("LATE")));
}

#[test]
fn a_datagram_to_nobody_vanishes_where_it_died_and_is_not_received() {
    for connect in [false, true] {
        let mut f = Feed::new();
        f.open_with("n", SOCK, ServerName::Nobody, NOBODY, connect, None);
        f.at(10, send(5, "n", NOBODY, "anyone?", None, None));
        f.at(
            11,
            EventKind::ClientVanished {
                session: "me".into(),
                socket: "n".into(),
                member: None,
                dg: 5,
                to: addr(NOBODY),
                len: 7,
                reason: VanishReason::NoListener,
            },
        );
        if connect {
            // Only a connected socket hears the ICMP error, and it names no datagram.
            f.at(
                12,
                EventKind::ClientRefused {
                    session: "me".into(),
                    socket: "n".into(),
                    member: None,
                    peer: addr(NOBODY),
                },
            );
        }

        let nobody = f.lane("nobody");
        assert_eq!(f.model.lanes()[nobody].kind, LaneKind::Server(ServerName::Nobody));
        let arrow = f.arrow(5);
        assert_eq!((arrow.from, arrow.to), (f.lane("n"), nobody), "drawn as sent, to nobody");
        assert_eq!((arrow.fate, arrow.t_end_us), (Fate::Vanished, Some(11_000)), "connect {connect}");
        assert!(arrow.label().contains("VANISHED \"anyone?\" 7B"), "{}", arrow.label());
        let stats = f.model.stats();
        assert_eq!((stats.sent, stats.received, stats.vanished), (1, 0, 1), "connect {connect}");
        assert_eq!(stats.refused, u64::from(connect));
        assert_eq!(f.marks().contains(&MarkKind::Refused), connect);
        let log = f.log();
        let line = log.iter().find(|l| l.kind == "client_vanished").expect("a vanished line");
        assert!(line.text.contains("VANISHED: nothing listens at 127.0.0.1:29999"), "{}", line.text);
        assert_eq!((line.dg, line.item.is_some()), (Some(5), true));
    }
}

#[test]
fn econnrefused_is_a_mark_and_blames_no_datagram() {
    let mut f = Feed::new();
    let target = "127.0.0.1:9";
    f.at(
        0,
        EventKind::ClientOpen {
            session: "me".into(),
            socket: "t".into(),
            member: None,
            local: addr(SOCK),
            remote: addr(target),
            server: None,
            connect: true,
            recv_buffer: None,
        },
    );
    f.at(1, send(1, "t", target, "hi", None, None));
    f.at(
        2,
        EventKind::ClientRefused {
            session: "me".into(),
            socket: "t".into(),
            member: None,
            peer: addr(target),
        },
    );
    assert_eq!(f.arrow(1).fate, Fate::InFlight, "the kernel did not say which datagram it was");
    assert!(f.marks().contains(&MarkKind::Refused));
    let stats = f.model.stats();
    assert_eq!((stats.refused, stats.received), (1, 0), "a send to a target is not taken as received");
}

#[test]
fn a_read_with_a_small_buffer_is_labelled_cut() {
    let mut f = Feed::new();
    f.open_with("a", SOCK, ServerName::Echo, ECHO, true, Some(1_024));
    let big = "x".repeat(2_000);
    f.at(0, send(1, "a", ECHO, &big, None, None));
    f.at(1, server_recv(1, ServerName::Echo, ECHO, SOCK, &big));
    f.at(2, server_send(2, Some(1), ServerName::Echo, ECHO, SOCK, &big));
    f.at(
        3,
        EventKind::ClientRecv {
            session: "me".into(),
            socket: "a".into(),
            member: None,
            dg: 2,
            from: addr(ECHO),
            to: addr(SOCK),
            len: 2_000,
            payload: Payload::preview(&big.as_bytes()[..1_024]),
            attempt: None,
            req: None,
            rtt_us: None,
            kept: 1_024,
        },
    );
    let reply = f.arrow(2);
    assert_eq!((reply.fate, reply.cut()), (Fate::Delivered, Some(1_024)));
    assert!(reply.label().ends_with(" 2000B · cut to 1,024 of 2,000 bytes"), "{}", reply.label());
    assert_eq!(f.arrow(1).cut(), None, "the server read it whole");
    assert_eq!(f.model.stats().cut, 1);
    let log = f.log();
    assert!(log[0].text.contains("reads at most 1,024 bytes"), "{}", log[0].text);
    let line = log.iter().find(|l| l.kind == "client_recv").expect("a recv line");
    assert!(line.text.contains("cut to 1,024 of 2,000 bytes: the rest is lost"), "{}", line.text);
}

/// A retrying client without request IDs, against a server that holds each answer 300 ms:
/// attempt 1 at 0 ms, attempt 2 at 200 ms, attempt 1's answer at 300 ms.
fn mistaken_retry(f: &mut Feed, reply_to: Option<Dg>) {
    f.open("a", SOCK, ServerName::Lossy, LOSSY);
    f.at(0, send(1, "a", LOSSY, "ping", Some(1), None));
    f.at(0, server_recv(1, ServerName::Lossy, LOSSY, SOCK, "ping"));
    f.at(200, retry(2, 200));
    f.at(200, send(2, "a", LOSSY, "ping", Some(2), None));
    f.at(200, server_recv(2, ServerName::Lossy, LOSSY, SOCK, "ping"));
    f.at(300, server_send(3, reply_to, ServerName::Lossy, LOSSY, SOCK, "Your data was 4 bytes long"));
    // The client takes the first reply as the answer to its latest attempt, and measures the
    // round trip from it.
    f.at(300, recv(3, LOSSY, "Your data was 4 bytes long", Some(2), Some(100_000)));
}

#[test]
fn a_reply_taken_for_the_latest_attempt_is_labelled_with_the_attempt_it_answers() {
    let mut f = Feed::new();
    mistaken_retry(&mut f, Some(1));
    let reply = f.arrow(3);
    assert_eq!((reply.attempt, reply.answers, reply.misattributed()), (Some(2), Some(1), Some((2, 1))));
    assert_eq!((reply.rtt_us, reply.claimed_rtt_us), (Some(300_000), Some(100_000)), "the real RTT");
    let label = reply.label();
    assert!(label.contains("taken as the answer to #2, but it answers #1"), "{label}");
    assert!(!label.contains("#2 \""), "no bare attempt number that repeats the mistake: {label}");
    let stats = f.model.stats();
    assert_eq!((stats.misattributed, stats.rtt_count, stats.rtt_sum_us), (1, 1, 300_000));
    let log = f.log();
    let line = log.iter().find(|l| l.kind == "client_recv").expect("a recv line");
    assert!(
        line.text.contains(
            "taken as the answer to #2, but it answers #1, RTT 300 ms (the client measured 100 ms from #2)"
        ),
        "{}",
        line.text
    );

    // Attempt 2's own answer comes later; the client has stopped waiting, so takes it for
    // nothing, but its chain still says what it answers.
    f.at(500, server_send(4, Some(2), ServerName::Lossy, LOSSY, SOCK, "Your data was 4 bytes long"));
    f.at(500, recv(4, LOSSY, "Your data was 4 bytes long", None, None));
    let second = f.arrow(4);
    assert_eq!((second.answers, second.misattributed(), second.rtt_us), (Some(2), None, Some(300_000)));
    // It came when the socket was no longer waiting: LATE, as with request IDs.
    assert_eq!(second.fate, Fate::Late);
    assert_eq!((f.model.stats().late, f.model.stats().duplicates), (1, 1));
    let log = f.log();
    let line = log.iter().rfind(|l| l.kind == "client_recv").expect("a recv line");
    assert!(line.text.contains("LATE: the socket was no longer waiting for it"), "{}", line.text);
    // A reply whose chain the relay left out is not called late: nothing says what it answers.
    f.at(600, recv(5, LOSSY, "Your data was 4 bytes long", None, None));
    assert_eq!(f.arrow(5).fate, Fate::Delivered);
}

#[test]
fn a_reply_is_not_relabelled_without_its_chain_or_when_the_chain_agrees() {
    // The relay left the link out: the client's claim stands, and nothing else is claimed.
    let mut f = Feed::new();
    mistaken_retry(&mut f, None);
    let reply = f.arrow(3);
    assert_eq!((reply.answers, reply.misattributed(), reply.rtt_us), (None, None, Some(100_000)));
    assert!(reply.label().starts_with("#2 \"Your data"), "{}", reply.label());
    let log = f.log();
    assert!(log.iter().any(|l| l.kind == "client_recv" && l.text.contains("taken as the answer to #2,")));

    // The reply does answer attempt 2: nothing to correct.
    let mut f = Feed::new();
    mistaken_retry(&mut f, Some(2));
    let reply = f.arrow(3);
    assert_eq!((reply.answers, reply.misattributed(), reply.rtt_us), (Some(2), None, Some(100_000)));
    assert_eq!(f.model.stats().misattributed, 0);
}

#[test]
fn each_chat_copy_is_labelled_with_the_bytes_its_client_got() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Chat, CHAT);
    f.open("b", SOCK2, ServerName::Chat, CHAT);
    let nc = "127.0.0.1:40000";
    f.at(1, EventKind::ChatJoin { server: ServerName::Chat, peer: addr(nc), clients: 3, timeout_ms: 10_000 });
    f.at(2, send(1, "a", CHAT, "hi", None, None));
    f.at(2, server_recv(1, ServerName::Chat, CHAT, SOCK, "hi"));
    f.at(
        3,
        EventKind::ChatBroadcast {
            server: ServerName::Chat,
            dg: 1,
            from: addr(SOCK),
            recipients: 3,
            len: 2,
            payload: Payload::preview(b"hi"),
        },
    );
    let copy = "ack: 127.0.0.1 50000\nhi\n";
    for (dg, to) in [(2, SOCK), (3, SOCK2), (4, nc)] {
        f.at(3, server_send(dg, Some(1), ServerName::Chat, CHAT, to, copy));
    }
    f.at(4, recv_at(2, "a", SOCK, CHAT, copy, None, None));
    f.at(4, recv_at(3, "b", SOCK2, CHAT, copy, None, None));

    let chat = f.lane("chat");
    let copies: Vec<Arrow> = f.arrows().into_iter().filter(|a| a.from == chat).collect();
    assert_eq!(copies.len(), 3, "one arrow per copy, none invented from the broadcast: {copies:#?}");
    let to: Vec<usize> = copies.iter().map(|a| a.to).collect();
    assert_eq!(to, [f.lane("a"), f.lane("b"), f.lane(&format!("outside {nc}"))]);
    for arrow in &copies {
        assert_eq!((arrow.fate, arrow.reply_to), (Fate::Delivered, Some(1)));
        assert!(arrow.label().starts_with("\"ack: 127.0.0.1 50000·hi·\" 24B"), "{}", arrow.label());
    }
    assert_eq!(f.arrow(2).rtt_us, Some(2_000), "the sender's own copy closes its round trip");
    assert_eq!(f.arrow(3).rtt_us, None, "b sent nothing: a copy of a's message is no round trip of b's");
    assert!(f.marks().contains(&MarkKind::Broadcast { recipients: 3 }));
    let log = f.log();
    let got: Vec<&str> =
        log.iter().filter(|l| l.kind == "client_recv").map(|l| l.socket.as_deref().unwrap_or("?")).collect();
    assert_eq!(got, ["a", "b"]);
    assert!(
        log.iter()
            .filter(|l| l.kind == "client_recv")
            .all(|l| l.text.contains("\"ack: 127.0.0.1 50000·hi·\""))
    );
}

#[test]
fn a_send_the_kernel_refused_is_drawn_not_sent_with_its_errno() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    let failed = |dg| EventKind::ClientSendFailed {
        session: "me".into(),
        socket: "a".into(),
        member: None,
        dg,
        to: addr(ECHO),
        len: 65_508,
        errno: Some("EMSGSIZE".into()),
        error: "Message too long".into(),
    };
    f.at(1, send(1, "a", ECHO, "big", None, None));
    f.at(1, failed(1));
    // Without its `client_send` (the relay may report only the failure) it is drawn all the same.
    f.at(2, failed(2));
    for dg in [1, 2] {
        let arrow = f.arrow(dg);
        assert_eq!((arrow.fate, arrow.to), (Fate::NotSent, f.lane("echo")));
        assert_eq!(
            (arrow.errno.as_deref(), arrow.error.as_deref()),
            (Some("EMSGSIZE"), Some("Message too long"))
        );
        assert!(arrow.label().starts_with("⊘ NOT SENT (EMSGSIZE) "), "{}", arrow.label());
    }
    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.not_sent), (0, 2), "nothing left the socket");
    let log = f.log();
    let line = log.iter().find(|l| l.kind == "client_send_failed").expect("a failure line");
    assert!(
        line.text.contains("65,508 B NOT SENT, the kernel refused it (EMSGSIZE, Message too long)"),
        "{}",
        line.text
    );
}

#[test]
fn a_crowd_shares_one_lane_and_labels_its_members() {
    let mut f = Feed::new();
    let members = ["127.0.0.1:51000", "127.0.0.1:51001", "127.0.0.1:51002"];
    for (m, local) in (0..).zip(members) {
        if m == 2 {
            // Sealed (the language changes), a line takes no more members.
            f.model.seal_log();
        }
        f.at(
            0,
            EventKind::ClientOpen {
                session: "me".into(),
                socket: "k".into(),
                member: Some(m),
                local: addr(local),
                remote: addr(ECHO),
                server: Some(ServerName::Echo),
                connect: true,
                recv_buffer: None,
            },
        );
    }
    let (len, payload) = bytes("hi");
    f.at(
        1,
        EventKind::ClientSend {
            session: "me".into(),
            socket: "k".into(),
            member: Some(2),
            dg: 1,
            from: addr(members[2]),
            to: addr(ECHO),
            len,
            payload: payload.clone(),
            attempt: None,
            req: None,
        },
    );
    f.at(2, server_recv(1, ServerName::Echo, ECHO, members[2], "hi"));
    f.at(3, server_send(2, Some(1), ServerName::Echo, ECHO, members[2], "hi"));
    f.at(
        4,
        EventKind::ClientRecv {
            session: "me".into(),
            socket: "k".into(),
            member: Some(2),
            dg: 2,
            from: addr(ECHO),
            to: addr(members[2]),
            len,
            payload,
            attempt: None,
            req: None,
            rtt_us: None,
            kept: len,
        },
    );
    let k = f.lane("k");
    assert_eq!(f.model.lanes().len(), 4, "echo, lossy, chat and one crowd lane");
    assert_eq!(f.model.crowd_size(k), Some(3), "the lane counts its members");
    assert_eq!(f.model.crowd_traffic(k), (1, 1), "and what they sent and got");
    assert_eq!(f.marks().iter().filter(|m| **m == MarkKind::Opened).count(), 1);
    let (request, reply) = (f.arrow(1), f.arrow(2));
    assert_eq!((request.from, request.fate, request.member), (k, Fate::Delivered, Some(2)));
    assert_eq!((reply.to, reply.member, reply.rtt_us), (k, Some(2), Some(3_000)));
    assert!(reply.label().starts_with("[2] \"hi\""), "{}", reply.label());
    let log = f.log();
    assert!(log.iter().any(|l| l.kind == "client_send" && l.text.starts_with("k[2] → echo")), "{log:#?}");
    // The members' opening is one line, not one a member, until the line is sealed.
    let opened: Vec<&str> = log.iter().filter(|l| l.kind == "client_open").map(|l| l.text.as_str()).collect();
    assert_eq!(
        opened,
        [
            "k: 2 members opened, each on a port of its own, connected, aimed at echo",
            "k[2] opened on 127.0.0.1:51002, connected, aimed at echo"
        ]
    );

    let close = |f: &mut Feed, m: u32| {
        assert!(!f.model.lanes()[k].closed, "the crowd is open until its last member closes");
        f.at(5, EventKind::ClientClose { session: "me".into(), socket: "k".into(), member: Some(m) });
    };
    close(&mut f, 0);
    let log = f.log();
    assert_eq!((log.len(), log[0].text.as_str(), log[0].item), (1, "k[0] closed", None), "{log:#?}");
    // Handed out already, that line takes no more: the next ones fold into a line of their own,
    // which selects the crowd's closing mark.
    close(&mut f, 1);
    close(&mut f, 2);
    assert!(f.model.lanes()[k].closed);
    let log = f.log();
    assert_eq!((log.len(), log[0].text.as_str()), (1, "k: 2 members closed"), "{log:#?}");
    let mark =
        f.model.items().iter().find(|i| matches!(&i.body, Body::Mark(m) if m.kind == MarkKind::Closed));
    assert_eq!(log[0].item, mark.map(|i| i.id), "{log:#?}");
}

#[test]
fn liveness_counts_down_from_an_explicit_now_until_eviction() {
    let mut f = Feed::new();
    let peer = addr(SOCK);
    f.open("c", SOCK, ServerName::Chat, CHAT);
    f.at(1_000, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 2_000 });
    let view = |f: &Feed, now_ms: u64| f.model.chat_clients(now_ms * 1000)[0].clone();

    let v = view(&f, 1_200);
    assert_eq!((v.state, v.silent_ms, v.countdown_ms, v.label.as_str()), (Liveness::Alive, 200, 1_800, "c"));
    f.at(1_400, EventKind::ChatHeartbeat { server: ServerName::Chat, peer, timeout_ms: 2_000 });
    assert_eq!(view(&f, 1_500).countdown_ms, 1_900);
    // Quiet for a quarter of the timeout: silent, still counting down.
    let v = view(&f, 2_000);
    assert_eq!((v.state, v.countdown_ms), (Liveness::Silent, 1_400));
    assert_eq!(view(&f, 3_400).countdown_ms, 0);
    f.at(3_400, EventKind::ChatEvict { server: ServerName::Chat, peer, silent_ms: 2_000, clients: 0 });
    let v = view(&f, 9_000);
    assert_eq!((v.state, v.silent_ms, v.countdown_ms), (Liveness::Evicted, 2_000, 0));
    assert!(f.marks().contains(&MarkKind::Evict { who: f.lane("c") }), "the mark names who: {:?}", f.marks());
    // Heard again: back to alive.
    f.at(9_000, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 2_000 });
    assert_eq!(view(&f, 9_000).state, Liveness::Alive);
}

/// A class's projector: the clients still in the room come first, in the order they came,
/// then the few that went last, newest first; a newcomer is not pushed below the evicted.
#[test]
fn liveness_shows_the_room_first_and_only_the_last_few_gone() {
    let mut f = Feed::new();
    let peer = |i: u16| addr(&format!("127.0.0.1:{}", 40_000 + i));
    let (chat, timeout_ms) = (ServerName::Chat, 3_000);
    for i in 0..7 {
        f.at(1_000, EventKind::ChatJoin { server: chat, peer: peer(i), clients: 1, timeout_ms });
    }
    // Evicted in another order than they came: the panel goes by when they went.
    for (k, i) in [5, 0, 4, 1, 3, 2].into_iter().enumerate() {
        let evict = EventKind::ChatEvict { server: chat, peer: peer(i), silent_ms: 3_000, clients: 1 };
        f.at(5_000 + k as u64, evict);
    }
    f.at(6_000, EventKind::ChatJoin { server: chat, peer: peer(9), clients: 2, timeout_ms });
    let rows: Vec<(u16, Liveness)> =
        f.model.chat_clients(6_000_000).iter().map(|r| (r.peer.port() - 40_000, r.state)).collect();
    let evicted = Liveness::Evicted;
    assert_eq!(
        rows,
        [(6, Liveness::Silent), (9, Liveness::Alive), (2, evicted), (3, evicted), (1, evicted), (4, evicted)]
    );
}

/// A class is more chat clients than the diagram has lanes: those that share the overflow
/// lane are told apart in the liveness panel by their addresses.
#[test]
fn liveness_rows_past_the_lanes_are_named_by_their_addresses() {
    let mut f = Feed::new();
    for i in 0..(MAX_LANES as u16 + 8) {
        let peer = addr(&format!("127.0.0.1:{}", 40_000 + i));
        f.at(1_000, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 1, timeout_ms: 2_000 });
    }
    let rows = f.model.chat_clients(1_000_000);
    assert_eq!(rows.len(), MAX_LANES + 8);
    let labels: std::collections::HashSet<_> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(labels.len(), rows.len(), "every row says which client it is: {labels:?}");
    assert!(labels.contains("127.0.0.1:40039"), "{labels:?}");
    assert!(f.model.lanes().iter().any(|l| l.kind == LaneKind::Overflow));
}

#[test]
fn outside_clients_get_their_own_lane_and_their_answers_count_as_received() {
    let mut f = Feed::new();
    let nc = "127.0.0.1:40000";
    f.at(1, server_recv(1, ServerName::Echo, ECHO, nc, "hi from nc"));
    f.at(2, server_send(2, Some(1), ServerName::Echo, ECHO, nc, "hi from nc"));
    let outside = f.lane(&format!("outside {nc}"));
    assert_eq!(f.model.lanes()[outside].kind, LaneKind::Outside);
    let echo = f.lane("echo");
    assert!(!f.model.lanes()[outside].keeps_column(), "an outside client never says it has gone");
    assert!(f.model.lanes()[echo].keeps_column());
    let arrows = f.arrows();
    assert_eq!(arrows.len(), 2);
    assert!(arrows.iter().all(|a| a.fate == Fate::Delivered), "nobody else reports: {arrows:?}");
    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.received), (1, 1), "an outside client's datagram and its echo count");
}

#[test]
fn the_window_is_bounded_and_old_items_fold_into_counts() {
    let mut f = Feed::with_window(100);
    f.open("a", SOCK, ServerName::Echo, ECHO);
    for i in 0..1_000 {
        f.at(i, send(i, "a", ECHO, "x", None, None));
        f.at(i, server_recv(i, ServerName::Echo, ECHO, SOCK, "x"));
    }
    assert_eq!(f.model.items().len(), 100);
    let stats = f.model.stats();
    assert_eq!(stats.sent, 1_000);
    assert_eq!(stats.folded, 1_001 - 100);
    assert!(f.arrows().iter().all(|a| a.fate == Fate::Delivered), "matching survives folding");
    assert!(f.model.dgs.len() <= 2 * 100 + 1, "the index forgets folded datagrams: {}", f.model.dgs.len());
    let first = f.model.items().front().expect("items").id;
    assert!(f.model.item(first).is_some());
    assert!(f.model.item(first - 1).is_none(), "folded items are gone");
    assert!(f.model.take_log(usize::MAX).count() <= LOG_OUTBOX);

    // A late event about a folded datagram is drawn on its own, not matched to a guess.
    f.at(2_000, server_send(5_000, Some(3), ServerName::Echo, ECHO, SOCK, "x"));
    f.at(2_001, recv(5_000, ECHO, "x", None, None));
    assert_eq!(f.arrow(5_000).rtt_us, None);
}

#[test]
fn configured_loss_sits_next_to_measured_loss() {
    let mut f = Feed::new();
    assert_eq!(f.model.stats().configured_drop, Some(0.25), "from hello's settings");
    f.at(
        0,
        EventKind::ServerConfigured {
            server: ServerName::Lossy,
            setting: "drop".into(),
            value: 0.5,
            by: None,
            scope: Scope::All,
        },
    );
    assert_eq!(f.model.stats().configured_drop, Some(0.5));
    assert_eq!(f.model.stats().measured_loss(), None);
    f.at(1, server_recv(1, ServerName::Lossy, LOSSY, SOCK, "a"));
    f.at(1, server_recv(2, ServerName::Lossy, LOSSY, SOCK, "b"));
    f.at(2, dropped(1, SOCK, 1));
    assert_eq!(f.model.stats().measured_loss(), Some(0.5));
    assert_eq!(f.arrow(1).fate, Fate::Dropped);
    assert_eq!(f.arrow(2).fate, Fate::Delivered, "the drop names its own datagram, not the latest read");
    // A lesson starts its own stats: the counts go, the setting stays.
    f.model.restart_stats(2_000);
    assert_eq!((f.model.stats().measured_loss(), f.model.stats().configured_drop), (None, Some(0.5)));
}

#[test]
fn a_backlog_behind_a_lesson_is_drawn_but_not_counted() {
    // A projector opened at a lesson: the lesson begins at hello (t = 50 ms), and the relay's
    // history arrives after it, each event stamped with when it happened.
    let mut f = Feed::new();
    f.model.restart_stats(50_000);
    f.open("a", SOCK, ServerName::Lossy, LOSSY);
    f.at(1, send(1, "a", LOSSY, "old", None, None));
    f.at(1, server_recv(1, ServerName::Lossy, LOSSY, SOCK, "old"));
    f.at(2, dropped(1, SOCK, 3));
    f.at(
        3,
        EventKind::ServerConfigured {
            server: ServerName::Lossy,
            setting: "drop".into(),
            value: 0.75,
            by: None,
            scope: Scope::All,
        },
    );
    assert_eq!(f.arrow(1).fate, Fate::Dropped, "the backlog is drawn as it happened");
    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.dropped, stats.events, stats.measured_loss()), (0, 0, 0, None));
    assert_eq!(stats.configured_drop, Some(0.75), "a setting the backlog changed still holds");
    // What happens once the lesson runs is its story.
    f.at(60, send(2, "a", LOSSY, "new", None, None));
    f.at(60, server_recv(2, ServerName::Lossy, LOSSY, SOCK, "new"));
    f.at(61, dropped(2, SOCK, 3));
    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.dropped, stats.events, stats.measured_loss()), (1, 1, 3, Some(1.0)));
}

#[test]
fn a_new_session_closes_the_old_sockets_lanes() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    let a = f.lane("a");
    assert!(f.model.lanes()[a].keeps_column(), "an open socket's lane is drawn with nothing in view");
    f.model.apply(&hello());
    assert!(f.model.lanes()[a].closed);
    assert!(f.model.by_socket.is_empty(), "the old session leaves no entry behind");
    assert!(!f.model.lanes()[a].keeps_column(), "a closed socket's lane shows only with its traffic");
    f.model.apply(&ServerMsg::Lagged { missed: 7 });
    assert_eq!(f.model.stats().missed, 7);
}

// The link in front of each server: every decision lands on the arrow its `dg` names.

fn link_drop(dg: Dg, dir: protocol::Dir, peer: &str, len: usize) -> EventKind {
    EventKind::LinkDrop {
        server: ServerName::Echo,
        dir,
        dg,
        peer: addr(peer),
        len,
        reason: protocol::LinkDropReason::Loss,
        fragment: None,
        fragments: None,
    }
}

fn link_hold(dg: Dg, dir: protocol::Dir, reason: protocol::HoldReason, hold_ms: Option<u64>) -> EventKind {
    EventKind::LinkHold { server: ServerName::Echo, dir, dg, peer: addr(SOCK), reason, hold_ms }
}

fn link_release(dg: Dg, dir: protocol::Dir, held_us: u64) -> EventKind {
    EventKind::LinkRelease { server: ServerName::Echo, dir, dg, peer: addr(SOCK), held_us }
}

fn link_copy(dg: Dg, copy: Dg, dir: protocol::Dir) -> EventKind {
    EventKind::LinkDuplicate { server: ServerName::Echo, dir, dg, copy, peer: addr(SOCK) }
}

fn echo(dg: Dg, reply_to: Dg, text: &str) -> EventKind {
    server_send(dg, Some(reply_to), ServerName::Echo, ECHO, SOCK, text)
}

use protocol::Dir::{In, Out};
use protocol::HoldReason;

#[test]
fn a_datagram_the_link_lost_on_the_way_there_ends_short_and_is_not_a_server_drop() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(10, send(1, "a", ECHO, "hello", None, None));
    f.at(11, send(2, "a", ECHO, "again", None, None));
    // The second is read; the first is lost: named by its dg, whatever the order.
    f.at(12, server_recv(2, ServerName::Echo, ECHO, SOCK, "again"));
    f.at(13, link_drop(1, In, SOCK, 5));
    let lost = f.arrow(1);
    assert_eq!((lost.fate, lost.t_end_us), (Fate::LostIn, Some(13_000)));
    assert_eq!((lost.from, lost.to), (f.lane("a"), f.lane("echo")));
    assert_eq!(lost.label(), "↯ LOST ON LINK \"hello\" 5B · on the way there");
    assert_eq!(lost.fate.as_str(), "lost-link-in");
    assert_eq!(lost.link_words().as_deref(), Some("in lost"));
    assert_eq!(f.arrow(2).fate, Fate::Delivered);

    // The lossy server's own drop is another thing: read, then thrown away on purpose.
    f.open("l", SOCK2, ServerName::Lossy, LOSSY);
    f.at(20, send_from(3, "l", SOCK2, LOSSY, "x", None, None));
    f.at(20, server_recv(3, ServerName::Lossy, LOSSY, SOCK2, "x"));
    f.at(21, dropped(3, SOCK2, 1));
    let dropped = f.arrow(3);
    assert_eq!((dropped.fate, dropped.link.is_none()), (Fate::Dropped, true));
    assert!(dropped.label().starts_with("✕ DROPPED"), "{}", dropped.label());

    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.link_lost_in, stats.dropped), (3, 1, 1));
    let log = f.log();
    let line = log.iter().find(|l| l.kind == "link_drop").expect("a link_drop line");
    assert_eq!(line.dg, Some(1));
    assert_eq!(line.item, f.model.items().iter().find(|i| i.seq == 2).map(|i| i.id));
    assert_eq!(line.text, "link a → echo: LOST \"hello\" (5 B) on the way there");
}

#[test]
fn an_answer_the_link_lost_on_the_way_back_never_arrives() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, "hi", None, None));
    f.at(1, server_recv(1, ServerName::Echo, ECHO, SOCK, "hi"));
    f.at(2, echo(2, 1, "hi"));
    f.at(3, link_drop(2, Out, SOCK, 2));
    let answer = f.arrow(2);
    assert_eq!((answer.fate, answer.from, answer.to), (Fate::LostOut, f.lane("echo"), f.lane("a")));
    assert_eq!(answer.label(), "↯ LOST ON LINK \"hi\" 2B · on the way back");
    assert_eq!(answer.fate.as_str(), "lost-link-out");
    assert_eq!((f.model.stats().received, f.model.stats().link_lost_out), (0, 1));
}

#[test]
fn a_fragment_lost_and_a_fault_are_named_on_the_arrow() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, &"x".repeat(2_000), None, None));
    f.at(
        1,
        EventKind::LinkDrop {
            server: ServerName::Echo,
            dir: In,
            dg: 1,
            peer: addr(SOCK),
            len: 2_000,
            reason: protocol::LinkDropReason::Fragment,
            fragment: Some(2),
            fragments: Some(2),
        },
    );
    let lost = f.arrow(1);
    assert!(lost.label().ends_with("2000B · fragment 2 of 2 lost, on the way there"), "{}", lost.label());
    assert_eq!(lost.link_words().as_deref(), Some("in lost fragment"));
    f.at(2, send(2, "a", ECHO, "y", None, None));
    f.at(
        3,
        EventKind::LinkDrop {
            server: ServerName::Echo,
            dir: In,
            dg: 2,
            peer: addr(SOCK),
            len: 1,
            reason: protocol::LinkDropReason::Fault,
            fragment: None,
            fragments: None,
        },
    );
    assert_eq!(f.arrow(2).link_note().as_deref(), Some("dropped by a fault, on the way there"));
    let log = f.log();
    let lines: Vec<&str> = log.iter().filter(|l| l.kind == "link_drop").map(|l| l.text.as_str()).collect();
    assert!(lines[0].ends_with("on the way there: fragment 2 of 2 lost"), "{lines:?}");
    assert!(lines[1].ends_with(": a drop-next fault"), "{lines:?}");
}

#[test]
fn the_links_copy_on_the_way_there_is_its_own_arrow_and_its_answer_answers_the_request() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(10, send(1, "a", ECHO, "once", None, None));
    f.at(11, link_copy(1, 5, In));
    f.at(11, server_recv(1, ServerName::Echo, ECHO, SOCK, "once"));
    f.at(11, server_recv(5, ServerName::Echo, ECHO, SOCK, "once"));
    f.at(12, echo(6, 1, "once"));
    f.at(12, echo(7, 5, "once"));
    f.at(13, recv(6, ECHO, "once", None, None));
    f.at(14, recv(7, ECHO, "once", None, None));

    let (original, copy) = (f.arrow(1), f.arrow(5));
    assert_eq!((copy.from, copy.to, copy.fate), (original.from, original.to, Fate::Delivered));
    assert_eq!(copy.copy_of(), Some(1));
    assert_eq!(original.link.as_ref().and_then(|l| l.copied_as), Some(5));
    assert_eq!(copy.label(), "⇉ LINK COPY \"once\" 4B");
    assert_eq!(original.label(), "\"once\" 4B", "the copy says it, on its own arrow");
    assert_eq!(original.link_words().as_deref(), Some("in copied"));
    assert_eq!(copy.link_words().as_deref(), Some("in copy"));
    // The answer to the copy answers the request: its round trip starts at the one send.
    assert_eq!(f.arrow(7).rtt_us, Some(4_000));
    assert_eq!(f.arrow(7).note().as_deref(), Some("answers the link's copy"));
    assert_eq!(f.arrow(6).note(), None);
    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.received, stats.link_copies), (1, 2, 1), "one send, two answers");

    let log = f.log();
    let line = log.iter().find(|l| l.kind == "link_duplicate").expect("a link_duplicate line");
    assert_eq!((line.dg, line.copy), (Some(1), Some(5)));
    assert_eq!(line.text, "link a → echo: delivered twice on the way there, the copy is datagram 5");
}

#[test]
fn the_links_copy_on_the_way_back_reaches_the_socket_as_a_second_arrival() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, "hi", None, None));
    f.at(1, server_recv(1, ServerName::Echo, ECHO, SOCK, "hi"));
    f.at(2, echo(2, 1, "hi"));
    f.at(2, link_copy(2, 9, Out));
    f.at(3, recv(2, ECHO, "hi", None, None));
    f.at(3, recv(9, ECHO, "hi", None, None));
    let copy = f.arrow(9);
    assert_eq!((copy.fate, copy.reply_to, copy.copy_of()), (Fate::Delivered, Some(1), Some(2)));
    assert_eq!((copy.from, copy.to), (f.lane("echo"), f.lane("a")));
    assert_eq!(copy.rtt_us, Some(3_000), "it answers datagram 1, as the original does");
    assert_eq!(f.arrows().len(), 3);
}

#[test]
fn a_held_datagram_arrives_late_with_its_hold() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, "slow", None, None));
    f.at(0, link_hold(1, In, HoldReason::Delay, Some(200)));
    // A live view keeps time running until it is due out.
    assert_eq!(f.model.holds_until_us, 200_000);
    let waiting = f.arrow(1);
    assert_eq!(waiting.fate, Fate::InFlight);
    assert_eq!(waiting.link_note().as_deref(), Some("holding 200 ms"));
    f.at(201, link_release(1, In, 201_000));
    f.at(201, server_recv(1, ServerName::Echo, ECHO, SOCK, "slow"));
    let arrived = f.arrow(1);
    assert_eq!((arrived.fate, arrived.t_end_us), (Fate::Delivered, Some(201_000)));
    let held = arrived.held().copied().expect("held");
    assert_eq!((held.since_us, held.release_us, held.held_us), (0, Some(201_000), Some(201_000)));
    assert_eq!(arrived.label(), "\"slow\" 4B · held 200 ms");
    assert_eq!(arrived.link_words().as_deref(), Some("in held"));

    // A fault's hold says so.
    f.at(300, echo(2, 1, "slow"));
    f.at(300, link_hold(2, Out, HoldReason::Fault, Some(500)));
    f.at(800, link_release(2, Out, 500_000));
    f.at(800, recv(2, ECHO, "slow", None, None));
    assert_eq!(f.arrow(2).link_note().as_deref(), Some("held 500 ms (fault)"));
    assert_eq!(f.arrow(2).link_words().as_deref(), Some("out held fault"));
    let stats = f.model.stats();
    assert_eq!((stats.link_held, stats.link_reordered, stats.received), (2, 0, 1));
    let log = f.log();
    let kinds: Vec<&str> = log.iter().filter(|l| l.dg == Some(1)).map(|l| l.kind.as_ref()).collect();
    assert_eq!(kinds, ["client_send", "link_hold", "link_release", "server_recv"]);
}

#[test]
fn a_reordered_answer_arrives_after_the_one_that_passed_it() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.at(0, send(1, "a", ECHO, "one", None, None));
    f.at(0, send(2, "a", ECHO, "two", None, None));
    f.at(1, server_recv(1, ServerName::Echo, ECHO, SOCK, "one"));
    f.at(1, server_recv(2, ServerName::Echo, ECHO, SOCK, "two"));
    f.at(2, echo(3, 1, "one"));
    f.at(2, link_hold(3, Out, HoldReason::Reorder, None));
    assert_eq!(f.model.holds_until_us, 1_002_000, "a hold of unknown length counts for a second");
    assert_eq!(f.arrow(3).link_note().as_deref(), Some("held to reorder"));
    f.at(3, echo(4, 2, "two"));
    f.at(3, link_release(3, Out, 1_200));
    f.at(4, recv(4, ECHO, "two", None, None));
    f.at(5, recv(3, ECHO, "one", None, None));
    let (late, passed) = (f.arrow(3), f.arrow(4));
    assert!(late.t_end_us > passed.t_end_us, "the reordered one arrives second");
    assert_eq!(late.link_note().as_deref(), Some("reordered: held 1.2 ms"));
    assert_eq!(late.link_words().as_deref(), Some("out held reordered"));
    assert_eq!(passed.link, None, "the one that passed was not touched by the link");
    assert_eq!(f.model.stats().link_reordered, 1);
}

#[test]
fn an_outside_clients_datagrams_on_an_impaired_link_are_counted_once() {
    let mut f = Feed::new();
    let nc = "127.0.0.1:40000";
    // Lost on the way there: nobody reports its send, so the link's word is the first.
    f.at(1, link_drop(1, In, nc, 3));
    let lost = f.arrow(1);
    assert_eq!(
        (lost.fate, lost.from, lost.to),
        (Fate::LostIn, f.lane(&format!("outside {nc}")), f.lane("echo"))
    );
    assert_eq!(f.model.stats().sent, 1);
    // Its next one is read and answered; the answer is held, then goes.
    f.at(2, server_recv(2, ServerName::Echo, ECHO, nc, "hey"));
    f.at(3, server_send(3, Some(2), ServerName::Echo, ECHO, nc, "hey"));
    assert_eq!(f.model.stats().received, 1, "an answer to an outsider counts when sent");
    f.at(
        3,
        EventKind::LinkHold {
            server: ServerName::Echo,
            dir: Out,
            dg: 3,
            peer: addr(nc),
            reason: HoldReason::Delay,
            hold_ms: Some(50),
        },
    );
    assert_eq!(
        (f.arrow(3).fate, f.model.stats().received),
        (Fate::InFlight, 0),
        "not before the link lets it go"
    );
    f.at(
        53,
        EventKind::LinkRelease { server: ServerName::Echo, dir: Out, dg: 3, peer: addr(nc), held_us: 50_000 },
    );
    assert_eq!((f.arrow(3).fate, f.arrow(3).t_end_us), (Fate::Delivered, Some(53_000)));
    // A copy on the way there is read twice, but was sent once.
    f.at(60, EventKind::LinkDuplicate { server: ServerName::Echo, dir: In, dg: 4, copy: 5, peer: addr(nc) });
    f.at(60, server_recv(4, ServerName::Echo, ECHO, nc, "two"));
    f.at(60, server_recv(5, ServerName::Echo, ECHO, nc, "two"));
    assert_eq!(f.arrow(5).payload, Payload::preview(b"two"), "the arrival tells the bytes");
    let stats = f.model.stats();
    assert_eq!((stats.sent, stats.received), (3, 1));
}

#[test]
fn link_settings_come_from_hello_and_every_link_configured() {
    let mut f = Feed::new();
    assert!(f.model.links().is_empty(), "this hello predates links: none known");
    let mut hello = hello();
    if let ServerMsg::Hello(h) = &mut hello {
        h.links.entry(ServerName::Echo).or_default().outbound.loss = 0.3;
    }
    f.model.apply(&hello);
    assert_eq!(f.model.links()[&ServerName::Echo].outbound.loss, 0.3);
    let settings = protocol::LinkSettings { delay_ms: 100, mtu: Some(1500), ..Default::default() };
    f.at(
        1,
        EventKind::LinkConfigured {
            server: ServerName::Echo,
            dir: In,
            settings,
            by: Some("me".into()),
            scope: Scope::All,
        },
    );
    let echo = f.model.links()[&ServerName::Echo];
    assert_eq!((echo.inbound, echo.outbound.loss), (settings, 0.3), "one direction, all its settings");
    assert_eq!(link_short(&echo).as_deref(), Some("in: +100 ms mtu 1500 | out: loss 30%"));
    assert!(f.marks().contains(&MarkKind::LinkConfigured { dir: In }));
    let log = f.log();
    let line = log.iter().find(|l| l.kind == "link_configured").expect("logged");
    assert_eq!(line.text, "echo: link in delay 100 ms · mtu 1,500 B", "set by this page: no more said");
    assert_eq!(link_summary(&protocol::LinkSettings::default()), "perfect");
    assert_eq!(link_short(&protocol::Links::default()), None);
}

/// `by` set echo's `in` link to reorder `reorder`, for everyone or for its own sockets.
fn link(by: &str, scope: Scope, reorder: f64) -> EventKind {
    EventKind::LinkConfigured {
        server: ServerName::Echo,
        dir: In,
        settings: protocol::LinkSettings { reorder, ..Default::default() },
        by: Some(by.into()),
        scope,
    }
}

#[test]
fn a_change_another_page_made_names_its_session_and_whose_sockets_meet_it() {
    let mut f = Feed::new();
    f.at(1, link("b7c9e1f2", Scope::All, 1.0));
    let drop = |by: Option<&str>, scope| EventKind::ServerConfigured {
        server: ServerName::Lossy,
        setting: "drop".into(),
        value: 1.0,
        by: by.map(str::to_owned),
        scope,
    };
    f.at(2, drop(Some("b7c9e1f2"), Scope::All));
    f.at(3, drop(Some("me"), Scope::All));
    f.at(4, drop(None, Scope::All));
    f.at(5, drop(Some("me"), Scope::Own));
    f.at(6, drop(Some("b7c9e1f2"), Scope::Own));
    f.at(7, link("b7c9e1f2", Scope::Own, 0.5));
    let texts: Vec<String> = f.log().into_iter().map(|l| l.text).collect();
    assert_eq!(
        texts,
        [
            "echo: link in reorder 100% (by session b7c9)",
            "lossy: drop set to 1 (by session b7c9)",
            "lossy: drop set to 1",
            "lossy: drop set to 1",
            "lossy: drop set to 1 (this page's sockets only)",
            "lossy: drop set to 1 (session b7c9's sockets only)",
            "echo: link in reorder 50% (session b7c9's sockets only)",
        ],
        "this page's own change and the HTTP API's say no more"
    );
    // The links everyone meets are the shared ones: another page's own does not change them.
    assert_eq!(f.model.links()[&ServerName::Echo].inbound.reorder, 1.0);
    let lossy = ServerName::Lossy;
    assert!(f.model.reaches_me(lossy, Some("me"), Scope::Own) && f.model.reaches_me(lossy, None, Scope::All));
    assert!(!f.model.reaches_me(lossy, Some("b7c9e1f2"), Scope::Own));
    // With a lossy server of this page's own, another's change for everyone leaves it alone;
    // this page's own change for everyone reaches its sandbox too, as the relay makes it.
    f.at(6, EventKind::SandboxOpen { server: lossy, session: "me".into() });
    assert!(
        !f.model.reaches_me(lossy, Some("b7c9e1f2"), Scope::All)
            && !f.model.reaches_me(lossy, None, Scope::All)
    );
    assert!(
        f.model.reaches_me(lossy, Some("me"), Scope::All)
            && f.model.reaches_me(lossy, Some("me"), Scope::Own)
    );
    assert!(f.model.reaches_me(ServerName::Echo, None, Scope::All), "only the server of the sandbox");
    let quarter = EventKind::ServerConfigured {
        server: lossy,
        setting: "drop".into(),
        value: 0.25,
        by: Some("b7c9e1f2".into()),
        scope: Scope::All,
    };
    f.at(8, quarter);
    assert_eq!(f.model.stats().configured_drop, Some(1.0), "the drop this page's sockets meet");
}

#[test]
fn the_links_this_page_meets_are_its_sandboxs_where_it_has_one() {
    let mut f = Feed::new();
    f.at(1, link("me", Scope::Own, 1.0));
    assert_eq!(f.model.my_links(ServerName::Echo).inbound.reorder, 1.0, "this page's lesson");
    let everyone = f.model.links().get(&ServerName::Echo).copied().unwrap_or_default();
    assert_eq!(everyone.inbound.reorder, 0.0, "everyone's is untouched");
    f.at(2, link("b7c9e1f2", Scope::Own, 0.5));
    assert_eq!(f.model.my_links(ServerName::Echo).inbound.reorder, 1.0, "another page's sandbox is its own");
    f.at(3, link("b7c9e1f2", Scope::All, 0.25));
    assert_eq!(f.model.links()[&ServerName::Echo].inbound.reorder, 0.25);
    assert_eq!(f.model.my_links(ServerName::Echo).inbound.reorder, 1.0, "the sandbox stands");
    // A reset says this page meets the shared link again: the sandbox's view goes.
    f.at(4, link("me", Scope::Own, 0.25));
    f.at(5, link("b7c9e1f2", Scope::All, 0.0));
    assert_eq!(f.model.my_links(ServerName::Echo).inbound.reorder, 0.0, "everyone's again, as it changes");
}

fn fields(values: [&str; 6]) -> [String; 6] {
    values.map(str::to_owned)
}

#[test]
fn the_panel_sends_only_what_was_typed_differently_so_apply_is_idempotent() {
    let relay = protocol::LinkSettings { loss: 0.3, ..Default::default() };
    assert_eq!(link_values(&relay), fields(["0.3", "0", "0", "0", "0", ""]));
    // Nothing typed: nothing to send.
    assert_eq!(link_patch(&relay, &link_values(&relay)), Ok(None));
    // One field typed: that field alone.
    let typed = fields(["0.3", "0", "0", "200", "0", ""]);
    let patch = link_patch(&relay, &typed).expect("valid").expect("a change");
    assert_eq!(patch, protocol::LinkPatch { delay_ms: Some(200), ..Default::default() });
    // Once the relay has it, the same fields send nothing again.
    let after = protocol::LinkSettings { delay_ms: 200, ..relay };
    assert_eq!(link_patch(&after, &typed), Ok(None));
    // An MTU on, then off again (0 in the op); empty fields are 0.
    let on = link_patch(&relay, &fields(["0.3", "", "", "", "", "1500"])).expect("valid").expect("a change");
    assert_eq!(on.mtu, Some(1500));
    let mtu = protocol::LinkSettings { mtu: Some(1500), ..relay };
    let off = link_patch(&mtu, &fields(["0.3", "0", "0", "0", "0", ""])).expect("valid").expect("a change");
    assert_eq!(off, protocol::LinkPatch { mtu: Some(0), ..Default::default() });
    // Mistakes are named, and nothing is sent.
    let bad = link_patch(&relay, &fields(["1.5", "0", "0", "0", "0", ""])).expect_err("out of range");
    assert_eq!((bad.field, bad.message.as_str()), ("loss", "loss is a probability from 0 to 1, got \"1.5\""));
    assert_eq!(
        link_patch(&relay, &fields(["0", "0", "0", "-5", "0", ""])).map_err(|e| e.field),
        Err("delay_ms")
    );
    assert_eq!(link_patch(&relay, &fields(["0", "0", "0", "0", "0", "40"])).map_err(|e| e.field), Err("mtu"));
}

#[test]
fn the_lossy_panel_sends_only_the_settings_typed_differently_and_names_a_mistake() {
    let relay = protocol::ServerSettings {
        drop: Some(0.0),
        delay_ms: Some(0),
        jitter_ms: Some(0),
        ..Default::default()
    };
    assert_eq!(lossy_patch(&relay, ["0", "0", "0"]), Ok((None, None, None)), "nothing changed");
    assert_eq!(lossy_patch(&relay, ["1", "0", "0"]), Ok((Some(1.0), None, None)), "the drop alone");
    assert_eq!(lossy_patch(&relay, [" 0 ", "300", "50"]), Ok((None, Some(300), Some(50))));
    assert_eq!(
        lossy_patch(&relay, ["", "", ""]),
        Ok((None, None, None)),
        "empty fields are left as they are"
    );
    // Settings the page has not heard yet are sent as typed.
    let unheard = protocol::ServerSettings::default();
    assert_eq!(lossy_patch(&unheard, ["0", "0", ""]), Ok((Some(0.0), Some(0), None)));
    // A drop set by a script to more places than the panel shows: the panel's text, untouched,
    // changes nothing.
    let fine = protocol::ServerSettings { drop: Some(0.1234567), ..relay };
    assert_eq!(short(0.1234567), "0.123457");
    assert_eq!(lossy_patch(&fine, ["0.123457", "0", "0"]), Ok((None, None, None)));
    assert_eq!(lossy_patch(&fine, ["0.12", "0", "0"]), Ok((Some(0.12), None, None)));
    // Mistakes are named, and nothing is sent.
    let bad = lossy_patch(&relay, ["1.5", "0", "0"]).expect_err("out of range");
    assert_eq!(bad.message, "drop is a probability from 0 to 1, got \"1.5\"");
    let bad = lossy_patch(&relay, ["0.5", "-5", "0"]).expect_err("negative");
    assert_eq!(bad.message, "delay is a whole number of milliseconds, got \"-5\"");
    assert_eq!(lossy_patch(&relay, ["0", "0", "soon"]).map_err(|e| e.field), Err("jitter"));
}

#[test]
fn the_retry_fields_give_what_was_typed_or_name_the_mistake() {
    let typed = retry_params(" 150 ", "1.5", "3000").expect("all three are numbers");
    assert_eq!((typed.initial_ms, typed.factor, typed.give_up_ms), (150, 1.5, 3000));
    // An empty field is its default, as a plain `"retry": true` would have it.
    let defaults = protocol::RetryParams::default();
    let empty = retry_params("", "", "").expect("empty fields are defaults");
    assert_eq!(
        (empty.initial_ms, empty.factor, empty.give_up_ms),
        (defaults.initial_ms, defaults.factor, defaults.give_up_ms)
    );
    // What a number field would have hidden as empty: the letter O for a zero, a comma for a
    // point, a unit typed after the number.
    let bad = retry_params("1O0", "2", "2000").expect_err("a letter in the wait");
    assert_eq!(
        (bad.field, bad.message.as_str()),
        ("“wait”", "“wait” is a whole number of milliseconds, got \"1O0\"")
    );
    let bad = retry_params("100", "1,5", "2000").expect_err("a comma in the factor");
    assert_eq!(
        (bad.field, bad.message.as_str()),
        ("factor", "factor is a number, such as 2 or 1.5, got \"1,5\"")
    );
    assert_eq!(retry_params("100", "2", "2 s").map_err(|e| e.field).err(), Some("“give up”"));
    assert_eq!(millis("“every”", "1000"), Ok(1000));
    assert_eq!(millis("“every”", "1e3").map_err(|e| e.field), Err("“every”"));
}

#[test]
fn a_close_with_a_reason_is_logged_in_its_words() {
    let mut f = Feed::new();
    let text = f.model.connection_closed(1009, "the frame is 2 MiB; the relay reads at most 1 MiB");
    assert_eq!(
        text.as_deref(),
        Some(
            "The relay closed the connection (code 1009, message too big): the frame is 2 MiB; the relay \
             reads at most 1 MiB"
        )
    );
    let log = f.log();
    assert_eq!(log.last().map(|l| l.kind.as_ref()), Some("ws_close"));
    assert_eq!(f.model.connection_closed(1006, ""), None, "a relay that just went away says nothing");
    assert_eq!(
        f.model.connection_closed(1011, "").as_deref(),
        Some("The relay closed the connection (code 1011, relay error).")
    );
}

#[test]
fn an_event_heard_twice_is_drawn_once() {
    let mut model = Model::default();
    let event = Event {
        seq: 7,
        t_us: 1_000,
        kind: EventKind::ServerConfigured {
            server: ServerName::Lossy,
            setting: "drop".into(),
            value: 0.5,
            by: None,
            scope: Scope::All,
        },
    };
    model.apply(&ServerMsg::Event(event.clone()));
    let items = model.items().len();
    for msg in unbatch(ServerMsg::Batch { messages: vec![ServerMsg::Event(event)] }) {
        model.apply(&msg);
    }
    assert_eq!(model.items().len(), items, "the history's copy is skipped");
    assert_eq!(model.stats().events, 1);
}

#[test]
fn unbatch_hands_out_every_message_of_a_batch_in_order_nested_ones_too() {
    let event = |seq| {
        ServerMsg::Event(Event {
            seq,
            t_us: seq * 1_000,
            kind: EventKind::ServerConfigured {
                server: ServerName::Lossy,
                setting: "drop".into(),
                value: 0.5,
                by: None,
                scope: Scope::All,
            },
        })
    };
    let inner = ServerMsg::Batch { messages: vec![event(2), event(3)] };
    let msgs = unbatch(ServerMsg::Batch { messages: vec![event(1), inner, ServerMsg::Lagged { missed: 4 }] });
    let seqs: Vec<Option<u64>> = msgs
        .iter()
        .map(|m| match m {
            ServerMsg::Event(e) => Some(e.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [Some(1), Some(2), Some(3), None]);
    assert!(!msgs.iter().any(|m| matches!(m, ServerMsg::Batch { .. })));
    assert_eq!(unbatch(event(9)).len(), 1, "a single message is handed out as it is");
}

#[test]
fn typed_numbers_read_as_core_reads_them() {
    for text in
        ["0", "0.3", "2", ".5", "5.", "-1.25", "+7", "1e3", "2.5E-2", "0.1", "100", "65535", "0.000001"]
    {
        let core: f64 = text.parse().expect("a number");
        assert_eq!(decimal(text), Some(core), "{text}");
    }
    assert_eq!(decimal("12345678901234567890123"), Some(1.2345678901234568e22), "past 19 digits");
    for text in ["", ".", "-", "abc", "1.2.3", "1,5", "1e", "e3", "0x10", " 1"] {
        assert_eq!(decimal(text), None, "{text:?}");
    }
}

#[test]
fn a_lossy_setting_is_logged_in_as_few_digits_as_it_needs() {
    let mut f = Feed::new();
    f.at(
        0,
        EventKind::ServerConfigured {
            server: ServerName::Lossy,
            setting: "drop".into(),
            value: 0.3,
            by: None,
            scope: Scope::All,
        },
    );
    f.at(
        1,
        EventKind::ServerConfigured {
            server: ServerName::Lossy,
            setting: "delay_ms".into(),
            value: 250.0,
            by: None,
            scope: Scope::All,
        },
    );
    let log = f.model.take_log(usize::MAX).map(|l| l.text).collect::<Vec<_>>();
    assert!(log.iter().any(|l| l.ends_with(" 0.3")), "{log:?}");
    assert!(log.iter().any(|l| l.ends_with(" 250")), "{log:?}");
}

#[test]
fn a_log_line_keeps_the_lane_label_it_was_written_with() {
    // The datagram lines are put into words when the page takes them: a lane named after the
    // line was made must not rename the lane in it.
    let mut f = Feed::new();
    let stranger = "127.0.0.1:7777";
    f.at(1, server_recv(1, ServerName::Echo, ECHO, stranger, "hi"));
    f.at(2, server_send(2, Some(1), ServerName::Echo, ECHO, stranger, "hi"));
    let outside = f.model.lanes()[f.model.lanes().len() - 1].label.clone();
    assert!(outside.contains(stranger), "{outside}");
    // Another session's socket turns out to be that stranger (projector mode).
    f.at(
        3,
        EventKind::ClientOpen {
            session: "other".into(),
            socket: "b".into(),
            member: None,
            local: addr(stranger),
            remote: addr(ECHO),
            server: Some(ServerName::Echo),
            connect: true,
            recv_buffer: None,
        },
    );
    let renamed = f.lane("b@othe");
    assert_eq!(f.model.lanes()[renamed].addr, Some(addr(stranger)), "the stranger's lane is renamed");
    f.at(4, server_recv(3, ServerName::Echo, ECHO, stranger, "again"));
    let log = f.log();
    let texts: Vec<&str> = log.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts[0], format!("echo read \"hi\" (2 B) from {outside}"), "{texts:#?}");
    assert_eq!(texts[1], format!("echo → {outside}: \"hi\" (2 B)"), "{texts:#?}");
    assert_eq!(texts[3], "echo read \"again\" (5 B) from b@othe", "{texts:#?}");
}

/// The other pages a projector hears in the sandbox tests: one running a lesson, one not, and
/// where each one's socket is.
const LESSON: (&str, &str) = ("b7c9e1f2", "127.0.0.1:40001");
const PLAIN: (&str, &str) = ("c0ffee00", "127.0.0.1:40002");

/// Another page's socket `socket`, opened at `local` on `server`, as a projector hears it.
fn opened_by((session, local): (&str, &str), socket: &str, server: ServerName, remote: &str) -> EventKind {
    EventKind::ClientOpen {
        session: session.into(),
        socket: socket.into(),
        member: None,
        local: addr(local),
        remote: addr(remote),
        server: Some(server),
        connect: true,
        recv_buffer: None,
    }
}

#[test]
fn a_projector_measures_the_loss_of_the_lossy_server_it_shows_not_a_lessons_own() {
    let mut f = Feed::new();
    let ((lesson, at_lesson), (_, at_plain)) = (LESSON, PLAIN);
    f.at(1, opened_by(LESSON, "l", ServerName::Lossy, LOSSY));
    f.at(1, opened_by(PLAIN, "l", ServerName::Lossy, LOSSY));
    f.open("l", SOCK, ServerName::Lossy, LOSSY);
    let sandbox = |open: bool, session: &str| match open {
        true => EventKind::SandboxOpen { server: ServerName::Lossy, session: session.into() },
        false => EventKind::SandboxClose { server: ServerName::Lossy, session: session.into() },
    };
    f.at(2, sandbox(true, lesson));
    // The lesson's lossy server drops everything; the shared one, which the others meet, nothing.
    let mut dg = 0;
    let mut round = |f: &mut Feed, from: &str, lost: bool| {
        dg += 1;
        f.at(3, server_recv(dg, ServerName::Lossy, LOSSY, from, "x"));
        if lost {
            f.at(3, dropped(dg, from, 1));
        }
    };
    for _ in 0..3 {
        round(&mut f, at_lesson, true);
        round(&mut f, at_plain, false);
        round(&mut f, SOCK, false);
    }
    assert_eq!(f.model.stats().measured_loss(), Some(0.0), "the lesson's drops are not the class's");
    assert_eq!(f.model.stats().dropped, 3, "though every drop is counted as one");
    // Once the lesson is over, its sockets meet the shared server, and count.
    f.at(4, sandbox(false, lesson));
    round(&mut f, at_lesson, false);
    assert_eq!((f.model.stats().lossy_seen, f.model.stats().lossy_dropped), (7, 0));
    // A projector running a lesson of its own shows its own lossy server: only its sockets count.
    f.at(5, sandbox(true, "me"));
    round(&mut f, at_plain, false);
    round(&mut f, SOCK, true);
    assert_eq!((f.model.stats().lossy_seen, f.model.stats().lossy_dropped), (8, 1));
    let texts: Vec<String> = f.log().into_iter().map(|l| l.text).filter(|t| t.contains("server")).collect();
    assert_eq!(
        texts,
        [
            "lossy: a lossy server of their own (session b7c9's sockets only)",
            "lossy: the shared lossy server again (session b7c9's sockets only)",
            "lossy: a lossy server of their own (this page's sockets only)",
        ]
    );
}

#[test]
fn a_chat_event_in_another_sessions_own_room_says_whose_room() {
    let mut f = Feed::new();
    let ((lesson, at_lesson), (plain, at_plain)) = (LESSON, PLAIN);
    f.at(1, opened_by(LESSON, "c", ServerName::Chat, CHAT));
    f.at(1, opened_by(PLAIN, "c", ServerName::Chat, CHAT));
    f.open("c", SOCK, ServerName::Chat, CHAT);
    f.at(2, EventKind::SandboxOpen { server: ServerName::Chat, session: lesson.into() });
    // A lossy sandbox of the class's session is not a chat room.
    f.at(2, EventKind::SandboxOpen { server: ServerName::Lossy, session: plain.into() });
    let join = |peer: &str, clients| EventKind::ChatJoin {
        server: ServerName::Chat,
        peer: addr(peer),
        clients,
        timeout_ms: 5_000,
    };
    f.at(3, join(at_plain, 1));
    f.at(3, join(at_lesson, 1));
    f.at(3, join(SOCK, 2));
    f.at(4, EventKind::ChatLeave { server: ServerName::Chat, peer: addr(at_lesson), clients: 0 });
    // Once the lesson is over, its room sends its clients `end`, and its socket is back in
    // the class's room.
    let end = |clients| EventKind::ChatEnd { server: ServerName::Chat, clients };
    f.at(5, EventKind::SandboxClose { server: ServerName::Chat, session: lesson.into() });
    f.at(5, end(0));
    f.at(6, join(at_lesson, 3));
    // A room of this page's own says nothing more: its counts are the ones this page meets.
    f.at(7, EventKind::SandboxOpen { server: ServerName::Chat, session: "me".into() });
    f.at(8, join(SOCK, 1));
    f.at(9, EventKind::SandboxClose { server: ServerName::Chat, session: "me".into() });
    f.at(9, end(1));
    // The class's chat server stopping is the class's.
    f.at(10, end(3));
    let texts: Vec<String> =
        f.log().into_iter().filter(|l| l.kind.starts_with("chat_")).map(|l| l.text).collect();
    let rooms: Vec<&str> = texts.iter().map(|t| t.find(" (in ").map_or("", |at| &t[at..])).collect();
    let theirs = " (in session b7c9's own room)";
    assert_eq!(
        rooms,
        ["", theirs, "", theirs, theirs, "", "", " (in this page's own room)", "",],
        "{texts:#?}"
    );
}

/// Past the lanes, many sessions' sockets share the overflow lane: a chat event there is no
/// one room's, even when one of those sessions has a room of its own.
#[test]
fn the_overflow_lane_is_no_ones_chat_room() {
    let mut f = Feed::new();
    let count = MAX_LANES as u16 + 4;
    for i in 0..count {
        let local = format!("127.0.0.1:{}", 40_000 + i);
        let session = format!("s{i:07}");
        f.at(1, opened_by((&session, &local), "c", ServerName::Chat, CHAT));
    }
    let last = format!("s{:07}", count - 1);
    f.at(2, EventKind::SandboxOpen { server: ServerName::Chat, session: last });
    let peer = addr(&format!("127.0.0.1:{}", 40_000 + count - 2));
    let lane = f.model.lane_of(peer);
    assert_eq!(f.model.lanes()[lane].kind, LaneKind::Overflow);
    f.at(3, EventKind::ChatJoin { server: ServerName::Chat, peer, clients: 9, timeout_ms: 5_000 });
    let log = f.log();
    let join = log.iter().find(|l| l.kind == "chat_join").expect("logged");
    assert!(!join.text.contains("own room"), "{}", join.text);
}

/// A projector in a class: sessions come and go, each opening a few sockets and closing them.
/// Only open sockets count against the lanes: closed ones keep their lanes while their
/// traffic is in the window, and past [`MAX_KNOWN_LANES`] a new socket takes a lane nothing
/// is drawn on any more. Nobody lands in the shared lane while there is room.
#[test]
fn a_class_of_closed_sockets_never_pushes_a_new_one_into_the_shared_lane() {
    let mut f = Feed::with_window(100);
    let close =
        |session: &str| EventKind::ClientClose { session: session.into(), socket: "c".into(), member: None };
    let sockets = MAX_KNOWN_LANES as u16 * 2;
    for i in 0..sockets {
        // Session names whose first four characters, which a lane's label shows, differ.
        let (session, local) = (format!("{i:04}"), format!("127.0.0.1:{}", 40_000 + i));
        f.at(u64::from(i), opened_by((&session, &local), "c", ServerName::Echo, ECHO));
        let (len, payload) = bytes("hi");
        let (socket, from, to) = ("c".into(), addr(&local), addr(ECHO));
        let dg = u64::from(i);
        let sent = EventKind::ClientSend {
            session: session.clone(),
            socket,
            member: None,
            dg,
            from,
            to,
            len,
            payload,
            attempt: None,
            req: None,
        };
        f.at(u64::from(i), sent);
        f.at(u64::from(i), close(&session));
    }
    let lanes = f.model.lanes();
    assert!(lanes.len() <= MAX_KNOWN_LANES, "{} lanes known", lanes.len());
    assert!(lanes.iter().all(|l| l.kind != LaneKind::Overflow), "nobody shares the overflow lane");
    assert!(lanes[f.lane(&format!("c@{:04}", sockets - 1))].closed);
    // Every arrow still in the window is on the lane of the socket that sent it.
    for item in f.model.items() {
        if let Body::Arrow(a) = &item.body {
            assert_eq!(lanes[a.from].label, format!("c@{:04}", a.dg.expect("named")), "{a:?}");
        }
    }

    // With as many sockets open as there are lanes, the next one shares the overflow lane,
    // and that lane stays open when one of its sockets closes: the others are still there.
    for i in 0..=(MAX_LANES as u16) {
        let (session, local) = (format!("o{i:04}"), format!("127.0.0.1:{}", 50_000 + i));
        f.at(1_000, opened_by((&session, &local), "c", ServerName::Echo, ECHO));
    }
    let overflow = f.model.lanes().iter().position(|l| l.kind == LaneKind::Overflow).expect("shared");
    f.at(1_001, close(&format!("o{:04}", MAX_LANES)));
    assert!(!f.model.lanes()[overflow].closed, "the shared lane closed with one of its sockets");
}

/// A class's `nc` chat clients, evicted and gone from view, leave their places to newcomers:
/// an outside client counts against the lanes only while its traffic is in the window (and for
/// at most [`OUTSIDE_HELD_US`] after it).
#[test]
fn outside_clients_gone_from_view_leave_their_lanes_to_newcomers() {
    let mut f = Feed::with_window(100);
    let peer = |i: u16| addr(&format!("127.0.0.1:{}", 40_000 + i));
    let chat = ServerName::Chat;
    for i in 0..(MAX_LANES as u16 + 8) {
        f.at(1, EventKind::ChatJoin { server: chat, peer: peer(i), clients: 1, timeout_ms: 3_000 });
        f.at(2, EventKind::ChatEvict { server: chat, peer: peer(i), silent_ms: 3_000, clients: 0 });
    }
    assert!(f.model.lanes().iter().any(|l| l.kind == LaneKind::Overflow), "all in view at once: shared");
    // A socket's traffic pushes them out of the window.
    f.open("a", SOCK, ServerName::Echo, ECHO);
    for dg in 0..100 {
        f.at(10, send(dg, "a", ECHO, "x", None, None));
    }
    // A second on (the shared lane's strangers ask again once a second).
    f.at(1_100, EventKind::ChatJoin { server: chat, peer: peer(999), clients: 1, timeout_ms: 3_000 });
    let lane = f.lane("outside 127.0.0.1:40999");
    assert_eq!(f.model.lanes()[lane].kind, LaneKind::Outside, "the newcomer has a lane of its own");
}

/// A class's `nc` windows, each on a new port: those without traffic for [`OUTSIDE_HELD_US`]
/// make room, even while their traffic is still in the window, and a stranger put in the
/// shared lane while the diagram was full gets a lane of its own once there is room.
#[test]
fn quiet_outside_clients_make_room_and_the_shared_lane_lets_its_strangers_go() {
    let mut f = Feed::new();
    let peer = |i: u16| format!("127.0.0.2:{}", 40_000 + i);
    let hi = |f: &mut Feed, t_ms: u64, i: u16, dg: Dg| {
        f.at(t_ms, server_recv(dg, ServerName::Echo, ECHO, &peer(i), "hi"));
    };
    for i in 0..MAX_LANES as u16 {
        hi(&mut f, 1_000, i, Dg::from(i));
    }
    // Here until quiet for 10 s (the lanes' list names them); a server always is.
    let first = f.lane("outside 127.0.0.2:40000");
    assert!(f.model.present(first, 11_000_000) && !f.model.present(first, 11_000_001));
    assert!(f.model.present(f.lane("echo"), u64::MAX));
    // The diagram is full: the next stranger shares a lane, and keeps asking for its own.
    hi(&mut f, 2_000, 100, 100);
    let shared = f.lane("more clients");
    assert_eq!(f.model.lanes()[shared].kind, LaneKind::Overflow);
    assert_eq!(f.arrow(100).from, shared);
    assert!(!f.model.by_addr.contains_key(&addr(&peer(100))), "not remembered there");
    // Just before the first class has been quiet for 10 s it is still full; the stranger is
    // turned away again, and asks again as soon as the first place runs out, not a second on.
    hi(&mut f, 10_900, 100, 101);
    assert_eq!(f.arrow(101).from, shared);
    hi(&mut f, 11_001, 100, 102);
    assert_eq!(f.arrow(102).from, f.lane("outside 127.0.0.2:40100"), "its own lane now");
    hi(&mut f, 11_001, 101, 103);
    assert_eq!(f.arrow(103).from, f.lane("outside 127.0.0.2:40101"), "and a newcomer's");
    assert!(f.model.item(0).is_some(), "the quiet ones' datagrams are still drawn");
    let outside = f.model.lanes().iter().filter(|l| l.kind == LaneKind::Outside).count();
    assert_eq!(outside, MAX_LANES + 2, "the quiet keep their lanes, and their history on them");
}

/// An error comes without a time: it is logged at the relay's time as the page estimates it,
/// not at the newest event's, which may be long before.
#[test]
fn an_error_is_logged_when_it_came_not_at_the_last_events_time() {
    let mut f = Feed::new();
    f.open("a", SOCK, ServerName::Echo, ECHO);
    f.model.now_us = 19_000_000;
    f.model.apply(&ServerMsg::Error {
        code: protocol::ErrorCode::Limit,
        message: "too many".into(),
        op: None,
        socket: None,
    });
    let error = f.log().into_iter().find(|l| l.kind == "error").expect("logged");
    assert_eq!(error.t_us, 19_000_000);
}

/// A lesson's chat room that ends takes its clients with it: their sockets were closed first,
/// and they would otherwise stay in the panel, silent, for an eviction that never comes.
#[test]
fn a_chat_room_that_ends_leaves_no_ghosts_in_the_liveness_panel() {
    let mut f = Feed::new();
    let ((lesson, at_lesson), (_, at_plain)) = (LESSON, PLAIN);
    f.at(1, opened_by(LESSON, "alive", ServerName::Chat, CHAT));
    f.at(1, opened_by(PLAIN, "c", ServerName::Chat, CHAT));
    f.at(2, EventKind::SandboxOpen { server: ServerName::Chat, session: lesson.into() });
    let join = |peer: &str| EventKind::ChatJoin {
        server: ServerName::Chat,
        peer: addr(peer),
        clients: 1,
        timeout_ms: 3_000,
    };
    f.at(3, join(at_lesson));
    f.at(3, join(at_plain));
    // The lesson is stopped: its socket closes, then its room.
    f.at(4, EventKind::ClientClose { session: lesson.into(), socket: "alive".into(), member: None });
    f.at(4, EventKind::SandboxClose { server: ServerName::Chat, session: lesson.into() });
    f.at(4, EventKind::ChatEnd { server: ServerName::Chat, clients: 0 });
    assert_eq!(f.marks().last(), Some(&MarkKind::RoomClosed), "a lesson's room, not the class's server");
    let peers: Vec<SocketAddr> = f.model.chat_clients(60_000_000).into_iter().map(|c| c.peer).collect();
    assert_eq!(peers, [addr(at_plain)], "the class's client stays, the lesson's is gone");
    // The class's chat server stopping ends everyone's.
    f.at(5, EventKind::ChatEnd { server: ServerName::Chat, clients: 1 });
    assert_eq!(f.marks().last(), Some(&MarkKind::Closed));
    assert!(f.model.chat_clients(60_000_000).is_empty());
}

/// Lesson 6's strangers aim at the lesson's own sockets: the socket's lane keeps its name, and
/// only an address nobody named is called "target …".
#[test]
fn a_socket_aimed_at_another_keeps_that_ones_name() {
    let mut f = Feed::new();
    f.open("unconnected", SOCK, ServerName::Nobody, "127.0.0.1:9");
    let aimed = |socket: &str, local: &str, remote: &str| EventKind::ClientOpen {
        session: "me".into(),
        socket: socket.into(),
        member: None,
        local: addr(local),
        remote: addr(remote),
        server: None,
        connect: true,
        recv_buffer: None,
    };
    f.at(1, aimed("stranger", SOCK2, SOCK));
    f.at(2, aimed("probe", "127.0.0.1:50002", "127.0.0.1:7777"));
    let label = |peer: &str| {
        let lane = f.model.lanes().iter().find(|l| l.addr == Some(addr(peer)));
        lane.map(|l| l.label.clone()).unwrap_or_default()
    };
    assert_eq!(label(SOCK), "unconnected");
    assert_eq!(label("127.0.0.1:7777"), "target 127.0.0.1:7777");
}

/// Lesson 6's stranger aimed at the connected socket: the relay says its datagram vanished,
/// and why, and the arrow ends there, in the page's words for that reason.
#[test]
fn a_datagram_a_connected_socket_refused_vanishes_and_says_why() {
    let mut f = Feed::new();
    f.open("connected", SOCK, ServerName::Nobody, NOBODY);
    f.at(1, send(7, "connected", SOCK, "hi", None, None));
    f.at(
        2,
        EventKind::ClientVanished {
            session: "me".into(),
            socket: "connected".into(),
            member: None,
            dg: 7,
            to: addr(SOCK),
            len: 2,
            reason: VanishReason::NotItsPeer,
        },
    );
    let log = f.log();
    let line = log.iter().find(|l| l.kind == "client_vanished").expect("logged");
    assert!(
        line.text.contains("is connected to another peer, and takes its datagrams only"),
        "{}",
        line.text
    );
    let fates: Vec<Fate> = f
        .model
        .items()
        .iter()
        .filter_map(|i| match &i.body {
            Body::Arrow(a) => Some(a.fate),
            Body::Mark(_) => None,
        })
        .collect();
    assert_eq!(fates, [Fate::Vanished], "one arrow, ended where it vanished");
}

/// The lanes' list goes through the ranks one by one: a kind ranked past the last would be
/// left out of it.
#[test]
fn every_lane_kind_is_ranked_within_the_lists_passes() {
    let kinds = [
        LaneKind::Own,
        LaneKind::OtherSession,
        LaneKind::Outside,
        LaneKind::Overflow,
        LaneKind::Server(ServerName::Echo),
        LaneKind::Server(ServerName::Nobody),
    ];
    assert!(kinds.iter().all(|k| k.rank() <= LaneKind::LAST_RANK));
}

/// A class's page sockets past the diagram's places share a lane; once one of the first closes,
/// the next that sends gets a lane of its own.
#[test]
fn a_socket_in_the_shared_lane_gets_its_own_once_a_place_is_free() {
    let mut f = Feed::new();
    let local = |i: u16| format!("127.0.0.1:{}", 50_000 + i);
    for i in 0..=MAX_LANES as u16 {
        f.open(&format!("s{i}"), &local(i), ServerName::Echo, ECHO);
    }
    let last = format!("s{MAX_LANES}");
    f.at(1, send_from(1, &last, &local(MAX_LANES as u16), ECHO, "full", None, None));
    let shared = f.lane("more clients");
    assert_eq!(f.arrow(1).from, shared, "the diagram is full");
    f.at(2, EventKind::ClientClose { session: "me".into(), socket: "s0".into(), member: None });
    f.at(3, send_from(2, &last, &local(MAX_LANES as u16), ECHO, "room", None, None));
    assert_eq!(f.arrow(2).from, f.lane(&last), "a lane of its own now");
    assert_eq!(f.model.lanes()[f.lane(&last)].kind, LaneKind::Own);
    assert_eq!(f.arrow(1).from, shared, "what it sent before stays where it was drawn");
}
