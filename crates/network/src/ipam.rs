//! Addresses: which container has which address on which network, given
//! out and released in one transaction each (the `endpoints` table of
//! [`crate::store`]).
//!
//! The allocator is Docker's sequential one: the next free address after
//! the last one given out on the network, wrapping at the end of the
//! subnet (or `--ip-range`), so an address just released is not given to
//! the next container at once (stale ARP and DNS caches of other
//! containers). It never scans the subnet: a per-network cursor and an
//! ordered index probe from it, reading only the addresses in use just
//! after it (none, until the subnet has wrapped).
//!
//! A wanted address (`--ip`, `--ip6`) must be inside the subnet and not its
//! network, broadcast or gateway address; it may be outside `--ip-range`
//! (Docker: the range is for the addresses berth picks, the rest of the
//! subnet for fixed ones). It does not move the cursor.

use crate::model::{to_u128, Bounds, Network, Subnet};
use crate::store::{damaged, get_in, short, sql, NetStore};
use crate::{Error, Result};
use berth_db::rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A container's place on a network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub container_id: String,
    pub network_id: String,
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    /// As wanted (`--mac-address`), lower case; None: the kernel's choice.
    pub mac: Option<String>,
    pub aliases: Vec<String>,
    /// `eth0`, `eth1`.. : the lowest free in the container.
    pub interface: String,
}

/// What a container asks of a network (`--ip`, `--ip6`, `--mac-address`,
/// `--network-alias`/`--alias`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Want {
    pub ipv4: Option<Ipv4Addr>,
    pub ipv6: Option<Ipv6Addr>,
    pub mac: Option<String>,
    pub aliases: Vec<String>,
}

/// The two families, with their columns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn column(self) -> &'static str {
        match self {
            Family::V4 => "ipv4",
            Family::V6 => "ipv6",
        }
    }
    fn cursor(self) -> &'static str {
        match self {
            Family::V4 => "last_v4",
            Family::V6 => "last_v6",
        }
    }
    fn name(self) -> &'static str {
        match self {
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        }
    }
    /// The address `n` as stored: big-endian bytes, ordered as numbers.
    fn key(self, n: u128) -> Vec<u8> {
        match self {
            Family::V4 => (n as u32).to_be_bytes().to_vec(),
            Family::V6 => n.to_be_bytes().to_vec(),
        }
    }
    fn parse(self, b: &[u8]) -> Option<u128> {
        match self {
            Family::V4 => <[u8; 4]>::try_from(b)
                .ok()
                .map(|a| u128::from(u32::from_be_bytes(a))),
            Family::V6 => <[u8; 16]>::try_from(b).ok().map(u128::from_be_bytes),
        }
    }
}

/// Checks and normalizes a MAC address: six hex octets separated by `:`
/// or `-`, unicast, not all zeros.
pub fn check_mac(mac: &str) -> Result<String> {
    let bad = || {
        Error::Invalid(format!(
            "invalid MAC address {mac:?}: give six hex octets (e.g. 02:42:ac:11:00:02), unicast and not all zeros"
        ))
    };
    let octets: Vec<u8> = mac
        .split([':', '-'])
        .map(|o| {
            if o.len() == 2 {
                u8::from_str_radix(o, 16).ok()
            } else {
                None
            }
        })
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    if octets.len() != 6 || octets[0] & 1 == 1 || octets.iter().all(|&o| o == 0) {
        return Err(bad());
    }
    Ok(octets
        .iter()
        .map(|o| format!("{o:02x}"))
        .collect::<Vec<_>>()
        .join(":"))
}

const EP_COLUMNS: &str = "container_id, network_id, seq, ipv4, ipv6, mac, aliases";

type Row = (
    String,
    String,
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<String>,
    String,
);

fn read_row(r: &berth_db::rusqlite::Row<'_>) -> berth_db::rusqlite::Result<Row> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
    ))
}

fn to_endpoint(row: Row) -> Result<Endpoint> {
    let (container_id, network_id, seq, v4, v6, mac, aliases) = row;
    let what = || format!("the endpoint of container {} on network {}", short(&container_id), short(&network_id));
    let ipv4 = match v4 {
        Some(b) => Some(Ipv4Addr::from(
            Family::V4.parse(&b).ok_or_else(|| damaged(what(), "IPv4 address"))? as u32,
        )),
        None => None,
    };
    let ipv6 = match v6 {
        Some(b) => Some(Ipv6Addr::from(
            Family::V6.parse(&b).ok_or_else(|| damaged(what(), "IPv6 address"))?,
        )),
        None => None,
    };
    let aliases = serde_json::from_str(&aliases).map_err(|e| damaged(what(), e))?;
    Ok(Endpoint {
        container_id,
        network_id,
        ipv4,
        ipv6,
        mac,
        aliases,
        interface: format!("eth{seq}"),
    })
}

fn query_endpoints(conn: &Connection, filter: &str, arg: &str, op: &str) -> Result<Vec<Endpoint>> {
    let mut st = conn
        .prepare(&format!("SELECT {EP_COLUMNS} FROM endpoints WHERE {filter}"))
        .map_err(sql(op))?;
    let rows: Vec<Row> = st
        .query_map(params![arg], read_row)
        .and_then(|rows| rows.collect())
        .map_err(sql(op))?;
    rows.into_iter().map(to_endpoint).collect()
}

/// The first address of `a..=b` not in use and not the gateway: walks the
/// addresses in use from `a` in index order and stops at the first gap.
fn first_gap(
    conn: &Connection,
    network_id: &str,
    fam: Family,
    a: u128,
    b: u128,
    gateway: Option<u128>,
) -> Result<Option<u128>> {
    if a > b {
        return Ok(None);
    }
    let col = fam.column();
    let mut st = conn
        .prepare_cached(&format!(
            "SELECT {col} FROM endpoints WHERE network_id = ?1 AND {col} >= ?2 AND {col} <= ?3 ORDER BY {col}"
        ))
        .map_err(sql("find a free address"))?;
    let mut rows = st
        .query(params![network_id, fam.key(a), fam.key(b)])
        .map_err(sql("find a free address"))?;
    let mut c = a;
    // Moves `c` past the gateway; false when that leaves the range.
    let skip_gateway = |c: &mut u128| -> bool {
        if Some(*c) == gateway {
            if *c == b {
                return false;
            }
            *c += 1;
        }
        true
    };
    while let Some(r) = rows.next().map_err(sql("find a free address"))? {
        let used: Vec<u8> = r.get(0).map_err(sql("find a free address"))?;
        let Some(u) = fam.parse(&used) else { continue };
        if !skip_gateway(&mut c) {
            return Ok(None);
        }
        if u > c {
            return Ok(Some(c));
        }
        if u == c {
            if c == b {
                return Ok(None);
            }
            c += 1;
        }
    }
    Ok(skip_gateway(&mut c).then_some(c))
}

/// The next free address of `s` after `cursor`, wrapping; None when all
/// are in use.
fn next_free(
    conn: &Connection,
    network_id: &str,
    fam: Family,
    s: &Subnet,
    cursor: Option<u128>,
) -> Result<Option<u128>> {
    let b = Bounds::of(s);
    if b.lo > b.hi {
        return Ok(None);
    }
    let start = match cursor {
        Some(c) if c >= b.lo && c < b.hi => c + 1,
        _ => b.lo,
    };
    if let Some(x) = first_gap(conn, network_id, fam, start, b.hi, b.gateway)? {
        return Ok(Some(x));
    }
    if start > b.lo {
        return first_gap(conn, network_id, fam, b.lo, start - 1, b.gateway);
    }
    Ok(None)
}

/// Checks a wanted address against the subnet.
fn check_wanted(n: &Network, s: &Subnet, ip: IpAddr) -> Result<u128> {
    let net = s.subnet;
    let opt = if ip.is_ipv4() { "--ip" } else { "--ip6" };
    if !net.contains(&ip) {
        return Err(Error::Invalid(format!(
            "{opt} {ip} is outside network {}'s subnet {net}",
            n.name
        )));
    }
    let what = if ip == net.network() {
        Some("network")
    } else if ip.is_ipv4() && ip == net.broadcast() {
        Some("broadcast")
    } else if Some(ip) == s.gateway {
        Some("gateway")
    } else {
        None
    };
    if let Some(what) = what {
        return Err(Error::Invalid(format!(
            "{opt} {ip} is network {}'s {what} address: choose another in {net}",
            n.name
        )));
    }
    Ok(to_u128(ip))
}

/// The address of family `fam` for an endpoint: the wanted one, else the
/// next free one (moving the cursor).
fn take(
    conn: &Connection,
    n: &Network,
    fam: Family,
    s: &Subnet,
    want: Option<IpAddr>,
) -> Result<u128> {
    if let Some(ip) = want {
        let a = check_wanted(n, s, ip)?;
        let holder: Option<String> = conn
            .query_row(
                &format!(
                    "SELECT container_id FROM endpoints WHERE network_id = ?1 AND {} = ?2",
                    fam.column()
                ),
                params![n.id, fam.key(a)],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql(format!("look up address {ip} on network {}", n.name)))?;
        if let Some(c) = holder {
            return Err(Error::Conflict(format!(
                "address {ip} on network {} is already in use by container {}",
                n.name,
                short(&c)
            )));
        }
        return Ok(a);
    }
    let cursor: Option<Vec<u8>> = conn
        .query_row(
            &format!("SELECT {} FROM networks WHERE id = ?1", fam.cursor()),
            params![n.id],
            |r| r.get(0),
        )
        .map_err(sql(format!("read network {}'s allocation cursor", n.name)))?;
    let cursor = cursor.and_then(|c| fam.parse(&c));
    let Some(a) = next_free(conn, &n.id, fam, s, cursor)? else {
        let b = Bounds::of(s);
        let pool = match s.ip_range {
            Some(r) => format!("{r} (ip-range of {})", s.subnet),
            None => s.subnet.to_string(),
        };
        return Err(Error::Exhausted(format!(
            "network {}: no free {} address in {pool} (all {} in use)",
            n.name,
            fam.name(),
            b.size()
        )));
    };
    conn.execute(
        &format!("UPDATE networks SET {} = ?2 WHERE id = ?1", fam.cursor()),
        params![n.id, fam.key(a)],
    )
    .map_err(sql(format!("record network {}'s allocation cursor", n.name)))?;
    Ok(a)
}

impl NetStore {
    /// Connects a container to a network in the records, in one
    /// transaction: an address of each family the network has (the wanted
    /// one if given, see the module's documentation), the lowest free
    /// `ethN` of the container. A conflict if the container is already on
    /// the network or a wanted address is taken; exhausted when no address
    /// is left; not found if the network was removed.
    pub fn allocate(&self, container_id: &str, network: &Network, want: &Want) -> Result<Endpoint> {
        let mac = want.mac.as_deref().map(check_mac).transpose()?;
        let aliases =
            serde_json::to_string(&want.aliases).map_err(|e| damaged("aliases".into(), e))?;
        let op = format!(
            "connect container {} to network {}",
            short(container_id),
            network.name
        );
        self.immediate(&op, |tx| {
            // The stored network, not the caller's copy: it is the truth,
            // and it must still exist.
            let n = get_in(tx, &network.id).map_err(|e| match e {
                Error::NotFound(_) => {
                    Error::NotFound(format!("network {} not found", network.name))
                }
                e => e,
            })?;
            let on: bool = tx
                .query_row(
                    "SELECT 1 FROM endpoints WHERE container_id = ?1 AND network_id = ?2",
                    params![container_id, n.id],
                    |_| Ok(true),
                )
                .optional()
                .map_err(sql(&op))?
                .unwrap_or(false);
            if on {
                return Err(Error::Conflict(format!(
                    "container {} is already connected to network {}",
                    short(container_id),
                    n.name
                )));
            }
            if let (Some(ip), None) = (want.ipv4, n.v4()) {
                return Err(Error::Invalid(format!(
                    "--ip {ip}: network {} has no IPv4 subnet",
                    n.name
                )));
            }
            if let (Some(ip), None) = (want.ipv6, n.v6()) {
                return Err(Error::Invalid(format!(
                    "--ip6 {ip}: network {} has no IPv6 subnet",
                    n.name
                )));
            }
            let ipv4 = match n.v4() {
                Some(s) => Some(take(tx, &n, Family::V4, s, want.ipv4.map(IpAddr::V4))?),
                None => None,
            };
            let ipv6 = match n.v6() {
                Some(s) => Some(take(tx, &n, Family::V6, s, want.ipv6.map(IpAddr::V6))?),
                None => None,
            };
            let mut st = tx
                .prepare_cached("SELECT seq FROM endpoints WHERE container_id = ?1 ORDER BY seq")
                .map_err(sql(&op))?;
            let used: Vec<i64> = st
                .query_map(params![container_id], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(sql(&op))?;
            let seq = (0i64..)
                .zip(used.iter().copied().chain(std::iter::once(i64::MAX)))
                .find(|(i, u)| i != u)
                .map_or(0, |(i, _)| i);
            tx.execute(
                &format!("INSERT INTO endpoints ({EP_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"),
                params![
                    container_id,
                    n.id,
                    seq,
                    ipv4.map(|a| Family::V4.key(a)),
                    ipv6.map(|a| Family::V6.key(a)),
                    mac,
                    aliases
                ],
            )
            .map_err(sql(&op))?;
            Ok(Endpoint {
                container_id: container_id.to_string(),
                network_id: n.id.clone(),
                ipv4: ipv4.map(|a| Ipv4Addr::from(a as u32)),
                ipv6: ipv6.map(Ipv6Addr::from),
                mac: mac.clone(),
                aliases: want.aliases.clone(),
                interface: format!("eth{seq}"),
            })
        })
    }

    /// Disconnects a container from a network in the records (its
    /// addresses are free again, given out after the others: see the
    /// module). Not connected: Ok.
    pub fn release(&self, container_id: &str, network_id: &str) -> Result<()> {
        self.db
            .conn()
            .execute(
                "DELETE FROM endpoints WHERE container_id = ?1 AND network_id = ?2",
                params![container_id, network_id],
            )
            .map_err(sql(format!(
                "disconnect container {} from network {}",
                short(container_id),
                short(network_id)
            )))?;
        Ok(())
    }

    /// Disconnects a container from every network; returns what it had,
    /// in interface order.
    pub fn release_all(&self, container_id: &str) -> Result<Vec<Endpoint>> {
        let op = format!("disconnect container {} from its networks", short(container_id));
        self.immediate(&op, |tx| {
            let eps = query_endpoints(tx, "container_id = ?1 ORDER BY seq", container_id, &op)?;
            tx.execute(
                "DELETE FROM endpoints WHERE container_id = ?1",
                params![container_id],
            )
            .map_err(sql(&op))?;
            Ok(eps)
        })
    }

    /// A container's endpoints, in interface order.
    pub fn endpoints_of(&self, container_id: &str) -> Result<Vec<Endpoint>> {
        query_endpoints(
            &self.db.conn(),
            "container_id = ?1 ORDER BY seq",
            container_id,
            &format!("list container {}'s networks", short(container_id)),
        )
    }

    /// A network's endpoints, by IPv4 then IPv6 address.
    pub fn endpoints_on(&self, network_id: &str) -> Result<Vec<Endpoint>> {
        query_endpoints(
            &self.db.conn(),
            "network_id = ?1 ORDER BY ipv4, ipv6, container_id",
            network_id,
            &format!("list the containers on network {}", short(network_id)),
        )
    }

    /// Replaces a container's aliases on a network; not found if it is not
    /// connected.
    pub fn set_aliases(&self, container_id: &str, network_id: &str, aliases: &[String]) -> Result<()> {
        let json = serde_json::to_string(aliases).map_err(|e| damaged("aliases".into(), e))?;
        let n = self
            .db
            .conn()
            .execute(
                "UPDATE endpoints SET aliases = ?3 WHERE container_id = ?1 AND network_id = ?2",
                params![container_id, network_id, json],
            )
            .map_err(sql(format!(
                "set container {}'s aliases on network {}",
                short(container_id),
                short(network_id)
            )))?;
        if n == 0 {
            return Err(Error::NotFound(format!(
                "container {} is not connected to network {}",
                short(container_id),
                short(network_id)
            )));
        }
        Ok(())
    }

    /// Drops the endpoints of containers not in `live` (a container removed
    /// by a process killed before it released them); returns them, in
    /// container then interface order.
    pub fn reconcile(&self, live: &HashSet<String>) -> Result<Vec<Endpoint>> {
        let op = "drop the network endpoints of removed containers";
        self.immediate(op, |tx| {
            let mut st = tx
                .prepare("SELECT DISTINCT container_id FROM endpoints ORDER BY container_id")
                .map_err(sql(op))?;
            let ids: Vec<String> = st
                .query_map([], |r| r.get(0))
                .and_then(|rows| rows.collect())
                .map_err(sql(op))?;
            let mut dropped = Vec::new();
            for id in ids.iter().filter(|id| !live.contains(*id)) {
                dropped.extend(query_endpoints(tx, "container_id = ?1 ORDER BY seq", id, op)?);
                tx.execute("DELETE FROM endpoints WHERE container_id = ?1", params![id])
                    .map_err(sql(op))?;
            }
            Ok(dropped)
        })
    }
}
