//! The host's resolvers, read from resolv.conf files: where berth's DNS
//! responder (in the host's network namespace) forwards the names it does
//! not know, and which name servers a container without berth's DNS gets.
//!
//! resolv.conf as glibc reads it: a line starting with `#` or `;` is a
//! comment; `nameserver ADDR` takes the first word after the keyword (what
//! follows is ignored, as glibc does); an IPv6 address may carry a
//! `%scope` (an interface name or index), which only means something on
//! the host.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::Path;

/// systemd-resolved's stub listeners: only reachable in the host's
/// network namespace.
const STUBS: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 53)),
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 54)),
];

/// The name servers of a resolv.conf, with their scope if any, in order,
/// without repeats.
fn scoped(text: &str) -> Vec<(IpAddr, Option<&str>)> {
    let mut out: Vec<(IpAddr, Option<&str>)> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(word) = words.next() else { continue };
        let (addr, scope) = match word.split_once('%') {
            Some((a, s)) => (a, Some(s).filter(|s| !s.is_empty())),
            None => (word, None),
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            continue;
        };
        // A scope means nothing on an IPv4 address: glibc refuses it.
        if ip.is_ipv4() && scope.is_some() {
            continue;
        }
        if !out.iter().any(|(o, s)| *o == ip && *s == scope) {
            out.push((ip, scope));
        }
    }
    out
}

/// Name servers in a resolv.conf text (IPv4/IPv6, with `%scope` dropped),
/// in order, without repeats.
pub fn nameservers(text: &str) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (ip, _) in scoped(text) {
        if !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

/// The search domains of a resolv.conf (its last `search` or `domain`
/// line, as glibc), for a container's own resolv.conf.
pub fn search(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        match words.next() {
            Some("search") => out = words.map(str::to_string).collect(),
            Some("domain") => out = words.take(1).map(str::to_string).collect(),
            _ => {}
        }
    }
    out
}

/// The `options` of a resolv.conf, in order, for a container's own
/// resolv.conf.
pub fn options(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut words = line.split_ascii_whitespace();
        if words.next() == Some("options") {
            out.extend(words.map(str::to_string));
        }
    }
    out
}

/// The text of a file, empty if it cannot be read (missing, unreadable).
fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// `etc`'s name servers, or when it lists systemd-resolved's stubs only,
/// `systemd`'s (resolved's real upstreams) if that lists any.
fn host_list(etc: &Path, systemd: &Path) -> Vec<(IpAddr, Option<String>)> {
    let own = |v: Vec<(IpAddr, Option<&str>)>| -> Vec<(IpAddr, Option<String>)> {
        v.into_iter()
            .map(|(ip, s)| (ip, s.map(str::to_string)))
            .collect()
    };
    let text = read(etc);
    let list = scoped(&text);
    if !list.is_empty() && list.iter().all(|(ip, _)| STUBS.contains(ip)) {
        let real = read(systemd);
        let real = scoped(&real);
        if !real.is_empty() {
            return own(real);
        }
    }
    own(list)
}

/// An interface's index from a scope (a name or a number); None if there
/// is no such interface.
fn scope_index(scope: &str) -> Option<u32> {
    if let Ok(n) = scope.parse::<u32>() {
        return Some(n);
    }
    let c = std::ffi::CString::new(scope).ok()?;
    // SAFETY: `c` is a NUL-terminated string that outlives the call;
    // if_nametoindex only reads it.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// The host's upstream resolvers for the DNS responder (which runs in the
/// host's network namespace), port 53: `/etc/resolv.conf`'s (`etc`); if
/// that lists only systemd-resolved's stub (127.0.0.53, 127.0.0.54), the
/// real ones from `/run/systemd/resolve/resolv.conf` (`systemd`) when it
/// lists any (else the stub: it is reachable from the host). A scoped
/// IPv6 server keeps its scope as the interface's index (one whose
/// interface does not exist is left out: it cannot be reached).
pub fn host_upstreams(etc: &Path, systemd: &Path) -> Vec<SocketAddr> {
    host_list(etc, systemd)
        .into_iter()
        .filter_map(|(ip, scope)| match (ip, scope) {
            (IpAddr::V6(a), Some(s)) => {
                scope_index(&s).map(|i| SocketAddr::V6(SocketAddrV6::new(a, 53, 0, i)))
            }
            (ip, _) => Some(SocketAddr::new(ip, 53)),
        })
        .collect()
}

/// The name servers a container without berth's DNS can use (Docker's
/// default bridge): the host's (systemd-resolved's stub replaced by its
/// real list, as [`host_upstreams`]) without those a container cannot
/// reach: loopback (127/8, ::1) and IPv6 link-local (scoped to a host
/// interface). Empty if none is left: the caller decides (Docker falls
/// back to 8.8.8.8 and 8.8.4.4).
pub fn container_nameservers(etc: &Path, systemd: &Path) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = Vec::new();
    for (ip, _) in host_list(etc, systemd) {
        let unreachable = match ip {
            IpAddr::V4(a) => a.is_loopback() || a.is_unspecified(),
            IpAddr::V6(a) => {
                a.is_loopback() || a.is_unspecified() || (a.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if !unreachable && !out.contains(&ip) {
            out.push(ip);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// `etc` and `systemd` files in a temporary directory (None: absent).
    fn files(
        etc: Option<&str>,
        systemd: Option<&str>,
    ) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
        let d = tempfile::tempdir().unwrap();
        let (e, s) = (
            d.path().join("resolv.conf"),
            d.path().join("systemd-resolv.conf"),
        );
        if let Some(t) = etc {
            std::fs::write(&e, t).unwrap();
        }
        if let Some(t) = systemd {
            std::fs::write(&s, t).unwrap();
        }
        (d, e, s)
    }

    const STUB: &str =
        "# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).\n\
                        nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch lan\n";
    const REAL: &str = "# This is /run/systemd/resolve/resolv.conf\nnameserver 192.168.1.1\nnameserver fe80::1%lo\nnameserver 2001:db8::53\nsearch lan\n";

    #[test]
    fn nameservers_read_as_glibc_does() {
        let text = "# nameserver 1.1.1.1\n; nameserver 1.0.0.1\nnameserver 9.9.9.9 # quad9\n\
                    nameserver\nnameserver not-an-address\nnameserver 10.0.0.1%eth0\n\
                    nameserver fe80::1%eth0\nnameserver 2001:db8::1\nnameserver 9.9.9.9\n\
                    nameservers 8.8.8.8\n  nameserver 8.8.4.4\nnameserver fe80::1%eth1\n";
        assert_eq!(
            nameservers(text),
            [
                ip("9.9.9.9"),
                ip("fe80::1"),
                ip("2001:db8::1"),
                ip("8.8.4.4")
            ]
        );
        assert!(nameservers("").is_empty());
        assert_eq!(search(STUB), ["lan"]);
        assert_eq!(search("domain a\nsearch b c\n"), ["b", "c"]);
        assert_eq!(search("search b c\ndomain a\n"), ["a"]);
        assert_eq!(
            options("options ndots:2\noptions edns0 timeout:1\n"),
            ["ndots:2", "edns0", "timeout:1"]
        );
    }

    #[test]
    fn the_systemd_stub_is_replaced_by_the_real_list() {
        let (_d, e, s) = files(Some(STUB), Some(REAL));
        let lo = scope_index("lo").expect("every network namespace has lo");
        assert_eq!(
            host_upstreams(&e, &s),
            [
                "192.168.1.1:53".parse().unwrap(),
                SocketAddr::V6(SocketAddrV6::new("fe80::1".parse().unwrap(), 53, 0, lo)),
                "[2001:db8::53]:53".parse().unwrap(),
            ]
        );
        assert_eq!(
            container_nameservers(&e, &s),
            [ip("192.168.1.1"), ip("2001:db8::53")]
        );
        // 127.0.0.54 (resolved's proxy stub) too, and both together.
        let (_d, e, s) = files(
            Some("nameserver 127.0.0.54\nnameserver 127.0.0.53\n"),
            Some(REAL),
        );
        assert_eq!(host_upstreams(&e, &s).len(), 3);
    }

    #[test]
    fn the_stub_is_kept_for_the_host_when_systemd_lists_nothing() {
        for systemd in [None, Some(""), Some("# no servers\n")] {
            let (_d, e, s) = files(Some(STUB), systemd);
            assert_eq!(host_upstreams(&e, &s), ["127.0.0.53:53".parse().unwrap()]);
            assert!(
                container_nameservers(&e, &s).is_empty(),
                "the caller decides"
            );
        }
    }

    #[test]
    fn other_servers_are_used_as_they_are() {
        // A stub beside another server: not resolved's alone, kept.
        let (_d, e, s) = files(
            Some("nameserver 127.0.0.53\nnameserver 1.1.1.1\n"),
            Some(REAL),
        );
        assert_eq!(
            host_upstreams(&e, &s),
            [
                "127.0.0.53:53".parse().unwrap(),
                "1.1.1.1:53".parse().unwrap()
            ]
        );
        assert_eq!(container_nameservers(&e, &s), [ip("1.1.1.1")]);
        // A local dnsmasq: reachable from the host only.
        let (_d, e, s) = files(
            Some("nameserver 127.0.0.1\nnameserver ::1\nnameserver 10.0.0.2\n"),
            None,
        );
        assert_eq!(host_upstreams(&e, &s).len(), 3);
        assert_eq!(container_nameservers(&e, &s), [ip("10.0.0.2")]);
        // A scope naming no interface cannot be reached; a numeric one is kept.
        let (_d, e, s) = files(
            Some("nameserver fe80::1%nosuchif0\nnameserver fe80::2%7\n"),
            None,
        );
        assert_eq!(
            host_upstreams(&e, &s),
            [SocketAddr::V6(SocketAddrV6::new(
                "fe80::2".parse().unwrap(),
                53,
                0,
                7
            ))]
        );
        assert!(container_nameservers(&e, &s).is_empty());
        // No file at all.
        let (_d, e, s) = files(None, None);
        assert!(host_upstreams(&e, &s).is_empty());
        assert!(container_nameservers(&e, &s).is_empty());
    }
}
