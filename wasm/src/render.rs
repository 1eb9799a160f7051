//! Draws the sequence diagram on a 2D canvas, once per animation frame.
//!
//! Called only by the frame loop in `app.rs`, never from a WebSocket message: events update
//! the model, and this reads it. Layout, bottom-up from the newest event:
//! - lanes are columns, clients on the left and servers on the right;
//! - time flows down. An event sits at its real time on the current scale, but never closer
//!   than one text line to the event after it, so a burst of loopback traffic (microseconds
//!   apart) still reads as a sequence rather than one smudge;
//! - an arrow goes from the event that sent a datagram to the event that received, dropped or
//!   lost it: a datagram that vanished (nothing listened) ends on its target's lane in ∅, one
//!   the kernel refused to send is a stub at its sender ending in ⊘.
//!
//! The link in front of each server decides at a point on the wire, [`LINK_AT`] of the way
//! from sender to receiver. A datagram the link lost stops there, short of where it was going,
//! under ↯ (a server's own drop ends at the server, under ✕); a held one runs to that point,
//! waits there down the time axis (dotted, with "held 200 ms"), then goes on, so its delivery
//! is drawn as late as it was; the link's copy starts there. A server whose link is impaired
//! has its settings under its name.
//!
//! Colours are Okabe–Ito (safe for colour-blind viewers) and every fate also has its own line
//! style and word: dashed and ✕ for a drop, dotted and ↯ for a loss on the link, LATE and DUP
//! for replies that are not the answer. The words are
//! [`Arrow::label`](crate::model::Arrow::label)'s, the same the event log and its `data-label`
//! carry.

use rustc_hash::FxHashMap as HashMap;

use wasm_bindgen::JsValue;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::layout::{self, Rect, Wanted};
use crate::model::{Body, Fate, Item, Lane, LaneKind, MarkKind, Model, fixed, link_short};
use crate::page::{HEADROOM_GAPS, Page, row_points, window};
use crate::text::{fill, word};

const INK: &str = "#111111";
const MUTED: &str = "#5b6068";
const LANE: &str = "#b8bcc4";
const BLUE: &str = "#0072b2";
const GREEN: &str = "#009e73";
const ORANGE: &str = "#e69f00";
const VERMILLION: &str = "#d55e00";
const PURPLE: &str = "#cc79a7";
const GREY: &str = "#8a9099";

/// Where on its way the link decides about a datagram: this share of the way from its sender
/// to its receiver. Past half, so a loss on the way there stops short of the server, and one on
/// the way back short of the client, both well apart from a server's own drop at the server.
const LINK_AT: f64 = 0.6;

/// Where the diagram looks and how closely.
#[derive(Clone, Debug)]
pub struct View {
    /// Frozen at `end_us` instead of following the newest traffic.
    pub paused: bool,
    /// The relay time at the bottom edge.
    pub end_us: u64,
    /// Zoom: microseconds of relay time per CSS pixel.
    pub us_per_px: f64,
    pub selected: Option<u64>,
    /// 1.0 on a laptop; in projector mode 1.0 to 1.47, with the window's height
    /// ([`crate::layout::projector_scale`]).
    pub scale: f64,
    /// The projector view: everyone's traffic, and no controls to point at.
    pub projector: bool,
}

impl View {
    pub const MIN_US_PER_PX: f64 = 20.0;
    pub const MAX_US_PER_PX: f64 = 200_000.0;
}

impl Default for View {
    fn default() -> Self {
        Self { paused: false, end_us: 0, us_per_px: 8_000.0, selected: None, scale: 1.0, projector: false }
    }
}

/// Where an item was drawn, for clicks.
#[derive(Clone, Copy, Debug)]
pub struct Hit {
    pub id: u64,
    pub x1: f64,
    pub y1: f64,
    pub x2: f64,
    pub y2: f64,
}

impl Hit {
    /// Distance from a point to this item's segment, in CSS pixels.
    pub fn distance(&self, x: f64, y: f64) -> f64 {
        let (dx, dy) = (self.x2 - self.x1, self.y2 - self.y1);
        let len2 = dx * dx + dy * dy;
        let t = if len2 == 0.0 {
            0.0
        } else {
            (((x - self.x1) * dx + (y - self.y1) * dy) / len2).clamp(0.0, 1.0)
        };
        let (px, py) = (self.x1 + t * dx, self.y1 + t * dy);
        ((x - px).powi(2) + (y - py).powi(2)).sqrt()
    }
}

pub struct Renderer {
    canvas: HtmlCanvasElement,
    ctx: CanvasRenderingContext2d,
    /// CSS size and device pixel ratio the backing store was last sized for.
    size: (f64, f64, f64),
    dash_none: JsValue,
    dash_drop: JsValue,
    dash_late: JsValue,
    dash_dup: JsValue,
    dash_lane: JsValue,
    dash_lost: JsValue,
    dash_hold: JsValue,
    /// See [`Renderer::oldest_whole`].
    oldest_whole: Option<u64>,
    /// The lane headers' height in the last frame.
    header: f64,
    /// The lanes the last frame drew, left to right, of the model's.
    columns: Vec<usize>,
    /// See [`Renderer::beyond`].
    beyond: Beyond,
    /// Where the last frame drew its [`Beyond`] tags, and whether each is the top edge's.
    tags: Vec<(Rect, bool)>,
    /// The empty diagram's hint in lines, and the text, width and scale they were wrapped for:
    /// an idle page draws it every frame, and measuring it each time would be waste.
    hint: (&'static str, f64, f64, Vec<String>),
}

/// How many items lie beyond the paused diagram's edges: older than the oldest it drew whole
/// (cut by the top edge or above it) and newer than its bottom edge. Both are 0 while it is
/// live. The diagram says so in a tag at each edge, which turns a page that way when clicked: a
/// finished lesson longer than the canvas shows its end, and says its start is above.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Beyond {
    pub earlier: usize,
    pub newer: usize,
}

/// How many of a payload's characters an arrow's label shows when the whole preview would
/// not fit its room.
const SHORT_PREVIEW: usize = 12;

/// The least distance between two events' rows, in CSS pixels at scale 1: a line of text.
const ROW_GAP: f64 = 15.0;

/// A label's width from its measured one (`max` if unmeasured): at most `max`, with room for
/// its halo.
fn clamp_width(measured: Option<f64>, max: f64) -> f64 {
    measured.unwrap_or(max).min(max.max(30.0)) + 4.0
}

/// A third line under each server whose link is impaired, saying how; `None` for the others.
fn link_lines(model: &Model) -> Vec<Option<String>> {
    model
        .lanes()
        .iter()
        .map(|lane| match lane.kind {
            LaneKind::Server(name) => link_short(&model.my_links(name)),
            _ => None,
        })
        .collect()
}

/// The lane headers' height: taller when a link line is shown.
fn header_height(link_lines: &[Option<String>], s: f64) -> f64 {
    (if link_lines.iter().any(Option::is_some) { 58.0 } else { 44.0 }) * s
}

fn dash(pattern: &[f64]) -> JsValue {
    let array = js_sys::Array::new();
    for &p in pattern {
        array.push(&JsValue::from_f64(p));
    }
    array.into()
}

impl Renderer {
    pub fn new(canvas: HtmlCanvasElement, ctx: CanvasRenderingContext2d) -> Self {
        Self {
            canvas,
            ctx,
            size: (0.0, 0.0, 0.0),
            dash_none: dash(&[]),
            dash_drop: dash(&[7.0, 5.0]),
            dash_late: dash(&[10.0, 4.0]),
            dash_dup: dash(&[2.0, 4.0]),
            dash_lane: dash(&[2.0, 6.0]),
            dash_lost: dash(&[3.0, 4.0]),
            dash_hold: dash(&[2.0, 3.0]),
            oldest_whole: None,
            header: 0.0,
            columns: Vec::new(),
            beyond: Beyond::default(),
            tags: Vec::new(),
            hint: ("", 0.0, 0.0, Vec::new()),
        }
    }

    /// The lane headers' height in the last frame.
    pub fn header(&self) -> f64 {
        self.header
    }

    /// The canvas's CSS height, for scrolling by pages.
    pub fn height(&self) -> f64 {
        self.size.1
    }

    /// Matches the backing store to the element's CSS size, so lines stay sharp.
    fn fit(&mut self, dpr: f64) {
        let (w, h) = (f64::from(self.canvas.client_width()), f64::from(self.canvas.client_height()));
        if (w, h, dpr) != self.size {
            self.canvas.set_width((w * dpr).round().max(1.0) as u32);
            self.canvas.set_height((h * dpr).round().max(1.0) as u32);
            self.size = (w, h, dpr);
        }
        let _ = self.ctx.set_transform(dpr, 0.0, 0.0, dpr, 0.0, 0.0);
    }

    /// Draws one frame and returns where each item landed.
    pub fn draw(&mut self, model: &Model, view: &View, dpr: f64) -> Vec<Hit> {
        self.fit(dpr);
        let (w, h, _) = self.size;
        let ctx = &self.ctx;
        let s = view.scale;
        let font = |px: f64, weight: &str| format!("{weight} {}px system-ui, sans-serif", fixed(px * s, 0));
        ctx.clear_rect(0.0, 0.0, w, h);

        let gutter = 70.0 * s;
        let link_lines = link_lines(model);
        let header = header_height(&link_lines, s);
        self.header = header;
        let gap = ROW_GAP * s;

        // Which events are visible: the newest up to `end_us`, as many as rows fit.
        let items = model.items();
        let newest = items.partition_point(|item| item.t_us <= view.end_us);
        let first = newest.saturating_sub(window(h - header, gap));
        let visible: Vec<&Item> = items.range(first..newest).collect();
        // And where: bottom-up from `end_us`.
        let time_y = |t: u64| h - 8.0 * s - (view.end_us as f64 - t as f64) / view.us_per_px;
        let points = row_points(&visible);
        let ys: HashMap<u64, f64> = layout::rows(&points, time_y, gap).collect();
        // Rows this far above the lanes' headers are not drawn (their labels could reach down).
        let shown = |item: &Item| ys.get(&item.seq).is_some_and(|y| *y >= header - gap * 4.0);

        // Lane columns: clients left, servers right. A closed lane takes a column only while
        // something in view happened on it: a teacher going through the lessons would
        // otherwise find every earlier lesson's sockets squeezing the next one's. So does an
        // outside client's, which never says it is gone: a class's `nc` windows would pile up.
        let lanes = model.lanes();
        // A lane not drawn has no column: NaN, which every loop over the lanes skips. Those
        // with something in view are marked first (0), then each drawn one gets its place.
        let mut lane_x = vec![f64::NAN; lanes.len()];
        for item in visible.iter().filter(|item| shown(item)) {
            let (a, b) = match &item.body {
                Body::Arrow(arrow) => (arrow.from, arrow.to),
                Body::Mark(mark) => (mark.lane, mark.lane),
            };
            for lane in [a, b] {
                if let Some(x) = lane_x.get_mut(lane) {
                    *x = 0.0;
                }
            }
        }
        let mut order: Vec<usize> =
            (0..lanes.len()).filter(|&i| lanes[i].keeps_column() || lane_x[i] == 0.0).collect();
        // At most a few dozen lanes: a stable insertion sort by rank, which costs the bundle a
        // fraction of the standard library's stable sort.
        for i in 1..order.len() {
            let mut j = i;
            while j > 0 && lanes[order[j - 1]].kind.rank() > lanes[order[j]].kind.rank() {
                order.swap(j - 1, j);
                j -= 1;
            }
        }
        let n = order.len().max(1) as f64;
        let span = (w - gutter - 10.0).max(10.0);
        for (slot, &i) in order.iter().enumerate() {
            lane_x[i] = gutter + span * (slot as f64 + 0.5) / n;
        }
        self.columns = order;

        // Lane lines and headers.
        ctx.set_line_width(1.0);
        for (i, lane) in lanes.iter().enumerate() {
            let x = lane_x[i];
            if x.is_nan() {
                continue;
            }
            ctx.set_stroke_style_str(LANE);
            let _ = ctx.set_line_dash(if lane.closed { &self.dash_lane } else { &self.dash_none });
            ctx.begin_path();
            ctx.move_to(x, header);
            ctx.line_to(x, h);
            ctx.stroke();
        }
        let _ = ctx.set_line_dash(&self.dash_none);

        // Marks on their send's row (a retry's).
        let sharing: Vec<u64> = points.iter().filter(|p| p.shares).map(|p| p.seq).collect();

        let mut hits = Vec::with_capacity(visible.len());
        let mut labels: Vec<Label> = Vec::new();
        let bounds = Rect { cx: gutter + span / 2.0, cy: (header + h) / 2.0, w: span, h: h - header };
        let mut last_label_y = f64::NEG_INFINITY;
        ctx.set_text_baseline("middle");
        // Traffic is drawn below the lane headers only, however densely it is packed.
        ctx.save();
        ctx.begin_path();
        ctx.rect(0.0, header, w, h - header);
        ctx.clip();
        for (k, item) in visible.iter().enumerate() {
            let Some(&y1) = ys.get(&item.seq) else { continue };
            if y1 < header - gap * 4.0 {
                continue;
            }
            match &item.body {
                Body::Arrow(arrow) => {
                    let (Some(&x1), Some(&x2)) = (lane_x.get(arrow.from), lane_x.get(arrow.to)) else {
                        continue;
                    };
                    let y2 = arrow
                        .end_seq
                        .and_then(|e| ys.get(&e).copied())
                        .filter(|y2| *y2 > y1)
                        .unwrap_or(y1 + gap * 0.6);
                    // A server's datagram is an answer; any other is a request, a stranger's
                    // to one of the sockets too (lesson 6).
                    let request = !matches!(lanes[arrow.from].kind, LaneKind::Server(_));
                    let copy = arrow.copy_of().is_some();
                    let (colour, dash) = match arrow.fate {
                        Fate::Delivered if copy => (PURPLE, &self.dash_none),
                        Fate::Delivered if request => (BLUE, &self.dash_none),
                        Fate::Delivered => (GREEN, &self.dash_none),
                        Fate::InFlight => (GREY, &self.dash_drop),
                        Fate::Dropped | Fate::Vanished => (VERMILLION, &self.dash_drop),
                        Fate::LostIn | Fate::LostOut => (VERMILLION, &self.dash_lost),
                        Fate::NotSent => (VERMILLION, &self.dash_none),
                        Fate::Late => (ORANGE, &self.dash_late),
                        Fate::Duplicate => (PURPLE, &self.dash_dup),
                    };
                    // The point on the wire where the link decides, moved off any lane it
                    // would sit on: a loss drawn on a client's lane would blame that client.
                    let mut xl = x1 + (x2 - x1) * LINK_AT;
                    let clear = 22.0 * s;
                    if let Some(lx) = lane_x.iter().copied().find(|lx| (lx - xl).abs() < clear) {
                        let moved = lx + clear * (x2 - x1).signum();
                        // Never past the receiver.
                        if (moved - x1).abs() < (x2 - x1).abs() - clear {
                            xl = moved;
                        }
                    }
                    // The link's copy is made on the link, so it starts there.
                    let start = if copy { (xl, y1) } else { (x1, y1) };
                    // A held datagram runs to the link, waits there down the time axis, then
                    // goes on: `hold` is where its wait begins and ends.
                    let hold = arrow.held().map(|held| {
                        let from = ys.get(&held.since_seq).copied().unwrap_or(y1).max(start.1);
                        let until = held
                            .release_seq
                            .and_then(|r| ys.get(&r).copied())
                            .unwrap_or_else(|| time_y(view.end_us))
                            .max(from + gap * 0.6);
                        (from, until)
                    });
                    // A drop dies just short of the server that threw it away, where the ✕ is
                    // (not on a lane line, which would blame another endpoint). A loss on the
                    // link dies on the link. A datagram the kernel refused never left its
                    // socket: a stub toward the target. One that vanished dies on its target's
                    // lane, where nothing listened.
                    let mut path = vec![start];
                    if let Some((from, until)) = hold {
                        path.push((xl, from));
                        path.push((xl, until));
                    }
                    let end = match arrow.fate {
                        Fate::Dropped => {
                            let short = (28.0 * s).min((x2 - x1).abs() / 2.0);
                            let share = if x2 == x1 { 1.0 } else { 1.0 - short / (x2 - x1).abs() };
                            Some((x1 + (x2 - x1) * share, y1 + (y2 - y1) * share))
                        }
                        Fate::NotSent => {
                            let stub = (30.0 * s).min((x2 - x1).abs() / 2.0);
                            Some((x1 + stub * (x2 - x1).signum(), y1))
                        }
                        Fate::LostIn | Fate::LostOut => Some((xl, y2)),
                        // Still held: it has not gone on yet.
                        Fate::InFlight
                            if hold.is_some() && arrow.held().is_some_and(|h| h.release_seq.is_none()) =>
                        {
                            None
                        }
                        _ => Some((x2, hold.map_or(y2, |(_, until)| y2.max(until + gap * 0.3)))),
                    };
                    if let Some(end) = end {
                        path.push(end);
                    }
                    let (ex, ey) = path.last().copied().unwrap_or(start);
                    let selected = view.selected == Some(item.id);
                    if selected {
                        ctx.set_stroke_style_str("rgba(230,159,0,0.45)");
                        ctx.set_line_width(9.0 * s);
                        let _ = ctx.set_line_dash(&self.dash_none);
                        self.polyline(&path);
                    }
                    ctx.set_stroke_style_str(colour);
                    ctx.set_fill_style_str(colour);
                    let lost = matches!(arrow.fate, Fate::LostIn | Fate::LostOut);
                    let width = if selected {
                        3.0
                    } else if lost {
                        2.5
                    } else {
                        2.0
                    };
                    ctx.set_line_width(width * s);
                    let _ = ctx.set_line_dash(dash);
                    self.polyline(&path);
                    let _ = ctx.set_line_dash(&self.dash_none);
                    let (px, py) = path.len().checked_sub(2).map_or(start, |i| path[i]);
                    match arrow.fate {
                        Fate::Dropped => self.cross(ex, ey, 7.0 * s),
                        Fate::LostIn | Fate::LostOut => self.bolt(ex, ey, 9.0 * s),
                        Fate::Vanished => self.nothing(ex, ey, 7.0 * s, false),
                        Fate::NotSent => self.nothing(ex, ey, 7.0 * s, true),
                        _ if end.is_some() => self.head(px, py, ex, ey, 9.0 * s),
                        _ => {}
                    }
                    if copy {
                        // Where the link made the copy.
                        ctx.begin_path();
                        let _ = ctx.arc(start.0, start.1, 3.5 * s, 0.0, std::f64::consts::TAU);
                        ctx.fill();
                    }
                    if let Some((from, until)) = hold {
                        // The wait, on the link: dotted and orange, with how long.
                        ctx.set_stroke_style_str(ORANGE);
                        ctx.set_line_width(4.0 * s);
                        let _ = ctx.set_line_dash(&self.dash_hold);
                        self.polyline(&[(xl, from), (xl, until)]);
                        let _ = ctx.set_line_dash(&self.dash_none);
                        ctx.set_line_width(2.0 * s);
                        self.polyline(&[(xl - 5.0 * s, from), (xl + 5.0 * s, from)]);
                        self.polyline(&[(xl - 5.0 * s, until), (xl + 5.0 * s, until)]);
                    }
                    for pair in path.windows(2) {
                        hits.push(Hit {
                            id: item.id,
                            x1: pair[0].0,
                            y1: pair[0].1,
                            x2: pair[1].0,
                            y2: pair[1].1,
                        });
                    }
                    if path.len() == 1 {
                        hits.push(Hit { id: item.id, x1: start.0, y1: start.1, x2: start.0, y2: start.1 });
                    }

                    // The label, when there is room for it: asked of the layout, which puts it
                    // where it touches no arrow and no other label.
                    // A held datagram's words go over its way to the link, before the wait.
                    let (lx1, ly1, lx2, ly2) = match (hold, path.get(1)) {
                        (Some(_), Some(&(tx, ty))) => (start.0, start.1, tx, ty),
                        _ => (start.0, start.1, ex, ey),
                    };
                    let mid_y = (ly1 + ly2) / 2.0;
                    // What the link did, a send the kernel refused, a datagram nobody got and an
                    // arrival out of order are rare and the point of a lesson: their arrows
                    // always say it.
                    let must = selected
                        || arrow.link.is_some()
                        || arrow.out_of_order
                        || matches!(arrow.fate, Fate::NotSent | Fate::Vanished);
                    // A note (a cut read, a reply taken for the wrong attempt) and a retried
                    // send's attempt are what a lesson is about: asked for before the rest,
                    // though not forced over them.
                    let arrow_note = arrow.note();
                    // The spacing below keeps the rest from crowding; these are asked for even
                    // close to the label before (a LATE reply on a retry's row), and the
                    // placer still leaves them out where nothing is free. The canvas holds a
                    // few dozen rows, so asking costs a few dozen measures a frame at most.
                    let first = arrow_note.is_some() || arrow.waited_ms.is_some();
                    if mid_y - last_label_y >= 14.0 * s || must || first {
                        last_label_y = mid_y;
                        // What the link did goes beside its wait when it held the datagram,
                        // else under the line with any other note.
                        let link_note = arrow.link_note();
                        let (beside, under) = match (&hold, link_note) {
                            (_, Some(n)) if hold.is_some() || lost => (Some(n), None),
                            (_, n) => (None, n),
                        };
                        let note = match (arrow_note, under) {
                            (Some(a), Some(b)) => Some(format!("{a} · {b}")),
                            (a, b) => a.or(b),
                        };
                        let bold = note.is_some()
                            || copy
                            || matches!(
                                arrow.fate,
                                Fate::Late
                                    | Fate::Duplicate
                                    | Fate::Dropped
                                    | Fate::Vanished
                                    | Fate::NotSent
                                    | Fate::LostIn
                                    | Fate::LostOut
                            );
                        // Wide enough to read: a label may run past the lanes rather than be
                        // squeezed, and stays inside the diagram.
                        let max = (x2 - x1).abs().max(span * 0.42).max(160.0 * s) - 8.0;
                        let font12 = font(12.0, if bold { "700" } else { "400" });
                        // Squeezed text is hard to read: fewer of the bytes first.
                        let mut headline = arrow.headline();
                        let mut width = self.measure(&font12, &headline);
                        if width.is_some_and(|w| w > max) {
                            headline = arrow.headline_previewing(SHORT_PREVIEW);
                            width = self.measure(&font12, &headline);
                        }
                        let w = clamp_width(width, max);
                        // Over the line first, then under it.
                        let at = along_line((lx1, ly1), (lx2, ly2), w, 14.0 * s, 3.0 * s, &bounds);
                        labels.push(Label {
                            text: headline,
                            font: font12,
                            colour,
                            time: Some((item.t_us, y1)),
                            want: Wanted { w, h: 14.0 * s, at, must, first },
                        });
                        // A note (a cut read, a reply taken for the wrong attempt, where the
                        // link lost it) goes under the line, in its own words, wide enough to
                        // read.
                        if let Some(note) = note {
                            let font12 = font(12.0, "700");
                            let wide = max.max(span * 0.6);
                            let w = self.text_width(&font12, &note, wide);
                            let mut over = along_line((lx1, ly1), (lx2, ly2), w, 14.0 * s, 3.0 * s, &bounds);
                            let under = over.split_off(ALONG);
                            let ends = (lx1.min(lx2), lx1.max(lx2));
                            let at = layout::note_places(&under, &over, ends, mid_y, w, s);
                            labels.push(Label {
                                text: note,
                                font: font12,
                                colour: VERMILLION,
                                time: None,
                                want: Wanted { w, h: 14.0 * s, at, must, first: true },
                            });
                            last_label_y = mid_y + 14.0 * s;
                        }
                        let rightward = x2 >= x1;
                        let ahead = if rightward { 1.0 } else { -1.0 };
                        // Where it goes: its text, height and colour, and the places it may stand
                        // beside, best first, each an x and the way it steps from there.
                        let beside = match (beside, hold) {
                            // On the side the datagram came from, where the way is clear; else
                            // on the other, or past the lane it was going to.
                            (Some(text), Some((from, until))) => Some((
                                text,
                                (from + until) / 2.0,
                                ORANGE,
                                [(xl, -ahead), (xl, ahead), (x2, ahead)],
                            )),
                            // Past the ↯, on the way it did not make: the line stays in sight.
                            (Some(text), None) => {
                                Some((text, ey, VERMILLION, [(ex, ahead), (ex, -ahead), (x2, ahead)]))
                            }
                            (None, _) => None,
                        };
                        if let Some((text, y, colour, sides)) = beside {
                            let font11 = font(11.5, "700");
                            let w = self.text_width(&font11, &text, span * 0.45);
                            let h = 13.0 * s;
                            let mut at = Vec::with_capacity(21);
                            for (x, side) in sides {
                                let cx = clamp_x(x + side * (10.0 * s + w / 2.0), w, &bounds);
                                for k in [0.0, -1.2, 1.2, -2.4, 2.4, -3.6, 3.6] {
                                    at.push((cx, y + k * h));
                                }
                            }
                            labels.push(Label {
                                text,
                                font: font11,
                                colour,
                                time: None,
                                want: Wanted { w, h, at, must, first },
                            });
                        }
                    }
                }
                Body::Mark(mark) => {
                    let Some(&x) = lane_x.get(mark.lane) else { continue };
                    let (glyph, text, colour) = mark_text(&mark.kind, &mark.text, lanes);
                    let selected = view.selected == Some(item.id);
                    // Text goes toward the middle of the diagram.
                    let right_side = x > gutter + span / 2.0;
                    if let MarkKind::Lagged { .. } = mark.kind {
                        ctx.set_fill_style_str("rgba(213,94,0,0.12)");
                        ctx.fill_rect(gutter, y1 - gap / 2.0, span, gap);
                    }
                    // A mark on its send's row (a retry's) steps aside from the arrow, and
                    // says its words only when selected: the send's label names the attempt
                    // and its wait.
                    let side = if right_side { -1.0 } else { 1.0 };
                    let shares = matches!(mark.kind, MarkKind::Retry { .. }) && sharing.contains(&item.seq);
                    // Back from the way its send goes (the send is the next item, see
                    // `row_points`): 1 to the right, -1 to the left.
                    let away = match visible.get(k + 1).map(|next| &next.body) {
                        Some(Body::Arrow(a)) if shares => match (lane_x.get(a.from), lane_x.get(a.to)) {
                            (Some(from), Some(to)) if to < from => 1.0,
                            _ => -1.0,
                        },
                        _ => 0.0,
                    };
                    let glyph_x = x + away * 10.0 * s;
                    ctx.set_fill_style_str(colour);
                    ctx.set_font(&font(12.0, "700"));
                    ctx.set_text_align("center");
                    let _ = ctx.fill_text(glyph, glyph_x, y1);
                    if selected || !shares {
                        let font12 = font(12.0, "700");
                        let w = self.text_width(&font12, &text, span / 2.0);
                        let h = 14.0 * s;
                        let cx = if shares {
                            clamp_x(glyph_x + away * (8.0 * s + w / 2.0), w, &bounds)
                        } else {
                            clamp_x(x + side * (12.0 * s + w / 2.0), w, &bounds)
                        };
                        let mut at = Vec::with_capacity(5);
                        for k in [0.0, -1.1, 1.1, -2.2, 2.2] {
                            at.push((cx, y1 + k * h));
                        }
                        let want = Wanted { w, h, at, must: selected, first: false };
                        labels.push(Label { text, font: font12, colour, time: None, want });
                    }
                    if selected {
                        ctx.set_stroke_style_str(ORANGE);
                        ctx.set_line_width(2.0 * s);
                        ctx.stroke_rect(glyph_x - 9.0 * s, y1 - 9.0 * s, 18.0 * s, 18.0 * s);
                    }
                    hits.push(Hit { id: item.id, x1: glyph_x - 8.0, y1, x2: glyph_x + 8.0, y2: y1 });
                }
            }
        }

        // Items reach the top edge oldest first: the oldest drawn whole is the oldest of those
        // newer than every item the edge cuts.
        let cut = hits.iter().filter(|hit| hit.y1.min(hit.y2) < header).map(|hit| hit.id).max();
        self.oldest_whole = hits.iter().map(|hit| hit.id).filter(|&id| cut.is_none_or(|cut| id > cut)).min();
        self.beyond = Beyond::default();
        let mut tags: Vec<(Rect, bool, String)> = Vec::new();
        if view.paused {
            let earlier = self.earlier(model, newest);
            self.beyond = Beyond { earlier, newer: items.len() - newest };
            let tag_font = font(12.0, "700");
            let edges = [
                (earlier, "beyond-earlier", header + 13.0 * s, true),
                (items.len() - newest, "beyond-newer", h - 14.0 * s, false),
            ];
            // The bottom one keeps left of the paused mark, on a phone's narrow canvas too.
            let paused_w = self.measure(&font(13.0, "700"), word("paused-mark")).unwrap_or(0.0);
            for (count, key, y, top) in edges {
                if count > 0 {
                    let text = fill(key, &[&count]);
                    let (pad, tag_h) = (8.0 * s, 20.0 * s);
                    let tag_w = (self.measure(&tag_font, &text).unwrap_or(span) + 2.0 * pad).min(span);
                    let right = if top { w } else { w - 10.0 - paused_w - 8.0 * s };
                    let cx = bounds.cx.min(right - tag_w / 2.0).max(gutter + tag_w / 2.0);
                    tags.push((Rect { cx, cy: y, w: tag_w, h: tag_h }, top, text));
                }
            }
        }
        self.tags = tags.iter().map(|(r, top, _)| (*r, *top)).collect();

        // The words, once every line is drawn: the labels that must be read first, then a
        // lesson's notes and retries, then the newest, each where it touches no line, no tag and
        // no other label.
        let mut lines: Vec<layout::Segment> = hits.iter().map(|h| ((h.x1, h.y1), (h.x2, h.y2))).collect();
        for (r, _, _) in &tags {
            let (left, right) = (r.cx - r.w / 2.0, r.cx + r.w / 2.0);
            for y in [r.cy - r.h / 2.0, r.cy, r.cy + r.h / 2.0] {
                lines.push(((left, y), (right, y)));
            }
        }
        let labels = layout::asking_order(labels, |l| &l.want);
        let wanted: Vec<Wanted> = labels.iter().map(|l| l.want.clone()).collect();
        let boxes = layout::place(&wanted, &lines, bounds, 1.5 * s);
        ctx.set_text_align("center");
        for (label, placed) in labels.iter().zip(boxes) {
            let Some(r) = placed else { continue };
            ctx.set_font(&label.font);
            self.halo_text(&label.text, r.cx, r.cy, r.w, label.colour);
            if let Some((time, y)) = &label.time {
                // The time on the left.
                ctx.set_font(&font(10.5, "400"));
                ctx.set_text_align("right");
                ctx.set_fill_style_str(MUTED);
                let _ = ctx.fill_text(&format!("{} s", fixed(*time as f64 / 1e6, 3)), gutter - 8.0, *y);
                ctx.set_text_align("center");
            }
        }
        ctx.restore();

        // Lane headers last.
        ctx.set_fill_style_str("rgb(252,252,253)");
        ctx.fill_rect(0.0, 0.0, w, header);
        ctx.set_stroke_style_str(LANE);
        ctx.set_line_width(1.0);
        ctx.begin_path();
        ctx.move_to(0.0, header);
        ctx.line_to(w, header);
        ctx.stroke();
        let slot = span / n;
        for (i, lane) in lanes.iter().enumerate() {
            let x = lane_x[i];
            if x.is_nan() {
                continue;
            }
            let (glyph, colour) = match lane.kind {
                LaneKind::Server(protocol::ServerName::Nobody) => ("∅", MUTED),
                LaneKind::Server(_) => ("■", INK),
                LaneKind::Own => ("●", BLUE),
                LaneKind::OtherSession => ("◆", PURPLE),
                LaneKind::Outside | LaneKind::Overflow => ("▲", ORANGE),
            };
            ctx.set_text_align("center");
            ctx.set_font(&font(13.0, "700"));
            ctx.set_fill_style_str(if lane.closed { GREY } else { colour });
            // An outside lane's address is on the line below; the header keeps to the word, or,
            // in a class's narrow columns, to its glyph (the legend says what ▲ is), and the
            // line below to the port.
            let outside = lane.addr.filter(|_| lane.kind == LaneKind::Outside);
            let wide = slot >= 84.0 * s;
            let name = match outside {
                Some(_) if !wide => "",
                Some(addr) => {
                    lane.label.strip_suffix(&addr.to_string()).map_or(lane.label.as_str(), str::trim_end)
                }
                None => lane.label.as_str(),
            };
            let crowd = model.crowd_size(i).map_or_else(String::new, |n| format!(" ×{n}"));
            let closed = if lane.closed { word("lane-closed") } else { "" };
            let gap = if closed.is_empty() { "" } else { " " };
            let label = format!("{glyph} {name}{crowd}{gap}{closed}");
            let _ = ctx.fill_text_with_max_width(label.trim_end(), x, 17.0 * s, (slot - 6.0).max(20.0));
            if let Some(addr) = lane.addr {
                ctx.set_font(&font(10.0, "400"));
                ctx.set_fill_style_str(MUTED);
                // A crowd is read by its counts: what its members sent (↑) and got (↓).
                let counts = match model.crowd_size(i).map(|_| model.crowd_traffic(i)) {
                    Some((sent, got)) => format!(" · ↑{sent} ↓{got}"),
                    None => String::new(),
                };
                let _ = ctx.fill_text_with_max_width(
                    &format!("{}{counts}", layout::lane_address(addr, outside.is_some() && wide)),
                    x,
                    33.0 * s,
                    (slot - 6.0).max(20.0),
                );
            }
            if let Some(Some(link)) = link_lines.get(i) {
                ctx.set_font(&font(10.5, "700"));
                ctx.set_fill_style_str(VERMILLION);
                let _ =
                    ctx.fill_text_with_max_width(&format!("↯ {link}"), x, 48.0 * s, (slot - 4.0).max(20.0));
            }
        }
        if lanes.is_empty() {
            ctx.set_text_align("center");
            ctx.set_font(&font(15.0, "400"));
            ctx.set_fill_style_str(MUTED);
            let _ = ctx.fill_text(word("waiting"), w / 2.0, h / 2.0);
        } else if model.items().is_empty() {
            ctx.set_text_align("center");
            ctx.set_font(&font(15.0, "400"));
            ctx.set_fill_style_str(MUTED);
            let empty = if view.projector { "empty-diagram-projector" } else { "empty-diagram" };
            // In lines, on a phone's narrow canvas too, rather than squeezed into one.
            let (text, max) = (word(empty), span - 16.0 * s);
            if (self.hint.0, self.hint.1, self.hint.2) != (text, max, s) {
                let hint = font(15.0, "400");
                let lines = layout::wrap(text, max, &|t| self.measure(&hint, t).unwrap_or(0.0));
                self.hint = (text, max, s, lines);
            }
            let lines = &self.hint.3;
            let step = 20.0 * s;
            let top = h / 2.0 - step * (lines.len() as f64 - 1.0) / 2.0;
            for (i, line) in lines.iter().enumerate() {
                let y = top + step * i as f64;
                let _ = ctx.fill_text_with_max_width(line, w / 2.0 + gutter / 2.0, y, span);
            }
        }
        if view.paused {
            ctx.set_text_align("right");
            ctx.set_font(&font(13.0, "700"));
            ctx.set_fill_style_str(VERMILLION);
            let _ = ctx.fill_text(word("paused-mark"), w - 10.0, h - 14.0 * s);
        }
        let tag_font = font(12.0, "700");
        for (r, _, text) in &tags {
            self.draw_tag(&tag_font, text, r, s);
        }
        hits
    }

    /// A tag of `text` in `r`: a pill that reads as something to click.
    fn draw_tag(&self, font: &str, text: &str, r: &Rect, s: f64) {
        let ctx = &self.ctx;
        ctx.begin_path();
        let _ = ctx.round_rect_with_f64(r.cx - r.w / 2.0, r.cy - r.h / 2.0, r.w, r.h, r.h / 2.0);
        ctx.set_fill_style_str("rgba(255,255,255,0.94)");
        ctx.fill();
        ctx.set_stroke_style_str(BLUE);
        ctx.set_line_width(1.5);
        ctx.stroke();
        ctx.set_text_align("center");
        ctx.set_font(font);
        ctx.set_fill_style_str(BLUE);
        let _ = ctx.fill_text_with_max_width(text, r.cx, r.cy, r.w - 8.0 * s);
    }

    /// How many items are older than the oldest the last frame drew whole (items are in the
    /// order of their ids): with none drawn whole, all of the first `newest`.
    fn earlier(&self, model: &Model, newest: usize) -> usize {
        self.oldest_whole.map_or(newest, |id| model.items().partition_point(|item| item.id < id)).min(newest)
    }

    /// What lies beyond the last frame's edges while paused (`data-beyond`).
    /// The lanes the last frame drew, left to right: a closed lane, or an outside client's,
    /// only while something in view is on it.
    pub fn columns(&self) -> &[usize] {
        &self.columns
    }

    pub fn beyond(&self) -> Beyond {
        self.beyond
    }

    /// Whether the tag under (`x`, `y`) is the top edge's, if one is there.
    pub fn tag_at(&self, x: f64, y: f64) -> Option<bool> {
        self.tags
            .iter()
            .find(|(r, _)| (x - r.cx).abs() <= r.w / 2.0 && (y - r.cy).abs() <= r.h / 2.0)
            .map(|&(_, top)| top)
    }

    /// Where the top edge's tag (or, not `top`, the bottom's) was drawn, if it was: for tests.
    pub fn tag_rect(&self, top: bool) -> Option<Rect> {
        self.tags.iter().find(|(_, t)| *t == top).map(|&(r, _)| r)
    }

    /// The `end_us` that turns the paused diagram a page `back` (or on), by items rather than
    /// by time, since a burst's rows stack up past their time. Back, the newest item the top
    /// edge cut ends the page, at the bottom; if that page would reach the first item, the
    /// first is put under the lane headers instead, with as much after it as fits. On, the
    /// oldest item not drawn whole at the bottom comes in under the lane headers, with as
    /// much after it as fits. No item is skipped either way. `None` if there is nothing to
    /// turn to.
    pub fn turn_page(&self, model: &Model, view: &View, back: bool) -> Option<u64> {
        let items = model.items();
        let newest = items.partition_point(|item| item.t_us <= view.end_us);
        let page = Page {
            us_per_px: view.us_per_px,
            gap: ROW_GAP * view.scale,
            below: self.size.1 - self.header,
            bottom: 8.0 * view.scale,
        };
        page.turn(items, view.end_us, self.earlier(model, newest), back)
    }

    /// The oldest item the last frame drew whole, below the lane headers.
    pub fn oldest_whole(&self) -> Option<u64> {
        self.oldest_whole
    }

    /// The closest zoom from `at_least` to `at_most` µs per pixel at which every item of the
    /// `story` (relay times) stands inside the canvas, once its end is `bottom_px` above the
    /// bottom edge: a lesson whole, with room for the labels over its first row. `None` if
    /// none does.
    pub fn zoom_to_fit(
        &self,
        model: &Model,
        scale: f64,
        story: std::ops::RangeInclusive<u64>,
        bottom_px: f64,
        at_least: f64,
        at_most: f64,
    ) -> Option<f64> {
        let (items, end) = (model.items(), *story.end());
        let first = items.partition_point(|item| item.t_us < *story.start());
        let last = items.partition_point(|item| item.t_us <= end).max(first);
        let told: Vec<&Item> = items.range(first..last).collect();
        let mut points = row_points(&told);
        for p in &mut points {
            p.t_us = p.t_us.min(end);
        }
        let gap = ROW_GAP * scale;
        // The lane headers as the last frame drew them: a fit follows a frame at this size
        // (and, but for a link changed since, with these links' lines).
        let room = self.size.1 - self.header - HEADROOM_GAPS * gap - 8.0 * scale - bottom_px;
        layout::zoom_to_fit(&points, end, room, gap, at_least, at_most)
    }

    /// How wide `text` is in `font`, at most `max`, with room for its halo.
    fn text_width(&self, font: &str, text: &str, max: f64) -> f64 {
        clamp_width(self.measure(font, text), max)
    }

    /// How wide `text` is in `font`, if the canvas can say.
    fn measure(&self, font: &str, text: &str) -> Option<f64> {
        self.ctx.set_font(font);
        self.ctx.measure_text(text).ok().map(|m| m.width())
    }

    /// Text with a white halo, so it stays readable over lines.
    fn halo_text(&self, text: &str, x: f64, y: f64, max: f64, colour: &str) {
        let ctx = &self.ctx;
        ctx.set_stroke_style_str("rgba(252,252,253,0.92)");
        ctx.set_line_width(4.0);
        let _ = ctx.stroke_text_with_max_width(text, x, y, max.max(30.0));
        ctx.set_fill_style_str(colour);
        let _ = ctx.fill_text_with_max_width(text, x, y, max.max(30.0));
    }

    /// An arrowhead at (x2, y2), its sides 0.45 rad either side of the line from (x1, y1). The
    /// line's direction is turned by that angle with its cosine and sine written out, so the
    /// page carries no trigonometry: `atan2`, `sin` and `cos` would cost the bundle ~4 KB.
    fn head(&self, x1: f64, y1: f64, x2: f64, y2: f64, size: f64) {
        const COS: f64 = 0.900_447_102_352_676_9; // cos 0.45
        const SIN: f64 = 0.434_965_534_111_230_2; // sin 0.45
        let (dx, dy) = (x2 - x1, y2 - y1);
        let len = (dx * dx + dy * dy).sqrt();
        let (ux, uy) = if len > 0.0 { (dx / len, dy / len) } else { (1.0, 0.0) };
        let ctx = &self.ctx;
        ctx.begin_path();
        ctx.move_to(x2, y2);
        ctx.line_to(x2 - size * (ux * COS + uy * SIN), y2 - size * (uy * COS - ux * SIN));
        ctx.line_to(x2 - size * (ux * COS - uy * SIN), y2 - size * (uy * COS + ux * SIN));
        ctx.close_path();
        ctx.fill();
    }

    /// ∅ where a datagram reached nobody, or ⊘ (`barred`) where the kernel kept it.
    fn nothing(&self, x: f64, y: f64, r: f64, barred: bool) {
        let ctx = &self.ctx;
        ctx.set_line_width(2.5);
        ctx.begin_path();
        let _ = ctx.arc(x, y, r, 0.0, std::f64::consts::TAU);
        if barred {
            ctx.move_to(x - r * 0.7, y + r * 0.7);
            ctx.line_to(x + r * 0.7, y - r * 0.7);
        } else {
            ctx.move_to(x - r * 1.2, y + r * 1.2);
            ctx.line_to(x + r * 1.2, y - r * 1.2);
        }
        ctx.stroke();
    }

    fn polyline(&self, points: &[(f64, f64)]) {
        let ctx = &self.ctx;
        ctx.begin_path();
        for (i, &(x, y)) in points.iter().enumerate() {
            if i == 0 {
                ctx.move_to(x, y);
            } else {
                ctx.line_to(x, y);
            }
        }
        ctx.stroke();
    }

    /// ↯ where the link lost a datagram: a zigzag, unlike the ✕ of a server's drop.
    fn bolt(&self, x: f64, y: f64, r: f64) {
        let ctx = &self.ctx;
        ctx.set_line_width(3.0);
        ctx.begin_path();
        ctx.move_to(x - r * 0.5, y - r);
        ctx.line_to(x + r * 0.45, y - r * 0.15);
        ctx.line_to(x - r * 0.45, y + r * 0.15);
        ctx.line_to(x + r * 0.5, y + r);
        ctx.stroke();
    }

    fn cross(&self, x: f64, y: f64, r: f64) {
        let ctx = &self.ctx;
        ctx.set_line_width(3.0);
        ctx.begin_path();
        ctx.move_to(x - r, y - r);
        ctx.line_to(x + r, y + r);
        ctx.move_to(x + r, y - r);
        ctx.line_to(x - r, y + r);
        ctx.stroke();
    }
}

/// A label the frame wants drawn, and where it may go.
struct Label {
    text: String,
    font: String,
    colour: &'static str,
    /// The time to print in the left gutter, at this height, if the label is placed.
    time: Option<(u64, f64)>,
    want: Wanted,
}

/// How many places [`along_line`] offers on each side of the line.
const ALONG: usize = 5;

/// `cx` moved so a label `w` wide stays inside `bounds`.
fn clamp_x(cx: f64, w: f64, bounds: &Rect) -> f64 {
    let (lo, hi) = (bounds.cx - bounds.w / 2.0 + w / 2.0, bounds.cx + bounds.w / 2.0 - w / 2.0);
    cx.min(hi).max(lo)
}

/// Places for a label `w` × `h` along the line from `a` to `b`, best first: over the line at its
/// middle, then nearer either end, then the same under it ([`ALONG`] on each side), each just
/// far enough off that the line, however steep, clears the label by `clear`.
fn along_line(a: (f64, f64), b: (f64, f64), w: f64, h: f64, clear: f64, bounds: &Rect) -> Vec<(f64, f64)> {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let slope = if dx.abs() < 1e-6 { 0.0 } else { (dy / dx).abs().min(4.0) };
    let off = h / 2.0 + clear + slope * w / 2.0;
    let mut at = vec![(0.0, 0.0); 2 * ALONG];
    for (i, t) in [0.5, 0.35, 0.65, 0.2, 0.8].into_iter().enumerate() {
        let (x, y) = (a.0 + dx * t, a.1 + dy * t);
        let x = clamp_x(x, w, bounds);
        // Clamping moved the box along: the line under it is higher or lower there.
        let y = y + (x - (a.0 + dx * t)) * if dx.abs() < 1e-6 { 0.0 } else { dy / dx };
        at[i] = (x, y - off);
        at[ALONG + i] = (x, y + off);
    }
    at
}

/// A mark's glyph, short text and colour on the canvas.
fn mark_text(kind: &MarkKind, text: &str, lanes: &[Lane]) -> (&'static str, String, &'static str) {
    let label = |lane: usize| lanes.get(lane).map_or("?", |l| l.label.as_str());
    match kind {
        MarkKind::Retry { attempt, waited_ms } => ("↻", fill("mark-retry", &[attempt, waited_ms]), ORANGE),
        MarkKind::GiveUp { attempts, waited_ms } => {
            ("✕", fill("mark-giveup", &[attempts, waited_ms]), VERMILLION)
        }
        MarkKind::Refused => ("⊘", "ECONNREFUSED".to_owned(), VERMILLION),
        MarkKind::Join { who } => ("+", fill("mark-join", &[&label(*who)]), GREEN),
        MarkKind::Leave { who } => ("−", fill("mark-leave", &[&label(*who)]), MUTED),
        MarkKind::Evict { who } => ("✕", fill("mark-evict", &[&label(*who)]), VERMILLION),
        MarkKind::Broadcast { recipients } => ("✱", fill("mark-broadcast", &[recipients]), BLUE),
        MarkKind::Configured | MarkKind::LinkConfigured { .. } => {
            let short = text.split_once(": ").map_or(text, |(_, rest)| rest);
            ("⚙", short.to_owned(), INK)
        }
        MarkKind::Opened => ("●", word("mark-opened").to_owned(), BLUE),
        MarkKind::Closed => ("■", word("mark-closed").to_owned(), MUTED),
        MarkKind::RoomClosed => ("■", word("mark-room-closed").to_owned(), MUTED),
        MarkKind::Lagged { missed } => ("⋯", fill("mark-lagged", &[missed]), VERMILLION),
    }
}
