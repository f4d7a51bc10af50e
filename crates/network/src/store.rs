//! The networks and their endpoints in the store's database (berth-db's
//! `store.db`, beside the images and containers): each change is one
//! transaction, so a kill -9 at any moment leaves the old rows or the new
//! ones. Names and bridge names are unique by constraint, so two parallel
//! `network create`s cannot both win; subnets are checked for overlaps in
//! the inserting transaction for the same reason. Addresses: [`crate::ipam`].

use crate::model::{self, Network};
use crate::{Error, Result};
use berth_db::rusqlite::{self, params, Connection, OptionalExtension, TransactionBehavior};
use berth_db::{Db, Tables};

/// The tables, kept in the store's database (open it with these, as the
/// engine does with its records'). No earlier berth kept networks:
/// `legacy_file` names a file none wrote, so nothing is ever imported.
pub const TABLES: Tables<'static> = Tables {
    schema: SCHEMA,
    legacy_file: "networks.db",
    tables: &["networks", "endpoints"],
};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS networks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    bridge TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,         -- ns since the epoch
    config TEXT NOT NULL,             -- model::Network as JSON
    last_v4 BLOB,                     -- the last IPv4 address given out (4 bytes, big-endian)
    last_v6 BLOB                      -- the last IPv6 address given out (16 bytes)
);
CREATE TABLE IF NOT EXISTS endpoints (
    container_id TEXT NOT NULL,
    network_id TEXT NOT NULL REFERENCES networks(id),
    seq INTEGER NOT NULL,             -- N of the interface ethN
    ipv4 BLOB,                        -- 4 bytes, big-endian: ordered as the addresses
    ipv6 BLOB,                        -- 16 bytes
    mac TEXT,
    aliases TEXT NOT NULL,            -- JSON array
    PRIMARY KEY (container_id, network_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ipv4 ON endpoints (network_id, ipv4);
CREATE UNIQUE INDEX IF NOT EXISTS endpoints_ipv6 ON endpoints (network_id, ipv6);
CREATE UNIQUE INDEX IF NOT EXISTS endpoints_seq ON endpoints (container_id, seq);
";

/// The networks and endpoints of a store.
#[derive(Clone)]
pub struct NetStore {
    pub(crate) db: Db,
}

/// An [`Error::Db`] maker for `map_err`, naming the step.
pub(crate) fn sql(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let op = op.into();
    move |cause| Error::Db(berth_db::Error::Sqlite { op, cause })
}

/// A row that does not parse: the database was edited or is damaged.
pub(crate) fn damaged(what: String, e: impl std::fmt::Display) -> Error {
    Error::Invalid(format!(
        "network database: {what} is damaged ({e}); the database was edited or is corrupt"
    ))
}

pub(crate) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

fn parse_network(id: &str, config: &str) -> Result<Network> {
    serde_json::from_str(config).map_err(|e| damaged(format!("network {id}'s record"), e))
}

impl NetStore {
    /// The networks in `db` (or the image store's, which shares it), which
    /// must have been opened with [`TABLES`].
    pub fn new(db: impl Into<Db>) -> NetStore {
        NetStore { db: db.into() }
    }

    /// `f` in one write transaction, taken at once (so the busy budget
    /// applies and no other writer comes between its reads and writes),
    /// committed if it succeeds; `op` names it.
    pub(crate) fn immediate<T>(
        &self,
        op: &str,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        let mut conn = self.db.conn();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sql(format!("{op}: begin a transaction")))?;
        let r = f(&tx)?;
        tx.commit().map_err(sql(format!("{op}: commit")))?;
        Ok(r)
    }

    /// Records a network. Its name and bridge must be free and its subnets
    /// overlap no other network's (checked again here, in the same
    /// transaction: two `network create`s that [`model::build`] at once
    /// cannot both take a subnet).
    pub fn insert(&self, n: &Network) -> Result<()> {
        let config =
            serde_json::to_string(n).map_err(|e| damaged(format!("network {}", n.name), e))?;
        self.immediate(&format!("record network {}", n.name), |tx| {
            let others = all(tx)?;
            if others.iter().any(|o| o.name == n.name) {
                return Err(Error::Conflict(format!("network {} already exists", n.name)));
            }
            if let Some(o) = others.iter().find(|o| o.bridge == n.bridge) {
                return Err(Error::Conflict(format!(
                    "bridge name {} is used by network {}",
                    n.bridge, o.name
                )));
            }
            if others.iter().any(|o| o.id == n.id) {
                return Err(Error::Conflict(format!(
                    "network id {} already exists",
                    n.short_id()
                )));
            }
            for s in &n.subnets {
                model::check_free(&n.name, s.subnet, &others, &[])?;
            }
            tx.execute(
                "INSERT INTO networks (id, name, bridge, created, config) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![n.id, n.name, n.bridge, n.created, config],
            )
            .map_err(sql(format!("record network {}", n.name)))?;
            Ok(())
        })
    }

    /// A network by full id, name, or unique id prefix (Docker's order).
    pub fn get(&self, name_or_id: &str) -> Result<Network> {
        let conn = self.db.conn();
        get_in(&conn, name_or_id)
    }

    /// The networks, by name.
    pub fn list(&self) -> Result<Vec<Network>> {
        all(&self.db.conn())
    }

    /// Removes a network with no endpoints; a conflict naming the
    /// containers otherwise. `id` is its full id (or name or prefix, as
    /// [`NetStore::get`]).
    pub fn remove(&self, id: &str) -> Result<()> {
        self.immediate(&format!("remove network {id}"), |tx| {
            let n = get_in(tx, id)?;
            let mut st = tx
                .prepare("SELECT container_id FROM endpoints WHERE network_id = ?1 ORDER BY container_id")
                .map_err(sql(format!("list the containers on network {}", n.name)))?;
            let users: Vec<String> = st
                .query_map(params![n.id], |r| r.get::<_, String>(0))
                .and_then(|rows| rows.collect())
                .map_err(sql(format!("list the containers on network {}", n.name)))?;
            if !users.is_empty() {
                let ids: Vec<&str> = users.iter().map(|c| short(c)).collect();
                return Err(Error::Conflict(format!(
                    "network {} has {} container(s) connected ({}): disconnect or remove them first",
                    n.name,
                    ids.len(),
                    ids.join(", ")
                )));
            }
            tx.execute("DELETE FROM networks WHERE id = ?1", params![n.id])
                .map_err(sql(format!("remove network {}", n.name)))?;
            Ok(())
        })
    }
}

/// Every network, by name.
pub(crate) fn all(conn: &Connection) -> Result<Vec<Network>> {
    let mut st = conn
        .prepare("SELECT id, config FROM networks ORDER BY name")
        .map_err(sql("list the networks"))?;
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql("list the networks"))?;
    rows.iter().map(|(id, c)| parse_network(id, c)).collect()
}

/// [`NetStore::get`] on `conn`.
pub(crate) fn get_in(conn: &Connection, name_or_id: &str) -> Result<Network> {
    let not_found = || Error::NotFound(format!("network {name_or_id} not found"));
    if name_or_id.is_empty() {
        return Err(not_found());
    }
    let one = |q: &str| -> Result<Option<(String, String)>> {
        conn.query_row(q, params![name_or_id], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()
            .map_err(sql(format!("look up network {name_or_id}")))
    };
    let row = match one("SELECT id, config FROM networks WHERE id = ?1")? {
        Some(r) => Some(r),
        None => one("SELECT id, config FROM networks WHERE name = ?1")?,
    };
    if let Some((id, c)) = row {
        return parse_network(&id, &c);
    }
    if !name_or_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(not_found());
    }
    let mut st = conn
        .prepare("SELECT id, config FROM networks WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2")
        .map_err(sql(format!("look up network {name_or_id}")))?;
    let rows: Vec<(String, String)> = st
        .query_map(params![name_or_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql(format!("look up network {name_or_id}")))?;
    match rows.as_slice() {
        [(id, c)] => parse_network(id, c),
        [] => Err(not_found()),
        _ => Err(Error::Invalid(format!(
            "network id prefix {name_or_id} is ambiguous (several networks match): give more digits or the name"
        ))),
    }
}
