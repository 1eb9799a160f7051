//! The driver's sends and receives, as plain system calls where the OS lets us.
//!
//! Tokio's `UdpSocket` calls `sendto` and `recvfrom` through the standard library, which calls
//! glibc. Once a process has a second thread (the relay always has: its runtime runs on one of
//! its own, see `main.rs`), glibc makes each of those calls a cancellation point, bracketed by
//! two more calls of its own. On Linux these functions make the system call directly (through
//! `rustix`, whose backend on x86-64, AArch64 and most other targets is the bare system call;
//! on a few it goes through libc, correct but no faster) and let tokio track readiness as
//! before, through `try_io` and `async_io`. glibc's brackets took 1.4% of the echo's CPU; the echo and the bridge spend 1–3%
//! less per round trip without them (BENCHMARKS.md, "the driver's system calls"). Elsewhere
//! these are tokio's own methods.
//!
//! Errors are the same `io::Error`s either way: `WouldBlock` when the socket is not ready
//! (tokio then waits for readiness), `ConnectionRefused` for an earlier datagram's ICMP port
//! unreachable (`ConnectionReset` on Windows), and so on.

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

/// Reads one datagram if one is queued, without waiting.
pub fn try_recv_from(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    #[cfg(target_os = "linux")]
    {
        socket.try_io(tokio::io::Interest::READABLE, || raw::recv_from(socket, buf))
    }
    #[cfg(not(target_os = "linux"))]
    {
        socket.try_recv_from(buf)
    }
}

/// Waits for a datagram and reads it.
pub async fn recv_from(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    #[cfg(target_os = "linux")]
    {
        // ERROR too, as tokio's own `recv_from` waits: an ICMP port unreachable wakes the
        // socket with an error and nothing to read, and must not go unnoticed.
        let interest = tokio::io::Interest::READABLE | tokio::io::Interest::ERROR;
        socket.async_io(interest, || raw::recv_from(socket, buf)).await
    }
    #[cfg(not(target_os = "linux"))]
    {
        socket.recv_from(buf).await
    }
}

/// Sends one datagram to `to` (or, on a connected socket, to its peer), waiting only when
/// the kernel's send buffer is full. The plain non-blocking call comes first: a chat
/// broadcast is thousands of them in a row.
pub async fn send(socket: &UdpSocket, connected: bool, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let call = || match connected {
            true => raw::send(socket, bytes),
            false => raw::send_to(socket, bytes, to),
        };
        match socket.try_io(tokio::io::Interest::WRITABLE, call) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                socket.async_io(tokio::io::Interest::WRITABLE, call).await
            }
            other => other,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let tried = match connected {
            true => socket.try_send(bytes),
            false => socket.try_send_to(bytes, to),
        };
        match tried {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => match connected {
                true => socket.send(bytes).await,
                false => socket.send_to(bytes, to).await,
            },
            other => other,
        }
    }
}

#[cfg(target_os = "linux")]
mod raw {
    use std::io;
    use std::net::SocketAddr;

    use rustix::net::{RecvFlags, SendFlags};
    use tokio::net::UdpSocket;

    pub fn recv_from(socket: &UdpSocket, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (got, _, from) = rustix::net::recvfrom(socket, buf, RecvFlags::empty())?;
        // A UDP socket's datagrams always come from an IP address; anything else is refused
        // rather than invented.
        let from = from.and_then(|from| SocketAddr::try_from(from).ok()).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidData, "a datagram came from an address that is not IP")
        })?;
        Ok((got, from))
    }

    pub fn send_to(socket: &UdpSocket, bytes: &[u8], to: SocketAddr) -> io::Result<usize> {
        Ok(rustix::net::sendto(socket, bytes, SendFlags::NOSIGNAL, &to)?)
    }

    pub fn send(socket: &UdpSocket, bytes: &[u8]) -> io::Result<usize> {
        Ok(rustix::net::send(socket, bytes, SendFlags::NOSIGNAL)?)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const WITHIN: Duration = Duration::from_secs(5);

    async fn bound() -> UdpSocket {
        bound_on("127.0.0.1:0").await.expect("bind a loopback socket")
    }

    async fn bound_on(addr: &str) -> Option<UdpSocket> {
        UdpSocket::bind(addr).await.ok()
    }

    /// Bytes and their sender come through both ways, connected and not, over IPv4 and (where
    /// the machine has it) IPv6, whose addresses are longer.
    #[tokio::test]
    async fn a_datagram_arrives_whole_with_its_sender() {
        for family in ["127.0.0.1:0", "[::1]:0"] {
            let (Some(a), Some(b)) = (bound_on(family).await, bound_on(family).await) else {
                assert_ne!(family, "127.0.0.1:0", "IPv4 loopback is always there");
                continue;
            };
            let (a_addr, b_addr) = (a.local_addr().expect("address"), b.local_addr().expect("address"));
            let sent = tokio::time::timeout(WITHIN, send(&a, false, b"to b", b_addr)).await.expect("in time");
            assert_eq!(sent.expect("sent"), 4);
            let mut buf = vec![0; 64];
            let got = tokio::time::timeout(WITHIN, recv_from(&b, &mut buf)).await.expect("in time");
            assert_eq!(got.expect("received"), (4, a_addr), "over {family}");
            assert_eq!(&buf[..4], b"to b");
            assert_eq!(try_recv_from(&b, &mut buf).map_err(|e| e.kind()), Err(io::ErrorKind::WouldBlock));

            b.connect(a_addr).await.expect("connect");
            let sent = tokio::time::timeout(WITHIN, send(&b, true, b"back", a_addr)).await.expect("in time");
            assert_eq!(sent.expect("sent"), 4);
            let got = tokio::time::timeout(WITHIN, recv_from(&a, &mut buf)).await.expect("in time");
            assert_eq!(got.expect("received"), (4, b_addr), "over {family}");
            assert_eq!(&buf[..4], b"back");
        }
    }

    /// A connected socket waiting to read learns of an ICMP port unreachable: the error wakes
    /// it although nothing came to read (waiting for readability alone would sleep forever).
    #[tokio::test]
    async fn a_refusal_wakes_a_socket_waiting_to_read() {
        let socket = bound().await;
        let gone = bound().await.local_addr().expect("address");
        // Nothing listens there now (the socket above is dropped).
        socket.connect(gone).await.expect("connect");
        let mut buf = vec![0; 64];
        // `join!` polls the receive first: it is already waiting, with nothing to read, when
        // the send goes and the refusal comes back.
        let (refused, ()) = tokio::join!(tokio::time::timeout(WITHIN, recv_from(&socket, &mut buf)), async {
            let sent = tokio::time::timeout(WITHIN, send(&socket, true, b"anyone?", gone)).await;
            sent.expect("in time").expect("sent");
        });
        let refused = refused.expect("the refusal woke the receive in time").map_err(|e| e.kind());
        // Windows names it a reset (see `driver::is_refusal`).
        assert!(
            matches!(refused, Err(io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset)),
            "{refused:?}"
        );
    }
}
