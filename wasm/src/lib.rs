//! The browser UI of UDP Playground.
//!
//! The only export is [`start`], called by the loader in `index.html`. For now the page shows
//! that the wasm module runs and which servers the relay offers; the live sequence diagram
//! builds on the same start function.

pub mod model;

use wasm_bindgen::prelude::*;

/// Entry point: marks the page as running and shows a greeting.
#[wasm_bindgen(start)]
pub fn start() -> Result<(), JsValue> {
    let document =
        web_sys::window().and_then(|w| w.document()).ok_or_else(|| JsValue::from_str("no document"))?;
    if let Some(status) = document.get_element_by_id("status") {
        status.set_text_content(Some("UI running"));
        status.set_attribute("data-state", "ready")?;
    }
    Ok(())
}
