//! The panels: what the frame loop writes into the DOM besides the canvas: the event log,
//! the stats, the RTT histogram, chat liveness, the lanes, the link panel's values, the
//! details of the selected item and the status line.

use super::{App, ConnState, LOG_LINES, LOG_PER_WRITE, log};
use crate::connection;
use crate::dom;
use crate::model::{LaneKind, ms_text};
use crate::text::{fill, tr, word};

impl App {
    pub(super) fn write_log(&mut self) {
        let lines: Vec<_> = self.model.take_log(LOG_PER_WRITE).collect();
        if lines.is_empty() {
            return;
        }
        let Some(list) = self.document.get_element_by_id("log") else { return };
        for line in &lines {
            let arrow = line.item.and_then(|id| self.model.arrow(id));
            if let Err(e) = dom::prepend_log_line(&self.document, &list, line, arrow) {
                log(&format!("udp-playground: log line: {e:?}"));
            }
        }
        dom::trim_children(&list, LOG_LINES);
    }

    pub(super) fn render_panels(&mut self, now_us: u64) {
        let d = self.document.clone();
        let stats = self.model.stats().clone();
        let rows = dom::stats_rows(&stats);
        if Some(&rows) != self.shown.stats.as_ref() {
            dom::render_stats(&d, &rows, self.shown.stats.as_deref());
            self.shown.stats = Some(rows);
        }
        if Some(stats.rtt_buckets) != self.shown.rtt {
            dom::render_rtt(&d, &stats);
            self.shown.rtt = Some(stats.rtt_buckets);
        }
        let clients = self.model.chat_clients(now_us);
        if self.shown.liveness.as_ref() != Some(&clients) {
            dom::render_liveness(&d, &clients, self.shown.liveness.as_deref());
            self.shown.liveness = Some(clients);
        }
        // Who is here now or drawn, in the diagram's order (clients, then servers), and how
        // many more the page knows: a class's morning of `nc` windows and closed sockets would
        // fill the screen. (Not only the columns drawn: with a class, those change every row.)
        let all = self.model.lanes();
        let mut drawn = vec![false; all.len()];
        for &i in self.renderer.columns() {
            if let Some(d) = drawn.get_mut(i) {
                *d = true;
            }
        }
        // By rank, a pass each: a sort would cost the bundle more than the few passes cost.
        let mut here: Vec<dom::LaneRow> = Vec::new();
        for rank in 0..=LaneKind::LAST_RANK {
            for (i, l) in all.iter().enumerate() {
                if l.kind.rank() != rank || !(drawn[i] || self.model.present(i, now_us)) {
                    continue;
                }
                let label = match self.model.crowd_size(i) {
                    Some(n) => format!("{} ×{n}", l.label),
                    None => l.label.clone(),
                };
                here.push((label, l.kind.as_str(), l.closed));
            }
        }
        let lanes = (here, all.len());
        if self.shown.lanes.as_ref() != Some(&lanes) {
            dom::render_lanes(&d, &lanes.0, lanes.1);
            self.shown.lanes = Some(lanes);
        }
        let links = Some((self.link_server, self.model.links_revision()));
        if links != self.shown.links {
            dom::render_link_panel(&d, &self.model, self.link_server);
            self.shown.links = links;
        }
        let summary = dom::diagram_summary(&self.model);
        if summary.1 != self.shown.summary {
            if let Some(canvas) = d.get_element_by_id("diagram") {
                let _ = canvas.set_attribute("aria-label", &summary.1);
                let _ = canvas.set_attribute("data-arrows", &summary.0.to_string());
            }
            self.shown.summary = summary.1;
        }
        // What is in view, for tests and tools: the item in the log's `data-item` of the
        // oldest arrow or mark the diagram shows whole, and the canvas height (CSS pixels)
        // it was drawn at, and how many lanes it drew (`data-columns`).
        // While paused, how many items lie beyond the top and bottom edges, of how many, and
        // where their tags are, to click: `data-beyond="EARLIER NEWER ITEMS [^ X Y] [v X Y]"`
        // (the top's and the bottom's centres, CSS pixels in the canvas).
        let beyond = self.renderer.beyond();
        let mut beyond = format!("{} {} {}", beyond.earlier, beyond.newer, self.model.items().len());
        for (top, mark) in [(true, '^'), (false, 'v')] {
            if let Some(r) = self.renderer.tag_rect(top) {
                beyond.push_str(&format!(" {mark} {} {}", r.cx as i32, r.cy as i32));
            }
        }
        let drawn = (
            self.renderer.oldest_whole(),
            self.renderer.height() as u32,
            beyond,
            self.renderer.columns().len(),
        );
        if drawn != self.shown.drawn {
            if let Some(canvas) = d.get_element_by_id("diagram") {
                let _ = match drawn.0 {
                    Some(id) => canvas.set_attribute("data-oldest-item", &id.to_string()),
                    None => canvas.remove_attribute("data-oldest-item"),
                };
                let _ = canvas.set_attribute("data-drawn-height", &drawn.1.to_string());
                let _ = canvas.set_attribute("data-beyond", &drawn.2);
                let _ = canvas.set_attribute("data-columns", &drawn.3.to_string());
            }
            self.shown.drawn = drawn;
        }
        let visible = self.renderer.height() * self.view.us_per_px;
        // A replay that follows its newest event is not live: it says so.
        let state = tr(match (self.view.paused, self.toolbox.replaying()) {
            (true, _) => "paused",
            (false, true) => "following",
            (false, false) => "live",
        });
        let scale = fill("scale", &[&ms_text(self.view.us_per_px as u64), &ms_text(visible as u64), &state]);
        if scale != self.shown.scale {
            dom::set_text(&d, "scale", &scale);
            dom::set_pressed(&d, "pause-btn", self.view.paused);
            dom::set_text(&d, "pause-btn", tr(if self.view.paused { "Resume" } else { "Pause" }));
            self.shown.scale = scale;
        }
        self.update_status(self.now_ms());
    }

    pub(super) fn render_details(&mut self, force: bool) {
        let dg = self.view.selected.and_then(|id| self.model.arrow(id)).and_then(|a| a.dg);
        self.follow_headers(dg);
        let Some(id) = self.view.selected else {
            if force || self.shown.details.is_some() {
                dom::render_details(&self.document, None, &self.model);
                self.shown.details = None;
            }
            return;
        };
        let key = self.model.item(id).map(|i| i.body.clone());
        if !force && self.shown.details.as_ref().is_some_and(|(i, k)| *i == id && *k == key) {
            return;
        }
        dom::render_details(&self.document, self.model.item(id), &self.model);
        self.shown.details = Some((id, key));
    }

    pub(super) fn update_status(&mut self, now_ms: f64) {
        if self.error_until_ms > 0.0 && now_ms >= self.error_until_ms {
            self.error_until_ms = 0.0;
            if let Some(el) = self.document.get_element_by_id("error") {
                let _ = el.set_attribute("hidden", "");
            }
        }
        let (mut conn, mut text) = match self.conn {
            ConnState::Connecting => ("connecting", tr("Connecting to the relay…").to_owned()),
            ConnState::Open => {
                let session = self.model.session.clone().unwrap_or_default();
                let mode = if self.view.projector { tr("· projector: all traffic") } else { "" };
                let gap = if mode.is_empty() { "" } else { " " };
                ("open", format!("{} {session}{gap}{mode}", tr("Connected · session")))
            }
            ConnState::Closed => {
                let wait = connection::wait_s(now_ms, self.retry_at_ms);
                let why = match (&self.refused, &self.closed_because) {
                    (Some(why), _) => why.clone(),
                    (None, Some(code)) => fill("status-closed-by", &[code]),
                    (None, None) => word("status-no-answer").to_owned(),
                };
                ("closed", fill("status-disconnected", &[&why, &crate::model::fixed(wait, 0)]))
            }
        };
        if !self.notice.is_empty() {
            text = format!("{text} — {}", self.notice);
        }
        if let Some(replay) = self.toolbox.status() {
            (conn, text) = ("replay", replay);
        }
        let key = format!("{conn}{text}");
        if key != self.shown.status {
            if let Some(el) = self.document.get_element_by_id("status") {
                el.set_text_content(Some(&text));
                let _ = el.set_attribute("data-conn", conn);
                // The pill keeps to one line; the whole text is its tooltip.
                let _ = el.set_attribute("title", &text);
            }
            self.shown.status = key;
        }
        if self.conn == ConnState::Open && self.notice_until_open {
            self.notice.clear();
            self.notice_until_open = false;
        }
    }
}
