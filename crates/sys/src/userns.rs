//! User namespaces as idmapping handles: the id maps' rules (pure) and a
//! user namespace holding given maps, whose fd `mount_setattr` takes
//! (`MOUNT_ATTR_IDMAP`) to make an idmapped mount.

use crate::cvt;
use crate::process::{self as sp, Forked};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// One line of a uid_map or gid_map: ids `inner..inner+size` inside the
/// namespace are `outer..outer+size` outside it (the OCI
/// `containerID`/`hostID`/`size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdRange {
    pub inner: u32,
    pub outer: u32,
    pub size: u32,
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
/// process's). The child runs only `read(2)` and `_exit(2)`: no allocation
/// and no lock, the same rule a `pre_exec` closure follows, so this is
/// sound in a multi-threaded process too.
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
    let forked = unsafe { sp::clone3(libc::CLONE_NEWUSER as u64, None) }?;
    let pid = match forked {
        Forked::Child => {
            let mut b = 0u8;
            // SAFETY: closing our copy of the write end (so that the read
            // sees EOF once the parent's is closed), a read of one byte
            // into a local; _exit never returns.
            unsafe {
                libc::close(wr_raw);
                while libc::read(rd_raw, (&mut b as *mut u8).cast(), 1) < 0 {}
                libc::_exit(0)
            }
        }
        Forked::Parent { pid, .. } => pid,
    };
    drop(rd);
    let opened = (|| {
        let open = |name: &str, flags: i32| {
            crate::fs::open(
                std::path::Path::new(&format!("/proc/{pid}/{name}")),
                flags | libc::O_CLOEXEC,
                0,
            )
        };
        Ok::<_, io::Error>((
            open("ns/user", libc::O_RDONLY)?,
            open("uid_map", libc::O_WRONLY)?,
            open("gid_map", libc::O_WRONLY)?,
        ))
    })();
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn map_text_is_one_line_per_range() {
        assert_eq!(
            map_text(&[r(0, 100000, 1), r(1, 5, 2)]),
            "0 100000 1\n1 5 2\n"
        );
    }
}
