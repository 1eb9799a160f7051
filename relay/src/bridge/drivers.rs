//! The drivers of one session's sockets, run inside the session's own task.
//!
//! Each socket a session opens is still run by [`crate::udp::drive`], the one loop that owns a
//! socket, but its future is polled by the session task rather than spawned as a task of its
//! own. A command then reaches its socket, and the socket's events reach the session, without
//! waking another task (and, on a multi-threaded runtime, often another thread): the wake-ups
//! between the two were a good part of the bridge's cost per round trip (bench/bridge.sh).
//!
//! The session must therefore keep polling its drivers whenever it waits: for the browser to
//! take a frame, for a server to answer a `configure`, for a socket to accept a request. The
//! [`Drivers::alongside`] helper does that, so a browser that stops reading still never stops
//! its sockets: they go on reading and sending, and their events go to the session's bounded
//! feed, which counts what it misses.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use futures_util::stream::{FuturesUnordered, StreamExt};

/// One socket's driver, with whatever it does once the socket has stopped.
pub type Driver = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The running drivers of one session's sockets.
#[derive(Default)]
pub struct Drivers {
    running: FuturesUnordered<Driver>,
}

impl Drivers {
    /// Starts running `opened`, emptying it.
    pub fn adopt(&mut self, opened: &mut Vec<Driver>) {
        self.running.extend(opened.drain(..));
    }

    pub fn is_empty(&self) -> bool {
        self.running.is_empty()
    }

    /// Waits for the next socket to stop; `None` when none runs.
    pub async fn next_stopped(&mut self) -> Option<()> {
        self.running.next().await
    }

    /// Runs the drivers until every socket has stopped.
    pub async fn finish(&mut self) {
        while self.running.next().await.is_some() {}
    }

    /// Gives every driver that has something to do one turn, without waiting: a command just
    /// queued is carried out, a datagram just arrived is reported.
    pub async fn turn(&mut self) {
        std::future::poll_fn(|cx| {
            while let Poll::Ready(Some(())) = self.running.poll_next_unpin(cx) {}
            Poll::Ready(())
        })
        .await;
    }

    /// Runs `work` while the drivers go on running, and returns what it returns.
    pub async fn alongside<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::select! {
            biased;
            done = work => done,
            never = self.forever() => match never {},
        }
    }

    /// Runs the drivers, and then waits forever: what the session waits beside.
    async fn forever(&mut self) -> Infallible {
        self.finish().await;
        std::future::pending().await
    }
}
