//! The page's side of the toolbox (issue 11): downloading the relay's capture and events,
//! saving this page's own messages, replaying a saved file, the demo of an exported site
//! that needs no relay, and the header view of a selected datagram.
//!
//! - **Save.** Every message the WebSocket delivers is kept as its text (the `hello` first,
//!   then the last [`RECORD_MAX`]), and `#save-events` turns them into a `.jsonl` download:
//!   the same lines `GET /api/events.jsonl` gives, so either file replays.
//! - **Replay.** `#player-file` reads a file into a [`Player`] (`crate::replay`), which the
//!   frame loop polls: what is due goes into the same [`Model`] the live page draws, and the
//!   diagram's clock is set to the recording's. Live messages are set aside meanwhile; *Back
//!   to live* reconnects, which starts a fresh session.
//! - **Demo.** An exported site (`relay export-site`) has `demo.json` next to `index.html`.
//!   When it is there and the WebSocket fails, the page says it is replaying a recording,
//!   lists the recorded lessons, and plays `lessons/SLUG.jsonl` for `?lesson=SLUG` (or a
//!   click on a lesson), with no relay at all.
//!
//! - **Headers.** A selected datagram's IP and UDP headers (`GET /api/datagrams/{dg}`, read
//!   by `crate::inspect`) in `#headers`: layer by layer, over a hex and ASCII byte pane where
//!   pointing at a field lights its bytes, as in Wireshark; a click pins it.
//!
//! A child of `app`, so it reaches the [`App`]'s fields; `app.rs` calls it from a few hooks.
//! Every callback goes through one shim ([`App::listen_later`]), not one closure type each:
//! the page's bundle has a size budget.

use std::rc::Rc;

use protocol::ServerMsg;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element, EventTarget, FileReader, HtmlInputElement, XmlHttpRequest};

use super::{App, ConnState, Handler, Shared, log, on, on_id, with_app};
use crate::dom;
use crate::inspect::{Dissection, Headers, dissect};
use crate::model::{Model, ms_text};
use crate::replay::{Player, demo_lessons, parse_jsonl};
use crate::text::{fill, tr, word};

/// Bytes of messages kept for Save, after the `hello`: past this, the older half goes. About
/// the relay's default history (20,000 events of some 200 bytes).
const RECORD_BYTES: usize = 4 << 20;

/// Payload bytes shown after the headers: enough to see the data start, not 65,507 spans.
const PAYLOAD_SHOWN: usize = 64;

/// What a loaded URL is handed to, once read: its status (0 if nothing answered) and text.
type Loaded = Box<dyn FnOnce(&mut App, u16, String)>;

#[derive(Default)]
pub struct Toolbox {
    /// The page itself, for the callbacks of loads started from a handler.
    me: std::rc::Weak<std::cell::RefCell<App>>,
    /// This session's `hello`, as received.
    hello: Option<String>,
    /// The messages after it, as received, one a line: the newest [`RECORD_BYTES`] or so.
    recorded: String,
    /// The object URL of the last save, revoked by the next.
    save_url: Option<String>,
    player: Option<Player>,
    /// The live diagram's zoom when the replay began, for Back to live.
    live_zoom: f64,
    /// What is replayed, in words: a file's name or a lesson's slug.
    title: String,
    /// The lessons of an exported site, once `demo.json` was read.
    demo_lessons: Option<Vec<String>>,
    /// The page is an exported site with no relay: it replays and never reconnects.
    demo: bool,
    /// The player bar's position (ms plus thousandths) and state last written: an unchanged
    /// bar costs no DOM work.
    shown: (u64, bool),
    /// The handlers of reads and loads started from other handlers: JS may still call them.
    loads: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    /// The datagram whose headers `#headers` shows (or is fetching): an answer about
    /// another is too late and is dropped.
    headers_dg: Option<u64>,
    /// The header field clicked, which stays lit when the pointer leaves.
    pinned: Option<usize>,
}

impl Toolbox {
    /// Keeps a message from the relay for Save. A `hello` starts a new session's record.
    pub fn record(&mut self, text: &str) {
        if text.starts_with(r#"{"type":"hello""#) {
            self.hello = Some(text.to_owned());
            self.recorded.clear();
            return;
        }
        if self.recorded.len() > RECORD_BYTES {
            let half = self.recorded.len() / 2;
            let cut = self.recorded[half..].find('\n').map_or(half, |i| half + i + 1);
            self.recorded.drain(..cut);
        }
        self.recorded.push_str(text);
        self.recorded.push('\n');
    }

    /// A recording is shown instead of the live traffic.
    pub fn replaying(&self) -> bool {
        self.player.is_some()
    }

    /// This is an exported site, with no relay behind it.
    pub fn is_demo(&self) -> bool {
        self.demo
    }

    /// In an exported site, whether the lesson its recording tells is done: the recording is.
    /// `None` on a live page, where the lesson's own runner says.
    pub fn recorded_lesson_done(&self, now_ms: f64) -> Option<bool> {
        self.demo.then(|| self.player.as_ref().is_some_and(|p| p.finished(now_ms)))
    }

    /// A recording is shown while a live session goes on behind it: the live controls wait.
    pub fn live_aside(&self) -> bool {
        self.replaying() && !self.demo
    }

    /// This session's messages as kept for Save: its `hello`, then the newest of the rest.
    fn session_text(&self) -> String {
        let mut text = self.hello.clone().unwrap_or_default();
        text.push('\n');
        text.push_str(&self.recorded);
        text
    }

    /// What the status pill says instead of the connection, while replaying.
    pub fn status(&self) -> Option<String> {
        match (&self.player, self.demo) {
            (_, true) => Some(fill("status-replay-demo", &[&self.title_words()])),
            (Some(_), false) => Some(fill("status-replay", &[&self.title_words()])),
            (None, false) => None,
        }
    }

    fn title_words(&self) -> String {
        if self.title.is_empty() { String::new() } else { format!(" · {}", self.title) }
    }
}

/// Hooks the toolbox's controls, and looks for `demo.json`.
pub fn wire(shared: &Shared) {
    let Ok(document) = shared.try_borrow().map(|app| app.document.clone()) else { return };
    with_app(shared, "toolbox", |app| app.toolbox.me = Rc::downgrade(shared));
    let d = &document;
    on_id(shared, d, "save-events", "click", |app, _| app.save_events());
    on_id(shared, d, "player-file", "change", |app, _| app.open_file());
    on_id(shared, d, "player-play", "click", |app, _| {
        let now = app.now_ms();
        if let Some(p) = app.toolbox.player.as_mut() {
            if p.playing() { p.pause(now) } else { p.play(now) }
        }
    });
    on_id(shared, d, "player-step", "click", |app, _| {
        let now = app.now_ms();
        if let Some(p) = app.toolbox.player.as_mut() {
            p.step(now);
        }
    });
    on_id(shared, d, "player-speed", "change", |app, _| {
        let now = app.now_ms();
        let speed = dom::select_value(&app.document, "player-speed").parse().unwrap_or(1);
        if let Some(p) = app.toolbox.player.as_mut() {
            p.set_speed(speed, now);
        }
    });
    // The scrub bar is in thousandths of the recording, so a short one scrubs as finely.
    on_id(shared, d, "player-scrub", "input", |app, _| {
        let now = app.now_ms();
        let permille = dom::input_u64(&app.document, "player-scrub").unwrap_or(0);
        if let Some(p) = app.toolbox.player.as_mut() {
            p.seek(permille * p.duration_us() / 1000, now);
        }
    });
    on_id(shared, d, "player-exit", "click", |app, _| app.exit_replay());
    // Pointing at a header field (or one of its bytes) lights it; a click pins it.
    if let Some(panel) = d.get_element_by_id("headers") {
        for event in ["mouseover", "click", "mouseleave"] {
            on(shared, &panel, event, move |app, e| {
                let field = e
                    .target()
                    .and_then(|t| t.dyn_into::<Element>().ok())
                    .and_then(|t| t.closest("[data-field]").ok().flatten())
                    .and_then(|t| t.get_attribute("data-field"))
                    .and_then(|f| f.parse::<usize>().ok());
                let lit = match event {
                    "click" => {
                        app.toolbox.pinned = if app.toolbox.pinned == field { None } else { field };
                        app.toolbox.pinned
                    }
                    "mouseleave" => app.toolbox.pinned,
                    _ => field.or(app.toolbox.pinned),
                };
                highlight(&app.document, lit);
            });
        }
    }
    with_app(shared, "toolbox", |app| {
        // In the demo a lesson's button plays its recording. Heard on the way down (capture),
        // so the lessons panel, which would run the lesson against a relay, never hears it.
        if let Some(panel) = app.document.get_element_by_id("diagram-panel") {
            app.listen_later(
                &panel,
                "click",
                true,
                Box::new(|app, e| {
                    if !app.toolbox.demo {
                        return;
                    }
                    let target = e.target().and_then(|t| t.dyn_into::<Element>().ok());
                    let button = target
                        .and_then(|t| t.closest("#lesson-list [data-slug], #replay-btn").ok().flatten());
                    let Some(button) = button else { return };
                    e.stop_propagation();
                    match button.get_attribute("data-slug") {
                        Some(slug) => app.play_lesson(&slug),
                        // The caption's Replay: the recording again, from its start.
                        None => {
                            let now = app.now_ms();
                            if let Some(p) = app.toolbox.player.as_mut() {
                                p.seek(0, now);
                                p.play(now);
                            }
                        }
                    }
                }),
            );
        }
        app.load(
            "demo.json",
            Box::new(|app, status, text| {
                if status == 200 {
                    app.toolbox.demo_lessons = demo_lessons(&text);
                }
                // A live relay's page connects now; an exported site's starts its demo.
                match app.toolbox.demo_lessons {
                    Some(_) => app.conn = ConnState::Closed,
                    None => app.connect_now = true,
                }
            }),
        );
    });
}

/// Marks the rows and bytes of field `lit` (and only those) with the class `lit`.
fn highlight(document: &Document, lit: Option<usize>) {
    let Some(panel) = document.get_element_by_id("headers") else { return };
    let Ok(all) = panel.query_selector_all("[data-field]") else { return };
    let lit = lit.map(|i| i.to_string());
    for i in 0..all.length() {
        let Some(e) = all.item(i).and_then(|n| n.dyn_into::<Element>().ok()) else { continue };
        let on = lit.is_some() && e.get_attribute("data-field") == lit;
        let _ = if on { e.class_list().add_1("lit") } else { e.class_list().remove_1("lit") };
    }
}

/// Creates `<tag>text</tag>` at the end of `parent`.
fn el(document: &Document, parent: &Element, tag: &str, text: &str) -> Option<Element> {
    let e = document.create_element(tag).ok()?;
    if !text.is_empty() {
        e.set_text_content(Some(text));
    }
    parent.append_child(&e).ok()?;
    Some(e)
}

/// Draws a dissected datagram in `#headers`, or says why there is none.
fn render_headers(document: &Document, dissection: Option<&Dissection>, message: &str) {
    let Some(panel) = document.get_element_by_id("headers") else { return };
    panel.set_text_content(None);
    let Some(dis) = dissection else {
        let _ = panel.set_attribute("data-state", "missing");
        let _ = el(document, &panel, "p", message);
        return;
    };
    let _ = panel.set_attribute("data-state", "shown");
    // One block per layer, as Wireshark's tree: a title, then `name: value` per field.
    let mut block: Option<Element> = None;
    let mut layer = "";
    for (i, f) in dis.fields.iter().enumerate() {
        if f.layer != layer {
            layer = f.layer;
            let Some(section) = el(document, &panel, "div", "") else { return };
            let udp = layer == "UDP";
            let _ = section.set_attribute("class", if udp { "layer udp" } else { "layer ip" });
            let title = if udp { word("hdr-udp") } else { layer };
            let _ = el(document, &section, "h3", title);
            block = el(document, &section, "dl", "");
        }
        let Some(row) = block.as_ref().and_then(|dl| el(document, dl, "div", "")) else { continue };
        let _ = row.set_attribute("data-field", &i.to_string());
        let _ = row.set_attribute("data-name", &format!("{} {}", f.layer, f.name));
        let _ = el(document, &row, "dt", tr(f.name));
        let _ = el(document, &row, "dd", &f.value);
    }
    // The byte pane: an offset, then 16 bytes in hex a line, as Wireshark's.
    let Some(pane) = el(document, &panel, "div", "") else { return };
    let _ = pane.set_attribute("class", "bytes");
    let shown = dis.bytes.len().min(dis.payload_at + PAYLOAD_SHOWN);
    let field_of = |b: usize| dis.fields.iter().rposition(|f| b >= f.start && b < f.start + f.len);
    for (line, chunk) in dis.bytes[..shown].chunks(16).enumerate() {
        let Some(row) = el(document, &pane, "div", &format!("{:04x}", line * 16)) else { continue };
        let Some(group) = el(document, &row, "span", "") else { continue };
        let _ = group.set_attribute("class", "hex");
        for (k, b) in chunk.iter().enumerate() {
            let at = line * 16 + k;
            let Some(span) = el(document, &group, "span", &format!("{b:02x}")) else { continue };
            if let Some(f) = field_of(at) {
                let _ = span.set_attribute("data-field", &f.to_string());
            }
            // The UDP header's 8 bytes stand out even before a field is pointed at.
            let class = match at {
                _ if at >= dis.payload_at => "data",
                _ if at + 8 >= dis.payload_at => "udp",
                _ => "ip",
            };
            let _ = span.set_attribute("class", class);
        }
    }
    let more = dis.payload_len.saturating_sub(shown - dis.payload_at);
    if more > 0 {
        let _ = el(document, &pane, "p", &fill("hdr-more", &[&more]));
    }
}

impl App {
    /// Reads `url` and hands its status and text to `then` (status 0 when nothing answered).
    pub(super) fn load(&mut self, url: &str, then: Loaded) -> Option<XmlHttpRequest> {
        let xhr = XmlHttpRequest::new().ok()?;
        xhr.open("GET", url).ok()?;
        let x = xhr.clone();
        let mut then = Some(then);
        let done = Box::new(move |app: &mut App, _| {
            let status = x.status().unwrap_or(0);
            let text = x.response_text().ok().flatten().unwrap_or_default();
            if let Some(then) = then.take() {
                then(app, status, text);
            }
        });
        self.listen_later(&xhr, "loadend", false, done);
        if xhr.send().is_err() {
            log(&format!("udp-playground: cannot load {url}"));
        }
        Some(xhr)
    }

    /// [`super::on`] for a handler added while the app is borrowed (from another handler):
    /// the closure is kept in the toolbox, which is at hand, instead of `App::handlers`.
    #[inline(never)]
    fn listen_later(&mut self, target: &EventTarget, event: &str, capture: bool, mut f: Handler) {
        let Some(shared) = self.toolbox.me.upgrade() else { return };
        let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
            with_app(&shared, "toolbox handler", |app| f(app, e));
        });
        let added = target.add_event_listener_with_callback_and_bool(
            event,
            closure.as_ref().unchecked_ref(),
            capture,
        );
        if added.is_err() {
            log(&format!("udp-playground: cannot listen for {event}"));
        }
        // Loads are few (demo.json, a lesson, a file, a datagram's headers) and soon done: the
        // oldest handlers go once there are many, the first (the demo's click) stays.
        if self.toolbox.loads.len() >= 16 {
            self.toolbox.loads.remove(1);
        }
        self.toolbox.loads.push(closure);
    }

    /// Shows the headers of datagram `dg` (the selected arrow's) in `#headers`, fetching
    /// them when it changes; `None` hides the view. A replay has no relay to ask about its
    /// recorded `dg`s (another relay's numbers), so it says so.
    pub(super) fn follow_headers(&mut self, dg: Option<u64>) {
        if self.toolbox.headers_dg == dg {
            return;
        }
        self.toolbox.headers_dg = dg;
        self.toolbox.pinned = None;
        let Some(panel) = self.document.get_element_by_id("headers") else { return };
        panel.set_text_content(None);
        let Some(dg) = dg else {
            let _ = panel.set_attribute("hidden", "");
            return;
        };
        let _ = panel.remove_attribute("hidden");
        if self.toolbox.replaying() {
            let _ = panel.set_attribute("data-state", "offline");
            let _ = el(&self.document, &panel, "p", word("hdr-offline"));
            return;
        }
        let _ = panel.set_attribute("data-state", "loading");
        let _ = self.load(
            &format!("api/datagrams/{dg}"),
            Box::new(move |app, status, text| {
                if app.toolbox.headers_dg != Some(dg) {
                    return;
                }
                let dissection = Headers::parse(&text).filter(|h| h.dg == dg).and_then(|h| dissect(&h));
                let message = match status {
                    404 => fill("hdr-gone", &[&dg]),
                    _ => fill("hdr-none", &[&dg, &status]),
                };
                render_headers(&app.document, dissection.as_ref(), &message);
            }),
        );
    }

    /// Points `#save-events` at this session's messages as a file, just before the browser
    /// follows the link (a click's handlers run before its default action).
    fn save_events(&mut self) {
        let text = self.toolbox.session_text();
        let parts = js_sys::Array::of1(&JsValue::from_str(&text));
        // No type: the link's `download` names the file, and a typed Blob costs the bundle.
        let url = web_sys::Blob::new_with_str_sequence(&parts)
            .and_then(|blob| web_sys::Url::create_object_url_with_blob(&blob));
        match url {
            Ok(url) => {
                if let Some(old) = self.toolbox.save_url.replace(url.clone()) {
                    let _ = web_sys::Url::revoke_object_url(&old);
                }
                if let Some(link) = self.document.get_element_by_id("save-events") {
                    let _ = link.set_attribute("href", &url);
                }
            }
            Err(e) => log(&format!("udp-playground: cannot save the events: {e:?}")),
        }
    }

    /// Reads the file chosen in `#player-file` and replays it.
    fn open_file(&mut self) {
        let input = self
            .document
            .get_element_by_id("player-file")
            .and_then(|e| e.dyn_into::<HtmlInputElement>().ok());
        let Some(file) = input.and_then(|i| i.files()).and_then(|f| f.get(0)) else { return };
        let Ok(reader) = FileReader::new() else { return };
        let name = file.name();
        let r = reader.clone();
        let done = Box::new(move |app: &mut App, _| match r.result().ok().and_then(|v| v.as_string()) {
            Some(text) => app.start_replay(&text, &name),
            None => app.show_error(&fill("err-file-named", &[&name])),
        });
        self.listen_later(&reader, "loadend", false, done);
        if reader.read_as_text(&file).is_err() {
            self.show_error(word("err-file"));
        }
    }

    /// Plays the recording of lesson `slug` from the exported site.
    pub(super) fn play_lesson(&mut self, slug: &str) {
        // The slug goes into a URL: only the lessons' own names are asked for.
        if !self.toolbox.demo_lessons.as_ref().is_some_and(|l| l.iter().any(|s| s == slug)) {
            self.show_error(&fill("err-no-recording", &[&format!("{slug:?}")]));
            return;
        }
        let title = fill("replay-title-lesson", &[&slug]);
        let lesson = protocol::lessons::lesson(slug);
        let _ = self.load(
            &format!("lessons/{slug}.jsonl"),
            Box::new(move |app, status, text| {
                if status == 200 {
                    app.start_replay(&text, &title);
                    if let Some(lesson) = lesson {
                        app.caption_lesson(lesson);
                    }
                } else {
                    app.show_error(&fill("err-recording", &[&title, &status]));
                }
            }),
        );
    }

    /// The lessons panel's caption and state for the lesson a demo replays: the same words
    /// as when it runs live. Its runner has no relay to send its steps to (they are only
    /// logged); it marks the lesson running, then done, and fits its story on the canvas.
    fn caption_lesson(&mut self, lesson: &'static protocol::lessons::Lesson) {
        let now = self.now_ms();
        self.lesson = Some(crate::lesson::Runner::new(lesson, now));
        self.lesson_done = false;
        // The replay started from nothing: everything it draws is the lesson's story.
        self.lesson_since_us = 0;
        self.lesson_fit = None;
        let height = self.renderer.height().max(200.0);
        let need = super::lessons::story_zoom(lesson, height);
        self.view.us_per_px = self.view.us_per_px.max(need).min(super::View::MAX_US_PER_PX);
        self.render_lessons();
    }

    /// Replays `text` (JSON lines) from its start, at 1×, in place of what was drawn.
    fn start_replay(&mut self, text: &str, title: &str) {
        let recording = parse_jsonl(text);
        if recording.entries.is_empty() {
            self.show_error(&fill("err-replay-empty", &[&title]));
            return;
        }
        if recording.unreadable > 0 {
            self.show_error(&fill("err-replay-skipped", &[&title, &recording.unreadable]));
        }
        let events = recording.events();
        if !self.toolbox.replaying() {
            self.toolbox.live_zoom = self.view.us_per_px;
        }
        let mut player = Player::new(recording.entries);
        let now = self.now_ms();
        player.play(now);
        self.toolbox.player = Some(player);
        self.toolbox.title = title.to_owned();
        self.toolbox.shown = (u64::MAX, false);
        self.forget_drawing();
        dom::set_select(&self.document, "player-speed", "1");
        if let Some(scrub) = self.document.get_element_by_id("player-scrub") {
            let _ = scrub.set_attribute("max", "1000");
        }
        if let Some(bar) = self.document.get_element_by_id("player") {
            let _ = bar.remove_attribute("hidden");
            let _ = bar.set_attribute("data-events", &events.to_string());
        }
        dom::set_text(&self.document, "player-title", &format!("▶ {title}: {events} events"));
        if let Some(body) = self.document.body() {
            let _ = body.class_list().add_1("replaying");
        }
        self.shown.status.clear();
    }

    /// Clears the diagram, the log and the selection: a replay starts from nothing.
    fn forget_drawing(&mut self) {
        self.model = Model::default();
        self.view.selected = None;
        self.view.paused = false;
        self.lesson_fit = None;
        if let Some(log) = self.document.get_element_by_id("log") {
            log.set_text_content(None);
        }
    }

    /// Leaves the replay for the live session. In the demo there is nothing live to go back
    /// to.
    fn exit_replay(&mut self) {
        if self.toolbox.demo {
            if let Some(p) = self.toolbox.player.as_mut() {
                p.pause(self.window.performance().map_or(0.0, |p| p.now()));
            }
            return;
        }
        self.toolbox.player = None;
        self.toolbox.title.clear();
        self.forget_drawing();
        self.view.us_per_px = self.toolbox.live_zoom;
        if let Some(bar) = self.document.get_element_by_id("player") {
            let _ = bar.set_attribute("hidden", "");
        }
        if let Some(body) = self.document.body() {
            let _ = body.class_list().remove_1("replaying");
        }
        self.clock_offset_us = None;
        // The live session went on behind the recording, its sockets and lesson too: what it
        // kept for Save, the messages of the replay's time included, is drawn again at once,
        // and a lesson's stats count again from its start.
        if self.lesson.is_some() {
            self.model.restart_stats(self.lesson_since_us);
        }
        for entry in parse_jsonl(&self.toolbox.session_text()).entries {
            self.model.apply(&entry.msg);
        }
        self.shown.status.clear();
    }

    /// Once a frame: start the demo if this is an exported site with no relay, deliver what
    /// the replay has due, and keep the player bar up to date.
    pub(super) fn replay_frame(&mut self, now_ms: f64) {
        // Not before the page's words are read: the banner is written once, in them.
        let words_read = self.words.code != "zh" || crate::text::chinese_loaded();
        if !self.toolbox.demo
            && self.toolbox.demo_lessons.is_some()
            && self.conn == ConnState::Closed
            && words_read
        {
            self.start_demo();
        }
        if self.toolbox.demo {
            // No relay will come: do not keep trying.
            self.retry_at_ms = f64::INFINITY;
        }
        let Some(player) = self.toolbox.player.as_mut() else { return };
        let due = player.poll(now_ms);
        if due.reset {
            self.model = Model::default();
            self.view.selected = None;
            if let Some(log) = self.document.get_element_by_id("log") {
                log.set_text_content(None);
            }
        }
        for entry in &player.entries()[due.deliver] {
            if let ServerMsg::Hello(_) = entry.msg {
                self.model = Model::default();
            }
            self.model.apply(&entry.msg);
        }
        // The diagram's "now" is the recording's.
        self.clock_offset_us = Some(player.relay_us(now_ms) as f64 - now_ms * 1000.0);
        let pos = player.position_us(now_ms);
        let total = player.duration_us();
        let bar = (pos / 1000 + pos * 1000 / total.max(1), player.playing());
        if bar != self.toolbox.shown {
            let d = &self.document;
            dom::set_text(d, "player-pos", &format!("{} / {}", ms_text(pos), ms_text(total)));
            dom::set_input(d, "player-scrub", &(pos * 1000 / total.max(1)).to_string());
            dom::set_text(d, "player-play", tr(if player.playing() { "Pause" } else { "Play" }));
            if let Some(el) = d.get_element_by_id("player") {
                let _ = el.set_attribute("data-playing", if player.playing() { "true" } else { "false" });
                let _ = el.set_attribute("data-pos-ms", &(pos / 1000).to_string());
            }
            self.toolbox.shown = bar;
        }
    }

    /// This is an exported site and no relay answered: say so, list the lessons, and play
    /// the one in `?lesson=SLUG`.
    fn start_demo(&mut self) {
        self.toolbox.demo = true;
        self.retry_at_ms = f64::INFINITY;
        if let Some(ws) = self.ws.take() {
            ws.set_onclose(None);
            let _ = ws.close();
        }
        if let Some(body) = self.document.body() {
            let _ = body.class_list().add_1("demo");
        }
        let lessons = self.toolbox.demo_lessons.clone().unwrap_or_default();
        if let Some(banner) = self.document.get_element_by_id("demo-banner") {
            banner.set_text_content(None);
            let _ = banner.remove_attribute("hidden");
            if let Ok(intro) = self.document.create_element("span") {
                intro.set_text_content(Some(word("demo-banner")));
                let _ = banner.append_child(&intro);
            }
            for slug in &lessons {
                if let Ok(a) = self.document.create_element("a") {
                    let _ = a.set_attribute("href", &format!("?lesson={slug}"));
                    let _ = a.set_attribute("data-slug", slug);
                    a.set_text_content(Some(slug));
                    let _ = banner.append_child(&a);
                }
            }
        }
        self.shown.status.clear();
        // The lesson buttons play recordings here (the capture listener in `wire`), with the
        // lessons panel's own caption (`caption_lesson`).
        let search = self.window.location().search().unwrap_or_default();
        let asked = search.trim_start_matches('?').split('&').find_map(|kv| kv.strip_prefix("lesson="));
        if let Some(slug) = asked.map(str::to_owned) {
            self.play_lesson(&slug);
        }
    }
}
