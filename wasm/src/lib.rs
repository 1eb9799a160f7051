//! The browser UI of UDP Playground: a live sequence diagram of real UDP traffic.
//!
//! The only export is [`start`], which the loader in `index.html` runs. The crate's parts:
//!
//! - [`model`]: what the page knows, in plain Rust (lanes, arrows, marks, liveness, stats),
//!   built from the relay's messages and tested natively with `cargo test -p wasm`;
//! - [`connection`]: the connection's states and reconnect backoff, a pure state machine;
//! - [`layout`]: where the diagram's labels go, so they touch no line and no other label;
//! - [`page`]: the diagram's rows down the time axis, and where a turn of its page goes;
//! - [`lesson`]: runs one of the twelve lessons' steps, a pure state machine;
//! - [`text`]: the page's words, one table per language (English, Simplified Chinese);
//! - [`replay`]: plays a recording (a saved session, a lesson) into the model, a pure state machine;
//! - [`inspect`]: a datagram's IP and UDP headers field by field over their bytes, as Wireshark shows them;
//! - `render`: draws the model on a canvas, once per animation frame;
//! - `dom`: the panels made of DOM (event log, liveness, stats, details) and small helpers;
//! - `app`: the running page, which speaks to the relay over the WebSocket, reconnects and
//!   runs the frame loop; its controls (`app/controls`), panels (`app/panels`), lessons and
//!   toolbox have files of their own.
//!
//! The browser-only parts build only for wasm32, so the model's tests need no browser.

pub mod connection;
pub mod inspect;
pub mod layout;
pub mod lesson;
pub mod model;
pub mod page;
pub mod replay;
pub mod text;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod dom;
#[cfg(target_arch = "wasm32")]
mod render;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen::prelude::*;

/// Talc in place of Rust's default dlmalloc: 3 KB smaller in the bundle, gzipped, and as fast
/// in the classroom benchmark (BENCHMARKS.md). The page has one thread.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

/// Entry point: wires the page, connects to the relay and starts drawing. Marks `#status`
/// with `data-state="ready"` once the UI runs.
#[cfg(target_arch = "wasm32")]
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    app::start()
}
