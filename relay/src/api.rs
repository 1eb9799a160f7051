//! The HTTP API for scripts and test rigs: each server's link, in the style of Toxiproxy's.
//!
//! - `GET /api/links`: every server's link, both directions.
//! - `PUT /api/links/{server}/{in|out}`: change some settings, keep the others; answers with
//!   the direction's new settings.
//! - `POST /api/links/{server}/{in|out}/faults`: aim a fault at the next datagrams.
//! - `GET /api/events.jsonl`: the recent events, one JSON object a line, in `seq` order.
//! - `GET /api/capture.pcapng`: the recent datagrams, for Wireshark.
//! - `GET /api/datagrams/{dg}`: one datagram's IP and UDP headers, field by field.
//! - `GET /metrics`: Prometheus' text format.
//!
//! Errors are JSON (`{"error":"…"}`) and name what is wrong: 400 for a bad value, 404 for an
//! unknown server or direction (or path), 405 for a method a path does not take. Any web page
//! the user visits can send requests to localhost, so a request that changes something must
//! be `application/json` (otherwise 415), which a page cannot send cross-site without the
//! browser asking first, and must carry no foreign `Origin` (otherwise 403), the WebSocket's
//! rule. A change from another machine than the relay's is refused too (403) unless
//! `--shared-changes anyone`. `docs/api.md` has curl examples.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use protocol::{Dir, LinkFault, LinkPatch, LinkSettings, Links, ServerName};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::bridge::{self, AppState};
use crate::serve::AddressSlot;
use crate::udp::LinkChange;

/// The API's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/links", get(list))
        .route("/api/links/{server}/{dir}", put(set))
        .route("/api/links/{server}/{dir}/faults", post(fault))
        .route("/api/events.jsonl", get(events))
        .route("/api/capture.pcapng", get(capture))
        .route("/api/datagrams/{dg}", get(datagram))
        .route("/metrics", get(metrics))
        .route("/api/join.svg", get(join_qr))
}

/// `GET /api/join.svg`: a QR code of the URL students open, for a phone to scan off the
/// projector. 404 when the relay listens on loopback only: nobody else can reach it.
async fn join_qr(State(state): State<AppState>) -> Result<Response, ApiError> {
    let urls =
        crate::interfaces::join_urls(state.config.bind, state.relay.http.port(), &state.config.public_hosts);
    let url = urls.first().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "the relay listens on loopback only: start it with --bind 0.0.0.0".into(),
        )
    })?;
    let code = qrcode::QrCode::new(url.as_bytes()).map_err(|e| bad(format!("cannot encode {url}: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color>().min_dimensions(256, 256).build();
    Ok(([(header::CONTENT_TYPE, "image/svg+xml"), (header::CACHE_CONTROL, "no-cache")], svg).into_response())
}

fn history(state: &AppState) -> Result<std::sync::Arc<crate::history::History>, ApiError> {
    state.bus.history().cloned().ok_or_else(|| {
        ApiError(StatusCode::NOT_FOUND, "the relay keeps no history: it was started with --history 0".into())
    })
}

/// `GET /api/events.jsonl`.
async fn events(State(state): State<AppState>) -> Result<Response, ApiError> {
    let history = history(&state)?;
    let body = tokio::task::spawn_blocking(move || crate::capture::jsonl(&history))
        .await
        .map_err(|e| ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the events: {e}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/jsonl; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"udp-playground-events.jsonl\""),
        ],
        body,
    )
        .into_response())
}

/// Captures being built at once.
static CAPTURES: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// `GET /api/capture.pcapng`.
async fn capture(State(state): State<AppState>) -> Result<Response, ApiError> {
    let history = history(&state)?;
    // One capture is built at a time: each may hold the whole history's bytes.
    let _one = CAPTURES
        .acquire()
        .await
        .map_err(|_| ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting down".into()))?;
    // Building a big capture is CPU work: off the runtime's threads, so the servers go on.
    let built = tokio::task::spawn_blocking(move || crate::capture::pcapng(&history)).await;
    match built {
        Ok(Ok(bytes)) => Ok((
            [
                (header::CONTENT_TYPE, "application/x-pcapng"),
                (header::CONTENT_DISPOSITION, "attachment; filename=\"udp-playground.pcapng\""),
            ],
            bytes,
        )
            .into_response()),
        Ok(Err(e)) => {
            Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the capture: {e}")))
        }
        Err(e) => Err(ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot write the capture: {e}"))),
    }
}

/// `GET /api/datagrams/{dg}`.
async fn datagram(
    State(state): State<AppState>,
    Path(dg): Path<String>,
) -> Result<Json<crate::capture::Headers>, ApiError> {
    let dg: protocol::Dg = dg.parse().map_err(|_| bad(format!("{dg:?} is not a datagram's number")))?;
    let seen = history(&state)?.datagram(dg).ok_or_else(|| {
        ApiError(StatusCode::NOT_FOUND, format!("datagram {dg} is not in the history (any more)"))
    })?;
    let (_, headers) = crate::capture::packet(&seen)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("datagram {dg} is larger than IP carries")))?;
    Ok(Json(headers))
}

/// `GET /metrics`.
async fn metrics(State(state): State<AppState>) -> Response {
    let text = state.bus.metrics().map(|m| m.encode()).unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text).into_response()
}

/// A refusal, as JSON: `{"error":"…"}`. The page's routes answer with it too.
pub(crate) struct ApiError(pub(crate) StatusCode, pub(crate) String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        #[derive(Serialize)]
        struct Body {
            error: String,
        }
        (self.0, Json(Body { error: self.1 })).into_response()
    }
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, message.into())
}

/// `GET /api/links`.
async fn list(State(state): State<AppState>) -> Json<BTreeMap<ServerName, Links>> {
    Json(state.relay.links().await)
}

/// `PUT /api/links/{server}/{dir}`.
async fn set(
    State(state): State<AppState>,
    slot: Option<Extension<Arc<AddressSlot>>>,
    Path((server, dir)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<LinkSettings>, ApiError> {
    let (server, dir) = target(&server, &dir)?;
    let patch: LinkPatch = json_body(&state, &headers, &body)?;
    allowed(&state, slot.as_deref())?;
    if patch == LinkPatch::default() {
        return Err(bad("name a setting to change: loss, duplicate, reorder, delay_ms, jitter_ms or mtu"));
    }
    change(&state, server, dir, LinkChange::Set(patch)).await.map(Json)
}

#[derive(Serialize)]
struct FaultAimed {
    fault: LinkFault,
    link: LinkSettings,
}

/// `POST /api/links/{server}/{dir}/faults`.
async fn fault(
    State(state): State<AppState>,
    slot: Option<Extension<Arc<AddressSlot>>>,
    Path((server, dir)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<FaultAimed>, ApiError> {
    let (server, dir) = target(&server, &dir)?;
    let fault: LinkFault = json_body(&state, &headers, &body)?;
    allowed(&state, slot.as_deref())?;
    let link = change(&state, server, dir, LinkChange::Fault(fault)).await?;
    Ok(Json(FaultAimed { fault, link }))
}

/// Refuses a change of what everyone meets from another machine than the relay's, unless
/// `--shared-changes anyone`: there is no sandbox for a script to change instead.
fn allowed(state: &AppState, slot: Option<&Arc<AddressSlot>>) -> Result<(), ApiError> {
    if state.config.shared_changes.allow(slot.map(|slot| slot.ip())) {
        return Ok(());
    }
    Err(ApiError(
        StatusCode::FORBIDDEN,
        "only this machine changes the links the whole class meets: a page from elsewhere changes \
         them for its own sockets (start the relay with --shared-changes anyone to let everyone)"
            .into(),
    ))
}

async fn change(
    state: &AppState,
    server: ServerName,
    dir: Dir,
    change: LinkChange,
) -> Result<LinkSettings, ApiError> {
    let answer = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.relay.link(server, dir, change, None, protocol::Scope::All),
    )
    .await;
    match answer {
        Ok(Some(Ok(settings))) => Ok(settings),
        Ok(Some(Err(e))) => Err(bad(e.to_string())),
        Ok(None) => Err(ApiError(StatusCode::NOT_FOUND, format!("{server} has no link"))),
        Err(_) => {
            Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, format!("the {server} server did not answer")))
        }
    }
}

/// The server and direction a path names, or 404.
fn target(server: &str, dir: &str) -> Result<(ServerName, Dir), ApiError> {
    let not_found = |message: String| ApiError(StatusCode::NOT_FOUND, message);
    if server == ServerName::Nobody.as_str() {
        return Err(not_found(format!("{server} has no link: it is not a server")));
    }
    // Only the servers are offered: `nobody` has no link.
    let server = ServerName::ALL
        .into_iter()
        .find(|name| name.as_str() == server)
        .ok_or_else(|| not_found(bridge::command::unknown_server(server, &ServerName::ALL)))?;
    let dir: Dir = dir.parse().map_err(not_found)?;
    Ok((server, dir))
}

/// The body of a request that changes something: JSON, from no foreign page.
fn json_body<T: DeserializeOwned>(state: &AppState, headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if !bridge::origin_allowed(state, headers) {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "refused: this API serves only the relay's own page and scripts".into(),
        ));
    }
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(ApiError(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON, with Content-Type: application/json".into(),
        ));
    }
    read_object(body)
}

/// Reads a body that is one JSON object, or says in plain words what is wrong with it.
fn read_object<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    const LIKE: &str = r#"a body is one JSON object, like {"loss":0.3}"#;
    // First the JSON itself: whole, one value, nothing after it.
    if body.trim_ascii().is_empty() {
        return Err(bad(format!("the body is empty: {LIKE}")));
    }
    let mut json = serde_json::Deserializer::from_slice(body);
    let fields = match serde_json::Value::deserialize(&mut json) {
        Ok(serde_json::Value::Object(fields)) => fields,
        Ok(_) => return Err(bad(format!("the body is not a JSON object: {LIKE}"))),
        Err(e) if e.is_eof() => return Err(bad(format!("the body's JSON is cut off: {LIKE}"))),
        Err(e) => return Err(bad(format!("the body is not valid JSON ({e}): {LIKE}"))),
    };
    if let Err(e) = json.end() {
        let at = format!("line {} column {}", e.line(), e.column());
        return Err(bad(format!("the body goes on after its JSON object, at {at}: {LIKE}")));
    }
    // Then the fields, from the bytes again, so that a field named twice is refused too.
    let read =
        serde_path_to_error::deserialize(&mut serde_json::Deserializer::from_slice(body)).map_err(|e| {
            let (field, message) = (e.path().to_string(), e.inner().to_string());
            match (fields.get(&field), range(&field)) {
                // A number that does not fit (negative, a fraction, too large): say which fit.
                (Some(serde_json::Value::Number(_)), Some(range)) if message.starts_with("invalid ") => {
                    bad(format!("{field} is {range}"))
                }
                // "unknown field `los`" and "duplicate field `loss`" name it already.
                (Some(_), _) if message.starts_with("invalid ") => bad(format!("{field}: {message}")),
                _ => bad(message),
            }
        })?;
    // A known field's `null` would read as "not named", and change nothing it names.
    if let Some((field, _)) = fields.iter().find(|(_, value)| value.is_null()) {
        return Err(bad(format!("{field} cannot be null: give it a value, or leave it out")));
    }
    Ok(read)
}

/// The values a body's numeric field takes, for a number that is none of them.
fn range(field: &str) -> Option<String> {
    let hold = crate::udp::link::MAX_HOLD.as_millis();
    Some(match field {
        "loss" | "duplicate" | "reorder" => "a probability from 0 to 1".into(),
        "delay_ms" | "jitter_ms" | "hold_next_ms" => {
            format!("a whole number of milliseconds from 0 to {hold}")
        }
        "mtu" => {
            format!("a whole number of bytes from {} to 65535, or 0 for none", crate::udp::link::MIN_MTU)
        }
        "drop_next" | "duplicate_next" => format!("a count of datagrams from 0 to {}", u32::MAX),
        _ => return None,
    })
}
