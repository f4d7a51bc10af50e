//! Bridge networks end to end: real bridges, veth pairs, nftables rules and
//! berth's DNS responder, with real traffic.
//!
//! Every test makes its own world and touches nothing of the host's: a
//! network namespace "host" in which every berth command runs (so its
//! bridges, rules and DNS responder live there), and a namespace "outside"
//! behind a veth pair, as the rest of the world (192.0.2.0/24 and
//! 2001:db8:1::/64, documentation addresses). Traffic goes only to those
//! namespaces and to the containers the test made.

mod common;

use common::world::*;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// A TCP server in namespace `ns` on `addr`: answers each connection with
/// "peer=IP\n" (the source it saw), for 30 s (its thread is not waited
/// for).
fn peer_echo(ns: &Path, addr: &str) {
    let ns = ns.to_path_buf();
    let addr = addr.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    let h = std::thread::spawn(move || {
        let f = std::fs::File::open(&ns).unwrap();
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        let l = std::net::TcpListener::bind(&addr).unwrap();
        l.set_nonblocking(true).unwrap();
        tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let Ok((mut s, peer)) = l.accept() else {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            };
            let _ = s.set_nonblocking(false);
            let mut buf = [0u8; 1024];
            let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = s.read(&mut buf);
            let body = format!("peer={}\n", peer.ip());
            let _ = write!(
                s,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    rx.recv().unwrap();
    drop(h);
}

#[test]
fn containers_reach_each_other_by_address_and_name_and_the_outside_masqueraded() {
    let w = World::new();
    w.berth(&["network", "create", "app"]).ok();
    w.web("web", &["--network", "app", "--network-alias", "www"]);
    let ip = w.ip("web");
    let id = w.berth(&["inspect", "-f", "{{.Id}}", "web"]).ok().stdout;
    let id = id.trim();
    // A container that joins its network namespace (a staged start in
    // the runtime, whose stage process places itself) is in its own
    // cgroup in every hierarchy.
    let o = w.berth(&["exec", "web", "cat", "/proc/1/cgroup"]).ok();
    for l in o.stdout.lines() {
        assert!(l.ends_with(&format!("/{id}")), "{}", o.stdout);
    }
    for host in [
        ip.as_str(),
        "web",
        "www",
        &id[..12],
        &id[..20],
        "web.dns.berth",
    ] {
        let o = w.in_container(
            &["--network", "app"],
            &format!("timeout 3 wget -q -O - http://{host}/"),
        );
        assert_eq!(o.stdout, "hello-web\n", "{host}: {}", o.stderr);
    }
    // Outbound, masqueraded behind the host's address.
    peer_echo(&w.ns("outside"), &format!("{OUTSIDE4}:9000"));
    let o = w.in_container(
        &["--network", "app"],
        &format!("timeout 3 wget -q -O - http://{OUTSIDE4}:9000/"),
    );
    assert_eq!(o.stdout, format!("peer={HOST4}\n"), "{}", o.stderr);
    // The default bridge too, and it has no DNS (Docker's default bridge).
    let o = w.in_container(
        &[],
        &format!("timeout 3 wget -q -O - http://{OUTSIDE4}:9000/"),
    );
    assert_eq!(o.stdout, format!("peer={HOST4}\n"), "{}", o.stderr);
    let o = w.in_container(&[], "cat /etc/resolv.conf; nslookup web");
    assert_ne!(
        o.code, 0,
        "the default bridge resolved a name: {}",
        o.stdout
    );
    assert!(!o.stdout.contains("dns.berth"), "{}", o.stdout);
    // inspect and ps show the network.
    let n = w
        .berth(&[
            "inspect",
            "-f",
            "{{.HostConfig.NetworkMode}} {{.NetworkSettings.Networks.app.IPAddress}}",
            "web",
        ])
        .ok();
    assert_eq!(n.stdout.trim(), format!("app {ip}"));
}

#[test]
fn published_ports_from_outside_from_the_host_and_by_hairpin() {
    let w = World::new();
    w.berth(&["network", "create", "app"]).ok();
    w.web(
        "web",
        &[
            "--network",
            "app",
            "-p",
            "8080:80",
            "-p",
            "127.0.0.1:8081:80",
            "-p",
            "80",
        ],
    );
    let ports = w.berth(&["port", "web"]).ok().stdout;
    assert!(ports.contains("80/tcp -> 0.0.0.0:8080"), "{ports}");
    assert!(ports.contains("80/tcp -> 127.0.0.1:8081"), "{ports}");
    let random: u16 = ports
        .lines()
        .filter_map(|l| l.strip_prefix("80/tcp -> 0.0.0.0:"))
        .find(|p| *p != "8080")
        .expect("a port chosen for -p 80")
        .parse()
        .unwrap();
    let ps = w.berth(&["ps", "--format", "{{.Ports}}"]).ok().stdout;
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    // The published ports are held (as podman's conmon and docker-proxy
    // do): no other program on the host can take them.
    assert_eq!(w.bind_in("host", "0.0.0.0:8080"), Err(libc::EADDRINUSE));
    assert_eq!(w.bind_in("host", "127.0.0.1:8081"), Err(libc::EADDRINUSE));
    assert_eq!(
        w.bind_in("host", &format!("0.0.0.0:{random}")),
        Err(libc::EADDRINUSE)
    );
    let want = Some("hello-web\n".to_string());
    assert_eq!(
        w.fetch_from("outside", &format!("http://{HOST4}:8080/")),
        want
    );
    assert_eq!(
        w.fetch_from("outside", &format!("http://{HOST4}:{random}/")),
        want
    );
    assert_eq!(w.fetch_from("host", "http://127.0.0.1:8080/"), want);
    assert_eq!(w.fetch_from("host", &format!("http://{HOST4}:8080/")), want);
    assert_eq!(w.fetch_from("host", "http://127.0.0.1:8081/"), want);
    // 127.0.0.1 only: not from outside.
    assert_eq!(
        w.fetch_from("outside", &format!("http://{HOST4}:8081/")),
        None
    );
    // Hairpin: the container to its own published port, and a neighbour.
    let o = w.berth(&[
        "exec",
        "web",
        "timeout",
        "3",
        "wget",
        "-q",
        "-O",
        "-",
        &format!("http://{HOST4}:8080/"),
    ]);
    assert_eq!(o.stdout, "hello-web\n", "{}", o.stderr);
    let o = w.in_container(
        &["--network", "app"],
        &format!("timeout 3 wget -q -O - http://{HOST4}:8080/"),
    );
    assert_eq!(o.stdout, "hello-web\n", "{}", o.stderr);
    // The host port taken: by another container (at create) or a program.
    let o = w.berth(&[
        "create",
        "--network",
        "app",
        "-p",
        "8080:80",
        w.image,
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("8080"), "{}", o.stderr);
    let f = std::fs::File::open(w.ns("host")).unwrap();
    let listener = std::thread::spawn(move || {
        // SAFETY: a valid namespace fd; only this thread changes namespace.
        assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
        std::net::TcpListener::bind("0.0.0.0:8090").unwrap()
    })
    .join()
    .unwrap();
    let o = w.berth(&[
        "run",
        "-d",
        "--network",
        "app",
        "-p",
        "8090:80",
        w.image,
        "sleep",
        "9",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("8090") && o.stderr.contains("in use"),
        "{}",
        o.stderr
    );
    drop(listener);
    // -P publishes the exposed ports.
    w.web("all", &["--network", "app", "--expose", "80", "-P"]);
    let ports = w.berth(&["port", "all", "80"]).ok().stdout;
    let port = ports.trim().rsplit(':').next().unwrap().to_string();
    assert_eq!(
        w.fetch_from("outside", &format!("http://{HOST4}:{port}/")),
        Some("hello-all\n".into())
    );
    // Stopped, the ports go (free for any program); started again, they
    // come back.
    w.berth(&["stop", "-t", "1", "web"]).ok();
    assert_eq!(w.fetch_from("host", "http://127.0.0.1:8080/"), None);
    assert_eq!(w.bind_in("host", "0.0.0.0:8080"), Ok(()));
    assert!(
        !w.ruleset().contains(":8080") && !w.ruleset().contains(" 8080 "),
        "{}",
        w.ruleset()
    );
    w.berth(&["start", "web"]).ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.fetch_from("host", "http://127.0.0.1:8080/").is_none() {
        assert!(
            Instant::now() < deadline,
            "web does not answer after a restart: {} {} {}",
            w.berth(&["port", "web"]).stdout,
            w.berth(&["ps", "-a"]).stdout,
            w.ruleset()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn networks_are_isolated_and_internal_ones_reach_nothing_outside() {
    let w = World::new();
    w.berth(&["network", "create", "a"]).ok();
    w.berth(&["network", "create", "b"]).ok();
    w.berth(&["network", "create", "--internal", "i"]).ok();
    w.web("on-b", &["--network", "b"]);
    w.web("on-i", &["--network", "i"]);
    let b_ip = w.ip("on-b");
    let o = w.in_container(
        &["--network", "a"],
        &format!("timeout 2 wget -q -O - http://{b_ip}/"),
    );
    assert_ne!(o.code, 0, "network a reached network b: {}", o.stdout);
    // Not by name either: b's names are b's.
    let o = w.in_container(&["--network", "a"], "nslookup on-b");
    assert_ne!(o.code, 0, "{}", o.stdout);
    // The internal network: its peers by name, nothing outside.
    let o = w.in_container(&["--network", "i"], "timeout 3 wget -q -O - http://on-i/");
    assert_eq!(o.stdout, "hello-on-i\n", "{}", o.stderr);
    peer_echo(&w.ns("outside"), &format!("{OUTSIDE4}:9001"));
    let o = w.in_container(
        &["--network", "i"],
        &format!("timeout 2 wget -q -O - http://{OUTSIDE4}:9001/"),
    );
    assert_ne!(
        o.code, 0,
        "an internal network reached the outside: {}",
        o.stdout
    );
    let o = w.in_container(
        &["--network", "i"],
        &format!("timeout 2 wget -q -O - http://{b_ip}/"),
    );
    assert_ne!(
        o.code, 0,
        "an internal network reached network b: {}",
        o.stdout
    );
    // The outside cannot reach a container's address either.
    w.in_ns(
        "outside",
        &["ip", "route", "add", "10.0.0.0/8", "via", HOST4],
    );
    assert_eq!(w.fetch_from("outside", &format!("http://{b_ip}/")), None);
}

#[test]
fn ipv6_networks_give_addresses_routes_and_published_ports() {
    let w = World::new();
    w.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:db8:5::/64",
        "--subnet",
        "10.77.0.0/24",
        "six",
    ])
    .ok();
    w.web("web6", &["--network", "six", "-p", "8086:80"]);
    let v6 = w
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.GlobalIPv6Address}}",
            "web6",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    assert!(v6.starts_with("fd00:db8:5::"), "{v6}");
    let o = w.in_container(
        &["--network", "six"],
        &format!("timeout 3 wget -q -O - http://[{v6}]/"),
    );
    assert_eq!(o.stdout, "hello-web6\n", "{}", o.stderr);
    let o = w.in_container(&["--network", "six"], "nslookup -type=AAAA web6");
    assert!(o.stdout.contains(&v6), "{}{}", o.stdout, o.stderr);
    assert_eq!(
        w.fetch_from("outside", &format!("http://[{HOST6}]:8086/")),
        Some("hello-web6\n".into())
    );
    let o = w.in_container(&["--network", "six"], "ip -6 route");
    assert!(
        o.stdout.contains("default via fd00:db8:5::1"),
        "{}",
        o.stdout
    );
}

#[test]
fn dns_sees_connect_disconnect_rename_and_removal_at_once() {
    let w = World::new();
    w.berth(&["network", "create", "front"]).ok();
    w.berth(&["network", "create", "back"]).ok();
    w.web("api", &["--network", "front"]);
    let resolves = |net: &str, name: &str| {
        w.in_container(&["--network", net], &format!("nslookup {name}"))
            .code
            == 0
    };
    assert!(resolves("front", "api"));
    assert!(!resolves("back", "api"));
    w.berth(&["network", "connect", "--alias", "service", "back", "api"])
        .ok();
    assert!(resolves("back", "service"));
    let o = w.in_container(&["--network", "back"], "timeout 3 wget -q -O - http://api/");
    assert_eq!(o.stdout, "hello-api\n", "{}", o.stderr);
    // A container on both networks asks its first network's responder and
    // still resolves a name of the second (as Docker's resolver does);
    // one on front alone does not.
    w.web("cache", &["--network", "back"]);
    let both = w.in_container(
        &["--network", "front", "--network", "back"],
        "timeout 3 wget -q -O - http://cache/",
    );
    assert_eq!(both.stdout, "hello-cache\n", "{}", both.stderr);
    assert!(!resolves("front", "cache"));
    w.berth(&["rm", "-f", "cache"]).ok();
    let inspect = w
        .berth(&["network", "inspect", "-f", "{{len .Containers}}", "back"])
        .ok();
    assert_eq!(inspect.stdout.trim(), "1");
    w.berth(&["network", "disconnect", "back", "api"]).ok();
    assert!(!resolves("back", "api") && !resolves("back", "service"));
    w.berth(&["rename", "api", "api2"]).ok();
    assert!(resolves("front", "api2"));
    assert!(!resolves("front", "api"));
    w.berth(&["rm", "-f", "api2"]).ok();
    assert!(!resolves("front", "api2"));
}

#[test]
fn network_commands_and_their_errors() {
    let w = World::new();
    // A host that does not route (a new namespace inherits the real
    // host's setting): see the forwarding guard below.
    w.in_ns("host", &["sysctl", "-qw", "net.ipv4.ip_forward=0"]);
    let id = w
        .berth(&[
            "network",
            "create",
            "--subnet",
            "10.66.0.0/29",
            "--label",
            "team=a",
            "small",
        ])
        .ok()
        .stdout;
    assert_eq!(id.trim().len(), 64);
    let ls = w
        .berth(&["network", "ls", "--format", "{{.Name}} {{.Driver}}"])
        .ok()
        .stdout;
    assert!(
        ls.contains("small bridge") && ls.contains("bridge bridge"),
        "{ls}"
    );
    // Docker's predefined networks: listed, builtin, never dangling, never
    // removed or connected; `none` shows its running containers.
    assert!(ls.contains("host host") && ls.contains("none null"), "{ls}");
    let builtin = w
        .berth(&[
            "network",
            "ls",
            "--filter",
            "type=builtin",
            "--format",
            "{{.Name}}",
        ])
        .ok()
        .stdout;
    let mut builtin: Vec<&str> = builtin.lines().collect();
    builtin.sort();
    assert_eq!(builtin, ["bridge", "host", "none"]);
    let dangling = w
        .berth(&[
            "network",
            "ls",
            "--filter",
            "dangling=true",
            "--format",
            "{{.Name}}",
        ])
        .ok()
        .stdout;
    assert_eq!(dangling.trim(), "small");
    let o = w.berth(&["network", "rm", "host"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr
            .contains("host is a pre-defined network and cannot be removed"),
        "{}",
        o.stderr
    );
    w.berth(&[
        "run",
        "-d",
        "--name",
        "lonely",
        "--network",
        "none",
        w.image,
        "sleep",
        "60",
    ])
    .ok();
    let on_none = w
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .Containers}}{{.Name}}{{end}} {{.Driver}}",
            "none",
        ])
        .ok()
        .stdout;
    assert_eq!(on_none.trim(), "lonely null");
    let o = w.berth(&["network", "connect", "host", "lonely"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("pre-defined"), "{}", o.stderr);
    // --network none is never connected (as Docker refuses)...
    let o = w.berth(&["network", "connect", "small", "lonely"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--network none"), "{}", o.stderr);
    w.berth(&["rm", "-f", "lonely"]).ok();
    // ...but a container disconnected from its last network is, as
    // docker-compose does with each container it creates.
    w.berth(&[
        "create",
        "--name",
        "comp",
        "--network",
        "small",
        w.image,
        "true",
    ])
    .ok();
    w.berth(&["network", "disconnect", "small", "comp"]).ok();
    w.berth(&["network", "connect", "--alias", "svc", "small", "comp"])
        .ok();
    let nets = w
        .berth(&[
            "inspect",
            "-f",
            "{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}",
            "comp",
        ])
        .ok()
        .stdout;
    assert_eq!(nets.trim(), "small");
    w.berth(&["rm", "comp"]).ok();
    let f = w
        .berth(&["network", "ls", "-q", "--filter", "label=team=a"])
        .ok()
        .stdout;
    assert_eq!(f.trim(), &id.trim()[..12]);
    let json: serde_json::Value =
        serde_json::from_str(&w.berth(&["network", "ls", "--format", "json"]).ok().stdout).unwrap();
    assert!(json
        .as_array()
        .unwrap()
        .iter()
        .any(|n| n["Name"] == "small"));
    let cfg = w
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}}",
            "small",
        ])
        .ok()
        .stdout;
    assert_eq!(cfg.trim(), "10.66.0.0/29 10.66.0.1");
    // One line each: overlap, outside the subnet, unknown network, in use,
    // exhausted.
    let o = w.berth(&["network", "create", "--subnet", "10.66.0.0/24", "big"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("10.66.0.0") && o.stderr.lines().count() == 1,
        "{}",
        o.stderr
    );
    let o = w.berth(&[
        "create",
        "--network",
        "small",
        "--ip",
        "10.9.9.9",
        w.image,
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("10.9.9.9"), "{}", o.stderr);
    let o = w.berth(&["create", "--network", "nosuch", w.image, "true"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("nosuch") && o.stderr.contains("not found"),
        "{}",
        o.stderr
    );
    // A /29: network, gateway, broadcast and five containers.
    for i in 0..5 {
        w.berth(&[
            "create",
            "--name",
            &format!("c{i}"),
            "--network",
            "small",
            w.image,
            "true",
        ])
        .ok();
    }
    let o = w.berth(&["create", "--network", "small", w.image, "true"]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("no free"), "{}", o.stderr);
    let o = w.berth(&["network", "rm", "small"]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("in use") && o.stderr.contains("c0"),
        "{}",
        o.stderr
    );
    w.berth(&["rm", "c0", "c1", "c2", "c3", "c4"]).ok();
    // Released on removal: a container gets an address again.
    w.berth(&[
        "create",
        "--name",
        "again",
        "--network",
        "small",
        w.image,
        "true",
    ])
    .ok();
    // As Docker: a container that does not run shows its network, no
    // address (berth holds one for it all the same).
    let shown = w
        .berth(&[
            "inspect",
            "-f",
            "{{.NetworkSettings.Networks.small.IPAddress}}|{{.NetworkSettings.Networks.small.NetworkID}}|{{.NetworkSettings.IPAddress}}",
            "again",
        ])
        .ok()
        .stdout;
    assert_eq!(shown.trim(), format!("|{}|", id.trim()));
    w.berth(&["rm", "again"]).ok();
    let o = w.berth(&["network", "rm", "bridge"]);
    assert_ne!(o.code, 0);
    // Removing the last network removes berth's table. The host's
    // forwarding was off (a new namespace's default): berth turned it on,
    // guarded (review finding: the host must not route between its other
    // interfaces), and turns it off again with its last network.
    let forwarding = || {
        w.in_ns("host", &["cat", "/proc/sys/net/ipv4/ip_forward"])
            .stdout
    };
    w.web("xx", &["--network", "small"]);
    assert!(w.ruleset().contains("table inet berth"));
    assert_eq!(forwarding().trim(), "1");
    let guard = w.ruleset();
    let guard = guard.split("set guard").nth(1).unwrap_or_default();
    assert!(
        guard
            .split('}')
            .next()
            .unwrap_or_default()
            .contains("elements = { ipv4"),
        "{}",
        w.ruleset()
    );
    w.berth(&["rm", "-f", "xx"]).ok();
    // The record goes at once; the bridges, elements and table go in the
    // `network gc` that rm starts, in the background.
    w.berth(&["network", "rm", "small"]).ok();
    let deadline = Instant::now() + Duration::from_secs(5);
    while w.ruleset().contains("table inet berth") || forwarding().trim() != "0" {
        assert!(
            Instant::now() < deadline,
            "left after network rm: forwarding {}, {}",
            forwarding(),
            w.ruleset()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!w.run_root_has("networks-removed"));
    assert_eq!(w.berth(&["network", "prune", "-f"]).ok().stdout, "");
    // A network made again at once with the removed one's bridge name and
    // subnet (its bridge maybe not yet deleted) is made.
    for round in 0..4 {
        if round > 0 {
            w.berth(&["network", "rm", "same"]).ok();
        }
        w.berth(&[
            "network",
            "create",
            "--subnet",
            "10.99.0.0/24",
            "-o",
            "com.docker.network.bridge.name=brsame",
            "same",
        ])
        .ok();
        w.berth(&["run", "--rm", "--network", "same", w.image, "true"])
            .ok();
    }
    w.berth(&["network", "rm", "same"]).ok();
}

/// A kill -9 of `berth run` at any moment of setup, then one berth command:
/// nothing is left of the killed runs (no veth, netns, nft element, DNS
/// name, address).
#[test]
fn a_kill_9_during_setup_is_reconciled_by_the_next_command() {
    let w = World::new();
    w.berth(&["network", "create", "app"]).ok();
    w.web("keeper", &["--network", "app", "-p", "8000:80"]);
    for i in 0..12u64 {
        let mut c = w.berth_cmd();
        c.args([
            "run",
            "-d",
            "--name",
            &format!("k{i}"),
            "--network",
            "app",
            "-p",
        ])
        .arg(format!("{}:80", 8100 + i))
        .args([w.image, "sleep", "600"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        std::thread::sleep(Duration::from_millis(3 * i));
        // nsenter execs berth: the pid is berth's.
        let _ = child.kill();
        let _ = child.wait();
    }
    // The next command reconciles; then only running containers hold
    // anything.
    w.berth(&["network", "ls"]).ok();
    let ps = w
        .berth(&["ps", "-a", "--format", "{{.Names}} {{.State}}"])
        .ok()
        .stdout;
    let running: Vec<&str> = ps
        .lines()
        .filter(|l| l.ends_with(" running"))
        .map(|l| l.split(' ').next().unwrap())
        .collect();
    assert!(running.contains(&"keeper"), "{ps}");
    let files = w.netns_files();
    assert_eq!(
        files.len(),
        running.len() * 2,
        "netns files {files:?} for {running:?}"
    );
    assert_eq!(
        w.veths_settled(running.len()).len(),
        running.len(),
        "veths {:?} for {running:?}",
        w.veths()
    );
    let rules = w.ruleset();
    for i in 0..12u64 {
        let name = format!("k{i}");
        let port = 8100 + i;
        if !running.contains(&name.as_str()) {
            assert!(
                !rules.contains(&format!(" {port} ")),
                "port {port} of a dead run: {rules}"
            );
        }
    }
    // Removing everything leaves nothing at all.
    for line in ps.lines() {
        let n = line.split(' ').next().unwrap();
        w.berth(&["rm", "-f", n]).ok();
    }
    assert!(w.netns_files().is_empty(), "{:?}", w.netns_files());
    assert!(w.veths_settled(0).is_empty(), "{:?}", w.veths());
    let inspect = w
        .berth(&["network", "inspect", "-f", "{{len .Containers}}", "app"])
        .ok();
    assert_eq!(inspect.stdout.trim(), "0");
    w.web("fresh", &["--network", "app"]);
    let inspect = w
        .berth(&["network", "inspect", "-f", "{{len .Containers}}", "app"])
        .ok();
    assert_eq!(inspect.stdout.trim(), "1");
    let dns = std::fs::read_dir(w.env.run_root.path().join("dns")).unwrap();
    for e in dns.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") {
            let t = std::fs::read_to_string(e.path()).unwrap();
            assert!(!t.contains("\"k"), "a dead run's name in {name}: {t}");
        }
    }
}

#[test]
fn a_hundred_containers_on_one_network() {
    let w = World::new();
    w.berth(&["network", "create", "many"]).ok();
    let mut times = Vec::new();
    for i in 0..100 {
        let t = Instant::now();
        w.berth(&[
            "run",
            "-d",
            "--name",
            &format!("m{i}"),
            "--network",
            "many",
            w.image,
            "sleep",
            "600",
        ])
        .ok();
        times.push(t.elapsed());
    }
    eprintln!(
        "run -d on one network: 1st {:?}, 10th {:?}, 50th {:?}, 100th {:?}",
        times[0], times[9], times[49], times[99]
    );
    let o = w.berth(&["exec", "m99", "nslookup", "m0"]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let ip0 = w.ip("m0");
    let o = w.berth(&[
        "exec",
        "m99",
        "sh",
        "-c",
        &format!("nc -z -w 2 {ip0} 1 ; ip neigh; true"),
    ]);
    assert_eq!(o.code, 0);
    assert_eq!(w.veths().len(), 100);
    // The rules do not grow with the containers.
    let rules_before = w.ruleset().lines().count();
    w.berth(&[
        "run",
        "-d",
        "--name",
        "m100",
        "--network",
        "many",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    assert_eq!(w.ruleset().lines().count(), rules_before);
}

/// What an independent review found, each fixed: the responder answers
/// only its own network, an internal network forwards nothing, a killed
/// monitor's container keeps its network, a `--network container:` peer
/// does not keep a stopped container's veth, a flushed ruleset and a
/// killed responder come back, a host's bridge is never taken.
#[test]
fn review_regressions() {
    let w = World::new();
    w.berth(&["network", "create", "a"]).ok();
    w.berth(&["network", "create", "--internal", "i"]).ok();
    w.web("on-a", &["--network", "a", "-p", "8080:80"]);
    w.web("on-i", &["--network", "i"]);
    let gw_i = w
        .berth(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            "i",
        ])
        .ok()
        .stdout
        .trim()
        .to_string();
    // Another network's container asks i's responder: refused.
    let o = w.in_container(&["--network", "a"], &format!("nslookup on-i {gw_i}"));
    assert!(!o.stdout.contains(&w.ip("on-i")), "{}", o.stdout);
    // An internal network's container cannot send names out.
    let o = w.berth(&["exec", "on-i", "nslookup", "outside.example"]);
    assert_ne!(o.code, 0, "{}", o.stdout);
    // A loopback --dns on a DNS network is refused, naming the flag.
    let o = w.berth(&[
        "create",
        "--network",
        "a",
        "--dns",
        "127.0.0.1",
        w.image,
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("--dns"), "{}", o.stderr);
    // A monitor killed -9: the container runs on, and so do its port and
    // name after the next command.
    let mpid = w
        .berth(&["inspect", "-f", "{{.State.Pid}}", "on-a"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let monitor = std::fs::read_to_string(format!("/proc/{mpid}/stat"))
        .unwrap()
        .split(' ')
        .nth(3)
        .unwrap()
        .to_string();
    let comm = std::fs::read_to_string(format!("/proc/{monitor}/comm")).unwrap_or_default();
    assert_eq!(
        comm.trim(),
        "berth-monitor",
        "the init's parent is its monitor"
    );
    sh(&["kill", "-9", &monitor]);
    std::thread::sleep(Duration::from_millis(200));
    w.berth(&["network", "ls"]).ok();
    assert_eq!(
        w.fetch_from("host", "http://127.0.0.1:8080/"),
        Some("hello-on-a\n".into())
    );
    // A flushed ruleset comes back at the next start.
    w.in_ns("host", &["nft", "delete", "table", "inet", "berth"]);
    w.web("again", &["--network", "a", "-p", "8082:80"]);
    assert_eq!(
        w.fetch_from("outside", &format!("http://{HOST4}:8082/")),
        Some("hello-again\n".into())
    );
    // A killed responder is started again by the next command.
    let pid = std::fs::read_to_string(w.env.run_root.path().join("dns/berth-dns.pid")).unwrap();
    sh(&["kill", "-9", pid.trim()]);
    std::thread::sleep(Duration::from_millis(100));
    w.berth(&["network", "ls"]).ok();
    let o = w.in_container(&["--network", "a"], "nslookup again");
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    // A peer in its namespace does not keep a stopped container's veth.
    w.web("sa", &["--network", "a"]);
    w.berth(&[
        "run",
        "-d",
        "--name",
        "sb",
        "--network",
        "container:sa",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    let before = w.veths().len();
    w.berth(&["stop", "-t", "1", "sa"]).ok();
    assert_eq!(w.veths().len(), before - 1, "{:?}", w.veths());
    w.berth(&["start", "sa"]).ok();
    // A bridge berth did not make is not taken.
    sh(&[
        "nsenter",
        &format!("--net={}", w.ns("host").display()),
        "ip",
        "link",
        "add",
        "hostbr",
        "type",
        "bridge",
    ]);
    let o = w.berth(&[
        "network",
        "create",
        "-o",
        "com.docker.network.bridge.name=hostbr",
        "x1",
    ]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("hostbr"), "{}", o.stderr);
    assert!(w.in_ns("host", &["ip", "link", "show", "hostbr"]).code == 0);
}

/// `run --rm -p` leaves its port elements to its monitor's exit command
/// (deleting them itself would make its own exit wait for the kernel's RCU
/// grace period): soon after, nothing is left (no element, intent file or
/// lock file), and runs that want the same port at once get it.
#[test]
fn run_rm_with_published_ports_leaves_nothing_and_frees_the_port_at_once() {
    let w = World::new();
    w.berth(&["network", "create", "app"]).ok();
    let settled = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let rules = w.ruleset();
            let files = w.netns_files();
            let locks: Vec<String> = std::fs::read_dir(w.env.run_root.path().join("locks"))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .filter(|n| !n.starts_with("pod-") && n.len() == 64)
                        .collect()
                })
                .unwrap_or_default();
            if !rules.contains("8090") && files.is_empty() && locks.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: left intents {files:?}, locks {locks:?}, rules\n{rules}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let run_rm = |i: usize| {
        let o = w.berth(&[
            "run",
            "--rm",
            "--network",
            "app",
            "-p",
            "8090:80",
            w.image,
            "true",
        ]);
        assert_eq!(o.code, 0, "run {i}: {}", o.stderr);
    };
    run_rm(0);
    settled("after one run --rm");
    // Back to back: each finds the last one's elements (maybe not yet
    // removed by its monitor) and takes the port.
    for i in 1..6 {
        run_rm(i);
    }
    w.web("web", &["--network", "app", "-p", "8090:80"]);
    assert_eq!(
        w.fetch_from("host", "http://127.0.0.1:8090/"),
        Some("hello-web\n".into())
    );
    w.berth(&["rm", "-f", "web"]).ok();
    settled("after the runs and rm -f");
}

/// Bridge networks are root's until rootless networking comes: a user gets
/// one line naming that, not a half-made network.
#[test]
fn bridge_networks_are_refused_to_non_root_users_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for d in ["root", "run"] {
        let p = dir.path().join(d);
        std::fs::create_dir(&p).unwrap();
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: chown of a directory this test made; c is a valid C string.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), 65534, 65534) }, 0);
    }
    let o = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(dir.path().join("root"))
        .arg("--run-root")
        .arg(dir.path().join("run"))
        .args(["network", "create", "app"])
        .env("BERTH_DEFAULT_NETWORK", "none")
        .output()
        .expect("setpriv (util-linux) is needed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_ne!(o.status.code(), Some(0), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("bridge networks need root") && err.contains("rootless"),
        "{err}"
    );
}

/// What a tester found at stop 30 (each failed before its fix).
#[test]
fn stop_30_regressions() {
    let w = World::new();
    // An interface named as berth would name its next bridge (another
    // berth root's, anyone's): berth picks another name, not a refusal.
    sh(&[
        "nsenter",
        &format!("--net={}", w.ns("host").display()),
        "ip",
        "link",
        "add",
        "berth1",
        "type",
        "bridge",
    ]);
    w.berth(&["network", "create", "a"]).ok();
    w.berth(&["network", "create", "b"]).ok();
    // A start right after a stop: the last run's veth, which the kernel
    // removes after the namespace's end, is not in the way.
    w.berth(&[
        "run",
        "-d",
        "--name",
        "ss",
        "--network",
        "a",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    let a_bridge = w.in_ns("host", &["ip", "-o", "link", "show", "master", "berth1"]);
    assert_eq!(
        a_bridge.stdout, "",
        "berth1 is not berth's: {}",
        a_bridge.stdout
    );
    for _ in 0..10 {
        w.berth(&["stop", "-t", "0", "ss"]).ok();
        w.berth(&["start", "ss"]).ok();
    }
    // The default route follows connect and disconnect.
    let routes = |c: &str| w.berth(&["exec", c, "ip", "route"]).ok().stdout;
    w.berth(&["network", "disconnect", "a", "ss"]).ok();
    w.berth(&["network", "connect", "a", "ss"]).ok();
    assert!(
        routes("ss").contains("default via 10.89.0.1"),
        "{}",
        routes("ss")
    );
    w.berth(&[
        "run",
        "-d",
        "--name",
        "two",
        "--network",
        "a",
        "--network",
        "b",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    w.berth(&["network", "disconnect", "a", "two"]).ok();
    assert!(
        routes("two").contains("default via 10.89.1.1"),
        "{}",
        routes("two")
    );
    // An internal network's container publishes nothing, and says so.
    w.berth(&["network", "create", "--internal", "i"]).ok();
    let o = w.berth(&[
        "run",
        "-d",
        "--name",
        "in-i",
        "--network",
        "i",
        "-p",
        "8200:80",
        w.image,
        "sleep",
        "600",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("internal networks only"), "{}", o.stderr);
    assert_eq!(w.berth(&["port", "in-i"]).ok().stdout, "");
    // A port published on a dual-stack network: ::1 is refused at once
    // (no route_localnet in IPv6), not left to hang.
    w.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "10.20.0.0/24",
        "--subnet",
        "fd00:20::/64",
        "dual",
    ])
    .ok();
    w.web("v6w", &["--network", "dual", "-p", "8400:80"]);
    assert_eq!(
        w.fetch_from("host", "http://127.0.0.1:8400/"),
        Some("hello-v6w\n".into())
    );
    let t = Instant::now();
    assert_eq!(w.fetch_from("host", "http://[::1]:8400/"), None);
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // An IPv6-only network: its containers ask the responder on the IPv6
    // gateway, and find each other.
    w.berth(&[
        "network",
        "create",
        "--ipv6",
        "--subnet",
        "fd00:10::/64",
        "six",
    ])
    .ok();
    w.berth(&[
        "run",
        "-d",
        "--name",
        "aa",
        "--network",
        "six",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    let o = w.in_container(
        &["--network", "six"],
        "grep nameserver /etc/resolv.conf; nslookup -type=AAAA aa",
    );
    assert!(
        o.stdout.contains("nameserver fd00:10::1"),
        "{}{}",
        o.stdout,
        o.stderr
    );
    assert!(o.stdout.contains("fd00:10::"), "{}{}", o.stdout, o.stderr);
    // A name too long to use is refused when the network is made.
    let o = w.berth(&["network", "create", &"n".repeat(300)]);
    assert_ne!(o.code, 0);
    assert!(o.stderr.contains("at most 253 characters"), "{}", o.stderr);
    // /etc/hosts: the full name, then the short one (Docker's line).
    let o = w.in_container(
        &[
            "--network",
            "a",
            "--hostname",
            "h1",
            "--domainname",
            "ex.org",
        ],
        "grep h1 /etc/hosts",
    );
    assert!(o.stdout.contains("\th1.ex.org h1\n"), "{}", o.stdout);
    // A flushed ruleset: the next start makes berth's table again, with
    // every network's elements and every running container's ports.
    w.in_ns("host", &["nft", "flush", "ruleset"]);
    assert_eq!(w.fetch_from("host", "http://127.0.0.1:8400/"), None);
    w.berth(&["restart", "-t", "0", "ss"]).ok();
    assert_eq!(
        w.fetch_from("host", "http://127.0.0.1:8400/"),
        Some("hello-v6w\n".into())
    );
    // --network container: takes the joined container's files: Docker's
    // refusals.
    let o = w.berth(&[
        "run",
        "--rm",
        "--network",
        "container:ss",
        "--dns",
        "1.1.1.1",
        w.image,
        "true",
    ]);
    assert_ne!(o.code, 0);
    assert!(
        o.stderr.contains("conflicting options: dns"),
        "{}",
        o.stderr
    );
}

/// A kill -9 of `network connect` or `network disconnect` at any moment,
/// then one network command: the container is on the network wholly
/// (spec, endpoint, interface, name) or not at all.
#[test]
fn a_kill_9_during_connect_or_disconnect_is_settled_by_the_next_command() {
    let w = World::new();
    w.berth(&["network", "create", "app"]).ok();
    w.berth(&["network", "create", "n1"]).ok();
    w.berth(&[
        "run",
        "-d",
        "--name",
        "kc",
        "--network",
        "app",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    w.berth(&[
        "run",
        "-d",
        "--name",
        "asker",
        "--network",
        "n1",
        w.image,
        "sleep",
        "600",
    ])
    .ok();
    let on_n1 = || {
        let spec = w
            .berth(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "kc"])
            .ok()
            .stdout
            .contains("\"n1\"");
        let endpoint = w
            .berth(&["network", "inspect", "-f", "{{len .Containers}}", "n1"])
            .ok()
            .stdout
            .trim()
            == "2";
        let iface = w
            .berth(&["exec", "kc", "ip", "-o", "link"])
            .ok()
            .stdout
            .contains("eth1");
        let name = w.berth(&["exec", "asker", "nslookup", "kc"]).code == 0;
        (spec, endpoint, iface, name)
    };
    for (i, delay) in [0u64, 1, 2, 3, 4, 6, 8, 12].into_iter().enumerate() {
        for verb in ["connect", "disconnect"] {
            let before = on_n1();
            let mut c = w.berth_cmd();
            c.args(["network", verb, "n1", "kc"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            let mut child = c.spawn().unwrap();
            std::thread::sleep(Duration::from_millis(delay));
            let _ = child.kill();
            let _ = child.wait();
            w.berth(&["network", "ls"]).ok();
            let after = on_n1();
            assert!(
                after == (true, true, true, true) || after == (false, false, false, false),
                "round {i}, {verb} killed after {delay} ms (before: {before:?}): on n1 by spec, endpoint, interface, name: {after:?}\n{}\n{}\n{:?}",
                w.berth(&["exec", "kc", "ip", "-o", "addr"]).stdout,
                w.berth(&["inspect", "-f", "{{json .NetworkSettings.Networks}}", "kc"]).stdout,
                w.netns_files(),
            );
            // On n1 for the disconnect to come, off it for the next connect.
            if verb == "connect" && !after.0 {
                w.berth(&["network", "connect", "n1", "kc"]).ok();
            }
            if verb == "disconnect" && after.0 {
                w.berth(&["network", "disconnect", "n1", "kc"]).ok();
            }
        }
    }
    // Nothing is left noted.
    let files = w.netns_files();
    assert!(!files.iter().any(|f| f.ends_with(".change")), "{files:?}");
}

/// `ps` names each container's networks as Docker's `.Networks` does (the
/// keys of its NetworkSettings.Networks: bridge networks by name, even
/// when given by id, `host`, `none`; nothing for `container:`) and filters
/// by a network's name or id; `network prune` takes Docker's `until`,
/// `label` and `label!` filters, with -f or --force.
#[test]
fn ps_networks_and_network_prune_filters() {
    let w = World::new();
    let app = w.berth(&["network", "create", "app"]).ok().stdout;
    let app = app.trim();
    let create = |name: &str, net: &[&str]| {
        let mut args = vec!["create", "--name", name];
        args.extend_from_slice(net);
        args.extend_from_slice(&[w.image, "true"]);
        w.berth(&args).ok();
    };
    create("ca", &["--network", "app"]);
    create("cb", &[]);
    create("cab", &["--network", "app", "--network", "bridge"]);
    create("ch", &["--network", "host"]);
    create("cn", &["--network", "none"]);
    create("cc", &["--network", "container:ca"]);
    create("cid", &["--network", &app[..12]]);
    let ps = |more: &[&str]| -> Vec<String> {
        let mut args = vec!["ps", "-a"];
        args.extend_from_slice(more);
        let mut v: Vec<String> = w
            .berth(&args)
            .ok()
            .stdout
            .lines()
            .map(String::from)
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        ps(&["--format", "{{.Names}}|{{.Networks}}"]),
        [
            "cab|app,bridge",
            "ca|app",
            "cb|bridge",
            "cc|",
            "ch|host",
            "cid|app",
            "cn|none"
        ]
    );
    let json = ps(&["--filter", "name=ab", "--format", "{{json .}}"]).concat();
    assert!(json.contains(r#""Networks":"app,bridge""#), "{json}");
    let names = |f: &str| ps(&["--filter", f, "--format", "{{.Names}}"]);
    assert_eq!(names("network=app"), ["ca", "cab", "cid"]);
    assert_eq!(
        names(&format!("network={}", &app[..12])),
        ["ca", "cab", "cid"]
    );
    assert_eq!(names("network=bridge"), ["cab", "cb"]);
    assert_eq!(names("network=host"), ["ch"]);
    assert_eq!(names("network=none"), ["cn"]);
    assert!(names("network=ap").is_empty());
    let json = w
        .berth(&["ps", "-a", "--filter", "network=host", "--format", "json"])
        .ok()
        .stdout;
    assert!(json.contains(r#""host""#), "{json}");

    w.berth(&["rm", "-f", "cc", "ca", "cab", "cid"]).ok();
    w.berth(&["network", "create", "--label", "env=test", "t1"])
        .ok();
    w.berth(&[
        "network", "create", "--label", "env=test", "--label", "keep", "t2",
    ])
    .ok();
    w.berth(&["network", "create", "t3"]).ok();
    // Nothing was made a day ago.
    let out = w
        .berth(&["network", "prune", "-f", "--filter", "until=24h"])
        .ok();
    assert_eq!(out.stdout, "");
    let out = w
        .berth(&[
            "network",
            "prune",
            "--force",
            "--filter",
            "label=env=test",
            "--filter",
            "label!=keep",
        ])
        .ok();
    assert_eq!(out.stdout, "Deleted Networks:\nt1\n");
    for bad in ["until=soon", "dangling=true", "label"] {
        let e = w.berth(&["network", "prune", "-f", "--filter", bad]);
        assert_eq!(e.code, 2, "{bad}: {}", e.stderr);
        assert_eq!(e.stderr.trim().lines().count(), 1, "{bad}: {}", e.stderr);
        assert!(e.stderr.contains("network prune"), "{bad}: {}", e.stderr);
    }
    let out = w
        .berth(&[
            "network",
            "prune",
            "-f",
            "--filter",
            "until=2200-01-01T00:00:00Z",
        ])
        .ok();
    assert_eq!(out.stdout, "Deleted Networks:\napp\nt2\nt3\n");
    let ls = w
        .berth(&["network", "ls", "--format", "{{.Name}}"])
        .ok()
        .stdout;
    let mut ls: Vec<&str> = ls.lines().collect();
    ls.sort();
    assert_eq!(ls, ["bridge", "host", "none"]);
}
