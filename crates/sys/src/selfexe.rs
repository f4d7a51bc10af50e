//! CVE-2019-5736: the runtime's own binary must never be writable from a
//! container. Processes the runtime puts into a container (the init before
//! it execs, an exec child) are this binary; if one of them executes
//! `/proc/self/exe` again (a `#!/proc/self/exe` entrypoint does), it runs
//! dumpable inside the container, which can then open its
//! `/proc/<pid>/exe` and write through it once the runtime has exited.
//!
//! So the runtime re-executes itself, once, from a copy the container
//! cannot write: a read-only overlay of its own directory mounted detached
//! (never visible in any mount tree, no data copied, page cache shared), or
//! where overlay cannot be mounted (no privilege, no overlay module) a
//! sealed memfd copy.

use crate::{cvt, mount, EMPTY};
use std::convert::Infallible;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// How the running binary is kept out of the container's reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// On a read-only filesystem (our detached overlay, or a read-only
    /// /usr): `open(O_WRONLY)` fails with EROFS.
    ReadOnly,
    /// A memfd sealed against writes, growth and shrinking.
    SealedMemfd,
}

/// How `/proc/self/exe` is protected, if it is.
pub fn protection() -> io::Result<Option<Protection>> {
    let exe = crate::fs::open(
        std::path::Path::new("/proc/self/exe"),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )?;
    // SAFETY: F_GET_SEALS on an fd we own; fails with EINVAL on non-memfds.
    let seals = unsafe { libc::fcntl(exe.as_raw_fd(), libc::F_GET_SEALS) };
    let need = libc::F_SEAL_WRITE | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
    if seals >= 0 && seals & need == need {
        return Ok(Some(Protection::SealedMemfd));
    }
    // SAFETY: statvfs is plain data; zeroed is a valid initial value.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and out-pointer.
    cvt(unsafe { libc::fstatvfs(exe.as_raw_fd(), &mut st) })?;
    if st.f_flag & libc::ST_RDONLY != 0 {
        return Ok(Some(Protection::ReadOnly));
    }
    Ok(None)
}

/// Re-executes this program with `argv` and `envp` from a protected copy:
/// the read-only overlay if it can be mounted, else a sealed memfd. Returns
/// only on failure.
///
/// `dummy` is a directory for the overlay's second lower layer (overlay
/// needs two to be read-only without an upper layer). It must not contain
/// nor be inside the binary's directory; what it holds does not matter,
/// since the binary's directory is the top layer. Kernels before 6.5 or so
/// cannot use a detached mount as a layer, so it is a real directory.
pub fn reexec_protected(
    argv: &[CString],
    envp: &[CString],
    dummy: Option<BorrowedFd<'_>>,
) -> io::Result<Infallible> {
    let exe = match dummy.map(overlay_exe) {
        Some(Ok(fd)) => fd,
        _ => memfd_exe()?,
    };
    execveat_empty(exe.as_fd(), argv, envp)
}

/// `/proc/self/exe` opened through a detached overlay whose lower layers
/// are the binary's own directory and `dummy`.
fn overlay_exe(dummy: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let target = std::fs::read_link("/proc/self/exe")?;
    let exe = protected_binary(&target, dummy)?;
    // The overlay must be the same binary: compare with what runs now.
    let now = crate::fs::open(
        std::path::Path::new("/proc/self/exe"),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )?;
    if !same_contents_size(exe.as_fd(), now.as_fd())? {
        return Err(io::Error::from_raw_os_error(libc::ESTALE));
    }
    Ok(exe)
}

/// `target` opened through a detached read-only overlay whose lower layers
/// are its directory and `dummy` (no data copied). A program executed from
/// it cannot be written through its `/proc/PID/exe` (CVE-2019-5736), and
/// [`protection`] reports it as read-only: a process that starts a runtime
/// which checks this (berth's monitor) saves it re-executing itself. The
/// mount lives as long as the fd, or the process executed from it.
///
/// `dummy` must not contain nor be inside `target`'s directory; what it
/// holds does not matter, since that directory is the top layer.
pub fn protected_binary(target: &std::path::Path, dummy: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    // The binary itself, not a symbolic link to it (`/usr/local/bin/X ->
    // /opt/...`, an alternatives link): a link opened in the overlay of
    // its own directory leads out of it, to the writable file.
    let target = std::fs::canonicalize(target)?;
    let target = target.as_path();
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    let dir = target
        .parent()
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))?;
    let dir = crate::fs::open(dir, libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC, 0)?;
    let ovl = mount::detached_overlay(&[dir.as_fd(), dummy])?;
    crate::fs::openat(
        ovl.as_fd(),
        std::path::Path::new(name),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )
}

fn same_contents_size(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<bool> {
    let st = |fd: BorrowedFd<'_>| -> io::Result<libc::stat> {
        // SAFETY: stat is plain data; zeroed is a valid initial value.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: valid fd and out-pointer.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        Ok(st)
    };
    let (sa, sb) = (st(a)?, st(b)?);
    // overlay reports the lower file's inode number and size.
    Ok(sa.st_size == sb.st_size && sa.st_ino == sb.st_ino)
}

/// A sealed memfd holding a copy of `/proc/self/exe`.
fn memfd_exe() -> io::Result<OwnedFd> {
    let src = crate::fs::open(
        std::path::Path::new("/proc/self/exe"),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )?;
    // SAFETY: a valid C string and flags.
    let fd = cvt(unsafe {
        libc::memfd_create(
            c"berth-runtime".as_ptr(),
            libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
        )
    })?;
    // SAFETY: a new fd we own.
    let mem = unsafe { OwnedFd::from_raw_fd(fd) };
    loop {
        // SAFETY: two valid fds; a null offset uses and moves src's offset.
        let n = cvt(unsafe {
            libc::sendfile(
                mem.as_raw_fd(),
                src.as_raw_fd(),
                std::ptr::null_mut(),
                1 << 30,
            )
        })?;
        if n == 0 {
            break;
        }
    }
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: F_ADD_SEALS on a memfd we own.
    cvt(unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
    Ok(mem)
}

fn execveat_empty(
    fd: BorrowedFd<'_>,
    argv: &[CString],
    envp: &[CString],
) -> io::Result<Infallible> {
    let mut a: Vec<*const libc::c_char> = argv.iter().map(|s| s.as_ptr()).collect();
    a.push(std::ptr::null());
    let mut e: Vec<*const libc::c_char> = envp.iter().map(|s| s.as_ptr()).collect();
    e.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the
    // call; an empty path with AT_EMPTY_PATH executes the fd itself.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            EMPTY.as_ptr(),
            a.as_ptr(),
            e.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    })?;
    Err(io::Error::other("execveat returned without an error"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memfd_copy_is_identical_and_sealed() {
        let mem = memfd_exe().unwrap();
        let copy = std::fs::read(format!("/proc/self/fd/{}", mem.as_raw_fd())).unwrap();
        assert_eq!(copy, std::fs::read("/proc/self/exe").unwrap());
        // SAFETY: F_GET_SEALS on an fd we own.
        let seals = unsafe { libc::fcntl(mem.as_raw_fd(), libc::F_GET_SEALS) };
        for s in [
            libc::F_SEAL_WRITE,
            libc::F_SEAL_SHRINK,
            libc::F_SEAL_GROW,
            libc::F_SEAL_SEAL,
        ] {
            assert_ne!(seals & s, 0, "seal {s:#x} missing");
        }
        // Writable opens are refused, through the fd's path as a container
        // would try it.
        let e = std::fs::OpenOptions::new()
            .write(true)
            .open(format!("/proc/self/fd/{}", mem.as_raw_fd()))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"x"))
            .unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EPERM), "{e}");
    }
}
