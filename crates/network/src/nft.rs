//! berth's own nftables table, `table inet berth`: masquerade, published
//! ports, isolation between networks, the CVE-2020-8558 guard.
//!
//! The rules are fixed (written by [`add_network`], the same for every
//! network); networks and containers only add and remove set and map
//! ELEMENTS, so a container's cost does not grow with the number of
//! containers. No other table is ever touched, nothing is flushed but
//! berth's own chains. Each call is one transaction (atomic):
//! - elements go over nf_tables netlink (one NFNL batch of NEWSETELEM,
//!   DELSETELEM or DESTROYSETELEM, tens of microseconds, no program
//!   spawned): [`add_ports`], [`remove_ports`], and [`add_network`] and
//!   [`remove_network`] when the table is current; [`delete_table`] too;
//! - the `nft` program (`nft -f -`, about 15 ms) writes the table and its
//!   rules when missing or older ([`add_network`]), removes a network from
//!   an older table or on a kernel before 6.3 ([`remove_network`]), and
//!   lists the table ([`list`], `nft -j`).
//! - Bridge ports need hairpin mode on: with br_netfilter loaded, a
//!   container's packet to its own published port is DNATed at the bridge
//!   and bridged back out of the port it came in by.
//!
//! What the table holds (see [`RULESET`]):
//! - `bridges`: every berth bridge; `same`: `br . br` per bridge (traffic
//!   within one bridge, seen in `forward` when br_netfilter is loaded);
//!   `internal`: the bridges of `--internal` networks.
//! - `masq4`/`masq6`: the subnets of non-internal networks, masqueraded when
//!   leaving by a non-berth interface, and when DNATed into a bridge (hairpin:
//!   a container to a published port through the host's address).
//! - `ports4`/`ports6`: `proto . port : container ip . port` for ports
//!   published on every local address; `ports4ip`/`ports6ip`: keyed by
//!   `host ip . proto . port` for one address. They are looked up for
//!   traffic to a local address (`fib daddr type local`) in prerouting
//!   (from outside and from containers: hairpin) and in output (the host
//!   itself, 127.0.0.1 included: the bridge needs route_localnet=1, and
//!   127.0.0.0/8 sources are masqueraded into a bridge). Traffic to
//!   127.0.0.0/8 is never DNATed in prerouting: a port published on
//!   127.0.0.1 is the host's alone, not reachable by a container or a
//!   neighbour that routes 127.0.0.0/8 to the host (DNAT there comes
//!   before the kernel's martian check). Nor is traffic to ::1 in output:
//!   IPv6 has no route_localnet, so a connection DNATed from ::1 to a
//!   container would hang; undone, it is refused at once (nothing
//!   listens), as on a network without IPv6.
//! - `forward` accepts within one bridge, drops anything into or out of an
//!   internal bridge, and into a bridge accepts only replies and DNATed
//!   (published) traffic: other bridges, and the outside addressing a
//!   container directly, are dropped. Outbound from a bridge is accepted.
//! - `forward` also holds the guard: when berth turned forwarding on itself
//!   (the host did not route before), the family is an element of `guard`
//!   and traffic between two interfaces that are neither berth's bridges nor
//!   any other bridge (another engine's, libvirt's) is dropped, so enabling
//!   forwarding for containers does not make the host a router between its
//!   other interfaces (Docker sets its FORWARD policy to DROP for this).
//! - `input` drops packets from a berth bridge to 127.0.0.0/8 that were
//!   not DNATed (CVE-2020-8558: route_localnet would otherwise let a
//!   container reach the host's localhost services).
//!
//! Docker's iptables-nft rules (table ip filter, FORWARD policy DROP) live
//! in another table; berth neither edits nor depends on them. A packet must
//! be accepted by every base chain of its hook, so with Docker's FORWARD
//! policy DROP berth's forwarded traffic is dropped there unless the admin
//! allows it (`iptables -I DOCKER-USER -i BRIDGE -j ACCEPT` and `-o BRIDGE`).

use std::collections::HashSet;
use std::io::Write;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use ipnet::IpNet;
use serde_json::Value;

use crate::ports::Proto;
use crate::{Error, Result};

/// berth's table (family inet).
pub const TABLE: &str = "berth";

/// A network as the rules see it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnets: Vec<IpNet>,
    pub internal: bool,
    /// The forwarding guard (see [`RULESET`]'s `guard` set): the families
    /// whose forwarding berth turned on itself, so that the host routes
    /// nothing else than what berth's bridges need. Added with the network
    /// (kept by the table, never removed with one network: the table goes
    /// with the last network, and the guard with it).
    pub guard4: bool,
    pub guard6: bool,
}

/// One published port of one container address. host_ip None (or
/// 0.0.0.0 / ::) publishes on every local address of container_ip's
/// family; a dual-stack container gets one rule per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRule {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub proto: Proto,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

/// The fixed declarations and rules. `add` of an existing table, set or
/// chain changes nothing; the chains are flushed and refilled in the same
/// transaction, so running it again (or after an upgrade) is atomic and
/// never doubles a rule; set elements are kept.
pub const RULESET: &str = r#"add table inet berth
add set inet berth bridges { type ifname; }
add set inet berth rules_v3 { type ifname; }
add set inet berth same { type ifname . ifname; }
add set inet berth internal { type ifname; }
add set inet berth guard { type nf_proto; }
add set inet berth masq4 { type ipv4_addr; flags interval; }
add set inet berth masq6 { type ipv6_addr; flags interval; }
add map inet berth ports4 { type inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet berth ports4ip { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }
add map inet berth ports6 { type inet_proto . inet_service : ipv6_addr . inet_service; }
add map inet berth ports6ip { type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }
add chain inet berth published
add chain inet berth prerouting { type nat hook prerouting priority dstnat; policy accept; }
add chain inet berth output { type nat hook output priority -100; policy accept; }
add chain inet berth postrouting { type nat hook postrouting priority srcnat; policy accept; }
add chain inet berth forward { type filter hook forward priority filter; policy accept; }
add chain inet berth input { type filter hook input priority filter; policy accept; }
flush chain inet berth published
flush chain inet berth prerouting
flush chain inet berth output
flush chain inet berth postrouting
flush chain inet berth forward
flush chain inet berth input
add rule inet berth prerouting ip daddr 127.0.0.0/8 return
add rule inet berth prerouting fib daddr type local jump published
add rule inet berth output ip6 daddr ::1 return
add rule inet berth output fib daddr type local jump published
add rule inet berth published meta nfproto ipv4 dnat ip to ip daddr . meta l4proto . th dport map @ports4ip
add rule inet berth published meta nfproto ipv4 dnat ip to meta l4proto . th dport map @ports4
add rule inet berth published meta nfproto ipv6 dnat ip6 to ip6 daddr . meta l4proto . th dport map @ports6ip
add rule inet berth published meta nfproto ipv6 dnat ip6 to meta l4proto . th dport map @ports6
add rule inet berth postrouting oifname != @bridges ip saddr @masq4 masquerade
add rule inet berth postrouting oifname != @bridges ip6 saddr @masq6 masquerade
add rule inet berth postrouting oifname @bridges ct status dnat ip saddr @masq4 masquerade
add rule inet berth postrouting oifname @bridges ct status dnat ip6 saddr @masq6 masquerade
add rule inet berth postrouting oifname @bridges ip saddr 127.0.0.0/8 masquerade
add rule inet berth forward iifname . oifname @same accept
add rule inet berth forward iifname @internal drop
add rule inet berth forward oifname @internal drop
add rule inet berth forward oifname @bridges ct state established,related accept
add rule inet berth forward oifname @bridges ct status dnat accept
add rule inet berth forward oifname @bridges drop
add rule inet berth forward iifname != @bridges oifname != @bridges meta iifkind != "bridge" meta oifkind != "bridge" meta nfproto @guard drop
add rule inet berth input iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop
"#;

/// Creates the table, chains, sets and maps if missing, and adds the
/// network's elements. Idempotent. A subnet overlapping another network's
/// is a Conflict, but the very same subnet is an element that exists
/// already (Ok): refusing a subnet another network has is IPAM's check.
///
/// When berth's table holds this version of the rules (its set `rules_v3`
/// exists), the elements go in over netlink (no program spawned); else one
/// `nft -f -` writes the table's rules (flushing and refilling berth's own
/// chains: an upgrade) and the elements. True in that second case: the
/// table was missing (a flushed ruleset) or older, and the caller puts
/// back what other networks and containers had in it.
pub fn add_network(n: &NetworkRules) -> Result<bool> {
    let op = format!("add nft rules of network bridge {}", n.bridge);
    let elems = network_elements(n)?;
    let _lock = Lock::take(&op)?;
    if let Some(bin) = network_bin(n) {
        match netlink::apply(netlink::Op::Add, &bin) {
            Ok(()) => return Ok(false),
            // No table, or an older version of it: the script below.
            Err(e) if e.errno == libc::ENOENT => {}
            Err(e) if matches!(e.errno, libc::EEXIST | libc::EBUSY | libc::ENOTEMPTY) => {
                return Err(Error::Conflict(format!(
                    "{op}: a subnet of the network overlaps one in berth's nft table ({})",
                    n.subnets
                        .iter()
                        .map(|s| s.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            Err(e) => return Err(nl_error(&op, e.errno)),
        }
    }
    let mut script = String::from(RULESET);
    for e in &elems {
        script.push_str(&e.line("add"));
    }
    run(&op, &script).map(|()| true)
}

/// Removes the network's elements; if no network is left in the sets,
/// deletes berth's table. Over netlink (Linux 6.3+, the table current);
/// else with nft.
pub fn remove_network(n: &NetworkRules) -> Result<()> {
    let op = format!("remove nft rules of network bridge {}", n.bridge);
    // The guard stays while any network is left (it goes with the table).
    let n = &NetworkRules {
        guard4: false,
        guard6: false,
        ..n.clone()
    };
    let elems = network_elements(n)?;
    let _lock = Lock::take(&op)?;
    if let Some(bin) = network_bin(n) {
        match netlink::apply(netlink::Op::Destroy, &bin) {
            Ok(()) => {
                return match netlink::set_is_empty("bridges") {
                    Ok(Some(true)) => netlink::delete_table().map_err(|e| nl_error(&op, e.errno)),
                    Ok(_) => Ok(()),
                    Err(e) => Err(nl_error(&op, e.errno)),
                };
            }
            // No table: nothing to remove (a network no container has
            // used yet has no elements: no `nft` spawned for it, 20 ms of
            // CPU).
            Err(e) if e.errno == libc::ENOENT && matches!(netlink::table_exists(), Ok(false)) => {
                return Ok(())
            }
            // An older table (a set missing) or an older kernel (no
            // DESTROYSETELEM): nft below.
            Err(e) if matches!(e.errno, libc::ENOENT | libc::EINVAL | libc::EOPNOTSUPP) => {}
            Err(e) => return Err(nl_error(&op, e.errno)),
        }
    }
    let Some(table) = delete_elements(&op, &elems, true)? else {
        return Ok(());
    };
    if set_elements(&table, "bridges").is_empty() {
        run_tolerant(&op, "delete table inet berth\n")?;
    }
    Ok(())
}

/// Adds the published ports' DNAT elements: one nf_tables batch over
/// netlink (no program spawned; atomic). The table must exist
/// ([`add_network`] first). A host port already mapped to another address
/// is a Conflict; adding an element that exists as given is Ok.
pub fn add_ports(rules: &[PortRule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let op = format!("publish {}", describe(rules));
    let elems = port_elements(rules)?;
    let bin: Vec<netlink::Elem> = rules
        .iter()
        .zip(&elems)
        .map(|(r, e)| port_bin(r, e.set))
        .collect();
    match netlink::apply(netlink::Op::Add, &bin) {
        Ok(()) => Ok(()),
        Err(e) => {
            let which = e
                .index
                .and_then(|i| rules.get(i))
                .map(|r| describe(std::slice::from_ref(r)));
            let which = which.unwrap_or_else(|| describe(rules));
            Err(match e.errno {
                libc::EEXIST | libc::EBUSY => Error::Conflict(format!(
                    "cannot publish {which}: the host port is already published to another container; choose another host port"
                )),
                libc::ENOENT => Error::Nft {
                    op,
                    msg: "berth's nft table is missing: set up the network first".to_string(),
                },
                _ => nl_error(&op, e.errno),
            })
        }
    }
}

/// Removes the published ports' elements over netlink: each element is
/// read first (GETSETELEM) and removed only if it still points at the
/// rule's container address and port, so a stale rule never removes a
/// port since published to another container; then one DELSETELEM batch
/// (atomic). Missing elements and a missing table are Ok.
pub fn remove_ports(rules: &[PortRule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let op = format!("unpublish {}", describe(rules));
    let elems = port_elements(rules)?;
    let bin: Vec<netlink::Elem> = rules
        .iter()
        .zip(&elems)
        .map(|(r, e)| port_bin(r, e.set))
        .collect();
    // A second round if another process removed one of them between the
    // read and the removal (the batch then fails as a whole with ENOENT).
    let mut tries = 0;
    loop {
        match netlink::remove_matching(&bin) {
            Ok(()) => return Ok(()),
            Err(e) if e.errno == libc::ENOENT && tries == 0 => tries += 1,
            Err(e) => return Err(nl_error(&op, e.errno)),
        }
    }
}

fn nl_error(op: &str, errno: i32) -> Error {
    let e = std::io::Error::from_raw_os_error(errno);
    let hint = if errno == libc::EPERM {
        ": berth needs CAP_NET_ADMIN (root) for bridge networks"
    } else {
        ""
    };
    Error::Nft {
        op: op.to_string(),
        msg: format!("nf_tables refused the change: {e}{hint}"),
    }
}

/// A port rule's key and data as nf_tables stores them: each field of a
/// concatenation in its own 32-bit register (padded to 4 bytes), ports
/// in network byte order.
fn port_bin(r: &PortRule, set: &'static str) -> netlink::Elem {
    fn ip(v: &mut Vec<u8>, a: IpAddr) {
        match a {
            IpAddr::V4(a) => v.extend_from_slice(&a.octets()),
            IpAddr::V6(a) => v.extend_from_slice(&a.octets()),
        }
    }
    let mut key = Vec::with_capacity(24);
    if set.ends_with("ip") {
        if let Some(h) = r.host_ip {
            ip(&mut key, h);
        }
    }
    key.extend_from_slice(&[r.proto.number(), 0, 0, 0]);
    let hp = r.host_port.to_be_bytes();
    key.extend_from_slice(&[hp[0], hp[1], 0, 0]);
    let mut data = Vec::with_capacity(20);
    ip(&mut data, r.container_ip);
    let cp = r.container_port.to_be_bytes();
    data.extend_from_slice(&[cp[0], cp[1], 0, 0]);
    netlink::Elem {
        set,
        key,
        data: Some(data),
        flags: 0,
    }
}

/// The port rules and network bridges in berth's table now (for
/// reconciliation after a crash). No table: nothing.
pub fn list() -> Result<(Vec<String>, Vec<PortRule>)> {
    let op = "list berth's nft table";
    let Some(table) = list_table(op)? else {
        return Ok((Vec::new(), Vec::new()));
    };
    let bridges = set_elements(&table, "bridges")
        .into_iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut ports = Vec::new();
    for map in ["ports4", "ports4ip", "ports6", "ports6ip"] {
        for e in set_elements(&table, map) {
            let rule = parse_port_elem(map, &e).ok_or_else(|| Error::Nft {
                op: op.to_string(),
                msg: format!("unexpected element in map {map}: {e}"),
            })?;
            ports.push(rule);
        }
    }
    Ok((bridges, ports))
}

/// Deletes berth's table (missing is Ok).
pub fn delete_table() -> Result<()> {
    let op = "delete berth's nft table";
    let _lock = Lock::take(op)?;
    netlink::delete_table().map_err(|e| nl_error(op, e.errno))
}

/// One element of one of berth's sets or maps, as nft syntax.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Elem {
    set: &'static str,
    /// The key (what `delete` needs).
    key: String,
    /// ": data" for maps.
    data: Option<String>,
}

impl Elem {
    fn line(&self, verb: &str) -> String {
        match (&self.data, verb) {
            (Some(d), "add") => format!(
                "{verb} element inet berth {} {{ {} : {d} }}\n",
                self.set, self.key
            ),
            _ => format!(
                "{verb} element inet berth {} {{ {} }}\n",
                self.set, self.key
            ),
        }
    }
}

/// A bridge name goes into nft's syntax quoted: only what the kernel
/// allows in an interface name and nft can quote (no quotes, no spaces).
fn check_ifname(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() < libc::IFNAMSIZ
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid bridge name \"{}\" for nft rules: 1 to 15 characters of letters, digits, '-', '_' and '.'",
            name.escape_debug()
        )))
    }
}

fn network_elements(n: &NetworkRules) -> Result<Vec<Elem>> {
    check_ifname(&n.bridge)?;
    let b = format!("\"{}\"", n.bridge);
    let mut v = vec![
        Elem {
            set: "bridges",
            key: b.clone(),
            data: None,
        },
        Elem {
            set: "rules_v3",
            key: b.clone(),
            data: None,
        },
        Elem {
            set: "same",
            key: format!("{b} . {b}"),
            data: None,
        },
    ];
    for (on, family) in [(n.guard4, "ipv4"), (n.guard6, "ipv6")] {
        if on {
            v.push(Elem {
                set: "guard",
                key: family.to_string(),
                data: None,
            });
        }
    }
    if n.internal {
        v.push(Elem {
            set: "internal",
            key: b,
            data: None,
        });
    } else {
        for s in &n.subnets {
            let s = s.trunc();
            v.push(Elem {
                set: match s {
                    IpNet::V4(_) => "masq4",
                    IpNet::V6(_) => "masq6",
                },
                key: s.to_string(),
                data: None,
            });
        }
    }
    Ok(v)
}

/// A network's elements as nf_tables stores them (the name already checked
/// by [`network_elements`]): an interface name is IFNAMSIZ bytes, zero
/// padded; a subnet of an interval set is two elements, its first address
/// and the address after its last (flagged as the interval's end). None
/// for a subnet reaching the top of its family (nft writes no end element
/// there): the caller uses nft.
fn network_bin(n: &NetworkRules) -> Option<Vec<netlink::Elem>> {
    let mut name = [0u8; libc::IFNAMSIZ];
    let b = n.bridge.as_bytes();
    if b.len() >= libc::IFNAMSIZ {
        return None;
    }
    name[..b.len()].copy_from_slice(b);
    let elem = |set: &'static str, key: Vec<u8>, flags: u32| netlink::Elem {
        set,
        key,
        data: None,
        flags,
    };
    let mut v = vec![
        elem("bridges", name.to_vec(), 0),
        elem("rules_v3", name.to_vec(), 0),
        elem("same", [name, name].concat(), 0),
    ];
    // nf_proto: a one-byte key.
    for (on, family) in [
        (n.guard4, libc::NFPROTO_IPV4),
        (n.guard6, libc::NFPROTO_IPV6),
    ] {
        if on {
            v.push(elem("guard", vec![family as u8], 0));
        }
    }
    if n.internal {
        v.push(elem("internal", name.to_vec(), 0));
        return Some(v);
    }
    for s in &n.subnets {
        match s.trunc() {
            IpNet::V4(s) => {
                let start = u32::from(s.network());
                let size = 1u64 << (32 - u32::from(s.prefix_len()));
                let end = u32::try_from(u64::from(start) + size).ok()?;
                v.push(elem("masq4", start.to_be_bytes().to_vec(), 0));
                v.push(elem(
                    "masq4",
                    end.to_be_bytes().to_vec(),
                    netlink::INTERVAL_END,
                ));
            }
            IpNet::V6(s) => {
                let start = u128::from(s.network());
                let size = 1u128.checked_shl(128 - u32::from(s.prefix_len()))?;
                let end = start.checked_add(size)?;
                v.push(elem("masq6", start.to_be_bytes().to_vec(), 0));
                v.push(elem(
                    "masq6",
                    end.to_be_bytes().to_vec(),
                    netlink::INTERVAL_END,
                ));
            }
        }
    }
    Some(v)
}

fn port_elements(rules: &[PortRule]) -> Result<Vec<Elem>> {
    rules.iter().map(port_elem).collect()
}

fn port_elem(r: &PortRule) -> Result<Elem> {
    let bad = |what: &str| {
        Error::Invalid(format!(
            "cannot publish {}: {what}",
            describe(std::slice::from_ref(r))
        ))
    };
    if r.host_port == 0 || r.container_port == 0 {
        return Err(bad("port 0 (pick a host port first)"));
    }
    let c = r.container_ip;
    if c.is_unspecified() || c.is_loopback() || c.is_multicast() {
        return Err(bad("the container address is not a unicast address"));
    }
    let host = r.host_ip.filter(|h| !h.is_unspecified());
    if let Some(h) = host {
        if h.is_ipv4() != c.is_ipv4() {
            return Err(bad(
                "host and container addresses are of different families",
            ));
        }
        if h.is_ipv6() && h.is_loopback() {
            return Err(bad(
                "IPv6 has no route_localnet, so ::1 cannot be forwarded to a container; publish on 127.0.0.1 or another address",
            ));
        }
    } else if let Some(h) = r.host_ip {
        if h.is_ipv4() != c.is_ipv4() {
            return Err(bad(
                "host and container addresses are of different families",
            ));
        }
    }
    let fam = if c.is_ipv4() { "4" } else { "6" };
    let (set, key) = match host {
        None => (
            if fam == "4" { "ports4" } else { "ports6" },
            format!("{} . {}", r.proto, r.host_port),
        ),
        Some(h) => (
            if fam == "4" { "ports4ip" } else { "ports6ip" },
            format!("{h} . {} . {}", r.proto, r.host_port),
        ),
    };
    Ok(Elem {
        set,
        key,
        data: Some(format!("{c} . {}", r.container_port)),
    })
}

fn describe(rules: &[PortRule]) -> String {
    let mut s: Vec<String> = rules
        .iter()
        .take(3)
        .map(|r| {
            let host = match r.host_ip {
                Some(IpAddr::V6(h)) => format!("[{h}]:"),
                Some(h) => format!("{h}:"),
                None => String::new(),
            };
            let c = match r.container_ip {
                IpAddr::V6(c) => format!("[{c}]"),
                c => c.to_string(),
            };
            format!(
                "{host}{}/{} -> {c}:{}",
                r.host_port, r.proto, r.container_port
            )
        })
        .collect();
    if rules.len() > 3 {
        s.push(format!("and {} more", rules.len() - 3));
    }
    format!("port {}", s.join(", "))
}

/// Deletes elements in one transaction. nft 1.0.6 has no `destroy`: when
/// the transaction fails because something is missing, the table is
/// listed and only what is there is deleted (a second transaction).
/// With `relist`, returns the table as listed after the change (None: no
/// table); without, Ok(None).
fn delete_elements(op: &str, elems: &[Elem], relist: bool) -> Result<Option<Value>> {
    let script: String = elems.iter().map(|e| e.line("delete")).collect();
    let relisted = || if relist { list_table(op) } else { Ok(None) };
    match run(op, &script) {
        Ok(()) => return relisted(),
        Err(Error::Nft { msg, .. }) if is_missing(&msg) => {}
        Err(e) => return Err(e),
    }
    let Some(table) = list_table(op)? else {
        return Ok(None);
    };
    let mut present: HashSet<(&str, String)> = HashSet::new();
    for e in elems {
        if present.contains(&(e.set, e.key.clone())) {
            continue;
        }
        let keys: HashSet<String> = set_elements(&table, e.set)
            .iter()
            .filter_map(|v| elem_key_text(e.set, v))
            .collect();
        if keys.contains(&e.key) {
            present.insert((e.set, e.key.clone()));
        }
    }
    let script: String = elems
        .iter()
        .filter(|e| present.remove(&(e.set, e.key.clone())))
        .map(|e| e.line("delete"))
        .collect();
    if script.is_empty() {
        return Ok(Some(table));
    }
    run(op, &script)?;
    relisted()
}

fn is_missing(msg: &str) -> bool {
    msg.contains("No such file or directory") || msg.contains("does not exist")
}

/// `nft -j list table inet berth`, None when there is no table.
fn list_table(op: &str) -> Result<Option<Value>> {
    match nft(op, &["-j", "list", "table", "inet", TABLE], None) {
        Ok(out) => serde_json::from_slice(&out)
            .map(Some)
            .map_err(|e| Error::Nft {
                op: op.to_string(),
                msg: format!("nft -j printed invalid JSON: {e}"),
            }),
        Err(Error::Nft { msg, .. }) if is_missing(&msg) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The "elem" array of set or map `name` in a listed table.
fn set_elements(table: &Value, name: &str) -> Vec<Value> {
    let Some(items) = table.get("nftables").and_then(Value::as_array) else {
        return Vec::new();
    };
    for it in items {
        let s = it.get("set").or_else(|| it.get("map"));
        if let Some(s) = s {
            if s.get("name").and_then(Value::as_str) == Some(name) {
                return s
                    .get("elem")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
            }
        }
    }
    Vec::new()
}

/// A listed element's key in the text [`Elem`] uses, to compare.
fn elem_key_text(set: &str, v: &Value) -> Option<String> {
    // Maps list [key, data]; an element with a timeout or comment is an
    // {"elem": {"val": ...}} object (berth makes none, but be lenient).
    let v = match v {
        Value::Array(kv) if set.starts_with("ports") => kv.first()?,
        Value::Object(o) if o.contains_key("elem") => o.get("elem")?.get("val")?,
        v => v,
    };
    let atom = |a: &Value| -> Option<String> {
        match a {
            Value::String(s) => Some(match s.parse::<IpAddr>() {
                Ok(ip) => ip.to_string(),
                Err(_) if set == "bridges" || set == "same" || set == "internal" => {
                    format!("\"{s}\"")
                }
                Err(_) => s.clone(),
            }),
            Value::Number(n) => {
                // A protocol printed by number.
                let n = n.as_u64()?;
                Some(match n {
                    6 => "tcp".to_string(),
                    17 => "udp".to_string(),
                    132 => "sctp".to_string(),
                    n => n.to_string(),
                })
            }
            Value::Object(o) => {
                let p = o.get("prefix")?;
                let addr: IpAddr = p.get("addr")?.as_str()?.parse().ok()?;
                let len = p.get("len")?.as_u64()?;
                Some(IpNet::new(addr, u8::try_from(len).ok()?).ok()?.to_string())
            }
            _ => None,
        }
    };
    match v.get("concat").and_then(Value::as_array) {
        Some(parts) => {
            let mut out = Vec::new();
            for (i, p) in parts.iter().enumerate() {
                // Ports are numbers too: only the protocol field is a name.
                let t = match (p, set, i) {
                    (Value::Number(n), "ports4" | "ports6", 1)
                    | (Value::Number(n), "ports4ip" | "ports6ip", 2) => n.to_string(),
                    _ => atom(p)?,
                };
                out.push(t);
            }
            Some(out.join(" . "))
        }
        None => atom(v),
    }
}

fn parse_port_elem(map: &str, e: &Value) -> Option<PortRule> {
    let kv = e.as_array()?;
    let key = kv.first()?.get("concat")?.as_array()?;
    let data = kv.get(1)?.get("concat")?.as_array()?;
    let proto_of = |v: &Value| -> Option<Proto> {
        match v {
            Value::String(s) => Proto::parse(s),
            Value::Number(n) => match n.as_u64()? {
                6 => Some(Proto::Tcp),
                17 => Some(Proto::Udp),
                132 => Some(Proto::Sctp),
                _ => None,
            },
            _ => None,
        }
    };
    let port_of = |v: &Value| -> Option<u16> { u16::try_from(v.as_u64()?).ok() };
    let (host_ip, proto, host_port) = if map.ends_with("ip") {
        (
            Some(key.first()?.as_str()?.parse().ok()?),
            proto_of(key.get(1)?)?,
            port_of(key.get(2)?)?,
        )
    } else {
        (None, proto_of(key.first()?)?, port_of(key.get(1)?)?)
    };
    Some(PortRule {
        host_ip,
        host_port,
        proto,
        container_ip: data.first()?.as_str()?.parse().ok()?,
        container_port: port_of(data.get(1)?)?,
    })
}

/// Runs a script whose "missing" failures are fine (deleting the table).
fn run_tolerant(op: &str, script: &str) -> Result<()> {
    match run(op, script) {
        Err(Error::Nft { msg, .. }) if is_missing(&msg) => Ok(()),
        r => r,
    }
}

/// One transaction: `nft -f -` with the script on stdin.
fn run(op: &str, script: &str) -> Result<()> {
    nft(op, &["-f", "-"], Some(script)).map(|_| ())
}

/// The nft program: its usual places first (the engine may run with a
/// PATH without /usr/sbin), then PATH.
fn nft_program() -> &'static str {
    for p in ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"] {
        if std::path::Path::new(p).exists() {
            return p;
        }
    }
    "nft"
}

/// How many times this thread has run the `nft` program (tests check
/// which paths stay on netlink).
pub fn programs_run() -> u64 {
    NFT_RUNS.with(|n| n.get())
}

thread_local! {
    static NFT_RUNS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn nft(op: &str, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>> {
    NFT_RUNS.with(|n| n.set(n.get() + 1));
    let mut cmd = Command::new(nft_program());
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().map_err(|e| Error::Nft {
        op: op.to_string(),
        msg: format!("cannot run nft ({e}): install nftables (the nft program)"),
    })?;
    if let Some(s) = stdin {
        let mut pipe = child.stdin.take().ok_or_else(|| Error::Nft {
            op: op.to_string(),
            msg: "nft's stdin was not piped".to_string(),
        })?;
        // A script is a few hundred bytes, far below the pipe's buffer:
        // writing before reading the output cannot deadlock.
        let w = pipe.write_all(s.as_bytes());
        drop(pipe);
        if let Err(e) = w {
            let _ = child.wait();
            return Err(Error::Io {
                op: format!("{op}: write the script to nft"),
                source: e,
            });
        }
    }
    let out = child
        .wait_with_output()
        .map_err(crate::io(format!("{op}: wait for nft")))?;
    if out.status.success() {
        return Ok(out.stdout);
    }
    Err(Error::Nft {
        op: op.to_string(),
        msg: one_line(&String::from_utf8_lossy(&out.stderr), &out.status),
    })
}

/// nft's error (several lines: the message, the command, a caret line) in
/// one line: "Could not process rule: File exists (add element ...)".
fn one_line(stderr: &str, status: &std::process::ExitStatus) -> String {
    let mut lines = stderr.lines().map(str::trim).filter(|l| !l.is_empty());
    let mut parts = Vec::new();
    while let Some(l) = lines.next() {
        if let Some(i) = l.find("Error: ") {
            let mut p = l[i + "Error: ".len()..].to_string();
            if let Some(cmd) = lines.next() {
                if !cmd.starts_with('^') {
                    p.push_str(&format!(" ({cmd})"));
                }
            }
            parts.push(p);
        }
    }
    if parts.is_empty() {
        let s = stderr.trim().replace('\n', " ");
        if s.is_empty() {
            return format!("nft failed ({status})");
        }
        return s;
    }
    parts.dedup();
    parts.join("; ")
}

/// Serialises network setup and teardown across processes: remove_network
/// lists the bridges left and deletes the table, which must not race with
/// another process's add_network. One lock for the host (all network
/// namespaces): these calls are rare and take milliseconds.
struct Lock {
    _file: std::fs::File,
}

const LOCK_PATH: &str = "/run/lock/berth-nft.lock";

impl Lock {
    fn take(op: &str) -> Result<Lock> {
        let dir = std::path::Path::new(LOCK_PATH)
            .parent()
            .unwrap_or(std::path::Path::new("/run"));
        let path = if dir.is_dir() {
            LOCK_PATH
        } else {
            "/run/berth-nft.lock"
        };
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(crate::io(format!("{op}: open lock {path}")))?;
        loop {
            // SAFETY: flock on a descriptor we own; no memory is passed.
            let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) };
            if r == 0 {
                return Ok(Lock { _file: f });
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::Io {
                    op: format!("{op}: lock {path}"),
                    source: e,
                });
            }
        }
    }
}

/// nf_tables over netlink, for the per-container element changes: one
/// batch (BATCH_BEGIN, one message per element, BATCH_END) sent on a
/// NETLINK_NETFILTER socket, one acknowledgement read per element. The
/// kernel applies a batch atomically: all of it or none.
mod netlink {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    const NETLINK_NETFILTER: libc::c_int = 12;
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
    const NFNL_MSG_BATCH_END: u16 = 0x11;
    const NFT_MSG_NEWSETELEM: u16 = 12;
    const NFT_MSG_GETSETELEM: u16 = 13;
    const NFT_MSG_DELSETELEM: u16 = 14;
    const NFT_MSG_NEWTABLE: u16 = 0;
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFT_MSG_DELTABLE: u16 = 2;
    /// Linux 6.3: DELSETELEM that ignores a missing element.
    const NFT_MSG_DESTROYSETELEM: u16 = 30;
    const NFTA_TABLE_NAME: u16 = 1;
    const NLMSG_DONE: u16 = 3;
    const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
    const NFTA_SET_ELEM_LIST_SET: u16 = 2;
    const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
    const NFTA_LIST_ELEM: u16 = 1;
    const NFTA_SET_ELEM_KEY: u16 = 1;
    const NFTA_SET_ELEM_DATA: u16 = 2;
    const NFTA_SET_ELEM_FLAGS: u16 = 3;
    /// NFT_SET_ELEM_INTERVAL_END: this element ends an interval.
    pub(super) const INTERVAL_END: u32 = 1;
    const NFTA_DATA_VALUE: u16 = 1;
    const NLA_F_NESTED: u16 = 0x8000;
    const NFPROTO_INET: u8 = 1;
    const NLMSG_ERROR: u16 = 2;

    /// One element of one of berth's sets or maps, in the kernel's bytes.
    pub(super) struct Elem {
        pub set: &'static str,
        pub key: Vec<u8>,
        pub data: Option<Vec<u8>>,
        /// NFTA_SET_ELEM_FLAGS (INTERVAL_END), 0 for none.
        pub flags: u32,
    }

    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Op {
        Add,
        /// A missing element fails the batch (ENOENT).
        Delete,
        /// A missing element is fine (Linux 6.3+; EINVAL before).
        Destroy,
    }

    /// The kernel's refusal: errno, and the element it was about (None:
    /// the batch as a whole, or the socket).
    #[derive(Debug)]
    pub(super) struct NlError {
        pub errno: i32,
        pub index: Option<usize>,
    }

    fn attr(buf: &mut Vec<u8>, ty: u16, payload: &[u8]) {
        let len = 4 + payload.len();
        buf.extend_from_slice(&(len as u16).to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(payload);
        pad(buf);
    }

    fn pad(buf: &mut Vec<u8>) {
        while buf.len() % 4 != 0 {
            buf.push(0);
        }
    }

    fn nested(buf: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
        let start = buf.len();
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        f(buf);
        let len = (buf.len() - start) as u16;
        buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    }

    fn cstr(s: &str) -> Vec<u8> {
        let mut v = s.as_bytes().to_vec();
        v.push(0);
        v
    }

    /// nlmsghdr + nfgenmsg, then the body; the length patched in.
    fn message(
        buf: &mut Vec<u8>,
        ty: u16,
        flags: u16,
        seq: u32,
        family: u8,
        res_id: u16,
        body: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = buf.len();
        buf.extend_from_slice(&[0; 4]);
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.push(family);
        buf.push(0); // NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        body(buf);
        pad(buf);
        let len = (buf.len() - start) as u32;
        buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
    }

    /// The batch's bytes; element i has sequence number seq0 + 1 + i.
    pub(super) fn batch(op: Op, elems: &[&Elem], seq0: u32) -> Vec<u8> {
        let mut buf = Vec::with_capacity(64 + elems.len() * 96);
        let req = libc::NLM_F_REQUEST as u16;
        let ack = libc::NLM_F_ACK as u16;
        let (begin, end) = (seq0, seq0 + 1 + elems.len() as u32);
        message(
            &mut buf,
            NFNL_MSG_BATCH_BEGIN,
            req,
            begin,
            libc::AF_UNSPEC as u8,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        let (ty, flags) = match op {
            // No NLM_F_EXCL: adding an element that exists as given is Ok.
            Op::Add => (NFT_MSG_NEWSETELEM, req | ack | libc::NLM_F_CREATE as u16),
            Op::Delete => (NFT_MSG_DELSETELEM, req | ack),
            Op::Destroy => (NFT_MSG_DESTROYSETELEM, req | ack),
        };
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | ty;
        for (i, e) in elems.iter().enumerate() {
            let seq = seq0 + 1 + i as u32;
            message(&mut buf, ty, flags, seq, NFPROTO_INET, 0, |b| {
                element(b, e, op == Op::Add)
            });
        }
        message(
            &mut buf,
            NFNL_MSG_BATCH_END,
            req,
            end,
            libc::AF_UNSPEC as u8,
            NFNL_SUBSYS_NFTABLES,
            |_| {},
        );
        buf
    }

    /// The attributes naming one element of a set (and its data).
    fn element(b: &mut Vec<u8>, e: &Elem, with_data: bool) {
        attr(b, NFTA_SET_ELEM_LIST_TABLE, &cstr(super::TABLE));
        attr(b, NFTA_SET_ELEM_LIST_SET, &cstr(e.set));
        nested(b, NFTA_SET_ELEM_LIST_ELEMENTS, |b| {
            nested(b, NFTA_LIST_ELEM, |b| {
                if e.flags != 0 {
                    attr(b, NFTA_SET_ELEM_FLAGS, &e.flags.to_be_bytes());
                }
                nested(b, NFTA_SET_ELEM_KEY, |b| attr(b, NFTA_DATA_VALUE, &e.key));
                if let (true, Some(d)) = (with_data, &e.data) {
                    nested(b, NFTA_SET_ELEM_DATA, |b| attr(b, NFTA_DATA_VALUE, d));
                }
            });
        });
    }

    fn last_err() -> NlError {
        NlError {
            errno: std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO),
            index: None,
        }
    }

    /// Closing a NETLINK_NETFILTER socket makes nf_tables flush its pending
    /// destroy work (nft_rcv_nl_event), which waits for an RCU grace period
    /// (10-15 ms measured here) when a batch removed something. So the
    /// socket is kept open and reused for the process's later calls in the
    /// same network namespace (a socket acts in the namespace it was made
    /// in): a removal costs microseconds, the wait comes at most once, at
    /// exit. The socket keeps its namespace alive until replaced or exit.
    static SOCKET: std::sync::Mutex<Option<((u64, u64), OwnedFd)>> = std::sync::Mutex::new(None);

    /// The calling thread's network namespace (device, inode).
    fn netns_id() -> Option<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata("/proc/thread-self/ns/net").ok()?;
        Some((m.dev(), m.ino()))
    }

    /// Runs f with the socket of this thread's network namespace (one
    /// caller at a time).
    fn with_socket<T>(f: impl FnOnce(&OwnedFd) -> Result<T, NlError>) -> Result<T, NlError> {
        let id = netns_id();
        let mut cached = SOCKET.lock().unwrap_or_else(|e| e.into_inner());
        let fd = match (cached.take(), id) {
            (Some((cid, fd)), Some(id)) if cid == id => fd,
            _ => open()?,
        };
        let r = f(&fd);
        // A socket that failed (not the kernel refusing an element) may hold
        // unread replies: it is not reused.
        let reusable = match &r {
            Ok(_) => true,
            Err(e) => e.index.is_some(),
        };
        if let (true, Some(id)) = (reusable, id) {
            *cached = Some((id, fd));
        }
        r
    }

    /// Applies one batch: all elements or none.
    pub(super) fn apply(op: Op, elems: &[Elem]) -> Result<(), NlError> {
        let refs: Vec<&Elem> = elems.iter().collect();
        with_socket(|fd| send_batch(fd, op, &refs))
    }

    /// Deletes, in one batch, the elements that are in their map with the
    /// data given (each read first with GETSETELEM); the others are left
    /// alone. A missing table or element is Ok; ENOENT from the batch
    /// means one went away in between (the caller may try again).
    pub(super) fn remove_matching(elems: &[Elem]) -> Result<(), NlError> {
        with_socket(|fd| {
            let mut found = Vec::new();
            for e in elems {
                if get_data(fd, e)?.is_some_and(|d| Some(&d) == e.data.as_ref()) {
                    found.push(e);
                }
            }
            if found.is_empty() {
                return Ok(());
            }
            send_batch(fd, Op::Delete, &found)
        })
    }

    /// Whether set `set` of berth's table has no element (a dump of its
    /// elements); None when the table or the set is missing.
    pub(super) fn set_is_empty(set: &str) -> Result<Option<bool>, NlError> {
        with_socket(|fd| {
            let seq = next_seq();
            let mut buf = Vec::with_capacity(64);
            let ty = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
            let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
            message(&mut buf, ty, flags, seq, NFPROTO_INET, 0, |b| {
                attr(b, NFTA_SET_ELEM_LIST_TABLE, &cstr(super::TABLE));
                attr(b, NFTA_SET_ELEM_LIST_SET, &cstr(set));
            });
            send(fd, &buf)?;
            let reply = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
            let mut empty = Some(true);
            recv_until(fd, |t, s, msg| {
                if s != seq {
                    return None;
                }
                if t == reply {
                    let has = msg
                        .get(20..)
                        .and_then(|b| find_attr(b, NFTA_SET_ELEM_LIST_ELEMENTS))
                        .and_then(|b| find_attr(b, NFTA_LIST_ELEM))
                        .is_some();
                    if has {
                        empty = Some(false);
                    }
                    return None;
                }
                match t {
                    NLMSG_DONE => Some(Ok(())),
                    NLMSG_ERROR => match ack_error(msg)? {
                        0 => Some(Ok(())),
                        e if -e == libc::ENOENT => {
                            empty = None;
                            Some(Ok(()))
                        }
                        e => Some(Err(NlError {
                            errno: -e,
                            index: Some(0),
                        })),
                    },
                    _ => None,
                }
            })?;
            Ok(empty)
        })
    }

    /// Whether berth's table exists (NFT_MSG_GETTABLE).
    pub(super) fn table_exists() -> Result<bool, NlError> {
        with_socket(|fd| {
            let seq = next_seq();
            let mut buf = Vec::with_capacity(48);
            let ty = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE;
            let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
            message(&mut buf, ty, flags, seq, NFPROTO_INET, 0, |b| {
                attr(b, NFTA_TABLE_NAME, &cstr(super::TABLE));
            });
            send(fd, &buf)?;
            let reply = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE;
            let mut exists = false;
            recv_until(fd, |t, s, msg| {
                if s != seq {
                    return None;
                }
                if t == reply {
                    exists = true;
                    return None;
                }
                match (t, ack_error(msg)?) {
                    (NLMSG_ERROR, 0) => Some(Ok(())),
                    (NLMSG_ERROR, e) if -e == libc::ENOENT => Some(Ok(())),
                    (NLMSG_ERROR, e) => Some(Err(NlError {
                        errno: -e,
                        index: Some(0),
                    })),
                    _ => None,
                }
            })?;
            Ok(exists)
        })
    }

    /// Deletes berth's table in one batch; a missing table is Ok.
    pub(super) fn delete_table() -> Result<(), NlError> {
        with_socket(|fd| {
            let seq0 = next_seq();
            let req = libc::NLM_F_REQUEST as u16;
            let mut buf = Vec::with_capacity(96);
            let sub = NFNL_SUBSYS_NFTABLES;
            message(
                &mut buf,
                NFNL_MSG_BATCH_BEGIN,
                req,
                seq0,
                libc::AF_UNSPEC as u8,
                sub,
                |_| {},
            );
            let ty = (sub << 8) | NFT_MSG_DELTABLE;
            let flags = req | libc::NLM_F_ACK as u16;
            message(&mut buf, ty, flags, seq0 + 1, NFPROTO_INET, 0, |b| {
                attr(b, NFTA_TABLE_NAME, &cstr(super::TABLE));
            });
            message(
                &mut buf,
                NFNL_MSG_BATCH_END,
                req,
                seq0 + 2,
                libc::AF_UNSPEC as u8,
                sub,
                |_| {},
            );
            send(fd, &buf)?;
            recv_until(fd, |t, s, msg| {
                if t != NLMSG_ERROR || !(seq0..=seq0 + 2).contains(&s) {
                    return None;
                }
                match ack_error(msg)? {
                    0 => Some(Ok(())),
                    e if -e == libc::ENOENT => Some(Ok(())),
                    e => Some(Err(NlError {
                        errno: -e,
                        index: Some(0),
                    })),
                }
            })
        })
    }

    fn open() -> Result<OwnedFd, NlError> {
        // SAFETY: socket has no memory preconditions; the result is checked.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                NETLINK_NETFILTER,
            )
        };
        if raw < 0 {
            return Err(last_err());
        }
        // SAFETY: raw is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // A lost reply must not hang the engine.
        let tv = libc::timeval {
            tv_sec: 5,
            tv_usec: 0,
        };
        // SAFETY: tv lives across the call and its size is passed.
        let r = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err());
        }
        Ok(fd)
    }

    /// A sequence number for a request: unlike any recent one, so a stale
    /// reply left on the socket is never taken for ours.
    fn next_seq() -> u32 {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let base = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(1)
            & 0x0fff_ffff;
        let n = SEQ.fetch_add(0x1000, std::sync::atomic::Ordering::Relaxed);
        base.wrapping_add(n)
    }

    fn send(fd: &OwnedFd, buf: &[u8]) -> Result<(), NlError> {
        // SAFETY: sockaddr_nl is plain data; all-zero is a valid value.
        let mut sa: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: buf and sa are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                0,
                (&sa as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(last_err());
        }
        Ok(())
    }

    /// Reads messages, handing each (type, seq, whole message) to f until f
    /// says it is done.
    fn recv_until(
        fd: &OwnedFd,
        mut f: impl FnMut(u16, u32, &[u8]) -> Option<Result<(), NlError>>,
    ) -> Result<(), NlError> {
        let mut rbuf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: rbuf is valid for writes of its length.
            let n = unsafe { libc::recv(fd.as_raw_fd(), rbuf.as_mut_ptr().cast(), rbuf.len(), 0) };
            if n < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(NlError {
                    errno: e.raw_os_error().unwrap_or(libc::EIO),
                    index: None,
                });
            }
            let mut msgs = &rbuf[..n as usize];
            while msgs.len() >= 16 {
                let len = u32::from_ne_bytes([msgs[0], msgs[1], msgs[2], msgs[3]]) as usize;
                if len < 16 || len > msgs.len() {
                    break;
                }
                let ty = u16::from_ne_bytes([msgs[4], msgs[5]]);
                let seq = u32::from_ne_bytes([msgs[8], msgs[9], msgs[10], msgs[11]]);
                if let Some(done) = f(ty, seq, &msgs[..len]) {
                    return done;
                }
                msgs = &msgs[len.next_multiple_of(4).min(msgs.len())..];
            }
        }
    }

    /// An NLMSG_ERROR's error (0: an acknowledgement).
    fn ack_error(msg: &[u8]) -> Option<i32> {
        let b = msg.get(16..20)?;
        Some(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// Sends a batch and reads one acknowledgement per element (the kernel
    /// sends them all, errors included, once the batch is done).
    fn send_batch(fd: &OwnedFd, op: Op, elems: &[&Elem]) -> Result<(), NlError> {
        let seq0 = next_seq();
        send(fd, &batch(op, elems, seq0))?;
        let end = seq0 + 1 + elems.len() as u32;
        let mut pending: Vec<bool> = vec![true; elems.len()];
        let mut left = elems.len();
        let mut first_err: Option<NlError> = None;
        recv_until(fd, |ty, seq, msg| {
            if ty != NLMSG_ERROR {
                return None;
            }
            let err = ack_error(msg)?;
            let idx = seq.wrapping_sub(seq0 + 1) as usize;
            if idx < elems.len() {
                if pending[idx] {
                    pending[idx] = false;
                    left -= 1;
                }
                if err != 0 && first_err.is_none() {
                    first_err = Some(NlError {
                        errno: -err,
                        index: Some(idx),
                    });
                }
            } else if err != 0 && (seq == seq0 || seq == end) {
                // The batch as a whole was refused.
                return Some(Err(NlError {
                    errno: -err,
                    index: None,
                }));
            }
            if left == 0 {
                return Some(first_err.take().map_or(Ok(()), Err));
            }
            None
        })
    }

    /// The first attribute of type `ty` in a run of attributes.
    fn find_attr(mut b: &[u8], ty: u16) -> Option<&[u8]> {
        while b.len() >= 4 {
            let len = usize::from(u16::from_ne_bytes([b[0], b[1]]));
            // Without NLA_F_NESTED and NLA_F_NET_BYTEORDER.
            let t = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
            if len < 4 || len > b.len() {
                return None;
            }
            if t == ty {
                return Some(&b[4..len]);
            }
            b = &b[len.next_multiple_of(4).min(b.len())..];
        }
        None
    }

    /// An element's data as the kernel holds it (GETSETELEM); None when the
    /// element, its set or the table is missing.
    fn get_data(fd: &OwnedFd, e: &Elem) -> Result<Option<Vec<u8>>, NlError> {
        let seq = next_seq();
        let mut buf = Vec::with_capacity(128);
        let ty = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16;
        message(&mut buf, ty, flags, seq, NFPROTO_INET, 0, |b| {
            element(b, e, false)
        });
        send(fd, &buf)?;
        let mut data = None;
        let reply = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM;
        recv_until(fd, |t, s, msg| {
            if s != seq {
                return None;
            }
            if t == reply {
                data = msg
                    .get(20..)
                    .and_then(|b| find_attr(b, NFTA_SET_ELEM_LIST_ELEMENTS))
                    .and_then(|b| find_attr(b, NFTA_LIST_ELEM))
                    .and_then(|b| find_attr(b, NFTA_SET_ELEM_DATA))
                    .and_then(|b| find_attr(b, NFTA_DATA_VALUE))
                    .map(<[u8]>::to_vec);
                return None;
            }
            if t != NLMSG_ERROR {
                return None;
            }
            match ack_error(msg)? {
                0 => Some(Ok(())),
                e if -e == libc::ENOENT => {
                    data = None;
                    Some(Ok(()))
                }
                e => Some(Err(NlError {
                    errno: -e,
                    index: Some(0),
                })),
            }
        })?;
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(host: Option<&str>, hp: u16, proto: Proto, c: &str, cp: u16) -> PortRule {
        PortRule {
            host_ip: host.map(|h| h.parse().unwrap()),
            host_port: hp,
            proto,
            container_ip: c.parse().unwrap(),
            container_port: cp,
        }
    }

    #[test]
    fn network_elements_by_kind() {
        let n = NetworkRules {
            bridge: "br-1".into(),
            subnets: vec!["10.1.2.3/24".parse().unwrap(), "fd00::/64".parse().unwrap()],
            internal: false,
            ..Default::default()
        };
        let lines: String = network_elements(&n)
            .unwrap()
            .iter()
            .map(|e| e.line("add"))
            .collect();
        assert_eq!(
            lines,
            "add element inet berth bridges { \"br-1\" }\n\
             add element inet berth rules_v3 { \"br-1\" }\n\
             add element inet berth same { \"br-1\" . \"br-1\" }\n\
             add element inet berth masq4 { 10.1.2.0/24 }\n\
             add element inet berth masq6 { fd00::/64 }\n"
        );
        let internal = NetworkRules {
            internal: true,
            ..n
        };
        let lines: Vec<String> = network_elements(&internal)
            .unwrap()
            .iter()
            .map(|e| e.line("delete"))
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[3],
            "delete element inet berth internal { \"br-1\" }\n"
        );
    }

    #[test]
    fn bridge_names_that_would_inject_are_refused() {
        for bad in [
            "",
            "a\"b",
            "br 0",
            "br0}; flush ruleset",
            "0123456789abcdef",
            "a\nb",
        ] {
            let n = NetworkRules {
                bridge: bad.into(),
                subnets: vec![],
                internal: false,
                ..Default::default()
            };
            let e = network_elements(&n).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{bad:?}");
            assert!(!e.to_string().contains('\n'));
        }
    }

    #[test]
    fn port_elements_by_host_address() {
        let cases = [
            (
                rule(None, 8080, Proto::Tcp, "10.0.0.2", 80),
                "add element inet berth ports4 { tcp . 8080 : 10.0.0.2 . 80 }\n",
            ),
            (
                rule(Some("0.0.0.0"), 53, Proto::Udp, "10.0.0.2", 5353),
                "add element inet berth ports4 { udp . 53 : 10.0.0.2 . 5353 }\n",
            ),
            (
                rule(Some("127.0.0.1"), 8080, Proto::Sctp, "10.0.0.2", 80),
                "add element inet berth ports4ip { 127.0.0.1 . sctp . 8080 : 10.0.0.2 . 80 }\n",
            ),
            (
                rule(None, 8080, Proto::Tcp, "fd00::2", 80),
                "add element inet berth ports6 { tcp . 8080 : fd00::2 . 80 }\n",
            ),
            (
                rule(Some("2001:db8::1"), 8080, Proto::Tcp, "fd00::2", 80),
                "add element inet berth ports6ip { 2001:db8::1 . tcp . 8080 : fd00::2 . 80 }\n",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(port_elem(&r).unwrap().line("add"), want);
        }
        assert_eq!(
            port_elem(&cases_delete()).unwrap().line("delete"),
            "delete element inet berth ports4ip { 192.0.2.1 . udp . 1 }\n"
        );
    }

    fn cases_delete() -> PortRule {
        rule(Some("192.0.2.1"), 1, Proto::Udp, "10.0.0.9", 9)
    }

    #[test]
    fn port_rules_that_cannot_work_are_refused() {
        for r in [
            rule(None, 0, Proto::Tcp, "10.0.0.2", 80),
            rule(None, 80, Proto::Tcp, "10.0.0.2", 0),
            rule(Some("127.0.0.1"), 80, Proto::Tcp, "fd00::2", 80),
            rule(Some("::"), 80, Proto::Tcp, "10.0.0.2", 80),
            rule(Some("::1"), 80, Proto::Tcp, "fd00::2", 80),
            rule(None, 80, Proto::Tcp, "0.0.0.0", 80),
            rule(None, 80, Proto::Tcp, "127.0.0.1", 80),
        ] {
            let e = port_elem(&r).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{r:?}");
            assert!(e.to_string().starts_with("cannot publish port "), "{e}");
        }
    }

    #[test]
    fn listed_elements_compare_with_ours() {
        let v: Value = serde_json::json!([{"concat": ["tcp", 8080]}, {"concat": ["10.0.0.2", 80]}]);
        assert_eq!(elem_key_text("ports4", &v).unwrap(), "tcp . 8080");
        assert_eq!(
            parse_port_elem("ports4", &v).unwrap(),
            rule(None, 8080, Proto::Tcp, "10.0.0.2", 80)
        );
        let v: Value =
            serde_json::json!([{"concat": ["2001:0db8::1", 6, 53]}, {"concat": ["fd00::2", 5353]}]);
        assert_eq!(
            elem_key_text("ports6ip", &v).unwrap(),
            "2001:db8::1 . tcp . 53"
        );
        assert_eq!(
            parse_port_elem("ports6ip", &v).unwrap(),
            rule(Some("2001:db8::1"), 53, Proto::Tcp, "fd00::2", 5353)
        );
        let v: Value = serde_json::json!({"prefix": {"addr": "10.1.0.0", "len": 16}});
        assert_eq!(elem_key_text("masq4", &v).unwrap(), "10.1.0.0/16");
        let v: Value = serde_json::json!({"concat": ["br0", "br0"]});
        assert_eq!(elem_key_text("same", &v).unwrap(), "\"br0\" . \"br0\"");
        assert_eq!(
            elem_key_text("bridges", &serde_json::json!("br0")).unwrap(),
            "\"br0\""
        );
    }

    #[test]
    fn netlink_batch_bytes() {
        let r = rule(None, 8080, Proto::Tcp, "10.0.0.2", 80);
        let e = port_bin(&r, "ports4");
        assert_eq!(e.key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        assert_eq!(e.data.as_deref(), Some(&[10, 0, 0, 2, 0, 80, 0, 0][..]));
        let r6 = rule(Some("2001:db8::1"), 53, Proto::Udp, "fd00::2", 5353);
        let e6 = port_bin(&r6, "ports6ip");
        assert_eq!(e6.key.len(), 16 + 4 + 4);
        assert_eq!(&e6.key[16..], [17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(e6.data.as_ref().unwrap().len(), 16 + 4);

        let b = netlink::batch(netlink::Op::Add, &[&e], 100);
        let ne = |v: u32| v.to_ne_bytes().to_vec();
        let ne16 = |v: u16| v.to_ne_bytes().to_vec();
        let mut want = Vec::new();
        // BATCH_BEGIN: len 20, type 0x10, NLM_F_REQUEST, seq 100, res_id 10 (BE).
        want.extend(ne(20));
        want.extend(ne16(0x10));
        want.extend(ne16(1));
        want.extend(ne(100));
        want.extend(ne(0));
        want.extend([0, 0, 0, 10]);
        // NEWSETELEM (10 << 8 | 12), REQUEST|ACK|CREATE, seq 101, inet.
        want.extend(ne(84));
        want.extend(ne16(0xa0c));
        want.extend(ne16(1 | 4 | 0x400));
        want.extend(ne(101));
        want.extend(ne(0));
        want.extend([1, 0, 0, 0]);
        want.extend(ne16(10));
        want.extend(ne16(1));
        want.extend(b"berth\0\0\0");
        want.extend(ne16(11));
        want.extend(ne16(2));
        want.extend(b"ports4\0\0");
        want.extend(ne16(40));
        want.extend(ne16(3 | 0x8000));
        want.extend(ne16(36));
        want.extend(ne16(1 | 0x8000));
        want.extend(ne16(16));
        want.extend(ne16(1 | 0x8000));
        want.extend(ne16(12));
        want.extend(ne16(1));
        want.extend([6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        want.extend(ne16(16));
        want.extend(ne16(2 | 0x8000));
        want.extend(ne16(12));
        want.extend(ne16(1));
        want.extend([10, 0, 0, 2, 0, 80, 0, 0]);
        // BATCH_END, seq 102.
        want.extend(ne(20));
        want.extend(ne16(0x11));
        want.extend(ne16(1));
        want.extend(ne(102));
        want.extend(ne(0));
        want.extend([0, 0, 0, 10]);
        assert_eq!(b, want);

        // DELSETELEM (10 << 8 | 14) carries the key only.
        let d = netlink::batch(netlink::Op::Delete, &[&port_bin(&r, "ports4")], 7);
        assert_eq!(&d[20 + 4..20 + 6], &ne16(0xa0e)[..]);
        assert_eq!(&d[20..24], &ne(84 - 16)[..]);
    }

    #[test]
    fn network_bin_bytes() {
        let n = NetworkRules {
            bridge: "br0".into(),
            subnets: vec![
                "10.91.1.7/24".parse().unwrap(),
                "fd00::/64".parse().unwrap(),
            ],
            internal: false,
            ..Default::default()
        };
        let v = network_bin(&n).unwrap();
        let sets: Vec<&str> = v.iter().map(|e| e.set).collect();
        assert_eq!(
            sets,
            ["bridges", "rules_v3", "same", "masq4", "masq4", "masq6", "masq6"]
        );
        let mut name = [0u8; 16];
        name[..3].copy_from_slice(b"br0");
        assert_eq!(v[0].key, name);
        assert_eq!(v[2].key, [name, name].concat());
        assert_eq!((v[3].key.as_slice(), v[3].flags), (&[10, 91, 1, 0][..], 0));
        assert_eq!(
            (v[4].key.as_slice(), v[4].flags),
            (&[10, 91, 2, 0][..], netlink::INTERVAL_END)
        );
        let end6: std::net::Ipv6Addr = "fd00:0:0:1::".parse().unwrap();
        assert_eq!(v[6].key, end6.octets());
        assert!(v.iter().all(|e| e.data.is_none()));
        // The top of the family has no end element: left to nft.
        let top = NetworkRules {
            subnets: vec!["255.255.255.0/24".parse().unwrap()],
            ..n.clone()
        };
        assert!(network_bin(&top).is_none());
        let internal = NetworkRules {
            internal: true,
            ..n
        };
        let sets: Vec<&str> = network_bin(&internal)
            .unwrap()
            .iter()
            .map(|e| e.set)
            .collect();
        assert_eq!(sets, ["bridges", "rules_v3", "same", "internal"]);
        // The guard: one-byte nf_proto keys, in both forms.
        let guarded = NetworkRules {
            guard4: true,
            guard6: true,
            ..internal
        };
        let g: Vec<Vec<u8>> = network_bin(&guarded)
            .unwrap()
            .into_iter()
            .filter(|e| e.set == "guard")
            .map(|e| e.key)
            .collect();
        assert_eq!(g, [vec![2u8], vec![10u8]]);
        let lines: Vec<String> = network_elements(&guarded)
            .unwrap()
            .iter()
            .filter(|e| e.set == "guard")
            .map(|e| e.line("add"))
            .collect();
        assert_eq!(
            lines,
            [
                "add element inet berth guard { ipv4 }\n",
                "add element inet berth guard { ipv6 }\n"
            ]
        );
    }

    #[test]
    fn nft_errors_become_one_line() {
        let stderr = "Error: Could not process rule: File exists\nadd element inet berth ports4 { tcp . 8080 : 10.91.1.3 . 80 }\n                                ^^^^^^^^^^\n";
        let st = std::process::Command::new("false").status().unwrap();
        assert_eq!(
            one_line(stderr, &st),
            "Could not process rule: File exists (add element inet berth ports4 { tcp . 8080 : 10.91.1.3 . 80 })"
        );
        assert_eq!(one_line("", &st), format!("nft failed ({st})"));
    }
}
