//! Published ports: Docker's `-p` and `EXPOSE` syntax, and host ports
//! checked free (or picked) by binding a socket of the protocol.
//!
//! The parser follows Docker's (go-connections `nat.ParsePortSpec`): the
//! value is split at `:` from the right, so an IPv6 host address may be
//! written bare (`::1:8080:80`) or in brackets (`[::1]:8080:80`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A published port's transport protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// The name nft and Docker use ("tcp").
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }

    /// The IP protocol number (IPPROTO_TCP, ...).
    pub fn number(self) -> u8 {
        match self {
            Proto::Tcp => 6,
            Proto::Udp => 17,
            Proto::Sctp => 132,
        }
    }

    /// "tcp", "udp" or "sctp", any case (Docker lowercases it).
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One published port: host side (address, port) to the container's port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortMapping {
    /// None: every local address of the container address's family.
    pub host_ip: Option<IpAddr>,
    /// 0: a free port is chosen at start ([`pick_free`]).
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

/// Docker's `-p` syntax: `[IP:][HOST_PORT[-END]:]CONTAINER_PORT[-END][/PROTO]`,
/// IPv6 as `[::1]:8080:80`. Ranges expand to one mapping per port; a host
/// range with a single container port is Docker's "any free port of this
/// range": the first free one (checked by [`check_free`]) is taken.
/// Errors are one line naming the value.
pub fn parse_publish(s: &str) -> Result<Vec<PortMapping>> {
    let bad = |what: String| Error::Invalid(format!("{what} in \"-p {s}\""));
    let parts: Vec<&str> = s.split(':').collect();
    let n = parts.len();
    let (ip, host, container) = match n {
        1 => ("".to_string(), "", parts[0]),
        2 => ("".to_string(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let (container, proto) = match container.split_once('/') {
        Some((port, proto)) => {
            let p = Proto::parse(proto)
                .ok_or_else(|| bad(format!("invalid protocol \"{proto}\" (tcp, udp or sctp)")))?;
            (port, p)
        }
        None => (container, Proto::Tcp),
    };
    let host_ip = if ip.is_empty() {
        None
    } else {
        let bare = match ip.strip_prefix('[') {
            Some(rest) => rest
                .strip_suffix(']')
                .ok_or_else(|| bad(format!("invalid IP address \"{ip}\"")))?,
            None => ip.as_str(),
        };
        Some(
            bare.parse::<IpAddr>()
                .map_err(|_| bad(format!("invalid IP address \"{ip}\"")))?,
        )
    };
    if container.is_empty() {
        return Err(bad("no container port".to_string()));
    }
    let (c_start, c_end) = parse_range(container).map_err(bad)?;
    if c_start == 0 {
        return Err(bad("invalid container port 0".to_string()));
    }
    let host_range = if host.is_empty() {
        None
    } else {
        Some(parse_range(host).map_err(bad)?)
    };
    let mut out = Vec::new();
    match host_range {
        None => {
            for p in c_start..=c_end {
                out.push(PortMapping {
                    host_ip,
                    host_port: 0,
                    container_port: p,
                    proto,
                });
            }
        }
        Some((h_start, h_end)) if h_end - h_start == c_end - c_start => {
            if h_start == 0 && h_end != 0 {
                return Err(bad("invalid host port 0".to_string()));
            }
            for (i, p) in (c_start..=c_end).enumerate() {
                // Docker's "0:80" asks for a random host port, like "80".
                let hp = if h_start == 0 { 0 } else { h_start + i as u16 };
                out.push(PortMapping {
                    host_ip,
                    host_port: hp,
                    container_port: p,
                    proto,
                });
            }
        }
        Some((h_start, h_end)) if c_start == c_end => {
            // Docker: a host range with one container port is the range to
            // allocate from.
            if h_start == 0 {
                return Err(bad("invalid host port 0".to_string()));
            }
            let mut m = PortMapping {
                host_ip,
                host_port: 0,
                container_port: c_start,
                proto,
            };
            let mut last = None;
            for hp in h_start..=h_end {
                m.host_port = hp;
                match check_free(&m) {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    Err(e) => last = Some(e),
                }
            }
            match last {
                Some(Error::Conflict(_)) => {
                    return Err(Error::Conflict(format!(
                        "no free host port in {h_start}-{h_end}/{proto} for \"-p {s}\": every port of the range is in use; choose another range"
                    )))
                }
                Some(e) => return Err(e),
                None => {}
            }
            out.push(m);
        }
        Some(_) => {
            return Err(bad(format!(
            "host port range \"{host}\" and container port range \"{container}\" differ in length"
        )))
        }
    }
    Ok(out)
}

/// "80" or "8000-8010" (start <= end) -> (start, end). 0 is accepted here
/// (a random host port); callers refuse it where it means nothing.
fn parse_range(s: &str) -> std::result::Result<(u16, u16), String> {
    let port = |p: &str| -> std::result::Result<u16, String> {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port \"{p}\""));
        }
        p.parse::<u16>().map_err(|_| format!("invalid port {p}"))
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                return Err(format!("invalid port range {s} (end before start)"));
            }
            Ok((a, b))
        }
        None => {
            let p = port(s)?;
            Ok((p, p))
        }
    }
}

/// An EXPOSE entry / `--expose` ("80", "80/udp", "8000-8010/tcp") ->
/// (port, proto) list.
pub fn parse_expose(s: &str) -> Result<Vec<(u16, Proto)>> {
    let bad = |what: String| Error::Invalid(format!("{what} in \"--expose {s}\""));
    let (ports, proto) = match s.split_once('/') {
        Some((ports, proto)) => (
            ports,
            Proto::parse(proto)
                .ok_or_else(|| bad(format!("invalid protocol \"{proto}\" (tcp, udp or sctp)")))?,
        ),
        None => (s, Proto::Tcp),
    };
    let (a, b) = parse_range(ports).map_err(bad)?;
    if a == 0 {
        return Err(bad("invalid port 0".to_string()));
    }
    Ok((a..=b).map(|p| (p, proto)).collect())
}

/// Checks the host port is free on the host: binds a socket of the
/// protocol on host_ip (or the wildcard: `[::]` dual-stack, `0.0.0.0` where
/// IPv6 is off), then closes it. A port berth publishes by DNAT is not
/// bound by anyone: the engine's records, not this check, see those.
pub fn check_free(m: &PortMapping) -> Result<()> {
    if m.host_port == 0 {
        return Ok(());
    }
    match bind(m.proto, m.host_ip, m.host_port) {
        Ok(Some(_)) | Ok(None) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EADDRINUSE) => {
            let ip = m
                .host_ip
                .map(|ip| ip.to_string())
                .unwrap_or_else(|| "0.0.0.0".to_string());
            Err(Error::Conflict(format!(
                "host port {}/{} ({ip}) is in use: another program or container holds it; choose another host port",
                m.host_port, m.proto
            )))
        }
        Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Err(Error::Invalid(format!(
            "cannot publish on {}: not an address of this host",
            m.host_ip.map(|i| i.to_string()).unwrap_or_default()
        ))),
        Err(e) => Err(Error::Io {
            op: format!(
                "check host port {}/{} ({}) is free",
                m.host_port,
                m.proto,
                m.host_ip.map(|i| i.to_string()).unwrap_or_default()
            ),
            source: e,
        }),
    }
}

/// A free host port for a mapping with host_port 0 (bind port 0, read it
/// back), as Docker picks one: from the kernel's ephemeral range.
pub fn pick_free(proto: Proto, host_ip: Option<IpAddr>) -> Result<u16> {
    let op = || format!("pick a free host port ({proto})");
    match bind(proto, host_ip, 0).map_err(crate::io(op()))? {
        Some(fd) => local_port(&fd).map_err(crate::io(op())),
        None => {
            // The protocol is not in this kernel (sctp without its module):
            // no socket can hold a port, so the first ephemeral one will do.
            Ok(32768)
        }
    }
}

/// Binds a socket of `proto` on (host_ip or the wildcard, port). Ok(None)
/// when the kernel lacks the protocol (sctp): nothing can hold the port.
fn bind(proto: Proto, host_ip: Option<IpAddr>, port: u16) -> std::io::Result<Option<OwnedFd>> {
    let addrs: Vec<(IpAddr, bool)> = match host_ip {
        Some(ip) => vec![(ip, false)],
        // Dual-stack [::] conflicts with an IPv4 or IPv6 holder alike.
        None => vec![
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), true),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), false),
        ],
    };
    let mut last = None;
    for (ip, dual) in addrs {
        match bind_one(proto, SocketAddr::new(ip, port), dual) {
            Ok(fd) => return Ok(Some(fd)),
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EPROTONOSUPPORT) | Some(libc::ESOCKTNOSUPPORT)
                ) && proto == Proto::Sctp =>
            {
                return Ok(None)
            }
            // No IPv6 on this host: try the IPv4 wildcard.
            Err(e)
                if dual
                    && matches!(
                        e.raw_os_error(),
                        Some(libc::EAFNOSUPPORT) | Some(libc::EADDRNOTAVAIL)
                    ) =>
            {
                last = Some(e)
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::from_raw_os_error(libc::EINVAL)))
}

fn bind_one(proto: Proto, addr: SocketAddr, dual: bool) -> std::io::Result<OwnedFd> {
    let (ty, p) = match proto {
        Proto::Tcp => (libc::SOCK_STREAM, libc::IPPROTO_TCP),
        Proto::Udp => (libc::SOCK_DGRAM, libc::IPPROTO_UDP),
        Proto::Sctp => (libc::SOCK_STREAM, libc::IPPROTO_SCTP),
    };
    // As a server would bind it: TIME_WAIT leftovers do not hold a port.
    let reuse = [(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)];
    let opts: &[_] = if ty == libc::SOCK_STREAM { &reuse } else { &[] };
    berth_sys::socket::bind_ip(ty, p, addr, dual, opts)
}

fn local_port(fd: &OwnedFd) -> std::io::Result<u16> {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writes of len bytes.
    let r = unsafe {
        libc::getsockname(
            fd.as_raw_fd(),
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if r < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // sin_port and sin6_port are at the same offset, right after the family.
    let port = if storage.ss_family == libc::AF_INET as libc::sa_family_t {
        // SAFETY: the kernel wrote a sockaddr_in for an AF_INET socket.
        let sin: libc::sockaddr_in =
            unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
        u16::from_be(sin.sin_port)
    } else {
        // SAFETY: the kernel wrote a sockaddr_in6 for an AF_INET6 socket.
        let sin6: libc::sockaddr_in6 =
            unsafe { std::ptr::read((&storage as *const libc::sockaddr_storage).cast()) };
        u16::from_be(sin6.sin6_port)
    };
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(ip: Option<&str>, h: u16, c: u16, proto: Proto) -> PortMapping {
        PortMapping {
            host_ip: ip.map(|i| i.parse().unwrap()),
            host_port: h,
            container_port: c,
            proto,
        }
    }

    #[test]
    fn publish_forms_docker_takes() {
        use Proto::*;
        let cases: &[(&str, Vec<PortMapping>)] = &[
            ("80", vec![m(None, 0, 80, Tcp)]),
            ("8080:80", vec![m(None, 8080, 80, Tcp)]),
            ("8080:80/udp", vec![m(None, 8080, 80, Udp)]),
            ("8080:80/SCTP", vec![m(None, 8080, 80, Sctp)]),
            ("0:80", vec![m(None, 0, 80, Tcp)]),
            (
                "127.0.0.1:8080:80",
                vec![m(Some("127.0.0.1"), 8080, 80, Tcp)],
            ),
            ("127.0.0.1::80", vec![m(Some("127.0.0.1"), 0, 80, Tcp)]),
            (
                "0.0.0.0:8080:80/tcp",
                vec![m(Some("0.0.0.0"), 8080, 80, Tcp)],
            ),
            ("[::1]:8080:80", vec![m(Some("::1"), 8080, 80, Tcp)]),
            (
                "[2001:db8::1]::53/udp",
                vec![m(Some("2001:db8::1"), 0, 53, Udp)],
            ),
            ("::1:8080:80", vec![m(Some("::1"), 8080, 80, Tcp)]),
            (
                "8000-8001:80-81",
                vec![m(None, 8000, 80, Tcp), m(None, 8001, 81, Tcp)],
            ),
            (
                "80-82",
                vec![
                    m(None, 0, 80, Tcp),
                    m(None, 0, 81, Tcp),
                    m(None, 0, 82, Tcp),
                ],
            ),
            (
                "10.0.0.1:7000-7001:7000-7001/udp",
                vec![
                    m(Some("10.0.0.1"), 7000, 7000, Udp),
                    m(Some("10.0.0.1"), 7001, 7001, Udp),
                ],
            ),
            ("65535:65535", vec![m(None, 65535, 65535, Tcp)]),
        ];
        for (s, want) in cases {
            assert_eq!(&parse_publish(s).unwrap(), want, "-p {s}");
        }
    }

    #[test]
    fn publish_host_range_with_one_container_port_takes_a_free_one() {
        // Hold a port the kernel gives us and the one after it (skipping
        // pairs another program holds), so the range's first port is taken.
        let (held, p, next) = loop {
            let held = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
            let p = held.local_addr().unwrap().port();
            if p == 65535 {
                continue;
            }
            if let Ok(next) = std::net::TcpListener::bind(("0.0.0.0", p + 1)) {
                break (held, p, next);
            }
        };
        drop(next);
        let got = parse_publish(&format!("{p}-{}:80", p + 1)).unwrap();
        assert_eq!(got, vec![m(None, p + 1, 80, Proto::Tcp)]);
        let next = std::net::TcpListener::bind(("0.0.0.0", p + 1)).unwrap();
        let e = parse_publish(&format!("{p}-{}:80", p + 1)).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)), "{e:?}");
        let e = e.to_string();
        assert_eq!(
            e,
            format!(
                "no free host port in {p}-{}/tcp for \"-p {p}-{}:80\": every port of the range is in use; choose another range",
                p + 1,
                p + 1
            )
        );
        drop((held, next));
    }

    #[test]
    fn publish_errors_name_the_value() {
        let cases = [
            ("70000:80", "invalid port 70000 in \"-p 70000:80\""),
            ("8080:70000", "invalid port 70000 in \"-p 8080:70000\""),
            ("8080:", "no container port in \"-p 8080:\""),
            ("", "no container port in \"-p \""),
            ("8080:0", "invalid container port 0 in \"-p 8080:0\""),
            ("8080:80/icmp", "invalid protocol \"icmp\" (tcp, udp or sctp) in \"-p 8080:80/icmp\""),
            ("1.2.3:8080:80", "invalid IP address \"1.2.3\" in \"-p 1.2.3:8080:80\""),
            ("[::1:8080:80", "invalid IP address \"[::1\" in \"-p [::1:8080:80\""),
            ("abc:80", "invalid port \"abc\" in \"-p abc:80\""),
            ("-1:80", "invalid port \"\" in \"-p -1:80\""),
            ("+80", "invalid port \"+80\" in \"-p +80\""),
            ("81-80", "invalid port range 81-80 (end before start) in \"-p 81-80\""),
            (
                "8000-8002:80-81",
                "host port range \"8000-8002\" and container port range \"80-81\" differ in length in \"-p 8000-8002:80-81\"",
            ),
            ("0-1:80-81", "invalid host port 0 in \"-p 0-1:80-81\""),
        ];
        for (s, want) in cases {
            let e = parse_publish(s).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "-p {s}: {e:?}");
            assert_eq!(e.to_string(), want, "-p {s}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn expose_forms_and_errors() {
        assert_eq!(parse_expose("80").unwrap(), vec![(80, Proto::Tcp)]);
        assert_eq!(parse_expose("53/udp").unwrap(), vec![(53, Proto::Udp)]);
        assert_eq!(
            parse_expose("8000-8002/tcp").unwrap(),
            vec![(8000, Proto::Tcp), (8001, Proto::Tcp), (8002, Proto::Tcp)]
        );
        assert_eq!(
            parse_expose("80/xyz").unwrap_err().to_string(),
            "invalid protocol \"xyz\" (tcp, udp or sctp) in \"--expose 80/xyz\""
        );
        assert_eq!(
            parse_expose("70000").unwrap_err().to_string(),
            "invalid port 70000 in \"--expose 70000\""
        );
        assert_eq!(
            parse_expose("0").unwrap_err().to_string(),
            "invalid port 0 in \"--expose 0\""
        );
        assert!(parse_expose("").is_err());
        assert!(parse_expose("80-").is_err());
    }

    #[test]
    fn proto_display_and_serde() {
        assert_eq!(Proto::Sctp.to_string(), "sctp");
        assert_eq!(serde_json::to_string(&Proto::Udp).unwrap(), "\"udp\"");
        let back: PortMapping = serde_json::from_str(
            r#"{"host_ip":"127.0.0.1","host_port":8080,"container_port":80,"proto":"tcp"}"#,
        )
        .unwrap();
        assert_eq!(back, m(Some("127.0.0.1"), 8080, 80, Proto::Tcp));
    }

    #[test]
    fn check_free_refuses_a_held_port_and_pick_free_gives_a_free_one() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = held.local_addr().unwrap().port();
        let e = check_free(&m(Some("127.0.0.1"), p, 80, Proto::Tcp)).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert_eq!(
            e.to_string(),
            format!("host port {p}/tcp (127.0.0.1) is in use: another program or container holds it; choose another host port")
        );
        // The wildcard conflicts with a holder on one address.
        assert!(check_free(&m(None, p, 80, Proto::Tcp)).is_err());
        // Another protocol on the same number is free.
        let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let up = u.local_addr().unwrap().port();
        assert!(check_free(&m(Some("127.0.0.1"), up, 80, Proto::Udp)).is_err());
        drop(u);
        assert!(check_free(&m(Some("127.0.0.1"), up, 80, Proto::Udp)).is_ok());

        // An address the host does not have.
        let e = check_free(&m(Some("192.0.2.77"), 8080, 80, Proto::Tcp)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot publish on 192.0.2.77: not an address of this host"
        );

        let q = pick_free(Proto::Tcp, None).unwrap();
        assert_ne!(q, 0);
        assert!(check_free(&m(None, q, 80, Proto::Tcp)).is_ok());
        let q = pick_free(Proto::Udp, Some("127.0.0.1".parse().unwrap())).unwrap();
        assert_ne!(q, 0);
    }
}
