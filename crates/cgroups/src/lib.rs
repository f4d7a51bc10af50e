//! berth-cgroups: one type over cgroup v1, v2 and the hybrid layout.
//!
//! A [`Manager`] is computed from the host's mount table, the runtime's own
//! cgroup membership and the container's `cgroupsPath`; it creates the
//! container's cgroup in every hierarchy, applies limits, places processes
//! and removes what it created. Everything it touches is found from the
//! mount table it is given, so tests point it at temporary directories.

mod devices_bpf;
mod layout;
mod path;
mod resources;
mod stats;

pub use layout::{Hierarchy, HierarchyKind, Layout};
pub use path::{systemd_to_path, CgroupsPath};
pub use resources::set_device_program;
pub use stats::{OomWatch, Stats};

use serde::{Deserialize, Serialize};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

/// Errors name the cgroup file or directory and what was being done to it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is part of the message and deliberately not a `source`:
    // printing the chain would repeat it.
    #[error("cgroup: {op} {}: {cause}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        cause: io::Error,
    },
    #[error("cgroupsPath {0:?}: {1}")]
    BadPath(String, &'static str),
    #[error("linux.resources.{field}: {msg}")]
    Unsupported { field: &'static str, msg: String },
    #[error(
        "no cgroup hierarchy is mounted (looked for cgroup and cgroup2 in /proc/self/mountinfo)"
    )]
    NoCgroups,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Whether the error is the caller lacking the right to the cgroup
    /// (a rootless runtime without a delegated cgroup, or a read-only
    /// cgroupfs).
    pub fn is_permission(&self) -> bool {
        matches!(self, Error::Io { cause, .. }
            if matches!(cause.raw_os_error(), Some(libc::EACCES | libc::EPERM | libc::EROFS)))
    }
}

pub(crate) fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |cause| Error::Io {
        op,
        path: path.to_path_buf(),
        cause,
    }
}

/// The cgroup version the host runs, as a caller (or `features`) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    V1,
    V2,
    /// v1 controllers plus a controller-less (or nearly so) cgroup2 mount.
    Hybrid,
}

/// One directory of the container's cgroup: in one v1 hierarchy, or the v2
/// (unified) one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dir {
    pub path: PathBuf,
    /// v1 controllers of this hierarchy (e.g. `["memory"]`); empty for v2.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub controllers: Vec<String>,
    #[serde(default)]
    pub v2: bool,
}

impl Dir {
    /// Whether this hierarchy carries `controller`.
    pub fn has(&self, controller: &str) -> bool {
        self.controllers.iter().any(|c| c == controller)
    }
}

/// A container's cgroup, across every hierarchy. Serializable, so `delete`
/// can remove exactly what `create` made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manager {
    pub version: Version,
    pub dirs: Vec<Dir>,
    /// Directories this manager created, deepest first, removed on destroy.
    #[serde(default)]
    pub created: Vec<PathBuf>,
}

impl Manager {
    /// Works out the container's directories without touching anything.
    pub fn new(layout: &Layout, cgroups_path: &CgroupsPath) -> Result<Manager> {
        let mut dirs = Vec::new();
        for h in &layout.hierarchies {
            let path = h.dir_for(cgroups_path)?;
            match &h.kind {
                HierarchyKind::V1 { controllers } => dirs.push(Dir {
                    path,
                    controllers: controllers.clone(),
                    v2: false,
                }),
                HierarchyKind::V2 => dirs.push(Dir {
                    path,
                    controllers: Vec::new(),
                    v2: true,
                }),
            }
        }
        if dirs.is_empty() {
            return Err(Error::NoCgroups);
        }
        Ok(Manager {
            version: layout.version(),
            dirs,
            created: Vec::new(),
        })
    }

    /// Creates the directories (and missing parents), readying each level
    /// as its controllers require (cpuset copies cpus/mems from its parent
    /// on v1; v2 parents get the controllers enabled for their children).
    /// What was created is recorded for [`Manager::destroy`], also on error.
    pub fn create(&mut self) -> Result<()> {
        for i in 0..self.dirs.len() {
            self.make(i)?;
        }
        Ok(())
    }

    /// Makes `self.dirs[i]` (and its missing parents), recording what it
    /// made.
    fn make(&mut self, i: usize) -> Result<()> {
        let dir = self.dirs[i].clone();
        let mut missing = Vec::new();
        let mut p = dir.path.as_path();
        // Usually only the container's own directory is missing: made
        // first, without looking at its parents (v2 parents need their
        // controllers enabled first).
        if !(dir.v2 && self.version == Version::V2) {
            match std::fs::create_dir(p) {
                Ok(()) => {
                    self.created.insert(0, p.to_path_buf());
                    if dir.has("cpuset") {
                        resources::v1_cpuset_inherit(p)?;
                    }
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
                // A missing parent, made below (which reports any
                // other error).
                Err(_) => {}
            }
        }
        // Another container under the same parent may be deleted meanwhile,
        // removing the parent it made once it is empty: a parent that
        // vanishes while we make our way down is made again.
        let mut tries = 0;
        loop {
            missing.clear();
            p = dir.path.as_path();
            while !p.exists() {
                missing.push(p.to_path_buf());
                p = match p.parent() {
                    Some(parent) => parent,
                    None => break,
                };
            }
            match self.make_down(&dir, &missing) {
                Err(Error::Io { cause, .. })
                    if cause.kind() == io::ErrorKind::NotFound && tries < 10 =>
                {
                    tries += 1;
                }
                r => return r,
            }
        }
    }

    /// Makes `missing` (of `dir`'s path, leaf first), top down.
    fn make_down(&mut self, dir: &Dir, missing: &[PathBuf]) -> Result<()> {
        // v2: a controller reaches a cgroup only if every ancestor enables
        // it for its children. An existing parent (berth's own `/berth`,
        // made by a monitor, or one made by hand) may sit under ancestors
        // that enable nothing (a machine without systemd, whose root
        // enables nothing): enable them from the top down first, as runc
        // and crun do.
        if dir.v2 && self.version == Version::V2 {
            if let Some(existing) = missing.last().and_then(|m| m.parent()) {
                resources::v2_enable_ancestors(existing);
            }
        }
        for m in missing.iter().rev() {
            if dir.v2 && self.version == Version::V2 {
                if let Some(parent) = m.parent() {
                    resources::v2_enable_controllers(parent)?;
                }
            }
            match std::fs::create_dir(m) {
                Ok(()) => self.created.insert(0, m.clone()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create directory", m)(e)),
            }
            if dir.has("cpuset") {
                resources::v1_cpuset_inherit(m)?;
            }
        }
        Ok(())
    }

    /// Applies the OCI resources to every directory.
    pub fn apply(&self, res: &oci_spec::runtime::LinuxResources) -> Result<()> {
        resources::validate(self, res)?;
        for dir in &self.dirs {
            if dir.v2 && self.version != Version::V2 {
                continue; // hybrid: the unified mount only tracks processes.
            }
            resources::apply(dir, res)?;
        }
        Ok(())
    }

    /// Moves a process into the cgroup in every hierarchy, or into its
    /// sub-cgroup `sub` (relative; `""` for the cgroup itself).
    pub fn add(&self, pid: i32, sub: &str) -> Result<()> {
        let pid = pid.to_string();
        for dir in &self.dirs {
            let file = dir.path.join(sub).join("cgroup.procs");
            std::fs::write(&file, &pid).map_err(io_err("add process to", &file))?;
        }
        Ok(())
    }

    /// Hybrid layout: makes the directory in the unified (cgroup2)
    /// hierarchy and opens it for `clone3(CLONE_INTO_CGROUP)`, so that the
    /// child starts in it instead of being moved there (a move waits for an
    /// RCU grace period after a quiet moment, see [`Manager::join_v1_self`]).
    /// `None` unless the layout is hybrid.
    pub fn hybrid_unified_fd(&mut self) -> Result<Option<OwnedFd>> {
        if self.version != Version::Hybrid {
            return Ok(None);
        }
        let Some(i) = self.dirs.iter().position(|d| d.v2) else {
            return Ok(None);
        };
        self.make(i)?;
        self.cgroup2_dir_fd("")
    }

    /// Moves the calling thread into the cgroup in every v1 hierarchy, by
    /// writing 0 to `tasks`; in a single-threaded process, that moves the
    /// process. The kernel moves the caller's own thread without taking
    /// the global threadgroup lock, so without the RCU grace period that a
    /// `cgroup.procs` write waits for after a quiet moment (8-25 ms here,
    /// against 0.1 ms). The cgroup2 directory of a hybrid layout is left
    /// alone: see [`Manager::hybrid_unified_fd`].
    pub fn join_v1_self(&self) -> Result<()> {
        self.join_v1_self_sub("")
    }

    /// [`Manager::join_v1_self`] into the sub-cgroup `sub` (relative; `""`
    /// for the cgroup itself).
    pub fn join_v1_self_sub(&self, sub: &str) -> Result<()> {
        for dir in self.dirs.iter().filter(|d| !d.v2) {
            let file = dir.path.join(sub).join("tasks");
            std::fs::write(&file, "0").map_err(io_err("move this process into", &file))?;
        }
        Ok(())
    }

    /// The cgroup2 directory (or its sub-cgroup `sub`) to start a process
    /// in with `clone3(CLONE_INTO_CGROUP)`: the whole cgroup on v2, the
    /// unified hierarchy's on a hybrid layout; `None` on v1 alone.
    pub fn cgroup2_dir_fd(&self, sub: &str) -> Result<Option<OwnedFd>> {
        let Some(d) = self.dirs.iter().find(|d| d.v2) else {
            return Ok(None);
        };
        let dir = d.path.join(sub);
        berth_sys::fs::open(&dir, libc::O_PATH | libc::O_DIRECTORY, 0)
            .map(Some)
            .map_err(io_err("open", &dir))
    }

    /// The v2 directory (or its sub-cgroup `sub`), opened for
    /// `clone3(CLONE_INTO_CGROUP)`; `None` on v1 and hybrid layouts.
    pub fn v2_dir_fd(&self, sub: &str) -> Result<Option<OwnedFd>> {
        if self.version != Version::V2 {
            return Ok(None);
        }
        self.cgroup2_dir_fd(sub)
    }

    /// The pids of every process in the cgroup and in the cgroups the
    /// container made inside it (systemd in a container does), as runc's
    /// `GetAllPids`: `ps`, `kill --all` and the kill before a removal must
    /// see them all.
    pub fn procs(&self) -> Result<Vec<i32>> {
        let dir = self.tracking_dir();
        let file = dir.path.join("cgroup.procs");
        let text = std::fs::read_to_string(&file).map_err(io_err("read", &file))?;
        let mut pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        for sub in descendants(&dir.path) {
            // A sub-cgroup removed meanwhile holds nothing any more.
            if let Ok(t) = std::fs::read_to_string(sub.join("cgroup.procs")) {
                pids.extend(t.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
            }
        }
        Ok(pids)
    }

    /// The directory whose `cgroup.procs` lists the container's processes.
    fn tracking_dir(&self) -> &Dir {
        self.dirs
            .iter()
            .find(|d| d.has("pids") || d.has("freezer") || d.v2)
            .unwrap_or(&self.dirs[0])
    }

    /// v2: the controllers this cgroup may use (its `cgroup.controllers`,
    /// or its parent's before it exists); `None` on v1 or when unreadable.
    pub fn v2_controllers(&self) -> Option<Vec<String>> {
        if self.version != Version::V2 {
            return None;
        }
        let dir = &self.dirs.first()?.path;
        let parent = dir.parent()?;
        let text = std::fs::read_to_string(dir.join("cgroup.controllers"))
            .or_else(|_| std::fs::read_to_string(parent.join("cgroup.controllers")))
            .ok()?;
        Some(text.split_whitespace().map(str::to_string).collect())
    }

    /// The v1 directory holding `controller`, if the host has it.
    pub fn v1_dir(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .find(|d| d.has(controller))
            .map(|d| d.path.as_path())
    }

    /// Removes the directories this manager created (deepest first), and the
    /// leaves even if they existed before. A cgroup that still holds
    /// processes cannot be removed: the caller kills them first. Retries
    /// briefly on EBUSY, which the kernel returns while exiting tasks leave.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        let mut targets: Vec<&PathBuf> = self.dirs.iter().map(|d| &d.path).collect();
        for c in &self.created {
            if !targets.contains(&c) {
                targets.push(c);
            }
        }
        // Deepest paths first so parents are empty when we reach them.
        targets.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for t in targets {
            let leaf = self.dirs.iter().any(|d| &d.path == t);
            if leaf {
                // The container's own sub-cgroups first: a cgroup with
                // children cannot be removed (EBUSY). Their failures show
                // as the leaf's.
                for sub in descendants(t) {
                    let _ = rmdir_retry(&sub);
                }
            }
            if let Err(e) = rmdir_retry(t) {
                // Parents shared with other containers stay: only the leaves must go.
                if leaf && first_err.is_none() {
                    first_err = Some(io_err("remove", t)(e));
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Manager {
    /// The directory that freezes the cgroup: v2's, or v1's freezer.
    fn freezer_dir(&self) -> Option<&Dir> {
        if self.version == Version::V2 {
            self.dirs.first()
        } else {
            self.dirs.iter().find(|d| d.has("freezer"))
        }
    }

    /// Freezes (`true`) or thaws the cgroup and waits until the kernel
    /// reports it done (v1 passes through FREEZING; v2 says `frozen 1` in
    /// cgroup.events once every task stopped).
    pub fn set_frozen(&self, freeze: bool) -> Result<()> {
        let d = self.freezer_dir().ok_or(Error::Unsupported {
            field: "freezer",
            msg: "the host has no cgroup freezer (v1 freezer controller or v2 cgroup.freeze)"
                .into(),
        })?;
        let v2 = self.version == Version::V2;
        let (file, value) = match (v2, freeze) {
            (true, true) => ("cgroup.freeze", "1"),
            (true, false) => ("cgroup.freeze", "0"),
            (false, true) => ("freezer.state", "FROZEN"),
            (false, false) => ("freezer.state", "THAWED"),
        };
        let mut delay = std::time::Duration::from_micros(100);
        for _ in 0..2000 {
            let p = d.path.join(file);
            std::fs::write(&p, value).map_err(io_err("write", &p))?;
            if self.frozen()? == freeze {
                return Ok(());
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(std::time::Duration::from_millis(10));
        }
        Err(Error::Io {
            op: if freeze { "freeze" } else { "thaw" },
            path: d.path.clone(),
            cause: io::Error::from_raw_os_error(libc::ETIMEDOUT),
        })
    }

    /// Whether the cgroup is frozen (FREEZING counts as not yet).
    pub fn frozen(&self) -> Result<bool> {
        let Some(d) = self.freezer_dir() else {
            return Ok(false);
        };
        if self.version == Version::V2 {
            let p = d.path.join("cgroup.events");
            let text = std::fs::read_to_string(&p).map_err(io_err("read", &p))?;
            Ok(text.lines().any(|l| l.trim() == "frozen 1"))
        } else {
            let p = d.path.join("freezer.state");
            let text = std::fs::read_to_string(&p).map_err(io_err("read", &p))?;
            Ok(text.trim() == "FROZEN")
        }
    }

    /// Kills (SIGKILL) whatever is in the cgroup and its sub-cgroups,
    /// thawing it first (frozen tasks would not die), until it is empty or
    /// about 100 ms have passed; a cgroup that cannot be read holds nothing
    /// to kill. Its removal ([`Manager::destroy`]) follows.
    pub fn kill_all(&self) {
        if self.freezing() {
            let _ = self.set_frozen(false);
        }
        for _ in 0..100 {
            let procs = self.procs().unwrap_or_default();
            if procs.is_empty() {
                return;
            }
            for p in procs {
                let _ = berth_sys::process::kill(p, libc::SIGKILL);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Whether the cgroup was asked to freeze (frozen, or on its way).
    pub fn freezing(&self) -> bool {
        let Some(d) = self.freezer_dir() else {
            return false;
        };
        let (file, on): (&str, &[&str]) = if self.version == Version::V2 {
            ("cgroup.freeze", &["1"])
        } else {
            ("freezer.state", &["FROZEN", "FREEZING"])
        };
        std::fs::read_to_string(d.path.join(file)).is_ok_and(|s| on.contains(&s.trim()))
    }
}

/// The cgroups under `dir`, deepest first. The container may make them
/// (with a writable cgroup mount), so the walk is bounded in depth and
/// number; walking by path is safe here: cgroupfs holds no symlinks (no
/// one can make one in it) and renames stay within one parent.
fn descendants(dir: &Path) -> Vec<PathBuf> {
    const MAX_DEPTH: usize = 32;
    const MAX_CGROUPS: usize = 4096;
    fn walk(d: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        if depth >= MAX_DEPTH || out.len() >= MAX_CGROUPS {
            return;
        }
        let Ok(entries) = std::fs::read_dir(d) else {
            return;
        };
        for e in entries.flatten() {
            if out.len() >= MAX_CGROUPS {
                return;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                let p = e.path();
                walk(&p, depth + 1, out);
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, 0, &mut out);
    out
}

fn rmdir_retry(p: &Path) -> io::Result<()> {
    let mut delay = std::time::Duration::from_micros(200);
    for _ in 0..12 {
        match std::fs::remove_dir(p) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                std::thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(e),
        }
    }
    std::fs::remove_dir(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup2 tree whose root enables nothing for its children (a
    /// machine without systemd) and whose `/berth` exists already (made by
    /// a monitor): creating `/berth/c1` enables the root's controllers, top
    /// down, as the kernel needs for `/berth/c1` to get them.
    #[test]
    fn v2_create_under_an_existing_parent_enables_the_ancestors_controllers() {
        let t = tempfile::tempdir().unwrap();
        let m = t.path().join("cgroup");
        std::fs::create_dir_all(m.join("berth")).unwrap();
        std::fs::write(m.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        std::fs::write(m.join("cgroup.subtree_control"), "").unwrap();
        std::fs::write(m.join("berth/cgroup.controllers"), "").unwrap();
        std::fs::write(m.join("berth/cgroup.subtree_control"), "").unwrap();
        let mi = format!(
            "30 26 0:28 / {} rw,relatime - cgroup2 cgroup2 rw\n",
            m.display()
        );
        let layout = Layout::parse(&mi, "0::/\n");
        let path = CgroupsPath::Absolute("/berth/c1".into());
        let mut mgr = Manager::new(&layout, &path).unwrap();
        mgr.create().unwrap();
        assert!(m.join("berth/c1").is_dir());
        assert_eq!(mgr.created, [m.join("berth/c1")]);
        assert_eq!(
            std::fs::read_to_string(m.join("cgroup.subtree_control")).unwrap(),
            "+cpu +memory +pids"
        );
    }

    #[test]
    fn descendants_come_deepest_first() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        std::fs::create_dir_all(d.join("a/b/c")).unwrap();
        std::fs::create_dir_all(d.join("x")).unwrap();
        std::fs::write(d.join("a/cgroup.procs"), "").unwrap();
        let got = descendants(d);
        assert_eq!(got.len(), 4, "{got:?}");
        let pos = |p: &str| got.iter().position(|g| g == &d.join(p)).unwrap();
        assert!(pos("a/b/c") < pos("a/b") && pos("a/b") < pos("a"));
        // Bounded: a chain deeper than the limit is cut, not followed.
        let mut deep = d.join("deep");
        for _ in 0..40 {
            deep.push("d");
        }
        std::fs::create_dir_all(&deep).unwrap();
        assert!(descendants(&d.join("deep")).len() <= 32);
    }
}
