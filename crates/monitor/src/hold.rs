//! Host ports held for the container's life. A port berth publishes is a
//! DNAT element: no process is bound to it, so without a holder any program
//! could bind it (and be shadowed by the DNAT, or shadow it for the
//! container's restarts). The monitor binds each one (TCP: bound, never
//! listening, so a stray connection is refused; UDP: bound with the
//! smallest receive buffer, never read) and keeps the sockets until it
//! exits; a kill -9 of the monitor releases them with everything else.

use berth_monitor_proto::config::HeldPort;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::OwnedFd;

/// Binds every port it can; a port another program took since the engine
/// checked it is named in the log (the DNAT serves it all the same).
pub fn hold(ports: &[HeldPort]) -> Vec<OwnedFd> {
    let mut out = Vec::new();
    for p in ports {
        match bind(p) {
            Ok(fd) => out.push(fd),
            Err(e) => eprintln!(
                "berth-monitor: hold host port {}: {e} (published all the same)",
                p.text()
            ),
        }
    }
    out
}

fn bind(p: &HeldPort) -> std::io::Result<OwnedFd> {
    match p.addr {
        Some(a) => bind_one(p.udp, SocketAddr::new(a, p.port), false),
        // Dual-stack [::] holds the port for both families; a host without
        // IPv6 gets 0.0.0.0.
        None => bind_one(
            p.udp,
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), p.port),
            true,
        )
        .or_else(|_| {
            bind_one(
                p.udp,
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), p.port),
                false,
            )
        }),
    }
}

/// No SO_REUSEADDR: a server that sets it (most do) could otherwise bind
/// and listen beside a held socket that is not listening.
fn bind_one(udp: bool, addr: SocketAddr, dual: bool) -> std::io::Result<OwnedFd> {
    if udp {
        // Never read: whatever is not DNATed away is dropped at once.
        let small = [(libc::SOL_SOCKET, libc::SO_RCVBUF, 0)];
        berth_sys::socket::bind_ip(libc::SOCK_DGRAM, 0, addr, dual, &small)
    } else {
        berth_sys::socket::bind_ip(libc::SOCK_STREAM, 0, addr, dual, &[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_port_cannot_be_bound_by_another_program_and_is_released() {
        // A port the kernel picks, then held.
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let held = hold(&[HeldPort {
            udp: false,
            addr: Some("127.0.0.1".parse().unwrap()),
            port,
        }]);
        assert_eq!(held.len(), 1);
        // std's listener sets SO_REUSEADDR, as most servers do.
        let e = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EADDRINUSE));
        // Held twice: the second is refused (logged), the first stays.
        assert!(hold(&[HeldPort {
            udp: false,
            addr: Some("127.0.0.1".parse().unwrap()),
            port,
        }])
        .is_empty());
        drop(held);
        std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        // UDP, every address.
        let probe = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        let port = probe.local_addr().unwrap().port();
        drop(probe);
        let held = hold(&[HeldPort {
            udp: true,
            addr: None,
            port,
        }]);
        assert_eq!(held.len(), 1);
        assert!(std::net::UdpSocket::bind(("0.0.0.0", port)).is_err());
        drop(held);
        std::net::UdpSocket::bind(("0.0.0.0", port)).unwrap();
    }
}
