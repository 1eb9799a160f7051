//! The HTTP accept loop: the page, the API and the WebSocket, guarded against a classroom.
//!
//! axum's own `serve` has no knobs, and a classroom needs two:
//! - **A header read timeout.** A client that opens a connection and never finishes its
//!   request head is dropped after [`HEADER_TIMEOUT`], so half-sent requests cannot pile up
//!   until the relay runs out of memory or file descriptors.
//! - **A cap per client address.** One student's runaway tabs (or scripts) hold at most
//!   `--max-per-address` connections, WebSocket sessions included, so they cannot take every
//!   slot of the class. Loopback, the teacher's own machine, has a cap of its own
//!   (`--max-per-loopback`), generous so that local scripts and tests are not capped.
//!
//! Each connection's [`AddressSlot`] travels with its requests, and a WebSocket session keeps
//! it for as long as it lives: an upgraded connection still counts.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower_service::Service;

/// How long a client may take to send a request's head (the request line and headers).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Refusals (429 answers) being written at once.
const MAX_REFUSALS: usize = 64;

/// Connections each client address may hold at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddressLimits {
    /// For any address but loopback (`--max-per-address`).
    pub per_address: usize,
    /// For loopback, this machine itself (`--max-per-loopback`).
    pub per_loopback: usize,
}

impl AddressLimits {
    fn of(&self, ip: IpAddr) -> usize {
        if ip.to_canonical().is_loopback() { self.per_loopback } else { self.per_address }
    }
}

/// Live connections per client address. A `std::sync::Mutex`: held for one map update, never
/// across an await.
#[derive(Debug, Default)]
struct Counts(Mutex<HashMap<IpAddr, usize>>);

/// One connection's place in its address's count, given back when the last clone is dropped:
/// when the connection closes, or, for a WebSocket, when its session ends.
#[derive(Debug)]
pub struct AddressSlot {
    ip: IpAddr,
    counts: Arc<Counts>,
}

impl AddressSlot {
    /// The client's address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.0.lock()
            && let Some(n) = counts.get_mut(&self.ip)
        {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Counts {
    /// A slot for `ip`, or `None` when it already holds `limit` connections.
    fn take(self: &Arc<Self>, ip: IpAddr, limit: usize) -> Option<Arc<AddressSlot>> {
        let mut counts = self.0.lock().ok()?;
        let n = counts.entry(ip).or_default();
        if *n >= limit {
            return None;
        }
        *n += 1;
        Some(Arc::new(AddressSlot { ip, counts: self.clone() }))
    }
}

/// Serves `app` on `listener` until `shutdown` completes; then stops accepting, runs
/// `shutdown`'s own ordered stop (it returns once servers and sessions have stopped), and asks
/// the remaining HTTP connections to finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: AddressLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let counts = Arc::new(Counts::default());
    let (stopping, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let connections = tokio_util::task::TaskTracker::new();
    let refusals = Arc::new(tokio::sync::Semaphore::new(MAX_REFUSALS));
    loop {
        let (tcp, remote) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, say: wait a moment rather than spin.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Some(slot) = counts.take(remote.ip(), limits.of(remote.ip())) else {
            // Refusals are answered a few at a time; past that the connection is just dropped,
            // so a storm of them costs no more than the storm itself.
            if let Ok(permit) = refusals.clone().try_acquire_owned() {
                let limit = limits.of(remote.ip());
                connections.spawn(async move {
                    refuse(tcp, remote, limit).await;
                    drop(permit);
                });
            }
            continue;
        };
        // Events are small frames written one after another: without TCP_NODELAY, Nagle's
        // algorithm holds each write until the browser's delayed ACK, about 40 ms later.
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY: {e}");
        }
        let (app, request_slot) = (app.clone(), slot.clone());
        let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
            request.extensions_mut().insert(request_slot.clone());
            let mut app = app.clone();
            app.call(request.map(axum::body::Body::new))
        });
        let mut stop_rx = stop_rx.clone();
        connections.spawn(async move {
            // HTTP/1 only: the header timeout is HTTP/1's, and the page needs nothing else.
            let mut builder = Builder::new(TokioExecutor::new()).http1_only();
            builder.http1().timer(TokioTimer::new()).header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(tcp), service);
            let mut conn = std::pin::pin!(conn);
            let served = tokio::select! {
                served = conn.as_mut() => served,
                () = until_stopping(&mut stop_rx) => {
                    // Asked once; the connection then finishes what it is doing.
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = served {
                tracing::debug!(%remote, "connection ended: {e}");
            }
            drop(slot);
        });
    }
    drop(listener);
    // `shutdown` has completed: the servers and sessions have stopped. Idle keep-alive
    // connections are asked to close; a request in progress gets a moment to finish.
    let _ = stopping.send(true);
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), connections.wait()).await;
}

/// Completes once the server is stopping (or gone).
async fn until_stopping(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stopping| *stopping).await;
}

/// Answers a connection over its address's cap with a 429 that names the flag, then closes it.
async fn refuse(mut tcp: tokio::net::TcpStream, remote: SocketAddr, limit: usize) {
    let flag =
        if remote.ip().to_canonical().is_loopback() { "--max-per-loopback" } else { "--max-per-address" };
    tracing::warn!(%remote, limit, "refused a connection: too many from one address");
    let ip = remote.ip().to_canonical();
    let body = format!("refused: {ip} already holds {limit} connections to this relay ({flag})\n");
    let response = format!(
        "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let answered = async {
        tcp.write_all(response.as_bytes()).await?;
        tcp.shutdown().await?;
        // Read what the client sent before closing: closing with unread bytes would reset the
        // connection, and the client would see a reset instead of the answer.
        let mut sink = [0u8; 4096];
        for _ in 0..16 {
            if tcp.read(&mut sink).await? == 0 {
                break;
            }
        }
        std::io::Result::Ok(())
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), answered).await;
}
