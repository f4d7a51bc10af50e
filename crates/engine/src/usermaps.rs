//! The engine's side of `--userns` ([`crate::userns`] holds the modes and
//! the maps' arithmetic): the subordinate id files as this host has them,
//! the maps a container gets at create, and a volume's copy-up for a
//! container with a user namespace.
//!
//! The subordinate id files are /etc/subuid and /etc/subgid; the
//! environment variables [`SUBUID_ENV`] and [`SUBGID_ENV`] name others
//! (for tests, or a host that keeps berth's ranges apart).

use crate::error::{io, option, Error, Result};
use crate::userns::{compute, parse_subids, read_subid_file, Host, Userns, UsernsLock, UsernsMode};
use std::os::fd::{AsFd, BorrowedFd};
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
            let text = read_subid_file(p, &format!("{} ({var})", p.display()))?;
            *list = parse_subids(&text);
        }
    }
    Ok(h)
}

/// The maps `mode` comes to on this host, none of `in_use` taken by an
/// `auto` range (None: no user namespace), under the engine's user
/// namespace lock (`held`, see [`compute`]). A kernel without idmapped
/// mounts, which the container's root needs, is an error here, at create.
pub fn pick(mode: &UsernsMode, in_use: Vec<Userns>, held: &UsernsLock) -> Result<Option<Userns>> {
    if *mode == UsernsMode::Host {
        return Ok(None);
    }
    if !berth_sys::mount::has_mount_setattr() {
        return Err(option(
            "--userns",
            "a user namespace needs idmapped mounts for the container's root (mount_setattr, Linux 5.12 or later), and this kernel has none: use --userns host",
        ));
    }
    compute(mode, &host(in_use)?, held).map_err(|e| match e {
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
/// with the user namespace `u`, whose root shows the image's files with
/// the host ids of the container's: the copy is made, then each copied
/// entry given back the container's own id (host id `H` of the range that
/// maps container id `C` is `C` again), as the volume's idmapped mount in
/// the container shows it. (Kept as copied, the volume's mount would map
/// them a second time, past the range.) Writing the copy through an
/// idmapped mount of the volume instead is refused by the kernel: the
/// engine's own ids are not in the container's maps. Only a volume empty
/// before the copy is touched.
pub fn copy_up(rootfs: &Path, dest: &str, volume_data: &Path, u: &Userns) -> Result<()> {
    let what = format!("the volume directory {}", volume_data.display());
    let vol = berth_sys::fs::open(
        volume_data,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        0,
    )
    .map_err(io(format!("open {what}")))?;
    if !berth_sys::fs::read_dir_fd(vol.as_fd())
        .map_err(io(format!("list {what}")))?
        .is_empty()
    {
        return Ok(());
    }
    crate::files::copy_up(rootfs, dest, volume_data)?;
    let st = berth_sys::fs::fstat(vol.as_fd()).map_err(io(format!("stat {what}")))?;
    unshift(vol.as_fd(), &st, u, 0).map_err(|e| {
        Error::Runtime(format!(
            "give the image's {dest}, copied into {}, the container's ids: {e}",
            volume_data.display()
        ))
    })
}

/// The container id that host id `id` is in `map` (as is if none).
fn container_id(map: &[crate::userns::IdMap], id: u32) -> u32 {
    map.iter()
        .find(|r| id >= r.host_id && u64::from(id) < u64::from(r.host_id) + u64::from(r.size))
        .map_or(id, |r| r.container_id + (id - r.host_id))
}

/// Gives `fd` (stat `st`) and, for a directory, everything under it the
/// container ids of its host ids. Entries are opened one name at a time,
/// never through a link ([`berth_sys::fs::open_entry`]); the modes are set
/// again (a chown clears set-id bits).
fn unshift(fd: BorrowedFd<'_>, st: &libc::stat, u: &Userns, depth: u32) -> std::io::Result<()> {
    const MAX_DEPTH: u32 = 256;
    let (uid, gid) = (
        container_id(&u.uids, st.st_uid),
        container_id(&u.gids, st.st_gid),
    );
    if (uid, gid) != (st.st_uid, st.st_gid) {
        berth_sys::fs::fchown_fd(fd, uid, gid)?;
        if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
            let _ = berth_sys::fs::fchmod_fd(fd, st.st_mode & 0o7777);
        }
    }
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Ok(());
    }
    if depth > MAX_DEPTH {
        return Err(std::io::Error::other(format!(
            "more than {MAX_DEPTH} directories deep"
        )));
    }
    for n in berth_sys::fs::read_dir_fd(fd)? {
        let (child, cst) = berth_sys::fs::open_entry(fd, Path::new(&n))?;
        unshift(child.as_fd(), &cst, u, depth + 1)?;
    }
    Ok(())
}
