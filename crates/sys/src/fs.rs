//! Files and paths: openat2-based resolution that never leaves a root,
//! atomic writes, locks, and fd-relative helpers.

use crate::{cstr, cvt, retry, EMPTY};
use std::ffi::CStr;
use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Component, Path, PathBuf};

pub const RESOLVE_NO_XDEV: u64 = 0x01;
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
pub const RESOLVE_BENEATH: u64 = 0x08;
pub const RESOLVE_IN_ROOT: u64 = 0x10;

#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// How often [`openat2`] tries again after EAGAIN.
const OPENAT2_EAGAIN_TRIES: u32 = 256;

/// `openat2(2)`. With `RESOLVE_BENEATH` or `RESOLVE_IN_ROOT`, the kernel
/// answers EAGAIN when a rename or a mount anywhere on the system raced
/// with the resolution of a `..` (it cannot then prove the walk stayed
/// inside): the call is made again, up to [`OPENAT2_EAGAIN_TRIES`] times,
/// as openat2(2) says callers may. A busy host renames all the time; the
/// EAGAIN reached users as "Resource temporarily unavailable".
pub fn openat2(
    dir: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    mode: u32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: u64::from(mode),
        resolve,
    };
    let mut tries = 0;
    let fd = loop {
        let r = retry(|| {
            // SAFETY: valid C string and open_how of the size we pass.
            cvt(unsafe {
                libc::syscall(
                    libc::SYS_openat2,
                    dir.as_raw_fd(),
                    c.as_ptr(),
                    &how as *const OpenHow,
                    std::mem::size_of::<OpenHow>(),
                )
            })
        });
        match r {
            Err(e) if e.raw_os_error() == Some(libc::EAGAIN) && tries < OPENAT2_EAGAIN_TRIES => {
                tries += 1;
                std::thread::yield_now();
            }
            r => break r?,
        }
    };
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `mkdir -p` with mode 0700 for what it creates (the owner's alone).
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
}

/// Waits up to `timeout_ms` (-1 = forever) for `fd` to become readable
/// (for a pidfd: for the process to exit). Returns whether it did.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = retry(|| cvt(unsafe { libc::poll(&mut pfd, 1, timeout_ms) }))?;
    Ok(n > 0)
}

/// `open(2)` with `O_CLOEXEC` always added.
pub fn open(path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    // SAFETY: valid C string.
    let fd = retry(|| cvt(unsafe { libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode) }))?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(2)` with `O_CLOEXEC` always added.
pub fn openat(dir: BorrowedFd<'_>, path: &Path, flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let c = cstr(path)?;
    let fd = retry(|| {
        // SAFETY: valid C string and dir fd.
        cvt(unsafe { libc::openat(dir.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode) })
    })?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Strips leading `/` so that a container path can be given to the *at()
/// calls relative to a root fd. `"/"` and `""` become `"."`.
pub fn relative(path: &Path) -> PathBuf {
    let rel: PathBuf = path
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .collect();
    if rel.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        rel
    }
}

/// How to treat symlinks met while resolving a path inside a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow them, but as if the root were `/`: they can never lead out.
    InRoot,
    /// Refuse any symlink on the way (`ELOOP`). For paths the runtime itself
    /// creates, such as `/dev/null`, where an image has no business placing one.
    Refuse,
}

impl Links {
    fn resolve(self) -> u64 {
        match self {
            Links::InRoot => RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
            Links::Refuse => RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS,
        }
    }
}

/// Opens `path` inside `root` (an `O_PATH` fd), never escaping it.
pub fn open_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    links: Links,
) -> io::Result<OwnedFd> {
    openat2(root, &relative(path), flags, 0, links.resolve())
}

/// Creates every missing directory of `path` inside `root` (mode 0755) and
/// returns an `O_PATH` fd on the last one. Existing components may be
/// symlinks only when `links` allows, and even then they resolve in the root.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, links: Links) -> io::Result<OwnedFd> {
    mkdir_all_depth(root, &relative(path), links, 0)
}

/// How many dangling symlinks we follow while creating one path (as the
/// kernel's own limit for symlinks in one lookup).
const MAX_LINKS: u32 = 40;

fn mkdir_all_depth(
    root: BorrowedFd<'_>,
    rel: &Path,
    links: Links,
    depth: u32,
) -> io::Result<OwnedFd> {
    match open_in_root(root, rel, libc::O_PATH | libc::O_DIRECTORY, links) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let parent_rel = rel
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = mkdir_all_depth(root, parent_rel, links, depth)?;
    let name = rel.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no final component")
    })?;
    match mkdirat(parent.as_fd(), Path::new(name), 0o755) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        other => other?,
    }
    // Resolve again from the root: if something raced us and put a symlink
    // there, it is still resolved inside the root (or refused).
    match open_in_root(root, rel, libc::O_PATH | libc::O_DIRECTORY, links) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && links == Links::InRoot => {
            // A dangling symlink: create what it points at, inside the root.
            let target = follow_dangling(parent.as_fd(), name, parent_rel, depth)?;
            mkdir_all_depth(root, &target, links, depth + 1)
        }
        other => other,
    }
}

/// The root-relative path a dangling symlink `parent/name` points at.
fn follow_dangling(
    parent: BorrowedFd<'_>,
    name: &std::ffi::OsStr,
    parent_rel: &Path,
    depth: u32,
) -> io::Result<PathBuf> {
    if depth >= MAX_LINKS {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    let target = readlinkat(parent, Path::new(name))?;
    Ok(if target.is_absolute() {
        relative(&target)
    } else {
        relative(&parent_rel.join(target))
    })
}

/// `readlinkat(2)`.
pub fn readlinkat(dir: BorrowedFd<'_>, name: &Path) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let c = cstr(name)?;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: valid C string, dir fd and buffer of the given length.
    let n = cvt(unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            c.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    })?;
    buf.truncate(n as usize);
    Ok(PathBuf::from(std::ffi::OsString::from_vec(buf)))
}

/// Creates an empty regular file at `path` inside `root` unless something is
/// already there, creating parents as needed; returns an `O_PATH` fd on it.
pub fn mkfile_in_root(root: BorrowedFd<'_>, path: &Path, links: Links) -> io::Result<OwnedFd> {
    mkfile_depth(root, &relative(path), links, 0)
}

fn mkfile_depth(root: BorrowedFd<'_>, rel: &Path, links: Links, depth: u32) -> io::Result<OwnedFd> {
    match open_in_root(root, rel, libc::O_PATH, links) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        other => return other,
    }
    let parent_rel = rel
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let parent = mkdir_all_depth(root, parent_rel, links, depth)?;
    let name = rel.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "path has no final component")
    })?;
    match openat2(
        parent.as_fd(),
        Path::new(name),
        libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
        0o644,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        other => drop(other?),
    }
    match open_in_root(root, rel, libc::O_PATH, links) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && links == Links::InRoot => {
            let target = follow_dangling(parent.as_fd(), name, parent_rel, depth)?;
            mkfile_depth(root, &target, links, depth + 1)
        }
        other => other,
    }
}

/// The type bits (`S_IFMT`) of a stat.
pub fn file_type(st: &libc::stat) -> u32 {
    st.st_mode & libc::S_IFMT
}

/// A short name for a file type, for error messages.
pub fn type_name(st: &libc::stat) -> &'static str {
    match file_type(st) {
        libc::S_IFREG => "a regular file",
        libc::S_IFDIR => "a directory",
        libc::S_IFLNK => "a symlink",
        libc::S_IFIFO => "a fifo",
        libc::S_IFCHR => "a character device",
        libc::S_IFBLK => "a block device",
        libc::S_IFSOCK => "a socket",
        _ => "of an unknown type",
    }
}

fn not_a(what: &str, st: &libc::stat) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} where {what} was expected; refused", type_name(st)),
    )
}

/// Reopens what an fd (also `O_PATH`) refers to with `flags`, through the
/// fd's `/proc/self/fd` link, which names the inode itself, never a path
/// anyone can change. `O_NONBLOCK | O_NOCTTY | O_CLOEXEC` are always added
/// (not `O_NOFOLLOW`: the magic link itself must be followed).
pub fn reopen(fd: BorrowedFd<'_>, flags: i32) -> io::Result<OwnedFd> {
    let p = crate::fd_path(fd.as_raw_fd());
    let flags = flags | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: valid C string.
    let new = retry(|| cvt(unsafe { libc::open(p.as_ptr(), flags) }))?;
    // SAFETY: new fd owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(new) })
}

/// Opens the single path component `name` in `dir` the one safe way for
/// files someone else (a container) can change at any moment: the entry
/// is opened `O_PATH | O_NOFOLLOW` (which never blocks and never opens a
/// fifo or a device), never through a symlink, `..` or a magic link
/// (openat2 `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`); the type is taken
/// from `fstat` of that fd; a regular file or a directory is then reopened
/// for reading through the fd itself ([`reopen`], `O_NONBLOCK`). Anything
/// else stays an `O_PATH` fd (readlink, stat and chown still work on it).
/// The returned stat is the returned fd's: act on that fd only, never on
/// the name again.
pub fn open_entry(dir: BorrowedFd<'_>, name: &Path) -> io::Result<(OwnedFd, libc::stat)> {
    single(name)?;
    let fd = openat2(
        dir,
        name,
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )?;
    let st = fstat(fd.as_fd())?;
    let flags = match file_type(&st) {
        libc::S_IFREG => libc::O_RDONLY,
        libc::S_IFDIR => libc::O_RDONLY | libc::O_DIRECTORY,
        _ => return Ok((fd, st)),
    };
    let opened = reopen(fd.as_fd(), flags)?;
    Ok((opened, st))
}

fn single(name: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_os_str().as_bytes();
    if b.is_empty() || b.contains(&b'/') || b == b"." || b == b".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a single file name"),
        ));
    }
    Ok(())
}

/// The stat of the single component `name` in `dir`, never following it
/// (`fstatat(AT_SYMLINK_NOFOLLOW)`): for a walk that only reports what it
/// finds. Act on nothing by this name afterwards: open it with
/// [`open_entry`] or [`open_dir_entry`] instead.
pub fn stat_entry(dir: BorrowedFd<'_>, name: &Path) -> io::Result<libc::stat> {
    single(name)?;
    let c = cstr(name)?;
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid dir fd, C string and out pointer.
    cvt(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(st)
}

/// Opens the single component `name` in `dir` as a directory to list:
/// never through a symlink (`ELOOP`), and a non-directory is refused at
/// lookup (`ENOTDIR`, `O_DIRECTORY`), so no fifo or device is opened.
pub fn open_dir_entry(dir: BorrowedFd<'_>, name: &Path) -> io::Result<OwnedFd> {
    single(name)?;
    openat2(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )
}

/// Opens `path` inside `root` (symlinks resolved as [`Links`] says, never
/// out of the root) as a regular file to read, without ever opening a
/// fifo or a device: resolved `O_PATH`, checked with `fstat`, then
/// reopened through the fd ([`reopen`]). Anything but a regular file is
/// refused (`InvalidInput`).
pub fn open_file_in_root(
    root: BorrowedFd<'_>,
    path: &Path,
    links: Links,
) -> io::Result<(std::fs::File, libc::stat)> {
    let fd = open_in_root(root, path, libc::O_PATH, links)?;
    let st = fstat(fd.as_fd())?;
    if file_type(&st) != libc::S_IFREG {
        return Err(not_a("a regular file", &st));
    }
    Ok((std::fs::File::from(reopen(fd.as_fd(), libc::O_RDONLY)?), st))
}

/// Opens the directory at `path` inside `root` for listing (resolved as
/// [`Links`] says, never out of the root; `O_NONBLOCK`, type checked).
pub fn open_dir_in_root(root: BorrowedFd<'_>, path: &Path, links: Links) -> io::Result<OwnedFd> {
    let fd = open_in_root(
        root,
        path,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NONBLOCK,
        links,
    )?;
    let st = fstat(fd.as_fd())?;
    if file_type(&st) != libc::S_IFDIR {
        return Err(not_a("a directory", &st));
    }
    Ok(fd)
}

/// The names in the directory `dir` (an fd opened for reading or
/// `O_PATH`), sorted, without `.` and `..`. Read through the fd itself.
pub fn read_dir_fd(dir: BorrowedFd<'_>) -> io::Result<Vec<std::ffi::OsString>> {
    // The magic link opens the fd's own inode (also from an O_PATH fd).
    let rd = std::fs::read_dir(format!("/proc/self/fd/{}", dir.as_raw_fd()))?;
    let mut v = Vec::new();
    for e in rd {
        v.push(e?.file_name());
    }
    v.sort();
    Ok(v)
}

/// Creates the regular file `name` in `dir`, which must not exist in any
/// form (`O_CREAT | O_EXCL | O_NOFOLLOW`, no symlink or `..` resolved): a
/// symlink or anything else planted there makes it fail with `EEXIST`
/// rather than be followed or reused. Open for writing.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<std::fs::File> {
    let fd = openat2(
        dir,
        name,
        libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        mode,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )?;
    Ok(std::fs::File::from(fd))
}

/// Makes the directory `name` in `dir` unless one is there, and opens it
/// (`O_NOFOLLOW`, no symlink resolved, type checked): a symlink or a
/// non-directory at `name` is refused, never followed.
pub fn mkdir_open_at(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<OwnedFd> {
    match mkdirat(dir, name, mode) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {}
        other => other?,
    }
    let fd = openat2(
        dir,
        name,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_NONBLOCK,
        0,
        RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    )?;
    let st = fstat(fd.as_fd())?;
    if file_type(&st) != libc::S_IFDIR {
        return Err(not_a("a directory", &st));
    }
    Ok(fd)
}

/// `fchmod(2)` on an fd opened for I/O (not `O_PATH`).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: plain syscall on a valid fd.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode) })?;
    Ok(())
}

/// The target of the symlink an `O_PATH | O_NOFOLLOW` fd refers to
/// (`readlinkat(fd, "")`): no name is resolved again.
pub fn readlink_fd(fd: BorrowedFd<'_>) -> io::Result<PathBuf> {
    readlinkat(fd, Path::new(""))
}

/// A sealed-size, in-memory regular file holding `data` (`memfd_create`),
/// read from its start: for content the engine makes up rather than reads.
pub fn memfd_with(name: &CStr, data: &[u8], mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid C string; flags are plain bits.
    let fd = cvt(unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) })?;
    // SAFETY: new fd owned by us.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    fchmod(f.as_fd(), mode)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0))?;
    Ok(OwnedFd::from(f))
}

/// `mkdirat(2)`.
pub fn mkdirat(dir: BorrowedFd<'_>, name: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string and dir fd.
    cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), mode) })?;
    Ok(())
}

/// `mknodat(2)`.
pub fn mknodat(dir: BorrowedFd<'_>, name: &Path, mode: u32, dev: u64) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string and dir fd.
    cvt(unsafe { libc::mknodat(dir.as_raw_fd(), c.as_ptr(), mode, dev) })?;
    Ok(())
}

/// `unlinkat(2)`.
pub fn unlinkat(dir: BorrowedFd<'_>, name: &Path, flags: i32) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid C string and dir fd.
    cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), c.as_ptr(), flags) })?;
    Ok(())
}

/// `symlinkat(2)`.
pub fn symlinkat(target: &Path, dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let t = cstr(target)?;
    let n = cstr(name)?;
    // SAFETY: valid C strings and dir fd.
    cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), n.as_ptr()) })?;
    Ok(())
}

/// `utimensat(dir, name, [atime, mtime], AT_SYMLINK_NOFOLLOW)`: sets the
/// times of `name` itself, also when it is a symlink. Times are
/// (seconds, nanoseconds).
pub fn set_times_nofollow(
    dir: BorrowedFd<'_>,
    name: &Path,
    atime: (i64, i64),
    mtime: (i64, i64),
) -> io::Result<()> {
    let c = cstr(name)?;
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: valid C string, dir fd and a two-element timespec array.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            c.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

/// `fchownat(fd, "", uid, gid, AT_EMPTY_PATH)`: works on `O_PATH` fds and
/// never follows a link.
pub fn fchown_fd(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: empty path with AT_EMPTY_PATH acts on the fd itself.
    cvt(unsafe {
        libc::fchownat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            uid,
            gid,
            libc::AT_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `chmod` through `/proc/self/fd` (fchmod does not accept `O_PATH` fds).
pub fn fchmod_fd(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    let p = crate::fd_path(fd.as_raw_fd());
    // SAFETY: valid C string.
    cvt(unsafe { libc::chmod(p.as_ptr(), mode) })?;
    Ok(())
}

/// `fstat(2)` (works on `O_PATH` fds).
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: stat is plain data filled by the kernel.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// The id of the mount `fd` is on: `statx`'s `STATX_MNT_ID` (Linux 5.8),
/// else the `mnt_id` of /proc/self/fdinfo (Linux 3.15).
pub fn mount_id(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: statx is plain old data; all zeroes is a valid value.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: a valid fd, an empty NUL-terminated path with AT_EMPTY_PATH,
    // and a statx buffer we own for the length of the call.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_DONT_SYNC,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r == 0 && stx.stx_mask & libc::STATX_MNT_ID != 0 {
        return Ok(stx.stx_mnt_id);
    }
    let info = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd()))?;
    info.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| {
            io::Error::other("no mount id (neither statx nor /proc/self/fdinfo gives one)")
        })
}

/// The filesystem magic of the filesystem an fd lives on (`fstatfs(2)`).
pub fn fs_magic(fd: BorrowedFd<'_>) -> io::Result<i64> {
    // SAFETY: statfs is plain data filled by the kernel.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out pointer.
    cvt(unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) })?;
    Ok(st.f_type as i64)
}

pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
pub const TMPFS_MAGIC: i64 = 0x0102_1994;

/// `mkfifo` at a path.
pub fn mkfifo(path: &Path, mode: u32) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::mkfifo(c.as_ptr(), mode) })?;
    Ok(())
}

/// `flock(2)`; with `nonblock`, `Ok(false)` means someone else holds it.
pub fn flock(fd: BorrowedFd<'_>, exclusive: bool, nonblock: bool) -> io::Result<bool> {
    let mut op = if exclusive {
        libc::LOCK_EX
    } else {
        libc::LOCK_SH
    };
    if nonblock {
        op |= libc::LOCK_NB;
    }
    // SAFETY: plain syscall.
    match retry(|| cvt(unsafe { libc::flock(fd.as_raw_fd(), op) })) {
        Ok(_) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases a lock taken with [`flock`].
pub fn funlock(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_UN) })?;
    Ok(())
}

/// Writes `data` to `dir/name` atomically: a temporary file in the same
/// directory, fsync, rename over the target, fsync of the directory. A crash
/// at any point leaves either the old file or the new one, never a mix.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, true, true)
}

/// [`write_atomic`] of several files of one directory, its fsync once for
/// all of them (after the last rename): each file is the old one or the
/// new one after a crash, and all are durable when this returns.
pub fn write_atomic_in(
    dir: &Path,
    files: &[(&std::ffi::OsStr, &[u8])],
    mode: u32,
) -> io::Result<()> {
    for (name, data) in files {
        replace(&dir.join(name), data, mode, true, false)?;
    }
    fsync_dir(dir)
}

/// fsync(2) of a directory: its entries (a rename into it) are durable.
fn fsync_dir(dir: &Path) -> io::Result<()> {
    let d = open(dir, libc::O_RDONLY | libc::O_DIRECTORY, 0)?;
    // SAFETY: plain syscall on an fd we own.
    cvt(unsafe { libc::fsync(d.as_raw_fd()) })?;
    Ok(())
}

/// Like [`write_atomic`] without the fsyncs, for state that lives only until
/// the next boot (the run roots, meant to be on tmpfs): a process killed at
/// any point leaves the old file or the new one, never a mix, which is all
/// such state needs; after a power loss it is stale anyway, and its readers
/// treat an empty or cut file as such. An fsync on a disk-backed /run costs
/// 0.3-1.5 ms, and a container start writes several of these.
///
/// An existing file is swapped with the new one (`RENAME_EXCHANGE`), then
/// unlinked, rather than renamed over: ext4 (`auto_da_alloc`) allocates
/// the blocks of a file renamed over another at once, so that each later
/// replacement frees them, and freeing blocks on ext4 mounted with
/// `discard` and no journal waits for the disk to discard them (measured
/// here: 0.1-0.4 ms for each state file a container start replaced). A
/// file swapped in keeps its data in the page cache, and one replaced
/// before it is written back frees nothing. Readers see the old file or
/// the new one, as with a rename.
pub fn replace_file(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    replace(path, data, mode, false, false)
}

fn replace(path: &Path, data: &[u8], mode: u32, durable: bool, sync_dir: bool) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let fd = open(
            &tmp,
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW,
            mode,
        )?;
        let mut f = std::fs::File::from(fd);
        f.write_all(data)?;
        if durable {
            f.sync_all()?;
        }
        if durable || !exchange(&tmp, path)? {
            std::fs::rename(&tmp, path)?;
        }
        if durable && sync_dir {
            fsync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Swaps `new` with an existing `target` and removes `new` (then the old
/// file); false if there is no target, or the filesystem cannot swap (the
/// caller renames instead).
fn exchange(new: &Path, target: &Path) -> io::Result<bool> {
    let (n, t) = (cstr(new)?, cstr(target)?);
    let swap = || {
        // SAFETY: two NUL-terminated paths, resolved from the cwd.
        cvt(unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                n.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        })
    };
    if let Err(e) = swap() {
        return match e.raw_os_error() {
            Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => Ok(false),
            _ => Err(e),
        };
    }
    match std::fs::remove_file(new) {
        Ok(()) => Ok(true),
        // The target was a directory: swapped back, the caller's rename
        // fails as it would have.
        Err(e) if e.raw_os_error() == Some(libc::EISDIR) => {
            let _ = swap();
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// `close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC)`: marks every fd from
/// `first` on close-on-exec without closing it yet.
pub fn cloexec_from(first: u32) -> io::Result<()> {
    const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
    // SAFETY: plain syscall.
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) })?;
    Ok(())
}

/// Clears `FD_CLOEXEC` so the fd survives execve.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on an fd number.
    let flags = cvt(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: as above.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) })?;
    Ok(())
}

/// `dup3(old, new, 0)`: the new fd is inherited across exec.
pub fn dup2(old: RawFd, new: RawFd) -> io::Result<()> {
    if old == new {
        return clear_cloexec(new);
    }
    // SAFETY: plain syscall; the caller owns both numbers.
    cvt(unsafe { libc::dup3(old, new, 0) })?;
    Ok(())
}

/// `fchdir(2)`.
pub fn fchdir(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::fchdir(fd.as_raw_fd()) })?;
    Ok(())
}

/// `chdir(2)`.
pub fn chdir(path: &Path) -> io::Result<()> {
    let c = cstr(path)?;
    // SAFETY: valid C string.
    cvt(unsafe { libc::chdir(c.as_ptr()) })?;
    Ok(())
}

/// `chroot(2)`.
pub fn chroot(path: &CStr) -> io::Result<()> {
    // SAFETY: valid C string.
    cvt(unsafe { libc::chroot(path.as_ptr()) })?;
    Ok(())
}

/// `getcwd(3)`; glibc reports ENOENT when the cwd lies outside our root.
pub fn getcwd() -> io::Result<PathBuf> {
    std::env::current_dir()
}

/// `pivot_root(2)`.
pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> io::Result<()> {
    // SAFETY: valid C strings.
    cvt(unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) })?;
    Ok(())
}

/// Makes `dev_t` from major and minor.
pub fn makedev(major: u64, minor: u64) -> u64 {
    libc::makedev(major as u32, minor as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A small tree is synced file by file: fifos and devices are not
    /// opened (a fifo would block), symlinks are not followed (one points
    /// at a fifo outside); a tree over the bound is left to syncfs.
    #[test]
    fn sync_tree_syncs_small_trees_only() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("f"), b"x").unwrap();
        std::fs::write(root.join("a/b/g"), b"y").unwrap();
        mkfifo(&root.join("a/fifo"), 0o600).unwrap();
        mkfifo(&t.path().join("outside-fifo"), 0o600).unwrap();
        std::os::unix::fs::symlink(t.path().join("outside-fifo"), root.join("a/link")).unwrap();
        let fd = open(&root, libc::O_RDONLY | libc::O_DIRECTORY, 0).unwrap();
        // f, a, a/b, a/fifo, a/link, a/b/g.
        assert!(sync_tree(fd.as_fd(), 6).unwrap());
        assert!(!sync_tree(fd.as_fd(), 5).unwrap());
    }

    /// Several files of one directory written at once: each has its new
    /// contents (an old one replaced), no temporary file is left.
    #[test]
    fn write_atomic_in_writes_every_file() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("b"), b"old").unwrap();
        let files: [(&std::ffi::OsStr, &[u8]); 2] = [
            ("a".as_ref(), b"one".as_slice()),
            ("b".as_ref(), b"two".as_slice()),
        ];
        write_atomic_in(t.path(), &files, 0o644).unwrap();
        assert_eq!(std::fs::read(t.path().join("a")).unwrap(), b"one");
        assert_eq!(std::fs::read(t.path().join("b")).unwrap(), b"two");
        let mut names: Vec<_> = std::fs::read_dir(t.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn relative_strips_root() {
        assert_eq!(relative(Path::new("/a/b")), PathBuf::from("a/b"));
        assert_eq!(relative(Path::new("/")), PathBuf::from("."));
        assert_eq!(relative(Path::new("./x")), PathBuf::from("x"));
    }

    #[test]
    fn mkdir_all_stays_in_root_through_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let outside = t.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        // An absolute symlink pointing at the host's idea of "outside".
        std::os::unix::fs::symlink(&outside, root.join("escape")).unwrap();
        let rfd = open(&root, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        // The link dangles inside the root: its target is created there.
        mkdir_all_in_root(rfd.as_fd(), Path::new("/escape/sub"), Links::InRoot).unwrap();
        assert!(!outside.join("sub").exists(), "created outside the root");
        assert!(root
            .join(outside.strip_prefix("/").unwrap())
            .join("sub")
            .is_dir());
        let err =
            mkdir_all_in_root(rfd.as_fd(), Path::new("/escape/other"), Links::Refuse).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::ELOOP));
    }

    #[test]
    fn link_loops_end() {
        let t = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("b", t.path().join("a")).unwrap();
        std::os::unix::fs::symlink("a", t.path().join("b")).unwrap();
        let rfd = open(t.path(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        assert!(mkdir_all_in_root(rfd.as_fd(), Path::new("/a/x"), Links::InRoot).is_err());
        assert!(mkfile_in_root(rfd.as_fd(), Path::new("/a"), Links::InRoot).is_err());
    }

    #[test]
    fn dangling_file_link_creates_target_inside() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("../run/resolv.conf", t.path().join("etc/resolv.conf")).unwrap();
        let rfd = open(t.path(), libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        mkfile_in_root(rfd.as_fd(), Path::new("/etc/resolv.conf"), Links::InRoot).unwrap();
        assert!(t.path().join("run/resolv.conf").is_file());
    }

    #[test]
    fn dotdot_cannot_leave_root() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let rfd = open(&root, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        mkfile_in_root(rfd.as_fd(), Path::new("../../x"), Links::InRoot).unwrap();
        assert!(root.join("x").exists());
        assert!(!t.path().join("x").exists());
    }

    #[test]
    fn open_entry_never_follows_opens_or_waits_on_what_it_does_not_expect() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        std::fs::write(&outside, b"host secret").unwrap();
        let d = t.path().join("d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("file"), b"ok").unwrap();
        std::os::unix::fs::symlink(&outside, d.join("link")).unwrap();
        mkfifo(&d.join("fifo"), 0o644).unwrap();
        let dfd = open(&d, libc::O_PATH | libc::O_DIRECTORY, 0).unwrap();
        let (fd, st) = open_entry(dfd.as_fd(), Path::new("file")).unwrap();
        assert_eq!(file_type(&st), libc::S_IFREG);
        let mut got = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(fd), &mut got).unwrap();
        assert_eq!(got, "ok");
        // A symlink is an O_PATH fd on the link itself, never its target.
        let (fd, st) = open_entry(dfd.as_fd(), Path::new("link")).unwrap();
        assert_eq!(file_type(&st), libc::S_IFLNK);
        assert_eq!(readlink_fd(fd.as_fd()).unwrap(), outside);
        // A fifo is not opened (that would block with no writer).
        let (_, st) = open_entry(dfd.as_fd(), Path::new("fifo")).unwrap();
        assert_eq!(file_type(&st), libc::S_IFIFO);
        for bad in ["..", ".", "a/b", ""] {
            assert!(open_entry(dfd.as_fd(), Path::new(bad)).is_err(), "{bad}");
        }
        // Regular files only, through in-root links at most.
        let e = open_file_in_root(dfd.as_fd(), Path::new("/fifo"), Links::InRoot).unwrap_err();
        assert!(e.to_string().contains("a fifo"), "{e}");
        assert!(open_file_in_root(dfd.as_fd(), Path::new("/link"), Links::InRoot).is_err());
        assert!(open_dir_in_root(dfd.as_fd(), Path::new("/file"), Links::InRoot).is_err());
        // Creation never goes through a planted name.
        let e = create_file_at(dfd.as_fd(), Path::new("link"), 0o600).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EEXIST));
        assert!(mkdir_open_at(dfd.as_fd(), Path::new("link"), 0o700).is_err());
        assert!(mkdir_open_at(dfd.as_fd(), Path::new("fifo"), 0o700).is_err());
        mkdir_open_at(dfd.as_fd(), Path::new("sub"), 0o700).unwrap();
        assert_eq!(
            file_type(&stat_entry(dfd.as_fd(), Path::new("link")).unwrap()),
            libc::S_IFLNK
        );
        open_dir_entry(dfd.as_fd(), Path::new("sub")).unwrap();
        for name in ["link", "fifo"] {
            let e = open_dir_entry(dfd.as_fd(), Path::new(name)).unwrap_err();
            let errno = e.raw_os_error();
            assert!(
                matches!(errno, Some(libc::ELOOP | libc::ENOTDIR)),
                "{name}: {e}"
            );
        }
        assert_eq!(std::fs::read(&outside).unwrap(), b"host secret");
        assert_eq!(
            read_dir_fd(dfd.as_fd()).unwrap(),
            ["fifo", "file", "link", "sub"].map(std::ffi::OsString::from)
        );
    }

    #[test]
    fn atomic_write_replaces() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("state.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
    }

    #[test]
    fn replace_file_swaps_in_place_and_leaves_nothing_else() {
        use std::os::unix::fs::MetadataExt;
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("state");
        replace_file(&p, b"one", 0o600).unwrap();
        // A reader holding the old file keeps reading the old content.
        let mut held = std::fs::File::open(&p).unwrap();
        let old_ino = held.metadata().unwrap().ino();
        replace_file(&p, b"two", 0o640).unwrap();
        let mut got = String::new();
        std::io::Read::read_to_string(&mut held, &mut got).unwrap();
        assert_eq!(got, "one");
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let md = std::fs::metadata(&p).unwrap();
        assert_ne!(md.ino(), old_ino);
        assert_eq!(md.mode() & 0o777, 0o640);
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 1);
        // A directory in the way is an error, and stays.
        let d = t.path().join("dir");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("inside"), b"x").unwrap();
        assert!(replace_file(&d, b"three", 0o600).is_err());
        assert!(d.join("inside").exists());
        assert_eq!(std::fs::read_dir(t.path()).unwrap().count(), 2);
    }
}

/// Undoes the octal escapes of /proc/self/mountinfo (`\\040` for a space,
/// also tab, newline and backslash); anything else is kept as it is.
pub fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).filter(|d| {
            b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)) && d[0] <= b'3'
        });
        if let Some(d) = octal {
            out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod unescape_tests {
    use super::unescape_mountinfo as u;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(u("a\\040b"), "a b");
        assert_eq!(u("a\\04"), "a\\04");
        assert_eq!(u("\\134x\\011"), "\\x\t");
        // Not a byte: kept, never a panic.
        assert_eq!(u("\\777"), "\\777");
        assert_eq!(u("\\"), "\\");
    }
}

/// `linkat(fd, "", dir, name, AT_EMPTY_PATH)`: a hard link to the file an
/// fd (also `O_PATH`) refers to, never re-resolving a path. Needs
/// CAP_DAC_READ_SEARCH.
pub fn link_fd(fd: BorrowedFd<'_>, dir: BorrowedFd<'_>, name: &Path) -> io::Result<()> {
    let c = cstr(name)?;
    // SAFETY: valid fds and C strings; AT_EMPTY_PATH acts on `fd` itself.
    cvt(unsafe {
        libc::linkat(
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            dir.as_raw_fd(),
            c.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// Sets an extended attribute on what an fd refers to. Regular fds use
/// fsetxattr; `O_PATH` fds (symlinks, devices) go through the fd's
/// /proc/self/fd magic link, which lands on the inode itself.
pub fn set_xattr_fd(fd: BorrowedFd<'_>, name: &[u8], value: &[u8], o_path: bool) -> io::Result<()> {
    let n = std::ffi::CString::new(name.to_vec())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if o_path {
        let p = crate::fd_path(fd.as_raw_fd());
        // SAFETY: valid C strings and a value buffer of the given length.
        cvt(unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })?;
    } else {
        // SAFETY: valid fd, C string and value buffer.
        cvt(unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        })?;
    }
    Ok(())
}

/// Removes an extended attribute from what an fd refers to (an `O_PATH`
/// fd through its /proc/self/fd magic link, as [`set_xattr_fd`]).
pub fn remove_xattr_fd(fd: BorrowedFd<'_>, name: &[u8], o_path: bool) -> io::Result<()> {
    let n = std::ffi::CString::new(name.to_vec())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    if o_path {
        let p = crate::fd_path(fd.as_raw_fd());
        // SAFETY: valid C strings.
        cvt(unsafe { libc::removexattr(p.as_ptr(), n.as_ptr()) })?;
    } else {
        // SAFETY: valid fd and C string.
        cvt(unsafe { libc::fremovexattr(fd.as_raw_fd(), n.as_ptr()) })?;
    }
    Ok(())
}

/// `futimens(2)` on an open (not `O_PATH`) fd: (seconds, nanoseconds).
pub fn set_times_fd(fd: BorrowedFd<'_>, atime: (i64, i64), mtime: (i64, i64)) -> io::Result<()> {
    let ts = [
        libc::timespec {
            tv_sec: atime.0,
            tv_nsec: atime.1,
        },
        libc::timespec {
            tv_sec: mtime.0,
            tv_nsec: mtime.1,
        },
    ];
    // SAFETY: valid fd and a two-element timespec array.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), ts.as_ptr()) })?;
    Ok(())
}

/// `syncfs(2)`: flushes the filesystem `fd` is on.
pub fn syncfs(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: valid fd.
    cvt(unsafe { libc::syncfs(fd.as_raw_fd()) })?;
    Ok(())
}

/// Makes the tree under the directory `root` durable file by file when it
/// holds at most `max_entries` entries: writeback of every regular file is
/// started at once (`sync_file_range`), then each file and each directory
/// (children before parents, `root` last) is fsynced. Returns false,
/// having synced nothing, for a larger tree: [`syncfs`] is then the
/// cheaper way. Unlike `syncfs`, its cost does not depend on what other
/// processes have left dirty on the same filesystem (a build's small RUN
/// layer waited up to 600 ms for another process's writes).
///
/// Walked by fd, never following a symlink; only regular files and
/// directories are opened (no fifo or device).
pub fn sync_tree(root: BorrowedFd<'_>, max_entries: usize) -> io::Result<bool> {
    let mut files: Vec<OwnedFd> = Vec::new();
    // Directories in the order they were found: a parent before its
    // children, so synced in reverse.
    let mut dirs: Vec<OwnedFd> = Vec::new();
    let mut pending = vec![reopen(root, libc::O_RDONLY | libc::O_DIRECTORY)?];
    let mut entries = 0usize;
    while let Some(dir) = pending.pop() {
        for name in read_dir_fd(dir.as_fd())? {
            entries += 1;
            if entries > max_entries {
                return Ok(false);
            }
            // Opened for reading only if a regular file or a directory.
            let (f, st) = open_entry(dir.as_fd(), Path::new(&name))?;
            match file_type(&st) {
                libc::S_IFDIR => pending.push(f),
                libc::S_IFREG => {
                    // SAFETY: valid fd; starts writeback, no memory effects.
                    cvt(unsafe {
                        libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE)
                    })?;
                    files.push(f);
                }
                _ => {}
            }
        }
        dirs.push(dir);
    }
    for f in &files {
        // SAFETY: valid fd.
        cvt(unsafe { libc::fsync(f.as_raw_fd()) })?;
    }
    for d in dirs.iter().rev() {
        // SAFETY: valid fd.
        cvt(unsafe { libc::fsync(d.as_raw_fd()) })?;
    }
    Ok(true)
}
