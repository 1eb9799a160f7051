//! Where a session's socket may send, and where it binds: `open`'s and `crowd`'s targets.
//!
//! A socket is aimed at one of the relay's servers, at `nobody`, at another socket of the same
//! session (a stranger writing to a connected socket is a lesson), or at an address the
//! operator allowed with `--allow-target`. Anything else is refused before a socket exists, so
//! the relay is never an open relay or an amplifier.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use protocol::{ErrorCode, ServerName};

use super::AppState;
use super::command::{Refusal, refuse};

/// Where a socket aimed at `server` or `target` should send, and which of the relay's
/// targets that is, if any.
pub fn resolve(
    state: &AppState,
    server: Option<ServerName>,
    target: Option<&str>,
    own_sockets: &[SocketAddr],
) -> Result<(SocketAddr, Option<ServerName>), Refusal> {
    match (server, target) {
        (Some(ServerName::Nobody), None) => Ok((state.relay.nobody, Some(ServerName::Nobody))),
        (Some(server), None) => {
            let Some(&addr) = state.relay.servers.get(&server) else {
                return Err(refuse(ErrorCode::BadCommand, format!("the relay runs no {server} server")));
            };
            // A server bound to every interface is reached over loopback.
            let ip = match addr.ip() {
                IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
                ip => ip,
            };
            Ok((SocketAddr::new(ip, addr.port()), Some(server)))
        }
        (None, Some(target)) => {
            let addr: SocketAddr = target.parse().map_err(|_| {
                let message = match target.parse::<ServerName>() {
                    // A student's likely slip: the name where `server` takes it.
                    Ok(name) => format!(
                        "target {target:?} names a server: open it with \"server\":\"{name}\" (a target is an address like 127.0.0.1:9000)"
                    ),
                    Err(_) => format!("target {target:?} is not an address like 127.0.0.1:9000"),
                };
                refuse(ErrorCode::BadCommand, message)
            })?;
            let own = state.relay.targets().find(|(_, a)| *a == addr).map(|(name, _)| name);
            let allowed =
                own.is_some() || own_sockets.contains(&addr) || state.config.allow_targets.contains(&addr);
            if !allowed {
                return Err(refuse(
                    ErrorCode::TargetNotAllowed,
                    format!(
                        "{addr} is not one of the relay's servers; the operator can allow it with --allow-target {addr}"
                    ),
                ));
            }
            Ok((addr, own))
        }
        _ => Err(refuse(ErrorCode::BadCommand, "open needs exactly one of \"server\" or \"target\"")),
    }
}

/// Where a socket that sends to `remote` binds: loopback for loopback, and the server's own
/// address when it listens on one of this machine's other addresses, so the address the
/// session claims is the one the server's events name.
pub fn bind_addr(remote: SocketAddr, own: bool) -> SocketAddr {
    match remote.ip() {
        IpAddr::V4(ip) if ip.is_loopback() => SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        IpAddr::V6(ip) if ip.is_loopback() => SocketAddr::from((Ipv6Addr::LOCALHOST, 0)),
        ip if own => SocketAddr::new(ip, 0),
        IpAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    }
}
