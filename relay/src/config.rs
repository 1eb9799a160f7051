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
