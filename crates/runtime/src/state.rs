//! The state directory: one directory per container under `--root`,
//! holding `state.json` (written atomically) and, while the container is
//! created but not started, `exec.fifo`. The directory itself is the lock:
//! mutating commands hold an exclusive flock on it.

use crate::error::{Context, Error, Result};
use berth_sys::fs as sfs;
use oci_spec::runtime::Hooks;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";
/// Where an init that fails between `create` and `start` writes why.
pub const INIT_ERR: &str = "init.err";

/// The status values of the runtime spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `state.json` holds: the OCI state plus what later commands need.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Record {
    pub oci_version: String,
    pub id: String,
    /// The last status a command wrote; the live status is derived.
    pub status: Status,
    pub pid: i32,
    /// Start time of `pid` (clock ticks after boot): tells a reused pid apart.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    #[serde(default)]
    pub cgroup: Option<berth_cgroups::Manager>,
    #[serde(default)]
    pub hooks: Option<Hooks>,
    /// Whether the container has its own pid namespace: if not, killing the
    /// init does not end its other processes.
    #[serde(default)]
    pub own_pid_ns: bool,
    /// The container's process: what `exec` starts from.
    #[serde(default)]
    pub process: Option<Kept<oci_spec::runtime::Process>>,
    /// The container's seccomp profile, applied to `exec`'d processes too.
    #[serde(default)]
    pub seccomp: Option<Kept<oci_spec::runtime::LinuxSeccomp>>,
    /// `linux.personality`, applied to `exec`'d processes too (as runc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
}

/// A part of the record only `exec` reads, kept as its JSON text: the
/// other commands load the record without parsing it (a seccomp profile is
/// most of the file), and what links only them (the monitor's delete) does
/// not carry its parser.
#[derive(Debug, Clone)]
pub struct Kept<T> {
    raw: Box<serde_json::value::RawValue>,
    _of: std::marker::PhantomData<fn() -> T>,
}

impl<T: Serialize + serde::de::DeserializeOwned> Kept<T> {
    pub fn new(value: &T) -> Result<Kept<T>> {
        let raw = serde_json::value::to_raw_value(value)
            .map_err(|e| Error::Usage(format!("encode state: {e}")))?;
        Ok(Kept {
            raw,
            _of: std::marker::PhantomData,
        })
    }

    /// The value; `what` names it in the error of a damaged state file.
    pub fn get(&self, id: &str, what: &str) -> Result<T> {
        serde_json::from_str(self.raw.get()).map_err(|e| Error::Corrupt {
            id: id.to_string(),
            file: STATE_FILE.to_string(),
            msg: format!("{what}: {e}"),
        })
    }
}

impl<T> Serialize for Kept<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

impl<'de, T> Deserialize<'de> for Kept<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Ok(Kept {
            raw: Box::<serde_json::value::RawValue>::deserialize(d)?,
            _of: std::marker::PhantomData,
        })
    }
}

/// The state JSON of the runtime spec, as `state` prints and hooks read.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OciState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    pub pid: i32,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
}

impl Record {
    pub fn oci(&self, status: Status) -> OciState {
        OciState {
            oci_version: self.oci_version.clone(),
            id: self.id.clone(),
            status,
            pid: if matches!(status, Status::Stopped) {
                0
            } else {
                self.pid
            },
            bundle: self.bundle.clone(),
            rootfs: self.rootfs.clone(),
            created: self.created.clone(),
            owner: self.owner.clone(),
            annotations: self.annotations.clone(),
        }
    }
}

/// Checks a container id: what runc accepts, and nothing that could name
/// another directory.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidId {
            id: id.to_string(),
            reason,
        })
    };
    if id.is_empty() {
        return bad("it is empty");
    }
    if id.len() > 1024 {
        return bad("it is longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("it is . or ..");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-' | b'.'))
    {
        return bad("only letters, digits and _ + - . are allowed");
    }
    Ok(())
}

/// The state directory of one container, locked.
pub struct ContainerDir {
    pub path: PathBuf,
    lock: OwnedFd,
}

impl ContainerDir {
    /// Creates the directory for a new container and locks it. Fails with
    /// [`Error::Exists`] when the id is taken: mkdir is the atomic claim.
    pub fn create(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        ensure_root(root)?;
        let path = root.join(id);
        match std::fs::create_dir(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(id.into()))
            }
            Err(e) => {
                return Err(e).with_ctx(|| format!("create state directory {}", path.display()))
            }
        }
        let lock = sfs::open(&path, libc::O_RDONLY | libc::O_DIRECTORY, 0)
            .with_ctx(|| format!("open state directory {}", path.display()))?;
        sfs::flock(lock.as_fd(), true, false).ctx("lock state directory")?;
        Ok(ContainerDir { path, lock })
    }

    /// Opens an existing container's directory; `exclusive` for commands
    /// that change the container, shared for readers.
    pub fn open(root: &Path, id: &str, exclusive: bool) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = root.join(id);
        let lock = match sfs::open(
            &path,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::NotFound(id.into()))
            }
            Err(e) => {
                return Err(e).with_ctx(|| format!("open state directory {}", path.display()))
            }
        };
        sfs::flock(lock.as_fd(), exclusive, false).ctx("lock state directory")?;
        // A delete may have removed the directory while we waited.
        if !path.exists() {
            return Err(Error::NotFound(id.into()));
        }
        Ok(ContainerDir { path, lock })
    }

    /// Lets other commands in while this one waits (`run` waiting for its
    /// container must not block `kill` or `state`).
    pub fn unlock(&self) -> Result<()> {
        sfs::funlock(self.lock.as_fd()).ctx("unlock state directory")
    }

    /// Takes the exclusive lock again after [`ContainerDir::unlock`]; false
    /// when another command deleted the container meanwhile.
    pub fn relock(&self) -> Result<bool> {
        sfs::flock(self.lock.as_fd(), true, false).ctx("lock state directory")?;
        // Same directory, not a new container that took the id meanwhile.
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::File::from(self.lock.try_clone().ctx("dup state lock")?)
            .metadata()
            .ctx("stat state directory")?;
        Ok(std::fs::symlink_metadata(&self.path)
            .is_ok_and(|m| m.dev() == ours.dev() && m.ino() == ours.ino()))
    }

    pub fn load(&self) -> Result<Record> {
        load_record(&self.path)
    }

    pub fn save(&self, rec: &Record) -> Result<()> {
        let data =
            serde_json::to_vec(rec).map_err(|e| Error::Usage(format!("encode state: {e}")))?;
        sfs::replace_file(&self.path.join(STATE_FILE), &data, 0o600)
            .with_ctx(|| format!("write {}", self.path.join(STATE_FILE).display()))
    }

    /// The raw lock fd, so a forked child can close its copy.
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.lock)
    }

    pub fn fifo(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    /// Removes the directory and everything in it.
    pub fn remove(self) -> Result<()> {
        let r = std::fs::remove_dir_all(&self.path);
        drop(self.lock);
        match r {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_ctx(|| format!("remove state directory {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }

    /// True when another process holds the lock (for example a `create`
    /// still at work).
    pub fn busy(root: &Path, id: &str) -> bool {
        let Ok(fd) = sfs::open(&root.join(id), libc::O_RDONLY | libc::O_DIRECTORY, 0) else {
            return false;
        };
        matches!(sfs::flock(fd.as_fd(), true, true), Ok(false))
    }
}

fn ensure_root(root: &Path) -> Result<()> {
    sfs::create_private_dir_all(root).with_ctx(|| format!("create state root {}", root.display()))
}

pub fn load_record(dir: &Path) -> Result<Record> {
    let file = dir.join(STATE_FILE);
    let data = match std::fs::read(&file) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(Error::NotFound(id));
        }
        Err(e) => return Err(e).with_ctx(|| format!("read {}", file.display())),
    };
    serde_json::from_slice(&data).map_err(|e| Error::Corrupt {
        id: dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        file: file.display().to_string(),
        msg: e.to_string(),
    })
}

/// Is `pid` still the process we started (same start time, not a zombie)?
pub fn alive(pid: i32, start: u64) -> bool {
    if pid <= 0 {
        return false;
    }
    match berth_sys::process::proc_stat(pid) {
        Some(st) => st.start_time == start && st.state != 'Z' && st.state != 'X',
        None => false,
    }
}

/// The current time in RFC 3339 with nanoseconds, UTC, as runc writes it.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(now.as_secs() as i64, now.subsec_nanos())
}

/// Formats a Unix time (UTC) as RFC 3339.
pub fn rfc3339(secs: i64, nanos: u32) -> String {
    berth_sys::time::rfc3339(secs, Some(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "abc-123_x.y+z", &"x".repeat(1024)] {
            validate_id(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../x",
            "a b",
            "ä",
            &"x".repeat(1025),
            "a\0",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn kept_parts_round_trip_and_read_as_before() {
        let process: oci_spec::runtime::Process = serde_json::from_str(
            r#"{"args":["sh","-c","echo hi"],"cwd":"/w","env":["A=1"],"user":{"uid":7,"gid":8}}"#,
        )
        .unwrap();
        let seccomp: oci_spec::runtime::LinuxSeccomp = serde_json::from_str(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#,
        )
        .unwrap();
        // A record as the previous format wrote it: the parts inline.
        let old = serde_json::json!({
            "ociVersion": "1.2.0", "id": "c", "status": "running", "pid": 5,
            "pidStart": 9, "bundle": "/b", "rootfs": "/b/rootfs",
            "created": "2026-01-01T00:00:00Z", "owner": "root",
            "process": process, "seccomp": seccomp,
        });
        let rec: Record = serde_json::from_value(old.clone()).unwrap();
        let p = rec.process.as_ref().unwrap().get("c", "process").unwrap();
        assert_eq!(p.args(), process.args());
        assert_eq!(p.user().uid(), 7);
        let sc = rec.seccomp.as_ref().unwrap().get("c", "seccomp").unwrap();
        assert_eq!(sc.syscalls(), seccomp.syscalls());
        // Written back, the parts are the same JSON.
        let again: serde_json::Value = serde_json::to_value(&rec).unwrap();
        assert_eq!(again["process"], old["process"]);
        assert_eq!(again["seccomp"], old["seccomp"]);
        // Made anew, they read back as given.
        let k = Kept::new(&process).unwrap();
        assert_eq!(k.get("c", "process").unwrap().cwd(), process.cwd());
        // A part that is valid JSON but not a process is a damaged state
        // file, named as such, when exec reads it; the rest still loads.
        let mut bad = old.clone();
        bad["process"] = serde_json::json!({"args": 5});
        let rec: Record = serde_json::from_value(bad).unwrap();
        let e = rec.process.unwrap().get("c", "process").unwrap_err();
        assert!(matches!(e, Error::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains("process"), "{e}");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(rfc3339(1_700_000_000, 5), "2023-11-14T22:13:20.000000005Z");
        assert_eq!(rfc3339(951_782_400, 0), "2000-02-29T00:00:00.000000000Z");
    }

    #[test]
    fn create_is_exclusive() {
        let t = tempfile::tempdir().unwrap();
        let d = ContainerDir::create(t.path(), "c1").unwrap();
        assert!(matches!(
            ContainerDir::create(t.path(), "c1"),
            Err(Error::Exists(_))
        ));
        assert!(ContainerDir::busy(t.path(), "c1"));
        d.remove().unwrap();
        assert!(matches!(
            ContainerDir::open(t.path(), "c1", false),
            Err(Error::NotFound(_))
        ));
    }

    #[test]
    fn own_process_is_alive() {
        let me = std::process::id() as i32;
        let st = berth_sys::process::proc_stat(me).unwrap();
        assert!(alive(me, st.start_time));
        assert!(
            !alive(me, st.start_time + 1),
            "same pid, other start time: a reused pid"
        );
        assert!(!alive(0, 0));
    }
}
