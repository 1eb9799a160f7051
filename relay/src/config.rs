//! What the relay is told to do: addresses, ports and server settings.
//!
//! `main.rs` builds a [`Config`] from the command line; tests build one with
//! [`Config::ephemeral`] so that every socket gets a free port.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use protocol::{Dir, LinkPatch, Links, ServerName};

use crate::udp::chat::ChatSettings;
use crate::udp::lossy::LossySettings;

/// Everything the relay needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address every server binds to. Loopback by default, so nothing is reachable from
    /// the network unless the operator asks.
    pub bind: IpAddr,
    /// Port for the page, the WebSocket and the HTTP API. 0 lets the OS pick.
    pub http_port: u16,
    /// UDP port of each server, in [`ServerName::ALL`] order. 0 lets the OS pick.
    pub ports: Ports,
    pub chat: ChatSettings,
    pub lossy: LossySettings,
    /// What each browser session may do.
    pub limits: SessionLimits,
    /// Addresses, besides the relay's own servers, that browsers may aim sockets at
    /// (`--allow-target`). Empty by default: the relay is not an open relay.
    pub allow_targets: Vec<SocketAddr>,
    /// How much of the recent past the relay keeps (`--history`).
    pub history: crate::history::HistoryLimits,
    /// Where the capture is also written continuously, as it happens (`--capture`).
    pub capture: Option<std::path::PathBuf>,
    /// Each server's link at start (`--link`); every setting is off unless given.
    pub links: BTreeMap<ServerName, Links>,
    /// The loopback port kept free for the `nobody` target (`--nobody-port`); 0 picks one.
    pub nobody_port: u16,
    /// Host names the page may be reached by, besides the bind address and `localhost`
    /// (`--public-host`). Any other `Host` header is refused, against DNS rebinding.
    pub public_hosts: Vec<String>,
    /// Who may change the servers and links everyone meets (`--shared-changes`).
    pub shared_changes: SharedChanges,
}

/// Who may change the servers and links a whole class meets (`--shared-changes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SharedChanges {
    /// Pages and HTTP clients on this machine: the teacher's. Another machine's page changes
    /// them for its own sockets instead (`"scope":"own"`); its HTTP changes are refused.
    #[default]
    Local,
    /// Anyone who reaches the relay.
    Anyone,
}

impl SharedChanges {
    /// Whether a client at `ip` may change what everyone meets. `None`, a client whose address
    /// is not known (not served by [`crate::serve::serve`]), may.
    pub fn allow(self, ip: Option<std::net::IpAddr>) -> bool {
        self == Self::Anyone || ip.is_none_or(crate::interfaces::is_this_machine)
    }
}

/// Limits on browser sessions. Each is a flag of the same name, and each is listed in the
/// `hello` message so a client knows them up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLimits {
    /// WebSocket sessions at once (`--max-sessions`). A class of 100 with a spare tab each and
    /// its projectors fits in 256; each session costs a task, a feed and its sockets. One
    /// student's runaway tabs are stopped by the cap per address, not by this one.
    pub sessions: usize,
    /// Open sockets per session (`--max-sockets`); each is a file descriptor and a task.
    pub sockets_per_session: usize,
    /// Datagrams per second per session, retries and heartbeats included
    /// (`--max-sends-per-sec`). Far more than a person clicks, far less than a flood.
    pub sends_per_sec: u32,
    /// Largest datagram a browser may send, in bytes (`--max-datagram`): UDP's own 65,507 by
    /// default, which the kernel enforces (a longer send fails with `EMSGSIZE`). An operator may
    /// set less.
    pub datagram_bytes: usize,
    /// Datagram bytes per second per session, retries, heartbeats and crowds included
    /// (`--max-bytes-per-sec`). This, not a small datagram cap, keeps one tab from flooding:
    /// 1 MiB/s is sixteen 64 KB datagrams a second.
    pub bytes_per_sec: u64,
    /// Crowd members per session, all crowds together (`--max-crowd`): each is a socket and a
    /// task. 100 is the tutorials' "many clients".
    pub crowd_clients: u32,
    /// Shortest heartbeat interval (`--min-heartbeat`): at most 10 beats a second a socket.
    pub heartbeat_min: Duration,
    /// Requests with retries or IDs in flight per socket (`--max-pending`).
    pub pending_requests: usize,
    /// Connections, WebSocket sessions included, per client address.
    pub addresses: crate::serve::AddressLimits,
    /// How often the relay pings a browser (`--ws-ping`). A session that answers nothing, not
    /// even a pong, for two of these is closed, so a laptop that went to sleep frees its slot.
    pub ping_every: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            sessions: 256,
            sockets_per_session: 16,
            sends_per_sec: 200,
            datagram_bytes: crate::udp::MAX_DATAGRAM,
            bytes_per_sec: 1 << 20,
            crowd_clients: 100,
            heartbeat_min: Duration::from_millis(100),
            pending_requests: 32,
            ping_every: Duration::from_secs(20),
            addresses: crate::serve::AddressLimits { per_address: 16, per_loopback: 1024 },
        }
    }
}

/// The UDP port of each server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub echo: u16,
    pub upper: u16,
    pub chat: u16,
    pub lossy: u16,
}

impl Ports {
    /// The tutorials' own ports, so their clients work as written.
    pub const TUTORIAL: Ports = Ports { echo: 10004, upper: 8003, chat: 9998, lossy: 1060 };

    pub fn get(&self, server: ServerName) -> u16 {
        match server {
            ServerName::Echo => self.echo,
            ServerName::Upper => self.upper,
            ServerName::Chat => self.chat,
            ServerName::Lossy => self.lossy,
            // Not a server: its port is chosen apart, see `Config::nobody_port`.
            ServerName::Nobody => 0,
        }
    }
}

/// The command-line flag that sets a server's port, for error messages.
pub fn port_flag(server: ServerName) -> &'static str {
    match server {
        ServerName::Echo => "--echo-port",
        ServerName::Upper => "--upper-port",
        ServerName::Chat => "--chat-port",
        ServerName::Lossy => "--lossy-port",
        ServerName::Nobody => "--nobody-port",
    }
}

/// Two UDP port flags given the same port. Only one socket may listen on a UDP port, so the
/// second server could not start; and `nobody`'s port must be one where nothing listens.
/// (The page's port is TCP: it may share a number with a UDP one.)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{first} and {second} are both {port}{}: each needs a UDP port of its own (change one of \
     them, or give it 0 to pick a free port)",
    default_note(.first, .second, *.port)
)]
pub struct SamePort {
    pub first: &'static str,
    pub second: &'static str,
    pub port: u16,
}

/// Says which flag was left at its default, since the user never typed that one.
fn default_note(first: &str, second: &str, port: u16) -> String {
    let defaulted = ServerName::ALL
        .into_iter()
        .find(|&s| Ports::TUTORIAL.get(s) == port && [first, second].contains(&port_flag(s)));
    match defaulted {
        Some(server) => format!(" ({port} is {}'s default)", port_flag(server)),
        None => String::new(),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            http_port: 8080,
            ports: Ports::TUTORIAL,
            chat: ChatSettings::default(),
            lossy: LossySettings::default(),
            limits: SessionLimits::default(),
            allow_targets: Vec::new(),
            nobody_port: 0,
            links: BTreeMap::new(),
            history: crate::history::HistoryLimits::default(),
            capture: None,
            public_hosts: Vec::new(),
            shared_changes: SharedChanges::default(),
        }
    }
}

impl Config {
    /// Loopback, every port picked by the OS, lossy seed 42 and no drops. For tests.
    pub fn ephemeral() -> Self {
        Self {
            http_port: 0,
            ports: Ports { echo: 0, upper: 0, chat: 0, lossy: 0 },
            lossy: LossySettings { drop: 0.0, seed: 42, ..LossySettings::default() },
            ..Self::default()
        }
    }

    pub fn server_addr(&self, server: ServerName) -> SocketAddr {
        SocketAddr::new(self.bind, self.ports.get(server))
    }

    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.http_port)
    }

    /// Checks that no two UDP ports are the same, `nobody`'s included, before anything is
    /// bound, so the error names both flags instead of only the second one's "in use". Port 0
    /// (the OS picks) never clashes.
    pub fn check_ports(&self) -> Result<(), SamePort> {
        let flags: Vec<(&'static str, u16)> = ServerName::ALL
            .into_iter()
            .map(|server| (port_flag(server), self.ports.get(server)))
            .chain([(port_flag(ServerName::Nobody), self.nobody_port)])
            .collect();
        for (i, &(first, port)) in flags.iter().enumerate() {
            if port == 0 {
                continue;
            }
            if let Some(&(second, _)) = flags[i + 1..].iter().find(|&&(_, other)| other == port) {
                return Err(SamePort { first, second, port });
            }
        }
        Ok(())
    }
}

/// The longest duration any setting takes: a day. Longer ones teach nothing and would
/// overflow the clock arithmetic of the servers' timers.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Parses durations such as `10s`, `600ms` or `1m 30s`, up to a day, for the command line.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (write a duration such as 10s, 600ms or 1m30s)"))?;
    if d > MAX_DURATION {
        return Err(format!("{} is longer than the longest allowed, 1 day", s.trim()));
    }
    Ok(d)
}

/// Parses a probability between 0.0 and 1.0, for the command line.
pub fn parse_probability(s: &str) -> Result<f64, String> {
    let p: f64 = s.trim().parse().map_err(|_| format!("{s:?} is not a number"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("{p} is not a probability: use a number from 0.0 (never drop) to 1.0 (drop all)"))
    }
}

/// Strips the brackets an IPv6 address has in a URL, `[::1]`, if it has them.
fn unbracket(s: &str) -> &str {
    s.strip_prefix('[').and_then(|s| s.strip_suffix(']')).unwrap_or(s)
}

/// Parses `--bind`: an IP address, or `localhost` for 127.0.0.1. Other names are refused
/// rather than looked up: a name can stand for several addresses, or none on this machine.
pub fn parse_bind(s: &str) -> Result<IpAddr, String> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    if let Ok(ip) = unbracket(s).parse() {
        return Ok(ip);
    }
    if s.parse::<SocketAddr>().is_ok() {
        return Err("--bind takes an address without a port: the ports have flags of their own \
             (--http-port, --echo-port, --upper-port, --chat-port, --lossy-port)"
            .into());
    }
    Err("--bind takes an IP address such as 127.0.0.1 (this machine only) or 0.0.0.0 \
         (every interface), or localhost"
        .into())
}

/// Parses `--seed`, with the range in the message instead of Rust's "invalid digit".
pub fn parse_seed(s: &str) -> Result<u64, String> {
    s.trim().parse().map_err(|_| format!("the seed is a whole number from 0 to {}", u64::MAX))
}

/// Parses one `--allow-target`: exactly one IP address and port, as the page's `target` is
/// compared with it. No host names (the page's target is an address too) and no ranges.
pub fn parse_allow_target(s: &str) -> Result<SocketAddr, String> {
    const HOW: &str = "--allow-target takes IP:PORT, e.g. 10.0.0.1:9000 or [::1]:9000: an IP \
                       address, not a host name, and one port, not a range (repeat the flag for more)";
    let s = s.trim();
    match s.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(format!("port 0 is no server's port: {HOW}")),
        Ok(addr) => Ok(addr),
        Err(_) => match unbracket(s).parse::<IpAddr>() {
            Ok(ip) => Err(format!(
                "the port is missing: --allow-target takes IP:PORT, e.g. {}",
                SocketAddr::new(ip, 9000)
            )),
            Err(_) => Err(HOW.into()),
        },
    }
}

/// Parses one `--public-host`: a host name (letters, digits, hyphens and dots) or an IP
/// address, without a port, since it is compared with the host part of a `Host` header whose
/// port must be the page's own. An IPv6 address is kept without its brackets, as the header's
/// host is compared.
pub fn parse_public_host(s: &str) -> Result<String, String> {
    const HOW: &str = "--public-host takes a host name such as lab-7.local (letters, digits, \
                       hyphens and dots) or an IP address such as 192.168.1.20";
    let s = s.trim();
    if let Ok(ip) = unbracket(s).parse::<IpAddr>() {
        return Ok(ip.to_string());
    }
    if s.contains("://") || s.contains('/') {
        return Err(format!("{HOW}, not a URL"));
    }
    if let Some((_, port)) = s.rsplit_once(':')
        && port.parse::<u16>().is_ok()
    {
        return Err(format!("{HOW}, without a port: the page's port is --http-port's"));
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    let labels: Vec<&str> = s.split('.').collect();
    if s.len() > 253 || !labels.iter().all(|label| label_ok(label)) {
        return Err(HOW.into());
    }
    // A name's last label is never all digits: 300.1.1.1 is a mistyped address.
    if labels.last().is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("{HOW}; this is not a valid IP address"));
    }
    Ok(s.to_owned())
}

/// Parses one `--link SERVER.DIR=KEY:VALUE[,KEY:VALUE…]`, e.g.
/// `echo.out=loss:0.3,delay:100ms,jitter:50ms`. The keys are `loss`, `duplicate` and `reorder`
/// (probabilities), `delay` and `jitter` (durations) and `mtu` (bytes).
pub fn parse_link(s: &str) -> Result<(ServerName, Dir, LinkPatch), String> {
    let (target, settings) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: write SERVER.DIR=KEY:VALUE, e.g. echo.out=loss:0.3"))?;
    let (server, dir) = target
        .split_once('.')
        .ok_or_else(|| format!("{target:?}: name a server and a direction, e.g. echo.out or upper.in"))?;
    let server: ServerName = server.parse().map_err(|e: protocol::UnknownServer| e.to_string())?;
    if server == ServerName::Nobody {
        return Err("nobody has no link: nothing listens there".into());
    }
    let dir: Dir = dir.parse()?;
    let mut patch = LinkPatch::default();
    for pair in settings.split(',') {
        let (key, value) = pair
            .split_once(':')
            .ok_or_else(|| format!("{pair:?}: write KEY:VALUE, e.g. loss:0.3 or delay:100ms"))?;
        let (key, value) = (key.trim(), value.trim());
        let probability = || parse_probability(value).map_err(|e| format!("{key}: {e}"));
        let millis = || {
            parse_duration(value)
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .map_err(|e| format!("{key}: {e}"))
        };
        match key {
            "loss" => patch.loss = Some(probability()?),
            "duplicate" => patch.duplicate = Some(probability()?),
            "reorder" => patch.reorder = Some(probability()?),
            "delay" => patch.delay_ms = Some(millis()?),
            "jitter" => patch.jitter_ms = Some(millis()?),
            "mtu" => {
                patch.mtu =
                    Some(value.parse().map_err(|_| format!("mtu: {value:?} is not a number of bytes"))?)
            }
            _ => {
                return Err(format!(
                    "unknown link setting {key:?}: the keys are loss, duplicate, reorder, delay, jitter and mtu"
                ));
            }
        }
    }
    // The same checks as a live change, so a bad value is refused at start.
    crate::udp::link::apply(&protocol::LinkSettings::default(), &patch).map_err(|e| e.to_string())?;
    Ok((server, dir, patch))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_machine_changes_what_everyone_meets_unless_anyone_may() {
        let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
        let local = SharedChanges::default();
        assert_eq!(local, SharedChanges::Local);
        assert!(local.allow(ip("127.0.0.1")) && local.allow(ip("::1")) && local.allow(None));
        assert!(!local.allow(ip("192.0.2.7")), "a student's laptop");
        assert!(SharedChanges::Anyone.allow(ip("192.0.2.7")));
    }

    #[test]
    fn equal_udp_ports_are_named_by_both_flags() {
        let mut config = Config::ephemeral();
        assert_eq!(config.check_ports(), Ok(()), "port 0 never clashes");
        config.http_port = 18500;
        config.ports.echo = 18500;
        assert_eq!(config.check_ports(), Ok(()), "the page's TCP port may share a UDP port's number");
        config.ports.lossy = 18500;
        let clash = config.check_ports().expect_err("echo and lossy");
        assert_eq!((clash.first, clash.second, clash.port), ("--echo-port", "--lossy-port", 18500));
        config.ports.lossy = 0;
        config.nobody_port = 18500;
        let clash = config.check_ports().expect_err("echo and nobody");
        assert_eq!((clash.first, clash.second), ("--echo-port", "--nobody-port"));

        let defaults = Config { nobody_port: 0, ports: Ports { upper: 10004, ..Ports::TUTORIAL }, ..config };
        let message = defaults.check_ports().expect_err("upper on echo's default").to_string();
        assert!(message.starts_with("--echo-port and --upper-port are both 10004"), "{message}");
        assert!(message.contains("(10004 is --echo-port's default)"), "{message}");
    }

    #[test]
    fn bind_takes_an_ip_or_localhost() {
        assert_eq!(parse_bind("localhost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(parse_bind("LocalHost"), Ok(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(parse_bind("0.0.0.0"), Ok(IpAddr::V4(Ipv4Addr::UNSPECIFIED)));
        assert_eq!(parse_bind("[::1]"), Ok("::1".parse().expect("ip")));
        let error = parse_bind("classroom-pc").expect_err("a name");
        assert!(error.contains("127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"), "{error}");
        let error = parse_bind("127.0.0.1:8080").expect_err("with a port");
        assert!(error.contains("without a port"), "{error}");
    }

    #[test]
    fn seeds_are_whole_numbers() {
        assert_eq!(parse_seed("42"), Ok(42));
        assert_eq!(parse_seed("18446744073709551615"), Ok(u64::MAX));
        for bad in ["abc", "-1", "1.5", "18446744073709551616"] {
            let error = parse_seed(bad).expect_err(bad);
            assert!(error.contains("whole number from 0 to 18446744073709551615"), "{bad}: {error}");
        }
    }

    #[test]
    fn allow_targets_are_one_ip_and_port() {
        assert_eq!(parse_allow_target("10.0.0.1:9000"), Ok("10.0.0.1:9000".parse().expect("addr")));
        assert_eq!(parse_allow_target("[::1]:9000"), Ok("[::1]:9000".parse().expect("addr")));
        for (bad, says) in [
            ("10.0.0.1", "the port is missing"),
            ("10.0.0.1", "e.g. 10.0.0.1:9000"),
            ("::1", "e.g. [::1]:9000"),
            ("10.0.0.1:0", "port 0"),
            ("example.com:9000", "not a host name"),
            ("10.0.0.1:9000-9010", "not a range"),
        ] {
            let error = parse_allow_target(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn public_hosts_are_names_or_addresses() {
        for good in ["lab-7.local", "classroom", "LAB7.example.org", "192.168.1.20"] {
            assert_eq!(parse_public_host(good).as_deref(), Ok(good));
        }
        assert_eq!(parse_public_host("[fd00::2]").as_deref(), Ok("fd00::2"));
        for (bad, says) in [
            ("bad host name!", "letters, digits, hyphens and dots"),
            ("lab_7.local", "letters, digits, hyphens and dots"),
            ("-lab.local", "host name"),
            ("lab..local", "host name"),
            ("", "host name"),
            ("lab-7.local:8080", "without a port"),
            ("http://lab-7.local/", "not a URL"),
            ("300.1.1.1", "not a valid IP address"),
        ] {
            let error = parse_public_host(bad).expect_err(bad);
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }

    #[test]
    fn durations_take_human_forms() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("600ms"), Ok(Duration::from_millis(600)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_duration("1day"), Ok(MAX_DURATION));
        assert!(parse_duration("500000000000y").is_err(), "would overflow a timer");
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn links_are_parsed_and_bad_ones_named() {
        let (server, dir, patch) = parse_link("echo.out=loss:0.3,delay:100ms,jitter:50ms").expect("valid");
        assert_eq!((server, dir), (ServerName::Echo, Dir::Out));
        assert_eq!((patch.loss, patch.delay_ms, patch.jitter_ms), (Some(0.3), Some(100), Some(50)));
        let (_, dir, patch) = parse_link("upper.in=duplicate:0.1,mtu:1500,reorder:0.5").expect("valid");
        assert_eq!(
            (dir, patch.duplicate, patch.mtu, patch.reorder),
            (Dir::In, Some(0.1), Some(1500), Some(0.5))
        );
        for (bad, says) in [
            ("echo.out", "SERVER.DIR=KEY:VALUE"),
            ("echo=loss:0.1", "direction"),
            ("ehco.out=loss:0.1", "unknown server"),
            ("echo.up=loss:0.1", "unknown direction"),
            ("echo.out=loss", "KEY:VALUE"),
            ("echo.out=loss:2", "loss"),
            ("echo.out=delay:fast", "delay"),
            ("echo.out=delay:2m", "delay_ms may be at most"),
            ("echo.out=mtu:10", "mtu"),
            ("echo.out=speed:1", "unknown link setting"),
            ("nobody.in=loss:1", "nobody has no link"),
        ] {
            let error = parse_link(bad).expect_err(bad);
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn probabilities_are_checked() {
        assert_eq!(parse_probability("0.25"), Ok(0.25));
        assert_eq!(parse_probability("1"), Ok(1.0));
        assert!(parse_probability("1.5").is_err());
        assert!(parse_probability("-0.1").is_err());
        assert!(parse_probability("NaN").is_err());
        assert!(parse_probability("half").is_err());
    }
}
