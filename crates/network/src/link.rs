//! Bridges, veth pairs, addresses and routes over a synchronous rtnetlink
//! socket (no `ip` command, no async runtime).
//!
//! Every change is a request with `NLM_F_ACK`; requests that do not depend
//! on each other's answers go out in one `send` (the kernel handles them in
//! order and acknowledges each), so an endpoint costs a handful of round
//! trips: on the host, one to find the bridge and one to create the pair
//! (its container end made directly in the namespace, named, with its MAC
//! and MTU); in the namespace, one to find the container end and one for
//! the addresses, the link state and the routes.

use std::net::IpAddr;
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;

use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_DUMP_INTR, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecInet6, AfSpecUnspec, InetDevConf, InfoBridgePort, InfoData, InfoKind,
    InfoPortData, InfoPortKind, InfoVeth, LinkAttribute, LinkExtentMask, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket};

use crate::{io, Error, Result};

/// A bridge network's device on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    pub name: String,
    pub mtu: Option<u32>,
    /// The gateway addresses with the subnet's prefix (10.88.0.1/16).
    pub addresses: Vec<IpNet>,
    pub ipv6: bool,
}

/// One container endpoint: a veth pair from a bridge into a namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    /// The host end, at most 15 bytes, chosen by the engine.
    pub host_name: String,
    /// The master of the host end.
    pub bridge: String,
    /// "eth0", "eth1" ... inside the namespace.
    pub container_name: String,
    /// Default: the bridge's.
    pub mtu: Option<u32>,
    /// Default: random, locally administered, unicast.
    pub mac: Option<[u8; 6]>,
    /// The container's addresses with the subnet's prefix.
    pub addresses: Vec<IpNet>,
    /// Default routes to add in the namespace (v4 and/or v6); may be empty.
    pub gateways: Vec<IpAddr>,
}

/// What [`attach`] made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attached {
    /// The container end's MAC.
    pub mac: [u8; 6],
    /// The host end's ifindex.
    pub host_index: u32,
}

/// The kernel's limit on interface names (IFNAMSIZ less the NUL).
const IFNAME_MAX: usize = 15;
/// `IFF_UP`.
const UP: LinkFlags = LinkFlags::Up;
/// Large enough for any single answer and for the kernel's dump batches
/// (the kernel sizes dump messages by the reader's buffer, up to 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// Checks an interface name: 1 to 15 bytes, no '/', ':' or whitespace, not
/// "." or "..".
pub fn check_name(name: &str, what: &str) -> Result<()> {
    let bad = name.is_empty()
        || name.len() > IFNAME_MAX
        || name == "."
        || name == ".."
        || name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b == 0 || b.is_ascii_whitespace());
    if bad {
        return Err(Error::Invalid(format!(
            "invalid {what} interface name {name:?}: 1 to {IFNAME_MAX} bytes without '/', ':' or spaces"
        )));
    }
    Ok(())
}

/// A NETLINK_ROUTE socket in the calling thread's current network namespace.
pub struct Netlink {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
}

/// One request of a batch: the message, its extra flags (beyond
/// REQUEST|ACK) and what it does, for errors.
#[derive(Clone)]
struct Req {
    msg: RouteNetlinkMessage,
    flags: u16,
    op: String,
    /// An errno that counts as success (EEXIST for "add if missing").
    ok_errno: Option<i32>,
}

impl Req {
    fn new(msg: RouteNetlinkMessage, flags: u16, op: impl Into<String>) -> Req {
        Req {
            msg,
            flags,
            op: op.into(),
            ok_errno: None,
        }
    }
}

/// The answers to a batch, in request order: the messages the kernel
/// returned for it, or its errno.
type Answers = Vec<std::result::Result<Vec<RouteNetlinkMessage>, i32>>;

impl Netlink {
    pub fn open() -> Result<Netlink> {
        let sock = Socket::new(NETLINK_ROUTE).map_err(io("open a NETLINK_ROUTE socket"))?;
        Ok(Netlink {
            sock,
            seq: 0,
            buf: vec![0; RECV_BUF],
        })
    }

    /// Sends `reqs` in one write and reads every answer (a dump's messages
    /// up to its DONE, then each acknowledgement). Errors are returned per
    /// request: the kernel goes on with the next request after a failed one.
    fn batch(&mut self, reqs: &[Req]) -> Result<Answers> {
        let first = self.seq.wrapping_add(1);
        let mut out = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            let mut header = NetlinkHeader::default();
            header.flags = NLM_F_REQUEST | NLM_F_ACK | r.flags;
            header.sequence_number = first.wrapping_add(i as u32);
            let mut m = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(r.msg.clone()));
            m.finalize();
            let at = out.len();
            out.resize(at + m.buffer_len(), 0);
            m.serialize(&mut out[at..]);
        }
        self.seq = first.wrapping_add(reqs.len() as u32);
        let what = || {
            reqs.first()
                .map_or("netlink", |r| r.op.as_str())
                .to_string()
        };
        let sent = self.sock.send(&out, 0).map_err(io(what()))?;
        if sent != out.len() {
            return Err(Error::Netlink {
                op: what(),
                msg: format!("short netlink write ({sent} of {} bytes)", out.len()),
            });
        }
        let mut answers: Answers = reqs.iter().map(|_| Ok(Vec::new())).collect();
        // A request is finished by its ACK or error, or (a dump) by its
        // DONE: the kernel sends no ACK after a dump's DONE.
        let mut finished = vec![false; reqs.len()];
        let mut pending = reqs.len();
        while pending > 0 {
            let n = berth_sys::retry(|| {
                // SAFETY: the buffer is ours and `len` bytes long.
                let n = unsafe {
                    libc::recv(
                        self.sock.as_raw_fd(),
                        self.buf.as_mut_ptr().cast(),
                        self.buf.len(),
                        libc::MSG_TRUNC,
                    )
                };
                berth_sys::cvt(n)
            })
            .map_err(io(format!("{}: read the kernel's answer", what())))?
                as usize;
            if n > self.buf.len() {
                return Err(Error::Netlink {
                    op: what(),
                    msg: format!("answer of {n} bytes truncated"),
                });
            }
            let mut at = 0;
            while at + 16 <= n {
                let b = &self.buf[at..n];
                let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                if len < 16 || len > b.len() {
                    return Err(Error::Netlink {
                        op: what(),
                        msg: format!("malformed netlink message of length {len}"),
                    });
                }
                let kind = u16::from_ne_bytes([b[4], b[5]]);
                let flags = u16::from_ne_bytes([b[6], b[7]]);
                let seq = u32::from_ne_bytes([b[8], b[9], b[10], b[11]]);
                let msg = &b[..len];
                at += (len + 3) & !3;
                let i = seq.wrapping_sub(first) as usize;
                if i >= reqs.len() || finished[i] {
                    // Not for a request of this batch still waiting: skip it.
                    continue;
                }
                match kind {
                    // NLMSG_ERROR: code 0 is the acknowledgement.
                    2 => {
                        let code = if len >= 20 {
                            i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]])
                        } else {
                            -libc::EIO
                        };
                        if code != 0 && Some(-code) != reqs[i].ok_errno {
                            answers[i] = Err(-code);
                        }
                        finished[i] = true;
                        pending -= 1;
                    }
                    // NLMSG_DONE ends a dump (its payload: 0 or an errno).
                    3 => {
                        let code = if len >= 20 {
                            i32::from_ne_bytes([msg[16], msg[17], msg[18], msg[19]])
                        } else {
                            0
                        };
                        if code < 0 {
                            answers[i] = Err(-code);
                        }
                        finished[i] = true;
                        pending -= 1;
                    }
                    // NLMSG_NOOP, NLMSG_OVERRUN
                    1 | 4 => {}
                    _ if flags & NLM_F_DUMP_INTR != 0 => {
                        // The table changed during the dump: the caller
                        // asks again (see `dump`).
                        answers[i] = Err(libc::EINTR);
                    }
                    _ => {
                        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg)
                            .map_err(|e| Error::Netlink {
                                op: reqs[i].op.clone(),
                                msg: format!("cannot decode the kernel's answer: {e}"),
                            })?;
                        if let (NetlinkPayload::InnerMessage(m), Ok(v)) =
                            (parsed.payload, &mut answers[i])
                        {
                            v.push(m);
                        }
                    }
                }
            }
        }
        Ok(answers)
    }

    /// [`Self::batch`], with the first failure as the error.
    fn run(&mut self, reqs: &[Req]) -> Result<Vec<Vec<RouteNetlinkMessage>>> {
        let answers = self.batch(reqs)?;
        let mut out = Vec::with_capacity(answers.len());
        for (a, r) in answers.into_iter().zip(reqs) {
            match a {
                Ok(v) => out.push(v),
                Err(errno) => return Err(netlink_error(&r.op, errno)),
            }
        }
        Ok(out)
    }

    /// A dump's messages, asked again (up to 3 times in all) when the
    /// kernel says the table changed while it was read.
    fn dump(&mut self, msg: RouteNetlinkMessage, op: &str) -> Result<Vec<RouteNetlinkMessage>> {
        let req = Req::new(msg, NLM_F_DUMP, op);
        let mut tries = 0;
        loop {
            tries += 1;
            match self.batch(std::slice::from_ref(&req))?.pop() {
                Some(Ok(v)) => return Ok(v),
                Some(Err(libc::EINTR)) if tries < 3 => continue,
                Some(Err(errno)) => return Err(netlink_error(op, errno)),
                None => return Ok(Vec::new()),
            }
        }
    }

    /// The link called `name`, or None.
    fn get_link(&mut self, name: &str) -> Result<Option<LinkMessage>> {
        let req = Req::new(get_link_msg(name), 0, format!("look up link {name}"));
        match self.batch(std::slice::from_ref(&req))?.pop() {
            Some(Ok(mut v)) => match v.pop() {
                Some(RouteNetlinkMessage::NewLink(l)) => Ok(Some(l)),
                _ => Err(Error::Netlink {
                    op: req.op,
                    msg: "no link in the kernel's answer".into(),
                }),
            },
            Some(Err(libc::ENODEV)) => Ok(None),
            Some(Err(errno)) => Err(netlink_error(&req.op, errno)),
            None => Ok(None),
        }
    }

    /// Creates the bridge if missing (idempotent: an existing bridge of that
    /// name is reused, a non-bridge link of that name is a Conflict), sets
    /// MTU, adds the missing addresses (IPv6 with IFA_F_NODAD), sets it up.
    /// For IPv4 sets net.ipv4.conf.<bridge>.route_localnet=1 (published ports
    /// on 127.0.0.1 are DNATed to the bridge; the nft helper adds the guard
    /// rule). Returns the ifindex.
    ///
    /// Also: a new bridge gets a fixed random MAC (in the creating request,
    /// so the bridge keeps it instead of taking its lowest port's, which
    /// would change the gateway's MAC under the containers as they come and
    /// go), loose reverse-path filtering (rp_filter=2, as netavark: strict
    /// mode drops forwarded replies with several networks), and the bridge
    /// never accepts IPv6 router advertisements (accept_ra=0: a container
    /// must not be able to give the host a default route). A kill at any
    /// point leaves a bridge that the next call completes.
    pub fn ensure_bridge(&mut self, b: &Bridge) -> Result<u32> {
        check_name(&b.name, "bridge")?;
        if let Some(a) = b.addresses.iter().find(|a| a.addr().is_ipv6() && !b.ipv6) {
            return Err(Error::Invalid(format!(
                "bridge {}: IPv6 address {a} on a network without IPv6",
                b.name
            )));
        }
        let link = match self.get_link(&b.name)? {
            Some(l) => l,
            None => {
                let mut msg = LinkMessage::default();
                msg.attributes.push(LinkAttribute::IfName(b.name.clone()));
                // A MAC of our own from the start: the bridge keeps it (the
                // kernel's br_dev_newlink makes it the bridge id with its
                // local FDB entry) instead of taking its lowest port's,
                // which would change the gateway's MAC under the containers
                // as they come and go. In the creating request, so no kill
                // can leave a bridge without it.
                msg.attributes
                    .push(LinkAttribute::Address(random_mac()?.to_vec()));
                if let Some(mtu) = b.mtu {
                    msg.attributes.push(LinkAttribute::Mtu(mtu));
                }
                msg.attributes
                    .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
                        InfoKind::Bridge,
                    )]));
                let create = Req::new(
                    RouteNetlinkMessage::NewLink(msg),
                    NLM_F_CREATE | NLM_F_EXCL,
                    format!("create bridge {}", b.name),
                );
                let get = Req::new(
                    get_link_msg(&b.name),
                    0,
                    format!("look up bridge {}", b.name),
                );
                let answers = self.batch(&[create, get])?;
                let mut answers = answers.into_iter();
                match answers.next() {
                    // EEXIST: made by a concurrent call, checked below as
                    // any existing link.
                    Some(Ok(_)) | Some(Err(libc::EEXIST)) => {}
                    Some(Err(errno)) => {
                        return Err(netlink_error(&format!("create bridge {}", b.name), errno))
                    }
                    None => return Err(missing_answer()),
                }
                match answers.next() {
                    Some(Ok(mut v)) => match v.pop() {
                        Some(RouteNetlinkMessage::NewLink(l)) => l,
                        _ => {
                            return Err(Error::Netlink {
                                op: format!("look up bridge {}", b.name),
                                msg: "no link in the kernel's answer".into(),
                            })
                        }
                    },
                    Some(Err(errno)) => {
                        return Err(netlink_error(&format!("look up bridge {}", b.name), errno))
                    }
                    None => return Err(missing_answer()),
                }
            }
        };
        let info = LinkState::of(&link);
        if info.kind.as_ref() != Some(&InfoKind::Bridge) {
            return Err(Error::Conflict(format!(
                "bridge {}: a network interface of that name exists and is not a bridge (choose another bridge name with -o com.docker.network.bridge.name=NAME)",
                b.name
            )));
        }
        let index = link.header.index;
        let mut change = LinkMessage::default();
        change.header.index = index;
        if !info.up {
            change.header.flags = UP;
            change.header.change_mask = UP;
        }
        if let Some(mtu) = b.mtu.filter(|m| Some(*m) != info.mtu) {
            change.attributes.push(LinkAttribute::Mtu(mtu));
        }
        let has_v4 = b.addresses.iter().any(|a| a.addr().is_ipv4());
        let mut conf = InetDevConf::default();
        let mut conf_change = false;
        if has_v4 && info.route_localnet != Some(1) {
            conf.route_localnet = 1;
            conf_change = true;
        }
        if info.rp_filter.is_some_and(|v| v != 2) {
            conf.rp_filter = 2;
            conf_change = true;
        }
        if conf_change {
            change
                .attributes
                .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
                    AfSpecInet::DevConfRequest(conf),
                ])]));
        }
        // IPv6 settings have no netlink setter (only sysctl): written only
        // when the link's own answer says they differ.
        if info.accept_ra.is_some_and(|v| v != 0) {
            write_sysctl(&format!("net/ipv6/conf/{}/accept_ra", b.name), "0")?;
        }
        if b.ipv6 && info.disable_ipv6.is_some_and(|v| v != 0) {
            write_sysctl(&format!("net/ipv6/conf/{}/disable_ipv6", b.name), "0")?;
        }
        let mut reqs = Vec::new();
        if !change.attributes.is_empty() || !info.up {
            reqs.push(Req::new(
                RouteNetlinkMessage::SetLink(change),
                0,
                format!("configure bridge {} (MTU, MAC, up)", b.name),
            ));
        }
        for a in &b.addresses {
            reqs.push(Req {
                ok_errno: Some(libc::EEXIST),
                ..Req::new(
                    RouteNetlinkMessage::NewAddress(address_msg(index, a)),
                    NLM_F_CREATE | NLM_F_EXCL,
                    format!("add address {a} to {}", b.name),
                )
            });
        }
        if !reqs.is_empty() {
            self.run(&reqs)?;
        }
        Ok(index)
    }

    /// Deletes a link by name; missing is Ok.
    pub fn delete_link(&mut self, name: &str) -> Result<()> {
        check_name(name, "link")?;
        let mut msg = LinkMessage::default();
        msg.attributes.push(LinkAttribute::IfName(name.to_string()));
        let req = Req::new(
            RouteNetlinkMessage::DelLink(msg),
            0,
            format!("delete link {name}"),
        );
        match self.batch(std::slice::from_ref(&req))?.pop() {
            Some(Err(libc::ENODEV)) | Some(Ok(_)) | None => Ok(()),
            Some(Err(errno)) => Err(netlink_error(&req.op, errno)),
        }
    }

    /// Names of all links (for reconciliation of leaked host veth ends by
    /// prefix).
    pub fn link_names(&mut self) -> Result<Vec<String>> {
        self.names_where(|_| true)
    }

    /// Names of the bridges (of any owner) in the namespace.
    pub fn bridge_names(&mut self) -> Result<Vec<String>> {
        self.names_where(|l| LinkState::of(l).kind == Some(InfoKind::Bridge))
    }

    /// Names of the links `keep` accepts (one dump, no statistics).
    fn names_where(&mut self, keep: impl Fn(&LinkMessage) -> bool) -> Result<Vec<String>> {
        let mut msg = LinkMessage::default();
        msg.attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
        let links = self.dump(RouteNetlinkMessage::GetLink(msg), "list links")?;
        Ok(links
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) if keep(&l) => {
                    l.attributes.into_iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Destinations of the routes of the main table (IPv4 and IPv6), for
    /// "subnet overlaps a route". Default routes (prefix length 0) are left
    /// out: every subnet is inside them.
    pub fn routes(&mut self) -> Result<Vec<IpNet>> {
        let routes = self.dump(
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            "list routes",
        )?;
        let mut out = Vec::new();
        for m in routes {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            let table = r
                .attributes
                .iter()
                .find_map(|a| match a {
                    RouteAttribute::Table(t) => Some(*t),
                    _ => None,
                })
                .unwrap_or(u32::from(r.header.table));
            let len = r.header.destination_prefix_length;
            if table != u32::from(RouteHeader::RT_TABLE_MAIN) || len == 0 {
                continue;
            }
            let dst = r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Destination(RouteAddress::Inet(a)) => Some(IpAddr::V4(*a)),
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => Some(IpAddr::V6(*a)),
                _ => None,
            });
            if let Some(net) = dst.and_then(|d| IpNet::new(d, len).ok()) {
                out.push(net.trunc());
            }
        }
        Ok(out)
    }
}

/// What [`Netlink::ensure_bridge`] needs to know of an existing link.
#[derive(Default)]
struct LinkState {
    kind: Option<InfoKind>,
    up: bool,
    mtu: Option<u32>,
    route_localnet: Option<i32>,
    rp_filter: Option<i32>,
    accept_ra: Option<i32>,
    disable_ipv6: Option<i32>,
}

impl LinkState {
    fn of(l: &LinkMessage) -> LinkState {
        let mut s = LinkState {
            up: l.header.flags.contains(UP),
            ..LinkState::default()
        };
        for a in &l.attributes {
            match a {
                LinkAttribute::Mtu(m) => s.mtu = Some(*m),
                LinkAttribute::LinkInfo(infos) => {
                    for i in infos {
                        if let LinkInfo::Kind(k) = i {
                            s.kind = Some(k.clone());
                        }
                    }
                }
                LinkAttribute::AfSpecUnspec(specs) => {
                    for spec in specs {
                        match spec {
                            AfSpecUnspec::Inet(v) => {
                                for i in v {
                                    if let AfSpecInet::DevConf(c) = i {
                                        s.route_localnet = Some(c.route_localnet);
                                        s.rp_filter = Some(c.rp_filter);
                                    }
                                }
                            }
                            AfSpecUnspec::Inet6(v) => {
                                for i in v {
                                    if let AfSpecInet6::DevConf(c) = i {
                                        s.accept_ra = Some(c.accept_ra);
                                        s.disable_ipv6 = Some(c.disable_ipv6);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        s
    }
}

fn get_link_msg(name: &str) -> RouteNetlinkMessage {
    let mut msg = LinkMessage::default();
    msg.attributes.push(LinkAttribute::IfName(name.to_string()));
    msg.attributes
        .push(LinkAttribute::ExtMask(vec![LinkExtentMask::SkipStats]));
    RouteNetlinkMessage::GetLink(msg)
}

fn address_msg(index: u32, a: &IpNet) -> AddressMessage {
    let mut m = AddressMessage::default();
    m.header.index = index;
    m.header.prefix_len = a.prefix_len();
    m.header.scope = AddressScope::Universe;
    match a.addr() {
        IpAddr::V4(ip) => {
            m.header.family = AddressFamily::Inet;
            m.attributes.push(AddressAttribute::Local(IpAddr::V4(ip)));
            m.attributes.push(AddressAttribute::Address(IpAddr::V4(ip)));
        }
        IpAddr::V6(ip) => {
            m.header.family = AddressFamily::Inet6;
            m.header.flags = AddressHeaderFlags::Nodad;
            m.attributes.push(AddressAttribute::Address(IpAddr::V6(ip)));
            m.attributes
                .push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
    }
    m
}

fn default_route_msg(gw: IpAddr) -> RouteMessage {
    let mut r = RouteMessage::default();
    r.header.address_family = if gw.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    r.header.table = RouteHeader::RT_TABLE_MAIN;
    r.header.protocol = RouteProtocol::Boot;
    r.header.scope = RouteScope::Universe;
    r.header.kind = RouteType::Unicast;
    r.attributes.push(RouteAttribute::Gateway(gw.into()));
    r
}

fn netlink_error(op: &str, errno: i32) -> Error {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // "File exists (os error 17)" -> "File exists"
    let msg = text.split(" (os error").next().unwrap_or(&text).to_string();
    Error::Netlink {
        op: op.to_string(),
        msg,
    }
}

/// A random unicast, locally administered MAC (as the kernel's
/// eth_random_addr).
fn random_mac() -> Result<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut got = 0;
    while got < mac.len() {
        // SAFETY: the pointer and length describe the unfilled part of `mac`.
        let n = unsafe { libc::getrandom(mac[got..].as_mut_ptr().cast(), mac.len() - got, 0) };
        match berth_sys::cvt(n) {
            Ok(n) => got += n as usize,
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) => return Err(io("read random bytes for a MAC address")(e)),
        }
    }
    mac[0] = (mac[0] & 0xfe) | 0x02;
    Ok(mac)
}

/// Writes `value` to /proc/sys/`key` (slashes), in the calling thread's
/// network namespace (/proc/sys/net follows the thread's namespace).
fn write_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    std::fs::write(&path, value).map_err(io(format!("set {}={value}", key.replace('/', "."))))
}

/// Reads /proc/sys/`key`, trimmed.
fn read_sysctl(key: &str) -> Result<String> {
    let path = format!("/proc/sys/{key}");
    let s =
        std::fs::read_to_string(&path).map_err(io(format!("read {}", key.replace('/', "."))))?;
    Ok(s.trim().to_string())
}

/// Sets `lo` up in the calling thread's namespace (a new namespace's
/// loopback is ifindex 1 and down).
pub fn loopback_up() -> Result<()> {
    let mut nl = Netlink::open()?;
    let mut msg = LinkMessage::default();
    msg.header.index = 1;
    msg.header.flags = UP;
    msg.header.change_mask = UP;
    nl.run(&[Req::new(
        RouteNetlinkMessage::SetLink(msg),
        0,
        "set the loopback up",
    )])?;
    Ok(())
}

/// Sets up one endpoint: a veth pair created in ONE request with its peer
/// already in the namespace at `netns` (IFLA_NET_NS_FD in the peer's info,
/// with its final name, MAC and MTU), so that a kill -9 at any moment cannot
/// leave the container end on the host (and removing the namespace removes
/// both ends). Host end: master = bridge, MTU, up. Inside (a thread in the
/// namespace): MAC and name already set; arp_notify=1 (a reused address
/// announces its new MAC at once), addresses (IPv6: nodad;
/// net.ipv6.conf.<if>.accept_dad=0 and disable_ipv6=0 when v6 is used), up,
/// then default routes via `gateways`. Returns the container end's MAC. On
/// error the host end is deleted (the pair goes with it).
pub fn attach(netns: &Path, v: &Veth) -> Result<Attached> {
    check_name(&v.host_name, "host veth")?;
    check_name(&v.bridge, "bridge")?;
    check_name(&v.container_name, "container")?;
    if let Some(g) = v.gateways.iter().find(|g| {
        !v.addresses
            .iter()
            .any(|a| a.addr().is_ipv4() == g.is_ipv4())
    }) {
        return Err(Error::Invalid(format!(
            "endpoint {}: gateway {g} without an address of its family",
            v.host_name
        )));
    }
    let ns = crate::netns::open_netns(netns)?;
    let mut nl = Netlink::open()?;
    let bridge = nl.get_link(&v.bridge)?.ok_or_else(|| {
        Error::NotFound(format!(
            "attach {} to bridge {}: no such bridge (the network's bridge is missing)",
            v.host_name, v.bridge
        ))
    })?;
    let br = LinkState::of(&bridge);
    if br.kind != Some(InfoKind::Bridge) {
        return Err(Error::Conflict(format!(
            "attach {} to {}: that interface is not a bridge",
            v.host_name, v.bridge
        )));
    }
    let mtu = v.mtu.or(br.mtu);
    let mac = match v.mac {
        Some(m) => m,
        None => random_mac()?,
    };

    let mut peer = LinkMessage::default();
    peer.attributes
        .push(LinkAttribute::IfName(v.container_name.clone()));
    peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
    if let Some(m) = mtu {
        peer.attributes.push(LinkAttribute::Mtu(m));
    }
    peer.attributes
        .push(LinkAttribute::NetNsFd(ns.as_fd().as_raw_fd()));
    // One queue each way: the kernel's default is one per possible CPU,
    // each a sysfs directory made at creation (a cost that grows with the
    // host's size), while a veth only uses them for XDP and GRO.
    peer.attributes.push(LinkAttribute::NumTxQueues(1));
    peer.attributes.push(LinkAttribute::NumRxQueues(1));
    let mut host = LinkMessage::default();
    host.attributes.push(LinkAttribute::NumTxQueues(1));
    host.attributes.push(LinkAttribute::NumRxQueues(1));
    host.header.flags = UP;
    host.header.change_mask = UP;
    host.attributes
        .push(LinkAttribute::IfName(v.host_name.clone()));
    if let Some(m) = mtu {
        host.attributes.push(LinkAttribute::Mtu(m));
    }
    host.attributes
        .push(LinkAttribute::Controller(bridge.header.index));
    host.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Veth),
        LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
    ]));
    let create = Req::new(
        RouteNetlinkMessage::NewLink(host),
        NLM_F_CREATE | NLM_F_EXCL,
        format!(
            "create veth pair {} (on bridge {}) and {} in {}",
            v.host_name,
            v.bridge,
            v.container_name,
            netns.display()
        ),
    );
    // Hairpin mode on the bridge port: a container's packet to its own
    // published port (DNATed back to it) may leave by the port it came in
    // by. A port's options are set once it has its master: a change of
    // the new link, by name.
    let mut port = LinkMessage::default();
    port.attributes
        .push(LinkAttribute::IfName(v.host_name.clone()));
    port.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::PortKind(InfoPortKind::Bridge),
        LinkInfo::PortData(InfoPortData::BridgePort(vec![InfoBridgePort::HairpinMode(
            true,
        )])),
    ]));
    let hairpin = Req::new(
        RouteNetlinkMessage::NewLink(port),
        0,
        format!("set hairpin mode on bridge port {}", v.host_name),
    );
    let get = Req::new(
        get_link_msg(&v.host_name),
        0,
        format!("look up veth {}", v.host_name),
    );
    let mut answers = nl.batch(&[create.clone(), hairpin.clone(), get.clone()])?;
    if matches!(answers.first(), Some(Err(libc::EEXIST)))
        && stale_port(&mut nl, &v.host_name, bridge.header.index)
    {
        // The same container's end on this bridge from its last run, whose
        // namespace the kernel is still taking down (it removes the pair
        // after the namespace's last user, asynchronously): a start right
        // after a stop. Only that endpoint has this name on this bridge
        // (the container's lock is held), so it goes now.
        nl.delete_link(&v.host_name)?;
        answers = nl.batch(&[create, hairpin, get])?;
    }
    let mut answers = answers.into_iter();
    match answers.next() {
        Some(Ok(_)) => {}
        Some(Err(libc::EEXIST)) => {
            // Nothing of ours was made: do not delete the existing link.
            return Err(Error::Conflict(format!(
                "create veth pair {} / {}: {} exists on the host or {} in {}",
                v.host_name,
                v.container_name,
                v.host_name,
                v.container_name,
                netns.display()
            )));
        }
        Some(Err(errno)) => {
            return Err(netlink_error(
                &format!(
                    "create veth pair {} (on bridge {}) and {} in {}",
                    v.host_name,
                    v.bridge,
                    v.container_name,
                    netns.display()
                ),
                errno,
            ))
        }
        None => return Err(missing_answer()),
    }
    match answers.next() {
        Some(Ok(_)) => {}
        Some(Err(errno)) => {
            let _ = nl.delete_link(&v.host_name);
            return Err(netlink_error(
                &format!("set hairpin mode on bridge port {}", v.host_name),
                errno,
            ));
        }
        None => return Err(missing_answer()),
    }
    // The host end's answer also gives the container end's ifindex (in its
    // namespace: IFLA_LINK), which saves a look-up in there.
    let ends = match answers.next() {
        Some(Ok(mut m)) => match m.pop() {
            Some(RouteNetlinkMessage::NewLink(l)) => {
                let peer = l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::Link(i) => Some(*i),
                    _ => None,
                });
                Some((l.header.index, peer))
            }
            _ => None,
        },
        _ => None,
    };
    let done = match ends {
        Some((host_index, peer)) => {
            crate::netns::run_in_fd(ns.as_fd(), netns, || configure_inside(v, peer))
                .and_then(|r| r)
                .map(|()| Attached { mac, host_index })
        }
        None => Err(Error::Netlink {
            op: format!("look up veth {}", v.host_name),
            msg: "not found right after its creation".into(),
        }),
    };
    if done.is_err() {
        // Best effort: the first error is the one to report.
        let _ = nl.delete_link(&v.host_name);
    }
    done
}

/// Whether the interface `name` on the host is a veth whose master is the
/// bridge of index `bridge` (a port of that bridge).
fn stale_port(nl: &mut Netlink, name: &str, bridge: u32) -> bool {
    let Ok(Some(l)) = nl.get_link(name) else {
        return false;
    };
    LinkState::of(&l).kind == Some(InfoKind::Veth)
        && l.attributes
            .iter()
            .any(|a| matches!(a, LinkAttribute::Controller(i) if *i == bridge))
}

fn missing_answer() -> Error {
    Error::Netlink {
        op: "netlink".into(),
        msg: "an answer is missing".into(),
    }
}

/// The namespace's side of [`attach`], on a thread in the namespace.
fn configure_inside(v: &Veth, index: Option<u32>) -> Result<()> {
    let mut nl = Netlink::open()?;
    let name = &v.container_name;
    let index = match index.filter(|i| *i != 0) {
        Some(i) => i,
        None => {
            nl.get_link(name)?
                .ok_or_else(|| Error::Netlink {
                    op: format!("look up {name} in the container's namespace"),
                    msg: "not found right after its creation".into(),
                })?
                .header
                .index
        }
    };
    if v.addresses.iter().any(|a| a.addr().is_ipv6()) {
        // Before the link is up, so its link-local address is never
        // tentative either.
        write_sysctl(&format!("net/ipv6/conf/{name}/disable_ipv6"), "0")?;
        write_sysctl(&format!("net/ipv6/conf/{name}/accept_dad"), "0")?;
    }
    let mut reqs = Vec::with_capacity(2 + v.addresses.len() + v.gateways.len());
    // arp_notify before up: the kernel announces the address when the link
    // comes up (a reused address's neighbours learn the new MAC at once).
    let mut notify = InetDevConf::default();
    notify.arp_notify = 1;
    let mut conf = LinkMessage::default();
    conf.header.index = index;
    conf.attributes
        .push(LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![
            AfSpecInet::DevConfRequest(notify),
        ])]));
    reqs.push(Req::new(
        RouteNetlinkMessage::SetLink(conf),
        0,
        format!("set arp_notify on {name}"),
    ));
    for a in &v.addresses {
        reqs.push(Req::new(
            RouteNetlinkMessage::NewAddress(address_msg(index, a)),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("add address {a} to {name}"),
        ));
    }
    let mut up = LinkMessage::default();
    up.header.index = index;
    up.header.flags = UP;
    up.header.change_mask = UP;
    reqs.push(Req::new(
        RouteNetlinkMessage::SetLink(up),
        0,
        format!("set {name} up"),
    ));
    for g in &v.gateways {
        reqs.push(Req::new(
            RouteNetlinkMessage::NewRoute(default_route_msg(*g)),
            NLM_F_CREATE | NLM_F_EXCL,
            format!("add default route via {g} on {name}"),
        ));
    }
    nl.run(&reqs)?;
    Ok(())
}

/// In the namespace at `netns`: a default route via each of `gateways`
/// (one per family, the first of each) unless that family has one already:
/// after `network connect` (a container with no route out gets the new
/// network's) and `network disconnect` (the route that went with the
/// removed network's interface moves to another), as Docker does.
pub fn ensure_default_routes(netns: &Path, gateways: &[IpAddr]) -> Result<()> {
    let mut reqs = Vec::new();
    for v4 in [true, false] {
        if let Some(g) = gateways.iter().find(|g| g.is_ipv4() == v4) {
            let mut r = Req::new(
                RouteNetlinkMessage::NewRoute(default_route_msg(*g)),
                NLM_F_CREATE | NLM_F_EXCL,
                format!("add default route via {g} in {}", netns.display()),
            );
            // One there already (this family's route out): kept.
            r.ok_errno = Some(libc::EEXIST);
            reqs.push(r);
        }
    }
    if reqs.is_empty() {
        return Ok(());
    }
    crate::netns::run_in(netns, || Netlink::open()?.run(&reqs).map(drop)).and_then(|r| r)
}

/// Removes an endpoint by its host end (`network disconnect` of a running
/// container); missing is Ok.
pub fn detach(host_name: &str) -> Result<()> {
    Netlink::open()?.delete_link(host_name)
}

/// net.ipv4.ip_forward=1 (and net.ipv6.conf.all.forwarding=1 if `ipv6`) in
/// the calling thread's namespace, written only when not already set.
pub fn ensure_forwarding(ipv6: bool) -> Result<()> {
    let (v4, v6) = forwarding_off(ipv6)?;
    if v4 {
        write_sysctl("net/ipv4/ip_forward", "1")?;
    }
    if v6 {
        write_sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// Which of IPv4 forwarding and (if `ipv6`) IPv6 forwarding are off: what
/// [`ensure_forwarding`] would turn on (noted by the caller first, so that
/// a kill -9 in between cannot lose that berth turned it on).
pub fn forwarding_off(ipv6: bool) -> Result<(bool, bool)> {
    Ok((
        read_sysctl("net/ipv4/ip_forward")? != "1",
        ipv6 && read_sysctl("net/ipv6/conf/all/forwarding")? != "1",
    ))
}

/// Turns forwarding off again for the families given (what
/// [`ensure_forwarding`] turned on, once nothing of berth's needs it).
pub fn disable_forwarding(ipv4: bool, ipv6: bool) -> Result<()> {
    if ipv4 {
        write_sysctl("net/ipv4/ip_forward", "0")?;
    }
    if ipv6 {
        write_sysctl("net/ipv6/conf/all/forwarding", "0")?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::netns;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
    use std::time::{Duration, Instant};

    pub(crate) fn require_root() {
        // SAFETY: getuid has no preconditions.
        let uid = unsafe { libc::getuid() };
        assert_eq!(
            uid, 0,
            "these tests need root (they make network namespaces, bridges and veth pairs)"
        );
    }

    /// Runs `f` on a thread in a new network namespace of its own (with its
    /// loopback up): the test's "host", so the real host is never touched.
    pub(crate) fn in_test_netns<T: Send>(f: impl FnOnce() -> T + Send) -> T {
        require_root();
        std::thread::scope(|s| {
            s.spawn(|| {
                // SAFETY: changes only this (new) thread's network namespace.
                let r = unsafe { libc::unshare(libc::CLONE_NEWNET) };
                assert_eq!(
                    r,
                    0,
                    "unshare(CLONE_NEWNET): {}",
                    std::io::Error::last_os_error()
                );
                loopback_up().unwrap();
                f()
            })
            .join()
            .unwrap()
        })
    }

    /// A temporary directory for namespace files that unmounts them when
    /// dropped, a failed test's too (a panic unwinds through it).
    pub(crate) struct NsDir(tempfile::TempDir);

    impl NsDir {
        pub(crate) fn new() -> NsDir {
            NsDir(tempfile::tempdir().unwrap())
        }
        pub(crate) fn path(&self) -> &Path {
            self.0.path()
        }
    }

    impl Drop for NsDir {
        fn drop(&mut self) {
            if let Ok(entries) = std::fs::read_dir(self.0.path()) {
                for e in entries.flatten() {
                    let _ = netns::remove(&e.path());
                }
            }
        }
    }

    /// What a test checks of a link, from the namespace it is in.
    #[derive(Debug)]
    pub(crate) struct Seen {
        pub index: u32,
        pub mtu: u32,
        pub mac: Vec<u8>,
        pub up: bool,
        pub master: Option<u32>,
    }

    pub(crate) fn seen(name: &str) -> Option<Seen> {
        let l = Netlink::open().unwrap().get_link(name).unwrap()?;
        let mut s = Seen {
            index: l.header.index,
            mtu: 0,
            mac: Vec::new(),
            up: l.header.flags.contains(UP),
            master: None,
        };
        for a in l.attributes {
            match a {
                LinkAttribute::Mtu(m) => s.mtu = m,
                LinkAttribute::Address(m) => s.mac = m,
                LinkAttribute::Controller(m) => s.master = Some(m),
                _ => {}
            }
        }
        Some(s)
    }

    /// (address, prefix, flags) of the link with `index`.
    fn addresses(index: u32) -> Vec<(IpAddr, u8, AddressFlags)> {
        let mut nl = Netlink::open().unwrap();
        let req = Req::new(
            RouteNetlinkMessage::GetAddress(AddressMessage::default()),
            NLM_F_DUMP,
            "list addresses",
        );
        let mut out = Vec::new();
        for m in nl.run(&[req]).unwrap().pop().unwrap() {
            let RouteNetlinkMessage::NewAddress(a) = m else {
                continue;
            };
            if a.header.index != index {
                continue;
            }
            let mut flags = AddressFlags::empty();
            let mut addr = None;
            for at in &a.attributes {
                match at {
                    AddressAttribute::Address(ip) => addr = Some(*ip),
                    AddressAttribute::Flags(f) => flags = *f,
                    _ => {}
                }
            }
            out.push((addr.unwrap(), a.header.prefix_len, flags));
        }
        out
    }

    /// Gateways of the default routes of the main table.
    fn default_gateways() -> Vec<IpAddr> {
        let mut nl = Netlink::open().unwrap();
        let req = Req::new(
            RouteNetlinkMessage::GetRoute(RouteMessage::default()),
            NLM_F_DUMP,
            "list routes",
        );
        let mut out = Vec::new();
        for m in nl.run(&[req]).unwrap().pop().unwrap() {
            let RouteNetlinkMessage::NewRoute(r) = m else {
                continue;
            };
            if r.header.destination_prefix_length != 0
                || r.header.table != RouteHeader::RT_TABLE_MAIN
            {
                continue;
            }
            for a in &r.attributes {
                match a {
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => out.push(IpAddr::V4(*g)),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => out.push(IpAddr::V6(*g)),
                    _ => {}
                }
            }
        }
        out
    }

    /// Waits (in the test only) for the kernel's asynchronous cleanup of a
    /// dead namespace to remove a link.
    pub(crate) fn wait_gone(name: &str) {
        let until = Instant::now() + Duration::from_secs(10);
        while Netlink::open()
            .unwrap()
            .link_names()
            .unwrap()
            .iter()
            .any(|n| n == name)
        {
            assert!(
                Instant::now() < until,
                "link {name} still exists after 10 s"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn bridge() -> Bridge {
        Bridge {
            name: "bt0".into(),
            mtu: Some(1400),
            addresses: vec![net("10.99.0.1/24"), net("fd99::1/64")],
            ipv6: true,
        }
    }

    fn veth(host: &str, c: &str, last: u8, mac: Option<[u8; 6]>) -> Veth {
        Veth {
            host_name: host.into(),
            bridge: "bt0".into(),
            container_name: c.into(),
            mtu: None,
            mac,
            addresses: vec![
                net(&format!("10.99.0.{last}/24")),
                net(&format!("fd99::{last}/64")),
            ],
            gateways: vec![ip("10.99.0.1"), ip("fd99::1")],
        }
    }

    fn sysctl_in(ns: &Path, key: &str) -> String {
        netns::run_in(ns, || read_sysctl(key).unwrap()).unwrap()
    }

    #[test]
    fn bridge_two_endpoints_traffic_and_removal() {
        in_test_netns(|| {
            let dir = NsDir::new();
            let (a, b) = (dir.path().join("a"), dir.path().join("b"));
            let mut nl = Netlink::open().unwrap();
            let index = nl.ensure_bridge(&bridge()).unwrap();
            let mac0 = seen("bt0").unwrap().mac;
            // Idempotent: the same bridge, addresses not doubled, its MAC
            // left alone.
            assert_eq!(nl.ensure_bridge(&bridge()).unwrap(), index);
            let br = seen("bt0").unwrap();
            assert_eq!(br.mac, mac0);
            assert_eq!((br.index, br.mtu, br.up), (index, 1400, true));
            let br_addrs = addresses(index);
            for want in ["10.99.0.1", "fd99::1"] {
                assert_eq!(
                    br_addrs.iter().filter(|x| x.0 == ip(want)).count(),
                    1,
                    "{br_addrs:?}"
                );
            }
            assert_eq!(
                read_sysctl("net/ipv4/conf/bt0/route_localnet").unwrap(),
                "1"
            );
            assert_eq!(read_sysctl("net/ipv4/conf/bt0/rp_filter").unwrap(), "2");
            assert_eq!(read_sysctl("net/ipv6/conf/bt0/accept_ra").unwrap(), "0");
            let routes = nl.routes().unwrap();
            assert!(routes.contains(&net("10.99.0.0/24")), "{routes:?}");
            assert!(routes.contains(&net("fd99::/64")), "{routes:?}");

            netns::create(&a).unwrap();
            netns::create(&b).unwrap();
            let given = [0x02, 0x42, 0x0a, 0x63, 0x00, 0x02];
            let at_a = attach(&a, &veth("vta", "eth0", 2, Some(given))).unwrap();
            // B: a random MAC, and an MTU of its own.
            let mut vb = veth("vtb", "eth0", 3, None);
            vb.mtu = Some(1300);
            let at_b = attach(&b, &vb).unwrap();
            assert_eq!(at_a.mac, given);
            assert_eq!(at_b.mac[0] & 0x03, 0x02, "locally administered unicast");

            // The bridge keeps its own MAC as ports come (the kernel would
            // otherwise take the lowest port's).
            assert_eq!(seen("bt0").unwrap().mac, br.mac);

            // Host ends: on the bridge, up, the bridge's MTU.
            for (name, at, mtu) in [("vta", at_a, 1400), ("vtb", at_b, 1300)] {
                let h = seen(name).unwrap();
                assert_eq!(h.index, at.host_index);
                assert_eq!((h.master, h.up, h.mtu), (Some(index), true, mtu));
            }
            // Inside: name, MAC, MTU, up, addresses (v6 without DAD), routes.
            for (ns, at, last, mtu) in [(&a, at_a, 2, 1400), (&b, at_b, 3, 1300)] {
                netns::run_in(ns, || {
                    let e = seen("eth0").unwrap();
                    assert_eq!((e.mac.as_slice(), e.mtu, e.up), (&at.mac[..], mtu, true));
                    let addrs = addresses(e.index);
                    assert!(
                        addrs.contains(&(
                            ip(&format!("10.99.0.{last}")),
                            24,
                            AddressFlags::Permanent
                        )),
                        "{addrs:?}"
                    );
                    let v6 = addrs
                        .iter()
                        .find(|x| x.0 == ip(&format!("fd99::{last}")))
                        .unwrap();
                    assert_eq!(v6.1, 64);
                    assert!(v6.2.contains(AddressFlags::Nodad), "{v6:?}");
                    assert!(!v6.2.contains(AddressFlags::Tentative), "{v6:?}");
                    let mut gws = default_gateways();
                    gws.sort();
                    assert_eq!(gws, vec![ip("10.99.0.1"), ip("fd99::1")]);
                    assert!(seen("lo").unwrap().up);
                    // Not the host's: only lo and eth0 are here.
                    let names = Netlink::open().unwrap().link_names().unwrap();
                    assert_eq!(names, vec!["lo".to_string(), "eth0".to_string()]);
                })
                .unwrap();
                assert_eq!(sysctl_in(ns, "net/ipv6/conf/eth0/accept_dad"), "0");
                assert_eq!(sysctl_in(ns, "net/ipv4/conf/eth0/arp_notify"), "1");
            }

            // Traffic through the bridge: UDP over v4, TCP over v6, A to B,
            // and A to the gateway's address on the host side.
            let secs5 = Duration::from_secs(5);
            let to = Some(secs5);
            let rx = netns::run_in(&b, || UdpSocket::bind("10.99.0.3:5000").unwrap()).unwrap();
            rx.set_read_timeout(to).unwrap();
            let tx = netns::run_in(&a, || UdpSocket::bind("0.0.0.0:0").unwrap()).unwrap();
            tx.send_to(b"over v4", "10.99.0.3:5000").unwrap();
            let mut buf = [0u8; 64];
            let (n, from) = rx.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"over v4");
            assert_eq!(from.ip(), ip("10.99.0.2"));

            let listener =
                netns::run_in(&b, || TcpListener::bind("[fd99::3]:5001").unwrap()).unwrap();
            let mut c = netns::run_in(&a, || {
                TcpStream::connect_timeout(&"[fd99::3]:5001".parse::<SocketAddr>().unwrap(), secs5)
                    .unwrap()
            })
            .unwrap();
            c.write_all(b"over v6").unwrap();
            let (mut s, peer) = listener.accept().unwrap();
            assert_eq!(peer.ip(), ip("fd99::2"));
            s.set_read_timeout(to).unwrap();
            let n = s.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"over v6");

            let gw = UdpSocket::bind("10.99.0.1:5002").unwrap();
            gw.set_read_timeout(to).unwrap();
            tx.send_to(b"to the gateway", "10.99.0.1:5002").unwrap();
            let (n, _) = gw.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"to the gateway");

            // routes() leaves default routes out (every subnet is in them).
            let mut nl2 = Netlink::open().unwrap();
            nl2.run(&[Req::new(
                RouteNetlinkMessage::NewRoute(default_route_msg(ip("10.99.0.2"))),
                NLM_F_CREATE | NLM_F_EXCL,
                "add a default route",
            )])
            .unwrap();
            assert_eq!(default_gateways(), vec![ip("10.99.0.2")]);
            let routes = nl2.routes().unwrap();
            assert!(routes.contains(&net("10.99.0.0/24")), "{routes:?}");
            assert!(routes.iter().all(|r| r.prefix_len() > 0), "{routes:?}");

            // Removing a namespace removes its pair (once nothing else holds
            // the namespace: a socket made in it does); detach removes one by
            // its host end (synchronously), both ends.
            drop((tx, rx, c, s, listener));
            netns::remove(&a).unwrap();
            assert!(!a.exists());
            wait_gone("vta");
            detach("vtb").unwrap();
            let names = nl.link_names().unwrap();
            assert!(!names.contains(&"vtb".to_string()), "{names:?}");
            netns::run_in(&b, || assert!(seen("eth0").is_none())).unwrap();
            detach("vtb").unwrap();
            netns::remove(&b).unwrap();
            nl.delete_link("bt0").unwrap();
            nl.delete_link("bt0").unwrap();
            assert!(seen("bt0").is_none());
        });
    }

    #[test]
    fn errors_name_the_object_and_leave_nothing() {
        in_test_netns(|| {
            let dir = NsDir::new();
            let ns = dir.path().join("c");
            let mut nl = Netlink::open().unwrap();
            let index = nl.ensure_bridge(&bridge()).unwrap();

            // Names: too long, with '/'.
            let mut long = bridge();
            long.name = "a-bridge-name-too-long".into();
            let e = nl.ensure_bridge(&long).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
            assert!(e.to_string().contains("a-bridge-name-too-long"), "{e}");
            let mut slash = veth("v/x", "eth0", 4, None);
            let e = attach(&ns, &slash).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
            slash.host_name = "vx".into();
            slash.container_name = "eth0-is-far-too-long".into();
            assert!(matches!(attach(&ns, &slash), Err(Error::Invalid(_))));

            // A missing namespace: NotFound, nothing made on the host.
            let e = attach(&ns, &veth("vtc", "eth0", 4, None)).unwrap_err();
            assert!(matches!(e, Error::NotFound(_)), "{e}");
            assert!(e.to_string().contains(&ns.display().to_string()), "{e}");
            assert!(seen("vtc").is_none());

            // A bridge name taken by a link that is not a bridge.
            netns::create(&ns).unwrap();
            attach(&ns, &veth("vtc", "eth0", 4, None)).unwrap();
            let mut taken = bridge();
            taken.name = "vtc".into();
            let e = nl.ensure_bridge(&taken).unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            assert!(e.to_string().contains("vtc"), "{e}");
            assert!(seen("vtc").unwrap().master == Some(index), "left as it was");

            // The same container name twice in a namespace: Conflict, and the
            // existing endpoint is left alone.
            let e = attach(&ns, &veth("vtd", "eth0", 5, None)).unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            assert!(seen("vtd").is_none());
            assert!(seen("vtc").is_some());

            // A failure inside (a gateway outside the subnet): the kernel's
            // error names the route, and the pair is deleted.
            let mut bad = veth("vte", "eth1", 6, None);
            bad.gateways = vec![ip("192.0.2.1")];
            let e = attach(&ns, &bad).unwrap_err();
            assert!(matches!(e, Error::Netlink { .. }), "{e}");
            assert!(
                e.to_string()
                    .starts_with("add default route via 192.0.2.1 on eth1: "),
                "{e}"
            );
            assert!(seen("vte").is_none(), "host end left behind");
            netns::run_in(&ns, || assert!(seen("eth1").is_none())).unwrap();

            // A missing bridge.
            let mut nobr = veth("vtf", "eth2", 7, None);
            nobr.bridge = "nobridge".into();
            let e = attach(&ns, &nobr).unwrap_err();
            assert!(matches!(e, Error::NotFound(_)), "{e}");
            assert!(e.to_string().contains("nobridge"), "{e}");

            netns::remove(&ns).unwrap();
            wait_gone("vtc");
            nl.delete_link("bt0").unwrap();
        });
    }

    #[test]
    fn forwarding_is_set_in_the_calling_namespace_only() {
        let host_v4 = read_sysctl("net/ipv4/ip_forward").unwrap();
        in_test_netns(|| {
            // A new namespace's IPv4 settings are the host's (with
            // net.core.devconf_inherit_init_net=0, the default): off first.
            write_sysctl("net/ipv4/ip_forward", "0").unwrap();
            write_sysctl("net/ipv6/conf/all/forwarding", "0").unwrap();
            assert_eq!(read_sysctl("net/ipv4/ip_forward").unwrap(), "0");
            ensure_forwarding(true).unwrap();
            assert_eq!(read_sysctl("net/ipv4/ip_forward").unwrap(), "1");
            assert_eq!(read_sysctl("net/ipv6/conf/all/forwarding").unwrap(), "1");
            ensure_forwarding(true).unwrap();
        });
        assert_eq!(read_sysctl("net/ipv4/ip_forward").unwrap(), host_v4);
    }

    #[test]
    fn names_are_checked() {
        for ok in ["eth0", "berth0", "a", "veth0123456789a"] {
            check_name(ok, "x").unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a:b", "a b", "veth0123456789ab"] {
            assert!(
                matches!(check_name(bad, "x"), Err(Error::Invalid(_))),
                "{bad:?}"
            );
        }
    }

    /// `attach` + `netns::create` + `netns::remove`: the median of 200.
    /// Run with `--ignored --nocapture`; it prints the numbers.
    #[test]
    #[ignore = "a measurement: run by hand"]
    fn bench_endpoint_setup() {
        in_test_netns(|| {
            let dir = NsDir::new();
            let mut nl = Netlink::open().unwrap();
            nl.ensure_bridge(&bridge()).unwrap();
            let (mut total, mut create, mut att, mut rm) = (vec![], vec![], vec![], vec![]);
            for i in 0..200u32 {
                let ns = dir.path().join(format!("n{i}"));
                let mut v = veth(&format!("vb{i}"), "eth0", 2 + (i % 200) as u8, None);
                v.addresses = vec![net(&format!("10.99.0.{}/24", 2 + i % 200))];
                v.gateways = vec![ip("10.99.0.1")];
                let t0 = Instant::now();
                netns::create(&ns).unwrap();
                let t1 = Instant::now();
                attach(&ns, &v).unwrap();
                let t2 = Instant::now();
                netns::remove(&ns).unwrap();
                let t3 = Instant::now();
                create.push(t1 - t0);
                att.push(t2 - t1);
                rm.push(t3 - t2);
                total.push(t3 - t0);
            }
            let med = |v: &mut Vec<Duration>| {
                v.sort();
                v[v.len() / 2]
            };
            println!(
                "v4 endpoint, median of 200: total {:?} (create {:?}, attach {:?}, remove {:?})",
                med(&mut total),
                med(&mut create),
                med(&mut att),
                med(&mut rm)
            );
            let mut v6 = vec![];
            for i in 0..200u32 {
                let ns = dir.path().join(format!("m{i}"));
                let v = veth(&format!("vc{i}"), "eth0", 2 + (i % 200) as u8, None);
                let t0 = Instant::now();
                netns::create(&ns).unwrap();
                attach(&ns, &v).unwrap();
                netns::remove(&ns).unwrap();
                v6.push(t0.elapsed());
            }
            println!("v4+v6 endpoint, median of 200: total {:?}", med(&mut v6));
            // 100 endpoints kept on one bridge: the last ones cost what the
            // first ones did.
            let mut each = vec![];
            for i in 0..100u32 {
                let ns = dir.path().join(format!("k{i}"));
                let mut v = veth(&format!("vk{i}"), "eth0", 2 + i as u8, None);
                v.addresses = vec![net(&format!("10.99.0.{}/24", 2 + i))];
                v.gateways = vec![ip("10.99.0.1")];
                let t0 = Instant::now();
                netns::create(&ns).unwrap();
                attach(&ns, &v).unwrap();
                each.push(t0.elapsed());
            }
            let (mut first, mut last) = (each[..10].to_vec(), each[90..].to_vec());
            println!(
                "100 kept: create+attach median of endpoints 1-10 {:?}, of 91-100 {:?}",
                med(&mut first),
                med(&mut last)
            );
            for i in 0..100u32 {
                netns::remove(&dir.path().join(format!("k{i}"))).unwrap();
            }
            nl.delete_link("bt0").unwrap();
        });
    }
}
