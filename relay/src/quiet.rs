//! Quiet futures and streams: polled again only once they have woken.
//!
//! A session's loop waits on several things at once in a `select!`, and each time any one of
//! them is ready, every other one is polled again too. For most that costs little; for the
//! WebSocket's stream (the WebSocket library sets up its wakers and looks at the socket) and
//! for shutdown (two locks each time) it was a good part of the session's own work per round
//! trip. [`Quiet`] remembers whether the thing it wraps has woken since it last said "not
//! yet", and if not, answers "not yet" again without asking. That is what a future or stream
//! promises anyway: once pending, it has nothing new until it wakes its waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::Stream;
use futures_util::task::AtomicWaker;

/// Whether the wrapped future or stream has woken, and the task to pass the wake-up on to.
#[derive(Default)]
struct Wakeup {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Wakeup {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

/// A future or stream, polled only when it may have something new.
pub struct Quiet<T> {
    inner: Pin<Box<T>>,
    wakeup: Arc<Wakeup>,
    /// The waker handed to `inner`, made once.
    waker: Waker,
    /// Whether `inner` must be polled next time: at first, after it woke, and after it
    /// yielded an item (a stream may have more ready).
    due: bool,
}

impl<T> Quiet<T> {
    pub fn new(inner: T) -> Self {
        let wakeup = Arc::new(Wakeup::default());
        let waker = Waker::from(wakeup.clone());
        Self { inner: Box::pin(inner), wakeup, waker, due: true }
    }

    /// Registers the task and says whether `inner` should be polled now.
    fn should_poll(&mut self, cx: &Context<'_>) -> bool {
        self.wakeup.task.register(cx.waker());
        // Swapped even when already due, so a wake-up that came before this poll is not
        // counted again after it.
        let woken = self.wakeup.woken.swap(false, Ordering::Acquire);
        std::mem::take(&mut self.due) || woken
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        if !this.should_poll(cx) {
            return Poll::Pending;
        }
        let ready = this.inner.as_mut().poll(&mut Context::from_waker(&this.waker));
        // A finished future is not polled again by its owner; if it is, it answers as it may.
        this.due = ready.is_ready();
        ready
    }
}

impl<S: Stream> Stream for Quiet<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.get_mut();
        if !this.should_poll(cx) {
            return Poll::Pending;
        }
        let ready = this.inner.as_mut().poll_next(&mut Context::from_waker(&this.waker));
        this.due = ready.is_ready();
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn a_quiet_stream_yields_everything_and_wakes_its_task() {
        let (tx, rx) = tokio::sync::mpsc::channel::<u32>(4);
        let mut quiet = Quiet::new(tokio_stream_from(rx));
        tx.send(1).await.expect("open");
        tx.send(2).await.expect("open");
        assert_eq!(quiet.next().await, Some(1));
        assert_eq!(quiet.next().await, Some(2), "an item may follow an item without a wake-up");
        let later = tokio::spawn(async move {
            tokio::task::yield_now().await;
            tx.send(3).await.expect("open");
        });
        assert_eq!(quiet.next().await, Some(3), "a wake-up reaches the waiting task");
        later.await.expect("sender");
        assert_eq!(quiet.next().await, None);
    }

    #[tokio::test]
    async fn a_quiet_future_completes_once_woken() {
        let token = tokio_util::sync::CancellationToken::new();
        let mut quiet = std::pin::pin!(Quiet::new(token.clone().cancelled_owned()));
        assert!(futures_util::poll!(quiet.as_mut()).is_pending());
        assert!(futures_util::poll!(quiet.as_mut()).is_pending(), "not woken: not polled");
        token.cancel();
        assert!(futures_util::poll!(quiet.as_mut()).is_ready());
    }

    /// An mpsc receiver as a stream, without another crate.
    fn tokio_stream_from<T>(mut rx: tokio::sync::mpsc::Receiver<T>) -> impl Stream<Item = T> {
        futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }
}
