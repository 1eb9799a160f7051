//! `tokio-echo`: the smallest useful tokio UDP echo server, the yardstick for the relay's echo.
//!
//! One task, one socket, one buffer: `recv_from`, then `send_to` the same bytes back. It runs on
//! the same runtime flavour as the relay (`#[tokio::main]`: multi-threaded, one worker per core),
//! and like the relay's servers the loop is a spawned task, so the difference `bench/run.sh`
//! measures is the relay's own per-datagram work (its driver, handler and event-bus check), not
//! the runtime.
//!
//! Why spawned: the future given to `#[tokio::main]` runs on the main thread, which is not a
//! runtime worker. The socket's readiness is then noticed by a worker and handed to the main
//! thread with a cross-thread wake-up for every datagram. On the 2-core benchmark machine that
//! made the same loop about 1.5x slower, which would flatter the relay.
//!
//! ```text
//! tokio-echo 127.0.0.1:0      # prints "tokio-echo listening udp://127.0.0.1:PORT"
//! ```
//!
//! It stops on Ctrl-C or SIGTERM, like the relay.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::UdpSocket;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(text) => text.parse().with_context(|| format!("{text:?} is not an address like 127.0.0.1:0"))?,
        None => "127.0.0.1:0".parse().context("the default address parses")?,
    };
    let socket = UdpSocket::bind(addr).await.with_context(|| format!("cannot bind UDP {addr}"))?;
    // Rust's stdout is line-buffered, so a script reading this line sees it at once.
    println!("tokio-echo listening udp://{}", socket.local_addr()?);

    // On a worker thread, like the relay's servers (see the file's doc).
    let server = tokio::spawn(echo(socket));
    stop_signal().await;
    server.abort();
    Ok(())
}

/// The whole server. Errors (such as ECONNREFUSED reported for an earlier send to a client that
/// has gone) are skipped: one bad peer must not stop the server.
async fn echo(socket: UdpSocket) {
    // 64 KiB holds the largest UDP payload (65,507 bytes over IPv4).
    let mut buf = vec![0u8; 65_536];
    loop {
        if let Ok((len, peer)) = socket.recv_from(&mut buf).await {
            let _ = socket.send_to(&buf[..len], peer).await;
        }
    }
}

/// Completes on Ctrl-C or SIGTERM (what `bench/run.sh` sends on exit).
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
