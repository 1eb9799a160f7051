//! Helpers shared by the benchmark binaries in `src/bin/`.
//!
//! - [`runtime`]: builds the tokio runtime a load generator runs on. One thread means a
//!   `current_thread` runtime, which is what `loadgen` and `chatfan` use by default: on a
//!   2-core machine the client then takes one core and leaves the other to the server under test,
//!   the same for every server, so the comparison stays fair.
//! - [`Latency`]: an RTT histogram in nanoseconds and its p50/p99/max in microseconds.
//! - [`parse_duration`]: `2s`, `250ms`, as every flag of these tools takes them.
//!
//! The binaries themselves (`loadgen`, `tokio-echo`, `chatfan`, `busbench`) are described in
//! their own files and in `BENCHMARKS.md` at the repository root.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Parses a human duration such as `2s`, `500ms` or `1m` for clap.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|e| format!("{e} (try 2s or 250ms)"))
}

/// A tokio runtime with `threads` worker threads; 1 gives the single-threaded `current_thread`
/// flavour, where every task runs on the thread that calls `block_on`.
pub fn runtime(threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    }
}

/// Round-trip (or delivery) times, recorded in nanoseconds.
///
/// An HDR histogram keeps 3 significant digits at any scale with a fixed amount of memory, so a
/// long run does not grow, and two histograms merge exactly (one per flow, added at the end).
#[derive(Debug, Clone)]
pub struct Latency {
    hist: Histogram<u64>,
}

/// Percentiles in microseconds, as they go into the JSON line.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct LatencySummary {
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

impl Latency {
    /// The longest time the histogram can hold: 60 s, far above any per-request timeout.
    const HIGHEST_NS: u64 = 60_000_000_000;

    pub fn new() -> Self {
        // 1 ns .. 60 s with 3 significant digits: about 200 KB per histogram.
        let hist = Histogram::new_with_bounds(1, Self::HIGHEST_NS, 3)
            .expect("the bounds 1..60e9 with 3 digits are valid for hdrhistogram");
        Self { hist }
    }

    /// Records one measurement; durations beyond the range are clamped to the top.
    pub fn record(&mut self, took: Duration) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX).clamp(1, Self::HIGHEST_NS);
        self.hist.saturating_record(ns);
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Latency) {
        // Both histograms have the same bounds, so adding cannot fail.
        self.hist.add(&other.hist).expect("histograms built by Latency::new have equal bounds");
    }

    /// How many measurements were recorded.
    pub fn len(&self) -> u64 {
        self.hist.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    /// p50, p99 and max in microseconds; zeros when nothing was recorded.
    pub fn summary(&self) -> LatencySummary {
        if self.hist.is_empty() {
            return LatencySummary::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        LatencySummary {
            p50_us: us(self.hist.value_at_quantile(0.50)),
            p99_us: us(self.hist.value_at_quantile(0.99)),
            max_us: us(self.hist.max()),
        }
    }
}

impl Default for Latency {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut a = Latency::new();
        let mut b = Latency::new();
        for us in 1..=50 {
            a.record(Duration::from_micros(us));
        }
        for us in 51..=100 {
            b.record(Duration::from_micros(us));
        }
        a.merge(&b);
        let s = a.summary();
        assert_eq!(a.len(), 100);
        assert!((s.p50_us - 50.0).abs() < 0.1, "{s:?}");
        assert!((s.p99_us - 99.0).abs() < 0.1, "{s:?}");
        assert!((s.max_us - 100.0).abs() < 0.1, "{s:?}");
    }

    #[test]
    fn durations_parse_like_the_relay_flags() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("soon").is_err());
    }
}
