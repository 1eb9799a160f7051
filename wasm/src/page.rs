//! The diagram's rows, and its pages: where a burst of events sits down the time axis, and
//! where the bottom edge goes when the paused diagram turns a page of items. Plain Rust over
//! the model's items, tested natively; `render` draws what it says.

use std::collections::VecDeque;

use crate::layout::{self, Point};
use crate::model::{Body, Item, Mark, MarkKind};

/// Every point of `items` that takes a row, newest first: each event, and where an arrow
/// ends, waits and is released. A retry's mark shares the row of its attempt's send when the
/// send is the very next item and the next point: the two are one moment, and a lesson of
/// retries is a third shorter for it.
pub fn row_points(items: &[&Item]) -> Vec<Point> {
    let mut points: Vec<Point> = Vec::new();
    // Each retry's mark with the send right after it, by the mark's seq.
    let mut pairs: Vec<(u64, u64)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        points.push(Point::new(item.seq, item.t_us));
        match &item.body {
            Body::Arrow(arrow) => {
                if let (Some(end), Some(t)) = (arrow.end_seq, arrow.t_end_us) {
                    points.push(Point::new(end, t));
                }
                if let Some(held) = arrow.held() {
                    points.push(Point::new(held.since_seq, held.since_us));
                    if let (Some(seq), Some(t)) = (held.release_seq, held.release_us) {
                        points.push(Point::new(seq, t));
                    }
                }
            }
            Body::Mark(Mark { lane, kind: MarkKind::Retry { attempt, .. }, .. }) => {
                let next = items.get(i + 1).filter(|next| next.seq > item.seq);
                if let Some(next) = next
                    && let Body::Arrow(a) = &next.body
                    && a.from == *lane
                    && a.attempt == Some(*attempt)
                {
                    pairs.push((item.seq, next.seq));
                }
            }
            Body::Mark(_) => {}
        }
    }
    // A heap's sort, not the slice's: the standard library's slice sort costs the bundle
    // kilobytes, and a page's points are too many for an insertion sort.
    let mut points = std::collections::BinaryHeap::from(points).into_sorted_vec();
    points.reverse();
    points.dedup_by_key(|p| p.seq);
    for (mark, send) in pairs {
        // Found in the points, newest first, by a bisection.
        if let Ok(i) = points.binary_search_by(|p| mark.cmp(&p.seq))
            && i > 0
            && points[i - 1].seq == send
        {
            points[i].shares = true;
        }
    }
    points
}

/// The room kept over a page's first row, in row gaps: enough for the label above it (a
/// label's middle sits 1.1 label heights over its row).
pub const HEADROOM_GAPS: f64 = 1.5;

/// How many items, at most, a canvas `room` pixels tall (under the lane headers) lays out:
/// twice as many as it has rows, and some.
pub fn window(room: f64, gap: f64) -> usize {
    (room / gap).ceil() as usize * 2 + 64
}

/// The relay time of `item`'s last row: where it ends, or is released, or itself.
pub fn last_row_us(item: &Item) -> u64 {
    let mut t = item.t_us;
    if let Body::Arrow(arrow) = &item.body {
        t = t.max(arrow.t_end_us.unwrap_or(0));
        if let Some(release) = arrow.held().and_then(|held| held.release_us) {
            t = t.max(release);
        }
    }
    t
}

/// The canvas as a page of items, for `Renderer::turn_page`: its zoom, row gap, the height
/// under the lane headers and the room kept under the newest row.
pub struct Page {
    pub us_per_px: f64,
    pub gap: f64,
    pub below: f64,
    pub bottom: f64,
}

impl Page {
    /// How far above the bottom edge at `end` the first row of `items[target]` stands, laid
    /// out as `Renderer::draw` does, from the same points.
    fn height(&self, items: &VecDeque<Item>, target: usize, end: u64) -> f64 {
        let last = items.partition_point(|item| item.t_us <= end).max(target + 1);
        let first = last.saturating_sub(window(self.below, self.gap)).min(target);
        let told: Vec<&Item> = items.range(first..last).collect();
        let seq = items[target].seq;
        let above = |t: u64| (t as f64 - end as f64) / self.us_per_px;
        layout::rows(&row_points(&told), above, self.gap)
            .find(|&(p, _)| p == seq)
            .map_or(f64::INFINITY, |(_, y)| -y)
    }

    /// Whether `items[target]` stands whole in the page at `end`, with room for a label over it.
    fn fits(&self, items: &VecDeque<Item>, target: usize, end: u64) -> bool {
        self.height(items, target, end) <= self.below - HEADROOM_GAPS * self.gap - self.bottom
    }

    /// The latest bottom edge up to `late` at which `items[target]` still fits (or its own
    /// time, if it never does): the height above the edge only grows with it.
    fn latest_fit(&self, items: &VecDeque<Item>, target: usize, late: u64) -> u64 {
        let (mut early, mut late) = (items[target].t_us.min(late), late);
        if self.fits(items, target, late) {
            return late;
        }
        while late - early > 1 {
            let mid = early + (late - early) / 2;
            if self.fits(items, target, mid) { early = mid } else { late = mid }
        }
        early
    }

    /// The bottom edge a turn `back` (or on) from `end_now` goes to, when the `earlier` first
    /// items are cut by the top edge or above it: see `Renderer::turn_page`.
    pub fn turn(&self, items: &VecDeque<Item>, end_now: u64, earlier: usize, back: bool) -> Option<u64> {
        let newest = items.partition_point(|item| item.t_us <= end_now);
        if back {
            let cut = items.get(earlier.checked_sub(1)?)?;
            // A cut item that ends below the bottom edge (a held datagram) ends the page with
            // its start; one at the edge itself, a canvas of time earlier.
            let room = self.below - HEADROOM_GAPS * self.gap - self.bottom;
            let end = [last_row_us(cut), cut.t_us]
                .into_iter()
                .find(|&t| t < end_now)
                .unwrap_or_else(|| end_now.saturating_sub((room * self.us_per_px) as u64));
            return Some(if self.fits(items, 0, end) { self.latest_fit(items, 0, end_now) } else { end });
        }
        let late = items.back().map(last_row_us)?.max(end_now);
        let cut = (earlier..newest).find(|&i| last_row_us(&items[i]) > end_now);
        // A page that would not move on (an item taller than the canvas) starts at the first
        // item below the edge instead.
        [cut, Some(newest)]
            .into_iter()
            .flatten()
            .filter(|&target| target < items.len())
            .map(|target| self.latest_fit(items, target, late))
            .find(|&end| end > end_now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Arrow;
    use protocol::Payload;

    /// A mark (one row) at each time, in µs.
    fn marks(times: &[u64]) -> VecDeque<Item> {
        let mark = |lane| Body::Mark(Mark { lane, kind: MarkKind::Opened, text: String::new() });
        times
            .iter()
            .enumerate()
            .map(|(i, &t_us)| Item { id: i as u64, seq: i as u64 + 1, t_us, body: mark(0) })
            .collect()
    }

    /// 15-px rows, 1 ms a pixel, 200 px under the headers: room for 12 rows.
    const PAGE: Page = Page { us_per_px: 1_000.0, gap: 15.0, below: 200.0, bottom: 8.0 };

    /// The items the page shows whole at `end`, as `draw` cuts them: a range of indices.
    fn shown(items: &VecDeque<Item>, end: u64) -> std::ops::Range<usize> {
        let newest = items.partition_point(|item| item.t_us <= end);
        let earlier =
            (0..newest).find(|&i| PAGE.height(items, i, end) <= PAGE.below - PAGE.bottom).unwrap_or(newest);
        earlier..newest
    }

    /// A burst of 40 rows in 40 µs, a quiet second, and 30 more one every 50 ms: far more
    /// than a page.
    fn story() -> VecDeque<Item> {
        let burst = (0..40).map(|i| 1_000_000 + i);
        let later = (0..30).map(|i| 2_000_000 + i * 50_000);
        marks(&burst.chain(later).collect::<Vec<_>>())
    }

    #[test]
    fn turning_back_reaches_the_first_item_and_skips_none() {
        let items = story();
        let mut end = items.back().map(last_row_us).unwrap_or(0);
        let mut seen = shown(&items, end);
        let mut turns = 0;
        while seen.start > 0 {
            let next = PAGE.turn(&items, end, seen.start, true).expect("a page back");
            assert!(next < end, "turn {turns} went nowhere");
            let now = shown(&items, next);
            assert!(now.end >= seen.start, "turn {turns} skipped items {}..{}", now.end, seen.start);
            assert!(now.start < seen.start, "turn {turns} showed nothing earlier");
            (end, seen) = (next, now);
            turns += 1;
            assert!(turns < 20, "never reached the start");
        }
        // Time alone would have turned one page for the burst's 40 µs; rows need four.
        assert!(turns >= 4, "{turns} turns for 70 rows on pages of 12");
        // The last turn back fills the page from the first item down: one item more, and the
        // first would not fit.
        let next = items[seen.end].t_us;
        assert!(
            PAGE.fits(&items, 0, end) && !PAGE.fits(&items, 0, next),
            "the start's page ends at {}",
            seen.end
        );
    }

    #[test]
    fn turning_on_from_the_start_reaches_the_end_and_skips_none() {
        let items = story();
        let mut end = 1_000_000 + 5;
        let mut seen = shown(&items, end);
        let mut turns = 0;
        while seen.end < items.len() {
            let next = PAGE.turn(&items, end, seen.start, false).expect("a page on");
            assert!(next > end, "turn {turns} went nowhere");
            let now = shown(&items, next);
            assert!(now.start <= seen.end, "turn {turns} skipped items {}..{}", seen.end, now.start);
            (end, seen) = (next, now);
            turns += 1;
            assert!(turns < 20, "never reached the end");
        }
        assert_eq!(PAGE.turn(&items, end, seen.start, false), None, "a turn on from the end");
    }

    #[test]
    fn a_retrys_mark_shares_the_row_of_its_attempts_send_only() {
        let (client, server, other) = (0, 1, 2);
        let retry = |attempt| {
            Body::Mark(Mark {
                lane: client,
                kind: MarkKind::Retry { attempt, waited_ms: 100 },
                text: String::new(),
            })
        };
        let send = |from, attempt| {
            let arrow = Arrow { attempt: Some(attempt), ..Arrow::new(from, server, 5, &Payload::default()) };
            Body::Arrow(arrow)
        };
        let items: Vec<Item> = [
            (1, retry(2), 100),
            (2, send(client, 2), 100),
            // Attempt 3's mark, then another socket's send before attempt 3's own.
            (3, retry(3), 300),
            (4, send(other, 3), 300),
            (5, send(client, 3), 300),
            // A mark for attempt 5 and the send of attempt 4: not the one it announces.
            (6, retry(5), 700),
            (7, send(client, 4), 700),
        ]
        .into_iter()
        .map(|(seq, body, t_ms)| Item { id: seq, seq, t_us: t_ms * 1_000, body })
        .collect();
        let refs: Vec<&Item> = items.iter().collect();
        let shares: Vec<(u64, bool)> = row_points(&refs).iter().map(|p| (p.seq, p.shares)).collect();
        assert_eq!(
            shares,
            [(7, false), (6, false), (5, false), (4, false), (3, false), (2, false), (1, true)]
        );
    }

    #[test]
    fn a_turn_back_with_nothing_above_or_no_items_goes_nowhere() {
        let items = story();
        assert_eq!(PAGE.turn(&items, 3_000_000, 0, true), None);
        assert_eq!(PAGE.turn(&VecDeque::new(), 3_000_000, 0, true), None);
        assert_eq!(PAGE.turn(&VecDeque::new(), 3_000_000, 0, false), None);
    }
}
