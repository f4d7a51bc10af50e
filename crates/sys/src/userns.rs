//! User namespaces as idmapping handles: the id maps' rules (pure) and a
//! user namespace holding given maps, whose fd `mount_setattr` takes
//! (`MOUNT_ATTR_IDMAP`) to make an idmapped mount.

use crate::cvt;
use crate::process::{self as sp, Forked};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// One line of a uid_map or gid_map: ids `inner..inner+size` inside the
/// namespace are `outer..outer+size` outside it (the OCI
/// `containerID`/`hostID`/`size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdRange {
    pub inner: u32,
    pub outer: u32,
    pub size: u32,
}

/// An unprivileged id to drop to, as the text of this process's
/// `/proc/self/uid_map` (or gid_map) allows: `preferred` when it is
/// mapped, else the highest mapped id other than 0 (never `(u32)-1`);
/// None when only 0 is mapped (`unshare --user --map-root-user`) or the
/// text is not a map.
pub fn unprivileged_id(map: &str, preferred: u32) -> Option<u32> {
    let mut best: Option<u32> = None;
    for line in map.lines().filter(|l| !l.trim().is_empty()) {
        let mut it = line.split_whitespace().map(str::parse::<u32>);
        let (Some(Ok(inner)), Some(Ok(_)), Some(Ok(size))) = (it.next(), it.next(), it.next())
        else {
            return None;
        };
        if size == 0 {
            continue;
        }
        let last = inner.saturating_add(size - 1).min(u32::MAX - 1);
        if (inner..=last).contains(&preferred) {
            return Some(preferred);
        }
        if last > 0 && best.is_none_or(|b| last > b) {
            best = Some(last);
        }
    }
    best
}

/// The kernel's limit on the lines of one map (since Linux 4.15).
pub const MAX_RANGES: usize = 340;

/// Checks a map as the kernel will (`map_write`): 1 to 340 ranges, none
/// empty, none reaching past id 4294967294 (`(u32)-1` is never mapped) on
/// either side, and no two overlapping on either side. The message names
/// the range by index.
pub fn check_map(map: &[IdRange]) -> Result<(), String> {
    if map.is_empty() {
        return Err("needs at least one range".into());
    }
    if map.len() > MAX_RANGES {
        return Err(format!(
            "has {} ranges; the kernel accepts at most {MAX_RANGES}",
            map.len()
        ));
    }
    let end = |start: u32, size: u32| u64::from(start) + u64::from(size);
    for (i, r) in map.iter().enumerate() {
        if r.size == 0 {
            return Err(format!("[{i}]: size must be greater than zero"));
        }
        if end(r.inner, r.size) > u64::from(u32::MAX) || end(r.outer, r.size) > u64::from(u32::MAX)
        {
            return Err(format!(
                "[{i}]: {} ids from {} (inside) or {} (outside) go past id 4294967294",
                r.size, r.inner, r.outer
            ));
        }
        for (j, o) in map[..i].iter().enumerate() {
            let overlap =
                |a: u32, b: u32| end(a, r.size) > u64::from(b) && end(b, o.size) > u64::from(a);
            if overlap(r.inner, o.inner) {
                return Err(format!("[{i}]: its inside ids overlap those of [{j}]"));
            }
            if overlap(r.outer, o.outer) {
                return Err(format!("[{i}]: its outside ids overlap those of [{j}]"));
            }
        }
    }
    Ok(())
}

/// The text of a uid_map/gid_map file.
pub fn map_text(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inner, r.outer, r.size))
        .collect()
}

/// A new user namespace (a child of ours) with these maps, as an nsfs fd.
/// No process lives in it once this returns: the fd keeps it.
///
/// A child is cloned into the new namespace only to name it: it blocks on a
/// pipe while we open its `ns/user`, `uid_map` and `gid_map`, and exits when
/// we close the pipe (or die: its read then sees EOF). The maps are written
/// through the files opened while it lived, which keep the namespace (the
/// kernel checks the opener's and the writer's privileges, not the
/// process's). The child runs only `close(2)`, `read(2)` and `_exit(2)`:
/// no allocation and no lock, the same rule a `pre_exec` closure follows,
/// so this is sound in a multi-threaded process too (see
/// [`sp::clone3`]'s contract).
///
/// The child's /proc directory is found from its pidfd, not from the pid
/// clone returned: /proc may be a procfs of another pid namespace (where
/// that number is another process, whose namespace we would give our
/// maps). Its `Pid:` in /proc/self/fdinfo is the child's pid as that
/// procfs numbers it; the directory is opened by that number, and the
/// child is still alive after (so the number was not reused).
///
/// Needs CAP_SETUID and CAP_SETGID over our user namespace for maps of ids
/// other than our own.
pub fn new_userns(uids: &[IdRange], gids: &[IdRange]) -> io::Result<OwnedFd> {
    for m in [uids, gids] {
        check_map(m).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    }
    let mut fds = [0; 2];
    // SAFETY: fds is an array of two ints, as pipe2 writes.
    cvt(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: two new fds that nothing else owns.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (rd_raw, wr_raw) = (rd.as_raw_fd(), wr.as_raw_fd());
    // SAFETY: see the function's comment: the child makes raw system calls
    // only, on memory prepared before the clone, and never returns.
    let forked = unsafe { sp::clone3(libc::CLONE_NEWUSER as u64 | sp::CLONE_PIDFD, None) }?;
    let (pid, pidfd) = match forked {
        Forked::Child => {
            let mut b = 0u8;
            // SAFETY: closing our copy of the write end (so that the read
            // sees EOF once the parent's is closed), a read of one byte
            // into a local, retried only when a signal interrupted it
            // (errno is this thread's); _exit never returns.
            unsafe {
                libc::close(wr_raw);
                while libc::read(rd_raw, (&mut b as *mut u8).cast(), 1) < 0 {
                    if *libc::__errno_location() != libc::EINTR {
                        libc::_exit(1);
                    }
                }
                libc::_exit(0)
            }
        }
        Forked::Parent { pid, pidfd } => (pid, pidfd),
    };
    drop(rd);
    let opened = pidfd
        .ok_or_else(|| io::Error::other("clone3 gave no pidfd for the user namespace's child"))
        .and_then(|pidfd| open_maps(pidfd.as_fd()));
    drop(wr);
    let _ = sp::waitpid(pid);
    let (ns, uid_map, gid_map) = opened?;
    for (f, m) in [(uid_map, uids), (gid_map, gids)] {
        let text = map_text(m);
        // SAFETY: a buffer of text.len() bytes, written to an fd we own.
        let n = cvt(unsafe { libc::write(f.as_raw_fd(), text.as_ptr().cast(), text.len()) })?;
        if n as usize != text.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "short write of an id map",
            ));
        }
    }
    Ok(ns)
}

/// `ns/user`, `uid_map` and `gid_map` of the process `pidfd` names, opened
/// in its /proc directory as /proc numbers it (see [`new_userns`]).
fn open_maps(pidfd: BorrowedFd<'_>) -> io::Result<(OwnedFd, OwnedFd, OwnedFd)> {
    use std::io::Read;
    use std::path::Path;
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    let proc = crate::fs::open(
        Path::new("/proc"),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?;
    if crate::fs::fs_magic(proc.as_fd())? != PROC_SUPER_MAGIC {
        return Err(io::Error::other("/proc is not a procfs"));
    }
    let mut info = String::new();
    std::fs::File::from(crate::fs::openat(
        proc.as_fd(),
        Path::new(&format!("self/fdinfo/{}", pidfd.as_raw_fd())),
        libc::O_RDONLY | libc::O_CLOEXEC,
        0,
    )?)
    .read_to_string(&mut info)?;
    let pid = pid_in_fdinfo(&info).ok_or_else(|| {
        io::Error::other(
            "the user namespace's child has no pid in /proc's pid namespace (/proc is another pid namespace's)",
        )
    })?;
    let dir = crate::fs::openat(
        proc.as_fd(),
        Path::new(&pid.to_string()),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
    )?;
    let open = |name: &str, flags: i32| {
        crate::fs::openat(dir.as_fd(), Path::new(name), flags | libc::O_CLOEXEC, 0)
    };
    let opened = (
        open("ns/user", libc::O_RDONLY)?,
        open("uid_map", libc::O_WRONLY)?,
        open("gid_map", libc::O_WRONLY)?,
    );
    // Alive (it only exits once we close the pipe): the directory was its.
    sp::pidfd_send_signal(pidfd, 0)?;
    Ok(opened)
}

/// The `Pid:` of a pidfd's fdinfo: the process's pid in the pid namespace
/// of the procfs read (0: none there; -1: gone).
fn pid_in_fdinfo(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|p| *p > 0)
        .and_then(|p| u32::try_from(p).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unprivileged_id_is_nobody_else_the_highest_mapped() {
        let initial = "         0          0 4294967295\n";
        assert_eq!(unprivileged_id(initial, 65534), Some(65534));
        // `unshare --user --map-root-user`: only 0.
        assert_eq!(unprivileged_id("0 1000 1\n", 65534), None);
        // Rootless with a subuid range too small for nobody.
        assert_eq!(
            unprivileged_id("0 1000 1\n1 100000 1000\n", 65534),
            Some(1000)
        );
        assert_eq!(
            unprivileged_id("0 1000 1\n1 100000 65536\n", 65534),
            Some(65534)
        );
        assert_eq!(unprivileged_id("5 1000 1\n", 65534), Some(5));
        assert_eq!(unprivileged_id("", 65534), None);
        assert_eq!(unprivileged_id("0 x 1", 65534), None);
    }

    fn r(inner: u32, outer: u32, size: u32) -> IdRange {
        IdRange { inner, outer, size }
    }

    #[test]
    fn maps_the_kernel_takes() {
        assert!(check_map(&[r(0, 100000, 65536)]).is_ok());
        assert!(check_map(&[r(0, 1000, 1), r(1, 100000, 65535)]).is_ok());
        assert!(check_map(&[r(0, 0, u32::MAX)]).is_ok());
        assert!(check_map(&[r(u32::MAX - 1, 5, 1)]).is_ok());
    }

    #[test]
    fn maps_the_kernel_refuses() {
        assert!(check_map(&[]).unwrap_err().contains("at least one"));
        assert!(check_map(&[r(0, 1, 0)]).unwrap_err().contains("[0]: size"));
        assert!(check_map(&[r(0, 0, u32::MAX), r(0, 0, 1)]).is_err());
        assert!(check_map(&[r(u32::MAX, 5, 1)])
            .unwrap_err()
            .contains("past"));
        assert!(check_map(&[r(5, u32::MAX - 1, 2)])
            .unwrap_err()
            .contains("past"));
        let e = check_map(&[r(0, 1000, 10), r(9, 2000, 1)]).unwrap_err();
        assert!(
            e.contains("[1]: its inside ids overlap those of [0]"),
            "{e}"
        );
        let e = check_map(&[r(0, 1000, 10), r(10, 1005, 1)]).unwrap_err();
        assert!(e.contains("outside ids overlap"), "{e}");
        let many: Vec<_> = (0..341).map(|i| r(i, 1000 + i, 1)).collect();
        assert!(check_map(&many).unwrap_err().contains("at most 340"));
    }

    #[test]
    fn a_pidfds_pid_is_read_from_its_fdinfo() {
        let info = "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4242\nNSpid:\t4242\n";
        assert_eq!(pid_in_fdinfo(info), Some(4242));
        // Not in that procfs's pid namespace, gone, or no field at all.
        assert_eq!(pid_in_fdinfo("Pid:\t0\n"), None);
        assert_eq!(pid_in_fdinfo("Pid:\t-1\n"), None);
        assert_eq!(pid_in_fdinfo("pos:\t0\n"), None);
    }

    /// A namespace with the maps asked for, named by the fd, with no
    /// process left in it. Needs root (maps of ids other than ours).
    #[test]
    fn a_new_user_namespace_has_the_maps() {
        let uids = [r(0, 100000, 65536)];
        let gids = [r(0, 200000, 1000), r(1000, 300000, 1)];
        let ns = new_userns(&uids, &gids).expect("make a user namespace (the test needs root)");
        assert_eq!(
            crate::process::ns_type(ns.as_fd()).unwrap(),
            libc::CLONE_NEWUSER
        );
        // Two namespaces: two different ones.
        let other = new_userns(&uids, &gids).unwrap();
        let ino = |fd: &OwnedFd| crate::fs::fstat(fd.as_fd()).unwrap().st_ino;
        assert_ne!(ino(&ns), ino(&other));
    }

    #[test]
    fn map_text_is_one_line_per_range() {
        assert_eq!(
            map_text(&[r(0, 100000, 1), r(1, 5, 2)]),
            "0 100000 1\n1 5 2\n"
        );
    }
}
