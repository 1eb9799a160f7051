//! The controls: every button, field and key of the page hooked to the [`App`] (`wire`), and
//! what each does: open and close sockets, send, retry, heartbeat, configure the lossy
//! server and the link, pause, zoom, scroll, step and select in the diagram.

use protocol::{Command, Dir, LinkFault, RetrySpec, Scope, ServerName};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{Document, Element, HtmlElement, KeyboardEvent, MouseEvent, WheelEvent};

use super::{App, ConnState, OwnSocket, Shared, on, on_id};
use crate::dom;
use crate::model::{link_patch, lossy_patch, millis, retry_params};
use crate::render::View;
use crate::text::{fill, word};

/// Hooks every control on the page.
pub(super) fn wire(shared: &Shared) -> Result<(), JsValue> {
    let document = shared.try_borrow().map_err(|_| "busy")?.document.clone();
    let d = &document;
    on_id(shared, d, "open-btn", "click", |app, _| app.open_socket());
    on_id(shared, d, "open-name", "keydown", |app, e| {
        if is_enter(&e) {
            app.open_socket();
        }
    });
    on_id(shared, d, "send-btn", "click", |app, _| app.send_text());
    on_id(shared, d, "send-text", "keydown", |app, e| {
        if is_enter(&e) {
            app.send_text();
        }
    });
    on_id(shared, d, "close-btn", "click", |app, _| {
        if let Some(socket) = app.selected_socket() {
            if let Some(s) = app.sockets.iter_mut().find(|s| s.name == socket) {
                s.closing = true;
            }
            app.command(&Command::Close { socket });
        }
    });
    on_id(shared, d, "hb-start", "click", |app, _| {
        match millis("“every”", dom::input_value(&app.document, "hb-every").trim()) {
            // 0 is what Stop sends: as a Start it would quietly stop.
            Ok(0) => app.show_error(word("err-hb-zero")),
            Ok(every) => app.heartbeat(every),
            Err(e) => app.show_error(&e.message),
        }
    });
    on_id(shared, d, "hb-stop", "click", |app, _| app.heartbeat(0));
    on_id(shared, d, "lossy-drop-range", "input", |app, _| {
        let value = dom::input_value(&app.document, "lossy-drop-range");
        dom::set_input(&app.document, "lossy-drop", &value);
    });
    on_id(shared, d, "lossy-drop-range", "change", |app, _| app.configure_lossy(false));
    // The number field waits for Apply (or Enter): applying on its `change` too would send the
    // value twice when the user types it and clicks Apply. The slider has no Apply: it
    // applies when let go.
    on_id(shared, d, "lossy-drop", "input", |app, _| {
        let value = dom::input_value(&app.document, "lossy-drop");
        dom::set_input(&app.document, "lossy-drop-range", &value);
    });
    on_id(shared, d, "lossy-apply", "click", |app, _| app.configure_lossy(true));
    for id in ["lossy-drop", "lossy-delay", "lossy-jitter"] {
        on_id(shared, d, id, "keydown", |app, e| {
            if is_enter(&e) {
                app.configure_lossy(true);
            }
        });
    }
    wire_link_panel(shared, d);
    on_id(shared, d, "pause-btn", "click", |app, _| app.toggle_pause());
    on_id(shared, d, "projector-btn", "click", |app, _| {
        let on = !app.view.projector;
        app.set_projector(on);
    });
    on_id(shared, d, "step-btn", "click", |app, _| app.step(1, false));
    on_id(shared, d, "live-btn", "click", |app, _| app.go_live());
    on_id(shared, d, "zoom-in", "click", |app, _| app.zoom(0.5));
    on_id(shared, d, "zoom-out", "click", |app, _| app.zoom(2.0));
    on_id(shared, d, "diagram", "click", |app, e| {
        if let Some(e) = e.dyn_ref::<MouseEvent>() {
            app.click_diagram(f64::from(e.offset_x()), f64::from(e.offset_y()));
        }
    });
    on_id(shared, d, "diagram", "wheel", |app, e| {
        if let Some(w) = e.dyn_ref::<WheelEvent>() {
            e.prevent_default();
            if w.ctrl_key() {
                app.zoom(if w.delta_y() < 0.0 { 0.8 } else { 1.25 });
            } else {
                app.scroll(w.delta_y());
            }
        }
    });
    on_id(shared, d, "log", "click", |app, e| {
        let item = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|el| el.closest("li").ok().flatten())
            .and_then(|li| li.get_attribute("data-item"))
            .and_then(|id| id.parse::<u64>().ok());
        if let Some(id) = item {
            app.select(Some(id), true);
        }
    });
    on(shared, &document, "keydown", |app, e| {
        if let Some(k) = e.dyn_ref::<KeyboardEvent>() {
            app.key(k);
        }
    });
    Ok(())
}

/// The link panel: a server to show, its settings in both directions (applied together by
/// Apply or Enter) and the faults, one click each.
fn wire_link_panel(shared: &Shared, d: &Document) {
    on_id(shared, d, "link-server", "change", |app, _| {
        let picked = dom::select_value(&app.document, "link-server").parse::<ServerName>();
        app.link_server = picked.unwrap_or(ServerName::Echo);
        app.shown.links = None;
        // The panel shows the relay's settings for the new server, not what was typed before.
        dom::render_link_panel(&app.document, &app.model, app.link_server);
    });
    on_id(shared, d, "link-apply", "click", |app, _| app.apply_link());
    for dir in Dir::BOTH {
        for field in crate::model::LINK_FIELDS {
            on_id(shared, d, &dom::link_input_id(dir, field), "keydown", |app, e| {
                if is_enter(&e) {
                    app.apply_link();
                }
            });
        }
        on_id(shared, d, &format!("link-{dir}-drop"), "click", move |app, _| {
            app.link_fault(dir, LinkFault { drop_next: Some(1), ..LinkFault::default() });
        });
        on_id(shared, d, &format!("link-{dir}-dup"), "click", move |app, _| {
            app.link_fault(dir, LinkFault { duplicate_next: Some(1), ..LinkFault::default() });
        });
        on_id(shared, d, &format!("link-{dir}-hold"), "click", move |app, _| {
            match millis("“hold”", dom::input_value(&app.document, "link-hold-ms").trim()) {
                Ok(ms) => app.link_fault(dir, LinkFault { hold_next_ms: Some(ms), ..LinkFault::default() }),
                Err(e) => app.show_error(&e.message),
            }
        });
    }
}

fn is_enter(e: &web_sys::Event) -> bool {
    e.dyn_ref::<KeyboardEvent>().is_some_and(|k| k.key() == "Enter")
}

impl App {
    pub(super) fn selected_socket(&mut self) -> Option<String> {
        let name = dom::select_value(&self.document, "send-socket");
        if name.is_empty() {
            self.show_error(word("err-no-socket"));
            None
        } else {
            Some(name)
        }
    }

    pub(super) fn open_socket(&mut self) {
        let mut name = dom::input_value(&self.document, "open-name").trim().to_owned();
        if name.is_empty() {
            name = next_name(&self.sockets);
        }
        let server = dom::select_value(&self.document, "open-server").parse::<ServerName>().ok();
        let connect = dom::checked(&self.document, "open-connect");
        // Empty: read whole datagrams. Else like Python's `recvfrom(N)`: the rest is cut off.
        let buffer = dom::input_value(&self.document, "open-recv-buffer");
        let recv_buffer = match buffer.trim() {
            "" => None,
            text => match text.parse::<usize>() {
                Ok(n @ 1..=65_535) => Some(n),
                _ => {
                    self.show_error(word("err-recv-buffer"));
                    return;
                }
            },
        };
        self.command(&Command::Open {
            socket: name,
            server: server.or(Some(ServerName::Echo)),
            target: None,
            connect,
            recv_buffer,
        });
    }

    pub(super) fn send_text(&mut self) {
        let Some(socket) = self.selected_socket() else { return };
        let text = dom::input_value(&self.document, "send-text");
        let retry = if dom::checked(&self.document, "retry-on") {
            let typed = |id| dom::input_value(&self.document, id);
            match retry_params(&typed("retry-initial"), &typed("retry-factor"), &typed("retry-giveup")) {
                Ok(params) => Some(RetrySpec::With(params)),
                Err(e) => {
                    self.show_error(&fill("err-retry", &[&e]));
                    return;
                }
            }
        } else {
            None
        };
        let request_id = dom::checked(&self.document, "reqid-on");
        self.command(&Command::Send { socket, text: Some(text), hex: None, retry, request_id });
    }

    pub(super) fn heartbeat(&mut self, every_ms: u64) {
        let Some(socket) = self.selected_socket() else { return };
        if let Some(s) = self.sockets.iter_mut().find(|s| s.name == socket) {
            s.heartbeat_ms = every_ms;
        }
        self.refresh_socket_list();
        dom::set_select(&self.document, "send-socket", &socket);
        self.command(&Command::Heartbeat { socket, every_ms });
    }

    /// Sends the lossy server's settings typed differently from the relay's: the slider's drop
    /// alone when it is let go (`all` false), every field of the panel on Apply.
    pub(super) fn configure_lossy(&mut self, all: bool) {
        let d = &self.document;
        let field =
            |id: &str| if all || id == "lossy-drop" { dom::input_value(d, id) } else { String::new() };
        let typed = [field("lossy-drop"), field("lossy-delay"), field("lossy-jitter")];
        let (drop, delay_ms, jitter_ms) = match lossy_patch(&self.lossy, typed.each_ref().map(String::as_str))
        {
            Ok((None, None, None)) => return, // nothing changed
            Ok(change) => change,
            Err(e) => {
                self.show_error(&fill("err-lossy", &[&e]));
                // The field keeps what was typed, to be corrected; the slider, which cannot show
                // a drop past 1, shows the relay's again.
                if let Some(drop) = self.lossy.drop {
                    dom::set_input(&self.document, "lossy-drop-range", &crate::model::short(drop));
                }
                return;
            }
        };
        self.command(&Command::Configure {
            server: ServerName::Lossy,
            drop,
            delay_ms,
            jitter_ms,
            timeout_ms: None,
            scope: Scope::All,
        });
    }

    /// Sends, for each direction of the panel's server, the settings typed differently from
    /// the relay's: one `link` op per direction that changed, none if nothing did.
    pub(super) fn apply_link(&mut self) {
        let server = self.link_server;
        let links = self.model.my_links(server);
        let mut commands = Vec::new();
        for dir in Dir::BOTH {
            let fields = dom::link_fields(&self.document, dir);
            match link_patch(links.get(dir), &fields) {
                Ok(Some(p)) => commands.push(Command::Link {
                    server,
                    dir,
                    loss: p.loss,
                    duplicate: p.duplicate,
                    reorder: p.reorder,
                    delay_ms: p.delay_ms,
                    jitter_ms: p.jitter_ms,
                    mtu: p.mtu,
                    scope: Scope::All,
                }),
                Ok(None) => {}
                Err(e) => {
                    // Nothing is sent: half a change would be worse than none.
                    let side = word(if dir == Dir::In { "link-in" } else { "link-out" });
                    self.show_error(&fill("err-link", &[&server, &side, &e]));
                    return;
                }
            }
        }
        for command in &commands {
            self.command(command);
        }
    }

    pub(super) fn link_fault(&mut self, dir: Dir, fault: LinkFault) {
        self.command(&Command::Fault {
            server: self.link_server,
            dir,
            drop_next: fault.drop_next,
            duplicate_next: fault.duplicate_next,
            hold_next_ms: fault.hold_next_ms,
            scope: Scope::All,
        });
    }

    pub(super) fn set_projector(&mut self, on: bool) {
        self.view.projector = on;
        self.view.scale = if on { self.projector_scale() } else { 1.0 };
        if let Some(body) = self.document.body() {
            let _ = if on {
                body.class_list().add_1("projector")
            } else {
                body.class_list().remove_1("projector")
            };
        }
        dom::set_pressed(&self.document, "projector-btn", on);
        if self.conn == ConnState::Open {
            self.command(&Command::Subscribe {
                scope: if on || self.watching_all { Scope::All } else { Scope::Own },
                batch: true,
                kinds: None,
                // The projector shows what happened before it was opened: the relay's history.
                history: on,
            });
        }
    }

    /// The diagram's scale in the projector view, for this window.
    pub(super) fn projector_scale(&self) -> f64 {
        crate::layout::projector_scale(
            self.window.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(1080.0),
        )
    }

    pub(super) fn toggle_pause(&mut self) {
        self.lesson_fit = None;
        if self.view.paused {
            self.go_live();
        } else {
            // Frozen where it is: what the screen shows.
            self.view.paused = true;
        }
    }

    pub(super) fn go_live(&mut self) {
        self.view.paused = false;
    }

    pub(super) fn zoom(&mut self, factor: f64) {
        self.lesson_fit = None;
        self.view.us_per_px = (self.view.us_per_px * factor).clamp(View::MIN_US_PER_PX, View::MAX_US_PER_PX);
    }

    /// Scrolls by `dy` pixels: up is back in time. Scrolling pauses the diagram.
    pub(super) fn scroll(&mut self, dy: f64) {
        self.lesson_fit = None;
        self.view.paused = true;
        let live = self.live_end_us().max(self.view.end_us);
        let end = self.view.end_us as f64 + dy * self.view.us_per_px;
        self.view.end_us = end.clamp(0.0, live as f64) as u64;
    }

    /// Turns the diagram a page `back` in its items (or on), pausing it: see
    /// [`Renderer::turn_page`](crate::render::Renderer::turn_page).
    pub(super) fn turn_page(&mut self, back: bool) {
        self.lesson_fit = None;
        self.view.paused = true;
        if let Some(end_us) = self.renderer.turn_page(&self.model, &self.view, back) {
            self.view.end_us = end_us.min(self.live_end_us().max(self.view.end_us));
        }
    }

    /// Selects the next (or previous) item, arrows only if `arrows_only`, and pauses on it.
    pub(super) fn step(&mut self, direction: i64, arrows_only: bool) {
        let items = self.model.items();
        let current = self.view.selected;
        let pick = |it: &&crate::model::Item| !arrows_only || matches!(it.body, crate::model::Body::Arrow(_));
        let found = match (current, direction > 0) {
            (Some(id), true) => items.iter().filter(pick).find(|it| it.id > id),
            (Some(id), false) => items.iter().rev().filter(pick).find(|it| it.id < id),
            (None, true) if self.view.paused => {
                items.iter().filter(pick).find(|it| it.t_us > self.view.end_us)
            }
            (None, _) => items.iter().rev().filter(pick).find(|it| it.t_us <= self.relay_now_us()),
        };
        match found.map(|it| it.id) {
            Some(id) => self.select(Some(id), true),
            None if direction > 0 => self.go_live(),
            None => {}
        }
    }

    /// Selects an item and, if asked, pauses with it in view.
    pub(super) fn select(&mut self, id: Option<u64>, reveal: bool) {
        self.view.selected = id;
        if reveal && let Some(item) = id.and_then(|id| self.model.item(id)) {
            self.lesson_fit = None;
            let t = item.t_us;
            let span = self.renderer.height().max(100.0) * self.view.us_per_px;
            let end = (t as f64 + span * 0.3) as u64;
            self.view.paused = true;
            self.view.end_us = end.min(self.live_end_us().max(t));
        }
        self.render_details(true);
    }

    pub(super) fn click_diagram(&mut self, x: f64, y: f64) {
        // A tag at an edge ("▲ 7 earlier") turns the page that way.
        if let Some(top) = self.renderer.tag_at(x, y) {
            self.turn_page(top);
            return;
        }
        let best = self
            .hits
            .iter()
            .map(|h| (h.distance(x, y), h.id))
            .filter(|(d, _)| *d <= 8.0)
            .min_by(|a, b| a.0.total_cmp(&b.0));
        self.select(best.map(|(_, id)| id), false);
    }

    pub(super) fn key(&mut self, k: &KeyboardEvent) {
        if k.ctrl_key() || k.meta_key() || k.alt_key() {
            return;
        }
        let target = k.target().and_then(|t| t.dyn_into::<HtmlElement>().ok());
        let tag = target.as_ref().map(|t| t.tag_name().to_ascii_lowercase()).unwrap_or_default();
        if matches!(tag.as_str(), "input" | "select" | "textarea") {
            return;
        }
        // The arrows and Page keys move the diagram from the canvas, and from the buttons of
        // the lessons and of the time controls just above it (a lesson just clicked): the
        // columns' other buttons leave them to the browser, which scrolls the column.
        let near_diagram =
            target.as_ref().and_then(|t| t.closest("#lessons, .toolbar").ok().flatten()).is_some();
        let on_canvas = tag == "canvas" || (tag == "button" && near_diagram);
        let page = self.renderer.height().max(100.0);
        let handled = match k.key().as_str() {
            " " if tag != "button" => {
                self.toggle_pause();
                true
            }
            "s" | "S" | "." => {
                self.step(1, false);
                true
            }
            "l" | "L" | "End" => {
                self.go_live();
                true
            }
            "+" | "=" => {
                self.zoom(0.5);
                true
            }
            "-" | "_" => {
                self.zoom(2.0);
                true
            }
            "]" => {
                self.step(1, true);
                true
            }
            "[" => {
                self.step(-1, true);
                true
            }
            "p" | "P" => {
                let on = !self.view.projector;
                self.set_projector(on);
                true
            }
            "Escape" => {
                self.select(None, false);
                true
            }
            "ArrowUp" if on_canvas => {
                self.scroll(-page * 0.2);
                true
            }
            "ArrowDown" if on_canvas => {
                self.scroll(page * 0.2);
                true
            }
            "PageUp" if on_canvas => {
                self.turn_page(true);
                true
            }
            "PageDown" if on_canvas => {
                self.turn_page(false);
                true
            }
            _ => false,
        };
        if handled {
            k.prevent_default();
        }
    }
}

/// The first of `a`, `b`, … `z`, `s27`, … not in use.
pub(super) fn next_name(sockets: &[OwnSocket]) -> String {
    let used = |n: &str| sockets.iter().any(|s| s.name == n);
    ('a'..='z')
        .map(|c| c.to_string())
        .find(|n| !used(n))
        .or_else(|| (27..).map(|i| format!("s{i}")).find(|n| !used(n)))
        .unwrap_or_else(|| "x".to_owned())
}
