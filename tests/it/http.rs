//! The relay's HTTP side (issue 2, "Command line", HTTP): the page with its wasm, `/healthz`
//! and `/api/servers`, fetched with a bare HTTP/1.1 GET from an in-process relay; and how the
//! HTTP side refuses: bodies that are not one JSON object, unknown paths and methods, a wrong
//! `Host`.

use protocol::ServerName;

use crate::support::{TestRelay, http_get, http_request};

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
async fn unknown_path_is_404_as_json() {
    let relay = TestRelay::start().await;
    for path in ["/no/such/page", "/pkg/missing.wasm", "/api/nothing"] {
        let response = http_get(relay.http(), path).await;
        assert_eq!(response.status, 404, "GET {path}: {response:?}");
        assert_eq!(response.header("content-type"), Some("application/json"), "GET {path}");
        let error = error_of(&response.body);
        assert!(error.contains(path), "GET {path}: {error}");
    }
    relay.shutdown().await;
}

/// The `error` of a JSON error body, or a panic naming the body.
fn error_of(body: &[u8]) -> String {
    let json: serde_json::Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)));
    json["error"].as_str().unwrap_or_else(|| panic!("no error in {json}")).to_owned()
}

#[tokio::test]
async fn a_method_a_route_does_not_take_is_405_as_json_with_allow() {
    let relay = TestRelay::start().await;
    for (method, path, allow) in [
        ("DELETE", "/api/links/echo/out", "PUT"),
        ("GET", "/api/links/echo/in", "PUT"),
        ("POST", "/metrics", "GET,HEAD"),
        ("PUT", "/api/links", "GET,HEAD"),
    ] {
        let response = http_request(relay.http(), method, path, &[], "").await;
        assert_eq!(response.status, 405, "{method} {path}: {response:?}");
        assert_eq!(response.header("allow"), Some(allow), "{method} {path}");
        assert_eq!(response.header("content-type"), Some("application/json"), "{method} {path}");
        let error = error_of(&response.body);
        assert!(error.contains(method) && error.contains(path), "{method} {path}: {error}");
    }
    relay.shutdown().await;
}

const JSON: [(&str, &str); 1] = [("Content-Type", "application/json")];

/// `PUT /api/links/echo/out` with `body`: its status and its `error`, or its body.
async fn put_echo_out(relay: &TestRelay, body: &str) -> (u16, String) {
    let response = http_request(relay.http(), "PUT", "/api/links/echo/out", &JSON, body).await;
    let text = if response.status == 200 { response.text() } else { error_of(&response.body) };
    (response.status, text)
}

#[tokio::test]
async fn a_link_body_is_one_json_object_and_its_errors_say_what_to_change() {
    let relay = TestRelay::start().await;
    for (body, wanted) in [
        (r#"{"loss":0.3} x"#, "the body goes on after its JSON object, at line 1 column 14"),
        ("[0.3]", "the body is not a JSON object"),
        (r#"{"loss":0.3"#, "the body's JSON is cut off"),
        (r#"{loss:0.3}"#, "the body is not valid JSON (key must be a string at line 1 column 2)"),
        ("", "the body is empty"),
        (r#"{"loss":null}"#, "loss cannot be null"),
        (
            r#"{"jitter_ms":99999999999999999999}"#,
            "jitter_ms is a whole number of milliseconds from 0 to 60000",
        ),
        (r#"{"delay_ms":-5}"#, "delay_ms is a whole number of milliseconds from 0 to 60000"),
        (r#"{"mtu":70000}"#, "mtu is a whole number of bytes from 68 to 65535, or 0 for none"),
        (r#"{"loss":0.1,"loss":0.2}"#, "duplicate field `loss`"),
        (r#"{"delay_ms":"long"}"#, "delay_ms: invalid type: string \"long\", expected u64"),
    ] {
        let (status, error) = put_echo_out(&relay, body).await;
        assert_eq!(status, 400, "{body}: {error}");
        assert!(error.contains(wanted), "{body}: {error:?}, wanted {wanted:?}");
        assert!(!error.starts_with('?') && !error.starts_with('.'), "{body}: {error:?}");
    }
    let (_, error) = put_echo_out(&relay, "[0.3]").await;
    assert!(error.contains(r#"a body is one JSON object, like {"loss":0.3}"#), "{error}");
    // Nothing of it was applied.
    let links: serde_json::Value =
        serde_json::from_slice(&http_get(relay.http(), "/api/links").await.body).expect("the links as JSON");
    assert_eq!(links["echo"]["out"]["loss"], 0.0, "{links}");

    let (status, body) = put_echo_out(&relay, r#"{"loss":-0.0,"duplicate":0.5}"#).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""loss":0.0,"#), "-0.0 is 0: {body}");
    let (status, error) = put_echo_out(&relay, r#"{"hold_next_ms":-1}"#).await;
    assert_eq!(status, 400, "{error}");
    assert!(error.contains("unknown field `hold_next_ms`"), "{error}");
    let fault =
        http_request(relay.http(), "POST", "/api/links/echo/in/faults", &JSON, r#"{"drop_next":-1}"#).await;
    assert_eq!(fault.status, 400, "{fault:?}");
    assert_eq!(error_of(&fault.body), "drop_next is a count of datagrams from 0 to 4294967295");
    relay.shutdown().await;
}

#[tokio::test]
async fn an_unknown_server_on_the_links_api_lists_only_the_servers_with_links() {
    let relay = TestRelay::start().await;
    let response = http_request(relay.http(), "PUT", "/api/links/ehco/out", &JSON, r#"{"loss":0.1}"#).await;
    assert_eq!(response.status, 404, "{response:?}");
    assert_eq!(error_of(&response.body), r#"unknown server "ehco": expected echo, upper, chat or lossy"#);
    let nobody =
        http_request(relay.http(), "POST", "/api/links/nobody/in/faults", &JSON, r#"{"drop_next":1}"#).await;
    assert_eq!(nobody.status, 404, "{nobody:?}");
    assert!(error_of(&nobody.body).contains("nobody has no link"), "{nobody:?}");
    relay.shutdown().await;
}

#[tokio::test]
async fn a_host_with_the_relays_name_but_another_port_is_told_the_port() {
    let relay = TestRelay::start().await;
    let port = relay.http().port();
    let other = port.wrapping_add(1);
    for (host, wanted) in [
        ("127.0.0.1".to_owned(), format!("has no port: the relay listens on port {port} (127.0.0.1:{port})")),
        (format!("localhost:{other}"), format!("names port {other}: the relay listens on port {port}")),
        (format!("rebind.example:{port}"), "start the relay with --public-host NAME".to_owned()),
    ] {
        let response = http_request(relay.http(), "GET", "/healthz", &[("Host", &host)], "").await;
        assert_eq!(response.status, 403, "Host {host}: {response:?}");
        assert!(response.text().contains(&wanted), "Host {host}: {:?}, wanted {wanted:?}", response.text());
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
/// 2026 the bundle fell to about 198,100 with Fx hashing for the page's maps (0.9 KB); later
/// that day each lesson's commands held once, not twice (a `static`, 0.6 KB), paid for a
/// review's fixes: 198,942, and 198,135 after the next's (`protocol` at "z") (BENCHMARKS.md).
/// A later machine's toolchain (rustc 1.95.0) built the
/// same code into 199,245, over this limit; talc in place of dlmalloc as the page's allocator
/// took 3 KB off, and the session ended at 198,248 (BENCHMARKS.md, "3 December 2026, evening").
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
