//! berth's engine: containers from images. `containers` walks a
//! container's life (create, start through the monitor, stop, kill, remove,
//! clean up, reconcile); `records` is the crash-safe state store; `spec`
//! makes the OCI spec (a pure function); `rootfs` mounts the overlay;
//! `config` holds the stored options and their parsers; `user` resolves
//! users in the image; `paths` says where things live.

pub mod config;
pub mod containers;
pub mod error;
pub mod exec;
pub mod files;
pub mod follow;
pub mod paths;
pub mod records;
pub mod rootfs;
pub mod spec;
pub mod system;
pub mod user;

pub use containers::{Engine, Session, Started};
pub use error::{Error, Result};

/// Whether this process called [`warm_up_cgroups`]: the monitors it starts
/// then tell the runtime to skip its own warm-up on the first start.
pub(crate) static WARMING_UP: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Starts, on a thread, the wait that the runtime's first move of a
/// process into a cgroup v1 hierarchy would otherwise make later (an RCU
/// grace period, 8-25 ms here; see
/// [`berth_cgroups::Layout::warm_up_target`]). Called first thing by
/// `berth exec` (berth-runtime moves the exec'd process), and by a start
/// with another runtime (runc and crun move the container's init), it
/// overlaps with the work up to that move. Not for a container that
/// berth-runtime starts: its init moves itself without that wait, and the
/// wait would hold the kernel's cgroup lock that making its cgroups needs.
/// Does nothing on cgroup v2, and gives up quietly where it may not write.
pub fn warm_up_cgroups() {
    WARMING_UP.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = std::thread::Builder::new()
        .name("cgroup-warm-up".into())
        .spawn(|| {
            let target = berth_cgroups::Layout::from_host()
                .ok()
                .and_then(|l| l.warm_up_target());
            if let Some(t) = target {
                use std::io::Write;
                if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(t) {
                    let _ = f.write_all(b"0");
                }
            }
        });
}
