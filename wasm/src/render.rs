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
//! Colours are Okabe–Ito (safe for colour-blind viewers) and every fate also has its own line
//! style and word: dashed and ✕ for a drop, LATE and DUP for replies that are not the answer.
//! The words are [`Arrow::label`]'s, the same the event log and its `data-label` carry.

use std::collections::HashMap;

use wasm_bindgen::JsValue;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};

use crate::model::{Arrow, Body, Fate, Item, LaneKind, MarkKind, Model};

const INK: &str = "#111111";
const MUTED: &str = "#5b6068";
const LANE: &str = "#b8bcc4";
const BLUE: &str = "#0072b2";
const GREEN: &str = "#009e73";
const ORANGE: &str = "#e69f00";
const VERMILLION: &str = "#d55e00";
const PURPLE: &str = "#cc79a7";
const GREY: &str = "#8a9099";

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
    /// 1.0 on a laptop, larger in projector mode.
    pub scale: f64,
}

impl View {
    pub const MIN_US_PER_PX: f64 = 20.0;
    pub const MAX_US_PER_PX: f64 = 200_000.0;
}

impl Default for View {
    fn default() -> Self {
        Self { paused: false, end_us: 0, us_per_px: 8_000.0, selected: None, scale: 1.0 }
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
        }
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
        let font = |px: f64, weight: &str| format!("{weight} {:.0}px system-ui, sans-serif", px * s);
        ctx.clear_rect(0.0, 0.0, w, h);

        let gutter = 70.0 * s;
        let header = 44.0 * s;
        let gap = 15.0 * s;

        // Lane columns: clients left, servers right.
        let lanes = model.lanes();
        let mut order: Vec<usize> = (0..lanes.len()).collect();
        order.sort_by_key(|&i| (lanes[i].kind.rank(), i));
        let n = order.len().max(1) as f64;
        let span = (w - gutter - 10.0).max(10.0);
        let mut lane_x = vec![0.0; lanes.len()];
        for (slot, &i) in order.iter().enumerate() {
            lane_x[i] = gutter + span * (slot as f64 + 0.5) / n;
        }

        // Lane lines and headers.
        ctx.set_line_width(1.0);
        for (i, lane) in lanes.iter().enumerate() {
            let x = lane_x[i];
            ctx.set_stroke_style_str(LANE);
            let _ = ctx.set_line_dash(if lane.closed { &self.dash_lane } else { &self.dash_none });
            ctx.begin_path();
            ctx.move_to(x, header);
            ctx.line_to(x, h);
            ctx.stroke();
        }
        let _ = ctx.set_line_dash(&self.dash_none);

        // Which events are visible, and where: bottom-up from `end_us`.
        let time_y = |t: u64| h - 8.0 * s - (view.end_us as f64 - t as f64) / view.us_per_px;
        let items = model.items();
        let newest = items.partition_point(|item| item.t_us <= view.end_us);
        let room = ((h - header) / gap).ceil() as usize * 2 + 64;
        let first = newest.saturating_sub(room);
        let visible: Vec<&Item> = items.range(first..newest).collect();
        let mut points: Vec<(u64, u64)> = Vec::with_capacity(visible.len() * 2);
        for item in &visible {
            points.push((item.seq, item.t_us));
            if let Body::Arrow(Arrow { end_seq: Some(end), t_end_us: Some(t), .. }) = &item.body {
                points.push((*end, *t));
            }
        }
        points.sort_unstable_by(|a, b| b.cmp(a));
        points.dedup_by_key(|p| p.0);
        let mut ys: HashMap<u64, f64> = HashMap::with_capacity(points.len());
        let mut below = f64::INFINITY;
        for (seq, t) in points {
            let y = time_y(t).min(below - gap);
            ys.insert(seq, y);
            below = y;
        }

        let mut hits = Vec::with_capacity(visible.len());
        let mut last_label_y = f64::NEG_INFINITY;
        ctx.set_text_baseline("middle");
        // Traffic is drawn below the lane headers only, however densely it is packed.
        ctx.save();
        ctx.begin_path();
        ctx.rect(0.0, header, w, h - header);
        ctx.clip();
        for item in &visible {
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
                    let to_server = matches!(lanes[arrow.to].kind, LaneKind::Server(_));
                    let (colour, dash) = match arrow.fate {
                        Fate::Delivered if to_server => (BLUE, &self.dash_none),
                        Fate::Delivered => (GREEN, &self.dash_none),
                        Fate::InFlight => (GREY, &self.dash_drop),
                        Fate::Dropped | Fate::Vanished => (VERMILLION, &self.dash_drop),
                        Fate::NotSent => (VERMILLION, &self.dash_none),
                        Fate::Late => (ORANGE, &self.dash_late),
                        Fate::Duplicate => (PURPLE, &self.dash_dup),
                    };
                    // A drop dies just short of the server that threw it away, where the ✕ is
                    // (not on a lane line, which would blame another endpoint).
                    // A datagram the kernel refused never left its socket: a stub toward the
                    // target. One that vanished dies on its target's lane, where nothing listened.
                    let (ex, ey) = match arrow.fate {
                        Fate::Dropped => {
                            let short = (28.0 * s).min((x2 - x1).abs() / 2.0);
                            let share = if x2 == x1 { 1.0 } else { 1.0 - short / (x2 - x1).abs() };
                            (x1 + (x2 - x1) * share, y1 + (y2 - y1) * share)
                        }
                        Fate::NotSent => {
                            let stub = (30.0 * s).min((x2 - x1).abs() / 2.0);
                            (x1 + stub * (x2 - x1).signum(), y1)
                        }
                        _ => (x2, y2),
                    };
                    let selected = view.selected == Some(item.id);
                    if selected {
                        ctx.set_stroke_style_str("rgba(230,159,0,0.45)");
                        ctx.set_line_width(9.0 * s);
                        let _ = ctx.set_line_dash(&self.dash_none);
                        ctx.begin_path();
                        ctx.move_to(x1, y1);
                        ctx.line_to(ex, ey);
                        ctx.stroke();
                    }
                    ctx.set_stroke_style_str(colour);
                    ctx.set_fill_style_str(colour);
                    ctx.set_line_width(if selected { 3.0 } else { 2.0 } * s);
                    let _ = ctx.set_line_dash(dash);
                    ctx.begin_path();
                    ctx.move_to(x1, y1);
                    ctx.line_to(ex, ey);
                    ctx.stroke();
                    let _ = ctx.set_line_dash(&self.dash_none);
                    match arrow.fate {
                        Fate::Dropped => self.cross(ex, ey, 7.0 * s),
                        Fate::Vanished => self.nothing(ex, ey, 7.0 * s, false),
                        Fate::NotSent => self.nothing(ex, ey, 7.0 * s, true),
                        _ => self.head(x1, y1, ex, ey, 9.0 * s),
                    }
                    hits.push(Hit { id: item.id, x1, y1, x2: ex, y2: ey });

                    // The label, when there is room for it.
                    let mid_y = (y1 + ey) / 2.0;
                    if mid_y - last_label_y >= 14.0 * s || selected {
                        last_label_y = mid_y;
                        let note = arrow.note();
                        let bold = note.is_some()
                            || matches!(
                                arrow.fate,
                                Fate::Late | Fate::Duplicate | Fate::Dropped | Fate::Vanished | Fate::NotSent
                            );
                        ctx.set_font(&font(12.0, if bold { "700" } else { "400" }));
                        ctx.set_text_align("center");
                        let max = (x2 - x1).abs().max(60.0 * s) - 8.0;
                        self.halo_text(&arrow.headline(), (x1 + x2) / 2.0, mid_y - 7.0 * s, max, colour);
                        // A note (a cut read, a reply taken for the wrong attempt) goes under
                        // the line, in its own words, wide enough to read.
                        if let Some(note) = note {
                            let wide = max.max(span * 0.6);
                            let cx = ((x1 + x2) / 2.0).clamp(gutter + wide / 2.0, gutter + span - wide / 2.0);
                            self.halo_text(&note, cx, mid_y + 8.0 * s, wide, VERMILLION);
                            last_label_y = mid_y + 14.0 * s;
                        }
                        // The time on the left.
                        ctx.set_font(&font(10.5, "400"));
                        ctx.set_text_align("right");
                        ctx.set_fill_style_str(MUTED);
                        let _ = ctx.fill_text(&format!("{:.3} s", item.t_us as f64 / 1e6), gutter - 8.0, y1);
                    }
                }
                Body::Mark(mark) => {
                    let Some(&x) = lane_x.get(mark.lane) else { continue };
                    let (glyph, text, colour) = mark_text(&mark.kind, &mark.text);
                    let selected = view.selected == Some(item.id);
                    ctx.set_font(&font(12.0, "700"));
                    // Text goes toward the middle of the diagram.
                    let right_side = x > gutter + span / 2.0;
                    ctx.set_text_align(if right_side { "right" } else { "left" });
                    let tx = if right_side { x - 12.0 * s } else { x + 12.0 * s };
                    if let MarkKind::Lagged { .. } = mark.kind {
                        ctx.set_fill_style_str("rgba(213,94,0,0.12)");
                        ctx.fill_rect(gutter, y1 - gap / 2.0, span, gap);
                    }
                    ctx.set_fill_style_str(colour);
                    ctx.set_text_align("center");
                    let _ = ctx.fill_text(glyph, x, y1);
                    ctx.set_text_align(if right_side { "right" } else { "left" });
                    self.halo_text(&text, tx, y1, span / 2.0, colour);
                    if selected {
                        ctx.set_stroke_style_str(ORANGE);
                        ctx.set_line_width(2.0 * s);
                        ctx.stroke_rect(x - 9.0 * s, y1 - 9.0 * s, 18.0 * s, 18.0 * s);
                    }
                    hits.push(Hit { id: item.id, x1: x - 8.0, y1, x2: x + 8.0, y2: y1 });
                }
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
            // An outside lane's address is on the line below; the header keeps to the word.
            let name = if lane.kind == LaneKind::Outside && lane.label.starts_with("outside ") {
                "outside"
            } else {
                lane.label.as_str()
            };
            let label = format!("{glyph} {name}{}", if lane.closed { " (closed)" } else { "" });
            let _ = ctx.fill_text_with_max_width(&label, x, header * 0.38, (slot - 6.0).max(20.0));
            if let Some(addr) = lane.addr {
                ctx.set_font(&font(10.0, "400"));
                ctx.set_fill_style_str(MUTED);
                let _ = ctx.fill_text_with_max_width(
                    &format!(":{}", addr.port()),
                    x,
                    header * 0.75,
                    (slot - 6.0).max(20.0),
                );
            }
        }
        if lanes.is_empty() {
            ctx.set_text_align("center");
            ctx.set_font(&font(15.0, "400"));
            ctx.set_fill_style_str(MUTED);
            let _ = ctx.fill_text("Waiting for the relay…", w / 2.0, h / 2.0);
        } else if model.items().is_empty() {
            ctx.set_text_align("center");
            ctx.set_font(&font(15.0, "400"));
            ctx.set_fill_style_str(MUTED);
            let _ = ctx.fill_text(
                "Open a socket on the left and send something: its datagrams appear here.",
                w / 2.0 + gutter / 2.0,
                h / 2.0,
            );
        }
        if view.paused {
            ctx.set_text_align("right");
            ctx.set_font(&font(13.0, "700"));
            ctx.set_fill_style_str(VERMILLION);
            let _ = ctx.fill_text("❚❚ PAUSED", w - 10.0, h - 14.0 * s);
        }
        hits
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

    fn head(&self, x1: f64, y1: f64, x2: f64, y2: f64, size: f64) {
        let angle = (y2 - y1).atan2(x2 - x1);
        let ctx = &self.ctx;
        ctx.begin_path();
        ctx.move_to(x2, y2);
        ctx.line_to(x2 - size * (angle - 0.45).cos(), y2 - size * (angle - 0.45).sin());
        ctx.line_to(x2 - size * (angle + 0.45).cos(), y2 - size * (angle + 0.45).sin());
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

/// A mark's glyph, short text and colour on the canvas.
fn mark_text(kind: &MarkKind, text: &str) -> (&'static str, String, &'static str) {
    match kind {
        MarkKind::Retry { attempt, waited_ms } => {
            ("↻", format!("retry {attempt} after {waited_ms} ms"), ORANGE)
        }
        MarkKind::GiveUp { attempts, waited_ms } => {
            ("✕", format!("GAVE UP after {attempts} attempts, {waited_ms} ms"), VERMILLION)
        }
        MarkKind::Refused => ("⊘", "ECONNREFUSED".to_owned(), VERMILLION),
        MarkKind::Join => ("+", "joined".to_owned(), GREEN),
        MarkKind::Leave => ("−", "left".to_owned(), MUTED),
        MarkKind::Evict => ("✕", "EVICTED".to_owned(), VERMILLION),
        MarkKind::Broadcast { recipients } => ("✱", format!("broadcast → {recipients}"), BLUE),
        MarkKind::Configured => {
            let short = text.split_once(": ").map_or(text, |(_, rest)| rest);
            ("⚙", short.to_owned(), INK)
        }
        MarkKind::Opened => ("●", "opened".to_owned(), BLUE),
        MarkKind::Closed => ("■", "closed".to_owned(), MUTED),
        MarkKind::Lagged { missed } => ("⋯", format!("{missed} events skipped"), VERMILLION),
    }
}
