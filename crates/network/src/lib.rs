//! berth's networks, below the engine: what a bridge network is made of on
//! the host, and the records that say which container has which address.
//!
//! - [`model`]: a network's definition (subnets, gateway, ranges, options),
//!   Docker's defaults and checks, the default `bridge` network.
//! - [`ipam`] and [`store`]: the `networks` and `endpoints` tables in the
//!   store's database (berth-db), allocation and release of addresses in
//!   one transaction, reconciliation with the containers that exist.
//! - [`netns`]: network namespaces bind-mounted at a path (created from a
//!   thread of their own, removed by unmounting).
//! - [`link`]: bridges, veth pairs, addresses, routes and the kernel's
//!   per-interface settings over a synchronous rtnetlink socket.
//! - [`nft`]: berth's own nftables table (masquerade, published ports by
//!   maps, isolation), changed by element, never flushing anyone's rules.
//! - [`ports`]: `-p` as Docker parses it, and host ports checked free.
//! - [`resolv`]: the host's resolvers (systemd-resolved's stub handled),
//!   for the DNS responder's forwarding.

pub mod ipam;
pub mod link;
pub mod model;
pub mod netns;
pub mod nft;
pub mod ports;
pub mod resolv;
pub mod store;

/// What went wrong, with the object and the operation named.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A system call or file operation; `op` names it and its object.
    #[error("{op}: {source}")]
    Io {
        op: String,
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a netlink request; `op` names it.
    #[error("{op}: {msg}")]
    Netlink { op: String, msg: String },
    /// nft refused or failed; `op` names the change.
    #[error("{op}: {msg}")]
    Nft { op: String, msg: String },
    /// The user's input is invalid (one line, naming the value).
    #[error("{0}")]
    Invalid(String),
    /// In use, overlapping or existing already.
    #[error("{0}")]
    Conflict(String),
    /// No such network or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// No address left in a pool.
    #[error("{0}")]
    Exhausted(String),
    #[error(transparent)]
    Db(#[from] berth_db::Error),
}

pub type Result<T> = std::result::Result<T, Error>;

/// An [`Error::Io`] maker for `map_err`.
pub fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |source| Error::Io { op, source }
}
