//! `berth cp`, `berth diff` and the volume copy-up: the engine's host-side
//! work on paths a container controls.
//!
//! A running container can rename, swap (RENAME_EXCHANGE), replace with a
//! fifo or a device node, or symlink anything in its root and its volumes
//! at any moment (the CVE-2018-15664 class). So every entry is opened once,
//! relative to a directory fd, with `berth_sys::fs::open_entry` (openat2
//! with no symlink followed, `O_PATH` first, then `fstat` of that very fd;
//! only regular files and directories are reopened for reading, through
//! the fd, `O_NONBLOCK`), and only that fd is acted on: a name is never
//! resolved again after a check, a fifo or device is never opened, and
//! files are created `O_EXCL | O_NOFOLLOW` relative to a directory fd.
//!
//! A running container's paths are resolved where the container sees
//! them: from its root as `/proc/PID/root` (the pid checked to be the
//! container's by its root's inode and a pidfd), so its tmpfs mounts and
//! volumes are what cp reads and writes. The container lock is held only
//! to find that root; the copy itself runs without it, so `stop`, `kill`
//! and `rm -f` are never kept waiting (a copy into it ends once its init
//! has exited: [`Alive`]). A stopped container's root is mounted for the
//! copy; a copy out lets its lock go at once (and takes it again to
//! unmount, unless a start uses the mount by then), a copy into it keeps
//! the lock, so that no `rm` removes the tree it writes to. Its volumes and
//! bind mounts are resolved in their host directories, and its generated
//! /etc/hostname, /etc/hosts and /etc/resolv.conf are made as its next
//! start would make them.

use crate::containers::{Engine, Lock};
use crate::error::{io, Error, Result};
use crate::records::{Record, Status};
use berth_sys::fs::{self as sfs, Links};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

fn kind(st: &libc::stat) -> u32 {
    sfs::file_type(st)
}

fn clean(p: &str) -> Result<PathBuf> {
    if !p.starts_with('/') {
        return Err(crate::error::option(
            "cp",
            format!("{p:?}: container paths are absolute"),
        ));
    }
    let mut out = PathBuf::from("/");
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    Ok(out)
}

/// The container's root, mounted for the duration of an operation when the
/// container is not running.
struct Mounted<'a> {
    engine: &'a Engine,
    id: String,
    unmount: bool,
    /// The container lock was let go during the copy: taken again to
    /// unmount, and the mount is left to a start that uses it meanwhile
    /// (or to an `rm` that took it down).
    relock: bool,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if !self.unmount {
            return;
        }
        let _lock = if self.relock {
            if !matches!(self.engine.records.get(&self.id), Ok(Some(_))) {
                return;
            }
            let Ok(lock) = self.engine.lock(&self.id) else {
                return;
            };
            match self.engine.records.get(&self.id) {
                Ok(Some(r)) if !matches!(r.state.status, Status::Running | Status::Restarting) => {}
                _ => return,
            }
            Some(lock)
        } else {
            None
        };
        let _ = self
            .engine
            .host
            .unmount(&self.engine.paths.rootfs(&self.id), None);
    }
}

/// The container's file tree for one cp.
struct View<'a> {
    /// Its root: `/proc/PID/root` of a running container, else its
    /// mounted rootfs (an `O_PATH` directory fd).
    root: OwnedFd,
    /// A running container's init (a pidfd): see [`Alive`].
    init: Option<OwnedFd>,
    /// A stopped container's mount and lock, held for the copy (dropped in
    /// this order: unmounted, then unlocked).
    stopped: Option<(Mounted<'a>, Option<Lock>)>,
}

impl View<'_> {
    fn alive(&self) -> Alive<'_> {
        Alive(self.init.as_ref().map(|f| f.as_fd()))
    }
}

/// Ends a copy into a running container once its init has exited: `rm -f`
/// (which does not wait for the copy) then removes the container's
/// directories, and the copy must not write into them meanwhile.
#[derive(Clone, Copy)]
struct Alive<'a>(Option<BorrowedFd<'a>>);

impl Alive<'_> {
    fn check(self) -> Result<()> {
        match self.0 {
            Some(fd) if berth_sys::process::pidfd_wait_exit(fd, 0).unwrap_or(true) => {
                Err(Error::Conflict(
                    "the container stopped during the copy; the copy was cut short".into(),
                ))
            }
            _ => Ok(()),
        }
    }
}

/// Where a container path is looked up: a directory fd and the path in
/// it.
struct Base {
    dir: OwnedFd,
    rel: PathBuf,
}

fn open_dir_path(p: &Path) -> Result<OwnedFd> {
    sfs::open(p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(io(format!("open {}", p.display())))
}

/// The stat of `name` in `dir` without following it (`O_PATH`, never
/// opening a fifo or device).
fn stat_at(dir: BorrowedFd<'_>, name: &Path) -> std::io::Result<libc::stat> {
    let fd = sfs::openat2(
        dir,
        name,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sfs::RESOLVE_BENEATH | sfs::RESOLVE_NO_SYMLINKS | sfs::RESOLVE_NO_MAGICLINKS,
    )?;
    sfs::fstat(fd.as_fd())
}

/// Splits a root-relative path into its parent and last component (`.`
/// for the root itself).
fn split(rel: &Path) -> (PathBuf, PathBuf) {
    match (rel.parent(), rel.file_name()) {
        (Some(p), Some(n)) => (p.to_path_buf(), PathBuf::from(n)),
        _ => (PathBuf::from("."), PathBuf::from(".")),
    }
}

/// The generated files a stopped container shows at these paths.
const GENERATED: [(&str, &str); 3] = [
    ("/etc/hostname", "hostname"),
    ("/etc/hosts", "hosts"),
    ("/etc/resolv.conf", "resolv.conf"),
];

impl Engine {
    /// Finds the container's root for a cp: see the module's comment.
    fn view(&self, what: &str, write: bool) -> Result<(Record, View<'_>)> {
        let found = self.settle(self.records.find(what)?)?;
        let lock = self.lock(&found.id)?;
        let rec = self
            .records
            .get(&found.id)?
            .ok_or_else(|| Error::NoSuchContainer(what.to_string()))?;
        if matches!(rec.state.status, Status::Running | Status::Restarting) {
            let (root, init) = self.live_root(&rec)?;
            drop(lock);
            return Ok((
                rec,
                View {
                    root,
                    init: Some(init),
                    stopped: None,
                },
            ));
        }
        let mounted = crate::rootfs::is_mounted(&self.paths.rootfs(&rec.id));
        if !mounted {
            self.mount_rootfs(&rec)?;
        }
        let m = Mounted {
            engine: self,
            id: rec.id.clone(),
            unmount: !mounted,
            relock: !write,
        };
        let root = open_dir_path(&self.paths.rootfs(&rec.id))?;
        // A read lets the lock go at once (an rm meanwhile only makes it
        // fail); a write into the container's tree keeps it, so that no rm
        // removes the tree under it.
        let lock = write.then_some(lock);
        Ok((
            rec,
            View {
                root,
                init: None,
                stopped: Some((m, lock)),
            },
        ))
    }

    /// `/proc/PID/root` of a running container's init, checked to be the
    /// container's: the pid is pinned with a pidfd, the root opened is the
    /// container's mounted rootfs (same device and inode: a reused pid has
    /// another root), and the process is still alive after it was opened.
    fn live_root(&self, rec: &Record) -> Result<(OwnedFd, OwnedFd)> {
        let pid = rec.state.pid;
        let between = || {
            Error::Conflict(format!(
                "{}: the container has no running process at the moment (restarting or stopping); try again",
                rec.name
            ))
        };
        if pid <= 0 {
            return Err(between());
        }
        let pidfd = berth_sys::process::pidfd_open(pid).map_err(|_| between())?;
        let root = sfs::open(
            Path::new(&format!("/proc/{pid}/root")),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
        )
        .map_err(|_| between())?;
        let got = sfs::fstat(root.as_fd()).map_err(io(format!("stat /proc/{pid}/root")))?;
        let rootfs = self.paths.rootfs(&rec.id);
        let want = sfs::fstat(open_dir_path(&rootfs)?.as_fd())
            .map_err(io(format!("stat {}", rootfs.display())))?;
        if (got.st_dev, got.st_ino) != (want.st_dev, want.st_ino) {
            return Err(Error::Conflict(format!(
                "{}: process {pid} does not have the container's root (it changed its root, or the pid is another process's now); refused",
                rec.name
            )));
        }
        if berth_sys::process::pidfd_wait_exit(pidfd.as_fd(), 0)
            .map_err(io(format!("poll the pidfd of process {pid}")))?
        {
            return Err(between());
        }
        Ok((root, pidfd))
    }

    /// Where `path` is for a cp: in a running container, its own root (it
    /// sees its mounts); in a stopped one, the host directory of the volume
    /// or bind mount the path is under, else the rootfs.
    fn base_for(&self, rec: &Record, view: &View<'_>, path: &Path) -> Result<Base> {
        let in_root = || -> Result<Base> {
            Ok(Base {
                dir: view.root.try_clone().map_err(io("duplicate the root fd"))?,
                rel: sfs::relative(path),
            })
        };
        if view.stopped.is_none() {
            return in_root();
        }
        let mut best: Option<(usize, PathBuf, PathBuf)> = None;
        for m in self.mounts(rec) {
            if m.kind == "tmpfs" {
                continue;
            }
            let (source, d) = (m.source, Path::new(&m.destination));
            if let Ok(rest) = path.strip_prefix(d) {
                let depth = d.components().count();
                if best.as_ref().is_none_or(|b| depth > b.0) {
                    best = Some((depth, PathBuf::from(source), rest.to_path_buf()));
                }
            }
        }
        match best {
            Some((_, dir, rel)) => Ok(Base {
                dir: open_dir_path(&dir)?,
                rel: sfs::relative(&rel),
            }),
            None => in_root(),
        }
    }

    /// Opens the container path `src` for reading, as [`sfs::open_entry`]
    /// does (the last component never followed).
    fn open_source(
        &self,
        rec: &Record,
        view: &View<'_>,
        src: &Path,
    ) -> Result<(OwnedFd, libc::stat)> {
        let shown = || format!("{}: {} in the container", rec.name, src.display());
        if view.stopped.is_some() {
            if let Some(fd) = self.generated(rec, src)? {
                let st = sfs::fstat(fd.as_fd()).map_err(io(shown()))?;
                return Ok((fd, st));
            }
        }
        let base = self.base_for(rec, view, src)?;
        let (parent_rel, name) = split(&base.rel);
        if name == Path::new(".") {
            let fd = sfs::reopen(base.dir.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)
                .map_err(io(shown()))?;
            let st = sfs::fstat(fd.as_fd()).map_err(io(shown()))?;
            return Ok((fd, st));
        }
        let parent = sfs::open_in_root(
            base.dir.as_fd(),
            &parent_rel,
            libc::O_PATH | libc::O_DIRECTORY,
            Links::InRoot,
        )
        .map_err(io(shown()))?;
        sfs::open_entry(parent.as_fd(), &name).map_err(io(shown()))
    }

    /// A stopped container's /etc/hostname, /etc/hosts or /etc/resolv.conf
    /// as its next start writes them (an in-memory file), unless a mount
    /// of the user's covers the path.
    fn generated(&self, rec: &Record, src: &Path) -> Result<Option<OwnedFd>> {
        let Some((_, name)) = GENERATED.iter().find(|(p, _)| Path::new(p) == src) else {
            return Ok(None);
        };
        if self
            .mounts(rec)
            .iter()
            .any(|m| Path::new(&m.destination) == src)
        {
            return Ok(None);
        }
        let text = self.etc_file_text(rec, name)?;
        let fd = sfs::memfd_with(c"berth-etc", text.as_bytes(), 0o644).map_err(io(format!(
            "{}: make {}",
            rec.name,
            src.display()
        )))?;
        Ok(Some(fd))
    }

    /// `berth cp CONTAINER:SRC DEST`.
    pub fn copy_out(&self, what: &str, src: &str, dest: &Path) -> Result<()> {
        let (rec, view) = self.view(what, false)?;
        let src = clean(src)?;
        let (fd, st) = self.open_source(&rec, &view, &src)?;
        let target = match std::fs::metadata(dest) {
            Ok(m) if m.is_dir() => {
                let n = src
                    .file_name()
                    .map_or_else(|| PathBuf::from("root"), PathBuf::from);
                dest.join(n)
            }
            Ok(_) if kind(&st) == libc::S_IFDIR => {
                return Err(Error::Conflict(format!(
                    "{}: cannot copy the directory {} over the file {}",
                    rec.name,
                    src.display(),
                    dest.display()
                )))
            }
            _ => dest.to_path_buf(),
        };
        let (tdir, tname) = match (target.parent(), target.file_name()) {
            (Some(p), Some(n)) => (
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                },
                PathBuf::from(n),
            ),
            _ => {
                return Err(crate::error::option(
                    "cp",
                    format!("{}: name the file or directory to copy to", dest.display()),
                ))
            }
        };
        let tdir = open_dir_path(tdir)?;
        copy_tree(fd, &st, tdir.as_fd(), &tname, Overwrite::Replace, &target)
    }

    /// `berth cp SRC CONTAINER:DEST`. `archive` keeps the files' owners
    /// (otherwise the container's root owns them, as in Docker).
    pub fn copy_in(&self, what: &str, src: &Path, dest: &str, archive: bool) -> Result<()> {
        let (rec, view) = self.view(what, true)?;
        let dest = clean(dest)?;
        let meta = std::fs::symlink_metadata(src).map_err(io(format!("{}", src.display())))?;
        let base = self.base_for(&rec, &view, &dest)?;
        let root = base.dir;
        // DEST an existing directory: copy into it; else DEST names the copy.
        let into = sfs::open_in_root(
            root.as_fd(),
            &base.rel,
            libc::O_PATH | libc::O_DIRECTORY,
            Links::InRoot,
        );
        let (dir, name) = match into {
            Ok(d) => (
                d,
                src.file_name()
                    .map_or_else(|| PathBuf::from("."), PathBuf::from),
            ),
            Err(_) => {
                let parent = base.rel.parent().unwrap_or(Path::new("."));
                let d = sfs::open_in_root(
                    root.as_fd(),
                    parent,
                    libc::O_PATH | libc::O_DIRECTORY,
                    Links::InRoot,
                )
                .map_err(io(format!(
                    "{}: the directory of {} in the container",
                    rec.name,
                    dest.display()
                )))?;
                let n = base
                    .rel
                    .file_name()
                    .map_or_else(|| PathBuf::from("."), PathBuf::from);
                (d, n)
            }
        };
        if name == Path::new(".") {
            if !meta.is_dir() {
                return Err(Error::Conflict(format!(
                    "{}: cannot copy the file {} over a directory",
                    rec.name,
                    src.display()
                )));
            }
            // SRC/. into DEST: the contents.
            return copy_dir_contents_in(src, dir.as_fd(), archive, view.alive());
        }
        copy_in_entry(src, &meta, dir.as_fd(), &name, archive, view.alive())
    }

    /// `berth cp CONTAINER:SRC -`: SRC as a tar stream on `out`, named by
    /// its last component (its contents under `.` for the root). Read as
    /// `copy_out` reads, through fds, never following a link.
    pub fn copy_out_tar(&self, what: &str, src: &str, out: &mut dyn Write) -> Result<()> {
        let (rec, view) = self.view(what, false)?;
        let src = clean(src)?;
        let (fd, st) = self.open_source(&rec, &view, &src)?;
        let arc = src
            .file_name()
            .map_or_else(|| b".".to_vec(), |n| n.as_bytes().to_vec());
        let mut w = berth_image::tar::Writer::new(out);
        let mut links = std::collections::HashMap::new();
        tar_out_entry(&mut w, fd, &st, arc, &mut links)?;
        w.finish().map_err(io("write the tar stream"))?;
        Ok(())
    }

    /// `berth cp - CONTAINER:DEST`: extracts the tar stream `input` into
    /// the directory DEST. The stream is hostile: names with `..` are
    /// refused, every parent is resolved in the container's root
    /// (RESOLVE_IN_ROOT), what is created is never followed, hard links
    /// point only into the container, and device nodes are refused.
    /// `archive` keeps the archive's owners (else the container's root).
    pub fn copy_in_tar(
        &self,
        what: &str,
        input: &mut dyn std::io::Read,
        dest: &str,
        archive: bool,
    ) -> Result<()> {
        let (rec, view) = self.view(what, true)?;
        let dest = clean(dest)?;
        let base = self.base_for(&rec, &view, &dest)?;
        let root = base.dir;
        sfs::open_in_root(
            root.as_fd(),
            &base.rel,
            libc::O_PATH | libc::O_DIRECTORY,
            Links::InRoot,
        )
        .map_err(|e| {
            crate::error::option(
                "cp",
                format!(
                    "{}:{}: from a tar stream (-) the destination must be an existing directory ({e})",
                    rec.name,
                    dest.display()
                ),
            )
        })?;
        let mut x = Extract {
            root: root.as_fd(),
            base: &base.rel,
            archive,
            dirs: Vec::new(),
        };
        let mut r = berth_image::tar::Reader::new(input);
        while let Some(e) = r.next_entry().map_err(|e| tar_err(&rec.name, e))? {
            view.alive().check()?;
            x.entry(&e, &mut r)
                .map_err(|err| tar_entry_err(&rec.name, &e.path, err))?;
        }
        x.finish();
        Ok(())
    }

    /// `berth diff`: what the container changed in its image: (kind, path)
    /// with kind A (added), C (changed) or D (deleted). The upper directory
    /// is walked by fd (the container changes it meanwhile).
    pub fn diff(&self, what: &str) -> Result<Vec<(char, String)>> {
        let rec = self.get(what)?;
        // Top first, as overlay reads them.
        let mut layers = self.layer_dirs(&rec)?;
        layers.reverse();
        let upper = self.paths.container(&rec.id).join("upper");
        let mut out = Vec::new();
        match sfs::open(
            &upper,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        ) {
            Ok(d) => walk_upper(d.as_fd(), Path::new("/"), &layers, &mut out)?,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io(format!("open {}", upper.display()))(e)),
        }
        // Mount points the runtime made (/proc, /etc/hosts, volumes...) are
        // not the container's changes (Docker keeps them in an init layer).
        let mut points: Vec<String> = [
            "/proc",
            "/dev",
            "/sys",
            "/etc/hostname",
            "/etc/hosts",
            "/etc/resolv.conf",
            crate::spec::INIT_PATH,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        points.extend(self.mounts(&rec).into_iter().map(|m| m.destination));
        let under = |p: &str, m: &str| p == m || p.starts_with(&format!("{m}/"));
        out.retain(|(k, p)| !(*k == 'A' && points.iter().any(|m| under(p, m))));
        // A directory left "changed" only because a mount point was made in
        // it goes too.
        let snapshot = out.clone();
        out.retain(|(k, p)| {
            let dir = format!("{p}/");
            *k != 'C'
                || !points.iter().any(|m| m.starts_with(&dir))
                || snapshot.iter().any(|(_, q)| q.starts_with(&dir))
        });
        Ok(out)
    }
}

/// Whether `path` exists in the image (layers top first), honouring
/// whiteouts.
fn in_image(layers: &[PathBuf], path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let rel = path.strip_prefix("/").unwrap_or(path);
    for l in layers {
        match std::fs::symlink_metadata(l.join(rel)) {
            Ok(m) => {
                use std::os::unix::fs::FileTypeExt;
                return !(m.file_type().is_char_device() && m.rdev() == 0);
            }
            Err(_) => continue,
        }
    }
    false
}

/// Lists the upper directory `dir` (shown as `at`) by fd: each entry is
/// stat'ed relative to its directory's fd without following it, and a
/// directory is listed through an fd opened with no symlink followed, so a
/// symlink swapped in meanwhile is never followed out (its listing is then
/// skipped).
fn walk_upper(
    dir: BorrowedFd<'_>,
    at: &Path,
    layers: &[PathBuf],
    out: &mut Vec<(char, String)>,
) -> Result<()> {
    let names =
        sfs::read_dir_fd(dir).map_err(io(format!("list {} of the upper layer", at.display())))?;
    for n in names {
        let p = at.join(&n);
        let st = match sfs::stat_entry(dir, Path::new(&n)) {
            Ok(st) => st,
            // Removed meanwhile by the running container.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(io(format!("stat {} of the upper layer", p.display()))(e)),
        };
        let shown = p.to_string_lossy().into_owned();
        if kind(&st) == libc::S_IFCHR && st.st_rdev == 0 {
            out.push(('D', shown));
            continue;
        }
        let existed = in_image(layers, &p);
        out.push((if existed { 'C' } else { 'A' }, shown));
        if kind(&st) == libc::S_IFDIR {
            match sfs::open_dir_entry(dir, Path::new(&n)) {
                Ok(d) => walk_upper(d.as_fd(), &p, layers, out)?,
                // Swapped or removed meanwhile: not listed.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ENOENT | libc::ELOOP | libc::ENOTDIR)
                    ) => {}
                Err(e) => return Err(io(format!("open {} of the upper layer", p.display()))(e)),
            }
        }
    }
    Ok(())
}

/// What [`copy_tree`] does with what is already at the destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overwrite {
    /// `cp`: a file, symlink or the like is replaced; a directory is
    /// merged into; a directory over a non-directory (or the reverse) is
    /// refused, as Docker refuses it.
    Replace,
    /// The volume copy-up: nothing is replaced; something planted at a
    /// name (by another container sharing the volume) fails the copy.
    Never,
}

/// Copies the entry `src` (opened by [`sfs::open_entry`], stat `st`) to
/// `name` in the directory `dst`, a directory's contents below it, each
/// opened the same way and created relative to its directory's fd with
/// `O_EXCL | O_NOFOLLOW`. Owners, modes and times are kept. Fifos, devices
/// and sockets are skipped (a copy of them would carry no content).
/// `shown` names the destination in errors.
fn copy_tree(
    src: OwnedFd,
    st: &libc::stat,
    dst: BorrowedFd<'_>,
    name: &Path,
    ow: Overwrite,
    shown: &Path,
) -> Result<()> {
    // A copy out to the host (Replace) never makes a setuid or setgid
    // file: its content is the container's, and with its owner kept (root,
    // without a user namespace) it would hand any local user root. Only the
    // volume copy-up (the image's own files, seen by containers only)
    // keeps them.
    let perm = if ow == Overwrite::Replace && kind(st) == libc::S_IFREG {
        st.st_mode & 0o1777
    } else {
        st.st_mode & 0o7777
    };
    let is_dir = kind(st) == libc::S_IFDIR;
    if matches!(kind(st), libc::S_IFREG | libc::S_IFDIR | libc::S_IFLNK) && ow == Overwrite::Replace
    {
        match stat_at(dst, name) {
            Ok(have) if kind(&have) == libc::S_IFDIR => {
                if !is_dir {
                    return Err(Error::Conflict(format!(
                        "cannot copy {} over the directory {}",
                        sfs::type_name(st),
                        shown.display()
                    )));
                }
            }
            Ok(_) if is_dir => {
                return Err(Error::Conflict(format!(
                    "{} exists and is not a directory; a directory is not copied over it",
                    shown.display()
                )))
            }
            Ok(_) => {
                sfs::unlinkat(dst, name, 0).map_err(io(format!("replace {}", shown.display())))?
            }
            Err(_) => {}
        }
    }
    match kind(st) {
        libc::S_IFREG => {
            let mut out = sfs::create_file_at(dst, name, 0o600)
                .map_err(io(format!("create {}", shown.display())))?;
            // At most the size it had when opened: a file the container
            // keeps writing to must not make the copy endless.
            let size = u64::try_from(st.st_size).unwrap_or(0);
            let mut input = std::io::Read::take(std::fs::File::from(src), size);
            std::io::copy(&mut input, &mut out)
                .map_err(io(format!("copy to {}", shown.display())))?;
            let _ = sfs::fchown_fd(out.as_fd(), st.st_uid, st.st_gid);
            let _ = sfs::fchmod(out.as_fd(), perm);
            let _ = sfs::set_times_fd(
                out.as_fd(),
                (st.st_atime, st.st_atime_nsec),
                (st.st_mtime, st.st_mtime_nsec),
            );
        }
        libc::S_IFDIR => {
            let d = sfs::mkdir_open_at(dst, name, 0o700)
                .map_err(io(format!("create the directory {}", shown.display())))?;
            let names = sfs::read_dir_fd(src.as_fd())
                .map_err(io(format!("list the source of {}", shown.display())))?;
            for n in names {
                let n = PathBuf::from(n);
                let child = shown.join(&n);
                let (cfd, cst) = match sfs::open_entry(src.as_fd(), &n) {
                    Ok(x) => x,
                    // Removed meanwhile by the running container.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => return Err(io(format!("open the source of {}", child.display()))(e)),
                };
                copy_tree(cfd, &cst, d.as_fd(), &n, ow, &child)?;
            }
            let _ = sfs::fchown_fd(d.as_fd(), st.st_uid, st.st_gid);
            let _ = sfs::fchmod(d.as_fd(), perm);
        }
        libc::S_IFLNK => {
            let link = sfs::readlink_fd(src.as_fd())
                .map_err(io(format!("readlink the source of {}", shown.display())))?;
            sfs::symlinkat(&link, dst, name).map_err(io(format!("create {}", shown.display())))?;
            chown_link(dst, name, st.st_uid, st.st_gid);
        }
        _ => {}
    }
    Ok(())
}

/// Sets the owner of the symlink `name` in `dir` (never what it points
/// at).
fn chown_link(dir: BorrowedFd<'_>, name: &Path, uid: u32, gid: u32) {
    let Ok(c) = berth_sys::cstr(name) else {
        return;
    };
    // SAFETY: a valid dir fd and C string; AT_SYMLINK_NOFOLLOW acts on the
    // link itself.
    unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            c.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
}

fn owner(meta: &std::fs::Metadata, archive: bool) -> (u32, u32) {
    use std::os::unix::fs::MetadataExt;
    if archive {
        (meta.uid(), meta.gid())
    } else {
        (0, 0)
    }
}

/// Removes `name` in `dir` unless it is a directory (never following it);
/// whether a directory is there.
fn clear_non_dir(dir: BorrowedFd<'_>, name: &Path) -> Result<bool> {
    match stat_at(dir, name) {
        Ok(st) if kind(&st) == libc::S_IFDIR => Ok(true),
        Ok(_) => {
            sfs::unlinkat(dir, name, 0).map_err(io(format!("replace {}", name.display())))?;
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

/// Refuses a non-directory at `name` in `dir` where a directory is to be
/// copied (Docker: "cannot overwrite non-directory with directory").
fn no_non_dir(dir: BorrowedFd<'_>, name: &Path) -> Result<()> {
    match stat_at(dir, name) {
        Ok(st) if kind(&st) != libc::S_IFDIR => Err(Error::Conflict(format!(
            "{} is {} in the container; a directory is not copied over it",
            name.display(),
            sfs::type_name(&st)
        ))),
        _ => Ok(()),
    }
}

fn copy_in_entry(
    src: &Path,
    meta: &std::fs::Metadata,
    dir: BorrowedFd<'_>,
    name: &Path,
    archive: bool,
    alive: Alive<'_>,
) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    alive.check()?;
    let (uid, gid) = owner(meta, archive);
    let perm = meta.mode() & 0o7777;
    let ft = meta.file_type();
    if ft.is_dir() {
        no_non_dir(dir, name)?;
        // What is there now must be the directory itself (never a link).
        let d = sfs::mkdir_open_at(dir, name, 0o700)
            .map_err(io(format!("create {} in the container", name.display())))?;
        copy_dir_contents_in(src, d.as_fd(), archive, alive)?;
        let _ = sfs::fchown_fd(d.as_fd(), uid, gid);
        let _ = sfs::fchmod(d.as_fd(), perm);
    } else if ft.is_file() {
        if clear_non_dir(dir, name)? {
            return Err(Error::Conflict(format!(
                "cannot copy the file {} over the directory {}",
                src.display(),
                name.display()
            )));
        }
        let mut dst = sfs::create_file_at(dir, name, 0o600)
            .map_err(io(format!("create {} in the container", name.display())))?;
        let mut s = std::fs::File::open(src).map_err(io(format!("open {}", src.display())))?;
        std::io::copy(&mut s, &mut dst).map_err(io(format!("copy {}", src.display())))?;
        let _ = sfs::fchown_fd(dst.as_fd(), uid, gid);
        let _ = sfs::fchmod(dst.as_fd(), perm);
    } else if ft.is_symlink() {
        if clear_non_dir(dir, name)? {
            return Err(Error::Conflict(format!(
                "cannot copy the symlink {} over the directory {}",
                src.display(),
                name.display()
            )));
        }
        let target = std::fs::read_link(src).map_err(io(format!("readlink {}", src.display())))?;
        sfs::symlinkat(&target, dir, name).map_err(io(format!("create {}", name.display())))?;
        chown_link(dir, name, uid, gid);
    }
    Ok(())
}

fn copy_dir_contents_in(
    src: &Path,
    dir: BorrowedFd<'_>,
    archive: bool,
    alive: Alive<'_>,
) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(src)
        .map_err(io(format!("read {}", src.display())))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let m = p
            .symlink_metadata()
            .map_err(io(format!("stat {}", p.display())))?;
        let name = PathBuf::from(e.file_name());
        if name.as_os_str().as_bytes().contains(&b'/') {
            continue;
        }
        copy_in_entry(&p, &m, dir, &name, archive, alive)?;
    }
    Ok(())
}

/// Docker's volume copy-up: a volume that is still empty when a container
/// first mounts it at a path the image has content at gets that content
/// (owners and modes kept). Read from the root as `cp` reads; written
/// relative to the volume's directory fd, each entry created `O_EXCL |
/// O_NOFOLLOW`: another container sharing the volume may plant symlinks
/// in it meanwhile, and a planted name fails the copy rather than be
/// followed. See [`copy_up_with`] for how a failed or killed copy is
/// retried.
pub(crate) fn copy_up(rootfs: &Path, dest: &str, volume_data: &Path) -> Result<()> {
    copy_up_with(rootfs, dest, volume_data, None)
}

/// The directory in a volume a copy-up is made in.
const COPY_UP_STAGING: &str = ".berth-copy-up";
/// [`COPY_UP_STAGING`] once complete, its entries being moved into place.
const COPY_UP_DONE: &str = ".berth-copy-up.done";

/// What [`copy_up_with`] does to a complete copy before it is put in place.
pub(crate) type FixCopy<'a> = dyn Fn(BorrowedFd<'_>) -> std::io::Result<()> + 'a;

/// [`copy_up`], `fix` then given the copy's directory (the volume's own
/// owner and mode, and everything below) before it is put in place. The
/// copy is made in [`COPY_UP_STAGING`] inside the volume directory, which
/// is renamed [`COPY_UP_DONE`] when complete, whose entries are then
/// renamed into the volume: an error or a kill at any point leaves either
/// an unfinished staging directory, removed by the next copy-up, which
/// copies again, or a complete one, whose moving into place the next
/// copy-up finishes; never a volume that looks filled and is not.
pub(crate) fn copy_up_with(
    rootfs: &Path,
    dest: &str,
    volume_data: &Path,
    fix: Option<&FixCopy<'_>>,
) -> Result<()> {
    let what = format!("the volume directory {}", volume_data.display());
    let vol = sfs::open(
        volume_data,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(io(format!("open {what}")))?;
    let (staging, done) = (Path::new(COPY_UP_STAGING), Path::new(COPY_UP_DONE));
    let names = sfs::read_dir_fd(vol.as_fd()).map_err(io(format!("list {what}")))?;
    if names.iter().any(|n| n == COPY_UP_DONE) {
        return put_in_place(vol.as_fd(), &what);
    }
    if names.iter().any(|n| n == COPY_UP_STAGING) {
        remove_tree_at(vol.as_fd(), staging).map_err(io(format!(
            "remove the unfinished copy-up {COPY_UP_STAGING} in {what}"
        )))?;
    }
    if names.iter().any(|n| n != COPY_UP_STAGING) {
        return Ok(());
    }
    let root = open_dir_path(rootfs)?;
    let Ok(dir) = sfs::open_dir_in_root(root.as_fd(), Path::new(dest), Links::InRoot) else {
        // Nothing at that path in the image (or not a directory).
        return Ok(());
    };
    let st = sfs::fstat(dir.as_fd()).map_err(io(format!("stat {dest} in the image")))?;
    let names = sfs::read_dir_fd(dir.as_fd()).map_err(io(format!("list {dest} in the image")))?;
    let copy = || -> Result<()> {
        let to = sfs::mkdir_open_at(vol.as_fd(), staging, 0o700)
            .map_err(io(format!("create {COPY_UP_STAGING} in {what}")))?;
        for n in names {
            let n = PathBuf::from(n);
            let shown = Path::new(dest).join(&n);
            let (cfd, cst) = sfs::open_entry(dir.as_fd(), &n)
                .map_err(io(format!("open {} in the image", shown.display())))?;
            copy_tree(cfd, &cst, to.as_fd(), &n, Overwrite::Never, &shown)?;
        }
        let _ = sfs::fchown_fd(to.as_fd(), st.st_uid, st.st_gid);
        let _ = sfs::fchmod(to.as_fd(), st.st_mode & 0o7777);
        if let Some(fix) = fix {
            fix(to.as_fd()).map_err(io(format!("adjust the copy in {what}")))?;
        }
        rename_noreplace(vol.as_fd(), staging, vol.as_fd(), done)
            .map_err(io(format!("complete the copy-up in {what}")))
    };
    if let Err(e) = copy() {
        let _ = remove_tree_at(vol.as_fd(), staging);
        return Err(Error::Runtime(format!(
            "copy the image's {dest} into the new volume {}: {e} (did another container write to the volume meanwhile?)",
            volume_data.display()
        )));
    }
    put_in_place(vol.as_fd(), &what)
}

/// Moves a complete copy-up ([`COPY_UP_DONE`] in `vol`) into the volume:
/// its entries, then its owner and mode onto the volume's directory.
fn put_in_place(vol: BorrowedFd<'_>, what: &str) -> Result<()> {
    let done = Path::new(COPY_UP_DONE);
    let d = sfs::openat(
        vol,
        done,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(io(format!("open {COPY_UP_DONE} in {what}")))?;
    for n in sfs::read_dir_fd(d.as_fd()).map_err(io(format!("list {COPY_UP_DONE} in {what}")))? {
        let n = PathBuf::from(n);
        rename_noreplace(d.as_fd(), &n, vol, &n).map_err(io(format!(
            "move {} of the copy-up into {what}",
            n.display()
        )))?;
    }
    let st = sfs::fstat(d.as_fd()).map_err(io(format!("stat {COPY_UP_DONE} in {what}")))?;
    let _ = sfs::fchown_fd(vol, st.st_uid, st.st_gid);
    let _ = sfs::fchmod(vol, st.st_mode & 0o7777);
    sfs::unlinkat(vol, done, libc::AT_REMOVEDIR)
        .map_err(io(format!("remove the emptied {COPY_UP_DONE} in {what}")))
}

/// renameat2 `RENAME_NOREPLACE`, relative to directory fds.
fn rename_noreplace(
    from_dir: BorrowedFd<'_>,
    from: &Path,
    to_dir: BorrowedFd<'_>,
    to: &Path,
) -> std::io::Result<()> {
    let (f, t) = (berth_sys::cstr(from)?, berth_sys::cstr(to)?);
    // SAFETY: two valid directory fds and NUL-terminated names.
    berth_sys::cvt(unsafe {
        libc::renameat2(
            from_dir.as_raw_fd(),
            f.as_ptr(),
            to_dir.as_raw_fd(),
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    })
    .map(drop)
}

/// Removes `name` in `dir`, a directory's contents first, by fd and never
/// through a symlink.
fn remove_tree_at(dir: BorrowedFd<'_>, name: &Path) -> std::io::Result<()> {
    match sfs::unlinkat(dir, name, 0) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::EISDIR) | Some(libc::EPERM)) => {}
        r => return r,
    }
    let sub = sfs::openat(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )?;
    for n in sfs::read_dir_fd(sub.as_fd())? {
        remove_tree_at(sub.as_fd(), Path::new(&n))?;
    }
    sfs::unlinkat(dir, name, libc::AT_REMOVEDIR)
}

fn tar_err(name: &str, e: berth_image::error::Error) -> Error {
    Error::Runtime(format!("{name}: cp from a tar stream: {e}"))
}

fn tar_entry_err(name: &str, path: &[u8], e: Error) -> Error {
    Error::Runtime(format!(
        "{name}: cp from a tar stream: {}: {e}",
        String::from_utf8_lossy(path)
    ))
}

/// Writes one entry (opened by [`sfs::open_entry`] as `fd`, stat `st`) as
/// `arc` in the archive, and a directory's contents under it, each opened
/// the same way. Files with more than one link become hard links to the
/// first path they were written as.
fn tar_out_entry(
    w: &mut berth_image::tar::Writer<&mut dyn Write>,
    fd: OwnedFd,
    st: &libc::stat,
    arc: Vec<u8>,
    links: &mut std::collections::HashMap<(u64, u64), Vec<u8>>,
) -> Result<()> {
    use berth_image::tar::{Entry, Kind};
    let shown = || String::from_utf8_lossy(&arc).into_owned();
    let mut e = Entry {
        path: arc.clone(),
        kind: Kind::File,
        mode: st.st_mode & 0o7777,
        uid: u64::from(st.st_uid),
        gid: u64::from(st.st_gid),
        size: 0,
        mtime: (st.st_mtime, 0),
        link: Vec::new(),
        dev_major: 0,
        dev_minor: 0,
        xattrs: Vec::new(),
    };
    let write = |w: &mut berth_image::tar::Writer<&mut dyn Write>,
                 e: &Entry,
                 data: &mut dyn std::io::Read| {
        w.append(e, data)
            .map_err(io(format!("write {} to the tar stream", shown())))
    };
    match kind(st) {
        libc::S_IFREG => {
            if st.st_nlink > 1 {
                let key = (st.st_dev, st.st_ino);
                if let Some(first) = links.get(&key) {
                    e.kind = Kind::Hardlink;
                    e.link = first.clone();
                    return write(w, &e, &mut std::io::empty());
                }
                links.insert(key, arc.clone());
            }
            e.size = st.st_size as u64;
            write(w, &e, &mut std::fs::File::from(fd))?;
        }
        libc::S_IFDIR => {
            e.kind = Kind::Dir;
            write(w, &e, &mut std::io::empty())?;
            for n in sfs::read_dir_fd(fd.as_fd()).map_err(io(format!("list {}", shown())))? {
                let n = PathBuf::from(n);
                let mut child = arc.clone();
                child.push(b'/');
                child.extend_from_slice(n.as_os_str().as_bytes());
                let (cfd, cst) = match sfs::open_entry(fd.as_fd(), &n) {
                    Ok(x) => x,
                    // Removed meanwhile by the running container.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                    Err(e) => {
                        return Err(io(format!("open {}", String::from_utf8_lossy(&child)))(e))
                    }
                };
                tar_out_entry(w, cfd, &cst, child, links)?;
            }
        }
        libc::S_IFLNK => {
            e.kind = Kind::Symlink;
            e.link = sfs::readlink_fd(fd.as_fd())
                .map_err(io(format!("readlink {}", shown())))?
                .into_os_string()
                .into_vec();
            write(w, &e, &mut std::io::empty())?;
        }
        libc::S_IFCHR | libc::S_IFBLK => {
            e.kind = if kind(st) == libc::S_IFCHR {
                Kind::Char
            } else {
                Kind::Block
            };
            e.dev_major = libc::major(st.st_rdev);
            e.dev_minor = libc::minor(st.st_rdev);
            write(w, &e, &mut std::io::empty())?;
        }
        libc::S_IFIFO => {
            e.kind = Kind::Fifo;
            write(w, &e, &mut std::io::empty())?;
        }
        // Sockets have no place in an archive (tar skips them too).
        _ => {}
    }
    Ok(())
}

/// Extraction of a `cp -` stream under `base` in the container's `root`.
struct Extract<'a> {
    root: BorrowedFd<'a>,
    base: &'a Path,
    archive: bool,
    /// Directories whose time is set at the end (their entries change it).
    dirs: Vec<(OwnedFd, i64)>,
}

impl Extract<'_> {
    fn entry<R: std::io::Read>(
        &mut self,
        e: &berth_image::tar::Entry,
        r: &mut berth_image::tar::Reader<R>,
    ) -> Result<()> {
        use berth_image::tar::Kind;
        let rel = tar_name(&e.path)?;
        let (uid, gid) = if self.archive {
            (
                u32::try_from(e.uid).unwrap_or(u32::MAX),
                u32::try_from(e.gid).unwrap_or(u32::MAX),
            )
        } else {
            (0, 0)
        };
        let Some(name) = rel.file_name().map(PathBuf::from) else {
            // "./": the destination itself, which stays as it is.
            if e.kind == Kind::Dir {
                return Ok(());
            }
            return Err(Error::Conflict(
                "only a directory may name the destination itself".into(),
            ));
        };
        let parent_rel = self.base.join(rel.parent().unwrap_or(Path::new("")));
        let dir = sfs::mkdir_all_in_root(self.root, &parent_rel, Links::InRoot)
            .map_err(io("create its directory in the container"))?;
        let dir = dir.as_fd();
        let not_over_dir = |what: &str| {
            Error::Conflict(format!(
                "cannot write the {what} over a directory of the container"
            ))
        };
        match e.kind {
            Kind::Dir => {
                no_non_dir(dir, &name)?;
                let d =
                    sfs::mkdir_open_at(dir, &name, 0o700).map_err(io("create the directory"))?;
                let _ = sfs::fchown_fd(d.as_fd(), uid, gid);
                let _ = sfs::fchmod(d.as_fd(), e.mode);
                self.dirs.push((d, e.mtime.0));
            }
            Kind::File => {
                if clear_non_dir(dir, &name)? {
                    return Err(not_over_dir("file"));
                }
                let mut out =
                    sfs::create_file_at(dir, &name, 0o600).map_err(io("create the file"))?;
                let mut buf = vec![0u8; 128 * 1024];
                loop {
                    let n = r
                        .read_data(&mut buf)
                        .map_err(|e| Error::Runtime(e.to_string()))?;
                    if n == 0 {
                        break;
                    }
                    out.write_all(&buf[..n]).map_err(io("write the file"))?;
                }
                let _ = sfs::fchown_fd(out.as_fd(), uid, gid);
                let _ = sfs::fchmod(out.as_fd(), e.mode);
                let _ = sfs::set_times_fd(out.as_fd(), (e.mtime.0, 0), (e.mtime.0, 0));
            }
            Kind::Symlink => {
                if clear_non_dir(dir, &name)? {
                    return Err(not_over_dir("symlink"));
                }
                sfs::symlinkat(Path::new(std::ffi::OsStr::from_bytes(&e.link)), dir, &name)
                    .map_err(io("create the symlink"))?;
                chown_link(dir, &name, uid, gid);
            }
            Kind::Hardlink => {
                let target = self.base.join(tar_name(&e.link)?);
                let fd = sfs::open_in_root(
                    self.root,
                    &target,
                    libc::O_PATH | libc::O_NOFOLLOW,
                    Links::InRoot,
                )
                .map_err(io(format!(
                    "the hard link's target {} (it must come earlier in the archive)",
                    String::from_utf8_lossy(&e.link)
                )))?;
                let st = sfs::fstat(fd.as_fd()).map_err(io("stat the hard link's target"))?;
                if kind(&st) == libc::S_IFDIR {
                    return Err(Error::Conflict("a hard link to a directory".into()));
                }
                if clear_non_dir(dir, &name)? {
                    return Err(not_over_dir("hard link"));
                }
                sfs::link_fd(fd.as_fd(), dir, &name).map_err(io("create the hard link"))?;
            }
            Kind::Fifo => {
                if clear_non_dir(dir, &name)? {
                    return Err(not_over_dir("fifo"));
                }
                sfs::mknodat(dir, &name, libc::S_IFIFO | (e.mode & 0o777), 0)
                    .map_err(io("create the fifo"))?;
            }
            Kind::Char | Kind::Block => {
                return Err(crate::error::option(
                    "cp",
                    "device nodes are not copied into containers; leave them out of the archive",
                ))
            }
        }
        Ok(())
    }

    /// Directory times, last (deepest first), as tar sets them.
    fn finish(&mut self) {
        for (d, mtime) in self.dirs.drain(..).rev() {
            let _ = sfs::set_times_fd(d.as_fd(), (mtime, 0), (mtime, 0));
        }
    }
}

/// An archive member's name as a relative path of plain components; `..`
/// is refused.
fn tar_name(name: &[u8]) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                return Err(Error::Conflict(
                    "a name with '..' (it would leave the destination)".into(),
                ))
            }
            c => out.push(std::ffi::OsStr::from_bytes(c)),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_fd(p: &Path) -> OwnedFd {
        open_dir_path(p).unwrap()
    }

    #[test]
    fn copy_up_copies_through_fds_and_skips_fifos() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/seed"), "seed").unwrap();
        std::fs::write(root.join("data/sub/inner"), "inner").unwrap();
        std::fs::set_permissions(root.join("data"), std::fs::Permissions::from_mode(0o750))
            .unwrap();
        sfs::mkfifo(&root.join("data/fifo"), 0o644).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("data/link")).unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        copy_up(&root, "/data", &vol).unwrap();
        assert_eq!(std::fs::read_to_string(vol.join("seed")).unwrap(), "seed");
        assert_eq!(
            std::fs::read_to_string(vol.join("sub/inner")).unwrap(),
            "inner"
        );
        assert_eq!(
            std::fs::read_link(vol.join("link")).unwrap(),
            Path::new("/etc/passwd")
        );
        assert!(!vol.join("fifo").exists(), "a fifo has no content to copy");
        let mode = std::fs::metadata(&vol).unwrap().permissions().mode();
        assert_eq!(mode & 0o7777, 0o750);
        // Not empty any more: nothing is copied again.
        std::fs::remove_file(vol.join("seed")).unwrap();
        copy_up(&root, "/data", &vol).unwrap();
        assert!(!vol.join("seed").exists());
    }

    fn names(p: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Review M3: a copy-up that fails (or is killed) part way leaves the
    /// volume empty or completable, and the next copy-up finishes it.
    #[test]
    fn an_interrupted_copy_up_leaves_the_volume_empty_and_is_retried() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("data/sub")).unwrap();
        std::fs::write(root.join("data/seed"), "seed").unwrap();
        std::fs::write(root.join("data/sub/inner"), "inner").unwrap();
        let vol = t.path().join("vol");
        std::fs::create_dir(&vol).unwrap();
        // An error after the copy, before it is in place.
        let fail = |_: BorrowedFd<'_>| Err(std::io::Error::other("injected"));
        let e = copy_up_with(&root, "/data", &vol, Some(&fail)).unwrap_err();
        assert!(e.to_string().contains("injected"), "{e}");
        assert!(names(&vol).is_empty(), "{:?}", names(&vol));
        // A kill during the copy: an unfinished staging directory.
        std::fs::create_dir_all(vol.join(COPY_UP_STAGING).join("sub")).unwrap();
        std::fs::write(vol.join(COPY_UP_STAGING).join("half"), "").unwrap();
        copy_up(&root, "/data", &vol).unwrap();
        assert_eq!(names(&vol), ["seed", "sub"]);
        assert_eq!(
            std::fs::read_to_string(vol.join("sub/inner")).unwrap(),
            "inner"
        );
        // A kill while the complete copy was being moved into place.
        let vol2 = t.path().join("vol2");
        std::fs::create_dir_all(vol2.join(COPY_UP_DONE)).unwrap();
        std::fs::write(vol2.join(COPY_UP_DONE).join("left"), "l").unwrap();
        std::fs::write(vol2.join("moved"), "m").unwrap();
        copy_up(&root, "/data", &vol2).unwrap();
        assert_eq!(names(&vol2), ["left", "moved"]);
    }

    #[test]
    fn copy_tree_never_writes_through_a_planted_name() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst, outside) = (
            t.path().join("src"),
            t.path().join("dst"),
            t.path().join("outside"),
        );
        for d in [&src, &dst, &outside] {
            std::fs::create_dir_all(d.join("sub")).unwrap();
        }
        std::fs::write(src.join("sub/f"), "f").unwrap();
        std::fs::write(src.join("file"), "x").unwrap();
        std::fs::remove_dir(dst.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("sub"), dst.join("sub")).unwrap();
        std::os::unix::fs::symlink(outside.join("file"), dst.join("file")).unwrap();
        let (s, d) = (dir_fd(&src), dir_fd(&dst));
        for name in ["sub", "file"] {
            for ow in [Overwrite::Never, Overwrite::Replace] {
                let (fd, st) = sfs::open_entry(s.as_fd(), Path::new(name)).unwrap();
                let _ = copy_tree(fd, &st, d.as_fd(), Path::new(name), ow, Path::new(name));
            }
        }
        assert!(
            !outside.join("sub/f").exists(),
            "wrote through a symlinked directory"
        );
        assert!(
            !outside.join("file").exists(),
            "wrote through a symlinked file"
        );
        // Replace put the file in place of the link; the link in place of a
        // directory is refused, not followed.
        assert_eq!(std::fs::read_to_string(dst.join("file")).unwrap(), "x");
        assert!(dst.join("sub").symlink_metadata().unwrap().is_symlink());
    }

    #[test]
    fn a_copy_out_never_makes_a_setuid_or_setgid_file() {
        use std::os::unix::fs::PermissionsExt;
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.join("sh"), std::fs::Permissions::from_mode(0o6755)).unwrap();
        let (s, d) = (dir_fd(&src), dir_fd(&dst));
        let (fd, st) = sfs::open_entry(s.as_fd(), Path::new("sh")).unwrap();
        let sh = Path::new("sh");
        copy_tree(fd, &st, d.as_fd(), sh, Overwrite::Replace, sh).unwrap();
        let mode = std::fs::metadata(dst.join("sh"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o7777, 0o755, "{mode:o}");
    }

    #[test]
    fn a_file_that_grows_while_copied_is_copied_as_it_was_opened() {
        let t = tempfile::tempdir().unwrap();
        let (src, dst) = (t.path().join("src"), t.path().join("dst"));
        std::fs::create_dir(&src).unwrap();
        std::fs::create_dir(&dst).unwrap();
        std::fs::write(src.join("log"), "first\n").unwrap();
        let (s, d) = (dir_fd(&src), dir_fd(&dst));
        let (fd, st) = sfs::open_entry(s.as_fd(), Path::new("log")).unwrap();
        // The container appends after the copy opened the file.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(src.join("log"))
            .unwrap();
        f.write_all(&[b'x'; 1 << 20]).unwrap();
        let log = Path::new("log");
        copy_tree(fd, &st, d.as_fd(), log, Overwrite::Replace, log).unwrap();
        assert_eq!(std::fs::read_to_string(dst.join("log")).unwrap(), "first\n");
    }

    #[test]
    fn walk_upper_does_not_list_what_a_symlink_points_at() {
        let t = tempfile::tempdir().unwrap();
        let (upper, outside) = (t.path().join("upper"), t.path().join("outside"));
        std::fs::create_dir_all(upper.join("a")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("host-only"), "").unwrap();
        std::os::unix::fs::symlink(&outside, upper.join("b")).unwrap();
        let mut out = Vec::new();
        let d = sfs::open(&upper, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        walk_upper(d.as_fd(), Path::new("/"), &[], &mut out).unwrap();
        assert_eq!(out, [('A', "/a".to_string()), ('A', "/b".to_string())]);
    }
}
