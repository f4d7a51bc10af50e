//! The image store: verified blobs by digest, one unpacked directory per
//! layer chain ID (an overlay lower layer), and the metadata in the
//! store's SQLite database (opened through `berth-db`, which explains why
//! SQLite, with the engine's tables when it opens the store).
//!
//! Layout under the root (`/var/lib/berth` for root):
//! ```text
//! blobs/sha256/<hex>     manifests, configs and compressed layers, verified
//! layers/<chain hex>/    unpacked layers (overlay lowerdirs)
//! tmp/                   downloads and unpacks in progress
//! locks/                 flock files: `store` (shared by pulls, exclusive
//!                        for GC) and one per layer being unpacked
//! store.db               SQLite (berth-db): images, tags, layers, holds,
//!                        and the tables of whoever opens it with its own
//!                        (`Store::open_with`: the engine's containers)
//! ```
//! Everything becomes visible by rename after it is complete and synced,
//! and the database row last, so a kill -9 at any moment leaves either
//! nothing or a whole object; leftovers in tmp/ are removed by the next
//! holder of the same lock or by GC.

use crate::digest::Digest;
use crate::error::{Context, Error, Result};
use berth_db::rusqlite::{self, params, Connection, OptionalExtension};
use berth_db::Cached;
pub use berth_db::{private, Db, Tables, DB_FILE};
use berth_sys::fs as sfs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

pub struct Store {
    root: PathBuf,
    /// One connection; download threads record layers through it, and the
    /// engine its containers (`Store::db`).
    db: Db,
}

/// The image store's own tables.
const IMAGE_TABLES: Tables<'static> = Tables {
    schema: SCHEMA,
    legacy_file: "images.db",
    tables: &["images", "layers", "names", "image_layers", "holds"],
};

/// A lock held until dropped (flock on a file under locks/).
pub struct Lock(#[allow(dead_code)] OwnedFd);

/// A pull in progress, for GC (see [`Store::mark_pull`]).
pub struct PullMark {
    path: PathBuf,
    _file: std::fs::File,
}

impl Drop for PullMark {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A stored layer, as recorded.
pub struct LayerRecord<'a> {
    pub chain: &'a Digest,
    pub diff_id: &'a Digest,
    /// The blob it came from (compressed as `media_type` says).
    pub blob: &'a Digest,
    pub media_type: &'a str,
    pub compressed_size: u64,
    /// File data unpacked, bytes.
    pub size: u64,
    /// The uncompressed tar, bytes.
    pub diff_size: u64,
}

/// An image as listed.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ImageRow {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub names: Vec<String>,
    pub created: Option<String>,
    /// Unpacked size of all layers, bytes.
    pub size: u64,
    pub pulled: i64,
    pub os: String,
    pub architecture: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,              -- config digest
    manifest_digest TEXT NOT NULL,
    manifest_type TEXT NOT NULL,
    created TEXT,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    pulled INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS names (
    name TEXT PRIMARY KEY,            -- registry/repository:tag or @digest
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS layers (
    chain_id TEXT PRIMARY KEY,
    diff_id TEXT NOT NULL,
    blob TEXT NOT NULL,
    media_type TEXT NOT NULL,
    compressed_size INTEGER NOT NULL,
    size INTEGER NOT NULL,            -- file data unpacked
    diff_size INTEGER NOT NULL        -- the uncompressed tar
);
CREATE TABLE IF NOT EXISTS image_layers (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    idx INTEGER NOT NULL,
    chain_id TEXT NOT NULL REFERENCES layers(chain_id),
    PRIMARY KEY (image_id, idx)
);
CREATE INDEX IF NOT EXISTS image_layers_chain ON image_layers(chain_id);
CREATE TABLE IF NOT EXISTS holds (
    holder TEXT PRIMARY KEY,          -- a container using the image
    image_id TEXT NOT NULL REFERENCES images(id)
);
";

/// What [`Store::gc`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Layers (their unpacked directories).
    pub layers: usize,
    /// Blobs (layer archives, configs, manifests).
    pub blobs: usize,
    /// The bytes that went: the layers' file data as unpacked (what
    /// Docker counts, the layers' diff sizes) and the blobs' lengths.
    /// Directories a killed pull left without their row, init layers and
    /// tmp/ are removed but not counted.
    pub bytes: u64,
}

/// What names a layer's init directory (`Store::layer_init_dir`).
const INIT_SUFFIX: &str = ".init";

/// The store's database, for the tables given to [`Store::open_with`].
impl From<&Store> for Db {
    fn from(s: &Store) -> Db {
        s.db()
    }
}

impl Store {
    /// Opens (creating) the store at `root`.
    pub fn open(root: &Path) -> Result<Store> {
        Store::open_with(root, &[])
    }

    /// Opens (creating) the store at `root`, with `extra` tables in its
    /// database (see [`Store::db`]). Tables an earlier berth kept in a
    /// database of their own are imported into it first.
    pub fn open_with(root: &Path, extra: &[Tables<'_>]) -> Result<Store> {
        // Layers hold setuid binaries and images' secrets, the database
        // the containers' configs (their -e secrets): the store is its
        // owner's alone (as containers/storage does), and one an older
        // berth left open to others is closed here.
        if !root.exists() {
            std::fs::create_dir_all(root)
                .with_ctx(|| format!("create the image store {}", root.display()))?;
        }
        private(root, 0o700)
            .with_ctx(|| format!("make the image store {} private (chmod)", root.display()))?;
        for d in ["blobs/sha256", "layers", "tmp", "locks"] {
            std::fs::create_dir_all(root.join(d)).with_ctx(|| {
                format!(
                    "create the image store directory {}",
                    root.join(d).display()
                )
            })?;
        }
        let tables: Vec<&Tables<'_>> = std::iter::once(&IMAGE_TABLES).chain(extra).collect();
        let db = Db::open(root, &tables)?;
        Ok(Store {
            root: root.to_path_buf(),
            db,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.conn()
    }

    /// The database connection, for the tables given to
    /// [`Store::open_with`]. Locked per statement or transaction; never
    /// held across a call into the store.
    pub fn db(&self) -> Db {
        self.db.clone()
    }

    /// Commits without waiting for the disk (WAL, `synchronous=NORMAL`):
    /// still consistent after a crash, but a power cut may lose the last
    /// commits. For the engine's image holds, which `system prune`
    /// reconciles; pulls keep full durability.
    pub fn relax_durability(&self) -> Result<()> {
        Ok(self.db.relax_durability()?)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blob_path(&self, d: &Digest) -> PathBuf {
        self.blob_dir().join(d.hex())
    }

    /// Where the blobs are, each named by its digest's hex.
    fn blob_dir(&self) -> PathBuf {
        self.root.join("blobs/sha256")
    }

    pub fn layer_dir(&self, chain: &Digest) -> PathBuf {
        self.root.join("layers").join(chain.hex())
    }

    /// A directory kept beside layer `chain` for the containers of images
    /// whose top layer it is (the engine's init layer: the mount points
    /// their runtime needs, made once), removed with the layer by GC.
    pub fn layer_init_dir(&self, chain: &Digest) -> PathBuf {
        self.root
            .join("layers")
            .join(format!("{}{INIT_SUFFIX}", chain.hex()))
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    fn lock_file(&self, name: &str, exclusive: bool) -> Result<Lock> {
        let p = self.root.join("locks").join(name);
        let fd = sfs::open(&p, libc::O_RDWR | libc::O_CREAT, 0o600)
            .with_ctx(|| format!("open lock {}", p.display()))?;
        sfs::flock(fd.as_fd(), exclusive, false).with_ctx(|| format!("lock {}", p.display()))?;
        Ok(Lock(fd))
    }

    /// Held (shared) by a pull while it records its image (a moment), by
    /// a load, and by the engine while it makes an init layer in tmp/;
    /// taken exclusive by GC, so GC never removes what is being recorded
    /// or made in tmp/. (A pull's downloads are marked instead:
    /// [`Store::mark_pull`].)
    pub fn pull_lock(&self) -> Result<Lock> {
        self.lock_file("store", false)
    }

    /// Removes what killed pulls and loads left in tmp/: a layer's files
    /// whose lock no one holds, a spooled archive whose process is gone.
    /// (GC removes everything there, under the exclusive store lock.)
    pub fn clean_tmp(&self) {
        let Ok(dir) = std::fs::read_dir(self.tmp_dir()) else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Held while the files are removed, so that no pull of the
            // layer starts meanwhile.
            let mut _held = None;
            let stale = if let Some(hex) = name
                .strip_prefix("layer-")
                .or_else(|| name.strip_prefix("blob-"))
            {
                let lock = self.root.join("locks").join(format!("layer-{hex}"));
                _held = hex
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit())
                    .then(|| sfs::open(&lock, libc::O_RDWR | libc::O_CREAT, 0o600).ok())
                    .flatten()
                    .filter(|fd| sfs::flock(fd.as_fd(), true, true).unwrap_or(false));
                _held.is_some()
            } else if let Some(pid) = name
                .strip_prefix("load-")
                .and_then(|n| n.strip_suffix(".tar"))
                .and_then(|n| n.parse::<i32>().ok())
                // A commit's or build step's blob and layer tree
                // (`commit-{blob,layer}-PID-N`, layer::tempfile_in).
                .or_else(|| {
                    let rest = name
                        .strip_prefix("commit-blob-")
                        .or_else(|| name.strip_prefix("commit-layer-"))?;
                    rest.split_once('-')?.0.parse::<i32>().ok()
                })
            {
                // SAFETY: signal 0 only checks that the process exists.
                pid > 0
                    && unsafe { libc::kill(pid, 0) } == -1
                    && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
            } else {
                false
            };
            if stale {
                let _ = remove_tree(&e.path());
            }
        }
    }

    /// The bytes in tmp/ (downloads and unpacks in progress, or left).
    pub fn tmp_size(&self) -> u64 {
        fn walk(p: &Path) -> u64 {
            let Ok(m) = std::fs::symlink_metadata(p) else {
                return 0;
            };
            if !m.is_dir() {
                return std::os::unix::fs::MetadataExt::blocks(&m) * 512;
            }
            std::fs::read_dir(p).map_or(0, |d| d.flatten().map(|e| walk(&e.path())).sum())
        }
        walk(&self.tmp_dir())
    }

    pub fn gc_lock(&self) -> Result<Lock> {
        self.lock_file("store", true)
    }

    /// Serializes work on one layer across processes.
    pub fn layer_lock(&self, chain: &Digest) -> Result<Lock> {
        self.lock_file(&format!("layer-{}", chain.hex()), true)
    }

    /// The layer's lock if no one holds it.
    fn try_layer_lock(&self, chain: &Digest) -> Option<Lock> {
        let p = self
            .root
            .join("locks")
            .join(format!("layer-{}", chain.hex()));
        let fd = sfs::open(&p, libc::O_RDWR | libc::O_CREAT, 0o600).ok()?;
        sfs::flock(fd.as_fd(), true, true)
            .ok()
            .filter(|held| *held)
            .map(|_| Lock(fd))
    }

    /// Marks a pull in progress: the layers (chain IDs) and blobs it will
    /// reference are spared by [`Store::gc`] while the mark lives, so that
    /// a pull holds no lock that `rmi` or a prune waits for while it
    /// downloads. (A file under locks/, flocked; one whose lock is free is
    /// a killed pull's, and removed by GC.)
    pub fn mark_pull(&self, digests: &[&Digest]) -> Result<PullMark> {
        use std::io::Write;
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = format!(
            "{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let locks = self.root.join("locks");
        let tmp = locks.join(format!("new-pull-{id}"));
        let path = locks.join(format!("pull-{id}"));
        let mut text = String::new();
        for d in digests {
            text.push_str(&d.to_string());
            text.push('\n');
        }
        let fd = sfs::open(
            &tmp,
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o600,
        )
        .with_ctx(|| format!("create {}", tmp.display()))?;
        // Locked before it is named, so GC never takes it for stale.
        sfs::flock(fd.as_fd(), true, false).with_ctx(|| format!("lock {}", tmp.display()))?;
        let mut f = std::fs::File::from(fd);
        f.write_all(text.as_bytes())
            .with_ctx(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_ctx(|| format!("name {}", path.display()))?;
        Ok(PullMark { path, _file: f })
    }

    /// What the pulls in progress will reference (see [`Store::mark_pull`]);
    /// removes the marks of killed ones.
    fn marked(&self) -> std::collections::HashSet<String> {
        let mut set = std::collections::HashSet::new();
        let Ok(dir) = std::fs::read_dir(self.root.join("locks")) else {
            return set;
        };
        for e in dir.flatten() {
            if !e.file_name().to_string_lossy().starts_with("pull-") {
                continue;
            }
            let Ok(fd) = sfs::open(&e.path(), libc::O_RDONLY | libc::O_CLOEXEC, 0) else {
                continue;
            };
            if sfs::flock(fd.as_fd(), false, true).unwrap_or(false) {
                let _ = std::fs::remove_file(e.path()); // its pull is gone
                continue;
            }
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut text);
            set.extend(text.lines().map(str::to_string));
        }
        set
    }

    pub fn has_blob(&self, d: &Digest) -> bool {
        self.blob_path(d).exists()
    }

    /// Stores a small blob (manifest, config) whose digest was checked.
    pub fn put_blob(&self, d: &Digest, data: &[u8]) -> Result<()> {
        self.put_blobs(&[(d, data)])
    }

    /// [`Store::put_blob`] of several blobs, the blob directory synced
    /// once for all (an image's config and manifest).
    pub fn put_blobs(&self, blobs: &[(&Digest, &[u8])]) -> Result<()> {
        let mut names = Vec::with_capacity(blobs.len());
        for (d, data) in blobs {
            let got = Digest::of(data);
            if got != **d {
                return Err(Error::DigestMismatch {
                    what: "blob".into(),
                    want: d.to_string(),
                    got: got.to_string(),
                });
            }
            names.push(d.hex());
        }
        let files: Vec<(&std::ffi::OsStr, &[u8])> = names
            .iter()
            .zip(blobs)
            .map(|(n, (_, data))| (n.as_ref(), *data))
            .collect();
        sfs::write_atomic_in(&self.blob_dir(), &files, 0o644).with_ctx(|| {
            let ds: Vec<String> = blobs.iter().map(|(d, _)| d.to_string()).collect();
            format!("write blob {}", ds.join(", "))
        })
    }

    pub fn read_blob(&self, d: &Digest, cap: u64) -> Result<Vec<u8>> {
        let p = self.blob_path(d);
        let f = std::fs::File::open(&p).with_ctx(|| format!("open blob {d}"))?;
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(f, cap + 1), &mut v)
            .with_ctx(|| format!("read blob {d}"))?;
        if v.len() as u64 > cap {
            return Err(Error::Protocol {
                what: format!("blob {d}"),
                msg: "larger than expected".into(),
            });
        }
        if Digest::of(&v) != *d {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {d}"),
                want: d.to_string(),
                got: Digest::of(&v).to_string(),
            });
        }
        Ok(v)
    }

    /// True when the layer is unpacked and recorded.
    pub fn has_layer(&self, chain: &Digest) -> Result<bool> {
        let row: Option<String> = self
            .conn()
            .row(
                "SELECT chain_id FROM layers WHERE chain_id = ?1",
                params![chain.to_string()],
                |r| r.get(0),
            )
            .optional()
            .ctx("look up a layer")?;
        Ok(row.is_some() && self.layer_dir(chain).is_dir())
    }

    /// Records a layer whose directory is in place.
    pub fn add_layer(&self, l: &LayerRecord<'_>) -> Result<()> {
        self.conn()
            .exec(
                "INSERT OR REPLACE INTO layers (chain_id, diff_id, blob, media_type, compressed_size, size, diff_size)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    l.chain.to_string(),
                    l.diff_id.to_string(),
                    l.blob.to_string(),
                    l.media_type,
                    l.compressed_size as i64,
                    l.size as i64,
                    l.diff_size as i64
                ],
            )
            .ctx("record a layer")?;
        Ok(())
    }

    /// Records an image, its layers and its names in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub fn add_image(
        &mut self,
        id: &Digest,
        manifest: &Digest,
        manifest_type: &str,
        created: Option<&str>,
        os: &str,
        arch: &str,
        chains: &[Digest],
        names: &[String],
    ) -> Result<()> {
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("begin")?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        tx.exec(
            "INSERT INTO images (id, manifest_digest, manifest_type, created, os, architecture, pulled)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest,
               manifest_type = excluded.manifest_type, pulled = excluded.pulled",
            params![id.to_string(), manifest.to_string(), manifest_type, created, os, arch, now],
        )
        .ctx("record the image")?;
        tx.exec(
            "DELETE FROM image_layers WHERE image_id = ?1",
            params![id.to_string()],
        )
        .ctx("record the image's layers")?;
        for (i, c) in chains.iter().enumerate() {
            tx.exec(
                "INSERT INTO image_layers (image_id, idx, chain_id) VALUES (?1, ?2, ?3)",
                params![id.to_string(), i as i64, c.to_string()],
            )
            .ctx("record the image's layers")?;
        }
        for n in names {
            tx.exec(
                "INSERT INTO names (name, image_id) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                params![n, id.to_string()],
            )
            .ctx("record the image's name")?;
        }
        // Images left without any name (a tag moved away) are dangling:
        // kept, as Docker keeps them, until `image prune`.
        tx.commit().ctx("commit the image")
    }

    /// All images, newest first.
    pub fn images(&self) -> Result<Vec<ImageRow>> {
        let conn = self.conn();
        let mut st = conn.prepare_cached(
                "SELECT i.id, i.manifest_digest, i.created, i.pulled, i.os, i.architecture,
                    (SELECT COALESCE(SUM(l.size), 0) FROM image_layers il JOIN layers l ON l.chain_id = il.chain_id WHERE il.image_id = i.id),
                    (SELECT group_concat(name, char(10)) FROM (SELECT name FROM names WHERE image_id = i.id ORDER BY name))
                 FROM images i ORDER BY i.pulled DESC, i.id",
            )
            .ctx("list images")?;
        let rows = st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<String>>(7)?,
                ))
            })
            .ctx("list images")?;
        let mut out = Vec::new();
        for row in rows {
            let (id, md, created, pulled, os, arch, size, names) = row.ctx("list images")?;
            out.push(ImageRow {
                id: Digest::parse(&id)?,
                manifest_digest: Digest::parse(&md)?,
                names: names
                    .map(|n| n.split('\n').map(str::to_string).collect())
                    .unwrap_or_default(),
                created,
                size: size.max(0) as u64,
                pulled,
                os,
                architecture: arch,
            });
        }
        Ok(out)
    }

    /// The id of an image by name, with one indexed lookup (what `run`
    /// needs); ids and prefixes go through [`Store::resolve`].
    pub fn resolve_id(&self, what: &str) -> Result<Digest> {
        let id_hex = what.strip_prefix("sha256:").unwrap_or(what);
        let looks_like_id = id_hex.len() >= 4 && id_hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !looks_like_id {
            if let Ok(r) = crate::Reference::parse(what) {
                let id: Option<String> = self
                    .conn()
                    .row(
                        "SELECT image_id FROM names WHERE name = ?1",
                        params![r.to_string()],
                        |row| row.get(0),
                    )
                    .optional()
                    .ctx("look up the image")?;
                if let Some(id) = id {
                    return Digest::parse(&id);
                }
            }
        }
        Ok(self.resolve(what)?.id)
    }

    /// Finds an image by name (normalised reference), full or short id.
    pub fn resolve(&self, what: &str) -> Result<ImageRow> {
        let images = self.images()?;
        let id_hex = what.strip_prefix("sha256:").unwrap_or(what);
        let by_id: Vec<&ImageRow> =
            if id_hex.len() >= 4 && id_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                images
                    .iter()
                    .filter(|i| i.id.hex().starts_with(id_hex))
                    .collect()
            } else {
                Vec::new()
            };
        if by_id.len() > 1 {
            return Err(Error::Usage(format!(
                "{what}: more than one image id starts with this; give more digits"
            )));
        }
        if let Some(i) = by_id.first() {
            return Ok((*i).clone());
        }
        let name = crate::Reference::parse(what)
            .map(|r| r.to_string())
            .map_err(|_| Error::UnknownImage(what.to_string()))?;
        images
            .into_iter()
            .find(|i| i.names.contains(&name))
            .ok_or(Error::UnknownImage(what.to_string()))
    }

    /// A layer's stored blob, its media type and its uncompressed size.
    pub fn layer_blob(&self, chain: &Digest) -> Result<(Digest, String, u64)> {
        let (b, m, n): (String, String, i64) = self
            .conn()
            .row(
                "SELECT blob, media_type, diff_size FROM layers WHERE chain_id = ?1",
                params![chain.to_string()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ctx("look up a layer")?;
        Ok((Digest::parse(&b)?, m, n.max(0) as u64))
    }

    /// The media type of the image's manifest.
    pub fn manifest_type(&self, id: &Digest) -> Result<String> {
        self.conn()
            .row(
                "SELECT manifest_type FROM images WHERE id = ?1",
                params![id.to_string()],
                |r| r.get(0),
            )
            .ctx("look up an image")
    }

    /// Gives an image another name (`berth tag`); a name that pointed
    /// elsewhere moves.
    pub fn tag(&self, id: &Digest, name: &str) -> Result<()> {
        self.conn()
            .exec(
                "INSERT INTO names (name, image_id) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
                params![name, id.to_string()],
            )
            .ctx("tag the image")?;
        Ok(())
    }

    /// The image's layers (chain IDs), bottom first.
    pub fn image_layers(&self, id: &Digest) -> Result<Vec<Digest>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT chain_id FROM image_layers WHERE image_id = ?1 ORDER BY idx")
            .ctx("list layers")?;
        let rows = st
            .query_map(params![id.to_string()], |r| r.get::<_, String>(0))
            .ctx("list layers")?;
        rows.map(|r| Digest::parse(&r.ctx("list layers")?))
            .collect()
    }

    /// Removes a name; the image goes when it has no name left (or with
    /// `force`, all its names at once). Returns the removed image ids.
    pub fn remove(&mut self, what: &str, force: bool) -> Result<Vec<Digest>> {
        let img = self.resolve(what)?;
        let mut conn = self.conn();
        let tx = conn.transaction().ctx("begin")?;
        let by_name = crate::Reference::parse(what).map(|r| r.to_string()).ok();
        let named = by_name.as_ref().filter(|n| img.names.contains(n));
        let mut removed = Vec::new();
        let holders: Vec<String> = {
            let mut st = tx
                .prepare_cached("SELECT holder FROM holds WHERE image_id = ?1 ORDER BY holder")
                .ctx("list the image's users")?;
            let rows = st
                .query_map(params![img.id.to_string()], |r| r.get::<_, String>(0))
                .ctx("list the image's users")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx("list the image's users")?
        };
        // As in Docker: `@digest` names are not tags; an image goes when
        // its last tag goes.
        let tags: Vec<&String> = img.names.iter().filter(|n| !n.contains('@')).collect();
        match named {
            Some(n) if tags.len() > 1 && !force && !n.contains('@') => {
                tx.exec("DELETE FROM names WHERE name = ?1", params![n])
                    .ctx("untag")?;
            }
            _ => {
                if tags.len() > 1 && !force && named.is_none() {
                    return Err(Error::InUse(format!(
                        "image {} has several tags ({}); remove them by name, or use --force",
                        img.id.short(),
                        tags.iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
                if !holders.is_empty() {
                    if !force {
                        return Err(Error::InUse(format!(
                            "image {} is in use by {} ({}); remove them first, or use --force to remove its names only",
                            img.id.short(),
                            if holders.len() == 1 { "a container" } else { "containers" },
                            holders.join(", ")
                        )));
                    }
                    // Forced: the names go; the image stays, nameless, as
                    // long as a container uses it.
                    tx.exec(
                        "DELETE FROM names WHERE image_id = ?1",
                        params![img.id.to_string()],
                    )
                    .ctx("untag")?;
                } else {
                    tx.exec(
                        "DELETE FROM images WHERE id = ?1",
                        params![img.id.to_string()],
                    )
                    .ctx("remove the image")?;
                    removed.push(img.id.clone());
                }
            }
        }
        tx.commit().ctx("commit")?;
        Ok(removed)
    }

    /// Removes layers and blobs no image refers to, and leftovers in tmp/.
    /// Returns what went: how many layers and blobs, and their bytes.
    pub fn gc(&mut self) -> Result<Collected> {
        let _l = self.gc_lock()?;
        let unused: Vec<(String, i64)> = {
            let conn = self.conn();
            let mut st = conn.prepare_cached("SELECT chain_id, size FROM layers WHERE chain_id NOT IN (SELECT chain_id FROM image_layers)")
                .ctx("find unused layers")?;
            let rows = st
                .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                .ctx("find unused layers")?;
            rows.collect::<rusqlite::Result<_>>()
                .ctx("find unused layers")?
        };
        let mut layers = 0;
        let mut bytes = 0u64;
        for (c, size) in &unused {
            let chain = Digest::parse(c)?;
            // A pull that will use it holds its lock or has marked it
            // (marks are read after the lock is taken: a pull marks before
            // it takes layer locks).
            let Some(_layer) = self.try_layer_lock(&chain) else {
                continue;
            };
            if self.marked().contains(c) {
                continue;
            }
            self.conn()
                .exec("DELETE FROM layers WHERE chain_id = ?1", params![c])
                .ctx("forget a layer")?;
            remove_tree(&self.layer_dir(&chain))?;
            remove_tree(&self.layer_init_dir(&chain))?;
            layers += 1;
            bytes = bytes.saturating_add(u64::try_from(*size).unwrap_or(0));
        }
        // Layer directories without a row (a pull killed after the rename),
        // and init directories without their layer.
        for e in std::fs::read_dir(self.root.join("layers")).ctx("list layers")? {
            let e = e.ctx("list layers")?;
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(INIT_SUFFIX) {
                if !self.root.join("layers").join(hex).is_dir() {
                    remove_tree(&e.path())?;
                }
                continue;
            }
            let Ok(d) = Digest::parse(&format!("sha256:{name}")) else {
                continue;
            };
            // (Unless a pull is storing it now: it holds the lock.)
            if !self.has_layer_row(&d)? {
                if let Some(_layer) = self.try_layer_lock(&d) {
                    if !self.has_layer_row(&d)? {
                        remove_tree(&e.path())?;
                        layers += 1;
                    }
                }
            }
        }
        // Blobs: keep those referenced by an image (manifest, config,
        // layers).
        let mut keep = std::collections::HashSet::new();
        {
            let conn = self.conn();
            let mut st = conn
                .prepare_cached("SELECT id, manifest_digest, manifest_type FROM images")
                .ctx("list images")?;
            let rows = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                })
                .ctx("list images")?;
            for r in rows {
                let (a, b, mtype) = r.ctx("list images")?;
                // The layer blobs the manifest names (push and save need
                // them; they may be compressed otherwise than the blob a
                // shared layer was first unpacked from).
                if let Ok(body) = self.read_blob(&Digest::parse(&b)?, crate::registry::MAX_MANIFEST)
                {
                    if let Ok(crate::manifest::Document::Manifest { layers, .. }) =
                        crate::manifest::parse(&body, &mtype, &b)
                    {
                        keep.extend(layers.into_iter().map(|l| l.digest.to_string()));
                    }
                }
                keep.insert(a);
                keep.insert(b);
            }
            drop(st);
            let mut st = conn
                .prepare_cached("SELECT blob FROM layers")
                .ctx("list layers")?;
            let rows = st
                .query_map([], |r| r.get::<_, String>(0))
                .ctx("list layers")?;
            for r in rows {
                keep.insert(r.ctx("list layers")?);
            }
        }
        let mut blobs = 0;
        let listed: Vec<std::fs::DirEntry> = std::fs::read_dir(self.blob_dir())
            .ctx("list blobs")?
            .collect::<std::io::Result<_>>()
            .ctx("list blobs")?;
        // Read after the listing: a pull marks its blobs before it stores
        // any.
        keep.extend(self.marked());
        for e in listed {
            let name = format!("sha256:{}", e.file_name().to_string_lossy());
            if !keep.contains(&name) {
                let len = e.metadata().map_or(0, |m| m.len());
                std::fs::remove_file(e.path()).with_ctx(|| format!("remove blob {name}"))?;
                blobs += 1;
                bytes = bytes.saturating_add(len);
            }
        }
        // A layer's files in tmp/ are a pull's while it holds the layer's
        // lock, a spooled archive a live process's; the rest (init layers
        // being made, loads: they hold the store lock) is not in use while
        // we hold the store lock exclusive.
        self.clean_tmp();
        for e in std::fs::read_dir(self.tmp_dir()).ctx("list tmp")? {
            let e = e.ctx("list tmp")?;
            let name = e.file_name().to_string_lossy().into_owned();
            if !["layer-", "blob-", "load-"]
                .iter()
                .any(|p| name.starts_with(p))
            {
                remove_tree(&e.path())?;
            }
        }
        Ok(Collected {
            layers,
            blobs,
            bytes,
        })
    }

    fn has_layer_row(&self, chain: &Digest) -> Result<bool> {
        Ok(self
            .conn()
            .row(
                "SELECT 1 FROM layers WHERE chain_id = ?1",
                params![chain.to_string()],
                |_| Ok(()),
            )
            .optional()
            .ctx("look up a layer")?
            .is_some())
    }

    /// Images without any name that no container uses.
    pub fn dangling(&self) -> Result<Vec<Digest>> {
        let held = self.held()?;
        Ok(self
            .images()?
            .into_iter()
            .filter(|i| i.names.is_empty() && !held.contains(&i.id.to_string()))
            .map(|i| i.id)
            .collect())
    }

    /// Every holder (`container:ID`) recorded.
    pub fn holders(&self) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT holder FROM holds ORDER BY holder")
            .ctx("list holds")?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .ctx("list holds")?;
        rows.collect::<rusqlite::Result<_>>().ctx("list holds")
    }

    /// Ids of the images some container holds.
    pub fn held(&self) -> Result<std::collections::HashSet<String>> {
        let conn = self.conn();
        let mut st = conn
            .prepare_cached("SELECT image_id FROM holds")
            .ctx("list holds")?;
        let rows = st
            .query_map([], |r| r.get::<_, String>(0))
            .ctx("list holds")?;
        rows.collect::<rusqlite::Result<_>>().ctx("list holds")
    }

    /// Records that `holder` (a container) uses the image: `rmi` refuses
    /// to remove it (or with --force removes only its names), prune and
    /// GC keep it and its layers.
    pub fn hold(&self, id: &Digest, holder: &str) -> Result<()> {
        self.hold_with(id, holder, |_| Ok::<(), Error>(()))
    }

    /// Holds the image for `holder` (see [`Store::hold`]) and, in the same
    /// transaction, does `with` (the engine records the container): both
    /// or neither. `with`'s error is returned as it is.
    pub fn hold_with<E: From<Error>>(
        &self,
        id: &Digest,
        holder: &str,
        with: impl FnOnce(&Connection) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.immediate("record the image's user", |tx| {
            tx.exec(
                "INSERT INTO holds (holder, image_id) VALUES (?1, ?2)
                 ON CONFLICT(holder) DO UPDATE SET image_id = excluded.image_id",
                params![holder, id.to_string()],
            )
            .ctx("record the image's user")?;
            with(tx)
        })
    }

    /// Ends a hold (the container was removed).
    pub fn release(&self, holder: &str) -> Result<()> {
        self.release_with(holder, |_| Ok::<(), Error>(()))
    }

    /// Ends a hold and, in the same transaction, does `with` (the
    /// engine removes the container's record). `with`'s error is returned
    /// as it is.
    pub fn release_with<E: From<Error>>(
        &self,
        holder: &str,
        with: impl FnOnce(&Connection) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        self.immediate("forget the image's user", |tx| {
            with(tx)?;
            tx.exec("DELETE FROM holds WHERE holder = ?1", params![holder])
                .ctx("forget the image's user")?;
            Ok(())
        })
    }

    /// `f` in one write transaction (taken at once, so the busy budget
    /// applies), committed if it succeeds; `op` names the commit.
    fn immediate<E: From<Error>>(
        &self,
        op: &str,
        f: impl FnOnce(&Connection) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let mut conn = self.conn();
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .ctx("begin a transaction")?;
        f(&tx)?;
        tx.commit().ctx(op)?;
        Ok(())
    }

    pub fn remove_by_id(&mut self, id: &Digest) -> Result<()> {
        self.conn()
            .exec("DELETE FROM images WHERE id = ?1", params![id.to_string()])
            .ctx("remove the image")?;
        Ok(())
    }
}

/// Removes a directory tree that may hold read-only directories (as
/// unpacked layers do) without following symlinks.
pub fn remove_tree(p: &Path) -> Result<()> {
    let parent = p.parent().unwrap_or(Path::new("/"));
    let name = p.file_name().map(Path::new).unwrap_or(Path::new("."));
    // No parent: nothing to remove (`system prune` before any build).
    let dir = match sfs::open(parent, libc::O_PATH | libc::O_DIRECTORY, 0) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        r => r.with_ctx(|| format!("open {}", parent.display()))?,
    };
    match crate::unpack::remove_all(dir.as_fd(), name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.with_ctx(|| format!("remove {}", p.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a commit or build step killed (-9) while writing a layer left
    /// in tmp/ (its blob, the tree being taken in) goes with the next
    /// command's clean_tmp; a live process's stays.
    #[test]
    fn a_dead_process_commit_leftovers_are_cleaned() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::open(d.path()).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let me = std::process::id();
        let tmp = store.tmp_dir();
        let names = [
            format!("commit-layer-{dead}-0"),
            format!("commit-blob-{dead}-1"),
            format!("commit-layer-{me}-2"),
            format!("commit-blob-{me}-3"),
        ];
        for n in &names[..] {
            std::fs::create_dir_all(tmp.join(n).join("etc")).unwrap();
        }
        store.clean_tmp();
        let left: Vec<bool> = names.iter().map(|n| tmp.join(n).exists()).collect();
        assert_eq!(left, [false, false, true, true]);
    }

    #[test]
    fn removing_a_tree_whose_parent_is_missing_is_done() {
        let d = tempfile::tempdir().unwrap();
        remove_tree(&d.path().join("build/cache")).unwrap();
        std::fs::create_dir_all(d.path().join("build/cache/x")).unwrap();
        remove_tree(&d.path().join("build/cache")).unwrap();
        assert!(!d.path().join("build/cache").exists());
    }

    fn image(store: &mut Store, seed: &[u8], names: &[&str]) -> Digest {
        let diff = Digest::of(seed);
        store
            .add_layer(&LayerRecord {
                chain: &diff,
                diff_id: &diff,
                blob: &diff,
                media_type: "application/vnd.oci.image.layer.v1.tar",
                compressed_size: 1,
                size: 1,
                diff_size: 1,
            })
            .unwrap();
        let id = Digest::of(&[seed, b"config"].concat());
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        store
            .add_image(
                &id,
                &id,
                "application/vnd.oci.image.manifest.v1+json",
                None,
                "linux",
                "amd64",
                &[diff],
                &names,
            )
            .unwrap();
        id
    }

    #[test]
    fn stores_opened_together_on_a_new_root_all_open() {
        // Regression: parallel `berth run`s on a fresh store failed with
        // "enable WAL: database is locked".
        for _ in 0..10 {
            let tmp = tempfile::tempdir().unwrap();
            let go = std::sync::Barrier::new(12);
            std::thread::scope(|s| {
                for _ in 0..12 {
                    s.spawn(|| {
                        go.wait();
                        let st = Store::open(tmp.path()).unwrap();
                        assert!(st.images().unwrap().is_empty());
                    });
                }
            });
            let db = Connection::open(tmp.path().join(DB_FILE)).unwrap();
            let mode: String = db
                .pragma_query_value(None, "journal_mode", |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
    }

    #[test]
    fn images_in_use_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::open(tmp.path()).unwrap();
        let id = image(&mut s, b"a", &["docker.io/library/a:latest"]);
        s.hold(&id, "container-1").unwrap();
        let e = s.remove("a", false).unwrap_err().to_string();
        assert!(e.contains("in use") && e.contains("container-1"), "{e}");
        // --force: the name goes, the image stays (nameless, not pruned).
        assert!(s.remove("a", true).unwrap().is_empty());
        assert_eq!(s.images().unwrap().len(), 1);
        assert!(
            s.dangling().unwrap().is_empty(),
            "a held image is not dangling"
        );
        s.release("container-1").unwrap();
        assert_eq!(s.dangling().unwrap(), vec![id.clone()]);
        s.remove_by_id(&id).unwrap();
        assert!(s.images().unwrap().is_empty());
    }

    #[test]
    fn gc_counts_the_bytes_it_frees() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::open(tmp.path()).unwrap();
        // Two images sharing a layer (size 1); the second has its own
        // layer of 5000 bytes, and a blob of 300 only it names.
        let shared = image(&mut s, b"shared", &["a:1"]);
        let layer = s.image_layers(&shared).unwrap().pop().unwrap();
        let data = [7u8; 300];
        let own = Digest::of(&data);
        s.add_layer(&LayerRecord {
            chain: &own,
            diff_id: &own,
            blob: &own,
            media_type: "application/vnd.oci.image.layer.v1.tar",
            compressed_size: 300,
            size: 5000,
            diff_size: 5100,
        })
        .unwrap();
        s.put_blob(&own, &data).unwrap();
        let id = Digest::of(b"second config");
        s.add_image(
            &id,
            &id,
            "application/vnd.oci.image.manifest.v1+json",
            None,
            "linux",
            "amd64",
            &[layer.clone(), own.clone()],
            &["b:1".to_string()],
        )
        .unwrap();
        assert_eq!(s.gc().unwrap(), Collected::default());
        // The second goes: its own layer and blob, not the shared one.
        s.remove_by_id(&id).unwrap();
        assert_eq!(
            s.gc().unwrap(),
            Collected {
                layers: 1,
                blobs: 1,
                bytes: 5300
            }
        );
        assert!(!s.has_blob(&own));
        s.remove_by_id(&shared).unwrap();
        assert_eq!(s.gc().unwrap().bytes, 1);
    }

    #[test]
    fn gc_removes_init_dirs_with_their_layer_and_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::open(tmp.path()).unwrap();
        let id = image(&mut s, b"c", &["docker.io/library/c:latest"]);
        let chain = s.image_layers(&id).unwrap().pop().unwrap();
        for d in [s.layer_dir(&chain), s.layer_init_dir(&chain).join("etc")] {
            std::fs::create_dir_all(d).unwrap();
        }
        // An init directory whose layer is gone (a GC killed half-way).
        let stray = s.layer_init_dir(&Digest::of(b"gone"));
        std::fs::create_dir_all(stray.join("proc")).unwrap();
        s.gc().unwrap();
        assert!(s.layer_init_dir(&chain).is_dir(), "kept with its layer");
        assert!(!stray.exists());
        s.remove_by_id(&id).unwrap();
        s.gc().unwrap();
        assert!(!s.layer_dir(&chain).exists());
        assert!(!s.layer_init_dir(&chain).exists());
    }

    #[test]
    fn a_release_and_what_goes_with_it_commit_together() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::open(tmp.path()).unwrap();
        let id = image(&mut s, b"r", &["docker.io/library/r:latest"]);
        s.hold(&id, "container:a").unwrap();
        s.conn()
            .execute_batch("CREATE TABLE things (name TEXT); INSERT INTO things VALUES ('a')")
            .unwrap();
        let count = |s: &Store| -> i64 {
            s.conn()
                .query_row("SELECT count(*) FROM things", [], |r| r.get(0))
                .unwrap()
        };
        // What goes with it fails: the hold stays too.
        let e = s
            .release_with("container:a", |db| {
                let what = "remove the container's record";
                db.execute("DELETE FROM things", []).ctx(what)?;
                db.execute("INSERT INTO nowhere VALUES (1)", [])
                    .ctx(what)
                    .map(|_| ())
            })
            .unwrap_err();
        assert!(
            e.to_string().contains("remove the container's record"),
            "{e}"
        );
        assert_eq!(s.holders().unwrap(), vec!["container:a".to_string()]);
        assert_eq!(count(&s), 1);
        s.release_with("container:a", |db| {
            db.execute("DELETE FROM things", [])
                .ctx("remove")
                .map(|_| ())
        })
        .unwrap();
        assert!(s.holders().unwrap().is_empty());
        assert_eq!(count(&s), 0);
    }

    #[test]
    fn a_hold_and_what_goes_with_it_commit_together() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::open(tmp.path()).unwrap();
        let id = image(&mut s, b"h", &["docker.io/library/h:latest"]);
        s.conn()
            .execute_batch("CREATE TABLE things (name TEXT UNIQUE)")
            .unwrap();
        let add = |s: &Store, holder: &str, name: &str| {
            s.hold_with(&id, holder, |db| {
                db.execute("INSERT INTO things VALUES (?1)", [name])
                    .ctx("record the container")
                    .map(|_| ())
            })
        };
        add(&s, "container:a", "one").unwrap();
        // What goes with it fails (a taken name): no hold either.
        let e = add(&s, "container:b", "one").unwrap_err();
        assert!(e.to_string().contains("record the container"), "{e}");
        assert_eq!(s.holders().unwrap(), vec!["container:a".to_string()]);
    }

    #[test]
    fn tags_and_names() {
        let tmp = tempfile::tempdir().unwrap();
        let mut s = Store::open(tmp.path()).unwrap();
        let id = image(
            &mut s,
            b"b",
            &[
                "docker.io/library/b:1",
                "docker.io/library/b@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            ],
        );
        s.tag(&id, "docker.io/library/b:2").unwrap();
        // Two tags: removing one untags.
        assert!(s.remove("b:1", false).unwrap().is_empty());
        assert_eq!(s.resolve("b:2").unwrap().id, id);
        // By short id with one tag left: removed.
        assert_eq!(s.remove(id.short(), false).unwrap(), vec![id]);
        assert!(matches!(s.resolve("b:2"), Err(Error::UnknownImage(_))));
    }

    #[test]
    fn an_earlier_images_db_is_imported_once_then_removed() {
        // An earlier berth's images.db is this one's store.db with its kept
        // -wal file (the rows may still be there only), under another name.
        let old = tempfile::tempdir().unwrap();
        let id = {
            let mut s = Store::open(old.path()).unwrap();
            let id = image(&mut s, b"a", &["docker.io/library/a:latest"]);
            s.hold(&id, "container:c1").unwrap();
            id
        };
        assert!(old.path().join("store.db-wal").exists());
        let dir = tempfile::tempdir().unwrap();
        let legacy = |to: &Path| {
            for (from, name) in [("store.db", "images.db"), ("store.db-wal", "images.db-wal")] {
                std::fs::copy(old.path().join(from), to.join(name)).unwrap();
            }
        };
        legacy(dir.path());

        let mut s = Store::open(dir.path()).unwrap();
        assert_eq!(s.resolve("a").unwrap().id, id);
        assert_eq!(s.image_layers(&id).unwrap().len(), 1);
        assert_eq!(s.holders().unwrap(), vec!["container:c1".to_string()]);
        for f in ["images.db", "images.db-wal", "images.db-shm"] {
            assert!(!dir.path().join(f).exists(), "{f} is left");
        }

        // Removed since, then the old file is back (a process killed after
        // the import committed): only removed, never imported again.
        s.release("container:c1").unwrap();
        s.remove_by_id(&id).unwrap();
        drop(s);
        legacy(dir.path());
        let s = Store::open(dir.path()).unwrap();
        assert!(s.images().unwrap().is_empty(), "a removed image came back");
        assert!(!dir.path().join("images.db").exists());
    }
}
