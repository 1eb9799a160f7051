//! The page's connection to the relay as a pure state machine: what state it is in, when to
//! try again after the relay went away, and how long to wait the time after. `app.rs` owns the
//! WebSocket and the timer and asks this module what to do; `cargo test -p wasm` checks the
//! backoff with explicit times, no browser needed (the sans-I/O shape of STYLE.md).

/// Where the connection is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnState {
    Connecting,
    Open,
    Closed,
}

/// The first wait before reconnecting, in milliseconds; it doubles on each failure.
pub const FIRST_BACKOFF_MS: f64 = 500.0;
/// The longest wait: a classroom's relay that restarts is found again within 8 s.
pub const MAX_BACKOFF_MS: f64 = 8_000.0;

/// The connection closed (or could not open) at `now_ms`: when to try again, and the wait
/// after that. A second report of the same closing changes nothing.
pub fn after_close(state: ConnState, now_ms: f64, retry_at_ms: f64, backoff_ms: f64) -> (f64, f64) {
    if state == ConnState::Closed {
        (retry_at_ms, backoff_ms)
    } else {
        (now_ms + backoff_ms, (backoff_ms * 2.0).min(MAX_BACKOFF_MS))
    }
}

/// Whether the timer should open a new connection at `now_ms`.
pub fn reconnect_due(state: ConnState, now_ms: f64, retry_at_ms: f64) -> bool {
    state == ConnState::Closed && now_ms >= retry_at_ms
}

/// Seconds until the next attempt, for the status line.
pub fn wait_s(now_ms: f64, retry_at_ms: f64) -> f64 {
    ((retry_at_ms - now_ms) / 1000.0).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_to_eight_seconds_and_one_closing_counts_once() {
        let (mut state, mut retry_at, mut backoff) = (ConnState::Open, 0.0, FIRST_BACKOFF_MS);
        let mut waits = Vec::new();
        let mut now = 1_000.0;
        for _ in 0..6 {
            (retry_at, backoff) = after_close(state, now, retry_at, backoff);
            state = ConnState::Closed;
            // The close event and a failed send both report it: still one wait.
            assert_eq!(after_close(state, now + 1.0, retry_at, backoff), (retry_at, backoff));
            waits.push(retry_at - now);
            assert!(!reconnect_due(state, retry_at - 1.0, retry_at));
            assert!(reconnect_due(state, retry_at, retry_at));
            now = retry_at;
            state = ConnState::Connecting;
        }
        assert_eq!(waits, [500.0, 1_000.0, 2_000.0, 4_000.0, 8_000.0, 8_000.0]);
        assert!(!reconnect_due(ConnState::Open, 1e12, 0.0), "an open connection is never replaced");
        assert_eq!(wait_s(1_000.0, 3_400.0), 2.4);
        assert_eq!(wait_s(5_000.0, 3_400.0), 0.0);
    }
}
