//! A network's definition and the checks of `network create`, as Docker
//! and podman make them.
//!
//! Choices where the two differ (documented for users in the README):
//! - a v6 `--subnet` implies `--ipv6` (podman); `--ipv6` without a v6
//!   subnet picks a random ULA /64 (`fdXX:XXXX:XXXX:XXXX::/64`, podman and
//!   Docker 27);
//! - subnets given: the network has those only (a v6-only network is
//!   possible); none given: a v4 /24 from berth's pool (and a ULA /64 with
//!   `--ipv6`);
//! - at most one subnet per family (an endpoint has one address of each);
//! - `--gateway` and `--ip-range` belong to the `--subnet` that contains
//!   them, in any order (Docker); the default gateway is the subnet's first
//!   address (podman), also when an `--ip-range` is given;
//! - options: `mtu` (also Docker's `com.docker.network.driver.mtu`) and
//!   `com.docker.network.bridge.name`; any other is refused by name.

use crate::{Error, Result};
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The name of the default network (Docker's).
pub const DEFAULT_NETWORK: &str = "bridge";
/// The default network's bridge interface.
pub const DEFAULT_BRIDGE: &str = "berth0";
/// The only driver.
pub const DRIVER: &str = "bridge";
/// The option naming the bridge interface (Docker's).
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
/// The MTU option (podman's name; Docker's is [`OPT_DOCKER_MTU`]).
pub const OPT_MTU: &str = "mtu";
/// Docker's name of the MTU option, accepted as [`OPT_MTU`].
pub const OPT_DOCKER_MTU: &str = "com.docker.network.driver.mtu";
/// The id of the predefined `host` network (not stored: no bridge, no
/// addresses; a container with `--network host` is on it).
pub const HOST_NETWORK_ID: &str =
    "29d8fbd501c48f24c0b0ab0a908c013d555ef2e9ed03d2a518b50c8d633061ee";
/// The id of the predefined `none` network (a loopback only).
pub const NONE_NETWORK_ID: &str =
    "8fad26f444f3ef9306232761713d4595de2bdedb4dd5dd8a2ff916d90be62e7e";

/// Docker's predefined `host` and `none` networks, by name, full id or the
/// 12-digit short id `network ls` shows (driver `host` and `null`, as in
/// Docker). `created`: when they are said to be made (the default
/// network's time).
pub fn predefined(name_or_id: &str, created: i64) -> Option<Network> {
    let short = |id: &str| name_or_id.len() >= 12 && id.starts_with(name_or_id);
    let (name, id, driver) = match name_or_id {
        "host" => ("host", HOST_NETWORK_ID, "host"),
        "none" => ("none", NONE_NETWORK_ID, "null"),
        s if short(HOST_NETWORK_ID) && s.len() <= 64 => ("host", HOST_NETWORK_ID, "host"),
        s if short(NONE_NETWORK_ID) && s.len() <= 64 => ("none", NONE_NETWORK_ID, "null"),
        _ => return None,
    };
    Some(Network {
        id: id.to_string(),
        name: name.to_string(),
        driver: driver.to_string(),
        bridge: String::new(),
        subnets: Vec::new(),
        ipv6: false,
        internal: false,
        dns: false,
        mtu: None,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        created,
    })
}

/// Docker's predefined networks (`bridge`, `host`, `none`): never removed,
/// `type=builtin` in filters, never dangling.
pub fn is_builtin(name: &str) -> bool {
    RESERVED_NAMES.contains(&name)
}

/// Names users cannot give a network (Docker's predefined networks).
pub const RESERVED_NAMES: [&str; 3] = ["none", "host", "bridge"];
/// The longest interface name the kernel takes (IFNAMSIZ - 1).
pub const IFNAME_MAX: usize = 15;

/// One subnet of a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subnet {
    pub subnet: IpNet,
    /// The bridge's address in the subnet. [`build`] always sets one (an
    /// `--internal` network has one too: the DNS responder listens there).
    pub gateway: Option<IpAddr>,
    /// Where addresses are given out from (`--ip-range`), inside `subnet`.
    pub ip_range: Option<IpNet>,
}

/// A network as stored (fields added later default when an older record
/// lacks them).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Network {
    /// 64 hex digits, random.
    pub id: String,
    pub name: String,
    /// "bridge".
    pub driver: String,
    /// The bridge interface: `-o com.docker.network.bridge.name=`, or the
    /// first free `berth<N>` (`berth0` for the default network).
    pub bridge: String,
    /// At most one IPv4 and one IPv6 subnet ([`build`]).
    pub subnets: Vec<Subnet>,
    pub ipv6: bool,
    pub internal: bool,
    /// Names resolved by berth's DNS responder (user networks unless
    /// `--disable-dns`; never the default network, as Docker).
    pub dns: bool,
    pub mtu: Option<u32>,
    pub labels: BTreeMap<String, String>,
    /// The options as given (`-o`).
    pub options: BTreeMap<String, String>,
    /// Unix nanoseconds.
    pub created: i64,
}

impl Network {
    /// The IPv4 subnet, if the network has one.
    pub fn v4(&self) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.subnet.addr().is_ipv4())
    }

    /// The IPv6 subnet, if the network has one.
    pub fn v6(&self) -> Option<&Subnet> {
        self.subnets.iter().find(|s| s.subnet.addr().is_ipv6())
    }

    /// The gateways (the bridge's addresses), v4 first.
    pub fn gateways(&self) -> Vec<IpAddr> {
        self.v4()
            .into_iter()
            .chain(self.v6())
            .filter_map(|s| s.gateway)
            .collect()
    }

    /// The first 12 digits of the id (Docker's short id).
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

/// What `network create` asks for, as the user gave it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CreateRequest {
    pub name: String,
    pub driver: Option<String>,
    pub subnets: Vec<String>,
    pub gateways: Vec<String>,
    pub ip_ranges: Vec<String>,
    pub ipv6: bool,
    pub internal: bool,
    pub disable_dns: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
}

/// The longest network name.
pub const NAME_MAX: usize = 253;

/// Checks a network name: `[a-zA-Z0-9][a-zA-Z0-9_.-]*` (Docker's and
/// podman's rule), [`NAME_MAX`] characters at most. Reserved names are
/// checked by [`build`].
pub fn check_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok && name.len() > NAME_MAX {
        // What a container's spec takes (`--network NAME`).
        return Err(Error::Invalid(format!(
            "invalid network name {}...: at most {NAME_MAX} characters",
            &name[..16]
        )));
    }
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid(format!(
            "invalid network name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        )))
    }
}

/// Checks an interface name as the kernel does (`dev_valid_name`): 1 to 15
/// bytes, not `.` or `..`, no `/`, `:`, whitespace or NUL.
pub fn check_ifname(name: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace() || b >= 0x7f);
    if bad {
        return Err(Error::Invalid(format!(
            "invalid bridge name {name:?}: an interface name is 1 to {IFNAME_MAX} bytes of printable ASCII, without '/', ':' or spaces, and not '.' or '..'"
        )));
    }
    Ok(())
}

/// Checks and completes a request as Docker and podman do (see the
/// module's documentation for where they differ): the name, the driver,
/// the subnets with their gateways and ranges, the options; a subnet from
/// berth's pool when none is given; overlaps with `existing` networks and
/// the host's routes (`host_routes`, whose default routes are ignored)
/// refused as conflicts naming both.
pub fn build(req: &CreateRequest, existing: &[Network], host_routes: &[IpNet]) -> Result<Network> {
    build_avoiding(req, existing, host_routes, &[])
}

/// [`build`], with a bridge name of berth's choosing that is none of
/// `host_links` (the host's interfaces: another berth root's bridge, or
/// anyone's, is never taken over).
pub fn build_avoiding(
    req: &CreateRequest,
    existing: &[Network],
    host_routes: &[IpNet],
    host_links: &[String],
) -> Result<Network> {
    let name = req.name.as_str();
    check_name(name)?;
    // `default` too: Docker's other name of the default bridge.
    if RESERVED_NAMES.contains(&name) || name == "default" {
        return Err(Error::Invalid(format!(
            "network name {name:?} is reserved (none, host and bridge are predefined, default is bridge): choose another name"
        )));
    }
    if existing.iter().any(|n| n.name == name) {
        return Err(Error::Conflict(format!("network {name} already exists")));
    }
    let driver = req.driver.as_deref().unwrap_or(DRIVER);
    if driver != DRIVER {
        return Err(Error::Invalid(format!(
            "network {name}: driver {driver:?} is not supported (only \"bridge\")"
        )));
    }
    let (mtu, bridge) = parse_options(name, &req.options)?;
    let bridge = match bridge {
        Some(b) => {
            if b == DEFAULT_BRIDGE {
                return Err(Error::Conflict(format!(
                    "bridge name {DEFAULT_BRIDGE} is reserved for the default network {DEFAULT_NETWORK}"
                )));
            }
            check_bridge_free(&b, existing)?;
            b
        }
        None => free_bridge_name(existing, host_links),
    };

    let mut subnets = parse_subnets(name, req)?;
    let has_v6 = subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    let has_v4 = subnets.iter().any(|s| s.subnet.addr().is_ipv4());
    for s in &subnets {
        check_free(name, s.subnet, existing, host_routes)?;
    }
    if !has_v4 && !has_v6 {
        let v4 = pick_v4_pool(existing, host_routes).ok_or_else(|| {
            Error::Exhausted(format!(
                "network {name}: no free /24 left in berth's pool 10.89.0.0 to 10.255.255.0 (all overlap networks or host routes): give one with --subnet"
            ))
        })?;
        subnets.push(complete(v4, None, None));
    }
    if req.ipv6 && !has_v6 {
        let v6 = pick_ula(existing, host_routes)?;
        subnets.push(complete(v6, None, None));
    }
    let ipv6 = subnets.iter().any(|s| s.subnet.addr().is_ipv6());
    if let (true, Some(m)) = (ipv6, mtu) {
        if m < 1280 {
            return Err(Error::Invalid(format!(
                "network {name}: mtu {m} is below IPv6's minimum of 1280 on an IPv6 network"
            )));
        }
    }
    Ok(Network {
        id: random_id()?,
        name: name.to_string(),
        driver: DRIVER.to_string(),
        bridge,
        subnets,
        ipv6,
        internal: req.internal,
        dns: !req.disable_dns,
        mtu,
        labels: req.labels.clone(),
        options: req.options.clone(),
        created: now_nanos(),
    })
}

/// The default network: [`DEFAULT_NETWORK`] on bridge [`DEFAULT_BRIDGE`],
/// no DNS (Docker's default bridge), IPv4 only, with Docker's 172.17.0.0/16
/// if it overlaps no network nor host route (Docker's own bridge has it
/// when dockerd runs: berth then takes the next), else the next free /16
/// of 172.17 to 172.31, then of 10/8 (10.88 upwards, then 10.0 upwards).
/// Not podman's 10.88.0.0/16 first: podman makes its bridge there without
/// looking at the host's routes, so two engines on one host would clash.
pub fn default_network(existing: &[Network], host_routes: &[IpNet]) -> Result<Network> {
    if existing.iter().any(|n| n.name == DEFAULT_NETWORK) {
        return Err(Error::Conflict(format!(
            "network {DEFAULT_NETWORK} already exists"
        )));
    }
    check_bridge_free(DEFAULT_BRIDGE, existing)?;
    let subnet = (17..=31u8)
        .map(|b| Ipv4Addr::new(172, b, 0, 0))
        .chain((88..=255u8).chain(0..88).map(|b| Ipv4Addr::new(10, b, 0, 0)))
        .map(|a| IpNet::V4(Ipv4Net::new(a, 16).expect("16 <= 32")))
        .find(|&c| overlap(c, existing, host_routes).is_none())
        .ok_or_else(|| {
            Error::Exhausted(format!(
                "default network {DEFAULT_NETWORK}: every /16 of 172.16.0.0/12 and 10.0.0.0/8 overlaps a network or a host route: remove one"
            ))
        })?;
    Ok(Network {
        id: random_id()?,
        name: DEFAULT_NETWORK.to_string(),
        driver: DRIVER.to_string(),
        bridge: DEFAULT_BRIDGE.to_string(),
        subnets: vec![complete(subnet, None, None)],
        ipv6: false,
        internal: false,
        dns: false,
        mtu: None,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        created: now_nanos(),
    })
}

/// The options: the MTU and the bridge's name; others refused.
fn parse_options(
    name: &str,
    options: &BTreeMap<String, String>,
) -> Result<(Option<u32>, Option<String>)> {
    let mut mtu = None;
    let mut bridge = None;
    for (k, v) in options {
        match k.as_str() {
            OPT_MTU | OPT_DOCKER_MTU => {
                let m = v.parse::<u32>().ok().filter(|m| (68..=65535).contains(m));
                let Some(m) = m else {
                    return Err(Error::Invalid(format!(
                        "network {name}: option {k}={v:?}: the MTU is a number from 68 to 65535"
                    )));
                };
                if mtu.is_some_and(|o| o != m) {
                    return Err(Error::Invalid(format!(
                        "network {name}: options {OPT_MTU} and {OPT_DOCKER_MTU} differ: give one"
                    )));
                }
                mtu = Some(m);
            }
            OPT_BRIDGE_NAME => {
                check_ifname(v).map_err(|e| Error::Invalid(format!("network {name}: {e}")))?;
                bridge = Some(v.clone());
            }
            _ => {
                return Err(Error::Invalid(format!(
                    "network {name}: option {k:?} is not supported (supported: {OPT_MTU}, {OPT_BRIDGE_NAME})"
                )))
            }
        }
    }
    Ok((mtu, bridge))
}

fn check_bridge_free(bridge: &str, existing: &[Network]) -> Result<()> {
    if let Some(n) = existing.iter().find(|n| n.bridge == bridge) {
        return Err(Error::Conflict(format!(
            "bridge name {bridge} is used by network {}",
            n.name
        )));
    }
    Ok(())
}

/// The first `berth<N>` (N >= 1) no network has.
fn free_bridge_name(existing: &[Network], host_links: &[String]) -> String {
    let mut n = 1u64;
    loop {
        let b = format!("berth{n}");
        if !existing.iter().any(|x| x.bridge == b) && !host_links.contains(&b) {
            return b;
        }
        n += 1;
    }
}

/// Parses a CIDR subnet (or range), refusing host bits.
fn parse_net(name: &str, what: &str, s: &str) -> Result<IpNet> {
    let net: IpNet = s.trim().parse().map_err(|_| {
        Error::Invalid(format!(
            "network {name}: invalid {what} {s:?}: give it in CIDR form (e.g. 10.89.1.0/24 or fd00:1::/64)"
        ))
    })?;
    if net.trunc() != net {
        return Err(Error::Invalid(format!(
            "network {name}: {what} {s} has host bits set: give {}",
            net.trunc()
        )));
    }
    Ok(net)
}

/// Ranges no subnet may touch: unspecified, loopback, multicast and
/// reserved, v4-mapped, and v6 link-local (the kernel's fe80::/64 on
/// every interface).
fn reserved_ranges() -> [(IpNet, &'static str); 8] {
    let n = |s: &str| s.parse::<IpNet>().expect("a valid constant");
    [
        (n("0.0.0.0/8"), "this-network"),
        (n("127.0.0.0/8"), "loopback"),
        (n("224.0.0.0/3"), "multicast and reserved"),
        (n("::/127"), "unspecified and loopback"),
        (n("::ffff:0:0/96"), "IPv4-mapped"),
        (n("fe80::/10"), "link-local"),
        (n("ff00::/8"), "multicast"),
        (n("255.255.255.255/32"), "broadcast"),
    ]
}

/// The subnets of a request, each with its gateway and range.
fn parse_subnets(name: &str, req: &CreateRequest) -> Result<Vec<Subnet>> {
    let mut nets: Vec<IpNet> = Vec::new();
    for s in &req.subnets {
        let net = parse_net(name, "subnet", s)?;
        for (r, what) in reserved_ranges() {
            if overlaps(net, r) {
                return Err(Error::Invalid(format!(
                    "network {name}: subnet {net} overlaps the {what} range {r}"
                )));
            }
        }
        if net.max_prefix_len() - net.prefix_len() < 2 {
            return Err(Error::Invalid(format!(
                "network {name}: subnet {net} is too small: a subnet needs at least 4 addresses (the network's, the gateway's, one container's and {})",
                if net.addr().is_ipv4() { "the broadcast address" } else { "one more" }
            )));
        }
        if let Some(o) = nets.iter().find(|&&o| overlaps(o, net)) {
            return Err(Error::Invalid(format!(
                "network {name}: subnets {o} and {net} overlap"
            )));
        }
        if let Some(o) = nets
            .iter()
            .find(|o| o.addr().is_ipv4() == net.addr().is_ipv4())
        {
            return Err(Error::Invalid(format!(
                "network {name}: more than one IPv{} subnet ({o} and {net}) is not supported",
                if net.addr().is_ipv4() { 4 } else { 6 }
            )));
        }
        nets.push(net);
    }
    let mut gateways: Vec<Option<IpAddr>> = vec![None; nets.len()];
    for g in &req.gateways {
        let ip: IpAddr = g.trim().parse().map_err(|_| {
            Error::Invalid(format!(
                "network {name}: invalid gateway {g:?}: give an IP address"
            ))
        })?;
        if nets.is_empty() {
            return Err(Error::Invalid(format!(
                "network {name}: --gateway {ip} needs the --subnet it belongs to"
            )));
        }
        let Some(i) = nets.iter().position(|n| n.contains(&ip)) else {
            return Err(Error::Invalid(format!(
                "network {name}: gateway {ip} is not inside any subnet given ({})",
                list(&nets)
            )));
        };
        if let Some(o) = gateways[i] {
            return Err(Error::Invalid(format!(
                "network {name}: two gateways ({o} and {ip}) for subnet {}",
                nets[i]
            )));
        }
        let net = nets[i];
        if ip == net.network() {
            return Err(Error::Invalid(format!(
                "network {name}: gateway {ip} is subnet {net}'s network address: use a host address"
            )));
        }
        if ip.is_ipv4() && ip == net.broadcast() {
            return Err(Error::Invalid(format!(
                "network {name}: gateway {ip} is subnet {net}'s broadcast address: use a host address"
            )));
        }
        gateways[i] = Some(ip);
    }
    let mut ranges: Vec<Option<IpNet>> = vec![None; nets.len()];
    for r in &req.ip_ranges {
        let range = parse_net(name, "ip-range", r)?;
        if nets.is_empty() {
            return Err(Error::Invalid(format!(
                "network {name}: --ip-range {range} needs the --subnet it belongs to"
            )));
        }
        let Some(i) = nets.iter().position(|n| n.contains(&range)) else {
            return Err(Error::Invalid(format!(
                "network {name}: ip-range {range} is not inside any subnet given ({})",
                list(&nets)
            )));
        };
        if let Some(o) = ranges[i] {
            return Err(Error::Invalid(format!(
                "network {name}: two ip-ranges ({o} and {range}) for subnet {}",
                nets[i]
            )));
        }
        ranges[i] = Some(range);
    }
    let mut out = Vec::new();
    for ((net, gw), range) in nets.into_iter().zip(gateways).zip(ranges) {
        let s = complete(net, gw, range);
        if let Some(range) = range {
            if Bounds::of(&s).size() == 0 {
                return Err(Error::Invalid(format!(
                    "network {name}: ip-range {range} has no address to give out in subnet {net} (the network, broadcast and gateway addresses are not given out)"
                )));
            }
        }
        out.push(s);
    }
    Ok(out)
}

fn list(nets: &[IpNet]) -> String {
    nets.iter()
        .map(|n| n.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A subnet with its gateway: the given one or the first address.
fn complete(subnet: IpNet, gateway: Option<IpAddr>, ip_range: Option<IpNet>) -> Subnet {
    let gateway = gateway.or_else(|| {
        Some(from_u128(
            subnet.addr(),
            to_u128(subnet.network()).saturating_add(1),
        ))
    });
    Subnet {
        subnet,
        gateway,
        ip_range,
    }
}

/// Whether two nets share an address (false across families).
pub fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// What `net` overlaps: a network (its name and subnet) or a host route
/// (default routes are ignored).
fn overlap(net: IpNet, existing: &[Network], host_routes: &[IpNet]) -> Option<String> {
    for n in existing {
        for s in &n.subnets {
            if overlaps(net, s.subnet) {
                return Some(format!("network {}'s subnet {}", n.name, s.subnet));
            }
        }
    }
    host_routes
        .iter()
        .find(|r| r.prefix_len() > 0 && overlaps(net, **r))
        .map(|r| format!("the host's route to {r}"))
}

/// A conflict if `net` overlaps a network or a host route.
pub fn check_free(
    name: &str,
    net: IpNet,
    existing: &[Network],
    host_routes: &[IpNet],
) -> Result<()> {
    match overlap(net, existing, host_routes) {
        Some(what) => Err(Error::Conflict(format!(
            "network {name}: subnet {net} overlaps {what}: choose another --subnet"
        ))),
        None => Ok(()),
    }
}

/// The first /24 of 10.89.0.0 to 10.255.255.0 that overlaps nothing.
fn pick_v4_pool(existing: &[Network], host_routes: &[IpNet]) -> Option<IpNet> {
    (89..=255u8)
        .flat_map(|b| (0..=255u8).map(move |c| Ipv4Addr::new(10, b, c, 0)))
        .map(|a| IpNet::V4(Ipv4Net::new(a, 24).expect("24 <= 32")))
        .find(|&c| overlap(c, existing, host_routes).is_none())
}

/// A random ULA /64 (RFC 4193: fd00::/8, a 40-bit global id and a 16-bit
/// subnet id) overlapping nothing.
fn pick_ula(existing: &[Network], host_routes: &[IpNet]) -> Result<IpNet> {
    for _ in 0..32 {
        let mut b = [0u8; 16];
        random_bytes(&mut b[1..8])?;
        b[0] = 0xfd;
        b[8..].fill(0);
        let net = IpNet::V6(Ipv6Net::new(Ipv6Addr::from(b), 64).expect("64 <= 128"));
        if overlap(net, existing, host_routes).is_none() {
            return Ok(net);
        }
    }
    Err(Error::Exhausted(
        "no free IPv6 ULA /64 found in 32 tries (every pick overlapped a network or a host route): give one with --subnet".to_string(),
    ))
}

/// The addresses a subnet gives out, as numbers: `lo..=hi` without
/// `gateway` (v4: not the network or broadcast address; v6: not the
/// network address, the subnet-router anycast).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Bounds {
    pub lo: u128,
    pub hi: u128,
    pub gateway: Option<u128>,
}

impl Bounds {
    pub(crate) fn of(s: &Subnet) -> Bounds {
        let net = s.subnet;
        let first = to_u128(net.network()).saturating_add(1);
        let last = to_u128(net.broadcast()).saturating_sub(u128::from(net.addr().is_ipv4()));
        let (lo, hi) = match s.ip_range {
            Some(r) => (
                to_u128(r.network()).max(first),
                to_u128(r.broadcast()).min(last),
            ),
            None => (first, last),
        };
        Bounds {
            lo,
            hi,
            gateway: s.gateway.map(to_u128),
        }
    }

    /// How many addresses are given out.
    pub(crate) fn size(&self) -> u128 {
        if self.lo > self.hi {
            return 0;
        }
        (self.hi - self.lo).saturating_add(1)
            - u128::from(
                self.gateway
                    .is_some_and(|g| (self.lo..=self.hi).contains(&g)),
            )
    }
}

pub(crate) fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `n` of `like`'s family.
pub(crate) fn from_u128(like: IpAddr, n: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
    }
}

fn random_bytes(b: &mut [u8]) -> Result<()> {
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(b))
        .map_err(crate::io("read /dev/urandom for a network id or subnet"))
}

/// 32 random bytes in hex: a network id.
pub fn random_id() -> Result<String> {
    let mut b = [0u8; 32];
    random_bytes(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(name: &str) -> CreateRequest {
        CreateRequest {
            name: name.to_string(),
            ..Default::default()
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn a_bridge_name_of_berths_choosing_is_no_host_interface() {
        let links = vec!["berth1".to_string(), "berth2".to_string(), "eth0".into()];
        let n = build_avoiding(&req("a"), &[], &[], &links).unwrap();
        assert_eq!(n.bridge, "berth3");
        // One given is the caller's to check (the engine refuses it).
        let given = CreateRequest {
            options: [(OPT_BRIDGE_NAME.to_string(), "berth1".to_string())].into(),
            ..req("b")
        };
        assert_eq!(
            build_avoiding(&given, &[], &[], &links).unwrap().bridge,
            "berth1"
        );
    }

    #[test]
    fn network_names_are_bounded() {
        assert!(check_name(&"a".repeat(NAME_MAX)).is_ok());
        let e = check_name(&"a".repeat(NAME_MAX + 1))
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most 253 characters"), "{e}");
    }

    fn with_subnet(name: &str, subnet: &str) -> CreateRequest {
        CreateRequest {
            subnets: vec![subnet.to_string()],
            ..req(name)
        }
    }

    /// `build`'s error text, which must be there.
    fn err(r: &CreateRequest, existing: &[Network], routes: &[IpNet]) -> String {
        match build(r, existing, routes) {
            Ok(n) => panic!("{r:?} was accepted: {n:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn ok(r: &CreateRequest) -> Network {
        build(r, &[], &[]).unwrap()
    }

    #[test]
    fn names_are_checked_and_reserved_ones_refused() {
        for bad in ["", "-a", ".a", "a b", "a/b", "a:b", "é", "a\n"] {
            let e = err(&req(bad), &[], &[]);
            assert!(
                e.starts_with(&format!("invalid network name {bad:?}: use letters")),
                "{e}"
            );
        }
        for r in ["none", "host", "bridge", "default"] {
            assert_eq!(
                err(&req(r), &[], &[]),
                format!("network name {r:?} is reserved (none, host and bridge are predefined, default is bridge): choose another name")
            );
        }
        let a = ok(&req("a1_b.c-d"));
        assert_eq!(a.name, "a1_b.c-d");
        assert_eq!(
            err(&req("a1_b.c-d"), &[a], &[]),
            "network a1_b.c-d already exists"
        );
    }

    #[test]
    fn a_plain_request_gets_the_defaults() {
        let n = ok(&req("app"));
        assert_eq!(n.id.len(), 64);
        assert!(n.id.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(n.driver, "bridge");
        assert_eq!(n.bridge, "berth1");
        assert_eq!(
            n.subnets,
            vec![Subnet {
                subnet: net("10.89.0.0/24"),
                gateway: Some("10.89.0.1".parse().unwrap()),
                ip_range: None
            }]
        );
        assert!(n.dns && !n.ipv6 && !n.internal);
        assert_eq!(n.mtu, None);
        assert!(n.created > 0);
        let d = build(
            &CreateRequest {
                disable_dns: true,
                internal: true,
                ..req("q")
            },
            &[],
            &[],
        )
        .unwrap();
        assert!(!d.dns && d.internal);
        assert_ne!(d.id, n.id);
    }

    #[test]
    fn only_the_bridge_driver() {
        let r = CreateRequest {
            driver: Some("macvlan".into()),
            ..req("m")
        };
        assert_eq!(
            err(&r, &[], &[]),
            "network m: driver \"macvlan\" is not supported (only \"bridge\")"
        );
        let r = CreateRequest {
            driver: Some("bridge".into()),
            ..req("m")
        };
        assert_eq!(build(&r, &[], &[]).unwrap().driver, "bridge");
    }

    #[test]
    fn subnets_are_checked() {
        let cases: &[(&[&str], &str)] = &[
            (&["10.1.1.1/24"], "network n: subnet 10.1.1.1/24 has host bits set: give 10.1.1.0/24"),
            (&["10.1.1.0"], "network n: invalid subnet \"10.1.1.0\": give it in CIDR form (e.g. 10.89.1.0/24 or fd00:1::/64)"),
            (&["nonsense"], "network n: invalid subnet \"nonsense\": give it in CIDR form (e.g. 10.89.1.0/24 or fd00:1::/64)"),
            (&["127.1.0.0/16"], "network n: subnet 127.1.0.0/16 overlaps the loopback range 127.0.0.0/8"),
            (&["0.0.0.0/0"], "network n: subnet 0.0.0.0/0 overlaps the this-network range 0.0.0.0/8"),
            (&["224.1.0.0/16"], "network n: subnet 224.1.0.0/16 overlaps the multicast and reserved range 224.0.0.0/3"),
            (&["fe80::/64"], "network n: subnet fe80::/64 overlaps the link-local range fe80::/10"),
            (&["ff02::/64"], "network n: subnet ff02::/64 overlaps the multicast range ff00::/8"),
            (&["10.0.0.0/31"], "network n: subnet 10.0.0.0/31 is too small: a subnet needs at least 4 addresses (the network's, the gateway's, one container's and the broadcast address)"),
            (&["fd00::/127"], "network n: subnet fd00::/127 is too small: a subnet needs at least 4 addresses (the network's, the gateway's, one container's and one more)"),
            (&["::1/128"], "network n: subnet ::1/128 overlaps the unspecified and loopback range ::/127"),
            (&["::ffff:10.0.0.0/120"], "network n: subnet ::ffff:10.0.0.0/120 overlaps the IPv4-mapped range ::ffff:0.0.0.0/96"),
            (&["10.0.0.0/16", "10.0.1.0/24"], "network n: subnets 10.0.0.0/16 and 10.0.1.0/24 overlap"),
            (&["10.0.0.0/24", "10.0.1.0/24"], "network n: more than one IPv4 subnet (10.0.0.0/24 and 10.0.1.0/24) is not supported"),
            (&["fd00::/64", "fd01::/64"], "network n: more than one IPv6 subnet (fd00::/64 and fd01::/64) is not supported"),
        ];
        for (subnets, want) in cases {
            let r = CreateRequest {
                subnets: subnets.iter().map(|s| s.to_string()).collect(),
                ..req("n")
            };
            assert_eq!(err(&r, &[], &[]), *want, "{subnets:?}");
        }
        let n = ok(&with_subnet("n", "10.0.0.0/30"));
        assert_eq!(n.subnets[0].gateway, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn gateways_belong_to_their_subnet() {
        let r = |subnets: &[&str], gateways: &[&str]| CreateRequest {
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            gateways: gateways.iter().map(|s| s.to_string()).collect(),
            ..req("g")
        };
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&[], &["10.0.0.1"], "network g: --gateway 10.0.0.1 needs the --subnet it belongs to"),
            (&["10.0.0.0/24"], &["10.0.1.1"], "network g: gateway 10.0.1.1 is not inside any subnet given (10.0.0.0/24)"),
            (&["10.0.0.0/24"], &["10.0.0.0"], "network g: gateway 10.0.0.0 is subnet 10.0.0.0/24's network address: use a host address"),
            (&["10.0.0.0/24"], &["10.0.0.255"], "network g: gateway 10.0.0.255 is subnet 10.0.0.0/24's broadcast address: use a host address"),
            (&["10.0.0.0/24"], &["10.0.0.1", "10.0.0.2"], "network g: two gateways (10.0.0.1 and 10.0.0.2) for subnet 10.0.0.0/24"),
            (&["10.0.0.0/24"], &["10.0.0.x"], "network g: invalid gateway \"10.0.0.x\": give an IP address"),
            (&["fd00::/64"], &["fd00::"], "network g: gateway fd00:: is subnet fd00::/64's network address: use a host address"),
        ];
        for (s, g, want) in cases {
            assert_eq!(err(&r(s, g), &[], &[]), *want, "{s:?} {g:?}");
        }
        // Matched by containment, in any order (Docker).
        let n = ok(&r(
            &["fd00::/64", "10.0.0.0/24"],
            &["10.0.0.254", "fd00::ffff"],
        ));
        assert_eq!(n.v4().unwrap().gateway, Some("10.0.0.254".parse().unwrap()));
        assert_eq!(n.v6().unwrap().gateway, Some("fd00::ffff".parse().unwrap()));
        assert_eq!(n.gateways().len(), 2);
        // The last v6 address is a host address (no broadcast).
        ok(&r(&["fd00::/126"], &["fd00::3"]));
    }

    #[test]
    fn ip_ranges_belong_to_their_subnet() {
        let r = |subnets: &[&str], ranges: &[&str]| CreateRequest {
            subnets: subnets.iter().map(|s| s.to_string()).collect(),
            ip_ranges: ranges.iter().map(|s| s.to_string()).collect(),
            ..req("r")
        };
        let cases: &[(&[&str], &[&str], &str)] = &[
            (&[], &["10.0.0.0/25"], "network r: --ip-range 10.0.0.0/25 needs the --subnet it belongs to"),
            (&["10.0.0.0/24"], &["10.0.0.0/23"], "network r: ip-range 10.0.0.0/23 is not inside any subnet given (10.0.0.0/24)"),
            (&["10.0.0.0/24"], &["10.0.0.1/25"], "network r: ip-range 10.0.0.1/25 has host bits set: give 10.0.0.0/25"),
            (&["10.0.0.0/24"], &["10.0.0.0/25", "10.0.0.128/25"], "network r: two ip-ranges (10.0.0.0/25 and 10.0.0.128/25) for subnet 10.0.0.0/24"),
            (&["10.0.0.0/24"], &["10.0.0.0/32"], "network r: ip-range 10.0.0.0/32 has no address to give out in subnet 10.0.0.0/24 (the network, broadcast and gateway addresses are not given out)"),
            (&["10.0.0.0/24"], &["10.0.0.1/32"], "network r: ip-range 10.0.0.1/32 has no address to give out in subnet 10.0.0.0/24 (the network, broadcast and gateway addresses are not given out)"),
        ];
        for (s, g, want) in cases {
            assert_eq!(err(&r(s, g), &[], &[]), *want, "{s:?} {g:?}");
        }
        let n = ok(&r(&["10.0.0.0/24"], &["10.0.0.128/25"]));
        assert_eq!(n.v4().unwrap().ip_range, Some(net("10.0.0.128/25")));
        // The gateway stays the subnet's first address (podman).
        assert_eq!(n.v4().unwrap().gateway, Some("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn options_are_checked() {
        let r = |k: &str, v: &str| CreateRequest {
            options: [(k.to_string(), v.to_string())].into(),
            ..req("o")
        };
        for v in ["abc", "67", "65536", "", "-1"] {
            assert_eq!(
                err(&r("mtu", v), &[], &[]),
                format!("network o: option mtu={v:?}: the MTU is a number from 68 to 65535")
            );
        }
        assert_eq!(ok(&r("mtu", "68")).mtu, Some(68));
        assert_eq!(
            ok(&r("com.docker.network.driver.mtu", "9000")).mtu,
            Some(9000)
        );
        let both = CreateRequest {
            options: [
                ("mtu".to_string(), "1400".to_string()),
                (OPT_DOCKER_MTU.to_string(), "1500".to_string()),
            ]
            .into(),
            ..req("o")
        };
        assert_eq!(
            err(&both, &[], &[]),
            "network o: options mtu and com.docker.network.driver.mtu differ: give one"
        );
        assert_eq!(
            err(&r("com.docker.network.bridge.enable_icc", "false"), &[], &[]),
            "network o: option \"com.docker.network.bridge.enable_icc\" is not supported (supported: mtu, com.docker.network.bridge.name)"
        );
        for bad in ["", "a234567890123456", "a/b", "a:b", "a b", ".", ".."] {
            let e = err(&r(OPT_BRIDGE_NAME, bad), &[], &[]);
            assert!(
                e.starts_with(&format!(
                    "network o: invalid bridge name {bad:?}: an interface name is 1 to 15 bytes"
                )),
                "{e}"
            );
        }
        let b = ok(&r(OPT_BRIDGE_NAME, "a23456789012345"));
        assert_eq!(b.bridge, "a23456789012345");
        assert_eq!(b.options.get(OPT_BRIDGE_NAME).unwrap(), "a23456789012345");
        assert_eq!(
            err(
                &CreateRequest {
                    name: "o2".into(),
                    ..r(OPT_BRIDGE_NAME, "a23456789012345")
                },
                &[b],
                &[]
            ),
            "bridge name a23456789012345 is used by network o"
        );
        assert_eq!(
            err(&r(OPT_BRIDGE_NAME, "berth0"), &[], &[]),
            "bridge name berth0 is reserved for the default network bridge"
        );
        // IPv6 needs 1280.
        let v6 = CreateRequest {
            ipv6: true,
            ..r("mtu", "1279")
        };
        assert_eq!(
            err(&v6, &[], &[]),
            "network o: mtu 1279 is below IPv6's minimum of 1280 on an IPv6 network"
        );
    }

    #[test]
    fn bridge_names_are_the_first_free() {
        let a = ok(&req("a"));
        let b = build(&req("b"), std::slice::from_ref(&a), &[]).unwrap();
        let c = build(&req("c"), &[a.clone(), b.clone()], &[]).unwrap();
        assert_eq!(
            (a.bridge.as_str(), b.bridge.as_str(), c.bridge.as_str()),
            ("berth1", "berth2", "berth3")
        );
        let d = build(&req("d"), &[a, c], &[]).unwrap();
        assert_eq!(d.bridge, "berth2");
    }

    #[test]
    fn ipv6_picks_a_ula_or_is_implied_by_a_v6_subnet() {
        let n = ok(&CreateRequest {
            ipv6: true,
            ..req("six")
        });
        assert!(n.ipv6);
        assert_eq!(n.v4().unwrap().subnet, net("10.89.0.0/24"));
        let v6 = n.v6().unwrap();
        assert_eq!(v6.subnet.prefix_len(), 64);
        let IpAddr::V6(a) = v6.subnet.addr() else {
            panic!()
        };
        assert_eq!(a.octets()[0], 0xfd, "{a}");
        assert_eq!(
            v6.gateway,
            Some(from_u128(v6.subnet.addr(), to_u128(v6.subnet.addr()) + 1))
        );
        let m = ok(&CreateRequest {
            ipv6: true,
            ..req("six")
        });
        assert_ne!(m.v6().unwrap().subnet, v6.subnet, "random");
        // A v6 subnet alone: v6 only, --ipv6 implied (podman).
        let o = ok(&with_subnet("only6", "fd12:3456::/64"));
        assert!(o.ipv6);
        assert_eq!(o.subnets.len(), 1);
        assert_eq!(
            o.v6().unwrap().gateway,
            Some("fd12:3456::1".parse().unwrap())
        );
        // A v4 subnet and --ipv6: a ULA beside it.
        let p = ok(&CreateRequest {
            ipv6: true,
            ..with_subnet("p", "192.168.7.0/24")
        });
        assert_eq!(p.subnets.len(), 2);
        assert!(p.v6().is_some());
    }

    #[test]
    fn the_pool_skips_networks_and_routes() {
        let a = ok(&req("a"));
        assert_eq!(a.v4().unwrap().subnet, net("10.89.0.0/24"));
        let routes = [net("10.89.1.0/24"), net("0.0.0.0/0"), net("::/0")];
        let b = build(&req("b"), std::slice::from_ref(&a), &routes).unwrap();
        assert_eq!(
            b.v4().unwrap().subnet,
            net("10.89.2.0/24"),
            "default routes ignored"
        );
        let c = build(&req("c"), &[], &[net("10.89.0.0/16")]).unwrap();
        assert_eq!(c.v4().unwrap().subnet, net("10.90.0.0/24"));
        let d = build(&req("d"), &[], &[net("10.89.0.128/32")]).unwrap();
        assert_eq!(d.v4().unwrap().subnet, net("10.89.1.0/24"));
        assert_eq!(
            err(&req("e"), &[], &[net("10.0.0.0/8")]),
            "network e: no free /24 left in berth's pool 10.89.0.0 to 10.255.255.0 (all overlap networks or host routes): give one with --subnet"
        );
        assert!(matches!(
            build(&req("e"), &[], &[net("10.0.0.0/8")]),
            Err(Error::Exhausted(_))
        ));
    }

    #[test]
    fn a_given_subnet_overlapping_a_network_or_route_is_a_conflict_naming_both() {
        let a = build(&with_subnet("a", "172.20.0.0/16"), &[], &[]).unwrap();
        let e = build(
            &with_subnet("b", "172.20.5.0/24"),
            std::slice::from_ref(&a),
            &[],
        )
        .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert_eq!(
            e.to_string(),
            "network b: subnet 172.20.5.0/24 overlaps network a's subnet 172.20.0.0/16: choose another --subnet"
        );
        assert_eq!(
            err(&with_subnet("b", "172.16.0.0/12"), &[a], &[]),
            "network b: subnet 172.16.0.0/12 overlaps network a's subnet 172.20.0.0/16: choose another --subnet"
        );
        assert_eq!(
            err(&with_subnet("b", "192.168.1.0/24"), &[], &[net("192.168.0.0/16")]),
            "network b: subnet 192.168.1.0/24 overlaps the host's route to 192.168.0.0/16: choose another --subnet"
        );
        // The default route is not a conflict.
        build(
            &with_subnet("b", "192.168.1.0/24"),
            &[],
            &[net("0.0.0.0/0")],
        )
        .unwrap();
    }

    #[test]
    fn predefined_host_and_none() {
        let h = predefined("host", 7).unwrap();
        assert_eq!(
            (h.name.as_str(), h.driver.as_str(), h.created),
            ("host", "host", 7)
        );
        assert_eq!(predefined(HOST_NETWORK_ID, 0).unwrap().name, "host");
        assert_eq!(
            predefined(&NONE_NETWORK_ID[..12], 0).unwrap().driver,
            "null"
        );
        for no in ["bridge", "hos", &HOST_NETWORK_ID[..11], "", "app"] {
            assert!(predefined(no, 0).is_none(), "{no}");
        }
        assert!(is_builtin("bridge") && is_builtin("none") && !is_builtin("app"));
    }

    #[test]
    fn the_default_network() {
        let d = default_network(&[], &[]).unwrap();
        assert_eq!(d.name, "bridge");
        assert_eq!(d.bridge, "berth0");
        assert!(!d.dns && !d.ipv6 && !d.internal);
        assert_eq!(d.v4().unwrap().subnet, net("172.17.0.0/16"));
        assert_eq!(d.v4().unwrap().gateway, Some("172.17.0.1".parse().unwrap()));
        // dockerd's docker0 there: the next.
        let e = default_network(&[], &[net("172.17.0.0/16")]).unwrap();
        assert_eq!(e.v4().unwrap().subnet, net("172.18.0.0/16"));
        // Never podman's default first, whatever is free.
        let all172 = net("172.16.0.0/12");
        let f = default_network(&[], &[all172]).unwrap();
        assert_eq!(f.v4().unwrap().subnet, net("10.88.0.0/16"));
        let user = ok(&req("u"));
        let f = default_network(&[user], &[all172, net("10.88.0.0/16")]).unwrap();
        assert_eq!(f.v4().unwrap().subnet, net("10.90.0.0/16"));
        assert_eq!(
            default_network(&[d], &[]).unwrap_err().to_string(),
            "network bridge already exists"
        );
        assert_eq!(
            default_network(&[], &[net("10.0.0.0/8"), all172])
                .unwrap_err()
                .to_string(),
            "default network bridge: every /16 of 172.16.0.0/12 and 10.0.0.0/8 overlaps a network or a host route: remove one"
        );
        // A user network there is skipped by the default's.
        let g = build(&with_subnet("g", "172.17.200.0/24"), &[], &[]).unwrap();
        assert_eq!(
            default_network(&[g], &[]).unwrap().v4().unwrap().subnet,
            net("172.18.0.0/16")
        );
    }

    #[test]
    fn bounds_skip_network_broadcast_and_know_the_gateway() {
        let n = ok(&with_subnet("b", "10.0.0.0/29"));
        let b = Bounds::of(n.v4().unwrap());
        assert_eq!(
            (b.lo, b.hi),
            (
                to_u128("10.0.0.1".parse().unwrap()),
                to_u128("10.0.0.6".parse().unwrap())
            )
        );
        assert_eq!(b.size(), 5);
        let v6 = ok(&with_subnet("b", "fd00::/126"));
        let b = Bounds::of(v6.v6().unwrap());
        assert_eq!(b.size(), 2, "::2 and ::3 (::1 is the gateway)");
        let huge = ok(&with_subnet("b", "fd00::/8"));
        assert_eq!(Bounds::of(huge.v6().unwrap()).size(), (1u128 << 120) - 2);
    }
}
