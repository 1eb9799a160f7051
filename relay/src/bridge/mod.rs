//! The bridge: browsers drive real UDP sockets over a WebSocket and watch every event.
//!
//! A browser cannot open a UDP socket, so the relay opens them on its behalf. `GET /ws`
//! upgrades to a WebSocket session ([`session`]) that speaks the JSON protocol of the
//! `protocol` crate, documented in `docs/protocol.md`.
//!
//! The relay runs on students' laptops while they browse the web, so the bridge is guarded:
//! - [`guard_host`] refuses any request whose `Host` is not the relay's own (DNS rebinding);
//! - [`ws`] refuses an upgrade whose `Origin` is another site's page (cross-site WebSocket
//!   hijacking); scripts that send no `Origin` are welcome;
//! - a session reaches only the relay's servers and `--allow-target` addresses, within the
//!   limits of [`crate::config::SessionLimits`].
//!
//! - [`session`]: one WebSocket session: commands in, filtered events out; what each command
//!   does is in its `commands` module.
//! - [`command`]: reading a command frame, and what makes it unreadable.
//! - [`drivers`]: the session's sockets, run inside its own task.
//! - [`target`]: where a session's socket may send, and where it binds.
//! - [`outbox`]: the session's outgoing frames, batched.
//! - [`client`]: the sans-I/O handler behind each socket a session opens.
//! - [`budget`]: the per-session budget of datagrams and bytes a second.

pub mod budget;
pub mod client;
pub mod command;
pub mod drivers;
pub mod outbox;
pub mod session;
pub mod target;

use std::net::IpAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State, WebSocketUpgrade};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::EventBus;
use crate::{Config, RelayHandle};

/// What every HTTP handler and WebSocket session can see.
#[derive(Clone)]
pub struct AppState {
    pub relay: RelayHandle,
    pub config: Arc<Config>,
    pub bus: EventBus,
    /// One permit per WebSocket session, `config.limits.sessions` in all.
    pub sessions: Arc<Semaphore>,
    /// Cancelled on shutdown, after the servers have stopped.
    pub stop_sessions: CancellationToken,
    /// Every session task, so shutdown can wait for them.
    pub tasks: TaskTracker,
}

/// The bridge's routes: `GET /ws`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/ws", get(ws))
}

/// Whether `authority` (a `Host` header, or the host part of an `Origin`) names this relay:
/// its bind address, a loopback address when bound to loopback, any of this machine's own
/// addresses when bound to every interface (a classroom: students need no restart), `localhost`,
/// or a `--public-host` name, on the relay's HTTP port.
pub fn is_own_authority(state: &AppState, authority: &str) -> bool {
    let Ok(authority) = authority.parse::<Authority>() else { return false };
    if authority.as_str().contains('@') {
        return false;
    }
    authority.port_u16().unwrap_or(80) == state.relay.http.port() && is_own_host(state, authority.host())
}

/// Whether `host`, a name or an IP address without a port, is one of the relay's own.
fn is_own_host(state: &AppState, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost")
        || state.config.public_hosts.iter().any(|h| h.eq_ignore_ascii_case(host))
    {
        return true;
    }
    let Ok(ip) = host.parse::<IpAddr>() else { return false };
    let bind = state.config.bind;
    ip == bind
        || (ip.is_loopback() && bind.is_loopback())
        || (bind.is_unspecified() && crate::interfaces::is_local(ip))
}

/// Why `host`, a `Host` that is not the relay's own, is refused, and what to change.
fn host_refusal(state: &AppState, host: &str) -> String {
    let port = state.relay.http.port();
    match host.parse::<Authority>() {
        Ok(authority) if !authority.as_str().contains('@') && is_own_host(state, authority.host()) => {
            let name = authority.host();
            match authority.port_u16() {
                None => format!(
                    "refused: Host {host:?} has no port: the relay listens on port {port} ({name}:{port})\n"
                ),
                Some(other) => format!(
                    "refused: Host {host:?} names port {other}: the relay listens on port {port} ({name}:{port})\n"
                ),
            }
        }
        _ => format!(
            "refused: Host {host:?} is not this relay's address; start the relay with --public-host NAME \
             to allow a name (this machine's own addresses are accepted when it is bound to 0.0.0.0)\n"
        ),
    }
}

/// Middleware: refuses requests whose `Host` is not the relay's own, so a web page that
/// rebinds its own domain name to 127.0.0.1 still cannot read the relay's answers.
pub async fn guard_host(State(state): State<AppState>, request: Request, next: Next) -> Response {
    // RFC 9112 asks for a 400 on more than one Host: which one counts would be anyone's guess.
    if request.headers().get_all(header::HOST).iter().count() > 1 {
        return (StatusCode::BAD_REQUEST, "refused: the request has more than one Host header\n")
            .into_response();
    }
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok());
    match host {
        Some(host) if is_own_authority(&state, host) => next.run(request).await,
        Some(host) => (StatusCode::FORBIDDEN, host_refusal(&state, host)).into_response(),
        None => (StatusCode::BAD_REQUEST, "refused: the request has no Host header\n").into_response(),
    }
}

/// Whether the upgrade comes from the relay's own page (or from a script, which sends no
/// `Origin`). Browsers always send `Origin` on a WebSocket upgrade and pages cannot forge it.
pub fn origin_allowed(state: &AppState, headers: &HeaderMap) -> bool {
    let mut origins = headers.get_all(header::ORIGIN).iter();
    let Some(origin) = origins.next() else { return true };
    // Two Origins are never a browser's: refuse rather than check only the first.
    if origins.next().is_some() {
        return false;
    }
    let Some(authority) = origin.to_str().ok().and_then(|o| o.strip_prefix("http://")) else {
        return false;
    };
    is_own_authority(state, authority)
}

/// Bytes read from a WebSocket at a time. The library's default, 128 KiB, is zeroed before
/// every read: for the small command frames a session receives, that cost more than the rest
/// of a round trip through the bridge (a longer frame is still read whole, in several reads).
const READ_BUFFER: usize = 4096;

/// `GET /ws`: upgrades to a session.
pub async fn ws(
    State(state): State<AppState>,
    slot: Option<axum::Extension<Arc<crate::serve::AddressSlot>>>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&state, &headers) {
        let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()).unwrap_or("?");
        tracing::warn!(origin, "refused a WebSocket from another site's page");
        return (StatusCode::FORBIDDEN, "refused: this WebSocket only serves the relay's own page\n")
            .into_response();
    }
    // Frames up to `MAX_FRAME` are read, so that one larger than any command gets an answer;
    // past that the session is closed with 1009 and the reason.
    let max_frame = command::MAX_FRAME;
    upgrade.read_buffer_size(READ_BUFFER).max_message_size(max_frame).max_frame_size(max_frame).on_upgrade(
        move |socket| {
            let tasks = state.tasks.clone();
            tasks.track_future(async move {
                // The session holds its connection's place in its address's count.
                let ip = slot.as_ref().map(|slot| slot.ip());
                let _slot = slot;
                session::run(socket, state, ip).await;
            })
        },
    )
}
