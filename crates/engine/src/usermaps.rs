//! The engine's side of `--userns` ([`crate::userns`] holds the modes and
//! the maps' arithmetic): the subordinate id files as this host has them,
//! the maps a container gets at create, and a volume's copy-up for a
//! container with a user namespace.
//!
//! The subordinate id files are /etc/subuid and /etc/subgid; the
//! environment variables [`SUBUID_ENV`] and [`SUBGID_ENV`] name others
//! (for tests, or a host that keeps berth's ranges apart).

use crate::error::{io, option, Error, Result};
use crate::userns::{compute, parse_subids, Host, Userns, UsernsMode};
use std::os::fd::AsFd;
use std::path::Path;

/// Names the file read instead of /etc/subuid.
pub const SUBUID_ENV: &str = "BERTH_SUBUID_FILE";
/// Names the file read instead of /etc/subgid.
pub const SUBGID_ENV: &str = "BERTH_SUBGID_FILE";

/// The host as [`Host::read`] sees it, with the subordinate id files the
/// environment names instead of /etc's.
pub fn host(in_use: Vec<Userns>) -> Result<Host> {
    let mut h = Host::read(in_use)?;
    for (var, list) in [(SUBUID_ENV, &mut h.subuid), (SUBGID_ENV, &mut h.subgid)] {
        if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
            let p = Path::new(&p);
            let text = std::fs::read_to_string(p)
                .map_err(io(format!("read the subordinate id file {} ({var})", p.display())))?;
            *list = parse_subids(&text);
        }
    }
    Ok(h)
}

/// The maps `mode` comes to on this host, none of `in_use` taken by an
/// `auto` range (None: no user namespace). A kernel without idmapped
/// mounts, which the container's root needs, is an error here, at create.
pub fn pick(mode: &UsernsMode, in_use: Vec<Userns>) -> Result<Option<Userns>> {
    if *mode == UsernsMode::Host {
        return Ok(None);
    }
    if !berth_sys::mount::has_mount_setattr() {
        return Err(option(
            "--userns",
            "a user namespace needs idmapped mounts for the container's root (mount_setattr, Linux 5.12 or later), and this kernel has none: use --userns host",
        ));
    }
    compute(mode, &host(in_use)?).map_err(|e| match e {
        // The files read, named as the user gave them.
        Error::Option { option, mut msg } => {
            for (var, file) in [(SUBUID_ENV, "/etc/subuid"), (SUBGID_ENV, "/etc/subgid")] {
                if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
                    msg = msg.replace(file, &format!("{} ({var})", Path::new(&p).display()));
                }
            }
            Error::Option { option, msg }
        }
        e => e,
    })
}

/// Docker's volume copy-up ([`crate::files::copy_up`]) for a container
/// with the user namespace `u`: the copy is written through an idmapped
/// mount of the volume (attached at `staging` for its length), so a file
/// the container sees as uid N lands on the volume as N, as the volume's
/// own idmapped mount in the container then shows it. (Copied straight,
/// it would keep the host ids of the container's idmapped root, which
/// the volume's mount would map a second time, past the range.)
pub fn copy_up(
    rootfs: &Path,
    dest: &str,
    volume_data: &Path,
    staging: &Path,
    u: &Userns,
) -> Result<()> {
    let empty = std::fs::read_dir(volume_data)
        .map_err(io(format!("list the volume directory {}", volume_data.display())))?
        .next()
        .is_none();
    if !empty {
        return Ok(());
    }
    let vol = berth_sys::fs::open(
        volume_data,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(io(format!("open the volume directory {}", volume_data.display())))?;
    let ns = berth_sys::userns::new_userns(
        &crate::userns::ranges(&u.uids),
        &crate::userns::ranges(&u.gids),
    )
    .map_err(io(
        "make a user namespace holding the container's id maps (for a volume's copy-up)",
    ))?;
    let what = format!("an idmapped mount of the volume {}", volume_data.display());
    let tree = berth_sys::mount::open_tree(vol.as_fd(), berth_sys::mount::OPEN_TREE_CLONE)
        .map_err(io(format!("clone {what}")))?;
    berth_sys::mount::set_idmap(tree.as_fd(), ns.as_fd(), false).map_err(|e| {
        Error::Runtime(format!(
            "make {what}: {e}; its filesystem may not support idmapped mounts on this kernel: put the volumes on ext4, xfs, btrfs or tmpfs, or use --userns host"
        ))
    })?;
    detach(staging);
    std::fs::create_dir_all(staging).map_err(io(format!("create {}", staging.display())))?;
    let attached = berth_sys::fs::open(
        staging,
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .and_then(|fd| berth_sys::mount::move_mount(tree.as_fd(), fd.as_fd()))
    .map_err(io(format!("attach {what} at {}", staging.display())));
    let r = attached.and_then(|()| crate::files::copy_up(rootfs, dest, staging));
    detach(staging);
    r
}

/// Detaches what is mounted at `staging` (a copy-up killed half-way left
/// it) and removes the directory.
fn detach(staging: &Path) {
    if let Ok(c) = berth_sys::cstr(staging) {
        while berth_sys::mount::umount2(&c, libc::MNT_DETACH).is_ok() {}
    }
    let _ = std::fs::remove_dir(staging);
}
