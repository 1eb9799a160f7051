//! The lessons panel and the language switch: the twelve lessons as buttons (one click sets
//! up and runs a lesson, and undoes the one before), the caption saying what to look for,
//! `?lesson=SLUG` on load, and the page's words in the chosen language.
//!
//! The steps are `protocol::lessons`' data, run by [`crate::lesson::Runner`] from the frame
//! loop; this file only turns its answers into WebSocket messages and DOM.

use protocol::lessons::{LESSONS, Lesson};
use protocol::{Command, Scope};
use wasm_bindgen::JsCast;
use web_sys::{Document, Element};

use super::{App, LessonFit, Shared, log, on_id, with_app};
use crate::dom;
use crate::lesson::{self, Runner};
use crate::text::Words;
use wasm_bindgen::closure::Closure;

/// Where the chosen language is remembered.
const LANG_KEY: &str = "udp-playground-lang";

/// The language to start in: the remembered choice, else the browser's.
pub fn initial_words(window: &web_sys::Window) -> &'static Words {
    let stored = window.local_storage().ok().flatten().and_then(|s| s.get_item(LANG_KEY).ok().flatten());
    let code = stored.unwrap_or_else(|| window.navigator().language().unwrap_or_default());
    Words::for_language(&code)
}

/// The slug in `?lesson=SLUG`, if the page was opened with one.
pub fn lesson_in_url(search: &str) -> Option<&'static Lesson> {
    let value = search.trim_start_matches('?').split('&').find_map(|kv| kv.strip_prefix("lesson="))?;
    protocol::lessons::lesson(value)
}

/// How long the page waits for its Chinese words before it gives up on them.
const WORDS_TIMEOUT_MS: u32 = 10_000;

/// Reads the Chinese words (`web/lang/zh.txt`), then puts the page into Chinese.
/// Until they are read, or found unreadable, a lesson waits for them.
fn fetch_chinese(shared: &Shared) {
    // Words that cannot be read are read as an empty table: every word falls back to English,
    // and nothing waits for them.
    let unreadable = || {
        log("udp-playground: the Chinese words could not be read; the page stays in English");
        crate::text::load_chinese("");
    };
    let Ok(xhr) = web_sys::XmlHttpRequest::new() else { return unreadable() };
    let s = shared.clone();
    let request = xhr.clone();
    let loaded = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        let read = match (request.status(), request.response_text()) {
            (Ok(200), Ok(Some(file))) => {
                crate::text::load_chinese(&file);
                true
            }
            _ => {
                unreadable();
                false
            }
        };
        with_app(&s, "language", |app| {
            if read {
                app.apply_words();
            }
            // A lesson asked for on load waited for the words, so that its log is in them.
            if let Some(lesson) = app.pending_lesson.take() {
                app.start_lesson(lesson);
            }
        });
    });
    // A refused or broken request ends in `error`, and a hung one in `timeout`, not `load`:
    // the same answer, not 200.
    xhr.set_onload(Some(loaded.as_ref().unchecked_ref()));
    xhr.set_onerror(Some(loaded.as_ref().unchecked_ref()));
    xhr.set_ontimeout(Some(loaded.as_ref().unchecked_ref()));
    xhr.set_timeout(WORDS_TIMEOUT_MS);
    if xhr.open("GET", crate::text::ZH_URL).and_then(|()| xhr.send()).is_err() {
        unreadable();
    }
    // The closure lives as long as the page, with the other handlers.
    with_app(shared, "language", |app| app.handlers.push(loaded));
}

/// Hooks the lesson buttons, the replay button and the language switch.
pub fn wire(shared: &Shared, d: &Document) {
    let chinese = shared.try_borrow().is_ok_and(|app| app.words.code == "zh");
    if chinese && !crate::text::chinese_loaded() {
        fetch_chinese(shared);
    }
    on_id(shared, d, "lesson-list", "click", |app, e| {
        let slug = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|el| el.closest("[data-slug]").ok().flatten())
            .and_then(|el| el.get_attribute("data-slug"));
        if let Some(lesson) = slug.and_then(|s| protocol::lessons::lesson(&s)) {
            app.start_lesson(lesson);
        }
    });
    on_id(shared, d, "replay-btn", "click", |app, _| {
        if let Some(lesson) = app.lesson.as_ref().map(|r| r.lesson) {
            app.start_lesson(lesson);
        }
    });
    // The switch remembers the choice and reloads: the page's English is its HTML, so only
    // the Chinese words need to live in the bundle.
    on_id(shared, d, "lang-btn", "click", |app, _| {
        if let Ok(Some(storage)) = app.window.local_storage() {
            let _ = storage.set_item(LANG_KEY, app.words.other().code);
        }
        // The lesson shown comes back in the other language, not the one the URL named when
        // the page was opened.
        let location = app.window.location();
        let search = location.search().unwrap_or_default();
        match app.lesson.as_ref().map(|r| crate::lesson::with_lesson(&search, r.lesson.slug)) {
            Some(other) if other != search => location.set_search(&other),
            _ => location.reload(),
        }
        .ok();
    });
}

/// Puts every text node under `el`, and its tooltips and placeholders, into the page's
/// language, leaving out what is data or a name: code, keys and the servers' names in the
/// menus.
fn translate_text(el: &Element) {
    let tag = el.tag_name();
    if matches!(tag.as_str(), "CODE" | "KBD" | "OPTION" | "SCRIPT" | "STYLE" | "CANVAS") {
        return;
    }
    for name in ["title", "placeholder"] {
        if let Some(words) = el.get_attribute(name) {
            let said = crate::text::tr(&words);
            if said != words {
                let _ = el.set_attribute(name, said);
            }
        }
    }
    let nodes = el.child_nodes();
    for i in 0..nodes.length() {
        let Some(node) = nodes.item(i) else { continue };
        if node.node_type() == web_sys::Node::TEXT_NODE {
            let text = node.text_content().unwrap_or_default();
            let words = text.trim();
            let said = crate::text::tr(words);
            if !words.is_empty() && said != words {
                node.set_text_content(Some(&text.replacen(words, said, 1)));
            }
        } else if let Ok(child) = node.dyn_into::<Element>() {
            translate_text(&child);
        }
    }
}

/// The zoom at which `lesson`'s story, with a quarter more for the rows around it, fills a
/// canvas `height` pixels tall: where a lesson starts, and where its fit starts from.
pub(super) fn story_zoom(lesson: &Lesson, height: f64) -> f64 {
    lesson.duration_ms as f64 * 1000.0 * 1.25 / height
}

impl App {
    /// Undoes the lesson before, makes every link perfect, sets up and starts `lesson`, and
    /// shows its caption.
    pub(super) fn start_lesson(&mut self, lesson: &'static Lesson) {
        // Not before the relay answers, nor before the page's words are read: a log line is
        // put into words in the language it came in.
        let words_read = self.words.code != "zh" || crate::text::chinese_loaded();
        if self.conn != super::ConnState::Open || !words_read {
            self.pending_lesson = Some(lesson);
            return;
        }
        self.undo_lesson();
        // The stats tell this lesson's story: not the last one's, nor a projector's backlog
        // that arrives after it began.
        self.lesson_since_us = self.relay_now_us();
        self.model.restart_stats(self.lesson_since_us);
        for json in lesson::perfect_links(self.model.links()) {
            self.send_json(&json);
        }
        self.locals.clear();
        let now = self.now_ms();
        self.lesson = Some(Runner::new(lesson, now));
        if lesson::watches_all(lesson) {
            self.watching_all = true;
        }
        // The whole story at once: zoom out until the lesson's time fits the canvas.
        // Before the first frame the canvas may not be measured yet: guess from the window.
        let window_height = self.window.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(900.0);
        let height = match self.renderer.height() {
            h if h >= 200.0 => h,
            _ => window_height * 0.5,
        };
        self.view.us_per_px =
            self.view.us_per_px.max(story_zoom(lesson, height)).min(super::View::MAX_US_PER_PX);
        self.go_live();
        self.render_lessons();
        self.poll_lesson(now);
    }

    /// Closes the running lesson's sockets and dissolves what it set for them.
    fn undo_lesson(&mut self) {
        let Some(runner) = self.lesson.take() else { return };
        // A recording's lesson (the demo's) opened nothing to close.
        if !self.toolbox.is_demo() {
            for json in runner.undo() {
                self.send_json(&json);
            }
        }
        if self.watching_all {
            self.watching_all = false;
            if !self.view.projector {
                self.command(&Command::Subscribe {
                    scope: Scope::Own,
                    batch: true,
                    kinds: None,
                    history: false,
                });
            }
        }
    }

    /// Takes the lesson's steps that are due; called every frame.
    pub(super) fn poll_lesson(&mut self, now_ms: f64) {
        let Some(runner) = self.lesson.as_mut() else { return };
        // An exported site's lesson is told by its recording, at the replay's speed: nothing is
        // sent, and it is done when the recording is.
        let (due, done) = match self.toolbox.recorded_lesson_done(now_ms) {
            Some(done) => (Vec::new(), done),
            None => {
                let locals = &self.locals;
                let due =
                    runner.poll(now_ms, |s| locals.iter().find(|(n, _)| n == s).map(|(_, a)| a.clone()));
                (due, runner.done(now_ms))
            }
        };
        for json in &due {
            self.send_json(json);
        }
        if done != self.lesson_done {
            self.lesson_done = done;
            if done {
                self.show_whole_lesson();
            }
            self.render_lessons();
        }
    }

    /// Once a lesson is told, the view stops on the end of its story, so it does not scroll
    /// away: Live (L) goes back to the traffic, the arrow keys scroll back through it. A
    /// story that the student's own terminal tells (outside clients) is still to come: the
    /// view keeps following, to draw it as it happens.
    fn show_whole_lesson(&mut self) {
        let outside =
            |l: &Lesson| l.steps.iter().any(|s| matches!(s, protocol::lessons::Step::Outside { .. }));
        if self.lesson.as_ref().is_some_and(|r| outside(r.lesson)) && !self.toolbox.is_demo() {
            return;
        }
        let fit = LessonFit {
            base_us_per_px: self.view.us_per_px,
            end_us: self.model.latest_us,
            for_canvas: (0.0, 0.0, 0.0),
        };
        self.fit_lesson(fit);
    }

    /// Shows the lesson's story whole, as `fit` says, on the canvas as it is now: after the
    /// lesson, and again when the canvas changes (a resize, the projector) while nobody has
    /// moved the view.
    ///
    /// The zoom is first the story's length in time over the canvas's height. That is not
    /// always enough: a burst (a send, its arrival, the drop) takes a row of text each, however
    /// close in time, so a story of many bursts can run off the top. The view then zooms out
    /// until the whole story stands in the canvas, but at most twice as far: further, the
    /// quiet stretches a lesson is about (a retry's wait, a chat client's silence) would shrink
    /// to nothing. A story too long for that keeps its end in view.
    pub(super) fn fit_lesson(&mut self, mut fit: LessonFit) {
        let Some(lesson) = self.lesson.as_ref().map(|r| r.lesson) else { return };
        let height = self.renderer.height().max(100.0);
        let bottom_px = height * 0.05;
        let max = super::View::MAX_US_PER_PX;
        // As a lesson started on this canvas would be: after a resize, the same fit as on a
        // page opened at the new size.
        let by_time = fit.base_us_per_px.max(story_zoom(lesson, height)).min(max);
        let told = self.lesson_since_us..=fit.end_us;
        self.view.us_per_px = self
            .renderer
            .zoom_to_fit(&self.model, self.view.scale, told, bottom_px, by_time, (by_time * 2.0).min(max))
            .unwrap_or(by_time);
        self.view.paused = true;
        let end = fit.end_us as f64 + bottom_px * self.view.us_per_px;
        self.view.end_us = (end as u64).min(self.relay_now_us());
        fit.for_canvas = (self.renderer.height(), self.view.scale, self.renderer.header());
        self.lesson_fit = Some(fit);
    }

    fn send_json(&mut self, json: &str) {
        match self.ws.as_ref().filter(|_| self.conn == super::ConnState::Open) {
            Some(ws) => {
                if let Err(e) = ws.send_with_str(json) {
                    log(&format!("udp-playground: lesson step not sent: {e:?}"));
                }
            }
            None => log("udp-playground: lesson step not sent: not connected"),
        }
    }

    /// The lesson buttons with their state, and the caption.
    pub(super) fn render_lessons(&mut self) {
        let d = self.document.clone();
        let running = self.lesson.as_ref().map(|r| r.lesson.slug);
        if let Some(list) = d.get_element_by_id("lesson-list") {
            list.set_text_content(None);
            for (i, l) in LESSONS.iter().enumerate() {
                let (title, _) = self.words.lesson(l.slug);
                let Ok(li) = dom::child(&d, &list, "li", "", "") else { continue };
                let text = format!("{} {title}", i + 1);
                let Ok(button) = dom::child(&d, &li, "button", "", &text) else { continue };
                let _ = button.set_attribute("type", "button");
                let _ = button.set_attribute("data-slug", l.slug);
                let state = match running {
                    Some(s) if s == l.slug && self.lesson_done => "done",
                    Some(s) if s == l.slug => "running",
                    _ => "idle",
                };
                let _ = button.set_attribute("data-state", state);
                let _ = button.set_attribute("aria-pressed", if state == "idle" { "false" } else { "true" });
            }
        }
        let Some(caption) = d.get_element_by_id("caption") else { return };
        caption.set_text_content(None);
        let _ = caption.set_attribute("data-slug", running.unwrap_or(""));
        dom::set_hidden(&d, "replay-btn", running.is_none());
        let Some(runner) = self.lesson.as_ref() else {
            let _ = dom::child(&d, &caption, "p", "", self.words.get("intro"));
            return;
        };
        let (title, text) = self.words.lesson(runner.lesson.slug);
        let _ = dom::child(&d, &caption, "strong", "", title);
        let _ = dom::child(&d, &caption, "p", "", text);
        let host = self.window.location().hostname().unwrap_or_default();
        for outside in lesson::outside_commands(runner.lesson, &self.model.servers, &host) {
            let Ok(p) = dom::child(&d, &caption, "p", "outside", self.words.get("outside-run")) else {
                continue;
            };
            let tool = if outside.typed.is_some() { "command nc" } else { "command python" };
            let _ = dom::child(&d, &p, "code", tool, &outside.command);
            if let Some(typed) = outside.typed {
                let _ = dom::child(&d, &p, "span", "", self.words.get("outside-type"));
                let _ = dom::child(&d, &p, "code", "", typed.trim_end());
            }
        }
    }

    /// Every word of the page in the chosen language: the page's own text (once, on load),
    /// the lessons and the switch. The code's words go through [`crate::text::tr`].
    pub(super) fn apply_words(&mut self) {
        let d = self.document.clone();
        if self.words.code == "zh" && !crate::text::chinese_loaded() {
            // English until the Chinese words have been read (`fetch_chinese`).
            self.render_lessons();
            return;
        }
        // Lines waiting for the log are put into words in the language they came in.
        self.model.seal_log();
        crate::text::set_language(self.words);
        if let Some(html) = d.document_element() {
            let _ = html.set_attribute("lang", if self.words.code == "zh" { "zh-CN" } else { "en" });
        }
        if self.words.code != "en"
            && let Some(body) = d.body()
        {
            translate_text(&body);
        }
        dom::set_text(&d, "lang-btn", self.words.get("lang"));
        if let Some(b) = d.get_element_by_id("lang-btn") {
            let _ = b.set_attribute("title", self.words.get("lang-title"));
        }
        self.render_lessons();
        self.shown = super::Shown::default();
    }
}
