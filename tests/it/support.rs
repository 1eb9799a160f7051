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
