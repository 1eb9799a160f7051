//! The page's words in English. One entry per lesson (by slug, in the order of
//! `protocol::lessons::LESSONS`) and one per piece of the page (by key). The Chinese table,
//! web/lang/zh.txt, has the same rows; a test in `text` checks it.

use super::Words;

pub const WORDS: Words = Words {
    code: "en",
    lessons: [
        (
            "no-listener",
            "No listener",
            "UDP has no connection: a socket can send to a port where nobody listens. Watch the datagram leave and vanish, marked ∅ VANISHED; the sender is told nothing.",
        ),
        (
            "empty",
            "Empty datagram",
            "A datagram with no bytes is still a datagram. Look for the 0-byte send and its 0-byte echo: both arrows are real traffic.",
        ),
        (
            "boundaries",
            "Message boundaries",
            "UDP keeps message boundaries. Two sends, \"first\" and \"second\", arrive as two datagrams, never merged into one as a TCP stream could.",
        ),
        (
            "loss-retry",
            "Loss and retries",
            "The lossy server now drops everything. Watch the client wait 100, 200, 400 and 800 ms between attempts (each retry is labelled with its wait), then give up.",
        ),
        (
            "late-duplicate",
            "Late and duplicate replies",
            "Each answer is held 300 ms, so replies come after the client moved on: LATE; one comes twice: DUP. With request IDs (#n) every reply names its attempt; the second socket, without IDs, takes a late reply for the wrong attempt.",
        ),
        (
            "connected-refused",
            "Connected or not",
            "Both sockets send to nobody. Only the connected one hears ECONNREFUSED; the unconnected one hears silence. A stranger's datagram reaches only the unconnected socket: a connected one drops what is not from its peer.",
        ),
        (
            "heartbeat-eviction",
            "Heartbeats and eviction",
            "Chat forgets a client silent for 3 s. \"alive\" sends a heartbeat every second and stays; \"quiet\" says one word and is evicted: watch its countdown in Chat liveness. Then alive stops too.",
        ),
        (
            "truncation",
            "Truncation",
            "This socket reads at most 1,024 bytes, like recvfrom(1024). 2,000 bytes are sent and echoed whole, but the read keeps 1,024: the rest is lost, and UDP does not say so.",
        ),
        (
            "reordering",
            "Reordering",
            "The link to echo holds each datagram until the next has passed. 1, 2, 3, 4 are sent in order; look for the arrivals marked out of order.",
        ),
        (
            "size-limit",
            "The size limit",
            "65,507 bytes is the most one UDP datagram can carry over IPv4; 65,508 is refused by UDP (EMSGSIZE) before it leaves. Over a 1,500-byte MTU a big datagram is 45 fragments: lose one and the whole datagram is lost.",
        ),
        (
            "many-clients",
            "Many clients",
            "One server, 100 clients: the crowd \"class\" sends hello every second and upper answers every one. The crowd is one lane, with counts.",
        ),
        (
            "outside-clients",
            "Outside clients",
            "Anyone can send to these servers: no connection, no handshake. Run the command below in a terminal and type a line: it appears here at once.",
        ),
    ],
    page: &[
        (
            "intro",
            "Five servers are waiting. echo sends back what it gets. upper sends it back in capitals. chat passes every message to everyone registered, and forgets the silent. lossy drops or delays answers, as you set it. nobody is a port where nothing listens. Start with lesson 1, or open a socket by hand.",
        ),
        ("lessons", "Lessons"),
        ("replay", "Replay"),
        ("outside-run", "In a terminal, run:"),
        ("outside-type", "then type:"),
        ("lang", "中文"),
        ("lang-title", "切换到中文"),
    ],
};
