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

use crate::error::{io, Error, Result};
use crate::records::{Record, Status};
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
        let bound = kinds.iter().all(|(k, _)| dir.join(k).exists());
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
            return Ok(kinds.iter().map(|(k, _)| (*k, dir.join(k))).collect());
        }
        // Fresh ones: what a start that died left goes first.
        self.unbind_pod_namespaces(&rec.id);
        if kinds.is_empty() {
            return Ok(Vec::new());
        }
        berth_sys::fs::create_private_dir_all(&dir)
            .map_err(io(format!("create {}", dir.display())))?;
        let made = bind(&dir, &kinds, hostname);
        if let Err(e) = made {
            self.unbind_pod_namespaces(&rec.id);
            return Err(e);
        }
        Ok(kinds.iter().map(|(k, _)| (*k, dir.join(k))).collect())
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
        let _ = std::fs::remove_dir(&dir);
    }

    /// Removes the bound namespaces of infras that are gone (a kill -9
    /// between their start and their end's cleanup).
    pub(crate) fn reconcile_pod_namespaces(&self) {
        let Ok(rd) = std::fs::read_dir(self.podns_root()) else {
            return;
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if matches!(self.records.get(&id), Ok(None)) {
                self.unbind_pod_namespaces(&id);
            }
        }
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
