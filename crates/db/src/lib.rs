//! berth's database: one SQLite file, `store.db` under the store root,
//! shared by the image store (images, layers, holds) and the engine
//! (containers, volumes, events). Each owner registers its tables
//! ([`Tables`]); this crate opens the file for all of them at once.
//!
//! Why SQLite (WAL): the store is shared by many short-lived `berth`
//! processes and no daemon. SQLite gives multi-process transactions with
//! readers never blocked by a writer, survives kill -9 and power loss at
//! any point, and is what podman moved to for the same reasons. A
//! key-value store such as redb allows one process at a time.
//!
//! One file, so a command opens one database: each open costs a WAL index
//! rebuild when no other process has it open. What this crate holds:
//! - the handle ([`Db`]: one connection, locked per statement or
//!   transaction) and how it is opened: the busy budget, WAL (retried when
//!   processes open a new file together), `synchronous`, foreign keys, the
//!   kept WAL, the files' 0600 mode;
//! - the schemas of the tables' owners and its own `meta` table;
//! - migrations: the once-only import of what an earlier berth kept in a
//!   database file of its own (`images.db`, `containers.db`), under a
//!   lock file, recorded in `meta`.
//!
//! Rows and the SQL that reads and writes them stay with their owners
//! (`crates/image/src/store.rs`, `crates/engine/src/records.rs`), which
//! use [`rusqlite`] as re-exported here, so that one SQLite is linked.

use berth_sys::fs as sfs;
use rusqlite::{params, Connection, OptionalExtension};
use std::os::fd::AsFd;
use std::path::Path;

pub use rusqlite;

/// The database file under the store root.
pub const DB_FILE: &str = "store.db";

/// How long an open or a commit waits for other processes' locks before
/// giving up: long enough for any pull or prune to commit.
pub const BUSY_BUDGET: std::time::Duration = std::time::Duration::from_secs(60);

/// Tables a crate keeps in the database ([`Db::open`]).
pub struct Tables<'a> {
    /// `CREATE ... IF NOT EXISTS` statements.
    pub schema: &'a str,
    /// The database of an earlier berth that held these tables, under the
    /// store root: imported once (then removed) when found; "" for none.
    pub legacy_file: &'a str,
    /// The tables to import, parents before children (foreign keys).
    pub tables: &'a [&'a str],
}

/// The database's own table: what was done once (`imported images.db`).
const META: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,             -- e.g. 'imported images.db'
    value TEXT NOT NULL
);
";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQLite refused or failed; `op` names the step.
    #[error("{op}: {cause}")]
    Sqlite {
        op: String,
        #[source]
        cause: rusqlite::Error,
    },
    #[error("{op}: {cause}")]
    Io {
        op: String,
        #[source]
        cause: std::io::Error,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

fn sql(op: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> Error {
    let op = op.into();
    move |cause| Error::Sqlite { op, cause }
}

fn io(op: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let op = op.into();
    move |cause| Error::Io { op, cause }
}

/// How many prepared statements a connection keeps for reuse
/// ([`Cached`]): more than the distinct statements any one command runs.
const STATEMENT_CACHE: usize = 96;

/// `execute` and `query_row` through the connection's cache of prepared
/// statements. rusqlite's own compile the SQL at every call: parsing and
/// resolving a statement against the schema is most of what a small
/// query costs, and commands that make or remove many containers in one
/// process (`kube play`, `pod rm`) run the same statements again and again.
/// Only for SQL that is a constant: each distinct text takes a slot. One
/// statement only: unlike `Connection::execute`, a cached statement does
/// not refuse a second one after it (it would be ignored).
pub trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        debug_assert!(one_statement(sql), "one statement: {sql}");
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        debug_assert!(one_statement(sql), "one statement: {sql}");
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

/// No `;` but at the end (berth's SQL has none inside its literals).
fn one_statement(sql: &str) -> bool {
    sql.trim_end().trim_end_matches(';').find(';').is_none()
}

/// The open database: one connection, shared by the image store and the
/// engine's records (clones are the same connection). Locked per
/// statement or transaction; never held across a call into another user.
#[derive(Clone)]
pub struct Db(std::sync::Arc<std::sync::Mutex<Connection>>);

impl Db {
    /// Opens (creating) `root`/[`DB_FILE`] with `tables`, whose owners
    /// list them in the order their earlier files are to be imported.
    /// `root` must exist (the store makes it, private). Commits wait for
    /// the disk (`synchronous=FULL`) until [`Db::relax_durability`].
    pub fn open(root: &Path, tables: &[&Tables<'_>]) -> Result<Db> {
        let schemas: Vec<&str> = std::iter::once(META)
            .chain(tables.iter().map(|t| t.schema))
            .collect();
        let db = open_file(&root.join(DB_FILE), "FULL", &schemas)?;
        // SQLite makes its files 0644 (the WAL and shared-memory files
        // take the database's mode); they hold the containers' configs
        // (their -e secrets).
        for f in [DB_FILE, "store.db-wal", "store.db-shm"] {
            let p = root.join(f);
            match private(&p, 0o600) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("make {} private (chmod)", p.display()))(e));
                }
                _ => {}
            }
        }
        for t in tables {
            import_legacy(&db, root, t)?;
        }
        Ok(Db(std::sync::Arc::new(std::sync::Mutex::new(db))))
    }

    /// The connection, locked until the guard is dropped. (A panic while
    /// it was held leaves no half-done transaction: rusqlite's
    /// `Transaction` rolls back on drop.)
    pub fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Commits without waiting for the disk (WAL, `synchronous=NORMAL`):
    /// still consistent after a crash, but a power cut may lose the last
    /// commits. For the engine's records and image holds, which `system
    /// prune` reconciles; pulls keep full durability.
    pub fn relax_durability(&self) -> Result<()> {
        self.conn()
            .pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql("set synchronous"))
    }
}

/// Opens the SQLite database at `path`: the busy budget, WAL,
/// `synchronous`, foreign keys, the schemas and a kept WAL. An error
/// names the step that failed.
fn open_file(path: &Path, synchronous: &str, schemas: &[&str]) -> Result<Connection> {
    let db = Connection::open(path).map_err(sql(format!("open {}", path.display())))?;
    db.busy_timeout(BUSY_BUDGET)
        .map_err(sql("set the busy timeout"))?;
    enable_wal(&db, BUSY_BUDGET).map_err(sql("enable WAL"))?;
    db.pragma_update(None, "synchronous", synchronous)
        .map_err(sql("set synchronous"))?;
    db.pragma_update(None, "foreign_keys", "ON")
        .map_err(sql("enable foreign keys"))?;
    ensure_schemas(&db, schemas)?;
    persist_wal(&db);
    db.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(db)
}

/// A digest of a set of schemas (FNV-1a over their texts, folded into
/// SQLite's positive 31-bit `user_version`; never 0, which a new file has).
fn schemas_mark(schemas: &[&str]) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for s in schemas {
        for b in s.bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    let v = ((h ^ (h >> 32)) & 0x7fff_ffff) as i32;
    v.max(1)
}

/// Runs the `CREATE ... IF NOT EXISTS` schemas unless this very set ran on
/// the file already: the file's `user_version` holds [`schemas_mark`] of the
/// last set that ran. (Parsing them is most of SQLite's share of a short
/// command.) A set that differs (another berth version, another set of
/// owners) runs again, harmlessly, and leaves its own mark.
fn ensure_schemas(db: &Connection, schemas: &[&str]) -> Result<()> {
    let mark = schemas_mark(schemas);
    let seen: i32 = db
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(sql("read the schema mark (user_version)"))?;
    if seen == mark {
        return Ok(());
    }
    for schema in schemas {
        db.execute_batch(schema).map_err(sql("create the schema"))?;
    }
    db.pragma_update(None, "user_version", mark)
        .map_err(sql("record the schema mark (user_version)"))
}

/// Sets `path`'s permission bits to `mode` unless they are already (a
/// stat, and a chmod only the first time).
pub fn private(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if std::fs::metadata(path)?.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Imports the tables `t` from the database an earlier berth kept them in
/// (`t.legacy_file` under `root`), once, then removes that file.
///
/// The import and a row in `meta` saying it was done are one transaction,
/// and the old file is removed only after it commits; an import cut short
/// is done again, one that committed is never repeated (which would bring
/// back rows removed since). A lock file (`locks/import`) serializes
/// processes that find the old file together. Only columns both sides
/// have are copied, so an older schema imports too.
fn import_legacy(db: &Connection, root: &Path, t: &Tables<'_>) -> Result<()> {
    // Tables no earlier berth kept elsewhere.
    if t.legacy_file.is_empty() {
        return Ok(());
    }
    let legacy = root.join(t.legacy_file);
    if !legacy.exists() {
        return Ok(());
    }
    let locks = root.join("locks");
    std::fs::create_dir_all(&locks).map_err(io(format!("create {}", locks.display())))?;
    let lock_path = locks.join("import");
    let lock = sfs::open(&lock_path, libc::O_RDWR | libc::O_CREAT, 0o600)
        .map_err(io(format!("open lock {}", lock_path.display())))?;
    sfs::flock(lock.as_fd(), true, false).map_err(io(format!("lock {}", lock_path.display())))?;
    let key = format!("imported {}", t.legacy_file);
    let done = db
        .query_row(
            "SELECT 1 FROM meta WHERE key = ?1",
            params![key],
            |_| Ok(()),
        )
        .optional()
        .map_err(sql("read the store's metadata"))?
        .is_some();
    let what = || format!("import {} into {DB_FILE}", legacy.display());
    if !done && legacy.exists() {
        db.execute(
            "ATTACH DATABASE ?1 AS legacy",
            params![legacy.to_string_lossy()],
        )
        .map_err(sql(what()))?;
        let copied = copy_legacy(db, t, &key).map_err(sql(what()));
        if copied.is_err() {
            let _ = db.execute_batch("ROLLBACK");
        }
        let _ = db.execute_batch("DETACH DATABASE legacy");
        copied?;
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = root.join(format!("{}{suffix}", t.legacy_file));
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("remove {} (imported)", p.display()))(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The copy of [`import_legacy`], in one transaction with its `meta` row.
fn copy_legacy(db: &Connection, t: &Tables<'_>, key: &str) -> rusqlite::Result<()> {
    let columns = |schema: &str, table: &str| -> rusqlite::Result<Vec<String>> {
        let mut st = db.prepare("SELECT name FROM pragma_table_info(?1, ?2)")?;
        let rows = st.query_map(params![table, schema], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    db.execute_batch("BEGIN IMMEDIATE")?;
    for table in t.tables {
        let theirs = columns("legacy", table)?;
        let both: Vec<String> = columns("main", table)?
            .into_iter()
            .filter(|c| theirs.contains(c))
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        if both.is_empty() {
            // The earlier berth had no such table.
            continue;
        }
        let list = both.join(", ");
        db.execute(
            &format!(
                "INSERT OR IGNORE INTO main.{table} ({list}) SELECT {list} FROM legacy.{table}"
            ),
            [],
        )?;
    }
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)",
        params![key, env!("CARGO_PKG_VERSION")],
    )?;
    db.execute_batch("COMMIT")
}

/// Puts the database in WAL mode, which is a property of the file: once
/// one process has done it, the others only read it back.
///
/// The conversion needs the file to itself, and SQLite answers "database is
/// locked" at once instead of calling the busy handler for it, so processes
/// that open a new database together (parallel `berth run`s on a fresh
/// store) would fail. This retries, backing off, until `budget` is spent.
fn enable_wal(db: &Connection, budget: std::time::Duration) -> rusqlite::Result<()> {
    let start = std::time::Instant::now();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        let r = db
            .pragma_query_value(None, "journal_mode", |r| r.get::<_, String>(0))
            .and_then(|mode| {
                if mode.eq_ignore_ascii_case("wal") {
                    return Ok(mode);
                }
                db.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            });
        match r {
            Ok(mode) if mode.eq_ignore_ascii_case("wal") => return Ok(()),
            // Another process held a lock while we asked: SQLite keeps the
            // old mode and says so instead of failing.
            Ok(_) => {}
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) => {}
            Err(e) => return Err(e),
        }
        if start.elapsed() >= budget {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                Some(format!(
                    "other processes kept the database busy for {}s",
                    budget.as_secs()
                )),
            ));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

/// Keeps the `-wal` and `-shm` files when the last connection closes, so
/// every short-lived `berth` process does not create and delete two files
/// (up to a millisecond each on ext4). Harmless if it fails.
fn persist_wal(db: &Connection) {
    // The kept file is truncated after each checkpoint: a long one would be
    // read through by every process that opens the database.
    let _ = db.pragma_update(None, "journal_size_limit", 65536);
    // No checkpoint (and its fsync) at every close of a short-lived
    // process: commits checkpoint once the WAL holds 100 pages, so the WAL
    // stays small for the next process to read.
    let _ = db.pragma_update(None, "wal_autocheckpoint", 100);
    let _ = db.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE,
        true,
    );
    let mut on: std::ffi::c_int = 1;
    // SAFETY: the handle is this open connection's; SQLITE_FCNTL_PERSIST_WAL
    // reads and writes one int through the pointer, which outlives the call.
    unsafe {
        rusqlite::ffi::sqlite3_file_control(
            db.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_PERSIST_WAL,
            (&mut on as *mut std::ffi::c_int).cast(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const THINGS: Tables<'static> = Tables {
        schema: "CREATE TABLE IF NOT EXISTS things (name TEXT PRIMARY KEY, n INTEGER);
                 CREATE TABLE IF NOT EXISTS parts (
                     thing TEXT NOT NULL REFERENCES things(name) ON DELETE CASCADE,
                     part TEXT NOT NULL)",
        legacy_file: "things.db",
        tables: &["things", "parts"],
    };

    #[test]
    fn cached_statements_run_as_uncached_ones_do_inside_and_outside_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), &[&THINGS]).unwrap();
        let mut conn = db.conn();
        for i in 0..3 {
            let n = conn
                .exec(
                    "INSERT INTO things (name, n) VALUES (?1, ?2)",
                    params![format!("t{i}"), i],
                )
                .unwrap();
            assert_eq!(n, 1);
        }
        let tx = conn.transaction().unwrap();
        tx.exec("UPDATE things SET n = n + 10 WHERE name = ?1", ["t1"])
            .unwrap();
        let n: i64 = tx
            .row("SELECT n FROM things WHERE name = ?1", ["t1"], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 11);
        drop(tx); // rolled back
        let n: i64 = conn
            .row("SELECT n FROM things WHERE name = ?1", ["t1"], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        // The errors are rusqlite's: no row, a constraint.
        assert!(matches!(
            conn.row("SELECT n FROM things WHERE name = ?1", ["none"], |r| r
                .get::<_, i64>(0)),
            Err(rusqlite::Error::QueryReturnedNoRows)
        ));
        assert!(conn
            .exec("INSERT INTO things (name, n) VALUES (?1, 0)", ["t0"])
            .is_err());
        let left: i64 = conn
            .row("SELECT count(*) FROM things", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 3);
    }

    fn count(db: &Db, table: &str) -> i64 {
        db.conn()
            .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn schemas_run_once_per_set_and_again_when_the_set_changes() {
        let tmp = tempfile::tempdir().unwrap();
        let mark = |db: &Db| -> i32 {
            db.conn()
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .unwrap()
        };
        let has_parts = |db: &Db| -> i64 {
            db.conn()
                .query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'parts'",
                    [],
                    |r| r.get(0),
                )
                .unwrap()
        };
        let db = Db::open(tmp.path(), &[&THINGS]).unwrap();
        assert_eq!(mark(&db), schemas_mark(&[META, THINGS.schema]));
        // The mark says the schemas ran: a reopen does not parse them again
        // (a table dropped behind its back stays dropped).
        db.conn().execute_batch("DROP TABLE parts").unwrap();
        drop(db);
        let db = Db::open(tmp.path(), &[&THINGS]).unwrap();
        let parts = has_parts(&db);
        assert_eq!(parts, 0);
        drop(db);
        // Another set (a newer berth's tables) runs, and leaves its mark.
        const MORE: Tables<'static> = Tables {
            schema: "CREATE TABLE IF NOT EXISTS more (k TEXT PRIMARY KEY)",
            legacy_file: "",
            tables: &["more"],
        };
        let db = Db::open(tmp.path(), &[&THINGS, &MORE]).unwrap();
        db.conn()
            .execute("INSERT INTO more VALUES ('a')", [])
            .unwrap();
        let parts = has_parts(&db);
        assert_eq!(parts, 1, "the schemas ran again: the table is back");
        assert_eq!(mark(&db), schemas_mark(&[META, THINGS.schema, MORE.schema]));
        assert_ne!(schemas_mark(&[META]), schemas_mark(&[META, ""]));
    }

    #[test]
    fn opened_together_on_a_new_root_all_open_in_wal_mode() {
        // Regression (from the image store): parallel `berth run`s on a
        // fresh store failed with "enable WAL: database is locked".
        for round in 0..10 {
            let tmp = tempfile::tempdir().unwrap();
            let go = std::sync::Barrier::new(12);
            std::thread::scope(|s| {
                for i in 0..12 {
                    let (tmp, go) = (&tmp, &go);
                    s.spawn(move || {
                        go.wait();
                        let db = Db::open(tmp.path(), &[&THINGS]).unwrap();
                        db.conn()
                            .execute(
                                "INSERT INTO things VALUES (?1, ?2)",
                                params![format!("{round}-{i}"), i],
                            )
                            .unwrap();
                    });
                }
            });
            let db = Db::open(tmp.path(), &[&THINGS]).unwrap();
            assert_eq!(count(&db, "things"), 12);
            let mode: String = db
                .conn()
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }

    #[test]
    fn files_are_private_and_foreign_keys_on() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let db = Db::open(tmp.path(), &[&THINGS]).unwrap();
        db.conn()
            .execute_batch(
                "INSERT INTO things VALUES ('a', 1); INSERT INTO parts VALUES ('a', 'x')",
            )
            .unwrap();
        // Kept after the last connection closes (persist_wal).
        drop(db);
        for f in [DB_FILE, "store.db-wal", "store.db-shm"] {
            let mode = std::fs::metadata(tmp.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let db = Db::open(tmp.path(), &[&THINGS]).unwrap();
        let e = db
            .conn()
            .execute("INSERT INTO parts VALUES ('none', 'y')", [])
            .unwrap_err();
        assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        db.conn().execute("DELETE FROM things", []).unwrap();
        assert_eq!(count(&db, "parts"), 0, "ON DELETE CASCADE");
    }

    #[test]
    fn an_earlier_file_is_imported_once_with_the_columns_both_have() {
        let dir = tempfile::tempdir().unwrap();
        let make_legacy = || {
            let old = Connection::open(dir.path().join("things.db")).unwrap();
            old.execute_batch(
                "CREATE TABLE things (name TEXT PRIMARY KEY, n INTEGER, gone TEXT);
                 INSERT INTO things VALUES ('a', 1, 'x'), ('b', 2, 'y');",
            )
            .unwrap();
            // No `parts` table: an older schema.
        };
        make_legacy();
        let db = Db::open(dir.path(), &[&THINGS]).unwrap();
        assert_eq!(count(&db, "things"), 2);
        assert!(!dir.path().join("things.db").exists());
        db.conn()
            .execute("DELETE FROM things WHERE name = 'a'", [])
            .unwrap();
        drop(db);
        // Back again (a process killed after the import committed): only
        // removed, never imported again.
        make_legacy();
        let db = Db::open(dir.path(), &[&THINGS]).unwrap();
        assert_eq!(count(&db, "things"), 1, "a removed row came back");
        assert!(!dir.path().join("things.db").exists());
    }

    #[test]
    fn a_damaged_earlier_file_is_an_error_naming_it_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("things.db"), vec![0x5a; 8192]).unwrap();
        let e = Db::open(dir.path(), &[&THINGS]).err().unwrap().to_string();
        assert!(e.contains("things.db") && e.contains("import"), "{e}");
        assert!(dir.path().join("things.db").exists(), "kept for the user");
    }

    #[test]
    fn a_busy_database_waits_then_commits() {
        let tmp = tempfile::tempdir().unwrap();
        let a = Db::open(tmp.path(), &[&THINGS]).unwrap();
        let b = Db::open(tmp.path(), &[&THINGS]).unwrap();
        let mut held = a.conn();
        let tx = held
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        tx.execute("INSERT INTO things VALUES ('a', 1)", [])
            .unwrap();
        std::thread::scope(|s| {
            let w = s.spawn(|| {
                b.conn()
                    .execute("INSERT INTO things VALUES ('b', 2)", [])
                    .unwrap()
            });
            std::thread::sleep(std::time::Duration::from_millis(200));
            tx.commit().unwrap();
            assert_eq!(w.join().unwrap(), 1);
        });
        drop(held);
        assert_eq!(count(&b, "things"), 2);
    }
}
