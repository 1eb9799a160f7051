//! Where the diagram's words go: each label takes the first of its candidate places that
//! touches no line and no label already placed, so labels never cross each other or the
//! arrows. Pure geometry, no canvas: `render` measures the words and draws them where this
//! says, and the tests here check the promise natively.
//!
//! Greedy, in the order the labels are asked for (the renderer asks for the ones that must be
//! read first: the selected arrow's, what the link did). A label with no free place is left
//! out, unless it must be read: then it takes its first place, over whatever is there.
//!
//! Where the events themselves go down the time axis is here too ([`rows`]), with the zoom at
//! which a whole story stands inside the canvas ([`zoom_to_fit`]) and the scale of the
//! projector's drawing ([`projector_scale`]).

/// A label's box: its centre and its size, in CSS pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub cx: f64,
    pub cy: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    fn overlaps(&self, other: &Rect) -> bool {
        (self.cx - other.cx).abs() * 2.0 < self.w + other.w
            && (self.cy - other.cy).abs() * 2.0 < self.h + other.h
    }

    fn inside(&self, bounds: &Rect) -> bool {
        (self.cx - bounds.cx).abs() * 2.0 <= bounds.w - self.w
            && (self.cy - bounds.cy).abs() * 2.0 <= bounds.h - self.h
    }

    /// Whether the segment from `a` to `b` passes through this box (Liang–Barsky clipping).
    pub fn crossed_by(&self, (ax, ay): (f64, f64), (bx, by): (f64, f64)) -> bool {
        let (x0, x1) = (self.cx - self.w / 2.0, self.cx + self.w / 2.0);
        let (y0, y1) = (self.cy - self.h / 2.0, self.cy + self.h / 2.0);
        let (dx, dy) = (bx - ax, by - ay);
        let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
        for (p, q) in [(-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)] {
            if p == 0.0 {
                if q < 0.0 {
                    return false;
                }
            } else {
                let t = q / p;
                if p < 0.0 {
                    t0 = t0.max(t);
                } else {
                    t1 = t1.min(t);
                }
                if t0 > t1 {
                    return false;
                }
            }
        }
        true
    }
}

/// A straight piece of a line: an arrow's, or a wait on the link.
pub type Segment = ((f64, f64), (f64, f64));

/// One label to place.
#[derive(Clone, Debug)]
pub struct Wanted {
    /// Its size, measured by the renderer.
    pub w: f64,
    pub h: f64,
    /// Where its centre may go, best first.
    pub at: Vec<(f64, f64)>,
    /// Read it even if every place is taken.
    pub must: bool,
    /// Asked right after those that must be read, before the rest: a lesson's point.
    pub first: bool,
}

/// `labels`, given oldest first, in the order they ask for a place: those that must be read,
/// then those asked first, then the rest, each newest first.
pub fn asking_order<T>(labels: Vec<T>, want: impl Fn(&T) -> &Wanted) -> Vec<T> {
    // Partitions rather than a sort: the standard library's sort costs the bundle kilobytes.
    let (mut must, rest): (Vec<T>, Vec<T>) = labels.into_iter().rev().partition(|l| want(l).must);
    let (mut first, mut rest): (Vec<T>, Vec<T>) = rest.into_iter().partition(|l| want(l).first);
    must.append(&mut first);
    must.append(&mut rest);
    must
}

/// Places `wanted` in order among the `lines` (segments) inside `bounds`, keeping `pad`
/// pixels clear around each label. Returns each label's box, or `None` where it was left out.
///
/// It runs every frame over every label and line in view, so each place tried is checked
/// only against what lies in the same bands of height ([`Bands`]), not against everything:
/// the same answer as checking everything, at a fraction of the cost on a busy diagram.
pub fn place(wanted: &[Wanted], lines: &[Segment], bounds: Rect, pad: f64) -> Vec<Option<Rect>> {
    let bands = Bands::new(&bounds);
    let mut lines_in: Vec<Vec<usize>> = vec![Vec::new(); bands.count];
    for (i, ((_, ay), (_, by))) in lines.iter().enumerate() {
        for band in bands.span(ay.min(*by), ay.max(*by)) {
            lines_in[band].push(i);
        }
    }
    let mut labels_in: Vec<Vec<usize>> = vec![Vec::new(); bands.count];
    let mut placed: Vec<Rect> = Vec::with_capacity(wanted.len());
    let mut out = Vec::with_capacity(wanted.len());
    for label in wanted {
        let boxed = |&(cx, cy): &(f64, f64)| Rect { cx, cy, w: label.w, h: label.h };
        let free = label.at.iter().map(boxed).find(|r| {
            let padded = Rect { w: r.w + 2.0 * pad, h: r.h + 2.0 * pad, ..*r };
            let near = bands.span(padded.cy - padded.h / 2.0, padded.cy + padded.h / 2.0);
            r.inside(&bounds)
                && !near.clone().any(|b| labels_in[b].iter().any(|&p| placed[p].overlaps(&padded)))
                && !near
                    .into_iter()
                    .any(|b| lines_in[b].iter().any(|&l| padded.crossed_by(lines[l].0, lines[l].1)))
        });
        // A label that must be read takes its first place that is in view, over what is there.
        let forced =
            || label.at.iter().map(boxed).find(|r| r.inside(&bounds)).or_else(|| label.at.first().map(boxed));
        let chosen = free.or_else(|| label.must.then(forced).flatten());
        if let Some(r) = chosen {
            for band in bands.span(r.cy - r.h / 2.0, r.cy + r.h / 2.0) {
                labels_in[band].push(placed.len());
            }
            placed.push(r);
        }
        out.push(chosen);
    }
    out
}

/// `text` in lines no wider than `max` as `width` measures them: broken at spaces, and between
/// any two characters of a script written without them (Chinese). A word wider than a line
/// has a line of its own, and a Chinese comma or stop stays with the character before it. The
/// lines are then made as even as their number allows (a word alone on the last goes only if
/// no narrower width keeps as few lines).
pub fn wrap(text: &str, max: f64, width: &dyn Fn(&str) -> f64) -> Vec<String> {
    let lines = fill_lines(text, max, width);
    if lines.len() > 1 {
        // The narrowest width, in steps of 5% from an even share, that needs no more lines.
        let even = width(text) / lines.len() as f64;
        for step in 0..20 {
            let narrower = even * (1.0 + 0.05 * f64::from(step));
            if narrower >= max {
                break;
            }
            let tried = fill_lines(text, narrower, width);
            if tried.len() == lines.len() {
                return tried;
            }
        }
    }
    lines
}

/// `text` in lines no wider than `max`, each as full as it can be.
fn fill_lines(text: &str, max: f64, width: &dyn Fn(&str) -> f64) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split(' ') {
        let unspaced = word.chars().any(|c| c >= '\u{2E80}');
        let mut rest = word;
        let mut first = true;
        while let Some(c) = rest.chars().next() {
            // A Chinese word goes a character at a time, any other whole.
            let len = if unspaced { c.len_utf8() } else { rest.len() };
            let (part, after) = rest.split_at(len);
            let kept = line.len();
            if kept > 0 && first {
                line.push(' ');
            }
            line.push_str(part);
            // Never a line that starts with a closing mark.
            let closing = unspaced && "，。、：；！？）」』》".contains(part);
            if kept > 0 && !closing && width(&line) > max {
                line.truncate(kept);
                lines.push(std::mem::take(&mut line));
                line.push_str(part);
            }
            rest = after;
            first = false;
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// Where an arrow's note may go, best first: under the line (`under`, the places just under
/// it), or a line further down; with no room below (the newest arrow of a live view sits on
/// the bottom edge), beside the arrow, past its right end or its left (`ends`), at `mid_y`;
/// and last a line over the headline's places (`over`, the places just over the line).
/// `w` is the note's width, `s` the drawing's scale.
pub fn note_places(
    under: &[(f64, f64)],
    over: &[(f64, f64)],
    ends: (f64, f64),
    mid_y: f64,
    w: f64,
    s: f64,
) -> Vec<(f64, f64)> {
    // Loops rather than chained iterators: smaller in the bundle.
    let mut at = Vec::with_capacity(2 * under.len() + 2 + over.len());
    at.extend_from_slice(under);
    for &(x, y) in under {
        at.push((x, y + 16.0 * s));
    }
    let beside = w / 2.0 + 8.0 * s;
    at.push((ends.1 + beside, mid_y));
    at.push((ends.0 - beside, mid_y));
    for &(x, y) in over {
        at.push((x, y - 16.0 * s));
    }
    at
}

/// A moment on the time axis that takes a row: `seq`'s event at `t_us`, or where an arrow
/// ends, waits or is released. One that `shares` stands on the row of the point below it (the
/// next newer) instead of a row of its own, as a retry's mark does on its attempt's send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    pub seq: u64,
    pub t_us: u64,
    pub shares: bool,
}

impl Point {
    /// A point with a row of its own.
    pub const fn new(seq: u64, t_us: u64) -> Self {
        Self { seq, t_us, shares: false }
    }
}

/// Where events sit down the time axis. `points` are newest first; each is at `time_y` of its
/// time, but never closer than `gap` pixels to the one below it, so a burst of loopback
/// traffic (microseconds apart) still reads as a sequence rather than one smudge. A point that
/// shares its row takes the one below it.
pub fn rows(points: &[Point], time_y: impl Fn(u64) -> f64, gap: f64) -> impl Iterator<Item = (u64, f64)> {
    let mut below = f64::INFINITY;
    points.iter().map(move |p| {
        if !(p.shares && below.is_finite()) {
            below = time_y(p.t_us).min(below - gap);
        }
        (p.seq, below)
    })
}

/// How far above the time `end` [`rows`] puts the oldest of `points` (newest first, none
/// after `end`), at `us_per_px`.
pub fn rows_height(points: &[Point], end: u64, us_per_px: f64, gap: f64) -> f64 {
    let mut row = f64::NEG_INFINITY;
    for p in points {
        if !(p.shares && row.is_finite()) {
            row = (end.saturating_sub(p.t_us) as f64 / us_per_px).max(row + gap);
        }
    }
    row.max(0.0)
}

/// The closest zoom from `at_least` to `at_most` µs per pixel at which the rows of `points`
/// (newest first, none after `end`) stand within `room` pixels above `end`, or `None` if
/// none does: there are too many for the room even when their time gaps close up. Zooming out
/// shortens the quiet stretches between events, never the rows of a burst, so a story of many
/// rows needs more than its length in time divided by the height.
pub fn zoom_to_fit(
    points: &[Point],
    end: u64,
    room: f64,
    gap: f64,
    at_least: f64,
    at_most: f64,
) -> Option<f64> {
    let fits = |us_per_px: f64| rows_height(points, end, us_per_px, gap) <= room;
    if fits(at_least) {
        return Some(at_least);
    }
    if !fits(at_most) {
        return None;
    }
    // The height only shrinks as the zoom grows: halve the ratio between the two ends until
    // they are within 1% of each other.
    let (mut low, mut high) = (at_least, at_most);
    while high / low > 1.01 {
        let mid = (low * high).sqrt();
        if fits(mid) { high = mid } else { low = mid }
    }
    Some(high)
}

/// The diagram's scale (1 on a laptop) in the projector view, in a window `height` CSS pixels high. The
/// page's type there is 2.04% of the window's height, from the laptop's 15 px up to 22 px
/// (`body.projector` in web/style.css), and the canvas's grows with it: a 720p projector
/// shows as much of the story as a laptop does, a 1080p one the largest type.
pub fn projector_scale(height: f64) -> f64 {
    const LAPTOP_PX: f64 = 15.0;
    const LARGEST_PX: f64 = 22.0;
    const SHARE_OF_HEIGHT: f64 = 0.0204;
    (height * SHARE_OF_HEIGHT).clamp(LAPTOP_PX, LARGEST_PX) / LAPTOP_PX
}

/// A live diagram's time stops once its newest event is this share of the view old.
pub const QUIET_HOLD: f64 = 0.25;
/// How far behind its edge a live view may be and still jump there in one frame.
pub const LIVE_SNAP_US: u64 = 100_000;

/// Where a live view of `span_us` ends, at `now_us` with the newest event at `latest_us`: now,
/// while things happen; once the newest event is [`QUIET_HOLD`] of the view old, time stops
/// there, so that what happened last stays on screen (a projector between a student's
/// datagrams, or opened after the traffic) rather than scrolling away and leaving the diagram
/// empty. The next event starts time again.
pub fn live_end(now_us: u64, latest_us: u64, span_us: f64) -> u64 {
    now_us.min(latest_us.saturating_add((span_us.max(0.0) * QUIET_HOLD) as u64))
}

/// A live view's next end, from `end_us` toward its edge `target_us`: there at once when it is
/// close ([`LIVE_SNAP_US`]) or more than `span_us` away (back to live from an hour ago), else
/// a third of the way each frame, so the first event after a quiet spell glides in.
pub fn follow_live(end_us: u64, target_us: u64, span_us: f64) -> u64 {
    let behind = target_us.saturating_sub(end_us);
    if behind <= LIVE_SNAP_US || behind as f64 > span_us { target_us } else { end_us + behind / 3 }
}

/// The diagram cut into horizontal bands [`Bands::HEIGHT`] pixels high. A line or a label is
/// filed under every band its height touches (what lies above or below the diagram, under the
/// first or the last), so two things that overlap always share a band.
struct Bands {
    top: f64,
    count: usize,
}

impl Bands {
    const HEIGHT: f64 = 32.0;

    fn new(bounds: &Rect) -> Self {
        let count = (bounds.h / Self::HEIGHT).ceil().clamp(1.0, 4096.0) as usize;
        Self { top: bounds.cy - bounds.h / 2.0, count }
    }

    fn band(&self, y: f64) -> usize {
        let i = ((y - self.top) / Self::HEIGHT).floor();
        if i.is_nan() || i < 0.0 { 0 } else { (i as usize).min(self.count - 1) }
    }

    /// The bands from height `y0` down to `y1`.
    fn span(&self, y0: f64, y1: f64) -> std::ops::RangeInclusive<usize> {
        self.band(y0)..=self.band(y1)
    }
}

/// The address under a lane's header: the port, but for an outside client on another machine
/// (a student's) with room for it, told by its whole address. An IPv4 peer of a dual-stack
/// socket reads as IPv4.
pub fn lane_address(addr: std::net::SocketAddr, whole: bool) -> String {
    let ip = addr.ip().to_canonical();
    if whole && !ip.is_loopback() {
        std::net::SocketAddr::new(ip, addr.port()).to_string()
    } else {
        format!(":{}", addr.port())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_view_follows_now_then_holds_what_happened_last() {
        const SPAN: f64 = 4_000_000.0; // a view of 4 s: time stops 1 s after the newest event
        // While things happen, the view ends now.
        assert_eq!(live_end(10_500_000, 10_000_000, SPAN), 10_500_000);
        assert_eq!(live_end(11_000_000, 10_000_000, SPAN), 11_000_000);
        // Quiet: it stops a quarter of the view after the newest event, however long after.
        assert_eq!(live_end(11_000_001, 10_000_000, SPAN), 11_000_000);
        assert_eq!(live_end(3_600_000_000, 10_000_000, SPAN), 11_000_000);
        // An empty canvas holds nothing.
        assert_eq!(live_end(20_000_000, 10_000_000, -5.0), 10_000_000);
    }

    #[test]
    fn a_live_view_glides_to_its_edge_after_a_quiet_spell() {
        const SPAN: f64 = 4_000_000.0;
        // Each frame while following: at the edge at once.
        assert_eq!(follow_live(10_000_000, 10_016_000, SPAN), 10_016_000);
        assert_eq!(follow_live(10_000_000, 10_000_000 + LIVE_SNAP_US, SPAN), 10_000_000 + LIVE_SNAP_US);
        // The first event after 20 s of quiet, held 1 s after the last: 19 s behind, over a
        // view away, so at once; 0.9 s behind glides, a third a frame, then snaps.
        assert_eq!(follow_live(11_000_000, 30_000_000, SPAN), 30_000_000);
        let mut end = 11_000_000;
        let mut frames = 0;
        while end < 11_900_000 {
            let next = follow_live(end, 11_900_000, SPAN);
            assert!(next > end, "no frame stands still");
            end = next;
            frames += 1;
        }
        assert_eq!((end, frames), (11_900_000, 7));
        // A view past its edge (a paused view let go) comes back to it.
        assert_eq!(follow_live(12_000_000, 11_000_000, SPAN), 11_000_000);
    }

    const BOUNDS: Rect = Rect { cx: 500.0, cy: 400.0, w: 1000.0, h: 800.0 };

    fn label(at: &[(f64, f64)]) -> Wanted {
        Wanted { w: 80.0, h: 14.0, at: at.to_vec(), must: false, first: false }
    }

    #[test]
    fn a_lane_names_a_student_machine_by_its_address_and_this_one_by_the_port() {
        let at = |s: &str| s.parse::<std::net::SocketAddr>().expect("address");
        assert_eq!(lane_address(at("192.0.2.7:40522"), true), "192.0.2.7:40522");
        assert_eq!(lane_address(at("[::ffff:192.0.2.7]:40522"), true), "192.0.2.7:40522");
        assert_eq!(lane_address(at("[2001:db8::7]:40522"), true), "[2001:db8::7]:40522");
        assert_eq!(lane_address(at("127.0.0.1:40522"), true), ":40522");
        assert_eq!(lane_address(at("[::ffff:127.0.0.1]:40522"), true), ":40522");
        assert_eq!(
            lane_address(at("192.0.2.2:10004"), false),
            ":10004",
            "a server, a page's socket, a narrow column"
        );
    }

    #[test]
    fn a_segment_crosses_a_box_only_where_it_passes_through_it() {
        let r = Rect { cx: 0.0, cy: 0.0, w: 10.0, h: 10.0 };
        assert!(r.crossed_by((-20.0, 0.0), (20.0, 0.0)));
        assert!(r.crossed_by((-20.0, -20.0), (20.0, 20.0)), "corner to corner");
        assert!(r.crossed_by((1.0, 1.0), (2.0, 2.0)), "wholly inside");
        assert!(!r.crossed_by((-20.0, 8.0), (20.0, 8.0)), "above it");
        assert!(!r.crossed_by((-20.0, 0.0), (-6.0, 0.0)), "stops short");
        assert!(!r.crossed_by((6.0, -20.0), (30.0, 20.0)), "passes beside");
    }

    #[test]
    fn a_label_moves_to_its_next_place_rather_than_cover_a_line_or_a_label() {
        let line = ((0.0, 100.0), (1000.0, 100.0));
        let first = label(&[(500.0, 100.0), (500.0, 90.0)]);
        let second = label(&[(500.0, 90.0), (500.0, 110.0), (500.0, 130.0)]);
        let boxes = place(&[first, second], &[line], BOUNDS, 1.0);
        assert_eq!(boxes[0].map(|r| r.cy), Some(90.0), "off the line it would cover");
        assert_eq!(boxes[1].map(|r| r.cy), Some(110.0), "off the label placed first");
    }

    #[test]
    fn a_label_with_no_free_place_is_left_out_unless_it_must_be_read() {
        let line = ((0.0, 100.0), (1000.0, 100.0));
        let crowded = label(&[(500.0, 100.0)]);
        assert_eq!(place(std::slice::from_ref(&crowded), &[line], BOUNDS, 1.0), [None]);
        let must = Wanted { must: true, ..crowded };
        assert_eq!(place(&[must], &[line], BOUNDS, 1.0)[0].map(|r| r.cy), Some(100.0));
        let outside = label(&[(20.0, 400.0), (500.0, 400.0)]);
        assert_eq!(place(&[outside], &[], BOUNDS, 1.0)[0].map(|r| r.cx), Some(500.0), "kept inside");
    }

    #[test]
    fn text_wraps_at_spaces_or_between_chinese_characters() {
        // Ten pixels a character.
        let width = |t: &str| t.chars().count() as f64 * 10.0;
        let lines = wrap("Pick a lesson above, or open a socket", 130.0, &width);
        assert_eq!(lines, ["Pick a lesson", "above, or", "open a socket"]);
        assert!(lines.iter().all(|l| width(l) <= 130.0));
        // Two lines, even: not a word alone on the second.
        assert_eq!(wrap("open a socket and send here.", 250.0, &width), ["open a socket", "and send here."]);
        assert_eq!(wrap("short", 130.0, &width), ["short"]);
        assert_eq!(wrap("a unbreakablewordhere b", 60.0, &width), ["a", "unbreakablewordhere", "b"]);
        assert_eq!(
            wrap("选一课：它的数据报出现在这里", 50.0, &width),
            ["选一课：它", "的数据报出", "现在这里"]
        );
        assert_eq!(
            wrap("选一课：它的数据", 30.0, &width),
            ["选一课：", "它的数", "据"],
            "no line starts with '：'"
        );
        assert_eq!(wrap("", 50.0, &width), Vec::<String>::new());
    }

    #[test]
    fn a_lessons_point_asks_before_newer_labels_and_after_those_that_must_be_read() {
        // Oldest first, as the renderer collects them: a retried send's label, a note, then
        // two newer headlines, one of them selected. All want the same one place.
        let spot = [(500.0, 300.0)];
        let labels = vec![
            ("retry", Wanted { first: true, ..label(&spot) }),
            ("note", Wanted { first: true, ..label(&spot) }),
            ("newer", label(&spot)),
            ("selected", Wanted { must: true, ..label(&spot) }),
            ("newest", label(&spot)),
        ];
        let order = asking_order(labels, |(_, want)| want);
        let names: Vec<&str> = order.iter().map(|(name, _)| *name).collect();
        assert_eq!(names, ["selected", "note", "retry", "newest", "newer"]);
        // With the selected one away, the spot goes to the newest of the lesson's points, not to
        // the newest label.
        let wanted: Vec<Wanted> =
            order.into_iter().filter(|(n, _)| *n != "selected").map(|(_, w)| w).collect();
        let placed = place(&wanted, &[], BOUNDS, 1.0);
        assert!(placed[0].is_some(), "the note");
        assert!(placed[1..].iter().all(Option::is_none), "the spot is taken: {placed:?}");
    }

    /// What [`place`] promises, checked against everything rather than by bands.
    fn place_by_checking_everything(
        wanted: &[Wanted],
        lines: &[Segment],
        bounds: Rect,
        pad: f64,
    ) -> Vec<Option<Rect>> {
        let mut placed: Vec<Rect> = Vec::new();
        let mut out = Vec::new();
        for label in wanted {
            let boxed = |&(cx, cy): &(f64, f64)| Rect { cx, cy, w: label.w, h: label.h };
            let free = label.at.iter().map(boxed).find(|r| {
                let padded = Rect { w: r.w + 2.0 * pad, h: r.h + 2.0 * pad, ..*r };
                r.inside(&bounds)
                    && !placed.iter().any(|p| p.overlaps(&padded))
                    && !lines.iter().any(|(a, b)| padded.crossed_by(*a, *b))
            });
            let chosen = free.or_else(|| label.must.then(|| label.at.first().map(boxed)).flatten());
            placed.extend(chosen);
            out.push(chosen);
        }
        out
    }

    /// A busy diagram, as a lesson makes one: fans of crossing arrows with a label wanted on
    /// each. Whatever is placed touches no arrow and no other label.
    #[test]
    fn placed_labels_never_touch_each_other_or_the_arrows() {
        let mut lines = Vec::new();
        let mut wanted = Vec::new();
        let mut seed = 42_u64;
        let mut next = |n: f64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as f64 / f64::from(u32::MAX >> 1) * n
        };
        // One client on the left, four servers; a request or an answer every 18 px, each
        // taking 10 to 70 px to arrive, so they cross as a busy lesson's do.
        let lanes = [100.0, 325.0, 550.0, 775.0, 1000.0 - 25.0];
        for i in 0..40 {
            let server = lanes[1 + (next(4.0) as usize).min(3)];
            let (x1, x2) = if i % 2 == 0 { (lanes[0], server) } else { (server, lanes[0]) };
            let y1 = 40.0 + 18.0 * f64::from(i);
            let y2 = y1 + 10.0 + next(60.0);
            lines.push(((x1, y1), (x2, y2)));
            let at: Vec<(f64, f64)> = [0.5, 0.35, 0.65, 0.2, 0.8]
                .iter()
                .flat_map(|t| {
                    let (x, y) = (x1 + (x2 - x1) * t, y1 + (y2 - y1) * t);
                    let off = 7.0 + 3.0 + (y2 - y1) / (x2 - x1).abs() * 60.0;
                    [(x, y - off), (x, y + off)]
                })
                .collect();
            wanted.push(Wanted { w: 60.0 + next(60.0), h: 14.0, at, must: false, first: false });
        }
        let boxes = place(&wanted, &lines, BOUNDS, 1.0);
        assert_eq!(
            boxes,
            place_by_checking_everything(&wanted, &lines, BOUNDS, 1.0),
            "the bands change nothing"
        );
        // Labels that must be read, and lines reaching past the diagram, change nothing either.
        let mut musts = wanted.clone();
        for w in musts.iter_mut().step_by(3) {
            w.must = true;
        }
        lines.push(((100.0, -500.0), (975.0, 1_500.0)));
        assert_eq!(
            place(&musts, &lines, BOUNDS, 1.0),
            place_by_checking_everything(&musts, &lines, BOUNDS, 1.0)
        );
        lines.pop();
        let placed: Vec<Rect> = boxes.iter().flatten().copied().collect();
        assert!(placed.len() >= 20, "most labels still find a place: {} of 40", placed.len());
        for (i, a) in placed.iter().enumerate() {
            for b in &placed[i + 1..] {
                assert!(!a.overlaps(b), "{a:?} and {b:?} overlap");
            }
            for (p, q) in &lines {
                assert!(!a.crossed_by(*p, *q), "{a:?} lies on the arrow {p:?} → {q:?}");
            }
        }
    }

    #[test]
    fn rows_keep_their_time_but_never_come_closer_than_a_gap() {
        // Newest first: at the bottom edge (t = 1 ms), then 0.2 and 0.3 ms before it, at 10 µs
        // a pixel.
        let points = [Point::new(3, 1_000), Point::new(2, 800), Point::new(1, 700)];
        let y: Vec<(u64, f64)> = rows(&points, |t| 500.0 - (1_000 - t) as f64 / 10.0, 15.0).collect();
        assert_eq!(y, [(3, 500.0), (2, 480.0), (1, 465.0)], "the last one is pushed up a gap");
        assert_eq!(rows_height(&points, 1_000, 10.0, 15.0), 35.0);
        // Measured from a later end, as a view that keeps a margin under the newest row.
        assert_eq!(rows_height(&points, 1_100, 10.0, 15.0), 45.0);
        assert_eq!(rows_height(&[], 1_000, 10.0, 15.0), 0.0);
        assert_eq!(rows_height(&[Point::new(1, 5)], 5, 10.0, 15.0), 0.0);
    }

    #[test]
    fn a_point_that_shares_a_row_stands_on_the_one_below_it() {
        // The middle point shares the newest one's row; the oldest is a gap above both.
        let shares = Point { shares: true, ..Point::new(2, 990) };
        let points = [Point::new(3, 1_000), shares, Point::new(1, 985)];
        let y: Vec<(u64, f64)> = rows(&points, |t| 500.0 - (1_000 - t) as f64 / 10.0, 15.0).collect();
        assert_eq!(y, [(3, 500.0), (2, 500.0), (1, 485.0)]);
        assert_eq!(rows_height(&points, 1_000, 10.0, 15.0), 15.0);
        // With nothing below it, it takes a row after all.
        let alone: Vec<(u64, f64)> =
            rows(&points[1..], |t| 500.0 - (1_000 - t) as f64 / 10.0, 15.0).collect();
        assert_eq!(alone, [(2, 499.0), (1, 484.0)]);
        assert_eq!(rows_height(&points[1..], 1_000, 10.0, 15.0), 16.0);
    }

    #[test]
    fn a_story_is_zoomed_out_until_its_rows_stand_inside_the_room() {
        // Loss and retries in short: a burst of four rows at 0, 0.1, 0.3 and 0.7 s, a give-up
        // 2 s later. At 5 ms a pixel the quiet 2 s alone take 400 px.
        let mut times = Vec::new();
        for start in [0_u64, 100_000, 300_000, 700_000] {
            times.extend((0..4).map(|k| start + k * 50));
        }
        times.push(2_700_000);
        times.reverse();
        let times: Vec<Point> = times.into_iter().zip(1..).map(|(t, seq)| Point::new(seq, t)).collect();
        let (end, gap) = (2_700_000, 15.0);
        assert!(rows_height(&times, end, 5_000.0, gap) > 300.0);
        let zoom = zoom_to_fit(&times, end, 300.0, gap, 5_000.0, 200_000.0).expect("it fits when zoomed out");
        assert!(rows_height(&times, end, zoom, gap) <= 300.0, "at {zoom} µs/px");
        assert!(
            rows_height(&times, end, zoom / 1.02, gap) > 300.0,
            "and not much further out than that: {zoom}"
        );
        assert_eq!(zoom_to_fit(&times, end, 1_000.0, gap, 5_000.0, 200_000.0), Some(5_000.0), "already fits");
        // 17 rows need 16 gaps, 240 px, however far out.
        assert_eq!(zoom_to_fit(&times, end, 200.0, gap, 5_000.0, 200_000.0), None);
        assert_eq!(
            zoom_to_fit(&times, end, 300.0, gap, 5_000.0, 10_000.0),
            None,
            "not within the bounds given"
        );
    }

    #[test]
    fn the_projector_scale_follows_the_windows_height_as_its_type_does() {
        assert_eq!(projector_scale(600.0), 1.0, "never smaller than a laptop's");
        assert_eq!(projector_scale(720.0), 1.0);
        assert!((projector_scale(900.0) - 900.0 * 0.0204 / 15.0).abs() < 1e-9);
        assert_eq!(projector_scale(1_080.0), 22.0 / 15.0, "22 px type from 1080p");
        assert_eq!(projector_scale(2_160.0), 22.0 / 15.0);
    }

    #[test]
    fn a_note_with_no_room_under_its_arrow_goes_beside_it() {
        // An arrow from x=300 back to x=100 on the bottom edge of an 800-px diagram: under it
        // is outside, so the note goes past its right end, clear of it.
        let (under, over) = ([(200.0, 806.0)], [(200.0, 778.0)]);
        let at = note_places(&under, &over, (100.0, 300.0), 792.0, 120.0, 1.0);
        assert_eq!(at, [(200.0, 806.0), (200.0, 822.0), (368.0, 792.0), (32.0, 792.0), (200.0, 762.0)]);
        let arrow: Segment = ((300.0, 790.0), (100.0, 794.0));
        let placed =
            place(&[Wanted { w: 120.0, h: 14.0, at, must: false, first: false }], &[arrow], BOUNDS, 1.5);
        assert_eq!(placed[0].map(|r| (r.cx, r.cy)), Some((368.0, 792.0)));
    }

    #[test]
    fn a_label_that_must_be_read_takes_its_first_place_in_view() {
        // Its first place is under the diagram's bottom edge, its second inside.
        let at = vec![(500.0, 810.0), (500.0, 700.0)];
        let line: Segment = ((400.0, 700.0), (600.0, 700.0));
        let must = Wanted { w: 80.0, h: 14.0, at, must: true, first: false };
        let placed = place(&[must], &[line], BOUNDS, 1.5);
        assert_eq!(placed[0].map(|r| (r.cx, r.cy)), Some((500.0, 700.0)), "over the line, in view");
    }
}
