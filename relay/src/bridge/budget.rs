//! A session's send budget: token buckets, so one browser tab cannot flood a server.
//!
//! Two buckets, one for datagrams and one for their bytes, each holding up to one second's
//! worth and refilling continuously. A `send` command needs a datagram token and its bytes, or
//! is refused. Retries, heartbeats and crowds, which the relay sends on the session's behalf,
//! are always sent but are charged too, possibly into debt; the debt is paid back before the
//! next `send` is allowed. So over any stretch of time a session's datagrams and bytes per
//! second stay near the limits, whatever mix of sends, retries, heartbeats and crowds.
//!
//! The byte budget is what protects the relay, not a small datagram cap: any datagram up to
//! UDP's 65,507 bytes may be sent, but not a flood of them.

use std::time::Instant;

/// A token bucket holding at most one second of `rate`.
#[derive(Debug, Clone)]
struct Bucket {
    rate: f64,
    tokens: f64,
}

impl Bucket {
    fn new(rate: f64) -> Self {
        Self { rate, tokens: rate }
    }

    fn refill(&mut self, seconds: f64) {
        self.tokens = (self.tokens + seconds * self.rate).min(self.rate);
    }

    /// Whether `amount` may be taken. More than a whole second's worth may be taken from a
    /// full bucket, so that no single datagram is refused forever.
    fn has(&self, amount: f64) -> bool {
        self.tokens >= amount.min(self.rate)
    }

    /// Takes `amount`, into debt if need be; debt is capped at one second's worth, so a
    /// session is never locked out for longer than that.
    fn take(&mut self, amount: f64) {
        self.tokens = (self.tokens - amount).max(-self.rate);
    }
}

/// Which budget a refused send was over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Datagrams,
    Bytes,
}

#[derive(Debug, Clone)]
pub struct Budget {
    datagrams: Bucket,
    bytes: Bucket,
    updated: Instant,
}

impl Budget {
    pub fn new(per_sec: u32, bytes_per_sec: u64, now: Instant) -> Self {
        Self {
            datagrams: Bucket::new(f64::from(per_sec.max(1))),
            // Exact for any budget a flag can give (below 2^53 bytes a second).
            bytes: Bucket::new(bytes_per_sec.max(1) as f64),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.datagrams.refill(elapsed);
        self.bytes.refill(elapsed);
        self.updated = self.updated.max(now);
    }

    /// Takes one datagram of `bytes` for a send the session asked for, or says which budget it
    /// is over.
    pub fn take(&mut self, now: Instant, bytes: usize) -> Result<(), Over> {
        self.refill(now);
        let bytes = bytes as f64;
        if !self.datagrams.has(1.0) {
            return Err(Over::Datagrams);
        }
        if !self.bytes.has(bytes) {
            return Err(Over::Bytes);
        }
        self.datagrams.take(1.0);
        self.bytes.take(bytes);
        Ok(())
    }

    /// [`Budget::take`], as a yes or no.
    pub fn try_take(&mut self, now: Instant, bytes: usize) -> bool {
        self.take(now, bytes).is_ok()
    }

    /// Charges a send the relay makes anyway (a retry, a heartbeat, a crowd's message).
    pub fn charge(&mut self, now: Instant, bytes: usize) {
        self.refill(now);
        self.datagrams.take(1.0);
        self.bytes.take(bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut budget = Budget::new(10, 1 << 20, t0);
        assert_eq!((0..15).filter(|_| budget.try_take(t0, 1)).count(), 10);
        assert!(!budget.try_take(t0 + Duration::from_millis(99), 1));
        assert!(budget.try_take(t0 + Duration::from_millis(100), 1));
        assert!(!budget.try_take(t0 + Duration::from_millis(100), 1));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..15).filter(|_| budget.try_take(later, 1)).count(), 10);
    }

    #[test]
    fn bytes_are_budgeted_too_and_any_single_datagram_fits_a_full_bucket() {
        let t0 = Instant::now();
        let mut budget = Budget::new(1000, 100_000, t0);
        assert_eq!(budget.take(t0, 65_507), Ok(()));
        assert_eq!(budget.take(t0, 65_507), Err(Over::Bytes), "34,493 bytes are left");
        assert_eq!(budget.take(t0, 30_000), Ok(()));
        let mut small = Budget::new(1000, 1_000, t0);
        assert_eq!(small.take(t0, 65_507), Ok(()), "larger than a second's worth, from a full bucket");
        assert_eq!(small.take(t0 + Duration::from_millis(999), 1), Err(Over::Bytes), "and paid back");
        assert_eq!(small.take(t0 + Duration::from_secs(3), 1), Ok(()));
    }

    #[test]
    fn retries_and_heartbeats_go_into_debt_that_delays_the_next_send() {
        let t0 = Instant::now();
        let mut budget = Budget::new(10, 1 << 20, t0);
        for _ in 0..15 {
            budget.charge(t0, 4);
        }
        assert_eq!(
            budget.take(t0 + Duration::from_millis(500), 1),
            Err(Over::Datagrams),
            "5 tokens of debt remain"
        );
        assert!(budget.try_take(t0 + Duration::from_millis(600), 1));
    }

    #[test]
    fn debt_is_capped_at_one_second() {
        let t0 = Instant::now();
        let mut budget = Budget::new(10, 1 << 20, t0);
        for _ in 0..1000 {
            budget.charge(t0, 1 << 20);
        }
        assert!(budget.try_take(t0 + Duration::from_millis(2100), 1));
    }
}
