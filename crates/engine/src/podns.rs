//! A pod's shared namespaces bound on files (as `ip netns` binds network
//! namespaces): made when its infra starts, they hold the namespaces
//! instead of the infra's process, so the pod's first member is set up
//! while the infra still starts, and joins them by path.
//!
//! `RUN_ROOT/podns/INFRA_ID/{net,ipc,uts}`: a namespace the pod shares and
//! the infra would otherwise make itself (its network namespace only when
//! the network code does not bind one already, that is on `none`). Made on
//! a thread of their own (unshare, then the host name and the loopback
//! set, then a bind mount of each `/proc/thread-self/ns/KIND`), so the
//! caller's namespaces never change; unmounted and removed when the infra
//! ends, and by the next pod command after a kill -9 left them.
//!
//! With the IPC namespace goes the pod's `/dev/shm`: a tmpfs on
//! `INFRA_ID/shm` (the pod's `--shm-size`), which the infra and every
//! member bind, so that POSIX shared memory (`shm_open`) is shared as the
//! namespace's System V objects are (Docker's and Podman's `--ipc
//! container:`).
//!
//! `--ipc container:NAME` of another container (not a pod's infra) binds
//! NAME's /dev/shm likewise: cloned from NAME's mount namespace (on a
//! thread that enters it, `open_tree`), attached on `RUN_ROOT/shm/ID`
//! for the joiner's run, and detached when that run ends.

use crate::error::{io, Error, Result};
use crate::records::{Record, Status};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// The kinds, in the order they are bound.
const KINDS: [(&str, libc::c_int); 3] = [
    ("net", libc::CLONE_NEWNET),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
];

impl crate::Engine {
    pub(crate) fn podns_root(&self) -> PathBuf {
        self.paths.run_root.join("podns")
    }

    /// The directory of the infra `id`'s bound namespaces.
    pub(crate) fn podns_dir(&self, id: &str) -> PathBuf {
        self.podns_root().join(id)
    }

    /// The bound namespace `kind` of the container `id` (a pod's infra),
    /// if there is one.
    pub(crate) fn podns(&self, id: &str, kind: &str) -> Option<PathBuf> {
        let p = self.podns_dir(id).join(kind);
        p.exists().then_some(p)
    }

    /// At an infra's start (`rec`, the bundle being written): binds the
    /// namespaces its pod shares and returns them, to be joined by the
    /// infra and its members. `netns`: the network namespace the network
    /// code bound for it, if any; `hostname`: the pod's host name.
    pub(crate) fn bind_pod_namespaces(
        &self,
        rec: &Record,
        netns: Option<&Path>,
        hostname: &str,
    ) -> Result<Vec<(&'static str, PathBuf)>> {
        let Some(pod) = self.pod_of_infra(rec) else {
            return Ok(Vec::new());
        };
        let ns = &rec.spec.namespaces;
        let kinds: Vec<(&'static str, libc::c_int)> = KINDS
            .into_iter()
            .filter(|(k, _)| pod.spec.shares(k))
            .filter(|(k, _)| match *k {
                "net" => netns.is_none() && ns.net == crate::specgen::NamespaceMode::Private,
                "ipc" => ns.ipc == crate::specgen::NamespaceMode::Private,
                _ => ns.uts == crate::specgen::NamespaceMode::Private,
            })
            .collect();
        let dir = self.podns_dir(&rec.id);
        // A member that runs still holds the namespaces bound before (the
        // infra died under it): they are kept, as its pod's. By the
        // records, not refreshed: this start holds the infra's lock, which
        // a refresh of the infra would wait for. Read only when there are
        // bindings to keep (a fresh start has none).
        let ipc = kinds.iter().any(|(k, _)| *k == "ipc");
        let shared = |kinds: &[(&'static str, libc::c_int)]| {
            let mut out: Vec<(&'static str, PathBuf)> =
                kinds.iter().map(|(k, _)| (*k, dir.join(k))).collect();
            if ipc {
                out.push(("shm", dir.join("shm")));
            }
            out
        };
        let bound = kinds.iter().all(|(k, _)| dir.join(k).exists())
            && (!ipc || shm_mounted(&dir.join("shm")));
        let members_run = || {
            self.records.all().is_ok_and(|cs| {
                cs.iter().any(|r| {
                    r.id != rec.id
                        && r.spec.pod.as_deref() == Some(pod.id.as_str())
                        && matches!(r.state.status, Status::Running | Status::Restarting)
                })
            })
        };
        if bound && members_run() {
            return Ok(shared(&kinds));
        }
        // Fresh ones: what a start that died left goes first.
        self.unbind_pod_namespaces(&rec.id);
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        berth_sys::fs::create_private_dir_all(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let mut made = bind(&dir, &kinds, hostname);
        if made.is_ok() && ipc {
            made = mount_shm(&dir.join("shm"), rec.spec.storage.shm_size);
        }
        if let Err(e) = made {
            self.unbind_pod_namespaces(&rec.id);
            return Err(e);
        }
        Ok(shared(&kinds))
    }

    /// Unmounts and removes the infra `id`'s bound namespaces (none: Ok).
    pub(crate) fn unbind_pod_namespaces(&self, id: &str) {
        let dir = self.podns_dir(id);
        if !dir.exists() {
            return;
        }
        for (k, _) in KINDS {
            let p = dir.join(k);
            if let Err(e) = berth_network::netns::remove(&p) {
                eprintln!("berth: warning: container {id}: remove its bound {k} namespace: {e}");
            }
        }
        let shm = dir.join("shm");
        if let Err(e) = crate::rootfs::detach_point(&shm) {
            eprintln!(
                "berth: warning: container {id}: remove the pod's /dev/shm {}: {e}",
                shm.display()
            );
        }
        let _ = std::fs::remove_dir(&dir);
    }

    /// Where the /dev/shm that the container `id` joined is attached on
    /// the host for its run ([`Engine::attach_joined_shm`]).
    fn joined_shm(&self, id: &str) -> PathBuf {
        self.paths.run_root.join("shm").join(id)
    }

    /// `--ipc container:OTHER` (OTHER's init runs as `pid`): OTHER's
    /// /dev/shm, attached on the host for the run of the container `id`,
    /// which binds it as its own.
    pub(crate) fn attach_joined_shm(&self, id: &str, other: &str, pid: i32) -> Result<PathBuf> {
        let what = || format!("--ipc container:{other}: share its /dev/shm");
        let mntns = berth_sys::fs::open(
            Path::new(&format!("/proc/{pid}/ns/mnt")),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
        )
        .map_err(io(what()))?;
        let tree = std::thread::scope(|s| {
            s.spawn(|| -> std::io::Result<std::os::fd::OwnedFd> {
                // Its own root and cwd first (setns into a mount namespace
                // needs them unshared); then OTHER's namespace, whose root
                // becomes this thread's: the path is resolved inside it,
                // following no link.
                berth_sys::process::unshare(libc::CLONE_FS)?;
                berth_sys::process::setns(mntns.as_fd(), libc::CLONE_NEWNS)?;
                let root = berth_sys::fs::open(
                    Path::new("/"),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    0,
                )?;
                let shm = berth_sys::fs::openat2(
                    root.as_fd(),
                    Path::new("dev/shm"),
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    0,
                    berth_sys::fs::RESOLVE_IN_ROOT
                        | berth_sys::fs::RESOLVE_NO_SYMLINKS
                        | berth_sys::fs::RESOLVE_NO_MAGICLINKS,
                )?;
                // Docker binds the tmpfs it made for the donor, whatever the
                // donor mounted over it since: a donor's /dev/shm that is no
                // tmpfs (a privileged one's bind of a disk) is refused.
                let magic = berth_sys::fs::fs_magic(shm.as_fd())?;
                if magic != berth_sys::fs::TMPFS_MAGIC {
                    return Err(std::io::Error::other(format!(
                        "its /dev/shm is not a tmpfs (filesystem type {magic:#x})"
                    )));
                }
                berth_sys::mount::open_tree(shm.as_fd(), berth_sys::mount::OPEN_TREE_CLONE)
            })
            .join()
        });
        let tree = match tree {
            Ok(r) => r.map_err(io(what()))?,
            // The thread runs only the system calls above.
            Err(_) => return Err(Error::Runtime(format!("{}: the thread panicked", what()))),
        };
        let target = self.joined_shm(id);
        self.release_joined_shm(id);
        berth_sys::fs::create_private_dir_all(&target)
            .map_err(io(format!("create {}", target.display())))?;
        let attached = berth_sys::fs::open(
            &target,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0,
        )
        .and_then(|t| berth_sys::mount::move_mount(tree.as_fd(), t.as_fd()));
        if let Err(e) = attached {
            self.release_joined_shm(id);
            return Err(io(what())(e));
        }
        Ok(target)
    }

    /// Detaches and removes the /dev/shm the container `id` joined, if any.
    pub(crate) fn release_joined_shm(&self, id: &str) {
        let p = self.joined_shm(id);
        if let Err(e) = crate::rootfs::detach_point(&p) {
            eprintln!(
                "berth: warning: container {id}: detach the /dev/shm it joined ({}): {e}",
                p.display()
            );
        }
    }

    /// Removes the bound namespaces of infras that are gone (a kill -9
    /// between their start and their end's cleanup), and the joined
    /// /dev/shm of containers that are gone.
    pub(crate) fn reconcile_pod_namespaces(&self) {
        for id in self.ids_without_record(&self.paths.run_root.join("shm")) {
            self.release_joined_shm(&id);
        }
        for id in self.ids_without_record(&self.podns_root()) {
            self.unbind_pod_namespaces(&id);
        }
    }

    /// The names in `dir` (one per container) that no container record
    /// has (none when `dir` cannot be read).
    fn ids_without_record(&self, dir: &Path) -> Vec<String> {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|id| matches!(self.records.get(id), Ok(None)))
            .collect()
    }
}

/// Makes the namespaces `kinds` on a thread of their own and binds each on
/// `dir/KIND`.
fn bind(dir: &Path, kinds: &[(&'static str, libc::c_int)], hostname: &str) -> Result<()> {
    for (k, _) in kinds {
        let p = dir.join(k);
        berth_sys::fs::open(
            &p,
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
        .map_err(io(format!("create {}", p.display())))?;
    }
    let flags = kinds.iter().fold(0, |f, (_, c)| f | c);
    let made = std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            // SAFETY: unshare has no memory preconditions; it changes only
            // this thread's namespaces of these kinds (no state Rust relies
            // on), and the thread ends right after.
            berth_sys::cvt(unsafe { libc::unshare(flags) }).map_err(io(format!(
                "unshare the pod's namespaces in {}",
                dir.display()
            )))?;
            if flags & libc::CLONE_NEWUTS != 0 {
                berth_sys::process::sethostname(hostname)
                    .map_err(io(format!("set the pod's host name {hostname}")))?;
            }
            if flags & libc::CLONE_NEWNET != 0 {
                berth_network::link::loopback_up()
                    .map_err(|e| Error::Runtime(format!("the pod's network namespace: {e}")))?;
            }
            for (k, _) in kinds {
                let src = format!("/proc/thread-self/ns/{k}");
                let src = berth_sys::cstr(&src).map_err(io("bind the pod's namespaces"))?;
                let target = dir.join(k);
                let t = berth_sys::cstr(&target).map_err(io("bind the pod's namespaces"))?;
                berth_sys::mount::mount(Some(src.as_c_str()), &t, None, libc::MS_BIND, None)
                    .map_err(io(format!(
                        "bind the pod's {k} namespace on {}",
                        target.display()
                    )))?;
            }
            Ok(())
        })
        .join()
    });
    match made {
        Ok(r) => r,
        // The thread runs only our code above, which returns its errors.
        Err(_) => Err(Error::Runtime(format!(
            "bind the pod's namespaces in {}: the thread panicked",
            dir.display()
        ))),
    }
}

/// The pod's /dev/shm: a tmpfs of `size` bytes (64 MiB by default) on
/// `path`, made here (a directory only root can reach, in the run root).
fn mount_shm(path: &Path, size: Option<u64>) -> Result<()> {
    match std::fs::create_dir(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io(format!("create {}", path.display()))(e)),
    }
    let target = berth_sys::cstr(path).map_err(io("mount the pod's /dev/shm"))?;
    let data = format!("mode=1777,size={}", size.unwrap_or(64 << 20));
    let data = berth_sys::cstr(&data).map_err(io("mount the pod's /dev/shm"))?;
    berth_sys::mount::mount(
        Some(c"shm"),
        &target,
        Some(c"tmpfs"),
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        Some(data.as_c_str()),
    )
    .map_err(io(format!(
        "mount the pod's /dev/shm on {}",
        path.display()
    )))
}

/// Whether something is mounted on `path` (its device differs from its
/// parent directory's).
fn shm_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::symlink_metadata(path),
        path.parent().map(std::fs::metadata),
    ) {
        (Ok(m), Some(Ok(p))) => m.is_dir() && m.dev() != p.dev(),
        _ => false,
    }
}
