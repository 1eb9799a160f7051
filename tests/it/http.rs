//! The relay's HTTP side (issue 2, "Command line", HTTP): the page with its wasm, `/healthz`
//! and `/api/servers`, fetched with a bare HTTP/1.1 GET from an in-process relay.

use protocol::ServerName;

use crate::support::{TestRelay, http_get};

#[tokio::test]
async fn healthz_answers_200_once_the_servers_are_bound() {
    let relay = TestRelay::start().await;
    let response = http_get(relay.http(), "/healthz").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.text().trim(), "ok");
    relay.shutdown().await;
}

#[tokio::test]
async fn api_servers_lists_the_four_servers_and_nobody_with_their_real_addresses() {
    let relay = TestRelay::start_with(|c| c.chat.max_clients = 77).await;
    let response = http_get(relay.http(), "/api/servers").await;
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/json"), "content-type {content_type:?}");

    let list: serde_json::Value = serde_json::from_slice(&response.body).expect("the body is JSON");
    assert_eq!(list["http"], relay.http().to_string());
    let servers = list["servers"].as_array().expect("a `servers` array");
    assert_eq!(servers.len(), 5, "{list:#}");
    let nobody = servers.iter().find(|s| s["name"] == "nobody").expect("nobody is listed");
    assert_eq!(nobody["addr"], relay.handle.nobody.to_string());
    for name in ServerName::ALL {
        let entry = servers
            .iter()
            .find(|s| s["name"] == name.as_str())
            .unwrap_or_else(|| panic!("{name} missing from {list:#}"));
        let addr = relay.addr(name);
        assert_ne!(addr.port(), 0, "the real port, not the requested 0");
        assert_eq!(entry["addr"], addr.to_string(), "{name}'s address");
    }
    // The settings the relay runs with, so a page can show them.
    let chat = servers.iter().find(|s| s["name"] == "chat").expect("chat entry");
    assert_eq!(chat["settings"]["max_clients"], 77);
    assert_eq!(chat["settings"]["timeout_ms"], 10_000);
    let lossy = servers.iter().find(|s| s["name"] == "lossy").expect("lossy entry");
    assert_eq!(lossy["settings"]["seed"], 42);
    assert_eq!(lossy["settings"]["drop"], 0.0);
    relay.shutdown().await;
}

#[tokio::test]
async fn root_serves_the_page_that_loads_the_wasm() {
    let relay = TestRelay::start().await;
    let response = http_get(relay.http(), "/").await;
    assert_eq!(response.status, 200, "{response:?}");
    let content_type = response.header("content-type").unwrap_or_default();
    assert!(content_type.starts_with("text/html"), "content-type {content_type:?}");
    let page = response.text();
    assert!(page.contains("import init from \"./pkg/playground.js\""), "no wasm loader in:\n{page}");
    assert!(page.contains("await init()"), "the loader never calls init():\n{page}");

    let glue = http_get(relay.http(), "/pkg/playground.js").await;
    assert_eq!(glue.status, 200, "the JS glue the page imports is served");
    assert!(glue.text().contains("playground_bg.wasm"), "the glue knows the wasm's default URL");
    relay.shutdown().await;
}

#[tokio::test]
async fn wasm_is_served_as_application_wasm() {
    let relay = TestRelay::start().await;
    let response = http_get(relay.http(), "/pkg/playground_bg.wasm").await;
    assert_eq!(response.status, 200, "status {}", response.status);
    // Browsers refuse WebAssembly.instantiateStreaming for any other type.
    assert_eq!(response.header("content-type"), Some("application/wasm"));
    assert!(
        response.body.starts_with(b"\0asm"),
        "not a wasm module: {:?}",
        &response.body[..8.min(response.body.len())]
    );
    relay.shutdown().await;
}

#[tokio::test]
async fn unknown_path_is_404() {
    let relay = TestRelay::start().await;
    for path in ["/no/such/page", "/pkg/missing.wasm", "/api/nothing"] {
        let response = http_get(relay.http(), path).await;
        assert_eq!(response.status, 404, "GET {path}: {response:?}");
    }
    relay.shutdown().await;
}

/// At most this many bytes of wasm and JS glue, gzipped: a margin under issue 10's budget of
/// 200 KB, so the bundle cannot creep toward it unnoticed. Raise it only with a reason. First
/// 192,000 (the bundle's 187,794 bytes and 4 KB); 195,000 on 1 December 2026, when the bundle
/// reached 192,634: finished lessons fitted to the canvas and refitted on a resize (twiggy:
/// `zoom_to_fit` twice, `fit_lesson`, `row_points`), the canvas's `data-oldest-item` and
/// shorter label previews; 198,000 later that day, at about 196,200: the paused diagram's tags
/// for what lies beyond its edges ("▲ 5 earlier"), drawn in `draw` and kept clear of labels,
/// and the page turn by items they and Page Up/Down make (twiggy, uncompressed: `draw`
/// +1.5 KB, the turn +0.8 KB, `frame` +0.6 KB); 199,000 on 2 December 2026, at 198,077:
/// lessons in sandboxes of their own (`"scope":"own"`, `reset`, and the log's "this page's
/// sockets only"), some 170 bytes after the loops of that day had taken back 400. On 3 December
/// 2026 the bundle fell to about 198,100 with Fx hashing for the page's maps (0.9 KB).
const BUNDLE_LIMIT: u64 = 199_000;

#[test]
fn wasm_bundle_is_at_most_200_kb_gzipped() {
    let bytes = relay::http::BUNDLE_GZIP_BYTES;
    assert!(bytes > 0, "build.rs measured an empty bundle");
    assert!(
        bytes <= BUNDLE_LIMIT,
        "wasm + JS glue is {bytes} bytes gzipped, over its limit of {BUNDLE_LIMIT} (the budget is 200 KB or \
         less; find what grew with twiggy before raising it)"
    );
}
