//! COPY and ADD for `berth build`: sources chosen from a tree opened by
//! fd (the build context, or another stage's or image's root), written
//! into the stage's root (an overlay mounted for the step) by fd.
//!
//! The context is hostile: every path resolves with `RESOLVE_IN_ROOT`
//! (`..` and symlinks never lead out of it), a tree is walked without
//! following links (a symlink is copied as a symlink), and what the
//! `.dockerignore` excludes is neither read nor copied. The destination is
//! the stage's own root, reached the same way.

use berth_build::ignore::Ignore;
use berth_sys::fs::{self as sfs, Links};
use sha2::{Digest as _, Sha256};
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

/// A tree sources are taken from.
pub(crate) struct SourceTree<'a> {
    pub root: BorrowedFd<'a>,
    /// The context's ignore patterns (none for a stage's or image's root).
    pub ignore: Option<&'a Ignore>,
    /// What the tree is, for messages ("the build context", "stage b").
    pub what: String,
}

/// One source chosen: its path in the tree (relative, cleaned) and stat.
pub(crate) struct Chosen {
    pub rel: PathBuf,
    pub stat: libc::stat,
}

fn is_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `p` relative to the tree's root with `.` and `..` resolved lexically,
/// never above the root (BuildKit cleans `COPY ../x` to `x`).
pub(crate) fn clean_rel(p: &str) -> PathBuf {
    let mut out: Vec<&std::ffi::OsStr> = Vec::new();
    for c in Path::new(p).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out.iter().collect()
}

/// Shell-style matching of one path component (`*`, `?`, `[a-z]`, `[!x]`,
/// `\x`), as Go's `filepath.Match`.
pub(crate) fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0usize, 0usize);
    let (mut star_p, mut star_n) = (usize::MAX, 0usize);
    while n < name.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star_p = p;
                    star_n = n;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    n += 1;
                    continue;
                }
                b'[' => {
                    if let Some((ok, len)) = class(&pat[p..], name[n]) {
                        if ok {
                            p += len;
                            n += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pat.len() && pat[p + 1] == name[n] => {
                    p += 2;
                    n += 1;
                    continue;
                }
                c if c == name[n] => {
                    p += 1;
                    n += 1;
                    continue;
                }
                _ => {}
            }
        }
        if star_p == usize::MAX {
            return false;
        }
        p = star_p + 1;
        star_n += 1;
        n = star_n;
    }
    pat[p..].iter().all(|&c| c == b'*')
}

/// A `[...]` class at the start of `pat`: whether `c` matches, and the
/// class's length; None if unterminated.
fn class(pat: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let neg = matches!(pat.get(1), Some(b'!' | b'^'));
    if neg {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < pat.len() {
        if pat[i] == b']' && !first {
            return Some((hit != neg, i + 1));
        }
        first = false;
        let lo = pat[i];
        if i + 2 < pat.len() && pat[i + 1] == b'-' && pat[i + 2] != b']' {
            if lo <= c && c <= pat[i + 2] {
                hit = true;
            }
            i += 3;
        } else {
            if lo == c {
                hit = true;
            }
            i += 1;
        }
    }
    None
}

impl SourceTree<'_> {
    fn excluded(&self, rel: &Path, is_dir: bool) -> bool {
        match self.ignore {
            Some(ig) if !rel.as_os_str().is_empty() => ig.excluded(&rel.to_string_lossy(), is_dir),
            _ => false,
        }
    }

    /// The sources `pattern` names: one path (resolved in the root, links
    /// followed inside it) or a glob (each component matched, entries not
    /// followed). An excluded source is as if absent.
    pub fn choose(&self, pattern: &str) -> Result<Vec<Chosen>, String> {
        let rel = clean_rel(pattern);
        let text = rel.to_string_lossy().to_string();
        if !is_glob(&text) {
            // Links on the way, the last one too, resolve inside the root
            // (Docker copies what `COPY link dst` points at).
            let fd = sfs::open_in_root(
                self.root,
                &rel,
                libc::O_PATH | libc::O_CLOEXEC,
                Links::InRoot,
            )
            .map_err(|e| match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => {
                    format!("{pattern:?}: not found in {}", self.what)
                }
                _ => format!("{pattern:?} in {}: {e}", self.what),
            })?;
            let stat = sfs::fstat(fd.as_fd()).map_err(|e| format!("{pattern:?}: stat: {e}"))?;
            let is_dir = sfs::file_type(&stat) == libc::S_IFDIR;
            if self.excluded(&rel, is_dir) {
                return Err(format!(
                    "{pattern:?}: not found in {} (excluded by its ignore file)",
                    self.what
                ));
            }
            return Ok(vec![Chosen { rel, stat }]);
        }
        let mut found: Vec<PathBuf> = vec![PathBuf::new()];
        let comps: Vec<_> = rel.components().collect();
        for (i, c) in comps.iter().enumerate() {
            let c = c.as_os_str();
            let last = i + 1 == comps.len();
            let mut next = Vec::new();
            for dir in &found {
                if !is_glob(&c.to_string_lossy()) {
                    next.push(dir.join(c));
                    continue;
                }
                let Ok(dfd) = self.open_dir(dir) else {
                    continue;
                };
                let Ok(mut names) = sfs::read_dir_fd(dfd.as_fd()) else {
                    continue;
                };
                names.sort();
                for n in names {
                    if glob_match(c.as_bytes(), n.as_bytes()) {
                        next.push(dir.join(n));
                    }
                }
            }
            if !last {
                next.retain(|p| self.open_dir(p).is_ok());
            }
            found = next;
        }
        let mut out = Vec::new();
        for rel in found {
            let Ok(stat) = sfs::stat_entry(self.root, &rel) else {
                continue;
            };
            let is_dir = sfs::file_type(&stat) == libc::S_IFDIR;
            if !self.excluded(&rel, is_dir) {
                out.push(Chosen { rel, stat });
            }
        }
        if out.is_empty() {
            return Err(format!(
                "{pattern:?}: no source files in {} match",
                self.what
            ));
        }
        Ok(out)
    }

    /// A directory of the tree, opened without following any link.
    fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        if rel.as_os_str().is_empty() {
            return sfs::open_in_root(
                self.root,
                Path::new("."),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
                Links::Refuse,
            );
        }
        sfs::open_in_root(
            self.root,
            rel,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            Links::Refuse,
        )
    }

    /// Opens a chosen source: through links inside the root for the path
    /// given (`top`), without following any below it.
    fn open_source(&self, rel: &Path, top: bool, flags: i32) -> io::Result<OwnedFd> {
        if top {
            return sfs::open_in_root(self.root, rel, flags | libc::O_CLOEXEC, Links::InRoot);
        }
        sfs::open_in_root(
            self.root,
            rel,
            flags | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            Links::Refuse,
        )
    }

    /// Adds what a copy of `c` reads to `h`: every path below it (not
    /// excluded), its type, mode, owner, size, link target and contents;
    /// not times.
    pub fn hash(&self, c: &Chosen, h: &mut Sha256) -> Result<(), String> {
        let what = |e: io::Error| format!("{:?} in {}: read: {e}", c.rel, self.what);
        let fd = self.open_source(&c.rel, true, libc::O_PATH).map_err(what)?;
        let st = sfs::fstat(fd.as_fd()).map_err(what)?;
        self.hash_at(&c.rel, &fd, &st, h).map_err(what)
    }

    /// Hashes the entry `fd` (an O_PATH fd; `st` its stat) at `rel`,
    /// walking a directory by fd without following links.
    fn hash_at(&self, rel: &Path, fd: &OwnedFd, st: &libc::stat, h: &mut Sha256) -> io::Result<()> {
        h.update(rel.as_os_str().as_bytes());
        h.update(
            format!(
                "\0{:o}:{}:{}:{}\0",
                st.st_mode, st.st_uid, st.st_gid, st.st_size
            )
            .as_bytes(),
        );
        if matches!(sfs::file_type(st), libc::S_IFREG | libc::S_IFDIR) {
            for (k, v) in copied_xattrs(fd.as_fd(), true)? {
                h.update(b"\0x:");
                h.update(&k);
                h.update(b"=");
                h.update(&v);
            }
        }
        match sfs::file_type(st) {
            libc::S_IFREG => {
                let f = sfs::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_CLOEXEC)?;
                let mut f = std::fs::File::from(f);
                let mut buf = vec![0u8; 64 << 10];
                loop {
                    let n = f.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
            }
            libc::S_IFLNK => {
                h.update(sfs::readlink_fd(fd.as_fd())?.as_os_str().as_bytes());
            }
            libc::S_IFDIR => {
                let dfd = sfs::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
                let mut names = sfs::read_dir_fd(dfd.as_fd())?;
                names.sort();
                for n in names {
                    let child = rel.join(&n);
                    let (cfd, cst) = match sfs::open_entry(dfd.as_fd(), Path::new(&n)) {
                        Ok(x) => x,
                        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
                        Err(e) => return Err(e),
                    };
                    if self.excluded(&child, sfs::file_type(&cst) == libc::S_IFDIR) {
                        continue;
                    }
                    self.hash_at(&child, &cfd, &cst, h)?;
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// How copied files are owned and moded.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Attrs {
    /// `--chown`: uid and gid (else 0:0, as Docker's COPY).
    pub owner: Option<(u32, u32)>,
    /// `--chmod`: the mode of files and directories copied.
    pub mode: Option<u32>,
    /// Keep the source's owner (COPY --from a stage, as BuildKit does).
    pub keep_owner: bool,
}

/// Copies `c` from `src` to `dest_dir`/`name` (a directory's contents into
/// `dest_dir` itself when `contents`).
pub(crate) fn copy_chosen(
    src: &SourceTree<'_>,
    c: &Chosen,
    dest_dir: BorrowedFd<'_>,
    name: Option<&Path>,
    attrs: &Attrs,
) -> Result<(), String> {
    let what = |e: io::Error| format!("copy {:?} from {}: {e}", c.rel, src.what);
    if sfs::file_type(&c.stat) == libc::S_IFDIR && name.is_none() {
        let sfd = src
            .open_source(&c.rel, true, libc::O_RDONLY | libc::O_DIRECTORY)
            .map_err(what)?;
        return copy_dir_contents(src, &c.rel, sfd.as_fd(), dest_dir, attrs).map_err(what);
    }
    let name = name.unwrap_or(Path::new("."));
    // The top source is opened through links inside the root (Docker
    // copies what `COPY link dst` points at).
    let fd = src.open_source(&c.rel, true, libc::O_PATH).map_err(what)?;
    let st = sfs::fstat(fd.as_fd()).map_err(what)?;
    copy_entry(src, &c.rel, &fd, &st, dest_dir, name, attrs).map_err(what)
}

fn copy_dir_contents(
    src: &SourceTree<'_>,
    rel: &Path,
    sdir: BorrowedFd<'_>,
    ddir: BorrowedFd<'_>,
    attrs: &Attrs,
) -> io::Result<()> {
    let mut names = sfs::read_dir_fd(sdir)?;
    names.sort();
    for n in names {
        let child = rel.join(&n);
        let (fd, st) = match sfs::open_entry(sdir, Path::new(&n)) {
            Ok(x) => x,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        if src.excluded(&child, sfs::file_type(&st) == libc::S_IFDIR) {
            continue;
        }
        copy_entry(src, &child, &fd, &st, ddir, Path::new(&n), attrs)?;
    }
    Ok(())
}

fn owner_of(st: &libc::stat, attrs: &Attrs) -> (u32, u32) {
    match attrs.owner {
        Some(o) => o,
        None if attrs.keep_owner => (st.st_uid, st.st_gid),
        None => (0, 0),
    }
}

/// Removes what is at `dir`/`name` unless it is a directory (and `keep_dir`).
fn clear(dir: BorrowedFd<'_>, name: &Path, keep_dir: bool) -> io::Result<bool> {
    match sfs::stat_entry(dir, name) {
        Ok(st) if sfs::file_type(&st) == libc::S_IFDIR => {
            if keep_dir {
                return Ok(true);
            }
            let p = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&dir)
            ))
            .join(name);
            berth_image::remove_all(&p).map_err(|e| io::Error::other(e.to_string()))?;
            Ok(false)
        }
        Ok(_) => {
            sfs::unlinkat(dir, name, 0)?;
            Ok(false)
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Copies one entry (`fd`: an O_PATH fd on it, `st` its stat) to
/// `ddir`/`name`, recursing into directories.
fn copy_entry(
    src: &SourceTree<'_>,
    rel: &Path,
    fd: &OwnedFd,
    st: &libc::stat,
    ddir: BorrowedFd<'_>,
    name: &Path,
    attrs: &Attrs,
) -> io::Result<()> {
    let (uid, gid) = owner_of(st, attrs);
    let times = (
        (st.st_atime, st.st_atime_nsec),
        (st.st_mtime, st.st_mtime_nsec),
    );
    match sfs::file_type(st) {
        libc::S_IFREG => {
            clear(ddir, name, false)?;
            let mode = attrs.mode.unwrap_or(st.st_mode & 0o7777);
            let from = sfs::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_CLOEXEC)?;
            let mut from = std::fs::File::from(from);
            let mut to = sfs::create_file_at(ddir, name, 0o600)?;
            io::copy(&mut from, &mut to)?;
            sfs::fchown_fd(to.as_fd(), uid, gid)?;
            sfs::fchmod_fd(to.as_fd(), mode)?;
            // After the owner: a chown clears security.capability.
            set_xattrs(to.as_fd(), &copied_xattrs(from.as_fd(), false)?)?;
            sfs::set_times_fd(to.as_fd(), times.0, times.1)?;
        }
        libc::S_IFDIR => {
            let existed = clear(ddir, name, true)?;
            let d = if existed {
                sfs::openat(
                    ddir,
                    name,
                    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                    0,
                )?
            } else {
                sfs::mkdir_open_at(ddir, name, 0o700)?
            };
            let sdir = sfs::reopen(fd.as_fd(), libc::O_RDONLY | libc::O_DIRECTORY)?;
            copy_dir_contents(src, rel, sdir.as_fd(), d.as_fd(), attrs)?;
            let mode = attrs.mode.unwrap_or(st.st_mode & 0o7777);
            sfs::fchown_fd(d.as_fd(), uid, gid)?;
            sfs::fchmod_fd(d.as_fd(), mode)?;
            set_xattrs(d.as_fd(), &copied_xattrs(sdir.as_fd(), false)?)?;
            sfs::set_times_fd(d.as_fd(), times.0, times.1)?;
        }
        libc::S_IFLNK => {
            clear(ddir, name, false)?;
            let target = sfs::readlink_fd(fd.as_fd())?;
            sfs::symlinkat(&target, ddir, name)?;
            let c = std::ffi::CString::new(name.as_os_str().as_bytes())
                .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
            // SAFETY: a valid dir fd and NUL-terminated name; no pointer kept.
            let r = unsafe {
                libc::fchownat(
                    std::os::fd::AsRawFd::as_raw_fd(&ddir),
                    c.as_ptr(),
                    uid,
                    gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            };
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        // Sockets, fifos and devices in a context are not copied (Docker
        // copies fifos and devices; a build context has no business
        // holding them).
        _ => {}
    }
    Ok(())
}

/// The extended attributes COPY and ADD keep, sorted: `user.*` and file
/// capabilities (`security.capability`), as buildah keeps them (a binary
/// copied with its capabilities needs no `RUN setcap`, which would copy it
/// up again). Never `trusted.*` (overlay's own marks: an opaque or
/// redirect mark from a context on an overlay would change what the layer
/// means), nor `security.selinux` or ACLs, which describe the build
/// host's policy, not the image's.
fn copied_xattrs(fd: BorrowedFd<'_>, o_path: bool) -> io::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut x: Vec<_> = berth_image::layer::read_xattrs(fd, o_path)?
        .into_iter()
        .filter(|(k, _)| k.starts_with(b"user.") || k == b"security.capability")
        .collect();
    x.sort();
    Ok(x)
}

fn set_xattrs(fd: BorrowedFd<'_>, xattrs: &[(Vec<u8>, Vec<u8>)]) -> io::Result<()> {
    for (k, v) in xattrs {
        sfs::set_xattr_fd(fd, k, v, false)?;
    }
    Ok(())
}

/// Whether the first bytes of a file are a tar archive ADD unpacks: gzip,
/// or a plain tar (`ustar` at 257).
pub(crate) fn archive_kind(head: &[u8]) -> Option<bool> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(true);
    }
    if head.len() >= 262 && &head[257..262] == b"ustar" {
        return Some(false);
    }
    None
}

/// Unpacks the archive `c` (`gzip`: compressed) into the directory `dest`
/// with the unpacker pulled layers go through (no entry leaves `dest`:
/// `..` and absolute names and links resolve inside it).
pub(crate) fn unpack_archive(
    src: &SourceTree<'_>,
    c: &Chosen,
    gzip: bool,
    dest: BorrowedFd<'_>,
) -> Result<(), String> {
    let what = |e: String| format!("ADD {:?}: unpack: {e}", c.rel);
    let fd = src
        .open_source(&c.rel, true, libc::O_RDONLY)
        .map_err(|e| what(e.to_string()))?;
    let file = std::fs::File::from(fd);
    let input: Box<dyn Read> = if gzip {
        Box::new(flate2::read::MultiGzDecoder::new(io::BufReader::new(file)))
    } else {
        Box::new(io::BufReader::new(file))
    };
    let path = PathBuf::from(format!(
        "/proc/self/fd/{}",
        std::os::fd::AsRawFd::as_raw_fd(&dest)
    ));
    berth_image::unpack::unpack(&path, input, &c.rel.to_string_lossy())
        .map_err(|e| what(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_as_filepath_match() {
        for (p, n, want) in [
            ("*.txt", "a.txt", true),
            ("*.txt", "a.txt.bak", false),
            ("a?c", "abc", true),
            ("[a-c]x", "bx", true),
            ("[!a-c]x", "bx", false),
            ("*", "", true),
            ("a*b*c", "aXXbYYc", true),
            ("a*b*c", "aXXbYY", false),
            ("\\*", "*", true),
            ("[", "[", false),
        ] {
            assert_eq!(glob_match(p.as_bytes(), n.as_bytes()), want, "{p} {n}");
        }
    }

    #[test]
    fn sources_never_climb_above_the_root() {
        assert_eq!(clean_rel("../../etc/shadow"), PathBuf::from("etc/shadow"));
        assert_eq!(clean_rel("/a/./b/../c"), PathBuf::from("a/c"));
        assert_eq!(clean_rel("."), PathBuf::from(""));
    }

    #[test]
    fn archives_are_told_by_their_first_bytes() {
        assert_eq!(archive_kind(&[0x1f, 0x8b, 8]), Some(true));
        let mut t = vec![0u8; 512];
        t[257..262].copy_from_slice(b"ustar");
        assert_eq!(archive_kind(&t), Some(false));
        assert_eq!(archive_kind(b"hello"), None);
    }
}
