//! This machine's own network addresses, for a classroom: with `--bind 0.0.0.0` students'
//! browsers reach the page at one of them, and the relay accepts it as its own `Host` without
//! being told (`--public-host` remains for names, which it cannot know).

use std::net::IpAddr;

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
        addresses().into_iter().filter(|(_, ip)| !ip.is_loopback()).map(|(_, ip)| url(ip)).collect()
    } else {
        vec![url(bind)]
    };
    urls.extend(public_hosts.iter().map(|host| format!("http://{host}:{port}/")));
    urls
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
}
