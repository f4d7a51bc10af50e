//! berth's engine: containers from images. `containers` walks a
//! container's life (create, start through the monitor, stop, kill, remove,
//! clean up, reconcile); `records` is the crash-safe state store; `spec`
//! makes the OCI spec (a pure function); `rootfs` mounts the overlay;
//! `specgen` is the typed container spec each record stores, with Docker's
//! flags parsed into it (`specgen::docker`); `user` resolves
//! users in the image; `paths` says where things live.

pub mod build;
mod build_copy;
pub mod cdi;
pub mod commit;
pub mod containers;
pub mod control;
pub mod devices;
pub mod error;
pub mod events;
pub mod exec;
pub mod files;
pub mod follow;
pub mod health;
pub mod host;
pub mod imagelist;
pub mod images;
pub mod info;
pub mod inspect;
pub mod kube;
mod kube_dns;
#[cfg(test)]
mod lifecycle_tests;
pub mod logs;
pub mod networks;
pub mod paths;
mod podns;
pub mod pods;
pub mod prune;
pub mod query;
pub mod records;
pub mod rootfs;
pub mod runtime;
pub mod session;
pub mod spec;
pub mod specgen;
#[cfg(test)]
mod start_tests;
pub mod stats;
mod subpath;
pub mod system;
pub mod template;
pub mod user;
pub mod usermaps;
pub mod userns;
pub mod volume_opts;

pub use containers::{Engine, PreMonitor};
pub use error::{Error, ErrorKind, Result};
pub use session::{Session, Started};

/// The store's database file under the root (its identity tells a
/// long-lived caller that the store was removed and made again).
pub const DB_FILE: &str = berth_db::DB_FILE;

/// Starts, on a thread, the wait that the runtime's first move of a
/// process into a cgroup v1 hierarchy would otherwise make later (an RCU
/// grace period, 8-25 ms here; see
/// [`berth_cgroups::Layout::warm_up_target`]). Called when a container of
/// another runtime is started or exec'd into (runc and crun move the
/// process), it overlaps with the work up to that move. Not for
/// berth-runtime's containers: their processes move themselves without
/// that wait, and the wait would hold the kernel's cgroup lock that making
/// their cgroups and moving in need.
/// Does nothing on cgroup v2, and gives up quietly where it may not write.
pub fn warm_up_cgroups() {
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

/// The monitor's protocol (its probe rules are shared with the API's
/// probe helper).
pub use berth_monitor_proto as monitor_proto;
/// The network layer (models, addresses, ports) the engine builds on, for
/// its front ends.
pub use berth_network as network;
