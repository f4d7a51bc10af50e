//! Container and volume records: tables in the store's SQLite database
//! (`berth-db`: `store.db` in the store root, WAL, shared with the image
//! store; an earlier berth's `containers.db` is imported into it once). Each change is one
//! transaction, so a kill -9 at any moment leaves either the old record or
//! the new one; names are unique by constraint, so parallel `berth run
//! --name x` cannot both win.
//!
//! The engine commits with `synchronous=NORMAL`: a commit survives the
//! process dying at once and a power cut loses at most the last commits,
//! never consistency (pulls, whose blobs cost a download, keep FULL).

use crate::error::{db, Error, Result};
use crate::specgen::ContainerSpec;
use berth_db::rusqlite::{self, params, Connection, OptionalExtension};
use berth_db::{Cached, Db, Tables};
use serde::{Deserialize, Serialize};

/// The records' tables, kept in the store's database beside the image
/// store's (one file, so a command opens one database), and where an
/// earlier berth kept them.
pub const TABLES: Tables<'static> = Tables {
    schema: SCHEMA,
    legacy_file: "containers.db",
    tables: &["containers", "volumes", "container_volumes"],
};

/// How many events the store keeps (the oldest go first; see
/// [`crate::events`]).
pub const EVENTS_KEPT: i64 = 10_000;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,              -- as the user named it
    image_id TEXT NOT NULL,
    created INTEGER NOT NULL,         -- ns since the epoch
    config TEXT NOT NULL,             -- ContainerSpec as JSON
    state TEXT NOT NULL               -- RunState as JSON
);
CREATE TABLE IF NOT EXISTS volumes (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    labels TEXT NOT NULL,             -- JSON object
    anonymous INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS container_volumes (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    volume TEXT NOT NULL REFERENCES volumes(name),
    PRIMARY KEY (container_id, volume)
);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,               -- container, image, volume
    action TEXT NOT NULL,
    actor TEXT NOT NULL,              -- the object's id (or name)
    attributes TEXT NOT NULL          -- JSON object
);
";

/// Where a container is in its life, as recorded. The live truth of a
/// started container is the monitor's state file; `Engine::refresh`
/// reconciles the two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Restarting,
    Exited,
    /// Being removed.
    Removing,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Removing => "removing",
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunState {
    pub status: Status,
    pub pid: i32,
    pub monitor_pid: i32,
    /// The boot the monitor was started in: after a reboot, a "running"
    /// record is stale.
    pub boot_id: String,
    /// ns since the epoch (0: never).
    pub started: i64,
    pub finished: i64,
    pub exit_code: i32,
    pub oom_killed: bool,
    pub restarts: u32,
    pub error: String,
    pub log_dropped: u64,
    /// Output bytes attached clients were too slow to take.
    pub attach_dropped: u64,
    /// `berth stop`/`kill` was used: restart policies stay off until the
    /// next `start`.
    pub stopped_by_user: bool,
    /// Frozen by `berth pause` (meaningful while running; any state
    /// written that is not running clears it).
    pub paused: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub id: String,
    pub name: String,
    pub image: String,
    pub image_id: String,
    pub created: i64,
    /// What the container was asked to be.
    pub spec: ContainerSpec,
    pub state: RunState,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VolumeRecord {
    pub name: String,
    pub created: i64,
    pub labels: std::collections::BTreeMap<String, String>,
    pub anonymous: bool,
}

pub struct Records {
    db: Db,
}

fn corrupt(what: &str, e: serde_json::Error) -> Error {
    Error::Runtime(format!(
        "container state database: {what} is not valid JSON ({e}); the database was edited or is damaged"
    ))
}

fn row_to_record(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Record, String, String)> {
    Ok((
        Record {
            id: r.get(0)?,
            name: r.get(1)?,
            image: r.get(2)?,
            image_id: r.get(3)?,
            created: r.get(4)?,
            spec: ContainerSpec::default(),
            state: RunState::default(),
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

fn parse_row(row: (Record, String, String)) -> Result<(Record, Option<String>)> {
    let (mut rec, config, state) = row;
    let (spec, migrated) = crate::specgen::from_stored(&config)?;
    rec.spec = spec;
    rec.state = serde_json::from_str(&state).map_err(|e| corrupt("a container's state", e))?;
    Ok((rec, migrated.then_some(config)))
}

const COLUMNS: &str = "id, name, image, image_id, created, config, state";

impl Records {
    /// The records in `db` (or the image store's, which shares it), which
    /// must have been opened with [`TABLES`] (as `Engine::open` does).
    pub fn new(db: impl Into<Db>) -> Records {
        Records { db: db.into() }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.conn()
    }

    /// Adds a container; a taken name is a conflict.
    pub fn insert(&self, rec: &Record) -> Result<()> {
        Records::insert_in(&self.conn(), rec)
    }

    /// [`Records::insert`] on `conn`, inside a transaction of the caller's
    /// (`Store::hold_with`).
    pub fn insert_in(conn: &Connection, rec: &Record) -> Result<()> {
        let config = serde_json::to_string(&rec.spec).map_err(|e| corrupt("spec", e))?;
        let state = serde_json::to_string(&rec.state).map_err(|e| corrupt("state", e))?;
        let r = conn.exec(
            "INSERT INTO containers (id, name, image, image_id, created, config, state)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                rec.id,
                rec.name,
                rec.image,
                rec.image_id,
                rec.created,
                config,
                state
            ],
        );
        match r {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::NameInUse(rec.name.clone()))
            }
            Err(e) => Err(db("record the container")(e)),
        }
    }

    /// Records the container's state, all but `stopped_by_user`, which
    /// keeps its stored value: only [`Records::set_stopped_by_user`]
    /// changes it, in one statement, so a `stop` is never lost to another
    /// process writing a state it read before.
    pub fn set_state(&self, id: &str, state: &RunState) -> Result<()> {
        let s = serde_json::to_string(state).map_err(|e| corrupt("state", e))?;
        self.conn()
            .exec(
                "UPDATE containers SET state = json_set(?2, '$.stopped_by_user', \
                 CASE WHEN json_extract(state, '$.stopped_by_user') THEN json('true') ELSE json('false') END, \
                 '$.paused', CASE WHEN json_extract(?2, '$.status') = 'running' \
                 AND json_extract(state, '$.paused') THEN json('true') ELSE json('false') END) \
                 WHERE id = ?1",
                params![id, s],
            )
            .map_err(db("record the container's state"))?;
        Ok(())
    }

    /// Marks the container stopped by the user (`stop`, `kill`) or not (a
    /// `start`).
    pub fn set_stopped_by_user(&self, id: &str, stopped: bool) -> Result<()> {
        self.conn()
            .exec(
                "UPDATE containers SET state = json_set(state, '$.stopped_by_user', json(?2)) WHERE id = ?1",
                params![id, if stopped { "true" } else { "false" }],
            )
            .map_err(db("record that the container was stopped"))?;
        Ok(())
    }

    /// Marks the container paused or not (`pause`, `unpause`); kept by
    /// [`Records::set_state`] while the container runs.
    pub fn set_paused(&self, id: &str, paused: bool) -> Result<()> {
        self.conn()
            .exec(
                "UPDATE containers SET state = json_set(state, '$.paused', json(?2)) WHERE id = ?1",
                params![id, if paused { "true" } else { "false" }],
            )
            .map_err(db("record that the container was paused"))?;
        Ok(())
    }

    /// A row read: a record of the old format (before the typed spec) is
    /// written back in the new one, unless it changed meanwhile (then the
    /// writer's is kept; the next read converts it again).
    fn finish(&self, row: (Record, String, String)) -> Result<Record> {
        let (rec, old) = parse_row(row)?;
        if let Some(old) = old {
            let new = serde_json::to_string(&rec.spec).map_err(|e| corrupt("spec", e))?;
            // Best effort: a read must not fail for it (a busy or read-only
            // database); the next read converts the row again.
            let _ = self.conn().exec(
                "UPDATE containers SET config = ?2 WHERE id = ?1 AND config = ?3",
                params![rec.id, new, old],
            );
        }
        Ok(rec)
    }

    /// Replaces the container's stored spec (`update`).
    pub fn set_spec(&self, id: &str, spec: &ContainerSpec) -> Result<()> {
        let c = serde_json::to_string(spec).map_err(|e| corrupt("spec", e))?;
        self.conn()
            .exec(
                "UPDATE containers SET config = ?2 WHERE id = ?1",
                params![id, c],
            )
            .map_err(db("record the container's new options"))?;
        Ok(())
    }

    /// Appends an event (one statement); every 100th also drops those
    /// beyond the newest [`EVENTS_KEPT`].
    pub fn add_event(&self, e: &crate::events::Event) -> Result<()> {
        let attrs = serde_json::to_string(&e.actor.attributes).map_err(|x| corrupt("event", x))?;
        let conn = self.conn();
        conn.exec(
            "INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![e.time_nano, e.kind, e.action, e.actor.id, attrs],
        )
        .map_err(db("record an event"))?;
        let seq = conn.last_insert_rowid();
        if seq % 100 == 0 {
            conn.exec(
                "DELETE FROM events WHERE seq <= ?1",
                params![seq - EVENTS_KEPT],
            )
            .map_err(db("drop old events"))?;
        }
        Ok(())
    }

    /// The events after sequence number `after`, oldest first, with their
    /// sequence numbers (at most `limit`).
    pub fn events_after(&self, after: i64, limit: i64) -> Result<Vec<(i64, crate::events::Event)>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached(
                "SELECT seq, time_nano, type, action, actor, attributes FROM events \
                 WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(db("read events"))?;
        let rows = st
            .query_map(params![after, limit], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })
            .map_err(db("read events"))?;
        let mut out = Vec::new();
        for r in rows {
            let (seq, time_nano, kind, action, id, attrs) = r.map_err(db("read events"))?;
            let attributes = serde_json::from_str(&attrs).map_err(|e| corrupt("an event", e))?;
            out.push((
                seq,
                crate::events::Event::new(time_nano, &kind, &action, &id, attributes),
            ));
        }
        Ok(out)
    }

    /// The newest event's sequence number (0: none).
    pub fn last_event(&self) -> Result<i64> {
        self.conn()
            .row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| r.get(0))
            .map_err(db("read events"))
    }

    pub fn rename(&self, id: &str, name: &str) -> Result<()> {
        match self.conn().exec(
            "UPDATE containers SET name = ?2 WHERE id = ?1",
            params![id, name],
        ) {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(Error::Conflict(format!(
                    "the name {name:?} is already in use by another container"
                )))
            }
            Err(e) => Err(db("rename the container")(e)),
        }
    }

    pub fn remove(&self, id: &str) -> Result<()> {
        Records::remove_in(&self.conn(), id)
    }

    /// [`Records::remove`] on `conn`, inside a transaction of the caller's
    /// (`Store::release_with`).
    pub fn remove_in(conn: &Connection, id: &str) -> Result<()> {
        conn.exec("DELETE FROM containers WHERE id = ?1", params![id])
            .map_err(db("remove the container's record"))?;
        Ok(())
    }

    pub fn all(&self) -> Result<Vec<Record>> {
        let conn = self.conn();
        let mut st = conn
            .prepare(&format!(
                "SELECT {COLUMNS} FROM containers ORDER BY created DESC"
            ))
            .map_err(db("list containers"))?;
        let rows = st
            .query_map([], row_to_record)
            .map_err(db("list containers"))?;
        let rows = rows
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(db("list containers"))?;
        drop(st);
        drop(conn);
        rows.into_iter().map(|r| self.finish(r)).collect()
    }

    pub fn get(&self, id: &str) -> Result<Option<Record>> {
        let row = self
            .conn()
            .row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1"),
                params![id],
                row_to_record,
            )
            .optional()
            .map_err(db("read the container"))?;
        row.map(|r| self.finish(r)).transpose()
    }

    /// By full id, name, or unique id prefix (as Docker resolves).
    pub fn find(&self, what: &str) -> Result<Record> {
        let what = what.strip_prefix('/').unwrap_or(what);
        if what.is_empty() {
            return Err(Error::NoSuchContainer(String::new()));
        }
        let row = self
            .conn()
            .row(
                &format!("SELECT {COLUMNS} FROM containers WHERE id = ?1 OR name = ?1"),
                params![what],
                row_to_record,
            )
            .optional()
            .map_err(db("find the container"))?;
        if let Some(r) = row {
            return self.finish(r);
        }
        if what.bytes().all(|b| b.is_ascii_hexdigit()) {
            let conn = self.conn();
            let mut st = conn
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM containers WHERE substr(id, 1, ?2) = ?1 LIMIT 2"
                ))
                .map_err(db("find the container"))?;
            let mut rows: Vec<_> = st
                .query_map(params![what, what.len() as i64], row_to_record)
                .map_err(db("find the container"))?
                .collect::<rusqlite::Result<_>>()
                .map_err(db("find the container"))?;
            if rows.len() > 1 {
                return Err(Error::Conflict(format!(
                    "{what}: more than one container id starts with this; give more digits"
                )));
            }
            drop(st);
            drop(conn);
            if let Some(r) = rows.pop() {
                return self.finish(r);
            }
        }
        Err(Error::NoSuchContainer(what.to_string()))
    }

    // Volumes.

    /// Adds a volume unless one of that name exists; true if added.
    pub fn add_volume(&self, v: &VolumeRecord) -> Result<bool> {
        let labels = serde_json::to_string(&v.labels).map_err(|e| corrupt("labels", e))?;
        let n = self
            .conn()
            .exec(
                "INSERT OR IGNORE INTO volumes (name, created, labels, anonymous) VALUES (?1, ?2, ?3, ?4)",
                params![v.name, v.created, labels, v.anonymous],
            )
            .map_err(db("record the volume"))?;
        Ok(n == 1)
    }

    pub fn volumes(&self) -> Result<Vec<VolumeRecord>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT name, created, labels, anonymous FROM volumes ORDER BY name")
            .map_err(db("list volumes"))?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, bool>(3)?,
                ))
            })
            .map_err(db("list volumes"))?;
        let mut out = Vec::new();
        for r in rows {
            let (name, created, labels, anonymous) = r.map_err(db("list volumes"))?;
            out.push(VolumeRecord {
                name,
                created,
                labels: serde_json::from_str(&labels).map_err(|e| corrupt("volume labels", e))?,
                anonymous,
            });
        }
        Ok(out)
    }

    pub fn volume(&self, name: &str) -> Result<VolumeRecord> {
        self.volumes()?
            .into_iter()
            .find(|v| v.name == name)
            .ok_or_else(|| Error::NoSuchVolume(name.to_string()))
    }

    /// Containers using the volume.
    pub fn volume_users(&self, name: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT container_id FROM container_volumes WHERE volume = ?1")
            .map_err(db("list the volume's users"))?;
        let rows = st
            .query_map(params![name], |r| r.get::<_, String>(0))
            .map_err(db("list the volume's users"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db("list the volume's users"))
    }

    pub fn use_volume(&self, container: &str, volume: &str) -> Result<()> {
        self.conn()
            .exec(
                "INSERT OR IGNORE INTO container_volumes (container_id, volume) VALUES (?1, ?2)",
                params![container, volume],
            )
            .map_err(db("record the volume's use"))?;
        Ok(())
    }

    /// Volumes the container uses.
    pub fn container_volumes(&self, container: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT volume FROM container_volumes WHERE container_id = ?1")
            .map_err(db("list the container's volumes"))?;
        let rows = st
            .query_map(params![container], |r| r.get::<_, String>(0))
            .map_err(db("list the container's volumes"))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(db("list the container's volumes"))
    }

    /// Removes a volume's record if no container uses it.
    pub fn remove_volume(&self, name: &str) -> Result<()> {
        let users = self.volume_users(name)?;
        if !users.is_empty() {
            return Err(Error::Conflict(format!(
                "volume {name} is in use by container {}; remove the container first",
                &users[0][..12.min(users[0].len())]
            )));
        }
        let n = self
            .conn()
            .exec("DELETE FROM volumes WHERE name = ?1", params![name])
            .map_err(db("remove the volume's record"))?;
        if n == 0 {
            return Err(Error::NoSuchVolume(name.to_string()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_image::store::Store;
    use std::path::Path;

    fn open(root: &Path) -> Records {
        Records::new(Store::open_with(root, &[TABLES]).unwrap().db())
    }

    fn rec(id: &str, name: &str) -> Record {
        Record {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            created: 1,
            spec: ContainerSpec::default(),
            state: RunState::default(),
        }
    }

    /// A row berth wrote before the typed spec (the flat `ContainerConfig`)
    /// reads as the spec and is written back in the new format.
    #[test]
    fn an_old_format_row_is_converted_and_rewritten_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path());
        r.insert(&rec("c1", "old")).unwrap();
        let old = r#"{"args":["sleep","1"],"memory":67108864,"network":"host","pid":"","ipc":"host","uts":"","restart":"always","extra_hosts":[["db","10.0.0.2"]],"device_read_bps":[["/dev/sda",1024]],"labels":{"k":"v"},"runtime":"runc","log_driver":"json-file","log_max_size":0,"log_max_files":1}"#;
        r.conn()
            .execute(
                "UPDATE containers SET config = ?1 WHERE id = 'c1'",
                params![old],
            )
            .unwrap();
        let got = r.find("old").unwrap();
        let s = &got.spec;
        assert_eq!(s.process.args, ["sleep", "1"]);
        assert_eq!(s.resources.memory, Some(64 << 20));
        assert!(s.namespaces.net.is_host() && s.namespaces.ipc.is_host());
        assert!(!s.namespaces.pid.is_host());
        assert_eq!(s.lifecycle.restart, crate::specgen::RestartPolicy::Always);
        assert_eq!(s.network.extra_hosts[0].name, "db");
        assert_eq!(s.resources.device_read_bps[0].value, 1024);
        assert_eq!(s.runtime, "runc");
        assert_eq!(s.logging.driver, crate::specgen::LogDriver::JsonFile);
        assert_eq!((s.logging.max_size, s.logging.max_files), (0, 1));
        let stored: String = r
            .conn()
            .query_row("SELECT config FROM containers WHERE id = 'c1'", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(stored, serde_json::to_string(s).unwrap());
        // Read again (now the new format), and through every reader.
        assert_eq!(r.get("c1").unwrap().unwrap(), got);
        assert_eq!(r.all().unwrap(), std::slice::from_ref(&got));
        assert_eq!(r.find("c").unwrap(), got);
    }

    #[test]
    fn records_opened_together_on_a_new_root_all_open() {
        // Regression: parallel `berth run`s on a fresh store failed with
        // "enable WAL: database is locked".
        for round in 0..10 {
            let dir = tempfile::tempdir().unwrap();
            let go = std::sync::Barrier::new(12);
            std::thread::scope(|s| {
                for i in 0..12 {
                    let (dir, go) = (&dir, &go);
                    s.spawn(move || {
                        go.wait();
                        let r = open(dir.path());
                        r.insert(&rec(&format!("{round}x{i}"), &format!("n{i}")))
                            .unwrap();
                    });
                }
            });
            assert_eq!(open(dir.path()).all().unwrap().len(), 12);
        }
    }

    /// The schema of a root made by berth before berth-db (at 90f10bf:
    /// `berth volume create`, `sqlite_master` of its store.db, read back).
    const SCHEMA_BEFORE_BERTH_DB: &[&str] = &[
        r#"CREATE TABLE container_volumes (
    container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
    volume TEXT NOT NULL REFERENCES volumes(name),
    PRIMARY KEY (container_id, volume)
)"#,
        r#"CREATE TABLE containers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    image TEXT NOT NULL,              -- as the user named it
    image_id TEXT NOT NULL,
    created INTEGER NOT NULL,         -- ns since the epoch
    config TEXT NOT NULL,             -- ContainerConfig as JSON
    state TEXT NOT NULL               -- RunState as JSON
)"#,
        r#"CREATE TABLE events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_nano INTEGER NOT NULL,
    type TEXT NOT NULL,               -- container, image, volume
    action TEXT NOT NULL,
    actor TEXT NOT NULL,              -- the object's id (or name)
    attributes TEXT NOT NULL          -- JSON object
)"#,
        r#"CREATE TABLE holds (
    holder TEXT PRIMARY KEY,          -- a container using the image
    image_id TEXT NOT NULL REFERENCES images(id)
)"#,
        r#"CREATE TABLE image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, idx)
)"#,
        r#"CREATE INDEX image_layers_chain ON image_layers(chain_id)"#,
        r#"CREATE TABLE images (
    id TEXT PRIMARY KEY,              -- config digest
    manifest_digest TEXT NOT NULL,
    manifest_type TEXT NOT NULL,
    created TEXT,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    pulled INTEGER NOT NULL
)"#,
        r#"CREATE TABLE layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,
    media_type TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    size INTEGER NOT NULL,            -- file data unpacked
    diff_size INTEGER NOT NULL        -- the uncompressed tar
)"#,
        r#"CREATE TABLE meta (
    key TEXT PRIMARY KEY,             -- e.g. 'imported images.db'
    value TEXT NOT NULL
)"#,
        r#"CREATE TABLE names (
    name TEXT PRIMARY KEY,            -- registry/repository:tag or @digest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
)"#,
        r#"CREATE TABLE volumes (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    labels TEXT NOT NULL,             -- JSON object
    anonymous INTEGER NOT NULL
)"#,
    ];

    fn master(db: &Connection) -> Vec<(String, String, Option<String>)> {
        let mut st = db
            .prepare("SELECT type, name, sql FROM sqlite_master ORDER BY name")
            .unwrap();
        let rows = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }

    #[test]
    fn a_root_made_before_berth_db_opens_unchanged() {
        // The root as that berth left it: its schema, WAL, rows of both
        // owners (an image held by a container using a volume, an event,
        // a done import), the rows still in the kept -wal file.
        let dir = tempfile::tempdir().unwrap();
        let before = {
            let db = Connection::open(dir.path().join(berth_db::DB_FILE)).unwrap();
            db.pragma_update(None, "journal_mode", "WAL").unwrap();
            for sql in SCHEMA_BEFORE_BERTH_DB {
                db.execute_batch(sql).unwrap();
            }
            db.execute_batch(
                "INSERT INTO images VALUES ('sha256:1111111111111111111111111111111111111111111111111111111111111111', 'sha256:2222222222222222222222222222222222222222222222222222222222222222', 'application/vnd.oci.image.manifest.v1+json', NULL, 'linux', 'amd64', 1);
                 INSERT INTO names VALUES ('docker.io/library/busybox:latest', 'sha256:1111111111111111111111111111111111111111111111111111111111111111');
                 INSERT INTO holds VALUES ('container:c1', 'sha256:1111111111111111111111111111111111111111111111111111111111111111');
                 INSERT INTO volumes VALUES ('data', 1, '{}', 0);
                 INSERT INTO events (time_nano, type, action, actor, attributes) VALUES (1, 'volume', 'create', 'data', '{}');
                 INSERT INTO meta VALUES ('imported containers.db', '0.1.0');",
            )
            .unwrap();
            let mut c = rec("c1", "web");
            c.image_id =
                "sha256:1111111111111111111111111111111111111111111111111111111111111111".into();
            Records::insert_in(&db, &c).unwrap();
            db.execute("INSERT INTO container_volumes VALUES ('c1', 'data')", [])
                .unwrap();
            let m = master(&db);
            let _ = db.set_db_config(
                rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
                true,
            );
            m
        };
        assert!(dir.path().join("store.db-wal").exists());

        let store = Store::open_with(dir.path(), &[TABLES]).unwrap();
        let r = Records::new(store.db());
        assert_eq!(
            r.find("web").unwrap().image_id,
            "sha256:1111111111111111111111111111111111111111111111111111111111111111"
        );
        assert_eq!(r.volume_users("data").unwrap(), vec!["c1".to_string()]);
        assert_eq!(r.last_event().unwrap(), 1);
        assert_eq!(
            store.resolve("busybox").unwrap().id.to_string(),
            "sha256:1111111111111111111111111111111111111111111111111111111111111111"
        );
        assert_eq!(store.holders().unwrap(), vec!["container:c1".to_string()]);
        assert_eq!(master(&store.db().conn()), before, "the schema changed");
        drop((r, store));

        // A new root gets the same schema (its SQL comments aside: they
        // name what a column's JSON holds, and are no part of the schema).
        let new = tempfile::tempdir().unwrap();
        let store = Store::open_with(new.path(), &[TABLES]).unwrap();
        let uncommented = |m: Vec<(String, String, Option<String>)>| {
            m.into_iter()
                .map(|(t, n, sql)| {
                    let sql = sql.map(|s| {
                        s.lines()
                            .map(|l| l.split("--").next().unwrap_or("").trim_end())
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                    (t, n, sql)
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(uncommented(master(&store.db().conn())), uncommented(before));
    }

    #[test]
    fn names_are_unique_and_lookups_work() {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path());
        r.insert(&rec("abcdef01", "web")).unwrap();
        r.insert(&rec("abcdff02", "db")).unwrap();
        let e = r.insert(&rec("ffff", "web")).unwrap_err();
        assert!(e.to_string().contains("already in use"), "{e}");
        assert_eq!(r.find("web").unwrap().id, "abcdef01");
        assert_eq!(r.find("/db").unwrap().id, "abcdff02");
        assert_eq!(r.find("abcde").unwrap().name, "web");
        assert!(r
            .find("abcd")
            .unwrap_err()
            .to_string()
            .contains("more than one"));
        assert!(matches!(r.find("nope"), Err(Error::NoSuchContainer(_))));
        let s = RunState {
            status: Status::Exited,
            exit_code: 3,
            ..RunState::default()
        };
        r.set_state("abcdef01", &s).unwrap();
        assert_eq!(r.get("abcdef01").unwrap().unwrap().state, s);
        // The stop mark is set on its own, and a state written from an
        // earlier read keeps it.
        r.set_stopped_by_user("abcdef01", true).unwrap();
        r.set_state("abcdef01", &s).unwrap();
        let got = r.get("abcdef01").unwrap().unwrap().state;
        assert!(got.stopped_by_user);
        assert_eq!(
            RunState {
                stopped_by_user: false,
                ..got
            },
            s
        );
        r.set_stopped_by_user("abcdef01", false).unwrap();
        assert_eq!(r.get("abcdef01").unwrap().unwrap().state, s);
        r.rename("abcdef01", "web2").unwrap();
        assert!(r.rename("abcdef01", "db").is_err());
        r.remove("abcdef01").unwrap();
        assert_eq!(r.all().unwrap().len(), 1);
    }

    #[test]
    fn volumes_in_use_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path());
        r.insert(&rec("c1", "one")).unwrap();
        let v = VolumeRecord {
            name: "data".into(),
            created: 1,
            labels: Default::default(),
            anonymous: false,
        };
        assert!(r.add_volume(&v).unwrap());
        assert!(!r.add_volume(&v).unwrap());
        r.use_volume("c1", "data").unwrap();
        assert!(r
            .remove_volume("data")
            .unwrap_err()
            .to_string()
            .contains("in use"));
        r.remove("c1").unwrap();
        r.remove_volume("data").unwrap();
        assert!(matches!(
            r.remove_volume("data"),
            Err(Error::NoSuchVolume(_))
        ));
    }

    #[test]
    fn an_earlier_containers_db_is_imported_once_then_removed() {
        let dir = tempfile::tempdir().unwrap();
        {
            // As an earlier berth left it: WAL mode, the rows still in the
            // kept -wal file, and a column this berth does not know. (The
            // store keeps its WAL as that berth did; its file is copied
            // under the old name below.)
            let old_root = tempfile::tempdir().unwrap();
            let store = Store::open_with(old_root.path(), &[TABLES]).unwrap();
            let old = Records::new(store.db());
            old.conn()
                .execute_batch("ALTER TABLE volumes ADD COLUMN driver TEXT")
                .unwrap();
            old.insert(&rec("c1", "web")).unwrap();
            old.insert(&rec("c2", "db")).unwrap();
            old.add_volume(&VolumeRecord {
                name: "data".into(),
                created: 1,
                labels: Default::default(),
                anonymous: false,
            })
            .unwrap();
            old.use_volume("c1", "data").unwrap();
            drop((old, store));
            for (from, to) in [
                ("store.db", "containers.db"),
                ("store.db-wal", "containers.db-wal"),
            ] {
                std::fs::copy(old_root.path().join(from), dir.path().join(to)).unwrap();
            }
        }
        assert!(dir.path().join("containers.db-wal").exists());
        let saved = tempfile::tempdir().unwrap();
        for f in ["containers.db", "containers.db-wal"] {
            std::fs::copy(dir.path().join(f), saved.path().join(f)).unwrap();
        }

        let r = open(dir.path());
        let names: Vec<String> = r.all().unwrap().into_iter().map(|c| c.name).collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert_eq!(r.volume_users("data").unwrap(), vec!["c1".to_string()]);
        for f in ["containers.db", "containers.db-wal", "containers.db-shm"] {
            assert!(!dir.path().join(f).exists(), "{f} is left");
        }

        // Removed since, then the old file is back (a process killed after
        // the import committed, before it removed the file): not imported
        // again, only removed.
        r.remove("c2").unwrap();
        for f in ["containers.db", "containers.db-wal"] {
            std::fs::copy(saved.path().join(f), dir.path().join(f)).unwrap();
        }
        let r = open(dir.path());
        assert!(
            r.get("c2").unwrap().is_none(),
            "a removed container came back"
        );
        assert!(r.get("c1").unwrap().is_some());
        assert!(!dir.path().join("containers.db").exists());
    }
}
