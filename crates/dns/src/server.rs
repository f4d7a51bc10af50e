//! The responder: a single-threaded poll loop over non-blocking sockets.
//!
//! Each network's `listen` addresses get a UDP and a TCP socket on port 53
//! (bound with `IP_FREEBIND`/`IPV6_FREEBIND`, so a bridge address that is
//! not configured yet does not fail the bind). A query is answered from the
//! records of the network whose address it arrived on ([`handle`], pure,
//! no I/O: unit-tested and fuzzed); a name that is not ours is forwarded to
//! the querying container's own `dns_servers` (matched by source address)
//! or else to the network's `upstreams`, in order, each with a timeout.
//!
//! Names: a container's names and aliases, and any unique prefix of its id
//! of at least 12 hex digits (up to 63: a DNS label holds no more, so the
//! full 64-digit id cannot be asked for), case-insensitive, bare or under the
//! search domain [`SEARCH_DOMAIN`] (`web`, `web.dns.berth`, `web.dns.berth.`).
//! A name under [`SEARCH_DOMAIN`] that is not ours is NXDOMAIN (never
//! forwarded); a name of ours without an address of the asked type is
//! NOERROR with no answers. PTR queries for a container's address answer
//! `<its first name>.dns.berth.`.
//!
//! Bounds (a hostile container must not starve the others or grow memory):
//! a token bucket of queries per source address ([`RateLimiter`]), enforced
//! over UDP while a listening socket has a backlog (so a fast client of an
//! idle responder is not cut) and always over TCP, at most
//! [`MAX_FORWARDS`] forwards in flight (the oldest is dropped beyond it) and
//! [`MAX_FORWARDS_PER_SOURCE`] per source (new ones are dropped beyond it),
//! at most [`MAX_TCP`] TCP connections ([`MAX_TCP_PER_SOURCE`] per source),
//! each closed after [`TCP_IDLE`] without a complete query; messages are at
//! most 64 KiB (the TCP length prefix's limit).
//!
//! Life: the engine starts the responder for the first container with
//! names to serve; once a reload finds no records left it lingers for
//! [`LINGER`] (serving nothing, its listeners closed) and then exits, unless
//! a reload brings records back first: a container started right after the
//! last one went (`run --rm` after `run --rm`) costs a SIGHUP and a reload,
//! not a new process. The engine stops it at once when the last network's
//! host state is unmade ([`crate::control::stop_nowait`]).

use crate::config::{NetworkFile, Record as ConfRecord};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use std::collections::{HashMap, HashSet};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The search domain the containers' names are served under.
pub const SEARCH_DOMAIN: &str = "dns.berth";
/// The TTL of our answers: short, so a change (disconnect, rename) is seen
/// at once by a client that caches.
pub const TTL: u32 = 5;
/// Forwards in flight, all sources together.
pub const MAX_FORWARDS: usize = 512;
/// Forwards in flight from one source address.
pub const MAX_FORWARDS_PER_SOURCE: usize = 64;
/// How long one upstream is given before the next one is tried.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(2000);
/// At most this many upstreams are tried for one query.
pub const MAX_UPSTREAM_TRIES: usize = 4;
/// TCP connections, all sources together.
pub const MAX_TCP: usize = 128;
/// TCP connections from one source address.
pub const MAX_TCP_PER_SOURCE: usize = 16;
/// A TCP connection without a complete query for this long is closed.
pub const TCP_IDLE: Duration = Duration::from_secs(10);
/// How long a responder with no records left waits for new ones before it
/// exits (bounded: no daemon stays behind the last container for long).
pub const LINGER: Duration = Duration::from_secs(10);
/// Queries per second one source may send (sustained), and its burst.
pub const RATE_PER_SOURCE: f64 = 5000.0;
pub const BURST_PER_SOURCE: f64 = 1000.0;
/// Sources the rate limiter tracks before it forgets idle ones.
pub const RATE_SOURCES: usize = 4096;
/// A network file larger than this is refused.
pub const MAX_FILE_BYTES: u64 = 16 << 20;
/// The largest UDP answer we build when the client gave no EDNS size.
const UDP_PLAIN: usize = 512;
/// The largest UDP answer we build whatever EDNS size the client gave (the
/// DNS flag day 2020 value: no IP fragmentation).
const UDP_EDNS_MAX: u16 = 1232;
/// The receive buffer of a listening UDP socket.
const UDP_RCVBUF: libc::c_int = 1 << 20;
/// Datagrams read from one socket per loop turn (fairness between sockets).
const BATCH: usize = 64;

/// One network's names, indexed for lookups.
#[derive(Debug, Default)]
pub struct Zone {
    /// The network's name (for logs).
    pub network: String,
    /// Its listen addresses.
    pub listen: Vec<IpAddr>,
    upstreams: Vec<SocketAddr>,
    records: Vec<ConfRecord>,
    /// Lowercased name or alias -> records.
    names: HashMap<String, Vec<usize>>,
    /// Lowercased full ids, sorted, for prefix lookups.
    ids: Vec<(String, usize)>,
    by_ip: HashMap<IpAddr, usize>,
    /// Who may ask (empty: anyone).
    sources: Vec<(IpAddr, u8)>,
}

/// `10.89.0.0/24` as (address, prefix length); None if malformed.
fn parse_cidr(s: &str) -> Option<(IpAddr, u8)> {
    let (a, p) = s.split_once('/')?;
    let a: IpAddr = a.parse().ok()?;
    let p: u8 = p.parse().ok()?;
    let max = if a.is_ipv4() { 32 } else { 128 };
    (p <= max).then_some((a, p))
}

/// Whether `ip` is inside `net/prefix`.
fn in_cidr(ip: IpAddr, (net, prefix): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(i), IpAddr::V4(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix))
            };
            u32::from(i) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(i), IpAddr::V6(n)) => {
            let mask = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix))
            };
            u128::from(i) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

fn normalize(name: &str) -> String {
    let n = name.trim_end_matches('.').to_ascii_lowercase();
    match n.strip_suffix(SEARCH_DOMAIN) {
        Some(rest) if rest.ends_with('.') => rest.trim_end_matches('.').to_owned(),
        _ => n,
    }
}

fn is_link_local(a: IpAddr) -> bool {
    match a {
        IpAddr::V4(a) => a.is_link_local(),
        IpAddr::V6(a) => a.segments()[0] & 0xffc0 == 0xfe80,
    }
}

/// Whether `src` may ask this network's zone.
impl Zone {
    pub fn admits(&self, src: IpAddr) -> bool {
        self.sources.is_empty() || self.sources.iter().any(|c| in_cidr(src, *c))
    }
}

/// Never forward to ourselves (a loop) or to an unspecified address.
fn usable_upstream(a: &SocketAddr, own: &HashSet<IpAddr>) -> bool {
    !own.contains(&a.ip()) && !a.ip().is_unspecified() && !a.ip().is_multicast() && a.port() != 0
}

impl Zone {
    /// Indexes `f`; `own` holds every address the responder listens on
    /// (removed from the upstreams so it never forwards to itself).
    pub fn new(f: &NetworkFile, own: &HashSet<IpAddr>) -> Zone {
        let mut z = Zone {
            network: f.network.clone(),
            listen: f.listen.clone(),
            upstreams: f
                .upstreams
                .iter()
                .filter(|a| usable_upstream(a, own))
                .copied()
                .collect(),
            records: f.records.clone(),
            sources: f.sources.iter().filter_map(|s| parse_cidr(s)).collect(),
            ..Zone::default()
        };
        for r in &mut z.records {
            // A container's own servers are asked from the host's
            // namespace: its loopback or link-local ones are the host's,
            // never reached on its behalf.
            r.dns_servers.retain(|a| {
                usable_upstream(a, own) && !a.ip().is_loopback() && !is_link_local(a.ip())
            });
        }
        if f.internal {
            // Nothing leaves an internal network, names included.
            z.upstreams.clear();
            for r in &mut z.records {
                r.dns_servers.clear();
            }
        }
        for (i, r) in z.records.iter().enumerate() {
            for n in &r.names {
                let n = normalize(n);
                if n.is_empty() {
                    continue;
                }
                let v = z.names.entry(n).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
            let id = r.id.to_ascii_lowercase();
            if !id.is_empty() {
                z.ids.push((id, i));
            }
            for a in r
                .ipv4
                .iter()
                .map(|a| IpAddr::V4(*a))
                .chain(r.ipv6.iter().map(|a| IpAddr::V6(*a)))
            {
                z.by_ip.entry(a).or_insert(i);
            }
        }
        z.ids.sort();
        z
    }

    /// The records a (lowercased, domain-stripped) name designates: by name
    /// or alias, else by a unique id prefix of at least 12 hex digits.
    pub fn lookup(&self, name: &str) -> Option<Vec<usize>> {
        if let Some(v) = self.names.get(name) {
            return Some(v.clone());
        }
        if name.len() < 12 || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let start = self.ids.partition_point(|(id, _)| id.as_str() < name);
        let mut hits = self.ids[start..]
            .iter()
            .take_while(|(id, _)| id.starts_with(name));
        let first = hits.next()?;
        if hits.next().is_some() {
            return None; // ambiguous
        }
        Some(vec![first.1])
    }

    /// The record that owns address `ip`.
    pub fn by_address(&self, ip: IpAddr) -> Option<&ConfRecord> {
        self.by_ip.get(&ip).map(|&i| &self.records[i])
    }

    /// Where a query from `src` that is not ours goes.
    pub fn upstreams_for(&self, src: IpAddr) -> &[SocketAddr] {
        match self.by_address(src) {
            Some(r) if !r.dns_servers.is_empty() => &r.dns_servers,
            _ => &self.upstreams,
        }
    }
}

/// Every network, by listen address.
#[derive(Debug, Default)]
pub struct Zones {
    zones: Vec<Zone>,
    by_listen: HashMap<IpAddr, usize>,
    /// Container id -> the zones it has a record in (in file order).
    by_id: HashMap<String, Vec<usize>>,
}

impl Zones {
    /// Indexes the networks; an address listed by two networks belongs to
    /// the first (the second is named in the returned warnings).
    pub fn new(files: &[NetworkFile]) -> (Zones, Vec<String>) {
        let own: HashSet<IpAddr> = files
            .iter()
            .flat_map(|f| f.listen.iter().copied())
            .collect();
        let mut zs = Zones::default();
        let mut warnings = Vec::new();
        for f in files {
            let i = zs.zones.len();
            zs.zones.push(Zone::new(f, &own));
            for r in &f.records {
                let id = r.id.to_ascii_lowercase();
                if id.is_empty() {
                    continue;
                }
                let v = zs.by_id.entry(id).or_default();
                if !v.contains(&i) {
                    v.push(i);
                }
            }
            for a in &f.listen {
                if let Some(&j) = zs.by_listen.get(a) {
                    warnings.push(format!(
                        "address {a} is listed by networks {:?} and {:?}: serving {:?} there",
                        zs.zones[j].network, f.network, zs.zones[j].network
                    ));
                } else {
                    zs.by_listen.insert(*a, i);
                }
            }
        }
        (zs, warnings)
    }

    /// The zone served on `local`.
    pub fn zone_at(&self, local: IpAddr) -> Option<&Zone> {
        self.by_listen.get(&local).map(|&i| &self.zones[i])
    }

    /// The other networks of the container that asks `zone` from `src`
    /// (as Docker's resolver, a container on several networks resolves the
    /// names of each of them, whichever network it asks on; never a
    /// network it is not on).
    pub fn siblings(&self, zone: &Zone, src: IpAddr) -> Vec<&Zone> {
        let Some(r) = zone.by_address(src) else {
            return Vec::new();
        };
        let Some(ix) = self.by_id.get(&r.id.to_ascii_lowercase()) else {
            return Vec::new();
        };
        ix.iter()
            .map(|&i| &self.zones[i])
            .filter(|z| !std::ptr::eq(*z, zone))
            .collect()
    }

    /// Every listen address.
    pub fn listen_addrs(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.by_listen.keys().copied()
    }
}

/// What to do with one message that arrived.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    /// Send this answer back.
    Reply(Vec<u8>),
    /// Relay the query unchanged to these upstreams, in order.
    Forward(Vec<SocketAddr>),
    /// Send nothing (too short to answer, or not a query).
    Drop,
}

const RCODE_FORMERR: u8 = 1;
const RCODE_SERVFAIL: u8 = 2;
const RCODE_NOTIMP: u8 = 4;
const RCODE_REFUSED: u8 = 5;

/// The end of the (first) question of `q`, if it has one that is well formed.
fn question_end(q: &[u8]) -> Option<usize> {
    if q.len() < 12 || u16::from_be_bytes([q[4], q[5]]) == 0 {
        return None;
    }
    let mut i = 12;
    loop {
        let l = *q.get(i)? as usize;
        if l == 0 {
            i += 1;
            break;
        }
        if l & 0xC0 == 0xC0 {
            i += 2;
            break;
        }
        if l > 63 {
            return None;
        }
        i += 1 + l;
    }
    let end = i + 4;
    (end <= q.len()).then_some(end)
}

/// An answer made of the query's header (id, opcode, RD, CD) with `rcode`,
/// and its question when `with_question` and the question is well formed.
pub fn error_reply(q: &[u8], rcode: u8, with_question: bool) -> Vec<u8> {
    if q.len() < 12 {
        return Vec::new();
    }
    let qend = if with_question { question_end(q) } else { None };
    let mut out = Vec::with_capacity(qend.unwrap_or(12));
    out.extend_from_slice(&q[..2]);
    out.push(0x80 | (q[2] & 0x79)); // QR, opcode, RD
    out.push(0x80 | (q[3] & 0x10) | (rcode & 0x0F)); // RA, CD, rcode
    out.extend_from_slice(&[0, u8::from(qend.is_some()), 0, 0, 0, 0, 0, 0]);
    if let Some(end) = qend {
        out.extend_from_slice(&q[12..end]);
    }
    out
}

/// The lowercased text of a query name without its trailing dot, if every
/// label is plain printable ASCII without dots (anything else is not ours).
fn name_key(name: &Name) -> Option<String> {
    let mut s = String::with_capacity(name.len());
    for label in name.iter() {
        if label.is_empty() || !label.iter().all(|&b| b.is_ascii_graphic() && b != b'.') {
            return None;
        }
        if !s.is_empty() {
            s.push('.');
        }
        for &b in label {
            s.push(b.to_ascii_lowercase() as char);
        }
    }
    Some(s)
}

/// The address a full reverse name designates (`4.3.2.1.in-addr.arpa`,
/// the 32 nibbles of `ip6.arpa`).
pub fn parse_reverse(key: &str) -> Option<IpAddr> {
    if let Some(rest) = key.strip_suffix(".in-addr.arpa") {
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 4 {
            return None;
        }
        let mut o = [0u8; 4];
        for (i, l) in labels.iter().rev().enumerate() {
            if l.is_empty() || l.len() > 3 || !l.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            o[i] = l.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    if let Some(rest) = key.strip_suffix(".ip6.arpa") {
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for l in labels.iter().rev() {
            if l.len() != 1 {
                return None;
            }
            v = (v << 4) | u128::from(u8::from_str_radix(l, 16).ok()?);
        }
        return Some(IpAddr::V6(Ipv6Addr::from(v)));
    }
    None
}

/// Answers one message that arrived on `zone`'s address from `src` (over
/// TCP when `tcp`): pure, no I/O; never panics whatever the bytes.
pub fn handle(zone: Option<&Zone>, src: IpAddr, query: &[u8], tcp: bool) -> Action {
    handle_with(zone, &[], src, query, tcp)
}

/// [`handle`], where names not in `zone` are also looked up in `siblings`,
/// the asking container's other networks ([`Zones::siblings`]).
pub fn handle_with(
    zone: Option<&Zone>,
    siblings: &[&Zone],
    src: IpAddr,
    query: &[u8],
    tcp: bool,
) -> Action {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Action::Drop; // no header, or a response: never answer those
    }
    if (query[2] >> 3) & 0x0F != 0 {
        return Action::Reply(error_reply(query, RCODE_NOTIMP, false));
    }
    let req = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return Action::Reply(error_reply(query, RCODE_FORMERR, false)),
    };
    if req.queries.len() != 1 {
        return Action::Reply(error_reply(query, RCODE_FORMERR, false));
    }
    let Some(zone) = zone.filter(|z| z.admits(src)) else {
        // No zone here, or a source that is not on the network (another
        // network's container, the outside): refused, not answered.
        return Action::Reply(error_reply(query, RCODE_REFUSED, true));
    };
    let q = &req.queries[0];
    let qtype = q.query_type();
    let local_class = matches!(q.query_class(), DNSClass::IN | DNSClass::ANY);
    let key = name_key(q.name());

    let mut answers: Vec<Record> = Vec::new();
    let rcode = 'local: {
        let Some(key) = key.filter(|_| local_class) else {
            break 'local None;
        };
        if let Some(ip) = parse_reverse(&key) {
            let Some(r) = std::iter::once(zone)
                .chain(siblings.iter().copied())
                .find_map(|z| z.by_address(ip))
            else {
                break 'local None;
            };
            if matches!(qtype, RecordType::PTR | RecordType::ANY) {
                let label = r
                    .names
                    .first()
                    .map(|n| normalize(n))
                    .unwrap_or_else(|| r.id.chars().take(12).collect());
                if let Ok(target) = Name::from_ascii(format!("{label}.{SEARCH_DOMAIN}.")) {
                    answers.push(Record::from_rdata(
                        q.name().clone(),
                        TTL,
                        RData::PTR(PTR(target)),
                    ));
                }
            }
            break 'local Some(ResponseCode::NoError);
        }
        let (rest, ours) = if key == SEARCH_DOMAIN {
            break 'local Some(ResponseCode::NoError);
        } else if let Some(rest) = key
            .strip_suffix(SEARCH_DOMAIN)
            .and_then(|r| r.strip_suffix('.'))
        {
            (rest, true)
        } else {
            (key.as_str(), false)
        };
        let found = std::iter::once(zone)
            .chain(siblings.iter().copied())
            .find_map(|z| z.lookup(rest).map(|idx| (z, idx)));
        match found {
            Some((z, idx)) => {
                for i in idx {
                    let r = &z.records[i];
                    if matches!(qtype, RecordType::A | RecordType::ANY) {
                        for a in &r.ipv4 {
                            answers.push(Record::from_rdata(
                                q.name().clone(),
                                TTL,
                                RData::A(A(*a)),
                            ));
                        }
                    }
                    if matches!(qtype, RecordType::AAAA | RecordType::ANY) {
                        for a in &r.ipv6 {
                            answers.push(Record::from_rdata(
                                q.name().clone(),
                                TTL,
                                RData::AAAA(AAAA(*a)),
                            ));
                        }
                    }
                }
                Some(ResponseCode::NoError)
            }
            None if ours => Some(ResponseCode::NXDomain),
            None => None,
        }
    };
    let Some(rcode) = rcode else {
        let ups = zone.upstreams_for(src);
        if ups.is_empty() {
            return Action::Reply(error_reply(query, RCODE_SERVFAIL, true));
        }
        return Action::Forward(ups.iter().take(MAX_UPSTREAM_TRIES).copied().collect());
    };

    let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
    resp.metadata.authoritative = true;
    resp.metadata.recursion_desired = req.metadata.recursion_desired;
    resp.metadata.recursion_available = true;
    resp.metadata.checking_disabled = req.metadata.checking_disabled;
    resp.metadata.response_code = rcode;
    resp.queries = req.queries.clone();
    let mut limit = UDP_PLAIN;
    if let Some(e) = &req.edns {
        let mut out = Edns::new();
        out.set_max_payload(UDP_EDNS_MAX);
        resp.edns = Some(out);
        limit = usize::from(e.max_payload().clamp(UDP_PLAIN as u16, UDP_EDNS_MAX));
    }
    resp.answers = answers;
    let Ok(mut bytes) = resp.to_vec() else {
        return Action::Reply(error_reply(query, RCODE_SERVFAIL, true));
    };
    if !tcp && bytes.len() > limit {
        resp.answers.clear();
        resp.metadata.truncation = true;
        match resp.to_vec() {
            Ok(b) => bytes = b,
            Err(_) => return Action::Reply(error_reply(query, RCODE_SERVFAIL, true)),
        }
    }
    Action::Reply(bytes)
}

/// A token bucket per source address, with a bounded number of sources.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    max_sources: usize,
    buckets: HashMap<IpAddr, (f64, Instant)>,
}

impl RateLimiter {
    pub fn new(rate: f64, burst: f64, max_sources: usize) -> Self {
        RateLimiter {
            rate,
            burst,
            max_sources,
            buckets: HashMap::new(),
        }
    }

    /// Whether one more query from `src` at `now` is allowed.
    pub fn allow(&mut self, src: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&src) && self.buckets.len() >= self.max_sources {
            // Forget the sources whose bucket is full again (idle); if all
            // are busy, forget all: memory stays bounded either way.
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (t, at)| {
                *t + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= self.max_sources {
                self.buckets.clear();
            }
        }
        let (tokens, at) = self.buckets.entry(src).or_insert((self.burst, now));
        *tokens = (*tokens + now.saturating_duration_since(*at).as_secs_f64() * self.rate)
            .min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Sources tracked.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

// ---------------------------------------------------------------------------
// The event loop.

/// One line on stderr (the engine points it at DIR/berth-dns.log).
pub fn log(msg: &str) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let (days, secs) = ((now / 86400) as i64, now % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = writeln!(
        io::stderr().lock(),
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z berth-dns[{}]: {msg}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        std::process::id()
    );
}

fn ctx(e: io::Error, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Reads every `*.json` network file in `dir` (sorted by name). A file that
/// cannot be read or parsed is skipped and named in the warnings.
pub fn read_networks(dir: &Path) -> io::Result<(Vec<NetworkFile>, Vec<String>)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| ctx(e, format_args!("read the DNS directory {}", dir.display())))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    let mut files = Vec::new();
    let mut warnings = Vec::new();
    for p in paths {
        let read = std::fs::File::open(&p).and_then(|f| {
            let mut s = String::new();
            f.take(MAX_FILE_BYTES + 1).read_to_string(&mut s)?;
            if s.len() as u64 > MAX_FILE_BYTES {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "larger than 16 MiB",
                ));
            }
            Ok(s)
        });
        match read {
            Ok(s) => match serde_json::from_str::<NetworkFile>(&s) {
                Ok(f) => files.push(f),
                Err(e) => warnings.push(format!("network file {}: skipped: {e}", p.display())),
            },
            // Removed between the listing and the read: not an error.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!("network file {}: skipped: {e}", p.display())),
        }
    }
    Ok((files, warnings))
}

fn new_socket(ip: IpAddr, ty: libc::c_int) -> io::Result<OwnedFd> {
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall; the result is checked.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn setopt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: libc::c_int) -> io::Result<()> {
    // SAFETY: the value is a c_int that lives across the call.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            std::ptr::addr_of!(v).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A socket of type `ty` bound to `ip` port `port`, free-bind, non-blocking.
fn bind_socket(ip: IpAddr, port: u16, ty: libc::c_int) -> io::Result<OwnedFd> {
    let fd = new_socket(ip, ty)?;
    if ip.is_ipv4() {
        setopt(&fd, libc::IPPROTO_IP, libc::IP_FREEBIND, 1)?;
    } else {
        setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)?;
        setopt(&fd, libc::IPPROTO_IPV6, libc::IPV6_FREEBIND, 1)?;
    }
    if ty == libc::SOCK_STREAM {
        setopt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    } else {
        // Room for a burst (a flood from one source is dropped by the rate
        // limiter only once read): kernel memory, not ours. Above
        // net.core.rmem_max needs CAP_NET_ADMIN; the default is kept without.
        if setopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, UDP_RCVBUF).is_err() {
            let _ = setopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, UDP_RCVBUF);
        }
    }
    let (ss, len) = berth_sys::socket::sockaddr(SocketAddr::new(ip, port));
    // SAFETY: ss holds a valid sockaddr of length len.
    if unsafe { libc::bind(fd.as_raw_fd(), std::ptr::addr_of!(ss).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if ty == libc::SOCK_STREAM {
        // SAFETY: plain syscall on our socket.
        if unsafe { libc::listen(fd.as_raw_fd(), 64) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// A non-blocking TCP connection to `to`, in progress.
fn connect_tcp(to: SocketAddr) -> io::Result<TcpStream> {
    let fd = new_socket(to.ip(), libc::SOCK_STREAM)?;
    let (ss, len) = berth_sys::socket::sockaddr(to);
    // SAFETY: ss holds a valid sockaddr of length len.
    if unsafe { libc::connect(fd.as_raw_fd(), std::ptr::addr_of!(ss).cast(), len) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    Ok(TcpStream::from(fd))
}

/// SO_MEMINFO (asm-generic value, as on x86 and arm).
const SO_MEMINFO: libc::c_int = 55;
/// A listening socket with more than this queued (about 30 small
/// datagrams, counted as the kernel counts them) has a backlog.
const CONGESTED_BYTES: usize = 32 << 10;

/// The bytes queued on a socket's receive queue (0 if unknown).
fn queued_bytes(s: &UdpSocket) -> usize {
    let mut info = [0u32; 16];
    let mut len = std::mem::size_of_val(&info) as libc::socklen_t;
    // SAFETY: the kernel writes at most len bytes into info.
    let r = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_MEMINFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if r < 0 {
        return 0;
    }
    info[libc::SK_MEMINFO_RMEM_ALLOC as usize] as usize
}

struct Listener {
    udp: UdpSocket,
    tcp: TcpListener,
}

struct Conn {
    stream: TcpStream,
    peer: IpAddr,
    local: IpAddr,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    wpos: usize,
    /// A query of this connection is being forwarded: read no more.
    busy: bool,
    /// The last accept or complete answer.
    active: Instant,
    closed: bool,
}

enum Client {
    Udp { local: IpAddr, peer: SocketAddr },
    Tcp { conn: u64 },
}

enum Upstream {
    Udp(UdpSocket),
    /// Connecting or writing (`wpos` of the framed query), then reading.
    Tcp {
        stream: TcpStream,
        wpos: usize,
        rbuf: Vec<u8>,
        writing: bool,
    },
}

struct Forward {
    client: Client,
    src: IpAddr,
    query: Vec<u8>,
    upstreams: Vec<SocketAddr>,
    next: usize,
    sock: Option<Upstream>,
    deadline: Instant,
}

#[derive(Clone, Copy)]
enum Token {
    Signal,
    Udp(IpAddr),
    Tcp(IpAddr),
    Conn(u64),
    Fwd(u64),
}

struct Server {
    dir: PathBuf,
    /// Reloads started and completed (see [`RELOADS_FILE`]).
    reloads: (u64, u64),
    zones: Zones,
    listeners: HashMap<IpAddr, Listener>,
    /// Addresses whose bind failed: retried every [`RETRY_BIND`].
    unbound: HashSet<IpAddr>,
    last_retry: Instant,
    conns: HashMap<u64, Conn>,
    fwds: HashMap<u64, Forward>,
    /// Forward ids in start order (the oldest first, for eviction).
    fwd_order: std::collections::VecDeque<u64>,
    next_id: u64,
    limiter: RateLimiter,
    throttled_logged: HashMap<IpAddr, Instant>,
    /// Accepting is paused after an error such as EMFILE.
    accept_paused_until: Option<Instant>,
    /// Since when no network has records (the responder exits after
    /// [`LINGER`] of that).
    idle_since: Option<Instant>,
    buf: Vec<u8>,
}

const RETRY_BIND: Duration = Duration::from_secs(2);
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

impl Server {
    /// Takes the pending signals: SIGHUP reloads; true on SIGTERM or
    /// SIGINT (exit).
    fn signals(&mut self, sig: &OwnedFd) -> bool {
        let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
        // SAFETY: reads into a buffer of exactly one siginfo.
        while unsafe { libc::read(sig.as_raw_fd(), info.as_mut_ptr().cast(), info.len()) }
            == info.len() as isize
        {
            let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
            if signo == libc::SIGHUP as u32 {
                if let Err(e) = self.reload() {
                    log(&format!("reload: {e}; keeping the previous networks"));
                }
            } else {
                log(&format!("signal {signo}: exiting"));
                return true;
            }
        }
        false
    }

    fn reload(&mut self) -> io::Result<()> {
        // Counted before the files are read: a `sync` that sees this count
        // after writing its file knows the next completed reload read it.
        self.reloads.0 += 1;
        write_reloads(&self.dir, self.reloads)?;
        self.load()?;
        self.reloads.1 = self.reloads.0;
        write_reloads(&self.dir, self.reloads)
    }

    fn load(&mut self) -> io::Result<()> {
        let (files, mut warnings) = read_networks(&self.dir)?;
        let (zones, w) = Zones::new(&files);
        warnings.extend(w);
        for w in warnings {
            log(&w);
        }
        let want: HashSet<IpAddr> = zones.listen_addrs().collect();
        let before = self.listeners.len();
        self.listeners.retain(|a, _| want.contains(a));
        self.unbound.retain(|a| want.contains(a));
        let closed = before - self.listeners.len();
        let mut opened = 0;
        for a in &want {
            if !self.listeners.contains_key(a) && self.bind(*a) {
                opened += 1;
            }
        }
        let records: usize = zones.zones.iter().map(|z| z.records.len()).sum();
        self.idle_since = if records == 0 {
            Some(self.idle_since.unwrap_or_else(Instant::now))
        } else {
            None
        };
        log(&format!(
            "serving {} network(s), {} record(s) on {} address(es) ({opened} bound, {closed} closed, {} failed)",
            zones.zones.len(),
            records,
            self.listeners.len(),
            self.unbound.len()
        ));
        self.zones = zones;
        Ok(())
    }

    fn bind(&mut self, a: IpAddr) -> bool {
        let r = bind_socket(a, 53, libc::SOCK_DGRAM)
            .and_then(|u| Ok((u, bind_socket(a, 53, libc::SOCK_STREAM)?)));
        match r {
            Ok((u, t)) => {
                self.listeners.insert(
                    a,
                    Listener {
                        udp: UdpSocket::from(u),
                        tcp: TcpListener::from(t),
                    },
                );
                if self.unbound.remove(&a) {
                    log(&format!("listening on {a} port 53 now"));
                }
                true
            }
            Err(e) => {
                if self.unbound.insert(a) {
                    log(&format!(
                        "listen on {a} port 53 (UDP and TCP): {e}; retrying every {}s",
                        RETRY_BIND.as_secs()
                    ));
                }
                false
            }
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Counts a query from `src`; whether it is served: always unless
    /// `enforce` and `src` is over its rate.
    fn allow(&mut self, src: IpAddr, now: Instant, enforce: bool) -> bool {
        if self.limiter.allow(src, now) || !enforce {
            return true;
        }
        let log_it = self
            .throttled_logged
            .get(&src)
            .is_none_or(|t| now.duration_since(*t) > Duration::from_secs(60));
        if log_it {
            if self.throttled_logged.len() >= RATE_SOURCES {
                self.throttled_logged.clear();
            }
            self.throttled_logged.insert(src, now);
            log(&format!(
                "queries from {src} exceed {RATE_PER_SOURCE}/s: dropping the excess"
            ));
        }
        false
    }

    fn read_udp(&mut self, local: IpAddr, now: Instant) {
        // The per-source limit is enforced only while this socket has a
        // backlog: a fast client of an idle responder is served at full
        // speed, a flood that makes others wait is cut to its rate.
        let congested = self
            .listeners
            .get(&local)
            .is_some_and(|l| queued_bytes(&l.udp) > CONGESTED_BYTES);
        for _ in 0..BATCH {
            let Some(l) = self.listeners.get(&local) else {
                return;
            };
            let (n, peer) = match l.udp.recv_from(&mut self.buf) {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // WouldBlock, or an ICMP error queued on the socket
            };
            if !self.allow(peer.ip(), now, congested) {
                continue;
            }
            let query = &self.buf[..n];
            let zone = self.zones.zone_at(local);
            let sib = zone.map_or_else(Vec::new, |z| self.zones.siblings(z, peer.ip()));
            match handle_with(zone, &sib, peer.ip(), query, false) {
                Action::Drop => {}
                Action::Reply(r) => {
                    if let Some(l) = self.listeners.get(&local) {
                        let _ = l.udp.send_to(&r, peer);
                    }
                }
                Action::Forward(ups) => {
                    let q = query.to_vec();
                    self.start_forward(Client::Udp { local, peer }, peer.ip(), q, ups, now);
                }
            }
        }
    }

    fn accept(&mut self, local: IpAddr, now: Instant) {
        for _ in 0..BATCH {
            let Some(l) = self.listeners.get(&local) else {
                return;
            };
            let (stream, peer) = match l.tcp.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if e.kind() == io::ErrorKind::Interrupted
                        || e.kind() == io::ErrorKind::ConnectionAborted =>
                {
                    continue
                }
                Err(e) => {
                    // EMFILE, ENFILE, ENOBUFS: the connection stays queued
                    // and the listener readable; pause accepting rather than
                    // spin.
                    if self.accept_paused_until.is_none() {
                        log(&format!(
                            "accept TCP on {local} port 53: {e}; pausing accepts for 100 ms"
                        ));
                    }
                    self.accept_paused_until = Some(now + ACCEPT_PAUSE);
                    return;
                }
            };
            let from_peer = self.conns.values().filter(|c| c.peer == peer.ip()).count();
            if from_peer >= MAX_TCP_PER_SOURCE || stream.set_nonblocking(true).is_err() {
                continue; // dropped: closed
            }
            if self.conns.len() >= MAX_TCP {
                if let Some(oldest) = self
                    .conns
                    .iter()
                    .min_by_key(|(_, c)| c.active)
                    .map(|(k, _)| *k)
                {
                    self.close_conn(oldest);
                }
            }
            let id = self.next_id();
            self.conns.insert(
                id,
                Conn {
                    stream,
                    peer: peer.ip(),
                    local,
                    rbuf: Vec::new(),
                    wbuf: Vec::new(),
                    wpos: 0,
                    busy: false,
                    active: now,
                    closed: false,
                },
            );
        }
    }

    fn close_conn(&mut self, id: u64) {
        self.conns.remove(&id);
        // Its forwards are dropped when they finish (the client is gone).
    }

    fn conn_event(&mut self, id: u64, revents: i16, now: Instant) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            // The client is gone (reset, or both directions shut): nothing
            // can be sent to it. Poll reports this whatever we asked for, so
            // keeping the connection (say, while its query is forwarded)
            // would spin; a forward's answer is then dropped.
            self.close_conn(id);
            return;
        }
        if revents & libc::POLLOUT != 0 && c.wpos < c.wbuf.len() {
            match c.stream.write(&c.wbuf[c.wpos..]) {
                Ok(n) => c.wpos += n,
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => c.closed = true,
            }
            if c.wpos == c.wbuf.len() {
                c.wbuf = Vec::new();
                c.wpos = 0;
                c.active = now;
            }
        }
        if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
            && !c.busy
            && c.wbuf.is_empty()
        {
            // Read the 2-byte length, then exactly that many bytes.
            let want = if c.rbuf.len() < 2 {
                2
            } else {
                2 + usize::from(u16::from_be_bytes([c.rbuf[0], c.rbuf[1]]))
            };
            let have = c.rbuf.len();
            c.rbuf.resize(want, 0);
            match c.stream.read(&mut c.rbuf[have..]) {
                Ok(0) => c.closed = true,
                Ok(n) => c.rbuf.truncate(have + n),
                Err(e) => {
                    c.rbuf.truncate(have);
                    if e.kind() != io::ErrorKind::WouldBlock
                        && e.kind() != io::ErrorKind::Interrupted
                    {
                        c.closed = true;
                    }
                }
            }
        }
        if c.closed {
            self.close_conn(id);
            return;
        }
        let complete = c.rbuf.len() >= 2
            && c.rbuf.len() == 2 + usize::from(u16::from_be_bytes([c.rbuf[0], c.rbuf[1]]));
        if !complete {
            return;
        }
        let query = std::mem::take(&mut c.rbuf).split_off(2);
        let (peer, local) = (c.peer, c.local);
        if !self.allow(peer, now, true) {
            // Over the rate: this connection is closed.
            self.close_conn(id);
            return;
        }
        let zone = self.zones.zone_at(local);
        let sib = zone.map_or_else(Vec::new, |z| self.zones.siblings(z, peer));
        match handle_with(zone, &sib, peer, &query, true) {
            Action::Drop => self.close_conn(id),
            Action::Reply(r) => self.reply_tcp(id, &r),
            Action::Forward(ups) => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.busy = true;
                }
                self.start_forward(Client::Tcp { conn: id }, peer, query, ups, now);
            }
        }
    }

    fn reply_tcp(&mut self, id: u64, r: &[u8]) {
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let Ok(len) = u16::try_from(r.len()) else {
            self.close_conn(id);
            return;
        };
        c.busy = false;
        c.wbuf.clear();
        c.wbuf.extend_from_slice(&len.to_be_bytes());
        c.wbuf.extend_from_slice(r);
        c.wpos = 0;
        // Most answers go out at once; the rest on POLLOUT.
        self.conn_event(id, libc::POLLOUT, Instant::now());
    }

    fn start_forward(
        &mut self,
        client: Client,
        src: IpAddr,
        query: Vec<u8>,
        ups: Vec<SocketAddr>,
        now: Instant,
    ) {
        let from_src = self.fwds.values().filter(|f| f.src == src).count();
        if from_src >= MAX_FORWARDS_PER_SOURCE {
            if let Client::Tcp { conn } = client {
                self.close_conn(conn);
            }
            return; // the client retries
        }
        while self.fwds.len() >= MAX_FORWARDS {
            let Some(old) = self.fwd_order.pop_front() else {
                break;
            };
            if let Some(f) = self.fwds.remove(&old) {
                if let Client::Tcp { conn } = f.client {
                    self.close_conn(conn);
                }
            }
        }
        let id = self.next_id();
        let f = Forward {
            client,
            src,
            query,
            upstreams: ups,
            next: 0,
            sock: None,
            deadline: now,
        };
        self.fwds.insert(id, f);
        self.fwd_order.push_back(id);
        self.try_next_upstream(id, now);
    }

    /// Sends the query to the next upstream, or fails the forward.
    fn try_next_upstream(&mut self, id: u64, now: Instant) {
        loop {
            let Some(f) = self.fwds.get_mut(&id) else {
                return;
            };
            f.sock = None;
            let Some(&up) = f.upstreams.get(f.next) else {
                let r = error_reply(&f.query, RCODE_SERVFAIL, true);
                self.finish(id, &r);
                return;
            };
            f.next += 1;
            f.deadline = now + UPSTREAM_TIMEOUT;
            let tcp = matches!(f.client, Client::Tcp { .. });
            let sock = if tcp {
                connect_tcp(up).map(|stream| Upstream::Tcp {
                    stream,
                    wpos: 0,
                    rbuf: Vec::new(),
                    writing: true,
                })
            } else {
                let any: SocketAddr = if up.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                };
                UdpSocket::bind(any).and_then(|s| {
                    s.set_nonblocking(true)?;
                    s.connect(up)?;
                    s.send(&f.query)?;
                    Ok(Upstream::Udp(s))
                })
            };
            if let Ok(s) = sock {
                f.sock = Some(s);
                return;
            }
            // Unreachable at once: the next one.
        }
    }

    /// Answers the forward's client with `r` and forgets the forward.
    fn finish(&mut self, id: u64, r: &[u8]) {
        let Some(f) = self.fwds.remove(&id) else {
            return;
        };
        if let Some(p) = self.fwd_order.iter().position(|&x| x == id) {
            self.fwd_order.remove(p);
        }
        match f.client {
            Client::Udp { local, peer } => {
                if let Some(l) = self.listeners.get(&local) {
                    let _ = l.udp.send_to(r, peer);
                }
            }
            Client::Tcp { conn } => self.reply_tcp(conn, r),
        }
    }

    fn fwd_event(&mut self, id: u64, revents: i16, now: Instant) {
        let Some(f) = self.fwds.get_mut(&id) else {
            return;
        };
        let qid = [f.query[0], f.query[1]];
        let valid = |r: &[u8]| r.len() >= 12 && r[..2] == qid && r[2] & 0x80 != 0;
        match &mut f.sock {
            None => {}
            Some(Upstream::Udp(s)) => {
                let mut failed = false;
                for _ in 0..8 {
                    match s.recv(&mut self.buf) {
                        Ok(n) if valid(&self.buf[..n]) => {
                            let r = self.buf[..n].to_vec();
                            self.finish(id, &r);
                            return;
                        }
                        Ok(_) => continue, // not the answer: wait on
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(_) => {
                            failed = true; // e.g. ECONNREFUSED: nothing listens there
                            break;
                        }
                    }
                }
                if failed {
                    self.try_next_upstream(id, now);
                }
            }
            Some(Upstream::Tcp {
                stream,
                wpos,
                rbuf,
                writing,
            }) => {
                let mut failed = revents & libc::POLLERR != 0;
                if !failed && *writing && revents & libc::POLLOUT != 0 {
                    let len = u16::try_from(f.query.len())
                        .unwrap_or(u16::MAX)
                        .to_be_bytes();
                    let framed: Vec<u8> = len.iter().chain(f.query.iter()).copied().collect();
                    match stream.write(&framed[*wpos..]) {
                        Ok(n) => {
                            *wpos += n;
                            if *wpos == framed.len() {
                                *writing = false;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => failed = true,
                    }
                }
                if !failed && !*writing && revents & (libc::POLLIN | libc::POLLHUP) != 0 {
                    let want = if rbuf.len() < 2 {
                        2
                    } else {
                        2 + usize::from(u16::from_be_bytes([rbuf[0], rbuf[1]]))
                    };
                    let have = rbuf.len();
                    rbuf.resize(want, 0);
                    match stream.read(&mut rbuf[have..]) {
                        Ok(0) => failed = true,
                        Ok(n) => rbuf.truncate(have + n),
                        Err(e) => {
                            rbuf.truncate(have);
                            failed = e.kind() != io::ErrorKind::WouldBlock;
                        }
                    }
                    if rbuf.len() > 2
                        && rbuf.len() == 2 + usize::from(u16::from_be_bytes([rbuf[0], rbuf[1]]))
                    {
                        let r = rbuf.split_off(2);
                        if valid(&r) {
                            self.finish(id, &r);
                            return;
                        }
                        failed = true;
                    }
                }
                if failed {
                    self.try_next_upstream(id, now);
                }
            }
        }
    }

    fn timers(&mut self, now: Instant) {
        let late: Vec<u64> = self
            .fwds
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(k, _)| *k)
            .collect();
        for id in late {
            self.try_next_upstream(id, now);
        }
        let idle: Vec<u64> = self
            .conns
            .iter()
            .filter(|(_, c)| !c.busy && now.saturating_duration_since(c.active) >= TCP_IDLE)
            .map(|(k, _)| *k)
            .collect();
        for id in idle {
            self.close_conn(id);
        }
        if self.accept_paused_until.is_some_and(|t| t <= now) {
            self.accept_paused_until = None;
        }
        if !self.unbound.is_empty() && now.duration_since(self.last_retry) >= RETRY_BIND {
            self.last_retry = now;
            let addrs: Vec<IpAddr> = self.unbound.iter().copied().collect();
            for a in addrs {
                self.bind(a);
            }
        }
    }

    /// Whether the responder has had no records for [`LINGER`] and has no
    /// work in flight: time to exit.
    fn lingered(&self, now: Instant) -> bool {
        self.idle_since
            .is_some_and(|i| now.saturating_duration_since(i) >= LINGER)
            && self.fwds.is_empty()
            && self.conns.is_empty()
    }

    fn next_timeout(&self, now: Instant) -> i32 {
        let mut t = Duration::from_secs(60);
        for f in self.fwds.values() {
            t = t.min(f.deadline.saturating_duration_since(now));
        }
        for c in self.conns.values().filter(|c| !c.busy) {
            t = t.min((c.active + TCP_IDLE).saturating_duration_since(now));
        }
        if !self.unbound.is_empty() {
            t = t.min((self.last_retry + RETRY_BIND).saturating_duration_since(now));
        }
        if let Some(p) = self.accept_paused_until {
            t = t.min(p.saturating_duration_since(now));
        }
        if let Some(i) = self.idle_since {
            t = t.min((i + LINGER).saturating_duration_since(now));
        }
        // Round up so a deadline is past when poll returns.
        i32::try_from(t.as_millis() + 1).unwrap_or(i32::MAX)
    }
}

/// Raises the soft limit of open descriptors to the hard one: two per
/// listen address, one per forward and per TCP connection.
fn raise_fd_limit() {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// The responder's reload counts, `STARTED DONE\n`, replaced atomically:
/// STARTED is counted before the network files are read, DONE once they
/// are served.
pub const RELOADS_FILE: &str = "berth-dns.reloads";

fn write_reloads(dir: &Path, (started, done): (u64, u64)) -> io::Result<()> {
    let path = dir.join(RELOADS_FILE);
    let tmp = dir.join(format!(".{RELOADS_FILE}.tmp"));
    std::fs::write(&tmp, format!("{started} {done}\n"))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| ctx(e, format_args!("write {}", path.display())))
}

/// Reads the reload counts (started, done) in `dir`.
pub fn read_reloads(dir: &Path) -> Option<(u64, u64)> {
    let s = std::fs::read_to_string(dir.join(RELOADS_FILE)).ok()?;
    let (a, b) = s.strip_suffix('\n')?.split_once(' ')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// A signalfd for SIGHUP, SIGTERM and SIGINT, which must already be blocked
/// (see [`block_signals`]).
fn signal_fd() -> io::Result<OwnedFd> {
    let set = signal_set();
    // SAFETY: set is an initialised sigset; the result is checked.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn signal_set() -> libc::sigset_t {
    // SAFETY: sigemptyset initialises the set; sigaddset on it with valid
    // signal numbers cannot fail.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in [libc::SIGHUP, libc::SIGTERM, libc::SIGINT] {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// Blocks SIGHUP, SIGTERM and SIGINT (they are read from a signalfd): call
/// first thing, so a SIGHUP sent while starting is kept, not fatal.
pub fn block_signals() -> io::Result<()> {
    let set = signal_set();
    // SAFETY: set is initialised; single-threaded at this point.
    if unsafe { libc::sigprocmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Serves the networks of `dir` until SIGTERM or SIGINT. `ready` is called
/// once the first load and binds are done. Signals must be blocked already
/// ([`block_signals`]).
pub fn serve(dir: &Path, ready: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
    let sig = signal_fd().map_err(|e| ctx(e, "create the signalfd"))?;
    raise_fd_limit();
    let now = Instant::now();
    let mut s = Server {
        dir: dir.to_owned(),
        zones: Zones::default(),
        listeners: HashMap::new(),
        unbound: HashSet::new(),
        last_retry: now,
        conns: HashMap::new(),
        fwds: HashMap::new(),
        fwd_order: Default::default(),
        next_id: 0,
        reloads: (0, 0),
        limiter: RateLimiter::new(RATE_PER_SOURCE, BURST_PER_SOURCE, RATE_SOURCES),
        throttled_logged: HashMap::new(),
        accept_paused_until: None,
        idle_since: None,
        buf: vec![0; 65536],
    };
    s.reload()?;
    ready()?;
    let mut pfds: Vec<libc::pollfd> = Vec::new();
    let mut tokens: Vec<Token> = Vec::new();
    loop {
        pfds.clear();
        tokens.clear();
        let mut add = |fd: RawFd, events: i16, t: Token| {
            pfds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            });
            tokens.push(t);
        };
        add(sig.as_raw_fd(), libc::POLLIN, Token::Signal);
        let accepting = s.accept_paused_until.is_none();
        for (a, l) in &s.listeners {
            add(l.udp.as_raw_fd(), libc::POLLIN, Token::Udp(*a));
            if accepting {
                add(l.tcp.as_raw_fd(), libc::POLLIN, Token::Tcp(*a));
            }
        }
        for (id, c) in &s.conns {
            let mut ev = 0;
            if !c.busy && c.wbuf.is_empty() {
                ev |= libc::POLLIN;
            }
            if c.wpos < c.wbuf.len() {
                ev |= libc::POLLOUT;
            }
            add(c.stream.as_raw_fd(), ev, Token::Conn(*id));
        }
        for (id, f) in &s.fwds {
            match &f.sock {
                Some(Upstream::Udp(u)) => add(u.as_raw_fd(), libc::POLLIN, Token::Fwd(*id)),
                Some(Upstream::Tcp {
                    stream, writing, ..
                }) => add(
                    stream.as_raw_fd(),
                    if *writing {
                        libc::POLLOUT
                    } else {
                        libc::POLLIN
                    },
                    Token::Fwd(*id),
                ),
                None => {}
            }
        }
        let timeout = s.next_timeout(Instant::now());
        // SAFETY: pfds is a valid array of pollfd of the given length.
        let n = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, timeout) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(ctx(e, "poll"));
        }
        let now = Instant::now();
        for (p, t) in pfds.iter().zip(tokens.iter()) {
            if p.revents == 0 {
                continue;
            }
            match *t {
                Token::Signal => {
                    if s.signals(&sig) {
                        return Ok(());
                    }
                }
                Token::Udp(a) => s.read_udp(a, now),
                Token::Tcp(a) => s.accept(a, now),
                Token::Conn(id) => s.conn_event(id, p.revents, now),
                Token::Fwd(id) => s.fwd_event(id, p.revents, now),
            }
        }
        s.timers(now);
        if s.lingered(now) {
            // A SIGHUP sent meanwhile (records again) is taken first: then
            // the responder stays.
            if s.signals(&sig) {
                return Ok(());
            }
            if s.lingered(now) {
                log(&format!("no records for {} s: exiting", LINGER.as_secs()));
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Record as R;
    use hickory_proto::op::Query;

    const ID1: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const ID2: &str = "0123456789abffff0123456789abcdef0123456789abcdef0123456789abcdef";
    const UP: &str = "192.0.2.53:53";

    fn file() -> NetworkFile {
        NetworkFile {
            sources: Vec::new(),
            internal: false,
            network: "app".into(),
            listen: vec!["10.89.0.1".parse().unwrap(), "fd00::1".parse().unwrap()],
            upstreams: vec![
                UP.parse().unwrap(),
                "10.89.0.1:53".parse().unwrap(),
                "0.0.0.0:53".parse().unwrap(),
            ],
            records: vec![
                R {
                    id: ID1.into(),
                    names: vec!["Web".into(), "frontend".into()],
                    ipv4: vec!["10.89.0.2".parse().unwrap()],
                    ipv6: vec!["fd00::2".parse().unwrap()],
                    dns_servers: vec![],
                },
                R {
                    id: ID2.into(),
                    names: vec!["db".into(), "frontend".into()],
                    ipv4: vec!["10.89.0.3".parse().unwrap()],
                    ipv6: vec![],
                    dns_servers: vec!["198.51.100.1:5353".parse().unwrap()],
                },
            ],
        }
    }

    fn zone() -> Zone {
        let (z, w) = Zones::new(&[file()]);
        assert!(w.is_empty());
        z.zones.into_iter().next().unwrap()
    }

    fn query(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::new(0x1234, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn src() -> IpAddr {
        "10.89.0.2".parse().unwrap()
    }

    fn answer(z: &Zone, name: &str, t: RecordType) -> Message {
        match handle(Some(z), src(), &query(name, t), false) {
            Action::Reply(r) => Message::from_vec(&r).unwrap(),
            other => panic!("{name} {t}: expected an answer, got {other:?}"),
        }
    }

    fn addrs(m: &Message) -> Vec<String> {
        m.answers
            .iter()
            .map(|r| match &r.data {
                RData::A(a) => a.0.to_string(),
                RData::AAAA(a) => a.0.to_string(),
                RData::PTR(p) => p.0.to_string(),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    /// A container on two networks resolves the names of both, whichever
    /// it asks on; one on a single network never sees the other's names.
    #[test]
    fn a_container_on_two_networks_resolves_both() {
        let a = file();
        let b = NetworkFile {
            network: "back".into(),
            listen: vec!["10.90.0.1".parse().unwrap()],
            upstreams: vec![],
            records: vec![
                R {
                    id: ID1.into(),
                    names: vec!["web".into()],
                    ipv4: vec!["10.90.0.2".parse().unwrap()],
                    ipv6: vec![],
                    dns_servers: vec![],
                },
                R {
                    id: "c".repeat(64),
                    names: vec!["cache".into()],
                    ipv4: vec!["10.90.0.9".parse().unwrap()],
                    ipv6: vec![],
                    dns_servers: vec![],
                },
            ],
            ..file()
        };
        let (zs, _) = Zones::new(&[a, b]);
        let ask = |local: &str, src: &str, name: &str, t: RecordType| {
            let zone = zs.zone_at(local.parse().unwrap());
            let src: IpAddr = src.parse().unwrap();
            let sib = zone.map_or_else(Vec::new, |z| zs.siblings(z, src));
            handle_with(zone, &sib, src, &query(name, t), false)
        };
        let reply = |a: Action| match a {
            Action::Reply(r) => Message::from_vec(&r).unwrap(),
            other => panic!("expected an answer, got {other:?}"),
        };
        // web (on both) asks app's responder for cache (on back only).
        let m = reply(ask("10.89.0.1", "10.89.0.2", "cache", RecordType::A));
        assert_eq!(addrs(&m), ["10.90.0.9"]);
        let m = reply(ask(
            "10.89.0.1",
            "10.89.0.2",
            "9.0.90.10.in-addr.arpa",
            RecordType::PTR,
        ));
        assert_eq!(addrs(&m), ["cache.dns.berth."]);
        // Its own network's answer first (web is on both).
        let m = reply(ask("10.90.0.1", "10.90.0.2", "web", RecordType::A));
        assert_eq!(addrs(&m), ["10.90.0.2"]);
        let m = reply(ask("10.90.0.1", "10.90.0.2", "db", RecordType::A));
        assert_eq!(addrs(&m), ["10.89.0.3"]);
        // db is on app only: cache is not its business.
        let m = reply(ask(
            "10.89.0.1",
            "10.89.0.3",
            "cache.dns.berth",
            RecordType::A,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        assert!(matches!(
            ask("10.89.0.1", "10.89.0.3", "cache", RecordType::A),
            Action::Forward(_)
        ));
    }

    #[test]
    fn only_the_networks_own_sources_are_answered() {
        let mut f = file();
        f.sources = vec!["10.89.0.0/24".into(), "fd00::/64".into()];
        let (zs, _) = Zones::new(&[f]);
        let z = zs.zone_at("10.89.0.1".parse().unwrap());
        for ok in ["10.89.0.2", "10.89.0.254", "fd00::9"] {
            match handle(z, ok.parse().unwrap(), &query("web", RecordType::A), false) {
                Action::Reply(r) => assert_eq!(
                    Message::from_vec(&r).unwrap().metadata.response_code,
                    ResponseCode::NoError,
                    "{ok}"
                ),
                other => panic!("{ok}: {other:?}"),
            }
        }
        // Another network's container, the outside: refused, for our names
        // and for forwarding alike.
        for bad in ["10.89.1.2", "192.0.2.2", "fd01::2"] {
            for name in ["web", "example.com"] {
                match handle(z, bad.parse().unwrap(), &query(name, RecordType::A), false) {
                    Action::Reply(r) => assert_eq!(
                        Message::from_vec(&r).unwrap().metadata.response_code,
                        ResponseCode::Refused,
                        "{bad} {name}"
                    ),
                    other => panic!("{bad} {name}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn an_internal_network_forwards_nothing_and_loopback_servers_are_dropped() {
        let mut f = file();
        for r in &mut f.records {
            r.dns_servers = vec![
                "127.0.0.1:53".parse().unwrap(),
                "169.254.1.1:53".parse().unwrap(),
            ];
        }
        let (zs, _) = Zones::new(std::slice::from_ref(&f));
        let z = zs.zone_at("10.89.0.1".parse().unwrap()).unwrap();
        // The host's loopback is never asked for a container: the
        // network's upstreams instead.
        assert_eq!(
            z.upstreams_for(src()),
            &["192.0.2.53:53".parse::<SocketAddr>().unwrap()][..]
        );
        f.internal = true;
        let (zs, _) = Zones::new(&[f]);
        let z = zs.zone_at("10.89.0.1".parse().unwrap());
        match handle(z, src(), &query("example.com", RecordType::A), false) {
            Action::Reply(r) => assert_eq!(
                Message::from_vec(&r).unwrap().metadata.response_code,
                ResponseCode::ServFail
            ),
            other => panic!("an internal network forwarded: {other:?}"),
        }
        // Its own names still resolve.
        assert_eq!(
            answer(z.unwrap(), "web", RecordType::A)
                .metadata
                .response_code,
            ResponseCode::NoError
        );
    }

    #[test]
    fn names_aliases_domain_and_case() {
        let z = zone();
        for n in [
            "web",
            "WEB",
            "web.",
            "web.dns.berth",
            "Web.DNS.Berth.",
            "web.dns.berth.",
        ] {
            let m = answer(&z, n, RecordType::A);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{n}");
            assert!(m.metadata.authoritative);
            assert_eq!(m.metadata.id, 0x1234);
            assert!(m.metadata.recursion_desired && m.metadata.recursion_available);
            assert_eq!(addrs(&m), ["10.89.0.2"], "{n}");
            assert_eq!(m.answers[0].ttl, TTL);
            let asked = m.answers[0].name.to_ascii();
            assert_eq!(
                asked.trim_end_matches('.'),
                n.trim_end_matches('.'),
                "the name as asked"
            );
        }
        assert_eq!(addrs(&answer(&z, "web", RecordType::AAAA)), ["fd00::2"]);
        assert_eq!(
            addrs(&answer(&z, "web", RecordType::ANY)),
            ["10.89.0.2", "fd00::2"]
        );
        // An alias shared by two containers: both addresses.
        assert_eq!(
            addrs(&answer(&z, "frontend", RecordType::A)),
            ["10.89.0.2", "10.89.0.3"]
        );
    }

    #[test]
    fn ours_without_that_type_is_noerror_empty() {
        let z = zone();
        for (n, t) in [
            ("db", RecordType::AAAA),
            ("web", RecordType::MX),
            ("dns.berth", RecordType::A),
        ] {
            let m = answer(&z, n, t);
            assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{n} {t}");
            assert!(m.answers.is_empty(), "{n} {t}");
        }
    }

    #[test]
    fn id_prefixes() {
        let z = zone();
        // A DNS label holds at most 63 bytes: the full 64-digit id cannot be
        // asked for, its 63-digit prefix can.
        assert!(Name::from_ascii(ID1).is_err());
        assert_eq!(z.lookup(ID1), Some(vec![0]));
        assert_eq!(addrs(&answer(&z, &ID1[..63], RecordType::A)), ["10.89.0.2"]);
        assert_eq!(
            addrs(&answer(&z, &ID1[..40].to_uppercase(), RecordType::A)),
            ["10.89.0.2"]
        );
        assert_eq!(
            addrs(&answer(
                &z,
                &format!("{}.dns.berth.", &ID2[..20]),
                RecordType::A
            )),
            ["10.89.0.3"]
        );
        // 12 digits shared by both ids: ambiguous, not ours.
        assert_eq!(z.lookup(&ID1[..12]), None);
        assert_eq!(z.lookup(&ID1[..13]), Some(vec![0]));
        assert_eq!(z.lookup(&ID2[..13]), Some(vec![1]));
        // Fewer than 12 digits never match.
        let mut single = file();
        single.records.truncate(1);
        let (zs, _) = Zones::new(&[single]);
        assert_eq!(zs.zones[0].lookup(&ID1[..12]), Some(vec![0]));
        assert_eq!(zs.zones[0].lookup(&ID1[..11]), None);
        assert_eq!(zs.zones[0].lookup("0123456789abcdef0"), Some(vec![0]));
        assert_eq!(zs.zones[0].lookup("0123456789abcdefX"), None);
        // Under our domain and not ours: NXDOMAIN, not forwarded.
        let m = answer(&z, &format!("{}.dns.berth", &ID1[..12]), RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    }

    #[test]
    fn unknown_names_are_forwarded_never_to_ourselves() {
        let z = zone();
        let up: SocketAddr = UP.parse().unwrap();
        assert_eq!(
            handle(
                Some(&z),
                src(),
                &query("example.com.", RecordType::A),
                false
            ),
            Action::Forward(vec![up])
        );
        assert_eq!(
            handle(Some(&z), src(), &query("nosuch", RecordType::A), true),
            Action::Forward(vec![up])
        );
        // db has its own --dns servers.
        let db = "10.89.0.3".parse().unwrap();
        assert_eq!(
            handle(Some(&z), db, &query("example.com.", RecordType::A), false),
            Action::Forward(vec!["198.51.100.1:5353".parse().unwrap()])
        );
        let m = answer(&z, "nosuch.dns.berth", RecordType::A);
        assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
        // No upstream left: SERVFAIL with the question.
        let mut f = file();
        f.upstreams = vec![
            "10.89.0.1:53".parse().unwrap(),
            "[fd00::1]:53".parse().unwrap(),
        ];
        let (zs, _) = Zones::new(&[f]);
        let m = match handle(
            Some(&zs.zones[0]),
            src(),
            &query("example.com.", RecordType::A),
            false,
        ) {
            Action::Reply(r) => Message::from_vec(&r).unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert_eq!(m.queries.len(), 1);
    }

    #[test]
    fn ptr_v4_and_v6() {
        let z = zone();
        assert_eq!(
            addrs(&answer(&z, "2.0.89.10.in-addr.arpa.", RecordType::PTR)),
            ["web.dns.berth."]
        );
        assert_eq!(
            addrs(&answer(&z, "3.0.89.10.IN-ADDR.ARPA", RecordType::PTR)),
            ["db.dns.berth."]
        );
        let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
        assert_eq!(addrs(&answer(&z, v6, RecordType::PTR)), ["web.dns.berth."]);
        // Ours, another type: NOERROR empty.
        assert!(answer(&z, "2.0.89.10.in-addr.arpa.", RecordType::A)
            .answers
            .is_empty());
        // Not ours, or not a full address: forwarded.
        for n in [
            "9.0.89.10.in-addr.arpa.",
            "0.89.10.in-addr.arpa.",
            "02.0.89.10.in-addr.arpa.x",
        ] {
            assert!(
                matches!(
                    handle(Some(&z), src(), &query(n, RecordType::PTR), false),
                    Action::Forward(_)
                ),
                "{n}"
            );
        }
        assert_eq!(parse_reverse("1.2.3.256.in-addr.arpa"), None);
        assert_eq!(parse_reverse("+1.2.3.4.in-addr.arpa"), None);
        assert_eq!(
            parse_reverse("4.3.2.1.in-addr.arpa"),
            Some("1.2.3.4".parse().unwrap())
        );
    }

    #[test]
    fn bad_messages() {
        let z = zone();
        assert_eq!(handle(Some(&z), src(), b"", false), Action::Drop);
        assert_eq!(handle(Some(&z), src(), &[0u8; 11], false), Action::Drop);
        // A response is never answered (no loops, no reflection).
        let mut resp = query("web", RecordType::A);
        resp[2] |= 0x80;
        assert_eq!(handle(Some(&z), src(), &resp, false), Action::Drop);
        // A header claiming a question that is not there: FORMERR.
        let mut trunc = query("web", RecordType::A);
        trunc.truncate(14);
        let Action::Reply(r) = handle(Some(&z), src(), &trunc, false) else {
            panic!()
        };
        assert_eq!(&r[..2], &[0x12, 0x34]);
        assert_eq!(r[3] & 0x0F, RCODE_FORMERR);
        assert_eq!(r.len(), 12);
        // Another opcode: NOTIMP.
        let mut upd = query("web", RecordType::A);
        upd[2] |= 5 << 3;
        let Action::Reply(r) = handle(Some(&z), src(), &upd, false) else {
            panic!()
        };
        assert_eq!(r[3] & 0x0F, RCODE_NOTIMP);
        // Two questions: FORMERR.
        let mut m = Message::new(7, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("web").unwrap(),
            RecordType::A,
        ));
        m.add_query(Query::query(Name::from_ascii("db").unwrap(), RecordType::A));
        let Action::Reply(r) = handle(Some(&z), src(), &m.to_vec().unwrap(), false) else {
            panic!()
        };
        assert_eq!(r[3] & 0x0F, RCODE_FORMERR);
        // An address no network serves: REFUSED.
        let Action::Reply(r) = handle(None, src(), &query("web", RecordType::A), false) else {
            panic!()
        };
        assert_eq!(r[3] & 0x0F, RCODE_REFUSED);
        // Pseudo-random garbage never panics.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for len in 0..4000usize {
            let mut b = Vec::with_capacity(len % 300);
            for _ in 0..len % 300 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                b.push(x as u8);
            }
            if b.len() > 2 {
                b[2] &= 0x7F;
            }
            let _ = handle(Some(&z), src(), &b, len % 2 == 0);
        }
    }

    #[test]
    fn large_answers_truncated_over_udp_only() {
        let mut f = file();
        f.records[0].ipv4 = (0..100u8).map(|i| Ipv4Addr::new(10, 89, 1, i)).collect();
        let (zs, _) = Zones::new(&[f]);
        let z = &zs.zones[0];
        let Action::Reply(r) = handle(Some(z), src(), &query("web", RecordType::A), false) else {
            panic!()
        };
        assert!(r.len() <= 512);
        let m = Message::from_vec(&r).unwrap();
        assert!(m.metadata.truncation);
        assert!(m.answers.is_empty());
        let Action::Reply(r) = handle(Some(z), src(), &query("web", RecordType::A), true) else {
            panic!()
        };
        let m = Message::from_vec(&r).unwrap();
        assert!(!m.metadata.truncation);
        assert_eq!(m.answers.len(), 100);
    }

    #[test]
    fn edns_query_gets_edns_answer() {
        let z = zone();
        let mut m = Message::new(9, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(
            Name::from_ascii("web").unwrap(),
            RecordType::A,
        ));
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.edns = Some(e);
        let Action::Reply(r) = handle(Some(&z), src(), &m.to_vec().unwrap(), false) else {
            panic!()
        };
        let a = Message::from_vec(&r).unwrap();
        assert_eq!(a.edns.as_ref().map(|e| e.max_payload()), Some(UDP_EDNS_MAX));
        assert_eq!(a.answers.len(), 1);
    }

    #[test]
    fn error_reply_keeps_the_question() {
        let q = query("example.com.", RecordType::AAAA);
        let m = Message::from_vec(&error_reply(&q, RCODE_SERVFAIL, true)).unwrap();
        assert_eq!(m.metadata.id, 0x1234);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(m.metadata.recursion_desired);
        assert_eq!(m.queries[0].name().to_ascii(), "example.com.");
        assert_eq!(m.queries[0].query_type(), RecordType::AAAA);
    }

    #[test]
    fn rate_limiter() {
        let t0 = Instant::now();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let mut l = RateLimiter::new(10.0, 20.0, 3);
        assert_eq!((0..100).filter(|_| l.allow(a, t0)).count(), 20, "the burst");
        // Another source is not starved by a's flood.
        assert!(l.allow(b, t0));
        // Half a second refills 5.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..100).filter(|_| l.allow(a, t1)).count(), 5);
        // Sources are bounded: a flood of source addresses keeps at most 3.
        for i in 0..1000u32 {
            l.allow(IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i)), t1);
            assert!(l.len() <= 3);
        }
    }

    #[test]
    fn duplicate_listen_address_goes_to_the_first_network() {
        let mut second = file();
        second.network = "other".into();
        second.records.clear();
        let (zs, w) = Zones::new(&[file(), second]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert_eq!(
            zs.zone_at("10.89.0.1".parse().unwrap()).unwrap().network,
            "app"
        );
    }
}
