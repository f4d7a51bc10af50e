//! Network namespaces bind-mounted on a file (as `ip netns` does): made on
//! a thread of their own, entered by threads of their own, so the calling
//! thread's namespace never changes.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use crate::{io, Error, Result};

/// `NS_GET_NSTYPE` (`_IO(0xb7, 0x3)`, linux/nsfs.h): the namespace type of
/// an nsfs fd.
const NS_GET_NSTYPE: libc::c_ulong = 0xb703;

/// Creates a network namespace bound at `path` (a new file in an existing
/// directory; Conflict if it exists), with its loopback up. Made on a thread
/// of its own (unshare(CLONE_NEWNET) on that thread, bind mount
/// /proc/thread-self/ns/net onto the file); the calling thread's namespace is
/// unchanged. On any failure nothing is left (file unmounted and removed).
pub fn create(path: &Path) -> Result<()> {
    let display = path.display();
    match berth_sys::fs::open(
        path,
        libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW,
        0,
    ) {
        Ok(fd) => drop(fd),
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            return Err(Error::Conflict(format!(
                "create network namespace {display}: the file exists already (remove it with its owner)"
            )))
        }
        Err(e) => return Err(io(format!("create network namespace file {display}"))(e)),
    }
    let made = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            // SAFETY: unshare has no memory preconditions; it changes only
            // this thread's network namespace (threads share no netns state
            // that Rust relies on), and this thread ends right after.
            berth_sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWNET) })
                .map_err(io(format!("unshare a network namespace for {display}")))?;
            crate::link::loopback_up()?;
            let target = berth_sys::cstr(path).map_err(io(format!("mount on {display}")))?;
            berth_sys::mount::mount(
                Some(c"/proc/thread-self/ns/net"),
                &target,
                None,
                libc::MS_BIND,
                None,
            )
            .map_err(io(format!("bind mount the network namespace on {display}")))
        })
        .join()
    });
    let made = match made {
        Ok(r) => r,
        // The thread runs only our code above, which returns its errors.
        Err(_) => Err(io(format!("create network namespace {display}"))(
            std::io::Error::other("its thread panicked"),
        )),
    };
    if let Err(e) = made {
        // Best effort: the error that matters is the one above.
        let _ = remove(path);
        return Err(e);
    }
    Ok(())
}

/// Unmounts (MNT_DETACH) and removes the file; a missing file or a file that
/// is not mounted is Ok. The unlink also detaches copies of the mount that
/// propagated into other mount namespaces (the kernel unmounts a removed
/// mount point everywhere), so the namespace does not outlive its file.
pub fn remove(path: &Path) -> Result<()> {
    let display = path.display();
    let c = berth_sys::cstr(path).map_err(io(format!("remove network namespace {display}")))?;
    match berth_sys::mount::umount2(&c, libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOENT)) => {}
        Err(e) => return Err(io(format!("unmount network namespace {display}"))(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(format!("remove network namespace file {display}"))(e)),
    }
}

/// True if `path` is a bind-mounted network namespace (ioctl NS_GET_NSTYPE).
pub fn is_netns(path: &Path) -> bool {
    match open_ns(path) {
        Ok(fd) => ns_type(fd.as_fd()) == Some(libc::CLONE_NEWNET),
        Err(_) => false,
    }
}

/// Runs `f` on a new thread that has entered the namespace at `path` (setns
/// CLONE_NEWNET), and returns its value. Processes spawned by `f` are in that
/// namespace.
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> T + Send) -> Result<T> {
    let fd = open_netns(path)?;
    run_in_fd(fd.as_fd(), path, f)
}

/// Opens the namespace file at `path`: NotFound if it is missing, Invalid if
/// it is not a network namespace.
pub(crate) fn open_netns(path: &Path) -> Result<OwnedFd> {
    let fd = open_ns(path).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOENT) {
            Error::NotFound(format!(
                "open network namespace {}: it does not exist",
                path.display()
            ))
        } else {
            io(format!("open network namespace {}", path.display()))(e)
        }
    })?;
    if ns_type(fd.as_fd()) != Some(libc::CLONE_NEWNET) {
        return Err(Error::Invalid(format!(
            "open network namespace {}: not a network namespace (not an nsfs bind mount)",
            path.display()
        )));
    }
    Ok(fd)
}

/// [`run_in`] with the namespace already open (`path` names it in errors).
pub(crate) fn run_in_fd<T: Send>(
    fd: BorrowedFd<'_>,
    path: &Path,
    f: impl FnOnce() -> T + Send,
) -> Result<T> {
    let joined = std::thread::scope(|s| {
        s.spawn(move || -> Result<T> {
            // SAFETY: fd is a valid open nsfs fd for the call; setns changes
            // only this thread's network namespace, and the thread is ours.
            berth_sys::cvt(unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) })
                .map_err(io(format!("enter network namespace {}", path.display())))?;
            Ok(f())
        })
        .join()
    });
    match joined {
        Ok(r) => r,
        // `f` is the caller's code: its panic is the caller's.
        Err(payload) => std::panic::resume_unwind(payload),
    }
}

fn open_ns(path: &Path) -> std::io::Result<OwnedFd> {
    berth_sys::fs::open(path, libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY, 0)
}

fn ns_type(fd: BorrowedFd<'_>) -> Option<libc::c_int> {
    // SAFETY: NS_GET_NSTYPE takes no argument; on a file that is not nsfs
    // the kernel answers ENOTTY.
    let t = unsafe { libc::ioctl(fd.as_raw_fd(), NS_GET_NSTYPE as _) };
    (t >= 0).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::tests::{in_test_netns, seen, wait_gone, NsDir};
    use crate::link::{attach, Bridge, Netlink, Veth};

    fn own_netns() -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata("/proc/thread-self/ns/net").unwrap().ino()
    }

    #[test]
    fn create_run_in_remove() {
        in_test_netns(|| {
            let dir = NsDir::new();
            let p = dir.path().join("ns");
            let before = own_netns();
            create(&p).unwrap();
            assert_eq!(own_netns(), before, "the caller's namespace changed");
            assert!(is_netns(&p));
            let (inside, lo_up, names) = run_in(&p, || {
                let names = Netlink::open().unwrap().link_names().unwrap();
                (own_netns(), seen("lo").unwrap().up, names)
            })
            .unwrap();
            assert_ne!(inside, before);
            assert!(lo_up, "loopback down in a new namespace");
            assert_eq!(names, vec!["lo".to_string()]);
            // Processes spawned from run_in are in the namespace.
            let out = run_in(&p, || {
                std::process::Command::new("readlink")
                    .arg("/proc/self/ns/net")
                    .output()
                    .unwrap()
            })
            .unwrap();
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                format!("net:[{inside}]")
            );
            // The same namespace each time (the mount, not a thread, holds it).
            assert_eq!(run_in(&p, own_netns).unwrap(), inside);

            // An existing file: Conflict, and it is left alone.
            let e = create(&p).unwrap_err();
            assert!(matches!(e, Error::Conflict(_)), "{e}");
            assert!(is_netns(&p));

            remove(&p).unwrap();
            assert!(!p.exists());
            assert!(!is_netns(&p));
            remove(&p).unwrap();
            // A plain file (not mounted) is removed too.
            std::fs::write(&p, "").unwrap();
            assert!(!is_netns(&p));
            let e = run_in(&p, || ()).unwrap_err();
            assert!(matches!(e, Error::Invalid(_)), "{e}");
            remove(&p).unwrap();
            assert!(!p.exists());
            let e = run_in(&p, || ()).unwrap_err();
            assert!(matches!(e, Error::NotFound(_)), "{e}");
            assert!(e.to_string().contains(&p.display().to_string()), "{e}");

            // A missing directory: an error naming the path, nothing left.
            let q = dir.path().join("missing").join("ns");
            let e = create(&q).unwrap_err();
            assert!(e.to_string().contains(&q.display().to_string()), "{e}");
            assert!(!q.exists());
            assert!(
                !is_netns(Path::new("/proc/self/ns/mnt")),
                "a mount namespace"
            );
            assert!(is_netns(Path::new("/proc/self/ns/net")));
        });
    }

    /// A copy of the mount in another mount namespace (a container made while
    /// the namespace existed) must not keep the namespace, and its veth pair,
    /// alive after `remove`.
    #[test]
    fn remove_detaches_copies_in_other_mount_namespaces() {
        in_test_netns(|| {
            let dir = NsDir::new();
            let p = dir.path().join("ns");
            let mut nl = Netlink::open().unwrap();
            nl.ensure_bridge(&Bridge {
                name: "bt1".into(),
                mtu: None,
                addresses: vec!["10.98.0.1/24".parse().unwrap()],
                ipv6: false,
            })
            .unwrap();
            create(&p).unwrap();
            attach(
                &p,
                &Veth {
                    host_name: "vtm".into(),
                    bridge: "bt1".into(),
                    container_name: "eth0".into(),
                    mtu: None,
                    mac: None,
                    addresses: vec!["10.98.0.2/24".parse().unwrap()],
                    gateways: vec![],
                },
            )
            .unwrap();
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
            let path = p.clone();
            let holder = std::thread::spawn(move || {
                // SAFETY: a new mount namespace for this thread only (it gets
                // its own fs_struct); it copies the namespace's bind mount.
                let r = unsafe { libc::unshare(libc::CLONE_NEWNS) };
                assert_eq!(
                    r,
                    0,
                    "unshare(CLONE_NEWNS): {}",
                    std::io::Error::last_os_error()
                );
                // Private: the copy does not see our unmount by propagation.
                let root = berth_sys::cstr("/").unwrap();
                berth_sys::mount::mount(None, &root, None, libc::MS_REC | libc::MS_PRIVATE, None)
                    .unwrap();
                ready_tx.send(is_netns(&path)).unwrap();
                let _ = done_rx.recv();
            });
            assert!(
                ready_rx.recv().unwrap(),
                "the copy is not in the new mount namespace"
            );
            remove(&p).unwrap();
            wait_gone("vtm");
            done_tx.send(()).unwrap();
            holder.join().unwrap();
            nl.delete_link("bt1").unwrap();
        });
    }
}
