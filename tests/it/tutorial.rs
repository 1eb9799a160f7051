//! The tutorials' kinds of client against an in-process relay: small Python scripts in
//! `tests/clients/` that use the `socket` module the way the tutorials do (sendto and
//! recvfrom, a connected chat socket, a retrying client with a doubling timeout), a Twisted
//! `DatagramProtocol` client, and `nc -u`. Each script exits 0 when the server behaved;
//! anything else fails the test with the script's own explanation.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use protocol::ServerName;

use crate::support::{TestRelay, within};

/// How long one script may run. The slowest, the lossy client giving up, needs about 3.1 s
/// of waiting (0.1 + 0.2 + 0.4 + 0.8 + 1.6).
const SCRIPT_LIMIT: Duration = Duration::from_secs(20);

pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients").join(name)
}

/// Runs `python3 tests/clients/<name> args...` with a time limit; the child dies with the test.
pub async fn python(name: &str, args: &[String]) -> Output {
    let run = tokio::process::Command::new("python3")
        .arg(script(name))
        .args(args)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(SCRIPT_LIMIT, run).await {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("cannot run python3 {name}: {e} (these tests need python3 on PATH)"),
        Err(_) => panic!("python3 {name} {args:?} ran longer than {SCRIPT_LIMIT:?}"),
    }
}

pub fn host_port(relay: &TestRelay, server: ServerName) -> Vec<String> {
    let addr = relay.addr(server);
    vec![addr.ip().to_string(), addr.port().to_string()]
}

pub fn assert_succeeded(name: &str, output: &Output) {
    assert!(
        output.status.success(),
        "{name} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test]
async fn python_echo_client() {
    let relay = TestRelay::start().await;
    let output = python("echo_client.py", &host_port(&relay, ServerName::Echo)).await;
    assert_succeeded("echo_client.py", &output);
    relay.shutdown().await;
}

#[tokio::test]
async fn python_upper_client() {
    let relay = TestRelay::start().await;
    let output = python("upper_client.py", &host_port(&relay, ServerName::Upper)).await;
    assert_succeeded("upper_client.py", &output);
    relay.shutdown().await;
}

#[tokio::test]
async fn python_connected_chat_client() {
    let relay = TestRelay::start().await;
    let output = python("chat_client.py", &host_port(&relay, ServerName::Chat)).await;
    assert_succeeded("chat_client.py", &output);
    relay.shutdown().await;
}

#[tokio::test]
async fn python_retrying_client_gets_through_a_lossy_server() {
    // Seed 42 at drop 0.5 answers the 1st datagram and drops the 2nd (pinned in the lossy
    // server's unit tests), so five requests need at least one retry.
    let relay = TestRelay::start_with(|c| {
        c.lossy.drop = 0.5;
        c.lossy.seed = 42;
    })
    .await;
    let mut args = host_port(&relay, ServerName::Lossy);
    args.push("5".to_owned());
    let output = python("lossy_client.py", &args).await;
    assert_succeeded("lossy_client.py", &output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let retries: u32 = stdout
        .lines()
        .find_map(|line| line.strip_prefix("retries: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no `retries: N` line in:\n{stdout}"));
    assert!(retries >= 1, "a server dropping half the datagrams never made the client retry:\n{stdout}");
    relay.shutdown().await;
}

#[tokio::test]
async fn python_retrying_client_gives_up_when_everything_is_dropped() {
    let relay = TestRelay::start_with(|c| c.lossy.drop = 1.0).await;
    let output = python("lossy_client.py", &host_port(&relay, ServerName::Lossy)).await;
    assert!(!output.status.success(), "the client claims an answer from a server that drops everything");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("seems to be down"), "stderr:\n{stderr}");
    relay.shutdown().await;
}

/// Twisted's connected `DatagramProtocol`, as in the Twisted tutorial: the echo comes back, and
/// a port with nobody listening arrives as `connectionRefused`.
#[tokio::test]
async fn twisted_echo_client_and_connection_refused() {
    let relay = TestRelay::start().await;
    let mut args = host_port(&relay, ServerName::Echo);
    args.push("expect-echo".into());
    let output = python("twisted_echo_client.py", &args).await;
    assert_succeeded("twisted_echo_client.py (echo)", &output);

    let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let args = vec![closed.ip().to_string(), closed.port().to_string(), "expect-refused".into()];
    let output = python("twisted_echo_client.py", &args).await;
    assert_succeeded("twisted_echo_client.py (refused)", &output);
    relay.shutdown().await;
}

/// `nc -u`, line by line as a student types: echo answers each line, and the chat server
/// registers the client and sends its message back as `ack: IP PORT`.
#[tokio::test]
async fn netcat_talks_to_echo_and_chat() {
    let relay = TestRelay::start().await;
    for (server, input, expected) in [
        (ServerName::Echo, "hello nc\n", "hello nc\n".to_owned()),
        (ServerName::Upper, "shout\n", "SHOUT\n".to_owned()),
        (ServerName::Chat, "reg\nhi all\n", "ack: 127.0.0.1 ".to_owned()),
    ] {
        let addr = relay.addr(server);
        // -q1: quit a second after stdin ends, so nc has time to print the replies.
        let mut child = tokio::process::Command::new("nc")
            .args(["-u", "-q1", &addr.ip().to_string(), &addr.port().to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run nc: {e} (./scripts/test installs netcat-openbsd)"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        for line in input.split_inclusive('\n') {
            within("writing to nc", tokio::io::AsyncWriteExt::write_all(&mut stdin, line.as_bytes()))
                .await
                .expect("write to nc");
            // nc sends what it reads at once; a pause keeps each line its own datagram.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        drop(stdin);
        let output = tokio::time::timeout(SCRIPT_LIMIT, child.wait_with_output())
            .await
            .expect("nc finished in time")
            .expect("nc output");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains(&expected), "{server}: expected {expected:?} in nc's output {stdout:?}");
    }
    relay.shutdown().await;
}
