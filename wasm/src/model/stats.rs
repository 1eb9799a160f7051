//! The stats panel's counters: everything ever seen, including what left the window, and the
//! RTT histogram. [`super::Model`] counts; `dom.rs` shows.

/// Upper bounds of the RTT histogram's buckets, in microseconds; the last bucket is open.
pub const RTT_BUCKETS_US: [u64; 11] =
    [250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000];

/// Counters over everything ever seen, including items folded out of the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Stats {
    /// Datagrams that left a socket: a send the kernel refused is taken back out.
    pub sent: u64,
    /// Datagrams a client got: answers, chat copies, and a server's answers to outside clients.
    pub received: u64,
    pub dropped: u64,
    /// Datagrams that reached no socket at all (sent to `nobody`).
    pub vanished: u64,
    /// Sends the kernel refused (`EMSGSIZE`).
    pub not_sent: u64,
    /// Datagrams a small receive buffer cut short.
    pub cut: u64,
    /// Replies the client took as the answer to another attempt than the one they answer.
    pub misattributed: u64,
    pub retried: u64,
    /// Datagrams the link lost on their way to a server, and on their way back.
    pub link_lost_in: u64,
    pub link_lost_out: u64,
    /// Copies the link made (each a datagram of its own).
    pub link_copies: u64,
    /// Datagrams the link held back, and how many of those were held to be reordered.
    pub link_held: u64,
    pub link_reordered: u64,
    pub duplicates: u64,
    pub late: u64,
    pub gave_up: u64,
    pub refused: u64,
    /// Datagrams the lossy server read, and how many of those it dropped.
    pub lossy_seen: u64,
    pub lossy_dropped: u64,
    /// The lossy server's drop rate as last configured, when known.
    pub configured_drop: Option<f64>,
    pub rtt_buckets: [u64; RTT_BUCKETS_US.len() + 1],
    pub rtt_count: u64,
    pub rtt_sum_us: u64,
    pub events: u64,
    /// Items that left the window.
    pub folded: u64,
    /// Events the relay skipped because this page fell behind.
    pub missed: u64,
}

impl Stats {
    /// The lossy server's measured drop rate, once it has seen a datagram.
    pub fn measured_loss(&self) -> Option<f64> {
        (self.lossy_seen > 0).then(|| self.lossy_dropped as f64 / self.lossy_seen as f64)
    }

    pub fn mean_rtt_us(&self) -> Option<u64> {
        self.rtt_sum_us.checked_div(self.rtt_count)
    }

    pub(super) fn record_rtt(&mut self, rtt_us: u64) {
        let bucket = RTT_BUCKETS_US.iter().position(|&upper| rtt_us < upper).unwrap_or(RTT_BUCKETS_US.len());
        self.rtt_buckets[bucket] += 1;
        self.rtt_count += 1;
        self.rtt_sum_us = self.rtt_sum_us.saturating_add(rtt_us);
    }
}
