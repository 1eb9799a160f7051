//! `minimal-chat`: the least a chat server can do, the yardstick for the relay's chat fan-out.
//!
//! One blocking std socket, one thread, no runtime, no events, no eviction timer: `reg` and
//! `^hb^` add the sender to a `HashMap`, `quit` removes it, anything else is sent as
//! `ack: IP PORT\nTEXT\n` to every client with a plain `send_to` loop. It speaks the same wire
//! protocol as the relay's chat server, so `chatfan` can measure both, and `bench/run.sh` does,
//! interleaved. If the relay's fan-out is as fast as this, the time is the kernel's, not the
//! relay's.
//!
//! ```text
//! minimal-chat 127.0.0.1:0    # prints "minimal-chat listening udp://127.0.0.1:PORT"
//! ```
//!
//! It runs until killed (`bench/run.sh` sends SIGTERM, whose default action ends the process).
//! Not a server to use: nobody is ever evicted, and the number of clients has no cap.

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, UdpSocket};

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(text) => text.parse().with_context(|| format!("{text:?} is not an address like 127.0.0.1:0"))?,
        None => "127.0.0.1:0".parse().context("the default address parses")?,
    };
    let socket = UdpSocket::bind(addr).with_context(|| format!("cannot bind UDP {addr}"))?;
    println!("minimal-chat listening udp://{}", socket.local_addr()?);

    // Live clients. The value is unused: a set would do, but a map mirrors the relay's.
    let mut clients: HashMap<SocketAddr, ()> = HashMap::new();
    let mut buf = vec![0u8; 65_536];
    let mut message = Vec::new();
    loop {
        // A receive error (e.g. ECONNREFUSED for an earlier send to a closed client) is skipped.
        let Ok((len, from)) = socket.recv_from(&mut buf) else { continue };
        let text = buf[..len].trim_ascii();
        match text {
            b"reg" | b"^hb^" => {
                clients.insert(from, ());
            }
            b"quit" => {
                clients.remove(&from);
            }
            _ => {
                clients.insert(from, ());
                message.clear();
                // Writing to a Vec cannot fail.
                let _ = writeln!(message, "ack: {} {}", from.ip(), from.port());
                message.extend_from_slice(text);
                message.push(b'\n');
                for peer in clients.keys() {
                    let _ = socket.send_to(&message, peer);
                }
            }
        }
    }
}
