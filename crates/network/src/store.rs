//! The networks and their endpoints in the store's database (berth-db's
//! `store.db`, beside the images and containers): each change is one
//! transaction, so a kill -9 at any moment leaves the old rows or the new
//! ones. Names and bridge names are unique by constraint, so two parallel
//! `network create`s cannot both win; subnets are checked for overlaps in
//! the inserting transaction for the same reason. Addresses: [`crate::ipam`].

use crate::model::{self, Network};
use crate::{Error, Result};
use berth_db::rusqlite::{self, params, Connection, OptionalExtension, TransactionBehavior};
use berth_db::{Cached, Db, Tables};

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
    /// cannot both take a subnet; [`NetStore::create`] does both in one
    /// transaction).
    pub fn insert(&self, n: &Network) -> Result<()> {
        self.immediate(&format!("record network {}", n.name), |tx| {
            let others = all(tx)?;
            insert_in(tx, n, &others)
        })
    }

    /// `network create`: [`model::build`] against the stored networks and
    /// [`NetStore::insert`], in one transaction (parallel creates that take
    /// a subnet from the pool get different ones).
    pub fn create(
        &self,
        req: &model::CreateRequest,
        host_routes: &[ipnet::IpNet],
        host_links: &[String],
    ) -> Result<Network> {
        self.immediate(&format!("create network {}", req.name), |tx| {
            let others = all(tx)?;
            let n = model::build_avoiding(req, &others, host_routes, host_links)?;
            insert_in(tx, &n, &others)?;
            Ok(n)
        })
    }

    /// The default network ([`model::DEFAULT_NETWORK`]), made and recorded
    /// ([`model::default_network`]) if there is none yet; processes that
    /// get here together all return the same one.
    pub fn ensure_default(&self, host_routes: &[ipnet::IpNet]) -> Result<Network> {
        match self.get(model::DEFAULT_NETWORK) {
            Err(Error::NotFound(_)) => {}
            r => return r,
        }
        self.immediate("create the default network", |tx| {
            match get_in(tx, model::DEFAULT_NETWORK) {
                Err(Error::NotFound(_)) => {}
                r => return r,
            }
            let others = all(tx)?;
            let n = model::default_network(&others, host_routes)?;
            insert_in(tx, &n, &others)?;
            Ok(n)
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
                .prepare_cached("SELECT container_id FROM endpoints WHERE network_id = ?1 ORDER BY container_id")
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
            tx.exec("DELETE FROM networks WHERE id = ?1", params![n.id])
                .map_err(sql(format!("remove network {}", n.name)))?;
            Ok(())
        })
    }
}

/// [`NetStore::insert`] in the caller's transaction; `others` are the
/// stored networks.
fn insert_in(tx: &Connection, n: &Network, others: &[Network]) -> Result<()> {
    let config = serde_json::to_string(n).map_err(|e| damaged(format!("network {}", n.name), e))?;
    if others.iter().any(|o| o.name == n.name) {
        return Err(Error::Conflict(format!(
            "network {} already exists",
            n.name
        )));
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
        model::check_free(&n.name, s.subnet, others, &[])?;
    }
    tx.exec(
        "INSERT INTO networks (id, name, bridge, created, config) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![n.id, n.name, n.bridge, n.created, config],
    )
    .map_err(sql(format!("record network {}", n.name)))?;
    Ok(())
}

/// Every network, by name.
pub(crate) fn all(conn: &Connection) -> Result<Vec<Network>> {
    let mut st = conn
        .prepare_cached("SELECT id, config FROM networks ORDER BY name")
        .map_err(sql("list the networks"))?;
    let rows: Vec<(String, String)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .map_err(sql("list the networks"))?;
    rows.iter().map(|(id, c)| parse_network(id, c)).collect()
}

/// The network with id `id` exactly, on `conn`.
pub(crate) fn by_id(conn: &Connection, id: &str) -> Result<Option<Network>> {
    let row: Option<String> = conn
        .row(
            "SELECT config FROM networks WHERE id = ?1",
            params![id],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql(format!("look up network {}", short(id))))?;
    row.map(|c| parse_network(id, &c)).transpose()
}

/// [`NetStore::get`] on `conn`.
pub(crate) fn get_in(conn: &Connection, name_or_id: &str) -> Result<Network> {
    let not_found = || Error::NotFound(format!("network {name_or_id} not found"));
    if name_or_id.is_empty() {
        return Err(not_found());
    }
    let one = |q: &str| -> Result<Option<(String, String)>> {
        conn.row(q, params![name_or_id], |r| Ok((r.get(0)?, r.get(1)?)))
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
        .prepare_cached(
            "SELECT id, config FROM networks WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2",
        )
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

/// A store in a temporary directory, for tests.
#[cfg(test)]
pub(crate) fn test_store() -> (tempfile::TempDir, NetStore) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), &[&TABLES]).unwrap();
    (dir, NetStore::new(db))
}

/// A network built for tests (`subnet` empty: from the pool).
#[cfg(test)]
pub(crate) fn test_network(s: &NetStore, name: &str, subnets: &[&str]) -> Network {
    let req = model::CreateRequest {
        name: name.to_string(),
        subnets: subnets.iter().map(|x| x.to_string()).collect(),
        ..Default::default()
    };
    let n = model::build(&req, &s.list().unwrap(), &[]).unwrap();
    s.insert(&n).unwrap();
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(name: &str, subnets: &[&str], opts: &[(&str, &str)], existing: &[Network]) -> Network {
        model::build(
            &model::CreateRequest {
                name: name.into(),
                subnets: subnets.iter().map(|x| x.to_string()).collect(),
                options: opts
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                ..Default::default()
            },
            existing,
            &[],
        )
        .unwrap()
    }

    #[test]
    fn networks_are_found_by_id_name_or_unique_prefix() {
        let (_d, s) = test_store();
        let a = test_network(&s, "alpha", &[]);
        let b = test_network(&s, "beta", &[]);
        assert_eq!(s.get("alpha").unwrap(), a);
        assert_eq!(s.get(&b.id).unwrap(), b);
        assert_eq!(s.list().unwrap(), vec![a.clone(), b.clone()]);
        // A unique prefix: the shortest one that tells them apart.
        let common =
            a.id.bytes()
                .zip(b.id.bytes())
                .take_while(|(x, y)| x == y)
                .count();
        assert_eq!(s.get(&a.id[..common + 1]).unwrap(), a);
        for missing in ["gamma", "", "ALPHA", "zz"] {
            let e = s.get(missing).unwrap_err();
            assert!(matches!(e, Error::NotFound(_)));
            assert_eq!(e.to_string(), format!("network {missing} not found"));
        }
        // Ambiguous: two ids with a common prefix.
        let mut c = build("c", &[], &[], &s.list().unwrap());
        c.id = format!("abc1{}", &c.id[4..]);
        s.insert(&c).unwrap();
        let mut d = build("d", &[], &[], &s.list().unwrap());
        d.id = format!("abc2{}", &d.id[4..]);
        s.insert(&d).unwrap();
        assert_eq!(
            s.get("abc").unwrap_err().to_string(),
            "network id prefix abc is ambiguous (several networks match): give more digits or the name"
        );
        assert_eq!(s.get("abc2").unwrap(), d);
        // A name wins over an id prefix; a full id over a name.
        let mut e = build("abc1", &[], &[], &s.list().unwrap());
        e.id = format!("ffff{}", &e.id[4..]);
        s.insert(&e).unwrap();
        assert_eq!(s.get("abc1").unwrap(), e);
        assert_eq!(s.get(&c.id).unwrap(), c);
    }

    #[test]
    fn insert_refuses_taken_names_bridges_and_overlapping_subnets() {
        let (_d, s) = test_store();
        let a = test_network(&s, "a", &["172.30.0.0/16"]);
        // Built against no networks, as a parallel `network create` would.
        let x1 = [(model::OPT_BRIDGE_NAME, "x1")];
        let e = s
            .insert(&build("a", &["10.1.0.0/24"], &x1, &[]))
            .unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert_eq!(e.to_string(), "network a already exists");
        assert_eq!(
            s.insert(&build("b", &["10.1.0.0/24"], &[], &[]))
                .unwrap_err()
                .to_string(),
            format!("bridge name {} is used by network a", a.bridge)
        );
        assert_eq!(
            s.insert(&build("b", &["172.30.9.0/24"], &x1, &[])).unwrap_err().to_string(),
            "network b: subnet 172.30.9.0/24 overlaps network a's subnet 172.30.0.0/16: choose another --subnet"
        );
        assert_eq!(s.list().unwrap().len(), 1);
        let mut same_id = build("c", &["10.1.0.0/24"], &x1, &[]);
        same_id.id = a.id.clone();
        assert!(matches!(s.insert(&same_id), Err(Error::Conflict(_))));
        s.insert(&build("b", &["10.1.0.0/24"], &x1, &[])).unwrap();
    }

    #[test]
    fn a_network_with_containers_is_not_removed() {
        let (_d, s) = test_store();
        let n = test_network(&s, "busy", &[]);
        let c1 = "1".repeat(64);
        let c2 = "2".repeat(64);
        s.allocate(&c1, &n, &Default::default()).unwrap();
        s.allocate(&c2, &n, &Default::default()).unwrap();
        let e = s.remove(&n.id).unwrap_err();
        assert!(matches!(e, Error::Conflict(_)));
        assert_eq!(
            e.to_string(),
            "network busy has 2 container(s) connected (111111111111, 222222222222): disconnect or remove them first"
        );
        s.release(&c1, &n.id).unwrap();
        s.release(&c2, &n.id).unwrap();
        s.remove(&n.id).unwrap();
        assert!(matches!(s.get("busy"), Err(Error::NotFound(_))));
        assert_eq!(
            s.remove(&n.id).unwrap_err().to_string(),
            format!("network {} not found", n.id)
        );
        // The database refuses it too (no cascade).
        let m = test_network(&s, "m", &[]);
        s.allocate(&c1, &m, &Default::default()).unwrap();
        assert!(s.db.conn().execute("DELETE FROM networks", []).is_err());
    }

    #[test]
    fn parallel_creates_take_different_subnets_and_bridges() {
        let dir = tempfile::tempdir().unwrap();
        let open = || NetStore::new(Db::open(dir.path(), &[&TABLES]).unwrap());
        let go = std::sync::Barrier::new(4);
        let made: Vec<Network> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|t| {
                    let (go, s) = (&go, open());
                    sc.spawn(move || {
                        go.wait();
                        (0..5)
                            .map(|i| {
                                let req = model::CreateRequest {
                                    name: format!("n{t}-{i}"),
                                    ..Default::default()
                                };
                                s.create(&req, &[], &[]).unwrap()
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            hs.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let subnets: std::collections::HashSet<_> =
            made.iter().map(|n| n.subnets[0].subnet).collect();
        let bridges: std::collections::HashSet<_> = made.iter().map(|n| n.bridge.clone()).collect();
        assert_eq!((subnets.len(), bridges.len()), (20, 20));
        assert_eq!(open().list().unwrap().len(), 20);
        // `create` checks as `build` does.
        let e = open()
            .create(
                &model::CreateRequest {
                    name: "bridge".into(),
                    ..Default::default()
                },
                &[],
                &[],
            )
            .unwrap_err();
        assert!(e.to_string().contains("is reserved"), "{e}");
    }

    #[test]
    fn the_default_network_is_made_once() {
        let dir = tempfile::tempdir().unwrap();
        let open = || NetStore::new(Db::open(dir.path(), &[&TABLES]).unwrap());
        let go = std::sync::Barrier::new(4);
        let got: Vec<Network> = std::thread::scope(|sc| {
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let (go, s) = (&go, open());
                    sc.spawn(move || {
                        go.wait();
                        s.ensure_default(&["172.17.0.0/24".parse().unwrap()])
                            .unwrap()
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(got.iter().all(|n| *n == got[0]));
        assert_eq!(got[0].name, "bridge");
        assert_eq!(
            got[0].v4().unwrap().subnet,
            "172.18.0.0/16".parse().unwrap()
        );
        assert_eq!(open().list().unwrap(), vec![got[0].clone()]);
        // A user network created next avoids it.
        let u = open()
            .create(
                &model::CreateRequest {
                    name: "u".into(),
                    ..Default::default()
                },
                &[],
                &[],
            )
            .unwrap();
        assert_eq!(u.v4().unwrap().subnet, "10.89.0.0/24".parse().unwrap());
    }

    #[test]
    fn an_older_record_without_newer_fields_reads() {
        let (_d, s) = test_store();
        let n = test_network(&s, "old", &[]);
        let mut v: serde_json::Value = serde_json::to_value(&n).unwrap();
        let o = v.as_object_mut().unwrap();
        o.remove("labels");
        o.remove("mtu");
        s.db.conn()
            .execute(
                "UPDATE networks SET config = ?2 WHERE id = ?1",
                params![n.id, v.to_string()],
            )
            .unwrap();
        assert_eq!(s.get("old").unwrap(), n);
    }

    #[test]
    fn a_damaged_record_is_an_error_naming_it() {
        let (_d, s) = test_store();
        let n = test_network(&s, "x", &[]);
        s.db.conn()
            .execute(
                "UPDATE networks SET config = '{' WHERE id = ?1",
                params![n.id],
            )
            .unwrap();
        let e = s.get("x").unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "network database: network {}'s record is damaged",
                n.id
            )),
            "{e}"
        );
    }
}
