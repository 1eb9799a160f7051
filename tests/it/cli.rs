//! The real `relay` binary (issue 2, "Command line"): the banner, bad flags, ports in use,
//! `--help`, and a clean exit with `end` to chat clients on SIGTERM.
//!
//! Where the binary comes from: Cargo builds a package's binaries for that package's own
//! integration tests only (that is what `CARGO_BIN_EXE_relay` needs), and this crate cannot
//! depend on a binary on stable Cargo. So these tests look for `relay` next to the test binary,
//! in the same profile directory (`target/debug/relay` for `target/debug/deps/it-*`), and the
//! README's test command builds it first (its `cargo run -- --version` step). A missing binary
//! fails with a message saying so.
//!
//! Every child is killed when its guard drops, so a failing assertion never leaves a relay
//! running, and every wait on a child has a timeout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};

use protocol::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::task::JoinHandle;

use crate::support::{http_get, recv, udp_client, within};

/// Every port chosen by the OS, so tests never collide with each other or a running relay.
const FREE_PORTS: [&str; 10] =
    ["--http-port", "0", "--echo-port", "0", "--upper-port", "0", "--chat-port", "0", "--lossy-port", "0"];

/// `target/<profile>/relay`, next to the directory holding this test binary.
fn relay_binary() -> PathBuf {
    let test_binary = std::env::current_exe().expect("the test binary knows its own path");
    let profile_dir = test_binary
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary lives in target/<profile>/deps");
    let relay = profile_dir.join(format!("relay{}", std::env::consts::EXE_SUFFIX));
    assert!(
        relay.is_file(),
        "{} does not exist: run `cargo build -p relay` before `cargo test` (Cargo builds the relay \
         binary only for the relay package's own tests)",
        relay.display()
    );
    relay
}

/// A `relay` child process, killed when this guard drops.
struct RelayProcess {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
    /// Reads stderr to the end in the background, so a chatty child never blocks on a full pipe.
    stderr: Option<JoinHandle<String>>,
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        // Harmless if it already exited; `kill_on_drop` is the second line of defence.
        let _ = self.child.start_kill();
    }
}

impl RelayProcess {
    fn spawn(args: &[&str]) -> Self {
        let mut child = Command::new(relay_binary())
            .args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the relay binary starts");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            // A read error only shortens what the test gets to see.
            let _ = stderr_pipe.read_to_string(&mut text).await;
            text
        });
        Self { child, stdout, stderr: Some(stderr) }
    }

    /// Reads the startup banner up to the line with the URL.
    async fn banner(&mut self) -> Banner {
        let mut banner = Banner { lines: Vec::new(), servers: Vec::new(), http: None };
        // The banner is a handful of lines; 50 is a bound, not an expectation.
        for _ in 0..50 {
            let line = within("reading the banner", self.stdout.next_line())
                .await
                .expect("read stdout")
                .unwrap_or_else(|| {
                    panic!("stdout closed before the URL; banner so far: {:#?}", banner.lines)
                });
            for word in line.split_whitespace() {
                if let Some(addr) = word.strip_prefix("udp://") {
                    let name = line.split_whitespace().next().expect("a server name starts the line");
                    let name: ServerName = name.parse().expect("a known server name");
                    banner.servers.push((name, addr.parse().expect("udp:// is followed by an address")));
                }
                if let Some(addr) = word.strip_prefix("http://") {
                    banner.http = Some(addr.trim_end_matches('/').parse().expect("http:// then an address"));
                }
            }
            banner.lines.push(line);
            if banner.http.is_some() {
                return banner;
            }
        }
        panic!("no URL in the first 50 lines: {:#?}", banner.lines);
    }

    /// Reads on past the banner's URL, up to the line containing `needle`, and returns every
    /// line read.
    async fn lines_until(&mut self, needle: &str) -> Vec<String> {
        let mut lines = Vec::new();
        // What follows the URL is a handful of lines; 50 is a bound, not an expectation.
        for _ in 0..50 {
            let line = within("reading the banner", self.stdout.next_line())
                .await
                .expect("read stdout")
                .unwrap_or_else(|| panic!("stdout closed before {needle:?}; read so far: {lines:#?}"));
            let found = line.contains(needle);
            lines.push(line);
            if found {
                return lines;
            }
        }
        panic!("no {needle:?} in the next 50 lines: {lines:#?}");
    }

    /// Waits for the child to exit and returns its status and everything it wrote to stderr.
    async fn exit(&mut self) -> (ExitStatus, String) {
        let status = within("the relay to exit", self.child.wait()).await.expect("wait for the relay");
        let stderr = match self.stderr.take() {
            Some(reader) => within("reading stderr", reader).await.expect("stderr reader"),
            None => String::new(),
        };
        (status, stderr)
    }

    async fn terminate(&self) {
        let pid = self.child.id().expect("the relay is still running").to_string();
        let status = within("running kill -TERM", Command::new("kill").args(["-TERM", &pid]).status())
            .await
            .expect("`kill` is available");
        assert!(status.success(), "kill -TERM {pid} failed");
    }
}

#[derive(Debug)]
struct Banner {
    lines: Vec<String>,
    servers: Vec<(ServerName, SocketAddr)>,
    http: Option<SocketAddr>,
}

impl Banner {
    fn addr(&self, server: ServerName) -> SocketAddr {
        self.servers
            .iter()
            .find(|(name, _)| *name == server)
            .unwrap_or_else(|| panic!("no {server} line in the banner: {:#?}", self.lines))
            .1
    }
}

/// Runs the relay with `args` and returns its exit status and stderr, for runs that must fail
/// before serving anything.
async fn run_to_exit(args: &[&str]) -> (ExitStatus, String) {
    let mut relay = RelayProcess::spawn(args);
    let (status, stderr) = relay.exit().await;
    assert!(!stderr.contains("panicked"), "relay {args:?} panicked:\n{stderr}");
    (status, stderr)
}

#[tokio::test]
async fn banner_prints_the_real_addresses_and_the_servers_answer_there() {
    let mut args = FREE_PORTS.to_vec();
    args.extend(["--seed", "7"]);
    let mut relay = RelayProcess::spawn(&args);
    let banner = relay.banner().await;

    let mut ports: Vec<u16> = ServerName::ALL.iter().map(|&s| banner.addr(s).port()).collect();
    assert!(ports.iter().all(|&p| p != 0), "port 0 printed instead of the real one: {:#?}", banner.lines);
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 4, "each server has its own port: {:#?}", banner.lines);
    let http = banner.http.expect("banner() returns only once it saw the URL");
    assert_ne!(http.port(), 0);

    let client = udp_client().await;
    let echo = banner.addr(ServerName::Echo);
    within("sending to echo", client.send_to(b"hello relay", echo)).await.expect("send");
    assert_eq!(recv(&client).await, (b"hello relay".to_vec(), echo));

    let upper = banner.addr(ServerName::Upper);
    within("sending to upper", client.send_to(b"shout", upper)).await.expect("send");
    assert_eq!(recv(&client).await, (b"SHOUT".to_vec(), upper));

    assert_eq!(http_get(http, "/healthz").await.status, 200);
}

#[tokio::test]
async fn on_more_threads_the_relay_serves_the_same() {
    let mut args = FREE_PORTS.to_vec();
    args.extend(["--threads", "3"]);
    let mut relay = RelayProcess::spawn(&args);
    let banner = relay.banner().await;
    let client = udp_client().await;
    let upper = banner.addr(ServerName::Upper);
    within("sending to upper", client.send_to(b"three", upper)).await.expect("send");
    assert_eq!(recv(&client).await, (b"THREE".to_vec(), upper));
    let http = banner.http.expect("banner() returns only once it saw the URL");
    assert_eq!(http_get(http, "/healthz").await.status, 200);
    relay.terminate().await;
    let (status, stderr) = relay.exit().await;
    assert_eq!(status.code(), Some(0), "exit after SIGTERM; stderr:\n{stderr}");
}

#[cfg(unix)]
#[tokio::test]
async fn sigterm_sends_end_to_chat_clients_and_exits_zero() {
    let mut relay = RelayProcess::spawn(&FREE_PORTS);
    let chat = relay.banner().await.addr(ServerName::Chat);
    let (a, b) = (udp_client().await, udp_client().await);
    within("registering a", a.send_to(b"reg", chat)).await.expect("send");
    // An answered message proves the server has seen both clients before the signal.
    within("b says hi", b.send_to(b"hi", chat)).await.expect("send");
    let b_addr = b.local_addr().expect("bound");
    let hello = format!("ack: {} {}\nhi\n", b_addr.ip(), b_addr.port()).into_bytes();
    assert_eq!(recv(&a).await.0, hello);
    assert_eq!(recv(&b).await.0, hello);

    relay.terminate().await;
    assert_eq!(recv(&a).await, (b"end".to_vec(), chat));
    assert_eq!(recv(&b).await, (b"end".to_vec(), chat));
    let (status, stderr) = relay.exit().await;
    assert_eq!(status.code(), Some(0), "exit after SIGTERM; stderr:\n{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[tokio::test]
async fn sigterm_right_after_the_banner_still_stops_the_relay_cleanly() {
    // A script may stop the relay the moment it has printed its addresses. The signal must find
    // the relay's handler already in place, not the default action that kills it outright.
    for _ in 0..3 {
        let mut relay = RelayProcess::spawn(&FREE_PORTS);
        relay.banner().await;
        relay.terminate().await;
        let (status, stderr) = relay.exit().await;
        assert_eq!(status.code(), Some(0), "a clean exit, not death by signal ({status}); stderr:\n{stderr}");
    }
}

#[tokio::test]
async fn a_port_in_use_names_the_flag_that_changes_it() {
    for flag in ["--echo-port", "--upper-port", "--chat-port", "--lossy-port", "--http-port"] {
        // Hold the port for the whole run: TCP for the page, UDP for a server.
        let tcp =
            (flag == "--http-port").then(|| std::net::TcpListener::bind("127.0.0.1:0").expect("bind TCP"));
        let udp = tcp.is_none().then(|| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP"));
        let taken = match (&tcp, &udp) {
            (Some(listener), _) => listener.local_addr(),
            (None, Some(socket)) => socket.local_addr(),
            (None, None) => unreachable!("one of the two is bound"),
        };
        let port = taken.expect("a bound socket has an address").port();
        let port = port.to_string();
        let mut args = FREE_PORTS.to_vec();
        let at = args.iter().position(|a| *a == flag).expect("every port flag is in FREE_PORTS");
        args[at + 1] = &port;

        let (status, stderr) = run_to_exit(&args).await;
        assert!(!status.success(), "{flag} {port} is taken, yet the relay exited with {status}");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line of error for {flag}, got:\n{stderr}");
        assert!(lines[0].contains(flag), "the error should name {flag}:\n{stderr}");
        assert!(lines[0].contains(&port), "the error should name port {port}:\n{stderr}");
        let advice = format!("choose another port with {flag}");
        assert!(lines[0].contains(&advice), "a port in use is the port's fault: {advice:?}:\n{stderr}");
    }
}

/// Runs the relay with `FREE_PORTS` and `extra`, expects it to fail with one line of error,
/// and returns that line.
async fn one_line_error(extra: &[&str]) -> String {
    let mut args = FREE_PORTS.to_vec();
    for pair in extra.chunks(2) {
        match args.iter().position(|a| *a == pair[0]) {
            Some(at) => args[at + 1] = pair[1],
            None => args.extend(pair),
        }
    }
    let (status, stderr) = run_to_exit(&args).await;
    assert!(!status.success(), "relay {extra:?} was accepted (exit {status})");
    let first = stderr.lines().next().unwrap_or_default();
    assert!(first.starts_with("error:"), "{extra:?}: the first line should be the error:\n{stderr}");
    first.to_owned()
}

#[tokio::test]
async fn an_address_this_machine_lacks_is_named_as_the_problem_not_the_port() {
    let own = relay::interfaces::addresses();
    let ip = ["10.99.99.99", "198.51.100.99", "203.0.113.99"]
        .into_iter()
        .find(|ip| own.iter().all(|(_, own)| own.to_string() != *ip))
        .expect("this machine has not every test address");
    let mut args = FREE_PORTS.to_vec();
    args.extend(["--bind", ip]);
    let (status, stderr) = run_to_exit(&args).await;
    assert!(!status.success(), "--bind {ip} was accepted (exit {status})");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line of error, got:\n{stderr}");
    assert!(lines[0].contains(&format!("{ip} is not one of this machine's addresses")), "{stderr}");
    assert!(lines[0].contains("--bind 127.0.0.1") && lines[0].contains("--bind 0.0.0.0"), "{stderr}");
    assert!(!lines[0].contains("choose another port"), "the port is not the problem:\n{stderr}");
}

#[tokio::test]
async fn two_servers_given_one_port_name_both_flags() {
    // Nothing is bound before the check, so the port need not be free.
    for (first, second) in
        [("--echo-port", "--upper-port"), ("--chat-port", "--lossy-port"), ("--echo-port", "--nobody-port")]
    {
        let error = one_line_error(&[first, "18500", second, "18500"]).await;
        assert!(error.contains(&format!("{first} and {second} are both 18500")), "{error}");
        assert!(error.contains("each needs a UDP port of its own"), "{error}");
    }
    // The user typed only one of the two: say where the other 10004 came from.
    let mut args: Vec<&str> = FREE_PORTS.to_vec();
    let at = args.iter().position(|a| *a == "--echo-port").expect("--echo-port is in FREE_PORTS");
    args.drain(at..at + 2);
    let at = args.iter().position(|a| *a == "--upper-port").expect("--upper-port is in FREE_PORTS");
    args[at + 1] = "10004";
    let (status, stderr) = run_to_exit(&args).await;
    assert!(!status.success(), "--upper-port 10004 on echo's default port was accepted");
    assert!(stderr.contains("(10004 is --echo-port's default)"), "{stderr}");
}

#[tokio::test]
async fn bind_takes_localhost_and_explains_other_names() {
    let mut args = FREE_PORTS.to_vec();
    args.extend(["--bind", "localhost"]);
    let mut relay = RelayProcess::spawn(&args);
    let banner = relay.banner().await;
    let echo = banner.addr(ServerName::Echo);
    assert_eq!(echo.ip().to_string(), "127.0.0.1", "localhost is 127.0.0.1: {:#?}", banner.lines);
    let client = udp_client().await;
    within("sending to echo", client.send_to(b"local", echo)).await.expect("send");
    assert_eq!(recv(&client).await, (b"local".to_vec(), echo));

    let error = one_line_error(&["--bind", "classroom-pc"]).await;
    let says =
        "--bind takes an IP address such as 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)";
    assert!(error.contains(says), "{error}");
    assert!(error.contains("classroom-pc"), "{error}");
}

#[tokio::test]
async fn a_seed_that_is_not_a_number_says_what_a_seed_is() {
    let error = one_line_error(&["--seed", "abc"]).await;
    assert!(error.contains("whole number from 0 to 18446744073709551615"), "{error}");
    assert!(!error.contains("invalid digit"), "{error}");
}

#[tokio::test]
async fn an_allowed_target_without_a_port_asks_for_ip_and_port() {
    let error = one_line_error(&["--allow-target", "10.0.0.1"]).await;
    assert!(error.contains("IP:PORT, e.g. 10.0.0.1:9000"), "{error}");
    let error = one_line_error(&["--allow-target", "my-server.local:9000"]).await;
    assert!(error.contains("IP:PORT") && error.contains("not a host name"), "{error}");
}

#[tokio::test]
async fn a_public_host_that_is_no_host_name_is_refused() {
    for bad in ["bad host name!", "lab-7.local:8080", "http://lab-7.local/"] {
        let error = one_line_error(&["--public-host", bad]).await;
        assert!(error.contains("--public-host takes a host name such as lab-7.local"), "{bad:?}: {error}");
        assert!(error.contains(bad), "{bad:?}: the error should quote the value: {error}");
    }
}

#[tokio::test]
async fn bound_to_every_interface_the_banner_shows_addresses_students_can_type() {
    let mut args = FREE_PORTS.to_vec();
    args.extend(["--bind", "0.0.0.0"]);
    let mut relay = RelayProcess::spawn(&args);
    let banner = relay.banner().await;
    for server in ServerName::ALL {
        let addr = banner.addr(server);
        assert!(!addr.ip().is_unspecified(), "nobody can send to {addr}: {:#?}", banner.lines);
        if let Some((_, ip)) = relay::interfaces::primary("0.0.0.0".parse().expect("ip")) {
            assert_eq!(addr.ip(), ip, "this machine's network address: {:#?}", banner.lines);
        }
    }
    // bench/bridge.sh and bench/bridge-ab.sh find the echo server with `echo +udp://`.
    assert!(
        banner.lines.iter().any(|l| l.trim_start().starts_with("echo ") && l.contains(" udp://")),
        "{:#?}",
        banner.lines
    );
    assert!(banner.lines.iter().any(|l| l.contains("listen on every interface")), "{:#?}", banner.lines);

    // The students' URLs, then the projector's at this machine's loopback. Bound to 0.0.0.0
    // the relay listens on IPv4 only, so an IPv6 URL would be one nobody can open.
    let http = banner.http.expect("banner() returns only once it saw the URL");
    let rest = relay.lines_until("?view=all").await;
    let projector = format!("http://127.0.0.1:{}/?view=all", http.port());
    assert!(rest.last().is_some_and(|l| l.contains(&projector)), "{projector} in: {rest:#?}");
    for line in &rest {
        assert!(!line.contains("http://["), "an IPv6 URL on an IPv4 relay: {rest:#?}");
    }

    // The server answers where the banner says. Its reply leaves from whichever address the
    // kernel routes from (the socket is bound to every interface), so only the port is compared.
    let client = udp_client().await;
    let echo = banner.addr(ServerName::Echo);
    within("sending to echo", client.send_to(b"from a student", echo)).await.expect("send");
    let (reply, from) = recv(&client).await;
    assert_eq!((reply.as_slice(), from.port()), (&b"from a student"[..], echo.port()));
}

#[tokio::test]
async fn a_port_in_use_error_gives_the_os_reason_once() {
    let taken = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind UDP");
    let addr = taken.local_addr().expect("bound");
    // The kernel's own words for this failure, in whatever language the OS speaks.
    let reason = std::net::UdpSocket::bind(addr).expect_err("the port is taken").to_string();
    let port = addr.port().to_string();
    let mut args = FREE_PORTS.to_vec();
    let at = args.iter().position(|a| *a == "--echo-port").expect("--echo-port is in FREE_PORTS");
    args[at + 1] = &port;
    let (status, stderr) = run_to_exit(&args).await;
    assert!(!status.success());
    assert_eq!(stderr.matches(&reason).count(), 1, "{reason:?} should appear once in:\n{stderr}");
}

#[tokio::test]
async fn bad_values_fail_with_a_clear_error_and_no_panic() {
    let cases: [(&str, &str); 15] = [
        ("--lossy-drop", "1.5"),
        ("--lossy-drop", "half"),
        ("--chat-timeout", "soon"),
        ("--lossy-delay", "later"),
        ("--echo-port", "70000"),
        // Long enough to overflow a timer: refused up front instead of panicking a server.
        ("--chat-timeout", "500000000000y"),
        ("--max-sessions", "0"),
        ("--max-datagram", "70000"),
        ("--link", "echo.out=loss:2"),
        ("--link", "echo.up=loss:0.1"),
        ("--link", "echo.out=delay:soon"),
        ("--threads", "0"),
        ("--threads", "many"),
        ("--history", "2000000"),
        ("--shared-changes", "students"),
    ];
    for (flag, value) in cases {
        let mut args = FREE_PORTS.to_vec();
        if let Some(at) = args.iter().position(|a| *a == flag) {
            args[at + 1] = value;
        } else {
            args.extend([flag, value]);
        }
        let (status, stderr) = run_to_exit(&args).await;
        assert!(!status.success(), "{flag} {value} was accepted (exit {status})");
        let first = stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("error:"), "{flag} {value}: the first line should be the error:\n{stderr}");
        assert!(first.contains(flag), "{flag} {value}: the error should name the flag:\n{stderr}");
        assert!(first.contains(value), "{flag} {value}: the error should quote the value:\n{stderr}");
    }
}

#[tokio::test]
async fn a_zero_chat_timeout_is_refused() {
    let mut args = FREE_PORTS.to_vec();
    args.extend(["--chat-timeout", "0s"]);
    let (status, stderr) = run_to_exit(&args).await;
    assert!(!status.success(), "a chat timeout of 0s was accepted");
    assert!(stderr.contains("--chat-timeout"), "{stderr}");
}

#[tokio::test]
async fn help_explains_every_flag() {
    let mut relay = RelayProcess::spawn(&["--help"]);
    let mut help = String::new();
    // `--help` prints a page; 500 lines is a bound, not an expectation.
    for _ in 0..500 {
        match within("reading --help", relay.stdout.next_line()).await.expect("read stdout") {
            Some(line) => {
                help.push_str(&line);
                help.push('\n');
            }
            None => break,
        }
    }
    let (status, stderr) = relay.exit().await;
    assert!(status.success(), "--help exited with {status}: {stderr}");
    for flag in [
        "--bind",
        "--http-port",
        "--echo-port",
        "--upper-port",
        "--chat-port",
        "--lossy-port",
        "--lossy-drop",
        "--seed",
        "--chat-timeout",
        "--lossy-delay",
        "--lossy-jitter",
        "--threads",
        "--shared-changes",
    ] {
        assert!(help.contains(flag), "--help does not mention {flag}:\n{help}");
    }
}
