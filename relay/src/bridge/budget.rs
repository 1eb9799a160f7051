//! A session's send budget: a token bucket, so one browser tab cannot flood a server.
//!
//! The bucket holds up to one second's worth of sends and refills continuously. A `send`
//! command needs a whole token or is refused. Retries and heartbeats, which the relay sends on
//! the session's behalf, are always sent but are charged too, possibly into debt; the debt is
//! paid back before the next `send` is allowed. So over any stretch of time a session's
//! datagrams per second stay near the limit, whatever mix of sends, retries and heartbeats.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct Budget {
    /// Tokens per second, and also the bucket's size (a burst of one second).
    rate: f64,
    tokens: f64,
    updated: Instant,
}

impl Budget {
    pub fn new(per_sec: u32, now: Instant) -> Self {
        let rate = f64::from(per_sec.max(1));
        Self { rate, tokens: rate, updated: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated = self.updated.max(now);
    }

    /// Takes a token for a send the session asked for; false means "over the limit".
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Charges a send the relay makes anyway (a retry or a heartbeat). Debt is capped at one
    /// second's worth, so a session is never locked out for longer than that.
    pub fn charge(&mut self, now: Instant) {
        self.refill(now);
        self.tokens = (self.tokens - 1.0).max(-self.rate);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut budget = Budget::new(10, t0);
        assert_eq!((0..15).filter(|_| budget.try_take(t0)).count(), 10);
        assert!(!budget.try_take(t0 + Duration::from_millis(99)));
        assert!(budget.try_take(t0 + Duration::from_millis(100)));
        assert!(!budget.try_take(t0 + Duration::from_millis(100)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| budget.try_take(later)).count(), 10);
    }

    #[test]
    fn retries_and_heartbeats_go_into_debt_that_delays_the_next_send() {
        let t0 = Instant::now();
        let mut budget = Budget::new(10, t0);
        for _ in 0..15 {
            budget.charge(t0);
        }
        assert!(!budget.try_take(t0 + Duration::from_millis(500)), "5 tokens of debt remain to pay");
        assert!(budget.try_take(t0 + Duration::from_millis(600)));
    }

    #[test]
    fn debt_is_capped_at_one_second() {
        let t0 = Instant::now();
        let mut budget = Budget::new(10, t0);
        for _ in 0..1000 {
            budget.charge(t0);
        }
        assert!(budget.try_take(t0 + Duration::from_millis(1100)));
    }
}
