//! `berth cp` and `berth diff`.
//!
//! cp never follows a symlink of the container's out of it (the
//! CVE-2018-15664 class, where a container swaps a directory for a symlink
//! to / while `docker cp` runs): the container-side path is resolved once
//! with openat2(RESOLVE_IN_ROOT), and everything below it is reached through
//! directory fds with O_NOFOLLOW, so a path string is never resolved again
//! after a check. Paths under a volume or bind mount are resolved in that
//! mount's host directory, in the same way.

use crate::containers::Engine;
use crate::error::{io, Error, Result};
use crate::records::{Record, Status};
use berth_sys::fs::{self as sfs, Links};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

fn kind(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
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

/// The host directory and the path in it for a container path: the
/// rootfs, or the volume or bind mount the path is under.
struct Base {
    dir: PathBuf,
    rel: PathBuf,
}

/// The container's root, mounted for the duration of an operation when the
/// container is not running.
struct Mounted<'a> {
    engine: &'a Engine,
    id: String,
    unmount: bool,
}

impl Drop for Mounted<'_> {
    fn drop(&mut self) {
        if self.unmount {
            let _ = crate::rootfs::unmount(&self.engine.paths.rootfs(&self.id));
        }
    }
}

fn open_dir_path(p: &Path) -> Result<OwnedFd> {
    sfs::open(p, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)
        .map_err(io(format!("open {}", p.display())))
}

fn fstat_nofollow(dir: BorrowedFd<'_>, name: &Path) -> std::io::Result<(OwnedFd, libc::stat)> {
    let fd = sfs::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0)?;
    let st = sfs::fstat(fd.as_fd())?;
    Ok((fd, st))
}

fn names_in(dir: BorrowedFd<'_>) -> std::io::Result<Vec<std::ffi::OsString>> {
    // The fd's own directory, whatever path it had.
    let rd = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
    let mut v = Vec::new();
    for e in rd {
        v.push(e?.file_name());
    }
    v.sort();
    Ok(v)
}

impl Engine {
    fn mount_for(&self, rec: &Record) -> Result<Mounted<'_>> {
        let running = matches!(rec.state.status, Status::Running | Status::Restarting);
        let mounted = crate::rootfs::is_mounted(&self.paths.rootfs(&rec.id));
        if !mounted {
            self.mount_rootfs(rec)?;
        }
        Ok(Mounted {
            engine: self,
            id: rec.id.clone(),
            unmount: !mounted && !running,
        })
    }

    fn base_for(&self, rec: &Record, path: &Path) -> Base {
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
            Some((_, dir, rel)) => Base { dir, rel },
            None => Base {
                dir: self.paths.rootfs(&rec.id),
                rel: path.strip_prefix("/").unwrap_or(path).to_path_buf(),
            },
        }
    }

    /// `berth cp CONTAINER:SRC DEST`.
    pub fn copy_out(&self, what: &str, src: &str, dest: &Path) -> Result<()> {
        let rec = self.get(what)?;
        let _lock = self.lock(&rec.id)?;
        let _m = self.mount_for(&rec)?;
        let src = clean(src)?;
        let base = self.base_for(&rec, &src);
        let root = open_dir_path(&base.dir)?;
        let (parent_rel, name) = match (base.rel.parent(), base.rel.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), PathBuf::from(n)),
            _ => (PathBuf::from("."), PathBuf::from(".")),
        };
        let parent = sfs::open_in_root(
            root.as_fd(),
            &parent_rel,
            libc::O_PATH | libc::O_DIRECTORY,
            Links::InRoot,
        )
        .map_err(io(format!(
            "{}: open {} in the container",
            rec.name,
            src.display()
        )))?;
        let (fd, st) = fstat_nofollow(parent.as_fd(), &name).map_err(io(format!(
            "{}: {} in the container",
            rec.name,
            src.display()
        )))?;
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
        copy_out_entry(parent.as_fd(), &name, fd, &st, &target)
    }

    /// `berth cp SRC CONTAINER:DEST`. `archive` keeps the files' owners
    /// (otherwise the container's root owns them, as in Docker).
    pub fn copy_in(&self, what: &str, src: &Path, dest: &str, archive: bool) -> Result<()> {
        let rec = self.get(what)?;
        let _lock = self.lock(&rec.id)?;
        let _m = self.mount_for(&rec)?;
        let dest = clean(dest)?;
        let meta = std::fs::symlink_metadata(src).map_err(io(format!("{}", src.display())))?;
        let base = self.base_for(&rec, &dest);
        let root = open_dir_path(&base.dir)?;
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
            return copy_dir_contents_in(src, dir.as_fd(), archive);
        }
        copy_in_entry(src, &meta, dir.as_fd(), &name, archive)
    }

    /// `berth cp CONTAINER:SRC -`: SRC as a tar stream on `out`, named by
    /// its last component (its contents under `.` for the root). Read as
    /// `copy_out` reads, through fds, never following a link.
    pub fn copy_out_tar(&self, what: &str, src: &str, out: &mut dyn Write) -> Result<()> {
        let rec = self.get(what)?;
        let _lock = self.lock(&rec.id)?;
        let _m = self.mount_for(&rec)?;
        let src = clean(src)?;
        let base = self.base_for(&rec, &src);
        let root = open_dir_path(&base.dir)?;
        let (parent_rel, name) = match (base.rel.parent(), base.rel.file_name()) {
            (Some(p), Some(n)) => (p.to_path_buf(), PathBuf::from(n)),
            _ => (PathBuf::from("."), PathBuf::from(".")),
        };
        let parent = sfs::open_in_root(
            root.as_fd(),
            &parent_rel,
            libc::O_PATH | libc::O_DIRECTORY,
            Links::InRoot,
        )
        .map_err(io(format!(
            "{}: open {} in the container",
            rec.name,
            src.display()
        )))?;
        let (_, st) = fstat_nofollow(parent.as_fd(), &name).map_err(io(format!(
            "{}: {} in the container",
            rec.name,
            src.display()
        )))?;
        let arc = src
            .file_name()
            .map_or_else(|| b".".to_vec(), |n| n.as_bytes().to_vec());
        let mut w = berth_image::tar::Writer::new(out);
        let mut links = std::collections::HashMap::new();
        tar_out_entry(&mut w, parent.as_fd(), &name, &st, arc, &mut links)?;
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
        let rec = self.get(what)?;
        let _lock = self.lock(&rec.id)?;
        let _m = self.mount_for(&rec)?;
        let dest = clean(dest)?;
        let base = self.base_for(&rec, &dest);
        let root = open_dir_path(&base.dir)?;
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
            x.entry(&e, &mut r)
                .map_err(|err| tar_entry_err(&rec.name, &e.path, err))?;
        }
        x.finish();
        Ok(())
    }

    /// `berth diff`: what the container changed in its image: (kind, path)
    /// with kind A (added), C (changed) or D (deleted).
    pub fn diff(&self, what: &str) -> Result<Vec<(char, String)>> {
        let rec = self.get(what)?;
        // Top first, as overlay reads them.
        let mut layers = self.layer_dirs(&rec)?;
        layers.reverse();
        let upper = self.paths.container(&rec.id).join("upper");
        let mut out = Vec::new();
        if upper.is_dir() {
            walk_upper(&upper, Path::new("/"), &layers, &mut out)?;
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

fn walk_upper(
    dir: &Path,
    at: &Path,
    layers: &[PathBuf],
    out: &mut Vec<(char, String)>,
) -> Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io(format!("read {}", dir.display())))?
        .filter_map(|e| e.ok())
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = at.join(e.file_name());
        let m = e
            .path()
            .symlink_metadata()
            .map_err(io(format!("stat {}", e.path().display())))?;
        let shown = p.to_string_lossy().into_owned();
        if m.file_type().is_char_device() && m.rdev() == 0 {
            out.push(('D', shown));
            continue;
        }
        let existed = in_image(layers, &p);
        out.push((if existed { 'C' } else { 'A' }, shown));
        if m.is_dir() {
            walk_upper(&e.path(), &p, layers, out)?;
        }
    }
    Ok(())
}

fn copy_times_and_mode(fd: BorrowedFd<'_>, st: &libc::stat) {
    let _ = sfs::set_times_fd(
        fd,
        (st.st_atime, st.st_atime_nsec),
        (st.st_mtime, st.st_mtime_nsec),
    );
}

/// Copies one entry (already opened O_PATH as `fd`, stat `st`) named
/// `name` in `dir` to the host path `target`.
fn copy_out_entry(
    dir: BorrowedFd<'_>,
    name: &Path,
    fd: OwnedFd,
    st: &libc::stat,
    target: &Path,
) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let perm = st.st_mode & 0o7777;
    match kind(st) {
        libc::S_IFREG => {
            let f = sfs::openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                .map_err(io(format!("open {}", name.display())))?;
            let mut src = std::fs::File::from(f);
            let _ = std::fs::remove_file(target);
            let mut dst = std::fs::File::create(target)
                .map_err(io(format!("create {}", target.display())))?;
            std::io::copy(&mut src, &mut dst)
                .map_err(io(format!("copy to {}", target.display())))?;
            dst.flush().map_err(io("flush"))?;
            let _ = std::fs::set_permissions(target, std::fs::Permissions::from_mode(perm));
            let _ = std::os::unix::fs::lchown(target, Some(st.st_uid), Some(st.st_gid));
            copy_times_and_mode(dst.as_fd(), st);
        }
        libc::S_IFDIR => {
            match std::fs::symlink_metadata(target) {
                Ok(m) if m.is_dir() => {}
                Ok(_) => {
                    return Err(Error::Conflict(format!(
                        "{} exists and is not a directory",
                        target.display()
                    )))
                }
                Err(_) => std::fs::create_dir(target)
                    .map_err(io(format!("create {}", target.display())))?,
            }
            let d = sfs::openat(
                dir,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(io(format!("open {}", name.display())))?;
            for n in names_in(d.as_fd()).map_err(io(format!("list {}", name.display())))? {
                let n = PathBuf::from(n);
                let (cfd, cst) =
                    fstat_nofollow(d.as_fd(), &n).map_err(io(format!("stat {}", n.display())))?;
                copy_out_entry(d.as_fd(), &n, cfd, &cst, &target.join(&n))?;
            }
            let _ = std::fs::set_permissions(target, std::fs::Permissions::from_mode(perm));
            let _ = std::os::unix::fs::lchown(target, Some(st.st_uid), Some(st.st_gid));
        }
        libc::S_IFLNK => {
            let link =
                sfs::readlinkat(dir, name).map_err(io(format!("readlink {}", name.display())))?;
            let _ = std::fs::remove_file(target);
            std::os::unix::fs::symlink(&link, target)
                .map_err(io(format!("create {}", target.display())))?;
            let _ = std::os::unix::fs::lchown(target, Some(st.st_uid), Some(st.st_gid));
        }
        _ => {
            // Devices, fifos and sockets are skipped, as a tar of them
            // would carry no content.
        }
    }
    drop(fd);
    Ok(())
}

fn owner(meta: &std::fs::Metadata, archive: bool) -> (u32, u32) {
    if archive {
        (meta.uid(), meta.gid())
    } else {
        (0, 0)
    }
}

/// Removes `name` in `dir` unless it is a directory (never following it).
fn clear_non_dir(dir: BorrowedFd<'_>, name: &Path) -> Result<bool> {
    match fstat_nofollow(dir, name) {
        Ok((_, st)) if kind(&st) == libc::S_IFDIR => Ok(true),
        Ok(_) => {
            sfs::unlinkat(dir, name, 0).map_err(io(format!("replace {}", name.display())))?;
            Ok(false)
        }
        Err(_) => Ok(false),
    }
}

fn copy_in_entry(
    src: &Path,
    meta: &std::fs::Metadata,
    dir: BorrowedFd<'_>,
    name: &Path,
    archive: bool,
) -> Result<()> {
    let (uid, gid) = owner(meta, archive);
    let perm = meta.mode() & 0o7777;
    let ft = meta.file_type();
    if ft.is_dir() {
        if !clear_non_dir(dir, name)? {
            sfs::mkdirat(dir, name, 0o700).map_err(io(format!("create {}", name.display())))?;
        }
        // O_NOFOLLOW: what is there now must be the directory itself.
        let d = sfs::openat(
            dir,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
        )
        .map_err(io(format!(
            "open {} in the container (a symlink?)",
            name.display()
        )))?;
        copy_dir_contents_in(src, d.as_fd(), archive)?;
        let _ = sfs::fchown_fd(d.as_fd(), uid, gid);
        let _ = sfs::fchmod_fd(d.as_fd(), perm);
    } else if ft.is_file() {
        if clear_non_dir(dir, name)? {
            return Err(Error::Conflict(format!(
                "cannot copy the file {} over the directory {}",
                src.display(),
                name.display()
            )));
        }
        let f = sfs::openat(
            dir,
            name,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
            0o600,
        )
        .map_err(io(format!("create {} in the container", name.display())))?;
        let mut dst = std::fs::File::from(f);
        let mut s = std::fs::File::open(src).map_err(io(format!("open {}", src.display())))?;
        std::io::copy(&mut s, &mut dst).map_err(io(format!("copy {}", src.display())))?;
        let _ = sfs::fchown_fd(dst.as_fd(), uid, gid);
        let _ = sfs::fchmod_fd(dst.as_fd(), perm);
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
        if let Ok(l) = sfs::openat(dir, name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
            // SAFETY: fchownat on a path fd with AT_EMPTY_PATH changes the
            // link itself.
            unsafe {
                libc::fchownat(
                    l.as_raw_fd(),
                    c"".as_ptr(),
                    uid,
                    gid,
                    libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                );
            }
        }
    }
    Ok(())
}

fn copy_dir_contents_in(src: &Path, dir: BorrowedFd<'_>, archive: bool) -> Result<()> {
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
        copy_in_entry(&p, &m, dir, &name, archive)?;
    }
    Ok(())
}

/// Docker's volume copy-up: a volume that is still empty when a container
/// first mounts it at a path the image has content at gets that content
/// (owners and modes kept). Read from the root with RESOLVE_IN_ROOT and no
/// symlink followed, as `cp` does.
pub(crate) fn copy_up(rootfs: &Path, dest: &str, volume_data: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let empty = std::fs::read_dir(volume_data)
        .map(|mut d| d.next().is_none())
        .unwrap_or(false);
    if !empty {
        return Ok(());
    }
    let root = open_dir_path(rootfs)?;
    let Ok(dir) = sfs::open_in_root(
        root.as_fd(),
        Path::new(dest),
        libc::O_RDONLY | libc::O_DIRECTORY,
        Links::InRoot,
    ) else {
        // Nothing at that path in the image (or not a directory).
        return Ok(());
    };
    let st = sfs::fstat(dir.as_fd()).map_err(io(format!("stat {dest} in the image")))?;
    for n in names_in(dir.as_fd()).map_err(io(format!("list {dest} in the image")))? {
        let n = PathBuf::from(n);
        let (cfd, cst) =
            fstat_nofollow(dir.as_fd(), &n).map_err(io(format!("stat {}", n.display())))?;
        copy_out_entry(dir.as_fd(), &n, cfd, &cst, &volume_data.join(&n))?;
    }
    let _ = std::fs::set_permissions(
        volume_data,
        std::fs::Permissions::from_mode(st.st_mode & 0o7777),
    );
    let _ = std::os::unix::fs::lchown(volume_data, Some(st.st_uid), Some(st.st_gid));
    Ok(())
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

/// Writes one entry (named `name` in `dir`, stat `st`) as `arc` in the
/// archive, and a directory's contents under it. Files with more than one
/// link become hard links to the first path they were written as.
fn tar_out_entry(
    w: &mut berth_image::tar::Writer<&mut dyn Write>,
    dir: BorrowedFd<'_>,
    name: &Path,
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
            let f = sfs::openat(dir, name, libc::O_RDONLY | libc::O_NOFOLLOW, 0)
                .map_err(io(format!("open {}", shown())))?;
            e.size = st.st_size as u64;
            write(w, &e, &mut std::fs::File::from(f))?;
        }
        libc::S_IFDIR => {
            e.kind = Kind::Dir;
            write(w, &e, &mut std::io::empty())?;
            let d = sfs::openat(
                dir,
                name,
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                0,
            )
            .map_err(io(format!("open {}", shown())))?;
            for n in names_in(d.as_fd()).map_err(io(format!("list {}", shown())))? {
                let n = PathBuf::from(n);
                let (_, cst) =
                    fstat_nofollow(d.as_fd(), &n).map_err(io(format!("stat {}", n.display())))?;
                let mut child = arc.clone();
                child.push(b'/');
                child.extend_from_slice(n.as_os_str().as_bytes());
                tar_out_entry(w, d.as_fd(), &n, &cst, child, links)?;
            }
        }
        libc::S_IFLNK => {
            e.kind = Kind::Symlink;
            e.link = sfs::readlinkat(dir, name)
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
                if !clear_non_dir(dir, &name)? {
                    sfs::mkdirat(dir, &name, 0o700).map_err(io("create the directory"))?;
                }
                let d = sfs::openat(
                    dir,
                    &name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
                    0,
                )
                .map_err(io("open the directory (a symlink?)"))?;
                let _ = sfs::fchown_fd(d.as_fd(), uid, gid);
                let _ = sfs::fchmod_fd(d.as_fd(), e.mode);
                self.dirs.push((d, e.mtime.0));
            }
            Kind::File => {
                if clear_non_dir(dir, &name)? {
                    return Err(not_over_dir("file"));
                }
                let f = sfs::openat(
                    dir,
                    &name,
                    libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
                    0o600,
                )
                .map_err(io("create the file"))?;
                let mut out = std::fs::File::from(f);
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
                let _ = sfs::fchmod_fd(out.as_fd(), e.mode);
                let _ = sfs::set_times_fd(out.as_fd(), (e.mtime.0, 0), (e.mtime.0, 0));
            }
            Kind::Symlink => {
                if clear_non_dir(dir, &name)? {
                    return Err(not_over_dir("symlink"));
                }
                sfs::symlinkat(Path::new(std::ffi::OsStr::from_bytes(&e.link)), dir, &name)
                    .map_err(io("create the symlink"))?;
                if let Ok(l) = sfs::openat(dir, &name, libc::O_PATH | libc::O_NOFOLLOW, 0) {
                    // SAFETY: fchownat on a path fd with AT_EMPTY_PATH
                    // changes the link itself.
                    unsafe {
                        libc::fchownat(
                            l.as_raw_fd(),
                            c"".as_ptr(),
                            uid,
                            gid,
                            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
                        );
                    }
                }
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
