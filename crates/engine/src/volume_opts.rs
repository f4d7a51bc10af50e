//! Docker's `local` volume driver options (`volume create --opt type=…
//! --opt device=… --opt o=…`, compose's `driver_opts`): a volume that is a
//! mount of its own on its `_data` directory: a tmpfs (`type=tmpfs`), a
//! bind of a host directory (`type=none`, `o=bind`, `device=/path`), or any
//! filesystem mount(2) takes (`type=ext4`, `device=/dev/…`).
//!
//! The options are kept beside the volume, in `opts.json`, as dockerd keeps
//! them (no column in the database, so an older store needs nothing).
//! The mount is made when a container first uses the volume and stays until
//! the volume is removed: unlike dockerd, which unmounts when the last
//! container stops, a tmpfs volume's files outlive a container's restart
//! (what a pod's `emptyDir: {medium: Memory}` needs); they do not outlive a
//! reboot. Mounting is serialized by a lock on `opts.json`, so two
//! containers starting at once share one mount, and done on `O_PATH` fds of
//! berth's own directories.

use crate::error::{io, option, Error, Result};
use berth_sys::fs as sfs;
use berth_sys::mount::mount;
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

/// The options file in a volume's directory.
pub const OPTS_FILE: &str = "opts.json";

/// What `--opt` gave, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalOpts {
    /// The filesystem type (`tmpfs`, `none` for a bind, `ext4`, …).
    pub kind: String,
    /// The source: `tmpfs`, a host path, a device.
    pub device: String,
    /// The comma-separated mount options.
    pub o: String,
}

/// mount(2) flags spelled in `o`; the rest of `o` is the filesystem's data.
const FLAGS: &[(&str, u64, bool)] = &[
    ("ro", libc::MS_RDONLY, true),
    ("rw", libc::MS_RDONLY, false),
    ("nosuid", libc::MS_NOSUID, true),
    ("suid", libc::MS_NOSUID, false),
    ("nodev", libc::MS_NODEV, true),
    ("dev", libc::MS_NODEV, false),
    ("noexec", libc::MS_NOEXEC, true),
    ("exec", libc::MS_NOEXEC, false),
    ("sync", libc::MS_SYNCHRONOUS, true),
    ("async", libc::MS_SYNCHRONOUS, false),
    ("noatime", libc::MS_NOATIME, true),
    ("atime", libc::MS_NOATIME, false),
    ("nodiratime", libc::MS_NODIRATIME, true),
    ("relatime", libc::MS_RELATIME, true),
    ("strictatime", libc::MS_STRICTATIME, true),
    ("bind", libc::MS_BIND, true),
    ("rbind", libc::MS_BIND | libc::MS_REC, true),
];

impl LocalOpts {
    /// Checks `opts` (`--opt KEY=VALUE`): None when there are none.
    pub fn parse(opts: &BTreeMap<String, String>) -> Result<Option<LocalOpts>> {
        if opts.is_empty() {
            return Ok(None);
        }
        if let Some(k) = opts
            .keys()
            .find(|k| !matches!(k.as_str(), "type" | "device" | "o"))
        {
            return Err(option(
                "--opt",
                format!("invalid option key: {k:?} (the local driver takes type, device and o)"),
            ));
        }
        let get = |k: &str| opts.get(k).cloned().unwrap_or_default();
        let kind = get("type");
        if kind.is_empty() {
            return Err(option(
                "--opt",
                "missing type: give type=tmpfs, type=none with o=bind and device=/path, or a filesystem type with its device",
            ));
        }
        if kind.contains('\0') || get("device").contains('\0') || get("o").contains('\0') {
            return Err(option("--opt", "a value holds a NUL byte"));
        }
        let o = get("o");
        let (flags, _) = split_o(&o);
        let mut device = get("device");
        if flags & libc::MS_BIND != 0 {
            if !device.starts_with('/') {
                return Err(option(
                    "--opt device",
                    format!("{device:?}: a bind volume's device is an absolute host path"),
                ));
            }
        } else if kind == "tmpfs" {
            if device.is_empty() {
                device = "tmpfs".into();
            }
        } else if kind == "none" {
            return Err(option("--opt", "type=none needs o=bind (or rbind)"));
        } else if device.is_empty() {
            return Err(option(
                "--opt device",
                format!("missing: a {kind} volume needs the device to mount"),
            ));
        }
        Ok(Some(LocalOpts { kind, device, o }))
    }

    /// As `volume inspect`'s Options shows them.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        let mut m = BTreeMap::new();
        m.insert("type".to_string(), self.kind.clone());
        m.insert("device".to_string(), self.device.clone());
        if !self.o.is_empty() {
            m.insert("o".to_string(), self.o.clone());
        }
        m
    }
}

/// `o` as mount(2) flags and the filesystem's data string.
fn split_o(o: &str) -> (u64, String) {
    let mut flags = 0u64;
    let mut data = Vec::new();
    for part in o.split(',').filter(|p| !p.is_empty()) {
        match FLAGS.iter().find(|(n, _, _)| *n == part) {
            Some((_, f, true)) => flags |= f,
            Some((_, f, false)) => flags &= !f,
            None => data.push(part),
        }
    }
    (flags, data.join(","))
}

/// Writes `opts` into the volume directory `dir` (atomically).
pub fn store(dir: &Path, opts: &LocalOpts) -> Result<()> {
    let path = dir.join(OPTS_FILE);
    let doc = serde_json::to_vec(&opts.to_map())
        .map_err(|e| Error::Runtime(format!("volume options: {e}")))?;
    sfs::write_atomic(&path, &doc, 0o600).map_err(io(format!("write {}", path.display())))
}

/// The options kept in the volume directory `dir` (None: a plain volume).
pub fn load(dir: &Path) -> Result<Option<LocalOpts>> {
    let path = dir.join(OPTS_FILE);
    let doc = match std::fs::read(&path) {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(format!("read {}", path.display()))(e)),
    };
    let map: BTreeMap<String, String> = serde_json::from_slice(&doc).map_err(|e| {
        Error::Runtime(format!(
            "{}: not the options berth wrote ({e}); remove the volume and create it again",
            path.display()
        ))
    })?;
    LocalOpts::parse(&map)
}

fn open_dir(path: &Path) -> Result<OwnedFd> {
    sfs::open(
        path,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(io(format!("open {}", path.display())))
}

/// Whether the volume `name`'s `data` (in `dir`) is a mount point.
fn mounted(name: &str, dir: &OwnedFd, data: &OwnedFd) -> Result<bool> {
    let id = |fd: &OwnedFd| {
        sfs::mount_id(fd.as_fd()).map_err(io(format!("volume {name}: read its mount")))
    };
    Ok(id(dir)? != id(data)?)
}

/// Mounts the volume in `dir` on its `_data` unless it is mounted already
/// (a no-op for a plain volume). True when its options say read-only:
/// a container's bind of it must be made read-only too (a bind mount does
/// not take the flags of the mount it binds).
pub fn ensure_mounted(name: &str, dir: &Path) -> Result<bool> {
    let Some(opts) = load(dir)? else {
        return Ok(false);
    };
    let (flags, fsdata) = split_o(&opts.o);
    let read_only = flags & libc::MS_RDONLY != 0;
    let lock = std::fs::File::open(dir.join(OPTS_FILE))
        .map_err(io(format!("volume {name}: open its options")))?;
    sfs::flock(lock.as_fd(), true, false).map_err(io(format!("volume {name}: lock it")))?;
    let dirfd = open_dir(dir)?;
    let data = open_dir(&dir.join("_data"))?;
    if mounted(name, &dirfd, &data)? {
        return Ok(read_only);
    }
    let target = berth_sys::fd_path(data.as_raw_fd());
    let cs = |s: &str| CString::new(s).map_err(|_| option("--opt", "a value holds a NUL byte"));
    let device = cs(&opts.device)?;
    let what = format!(
        "volume {name}: mount {} ({}) on its data directory",
        opts.device, opts.kind
    );
    if flags & libc::MS_BIND != 0 {
        mount(
            Some(&device),
            &target,
            None,
            flags & (libc::MS_BIND | libc::MS_REC),
            None,
        )
        .map_err(io(what.clone()))?;
        // A bind takes its other flags by a remount of the bind.
        let rest = flags & !(libc::MS_BIND | libc::MS_REC);
        if rest != 0 {
            let fresh = open_dir(&dir.join("_data"))?;
            let again = berth_sys::fd_path(fresh.as_raw_fd());
            if let Err(e) = mount(
                None,
                &again,
                None,
                libc::MS_REMOUNT | libc::MS_BIND | rest,
                None,
            ) {
                let _ = berth_sys::mount::umount2(&again, libc::MNT_DETACH);
                return Err(io(what)(e));
            }
        }
    } else {
        let kind = cs(&opts.kind)?;
        let fsdata = cs(&fsdata)?;
        mount(
            Some(&device),
            &target,
            Some(&kind),
            flags,
            (!fsdata.is_empty()).then_some(fsdata.as_c_str()),
        )
        .map_err(io(what))?;
    }
    Ok(read_only)
}

/// Unmounts whatever is mounted on the volume's `_data` in `dir` (every
/// layer of it), so its directory can be removed.
pub fn unmount(name: &str, dir: &Path) -> Result<()> {
    // Under the lock a mount is made under (a start mounting it meanwhile
    // goes first or after, never between the look and the unmount).
    let lock = std::fs::File::open(dir.join(OPTS_FILE)).ok();
    if let Some(l) = &lock {
        sfs::flock(l.as_fd(), true, false).map_err(io(format!("volume {name}: lock it")))?;
    }
    for _ in 0..64 {
        let (Ok(dirfd), Ok(data)) = (open_dir(dir), open_dir(&dir.join("_data"))) else {
            return Ok(());
        };
        if !mounted(name, &dirfd, &data)? {
            return Ok(());
        }
        berth_sys::mount::umount2(&berth_sys::fd_path(data.as_raw_fd()), libc::MNT_DETACH)
            .map_err(io(format!("volume {name}: unmount its data directory")))?;
    }
    Err(Error::Runtime(format!(
        "volume {name}: its data directory is still mounted after 64 unmounts"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn options_are_checked_as_dockers_local_driver_does() {
        assert_eq!(LocalOpts::parse(&m(&[])).unwrap(), None);
        let t = LocalOpts::parse(&m(&[("type", "tmpfs"), ("o", "size=1m,uid=5")]))
            .unwrap()
            .unwrap();
        assert_eq!(t.device, "tmpfs");
        assert_eq!(split_o(&t.o), (0, "size=1m,uid=5".into()));
        assert_eq!(
            split_o("ro,nosuid,size=1m,rw"),
            (libc::MS_NOSUID, "size=1m".into())
        );
        assert_eq!(
            split_o("rbind,ro"),
            (
                libc::MS_BIND | libc::MS_REC | libc::MS_RDONLY,
                String::new()
            )
        );
        for bad in [
            m(&[("type", "tmpfs"), ("size", "1m")]),
            m(&[("device", "tmpfs")]),
            m(&[("type", "none"), ("device", "/srv")]),
            m(&[("type", "none"), ("o", "bind"), ("device", "srv")]),
            m(&[("type", "ext4")]),
            m(&[("type", "tmpfs"), ("o", "size=1m\0")]),
        ] {
            let e = LocalOpts::parse(&bad).unwrap_err().to_string();
            assert!(e.contains("--opt"), "{bad:?}: {e}");
        }
        let b = LocalOpts::parse(&m(&[("type", "none"), ("o", "bind"), ("device", "/srv")]))
            .unwrap()
            .unwrap();
        assert_eq!(
            b.to_map(),
            m(&[("type", "none"), ("o", "bind"), ("device", "/srv")])
        );
    }

    #[test]
    fn options_round_trip_through_their_file() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path()).unwrap(), None);
        let t = LocalOpts::parse(&m(&[("type", "tmpfs"), ("o", "size=1m")]))
            .unwrap()
            .unwrap();
        store(d.path(), &t).unwrap();
        assert_eq!(load(d.path()).unwrap(), Some(t));
        std::fs::write(d.path().join(OPTS_FILE), b"[").unwrap();
        assert!(load(d.path())
            .unwrap_err()
            .to_string()
            .contains("remove the volume"));
    }
}
