//! The running page: one [`App`] value behind an `Rc<RefCell<_>>`, shared by the event
//! handlers, the WebSocket callbacks and the frame loop.
//!
//! Events flow one way (STYLE.md): a WebSocket message only updates the [`Model`]; the
//! `requestAnimationFrame` loop draws the diagram and makes the few DOM changes a frame needs
//! (new log lines, and the panels ten times a second). Controls turn into [`Command`]s.
//!
//! The connection is watched by a 250 ms timer: when the relay goes away the status says so,
//! and the page reconnects with a growing backoff (0.5 s doubling to 8 s). A reconnect is a new
//! session, so the page reopens its sockets and heartbeats and tells the user it did. When the
//! relay closes the connection with a reason (1009: a frame too big to read), the banner, the
//! status and the log say it before the page reconnects.
//!
//! Settings forms send one command per Apply (or Enter), never one more on the way: a field's
//! `change` fires as focus leaves it for the Apply button, so no field both applies on change
//! and waits for Apply. The link panel sends only what differs from the relay's settings.
//!
//! Every handler borrows the app with `try_borrow_mut`, logs to the console and returns if it
//! cannot; none of them unwraps.
//!
//! This file is the wiring: the [`App`] value, the WebSocket and its reconnects, the timer and
//! the frame loop. The controls and what they do are in `controls`, the DOM panels the frame
//! loop writes in `panels`, the lessons and the language switch in `lessons`, recordings and
//! the headers pane in `toolbox`.

use std::cell::RefCell;
use std::rc::Rc;

use protocol::{Command, ErrorCode, EventKind, Scope, ServerMsg, ServerName};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{
    CanvasRenderingContext2d, CloseEvent, Document, HtmlCanvasElement, MessageEvent, WebSocket, Window,
};

use crate::connection::{self, ConnState};
use crate::dom;
use crate::lesson::Runner;
use crate::model::{Model, close_code_text, short};
use crate::render::{Hit, Renderer, View};
use crate::text::{Words, fill, word};

mod controls;
mod lessons;
mod panels;
mod toolbox;

pub type Shared = Rc<RefCell<App>>;

/// Holds the frame closure so it can schedule itself again.
type FrameSlot = Rc<RefCell<Option<Closure<dyn FnMut(f64)>>>>;

/// Log lines kept in the DOM.
const LOG_LINES: u32 = 300;
/// The log is written at most this often, up to [`LOG_PER_WRITE`] lines at a time. Changing
/// the list is what a storm of events costs the page: written every frame, 5,000 events a
/// second took it from 60 to 48 frames a second. A burst is spread over the next writes, and
/// in a storm the log trails the diagram (the outbox keeps the newest lines).
const LOG_EVERY_MS: f64 = 100.0;
const LOG_PER_WRITE: usize = 30;
/// How often the panels are refreshed, in milliseconds.
const PANEL_EVERY_MS: f64 = 100.0;

/// A socket this page opened, remembered so a reconnect can open it again.
#[derive(Clone, Debug)]
struct OwnSocket {
    name: String,
    server: Option<ServerName>,
    target: Option<String>,
    connect: bool,
    /// The most one read takes, when the socket was opened with a small buffer.
    recv_buffer: Option<usize>,
    heartbeat_ms: u64,
    /// False once the relay closed it: it is not offered for sending, but a reconnect opens it
    /// again. A relay that shuts down closes every socket (`client_close`) before its `bye`.
    open: bool,
    /// The user asked to close it: its `client_close` forgets it.
    closing: bool,
}

/// The WebSocket callbacks of the current connection. Replaced on reconnect, after the old
/// socket's handlers are unset, so JS never calls a dropped closure.
struct WsCallbacks {
    _open: Closure<dyn FnMut(web_sys::Event)>,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(CloseEvent)>,
}

pub struct App {
    window: Window,
    /// The page's clock, kept: `window.performance()` hands out a new JS reference each call.
    performance: Option<web_sys::Performance>,
    document: Document,
    model: Model,
    view: View,
    renderer: Renderer,
    hits: Vec<Hit>,
    ws: Option<WebSocket>,
    ws_callbacks: Option<WsCallbacks>,
    conn: ConnState,
    backoff_ms: f64,
    retry_at_ms: f64,
    /// Connect at the next frame: asked by a handler, inside which the app is borrowed.
    connect_now: bool,
    hellos: u32,
    /// Relay time minus page time, in microseconds: the best (largest) seen.
    clock_offset_us: Option<f64>,
    sockets: Vec<OwnSocket>,
    last_panels_ms: f64,
    /// When the log was last written, in page milliseconds.
    last_log_ms: f64,
    error_until_ms: f64,
    notice: String,
    /// The notice is the relay's goodbye, which lasts until the page is connected again.
    notice_until_open: bool,
    /// Caches of what the panels show, so unchanged panels cost no DOM work.
    shown: Shown,
    /// The server whose link the link panel shows.
    link_server: ServerName,
    /// The lossy server's settings as this page last heard them, which its panel shows: Apply
    /// sends only what was typed differently.
    lossy: protocol::ServerSettings,
    /// Why the relay closed the last connection, when it said: told again after reconnecting.
    closed_because: Option<String>,
    /// Why the relay turned the last connection away before it opened (too many from this
    /// address), from what `/healthz` answered then: the WebSocket itself cannot say.
    refused: Option<String>,
    /// Handlers that live as long as the page. Kept here, not leaked, so the page's lifetime
    /// owns them explicitly.
    handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    /// Downloads, saving, replaying and the demo (`app/toolbox.rs`).
    toolbox: toolbox::Toolbox,
    /// The page's words, in the chosen language.
    words: &'static Words,
    /// The lesson running (or done and still shown), and whether it is done.
    lesson: Option<Runner>,
    lesson_done: bool,
    /// The relay's time when the lesson started: its story is what came after.
    lesson_since_us: u64,
    /// How the finished lesson's view was fitted, while nobody has moved it since.
    lesson_fit: Option<LessonFit>,
    /// A lesson asked for before the relay said hello (`?lesson=SLUG`).
    pending_lesson: Option<&'static protocol::lessons::Lesson>,
    /// `(socket, local address)` of this session's sockets, for a lesson's `AimAt`.
    locals: Vec<(String, String)>,
    /// A lesson subscribed to all traffic: its undo goes back to our own.
    watching_all: bool,
}

/// How a finished lesson's view was fitted to its story (`App::fit_lesson`), kept while
/// nobody moves the view: when the canvas changes, the story is fitted again from the same
/// start, never from the last fit's zoom.
#[derive(Clone, Copy, Debug)]
struct LessonFit {
    /// The zoom the lesson ran at, which every fit starts from.
    base_us_per_px: f64,
    /// The relay's time of the story's end: the newest event when the lesson was done.
    end_us: u64,
    /// The canvas height, scale and lane headers' height it was fitted for.
    for_canvas: (f64, f64, f64),
}

/// What each panel last showed, compared by value (not by a `Debug` string, whose code would
/// cost the bundle more than the comparison saves).
#[derive(Default)]
struct Shown {
    stats: Option<Vec<(&'static str, String, &'static str)>>,
    rtt: Option<[u64; crate::model::RTT_BUCKETS_US.len() + 1]>,
    liveness: Option<Vec<crate::model::ChatView>>,
    lanes: Option<(Vec<dom::LaneRow>, usize)>,
    details: Option<(u64, Option<crate::model::Body>)>,
    summary: String,
    scale: String,
    status: String,
    /// The server the link panel showed, and the model's links revision then.
    links: Option<(ServerName, u64)>,
    /// The oldest item the diagram drew whole (`data-oldest-item`), the canvas height it
    /// was drawn at (`data-drawn-height`), and what lies beyond its edges (`data-beyond`).
    drawn: (Option<u64>, u32, String, usize),
}

fn log(message: &str) {
    web_sys::console::log_1(&JsValue::from_str(message));
}

/// Runs `f` on the app unless it is already borrowed (which would be a bug: say so and go on).
fn with_app(shared: &Shared, what: &str, f: impl FnOnce(&mut App)) {
    match shared.try_borrow_mut() {
        Ok(mut app) => f(&mut app),
        Err(_) => log(&format!("udp-playground: {what} skipped, the app was busy")),
    }
}

/// Builds the app, wires the page and connects. Called once by `start`.
pub fn start() -> Result<(), JsValue> {
    let window = web_sys::window().ok_or("no window")?;
    let document = window.document().ok_or("no document")?;
    let canvas: HtmlCanvasElement = dom::by_id(&document, "diagram")?.dyn_into()?;
    let ctx: CanvasRenderingContext2d =
        canvas.get_context("2d")?.ok_or("no 2D canvas context")?.dyn_into()?;
    let projector = window.location().search().unwrap_or_default().contains("view=all");
    let app = App {
        performance: window.performance(),
        window: window.clone(),
        document: document.clone(),
        model: Model::default(),
        view: View::default(),
        renderer: Renderer::new(canvas, ctx),
        hits: Vec::new(),
        ws: None,
        ws_callbacks: None,
        conn: ConnState::Connecting,
        backoff_ms: connection::FIRST_BACKOFF_MS,
        retry_at_ms: 0.0,
        connect_now: false,
        hellos: 0,
        clock_offset_us: None,
        sockets: Vec::new(),
        last_panels_ms: 0.0,
        last_log_ms: 0.0,
        error_until_ms: 0.0,
        notice: String::new(),
        notice_until_open: false,
        shown: Shown::default(),
        link_server: ServerName::Echo,
        lossy: Default::default(),
        closed_because: None,
        refused: None,
        handlers: Vec::new(),
        toolbox: toolbox::Toolbox::default(),
        words: lessons::initial_words(&window),
        lesson: None,
        lesson_done: false,
        lesson_since_us: 0,
        lesson_fit: None,
        pending_lesson: lessons::lesson_in_url(&window.location().search().unwrap_or_default()),
        locals: Vec::new(),
        watching_all: false,
    };
    let shared: Shared = Rc::new(RefCell::new(app));
    controls::wire(&shared)?;
    toolbox::wire(&shared);
    lessons::wire(&shared, &document);
    if let Ok(mut app) = shared.try_borrow_mut() {
        app.apply_words();
        app.set_projector(projector);
        if let Some(status) = document.get_element_by_id("status") {
            status.set_attribute("data-state", "ready")?;
        }
    }
    // The first connect waits for demo.json (`app/toolbox.rs`): an exported site has no relay,
    // and a WebSocket tried there fails with an error in the browser's console.
    start_frames(&shared);
    start_timer(&shared)?;
    Ok(())
}

/// The relay's WebSocket URL, on the host that served the page.
fn ws_url(window: &Window) -> String {
    let location = window.location();
    let host = location.host().unwrap_or_else(|_| "127.0.0.1:8080".into());
    let scheme = if location.protocol().unwrap_or_default() == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws")
}

/// Opens a WebSocket and hooks its callbacks to the app.
fn connect(shared: &Shared) {
    let Ok(mut app) = shared.try_borrow_mut() else {
        log("udp-playground: connect skipped, the app was busy");
        return;
    };
    if let Some(old) = app.ws.take() {
        old.set_onopen(None);
        old.set_onmessage(None);
        old.set_onclose(None);
        let _ = old.close();
    }
    app.ws_callbacks = None;
    let url = ws_url(&app.window);
    let ws = match WebSocket::new(&url) {
        Ok(ws) => ws,
        Err(e) => {
            log(&format!("udp-playground: cannot open {url}: {e:?}"));
            app.conn_closed();
            return;
        }
    };
    let s = shared.clone();
    let open = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        with_app(&s, "open", |app| {
            app.conn = ConnState::Open;
            app.refused = None;
            app.backoff_ms = connection::FIRST_BACKOFF_MS;
        });
    });
    let s = shared.clone();
    let message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(text) = event.data().as_string() else { return };
        match serde_json::from_str::<ServerMsg>(&text) {
            Ok(msg) => with_app(&s, "message", |app| {
                app.toolbox.record(&text);
                // Every event of a batch arrived now: the clock is read once per frame.
                let now_ms = app.now_ms();
                crate::model::unbatch(msg).into_iter().for_each(|m| app.on_message(m, now_ms));
            }),
            Err(e) => log(&format!("udp-playground: unreadable message ({e}): {text}")),
        }
    });
    let s = shared.clone();
    let close = Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
        with_app(&s, "close", |app| {
            if app.conn == ConnState::Connecting {
                app.ask_why_refused();
            }
            app.closed_with(event.code(), &event.reason());
            app.conn_closed();
        });
    });
    ws.set_onopen(Some(open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    app.ws = Some(ws);
    app.ws_callbacks = Some(WsCallbacks { _open: open, _message: message, _close: close });
    app.conn = ConnState::Connecting;
}

/// The frame loop. The closure holds the only reference to itself, so it lives as long as the
/// page (the wasm-bindgen `request-animation-frame` example's shape); it stops itself if the
/// page can no longer schedule frames.
fn start_frames(shared: &Shared) {
    let slot: FrameSlot = Rc::new(RefCell::new(None));
    let again = slot.clone();
    let s = shared.clone();
    *slot.borrow_mut() = Some(Closure::new(move |t: f64| {
        let mut connect_now = false;
        with_app(&s, "frame", |app| {
            app.frame(t);
            connect_now = std::mem::take(&mut app.connect_now);
        });
        if connect_now {
            connect(&s);
        }
        let window = web_sys::window();
        let scheduled = match (window, again.try_borrow()) {
            (Some(w), Ok(f)) => {
                f.as_ref().map(|f| w.request_animation_frame(f.as_ref().unchecked_ref()).is_ok())
            }
            _ => None,
        };
        if scheduled != Some(true) {
            log("udp-playground: the frame loop stopped");
        }
    }));
    if let (Some(w), Ok(f)) = (web_sys::window(), slot.try_borrow())
        && let Some(f) = f.as_ref()
    {
        let _ = w.request_animation_frame(f.as_ref().unchecked_ref());
    }
}

/// The housekeeping timer: reconnects and status countdowns, which must run even when no
/// frames are drawn (a hidden tab).
fn start_timer(shared: &Shared) -> Result<(), JsValue> {
    let s = shared.clone();
    let tick = Closure::<dyn FnMut(web_sys::Event)>::new(move |_| {
        let mut reconnect = false;
        with_app(&s, "tick", |app| {
            let now = app.now_ms();
            // A hidden tab draws no frames: the first connect is asked here too.
            reconnect = connection::reconnect_due(app.conn, now, app.retry_at_ms)
                || std::mem::take(&mut app.connect_now);
            app.update_status(now);
        });
        if reconnect {
            connect(&s);
        }
    });
    let window = web_sys::window().ok_or("no window")?;
    window.set_interval_with_callback_and_timeout_and_arguments_0(tick.as_ref().unchecked_ref(), 250)?;
    with_app(shared, "timer", |app| app.handlers.push(tick));
    Ok(())
}

/// What a control does when its event fires.
type Handler = Box<dyn FnMut(&mut App, web_sys::Event)>;

/// Adds a listener whose closure lives in `App::handlers`.
fn on(
    shared: &Shared,
    target: &web_sys::EventTarget,
    event: &str,
    f: impl FnMut(&mut App, web_sys::Event) + 'static,
) {
    listen(shared, target, event, Box::new(f));
}

/// [`on`]'s work, for every handler alike: one JS closure type and one shim for all of them
/// instead of one per control, which keeps the bundle smaller by several kilobytes.
#[inline(never)]
fn listen(shared: &Shared, target: &web_sys::EventTarget, event: &str, mut f: Handler) {
    let s = shared.clone();
    let closure = Closure::<dyn FnMut(web_sys::Event)>::new(move |e: web_sys::Event| {
        with_app(&s, "event handler", |app| f(app, e));
    });
    if let Err(e) = target.add_event_listener_with_callback(event, closure.as_ref().unchecked_ref()) {
        log(&format!("udp-playground: cannot listen for {event}: {e:?}"));
    }
    with_app(shared, "wiring", |app| app.handlers.push(closure));
}

fn on_id(
    shared: &Shared,
    document: &Document,
    id: &str,
    event: &str,
    f: impl FnMut(&mut App, web_sys::Event) + 'static,
) {
    listen_id(shared, document, id, event, Box::new(f));
}

#[inline(never)]
fn listen_id(shared: &Shared, document: &Document, id: &str, event: &str, f: Handler) {
    match document.get_element_by_id(id) {
        Some(element) => listen(shared, &element, event, f),
        None => log(&format!("udp-playground: the page has no #{id}")),
    }
}

impl App {
    fn now_ms(&self) -> f64 {
        self.performance.as_ref().map_or(0.0, web_sys::Performance::now)
    }

    /// The relay's clock now, estimated from its hello and the newest events.
    fn relay_now_us(&self) -> u64 {
        match self.clock_offset_us {
            Some(offset) => (self.now_ms() * 1000.0 + offset).max(self.model.latest_us as f64) as u64,
            None => self.model.latest_us,
        }
    }

    /// Where a live view ends now: see [`crate::layout::live_end`].
    fn live_end_us(&self) -> u64 {
        let busy = self.model.latest_us.max(self.model.holds_until_us);
        crate::layout::live_end(self.relay_now_us(), busy, self.view_span_us())
    }

    /// How much time the canvas's rows show at the view's zoom.
    fn view_span_us(&self) -> f64 {
        (self.renderer.height() - self.renderer.header()) * self.view.us_per_px
    }

    /// Moves a live view toward its edge: see [`crate::layout::follow_live`].
    fn follow_live(&mut self) {
        let (end, span) = (self.view.end_us, self.view_span_us());
        self.view.end_us = crate::layout::follow_live(end, self.live_end_us(), span);
    }

    fn conn_closed(&mut self) {
        (self.retry_at_ms, self.backoff_ms) =
            connection::after_close(self.conn, self.now_ms(), self.retry_at_ms, self.backoff_ms);
        // The socket's callbacks stay in `ws_callbacks` until the next connect replaces
        // them: this very function may be running inside one.
        self.conn = ConnState::Closed;
        let now = self.now_ms();
        self.update_status(now);
    }

    /// A WebSocket that never opened may have been turned away (HTTP 429, over the per-address
    /// cap), which a browser does not tell the page: `/healthz`, asked now from the same
    /// address, gets the same answer, and the page shows it.
    fn ask_why_refused(&mut self) {
        self.load(
            "/healthz",
            Box::new(|app, status, text| {
                // Too late if a connection opened meanwhile; and only the relay's own words.
                let why = text.trim().strip_prefix("refused: ").filter(|_| status == 429);
                app.refused = why.filter(|_| app.conn != ConnState::Open).map(|why| {
                    let why: [&dyn std::fmt::Display; 1] = [&why];
                    app.show_error_for(&fill("error-refused", &why), 15_000.0);
                    fill("status-refused", &why)
                });
            }),
        );
    }

    /// The relay closed the WebSocket: if it said why, the banner, the status and the log say
    /// it too, before the page reconnects.
    fn closed_with(&mut self, code: u16, reason: &str) {
        if self.conn == ConnState::Closed {
            return;
        }
        // The whole reason goes to the banner and the log; the status keeps to the code.
        if let Some(text) = self.model.connection_closed(code, reason) {
            // Going away (a relay shutting down, after its `bye`) is routine: the status says it.
            if !matches!(code, 1000 | 1001) {
                self.show_error_for(&text, 15_000.0);
            }
            self.closed_because = Some(close_code_text(code));
        }
    }

    /// One message from the relay, never a batch (the socket's callback opens those with
    /// [`crate::model::unbatch`]), which arrived at `now_ms`.
    fn on_message(&mut self, msg: ServerMsg, now_ms: f64) {
        if self.toolbox.replaying() {
            return; // a recording is shown: the live traffic is kept for Back to live
        }
        match &msg {
            ServerMsg::Hello(hello) => {
                self.hellos += 1;
                if self.hellos > 1 {
                    // A new session, perhaps a restarted relay with a fresh clock: start over.
                    self.model = Model::default();
                    self.view.selected = None;
                    self.view.paused = false;
                    // A running lesson's stats still leave out the history that comes again
                    // (from this relay's start, if it restarted and its clock with it).
                    if self.lesson.is_some() {
                        if let Some(t_us) = hello.t_us {
                            self.lesson_since_us = self.lesson_since_us.min(t_us);
                        }
                        self.model.restart_stats(self.lesson_since_us);
                    }
                }
                // The relay's clock, from the moment it said hello (a relay too old to say it
                // is read from the first events).
                self.clock_offset_us = hello.t_us.map(|t_us| t_us as f64 - now_ms * 1000.0);
                self.conn = ConnState::Open;
                // Where students open the page, when they can reach this relay at all.
                if let Some(url) = hello.join.first() {
                    dom::set_text(&self.document, "join-url", url);
                    if let Ok(img) = dom::by_id(&self.document, "join-qr") {
                        let _ = img.set_attribute("src", "api/join.svg");
                    }
                }
                dom::set_hidden(&self.document, "join", hello.join.is_empty());
                self.lossy = Default::default();
                if let Some(lossy) = hello.settings.get(&ServerName::Lossy) {
                    if let Some(drop) = lossy.drop {
                        self.show_lossy_setting("drop", drop);
                    }
                    if let Some(ms) = lossy.delay_ms {
                        self.show_lossy_setting("delay_ms", ms as f64);
                    }
                    if let Some(ms) = lossy.jitter_ms {
                        self.show_lossy_setting("jitter_ms", ms as f64);
                    }
                }
                self.model.apply(&msg);
                self.after_hello();
                return;
            }
            ServerMsg::Event(event) => {
                let offset = event.t_us as f64 - now_ms * 1000.0;
                self.clock_offset_us = Some(self.clock_offset_us.map_or(offset, |o| o.max(offset)));
                self.track_own_sockets(&event.kind);
                // The lossy server's panel shows its settings as this page's sockets meet them,
                // whoever changed them: another tab, a script, or a lesson of this page's own.
                if let EventKind::ServerConfigured { server: ServerName::Lossy, setting, value, by, scope } =
                    &event.kind
                    && self.model.reaches_me(ServerName::Lossy, by.as_deref(), *scope)
                {
                    self.show_lossy_setting(setting, *value);
                }
            }
            ServerMsg::Error { code, message, .. } => {
                let kind = word(match code {
                    ErrorCode::BadJson => "err-bad_json",
                    ErrorCode::UnknownOp => "err-unknown_op",
                    ErrorCode::BadCommand => "err-bad_command",
                    ErrorCode::UnknownSocket => "err-unknown_socket",
                    ErrorCode::SocketExists => "err-socket_exists",
                    ErrorCode::TargetNotAllowed => "err-target_not_allowed",
                    ErrorCode::Limit => "err-limit",
                    ErrorCode::Io => "err-io",
                });
                // What kind, in the page's language; then the relay's own words, which name its
                // flags and numbers.
                self.show_error(&fill("err-relay", &[&kind, message]));
                // It comes with no time: the log puts it at the relay's time now.
                self.model.now_us = self.relay_now_us();
            }
            ServerMsg::Bye { reason } => {
                self.model.now_us = self.relay_now_us();
                self.notice = fill("notice-bye", &[reason]);
                self.notice_until_open = true;
            }
            // What was missed may have changed the lossy server: Apply sends what is typed.
            ServerMsg::Lagged { .. } => self.lossy = Default::default(),
            // `unbatch` opened any batch before this.
            ServerMsg::Batch { .. } => {}
        }
        self.model.apply(&msg);
    }

    /// After a (re)connect: subscribe and reopen what this page had open.
    fn after_hello(&mut self) {
        if self.view.projector {
            self.command(&Command::Subscribe { scope: Scope::All, batch: true, kinds: None, history: true });
        }
        if let Some(lesson) = self.pending_lesson.take() {
            self.start_lesson(lesson);
        }
        if self.hellos > 1 {
            let sockets = std::mem::take(&mut self.sockets);
            let names: Vec<String> = sockets.iter().map(|s| s.name.clone()).collect();
            for s in &sockets {
                self.command(&Command::Open {
                    socket: s.name.clone(),
                    server: s.server,
                    target: s.target.clone(),
                    connect: s.connect,
                    recv_buffer: s.recv_buffer,
                });
                if s.heartbeat_ms > 0 {
                    self.command(&Command::Heartbeat { socket: s.name.clone(), every_ms: s.heartbeat_ms });
                }
            }
            // The opens come back as events and fill the list again; keep the heartbeats.
            self.sockets = sockets;
            self.notice = if names.is_empty() {
                word("notice-reconnected").to_owned()
            } else {
                fill("notice-reopened", &[&names.join(", ")])
            };
            self.notice_until_open = false;
            if let Some(code) = self.closed_because.take() {
                self.notice = fill("notice-had-closed", &[&self.notice, &code]);
            }
        }
        self.shown.links = None;
        self.refresh_socket_list();
    }

    fn own_session(&self, session: &str) -> bool {
        self.model.session.as_deref() == Some(session)
    }

    /// Shows one of the lossy server's settings in its panel (`drop`, `delay_ms`, `jitter_ms`).
    fn show_lossy_setting(&mut self, setting: &str, value: f64) {
        let d = &self.document;
        match setting {
            "drop" => {
                self.lossy.drop = Some(value);
                dom::set_input(d, "lossy-drop", &short(value));
                dom::set_input(d, "lossy-drop-range", &short(value));
            }
            "delay_ms" => {
                self.lossy.delay_ms = Some(value as u64);
                dom::set_input(d, "lossy-delay", &(value as u64).to_string());
            }
            "jitter_ms" => {
                self.lossy.jitter_ms = Some(value as u64);
                dom::set_input(d, "lossy-jitter", &(value as u64).to_string());
            }
            _ => {}
        }
    }

    fn track_own_sockets(&mut self, kind: &EventKind) {
        match kind {
            // A crowd's members (`member`) are not sockets of the form's: they are left out.
            EventKind::ClientOpen {
                session,
                socket,
                member: None,
                server,
                local,
                remote,
                connect,
                recv_buffer,
            } if self.own_session(session) => {
                self.locals.retain(|(n, _)| n != socket);
                self.locals.push((socket.clone(), local.to_string()));
                let heartbeat_ms =
                    self.sockets.iter().find(|s| &s.name == socket).map_or(0, |s| s.heartbeat_ms);
                self.sockets.retain(|s| &s.name != socket);
                let target = server.is_none().then(|| remote.to_string());
                self.sockets.push(OwnSocket {
                    name: socket.clone(),
                    server: *server,
                    target,
                    connect: *connect,
                    recv_buffer: *recv_buffer,
                    heartbeat_ms,
                    open: true,
                    closing: false,
                });
                self.refresh_socket_list();
                dom::set_select(&self.document, "send-socket", socket);
                let next = controls::next_name(&self.sockets);
                dom::set_input(&self.document, "open-name", &next);
            }
            EventKind::ClientClose { session, socket, member: None } if self.own_session(session) => {
                self.sockets.retain(|s| !(&s.name == socket && s.closing));
                if let Some(s) = self.sockets.iter_mut().find(|s| &s.name == socket) {
                    s.open = false;
                }
                self.refresh_socket_list();
            }
            _ => {}
        }
    }

    fn refresh_socket_list(&self) {
        let options: Vec<(String, String)> = self
            .sockets
            .iter()
            .filter(|s| s.open)
            .map(|s| {
                let to =
                    s.server.map_or_else(|| s.target.clone().unwrap_or_default(), |n| n.as_str().to_owned());
                let hb = if s.heartbeat_ms > 0 { format!(" ♥{}ms", s.heartbeat_ms) } else { String::new() };
                let buffer = s.recv_buffer.map_or_else(String::new, |n| fill("socket-reads", &[&n]));
                (s.name.clone(), format!("{} → {to}{buffer}{hb}", s.name))
            })
            .collect();
        dom::fill_select(&self.document, "send-socket", &options);
    }

    /// Sends a command, or says why it cannot.
    fn command(&mut self, command: &Command) {
        // What a live control would do could not be seen behind the recording: a teacher
        // watching one must not change the class's servers unawares.
        if self.toolbox.live_aside() {
            self.show_error(word("err-replaying"));
            return;
        }
        let Some(ws) = self.ws.as_ref().filter(|_| self.conn == ConnState::Open) else {
            self.show_error(word("err-not-connected"));
            return;
        };
        match serde_json::to_string(command) {
            Ok(json) => {
                if let Err(e) = ws.send_with_str(&json) {
                    log(&format!("udp-playground: send failed: {e:?}"));
                }
            }
            Err(e) => log(&format!("udp-playground: cannot encode a command: {e}")),
        }
    }

    fn show_error(&mut self, message: &str) {
        self.show_error_for(message, 6_000.0);
    }

    fn show_error_for(&mut self, message: &str, ms: f64) {
        self.error_until_ms = self.now_ms() + ms;
        if let Some(el) = self.document.get_element_by_id("error") {
            el.set_text_content(Some(message));
            let _ = el.remove_attribute("hidden");
        }
    }

    /// One animation frame: draw, then the small DOM updates.
    fn frame(&mut self, _t: f64) {
        let now_ms = self.now_ms();
        self.replay_frame(now_ms);
        let now_us = self.relay_now_us();
        if !self.view.paused {
            self.follow_live();
        }
        self.poll_lesson(now_ms);
        if self.view.projector {
            // The window may have been resized, or moved to the projector's screen.
            self.view.scale = self.projector_scale();
        }
        // A view that follows the traffic again (Live, a new session, a replay) is no longer
        // the lesson's.
        if !self.view.paused {
            self.lesson_fit = None;
        }
        let dpr = self.window.device_pixel_ratio().max(1.0);
        self.hits = self.renderer.draw(&self.model, &self.view, dpr);
        if let Some(fit) = self.lesson_fit
            && fit.for_canvas != (self.renderer.height(), self.view.scale, self.renderer.header())
        {
            // The canvas changed under a finished lesson (or its headers did: a link's line
            // came): fit it again, and draw that at once, so no frame shows the old fit.
            self.fit_lesson(fit);
            self.hits = self.renderer.draw(&self.model, &self.view, dpr);
        }
        if now_ms - self.last_log_ms >= LOG_EVERY_MS {
            self.last_log_ms = now_ms;
            self.write_log();
        }
        if now_ms - self.last_panels_ms >= PANEL_EVERY_MS {
            self.last_panels_ms = now_ms;
            self.render_panels(now_us);
            self.render_details(false);
        }
    }
}
