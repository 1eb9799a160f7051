//! `tokio-echo`: the smallest useful tokio UDP echo server, the yardstick for the relay's echo.
//!
//! One task, one socket, one buffer: `recv_from`, then `send_to` the same bytes back. It runs on
//! the same runtime as the relay: one thread by default (the relay's `--threads 1`), or as many
//! worker threads as its second argument says, like `--threads N`. The difference `bench/run.sh`
//! measures is then the relay's own per-datagram work (its driver, handler and event-bus check),
//! not the runtime.
//!
//! With more than one thread the loop is a spawned task, as the relay's servers are: the future
//! given to `block_on` runs on the main thread, which is not a runtime worker, and the socket's
//! readiness would then be noticed by a worker and handed to the main thread with a
//! cross-thread wake-up for every datagram (about 1.5x slower on the 2-core benchmark machine,
//! which would flatter the relay).
//!
//! ```text
//! tokio-echo 127.0.0.1:0          # prints "tokio-echo listening udp://127.0.0.1:PORT"
//! tokio-echo 127.0.0.1:0 2        # on two worker threads, to set beside `relay --threads 2`
//! tokio-echo 127.0.0.1:0 1 mmsg   # Linux: up to 32 datagrams a system call each way
//! ```
//!
//! `mmsg` reads with `recvmmsg` and answers with `sendmmsg`: an experiment, kept so it can be
//! run again, in what batching the system calls would save (BENCHMARKS.md, "The driver's
//! system calls": the calls halve or better, the CPU per round trip moves less than the noise).
//!
//! It stops on Ctrl-C or SIGTERM, like the relay.

use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::UdpSocket;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr: SocketAddr = match args.next() {
        Some(text) => text.parse().with_context(|| format!("{text:?} is not an address like 127.0.0.1:0"))?,
        None => "127.0.0.1:0".parse().context("the default address parses")?,
    };
    let threads: usize = match args.next() {
        Some(text) => text
            .parse()
            .ok()
            .filter(|&n| n >= 1)
            .with_context(|| format!("{text:?} is not a thread count"))?,
        None => 1,
    };
    let batched = match args.next().as_deref() {
        None => false,
        Some("mmsg") if cfg!(target_os = "linux") => true,
        Some(other) => anyhow::bail!("{other:?} is not a mode; the one there is, on Linux, is mmsg"),
    };
    let runtime = match threads {
        1 => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        n => tokio::runtime::Builder::new_multi_thread().worker_threads(n).enable_all().build(),
    }
    .context("cannot start the runtime")?;
    runtime.block_on(async {
        let socket = UdpSocket::bind(addr).await.with_context(|| format!("cannot bind UDP {addr}"))?;
        // Rust's stdout is line-buffered, so a script reading this line sees it at once.
        println!("tokio-echo listening udp://{}", socket.local_addr()?);
        // A task of its own, like the relay's servers (see the file's doc).
        let server = match batched {
            #[cfg(target_os = "linux")]
            true => tokio::spawn(batch::echo(socket)),
            _ => tokio::spawn(echo(socket)),
        };
        stop_signal().await;
        server.abort();
        Ok(())
    })
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

/// The echo with batched system calls (the `mmsg` mode).
#[cfg(target_os = "linux")]
mod batch {
    use std::cell::RefCell;
    use std::io::{self, IoSlice, IoSliceMut};
    use std::os::fd::AsRawFd;

    use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
    use tokio::io::Interest;
    use tokio::net::UdpSocket;

    const BATCH: usize = 32;

    thread_local! {
        // nix's headers hold raw pointers, so they may not cross an `.await` in a task that
        // can move between threads; they live here and are only touched inside one call.
        // The server has one socket, of one address family, so the address lengths the
        // kernel writes back into them always fit the next call.
        static HEADERS: RefCell<(MultiHeaders<SockaddrStorage>, MultiHeaders<SockaddrStorage>)> =
            RefCell::new((MultiHeaders::preallocate(BATCH, None), MultiHeaders::preallocate(BATCH, None)));
    }

    pub async fn echo(socket: UdpSocket) {
        let fd = socket.as_raw_fd();
        let mut bufs = vec![vec![0u8; 65_536]; BATCH];
        // Kept in step with `bufs`: datagram i is in buffer i. Nothing here allocates per
        // batch, so the batched server does no more user work than the plain one.
        let mut got: Vec<(usize, Option<SockaddrStorage>)> = Vec::with_capacity(BATCH);
        loop {
            got.clear();
            let read = socket.async_io(Interest::READABLE | Interest::ERROR, || {
                HEADERS.with_borrow_mut(|(headers, _)| {
                    let mut each = bufs.iter_mut();
                    let mut slices: [[IoSliceMut<'_>; 1]; BATCH] = std::array::from_fn(|_| {
                        [IoSliceMut::new(each.next().map_or(&mut [][..], |buf| &mut buf[..]))]
                    });
                    let read = recvmmsg(fd, headers, slices.iter_mut(), MsgFlags::MSG_DONTWAIT, None)?;
                    got.extend(read.map(|m| (m.bytes, m.address)));
                    Ok::<_, io::Error>(())
                })
            });
            if read.await.is_err() {
                continue;
            }
            let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|i| {
                [IoSlice::new(got.get(i).map_or(&[][..], |&(len, _)| &bufs[i][..len]))]
            });
            let to: [Option<SockaddrStorage>; BATCH] =
                std::array::from_fn(|i| got.get(i).and_then(|&(_, to)| to));
            let n = got.len();
            // Unlike the plain echo, which waits, answers that cannot all go at once (the socket
            // not known to be writable, a full send buffer, an error part-way) are dropped:
            // loadgen counts each as lost, so a run compares fairly only when it reports no loss.
            let _ = socket.try_io(Interest::WRITABLE, || {
                HEADERS.with_borrow_mut(|(_, headers)| {
                    Ok::<_, io::Error>(
                        sendmmsg(fd, headers, slices[..n].iter(), &to[..n], [], MsgFlags::empty())?.count(),
                    )
                })
            });
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
