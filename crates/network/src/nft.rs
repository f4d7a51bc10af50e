//! berth's own nftables table, `table inet berth`: masquerade, published
//! ports, isolation between networks, the CVE-2020-8558 guard.
//!
//! The rules are fixed (written by [`add_network`], the same for every
//! network); networks and containers only add and remove set and map
//! ELEMENTS, so a container's cost does not grow with the number of
//! containers. No other table is ever touched, nothing is flushed but
//! berth's own chains. Each call is one `nft -f -` transaction (atomic).
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
//!   127.0.0.0/8 sources are masqueraded into a bridge).
//! - `forward` accepts within one bridge, drops anything into or out of an
//!   internal bridge, and into a bridge accepts only replies and DNATed
//!   (published) traffic: other bridges, and the outside addressing a
//!   container directly, are dropped. Outbound from a bridge is accepted.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkRules {
    pub bridge: String,
    pub subnets: Vec<IpNet>,
    pub internal: bool,
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
add set inet berth same { type ifname . ifname; }
add set inet berth internal { type ifname; }
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
add rule inet berth prerouting fib daddr type local jump published
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
add rule inet berth input iifname @bridges ip daddr 127.0.0.0/8 ct status & dnat == 0 drop
"#;

/// Creates the table, chains, sets and maps if missing, and adds the
/// network's elements. Idempotent.
pub fn add_network(n: &NetworkRules) -> Result<()> {
    let op = format!("add nft rules of network bridge {}", n.bridge);
    let elems = network_elements(n)?;
    let _lock = Lock::take(&op)?;
    let mut script = String::from(RULESET);
    for e in &elems {
        script.push_str(&e.line("add"));
    }
    run(&op, &script)
}

/// Removes the network's elements; if no network is left in the sets,
/// deletes berth's table.
pub fn remove_network(n: &NetworkRules) -> Result<()> {
    let op = format!("remove nft rules of network bridge {}", n.bridge);
    let elems = network_elements(n)?;
    let _lock = Lock::take(&op)?;
    let Some(table) = delete_elements(&op, &elems, true)? else {
        return Ok(());
    };
    if set_elements(&table, "bridges").is_empty() {
        run_tolerant(&op, "delete table inet berth\n")?;
    }
    Ok(())
}

/// Adds the published ports' DNAT elements (one transaction). The table
/// must exist ([`add_network`] first). A port already mapped to another
/// address is a Conflict.
pub fn add_ports(rules: &[PortRule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let op = format!("publish {}", describe(rules));
    let elems = port_elements(rules)?;
    let script: String = elems.iter().map(|e| e.line("add")).collect();
    match run(&op, &script) {
        Err(Error::Nft { msg, .. }) if msg.contains("File exists") => Err(Error::Conflict(
            format!("{op}: a host port is already published to another container ({msg})"),
        )),
        Err(Error::Nft { msg, .. }) if msg.contains("No such file or directory") => {
            Err(Error::Nft {
                op,
                msg: format!("berth's nft table is missing: set up the network first ({msg})"),
            })
        }
        r => r,
    }
}

/// Removes the published ports' elements (one transaction; missing
/// elements and a missing table are Ok). An element is found by its key
/// (host address, proto, host port), whatever container it points at.
pub fn remove_ports(rules: &[PortRule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    let op = format!("unpublish {}", describe(rules));
    let elems = port_elements(rules)?;
    delete_elements(&op, &elems, false).map(|_| ())
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
    run_tolerant(op, "delete table inet berth\n")
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
            set: "same",
            key: format!("{b} . {b}"),
            data: None,
        },
    ];
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

fn nft(op: &str, args: &[&str], stdin: Option<&str>) -> Result<Vec<u8>> {
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
        };
        let lines: String = network_elements(&n)
            .unwrap()
            .iter()
            .map(|e| e.line("add"))
            .collect();
        assert_eq!(
            lines,
            "add element inet berth bridges { \"br-1\" }\n\
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
        assert_eq!(lines.len(), 3);
        assert_eq!(
            lines[2],
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
