//! `busbench`: what one `EventBus::emit` costs, with nobody watching and with a watcher.
//!
//! The relay's servers emit an event for every datagram. The promise (issue 2, STYLE.md) is that
//! with no subscriber this costs next to nothing, so an unwatched relay is as fast as one without
//! events. This binary measures, in nanoseconds per call:
//!
//! | case | what one iteration does |
//! |---|---|
//! | `baseline` | nothing: the loop itself, to subtract from the rest |
//! | `emit_unobserved` | `bus.emit(now, small_event)`, no subscriber |
//! | `driver_unobserved` | the driver's pattern for a received datagram: `if bus.is_observed() { build + emit }` |
//! | `build_and_emit_unobserved` | builds the `ServerRecv` event (payload preview, a `String`) and emits it, no subscriber: why the driver checks first |
//! | `emit_one_subscriber` | `bus.emit` with one subscriber that drains every 1,024 events (its receiving included) |
//! | `atomic_load` | one relaxed load of a shared counter: the floor for any "is anybody there?" check |
//! | `emit_unobserved_2_threads` | two threads emitting unobserved into clones of one bus at once, as two servers on two runtime workers do |
//! | `atomic_load_2_threads` | the same two threads doing only the relaxed load |
//! | `round_trip_metrics_only` | what the relay's echo does per round trip with `--history 0`: builds and emits its two events (`server_recv`, `server_send`) into a bus that counts them for `/metrics` |
//! | `round_trip_recording` | the same, with the relay's default history recording both datagrams and both events, in the driver's order (its rings full, as in a running relay) |
//! | `event_json_derived` | a page socket's `client_recv` of that answer written as its WebSocket message by serde's derived code, into a reused buffer |
//! | `event_json_written` | the same message written by `relay::json::write_event`, field by field (what the relay does) |
//! | `command_derived` | a page's `send` command frame read by serde's derived reader of the command enum (internally tagged) |
//! | `command_parse` | the same frame read by `relay::bridge::command::parse` (what the relay does: a plain struct for `send`) |
//! | `round_trip_shared_rings` | the same with the history as it was before (commit 725e102): rings of shared events (`Arc`) and shared bytes under a lock, the oldest freed as each new one comes |
//!
//! Rounds are interleaved (every case once per round, starting with a different case each
//! round), so a burst of noise on a shared machine hits all cases alike. The median over rounds
//! is reported, with the minimum. A plain binary rather than criterion keeps the compile short.
//!
//! Output: a table for people on stderr, and one JSON line on stdout.

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use protocol::{EventKind, Payload, ServerName};
use relay::bus::{EventBus, Published};
use relay::history::{History, HistoryLimits};
use relay::metrics::Metrics;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Mutex;

/// Cost of one EventBus::emit, with and without a subscriber, in interleaved rounds.
#[derive(Parser, Debug)]
#[command(name = "busbench")]
struct Cli {
    /// Interleaved rounds; each runs every case once.
    #[arg(long, default_value_t = 15)]
    rounds: usize,

    /// Iterations per case per round for the cheap cases (the expensive ones do a tenth).
    #[arg(long, default_value_t = 2_000_000)]
    iters: u64,
}

/// One case: a name and a function that runs `iters` iterations and returns ns per iteration.
struct Case {
    name: &'static str,
    run: Box<dyn Fn(u64) -> f64>,
    /// Fraction of `--iters` this case runs: building events allocates, so fewer are enough.
    scale: u64,
}

#[derive(Debug, Serialize)]
struct CaseResult {
    name: &'static str,
    median_ns: f64,
    min_ns: f64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::ensure!(cli.rounds >= 1 && cli.iters >= 10, "need at least 1 round and 10 iterations");
    let cases = cases();

    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(cli.rounds); cases.len()];
    for round in 0..cli.rounds {
        for k in 0..cases.len() {
            let index = (round + k) % cases.len();
            let case = &cases[index];
            samples[index].push((case.run)(cli.iters / case.scale));
        }
    }

    let results: Vec<CaseResult> = cases
        .iter()
        .zip(&mut samples)
        .map(|(case, ns)| {
            ns.sort_by(f64::total_cmp);
            CaseResult { name: case.name, median_ns: ns[ns.len() / 2], min_ns: ns[0] }
        })
        .collect();

    eprintln!("| case | median ns/op | min ns/op |");
    eprintln!("|---|---:|---:|");
    for r in &results {
        eprintln!("| {} | {:.2} | {:.2} |", r.name, r.median_ns, r.min_ns);
    }
    println!("{}", serde_json::to_string(&serde_json::json!({ "rounds": cli.rounds, "cases": results }))?);
    Ok(())
}

/// A small event that needs no allocation to build, so `emit_unobserved` measures emit alone.
fn small_event() -> EventKind {
    EventKind::ServerRefused { server: ServerName::Echo, peer: None }
}

/// The event the driver emits for every datagram it reads, preview included.
fn recv_event(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> EventKind {
    EventKind::ServerRecv {
        dg: 1,
        server: ServerName::Echo,
        from,
        to,
        len: payload.len(),
        payload: Payload::preview(payload),
    }
}

/// Reads a page's `send` command frame with `read`.
fn command_case(name: &'static str, read: fn(&str) -> bool) -> Case {
    const FRAME: &str =
        r#"{"op":"send","socket":"echo-1","text":"0000000000000042........","request_id":true}"#;
    let run = move |iters| time_per_iter(iters, |_| assert!(read(black_box(FRAME))));
    Case { name, scale: 10, run: Box::new(run) }
}

/// Writes `event` as a WebSocket message with `write`, into a buffer reused from one
/// iteration to the next.
fn json_case(
    name: &'static str,
    event: protocol::Event,
    write: fn(&mut Vec<u8>, &protocol::Event) -> serde_json::Result<()>,
) -> Case {
    let run = move |iters| {
        let mut out = Vec::with_capacity(512);
        time_per_iter(iters, |_| {
            out.clear();
            let _ = write(&mut out, black_box(&event));
            black_box(&out);
        })
    };
    Case { name, scale: 10, run: Box::new(run) }
}

/// A page socket's receipt of the echo's answer, as the bridge writes it out to the page.
fn client_recv_event(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> protocol::Event {
    let kind = EventKind::ClientRecv {
        session: "k3f9a2".into(),
        socket: "echo-1".into(),
        member: None,
        dg: 41_002,
        from,
        to,
        len: payload.len(),
        payload: Payload::preview(payload),
        attempt: None,
        req: None,
        rtt_us: None,
        kept: payload.len(),
    };
    protocol::Event { seq: 123_456, t_us: 98_765_432, kind }
}

/// The answer the echo sends back for [`recv_event`].
fn send_event(from: SocketAddr, to: SocketAddr, payload: &[u8]) -> EventKind {
    EventKind::ServerSend {
        dg: 2,
        server: ServerName::Echo,
        reply_to: Some(1),
        from,
        to,
        len: payload.len(),
        payload: Payload::preview(payload),
        delay_ms: None,
    }
}

/// The history as it was before it was made compact: every event and every datagram's bytes
/// shared (`Arc`), in rings under a lock, the oldest dropped as each new one comes.
#[derive(Default)]
struct SharedRings {
    events: Mutex<VecDeque<Arc<Published>>>,
    datagrams: Mutex<VecDeque<relay::history::Seen>>,
    seq: std::sync::atomic::AtomicU64,
}

impl SharedRings {
    const KEEP: usize = 5_000;

    fn emit(&self, metrics: &Metrics, kind: EventKind) {
        metrics.count(&kind);
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let event = Arc::new(Published::new(protocol::Event { seq, t_us: seq, kind }));
        let mut events = self.events.lock().expect("lock");
        if events.len() == Self::KEEP {
            events.pop_front();
        }
        events.push_back(event);
    }

    fn record(&self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let bytes: Arc<[u8]> = bytes.into();
        let mut datagrams = self.datagrams.lock().expect("lock");
        if datagrams.len() == Self::KEEP {
            datagrams.pop_front();
        }
        datagrams.push_back(relay::history::Seen { dg: 1, wall_us: 1, from, to, bytes });
    }
}

/// Nanoseconds per iteration of `body`, run `iters` times.
fn time_per_iter(iters: u64, mut body: impl FnMut(u64)) -> f64 {
    let start = Instant::now();
    for i in 0..iters {
        body(i);
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// Runs `body` on two threads at once (released together by a barrier) and returns the mean
/// nanoseconds per iteration per thread.
fn two_threads(iters: u64, body: impl Fn(u64) + Sync) -> f64 {
    let barrier = Barrier::new(2);
    let per_thread: Vec<Duration> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    barrier.wait();
                    let start = Instant::now();
                    for i in 0..iters {
                        body(i);
                    }
                    start.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a benchmark thread panicked")).collect()
    });
    let total: Duration = per_thread.iter().sum();
    total.as_nanos() as f64 / 2.0 / iters as f64
}

fn cases() -> Vec<Case> {
    let from: SocketAddr = ([127, 0, 0, 1], 40_000).into();
    let to: SocketAddr = ([127, 0, 0, 1], 10_004).into();
    // A typical 64-byte request of `loadgen`.
    let payload: Arc<[u8]> =
        Arc::from(&b"0000000000000042................................................"[..]);

    let unobserved = EventBus::new(Instant::now());
    let counting = EventBus::recording(Instant::now(), None, Arc::new(Metrics::new()));
    let history = Arc::new(History::new(HistoryLimits::default(), Instant::now()));
    let recording = EventBus::recording(Instant::now(), Some(history), Arc::new(Metrics::new()));
    let shared = Arc::new(SharedRings::default());
    let metrics = Arc::new(Metrics::new());
    let observed = EventBus::new(Instant::now());
    let counter = Arc::new(AtomicUsize::new(0));

    vec![
        Case {
            name: "baseline",
            scale: 1,
            run: Box::new(|iters| {
                time_per_iter(iters, |i| {
                    black_box(i);
                })
            }),
        },
        Case {
            name: "emit_unobserved",
            scale: 1,
            run: Box::new({
                let bus = unobserved.clone();
                move |iters| {
                    let now = Instant::now();
                    time_per_iter(iters, |_| bus.emit(now, black_box(small_event())))
                }
            }),
        },
        Case {
            name: "driver_unobserved",
            scale: 1,
            run: Box::new({
                let (bus, payload) = (unobserved.clone(), Arc::clone(&payload));
                move |iters| {
                    let now = Instant::now();
                    time_per_iter(iters, |_| {
                        if bus.is_observed() {
                            bus.emit(now, recv_event(from, to, black_box(&payload)));
                        }
                    })
                }
            }),
        },
        Case {
            name: "build_and_emit_unobserved",
            scale: 10,
            run: Box::new({
                let (bus, payload) = (unobserved.clone(), Arc::clone(&payload));
                move |iters| {
                    let now = Instant::now();
                    time_per_iter(iters, |_| bus.emit(now, recv_event(from, to, black_box(&payload))))
                }
            }),
        },
        Case {
            name: "emit_one_subscriber",
            scale: 10,
            run: Box::new({
                let bus = observed.clone();
                move |iters| {
                    let mut rx = bus.subscribe();
                    let now = Instant::now();
                    let ns = time_per_iter(iters, |i| {
                        bus.emit(now, black_box(small_event()));
                        // Drain regularly, as the WebSocket bridge would, so the ring never
                        // overflows and this measures the steady state.
                        if i % 1024 == 1023 {
                            while let Ok(event) = rx.try_recv() {
                                black_box(event);
                            }
                        }
                    });
                    drop(rx);
                    ns
                }
            }),
        },
        Case {
            name: "atomic_load",
            scale: 1,
            run: Box::new({
                let counter = Arc::clone(&counter);
                move |iters| {
                    time_per_iter(iters, |_| {
                        black_box(counter.load(Ordering::Relaxed) > 0);
                    })
                }
            }),
        },
        Case {
            name: "emit_unobserved_2_threads",
            scale: 1,
            run: Box::new({
                let bus = unobserved.clone();
                move |iters| {
                    let now = Instant::now();
                    two_threads(iters, |_| bus.emit(now, black_box(small_event())))
                }
            }),
        },
        Case {
            name: "round_trip_metrics_only",
            scale: 10,
            run: Box::new({
                let (bus, payload) = (counting.clone(), Arc::clone(&payload));
                move |iters| {
                    let now = Instant::now();
                    time_per_iter(iters, |_| {
                        bus.emit(now, recv_event(from, to, black_box(&payload)));
                        bus.emit(now, send_event(to, from, black_box(&payload)));
                    })
                }
            }),
        },
        Case {
            name: "round_trip_recording",
            scale: 10,
            run: Box::new({
                let (bus, payload) = (recording.clone(), Arc::clone(&payload));
                move |iters| {
                    let now = Instant::now();
                    time_per_iter(iters, |_| {
                        // In the driver's order: each datagram recorded, then its event.
                        bus.record(1, now, from, to, black_box(&payload));
                        bus.emit(now, recv_event(from, to, black_box(&payload)));
                        bus.record(2, now, to, from, black_box(&payload));
                        bus.emit(now, send_event(to, from, black_box(&payload)));
                    })
                }
            }),
        },
        Case {
            name: "round_trip_shared_rings",
            scale: 10,
            run: Box::new({
                let (shared, metrics, payload) = (shared.clone(), metrics.clone(), Arc::clone(&payload));
                move |iters| {
                    time_per_iter(iters, |_| {
                        shared.record(from, to, black_box(&payload));
                        shared.emit(&metrics, recv_event(from, to, black_box(&payload)));
                        shared.emit(&metrics, send_event(to, from, black_box(&payload)));
                        shared.record(to, from, black_box(&payload));
                    })
                }
            }),
        },
        command_case("command_derived", |frame| serde_json::from_str::<protocol::Command>(frame).is_ok()),
        command_case("command_parse", |frame| relay::bridge::command::parse(frame).is_ok()),
        json_case("event_json_derived", client_recv_event(to, from, &payload), relay::json::write_derived),
        json_case("event_json_written", client_recv_event(to, from, &payload), relay::json::write_event),
        Case {
            name: "atomic_load_2_threads",
            scale: 1,
            run: Box::new({
                let counter = Arc::clone(&counter);
                move |iters| {
                    two_threads(iters, |_| {
                        black_box(counter.load(Ordering::Relaxed) > 0);
                    })
                }
            }),
        },
    ]
}
