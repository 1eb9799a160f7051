//! This machine's own network addresses, for a classroom: with `--bind 0.0.0.0` students'
//! browsers reach the page at one of them, and the relay accepts it as its own `Host` without
//! being told (`--public-host` remains for names, which it cannot know).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Each interface's name and address, loopback last. Asked of the OS each time: a laptop's
/// addresses change as it moves between networks.
pub fn addresses() -> Vec<(String, IpAddr)> {
    let mut found = os_addresses();
    found.sort_by_key(|(name, ip)| (ip.is_loopback(), ip.is_ipv6(), name.clone()));
    found.dedup();
    found
}

/// The URLs other machines open to reach a page on `port`, for a relay bound to `bind`: each of
/// this machine's network addresses when bound to every interface, the bind address when it is
/// a network one, then the `public_hosts`. Empty for loopback: nobody else can reach it.
pub fn join_urls(bind: IpAddr, port: u16, public_hosts: &[String]) -> Vec<String> {
    let url = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => format!("http://[{v6}]:{port}/"),
        IpAddr::V4(v4) => format!("http://{v4}:{port}/"),
    };
    if bind.is_loopback() {
        return Vec::new();
    }
    let mut urls: Vec<String> = if bind.is_unspecified() {
        network_addresses(bind).into_iter().map(|(_, ip)| url(ip)).collect()
    } else {
        vec![url(bind)]
    };
    urls.extend(public_hosts.iter().map(|host| host_url(host, port)));
    urls
}

/// This machine's network addresses that a relay bound to every interface (`bind` 0.0.0.0 or
/// `::`) answers at, with their interfaces' names, loopback left out: the URLs of the banner,
/// `hello.join` and the QR code are made from these.
pub fn network_addresses(bind: IpAddr) -> Vec<(String, IpAddr)> {
    answered_at(bind, bind.is_ipv6() && ipv6_any_takes_ipv4(), addresses())
}

/// Which of `found` a socket bound to `bind` answers at, loopback left out. 0.0.0.0 is every
/// IPv4 address and no IPv6 one: a browser sent to `http://[fd00::2]:8080/` is refused. `::`
/// is every IPv6 address, and every IPv4 one too when `dual_stack` (the kernel hands the
/// socket IPv4 peers as `::ffff:192.0.2.2`). Any other `bind` is only itself.
fn answered_at(bind: IpAddr, dual_stack: bool, found: Vec<(String, IpAddr)>) -> Vec<(String, IpAddr)> {
    let answers = |ip: IpAddr| match bind {
        IpAddr::V4(any) if any.is_unspecified() => ip.is_ipv4(),
        IpAddr::V6(any) if any.is_unspecified() => ip.is_ipv6() || dual_stack,
        _ => ip == bind,
    };
    found.into_iter().filter(|(_, ip)| !ip.is_loopback() && answers(*ip)).collect()
}

/// Whether a socket bound to `::` on this machine takes IPv4 too. The relay binds its sockets
/// with tokio's defaults (`relay.rs`), which never set `IPV6_V6ONLY`, so they get the OS's
/// default: dual-stack on Linux (`net.ipv6.bindv6only = 0`) and macOS, IPv6 only on Windows
/// and OpenBSD. Rather than guess from the OS, a socket bound the same way is asked.
pub fn ipv6_any_takes_ipv4() -> bool {
    std::net::TcpListener::bind((Ipv6Addr::UNSPECIFIED, 0))
        .and_then(|probe| socket2::SockRef::from(&probe).only_v6())
        .is_ok_and(|only_v6| !only_v6)
}

/// The address students most likely reach this machine at, of `bind`'s family, with its
/// interface's name, for printing the servers of a relay bound to every interface: the one
/// the OS sends from on its default route (a docker or VPN interface may sort first by name),
/// else the first network address. `None` when there is no network address of that family.
pub fn primary(bind: IpAddr) -> Option<(String, IpAddr)> {
    let network: Vec<(String, IpAddr)> = addresses()
        .into_iter()
        .filter(|(_, ip)| !ip.is_loopback() && ip.is_ipv4() == bind.is_ipv4())
        .collect();
    let routed = route_source(bind).and_then(|ip| network.iter().find(|(_, own)| *own == ip).cloned());
    routed.or_else(|| network.into_iter().next())
}

/// The source address of the default route: connecting a UDP socket sends nothing, it only
/// makes the kernel choose a route, and with it the address it would send from. The
/// destination is a documentation address (TEST-NET-3, 2001:db8::/32), which no network
/// has, so the answer is the default route's.
fn route_source(bind: IpAddr) -> Option<IpAddr> {
    let (any, far): (IpAddr, IpAddr) = match bind {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED.into(), Ipv4Addr::new(203, 0, 113, 1).into()),
        IpAddr::V6(_) => {
            (Ipv6Addr::UNSPECIFIED.into(), Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).into())
        }
    };
    let socket = std::net::UdpSocket::bind((any, 0)).ok()?;
    socket.connect((far, 9)).ok()?;
    Some(socket.local_addr().ok()?.ip())
}

/// The page's URL at a `--public-host`, which is a name or an address (IPv6 without brackets).
pub fn host_url(host: &str, port: u16) -> String {
    if host.contains(':') { format!("http://[{host}]:{port}/") } else { format!("http://{host}:{port}/") }
}

/// Whether `ip` is one of this machine's addresses.
pub fn is_local(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip.is_loopback() || addresses().iter().any(|(_, own)| *own == ip)
}

/// Whether a client at `ip` is on this machine as a browser or script there reaches it: at
/// 127.0.0.1, ::1 or one of the machine's addresses. (The rest of 127.0.0.0/8 is this machine
/// too, but nothing there is a browser; tests stand in for a student's laptop from there.)
pub fn is_this_machine(ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    ip == IpAddr::from([127, 0, 0, 1])
        || ip == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
        || addresses().iter().any(|(_, own)| *own == ip)
}

#[cfg(unix)]
fn os_addresses() -> Vec<(String, IpAddr)> {
    let Ok(all) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    all.filter_map(|ifaddr| {
        let address = ifaddr.address?;
        let ip = match (address.as_sockaddr_in(), address.as_sockaddr_in6()) {
            (Some(v4), _) => IpAddr::V4(v4.ip()),
            (_, Some(v6)) => IpAddr::V6(v6.ip()),
            _ => return None,
        };
        // A link-local IPv6 address needs a zone in a URL, which browsers refuse.
        let link_local = matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80);
        (!link_local).then_some((ifaddr.interface_name, ip))
    })
    .collect()
}

#[cfg(not(unix))]
fn os_addresses() -> Vec<(String, IpAddr)> {
    Vec::new()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_always_local_and_comes_last() {
        assert!(is_local("127.0.0.1".parse().expect("ip")));
        assert!(is_local("::1".parse().expect("ip")));
        assert!(!is_local("192.0.2.1".parse().expect("ip")), "TEST-NET-1 is no one's address");
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            assert!(is_this_machine(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["127.0.0.2", "192.0.2.1"] {
            assert!(!is_this_machine(ip.parse().expect("ip")), "{ip}");
        }
        let found = addresses();
        if let Some(first_loopback) = found.iter().position(|(_, ip)| ip.is_loopback()) {
            assert!(found[first_loopback..].iter().all(|(_, ip)| ip.is_loopback()), "{found:?}");
        }
    }

    #[test]
    fn the_primary_address_is_a_network_one_of_the_family() {
        for bind in [IpAddr::from(Ipv4Addr::UNSPECIFIED), IpAddr::from(Ipv6Addr::UNSPECIFIED)] {
            if let Some((name, ip)) = primary(bind) {
                assert!(!ip.is_loopback() && ip.is_ipv4() == bind.is_ipv4(), "{name} {ip}");
                assert!(addresses().contains(&(name.clone(), ip)), "{name} {ip}");
            }
        }
    }

    #[test]
    fn a_relay_on_every_interface_lists_only_the_addresses_it_answers_at() {
        let ip = |text: &str| -> IpAddr { text.parse().expect("ip") };
        let found: Vec<(String, IpAddr)> = [("eth0", "192.0.2.2"), ("eth0", "fd00::2"), ("lo", "127.0.0.1")]
            .into_iter()
            .map(|(name, text)| (name.to_owned(), ip(text)))
            .collect();
        let names = |bind: &str, dual_stack: bool| -> Vec<String> {
            let listed = answered_at(ip(bind), dual_stack, found.clone());
            listed.into_iter().map(|(name, ip)| format!("{ip} ({name})")).collect()
        };
        // Bound to 0.0.0.0 the relay has no IPv6 socket at all, dual-stack or not.
        for dual_stack in [false, true] {
            assert_eq!(names("0.0.0.0", dual_stack), ["192.0.2.2 (eth0)"]);
        }
        assert_eq!(names("::", false), ["fd00::2 (eth0)"]);
        assert_eq!(names("::", true), ["192.0.2.2 (eth0)", "fd00::2 (eth0)"]);
        assert_eq!(names("192.0.2.2", true), ["192.0.2.2 (eth0)"]);
    }

    #[test]
    fn public_hosts_become_urls() {
        assert_eq!(host_url("lab-7.local", 8080), "http://lab-7.local:8080/");
        assert_eq!(host_url("fd00::2", 8080), "http://[fd00::2]:8080/");
    }
}
