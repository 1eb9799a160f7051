//! HTTP: the page, the health check, the server list, and the bridge's routes.
//!
//! The page and its wasm are built by `build.rs` and embedded in the binary, so `relay` serves
//! the UI from any working directory.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::api::ApiError;
use crate::bridge::{self, AppState};
use crate::serve::AddressSlot;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json};
use protocol::{ServerName, ServerSettings};
use serde::Serialize;

/// The built page: `index.html`, the web assets, and the wasm with its JS glue under `pkg/`.
#[derive(rust_embed::Embed)]
#[folder = "$OUT_DIR/site"]
struct Site;

/// Gzipped size, in bytes, of the page's wasm plus its JS glue, as measured by `build.rs`.
pub const BUNDLE_GZIP_BYTES: u64 = match u64::from_str_radix(env!("WASM_BUNDLE_GZIP_BYTES"), 10) {
    Ok(n) => n,
    Err(_) => panic!("build.rs sets WASM_BUNDLE_GZIP_BYTES to a number"),
};

/// Every file of the built page, by its path: for `relay export-site`.
pub fn site_files() -> Vec<(String, Vec<u8>)> {
    Site::iter()
        .filter_map(|path| Site::get(&path).map(|file| (path.into_owned(), file.data.into_owned())))
        .collect()
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/healthz", get(healthz))
        // An exported site (`relay export-site`) has a demo.json saying it replays recordings;
        // the live page asks, and the relay says it is live.
        .route(
            "/demo.json",
            get(|| async { axum::Json(serde_json::json!({"demo": false, "about": "a live relay"})) }),
        )
        .route("/api/servers", get(servers))
        .merge(bridge::routes())
        .merge(crate::api::routes())
        .route("/{*path}", get(|Path(path): Path<String>| asset_response_owned(path)))
        // Errors are JSON, as the API's are; axum adds the `Allow` header to a 405.
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|uri: Uri| async move { not_found(uri.path()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), bridge::guard_host))
        .with_state(state)
}

/// Answered only once every server is bound: the relay binds all sockets before serving HTTP.
async fn healthz() -> &'static str {
    "ok\n"
}

#[derive(Serialize)]
struct ServerInfo {
    name: ServerName,
    addr: SocketAddr,
    about: &'static str,
    settings: ServerSettings,
}

#[derive(Serialize)]
struct ServerList {
    http: SocketAddr,
    servers: Vec<ServerInfo>,
}

fn about(server: ServerName) -> &'static str {
    match server {
        ServerName::Echo => "returns every datagram unchanged",
        ServerName::Upper => "returns every datagram with ASCII letters uppercased",
        ServerName::Chat => "chat: reg or ^hb^ to join, quit to leave, anything else is broadcast",
        ServerName::Lossy => "drops datagrams at random, answers the rest with their length",
        ServerName::Nobody => "nothing listens here: a datagram sent here vanishes",
    }
}

/// `GET /api/servers`: each server's address and live settings.
async fn servers(State(state): State<AppState>) -> Json<ServerList> {
    let mut settings = state.relay.settings().await;
    let servers = state
        .relay
        .targets()
        .map(|(name, addr)| ServerInfo {
            name,
            addr,
            about: about(name),
            settings: settings.remove(&name).unwrap_or_default(),
        })
        .collect();
    Json(ServerList { http: state.relay.http, servers })
}

/// `GET /`: the page. A page on another machine than the relay's, a student's, changes the
/// class's servers and links for its own sockets only (`--shared-changes local`): it is served
/// with `<html data-changes="own">`, and says so next to its controls.
async fn page(State(state): State<AppState>, slot: Option<Extension<Arc<AddressSlot>>>) -> Response {
    if state.config.shared_changes.allow(slot.map(|slot| slot.ip())) {
        return asset_response("index.html").await;
    }
    match Site::get("index.html") {
        Some(file) => {
            let html =
                String::from_utf8_lossy(&file.data).replacen("<html", r#"<html data-changes="own""#, 1);
            site_response(file.metadata.mimetype(), html)
        }
        None => not_found("/"),
    }
}

/// `{"error":"…"}` for a path that is neither a file of the page nor a route of the API.
fn not_found(path: &str) -> Response {
    let message = format!("nothing at {path}: the page is at /, the API's routes are in docs/api.md");
    ApiError(StatusCode::NOT_FOUND, message).into_response()
}

/// `{"error":"…"}` for a method a route does not take, such as `DELETE /api/links/echo/out`.
async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let message =
        format!("{} does not take {method}: the Allow header names the methods it takes", uri.path());
    ApiError(StatusCode::METHOD_NOT_ALLOWED, message).into_response()
}

/// A file of the site, as every one is served: never used from cache without asking, so a
/// rebuilt relay's page is the one a reload shows.
fn site_response(mimetype: &str, body: impl IntoResponse) -> Response {
    ([(header::CONTENT_TYPE, mimetype.to_owned()), (header::CACHE_CONTROL, "no-cache".to_owned())], body)
        .into_response()
}

async fn asset_response_owned(path: String) -> Response {
    asset_response(&path).await
}

async fn asset_response(path: &str) -> Response {
    match Site::get(path) {
        Some(file) => site_response(file.metadata.mimetype(), file.data),
        None => not_found(&format!("/{path}")),
    }
}
