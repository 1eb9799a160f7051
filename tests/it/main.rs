//! Integration and end-to-end tests, one binary. Every test starts its own relay on
//! 127.0.0.1 with OS-chosen ports and talks to it for real; every await has a timeout.
//!
//! - `support`: starting a relay in-process or as the real binary, timeouts, UDP helpers.
//! - `udp`: the four servers' wire contract, as the tutorials' clients see it.
//! - `http`: the page, `/healthz` and `/api/servers`.
//! - `cli`: the `relay` binary: banner, bad flags, ports in use, shutdown on SIGTERM.
//! - `classroom`: what a class on one relay met: sleeping laptops, broken frames, duplicate
//!   headers, chat messages too long to wrap, settings under load, lenient retries.
//! - `bridge`: the WebSocket bridge as a script sees it: every op, event, error and limit.
//! - `identity`: every datagram's `dg` from send to arrival, and what the socket lessons need:
//!   receive buffers, `nobody`, UDP's size limit, frames too large, crowds.
//! - `wire`: the impaired link in front of every server: each setting, fault and direction,
//!   the seed, and the HTTP API.
//! - `toolbox`: the capture read by tshark, the metrics checked by promtool, the events as
//!   JSON lines, a datagram's headers, a projector's backlog.
//! - `lessons`: the twelve lessons, recorded from a real relay, each showing what it must.
//! - `ws`: a WebSocket client for the bridge tests.
//! - `ui_lessons`: each of the twelve lessons run in Chromium from `?lesson=SLUG`, its button,
//!   and in Chinese, each drawn whole once done; the page on a small laptop, a 720p
//!   projector and a phone.
//! - `browser`: headless Chromium loads the page and sees the wasm run.

mod bridge;
mod browser;
mod classroom;
mod cli;
mod http;
mod identity;
mod lessons;
mod support;
mod toolbox;
mod tutorial;
mod udp;
mod ui;
mod ui_lessons;
mod ui_replay;
mod ui_truth;
mod ui_wire;
mod wire;
mod ws;
