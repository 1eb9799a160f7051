//! Shared helpers: a relay on free ports, and timeouts around every await.

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use protocol::ServerName;
use relay::{Config, Relay, RelayHandle};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long any single step may take before the test fails instead of hanging.
pub const STEP: Duration = Duration::from_secs(5);

/// Awaits `fut`, failing the test with `what` if it takes longer than [`STEP`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP, fut).await.unwrap_or_else(|_| panic!("timed out after {STEP:?}: {what}"))
}

/// A relay running in this process on free loopback ports.
pub struct TestRelay {
    pub handle: RelayHandle,
    pub bus: relay::bus::EventBus,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), relay::StartError>>>,
}

impl TestRelay {
    /// Starts a relay with [`Config::ephemeral`], adjusted by `tweak`.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::ephemeral();
        tweak(&mut config);
        let relay = within("binding the relay", Relay::bind(config)).await.expect("relay binds");
        let handle = relay.handle().clone();
        let bus = relay.bus().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(relay.serve(async move {
            let _ = stopped.await;
        }));
        Self { handle, bus, stop: Some(stop), task: Some(task) }
    }

    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub fn addr(&self, server: ServerName) -> SocketAddr {
        self.handle.servers[&server]
    }

    pub fn http(&self) -> SocketAddr {
        self.handle.http
    }

    /// Stops the relay and waits for every server to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("relay shutdown", task).await.expect("relay task").expect("relay serves cleanly");
        }
    }
}

/// A client UDP socket on 127.0.0.1.
pub async fn udp_client() -> UdpSocket {
    within("binding a client socket", UdpSocket::bind("127.0.0.1:0")).await.expect("bind client")
}

/// Receives one datagram, failing the test after [`STEP`].
pub async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    let (n, from) = within("receiving a datagram", socket.recv_from(&mut buf)).await.expect("recv_from");
    buf.truncate(n);
    (buf, from)
}

/// Asserts that nothing arrives on `socket` for `quiet`.
pub async fn assert_silent(socket: &UdpSocket, quiet: Duration) {
    let mut buf = [0u8; 2048];
    if let Ok(got) = tokio::time::timeout(quiet, socket.recv_from(&mut buf)).await {
        panic!("expected silence, got {got:?}");
    }
}

/// Waits for the first event on `events` that `matches` accepts, skipping the others.
///
/// Fails the test after [`STEP`], if the bus closes, or if the receiver lagged: a test that
/// missed events cannot tell whether the one it wants was among them.
pub async fn wait_for_event<T>(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<relay::bus::Published>>,
    what: &str,
    mut matches: impl FnMut(&protocol::Event) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match events.recv().await {
                Ok(event) => {
                    if let Some(found) = matches(&event) {
                        return found;
                    }
                }
                Err(e) => panic!("event bus failed while waiting for {what}: {e}"),
            }
        }
    })
    .await
}

/// Every event already on the bus, without waiting. Fails the test if the receiver lagged.
pub fn drain_events(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<relay::bus::Published>>,
) -> Vec<std::sync::Arc<relay::bus::Published>> {
    use tokio::sync::broadcast::error::TryRecvError;
    let mut drained = Vec::new();
    loop {
        match events.try_recv() {
            Ok(event) => drained.push(event),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return drained,
            Err(TryRecvError::Lagged(missed)) => panic!("the test's bus receiver lagged by {missed} events"),
        }
    }
}

/// An HTTP response as the tests see it: status, headers (names lowercased) and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A minimal HTTP/1.1 GET over a plain TCP connection, enough for the relay's own endpoints.
///
/// It asks the server to close the connection and reads until it does, so no client crate
/// is needed. Bodies sent with `Transfer-Encoding: chunked` are reassembled.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(addr, "GET", path, &[], "").await
}

/// A minimal HTTP/1.1 request with extra headers and a body, read as [`http_get`] reads.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    let stream =
        within("connecting to the HTTP server", tokio::net::TcpStream::connect(addr)).await.expect("connect");
    http_request_on(stream, addr, method, path, headers, body).await
}

/// A TCP connection to `addr` from `ip`: another loopback address than 127.0.0.1 stands in
/// for another machine, a student's.
pub async fn tcp_from(ip: std::net::IpAddr, addr: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("a TCP socket");
    socket.bind(SocketAddr::new(ip, 0)).expect("bind the client's address");
    within("connecting to the HTTP server", socket.connect(addr)).await.expect("connect")
}

/// [`http_request`] on a connection already made.
pub async fn http_request_on(
    mut stream: tokio::net::TcpStream,
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    // The relay's own Host, unless the caller names one (or several).
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("host")) {
        request.push_str(&format!("Host: {addr}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    request.push_str(body);
    within("writing the HTTP request", stream.write_all(request.as_bytes())).await.expect("write request");
    let mut raw = Vec::new();
    within("reading the HTTP response", stream.read_to_end(&mut raw)).await.expect("read response");

    let head_end = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("the response has a blank line");
    let head = std::str::from_utf8(&raw[..head_end]).expect("the response head is text");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("a status line");
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest) } else { rest.to_vec() };
    HttpResponse { status, headers, body }
}

/// Reassembles a `Transfer-Encoding: chunked` body.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    // Each round consumes one chunk, so this ends after at most `rest.len()` rounds.
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").expect("a chunk size line");
        let size_text = std::str::from_utf8(&rest[..line_end]).expect("chunk size is text");
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).expect("chunk size is hex");
        if size == 0 {
            return body;
        }
        let start = line_end + 2;
        body.extend_from_slice(&rest[start..start + size]);
        rest = &rest[start + size + 2..];
    }
}

/// A TCP forwarder standing in for the network between a student's laptop and the relay: it
/// listens at `listen` and makes each connection it takes to `to` from `from`, so the relay
/// sees the student's address. A browser opens the page at `listen`. Stops when dropped.
pub struct Forwarder {
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    pub async fn start(listen: SocketAddr, from: std::net::IpAddr, to: SocketAddr) -> Self {
        let listener = tokio::net::TcpListener::bind(listen).await.expect("bind the forwarder");
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut outbound = tcp_from(from, to).await;
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                });
            }
        });
        Self { task }
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
