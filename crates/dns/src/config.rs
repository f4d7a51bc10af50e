//! What the engine tells the responder: one file per network in the
//! responder's directory (`<run root>/dns/<network id>.json`), replaced
//! atomically (a temporary file renamed over it) under the engine's DNS
//! lock, then the responder is sent SIGHUP and reads them all again.
//!
//! The responder answers a query that arrives on one of a network's
//! `listen` addresses from that network's records only: containers on
//! other networks are not visible.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// One network's names.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetworkFile {
    /// The network's name (for logs).
    pub network: String,
    /// The addresses the responder serves this network on, port 53 (UDP
    /// and TCP): the bridge's gateway addresses.
    pub listen: Vec<IpAddr>,
    /// Where other names are resolved: the host's resolvers (port 53
    /// unless given).
    pub upstreams: Vec<SocketAddr>,
    /// The containers on the network.
    pub records: Vec<Record>,
    /// The network's subnets (`10.89.0.0/24`): only queries from these
    /// sources are answered (a query from elsewhere, another network or
    /// the outside, is refused). Empty: any source (older files).
    pub sources: Vec<String>,
    /// An internal network: nothing is forwarded (its containers reach
    /// nothing outside, not even through DNS).
    pub internal: bool,
}

/// One container's endpoint on a network.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Record {
    /// The container's full id (64 hex digits): its 12-digit short id and
    /// any longer prefix resolve too.
    pub id: String,
    /// Its name and its aliases on this network (case-insensitive, as
    /// DNS is).
    pub names: Vec<String>,
    pub ipv4: Vec<Ipv4Addr>,
    pub ipv6: Vec<Ipv6Addr>,
    /// The container's own `--dns` servers: its queries for other names go
    /// there instead of `upstreams`.
    pub dns_servers: Vec<SocketAddr>,
}
