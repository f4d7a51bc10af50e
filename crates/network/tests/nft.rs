//! berth's nftables table with real traffic, inside network namespaces the
//! tests make (the host's interfaces and rules are never touched).
//!
//! Topology of `published_ports_masquerade_hairpin_and_isolation` (all
//! namespaces are the test's; "H" plays the host):
//!
//! ```text
//!  c1 10.91.1.2 fd91:1::2 ─┐
//!  c2 10.91.1.3           ─┼ br1 10.91.1.1 fd91:1::1 ┐
//!  a  10.91.1.9 (attacker)─┘                         │
//!  c3 10.91.2.2 ── br2 10.91.2.1                     ├ H ── hv 192.0.2.1 2001:db8:91::1 ── o 192.0.2.2 2001:db8:91::2
//!  c4 10.91.3.2 ── br3 10.91.3.1 (internal)          ┘
//! ```
//! Needs root and the nft, ip and iptables-nft programs: fails loudly
//! without them.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_network::nft::{self, NetworkRules, PortRule};
use berth_network::ports::Proto;

fn require_root() {
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    assert_eq!(
        uid, 0,
        "these tests need root (they make network namespaces and nft rules)"
    );
    for prog in ["nft", "ip"] {
        let ok = Command::new(prog).arg("-V").output().is_ok();
        assert!(ok, "these tests need the {prog} program");
    }
}

fn run(prog: &str, args: &[&str]) -> String {
    let out = Command::new(prog)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {prog} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{prog} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Named network namespaces (`ip netns add`), deleted on drop.
struct Netns {
    names: Vec<String>,
    prefix: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicUsize = AtomicUsize::new(0);
        let prefix = format!(
            "bnft{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        );
        Netns {
            names: Vec::new(),
            prefix,
        }
    }
    fn add(&mut self, short: &str) -> String {
        let name = format!("{}-{short}", self.prefix);
        run("ip", &["netns", "add", &name]);
        // Addresses usable at once (no duplicate address detection delay).
        for kv in [
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ] {
            sysctl(&name, kv);
        }
        self.names.push(name.clone());
        name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in self.names.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", n]).status();
        }
    }
}

/// Runs f on a thread that joined namespace `ns` (programs it spawns are
/// in it too).
fn in_ns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("/run/netns/{ns}");
    std::thread::scope(|s| {
        s.spawn(|| {
            enter(&path);
            f()
        })
        .join()
        .unwrap()
    })
}

fn enter(path: &str) {
    let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a descriptor we own; it changes only this thread.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Runs f on a thread in a fresh, unnamed network namespace.
fn in_new_ns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: unshare(CLONE_NEWNET) changes only this thread.
            let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "unshare: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap()
    })
}

/// A TCP server in namespace `ns` that writes each client's address (as it
/// sees it) and closes. Stops on drop.
struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    fn start(ns: &str, addr: &str) -> Server {
        let path = format!("/run/netns/{ns}");
        let addr: SocketAddr = addr.parse().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let st = stop.clone();
        let thread = std::thread::spawn(move || {
            enter(&path);
            let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            l.set_nonblocking(true).unwrap();
            tx.send(()).unwrap();
            while !st.load(Ordering::SeqCst) {
                match l.accept() {
                    Ok((mut s, peer)) => {
                        let _ = s.write_all(peer.ip().to_canonical().to_string().as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        rx.recv().unwrap();
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects from namespace `ns`; Ok(what the server saw as our address).
fn connect(ns: &str, addr: &str) -> Result<String, String> {
    let addr: SocketAddr = addr.parse().unwrap();
    in_ns(ns, || {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(1500))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).map_err(|e| e.to_string())?;
        Ok(out)
    })
}

/// Whether a datagram sent from namespace `from` to `addr` arrives at a
/// socket bound to it in namespace `to`.
fn udp_arrives(from: &str, to: &str, addr: &str) -> bool {
    udp_arrives_at(from, addr, to, addr)
}

/// Whether a datagram sent from namespace `from` to `dst` arrives at a
/// socket bound to `bind` in namespace `to`.
fn udp_arrives_at(from: &str, dst: &str, to: &str, bind: &str) -> bool {
    let addr: SocketAddr = bind.parse().unwrap();
    let dst: SocketAddr = dst.parse().unwrap();
    let path = format!("/run/netns/{to}");
    let (tx, rx) = std::sync::mpsc::channel();
    let receiver = std::thread::spawn(move || {
        enter(&path);
        let s = std::net::UdpSocket::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        tx.send(()).unwrap();
        let mut buf = [0u8; 16];
        s.recv(&mut buf).is_ok()
    });
    rx.recv().unwrap();
    in_ns(from, || {
        let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
        for _ in 0..3 {
            let _ = s.send_to(b"ping", dst);
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    receiver.join().unwrap()
}

fn reaches(ns: &str, addr: &str) -> String {
    connect(ns, addr).unwrap_or_else(|e| panic!("{ns} -> {addr} should connect: {e}"))
}

fn blocked(ns: &str, addr: &str) {
    if let Ok(saw) = connect(ns, addr) {
        panic!("{ns} -> {addr} should be blocked, but connected (server saw {saw})");
    }
}

/// A "container": namespace with eth0 (a veth into `bridge` of H).
fn container(nets: &mut Netns, h: &str, short: &str, bridge: &str, cidr: &str, gw: &str) -> String {
    let c = nets.add(short);
    let host_end = format!("v{short}");
    run(
        "ip",
        &[
            "-n", h, "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &c,
        ],
    );
    run(
        "ip",
        &["-n", h, "link", "set", &host_end, "master", bridge, "up"],
    );
    // As the link helper sets ports: with br_netfilter loaded, a DNATed
    // packet to an address on the same bridge is bridged back out of the
    // port it came in by (a container to its own published port).
    run(
        "ip",
        &[
            "-n",
            h,
            "link",
            "set",
            &host_end,
            "type",
            "bridge_slave",
            "hairpin",
            "on",
        ],
    );
    run("ip", &["-n", &c, "addr", "add", cidr, "dev", "eth0"]);
    run("ip", &["-n", &c, "link", "set", "eth0", "up"]);
    run("ip", &["-n", &c, "route", "add", "default", "via", gw]);
    c
}

fn bridge(h: &str, name: &str, cidr: &str) {
    run("ip", &["-n", h, "link", "add", name, "type", "bridge"]);
    run("ip", &["-n", h, "addr", "add", cidr, "dev", name]);
    run("ip", &["-n", h, "link", "set", name, "up"]);
}

fn sysctl(ns: &str, kv: &str) {
    run("ip", &["netns", "exec", ns, "sysctl", "-qw", kv]);
}

fn net(bridge: &str, subnets: &[&str], internal: bool) -> NetworkRules {
    NetworkRules {
        bridge: bridge.to_string(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        internal,
        ..Default::default()
    }
}

fn rule(host: Option<&str>, hp: u16, c: &str, cp: u16) -> PortRule {
    PortRule {
        host_ip: host.map(|h| h.parse::<IpAddr>().unwrap()),
        host_port: hp,
        proto: Proto::Tcp,
        container_ip: c.parse().unwrap(),
        container_port: cp,
    }
}

#[test]
fn published_ports_masquerade_hairpin_and_isolation() {
    require_root();
    let mut nets = Netns::new();
    let h = nets.add("h");
    let o = nets.add("o");
    for ns in [&h, &o] {
        run("ip", &["-n", ns, "link", "set", "lo", "up"]);
    }
    sysctl(&h, "net.ipv4.ip_forward=1");
    sysctl(&h, "net.ipv6.conf.all.forwarding=1");
    bridge(&h, "br1", "10.91.1.1/24");
    run(
        "ip",
        &[
            "-n",
            &h,
            "addr",
            "add",
            "fd91:1::1/64",
            "dev",
            "br1",
            "nodad",
        ],
    );
    bridge(&h, "br2", "10.91.2.1/24");
    bridge(&h, "br3", "10.91.3.1/24");
    // What the link helper sets on a bridge for 127.0.0.1 publishing.
    sysctl(&h, "net.ipv4.conf.br1.route_localnet=1");
    // The outside world behind a route.
    run(
        "ip",
        &[
            "-n", &h, "link", "add", "hv", "type", "veth", "peer", "name", "eth0", "netns", &o,
        ],
    );
    run(
        "ip",
        &["-n", &h, "addr", "add", "192.0.2.1/24", "dev", "hv"],
    );
    run(
        "ip",
        &[
            "-n",
            &h,
            "addr",
            "add",
            "2001:db8:91::1/64",
            "dev",
            "hv",
            "nodad",
        ],
    );
    run("ip", &["-n", &h, "link", "set", "hv", "up"]);
    run(
        "ip",
        &["-n", &o, "addr", "add", "192.0.2.2/24", "dev", "eth0"],
    );
    run(
        "ip",
        &[
            "-n",
            &o,
            "addr",
            "add",
            "2001:db8:91::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    run("ip", &["-n", &o, "link", "set", "eth0", "up"]);
    // The outside can route to the containers' subnets: so only the rules
    // (not a missing route) keep it from reaching them directly, and a
    // reply to an unmasqueraded source would still arrive.
    run(
        "ip",
        &["-n", &o, "route", "add", "10.91.0.0/16", "via", "192.0.2.1"],
    );
    run(
        "ip",
        &[
            "-n",
            &o,
            "-6",
            "route",
            "add",
            "fd91::/16",
            "via",
            "2001:db8:91::1",
        ],
    );

    let c1 = container(&mut nets, &h, "c1", "br1", "10.91.1.2/24", "10.91.1.1");
    run(
        "ip",
        &[
            "-n",
            &c1,
            "addr",
            "add",
            "fd91:1::2/64",
            "dev",
            "eth0",
            "nodad",
        ],
    );
    run(
        "ip",
        &[
            "-n",
            &c1,
            "-6",
            "route",
            "add",
            "default",
            "via",
            "fd91:1::1",
        ],
    );
    let c2 = container(&mut nets, &h, "c2", "br1", "10.91.1.3/24", "10.91.1.1");
    let c3 = container(&mut nets, &h, "c3", "br2", "10.91.2.2/24", "10.91.2.1");
    let c4 = container(&mut nets, &h, "c4", "br3", "10.91.3.2/24", "10.91.3.1");
    for c in [&c1, &c2, &c3, &c4] {
        run("ip", &["-n", c, "link", "set", "lo", "up"]);
    }

    let n1 = net("br1", &["10.91.1.0/24", "fd91:1::/64"], false);
    let n2 = net("br2", &["10.91.2.0/24"], false);
    let n3 = net("br3", &["10.91.3.0/24"], true);
    let ports = [
        rule(None, 8080, "10.91.1.2", 80),
        rule(None, 8080, "fd91:1::2", 80),
        rule(Some("127.0.0.1"), 8081, "10.91.1.2", 80),
        rule(Some("192.0.2.1"), 8082, "10.91.1.3", 80),
        rule(Some("2001:db8:91::1"), 8083, "fd91:1::2", 80),
        // Into an internal network: DNATed, still not reachable.
        rule(None, 8084, "10.91.3.2", 80),
        PortRule {
            proto: Proto::Udp,
            ..rule(None, 8085, "10.91.3.2", 9001)
        },
        PortRule {
            proto: Proto::Udp,
            ..rule(None, 8086, "10.91.1.2", 9001)
        },
    ];
    in_ns(&h, || {
        for n in [&n1, &n2, &n3] {
            nft::add_network(n).unwrap();
        }
        // Idempotent: again, and the ports twice.
        nft::add_network(&n1).unwrap();
        nft::add_ports(&ports).unwrap();
        nft::add_ports(&ports).unwrap();
        let (bridges, listed) = nft::list().unwrap();
        let mut bridges = bridges;
        bridges.sort();
        assert_eq!(bridges, ["br1", "br2", "br3"]);
        assert_eq!(listed.len(), ports.len(), "{listed:?}");
        for p in &ports {
            assert!(listed.contains(p), "{p:?} not in {listed:?}");
        }
    });

    let _s1 = Server::start(&c1, "[::]:80");
    let _s2 = Server::start(&c2, "0.0.0.0:80");
    let _s4 = Server::start(&c4, "0.0.0.0:80");
    let _so = Server::start(&o, "[::]:9000");
    let _sh = Server::start(&h, "127.0.0.1:7000");

    // From outside, by the published port: the client's own address seen.
    assert_eq!(reaches(&o, "192.0.2.1:8080"), "192.0.2.2");
    assert_eq!(reaches(&o, "192.0.2.1:8082"), "192.0.2.2"); // c2 on its host ip
    assert_eq!(reaches(&o, "[2001:db8:91::1]:8080"), "2001:db8:91::2");
    assert_eq!(reaches(&o, "[2001:db8:91::1]:8083"), "2001:db8:91::2");
    // Published on 2001:db8:91::1 only.
    blocked(&h, "[fd91:1::1]:8083");
    // 127.0.0.1:8081 is published on 127.0.0.1 only.
    blocked(&o, "192.0.2.1:8081");
    // Not published: the outside cannot address a container directly.
    blocked(&o, "10.91.1.2:80");
    blocked(&o, "10.91.3.2:80");

    // From the host itself: 127.0.0.1 (wildcard and 127.0.0.1-only) and
    // its own addresses.
    assert_eq!(reaches(&h, "127.0.0.1:8080"), "10.91.1.1");
    assert_eq!(reaches(&h, "127.0.0.1:8081"), "10.91.1.1");
    assert_eq!(reaches(&h, "192.0.2.1:8080"), "192.0.2.1");
    reaches(&h, "[2001:db8:91::1]:8080");
    reaches(&h, "192.0.2.1:8082");

    // Hairpin: a container to its own and to another's published port by
    // the host's address; masqueraded, so the reply comes back through the
    // bridge.
    assert_eq!(reaches(&c1, "192.0.2.1:8080"), "10.91.1.1");
    assert_eq!(reaches(&c2, "192.0.2.1:8080"), "10.91.1.1");
    assert_eq!(reaches(&c1, "192.0.2.1:8082"), "10.91.1.1");
    assert_eq!(reaches(&c1, "[2001:db8:91::1]:8080"), "fd91:1::1");

    // Outbound: masqueraded to the host's address.
    assert_eq!(reaches(&c1, "192.0.2.2:9000"), "192.0.2.1");
    assert_eq!(reaches(&c3, "192.0.2.2:9000"), "192.0.2.1");
    assert_eq!(reaches(&c1, "[2001:db8:91::2]:9000"), "2001:db8:91::1");

    // Same bridge: direct. Different bridges: isolated.
    assert_eq!(reaches(&c2, "10.91.1.2:80"), "10.91.1.3");
    blocked(&c3, "10.91.1.2:80");
    blocked(&c1, "10.91.3.2:80");

    // Internal: nothing outside its bridge, both ways, not even one-way
    // datagrams out or a published port in.
    blocked(&c4, "192.0.2.2:9000");
    assert!(
        udp_arrives(&c3, &o, "192.0.2.2:9001"),
        "c3 -> outside by UDP"
    );
    assert!(
        !udp_arrives(&c4, &o, "192.0.2.2:9001"),
        "internal c4 sent a datagram out"
    );
    blocked(&o, "192.0.2.1:8084");
    assert!(
        udp_arrives_at(&o, "192.0.2.1:8086", &c1, "0.0.0.0:9001"),
        "outside -> a published UDP port"
    );
    assert!(
        !udp_arrives_at(&o, "192.0.2.1:8085", &c4, "0.0.0.0:9001"),
        "a datagram reached an internal network by a published port"
    );
    blocked(&c4, "10.91.1.2:80");
    blocked(&c3, "10.91.3.2:80");

    // CVE-2020-8558: br1 has route_localnet=1, so without the guard a
    // container that routes 127.0.0.0/8 to its gateway reaches the host's
    // localhost-only services. The attacker's lo stays down (no local
    // route for 127.0.0.0/8 in it).
    let a = nets.add("a");
    run(
        "ip",
        &[
            "-n", &h, "link", "add", "va", "type", "veth", "peer", "name", "eth0", "netns", &a,
        ],
    );
    run(
        "ip",
        &["-n", &h, "link", "set", "va", "master", "br1", "up"],
    );
    run(
        "ip",
        &["-n", &a, "addr", "add", "10.91.1.9/24", "dev", "eth0"],
    );
    run("ip", &["-n", &a, "link", "set", "eth0", "up"]);
    sysctl(&a, "net.ipv4.conf.eth0.route_localnet=1");
    sysctl(&a, "net.ipv4.conf.all.route_localnet=1");
    run(
        "ip",
        &[
            "-n",
            &a,
            "route",
            "add",
            "127.0.0.0/8",
            "via",
            "10.91.1.1",
            "dev",
            "eth0",
        ],
    );
    assert_eq!(reaches(&h, "127.0.0.1:7000"), "127.0.0.1");
    blocked(&a, "127.0.0.1:7000");
    // Ports published on 127.0.0.1 are the host's alone: not through the
    // bridge (whose route_localnet lets the packet in)...
    blocked(&a, "127.0.0.1:8081");
    blocked(&a, "127.0.0.1:8080");
    // ...nor from another machine that routes 127.0.0.0/8 to the host
    // (DNAT in prerouting comes before the kernel's martian check).
    run("ip", &["-n", &o, "link", "set", "lo", "down"]);
    sysctl(&o, "net.ipv4.conf.eth0.route_localnet=1");
    sysctl(&o, "net.ipv4.conf.all.route_localnet=1");
    run(
        "ip",
        &[
            "-n",
            &o,
            "route",
            "add",
            "127.0.0.0/8",
            "via",
            "192.0.2.1",
            "dev",
            "eth0",
        ],
    );
    blocked(&o, "127.0.0.1:8081");
    blocked(&o, "127.0.0.1:8080");
    blocked(&o, "127.0.0.1:7000");
    // The routes themselves work: the host's own address is reached.
    assert_eq!(reaches(&a, "10.91.1.1:8080"), "10.91.1.1");
    assert_eq!(reaches(&o, "192.0.2.1:8080"), "192.0.2.2");

    // Unpublish: gone from outside, removing twice is fine.
    in_ns(&h, || {
        nft::remove_ports(&ports[..1]).unwrap();
        nft::remove_ports(&ports).unwrap();
        nft::remove_ports(&ports).unwrap();
        assert_eq!(nft::list().unwrap().1, vec![]);
    });
    blocked(&o, "192.0.2.1:8080");
    blocked(&h, "127.0.0.1:8081");

    // The last network removed takes the table with it.
    in_ns(&h, || {
        nft::remove_network(&n1).unwrap();
        nft::remove_network(&n1).unwrap();
        nft::remove_network(&n2).unwrap();
        assert!(nft_has_table());
        nft::remove_network(&n3).unwrap();
        assert!(!nft_has_table(), "the table outlived the last network");
        nft::remove_network(&n3).unwrap();
        nft::delete_table().unwrap();
        assert_eq!(nft::list().unwrap(), (vec![], vec![]));
    });
}

fn nft_has_table() -> bool {
    Command::new("nft")
        .args(["list", "table", "inet", "berth"])
        .output()
        .unwrap()
        .status
        .success()
}

fn table_text(family: &str, name: &str) -> String {
    run("nft", &["list", "table", family, name])
}

#[test]
fn other_rulesets_are_untouched_and_the_last_network_deletes_the_table() {
    require_root();
    let have_iptables = Command::new("iptables-nft").arg("-V").output().is_ok();
    in_new_ns(|| {
        // Someone else's rules: Docker-like iptables-nft rules (FORWARD
        // policy DROP) if the program is here, and an nft table of another
        // name, with sets and elements.
        if have_iptables {
            run("iptables-nft", &["-P", "FORWARD", "DROP"]);
            run(
                "iptables-nft",
                &["-A", "FORWARD", "-s", "10.99.0.0/16", "-j", "ACCEPT"],
            );
            run(
                "iptables-nft",
                &[
                    "-t",
                    "nat",
                    "-A",
                    "POSTROUTING",
                    "-s",
                    "10.99.0.0/16",
                    "-j",
                    "MASQUERADE",
                ],
            );
        }
        run("nft", &["add", "table", "inet", "other"]);
        run(
            "nft",
            &["add", "set", "inet", "other", "bridges", "{ type ifname; }"],
        );
        run(
            "nft",
            &["add", "element", "inet", "other", "bridges", "{ \"br1\" }"],
        );
        run(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                "other",
                "keep",
                "{ type filter hook forward priority 0; }",
            ],
        );
        run(
            "nft",
            &[
                "add", "rule", "inet", "other", "keep", "iifname", "@bridges", "counter", "accept",
            ],
        );
        let snapshot = || {
            let mut s = table_text("inet", "other");
            if have_iptables {
                s += &table_text("ip", "filter");
                s += &table_text("ip", "nat");
            }
            s
        };
        let before = snapshot();

        // An older berth's table (no rules_v1 set, other rules): the next
        // add_network rewrites berth's chains.
        run("nft", &["add", "table", "inet", "berth"]);
        run(
            "nft",
            &["add", "set", "inet", "berth", "bridges", "{ type ifname; }"],
        );
        run(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                "berth",
                "forward",
                "{ type filter hook forward priority 0; }",
            ],
        );
        run(
            "nft",
            &[
                "add", "rule", "inet", "berth", "forward", "counter", "drop", "comment", "\"old\"",
            ],
        );

        let n1 = net("br1", &["10.91.1.0/24"], false);
        let n2 = net("br2", &["10.91.2.0/24", "fd91:2::/64"], true);
        nft::add_network(&n1).unwrap();
        let fwd = run("nft", &["list", "chain", "inet", "berth", "forward"]);
        assert!(!fwd.contains("old"), "the old rules stayed: {fwd}");
        let rules = rule_count();
        nft::add_network(&n2).unwrap(); // by netlink: the table is current
        nft::add_network(&n2).unwrap();
        assert_eq!(rule_count(), rules);
        // A non-internal network by netlink: its subnets as nft shows them.
        let n4 = net("br4", &["10.91.4.0/24", "fd91:4::/64"], false);
        nft::add_network(&n4).unwrap();
        let masq = run("nft", &["list", "set", "inet", "berth", "masq4"])
            + &run("nft", &["list", "set", "inet", "berth", "masq6"]);
        assert!(masq.contains("10.91.1.0/24"), "{masq}");
        assert!(masq.contains("10.91.4.0/24"), "{masq}");
        assert!(masq.contains("fd91:4::/64"), "{masq}");
        assert!(
            !masq.contains("fd91:2::"),
            "an internal network is masqueraded: {masq}"
        );
        nft::remove_network(&n4).unwrap();
        let masq = run("nft", &["list", "set", "inet", "berth", "masq4"])
            + &run("nft", &["list", "set", "inet", "berth", "masq6"]);
        assert!(
            !masq.contains("10.91.4.0") && !masq.contains("fd91:4::"),
            "{masq}"
        );
        assert_eq!(rule_count(), rules);
        let same = run("nft", &["list", "set", "inet", "berth", "same"]);
        assert!(same.contains("\"br2\" . \"br2\""), "{same}");
        let internal = run("nft", &["list", "set", "inet", "berth", "internal"]);
        assert!(internal.contains("\"br2\""), "{internal}");
        // An overlapping subnet is refused, inside or around another (the
        // very same subnet is an existing element: IPAM refuses that one).
        for sub in ["10.91.1.128/25", "10.91.0.0/16"] {
            let e = nft::add_network(&net("br3", &[sub], false)).unwrap_err();
            assert!(
                matches!(e, berth_network::Error::Conflict(_)),
                "{sub}: {e:?}"
            );
        }
        let p = [
            rule(None, 8080, "10.91.1.2", 80),
            rule(Some("::"), 53, "fd91:2::2", 53),
        ];
        nft::add_ports(&p).unwrap();
        // The same key to another container is a conflict, not a silent swap.
        let e = nft::add_ports(&[rule(None, 8080, "10.91.1.3", 80)]).unwrap_err();
        assert!(matches!(e, berth_network::Error::Conflict(_)), "{e:?}");
        assert!(!e.to_string().contains('\n'), "{e}");
        assert_eq!(snapshot(), before);
        // A stale rule (the same host port, another container) removes
        // nothing: the port stays published to its container.
        nft::remove_ports(&[rule(None, 8080, "10.91.1.3", 80)]).unwrap();
        let listed = nft::list().unwrap().1;
        assert!(listed.contains(&p[0]), "{listed:?}");

        nft::remove_ports(&p).unwrap();
        assert_eq!(nft::list().unwrap().1, vec![]);
        nft::remove_network(&n1).unwrap();
        assert!(nft_has_table());
        assert_eq!(snapshot(), before);
        nft::remove_network(&n2).unwrap();
        assert!(!nft_has_table(), "the table outlived the last network");
        assert_eq!(snapshot(), before);

        // An older berth's table (no rules_v1): remove_network falls back to
        // nft, removes what is there and the table with its last network.
        run("nft", &["add", "table", "inet", "berth"]);
        run(
            "nft",
            &["add", "set", "inet", "berth", "bridges", "{ type ifname; }"],
        );
        run(
            "nft",
            &[
                "add",
                "set",
                "inet",
                "berth",
                "same",
                "{ type ifname . ifname; }",
            ],
        );
        run(
            "nft",
            &["add", "element", "inet", "berth", "bridges", "{ \"br9\" }"],
        );
        nft::remove_network(&net("br9", &["10.91.9.0/24"], false)).unwrap();
        assert!(
            !nft_has_table(),
            "the older table outlived its last network"
        );

        // Ports without the table: a clear error; removing them is fine.
        let e = nft::add_ports(&p).unwrap_err().to_string();
        assert!(e.contains("berth's nft table is missing"), "{e}");
        nft::remove_ports(&p).unwrap();
        nft::delete_table().unwrap();
        assert_eq!(snapshot(), before);

        // No table: removing a network no container has used (`network
        // create` + `network rm`) runs no nft program.
        let runs = nft::programs_run();
        nft::remove_network(&net("br8", &["10.91.8.0/24"], false)).unwrap();
        assert_eq!(
            nft::programs_run(),
            runs,
            "remove_network ran nft without a table"
        );
        assert!(!nft_has_table());
    });
    assert!(
        have_iptables,
        "iptables-nft is not installed: the iptables-nft part was not checked"
    );
}

fn rule_count() -> usize {
    let out = run("nft", &["-j", "list", "table", "inet", "berth"]);
    out.matches("\"rule\":").count()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The cost of a container's ports and of a network (printed; run with
/// --nocapture), and the rules do not grow with the containers.
#[test]
fn cost_per_container_is_elements_only() {
    require_root();
    in_new_ns(|| {
        let mut add_net = Vec::new();
        let mut first = Duration::ZERO;
        for i in 0..21 {
            let n = net(&format!("br{i}"), &[&format!("10.{i}.0.0/24")], false);
            let t = Instant::now();
            nft::add_network(&n).unwrap();
            if i == 0 {
                first = t.elapsed();
            } else {
                add_net.push(t.elapsed());
            }
        }
        let rules = rule_count();
        let rule_pair = |i: u16| {
            let c = format!("10.0.0.{}", 2 + i % 250);
            [
                rule(None, 10000 + i, &c, 80),
                rule(Some("127.0.0.1"), 20000 + i, &c, 80),
            ]
        };
        let mut add = Vec::new();
        for i in 0..100u16 {
            let t = Instant::now();
            nft::add_ports(&rule_pair(i)).unwrap();
            add.push(t.elapsed());
        }
        assert_eq!(rule_count(), rules, "per-container changes added rules");
        assert_eq!(nft::list().unwrap().1.len(), 200);
        let mut rm = Vec::new();
        for i in 0..100u16 {
            let t = Instant::now();
            nft::remove_ports(&rule_pair(i)).unwrap();
            rm.push(t.elapsed());
        }
        assert_eq!(nft::list().unwrap().1.len(), 0);
        let mut rm_net = Vec::new();
        for i in (0..21).rev() {
            let n = net(&format!("br{i}"), &[&format!("10.{i}.0.0/24")], false);
            let t = Instant::now();
            nft::remove_network(&n).unwrap();
            rm_net.push(t.elapsed());
        }
        assert!(!nft_has_table());
        let rm_net = median(rm_net);
        let (add_net, add, rm) = (median(add_net), median(add), median(rm));
        eprintln!(
            "nft cost: first add_network (nft writes the table) {first:?}; medians: add_network {add_net:?}, add_ports (2 ports) {add:?}, remove_ports {rm:?}, remove_network {rm_net:?}"
        );
        // Ports go over netlink, tens of microseconds (a spawn of nft is
        // milliseconds: this fails if they ever spawn nft again). Generous
        // for a loaded 2-core machine.
        assert!(add < Duration::from_millis(2), "add_ports took {add:?}");
        assert!(rm < Duration::from_millis(2), "remove_ports took {rm:?}");
        assert!(
            add_net < Duration::from_millis(2),
            "add_network took {add_net:?}"
        );
        nft::delete_table().unwrap();
    });
}

/// A namespace joined to `h` by a veth (no bridge): `h_end` with `h_cidr`
/// in `h`, eth0 with `cidr` inside, default route via `gw`.
fn routed(
    nets: &mut Netns,
    h: &str,
    short: &str,
    h_end: &str,
    h_cidr: &str,
    cidr: &str,
    gw: &str,
) -> String {
    let n = nets.add(short);
    run("ip", &["-n", &n, "link", "set", "lo", "up"]);
    run(
        "ip",
        &[
            "-n", h, "link", "add", h_end, "type", "veth", "peer", "name", "eth0", "netns", &n,
        ],
    );
    run("ip", &["-n", h, "addr", "add", h_cidr, "dev", h_end]);
    run("ip", &["-n", h, "link", "set", h_end, "up"]);
    run("ip", &["-n", &n, "addr", "add", cidr, "dev", "eth0"]);
    run("ip", &["-n", &n, "link", "set", "eth0", "up"]);
    run("ip", &["-n", &n, "route", "add", "default", "via", gw]);
    n
}

/// Review finding: berth turns forwarding on for its bridges; the host must
/// not become a router between its other interfaces. With the guard (the
/// families berth turned on), traffic between two non-bridge interfaces is
/// dropped, while containers still reach the outside, another program's
/// bridge still routes, and removing the network keeps nothing behind.
#[test]
fn forwarding_guard_drops_routing_between_other_interfaces_only() {
    require_root();
    let mut nets = Netns::new();
    let h = nets.add("h");
    run("ip", &["-n", &h, "link", "set", "lo", "up"]);
    sysctl(&h, "net.ipv4.ip_forward=1");
    let a = routed(
        &mut nets,
        &h,
        "a",
        "va",
        "192.0.2.1/24",
        "192.0.2.2/24",
        "192.0.2.1",
    );
    let b = routed(
        &mut nets,
        &h,
        "b",
        "vb",
        "198.51.100.1/24",
        "198.51.100.2/24",
        "198.51.100.1",
    );
    bridge(&h, "br1", "10.93.1.1/24");
    let c = container(&mut nets, &h, "c", "br1", "10.93.1.2/24", "10.93.1.1");
    // Another program's bridge (not berth's) with its own client.
    bridge(&h, "other0", "10.94.1.1/24");
    let d = container(&mut nets, &h, "d", "other0", "10.94.1.2/24", "10.94.1.1");
    let _sb = Server::start(&b, "198.51.100.2:8080");

    // Forwarding was on before berth: no guard, the host routes as before.
    in_ns(&h, || {
        nft::add_network(&net("br1", &["10.93.1.0/24"], false)).unwrap()
    });
    reaches(&a, "198.51.100.2:8080");
    // berth turned it on itself: the guard.
    let guarded = NetworkRules {
        guard4: true,
        ..net("br1", &["10.93.1.0/24"], false)
    };
    in_ns(&h, || nft::add_network(&guarded).unwrap());
    blocked(&a, "198.51.100.2:8080");
    // A container of berth's still goes out (masqueraded), another
    // bridge's client too.
    assert_eq!(reaches(&c, "198.51.100.2:8080"), "198.51.100.1");
    reaches(&d, "198.51.100.2:8080");
    // Removing one network of two keeps the guard; the last takes the
    // table (and the guard) with it.
    bridge(&h, "br2", "10.93.2.1/24");
    in_ns(&h, || {
        nft::add_network(&net("br2", &["10.93.2.0/24"], false)).unwrap();
        nft::remove_network(&guarded).unwrap();
    });
    blocked(&a, "198.51.100.2:8080");
    in_ns(&h, || {
        nft::remove_network(&net("br2", &["10.93.2.0/24"], false)).unwrap()
    });
    assert!(!in_ns(&h, nft_has_table));
    reaches(&a, "198.51.100.2:8080");
}
