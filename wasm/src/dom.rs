//! Small DOM helpers and the panels made of DOM: the event log, liveness, stats, the RTT
//! histogram, the lane legend, the details of a selected arrow and the link panel's values.
//!
//! Called by `app.rs` from the frame loop (at most ten times a second for the panels) and
//! from control handlers. Text goes in with `set_text_content`, never as HTML, so payloads
//! from the network cannot inject markup.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::{Document, Element, HtmlInputElement, HtmlSelectElement};

use protocol::{Dir, HoldReason, LinkDropReason, ServerName};

use crate::model::fixed;
use crate::model::{
    Arrow, Body, ChatView, Fate, Item, LINK_FIELDS, LogLine, Model, RTT_BUCKETS_US, Stats, cut_text,
    hex_dump, link_summary, link_values, misattributed_text, ms_text, payload_bytes, thousands,
};
use crate::text::{fill, tr, word};

pub fn by_id(document: &Document, id: &str) -> Result<Element, JsValue> {
    document.get_element_by_id(id).ok_or_else(|| JsValue::from_str(&format!("the page has no #{id}")))
}

fn input(document: &Document, id: &str) -> Option<HtmlInputElement> {
    document.get_element_by_id(id)?.dyn_into().ok()
}

fn select(document: &Document, id: &str) -> Option<HtmlSelectElement> {
    document.get_element_by_id(id)?.dyn_into().ok()
}

pub fn input_value(document: &Document, id: &str) -> String {
    input(document, id).map(|i| i.value()).unwrap_or_default()
}

/// A range input's value: its browser always gives a number.
pub fn input_u64(document: &Document, id: &str) -> Option<u64> {
    crate::model::decimal(input_value(document, id).trim()).filter(|v| *v >= 0.0).map(|v| v.round() as u64)
}

pub fn set_input(document: &Document, id: &str, value: &str) {
    if let Some(i) = input(document, id) {
        i.set_value(value);
    }
}

pub fn checked(document: &Document, id: &str) -> bool {
    input(document, id).is_some_and(|i| i.checked())
}

pub fn select_value(document: &Document, id: &str) -> String {
    select(document, id).map(|s| s.value()).unwrap_or_default()
}

pub fn set_select(document: &Document, id: &str, value: &str) {
    if let Some(s) = select(document, id) {
        s.set_value(value);
    }
}

/// Replaces a select's options with `(value, label)` pairs, keeping the selection if it is
/// still offered.
pub fn fill_select(document: &Document, id: &str, options: &[(String, String)]) {
    let Some(s) = select(document, id) else { return };
    let keep = s.value();
    s.set_text_content(None);
    for (value, label) in options {
        if let Ok(option) = document.create_element("option") {
            let _ = option.set_attribute("value", value);
            option.set_text_content(Some(label));
            let _ = s.append_child(&option);
        }
    }
    if options.iter().any(|(v, _)| *v == keep) {
        s.set_value(&keep);
    }
}

pub fn set_text(document: &Document, id: &str, text: &str) {
    if let Some(el) = document.get_element_by_id(id) {
        el.set_text_content(Some(text));
    }
}

pub fn set_pressed(document: &Document, id: &str, on: bool) {
    if let Some(el) = document.get_element_by_id(id) {
        let _ = el.set_attribute("aria-pressed", if on { "true" } else { "false" });
    }
}

/// Creates `<tag class=…>text</tag>` inside `parent`.
pub fn child(
    document: &Document,
    parent: &Element,
    tag: &str,
    class: &str,
    text: &str,
) -> Result<Element, JsValue> {
    let el = document.create_element(tag)?;
    if !class.is_empty() {
        el.set_class_name(class);
    }
    if !text.is_empty() {
        el.set_text_content(Some(text));
    }
    parent.append_child(&el)?;
    Ok(el)
}

/// Adds one line at the top of the event log, with attributes tests and scripts can select:
/// the event's `data-kind`, `data-seq`, `data-socket` and `data-dg` (and `data-copy`, the
/// link's copy of it), and, for an event about a datagram, its arrow as drawn when the line is
/// written (`data-fate`; `data-label`, the words on the canvas; `data-link`, what the link did
/// to it, as words such as `in lost fragment` or `out held reordered`).
pub fn prepend_log_line(
    document: &Document,
    list: &Element,
    line: &LogLine,
    arrow: Option<&Arrow>,
) -> Result<(), JsValue> {
    let li = document.create_element("li")?;
    li.set_attribute("data-kind", &line.kind)?;
    li.set_attribute("data-seq", &line.seq.to_string())?;
    if let Some(socket) = &line.socket {
        li.set_attribute("data-socket", socket)?;
    }
    if let Some(item) = line.item {
        li.set_attribute("data-item", &item.to_string())?;
    }
    if let Some(dg) = line.dg {
        li.set_attribute("data-dg", &dg.to_string())?;
    }
    if let Some(copy) = line.copy {
        li.set_attribute("data-copy", &copy.to_string())?;
    }
    if let Some(arrow) = arrow {
        li.set_attribute("data-fate", arrow.fate.as_str())?;
        li.set_attribute("data-label", &arrow.label())?;
        if let Some(words) = arrow.link_words() {
            li.set_attribute("data-link", &words)?;
        }
    }
    li.set_text_content(Some(&format!("{:>9}  {}", fixed(line.t_us as f64 / 1e6, 3), line.text)));
    list.insert_before(&li, list.first_child().as_ref())?;
    Ok(())
}

/// Removes the oldest children past `keep`.
pub fn trim_children(list: &Element, keep: u32) {
    while list.child_element_count() > keep {
        match list.last_element_child() {
            Some(last) => last.remove(),
            None => break,
        }
    }
}

fn percent(p: f64) -> String {
    format!("{}%", fixed(p * 100.0, 0))
}

/// The stats as (label, value, key) rows.
pub fn stats_rows(stats: &Stats) -> Vec<(&'static str, String, &'static str)> {
    let measured = stats.measured_loss().map_or_else(|| "–".to_owned(), percent);
    let configured = stats.configured_drop.map_or_else(|| "?".to_owned(), percent);
    let mut rows = vec![
        ("Sent", stats.sent.to_string(), "sent"),
        ("Received", stats.received.to_string(), "received"),
        ("Dropped by the server", stats.dropped.to_string(), "dropped"),
        ("Retried", stats.retried.to_string(), "retried"),
        ("Duplicates (late)", format!("{} ({})", stats.duplicates, stats.late), "duplicates"),
        ("Gave up", stats.gave_up.to_string(), "gave-up"),
        ("Lossy loss: measured / set", format!("{measured} / {configured}"), "loss"),
        ("Mean RTT", stats.mean_rtt_us().map_or_else(|| "–".to_owned(), ms_text), "rtt"),
    ];
    if stats.refused > 0 {
        rows.push(("ECONNREFUSED", stats.refused.to_string(), "refused"));
    }
    if stats.link_lost_in + stats.link_lost_out > 0 {
        let lost = format!("{} / {}", stats.link_lost_in, stats.link_lost_out);
        rows.push(("Lost on the link: there / back", lost, "link-lost"));
    }
    if stats.link_copies > 0 {
        rows.push(("Copied by the link", stats.link_copies.to_string(), "link-copies"));
    }
    if stats.link_held > 0 {
        let held = format!("{} ({})", stats.link_held, stats.link_reordered);
        rows.push(("Held by the link (reordered)", held, "link-held"));
    }
    let rare = [
        ("Vanished (no socket took it)", stats.vanished, "vanished"),
        ("Not sent (the kernel refused)", stats.not_sent, "not-sent"),
        ("Cut by the receive buffer", stats.cut, "cut"),
        ("Taken for the wrong attempt", stats.misattributed, "misattributed"),
    ];
    for (label, count, key) in rare {
        if count > 0 {
            rows.push((label, count.to_string(), key));
        }
    }
    if stats.missed > 0 {
        rows.push(("Events missed (lag)", stats.missed.to_string(), "missed"));
    }
    rows
}

/// Writes the stats rows. When the same rows were shown (`shown`), only the values that
/// changed are written.
pub fn render_stats(
    document: &Document,
    rows: &[(&'static str, String, &'static str)],
    shown: Option<&[(&'static str, String, &'static str)]>,
) {
    let Some(dl) = document.get_element_by_id("stats") else { return };
    if let Some(shown) =
        shown.filter(|s| s.len() == rows.len() && s.iter().zip(rows).all(|(a, b)| a.2 == b.2))
    {
        // `dt`, `dd` pairs, in the rows' order.
        let mut el = dl.first_element_child();
        for (row, old) in rows.iter().zip(shown) {
            let dd = el.and_then(|dt| dt.next_element_sibling());
            if let Some(dd) = &dd
                && row.1 != old.1
            {
                dd.set_text_content(Some(&row.1));
            }
            el = dd.and_then(|dd| dd.next_element_sibling());
        }
        return;
    }
    dl.set_text_content(None);
    for (label, value, key) in rows {
        let _ = child(document, &dl, "dt", "", tr(label));
        if let Ok(dd) = child(document, &dl, "dd", "", value) {
            let _ = dd.set_attribute("data-stat", key);
        }
    }
}

/// The RTT histogram: one bar per bucket, height relative to the fullest.
pub fn render_rtt(document: &Document, stats: &Stats) {
    let Some(box_) = document.get_element_by_id("rtt") else { return };
    box_.set_text_content(None);
    let max = stats.rtt_buckets.iter().copied().max().unwrap_or(0).max(1);
    for (i, count) in stats.rtt_buckets.iter().enumerate() {
        let label = match RTT_BUCKETS_US.get(i) {
            Some(upper) => format!("< {}: {count}", ms_text(*upper)),
            None => format!("≥ {}: {count}", ms_text(RTT_BUCKETS_US[RTT_BUCKETS_US.len() - 1])),
        };
        if let Ok(bar) = child(document, &box_, "div", "bar", "") {
            let style = if *count == 0 {
                "height:2px;opacity:0.3".to_owned()
            } else {
                format!("height:{}%", fixed(6.0 + 94.0 * (*count as f64) / (max as f64), 0))
            };
            let _ = bar.set_attribute("style", &style);
            let _ = bar.set_attribute("title", &label);
            let _ = bar.set_attribute("aria-label", &label);
        }
    }
    // The axis under the bars.
    let axis_id = "rtt-axis";
    if document.get_element_by_id(axis_id).is_none()
        && let Some(parent) = box_.parent_element()
        && let Ok(axis) = document.create_element("div")
    {
        axis.set_id(axis_id);
        for text in ["0.25 ms", "RTT (log scale)", "≥ 256 ms"] {
            let _ = child(document, &axis, "span", "", tr(text));
        }
        let _ = parent.append_child(&axis);
    }
}

/// What one chat client's row shows: its glyph, label, detail and meter's style.
fn liveness_row(c: &ChatView) -> [String; 4] {
    let glyph = match c.state {
        crate::model::Liveness::Alive => "● ALIVE",
        crate::model::Liveness::Silent => "◐ SILENT",
        crate::model::Liveness::Evicted => "✕ EVICTED",
        crate::model::Liveness::Left => "○ LEFT",
    };
    let detail = match c.state {
        crate::model::Liveness::Alive | crate::model::Liveness::Silent => fill(
            "liveness-live",
            &[&fixed(c.silent_ms as f64 / 1000.0, 1), &fixed(c.countdown_ms as f64 / 1000.0, 1)],
        ),
        crate::model::Liveness::Evicted => {
            fill("liveness-evicted", &[&fixed(c.silent_ms as f64 / 1000.0, 1)])
        }
        crate::model::Liveness::Left => format!("· {}", tr("said quit")),
    };
    let share = if c.timeout_ms == 0 { 0.0 } else { c.countdown_ms as f64 / c.timeout_ms as f64 };
    [tr(glyph).to_owned(), format!(" {} ", c.label), detail, format!("width:{}%", fixed(share * 100.0, 0))]
}

/// The chat clients, one row each. A row already shown is changed in place, and only where it
/// differs from `shown` (what the panel showed last): a class's hundred countdowns tick ten
/// times a second, and rebuilding every row each time was most of the panel's cost.
pub fn render_liveness(document: &Document, clients: &[ChatView], shown: Option<&[ChatView]>) {
    let Some(list) = document.get_element_by_id("liveness") else { return };
    let shown = shown.filter(|s| !s.is_empty() && !clients.is_empty()).unwrap_or_default();
    if shown.is_empty() {
        list.set_text_content(None);
    }
    if clients.is_empty() {
        let _ = child(
            document,
            &list,
            "li",
            "muted",
            tr("No chat clients yet. Open a socket on chat and start its heartbeat."),
        );
        return;
    }
    let mut li = list.first_element_child();
    for (i, c) in clients.iter().enumerate() {
        let row = liveness_row(c);
        match (li.clone(), shown.get(i)) {
            (Some(el), Some(old)) => {
                if old.state != c.state {
                    let _ = el.set_attribute("data-state", c.state.as_str());
                }
                if old.peer != c.peer {
                    let _ = el.set_attribute("data-peer", &c.peer.to_string());
                }
                let before = liveness_row(old);
                // The row's parts in order: the state, the label, the detail, the meter.
                let mut part = el.first_element_child();
                for (k, (now, was)) in row.iter().zip(&before).enumerate() {
                    let Some(p) = part else { break };
                    if now != was {
                        if k == 3 {
                            if let Some(fill) = p.first_element_child() {
                                let _ = fill.set_attribute("style", now);
                            }
                        } else {
                            p.set_text_content(Some(now));
                        }
                    }
                    part = p.next_element_sibling();
                }
                li = el.next_element_sibling();
            }
            _ => {
                let Ok(el) = document.create_element("li") else { continue };
                let _ = el.set_attribute("data-state", c.state.as_str());
                let _ = el.set_attribute("data-peer", &c.peer.to_string());
                let [glyph, label, detail, width] = row;
                let _ = child(document, &el, "span", "state", &glyph);
                let _ = child(document, &el, "span", "", &label);
                let _ = child(document, &el, "span", "muted", &detail);
                if let Ok(meter) = child(document, &el, "div", "meter", "")
                    && let Ok(fill) = child(document, &meter, "span", "", "")
                {
                    let _ = fill.set_attribute("style", &width);
                }
                // Before the rows that were not reused, which go below.
                let _ = list.insert_before(&el, li.as_ref().map(|l| l.as_ref()));
            }
        }
    }
    // Rows no longer needed.
    while let Some(el) = li {
        li = el.next_element_sibling();
        el.remove();
    }
}

/// A lane in the lanes' list: its label, its kind (`data-lane-kind`), and whether it is closed.
pub type LaneRow = (String, &'static str, bool);

/// The lanes of those here now, named, then how many more of the `known` there are
/// (`data-known`).
pub fn render_lanes(document: &Document, here: &[LaneRow], known: usize) {
    let Some(list) = document.get_element_by_id("lanes") else { return };
    list.set_text_content(None);
    let _ = list.set_attribute("data-known", &known.to_string());
    for (label, kind, closed) in here {
        let text = if *closed { format!("{label} {}", word("lane-closed")) } else { label.clone() };
        if let Ok(li) = child(document, &list, "li", "", &text) {
            let _ = li.set_attribute("data-lane-kind", kind);
        }
    }
    let hidden = known.saturating_sub(here.len());
    if hidden > 0
        && let Ok(li) = child(document, &list, "li", "", &fill("lanes-hidden", &[&hidden]))
    {
        let _ = li.set_attribute("data-lane-kind", "hidden");
    }
}

/// The number of arrows and a sentence about the newest one, for the canvas's label.
pub fn diagram_summary(model: &Model) -> (usize, String) {
    let arrows = model.items().iter().filter(|i| matches!(i.body, Body::Arrow(_))).count();
    let newest = model.items().iter().rev().find_map(|i| match &i.body {
        Body::Arrow(a) => Some(a),
        Body::Mark(_) => None,
    });
    let sentence = match newest {
        Some(a) => {
            let lane = |i: usize| model.lanes().get(i).map_or("?", |l| l.label.as_str());
            let preview = crate::model::preview(&a.payload);
            // The fate in a word or two: the `|`-separated list is in `Fate`'s order.
            let fate = word("aria-fates").split('|').nth(a.fate as usize).unwrap_or("");
            fill("aria-diagram", &[&arrows, &lane(a.from), &lane(a.to), &preview, &a.len, &fate])
        }
        None => word("aria-diagram-empty").to_owned(),
    };
    (arrows, sentence)
}

/// What the link did to the arrow's datagram, as rows of the details box.
fn link_rows(a: &Arrow, row: &impl Fn(&str, String, &str)) {
    let Some(link) = &a.link else { return };
    let way = word(match link.dir {
        Dir::In => "details-link-in",
        Dir::Out => "details-link-out",
    });
    row("Link", way.to_owned(), "");
    if let Some(loss) = &link.lost {
        let why = match (loss.reason, loss.fragment) {
            (LinkDropReason::Fragment, Some((i, n))) => fill("details-lost-fragment", &[&i, &n]),
            (LinkDropReason::Fault, _) => word("details-lost-fault").to_owned(),
            _ => word("details-lost").to_owned(),
        };
        row("Lost", why, "warn");
    }
    if let Some(held) = &link.held {
        let why = word(match held.reason {
            HoldReason::Delay => "details-held-delay",
            HoldReason::Reorder => "details-held-reorder",
            HoldReason::Fault => "details-held-fault",
        });
        let planned = held.hold_ms.map_or_else(String::new, |ms| format!("{ms} ms{}", word("comma")));
        let really = held.held_us.map_or_else(
            || word("details-still-held").to_owned(),
            |us| fill("details-released", &[&ms_text(us)]),
        );
        row("Held on the link", format!("{planned}{why}{}{really}", word("semicolon")), "warn");
    }
    if let Some(dg) = link.copy_of {
        row("Copy of", fill("details-copy-of", &[&dg]), "warn");
    }
    if let Some(dg) = link.copied_as {
        row("Delivered twice", fill("details-copied-as", &[&dg]), "warn");
    }
}

/// The id of the link panel's input for one setting of one direction: `link-in-loss`.
pub fn link_input_id(dir: Dir, field: &str) -> String {
    format!("link-{dir}-{field}")
}

/// The link panel's fields for `dir`, as typed.
pub fn link_fields(document: &Document, dir: Dir) -> [String; 6] {
    LINK_FIELDS.map(|field| input_value(document, &link_input_id(dir, field)))
}

/// Shows `server`'s link in the panel (the diagram shows every server's under its name). A
/// field being edited (it has the focus) keeps what the user is typing.
pub fn render_link_panel(document: &Document, model: &Model, server: ServerName) {
    let links = model.my_links(server);
    let focused = document.active_element().map(|e| e.id()).unwrap_or_default();
    for dir in Dir::BOTH {
        let settings = links.get(dir);
        for (field, value) in LINK_FIELDS.iter().zip(link_values(settings)) {
            let id = link_input_id(dir, field);
            if id != focused {
                set_input(document, &id, &value);
            }
        }
        if let Some(row) = document.get_element_by_id(&format!("link-row-{dir}")) {
            let _ = row.set_attribute("data-settings", &link_summary(settings));
        }
        let to = match dir {
            Dir::In => format!("{} {server}", tr("to")),
            Dir::Out => format!("{} {server}", tr("from")),
        };
        set_text(document, &format!("link-to-{dir}"), &to);
    }
}

/// Fills the details box for a selected item.
pub fn render_details(document: &Document, item: Option<&Item>, model: &Model) {
    let Some(panel) = document.get_element_by_id("details") else { return };
    panel.set_text_content(None);
    let Some(item) = item else {
        let _ = child(
            document,
            &panel,
            "p",
            "muted",
            tr("Click an arrow (or press ] and [) to see its bytes, timestamps, attempt and RTT."),
        );
        return;
    };
    let lane = |i: usize| model.lanes().get(i).map_or("?".to_owned(), |l| l.label.clone());
    let Ok(dl) = document.create_element("dl") else { return };
    let row = |k: &str, v: String, class: &str| {
        let _ = child(document, &dl, "dt", "", tr(k));
        let _ = child(document, &dl, "dd", class, &v);
    };
    let secs = |t: u64| format!("{} s", fixed(t as f64 / 1e6, 6));
    match &item.body {
        Body::Arrow(a) => {
            let _ = panel.set_attribute("data-fate", a.fate.as_str());
            let _ = panel.set_attribute("data-label", &a.label());
            let fate = word(match a.fate {
                Fate::Late => "details-late",
                Fate::Duplicate => "details-dup",
                Fate::Dropped => "details-dropped",
                Fate::Vanished => "details-vanished",
                Fate::NotSent => "details-not-sent",
                Fate::LostIn => "details-lost-in",
                Fate::LostOut => "details-lost-out",
                Fate::Delivered => "details-delivered",
                Fate::InFlight => "details-in-flight",
            });
            let _ = child(document, &panel, "p", "", &format!("{} → {}: {fate}", lane(a.from), lane(a.to)));
            let bytes = payload_bytes(&a.payload);
            let text = a.payload.text.clone().unwrap_or_else(|| {
                bytes
                    .iter()
                    .map(|b| if b.is_ascii_graphic() || *b == b' ' { char::from(*b) } else { '.' })
                    .collect()
            });
            let cut = if a.payload.truncated { word("details-first-bytes") } else { "" };
            row("Text", format!("{text:?}{cut}"), "");
            row("Hex", hex_dump(&bytes), "hex");
            row("Length", fill("details-bytes", &[&thousands(a.len)]), "");
            if let Some(kept) = a.cut() {
                row("Read", fill("details-read", &[&cut_text(kept, a.len), &thousands(kept)]), "warn");
            }
            if let Some(m) = a.member {
                row("Crowd member", m.to_string(), "");
            }
            row("Sent at", secs(item.t_us), "");
            if let Some(t) = a.t_end_us {
                let label = match a.fate {
                    Fate::Dropped => "Dropped at",
                    Fate::Vanished => "Vanished at",
                    Fate::NotSent => "Refused at",
                    Fate::LostIn | Fate::LostOut => "Lost at",
                    _ => "Arrived at",
                };
                row(label, format!("{} (+{})", secs(t), ms_text(t.saturating_sub(item.t_us))), "");
            }
            if a.errno.is_some() || a.error.is_some() {
                let errno = a.errno.as_deref().unwrap_or(word("details-error"));
                row("Kernel said", format!("{errno}: {}", a.error.as_deref().unwrap_or("")), "warn");
            }
            if let Some(dg) = a.dg {
                row("Datagram", format!("dg {dg}"), "");
            }
            if let Some(dg) = a.reply_to {
                row("Answers datagram", format!("dg {dg}"), "");
            }
            match (a.misattributed(), a.attempt, a.answers) {
                (Some((taken, answers)), _, _) => row("Attempt", misattributed_text(taken, answers), "warn"),
                (None, Some(at), _) => row("Attempt", at.to_string(), ""),
                (None, None, Some(answers)) => row("Answers attempt", answers.to_string(), ""),
                (None, None, None) => {}
            }
            if let Some(w) = a.waited_ms {
                row("Waited before", format!("{w} ms"), "");
            }
            if let Some(r) = &a.req {
                row("Request ID", format!("#{r}"), "");
            }
            if let Some(rtt) = a.rtt_us {
                row("RTT", ms_text(rtt), "");
            }
            if let (Some(claimed), Some((taken, _))) = (a.claimed_rtt_us, a.misattributed()) {
                row("RTT the client measured", fill("details-claimed", &[&ms_text(claimed), &taken]), "warn");
            }
            if let Some(d) = a.delay_ms {
                row("Held by server", format!("{d} ms"), "");
            }
            link_rows(a, &row);
        }
        Body::Mark(m) => {
            let _ = panel.set_attribute("data-fate", "mark");
            let _ = child(document, &panel, "p", "", &m.text);
            row("Lane", lane(m.lane), "");
            row("At", secs(item.t_us), "");
        }
    }
    row("Event", fill("details-seq", &[&item.seq]), "");
    let _ = panel.append_child(&dl);
}

/// Shows or hides the element `id`.
pub fn set_hidden(document: &Document, id: &str, hidden: bool) {
    if let Some(el) = document.get_element_by_id(id) {
        let _ = if hidden { el.set_attribute("hidden", "") } else { el.remove_attribute("hidden") };
    }
}
