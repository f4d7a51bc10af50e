//! Unpacks one layer (a tar stream) into a directory of its own, in the
//! form overlayfs takes as a lower layer: OCI whiteouts (`.wh.NAME`)
//! become 0:0 character devices, opaque markers (`.wh..wh..opq`) the
//! `trusted.overlay.opaque` xattr on their directory.
//!
//! The layer is hostile. Every name is cleaned (`..` refused, leading `/`
//! dropped); every parent is resolved with openat2(RESOLVE_IN_ROOT), so a
//! symlink the layer planted (`x -> /etc`, then `x/passwd`) resolves inside
//! the layer's root, never on the host; the final component is created
//! with O_EXCL/O_NOFOLLOW or *at() calls that do not follow it; owners,
//! modes and times are set on the fd of what was created, so a chmod never
//! follows a symlink (CVE-2021-32760, CVE-2026-33056); hard links point
//! only at entries already inside the root, through an fd; and
//! `trusted.overlay.*` xattrs from the layer are dropped (they would
//! redirect overlayfs).

use crate::error::{Error, Result};
use crate::tar::{Entry, Kind, Reader};
use berth_sys::fs::{self as sfs, Links};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// What one layer held.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub entries: u64,
    /// Bytes of file data written.
    pub bytes: u64,
}

const WH: &[u8] = b".wh.";
const OPAQUE: &[u8] = b".wh..wh..opq";

/// Unpacks the tar stream `input` into the (empty) directory `root`.
/// `layer` names the layer in errors. Returns the reader, positioned after
/// the archive's end, so the caller can drain and hash the rest.
pub fn unpack<R: Read>(root: &Path, input: R, layer: &str) -> Result<(Stats, R)> {
    let root_fd = sfs::open(root, libc::O_PATH | libc::O_DIRECTORY, 0).map_err(|e| Error::Io {
        op: format!("open layer directory {}", root.display()),
        cause: e,
    })?;
    let mut u = Unpacker {
        root: root_fd,
        layer,
        parent_cache: None,
        dirs: Vec::new(),
        buf: vec![0u8; 256 * 1024],
        stats: Stats::default(),
        warned_overlay: false,
        unchecked: 0,
        next_check: 0,
    };
    let mut reader = Reader::new(input);
    while let Some(e) = reader.next_entry()? {
        u.stats.entries += 1;
        u.unchecked += 4096; // an inode and its directory entry
        u.entry(&e, &mut reader)?;
        if u.unchecked >= u.next_check {
            u.check_space()?;
        }
    }
    u.finish()?;
    Ok((u.stats, reader.into_inner()))
}

struct Unpacker<'a> {
    root: OwnedFd,
    layer: &'a str,
    /// The last parent directory resolved: most entries share it.
    parent_cache: Option<(PathBuf, OwnedFd)>,
    /// Directories whose mtime is set at the end (creating children
    /// changes it).
    dirs: Vec<(PathBuf, (i64, u32))>,
    buf: Vec<u8>,
    stats: Stats,
    warned_overlay: bool,
    /// Bytes written since the free space was last checked, and how many
    /// may be before the next check.
    unchecked: u64,
    next_check: u64,
}

/// The free space is checked after at most this many bytes written (and
/// sooner as it nears the reserve: after half of what is left above it).
const SPACE_CHECK_EVERY: u64 = 4 << 20;

/// The free space (and inodes) a layer may not take: 5% of the store's
/// filesystem, at most 1 GiB (and 5% of its inodes), so that a layer that
/// expands beyond what the disk can take (a decompression bomb: a few MB
/// that inflate to many GB) fails with the disk still usable.
#[allow(clippy::unnecessary_cast)] // statvfs fields are narrower on some targets
fn reserve(st: &libc::statvfs) -> (u64, u64) {
    let size = st.f_blocks as u64 * st.f_frsize as u64;
    ((size / 20).min(1 << 30), st.f_files as u64 / 20)
}

/// The entry's name as a relative path of plain components.
fn clean(name: &[u8]) -> std::result::Result<PathBuf, String> {
    let mut out = PathBuf::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("a name with '..' (it would leave the layer's root)".into()),
            c => out.push(OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).chars().take(300).collect()
}

impl Unpacker<'_> {
    fn err(&self, name: &[u8], msg: impl Into<String>) -> Error {
        Error::Layer {
            layer: self.layer.to_string(),
            msg: format!("{}: {}", show(name), msg.into()),
        }
    }

    /// Fails when the store's filesystem is down to its reserve.
    #[allow(clippy::unnecessary_cast)] // statvfs fields are narrower on some targets
    fn check_space(&mut self) -> Result<()> {
        self.unchecked = 0;
        // SAFETY: a zeroed statvfs is a valid out-parameter.
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: a valid fd and a valid out-parameter.
        if unsafe { libc::fstatvfs(std::os::fd::AsRawFd::as_raw_fd(&self.root), &mut st) } != 0 {
            self.next_check = SPACE_CHECK_EVERY;
            return Ok(()); // no answer: the writes report ENOSPC themselves
        }
        let (bytes, inodes) = reserve(&st);
        let free = st.f_bavail as u64 * st.f_frsize as u64;
        self.next_check = ((free.saturating_sub(bytes)) / 2).clamp(64 << 10, SPACE_CHECK_EVERY);
        let short = if free < bytes {
            format!(
                "{} MiB free, under the {} MiB",
                free >> 20,
                bytes.div_ceil(1 << 20)
            )
        } else if st.f_files > 0 && (st.f_favail as u64) < inodes {
            format!("{} inodes free, under the {inodes}", st.f_favail)
        } else {
            return Ok(());
        };
        Err(Error::Layer {
            layer: self.layer.to_string(),
            msg: format!(
                "the image store's filesystem is down to {short} berth keeps free, after {} bytes of this layer: it expands to more than the disk can take (a decompression bomb?); free some space (berth system prune) or give the store a larger disk",
                self.stats.bytes
            ),
        })
    }

    fn io(&self, name: &[u8], op: &str) -> impl Fn(io::Error) -> Error + '_ {
        let what = format!("{}: {op}", show(name));
        move |e| Error::Layer {
            layer: self.layer.to_string(),
            msg: format!("{what}: {e}"),
        }
    }

    /// The parent directory, created (0755) where the layer did not list
    /// it, resolved inside the root. `name` and `what` are for errors.
    fn parent(&mut self, rel: &Path, name: &[u8], what: &str) -> Result<OwnedFd> {
        let hit = matches!(&self.parent_cache, Some((p, _)) if p == rel);
        if !hit {
            let fd = if rel.as_os_str().is_empty() {
                sfs::openat(
                    self.root.as_fd(),
                    Path::new("."),
                    libc::O_PATH | libc::O_DIRECTORY,
                    0,
                )
            } else {
                sfs::mkdir_all_in_root(self.root.as_fd(), rel, Links::InRoot)
            }
            .map_err(self.io(name, what))?;
            self.parent_cache = Some((rel.to_path_buf(), fd));
        }
        let fd = self
            .parent_cache
            .as_ref()
            .map(|(_, fd)| fd.as_fd())
            .expect("set above");
        fd.try_clone_to_owned()
            .map_err(self.io(name, "dup a directory fd"))
    }

    fn entry<R: Read>(&mut self, e: &Entry, data: &mut Reader<R>) -> Result<()> {
        let rel = clean(&e.path).map_err(|m| self.err(&e.path, m))?;
        let Some(name) = rel.file_name().map(|n| n.to_os_string()) else {
            // The root itself ("./"): only a directory may describe it.
            if e.kind != Kind::Dir {
                return Err(self.err(&e.path, "only a directory may stand for the layer's root"));
            }
            let fd = sfs::openat(
                self.root.as_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .map_err(self.io(&e.path, "open the layer root"))?;
            self.metadata(e, fd.as_fd(), false)?;
            self.dirs.push((PathBuf::new(), e.mtime));
            return Ok(());
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_path_buf();
        let nb = name.as_bytes();
        if let Some(target) = nb.strip_prefix(WH) {
            return self.whiteout(e, &parent_rel, nb, target);
        }
        // Whatever is at the name already (from earlier in this layer) is
        // replaced, except a directory by a directory.
        let parent = self.parent(&parent_rel, &e.path, "create its parent directory")?;
        let name = Path::new(&name);
        match sfs::openat(parent.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            Ok(old) => {
                let st = sfs::fstat(old.as_fd()).map_err(self.io(&e.path, "stat"))?;
                let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                if !(is_dir && e.kind == Kind::Dir) {
                    remove_all(parent.as_fd(), name).map_err(self.io(&e.path, "replace"))?;
                    self.parent_cache = None;
                }
            }
            Err(err) if err.raw_os_error() == Some(libc::ENOENT) => {}
            Err(err) => return Err(self.io(&e.path, "look up")(err)),
        }
        match e.kind {
            Kind::Dir => {
                match sfs::mkdirat(parent.as_fd(), name, 0o700) {
                    Err(err) if err.raw_os_error() == Some(libc::EEXIST) => {}
                    r => r.map_err(self.io(&e.path, "mkdir"))?,
                }
                let fd = sfs::openat(
                    parent.as_fd(),
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(self.io(&e.path, "open directory"))?;
                self.metadata(e, fd.as_fd(), false)?;
                self.dirs.push((rel, e.mtime));
            }
            Kind::File => {
                let fd = sfs::openat(
                    parent.as_fd(),
                    name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(self.io(&e.path, "create file"))?;
                let mut f = std::fs::File::from(fd);
                let mut left = e.size;
                while left > 0 {
                    let n = data.read_data(&mut self.buf)?;
                    f.write_all(&self.buf[..n])
                        .map_err(self.io(&e.path, "write"))?;
                    left -= n as u64;
                    self.unchecked += n as u64;
                    if self.unchecked >= self.next_check {
                        self.stats.bytes += e.size - left;
                        let r = self.check_space();
                        self.stats.bytes -= e.size - left;
                        r?;
                    }
                }
                self.stats.bytes += e.size;
                self.metadata(e, f.as_fd(), false)?;
                sfs::set_times_fd(f.as_fd(), times(e.mtime), times(e.mtime))
                    .map_err(self.io(&e.path, "set times"))?;
            }
            Kind::Symlink => {
                if e.link.is_empty() {
                    return Err(self.err(&e.path, "a symlink with an empty target"));
                }
                sfs::symlinkat(Path::new(OsStr::from_bytes(&e.link)), parent.as_fd(), name)
                    .map_err(self.io(&e.path, "symlink"))?;
                let fd = sfs::openat(parent.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                    .map_err(self.io(&e.path, "open symlink"))?;
                self.owner(e, fd.as_fd())?;
                self.xattrs(e, fd.as_fd(), true)?;
                sfs::set_times_nofollow(parent.as_fd(), name, times(e.mtime), times(e.mtime))
                    .map_err(self.io(&e.path, "set times"))?;
            }
            Kind::Hardlink => {
                let target = clean(&e.link)
                    .map_err(|m| self.err(&e.path, format!("hard link target: {m}")))?;
                if target.as_os_str().is_empty() {
                    return Err(self.err(&e.path, "a hard link to the layer's root"));
                }
                let fd = sfs::open_in_root(
                    self.root.as_fd(),
                    &target,
                    libc::O_PATH | libc::O_NOFOLLOW,
                    Links::InRoot,
                )
                .map_err(|err| {
                    self.err(
                        &e.path,
                        format!(
                            "hard link to {}, which is not in the layer ({err})",
                            show(&e.link)
                        ),
                    )
                })?;
                let st = sfs::fstat(fd.as_fd()).map_err(self.io(&e.path, "stat link target"))?;
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    return Err(self.err(&e.path, "a hard link to a directory"));
                }
                sfs::link_fd(fd.as_fd(), parent.as_fd(), name).map_err(self.io(&e.path, "link"))?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let (typ, dev) = match e.kind {
                    Kind::Char => (
                        libc::S_IFCHR,
                        sfs::makedev(e.dev_major.into(), e.dev_minor.into()),
                    ),
                    Kind::Block => (
                        libc::S_IFBLK,
                        sfs::makedev(e.dev_major.into(), e.dev_minor.into()),
                    ),
                    _ => (libc::S_IFIFO, 0),
                };
                sfs::mknodat(parent.as_fd(), name, typ | 0o600, dev)
                    .map_err(self.io(&e.path, "mknod"))?;
                let fd = sfs::openat(parent.as_fd(), name, libc::O_PATH | libc::O_NOFOLLOW, 0)
                    .map_err(self.io(&e.path, "open node"))?;
                self.metadata(e, fd.as_fd(), true)?;
                sfs::set_times_nofollow(parent.as_fd(), name, times(e.mtime), times(e.mtime))
                    .map_err(self.io(&e.path, "set times"))?;
            }
        }
        Ok(())
    }

    fn whiteout(&mut self, e: &Entry, parent_rel: &Path, full: &[u8], target: &[u8]) -> Result<()> {
        if full == OPAQUE {
            let parent = self.parent(parent_rel, &e.path, "the opaque directory")?;
            let dir = sfs::openat(
                parent.as_fd(),
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY,
                0,
            )
            .map_err(self.io(&e.path, "open the opaque directory"))?;
            sfs::set_xattr_fd(dir.as_fd(), b"trusted.overlay.opaque", b"y", false)
                .map_err(self.io(&e.path, "mark the directory opaque"))?;
            return Ok(());
        }
        if target.starts_with(WH) {
            // Other `.wh..wh.` names are aufs bookkeeping: nothing to do.
            return Ok(());
        }
        if target.is_empty() || target == b"." || target == b".." || target.contains(&b'/') {
            return Err(self.err(&e.path, "a whiteout that names no file in its directory"));
        }
        let parent = self.parent(parent_rel, &e.path, "its directory")?;
        let name = Path::new(OsStr::from_bytes(target));
        match remove_all(parent.as_fd(), name) {
            Err(err) if err.raw_os_error() != Some(libc::ENOENT) => {
                return Err(self.io(&e.path, "remove the whited-out file")(err))
            }
            _ => {}
        }
        self.parent_cache = None;
        sfs::mknodat(parent.as_fd(), name, libc::S_IFCHR, 0)
            .map_err(self.io(&e.path, "create the whiteout"))?;
        // The time the archive gives it (a layer written from this tree
        // again is the same layer).
        sfs::set_times_nofollow(parent.as_fd(), name, times(e.mtime), times(e.mtime))
            .map_err(self.io(&e.path, "set times"))?;
        Ok(())
    }

    fn owner(&self, e: &Entry, fd: BorrowedFd<'_>) -> Result<()> {
        let id = |v: u64, what: &str| {
            u32::try_from(v)
                .ok()
                .filter(|v| *v != u32::MAX)
                .ok_or_else(|| self.err(&e.path, format!("{what} {v} out of range")))
        };
        sfs::fchown_fd(fd, id(e.uid, "uid")?, id(e.gid, "gid")?).map_err(self.io(&e.path, "chown"))
    }

    /// Owner, then mode (chown clears setuid/setgid), then xattrs.
    fn metadata(&mut self, e: &Entry, fd: BorrowedFd<'_>, o_path: bool) -> Result<()> {
        self.owner(e, fd)?;
        if o_path {
            sfs::fchmod_fd(fd, e.mode).map_err(self.io(&e.path, "chmod"))?;
        } else {
            // SAFETY: a valid, open fd.
            berth_sys::cvt(unsafe { libc::fchmod(std::os::fd::AsRawFd::as_raw_fd(&fd), e.mode) })
                .map_err(self.io(&e.path, "chmod"))?;
        }
        self.xattrs(e, fd, o_path)
    }

    fn xattrs(&mut self, e: &Entry, fd: BorrowedFd<'_>, o_path: bool) -> Result<()> {
        for (k, v) in &e.xattrs {
            if k.starts_with(b"trusted.overlay.") {
                if !self.warned_overlay {
                    tracing::warn!(
                        "layer {}: {} carries {}; dropped (overlayfs xattrs are never taken from an image)",
                        self.layer,
                        show(&e.path),
                        show(k)
                    );
                    self.warned_overlay = true;
                }
                continue;
            }
            match sfs::set_xattr_fd(fd, k, v, o_path) {
                Err(err)
                    if err.raw_os_error() == Some(libc::EOPNOTSUPP) && k.starts_with(b"user.") =>
                {
                    tracing::warn!(
                        "layer {}: {}: the filesystem does not support {}; skipped",
                        self.layer,
                        show(&e.path),
                        show(k)
                    );
                }
                r => r.map_err(self.io(&e.path, &format!("set xattr {}", show(k))))?,
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        // Deepest first is not needed: a directory's mtime changes only
        // when its own entries do.
        for (rel, mtime) in std::mem::take(&mut self.dirs) {
            let fd = if rel.as_os_str().is_empty() {
                sfs::openat(
                    self.root.as_fd(),
                    Path::new("."),
                    libc::O_RDONLY | libc::O_DIRECTORY,
                    0,
                )
            } else {
                sfs::open_in_root(
                    self.root.as_fd(),
                    &rel,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    Links::Refuse,
                )
            };
            // Replaced later in the layer by something else: nothing to do.
            if let Ok(fd) = fd {
                sfs::set_times_fd(fd.as_fd(), times(mtime), times(mtime))
                    .map_err(self.io(rel.as_os_str().as_bytes(), "set times"))?;
            }
        }
        Ok(())
    }
}

fn times(t: (i64, u32)) -> (i64, i64) {
    (t.0, i64::from(t.1))
}

/// Removes `name` in `dir`, recursively for a directory, never following
/// a symlink and never crossing into another mount: a directory with
/// something mounted on it (an image layer a killed process left attached
/// in a container's directory, say) is refused, with nothing under it
/// touched, rather than emptied, which would delete what belongs to the
/// mount (the shared layer's files).
pub(crate) fn remove_all(dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    match sfs::unlinkat(dir, name, 0) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {}
        r => return r,
    }
    let sub = sfs::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
    )?;
    let (outer, inner) = (mount_id(dir)?, mount_id(sub.as_fd())?);
    if outer != inner {
        return Err(io::Error::other(format!(
            "{} is a mount point (mount {inner} on mount {outer}); not removing what is mounted there: unmount it, then remove again",
            name.display()
        )));
    }
    let path = PathBuf::from(OsStr::from_bytes(
        berth_sys::fd_path(std::os::fd::AsRawFd::as_raw_fd(&sub)).as_bytes(),
    ));
    for entry in std::fs::read_dir(&path)? {
        remove_all(sub.as_fd(), Path::new(&entry?.file_name()))?;
    }
    sfs::unlinkat(dir, name, libc::AT_REMOVEDIR)
}

/// The id of the mount `fd` is on.
pub(crate) fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    berth_sys::fs::mount_id(fd)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// A layer left attached inside a container's directory (as a process
    /// killed while mounting an idmapped root leaves it) is not emptied by
    /// the removal of that directory: the removal fails naming the mount,
    /// and the layer's files survive. Needs root (a bind mount).
    #[test]
    fn removal_never_crosses_into_a_mount() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().join("layer");
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(layer.join("etc/passwd"), "root").unwrap();
        let dir = tmp.path().join("ctr");
        let at = dir.join("idmapped/0");
        std::fs::create_dir_all(&at).unwrap();
        std::fs::write(dir.join("config"), "x").unwrap();
        let (src, dst) = (
            berth_sys::cstr(&layer).unwrap(),
            berth_sys::cstr(&at).unwrap(),
        );
        berth_sys::mount::mount(Some(&src), &dst, None, libc::MS_BIND, None)
            .expect("bind a directory (the test needs root)");
        let r = crate::remove_all(&dir);
        let _ = berth_sys::mount::umount2(&dst, libc::MNT_DETACH);
        let e = r.expect_err("a directory holding a mount was removed");
        assert!(e.to_string().contains("mount point"), "{e}");
        assert_eq!(
            std::fs::read_to_string(layer.join("etc/passwd")).unwrap(),
            "root",
            "the mounted layer's files were deleted"
        );
        assert!(Path::new(&at).is_dir());
        // Once unmounted, it goes.
        crate::remove_all(&dir).unwrap();
        assert!(!dir.exists());
    }
}
